# All-users top-N kernels; built per instruction set from the _retrieval_<isa>.pyx stubs.
"""The N best items of every user, x_u . y_i, without ever holding a users x items matrix.

The users are cut into tiles of `user_tile` rows (one OpenMP task each), packed as groups
of MR users (MR factors side by side per k); the items are cut into blocks of `item_tile`
columns, each packed once per task into panels of PC columns (PC factors side by side per
k) that stay in the core's L2 cache while every group of the task passes over them. The
register-blocked product of panels.h computes a group's MR x PC scores and, in the same
registers, compares each user's scores with the N-th best score that user has so far: only
the users with a score above it (bit r of the returned mask) are read back, their scores
checked against the already-liked items (a cursor into each user's sorted list, moving
forward only) and the blocked ones, and offered to the user's bounded heap (_heap.pxd),
kept in the output row itself. Once the heaps are full almost every panel row costs one
vector compare.

Every score is the same sum, in the same order (k = 0, 1, ...), as in _topn.pxi's
dot_topn, whatever the tile sizes or thread count: the items in whole 16s by the panels
(the sums of fastals_tile_*), the last n_cols mod 16 by the plain loop dot_topn uses; and
each user meets the items in increasing order, the heap breaking ties as there (the lower
item wins), so a user gets exactly what the single-user recommend gives.
"""
from cython.parallel cimport parallel, prange
from libc.math cimport INFINITY
from libc.stdint cimport int64_t
from libc.stdlib cimport free
from libc.string cimport memcpy, memset

from fastals._kernels._common cimport floating, index_t
from fastals._kernels._heap cimport push, replace_worst, sort_best_first
from fastals._kernels._status cimport OK, OUT_OF_MEMORY, Status, scratch_malloc

cdef extern from "panels.h" nogil:
    enum:
        PANEL_ROWS_F32 "FASTALS_PANEL_ROWS_F32"
        PANEL_COLS_F32 "FASTALS_PANEL_COLS_F32"
        PANEL_ROWS_F64 "FASTALS_PANEL_ROWS_F64"
        PANEL_COLS_F64 "FASTALS_PANEL_COLS_F64"
    unsigned panel_f32 "fastals_panel_f32"(float* C, const float* A, const float* B,
                                           Py_ssize_t n, const float* threshold)
    unsigned panel_half_f32 "fastals_panel_half_f32"(float* C, const float* A, const float* B,
                                                     Py_ssize_t n, const float* threshold)
    unsigned panel_f64 "fastals_panel_f64"(double* C, const double* A, const double* B,
                                           Py_ssize_t n, const double* threshold)
    unsigned panel_half_f64 "fastals_panel_half_f64"(double* C, const double* A,
                                                     const double* B, Py_ssize_t n,
                                                     const double* threshold)


cdef inline unsigned panel(floating* C, const floating* A, const floating* B, Py_ssize_t n,
                           const floating* threshold, bint half) noexcept nogil:
    """A group's scores on one panel (or half panel) and the mask of rows above threshold."""
    if floating is float:
        if half:
            return panel_half_f32(C, A, B, n, threshold)
        return panel_f32(C, A, B, n, threshold)
    else:
        if half:
            return panel_half_f64(C, A, B, n, threshold)
        return panel_f64(C, A, B, n, threshold)


def panel_shape(dtype_is_float):
    """(MR, PC) of this build's panels for float32 (True) or float64 (False)."""
    if dtype_is_float:
        return PANEL_ROWS_F32, PANEL_COLS_F32
    return PANEL_ROWS_F64, PANEL_COLS_F64


cdef inline int take_scores(const floating* row, Py_ssize_t width, Py_ssize_t c0, int N,
                            int count, const unsigned char* blocked,
                            const index_t* exclude, Py_ssize_t* cursor, Py_ssize_t end,
                            floating* heap_scores, int64_t* heap_ids,
                            floating* threshold) noexcept nogil:
    """Offer one user's scores of columns c0..c0+width to their heap of `count` pairs;
    returns the new count and keeps *threshold at the score a newcomer must beat. Columns
    arrive in increasing order, so a score equal to the worst kept one never enters (the
    lower column wins ties) and the cursor into the user's sorted exclusions only moves on."""
    cdef Py_ssize_t j, c, e
    cdef floating s, t = threshold[0]
    for j in range(width):
        s = row[j]
        if not s > t:
            continue
        c = c0 + j
        if blocked != NULL and blocked[c]:
            continue
        if exclude != NULL:
            e = cursor[0]
            while e < end and exclude[e] < c:
                e = e + 1
            cursor[0] = e
            if e < end and exclude[e] == c:
                continue
        if count < N:
            count = push(heap_scores, heap_ids, count, s, <int64_t> c)
            if count == N:
                t = heap_scores[0]
        else:
            replace_worst(heap_scores, heap_ids, count, s, <int64_t> c)
            t = heap_scores[0]
    threshold[0] = t
    return count


