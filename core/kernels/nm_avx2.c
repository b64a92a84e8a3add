/* nm_avx2.c — the nm kernels of nm_ref.c with AVX2 intrinsics, 8 floats per vector.
 *
 * The only nm file built with -mavx2; its table is handed out only when dispatch.c finds AVX2.
 * Invariant: the same bits as _ref for every input. The N:M kernels compare each lane with the
 * other members of its group brought alongside by lane rotations (a 2:4 group is one 128-bit
 * lane, rotated by vpermilps; a 4:8 group is the whole vector, rotated by vpermps), with the
 * ordered predicates _ref's C comparisons are (false on NaN); a beaten lane is cleared to all
 * zero bits (+0.0) by and-not, a kept one passes untouched. Tails of fewer groups than a vector
 * holds go to the _ref kernel itself. The band kernel packs the band's lanes of each 128-bit
 * half with vpermilps and a 16-entry index table, and stores the whole half at band + nb: in
 * bounds because nb never exceeds the number of elements already read.
 */
#include "nm_int.h"

#include <float.h>
#include <immintrin.h>
#include <stdint.h>

static inline __m256 abs8(__m256 v)
{
    return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v);
}

/* All-ones lanes where other beats self: greater, or equal where tie marks a lower index. */
static inline __m256 beats(__m256 other, __m256 self, __m256 tie)
{
    __m256 gt = _mm256_cmp_ps(other, self, _CMP_GT_OQ);
    __m256 ge = _mm256_cmp_ps(other, self, _CMP_GE_OQ);
    return _mm256_or_ps(gt, _mm256_and_ps(ge, tie));
}

/* ---- 2:4 ----------------------------------------------------------------------------------- */

/* The lane of x (two groups of four) pruned to 2:4. In the rotation by r, lane j of a group
 * meets i = (j + r) % 4, a lower index exactly where j >= 4 - r. */
static inline __m256 tie_mask(int l0, int l1, int l2, int l3)
{
    return _mm256_castsi256_ps(_mm256_setr_epi32(l0, l1, l2, l3, l0, l1, l2, l3));
}

static inline __m256 nm24_8(__m256 v)
{
    __m256 a = abs8(v);
    __m256 b1 = beats(_mm256_permute_ps(a, _MM_SHUFFLE(0, 3, 2, 1)), a, tie_mask(0, 0, 0, -1));
    __m256 b2 = beats(_mm256_permute_ps(a, _MM_SHUFFLE(1, 0, 3, 2)), a, tie_mask(0, 0, -1, -1));
    __m256 b3 = beats(_mm256_permute_ps(a, _MM_SHUFFLE(2, 1, 0, 3)), a, tie_mask(0, -1, -1, -1));
    /* beaten by at least two of the three others */
    __m256 drop = _mm256_or_ps(_mm256_or_ps(_mm256_and_ps(b1, b2), _mm256_and_ps(b1, b3)),
                               _mm256_and_ps(b2, b3));
    return _mm256_andnot_ps(drop, v);
}

void mp_kern_nm24_f32_avx2(float *x, size_t n_groups)
{
    size_t n = 4 * n_groups, i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256 v0 = _mm256_loadu_ps(x + i), v1 = _mm256_loadu_ps(x + i + 8);
        __m256 v2 = _mm256_loadu_ps(x + i + 16), v3 = _mm256_loadu_ps(x + i + 24);
        _mm256_storeu_ps(x + i, nm24_8(v0));
        _mm256_storeu_ps(x + i + 8, nm24_8(v1));
        _mm256_storeu_ps(x + i + 16, nm24_8(v2));
        _mm256_storeu_ps(x + i + 24, nm24_8(v3));
    }
    for (; i + 8 <= n; i += 8) {
        _mm256_storeu_ps(x + i, nm24_8(_mm256_loadu_ps(x + i)));
    }
    mp_kern_nm24_f32_ref(x + i, (n - i) / 4);
}

/* ---- 4:8 ----------------------------------------------------------------------------------- */

static inline __m256 nm48_8(__m256 v)
{
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256 a = abs8(v);
    __m256i cnt = _mm256_setzero_si256();
    for (int r = 1; r < 8; r++) {
        __m256i idx =
            _mm256_and_si256(_mm256_add_epi32(lane, _mm256_set1_epi32(r)), _mm256_set1_epi32(7));
        /* lane j meets (j + r) mod 8, a lower index where j >= 8 - r, i.e. j > 7 - r */
        __m256 tie = _mm256_castsi256_ps(_mm256_cmpgt_epi32(lane, _mm256_set1_epi32(7 - r)));
        __m256 b = beats(_mm256_permutevar8x32_ps(a, idx), a, tie);
        cnt = _mm256_sub_epi32(cnt, _mm256_castps_si256(b)); /* an all-ones lane is -1 */
    }
    __m256i drop = _mm256_cmpgt_epi32(cnt, _mm256_set1_epi32(3));
    return _mm256_andnot_ps(_mm256_castsi256_ps(drop), v);
}

