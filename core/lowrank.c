/* lowrank.c — truncated SVD (exact and randomized) and Tucker-2, on LAPACKE and CBLAS.
 *
 * Layout: a row-major m x n matrix w is, read column-major, the n x m matrix w^T. Every
 * factorization here is done on such a column-major view and called through LAPACKE's _work
 * entry points with LAPACK_COL_MAJOR, which hand the buffers straight to LAPACK: LAPACKE never
 * makes a transposed copy and never allocates. The SVD of w^T = V S U^T gives the factors of
 * w = U S V^T with b = V_r^T a plain copy of the first r columns of V.
 *
 * Memory: each call computes the size of everything it needs (LAPACK's workspace queries
 * included), allocates one block (64-byte aligned pieces), and frees it on every path. The
 * exact SVD needs one copy of w plus min(m,n)^2; the randomized one (l = r + 10) about
 * (m + n) l; Tucker-2 two copies of the tensor plus one channel count squared.
 *
 * Determinism: the Gaussian test matrix comes from a counter-based generator seeded by the
 * caller; the BLAS and LAPACK calls are deterministic for a given thread count, which is the
 * caller's to set (OpenBLAS's global setting is never touched here).
 *
 * Errors: the sizes LAPACK takes are 32-bit, so a matrix whose element count (or a workspace)
 * passes INT_MAX is MP_ETOOBIG rather than a silent overflow inside LAPACK; a failure of an
 * SVD to converge is retried with the slower QR-iteration driver (gesvd) before it is reported.
 */
#include "methods_int.h"

#include <cblas.h>
#include <lapacke.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define OVERSAMPLE 10
#define ALIGN 64

/* The randomized SVD reports its error from the energies (see svd_randomized). Plain, they are
 * known to about 5e-7 ||w||^2, under 1e-5 of the reported error when at least PLAIN_MIN_REL2
 * of the energy is left out; corrected for the float32 Q, to 1e-8 .. 1e-7 ||w||^2 (the rounding
 * of B = Q^T w, largest when a few singular values hold the energy), under 5e-5 of it above
 * IDENTITY_MIN_REL2. Below that (a fit within 3 %) the residual is formed and summed directly,
 * at the cost of one more pass of a matrix product. */
#define PLAIN_MIN_REL2 0.05
#define IDENTITY_MIN_REL2 1e-3
/* rows of Q converted to double at a time for Q^T Q */
#define GRAM_ROWS 256

/* ---- the one workspace block ----------------------------------------------------------------- */

/* One piece of a call's workspace: n floats, *at receives its address. Integer arrays for
 * LAPACK take INTS(n) floats. */
typedef struct {
    float **at;
    size_t n;
} piece_t;

#define INTS(n) (((n) * sizeof(lapack_int) + sizeof(float) - 1) / sizeof(float))
#define DOUBLES(n) ((n) * (sizeof(double) / sizeof(float)))

/* Allocate all pieces as one block, each 64-byte aligned, and point them into it; *blk is
 * the block to free. MP_ETOOBIG when the sizes overflow, MP_ENOMEM. */
