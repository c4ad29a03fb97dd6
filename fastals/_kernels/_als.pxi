# Implicit-feedback ALS kernels (Hu, Koren & Volinsky 2008; CG solve after Takacs et al. 2011).
#
# Included by _als_generic.pyx, _als_avx2.pyx and _als_avx512.pyx, which differ only in the
# instruction set they are compiled for; fastals._kernels.dispatch picks one at import.
#
# Notation (the symbols of fastals/reference/__init__.py; one row u of the interaction
# matrix, solved against the fixed factors Y):
#   r_ui     stored value (the interaction strength; stored zeros are removed before the call)
#   c_ui     confidence  = offset + alpha * |r_ui|   (offset 1: Hu et al.; 0: `implicit`'s alpha r)
#   p_ui     preference  = 1 if r_ui > 0 else 0   (negative values: confident dislike)
#   gram     = Y^T Y + lambda I                     (computed once per half-iteration)
#            passed as an F x F matrix, or as 1 x F when it is diagonal: in the eigenbasis
#            of Y^T Y (models/blocksolve.py rotates both sides into it for large F), where
#            the CG's products with it cost F instead of F^2 operations
#   A_u      = gram + s_u I + sum_i (c_ui - 1) y_i y_i^T    (never formed by the CG solver)
#   s_u      optional per-row shift (`row_shift`; 0 without it): with gram = Y^T Y and
#            s_u = lambda n_u it is ALS-WR's weighted regularization (fastals.spark)
#   rhs_u    = sum_i c_ui p_ui y_i                 (the right-hand side)
#   x_u      = A_u^{-1} rhs_u
#   F        the number of factors: x_u and y_i have F entries, gram and A_u are F x F
# Kernels take one block of rows in CSR form (indptr, indices, values) and write the
# solved rows into X in place; `status[row]` is set to a Status (_status.pxd) other than OK
# on failure (NOT_POSITIVE_DEFINITE, OUT_OF_MEMORY, OVERFLOW: the system overflows the
# dtype), which the Python layer turns into errors.
from cython.parallel cimport parallel, prange
from libc.math cimport INFINITY, sqrt
from libc.stdlib cimport free
from libc.string cimport memcpy, memset

from scipy.linalg.cython_blas cimport dsyrk, ssyrk
from scipy.linalg.cython_lapack cimport dpotrf, dpotrs, spotrf, spotrs

from fastals._kernels._common cimport (add_transposed_times, axpy, axpy4,
                                       cholesky_solve_upper, dot, dots4, floating, index_t,
                                       prefetch_row, rank_downdate_upper, rank_update_upper,
                                       rows_dot, symv)
from fastals._kernels._status cimport (NOT_POSITIVE_DEFINITE, OK, OUT_OF_MEMORY, OVERFLOW,
                                       Status, scratch_malloc)

cdef enum:
    # from this many factors on (where the eigenbasis starts; at 128 not measured yet, so the
    # register tiles stay there) the exact solver's rank updates and factorisation are the
    # BLAS's syrk and LAPACK's potrf / potrs (single-threaded calls, one row per thread):
    # blocked for the cache, where the register tiles stream an F x F matrix beyond L2
    LAPACK_MIN_FACTORS = 192
    # how many stored values ahead the rows of Y are prefetched
    PREFETCH_AHEAD = 8
    # rows of Y of the next CSR row prefetched ahead of its gather
    PREFETCH_NEXT_ROWS = 64

cdef inline void confidence(floating value, floating alpha, floating offset,
                            floating* c_minus_1, floating* c_times_p) noexcept nogil:
    """(c - 1, c * p) for one stored value."""
    if value > 0:
        c_minus_1[0] = (offset - 1) + alpha * value
        c_times_p[0] = offset + alpha * value
    else:
        c_minus_1[0] = (offset - 1) - alpha * value
        c_times_p[0] = 0


