/* kern_avx512.c — the kernels of kern_ref.c with AVX-512F/BW/VL intrinsics, 16 floats a vector.
 *
 * The only file built with the AVX-512 flags; dispatch.c calls it only when the CPU (and OS)
 * have AVX-512F, BW, VL and DQ. Invariant: the same bits as the _ref kernel for every input,
 * for the reasons given in kern_avx2.c (the same IEEE op per element, order-free reductions).
 * Loops run four vectors (64 floats) per iteration with independent accumulators, then single
 * vectors; the last < 16 elements go through the same vector code under a lane mask (masked
 * loads read nothing past the end, masked stores write nothing past it).
 */
#include "kernels_int.h"

#include <immintrin.h>

/* Per-lane int32 counters are summed into a size_t at least every BLOCK elements, so no
 * lane can overflow whatever n is. */
#define BLOCK ((size_t)1 << 22)

static inline __mmask16 tail_mask(size_t r)
{
    return (__mmask16)((1u << r) - 1u);
}

/* m = max(|v|, m) where a NaN in v leaves m: maxps returns its second operand on NaN.
 * Masked-off lanes load as 0, which never raises the maximum. */
static inline __m512 absmax16(__m512 m, __m512 v)
{
    return _mm512_max_ps(_mm512_abs_ps(v), m);
}

float mp_kern_absmax_f32_avx512(const float *x, size_t n)
{
    __m512 m0 = _mm512_setzero_ps(), m1 = m0, m2 = m0, m3 = m0;
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        m0 = absmax16(m0, _mm512_loadu_ps(x + i));
        m1 = absmax16(m1, _mm512_loadu_ps(x + i + 16));
        m2 = absmax16(m2, _mm512_loadu_ps(x + i + 32));
        m3 = absmax16(m3, _mm512_loadu_ps(x + i + 48));
    }
    for (; i + 16 <= n; i += 16) {
        m0 = absmax16(m0, _mm512_loadu_ps(x + i));
    }
    if (i < n) {
        m1 = absmax16(m1, _mm512_maskz_loadu_ps(tail_mask(n - i), x + i));
    }
    /* No NaN is left in the accumulators, so the reduction order is free. */
    m0 = _mm512_max_ps(_mm512_max_ps(m0, m1), _mm512_max_ps(m2, m3));
    return _mm512_reduce_max_ps(m0);
}

/* v * inv_scale clamped to [-127, 127] (NaN -> -127, as in _ref), rounded to int32. */
static inline __m512i quant16(__m512 v, __m512 inv)
{
    __m512 y = _mm512_mul_ps(v, inv);
    y = _mm512_max_ps(y, _mm512_set1_ps(-127.0f));
    y = _mm512_min_ps(y, _mm512_set1_ps(127.0f));
    return _mm512_cvtps_epi32(y);
}

static inline void quant_store16(const float *x, __m512 inv, int8_t *q)
{
    /* vpmovdb truncates, which is exact here: every lane is already in [-127, 127]. */
    __m128i b = _mm512_cvtepi32_epi8(quant16(_mm512_loadu_ps(x), inv));
    _mm_storeu_si128((__m128i *)q, b);
}

void mp_kern_quant_i8_f32_avx512(const float *x, size_t n, float inv_scale, int8_t *q)
{
    const __m512 inv = _mm512_set1_ps(inv_scale);
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        quant_store16(x + i, inv, q + i);
        quant_store16(x + i + 16, inv, q + i + 16);
        quant_store16(x + i + 32, inv, q + i + 32);
        quant_store16(x + i + 48, inv, q + i + 48);
    }
    for (; i + 16 <= n; i += 16) {
        quant_store16(x + i, inv, q + i);
    }
    if (i < n) {
        __mmask16 m = tail_mask(n - i);
        __m512i v = quant16(_mm512_maskz_loadu_ps(m, x + i), inv);
        _mm512_mask_cvtepi32_storeu_epi8(q + i, m, v);
    }
}

static inline void dequant16(const int8_t *q, __m512 scale, float *y)
{
    __m512i v = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)q));
    _mm512_storeu_ps(y, _mm512_mul_ps(_mm512_cvtepi32_ps(v), scale));
}

void mp_kern_dequant_i8_f32_avx512(const int8_t *q, size_t n, float scale, float *y)
{
    const __m512 s = _mm512_set1_ps(scale);
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        dequant16(q + i, s, y + i);
        dequant16(q + i + 16, s, y + i + 16);
        dequant16(q + i + 32, s, y + i + 32);
        dequant16(q + i + 48, s, y + i + 48);
    }
    for (; i + 16 <= n; i += 16) {
        dequant16(q + i, s, y + i);
    }
    if (i < n) {
        __mmask16 m = tail_mask(n - i);
        __m512i v = _mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, q + i));
        _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(_mm512_cvtepi32_ps(v), s));
    }
}

