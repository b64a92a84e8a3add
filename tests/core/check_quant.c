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