cdef inline void gram_times(const floating* gram, bint diagonal, const floating* x,
                            floating* out, int F) noexcept nogil:
    """out = gram @ x, for a dense F x F gram or (`diagonal`) its F diagonal entries."""
    cdef int k
    if diagonal:
        for k in range(F):
            out[k] = gram[k] * x[k]
    else:
        symv(gram, x, out, F)


cdef inline void add_weighted_scattered(const floating* Y, const index_t* cols,
                                        const floating* values, Py_ssize_t nnz,
                                        floating alpha, floating offset, int F,
                                        const floating* v, bint with_rhs,
                                        floating* out) noexcept nogil:
    """out += sum_j w_j y_j over a row's stored values j, y_j = Y[cols[j]] read where it
    lies, with w_j = (c_j - 1) y_j . v, or (`with_rhs`) c_j p_j - (c_j - 1) y_j . v.

    Four stored values at a time: their four dot products in flight together (dots4)
    and one update of out for the four (axpy4); the rows are prefetched PREFETCH_AHEAD
    values ahead.
    """
    cdef Py_ssize_t j, t, full = nnz - nnz % 4
    cdef floating c_minus_1, c_times_p
    cdef floating w[4]
    cdef const floating* y[4]
    for j in range(0, full, 4):
        for t in range(4):
            if j + t + PREFETCH_AHEAD < nnz:
                prefetch_row(Y + <Py_ssize_t> cols[j + t + PREFETCH_AHEAD] * F, F)
            y[t] = Y + <Py_ssize_t> cols[j + t] * F
        dots4(w, y[0], y[1], y[2], y[3], v, F)
        for t in range(4):
            confidence(values[j + t], alpha, offset, &c_minus_1, &c_times_p)
            w[t] = c_times_p - c_minus_1 * w[t] if with_rhs else c_minus_1 * w[t]
        axpy4(w, y[0], y[1], y[2], y[3], out, F)
    for j in range(full, nnz):
        y[0] = Y + <Py_ssize_t> cols[j] * F
        confidence(values[j], alpha, offset, &c_minus_1, &c_times_p)
        w[0] = dot(y[0], v, F)
        axpy(c_times_p - c_minus_1 * w[0] if with_rhs else c_minus_1 * w[0], y[0], out, F)


cdef inline void add_weighted_rows(const floating* Y, const index_t* cols,
                                   const floating* values, Py_ssize_t nnz, floating alpha,
                                   floating offset, int F, const floating* v, bint with_rhs,
                                   floating* out, floating* weights) noexcept nogil:
    """out += sum_j w_j y_j as add_weighted_scattered, with `weights` NULL; otherwise Y
    holds the row's nnz rows of Y contiguously (gathered) and `weights` has room for nnz
    values: two blocked passes (rows_dot, then add_transposed_times)."""
    cdef Py_ssize_t j
    cdef floating c_minus_1, c_times_p
    if weights == NULL:
        add_weighted_scattered(Y, cols, values, nnz, alpha, offset, F, v, with_rhs, out)
        return
    rows_dot(Y, v, nnz, F, weights)
    for j in range(nnz):
        confidence(values[j], alpha, offset, &c_minus_1, &c_times_p)
        weights[j] = c_times_p - c_minus_1 * weights[j] if with_rhs \
            else c_minus_1 * weights[j]
    add_transposed_times(Y, weights, nnz, F, out)


