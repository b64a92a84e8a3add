/* check_runtime_kernels.c — every variant of the rt_gemm kernel family against its reference.
 *
 * s8_gemm must give the reference's bits exactly (integer sums) on every shape tried: M of 1 to
 * 6 rows, N of 1 to 9 (tile edges), K from 0 to 130 and 1023 (the 64-byte steps and every tail),
 * with codes at the extremes (activations 1 and 255, weights -128 and 127) as well as random
 * ones. csr_mm and cb_gemv sum floats in another order, so they must agree within
 * RT_F32_SUM_BOUND x sum |terms|, on vectors (P = 1) and matrices (P up to 70, past one 64-wide
 * block), codebooks of 2, 8, 16, 32 and 256 entries (the permute and gather paths); wx_bias (a
 * small-K weight matrix times columns, plus bias) within the same bound. dw_plane (a
 * depthwise convolution's output plane) must give the reference's bits exactly. A variant
 * the CPU lacks is reported on stderr and skipped; the program exits 77 only when no SIMD
 * variant can run at all.
 */
#include "kernels/rt_gemm_int.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const isas[] = {"avx2", "avx512"};

static uint64_t state = 0x9e3779b97f4a7c15u;
static uint32_t next_u32(void)
{
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return (uint32_t)(state >> 16);
}

static float next_f(void)
{
    return (float)(next_u32() % 2000001) / 1000000.0f - 1.0f;
}

START_TEST(test_s8_gemm_exact)
{
    const mp_kern_rt_table_t *ref = mp__kern_rt_for("ref");
    const mp_kern_rt_table_t *t = mp__kern_rt_for(isas[_i]);
    static const size_t ks[] = {0, 1, 3, 15, 16, 17, 31, 63, 64, 65, 100, 127, 128, 129, 130, 1023};
    enum { MAXM = 6, MAXN = 9, MAXK = 1023, LD = 1040 };
    static uint8_t x[MAXM * LD];
    static int8_t w[MAXN * LD];
    int32_t wsum[MAXN], got[MAXM * 12], want[MAXM * 12];

    if (t == NULL) {
        fprintf(stderr, "check_runtime_kernels: this CPU lacks %s, not tested\n", isas[_i]);
        return;
    }
    for (int pattern = 0; pattern < 3; pattern++) {
        for (size_t i = 0; i < sizeof x; i++) {
            x[i] = pattern == 0 ? (uint8_t)next_u32() : pattern == 1 ? 255 : 1;
        }
        for (size_t i = 0; i < sizeof w; i++) {
            w[i] = pattern == 0 ? (int8_t)next_u32() : pattern == 1 ? 127 : -128;
        }
        for (size_t ki = 0; ki < sizeof ks / sizeof *ks; ki++) {
            const size_t K = ks[ki];
            for (size_t n = 0; n < MAXN; n++) {
                wsum[n] = 0;
                for (size_t k = 0; k < K; k++) {
                    wsum[n] += w[n * LD + k];
                }
            }
            for (size_t M = 1; M <= MAXM; M++) {
                for (size_t N = 1; N <= MAXN; N++) {
                    memset(got, 0x55, sizeof got);
                    ref->s8_gemm(M, N, K, x, LD, w, LD, wsum, want, 12);
                    t->s8_gemm(M, N, K, x, LD, w, LD, wsum, got, 12);
                    for (size_t m = 0; m < M; m++) {
                        for (size_t n = 0; n < N; n++) {
                            ck_assert_msg(got[m * 12 + n] == want[m * 12 + n],
                                          "%s M%zu N%zu K%zu [%zu,%zu]: %d vs %d", t->isa, M, N,
                                          K, m, n, got[m * 12 + n], want[m * 12 + n]);
                        }
                        /* nothing written past N */
                        ck_assert_int_eq(got[m * 12 + N], 0x55555555);
                    }
                }
            }
        }
    }
    /* the extreme: 255 x 127 over K = 1023 */
    ref->s8_gemm(1, 1, 1023, x, LD, w, LD, wsum, want, 1);
    ck_assert_int_eq(want[0], 1023 * (1 - 128) * -128);
}
END_TEST

