# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Top-K sparse similarity between the rows of two CSR matrices.

For each row i of A (n_a x f) and every row j of B (n_b x f) the kernel forms the dot
product by Gustavson's row-by-row product with B^T (f x n_b, given as CSR `bt_*`):

    dot_ij = sum_u A[i, u] B[j, u] = sum_{u in row i of A} A[i, u] * (row u of B^T)[j]

accumulated into a per-thread dense array `acc` of n_b values, then turned into a similarity

    DOT      s = dot
    SCALED   s = dot * row_scale[i] * col_scale[j]                 (cosine: 1 / norms)
    PEARSON  s = dot * row_scale[i] * col_scale[j] - row_shift[i] * col_shift[j]
    JACCARD  s = dot / (row_count[i] + col_count[j] - dot)          (dot counts shared columns)

and the K best (s, j) of the row are kept by a bounded min-heap (_heap.pxd): larger s
first, equal s by the lower j. Similarities that are exactly 0 are never stored (a sparse
matrix's absent entries are zeros). The row's own column j == i is skipped when `skip_self`
is set.

PEARSON scores are non-zero also for pairs sharing no column (dot = 0): they equal
-row_shift[i] * col_shift[j]. (scale = 1 / |a - mean_a| and shift = sqrt(f) mean_a scale, as
fastals.similarity.row_statistics computes them: the minus sign is Pearson's own.) Those candidates are visited through `walk_up` / `walk_down`,
the columns with col_shift != 0 sorted by increasing / decreasing col_shift (ties by index),
so that the best K of them are found without touching all n_b columns.

Which columns of `acc` a row touched is recorded in `touched` (branch-free: a column is
appended when its accumulator is still zero; a value that cancels back to exactly zero may
be appended twice and is read once, since reading clears it). A row whose work exceeds
`dense_threshold` products, or whose list would overflow, is scanned densely instead. Every
kernel leaves `acc` all-zero, as it must find it. Memory: O(threads x n_b) scratch, nothing
per pair.

Cost: the multiply-adds are sum over rows u of B^T of (stored values of column u of A) x
(stored values of row u of B^T); for item-item that is sum over users of (their items)^2.
Each reads an index and a value of a B^T row (8 bytes in float32) that lies anywhere in
memory, and streaming those rows, not arithmetic nor the accumulator's cache misses, is
what bounds the kernel: the rows are prefetched PREFETCH rows ahead.

Also here: `predict_neighbours` (user-based rating prediction from the same accumulated
similarities), the per-row statistics the similarities need, the TF-IDF / BM25 weights and
the small row/column scalings the Python layer applies before a call.
"""
from cython.parallel cimport parallel, prange, threadid
from libc.math cimport sqrt
from libc.stdint cimport int32_t, int64_t
from libc.string cimport memset

from fastals._kernels._common cimport floating, index_t, prefetch, prefetch_bytes
from fastals._kernels._heap cimport offer, sort_by_id
from fastals._kernels._status cimport INDEX_OUT_OF_RANGE, OK, Status

cdef enum:
    PREFETCH = 8  # rows of B^T fetched ahead of their use
    PREFETCH_LINES = 8  # cache lines of each fetched ahead (the rest stream by themselves)

cdef enum:
    DOT = 0
    SCALED = 1
    PEARSON = 2
    JACCARD = 3

MODES = {"dot": DOT, "scaled": SCALED, "pearson": PEARSON, "jaccard": JACCARD}


# --- accumulation -------------------------------------------------------------------------
cdef inline Py_ssize_t scatter_tracked(floating weight, const index_t* cols, const floating* values,
                                       Py_ssize_t n, floating* acc, index_t* touched,
                                       Py_ssize_t count) noexcept nogil:
    """acc[cols] += weight * values, appending first-touched columns to `touched`."""
    cdef Py_ssize_t q
    cdef index_t j
    if values == NULL:  # binary: every value is 1
        for q in range(n):
            j = cols[q]
            touched[count] = j
            count += acc[j] == 0
            acc[j] += weight
    else:
        for q in range(n):
            j = cols[q]
            touched[count] = j
            count += acc[j] == 0
            acc[j] += weight * values[q]
    return count


cdef inline void scatter_dense(floating weight, const index_t* cols, const floating* values,
                               Py_ssize_t n, floating* acc) noexcept nogil:
    cdef Py_ssize_t q
    if values == NULL:
        for q in range(n):
            acc[cols[q]] += weight
    else:
        for q in range(n):
            acc[cols[q]] += weight * values[q]


cdef inline floating similarity(int mode, floating dot, floating scale, floating shift,
                                floating count, index_t j, const floating* col_scale,
                                const floating* col_shift, const floating* col_count) noexcept nogil:
    """The similarity of (i, j) from their dot product; scale/shift/count belong to row i."""
    if mode == DOT:
        return dot
    if mode == SCALED:
        return dot * scale * col_scale[j]
    if mode == PEARSON:
        return dot * scale * col_scale[j] - shift * col_shift[j]
    return dot / (count + col_count[j] - dot)


cdef inline void prefetch_csr_row(const index_t* indptr, const index_t* indices,
                                  const floating* data, index_t row, bint binary) noexcept nogil:
    """Ask for the first PREFETCH_LINES cache lines of one CSR row, in each array."""
    cdef Py_ssize_t lo = indptr[row], n = indptr[row + 1] - lo
    prefetch_bytes(indices + lo, min(n * sizeof(index_t), PREFETCH_LINES * 64))
    if not binary:
        prefetch_bytes(data + lo, min(n * sizeof(floating), PREFETCH_LINES * 64))


cdef int scan_dense(floating* acc, Py_ssize_t first, Py_ssize_t last, int mode, floating scale,
                    floating shift, floating row_count, const floating* col_scale,
                    const floating* col_shift, const floating* col_count, int K,
                    floating* heap_scores, index_t* heap_ids, int count) noexcept nogil:
    """Offer every non-zero acc[first:last] to the heap and clear it, 16 columns at a time.

    A block is first screened with a vectorisable test (is any score within 1e-5 of the
    heap's worst?); only blocks that pass are offered one by one, with exact arithmetic.
    """
    cdef Py_ssize_t base, end, p
    cdef floating dot, s, threshold
    cdef int hit
    for base in range(first, last, 16):
        end = min(base + 16, last)
        hit = 0
        if count < K:
            for p in range(base, end):
                hit = hit | (acc[p] != 0)
        else:
            threshold = heap_scores[0] - (1e-5 * heap_scores[0] if heap_scores[0] > 0
                                          else -1e-5 * heap_scores[0])
            if mode == DOT:
                for p in range(base, end):
                    hit = hit | (acc[p] >= threshold)
            elif mode == SCALED:
                for p in range(base, end):
                    hit = hit | (acc[p] * scale * col_scale[p] >= threshold)
            else:
                for p in range(base, end):
                    hit = hit | (acc[p] != 0)
        if hit:
            for p in range(base, end):
                dot = acc[p]
                if dot != 0:
                    s = similarity(mode, dot, scale, shift, row_count, <index_t> p,
                                   col_scale, col_shift, col_count)
                    if s != 0 and (count < K or s >= heap_scores[0]):
                        count = offer(heap_scores, heap_ids, count, K, s, <index_t> p)
        for p in range(base, end):
            acc[p] = 0
    return count


cdef Py_ssize_t accumulate(Py_ssize_t start, Py_ssize_t stop, const index_t* a_indices,
                           const floating* a_data, const index_t* bt_indptr,
                           const index_t* bt_indices, const floating* bt_data, Py_ssize_t n_b,
                           bint* dense, floating* acc, index_t* touched) noexcept nogil:
    """acc += sum over p in [start, stop) of a_data[p] * (row a_indices[p] of B^T).

    Returns how many columns were appended to `touched`; sets dense[0] when the list would
    overflow (then `touched` is incomplete and the caller scans acc whole). The rows of B^T
    visited lie anywhere in memory, and streaming them is what the kernel waits for: their
    first cache lines are prefetched PREFETCH rows ahead (their indptr entries twice as far).
    """
    cdef Py_ssize_t p, lo, hi, n_touched = 0
    cdef index_t u
    cdef floating weight
    cdef const floating* values
    cdef bint binary = a_data == NULL
    for p in range(start, min(start + 2 * PREFETCH, stop)):
        prefetch(bt_indptr + a_indices[p])
    for p in range(start, min(start + PREFETCH, stop)):
        prefetch_csr_row(bt_indptr, bt_indices, bt_data, a_indices[p], binary)
    for p in range(start, stop):
        if p + 2 * PREFETCH < stop:
            prefetch(bt_indptr + a_indices[p + 2 * PREFETCH])
        if p + PREFETCH < stop:
            prefetch_csr_row(bt_indptr, bt_indices, bt_data, a_indices[p + PREFETCH],
                             binary)
        u = a_indices[p]
        weight = 1 if binary else a_data[p]
        lo = bt_indptr[u]
        hi = bt_indptr[u + 1]
        values = NULL
        if not binary:
            values = bt_data + lo
        if not dense[0] and n_touched + (hi - lo) > n_b:
            dense[0] = True
        if dense[0]:
            scatter_dense(weight, bt_indices + lo, values, hi - lo, acc)
        else:
            n_touched = scatter_tracked(weight, bt_indices + lo, values, hi - lo, acc, touched,
                                        n_touched)
    return n_touched


cdef void clear(floating* acc, Py_ssize_t n_b, const index_t* touched, Py_ssize_t n_touched,
                bint dense) noexcept nogil:
    cdef Py_ssize_t q
    if dense:
        memset(acc, 0, n_b * sizeof(floating))
    else:
        for q in range(n_touched):
            acc[touched[q]] = 0


cdef int top_k_row(Py_ssize_t i, const index_t* a_indptr, const index_t* a_indices,
                   const floating* a_data, const index_t* bt_indptr, const index_t* bt_indices,
                   const floating* bt_data, Py_ssize_t n_b, int mode, floating scale,
                   floating shift, floating row_count, const floating* col_scale,
                   const floating* col_shift, const floating* col_count, const index_t* walk,
                   Py_ssize_t n_walk, Py_ssize_t self_col, bint dense, int K, floating* acc,
                   index_t* touched, floating* heap_scores, index_t* heap_ids) noexcept nogil:
    """The K best (score, column) pairs of row i, in heap_*, sorted by column.

    The columns a sparse row touches are tracked in `touched`; a dense row (or one whose
    list would overflow) is scanned whole instead. self_col (or -1) is never kept.
    """
    cdef Py_ssize_t q, n_touched, taken
    cdef index_t j
    cdef floating dot, s, last
    cdef int count = 0

    n_touched = accumulate(a_indptr[i], a_indptr[i + 1], a_indices, a_data, bt_indptr,
                           bt_indices, bt_data, n_b, &dense, acc, touched)
    if self_col >= 0:
        acc[self_col] = 0

    # pairs sharing no column (Pearson only): the best K of them, best first along `walk`
    # (scores never increase along the walk; after K, equal scores may still win on the id)
    if walk != NULL:
        taken = 0
        last = 0
        for q in range(n_walk):
            j = walk[q]
            if acc[j] != 0 or j == self_col:
                continue
            s = -shift * col_shift[j]
            if taken >= K and s != last:
                break
            count = offer(heap_scores, heap_ids, count, K, s, j)
            taken += 1
            last = s

    if dense:
        count = scan_dense(acc, 0, n_b, mode, scale, shift, row_count, col_scale, col_shift,
                           col_count, K, heap_scores, heap_ids, count)
    else:
        for q in range(n_touched):
            j = touched[q]
            dot = acc[j]
            if dot != 0:
                acc[j] = 0
                s = similarity(mode, dot, scale, shift, row_count, j, col_scale,
                               col_shift, col_count)
                if s != 0 and (count < K or s >= heap_scores[0]):
                    count = offer(heap_scores, heap_ids, count, K, s, j)
    sort_by_id(heap_scores, heap_ids, count)
    return count


cdef inline const floating* optional(const floating[::1] values) noexcept nogil:
    return &values[0] if values.shape[0] > 0 else NULL


cdef inline const index_t* optional_index(const index_t[::1] values) noexcept nogil:
    return &values[0] if values.shape[0] > 0 else NULL


def top_k_rows(const index_t[::1] rows, tuple a, tuple bt, int mode, bint skip_self,
               tuple row_stats, tuple col_stats, tuple walks, const int64_t[::1] work,
               int64_t dense_threshold, floating[:, ::1] scratch, index_t[:, ::1] scratch_ids,
               index_t[:, ::1] out_ids, floating[:, ::1] out_scores, index_t[::1] out_counts,
               int num_threads):
    """The K = out_ids.shape[1] most similar rows of B for each row of A listed in `rows`.

    a, bt        A and B^T as their CSR arrays (indptr, indices, data); an empty data array
                 means a binary matrix (every stored value is 1)
    mode         DOT, SCALED, PEARSON or JACCARD (module docstring); with `skip_self`, row i
                 is never paired with row i of B
    row_stats    (scale, shift, count) of each row of A, float64; col_stats the same of each
                 row of B, in the float dtype; those the mode does not use may be empty
    walks        (up, down): for PEARSON, the columns with col shift != 0 by increasing and by
                 decreasing shift (ties by index); else empty
    work         row i's number of multiply-adds; rows with at least `dense_threshold` are
                 accumulated and scanned densely
    scratch      per thread (threads x (n_b + K)): the n_b accumulators, all-zero and left
                 so, then the K heap scores; scratch_ids: the touched columns, then the heap ids
    out_*        row i's result: out_ids[i, :out_counts[i]] and out_scores[i, ...], by
                 increasing column
    """
    cdef Py_ssize_t n_rows = rows.shape[0], k, i, n_walk
    cdef int K = out_ids.shape[1], t, c, count
    cdef Py_ssize_t n_b = scratch.shape[1] - K
    cdef const index_t[::1] a_indptr = a[0], a_indices = a[1], bt_indptr = bt[0]
    cdef const index_t[::1] bt_indices = bt[1], walk_up = walks[0], walk_down = walks[1]
    cdef const floating[::1] a_data = a[2], bt_data = bt[2]
    cdef const double[::1] row_scale = row_stats[0], row_shift = row_stats[1]
    cdef const double[::1] row_count = row_stats[2]
    cdef const floating[::1] col_scale = col_stats[0], col_shift = col_stats[1]
    cdef const floating[::1] col_count = col_stats[2]
    cdef const floating* a_values = optional(a_data)
    cdef const floating* bt_values = optional(bt_data)
    cdef const floating* cscale = optional(col_scale)
    cdef const floating* cshift = optional(col_shift)
    cdef const floating* ccount = optional(col_count)
    cdef const index_t* up = optional_index(walk_up)
    cdef const index_t* down = optional_index(walk_down)
    cdef const index_t* walk
    cdef double scale, shift, row_n
    if n_rows == 0 or K == 0 or n_b <= 0:
        return
    with nogil, parallel(num_threads=num_threads):
        for k in prange(n_rows, schedule="dynamic", chunksize=1):
            t = threadid()
            i = rows[k]
            scale = row_scale[i] if row_scale.shape[0] > 0 else 1
            shift = row_shift[i] if row_shift.shape[0] > 0 else 0
            row_n = row_count[i] if row_count.shape[0] > 0 else 0
            walk = NULL
            n_walk = 0
            if mode == PEARSON and shift > 0:  # -shift * col_shift is largest first going up
                walk = up
                n_walk = walk_up.shape[0]
            elif mode == PEARSON and shift < 0:
                walk = down
                n_walk = walk_down.shape[0]
            count = top_k_row(i, &a_indptr[0], &a_indices[0], a_values, &bt_indptr[0],
                              &bt_indices[0], bt_values, n_b, mode, <floating> scale,
                              <floating> shift, <floating> row_n, cscale, cshift, ccount, walk,
                              n_walk, i if skip_self else -1, work[i] >= dense_threshold, K,
                              &scratch[t, 0], &scratch_ids[t, 0], &scratch[t, n_b],
                              &scratch_ids[t, n_b])
            out_counts[i] = count
            for c in range(count):
                out_ids[i, c] = scratch_ids[t, n_b + c]
                out_scores[i, c] = scratch[t, n_b + c]


# --- user-based rating prediction -----------------------------------------------------------
def predict_neighbours(tuple q, tuple rt, tuple pairs, int mode, bint binary,
                       bint mean_centered, tuple q_stats, tuple user_stats, int K,
                       floating[:, ::1] scratch, index_t[:, ::1] scratch_ids, double[::1] out,
                       int64_t[::1] out_neighbours, int num_threads):
    """Ratings of items by query users, from the K most similar users who rated each item.

    q, rt        Q (queries x items: the query users' ratings) and R^T (items x training
                 users: each item's raters) as their CSR arrays (indptr, indices, data)
    pairs        (self_ids, pair_indptr, pair_items): query q is training user self_ids[q]
                 (or -1); its items to predict are pair_items[pair_indptr[q]:pair_indptr[q+1]],
                 and the predictions go to the same positions of `out`
    q_stats      (scale, shift, count, mean, fallback) of each query, float64; user_stats
                 (scale, shift, count) of each training user in the float dtype, and their
                 mean in float64; similarity statistics the mode does not use may be empty
    scratch      per thread (threads x (n_users + K)): the n_users accumulators, all-zero
                 and left so, then the K heap scores; scratch_ids: the touched users, then
                 the heap's positions in R^T

    For each pair the neighbours are the K raters v with the largest similarity s_qv (ties:
    lower v); those with s_qv > 0 vote:

        out = [mu_q] + sum_v s_qv (r_vi - [mu_v]) / sum_v s_qv     ([.] if mean_centered)

    or the query's fallback when none votes; out_neighbours counts the voters. With
    `binary`, the similarity counts shared items (Jaccard) while the votes still use the
    ratings.
    """
    cdef const index_t[::1] q_indptr = q[0], q_indices = q[1], rt_indptr = rt[0]
    cdef const index_t[::1] rt_indices = rt[1], pair_indptr = pairs[1], pair_items = pairs[2]
    cdef const floating[::1] q_data = q[2], rt_data = rt[2]
    cdef const int64_t[::1] self_ids = pairs[0]
    cdef const double[::1] q_scale = q_stats[0], q_shift = q_stats[1], q_count = q_stats[2]
    cdef const double[::1] q_mean = q_stats[3], q_fallback = q_stats[4]
    cdef const floating[::1] col_scale = user_stats[0], col_shift = user_stats[1]
    cdef const floating[::1] col_count = user_stats[2]
    cdef const double[::1] user_mean = user_stats[3]
    cdef Py_ssize_t n_q = q_indptr.shape[0] - 1, n_users = scratch.shape[1] - K
    cdef Py_ssize_t query, pair, p, n_touched
    cdef int t, count, c
    cdef index_t item
    cdef int64_t me
    cdef bint dense
    cdef floating s
    cdef double num, den, vote
    cdef const floating* q_values = NULL
    cdef const floating* rt_values = NULL
    cdef int64_t work
    cdef const floating* cscale = optional(col_scale)
    cdef const floating* cshift = optional(col_shift)
    cdef const floating* ccount = optional(col_count)
    cdef double scale, shift, row_n
    cdef floating* acc
    cdef index_t* touched
    cdef floating* heap_scores
    cdef index_t* heap_ids
    if n_q == 0 or K == 0 or n_users <= 0:
        return
    if not binary:
        q_values = optional(q_data)
        rt_values = optional(rt_data)
    with nogil, parallel(num_threads=num_threads):
        for query in prange(n_q, schedule="dynamic", chunksize=1):
            t = threadid()
            if pair_indptr[query] == pair_indptr[query + 1]:
                continue
            acc = &scratch[t, 0]
            touched = &scratch_ids[t, 0]
            heap_scores = &scratch[t, n_users]
            heap_ids = &scratch_ids[t, n_users]
            work = 0
            for p in range(q_indptr[query], q_indptr[query + 1]):
                work = work + rt_indptr[q_indices[p] + 1] - rt_indptr[q_indices[p]]
            scale = q_scale[query] if q_scale.shape[0] > 0 else 1
            shift = q_shift[query] if q_shift.shape[0] > 0 else 0
            row_n = q_count[query] if q_count.shape[0] > 0 else 0
            me = self_ids[query]
            dense = work * 4 >= n_users
            n_touched = accumulate(q_indptr[query], q_indptr[query + 1], &q_indices[0],
                                   q_values, &rt_indptr[0], &rt_indices[0], rt_values, n_users,
                                   &dense, acc, touched)
            for pair in range(pair_indptr[query], pair_indptr[query + 1]):
                item = pair_items[pair]
                count = 0
                for p in range(rt_indptr[item], rt_indptr[item + 1]):
                    if rt_indices[p] == me:
                        continue
                    s = similarity(mode, acc[rt_indices[p]], <floating> scale,
                                   <floating> shift, <floating> row_n, rt_indices[p], cscale,
                                   cshift, ccount)
                    count = offer(heap_scores, heap_ids, count, K, s, <index_t> p)
                num = 0
                den = 0
                out_neighbours[pair] = 0
                for c in range(count):
                    if heap_scores[c] > 0:
                        p = heap_ids[c]
                        vote = rt_data[p]
                        if mean_centered:
                            vote = vote - user_mean[rt_indices[p]]
                        num = num + heap_scores[c] * vote
                        den = den + heap_scores[c]
                        out_neighbours[pair] += 1
                if den > 0:
                    out[pair] = (q_mean[query] if mean_centered else 0) + num / den
                else:
                    out[pair] = q_fallback[query]
            clear(acc, n_users, touched, n_touched, dense)


# --- per-row statistics, scheduling and output assembly ------------------------------------
def row_work(const index_t[::1] a_indptr, const index_t[::1] a_indices,
             const index_t[::1] bt_indptr, int64_t[::1] out, int num_threads):
    """Per row of A: the number of multiply-adds its product with B^T takes."""
    cdef Py_ssize_t n_rows = a_indptr.shape[0] - 1, i, p
    cdef int64_t work
    cdef index_t u
    with nogil:
        for i in prange(n_rows, schedule="static", num_threads=num_threads):
            work = 0
            for p in range(a_indptr[i], a_indptr[i + 1]):
                u = a_indices[p]
                work = work + (bt_indptr[u + 1] - bt_indptr[u])
            out[i] = work


def row_moments(const index_t[::1] indptr, const floating[::1] data, double[::1] total,
                double[::1] squares, int num_threads):
    """Per row: the sum and the sum of squares of its stored values (in float64)."""
    cdef Py_ssize_t n_rows = indptr.shape[0] - 1, i, p
    cdef double s, s2, v
    with nogil:
        for i in prange(n_rows, schedule="static", num_threads=num_threads):
            s = 0
            s2 = 0
            for p in range(indptr[i], indptr[i + 1]):
                v = data[p]
                s = s + v
                s2 = s2 + v * v
            total[i] = s
            squares[i] = s2


def centred_squares(const index_t[::1] indptr, const floating[::1] data, int64_t n_cols,
                    const double[::1] mean, double[::1] out, int num_threads):
    """Per row: sum over all n_cols entries (stored or zero) of (value - mean[row])^2."""
    cdef Py_ssize_t n_rows = indptr.shape[0] - 1, i, p
    cdef double s, d, m
    with nogil:
        for i in prange(n_rows, schedule="static", num_threads=num_threads):
            m = mean[i]
            s = (n_cols - (indptr[i + 1] - indptr[i])) * m * m
            for p in range(indptr[i], indptr[i + 1]):
                d = data[p] - m
                s = s + d * d
            out[i] = s


def compact(const index_t[:, ::1] ids, const floating[:, ::1] scores, const int64_t[::1] indptr,
            index_t[::1] out_indices, floating[::1] out_data, int num_threads):
    """Copy row i's first indptr[i+1] - indptr[i] pairs to out[indptr[i]:indptr[i+1]]."""
    cdef Py_ssize_t n_rows = ids.shape[0], i, c, start
    with nogil:
        for i in prange(n_rows, schedule="static", num_threads=num_threads):
            start = indptr[i]
            for c in range(indptr[i + 1] - start):
                out_indices[start + c] = ids[i, c]
                out_data[start + c] = scores[i, c]


# --- term weightings ------------------------------------------------------------------------
def weigh(const index_t[::1] indptr, const index_t[::1] indices, const floating[::1] data,
          bint bm25, bint documents_are_rows, const double[::1] idf,
          const double[::1] length_norm, double K1, floating[::1] out, int num_threads):
    """TF-IDF or BM25 weights of the stored values of a CSR, written to `out`.

    Each stored value x sits in one document and one term (documents are the rows, or the
    columns when `documents_are_rows` is false); idf is per term, length_norm per document.

        TF-IDF  w = sqrt(x) idf[term]
        BM25    w = x (K1 + 1) / (K1 length_norm[document] + x) idf[term]
    """
    cdef Py_ssize_t n_rows = indptr.shape[0] - 1, i, p
    cdef index_t col
    cdef double x, norm
    with nogil:
        for i in prange(n_rows, schedule="static", num_threads=num_threads):
            for p in range(indptr[i], indptr[i + 1]):
                x = data[p]
                col = indices[p]
                if bm25:
                    norm = length_norm[i] if documents_are_rows else length_norm[col]
                    x = x * (K1 + 1) / (K1 * norm + x)
                else:
                    x = sqrt(x)
                out[p] = <floating> (x * (idf[col] if documents_are_rows else idf[i]))


def scale_rows(const index_t[::1] indptr, floating[::1] data, const double[::1] factors,
               int num_threads):
    """data[p] *= factors[row of p], in place."""
    cdef Py_ssize_t n_rows = indptr.shape[0] - 1, i, p
    cdef floating f
    with nogil:
        for i in prange(n_rows, schedule="static", num_threads=num_threads):
            f = <floating> factors[i]
            for p in range(indptr[i], indptr[i + 1]):
                data[p] = data[p] * f


def scale_columns(const index_t[::1] indptr, const index_t[::1] indices,
                  const floating[::1] data, const double[::1] factors, floating[::1] out,
                  int num_threads):
    """out[p] = data[p] * factors[column of p] (`out` may be `data`)."""
    cdef Py_ssize_t n_rows = indptr.shape[0] - 1, i, p
    with nogil:
        for i in prange(n_rows, schedule="static", num_threads=num_threads):
            for p in range(indptr[i], indptr[i + 1]):
                out[p] = data[p] * <floating> factors[indices[p]]


def column_counts(const index_t[::1] indices, int64_t[::1] out):
    """out[column] += the number of stored values in that column (serial; no copy of the
    indices, unlike numpy's bincount, which first widens them to int64). Returns OK, or
    INDEX_OUT_OF_RANGE at the first index outside [0, len(out)) (the ones before it are
    counted); fastals._kernels.checked.column_counts names it."""
    cdef Py_ssize_t p, n_cols = out.shape[0]
    cdef Status status = OK
    with nogil:
        for p in range(indices.shape[0]):
            if indices[p] < 0 or indices[p] >= n_cols:
                status = INDEX_OUT_OF_RANGE
                break
            out[indices[p]] += 1
    return status


def column_sums(const index_t[::1] indices, const floating[::1] data, double[::1] out):
    """out[column] += every stored value of that column (serial; out starts at zero)."""
    cdef Py_ssize_t p
    with nogil:
        for p in range(indices.shape[0]):
            out[indices[p]] += data[p]
