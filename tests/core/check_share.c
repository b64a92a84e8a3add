/* check_share.c — k-means weight sharing: the kmeans kernels, Lloyd, its three initialisations
 * and the exact optimum.
 *
 * Kernels: every SIMD variant this CPU has is compared with _ref, bytes and bits equal: the
 * assignment on every length 0..1023 (and a few long odd ones) for every k = 2..256, with
 * thresholds that repeat, end in +inf, and values that sit exactly on them, one ulp either side,
 * ±0, NaN, ±inf and ±FLT_MAX, guard bytes untouched; the dp row scan on every candidate count
 * 1..1023 and the dp block on 1..40 rows, on prefix sums shaped like the real ones and on
 * planted ties (the lowest index must win, -0.0 and +0.0 included). _ref itself is pinned to
 * the literal definitions (count of thresholds below x; the row scan per row).
 *
 * Lloyd and the optimum are checked by what they promise, recomputed the slow way here:
 * centroids sorted; every assignment the nearest centroid by brute force with exact distances
 * (long double), ties to the lower index; the SSE bit-equal to the sum in index order; one
 * more Lloyd iteration from the result changes nothing (a fixed point); the optimum equal to an
 * exhaustive search over all contiguous partitions on small inputs (n <= 12, k <= 4), to an
 * O(k n^2) dynamic programme at n = 2000, and to a plain divide-and-conquer programme at
 * n = 70000, k = 256 (where share.c must halve the problem); and never above Lloyd's SSE from
 * any initialisation. Hand-made cases pin exact figures; bad arguments are refused with
 * nothing written; a failing allocation gives MP_ENOMEM (outside sanitizer builds).
 */
#include "core/kernels/kernels_int.h"
#include "core/kernels/kmeans_int.h"
#include "core/methods_int.h"

#include <check.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define GUARD 64

/* ck_assert records every passing assertion (a write to check's log), which the inner loops
 * here would turn into millions of system calls: they test plainly and abort on failure. */
#define EXPECT(cond, ...)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            ck_abort_msg(__VA_ARGS__);                                                             \
        }                                                                                          \
    } while (0)

/* ---- data ---------------------------------------------------------------------------------- */

static uint64_t rng_state = 11;

static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static double rng_unit(void) /* (0, 1) */
{
    return ((double)(rng_next() >> 11) + 0.5) * 0x1p-53;
}

static double rng_normal(void)
{
    return sqrt(-2.0 * log(rng_unit())) * cos(6.283185307179586 * rng_unit());
}

enum { D_UNIFORM, D_NORMAL, D_LAPLACE, D_FEW, D_PRUNED, D_WIDE, D_SORTED, N_DATA };

/* Weights of the kinds a network holds: uniform, normal, Laplace (heavy tails), five distinct
 * values, 90% zeros of either sign, magnitudes spread over 60 binades, and sorted data. */
static void fill(float *w, size_t n, int kind)
{
    static const float few[5] = {-0.5f, -0.125f, 0.0f, 0.25f, 1.0f};
    for (size_t i = 0; i < n; i++) {
        double u = rng_unit();
        switch (kind) {
        case D_UNIFORM:
            w[i] = (float)(2.0 * u - 1.0);
            break;
        case D_NORMAL:
            w[i] = (float)(0.05 * rng_normal());
            break;
        case D_LAPLACE:
            w[i] = (float)((rng_next() & 1 ? 0.03 : -0.03) * log(u));
            break;
        case D_FEW:
            w[i] = few[rng_next() % 5];
            break;
        case D_PRUNED:
            w[i] = rng_next() % 10 < 9 ? ((i & 1) ? -0.0f : 0.0f) : (float)(0.1 * rng_normal());
            break;
        case D_WIDE:
            w[i] = (float)((rng_next() & 1 ? 1.0 : -1.0) *
                           ldexp(1.0 + u, (int)(rng_next() % 60) - 40));
            break;
        default:
            w[i] = (float)i * 0.001f - 1.0f;
            break;
        }
    }
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

/* ---- what every result must satisfy -------------------------------------------------------- */

static double sse_of(const float *w, size_t n, const float *c, const uint8_t *assign)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) {
        double e = (double)w[i] - (double)c[assign[i]];
        s += e * e;
    }
    return s;
}

/* Sorted centroids, each weight at its nearest (exact distances; ties to the lower index), SSE
 * bit-equal to the recomputation. */
static void check_result(const float *w, size_t n, int k, const float *c, const uint8_t *assign,
                         double sse)
{
    for (int j = 1; j < k; j++) {
        EXPECT(c[j - 1] <= c[j], "centroids not sorted: c[%d] = %a > c[%d] = %a", j - 1,
               (double)c[j - 1], j, (double)c[j]);
    }
    for (size_t i = 0; i < n; i++) {
        int a = assign[i];
        EXPECT(a < k, "w[%zu] assigned to %d of %d", i, a, k);
        long double da = fabsl((long double)w[i] - (long double)c[a]);
        for (int j = 0; j < k; j++) {
            long double dj = fabsl((long double)w[i] - (long double)c[j]);
            EXPECT(j < a ? da < dj : da <= dj,
                   "w[%zu] = %a assigned to c[%d] = %a, but c[%d] = %a is %s", i, (double)w[i], a,
                   (double)c[a], j, (double)c[j], j < a ? "as near and lower" : "nearer");
        }
    }
    double s = sse_of(w, n, c, assign);
    ck_assert_msg(memcmp(&s, &sse, sizeof s) == 0, "SSE %.17g, recomputed %.17g", sse, s);
}

