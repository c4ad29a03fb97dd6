# Stochastic gradient descent for explicit ratings (Funk 2006; biased form of Koren 2009),
# swept lock-free over the ratings by every thread at once (Hogwild, Niu et al. 2011).
#
# Included by _sgd_generic.pyx, _sgd_avx2.pyx and _sgd_avx512.pyx (one build per
# instruction set; fastals._kernels.dispatch picks one).
#
# Notation (one rating r_ui, in the order the COO arrays hold them):
#   prediction  r^_ui = mu + b_u + b_i + p_u . q_i        (mu, b_u, b_i are 0 without biases)
#   error       e_ui  = r_ui - r^_ui
#   updates     b_u  += lr_b (2 e_ui - beta_b b_u)
#               b_i  += lr_b (2 e_ui - beta_b b_i)
#               p_u  += lr   (2 e_ui q_i - beta p_u)    (with the q_i of before this update)
#               q_i  += lr   (2 e_ui p_u - beta q_i)    (with the p_u of before this update)
# i.e. one gradient step on e_ui^2 + beta/2 (|p_u|^2 + |q_i|^2) + beta_b/2 (b_u^2 + b_i^2).
# With one thread the ratings are visited exactly in array order, so a run is reproducible
# and matches fastals.reference.explicit.sgd_epoch update for update. With more threads,
# each takes successive runs of CHUNK ratings of the (shuffled) arrays and updates the shared
# factors without locks; collisions are rare on sparse data and do not hurt convergence.
from cython.parallel cimport prange
from libc.stdint cimport int64_t, uint64_t

import numpy as np

from fastals._kernels._common cimport dot, floating, index_t, prefetch_row

cdef enum:
    # ratings ahead of the current one whose factor rows are prefetched
    PREFETCH_DISTANCE = 8
    # ratings a thread takes at a time (dynamic schedule: a thread slowed down by another
    # process on its core does not hold up the others)
    CHUNK = 8192


cdef inline void update_factors(floating* p, floating* q, floating two_error, floating lr,
                                floating beta, int K) noexcept nogil:
    """p += lr (2 e q - beta p) and q += lr (2 e p - beta q), both from the old p and q."""
    cdef int f
    cdef floating p_f, q_f
    for f in range(K):
        p_f = p[f]
        q_f = q[f]
        p[f] = p_f + lr * (two_error * q_f - beta * p_f)
        q[f] = q_f + lr * (two_error * p_f - beta * q_f)


def sgd_epoch(const index_t[::1] users, const index_t[::1] items, const floating[::1] ratings,
              floating[:, ::1] P, floating[:, ::1] Q, floating[::1] user_bias,
              floating[::1] item_bias, floating mu, floating learning_rate,
              floating bias_learning_rate, floating regularization,
              floating bias_regularization, bint biases, int num_threads):
    """One pass of the updates (module notation) over the ratings in array order.

    Updates P, Q (and the biases if `biases`) in place. Returns the sum over the ratings of
    e_ui^2 measured just before each update (the running training error of the epoch).
    """
    cdef Py_ssize_t n = users.shape[0], t, ahead
    cdef int K = P.shape[1]
    cdef floating* p
    cdef floating* q
    cdef floating error, two_error, b_u, b_i
    cdef index_t u, i
    cdef double total = 0
    with nogil:
        for t in prange(n, num_threads=num_threads, schedule="dynamic", chunksize=CHUNK):
            ahead = t + PREFETCH_DISTANCE
            if ahead < n:
                prefetch_row(&P[0, 0] + <Py_ssize_t> users[ahead] * K, K)
                prefetch_row(&Q[0, 0] + <Py_ssize_t> items[ahead] * K, K)
            u = users[t]
            i = items[t]
            p = &P[0, 0] + <Py_ssize_t> u * K
            q = &Q[0, 0] + <Py_ssize_t> i * K
            if biases:
                b_u = user_bias[u]
                b_i = item_bias[i]
                error = ratings[t] - (mu + b_u + b_i + dot(p, q, K))
            else:
                error = ratings[t] - dot(p, q, K)
            # 2 e, exactly, in the kernel's precision (a literal 2.0 would promote to double)
            two_error = error + error
            if biases:
                user_bias[u] = b_u + bias_learning_rate * (two_error - bias_regularization * b_u)
                item_bias[i] = b_i + bias_learning_rate * (two_error - bias_regularization * b_i)
            total += <double> error * error
            update_factors(p, q, two_error, learning_rate, regularization, K)
    return total


# --- shuffling --------------------------------------------------------------------------------
# A uniform random permutation of the ratings, computed in parallel yet identical for any
# number of threads (Rao-Sandelius / Sanders 1998): every rating draws one of B buckets at
# random, the ratings are scattered bucket by bucket, then each bucket (small enough to stay
# in cache) is Fisher-Yates shuffled. The draws come from counter-based splitmix64 streams
# keyed by (seed, chunk) and (seed, bucket), so the result depends only on seed and length.

cdef enum:
    BUCKET_SIZE = 1 << 16   # ratings per bucket, on average
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


def shuffle_ratings(const index_t[::1] users, const index_t[::1] items,
                    const floating[::1] ratings, index_t[::1] out_users, index_t[::1] out_items,
                    floating[::1] out_ratings, uint64_t seed, int num_threads):
    """Write a uniform random permutation of the (user, item, rating) triples into out_*.

    The permutation depends only on `seed` and the number of ratings (not on num_threads).
    """
    cdef Py_ssize_t n = users.shape[0]
    cdef Py_ssize_t n_buckets = max(1, (n + BUCKET_SIZE - 1) // BUCKET_SIZE)
    cdef Py_ssize_t n_chunks = min(<Py_ssize_t> MAX_CHUNKS, n_buckets)
    # per-chunk counters; each chunk's row is padded by a cache line so that the threads
    # never write to the same line (false sharing would serialise the passes)
    cdef int64_t[:, ::1] position = np.zeros((n_chunks, n_buckets + 8), dtype=np.int64)
    cdef int64_t[::1] bucket_start = np.zeros(n_buckets + 1, dtype=np.int64)
    cdef Py_ssize_t c, b, t, k, j, lo, hi
    cdef int64_t running
    cdef uint64_t state
    cdef index_t swap_index
    cdef floating swap_rating
    if n == 0:
        return
    with nogil:
        # 1. how many ratings each chunk sends to each bucket
        for c in prange(n_chunks, num_threads=num_threads, schedule="static", chunksize=1):
            state = stream_state(seed, c)
            for t in range(chunk_start(n, n_chunks, c), chunk_start(n, n_chunks, c + 1)):
                position[c, below(&state, n_buckets)] += 1
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
                b = below(&state, n_buckets)
                k = position[c, b]
                position[c, b] = k + 1
                out_users[k] = users[t]
                out_items[k] = items[t]
                out_ratings[k] = ratings[t]
        # 4. Fisher-Yates within each bucket
        for b in prange(n_buckets, num_threads=num_threads, schedule="dynamic", chunksize=1):
            state = stream_state(seed, n_chunks + b)
            lo = bucket_start[b]
            hi = bucket_start[b + 1]
            for k in range(hi - 1, lo, -1):
                j = lo + <Py_ssize_t> below(&state, k - lo + 1)
                swap_index = out_users[k]
                out_users[k] = out_users[j]
                out_users[j] = swap_index
                swap_index = out_items[k]
                out_items[k] = out_items[j]
                out_items[j] = swap_index
                swap_rating = out_ratings[k]
                out_ratings[k] = out_ratings[j]
                out_ratings[j] = swap_rating
