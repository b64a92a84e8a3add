/* check_prune.c — magnitude pruning hits its sparsity exactly and prunes the right entries.
 *
 * The reference here sorts (|w|, position) pairs and prunes the first k = llround(s * total):
 * the specification of methods_int.h written the slow, obvious way. mp__prune_magnitude must
 * give the same set on random data and on data full of ties (all equal, mostly ±0.0, five
 * distinct values), for one array and for several at once (one threshold over their
 * concatenation); pruned entries must be +0.0 and all others keep their bits. The selection
 * behind it is checked against qsort on its own, with quickselect and with the
 * median-of-medians fallback alone. Bad sparsities and non-finite weights are refused with
 * nothing written.
 */
#include "core/methods_int.h"

#include <check.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state = 7;

static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* Uniform in (-1, 1) without 0: random data never starts out with zeros. */
static float rng_weight(void)
{
    float u = (float)((rng_next() >> 40) + 1) * 0x1p-24f;
    return (rng_next() & 1) ? u : -u;
}

enum { D_RANDOM, D_EQUAL, D_ZEROS, D_FEW, D_SORTED, D_REVERSED, N_DATA };

static void fill(float *x, size_t n, int kind)
{
    static const float few[5] = {-2.0f, -0.5f, 0.5f, 1.0f, 2.0f};
    for (size_t i = 0; i < n; i++) {
        switch (kind) {
        case D_RANDOM:
            x[i] = rng_weight();
            break;
        case D_EQUAL:
            x[i] = (i & 1) ? 0.75f : -0.75f;
            break;
        case D_ZEROS: /* 70% zeros of either sign */
            x[i] = rng_next() % 10 < 7 ? ((i & 1) ? -0.0f : 0.0f) : rng_weight();
            break;
        case D_FEW:
            x[i] = few[rng_next() % 5];
            break;
        case D_SORTED:
            x[i] = (float)i;
            break;
        default:
            x[i] = -(float)(n - i);
            break;
        }
    }
}

/* ---- the reference --------------------------------------------------------------------- */

typedef struct {
    float mag;
    size_t pos;
} entry_t;

static int entry_cmp(const void *pa, const void *pb)
{
    const entry_t *a = pa, *b = pb;
    if (a->mag != b->mag) {
        return a->mag < b->mag ? -1 : 1;
    }
    return a->pos < b->pos ? -1 : a->pos > b->pos;
}

/* pruned[i] = 1 for the k entries of x (the concatenation) the specification prunes. */
static void reference_prune(const float *x, size_t total, size_t k, unsigned char *pruned)
{
    entry_t *e = malloc((total ? total : 1) * sizeof *e);
    ck_assert_ptr_nonnull(e);
    for (size_t i = 0; i < total; i++) {
        e[i].mag = fabsf(x[i]);
        e[i].pos = i;
    }
    qsort(e, total, sizeof *e, entry_cmp);
    memset(pruned, 0, total);
    for (size_t i = 0; i < k; i++) {
        pruned[e[i].pos] = 1;
    }
    free(e);
}

static uint32_t bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* Prunes the arrays of sizes n[] (filled with kind, consecutive in one buffer) at sparsity s
 * and checks every entry against the reference; returns the number of zeros afterwards. */