def dot_topn_tiled(const floating[:, ::1] U, const floating[:, ::1] Yt,
                   const index_t[::1] exclude_indptr, const index_t[::1] exclude_indices,
                   const unsigned char[::1] blocked, int64_t[:, ::1] out_ids,
                   floating[:, ::1] out_scores, int user_tile, int item_tile, int num_threads):
    """The best `out_ids.shape[1]` columns of U @ Yt per row of U, best first.

    U is n_users x F, Yt is F x n_cols (the item factors transposed). `exclude_indptr`
    (n_users + 1 entries, or empty for none) and `exclude_indices` list each row's excluded
    columns, sorted increasing within a row and in [0, n_cols); `blocked` is a byte mask
    over the columns (or empty). `user_tile` must be positive and `item_tile` a positive
    multiple of 16 (the caller checks). Rows with fewer selectable columns than N are
    padded with id -1 and score -inf; NaN and -inf scores are never selected. Returns OK,
    or OUT_OF_MEMORY if scratch memory ran out (rows then keep their -1 padding).
    """
    cdef Py_ssize_t n_users = U.shape[0], n_cols = Yt.shape[1], task, row, c0, cs, c, e
    cdef Py_ssize_t full_end = (n_cols // 16) * 16, block_width, w
    cdef int F = U.shape[1], N = out_ids.shape[1], rows, groups, q, g, r, k
    cdef int MR, PC
    cdef Py_ssize_t n_tasks = (n_users + user_tile - 1) // user_tile, group_size, max_groups
    cdef bint per_row = exclude_indptr.shape[0] > 0
    cdef const unsigned char* blocked_ptr = &blocked[0] if blocked.shape[0] > 0 else NULL
    cdef const index_t* exclude_ptr = NULL
    cdef floating* S
    cdef floating* Up
    cdef floating* Bp
    cdef floating* threshold
    cdef floating total
    cdef int* counts
    cdef Py_ssize_t* cursor
    cdef unsigned mask
    cdef int failed = 0
    cdef Status status = OK
    if n_users == 0 or N == 0 or n_cols == 0:
        return status
    if floating is float:
        MR, PC = PANEL_ROWS_F32, PANEL_COLS_F32
    else:
        MR, PC = PANEL_ROWS_F64, PANEL_COLS_F64
    if per_row and exclude_indices.shape[0] > 0:
        exclude_ptr = &exclude_indices[0]
    group_size = <Py_ssize_t> MR * F
    max_groups = (user_tile + MR - 1) // MR
    with nogil, parallel(num_threads=num_threads):
        S = <floating*> scratch_malloc(<size_t> MR * PC * sizeof(floating))
        Up = <floating*> scratch_malloc(<size_t> (max_groups * group_size + 1) * sizeof(floating))
        Bp = <floating*> scratch_malloc(<size_t> (item_tile * F + 1) * sizeof(floating))
        threshold = <floating*> scratch_malloc(<size_t> max_groups * MR * sizeof(floating))
        counts = <int*> scratch_malloc(user_tile * sizeof(int))
        cursor = <Py_ssize_t*> scratch_malloc(user_tile * sizeof(Py_ssize_t))
        try:
            for task in prange(n_tasks, schedule="dynamic", chunksize=1):
                if (S == NULL or Up == NULL or Bp == NULL or threshold == NULL
                        or counts == NULL or cursor == NULL):
                    failed += 1  # a reduction: any thread without scratch reports it
                    continue
                rows = <int> min(user_tile, n_users - task * user_tile)
                groups = (rows + MR - 1) // MR
                # the task's users, MR per group, F x MR each (padding users are zero and
                # have an unbeatable threshold)
                memset(Up, 0, <size_t> groups * group_size * sizeof(floating))
                for q in range(groups * MR):
                    threshold[q] = INFINITY
                for q in range(rows):
                    row = task * user_tile + q
                    g = q // MR
                    r = q - g * MR
                    for k in range(F):
                        Up[g * group_size + k * MR + r] = U[row, k]
                    threshold[q] = -INFINITY
                    counts[q] = 0
                    if per_row:
                        cursor[q] = exclude_indptr[row]
                c0 = 0
                while c0 < full_end:  # (a range() needs a literal step)
                    block_width = min(<Py_ssize_t> item_tile, full_end - c0)
                    # pack the block: panel by panel, F rows of w columns each
                    cs = 0
                    while cs < block_width:
                        w = min(<Py_ssize_t> PC, block_width - cs)
                        for k in range(F):
                            memcpy(Bp + cs * F + k * w, &Yt[k, c0 + cs], w * sizeof(floating))
                        cs = cs + w
                    cs = 0
                    while cs < block_width:
                        w = min(<Py_ssize_t> PC, block_width - cs)
                        for g in range(groups):
                            mask = panel(S, Up + g * group_size, Bp + cs * F, F,
                                         threshold + g * MR, w < PC)
                            r = 0
                            while mask:
                                if mask & 1:
                                    q = g * MR + r
                                    row = task * user_tile + q
                                    counts[q] = take_scores(
                                        S + r * w, w, c0 + cs, N, counts[q], blocked_ptr,
                                        exclude_ptr, &cursor[q],
                                        exclude_indptr[row + 1] if per_row else 0,
                                        &out_scores[row, 0], &out_ids[row, 0], &threshold[q])
                                mask = mask >> 1
                                r = r + 1
                        cs = cs + w
                    c0 = c0 + block_width
                for q in range(rows):
                    row = task * user_tile + q
                    g = q // MR
                    r = q - g * MR
                    for c in range(full_end, n_cols):  # the last n_cols mod 16, as dot_topn
                        total = 0
                        for k in range(F):
                            total = total + Up[g * group_size + k * MR + r] * Yt[k, c]
                        counts[q] = take_scores(
                            &total, 1, c, N, counts[q], blocked_ptr, exclude_ptr, &cursor[q],
                            exclude_indptr[row + 1] if per_row else 0,
                            &out_scores[row, 0], &out_ids[row, 0], &threshold[q])
                    sort_best_first(&out_scores[row, 0], &out_ids[row, 0], counts[q])
                    for k in range(counts[q], N):
                        out_ids[row, k] = -1
                        out_scores[row, k] = -INFINITY
        finally:
            free(S)
            free(Up)
            free(Bp)
            free(threshold)
            free(counts)
            free(cursor)
    if failed:
        status = OUT_OF_MEMORY
    return status
