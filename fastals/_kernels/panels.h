/* Score panels of the all-users top-N kernel (_retrieval.pxi): a register-blocked product
 * of MR users by PC items that also says which users have a score worth a heap visit.
 *
 * fastals_panel_*(C, A, B, n, threshold) computes
 *     C[r * PC + v] = sum_{j < n} A[j * MR + r] * B[j * PC + v]     (r < MR, v < PC)
 * with A and B packed (MR user factors, then PC item factors, per j), summed in the order
 * j = 0, 1, ... from zero: the same sums, bit for bit, as fastals_tile_* of microkernels.h
 * (the single-user kernels), so a score does not depend on the tiling. The MR x PC sums
 * stay in registers while A and B stream by. It returns a bit mask: bit r is set when a
 * score of row r exceeds threshold[r] (NaN never does), so a row whose heap would take
 * nothing from the panel (almost every row, once the heaps are full) is never read back.
 * fastals_panel_half_*: the same with PC / 2 columns (C's rows are then PC / 2 long).
 *
 * MR (FASTALS_PANEL_ROWS_*) and PC (FASTALS_PANEL_COLS_*) are set per build so that the
 * MR x PC / W sums (W values per register) take 12 to 16 registers: enough independent
 * multiply-adds to hide their latency on two FMA ports, with room for the B vectors and the
 * broadcast A values. PC is 32, 16, 8 or 4; every item block is a multiple of 16 columns,
 * so a PC = 32 build needs the half panel at most once per block.
 */
#ifndef FASTALS_PANELS_H
#define FASTALS_PANELS_H

#include <stddef.h>
#include <string.h>
#if defined(__SSE2__) || defined(_M_X64)
#include <immintrin.h>
#endif

#if defined(__GNUC__) || defined(__clang__)

#if defined(__AVX512F__)
#define FASTALS_PANEL_BYTES 64
#define FASTALS_PANEL_ROWS_F32 8   /* 8 x 32: 16 zmm sums */
#define FASTALS_PANEL_COLS_F32 32
#define FASTALS_PANEL_ROWS_F64 8   /* 8 x 16: 16 zmm sums */
#define FASTALS_PANEL_COLS_F64 16
#define FASTALS_ANY_ABOVE_f32(x, t) \
    ((unsigned) _mm512_cmp_ps_mask((__m512) (x), _mm512_set1_ps(t), _CMP_GT_OQ))
#define FASTALS_ANY_ABOVE_f64(x, t) \
    ((unsigned) _mm512_cmp_pd_mask((__m512d) (x), _mm512_set1_pd(t), _CMP_GT_OQ))
#elif defined(__AVX__)
#define FASTALS_PANEL_BYTES 32
#define FASTALS_PANEL_ROWS_F32 6   /* 6 x 16: 12 ymm sums */
#define FASTALS_PANEL_COLS_F32 16
#define FASTALS_PANEL_ROWS_F64 6   /* 6 x 8: 12 ymm sums */
#define FASTALS_PANEL_COLS_F64 8
#define FASTALS_ANY_ABOVE_f32(x, t) \
    ((unsigned) _mm256_movemask_ps(_mm256_cmp_ps((__m256) (x), _mm256_set1_ps(t), _CMP_GT_OQ)))
#define FASTALS_ANY_ABOVE_f64(x, t) \
    ((unsigned) _mm256_movemask_pd(_mm256_cmp_pd((__m256d) (x), _mm256_set1_pd(t), _CMP_GT_OQ)))
#else
#define FASTALS_PANEL_BYTES 16
#define FASTALS_PANEL_ROWS_F32 6   /* 6 x 8: 12 xmm sums */
#define FASTALS_PANEL_COLS_F32 8
#define FASTALS_PANEL_ROWS_F64 6   /* 6 x 4: 12 xmm sums */
#define FASTALS_PANEL_COLS_F64 4
#if defined(__SSE2__)
#define FASTALS_ANY_ABOVE_f32(x, t) \
    ((unsigned) _mm_movemask_ps(_mm_cmpgt_ps((__m128) (x), _mm_set1_ps(t))))
#define FASTALS_ANY_ABOVE_f64(x, t) \
    ((unsigned) _mm_movemask_pd(_mm_cmpgt_pd((__m128d) (x), _mm_set1_pd(t))))
#else  /* other GNU targets: compare lane by lane */
#define FASTALS_ANY_ABOVE_LANES(x, t, W) \
    __extension__ ({ unsigned m_ = 0; for (int i_ = 0; i_ < (W); i_++) m_ |= (x)[i_] > (t); m_; })
#define FASTALS_ANY_ABOVE_f32(x, t) FASTALS_ANY_ABOVE_LANES(x, t, 4)
#define FASTALS_ANY_ABOVE_f64(x, t) FASTALS_ANY_ABOVE_LANES(x, t, 2)
#endif
#endif