static size_t prune_and_compare(const size_t *n, size_t n_arrays, double s, int kind)
{
    size_t total = mp__prune_scratch_elems(n, n_arrays);
    size_t alloc = total ? total : 1;
    float *orig = malloc(alloc * sizeof(float)), *x = malloc(alloc * sizeof(float));
    float *scratch = malloc(alloc * sizeof(float));
    unsigned char *pruned = malloc(alloc);
    float *arrays[8];
    ck_assert(n_arrays <= 8 && orig && x && scratch && pruned);

    fill(orig, total, kind);
    memcpy(x, orig, total * sizeof(float));
    for (size_t a = 0, off = 0; a < n_arrays; off += n[a], a++) {
        arrays[a] = x + off;
    }
    size_t k = (size_t)llround(s * (double)total), n_zeroed = 12345;
    mp_errctx_t err = {0};
    ck_assert_int_eq(mp__prune_magnitude(arrays, n, n_arrays, s, scratch, &n_zeroed, &err), 0);
    ck_assert_uint_eq(n_zeroed, k);

    reference_prune(orig, total, k, pruned);
    size_t zeros = 0;
    for (size_t i = 0; i < total; i++) {
        if (bits(x[i]) != (pruned[i] ? 0 : bits(orig[i]))) {
            ck_abort_msg("data %d, n=%zu, s=%g: entry %zu (%a) is %a, the reference %s it", kind,
                         total, s, i, (double)orig[i], (double)x[i],
                         pruned[i] ? "prunes" : "keeps");
        }
        zeros += x[i] == 0.0f;
    }
    free(orig);
    free(x);
    free(scratch);
    free(pruned);
    return zeros;
}

static const double sparsities[] = {0.0, 1.0, 0.5, 0.9, 0.999, 0.1, 1.0 / 3.0, 0.25};
#define N_SPARSITIES (sizeof(sparsities) / sizeof(sparsities[0]))
static const size_t sizes[] = {1, 2, 3, 7, 16, 17, 100, 1000, 4097, 100003};
#define N_SIZES (sizeof(sizes) / sizeof(sizes[0]))

/* ---- exact sparsity, one array ------------------------------------------------------------- */

START_TEST(test_exact_sparsity_random)
{
    for (size_t i = 0; i < N_SIZES; i++) {
        for (size_t j = 0; j < N_SPARSITIES; j++) {
            size_t k = (size_t)llround(sparsities[j] * (double)sizes[i]);
            /* random weights are never 0 beforehand, so the zeros are exactly the k pruned */
            ck_assert_uint_eq(prune_and_compare(&sizes[i], 1, sparsities[j], D_RANDOM), k);
        }
    }
}
END_TEST

START_TEST(test_exact_figures)
{
    /* 0.9 of 1000 is 900, 0.999 of 1000 is 999, 0.5 of 3 rounds half away to 2 */
    size_t n1000 = 1000, n3 = 3;
    ck_assert_uint_eq(prune_and_compare(&n1000, 1, 0.9, D_RANDOM), 900);
    ck_assert_uint_eq(prune_and_compare(&n1000, 1, 0.999, D_RANDOM), 999);
    ck_assert_uint_eq(prune_and_compare(&n3, 1, 0.5, D_RANDOM), 2);

    /* the earlier of equal magnitudes goes first: {3, -1, 2, 1, -1} at 0.4 -> k = 2 */
    float w[5] = {3.0f, -1.0f, 2.0f, 1.0f, -1.0f}, scratch[5];
    float *arr = w;
    size_t n = 5, z;
    ck_assert_int_eq(mp__prune_magnitude(&arr, &n, 1, 0.4, scratch, &z, NULL), 0);
    ck_assert_uint_eq(z, 2);
    const float want[5] = {3.0f, 0.0f, 2.0f, 0.0f, -1.0f};
    ck_assert_mem_eq(w, want, sizeof w);
}
END_TEST

/* Ties everywhere: the zeros are max(k, zeros before) and the set is the reference's. */
START_TEST(test_ties)
{
    for (int kind = D_EQUAL; kind < N_DATA; kind++) {
        for (size_t i = 0; i < N_SIZES; i++) {
            for (size_t j = 0; j < N_SPARSITIES; j++) {
                size_t n = sizes[i];
                size_t k = (size_t)llround(sparsities[j] * (double)n);
                rng_state = 1000 + i; /* the same data prune_and_compare will draw */
                float *x = malloc(n * sizeof(float));
                ck_assert_ptr_nonnull(x);
                fill(x, n, kind);
                size_t zeros_before = 0;
                for (size_t e = 0; e < n; e++) {
                    zeros_before += x[e] == 0.0f;
                }
                free(x);
                rng_state = 1000 + i;
                size_t zeros = prune_and_compare(&n, 1, sparsities[j], kind);
                ck_assert_uint_eq(zeros, k > zeros_before ? k : zeros_before);
            }
        }
    }
}
END_TEST