static int block_alloc(const piece_t *pieces, size_t n_pieces, char **blk, mp_errctx_t *err)
{
    size_t total = 0;
    for (size_t i = 0; i < n_pieces; i++) {
        size_t bytes;
        MP_RETURN_IF(mp__mul_size(pieces[i].n, sizeof(float), &bytes) ||
                         mp__add_size(bytes, ALIGN - 1, &bytes) ||
                         mp__add_size(total, bytes, &total),
                     MP_ETOOBIG, "lowrank: the workspace size overflows");
        total &= ~(size_t)(ALIGN - 1);
    }
    *blk = aligned_alloc(ALIGN, total ? total : ALIGN);
    MP_RETURN_IF(*blk == NULL, MP_ENOMEM, "lowrank: out of memory for a %zu-byte workspace", total);
    size_t off = 0;
    for (size_t i = 0; i < n_pieces; i++) {
        *pieces[i].at = (float *)(*blk + off);
        off += (pieces[i].n * sizeof(float) + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    }
    return 0;
}

#define N_PIECES(p) (sizeof(p) / sizeof((p)[0]))

/* ---- small helpers --------------------------------------------------------------------------- */

/* sum x[i]^2: float sums of 16 lanes over blocks of 256 elements (vectorizable, at memory
 * speed), the blocks added in double; relative error about 1e-7. A block whose float sum
 * overflows (elements beyond 1e19) gives +inf, as does a non-finite element: the caller tells
 * the two apart. */
static double sumsq(const float *x, size_t n)
{
    double total = 0.0;
    size_t i = 0;
    while (i < n) {
        size_t end = n - i > 256 ? i + 256 : n;
        float acc[16] = {0};
        for (; i + 16 <= end; i += 16) {
            for (int k = 0; k < 16; k++) {
                acc[k] += x[i + k] * x[i + k];
            }
        }
        double part = 0.0;
        for (int k = 0; k < 16; k++) {
            part += acc[k];
        }
        for (; i < end; i++) {
            part += (double)x[i] * (double)x[i];
        }
        total += part;
    }
    return total;
}

/* The same in double throughout, for finite elements too large for the float sums. */
static double sumsq_wide(const float *x, size_t n)
{
    double total = 0.0;
    for (size_t i = 0; i < n; i++) {
        total += (double)x[i] * (double)x[i];
    }
    return total;
}

/* sumsq, exact also for finite elements beyond 1e19 */
static double sumsq_any(const float *x, size_t n)
{
    double s = sumsq(x, n);
    return isfinite(s) ? s : sumsq_wide(x, n);
}

/* ||w||^2 of the m x n matrix, refusing a non-finite element with its row and column. */
static int checked_norm2(const char *what, const float *w, size_t m, size_t n, double *norm2,
                         mp_errctx_t *err)
{
    double s = sumsq_any(w, m * n);
    if (!isfinite(s)) {
        size_t at = mp__first_nonfinite_f32(w, m * n);
        return mp__err_set(err, MP_EINVAL, "%s: element %zu (row %zu, column %zu) is %s", what, at,
                           at / n, at % n, isnan(w[at]) ? "NaN" : "infinite");
    }
    *norm2 = s;
    return 0;
}

/* LAPACK reports workspace sizes as a float, which rounds down above 2^24: round back up. */
static int lwork_from(float q, size_t *out)
{
    double v = ceil((double)q * (1.0 + 0x1p-22)) + 1.0;
    if (!(v <= (double)INT_MAX)) {
        return -1;
    }
    if ((size_t)v > *out) {
        *out = (size_t)v;
    }
    return 0;
}

/* SVD of the column-major p x q matrix x (leading dimension p), destroyed. job 'N': values
 * only. job 'O': when p >= q, U (p x q) overwrites x and V^T (q x q) goes to vt; when p < q,
 * V^T (p x q) overwrites x and U (p x p) goes to u. qr_iter selects gesvd (QR iteration) over
 * gesdd (divide and conquer). lwork < 0 is a workspace query: the optimal size is merged into
 * *query. Returns LAPACK's info. */
static lapack_int svd_cm(char job, int qr_iter, size_t p, size_t q, float *x, float *s, float *u,
                         float *vt, float *work, lapack_int lwork, lapack_int *iwork, size_t *query)
{
    lapack_int ip = (lapack_int)p, iq = (lapack_int)q, info;
    lapack_int k = ip < iq ? ip : iq;
    float wq = 0.0f;
    if (lwork < 0) {
        work = &wq;
    }
    if (!qr_iter) {
        info = LAPACKE_sgesdd_work(LAPACK_COL_MAJOR, job, ip, iq, x, ip, s, u, ip, vt, k, work,
                                   lwork, iwork);
    } else {
        char ju = 'N', jv = 'N';
        if (job == 'O') {
            ju = p >= q ? 'O' : 'S';
            jv = p >= q ? 'S' : 'O';
        }
        /* gesvd wants ldvt >= q for 'S' in the p >= q case (k == q) and ldu >= p always. */
        info = LAPACKE_sgesvd_work(LAPACK_COL_MAJOR, ju, jv, ip, iq, x, ip, s, u, ip, vt, k, work,
                                   lwork);
    }
    if (lwork < 0 && info == 0 && lwork_from(wq, query)) {
        info = -1000; /* the workspace does not fit LAPACK's 32-bit sizes */
    }
    return info;
}

/* Workspace of the SVD svd_cm(job, ., p, q) with either driver, merged into *lwork. */
static int svd_lwork(char job, size_t p, size_t q, size_t *lwork)
{
    lapack_int idummy = 0;
    float f = 0.0f;
    if (svd_cm(job, 0, p, q, &f, &f, &f, &f, NULL, -1, &idummy, lwork) != 0 ||
        svd_cm(job, 1, p, q, &f, &f, &f, &f, NULL, -1, &idummy, lwork) != 0) {
        return -1;
    }
    return 0;
}

/* svd_cm on a fresh copy of src (p x q) in x: gesdd, and should it not converge, gesvd. */
static lapack_int svd_robust(char job, size_t p, size_t q, const float *src, float *x, float *s,
                             float *u, float *vt, float *work, size_t lwork, lapack_int *iwork)
{
    lapack_int info = 0;
    for (int qr_iter = 0; qr_iter < 2; qr_iter++) {
        memcpy(x, src, p * q * sizeof(float));
        info = svd_cm(job, qr_iter, p, q, x, s, u, vt, work, (lapack_int)lwork, iwork, NULL);
        if (info <= 0) {
            break;
        }
    }
    return info;
}

/* ||w - a b||_F^2 in double, forming the residual rows_per_block rows at a time in scratch
 * (rows_per_block x n floats). */
static double residual_sumsq(const float *w, size_t m, size_t n, const float *a, const float *b,
                             size_t r, float *scratch, size_t rows_per_block)
{
    double acc = 0.0;
    for (size_t x0 = 0; x0 < m; x0 += rows_per_block) {
        size_t rows = m - x0 < rows_per_block ? m - x0 : rows_per_block;
        memcpy(scratch, w + x0 * n, rows * n * sizeof(float));
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)n, (int)r, -1.0f,
                    a + x0 * r, (int)r, b, (int)n, 1.0f, scratch, (int)n);
        acc += sumsq_any(scratch, rows * n);
    }
    return acc;
}

