/* qbits_avx2.c — the qbits kernels of qbits_ref.c with AVX2 intrinsics, 8 floats a vector.
 *
 * Built with -mavx2 only here; used only when dispatch chose AVX2. Invariant: the same bits as
 * the _ref kernel for every input. The float kernels hold to it for the reasons kern_avx2.c
 * gives (each lane performs the reference's IEEE operation: mulps, minps/maxps with the operand
 * order of `a < b ? a : b`, cvtps2dq rounding half to even; min and max are order-free once
 * NaN is ignored, and the final `+ 0.0f` fixes the sign of a zero result). Loops take four
 * vectors at a time where there is a reduction to hide, then single vectors, and hand the
 * last < 8 elements to the _ref kernel itself.
 *
 * Bit packing is vectorised for 1, 2, 4 and 8 bits (8 is a copy), 32 codes a step:
 * 4 bits: pmaddubsw pairs c0 + 16 c1, packuswb; 2 bits: pmaddubsw (c0 + 4 c1), pmaddwd
 * (+ 16 x the next pair), one byte per dword gathered by pshufb/vpermd; 1 bit: the low bit
 * shifted to the top of each byte and collected by vpmovmskb. Unpacking widens the packed
 * bytes (vpmovzx) and moves each field to its own byte with shifts and masks; 1 bit broadcasts
 * the bytes and tests one bit per lane. Every step starts on a byte boundary, so the tail goes
 * to the _ref kernel at a byte-aligned position. 3, 5, 6 and 7 bits use the _ref kernel: their
 * codes straddle bytes in patterns that repeat only every 8 codes, and the integration packs
 * them once per tensor (a copy-speed loop would not change any figure a user sees).
 */
#include "qbits_int.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

/* ---- min / max ----------------------------------------------------------------------------- */

/* a = min(v, a), b = max(v, b), lane by lane; a NaN in v leaves both (the second operand). */
#define MINMAX8(a, b, v)                                                                           \
    do {                                                                                           \
        __m256 v_ = (v);                                                                           \
        (a) = _mm256_min_ps(v_, (a));                                                              \
        (b) = _mm256_max_ps(v_, (b));                                                              \
    } while (0)

static inline float hmin8(__m256 v)
{
    __m128 h = _mm_min_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    h = _mm_min_ps(h, _mm_movehl_ps(h, h));
    h = _mm_min_ss(h, _mm_shuffle_ps(h, h, 1));
    return _mm_cvtss_f32(h);
}

static inline float hmax8(__m256 v)
{
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_shuffle_ps(h, h, 1));
    return _mm_cvtss_f32(h);
}

static inline void minmax_run(const float *x, size_t n, float *lo, float *hi)
{
    __m256 a0 = _mm256_set1_ps(INFINITY), a1 = a0, a2 = a0, a3 = a0;
    __m256 b0 = _mm256_set1_ps(-INFINITY), b1 = b0, b2 = b0, b3 = b0;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        MINMAX8(a0, b0, _mm256_loadu_ps(x + i));
        MINMAX8(a1, b1, _mm256_loadu_ps(x + i + 8));
        MINMAX8(a2, b2, _mm256_loadu_ps(x + i + 16));
        MINMAX8(a3, b3, _mm256_loadu_ps(x + i + 24));
    }
    for (; i + 8 <= n; i += 8) {
        MINMAX8(a0, b0, _mm256_loadu_ps(x + i));
    }
    /* The accumulators hold no NaN, so the reduction order only affects the sign of a zero. */
    float a = hmin8(_mm256_min_ps(_mm256_min_ps(a0, a1), _mm256_min_ps(a2, a3)));
    float b = hmax8(_mm256_max_ps(_mm256_max_ps(b0, b1), _mm256_max_ps(b2, b3)));
    float ta, tb;
    mp_kern_minmax_f32_ref(x + i, n - i, &ta, &tb);
    a = ta < a ? ta : a;
    b = tb > b ? tb : b;
    *lo = a + 0.0f;
    *hi = b + 0.0f;
}

void mp_kern_minmax_f32_avx2(const float *x, size_t n, float *lo, float *hi)
{
    minmax_run(x, n, lo, hi);
}

