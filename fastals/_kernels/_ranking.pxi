# Ranking losses for implicit feedback on the SGD family's stratified sweep: BPR (Rendle et
# al. 2009), WARP (Weston et al. 2011) and logistic MF (Johnson 2014), one sample per
# stored (u, i) pair, with negatives j drawn from the items of the block's item group.
#
# Included by _sgd.pxi (so built per instruction set with it); uses its block scheduler
# (take_ready, block_dependencies), its random streams (stream_state, below) and its lock.
#
# Notation (fastals/reference/__init__.py; reference: fastals/reference/ranking.py):
#   s_ui = x_u . y_i + b_i (+ b_u for LMF),  sigma(t) = 1 / (1 + exp(-t)),
#   lambda_u, lambda_i the per-step L2 weights of the rows (user_reg, item_reg)
# BPR   x_uij = s_ui - s_uj, g = sigma(-x_uij); loss ln(1 + exp(-x_uij))
# WARP  draw j up to max_sampled times until s_uj > s_ui - 1 (the t-th draw), then
#       g = ln(max(1, floor((n_items - 1) / t))); loss g (1 - s_ui + s_uj); no violation: no step
# pairwise step (BPR, WARP), from the values before the step:
#   x_u += lr (g (y_i - y_j) - lambda_u x_u)
#   y_i += lr (g x_u - lambda_i y_i)       b_i += lr (g - lambda_i b_i)
#   y_j += lr (-g x_u - lambda_j y_j)      b_j += lr (-g - lambda_j b_j)
# LMF   one sample is the positive (u, i), confidence c = r_ui, and `negatives` drawn j
#       (c = 0), all scored with the same x_u: for each k of them in turn
#         g_k = c_k - (1 + c_k) sigma(s_uk), loss (1 + c_k) ln(1 + exp(s_uk)) - c_k s_uk
#         y_k += lr (g_k x_u - lambda_k y_k)     b_k += lr (g_k - lambda_k b_k)
#       then once, with the sums over the sample's items of g_k y_k (the y_k of before their
#       steps) and of g_k:
#         x_u += lr (sum g_k y_k - lambda_u x_u)  b_u += lr (sum g_k - lambda_u b_u)
#       (the negatives' scores do not wait for each other's steps on x_u)
# With adagrad, each coordinate's lr is lr / sqrt(A) where A (starting at 1, as LightFM)
# first accumulates the square of that coordinate's step direction (the bracket).
#
# Negatives: uniform over the block's item group (group_items[group_start[h]:...]), or by
# popularity (the item of a uniform stored pair of the block). With `verify`, a liked j (a
# binary search in the user's sorted row of the training CSR) is redrawn, at most
# MAX_NEGATIVE_DRAWS times (then the sample is skipped and counted: never a hang); WARP
# counts a liked draw as one of its max_sampled. The draws of block b come from the stream
# stream_state(seed, b): with the blocks' order fixed by the schedule, the sweep is the
# sequential one for any number of threads, bit for bit.
from libc.math cimport exp, expf, floor, frexp, log, sqrt, sqrtf

from libc.string cimport memset

from fastals._kernels._common cimport dot, prefetch_bytes, prefetch_write

cdef enum:
    LOSS_BPR = 0
    LOSS_WARP = 1
    LOSS_LMF = 2
    MAX_NEGATIVE_DRAWS = 64
    # block statistics: [loss sum, steps taken, samples skipped (no negative found)]
    STAT_LOSS = 0
    STAT_STEPS = 1
    STAT_SKIPPED = 2


cdef struct SoftplusSum:
    # a sum of ln(1 + exp(t)) kept without a logarithm per term: the product of the
    # (1 + exp(t)) of moderate t, renormalised by its binary exponent (in `rest`) before
    # it can overflow, and in `rest` the terms of large t (ln(1 + exp(t)) = t) and of small
    # exp(t) (its series e - e^2 / 2, where 1 + e would round the term away)
    double product
    double rest


