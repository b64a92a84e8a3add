/* nm_avx512.c — the nm kernels of nm_ref.c with AVX-512F/BW/VL/DQ intrinsics, 16 floats a vector.
 *
 * The only nm file built with the AVX-512 flags; its table is handed out only when dispatch.c
 * finds AVX-512F, BW, VL and DQ. Invariant: the same bits as _ref for every input. The N:M
 * kernels compare each lane with the other members of its group brought alongside by lane
 * rotations (a 2:4 group is one 128-bit lane, so vpermilps suffices; a 4:8 group is one
 * 256-bit half, rotated by vpermps), with the ordered predicates _ref's C comparisons are
 * (false on NaN), and write +0.0 under the mask of beaten lanes: no arithmetic touches a value.
 * The band kernel packs the lanes of the band with the register form of vcompressps (the
 * memory form is microcoded on some cores) and stores the whole vector at band + nb: that is in
 * bounds because nb never exceeds the number of elements already read. Tails go through the
 * same code under lane masks, which read and write nothing past the end.
 */
#include "nm_int.h"

#include <float.h>
#include <immintrin.h>

/* ---- 2:4 ----------------------------------------------------------------------------------- */

/* Lanes j of a group where the rotation by r brings a lower index i = (j + r) % 4 < j, that is
 * j >= 4 - r: there a tie beats j. One 16-bit mask per rotation, four groups per vector. */
#define TIE24_1 0x8888
#define TIE24_2 0xCCCC
#define TIE24_3 0xEEEE

static inline __mmask16 beats(__m512 other, __m512 self, __mmask16 tie)
{
    return _mm512_mask_cmp_ps_mask(tie, other, self, _CMP_GE_OQ) |
           _mm512_mask_cmp_ps_mask((__mmask16)~tie, other, self, _CMP_GT_OQ);
}

static inline __m512 nm24_16(__m512 v)
{
    __m512 a = _mm512_abs_ps(v);
    __mmask16 b1 = beats(_mm512_permute_ps(a, _MM_SHUFFLE(0, 3, 2, 1)), a, TIE24_1);
    __mmask16 b2 = beats(_mm512_permute_ps(a, _MM_SHUFFLE(1, 0, 3, 2)), a, TIE24_2);
    __mmask16 b3 = beats(_mm512_permute_ps(a, _MM_SHUFFLE(2, 1, 0, 3)), a, TIE24_3);
    /* beaten by at least two of the three others */
    __mmask16 drop = (b1 & b2) | (b1 & b3) | (b2 & b3);
    return _mm512_mask_mov_ps(v, drop, _mm512_setzero_ps());
}

void mp_kern_nm24_f32_avx512(float *x, size_t n_groups)
{
    size_t n = 4 * n_groups, i = 0;
    for (; i + 64 <= n; i += 64) {
        __m512 v0 = _mm512_loadu_ps(x + i), v1 = _mm512_loadu_ps(x + i + 16);
        __m512 v2 = _mm512_loadu_ps(x + i + 32), v3 = _mm512_loadu_ps(x + i + 48);
        _mm512_storeu_ps(x + i, nm24_16(v0));
        _mm512_storeu_ps(x + i + 16, nm24_16(v1));
        _mm512_storeu_ps(x + i + 32, nm24_16(v2));
        _mm512_storeu_ps(x + i + 48, nm24_16(v3));
    }
    for (; i + 16 <= n; i += 16) {
        _mm512_storeu_ps(x + i, nm24_16(_mm512_loadu_ps(x + i)));
    }
    if (i < n) { /* whole groups, so the masked-off lanes form whole groups of zeros */
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1u);
        _mm512_mask_storeu_ps(x + i, m, nm24_16(_mm512_maskz_loadu_ps(m, x + i)));
    }
}

/* ---- 4:8 ----------------------------------------------------------------------------------- */

