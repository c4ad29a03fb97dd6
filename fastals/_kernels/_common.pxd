# Shared types and the small inner loops every kernel uses.
#
# The loops are plain C loops over `n` contiguous values: with the build's reassociation
# flags the compiler vectorises them for whichever instruction set the including module is
# built for (see setup.py), so one source serves SSE2, AVX2 and AVX-512 builds.
from libc.math cimport sqrt
from libc.stdint cimport int32_t, int64_t

ctypedef fused floating:
    float
    double

ctypedef fused index_t:
    int32_t
    int64_t


cdef inline floating dot(const floating* a, const floating* b, int n) noexcept nogil:
    cdef floating total = 0
    cdef int i
    for i in range(n):
        total = total + a[i] * b[i]
    return total


cdef inline void axpy(floating alpha, const floating* x, floating* y, int n) noexcept nogil:
    """y += alpha * x"""
    cdef int i
    for i in range(n):
        y[i] = y[i] + alpha * x[i]


cdef inline void symv(const floating* A, const floating* x, floating* out, int n) noexcept nogil:
    """out = A @ x for a dense symmetric row-major n x n matrix A."""
    cdef int i
    for i in range(n):
        out[i] = dot(A + <Py_ssize_t> i * n, x, n)


cdef inline bint cholesky_factor(floating* A, int n) noexcept nogil:
    """Overwrite the lower triangle of the row-major n x n matrix A with L, A = L L^T.

    Only the lower triangle is read (Cholesky-Banachiewicz: row i of L from rows 0..i-1).
    Returns False when A is not (numerically) positive definite.
    """
    cdef int i, k
    cdef floating s
    for i in range(n):
        for k in range(i + 1):
            s = A[i * n + k] - dot(A + <Py_ssize_t> i * n, A + <Py_ssize_t> k * n, k)
            if k == i:
                if not s > 0:
                    return False
                A[i * n + i] = sqrt(s)
            else:
                A[i * n + k] = s / A[k * n + k]
    return True


cdef inline void cholesky_solve(const floating* L, const floating* b, floating* x,
                                int n) noexcept nogil:
    """x = (L L^T)^{-1} b with L from cholesky_factor: L z = b, then L^T x = z (x may alias b)."""
    cdef int i, k
    cdef floating s
    for i in range(n):
        x[i] = (b[i] - dot(L + <Py_ssize_t> i * n, x, i)) / L[i * n + i]
    for i in range(n - 1, -1, -1):
        s = x[i]
        for k in range(i + 1, n):
            s = s - L[k * n + i] * x[k]
        x[i] = s / L[i * n + i]