cdef inline void softplus_start(SoftplusSum* s) noexcept nogil:
    s.product = 1
    s.rest = 0


cdef inline double softplus_total(const SoftplusSum* s) noexcept nogil:
    return log(s.product) + s.rest


cdef inline floating logistic(floating t, SoftplusSum* s) noexcept nogil:
    """sigma(t), adding ln(1 + exp(t)) to s: one exp in the dtype, and no logarithm."""
    cdef floating e
    cdef double ed
    cdef int exponent
    if t > 30:  # sigma(t) = 1 and ln(1 + exp(t)) = t to the dtype's precision
        s.rest += t
        return 1
    if floating is float:
        e = expf(t)
    else:
        e = exp(t)
    ed = e
    if ed < 1e-6:  # the series is exact to 1e-12 here, where 1 + e would keep 1e-10 of e
        s.rest += ed - 0.5 * ed * ed
    else:
        s.product *= 1 + ed
        if s.product > 1e270:  # renormalised long before overflow (each factor < 2^44)
            s.product = frexp(s.product, &exponent)
            s.rest += exponent * 0.6931471805599453  # ln 2
    return e / (1 + e)


cdef inline floating rate(floating lr, floating direction, floating* accumulator,
                          bint adagrad) noexcept nogil:
    """The step lr * direction, or adagrad's lr * direction / sqrt(A) after A += direction^2."""
    if not adagrad:
        return lr * direction
    accumulator[0] = accumulator[0] + direction * direction
    if floating is float:
        return lr * direction / sqrtf(accumulator[0])
    else:
        return lr * direction / sqrt(accumulator[0])


cdef inline floating root(floating a) noexcept nogil:
    if floating is float:
        return sqrtf(a)
    else:
        return sqrt(a)


cdef inline void pair_step(floating* p, floating* qi, floating* qj, floating* bi, floating* bj,
                           floating* Ap, floating* Aqi, floating* Aqj, floating* Abi,
                           floating* Abj, floating g, floating lr, floating reg_u,
                           floating reg_i, floating reg_j, bint adagrad, bint update_items,
                           floating* scratch, int F) noexcept nogil:
    """The pairwise step (module notation); A* are the adagrad accumulators, scratch F
    values of the thread's. Each case is its own loops without branches, so that the
    compiler vectorises them."""
    cdef int f
    cdef floating xu, yi, yj, du, di, dj
    if not adagrad and update_items:
        for f in range(F):
            xu = p[f]
            yi = qi[f]
            yj = qj[f]
            p[f] = xu + lr * (g * (yi - yj) - reg_u * xu)
            qi[f] = yi + lr * (g * xu - reg_i * yi)
            qj[f] = yj + lr * (-g * xu - reg_j * yj)
    elif not adagrad:
        for f in range(F):
            p[f] = p[f] + lr * (g * (qi[f] - qj[f]) - reg_u * p[f])
    elif update_items and qi == qj:  # (j = i, only without the liked check)
        for f in range(F):
            xu = p[f]
            yi = qi[f]
            yj = qj[f]
            du = g * (yi - yj) - reg_u * xu
            di = g * xu - reg_i * yi
            dj = -g * xu - reg_j * yj
            Ap[f] = Ap[f] + du * du
            Aqi[f] = Aqi[f] + di * di
            Aqj[f] = Aqj[f] + dj * dj
            p[f] = xu + lr * du / root(Ap[f])
            qi[f] = yi + lr * di / root(Aqi[f])
            qj[f] = yj + lr * dj / root(Aqj[f])
    elif update_items:
        # one loop per written row (with the user's direction kept in `scratch` until its
        # row's turn): a loop writing all six rows would need more run-time overlap checks
        # than the compiler makes, and stayed scalar (WARP's default, 4x slower)
        for f in range(F):
            scratch[f] = g * (qi[f] - qj[f]) - reg_u * p[f]
        for f in range(F):
            di = g * p[f] - reg_i * qi[f]
            Aqi[f] = Aqi[f] + di * di
            qi[f] = qi[f] + lr * di / root(Aqi[f])
        for f in range(F):
            dj = -g * p[f] - reg_j * qj[f]
            Aqj[f] = Aqj[f] + dj * dj
            qj[f] = qj[f] + lr * dj / root(Aqj[f])
        for f in range(F):
            du = scratch[f]
            Ap[f] = Ap[f] + du * du
            p[f] = p[f] + lr * du / root(Ap[f])
    else:
        for f in range(F):
            du = g * (qi[f] - qj[f]) - reg_u * p[f]
            Ap[f] = Ap[f] + du * du
            p[f] = p[f] + lr * du / root(Ap[f])
    if update_items:
        du = bi[0]
        dj = bj[0]
        bi[0] = du + rate(lr, g - reg_i * du, Abi, adagrad)
        bj[0] = dj + rate(lr, -g - reg_j * dj, Abj, adagrad)