cdef Status cg_row(floating* x, const floating* Y, const floating* gram, bint diagonal,
                   floating shift, const index_t* cols, const floating* values, Py_ssize_t nnz,
                   floating alpha, floating offset, int F, int cg_steps,
                   floating* residual, floating* direction, floating* A_direction,
                   floating* weights) noexcept nogil:
    """`cg_steps` conjugate-gradient steps on A_u x = rhs_u, warm-started from x (`gram`
    diagonal: its F diagonal entries).

    `weights` NULL: row j of Y_u is Y[cols[j]], read where it lies, four at a time
    (add_weighted_scattered). Otherwise Y holds Y_u's nnz rows contiguously (gathered) and
    `weights` has room for nnz values: each product Y_u^T (C_u - I) Y_u v is then two
    blocked passes (rows_dot, then add_transposed_times).
    """
    cdef int k, step
    cdef floating step_size, rs_old, rs_new, rs_first, pAp

    # residual = rhs_u - A_u x
    gram_times(gram, diagonal, x, residual, F)
    for k in range(F):
        residual[k] = -residual[k]
    if shift != 0:
        axpy(-shift, x, residual, F)
    add_weighted_rows(Y, cols, values, nnz, alpha, offset, F, x, True, residual, weights)

    memcpy(direction, residual, F * sizeof(floating))
    rs_old = dot(residual, residual, F)
    rs_first = rs_old
    if not rs_old < INFINITY:  # rhs_u or A_u x overflowed (or is NaN)
        return OVERFLOW
    if rs_old < 1e-20:
        return OK
    for step in range(cg_steps):
        # A_direction = A_u direction
        gram_times(gram, diagonal, direction, A_direction, F)
        if shift != 0:
            axpy(shift, direction, A_direction, F)
        add_weighted_rows(Y, cols, values, nnz, alpha, offset, F, direction, False,
                          A_direction, weights)
        pAp = dot(direction, A_direction, F)
        if not pAp < INFINITY:  # a step of 0 would leave x stale and pass for a solve
            return OVERFLOW
        if not pAp > 0:
            # a zero or negative curvature along a non-negligible direction means A_u is
            # singular or indefinite; after convergence it is only round-off
            return OK if rs_old <= rs_first * 1e-12 else NOT_POSITIVE_DEFINITE
        step_size = rs_old / pAp
        axpy(step_size, direction, x, F)
        axpy(-step_size, A_direction, residual, F)
        rs_new = dot(residual, residual, F)
        if rs_new < 1e-20:
            break
        for k in range(F):
            direction[k] = residual[k] + (rs_new / rs_old) * direction[k]
        rs_old = rs_new
    return OK


cdef inline void rank_update_blas(floating* A, const floating* Z, int n, int F,
                                  floating sign) noexcept nogil:
    """The upper triangle of A += sign Z^T Z (A row-major F x F, Z row-major n x F), by syrk:
    row-major upper is column-major lower, and row-major Z is column-major Z^T."""
    cdef char* lower = b"L"
    cdef char* notrans = b"N"
    cdef float sign_f = <float> sign, one_f = 1
    cdef double sign_d = <double> sign, one_d = 1
    if floating is float:
        ssyrk(lower, notrans, &F, &n, &sign_f, <float*> Z, &F, &one_f, A, &F)
    else:
        dsyrk(lower, notrans, &F, &n, &sign_d, <double*> Z, &F, &one_d, A, &F)


cdef inline bint cholesky_solve_lapack(floating* A, floating* b, int F) noexcept nogil:
    """:func:`cholesky_solve_upper` by LAPACK's blocked potrf and potrs (A's upper triangle,
    row-major: column-major lower). False if A is not positive definite or a pivot is not
    finite."""
    cdef char* lower = b"L"
    cdef int info = 0, one = 1, k
    if floating is float:
        spotrf(lower, &F, A, &F, &info)
    else:
        dpotrf(lower, &F, A, &F, &info)
    if info != 0:
        return False
    for k in range(F):
        if not A[<Py_ssize_t> k * F + k] < INFINITY:
            return False
    if floating is float:
        spotrs(lower, &F, &one, A, &F, b, &F, &info)
    else:
        dpotrs(lower, &F, &one, A, &F, b, &F, &info)
    return info == 0


