/* check_qbits.c — the qbits kernels: their specification in figures, every SIMD variant this
 * CPU has against the reference bit for bit, the packed bit layout, and the table's dispatch.
 *
 * The _ref kernels are pinned first to hand-computed figures (ties to even, clamping to the
 * code range, the zero point added after rounding, NaN rules, +0.0 from a min of zeros) and the
 * packers to hand-made layouts (4-bit codes {1, 2, 3} are the bytes {0x21, 0x03}) and to an
 * independent bit-by-bit statement of the layout for every width 1..8. Then each SIMD table is
 * compared with _ref on every length 0..1023 and a few large odd ones, at start offsets 0, 1, 3
 * and 7 elements from a 64-byte boundary, on uniform data, random finite bit patterns, exact
 * .5 ties after scaling, specials and non-finite values: codes, packed bytes and floats
 * memcmp-equal including 64 guard bytes past the end (nothing written beyond n), min and max
 * equal to the bit. Pack then unpack gives back every code (its low `bits` bits) for every
 * width and length. Dispatch follows the base kernels' ISA, also when MODELPRESS_ISA forces
 * one (checked in forked children).
 *
 * A variant the CPU lacks is reported on stderr; its comparisons are simply not made.
 */
#include "core/kernels/kernels_int.h"
#include "core/kernels/qbits_int.h"
#include "core/methods_int.h"

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
#define GUARD 64       /* bytes (and floats) past the end that must stay untouched */
#define MAX_N 65537    /* the largest length of the sweep */

static const size_t big_lengths[] = {1031, 4099, MAX_N};
#define N_BIG (sizeof(big_lengths) / sizeof(big_lengths[0]))
static const size_t offsets[] = {0, 1, 3, 7};
#define N_OFFSETS (sizeof(offsets) / sizeof(offsets[0]))

static const mp_qbits_table_t *ref_table;
static const mp_qbits_table_t *variants[2];
static int n_variants;
static const mp_qbits_table_t *all_tables[3];
static int n_all;

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

static const float specials[] = {0.0f,    -0.0f,    0x1p-149f, -0x1p-149f, FLT_MIN, -FLT_MIN,
                                 FLT_MAX, -FLT_MAX, 1e30f,     -1e30f,     0.5f,    -0.5f,
                                 1.5f,    2.5f,     -3.5f,     7.5f,       -7.5f,   127.5f,
                                 -127.5f, 255.5f,   300.0f,    -300.0f,    1.0f,    -1.0f};
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
        case K_TIES: /* (k + 1/2) * 2^e: a tie at inv_scale 2^-e */
            x[i] = ((float)((int)(rng_next() % 601) - 300) + 0.5f) *
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

/* ---- buffers and the comparison driver ----------------------------------------------------- */

static float *xbuf, *yref, *yvar;
static uint8_t *bref, *bvar, *cbuf, *cback;

/* 64-byte aligned (so the offsets are what they say), the size rounded up as C11 requires. */
static void *alloc64(size_t bytes)
{
    return aligned_alloc(64, (bytes + 63) / 64 * 64);
}

static void setup(void)
{
    size_t fbytes = (MAX_N + 64 + GUARD) * sizeof(float);
    xbuf = alloc64(fbytes);
    yref = alloc64(2 * fbytes); /* room for the lo and hi of groups of 1 */
    yvar = alloc64(2 * fbytes);
    bref = alloc64(MAX_N + 64 + GUARD);
    bvar = alloc64(MAX_N + 64 + GUARD);
    cbuf = alloc64(MAX_N + 64 + GUARD);
    cback = alloc64(MAX_N + 64 + GUARD);
    ck_assert(xbuf && yref && yvar && bref && bvar && cbuf && cback);
    memset(xbuf, 0, fbytes);
    rng_state = 42;
}

static void teardown(void)
{
    free(xbuf);
    free(yref);
    free(yvar);
    free(bref);
    free(bvar);
    free(cbuf);
    free(cback);
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
    const mp_qbits_table_t *v;
    const char *kind;
    size_t off;
} where_t;