cdef inline void item_step(const floating* p, floating* q, floating* bq, floating* gradient,
                           floating* Aq, floating* Abq, floating g, floating lr,
                           floating reg_k, bint adagrad, bint update_items,
                           int F) noexcept nogil:
    """LMF: gradient += g y_k (y_k of before), then the step of y_k and b_k."""
    cdef int f
    cdef floating yk, dk
    if not update_items:
        for f in range(F):
            gradient[f] = gradient[f] + g * q[f]
        return
    if not adagrad:
        for f in range(F):
            yk = q[f]
            gradient[f] = gradient[f] + g * yk
            q[f] = yk + lr * (g * p[f] - reg_k * yk)
    else:
        for f in range(F):
            yk = q[f]
            gradient[f] = gradient[f] + g * yk
            dk = g * p[f] - reg_k * yk
            Aq[f] = Aq[f] + dk * dk
            q[f] = yk + lr * dk / root(Aq[f])
    dk = bq[0]
    bq[0] = dk + rate(lr, g - reg_k * dk, Abq, adagrad)


cdef inline void user_step(floating* p, floating* bu, const floating* gradient,
                           floating gradient_b, floating* Ap, floating* Abu, floating lr,
                           floating reg_u, bint adagrad, int F) noexcept nogil:
    """LMF: x_u += lr (sum g_k y_k - lambda_u x_u), b_u likewise."""
    cdef int f
    cdef floating du
    if not adagrad:
        for f in range(F):
            p[f] = p[f] + lr * (gradient[f] - reg_u * p[f])
    else:
        for f in range(F):
            du = gradient[f] - reg_u * p[f]
            Ap[f] = Ap[f] + du * du
            p[f] = p[f] + lr * du / root(Ap[f])
    du = bu[0]
    bu[0] = du + rate(lr, gradient_b - reg_u * du, Abu, adagrad)


cdef inline floating difference_dot(const floating* p, const floating* a, const floating* b,
                                    int F) noexcept nogil:
    """p . (a - b) in one pass."""
    cdef floating total = 0
    cdef int f
    for f in range(F):
        total = total + p[f] * (a[f] - b[f])
    return total


cdef inline bint is_liked(const index_t* row, Py_ssize_t n, index_t item) noexcept nogil:
    """Whether `item` is in the sorted row[0:n]: a binary search without branches on the
    data (the halving steps are conditional moves, so random items cost no mispredictions)."""
    cdef Py_ssize_t half
    if n == 0:
        return False
    while n > 1:
        half = n >> 1
        row = row + half if row[half] <= item else row
        n -= half
    return row[0] == item


