# Explicit-feedback ALS kernels (ridge / ALS-WR / non-negative per-row solves) and the
# prediction kernels shared by every explicit-ratings model (ExplicitALS, SGD).
#
# Included by _explicit_generic.pyx, _explicit_avx2.pyx and _explicit_avx512.pyx, which
# differ only in the instruction set they are compiled for (see fastals._kernels.dispatch).
#
# Notation (one row u of the ratings matrix, solved against the fixed other side Y):
#   r_uj       the observed ratings of row u (only these enter; explicit zeros are ratings)
#   n_u        how many ratings row u has
#   mu         global mean (0 without biases)
#   c_j        bias of the other side's row j (0 without biases)
#   z_j        [y_j, 1] with biases, y_j without   (D = K + 1 or K unknowns)
#   t_uj       r_uj - mu - c_j                     (the target the row explains)
#   lambda_u   regularization (times n_u under weighted regularisation, ALS-WR)
#   A_u        sum_j z_j z_j^T + diag(lambda_u, ..., lambda_u, lambda_bias_u)
#   b_u        sum_j t_uj z_j
#   [x_u, b_u] = A_u^{-1} b_u, or with nonnegative=True argmin_{x >= 0} (1/2 w^T A_u w - b_u^T w)
#              over w = [x, bias] (the bias stays free), by cyclic coordinate descent.
# A row without ratings gets x_u = 0 and bias 0. `status[row]` reports failures
# (1: not positive definite, 2: out of memory) for the Python layer to raise.
from cython.parallel cimport parallel, prange
from libc.math cimport fabs
from libc.stdint cimport int64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

from fastals._kernels._common cimport (axpy, cholesky_factor, cholesky_solve, dot, floating,
                                       index_t)

cdef enum:
    OK = 0
    NOT_POSITIVE_DEFINITE = 1
    OUT_OF_MEMORY = 2
    # rank of the blocked update of A_u: four ratings per pass over the triangle
    RANK = 4
    # coordinate-descent sweeps of the non-negative solve before giving up on the tolerance
    MAX_SWEEPS = 1000