/* One operation compared on x[0..n) (inside xbuf, at an offset); returns how many calls. */
typedef size_t (*check_fn)(const where_t *w, const float *x, size_t n);

/* Runs check on every kind, every small length at every offset, and the big lengths at
 * offset 3; returns the number of comparisons made. */
static size_t sweep(const mp_qbits_table_t *v, check_fn check)
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
        for (size_t b = 0; b < N_BIG; b++) {
            where_t w = {v, kind_names[kind], 3};
            fill(xbuf + 3, big_lengths[b], kind);
            calls += check(&w, xbuf + 3, big_lengths[b]);
        }
    }
    return calls;
}

/* Sweep calls per parameter: (5 kinds) x (1024 lengths x 4 offsets + 3 big lengths). */
#define SWEEP_CASES ((size_t)N_KINDS * (MAX_SMALL * N_OFFSETS + N_BIG))

#define FAIL_AT(w, op, n, what, at)                                                                \
    ck_abort_msg("%s %s differs from ref: data %s, n=%zu, offset %zu, %s, first at byte %zu",      \
                 (w)->v->isa, op, (w)->kind, (size_t)(n), (w)->off, what, (size_t)(at))

static size_t check_minmax(const where_t *w, const float *x, size_t n)
{
    float r[2], v[2];
    ref_table->minmax_f32(x, n, &r[0], &r[1]);
    w->v->minmax_f32(x, n, &v[0], &v[1]);
    size_t d = first_diff(r, v, sizeof r);
    if (d != sizeof r) {
        FAIL_AT(w, "minmax_f32", n, "lo/hi", d);
    }
    return 1;
}

#define N_GROUPS 5
static size_t check_minmax_groups(const where_t *w, const float *x, size_t n)
{
    static const size_t groups[N_GROUPS] = {1, 7, 16, 32, 128};
    char what[32];
    for (int k = 0; k < N_GROUPS; k++) {
        size_t g = groups[k], ng = (n + g - 1) / g, bytes = (ng + GUARD) * sizeof(float);
        memset(yref, 0x5a, bytes * 2);
        memset(yvar, 0x5a, bytes * 2);
        /* lo in the first half of the buffer, hi in the second, guards after each */
        ref_table->minmax_groups_f32(x, n, g, yref, yref + ng + GUARD);
        w->v->minmax_groups_f32(x, n, g, yvar, yvar + ng + GUARD);
        size_t d = first_diff(yref, yvar, bytes * 2);
        if (d != bytes * 2) {
            snprintf(what, sizeof what, "group %zu", g);
            FAIL_AT(w, "minmax_groups_f32", n, what, d);
        }
    }
    return N_GROUPS;
}

/* inv_scale values: 1, 1/2 (ties of K_TIES at e = -1 become integers), 2, the one that maps
 * the largest magnitude to qmax, huge and tiny. */
#define N_INV 5
static void inv_scales(const float *x, size_t n, int qmax, float inv[N_INV])
{
    float lo, hi;
    mp_kern_minmax_f32_ref(x, n, &lo, &hi);
    float m = fmaxf(-lo, hi);
    inv[0] = 1.0f;
    inv[1] = 0.5f;
    inv[2] = m > 0 && isfinite(m) ? (float)qmax / m : 3.0f;
    inv[3] = 0x1p100f;
    inv[4] = 1e-30f;
}

#define N_QMAX_SYM 7                   /* widths 2..8 */
#define SYM_CALLS (N_QMAX_SYM * N_INV) /* calls per case */
static size_t check_quant_sym(const where_t *w, const float *x, size_t n)
{
    char what[64];
    for (int b = 2; b <= 8; b++) {
        int qmax = (1 << (b - 1)) - 1;
        float inv[N_INV];
        inv_scales(x, n, qmax, inv);
        for (int k = 0; k < N_INV; k++) {
            memset(bref, 0x5a, n + GUARD);
            memset(bvar, 0x5a, n + GUARD);
            ref_table->quant_sym_f32(x, n, inv[k], qmax, (int8_t *)bref);
            w->v->quant_sym_f32(x, n, inv[k], qmax, (int8_t *)bvar);
            size_t d = first_diff(bref, bvar, n + GUARD);
            if (d != n + GUARD) {
                snprintf(what, sizeof what, "qmax %d inv_scale %a", qmax, (double)inv[k]);
                FAIL_AT(w, "quant_sym_f32", n, what, d);
            }
        }
    }
    return SYM_CALLS;
}