# The liked check by a hash set of the block's pairs. In a stratified order a block holds
# every stored pair of its users with the items of its item group, where all of its
# negatives come from, so (u, j) is liked exactly when it is one of the block's pairs: one
# probe of a table the size of the block (in cache), where the binary search of a long row
# is a chain of cache misses. Open addressing with linear probing, at most half full (the
# caller sizes it), keys u << 32 | j (ids below 2^32 - 1, so no key is EMPTY_KEY).
cdef enum:
    EMPTY_KEY = -1  # (as uint64_t: every bit set)


cdef inline uint64_t pair_key(index_t u, index_t j) noexcept nogil:
    return (<uint64_t> u << 32) | <uint64_t> j


cdef inline Py_ssize_t pair_slot(uint64_t key, int shift) noexcept nogil:
    return <Py_ssize_t> ((key * 0x9E3779B97F4A7C15ULL) >> shift)  # Fibonacci hashing


cdef inline void table_fill(uint64_t* table, Py_ssize_t size, int shift, const index_t* users,
                            const index_t* items, Py_ssize_t start, Py_ssize_t stop) noexcept nogil:
    """The block's pairs start .. stop-1 into an emptied table of `size` (a power of 2)."""
    cdef Py_ssize_t t, slot
    cdef uint64_t key
    memset(table, 0xFF, size * sizeof(uint64_t))
    for t in range(start, stop):
        key = pair_key(users[t], items[t])
        slot = pair_slot(key, shift)
        while table[slot] != <uint64_t> EMPTY_KEY and table[slot] != key:
            slot = (slot + 1) & (size - 1)
        table[slot] = key


cdef inline bint table_has(const uint64_t* table, Py_ssize_t size, int shift,
                           uint64_t key) noexcept nogil:
    cdef Py_ssize_t slot = pair_slot(key, shift)
    while table[slot] != key:
        if table[slot] == <uint64_t> EMPTY_KEY:
            return False
        slot = (slot + 1) & (size - 1)
    return True


cdef enum:
    # the rows of the sample this many ahead, and of the negative drawn this many ahead, are
    # prefetched: enough to hide a memory latency behind the samples in between
    AHEAD = 8  # (a power of 2: the ring below wraps by a mask)
    # only when the factor rows outgrow this (about a core's L2): below, the rows stay in
    # cache and the prefetches cost more than they save (MovieLens 100K: 8% slower)
    PREFETCH_ABOVE = 1 << 21


cdef inline void prefetch_bytes_write(const char* start, Py_ssize_t nbytes) noexcept nogil:
    cdef Py_ssize_t offset
    for offset in range(0, nbytes, 64):
        prefetch_write(start + offset)


cdef struct Negatives:
    # the block's stream of negative draws, drawn AHEAD early (in the same order: the
    # sequence taken is the stream's) so that each drawn item's row can be prefetched
    # (the item ids come from `group`, the block's item group, or by popularity from
    # `block_items`, the items of the block's pairs: arguments of the functions below)
    uint64_t state
    Py_ssize_t group_size
    Py_ssize_t block_size
    bint popularity
    const char* rows                # the item rows, row_bytes apart
    Py_ssize_t row_bytes
    int64_t ring[AHEAD]
    int position


cdef inline index_t draw_negative(Negatives* n, const index_t* group,
                                  const index_t* block_items) noexcept nogil:
    cdef index_t j
    if n.popularity:
        j = block_items[below(&n.state, n.block_size)]
    else:
        j = group[below(&n.state, n.group_size)]
    prefetch_bytes_write(n.rows + <Py_ssize_t> j * n.row_bytes, n.row_bytes)
    return j


cdef inline void negatives_start(Negatives* n, const index_t* group,
                                 const index_t* block_items) noexcept nogil:
    cdef int k
    for k in range(AHEAD):
        n.ring[k] = draw_negative(n, group, block_items)
    n.position = 0


cdef inline index_t next_negative(Negatives* n, const index_t* group,
                                  const index_t* block_items) noexcept nogil:
    """The stream's next draw (drawn AHEAD early), replaced in the ring by a new one."""
    cdef index_t j = <index_t> n.ring[n.position]
    n.ring[n.position] = draw_negative(n, group, block_items)
    n.position = (n.position + 1) & (AHEAD - 1)
    return j