static void check_close(const char *what, float got, float want, double abs_sum)
{
    const double bound = RT_F32_SUM_BOUND * abs_sum + 1e-30;
    ck_assert_msg(fabs((double)got - want) <= bound, "%s: %.9g vs %.9g (bound %.3g)", what,
                  (double)got, (double)want, bound);
}

START_TEST(test_csr_mm_close)
{
    const mp_kern_rt_table_t *ref = mp__kern_rt_for("ref");
    const mp_kern_rt_table_t *t = mp__kern_rt_for(isas[_i]);
    enum { N = 23, K = 150, PMAX = 70 };
    static float dense[N * K], b[K * PMAX], got[N * PMAX], want[N * PMAX], val[N * K];
    static int32_t col[N * K], rowptr[N + 1];
    int nnz = 0;

    if (t == NULL) {
        return;
    }
    for (int n = 0; n < N; n++) {
        rowptr[n] = nnz;
        /* row n keeps about n of every 23 entries: empty rows, short ones, long ones */
        for (int k = 0; k < K; k++) {
            dense[n * K + k] = (int)(next_u32() % 23) < n ? next_f() : 0.0f;
            if (dense[n * K + k] != 0.0f) {
                col[nnz] = k;
                val[nnz++] = dense[n * K + k];
            }
        }
    }
    rowptr[N] = nnz;
    for (int i = 0; i < K * PMAX; i++) {
        b[i] = next_f();
    }
    static const size_t ps[] = {1, 2, 15, 16, 17, 33, 64, 65, 70};
    for (size_t pi = 0; pi < sizeof ps / sizeof *ps; pi++) {
        const size_t P = ps[pi];
        ref->csr_mm(N, P, rowptr, col, val, b, P, want, P);
        t->csr_mm(N, P, rowptr, col, val, b, P, got, P);
        for (size_t n = 0; n < N; n++) {
            for (size_t p = 0; p < P; p++) {
                double abs_sum = 0;
                for (int j = rowptr[n]; j < rowptr[n + 1]; j++) {
                    abs_sum += fabs((double)val[j] * b[(size_t)col[j] * P + p]);
                }
                check_close(t->isa, got[n * P + p], want[n * P + p], abs_sum);
            }
        }
    }
}
END_TEST

START_TEST(test_cb_gemv_close)
{
    const mp_kern_rt_table_t *ref = mp__kern_rt_for("ref");
    const mp_kern_rt_table_t *t = mp__kern_rt_for(isas[_i]);
    enum { N = 13, KMAX = 203 };
    static uint8_t idx[N * KMAX];
    static float x[KMAX], cb[256], got[N], want[N];
    static const int n_cbs[] = {2, 8, 16, 32, 256};

    if (t == NULL) {
        return;
    }
    for (int i = 0; i < 256; i++) {
        cb[i] = next_f();
    }
    for (int i = 0; i < KMAX; i++) {
        x[i] = next_f();
    }
    for (size_t c = 0; c < sizeof n_cbs / sizeof *n_cbs; c++) {
        for (size_t i = 0; i < sizeof idx; i++) {
            idx[i] = (uint8_t)(next_u32() % (uint32_t)n_cbs[c]);
        }
        for (size_t K = 0; K <= KMAX; K += K < 20 ? 1 : 61) {
            ref->cb_gemv(N, K, x, idx, KMAX, cb, n_cbs[c], want);
            t->cb_gemv(N, K, x, idx, KMAX, cb, n_cbs[c], got);
            for (size_t n = 0; n < N; n++) {
                double abs_sum = 0;
                for (size_t k = 0; k < K; k++) {
                    abs_sum += fabs((double)x[k] * cb[idx[n * KMAX + k]]);
                }
                check_close(t->isa, got[n], want[n], abs_sum);
            }
        }
    }
}
END_TEST

