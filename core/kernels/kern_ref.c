/* kern_ref.c — the portable reference kernels: the specification every ISA variant must match.
 *
 * Plain C11, no ISA flags, one element at a time. Each loop is written as the exact sequence
 * of IEEE operations the SIMD variants perform, so that "the same bits as _ref" is a property
 * that can hold and be tested: one float multiply, comparisons written as the x86 min/max
 * instructions evaluate them (`a > b ? a : b` returns b when either is NaN), rounding by
 * nearbyintf under the current rounding mode (half to even by default, as MXCSR is for
 * cvtps2dq). Inputs that are not finite have a defined result as well (documented per kernel),
 * although callers only rely on finite ones. Kernels never allocate and never fail.
 */
#include "kernels_int.h"

#include <math.h>

/* Max |x[i]|, NaN ignored: a NaN compares false and leaves m as it was. */
float mp_kern_absmax_f32_ref(const float *x, size_t n)
{
    float m = 0.0f;
    for (size_t i = 0; i < n; i++) {
        float a = fabsf(x[i]);
        m = a > m ? a : m;
    }
    return m;
}

/* Clamping before rounding gives the same integer as rounding then clamping (±127 are
 * integers), keeps the conversion in range for huge inputs and inf, and sends NaN to -127:
 * `y > -127 ? y : -127` is false for NaN. */
void mp_kern_quant_i8_f32_ref(const float *x, size_t n, float inv_scale, int8_t *q)
{
    for (size_t i = 0; i < n; i++) {
        float y = x[i] * inv_scale;
        y = y > -127.0f ? y : -127.0f;
        y = y < 127.0f ? y : 127.0f;
        q[i] = (int8_t)nearbyintf(y);
    }
}

/* Exact int8 -> float conversion, then one rounded multiply. */
void mp_kern_dequant_i8_f32_ref(const int8_t *q, size_t n, float scale, float *y)
{
    for (size_t i = 0; i < n; i++) {
        y[i] = (float)q[i] * scale;
    }
}

/* |NaN| < thr is false, and so is everything when thr is NaN. */
size_t mp_kern_count_below_f32_ref(const float *x, size_t n, float thr)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++) {
        c += fabsf(x[i]) < thr;
    }
    return c;
}

/* Entries below thr become +0.0 (so -0.0 becomes +0.0 when thr > 0); NaN is left alone. */
size_t mp_kern_mask_below_f32_ref(float *x, size_t n, float thr)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++) {
        if (fabsf(x[i]) < thr) {
            x[i] = 0.0f;
            c++;
        }
    }
    return c;
}

void mp_kern_err_lanes_f32_ref(const float *w, const float *w2, size_t n, double *sig, double *noi)
{
    for (size_t i = 0; i < n; i++) {
        const double a = w[i], d = a - (double)w2[i];
        sig[i % MP_KERN_LANES] += a * a;
        noi[i % MP_KERN_LANES] += d * d;
    }
}

void mp_kern_err_sums_f32_ref(const float *w, const float *w2, size_t n, double *signal,
                              double *noise)
{
    double sig[MP_KERN_LANES] = {0}, noi[MP_KERN_LANES] = {0};

    mp_kern_err_lanes_f32_ref(w, w2, n, sig, noi);
    *signal = mp__kern_fold_lanes(sig);
    *noise = mp__kern_fold_lanes(noi);
}