/* One more Lloyd iteration from (c, assign) changes nothing. */
static void check_fixed_point(const float *w, size_t n, int k, const float *c,
                              const uint8_t *assign, double sse)
{
    float c2[256];
    uint8_t *a2 = malloc(n);
    double sse2;
    ck_assert_ptr_nonnull(a2);
    memcpy(c2, c, (size_t)k * sizeof *c);
    ck_assert_int_eq(mp__kmeans_1d_from(w, n, k, 1, c2, a2, &sse2, NULL), 0);
    ck_assert_msg(memcmp(c2, c, (size_t)k * sizeof *c) == 0, "one more iteration moved a centroid");
    ck_assert_msg(memcmp(a2, assign, n) == 0, "one more iteration changed an assignment");
    ck_assert(sse2 == sse);
    free(a2);
}

/* ---- kernels: assign_f32 ------------------------------------------------------------------- */

static const mp_kern_kmeans_table_t *ref_table;
static const mp_kern_kmeans_table_t *variants[2];
static int n_variants;

static void kernels_setup(void)
{
    static const char *const isas[] = {"avx2", "avx512"};
    ref_table = mp__kern_kmeans_for("ref");
    n_variants = 0;
    for (int i = 0; i < 2; i++) {
        const mp_kern_kmeans_table_t *t = mp__kern_kmeans_for(isas[i]);
        if (t) {
            variants[n_variants++] = t;
        } else {
            fprintf(stderr, "check_share: this CPU lacks %s; its kmeans kernels are untested\n",
                    isas[i]);
        }
    }
}

/* k - 1 sorted thresholds in [-2, 2]: some repeated, some ±0, and (one k in three) the top
 * ones +inf, as share.c makes them for equal centroids at the top. */
static void make_thresholds(float *t, int n_thr)
{
    for (int j = 0; j < n_thr; j++) {
        uint64_t r = rng_next() % 16;
        t[j] = r == 0 && j > 0 ? t[j - 1]
               : r == 1        ? ((j & 1) ? -0.0f : 0.0f)
                               : (float)(4.0 * rng_unit() - 2.0);
    }
    qsort(t, (size_t)n_thr, sizeof *t, cmp_float);
    if (n_thr > 0 && rng_next() % 3 == 0) {
        for (int j = n_thr - 1 - (int)(rng_next() % (unsigned)n_thr / 4); j < n_thr; j++) {
            t[j] = INFINITY;
        }
    }
}

static void make_points(float *x, size_t n, const float *t, int n_thr)
{
    static const float special[] = {0.0f,    -0.0f,    NAN,     INFINITY,  -INFINITY,
                                    FLT_MAX, -FLT_MAX, FLT_MIN, -0x1p-149f};
    for (size_t i = 0; i < n; i++) {
        uint64_t r = rng_next() % 20;
        float at = n_thr > 0 ? t[rng_next() % (unsigned)n_thr] : 0.0f;
        if (r < 8) {
            x[i] = (float)(5.0 * rng_unit() - 2.5);
        } else if (r < 12) {
            x[i] = at;
        } else if (r < 16) {
            x[i] = nextafterf(at, (r & 1) ? INFINITY : -INFINITY);
        } else {
            x[i] = special[rng_next() % (sizeof special / sizeof special[0])];
        }
    }
}

/* The literal contract: the count of thresholds below x. */
static uint8_t count_below(float x, const float *t, int n_thr)
{
    int c = 0;
    for (int j = 0; j < n_thr; j++) {
        c += t[j] < x;
    }
    return (uint8_t)c;
}

#define MAX_LEN 1024

START_TEST(test_assign_ref_is_count)
{
    float t[255], x[300];
    uint8_t out[300];
    for (int k = 2; k <= 256; k++) {
        make_thresholds(t, k - 1);
        make_points(x, 300, t, k - 1);
        ref_table->assign_f32(x, 300, t, k - 1, out);
        for (int i = 0; i < 300; i++) {
            EXPECT(out[i] == count_below(x[i], t, k - 1), "k %d x %a: %d, expected %d", k,
                   (double)x[i], out[i], count_below(x[i], t, k - 1));
        }
    }
    /* Pinned by hand: cuts -1, 0, 0, 2 (k = 5). */
    static const float cuts[] = {-1.0f, 0.0f, 0.0f, 2.0f};
    static const float pts[] = {-5.0f, -1.0f, -0.5f, -0.0f, 0.0f, 1e-30f, 2.0f, 3.0f, NAN};
    static const uint8_t expect[] = {0, 0, 1, 1, 1, 3, 3, 4, 0};
    ref_table->assign_f32(pts, 9, cuts, 4, out);
    ck_assert_mem_eq(out, expect, 9);
}
END_TEST

