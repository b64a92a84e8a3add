/* check_nm.c — N:M pruning and the nm kernel family: the specification in figures, every
 * variant against _ref bit for bit, and mp__prune_nm against a brute force.
 *
 * The _ref kernels are pinned first to hand-worked groups (ties to the lower index, equal
 * magnitudes of opposite sign, ±0.0 kept with their sign or cleared to +0.0, NaN never pruned)
 * and the band kernel to hand-counted figures. Then each SIMD table this CPU has is compared
 * with _ref on every group count whose length is below 1024 floats and a few large ones, at
 * start offsets 0, 1, 3 and 7 floats from a 64-byte boundary, on continuous values, random
 * finite bit patterns, adversarial ties (values drawn from ±0.0, ±1, ±2), groups of one equal
 * magnitude with random signs, and data with NaN and infinities: the arrays (and 64 guard
 * floats past the end) must be memcmp-equal. The band kernel is compared the same way on every
 * length 0..1023 under several bounds (count, below, non-finite count and band contents).
 * mp__prune_nm is checked on many row counts and lengths against a brute force that sorts each
 * group by (|w| descending, index ascending): with nonzero values exactly N survive per group,
 * they are the largest, they keep their bits, and the rest are +0.0. Refusals (columns not a
 * multiple of M, any N:M other than 2:4 and 4:8, non-finite weights) write nothing.
 *
 * A variant the CPU lacks is reported on stderr; the program exits 77 only when no SIMD
 * variant at all could be tested (after all other tests passed).
 */
#include "core/kernels/kernels_int.h"
#include "core/kernels/nm_int.h"
#include "core/methods_int.h"

#include <check.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SMALL 1024 /* lengths below this */
#define GUARD 64       /* floats past the end that must stay untouched */
#define MAX_N 100008   /* the largest length swept (a multiple of 8) */

static const size_t big_groups[] = {1031, 4099, 12501}; /* x4 and x8 floats, below MAX_N */
static const size_t big_lengths[] = {1031, 4099, 65537, 100003};
static const size_t offsets[] = {0, 1, 3, 7};
#define N_OFFSETS (sizeof(offsets) / sizeof(offsets[0]))
#define N_BIG (sizeof(big_groups) / sizeof(big_groups[0]))

static const mp_kern_nm_table_t *ref_table;
static const mp_kern_nm_table_t *variants[2];
static int n_variants;
static const mp_kern_nm_table_t *all_tables[3];
static int n_all;

/* ---- data ---------------------------------------------------------------------------------- */

static uint64_t rng_state = 11;

static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static float bits_to_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint32_t float_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* Uniform in (-1, 1) without 0. */
static float rng_weight(void)
{
    float u = (float)((rng_next() >> 40) + 1) * 0x1p-24f;
    return (rng_next() & 1) ? u : -u;
}

enum { K_UNIFORM, K_BITS, K_TIES, K_EQUAL, K_NONFINITE, N_KINDS };
static const char *const kind_names[N_KINDS] = {"uniform", "bits", "ties", "equal", "nonfinite"};
#define N_FINITE_KINDS K_NONFINITE

static void fill(float *x, size_t n, int kind)
{
    static const float ties[6] = {0.0f, -0.0f, 1.0f, -1.0f, 2.0f, -2.0f};
    static const uint32_t nonfinite[4] = {0x7f800000u, 0xff800000u, 0x7fc00000u, 0xffc00001u};
    for (size_t i = 0; i < n; i++) {
        uint64_t r = rng_next();
        switch (kind) {
        case K_UNIFORM:
            x[i] = rng_weight();
            break;
        case K_BITS: { /* any finite float: exponent field 255 is redrawn */
            uint32_t u = (uint32_t)r;
            while (((u >> 23) & 0xff) == 0xff) {
                u = (uint32_t)rng_next();
            }
            x[i] = bits_to_float(u);
            break;
        }
        case K_TIES:
            x[i] = ties[r % 6];
            break;
        case K_EQUAL:
            x[i] = (r & 1) ? 0.75f : -0.75f;
            break;
        default: /* one in four non-finite, the rest ties */
            x[i] = (r & 3) ? ties[(r >> 2) % 6] : bits_to_float(nonfinite[(r >> 2) & 3]);
            break;
        }
    }
}

