/* kernels_int.h — the table of hot loops and the functions behind it.
 *
 * Every operation has a portable reference kernel (*_ref.c, the specification) and AVX2 and
 * AVX-512 variants, each in its own file compiled with its own -m flags; no other object is
 * built with ISA flags. dispatch.c fills one const table once (pthread_once) from
 * __builtin_cpu_supports, or from MODELPRESS_ISA=ref|avx2|avx512.
 *
 * Contracts (every variant gives the same bits as _ref for finite inputs):
 * - absmax_f32: max |x[i]| over n elements, 0 for n == 0; NaN elements are ignored.
 * - quant_i8_f32: q[i] = clamp(nearbyint(x[i] * inv_scale), -127, 127), rounding half to even.
 * - dequant_i8_f32: y[i] = (float)q[i] * scale.
 * - count_below_f32: number of i with |x[i]| < thr.
 * - mask_below_f32: x[i] = 0 where |x[i]| < thr, in place; returns how many were set to 0.
 * - err_sums_f32: *signal = sum of w[i]^2, *noise = sum of (w[i] - w2[i])^2, in double, in a
 *   fixed order so that every variant gives the same bits: element i goes to lane i mod
 *   MP_KERN_LANES (a = (double)w[i], d = a - (double)w2[i], sig += a * a, noi += d * d, no fused
 *   multiply-add), and the lanes are then folded by mp__kern_fold_lanes.
 * Kernels never allocate and never fail.
 */
#ifndef MP_KERNELS_INT_H
#define MP_KERNELS_INT_H

#include <stddef.h>
#include <stdint.h>

typedef struct mp_kern_table {
    const char *isa;
    float (*absmax_f32)(const float *x, size_t n);
    void (*quant_i8_f32)(const float *x, size_t n, float inv_scale, int8_t *q);
    void (*dequant_i8_f32)(const int8_t *q, size_t n, float scale, float *y);
    size_t (*count_below_f32)(const float *x, size_t n, float thr);
    size_t (*mask_below_f32)(float *x, size_t n, float thr);
    void (*err_sums_f32)(const float *w, const float *w2, size_t n, double *signal, double *noise);
} mp_kern_table_t;

#define MP__KERN_DECLARE(isa)                                                                      \
    float mp_kern_absmax_f32_##isa(const float *x, size_t n);                                      \
    void mp_kern_quant_i8_f32_##isa(const float *x, size_t n, float inv_scale, int8_t *q);         \
    void mp_kern_dequant_i8_f32_##isa(const int8_t *q, size_t n, float scale, float *y);           \
    size_t mp_kern_count_below_f32_##isa(const float *x, size_t n, float thr);                     \
    size_t mp_kern_mask_below_f32_##isa(float *x, size_t n, float thr);                           \
    void mp_kern_err_sums_f32_##isa(const float *w, const float *w2, size_t n, double *signal,     \
                                    double *noise);

/* err_sums_f32's lanes, and their fold: halves added pairwise (lane i += lane i + h for h = 8,
 * 4, 2, 1), lane 0 the sum. */
#define MP_KERN_LANES 16
static inline double mp__kern_fold_lanes(double *lane)
{
    for (int h = MP_KERN_LANES / 2; h >= 1; h /= 2) {
        for (int i = 0; i < h; i++) {
            lane[i] += lane[i + h];
        }
    }
    return lane[0];
}

/* err_sums_f32's loop from the reference, for the variants' last elements: adds element i of
 * (w, w2, n) to lane i mod MP_KERN_LANES of sig and noi (n counted from a multiple of the
 * lanes). */
void mp_kern_err_lanes_f32_ref(const float *w, const float *w2, size_t n, double *sig, double *noi);

MP__KERN_DECLARE(ref)
MP__KERN_DECLARE(avx2)
MP__KERN_DECLARE(avx512)

/* The table in use (chosen once, thread-safe). */
const mp_kern_table_t *mp__kern(void);
/* The table for one ISA by name, or NULL if unknown or this CPU lacks it (tests use this). */
const mp_kern_table_t *mp__kern_for(const char *isa);

#endif /* MP_KERNELS_INT_H */
