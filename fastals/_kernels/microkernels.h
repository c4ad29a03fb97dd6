/* Register-tiled micro-kernels that compilers do not find on their own.
 *
 * Written with GCC/clang vector extensions, which each build lowers to its own instruction
 * set (4 SSE registers, 2 AVX2 registers or 1 AVX-512 register per 16 floats), so one
 * source serves every kernel build. Other compilers get the plain loops.
 *
 * fastals_tile_*: the 4 x 16 tile A[i0:i0+4, k0:k0+16] += sum_j Z[j, i0+r] Z[j, k0:k0+16]
 * for a row-major K x K matrix A and n x K matrix Z (the caller keeps the tile in bounds).
 */
#ifndef FASTALS_MICROKERNELS_H
#define FASTALS_MICROKERNELS_H

#include <stddef.h>
#include <string.h>

#if defined(__GNUC__) || defined(__clang__)

#define FASTALS_DEFINE_TILE(NAME, T)                                                       \
    typedef T NAME##_vec __attribute__((vector_size(16 * sizeof(T))));                     \
    static inline void NAME(T *A, const T *Z, ptrdiff_t n, int K, int i0, int k0)           \
    {                                                                                       \
        NAME##_vec acc0 = {0}, acc1 = {0}, acc2 = {0}, acc3 = {0}, zk, a;                   \
        for (ptrdiff_t j = 0; j < n; j++) {                                                 \
            const T *z = Z + j * K;                                                         \
            memcpy(&zk, z + k0, sizeof zk);                                                 \
            acc0 += z[i0] * zk;                                                             \
            acc1 += z[i0 + 1] * zk;                                                         \
            acc2 += z[i0 + 2] * zk;                                                         \
            acc3 += z[i0 + 3] * zk;                                                         \
        }                                                                                   \
        T *row = A + (ptrdiff_t)i0 * K + k0;                                                \
        memcpy(&a, row, sizeof a); a += acc0; memcpy(row, &a, sizeof a); row += K;          \
        memcpy(&a, row, sizeof a); a += acc1; memcpy(row, &a, sizeof a); row += K;          \
        memcpy(&a, row, sizeof a); a += acc2; memcpy(row, &a, sizeof a); row += K;          \
        memcpy(&a, row, sizeof a); a += acc3; memcpy(row, &a, sizeof a);                    \
    }

#else

#define FASTALS_DEFINE_TILE(NAME, T)                                                       \
    static void NAME(T *A, const T *Z, ptrdiff_t n, int K, int i0, int k0)                  \
    {                                                                                       \
        for (ptrdiff_t j = 0; j < n; j++) {                                                 \
            const T *z = Z + j * K;                                                         \
            for (int r = 0; r < 4; r++) {                                                   \
                T *row = A + (ptrdiff_t)(i0 + r) * K + k0;                                  \
                for (int v = 0; v < 16; v++) row[v] += z[i0 + r] * z[k0 + v];               \
            }                                                                               \
        }                                                                                   \
    }

#endif

FASTALS_DEFINE_TILE(fastals_tile_f32, float)
FASTALS_DEFINE_TILE(fastals_tile_f64, double)

#endif
