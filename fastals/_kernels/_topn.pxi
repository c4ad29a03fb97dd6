# Top-N kernels; built per instruction set from the _topn_<isa>.pyx stubs.
"""Top-N selection over the rows of a dense score matrix, and fused scoring + selection.

Each row keeps a bounded min-heap (_heap.pxd) of its N best (score, column) pairs while
scanning the columns once: O(n_cols) for typical rows, O(n_cols log N) at worst, never a full sort.
Ties are broken by the lower column index. NaN and -inf scores are never selected, and
neither are columns excluded for the row (a CSR of columns per row) or for all rows
(`blocked`, a byte mask with one entry per column, or empty).
"""
from cython.parallel cimport parallel, prange
from libc.math cimport INFINITY
from libc.stdint cimport int64_t
from libc.stdlib cimport free
from libc.string cimport memset

from fastals._kernels._common cimport floating, index_t, tile
from fastals._kernels._heap cimport push, replace_worst, sort_best_first
from fastals._kernels._status cimport OK, OUT_OF_MEMORY, Status, scratch_calloc, scratch_malloc

cdef enum:
    # dot_topn blocks: queries per thread task, and columns per cache block of item factors
    QUERY_BLOCK = 16
    COLUMN_BLOCK = 512


cdef int select_row(const floating* row, Py_ssize_t n_cols, int N, const unsigned char* blocked,
                    const unsigned char* excluded, floating* heap_scores,
                    int64_t* heap_ids) noexcept nogil:
    """Fill heap_scores/heap_ids with the row's best entries, best first; return their count."""
    cdef int count = 0
    cdef Py_ssize_t col
    cdef floating s
    for col in range(n_cols):
        s = row[col]
        if not s > -INFINITY:  # NaN or -inf
            continue
        if (blocked != NULL and blocked[col]) or excluded[col]:
            continue
        if count < N:
            count = push(heap_scores, heap_ids, count, s, <int64_t> col)
        elif s > heap_scores[0]:  # columns come in increasing order: a tie never wins
            replace_worst(heap_scores, heap_ids, count, s, <int64_t> col)
    sort_best_first(heap_scores, heap_ids, count)
    return count


def select_topn(const floating[:, ::1] scores, const index_t[::1] exclude_indptr,
                const index_t[::1] exclude_indices, const unsigned char[::1] blocked,
                int64_t[:, ::1] out_ids, floating[:, ::1] out_scores, int num_threads):
    """Write each row's best `out_ids.shape[1]` columns and scores, best first.

    `exclude_indptr` has one entry per row plus one (or is empty for no per-row exclusions);
    the exclusion columns must lie in [0, n_cols). Rows with fewer selectable columns than N
    are padded with id -1 and score -inf; outputs are written in place. Returns OK, or
    OUT_OF_MEMORY if scratch memory ran out (rows then keep whatever they held).
    """
    cdef Py_ssize_t n_rows = scores.shape[0], n_cols = scores.shape[1], row, j
    cdef int N = out_ids.shape[1], count, k
    cdef bint per_row = exclude_indptr.shape[0] > 0
    cdef const unsigned char* blocked_ptr = &blocked[0] if blocked.shape[0] > 0 else NULL
    cdef unsigned char* excluded
    cdef int failed = 0
    cdef Status status = OK
    if n_rows == 0 or N == 0:
        return status
    with nogil, parallel(num_threads=num_threads):
        excluded = <unsigned char*> scratch_calloc(n_cols + 1, 1)
        try:
            for row in prange(n_rows, schedule="dynamic", chunksize=4):
                if excluded == NULL:
                    failed += 1  # a reduction: any thread without scratch reports it
                    continue
                if per_row:
                    for j in range(exclude_indptr[row], exclude_indptr[row + 1]):
                        excluded[exclude_indices[j]] = 1
                count = select_row(&scores[row, 0], n_cols, N, blocked_ptr, excluded,
                                   &out_scores[row, 0], &out_ids[row, 0])
                for k in range(count, N):
                    out_ids[row, k] = -1
                    out_scores[row, k] = -INFINITY
                if per_row:
                    for j in range(exclude_indptr[row], exclude_indptr[row + 1]):
                        excluded[exclude_indices[j]] = 0
        finally:
            free(excluded)
    if failed:
        status = OUT_OF_MEMORY
    return status