START_TEST(test_assign_variants)
{
    static const size_t offsets[] = {0, 1, 3};
    static const size_t long_lens[] = {1031, 4099, 65537};
    float t[255];
    float *x = malloc((65537 + 8) * sizeof *x);
    uint8_t *ref = malloc(65537 + GUARD), *out = malloc(65537 + GUARD);
    ck_assert(x && ref && out);
    for (int v = 0; v < n_variants; v++) {
        for (int k = 2; k <= 256; k++) {
            size_t off = offsets[k % 3];
            make_thresholds(t, k - 1);
            make_points(x, MAX_LEN + off, t, k - 1);
            ref_table->assign_f32(x + off, MAX_LEN - 1, t, k - 1, ref);
            for (size_t len = 0; len < MAX_LEN; len++) {
                memset(out, 0xA5, len + GUARD);
                variants[v]->assign_f32(x + off, len, t, k - 1, out);
                EXPECT(memcmp(out, ref, len) == 0, "%s assign k %d len %zu differs",
                       variants[v]->isa, k, len);
                for (size_t g = len; g < len + GUARD; g++) {
                    EXPECT(out[g] == 0xA5, "%s assign k %d len %zu wrote byte %zu",
                           variants[v]->isa, k, len, g);
                }
            }
        }
        for (size_t l = 0; l < sizeof long_lens / sizeof long_lens[0]; l++) {
            for (int k = 2; k <= 256; k += 37) {
                make_thresholds(t, k - 1);
                make_points(x, long_lens[l], t, k - 1);
                ref_table->assign_f32(x, long_lens[l], t, k - 1, ref);
                variants[v]->assign_f32(x, long_lens[l], t, k - 1, out);
                EXPECT(memcmp(out, ref, long_lens[l]) == 0, "%s assign k %d len %zu",
                       variants[v]->isa, k, long_lens[l]);
            }
        }
    }
    free(x);
    free(ref);
    free(out);
}
END_TEST

/* ---- kernels: the dp scans ----------------------------------------------------------------- */

#define DP_N 2200

static double dp_e[DP_N], dp_s[DP_N], dp_c[DP_N];

/* Prefix sums of sorted values with counts 1..3 and e = D - Q with D a plausible cost. */
static void make_dp_arrays(int ties)
{
    double s = 0.0, q = 0.0, c = 0.0;
    float x[DP_N];
    fill(x, DP_N, D_NORMAL);
    qsort(x, DP_N, sizeof *x, cmp_float);
    for (size_t j = 0; j < DP_N; j++) {
        dp_s[j] = s;
        dp_c[j] = c;
        dp_e[j] = q * 0.25 * rng_unit() - q;
        double cnt = (double)(1 + rng_next() % 3);
        s += cnt * x[j];
        q += cnt * (double)x[j] * x[j];
        c += cnt;
    }
    if (ties) {
        /* Candidates whose value is exactly e (d = 0) and least of all: every such j ties. At
         * ties == 2 they are ±0.0 against positive values elsewhere. */
        double s_row = dp_s[DP_N - 1];
        for (size_t j = 0; j < DP_N - 1; j++) {
            if (ties == 2) {
                dp_e[j] = 1e6 + j;
            }
            if (rng_next() % 4 == 0) {
                dp_s[j] = s_row;
                dp_e[j] = ties == 2 ? ((rng_next() & 1) ? -0.0 : 0.0) : -1e30;
            }
        }
    }
}

static void check_argmin_pair(const mp_kern_kmeans_table_t *v, size_t a, size_t b, size_t i)
{
    double rb, vb;
    size_t ra = ref_table->dp_argmin_f64(dp_e, dp_s, dp_c, a, b, dp_s[i], dp_c[i], &rb);
    size_t va = v->dp_argmin_f64(dp_e, dp_s, dp_c, a, b, dp_s[i], dp_c[i], &vb);
    EXPECT(ra == va && memcmp(&rb, &vb, sizeof rb) == 0,
           "%s dp_argmin [%zu, %zu) row %zu: %zu %a, ref %zu %a", v->isa, a, b, i, va, vb, ra, rb);
}

START_TEST(test_dp_argmin)
{
    for (int ties = 0; ties <= 2; ties++) {
        make_dp_arrays(ties);
        /* The reference against the definition, written out. */
        for (size_t len = 1; len < 200; len++) {
            size_t a = rng_next() % 100, b = a + len, i = DP_N - 1, best_j = a;
            double best = INFINITY, got;
            for (size_t j = a; j < b; j++) {
                double d = dp_s[i] - dp_s[j];
                double v = dp_e[j] - d * d / (dp_c[i] - dp_c[j]);
                if (v < best) {
                    best = v;
                    best_j = j;
                }
            }
            size_t arg = ref_table->dp_argmin_f64(dp_e, dp_s, dp_c, a, b, dp_s[i], dp_c[i], &got);
            EXPECT(arg == best_j && memcmp(&got, &best, sizeof got) == 0,
                   "ref dp_argmin [%zu, %zu): %zu %a, by definition %zu %a", a, b, arg, got, best_j,
                   best);
        }
        for (int v = 0; v < n_variants; v++) {
            for (size_t len = 1; len < MAX_LEN; len++) {
                size_t a = rng_next() % (DP_N - 1 - len);
                size_t i = ties ? DP_N - 1 : a + len + rng_next() % (DP_N - a - len);
                check_argmin_pair(variants[v], a, a + len, i);
            }
            check_argmin_pair(variants[v], 0, DP_N - 1, DP_N - 1);
        }
    }
}
END_TEST