/* One vector of count_below / mask_below under lane mask live: lanes with |x| < thr (ordered,
 * so NaN never) add 1 to their counter and, when out is not NULL, are stored as +0.0; other
 * lanes are not written at all. */
static inline __m512i below16(__m512i acc, __mmask16 live, const float *x, float *out, __m512 thr)
{
    __m512 v = _mm512_maskz_loadu_ps(live, x);
    __mmask16 lt = _mm512_mask_cmp_ps_mask(live, _mm512_abs_ps(v), thr, _CMP_LT_OQ);
    if (out) {
        _mm512_mask_storeu_ps(out, lt, _mm512_setzero_ps());
    }
    return _mm512_mask_add_epi32(acc, lt, acc, _mm512_set1_epi32(1));
}

/* count_below and mask_below share this body; inlined with out == NULL or out == x, the test
 * on out disappears (as does the all-ones mask of the full vectors). */
static inline size_t below(const float *x, float *out, size_t n, float thr)
{
    const __m512 t = _mm512_set1_ps(thr);
    const __mmask16 all = 0xffff;
    size_t c = 0, i = 0;
    while (i < n) {
        size_t end = i + (n - i < BLOCK ? n - i : BLOCK);
        __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
        for (; i + 64 <= end; i += 64) {
            a0 = below16(a0, all, x + i, out ? out + i : NULL, t);
            a1 = below16(a1, all, x + i + 16, out ? out + i + 16 : NULL, t);
            a2 = below16(a2, all, x + i + 32, out ? out + i + 32 : NULL, t);
            a3 = below16(a3, all, x + i + 48, out ? out + i + 48 : NULL, t);
        }
        for (; i + 16 <= end; i += 16) {
            a0 = below16(a0, all, x + i, out ? out + i : NULL, t);
        }
        if (i < end) {
            a1 = below16(a1, tail_mask(end - i), x + i, out ? out + i : NULL, t);
            i = end;
        }
        a0 = _mm512_add_epi32(_mm512_add_epi32(a0, a1), _mm512_add_epi32(a2, a3));
        c += (uint32_t)_mm512_reduce_add_epi32(a0);
    }
    return c;
}

size_t mp_kern_count_below_f32_avx512(const float *x, size_t n, float thr)
{
    return below(x, NULL, n, thr);
}

size_t mp_kern_mask_below_f32_avx512(float *x, size_t n, float thr)
{
    return below(x, x, n, thr);
}

/* Sixteen double lanes in two vectors: lanes 0-7 and 8-15 of each 16-float block. */
void mp_kern_err_sums_f32_avx512(const float *w, const float *w2, size_t n, double *signal,
                                 double *noise)
{
    __m512d s0 = _mm512_setzero_pd(), s1 = s0, e0 = s0, e1 = s0;
    double sig[MP_KERN_LANES], noi[MP_KERN_LANES];
    size_t i = 0;

    for (; i + MP_KERN_LANES <= n; i += MP_KERN_LANES) {
        const __m512d a0 = _mm512_cvtps_pd(_mm256_loadu_ps(w + i));
        const __m512d a1 = _mm512_cvtps_pd(_mm256_loadu_ps(w + i + 8));
        const __m512d d0 = _mm512_sub_pd(a0, _mm512_cvtps_pd(_mm256_loadu_ps(w2 + i)));
        const __m512d d1 = _mm512_sub_pd(a1, _mm512_cvtps_pd(_mm256_loadu_ps(w2 + i + 8)));
        s0 = _mm512_add_pd(s0, _mm512_mul_pd(a0, a0));
        s1 = _mm512_add_pd(s1, _mm512_mul_pd(a1, a1));
        e0 = _mm512_add_pd(e0, _mm512_mul_pd(d0, d0));
        e1 = _mm512_add_pd(e1, _mm512_mul_pd(d1, d1));
    }
    _mm512_storeu_pd(sig, s0);
    _mm512_storeu_pd(sig + 8, s1);
    _mm512_storeu_pd(noi, e0);
    _mm512_storeu_pd(noi + 8, e1);
    mp_kern_err_lanes_f32_ref(w + i, w2 + i, n - i, sig, noi);
    *signal = mp__kern_fold_lanes(sig);
    *noise = mp__kern_fold_lanes(noi);
}
