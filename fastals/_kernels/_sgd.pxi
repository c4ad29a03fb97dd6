# Stochastic gradient descent for explicit ratings (Funk 2006; biased form of Koren 2009),
# swept lock-free over the ratings by every thread at once.
#
# Included by _sgd_generic.pyx, _sgd_avx2.pyx and _sgd_avx512.pyx (one build per
# instruction set; fastals._kernels.dispatch picks one).
#
# Notation (the symbols of fastals/reference/__init__.py; one rating r_ui, in the order
# the COO arrays hold them):
#   prediction  r^_ui = mu + b_u + b_i + x_u . y_i        (mu, b_u, b_i are 0 without biases)
#   error       e_ui  = r_ui - r^_ui
#   updates     b_u  += lr_b (2 e_ui - beta_b b_u)
#               b_i  += lr_b (2 e_ui - beta_b b_i)
#               x_u  += lr   (2 e_ui y_i - beta x_u)    (with the y_i of before this update)
#               y_i  += lr   (2 e_ui x_u - beta y_i)    (with the x_u of before this update)
# i.e. one gradient step on e_ui^2 + beta/2 (|x_u|^2 + |y_i|^2) + beta_b/2 (b_u^2 + b_i^2),
# where x_u and y_i have F entries (the number of factors).
#
# Two ways to share a sweep between threads:
# * stratified (Gemulla et al. 2011, "DSGD"; Zhuang et al. 2013, "FPSGD"): users and items are
#   split into G groups each; the ratings are stored block by block (block b = user group
#   b // G, item group b % G, each block in shuffled order), and an epoch visits the blocks
#   in the order of a schedule (a permutation of the blocks). Two blocks conflict when they
#   share a user group or an item group; each block waits only for the block before it in
#   the schedule with its user group and the one with its item group. Threads take any block
#   whose two predecessors are done, so conflicting blocks run in schedule order and never
#   at the same time: the result is exactly that of the sequential sweep in schedule order,
#   for any number of threads, without locks on the factors. Schedules made of "diagonals"
#   (G blocks sharing no group) keep G blocks ready at a time, and there is no barrier: a
#   thread descheduled by the operating system holds up only the blocks that depend on its
#   block, not every other thread. Each thread works on 1/G of the users and items at a
#   time (cache-sized when G is chosen from the factor sizes).
# * Hogwild (Niu et al. 2011; G = 1): each thread takes successive runs of CHUNK ratings of
#   the (shuffled) arrays and updates the shared factors without locks; collisions are rare
#   on sparse data and do not hurt convergence, but the result varies from run to run.
# With one thread both visit the ratings exactly in array order, matching
# fastals.reference.explicit.sgd_epoch update for update.
#
# The ranking losses (BPR, WARP, logistic MF) sweep the same blocks: _ranking.pxi, included
# at the end.
from cython.parallel cimport parallel, prange, threadid
from libc.stdint cimport int32_t, int64_t, uint64_t

import numpy as np

from fastals._kernels._common cimport (
    floating,
    index_t,
    prefetch,
    prefetch_row_write,
    sgd_step_f32,
    sgd_step_f64,
)
from fastals._kernels._status cimport INDEX_OUT_OF_RANGE, OK, Status

cdef extern from "sync.h" nogil:
    ctypedef struct fastals_lock_t:
        pass
    void fastals_lock_init(fastals_lock_t* lock)
    void fastals_lock_destroy(fastals_lock_t* lock)
    void fastals_lock(fastals_lock_t* lock)
    void fastals_unlock(fastals_lock_t* lock)
    void fastals_yield()

cdef enum:
    # ratings ahead of the current one whose factor rows are prefetched (for writing): 16
    # measured 1.2x faster sweeps than 8 with read prefetches on the 20M-sized set
    PREFETCH_DISTANCE = 16
    # factors smaller than this stay in cache: prefetching would only cost instructions
    PREFETCH_ABOVE_BYTES = 2 << 20
    # ratings a thread takes at a time (dynamic schedule: a thread slowed down by another
    # process on its core does not hold up the others)
    CHUNK = 8192