void mp_kern_minmax_groups_f32_avx2(const float *x, size_t n, size_t group, float *lo, float *hi)
{
    for (size_t i = 0, g = 0; i < n; i += group, g++) {
        minmax_run(x + i, n - i < group ? n - i : group, &lo[g], &hi[g]);
    }
}

/* ---- quantize and dequantize --------------------------------------------------------------- */

/* x * inv clamped to [lo, hi] (NaN -> lo: maxps returns its second operand), rounded. */
static inline __m256i round8(const float *x, __m256 inv, __m256 lo, __m256 hi)
{
    __m256 y = _mm256_mul_ps(_mm256_loadu_ps(x), inv);
    y = _mm256_max_ps(y, lo);
    y = _mm256_min_ps(y, hi);
    return _mm256_cvtps_epi32(y);
}

/* The in-lane packs leave the 4-byte groups in the order a0 b0 c0 d0 a1 b1 c1 d1. */
static inline __m256i unscramble(__m256i p)
{
    return _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

void mp_kern_quant_sym_f32_avx2(const float *x, size_t n, float inv_scale, int qmax, int8_t *q)
{
    const __m256 inv = _mm256_set1_ps(inv_scale);
    const __m256 lo = _mm256_set1_ps((float)-qmax), hi = _mm256_set1_ps((float)qmax);
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256i a = round8(x + i, inv, lo, hi), b = round8(x + i + 8, inv, lo, hi);
        __m256i c = round8(x + i + 16, inv, lo, hi), d = round8(x + i + 24, inv, lo, hi);
        __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(a, b), _mm256_packs_epi32(c, d));
        _mm256_storeu_si256((__m256i *)(q + i), unscramble(p));
    }
    for (; i + 8 <= n; i += 8) {
        __m256i a = round8(x + i, inv, lo, hi);
        __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
        _mm_storel_epi64((__m128i *)(q + i), _mm_packs_epi16(w, w));
    }
    mp_kern_quant_sym_f32_ref(x + i, n - i, inv_scale, qmax, q + i);
}

void mp_kern_quant_asym_f32_avx2(const float *x, size_t n, float inv_scale, int zero_point,
                                 int qmax, uint8_t *q)
{
    const __m256 inv = _mm256_set1_ps(inv_scale);
    const __m256 lo = _mm256_set1_ps((float)-zero_point);
    const __m256 hi = _mm256_set1_ps((float)(qmax - zero_point));
    const __m256i zp = _mm256_set1_epi32(zero_point);
    size_t i = 0;
    /* Codes are 0..255 after adding the zero point: packssdw keeps them, packuswb too. */
    for (; i + 32 <= n; i += 32) {
        __m256i a = _mm256_add_epi32(round8(x + i, inv, lo, hi), zp);
        __m256i b = _mm256_add_epi32(round8(x + i + 8, inv, lo, hi), zp);
        __m256i c = _mm256_add_epi32(round8(x + i + 16, inv, lo, hi), zp);
        __m256i d = _mm256_add_epi32(round8(x + i + 24, inv, lo, hi), zp);
        __m256i p = _mm256_packus_epi16(_mm256_packs_epi32(a, b), _mm256_packs_epi32(c, d));
        _mm256_storeu_si256((__m256i *)(q + i), unscramble(p));
    }
    for (; i + 8 <= n; i += 8) {
        __m256i a = _mm256_add_epi32(round8(x + i, inv, lo, hi), zp);
        __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
        _mm_storel_epi64((__m128i *)(q + i), _mm_packus_epi16(w, w));
    }
    mp_kern_quant_asym_f32_ref(x + i, n - i, inv_scale, zero_point, qmax, q + i);
}

void mp_kern_dequant_asym_f32_avx2(const uint8_t *q, size_t n, float scale, int zero_point,
                                   float *y)
{
    const __m256 s = _mm256_set1_ps(scale);
    const __m256i zp = _mm256_set1_epi32(zero_point);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(q + i)));
        v = _mm256_sub_epi32(v, zp);
        _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_cvtepi32_ps(v), s));
    }
    mp_kern_dequant_asym_f32_ref(q + i, n - i, scale, zero_point, y + i);
}

/* ---- bit packing --------------------------------------------------------------------------- */

static inline __m256i load_codes32(const uint8_t *c, int bits)
{
    __m256i v = _mm256_loadu_si256((const __m256i *)c);
    return _mm256_and_si256(v, _mm256_set1_epi8((char)((1 << bits) - 1)));
}