/* Weights times columns with the bias: within RT_F32_SUM_BOUND x (|bias| + sum |terms|) of _ref
 * for M of 1 to 13 rows (every tile height), P of 1 to 70 columns (the 16- and 32-column blocks
 * and every tail), K of 0 to 300 (past the 128 rows copied at a time), with and without a bias,
 * and columns taken from a wider matrix (ldx > P). */
START_TEST(test_wx_bias_close)
{
    const mp_kern_rt_table_t *ref = mp__kern_rt_for("ref");
    const mp_kern_rt_table_t *t = mp__kern_rt_for(isas[_i]);
    enum { MMAX = 13, PMAX = 70, KMAX = 300, LDX = PMAX + 3 };
    static float w[MMAX * KMAX], x[KMAX * LDX], bias[MMAX], want[MMAX * PMAX], got[MMAX * PMAX];
    static const size_t Ks[] = {0, 1, 5, 24, 96, 128, 129, 300};
    int products = 0;

    if (t == NULL) {
        return;
    }
    for (size_t i = 0; i < MMAX * KMAX; i++) {
        w[i] = next_f();
    }
    for (size_t i = 0; i < KMAX * LDX; i++) {
        x[i] = next_f();
    }
    for (size_t i = 0; i < MMAX; i++) {
        bias[i] = next_f();
    }
    for (size_t M = 1; M <= MMAX; M += M < 7 ? 1 : 6) {
        for (size_t P = 1; P <= PMAX; P += P < 34 ? 1 : 36) {
            for (size_t ki = 0; ki < sizeof Ks / sizeof *Ks; ki++) {
                const size_t K = Ks[ki];
                const float *b = (M + P) % 2 ? bias : NULL;
                ref->wx_bias(M, P, K, w, KMAX, x, LDX, b, want, PMAX);
                t->wx_bias(M, P, K, w, KMAX, x, LDX, b, got, PMAX);
                for (size_t m = 0; m < M; m++) {
                    for (size_t p = 0; p < P; p++) {
                        double abs_sum = b ? fabs((double)b[m]) : 0.0;
                        for (size_t k = 0; k < K; k++) {
                            abs_sum += fabs((double)w[m * KMAX + k] * x[k * LDX + p]);
                        }
                        check_close(t->isa, got[m * PMAX + p], want[m * PMAX + p], abs_sum);
                    }
                }
                products++;
            }
        }
    }
    ck_assert_int_eq(products, 8 * 35 * 8); /* M: 1 to 7 and 13; P: 1 to 34 and 70 */
    /* the reference itself: 0.5 + 1*2 + 3*4 and, with no bias, 0 */
    {
        const float w2[2] = {1.0f, 3.0f}, x2[2] = {2.0f, 4.0f}, b2 = 0.5f;
        float y = 0.0f;
        ref->wx_bias(1, 1, 2, w2, 2, x2, 1, &b2, &y, 1);
        ck_assert_float_eq(y, 14.5f);
        ref->wx_bias(1, 1, 0, w2, 2, x2, 1, NULL, &y, 1);
        ck_assert_float_eq(y, 0.0f);
    }
}
END_TEST

/* A depthwise plane: the same bits as _ref for output rows of 1 to 37 columns (vector steps and
 * every tail), kernels of 1x1 to 5x5 and 7x7, strides 1 to 3 (2 has its own path) and dilations
 * 1 and 2. The input is exactly as long as _ref reads, so a variant reading past it is caught
 * under ASan. */
