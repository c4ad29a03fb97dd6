# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Top-N selection over the rows of a dense score matrix.

Each row keeps a bounded min-heap of its N best (score, column) pairs while scanning the
columns once: O(n_cols) for typical rows, O(n_cols log N) at worst, never a full sort.
Ties are broken by the lower column index. NaN and -inf scores are never selected, and
neither are columns excluded for the row (a CSR of columns per row) or for all rows
(`blocked`, a byte mask with one entry per column, or empty).
"""
from cython.parallel cimport parallel, prange
from libc.math cimport INFINITY
from libc.stdint cimport int64_t
from libc.stdlib cimport calloc, free, malloc

from fastals._kernels._common cimport floating, index_t


cdef inline bint worse(floating score_a, int64_t id_a, floating score_b, int64_t id_b) noexcept nogil:
    return score_a < score_b or (score_a == score_b and id_a > id_b)


cdef void sift_down(floating* scores, int64_t* ids, int start, int count) noexcept nogil:
    """Restore the min-heap (worst element at the root) below position `start`."""
    cdef int parent = start, child
    cdef floating s
    cdef int64_t i
    while True:
        child = 2 * parent + 1
        if child >= count:
            return
        if child + 1 < count and worse(scores[child + 1], ids[child + 1], scores[child], ids[child]):
            child += 1
        if not worse(scores[child], ids[child], scores[parent], ids[parent]):
            return
        s = scores[child]; scores[child] = scores[parent]; scores[parent] = s
        i = ids[child]; ids[child] = ids[parent]; ids[parent] = i
        parent = child


cdef void sift_up(floating* scores, int64_t* ids, int pos) noexcept nogil:
    cdef int parent
    cdef floating s
    cdef int64_t i
    while pos > 0:
        parent = (pos - 1) // 2
        if not worse(scores[pos], ids[pos], scores[parent], ids[parent]):
            return
        s = scores[pos]; scores[pos] = scores[parent]; scores[parent] = s
        i = ids[pos]; ids[pos] = ids[parent]; ids[parent] = i
        pos = parent


cdef int select_row(const floating* row, Py_ssize_t n_cols, int N, const unsigned char* blocked,
                    const unsigned char* excluded, floating* heap_scores,
                    int64_t* heap_ids) noexcept nogil:
    """Fill heap_scores/heap_ids with the row's best entries, best first; return their count."""
    cdef int count = 0, end
    cdef Py_ssize_t col
    cdef floating s
    cdef int64_t i
    for col in range(n_cols):
        s = row[col]
        if not s > -INFINITY:  # NaN or -inf
            continue
        if (blocked != NULL and blocked[col]) or excluded[col]:
            continue
        if count < N:
            heap_scores[count] = s
            heap_ids[count] = col
            sift_up(heap_scores, heap_ids, count)
            count += 1
        elif s > heap_scores[0]:
            heap_scores[0] = s
            heap_ids[0] = col
            sift_down(heap_scores, heap_ids, 0, count)
    # heap sort: move the worst to the back until the array is ordered best first
    for end in range(count - 1, 0, -1):
        s = heap_scores[0]; heap_scores[0] = heap_scores[end]; heap_scores[end] = s
        i = heap_ids[0]; heap_ids[0] = heap_ids[end]; heap_ids[end] = i
        sift_down(heap_scores, heap_ids, 0, end)
    return count


def select_topn(const floating[:, ::1] scores, const index_t[::1] exclude_indptr,
                const index_t[::1] exclude_indices, const unsigned char[::1] blocked,
                int64_t[:, ::1] out_ids, floating[:, ::1] out_scores, int num_threads):
    """Write each row's best `out_ids.shape[1]` columns and scores, best first.

    `exclude_indptr` has one entry per row plus one (or is empty for no per-row exclusions);
    the exclusion columns must lie in [0, n_cols). Rows with fewer selectable columns than N
    are padded with id -1 and score -inf. Returns nothing; outputs are written in place.
    """
    cdef Py_ssize_t n_rows = scores.shape[0], n_cols = scores.shape[1], row, j
    cdef int N = out_ids.shape[1], count, k
    cdef bint per_row = exclude_indptr.shape[0] > 0
    cdef const unsigned char* blocked_ptr = &blocked[0] if blocked.shape[0] > 0 else NULL
    cdef unsigned char* excluded
    if n_rows == 0 or N == 0:
        return
    with nogil, parallel(num_threads=num_threads):
        excluded = <unsigned char*> calloc(n_cols + 1, 1)
        try:
            for row in prange(n_rows, schedule="dynamic", chunksize=4):
                if excluded == NULL:
                    continue  # reported below: the row keeps its -1 padding
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
