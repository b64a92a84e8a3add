/* check_lowrank.c — SVD values, exact and randomized truncated SVD, and Tucker-2 against
 * matrices and tensors whose factorizations are known by construction.
 *
 * Matrices are U diag(s) V^T with U, V orthonormal (products of random Householder reflectors,
 * built in double here, independent of LAPACK) and chosen s, so every figure has a closed form:
 * - singular values equal s to 1e-6 of s_0 (float32 LAPACK), also for values near 1e20 whose
 *   squares overflow float;
 * - the exact rank-r error equals sqrt(sum_{j>=r} s_j^2) / ||s|| (Eckart-Young) to 1e-4
 *   relative, for wide and tall matrices; the reported error equals ||w - a b|| computed here in
 *   double to 1e-6 relative; a = U_r S_r (a^T a = diag(s_r^2)) and b = V_r^T (b b^T = I) to 1e-5;
 *   a and b are written exactly m*r and r*n floats (guard words after them stay untouched);
 * - the randomized SVD (n_iter 2) on decaying spectra is within 0.5 % of the exact error and
 *   within 1e-4 (relative) of its own reported error, each way that figure is computed (plain
 *   energies, energies corrected for the float32 Q, the residual itself); it is exact to 1e-5 on
 *   a matrix of rank r, and gives the same bytes twice from the same seed (another seed: other
 *   bytes, the error within 0.1 %);
 * - Tucker-2 recovers a tensor made exactly from a core and orthonormal factors with
 *   rel_error < 1e-5 (reported and recomputed here), factors orthonormal to 1e-5; on a random
 *   tensor the error never grows from one HOOI sweep to the next (1e-6 slack for rounding) and
 *   five sweeps take it at least 0.01 below the HOSVD start (0.907 to 0.878 here);
 * - refusals: rank 0, rank above min(m, n), ranks above the channel counts, a negative n_iter,
 *   an empty matrix, and NaN or infinite entries, each with a message naming the figure; and
 *   MP_ENOMEM, with a message, from every method when its workspace cannot be had.
 */
#include "core/methods_int.h"

#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static uint64_t rng_state = 5;

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

static double rng_normal(void)
{
    double u = rng_unit(), v = rng_unit();
    return sqrt(-2.0 * log(1.0 - u)) * cos(6.283185307179586 * v);
}

/* A random n x k matrix (row-major, double) with orthonormal columns: the first k columns of
 * H_1 H_2 ... H_6, each H = I - 2 v v^T / v^T v with a random normal v. */
static double *orthonormal(size_t n, size_t k)
{
    double *q = calloc(n * k, sizeof(double)), *v = malloc(n * sizeof(double));
    ck_assert_ptr_nonnull(q);
    ck_assert_ptr_nonnull(v);
    for (size_t j = 0; j < k; j++) {
        q[j * k + j] = 1.0;
    }
    for (int h = 0; h < 6; h++) {
        double vv = 0.0;
        for (size_t i = 0; i < n; i++) {
            v[i] = rng_normal();
            vv += v[i] * v[i];
        }
        for (size_t j = 0; j < k; j++) { /* column j := H column j */
            double d = 0.0;
            for (size_t i = 0; i < n; i++) {
                d += v[i] * q[i * k + j];
            }
            for (size_t i = 0; i < n; i++) {
                q[i * k + j] -= 2.0 * d / vv * v[i];
            }
        }
    }
    free(v);
    return q;
}

/* w = U diag(s) V^T, m x n float, with k = min(m, n) given singular values s. */
static float *with_spectrum(size_t m, size_t n, const double *s)
{
    size_t k = m < n ? m : n;
    double *u = orthonormal(m, k), *v = orthonormal(n, k);
    float *w = malloc(m * n * sizeof(float));
    ck_assert_ptr_nonnull(w);
    for (size_t i = 0; i < m; i++) {
        for (size_t c = 0; c < n; c++) {
            double x = 0.0;
            for (size_t j = 0; j < k; j++) {
                x += u[i * k + j] * s[j] * v[c * k + j];
            }
            w[i * n + c] = (float)x;
        }
    }
    free(u);
    free(v);
    return w;
}

