/* qbits_avx512.c — the qbits kernels of qbits_ref.c with AVX-512F/BW/VL, 16 floats a vector.
 *
 * Built with the AVX-512 flags only here; used only when dispatch chose AVX-512 (F, BW, VL and
 * DQ present). Invariant: the same bits as the _ref kernel for every input, for the reasons
 * qbits_avx2.c gives. Every kernel handles its own tail under a lane mask: masked loads read
 * nothing past the end (the masked-off lanes read as 0), masked stores write nothing past it,
 * and min/max merge only the live lanes into their accumulators.
 *
 * Bit packing is vectorised for 1, 2, 4 and 8 bits (8 is a copy), 64 codes a step:
 * 4 bits: vpmaddubsw (c0 + 16 c1), vpmovwb; 2 bits: vpmaddubsw (c0 + 4 c1), vpmaddwd (+ 16 x
 * the next pair), vpmovdb; 1 bit: vptestmb gives the 64 bits directly. Unpacking widens the
 * packed bytes (vpmovzx) and moves each field to its own byte with shifts and masks; 1 bit is
 * a masked move of the bytes 1. The last partial step runs masked: codes past n load as 0, so
 * the unused high bits of the last byte come out 0 as the contract says. 3, 5, 6 and 7 bits use
 * the _ref kernel (see qbits_avx2.c for why).
 */
#include "qbits_int.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

static inline __mmask16 mask16(size_t r)
{
    return (__mmask16)((1u << r) - 1u);
}

static inline __mmask64 mask64(size_t r) /* r <= 64 */
{
    return r >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << r) - 1);
}

/* ---- min / max ----------------------------------------------------------------------------- */

static inline void minmax_run(const float *x, size_t n, float *lo, float *hi)
{
    __m512 a0 = _mm512_set1_ps(INFINITY), a1 = a0, a2 = a0, a3 = a0;
    __m512 b0 = _mm512_set1_ps(-INFINITY), b1 = b0, b2 = b0, b3 = b0;
    size_t i = 0;
    /* min(v, a) keeps a where v is NaN (the second operand), as `v < a ? v : a` does. */
    for (; i + 64 <= n; i += 64) {
        __m512 v0 = _mm512_loadu_ps(x + i), v1 = _mm512_loadu_ps(x + i + 16);
        __m512 v2 = _mm512_loadu_ps(x + i + 32), v3 = _mm512_loadu_ps(x + i + 48);
        a0 = _mm512_min_ps(v0, a0);
        b0 = _mm512_max_ps(v0, b0);
        a1 = _mm512_min_ps(v1, a1);
        b1 = _mm512_max_ps(v1, b1);
        a2 = _mm512_min_ps(v2, a2);
        b2 = _mm512_max_ps(v2, b2);
        a3 = _mm512_min_ps(v3, a3);
        b3 = _mm512_max_ps(v3, b3);
    }
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i);
        a0 = _mm512_min_ps(v, a0);
        b0 = _mm512_max_ps(v, b0);
    }
    if (i < n) {
        __mmask16 m = mask16(n - i);
        __m512 v = _mm512_maskz_loadu_ps(m, x + i);
        a1 = _mm512_mask_min_ps(a1, m, v, a1);
        b1 = _mm512_mask_max_ps(b1, m, v, b1);
    }
    /* No NaN in the accumulators: the order of the reduction only affects a zero's sign. */
    float a = _mm512_reduce_min_ps(_mm512_min_ps(_mm512_min_ps(a0, a1), _mm512_min_ps(a2, a3)));
    float b = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_max_ps(b0, b1), _mm512_max_ps(b2, b3)));
    *lo = a + 0.0f;
    *hi = b + 0.0f;
}

void mp_kern_minmax_f32_avx512(const float *x, size_t n, float *lo, float *hi)
{
    minmax_run(x, n, lo, hi);
}

void mp_kern_minmax_groups_f32_avx512(const float *x, size_t n, size_t group, float *lo, float *hi)
{
    for (size_t i = 0, g = 0; i < n; i += group, g++) {
        minmax_run(x + i, n - i < group ? n - i : group, &lo[g], &hi[g]);
    }
}

/* ---- quantize and dequantize --------------------------------------------------------------- */

/* v * inv clamped to [lo, hi] (NaN -> lo: maxps returns its second operand), rounded. Every
 * lane ends within -255..255, so vpmovdb's truncation to a byte is exact for both codes. */
static inline __m512i round16(__m512 v, __m512 inv, __m512 lo, __m512 hi)
{
    __m512 y = _mm512_mul_ps(v, inv);
    y = _mm512_max_ps(y, lo);
    y = _mm512_min_ps(y, hi);
    return _mm512_cvtps_epi32(y);
}

/* The symmetric and asymmetric loops differ only in the bounds and the zero point added. */
static inline void quant(const float *x, size_t n, float inv_scale, float lo, float hi, int zp,
                         uint8_t *q)
{
    const __m512 inv = _mm512_set1_ps(inv_scale), l = _mm512_set1_ps(lo), h = _mm512_set1_ps(hi);
    const __m512i z = _mm512_set1_epi32(zp);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512i v = _mm512_add_epi32(round16(_mm512_loadu_ps(x + i), inv, l, h), z);
        _mm_storeu_si128((__m128i *)(q + i), _mm512_cvtepi32_epi8(v));
    }
    if (i < n) {
        __mmask16 m = mask16(n - i);
        __m512i v = _mm512_add_epi32(round16(_mm512_maskz_loadu_ps(m, x + i), inv, l, h), z);
        _mm512_mask_cvtepi32_storeu_epi8(q + i, m, v);
    }
}