static inline __m512 nm48_16(__m512 v)
{
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i half = _mm512_set1_epi32(8), low = _mm512_set1_epi32(7);
    const __m512i one = _mm512_set1_epi32(1);
    __m512 a = _mm512_abs_ps(v);
    __m512i cnt = _mm512_setzero_si512();
    for (int r = 1; r < 8; r++) {
        /* lane j takes j's group mate (j + r) mod 8 in the same half; ties beat it where that
         * mate's index is lower, i.e. where j mod 8 >= 8 - r */
        __m512i rot = _mm512_add_epi32(lane, _mm512_set1_epi32(r));
        __m512i idx = _mm512_or_si512(_mm512_and_si512(lane, half), _mm512_and_si512(rot, low));
        __mmask16 tie =
            _mm512_cmpge_epi32_mask(_mm512_and_si512(lane, low), _mm512_set1_epi32(8 - r));
        __mmask16 b = beats(_mm512_permutexvar_ps(idx, a), a, tie);
        cnt = _mm512_mask_add_epi32(cnt, b, cnt, one);
    }
    __mmask16 drop = _mm512_cmpge_epi32_mask(cnt, _mm512_set1_epi32(4));
    return _mm512_mask_mov_ps(v, drop, _mm512_setzero_ps());
}

void mp_kern_nm48_f32_avx512(float *x, size_t n_groups)
{
    size_t n = 8 * n_groups, i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512 v0 = _mm512_loadu_ps(x + i), v1 = _mm512_loadu_ps(x + i + 16);
        _mm512_storeu_ps(x + i, nm48_16(v0));
        _mm512_storeu_ps(x + i + 16, nm48_16(v1));
    }
    for (; i + 16 <= n; i += 16) {
        _mm512_storeu_ps(x + i, nm48_16(_mm512_loadu_ps(x + i)));
    }
    if (i < n) { /* one group of 8 left */
        _mm512_mask_storeu_ps(x + i, 0x00ff, nm48_16(_mm512_maskz_loadu_ps(0x00ff, x + i)));
    }
}

/* ---- the threshold band -------------------------------------------------------------------- */

typedef struct {
    __m512 lo, hi, fmax;
    size_t nb, below, bad;
} band_state_t;

/* One vector under lane mask live; returns the mask of the band's lanes, packed to the front
 * of *packed. */
static inline __mmask16 band16(band_state_t *s, __mmask16 live, const float *x, __m512 *packed)
{
    __m512 a = _mm512_abs_ps(_mm512_maskz_loadu_ps(live, x));
    __mmask16 lt = _mm512_mask_cmp_ps_mask(live, a, s->lo, _CMP_LT_OQ);
    __mmask16 in = _mm512_mask_cmp_ps_mask(live, a, s->lo, _CMP_GE_OQ);
    in = _mm512_mask_cmp_ps_mask(in, a, s->hi, _CMP_LT_OQ);
    __mmask16 bad = _mm512_mask_cmp_ps_mask(live, a, s->fmax, _CMP_NLE_UQ);
    s->below += (size_t)__builtin_popcount(lt);
    s->bad += (size_t)__builtin_popcount(bad);
    *packed = _mm512_maskz_compress_ps(in, a);
    return in;
}

size_t mp_kern_band_abs_f32_avx512(const float *x, size_t n, float lo, float hi, float *band,
                                   size_t *n_below, size_t *n_nonfinite)
{
    band_state_t s = {_mm512_set1_ps(lo), _mm512_set1_ps(hi), _mm512_set1_ps(FLT_MAX), 0, 0, 0};
    size_t i = 0;
    __m512 p;
    for (; i + 16 <= n; i += 16) {
        __mmask16 in = band16(&s, 0xffff, x + i, &p);
        _mm512_storeu_ps(band + s.nb, p); /* s.nb <= i, so band + s.nb + 16 <= band + n */
        s.nb += (size_t)__builtin_popcount(in);
    }
    if (i < n) {
        __mmask16 in = band16(&s, (__mmask16)((1u << (n - i)) - 1u), x + i, &p);
        unsigned k = (unsigned)__builtin_popcount(in);
        _mm512_mask_storeu_ps(band + s.nb, (__mmask16)((1u << k) - 1u), p);
        s.nb += k;
    }
    *n_below = s.below;
    *n_nonfinite = s.bad;
    return s.nb;
}