/* sqrt(sum_{j>=r} s_j^2 / sum s_j^2) */
static double tail_error(const double *s, size_t k, size_t r)
{
    double all = 0.0, tail = 0.0;
    for (size_t j = 0; j < k; j++) {
        all += s[j] * s[j];
        tail += j >= r ? s[j] * s[j] : 0.0;
    }
    return sqrt(tail / all);
}

/* ||w - a b||_F / ||w||_F in double */
static double direct_error(const float *w, size_t m, size_t n, const float *a, const float *b,
                           size_t r)
{
    double res = 0.0, all = 0.0;
    for (size_t i = 0; i < m; i++) {
        for (size_t c = 0; c < n; c++) {
            double x = 0.0;
            for (size_t j = 0; j < r; j++) {
                x += (double)a[i * r + j] * b[j * n + c];
            }
            double d = w[i * n + c] - x;
            res += d * d;
            all += (double)w[i * n + c] * w[i * n + c];
        }
    }
    return sqrt(res / all);
}

#define GUARD 8
#define GUARD_VALUE 12345.0f

static float *guarded(size_t n)
{
    float *x = malloc((n + GUARD) * sizeof(float));
    ck_assert_ptr_nonnull(x);
    for (size_t i = 0; i < n + GUARD; i++) {
        x[i] = GUARD_VALUE;
    }
    return x;
}

static void check_guard(const float *x, size_t n, const char *what)
{
    for (size_t i = n; i < n + GUARD; i++) {
        ck_assert_msg(x[i] == GUARD_VALUE, "%s: written past its %zu floats", what, n);
    }
}

/* a^T a = diag(s_j^2) (diagonal to tol_s s_0^2, the rest to 1e-5 s_0^2) and b b^T = I (to
 * 1e-5): a = U_r S_r, b = V_r^T. */
static void check_convention(const float *a, const float *b, size_t m, size_t n, size_t r,
                             const double *s, double tol_s)
{
    for (size_t j = 0; j < r; j++) {
        for (size_t k = 0; k < r; k++) {
            double aa = 0.0, bb = 0.0;
            for (size_t i = 0; i < m; i++) {
                aa += (double)a[i * r + j] * a[i * r + k];
            }
            for (size_t c = 0; c < n; c++) {
                bb += (double)b[j * n + c] * b[k * n + c];
            }
            double want_aa = j == k ? s[j] * s[j] : 0.0, want_bb = j == k ? 1.0 : 0.0;
            ck_assert_msg(fabs(aa - want_aa) <= (j == k ? tol_s : 1e-5) * s[0] * s[0],
                          "(a^T a)[%zu][%zu] = %.9g, want %.9g", j, k, aa, want_aa);
            ck_assert_msg(fabs(bb - want_bb) <= 1e-5, "(b b^T)[%zu][%zu] = %.9g, want %.9g", j, k,
                          bb, want_bb);
        }
    }
}

/* ---- singular values ------------------------------------------------------------------------- */

START_TEST(test_values_known)
{
    static const size_t shapes[][2] = {{60, 40}, {40, 60}, {1, 17}, {23, 1}, {33, 33}};
    for (size_t t = 0; t < sizeof(shapes) / sizeof(shapes[0]); t++) {
        size_t m = shapes[t][0], n = shapes[t][1], k = m < n ? m : n;
        double s[60];
        for (size_t j = 0; j < k; j++) {
            s[j] = 10.0 * pow(0.8, (double)j);
        }
        float *w = with_spectrum(m, n, s), got[60];
        mp_errctx_t err = {0};
        ck_assert_int_eq(mp__svd_values(w, m, n, got, &err), 0);
        for (size_t j = 0; j < k; j++) {
            ck_assert_msg(fabs(got[j] - s[j]) <= 1e-6 * s[0], "%zu x %zu: s[%zu] = %.9g, want %.9g",
                          m, n, j, got[j], s[j]);
        }
        free(w);
    }
}
END_TEST

