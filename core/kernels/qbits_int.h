/* qbits_int.h — the kernel family "qbits": the hot loops of quantization at any width.
 *
 * Every operation has a portable reference kernel (qbits_ref.c, the specification) and AVX2
 * and AVX-512 variants (qbits_avx2.c, qbits_avx512.c, each compiled with its own -m flags).
 * The table in use follows the ISA mp_kern_isa() names, so the qbits kernels and the base
 * kernels of kernels_int.h always come from the same ISA, chosen once per process.
 *
 * Contracts (every variant gives the same bits as _ref, for every input unless stated):
 * - minmax_f32: *lo = min x[i], *hi = max x[i] over n elements, NaN ignored; a zero result is
 *   +0.0 whichever zeros the run holds (so the bits do not depend on evaluation order); for
 *   n == 0 (or all NaN) *lo = +inf and *hi = -inf.
 * - minmax_groups_f32: the same for each of the ceil(n / group) runs of `group` consecutive
 *   elements (the last may be shorter) into lo[g], hi[g]; group >= 1.
 * - quant_sym_f32: q[i] = clamp(nearbyint(x[i] * inv_scale), -qmax, qmax), rounding half to
 *   even, 1 <= qmax <= 127; NaN gives -qmax.
 * - quant_asym_f32: q[i] = clamp(nearbyint(x[i] * inv_scale) + zero_point, 0, qmax), rounding
 *   half to even before the zero point is added, 1 <= qmax <= 255, 0 <= zero_point <= qmax;
 *   NaN gives 0.
 * - dequant_sym_f32: y[i] = (float)q[i] * scale (the base table's dequant_i8_f32).
 * - dequant_asym_f32: y[i] = (float)(q[i] - zero_point) * scale.
 * - pack_bits / unpack_bits: mp__pack_bits / mp__unpack_bits of methods_int.h for bits 1..8:
 *   code i at bit i * bits of a little-endian stream of ceil(n * bits / 8) bytes, the unused
 *   high bits of the last byte 0. pack stores only the low `bits` bits of each code; unpack
 *   writes codes below 2^bits. Neither touches a byte outside its n codes / packed bytes.
 *   Other widths do nothing.
 * Kernels never allocate and never fail; none needs an aligned pointer.
 */
#ifndef MP_QBITS_INT_H
#define MP_QBITS_INT_H

#include <stddef.h>
#include <stdint.h>

typedef struct mp_qbits_table {
    const char *isa;
    void (*minmax_f32)(const float *x, size_t n, float *lo, float *hi);
    void (*minmax_groups_f32)(const float *x, size_t n, size_t group, float *lo, float *hi);
    void (*quant_sym_f32)(const float *x, size_t n, float inv_scale, int qmax, int8_t *q);
    void (*quant_asym_f32)(const float *x, size_t n, float inv_scale, int zero_point, int qmax,
                           uint8_t *q);
    void (*dequant_sym_f32)(const int8_t *q, size_t n, float scale, float *y);
    void (*dequant_asym_f32)(const uint8_t *q, size_t n, float scale, int zero_point, float *y);
    void (*pack_bits)(const uint8_t *codes, size_t n, int bits, uint8_t *out);
    void (*unpack_bits)(const uint8_t *in, size_t n, int bits, uint8_t *codes);
} mp_qbits_table_t;

#define MP__QBITS_DECLARE(isa)                                                                     \
    void mp_kern_minmax_f32_##isa(const float *x, size_t n, float *lo, float *hi);                 \
    void mp_kern_minmax_groups_f32_##isa(const float *x, size_t n, size_t group, float *lo,        \
                                         float *hi);                                               \
    void mp_kern_quant_sym_f32_##isa(const float *x, size_t n, float inv_scale, int qmax,          \
                                     int8_t *q);                                                   \
    void mp_kern_quant_asym_f32_##isa(const float *x, size_t n, float inv_scale, int zero_point,   \
                                      int qmax, uint8_t *q);                                       \
    void mp_kern_dequant_asym_f32_##isa(const uint8_t *q, size_t n, float scale, int zero_point,   \
                                        float *y);                                                 \
    void mp_kern_pack_bits_##isa(const uint8_t *codes, size_t n, int bits, uint8_t *out);          \
    void mp_kern_unpack_bits_##isa(const uint8_t *in, size_t n, int bits, uint8_t *codes);

MP__QBITS_DECLARE(ref)
MP__QBITS_DECLARE(avx2)
MP__QBITS_DECLARE(avx512)

/* ceil(n * bits / 8) without overflow for any n; 0 for bits outside 1..8. */
static inline size_t mp__qbits_bytes(size_t n, int bits)
{
    if (bits < 1 || bits > 8) {
        return 0;
    }
    return n / 8 * (size_t)bits + ((n % 8) * (size_t)bits + 7) / 8;
}

/* The table of the ISA mp_kern_isa() names (thread-safe; the same for the whole process). */
const mp_qbits_table_t *mp__kern_qbits(void);
/* The table for one ISA by name, or NULL if unknown or this CPU lacks it (tests use this). */
const mp_qbits_table_t *mp__kern_qbits_for(const char *isa);

#endif /* MP_QBITS_INT_H */
