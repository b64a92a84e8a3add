/* rt_linear.c — the linear maps behind Gemm, MatMul and Conv, dense or compressed.
 *
 * A weight is prepared once, when the session is built, for the kernel its storage allows:
 * - int8 codes read through DequantizeLinear (per tensor, per output or per input channel, any
 *   zero point): kept as int8, never expanded to float. Each activation row is quantized on the
 *   fly with its own scale (absmax / 127, the core's quant_i8 kernel), the product is computed
 *   exactly in int32 by the rt_gemm family's s8_gemm (VNNI where the CPU has it), and zero
 *   points enter as exact integer corrections: with true codes w8 + zn[n] + zk[k],
 *   sum x*w = sum x*w8 + zn[n] * sum x + sum_k x[k]*zk[k].
 * - codebook indices read through Gather: kept as bytes; one row of activations runs the
 *   cb_gemv kernel, more rows decode blocks of W into the workspace and use sgemm.
 * - a constant float weight with at least RT_CSR_MIN_SPARSITY zeros: CSR, run by csr_mm.
 * - anything else: dense sgemm on the weight as stored (OpenBLAS packs it itself), except a
 *   Conv's product with columns of small K (RT_WX_MAX_K), which the rt_gemm family's wx_bias
 *   runs in place with the bias added as it goes (no packing, no second pass for the bias).
 * OpenBLAS runs on one thread (mp__rt_blas_init): the runtime's results then do not depend on
 * the thread count, and the daemon's workers, one session each, do not oversubscribe the cores.
 */
#include "rt_int.h"

#include "../kernels/kernels_int.h"
#include "../kernels/rt_gemm_int.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Rows of W a codebook block decodes at once (bounds the workspace to 4 MiB of floats). */
#define CB_BLOCK_FLOATS ((int64_t)1 << 20)

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;

static void blas_one_thread(void)
{
    openblas_set_num_threads(1);
}

void mp__rt_blas_init(void)
{
    pthread_once(&blas_once, blas_one_thread);
}

void mp__rt_sgemm(int ta, int tb, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                  const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    if (M == 0 || N == 0) {
        return;
    }
    if (K == 0) {
        for (int64_t i = 0; i < M; i++) {
            for (int64_t j = 0; j < N; j++) {
                C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
            }
        }
        return;
    }
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                (blasint)M, (blasint)N, (blasint)K, 1.0f, A, (blasint)lda, B, (blasint)ldb, beta,
                C, (blasint)ldc);
}

struct rt_lin {
    rt_lin_kind_t kind;
    int64_t N, K;                /* per group */
    int n_groups;
    int k_major;                 /* DENSE: stored [K, G*N] rather than [G*N, K] */
    const float *w;              /* DENSE: constant weight, or NULL (read at run time) */
    float *w_owned;              /* DENSE: dequantized here (an axis the int8 path lacks) */
    /* INT8: codes [G*N][K] */
    int8_t *w8;
    int32_t *wsum;               /* [G*N] sums of w8 rows */
    float *wscale;               /* [G*N] */
    float *kscale;               /* [K] or NULL: per-input-channel scales, applied to x */
    int32_t *zn;                 /* [G*N] or NULL */
    int32_t *zk;                 /* [K] or NULL */
    /* CSR: [G*N] rows */
    int32_t *rowptr, *col;
    float *val;
    /* CODEBOOK: indices [G*N][K] */
    uint8_t *idx;
    float cb[256];
    int n_cb;
};

void mp__rt_lin_free(rt_lin_t *l)
{
    if (l == NULL) {
        return;
    }
    free(l->w_owned);
    free(l->w8);
    free(l->wsum);
    free(l->wscale);
    free(l->kscale);
    free(l->zn);
    free(l->zk);
    free(l->rowptr);
    free(l->col);
    free(l->val);
    free(l->idx);
    free(l);
}

rt_lin_kind_t mp__rt_lin_kind(const rt_lin_t *l)
{
    return l->kind;
}

