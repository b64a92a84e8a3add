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
} mp_kern_table_t;

#define MP__KERN_DECLARE(isa)                                                                      \
    float mp_kern_absmax_f32_##isa(const float *x, size_t n);                                      \
    void mp_kern_quant_i8_f32_##isa(const float *x, size_t n, float inv_scale, int8_t *q);         \
    void mp_kern_dequant_i8_f32_##isa(const int8_t *q, size_t n, float scale, float *y);           \
    size_t mp_kern_count_below_f32_##isa(const float *x, size_t n, float thr);                     \
    size_t mp_kern_mask_below_f32_##isa(float *x, size_t n, float thr);

MP__KERN_DECLARE(ref)
MP__KERN_DECLARE(avx2)
MP__KERN_DECLARE(avx512)

/* The table in use (chosen once, thread-safe). */
const mp_kern_table_t *mp__kern(void);
/* The table for one ISA by name, or NULL if unknown or this CPU lacks it (tests use this). */
const mp_kern_table_t *mp__kern_for(const char *isa);

#endif /* MP_KERNELS_INT_H */