cdef Status cholesky_row(floating* x, const floating* Y, const floating* gram, bint diagonal,
                         floating shift,
                         const index_t* cols, const floating* values, Py_ssize_t nnz,
                         floating alpha, floating offset, int F, floating* A, floating* Z,
                         floating* Z_negative, int chunk) noexcept nogil:
    """Exact x = A_u^{-1} rhs_u.

    A_u = gram + Z^T Z with rows z_i = sqrt(c_ui - 1) y_i, gathered `chunk` rows at a time
    and added by a register-tiled rank-k update (syrk from LAPACK_MIN_FACTORS on); then
    A_u = U^T U and two triangular solves (potrf / potrs from LAPACK_MIN_FACTORS on). rhs_u is accumulated in x. Confidences below 1 (possible with offset 0) go to
    Z_negative, rows sqrt(1 - c_ui) y_i, whose Z^T Z is subtracted. `diagonal`: gram holds
    only the F diagonal entries.
    """
    cdef Py_ssize_t j
    cdef int k, n = 0, n_negative = 0
    cdef floating c_minus_1, c_times_p, scale
    cdef const floating* y
    cdef floating* z

    if diagonal:
        memset(A, 0, <Py_ssize_t> F * F * sizeof(floating))
        for k in range(F):
            A[k * F + k] = gram[k]
    else:
        memcpy(A, gram, <Py_ssize_t> F * F * sizeof(floating))
    if shift != 0:
        for k in range(F):
            A[k * F + k] += shift
    memset(x, 0, F * sizeof(floating))
    for j in range(nnz):
        if j + PREFETCH_AHEAD < nnz:
            prefetch_row(Y + <Py_ssize_t> cols[j + PREFETCH_AHEAD] * F, F)
        y = Y + <Py_ssize_t> cols[j] * F
        confidence(values[j], alpha, offset, &c_minus_1, &c_times_p)
        if c_times_p != 0:
            axpy(c_times_p, y, x, F)
        if c_minus_1 > 0:
            scale = sqrt(c_minus_1)
            z = Z + <Py_ssize_t> n * F
            for k in range(F):
                z[k] = scale * y[k]
            n += 1
            if n == chunk:
                rank_update(A, Z, n, F, 1)
                n = 0
        elif c_minus_1 < 0:
            scale = sqrt(-c_minus_1)
            z = Z_negative + <Py_ssize_t> n_negative * F
            for k in range(F):
                z[k] = scale * y[k]
            n_negative += 1
            if n_negative == chunk:
                rank_update(A, Z_negative, n_negative, F, -1)
                n_negative = 0
    if n:
        rank_update(A, Z, n, F, 1)
    if n_negative:
        rank_update(A, Z_negative, n_negative, F, -1)
    for k in range(F):  # an infinite (or NaN) diagonal or right-hand side: overflow
        if not (A[<Py_ssize_t> k * F + k] < INFINITY and -INFINITY < x[k] < INFINITY):
            return OVERFLOW
    if F >= LAPACK_MIN_FACTORS:
        return OK if cholesky_solve_lapack(A, x, F) else NOT_POSITIVE_DEFINITE
    return OK if cholesky_solve_upper(A, x, F) else NOT_POSITIVE_DEFINITE


cdef inline bint woodbury_applies(const floating* values, Py_ssize_t nnz, floating alpha,
                                  floating offset, int F) noexcept nogil:
    """Whether :func:`woodbury_row` solves this row: at most F stored values (beyond, the
    F x F factorisation is cheaper), every one with c_ui > 1 (each is then a row of Z)."""
    cdef Py_ssize_t j
    if nnz > F:
        return False
    for j in range(nnz):
        if not (offset - 1) + alpha * (values[j] if values[j] > 0 else -values[j]) > 0:
            return False
    return True


