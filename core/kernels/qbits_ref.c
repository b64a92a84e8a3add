/* qbits_ref.c — the reference kernels of the qbits family, and the choice of its table.
 *
 * Plain C11, one element at a time: the specification the SIMD variants must match bit for bit
 * (contracts in qbits_int.h). As in kern_ref.c, each loop is the exact sequence of IEEE
 * operations the vector code performs — one float multiply, comparisons written the way the
 * x86 min/max instructions evaluate them (`a < b ? a : b` keeps b when a is NaN), rounding by
 * nearbyintf under the current rounding mode (half to even, as cvtps2dq under MXCSR). The bit
 * packers are the obvious bit accumulator, one code at a time.
 *
 * The table follows the base kernels' choice (mp__kern()), so a process never mixes ISAs and
 * MODELPRESS_ISA forces both families at once. Symmetric dequantization is the base table's
 * dequant_i8_f32 of the same ISA: the operation is the same, so it is not written twice.
 */
#include "qbits_int.h"

#include "kernels_int.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

/* `v < a ? v : a` keeps a for NaN (minps), `+ 0.0f` turns a -0.0 result into +0.0 and leaves
 * every other value as it is, so the result does not depend on which zero came first. */
void mp_kern_minmax_f32_ref(const float *x, size_t n, float *lo, float *hi)
{
    float a = INFINITY, b = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        a = v < a ? v : a;
        b = v > b ? v : b;
    }
    *lo = a + 0.0f;
    *hi = b + 0.0f;
}

void mp_kern_minmax_groups_f32_ref(const float *x, size_t n, size_t group, float *lo, float *hi)
{
    for (size_t i = 0, g = 0; i < n; i += group, g++) {
        mp_kern_minmax_f32_ref(x + i, n - i < group ? n - i : group, &lo[g], &hi[g]);
    }
}

/* Clamping to the integer bounds before rounding gives the rounded-then-clamped integer, keeps
 * the conversion in range for any input, and sends NaN to the lower bound (the compare with a
 * NaN is false). */
void mp_kern_quant_sym_f32_ref(const float *x, size_t n, float inv_scale, int qmax, int8_t *q)
{
    const float lo = (float)-qmax, hi = (float)qmax;
    for (size_t i = 0; i < n; i++) {
        float y = x[i] * inv_scale;
        y = y > lo ? y : lo;
        y = y < hi ? y : hi;
        q[i] = (int8_t)nearbyintf(y);
    }
}

/* clamp(rint(y) + zp, 0, qmax) == rint(clamp(y, -zp, qmax - zp)) + zp: the bounds are
 * integers, so the same argument as above holds on the shifted range. */
void mp_kern_quant_asym_f32_ref(const float *x, size_t n, float inv_scale, int zero_point, int qmax,
                                uint8_t *q)
{
    const float lo = (float)-zero_point, hi = (float)(qmax - zero_point);
    for (size_t i = 0; i < n; i++) {
        float y = x[i] * inv_scale;
        y = y > lo ? y : lo;
        y = y < hi ? y : hi;
        q[i] = (uint8_t)((int)nearbyintf(y) + zero_point);
    }
}

/* The integer difference is exact in float (|q - zp| < 2^24), then one rounded multiply. */
void mp_kern_dequant_asym_f32_ref(const uint8_t *q, size_t n, float scale, int zero_point, float *y)
{
    for (size_t i = 0; i < n; i++) {
        y[i] = (float)((int)q[i] - zero_point) * scale;
    }
}

void mp_kern_pack_bits_ref(const uint8_t *codes, size_t n, int bits, uint8_t *out)
{
    if (bits < 1 || bits > 8) {
        return;
    }
    const uint32_t mask = (1u << bits) - 1u;
    uint32_t acc = 0; /* pending bits, the oldest lowest; fewer than 8 between codes */
    int have = 0;
    for (size_t i = 0; i < n; i++) {
        acc |= (codes[i] & mask) << have;
        have += bits;
        while (have >= 8) {
            *out++ = (uint8_t)acc;
            acc >>= 8;
            have -= 8;
        }
    }
    if (have > 0) {
        *out = (uint8_t)acc; /* the bits above `have` are 0 */
    }
}

/* Reads a byte only when the next code needs bits from it, so exactly the packed bytes. */
void mp_kern_unpack_bits_ref(const uint8_t *in, size_t n, int bits, uint8_t *codes)
{
    if (bits < 1 || bits > 8) {
        return;
    }
    const uint32_t mask = (1u << bits) - 1u;
    uint32_t acc = 0;
    int have = 0;
    for (size_t i = 0; i < n; i++) {
        if (have < bits) {
            acc |= (uint32_t)*in++ << have;
            have += 8;
        }
        codes[i] = (uint8_t)(acc & mask);
        acc >>= bits;
        have -= bits;
    }
}

/* ---- the table ----------------------------------------------------------------------------- */

#define QBITS_TABLE(name)                                                                          \
    {                                                                                              \
        .isa = #name, .minmax_f32 = mp_kern_minmax_f32_##name,                                     \
        .minmax_groups_f32 = mp_kern_minmax_groups_f32_##name,                                     \
        .quant_sym_f32 = mp_kern_quant_sym_f32_##name,                                             \
        .quant_asym_f32 = mp_kern_quant_asym_f32_##name,                                           \
        .dequant_sym_f32 = mp_kern_dequant_i8_f32_##name,                                          \
        .dequant_asym_f32 = mp_kern_dequant_asym_f32_##name,                                       \
        .pack_bits = mp_kern_pack_bits_##name, .unpack_bits = mp_kern_unpack_bits_##name,          \
    }

static const mp_qbits_table_t tables[] = {QBITS_TABLE(ref), QBITS_TABLE(avx2), QBITS_TABLE(avx512)};

const mp_qbits_table_t *mp__kern_qbits_for(const char *isa)
{
    if (mp__kern_for(isa) == NULL) {
        return NULL; /* unknown name, or the CPU lacks it */
    }
    for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
        if (strcmp(tables[i].isa, isa) == 0) {
            return &tables[i];
        }
    }
    return NULL;
}

static const mp_qbits_table_t *chosen;
static pthread_once_t chosen_once = PTHREAD_ONCE_INIT;

static void choose(void)
{
    chosen = mp__kern_qbits_for(mp__kern()->isa);
}

const mp_qbits_table_t *mp__kern_qbits(void)
{
    pthread_once(&chosen_once, choose);
    return chosen;
}