int mp__rt_lin_wants_rows(const rt_lin_t *l)
{
    /* int8 takes columns too: apply_int8 transposes them into its workspace in one pass, which
     * is cheaper than unfolding into rows element by element */
    return l->kind == RT_LIN_CODEBOOK;
}

void mp__rt_weight_shape(const rt_sess_t *s, const rt_node_t *n, int *rank, int64_t *dims)
{
    const int src = n->wsrc.kind == RT_W_QUANT      ? n->wsrc.q
                    : n->wsrc.kind == RT_W_CODEBOOK ? n->wsrc.indices
                                                    : n->in[1];
    const rt_val_t *v = &s->vals[src];
    *rank = v->rank;
    memcpy(dims, v->dims, (size_t)v->rank * sizeof *dims);
}

/* Element (row r of G*N, k) of a stored matrix: [K, G*N] when k_major, else [G*N, K]. */
static inline size_t at(const rt_lin_t *l, int64_t r, int64_t k)
{
    const int64_t rows = l->N * l->n_groups;
    return (size_t)(l->k_major ? k * rows + r : r * l->K + k);
}

/* Which way the per-channel values of a DequantizeLinear run: 1 along the output rows, 2 along
 * K, 0 one value, -1 any other way. */
static int channel_way(const rt_lin_t *l, const rt_val_t *q, int64_t axis, int64_t count)
{
    const int64_t rows = l->N * l->n_groups;
    if (count == 1) {
        return 0;
    }
    if (axis < 0) {
        axis += q->rank;
    }
    if (l->k_major) {
        return q->rank == 2 && axis == 1 && count == rows ? 1
               : q->rank == 2 && axis == 0 && count == l->K ? 2
                                                           : -1;
    }
    return axis == 0 && count == rows ? 1 : q->rank == 2 && axis == 1 && count == l->K ? 2 : -1;
}

int mp__rt_weight_dense(const rt_sess_t *s, const rt_node_t *n, const float **w, float **owned,
                        mp_errctx_t *err)
{
    const rt_wsrc_t *ws = &n->wsrc;
    const rt_val_t *q;
    float *f;

    *w = NULL;
    *owned = NULL;
    if (ws->kind == RT_W_PLAIN) {
        *w = RT_IN(s, n, 1)->cdata;
        return 0;
    }
    q = &s->vals[ws->kind == RT_W_QUANT ? ws->q : ws->indices];
    f = malloc((size_t)q->n * sizeof *f + 1);
    MP_RETURN_IF(f == NULL, MP_ENOMEM, "%s: out of memory", n->label);
    if (ws->kind == RT_W_QUANT) {
        const rt_val_t *sc = &s->vals[ws->scale];
        const rt_val_t *zp = ws->zp >= 0 ? &s->vals[ws->zp] : NULL;
        const int axis = (int)(ws->axis < 0 ? ws->axis + q->rank : ws->axis);
        const int64_t inner = sc->n > 1 && axis >= 0 && axis < q->rank
                                  ? rt_prod(q->dims, axis + 1, q->rank)
                                  : 1;
        if (sc->n > 1 && (axis < 0 || axis >= q->rank || q->dims[axis] != sc->n)) {
            free(f);
            return mp__err_set(err, MP_EFORMAT, "%s: the weight's %lld scales do not run along "
                               "an axis of it", n->label, (long long)sc->n);
        }
        for (int64_t i = 0; i < q->n; i++) {
            const int64_t c = sc->n > 1 ? (i / inner) % sc->n : 0;
            const int64_t z = zp ? mp__rt_get_i64(zp->dt, zp->cdata, c) : 0;
            f[i] = (float)(mp__rt_get_i64(q->dt, q->cdata, i) - z) * ((const float *)sc->cdata)[c];
        }
    } else {
        const rt_val_t *cb = &s->vals[ws->codebook];
        for (int64_t i = 0; i < q->n; i++) {
            int64_t c = mp__rt_get_i64(q->dt, q->cdata, i);
            c = c < 0 ? c + cb->n : c;
            if (c < 0 || c >= cb->n) {
                free(f);
                return mp__err_set(err, MP_EFORMAT, "%s: codebook index %lld is outside the "
                                   "codebook of %lld entries", n->label, (long long)c,
                                   (long long)cb->n);
            }
            f[i] = ((const float *)cb->cdata)[c];
        }
    }
    *w = f;
    *owned = f;
    return 0;
}