/* ---- the specification, in figures (every table, ref included) ----------------------------- */

/* Runs kernel on one group (placed after other groups, so SIMD variants take a vector path
 * too) and compares every bit with want. */
static void expect_group(const mp_kern_nm_table_t *t, int m, const float *in, const float *want)
{
    float x[8 * 9];
    for (int g = 0; g < 9; g++) {
        memcpy(x + g * m, in, (size_t)m * sizeof(float));
    }
    if (m == 4) {
        t->nm24_f32(x, 9);
    } else {
        t->nm48_f32(x, 9);
    }
    for (int g = 0; g < 9; g++) {
        for (int j = 0; j < m; j++) {
            float got = x[g * m + j];
            if (isnan(want[j]) ? !isnan(got) : float_bits(got) != float_bits(want[j])) {
                ck_abort_msg("%s %d-group %d, entry %d: %a, want %a", t->isa, m, g, j, (double)got,
                             (double)want[j]);
            }
        }
    }
}

START_TEST(test_spec_nm24)
{
    const mp_kern_nm_table_t *t = all_tables[_i];
    /* the two largest |w| survive, whatever their sign and place */
    expect_group(t, 4, (float[]){1.0f, -3.0f, 2.0f, 0.5f}, (float[]){0, -3.0f, 2.0f, 0});
    expect_group(t, 4, (float[]){0.1f, 0.2f, -0.3f, -0.4f}, (float[]){0, 0, -0.3f, -0.4f});
    /* equal magnitudes of opposite sign: the lower indices win */
    expect_group(t, 4, (float[]){1.0f, -1.0f, 1.0f, -1.0f}, (float[]){1.0f, -1.0f, 0, 0});
    expect_group(t, 4, (float[]){0.5f, -2.0f, 0.5f, 2.0f}, (float[]){0, -2.0f, 0, 2.0f});
    expect_group(t, 4, (float[]){3.0f, -1.0f, 1.0f, 0.0f}, (float[]){3.0f, -1.0f, 0, 0});
    /* zeros: -0.0 kept as -0.0 when it survives, +0.0 when pruned */
    expect_group(t, 4, (float[]){-0.0f, 0.0f, -0.0f, -0.0f}, (float[]){-0.0f, 0.0f, 0, 0});
    expect_group(t, 4, (float[]){0.0f, -0.0f, 5.0f, -0.0f}, (float[]){0.0f, 0, 5.0f, 0});
    /* denormals and the extremes are ordered like any value */
    expect_group(t, 4, (float[]){0x1p-149f, -FLT_MAX, 0x1p-148f, 1.0f},
                 (float[]){0, -FLT_MAX, 0, 1.0f});
    /* NaN is never pruned and beats nothing; inf is the largest magnitude */
    expect_group(t, 4, (float[]){NAN, 1.0f, 2.0f, 3.0f}, (float[]){NAN, 0, 2.0f, 3.0f});
    expect_group(t, 4, (float[]){1.0f, -INFINITY, 2.0f, 0.5f}, (float[]){0, -INFINITY, 2.0f, 0});
}
END_TEST

START_TEST(test_spec_nm48)
{
    const mp_kern_nm_table_t *t = all_tables[_i];
    expect_group(t, 8, (float[]){1, -8, 2, 7, -3, 6, 4, -5}, (float[]){0, -8, 0, 7, 0, 6, 0, -5});
    /* four equal maxima among eight: the first four */
    expect_group(t, 8, (float[]){1, 2, -2, 2, 0.5f, -2, 2, 2}, (float[]){0, 2, -2, 2, 0, -2, 0, 0});
    expect_group(t, 8, (float[]){-1, 1, -1, 1, -1, 1, -1, 1}, (float[]){-1, 1, -1, 1, 0, 0, 0, 0});
    expect_group(t, 8, (float[]){-0.0f, 0, 0, -0.0f, 3, -0.0f, 0, 0},
                 (float[]){-0.0f, 0, 0, 0, 3, 0, 0, 0});
    expect_group(t, 8, (float[]){NAN, 1, 2, 3, 4, 5, 6, 7}, (float[]){NAN, 0, 0, 0, 4, 5, 6, 7});
}
END_TEST