cdef Status woodbury_row(floating* x, const floating* Y, const floating* diagonal,
                         floating shift, const index_t* cols, const floating* values,
                         Py_ssize_t nnz, floating alpha, floating offset, int F, floating* Z,
                         floating* S, floating* g, floating* scale) noexcept nogil:
    """Exact x = A_u^{-1} rhs_u when gram is diagonal (the eigenbasis), by the Woodbury
    identity, in O(n^2 F + n^3) for the n stored values instead of the O(n F^2 + F^3) of
    :func:`cholesky_row`.

    With E = gram + s_u I (diagonal) and the n x F matrix Z of rows
    z_i = sqrt(c_ui - 1) E^{-1/2} y_i, A_u = E^{1/2} (I + Z^T Z) E^{1/2} and
    rhs_u = E^{1/2} Z^T g with g_i = c_ui p_ui / sqrt(c_ui - 1); since
    (I + Z^T Z)^{-1} Z^T = Z^T (I + Z Z^T)^{-1},

        x = E^{-1/2} Z^T S^{-1} g,   S = I + Z Z^T (n x n, positive definite),

    with no subtraction of nearly equal terms (the textbook form
    E^{-1} - E^{-1} Z^T S^{-1} Z E^{-1} loses every digit when c_ui is large).
    The caller checks :func:`woodbury_applies` (every c_ui > 1, n <= F).
    """
    cdef Py_ssize_t j
    cdef int k, i, m, n = 0
    cdef floating c_minus_1, c_times_p, root, e
    cdef const floating* y
    cdef floating* z
    for k in range(F):
        e = diagonal[k] + shift
        if not e < INFINITY:
            return OVERFLOW
        if not e > 0:
            return NOT_POSITIVE_DEFINITE
        scale[k] = 1 / sqrt(e)
    for j in range(nnz):
        if j + PREFETCH_AHEAD < nnz:
            prefetch_row(Y + <Py_ssize_t> cols[j + PREFETCH_AHEAD] * F, F)
        y = Y + <Py_ssize_t> cols[j] * F
        confidence(values[j], alpha, offset, &c_minus_1, &c_times_p)
        root = sqrt(c_minus_1)
        z = Z + <Py_ssize_t> n * F
        for k in range(F):
            z[k] = root * scale[k] * y[k]
        g[n] = c_times_p / root
        if not -INFINITY < g[n] < INFINITY:
            return OVERFLOW
        n += 1
    # S = I + Z Z^T (upper triangle); then g = S^{-1} g and x = E^{-1/2} Z^T g
    for i in range(n):
        z = Z + <Py_ssize_t> i * F
        for m in range(i, n):
            S[<Py_ssize_t> i * n + m] = dot(z, Z + <Py_ssize_t> m * F, F)
        S[<Py_ssize_t> i * n + i] += 1
    if not cholesky_solve_upper(S, g, n):
        return OVERFLOW  # S >= I: only an overflow makes it fail
    memset(x, 0, F * sizeof(floating))
    for i in range(n):
        axpy(g[i], Z + <Py_ssize_t> i * F, x, F)
    for k in range(F):
        x[k] = x[k] * scale[k]
    return OK


cdef inline void rank_update(floating* A, const floating* Z, int n, int F,
                             floating sign) noexcept nogil:
    """The upper triangle of A += sign Z^T Z (sign 1 or -1)."""
    if F >= LAPACK_MIN_FACTORS:
        rank_update_blas(A, Z, n, F, sign)
    elif sign > 0:
        rank_update_upper(A, Z, n, F)
    else:
        rank_downdate_upper(A, Z, n, F)


