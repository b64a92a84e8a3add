/* check_kernels.c — every kernel variant this CPU has against the reference, bit for bit.
 *
 * The _ref kernels are the specification; first they are pinned to hand-computed figures
 * (ties to even, clamping, NaN rules, +0.0 from masking), then each SIMD table is compared with
 * them on every length 0..1023 and a few large odd ones, at start offsets 0, 1, 3 and 7 floats
 * from a 64-byte boundary, on uniform data, random finite bit patterns (denormals to FLT_MAX),
 * exact .5 ties after scaling, hand-picked specials (±0.0, denormals, ±FLT_MAX, values beyond
 * ±127 after scaling) and non-finite values. Integer and float outputs must be memcmp-equal,
 * including guard bytes past the end (nothing written beyond n), counts equal. Dispatch is
 * checked in forked children, each choosing its table afresh from MODELPRESS_ISA.
 *
 * A variant the CPU lacks is reported on stderr; the program exits 77 only when no SIMD
 * variant at all could be tested.
 */
#include "core/kernels/kernels_int.h"
#include "core/modelpress.h"

#include <check.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_SMALL 1024 /* lengths 0..1023 */
#define GUARD 64       /* bytes (and floats) past n that must stay untouched */
#define MAX_N 100003   /* the largest length of the sweep */

static const size_t big_lengths[] = {1031, 4099, 65537, MAX_N};
static const size_t offsets[] = {0, 1, 3, 7};
#define N_OFFSETS (sizeof(offsets) / sizeof(offsets[0]))

static const mp_kern_table_t *ref_table;
static const mp_kern_table_t *variants[2];
static int n_variants;

/* ---- data ---------------------------------------------------------------------------------- */

static uint64_t rng_state;

static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static float rng_unit(void) /* [0, 1) */
{
    return (float)(rng_next() >> 40) * 0x1p-24f;
}

static float bits_to_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

enum { K_UNIFORM, K_BITS, K_TIES, K_SPECIAL, K_NONFINITE, N_KINDS };
static const char *const kind_names[N_KINDS] = {"uniform", "bits", "ties", "special", "nonfinite"};

static const float specials[] = {
    0.0f,    -0.0f,    0x1p-149f, -0x1p-149f,  1e-40f,  -1e-40f, FLT_MIN, -FLT_MIN,
    FLT_MAX, -FLT_MAX, 1e30f,     -1e30f,      127.0f,  -127.0f, 0.5f,    -0.5f,
    1.5f,    2.5f,     -3.5f,     126.5f,      -126.5f, 127.5f,  -127.5f, 128.0f,
    -128.0f, 200.0f,   -200.0f,   0.49999997f, 1.0f,    -1.0f,   63.5f,   -254.0f};
#define N_SPECIALS (sizeof(specials) / sizeof(specials[0]))

static void fill(float *x, size_t n, int kind)
{
    for (size_t i = 0; i < n; i++) {
        switch (kind) {
        case K_UNIFORM:
            x[i] = (rng_unit() - 0.5f) * 8.0f;
            break;
        case K_BITS: { /* any finite float: exponent field 255 is redrawn */
            uint32_t u;
            do {
                u = (uint32_t)rng_next();
            } while (((u >> 23) & 0xff) == 0xff);
            x[i] = bits_to_float(u);
            break;
        }
        case K_TIES: /* (k + 1/2) * 2^e: a tie at inv_scale 2^-e, an integer at 2^(1-e) */
            x[i] = ((float)((int)(rng_next() % 321) - 160) + 0.5f) *
                   ldexpf(1.0f, (int)(rng_next() % 3) - 1);
            break;
        case K_SPECIAL:
            x[i] = specials[rng_next() % N_SPECIALS];
            break;
        default: { /* one in four non-finite: inf, -inf, NaN, negative NaN */
            static const uint32_t nonfinite[] = {0x7f800000u, 0xff800000u, 0x7fc00000u,
                                                 0xffc00001u};
            uint64_t r = rng_next();
            x[i] =
                (r & 3) ? specials[(r >> 2) % N_SPECIALS] : bits_to_float(nonfinite[(r >> 2) & 3]);
            break;
        }
        }
    }
}

/* ---- comparison driver --------------------------------------------------------------------- */