START_TEST(test_dp_rows)
{
    for (int ties = 0; ties <= 2; ties++) {
        make_dp_arrays(ties);
        for (size_t nr = 1; nr <= 40; nr++) {
            for (int rep = 0; rep < 20; rep++) {
                size_t ilo = 1 + rng_next() % (DP_N - 1 - nr);
                size_t jlo = rng_next() % ilo;
                size_t jhi = jlo + rng_next() % (ilo + nr + 5 - jlo);
                double rb[40], vb[40];
                size_t ra[40], va[40];
                ref_table->dp_rows_f64(dp_e, dp_s, dp_c, jlo, jhi, ilo, nr, rb, ra);
                for (size_t r = 0; r < nr; r++) {
                    size_t i = ilo + r, end = (jhi < i - 1 ? jhi : i - 1) + 1;
                    double b1;
                    size_t a1 =
                        ref_table->dp_argmin_f64(dp_e, dp_s, dp_c, jlo, end, dp_s[i], dp_c[i], &b1);
                    EXPECT(a1 == ra[r] && memcmp(&b1, &rb[r], sizeof b1) == 0,
                           "ref dp_rows row %zu is not its row scan", i);
                }
                for (int v = 0; v < n_variants; v++) {
                    variants[v]->dp_rows_f64(dp_e, dp_s, dp_c, jlo, jhi, ilo, nr, vb, va);
                    EXPECT(memcmp(va, ra, nr * sizeof *ra) == 0 &&
                               memcmp(vb, rb, nr * sizeof *rb) == 0,
                           "%s dp_rows rows %zu..%zu over [%zu, %zu] differ", variants[v]->isa, ilo,
                           ilo + nr - 1, jlo, jhi);
                }
            }
        }
    }
}
END_TEST

/* ---- Lloyd --------------------------------------------------------------------------------- */

static const mp__km_init_t inits[] = {MP_KM_INIT_LINEAR, MP_KM_INIT_DENSITY, MP_KM_INIT_KMEANSPP};

START_TEST(test_lloyd_small_exact)
{
    /* Two obvious clusters: means 1 and 11, SSE 2 + 2 = 4. */
    static const float w[] = {10.0f, 0.0f, 11.0f, 1.0f, 12.0f, 2.0f};
    static const uint8_t expect[] = {1, 0, 1, 0, 1, 0};
    float c[2];
    uint8_t a[6];
    double sse;
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(mp__kmeans_1d(w, 6, 2, inits[i], 1, 100, c, a, &sse, NULL), 0);
        ck_assert(c[0] == 1.0f && c[1] == 11.0f);
        ck_assert_mem_eq(a, expect, 6);
        ck_assert(sse == 4.0);
    }
    /* A value halfway between two centroids goes to the lower one (max_iter 0: no update). */
    static const float v[] = {0.0f, 1.0f, 2.0f};
    c[0] = 2.0f;
    c[1] = 0.0f; /* any order: sorted on return */
    ck_assert_int_eq(mp__kmeans_1d_from(v, 3, 2, 0, c, a, &sse, NULL), 0);
    ck_assert(c[0] == 0.0f && c[1] == 2.0f);
    ck_assert(a[0] == 0 && a[1] == 0 && a[2] == 1);
    ck_assert(sse == 1.0);
    /* One Lloyd update from there: clusters {0, 1} and {2}, means 0.5 and 2, SSE 0.5. */
    ck_assert_int_eq(mp__kmeans_1d_from(v, 3, 2, 1, c, a, &sse, NULL), 0);
    ck_assert(c[0] == 0.5f && c[1] == 2.0f && sse == 0.5);
}
END_TEST

/* Centroids a few ulps apart and values between them: the float midpoint is not the cut, the
 * exact one is (checked by brute force in check_result). */
START_TEST(test_lloyd_near_ties)
{
    enum { N = 64 };
    float w[N], c[4];
    uint8_t a[N];
    double sse;
    for (int rep = 0; rep < 2000; rep++) {
        float base = (float)ldexp(1.0 + rng_unit(), (int)(rng_next() % 80) - 40);
        if (rng_next() & 1) {
            base = -base;
        }
        float c0 = base;
        for (int j = 0; j < 4; j++) {
            c[j] = c0;
            for (int u = (int)(rng_next() % 5); u > 0; u--) {
                c0 = nextafterf(c0, INFINITY);
            }
        }
        for (int i = 0; i < N; i++) {
            float x = c[0];
            for (int u = (int)(rng_next() % 20); u > 1; u--) {
                x = nextafterf(x, INFINITY);
            }
            w[i] = x;
        }
        /* Also a pair whose float sum is inexact (exponents far apart). */
        if (rep % 10 == 0) {
            c[0] = 0x1p-60f;
            c[1] = 1.0f;
            c[2] = 1.5f;
            c[3] = 2.0f;
            w[0] = 0.5f;
            w[1] = nextafterf(0.5f, 1.0f);
            w[2] = nextafterf(0.5f, 0.0f);
        }
        float cin[4];
        memcpy(cin, c, sizeof c);
        ck_assert_int_eq(mp__kmeans_1d_from(w, N, 4, 0, c, a, &sse, NULL), 0);
        ck_assert_mem_eq(c, cin, sizeof c); /* already sorted, no update */
        check_result(w, N, 4, c, a, sse);
    }
}
END_TEST

