/* check_prune.c — magnitude pruning hits its sparsity exactly and prunes the right entries.
 *
 * The reference here sorts (|w|, position) pairs and prunes the first k = llround(s * total):
 * the specification of methods_int.h written the slow, obvious way. mp__prune_magnitude must
 * give the same set on random data and on data full of ties (all equal, mostly ±0.0, five
 * distinct values), for one array and for several at once (one threshold over their
 * concatenation); pruned entries must be +0.0 and all others keep their bits. The selection
 * behind it is checked against qsort on its own, with quickselect and with the
 * median-of-medians fallback alone. Totals from 2^18 on take the sampled path (a band around
 * a sample quantile, then selection inside it); they are compared with the reference on
 * random data, on data full of ties, in global scope across arrays (empty ones among them), and
 * on data built so that the sample lies: the values at the positions the sampler reads (as
 * prune.c computes them) are far above or far below all others, so the cut falls outside the
 * band and the second pass must find it. Bad sparsities and non-finite weights are refused with
 * nothing written.
 *
 * Channel pruning: the exact count llround(s * rows) of rows removed, each removed row zeroed
 * to +0.0 and flagged, kept rows untouched, and by brute force every removed row's norm
 * (computed here in double) at most every kept row's, equal norms removed lower row first;
 * an example where L1 and L2 choose different rows; refusals that write nothing.
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

enum {
    D_RANDOM,
    D_EQUAL,
    D_ZEROS,
    D_FEW,
    D_SORTED,
    D_REVERSED,
    N_DATA,
    /* only for totals >= 2^18: the positions the sampler reads hold outliers */
    D_SAMPLED_BIG = N_DATA,
    D_SAMPLED_SMALL
};

/* The sampler of prune.c, copied: N_SAMPLES values, stratum s = [floor(s n / N),
 * floor((s + 1) n / N)) at offset mix64(s + 1) mod its width. If prune.c's sampler changes,
 * the D_SAMPLED_* data stop fooling it, but every check on them still holds. */