static float *xbuf, *xwork_ref, *xwork_var, *yref, *yvar;
static int8_t *qref, *qvar;

/* 64-byte aligned (so the offsets are what they say), the size rounded up as C11 requires. */
static void *alloc64(size_t bytes)
{
    return aligned_alloc(64, (bytes + 63) / 64 * 64);
}

static void setup(void)
{
    size_t fbytes = (MAX_N + 64 + GUARD) * sizeof(float);
    xbuf = alloc64(fbytes);
    xwork_ref = alloc64(fbytes);
    xwork_var = alloc64(fbytes);
    yref = alloc64(fbytes);
    yvar = alloc64(fbytes);
    qref = alloc64(MAX_N + 64 + GUARD);
    qvar = alloc64(MAX_N + 64 + GUARD);
    ck_assert(xbuf && xwork_ref && xwork_var && yref && yvar && qref && qvar);
    memset(xbuf, 0, fbytes); /* the guard floats past n are copied and compared too */
    rng_state = 42;
}

static void teardown(void)
{
    free(xbuf);
    free(xwork_ref);
    free(xwork_var);
    free(yref);
    free(yvar);
    free(qref);
    free(qvar);
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

typedef struct {
    const mp_kern_table_t *v;
    const char *kind;
    size_t off;
} where_t;

/* One operation compared on x[0..n) (inside xbuf, at an offset); returns how many calls. */
typedef size_t (*check_fn)(const where_t *w, const float *x, size_t n);

/* Runs check on every kind, every small length at every offset, and the big lengths at
 * offset 3; returns the number of comparisons made. */
static size_t sweep(const mp_kern_table_t *v, check_fn check)
{
    size_t calls = 0;
    for (int kind = 0; kind < N_KINDS; kind++) {
        for (size_t n = 0; n < MAX_SMALL; n++) {
            for (size_t o = 0; o < N_OFFSETS; o++) {
                where_t w = {v, kind_names[kind], offsets[o]};
                fill(xbuf + offsets[o], n, kind);
                calls += check(&w, xbuf + offsets[o], n);
            }
        }
        for (size_t b = 0; b < sizeof(big_lengths) / sizeof(big_lengths[0]); b++) {
            where_t w = {v, kind_names[kind], 3};
            fill(xbuf + 3, big_lengths[b], kind);
            calls += check(&w, xbuf + 3, big_lengths[b]);
        }
    }
    return calls;
}

/* Sweep calls per parameter: (5 kinds) x (1024 lengths x 4 offsets + 4 big lengths). */
#define SWEEP_CASES ((size_t)N_KINDS * (MAX_SMALL * N_OFFSETS + 4))

#define FAIL_AT(w, op, n, param, at)                                                               \
    ck_abort_msg("%s %s differs from ref: data %s, n=%zu, offset %zu, %s=%a, first at byte %zu",   \
                 (w)->v->isa, op, (w)->kind, (size_t)(n), (w)->off, #param, (double)(param),       \
                 (size_t)(at))

static size_t check_absmax(const where_t *w, const float *x, size_t n)
{
    float a = ref_table->absmax_f32(x, n), b = w->v->absmax_f32(x, n);
    if (memcmp(&a, &b, sizeof a) != 0) {
        FAIL_AT(w, "absmax_f32", n, b, 0);
    }
    return 1;
}

#define N_INV 6
static size_t check_quant(const where_t *w, const float *x, size_t n)
{
    float m = mp_kern_absmax_f32_ref(x, n);
    const float invs[N_INV] = {1.0f,     0.5f,  2.0f, m > 0 && isfinite(m) ? 127.0f / m : 3.0f,
                               0x1p100f, 1e-30f};
    for (int k = 0; k < N_INV; k++) {
        float inv = invs[k];
        memset(qref, 0x5a, n + GUARD);
        memset(qvar, 0x5a, n + GUARD);
        ref_table->quant_i8_f32(x, n, inv, qref);
        w->v->quant_i8_f32(x, n, inv, qvar);
        size_t d = first_diff(qref, qvar, n + GUARD);
        if (d != n + GUARD) {
            FAIL_AT(w, "quant_i8_f32", n, inv, d);
        }
    }
    return N_INV;
}

#define N_SCALES 7
static size_t check_dequant(const where_t *w, const float *x, size_t n)
{
    static const float scales[N_SCALES] = {1.0f, 0.0123f, -0.5f, 1e-40f, 1e38f, 0.0f, -0.0f};
    /* The int8 input is the low byte of the float bits, so every value -128..127 occurs. */
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], sizeof u);
        qref[i] = (int8_t)(u ^ (u >> 8) ^ (u >> 16));
    }
    for (int k = 0; k < N_SCALES; k++) {
        float s = scales[k];
        memset(yref, 0x5a, (n + GUARD) * sizeof(float));
        memset(yvar, 0x5a, (n + GUARD) * sizeof(float));
        ref_table->dequant_i8_f32(qref, n, s, yref);
        w->v->dequant_i8_f32(qref, n, s, yvar);
        size_t d = first_diff(yref, yvar, (n + GUARD) * sizeof(float));
        if (d != (n + GUARD) * sizeof(float)) {
            FAIL_AT(w, "dequant_i8_f32", n, s, d);
        }
    }
    return N_SCALES;
}