static double rel_from(double res2, double norm2)
{
    return norm2 > 0.0 ? sqrt(res2 / norm2) : 0.0;
}

/* The matrix checks every entry point shares. */
static int check_shape(const char *what, size_t m, size_t n, mp_errctx_t *err)
{
    size_t mn;
    MP_RETURN_IF(m == 0 || n == 0, MP_EINVAL, "%s: the matrix is %zu x %zu (empty)", what, m, n);
    MP_RETURN_IF(mp__mul_size(m, n, &mn) || mn > (size_t)INT_MAX, MP_ETOOBIG,
                 "%s: a %zu x %zu matrix has more elements than LAPACK's 32-bit sizes allow", what,
                 m, n);
    return 0;
}

/* ---- singular values ------------------------------------------------------------------------- */

int mp__svd_values(const float *w, size_t m, size_t n, float *s, mp_errctx_t *err)
{
    int rc = check_shape("svd", m, n, err);
    char *blk = NULL;
    double norm2;
    if (rc == 0) {
        rc = checked_norm2("svd", w, m, n, &norm2, err);
    }
    if (rc != 0) {
        return rc;
    }
    size_t k = m < n ? m : n, lwork = 1;
    MP_RETURN_IF(svd_lwork('N', n, m, &lwork), MP_ETOOBIG,
                 "svd: LAPACK's workspace for a %zu x %zu matrix passes its 32-bit sizes", m, n);
    float *x, *work, *iw;
    piece_t pieces[] = {{&x, m * n}, {&work, lwork}, {&iw, INTS(8 * k)}};
    rc = block_alloc(pieces, N_PIECES(pieces), &blk, err);
    if (rc != 0) {
        return rc;
    }
    lapack_int *iwork = (lapack_int *)iw;

    /* w^T, column-major n x m, has the same singular values */
    lapack_int info = svd_robust('N', n, m, w, x, s, NULL, NULL, work, lwork, iwork);
    MP_GOTO_IF(info != 0, MP_EINTERNAL,
               "svd: LAPACK found no SVD of the %zu x %zu matrix (info %d)", m, n, (int)info);
out:
    free(blk);
    return rc;
}

/* ---- truncated SVD --------------------------------------------------------------------------- */

/* Exact: gesdd on w^T (column-major n x m), whose U and V^T are w's V and U^T. */
static int svd_exact(const float *w, size_t m, size_t n, size_t r, double norm2, float *a, float *b,
                     double *rel_error, mp_errctx_t *err)
{
    int rc = 0;
    size_t k = m < n ? m : n, lwork = 1;
    MP_RETURN_IF(svd_lwork('O', n, m, &lwork), MP_ETOOBIG,
                 "svd: LAPACK's workspace for a %zu x %zu matrix passes its 32-bit sizes", m, n);
    float *x, *sq, *s, *work, *iw;
    piece_t pieces[] = {{&x, m * n}, {&sq, k * k}, {&s, k}, {&work, lwork}, {&iw, INTS(8 * k)}};
    char *blk;
    rc = block_alloc(pieces, N_PIECES(pieces), &blk, err);
    if (rc != 0) {
        return rc;
    }
    lapack_int *iwork = (lapack_int *)iw;

    lapack_int info = svd_robust('O', n, m, w, x, s, sq, sq, work, lwork, iwork);
    MP_GOTO_IF(info != 0, MP_EINTERNAL,
               "svd: LAPACK found no SVD of the %zu x %zu matrix (info %d)", m, n, (int)info);

    /* n >= m: x holds V (n x k, column-major) and sq holds U^T (k x k); otherwise x holds U^T
     * (k x m, leading dimension k) and sq holds V (n x n). Column j of V is b's row j, and
     * U^T's column x is a's row x before scaling. */
    const float *v = n >= m ? x : sq, *ut = n >= m ? sq : x;
    memcpy(b, v, r * n * sizeof(float));
    for (size_t i = 0; i < m; i++) {
        for (size_t j = 0; j < r; j++) {
            a[i * r + j] = ut[i * k + j] * s[j];
        }
    }
    *rel_error = rel_from(residual_sumsq(w, m, n, a, b, r, x, m), norm2);
out:
    free(blk);
    return rc;
}

