/* check_quant.c — symmetric int8 quantization keeps its error bound and its scales exact.
 *
 * For random matrices of several shapes (1 row, 1 column, odd sizes; rows of very different
 * magnitudes, rows of zeros) per channel and per tensor:
 * - scale == absmax / 127 in float, per row or over the tensor; 1 for a row of zeros;
 * - every q is in [-127, 127] and the element of largest magnitude maps to ±127 (its sign);
 * - every |w - q * scale| <= scale/2 + (2u + u^2) |w|, u = 2^-24, computed exactly in double.
 *   The second term is the rounding of w * fl(1/scale) (two float roundings); next to a tie
 *   it can send q to the far integer, so the bound is scale/2 * (1 + 3.1e-5) at |q| = 127,
 *   and a tighter one such as scale/2 * (1 + 1e-6) does not hold (test_bound_is_tight);
 * - dequantization is (float)q * scale bit for bit;
 * - the error figures agree with a long double computation to 1e-12 (relative) and
 *   1e-9 dB, and take their documented values on exact, all-zero and signal-free inputs.
 * Non-finite weights are refused with the tensor's name and the element's index.
 */
#include "core/methods_int.h"

#include <check.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state = 11;

static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static double rng_unit(void) /* [0, 1) */
{
    return (double)(rng_next() >> 11) * 0x1p-53;
}

#define U 0x1p-24 /* unit roundoff of float */

typedef struct {
    size_t rows, cols;
} shape_t;

static const shape_t shapes[] = {{1, 1},    {1, 1000}, {1000, 1}, {7, 13},
                                 {64, 257}, {3, 4099}, {129, 65}, {2, 0}};
#define N_SHAPES (sizeof(shapes) / sizeof(shapes[0]))

/* Each row: Gaussian-ish values times 10^[-3, 3); every fifth row (from the third) zeros. */
static void fill_matrix(float *w, size_t rows, size_t cols)
{
    for (size_t r = 0; r < rows; r++) {
        double mag = pow(10.0, 6.0 * rng_unit() - 3.0);
        int zero_row = r % 5 == 2;
        for (size_t c = 0; c < cols; c++) {
            double g = rng_unit() + rng_unit() + rng_unit() - 1.5;
            w[r * cols + c] = zero_row ? 0.0f : (float)(g * mag);
        }
    }
}

/* max |w[i]| and the first index holding it */
static float absmax_at(const float *w, size_t n, size_t *at)
{
    float m = 0.0f;
    *at = 0;
    for (size_t i = 0; i < n; i++) {
        if (fabsf(w[i]) > m) {
            m = fabsf(w[i]);
            *at = i;
        }
    }
    return m;
}

/* Checks one block (a row, or the whole tensor) quantized with scale s; returns the largest
 * |w - q s| / (s/2) seen. */
static double check_block(const float *w, const int8_t *q, size_t n, float s, const char *what)
{
    size_t at;
    float m = absmax_at(w, n, &at);
    double worst = 0.0;
    if (m == 0.0f) {
        ck_assert_msg(s == 1.0f, "%s: zero block has scale %a, want 1", what, (double)s);
    } else {
        ck_assert_msg(s == m / 127.0f, "%s: scale %a, want absmax/127 = %a", what, (double)s,
                      (double)(m / 127.0f));
        ck_assert_int_eq(q[at], w[at] > 0 ? 127 : -127);
    }
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)w[i] - (double)q[i] * (double)s); /* exact in double */
        double bound = (double)s / 2 + (2 * U + U * U) * fabs((double)w[i]);
        if (q[i] < -127 || e > bound) {
            ck_abort_msg("%s: element %zu: w=%a q=%d scale=%a: |w - q scale| = %a > %a", what, i,
                         (double)w[i], q[i], (double)s, e, bound);
        }
        worst = fmax(worst, e / ((double)s / 2));
    }
    return worst;
}

/* Quantizes, checks, dequantizes and checks again one shape; returns the worst error ratio. */
static double run_shape(shape_t sh, int per_channel)
{
    size_t n = sh.rows * sh.cols, alloc = n ? n : 1;
    float *w = malloc(alloc * sizeof(float)), *w2 = malloc(alloc * sizeof(float));
    float *scales = malloc(sh.rows * sizeof(float));
    int8_t *q = malloc(alloc);
    char what[96];
    double worst = 0.0;
    ck_assert(w && w2 && scales && q);

    fill_matrix(w, sh.rows, sh.cols);
    mp_errctx_t err = {0};
    ck_assert_int_eq(
        mp__quant_i8_sym("layer.weight", w, sh.rows, sh.cols, per_channel, q, scales, &err), 0);
    if (per_channel) {
        for (size_t r = 0; r < sh.rows; r++) {
            snprintf(what, sizeof what, "%zux%zu per channel, row %zu", sh.rows, sh.cols, r);
            worst = fmax(worst,
                         check_block(w + r * sh.cols, q + r * sh.cols, sh.cols, scales[r], what));
        }
    } else {
        snprintf(what, sizeof what, "%zux%zu per tensor", sh.rows, sh.cols);
        worst = check_block(w, q, n, scales[0], what);
    }

    mp__dequant_i8_sym(q, sh.rows, sh.cols, per_channel, scales, w2);
    for (size_t i = 0; i < n; i++) {
        float want = (float)q[i] * scales[per_channel ? i / sh.cols : 0];
        if (memcmp(&w2[i], &want, sizeof want) != 0) {
            ck_abort_msg("%zux%zu: dequantized element %zu is %a, want %a", sh.rows, sh.cols, i,
                         (double)w2[i], (double)want);
        }
    }
    free(w);
    free(w2);
    free(scales);
    free(q);
    return worst;
}

