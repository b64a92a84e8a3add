/* rt_ops_nn.c — the network operators: Conv, ConvTranspose, Gemm, MatMul, the poolings,
 * BatchNormalization, Resize and ReduceMean (F32).
 *
 * Spatial operators handle 1, 2 and 3 spatial dims by one code path: shapes are padded to three
 * dims with size-1 leading dims (kernel 1, stride 1, no padding), which changes no result.
 * Conv runs each group as one product through rt_linear.c: the input is unfolded (im2col, or
 * im2row for the kernels that quantize rows) unless the kernel is 1x1 with stride 1 and no
 * padding, where the input already is the column matrix; depthwise convolutions (one input
 * channel per group) run a direct loop instead, since a product per channel would be tiny: over
 * 2 spatial dims each input plane is copied into a zero-padded plane in the workspace and the
 * rt_gemm family's dw_plane computes the output plane with no clipping (the same sums in the
 * same order as the clipped loop, which serves 3-D kernels). im2col of a 2-D stride-1
 * convolution that keeps the width copies each column row as one shifted block. MaxPool windows
 * that never reach the padding run without clipping either, 2x2 at stride 2 through the
 * rt_gemm family's max2x2, which a Conv also calls per image when the pool is fused into it
 * (rt_session.c).
 * Output sizes follow the ONNX formulas (auto_pad SAME_UPPER puts the odd pad at the end,
 * SAME_LOWER at the start; ceil_mode drops a last window that would start in the end padding).
 * Everything runs on F32, except MaxPool, which takes I8/U8 too and gives the Indices output
 * (both through an argmax loop). Resize computes, per resized dim, the source taps of every
 * output index once at creation (nearest: 1, linear: 2, cubic: 4; tf_crop_and_resize marks the
 * indices outside the input, which take extrapolation_value) and runs one pass per dim.
 */
#include "rt_int.h"

#include "../kernels/rt_gemm_int.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define ND 3 /* spatial dims after padding */

typedef struct spatial {
    int nsp;                     /* spatial dims the tensor really has */
    int64_t in[ND], out[ND], k[ND], s[ND], d[ND], pb[ND], pe[ND];
} spatial_t;

/* Read kernel_shape (or take kw from the weight), strides, dilations, pads and auto_pad, and
 * compute the output size of each spatial dim. pool: ceil_mode applies. */
static int spatial_prep(const rt_node_t *n, const rt_val_t *x, const int64_t *kw, int pool,
                        spatial_t *sp, mp_errctx_t *err)
{
    int64_t v[2 * ND];
    char ap[32];
    int c, rc, ceil_mode = pool ? (int)mp__rt_attr_int(n, "ceil_mode", 0) : 0;
    const int nsp = x->rank - 2;

    MP_RETURN_IF(nsp < 1 || nsp > ND, MP_EUNSUPPORTED,
                 "%s: input '%s' has %d dims; 3 to 5 are supported", n->label, x->name, x->rank);
    sp->nsp = nsp;
    for (int i = 0; i < ND; i++) {
        sp->in[i] = sp->out[i] = sp->k[i] = sp->s[i] = sp->d[i] = 1;
        sp->pb[i] = sp->pe[i] = 0;
    }
    const int o = ND - nsp; /* first real spatial slot */
    for (int i = 0; i < nsp; i++) {
        sp->in[o + i] = x->dims[2 + i];
    }
    if ((rc = mp__rt_attr_ints(n, "kernel_shape", v, ND, &c, err)) < 0) {
        return rc;
    }
    MP_RETURN_IF(rc == 0 && kw == NULL, MP_EINVAL, "%s: no kernel_shape", n->label);
    MP_RETURN_IF(rc == 1 && c != nsp, MP_EINVAL, "%s: kernel_shape has %d values for %d dims",
                 n->label, c, nsp);
    for (int i = 0; i < nsp; i++) {
        sp->k[o + i] = rc == 1 ? v[i] : kw[i];
        MP_RETURN_IF(sp->k[o + i] < 1 || (kw && sp->k[o + i] != kw[i]), MP_EINVAL,
                     "%s: kernel_shape disagrees with the weight", n->label);
    }
#define READ_INTS(name, field, lo)                                                                 \
    if ((rc = mp__rt_attr_ints(n, name, v, ND, &c, err)) < 0) {                                   \
        return rc;                                                                                 \
    }                                                                                              \
    MP_RETURN_IF(rc == 1 && c != nsp, MP_EINVAL, "%s: %s has %d values for %d dims", n->label,    \
                 name, c, nsp);                                                                    \
    for (int i = 0; rc == 1 && i < nsp; i++) {                                                     \
        MP_RETURN_IF(v[i] < (lo), MP_EINVAL, "%s: %s[%d] = %lld", n->label, name, i,              \
                     (long long)v[i]);                                                             \
        sp->field[o + i] = v[i];                                                                   \
    }
    READ_INTS("strides", s, 1)
    READ_INTS("dilations", d, 1)
#undef READ_INTS
    if ((rc = mp__rt_attr_ints(n, "pads", v, 2 * ND, &c, err)) < 0) {
        return rc;
    }
    MP_RETURN_IF(rc == 1 && c != 2 * nsp, MP_EINVAL, "%s: pads has %d values for %d dims",
                 n->label, c, nsp);
    for (int i = 0; rc == 1 && i < nsp; i++) {
        MP_RETURN_IF(v[i] < 0 || v[nsp + i] < 0, MP_EUNSUPPORTED, "%s: negative pads", n->label);
        sp->pb[o + i] = v[i];
        sp->pe[o + i] = v[nsp + i];
    }
    mp__rt_attr_str(n, "auto_pad", ap, sizeof ap, "NOTSET");
    for (int i = o; i < ND; i++) {
        const int64_t ext = (sp->k[i] - 1) * sp->d[i] + 1;
        if (strcmp(ap, "SAME_UPPER") == 0 || strcmp(ap, "SAME_LOWER") == 0) {
            const int64_t out = (sp->in[i] + sp->s[i] - 1) / sp->s[i];
            int64_t total = (out - 1) * sp->s[i] + ext - sp->in[i];
            total = total < 0 ? 0 : total;
            sp->pb[i] = ap[5] == 'U' ? total / 2 : total - total / 2;
            sp->pe[i] = total - sp->pb[i];
            sp->out[i] = out;
            continue;
        }
        if (strcmp(ap, "VALID") == 0) {
            sp->pb[i] = sp->pe[i] = 0;
        } else {
            MP_RETURN_IF(strcmp(ap, "NOTSET") != 0, MP_EINVAL, "%s: auto_pad '%s'", n->label, ap);
        }
        const int64_t span = sp->in[i] + sp->pb[i] + sp->pe[i] - ext;
        MP_RETURN_IF(span < 0, MP_EINVAL,
                     "%s: the kernel (%lld with dilation) is larger than the padded input (%lld)",
                     n->label, (long long)ext, (long long)(sp->in[i] + sp->pb[i] + sp->pe[i]));
        sp->out[i] = (ceil_mode ? (span + sp->s[i] - 1) / sp->s[i] : span / sp->s[i]) + 1;
        if (ceil_mode && (sp->out[i] - 1) * sp->s[i] >= sp->in[i] + sp->pb[i]) {
            sp->out[i]--;
        }
    }
    return 0;
}

static int64_t sp_in(const spatial_t *sp)
{
    return sp->in[0] * sp->in[1] * sp->in[2];
}

static int64_t sp_out(const spatial_t *sp)
{
    return sp->out[0] * sp->out[1] * sp->out[2];
}

/* ---- Conv --------------------------------------------------------------------------------- */

typedef struct conv {
    spatial_t sp;
    int64_t C, M, G, Cg, Mg, K, P;
    int mode;                    /* 0 im2col/im2row, 1 the input is the columns, 2 depthwise */
    int64_t ph, pw;              /* depthwise over 2 dims: the zero-padded plane in ws, else 0 */
    rt_lin_t *lin;
    const float *wd;             /* depthwise: the weight (or NULL: read at run time) */
    float *wd_owned;
} conv_t;

static void conv_free(void *p)
{
    conv_t *c = p;
    mp__rt_lin_free(c->lin);
    free(c->wd_owned);
    free(c);
}

static int conv_prep(rt_sess_t *s, rt_node_t *n, mp_errctx_t *err)
{
    const rt_val_t *x = RT_IN(s, n, 0);
    int64_t wd[MP_MAX_DIMS], od[MP_MAX_DIMS];
    int wr, rc;
    conv_t *c;

    if ((rc = mp__rt_need_type(s, n, 0, MP_DT_F32, err)) < 0) {
        return rc;
    }
    MP_RETURN_IF(n->wsrc.kind == RT_W_PLAIN && !RT_HAS(n, 1), MP_EINVAL, "%s: no weight",
                 n->label);
    if (n->wsrc.kind == RT_W_PLAIN && (rc = mp__rt_need_type(s, n, 1, MP_DT_F32, err)) < 0) {
        return rc;
    }
    mp__rt_weight_shape(s, n, &wr, wd);
    MP_RETURN_IF(wr != x->rank, MP_EINVAL, "%s: weight of %d dims for an input of %d", n->label,
                 wr, x->rank);
    c = calloc(1, sizeof *c);
    MP_RETURN_IF(c == NULL, MP_ENOMEM, "out of memory");
    n->p = c;
    if ((rc = spatial_prep(n, x, wd + 2, 0, &c->sp, err)) < 0) {
        return rc;
    }
    c->C = x->dims[1];
    c->M = wd[0];
    c->G = mp__rt_attr_int(n, "group", 1);
    MP_RETURN_IF(c->G < 1 || c->C % c->G != 0 || c->M % c->G != 0 || wd[1] != c->C / c->G,
                 MP_EINVAL, "%s: %lld groups do not fit %lld input and %lld output channels "
                 "(weight [%lld, %lld, ...])", n->label, (long long)c->G, (long long)c->C,
                 (long long)c->M, (long long)wd[0], (long long)wd[1]);
    c->Cg = c->C / c->G;
    c->Mg = c->M / c->G;
    c->K = c->Cg * c->sp.k[0] * c->sp.k[1] * c->sp.k[2];
    c->P = sp_out(&c->sp);
    if (RT_HAS(n, 2)) {
        const rt_val_t *b = RT_IN(s, n, 2);
        MP_RETURN_IF(b->dt != MP_DT_F32 || b->n != c->M, MP_EINVAL,
                     "%s: bias '%s' must hold %lld floats", n->label, b->name, (long long)c->M);
    }
    od[0] = x->dims[0];
    od[1] = c->M;
    for (int i = 0; i < c->sp.nsp; i++) {
        od[2 + i] = c->sp.out[ND - c->sp.nsp + i];
    }
    if ((rc = mp__rt_out_shape(s, n, 0, MP_DT_F32, x->rank, od, err)) < 0) {
        return rc;
    }
    if (c->Cg == 1 && c->Mg <= 4 && c->G > 1) {
        const spatial_t *sp = &c->sp;
        c->mode = 2;
        if (sp->in[0] == 1 && sp->k[0] == 1 && sp->pb[0] == 0 && sp->pe[0] == 0) {
            c->ph = sp->in[1] + sp->pb[1] + sp->pe[1];
            c->pw = sp->in[2] + sp->pb[2] + sp->pe[2];
            n->ws_bytes = (size_t)(c->ph * c->pw) * sizeof(float);
        }
        return mp__rt_weight_dense(s, n, &c->wd, &c->wd_owned, err);
    }
    if ((rc = mp__rt_lin_prepare(s, n, 0, c->Mg, c->K, (int)c->G, &c->lin, err)) < 0) {
        return rc;
    }
    int one = 1;
    for (int i = 0; i < ND; i++) {
        one &= c->sp.k[i] == 1 && c->sp.s[i] == 1 && c->sp.pb[i] == 0 && c->sp.pe[i] == 0;
    }
    c->mode = one && !mp__rt_lin_wants_rows(c->lin) ? 1 : 0;
    n->ws_bytes = (c->mode == 1 ? 0 : (size_t)(c->K * c->P) * sizeof(float)) +
                  mp__rt_lin_ws_bytes(c->lin, c->P) + 64;
    return 0;
}