void mp_kern_nm48_f32_avx2(float *x, size_t n_groups)
{
    size_t n = 8 * n_groups, i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 v0 = _mm256_loadu_ps(x + i), v1 = _mm256_loadu_ps(x + i + 8);
        _mm256_storeu_ps(x + i, nm48_8(v0));
        _mm256_storeu_ps(x + i + 8, nm48_8(v1));
    }
    if (i < n) { /* one group left */
        _mm256_storeu_ps(x + i, nm48_8(_mm256_loadu_ps(x + i)));
    }
}

/* ---- the threshold band -------------------------------------------------------------------- */

/* pack4[m]: the lanes set in the 4-bit mask m, in order, as vpermilps indices. */
static const int32_t pack4[16][4] = {
    {0, 0, 0, 0}, {0, 0, 0, 0}, {1, 0, 0, 0}, {0, 1, 0, 0}, {2, 0, 0, 0}, {0, 2, 0, 0},
    {1, 2, 0, 0}, {0, 1, 2, 0}, {3, 0, 0, 0}, {0, 3, 0, 0}, {1, 3, 0, 0}, {0, 1, 3, 0},
    {2, 3, 0, 0}, {0, 2, 3, 0}, {1, 2, 3, 0}, {0, 1, 2, 3},
};

/* Appends the lanes of a marked in the 4-bit mask m at band + nb; returns the new nb. The store
 * writes four floats whatever m is: the caller guarantees room. */
static inline size_t pack_store(__m128 a, unsigned m, float *band, size_t nb)
{
    __m128i idx = _mm_loadu_si128((const __m128i *)pack4[m]);
    _mm_storeu_ps(band + nb, _mm_permutevar_ps(a, idx));
    return nb + (size_t)__builtin_popcount(m);
}

/* Per-lane int32 counters are summed into a size_t at least every BLOCK elements, so no lane
 * can overflow whatever n is. */
#define BLOCK ((size_t)1 << 22)

size_t mp_kern_band_abs_f32_avx2(const float *x, size_t n, float lo, float hi, float *band,
                                 size_t *n_below, size_t *n_nonfinite)
{
    const __m256 vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
    const __m256 fmax = _mm256_set1_ps(FLT_MAX);
    size_t nb = 0, below = 0, bad = 0, i = 0;
    while (n - i >= 8) {
        /* BLOCK is a multiple of 8, so i reaches end unless end == n */
        size_t end = i + (n - i < BLOCK ? n - i : BLOCK);
        __m256i c_lt = _mm256_setzero_si256(), c_bad = c_lt;
        for (; i + 8 <= end; i += 8) {
            __m256 a = abs8(_mm256_loadu_ps(x + i));
            __m256 lt = _mm256_cmp_ps(a, vlo, _CMP_LT_OQ);
            __m256 in =
                _mm256_and_ps(_mm256_cmp_ps(a, vlo, _CMP_GE_OQ), _mm256_cmp_ps(a, vhi, _CMP_LT_OQ));
            __m256 nonfinite = _mm256_cmp_ps(a, fmax, _CMP_NLE_UQ);
            c_lt = _mm256_sub_epi32(c_lt, _mm256_castps_si256(lt)); /* all-ones is -1 */
            c_bad = _mm256_sub_epi32(c_bad, _mm256_castps_si256(nonfinite));
            unsigned m = (unsigned)_mm256_movemask_ps(in);
            if (m) { /* nb <= i: both stores stay inside band[0..n) */
                nb = pack_store(_mm256_castps256_ps128(a), m & 15u, band, nb);
                nb = pack_store(_mm256_extractf128_ps(a, 1), m >> 4, band, nb);
            }
        }
        int32_t l[8], b[8];
        _mm256_storeu_si256((__m256i *)l, c_lt);
        _mm256_storeu_si256((__m256i *)b, c_bad);
        for (int j = 0; j < 8; j++) {
            below += (uint32_t)l[j];
            bad += (uint32_t)b[j];
        }
    }
    size_t tail_below, tail_bad;
    nb += mp_kern_band_abs_f32_ref(x + i, n - i, lo, hi, band + nb, &tail_below, &tail_bad);
    *n_below = below + tail_below;
    *n_nonfinite = bad + tail_bad;
    return nb;
}
