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
#   F          the number of factors (the length of x_u and y_j)
#   z_j        [y_j, 1] with biases, y_j without   (D = F + 1 or F unknowns)
#   t_uj       r_uj - mu - c_j                     (the target the row explains)
#   lambda_u   regularization (times n_u under weighted regularisation, ALS-WR)
#   A_u        sum_j z_j z_j^T + diag(lambda_u, ..., lambda_u, lambda_bias_u)
#   b_u        sum_j t_uj z_j
#   [x_u, b_u] = A_u^{-1} b_u, or with nonnegative=True argmin_{x >= 0} (1/2 w^T A_u w - b_u^T w)
#              over w = [x, bias] (the bias stays free), by cyclic coordinate descent.
# A row without ratings gets x_u = 0 and bias 0. `status[row]` reports failures (a Status of
# _status.pxd: NOT_POSITIVE_DEFINITE, OUT_OF_MEMORY) for the Python layer to raise.
from cython.parallel cimport parallel, prange
from libc.math cimport fabs
from libc.stdint cimport int64_t
from libc.stdlib cimport free
from libc.string cimport memcpy, memset

from fastals._kernels._common cimport (axpy, cholesky_solve_upper, dot, floating, gram16_f32,
                                       gram16_f64, index_t, prefetch_row, rank_update_upper)
from fastals._kernels._status cimport (NOT_POSITIVE_DEFINITE, OK, OUT_OF_MEMORY, Status,
                                       scratch_calloc)

cdef enum:
    # how many ratings ahead the rows of Y are prefetched
    PREFETCH_AHEAD = 4
    # coordinate-descent sweeps of the non-negative solve before giving up on the tolerance
    MAX_SWEEPS = 1000
    # up to this many unknowns, the gathered rows are padded to SMALL and summed by
    # microkernels.h's gram16 (one register per row of A) instead of 4 x 16 tiles
    SMALL = 16


cdef inline int gather_stride(int D) noexcept nogil:
    """Row stride of the gathered z_j: padded to SMALL for small D (padding stays zero)."""
    return SMALL if D <= SMALL else D


cdef inline void add_gram(floating* A, const floating* Z, Py_ssize_t n, int D) noexcept nogil:
    """Upper triangle (at least) of A += Z^T Z for the n gathered rows of Z."""
    if D > SMALL:
        rank_update_upper(A, Z, n, D)
    elif floating is float:
        gram16_f32(A, D, Z, n)
    else:
        gram16_f64(A, D, Z, n)


cdef void normal_equations(floating* A, floating* b, const floating* Y, const floating* y_bias,
                           const index_t* cols, const floating* ratings, Py_ssize_t n,
                           floating mu, bint biases, int F, floating* Z, int chunk) noexcept nogil:
    """Upper triangle of A = sum_j z_j z_j^T and b = sum_j t_j z_j, without regularisation.

    The z_j are gathered `chunk` at a time into Z (row stride gather_stride(D), padding
    zero) and added by add_gram.
    """
    cdef int D = F + biases, stride = gather_stride(D)
    cdef Py_ssize_t j
    cdef int filled = 0
    cdef floating target
    cdef floating* z
    memset(A, 0, <Py_ssize_t> D * D * sizeof(floating))
    memset(b, 0, D * sizeof(floating))
    for j in range(n):
        if j + PREFETCH_AHEAD < n:
            prefetch_row(Y + <Py_ssize_t> cols[j + PREFETCH_AHEAD] * F, F)
        z = Z + <Py_ssize_t> filled * stride
        memcpy(z, Y + <Py_ssize_t> cols[j] * F, F * sizeof(floating))
        target = ratings[j]
        if biases:
            z[F] = 1
            target = ratings[j] - mu - y_bias[cols[j]]
        axpy(target, z, b, D)
        filled += 1
        if filled == chunk:
            add_gram(A, Z, filled, D)
            filled = 0
    if filled:
        add_gram(A, Z, filled, D)


cdef Status nonnegative_solve(floating* A, const floating* b, floating* w, int D, int F,
                              floating tolerance, floating* gradient) noexcept nogil:
    """argmin_{w[:F] >= 0} 1/2 w^T A w - b^T w by cyclic coordinate descent, warm-started from w.

    A is symmetric positive definite with its upper triangle filled on entry (it is
    mirrored here). Each coordinate step is exact, so the objective never increases.
    """
    cdef int i, k, sweep
    cdef floating old, new, change, largest_change, largest
    for i in range(D):
        for k in range(i):
            A[i * D + k] = A[k * D + i]
        if not A[i * D + i] > 0:
            return NOT_POSITIVE_DEFINITE
    for i in range(F):
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
            if k < F and new < 0:
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