START_TEST(test_shapes)
{
    int per_channel = _i;
    double worst = 0.0;
    for (size_t i = 0; i < N_SHAPES; i++) {
        worst = fmax(worst, run_shape(shapes[i], per_channel));
    }
    /* Over ~400,000 random weights the worst error reaches 0.999 of scale/2 and stays below
     * the proven scale/2 * (1 + 2 (2U + U^2) * 127 / (1 - U)), since |w|/scale <= 127/(1-U). */
    ck_assert_double_ge(worst, 0.999);
    ck_assert_double_le(worst, 1.0 + 2 * (2 * U + U * U) * 127 / (1 - U));
}
END_TEST

/* Hand-checked figures: ties to even, clamping, the absmax element, a zero row. */
START_TEST(test_figures)
{
    const float w[3][4] = {
        {127.0f, 2.5f, -3.5f, 0.5f}, {0.0f, -0.0f, 0.0f, 0.0f}, {-254.0f, 1.0f, 3.0f, -127.0f}};
    int8_t q[12];
    float s[3];
    ck_assert_int_eq(mp__quant_i8_sym("t", &w[0][0], 3, 4, 1, q, s, NULL), 0);
    ck_assert_float_eq(s[0], 1.0f);
    ck_assert_float_eq(s[1], 1.0f);
    ck_assert_float_eq(s[2], 2.0f);
    const int8_t want[12] = {127, 2, -4, 0, 0, 0, 0, 0, -127, 0, 2, -64};
    ck_assert_mem_eq(q, want, 12);

    /* per tensor: scale 254/127 = 2 for all; 2.5/2 = 1.25 -> 1, -3.5/2 = -1.75 -> -2 */
    ck_assert_int_eq(mp__quant_i8_sym("t", &w[0][0], 3, 4, 0, q, s, NULL), 0);
    ck_assert_float_eq(s[0], 2.0f);
    const int8_t want_t[12] = {64, 1, -2, 0, 0, 0, 0, 0, -127, 0, 2, -64};
    ck_assert_mem_eq(q, want_t, 12);

    float back[12];
    mp__dequant_i8_sym(q, 3, 4, 0, s, back);
    ck_assert_float_eq(back[0], 128.0f);
    ck_assert_float_eq(back[8], -254.0f);
}
END_TEST

/* A weight just below a tie: w / scale = 63.4999956, but w * fl(1/scale) rounds up to 63.5,
 * which goes to the even 64. The error is scale/2 * (1 + 8.7e-6): past a 1e-6 margin, within
 * the test's bound. (Found by scanning the floats next to (k + 1/2) * scale for absmax 1000.) */
START_TEST(test_bound_is_tight)
{
    const float row[2] = {1000.0f, 0x1.f3fffep+8f};
    int8_t q[2];
    float s;
    ck_assert_int_eq(mp__quant_i8_sym("t", row, 1, 2, 1, q, &s, NULL), 0);
    ck_assert_float_eq(s, 1000.0f / 127.0f);
    ck_assert_int_eq(q[0], 127);
    ck_assert_int_eq(q[1], 64);
    ck_assert_double_lt((double)row[1] / s, 63.5);
    double e = fabs((double)row[1] - 64.0 * (double)s);
    ck_assert_double_gt(e, (double)s / 2 * (1 + 8e-6));
    ck_assert_double_le(e, (double)s / 2 + (2 * U + U * U) * (double)row[1]);
}
END_TEST

/* Rows so small that absmax/127 would be subnormal are treated as zero rows. */
START_TEST(test_tiny_rows)
{
    const float w[2][3] = {{1e-37f, -5e-38f, 0x1p-149f}, {1e-30f, -1e-30f, 0.0f}};
    int8_t q[6];
    float s[2];
    ck_assert_int_eq(mp__quant_i8_sym("t", &w[0][0], 2, 3, 1, q, s, NULL), 0);
    const int8_t want[6] = {0, 0, 0, 127, -127, 0};
    ck_assert_mem_eq(q, want, 6);
    ck_assert_float_eq(s[0], 1.0f);
    ck_assert_float_eq(s[1], 1e-30f / 127.0f);
    ck_assert(s[1] >= FLT_MIN);
}
END_TEST

START_TEST(test_nonfinite_refused)
{
    float w[4 * 7];
    int8_t q[28];
    float s[4];
    for (int i = 0; i < 28; i++) {
        w[i] = (float)i - 10.0f;
    }
    w[19] = NAN; /* row 2, column 5 */
    mp_errctx_t err = {0};
    ck_assert_int_eq(mp__quant_i8_sym("enc.0.weight", w, 4, 7, 1, q, s, &err), MP_EINVAL);
    ck_assert_int_eq(err.code, MP_EINVAL);
    ck_assert_str_eq(err.msg, "tensor 'enc.0.weight': element 19 (row 2, column 5) is NaN; only "
                              "finite values can be quantized");
    w[19] = 1.0f;
    w[27] = -INFINITY;
    ck_assert_int_eq(mp__quant_i8_sym("enc.0.weight", w, 1, 28, 0, q, s, &err), MP_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "element 27 (row 0, column 27) is infinite"));
    ck_assert_int_eq(mp__quant_i8_sym(NULL, w, 1, 28, 0, q, s, NULL), MP_EINVAL);
}
END_TEST

START_TEST(test_bad_sizes)
{
    float s[1];
    mp_errctx_t err = {0};
    ck_assert_int_eq(mp__quant_i8_sym("big", NULL, SIZE_MAX / 2, 3, 1, NULL, s, &err), MP_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "tensor 'big'"));
    /* zero elements: nothing to read, the tensor scale is that of a zero block */
    ck_assert_int_eq(mp__quant_i8_sym("empty", NULL, 0, 5, 0, NULL, s, &err), 0);
    ck_assert_float_eq(s[0], 1.0f);
}
END_TEST