cdef struct RankingArgs:
    int loss
    int negatives           # LMF: draws per positive; WARP: max_sampled
    bint verify
    bint popularity
    bint adagrad
    bint update_items
    double n_items          # WARP's rank estimate is over every item
    int F
    bint prefetch           # rows of later samples and draws (PREFETCH_ABOVE)
    Py_ssize_t table_size   # the liked check: a hash set of this size per thread, or (0)
    int table_shift         # the binary search of the user's row; 64 - log2(table_size)


cdef inline bint liked_by(const RankingArgs* a, const uint64_t* table, index_t u,
                          const index_t* row, Py_ssize_t n, index_t j) noexcept nogil:
    """Whether user u (whose sorted row is row[0:n]) liked j: the table if there is one."""
    if a.table_size:
        return table_has(table, a.table_size, a.table_shift, pair_key(u, j))
    return is_liked(row, n, j)


cdef void ranking_run(RankingArgs* a, const index_t* users, const index_t* items,
                      const floating* weights, Py_ssize_t start, Py_ssize_t stop,
                      const index_t* indptr, const index_t* indices, const index_t* group,
                      Py_ssize_t group_size, floating* P, floating* Q, floating* user_bias,
                      floating* item_bias, floating* AP, floating* AQ, floating* Abu,
                      floating* Abi, const floating* user_reg, const floating* item_reg,
                      floating lr, uint64_t state, floating* gradient, uint64_t* table,
                      double* stats) noexcept nogil:
    """The samples start .. stop-1 of one block, in order, drawing from `state`;
    `gradient` is the thread's scratch row (LMF), `table` its liked-pairs table."""
    cdef Py_ssize_t t, n_liked, draws, ui, ii, ji
    cdef index_t u, i, j
    cdef const index_t* liked
    cdef floating* p
    cdef floating s_ui, s_uj, g, c, gradient_b
    cdef double loss = 0, steps = 0, skipped = 0
    cdef SoftplusSum softplus, positive
    cdef int F = a.F, k, f
    cdef bint found
    cdef Negatives negatives
    cdef Py_ssize_t row_bytes = F * sizeof(floating), ahead
    negatives.state, negatives.group_size, negatives.block_size = state, group_size, stop - start
    negatives.popularity, negatives.rows = a.popularity, <const char*> Q
    negatives.row_bytes = row_bytes if a.prefetch else 0  # (0: no prefetch)
    negatives_start(&negatives, group, items + start)
    if a.verify and a.table_size:
        table_fill(table, a.table_size, a.table_shift, users, items, start, stop)
    softplus_start(&softplus)  # BPR's and LMF's negatives' terms; WARP's and the rest in loss
    for t in range(start, stop):
        if a.prefetch and t + AHEAD < stop:  # the rows the sample AHEAD on uses
            ahead = t + AHEAD
            prefetch_bytes_write(<const char*> (P + <Py_ssize_t> users[ahead] * F), row_bytes)
            prefetch_bytes_write(<const char*> (Q + <Py_ssize_t> items[ahead] * F), row_bytes)
            if a.verify and not a.table_size:
                prefetch_bytes(indices + indptr[users[ahead]], min(
                    256, (indptr[users[ahead] + 1] - indptr[users[ahead]]) * sizeof(index_t)))
        u = users[t]
        i = items[t]
        liked = indices + indptr[u]
        n_liked = indptr[u + 1] - indptr[u]
        ui = <Py_ssize_t> u * F
        ii = <Py_ssize_t> i * F
        p = P + ui
        if a.loss == LOSS_BPR:
            found = False
            for draws in range(MAX_NEGATIVE_DRAWS):
                j = next_negative(&negatives, group, items + start)
                if not a.verify or not liked_by(a, table, u, liked, n_liked, j):
                    found = True
                    break
            if not found:
                skipped += 1
                continue
            ji = <Py_ssize_t> j * F
            s_uj = difference_dot(p, Q + ji, Q + ii, F) + item_bias[j] - item_bias[i]
            g = logistic(s_uj, &softplus)  # s_uj here is s_uj - s_ui = -x_uij
            pair_step(p, Q + ii, Q + ji, item_bias + i, item_bias + j, AP + ui, AQ + ii,
                      AQ + ji, Abi + i, Abi + j, g, lr, user_reg[u], item_reg[i], item_reg[j],
                      a.adagrad, a.update_items, gradient, F)
            steps += 1
        elif a.loss == LOSS_WARP:
            s_ui = dot(p, Q + ii, F) + item_bias[i]
            for draws in range(1, a.negatives + 1):
                j = next_negative(&negatives, group, items + start)
                ji = <Py_ssize_t> j * F
                s_uj = dot(p, Q + ji, F) + item_bias[j]
                if s_uj > s_ui - 1:
                    if a.verify and liked_by(a, table, u, liked, n_liked, j):
                        continue
                    g = <floating> log(max(1.0, floor((a.n_items - 1) / draws)))
                    loss += g * (1 - s_ui + s_uj)
                    pair_step(p, Q + ii, Q + ji, item_bias + i, item_bias + j, AP + ui,
                              AQ + ii, AQ + ji, Abi + i, Abi + j, g, lr, user_reg[u],
                              item_reg[i], item_reg[j], a.adagrad, a.update_items, gradient,
                              F)
                    steps += 1
                    break
        else:  # LOSS_LMF
            for f in range(F):
                gradient[f] = 0
            c = weights[t]
            s_ui = dot(p, Q + ii, F) + user_bias[u] + item_bias[i]
            softplus_start(&positive)
            g = c - (1 + c) * logistic(s_ui, &positive)
            loss += (1 + c) * softplus_total(&positive) - c * s_ui
            gradient_b = g
            item_step(p, Q + ii, item_bias + i, gradient, AQ + ii, Abi + i, g, lr, item_reg[i],
                      a.adagrad, a.update_items, F)
            for k in range(a.negatives):
                found = False
                for draws in range(MAX_NEGATIVE_DRAWS):
                    j = next_negative(&negatives, group, items + start)
                    if not a.verify or not liked_by(a, table, u, liked, n_liked, j):
                        found = True
                        break
                if not found:
                    skipped += 1
                    continue
                ji = <Py_ssize_t> j * F
                g = -logistic(dot(p, Q + ji, F) + user_bias[u] + item_bias[j], &softplus)
                gradient_b = gradient_b + g
                item_step(p, Q + ji, item_bias + j, gradient, AQ + ji, Abi + j, g, lr,
                          item_reg[j], a.adagrad, a.update_items, F)
            user_step(p, user_bias + u, gradient, gradient_b, AP + ui, Abu + u, lr, user_reg[u],
                      a.adagrad, F)
            steps += 1
    stats[STAT_LOSS] = loss + softplus_total(&softplus)
    stats[STAT_STEPS] = steps
    stats[STAT_SKIPPED] = skipped


