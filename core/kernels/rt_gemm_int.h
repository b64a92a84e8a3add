/* rt_gemm_int.h — the "rt_gemm" kernel family: the runtime's hot loops (the compressed linear
 * layers, small-K products, depthwise planes, the 2x2 max pool and im2col's stride-2 copy).
 *
 * Each kernel has a portable reference in rt_gemm_ref.c (the specification) and AVX2 and
 * AVX-512 variants in rt_gemm_avx2.c and rt_gemm_avx512.c. Kernels never allocate and never
 * fail. Matrices are row-major with explicit leading dimensions (in elements).
 *
 * Contracts:
 * - s8_gemm: out[m*ldo + n] = sum_k (xu[m*ldx + k] - 128) * w[n*ldw + k] for m < M, n < N,
 *   k < K, computed exactly in int32 (the caller keeps K <= RT_S8_MAX_K so it cannot overflow).
 *   Activations come as unsigned bytes offset by 128 because VNNI's vpdpbusd multiplies
 *   unsigned by signed bytes; wsum[n] = sum_k w[n*ldw + k] lets a variant accumulate
 *   xu * w and subtract 128 * wsum[n] at the end. Every variant gives the same bits.
 *   The AVX-512 variant uses vpdpbusd when the CPU has AVX-512 VNNI (else the AVX2 variant
 *   serves the avx512 table); the AVX2 variant widens to 16 bits (vpmaddwd), which never
 *   saturates, unlike vpmaddubsw.
 * - csr_mm: out[n*ldo + p] = sum_{j = rowptr[n]}^{rowptr[n+1]-1} val[j] * b[col[j]*ldb + p] for
 *   n < N, p < P: a CSR matrix times a dense one (P == 1: times a vector). Sums in another
 *   order than _ref: variants agree within RT_F32_SUM_BOUND x sum |terms|.
 * - cb_gemv: y[n] = sum_k x[k] * cb[idx[n*ldi + k]] for n < N, k < K: a row of activations
 *   times a matrix stored as codebook indices (every index < n_cb <= 256). Same bound.
 * - wx_bias: out[m*ldo + p] = bias[m] + sum_k w[m*ldw + k] * x[k*ldx + p] for m < M, p < P
 *   (bias NULL: 0): a weight matrix times a column matrix, as a 1x1 convolution (or im2col's
 *   columns) wants it, without packing either, for small K. Variants use fused multiply-add:
 *   within RT_F32_SUM_BOUND x (|bias| + sum |terms|) of _ref.
 * - dw_plane: one output plane of a depthwise convolution over an input plane that already
 *   holds its padding: y[r*ow + i] = bias + sum_{a < g->kh, b < g->kw} w[a*kw + b] *
 *   x[(r*sh + a*dh)*ldx + i*sw + b*dw] for r < oh, i < ow, each product rounded and added in
 *   tap order (a, then b; no fused multiply-add), so every variant gives the same bits as _ref.
 * - max2x2: rows output rows of a 2x2 stride-2 max pool whose windows lie inside the input: with
 *   x0 = x + 2r*ldx and x1 = x0 + ldx (the input row pair of output row r < rows), y[r*n + i] =
 *   the maximum of x0[2i], x0[2i+1], x1[2i], x1[2i+1] for i < n, taken in that order by
 *   acc = (v > acc || v is NaN) ? v : acc from the first (so a NaN wins and stays, and of +0 and
 *   -0 the first seen is kept); with relu, each v is first v > 0 ? v : 0 (Relu's own formula:
 *   NaN and -0 become +0), i.e. the pool of a Relu's output. Every variant gives the same bits
 *   as _ref.
 *
 * - stride2: y[i] = x[2i] for i < n (reads x[0] to x[2n - 2] only): every other input column,
 *   as im2col of a stride-2 convolution copies them. A copy: every variant gives the same bits.
 *
 * The table for the ISA the core runs with (mp_kern_isa()) is mp__kern_rt(); tests reach each
 * variant with mp__kern_rt_for().
 */
#ifndef MP_RT_GEMM_INT_H
#define MP_RT_GEMM_INT_H