/* Thresholds: exact ties with an element, the smallest ones, the largest, NaN, negative. */
#define N_THR 9
static void thresholds(const float *x, size_t n, float thr[N_THR])
{
    const float fixed[N_THR] = {0.0f,     0.5f, FLT_MIN, 0x1p-149f, FLT_MAX,
                                INFINITY, NAN,  -1.0f,   0.0f};
    memcpy(thr, fixed, sizeof fixed);
    thr[N_THR - 1] = n ? fabsf(x[rng_next() % n]) : 1.0f;
}

static size_t check_count(const where_t *w, const float *x, size_t n)
{
    float thr[N_THR];
    thresholds(x, n, thr);
    for (int k = 0; k < N_THR; k++) {
        size_t a = ref_table->count_below_f32(x, n, thr[k]);
        size_t b = w->v->count_below_f32(x, n, thr[k]);
        if (a != b) {
            ck_abort_msg("%s count_below_f32: data %s n=%zu offset %zu thr=%a: %zu, ref %zu",
                         w->v->isa, w->kind, n, w->off, (double)thr[k], b, a);
        }
    }
    return N_THR;
}

static size_t check_mask(const where_t *w, const float *x, size_t n)
{
    float thr[N_THR];
    thresholds(x, n, thr);
    size_t bytes = (n + GUARD) * sizeof(float);
    for (int k = 0; k < N_THR; k++) {
        /* Same misalignment as x, guard floats copied too and compared afterwards. */
        float *a = xwork_ref + w->off, *b = xwork_var + w->off;
        memcpy(a, x, bytes);
        memcpy(b, x, bytes);
        size_t ca = ref_table->mask_below_f32(a, n, thr[k]);
        size_t cb = w->v->mask_below_f32(b, n, thr[k]);
        size_t d = first_diff(a, b, bytes);
        if (ca != cb || d != bytes) {
            ck_abort_msg("%s mask_below_f32: data %s n=%zu offset %zu thr=%a: count %zu (ref "
                         "%zu), first different byte %zu",
                         w->v->isa, w->kind, n, w->off, (double)thr[k], cb, ca, d);
        }
    }
    return N_THR;
}

/* Doubles equal to the bit, or both NaN (a NaN's payload is not part of the contract). */
static int same_double(double a, double b)
{
    return (isnan(a) && isnan(b)) || memcmp(&a, &b, sizeof a) == 0;
}

/* Against a second array near the first (the error a quantizer leaves), and against itself
 * (no error at all: noise exactly 0). */
static size_t check_err(const where_t *w, const float *x, size_t n)
{
    float *x2 = xwork_var + w->off;
    double sa, na, sb, nb;
    for (size_t i = 0; i < n; i++) {
        x2[i] = x[i] * 0.75f + 0.001f;
    }
    for (int k = 0; k < 2; k++) {
        const float *other = k == 0 ? x2 : x;
        ref_table->err_sums_f32(x, other, n, &sa, &na);
        w->v->err_sums_f32(x, other, n, &sb, &nb);
        if (!same_double(sa, sb) || !same_double(na, nb)) {
            ck_abort_msg("%s err_sums_f32: data %s n=%zu offset %zu %s: signal %a noise %a, ref "
                         "%a %a",
                         w->v->isa, w->kind, n, w->off, k == 0 ? "near" : "itself", sb, nb, sa,
                         na);
        }
        if (k == 1 && isfinite(sa) && na != 0.0) {
            ck_abort_msg("ref err_sums_f32: data %s n=%zu: noise %a against itself", w->kind, n,
                         na);
        }
    }
    return 2;
}