START_TEST(test_dw_plane_exact)
{
    const mp_kern_rt_table_t *ref = mp__kern_rt_for("ref");
    const mp_kern_rt_table_t *t = mp__kern_rt_for(isas[_i]);
    static const size_t ks[] = {1, 2, 3, 5, 7};
    float w[49], want[3 * 37], got[3 * 37];
    int planes = 0;

    if (t == NULL) {
        return;
    }
    for (size_t k = 0; k < 49; k++) {
        w[k] = next_f();
    }
    for (size_t ow = 1; ow <= 37; ow++) {
        for (size_t ki = 0; ki < sizeof ks / sizeof *ks; ki++) {
            for (size_t s = 1; s <= 3; s++) {
                for (size_t d = 1; d <= 2; d++) {
                    const mp_kern_dw_geom_t g = {.oh = 3, .ow = ow, .kh = ks[ki], .kw = ks[ki],
                                                 .sh = s, .sw = s, .dh = d, .dw = d,
                                                 .ldx = (ow - 1) * s + (ks[ki] - 1) * d + 1};
                    const size_t len = ((g.oh - 1) * s + (g.kh - 1) * d + 1) * g.ldx;
                    float *x = malloc(len * sizeof *x);
                    ck_assert_ptr_nonnull(x);
                    for (size_t i = 0; i < len; i++) {
                        x[i] = next_f();
                    }
                    ref->dw_plane(&g, x, w, 0.25f, want);
                    t->dw_plane(&g, x, w, 0.25f, got);
                    ck_assert_msg(memcmp(got, want, 3 * ow * sizeof *got) == 0,
                                  "%s dw_plane ow %zu k %zu s %zu d %zu differs from _ref",
                                  t->isa, ow, ks[ki], s, d);
                    free(x);
                    planes++;
                }
            }
        }
    }
    ck_assert_int_eq(planes, 37 * 5 * 3 * 2);
    /* the reference itself, a 1x2 kernel at dilation 2 over rows {1, 9, 4} and {2, 0, 8}, kernel
     * rows {2, 3} and {5, 7}: 0.5 + 2*1 + 3*4 + 5*2 + 7*8 = 80.5 */
    {
        const float x[6] = {1.0f, 9.0f, 4.0f, 2.0f, 0.0f, 8.0f}, w4[4] = {2.0f, 3.0f, 5.0f, 7.0f};
        const mp_kern_dw_geom_t g = {.oh = 1, .ow = 1, .kh = 2, .kw = 2, .sh = 1, .sw = 1,
                                     .dh = 1, .dw = 2, .ldx = 3};
        float y = 0.0f;
        ref->dw_plane(&g, x, w4, 0.5f, &y);
        ck_assert_float_eq(y, 80.5f);
    }
}
END_TEST

/* A 2x2 max pool over a plane: the same bits as _ref for 1 to 40 outputs a row (vector steps
 * and every tail) and 1 or 3 output rows whose input rows are ldx = 2n + 3 apart, over values
 * that include NaN of both signs, both zeros, infinities and ties, with and without the Relu;
 * the last input row is exactly 2n long, so a variant reading past it is caught under ASan. */