cdef inline floating sgd_step(floating rating, floating* p, floating* q, floating* b_u,
                              floating* b_i, floating mu, floating lr, floating lr_b,
                              floating beta, floating beta_b, bint biases,
                              int F) noexcept nogil:
    """The updates (module notation) for one rating; returns its error before the step.

    The factor half is microkernels.h's fastals_sgd_step (rows kept in registers).
    """
    cdef floating error, two_error, bias_u = 0, bias_i = 0, base = rating
    if biases:
        bias_u = b_u[0]
        bias_i = b_i[0]
        base = rating - (mu + bias_u + bias_i)
    if floating is float:
        error = sgd_step_f32(p, q, base, lr, beta, F, &two_error)
    else:
        error = sgd_step_f64(p, q, base, lr, beta, F, &two_error)
    if biases:
        b_u[0] = bias_u + lr_b * (two_error - beta_b * bias_u)
        b_i[0] = bias_i + lr_b * (two_error - beta_b * bias_i)
    return error


cdef inline double sgd_run(const index_t* users, const index_t* items, const floating* ratings,
                           Py_ssize_t start, Py_ssize_t stop, floating* P, floating* Q,
                           floating* user_bias, floating* item_bias, floating mu, floating lr,
                           floating lr_b, floating beta, floating beta_b, bint biases,
                           int F, bint prefetch) noexcept nogil:
    """The steps for ratings start .. stop-1 in order; returns the sum of their e^2."""
    cdef Py_ssize_t t, ahead
    cdef index_t u, i
    cdef floating error
    cdef double total = 0
    for t in range(start, stop):
        ahead = t + PREFETCH_DISTANCE
        if prefetch and ahead < stop:
            prefetch_row_write(P + <Py_ssize_t> users[ahead] * F, F)
            prefetch_row_write(Q + <Py_ssize_t> items[ahead] * F, F)
        u = users[t]
        i = items[t]
        error = sgd_step(ratings[t], P + <Py_ssize_t> u * F, Q + <Py_ssize_t> i * F,
                         user_bias + u, item_bias + i, mu, lr, lr_b, beta, beta_b, biases, F)
        total += <double> error * error
    return total


def sgd_epoch(const index_t[::1] users, const index_t[::1] items, const floating[::1] ratings,
              floating[:, ::1] P, floating[:, ::1] Q, floating[::1] user_bias,
              floating[::1] item_bias, floating mu, floating learning_rate,
              floating bias_learning_rate, floating regularization,
              floating bias_regularization, bint biases, int num_threads,
              const int64_t[::1] block_start=None, const int64_t[::1] schedule=None):
    """One pass of the updates (module notation) over the ratings.

    Without blocks: Hogwild over the ratings in array order. With `block_start` (the G * G + 1
    offsets of the blocks, see `order_ratings`) and `schedule` (the G * G block numbers in
    visiting order): blocks in parallel as their predecessors finish; the result equals the
    sequential sweep of the blocks in schedule order.

    Updates P, Q (and the biases if `biases`) in place. Returns the sum over the ratings of
    e_ui^2 measured just before each update (the running training error of the epoch).
    The arrays are trusted: fastals._kernels.checked.sgd_epoch checks them first.
    """
    cdef Py_ssize_t n = users.shape[0], t, G = 0, k, block, n_blocks
    cdef int F = P.shape[1]
    cdef double total = 0
    cdef bint prefetch = (P.shape[0] + Q.shape[0]) * F * sizeof(floating) > PREFETCH_ABOVE_BYTES
    cdef double[::1] block_error
    cdef int64_t[::1] pending, next_user, next_item, progress
    cdef signed char[::1] taken
    cdef fastals_lock_t lock
    cdef int tid
    if n == 0:
        return 0.0
    if block_start is not None:  # G * G blocks
        G = <Py_ssize_t> ((block_start.shape[0] - 1) ** 0.5 + 0.5)
    if G <= 1:
        with nogil:
            for t in prange(0, n, CHUNK, num_threads=num_threads, schedule="dynamic"):
                total += sgd_run(&users[0], &items[0], &ratings[0], t, min(t + CHUNK, n),
                                 &P[0, 0], &Q[0, 0], &user_bias[0], &item_bias[0], mu,
                                 learning_rate, bias_learning_rate, regularization,
                                 bias_regularization, biases, F, prefetch)
        return total
    n_blocks = G * G
    pending, next_user, next_item = block_dependencies(schedule, G)
    taken = np.zeros(n_blocks, dtype=np.int8)
    progress = np.zeros(2, dtype=np.int64)  # [blocks done, lowest position not yet taken]
    block_error = np.zeros(n_blocks, dtype=np.float64)  # by position: a fixed summation order
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
            block_error[k] = sgd_run(
                &users[0], &items[0], &ratings[0], block_start[block], block_start[block + 1],
                &P[0, 0], &Q[0, 0], &user_bias[0], &item_bias[0], mu, learning_rate,
                bias_learning_rate, regularization, bias_regularization, biases, F, prefetch)
            fastals_lock(&lock)  # (taking and releasing the lock orders the factor writes)
            progress[0] += 1
            if next_user[k] >= 0:
                pending[next_user[k]] -= 1
            if next_item[k] >= 0:
                pending[next_item[k]] -= 1
            fastals_unlock(&lock)
    fastals_lock_destroy(&lock)
    for k in range(n_blocks):
        total += block_error[k]
    return total


