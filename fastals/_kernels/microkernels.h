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
 *
 * fastals_dots4_*(out, b0, b1, b2, b3, x, F): four dot products with one vector, out[r] =
 * sum_{k < F} br[k] x[k] (r < 4): four independent sums in flight where a lone dot product
 * waits on each of its own additions. Each sum is taken 16 lanes at a time, the lanes
 * added in order, then the last F mod 16 terms.
 *
 * fastals_row4_*(c, a, B, ldb, n): fastals_row_* for 64 outputs, c[v] = sum_{j < n} a[j] *
 * B[j * ldb + v] (v < 64), in four registers (four independent sums per row of B).
 *
 * fastals_gram16_*(A, D, Z, n): A[r * D + k] += sum_{j < n} Z[j * 16 + r] Z[j * 16 + k] for
 * r <= k < D <= 16 (at least the upper triangle), with Z's rows padded to 16 (entries D..15
 * zero): the Gram matrix of short rows (small factor counts), one native vector of columns
 * per row of A in registers, instead of scalar edge tiles.
 *
 * fastals_sgd_step_*(p, q, base, lr, beta, F, &two_error): one SGD step on a rating whose
 * prediction is base + p . q (base = rating - mu - b_u - b_i): e = base - p . q, then
 * p, q = c1 p + c2 q, c1 q + c2 p with c1 = 1 - lr beta, c2 = 2 e lr (both from the old p
 * and q), i.e. p += lr (2 e q - beta p). Returns e and stores 2 e in *two_error. Rows of up
 * to 8 native vectors (128 float32 with AVX-512) are loaded once and kept in registers
 * between the dot product and the update, by unrolled instances for each vector count
 * (a step is then bound by its stores, not by reloading the rows); longer rows take two
 * passes. The last F mod W elements (W floats per register) are one masked register in the
 * AVX2 and AVX-512 builds (masked loads and stores never touch memory past the row), and
 * scalar code in the baseline build.
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

#define FASTALS_DEFINE_DOTS4(NAME, T)                                                      \
    typedef T NAME##_vec __attribute__((vector_size(16 * sizeof(T))));                     \
    static inline void NAME(T *out, const T *b0, const T *b1, const T *b2, const T *b3,     \
                            const T *x, int F)                                              \
    {                                                                                       \
        NAME##_vec acc0 = {0}, acc1 = {0}, acc2 = {0}, acc3 = {0}, xv, b;                   \
        int k = 0;                                                                          \
        for (; k + 16 <= F; k += 16) {                                                      \
            memcpy(&xv, x + k, sizeof xv);                                                  \
            memcpy(&b, b0 + k, sizeof b); acc0 += b * xv;                                   \
            memcpy(&b, b1 + k, sizeof b); acc1 += b * xv;                                   \
            memcpy(&b, b2 + k, sizeof b); acc2 += b * xv;                                   \
            memcpy(&b, b3 + k, sizeof b); acc3 += b * xv;                                   \
        }                                                                                   \
        T s0 = 0, s1 = 0, s2 = 0, s3 = 0;                                                   \
        for (int v = 0; v < 16; v++) {                                                      \
            s0 += acc0[v]; s1 += acc1[v]; s2 += acc2[v]; s3 += acc3[v];                     \
        }                                                                                   \
        for (; k < F; k++) {                                                                \
            s0 += b0[k] * x[k]; s1 += b1[k] * x[k]; s2 += b2[k] * x[k]; s3 += b3[k] * x[k]; \
        }                                                                                   \
        out[0] = s0; out[1] = s1; out[2] = s2; out[3] = s3;                                 \
    }

#define FASTALS_DEFINE_ROW4(NAME, T)                                                       \
    typedef T NAME##_vec __attribute__((vector_size(16 * sizeof(T))));                     \
    static inline void NAME(T *c, const T *a, const T *B, ptrdiff_t ldb, ptrdiff_t n)      \
    {                                                                                       \
        NAME##_vec acc0 = {0}, acc1 = {0}, acc2 = {0}, acc3 = {0}, b;                       \
        for (ptrdiff_t j = 0; j < n; j++) {                                                 \
            const T *row = B + j * ldb;                                                     \
            T aj = a[j];                                                                    \
            memcpy(&b, row, sizeof b); acc0 += aj * b;                                      \
            memcpy(&b, row + 16, sizeof b); acc1 += aj * b;                                 \
            memcpy(&b, row + 32, sizeof b); acc2 += aj * b;                                 \
            memcpy(&b, row + 48, sizeof b); acc3 += aj * b;                                 \
        }                                                                                   \
        memcpy(c, &acc0, sizeof acc0); memcpy(c + 16, &acc1, sizeof acc1);                  \
        memcpy(c + 32, &acc2, sizeof acc2); memcpy(c + 48, &acc3, sizeof acc3);             \
    }