/* Entries near 1e20 square past FLT_MAX: the norm falls back to double, LAPACK scales. */
START_TEST(test_values_huge)
{
    size_t m = 20, n = 12;
    double s[12];
    for (size_t j = 0; j < n; j++) {
        s[j] = 1e21 / (double)(j + 1);
    }
    float *w = with_spectrum(m, n, s), got[12], a[20], b[12];
    mp_errctx_t err = {0};
    ck_assert_int_eq(mp__svd_values(w, m, n, got, &err), 0);
    for (size_t j = 0; j < n; j++) {
        ck_assert_msg(fabs(got[j] - s[j]) <= 2e-6 * s[0], "s[%zu] = %.9g, want %.9g", j, got[j],
                      s[j]);
    }
    double rel;
    ck_assert_int_eq(mp__svd_lowrank(w, m, n, 1, 0, 0, 0, a, b, &rel, &err), 0);
    ck_assert_msg(fabs(rel / tail_error(s, n, 1) - 1.0) <= 1e-4, "rel_error %.9g, want %.9g", rel,
                  tail_error(s, n, 1));
    free(w);
}
END_TEST

/* ---- exact truncated SVD --------------------------------------------------------------------- */

START_TEST(test_exact_eckart_young)
{
    static const size_t shapes[][2] = {{70, 45}, {45, 70}};
    static const size_t ranks[] = {1, 3, 10, 30, 44};
    for (size_t t = 0; t < 2; t++) {
        size_t m = shapes[t][0], n = shapes[t][1], k = 45;
        double s[45];
        for (size_t j = 0; j < k; j++) {
            s[j] = 1.0 / (1.0 + 0.3 * (double)j);
        }
        float *w = with_spectrum(m, n, s);
        for (size_t ri = 0; ri < sizeof(ranks) / sizeof(ranks[0]); ri++) {
            size_t r = ranks[ri];
            float *a = guarded(m * r), *b = guarded(r * n);
            double rel = -1.0;
            mp_errctx_t err = {0};
            ck_assert_int_eq(mp__svd_lowrank(w, m, n, r, 0, 0, 0, a, b, &rel, &err), 0);
            double want = tail_error(s, k, r), direct = direct_error(w, m, n, a, b, r);
            ck_assert_msg(fabs(rel / want - 1.0) <= 1e-4,
                          "%zu x %zu rank %zu: rel_error %.9g, Eckart-Young %.9g", m, n, r, rel,
                          want);
            ck_assert_msg(fabs(rel / direct - 1.0) <= 1e-6,
                          "%zu x %zu rank %zu: reported %.9g, recomputed %.9g", m, n, r, rel,
                          direct);
            check_convention(a, b, m, n, r, s, 1e-5);
            check_guard(a, m * r, "a");
            check_guard(b, r * n, "b");
            free(a);
            free(b);
        }
        free(w);
    }
}
END_TEST

/* Full rank: the factors give w back to float rounding. */
START_TEST(test_exact_full_rank)
{
    size_t m = 30, n = 20;
    double s[20];
    for (size_t j = 0; j < n; j++) {
        s[j] = 3.0 - 0.1 * (double)j;
    }
    float *w = with_spectrum(m, n, s), a[600], b[400];
    double rel;
    ck_assert_int_eq(mp__svd_lowrank(w, m, n, n, 0, 0, 0, a, b, &rel, NULL), 0);
    ck_assert_msg(rel < 1e-6, "rel_error %.3g at full rank", rel);
    /* the residual is formed in float: at full rank it is rounding, known to about 1e-6 */
    ck_assert_msg(fabs(rel - direct_error(w, m, n, a, b, n)) <= 1e-6,
                  "reported %.9g, recomputed %.9g", rel, direct_error(w, m, n, a, b, n));
    free(w);
}
END_TEST

/* A zero matrix has error 0 (0/0 is reported as 0), not NaN. */
START_TEST(test_zero_matrix)
{
    float w[12] = {0}, a[8], b[6], s[2];
    double rel = -1.0;
    ck_assert_int_eq(mp__svd_values(w, 4, 3, s, NULL), 0);
    ck_assert(s[0] == 0.0f && s[1] == 0.0f);
    ck_assert_int_eq(mp__svd_lowrank(w, 4, 3, 2, 0, 0, 0, a, b, &rel, NULL), 0);
    ck_assert(rel == 0.0);
    ck_assert_int_eq(mp__svd_lowrank(w, 4, 3, 2, 1, 2, 9, a, b, &rel, NULL), 0);
    ck_assert(rel == 0.0);
    for (int i = 0; i < 8; i++) {
        ck_assert(a[i] == 0.0f);
    }
}
END_TEST