cdef Py_ssize_t take_ready(int64_t[::1] pending, signed char[::1] taken,
                           int64_t[::1] progress, const int64_t[::1] schedule, Py_ssize_t G,
                           int tid, int num_threads) noexcept nogil:
    """The first schedule position whose predecessors are done and which nobody has taken
    (marked taken), or -1; preferably one of thread `tid`'s user groups (those equal to tid
    modulo num_threads), so that a user group's factor rows stay in one core's cache.
    progress[1] is the lowest position not yet taken. (Which thread runs a block never
    changes the result: the dependencies fix the order of every conflicting pair.)"""
    cdef Py_ssize_t k, first = -1, n_blocks = pending.shape[0]
    while progress[1] < n_blocks and taken[progress[1]]:
        progress[1] += 1
    for k in range(progress[1], n_blocks):
        if first >= 0 and k - first > G:  # look one diagonal past the first ready block
            break
        if not taken[k] and pending[k] == 0:
            if (schedule[k] // G) % num_threads == tid:
                first = k
                break
            if first < 0:
                first = k
    if first >= 0:
        taken[first] = 1
    return first


def block_dependencies(const int64_t[::1] schedule, Py_ssize_t G):
    """For each schedule position k: how many predecessors it waits for (the previous
    position with its user group, the previous with its item group), and the next position
    with its user group and with its item group (-1: none)."""
    cdef Py_ssize_t k, n_blocks = schedule.shape[0], user_group, item_group
    pending_array = np.zeros(n_blocks, dtype=np.int64)
    next_user_array = np.full(n_blocks, -1, dtype=np.int64)
    next_item_array = np.full(n_blocks, -1, dtype=np.int64)
    cdef int64_t[::1] pending = pending_array, next_user = next_user_array
    cdef int64_t[::1] next_item = next_item_array
    cdef int64_t[::1] last_user = np.full(G, -1, dtype=np.int64)
    cdef int64_t[::1] last_item = np.full(G, -1, dtype=np.int64)
    for k in range(n_blocks):
        user_group = schedule[k] // G
        item_group = schedule[k] % G
        if last_user[user_group] >= 0:
            next_user[last_user[user_group]] = k
            pending[k] += 1
        if last_item[item_group] >= 0:
            next_item[last_item[item_group]] = k
            pending[k] += 1
        last_user[user_group] = k
        last_item[item_group] = k
    return pending_array, next_user_array, next_item_array


# --- orders ---------------------------------------------------------------------------------
# A random order of the ratings, computed in parallel yet identical for any number of threads
# (Rao-Sandelius / Sanders 1998): every rating is assigned a bucket, the ratings are scattered
# bucket by bucket, then each bucket is Fisher-Yates shuffled. For a uniform permutation the
# buckets are drawn at random (small enough to shuffle in cache); for the stratified order the
# bucket of a rating is its block (user group * G + item group, module notation), and later
# epochs reshuffle each block in place (`shuffle_blocks`). The draws come from
# counter-based splitmix64 streams keyed by (seed, chunk) and (seed, bucket), so the result
# depends only on the seed, the inputs and the groups.

cdef enum:
    BUCKET_SIZE = 1 << 16   # ratings per bucket of a uniform shuffle, on average
    MAX_CHUNKS = 256        # parallel pieces of the scatter passes

cdef inline uint64_t splitmix64(uint64_t* state) noexcept nogil:
    cdef uint64_t z
    state[0] += 0x9E3779B97F4A7C15ULL  # the golden gamma
    z = state[0]
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL
    return z ^ (z >> 31)


cdef inline uint64_t stream_state(uint64_t seed, uint64_t stream) noexcept nogil:
    """A well-mixed starting state for stream `stream` of `seed`."""
    cdef uint64_t state = seed ^ (stream * 0xD1B54A32D192ED03ULL)
    splitmix64(&state)
    return state


cdef inline uint64_t below(uint64_t* state, uint64_t bound) noexcept nogil:
    """A random integer in [0, bound) for bound < 2^32 (multiply-shift, Lemire 2019)."""
    return ((splitmix64(state) >> 32) * bound) >> 32


cdef inline Py_ssize_t chunk_start(Py_ssize_t n, Py_ssize_t chunks, Py_ssize_t c) noexcept nogil:
    """Start of chunk c of `chunks` near-equal chunks of range(n)."""
    return (n // chunks) * c + min(c, n % chunks)


cdef inline Py_ssize_t bucket_of(uint64_t* state, Py_ssize_t n_buckets, index_t user,
                                 index_t item, const int32_t* user_group,
                                 const int32_t* item_group, Py_ssize_t G) noexcept nogil:
    """A random bucket (G == 0), or the block of (user, item)."""
    if G == 0:
        return below(state, n_buckets)
    return <Py_ssize_t> user_group[user] * G + item_group[item]


def order_ratings(const index_t[::1] users, const index_t[::1] items,
                  const floating[::1] ratings, index_t[::1] out_users, index_t[::1] out_items,
                  floating[::1] out_ratings, uint64_t seed, int num_threads,
                  const int32_t[::1] user_group=None, const int32_t[::1] item_group=None,
                  int strata=0):
    """Write a random order of the (user, item, rating) triples into out_*.

    Without groups: a uniform random permutation. With `user_group` / `item_group` (values in
    [0, strata)): the ratings block by block (block user group * strata + item group), each
    block shuffled uniformly. Returns the strata * strata + 1 block offsets (int64), or None without groups.
    The order depends only on the seed, the triples and the groups (not on num_threads).
    The groups are trusted: fastals._kernels.checked.order_ratings checks them first.
    """
    cdef Py_ssize_t n = users.shape[0], G = 0
    cdef Py_ssize_t n_buckets, n_chunks
    cdef int64_t[:, ::1] position
    cdef int64_t[::1] bucket_start
    cdef Py_ssize_t c, b, t, k
    cdef int64_t running
    cdef uint64_t state
    cdef const int32_t* ug = NULL
    cdef const int32_t* ig = NULL
    if user_group is not None:
        G = strata
        n_buckets = G * G
        if user_group.shape[0]:
            ug = &user_group[0]
        if item_group.shape[0]:
            ig = &item_group[0]
    else:
        n_buckets = max(1, (n + BUCKET_SIZE - 1) // BUCKET_SIZE)
    n_chunks = max(1, min(<Py_ssize_t> MAX_CHUNKS, (n + BUCKET_SIZE - 1) // BUCKET_SIZE))
    # per-chunk counters; each chunk's row is padded by a cache line so that the threads
    # never write to the same line (false sharing would serialise the passes)
    position = np.zeros((n_chunks, n_buckets + 8), dtype=np.int64)
    bucket_start = np.zeros(n_buckets + 1, dtype=np.int64)
    if n == 0:
        return np.asarray(bucket_start) if G else None
    with nogil:
        # 1. how many ratings each chunk sends to each bucket
        for c in prange(n_chunks, num_threads=num_threads, schedule="static", chunksize=1):
            state = stream_state(seed, c)
            for t in range(chunk_start(n, n_chunks, c), chunk_start(n, n_chunks, c + 1)):
                position[c, bucket_of(&state, n_buckets, users[t], items[t], ug, ig, G)] += 1
        # 2. where each (chunk, bucket) run starts in the output: bucket-major
        running = 0
        for b in range(n_buckets):
            bucket_start[b] = running
            for c in range(n_chunks):
                k = position[c, b]
                position[c, b] = running
                running = running + k
        bucket_start[n_buckets] = running
        # 3. scatter, re-drawing the same buckets
        for c in prange(n_chunks, num_threads=num_threads, schedule="static", chunksize=1):
            state = stream_state(seed, c)
            for t in range(chunk_start(n, n_chunks, c), chunk_start(n, n_chunks, c + 1)):
                b = bucket_of(&state, n_buckets, users[t], items[t], ug, ig, G)
                k = position[c, b]
                position[c, b] = k + 1
                out_users[k] = users[t]
                out_items[k] = items[t]
                out_ratings[k] = ratings[t]
    # 4. Fisher-Yates within each bucket
    shuffle_within(out_users, out_items, out_ratings, bucket_start, seed, n_chunks, num_threads)
    return np.asarray(bucket_start) if G else None


def shuffle_blocks(index_t[::1] users, index_t[::1] items, floating[::1] ratings,
                   const int64_t[::1] block_start, uint64_t seed, int num_threads):
    """Shuffle each block users[block_start[b]:block_start[b + 1]] (and items, ratings) in place.

    A new order within the blocks of `order_ratings`, depending only on the seed (the
    offsets are trusted: fastals._kernels.checked.shuffle_blocks checks them first).
    """
    shuffle_within(users, items, ratings, block_start, seed, 0, num_threads)


cdef void shuffle_within(index_t[::1] users, index_t[::1] items, floating[::1] ratings,
                         const int64_t[::1] bucket_start, uint64_t seed, Py_ssize_t stream,
                         int num_threads) noexcept:
    """Fisher-Yates within each bucket, bucket b drawing from stream `stream` + b."""
    cdef Py_ssize_t b, n_buckets = bucket_start.shape[0] - 1
    if users.shape[0] == 0:
        return
    with nogil:
        for b in prange(n_buckets, num_threads=num_threads, schedule="dynamic", chunksize=1):
            shuffle_bucket(&users[0], &items[0], &ratings[0], bucket_start[b],
                           bucket_start[b + 1], stream_state(seed, stream + b))


cdef enum:
    SHUFFLE_AHEAD = 16  # swaps whose random partner is drawn (and prefetched) in advance


cdef inline void shuffle_bucket(index_t* users, index_t* items, floating* ratings,
                                Py_ssize_t lo, Py_ssize_t hi, uint64_t state) noexcept nogil:
    """Fisher-Yates on positions lo..hi-1: for k = hi-1 down to lo+1, swap k with a uniform j in
    [lo, k]. The draws are made SHUFFLE_AHEAD swaps early, in the same sequence, and their
    positions prefetched: the random accesses then overlap instead of waiting in turn."""
    cdef Py_ssize_t partner[SHUFFLE_AHEAD]
    cdef Py_ssize_t step, j, k, steps = hi - lo - 1
    cdef index_t swap_index
    cdef floating swap_rating
    for step in range(min(<Py_ssize_t> SHUFFLE_AHEAD, max(steps, 0))):
        partner[step] = lo + <Py_ssize_t> below(&state, steps + 1 - step)
    for step in range(steps):
        k = hi - 1 - step
        j = partner[step % SHUFFLE_AHEAD]
        if step + SHUFFLE_AHEAD < steps:
            partner[step % SHUFFLE_AHEAD] = lo + <Py_ssize_t> below(
                &state, steps + 1 - step - SHUFFLE_AHEAD)
            prefetch(users + partner[step % SHUFFLE_AHEAD])
            prefetch(items + partner[step % SHUFFLE_AHEAD])
            prefetch(ratings + partner[step % SHUFFLE_AHEAD])
        swap_index = users[k]
        users[k] = users[j]
        users[j] = swap_index
        swap_index = items[k]
        items[k] = items[j]
        items[j] = swap_index
        swap_rating = ratings[k]
        ratings[k] = ratings[j]
        ratings[j] = swap_rating


def check_groups(const index_t[::1] ids, const int32_t[::1] group, Py_ssize_t G):
    """OK if every id is in [0, len(group)) and its group in [0, G) (`order_ratings` scatters
    a rating where its groups say), else INDEX_OUT_OF_RANGE. Reads only."""
    cdef Py_ssize_t t, n = ids.shape[0], size = group.shape[0]
    cdef Status status = OK
    with nogil:
        for t in range(n):
            if ids[t] < 0 or ids[t] >= size or group[ids[t]] < 0 or group[ids[t]] >= G:
                status = INDEX_OUT_OF_RANGE
                break
    return status


include "_ranking.pxi"
