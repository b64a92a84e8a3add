/* prune.c — pruning: magnitude (unstructured, exact sparsity, one array or many at once),
 * whole output channels by norm, and N:M along the input axis.
 *
 * Magnitude: k = llround(sparsity * total) entries become +0.0: the k smallest |w|, and among
 * equal magnitudes the earliest in (array, element) order, so the result is a function of the
 * input alone. The cut magnitude t (the k-th smallest |w|) is found by selection in the
 * caller's scratch, never by sorting: median-of-3 quickselect with Hoare partitions, which
 * after 2 log2(n) rounds hands over to median-of-medians pivots with three-way partitions, whose
 * every round discards at least 3/10 of what is left, so the whole is O(n) in the worst case.
 * Large totals select over a narrow band only: a stratified sample of 2^15 magnitudes gives
 * bounds lo < hi around t's rank, one streaming pass (the nm family's band kernel) counts the
 * magnitudes under lo and copies those in [lo, hi) to scratch, and t is selected among them. A
 * band that misses t (a sample unlike the whole) costs one more pass over the side holding it,
 * never a different answer. Then the mask kernel zeroes every |w| < t, and the k - count
 * entries still missing are taken from those with |w| == t in order — or, when every |w| == t
 * goes (always, for continuous data), the one mask pass zeroes |w| <= t directly.
 * Channels: rows ranked by L1 or L2 norm in double, lowest first, ties to the lower row.
 * N:M: the nm kernels, whose ties go to the lower index. Weights must be finite everywhere
 * (NaN has no magnitude order); nothing is written before every check has passed.
 */
#include "methods_int.h"

#include "kernels/kernels_int.h"
#include "kernels/nm_int.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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

/* ---- magnitude pruning --------------------------------------------------------------------- */

/* Totals from this size on narrow the selection with a sample first; smaller ones select over
 * all their magnitudes at once, which is fast enough and needs no statistics. */
#define SAMPLE_FROM ((size_t)1 << 18)
#define N_SAMPLES ((size_t)1 << 15)
/* Half-width of the band in standard deviations of a sample quantile's rank. The k-th value
 * falls outside with odds far below 1e-6 when the sample is representative; when it does not,
 * one more pass over the side that holds it finds it (never a different answer). */
#define MARGIN 6.0

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* N_SAMPLES magnitudes of the concatenation of the arrays: stratum s is [floor(s total / N),
 * floor((s + 1) total / N)), and its sample sits at a fixed pseudo-random offset within it, so
 * the sample covers the whole in order, rows and periodic structure do not alias with it, and
 * the same input always gives the same sample. 0 if a sampled value is not finite: then the
 * full pass reports it. */
static int draw_sample(float *const *w, const size_t *n, size_t total, float *sample)
{
    const size_t q = total / N_SAMPLES, r = total % N_SAMPLES;
    size_t a = 0, base = 0;
    for (size_t s = 0; s < N_SAMPLES; s++) {
        /* floor(s * total / N) without overflow: s * r < N^2 */
        size_t start = s * q + s * r / N_SAMPLES;
        size_t end = (s + 1) * q + (s + 1) * r / N_SAMPLES;
        size_t pos = start + (size_t)(mix64(s + 1) % (end - start));
        while (pos - base >= n[a]) {
            base += n[a++];
        }
        float v = fabsf(w[a][pos - base]);
        if (!(v <= FLT_MAX)) {
            return 0;
        }
        sample[s] = v;
    }
    return 1;
}

/* Bounds lo < hi around the sample's quantile of rank kk (0-based) among total values, MARGIN
 * standard deviations to either side; a side beyond the sample stays open (0 or +inf). hi is
 * just above the sample value it comes from, so that a run of ties at that value lies inside
 * the band rather than just outside it. */
static void band_bounds(float *sample, size_t kk, size_t total, float *lo, float *hi)
{
    const double s = (double)N_SAMPLES;
    double q = ((double)kk + 0.5) / (double)total;
    double r = q * s, d = MARGIN * sqrt(s * q * (1.0 - q)) + 4.0;
    double rl = floor(r - d), rh = ceil(r + d);
    size_t first = 0; /* sample[first..) holds the values >= lo once lo is chosen */
    *lo = 0.0f;
    *hi = INFINITY;
    if (rl >= 0.0) {
        first = (size_t)rl;
        *lo = mp__select_kth_f32(sample, N_SAMPLES, first, quick_rounds(N_SAMPLES));
        first++;
    }
    if (rh < s) {
        size_t n_rest = N_SAMPLES - first;
        float v =
            mp__select_kth_f32(sample + first, n_rest, (size_t)rh - first, quick_rounds(n_rest));
        *hi = nextafterf(v, INFINITY); /* v >= lo, so hi > lo */
    }
}

static int report_nonfinite(float *const *w, const size_t *n, size_t n_arrays, mp_errctx_t *err)
{
    for (size_t a = 0; a < n_arrays; a++) {
        size_t bad = mp__first_nonfinite_f32(w[a], n[a]);
        MP_RETURN_IF(bad < n[a], MP_EINVAL,
                     "prune: array %zu, element %zu is %s; only finite weights can be pruned", a,
                     bad, isnan(w[a][bad]) ? "NaN" : "infinite");
    }
    return MP_OK;
}