#include <stddef.h>
#include <stdint.h>

/* K up to which 255 * 128 * K (the largest sum of xu * w) fits an int32. */
#define RT_S8_MAX_K 65536
/* Relative bound between float variants: |y - y_ref| <= bound * sum |terms| (+ 1e-30). */
#define RT_F32_SUM_BOUND 1e-5f

/* The geometry of dw_plane: output rows and columns, kernel rows and columns, strides and
 * dilations (rows, columns), and the input row length (elements). */
typedef struct mp_kern_dw_geom {
    size_t oh, ow, kh, kw, sh, sw, dh, dw, ldx;
} mp_kern_dw_geom_t;

typedef struct mp_kern_rt_table {
    const char *isa;
    void (*s8_gemm)(size_t M, size_t N, size_t K, const uint8_t *xu, size_t ldx, const int8_t *w,
                    size_t ldw, const int32_t *wsum, int32_t *out, size_t ldo);
    void (*csr_mm)(size_t N, size_t P, const int32_t *rowptr, const int32_t *col,
                   const float *val, const float *b, size_t ldb, float *out, size_t ldo);
    void (*cb_gemv)(size_t N, size_t K, const float *x, const uint8_t *idx, size_t ldi,
                    const float *cb, int n_cb, float *y);
    void (*wx_bias)(size_t M, size_t P, size_t K, const float *w, size_t ldw, const float *x,
                    size_t ldx, const float *bias, float *out, size_t ldo);
    void (*dw_plane)(const struct mp_kern_dw_geom *g, const float *x, const float *w, float bias,
                     float *y);
    void (*max2x2)(size_t rows, size_t n, const float *x, size_t ldx, int relu, float *y);
    void (*stride2)(size_t n, const float *x, float *y);
} mp_kern_rt_table_t;

#define MP__KERN_RT_DECLARE(isa)                                                                   \
    void mp_kern_s8_gemm_##isa(size_t M, size_t N, size_t K, const uint8_t *xu, size_t ldx,       \
                               const int8_t *w, size_t ldw, const int32_t *wsum, int32_t *out,     \
                               size_t ldo);                                                        \
    void mp_kern_csr_mm_f32_##isa(size_t N, size_t P, const int32_t *rowptr, const int32_t *col,  \
                                  const float *val, const float *b, size_t ldb, float *out,        \
                                  size_t ldo);                                                     \
    void mp_kern_cb_gemv_f32_##isa(size_t N, size_t K, const float *x, const uint8_t *idx,        \
                                   size_t ldi, const float *cb, int n_cb, float *y);       \
    void mp_kern_wx_bias_f32_##isa(size_t M, size_t P, size_t K, const float *w, size_t ldw,      \
                                   const float *x, size_t ldx, const float *bias, float *out,      \
                                   size_t ldo);                                                    \
    void mp_kern_dw_plane_f32_##isa(const mp_kern_dw_geom_t *g, const float *x, const float *w,   \
                                    float bias, float *y);                                         \
    void mp_kern_max2x2_f32_##isa(size_t rows, size_t n, const float *x, size_t ldx, int relu,     \
                                  float *y);                                                       \
    void mp_kern_stride2_f32_##isa(size_t n, const float *x, float *y);

MP__KERN_RT_DECLARE(ref)
MP__KERN_RT_DECLARE(avx2)
MP__KERN_RT_DECLARE(avx512)

/* One output row of max2x2 by the reference (x0, x1: its input rows), for variants' tails. */
void mp_kern_max2x2_row_ref(size_t n, const float *x0, const float *x1, int relu, float *y);

/* 1 if the CPU has AVX-512 VNNI (the avx512 s8_gemm uses vpdpbusd then). */
int mp__kern_rt_has_vnni(void);
/* The table for the ISA mp_kern_isa() names (never NULL). */
const mp_kern_rt_table_t *mp__kern_rt(void);
/* The table for one ISA by name, or NULL if the name is unknown or this CPU lacks it. */
const mp_kern_rt_table_t *mp__kern_rt_for(const char *isa);

#endif /* MP_RT_GEMM_INT_H */