/* Each width 2..8 with zero points 0, about the middle, and qmax. */
#define N_ZP 3
#define ASYM_CALLS (N_QMAX_SYM * N_ZP * N_INV)
static size_t check_quant_asym(const where_t *w, const float *x, size_t n)
{
    char what[80];
    for (int b = 2; b <= 8; b++) {
        int qmax = (1 << b) - 1;
        const int zps[N_ZP] = {0, (qmax + 1) / 2 - (b & 1), qmax};
        float inv[N_INV];
        inv_scales(x, n, qmax, inv);
        for (int z = 0; z < N_ZP; z++) {
            for (int k = 0; k < N_INV; k++) {
                memset(bref, 0x5a, n + GUARD);
                memset(bvar, 0x5a, n + GUARD);
                ref_table->quant_asym_f32(x, n, inv[k], zps[z], qmax, bref);
                w->v->quant_asym_f32(x, n, inv[k], zps[z], qmax, bvar);
                size_t d = first_diff(bref, bvar, n + GUARD);
                if (d != n + GUARD) {
                    snprintf(what, sizeof what, "qmax %d zero point %d inv_scale %a", qmax, zps[z],
                             (double)inv[k]);
                    FAIL_AT(w, "quant_asym_f32", n, what, d);
                }
            }
        }
    }
    return ASYM_CALLS;
}

/* The codes are bytes drawn from the float bits, so every value 0..255 occurs. */
static void codes_from(const float *x, size_t n, uint8_t *c)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], sizeof u);
        c[i] = (uint8_t)(u ^ (u >> 8) ^ (u >> 16) ^ (u >> 24));
    }
}

#define N_DEQ 6
static size_t check_dequant(const where_t *w, const float *x, size_t n)
{
    static const float scales[N_DEQ] = {1.0f, 0.0123f, -0.5f, 1e-40f, 1e38f, 0.0f};
    static const int zps[N_DEQ] = {0, 7, 128, 255, 3, 1};
    char what[64];
    codes_from(x, n, cbuf);
    for (int k = 0; k < N_DEQ; k++) {
        size_t bytes = (n + GUARD) * sizeof(float);
        memset(yref, 0x5a, bytes);
        memset(yvar, 0x5a, bytes);
        ref_table->dequant_asym_f32(cbuf, n, scales[k], zps[k], yref);
        w->v->dequant_asym_f32(cbuf, n, scales[k], zps[k], yvar);
        size_t d = first_diff(yref, yvar, bytes);
        snprintf(what, sizeof what, "scale %a zero point %d", (double)scales[k], zps[k]);
        if (d != bytes) {
            FAIL_AT(w, "dequant_asym_f32", n, what, d);
        }
        memset(yvar, 0x5a, bytes);
        ref_table->dequant_sym_f32((const int8_t *)cbuf, n, scales[k], yref);
        w->v->dequant_sym_f32((const int8_t *)cbuf, n, scales[k], yvar);
        d = first_diff(yref, yvar, bytes);
        if (d != bytes) {
            FAIL_AT(w, "dequant_sym_f32", n, what, d);
        }
    }
    return 2 * N_DEQ;
}

/* Pack: full random bytes as codes (the bits above the width must be dropped), at the offset
 * of x for the codes and a different one for the output. Unpack: random packed bytes (garbage
 * in the unused bits of the last byte must not matter) and the round trip through pack. */