START_TEST(test_spec_band)
{
    const mp_kern_nm_table_t *t = all_tables[_i];
    float x[40], band[40];
    for (int i = 0; i < 40; i++) { /* |x| = 0, 0.25, ..., 4.75 twice, signs alternating */
        x[i] = (i & 1 ? -0.25f : 0.25f) * (float)(i % 20);
    }
    x[7] = NAN;
    x[33] = -INFINITY;
    size_t below = 99, bad = 99;
    /* [1, 2): 1, 1.25, 1.5, 1.75 from each half (1.75 is x[7] = NaN in the first) */
    ck_assert_uint_eq(t->band_abs_f32(x, 40, 1.0f, 2.0f, band, &below, &bad), 7);
    ck_assert_uint_eq(below, 8); /* 0 .. 0.75 twice */
    ck_assert_uint_eq(bad, 2);
    const float want[7] = {1.0f, 1.25f, 1.5f, 1.0f, 1.25f, 1.5f, 1.75f};
    ck_assert_mem_eq(band, want, sizeof want);
    /* lo = 0, hi = inf: every finite magnitude, -0.0 as +0.0 */
    x[0] = -0.0f;
    ck_assert_uint_eq(t->band_abs_f32(x, 40, 0.0f, INFINITY, band, &below, &bad), 38);
    ck_assert_uint_eq(below, 0);
    ck_assert_uint_eq(float_bits(band[0]), 0);
    ck_assert_float_eq(band[37], 4.75f);
    /* an empty band, and nothing at all */
    ck_assert_uint_eq(t->band_abs_f32(x, 40, 3.0f, 3.0f, band, &below, &bad), 0);
    ck_assert_uint_eq(below, 23); /* 0 .. 2.75 twice, less the NaN */
    ck_assert_uint_eq(t->band_abs_f32(x, 0, 0.0f, INFINITY, band, &below, &bad), 0);
    ck_assert_uint_eq(below + bad, 0);
}
END_TEST

/* ---- every variant against _ref ------------------------------------------------------------ */

static float *xbuf, *wref, *wvar, *bref, *bvar;

/* 64-byte aligned (so the offsets are what they say), the size rounded up as C11 requires. */
static void *alloc64(size_t bytes)
{
    return aligned_alloc(64, (bytes + 63) / 64 * 64);
}

static void setup(void)
{
    size_t bytes = (MAX_N + 64 + GUARD) * sizeof(float);
    xbuf = alloc64(bytes);
    wref = alloc64(bytes);
    wvar = alloc64(bytes);
    bref = alloc64(bytes);
    bvar = alloc64(bytes);
    ck_assert(xbuf && wref && wvar && bref && bvar);
    memset(xbuf, 0, bytes); /* the guard floats past n are copied and compared too */
    rng_state = 42;
}

static void teardown(void)
{
    free(xbuf);
    free(wref);
    free(wvar);
    free(bref);
    free(bvar);
}

static size_t first_diff(const void *a, const void *b, size_t n)
{
    const unsigned char *p = a, *q = b;
    size_t i = 0;
    while (i < n && p[i] == q[i]) {
        i++;
    }
    return i;
}