void mp_kern_quant_sym_f32_avx512(const float *x, size_t n, float inv_scale, int qmax, int8_t *q)
{
    quant(x, n, inv_scale, (float)-qmax, (float)qmax, 0, (uint8_t *)q);
}

void mp_kern_quant_asym_f32_avx512(const float *x, size_t n, float inv_scale, int zero_point,
                                   int qmax, uint8_t *q)
{
    quant(x, n, inv_scale, (float)-zero_point, (float)(qmax - zero_point), zero_point, q);
}

void mp_kern_dequant_asym_f32_avx512(const uint8_t *q, size_t n, float scale, int zero_point,
                                     float *y)
{
    const __m512 s = _mm512_set1_ps(scale);
    const __m512i zp = _mm512_set1_epi32(zero_point);
    size_t i = 0;
    for (; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : mask16(n - i);
        __m512i v = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, q + i));
        v = _mm512_sub_epi32(v, zp);
        _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(_mm512_cvtepi32_ps(v), s));
    }
}

/* ---- bit packing --------------------------------------------------------------------------- */

/* Packs up to 64 codes (r of them; the others load as 0) into r * bits / 8 bytes, rounded up. */
static inline void pack64(const uint8_t *codes, size_t r, int bits, uint8_t *out)
{
    const __m512i v = _mm512_and_si512(_mm512_maskz_loadu_epi8(mask64(r), codes),
                                       _mm512_set1_epi8((char)((1 << bits) - 1)));
    const size_t nb = (r * (size_t)bits + 7) / 8;
    if (bits == 4) {
        __m512i p = _mm512_maddubs_epi16(v, _mm512_set1_epi16(0x1001)); /* c0 + 16 c1 */
        _mm256_mask_storeu_epi8(out, (__mmask32)mask64(nb), _mm512_cvtepi16_epi8(p));
    } else if (bits == 2) {
        __m512i p = _mm512_maddubs_epi16(v, _mm512_set1_epi16(0x0401)); /* c0 + 4 c1 */
        p = _mm512_madd_epi16(p, _mm512_set1_epi32(0x00100001));        /* + 16 (c2 + 4 c3) */
        _mm_mask_storeu_epi8(out, (__mmask16)mask64(nb), _mm512_cvtepi32_epi8(p));
    } else {
        uint64_t m = _mm512_test_epi8_mask(v, v); /* bits == 1: v is 0 or 1 */
        memcpy(out, &m, nb);                      /* little-endian: code k is bit k */
    }
}

void mp_kern_pack_bits_avx512(const uint8_t *codes, size_t n, int bits, uint8_t *out)
{
    if (bits == 8) {
        if (n > 0) {
            memcpy(out, codes, n);
        }
    } else if (bits == 1 || bits == 2 || bits == 4) {
        for (size_t i = 0; i < n; i += 64) {
            pack64(codes + i, n - i < 64 ? n - i : 64, bits, out + i / 8 * (size_t)bits);
        }
    } else {
        mp_kern_pack_bits_ref(codes, n, bits, out);
    }
}

/* Unpacks r <= 64 codes from r * bits / 8 bytes (rounded up), reading and writing no more. */
static inline void unpack64(const uint8_t *in, size_t r, int bits, uint8_t *codes)
{
    const size_t nb = (r * (size_t)bits + 7) / 8;
    __m512i y;
    if (bits == 4) { /* each byte widened to a word, the high nibble to the high byte */
        __m512i x = _mm512_cvtepu8_epi16(_mm256_maskz_loadu_epi8((__mmask32)mask64(nb), in));
        y = _mm512_or_si512(_mm512_and_si512(x, _mm512_set1_epi16(0x000f)),
                            _mm512_and_si512(_mm512_slli_epi16(x, 4), _mm512_set1_epi16(0x0f00)));
    } else if (bits == 2) { /* each byte widened to a dword, field k to byte k */
        __m512i x = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8((__mmask16)mask64(nb), in));
        y = _mm512_and_si512(x, _mm512_set1_epi32(0x3));
        y = _mm512_or_si512(y, _mm512_and_si512(_mm512_slli_epi32(x, 6), _mm512_set1_epi32(0x300)));
        y = _mm512_or_si512(y,
                            _mm512_and_si512(_mm512_slli_epi32(x, 12), _mm512_set1_epi32(0x30000)));
        y = _mm512_or_si512(
            y, _mm512_and_si512(_mm512_slli_epi32(x, 18), _mm512_set1_epi32(0x3000000)));
    } else { /* bits == 1: the packed bits are the lane mask */
        uint64_t m = 0;
        memcpy(&m, in, nb);
        y = _mm512_maskz_mov_epi8((__mmask64)m, _mm512_set1_epi8(1));
    }
    _mm512_mask_storeu_epi8(codes, mask64(r), y);
}

void mp_kern_unpack_bits_avx512(const uint8_t *in, size_t n, int bits, uint8_t *codes)
{
    if (bits == 8) {
        if (n > 0) {
            memcpy(codes, in, n);
        }
    } else if (bits == 1 || bits == 2 || bits == 4) {
        for (size_t i = 0; i < n; i += 64) {
            unpack64(in + i / 8 * (size_t)bits, n - i < 64 ? n - i : 64, bits, codes + i);
        }
    } else {
        mp_kern_unpack_bits_ref(in, n, bits, codes);
    }
}
