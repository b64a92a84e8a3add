/* quant.c — symmetric int8 quantization of weight matrices, its inverse, and the error figures.
 *
 * One scale per row (per channel) or one for the whole tensor: scale = absmax / 127 in float,
 * q = round-half-even(w * (1/scale)) clamped to ±127, so the largest magnitude maps to ±127
 * and every other weight lands within scale/2 of q * scale (plus the rounding of w * (1/scale):
 * at most 2^-23 |w| more). Two degenerate rows get scale 1 and q = 0: a row of zeros (so it
 * dequantizes to exact zeros) and a row whose absmax is below 127 * FLT_MIN (~1.5e-36), where
 * absmax / 127 would be subnormal and 1/scale could overflow to inf; such weights are zero to
 * within float precision anyway, and every scale written is a normal float. Non-finite
 * weights are refused before any kernel quantizes. The hot loops are the kernels of
 * core/kernels (mp__kern()), which give the same bits on every ISA.
 */
#include "methods_int.h"

#include "kernels/kernels_int.h"

#include <float.h>
#include <math.h>

size_t mp__first_nonfinite_f32(const float *x, size_t n)
{
    size_t i = 0;
    /* |x| < inf is false exactly for NaN and ±inf: one fast pass when all is well. */
    if (mp__kern()->count_below_f32(x, n, INFINITY) == n) {
        return n;
    }
    while (isfinite(x[i])) {
        i++;
    }
    return i;
}

static float scale_for(float absmax)
{
    float s = absmax / 127.0f;
    return s >= FLT_MIN ? s : 1.0f;
}

int mp__quant_i8_sym(const char *name, const float *w, size_t rows, size_t cols, int per_channel,
                     int8_t *q, float *scales, mp_errctx_t *err)
{
    const mp_kern_table_t *kern = mp__kern();
    const char *tn = name ? name : "(unnamed)";
    size_t n;
    float absmax = 0.0f;

    MP_RETURN_IF(mp__mul_size(rows, cols, &n), MP_EINVAL,
                 "tensor '%s': %zu x %zu elements do not fit in memory", tn, rows, cols);
    MP_RETURN_IF(scales == NULL || (n > 0 && (w == NULL || q == NULL)), MP_EINVAL,
                 "tensor '%s': NULL buffer given to the quantizer", tn);
    for (size_t r = 0; r < rows; r++) {
        const float *row = w + r * cols;
        size_t bad = mp__first_nonfinite_f32(row, cols);
        MP_RETURN_IF(bad < cols, MP_EINVAL,
                     "tensor '%s': element %zu (row %zu, column %zu) is %s; only finite values "
                     "can be quantized",
                     tn, r * cols + bad, r, bad, isnan(row[bad]) ? "NaN" : "infinite");
        float m = kern->absmax_f32(row, cols);
        if (per_channel) {
            scales[r] = scale_for(m);
        } else {
            absmax = m > absmax ? m : absmax;
        }
    }
    if (per_channel) {
        for (size_t r = 0; r < rows; r++) {
            kern->quant_i8_f32(w + r * cols, cols, 1.0f / scales[r], q + r * cols);
        }
    } else {
        scales[0] = scale_for(absmax);
        kern->quant_i8_f32(w, n, 1.0f / scales[0], q);
    }
    return MP_OK;
}

void mp__dequant_i8_sym(const int8_t *q, size_t rows, size_t cols, int per_channel,
                        const float *scales, float *w)
{
    const mp_kern_table_t *kern = mp__kern();
    if (!per_channel) {
        kern->dequant_i8_f32(q, rows * cols, scales[0], w);
        return;
    }
    for (size_t r = 0; r < rows; r++) {
        kern->dequant_i8_f32(q + r * cols, cols, scales[r], w + r * cols);
    }
}

void mp__error_stats(const float *w, const float *w2, size_t n, double *rel_error, double *sqnr_db)
{
    double signal = 0.0, noise = 0.0;
    for (size_t i = 0; i < n; i++) {
        double a = w[i], d = a - (double)w2[i];
        signal += a * a;
        noise += d * d;
    }
    if (rel_error) {
        /* 0/0 is an exact copy of nothing; x/0 an error with no signal to compare it to */
        *rel_error = signal > 0.0 ? sqrt(noise / signal) : noise > 0.0 ? INFINITY : 0.0;
    }
    if (sqnr_db) {
        *sqnr_db = noise > 0.0 ? 10.0 * log10(signal / noise) : INFINITY;
    }
}