START_TEST(test_max2x2_exact)
{
    const mp_kern_rt_table_t *ref = mp__kern_rt_for("ref");
    const mp_kern_rt_table_t *t = mp__kern_rt_for(isas[_i]);
    static const float special[] = {NAN, -NAN, 0.0f, -0.0f, INFINITY, -INFINITY, 1.0f, 1.0f};
    float want[3 * 40], got[3 * 40];

    if (t == NULL) {
        return;
    }
    for (size_t n = 1; n <= 40; n++) {
        for (size_t rows = 1; rows <= 3; rows += 2) {
            const size_t ldx = 2 * n + 3, len = (2 * rows - 1) * ldx + 2 * n;
            /* dense: random values with a special one here and there; sparse: specials only,
             * so windows hold two NaNs of either sign, or both zeros, in every order */
            for (int dense = 0; dense < 2; dense++) {
                float *x = malloc(len * sizeof *x);
                ck_assert_ptr_nonnull(x);
                for (size_t i = 0; i < len; i++) {
                    const size_t row = i / ldx;
                    x[i] = dense && (i + n + row) % 5 ? next_f()
                           : row % 2                   ? special[(i + n) % 8]
                                                       : special[(i * 3 + n) % 8];
                }
                for (int relu = 0; relu < 2; relu++) {
                    ref->max2x2(rows, n, x, ldx, relu, want);
                    t->max2x2(rows, n, x, ldx, relu, got);
                    ck_assert_msg(memcmp(got, want, rows * n * sizeof *got) == 0,
                                  "%s max2x2 rows %zu n %zu (%s%s) differs from _ref", t->isa,
                                  rows, n, dense ? "dense" : "specials", relu ? ", relu" : "");
                }
                free(x);
            }
        }
    }
    /* the reference itself, rows {1, 3, -0, 0} and {2, NaN, 0, -1}: a NaN anywhere wins; the
     * first of two zeros stays; after a Relu, NaN and -0 are +0 */
    {
        const float a[8] = {1.0f, 3.0f, -0.0f, 0.0f, 2.0f, NAN, 0.0f, -1.0f};
        const float c[4] = {-0.0f, NAN, -2.0f, -1.0f};
        float y[2];
        ref->max2x2(1, 2, a, 4, 0, y);
        ck_assert(isnan(y[0]));
        ck_assert(y[1] == 0.0f && signbit(y[1]));
        ref->max2x2(1, 2, a, 4, 1, y);
        ck_assert_float_eq(y[0], 3.0f);
        ck_assert(y[1] == 0.0f && !signbit(y[1]));
        ref->max2x2(1, 1, c, 2, 1, y);
        ck_assert(y[0] == 0.0f && !signbit(y[0]));
    }
}
END_TEST

/* Every other element: the same values as _ref for 1 to 40 outputs, reading no further than
 * x[2n - 2] (the input is exactly that long, for ASan). */
START_TEST(test_stride2_exact)
{
    const mp_kern_rt_table_t *ref = mp__kern_rt_for("ref");
    const mp_kern_rt_table_t *t = mp__kern_rt_for(isas[_i]);
    float want[40], got[40];

    if (t == NULL) {
        return;
    }
    for (size_t n = 1; n <= 40; n++) {
        float *x = malloc((2 * n - 1) * sizeof *x);
        ck_assert_ptr_nonnull(x);
        for (size_t i = 0; i < 2 * n - 1; i++) {
            x[i] = next_f();
        }
        ref->stride2(n, x, want);
        t->stride2(n, x, got);
        ck_assert_msg(memcmp(got, want, n * sizeof *got) == 0, "%s stride2 n %zu", t->isa, n);
        for (size_t i = 0; i < n; i++) {
            ck_assert(memcmp(&want[i], &x[2 * i], sizeof *x) == 0);
        }
        free(x);
    }
}
END_TEST

static Suite *kernels_suite(void)
{
    Suite *s = suite_create("runtime_kernels");
    TCase *tc = tcase_create("rt_gemm");

    tcase_add_loop_test(tc, test_s8_gemm_exact, 0, 2);
    tcase_add_loop_test(tc, test_csr_mm_close, 0, 2);
    tcase_add_loop_test(tc, test_cb_gemv_close, 0, 2);
    tcase_add_loop_test(tc, test_wx_bias_close, 0, 2);
    tcase_add_loop_test(tc, test_dw_plane_exact, 0, 2);
    tcase_add_loop_test(tc, test_max2x2_exact, 0, 2);
    tcase_add_loop_test(tc, test_stride2_exact, 0, 2);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    if (mp__kern_rt_for("avx2") == NULL && mp__kern_rt_for("avx512") == NULL) {
        fprintf(stderr, "check_runtime_kernels: no SIMD variant runs on this CPU\n");
        return 77;
    }
    fprintf(stderr, "check_runtime_kernels: avx512 s8_gemm %s\n",
            mp__kern_rt_has_vnni() ? "uses AVX-512 VNNI" : "is the AVX2 one (no VNNI)");
    SRunner *sr = srunner_create(kernels_suite());
    srunner_run_all(sr, CK_NORMAL);
    const int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