/* Deterministic standard normals: splitmix64 on a counter, Marsaglia's polar method in float
 * (a test matrix needs Gaussian directions, not double-precision tails). */
static void gaussian_fill(float *x, size_t n, uint64_t seed)
{
    uint64_t state = seed;
    size_t i = 0;
    while (i < n) {
        float u, v, q;
        do {
            uint64_t z = (state += 0x9e3779b97f4a7c15u);
            z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
            z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
            z ^= z >> 31;
            u = (float)(int32_t)(uint32_t)z * 0x1p-31f; /* [-1, 1) */
            v = (float)(int32_t)(uint32_t)(z >> 32) * 0x1p-31f;
            q = u * u + v * v;
        } while (q >= 1.0f || q == 0.0f);
        float f = sqrtf(-2.0f * logf(q) / q);
        x[i++] = u * f;
        if (i < n) {
            x[i++] = v * f;
        }
    }
}

/* After LAPACK's geqrt3 on the column-major rows x l matrix y (V below the diagonal, R on and
 * above it): copy V's unit lower triangular top block V1 into v1 (l x l) and make y's top block
 * the same, so that y is the whole V. */
static void split_reflectors(float *y, size_t rows, size_t l, float *v1)
{
    for (size_t j = 0; j < l; j++) {
        for (size_t i = 0; i < l; i++) {
            v1[i + j * l] = i > j ? y[i + j * rows] : (i == j ? 1.0f : 0.0f);
        }
        for (size_t i = 0; i < j; i++) {
            y[i + j * rows] = 0.0f;
        }
        y[j + j * rows] = 1.0f;
    }
}

/* Orthonormalize the columns of the column-major rows x l matrix y (rows >= l) in place:
 * Householder QR by LAPACK's recursive geqrt3, whose compact WY form Q = I - V T V^T gives the
 * first l columns as [I; 0] - (V T) V1^T, two in-place triangular products. This is the same
 * Householder QR as geqrf + orgqr but mostly level-3 work: about a quarter faster at
 * 4096 x 266. t and v1 are l x l. */
static lapack_int orthonormalize(float *y, size_t rows, size_t l, float *t, float *v1)
{
    int ir = (int)rows, il = (int)l;
    lapack_int info = LAPACKE_sgeqrt3_work(LAPACK_COL_MAJOR, ir, il, y, ir, t, il);
    if (info != 0) {
        return info;
    }
    split_reflectors(y, rows, l, v1);
    cblas_strmm(CblasColMajor, CblasRight, CblasUpper, CblasNoTrans, CblasNonUnit, ir, il, 1.0f, t,
                il, y, ir);
    cblas_strmm(CblasColMajor, CblasRight, CblasLower, CblasTrans, CblasUnit, ir, il, -1.0f, v1, il,
                y, ir);
    for (size_t j = 0; j < l; j++) {
        y[j + j * rows] += 1.0f;
    }
    return 0;
}

/* Replace the columns of the column-major rows x l matrix y (rows >= l) by P L of its LU
 * factorization with partial pivoting, y = P L U: the same span, every entry at most 1 in
 * magnitude and a unit diagonal, so the basis stays well conditioned through a power iteration
 * (Rokhlin, Szlam and Tygert 2009; scikit-learn's randomized_svd does the same). A quarter of
 * the cost of orthonormalize at 4096 x 266. An exactly zero pivot (info > 0: y is rank
 * deficient) leaves a unit column there, which completes the basis. ipiv holds l ints. */
static lapack_int lu_normalize(float *y, size_t rows, size_t l, lapack_int *ipiv)
{
    int ir = (int)rows, il = (int)l;
    lapack_int info = LAPACKE_sgetrf_work(LAPACK_COL_MAJOR, ir, il, y, ir, ipiv);
    if (info < 0) {
        return info;
    }
    for (size_t j = 0; j < l; j++) {
        for (size_t i = 0; i < j; i++) {
            y[i + j * rows] = 0.0f;
        }
        y[j + j * rows] = 1.0f;
    }
    return LAPACKE_slaswp_work(LAPACK_COL_MAJOR, il, y, ir, 1, il, ipiv, -1);
}