static int prep_quant(rt_sess_t *s, const rt_node_t *n, rt_lin_t *l, mp_errctx_t *err)
{
    const rt_val_t *q = &s->vals[n->wsrc.q], *sc = &s->vals[n->wsrc.scale];
    const rt_val_t *zp = n->wsrc.zp >= 0 ? &s->vals[n->wsrc.zp] : NULL;
    const int64_t rows = l->N * l->n_groups, K = l->K;
    const int u8 = q->dt == MP_DT_U8;
    const float *scale = sc->cdata;
    const int ws = channel_way(l, q, n->wsrc.axis, sc->n);
    const int wz = zp ? channel_way(l, q, n->wsrc.axis, zp->n) : 0;

    MP_RETURN_IF(zp && zp->n != sc->n, MP_EFORMAT, "%s: the weight's zero point and scale differ "
                 "in size", n->label);
    if (ws < 0 || wz < 0 || K > RT_S8_MAX_K) {
        /* a layout the int8 kernel does not take: dequantize once, run dense */
        l->kind = RT_LIN_DENSE;
        return mp__rt_weight_dense(s, n, &l->w, &l->w_owned, err);
    }
    l->kind = RT_LIN_INT8;
    l->w8 = malloc((size_t)(rows * K) + 1);
    l->wsum = calloc((size_t)rows + 1, sizeof *l->wsum);
    l->wscale = malloc(((size_t)rows + 1) * sizeof *l->wscale);
    l->zn = calloc((size_t)rows + 1, sizeof *l->zn);
    MP_RETURN_IF(!l->w8 || !l->wsum || !l->wscale || !l->zn, MP_ENOMEM, "%s: out of memory",
                 n->label);
    if (ws == 2) {
        l->kscale = malloc((size_t)K * sizeof *l->kscale);
        MP_RETURN_IF(l->kscale == NULL, MP_ENOMEM, "%s: out of memory", n->label);
        memcpy(l->kscale, scale, (size_t)K * sizeof *l->kscale);
    }
    if (wz == 2) {
        l->zk = malloc((size_t)K * sizeof *l->zk);
        MP_RETURN_IF(l->zk == NULL, MP_ENOMEM, "%s: out of memory", n->label);
        for (int64_t k = 0; k < K; k++) {
            l->zk[k] = -(int32_t)mp__rt_get_i64(zp->dt, zp->cdata, k);
        }
    }
    for (int64_t r = 0; r < rows; r++) {
        int32_t sum = 0;
        for (int64_t k = 0; k < K; k++) {
            const size_t i = at(l, r, k);
            /* unsigned codes are stored shifted by -128 so that they fit int8 */
            const int32_t c = u8 ? (int32_t)((const uint8_t *)q->cdata)[i] - 128
                                 : (int32_t)((const int8_t *)q->cdata)[i];
            l->w8[r * K + k] = (int8_t)c;
            sum += c;
        }
        l->wsum[r] = sum;
        l->wscale[r] = ws == 1 ? scale[r] : ws == 0 ? scale[0] : 1.0f;
        l->zn[r] = (u8 ? 128 : 0) -
                   (wz == 1   ? (int32_t)mp__rt_get_i64(zp->dt, zp->cdata, r)
                    : wz == 0 && zp ? (int32_t)mp__rt_get_i64(zp->dt, zp->cdata, 0)
                                    : 0);
    }
    return 0;
}