/* ---- randomized SVD -------------------------------------------------------------------------- */

/* Decaying spectrum s_j = 1/(1 + j)^p: with r = 20, p = 1 leaves 16 % of the norm (the
 * reported error comes from the energies, corrected for the float32 Q), p = 3 leaves 0.02 %
 * (below the 3 % where the residual is formed directly). */
START_TEST(test_randomized_bound)
{
    size_t m = 300, n = 200, k = 200, r = 20;
    static const double powers[] = {1.0, 3.0};
    for (int pi = 0; pi < 2; pi++) {
        double s[200];
        for (size_t j = 0; j < k; j++) {
            s[j] = pow(1.0 + (double)j, -powers[pi]);
        }
        float *w = with_spectrum(m, n, s);
        float *a = guarded(m * r), *b = guarded(r * n);
        double rel, exact = tail_error(s, k, r);
        mp_errctx_t err = {0};
        ck_assert_int_eq(mp__svd_lowrank(w, m, n, r, 1, 2, 42, a, b, &rel, &err), 0);
        double direct = direct_error(w, m, n, a, b, r);
        ck_assert_msg(direct <= exact * 1.005, "p = %g: randomized %.9g, exact %.9g", powers[pi],
                      direct, exact);
        ck_assert_msg(direct >= exact * (1.0 - 1e-5), "p = %g: randomized %.9g beats exact %.9g",
                      powers[pi], direct, exact);
        ck_assert_msg(fabs(rel / direct - 1.0) <= 1e-4, "p = %g: reported %.9g, recomputed %.9g",
                      powers[pi], rel, direct);
        check_convention(a, b, m, n, r, s, 1e-3);
        check_guard(a, m * r, "a");
        check_guard(b, r * n, "b");
        free(a);
        free(b);
        free(w);
    }
}
END_TEST

/* A matrix of rank r is captured whole: the error is rounding only (the direct branch). */
START_TEST(test_randomized_exact_rank)
{
    size_t m = 120, n = 90, r = 7;
    double s[90] = {0};
    for (size_t j = 0; j < r; j++) {
        s[j] = 5.0 - (double)j * 0.5;
    }
    float *w = with_spectrum(m, n, s);
    float *a = malloc(m * r * sizeof(float)), *b = malloc(r * n * sizeof(float));
    double rel;
    ck_assert_int_eq(mp__svd_lowrank(w, m, n, r, 1, 1, 3, a, b, &rel, NULL), 0);
    ck_assert_msg(rel < 1e-5, "rel_error %.3g on a rank-%zu matrix", rel, r);
    ck_assert_msg(fabs(rel - direct_error(w, m, n, a, b, r)) <= 1e-6,
                  "reported %.9g, recomputed %.9g", rel, direct_error(w, m, n, a, b, r));
    free(a);
    free(b);
    free(w);
}
END_TEST

/* Same seed, same bytes; another seed, other bytes but an error within 0.1 % of the first.
 * Wide (m < n) this time, so the other orientation of every product runs. */
START_TEST(test_randomized_deterministic)
{
    size_t m = 64, n = 150, r = 10;
    double s[64];
    for (size_t j = 0; j < m; j++) {
        s[j] = pow(0.93, (double)j);
    }
    float *w = with_spectrum(m, n, s);
    float *a1 = malloc(m * r * 4), *b1 = malloc(r * n * 4), *a2 = malloc(m * r * 4),
          *b2 = malloc(r * n * 4);
    double rel1, rel2;
    ck_assert_int_eq(mp__svd_lowrank(w, m, n, r, 1, 2, 7, a1, b1, &rel1, NULL), 0);
    ck_assert_int_eq(mp__svd_lowrank(w, m, n, r, 1, 2, 7, a2, b2, &rel2, NULL), 0);
    ck_assert(memcmp(a1, a2, m * r * 4) == 0 && memcmp(b1, b2, r * n * 4) == 0 && rel1 == rel2);
    ck_assert_int_eq(mp__svd_lowrank(w, m, n, r, 1, 2, 8, a2, b2, &rel2, NULL), 0);
    ck_assert(memcmp(a1, a2, m * r * 4) != 0);
    ck_assert_msg(fabs(rel2 / rel1 - 1.0) <= 1e-3, "seeds 7 and 8: %.9g and %.9g", rel1, rel2);
    ck_assert_msg(rel1 <= tail_error(s, m, r) * 1.005, "rel_error %.9g, exact %.9g", rel1,
                  tail_error(s, m, r));
    /* about a quarter of the energy left out: the plain energies report it */
    ck_assert_msg(fabs(rel1 / direct_error(w, m, n, a1, b1, r) - 1.0) <= 1e-4,
                  "reported %.9g, recomputed %.9g", rel1, direct_error(w, m, n, a1, b1, r));
    free(a1);
    free(b1);
    free(a2);
    free(b2);
    free(w);
}
END_TEST