/* The output columns [*lo, *hi) whose input column ow * s + off lies inside [0, W). */
static void valid_cols(const spatial_t *sp, int64_t off, int64_t *lo, int64_t *hi)
{
    const int64_t OW = sp->out[2];
    *lo = off >= 0 ? 0 : (-off + sp->s[2] - 1) / sp->s[2];
    *hi = sp->in[2] - 1 - off < 0 ? 0 : (sp->in[2] - 1 - off) / sp->s[2] + 1;
    *hi = *hi > OW ? OW : *hi;
    *lo = *lo > *hi ? *hi : *lo;
}

/* im2col of a 2-D convolution with stride 1 that keeps the width (out[2] == in[2]: "same"
 * padding across), where a column row is the input plane shifted: for each (channel, kh, kw)
 * the rows of valid input are one contiguous copy, then the columns that fell off an edge are
 * zeroed row by row. Output rows without input are zero; they lie at the same places for every
 * image and group of a run, so they are written only when zero_rows (the first unfolding into
 * this workspace of the run). Same values as the general loop, one memcpy per column row
 * instead of one per output row. */
static void im2col_same_width(const conv_t *c, const float *x, float *col, int zero_rows)
{
    const spatial_t *sp = &c->sp;
    const int64_t P = c->P, W = sp->in[2], H = sp->in[1], OH = sp->out[1];
    int64_t row = 0;

    for (int64_t ch = 0; ch < c->Cg; ch++) {
        const float *xc = x + ch * sp_in(sp);
        for (int64_t kh = 0; kh < sp->k[1]; kh++) {
            const int64_t dh = kh * sp->d[1] - sp->pb[1]; /* ih = oh + dh */
            int64_t oh_lo = dh < 0 ? -dh : 0, oh_hi = H - dh < OH ? H - dh : OH;
            oh_hi = oh_hi < oh_lo ? oh_lo : oh_hi;
            for (int64_t kw = 0; kw < sp->k[2]; kw++, row++) {
                const int64_t off = kw * sp->d[2] - sp->pb[2]; /* iw = ow + off */
                const int64_t len = (oh_hi - oh_lo) * W;
                float *dst = col + row * P;
                if (zero_rows) {
                    memset(dst, 0, (size_t)(oh_lo * W) * sizeof *dst);
                    memset(dst + oh_hi * W, 0, (size_t)((OH - oh_hi) * W) * sizeof *dst);
                }
                if (len == 0) {
                    continue;
                }
                dst += oh_lo * W;
                const float *src = xc + (oh_lo + dh) * W + off;
                const int64_t a = off < 0 ? -off : 0, z = off > 0 ? off : 0;
                if (a + z < len) {
                    memcpy(dst + a, src + a, (size_t)(len - a - z) * sizeof *dst);
                }
                /* a column at a time down the rows: strided stores, not a memset call per row */
                for (int64_t j = 0; j < W; j++) {
                    if (j < a || j >= W - z) {
                        for (int64_t r = 0; r < oh_hi - oh_lo; r++) {
                            dst[r * W + j] = 0.0f;
                        }
                    }
                }
            }
        }
    }
}

/* im2col into columns, a row of the output at a time: zeros for the padding, then a strided
 * copy of the valid input columns (no bounds test per element). */
static void im2col_cols(const conv_t *c, const float *x, float *col, int first)
{
    const mp_kern_rt_table_t *kt = mp__kern_rt();
    const spatial_t *sp = &c->sp;
    const int64_t P = c->P, OW = sp->out[2];
    int64_t row = 0;

    if (sp->in[0] == 1 && sp->out[0] == 1 && sp->k[0] == 1 && sp->s[1] == 1 && sp->s[2] == 1 &&
        OW == sp->in[2] && sp->out[1] > 0) {
        im2col_same_width(c, x, col, first);
        return;
    }

    for (int64_t ch = 0; ch < c->Cg; ch++) {
        const float *xc = x + ch * sp_in(sp);
        for (int64_t kd = 0; kd < sp->k[0]; kd++) {
            for (int64_t kh = 0; kh < sp->k[1]; kh++) {
                for (int64_t kw = 0; kw < sp->k[2]; kw++, row++) {
                    const int64_t off = kw * sp->d[2] - sp->pb[2];
                    int64_t lo, hi;
                    valid_cols(sp, off, &lo, &hi);
                    float *dst = col + row * P;
                    for (int64_t od = 0; od < sp->out[0]; od++) {
                        const int64_t id = od * sp->s[0] - sp->pb[0] + kd * sp->d[0];
                        for (int64_t oh = 0; oh < sp->out[1]; oh++, dst += OW) {
                            const int64_t ih = oh * sp->s[1] - sp->pb[1] + kh * sp->d[1];
                            if (id < 0 || id >= sp->in[0] || ih < 0 || ih >= sp->in[1]) {
                                memset(dst, 0, (size_t)OW * sizeof *dst);
                                continue;
                            }
                            const float *restrict xr = xc + (id * sp->in[1] + ih) * sp->in[2] + off;
                            float *restrict d = dst;
                            for (int64_t ow = 0; ow < lo; ow++) {
                                d[ow] = 0.0f;
                            }
                            if (sp->s[2] == 1) {
                                memcpy(d + lo, xr + lo, (size_t)(hi - lo) * sizeof *d);
                            } else if (sp->s[2] == 2) {
                                kt->stride2((size_t)(hi - lo), xr + 2 * lo, d + lo);
                            } else {
                                for (int64_t ow = lo; ow < hi; ow++) {
                                    d[ow] = xr[ow * sp->s[2]];
                                }
                            }
                            for (int64_t ow = hi; ow < OW; ow++) {
                                d[ow] = 0.0f;
                            }
                        }
                    }
                }
            }
        }
    }
}

/* col[row][p] (rows: c, kd, kh, kw in weight order; p: output position), or col[p][row] when
 * by_rows, from one group's input channels. first: the first unfolding of this run into col
 * (nothing written there yet that the geometry keeps). */
static void im2col(const conv_t *c, const float *x, float *col, int by_rows, int first)
{
    const spatial_t *sp = &c->sp;
    const int64_t P = c->P, K = c->K;
    int64_t row = 0;

    if (!by_rows) {
        im2col_cols(c, x, col, first);
        return;
    }
    for (int64_t ch = 0; ch < c->Cg; ch++) {
        const float *xc = x + ch * sp_in(sp);
        for (int64_t kd = 0; kd < sp->k[0]; kd++) {
            for (int64_t kh = 0; kh < sp->k[1]; kh++) {
                for (int64_t kw = 0; kw < sp->k[2]; kw++, row++) {
                    int64_t p = 0;
                    for (int64_t od = 0; od < sp->out[0]; od++) {
                        const int64_t id = od * sp->s[0] - sp->pb[0] + kd * sp->d[0];
                        for (int64_t oh = 0; oh < sp->out[1]; oh++) {
                            const int64_t ih = oh * sp->s[1] - sp->pb[1] + kh * sp->d[1];
                            const int rin = id >= 0 && id < sp->in[0] && ih >= 0 &&
                                            ih < sp->in[1];
                            const float *xr = xc + (id * sp->in[1] + ih) * sp->in[2];
                            for (int64_t ow = 0; ow < sp->out[2]; ow++, p++) {
                                const int64_t iw = ow * sp->s[2] - sp->pb[2] + kw * sp->d[2];
                                const float v = rin && iw >= 0 && iw < sp->in[2] ? xr[iw] : 0.0f;
                                col[by_rows ? p * K + row : row * P + p] = v;
                            }
                        }
                    }
                }
            }
        }
    }
}

/* One output channel of a depthwise convolution: y = bias + sum_k w_k * shifted x. */
static void depthwise(const spatial_t *sp, const float *x, const float *w, float bias, float *y)
{
    const int64_t OW = sp->out[2];

    for (int64_t i = 0; i < sp_out(sp); i++) {
        y[i] = bias;
    }
    for (int64_t kd = 0; kd < sp->k[0]; kd++) {
        for (int64_t kh = 0; kh < sp->k[1]; kh++) {
            for (int64_t kw = 0; kw < sp->k[2]; kw++) {
                const float wv = w[(kd * sp->k[1] + kh) * sp->k[2] + kw];
                const int64_t off = kw * sp->d[2] - sp->pb[2];
                int64_t lo, hi;
                valid_cols(sp, off, &lo, &hi);
                if (lo >= hi) {
                    continue;
                }
                for (int64_t od = 0; od < sp->out[0]; od++) {
                    const int64_t id = od * sp->s[0] - sp->pb[0] + kd * sp->d[0];
                    if (id < 0 || id >= sp->in[0]) {
                        continue;
                    }
                    for (int64_t oh = 0; oh < sp->out[1]; oh++) {
                        const int64_t ih = oh * sp->s[1] - sp->pb[1] + kh * sp->d[1];
                        if (ih < 0 || ih >= sp->in[1]) {
                            continue;
                        }
                        const float *restrict xr = x + (id * sp->in[1] + ih) * sp->in[2] + off;
                        float *restrict yr = y + (od * sp->out[1] + oh) * OW;
                        if (sp->s[2] == 1) {
                            for (int64_t ow = lo; ow < hi; ow++) {
                                yr[ow] += wv * xr[ow];
                            }
                        } else {
                            for (int64_t ow = lo; ow < hi; ow++) {
                                yr[ow] += wv * xr[ow * sp->s[2]];
                            }
                        }
                    }
                }
            }
        }
    }
}