static size_t check_pack(const where_t *w, const float *x, size_t n)
{
    char what[32];
    const size_t out_off = (w->off * 5 + 2) % 8;
    uint8_t *in = cbuf + w->off;
    codes_from(x, n, in);
    for (int b = 1; b <= 8; b++) {
        size_t nb = mp__qbits_bytes(n, b);
        snprintf(what, sizeof what, "%d bits", b);
        memset(bref, 0x5a, nb + out_off + GUARD);
        memset(bvar, 0x5a, nb + out_off + GUARD);
        ref_table->pack_bits(in, n, b, bref + out_off);
        w->v->pack_bits(in, n, b, bvar + out_off);
        size_t d = first_diff(bref, bvar, nb + out_off + GUARD);
        if (d != nb + out_off + GUARD) {
            FAIL_AT(w, "pack_bits", n, what, d);
        }
        /* unpack of the packed stream: the codes come back, masked to the width */
        memset(cback, 0x5a, n + out_off + GUARD);
        w->v->unpack_bits(bvar + out_off, n, b, cback + out_off);
        for (size_t i = 0; i < n; i++) {
            if (cback[out_off + i] != (in[i] & ((1u << b) - 1u))) {
                FAIL_AT(w, "pack then unpack", n, what, i);
            }
        }
        for (size_t i = 0; i < GUARD; i++) { /* no ck_assert per byte: each one logs */
            if (cback[out_off + n + i] != 0x5a) {
                FAIL_AT(w, "unpack past the end", n, what, n + i);
            }
        }
        /* unpack of arbitrary bytes, compared with ref */
        memset(bref, 0x5a, n + GUARD);
        memset(bvar, 0x5a, n + GUARD);
        ref_table->unpack_bits(in, n, b, bref);
        w->v->unpack_bits(in, n, b, bvar);
        d = first_diff(bref, bvar, n + GUARD);
        if (d != n + GUARD) {
            FAIL_AT(w, "unpack_bits", n, what, d);
        }
    }
    return 8;
}

static const struct {
    check_fn check;
    size_t calls_per_case;
} ops[] = {{check_minmax, 1},
           {check_minmax_groups, N_GROUPS},
           {check_quant_sym, SYM_CALLS},
           {check_quant_asym, ASYM_CALLS},
           {check_dequant, 2 * N_DEQ},
           {check_pack, 8}};
#define N_OPS (int)(sizeof(ops) / sizeof(ops[0]))

/* _i = variant * N_OPS + operation. */
START_TEST(test_matches_ref)
{
    ck_assert_uint_eq(sweep(variants[_i / N_OPS], ops[_i % N_OPS].check),
                      SWEEP_CASES * ops[_i % N_OPS].calls_per_case);
}
END_TEST

/* ---- the specification, in figures (every table, ref included) ----------------------------- */

static int is_pos_zero(float f)
{
    return f == 0.0f && !signbit(f);
}

START_TEST(test_spec_minmax)
{
    const mp_qbits_table_t *t = all_tables[_i];
    float x[40], lo, hi;
    const float base[5] = {-3.0f, NAN, 2.0f, -0.0f, 1.5f};
    for (int i = 0; i < 40; i++) { /* 40: the vector paths and the tails */
        x[i] = base[i % 5];
    }
    t->minmax_f32(x, 40, &lo, &hi);
    ck_assert_float_eq(lo, -3.0f);
    ck_assert_float_eq(hi, 2.0f);
    t->minmax_f32(x, 0, &lo, &hi);
    ck_assert(isinf(lo) && lo > 0 && isinf(hi) && hi < 0);
    const float nans[20] = {NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN,
                            NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN};
    t->minmax_f32(nans, 20, &lo, &hi); /* NaN alone is ignored */
    ck_assert(isinf(lo) && lo > 0 && isinf(hi) && hi < 0);
    /* zeros of both signs, in either order: the result is +0.0 */
    float z[33];
    for (int i = 0; i < 33; i++) {
        z[i] = (i * 7) % 3 ? -0.0f : 0.0f;
    }
    t->minmax_f32(z, 33, &lo, &hi);
    ck_assert(is_pos_zero(lo) && is_pos_zero(hi));
    t->minmax_f32(z + 1, 1, &lo, &hi);
    ck_assert(is_pos_zero(lo) && is_pos_zero(hi));
    const float inf_one[2] = {-INFINITY, 1.0f};
    t->minmax_f32(inf_one, 2, &lo, &hi);
    ck_assert(isinf(lo) && lo < 0);
    ck_assert_float_eq(hi, 1.0f);
}
END_TEST

