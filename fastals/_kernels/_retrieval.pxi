# All-users top-N kernels; built per instruction set from the _retrieval_<isa>.pyx stubs.
"""The N best items of every user, x_u . y_i, without ever holding a users x items matrix.

The users are cut into tiles of `user_tile` rows (one OpenMP task each) and the items into
tiles of `item_tile` columns. For one users tile, the kernel walks the items tiles in order:
the scores of the tile, user_tile x item_tile, are computed by the register tiles of
microkernels.h into a per-thread buffer that stays in cache, the user's already-liked items
in the tile are set to -inf (a cursor into each user's sorted exclusion list), and each
user's bounded heap (_heap.pxd), kept in the output row itself, takes the tile's scores
that beat its current worst. Sixteen scores are first compared with that threshold at once,
so a tile with nothing better (almost all of them, once the heaps are full) costs a few
vector compares per row.

Every score is the same sum, in the same order (k = 0, 1, ...), as in _topn.pxi's
dot_topn, whatever the tile sizes or thread count, and the heap breaks ties as there (the
lower item wins), so a user gets exactly what the single-user recommend gives.
"""
from cython.parallel cimport parallel, prange
from libc.math cimport INFINITY
from libc.stdint cimport int64_t
from libc.stdlib cimport free
from libc.string cimport memset

from fastals._kernels._common cimport floating, index_t, tile
from fastals._kernels._heap cimport push, replace_worst, sort_best_first
from fastals._kernels._status cimport OK, OUT_OF_MEMORY, Status, scratch_malloc

cdef extern from *:
    """
    /* Whether any of the n (a multiple of 16) values at s exceeds t (NaN never does). */
    #if defined(__GNUC__) || defined(__clang__)
    #define FASTALS_DEFINE_ANY_ABOVE(NAME, T, I)                                          \\
        typedef T NAME##_vec __attribute__((vector_size(16 * sizeof(T))));                 \\
        typedef I NAME##_mask __attribute__((vector_size(16 * sizeof(T))));               \\
        static inline int NAME(const T *s, ptrdiff_t n, T t)                              \\
        {                                                                                  \\
            NAME##_mask any = {0};                                                         \\
            NAME##_vec x;                                                                  \\
            for (ptrdiff_t j = 0; j < n; j += 16) {                                        \\
                memcpy(&x, s + j, sizeof x);                                               \\
                any |= (x > t);                                                            \\
            }                                                                              \\
            for (int v = 0; v < 16; v++) if (any[v]) return 1;                             \\
            return 0;                                                                      \\
        }
    #else
    #define FASTALS_DEFINE_ANY_ABOVE(NAME, T, I)                                          \\
        static int NAME(const T *s, ptrdiff_t n, T t)                                     \\
        {                                                                                  \\
            for (ptrdiff_t j = 0; j < n; j++) if (s[j] > t) return 1;                      \\
            return 0;                                                                      \\
        }
    #endif
    #include <string.h>
    #include <stdint.h>
    FASTALS_DEFINE_ANY_ABOVE(fastals_any_above_f32, float, int32_t)
    FASTALS_DEFINE_ANY_ABOVE(fastals_any_above_f64, double, int64_t)
    """
    bint any_above_f32 "fastals_any_above_f32"(const float* s, Py_ssize_t n,
                                               float t) noexcept nogil
    bint any_above_f64 "fastals_any_above_f64"(const double* s, Py_ssize_t n,
                                               double t) noexcept nogil


cdef inline bint any_above(const floating* s, Py_ssize_t n, floating t) noexcept nogil:
    if floating is float:
        return any_above_f32(s, n, t)
    else:
        return any_above_f64(s, n, t)