void mp_kern_pack_bits_avx2(const uint8_t *codes, size_t n, int bits, uint8_t *out)
{
    size_t i = 0;
    switch (bits) {
    case 8:
        if (n > 0) {
            memcpy(out, codes, n);
        }
        return;
    case 4: /* 32 codes -> 16 bytes */
        for (; i + 32 <= n; i += 32) {
            __m256i p = _mm256_maddubs_epi16(load_codes32(codes + i, 4), _mm256_set1_epi16(0x1001));
            __m128i b = _mm_packus_epi16(_mm256_castsi256_si128(p), _mm256_extracti128_si256(p, 1));
            _mm_storeu_si128((__m128i *)(out + i / 2), b);
        }
        break;
    case 2: { /* 32 codes -> 8 bytes */
        const __m256i first =
            _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 4, 8,
                             12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
        for (; i + 32 <= n; i += 32) {
            __m256i p = _mm256_maddubs_epi16(load_codes32(codes + i, 2), _mm256_set1_epi16(0x0401));
            p = _mm256_madd_epi16(p, _mm256_set1_epi32(0x00100001));
            p = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(p, first),
                                            _mm256_setr_epi32(0, 4, 1, 1, 1, 1, 1, 1));
            _mm_storel_epi64((__m128i *)(out + i / 4), _mm256_castsi256_si128(p));
        }
        break;
    }
    case 1: /* 32 codes -> 4 bytes */
        for (; i + 32 <= n; i += 32) {
            __m256i v = _mm256_slli_epi16(_mm256_loadu_si256((const __m256i *)(codes + i)), 7);
            uint32_t m = (uint32_t)_mm256_movemask_epi8(v);
            memcpy(out + i / 8, &m, 4); /* x86 is little-endian: code i + k is bit k */
        }
        break;
    default:
        break;
    }
    mp_kern_pack_bits_ref(codes + i, n - i, bits, out + i / 8 * (size_t)bits);
}

void mp_kern_unpack_bits_avx2(const uint8_t *in, size_t n, int bits, uint8_t *codes)
{
    size_t i = 0;
    switch (bits) {
    case 8:
        if (n > 0) {
            memcpy(codes, in, n);
        }
        return;
    case 4: /* 16 bytes -> 32 codes: each byte widened to a word, high nibble to the high byte */
        for (; i + 32 <= n; i += 32) {
            __m256i x = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(in + i / 2)));
            __m256i y = _mm256_or_si256(
                _mm256_and_si256(x, _mm256_set1_epi16(0x000f)),
                _mm256_and_si256(_mm256_slli_epi16(x, 4), _mm256_set1_epi16(0x0f00)));
            _mm256_storeu_si256((__m256i *)(codes + i), y);
        }
        break;
    case 2: /* 8 bytes -> 32 codes: each byte widened to a dword, field k to byte k */
        for (; i + 32 <= n; i += 32) {
            __m256i x = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(in + i / 4)));
            __m256i y = _mm256_and_si256(x, _mm256_set1_epi32(0x3));
            y = _mm256_or_si256(
                y, _mm256_and_si256(_mm256_slli_epi32(x, 6), _mm256_set1_epi32(0x300)));
            y = _mm256_or_si256(
                y, _mm256_and_si256(_mm256_slli_epi32(x, 12), _mm256_set1_epi32(0x30000)));
            y = _mm256_or_si256(
                y, _mm256_and_si256(_mm256_slli_epi32(x, 18), _mm256_set1_epi32(0x3000000)));
            _mm256_storeu_si256((__m256i *)(codes + i), y);
        }
        break;
    case 1: { /* 4 bytes -> 32 codes: byte k / 8 to lane k, then bit k % 8 of it tested */
        const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2,
                                                2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
        const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
        for (; i + 32 <= n; i += 32) {
            uint32_t m;
            memcpy(&m, in + i / 8, 4);
            __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)m), spread);
            v = _mm256_min_epu8(_mm256_and_si256(v, bit), _mm256_set1_epi8(1));
            _mm256_storeu_si256((__m256i *)(codes + i), v);
        }
        break;
    }
    default:
        break;
    }
    mp_kern_unpack_bits_ref(in + i / 8 * (size_t)bits, n - i, bits, codes + i);
}