#define SAMPLER_N ((size_t)1 << 15)

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static void mark_sampled(float *x, size_t n, float scale)
{
    for (size_t s = 0; s < SAMPLER_N; s++) {
        size_t start = s * n / SAMPLER_N, end = (s + 1) * n / SAMPLER_N;
        x[start + (size_t)(mix64(s + 1) % (end - start))] = scale * (1.0f + fabsf(rng_weight()));
    }
}

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
        case D_REVERSED:
            x[i] = -(float)(n - i);
            break;
        default:
            x[i] = rng_weight();
            break;
        }
    }
    if (kind == D_SAMPLED_BIG || kind == D_SAMPLED_SMALL) {
        mark_sampled(x, n, kind == D_SAMPLED_BIG ? 1000.0f : 1e-9f);
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

/* Every data kind at every sparsity s[] over the arrays n[]: the reference's set, and so at
 * least k zeros. */
static void global_sweep(const size_t *n, size_t n_arrays, const double *s, size_t n_s)
{
    size_t total = mp__prune_scratch_elems(n, n_arrays);
    for (int kind = 0; kind < N_DATA; kind++) {
        for (size_t j = 0; j < n_s; j++) {
            size_t k = (size_t)llround(s[j] * (double)total);
            ck_assert_uint_ge(prune_and_compare(n, n_arrays, s[j], kind), k);
        }
    }
}

START_TEST(test_global_matches_concatenation)
{
    const size_t n[5] = {1000, 0, 37, 4096, 1};
    global_sweep(n, 5, sparsities, N_SPARSITIES);
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

/* ---- the sampled path (totals >= 2^18) ----------------------------------------------------- */

static const double big_sparsities[] = {0.9, 0.5, 0.1, 0.999, 0.001, 1.0 / 3.0};
#define N_BIG_SPARSITIES (sizeof(big_sparsities) / sizeof(big_sparsities[0]))

/* _i: the data kind. Random data: exactly k zeros; ties: at least k, the reference's set. */
START_TEST(test_sampled_one_array)
{
    const size_t n = ((size_t)1 << 18) + 77;
    for (size_t j = 0; j < N_BIG_SPARSITIES; j++) {
        size_t k = (size_t)llround(big_sparsities[j] * (double)n);
        size_t zeros = prune_and_compare(&n, 1, big_sparsities[j], _i);
        if (_i == D_RANDOM || _i == D_SAMPLED_BIG || _i == D_SAMPLED_SMALL) {
            ck_assert_uint_eq(zeros, k); /* no zeros beforehand */
        } else {
            ck_assert_uint_ge(zeros, k);
        }
    }
}
END_TEST

/* Global scope over 3 + 2 empty arrays whose total passes 2^18: one sample across them all. */
START_TEST(test_sampled_global)
{
    const size_t n[5] = {100000, 0, 150001, 0, 70000};
    global_sweep(n, 5, big_sparsities, N_BIG_SPARSITIES);
}
END_TEST

/* A NaN far from any sampled position is still found, named, and nothing is written. */
START_TEST(test_sampled_nonfinite)
{
    const size_t n = (size_t)1 << 19;
    float *x = malloc(n * sizeof(float)), *orig = malloc(n * sizeof(float));
    float *scratch = malloc(n * sizeof(float));
    ck_assert(x && orig && scratch);
    fill(orig, n, D_RANDOM);
    orig[n - 5] = INFINITY;
    memcpy(x, orig, n * sizeof(float));
    mp_errctx_t err = {0};
    size_t z = 3;
    ck_assert_int_eq(mp__prune_magnitude(&x, &n, 1, 0.9, scratch, &z, &err), MP_EINVAL);
    ck_assert_str_eq(err.msg, "prune: array 0, element 524283 is infinite; only finite weights "
                              "can be pruned");
    ck_assert_uint_eq(z, 0);
    ck_assert_mem_eq(x, orig, n * sizeof(float));
    free(x);
    free(orig);
    free(scratch);
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

/* ---- channels (output rows) ---------------------------------------------------------------- */

static double norm_of(const float *x, size_t n, int norm)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) {
        s += norm == 1 ? fabs((double)x[i]) : (double)x[i] * (double)x[i];
    }
    return norm == 1 ? s : sqrt(s);
}

/* Prunes rows x cols of data kind by norm at sparsity s and checks everything against the
 * brute force; returns the rows removed. */
static size_t channels_and_compare(size_t rows, size_t cols, double s, int norm, int kind)
{
    size_t n = rows * cols;
    float *orig = malloc((n ? n : 1) * sizeof(float)), *w = malloc((n ? n : 1) * sizeof(float));
    uint8_t *removed = malloc(rows + 1);
    double *norms = malloc((rows + 1) * sizeof(double));
    ck_assert(orig && w && removed && norms);
    fill(orig, n, kind);
    memcpy(w, orig, n * sizeof(float));
    memset(removed, 0x77, rows + 1);
    size_t n_removed = 12345, k = (size_t)llround(s * (double)rows), count = 0;
    mp_errctx_t err = {0};
    ck_assert_int_eq(mp__prune_channels("w", w, rows, cols, s, norm, removed, &n_removed, &err),
                     MP_OK);
    ck_assert_uint_eq(n_removed, k);
    ck_assert_uint_eq(removed[rows], 0x77); /* nothing past rows */
    for (size_t r = 0; r < rows; r++) {
        ck_assert_uint_le(removed[r], 1);
        count += removed[r];
        norms[r] = norm_of(orig + r * cols, cols, norm);
        for (size_t c = 0; c < cols; c++) {
            uint32_t want = removed[r] ? 0 : bits(orig[r * cols + c]);
            ck_assert_uint_eq(bits(w[r * cols + c]), want);
        }
    }
    ck_assert_uint_eq(count, k);
    /* every removed row is below every kept one, or equal to it and higher up */
    for (size_t r = 0; r < rows; r++) {
        for (size_t q = 0; removed[r] && q < rows; q++) {
            if (!removed[q]) {
                ck_assert_msg(norms[r] < norms[q] || (norms[r] == norms[q] && r < q),
                              "L%d %zux%zu s=%g: row %zu (norm %a) removed, row %zu (%a) kept",
                              norm, rows, cols, s, r, norms[r], q, norms[q]);
            }
        }
    }
    free(orig);
    free(w);
    free(removed);
    free(norms);
    return count;
}

START_TEST(test_channels_exact_count)
{
    const size_t rows[] = {1, 2, 3, 7, 16, 33, 100, 257};
    const size_t cols[] = {1, 3, 64};
    size_t total = 0, expect = 0;
    for (int norm = 1; norm <= 2; norm++) {
        for (int kind = 0; kind < N_DATA; kind++) {
            for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++) {
                for (size_t c = 0; c < sizeof(cols) / sizeof(cols[0]); c++) {
                    for (size_t j = 0; j < N_SPARSITIES; j++) {
                        total += channels_and_compare(rows[r], cols[c], sparsities[j], norm, kind);
                        expect += (size_t)llround(sparsities[j] * (double)rows[r]);
                    }
                }
            }
        }
    }
    ck_assert_uint_eq(total, expect);
    /* figures: 0.9 of 100 rows is 90, 0.5 of 3 rounds half away to 2, 0.25 of 7 to 2 */
    ck_assert_uint_eq(channels_and_compare(100, 5, 0.9, 2, D_RANDOM), 90);
    ck_assert_uint_eq(channels_and_compare(3, 5, 0.5, 1, D_RANDOM), 2);
    ck_assert_uint_eq(channels_and_compare(7, 5, 0.25, 1, D_RANDOM), 2);
}
END_TEST

