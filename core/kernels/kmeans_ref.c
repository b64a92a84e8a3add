/* kmeans_ref.c — the reference kmeans kernels (the specification) and the family's tables.
 *
 * assign_f32 is written as a branch-free binary search over the thresholds padded with +inf to
 * p - 1 entries (the plan of kmeans_int.h): for nondecreasing thresholds it counts exactly the
 * thresholds below x (the contract), in log2(p) steps instead of n_thr comparisons, so this
 * portable kernel stays fast at 256 clusters; a NaN x compares false everywhere and gets 0.
 * dp_argmin_f64 is the plain scan, where only a strictly smaller value replaces the best, which
 * keeps the lowest index among equal values; dp_rows_f64 is that scan row by row.
 *
 * The tables live here, next to the reference, as for the other families: the variant in use
 * follows the ISA that dispatch.c chose once for the base kernels.
 */
#include "kmeans_int.h"

#include "kernels_int.h"

#include <math.h>
#include <string.h>

void mp_kern_km_assign_f32_ref(const float *x, size_t n, const float *thr, int n_thr, uint8_t *out)
{
    mp__km_plan_t pl;
    mp__km_plan(&pl, thr, n_thr);
    for (size_t i = 0; i < n; i++) {
        const float v = x[i];
        int idx = 0;
        for (int step = pl.p >> 1; step > 0; step >>= 1) {
            idx += pl.tab[idx + step - 1] < v ? step : 0;
        }
        out[i] = (uint8_t)idx;
    }
}

size_t mp_kern_km_dp_argmin_f64_ref(const double *e, const double *s, const double *c, size_t a,
                                    size_t b, double si, double ci, double *best)
{
    size_t arg = a;
    double d = si - s[a];
    double m = e[a] - d * d / (ci - c[a]);
    for (size_t j = a + 1; j < b; j++) {
        d = si - s[j];
        double v = e[j] - d * d / (ci - c[j]);
        if (v < m) {
            m = v;
            arg = j;
        }
    }
    *best = m;
    return arg;
}

void mp_kern_km_dp_rows_f64_ref(const double *e, const double *s, const double *c, size_t jlo,
                                size_t jhi, size_t ilo, size_t n_rows, double *best, size_t *arg)
{
    for (size_t r = 0; r < n_rows; r++) {
        size_t i = ilo + r, end = (jhi < i - 1 ? jhi : i - 1) + 1;
        arg[r] = mp_kern_km_dp_argmin_f64_ref(e, s, c, jlo, end, s[i], c[i], &best[r]);
    }
}

#define TABLE(name)                                                                                \
    {                                                                                              \
        .isa = #name, .assign_f32 = mp_kern_km_assign_f32_##name,                                  \
        .dp_argmin_f64 = mp_kern_km_dp_argmin_f64_##name,                                          \
        .dp_rows_f64 = mp_kern_km_dp_rows_f64_##name,                                              \
    }

static const mp_kern_kmeans_table_t tables[] = {TABLE(ref), TABLE(avx2), TABLE(avx512)};

const mp_kern_kmeans_table_t *mp__kern_kmeans_for(const char *isa)
{
    for (size_t i = 0; isa && i < sizeof(tables) / sizeof(tables[0]); i++) {
        if (strcmp(tables[i].isa, isa) == 0) {
            return mp__kern_for(isa) ? &tables[i] : NULL;
        }
    }
    return NULL;
}

const mp_kern_kmeans_table_t *mp__kern_kmeans(void)
{
    /* dispatch.c names only ISAs it has checked, and each has a table here. */
    const mp_kern_kmeans_table_t *t = mp__kern_kmeans_for(mp__kern()->isa);
    return t ? t : &tables[0];
}
