# Shared types and the small inner loops every kernel uses.
#
# The loops are plain C loops over `n` contiguous values: with the build's reassociation
# flags the compiler vectorises them for whichever instruction set the including module is
# built for (see setup.py), so one source serves SSE2, AVX2 and AVX-512 builds.
from libc.stdint cimport int32_t, int64_t
from libc.string cimport memset

cdef extern from *:
    """
    #if defined(__GNUC__) || defined(__clang__)
    #define FASTALS_PREFETCH(p) __builtin_prefetch((const void*)(p), 0, 3)
    #else
    #define FASTALS_PREFETCH(p) ((void)0)
    #endif
    """
    void prefetch "FASTALS_PREFETCH"(const void* p) noexcept nogil

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


cdef extern from "microkernels.h" nogil:
    void tile_f32 "fastals_tile_f32"(float* C, Py_ssize_t ldc, const float* A, Py_ssize_t lda,
                                     const float* B, Py_ssize_t ldb, Py_ssize_t n)
    void tile_f64 "fastals_tile_f64"(double* C, Py_ssize_t ldc, const double* A, Py_ssize_t lda,
                                     const double* B, Py_ssize_t ldb, Py_ssize_t n)
    void row_f32 "fastals_row_f32"(float* c, const float* a, const float* B, Py_ssize_t ldb,
                                   Py_ssize_t n)
    void row_f64 "fastals_row_f64"(double* c, const double* a, const double* B, Py_ssize_t ldb,
                                   Py_ssize_t n)


cdef inline void symv(const floating* A, const floating* x, floating* out, int n) noexcept nogil:
    """out = A @ x for a dense symmetric row-major n x n matrix A.

    Since A is symmetric, out[i:i+16] = sum_j x[j] A[j, i:i+16]: 16 outputs at a time in
    one register (microkernels.h); the last n % 16 outputs are dot products.
    """
    cdef int i, full = n - n % 16
    for i in range(0, full, 16):
        if floating is float:
            row_f32(out + i, x, A + i, n, n)
        else:
            row_f64(out + i, x, A + i, n, n)
    for i in range(full, n):
        out[i] = dot(A + <Py_ssize_t> i * n, x, n)


cdef inline void prefetch_row(const floating* row, int n) noexcept nogil:
    """Ask for the cache lines of a row that will be read soon."""
    cdef Py_ssize_t offset
    for offset in range(0, n * sizeof(floating), 64):
        prefetch(<const char*> row + offset)


cdef inline void prefetch_bytes(const void* start, Py_ssize_t nbytes) noexcept nogil:
    """Ask for the cache lines of `nbytes` bytes from `start` (any element type)."""
    cdef Py_ssize_t offset
    for offset in range(0, nbytes, 64):
        prefetch(<const char*> start + offset)


cdef inline void tile(floating* C, Py_ssize_t ldc, const floating* A, Py_ssize_t lda,
                      const floating* B, Py_ssize_t ldb, Py_ssize_t n) noexcept nogil:
    """C[r, v] += sum_j A[j, r] B[j, v] for a 4 x 16 tile (see microkernels.h)."""
    if floating is float:
        tile_f32(C, ldc, A, lda, B, ldb, n)
    else:
        tile_f64(C, ldc, A, lda, B, ldb, n)