START_TEST(test_lloyd_random)
{
    static const size_t ns[] = {1, 2, 3, 10, 100, 1000, 5000};
    static const int ks[] = {2, 3, 4, 7, 16, 64, 255, 256};
    float *w = malloc(5000 * sizeof *w), c[256], c2[256];
    uint8_t *a = malloc(5000), *a2 = malloc(5000);
    double sse, sse2;
    ck_assert(w && a && a2);
    for (int kind = 0; kind < N_DATA; kind++) {
        for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
            size_t n = ns[ni];
            int k = ks[(kind + ni) % (sizeof ks / sizeof ks[0])];
            fill(w, n, kind);
            for (int i = 0; i < 3; i++) {
                ck_assert_int_eq(mp__kmeans_1d(w, n, k, inits[i], 7, 100000, c, a, &sse, NULL), 0);
                check_result(w, n, k, c, a, sse);
                check_fixed_point(w, n, k, c, a, sse);
                /* Deterministic, k-means++ included. */
                ck_assert_int_eq(mp__kmeans_1d(w, n, k, inits[i], 7, 100000, c2, a2, &sse2, NULL),
                                 0);
                ck_assert_mem_eq(c2, c, (size_t)k * sizeof *c);
                ck_assert_mem_eq(a2, a, n);
            }
        }
    }
    free(w);
    free(a);
    free(a2);
}
END_TEST

/* max_iter 0 returns the initial centroids themselves. */
START_TEST(test_inits)
{
    enum { N = 1001, K = 9 };
    float w[N], sorted[N], c[K];
    uint8_t a[N];
    double sse;
    fill(w, N, D_LAPLACE);
    memcpy(sorted, w, sizeof w);
    qsort(sorted, N, sizeof *sorted, cmp_float);
    /* linear: evenly spaced from min to max */
    ck_assert_int_eq(mp__kmeans_1d(w, N, K, MP_KM_INIT_LINEAR, 0, 0, c, a, &sse, NULL), 0);
    for (int j = 0; j < K; j++) {
        double want = sorted[0] + ((double)sorted[N - 1] - sorted[0]) * j / (K - 1);
        ck_assert_msg(c[j] == (float)want, "linear c[%d] = %a, expected %a", j, (double)c[j], want);
    }
    ck_assert(c[0] == sorted[0] && c[K - 1] == sorted[N - 1]);
    /* density: the values at CDF levels (j + 1/2) / K */
    ck_assert_int_eq(mp__kmeans_1d(w, N, K, MP_KM_INIT_DENSITY, 0, 0, c, a, &sse, NULL), 0);
    for (int j = 0; j < K; j++) {
        ck_assert(c[j] == sorted[(2 * j + 1) * N / (2 * K)]);
    }
    /* k-means++: K distinct data values; the seed decides which */
    float c2[K];
    ck_assert_int_eq(mp__kmeans_1d(w, N, K, MP_KM_INIT_KMEANSPP, 1, 0, c, a, &sse, NULL), 0);
    ck_assert_int_eq(mp__kmeans_1d(w, N, K, MP_KM_INIT_KMEANSPP, 2, 0, c2, a, &sse, NULL), 0);
    ck_assert(memcmp(c, c2, sizeof c) != 0);
    for (int j = 0; j < K; j++) {
        ck_assert(bsearch(&c[j], sorted, N, sizeof *sorted, cmp_float) != NULL);
        ck_assert(j == 0 || c[j - 1] < c[j]);
    }
}
END_TEST

START_TEST(test_few_distinct)
{
    /* Three distinct values, k = 8: every method reaches SSE 0 with each value at its own
     * centroid; one value repeated n times likewise. */
    static const float vals[3] = {-1.0f, 2.0f, 3.0f};
    float w[100], c[8];
    uint8_t a[100];
    double sse;
    for (int i = 0; i < 100; i++) {
        w[i] = vals[rng_next() % 3];
    }
    for (int m = 0; m < 4; m++) {
        int rc = m < 3 ? mp__kmeans_1d(w, 100, 8, inits[m], 3, 1000, c, a, &sse, NULL)
                       : mp__kmeans_1d_optimal(w, 100, 8, c, a, &sse, NULL);
        ck_assert_int_eq(rc, 0);
        ck_assert(sse == 0.0);
        check_result(w, 100, 8, c, a, sse);
        for (int i = 0; i < 100; i++) {
            ck_assert(c[a[i]] == w[i]);
        }
    }
    ck_assert(c[0] == -1.0f && c[1] == 2.0f && c[2] == 3.0f && c[7] == 3.0f);
    for (int i = 0; i < 5; i++) {
        w[i] = 0.25f;
    }
    for (int m = 0; m < 4; m++) {
        int rc = m < 3 ? mp__kmeans_1d(w, 5, 2, inits[m], 3, 10, c, a, &sse, NULL)
                       : mp__kmeans_1d_optimal(w, 5, 2, c, a, &sse, NULL);
        ck_assert_int_eq(rc, 0);
        ck_assert(sse == 0.0 && c[0] == 0.25f && c[1] == 0.25f);
        ck_assert(a[0] == 0 && a[4] == 0);
    }
}
END_TEST