cdef inline void rank4_update(floating* A, floating* b, const floating* Z, const floating* t,
                              int D) noexcept nogil:
    """A += sum_s z_s z_s^T (lower triangle) and b += sum_s t_s z_s over the 4 rows z_s of Z.

    Row a is updated up to column a rounded up to a whole 64-byte vector, so the loop has no
    scalar remainder; the few upper-triangle values this also writes are never read.
    """
    cdef const floating* z0 = Z
    cdef const floating* z1 = Z + D
    cdef const floating* z2 = Z + 2 * D
    cdef const floating* z3 = Z + 3 * D
    cdef floating* row
    cdef floating c0, c1, c2, c3
    cdef int a, c, stop
    cdef int width = 64 // sizeof(floating)
    for a in range(D):
        row = A + <Py_ssize_t> a * D
        c0 = z0[a]
        c1 = z1[a]
        c2 = z2[a]
        c3 = z3[a]
        stop = min(D, (a + width) // width * width)
        for c in range(stop):
            row[c] = row[c] + (c0 * z0[c] + c1 * z1[c]) + (c2 * z2[c] + c3 * z3[c])
    for c in range(D):
        b[c] = b[c] + (t[0] * z0[c] + t[1] * z1[c]) + (t[2] * z2[c] + t[3] * z3[c])


cdef void normal_equations(floating* A, floating* b, const floating* Y, const floating* y_bias,
                           const index_t* cols, const floating* ratings, Py_ssize_t n,
                           floating mu, bint biases, int K, floating* Z) noexcept nogil:
    """A = sum_j z_j z_j^T (lower triangle), b = sum_j t_j z_j, without regularisation."""
    cdef int D = K + biases
    cdef Py_ssize_t j
    cdef int s, filled = 0
    cdef floating t[RANK]
    memset(A, 0, <Py_ssize_t> D * D * sizeof(floating))
    memset(b, 0, D * sizeof(floating))
    for j in range(n):
        memcpy(Z + filled * D, Y + <Py_ssize_t> cols[j] * K, K * sizeof(floating))
        t[filled] = ratings[j]
        if biases:
            Z[filled * D + K] = 1
            t[filled] = ratings[j] - mu - y_bias[cols[j]]
        filled += 1
        if filled == RANK:
            rank4_update(A, b, Z, t, D)
            filled = 0
    if filled:
        for s in range(filled, RANK):  # pad the last block with zero rows
            memset(Z + s * D, 0, D * sizeof(floating))
            t[s] = 0
        rank4_update(A, b, Z, t, D)


cdef int nonnegative_solve(floating* A, const floating* b, floating* w, int D, int K,
                           floating tolerance, floating* gradient) noexcept nogil:
    """argmin_{w[:K] >= 0} 1/2 w^T A w - b^T w by cyclic coordinate descent, warm-started from w.

    A is symmetric positive definite with only its lower triangle filled on entry (it is
    mirrored here). Each coordinate step is exact, so the objective never increases.
    """
    cdef int i, k, sweep
    cdef floating old, new, change, largest_change, largest
    for i in range(D):
        for k in range(i):
            A[k * D + i] = A[i * D + k]
        if not A[i * D + i] > 0:
            return NOT_POSITIVE_DEFINITE
    for i in range(K):
        if w[i] < 0:
            w[i] = 0
    for i in range(D):  # gradient = A w - b
        gradient[i] = dot(A + <Py_ssize_t> i * D, w, D) - b[i]
    for sweep in range(MAX_SWEEPS):
        largest_change = 0
        largest = 0
        for k in range(D):
            old = w[k]
            new = old - gradient[k] / A[k * D + k]
            if k < K and new < 0:
                new = 0
            change = new - old
            if change != 0:
                w[k] = new
                axpy(change, A + <Py_ssize_t> k * D, gradient, D)
                largest_change = max(largest_change, fabs(change))
            largest = max(largest, fabs(new))
        if largest_change <= tolerance * largest:
            break
    return OK


cdef int solve_row(floating* x, floating* x_bias, const floating* Y, const floating* y_bias,
                   const index_t* cols, const floating* ratings, Py_ssize_t n,
                   floating mu, floating reg, floating reg_bias, bint weighted, bint biases,
                   bint nonnegative, floating tolerance, int K, floating* scratch) noexcept nogil:
    """Solve row u (module notation) into x (and x_bias[0] with biases)."""
    cdef int D = K + biases, i
    cdef floating scale = n if weighted else 1
    cdef floating* A = scratch
    cdef floating* b = A + <Py_ssize_t> D * D
    cdef floating* w = b + D
    cdef floating* Z = w + D  # RANK * D values; also the gradient of the non-negative solve
    if n == 0:
        memset(x, 0, K * sizeof(floating))
        if biases:
            x_bias[0] = 0
        return OK
    normal_equations(A, b, Y, y_bias, cols, ratings, n, mu, biases, K, Z)
    for i in range(K):
        A[i * D + i] = A[i * D + i] + reg * scale
    if biases:
        A[K * D + K] = A[K * D + K] + reg_bias * scale
    if nonnegative:
        memcpy(w, x, K * sizeof(floating))
        if biases:
            w[K] = x_bias[0]
        if nonnegative_solve(A, b, w, D, K, tolerance, Z) != OK:
            return NOT_POSITIVE_DEFINITE
    else:
        if not cholesky_factor(A, D):
            return NOT_POSITIVE_DEFINITE
        cholesky_solve(A, b, w, D)
    memcpy(x, w, K * sizeof(floating))
    if biases:
        x_bias[0] = w[K]
    return OK


def solve_rows(const index_t[::1] indptr, const index_t[::1] indices,
               const floating[::1] ratings, floating[:, ::1] X, floating[::1] x_bias,
               const floating[:, ::1] Y, const floating[::1] y_bias, floating mu,
               floating regularization, floating bias_regularization, bint weighted,
               bint biases, bint nonnegative, int num_threads, signed char[::1] status):
    """Overwrite every row of X (and x_bias with biases) with its ridge / NNLS solution.

    Rows are the rows of the CSR (indptr, indices, ratings) block, aligned with X and
    x_bias; y_bias has one value per row of Y (both are left alone without biases). The
    non-negative solve warm-starts from the current X; the others ignore it.
    """
    cdef Py_ssize_t n_rows = X.shape[0], u
    cdef int K = X.shape[1]
    cdef int D = K + biases
    cdef floating tolerance = 1e-6 if sizeof(floating) == 4 else 1e-12
    cdef floating* scratch
    with nogil, parallel(num_threads=num_threads):
        scratch = <floating*> malloc((<Py_ssize_t> D * D + (RANK + 2) * D) * sizeof(floating))
        try:
            for u in prange(n_rows, schedule="dynamic", chunksize=8):
                if scratch == NULL:
                    status[u] = OUT_OF_MEMORY
                    continue
                status[u] = solve_row(&X[u, 0], &x_bias[u], &Y[0, 0], &y_bias[0],
                                      &indices[0] + indptr[u], &ratings[0] + indptr[u],
                                      indptr[u + 1] - indptr[u], mu, regularization,
                                      bias_regularization, weighted, biases, nonnegative,
                                      tolerance, K, scratch)
        finally:
            free(scratch)


def predict_pairs(const int64_t[::1] users, const int64_t[::1] items,
                  const floating[:, ::1] P, const floating[:, ::1] Q,
                  const floating[::1] user_bias, const floating[::1] item_bias, floating mu,
                  floating[::1] out, int num_threads):
    """out[t] = mu + user_bias[u] + item_bias[i] + P[u] . Q[i] for u, i = users[t], items[t]."""
    cdef Py_ssize_t n = users.shape[0], t
    cdef int K = P.shape[1]
    cdef int64_t u, i
    with nogil:
        for t in prange(n, num_threads=num_threads, schedule="static"):
            u = users[t]
            i = items[t]
            out[t] = mu + user_bias[u] + item_bias[i] + dot(&P[u, 0], &Q[i, 0], K)


def row_errors(const index_t[::1] indptr, const index_t[::1] indices,
               const floating[::1] ratings, const floating[:, ::1] X,
               const floating[::1] x_bias, const floating[:, ::1] Y,
               const floating[::1] y_bias, floating mu, int num_threads,
               double[::1] squared):
    """squared[u] = sum over the ratings r_uj of row u of (r_uj - mu - x_bias[u] - y_bias[j] - x_u.y_j)^2."""
    cdef Py_ssize_t n_rows = X.shape[0], u, j
    cdef int K = X.shape[1]
    cdef double total, error
    with nogil:
        for u in prange(n_rows, num_threads=num_threads, schedule="dynamic", chunksize=64):
            total = 0
            for j in range(indptr[u], indptr[u + 1]):
                error = ratings[j] - (mu + x_bias[u] + y_bias[indices[j]]
                                      + dot(&X[u, 0], &Y[0, 0] + <Py_ssize_t> indices[j] * K, K))
                total = total + error * error
            squared[u] = total
