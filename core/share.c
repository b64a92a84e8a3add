/* share.c — k-means weight sharing: 1-D k-means (Lloyd) with Deep Compression's three
 * initialisations, and the exact 1-D optimum by dynamic programming.
 *
 * Why sort first. In one dimension with sorted centroids, the clusters are contiguous runs of
 * the sorted values, cut at the k - 1 midpoints. So the values are sorted once (LSD radix sort
 * on order-preserving keys, O(n)), equal values are merged into (value, count) pairs, and
 * double-double prefix sums are taken; after that one Lloyd iteration is k - 1 searches for the
 * cuts (galloping from the previous iteration's, as cuts move little) plus k subtractions of
 * prefix sums for the means: O(k log m) at worst for m distinct values, independent of n.
 * Thousands of iterations on a million weights then cost less than the one pass that assigns
 * them at the end; assigning every weight against the midpoints in every iteration (the other
 * classic trick) would cost O(n) each time. The double-double sums make a centroid the mean of
 * its cluster to within double rounding wherever the cluster sits in the sum, so a fixed point
 * is reached and recognised exactly. Measured on one core of this machine's EPYC, 16 clusters
 * of 1M weights converge in about 0.04 s (most of it the sort); scikit-learn's KMeans takes
 * about 6 s for its 300 iterations on the same float32 data.
 *
 * Exact nearest centroid. The cut between sorted centroids a < b is the largest float t not
 * above (a + b) / 2, found from the exact sum (two-sum) by at most one nextafter step; then a
 * float w is at least as near a as b exactly when w <= t, so comparing floats (kernel
 * assign_f32, vectorised) gives the nearest centroid with ties to the lower index, never an
 * approximation. Among equal centroids only the lowest can receive values: its cut is moved to
 * the cut above the run.
 *
 * Lloyd stops when an update leaves every centroid as it was (then no assignment changes
 * either) or after max_iter updates, like scikit-learn's lloyd with tol = 0. A cluster that
 * empties keeps its centroid. Centroids are kept sorted (an update can reorder only around
 * equal centroids). The returned assignment and SSE are those of the returned centroids: one
 * kernel pass over the weights and one double-precision pass summing (w - c)^2 in index order.
 *
 * The optimum. Over the sorted distinct values with counts, D_l(i) = min_j D_{l-1}(j) +
 * cost(j, i), cost the SSE of one cluster from prefix sums (centred on the mean to limit
 * cancellation). The cost is Monge, so the leftmost best j is nondecreasing in i, and each layer
 * is solved by divide and conquer on i, O(k m log m) candidate evaluations in all: wide nodes
 * scan their candidates with the kernel dp_argmin_f64, and the last DP_BLOCK rows of a branch
 * are finished together by dp_rows_f64 (rows in vector lanes), which halves the time because
 * the deep levels are many small nodes. The split points of every layer are kept for the
 * backtrack when (k - 1) x m of them fit TABLE_BUDGET; otherwise the problem is halved
 * Hirschberg-style: the best costs of the first k/2 clusters forwards and of the last k - k/2
 * backwards (the forward code on the reversed, negated values) meet at the optimal cut of
 * cluster k/2, and each half is solved alone, so memory stays O(m + TABLE_BUDGET) for less
 * than twice the work. Measured on one core of this machine's EPYC (AVX-512): 1M distinct
 * weights, k = 16 in about 0.4 s, k = 256 in about 8 s. The optimal partition's means are then
 * polished by Lloyd (normally a no-op), so the result is a Lloyd fixed point too and its SSE is
 * never above that of the partition found.
 *
 * These methods allocate their work arrays (the interface passes no scratch): 8 bytes per
 * weight while sorting, then 28 per distinct value (36 with k-means++); the optimum adds 72 per
 * distinct value (96 when it halves) and at most TABLE_BUDGET * 4 bytes. MP_ENOMEM when that
 * fails, outputs untouched. Inputs are checked (2 <= k <= 256, n >= 1, finite values and
 * centroids, max_iter >= 0) before anything is written.
 */
#include "methods_int.h"

#include "kernels/kmeans_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define K_MIN 2
#define K_MAX 256
/* Split points kept at once by the dynamic programme (uint32 each: 64 MiB). */
#define TABLE_BUDGET ((size_t)1 << 24)
/* Lloyd updates allowed when polishing the optimum (it normally stops after the first). */
#define POLISH_ITERS 1000
/* Rows of the dynamic programme finished together by the kernel dp_rows_f64. */
#define DP_BLOCK 16
/* Points per block of the k-means++ sampling sums. */
#define PP_BLOCK 256