/* Prunes a copy of x (g groups of m) with ref and with v; 1 when the bytes agree. */
static size_t compare_nm(const mp_kern_nm_table_t *v, int m, const float *x, size_t g, size_t off,
                         int kind)
{
    size_t bytes = (g * (size_t)m + GUARD) * sizeof(float);
    float *a = wref + off, *b = wvar + off;
    memcpy(a, x, bytes);
    memcpy(b, x, bytes);
    if (m == 4) {
        ref_table->nm24_f32(a, g);
        v->nm24_f32(b, g);
    } else {
        ref_table->nm48_f32(a, g);
        v->nm48_f32(b, g);
    }
    size_t d = first_diff(a, b, bytes);
    if (d != bytes) {
        ck_abort_msg("%s nm%d differs from ref: data %s, %zu groups, offset %zu, first at float "
                     "%zu (%a, ref %a)",
                     v->isa, m, kind_names[kind], g, off, d / 4, (double)b[d / 4],
                     (double)a[d / 4]);
    }
    return 1;
}

/* _i = variant * 2 + (0: 2:4, 1: 4:8). */
START_TEST(test_nm_matches_ref)
{
    const mp_kern_nm_table_t *v = variants[_i / 2];
    const int m = _i % 2 ? 8 : 4;
    size_t calls = 0;
    for (int kind = 0; kind < N_KINDS; kind++) {
        for (size_t g = 0; g * (size_t)m < MAX_SMALL; g++) {
            for (size_t o = 0; o < N_OFFSETS; o++) {
                fill(xbuf + offsets[o], g * (size_t)m, kind);
                calls += compare_nm(v, m, xbuf + offsets[o], g, offsets[o], kind);
            }
        }
        for (size_t b = 0; b < N_BIG; b++) {
            fill(xbuf + 3, big_groups[b] * (size_t)m, kind);
            calls += compare_nm(v, m, xbuf + 3, big_groups[b], 3, kind);
        }
    }
    /* 5 kinds x (1024/m group counts x 4 offsets + 3 big ones) */
    ck_assert_uint_eq(calls, (size_t)N_KINDS * (MAX_SMALL / (size_t)m * N_OFFSETS + N_BIG));
}
END_TEST

#define N_BOUNDS 8
static size_t compare_band(const mp_kern_nm_table_t *v, const float *x, size_t n, size_t off,
                           int kind)
{
    float pick = n ? fabsf(x[rng_next() % n]) : 1.0f;
    float pick2 = n ? fabsf(x[rng_next() % n]) : 2.0f;
    const float lo[N_BOUNDS] = {0.0f, 0.5f, 1.0f, pick, fminf(pick, pick2), 0.0f, FLT_MAX, 2.0f};
    const float hi[N_BOUNDS] = {INFINITY,           1.5f,      1.0f,     INFINITY,
                                fmaxf(pick, pick2), 0x1p-149f, INFINITY, 1.0f};
    for (int k = 0; k < N_BOUNDS; k++) {
        size_t bytes = (n + GUARD) * sizeof(float);
        memset(bref, 0x5a, bytes);
        memset(bvar, 0x5a, bytes);
        size_t below_r = 1, bad_r = 1, below_v = 2, bad_v = 2;
        size_t cr = ref_table->band_abs_f32(x, n, lo[k], hi[k], bref, &below_r, &bad_r);
        size_t cv = v->band_abs_f32(x, n, lo[k], hi[k], bvar, &below_v, &bad_v);
        size_t d = first_diff(bref, bvar, cr * sizeof(float));
        /* past n nothing is written; in band[c..n) a variant may leave anything */
        size_t dg = first_diff(bref + n, bvar + n, GUARD * sizeof(float));
        if (cr != cv || below_r != below_v || bad_r != bad_v || d != cr * sizeof(float) ||
            dg != GUARD * sizeof(float)) {
            ck_abort_msg("%s band_abs_f32: data %s n=%zu offset %zu [%a, %a): count %zu (ref "
                         "%zu), below %zu (%zu), non-finite %zu (%zu), first different byte "
                         "%zu, guard byte %zu",
                         v->isa, kind_names[kind], n, off, (double)lo[k], (double)hi[k], cv, cr,
                         below_v, below_r, bad_v, bad_r, d, dg);
        }
    }
    return N_BOUNDS;
}