/* e = Q^T Q - I (upper triangle, l x l, double) for the column-major rows x l matrix q: the
 * defect of float32 orthonormality, about 1e-7, which double sums resolve. GRAM_ROWS rows of q
 * go through the double buffer qd at a time. */
static void gram_defect(const float *q, size_t rows, size_t l, double *qd, double *e)
{
    for (size_t x0 = 0; x0 < rows; x0 += GRAM_ROWS) {
        size_t nr = rows - x0 < GRAM_ROWS ? rows - x0 : GRAM_ROWS;
        for (size_t j = 0; j < l; j++) {
            for (size_t i = 0; i < nr; i++) {
                qd[i + j * nr] = q[x0 + i + j * rows];
            }
        }
        cblas_dsyrk(CblasColMajor, CblasUpper, CblasTrans, (int)l, (int)nr, 1.0, qd, (int)nr,
                    x0 > 0 ? 1.0 : 0.0, e, (int)l);
    }
    for (size_t j = 0; j < l; j++) {
        e[j + j * l] -= 1.0;
    }
}

/* Randomized range finder (Halko, Martinsson and Tropp 2011, algorithms 4.4 and 5.1) with
 * l = r + OVERSAMPLE columns (at most min(m, n)). Buffers, as CBLAS and LAPACK see them
 * column-major: yt (m x l) is Y = w Omega or w Z, normalized in place; pt (n x l) is Omega, then
 * Z = w^T Y, normalized in place, and last B^T = w^T Q. Six passes over w for n_iter = 2, each
 * one sgemm; no other copy of w is made. Between passes the basis is renormalized by LU
 * (lu_normalize: in exact arithmetic the spans, and so the result, are those of QR at every
 * step; measured on the reference matrices the errors agree with all-QR to 1e-8), and the last
 * Y is orthonormalized by Householder QR into the Q that B and a are built on. The SVD of B comes
 * from B^T = Q_B R: R = U_R S V_R^T (gesdd of an l x l matrix), so B = V_R S (Q_B U_R)^T, a = Q V_R
 * S and b^T = Q_B U_R, formed from the reflectors without building Q_B.
 *
 * The error needs no product with w: ||w - Q B||^2 = ||w||^2 - ||B||^2 + tr(B^T E B) exactly,
 * E = Q^T Q - I (B B^T is taken as R^T R: E is tiny, its factor needs few digits), and the
 * truncation inside the sketch adds sum_{j>=r} s_j^2. Without the E term float32 Q would cost
 * about 5e-7 ||w||^2, so it is computed (a pass over Q in double) only when that matters; what
 * remains is the rounding of B itself, 1e-8 .. 1e-7 ||w||^2. */