def solve_cg(const index_t[::1] indptr, const index_t[::1] indices, const floating[::1] values,
             floating[:, ::1] X, const floating[:, ::1] Y, const floating[:, ::1] gram,
             floating alpha, int cg_steps, int num_threads, signed char[::1] status,
             const floating[::1] row_shift=None, floating offset=1):
    """Update every row of X in place by `cg_steps` CG steps on its normal equations.

    `row_shift` (one value per row of X, or None for zeros) is added to the diagonal of
    each row's system. `gram` is F x F, or 1 x F when it is diagonal (its diagonal). `offset`: c = offset + alpha |r| (1, or 0 for `implicit`'s c = alpha r).

    Rows with up to `gather_rows` stored values first copy their rows of Y into a
    contiguous per-thread buffer, so that the cg_steps + 1 passes over them read
    sequential memory instead of gathering from all of Y each time, in blocked products
    (cg_row's `weights`).
    """
    cdef Py_ssize_t n_rows = X.shape[0], u, j, nnz
    cdef int F = X.shape[1]
    cdef Py_ssize_t gather_rows = max(64, (1 << 18) // (F * sizeof(floating)))
    cdef floating* scratch
    cdef floating* gathered
    cdef bint shifted = row_shift is not None
    cdef bint diagonal = gram.shape[0] == 1 and F > 1  # (a 1 x 1 gram is the dense one)
    cdef floating shift
    with nogil, parallel(num_threads=num_threads):
        # 3 vectors of F, up to gather_rows gathered rows of Y and their weights
        scratch = <floating*> scratch_malloc((3 * F + gather_rows * (F + 1)) * sizeof(floating))
        try:
            for u in prange(n_rows, schedule="dynamic", chunksize=8):
                if scratch == NULL:
                    status[u] = OUT_OF_MEMORY
                    continue
                nnz = indptr[u + 1] - indptr[u]
                shift = row_shift[u] if shifted else 0
                if nnz > gather_rows:
                    status[u] = cg_row(&X[u, 0], &Y[0, 0], &gram[0, 0], diagonal, shift,
                                       &indices[0] + indptr[u], &values[0] + indptr[u],
                                       nnz, alpha, offset, F, cg_steps,
                                       scratch, scratch + F, scratch + 2 * F, NULL)
                else:
                    gathered = scratch + 3 * F
                    for j in range(nnz):
                        if j + PREFETCH_AHEAD < nnz:
                            prefetch_row(&Y[indices[indptr[u] + j + PREFETCH_AHEAD], 0], F)
                        memcpy(gathered + j * F, &Y[indices[indptr[u] + j], 0],
                               F * sizeof(floating))
                    # the next row's rows of Y load while this row's CG computes on the
                    # gathered copy (the gathers wait on memory, the CG on arithmetic)
                    if u + 1 < n_rows:
                        for j in range(indptr[u + 1], min(indptr[u + 2],
                                                          indptr[u + 1] + PREFETCH_NEXT_ROWS)):
                            prefetch_row(&Y[indices[j], 0], F)
                    status[u] = cg_row(&X[u, 0], gathered, &gram[0, 0], diagonal, shift,
                                       &indices[0] + indptr[u], &values[0] + indptr[u],
                                       nnz, alpha, offset, F, cg_steps,
                                       scratch, scratch + F, scratch + 2 * F,
                                       gathered + gather_rows * F)
        finally:
            free(scratch)


def solve_cholesky(const index_t[::1] indptr, const index_t[::1] indices,
                   const floating[::1] values, floating[:, ::1] X, const floating[:, ::1] Y,
                   const floating[:, ::1] gram, floating alpha, int num_threads,
                   signed char[::1] status, const floating[::1] row_shift=None,
                   floating offset=1):
    """Overwrite every row of X with the exact solution of its normal equations
    (`row_shift`, `offset`, a 1 x F `gram`: as in :func:`solve_cg`). With a diagonal gram,
    rows of at most F stored values with confidences > 1 are solved by the Woodbury
    identity (:func:`woodbury_row`), the others by :func:`cholesky_row`."""
    cdef Py_ssize_t n_rows = X.shape[0], u
    cdef int F = X.shape[1]
    # rows of Z gathered per rank update: 32 KiB of float32 rows, at least 16 (the BLAS
    # updates, from LAPACK_MIN_FACTORS on, at least 128)
    cdef int chunk = max(128 if F >= LAPACK_MIN_FACTORS else 16, 8192 // F)
    cdef floating* scratch
    cdef bint shifted = row_shift is not None
    cdef bint diagonal = gram.shape[0] == 1 and F > 1  # (a 1 x 1 gram is the dense one)
    cdef floating shift
    cdef Py_ssize_t square = <Py_ssize_t> F * F, nnz
    # a diagonal gram's rows may take woodbury_row: Z (up to F x F) and S (F x F) in the
    # first 2 F^2, w and the scales in the chunk rows
    cdef Py_ssize_t size = (2 if diagonal else 1) * square + 2 * <Py_ssize_t> chunk * F
    with nogil, parallel(num_threads=num_threads):
        scratch = <floating*> scratch_malloc(size * sizeof(floating))
        try:
            for u in prange(n_rows, schedule="dynamic", chunksize=8):
                if scratch == NULL:
                    status[u] = OUT_OF_MEMORY
                    continue
                shift = row_shift[u] if shifted else 0
                nnz = indptr[u + 1] - indptr[u]
                if diagonal and woodbury_applies(&values[0] + indptr[u], nnz, alpha, offset,
                                                 F):
                    status[u] = woodbury_row(&X[u, 0], &Y[0, 0], &gram[0, 0], shift,
                                             &indices[0] + indptr[u], &values[0] + indptr[u],
                                             nnz, alpha, offset, F, scratch, scratch + square,
                                             scratch + 2 * square,
                                             scratch + 2 * square + F)
                else:
                    status[u] = cholesky_row(&X[u, 0], &Y[0, 0], &gram[0, 0], diagonal,
                                             shift, &indices[0] + indptr[u],
                                             &values[0] + indptr[u], nnz, alpha, offset, F,
                                             scratch, scratch + square,
                                             scratch + square + chunk * F, chunk)
        finally:
            free(scratch)


cdef inline double add_stored_loss(double total, floating value, floating alpha,
                                   floating offset, floating xy) noexcept nogil:
    """total + (c-1)(x.y)^2 - 2 c p (x.y) + c p for one stored value.

    A function of its own so that c - 1 and c p are its locals: written through pointers
    inside a prange body, Cython would share them between the threads (a race).
    """
    cdef floating c_minus_1, c_times_p
    confidence(value, alpha, offset, &c_minus_1, &c_times_p)
    return total + c_minus_1 * xy * xy - 2 * c_times_p * xy + c_times_p


def row_losses(const index_t[::1] indptr, const index_t[::1] indices, const floating[::1] values,
               const floating[:, ::1] X, const floating[:, ::1] Y, const floating[:, ::1] YtY,
               floating alpha, int num_threads, double[::1] out, floating offset=1):
    """out[u] = sum over all items i of c_ui (p_ui - x_u.y_i)^2, using the unregularised YtY.

    Expanded so that only stored entries are visited:
    x_u^T YtY x_u + sum_{i stored} [(c-1)(x.y)^2 - 2 c p (x.y) + c p].
    Returns OK, or OUT_OF_MEMORY if scratch memory ran out (`out` is then incomplete).
    """
    cdef Py_ssize_t n_rows = X.shape[0], u, j
    cdef int F = X.shape[1]
    cdef floating* tmp
    cdef floating xy
    cdef double total
    cdef const floating* x
    cdef int failed = 0
    cdef Status status = OK
    with nogil, parallel(num_threads=num_threads):
        tmp = <floating*> scratch_malloc(F * sizeof(floating))
        try:
            for u in prange(n_rows, schedule="dynamic", chunksize=64):
                if tmp == NULL:
                    failed += 1  # a reduction: any thread without scratch reports it
                    continue
                x = &X[u, 0]
                symv(&YtY[0, 0], x, tmp, F)
                total = dot(x, tmp, F)
                for j in range(indptr[u], indptr[u + 1]):
                    xy = dot(x, &Y[0, 0] + <Py_ssize_t> indices[j] * F, F)
                    total = add_stored_loss(total, values[j], alpha, offset, xy)
                out[u] = total
        finally:
            free(tmp)
    if failed:
        status = OUT_OF_MEMORY
    return status