def ranking_epoch(int loss, const index_t[::1] users, const index_t[::1] items,
                  const floating[::1] weights, const index_t[::1] indptr,
                  const index_t[::1] indices, const index_t[::1] group_items,
                  const int64_t[::1] group_start, floating[:, ::1] P, floating[:, ::1] Q,
                  floating[::1] user_bias, floating[::1] item_bias, floating[:, ::1] AP,
                  floating[:, ::1] AQ, floating[::1] Abu, floating[::1] Abi,
                  const floating[::1] user_reg, const floating[::1] item_reg,
                  floating learning_rate, bint adagrad, int negatives, bint verify,
                  bint popularity, bint update_items, Py_ssize_t n_items,
                  const int64_t[::1] block_start, const int64_t[::1] schedule, uint64_t seed,
                  int num_threads, floating[:, ::1] scratch, uint64_t[:, ::1] liked_table,
                  double[:, ::1] block_stats):
    """One pass of the loss's samples (module notation) over the stored pairs.

    The pairs are stored block by block (`block_start`, G * G + 1 offsets, block b = user
    group b // G, item group b % G) and visited in `schedule` order, blocks in parallel as
    their predecessors finish. Negatives of block b come from item group b % G
    (`group_items[group_start[h]:group_start[h + 1]]`) and the stream (seed, b).
    Updates P, Q, the biases (and with adagrad the accumulators A*) in place; writes
    [loss sum, steps, skipped samples] of schedule position k to block_stats[k]; thread t
    uses scratch[t] (num_threads x F) and, when liked_table has columns (a power of 2, at
    least twice the largest block's pairs), liked_table[t] as the hash set of its block's
    pairs for the liked check (see table_fill), else the binary search of indptr/indices.
    The arrays are trusted: fastals._kernels.checked.ranking_epoch checks them first.
    """
    cdef Py_ssize_t G, k, block, h, n_blocks = schedule.shape[0]
    cdef RankingArgs a
    cdef int64_t[::1] pending, next_user, next_item, progress
    cdef signed char[::1] taken
    cdef fastals_lock_t lock
    cdef int tid
    cdef uint64_t* tables = NULL
    if users.shape[0] == 0 or n_blocks == 0:
        return
    a.prefetch = (P.shape[0] + Q.shape[0]) * P.shape[1] * sizeof(floating) > PREFETCH_ABOVE
    a.table_size, a.table_shift = liked_table.shape[1], 64
    if a.table_size:
        tables = &liked_table[0, 0]
        while (<Py_ssize_t> 1 << (64 - a.table_shift)) < a.table_size:
            a.table_shift -= 1
    G = <Py_ssize_t> (n_blocks ** 0.5 + 0.5)
    a.loss, a.negatives, a.verify, a.popularity = loss, negatives, verify, popularity
    a.adagrad, a.update_items, a.n_items, a.F = adagrad, update_items, n_items, P.shape[1]
    pending, next_user, next_item = block_dependencies(schedule, G)
    taken = np.zeros(n_blocks, dtype=np.int8)
    progress = np.zeros(2, dtype=np.int64)  # [blocks done, lowest position not yet taken]
    fastals_lock_init(&lock)
    with nogil, parallel(num_threads=num_threads):
        tid = threadid()
        while True:
            fastals_lock(&lock)
            if progress[0] == n_blocks:
                fastals_unlock(&lock)
                break
            k = take_ready(pending, taken, progress, schedule, G, tid, num_threads)
            fastals_unlock(&lock)
            if k < 0:
                fastals_yield()  # every remaining block waits on one that is running
                continue
            block = schedule[k]
            h = block % G
            if block_start[block + 1] > block_start[block]:
                ranking_run(&a, &users[0], &items[0], &weights[0], block_start[block],
                            block_start[block + 1], &indptr[0], &indices[0],
                            &group_items[group_start[h]], group_start[h + 1] - group_start[h],
                            &P[0, 0], &Q[0, 0], &user_bias[0], &item_bias[0], &AP[0, 0],
                            &AQ[0, 0], &Abu[0], &Abi[0], &user_reg[0], &item_reg[0],
                            learning_rate, stream_state(seed, block), &scratch[tid, 0],
                            tables + tid * a.table_size, &block_stats[k, 0])
            fastals_lock(&lock)  # (taking and releasing the lock orders the factor writes)
            progress[0] += 1
            if next_user[k] >= 0:
                pending[next_user[k]] -= 1
            if next_item[k] >= 0:
                pending[next_item[k]] -= 1
            fastals_unlock(&lock)
    fastals_lock_destroy(&lock)