cdef Status solve_row(floating* x, floating* x_bias, const floating* Y, const floating* y_bias,
                      const index_t* cols, const floating* ratings, Py_ssize_t n,
                      floating mu, floating reg, floating reg_bias, bint weighted, bint biases,
                      bint nonnegative, floating tolerance, int F, floating* scratch,
                      int chunk) noexcept nogil:
    """Solve row u (module notation) into x (and x_bias[0] with biases)."""
    cdef int D = F + biases, i
    cdef Status status
    cdef floating scale = n if weighted else 1
    cdef floating* A = scratch
    cdef floating* w = A + <Py_ssize_t> D * D  # b, then the solution
    cdef floating* Z = w + D  # chunk gathered rows; then b and the gradient of the NNLS solve
    if n == 0:
        memset(x, 0, F * sizeof(floating))
        if biases:
            x_bias[0] = 0
        return OK
    normal_equations(A, w, Y, y_bias, cols, ratings, n, mu, biases, F, Z, chunk)
    for i in range(F):
        A[i * D + i] = A[i * D + i] + reg * scale
    if biases:
        A[F * D + F] = A[F * D + F] + reg_bias * scale
    if nonnegative:
        memcpy(Z, w, D * sizeof(floating))  # b
        memcpy(w, x, F * sizeof(floating))  # warm start
        if biases:
            w[F] = x_bias[0]
        status = nonnegative_solve(A, Z, w, D, F, tolerance, Z + D)
        # the gathered rows' padding must be zero again for the next row
        memset(Z, 0, 2 * D * sizeof(floating))
        if status != OK:
            return NOT_POSITIVE_DEFINITE
    elif not cholesky_solve_upper(A, w, D):
        return NOT_POSITIVE_DEFINITE
    memcpy(x, w, F * sizeof(floating))
    if biases:
        x_bias[0] = w[F]
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
    cdef int F = X.shape[1]
    cdef int D = F + biases
    cdef int chunk = max(16, 8192 // D)
    cdef Py_ssize_t scratch_size = (<Py_ssize_t> D * D + D
                                    + (<Py_ssize_t> chunk + 1) * gather_stride(D))
    cdef floating tolerance = 1e-6 if sizeof(floating) == 4 else 1e-12
    cdef floating* scratch
    with nogil, parallel(num_threads=num_threads):
        scratch = <floating*> scratch_calloc(scratch_size, sizeof(floating))  # zero padding
        try:
            for u in prange(n_rows, schedule="dynamic", chunksize=8):
                if scratch == NULL:
                    status[u] = OUT_OF_MEMORY
                    continue
                status[u] = solve_row(&X[u, 0], &x_bias[u], &Y[0, 0], &y_bias[0],
                                      &indices[0] + indptr[u], &ratings[0] + indptr[u],
                                      indptr[u + 1] - indptr[u], mu, regularization,
                                      bias_regularization, weighted, biases, nonnegative,
                                      tolerance, F, scratch, chunk)
        finally:
            free(scratch)


def predict_pairs(const int64_t[::1] users, const int64_t[::1] items,
                  const floating[:, ::1] P, const floating[:, ::1] Q,
                  const floating[::1] user_bias, const floating[::1] item_bias, floating mu,
                  floating[::1] out, int num_threads):
    """out[t] = mu + user_bias[u] + item_bias[i] + P[u] . Q[i] for u, i = users[t], items[t]."""
    cdef Py_ssize_t n = users.shape[0], t
    cdef int F = P.shape[1]
    cdef int64_t u, i
    with nogil:
        for t in prange(n, num_threads=num_threads, schedule="static"):
            u = users[t]
            i = items[t]
            out[t] = mu + user_bias[u] + item_bias[i] + dot(&P[u, 0], &Q[i, 0], F)


def row_errors(const index_t[::1] indptr, const index_t[::1] indices,
               const floating[::1] ratings, const floating[:, ::1] X,
               const floating[::1] x_bias, const floating[:, ::1] Y,
               const floating[::1] y_bias, floating mu, int num_threads,
               double[::1] squared):
    """squared[u] = sum over the ratings r_uj of row u of (r_uj - mu - x_bias[u] - y_bias[j] - x_u.y_j)^2."""
    cdef Py_ssize_t n_rows = X.shape[0], u, j
    cdef int F = X.shape[1]
    cdef double total, error
    with nogil:
        for u in prange(n_rows, num_threads=num_threads, schedule="dynamic", chunksize=64):
            total = 0
            for j in range(indptr[u], indptr[u + 1]):
                error = ratings[j] - (mu + x_bias[u] + y_bias[indices[j]]
                                      + dot(&X[u, 0], &Y[0, 0] + <Py_ssize_t> indices[j] * F, F))
                total = total + error * error
            squared[u] = total