/* ---- Tucker-2 -------------------------------------------------------------------------------- */

/* w[p][c][s] = sum u_out[p][a] core[a][b][s] u_in[b][c], in double */
static void tucker_compose(const float *u_out, const float *core, const float *u_in, size_t o,
                           size_t i, size_t d, size_t ro, size_t ri, double *w)
{
    for (size_t p = 0; p < o; p++) {
        for (size_t c = 0; c < i; c++) {
            for (size_t s = 0; s < d; s++) {
                double x = 0.0;
                for (size_t a = 0; a < ro; a++) {
                    for (size_t b = 0; b < ri; b++) {
                        x += (double)u_out[p * ro + a] * core[(a * ri + b) * d + s] *
                             u_in[b * i + c];
                    }
                }
                w[(p * i + c) * d + s] = x;
            }
        }
    }
}

static double tucker_direct(const float *w, const float *u_out, const float *core,
                            const float *u_in, size_t o, size_t i, size_t d, size_t ro, size_t ri)
{
    size_t n = o * i * d;
    double *x = malloc(n * sizeof(double)), res = 0.0, all = 0.0;
    ck_assert_ptr_nonnull(x);
    tucker_compose(u_out, core, u_in, o, i, d, ro, ri, x);
    for (size_t e = 0; e < n; e++) {
        res += (w[e] - x[e]) * (w[e] - x[e]);
        all += (double)w[e] * w[e];
    }
    free(x);
    return sqrt(res / all);
}

/* u_out^T u_out = I (columns) and u_in u_in^T = I (rows) */
static void check_orthonormal(const float *u_out, const float *u_in, size_t o, size_t i, size_t ro,
                              size_t ri, double tol)
{
    for (size_t a = 0; a < ro; a++) {
        for (size_t b = 0; b < ro; b++) {
            double x = 0.0;
            for (size_t p = 0; p < o; p++) {
                x += (double)u_out[p * ro + a] * u_out[p * ro + b];
            }
            ck_assert_msg(fabs(x - (a == b)) <= tol, "(u_out^T u_out)[%zu][%zu] = %.9g", a, b, x);
        }
    }
    for (size_t a = 0; a < ri; a++) {
        for (size_t b = 0; b < ri; b++) {
            double x = 0.0;
            for (size_t c = 0; c < i; c++) {
                x += (double)u_in[a * i + c] * u_in[b * i + c];
            }
            ck_assert_msg(fabs(x - (a == b)) <= tol, "(u_in u_in^T)[%zu][%zu] = %.9g", a, b, x);
        }
    }
}

/* A tensor made exactly from a random core and orthonormal factors comes back: error rounding
 * only, with or without HOOI sweeps. */