START_TEST(test_band_matches_ref)
{
    const mp_kern_nm_table_t *v = variants[_i];
    size_t calls = 0;
    for (int kind = 0; kind < N_KINDS; kind++) {
        for (size_t n = 0; n < MAX_SMALL; n++) {
            for (size_t o = 0; o < N_OFFSETS; o++) {
                fill(xbuf + offsets[o], n, kind);
                calls += compare_band(v, xbuf + offsets[o], n, offsets[o], kind);
            }
        }
        for (size_t b = 0; b < sizeof(big_lengths) / sizeof(big_lengths[0]); b++) {
            fill(xbuf + 3, big_lengths[b], kind);
            calls += compare_band(v, xbuf + 3, big_lengths[b], 3, kind);
        }
    }
    ck_assert_uint_eq(calls, (size_t)N_KINDS * (MAX_SMALL * N_OFFSETS + 4) * N_BOUNDS);
}
END_TEST

/* Past 2^22 elements per-lane counters are flushed; the counts must still be exact. */
START_TEST(test_band_past_block)
{
    const mp_kern_nm_table_t *v = all_tables[_i];
    size_t n = ((size_t)1 << 23) + 4093;
    float *x = malloc(n * sizeof(float)), *band = malloc(n * sizeof(float));
    ck_assert(x && band);
    for (size_t i = 0; i < n; i++) { /* thirds: 0.25, 2.0, and inf every 1000th */
        x[i] = i % 1000 == 999 ? INFINITY : i % 3 == 0 ? -0.25f : 2.0f;
    }
    size_t n_inf = n / 1000, below, bad;
    size_t n_quarter = 0;
    for (size_t i = 0; i < n; i += 3) {
        n_quarter += i % 1000 != 999;
    }
    ck_assert_uint_eq(v->band_abs_f32(x, n, 1.0f, 3.0f, band, &below, &bad), n - n_quarter - n_inf);
    ck_assert_uint_eq(below, n_quarter);
    ck_assert_uint_eq(bad, n_inf);
    ck_assert_float_eq(band[n - n_quarter - n_inf - 1], 2.0f);
    free(x);
    free(band);
}
END_TEST

/* ---- mp__prune_nm against a brute force ---------------------------------------------------- */

/* keep[j] = 1 for the n entries of the group that come first in (|w| descending, index
 * ascending) order: selection sort, the slow obvious way. */
static void brute_keep(const float *g, int n, int m, int *keep)
{
    int used[8] = {0};
    for (int j = 0; j < m; j++) {
        keep[j] = 0;
    }
    for (int s = 0; s < n; s++) {
        int best = -1;
        for (int j = 0; j < m; j++) {
            if (!used[j] && (best < 0 || fabsf(g[j]) > fabsf(g[best]))) {
                best = j; /* strict >: of equals the lowest index stays best */
            }
        }
        used[best] = keep[best] = 1;
    }
}

/* Prunes a rows x cols matrix of data kind to n:m and checks every entry against the brute
 * force; returns the number of groups checked. */
static size_t prune_and_check(size_t rows, size_t cols, int n, int m, int kind)
{
    size_t total = rows * cols;
    float *orig = malloc((total ? total : 1) * sizeof(float));
    float *w = malloc((total ? total : 1) * sizeof(float));
    ck_assert(orig && w);
    fill(orig, total, kind);
    memcpy(w, orig, total * sizeof(float));
    mp_errctx_t err = {0};
    ck_assert_int_eq(mp__prune_nm("t", w, rows, cols, n, m, &err), MP_OK);
    size_t groups = 0;
    for (size_t g0 = 0; g0 < total; g0 += (size_t)m, groups++) {
        int keep[8], nonzero = 0;
        brute_keep(orig + g0, n, m, keep);
        for (int j = 0; j < m; j++) {
            uint32_t got = float_bits(w[g0 + (size_t)j]);
            uint32_t want = keep[j] ? float_bits(orig[g0 + (size_t)j]) : 0;
            if (got != want) {
                ck_abort_msg("%d:%d data %s %zux%zu: row %zu column %zu is %a, want %a", n, m,
                             kind_names[kind], rows, cols, (g0 + (size_t)j) / cols,
                             (g0 + (size_t)j) % cols, (double)w[g0 + (size_t)j],
                             (double)bits_to_float(want));
            }
            nonzero += w[g0 + (size_t)j] != 0.0f;
        }
        if (kind == K_UNIFORM || kind == K_EQUAL) { /* no zeros in the input */
            ck_assert_int_eq(nonzero, n);
        }
    }
    free(orig);
    free(w);
    return groups;
}