START_TEST(test_spec_minmax_groups)
{
    const mp_qbits_table_t *t = all_tables[_i];
    float x[70], lo[6], hi[6];
    for (int i = 0; i < 70; i++) {
        x[i] = (float)(i % 2 ? i : -i);
    }
    lo[5] = hi[5] = 42.0f;
    /* groups of 16: 0..15, 16..31, 32..47, 48..63, 64..69 (the last shorter) */
    t->minmax_groups_f32(x, 70, 16, lo, hi);
    const float want_lo[5] = {-14.0f, -30.0f, -46.0f, -62.0f, -68.0f};
    const float want_hi[5] = {15.0f, 31.0f, 47.0f, 63.0f, 69.0f};
    for (int g = 0; g < 5; g++) {
        ck_assert_float_eq(lo[g], want_lo[g]);
        ck_assert_float_eq(hi[g], want_hi[g]);
    }
    ck_assert_float_eq(lo[5], 42.0f); /* nothing past the last group */
    ck_assert_float_eq(hi[5], 42.0f);
    t->minmax_groups_f32(x, 70, 100, lo, hi); /* one group, shorter than `group` */
    ck_assert_float_eq(lo[0], -68.0f);
    ck_assert_float_eq(hi[0], 69.0f);
    ck_assert_float_eq(lo[1], -30.0f);
}
END_TEST

START_TEST(test_spec_quant_sym)
{
    const mp_qbits_table_t *t = all_tables[_i];
    /* qmax 7 (4 bits): ties to even, clamping at ±7, NaN to -7 */
    const float base[12] = {2.5f, -3.5f, 7.5f,  -8.0f, NAN,    6.5f,
                            0.5f, -0.5f, 1e30f, 6.49f, -6.51f, 3.0f};
    const int8_t want[12] = {2, -4, 7, -7, -7, 6, 0, 0, 7, 6, -7, 3};
    float x[36];
    int8_t q[36], w2[36];
    for (int i = 0; i < 36; i++) {
        x[i] = base[i % 12];
        w2[i] = want[i % 12];
    }
    t->quant_sym_f32(x, 36, 1.0f, 7, q);
    ck_assert_mem_eq(q, w2, 36);
    /* the ties after scaling: 5 * 0.5 = 2.5 -> 2; -7 * 0.5 = -3.5 -> -4; qmax 1 (2 bits) */
    const float y[3] = {5.0f, -7.0f, 1.5f};
    t->quant_sym_f32(y, 3, 0.5f, 1, q);
    ck_assert_int_eq(q[0], 1);
    ck_assert_int_eq(q[1], -1);
    ck_assert_int_eq(q[2], 1);
    t->quant_sym_f32(y, 2, 0.5f, 127, q);
    ck_assert_int_eq(q[0], 2);
    ck_assert_int_eq(q[1], -4);
}
END_TEST

START_TEST(test_spec_quant_asym)
{
    const mp_qbits_table_t *t = all_tables[_i];
    /* qmax 15 (4 bits), zero point 3: code = clamp(rint(x) + 3, 0, 15). 0.5 -> 0 + 3 = 3,
     * where rounding after adding (rint(3.5) = 4) would give 4; 1.5 -> 2 + 3 = 5. */
    const float base[12] = {0.0f,  -3.0f, -3.5f,  -2.5f, 0.5f, 1.5f,
                            12.0f, 12.5f, 100.0f, NAN,   2.5f, -1e30f};
    const uint8_t want[12] = {3, 0, 0, 1, 3, 5, 15, 15, 15, 0, 5, 0};
    float x[36];
    uint8_t q[36], w2[36];
    for (int i = 0; i < 36; i++) {
        x[i] = base[i % 12];
        w2[i] = want[i % 12];
    }
    t->quant_asym_f32(x, 36, 1.0f, 3, 15, q);
    ck_assert_mem_eq(q, w2, 36);
    /* 8 bits, zero point 128: the codes 0 and 255 at the ends */
    const float y[4] = {-128.0f, 127.0f, -200.0f, 200.0f};
    t->quant_asym_f32(y, 4, 1.0f, 128, 255, q);
    ck_assert_int_eq(q[0], 0);
    ck_assert_int_eq(q[1], 255);
    ck_assert_int_eq(q[2], 0);
    ck_assert_int_eq(q[3], 255);
}
END_TEST

