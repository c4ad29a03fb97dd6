# Subspace ALS kernels (iALS++, Rendle, Krichene, Zhang & Koren 2021), written once and
# built per instruction set (_ials_generic.pyx, _ials_avx2.pyx, _ials_avx512.pyx).
#
# Symbols (as in fastals/reference/ials.py and fastals/reference/__init__.py; one row u of
# the interaction matrix, solved against the fixed factors Y):
#   r_ui     stored value (stored zeros are removed before the call)
#   w_ui     observed weight = offset + alpha * |r_ui|,  p_ui = [r_ui > 0] its target
#   q_ui     = w_ui - gram_weight: the weight of (x_u . y_i)^2 beyond what `gram` holds
#            (gram_weight 1 for Hu et al.'s ALS, whose Y^T Y counts every pair once;
#            0 for Rendle et al.'s, whose alpha_0 Y^T Y is a term over all pairs of its own)
#   b_ui     = w_ui p_ui                            (the right-hand-side weight)
#   gram     F x F, e.g. Y^T Y + lambda I or alpha_0 Y^T Y   (one per half-iteration)
#   s_u      optional per-row shift added to the diagonal (`row_shift`)
#   A_u      = gram + s_u I + sum_i q_ui y_i y_i^T,   rhs_u = sum_i b_ui y_i
#   pred_j   = x_u . y_i for the j-th stored value of row u: the prediction cache
#   B        a block of `block_size` coordinates [k0, k0 + nb) of x_u
# Each row minimises f_u(x) = x^T A_u x - 2 rhs_u^T x block after block, exactly on each:
#   A_u[B, B] delta = (rhs_u - A_u x_u)[B],   x_u[B] += delta,
# where (A_u x_u)[B] = Gx[B] + sum_i q_ui pred_i y_i[B] with Gx = (gram + s_u I) x_u, and
# Gx and pred are updated after each block (the residual bookkeeping of the paper), so a
# block costs O(nnz_u nb^2 + F nb + nb^3) and a row O(nnz_u F nb + F^2 + F nb^2), against
# O(nnz_u F^2 + F^3) for the exact solve. With block_size >= F it is the exact solve.
# The status of each row (a Status of _status.pxd) goes to `status[row]`.
from cython.parallel cimport parallel, prange
from libc.math cimport INFINITY, sqrt
from libc.stdlib cimport free
from libc.string cimport memcpy

from fastals._kernels._common cimport (axpy, cholesky_solve_upper, dot, floating, index_t,
                                       prefetch_row, rank_downdate_upper, rank_update_upper,
                                       symv)
from fastals._kernels._status cimport (NOT_POSITIVE_DEFINITE, OK, OUT_OF_MEMORY, OVERFLOW,
                                       Status, scratch_malloc)

cdef enum:
    # how many stored values ahead the rows of Y are prefetched
    PREFETCH_AHEAD = 8


cdef inline void observed_weights(floating value, floating alpha, floating offset,
                                  floating gram_weight, floating* q,
                                  floating* b) noexcept nogil:
    """(q, b) of one stored value: q = w - gram_weight, b = w p with w = offset + alpha |r|."""
    if value > 0:
        q[0] = (offset - gram_weight) + alpha * value
        b[0] = offset + alpha * value
    else:
        q[0] = (offset - gram_weight) - alpha * value
        b[0] = 0