/* An MR x (NV * W) panel, NV registers per row, fully unrolled so the sums live in
 * registers; `acc += a * b` is the statement fastals_tile_* uses (contracted to one fused
 * multiply-add where the build has FMA, exactly as there). */
#define FASTALS_DEFINE_PANEL(NAME, T, SUFFIX, MR, NV)                                      \
    static inline unsigned NAME(T *restrict C, const T *restrict A, const T *restrict B,   \
                                ptrdiff_t n, const T *restrict threshold)                  \
    {                                                                                      \
        typedef T vec __attribute__((vector_size(FASTALS_PANEL_BYTES)));                   \
        enum { W = FASTALS_PANEL_BYTES / sizeof(T) };                                      \
        vec acc[MR][NV], b[NV];                                                            \
        unsigned mask = 0, above;                                                          \
        _Pragma("GCC unroll 16")                                                           \
        for (int r = 0; r < MR; r++)                                                       \
            _Pragma("GCC unroll 4")                                                        \
            for (int v = 0; v < NV; v++) acc[r][v] = (vec) {0};                            \
        for (ptrdiff_t j = 0; j < n; j++) {                                                \
            const T *a = A + j * MR;                                                       \
            _Pragma("GCC unroll 4")                                                        \
            for (int v = 0; v < NV; v++) memcpy(&b[v], B + (j * NV + v) * W, sizeof b[v]); \
            _Pragma("GCC unroll 16")                                                       \
            for (int r = 0; r < MR; r++)                                                   \
                _Pragma("GCC unroll 4")                                                    \
                for (int v = 0; v < NV; v++) acc[r][v] += a[r] * b[v];                     \
        }                                                                                  \
        _Pragma("GCC unroll 16")                                                           \
        for (int r = 0; r < MR; r++) {                                                     \
            above = 0;                                                                     \
            _Pragma("GCC unroll 4")                                                        \
            for (int v = 0; v < NV; v++) {                                                 \
                memcpy(C + (r * NV + v) * W, &acc[r][v], sizeof acc[r][v]);                \
                above |= FASTALS_ANY_ABOVE_##SUFFIX(acc[r][v], threshold[r]);              \
            }                                                                              \
            mask |= (unsigned) (above != 0) << r;                                          \
        }                                                                                  \
        return mask;                                                                       \
    }

#define FASTALS_PANEL_NV_F32 (FASTALS_PANEL_COLS_F32 * 4 / FASTALS_PANEL_BYTES)
#define FASTALS_PANEL_NV_F64 (FASTALS_PANEL_COLS_F64 * 8 / FASTALS_PANEL_BYTES)
FASTALS_DEFINE_PANEL(fastals_panel_f32, float, f32, FASTALS_PANEL_ROWS_F32, FASTALS_PANEL_NV_F32)
FASTALS_DEFINE_PANEL(fastals_panel_half_f32, float, f32, FASTALS_PANEL_ROWS_F32,
                     FASTALS_PANEL_NV_F32 / 2)
FASTALS_DEFINE_PANEL(fastals_panel_f64, double, f64, FASTALS_PANEL_ROWS_F64, FASTALS_PANEL_NV_F64)
FASTALS_DEFINE_PANEL(fastals_panel_half_f64, double, f64, FASTALS_PANEL_ROWS_F64,
                     FASTALS_PANEL_NV_F64 / 2)

#else  /* other compilers: plain loops, 4 x 16 */

#define FASTALS_PANEL_ROWS_F32 4
#define FASTALS_PANEL_COLS_F32 16
#define FASTALS_PANEL_ROWS_F64 4
#define FASTALS_PANEL_COLS_F64 16

#define FASTALS_DEFINE_PANEL(NAME, T, MR, PC)                                              \
    static unsigned NAME(T *C, const T *A, const T *B, ptrdiff_t n, const T *threshold)     \
    {                                                                                      \
        T acc[MR][PC] = {{0}};                                                             \
        unsigned mask = 0;                                                                 \
        for (ptrdiff_t j = 0; j < n; j++)                                                  \
            for (int r = 0; r < MR; r++)                                                   \
                for (int v = 0; v < PC; v++) acc[r][v] += A[j * MR + r] * B[j * PC + v];   \
        for (int r = 0; r < MR; r++)                                                       \
            for (int v = 0; v < PC; v++) {                                                 \
                C[r * PC + v] = acc[r][v];                                                 \
                if (acc[r][v] > threshold[r]) mask |= 1u << r;                             \
            }                                                                              \
        return mask;                                                                       \
    }

FASTALS_DEFINE_PANEL(fastals_panel_f32, float, 4, 16)
FASTALS_DEFINE_PANEL(fastals_panel_half_f32, float, 4, 8)
FASTALS_DEFINE_PANEL(fastals_panel_f64, double, 4, 16)
FASTALS_DEFINE_PANEL(fastals_panel_half_f64, double, 4, 8)

#endif

#endif