static int svd_randomized(const float *w, size_t m, size_t n, size_t r, int n_iter, uint64_t seed,
                          double norm2, float *a, float *b, double *rel_error, mp_errctx_t *err)
{
    int rc = 0;
    size_t k = m < n ? m : n, l = r + OVERSAMPLE < k ? r + OVERSAMPLE : k, lwork = 1;
    size_t big = m > n ? m : n, bl;
    MP_RETURN_IF(mp__mul_size(big, l, &bl) || bl > (size_t)INT_MAX || svd_lwork('O', l, l, &lwork),
                 MP_ETOOBIG, "svd: a %zu x %zu matrix at rank %zu passes LAPACK's 32-bit sizes", m,
                 n, r);
    float *yt, *pt, *t, *v1, *rr, *r2, *rtr, *vt, *s, *work, *iw, *ef, *qf;
    piece_t pieces[] = {{&yt, m * l},
                        {&pt, n * l},
                        {&t, l * l},
                        {&v1, l * l},
                        {&rr, l * l},
                        {&r2, l * l},
                        {&rtr, l * l},
                        {&vt, l * l},
                        {&s, l},
                        {&work, lwork},
                        {&iw, INTS(8 * l)},
                        {&ef, DOUBLES(l * l)},
                        {&qf, DOUBLES(GRAM_ROWS * l)}};
    char *blk;
    rc = block_alloc(pieces, N_PIECES(pieces), &blk, err);
    if (rc != 0) {
        return rc;
    }
    lapack_int *iwork = (lapack_int *)iw;
    double *e = (double *)ef, b2 = 0.0;
    int im = (int)m, in = (int)n, il = (int)l, ir = (int)r;
    lapack_int info = 0;

    /* The row-major w is, column-major, w^T (n x m): w x = (w^T)^T x, w^T x = (w^T) x. */
    gaussian_fill(pt, n * l, seed);
    cblas_sgemm(CblasColMajor, CblasTrans, CblasNoTrans, im, il, in, 1.0f, w, in, pt, in, 0.0f, yt,
                im);
    info = n_iter > 0 ? lu_normalize(yt, m, l, iwork) : orthonormalize(yt, m, l, t, v1);
    for (int it = 0; it < n_iter && info == 0; it++) {
        cblas_sgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, in, il, im, 1.0f, w, in, yt, im,
                    0.0f, pt, in);
        info = lu_normalize(pt, n, l, iwork);
        if (info != 0) {
            break;
        }
        cblas_sgemm(CblasColMajor, CblasTrans, CblasNoTrans, im, il, in, 1.0f, w, in, pt, in, 0.0f,
                    yt, im);
        info = it + 1 < n_iter ? lu_normalize(yt, m, l, iwork) : orthonormalize(yt, m, l, t, v1);
    }
    if (info == 0) {
        cblas_sgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, in, il, im, 1.0f, w, in, yt, im,
                    0.0f, pt, in);
        b2 = sumsq_wide(pt, n * l);
        info = LAPACKE_sgeqrt3_work(LAPACK_COL_MAJOR, in, il, pt, in, t, il);
    }
    MP_GOTO_IF(info != 0, MP_EINTERNAL, "svd: LAPACK's LU or QR failed (info %d)", (int)info);

    for (size_t j = 0; j < l; j++) {
        for (size_t i = 0; i < l; i++) {
            r2[i + j * l] = i <= j ? pt[i + j * n] : 0.0f;
        }
    }
    cblas_ssyrk(CblasColMajor, CblasUpper, CblasTrans, il, il, 1.0f, r2, il, 0.0f, rtr, il);
    info = svd_robust('O', l, l, r2, rr, s, NULL, vt, work, lwork, iwork);
    MP_GOTO_IF(info != 0, MP_EINTERNAL,
               "svd: LAPACK found no SVD of the %zu x %zu projected matrix (info %d)", l, l,
               (int)info);

    /* b^T = [U_R; 0] - V (T (V1^T U_R)), first r columns (r2 is free again) */
    split_reflectors(pt, n, l, v1);
    memcpy(r2, rr, l * r * sizeof(float));
    cblas_strmm(CblasColMajor, CblasLeft, CblasLower, CblasTrans, CblasUnit, il, ir, 1.0f, v1, il,
                r2, il);
    cblas_strmm(CblasColMajor, CblasLeft, CblasUpper, CblasNoTrans, CblasNonUnit, il, ir, 1.0f, t,
                il, r2, il);
    cblas_sgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, in, ir, il, -1.0f, pt, in, r2, il, 0.0f,
                b, in);
    for (size_t j = 0; j < r; j++) {
        for (size_t i = 0; i < l; i++) {
            b[i + j * n] += rr[i + j * l];
        }
    }
    /* a^T = (V_R S)^T Q^T: vt holds V_R^T column-major; scale its first r rows by s. */
    for (size_t i = 0; i < l; i++) {
        for (size_t j = 0; j < r; j++) {
            vt[j + i * l] *= s[j];
        }
    }
    cblas_sgemm(CblasColMajor, CblasNoTrans, CblasTrans, ir, im, il, 1.0f, vt, il, yt, im, 0.0f, a,
                ir);

    double left = norm2 - b2;
    for (size_t j = r; j < l; j++) {
        left += (double)s[j] * (double)s[j];
    }
    if (left < PLAIN_MIN_REL2 * norm2) { /* + tr(E R^T R), upper triangles of both */
        gram_defect(yt, m, l, (double *)qf, e);
        for (size_t j = 0; j < l; j++) {
            for (size_t i = 0; i <= j; i++) {
                left += (i == j ? 1.0 : 2.0) * e[i + j * l] * rtr[i + j * l];
            }
        }
    }
    if (norm2 > 0.0 && left >= IDENTITY_MIN_REL2 * norm2) {
        *rel_error = sqrt(left / norm2);
    } else {
        *rel_error = rel_from(residual_sumsq(w, m, n, a, b, r, pt, l), norm2);
    }
out:
    free(blk);
    return rc;
}