static int prep_codebook(rt_sess_t *s, const rt_node_t *n, rt_lin_t *l, mp_errctx_t *err)
{
    const rt_val_t *cb = &s->vals[n->wsrc.codebook], *ix = &s->vals[n->wsrc.indices];
    const int64_t rows = l->N * l->n_groups, K = l->K;

    l->kind = RT_LIN_CODEBOOK;
    l->n_cb = (int)cb->n;
    memcpy(l->cb, cb->cdata, (size_t)cb->n * sizeof(float));
    l->idx = malloc((size_t)(rows * K) + 1);
    MP_RETURN_IF(l->idx == NULL, MP_ENOMEM, "%s: out of memory", n->label);
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t k = 0; k < K; k++) {
            int64_t c = mp__rt_get_i64(ix->dt, ix->cdata, (int64_t)at(l, r, k));
            c = c < 0 ? c + l->n_cb : c;
            MP_RETURN_IF(c < 0 || c >= l->n_cb, MP_EFORMAT,
                         "%s: codebook index %lld is outside the codebook of %d entries",
                         n->label, (long long)mp__rt_get_i64(ix->dt, ix->cdata, (int64_t)at(l, r, k)),
                         l->n_cb);
            l->idx[r * K + k] = (uint8_t)c;
        }
    }
    return 0;
}

static int prep_csr(const rt_node_t *n, rt_lin_t *l, const float *w, mp_errctx_t *err)
{
    const int64_t rows = l->N * l->n_groups, K = l->K;
    int64_t nnz = 0;

    for (int64_t i = 0; i < rows * K; i++) {
        nnz += w[i] != 0.0f;
    }
    if (rows * K == 0 || (double)(rows * K - nnz) < RT_CSR_MIN_SPARSITY * (double)(rows * K) ||
        nnz > INT32_MAX) {
        return 0;
    }
    l->rowptr = malloc(((size_t)rows + 1) * sizeof *l->rowptr);
    l->col = malloc(((size_t)nnz + 1) * sizeof *l->col);
    l->val = malloc(((size_t)nnz + 1) * sizeof *l->val);
    MP_RETURN_IF(!l->rowptr || !l->col || !l->val, MP_ENOMEM, "%s: out of memory", n->label);
    nnz = 0;
    for (int64_t r = 0; r < rows; r++) {
        l->rowptr[r] = (int32_t)nnz;
        for (int64_t k = 0; k < K; k++) {
            const float v = w[at(l, r, k)];
            if (v != 0.0f) {
                l->col[nnz] = (int32_t)k;
                l->val[nnz++] = v;
            }
        }
    }
    l->rowptr[rows] = (int32_t)nnz;
    l->kind = RT_LIN_CSR;
    return 0;
}

int mp__rt_lin_prepare(rt_sess_t *s, const rt_node_t *n, int k_major, int64_t N, int64_t K,
                       int n_groups, rt_lin_t **out, mp_errctx_t *err)
{
    rt_lin_t *l = calloc(1, sizeof *l);
    int rc = 0;

    *out = NULL;
    MP_RETURN_IF(l == NULL, MP_ENOMEM, "%s: out of memory", n->label);
    l->N = N;
    l->K = K;
    l->n_groups = n_groups;
    l->k_major = k_major;
    if (n->wsrc.kind == RT_W_QUANT) {
        rc = prep_quant(s, n, l, err);
    } else if (n->wsrc.kind == RT_W_CODEBOOK) {
        rc = prep_codebook(s, n, l, err);
    } else {
        const rt_val_t *w = RT_IN(s, n, 1);
        l->w = w->cdata;
        if (l->w != NULL) {
            rc = prep_csr(n, l, l->w, err);
        }
    }
    if (rc < 0) {
        mp__rt_lin_free(l);
        return rc;
    }
    if (l->kind != RT_LIN_DENSE) {
        l->k_major = 0; /* the compressed forms are stored [G*N][K] */
    }
    s->lin_counts[l->kind]++;
    *out = l;
    return 0;
}