/* ---- error figures ------------------------------------------------------------------------- */

START_TEST(test_error_stats_figures)
{
    const float w[2] = {3.0f, 4.0f}, zero[2] = {0.0f, 0.0f}, one[2] = {1.0f, 0.0f};
    double rel = -1, sqnr = -1;
    mp__error_stats(w, w, 2, &rel, &sqnr);
    ck_assert_double_eq(rel, 0.0);
    ck_assert(isinf(sqnr) && sqnr > 0);
    mp__error_stats(w, zero, 2, &rel, &sqnr);
    ck_assert_double_eq(rel, 1.0);
    ck_assert_double_eq(sqnr, 0.0);
    /* ||(3,4) - (0,4)|| / ||(3,4)|| = 3/5; SQNR = 10 log10(25/9) */
    const float w2[2] = {0.0f, 4.0f};
    mp__error_stats(w, w2, 2, &rel, &sqnr);
    ck_assert_double_eq_tol(rel, 0.6, 1e-15);
    ck_assert_double_eq_tol(sqnr, 10.0 * log10(25.0 / 9.0), 1e-12);
    mp__error_stats(zero, zero, 2, &rel, &sqnr);
    ck_assert_double_eq(rel, 0.0);
    ck_assert(isinf(sqnr) && sqnr > 0);
    mp__error_stats(zero, one, 2, &rel, &sqnr);
    ck_assert(isinf(rel) && rel > 0);
    ck_assert(isinf(sqnr) && sqnr < 0);
    mp__error_stats(w, w, 0, NULL, NULL); /* both outputs optional */
}
END_TEST

START_TEST(test_error_stats_random)
{
    size_t n = 100003;
    float *w = malloc(n * sizeof(float)), *w2 = malloc(n * sizeof(float));
    ck_assert(w && w2);
    for (size_t i = 0; i < n; i++) {
        w[i] = (float)(rng_unit() * 2 - 1);
        w2[i] = w[i] + (float)((rng_unit() - 0.5) * 1e-3);
    }
    long double sig = 0, noise = 0;
    for (size_t i = 0; i < n; i++) {
        long double d = (long double)w[i] - w2[i];
        sig += (long double)w[i] * w[i];
        noise += d * d;
    }
    double rel, sqnr;
    mp__error_stats(w, w2, n, &rel, &sqnr);
    ck_assert_double_eq_tol(rel, (double)sqrtl(noise / sig), 1e-12 * (double)sqrtl(noise / sig));
    ck_assert_double_eq_tol(sqnr, (double)(10 * log10l(sig / noise)), 1e-9);
    /* uniform noise of width 1e-3 on uniform(-1, 1): SQNR near 10 log10((1/3) / (1e-6/12)) */
    ck_assert_double_eq_tol(sqnr, 66.02, 0.1);
    free(w);
    free(w2);
}
END_TEST

/* ---- any width: mp__quant_affine ----------------------------------------------------------- */

/* Rows of six kinds, by r % 6: mixed signs; all positive; all negative; zeros; mixed with every
 * seventh element exactly 0; so small (1e-39) that every scale would be subnormal. Each row has
 * its own magnitude 10^[-3, 3). */
static void fill_affine(float *w, size_t rows, size_t cols)
{
    for (size_t r = 0; r < rows; r++) {
        double mag = pow(10.0, 6.0 * rng_unit() - 3.0);
        for (size_t c = 0; c < cols; c++) {
            double g = rng_unit() + rng_unit() + rng_unit() - 1.5;
            double v = g * mag;
            switch (r % 6) {
            case 1:
                v = (g + 1.6) * mag;
                break;
            case 2:
                v = (g - 1.6) * mag;
                break;
            case 3:
                v = 0.0;
                break;
            case 4:
                v = c % 7 == 3 ? 0.0 : v;
                break;
            case 5:
                v = g * 1e-39;
                break;
            }
            w[r * cols + c] = (float)v;
        }
    }
}

/* Figures of one run of checks (a bits/scheme/granularity combination). */
typedef struct {
    double worst;     /* the largest |w - deq| / (scale/2) over groups with a real scale */
    size_t near_ties; /* groups whose ends were excused from the end codes (see check_group) */
    size_t groups;
} affine_stats_t;

/* Checks one group of m weights against its codes (int8 or uint8 in q), scale and zero point,
 * everything recomputed here from the declaration in methods_int.h:
 * - symmetric: scale == absmax / qmax in float (1 when that is below FLT_MIN), codes in
 *   [-qmax, qmax], the element of largest magnitude at ±qmax;
 * - asymmetric: l = min(min, 0), h = max(max, 0), scale == (float)((h - l) / Q) computed in
 *   double (1 and zero point 0 below FLT_MIN), zero point == clamp(rint(-l / scale), 0, Q),
 *   codes in [0, Q], every exact 0 at the zero point and dequantized to exactly 0; where
 *   min < 0 the minimum has code 0 and where max > 0 the maximum has code Q — unless -l/scale
 *   lies within 1e-3 of a half-integer: there the zero point's tie goes to even while the end's
 *   own rounding may go the other way, and the end lands one code inside (test_affine_tie
 *   shows one); the error bound holds all the same;
 * - every |w - (code - zp) scale| <= scale/2 + (2u + u^2)|w| (the rounding of w * fl(1/scale),
 *   as in the int8 test) + 2^-150 |w| scale (when scale > 2^126 its reciprocal is subnormal and
 *   only 2^-150 absolute accurate; 0 in practice) + 3 u Q scale in asymmetric mode (a code
 *   clamped at an end: the scale's own rounding and that of -l/scale, each at most u Q scale),
 *   computed exactly in double. */
