/* nm_ref.c — the reference kernels of the nm family (the specification) and its tables.
 *
 * Plain C11, one element at a time, written as the comparisons the SIMD variants perform:
 * fabsf (clearing the sign bit, as the vector and-not does) and ordered comparisons that are
 * false for NaN. See nm_int.h for the contracts. The three tables live here, in the one file of
 * the family built without ISA flags; a table is handed out only for an ISA that dispatch.c
 * says this CPU supports, so the variants' instructions are never reached on a CPU without them.
 */
#include "nm_int.h"

#include "kernels_int.h"

#include <float.h>
#include <math.h>
#include <string.h>

/* Prunes one group of m entries to n survivors. Every count is taken from the group as it
 * came in, and written back only afterwards, so the order of the loop does not matter. */
static void nm_group(float *g, int n, int m)
{
    float a[8];
    int drop[8];
    for (int j = 0; j < m; j++) {
        a[j] = fabsf(g[j]);
    }
    for (int j = 0; j < m; j++) {
        int beaten = 0;
        for (int i = 0; i < m; i++) {
            beaten += i < j ? a[i] >= a[j] : (i > j && a[i] > a[j]);
        }
        drop[j] = beaten >= n;
    }
    for (int j = 0; j < m; j++) {
        if (drop[j]) {
            g[j] = 0.0f;
        }
    }
}

void mp_kern_nm24_f32_ref(float *x, size_t n_groups)
{
    for (size_t g = 0; g < n_groups; g++) {
        nm_group(x + 4 * g, 2, 4);
    }
}

void mp_kern_nm48_f32_ref(float *x, size_t n_groups)
{
    for (size_t g = 0; g < n_groups; g++) {
        nm_group(x + 8 * g, 4, 8);
    }
}

size_t mp_kern_band_abs_f32_ref(const float *x, size_t n, float lo, float hi, float *band,
                                size_t *n_below, size_t *n_nonfinite)
{
    size_t nb = 0, below = 0, bad = 0;
    for (size_t i = 0; i < n; i++) {
        float a = fabsf(x[i]);
        below += a < lo;
        bad += !(a <= FLT_MAX);
        if (a >= lo && a < hi) {
            band[nb++] = a;
        }
    }
    *n_below = below;
    *n_nonfinite = bad;
    return nb;
}

#define TABLE(name)                                                                                \
    {                                                                                              \
        .isa = #name, .nm24_f32 = mp_kern_nm24_f32_##name, .nm48_f32 = mp_kern_nm48_f32_##name,    \
        .band_abs_f32 = mp_kern_band_abs_f32_##name,                                               \
    }

static const mp_kern_nm_table_t tables[] = {TABLE(ref), TABLE(avx2), TABLE(avx512)};

const mp_kern_nm_table_t *mp__kern_nm_for(const char *isa)
{
    for (size_t i = 0; isa && i < sizeof(tables) / sizeof(tables[0]); i++) {
        if (strcmp(tables[i].isa, isa) == 0) {
            return mp__kern_for(isa) ? &tables[i] : NULL;
        }
    }
    return NULL;
}

const mp_kern_nm_table_t *mp__kern_nm(void)
{
    /* dispatch.c names only ISAs it has checked, and each has a table here. */
    const mp_kern_nm_table_t *t = mp__kern_nm_for(mp__kern()->isa);
    return t ? t : &tables[0];
}