/* ---- global scope ------------------------------------------------------------------------ */

START_TEST(test_global_matches_concatenation)
{
    const size_t n[5] = {1000, 0, 37, 4096, 1};
    for (int kind = 0; kind < N_DATA; kind++) {
        for (size_t j = 0; j < N_SPARSITIES; j++) {
            size_t k = (size_t)llround(sparsities[j] * 5134.0);
            size_t zeros = prune_and_compare(n, 5, sparsities[j], kind);
            ck_assert_uint_ge(zeros, k);
        }
    }
}
END_TEST

/* One threshold for all: small weights in one layer, large in the other; half of all is
 * exactly the small layer, whatever each layer alone would have lost. */
START_TEST(test_global_one_threshold)
{
    float a[100], b[300], scratch[400];
    for (int i = 0; i < 100; i++) {
        a[i] = 0.001f * (float)(i + 1);
    }
    for (int i = 0; i < 300; i++) {
        b[i] = (i % 2 ? -1.0f : 1.0f) * (float)(i + 1);
    }
    float *w[2] = {a, b};
    size_t n[2] = {100, 300}, z;
    ck_assert_int_eq(mp__prune_magnitude(w, n, 2, 0.25, scratch, &z, NULL), 0);
    ck_assert_uint_eq(z, 100);
    for (int i = 0; i < 100; i++) {
        ck_assert_float_eq(a[i], 0.0f);
    }
    for (int i = 0; i < 300; i++) {
        ck_assert_float_eq(fabsf(b[i]), (float)(i + 1));
    }
}
END_TEST

/* ---- refusals ------------------------------------------------------------------------------ */

START_TEST(test_bad_sparsity)
{
    const double bad[] = {-0.01, 1.0000001, NAN, INFINITY, -INFINITY};
    float w[4] = {1, 2, 3, 4}, scratch[4];
    float *arr = w;
    size_t n = 4;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        mp_errctx_t err = {0};
        size_t z = 99;
        ck_assert_int_eq(mp__prune_magnitude(&arr, &n, 1, bad[i], scratch, &z, &err), MP_EINVAL);
        ck_assert_int_eq(err.code, MP_EINVAL);
        ck_assert_ptr_nonnull(strstr(err.msg, "sparsity"));
        ck_assert_uint_eq(z, 0);
        ck_assert_mem_eq(w, ((float[4]){1, 2, 3, 4}), sizeof w);
    }
    ck_assert_int_eq(mp__prune_magnitude(&arr, &n, 1, 2.0, scratch, NULL, NULL), MP_EINVAL);
}
END_TEST

START_TEST(test_nonfinite_weight)
{
    float a[3] = {1, 2, 3}, b[40], scratch[43];
    for (int i = 0; i < 40; i++) {
        b[i] = (float)i;
    }
    b[37] = NAN;
    float *w[2] = {a, b};
    size_t n[2] = {3, 40};
    mp_errctx_t err = {0};
    ck_assert_int_eq(mp__prune_magnitude(w, n, 2, 0.5, scratch, NULL, &err), MP_EINVAL);
    ck_assert_str_eq(err.msg, "prune: array 1, element 37 is NaN; only finite weights can be "
                              "pruned");
    ck_assert_float_eq(a[0], 1.0f); /* nothing written */
    ck_assert_float_eq(b[1], 1.0f);
    b[37] = -INFINITY;
    ck_assert_int_eq(mp__prune_magnitude(w, n, 2, 0.5, scratch, NULL, &err), MP_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "element 37 is infinite"));
}
END_TEST