static void check_group(const float *w, const void *q, size_t m, int bits, int asym, float s,
                        int32_t zp, affine_stats_t *st, const char *what)
{
    const int8_t *qs = q;
    const uint8_t *qa = q;
    size_t amin = 0, amax = 0;
    for (size_t i = 1; i < m; i++) {
        amin = w[i] < w[amin] ? i : amin;
        amax = w[i] > w[amax] ? i : amax;
    }
    float lo = w[amin], hi = w[amax];
    int qmax = asym ? (1 << bits) - 1 : (1 << (bits - 1)) - 1;
    int real_scale, excused = 0;
    if (!asym) {
        float absmax = fmaxf(-lo, hi), want = absmax / (float)qmax;
        real_scale = want >= FLT_MIN;
        ck_assert_msg(s == (real_scale ? want : 1.0f), "%s: scale %a, want %a", what, (double)s,
                      (double)want);
        if (real_scale) {
            size_t at = -lo > hi ? amin : amax;
            ck_assert_msg(qs[at] == (w[at] > 0 ? qmax : -qmax), "%s: absmax element has code %d",
                          what, qs[at]);
        }
    } else {
        float l = fminf(lo, 0.0f), h = fmaxf(hi, 0.0f);
        float want = (float)(((double)h - (double)l) / qmax);
        real_scale = want >= FLT_MIN;
        ck_assert_msg(s == (real_scale ? want : 1.0f), "%s: scale %a, want %a", what, (double)s,
                      (double)want);
        float z = real_scale ? -l / s : 0.0f;
        float zr = nearbyintf(z);
        ck_assert_int_eq(zp, zr < 0 ? 0 : zr > qmax ? qmax : (int32_t)zr);
        ck_assert(zp >= 0 && zp <= qmax);
        excused = fabsf(z - floorf(z) - 0.5f) <= 1e-3f;
        if (real_scale && lo < 0.0f) {
            ck_assert_msg(excused ? qa[amin] <= 1 : qa[amin] == 0, "%s: minimum has code %d", what,
                          qa[amin]);
        }
        if (real_scale && hi > 0.0f) {
            ck_assert_msg(excused ? qa[amax] >= qmax - 1 : qa[amax] == qmax,
                          "%s: maximum has code %d of %d", what, qa[amax], qmax);
        }
        st->near_ties += real_scale && excused;
    }
    for (size_t i = 0; i < m; i++) {
        int code = asym ? qa[i] : qs[i];
        int lo_code = asym ? 0 : -qmax;
        double e = fabs((double)w[i] - (double)(code - zp) * (double)s); /* exact in double */
        double bound = (double)s / 2 + (2 * U + U * U) * fabs((double)w[i]) +
                       0x1p-150 * fabs((double)w[i]) * (double)s +
                       (asym ? 3 * U * qmax * (double)s : 0.0);
        if (code < lo_code || code > qmax || e > bound || (w[i] == 0.0f && code != zp)) {
            ck_abort_msg("%s: element %zu: w=%a code=%d zero point %d scale=%a: error %a > %a",
                         what, i, (double)w[i], code, zp, (double)s, e, bound);
        }
        if (real_scale) {
            st->worst = fmax(st->worst, e / ((double)s / 2));
        }
    }
    st->groups++;
}

/* Granularities: per tensor (1 x n, group n), per channel (group cols), groups of 32, 128 and
 * 45 (which divides none of the widths below). */
enum { G_TENSOR, G_CHANNEL, G_32, G_128, G_45, N_GRAN };
static const char *const gran_names[N_GRAN] = {"tensor", "channel", "group 32", "group 128",
                                               "group 45"};

static const shape_t affine_shapes[] = {{1, 1},    {7, 300}, {64, 257}, {3, 4099},
                                        {129, 65}, {2, 0},   {12, 1000}};
#define N_AFFINE_SHAPES (sizeof(affine_shapes) / sizeof(affine_shapes[0]))

/* Quantizes one shape at one setting, checks every group and the dequantization. */
static void run_affine(shape_t sh, int bits, int asym, int gran, affine_stats_t *st)
{
    size_t n = sh.rows * sh.cols, alloc = n ? n : 1;
    size_t rows = gran == G_TENSOR ? 1 : sh.rows, cols = gran == G_TENSOR ? n : sh.cols;
    size_t group = gran == G_TENSOR    ? n
                   : gran == G_CHANNEL ? sh.cols
                   : gran == G_32      ? 32
                   : gran == G_128     ? 128
                                       : 45;
    group = group ? group : 1; /* an empty tensor still needs a valid group size */
    size_t per_row = (cols + group - 1) / group, ng = rows * per_row;
    float *w = malloc(alloc * sizeof(float)), *w2 = malloc(alloc * sizeof(float));
    float *scales = malloc((ng + 1) * sizeof(float));
    int32_t *zps = malloc((ng + 1) * sizeof(int32_t));
    uint8_t *q = malloc(alloc);
    char what[128];
    ck_assert(w && w2 && scales && zps && q);

    fill_affine(w, sh.rows, sh.cols);
    mp_errctx_t err = {0};
    int rc = mp__quant_affine("layer.weight", w, rows, cols, group, bits, asym, q, scales,
                              asym ? zps : NULL, &err);
    ck_assert_msg(rc == 0, "%s", err.msg);
    for (size_t g = 0; g < ng; g++) {
        size_t r = g / per_row, c0 = g % per_row * group;
        size_t m = cols - c0 < group ? cols - c0 : group;
        snprintf(what, sizeof what, "%zux%zu %d bits %s per %s, group %zu (row %zu)", sh.rows,
                 sh.cols, bits, asym ? "asymmetric" : "symmetric", gran_names[gran], g, r);
        check_group(w + r * cols + c0, q + r * cols + c0, m, bits, asym, scales[g],
                    asym ? zps[g] : 0, st, what);
    }

    mp__dequant_affine(q, rows, cols, group, bits, asym, scales, asym ? zps : NULL, w2);
    for (size_t i = 0; i < n; i++) {
        size_t g = i / cols * per_row + i % cols / group;
        int code = asym ? q[i] : (int8_t)q[i];
        float want = (float)(code - (asym ? zps[g] : 0)) * scales[g];
        if (memcmp(&w2[i], &want, sizeof want) != 0) {
            ck_abort_msg("%zux%zu %d bits: dequantized element %zu is %a, want %a", sh.rows,
                         sh.cols, bits, i, (double)w2[i], (double)want);
        }
    }
    free(w);
    free(w2);
    free(scales);
    free(zps);
    free(q);
}

