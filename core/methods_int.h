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

#endif /* MP_METHODS_INT_H */