/* Native vector width of the build: one register. */
#if defined(__AVX512F__)
#define FASTALS_VECTOR_BYTES 64
#elif defined(__AVX__)
#define FASTALS_VECTOR_BYTES 32
#else
#define FASTALS_VECTOR_BYTES 16
#endif

#define FASTALS_GRAM_ROWS 8  /* accumulator registers of a gram16 pass */

#define FASTALS_DEFINE_GRAM16(NAME, T)                                                     \
    typedef T NAME##_vec __attribute__((vector_size(FASTALS_VECTOR_BYTES)));                \
    enum { NAME##_W = FASTALS_VECTOR_BYTES / sizeof(T) };                                   \
    static inline void NAME(T *A, int D, const T *Z, ptrdiff_t n)                           \
    {                                                                                       \
        /* passes over Z: a block of W columns x FASTALS_GRAM_ROWS rows of A at a time,     \
           the rows the upper triangle needs (r < c0 + W) */                                \
        for (int c0 = 0; c0 < D; c0 += NAME##_W) {                                          \
            int width = D - c0 < NAME##_W ? D - c0 : NAME##_W;                              \
            int rows = c0 + width;                                                          \
            for (int r0 = 0; r0 < rows; r0 += FASTALS_GRAM_ROWS) {                          \
                NAME##_vec acc[FASTALS_GRAM_ROWS], z;                                       \
                T out[NAME##_W];                                                            \
                for (int r = 0; r < FASTALS_GRAM_ROWS; r++)                                 \
                    for (int k = 0; k < NAME##_W; k++) acc[r][k] = 0;                       \
                for (ptrdiff_t j = 0; j < n; j++) {                                         \
                    const T *zj = Z + j * 16;                                               \
                    memcpy(&z, zj + c0, sizeof z);                                          \
                    for (int r = 0; r < FASTALS_GRAM_ROWS; r++)                             \
                        if (r0 + r < rows) acc[r] += zj[r0 + r] * z;                        \
                }                                                                           \
                for (int r = 0; r < FASTALS_GRAM_ROWS && r0 + r < rows; r++) {              \
                    memcpy(out, &acc[r], sizeof out);                                       \
                    for (int k = 0; k < width; k++) A[(r0 + r) * D + c0 + k] += out[k];     \
                }                                                                           \
            }                                                                               \
        }                                                                                   \
    }

/* Partial registers: the first n < W elements of a row (the other lanes zero), and the
 * store of those n lanes. A masked load or store does not touch the masked-off memory, so
 * a row's tail is read and written in place. Only the AVX2 and AVX-512 builds have them
 * (FASTALS_MASKED_TAIL); the baseline build handles tails with scalar code. */
#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#define FASTALS_MASKED_TAIL 1
#if defined(__AVX512F__)
static inline __m512 fastals_tail_load_f32(const float *s, int n)
{ return _mm512_maskz_loadu_ps((__mmask16) ((1u << n) - 1), s); }
static inline void fastals_tail_store_f32(float *d, __m512 v, int n)
{ _mm512_mask_storeu_ps(d, (__mmask16) ((1u << n) - 1), v); }
static inline __m512d fastals_tail_load_f64(const double *s, int n)
{ return _mm512_maskz_loadu_pd((__mmask8) ((1u << n) - 1), s); }
static inline void fastals_tail_store_f64(double *d, __m512d v, int n)
{ _mm512_mask_storeu_pd(d, (__mmask8) ((1u << n) - 1), v); }
#else
static inline __m256i fastals_tail_mask32(int n)
{ return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)); }
static inline __m256i fastals_tail_mask64(int n)
{ return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3)); }
static inline __m256 fastals_tail_load_f32(const float *s, int n)
{ return _mm256_maskload_ps(s, fastals_tail_mask32(n)); }
static inline void fastals_tail_store_f32(float *d, __m256 v, int n)
{ _mm256_maskstore_ps(d, fastals_tail_mask32(n), v); }
static inline __m256d fastals_tail_load_f64(const double *s, int n)
{ return _mm256_maskload_pd(s, fastals_tail_mask64(n)); }
static inline void fastals_tail_store_f64(double *d, __m256d v, int n)
{ _mm256_maskstore_pd(d, fastals_tail_mask64(n), v); }
#endif
#else
#define FASTALS_MASKED_TAIL 0
#endif