/* Every operation with the calls its check makes per case. */
static const struct {
    check_fn check;
    size_t calls_per_case;
} ops[] = {{check_absmax, 1},
           {check_quant, N_INV},
           {check_dequant, N_SCALES},
           {check_count, N_THR},
           {check_mask, N_THR},
           {check_err, 2}};
#define N_OPS (int)(sizeof(ops) / sizeof(ops[0]))

/* _i = variant * N_OPS + operation. */
START_TEST(test_matches_ref)
{
    ck_assert_uint_eq(sweep(variants[_i / N_OPS], ops[_i % N_OPS].check),
                      SWEEP_CASES * ops[_i % N_OPS].calls_per_case);
}
END_TEST

/* Past 2^22 elements the per-lane counters are flushed; the count must still be exact. */
START_TEST(test_count_past_block)
{
    const mp_kern_table_t *v = variants[_i];
    size_t n = ((size_t)1 << 23) + 4093;
    float *x = malloc(n * sizeof(float));
    ck_assert_ptr_nonnull(x);
    for (size_t i = 0; i < n; i++) {
        x[i] = (i % 3 == 0) ? -0.25f : 2.0f;
    }
    size_t expect = (n + 2) / 3;
    ck_assert_uint_eq(v->count_below_f32(x, n, 1.0f), expect);
    ck_assert_uint_eq(v->mask_below_f32(x, n, 1.0f), expect);
    /* The masked entries are now +0.0 (below even FLT_MIN), the others still 2.0. */
    ck_assert_uint_eq(v->count_below_f32(x, n, FLT_MIN), expect);
    ck_assert_uint_eq(v->count_below_f32(x, n, 3.0f), n);
    ck_assert_float_eq(x[n - 1], (n - 1) % 3 == 0 ? 0.0f : 2.0f);
    ck_assert(!signbit(x[0]) && x[0] == 0.0f);
    free(x);
}
END_TEST

/* ---- the specification, in figures (every table, ref included) ----------------------------- */

static const mp_kern_table_t *all_tables[3];
static int n_all;

START_TEST(test_spec_absmax)
{
    const mp_kern_table_t *t = all_tables[_i];
    const float x[] = {-3.0f, NAN, 2.0f, -0.0f};
    const float neg_zero = -0.0f, inf_one[] = {-INFINITY, 1.0f};
    ck_assert_float_eq(t->absmax_f32(x, 0), 0.0f);
    ck_assert_float_eq(t->absmax_f32(x, 4), 3.0f);
    ck_assert_float_eq(t->absmax_f32(x + 1, 1), 0.0f); /* NaN alone is ignored */
    ck_assert(!signbit(t->absmax_f32(&neg_zero, 1)));
    ck_assert_float_eq(t->absmax_f32(inf_one, 2), INFINITY);
}
END_TEST

START_TEST(test_spec_quant)
{
    const mp_kern_table_t *t = all_tables[_i];
    /* 40 values so that the SIMD variants take both their vector and their tail paths. */
    const float base[20] = {2.5f,    -3.5f,      0.5f,   -0.5f, 1.5f,        126.5f, 127.5f,
                            -127.5f, 200.0f,     -1e30f, -0.0f, 0.49999997f, 1e-40f, -126.5f,
                            FLT_MAX, 3.4999998f, -2.5f,  4.5f,  127.0f,      NAN};
    const int8_t want[20] = {2, -4, 0, 0,    2,   126, 127, -127, 127, -127,
                             0, 0,  0, -126, 127, 3,   -2,  4,    127, -127};
    float x[40];
    int8_t q[40], w2[40];
    for (int i = 0; i < 40; i++) {
        x[i] = base[i % 20];
        w2[i] = want[i % 20];
    }
    t->quant_i8_f32(x, 40, 1.0f, q);
    ck_assert_mem_eq(q, w2, 40);
    /* 5 * 0.5 = 2.5 -> 2 and -7 * 0.5 = -3.5 -> -4: ties after scaling, too. */
    const float y[2] = {5.0f, -7.0f};
    t->quant_i8_f32(y, 2, 0.5f, q);
    ck_assert_int_eq(q[0], 2);
    ck_assert_int_eq(q[1], -4);
}
END_TEST

