/* kmeans_avx2.c — the kmeans kernels with AVX2, 8 floats or 4 doubles per vector.
 *
 * The only kmeans file built with -mavx2; used only when dispatch.c found the CPU able.
 * Invariant: the same bits as kmeans_ref.c, by the argument kmeans_avx512.c gives: assign_f32
 * counts up to 15 broadcast pivots with ordered compares (the plan of kmeans_int.h) and
 * finishes the reference's search with gathers from the padded table; the dp kernels repeat the
 * reference's sub/mul/div per candidate, keep each lane's first strict minimum (candidates in
 * lanes for dp_argmin_f64, rows in lanes for dp_rows_f64) and reduce to the lowest index among
 * the least values. Tails shorter than a vector go to the reference kernels themselves.
 */
#include "kmeans_int.h"

#include <immintrin.h>
#include <math.h>

/* The plan's pivots, broadcast once per call. */
typedef struct {
    mp__km_plan_t pl;
    __m256 piv[15];
} vplan_t;

static void vplan_init(vplan_t *vp, const float *thr, int n_thr)
{
    mp__km_plan(&vp->pl, thr, n_thr);
    for (int j = 0; j < vp->pl.n_piv; j++) {
        vp->piv[j] = _mm256_set1_ps(vp->pl.piv[j]);
    }
}

static inline __m256i assign8(const vplan_t *vp, __m256 v)
{
    __m256i c = _mm256_setzero_si256();
    for (int j = 0; j < vp->pl.n_piv; j++) {
        /* a true compare is all ones, i.e. -1: subtracting it counts one */
        c = _mm256_sub_epi32(c, _mm256_castps_si256(_mm256_cmp_ps(vp->piv[j], v, _CMP_LT_OQ)));
    }
    c = _mm256_slli_epi32(c, vp->pl.shift);
    for (int step = vp->pl.steps > 0 ? 1 << (vp->pl.steps - 1) : 0; step > 0; step >>= 1) {
        __m256i at = _mm256_add_epi32(c, _mm256_set1_epi32(step - 1));
        __m256 t = _mm256_i32gather_ps(vp->pl.tab, at, 4);
        __m256i lt = _mm256_castps_si256(_mm256_cmp_ps(t, v, _CMP_LT_OQ));
        c = _mm256_add_epi32(c, _mm256_and_si256(lt, _mm256_set1_epi32(step)));
    }
    return c;
}

/* The eight counts (each <= 255) as eight bytes. */
static inline void store8(uint8_t *out, __m256i c)
{
    __m128i w = _mm_packus_epi32(_mm256_castsi256_si128(c), _mm256_extracti128_si256(c, 1));
    _mm_storel_epi64((__m128i *)out, _mm_packus_epi16(w, w));
}

void mp_kern_km_assign_f32_avx2(const float *x, size_t n, const float *thr, int n_thr, uint8_t *out)
{
    vplan_t vp;
    vplan_init(&vp, thr, n_thr);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256i a = assign8(&vp, _mm256_loadu_ps(x + i));
        __m256i b = assign8(&vp, _mm256_loadu_ps(x + i + 8));
        store8(out + i, a);
        store8(out + i + 8, b);
    }
    for (; i + 8 <= n; i += 8) {
        store8(out + i, assign8(&vp, _mm256_loadu_ps(x + i)));
    }
    mp_kern_km_assign_f32_ref(x + i, n - i, thr, n_thr, out + i);
}

/* ---- dp kernels: four candidates (or rows) per vector ------------------------------------- */

/* v(j) for the row (si, ci) and the candidates in the lanes of (ej, sj, cj). */
static inline __m256d value4(__m256d ej, __m256d sj, __m256d cj, __m256d si, __m256d ci,
                             __m256d *den)
{
    __m256d d = _mm256_sub_pd(si, sj);
    *den = _mm256_sub_pd(ci, cj);
    return _mm256_sub_pd(ej, _mm256_div_pd(_mm256_mul_pd(d, d), *den));
}

/* Where lt is all ones, (m, arg) take (v, j). */
static inline void take4(__m256d *m, __m256i *arg, __m256d lt, __m256d v, __m256i j)
{
    *m = _mm256_blendv_pd(*m, v, lt);
    *arg = _mm256_castpd_si256(
        _mm256_blendv_pd(_mm256_castsi256_pd(*arg), _mm256_castsi256_pd(j), lt));
}