START_TEST(test_spec_dequant)
{
    const mp_qbits_table_t *t = all_tables[_i];
    const uint8_t q[5] = {0, 3, 15, 255, 4};
    float y[5];
    t->dequant_asym_f32(q, 5, 0.5f, 3, y);
    ck_assert_float_eq(y[0], -1.5f);
    ck_assert(is_pos_zero(y[1])); /* (3 - 3) * 0.5 is exactly +0 */
    ck_assert_float_eq(y[2], 6.0f);
    ck_assert_float_eq(y[3], 126.0f);
    ck_assert_float_eq(y[4], 0.5f);
    const int8_t s[3] = {-7, 0, 7};
    t->dequant_sym_f32(s, 3, 0.25f, y);
    ck_assert_float_eq(y[0], -1.75f);
    ck_assert_float_eq(y[1], 0.0f);
    ck_assert_float_eq(y[2], 1.75f);
}
END_TEST

/* Hand-made layouts, then their unpacking; the byte after the packed ones stays untouched. */
START_TEST(test_spec_layout_figures)
{
    const mp_qbits_table_t *t = all_tables[_i];
    static const struct {
        int bits;
        size_t n, nb;
        uint8_t codes[9], packed[4];
    } cases[] = {
        {4, 3, 2, {1, 2, 3}, {0x21, 0x03}},
        {4, 2, 1, {0x1f, 0x02}, {0x2f}},          /* only the low 4 bits are stored */
        {2, 5, 2, {1, 2, 3, 0, 3}, {0x39, 0x03}}, /* 1 | 2 << 2 | 3 << 4 | 0 << 6 */
        {3, 3, 2, {7, 0, 5}, {0x47, 0x01}},       /* 5 straddles bytes 0 and 1 */
        {1, 9, 2, {1, 0, 1, 1, 0, 0, 0, 0, 1}, {0x0d, 0x01}},
        {5, 2, 2, {31, 1}, {0x3f, 0x00}},
        {6, 3, 3, {0x3f, 0x00, 0x15}, {0x3f, 0x50, 0x01}},
        {7, 2, 2, {0x7f, 0x01}, {0xff, 0x00}},
        {8, 2, 2, {0xab, 0x01}, {0xab, 0x01}},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        uint8_t out[8], back[10];
        memset(out, 0x5a, sizeof out);
        ck_assert_uint_eq(mp__packed_bytes(cases[k].n, cases[k].bits), cases[k].nb);
        t->pack_bits(cases[k].codes, cases[k].n, cases[k].bits, out);
        ck_assert_msg(memcmp(out, cases[k].packed, cases[k].nb) == 0,
                      "%s: %d bits case %zu: packed %02x %02x %02x", t->isa, cases[k].bits, k,
                      out[0], out[1], out[2]);
        ck_assert_uint_eq(out[cases[k].nb], 0x5a);
        memset(back, 0x5a, sizeof back);
        t->unpack_bits(cases[k].packed, cases[k].n, cases[k].bits, back);
        for (size_t i = 0; i < cases[k].n; i++) {
            ck_assert_uint_eq(back[i], cases[k].codes[i] & ((1u << cases[k].bits) - 1u));
        }
        ck_assert_uint_eq(back[cases[k].n], 0x5a);
    }
    /* widths outside 1..8 write nothing */
    uint8_t c[2] = {1, 2}, out[2] = {0x5a, 0x5a};
    t->pack_bits(c, 2, 9, out);
    t->pack_bits(c, 2, 0, out);
    t->unpack_bits(c, 2, 9, out);
    ck_assert_uint_eq(out[0], 0x5a);
    ck_assert_uint_eq(out[1], 0x5a);
}
END_TEST

/* The layout stated bit by bit, independently of any packer: stream bit k (bit k % 8 of byte
 * k / 8) is bit k % bits of code k / bits, and the bits past n * bits are 0. Every width, every
 * length up to 300 (so every SIMD step and tail), every table. */