cdef Status subspace_row(floating* x, const floating* Y, const floating* gram, floating shift,
                         const index_t* cols, const floating* values, Py_ssize_t nnz,
                         floating alpha, floating offset, floating gram_weight, int F,
                         int block_size, floating* A, floating* rhs, floating* delta,
                         floating* Gx, floating* pred, floating* Z, floating* Z_negative,
                         int chunk, double* objective) noexcept nogil:
    """One pass of block coordinate descent over x (in place), blocks of `block_size`.

    A_u[B, B] = gram[B, B] + s_u I + Z^T Z - Z_negative^T Z_negative, with rows
    sqrt(|q_ui|) y_i[B] gathered `chunk` at a time (by the sign of q_ui); each block's pass
    over the stored values also brings pred up to date with the previous block's delta.
    With `objective`, f_u(x) + sum_i b_ui (the row's part of the loss) is written there.
    """
    cdef Py_ssize_t j
    cdef int k, r, k0, nb, previous_k0 = 0, previous_nb = 0, n, n_negative
    cdef floating q, b, scale
    cdef const floating* y
    cdef floating* z
    cdef double total

    for j in range(nnz):
        if j + PREFETCH_AHEAD < nnz:
            prefetch_row(Y + <Py_ssize_t> cols[j + PREFETCH_AHEAD] * F, F)
        pred[j] = dot(Y + <Py_ssize_t> cols[j] * F, x, F)
    symv(gram, x, Gx, F)
    if shift != 0:
        axpy(shift, x, Gx, F)

    k0 = 0
    while k0 < F:  # (a range with a variable step would need the GIL)
        nb = min(block_size, F - k0)
        for r in range(nb):  # A = (gram + s_u I)[B, B], rhs = -Gx[B]
            memcpy(A + <Py_ssize_t> r * nb, gram + <Py_ssize_t> (k0 + r) * F + k0,
                   nb * sizeof(floating))
            A[<Py_ssize_t> r * nb + r] += shift
            rhs[r] = -Gx[k0 + r]
        n = 0
        n_negative = 0
        for j in range(nnz):
            if j + PREFETCH_AHEAD < nnz:
                prefetch_row(Y + <Py_ssize_t> cols[j + PREFETCH_AHEAD] * F + previous_k0,
                             k0 + nb - previous_k0)
            y = Y + <Py_ssize_t> cols[j] * F
            if previous_nb:
                pred[j] += dot(y + previous_k0, delta, previous_nb)
            observed_weights(values[j], alpha, offset, gram_weight, &q, &b)
            axpy(b - q * pred[j], y + k0, rhs, nb)
            if q > 0:
                scale = sqrt(q)
                z = Z + <Py_ssize_t> n * nb
                for k in range(nb):
                    z[k] = scale * y[k0 + k]
                n += 1
                if n == chunk:
                    rank_update_upper(A, Z, n, nb)
                    n = 0
            elif q < 0:
                scale = sqrt(-q)
                z = Z_negative + <Py_ssize_t> n_negative * nb
                for k in range(nb):
                    z[k] = scale * y[k0 + k]
                n_negative += 1
                if n_negative == chunk:
                    rank_downdate_upper(A, Z_negative, n_negative, nb)
                    n_negative = 0
        if n:
            rank_update_upper(A, Z, n, nb)
        if n_negative:
            rank_downdate_upper(A, Z_negative, n_negative, nb)
        for k in range(nb):  # an infinite (or NaN) diagonal or right-hand side: overflow
            if not (A[<Py_ssize_t> k * nb + k] < INFINITY and -INFINITY < rhs[k] < INFINITY):
                return OVERFLOW
        if not cholesky_solve_upper(A, rhs, nb):
            return NOT_POSITIVE_DEFINITE
        # x[B] += delta; Gx += (gram + s_u I)[:, B] delta (gram is symmetric: its rows)
        for r in range(nb):
            delta[r] = rhs[r]
            x[k0 + r] += delta[r]
            axpy(delta[r], gram + <Py_ssize_t> (k0 + r) * F, Gx, F)
            Gx[k0 + r] += shift * delta[r]
        previous_k0 = k0
        previous_nb = nb
        k0 += nb

    if objective != NULL:
        total = 0
        for k in range(F):
            total += <double> x[k] * Gx[k]
        for j in range(nnz):
            pred[j] += dot(Y + <Py_ssize_t> cols[j] * F + previous_k0, delta, previous_nb)
            observed_weights(values[j], alpha, offset, gram_weight, &q, &b)
            total += (<double> q * pred[j] - 2 * <double> b) * pred[j] + b
        objective[0] = total
    return OK


def solve_subspace(const index_t[::1] indptr, const index_t[::1] indices,
                   const floating[::1] values, floating[:, ::1] X, const floating[:, ::1] Y,
                   const floating[:, ::1] gram, floating alpha, int block_size,
                   int num_threads, signed char[::1] status,
                   const floating[::1] row_shift=None, floating offset=1,
                   floating gram_weight=1, double[::1] objective=None):
    """Update every row of X in place by one pass of block coordinate descent (iALS++)
    over blocks of `block_size` coordinates (1 <= block_size; >= F: one exact solve).

    `row_shift` (one value per row, or None for zeros) is added to the diagonal of each
    row's system; `offset`, `gram_weight`: w = offset + alpha |r|, q = w - gram_weight (see
    the symbols above). With `objective` (float64, one per row), each row's
    f_u(x_u) + sum_i b_ui after its update is written there.
    """
    cdef Py_ssize_t n_rows = X.shape[0], u, max_nnz = 0
    cdef int F = X.shape[1]
    cdef int B = min(max(block_size, 1), F)
    cdef int chunk = max(16, 8192 // B)
    cdef Py_ssize_t size
    cdef floating* scratch
    cdef bint shifted = row_shift is not None
    cdef bint with_objective = objective is not None
    cdef floating shift
    for u in range(n_rows):
        max_nnz = max(max_nnz, indptr[u + 1] - indptr[u])
    size = <Py_ssize_t> B * B + 2 * B + F + max_nnz + 2 * <Py_ssize_t> chunk * B
    with nogil, parallel(num_threads=num_threads):
        scratch = <floating*> scratch_malloc(size * sizeof(floating))
        try:
            for u in prange(n_rows, schedule="dynamic", chunksize=8):
                if scratch == NULL:
                    status[u] = OUT_OF_MEMORY
                    continue
                shift = row_shift[u] if shifted else 0
                status[u] = subspace_row(
                    &X[u, 0], &Y[0, 0], &gram[0, 0], shift, &indices[0] + indptr[u],
                    &values[0] + indptr[u], indptr[u + 1] - indptr[u], alpha, offset,
                    gram_weight, F, B,
                    scratch,                                     # A: B x B
                    scratch + B * B,                             # rhs
                    scratch + B * B + B,                         # delta
                    scratch + B * B + 2 * B,                     # Gx
                    scratch + B * B + 2 * B + F,                 # pred
                    scratch + B * B + 2 * B + F + max_nnz,       # Z
                    scratch + B * B + 2 * B + F + max_nnz + chunk * B,  # Z_negative
                    chunk, &objective[u] if with_objective else NULL)
        finally:
            free(scratch)