size_t mp__rt_lin_ws_bytes(const rt_lin_t *l, int64_t rows)
{
    const size_t R = (size_t)rows, K = (size_t)l->K, N = (size_t)l->N;

    switch (l->kind) {
    case RT_LIN_INT8:
        /* transposed x, scaled row, codes, row scales and sums, int32 products */
        return 4 * R * K + 4 * K + R * K + 24 * R + 4 * R * N + 256;
    case RT_LIN_CSR:
        return 4 * R * K + 4 * R * N + 128;
    case RT_LIN_CODEBOOK: {
        const int64_t nb = CB_BLOCK_FLOATS / (l->K ? l->K : 1);
        const size_t blk = (size_t)(nb < 1 ? 1 : nb > l->N ? l->N : nb);
        return 4 * blk * K + 64;
    }
    default:
        return 0;
    }
}

/* b = a^T in 16 x 16 tiles, so that the strided side of each tile stays in a few cache lines */
static void transpose(const float *a, int64_t rows, int64_t cols, int64_t lda, float *b,
                      int64_t ldb)
{
    for (int64_t i0 = 0; i0 < rows; i0 += 16) {
        const int64_t i1 = i0 + 16 < rows ? i0 + 16 : rows;
        for (int64_t j0 = 0; j0 < cols; j0 += 16) {
            const int64_t j1 = j0 + 16 < cols ? j0 + 16 : cols;
            for (int64_t j = j0; j < j1; j++) {
                for (int64_t i = i0; i < i1; i++) {
                    b[j * ldb + i] = a[i * lda + j];
                }
            }
        }
    }
}

static void add_bias(float *y, int64_t rows, int64_t N, int64_t ldy, int yt, const float *bias)
{
    if (bias == NULL) {
        return;
    }
    /* along memory: rows of y in either layout, with the layout tested outside the loops
     * (a per-element choice of index keeps GCC from vectorising them) */
    if (yt) {
        for (int64_t i = 0; i < N; i++) {
            float *restrict yr = y + i * ldy;
            const float b = bias[i];
            for (int64_t j = 0; j < rows; j++) {
                yr[j] += b;
            }
        }
        return;
    }
    for (int64_t i = 0; i < rows; i++) {
        float *restrict yr = y + i * ldy;
        for (int64_t j = 0; j < N; j++) {
            yr[j] += bias[j];
        }
    }
}

/* Up to this K, a product with columns (Conv) runs through the rt_gemm family's wx_bias rather
 * than sgemm: on BlazeFace's 1x1 convolutions (K 24 to 96) packing costs more than it saves. */
#define RT_WX_MAX_K 128

/* Dense: the four layouts are four transpose flags of one sgemm. */
static void apply_dense(const float *w, int k_major, int64_t N, int64_t K, int64_t ldw,
                        int64_t rows, const float *x, int64_t ldx, int xt, float *y, int64_t ldy,
                        int yt)
{
    if (rows == 1 && N > 1) {
        /* one row: a matrix-vector product (sgemm would pack all of W on every call) */
        const int64_t incx = xt ? ldx : 1, incy = yt ? ldy : 1;
        if (K == 0) {
            for (int64_t n = 0; n < N; n++) {
                y[n * incy] = 0.0f;
            }
            return;
        }
        cblas_sgemv(CblasRowMajor, k_major ? CblasTrans : CblasNoTrans,
                    (blasint)(k_major ? K : N), (blasint)(k_major ? N : K), 1.0f, w,
                    (blasint)ldw, x, (blasint)incx, 0.0f, y, (blasint)incy);
        return;
    }
    if (!yt) {
        /* Y[rows,N] = X W^T: X is x or x^T, W^T is w (k_major) or w^T */
        mp__rt_sgemm(xt, !k_major, rows, N, K, x, ldx, w, ldw, 0.0f, y, ldy);
    } else {
        /* Y^T[N,rows] = W X^T */
        mp__rt_sgemm(k_major, !xt, N, rows, K, w, ldw, x, ldx, 0.0f, y, ldy);
    }
}