cdef void score_tile(const floating* Ut, int user_tile, int n_users, const floating* Yt,
                     int F, Py_ssize_t n_cols, Py_ssize_t c0, Py_ssize_t c_end,
                     floating* S, int ldS) noexcept nogil:
    """S[q, c - c0] = sum_k Ut[k, q] Yt[k, c] for q < n_users, c0 <= c < c_end.

    Ut is F x user_tile (zero-padded), Yt is F x n_cols. Columns of whole 16s go through the
    4 x 16 register tile; the last n_cols mod 16 columns of the matrix are plain sums, both
    summed over k in ascending order from zero, as _topn.pxi's score_block does. The
    buffer's columns past c_end up to a multiple of 16 are set to -inf (never selected).
    """
    cdef Py_ssize_t c, full_end = c0 + ((c_end - c0) // 16) * 16, width = c_end - c0
    cdef int q0, q, k
    cdef floating total
    for q in range(n_users):
        memset(S + <Py_ssize_t> q * ldS, 0, ldS * sizeof(floating))
    for c in range(c0, full_end, 16):
        for q0 in range(0, n_users, 4):
            tile(S + <Py_ssize_t> q0 * ldS + (c - c0), ldS, Ut + q0, user_tile, Yt + c, n_cols, F)
    for q in range(n_users):
        for c in range(full_end, c_end):
            total = 0
            for k in range(F):
                total = total + Ut[k * user_tile + q] * Yt[k * n_cols + c]
            S[<Py_ssize_t> q * ldS + (c - c0)] = total
        for c in range(width, ldS):
            S[<Py_ssize_t> q * ldS + c] = -INFINITY


cdef inline int take_tile(const floating* row, Py_ssize_t c0, Py_ssize_t width, int N, int count,
                          const unsigned char* blocked, floating* heap_scores,
                          int64_t* heap_ids) noexcept nogil:
    """Offer one user's scores of a tile (columns c0..c0+width, width a multiple of 16) to
    their heap of `count` pairs; returns the new count. Columns arrive in increasing order,
    so a score equal to the worst kept one never enters (the lower column wins ties)."""
    cdef Py_ssize_t j, c
    cdef floating s, threshold = heap_scores[0] if count == N else -INFINITY
    for j in range(0, width, 16):
        if not any_above(row + j, 16, threshold):
            continue
        for c in range(j, j + 16):
            s = row[c]
            if not s > threshold or (blocked != NULL and blocked[c0 + c]):
                continue
            if count < N:
                count = push(heap_scores, heap_ids, count, s, <int64_t> (c0 + c))
                if count == N:
                    threshold = heap_scores[0]
            else:
                replace_worst(heap_scores, heap_ids, count, s, <int64_t> (c0 + c))
                threshold = heap_scores[0]
    return count


def dot_topn_tiled(const floating[:, ::1] U, const floating[:, ::1] Yt,
                   const index_t[::1] exclude_indptr, const index_t[::1] exclude_indices,
                   const unsigned char[::1] blocked, int64_t[:, ::1] out_ids,
                   floating[:, ::1] out_scores, int user_tile, int item_tile, int num_threads):
    """The best `out_ids.shape[1]` columns of U @ Yt per row of U, best first.

    U is n_users x F, Yt is F x n_cols (the item factors transposed). `exclude_indptr`
    (n_users + 1 entries, or empty for none) and `exclude_indices` list each row's excluded
    columns, sorted increasing within a row and in [0, n_cols); `blocked` is a byte mask
    over the columns (or empty). `user_tile` must be a positive multiple of 4 and
    `item_tile` a positive multiple of 16 (the caller checks). Rows with fewer selectable
    columns than N are padded with id -1 and score -inf; NaN and -inf scores are never
    selected. Returns OK, or OUT_OF_MEMORY if scratch memory ran out (rows then keep their
    -1 padding).
    """
    cdef Py_ssize_t n_users = U.shape[0], n_cols = Yt.shape[1], task, row, c0, c_end, e
    cdef int F = U.shape[1], N = out_ids.shape[1], rows, q, k, ldS
    cdef Py_ssize_t n_tasks = (n_users + user_tile - 1) // user_tile
    cdef bint per_row = exclude_indptr.shape[0] > 0
    cdef const unsigned char* blocked_ptr = &blocked[0] if blocked.shape[0] > 0 else NULL
    cdef floating* S
    cdef floating* Ut
    cdef int* counts
    cdef Py_ssize_t* cursor
    cdef int failed = 0
    cdef Status status = OK
    if n_users == 0 or N == 0 or n_cols == 0:
        return status
    ldS = item_tile
    with nogil, parallel(num_threads=num_threads):
        S = <floating*> scratch_malloc(<size_t> user_tile * ldS * sizeof(floating))
        Ut = <floating*> scratch_malloc(<size_t> user_tile * (F + 1) * sizeof(floating))
        counts = <int*> scratch_malloc(user_tile * sizeof(int))
        cursor = <Py_ssize_t*> scratch_malloc(user_tile * sizeof(Py_ssize_t))
        try:
            for task in prange(n_tasks, schedule="dynamic", chunksize=1):
                if S == NULL or Ut == NULL or counts == NULL or cursor == NULL:
                    failed += 1  # a reduction: any thread without scratch reports it
                    continue
                rows = <int> min(user_tile, n_users - task * user_tile)
                memset(Ut, 0, <size_t> user_tile * F * sizeof(floating))
                for q in range(rows):
                    row = task * user_tile + q
                    for k in range(F):
                        Ut[k * user_tile + q] = U[row, k]
                    counts[q] = 0
                    if per_row:
                        cursor[q] = exclude_indptr[row]
                c0 = 0
                while c0 < n_cols:  # (a range() needs a literal step)
                    c_end = min(c0 + item_tile, n_cols)
                    score_tile(Ut, user_tile, (rows + 3) // 4 * 4, &Yt[0, 0], F, n_cols, c0,
                               c_end, S, ldS)
                    for q in range(rows):
                        row = task * user_tile + q
                        if per_row:  # the user's liked items in this tile score -inf
                            e = cursor[q]
                            while e < exclude_indptr[row + 1] and exclude_indices[e] < c_end:
                                S[<Py_ssize_t> q * ldS + exclude_indices[e] - c0] = -INFINITY
                                e = e + 1
                            cursor[q] = e
                        counts[q] = take_tile(S + <Py_ssize_t> q * ldS, c0,
                                              (c_end - c0 + 15) // 16 * 16, N, counts[q],
                                              blocked_ptr, &out_scores[row, 0],
                                              &out_ids[row, 0])
                    c0 = c_end
                for q in range(rows):
                    row = task * user_tile + q
                    sort_best_first(&out_scores[row, 0], &out_ids[row, 0], counts[q])
                    for k in range(counts[q], N):
                        out_ids[row, k] = -1
                        out_scores[row, k] = -INFINITY
        finally:
            free(S)
            free(Ut)
            free(counts)
            free(cursor)
    if failed:
        status = OUT_OF_MEMORY
    return status