/* _i = (bits - 2) * 2 + asymmetric: every width 2..8, both schemes, every granularity. */
START_TEST(test_affine_bounds)
{
    int bits = 2 + _i / 2, asym = _i % 2;
    affine_stats_t st = {0};
    for (int gran = 0; gran < N_GRAN; gran++) {
        for (size_t k = 0; k < N_AFFINE_SHAPES; k++) {
            run_affine(affine_shapes[k], bits, asym, gran, &st);
        }
    }
    /* Groups per combination: 6 tensors + 216 rows + 1805 of 32 + 538 of 128 + 1244 of 45.
     * The error reaches 0.99 of scale/2 (so the bound is the real one, not a loose one), and
     * end codes were excused in at most one group in 200 (the most, 7, at 2 bits). */
    ck_assert_uint_eq(st.groups, 3809);
    ck_assert_double_ge(st.worst, 0.99);
    ck_assert_uint_le(st.near_ties * 200, st.groups);
}
END_TEST

/* At 8 bits symmetric, per channel and per tensor, the codes and scales are mp__quant_i8_sym's
 * bit for bit: one rule, two entry points. */
START_TEST(test_affine_matches_int8)
{
    for (size_t k = 0; k < N_SHAPES; k++) {
        shape_t sh = shapes[k];
        size_t n = sh.rows * sh.cols, alloc = n ? n : 1;
        float *w = malloc(alloc * sizeof(float)), *s1 = malloc((sh.rows + 1) * sizeof(float));
        float *s2 = malloc((sh.rows + 1) * sizeof(float));
        int8_t *q1 = malloc(alloc), *q2 = malloc(alloc);
        ck_assert(w && s1 && s2 && q1 && q2);
        fill_matrix(w, sh.rows, sh.cols);
        ck_assert_int_eq(mp__quant_i8_sym("t", w, sh.rows, sh.cols, 1, q1, s1, NULL), 0);
        ck_assert_int_eq(mp__quant_affine("t", w, sh.rows, sh.cols, sh.cols ? sh.cols : 1, 8, 0, q2,
                                          s2, NULL, NULL),
                         0);
        ck_assert_mem_eq(q1, q2, n);
        ck_assert_mem_eq(s1, s2, sh.cols ? sh.rows * sizeof(float) : 0);
        ck_assert_int_eq(mp__quant_i8_sym("t", w, sh.rows, sh.cols, 0, q1, s1, NULL), 0);
        ck_assert_int_eq(mp__quant_affine("t", w, 1, n, n ? n : 1, 8, 0, q2, s2, NULL, NULL), 0);
        ck_assert_mem_eq(q1, q2, n);
        if (n) {
            ck_assert_float_eq(s1[0], s2[0]);
        }
        free(w);
        free(s1);
        free(s2);
        free(q1);
        free(q2);
    }
}
END_TEST

/* Hand-checked figures: 4 and 2 bits symmetric, 8 bits asymmetric in groups of 4 (a shorter
 * last group, all-positive groups whose range starts at 0). */