/* One pass over every array: the magnitudes in [lo, hi) go to band (*n_band of them) and
 * *below counts those under lo. MP_EINVAL naming the first weight that is not finite. */
static int collect_band(float *const *w, const size_t *n, size_t n_arrays, float lo, float hi,
                        float *band, size_t *n_band, size_t *below, mp_errctx_t *err)
{
    const mp_kern_nm_table_t *kn = mp__kern_nm();
    size_t nb = 0, bl = 0, bad = 0;
    for (size_t a = 0; a < n_arrays; a++) {
        size_t b, f;
        /* nb <= the elements of the arrays before a, so band + nb has room for n[a] */
        nb += kn->band_abs_f32(w[a], n[a], lo, hi, band + nb, &b, &f);
        bl += b;
        bad += f;
    }
    *n_band = nb;
    *below = bl;
    return bad ? report_nonfinite(w, n, n_arrays, err) : MP_OK;
}

static void mask_all(float *const *w, const size_t *n, size_t n_arrays, float t)
{
    const mp_kern_table_t *kern = mp__kern();
    for (size_t a = 0; a < n_arrays; a++) {
        kern->mask_below_f32(w[a], n[a], t);
    }
}

/* Prunes the k smallest magnitudes (0 < k < total), refusing non-finite weights before
 * writing anything; scratch holds total floats. */
static int prune_k(float *const *w, const size_t *n, size_t n_arrays, size_t total, size_t k,
                   float *scratch, mp_errctx_t *err)
{
    const size_t kk = k - 1; /* the rank of the cut magnitude t */
    float lo = 0.0f, hi = INFINITY;
    size_t nb, below;
    int rc;

    if (total >= SAMPLE_FROM && draw_sample(w, n, total, scratch)) {
        band_bounds(scratch, kk, total, &lo, &hi);
    }
    rc = collect_band(w, n, n_arrays, lo, hi, scratch, &nb, &below, err);
    if (rc == MP_OK && (kk < below || kk - below >= nb)) {
        /* The sample misled: t lies under lo or at or above hi; that side has it for sure. */
        if (kk < below) {
            hi = lo;
            lo = 0.0f;
        } else {
            lo = hi;
            hi = INFINITY;
        }
        rc = collect_band(w, n, n_arrays, lo, hi, scratch, &nb, &below, err);
    }
    if (rc != MP_OK) {
        return rc;
    }

    const float t = mp__select_kth_f32(scratch, nb, kk - below, quick_rounds(nb));
    /* Every |w| == t lies in the band, since lo <= t < hi. */
    size_t n_lt = below, n_eq = 0;
    for (size_t i = 0; i < nb; i++) {
        n_lt += scratch[i] < t;
        n_eq += scratch[i] == t;
    }
    size_t rest = k - n_lt; /* 1 <= rest <= n_eq: t is the k-th smallest */
    if (rest == n_eq) {
        /* all of t's ties go: one pass zeroes |w| <= t (nextafterf(FLT_MAX) is +inf) */
        mask_all(w, n, n_arrays, nextafterf(t, INFINITY));
        return MP_OK;
    }
    mask_all(w, n, n_arrays, t);
    for (size_t a = 0; a < n_arrays && rest > 0; a++) {
        for (size_t j = 0; j < n[a] && rest > 0; j++) {
            if (fabsf(w[a][j]) == t) {
                w[a][j] = 0.0f;
                rest--;
            }
        }
    }
    return MP_OK;
}

int mp__prune_magnitude(float *const *w, const size_t *n, size_t n_arrays, double sparsity,
                        float *scratch, size_t *n_zeroed, mp_errctx_t *err)
{
    size_t total = 0;
    int rc;

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
    }
    MP_RETURN_IF(total > 0 && scratch == NULL, MP_EINVAL, "prune: no scratch for %zu elements",
                 total);

    /* For totals past 2^53 the product can round up past total. */
    long long kr = llround(sparsity * (double)total);
    size_t k = (size_t)kr > total ? total : (size_t)kr;

    if (k > 0 && k < total) {
        rc = prune_k(w, n, n_arrays, total, k, scratch, err); /* checks finiteness on its way */
    } else {
        rc = report_nonfinite(w, n, n_arrays, err);
        for (size_t a = 0; rc == MP_OK && k == total && a < n_arrays; a++) {
            if (n[a] > 0) {
                memset(w[a], 0, n[a] * sizeof(float)); /* all bits zero is +0.0 */
            }
        }
    }
    if (rc == MP_OK && n_zeroed) {
        *n_zeroed = k;
    }
    return rc;
}

/* ---- structured: whole output channels ------------------------------------------------------ */

typedef struct {
    double norm;
    size_t row;
} row_norm_t;

