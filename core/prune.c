/* prune.c — magnitude pruning to an exact sparsity, over one array or many at once.
 *
 * k = llround(sparsity * total) entries become +0.0: the k smallest |w|, and among equal
 * magnitudes the earliest in (array, element) order, so the result is a function of the input
 * alone. The cut magnitude t (the k-th smallest |w|) is found by selection on a copy of the
 * magnitudes in the caller's scratch, never by sorting: median-of-3 quickselect with Hoare
 * partitions, which after 2 log2(n) rounds hands over to median-of-medians pivots with
 * three-way partitions, whose every round discards at least 3/10 of what is left, so the whole
 * is O(n) in the worst case. Then the mask kernel zeroes every |w| < t, and the k - count
 * entries still missing are taken from those with |w| == t in order. Weights must be finite
 * (NaN has no magnitude order); nothing is written before every check has passed.
 */
#include "methods_int.h"

#include "kernels/kernels_int.h"

#include <math.h>
#include <stdint.h>

/* Ranges this short are finished by insertion sort. */
#define SMALL 16

size_t mp__prune_scratch_elems(const size_t *n, size_t n_arrays)
{
    size_t total = 0;
    for (size_t a = 0; a < n_arrays; a++) {
        if (mp__add_size(total, n[a], &total)) {
            return SIZE_MAX; /* no allocation of that many floats can succeed */
        }
    }
    return total;
}

static inline void swapf(float *a, float *b)
{
    float t = *a;
    *a = *b;
    *b = t;
}

static void sort_small(float *a, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        float v = a[i];
        size_t j = i;
        for (; j > 0 && a[j - 1] > v; j--) {
            a[j] = a[j - 1];
        }
        a[j] = v;
    }
}

/* Moves the median of a[0], a[n/2], a[n-1] to a[0], the pivot place of partition_hoare. */
static void median3_to_front(float *a, size_t n)
{
    size_t m = n / 2, l = n - 1;
    if (a[m] < a[0]) {
        swapf(&a[m], &a[0]);
    }
    if (a[l] < a[m]) {
        swapf(&a[l], &a[m]);
        if (a[m] < a[0]) {
            swapf(&a[m], &a[0]);
        }
    }
    swapf(&a[0], &a[m]);
}

/* Hoare's partition around p = a[0] (n >= 2): returns j with a[0..j] <= p <= a[j+1..n) and
 * 0 <= j < n - 1, so both sides shrink. Equal keys stop both scans and are spread over both
 * sides, which keeps a range of ties halving instead of degenerating. */
static size_t partition_hoare(float *a, size_t n)
{
    const float p = a[0];
    size_t i = 0, j = n;
    for (;;) {
        do {
            j--;
        } while (a[j] > p);
        while (a[i] < p) {
            i++;
        }
        if (i >= j) {
            return j;
        }
        swapf(&a[i], &a[j]);
        i++;
    }
}

/* Dijkstra's three-way partition around p: a[0..*lt) < p, a[*lt..*gt) == p, a[*gt..n) > p. */
static void partition3(float *a, size_t n, float p, size_t *lt, size_t *gt)
{
    size_t l = 0, i = 0, g = n;
    while (i < g) {
        if (a[i] < p) {
            swapf(&a[l++], &a[i++]);
        } else if (a[i] > p) {
            swapf(&a[i], &a[--g]);
        } else {
            i++;
        }
    }
    *lt = l;
    *gt = g;
}

static unsigned quick_rounds(size_t n)
{
    unsigned r = 0;
    while (n >>= 1) {
        r++;
    }
    return 2 * r;
}

/* The median of the medians of groups of five (n > SMALL). At least 3/10 of a[] is <= it
 * and at least 3/10 is >= it. The group medians are gathered at the front of a. */
