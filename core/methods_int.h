/* methods_int.h — the compression methods on plain F32 arrays, used by the recipe pipeline.
 *
 * Each method works on a working copy of a tensor's values as float (the pipeline converts
 * F16/BF16/F64 to F32 first). Rows are the output axis (dim 0 of a weight); cols the product
 * of the remaining dims. Methods never allocate more than the scratch they are given, report
 * failures through mp_errctx_t, and run the kernels of core/kernels through mp__kern().
 */
#ifndef MP_METHODS_INT_H
#define MP_METHODS_INT_H

#include "mp_int.h"

/* ---- prune ---- */

/* Magnitude pruning to an exact sparsity over one or more arrays at once (one array: layer
 * scope; all selected tensors: global scope). Exactly k = llround(sparsity * total) entries
 * become 0 — the k of smallest |w|; among equal magnitudes the earlier (array index, then
 * element index) is pruned first, so the result is deterministic. Entries already 0 count
 * toward k like any other. The threshold is found by O(total) selection (no full sort) in
 * scratch, which must hold total floats (mp__prune_scratch_elems). *n_zeroed receives k. */
size_t mp__prune_scratch_elems(const size_t *n, size_t n_arrays);
int mp__prune_magnitude(float *const *w, const size_t *n, size_t n_arrays, double sparsity,
                        float *scratch, size_t *n_zeroed, mp_errctx_t *err);

/* The selection behind it: the k-th smallest (0-based, k < n) of a[0..n), none of them NaN,
 * reordering a. Quickselect for max_quick rounds, then median-of-medians pivots (O(n) worst
 * case); tests pass max_quick = 0 to exercise that fallback on its own. */
float mp__select_kth_f32(float *a, size_t n, size_t k, unsigned max_quick);

/* ---- quantize ---- */

/* Symmetric int8 quantization of a rows x cols matrix. per_channel: one scale per row
 * (scales[rows]); otherwise one scale for the whole tensor (scales[0]). scale = absmax / 127
 * (a row of zeros gets scale 1 so that it dequantizes to exact zeros); q = round-half-even
 * (w / scale computed as w * (1/scale)) clamped to [-127, 127]. Every |w - q*scale| is at most
 * scale/2 (plus float rounding). MP_EINVAL naming the tensor for a non-finite value. */
int mp__quant_i8_sym(const char *name, const float *w, size_t rows, size_t cols, int per_channel,
                     int8_t *q, float *scales, mp_errctx_t *err);

/* w[i] = q[i] * scale[row], the inverse of the above. */
void mp__dequant_i8_sym(const int8_t *q, size_t rows, size_t cols, int per_channel,
                        const float *scales, float *w);

/* ---- checks and figures for the report ---- */

/* Index of the first NaN or infinite element of x[0..n), or n when all are finite. */
size_t mp__first_nonfinite_f32(const float *x, size_t n);

/* Relative error ||w - w'||_2 / ||w||_2 (0 when both are 0) and SQNR in dB
 * (10 log10(||w||^2 / ||w - w'||^2); +inf when exact, reported as null in JSON). Accumulated
 * in double. */
void mp__error_stats(const float *w, const float *w2, size_t n, double *rel_error,
                     double *sqnr_db);

/* ==== The methods of the compression literature beyond the foundation ====================
 * Each group below is implemented in its own file (named in its heading) with its tests in
 * tests/core/check_<file>.c. Hot loops live in core/kernels/<family>_{ref,avx2,avx512}.c with
 * their table in core/kernels/<family>_int.h, chosen by the ISA mp_kern_isa() names.
 */

/* ---- quantize at any width (quant.c; kernels: qbits) ---- */

/* Affine quantization of a rows x cols matrix with one scale (and zero point) per group of
 * `group` consecutive elements of a row (group == cols: per channel; a per-tensor scale is the
 * caller's view of the whole tensor as 1 x n with group == n; a row's last group may be
 * shorter). n_groups = rows * ceil(cols / group); scales[g] and zero_points[g] in that order.
 * Symmetric (asymmetric == 0): qmax = 2^(bits-1) - 1, scale = absmax / qmax, code =
 * clamp(rint(w * (1/scale)), -qmax, qmax) stored as int8 in q, no zero point.
 * Asymmetric: lo = min(min w, 0), hi = max(max w, 0), scale = (hi - lo) / (2^bits - 1),
 * zero_point = clamp(rint(-lo / scale), 0, 2^bits - 1), code = clamp(rint(w * (1/scale)) +
 * zero_point, 0, 2^bits - 1) stored as uint8 in q. A group whose scale would be 0 or subnormal
 * gets scale 1 (and zero point 0). Rounding is half to even. bits 2..8. Non-finite weights are
 * MP_EINVAL naming the tensor and element. */
int mp__quant_affine(const char *name, const float *w, size_t rows, size_t cols, size_t group,
                     int bits, int asymmetric, void *q, float *scales, int32_t *zero_points,
                     mp_errctx_t *err);
/* w = (code - zero_point) * scale, the inverse of the above (zero_points NULL: symmetric). */
void mp__dequant_affine(const void *q, size_t rows, size_t cols, size_t group, int bits,
                        int asymmetric, const float *scales, const int32_t *zero_points,
                        float *w);

/* Sub-byte storage: n codes of `bits` bits (values 0 .. 2^bits - 1; symmetric codes are
 * offset by 2^(bits-1) by the caller) packed little-endian, code i at bit i*bits of the stream,
 * into mp__packed_bytes(n, bits) = ceil(n * bits / 8) bytes (unused high bits are 0). */