START_TEST(test_spec_dequant)
{
    const mp_kern_table_t *t = all_tables[_i];
    const int8_t q[5] = {-128, -1, 0, 127, 3};
    float y[5];
    t->dequant_i8_f32(q, 5, 0.5f, y);
    ck_assert_float_eq(y[0], -64.0f);
    ck_assert_float_eq(y[1], -0.5f);
    ck_assert_float_eq(y[2], 0.0f);
    ck_assert_float_eq(y[3], 63.5f);
    ck_assert_float_eq(y[4], 1.5f);
    t->dequant_i8_f32(q, 5, -1.0f, y);
    ck_assert(signbit(y[2])); /* 0 * -1 = -0.0 */
}
END_TEST

START_TEST(test_spec_below)
{
    const mp_kern_table_t *t = all_tables[_i];
    float x[6] = {0.5f, -0.5f, 1.0f, -1.0f, NAN, -0.0f};
    ck_assert_uint_eq(t->count_below_f32(x, 6, 1.0f), 3);
    ck_assert_uint_eq(t->count_below_f32(x, 6, 0.0f), 0);
    ck_assert_uint_eq(t->count_below_f32(x, 6, NAN), 0);
    ck_assert_uint_eq(t->count_below_f32(x, 6, INFINITY), 5);
    ck_assert_uint_eq(t->count_below_f32(x, 0, 1.0f), 0);
    ck_assert_uint_eq(t->mask_below_f32(x, 6, 0.0f), 0);
    ck_assert(signbit(x[5])); /* |-0.0| < 0 is false: untouched */
    ck_assert_uint_eq(t->mask_below_f32(x, 6, 1.0f), 3);
    const uint32_t want[6] = {0, 0, 0x3f800000u, 0xbf800000u, 0, 0}; /* +0.0 where masked */
    for (int i = 0; i < 6; i++) {
        uint32_t u;
        memcpy(&u, &x[i], sizeof u);
        if (i == 4) {
            ck_assert(isnan(x[i]));
        } else {
            ck_assert_uint_eq(u, want[i]);
        }
    }
}
END_TEST

/* Sums of squares in figures: exact cases, more elements than lanes, none. */
START_TEST(test_spec_err)
{
    const mp_kern_table_t *t = all_tables[_i];
    float a[37], b[37];
    double sig, noi;
    for (int i = 0; i < 37; i++) {
        a[i] = i % 2 ? -1.0f : 1.0f;
        b[i] = a[i] * 0.5f;
    }
    a[36] = 3.0f;
    b[36] = 7.0f;
    t->err_sums_f32(a, b, 37, &sig, &noi);
    ck_assert(sig == 36.0 + 9.0 && noi == 36 * 0.25 + 16.0);
    t->err_sums_f32(a, b, 0, &sig, &noi);
    ck_assert(sig == 0.0 && noi == 0.0);
    /* single precision would lose 1 in 1e8 + 1: the sums are doubles */
    a[0] = 1e4f;
    a[1] = 1.0f;
    t->err_sums_f32(a, a, 2, &sig, &noi);
    ck_assert(sig == 1e8 + 1.0 && noi == 0.0);
}
END_TEST

/* ---- dispatch ------------------------------------------------------------------------------ */

static const char *best_isa(void)
{
    return mp__kern_for("avx512") ? "avx512" : mp__kern_for("avx2") ? "avx2" : "ref";
}

/* Runs the first mp__kern() of a fresh process with MODELPRESS_ISA = value (unset if NULL)
 * and returns the ISA it chose, "" if the child failed; the child also checks that the choice
 * is stable and that mp__kern_for() hands out the very same table. */