/* By norm, then by row: the lower of equal norms sorts first and so is removed first. */
static int row_norm_cmp(const void *pa, const void *pb)
{
    const row_norm_t *a = pa, *b = pb;
    if (a->norm != b->norm) {
        return a->norm < b->norm ? -1 : 1;
    }
    return a->row < b->row ? -1 : a->row > b->row;
}

/* |w| summed (norm 1) or sqrt of w^2 summed (norm 2), in double, in element order. */
static double row_norm(const float *x, size_t n, int norm)
{
    double s = 0.0;
    if (norm == 1) {
        for (size_t i = 0; i < n; i++) {
            s += fabs((double)x[i]);
        }
        return s;
    }
    for (size_t i = 0; i < n; i++) {
        s += (double)x[i] * (double)x[i];
    }
    return sqrt(s);
}

/* Needs rows norms at once, which no caller-given buffer holds: the one allocation here is
 * rows entries of 16 bytes, small beside the matrix itself. */
int mp__prune_channels(const char *name, float *w, size_t rows, size_t cols, double sparsity,
                       int norm, uint8_t *removed, size_t *n_removed, mp_errctx_t *err)
{
    const char *tn = name ? name : "(unnamed)";
    row_norm_t *order = NULL;
    size_t n_el, k = 0;
    int rc = MP_OK;

    if (n_removed) {
        *n_removed = 0;
    }
    MP_GOTO_IF(!(sparsity >= 0.0 && sparsity <= 1.0), MP_EINVAL,
               "tensor '%s': channel sparsity must be a number from 0 to 1, got %g", tn, sparsity);
    MP_GOTO_IF(norm != 1 && norm != 2, MP_EINVAL,
               "tensor '%s': channel norm must be 1 (L1) or 2 (L2), got %d", tn, norm);
    MP_GOTO_IF(mp__mul_size(rows, cols, &n_el), MP_EINVAL,
               "tensor '%s': %zu x %zu elements overflow", tn, rows, cols);
    MP_GOTO_IF((n_el > 0 && w == NULL) || (rows > 0 && removed == NULL), MP_EINVAL,
               "tensor '%s': NULL weights or removed flags", tn);
    size_t bad = mp__first_nonfinite_f32(w, n_el);
    MP_GOTO_IF(bad < n_el, MP_EINVAL,
               "tensor '%s': element %zu (row %zu, column %zu) is %s; only finite weights can be "
               "pruned",
               tn, bad, bad / cols, bad % cols, isnan(w[bad]) ? "NaN" : "infinite");

    k = (size_t)llround(sparsity * (double)rows);
    k = k > rows ? rows : k;
    if (rows > 0) {
        memset(removed, 0, rows);
    }
    if (k == 0) {
        goto out;
    }
    order = malloc(rows * sizeof *order);
    MP_GOTO_IF(order == NULL, MP_ENOMEM, "tensor '%s': out of memory for %zu channel norms", tn,
               rows);
    for (size_t r = 0; r < rows; r++) {
        order[r].norm = row_norm(w + r * cols, cols, norm);
        order[r].row = r;
    }
    qsort(order, rows, sizeof *order, row_norm_cmp);
    for (size_t i = 0; i < k; i++) {
        size_t r = order[i].row;
        removed[r] = 1;
        if (cols > 0) {
            memset(w + r * cols, 0, cols * sizeof(float)); /* +0.0 */
        }
    }
    if (n_removed) {
        *n_removed = k;
    }
out:
    free(order);
    return rc;
}

/* ---- structured: N of every M along the input axis ------------------------------------------ */

int mp__prune_nm(const char *name, float *w, size_t rows, size_t cols, int n, int m,
                 mp_errctx_t *err)
{
    const char *tn = name ? name : "(unnamed)";
    const mp_kern_nm_table_t *kn = mp__kern_nm();
    size_t n_el;

    MP_RETURN_IF(!((n == 2 && m == 4) || (n == 4 && m == 8)), MP_EINVAL,
                 "tensor '%s': N:M sparsity must be 2:4 or 4:8, got %d:%d", tn, n, m);
    MP_RETURN_IF(cols % (size_t)m != 0, MP_EINVAL,
                 "tensor '%s': %zu input columns are not a multiple of %d for %d:%d sparsity", tn,
                 cols, m, n, m);
    MP_RETURN_IF(mp__mul_size(rows, cols, &n_el), MP_EINVAL,
                 "tensor '%s': %zu x %zu elements overflow", tn, rows, cols);
    MP_RETURN_IF(n_el > 0 && w == NULL, MP_EINVAL, "tensor '%s': NULL weights", tn);
    size_t bad = mp__first_nonfinite_f32(w, n_el);
    MP_RETURN_IF(bad < n_el, MP_EINVAL,
                 "tensor '%s': element %zu (row %zu, column %zu) is %s; only finite weights can "
                 "be pruned",
                 tn, bad, bad / cols, bad % cols, isnan(w[bad]) ? "NaN" : "infinite");
    /* Rows are contiguous and whole groups, so the matrix is one run of groups. */
    if (m == 4) {
        kn->nm24_f32(w, n_el / 4);
    } else {
        kn->nm48_f32(w, n_el / 8);
    }
    return MP_OK;
}