size_t mp__packed_bytes(size_t n, int bits);
void mp__pack_bits(const uint8_t *codes, size_t n, int bits, uint8_t *out);
void mp__unpack_bits(const uint8_t *in, size_t n, int bits, uint8_t *codes);

/* Binary (XNOR-Net): w ~ alpha[row] * (code ? +1 : -1), code = (w >= 0), alpha = mean |w| of
 * the row. Ternary (TWN): delta = 0.7 * mean |w| of the row, code = 0 (-1), 1 (0) or 2 (+1) for
 * w < -delta, |w| <= delta, w > delta; alpha = mean |w| over |w| > delta (0 when none). */
int mp__quant_binary(const char *name, const float *w, size_t rows, size_t cols, uint8_t *codes,
                     float *alphas, mp_errctx_t *err);
int mp__quant_ternary(const char *name, const float *w, size_t rows, size_t cols,
                      uint8_t *codes, float *alphas, mp_errctx_t *err);

/* ---- share: k-means weight sharing (share.c; kernels: kmeans) ---- */

typedef enum { MP_KM_INIT_LINEAR = 0, MP_KM_INIT_DENSITY, MP_KM_INIT_KMEANSPP } mp__km_init_t;

/* 1-D k-means (Lloyd) of n finite values into k clusters (2 <= k <= 256), initialised as Deep
 * Compression describes: linear (evenly spaced over [min, max]), density (evenly spaced over
 * the values' CDF), or k-means++ (seeded by seed, deterministic). Iterates until no assignment
 * changes or max_iter. On return centroids[0..k) are sorted ascending, assign[i] is the index of
 * the centroid nearest w[i] (ties to the lower index), *sse = sum (w[i] - c[assign[i]])^2 in
 * double. A cluster that empties keeps its centroid. Fewer distinct values than k is fine. */
int mp__kmeans_1d(const float *w, size_t n, int k, mp__km_init_t init, uint64_t seed,
                  int max_iter, float *centroids, uint8_t *assign, double *sse, mp_errctx_t *err);
/* The same from given initial centroids (any order; sorted on return). */
int mp__kmeans_1d_from(const float *w, size_t n, int k, int max_iter, float *centroids,
                       uint8_t *assign, double *sse, mp_errctx_t *err);
/* The exact optimum of 1-D k-means (dynamic programming over the sorted values). */
int mp__kmeans_1d_optimal(const float *w, size_t n, int k, float *centroids, uint8_t *assign,
                          double *sse, mp_errctx_t *err);

/* ---- lowrank: factorization (lowrank.c; LAPACKE and CBLAS from OpenBLAS) ---- */

/* The singular values of the m x n row-major matrix w, descending, into s[min(m, n)]. */
int mp__svd_values(const float *w, size_t m, size_t n, float *s, mp_errctx_t *err);
/* Rank-r truncated SVD: w ~ a b with a = U_r diag(S_r) (m x r) and b = V_r^T (r x n), both
 * row-major. randomized: 0 exact (LAPACKE gesdd), 1 randomized range finder (Halko et al.,
 * oversampling 10, n_iter power iterations, Gaussian test matrix from seed). *rel_error =
 * ||w - a b||_F / ||w||_F. 1 <= r <= min(m, n). */
int mp__svd_lowrank(const float *w, size_t m, size_t n, size_t r, int randomized, int n_iter,
                    uint64_t seed, float *a, float *b, double *rel_error, mp_errctx_t *err);
/* Tucker-2 of a convolution weight (o x i x kh x kw, row-major) on its two channel modes:
 * w ~ core x1 u_out x2 u_in with u_out o x r_out, core r_out x r_in x kh x kw, u_in r_in x i
 * (so the layer becomes a 1x1 conv i -> r_in with weight u_in, a kh x kw conv r_in -> r_out with
 * weight core, and a 1x1 conv r_out -> o with weight u_out). HOSVD start, n_iter HOOI sweeps.
 * *rel_error as above. */
int mp__tucker2(const float *w, size_t o, size_t i, size_t kh, size_t kw, size_t r_out,
                size_t r_in, int n_iter, float *u_out, float *core, float *u_in,
                double *rel_error, mp_errctx_t *err);

/* ---- prune, structured (prune.c; kernels: nm) ---- */

/* Rank the rows (output channels) of a rows x cols matrix by L1 (norm 1) or L2 (norm 2) norm and
 * zero the llround(sparsity * rows) rows of smallest norm (ties: the lower row first);
 * removed[r] = 1 for them, else 0; *n_removed receives the count. */
int mp__prune_channels(const char *name, float *w, size_t rows, size_t cols, double sparsity,
                       int norm, uint8_t *removed, size_t *n_removed, mp_errctx_t *err);
/* N:M along the input axis: in every run of m consecutive elements of a row, keep the n of
 * largest |w| (ties: the lower index kept) and zero the rest. cols % m != 0 is MP_EINVAL naming
 * the tensor. (n, m) is (2, 4) or (4, 8). Both structured pruners refuse a non-finite weight
 * (MP_EINVAL naming the tensor, row and column) and write nothing then; pruned values are
 * +0.0. */
int mp__prune_nm(const char *name, float *w, size_t rows, size_t cols, int n, int m,
                 mp_errctx_t *err);

#endif /* MP_METHODS_INT_H */