START_TEST(test_refusals)
{
    float w[4] = {1.0f, 2.0f, 3.0f, 4.0f}, c[257], keep[257];
    uint8_t a[4] = {7, 7, 7, 7};
    double sse = -1.0;
    mp_errctx_t err;
    for (int j = 0; j < 257; j++) {
        keep[j] = c[j] = (float)j;
    }
#define REFUSED(call, text)                                                                        \
    do {                                                                                           \
        memset(&err, 0, sizeof err);                                                               \
        ck_assert_int_eq((call), MP_EINVAL);                                                       \
        ck_assert_int_eq(err.code, MP_EINVAL);                                                     \
        ck_assert_msg(strstr(err.msg, text) != NULL, "message '%s' lacks '%s'", err.msg, text);    \
        ck_assert_mem_eq(c, keep, sizeof c);                                                       \
        ck_assert(a[0] == 7 && a[3] == 7 && sse == -1.0);                                          \
    } while (0)
    REFUSED(mp__kmeans_1d(w, 4, 1, MP_KM_INIT_LINEAR, 0, 10, c, a, &sse, &err), "got 1");
    REFUSED(mp__kmeans_1d(w, 4, 257, MP_KM_INIT_LINEAR, 0, 10, c, a, &sse, &err), "got 257");
    REFUSED(mp__kmeans_1d_from(w, 4, 0, 10, c, a, &sse, &err), "got 0");
    REFUSED(mp__kmeans_1d_optimal(w, 4, 257, c, a, &sse, &err), "from 2 to 256");
    REFUSED(mp__kmeans_1d(w, 0, 2, MP_KM_INIT_LINEAR, 0, 10, c, a, &sse, &err), "no values");
    REFUSED(mp__kmeans_1d_optimal(w, 0, 2, c, a, &sse, &err), "no values");
    REFUSED(mp__kmeans_1d(w, 4, 2, MP_KM_INIT_LINEAR, 0, -1, c, a, &sse, &err), "max_iter");
    REFUSED(mp__kmeans_1d(w, 4, 2, (mp__km_init_t)3, 0, 10, c, a, &sse, &err), "initialisation");
    REFUSED(mp__kmeans_1d(NULL, 4, 2, MP_KM_INIT_LINEAR, 0, 10, c, a, &sse, &err), "NULL");
    w[2] = NAN;
    REFUSED(mp__kmeans_1d(w, 4, 2, MP_KM_INIT_DENSITY, 0, 10, c, a, &sse, &err), "value 2 is NaN");
    REFUSED(mp__kmeans_1d_optimal(w, 4, 2, c, a, &sse, &err), "value 2 is NaN");
    w[2] = 3.0f;
    w[3] = -INFINITY;
    REFUSED(mp__kmeans_1d_from(w, 4, 2, 10, c, a, &sse, &err), "value 3 is infinite");
    w[3] = 4.0f;
    c[1] = keep[1] = INFINITY;
    REFUSED(mp__kmeans_1d_from(w, 4, 2, 10, c, a, &sse, &err), "initial centroid 1 is infinite");
#undef REFUSED
}
END_TEST

/* ---- the optimum --------------------------------------------------------------------------- */

/* Exact SSE of the sorted x[0..n) cut at cut[0..k] (long double means). */
static long double partition_sse(const float *x, int k, const size_t *cut)
{
    long double total = 0.0L;
    for (int j = 0; j < k; j++) {
        long double mean = 0.0L;
        for (size_t i = cut[j]; i < cut[j + 1]; i++) {
            mean += x[i];
        }
        mean /= (long double)(cut[j + 1] - cut[j]);
        for (size_t i = cut[j]; i < cut[j + 1]; i++) {
            total += ((long double)x[i] - mean) * ((long double)x[i] - mean);
        }
    }
    return total;
}

/* The least SSE over every cut of the sorted x into k nonempty runs. */
static long double brute_optimum(const float *x, size_t n, int k, size_t *cut, int j)
{
    if (j == k) {
        return partition_sse(x, k, cut);
    }
    long double best = INFINITY;
    for (size_t at = cut[j - 1] + 1; at + (size_t)(k - j) <= n; at++) {
        cut[j] = at;
        long double v = brute_optimum(x, n, k, cut, j + 1);
        best = v < best ? v : best;
    }
    return best;
}

/* The optimum's SSE against an exact figure: float centroids may add up to n (ulp/2)^2 to the
 * exact optimum of the same partition, and near-equal partitions may swap by double rounding. */
static void check_optimal(const float *w, size_t n, int k, double expect_sse)
{
    float c[256];
    uint8_t *a = malloc(n);
    double sse, maxabs = 0.0;
    ck_assert_ptr_nonnull(a);
    for (size_t i = 0; i < n; i++) {
        maxabs = fabs(w[i]) > maxabs ? fabs(w[i]) : maxabs;
    }
    double tol = 1e-9 * expect_sse + (double)n * (maxabs * 0x1p-24) * (maxabs * 0x1p-24);
    ck_assert_int_eq(mp__kmeans_1d_optimal(w, n, k, c, a, &sse, NULL), 0);
    check_result(w, n, k, c, a, sse);
    check_fixed_point(w, n, k, c, a, sse);
    ck_assert_msg(fabs(sse - expect_sse) <= tol, "n %zu k %d: optimal SSE %.17g, expected %.17g", n,
                  k, sse, expect_sse);
    free(a);
}

START_TEST(test_optimal_brute)
{
    float w[12], x[12];
    size_t cut[5];
    for (int rep = 0; rep < 3000; rep++) {
        size_t n = 2 + rng_next() % 11;
        int k = 2 + (int)(rng_next() % 3);
        if ((size_t)k > n) {
            k = (int)n;
        }
        fill(w, n, rep % 2 ? D_UNIFORM : D_FEW);
        memcpy(x, w, n * sizeof *w);
        qsort(x, n, sizeof *x, cmp_float);
        size_t distinct = 1;
        for (size_t i = 1; i < n; i++) {
            distinct += x[i] != x[i - 1];
        }
        cut[0] = 0;
        cut[k] = n;
        long double best = brute_optimum(x, n, k, cut, 1);
        if (distinct <= (size_t)k) {
            ck_assert(best == 0.0L);
        }
        check_optimal(w, n, k, (double)best);
    }
}
END_TEST

