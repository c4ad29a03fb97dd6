# Shared types and the small inner loops every kernel uses.
#
# The loops are plain C loops over `n` contiguous values: with the build's reassociation
# flags the compiler vectorises them for whichever instruction set the including module is
# built for (see setup.py), so one source serves SSE2, AVX2 and AVX-512 builds.
from libc.math cimport INFINITY, sqrt
from libc.stdint cimport int32_t, int64_t
from libc.string cimport memset

cdef extern from *:
    """
    #if defined(__GNUC__) || defined(__clang__)
    #define FASTALS_PREFETCH(p) __builtin_prefetch((const void*)(p), 0, 3)
    #define FASTALS_PREFETCH_WRITE(p) __builtin_prefetch((const void*)(p), 1, 3)
    #else
    #define FASTALS_PREFETCH(p) ((void)0)
    #define FASTALS_PREFETCH_WRITE(p) ((void)0)
    #endif
    """
    void prefetch "FASTALS_PREFETCH"(const void* p) noexcept nogil
    # a line that will be written: fetched ready to write (x86 PREFETCHW), which saves the
    # second request a write to a line fetched for reading makes
    void prefetch_write "FASTALS_PREFETCH_WRITE"(const void* p) noexcept nogil

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
    void row4_f32 "fastals_row4_f32"(float* c, const float* a, const float* B, Py_ssize_t ldb,
                                     Py_ssize_t n)
    void row4_f64 "fastals_row4_f64"(double* c, const double* a, const double* B,
                                     Py_ssize_t ldb, Py_ssize_t n)
    void dots4_f32 "fastals_dots4_f32"(float* out, const float* b0, const float* b1,
                                       const float* b2, const float* b3, const float* x,
                                       int F)
    void dots4_f64 "fastals_dots4_f64"(double* out, const double* b0, const double* b1,
                                       const double* b2, const double* b3, const double* x,
                                       int F)
    void gram16_f32 "fastals_gram16_f32"(float* A, int D, const float* Z, Py_ssize_t n)
    void gram16_f64 "fastals_gram16_f64"(double* A, int D, const double* Z, Py_ssize_t n)
    float sgd_step_f32 "fastals_sgd_step_f32"(float* p, float* q, float base, float lr,
                                              float beta, int F, float* two_error)
    double sgd_step_f64 "fastals_sgd_step_f64"(double* p, double* q, double base, double lr,
                                               double beta, int F, double* two_error)


cdef inline void symv(const floating* A, const floating* x, floating* out, int n) noexcept nogil:
    """out = A @ x for a dense symmetric row-major n x n matrix A.

    Since A is symmetric, out[i:i+64] = sum_j x[j] A[j, i:i+64]: 64 outputs at a time in
    four registers (four independent sums: one alone waits on its own additions), then 16
    at a time in one (microkernels.h); the last n % 16 outputs are dot products.
    """
    cdef int i, wide = n - n % 64, full = n - n % 16
    for i in range(0, wide, 64):
        if floating is float:
            row4_f32(out + i, x, A + i, n, n)
        else:
            row4_f64(out + i, x, A + i, n, n)
    for i in range(wide, full, 16):
        if floating is float:
            row_f32(out + i, x, A + i, n, n)
        else:
            row_f64(out + i, x, A + i, n, n)
    for i in range(full, n):
        out[i] = dot(A + <Py_ssize_t> i * n, x, n)


cdef inline void dots4(floating* out, const floating* b0, const floating* b1,
                       const floating* b2, const floating* b3, const floating* x,
                       int F) noexcept nogil:
    """out[r] = br . x for four rows b0..b3 of F values anywhere (microkernels.h's dots4)."""
    if floating is float:
        dots4_f32(out, b0, b1, b2, b3, x, F)
    else:
        dots4_f64(out, b0, b1, b2, b3, x, F)


cdef inline void axpy4(const floating* a, const floating* b0, const floating* b1,
                       const floating* b2, const floating* b3, floating* out,
                       int F) noexcept nogil:
    """out += a[0] b0 + a[1] b1 + a[2] b2 + a[3] b3: one read and write of out for four
    rows instead of four."""
    cdef int k
    cdef floating a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3]
    for k in range(F):
        out[k] = out[k] + ((a0 * b0[k] + a1 * b1[k]) + (a2 * b2[k] + a3 * b3[k]))


cdef inline void rows_dot(const floating* B, const floating* x, Py_ssize_t n, int F,
                         floating* out) noexcept nogil:
    """out[j] = B[j, :] . x for the rows of a contiguous row-major n x F matrix B.

    Four rows at a time share each load of x (microkernels.h's dots4: four sums in flight
    instead of one, as a lone dot product waits on its own additions); the last n % 4
    rows are plain dot products.
    """
    cdef Py_ssize_t j
    cdef const floating* b
    for j in range(0, n - n % 4, 4):
        b = B + j * F
        dots4(out + j, b, b + F, b + 2 * F, b + 3 * F, x, F)
    for j in range(n - n % 4, n):
        out[j] = dot(B + j * F, x, F)


