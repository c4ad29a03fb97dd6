# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Ranking metrics of top-K recommendation lists against held-out items, one pass per user.

For the recommendation list ``rec`` (K ids, best first, -1 for padding) of a user whose
held-out (relevant) items are the set T, with ``hit_i = [rec_i in T]``:

    hits       = sum_i hit_i
    n_relevant = min(K, |T|)                          (the best achievable number of hits)
    AP         = sum_i hit_i * (hits among the first i+1) / (i+1)  /  n_relevant
    nDCG       = sum_i hit_i / log2(i+2)  /  sum_{i < n_relevant} 1/log2(i+2)
    AUC        = [ sum_{i: rec_i real, not in T} (hits before i)
                   + (hits + |T|) / 2 * (n_neg - misses) ] / (|T| * n_neg)
    RR         = 1 / (i* + 1) for the first i* with hit_i (0 without a hit): the
                 reciprocal rank, whose mean over users is MRR@K

where n_neg = n_items - |T| and misses counts the real (non-padding) ids of the list not in
T: the items outside the list are taken as tied below it (the "limited AUC" of `implicit`).
The numpy oracle is :func:`fastals.reference.metrics.ranking_metrics_loop`.
"""
from cython.parallel cimport parallel, prange
from libc.math cimport NAN, log2
from libc.stdint cimport int64_t
from libc.stdlib cimport free

from fastals._kernels._common cimport index_t
from fastals._kernels._status cimport OK, OUT_OF_MEMORY, Status, scratch_calloc

cdef enum:
    HITS = 0
    N_RELEVANT = 1
    N_TEST = 2
    AVERAGE_PRECISION = 3
    NDCG = 4
    AUC = 5
    RECIPROCAL_RANK = 6
    N_OUTPUTS = 7


def n_outputs():
    """Columns of the output array: hits, min(K, |T|), |T|, AP, nDCG, AUC, RR."""
    return N_OUTPUTS


cdef void score_list(const int64_t* rec, int width, int K, const unsigned char* relevant,
                     double n_test, double n_items, const double* discount,
                     double* out) noexcept nogil:
    """Metrics of one list whose relevant items are marked in `relevant`; see the module."""
    cdef int i
    cdef int64_t item
    cdef double hits = 0, precision_sum = 0, dcg = 0, idcg = 0, auc = 0, misses = 0
    cdef double reciprocal_rank = 0
    cdef double n_relevant = n_test if n_test < K else K
    cdef double n_neg = n_items - n_test
    for i in range(width):
        item = rec[i]
        if item < 0:
            continue
        if relevant[item]:
            if hits == 0:
                reciprocal_rank = 1.0 / (i + 1)
            hits += 1
            precision_sum += hits / (i + 1)
            dcg += discount[i]
        else:
            misses += 1
            auc += hits
    for i in range(<int> n_relevant):
        idcg += discount[i]
    out[HITS] = hits
    out[N_RELEVANT] = n_relevant
    out[N_TEST] = n_test
    out[AVERAGE_PRECISION] = precision_sum / n_relevant
    out[NDCG] = dcg / idcg
    out[RECIPROCAL_RANK] = reciprocal_rank
    if n_neg > 0:
        out[AUC] = (auc + (hits + n_test) / 2.0 * (n_neg - misses)) / (n_test * n_neg)
    else:
        out[AUC] = NAN  # every item is relevant: no pair to order


def ranking_metrics(const int64_t[:, ::1] recommended, const int64_t[::1] test_rows,
                    const index_t[::1] test_indptr, const index_t[::1] test_indices,
                    int64_t n_items, int K, int num_threads, double[:, ::1] out):
    """Write the metrics of list k (row k of `recommended`) into ``out[k]``.

    Row k is scored against the relevant items ``test_indices[test_indptr[r]:test_indptr[r+1]]``
    of ``r = test_rows[k]`` (non-empty, distinct, in [0, n_items)). Ids in `recommended` are
    -1 (padding) or in [0, n_items) and distinct per row; ``recommended.shape[1] <= K``.
    Returns OK, or OUT_OF_MEMORY if scratch memory could not be allocated (then ``out`` is
    incomplete).
    """
    cdef Py_ssize_t n_lists = recommended.shape[0], k, j
    cdef int width = recommended.shape[1]
    cdef int64_t row
    cdef int failed = 0
    cdef Status status = OUT_OF_MEMORY
    cdef unsigned char* relevant
    cdef double* discount = <double*> scratch_calloc(K + 1, sizeof(double))
    if discount == NULL:
        return status
    for j in range(K):
        discount[j] = 1.0 / log2(j + 2.0)
    try:
        with nogil, parallel(num_threads=num_threads):
            relevant = <unsigned char*> scratch_calloc(n_items + 1, 1)
            try:
                for k in prange(n_lists, schedule="dynamic", chunksize=64):
                    if relevant == NULL:
                        failed += 1  # a reduction: any thread without scratch reports it
                        continue
                    row = test_rows[k]
                    for j in range(test_indptr[row], test_indptr[row + 1]):
                        relevant[test_indices[j]] = 1
                    score_list(&recommended[k, 0] if width > 0 else NULL, width, K, relevant,
                               test_indptr[row + 1] - test_indptr[row], n_items, discount,
                               &out[k, 0])
                    for j in range(test_indptr[row], test_indptr[row + 1]):
                        relevant[test_indices[j]] = 0
            finally:
                free(relevant)
    finally:
        free(discount)
    if not failed:
        status = OK
    return status