static const size_t rows_list[] = {1, 2, 3, 7, 16, 33, 64};
static const size_t col_groups[] = {1, 2, 3, 5, 16, 33, 128};

/* _i = 0: 2:4, 1: 4:8. */
START_TEST(test_prune_nm_brute_force)
{
    const int n = _i ? 4 : 2, m = _i ? 8 : 4;
    size_t groups = 0, expect = 0;
    for (int kind = 0; kind < N_FINITE_KINDS; kind++) {
        for (size_t r = 0; r < sizeof(rows_list) / sizeof(rows_list[0]); r++) {
            for (size_t c = 0; c < sizeof(col_groups) / sizeof(col_groups[0]); c++) {
                groups += prune_and_check(rows_list[r], col_groups[c] * (size_t)m, n, m, kind);
                expect += rows_list[r] * col_groups[c];
            }
        }
    }
    ck_assert_uint_eq(groups, expect);
    /* 4 kinds x (1+2+3+7+16+33+64 rows) x (1+2+3+5+16+33+128 groups a row) */
    ck_assert_uint_eq(groups, 4u * 126u * 188u);
}
END_TEST

/* A whole layer: 2:4 keeps exactly half of a 256 x 1024 matrix of nonzero weights. */
START_TEST(test_prune_nm_half)
{
    const size_t rows = 256, cols = 1024;
    float *w = malloc(rows * cols * sizeof(float));
    ck_assert_ptr_nonnull(w);
    fill(w, rows * cols, K_UNIFORM);
    double kept_sum = 0.0, all_sum = 0.0;
    for (size_t i = 0; i < rows * cols; i++) {
        all_sum += fabsf(w[i]);
    }
    ck_assert_int_eq(mp__prune_nm("fc.weight", w, rows, cols, 2, 4, NULL), MP_OK);
    size_t nonzero = 0;
    for (size_t i = 0; i < rows * cols; i++) {
        nonzero += w[i] != 0.0f;
        kept_sum += fabsf(w[i]);
    }
    ck_assert_uint_eq(nonzero, rows * cols / 2);
    /* the larger two of four uniform |w| average 3/5 and 4/5, of a total of 4 x 1/2: 0.7 */
    ck_assert_double_gt(kept_sum / all_sum, 0.695);
    ck_assert_double_lt(kept_sum / all_sum, 0.705);
    free(w);
}
END_TEST

START_TEST(test_prune_nm_refusals)
{
    float w[16], orig[16];
    for (int i = 0; i < 16; i++) {
        orig[i] = w[i] = (float)(i + 1);
    }
    mp_errctx_t err = {0};
    /* columns not a multiple of m, named with the tensor */
    ck_assert_int_eq(mp__prune_nm("fc1.weight", w, 2, 6, 2, 4, &err), MP_EINVAL);
    ck_assert_str_eq(err.msg, "tensor 'fc1.weight': 6 input columns are not a multiple of 4 for "
                              "2:4 sparsity");
    ck_assert_int_eq(mp__prune_nm("fc1.weight", w, 1, 12, 4, 8, &err), MP_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "12 input columns are not a multiple of 8"));
    /* only 2:4 and 4:8 */
    const int bad[][2] = {{1, 4}, {3, 4}, {2, 8}, {4, 4}, {0, 4}, {2, 2}, {8, 16}, {-2, 4}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_int_eq(mp__prune_nm("conv", w, 2, 8, bad[i][0], bad[i][1], &err), MP_EINVAL);
        ck_assert_ptr_nonnull(strstr(err.msg, "must be 2:4 or 4:8"));
    }
    /* a NaN anywhere: refused, named by row and column */
    w[13] = NAN;
    ck_assert_int_eq(mp__prune_nm("fc2.weight", w, 2, 8, 2, 4, &err), MP_EINVAL);
    ck_assert_str_eq(err.msg, "tensor 'fc2.weight': element 13 (row 1, column 5) is NaN; only "
                              "finite weights can be pruned");
    w[13] = -INFINITY;
    ck_assert_int_eq(mp__prune_nm("fc2.weight", w, 2, 8, 4, 8, &err), MP_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "is infinite"));
    w[13] = orig[13];
    ck_assert_mem_eq(w, orig, sizeof w); /* nothing written by any refusal */
    /* empty matrices are fine */
    ck_assert_int_eq(mp__prune_nm("e", NULL, 0, 8, 4, 8, &err), MP_OK);
    ck_assert_int_eq(mp__prune_nm("e", NULL, 5, 0, 2, 4, &err), MP_OK);
}
END_TEST