cdef inline void add_transposed_times(const floating* B, const floating* a, Py_ssize_t n,
                                      int F, floating* out) noexcept nogil:
    """out += B^T a = sum_j a[j] B[j, :] for a contiguous row-major n x F matrix B.

    64 outputs at a time summed in four registers over all n rows (microkernels.h's row4),
    then 16 at a time (row), then added to out once, instead of n read-modify-writes of
    out; the last F % 16 outputs by scalar sums.
    """
    cdef int i, v, wide = F - F % 64, full = F - F % 16
    cdef Py_ssize_t j
    cdef floating total
    cdef floating acc[64]
    for i in range(0, wide, 64):
        if floating is float:
            row4_f32(acc, a, B + i, F, n)
        else:
            row4_f64(acc, a, B + i, F, n)
        for v in range(64):
            out[i + v] = out[i + v] + acc[v]
    for i in range(wide, full, 16):
        if floating is float:
            row_f32(acc, a, B + i, F, n)
        else:
            row_f64(acc, a, B + i, F, n)
        for v in range(16):
            out[i + v] = out[i + v] + acc[v]
    for i in range(full, F):
        total = 0
        for j in range(n):
            total = total + a[j] * B[j * F + i]
        out[i] = out[i] + total


cdef inline void prefetch_row(const floating* row, int n) noexcept nogil:
    """Ask for the cache lines of a row that will be read soon."""
    cdef Py_ssize_t offset
    for offset in range(0, n * sizeof(floating), 64):
        prefetch(<const char*> row + offset)


cdef inline void prefetch_row_write(const floating* row, int n) noexcept nogil:
    """Ask for the cache lines of a row that will be read and written soon."""
    cdef Py_ssize_t offset
    for offset in range(0, n * sizeof(floating), 64):
        prefetch_write(<const char*> row + offset)


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


# --- dense solves shared by the ALS kernels (_als.pxi, _explicit.pxi) -------------------

cdef inline void rank_update_upper(floating* A, const floating* Z, Py_ssize_t n,
                                   int D) noexcept nogil:
    """A[i, k] += sum_j Z[j, i] Z[j, k] for k >= i: the upper triangle of A += Z^T Z.

    A is D x D and Z is n x D, both row-major. Full tiles of 4 rows x 16 columns keep their
    sums in registers while streaming over the n rows of Z (microkernels.h); edge tiles
    fall back to axpy.
    """
    cdef int i0, k0, r, rows, width
    cdef Py_ssize_t j
    cdef const floating* z
    for i0 in range(0, D, 4):
        rows = min(4, D - i0)
        for k0 in range(i0, D, 16):
            width = min(16, D - k0)
            if rows == 4 and width == 16:
                tile(A + <Py_ssize_t> i0 * D + k0, D, Z + i0, D, Z + k0, D, n)
            else:
                for r in range(rows):
                    for j in range(n):
                        z = Z + j * D
                        axpy(z[i0 + r], z + k0, A + <Py_ssize_t> (i0 + r) * D + k0, width)


cdef inline void rank_downdate_upper(floating* A, const floating* Z, Py_ssize_t n,
                                     int D) noexcept nogil:
    """A -= Z^T Z (upper triangle), as -((-A) + Z^T Z): negation is exact."""
    cdef Py_ssize_t k, size = <Py_ssize_t> D * D
    for k in range(size):
        A[k] = -A[k]
    rank_update_upper(A, Z, n, D)
    for k in range(size):
        A[k] = -A[k]


cdef inline bint cholesky_solve_upper(floating* A, floating* b, int D) noexcept nogil:
    """Solve A x = b in place (x in b), A symmetric positive definite given by its upper
    triangle (row-major). A is overwritten by U with A = U^T U (right-looking Cholesky: each
    step is a contiguous axpy, no reductions). Returns False if A is not positive definite
    (or a pivot is not finite: an overflowed system must not pass for a solved one)."""
    cdef int i, k
    cdef floating d
    cdef floating* row_k
    for k in range(D):
        row_k = A + <Py_ssize_t> k * D
        if not (row_k[k] > 0 and row_k[k] < INFINITY):
            return False
        d = sqrt(row_k[k])
        row_k[k] = d
        for i in range(k + 1, D):
            row_k[i] = row_k[i] / d
        for i in range(k + 1, D):
            axpy(-row_k[i], row_k + i, A + <Py_ssize_t> i * D + i, D - i)
    # U^T z = b (forward, by columns of U^T = rows of U), then U x = z (backward)
    for k in range(D):
        b[k] = b[k] / A[k * D + k]
        axpy(-b[k], A + <Py_ssize_t> k * D + k + 1, b + k + 1, D - k - 1)
    for i in range(D - 1, -1, -1):
        b[i] = (b[i] - dot(A + <Py_ssize_t> i * D + i + 1, b + i + 1, D - i - 1)) / A[i * D + i]
    return True