/* The textbook O(k n^2) programme over the sorted values, in long double (cuts between equal
 * values are allowed; they never beat the optimum, which has none). */
static double dp_quadratic(const float *x, size_t n, int k)
{
    long double *s = malloc((n + 1) * sizeof *s), *q = malloc((n + 1) * sizeof *q);
    long double *d = malloc((n + 1) * sizeof *d), *d2 = malloc((n + 1) * sizeof *d2);
    ck_assert(s && q && d && d2);
    s[0] = q[0] = 0.0L;
    for (size_t i = 0; i < n; i++) {
        s[i + 1] = s[i] + x[i];
        q[i + 1] = q[i] + (long double)x[i] * x[i];
    }
    for (size_t i = 1; i <= n; i++) {
        d[i] = q[i] - s[i] * s[i] / (long double)i;
    }
    for (int l = 2; l <= k; l++) {
        for (size_t i = (size_t)l; i <= n; i++) {
            long double best = INFINITY;
            for (size_t j = (size_t)l - 1; j < i; j++) {
                long double ds = s[i] - s[j];
                long double v = d[j] + (q[i] - q[j]) - ds * ds / (long double)(i - j);
                best = v < best ? v : best;
            }
            d2[i] = best;
        }
        memcpy(d + l, d2 + l, (n + 1 - (size_t)l) * sizeof *d);
    }
    double r = (double)d[n];
    free(s);
    free(q);
    free(d);
    free(d2);
    return r;
}

START_TEST(test_optimal_quadratic)
{
    enum { N = 2000 };
    float w[N], x[N];
    for (int kind = 0; kind < 3; kind++) {
        fill(w, N, kind == 0 ? D_UNIFORM : kind == 1 ? D_NORMAL : D_LAPLACE);
        memcpy(x, w, sizeof w);
        qsort(x, N, sizeof *x, cmp_float);
        int k = 3 + 5 * kind;
        check_optimal(w, N, k, dp_quadratic(x, N, k));
    }
}
END_TEST

/* A plain divide-and-conquer programme with every split point kept (n k uint32): no kernels,
 * no halving. Returns the exact SSE of the partition it finds. */
static uint32_t *dc_opt_row;
static double *dc_s, *dc_q, *dc_prev, *dc_cur;

static void dc_layer(size_t ilo, size_t ihi, size_t jlo, size_t jhi)
{
    if (ilo > ihi) {
        return;
    }
    size_t mid = ilo + (ihi - ilo) / 2, best_j = jlo;
    double best = INFINITY;
    for (size_t j = jlo; j <= jhi && j < mid; j++) {
        double ds = dc_s[mid] - dc_s[j];
        double v = dc_prev[j] + (dc_q[mid] - dc_q[j]) - ds * ds / (double)(mid - j);
        if (v < best) {
            best = v;
            best_j = j;
        }
    }
    dc_cur[mid] = best;
    dc_opt_row[mid] = (uint32_t)best_j;
    if (mid > ilo) {
        dc_layer(ilo, mid - 1, jlo, best_j);
    }
    dc_layer(mid + 1, ihi, best_j, jhi);
}

static double dp_dc(const float *x, size_t n, int k)
{
    uint32_t *opt = malloc((size_t)(k + 1) * (n + 1) * sizeof *opt);
    size_t cut[257];
    dc_s = malloc((n + 1) * sizeof *dc_s);
    dc_q = malloc((n + 1) * sizeof *dc_q);
    dc_prev = malloc((n + 1) * sizeof *dc_prev);
    dc_cur = malloc((n + 1) * sizeof *dc_cur);
    ck_assert(opt && dc_s && dc_q && dc_prev && dc_cur);
    double mean = 0.0;
    for (size_t i = 0; i < n; i++) {
        mean += x[i];
    }
    mean /= (double)n;
    dc_s[0] = dc_q[0] = 0.0;
    for (size_t i = 0; i < n; i++) {
        dc_s[i + 1] = dc_s[i] + (x[i] - mean);
        dc_q[i + 1] = dc_q[i] + (x[i] - mean) * (x[i] - mean);
    }
    for (size_t i = 1; i <= n; i++) {
        dc_prev[i] = dc_q[i] - dc_s[i] * dc_s[i] / (double)i;
    }
    for (int l = 2; l <= k; l++) {
        dc_opt_row = opt + (size_t)l * (n + 1);
        dc_layer((size_t)l, n, (size_t)l - 1, n - 1);
        double *t = dc_prev;
        dc_prev = dc_cur;
        dc_cur = t;
    }
    cut[0] = 0;
    cut[k] = n;
    for (int l = k; l >= 2; l--) {
        cut[l - 1] = opt[(size_t)l * (n + 1) + cut[l]];
    }
    double r = (double)partition_sse(x, k, cut);
    free(opt);
    free(dc_s);
    free(dc_q);
    free(dc_prev);
    free(dc_cur);
    return r;
}