/* Copy one input plane (of in[1] x in[2]) into the middle of the zero-padded plane pad. Only
 * the middle is written, so the border stays zero from the one memset of the run. */
static void pad_plane(const conv_t *c, const float *x, float *pad)
{
    const spatial_t *sp = &c->sp;
    for (int64_t h = 0; h < sp->in[1]; h++) {
        memcpy(pad + (h + sp->pb[1]) * c->pw + sp->pb[2], x + h * sp->in[2],
               (size_t)sp->in[2] * sizeof *pad);
    }
}

/* One output plane of a depthwise convolution from the padded plane, through the rt_gemm
 * family's dw_plane: no clipping, every tap over whole rows (vectorised, the same bits as its
 * reference). A padding tap adds w * 0, so each output is bias + the taps in the order of
 * depthwise() (a tap it skips adds zero here). */
static void depthwise_padded(const conv_t *c, const mp_kern_rt_table_t *kt, const float *pad,
                             const float *w, float bias, float *y)
{
    const spatial_t *sp = &c->sp;
    const mp_kern_dw_geom_t g = {
        .oh = (size_t)sp->out[1], .ow = (size_t)sp->out[2], .kh = (size_t)sp->k[1],
        .kw = (size_t)sp->k[2], .sh = (size_t)sp->s[1], .sw = (size_t)sp->s[2],
        .dh = (size_t)sp->d[1], .dw = (size_t)sp->d[2], .ldx = (size_t)c->pw,
    };
    kt->dw_plane(&g, pad, w, bias, y);
}

static void pool_fused(const rt_exec_t *e, const rt_node_t *pool, int64_t b, const float *y,
                       int relu);

static int conv_run(const rt_exec_t *e, const rt_node_t *n, mp_errctx_t *err)
{
    const conv_t *c = n->p;
    const rt_val_t *x = RT_IN(e->s, n, 0);
    const float *xp = RT_PTR(e, n, 0);
    const float *w_rt = RT_HAS(n, 1) ? RT_PTR(e, n, 1) : NULL;
    const float *bias = RT_HAS(n, 2) ? RT_PTR(e, n, 2) : NULL;
    float *y = RT_OPTR(e, n, 0);
    const int64_t in_sp = sp_in(&c->sp), P = c->P;

    (void)err;
    const mp_kern_rt_table_t *kt = mp__kern_rt();

    if (c->ph > 0) {
        memset(e->ws, 0, (size_t)(c->ph * c->pw) * sizeof(float));
    }
    for (int64_t b = 0; b < x->dims[0]; b++) {
        for (int64_t g = 0; g < c->G; g++) {
            const float *xg = xp + (b * c->C + g * c->Cg) * in_sp;
            float *yg = y + (b * c->M + g * c->Mg) * P;
            const float *bg = bias ? bias + g * c->Mg : NULL;
            if (c->mode == 2 && c->ph > 0) {
                const float *w = c->wd ? c->wd : w_rt;
                pad_plane(c, xg, e->ws);
                for (int64_t m = 0; m < c->Mg; m++) {
                    depthwise_padded(c, kt, e->ws, w + (g * c->Mg + m) * c->K,
                                     bg ? bg[m] : 0.0f, yg + m * P);
                }
            } else if (c->mode == 2) {
                const float *w = c->wd ? c->wd : w_rt;
                for (int64_t m = 0; m < c->Mg; m++) {
                    depthwise(&c->sp, xg, w + (g * c->Mg + m) * c->K, bg ? bg[m] : 0.0f,
                              yg + m * P);
                }
            } else if (c->mode == 1) {
                mp__rt_lin_apply(c->lin, w_rt, (int)g, P, xg, P, 1, yg, P, 1, bg, e->ws);
            } else {
                float *col = e->ws;
                void *lws = col + c->K * P + (16 - (c->K * P) % 16) % 16;
                const int rows = mp__rt_lin_wants_rows(c->lin);
                im2col(c, xg, col, rows, b == 0 && g == 0);
                mp__rt_lin_apply(c->lin, w_rt, (int)g, P, col, rows ? c->K : P, !rows, yg, P, 1,
                                 bg, lws);
            }
            if (n->relu && !n->pool) {
                /* a fused Relu, over this group's outputs while they are in cache */
                mp__rt_relu(yg, yg, c->Mg * P);
            }
        }
        if (n->pool) {
            /* a fused MaxPool 2x2 (and the Relu before it, if fused too), over this image's
             * outputs while they are in cache */
            pool_fused(e, &e->s->nodes[n->pool - 1], b, y + b * c->M * P, n->relu);
        }
    }
    return 0;
}

/* ---- ConvTranspose ------------------------------------------------------------------------ */

typedef struct convt {
    spatial_t sp;                /* in: the input; out: the output */
    int64_t C, M, G, Cg, Mg, KK; /* KK = kernel positions */
} convt_t;

static int convt_prep(rt_sess_t *s, rt_node_t *n, mp_errctx_t *err)
{
    const rt_val_t *x = RT_IN(s, n, 0);
    int64_t wd[MP_MAX_DIMS], od[MP_MAX_DIMS], v[2 * ND], osh[MP_MAX_DIMS], opad[ND] = {0, 0, 0};
    int wr, rc, c_os = 0, c_op = 0, has_os;
    char ap[32];
    convt_t *c;

    if ((rc = mp__rt_need_type(s, n, 0, MP_DT_F32, err)) < 0 ||
        (n->wsrc.kind == RT_W_PLAIN && (rc = mp__rt_need_type(s, n, 1, MP_DT_F32, err)) < 0)) {
        return rc;
    }
    MP_RETURN_IF(n->wsrc.kind != RT_W_PLAIN, MP_EUNSUPPORTED,
                 "%s: a compressed weight is not supported here", n->label);
    mp__rt_weight_shape(s, n, &wr, wd);
    MP_RETURN_IF(wr != x->rank || x->rank < 3 || x->rank > 5, MP_EINVAL,
                 "%s: weight of %d dims for an input of %d", n->label, wr, x->rank);
    c = calloc(1, sizeof *c);
    MP_RETURN_IF(c == NULL, MP_ENOMEM, "out of memory");
    n->p = c;
    /* strides, dilations and kernel as Conv reads them; pads and output sizes are ours */
    if ((rc = mp__rt_attr_ints(n, "pads", v, 2 * ND, &wr, err)) < 0) {
        return rc;
    }
    c->G = mp__rt_attr_int(n, "group", 1);
    c->C = x->dims[1];
    MP_RETURN_IF(c->G < 1 || c->C % c->G != 0 || wd[0] != c->C, MP_EINVAL,
                 "%s: weight [%lld, ...] does not fit %lld channels in %lld groups", n->label,
                 (long long)wd[0], (long long)c->C, (long long)c->G);
    c->Cg = c->C / c->G;
    c->Mg = wd[1];
    c->M = c->Mg * c->G;
    const int nsp = x->rank - 2, o = ND - nsp;
    spatial_t *sp = &c->sp;
    for (int i = 0; i < ND; i++) {
        sp->in[i] = sp->out[i] = sp->k[i] = sp->s[i] = sp->d[i] = 1;
        sp->pb[i] = sp->pe[i] = 0;
    }
    sp->nsp = nsp;
    for (int i = 0; i < nsp; i++) {
        sp->in[o + i] = x->dims[2 + i];
        sp->k[o + i] = wd[2 + i];
    }
    if (rc == 1) {
        MP_RETURN_IF(wr != 2 * nsp, MP_EINVAL, "%s: pads has %d values", n->label, wr);
        for (int i = 0; i < nsp; i++) {
            sp->pb[o + i] = v[i];
            sp->pe[o + i] = v[nsp + i];
        }
    }
    if ((rc = mp__rt_attr_ints(n, "strides", v, ND, &wr, err)) < 0) {
        return rc;
    }
    for (int i = 0; rc == 1 && i < nsp && i < wr; i++) {
        sp->s[o + i] = v[i];
    }
    if ((rc = mp__rt_attr_ints(n, "dilations", v, ND, &wr, err)) < 0) {
        return rc;
    }
    for (int i = 0; rc == 1 && i < nsp && i < wr; i++) {
        sp->d[o + i] = v[i];
    }
    if ((rc = mp__rt_attr_ints(n, "output_padding", v, ND, &c_op, err)) < 0) {
        return rc;
    }
    for (int i = 0; rc == 1 && i < nsp && i < c_op; i++) {
        opad[o + i] = v[i];
    }
    if ((has_os = mp__rt_attr_ints(n, "output_shape", osh, MP_MAX_DIMS, &c_os, err)) < 0) {
        return has_os;
    }
    mp__rt_attr_str(n, "auto_pad", ap, sizeof ap, "NOTSET");
    for (int i = o; i < ND; i++) {
        MP_RETURN_IF(sp->s[i] < 1 || sp->d[i] < 1 || sp->pb[i] < 0 || sp->pe[i] < 0, MP_EINVAL,
                     "%s: bad strides, dilations or pads", n->label);
        const int64_t full = sp->s[i] * (sp->in[i] - 1) + opad[i] + (sp->k[i] - 1) * sp->d[i] + 1;
        int64_t want = -1;
        if (has_os == 1) {
            want = osh[c_os - nsp + (i - o)];
        } else if (strcmp(ap, "SAME_UPPER") == 0 || strcmp(ap, "SAME_LOWER") == 0) {
            want = sp->in[i] * sp->s[i];
        }
        if (want >= 0) {
            const int64_t total = full - want;
            const int upper = strcmp(ap, "SAME_LOWER") != 0;
            sp->pb[i] = upper ? total / 2 : total - total / 2;
            sp->pe[i] = total - sp->pb[i];
        }
        sp->out[i] = full - sp->pb[i] - sp->pe[i];
        MP_RETURN_IF(sp->out[i] < 0, MP_EINVAL, "%s: negative output size", n->label);
    }
    c->KK = sp->k[0] * sp->k[1] * sp->k[2];
    if (RT_HAS(n, 2)) {
        MP_RETURN_IF(RT_IN(s, n, 2)->n != c->M || RT_IN(s, n, 2)->dt != MP_DT_F32, MP_EINVAL,
                     "%s: bias must hold %lld floats", n->label, (long long)c->M);
    }
    od[0] = x->dims[0];
    od[1] = c->M;
    for (int i = 0; i < nsp; i++) {
        od[2 + i] = sp->out[o + i];
    }
    n->ws_bytes = (size_t)(c->Mg * c->KK * sp_in(sp)) * sizeof(float) + 64;
    return mp__rt_out_shape(s, n, 0, MP_DT_F32, x->rank, od, err);
}

