/* kmeans_int.h — the kernel family "kmeans": the hot loops of 1-D k-means (share.c).
 *
 * Each kernel has a portable reference in kmeans_ref.c (the specification) and AVX2 and AVX-512
 * variants in kmeans_avx2.c and kmeans_avx512.c. Every variant gives the same bits as _ref:
 * assign_f32 is nothing but ordered float comparisons and a count, and the dp kernels evaluate
 * each candidate with the same IEEE double operations in the same order (no FMA: the build has
 * -ffp-contract=off and the intrinsics spell out sub, mul and div), so only the search order
 * differs, and the answer (the lowest index among the least values) does not depend on it.
 *
 * Contracts:
 * - assign_f32: out[i] = #{ j < n_thr : thr[j] < x[i] } for i < n, 0 <= n_thr <= 255, thr
 *   nondecreasing and never NaN (+inf allowed). With thr[j] the largest float not above the
 *   midpoint of sorted centroids j and j + 1, out[i] is the index of the centroid nearest x[i],
 *   ties to the lower index (share.c builds such thresholds). A NaN x[i] gives 0.
 * - dp_argmin_f64: for a < b, the lowest j in [a, b) minimising
 *       v(j) = e[j] - (si - s[j]) * (si - s[j]) / (ci - c[j])
 *   (each operation rounded in that order), with *best = v(j). This is the row scan of the
 *   dynamic programme of optimal 1-D k-means: e[j] = D(j) - Q(j), s and c prefix sums of values
 *   and counts, and the cost of a last cluster j..i is Q(i) - Q(j) - (S(i)-S(j))^2 / (C(i)-C(j)).
 *   Requires ci - c[j] > 0 and every v(j) finite (then all variants agree).
 * - dp_rows_f64: the same for the n_rows consecutive rows i = ilo + r (r < n_rows) at once,
 *   each over j in [jlo, min(jhi, i - 1)] with si = s[i], ci = c[i]: arg[r] and best[r] are what
 *   dp_argmin_f64(e, s, c, jlo, min(jhi, i - 1) + 1, s[i], c[i], &best[r]) gives. The vector
 *   variants put rows in lanes, which pays where the divide and conquer has narrowed both the
 *   rows and their candidates to a few dozen. Requires jlo < ilo and c increasing, so that
 *   ci - c[j] > 0 exactly when j < i.
 * Kernels never allocate and never fail; no pointer needs to be aligned.
 */
#ifndef MP_KMEANS_INT_H
#define MP_KMEANS_INT_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

/* The thresholds as the assign kernels read them: tab[0..p-1) holds them padded with +inf to
 * p - 1 entries, p the power of two above n_thr, so that a branch-free binary search of
 * log2(p) steps counts those below x. The vector kernels first count the n_piv pivots below x
 * by broadcast comparisons: the thresholds themselves when there are at most 15, else the 15
 * that the search's first four steps would probe (tab[(r + 1) p/16 - 1]), which gives the
 * search's position after those steps because the thresholds are sorted; that count times
 * 2^shift is the position, and `steps` gathers finish the search. */
typedef struct {
    float tab[256];
    float piv[15];
    int p, n_piv, shift, steps;
} mp__km_plan_t;

static inline void mp__km_plan(mp__km_plan_t *pl, const float *thr, int n_thr)
{
    pl->p = 1;
    while (pl->p <= n_thr) {
        pl->p <<= 1;
    }
    for (int j = 0; j < pl->p - 1; j++) {
        pl->tab[j] = j < n_thr ? thr[j] : (float)INFINITY;
    }
    if (pl->p <= 16) {
        pl->n_piv = n_thr;
        pl->shift = pl->steps = 0;
        for (int j = 0; j < n_thr; j++) {
            pl->piv[j] = thr[j];
        }
        return;
    }
    int q = pl->p / 16;
    pl->n_piv = 15;
    pl->shift = pl->steps = __builtin_ctz((unsigned)q);
    for (int r = 0; r < 15; r++) {
        pl->piv[r] = pl->tab[(r + 1) * q - 1];
    }
}

typedef struct mp_kern_kmeans_table {
    const char *isa;
    void (*assign_f32)(const float *x, size_t n, const float *thr, int n_thr, uint8_t *out);
    size_t (*dp_argmin_f64)(const double *e, const double *s, const double *c, size_t a, size_t b,
                            double si, double ci, double *best);
    void (*dp_rows_f64)(const double *e, const double *s, const double *c, size_t jlo, size_t jhi,
                        size_t ilo, size_t n_rows, double *best, size_t *arg);
} mp_kern_kmeans_table_t;

#define MP__KERN_KMEANS_DECLARE(isa)                                                               \
    void mp_kern_km_assign_f32_##isa(const float *x, size_t n, const float *thr, int n_thr,        \
                                     uint8_t *out);                                                \
    size_t mp_kern_km_dp_argmin_f64_##isa(const double *e, const double *s, const double *c,       \
                                          size_t a, size_t b, double si, double ci, double *best); \
    void mp_kern_km_dp_rows_f64_##isa(const double *e, const double *s, const double *c,           \
                                      size_t jlo, size_t jhi, size_t ilo, size_t n_rows,           \
                                      double *best, size_t *arg);

MP__KERN_KMEANS_DECLARE(ref)
MP__KERN_KMEANS_DECLARE(avx2)
MP__KERN_KMEANS_DECLARE(avx512)

/* The end of a vector dp_argmin_f64 over [a, j) plus the tail [j, b): lane l holds the least
 * value it saw, lm[l], at its first index la[l]. The lowest index among the lanes of least value
 * is the first index of the least value overall; its value is recomputed so that its bits are
 * the reference's even where -0.0 met +0.0; then the tail is scanned in order. */
static inline size_t mp__km_argmin_finish(const double *lm, const long long *la, int n_lanes,
                                          const double *e, const double *s, const double *c,
                                          size_t j, size_t b, double si, double ci, double *best)
{
    size_t r = (size_t)la[0];
    double rm = lm[0];
    for (int l = 1; l < n_lanes; l++) {
        if (lm[l] < rm || (lm[l] == rm && (size_t)la[l] < r)) {
            rm = lm[l];
            r = (size_t)la[l];
        }
    }
    double d = si - s[r];
    rm = e[r] - d * d / (ci - c[r]);
    if (j < b) {
        double tm;
        size_t t = mp_kern_km_dp_argmin_f64_ref(e, s, c, j, b, si, ci, &tm);
        if (tm < rm) {
            rm = tm;
            r = t;
        }
    }
    *best = rm;
    return r;
}

/* The table for the ISA mp_kern_isa() names (never NULL). */
const mp_kern_kmeans_table_t *mp__kern_kmeans(void);
/* The table for one ISA by name ("ref", "avx2", "avx512"), or NULL if the name is unknown or
 * this CPU lacks it. */
const mp_kern_kmeans_table_t *mp__kern_kmeans_for(const char *isa);

#endif /* MP_KMEANS_INT_H */