size_t mp_kern_km_dp_argmin_f64_avx2(const double *e, const double *s, const double *c, size_t a,
                                     size_t b, double si, double ci, double *best)
{
    if (b - a < 8) {
        return mp_kern_km_dp_argmin_f64_ref(e, s, c, a, b, si, ci, best);
    }
    const __m256d vsi = _mm256_set1_pd(si), vci = _mm256_set1_pd(ci);
    __m256d m = _mm256_set1_pd(INFINITY), den;
    __m256i arg = _mm256_set1_epi64x((long long)a);
    __m256i jv = _mm256_add_epi64(arg, _mm256_setr_epi64x(0, 1, 2, 3));
    const __m256i four = _mm256_set1_epi64x(4);
    size_t j = a;
    for (; j + 4 <= b; j += 4) {
        __m256d v = value4(_mm256_loadu_pd(e + j), _mm256_loadu_pd(s + j), _mm256_loadu_pd(c + j),
                           vsi, vci, &den);
        take4(&m, &arg, _mm256_cmp_pd(v, m, _CMP_LT_OQ), v, jv);
        jv = _mm256_add_epi64(jv, four);
    }
    double lm[4];
    long long la[4];
    _mm256_storeu_pd(lm, m);
    _mm256_storeu_si256((__m256i *)la, arg);
    return mp__km_argmin_finish(lm, la, 4, e, s, c, j, b, si, ci, best);
}

/* Candidate j for the rows in the lanes of (si, ci); only lanes with ci - c[j] > 0 may take it. */
static inline void row4(__m256d *m, __m256i *arg, const double *e, const double *s, const double *c,
                        size_t j, __m256d si, __m256d ci)
{
    __m256d den;
    __m256d v =
        value4(_mm256_set1_pd(e[j]), _mm256_set1_pd(s[j]), _mm256_set1_pd(c[j]), si, ci, &den);
    __m256d ok = _mm256_cmp_pd(den, _mm256_setzero_pd(), _CMP_GT_OQ);
    take4(m, arg, _mm256_and_pd(ok, _mm256_cmp_pd(v, *m, _CMP_LT_OQ)), v,
          _mm256_set1_epi64x((long long)j));
}

void mp_kern_km_dp_rows_f64_avx2(const double *e, const double *s, const double *c, size_t jlo,
                                 size_t jhi, size_t ilo, size_t n_rows, double *best, size_t *arg)
{
    /* Eight rows per pass in two vectors; lanes past n_rows hold zeros and never take a j. */
    for (size_t r0 = 0; r0 < n_rows; r0 += 8) {
        size_t nr = n_rows - r0 < 8 ? n_rows - r0 : 8, i0 = ilo + r0;
        double ls[8] = {0}, lc[8] = {0}, lb[8];
        long long lj[8];
        for (size_t r = 0; r < nr; r++) {
            ls[r] = s[i0 + r];
            lc[r] = c[i0 + r];
        }
        const __m256d si0 = _mm256_loadu_pd(ls), ci0 = _mm256_loadu_pd(lc);
        const __m256d si1 = _mm256_loadu_pd(ls + 4), ci1 = _mm256_loadu_pd(lc + 4);
        __m256d m0 = _mm256_set1_pd(INFINITY), m1 = m0;
        __m256i a0 = _mm256_set1_epi64x((long long)jlo), a1 = a0;
        size_t jend = i0 + nr - 2 < jhi ? i0 + nr - 2 : jhi;
        for (size_t j = jlo; j <= jend; j++) {
            row4(&m0, &a0, e, s, c, j, si0, ci0);
            row4(&m1, &a1, e, s, c, j, si1, ci1);
        }
        _mm256_storeu_pd(lb, m0);
        _mm256_storeu_pd(lb + 4, m1);
        _mm256_storeu_si256((__m256i *)lj, a0);
        _mm256_storeu_si256((__m256i *)(lj + 4), a1);
        for (size_t r = 0; r < nr; r++) {
            best[r0 + r] = lb[r];
            arg[r0 + r] = (size_t)lj[r];
        }
    }
}