START_TEST(test_tucker_exact)
{
    size_t o = 24, i = 16, kh = 3, kw = 3, d = 9, ro = 6, ri = 5;
    double *uo = orthonormal(o, ro), *ui = orthonormal(i, ri);
    float *fo = malloc(o * ro * 4), *fi = malloc(ri * i * 4), *core0 = malloc(ro * ri * d * 4);
    for (size_t e = 0; e < o * ro; e++) {
        fo[e] = (float)uo[e];
    }
    for (size_t b = 0; b < ri; b++) {
        for (size_t c = 0; c < i; c++) {
            fi[b * i + c] = (float)ui[c * ri + b];
        }
    }
    for (size_t e = 0; e < ro * ri * d; e++) {
        core0[e] = (float)rng_normal();
    }
    double *wd = malloc(o * i * d * sizeof(double));
    float *w = malloc(o * i * d * 4);
    tucker_compose(fo, core0, fi, o, i, d, ro, ri, wd);
    for (size_t e = 0; e < o * i * d; e++) {
        w[e] = (float)wd[e];
    }
    for (int iters = 0; iters <= 2; iters += 2) {
        float *u_out = guarded(o * ro), *core = guarded(ro * ri * d), *u_in = guarded(ri * i);
        double rel = -1.0;
        mp_errctx_t err = {0};
        ck_assert_int_eq(mp__tucker2(w, o, i, kh, kw, ro, ri, iters, u_out, core, u_in, &rel, &err),
                         0);
        double direct = tucker_direct(w, u_out, core, u_in, o, i, d, ro, ri);
        ck_assert_msg(rel < 1e-5, "n_iter %d: rel_error %.3g", iters, rel);
        ck_assert_msg(direct < 1e-5, "n_iter %d: recomputed error %.3g", iters, direct);
        check_orthonormal(u_out, u_in, o, i, ro, ri, 1e-5);
        check_guard(u_out, o * ro, "u_out");
        check_guard(core, ro * ri * d, "core");
        check_guard(u_in, ri * i, "u_in");
        free(u_out);
        free(core);
        free(u_in);
    }
    free(uo);
    free(ui);
    free(fo);
    free(fi);
    free(core0);
    free(wd);
    free(w);
}
END_TEST

/* HOOI never makes the fit worse, and on a random tensor it makes it better than HOSVD. */
START_TEST(test_tucker_hooi_monotone)
{
    size_t o = 20, i = 12, kh = 3, kw = 3, d = 9, ro = 5, ri = 4;
    float *w = malloc(o * i * d * 4), *u_out = malloc(o * ro * 4), *core = malloc(ro * ri * d * 4),
          *u_in = malloc(ri * i * 4);
    for (size_t e = 0; e < o * i * d; e++) {
        w[e] = (float)rng_normal();
    }
    double prev = INFINITY, first = 0.0, rel = 0.0;
    for (int iters = 0; iters <= 5; iters++) {
        ck_assert_int_eq(mp__tucker2(w, o, i, kh, kw, ro, ri, iters, u_out, core, u_in, &rel, NULL),
                         0);
        double direct = tucker_direct(w, u_out, core, u_in, o, i, d, ro, ri);
        ck_assert_msg(fabs(rel / direct - 1.0) <= 1e-6, "n_iter %d: reported %.9g, recomputed %.9g",
                      iters, rel, direct);
        ck_assert_msg(rel <= prev + 1e-6, "n_iter %d: error %.9g after %.9g", iters, rel, prev);
        if (iters == 0) {
            first = rel;
        }
        prev = rel;
    }
    ck_assert_msg(rel < first - 0.01, "five HOOI sweeps: %.9g, HOSVD %.9g", rel, first);
    free(w);
    free(u_out);
    free(core);
    free(u_in);
}
END_TEST

/* An output rank above the rank of the mode-0 unfolding (10 x 2 for a 1x1 conv with 2 inputs):
 * the factor is completed to an orthonormal basis, and the fit is exact. */
START_TEST(test_tucker_rank_above_unfolding)
{
    size_t o = 10, i = 2, ro = 4, ri = 2;
    float w[20], u_out[40], core[8], u_in[4];
    for (size_t e = 0; e < 20; e++) {
        w[e] = (float)rng_normal();
    }
    double rel;
    ck_assert_int_eq(mp__tucker2(w, o, i, 1, 1, ro, ri, 1, u_out, core, u_in, &rel, NULL), 0);
    ck_assert_msg(rel < 1e-6, "rel_error %.3g", rel);
    check_orthonormal(u_out, u_in, o, i, ro, ri, 1e-5);
}
END_TEST

/* ---- refusals -------------------------------------------------------------------------------- */

static void expect_refusal(int rc, const mp_errctx_t *err, int code, const char *text)
{
    ck_assert_int_eq(rc, code);
    ck_assert_int_eq(err->code, code);
    ck_assert_msg(strstr(err->msg, text) != NULL, "message '%s' lacks '%s'", err->msg, text);
}