/* ---- error-free double arithmetic ---------------------------------------------------------- */

/* s + e == a + b exactly (Knuth's two-sum). */
static inline void two_sum(double a, double b, double *s, double *e)
{
    double x = a + b;
    double bv = x - a;
    *s = x;
    *e = (a - (x - bv)) + (b - bv);
}

/* ---- the sorted data ----------------------------------------------------------------------- */

/* The n values sorted and merged: m distinct values u[0..m) ascending (-0.0 and +0.0 are one
 * value), cum[p] values below u[p] (cum[m] = n), and sum_{q < p} count_q * u_q =
 * s_hi[p] + s_lo[p] (Neumaier: s_lo holds what each addition rounded off), far more exactly
 * than one double could. */
typedef struct {
    size_t n, m;
    float *u;
    size_t *cum;
    double *s_hi, *s_lo;
} km_data_t;

static void km_data_cleanup(km_data_t *d)
{
    free(d->u);
    free(d->cum);
    free(d->s_hi);
    free(d->s_lo);
    memset(d, 0, sizeof *d);
}

/* Order-preserving keys: unsigned order of key(a) is the float order of a (-0.0 before +0.0). */
static inline uint32_t float_key(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

static inline float key_float(uint32_t k)
{
    uint32_t u = (k & 0x80000000u) ? (k & 0x7fffffffu) : ~k;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

#define RADIX_BITS 8
#define RADIX_PASSES 4
#define RADIX_SIZE (1u << RADIX_BITS)

/* LSD radix sort of keys (RADIX_PASSES passes of RADIX_BITS bits: 256 buckets keep the
 * scatter's write streams and counters in L1) using tmp[n]; returns whichever of the two buffers
 * holds the result. A pass whose digit is the same for every key is skipped. */
static uint32_t *radix_sort(uint32_t *keys, uint32_t *tmp, size_t n, size_t (*hist)[RADIX_SIZE])
{
    memset(hist, 0, RADIX_PASSES * sizeof hist[0]);
    for (size_t i = 0; i < n; i++) {
        uint32_t k = keys[i];
        for (int pass = 0; pass < RADIX_PASSES; pass++) {
            hist[pass][(k >> (pass * RADIX_BITS)) & (RADIX_SIZE - 1)]++;
        }
    }
    uint32_t *src = keys, *dst = tmp;
    for (int pass = 0; pass < RADIX_PASSES; pass++) {
        size_t *h = hist[pass];
        unsigned shift = (unsigned)pass * RADIX_BITS;
        if (h[(src[0] >> shift) & (RADIX_SIZE - 1)] == n) {
            continue;
        }
        size_t sum = 0;
        for (unsigned b = 0; b < RADIX_SIZE; b++) {
            size_t c = h[b];
            h[b] = sum;
            sum += c;
        }
        for (size_t i = 0; i < n; i++) {
            uint32_t k = src[i];
            dst[h[(k >> shift) & (RADIX_SIZE - 1)]++] = k;
        }
        uint32_t *t = src;
        src = dst;
        dst = t;
    }
    return src;
}

/* (hi, lo) += count * u without rounding error of its own: count * u is exact in double when
 * count < 2^29 (24 + 29 bits); larger counts are split into 28-bit halves (counts stay far
 * below 2^57, the size of any possible tensor). Two-sum keeps what each addition rounds off in
 * lo (Neumaier's summation). */
static inline void dd_add_scaled(double *hi, double *lo, size_t count, float u)
{
    double part = (double)(count & ((1u << 28) - 1)) * (double)u;
    double s, e;
    if (count >> 28) {
        two_sum(*hi, (double)(count >> 28) * 0x1p28 * (double)u, &s, &e);
        *hi = s;
        *lo += e;
    }
    two_sum(*hi, part, &s, &e);
    *hi = s;
    *lo += e;
}

static int km_data_build(const float *w, size_t n, km_data_t *d, mp_errctx_t *err)
{
    int rc = 0;
    size_t bytes;
    uint32_t *keys = NULL, *tmp = NULL;
    size_t(*hist)[RADIX_SIZE] = malloc(RADIX_PASSES * sizeof *hist);
    memset(d, 0, sizeof *d);
    if (mp__mul_size(n, sizeof *keys, &bytes) == 0) {
        keys = malloc(bytes);
        tmp = malloc(bytes);
    }
    MP_GOTO_IF(!keys || !tmp || !hist, MP_ENOMEM, "k-means: no memory to sort %zu values", n);
    for (size_t i = 0; i < n; i++) {
        keys[i] = float_key(w[i]);
    }
    uint32_t *sorted = radix_sort(keys, tmp, n, hist);
    /* The other buffer goes now, before the per-value arrays come. */
    if (sorted == keys) {
        free(tmp);
        tmp = NULL;
    } else {
        free(keys);
        keys = NULL;
    }

    size_t m = 1;
    for (size_t i = 1; i < n; i++) {
        m += key_float(sorted[i]) != key_float(sorted[i - 1]);
    }
    d->n = n;
    d->m = m;
    d->u = malloc(m * sizeof *d->u);
    d->cum = malloc((m + 1) * sizeof *d->cum);
    d->s_hi = malloc((m + 1) * sizeof *d->s_hi);
    d->s_lo = malloc((m + 1) * sizeof *d->s_lo);
    MP_GOTO_IF(!d->u || !d->cum || !d->s_hi || !d->s_lo, MP_ENOMEM,
               "k-means: no memory for %zu distinct values", m);
    size_t p = 0;
    d->u[0] = key_float(sorted[0]);
    d->cum[0] = 0;
    for (size_t i = 1; i < n; i++) {
        float f = key_float(sorted[i]);
        if (f != d->u[p]) {
            d->u[++p] = f;
            d->cum[p] = i;
        }
    }
    d->cum[m] = n;
    double hi = 0.0, lo = 0.0;
    for (p = 0; p < m; p++) {
        d->s_hi[p] = hi;
        d->s_lo[p] = lo;
        dd_add_scaled(&hi, &lo, d->cum[p + 1] - d->cum[p], d->u[p]);
    }
    d->s_hi[m] = hi;
    d->s_lo[m] = lo;
out:
    free(keys);
    free(tmp);
    free(hist);
    if (rc < 0) {
        km_data_cleanup(d);
    }
    return rc;
}

/* The mean of distinct values [a, b) (a < b) rounded to float, kept inside [u[a], u[b-1]]. */
static float cluster_mean(const km_data_t *d, size_t a, size_t b)
{
    if (b == a + 1) {
        return d->u[a];
    }
    double h, e;
    two_sum(d->s_hi[b], -d->s_hi[a], &h, &e);
    double sum = h + (e + (d->s_lo[b] - d->s_lo[a]));
    float mean = (float)(sum / (double)(d->cum[b] - d->cum[a]));
    if (mean < d->u[a]) {
        mean = d->u[a];
    }
    if (mean > d->u[b - 1]) {
        mean = d->u[b - 1];
    }
    return mean;
}

/* ---- cuts between centroids ---------------------------------------------------------------- */

/* The largest float t <= (a + b) / 2, exactly (a < b, both finite). */
static float midpoint_floor(float a, float b)
{
    double hi, lo;
    two_sum((double)a, (double)b, &hi, &lo);
    /* 2t - hi is exact below (Sterbenz: 2t and hi are within a factor 2, or t is 0). */
    float t = (float)(hi * 0.5);
    if (2.0 * (double)t - hi > lo) {
        t = nextafterf(t, -INFINITY);
    } else {
        float up = nextafterf(t, INFINITY);
        if (2.0 * (double)up - hi <= lo) {
            t = up;
        }
    }
    return t;
}

/* Cuts t[0..k-1) of sorted centroids c[0..k): a value w goes to #{j : t[j] < w}, the nearest
 * centroid with ties to the lower index. Inside a run of equal centroids the cuts take the
 * value of the cut above the run (+inf at the top), so the run's lowest index gets it all. */
static void centroid_cuts(const float *c, int k, float *t)
{
    for (int j = k - 2; j >= 0; j--) {
        if (c[j] == c[j + 1]) {
            t[j] = j + 1 < k - 1 ? t[j + 1] : INFINITY;
        } else {
            t[j] = midpoint_floor(c[j], c[j + 1]);
        }
    }
}

/* Number of distinct values <= t, searched outwards from h, the count of the iteration before:
 * cuts move little between Lloyd iterations, so this touches a few cached values where a plain
 * binary search would touch log2(m) scattered ones. */
static size_t count_le(const km_data_t *d, float t, size_t h)
{
    const float *u = d->u;
    size_t lo, hi, step = 1; /* the count lies in [lo, hi] */
    if (h > d->m) {
        h = d->m / 2;
    }
    if (h < d->m && u[h] <= t) {
        lo = h + 1;
        while (lo + step - 1 < d->m && u[lo + step - 1] <= t) {
            lo += step;
            step <<= 1;
        }
        hi = lo + step - 1 < d->m ? lo + step - 1 : d->m;
    } else {
        hi = h;
        while (hi >= step && !(u[hi - step] <= t)) {
            hi -= step;
            step <<= 1;
        }
        lo = hi >= step ? hi - step + 1 : 0;
    }
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (u[mid] <= t) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

static void sort_floats(float *c, int k)
{
    for (int i = 1; i < k; i++) {
        float v = c[i];
        int j = i;
        for (; j > 0 && c[j - 1] > v; j--) {
            c[j] = c[j - 1];
        }
        c[j] = v;
    }
}

/* ---- Lloyd --------------------------------------------------------------------------------- */

/* At most max_iter updates of the sorted centroids c[0..k); stops at a fixed point. */
static void lloyd(const km_data_t *d, int k, int max_iter, float *c)
{
    float t[K_MAX], next[K_MAX];
    size_t bnd[K_MAX + 1];
    for (int j = 0; j <= k; j++) {
        bnd[j] = SIZE_MAX; /* no hint yet */
    }
    for (int it = 0; it < max_iter; it++) {
        centroid_cuts(c, k, t);
        bnd[0] = 0;
        for (int j = 0; j < k - 1; j++) {
            bnd[j + 1] = count_le(d, t[j], bnd[j + 1]);
        }
        bnd[k] = d->m;
        int changed = 0;
        for (int j = 0; j < k; j++) {
            next[j] = bnd[j + 1] > bnd[j] ? cluster_mean(d, bnd[j], bnd[j + 1]) : c[j];
        }
        sort_floats(next, k);
        for (int j = 0; j < k; j++) {
            changed |= next[j] != c[j];
            c[j] = next[j];
        }
        if (!changed) {
            break;
        }
    }
}

/* Assign every weight to its nearest centroid and sum the squared errors in index order. */
static void finish(const float *w, size_t n, int k, const float *c, uint8_t *assign, double *sse)
{
    float t[K_MAX];
    centroid_cuts(c, k, t);
    mp__kern_kmeans()->assign_f32(w, n, t, k - 1, assign);
    double s = 0.0;
    for (size_t i = 0; i < n; i++) {
        double e = (double)w[i] - (double)c[assign[i]];
        s += e * e;
    }
    *sse = s;
}

/* ---- initialisation ------------------------------------------------------------------------ */

static void init_linear(const km_data_t *d, int k, float *c)
{
    double lo = d->u[0], hi = d->u[d->m - 1];
    for (int j = 0; j < k - 1; j++) {
        c[j] = (float)(lo + (hi - lo) * j / (k - 1));
    }
    c[k - 1] = d->u[d->m - 1];
}

/* Index p of the distinct value holding sorted rank r (< n): cum[p] <= r < cum[p + 1]. */
static size_t rank_to_distinct(const km_data_t *d, size_t r)
{
    size_t lo = 0, hi = d->m - 1;
    while (lo < hi) {
        size_t mid = lo + (hi - lo + 1) / 2;
        if (d->cum[mid] <= r) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    return lo;
}

/* The values at the CDF levels (j + 1/2) / k: evenly spaced on the CDF's axis. */
static void init_density(const km_data_t *d, int k, float *c)
{
    for (int j = 0; j < k; j++) {
        /* (2j + 1) n cannot overflow: j < 256 and n counts floats held in memory */
        size_t r = (2 * (size_t)j + 1) * d->n / (2 * (size_t)k);
        c[j] = d->u[rank_to_distinct(d, r)];
    }
}

static inline uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static inline double unit_double(uint64_t *s) /* [0, 1) */
{
    return (double)(splitmix64(s) >> 11) * 0x1p-53;
}

/* Weighted squared distances of the k-means++ draw, with per-block sums recomputed from scratch
 * whenever a block changes, so the draws do not drift with rounding. */
typedef struct {
    const km_data_t *d;
    double *dist2; /* (u[p] - nearest chosen centroid)^2 */
    double *block; /* sum of count * dist2 over each PP_BLOCK points */
    size_t n_blocks;
} pp_t;

static inline double pp_weight(const pp_t *pp, size_t p)
{
    return (double)(pp->d->cum[p + 1] - pp->d->cum[p]) * pp->dist2[p];
}

static void pp_resum(pp_t *pp, size_t first, size_t last) /* blocks of points first..last */
{
    for (size_t b = first / PP_BLOCK; b <= last / PP_BLOCK; b++) {
        size_t end = (b + 1) * PP_BLOCK < pp->d->m ? (b + 1) * PP_BLOCK : pp->d->m;
        double s = 0.0;
        for (size_t p = b * PP_BLOCK; p < end; p++) {
            s += pp_weight(pp, p);
        }
        pp->block[b] = s;
    }
}

/* A point drawn with probability proportional to its weight; total > 0. */
static size_t pp_draw(const pp_t *pp, double total, uint64_t *rng)
{
    double t = unit_double(rng) * total;
    size_t b = 0;
    while (b + 1 < pp->n_blocks && t >= pp->block[b]) {
        t -= pp->block[b++];
    }
    size_t end = (b + 1) * PP_BLOCK < pp->d->m ? (b + 1) * PP_BLOCK : pp->d->m;
    size_t last = SIZE_MAX;
    for (size_t p = b * PP_BLOCK; p < end; p++) {
        double wp = pp_weight(pp, p);
        if (wp > 0.0) {
            if (t < wp) {
                return p;
            }
            last = p;
            t -= wp;
        }
    }
    if (last != SIZE_MAX) {
        return last; /* t ran past the block by rounding */
    }
    for (size_t p = pp->d->m; p-- > 0;) {
        if (pp_weight(pp, p) > 0.0) {
            return p;
        }
    }
    return 0; /* unreachable: total > 0 */
}

/* k-means++ (Arthur and Vassilvitskii): the first centroid a uniformly drawn weight, each next
 * one a value drawn with probability proportional to its squared distance to the nearest
 * centroid so far. In 1-D a new centroid only takes points up to the midpoints towards its
 * chosen neighbours, so each update walks outwards from it and stops at the first point it does
 * not take. When every value is already a centroid, the rest repeat the largest value. */
static int init_kmeanspp(const km_data_t *d, int k, uint64_t seed, float *c, mp_errctx_t *err)
{
    int rc = 0;
    pp_t pp = {.d = d, .n_blocks = (d->m + PP_BLOCK - 1) / PP_BLOCK};
    pp.dist2 = malloc(d->m * sizeof *pp.dist2);
    pp.block = malloc(pp.n_blocks * sizeof *pp.block);
    MP_GOTO_IF(!pp.dist2 || !pp.block, MP_ENOMEM, "k-means++: no memory for %zu values", d->m);
    uint64_t rng = seed;
    size_t first = rank_to_distinct(d, (size_t)(unit_double(&rng) * (double)d->n));
    c[0] = d->u[first];
    for (size_t p = 0; p < d->m; p++) {
        double e = (double)d->u[p] - (double)c[0];
        pp.dist2[p] = e * e;
    }
    pp_resum(&pp, 0, d->m - 1);
    for (int j = 1; j < k; j++) {
        double total = 0.0;
        for (size_t b = 0; b < pp.n_blocks; b++) {
            total += pp.block[b];
        }
        if (!(total > 0.0)) {
            for (; j < k; j++) {
                c[j] = d->u[d->m - 1];
            }
            break;
        }
        size_t q = pp_draw(&pp, total, &rng);
        float cq = d->u[q];
        c[j] = cq;
        size_t lo = q, hi = q;
        pp.dist2[q] = 0.0;
        for (size_t p = q + 1; p < d->m; p++, hi++) {
            double e = (double)d->u[p] - (double)cq;
            if (!(e * e < pp.dist2[p])) {
                break;
            }
            pp.dist2[p] = e * e;
        }
        for (size_t p = q; p-- > 0; lo--) {
            double e = (double)d->u[p] - (double)cq;
            if (!(e * e < pp.dist2[p])) {
                break;
            }
            pp.dist2[p] = e * e;
        }
        pp_resum(&pp, lo, hi);
    }
    sort_floats(c, k);
out:
    free(pp.dist2);
    free(pp.block);
    return rc;
}

/* ---- the exact optimum --------------------------------------------------------------------- */

/* Prefix sums over the distinct values, centred on the mean: side 0 forwards, side 1 over the
 * values reversed and negated (the same costs, read from the other end). */
typedef struct {
    const mp_kern_kmeans_table_t *kt;
    size_t m;
    double *s[2], *q[2], *c[2];
    double *row[3];
    uint32_t *opt;
} dp_t;

/* One layer's divide and conquer: fills cur[i] = D_l(i) for i in [ilo, ihi] from e[j] =
 * D_{l-1}(j) - Q(j), the best j lying in [jlo, jhi]; opt[i - base] receives it when opt. */
typedef struct {
    const mp_kern_kmeans_table_t *kt;
    const double *s, *q, *c, *e;
    double *cur;
    uint32_t *opt;
    size_t base;
} layer_t;

static void layer_dc(const layer_t *ly, size_t ilo, size_t ihi, size_t jlo, size_t jhi)
{
    while (ilo <= ihi) {
        if (ihi - ilo < DP_BLOCK) {
            /* A few rows left: scan them all at once over their shared candidates. */
            double best[DP_BLOCK];
            size_t arg[DP_BLOCK], nr = ihi - ilo + 1;
            ly->kt->dp_rows_f64(ly->e, ly->s, ly->c, jlo, jhi, ilo, nr, best, arg);
            for (size_t r = 0; r < nr; r++) {
                ly->cur[ilo + r] = ly->q[ilo + r] + best[r];
                if (ly->opt) {
                    ly->opt[ilo + r - ly->base] = (uint32_t)arg[r];
                }
            }
            return;
        }
        size_t mid = ilo + (ihi - ilo) / 2;
        size_t jend = (jhi < mid - 1 ? jhi : mid - 1) + 1;
        double best;
        size_t j =
            ly->kt->dp_argmin_f64(ly->e, ly->s, ly->c, jlo, jend, ly->s[mid], ly->c[mid], &best);
        ly->cur[mid] = ly->q[mid] + best;
        if (ly->opt) {
            ly->opt[mid - ly->base] = (uint32_t)j;
        }
        if (mid > ilo) {
            layer_dc(ly, ilo, mid - 1, jlo, j);
        }
        ilo = mid + 1; /* the right half in this frame: recursion depth stays log2 */
        jlo = j;
    }
}

/* Best costs of the points [lo, i) of one side in L clusters, for i in [lo + L, i_max], into
 * out[i] (absolute indices; rows hold m + 1 doubles). With opt, the split points of layers
 * 2..L go to opt[(l - 2) * w + i - (lo + l)], w = i_max - lo - L + 1, and the last layer is
 * evaluated at i_max only (all the backtrack needs). */
static void dp_layers(const dp_t *dp, int side, size_t lo, int L, size_t i_max, double *out,
                      double *work, uint32_t *opt)
{
    const double *s = dp->s[side], *q = dp->q[side], *c = dp->c[side];
    size_t w = i_max - lo - (size_t)L + 1;
    double *cur = (L % 2) ? out : work, *prev = (L % 2) ? work : out;
    for (size_t i = lo + 1; i < lo + 1 + w; i++) {
        double ds = s[i] - s[lo];
        cur[i] = (q[i] - q[lo]) - ds * ds / (c[i] - c[lo]);
    }
    for (int l = 2; l <= L; l++) {
        double *t = prev;
        prev = cur;
        cur = t;
        size_t ilo = lo + (size_t)l, ihi = ilo + w - 1;
        for (size_t j = ilo - 1; j < ihi; j++) {
            prev[j] -= q[j];
        }
        layer_t ly = {.kt = dp->kt,
                      .s = s,
                      .q = q,
                      .c = c,
                      .e = prev,
                      .cur = cur,
                      .opt = opt ? opt + (size_t)(l - 2) * w : NULL,
                      .base = ilo};
        if (opt && l == L) {
            ilo = ihi;
        }
        layer_dc(&ly, ilo, ihi, lo + (size_t)l - 1, ihi - 1);
    }
}

/* The optimal cuts of the points [lo, hi) into K clusters: cut[1..K) (cut[0] = lo, cut[K] = hi
 * are the caller's). hi - lo >= K. */
static void dp_solve(const dp_t *dp, size_t lo, size_t hi, int K, size_t *cut)
{
    if (K == 1) {
        return;
    }
    size_t w = hi - lo - (size_t)K + 1;
    if ((size_t)(K - 1) * w <= TABLE_BUDGET) {
        dp_layers(dp, 0, lo, K, hi, dp->row[0], dp->row[1], dp->opt);
        size_t i = hi;
        for (int l = K; l >= 2; l--) {
            i = dp->opt[(size_t)(l - 2) * w + i - (lo + (size_t)l)];
            cut[l - 1] = i;
        }
        return;
    }
    int k1 = K / 2, k2 = K - k1;
    size_t m = dp->m;
    /* F(s): [lo, s) in k1 clusters; G: [s, hi) in k2 clusters, computed on the reversed side
     * as [m - hi, m - s). */
    dp_layers(dp, 0, lo, k1, hi - (size_t)k2, dp->row[0], dp->row[1], NULL);
    dp_layers(dp, 1, m - hi, k2, m - lo - (size_t)k1, dp->row[1], dp->row[2], NULL);
    size_t best_s = lo + (size_t)k1;
    double best = INFINITY;
    for (size_t s = lo + (size_t)k1; s <= hi - (size_t)k2; s++) {
        double v = dp->row[0][s] + dp->row[1][m - s];
        if (v < best) {
            best = v;
            best_s = s;
        }
    }
    cut[k1] = best_s;
    dp_solve(dp, lo, best_s, k1, cut);
    dp_solve(dp, best_s, hi, k2, cut + k1);
}

static void dp_cleanup(dp_t *dp)
{
    for (int side = 0; side < 2; side++) {
        free(dp->s[side]);
        free(dp->q[side]);
        free(dp->c[side]);
    }
    for (int r = 0; r < 3; r++) {
        free(dp->row[r]);
    }
    free(dp->opt);
}

/* The optimal cuts of all m distinct values into k clusters (m > k). */
static int optimal_cuts(const km_data_t *d, int k, size_t *cut, mp_errctx_t *err)
{
    int rc = 0;
    size_t m = d->m, w = m - (size_t)k + 1;
    size_t table = (size_t)(k - 1) * w <= TABLE_BUDGET ? (size_t)(k - 1) * w : TABLE_BUDGET;
    int sides = table < (size_t)(k - 1) * w ? 2 : 1; /* the reversed side only for halving */
    dp_t dp = {.kt = mp__kern_kmeans(), .m = m};
    for (int side = 0; side < sides; side++) {
        dp.s[side] = malloc((m + 1) * sizeof(double));
        dp.q[side] = malloc((m + 1) * sizeof(double));
        dp.c[side] = malloc((m + 1) * sizeof(double));
        MP_GOTO_IF(!dp.s[side] || !dp.q[side] || !dp.c[side], MP_ENOMEM,
                   "k-means optimal: no memory for %zu distinct values", m);
    }
    for (int r = 0; r < 3; r++) {
        dp.row[r] = malloc((m + 1) * sizeof(double));
        MP_GOTO_IF(!dp.row[r], MP_ENOMEM, "k-means optimal: no memory for %zu distinct values", m);
    }
    dp.opt = malloc(table * sizeof *dp.opt);
    MP_GOTO_IF(!dp.opt, MP_ENOMEM, "k-means optimal: no memory for %zu split points", table);

    double mean = (d->s_hi[m] + d->s_lo[m]) / (double)d->n;
    for (int side = 0; side < sides; side++) {
        double *s = dp.s[side], *q = dp.q[side], *c = dp.c[side];
        s[0] = q[0] = c[0] = 0.0;
        for (size_t t = 0; t < m; t++) {
            size_t p = side ? m - 1 - t : t;
            double cnt = (double)(d->cum[p + 1] - d->cum[p]);
            double x = side ? mean - (double)d->u[p] : (double)d->u[p] - mean;
            s[t + 1] = s[t] + cnt * x;
            q[t + 1] = q[t] + cnt * (x * x);
            c[t + 1] = c[t] + cnt;
        }
    }
    cut[0] = 0;
    cut[k] = m;
    dp_solve(&dp, 0, m, k, cut);
out:
    dp_cleanup(&dp);
    return rc;
}

/* The means of the optimal partition (every distinct value its own centroid, the rest repeating
 * the largest, when there are no more distinct values than clusters). */
static int init_optimal(const km_data_t *d, int k, float *c, mp_errctx_t *err)
{
    size_t cut[K_MAX + 1];
    if (d->m <= (size_t)k) {
        for (int j = 0; j < k; j++) {
            c[j] = d->u[(size_t)j < d->m ? (size_t)j : d->m - 1];
        }
        return 0;
    }
    int rc = optimal_cuts(d, k, cut, err);
    for (int j = 0; rc == 0 && j < k; j++) {
        c[j] = cluster_mean(d, cut[j], cut[j + 1]);
    }
    return rc;
}

/* ---- the entry points ---------------------------------------------------------------------- */

/* Where run() starts besides the three initialisations of mp__km_init_t. */
enum { START_FROM = -1, START_OPTIMAL = -2 };

/* Check, sort, start (an initialisation, the caller's centroids or the optimum), iterate,
 * assign: the one body of the three entry points. */
static int run(const float *w, size_t n, int k, int start, uint64_t seed, int max_iter,
               float *centroids, uint8_t *assign, double *sse, mp_errctx_t *err)
{
    km_data_t d = {0};
    float c[K_MAX];
    MP_RETURN_IF(!w || !centroids || !assign || !sse, MP_EINVAL, "k-means: NULL argument");
    MP_RETURN_IF(k < K_MIN || k > K_MAX, MP_EINVAL,
                 "k-means: clusters must be from %d to %d, got %d", K_MIN, K_MAX, k);
    MP_RETURN_IF(n == 0, MP_EINVAL, "k-means: no values to cluster");
    size_t bad = mp__first_nonfinite_f32(w, n);
    MP_RETURN_IF(bad < n, MP_EINVAL, "k-means: value %zu is %s", bad,
                 isnan(w[bad]) ? "NaN" : "infinite");
    MP_RETURN_IF(max_iter < 0, MP_EINVAL, "k-means: max_iter must be >= 0, got %d", max_iter);
    if (start == START_FROM) {
        bad = mp__first_nonfinite_f32(centroids, (size_t)k);
        MP_RETURN_IF(bad < (size_t)k, MP_EINVAL, "k-means: initial centroid %zu is %s", bad,
                     isnan(centroids[bad]) ? "NaN" : "infinite");
    }
    int rc = km_data_build(w, n, &d, err);
    if (rc < 0) {
        goto out;
    }
    switch (start) {
    case MP_KM_INIT_LINEAR:
        init_linear(&d, k, c);
        break;
    case MP_KM_INIT_DENSITY:
        init_density(&d, k, c);
        break;
    case MP_KM_INIT_KMEANSPP:
        rc = init_kmeanspp(&d, k, seed, c, err);
        break;
    case START_FROM:
        memcpy(c, centroids, (size_t)k * sizeof *c);
        sort_floats(c, k);
        break;
    default:
        rc = init_optimal(&d, k, c, err);
        break;
    }
    if (rc < 0) {
        goto out;
    }
    lloyd(&d, k, max_iter, c);
    finish(w, n, k, c, assign, sse);
    memcpy(centroids, c, (size_t)k * sizeof *c);
out:
    km_data_cleanup(&d);
    return rc;
}

int mp__kmeans_1d(const float *w, size_t n, int k, mp__km_init_t init, uint64_t seed, int max_iter,
                  float *centroids, uint8_t *assign, double *sse, mp_errctx_t *err)
{
    MP_RETURN_IF((int)init < MP_KM_INIT_LINEAR || (int)init > MP_KM_INIT_KMEANSPP, MP_EINVAL,
                 "k-means: unknown initialisation %d", (int)init);
    return run(w, n, k, (int)init, seed, max_iter, centroids, assign, sse, err);
}

int mp__kmeans_1d_from(const float *w, size_t n, int k, int max_iter, float *centroids,
                       uint8_t *assign, double *sse, mp_errctx_t *err)
{
    return run(w, n, k, START_FROM, 0, max_iter, centroids, assign, sse, err);
}

int mp__kmeans_1d_optimal(const float *w, size_t n, int k, float *centroids, uint8_t *assign,
                          double *sse, mp_errctx_t *err)
{
    return run(w, n, k, START_OPTIMAL, 0, POLISH_ITERS, centroids, assign, sse, err);
}