static void apply_int8(const rt_lin_t *l, int g, int64_t rows, const float *x, int64_t ldx,
                       int xt, float *y, int64_t ldy, int yt, const float *bias, uint8_t *ws)
{
    const mp_kern_table_t *kt = mp__kern();
    const int64_t K = l->K, N = l->N;
    /* workspace: [x^T copy] [scaled row] [codes] | row scales, code sums, zk sums | products */
    float *xt_buf = (float *)ws;
    float *row = xt_buf + (xt ? rows * K : 0);
    uint8_t *xu = (uint8_t *)(row + K);
    float *sx = (float *)(((uintptr_t)(xu + rows * K) + 7) & ~(uintptr_t)7);
    int64_t *sq = (int64_t *)(sx + rows + (rows & 1));
    int64_t *sz = sq + rows;
    int32_t *acc = (int32_t *)(sz + rows);
    const int32_t *zn = l->zn + g * N;
    const float *wscale = l->wscale + g * N;

    if (xt) {
        transpose(x, K, rows, ldx, xt_buf, K);
        x = xt_buf;
        ldx = K;
    }
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * ldx;
        int8_t *q = (int8_t *)(xu + r * K);
        if (l->kscale != NULL) {
            for (int64_t k = 0; k < K; k++) {
                row[k] = xr[k] * l->kscale[k];
            }
            xr = row;
        }
        const float amax = kt->absmax_f32(xr, (size_t)K);
        /* a row of zeros (or of non-finite values) quantizes to zeros */
        const float inv = amax > 0.0f && amax <= 3.0e38f ? 127.0f / amax : 0.0f;
        sx[r] = inv > 0.0f ? amax / 127.0f : 0.0f;
        kt->quant_i8_f32(xr, (size_t)K, inv, q);
        int64_t s_q = 0, s_z = 0;
        for (int64_t k = 0; k < K; k++) {
            s_q += q[k];
            xu[r * K + k] = (uint8_t)(q[k] ^ 0x80); /* q + 128 as an unsigned byte */
        }
        for (int64_t k = 0; l->zk != NULL && k < K; k++) {
            s_z += (int64_t)q[k] * l->zk[k];
        }
        sq[r] = s_q;
        sz[r] = s_z;
    }
    mp__kern_rt()->s8_gemm((size_t)rows, (size_t)N, (size_t)K, xu, (size_t)K,
                           l->w8 + (size_t)(g * N * K), (size_t)K, l->wsum + g * N, acc,
                           (size_t)N);
    /* the loop along y's memory: rows of outputs, or columns (yt: a Conv's [N][rows]) */
    for (int64_t a = 0; a < (yt ? N : rows); a++) {
        for (int64_t b = 0; b < (yt ? rows : N); b++) {
            const int64_t r = yt ? b : a, c = yt ? a : b;
            const int64_t d = (int64_t)acc[r * N + c] + (int64_t)zn[c] * sq[r] + sz[r];
            float v = (float)d * (sx[r] * wscale[c]);
            if (bias != NULL) {
                v += bias[c];
            }
            y[a * ldy + b] = v;
        }
    }
}