START_TEST(test_refusals)
{
    float w[60 * 40], a[60 * 41], b[41 * 40], s[40];
    double rel;
    mp_errctx_t err;
    for (size_t e = 0; e < 60 * 40; e++) {
        w[e] = (float)rng_normal();
    }
    memset(&err, 0, sizeof(err));
    expect_refusal(mp__svd_lowrank(w, 60, 40, 0, 0, 0, 0, a, b, &rel, &err), &err, MP_EINVAL,
                   "rank 0 is outside 1..40 for a 60 x 40 matrix");
    memset(&err, 0, sizeof(err));
    expect_refusal(mp__svd_lowrank(w, 60, 40, 41, 1, 2, 0, a, b, &rel, &err), &err, MP_EINVAL,
                   "rank 41 is outside 1..40");
    memset(&err, 0, sizeof(err));
    expect_refusal(mp__svd_lowrank(w, 40, 60, 41, 0, 0, 0, a, b, &rel, &err), &err, MP_EINVAL,
                   "rank 41 is outside 1..40 for a 40 x 60 matrix");
    memset(&err, 0, sizeof(err));
    expect_refusal(mp__svd_lowrank(w, 60, 40, 5, 1, -1, 0, a, b, &rel, &err), &err, MP_EINVAL,
                   "n_iter -1 is negative");
    memset(&err, 0, sizeof(err));
    expect_refusal(mp__svd_values(w, 0, 40, s, &err), &err, MP_EINVAL, "0 x 40 (empty)");

    w[2 * 40 + 3] = NAN;
    memset(&err, 0, sizeof(err));
    expect_refusal(mp__svd_values(w, 60, 40, s, &err), &err, MP_EINVAL,
                   "element 83 (row 2, column 3) is NaN");
    memset(&err, 0, sizeof(err));
    expect_refusal(mp__svd_lowrank(w, 60, 40, 5, 1, 2, 0, a, b, &rel, &err), &err, MP_EINVAL,
                   "element 83 (row 2, column 3) is NaN");
    w[2 * 40 + 3] = 0.0f;
    w[59 * 40 + 39] = -INFINITY;
    memset(&err, 0, sizeof(err));
    expect_refusal(mp__svd_lowrank(w, 60, 40, 5, 0, 0, 0, a, b, &rel, &err), &err, MP_EINVAL,
                   "element 2399 (row 59, column 39) is infinite");

    /* Tucker-2 of a 10 x 6 x 2 x 2 weight (the same 240 floats) */
    float uo[100], core[10 * 6 * 4], ui[36];
    w[59 * 40 + 39] = 1.0f;
    w[100] = NAN;
    memset(&err, 0, sizeof(err));
    expect_refusal(mp__tucker2(w, 10, 6, 2, 2, 2, 2, 1, uo, core, ui, &rel, &err), &err, MP_EINVAL,
                   "element 100 (row 4, column 4) is NaN");
    w[100] = 0.5f;
    memset(&err, 0, sizeof(err));
    expect_refusal(mp__tucker2(w, 10, 6, 2, 2, 11, 2, 1, uo, core, ui, &rel, &err), &err, MP_EINVAL,
                   "output rank 11 is outside 1..10");
    memset(&err, 0, sizeof(err));
    expect_refusal(mp__tucker2(w, 10, 6, 2, 2, 0, 2, 1, uo, core, ui, &rel, &err), &err, MP_EINVAL,
                   "output rank 0 is outside 1..10");
    memset(&err, 0, sizeof(err));
    expect_refusal(mp__tucker2(w, 10, 6, 2, 2, 3, 7, 1, uo, core, ui, &rel, &err), &err, MP_EINVAL,
                   "input rank 7 is outside 1..6");
    memset(&err, 0, sizeof(err));
    expect_refusal(mp__tucker2(w, 10, 6, 2, 2, 3, 3, -2, uo, core, ui, &rel, &err), &err, MP_EINVAL,
                   "n_iter -2 is negative");
    memset(&err, 0, sizeof(err));
    expect_refusal(mp__tucker2(w, 10, 6, 0, 2, 3, 3, 1, uo, core, ui, &rel, &err), &err, MP_EINVAL,
                   "(empty)");
    /* NULL err is allowed */
    ck_assert_int_eq(mp__tucker2(w, 10, 6, 2, 2, 0, 2, 1, uo, core, ui, &rel, NULL), MP_EINVAL);
}
END_TEST