START_TEST(test_optimal_large)
{
    /* 70000 distinct values and k = 256: 255 x 69745 split points exceed share.c's table, so
     * the problem is halved at least once. */
    enum { N = 70000 };
    float *w = malloc(N * sizeof *w), *x = malloc(N * sizeof *x);
    ck_assert(w && x);
    for (size_t i = 0; i < N; i++) {
        x[i] = (float)(i + 1) * 0x1p-16f; /* distinct and exact; permuted and bent below */
        x[i] = x[i] * x[i] * (x[i] < 0.5f ? 1.0f : 3.0f);
    }
    for (size_t i = N - 1; i > 0; i--) {
        size_t j = rng_next() % (i + 1);
        float t = x[i];
        x[i] = x[j];
        x[j] = t;
    }
    memcpy(w, x, N * sizeof *x);
    qsort(x, N, sizeof *x, cmp_float);
    check_optimal(w, N, 256, dp_dc(x, N, 256));
    free(w);
    free(x);
}
END_TEST

START_TEST(test_optimal_beats_lloyd)
{
    static const int ks[] = {2, 3, 5, 16, 64, 256};
    enum { N = 5000 };
    float *w = malloc(N * sizeof *w), c[256];
    uint8_t *a = malloc(N);
    double opt, sse;
    ck_assert(w && a);
    for (int kind = 0; kind < N_DATA; kind++) {
        for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++) {
            fill(w, N, kind);
            ck_assert_int_eq(mp__kmeans_1d_optimal(w, N, ks[ki], c, a, &opt, NULL), 0);
            for (int i = 0; i < 3; i++) {
                for (int max_iter = 1; max_iter <= 100000; max_iter *= 100) {
                    ck_assert_int_eq(
                        mp__kmeans_1d(w, N, ks[ki], inits[i], 5, max_iter, c, a, &sse, NULL), 0);
                    ck_assert_msg(opt <= sse, "data %d k %d init %d: optimal %.17g > Lloyd %.17g",
                                  kind, ks[ki], i, opt, sse);
                }
            }
        }
    }
    free(w);
    free(a);
}
END_TEST

#if !defined(__SANITIZE_ADDRESS__)
/* In a child process limited to `extra` bytes of address space beyond what it holds: Lloyd
 * (k-means++) and the optimum on w must give these codes, and write nothing when they fail. */
static int run_limited(const float *w, size_t n, size_t extra, int want_lloyd, int want_opt)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        long pages = 0;
        FILE *f = fopen("/proc/self/statm", "r");
        if (!f || fscanf(f, "%ld", &pages) != 1) {
            _exit(3);
        }
        fclose(f);
        struct rlimit lim;
        lim.rlim_cur = lim.rlim_max = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + extra;
        uint8_t *a = malloc(n);
        if (!a || setrlimit(RLIMIT_AS, &lim) != 0) {
            _exit(3);
        }
        float c[16], keep[16] = {0};
        double sse;
        mp_errctx_t err = {0};
        int ok = 1;
        for (int m = 0; m < 2; m++) {
            memset(a, 7, n);
            memset(c, 0, sizeof c);
            sse = -1.0;
            int rc = m == 0 ? mp__kmeans_1d(w, n, 16, MP_KM_INIT_KMEANSPP, 1, 10, c, a, &sse, &err)
                            : mp__kmeans_1d_optimal(w, n, 16, c, a, &sse, &err);
            ok &= rc == (m == 0 ? want_lloyd : want_opt);
            if (rc == MP_ENOMEM) {
                ok &= memcmp(c, keep, sizeof c) == 0 && a[0] == 7 && a[n - 1] == 7 && sse == -1.0 &&
                      strstr(err.msg, "no memory") != NULL;
            }
        }
        _exit(ok ? 0 : 1);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
#endif

/* Allocation failures give MP_ENOMEM with nothing written: 4M weights under an address-space
 * limit of 8 MiB more (the sort alone needs 32 MiB), then of 256 MiB more (enough for Lloyd's
 * 150 MiB, not for the optimum's 400). Sanitizers reserve far more address space than any such
 * limit allows, so their builds skip this case. */
START_TEST(test_out_of_memory)
{
#if defined(__SANITIZE_ADDRESS__)
    fprintf(stderr, "check_share: out-of-memory case skipped under AddressSanitizer\n");
#else
    enum { N = 1 << 22 };
    float *w = malloc(N * sizeof *w);
    ck_assert_ptr_nonnull(w);
    fill(w, N, D_NORMAL);
    ck_assert_int_eq(run_limited(w, N, (size_t)8 << 20, MP_ENOMEM, MP_ENOMEM), 0);
    ck_assert_int_eq(run_limited(w, N, (size_t)256 << 20, 0, MP_ENOMEM), 0);
    free(w);
#endif
}
END_TEST

static Suite *share_suite(void)
{
    Suite *s = suite_create("share");
    TCase *tc = tcase_create("kernels");
    tcase_add_checked_fixture(tc, kernels_setup, NULL);
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_assign_ref_is_count);
    tcase_add_test(tc, test_assign_variants);
    tcase_add_test(tc, test_dp_argmin);
    tcase_add_test(tc, test_dp_rows);
    suite_add_tcase(s, tc);

    tc = tcase_create("lloyd");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_lloyd_small_exact);
    tcase_add_test(tc, test_lloyd_near_ties);
    tcase_add_test(tc, test_lloyd_random);
    tcase_add_test(tc, test_inits);
    tcase_add_test(tc, test_few_distinct);
    tcase_add_test(tc, test_refusals);
    tcase_add_test(tc, test_out_of_memory);
    suite_add_tcase(s, tc);

    tc = tcase_create("optimal");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_optimal_brute);
    tcase_add_test(tc, test_optimal_quadratic);
    tcase_add_test(tc, test_optimal_large);
    tcase_add_test(tc, test_optimal_beats_lloyd);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(share_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
