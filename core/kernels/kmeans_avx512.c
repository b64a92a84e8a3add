/* kmeans_avx512.c — the kmeans kernels with AVX-512F, 16 floats or 8 doubles per vector.
 *
 * The only kmeans file built with -mavx512*; used only when dispatch.c found the CPU and OS able.
 * Invariant: the same bits as kmeans_ref.c. assign_f32 computes the same count of thresholds
 * below x by the plan of kmeans_int.h: up to 15 pivots counted by broadcast comparisons (15
 * compares per 16 values beat any search), then the rest of the reference's binary search as
 * gathers from the padded table (at most 4 for 256 clusters). Ordered less-than (_CMP_LT_OQ)
 * makes a NaN count nothing, as in C. dp_argmin_f64 evaluates every candidate with the same
 * sub/mul/div sequence as the reference and keeps per lane the first strict minimum; the lane
 * reduction then picks the lowest index among lanes equal to the minimum, which is the
 * reference's answer, and recomputes the value at that index so its bits are the reference's.
 * dp_rows_f64 puts rows in the lanes instead, each lane a scan of its own row in the
 * reference's order.
 */
#include "kmeans_int.h"

#include <immintrin.h>
#include <math.h>

/* The plan's pivots, broadcast once per call. */
typedef struct {
    mp__km_plan_t pl;
    __m512 piv[15];
} vplan_t;

static void vplan_init(vplan_t *vp, const float *thr, int n_thr)
{
    mp__km_plan(&vp->pl, thr, n_thr);
    for (int j = 0; j < vp->pl.n_piv; j++) {
        vp->piv[j] = _mm512_set1_ps(vp->pl.piv[j]);
    }
}

static inline __m512i assign16(const vplan_t *vp, __m512 v)
{
    const __m512i one = _mm512_set1_epi32(1);
    __m512i c = _mm512_setzero_si512();
    for (int j = 0; j < vp->pl.n_piv; j++) {
        __mmask16 m = _mm512_cmp_ps_mask(vp->piv[j], v, _CMP_LT_OQ);
        c = _mm512_mask_add_epi32(c, m, c, one);
    }
    c = _mm512_slli_epi32(c, (unsigned)vp->pl.shift);
    /* Every probe index stays below p - 1, whatever the lane holds (masked tails included). */
    for (int step = vp->pl.steps > 0 ? 1 << (vp->pl.steps - 1) : 0; step > 0; step >>= 1) {
        __m512i at = _mm512_add_epi32(c, _mm512_set1_epi32(step - 1));
        __m512 t = _mm512_i32gather_ps(at, vp->pl.tab, 4);
        __mmask16 m = _mm512_cmp_ps_mask(t, v, _CMP_LT_OQ);
        c = _mm512_mask_add_epi32(c, m, c, _mm512_set1_epi32(step));
    }
    return c;
}

void mp_kern_km_assign_f32_avx512(const float *x, size_t n, const float *thr, int n_thr,
                                  uint8_t *out)
{
    vplan_t vp;
    vplan_init(&vp, thr, n_thr);
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512i a = assign16(&vp, _mm512_loadu_ps(x + i));
        __m512i b = assign16(&vp, _mm512_loadu_ps(x + i + 16));
        _mm_storeu_si128((__m128i *)(out + i), _mm512_cvtepi32_epi8(a));
        _mm_storeu_si128((__m128i *)(out + i + 16), _mm512_cvtepi32_epi8(b));
    }
    for (; i < n; i += 16) {
        __mmask16 live = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        __m512i a = assign16(&vp, _mm512_maskz_loadu_ps(live, x + i));
        _mm512_mask_cvtepi32_storeu_epi8(out + i, live, a);
    }
}

/* ---- dp kernels: eight candidates (or rows) per vector ------------------------------------ */

/* v(j) for the row (si, ci) and the candidates in the lanes of (ej, sj, cj). */
static inline __m512d value8(__m512d ej, __m512d sj, __m512d cj, __m512d si, __m512d ci,
                             __m512d *den)
{
    __m512d d = _mm512_sub_pd(si, sj);
    *den = _mm512_sub_pd(ci, cj);
    return _mm512_sub_pd(ej, _mm512_div_pd(_mm512_mul_pd(d, d), *den));
}