static void apply_csr(const rt_lin_t *l, int g, int64_t rows, const float *x, int64_t ldx, int xt,
                      float *y, int64_t ldy, int yt, const float *bias, float *ws)
{
    const mp_kern_rt_table_t *kt = mp__kern_rt();
    const int64_t K = l->K, N = l->N;
    const int32_t *rp = l->rowptr + g * N;

    if (rows == 1 && !xt) {
        /* a vector: out[n * ldo] with P = 1 */
        kt->csr_mm((size_t)N, 1, rp, l->col, l->val, x, 1, y, (size_t)(yt ? ldy : 1));
    } else {
        const float *b = x;
        int64_t ldb = ldx;
        float *o = yt ? y : ws + rows * K;
        if (!xt) {
            transpose(x, rows, K, ldx, ws, rows);
            b = ws;
            ldb = rows;
        }
        kt->csr_mm((size_t)N, (size_t)rows, rp, l->col, l->val, b, (size_t)ldb, o,
                   (size_t)(yt ? ldy : rows));
        if (!yt) {
            transpose(o, N, rows, rows, y, ldy);
        }
    }
    add_bias(y, rows, N, ldy, yt, bias);
}

static void apply_codebook(const rt_lin_t *l, int g, int64_t rows, const float *x, int64_t ldx,
                           int xt, float *y, int64_t ldy, int yt, const float *bias, float *ws)
{
    const int64_t K = l->K, N = l->N;
    const uint8_t *idx = l->idx + (size_t)(g * N * K);

    if (rows == 1 && !xt) {
        if (!yt || ldy == 1) {
            mp__kern_rt()->cb_gemv((size_t)N, (size_t)K, x, idx, (size_t)K, l->cb, l->n_cb, y);
        } else {
            for (int64_t c = 0; c < N; c++) {
                mp__kern_rt()->cb_gemv(1, (size_t)K, x, idx + c * K, (size_t)K, l->cb, l->n_cb,
                                       y + c * ldy);
            }
        }
    } else {
        int64_t nb = CB_BLOCK_FLOATS / (K ? K : 1);
        nb = nb < 1 ? 1 : nb > N ? N : nb;
        for (int64_t c0 = 0; c0 < N; c0 += nb) {
            const int64_t cn = N - c0 < nb ? N - c0 : nb;
            for (int64_t i = 0; i < cn * K; i++) {
                ws[i] = l->cb[idx[c0 * K + i]];
            }
            apply_dense(ws, 0, cn, K, K, rows, x, ldx, xt, yt ? y + c0 * ldy : y + c0, ldy, yt);
        }
    }
    add_bias(y, rows, N, ldy, yt, bias);
}

void mp__rt_lin_apply(const rt_lin_t *l, const float *w_rt, int g, int64_t rows, const float *x,
                      int64_t ldx, int xt, float *y, int64_t ldy, int yt, const float *bias,
                      void *ws)
{
    const float *w;
    int64_t ldw;

    switch (l->kind) {
    case RT_LIN_INT8:
        apply_int8(l, g, rows, x, ldx, xt, y, ldy, yt, bias, ws);
        return;
    case RT_LIN_CSR:
        apply_csr(l, g, rows, x, ldx, xt, y, ldy, yt, bias, ws);
        return;
    case RT_LIN_CODEBOOK:
        apply_codebook(l, g, rows, x, ldx, xt, y, ldy, yt, bias, ws);
        return;
    default:
        w = l->w ? l->w : w_rt;
        if (l->k_major) {
            ldw = l->N * l->n_groups;
            w += g * l->N;
        } else {
            ldw = l->K;
            w += g * l->N * l->K;
        }
        if (!l->k_major && xt && yt && rows > 1 && l->K <= RT_WX_MAX_K) {
            /* Conv's W[N,K] x columns[K,rows] with small K: the SIMD kernel reads both in
             * place and adds the bias as it goes, where sgemm would pack them first */
            const mp_kern_rt_table_t *kt = mp__kern_rt();
            if (strcmp(kt->isa, "ref") != 0) {
                kt->wx_bias((size_t)l->N, (size_t)rows, (size_t)l->K, w, (size_t)ldw, x,
                            (size_t)ldx, bias, y, (size_t)ldy);
                return;
            }
        }
        apply_dense(w, l->k_major, l->N, l->K, ldw, rows, x, ldx, xt, y, ldy, yt);
        add_bias(y, rows, l->N, ldy, yt, bias);
        return;
    }
}