/* Row 0 = (1, 1, 1, 1): L1 4, L2 2. Row 1 = (3, 0, 0, 0): L1 3, L2 3. Row 2 is large. */
START_TEST(test_channels_l1_vs_l2)
{
    const float orig[12] = {1, -1, 1, -1, 0, -3, 0, 0, 5, 5, 5, 5};
    float w[12];
    uint8_t removed[3];
    size_t k;
    memcpy(w, orig, sizeof w);
    ck_assert_int_eq(mp__prune_channels("fc", w, 3, 4, 1.0 / 3.0, 1, removed, &k, NULL), MP_OK);
    ck_assert_uint_eq(k, 1);
    ck_assert_mem_eq(removed, ((uint8_t[3]){0, 1, 0}), 3); /* L1 drops the single 3 */
    ck_assert_mem_eq(w, ((float[12]){1, -1, 1, -1, 0, 0, 0, 0, 5, 5, 5, 5}), sizeof w);
    memcpy(w, orig, sizeof w);
    ck_assert_int_eq(mp__prune_channels("fc", w, 3, 4, 1.0 / 3.0, 2, removed, &k, NULL), MP_OK);
    ck_assert_mem_eq(removed, ((uint8_t[3]){1, 0, 0}), 3); /* L2 drops the four ones */
    ck_assert_mem_eq(w, ((float[12]){0, 0, 0, 0, 0, -3, 0, 0, 5, 5, 5, 5}), sizeof w);
}
END_TEST

START_TEST(test_channels_ties)
{
    /* four rows of equal norm (signs and order differ): half of them are rows 0 and 1 */
    float w[8] = {1, -2, -2, 1, 2, 1, -1, -2};
    uint8_t removed[4];
    size_t k;
    for (int norm = 1; norm <= 2; norm++) {
        float x[8];
        memcpy(x, w, sizeof x);
        ck_assert_int_eq(mp__prune_channels("t", x, 4, 2, 0.5, norm, removed, &k, NULL), MP_OK);
        ck_assert_mem_eq(removed, ((uint8_t[4]){1, 1, 0, 0}), 4);
        ck_assert_mem_eq(x, ((float[8]){0, 0, 0, 0, 2, 1, -1, -2}), sizeof x);
    }
    /* rows 1 and 3 share the smallest norm: one removal takes row 1, two take both */
    float v[5] = {4, 1, 3, -1, 2};
    uint8_t r5[5];
    ck_assert_int_eq(mp__prune_channels("t", v, 5, 1, 0.2, 1, r5, &k, NULL), MP_OK);
    ck_assert_mem_eq(r5, ((uint8_t[5]){0, 1, 0, 0, 0}), 5);
    ck_assert_mem_eq(v, ((float[5]){4, 0, 3, -1, 2}), sizeof v);
    v[1] = 1;
    ck_assert_int_eq(mp__prune_channels("t", v, 5, 1, 0.4, 2, r5, &k, NULL), MP_OK);
    ck_assert_mem_eq(r5, ((uint8_t[5]){0, 1, 0, 1, 0}), 5);
    /* zero rows (either sign of zero) have norm 0 and go first, the lower first */
    float z[6] = {1, 1, -0.0f, 0, 0, -0.0f};
    uint8_t r3[3];
    ck_assert_int_eq(mp__prune_channels("t", z, 3, 2, 0.34, 2, r3, &k, NULL), MP_OK);
    ck_assert_uint_eq(k, 1);
    ck_assert_mem_eq(r3, ((uint8_t[3]){0, 1, 0}), 3);
    ck_assert_uint_eq(bits(z[2]), 0); /* the removed row's -0.0 is now +0.0 */
    ck_assert_uint_eq(bits(z[5]), 0x80000000u);
}
END_TEST

