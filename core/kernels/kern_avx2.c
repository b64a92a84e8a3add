/* kern_avx2.c — the kernels of kern_ref.c with AVX2 intrinsics, 8 floats per vector.
 *
 * The only file built with -mavx2; dispatch.c calls it only when the CPU (and OS) have AVX2.
 * Invariant: the same bits as the _ref kernel for every input. That holds because each vector
 * op is the IEEE op the reference performs (mulps, maxps/minps with the operand order that
 * matches `a > b ? a : b`, cvtps2dq rounding by MXCSR as nearbyintf does, cmpps with the
 * ordered less-than), and because each kernel's result does not depend on evaluation order
 * (max and integer counts are associative). Loops run four vectors (32 floats) per iteration
 * with independent accumulators, then single vectors, and hand the last < 8 elements to the
 * _ref kernel itself, so tails cannot drift from the specification.
 */
#include "kernels_int.h"

#include <immintrin.h>

/* Per-lane int32 counters are summed into a size_t at least every BLOCK elements, so no
 * lane can overflow whatever n is (a lane gains at most BLOCK / 8). */
#define BLOCK ((size_t)1 << 22)

static inline __m256 abs8(__m256 v)
{
    return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v);
}

/* m = max(|v|, m) where a NaN in v leaves m: maxps returns its second operand on NaN. */
static inline __m256 absmax8(__m256 m, const float *x)
{
    return _mm256_max_ps(abs8(_mm256_loadu_ps(x)), m);
}

float mp_kern_absmax_f32_avx2(const float *x, size_t n)
{
    __m256 m0 = _mm256_setzero_ps(), m1 = m0, m2 = m0, m3 = m0;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        m0 = absmax8(m0, x + i);
        m1 = absmax8(m1, x + i + 8);
        m2 = absmax8(m2, x + i + 16);
        m3 = absmax8(m3, x + i + 24);
    }
    for (; i + 8 <= n; i += 8) {
        m0 = absmax8(m0, x + i);
    }
    /* No NaN is left in the accumulators, so the reduction order is free. */
    m0 = _mm256_max_ps(_mm256_max_ps(m0, m1), _mm256_max_ps(m2, m3));
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m0), _mm256_extractf128_ps(m0, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_shuffle_ps(h, h, 1));
    float m = _mm_cvtss_f32(h);
    float t = mp_kern_absmax_f32_ref(x + i, n - i);
    return t > m ? t : m;
}

/* x * inv_scale clamped to [-127, 127] (NaN -> -127, as in _ref), rounded to int32. */
static inline __m256i quant8(const float *x, __m256 inv)
{
    __m256 y = _mm256_mul_ps(_mm256_loadu_ps(x), inv);
    y = _mm256_max_ps(y, _mm256_set1_ps(-127.0f));
    y = _mm256_min_ps(y, _mm256_set1_ps(127.0f));
    return _mm256_cvtps_epi32(y);
}

void mp_kern_quant_i8_f32_avx2(const float *x, size_t n, float inv_scale, int8_t *q)
{
    const __m256 inv = _mm256_set1_ps(inv_scale);
    /* The in-lane packs leave the 4-byte groups in the order a0 b0 c0 d0 a1 b1 c1 d1. */
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256i a = quant8(x + i, inv);
        __m256i b = quant8(x + i + 8, inv);
        __m256i c = quant8(x + i + 16, inv);
        __m256i d = quant8(x + i + 24, inv);
        __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(a, b), _mm256_packs_epi32(c, d));
        _mm256_storeu_si256((__m256i *)(q + i), _mm256_permutevar8x32_epi32(p, order));
    }
    for (; i + 8 <= n; i += 8) {
        __m256i a = quant8(x + i, inv);
        __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
        _mm_storel_epi64((__m128i *)(q + i), _mm_packs_epi16(w, w));
    }
    mp_kern_quant_i8_f32_ref(x + i, n - i, inv_scale, q + i);
}

static inline void dequant8(const int8_t *q, __m256 scale, float *y)
{
    __m256i v = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)q));
    _mm256_storeu_ps(y, _mm256_mul_ps(_mm256_cvtepi32_ps(v), scale));
}