START_TEST(test_affine_figures)
{
    const float a[5] = {7.0f, -3.5f, 2.5f, 0.5f, -7.0f};
    int8_t q[10];
    uint8_t u[10];
    float s[4], back[10];
    int32_t z[4];
    ck_assert_int_eq(mp__quant_affine("t", a, 1, 5, 5, 4, 0, q, s, NULL, NULL), 0);
    ck_assert_float_eq(s[0], 1.0f); /* 7 / 7 */
    const int8_t want_a[5] = {7, -4, 2, 0, -7};
    ck_assert_mem_eq(q, want_a, 5);

    /* 2 bits: qmax 1, scale 3; 1.6 / 3 = 0.53 -> 1, -1.4 / 3 = -0.47 -> 0 */
    const float b[4] = {3.0f, -1.4f, 1.6f, 0.0f};
    ck_assert_int_eq(mp__quant_affine("t", b, 1, 4, 4, 2, 0, q, s, NULL, NULL), 0);
    ck_assert_float_eq(s[0], 3.0f);
    const int8_t want_b[4] = {1, 0, 1, 0};
    ck_assert_mem_eq(q, want_b, 4);

    /* 0..9 in groups of 4: ranges [0, 3], [0, 7], [0, 9], zero points 0 */
    float c[10];
    for (int i = 0; i < 10; i++) {
        c[i] = (float)i;
    }
    ck_assert_int_eq(mp__quant_affine("t", c, 1, 10, 4, 8, 1, u, s, z, NULL), 0);
    ck_assert_float_eq(s[0], (float)(3.0 / 255));
    ck_assert_float_eq(s[1], (float)(7.0 / 255));
    ck_assert_float_eq(s[2], (float)(9.0 / 255));
    ck_assert(z[0] == 0 && z[1] == 0 && z[2] == 0);
    /* 4 * 255 / 7 = 145.7, 5 * 255 / 7 = 182.1, 6 * 255 / 7 = 218.6, 8 * 255 / 9 = 226.7 */
    const uint8_t want_c[10] = {0, 85, 170, 255, 146, 182, 219, 255, 227, 255};
    ck_assert_mem_eq(u, want_c, 10);
    mp__dequant_affine(u, 1, 10, 4, 8, 1, s, z, back);
    ck_assert_float_eq(back[3], 255.0f * s[0]);
    ck_assert_float_eq(back[9], 255.0f * s[2]);

    /* Two rows, groups of 3 along each: [-1, 2, 0 | 5] and [-4, -2, -1 | -8]; 3 bits, Q = 7.
     * Row 0 group 0: l = -1, h = 2, scale 3/7, zero point rint(7/3) = 2;
     * row 1 group 0 (all negative): l = -4, h = 0, scale 4/7, zero point 7. */
    const float d[8] = {-1.0f, 2.0f, 0.0f, 5.0f, -4.0f, -2.2f, -1.0f, -8.0f};
    ck_assert_int_eq(mp__quant_affine("t", d, 2, 4, 3, 3, 1, u, s, z, NULL), 0);
    ck_assert_float_eq(s[0], (float)(3.0 / 7));
    ck_assert_int_eq(z[0], 2);
    ck_assert_float_eq(s[1], (float)(5.0 / 7));
    ck_assert_int_eq(z[1], 0);
    ck_assert_float_eq(s[2], (float)(4.0 / 7));
    ck_assert_int_eq(z[2], 7);
    ck_assert_float_eq(s[3], (float)(8.0 / 7));
    ck_assert_int_eq(z[3], 7);
    /* -1 * 7/3 = -2.33 -> -2 + 2 = 0; 2 * 7/3 = 4.67 -> 5 + 2 = 7; 5 * 7/5 = 7;
     * -2.2 * 7/4 = -3.85 -> -4 + 7 = 3; -1 * 7/4 = -1.75 -> -2 + 7 = 5; -8 * 7/8 = -7 -> 0 */
    const uint8_t want_d[8] = {0, 7, 2, 7, 0, 3, 5, 0};
    ck_assert_mem_eq(u, want_d, 8);
}
END_TEST

/* -l / scale = 2.5 exactly: the zero point rounds to even (2), and so does the maximum's own
 * 4.5 (to 4), so the maximum gets code 6 of 7 — one inside the end, at exactly scale/2 from
 * its value. This is the case check_group excuses; torch computes it the same way. */
START_TEST(test_affine_tie)
{
    const float w[4] = {-2.5f, 4.5f, 0.0f, 1.0f};
    uint8_t q[4];
    float s, back[4];
    int32_t z;
    ck_assert_int_eq(mp__quant_affine("t", w, 1, 4, 4, 3, 1, q, &s, &z, NULL), 0);
    ck_assert_float_eq(s, 1.0f);
    ck_assert_int_eq(z, 2);
    const uint8_t want[4] = {0, 6, 2, 3};
    ck_assert_mem_eq(q, want, 4);
    mp__dequant_affine(q, 1, 4, 4, 3, 1, &s, &z, back);
    ck_assert_float_eq(back[1], 4.0f);
    ck_assert_float_eq(back[2], 0.0f);
}
END_TEST

/* Groups whose range is so small that the scale would be subnormal get scale 1, zero point 0
 * and codes 0; empty tensors need no buffers at all. */
START_TEST(test_affine_degenerate)
{
    const float w[6] = {1e-39f, -2e-39f, 0.0f, 3.0f, -3.0f, 0.0f};
    uint8_t q[6];
    float s[2];
    int32_t z[2];
    ck_assert_int_eq(mp__quant_affine("t", w, 2, 3, 3, 8, 1, q, s, z, NULL), 0);
    ck_assert_float_eq(s[0], 1.0f);
    ck_assert_int_eq(z[0], 0);
    ck_assert_float_eq(s[1], (float)(6.0 / 255));
    ck_assert_int_eq(z[1], 128); /* rint(127.5) = 128, even */
    const uint8_t want[6] = {0, 0, 0, 255, 0, 128};
    ck_assert_mem_eq(q, want, 6);
    ck_assert_int_eq(mp__quant_affine("t", w, 2, 3, 3, 4, 0, q, s, NULL, NULL), 0);
    ck_assert_float_eq(s[0], 1.0f);
    ck_assert_int_eq((int8_t)q[0], 0);
    ck_assert_int_eq((int8_t)q[1], 0);
    /* a group longer than the row is the row: per channel */
    float s2[2];
    int32_t z2[2];
    uint8_t q2[6];
    ck_assert_int_eq(mp__quant_affine("t", w, 2, 3, SIZE_MAX, 8, 1, q2, s2, z2, NULL), 0);
    ck_assert_int_eq(mp__quant_affine("t", w, 2, 3, 3, 8, 1, q, s, z, NULL), 0);
    ck_assert_mem_eq(q2, q, 6);
    ck_assert_mem_eq(s2, s, sizeof s);
    ck_assert_mem_eq(z2, z, sizeof z);
    /* empty: rows or columns 0, every buffer NULL */
    ck_assert_int_eq(mp__quant_affine("t", NULL, 0, 7, 3, 4, 1, NULL, NULL, NULL, NULL), 0);
    ck_assert_int_eq(mp__quant_affine("t", NULL, 5, 0, 3, 4, 1, NULL, NULL, NULL, NULL), 0);
    /* The widest range two floats can span: hi - lo overflows a float, the scale does not.
     * FLT_MAX / scale is 1.5 exactly, so the zero point is 2; but 1/scale is subnormal, and
     * ±FLT_MAX * (1/scale) = ±1.4999999, which rounds to ±1: codes 1 and 3, both within
     * scale/2 (plus the slack of the subnormal reciprocal) of their values. */
    const float big[2] = {-FLT_MAX, FLT_MAX};
    ck_assert_int_eq(mp__quant_affine("t", big, 1, 2, 2, 2, 1, q, s, z, NULL), 0);
    ck_assert_float_eq(s[0], (float)(2.0 * FLT_MAX / 3));
    ck_assert_int_eq(z[0], 2);
    ck_assert_int_eq(q[0], 1);
    ck_assert_int_eq(q[1], 3);
}
END_TEST