static float median_of_medians(float *a, size_t n)
{
    size_t g = 0;
    for (size_t i = 0; i + 5 <= n; i += 5) {
        sort_small(a + i, 5);
        swapf(&a[g++], &a[i + 2]);
    }
    return mp__select_kth_f32(a, g, g / 2, quick_rounds(g));
}

float mp__select_kth_f32(float *a, size_t n, size_t k, unsigned max_quick)
{
    size_t lo = 0, hi = n; /* invariant: lo <= k < hi, a[lo..hi) holds the k-th smallest */
    while (hi - lo > SMALL) {
        float *b = a + lo;
        size_t m = hi - lo;
        if (max_quick > 0) {
            max_quick--;
            median3_to_front(b, m);
            size_t j = partition_hoare(b, m);
            if (k - lo <= j) {
                hi = lo + j + 1;
            } else {
                lo += j + 1;
            }
        } else {
            size_t lt, gt;
            float p = median_of_medians(b, m);
            partition3(b, m, p, &lt, &gt);
            if (k - lo < lt) {
                hi = lo + lt;
            } else if (k - lo < gt) {
                return p;
            } else {
                lo += gt;
            }
        }
    }
    sort_small(a + lo, hi - lo);
    return a[k];
}

int mp__prune_magnitude(float *const *w, const size_t *n, size_t n_arrays, double sparsity,
                        float *scratch, size_t *n_zeroed, mp_errctx_t *err)
{
    const mp_kern_table_t *kern = mp__kern();
    size_t total = 0;

    if (n_zeroed) {
        *n_zeroed = 0;
    }
    MP_RETURN_IF(!(sparsity >= 0.0 && sparsity <= 1.0), MP_EINVAL,
                 "prune: sparsity must be a number from 0 to 1, got %g", sparsity);
    MP_RETURN_IF(n_arrays > 0 && (w == NULL || n == NULL), MP_EINVAL, "prune: NULL arrays");
    for (size_t a = 0; a < n_arrays; a++) {
        MP_RETURN_IF(w[a] == NULL && n[a] > 0, MP_EINVAL, "prune: array %zu is NULL", a);
        MP_RETURN_IF(mp__add_size(total, n[a], &total), MP_EINVAL,
                     "prune: element count overflows");
        size_t bad = mp__first_nonfinite_f32(w[a], n[a]);
        MP_RETURN_IF(bad < n[a], MP_EINVAL,
                     "prune: array %zu, element %zu is %s; only finite weights can be pruned", a,
                     bad, isnan(w[a][bad]) ? "NaN" : "infinite");
    }
    MP_RETURN_IF(total > 0 && scratch == NULL, MP_EINVAL, "prune: no scratch for %zu elements",
                 total);

    /* For totals past 2^53 the product can round up past total. */
    long long kr = llround(sparsity * (double)total);
    size_t k = (size_t)kr > total ? total : (size_t)kr;

    if (k == total) {
        for (size_t a = 0; a < n_arrays; a++) {
            for (size_t j = 0; j < n[a]; j++) {
                w[a][j] = 0.0f;
            }
        }
    } else if (k > 0) {
        size_t p = 0;
        for (size_t a = 0; a < n_arrays; a++) {
            for (size_t j = 0; j < n[a]; j++) {
                scratch[p++] = fabsf(w[a][j]);
            }
        }
        const float t = mp__select_kth_f32(scratch, total, k - 1, quick_rounds(total));
        size_t below = 0;
        for (size_t a = 0; a < n_arrays; a++) {
            below += kern->mask_below_f32(w[a], n[a], t);
        }
        /* t is the k-th smallest: fewer than k lie below it, at least k at or below. */
        size_t rest = k - below;
        for (size_t a = 0; a < n_arrays && rest > 0; a++) {
            for (size_t j = 0; j < n[a] && rest > 0; j++) {
                if (fabsf(w[a][j]) == t) {
                    w[a][j] = 0.0f;
                    rest--;
                }
            }
        }
    }
    if (n_zeroed) {
        *n_zeroed = k;
    }
    return MP_OK;
}