static int convt_run(const rt_exec_t *e, const rt_node_t *n, mp_errctx_t *err)
{
    const convt_t *c = n->p;
    const spatial_t *sp = &c->sp;
    const float *x = RT_PTR(e, n, 0), *w = RT_PTR(e, n, 1);
    const float *bias = RT_HAS(n, 2) ? RT_PTR(e, n, 2) : NULL;
    float *y = RT_OPTR(e, n, 0), *col = e->ws;
    const int64_t IP = sp_in(sp), OP = sp_out(sp), B = RT_IN(e->s, n, 0)->dims[0];

    (void)err;
    for (int64_t b = 0; b < B; b++) {
        for (int64_t g = 0; g < c->G; g++) {
            /* col[Mg*KK][IP] = W_g^T (W_g: [Cg][Mg*KK]) x X_g[Cg][IP] */
            mp__rt_sgemm(1, 0, c->Mg * c->KK, IP, c->Cg, w + g * c->Cg * c->Mg * c->KK,
                         c->Mg * c->KK, x + (b * c->C + g * c->Cg) * IP, IP, 0.0f, col, IP);
            for (int64_t m = 0; m < c->Mg; m++) {
                float *ym = y + (b * c->M + g * c->Mg + m) * OP;
                const float bv = bias ? bias[g * c->Mg + m] : 0.0f;
                for (int64_t i = 0; i < OP; i++) {
                    ym[i] = bv;
                }
                for (int64_t kk = 0; kk < c->KK; kk++) {
                    const int64_t kd = kk / (sp->k[1] * sp->k[2]);
                    const int64_t kh = kk / sp->k[2] % sp->k[1], kw = kk % sp->k[2];
                    const float *cr = col + (m * c->KK + kk) * IP;
                    for (int64_t id = 0; id < sp->in[0]; id++) {
                        const int64_t od = id * sp->s[0] - sp->pb[0] + kd * sp->d[0];
                        if (od < 0 || od >= sp->out[0]) {
                            continue;
                        }
                        for (int64_t ih = 0; ih < sp->in[1]; ih++) {
                            const int64_t oh = ih * sp->s[1] - sp->pb[1] + kh * sp->d[1];
                            if (oh < 0 || oh >= sp->out[1]) {
                                continue;
                            }
                            for (int64_t iw = 0; iw < sp->in[2]; iw++) {
                                const int64_t ow = iw * sp->s[2] - sp->pb[2] + kw * sp->d[2];
                                if (ow >= 0 && ow < sp->out[2]) {
                                    ym[(od * sp->out[1] + oh) * sp->out[2] + ow] +=
                                        cr[(id * sp->in[1] + ih) * sp->in[2] + iw];
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    return 0;
}

/* ---- Gemm --------------------------------------------------------------------------------- */

typedef struct gemm {
    int64_t M, N, K;
    int ta;
    float alpha, beta;
    int c_mode;                  /* 0 none, 1 bias vector [N] with alpha = beta = 1, 2 general */
    int64_t cm, cn;              /* C's broadcast dims (1 or M, 1 or N) */
    rt_lin_t *lin;
} gemm_t;

static void lin_holder_free(void *p)
{
    mp__rt_lin_free(((gemm_t *)p)->lin);
    free(p);
}

static int gemm_prep(rt_sess_t *s, rt_node_t *n, mp_errctx_t *err)
{
    const rt_val_t *a = RT_IN(s, n, 0);
    int64_t wd[MP_MAX_DIMS], od[2];
    int wr, rc, tb;
    gemm_t *g;

    if ((rc = mp__rt_need_type(s, n, 0, MP_DT_F32, err)) < 0 ||
        (n->wsrc.kind == RT_W_PLAIN && (rc = mp__rt_need_type(s, n, 1, MP_DT_F32, err)) < 0)) {
        return rc;
    }
    mp__rt_weight_shape(s, n, &wr, wd);
    MP_RETURN_IF(a->rank != 2 || wr != 2, MP_EINVAL, "%s: A and B must be matrices", n->label);
    g = calloc(1, sizeof *g);
    MP_RETURN_IF(g == NULL, MP_ENOMEM, "out of memory");
    n->p = g;
    g->ta = (int)mp__rt_attr_int(n, "transA", 0);
    tb = (int)mp__rt_attr_int(n, "transB", 0);
    g->alpha = mp__rt_attr_float(n, "alpha", 1.0f);
    g->beta = mp__rt_attr_float(n, "beta", 1.0f);
    g->M = g->ta ? a->dims[1] : a->dims[0];
    g->K = g->ta ? a->dims[0] : a->dims[1];
    g->N = tb ? wd[0] : wd[1];
    MP_RETURN_IF((tb ? wd[1] : wd[0]) != g->K, MP_EINVAL,
                 "%s: A is %lldx%lld, B %lldx%lld (transA %d, transB %d)", n->label,
                 (long long)a->dims[0], (long long)a->dims[1], (long long)wd[0],
                 (long long)wd[1], g->ta, tb);
    if (RT_HAS(n, 2)) {
        const rt_val_t *c = RT_IN(s, n, 2);
        MP_RETURN_IF(c->dt != MP_DT_F32 || c->rank > 2, MP_EINVAL, "%s: C must be F32 of 0-2 dims",
                     n->label);
        g->cn = c->rank >= 1 ? c->dims[c->rank - 1] : 1;
        g->cm = c->rank == 2 ? c->dims[0] : 1;
        /* before opset 7 C broadcasts only with broadcast=1, else it is M x N */
        MP_RETURN_IF(s->opset < 7 && mp__rt_attr_int(n, "broadcast", 0) == 0 &&
                         (c->rank != 2 || g->cm != g->M || g->cn != g->N),
                     MP_EINVAL, "%s: at opset %lld, C must be %lldx%lld without broadcast=1",
                     n->label, (long long)s->opset, (long long)g->M, (long long)g->N);
        MP_RETURN_IF((g->cn != 1 && g->cn != g->N) || (g->cm != 1 && g->cm != g->M), MP_EINVAL,
                     "%s: C does not broadcast to %lldx%lld", n->label, (long long)g->M,
                     (long long)g->N);
        g->c_mode = g->alpha == 1.0f && g->beta == 1.0f && g->cm == 1 && g->cn == g->N ? 1 : 2;
    }
    od[0] = g->M;
    od[1] = g->N;
    if ((rc = mp__rt_lin_prepare(s, n, !tb, g->N, g->K, 1, &g->lin, err)) < 0) {
        return rc;
    }
    n->ws_bytes = mp__rt_lin_ws_bytes(g->lin, g->M);
    return mp__rt_out_shape(s, n, 0, MP_DT_F32, 2, od, err);
}

static int gemm_run(const rt_exec_t *e, const rt_node_t *n, mp_errctx_t *err)
{
    const gemm_t *g = n->p;
    const float *a = RT_PTR(e, n, 0);
    const float *w_rt = RT_HAS(n, 1) ? RT_PTR(e, n, 1) : NULL;
    const float *c = RT_HAS(n, 2) ? RT_PTR(e, n, 2) : NULL;
    float *y = RT_OPTR(e, n, 0);

    (void)err;
    mp__rt_lin_apply(g->lin, w_rt, 0, g->M, a, g->ta ? g->M : g->K, g->ta, y, g->N, 0,
                     g->c_mode == 1 ? c : NULL, e->ws);
    if (g->c_mode == 2 || (g->c_mode == 0 && g->alpha != 1.0f)) {
        for (int64_t i = 0; i < g->M; i++) {
            for (int64_t j = 0; j < g->N; j++) {
                float v = g->alpha * y[i * g->N + j];
                if (c != NULL) {
                    v += g->beta * c[(g->cm == 1 ? 0 : i) * g->cn + (g->cn == 1 ? 0 : j)];
                }
                y[i * g->N + j] = v;
            }
        }
    }
    if (n->relu) {
        mp__rt_relu(y, y, g->M * g->N);
    }
    return 0;
}

/* ---- MatMul ------------------------------------------------------------------------------- */

typedef struct matmul {
    gemm_t g;                    /* M, N, K and the lin (first, for lin_holder_free) */
    int64_t rows;                /* with a 2-D B: all rows of A at once */
    int batched;                 /* B has batch dims: one sgemm per batch element */
    int rank;                    /* of the broadcast batch */
    int64_t bd[MP_MAX_DIMS], sa[MP_MAX_DIMS], sb[MP_MAX_DIMS];
    int64_t n_batch;
} matmul_t;

static int matmul_prep(rt_sess_t *s, rt_node_t *n, mp_errctx_t *err)
{
    const rt_val_t *a = RT_IN(s, n, 0);
    int64_t bd[MP_MAX_DIMS], ad[MP_MAX_DIMS], od[MP_MAX_DIMS];
    int br, ar = a->rank, rc, orank = 0;
    matmul_t *m;

    if ((rc = mp__rt_need_type(s, n, 0, MP_DT_F32, err)) < 0 ||
        (n->wsrc.kind == RT_W_PLAIN && (rc = mp__rt_need_type(s, n, 1, MP_DT_F32, err)) < 0)) {
        return rc;
    }
    mp__rt_weight_shape(s, n, &br, bd);
    MP_RETURN_IF(ar < 1 || br < 1, MP_EINVAL, "%s: MatMul of a scalar", n->label);
    m = calloc(1, sizeof *m);
    MP_RETURN_IF(m == NULL, MP_ENOMEM, "out of memory");
    n->p = m;
    memcpy(ad, a->dims, (size_t)ar * sizeof *ad);
    const int a1 = ar == 1, b1 = br == 1;
    if (a1) {
        ad[1] = ad[0];
        ad[0] = 1;
        ar = 2;
    }
    if (b1) {
        bd[1] = 1;
        br = 2;
    }
    m->g.M = ad[ar - 2];
    m->g.K = ad[ar - 1];
    m->g.N = bd[br - 1];
    MP_RETURN_IF(bd[br - 2] != m->g.K, MP_EINVAL, "%s: inner dims %lld and %lld differ",
                 n->label, (long long)m->g.K, (long long)bd[br - 2]);
    /* broadcast batch dims */
    m->rank = (ar > br ? ar : br) - 2;
    m->n_batch = 1;
    for (int i = 0; i < m->rank; i++) {
        const int ia = i - (m->rank - (ar - 2)), ib = i - (m->rank - (br - 2));
        const int64_t da = ia >= 0 ? ad[ia] : 1, db = ib >= 0 ? bd[ib] : 1;
        MP_RETURN_IF(da != db && da != 1 && db != 1, MP_EINVAL,
                     "%s: batch dims %lld and %lld do not broadcast", n->label, (long long)da,
                     (long long)db);
        m->bd[i] = da == 1 ? db : da;
        m->n_batch *= m->bd[i];
        od[orank++] = m->bd[i];
    }
    {
        int64_t stra = m->g.M * m->g.K, strb = m->g.K * m->g.N;
        for (int i = m->rank - 1; i >= 0; i--) {
            const int ia = i - (m->rank - (ar - 2)), ib = i - (m->rank - (br - 2));
            const int64_t da = ia >= 0 ? ad[ia] : 1, db = ib >= 0 ? bd[ib] : 1;
            m->sa[i] = da == 1 ? 0 : stra;
            m->sb[i] = db == 1 ? 0 : strb;
            stra *= da;
            strb *= db;
        }
    }
    if (!a1) {
        od[orank++] = m->g.M;
    }
    if (!b1) {
        od[orank++] = m->g.N;
    }
    m->batched = br > 2;
    if (!m->batched) {
        /* every row of A against one B: one product */
        m->rows = m->n_batch * m->g.M;
        if ((rc = mp__rt_lin_prepare(s, n, 1, m->g.N, m->g.K, 1, &m->g.lin, err)) < 0) {
            return rc;
        }
        n->ws_bytes = mp__rt_lin_ws_bytes(m->g.lin, m->rows);
    } else {
        MP_RETURN_IF(n->wsrc.kind != RT_W_PLAIN, MP_EUNSUPPORTED,
                     "%s: a compressed weight with batch dims", n->label);
    }
    return mp__rt_out_shape(s, n, 0, MP_DT_F32, orank, od, err);
}

static int matmul_run(const rt_exec_t *e, const rt_node_t *n, mp_errctx_t *err)
{
    const matmul_t *m = n->p;
    const float *a = RT_PTR(e, n, 0);
    const float *b = RT_HAS(n, 1) ? RT_PTR(e, n, 1) : NULL;
    float *y = RT_OPTR(e, n, 0);
    const int64_t M = m->g.M, N = m->g.N, K = m->g.K;
    int64_t idx[MP_MAX_DIMS] = {0};

    (void)err;
    if (!m->batched) {
        mp__rt_lin_apply(m->g.lin, b, 0, m->rows, a, K, 0, y, N, 0, NULL, e->ws);
        return 0;
    }
    for (int64_t t = 0; t < m->n_batch; t++) {
        int64_t oa = 0, ob = 0;
        for (int i = 0; i < m->rank; i++) {
            oa += idx[i] * m->sa[i];
            ob += idx[i] * m->sb[i];
        }
        mp__rt_sgemm(0, 0, M, N, K, a + oa, K, b + ob, N, 0.0f, y + t * M * N, N);
        rt_next(idx, m->bd, m->rank);
    }
    return 0;
}

/* ---- pooling ------------------------------------------------------------------------------ */

typedef struct pool {
    spatial_t sp;
    int max, include_pad;
    int inside;                  /* MaxPool whose every window lies inside the input, undilated */
    int by_arg;                  /* MaxPool on I8/U8, or with Indices: the argmax loop */
    int indices, col_major;      /* output 1 wanted; storage_order 1 */
} pool_t;

static int pool_prep(rt_sess_t *s, rt_node_t *n, mp_errctx_t *err, int max)
{
    const rt_val_t *x = RT_IN(s, n, 0);
    int64_t od[MP_MAX_DIMS];
    pool_t *p;
    int rc;

    const int64_t order = mp__rt_attr_int(n, "storage_order", 0);
    const int small_int = max && (x->dt == MP_DT_I8 || x->dt == MP_DT_U8);
    if (!small_int && (rc = mp__rt_need_type(s, n, 0, MP_DT_F32, err)) < 0) {
        return rc;
    }
    MP_RETURN_IF(order != 0 && order != 1, MP_EINVAL, "%s: storage_order %lld (0 or 1)",
                 n->label, (long long)order);
    p = calloc(1, sizeof *p);
    MP_RETURN_IF(p == NULL, MP_ENOMEM, "out of memory");
    n->p = p;
    p->max = max;
    p->indices = max && n->n_out > 1 && n->out[1] >= 0;
    p->col_major = order == 1;
    p->by_arg = small_int || p->indices;
    p->include_pad = (int)mp__rt_attr_int(n, "count_include_pad", 0);
    MP_RETURN_IF(!max && mp__rt_attr(n, "dilations") != NULL, MP_EUNSUPPORTED,
                 "%s: dilations are not supported for AveragePool", n->label);
    if ((rc = spatial_prep(n, x, NULL, 1, &p->sp, err)) < 0) {
        return rc;
    }
    od[0] = x->dims[0];
    od[1] = x->dims[1];
    for (int i = 0; i < p->sp.nsp; i++) {
        od[2 + i] = p->sp.out[ND - p->sp.nsp + i];
    }
    p->inside = max && !p->by_arg;
    for (int i = 0; i < ND; i++) {
        const spatial_t *sp = &p->sp;
        p->inside &= sp->pb[i] == 0 && sp->d[i] == 1 &&
                     (sp->out[i] - 1) * sp->s[i] + sp->k[i] <= sp->in[i];
    }
    if (p->indices && (rc = mp__rt_out_shape(s, n, 1, MP_DT_I64, x->rank, od, err)) < 0) {
        return rc;
    }
    return mp__rt_out_shape(s, n, 0, x->dt, x->rank, od, err);
}

static int pool_two(const spatial_t *sp)
{
    return sp->k[0] == 1 && sp->k[1] == 2 && sp->k[2] == 2 && sp->s[1] == 2 && sp->s[2] == 2;
}

int mp__rt_pool2_fusable(const rt_node_t *n)
{
    const pool_t *p = n->p;
    return strcmp(n->op_type, "MaxPool") == 0 && p != NULL && p->inside && pool_two(&p->sp) &&
           p->sp.nsp == 2;
}

/* The running maximum as ONNX wants it: a NaN wins and stays. */
static inline float max_nan(float acc, float v)
{
    return v > acc || v != v ? v : acc;
}

/* MaxPool when no window reaches the padding: no clipping and no count per output, and the
 * common 2x2 stride-2 window over a row pair by the rt_gemm family's max2x2 (vectorised, the
 * same bits). Same maxima in the same order as the general loop. */
/* relu (a fused Relu before the pool, applied to each input): only for the 2x2 stride-2 window,
 * the one pool a Conv runs (mp__rt_pool2_fusable). */
static void maxpool_inside(const spatial_t *sp, int64_t planes, const float *x, int relu,
                           float *y)
{
    const mp_kern_rt_table_t *kt = mp__kern_rt();
    const int64_t IP = sp_in(sp), OW = sp->out[2];
    const int two = pool_two(sp);

    for (int64_t c = 0; c < planes; c++) {
        const float *xc = x + c * IP;
        float *yc = y + c * sp_out(sp);
        for (int64_t o0 = 0; o0 < sp->out[0]; o0++) {
            if (two) {
                /* the plane's output rows in one call */
                const float *xp = xc + o0 * sp->s[0] * sp->in[1] * sp->in[2];
                kt->max2x2((size_t)sp->out[1], (size_t)OW, xp, (size_t)sp->in[2], relu, yc);
                yc += sp->out[1] * OW;
                continue;
            }
            for (int64_t o1 = 0; o1 < sp->out[1]; o1++, yc += OW) {
                const float *x0 = xc + (o0 * sp->s[0] * sp->in[1] + o1 * sp->s[1]) * sp->in[2];
                for (int64_t ow = 0; ow < OW; ow++) {
                    float acc = -INFINITY;
                    for (int64_t a = 0; a < sp->k[0]; a++) {
                        for (int64_t b = 0; b < sp->k[1]; b++) {
                            const float *xr = x0 + (a * sp->in[1] + b) * sp->in[2] +
                                              ow * sp->s[2];
                            for (int64_t w = 0; w < sp->k[2]; w++) {
                                acc = max_nan(acc, xr[w]);
                            }
                        }
                    }
                    yc[ow] = acc;
                }
            }
        }
    }
}

/* Image b of a MaxPool run by the Conv producing its input (rt_session.c fuses them): y is
 * that image's output planes, relu whether a fused Relu lies between (then applied here, on
 * the fly: the pool is the only reader); the same maxima as the MaxPool step would give. */
static void pool_fused(const rt_exec_t *e, const rt_node_t *pool, int64_t b, const float *y,
                       int relu)
{
    const pool_t *p = pool->p;
    const rt_val_t *x = RT_IN(e->s, pool, 0);
    float *out = RT_OPTR(e, pool, 0);
    maxpool_inside(&p->sp, x->dims[1], y, relu, out + b * x->dims[1] * sp_out(&p->sp));
}

static int maxpool_prep(rt_sess_t *s, rt_node_t *n, mp_errctx_t *err)
{
    return pool_prep(s, n, err, 1);
}

static int avgpool_prep(rt_sess_t *s, rt_node_t *n, mp_errctx_t *err)
{
    return pool_prep(s, n, err, 0);
}

/* The window of output position o: its positions inside the input, [lo, hi) stepping by the
 * dilation from a first one >= 0, and the count of its positions inside the padded input (what
 * count_include_pad divides by). */
static int64_t pool_window(const spatial_t *sp, const int64_t *o, int64_t *lo, int64_t *hi)
{
    int64_t cnt_pad = 1;
    for (int i = 0; i < ND; i++) {
        const int64_t start = o[i] * sp->s[i] - sp->pb[i];
        const int64_t end = start + (sp->k[i] - 1) * sp->d[i] + 1;
        const int64_t pend = end < sp->in[i] + sp->pe[i] ? end : sp->in[i] + sp->pe[i];
        cnt_pad *= (pend - start + sp->d[i] - 1) / sp->d[i];
        lo[i] = start < 0 ? start + (-start + sp->d[i] - 1) / sp->d[i] * sp->d[i] : start;
        hi[i] = end < sp->in[i] ? end : sp->in[i];
    }
    return cnt_pad;
}

/* An I8/U8/F32 element as float (exact for all three). */
static inline float pool_load(mp_dtype_t dt, const void *x, int64_t i)
{
    return dt == MP_DT_F32  ? ((const float *)x)[i]
           : dt == MP_DT_I8 ? (float)((const int8_t *)x)[i]
                            : (float)((const uint8_t *)x)[i];
}

/* MaxPool by argmax, for I8/U8 inputs and for the Indices output: the first maximum of each
 * window wins (a NaN wins and stays, as in max_nan); y takes its bytes, Indices its position in
 * the whole input flattened: plane * (D1 * ... * Dn) plus its offset in the plane, row-major
 * (storage_order 0) or column-major, the first spatial dim fastest (storage_order 1). A window
 * with no position inside the input (pads as large as the kernel) gives the type's lowest
 * value and index -1. */
static void maxpool_arg(const pool_t *p, mp_dtype_t dt, int64_t planes, const void *x, void *y,
                        int64_t *ind)
{
    const spatial_t *sp = &p->sp;
    const int64_t IP = sp_in(sp), OP = sp_out(sp);
    const size_t es = mp_dtype_size(dt);
    int64_t lo[ND], hi[ND], o[ND];

    for (int64_t c = 0; c < planes; c++) {
        const int64_t j0 = c * OP;
        for (o[0] = 0; o[0] < sp->out[0]; o[0]++) {
            for (o[1] = 0; o[1] < sp->out[1]; o[1]++) {
                for (o[2] = 0; o[2] < sp->out[2]; o[2]++) {
                    const int64_t j = j0 + (o[0] * sp->out[1] + o[1]) * sp->out[2] + o[2];
                    int64_t best = -1, pos[ND] = {0, 0, 0};
                    float acc = -INFINITY;
                    pool_window(sp, o, lo, hi);
                    for (int64_t a = lo[0]; a < hi[0]; a += sp->d[0]) {
                        for (int64_t b = lo[1]; b < hi[1]; b += sp->d[1]) {
                            for (int64_t w = lo[2]; w < hi[2]; w += sp->d[2]) {
                                const float v = pool_load(dt, x, c * IP +
                                                          (a * sp->in[1] + b) * sp->in[2] + w);
                                if (best < 0 || v > acc || (v != v && acc == acc)) {
                                    acc = v;
                                    best = 1;
                                    pos[0] = a;
                                    pos[1] = b;
                                    pos[2] = w;
                                }
                            }
                        }
                    }
                    const int64_t at = (pos[0] * sp->in[1] + pos[1]) * sp->in[2] + pos[2];
                    if (best < 0) {
                        if (dt == MP_DT_F32) {
                            ((float *)y)[j] = -INFINITY;
                        } else {
                            ((uint8_t *)y)[j] = dt == MP_DT_I8 ? 0x80 : 0;
                        }
                    } else {
                        memcpy((uint8_t *)y + (size_t)j * es,
                               (const uint8_t *)x + (size_t)(c * IP + at) * es, es);
                    }
                    if (ind != NULL) {
                        const int64_t cm = pos[0] + sp->in[0] * (pos[1] + sp->in[1] * pos[2]);
                        ind[j] = best < 0 ? -1 : c * IP + (p->col_major ? cm : at);
                    }
                }
            }
        }
    }
}

static int pool_run(const rt_exec_t *e, const rt_node_t *n, mp_errctx_t *err)
{
    const pool_t *p = n->p;
    const spatial_t *sp = &p->sp;
    const rt_val_t *xv = RT_IN(e->s, n, 0);
    const float *x = RT_PTR(e, n, 0);
    float *y = RT_OPTR(e, n, 0);
    const int64_t planes = xv->dims[0] * xv->dims[1], IP = sp_in(sp);
    int64_t lo[ND], hi[ND];

    (void)err;
    if (p->by_arg) {
        maxpool_arg(p, xv->dt, planes, x, y, p->indices ? RT_OPTR(e, n, 1) : NULL);
        return 0;
    }
    if (n->by_step) {
        return 0; /* computed by the Conv before it */
    }
    if (p->inside) {
        maxpool_inside(sp, planes, x, 0, y);
        return 0;
    }
    for (int64_t c = 0; c < planes; c++) {
        const float *xc = x + c * IP;
        float *yc = y + c * sp_out(sp);
        int64_t o[ND];
        for (o[0] = 0; o[0] < sp->out[0]; o[0]++) {
            for (o[1] = 0; o[1] < sp->out[1]; o[1]++) {
                for (o[2] = 0; o[2] < sp->out[2]; o[2]++) {
                    const int64_t cnt_pad = pool_window(sp, o, lo, hi);
                    float acc = p->max ? -INFINITY : 0.0f;
                    int64_t cnt = 0;
                    for (int64_t a = lo[0]; a < hi[0]; a += sp->d[0]) {
                        for (int64_t b = lo[1]; b < hi[1]; b += sp->d[1]) {
                            const float *xr = xc + (a * sp->in[1] + b) * sp->in[2];
                            for (int64_t w = lo[2]; w < hi[2]; w += sp->d[2]) {
                                const float v = xr[w];
                                if (p->max) {
                                    acc = max_nan(acc, v);
                                } else {
                                    acc += v;
                                }
                                cnt++;
                            }
                        }
                    }
                    if (!p->max) {
                        acc /= (float)(p->include_pad ? cnt_pad : cnt ? cnt : 1);
                    }
                    yc[(o[0] * sp->out[1] + o[1]) * sp->out[2] + o[2]] = acc;
                }
            }
        }
    }
    return 0;
}

static int gap_prep(rt_sess_t *s, rt_node_t *n, mp_errctx_t *err)
{
    const rt_val_t *x = RT_IN(s, n, 0);
    int64_t od[MP_MAX_DIMS];
    int rc;

    if ((rc = mp__rt_need_type(s, n, 0, MP_DT_F32, err)) < 0) {
        return rc;
    }
    MP_RETURN_IF(x->rank < 3, MP_EINVAL, "%s: input of %d dims", n->label, x->rank);
    for (int i = 0; i < x->rank; i++) {
        od[i] = i < 2 ? x->dims[i] : 1;
    }
    return mp__rt_out_shape(s, n, 0, MP_DT_F32, x->rank, od, err);
}

static int gap_run(const rt_exec_t *e, const rt_node_t *n, mp_errctx_t *err)
{
    const rt_val_t *x = RT_IN(e->s, n, 0);
    const float *xp = RT_PTR(e, n, 0);
    float *y = RT_OPTR(e, n, 0);
    const int64_t planes = x->dims[0] * x->dims[1], S = planes ? x->n / planes : 0;

    (void)err;
    for (int64_t c = 0; c < planes; c++) {
        float acc = 0.0f;
        for (int64_t i = 0; i < S; i++) {
            acc += xp[c * S + i];
        }
        y[c] = acc / (float)(S ? S : 1);
    }
    return 0;
}

/* ---- BatchNormalization ------------------------------------------------------------------- */

/* Inference: y = (x - mean) / sqrt(var + epsilon) * scale + B with the given mean and var.
 * training_mode 1 (opset 14 on): the mean and the biased variance of x over N and the spatial
 * dims of each channel take their place, and the optional outputs 1 and 2 are the running
 * statistics input * momentum + current * (1 - momentum), as ONNX's reference computes them.
 * Before opset 14 training is signalled by the extra outputs (and is_test 0): refused. */
static int bn_prep(rt_sess_t *s, rt_node_t *n, mp_errctx_t *err)
{
    const rt_val_t *x = RT_IN(s, n, 0);
    const int64_t C = x->rank > 1 ? x->dims[1] : 1, train = mp__rt_attr_int(n, "training_mode", 0);
    int rc;

    MP_RETURN_IF(n->n_in < 5, MP_EINVAL, "%s: needs 5 inputs", n->label);
    for (int i = 0; i < 5; i++) {
        if ((rc = mp__rt_need_type(s, n, i, MP_DT_F32, err)) < 0) {
            return rc;
        }
        MP_RETURN_IF(i > 0 && RT_IN(s, n, i)->n != C, MP_EINVAL,
                     "%s: input %d must hold one value per channel", n->label, i);
    }
    MP_RETURN_IF(train != 0 && train != 1, MP_EINVAL, "%s: training_mode %lld (0 or 1)", n->label,
                 (long long)train);
    MP_RETURN_IF(train && s->opset < 14, MP_EINVAL,
                 "%s: training_mode needs opset 14 (this is %lld)", n->label, (long long)s->opset);
    /* before opset 7: is_test 0 is training (ONNX's version converter refuses it too); absent,
     * the outputs say the mode, as from opset 7 */
    MP_RETURN_IF(s->opset < 7 && mp__rt_attr_int(n, "is_test", 1) == 0, MP_EUNSUPPORTED,
                 "%s: is_test 0 (training) is not supported", n->label);
    MP_RETURN_IF(mp__rt_attr_int(n, "spatial", 1) != 1, MP_EUNSUPPORTED,
                 "%s: spatial 0 is not supported", n->label);
    MP_RETURN_IF(train && n->n_out > 3, MP_EINVAL, "%s: %d outputs; training_mode has 3 at most",
                 n->label, n->n_out);
    for (int o = 1; o < n->n_out; o++) {
        MP_RETURN_IF(!train && n->out[o] >= 0, MP_EUNSUPPORTED,
                     "%s: the training outputs (running mean and variance) are not supported "
                     "without training_mode (opset 14 on)",
                     n->label);
        if (n->out[o] >= 0 && (rc = mp__rt_out_shape(s, n, o, MP_DT_F32, 1, &C, err)) < 0) {
            return rc;
        }
    }
    return mp__rt_out_shape(s, n, 0, MP_DT_F32, x->rank, x->dims, err);
}

static int bn_run(const rt_exec_t *e, const rt_node_t *n, mp_errctx_t *err)
{
    const rt_val_t *x = RT_IN(e->s, n, 0);
    const float *xp = RT_PTR(e, n, 0), *sc = RT_PTR(e, n, 1), *bi = RT_PTR(e, n, 2);
    const float *mean = RT_PTR(e, n, 3), *var = RT_PTR(e, n, 4);
    const float eps = mp__rt_attr_float(n, "epsilon", 1e-5f);
    const int train = mp__rt_attr_int(n, "training_mode", 0) != 0;
    const float mom = mp__rt_attr_float(n, "momentum", 0.9f);
    float *y = RT_OPTR(e, n, 0);
    float *run_mean = n->n_out > 1 && n->out[1] >= 0 ? RT_OPTR(e, n, 1) : NULL;
    float *run_var = n->n_out > 2 && n->out[2] >= 0 ? RT_OPTR(e, n, 2) : NULL;
    const int64_t C = x->rank > 1 ? x->dims[1] : 1, S = x->rank > 2 ? rt_prod(x->dims, 2, x->rank)
                                                                    : 1;
    const int64_t B = x->rank > 0 ? x->dims[0] : 1;

    (void)err;
    for (int64_t c = 0; c < C; c++) {
        float m = mean[c], v = var[c];
        if (train) {
            /* two passes in double: the mean, then the mean squared deviation (biased) */
            double sum = 0.0, sq = 0.0;
            const double cnt = (double)(B * S > 0 ? B * S : 1);
            for (int64_t k = 0; k < B; k++) {
                for (int64_t i = 0; i < S; i++) {
                    sum += xp[(k * C + c) * S + i];
                }
            }
            const double mu = sum / cnt;
            for (int64_t k = 0; k < B; k++) {
                for (int64_t i = 0; i < S; i++) {
                    const double d = xp[(k * C + c) * S + i] - mu;
                    sq += d * d;
                }
            }
            m = (float)mu;
            v = (float)(sq / cnt);
            if (run_mean != NULL) {
                run_mean[c] = mean[c] * mom + m * (1.0f - mom);
            }
            if (run_var != NULL) {
                run_var[c] = var[c] * mom + v * (1.0f - mom);
            }
        }
        const float a = sc[c] / sqrtf(v + eps), b = bi[c] - m * a;
        for (int64_t k = 0; k < B; k++) {
            const float *xr = xp + (k * C + c) * S;
            float *yr = y + (k * C + c) * S;
            for (int64_t i = 0; i < S; i++) {
                yr[i] = xr[i] * a + b;
            }
        }
    }
    return 0;
}

/* ---- Resize ------------------------------------------------------------------------------- */

typedef struct resize {
    int rank, linear, cubic;
    int64_t in[MP_MAX_DIMS], out[MP_MAX_DIMS];
    int64_t *i0[MP_MAX_DIMS], *i1[MP_MAX_DIMS]; /* per dim and output index */
    float *w1[MP_MAX_DIMS];                     /* linear: weight of i1 */
    int64_t *ci[MP_MAX_DIMS];                   /* cubic: 4 input indices per output index */
    float *cw[MP_MAX_DIMS];                     /* cubic: their 4 weights */
    uint8_t *ext[MP_MAX_DIMS];                  /* tf_crop_and_resize: outside, extrapolated */
    float ev;                                   /* extrapolation_value */
    int pass[MP_MAX_DIMS];                      /* the dim needs a pass (not the identity) */
} resize_t;

static void resize_free(void *p)
{
    resize_t *r = p;
    for (int d = 0; d < MP_MAX_DIMS; d++) {
        free(r->i0[d]);
        free(r->i1[d]);
        free(r->w1[d]);
        free(r->ci[d]);
        free(r->cw[d]);
        free(r->ext[d]);
    }
    free(r);
}

/* The 4 taps of cubic mode at source coordinate xi of an input of I: the 4 nearest positions
 * of the input padded by 2 at each end (edge values), the ratio in (0, 1] from the position left
 * of xi, the weights the cubic convolution with coefficient A gives; exclude_outside drops the
 * taps outside the input and renormalises, as ONNX's reference does. */
static void cubic_taps(float xi, int64_t I, double A, int exclude, int64_t *idx, float *w)
{
    int64_t base = (int64_t)floorf(xi);
    double ratio = (double)xi - (double)base, c[4], sum = 0.0;
    if (ratio == 0.0) {
        ratio = 1.0;
        base--;
    }
    int64_t s0 = base - 1;
    s0 = s0 < -2 ? -2 : s0 > I - 2 ? I - 2 : s0;
    const double r1 = ratio + 1.0, q = 1.0 - ratio, q1 = q + 1.0;
    c[0] = ((A * r1 - 5.0 * A) * r1 + 8.0 * A) * r1 - 4.0 * A;
    c[1] = ((A + 2.0) * ratio - (A + 3.0)) * ratio * ratio + 1.0;
    c[2] = ((A + 2.0) * q - (A + 3.0)) * q * q + 1.0;
    c[3] = ((A * q1 - 5.0 * A) * q1 + 8.0 * A) * q1 - 4.0 * A;
    for (int t = 0; t < 4; t++) {
        const int64_t at = s0 + t;
        if (exclude && (at < 0 || at >= I)) {
            c[t] = 0.0;
        }
        sum += c[t];
        idx[t] = at < 0 ? 0 : at >= I ? I - 1 : at;
    }
    for (int t = 0; t < 4; t++) {
        w[t] = (float)(exclude && sum != 0.0 ? c[t] / sum : c[t]);
    }
}

static int resize_prep(rt_sess_t *s, rt_node_t *n, mp_errctx_t *err)
{
    const rt_val_t *x = RT_IN(s, n, 0);
    char mode[32], ctm[40], nm[40];
    float scales[MP_MAX_DIMS], roi[2 * MP_MAX_DIMS];
    int64_t sizes[MP_MAX_DIMS], axes[MP_MAX_DIMS];
    int n_axes = 0, rc, ns = 0, have_sizes = 0;
    resize_t *r;
    size_t maxbuf = 0, cur;

    if ((rc = mp__rt_need_type(s, n, 0, MP_DT_F32, err)) < 0) {
        return rc;
    }
    mp__rt_attr_str(n, "mode", mode, sizeof mode, "nearest");
    mp__rt_attr_str(n, "coordinate_transformation_mode", ctm, sizeof ctm,
                    s->opset < 11 ? "asymmetric" : "half_pixel");
    mp__rt_attr_str(n, "nearest_mode", nm, sizeof nm,
                    s->opset < 11 ? "floor" : "round_prefer_floor");
    MP_RETURN_IF(strcmp(mode, "nearest") && strcmp(mode, "linear") && strcmp(mode, "cubic"),
                 MP_EINVAL, "%s: mode '%s' (nearest, linear or cubic)", n->label, mode);
    MP_RETURN_IF(strcmp(ctm, "half_pixel") && strcmp(ctm, "pytorch_half_pixel") &&
                     strcmp(ctm, "align_corners") && strcmp(ctm, "asymmetric") &&
                     strcmp(ctm, "tf_half_pixel_for_nn") && strcmp(ctm, "tf_crop_and_resize"),
                 MP_EINVAL, "%s: coordinate_transformation_mode '%s'", n->label, ctm);
    const int crop = strcmp(ctm, "tf_crop_and_resize") == 0;
    MP_RETURN_IF(strcmp(nm, "round_prefer_floor") && strcmp(nm, "round_prefer_ceil") &&
                     strcmp(nm, "floor") && strcmp(nm, "ceil"),
                 MP_EINVAL, "%s: nearest_mode '%s'", n->label, nm);
    MP_RETURN_IF(mp__rt_attr_int(n, "antialias", 0) != 0, MP_EUNSUPPORTED,
                 "%s: antialias is not supported", n->label);
    MP_RETURN_IF(mp__rt_attr(n, "keep_aspect_ratio_policy") != NULL, MP_EUNSUPPORTED,
                 "%s: keep_aspect_ratio_policy is not supported", n->label);
    if ((rc = mp__rt_attr_ints(n, "axes", axes, MP_MAX_DIMS, &n_axes, err)) < 0) {
        return rc;
    }
    if (rc == 0) {
        n_axes = x->rank;
        for (int d = 0; d < x->rank; d++) {
            axes[d] = d;
        }
    }
    for (int i = 0; i < n_axes; i++) {
        int a;
        if ((rc = mp__rt_axis(n, axes[i], x->rank, &a, err)) < 0) {
            return rc;
        }
        axes[i] = a;
    }
    /* scales: input 1 (opset 10) or 2; sizes: input 3 */
    const int si = s->opset < 11 ? 1 : 2;
    if (RT_HAS(n, 3) && RT_IN(s, n, 3)->n > 0) {
        if ((rc = mp__rt_const_ints(s, n, 3, sizes, MP_MAX_DIMS, &ns, err)) < 0) {
            return rc;
        }
        MP_RETURN_IF(ns != n_axes, MP_EINVAL, "%s: %d sizes for %d axes", n->label, ns, n_axes);
        have_sizes = 1;
    } else {
        const rt_val_t *sv;
        MP_RETURN_IF(!RT_HAS(n, si), MP_EINVAL, "%s: neither scales nor sizes", n->label);
        sv = RT_IN(s, n, si);
        MP_RETURN_IF(sv->cdata == NULL, MP_EUNSUPPORTED, "%s: scales must be known before the run",
                     n->label);
        MP_RETURN_IF(sv->dt != MP_DT_F32 || sv->n != n_axes, MP_EINVAL,
                     "%s: %lld scales for %d axes", n->label, (long long)sv->n, n_axes);
        memcpy(scales, sv->cdata, (size_t)n_axes * sizeof *scales);
    }
    /* tf_crop_and_resize: roi (input 1) holds the starts then the ends of the axes, as
     * fractions of each input length less one */
    if (crop) {
        const rt_val_t *rv = RT_HAS(n, 1) ? RT_IN(s, n, 1) : NULL;
        MP_RETURN_IF(rv == NULL || rv->n != 2 * n_axes, MP_EINVAL,
                     "%s: tf_crop_and_resize needs roi with %d values", n->label, 2 * n_axes);
        MP_RETURN_IF(rv->cdata == NULL, MP_EUNSUPPORTED,
                     "%s: roi (input 1, '%s') must be known before the run", n->label, rv->name);
        MP_RETURN_IF(mp__rt_convert(MP_DT_F32, roi, rv->dt, rv->cdata, rv->n) < 0,
                     MP_EUNSUPPORTED, "%s: roi of type %s", n->label, mp_dtype_name(rv->dt));
    }
    r = calloc(1, sizeof *r);
    MP_RETURN_IF(r == NULL, MP_ENOMEM, "out of memory");
    n->p = r;
    r->rank = x->rank;
    r->linear = mode[0] == 'l';
    r->cubic = mode[0] == 'c';
    r->ev = mp__rt_attr_float(n, "extrapolation_value", 0.0f);
    const double cubic_a = mp__rt_attr_float(n, "cubic_coeff_a", -0.75f);
    const int exclude = mp__rt_attr_int(n, "exclude_outside", 0) != 0;
    float r0[MP_MAX_DIMS], r1[MP_MAX_DIMS];
    for (int d = 0; d < x->rank; d++) {
        r0[d] = 0.0f;
        r1[d] = 1.0f;
    }
    for (int i = 0; crop && i < n_axes; i++) {
        r0[axes[i]] = roi[i];
        r1[axes[i]] = roi[n_axes + i];
    }
    for (int d = 0; d < x->rank; d++) {
        r->in[d] = r->out[d] = x->dims[d];
    }
    float sc[MP_MAX_DIMS];
    for (int d = 0; d < x->rank; d++) {
        sc[d] = 1.0f;
    }
    for (int i = 0; i < n_axes; i++) {
        const int d = (int)axes[i];
        if (have_sizes) {
            r->out[d] = sizes[i];
            sc[d] = x->dims[d] ? (float)sizes[i] / (float)x->dims[d] : 1.0f;
        } else {
            MP_RETURN_IF(!(scales[i] > 0.0f), MP_EINVAL, "%s: scale %g", n->label,
                         (double)scales[i]);
            r->out[d] = (int64_t)floorf((float)x->dims[d] * scales[i]);
            sc[d] = scales[i];
        }
        MP_RETURN_IF(r->out[d] < 0 || (r->out[d] > 0 && x->dims[d] == 0), MP_EINVAL,
                     "%s: output size %lld from an input of %lld", n->label,
                     (long long)r->out[d], (long long)x->dims[d]);
    }
    cur = (size_t)x->n;
    for (int d = 0; d < x->rank; d++) {
        const int64_t I = r->in[d], O = r->out[d];
        r->i0[d] = malloc(((size_t)O + 1) * sizeof(int64_t));
        r->i1[d] = malloc(((size_t)O + 1) * sizeof(int64_t));
        r->w1[d] = malloc(((size_t)O + 1) * sizeof(float));
        r->ext[d] = calloc((size_t)O + 1, 1);
        MP_RETURN_IF(!r->i0[d] || !r->i1[d] || !r->w1[d] || !r->ext[d], MP_ENOMEM,
                     "out of memory");
        if (r->cubic) {
            r->ci[d] = malloc(((size_t)O + 1) * 4 * sizeof(int64_t));
            r->cw[d] = malloc(((size_t)O + 1) * 4 * sizeof(float));
            MP_RETURN_IF(!r->ci[d] || !r->cw[d], MP_ENOMEM, "out of memory");
        }
        int identity = I == O;
        /* the resized length before flooring, as ONNX's reference takes it */
        const float L = (float)I * sc[d];
        for (int64_t o = 0; o < O; o++) {
            const float xo = (float)o;
            float xi;
            if (crop) {
                xi = O > 1 ? r0[d] * (float)(I - 1) + xo * (r1[d] - r0[d]) * (float)(I - 1) /
                                                           (L - 1.0f)
                           : 0.5f * (r0[d] + r1[d]) * (float)(I - 1);
                /* outside the input: extrapolation_value, as TensorFlow's CropAndResize */
                r->ext[d][o] = xi < 0.0f || xi > (float)(I - 1);
                identity &= !r->ext[d][o];
                xi = r->ext[d][o] ? 0.0f : xi;
            } else if (strcmp(ctm, "half_pixel") == 0) {
                xi = (xo + 0.5f) / sc[d] - 0.5f;
            } else if (strcmp(ctm, "pytorch_half_pixel") == 0) {
                xi = O > 1 ? (xo + 0.5f) / sc[d] - 0.5f : 0.0f;
            } else if (strcmp(ctm, "align_corners") == 0) {
                xi = O == 1 ? 0.0f : xo * (float)(I - 1) / (L - 1.0f);
            } else if (strcmp(ctm, "asymmetric") == 0) {
                xi = xo / sc[d];
            } else {
                xi = (xo + 0.5f) / sc[d];
            }
            if (r->cubic) {
                int64_t *ix = r->ci[d] + 4 * o;
                float *w = r->cw[d] + 4 * o;
                cubic_taps(xi, I, cubic_a, exclude, ix, w);
                for (int t = 0; t < 4; t++) {
                    identity &= ix[t] == o ? w[t] == 1.0f : w[t] == 0.0f;
                }
                r->i0[d][o] = r->i1[d][o] = o; /* only for the identity test below */
                r->w1[d][o] = 0.0f;
            } else if (r->linear) {
                xi = xi < 0.0f ? 0.0f : xi > (float)(I - 1) ? (float)(I - 1) : xi;
                const int64_t a = (int64_t)floorf(xi);
                r->i0[d][o] = a;
                r->i1[d][o] = a + 1 < I ? a + 1 : a;
                r->w1[d][o] = xi - (float)a;
            } else {
                float v;
                if (strcmp(nm, "round_prefer_floor") == 0) {
                    v = (xi == floorf(xi) + 0.5f) ? floorf(xi) : roundf(xi);
                } else if (strcmp(nm, "round_prefer_ceil") == 0) {
                    v = roundf(xi);
                } else if (strcmp(nm, "floor") == 0) {
                    v = floorf(xi);
                } else {
                    v = ceilf(xi);
                }
                int64_t a = (int64_t)v;
                a = a < 0 ? 0 : a >= I ? I - 1 : a;
                r->i0[d][o] = r->i1[d][o] = a;
                r->w1[d][o] = 0.0f;
            }
            identity &= r->i0[d][o] == o && r->w1[d][o] == 0.0f;
        }
        r->pass[d] = !identity;
        if (r->pass[d]) {
            cur = cur / (size_t)(I ? I : 1) * (size_t)O;
            maxbuf = cur > maxbuf ? cur : maxbuf;
        }
    }
    n->ws_bytes = 2 * maxbuf * sizeof(float) + 64;
    return mp__rt_out_shape(s, n, 0, MP_DT_F32, x->rank, r->out, err);
}

static int resize_run(const rt_exec_t *e, const rt_node_t *n, mp_errctx_t *err)
{
    const resize_t *r = n->p;
    const float *src = RT_PTR(e, n, 0);
    float *y = RT_OPTR(e, n, 0);
    float *buf[2];
    int64_t dims[MP_MAX_DIMS], last = -1;
    int which = 0;

    (void)err;
    memcpy(dims, r->in, sizeof dims);
    for (int d = 0; d < r->rank; d++) {
        last = r->pass[d] ? d : last;
    }
    if (last < 0) {
        memcpy(y, src, (size_t)RT_OUT(e->s, n, 0)->n * sizeof(float));
        return 0;
    }
    buf[0] = e->ws;
    buf[1] = (float *)e->ws + (n->ws_bytes - 64) / 2 / sizeof(float);
    /* one pass per resized dim: [outer, I, inner] -> [outer, O, inner] */
    for (int d = 0; d < r->rank; d++) {
        if (!r->pass[d]) {
            continue;
        }
        const int64_t outer = rt_prod(dims, 0, d), inner = rt_prod(dims, d + 1, r->rank);
        const int64_t I = r->in[d], O = r->out[d];
        float *dst = d == last ? y : buf[which];
        for (int64_t o = 0; o < outer; o++) {
            const float *xs = src + o * I * inner;
            float *ys = dst + o * O * inner;
            for (int64_t j = 0; j < O; j++) {
                const float *a = xs + r->i0[d][j] * inner, *b = xs + r->i1[d][j] * inner;
                const float w = r->w1[d][j];
                float *yo = ys + j * inner;
                if (r->ext[d][j]) {
                    for (int64_t i = 0; i < inner; i++) {
                        yo[i] = r->ev;
                    }
                } else if (r->cubic) {
                    const int64_t *ix = r->ci[d] + 4 * j;
                    const float *cw = r->cw[d] + 4 * j;
                    for (int64_t i = 0; i < inner; i++) {
                        float acc = 0.0f;
                        for (int t = 0; t < 4; t++) {
                            acc += cw[t] * xs[ix[t] * inner + i];
                        }
                        yo[i] = acc;
                    }
                } else if (!r->linear || w == 0.0f) {
                    memcpy(yo, a, (size_t)inner * sizeof *yo);
                } else {
                    /* a + w (b - a): exactly a where a == b, so flat regions stay flat and
                     * ties stay ties (a maximum test downstream, as in M-LSD, then agrees) */
                    for (int64_t i = 0; i < inner; i++) {
                        yo[i] = a[i] + w * (b[i] - a[i]);
                    }
                }
            }
        }
        dims[d] = O;
        src = dst;
        which ^= 1;
    }
    return 0;
}

/* ---- ReduceMean --------------------------------------------------------------------------- */

typedef struct reduce {
    int rank;
    int64_t dims[MP_MAX_DIMS];
    int red[MP_MAX_DIMS];
    int64_t count;
} reduce_t;

static int reducemean_prep(rt_sess_t *s, rt_node_t *n, mp_errctx_t *err)
{
    const rt_val_t *x = RT_IN(s, n, 0);
    int64_t axes[MP_MAX_DIMS], od[MP_MAX_DIMS];
    int na = 0, rc, orank = 0;
    const int keep = (int)mp__rt_attr_int(n, "keepdims", 1);
    reduce_t *r;

    if ((rc = mp__rt_need_type(s, n, 0, MP_DT_F32, err)) < 0) {
        return rc;
    }
    if (s->opset >= 18 && RT_HAS(n, 1)) {
        rc = mp__rt_const_ints(s, n, 1, axes, MP_MAX_DIMS, &na, err);
    } else {
        rc = mp__rt_attr_ints(n, "axes", axes, MP_MAX_DIMS, &na, err);
    }
    if (rc < 0) {
        return rc;
    }
    r = calloc(1, sizeof *r);
    MP_RETURN_IF(r == NULL, MP_ENOMEM, "out of memory");
    n->p = r;
    r->rank = x->rank;
    memcpy(r->dims, x->dims, sizeof r->dims);
    if (na == 0 && !mp__rt_attr_int(n, "noop_with_empty_axes", 0)) {
        for (int d = 0; d < x->rank; d++) {
            r->red[d] = 1;
        }
    }
    for (int i = 0; i < na; i++) {
        int a;
        if ((rc = mp__rt_axis(n, axes[i], x->rank, &a, err)) < 0) {
            return rc;
        }
        r->red[a] = 1;
    }
    r->count = 1;
    for (int d = 0; d < x->rank; d++) {
        if (r->red[d]) {
            r->count *= x->dims[d];
            if (keep) {
                od[orank++] = 1;
            }
        } else {
            od[orank++] = x->dims[d];
        }
    }
    return mp__rt_out_shape(s, n, 0, MP_DT_F32, orank, od, err);
}

static int reducemean_run(const rt_exec_t *e, const rt_node_t *n, mp_errctx_t *err)
{
    const reduce_t *r = n->p;
    const float *x = RT_PTR(e, n, 0);
    float *y = RT_OPTR(e, n, 0);
    const int64_t ny = RT_OUT(e->s, n, 0)->n;
    int64_t idx[MP_MAX_DIMS] = {0}, ostr[MP_MAX_DIMS], st = 1, total = 1;

    (void)err;
    for (int d = r->rank - 1; d >= 0; d--) {
        ostr[d] = r->red[d] ? 0 : st;
        st *= r->red[d] ? 1 : r->dims[d];
        total *= r->dims[d];
    }
    for (int64_t i = 0; i < ny; i++) {
        y[i] = 0.0f;
    }
    for (int64_t i = 0; i < total; i++) {
        int64_t o = 0;
        for (int d = 0; d < r->rank; d++) {
            o += idx[d] * ostr[d];
        }
        y[o] += x[i];
        rt_next(idx, r->dims, r->rank);
    }
    for (int64_t i = 0; i < ny; i++) {
        y[i] = r->count ? y[i] / (float)r->count : NAN;
    }
    return 0;
}

const rt_op_t mp__rt_ops_nn[] = {
    {"AveragePool", avgpool_prep, pool_run, NULL, 0},
    {"BatchNormalization", bn_prep, bn_run, NULL, 0},
    {"Conv", conv_prep, conv_run, conv_free, 0},
    {"ConvTranspose", convt_prep, convt_run, NULL, 0},
    {"Gemm", gemm_prep, gemm_run, lin_holder_free, 0},
    {"GlobalAveragePool", gap_prep, gap_run, NULL, 0},
    {"MatMul", matmul_prep, matmul_run, lin_holder_free, 0},
    {"MaxPool", maxpool_prep, pool_run, NULL, 0},
    {"ReduceMean", reducemean_prep, reducemean_run, NULL, 0},
    {"Resize", resize_prep, resize_run, resize_free, 0},
    {NULL, NULL, NULL, NULL, 0},
};