/* With the address space capped 64 KiB above what the process holds, each method's one
 * workspace allocation (8 MiB and more here: larger than any heap memory earlier tests may have
 * left free, for CK_FORK=no) fails: MP_ENOMEM with the size in the message, no crash, no leak.
 * (Under AddressSanitizer, which reserves terabytes of address space, the cap cannot be set.) */
START_TEST(test_out_of_memory)
{
#ifdef __SANITIZE_ADDRESS__
    fputs("check_lowrank: out-of-memory test not run under AddressSanitizer\n", stderr);
#else
    size_t m = 2048, n = 2048, r = 500;
    float *w = malloc(m * n * 4), *a = malloc(m * r * 4), *b = malloc(r * n * 4), s[4];
    float core[8 * 8 * 4], u_out[1024 * 8], u_in[8 * 1024];
    ck_assert_ptr_nonnull(w);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    for (size_t e = 0; e < m * n; e++) {
        w[e] = (float)rng_normal();
    }
    double rel;
    ck_assert_int_eq(mp__svd_values(w, 4, 4, s, NULL), 0); /* BLAS and LAPACK set up first */
    unsigned long pages = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fscanf(f, "%lu", &pages), 1);
    fclose(f);
    struct rlimit old, cap;
    ck_assert_int_eq(getrlimit(RLIMIT_AS, &old), 0);
    cap = old;
    cap.rlim_cur = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + (64 << 10);
    ck_assert_int_eq(setrlimit(RLIMIT_AS, &cap), 0);

    mp_errctx_t e1 = {0}, e2 = {0}, e3 = {0}, e4 = {0};
    int rc1 = mp__svd_lowrank(w, m, n, 8, 0, 0, 0, a, b, &rel, &e1);
    int rc2 = mp__svd_lowrank(w, m, n, r, 1, 2, 0, a, b, &rel, &e2);
    int rc3 = mp__svd_values(w, m, n, a, &e3);
    int rc4 = mp__tucker2(w, 1024, 1024, 2, 2, 8, 8, 1, u_out, core, u_in, &rel, &e4);
    ck_assert_int_eq(setrlimit(RLIMIT_AS, &old), 0);
    expect_refusal(rc1, &e1, MP_ENOMEM, "out of memory for a ");
    expect_refusal(rc2, &e2, MP_ENOMEM, "out of memory for a ");
    expect_refusal(rc3, &e3, MP_ENOMEM, "-byte workspace");
    expect_refusal(rc4, &e4, MP_ENOMEM, "-byte workspace");
    /* and with the room back, a call works */
    ck_assert_int_eq(mp__svd_lowrank(w, m, n, 8, 1, 2, 0, a, b, &rel, NULL), 0);
    free(w);
    free(a);
    free(b);
#endif
}
END_TEST

static Suite *lowrank_suite(void)
{
    Suite *s = suite_create("lowrank");
    TCase *tc = tcase_create("values");
    tcase_add_test(tc, test_values_known);
    tcase_add_test(tc, test_values_huge);
    suite_add_tcase(s, tc);
    tc = tcase_create("exact");
    tcase_add_test(tc, test_exact_eckart_young);
    tcase_add_test(tc, test_exact_full_rank);
    tcase_add_test(tc, test_zero_matrix);
    suite_add_tcase(s, tc);
    tc = tcase_create("randomized");
    tcase_add_test(tc, test_randomized_bound);
    tcase_add_test(tc, test_randomized_exact_rank);
    tcase_add_test(tc, test_randomized_deterministic);
    suite_add_tcase(s, tc);
    tc = tcase_create("tucker2");
    tcase_add_test(tc, test_tucker_exact);
    tcase_add_test(tc, test_tucker_hooi_monotone);
    tcase_add_test(tc, test_tucker_rank_above_unfolding);
    suite_add_tcase(s, tc);
    tc = tcase_create("refusals");
    tcase_add_test(tc, test_refusals);
    tcase_add_test(tc, test_out_of_memory);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(lowrank_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