START_TEST(test_empty_and_scratch_size)
{
    const size_t n[3] = {3, 5, 0};
    ck_assert_uint_eq(mp__prune_scratch_elems(n, 3), 8);
    ck_assert_uint_eq(mp__prune_scratch_elems(n, 0), 0);
    const size_t huge[2] = {SIZE_MAX, 2};
    ck_assert_uint_eq(mp__prune_scratch_elems(huge, 2), SIZE_MAX);
    size_t z = 7, zero = 0;
    float *none = NULL;
    ck_assert_int_eq(mp__prune_magnitude(&none, &zero, 1, 0.5, NULL, &z, NULL), 0);
    ck_assert_uint_eq(z, 0);
    ck_assert_int_eq(mp__prune_magnitude(NULL, NULL, 0, 1.0, NULL, &z, NULL), 0);
    ck_assert_uint_eq(z, 0);
}
END_TEST

/* ---- selection ----------------------------------------------------------------------------- */

static int float_cmp(const void *pa, const void *pb)
{
    float a = *(const float *)pa, b = *(const float *)pb;
    if (a == b) { /* -0.0 before +0.0, so that sorted copies compare bytewise */
        return !signbit(a) - !signbit(b);
    }
    return a < b ? -1 : 1;
}

/* Every k of a few small sizes and sampled k of large ones, quickselect (64 rounds) and
 * median-of-medians alone (0 rounds); a must come back a permutation of itself. */
START_TEST(test_select_matches_sort)
{
    const size_t ns[] = {1, 2, 5, 16, 17, 18, 33, 100, 257, 10007};
    size_t checked = 0;
    for (int kind = 0; kind < N_DATA; kind++) {
        for (size_t i = 0; i < sizeof(ns) / sizeof(ns[0]); i++) {
            size_t n = ns[i];
            float *x = malloc(n * sizeof(float)), *a = malloc(n * sizeof(float));
            float *sorted = malloc(n * sizeof(float));
            ck_assert(x && a && sorted);
            fill(x, n, kind);
            memcpy(sorted, x, n * sizeof(float));
            qsort(sorted, n, sizeof(float), float_cmp);
            size_t step = n > 300 ? n / 97 : 1;
            for (size_t k = 0; k < n; k += step) {
                for (unsigned rounds = 0; rounds <= 64; rounds += 64) {
                    memcpy(a, x, n * sizeof(float));
                    float v = mp__select_kth_f32(a, n, k, rounds);
                    ck_assert_msg(v == sorted[k], "kind %d n=%zu k=%zu rounds=%u: %a, want %a",
                                  kind, n, k, rounds, (double)v, (double)sorted[k]);
                    qsort(a, n, sizeof(float), float_cmp);
                    ck_assert_mem_eq(a, sorted, n * sizeof(float));
                    checked++;
                }
            }
            free(x);
            free(a);
            free(sorted);
        }
    }
    /* per kind: 2 x (1+2+5+16+17+18+33+100+257 every k, + 98 k of 10007 in steps of 103) */
    ck_assert_uint_eq(checked, (size_t)N_DATA * 2 * (449 + 98));
}
END_TEST

static Suite *prune_suite(void)
{
    Suite *s = suite_create("prune");

    TCase *tc = tcase_create("exact");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_exact_sparsity_random);
    tcase_add_test(tc, test_exact_figures);
    tcase_add_test(tc, test_ties);
    suite_add_tcase(s, tc);

    tc = tcase_create("global");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_global_matches_concatenation);
    tcase_add_test(tc, test_global_one_threshold);
    suite_add_tcase(s, tc);

    tc = tcase_create("refusal");
    tcase_add_test(tc, test_bad_sparsity);
    tcase_add_test(tc, test_nonfinite_weight);
    tcase_add_test(tc, test_empty_and_scratch_size);
    suite_add_tcase(s, tc);

    tc = tcase_create("select");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_select_matches_sort);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(prune_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