START_TEST(test_spec_layout_bitwise)
{
    const mp_qbits_table_t *t = all_tables[_i];
    uint8_t codes[300], out[300 + GUARD];
    rng_state = 7;
    for (int b = 1; b <= 8; b++) {
        for (size_t n = 0; n <= 300; n++) {
            size_t nb = (n * (size_t)b + 7) / 8;
            for (size_t i = 0; i < n; i++) {
                codes[i] = (uint8_t)rng_next();
            }
            memset(out, 0xa5, sizeof out);
            t->pack_bits(codes, n, b, out);
            for (size_t k = 0; k < nb * 8; k++) {
                unsigned got = (out[k / 8] >> (k % 8)) & 1u;
                unsigned want = k < n * (size_t)b ? (codes[k / b] >> (k % b)) & 1u : 0u;
                if (got != want) {
                    ck_abort_msg("%s: %d bits, n=%zu: stream bit %zu is %u, want %u", t->isa, b, n,
                                 k, got, want);
                }
            }
            ck_assert_uint_eq(out[nb], 0xa5);
        }
    }
}
END_TEST

START_TEST(test_packed_bytes)
{
    ck_assert_uint_eq(mp__packed_bytes(0, 4), 0);
    ck_assert_uint_eq(mp__packed_bytes(3, 4), 2);
    ck_assert_uint_eq(mp__packed_bytes(5, 3), 2); /* 15 bits */
    ck_assert_uint_eq(mp__packed_bytes(8, 3), 3);
    ck_assert_uint_eq(mp__packed_bytes(9, 3), 4);
    ck_assert_uint_eq(mp__packed_bytes(1000, 1), 125);
    ck_assert_uint_eq(mp__packed_bytes(1001, 7), 876); /* 7007 bits */
    /* no overflow for any n: SIZE_MAX = 8k + 7 codes */
    ck_assert_uint_eq(mp__packed_bytes(SIZE_MAX, 8), SIZE_MAX);
    ck_assert_uint_eq(mp__packed_bytes(SIZE_MAX, 1), SIZE_MAX / 8 + 1);
    ck_assert_uint_eq(mp__packed_bytes(SIZE_MAX, 4), SIZE_MAX / 2 + 1);
    ck_assert_uint_eq(mp__packed_bytes(10, 0), 0);
    ck_assert_uint_eq(mp__packed_bytes(10, 9), 0);
    ck_assert_uint_eq(mp__packed_bytes(10, -1), 0);
}
END_TEST

/* mp__pack_bits / mp__unpack_bits (the table in use) round-trip a million 3- and 4-bit codes. */
START_TEST(test_pack_round_trip_large)
{
    size_t n = 1000003;
    uint8_t *c = malloc(n), *p = malloc(n), *back = malloc(n);
    ck_assert(c && p && back);
    rng_state = 3;
    for (int b = 3; b <= 4; b++) {
        for (size_t i = 0; i < n; i++) {
            c[i] = (uint8_t)(rng_next() & ((1u << b) - 1u));
        }
        mp__pack_bits(c, n, b, p);
        mp__unpack_bits(p, n, b, back);
        ck_assert_mem_eq(c, back, n);
        ck_assert_uint_eq(mp__packed_bytes(n, b), b == 3 ? 375002 : 500002);
    }
    free(c);
    free(p);
    free(back);
}
END_TEST

/* ---- dispatch ------------------------------------------------------------------------------ */

/* The qbits ISA the first use in a fresh process picks with MODELPRESS_ISA = value (unset if
 * NULL); the child also checks it is the base kernels' ISA and the same table each time. */
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
        const mp_qbits_table_t *t = mp__kern_qbits();
        int ok = t == mp__kern_qbits() && t == mp__kern_qbits_for(t->isa) &&
                 strcmp(t->isa, mp_kern_isa()) == 0;
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
    const char *best = mp__kern_for("avx512") ? "avx512" : mp__kern_for("avx2") ? "avx2" : "ref";
    ck_assert_str_eq(forced_isa(NULL, buf, sizeof buf), best);
    ck_assert_str_eq(forced_isa("ref", buf, sizeof buf), "ref");
    ck_assert_str_eq(forced_isa("avx2", buf, sizeof buf), mp__kern_for("avx2") ? "avx2" : best);
    ck_assert_str_eq(forced_isa("avx512", buf, sizeof buf),
                     mp__kern_for("avx512") ? "avx512" : best);
    ck_assert_str_eq(forced_isa("neon", buf, sizeof buf), best);
}
END_TEST

