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
    """Factor the row-major n x n symmetric matrix A = L L^T in place.

    Only the lower triangle of A is read. On return the lower triangle holds L and the strict
    upper triangle holds L^T (row k of L^T is column k of L, kept contiguous so that both the
    trailing updates here and the back substitution of cholesky_solve run over contiguous
    memory). Right-looking: after column k is scaled, every row below is updated at once,
    so there is no serial chain of divisions. Returns False when A is not (numerically)
    positive definite.
    """
    cdef int i, j, k
    cdef floating pivot, inverse, value, l_ik
    cdef floating* row
    cdef const floating* column
    for k in range(n):
        pivot = A[k * n + k]
        if not pivot > 0:
            return False
        pivot = sqrt(pivot)
        A[k * n + k] = pivot
        inverse = 1 / pivot
        for j in range(k + 1, n):
            value = A[j * n + k] * inverse
            A[j * n + k] = value
            A[k * n + j] = value
        column = A + <Py_ssize_t> k * n  # column[j] = L[j, k] for j > k
        for i in range(k + 1, n):
            l_ik = column[i]
            row = A + <Py_ssize_t> i * n
            for j in range(k + 1, i + 1):
                row[j] = row[j] - l_ik * column[j]
    return True


cdef inline void cholesky_solve(const floating* L, const floating* b, floating* x,
                                int n) noexcept nogil:
    """x = (L L^T)^{-1} b with L from cholesky_factor: L z = b, then L^T x = z (x may alias b)."""
    cdef int i
    for i in range(n):
        x[i] = (b[i] - dot(L + <Py_ssize_t> i * n, x, i)) / L[i * n + i]
    for i in range(n - 1, -1, -1):
        x[i] = (x[i] - dot(L + <Py_ssize_t> i * n + i + 1, x + i + 1, n - i - 1)) / L[i * n + i]