cdef void score_block(const floating* Ut, int n_queries, const floating* Yt, int F,
                      Py_ssize_t n_cols, floating* scores) noexcept nogil:
    """scores[q, c] = sum_k Ut[k, q] Yt[k, c] for a block of up to QUERY_BLOCK queries.

    Ut is F x QUERY_BLOCK (zero-padded), Yt is F x n_cols; scores is QUERY_BLOCK x n_cols.
    Every score is summed over k in ascending order whatever the blocking, so a query
    scores identically alone or in any batch.
    """
    cdef Py_ssize_t c0, c, c_end, full_end
    cdef int q0, q, k
    cdef floating total
    memset(scores, 0, QUERY_BLOCK * n_cols * sizeof(floating))
    c0 = 0
    while c0 < n_cols:  # (a range() needs a literal step)
        c_end = min(c0 + COLUMN_BLOCK, n_cols)
        full_end = c0 + ((c_end - c0) // 16) * 16
        for q0 in range(0, n_queries, 4):
            for c in range(c0, full_end, 16):
                tile(scores + q0 * n_cols + c, n_cols, Ut + q0, QUERY_BLOCK, Yt + c, n_cols, F)
        c0 += COLUMN_BLOCK
    full_end = (n_cols // 16) * 16
    for q in range(n_queries):
        for c in range(full_end, n_cols):
            total = 0
            for k in range(F):
                total = total + Ut[k * QUERY_BLOCK + q] * Yt[k * n_cols + c]
            scores[q * n_cols + c] = total


def dot_topn(const floating[:, ::1] U, const floating[:, ::1] Yt,
             const index_t[::1] exclude_indptr, const index_t[::1] exclude_indices,
             const unsigned char[::1] blocked, int64_t[:, ::1] out_ids,
             floating[:, ::1] out_scores, int num_threads):
    """Best columns of U @ Yt per row of U, without forming U @ Yt.

    U is n_queries x F, Yt is F x n_cols (the item factors transposed; F factors).
    Exclusions, padding and ties as in select_topn. Returns OK, or OUT_OF_MEMORY if scratch
    memory ran out (rows then keep their -1 padding).
    """
    cdef Py_ssize_t n_queries = U.shape[0], n_cols = Yt.shape[1], block, j
    cdef int F = U.shape[1], N = out_ids.shape[1], rows, q, k, count
    cdef Py_ssize_t n_blocks = (n_queries + QUERY_BLOCK - 1) // QUERY_BLOCK, row
    cdef bint per_row = exclude_indptr.shape[0] > 0
    cdef const unsigned char* blocked_ptr = &blocked[0] if blocked.shape[0] > 0 else NULL
    cdef floating* scores
    cdef floating* Ut
    cdef unsigned char* excluded
    cdef int failed = 0
    cdef Status status = OK
    if n_queries == 0 or N == 0 or n_cols == 0:
        return status
    with nogil, parallel(num_threads=num_threads):
        scores = <floating*> scratch_malloc(QUERY_BLOCK * n_cols * sizeof(floating))
        Ut = <floating*> scratch_malloc(QUERY_BLOCK * (F + 1) * sizeof(floating))
        excluded = <unsigned char*> scratch_calloc(n_cols + 1, 1)
        try:
            for block in prange(n_blocks, schedule="dynamic", chunksize=1):
                if scores == NULL or Ut == NULL or excluded == NULL:
                    failed += 1
                    continue
                rows = <int> min(QUERY_BLOCK, n_queries - block * QUERY_BLOCK)
                memset(Ut, 0, QUERY_BLOCK * F * sizeof(floating))
                for q in range(rows):
                    for k in range(F):
                        Ut[k * QUERY_BLOCK + q] = U[block * QUERY_BLOCK + q, k]
                score_block(Ut, rows, &Yt[0, 0], F, n_cols, scores)
                for q in range(rows):
                    row = block * QUERY_BLOCK + q
                    if per_row:
                        for j in range(exclude_indptr[row], exclude_indptr[row + 1]):
                            excluded[exclude_indices[j]] = 1
                    count = select_row(scores + q * n_cols, n_cols, N, blocked_ptr, excluded,
                                       &out_scores[row, 0], &out_ids[row, 0])
                    for k in range(count, N):
                        out_ids[row, k] = -1
                        out_scores[row, k] = -INFINITY
                    if per_row:
                        for j in range(exclude_indptr[row], exclude_indptr[row + 1]):
                            excluded[exclude_indices[j]] = 0
        finally:
            free(scores)
            free(Ut)
            free(excluded)
    if failed:
        status = OUT_OF_MEMORY
    return status
