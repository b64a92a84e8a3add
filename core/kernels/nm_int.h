/* nm_int.h — the "nm" kernel family: N:M selection and the threshold band of magnitude pruning.
 *
 * Each kernel has a portable reference in nm_ref.c (the specification) and AVX2 and AVX-512
 * variants in nm_avx2.c and nm_avx512.c; every variant gives the same bits as _ref for every
 * input, NaN and infinities included, because each result is a selection (comparisons and
 * counts), never arithmetic. Kernels never allocate and never fail.
 *
 * Contracts:
 * - nm24_f32 / nm48_f32: x holds n_groups consecutive groups of 4 (resp. 8) floats, pruned in
 *   place to 2:4 (resp. 4:8). Within a group, entry i "beats" entry j when |x_i| > |x_j|, or
 *   |x_i| == |x_j| and i < j (ties: the lower index wins; -0.0 and +0.0 are equal). Entry j is
 *   pruned when at least N entries of its group beat it. A pruned entry becomes +0.0 (as in the
 *   magnitude pruner); a kept one keeps its bits, -0.0 included. With finite values exactly N
 *   entries survive per group, the N of largest |x|. A NaN compares false both ways: it is never
 *   pruned and beats nothing, so a group holding one may keep more than N.
 * - band_abs_f32: one pass over x[0..n) that writes the magnitudes |x_i| with lo <= |x_i| < hi
 *   to band[] (in index order) and returns their count c; *n_below receives the count of
 *   |x_i| < lo and *n_nonfinite the count of NaN and ±inf (which are in neither). band must have
 *   room for n floats, and band[c..n) may be overwritten. lo = 0, hi = +inf makes band a copy of
 *   all finite magnitudes.
 *
 * The table for the ISA the core runs with (mp_kern_isa(), chosen once by dispatch.c) is
 * mp__kern_nm(); tests reach each variant with mp__kern_nm_for().
 */
#ifndef MP_NM_INT_H
#define MP_NM_INT_H

#include <stddef.h>

typedef struct mp_kern_nm_table {
    const char *isa;
    void (*nm24_f32)(float *x, size_t n_groups);
    void (*nm48_f32)(float *x, size_t n_groups);
    size_t (*band_abs_f32)(const float *x, size_t n, float lo, float hi, float *band,
                           size_t *n_below, size_t *n_nonfinite);
} mp_kern_nm_table_t;

#define MP__KERN_NM_DECLARE(isa)                                                                   \
    void mp_kern_nm24_f32_##isa(float *x, size_t n_groups);                                        \
    void mp_kern_nm48_f32_##isa(float *x, size_t n_groups);                                        \
    size_t mp_kern_band_abs_f32_##isa(const float *x, size_t n, float lo, float hi, float *band,   \
                                      size_t *n_below, size_t *n_nonfinite);

MP__KERN_NM_DECLARE(ref)
MP__KERN_NM_DECLARE(avx2)
MP__KERN_NM_DECLARE(avx512)

/* The table for the ISA mp_kern_isa() names (never NULL). */
const mp_kern_nm_table_t *mp__kern_nm(void);
/* The table for one ISA by name ("ref", "avx2", "avx512"), or NULL if the name is unknown or
 * this CPU lacks it. */
const mp_kern_nm_table_t *mp__kern_nm_for(const char *isa);

#endif /* MP_NM_INT_H */