/* ---- tables and dispatch ------------------------------------------------------------------- */

START_TEST(test_tables)
{
    const mp_kern_nm_table_t *r = mp__kern_nm_for("ref");
    ck_assert_ptr_nonnull(r);
    ck_assert(r->nm24_f32 == mp_kern_nm24_f32_ref && r->nm48_f32 == mp_kern_nm48_f32_ref &&
              r->band_abs_f32 == mp_kern_band_abs_f32_ref);
    ck_assert_ptr_null(mp__kern_nm_for("neon"));
    ck_assert_ptr_null(mp__kern_nm_for("AVX2"));
    ck_assert_ptr_null(mp__kern_nm_for(NULL));
    const char *simd[] = {"avx2", "avx512"};
    for (int i = 0; i < 2; i++) {
        const mp_kern_nm_table_t *t = mp__kern_nm_for(simd[i]);
        ck_assert_int_eq(t != NULL, mp__kern_for(simd[i]) != NULL);
        if (t) {
            ck_assert_str_eq(t->isa, simd[i]);
        }
    }
    /* the family runs with the ISA the core chose */
    ck_assert_str_eq(mp__kern_nm()->isa, mp_kern_isa());
}
END_TEST

static Suite *nm_suite(void)
{
    Suite *s = suite_create("nm");

    TCase *tc = tcase_create("spec");
    tcase_add_loop_test(tc, test_spec_nm24, 0, n_all);
    tcase_add_loop_test(tc, test_spec_nm48, 0, n_all);
    tcase_add_loop_test(tc, test_spec_band, 0, n_all);
    suite_add_tcase(s, tc);

    tc = tcase_create("variants");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, test_nm_matches_ref, 0, n_variants * 2);
    tcase_add_loop_test(tc, test_band_matches_ref, 0, n_variants);
    tcase_add_loop_test(tc, test_band_past_block, 0, n_all);
    suite_add_tcase(s, tc);

    tc = tcase_create("prune_nm");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_prune_nm_brute_force, 0, 2);
    tcase_add_test(tc, test_prune_nm_half);
    tcase_add_test(tc, test_prune_nm_refusals);
    suite_add_tcase(s, tc);

    tc = tcase_create("tables");
    tcase_add_test(tc, test_tables);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    ref_table = mp__kern_nm_for("ref");
    all_tables[n_all++] = ref_table;
    const char *simd[] = {"avx2", "avx512"};
    for (int i = 0; i < 2; i++) {
        const mp_kern_nm_table_t *t = mp__kern_nm_for(simd[i]);
        if (t) {
            variants[n_variants++] = t;
            all_tables[n_all++] = t;
        } else {
            fprintf(stderr,
                    "check_nm: *** the %s nm kernels are NOT TESTED: this CPU lacks them ***\n",
                    simd[i]);
        }
    }
    SRunner *sr = srunner_create(nm_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    if (failed) {
        return EXIT_FAILURE;
    }
    if (n_variants == 0) {
        fprintf(stderr, "check_nm: no SIMD variant could be tested: SKIP\n");
        return 77;
    }
    return EXIT_SUCCESS;
}