int mp__svd_lowrank(const float *w, size_t m, size_t n, size_t r, int randomized, int n_iter,
                    uint64_t seed, float *a, float *b, double *rel_error, mp_errctx_t *err)
{
    double norm2;
    int rc = check_shape("svd", m, n, err);
    if (rc != 0) {
        return rc;
    }
    size_t k = m < n ? m : n;
    MP_RETURN_IF(r < 1 || r > k, MP_EINVAL,
                 "svd: rank %zu is outside 1..%zu for a %zu x %zu matrix", r, k, m, n);
    MP_RETURN_IF(randomized && n_iter < 0, MP_EINVAL,
                 "svd: n_iter %d is negative (power iterations)", n_iter);
    rc = checked_norm2("svd", w, m, n, &norm2, err);
    if (rc != 0) {
        return rc;
    }
    if (randomized) {
        return svd_randomized(w, m, n, r, n_iter, seed, norm2, a, b, rel_error, err);
    }
    return svd_exact(w, m, n, r, norm2, a, b, rel_error, err);
}

/* ---- Tucker-2 -------------------------------------------------------------------------------- */

/* The leading r left singular vectors of the p x q matrix src (row-major; the order of its
 * columns is free, it does not change them): the SVD of src read column-major, src^T = V S U^T
 * (q x p), in x. With r <= min(p, q), gesdd 'O' (gesvd should it not converge) leaves U^T
 * column-major in vt (q >= p) or in x (q < p), that is U row-major with row stride min(p, q).
 * Above that, gesvd builds the whole p x p U, whose extra columns complete the basis.
 * out[row * r + j] or, transposed, out[j * p + row] = U[row][j]. */
static int leading_vectors(const float *src, size_t p, size_t q, size_t r, int transposed, float *x,
                           float *s, float *vt, float *work, size_t lwork, lapack_int *iwork,
                           float *out, mp_errctx_t *err)
{
    size_t k = p < q ? p : q, ld = k;
    const float *u = q >= p ? vt : x;
    lapack_int info;
    if (r <= k) {
        info = svd_robust('O', q, p, src, x, s, vt, vt, work, lwork, iwork);
    } else {
        memcpy(x, src, p * q * sizeof(float));
        info = LAPACKE_sgesvd_work(LAPACK_COL_MAJOR, 'N', 'A', (lapack_int)q, (lapack_int)p, x,
                                   (lapack_int)q, s, NULL, 1, vt, (lapack_int)p, work,
                                   (lapack_int)lwork);
        u = vt;
        ld = p;
    }
    MP_RETURN_IF(info != 0, MP_EINTERNAL,
                 "tucker2: LAPACK found no SVD of a %zu x %zu unfolding (info %d)", p, q,
                 (int)info);
    for (size_t row = 0; row < p; row++) {
        for (size_t j = 0; j < r; j++) {
            if (transposed) {
                out[j * p + row] = u[row * ld + j];
            } else {
                out[row * r + j] = u[row * ld + j];
            }
        }
    }
    return 0;
}

/* Workspace of leading_vectors(., p, q, r, ...), merged into *lwork. */
static int leading_lwork(size_t p, size_t q, size_t r, size_t *lwork)
{
    if (r <= (p < q ? p : q)) {
        return svd_lwork('O', q, p, lwork);
    }
    float wq = 0.0f, f = 0.0f;
    if (LAPACKE_sgesvd_work(LAPACK_COL_MAJOR, 'N', 'A', (lapack_int)q, (lapack_int)p, &f,
                            (lapack_int)q, &f, NULL, 1, &f, (lapack_int)p, &wq, -1) != 0) {
        return -1;
    }
    return lwork_from(wq, lwork);
}

/* y (o x r_in*d, [p][b][s]) = w x2 u_in: per output channel, u_in (r_in x i) times w_p (i x d). */
static void mode2_product(const float *w, size_t o, size_t i, size_t d, const float *u_in,
                          size_t r_in, float *y)
{
    for (size_t p = 0; p < o; p++) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)r_in, (int)d, (int)i, 1.0f,
                    u_in, (int)i, w + p * i * d, (int)d, 0.0f, y + p * r_in * d, (int)d);
    }
}

/* z (i x r_out*d, [c][a][s]) = w x1 u_out^T: per input channel, u_out^T (r_out x o) times the
 * o x d slice w[:, c, :] (row stride i*d). Rows are input channels: the mode-1 unfolding. */
static void mode1_product(const float *w, size_t o, size_t i, size_t d, const float *u_out,
                          size_t r_out, float *z)
{
    for (size_t c = 0; c < i; c++) {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)r_out, (int)d, (int)o, 1.0f,
                    u_out, (int)r_out, w + c * d, (int)(i * d), 0.0f, z + c * r_out * d, (int)d);
    }
}