/* One step with rows of N whole vectors and a tail of F - N W < W elements, the N-vector
 * loops unrolled so that p and q stay in registers (N is a constant in each instance). The
 * tail is one more (masked) register where the build has masked loads and stores. */
#define FASTALS_DEFINE_SGD_FIXED(NAME, T, SUFFIX, N)                                       \
    static inline T NAME##_##N(T *restrict p, T *restrict q, T base, T c1, T lr, int F,      \
                               T *two_error)                                                \
    {                                                                                       \
        NAME##_vec x[N + 1], y[N + 1], a0 = {0}, a1 = {0}, xn, yn;                          \
        T dot = 0, e, c2;                                                                   \
        const int tail = F - N * NAME##_W;                                                  \
        _Pragma("GCC unroll 8")                                                             \
        for (int c = 0; c < N; c++) {                                                       \
            memcpy(&x[c], p + c * NAME##_W, sizeof x[c]);                                   \
            memcpy(&y[c], q + c * NAME##_W, sizeof y[c]);                                   \
            if (c & 1) a1 += x[c] * y[c]; else a0 += x[c] * y[c];                           \
        }                                                                                   \
        if (FASTALS_MASKED_TAIL && tail) {                                                  \
            FASTALS_TAIL_LOAD(SUFFIX, x[N], p + N * NAME##_W, tail);                        \
            FASTALS_TAIL_LOAD(SUFFIX, y[N], q + N * NAME##_W, tail);                        \
            if (N & 1) a1 += x[N] * y[N]; else a0 += x[N] * y[N];                           \
        } else {                                                                            \
            for (int f = N * NAME##_W; f < F; f++) dot += p[f] * q[f];                      \
        }                                                                                   \
        dot += NAME##_sum(a0 + a1);                                                         \
        e = base - dot;                                                                     \
        *two_error = e + e;                                                                 \
        c2 = lr * *two_error;                                                               \
        _Pragma("GCC unroll 8")                                                             \
        for (int c = 0; c < N; c++) {                                                       \
            xn = c1 * x[c] + c2 * y[c];                                                     \
            yn = c1 * y[c] + c2 * x[c];                                                     \
            memcpy(p + c * NAME##_W, &xn, sizeof xn);                                       \
            memcpy(q + c * NAME##_W, &yn, sizeof yn);                                       \
        }                                                                                   \
        if (FASTALS_MASKED_TAIL && tail) {                                                  \
            xn = c1 * x[N] + c2 * y[N];                                                     \
            yn = c1 * y[N] + c2 * x[N];                                                     \
            FASTALS_TAIL_STORE(SUFFIX, p + N * NAME##_W, xn, tail);                         \
            FASTALS_TAIL_STORE(SUFFIX, q + N * NAME##_W, yn, tail);                         \
        } else {                                                                            \
            for (int f = N * NAME##_W; f < F; f++) {                                        \
                T pf = p[f], qf = q[f];                                                     \
                p[f] = c1 * pf + c2 * qf;                                                   \
                q[f] = c1 * qf + c2 * pf;                                                   \
            }                                                                               \
        }                                                                                   \
        return e;                                                                           \
    }

/* The tail register of a row (vector-extension type and intrinsic type are the same bits) */
#if FASTALS_MASKED_TAIL
#define FASTALS_TAIL_LOAD(SUFFIX, v, src, n)                                               \
    do {                                                                                    \
        __typeof__(fastals_tail_load_##SUFFIX(src, n)) t_ = fastals_tail_load_##SUFFIX(src, n); \
        memcpy(&(v), &t_, sizeof t_);                                                       \
    } while (0)
#define FASTALS_TAIL_STORE(SUFFIX, dst, v, n)                                              \
    do {                                                                                    \
        __typeof__(fastals_tail_load_##SUFFIX(dst, n)) t_;                                 \
        memcpy(&t_, &(v), sizeof t_);                                                       \
        fastals_tail_store_##SUFFIX(dst, t_, n);                                            \
    } while (0)
#else
#define FASTALS_TAIL_LOAD(SUFFIX, v, src, n) ((void) 0)
#define FASTALS_TAIL_STORE(SUFFIX, dst, v, n) ((void) 0)
#endif

#define FASTALS_DEFINE_SGD_STEP(NAME, T, SUFFIX)                                           \
    typedef T NAME##_vec __attribute__((vector_size(FASTALS_VECTOR_BYTES)));                \
    enum { NAME##_W = FASTALS_VECTOR_BYTES / sizeof(T) };                                   \
    static inline T NAME##_sum(NAME##_vec v)                                                \
    {                                                                                       \
        T total = 0;                                                                        \
        for (int k = 0; k < NAME##_W; k++) total += v[k];                                  \
        return total;                                                                       \
    }                                                                                       \
    FASTALS_DEFINE_SGD_FIXED(NAME, T, SUFFIX, 0)                                       \
    FASTALS_DEFINE_SGD_FIXED(NAME, T, SUFFIX, 1)                                       \
    FASTALS_DEFINE_SGD_FIXED(NAME, T, SUFFIX, 2)                                       \
    FASTALS_DEFINE_SGD_FIXED(NAME, T, SUFFIX, 3)                                       \
    FASTALS_DEFINE_SGD_FIXED(NAME, T, SUFFIX, 4)                                       \
    FASTALS_DEFINE_SGD_FIXED(NAME, T, SUFFIX, 5)                                       \
    FASTALS_DEFINE_SGD_FIXED(NAME, T, SUFFIX, 6)                                       \
    FASTALS_DEFINE_SGD_FIXED(NAME, T, SUFFIX, 7)                                       \
    FASTALS_DEFINE_SGD_FIXED(NAME, T, SUFFIX, 8)                                       \
    static inline T NAME(T *restrict p, T *restrict q, T base, T lr, T beta, int F,         \
                         T *two_error)                                                      \
    {                                                                                       \
        const int C = F / NAME##_W;                                                         \
        const T c1 = 1 - lr * beta;                                                         \
        NAME##_vec xv, yv, xn, yn, a0 = {0}, a1 = {0};                                      \
        T dot = 0, e, c2;                                                                   \
        int f;                                                                              \
        switch (C) {                                                                        \
        case 0: return NAME##_0(p, q, base, c1, lr, F, two_error);                          \
        case 1: return NAME##_1(p, q, base, c1, lr, F, two_error);                          \
        case 2: return NAME##_2(p, q, base, c1, lr, F, two_error);                          \
        case 3: return NAME##_3(p, q, base, c1, lr, F, two_error);                          \
        case 4: return NAME##_4(p, q, base, c1, lr, F, two_error);                          \
        case 5: return NAME##_5(p, q, base, c1, lr, F, two_error);                          \
        case 6: return NAME##_6(p, q, base, c1, lr, F, two_error);                          \
        case 7: return NAME##_7(p, q, base, c1, lr, F, two_error);                          \
        case 8: return NAME##_8(p, q, base, c1, lr, F, two_error);                          \
        default: break;                                                                     \
        }                                                                                   \
        /* longer rows: two passes, reloading p and q */                                    \
        for (int c = 0; c < C; c++) {                                                       \
            memcpy(&xv, p + c * NAME##_W, sizeof xv);                                       \
            memcpy(&yv, q + c * NAME##_W, sizeof yv);                                       \
            if (c & 1) a1 += xv * yv; else a0 += xv * yv;                                   \
        }                                                                                   \
        for (f = C * NAME##_W; f < F; f++) dot += p[f] * q[f];                              \
        dot += NAME##_sum(a0 + a1);                                                         \
        e = base - dot;                                                                     \
        *two_error = e + e;                                                                 \
        c2 = lr * *two_error;                                                               \
        for (int c = 0; c < C; c++) {                                                       \
            memcpy(&xv, p + c * NAME##_W, sizeof xv);                                       \
            memcpy(&yv, q + c * NAME##_W, sizeof yv);                                       \
            xn = c1 * xv + c2 * yv;                                                         \
            yn = c1 * yv + c2 * xv;                                                         \
            memcpy(p + c * NAME##_W, &xn, sizeof xn);                                       \
            memcpy(q + c * NAME##_W, &yn, sizeof yn);                                       \
        }                                                                                   \
        for (f = C * NAME##_W; f < F; f++) {                                                \
            T pf = p[f], qf = q[f];                                                         \
            p[f] = c1 * pf + c2 * qf;                                                       \
            q[f] = c1 * qf + c2 * pf;                                                       \
        }                                                                                   \
        return e;                                                                           \
    }

#else

#define FASTALS_DEFINE_GRAM16(NAME, T)                                                     \
    static void NAME(T *A, int D, const T *Z, ptrdiff_t n)                                  \
    {                                                                                       \
        for (ptrdiff_t j = 0; j < n; j++)                                                   \
            for (int r = 0; r < D; r++)                                                     \
                for (int k = 0; k < D; k++) A[r * D + k] += Z[j * 16 + r] * Z[j * 16 + k];  \
    }

#define FASTALS_DEFINE_SGD_STEP(NAME, T, SUFFIX)                                           \
    static T NAME(T *p, T *q, T base, T lr, T beta, int F, T *two_error)                   \
    {                                                                                       \
        T dot = 0, e, c1 = 1 - lr * beta, c2;                                               \
        for (int f = 0; f < F; f++) dot += p[f] * q[f];                                     \
        e = base - dot;                                                                     \
        *two_error = e + e;                                                                 \
        c2 = lr * *two_error;                                                               \
        for (int f = 0; f < F; f++) {                                                       \
            T pf = p[f], qf = q[f];                                                         \
            p[f] = c1 * pf + c2 * qf;                                                       \
            q[f] = c1 * qf + c2 * pf;                                                       \
        }                                                                                   \
        return e;                                                                           \
    }

#define FASTALS_DEFINE_ROW(NAME, T)                                                        \
    static void NAME(T *c, const T *a, const T *B, ptrdiff_t ldb, ptrdiff_t n)              \
    {                                                                                       \
        T acc[16] = {0};                                                                    \
        for (ptrdiff_t j = 0; j < n; j++)                                                   \
            for (int v = 0; v < 16; v++) acc[v] += a[j] * B[j * ldb + v];                   \
        for (int v = 0; v < 16; v++) c[v] = acc[v];                                         \
    }

#define FASTALS_DEFINE_DOTS4(NAME, T)                                                      \
    static void NAME(T *out, const T *b0, const T *b1, const T *b2, const T *b3,            \
                     const T *x, int F)                                                     \
    {                                                                                       \
        const T *b[4] = {b0, b1, b2, b3};                                                   \
        for (int r = 0; r < 4; r++) {                                                       \
            T s = 0;                                                                        \
            for (int k = 0; k < F; k++) s += b[r][k] * x[k];                                \
            out[r] = s;                                                                     \
        }                                                                                   \
    }

#define FASTALS_DEFINE_ROW4(NAME, T)                                                       \
    static void NAME(T *c, const T *a, const T *B, ptrdiff_t ldb, ptrdiff_t n)              \
    {                                                                                       \
        T acc[64] = {0};                                                                    \
        for (ptrdiff_t j = 0; j < n; j++)                                                   \
            for (int v = 0; v < 64; v++) acc[v] += a[j] * B[j * ldb + v];                   \
        for (int v = 0; v < 64; v++) c[v] = acc[v];                                         \
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
FASTALS_DEFINE_ROW4(fastals_row4_f32, float)
FASTALS_DEFINE_ROW4(fastals_row4_f64, double)
FASTALS_DEFINE_DOTS4(fastals_dots4_f32, float)
FASTALS_DEFINE_DOTS4(fastals_dots4_f64, double)
FASTALS_DEFINE_GRAM16(fastals_gram16_f32, float)
FASTALS_DEFINE_GRAM16(fastals_gram16_f64, double)
FASTALS_DEFINE_SGD_STEP(fastals_sgd_step_f32, float, f32)
FASTALS_DEFINE_SGD_STEP(fastals_sgd_step_f64, double, f64)

#endif
