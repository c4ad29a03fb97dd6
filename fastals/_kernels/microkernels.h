/* Register-tiled micro-kernels that compilers do not find on their own.
 *
 * Written with GCC/clang vector extensions, which each build lowers to its own instruction
 * set (4 SSE registers, 2 AVX2 registers or 1 AVX-512 register per 16 floats), so one
 * source serves every kernel build. Other compilers get the plain loops.
 *
 * fastals_tile_*(C, ldc, A, lda, B, ldb, n): a 4 x 16 tile of a matrix product,
 *     C[r * ldc + v] += sum_{j < n} A[j * lda + r] * B[j * ldb + v]   (r < 4, v < 16),
 * summed in the order j = 0, 1, ... so that results do not depend on how a caller blocks
 * the rows and columns around it. The sums stay in registers while A and B stream by.
 *
 * fastals_row_*(c, a, B, ldb, n): one row of 16, c[v] = sum_{j < n} a[j] * B[j * ldb + v]
 * (a matrix-vector product 16 outputs at a time, without horizontal reductions).
 */
#ifndef FASTALS_MICROKERNELS_H
#define FASTALS_MICROKERNELS_H

#include <stddef.h>
#include <string.h>

#if defined(__GNUC__) || defined(__clang__)

#define FASTALS_DEFINE_TILE(NAME, T)                                                       \
    typedef T NAME##_vec __attribute__((vector_size(16 * sizeof(T))));                     \
    static inline void NAME(T *C, ptrdiff_t ldc, const T *A, ptrdiff_t lda,                 \
                            const T *B, ptrdiff_t ldb, ptrdiff_t n)                         \
    {                                                                                       \
        NAME##_vec acc0 = {0}, acc1 = {0}, acc2 = {0}, acc3 = {0}, b, c;                    \
        for (ptrdiff_t j = 0; j < n; j++) {                                                 \
            const T *a = A + j * lda;                                                       \
            memcpy(&b, B + j * ldb, sizeof b);                                              \
            acc0 += a[0] * b;                                                               \
            acc1 += a[1] * b;                                                               \
            acc2 += a[2] * b;                                                               \
            acc3 += a[3] * b;                                                               \
        }                                                                                   \
        memcpy(&c, C, sizeof c); c += acc0; memcpy(C, &c, sizeof c); C += ldc;              \
        memcpy(&c, C, sizeof c); c += acc1; memcpy(C, &c, sizeof c); C += ldc;              \
        memcpy(&c, C, sizeof c); c += acc2; memcpy(C, &c, sizeof c); C += ldc;              \
        memcpy(&c, C, sizeof c); c += acc3; memcpy(C, &c, sizeof c);                        \
    }

#define FASTALS_DEFINE_ROW(NAME, T)                                                        \
    typedef T NAME##_vec __attribute__((vector_size(16 * sizeof(T))));                     \
    static inline void NAME(T *c, const T *a, const T *B, ptrdiff_t ldb, ptrdiff_t n)       \
    {                                                                                       \
        NAME##_vec acc = {0}, b;                                                            \
        for (ptrdiff_t j = 0; j < n; j++) {                                                 \
            memcpy(&b, B + j * ldb, sizeof b);                                              \
            acc += a[j] * b;                                                                \
        }                                                                                   \
        memcpy(c, &acc, sizeof acc);                                                        \
    }

#else

#define FASTALS_DEFINE_ROW(NAME, T)                                                        \
    static void NAME(T *c, const T *a, const T *B, ptrdiff_t ldb, ptrdiff_t n)              \
    {                                                                                       \
        T acc[16] = {0};                                                                    \
        for (ptrdiff_t j = 0; j < n; j++)                                                   \
            for (int v = 0; v < 16; v++) acc[v] += a[j] * B[j * ldb + v];                   \
        for (int v = 0; v < 16; v++) c[v] = acc[v];                                         \
    }

#define FASTALS_DEFINE_TILE(NAME, T)                                                       \
    static void NAME(T *C, ptrdiff_t ldc, const T *A, ptrdiff_t lda,                        \
                     const T *B, ptrdiff_t ldb, ptrdiff_t n)                                \
    {                                                                                       \
        T acc[4][16] = {{0}};                                                               \
        for (ptrdiff_t j = 0; j < n; j++)                                                   \
            for (int r = 0; r < 4; r++)                                                     \
                for (int v = 0; v < 16; v++) acc[r][v] += A[j * lda + r] * B[j * ldb + v]; \
        for (int r = 0; r < 4; r++)                                                         \
            for (int v = 0; v < 16; v++) C[r * ldc + v] += acc[r][v];                       \
    }

#endif

FASTALS_DEFINE_TILE(fastals_tile_f32, float)
FASTALS_DEFINE_TILE(fastals_tile_f64, double)
FASTALS_DEFINE_ROW(fastals_row_f32, float)
FASTALS_DEFINE_ROW(fastals_row_f64, double)

#endif