static const char *forced_isa(const char *value, char *buf, size_t len)
{
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        if (value) {
            setenv("MODELPRESS_ISA", value, 1);
        } else {
            unsetenv("MODELPRESS_ISA");
        }
        const mp_kern_table_t *t = mp__kern();
        int ok = t == mp__kern() && t == mp__kern_for(t->isa) && mp_kern_isa() == t->isa;
        const char *name = ok ? t->isa : "";
        ssize_t wr = write(fds[1], name, strlen(name));
        _exit(wr == (ssize_t)strlen(name) ? 0 : 1);
    }
    close(fds[1]);
    ssize_t r = read(fds[0], buf, len - 1);
    close(fds[0]);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    buf[r > 0 ? r : 0] = '\0';
    return buf;
}

START_TEST(test_dispatch_forced)
{
    char buf[32];
    const char *best = best_isa();
    ck_assert_str_eq(forced_isa(NULL, buf, sizeof buf), best);
    ck_assert_str_eq(forced_isa("ref", buf, sizeof buf), "ref");
    ck_assert_str_eq(forced_isa("avx2", buf, sizeof buf), mp__kern_for("avx2") ? "avx2" : best);
    ck_assert_str_eq(forced_isa("avx512", buf, sizeof buf),
                     mp__kern_for("avx512") ? "avx512" : best);
    ck_assert_str_eq(forced_isa("neon", buf, sizeof buf), best);
    ck_assert_str_eq(forced_isa("", buf, sizeof buf), best);
}
END_TEST

START_TEST(test_dispatch_for)
{
    ck_assert_ptr_nonnull(mp__kern_for("ref"));
    ck_assert_str_eq(mp__kern_for("ref")->isa, "ref");
    ck_assert_ptr_null(mp__kern_for("AVX2"));
    ck_assert_ptr_null(mp__kern_for("neon"));
    ck_assert_ptr_null(mp__kern_for(NULL));
    const mp_kern_table_t *t = mp__kern_for("ref");
    ck_assert(t->absmax_f32 == mp_kern_absmax_f32_ref &&
              t->quant_i8_f32 == mp_kern_quant_i8_f32_ref &&
              t->dequant_i8_f32 == mp_kern_dequant_i8_f32_ref &&
              t->count_below_f32 == mp_kern_count_below_f32_ref &&
              t->mask_below_f32 == mp_kern_mask_below_f32_ref &&
              t->err_sums_f32 == mp_kern_err_sums_f32_ref);
}
END_TEST

static Suite *kernels_suite(void)
{
    Suite *s = suite_create("kernels");

    TCase *tc = tcase_create("spec");
    tcase_add_loop_test(tc, test_spec_absmax, 0, n_all);
    tcase_add_loop_test(tc, test_spec_quant, 0, n_all);
    tcase_add_loop_test(tc, test_spec_dequant, 0, n_all);
    tcase_add_loop_test(tc, test_spec_below, 0, n_all);
    tcase_add_loop_test(tc, test_spec_err, 0, n_all);
    suite_add_tcase(s, tc);

    tc = tcase_create("variants");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, test_matches_ref, 0, n_variants * N_OPS);
    tcase_add_loop_test(tc, test_count_past_block, 0, n_variants);
    suite_add_tcase(s, tc);

    tc = tcase_create("dispatch");
    tcase_add_test(tc, test_dispatch_forced);
    tcase_add_test(tc, test_dispatch_for);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    /* mp__kern_for() does not make the once-only choice, so the dispatch tests' children
     * still choose afresh. */
    ref_table = mp__kern_for("ref");
    all_tables[n_all++] = ref_table;
    const char *simd[] = {"avx2", "avx512"};
    for (int i = 0; i < 2; i++) {
        const mp_kern_table_t *t = mp__kern_for(simd[i]);
        if (t) {
            variants[n_variants++] = t;
            all_tables[n_all++] = t;
        } else {
            fprintf(stderr,
                    "check_kernels: *** the %s kernels are NOT TESTED: this CPU lacks "
                    "them ***\n",
                    simd[i]);
        }
    }
    SRunner *sr = srunner_create(kernels_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    if (failed) {
        return EXIT_FAILURE;
    }
    if (n_variants == 0) {
        fprintf(stderr, "check_kernels: no SIMD variant could be tested: SKIP\n");
        return 77;
    }
    return EXIT_SUCCESS;
}