int mp__tucker2(const float *w, size_t o, size_t i, size_t kh, size_t kw, size_t r_out, size_t r_in,
                int n_iter, float *u_out, float *core, float *u_in, double *rel_error,
                mp_errctx_t *err)
{
    int rc = 0;
    char *blk = NULL;
    size_t d, n_el, ch = o > i ? o : i, lwork = 1;
    double norm2;
    MP_RETURN_IF(o == 0 || i == 0 || kh == 0 || kw == 0, MP_EINVAL,
                 "tucker2: the weight is %zu x %zu x %zu x %zu (empty)", o, i, kh, kw);
    MP_RETURN_IF(mp__mul_size(kh, kw, &d) || mp__mul_size(o, i, &n_el) ||
                     mp__mul_size(n_el, d, &n_el) || n_el > (size_t)INT_MAX ||
                     ch > (size_t)INT_MAX / ch,
                 MP_ETOOBIG, "tucker2: a %zu x %zu x %zu x %zu weight passes LAPACK's 32-bit sizes",
                 o, i, kh, kw);
    MP_RETURN_IF(r_out < 1 || r_out > o, MP_EINVAL,
                 "tucker2: output rank %zu is outside 1..%zu (the output channels)", r_out, o);
    MP_RETURN_IF(r_in < 1 || r_in > i, MP_EINVAL,
                 "tucker2: input rank %zu is outside 1..%zu (the input channels)", r_in, i);
    MP_RETURN_IF(n_iter < 0, MP_EINVAL, "tucker2: n_iter %d is negative (HOOI sweeps)", n_iter);
    rc = checked_norm2("tucker2", w, o, i * d, &norm2, err);
    if (rc != 0) {
        return rc;
    }
    /* Every unfolding whose left vectors are taken: mode 0 of w and of w x2 u_in, mode 1 of w
     * and of w x1 u_out^T. */
    MP_RETURN_IF(
        leading_lwork(o, i * d, r_out, &lwork) || leading_lwork(o, r_in * d, r_out, &lwork) ||
            leading_lwork(i, o * d, r_in, &lwork) || leading_lwork(i, r_out * d, r_in, &lwork),
        MP_ETOOBIG, "tucker2: LAPACK's workspace passes its 32-bit sizes");
    float *mat, *res, *vt, *s, *work, *iw;
    piece_t pieces[] = {{&mat, n_el}, {&res, n_el},   {&vt, ch * ch},
                        {&s, ch},     {&work, lwork}, {&iw, INTS(8 * ch)}};
    rc = block_alloc(pieces, N_PIECES(pieces), &blk, err);
    if (rc != 0) {
        return rc;
    }
    lapack_int *iwork = (lapack_int *)iw;

    /* HOSVD: left vectors of the mode-0 unfolding (w itself) and of the mode-1 unfolding (rows
     * are input channels; the order of the columns does not change left singular vectors). */
    rc = leading_vectors(w, o, i * d, r_out, 0, mat, s, vt, work, lwork, iwork, u_out, err);
    if (rc != 0) {
        goto out;
    }
    for (size_t p = 0; p < o; p++) {
        for (size_t c = 0; c < i; c++) {
            memcpy(res + (c * o + p) * d, w + (p * i + c) * d, d * sizeof(float));
        }
    }
    rc = leading_vectors(res, i, o * d, r_in, 1, mat, s, vt, work, lwork, iwork, u_in, err);
    /* HOOI: each factor from the tensor projected on the other one. */
    for (int it = 0; it < n_iter && rc == 0; it++) {
        mode2_product(w, o, i, d, u_in, r_in, res);
        rc =
            leading_vectors(res, o, r_in * d, r_out, 0, mat, s, vt, work, lwork, iwork, u_out, err);
        if (rc == 0) {
            mode1_product(w, o, i, d, u_out, r_out, res);
            rc = leading_vectors(res, i, r_out * d, r_in, 1, mat, s, vt, work, lwork, iwork, u_in,
                                 err);
        }
    }
    if (rc != 0) {
        goto out;
    }

    /* core[a][b][:] = u_in (r_in x i) times z[:, a, :] (i x d, row stride r_out*d) */
    mode1_product(w, o, i, d, u_out, r_out, mat);
    for (size_t a = 0; a < r_out; a++) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)r_in, (int)d, (int)i, 1.0f,
                    u_in, (int)i, mat + a * d, (int)(r_out * d), 0.0f, core + a * r_in * d, (int)d);
    }

    /* The error of the stored factors, formed directly (the tensor may be near exact, where the
     * energy identity would lose every digit): t[a] = u_in^T core[a] (i x d), then
     * w - u_out t. */
    for (size_t a = 0; a < r_out; a++) {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)i, (int)d, (int)r_in, 1.0f, u_in,
                    (int)i, core + a * r_in * d, (int)d, 0.0f, mat + a * i * d, (int)d);
    }
    *rel_error = rel_from(residual_sumsq(w, o, i * d, u_out, mat, r_out, res, o), norm2);
out:
    free(blk);
    return rc;
}