START_TEST(test_affine_refused)
{
    float w[4 * 7], s[12];
    uint8_t q[28];
    int32_t z[12];
    mp_errctx_t err = {0};
    for (int i = 0; i < 28; i++) {
        w[i] = (float)i - 10.0f;
    }
    ck_assert_int_eq(mp__quant_affine("fc.weight", w, 4, 7, 3, 9, 0, q, s, NULL, &err), MP_EINVAL);
    ck_assert_str_eq(err.msg, "tensor 'fc.weight': 9 bits; quantization takes 2 to 8 bits");
    ck_assert_int_eq(mp__quant_affine("fc.weight", w, 4, 7, 3, 1, 1, q, s, z, &err), MP_EINVAL);
    ck_assert_str_eq(err.msg, "tensor 'fc.weight': 1 bits; quantization takes 2 to 8 bits");
    ck_assert_int_eq(mp__quant_affine("fc.weight", w, 4, 7, 0, 4, 0, q, s, NULL, &err), MP_EINVAL);
    ck_assert_str_eq(err.msg, "tensor 'fc.weight': group size 0; a group holds at least one "
                              "element");
    ck_assert_int_eq(mp__quant_affine("fc.weight", w, 4, 7, 3, 4, 1, q, s, NULL, &err), MP_EINVAL);
    ck_assert_str_eq(err.msg, "tensor 'fc.weight': NULL buffer given to the quantizer");
    ck_assert_int_eq(mp__quant_affine("fc.weight", w, 4, 7, 3, 4, 0, q, NULL, NULL, &err),
                     MP_EINVAL);
    ck_assert_int_eq(mp__quant_affine("fc.weight", w, 4, 7, 3, 4, 0, NULL, s, NULL, &err),
                     MP_EINVAL);
    ck_assert_int_eq(mp__quant_affine("big", NULL, SIZE_MAX / 2, 3, 3, 4, 0, NULL, s, NULL, &err),
                     MP_EINVAL);
    ck_assert_str_eq(err.msg, "tensor 'big': 9223372036854775807 x 3 elements do not fit in "
                              "memory");
    w[19] = NAN; /* row 2, column 5 */
    ck_assert_int_eq(mp__quant_affine("fc.weight", w, 4, 7, 3, 4, 1, q, s, z, &err), MP_EINVAL);
    ck_assert_str_eq(err.msg, "tensor 'fc.weight': element 19 (row 2, column 5) is NaN; only "
                              "finite values can be quantized");
    w[19] = INFINITY;
    ck_assert_int_eq(mp__quant_affine(NULL, w, 1, 28, 28, 8, 0, q, s, NULL, &err), MP_EINVAL);
    ck_assert_str_eq(err.msg, "tensor '(unnamed)': element 19 (row 0, column 19) is infinite; "
                              "only finite values can be quantized");
}
END_TEST

/* ---- binary and ternary -------------------------------------------------------------------- */

START_TEST(test_binary_ternary_figures)
{
    const float w[3][6] = {{1.0f, -2.0f, 3.0f, -0.1f, 0.05f, 0.0f},
                           {0.0f, -0.0f, 0.0f, 0.0f, 0.0f, 0.0f},
                           {-1.0f, -1.0f, -1.0f, -1.0f, 2.0f, -0.0f}};
    uint8_t c[18];
    float a[3];
    ck_assert_int_eq(mp__quant_binary("t", &w[0][0], 3, 6, c, a, NULL), 0);
    /* mean |w|: 6.15 / 6, 0, 6 / 6; sign codes with -0.0 and 0 as +1 */
    ck_assert_float_eq(a[0], (float)(6.15 / 6));
    ck_assert_float_eq(a[1], 0.0f);
    ck_assert_float_eq(a[2], 1.0f);
    const uint8_t want_b[18] = {1, 0, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1};
    ck_assert_mem_eq(c, want_b, 18);

    ck_assert_int_eq(mp__quant_ternary("t", &w[0][0], 3, 6, c, a, NULL), 0);
    /* row 0: delta = 0.7 * 1.025 = 0.7175: 1, -2, 3 kept, alpha = 6 / 3 = 2;
     * row 1: delta 0, nothing above it, alpha 0;
     * row 2: delta = 0.7 * 1 = 0.7: every nonzero is kept, alpha = 6 / 5 */
    ck_assert_float_eq(a[0], 2.0f);
    ck_assert_float_eq(a[1], 0.0f);
    ck_assert_float_eq(a[2], (float)(6.0 / 5));
    const uint8_t want_t[18] = {2, 0, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 2, 1};
    ck_assert_mem_eq(c, want_t, 18);
    /* no columns: alpha 0 */
    ck_assert_int_eq(mp__quant_ternary("t", NULL, 2, 0, NULL, a, NULL), 0);
    ck_assert_float_eq(a[0], 0.0f);
    ck_assert_float_eq(a[1], 0.0f);
}
END_TEST