START_TEST(test_dispatch_for)
{
    const mp_qbits_table_t *t = mp__kern_qbits_for("ref");
    ck_assert_ptr_nonnull(t);
    ck_assert_str_eq(t->isa, "ref");
    ck_assert(t->minmax_f32 == mp_kern_minmax_f32_ref &&
              t->minmax_groups_f32 == mp_kern_minmax_groups_f32_ref &&
              t->quant_sym_f32 == mp_kern_quant_sym_f32_ref &&
              t->quant_asym_f32 == mp_kern_quant_asym_f32_ref &&
              t->dequant_sym_f32 == mp_kern_dequant_i8_f32_ref &&
              t->dequant_asym_f32 == mp_kern_dequant_asym_f32_ref &&
              t->pack_bits == mp_kern_pack_bits_ref && t->unpack_bits == mp_kern_unpack_bits_ref);
    ck_assert_ptr_null(mp__kern_qbits_for("AVX2"));
    ck_assert_ptr_null(mp__kern_qbits_for("neon"));
    ck_assert_ptr_null(mp__kern_qbits_for(NULL));
    /* a variant is offered exactly when the base kernels of that ISA are */
    ck_assert((mp__kern_qbits_for("avx2") != NULL) == (mp__kern_for("avx2") != NULL));
    ck_assert((mp__kern_qbits_for("avx512") != NULL) == (mp__kern_for("avx512") != NULL));
    if (mp__kern_for("avx512")) {
        ck_assert(mp__kern_qbits_for("avx512")->dequant_sym_f32 == mp_kern_dequant_i8_f32_avx512);
    }
}
END_TEST

static Suite *qbits_suite(void)
{
    Suite *s = suite_create("qbits");

    TCase *tc = tcase_create("spec");
    tcase_set_timeout(tc, 120); /* slow under sanitizers on a shared machine */
    tcase_add_loop_test(tc, test_spec_minmax, 0, n_all);
    tcase_add_loop_test(tc, test_spec_minmax_groups, 0, n_all);
    tcase_add_loop_test(tc, test_spec_quant_sym, 0, n_all);
    tcase_add_loop_test(tc, test_spec_quant_asym, 0, n_all);
    tcase_add_loop_test(tc, test_spec_dequant, 0, n_all);
    tcase_add_loop_test(tc, test_spec_layout_figures, 0, n_all);
    tcase_add_loop_test(tc, test_spec_layout_bitwise, 0, n_all);
    tcase_add_test(tc, test_packed_bytes);
    tcase_add_test(tc, test_pack_round_trip_large);
    suite_add_tcase(s, tc);

    tc = tcase_create("variants");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 900);
    tcase_add_loop_test(tc, test_matches_ref, 0, n_variants * N_OPS);
    suite_add_tcase(s, tc);

    tc = tcase_create("dispatch");
    tcase_add_test(tc, test_dispatch_forced);
    tcase_add_test(tc, test_dispatch_for);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    /* mp__kern_qbits_for() does not make the once-only choice, so the dispatch tests' children
     * still choose afresh. */
    ref_table = mp__kern_qbits_for("ref");
    all_tables[n_all++] = ref_table;
    const char *simd[] = {"avx2", "avx512"};
    for (int i = 0; i < 2; i++) {
        const mp_qbits_table_t *t = mp__kern_qbits_for(simd[i]);
        if (t) {
            variants[n_variants++] = t;
            all_tables[n_all++] = t;
        } else {
            fprintf(stderr, "qbits: this CPU lacks %s; its variant is not tested\n", simd[i]);
        }
    }
    SRunner *sr = srunner_create(qbits_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