size_t mp_kern_km_dp_argmin_f64_avx512(const double *e, const double *s, const double *c, size_t a,
                                       size_t b, double si, double ci, double *best)
{
    if (b - a < 16) {
        return mp_kern_km_dp_argmin_f64_ref(e, s, c, a, b, si, ci, best);
    }
    const __m512d vsi = _mm512_set1_pd(si), vci = _mm512_set1_pd(ci);
    __m512d m = _mm512_set1_pd(INFINITY), den;
    __m512i arg = _mm512_set1_epi64((long long)a);
    __m512i jv = _mm512_add_epi64(arg, _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7));
    const __m512i eight = _mm512_set1_epi64(8);
    size_t j = a;
    for (; j + 8 <= b; j += 8) {
        __m512d v = value8(_mm512_loadu_pd(e + j), _mm512_loadu_pd(s + j), _mm512_loadu_pd(c + j),
                           vsi, vci, &den);
        __mmask8 lt = _mm512_cmp_pd_mask(v, m, _CMP_LT_OQ);
        m = _mm512_mask_mov_pd(m, lt, v);
        arg = _mm512_mask_mov_epi64(arg, lt, jv);
        jv = _mm512_add_epi64(jv, eight);
    }
    double lm[8];
    long long la[8];
    _mm512_storeu_pd(lm, m);
    _mm512_storeu_si512(la, arg);
    return mp__km_argmin_finish(lm, la, 8, e, s, c, j, b, si, ci, best);
}

/* Candidate j for the rows in the lanes of (si, ci): only lanes with ci - c[j] > 0 (j < i; lanes
 * loaded as zeros past n_rows never pass) may take it; a strictly smaller value replaces. */
static inline void row8(__m512d *m, __m512i *arg, const double *e, const double *s, const double *c,
                        size_t j, __m512d si, __m512d ci)
{
    __m512d den;
    __m512d v =
        value8(_mm512_set1_pd(e[j]), _mm512_set1_pd(s[j]), _mm512_set1_pd(c[j]), si, ci, &den);
    __mmask8 ok = _mm512_cmp_pd_mask(den, _mm512_setzero_pd(), _CMP_GT_OQ);
    __mmask8 lt = _mm512_mask_cmp_pd_mask(ok, v, *m, _CMP_LT_OQ);
    *m = _mm512_mask_mov_pd(*m, lt, v);
    *arg = _mm512_mask_mov_epi64(*arg, lt, _mm512_set1_epi64((long long)j));
}

void mp_kern_km_dp_rows_f64_avx512(const double *e, const double *s, const double *c, size_t jlo,
                                   size_t jhi, size_t ilo, size_t n_rows, double *best, size_t *arg)
{
    /* Sixteen rows per pass, in two vectors whose chains run side by side. */
    for (size_t r0 = 0; r0 < n_rows; r0 += 16) {
        size_t nr = n_rows - r0 < 16 ? n_rows - r0 : 16, i0 = ilo + r0;
        __mmask8 live0 = (__mmask8)((1u << (nr < 8 ? nr : 8)) - 1);
        __mmask8 live1 = (__mmask8)((1u << (nr > 8 ? nr - 8 : 0)) - 1);
        const __m512d si0 = _mm512_maskz_loadu_pd(live0, s + i0);
        const __m512d ci0 = _mm512_maskz_loadu_pd(live0, c + i0);
        const __m512d si1 = _mm512_maskz_loadu_pd(live1, s + i0 + 8);
        const __m512d ci1 = _mm512_maskz_loadu_pd(live1, c + i0 + 8);
        __m512d m0 = _mm512_set1_pd(INFINITY), m1 = m0;
        __m512i a0 = _mm512_set1_epi64((long long)jlo), a1 = a0;
        size_t jend = i0 + nr - 2 < jhi ? i0 + nr - 2 : jhi; /* the last row's last candidate */
        for (size_t j = jlo; j <= jend; j++) {
            row8(&m0, &a0, e, s, c, j, si0, ci0);
            row8(&m1, &a1, e, s, c, j, si1, ci1);
        }
        _mm512_mask_storeu_pd(best + r0, live0, m0);
        _mm512_mask_storeu_epi64(arg + r0, live0, a0);
        _mm512_mask_storeu_pd(best + r0 + 8, live1, m1);
        _mm512_mask_storeu_epi64(arg + r0 + 8, live1, a1);
    }
}