START_TEST(test_channels_refusals)
{
    float w[6] = {1, 2, 3, 4, 5, 6}, orig[6];
    uint8_t removed[3] = {7, 7, 7};
    size_t k = 9;
    memcpy(orig, w, sizeof w);
    mp_errctx_t err = {0};
    const double bad_s[] = {-0.1, 1.5, NAN};
    for (size_t i = 0; i < 3; i++) {
        ck_assert_int_eq(mp__prune_channels("c", w, 3, 2, bad_s[i], 1, removed, &k, &err),
                         MP_EINVAL);
        ck_assert_ptr_nonnull(strstr(err.msg, "tensor 'c': channel sparsity"));
        ck_assert_uint_eq(k, 0);
    }
    ck_assert_int_eq(mp__prune_channels("c", w, 3, 2, 0.5, 3, removed, &k, &err), MP_EINVAL);
    ck_assert_str_eq(err.msg, "tensor 'c': channel norm must be 1 (L1) or 2 (L2), got 3");
    ck_assert_int_eq(mp__prune_channels("c", w, 3, 2, 0.5, 0, removed, &k, &err), MP_EINVAL);
    w[3] = NAN;
    ck_assert_int_eq(mp__prune_channels("conv1.weight", w, 3, 2, 0.5, 2, removed, &k, &err),
                     MP_EINVAL);
    ck_assert_str_eq(err.msg, "tensor 'conv1.weight': element 3 (row 1, column 1) is NaN; only "
                              "finite weights can be pruned");
    w[3] = orig[3];
    ck_assert_mem_eq(w, orig, sizeof w); /* nothing written */
    ck_assert_mem_eq(removed, ((uint8_t[3]){7, 7, 7}), 3);
    /* sparsity 0 removes nothing, 1 removes every row; no rows at all is fine */
    ck_assert_int_eq(mp__prune_channels("c", w, 3, 2, 0.0, 1, removed, &k, &err), MP_OK);
    ck_assert_uint_eq(k, 0);
    ck_assert_mem_eq(removed, ((uint8_t[3]){0, 0, 0}), 3);
    ck_assert_mem_eq(w, orig, sizeof w);
    ck_assert_int_eq(mp__prune_channels("c", w, 3, 2, 1.0, 2, removed, &k, &err), MP_OK);
    ck_assert_uint_eq(k, 3);
    ck_assert_mem_eq(w, ((float[6]){0}), sizeof w);
    ck_assert_int_eq(mp__prune_channels("c", NULL, 0, 2, 0.5, 2, NULL, &k, &err), MP_OK);
    ck_assert_uint_eq(k, 0);
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

    tc = tcase_create("sampled");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_sampled_one_array, 0, D_SAMPLED_SMALL + 1);
    tcase_add_test(tc, test_sampled_global);
    tcase_add_test(tc, test_sampled_nonfinite);
    suite_add_tcase(s, tc);

    tc = tcase_create("refusal");
    tcase_add_test(tc, test_bad_sparsity);
    tcase_add_test(tc, test_nonfinite_weight);
    tcase_add_test(tc, test_empty_and_scratch_size);
    suite_add_tcase(s, tc);

    tc = tcase_create("channels");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_channels_exact_count);
    tcase_add_test(tc, test_channels_l1_vs_l2);
    tcase_add_test(tc, test_channels_ties);
    tcase_add_test(tc, test_channels_refusals);
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