void mp_kern_dequant_i8_f32_avx2(const int8_t *q, size_t n, float scale, float *y)
{
    const __m256 s = _mm256_set1_ps(scale);
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        dequant8(q + i, s, y + i);
        dequant8(q + i + 8, s, y + i + 8);
        dequant8(q + i + 16, s, y + i + 16);
        dequant8(q + i + 24, s, y + i + 24);
    }
    for (; i + 8 <= n; i += 8) {
        dequant8(q + i, s, y + i);
    }
    mp_kern_dequant_i8_f32_ref(q + i, n - i, scale, y + i);
}

/* One vector of count_below / mask_below: lanes with |x| < thr (ordered, so NaN never) are
 * counted (the all-ones compare mask is -1) and, when out is not NULL, stored as +0.0. */
static inline __m256i below8(__m256i acc, const float *x, float *out, __m256 thr)
{
    __m256 v = _mm256_loadu_ps(x);
    __m256 lt = _mm256_cmp_ps(abs8(v), thr, _CMP_LT_OQ);
    if (out) {
        _mm256_storeu_ps(out, _mm256_andnot_ps(lt, v));
    }
    return _mm256_sub_epi32(acc, _mm256_castps_si256(lt));
}

static inline size_t hsum8(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return (uint32_t)_mm_cvtsi128_si32(s);
}

/* count_below and mask_below share this body; inlined with out == NULL or out == x, the test
 * on out disappears. */
static inline size_t below(const float *x, float *out, size_t n, float thr)
{
    const __m256 t = _mm256_set1_ps(thr);
    size_t c = 0, i = 0;
    while (n - i >= 8) {
        size_t end = i + (n - i < BLOCK ? n - i : BLOCK);
        __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
        for (; i + 32 <= end; i += 32) {
            a0 = below8(a0, x + i, out ? out + i : NULL, t);
            a1 = below8(a1, x + i + 8, out ? out + i + 8 : NULL, t);
            a2 = below8(a2, x + i + 16, out ? out + i + 16 : NULL, t);
            a3 = below8(a3, x + i + 24, out ? out + i + 24 : NULL, t);
        }
        for (; i + 8 <= end; i += 8) {
            a0 = below8(a0, x + i, out ? out + i : NULL, t);
        }
        c += hsum8(_mm256_add_epi32(_mm256_add_epi32(a0, a1), _mm256_add_epi32(a2, a3)));
    }
    if (out) {
        return c + mp_kern_mask_below_f32_ref(out + i, n - i, thr);
    }
    return c + mp_kern_count_below_f32_ref(x + i, n - i, thr);
}

size_t mp_kern_count_below_f32_avx2(const float *x, size_t n, float thr)
{
    return below(x, NULL, n, thr);
}

size_t mp_kern_mask_below_f32_avx2(float *x, size_t n, float thr)
{
    return below(x, x, n, thr);
}

/* Sixteen double lanes in four vectors: lanes 0-3, 4-7, 8-11, 12-15 of each 16-float block. */
void mp_kern_err_sums_f32_avx2(const float *w, const float *w2, size_t n, double *signal,
                               double *noise)
{
    __m256d s[4], e[4];
    double sig[MP_KERN_LANES], noi[MP_KERN_LANES];
    size_t i = 0;

    for (int k = 0; k < 4; k++) {
        s[k] = e[k] = _mm256_setzero_pd();
    }
    for (; i + MP_KERN_LANES <= n; i += MP_KERN_LANES) {
        for (int k = 0; k < 4; k++) {
            const __m256d a = _mm256_cvtps_pd(_mm_loadu_ps(w + i + 4 * k));
            const __m256d d = _mm256_sub_pd(a, _mm256_cvtps_pd(_mm_loadu_ps(w2 + i + 4 * k)));
            s[k] = _mm256_add_pd(s[k], _mm256_mul_pd(a, a));
            e[k] = _mm256_add_pd(e[k], _mm256_mul_pd(d, d));
        }
    }
    for (int k = 0; k < 4; k++) {
        _mm256_storeu_pd(sig + 4 * k, s[k]);
        _mm256_storeu_pd(noi + 4 * k, e[k]);
    }
    mp_kern_err_lanes_f32_ref(w + i, w2 + i, n - i, sig, noi);
    *signal = mp__kern_fold_lanes(sig);
    *noise = mp__kern_fold_lanes(noi);
}