/* The figures recomputed in long double: alpha = mean |w| (binary) and the mean of |w| over
 * |w| > delta = 0.7 mean |w| (ternary), both within 1e-7 relative (the float rounding of the
 * result); codes exact except for elements within 1e-9 delta of the threshold, where the two
 * computations may disagree (none occur in this data; they would be skipped, not failed). */
START_TEST(test_binary_ternary_random)
{
    for (size_t k = 0; k < N_SHAPES; k++) {
        shape_t sh = shapes[k];
        size_t n = sh.rows * sh.cols, alloc = n ? n : 1;
        float *w = malloc(alloc * sizeof(float)), *ab = malloc(sh.rows * sizeof(float));
        float *at = malloc(sh.rows * sizeof(float));
        uint8_t *cb = malloc(alloc), *ct = malloc(alloc);
        ck_assert(w && ab && at && cb && ct);
        fill_matrix(w, sh.rows, sh.cols);
        ck_assert_int_eq(mp__quant_binary("t", w, sh.rows, sh.cols, cb, ab, NULL), 0);
        ck_assert_int_eq(mp__quant_ternary("t", w, sh.rows, sh.cols, ct, at, NULL), 0);
        for (size_t r = 0; r < sh.rows; r++) {
            const float *row = w + r * sh.cols;
            long double sum = 0, kept = 0;
            size_t n_kept = 0;
            for (size_t c = 0; c < sh.cols; c++) {
                sum += fabsl((long double)row[c]);
            }
            long double mean = sh.cols ? sum / sh.cols : 0, delta = 0.7L * mean;
            ck_assert_double_le(fabs(ab[r] - (double)mean), 1e-7 * (double)mean);
            for (size_t c = 0; c < sh.cols; c++) {
                long double v = row[c];
                ck_assert_uint_eq(cb[r * sh.cols + c], row[c] >= 0.0f);
                if (fabsl(fabsl(v) - delta) <= 1e-9L * delta && delta > 0) {
                    continue;
                }
                ck_assert_uint_eq(ct[r * sh.cols + c], v > delta ? 2 : v < -delta ? 0 : 1);
                if (fabsl(v) > delta) {
                    kept += fabsl(v);
                    n_kept++;
                }
            }
            long double alpha = n_kept ? kept / n_kept : 0;
            ck_assert_double_le(fabs(at[r] - (double)alpha), 1e-7 * (double)alpha);
            /* TWN keeps roughly the largest half or so of a bell-shaped row */
            if (sh.cols >= 1000 && mean > 0) {
                ck_assert_uint_gt(n_kept, sh.cols / 4);
                ck_assert_uint_lt(n_kept, sh.cols * 3 / 4);
            }
        }
        free(w);
        free(ab);
        free(at);
        free(cb);
        free(ct);
    }
}
END_TEST

START_TEST(test_binary_ternary_refused)
{
    float w[12];
    uint8_t c[12];
    float a[3];
    mp_errctx_t err = {0};
    for (int i = 0; i < 12; i++) {
        w[i] = (float)i;
    }
    w[7] = -INFINITY; /* row 1, column 3 */
    ck_assert_int_eq(mp__quant_binary("conv.weight", w, 3, 4, c, a, &err), MP_EINVAL);
    ck_assert_str_eq(err.msg, "tensor 'conv.weight': element 7 (row 1, column 3) is infinite; "
                              "only finite values can be quantized");
    w[7] = NAN;
    ck_assert_int_eq(mp__quant_ternary("conv.weight", w, 3, 4, c, a, &err), MP_EINVAL);
    ck_assert_str_eq(err.msg, "tensor 'conv.weight': element 7 (row 1, column 3) is NaN; only "
                              "finite values can be quantized");
    w[7] = 7.0f;
    ck_assert_int_eq(mp__quant_binary("t", w, 3, 4, c, NULL, &err), MP_EINVAL);
    ck_assert_int_eq(mp__quant_ternary("t", w, 3, 4, NULL, a, &err), MP_EINVAL);
    ck_assert_int_eq(mp__quant_ternary("t", NULL, SIZE_MAX, 2, NULL, a, &err), MP_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "do not fit in memory"));
}
END_TEST

static Suite *quant_suite(void)
{
    Suite *s = suite_create("quant");

    TCase *tc = tcase_create("quantize");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_shapes, 0, 2); /* per tensor, per channel */
    tcase_add_test(tc, test_figures);
    tcase_add_test(tc, test_bound_is_tight);
    tcase_add_test(tc, test_tiny_rows);
    suite_add_tcase(s, tc);

    tc = tcase_create("refusal");
    tcase_add_test(tc, test_nonfinite_refused);
    tcase_add_test(tc, test_bad_sizes);
    suite_add_tcase(s, tc);

    tc = tcase_create("affine");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_affine_bounds, 0, 14); /* bits 2..8 x symmetric, asymmetric */
    tcase_add_test(tc, test_affine_matches_int8);
    tcase_add_test(tc, test_affine_figures);
    tcase_add_test(tc, test_affine_tie);
    tcase_add_test(tc, test_affine_degenerate);
    tcase_add_test(tc, test_affine_refused);
    suite_add_tcase(s, tc);

    tc = tcase_create("binary_ternary");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_binary_ternary_figures);
    tcase_add_test(tc, test_binary_ternary_random);
    tcase_add_test(tc, test_binary_ternary_refused);
    suite_add_tcase(s, tc);

    tc = tcase_create("error_stats");
    tcase_add_test(tc, test_error_stats_figures);
    tcase_add_test(tc, test_error_stats_random);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(quant_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
