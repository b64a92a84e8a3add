/* pipeline.c — run a parsed recipe on a model: working copies, steps, output model, report.
 *
 * Every selected tensor gets one F32 working copy (F16/BF16/F64 converted; non-finite values
 * refused) that the steps change in recipe order, and that always holds what a reader of the
 * output would get back if the recipe ended there. Prune steps zero entries of the copy. The
 * value-coding step (quantize, share or lowrank) turns the tensor into its stored parts — the
 * tensor itself or its factors, each under a code (recipe_int.h) — and the copy is then
 * re-formed from those stored bytes by the decoder unpack uses, so the error the report gives
 * is the error of what is restored, bit for bit. A quantize after lowrank re-codes the factors
 * and forms the product again. huffman changes no value: the output model is encoded as .mpz
 * once, to measure it.
 *
 * Tensors go through all their steps one at a time (a working copy lives only while its tensor
 * is processed, and the mapped input pages of a finished tensor are handed back), so the memory
 * a run needs beyond the output is about one tensor's worth; only a global prune, which needs
 * one threshold over every selected tensor, keeps all working copies up to that step. Progress is reported after each step of each tensor
 * (a global prune and the .mpz encoding count for all tensors at once); the cancel flag is read
 * before each of them, so a run stops within one step of one tensor.
 *
 * The output model borrows every tensor it does not change from the input (the caller keeps the
 * input alive); the stored tensors of the compressed ones appear where the tensor was, in input
 * order. The metadata key "modelpress" records per compressed tensor its shape, code and
 * factorization, which is all mp_model_unpack() needs. The report: DESIGN.md, Reports, plus
 * per-method figures (README, Recipes).
 */
#include "methods_int.h"
#include "recipe_int.h"

#include "kernels/kernels_int.h"

#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* jansson also refuses names that are not UTF-8, which only models built in memory can have */
#define REPORT_FAIL "cannot write the report: out of memory or a tensor name that is not UTF-8"


static float f16_to_f32(uint16_t h)
{
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    uint32_t bits;
    float f;

    if (exp == 0) {
        f = (float)man * 0x1p-24f; /* zero or subnormal: exact in F32 */
        return sign ? -f : f;
    }
    if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 112u) << 23) | (man << 13);
    }
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* Round to nearest even; callers pass finite values, overflow gives infinity. */
static uint16_t f32_to_f16(float f)
{
    uint32_t x, ax, sign, h, rem;
    float a;

    memcpy(&x, &f, sizeof x);
    sign = (x >> 16) & 0x8000u;
    ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) {
        return (uint16_t)(sign | 0x7e00u); /* NaN */
    }
    if (ax >= 0x477ff000u) {
        return (uint16_t)(sign | 0x7c00u); /* >= 65520 rounds to infinity */
    }
    if (ax < 0x38800000u) {
        /* below 2^-14: a multiple of 2^-24 in F16; scaling by 2^24 is exact, rintf rounds half
         * to even, and a result of 1024 is correctly the smallest normal */
        memcpy(&a, &ax, sizeof a);
        return (uint16_t)(sign | (uint32_t)rintf(a * 0x1p24f));
    }
    h = (((ax >> 23) - 112u) << 10) | ((ax & 0x7fffffu) >> 13);
    rem = ax & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) {
        h++; /* a carry into the exponent is the right answer */
    }
    return (uint16_t)(sign | h);
}

static float bf16_to_f32(uint16_t b)
{
    uint32_t bits = (uint32_t)b << 16;
    float f;

    memcpy(&f, &bits, sizeof f);
    return f;
}

static uint16_t f32_to_bf16(float f)
{
    uint32_t x;

    memcpy(&x, &f, sizeof x);
    if ((x & 0x7fffffffu) > 0x7f800000u) {
        return (uint16_t)((x >> 16) | 0x40u); /* keep NaN a NaN */
    }
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

int mp__tensor_to_f32(const mp_tensor_t *t, float *dst, mp_errctx_t *err)
{
    const unsigned char *src = t->data;
    const size_t n = (size_t)mp_tensor_elements(t);

    if (t->dtype == MP_DT_F32) {
        /* a copy and one vectorised finiteness pass */
        size_t bad;
        if (n == 0) {
            return 0;
        }
        memcpy(dst, src, 4 * n);
        bad = mp__first_nonfinite_f32(dst, n);
        MP_RETURN_IF(bad < n, MP_EINVAL,
                     "tensor '%s': element %zu is %s; only finite values can be compressed",
                     t->name, bad, isnan(dst[bad]) ? "NaN" : "infinite");
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        uint16_t h;
        double d;
        switch (t->dtype) {
        case MP_DT_F32:
            memcpy(&dst[i], src + 4 * i, 4);
            break;
        case MP_DT_F16:
            memcpy(&h, src + 2 * i, 2);
            dst[i] = f16_to_f32(h);
            break;
        case MP_DT_BF16:
            memcpy(&h, src + 2 * i, 2);
            dst[i] = bf16_to_f32(h);
            break;
        case MP_DT_F64:
            memcpy(&d, src + 8 * i, 8);
            MP_RETURN_IF(isfinite(d) && !isfinite((float)d), MP_EINVAL,
                         "tensor '%s': element %zu (%g) does not fit in F32", t->name, i, d);
            dst[i] = (float)d;
            break;
        default:
            return mp__err_set(err, MP_EINVAL, "tensor '%s': dtype %s is not a float type",
                               t->name, mp_dtype_name(t->dtype));
        }
        MP_RETURN_IF(!isfinite(dst[i]), MP_EINVAL,
                     "tensor '%s': element %zu is %s; only finite values can be compressed",
                     t->name, i, isnan(dst[i]) ? "NaN" : "infinite");
    }
    return 0;
}

void mp__f32_to_dtype(const float *src, size_t n, mp_dtype_t dt, void *dst)
{
    unsigned char *out = dst;

    for (size_t i = 0; i < n; i++) {
        uint16_t h;
        double d;
        switch (dt) {
        case MP_DT_F16:
            h = f32_to_f16(src[i]);
            memcpy(out + 2 * i, &h, 2);
            break;
        case MP_DT_BF16:
            h = f32_to_bf16(src[i]);
            memcpy(out + 2 * i, &h, 2);
            break;
        case MP_DT_F64:
            d = src[i];
            memcpy(out + 8 * i, &d, 8);
            break;
        default: /* F32; the pipeline only stores float dtypes */
            memcpy(out + 4 * i, &src[i], 4);
            break;
        }
    }
}


/* ---- state of a run ---------------------------------------------------------------------- */

/* One stored part of a tensor: the tensor itself or one of its factors. */
typedef struct part {
    char *name;                  /* tensor name + part suffix */
    int n_dims;
    int64_t shape[MP_MAX_DIMS];
    size_t n;
    float *v;                    /* its values as a reader gets them (the working copy itself
                                    for an unfactored tensor) */
    int v_owned;                 /* v is this part's own allocation */
    mp_code_t code;              /* resolved for the shape */
    mp_layout_t l;
    void *buf[MP_ROLE_COUNT];    /* the stored tensors, laid out as l says */
} part_t;

/* One selected tensor on its way through the steps. */
typedef struct work {
    const mp_tensor_t *t;        /* input tensor, borrowed */
    mp_plan_t plan;
    float *w;                    /* working copy: n values, what a reader gets back */
    size_t n, rows, cols;
    int coded;                   /* the parts hold the stored form */
    size_t n_parts;
    part_t parts[3];
    size_t r_out, r_in;          /* lowrank: the rank (r_out), or the Tucker-2 ranks */
    int randomized;              /* lowrank: the randomized SVD was used */
    double sse;                  /* share: sum of squared errors of the k-means */
    int shared;
} work_t;

typedef struct run {
    const mp_recipe_t *r;
    const mp_run_opts_t *opts;
    size_t done, total;          /* progress units: one per tensor per step */
    float *scratch;              /* pruning's selection, or the input as F32 for the report: */
    size_t max_n;                /* floats for the largest tensor, allocated on first need */
    size_t *stage_bytes;         /* size of the model after each step */
    json_t *tensors;             /* report entries */
    json_t *record;              /* the "modelpress" metadata's "tensors" */
} run_t;

static int canceled(const run_t *run)
{
    return run->opts != NULL && run->opts->cancel != NULL && atomic_load(run->opts->cancel) != 0;
}

static void progress(run_t *run, size_t units, const char *stage)
{
    run->done += units;
    if (run->opts != NULL && run->opts->progress_cb != NULL) {
        run->opts->progress_cb(run->opts->ud, (double)run->done / (double)run->total, stage);
    }
}

/* The scratch, allocated on first use: a run that only quantizes F32 never needs it. */
static float *scratch(run_t *run, const char *name, mp_errctx_t *err)
{
    size_t n = mp__prune_scratch_elems(&run->max_n, 1), bytes;

    if (run->scratch == NULL) {
        if (n < run->max_n || mp__mul_size(n, sizeof(float), &bytes) ||
            (run->scratch = malloc(bytes)) == NULL) {
            mp__err_set(err, MP_ENOMEM, "out of memory for the scratch of tensor '%s'", name);
        }
    }
    return run->scratch;
}

static const char *const VERBS[] = {"pruning", "quantizing", "sharing the weights of",
                                    "factorizing", "coding"};

static void free_part(part_t *p)
{
    free(p->name);
    if (p->v_owned) {
        free(p->v);
    }
    for (int k = 0; k < MP_ROLE_COUNT; k++) {
        free(p->buf[k]);
    }
    memset(p, 0, sizeof *p);
}

static void free_work(work_t *x)
{
    for (size_t p = 0; p < 3; p++) {
        free_part(&x->parts[p]);
    }
    free(x->w);
    x->w = NULL;
    x->n_parts = 0;
}

/* Bytes the tensor would take if the recipe ended here. */
static size_t work_bytes(const work_t *x)
{
    size_t b = 0;

    if (!x->coded) {
        return x->t->n_bytes;
    }
    for (size_t p = 0; p < x->n_parts; p++) {
        b += x->parts[p].l.n_bytes;
    }
    return b;
}

/* ---- coding a part ------------------------------------------------------------------------- */

/* The stored tensors of p as mp_tensor_t views, for the decoder. */
static void part_views(part_t *p, mp_tensor_t *views, const mp_tensor_t **t)
{
    for (int k = 0; k < MP_ROLE_COUNT; k++) {
        t[k] = NULL;
        if (p->l.role[k].suffix == NULL) {
            continue;
        }
        views[k] = (mp_tensor_t){.name = p->name,
                                 .dtype = p->l.role[k].dtype,
                                 .n_dims = p->l.role[k].n_dims,
                                 .data = p->buf[k],
                                 .n_bytes = p->l.role[k].n_bytes};
        memcpy(views[k].shape, p->l.role[k].shape, sizeof views[k].shape);
        t[k] = &views[k];
    }
}

/* k-means of the part's values into its codebook and indices. Exact zeros (as after pruning)
 * keep a codebook entry 0.0 of their own, index 0, and the other k - 1 entries are the clusters
 * of the nonzeros, so that sharing keeps a pruned weight exactly 0 (Deep Compression). */
static int share_part(part_t *p, const mp_step_t *st, double *sse, mp_errctx_t *err)
{
    const int k = st->share.clusters;
    uint8_t *idx = p->buf[MP_ROLE_MAIN], *assign = NULL;
    float *book = p->buf[MP_ROLE_CODEBOOK], *nz = NULL;
    size_t n_nz = 0;
    int kk = k, off = 0, rc = 0;
    const float *vals = p->v;

    for (size_t i = 0; i < p->n; i++) {
        n_nz += p->v[i] != 0.0f;
    }
    memset(book, 0, (size_t)k * sizeof *book);
    memset(idx, 0, p->n);
    *sse = 0.0;
    if (n_nz < p->n) {
        off = 1;
        kk = k - 1;
        nz = malloc((n_nz ? n_nz : 1) * sizeof *nz);
        assign = malloc(n_nz ? n_nz : 1);
        MP_GOTO_IF(nz == NULL || assign == NULL, MP_ENOMEM, "out of memory sharing '%s'",
                   p->name);
        for (size_t i = 0, j = 0; i < p->n; i++) {
            if (p->v[i] != 0.0f) {
                nz[j++] = p->v[i];
            }
        }
        vals = nz;
    } else {
        assign = idx;
    }
    if (n_nz == 0) {
        goto out; /* every weight is 0: index 0 everywhere */
    }
    if (kk == 1) {
        /* one cluster for the nonzeros: its mean (what any k-means converges to) */
        double sum = 0.0;
        for (size_t j = 0; j < n_nz; j++) {
            sum += vals[j];
        }
        book[1] = (float)(sum / (double)n_nz);
        for (size_t j = 0; j < n_nz; j++) {
            const double d = (double)vals[j] - (double)book[1];
            *sse += d * d;
            assign[j] = 0;
        }
    } else if (st->share.optimal) {
        rc = mp__kmeans_1d_optimal(vals, n_nz, kk, book + off, assign, sse, err);
    } else {
        rc = mp__kmeans_1d(vals, n_nz, kk, (mp__km_init_t)st->share.init, MP_METHOD_SEED,
                           st->share.max_iter, book + off, assign, sse, err);
    }
    if (rc < 0) {
        goto out;
    }
    if (off) {
        for (size_t i = 0, j = 0; i < p->n; i++) {
            if (p->v[i] != 0.0f) {
                idx[i] = (uint8_t)(assign[j++] + 1);
            }
        }
    }
out:
    if (assign != idx) {
        free(assign);
    }
    free(nz);
    return rc;
}

/* Integer, binary or ternary codes of the part: quantize, then pack below 8 bits. */
static int quantize_part(part_t *p, mp_errctx_t *err)
{
    const mp_code_t *c = &p->code;
    const int tensor = c->granularity == MP_GRAN_TENSOR;
    const size_t rows = tensor ? 1 : p->l.rows, cols = tensor ? p->n : p->l.cols;
    const int bits = c->kind == MP_CODE_INT ? c->bits : c->kind == MP_CODE_BINARY ? 1 : 2;
    uint8_t *codes = p->buf[MP_ROLE_MAIN];
    int rc;

    if (bits < 8) {
        codes = malloc(p->n ? p->n : 1);
        MP_RETURN_IF(codes == NULL, MP_ENOMEM, "out of memory quantizing '%s'", p->name);
    }
    if (c->kind == MP_CODE_INT) {
        rc = mp__quant_affine(p->name, p->v, rows, cols,
                              c->granularity == MP_GRAN_GROUP ? c->group : cols, c->bits,
                              c->asymmetric, codes, p->buf[MP_ROLE_SCALE],
                              p->buf[MP_ROLE_ZERO_POINT], err);
        if (rc == 0 && bits < 8 && !c->asymmetric) {
            /* symmetric codes -qmax..qmax are stored offset by 2^(bits-1) */
            for (size_t i = 0; i < p->n; i++) {
                codes[i] = (uint8_t)((int)(int8_t)codes[i] + (1 << (bits - 1)));
            }
        }
    } else if (c->kind == MP_CODE_BINARY) {
        rc = mp__quant_binary(p->name, p->v, rows, cols, codes, p->buf[MP_ROLE_SCALE], err);
    } else {
        rc = mp__quant_ternary(p->name, p->v, rows, cols, codes, p->buf[MP_ROLE_SCALE], err);
    }
    if (rc == 0 && bits < 8) {
        mp__pack_bits(codes, p->n, bits, p->buf[MP_ROLE_MAIN]);
        for (int d = 0; d < p->n_dims; d++) {
            memcpy((unsigned char *)p->buf[MP_ROLE_SHAPE] + d * sizeof(int64_t), &p->shape[d],
                   sizeof(int64_t));
        }
    }
    if (codes != p->buf[MP_ROLE_MAIN]) {
        free(codes);
    }
    return rc;
}

/* Store part p under code c (resolved here for its shape), then re-form p->v from the stored
 * bytes with unpack's decoder. st is the coding step (NULL for raw factors); *sse gets the
 * k-means error of a shared part. */
static int code_part(part_t *p, const mp_code_t *c, const mp_step_t *st, double *sse,
                     mp_errctx_t *err)
{
    mp_tensor_t views[MP_ROLE_COUNT];
    const mp_tensor_t *t[MP_ROLE_COUNT];
    int rc = 0;

    for (int k = 0; k < MP_ROLE_COUNT; k++) {
        free(p->buf[k]);
        p->buf[k] = NULL;
    }
    p->code = *c;
    mp__code_resolve(&p->code, p->n_dims, p->shape);
    MP_RETURN_IF(mp__code_layout(&p->code, p->n_dims, p->shape, &p->l) < 0, MP_EINTERNAL,
                 "tensor '%s': no layout for its code", p->name);
    for (int k = 0; k < MP_ROLE_COUNT; k++) {
        if (p->l.role[k].suffix != NULL) {
            p->buf[k] = malloc(p->l.role[k].n_bytes ? p->l.role[k].n_bytes : 1);
            MP_RETURN_IF(p->buf[k] == NULL, MP_ENOMEM, "out of memory storing '%s'", p->name);
        }
    }
    switch (p->code.kind) {
    case MP_CODE_RAW:
        mp__f32_to_dtype(p->v, p->n, p->code.dtype, p->buf[MP_ROLE_MAIN]);
        break;
    case MP_CODE_SHARE:
        rc = share_part(p, st, sse, err);
        break;
    default:
        rc = quantize_part(p, err);
        break;
    }
    if (rc < 0) {
        return rc;
    }
    part_views(p, views, t);
    return mp__part_decode(p->name, &p->code, &p->l, t, p->v, err);
}

/* ---- the steps ------------------------------------------------------------------------------ */

static int prune_tensor(work_t *x, const mp_step_t *st, run_t *run, mp_errctx_t *err)
{
    size_t n_zeroed;

    switch (st->prune.structure) {
    case MP_STRUCT_NONE:
        if (scratch(run, x->t->name, err) == NULL) {
            return MP_ENOMEM;
        }
        return mp__prune_magnitude(&x->w, &x->n, 1, st->prune.sparsity, run->scratch, &n_zeroed,
                                   err);
    case MP_STRUCT_CHANNEL: {
        uint8_t *removed = malloc(x->rows);
        int rc;
        MP_RETURN_IF(removed == NULL, MP_ENOMEM, "out of memory pruning '%s'", x->t->name);
        rc = mp__prune_channels(x->t->name, x->w, x->rows, x->cols, st->prune.sparsity,
                                st->prune.norm, removed, &n_zeroed, err);
        free(removed);
        return rc;
    }
    case MP_STRUCT_2_4:
        return mp__prune_nm(x->t->name, x->w, x->rows, x->cols, 2, 4, err);
    case MP_STRUCT_4_8:
        return mp__prune_nm(x->t->name, x->w, x->rows, x->cols, 4, 8, err);
    }
    return mp__err_set(err, MP_EINTERNAL, "unknown prune structure");
}

/* The first index r with sum of s[0..r]^2 >= fraction of the total, as a rank (>= 1). */
static size_t energy_rank(const float *s, size_t n, double fraction)
{
    double total = 0.0, acc = 0.0;

    for (size_t j = 0; j < n; j++) {
        total += (double)s[j] * (double)s[j];
    }
    for (size_t j = 0; j < n; j++) {
        acc += (double)s[j] * (double)s[j];
        if (acc >= fraction * total) {
            return j + 1;
        }
    }
    return n > 0 ? n : 1;
}

/* The rank of one mode of full rank `full` whose unfolding is the rows x cols matrix a. */
static int mode_rank(const mp_step_t *st, const char *name, const float *a, size_t rows,
                     size_t cols, size_t full, size_t *r, mp_errctx_t *err)
{
    float *s;
    int rc;

    switch (st->lowrank.rule) {
    case MP_RANK_FIXED:
        *r = (size_t)st->lowrank.rank;
        return 0;
    case MP_RANK_RATIO:
        *r = (size_t)llround(st->lowrank.fraction * (double)full);
        *r = *r < 1 ? 1 : *r > full ? full : *r;
        return 0;
    case MP_RANK_ENERGY:
        break;
    }
    s = malloc(full * sizeof *s);
    MP_RETURN_IF(s == NULL, MP_ENOMEM, "out of memory for the singular values of '%s'", name);
    rc = mp__svd_values(a, rows, cols, s, err);
    if (rc == 0) {
        *r = energy_rank(s, full, st->lowrank.fraction);
    }
    free(s);
    return rc;
}

/* Set up part p of x with the given shape and its own value buffer. */
static int new_part(work_t *x, size_t i, int n_dims, const int64_t *shape, mp_errctx_t *err)
{
    part_t *p = &x->parts[i];
    int64_t n;

    p->n_dims = n_dims;
    memcpy(p->shape, shape, (size_t)n_dims * sizeof *shape);
    mp__shape_bytes(MP_DT_F32, n_dims, shape, &n, NULL); /* a part of x: it fits */
    p->n = (size_t)n;
    p->name = mp__name_join(x->t->name, x->plan.part_suffix[i]);
    p->v = malloc(p->n * sizeof *p->v);
    p->v_owned = 1;
    MP_RETURN_IF(p->name == NULL || p->v == NULL, MP_ENOMEM, "out of memory factorizing '%s'",
                 x->t->name);
    return 0;
}

/* Form x->w from the coded factors again. */
static int expand(work_t *x, mp_errctx_t *err)
{
    if (x->plan.factored == 1) {
        mp__lowrank_expand(x->parts[0].v, x->parts[1].v, x->rows, x->r_out, x->cols, x->w);
        return 0;
    }
    return mp__tucker2_expand(x->parts[0].v, x->parts[1].v, x->parts[2].v,
                              (size_t)x->t->shape[0], (size_t)x->t->shape[1],
                              x->n / (size_t)(x->t->shape[0] * x->t->shape[1]), x->r_out,
                              x->r_in, x->w, err);
}

static int lowrank_tensor(work_t *x, const mp_step_t *st, mp_errctx_t *err)
{
    int part_dims[3];
    int64_t part_shape[3][MP_MAX_DIMS];
    float *unf = NULL;
    double rel;
    mp_code_t raw;
    int rc = 0;

    if (x->plan.factored == 1) {
        /* w [m, n] ~ u [m, r] v [r, n] by truncated SVD */
        const size_t m = x->rows, n = x->cols, full = m < n ? m : n;
        if ((rc = mode_rank(st, x->t->name, x->w, m, n, full, &x->r_out, err)) < 0) {
            return rc;
        }
        x->randomized = st->lowrank.randomized >= 0 ? st->lowrank.randomized
                                                    : full > MP_LOWRANK_RANDOMIZED_ABOVE;
    } else {
        /* Tucker-2: the rank of each channel mode, from the unfolding along it */
        const size_t o = (size_t)x->t->shape[0], i = (size_t)x->t->shape[1];
        const size_t s = x->n / (o * i);
        const size_t full_out = o < i * s ? o : i * s, full_in = i < o * s ? i : o * s;
        if (st->lowrank.rule == MP_RANK_ENERGY) {
            unf = malloc(x->n * sizeof *unf);
            MP_GOTO_IF(unf == NULL, MP_ENOMEM, "out of memory factorizing '%s'", x->t->name);
            /* mode 1 unfolding: unf[j][p s + k] = w[p][j][k] */
            for (size_t p = 0; p < o; p++) {
                for (size_t j = 0; j < i; j++) {
                    memcpy(unf + j * o * s + p * s, x->w + (p * i + j) * s, s * sizeof *unf);
                }
            }
        }
        if ((rc = mode_rank(st, x->t->name, x->w, o, i * s, full_out, &x->r_out, err)) < 0 ||
            (rc = mode_rank(st, x->t->name, unf, i, o * s, full_in, &x->r_in, err)) < 0) {
            goto out;
        }
    }
    x->n_parts = mp__part_shapes(x->plan.factored, x->t->n_dims, x->t->shape, x->r_out, x->r_in,
                                 part_dims, part_shape);
    for (size_t p = 0; p < x->n_parts; p++) {
        if ((rc = new_part(x, p, part_dims[p], part_shape[p], err)) < 0) {
            goto out;
        }
    }
    if (x->plan.factored == 1) {
        rc = mp__svd_lowrank(x->w, x->rows, x->cols, x->r_out, x->randomized,
                             MP_LOWRANK_POWER_ITERS, MP_METHOD_SEED, x->parts[0].v,
                             x->parts[1].v, &rel, err);
    } else {
        rc = mp__tucker2(x->w, (size_t)x->t->shape[0], (size_t)x->t->shape[1],
                         x->n / (size_t)(x->t->shape[0] * x->t->shape[1]), 1, x->r_out, x->r_in,
                         MP_TUCKER_SWEEPS, x->parts[0].v, x->parts[1].v, x->parts[2].v, &rel,
                         err);
    }
    if (rc < 0) {
        goto out;
    }
    /* the factors are stored raw until a quantize codes them */
    mp__step_code(NULL, x->plan.factor_dtype, &raw);
    for (size_t p = 0; p < x->n_parts; p++) {
        if ((rc = code_part(&x->parts[p], &raw, NULL, NULL, err)) < 0) {
            goto out;
        }
    }
    x->coded = 1;
    rc = expand(x, err);
out:
    free(unf);
    return rc;
}

/* quantize or share: code every part (the tensor itself, or its factors) */
static int code_tensor(work_t *x, const mp_step_t *st, mp_errctx_t *err)
{
    int rc;

    if (!x->coded) {
        part_t *p = &x->parts[0];
        x->n_parts = 1;
        p->n_dims = x->t->n_dims;
        memcpy(p->shape, x->t->shape, sizeof p->shape);
        p->n = x->n;
        p->v = x->w; /* decoded in place: the working copy is the part's values */
        p->name = strdup(x->t->name);
        MP_RETURN_IF(p->name == NULL, MP_ENOMEM, "out of memory coding '%s'", x->t->name);
    }
    for (size_t p = 0; p < x->n_parts; p++) {
        if ((rc = code_part(&x->parts[p], &x->plan.code, st, &x->sse, err)) < 0) {
            return rc;
        }
    }
    x->shared = st->kind == MP_STEP_SHARE;
    x->coded = 1;
    return x->plan.factored ? expand(x, err) : 0;
}

/* Step s of the recipe on one tensor (a global prune is run_global's, huffman the end's). */
static int step_tensor(work_t *x, size_t s, run_t *run, mp_errctx_t *err)
{
    const mp_step_t *st = &run->r->steps[s];

    MP_RETURN_IF(canceled(run), MP_ECANCELED, "canceled before %s tensor '%s'", VERBS[st->kind],
                 x->t->name);
    switch (st->kind) {
    case MP_STEP_PRUNE:
        return prune_tensor(x, st, run, err);
    case MP_STEP_LOWRANK:
        return lowrank_tensor(x, st, err);
    case MP_STEP_QUANTIZE:
    case MP_STEP_SHARE:
        return code_tensor(x, st, err);
    case MP_STEP_HUFFMAN:
        break; /* the whole output at the end */
    }
    return mp__err_set(err, MP_EINTERNAL, "step %s has no per-tensor work", mp__step_name(st->kind));
}

/* ---- report, record and output -------------------------------------------------------------- */

/* |x| below the smallest subnormal is x == +-0 */
static size_t count_zeros(const float *w, size_t n)
{
    return mp__kern()->count_below_f32(w, n, FLT_TRUE_MIN);
}

static json_t *shape_json(int n_dims, const int64_t *shape)
{
    json_t *a = json_array();

    for (int d = 0; d < n_dims && a != NULL; d++) {
        if (json_array_append_new(a, json_integer(shape[d])) < 0) {
            json_decref(a);
            a = NULL;
        }
    }
    return a;
}

static json_t *steps_json(const mp_recipe_t *r)
{
    json_t *a = json_array();

    for (size_t s = 0; s < r->n_steps && a != NULL; s++) {
        if (r->steps[s].kind != MP_STEP_HUFFMAN &&
            json_array_append_new(a, json_string(mp__step_name(r->steps[s].kind))) < 0) {
            json_decref(a);
            a = NULL;
        }
    }
    return a;
}

/* The rank as the record and the report give it: r, or [r_out, r_in] for Tucker-2. */
static json_t *rank_json(const work_t *x)
{
    return x->plan.factored == 1 ? json_integer((json_int_t)x->r_out)
                                 : json_pack("[I, I]", (json_int_t)x->r_out,
                                             (json_int_t)x->r_in);
}

/* The code the record and the report give: resolved for the tensor when it is stored whole,
 * the plan's when factored (each factor resolves it for its own shape). */
static void final_code(const work_t *x, mp_code_t *code)
{
    if (!x->coded) {
        mp__step_code(NULL, x->t->dtype, code); /* pruned only: stored as it came */
    } else {
        *code = x->plan.factored ? x->plan.code : x->parts[0].code;
    }
}

/* The record entry unpack reads (recipe_int.h, unpack.c). */
static int record_tensor(run_t *run, const work_t *x, double sparsity)
{
    json_t *e = json_object();
    mp_code_t code;
    int bad = e == NULL;

    final_code(x, &code);
    bad = bad || json_object_set_new(e, "dtype", json_string(mp_dtype_name(x->t->dtype))) ||
          json_object_set_new(e, "shape", shape_json(x->t->n_dims, x->t->shape)) ||
          json_object_set_new(e, "steps", steps_json(run->r)) ||
          json_object_set_new(e, "sparsity", json_real(sparsity)) ||
          json_object_set_new(e, "code", mp__code_json(&code));
    if (!bad && x->plan.factored) {
        bad = json_object_set_new(e, "lowrank",
                                  json_pack("{s:s, s:o}", "decomposition",
                                            x->plan.factored == 1 ? "svd" : "tucker2", "rank",
                                            rank_json(x)));
    }
    if (bad) {
        json_decref(e);
        return -1;
    }
    return json_object_set_new(run->record, x->t->name, e) < 0 ? -1 : 0;
}

/* Per-method figures of the report for a factored tensor. */
static int lowrank_figures(json_t *e, const work_t *x)
{
    const size_t o = (size_t)x->t->shape[0];
    size_t after = 0, flops_after;
    int bad;

    for (size_t p = 0; p < x->n_parts; p++) {
        after += x->parts[p].n;
    }
    if (x->plan.factored == 1) {
        /* y = W x costs m n multiply-adds; y = U (V x) costs r (m + n) */
        flops_after = 2 * x->r_out * (x->rows + x->cols);
    } else {
        /* one output position: i -> r_in (1x1), r_in -> r_out (k...), r_out -> o (1x1) */
        const size_t i = (size_t)x->t->shape[1], s = x->n / (o * i);
        flops_after = 2 * (x->r_in * i + x->r_out * x->r_in * s + o * x->r_out);
    }
    bad = json_object_set_new(e, "decomposition",
                              json_string(x->plan.factored == 1 ? "svd" : "tucker2")) ||
          json_object_set_new(e, "rank", rank_json(x)) ||
          json_object_set_new(e, "params_before", json_integer((json_int_t)x->n)) ||
          json_object_set_new(e, "params_after", json_integer((json_int_t)after)) ||
          json_object_set_new(e, "flops_before", json_integer((json_int_t)(2 * x->n))) ||
          json_object_set_new(e, "flops_after", json_integer((json_int_t)flops_after));
    if (x->plan.factored == 1) {
        bad = bad || json_object_set_new(e, "randomized", json_boolean(x->randomized));
    }
    return bad ? -1 : 0;
}

/* The report entry of x, from its final values and the input's: read where they are mapped
 * when they are aligned F32, else converted into the scratch. */
static int report_tensor(run_t *run, const work_t *x, mp_errctx_t *err)
{
    json_t *e = json_object(), *stored = json_array();
    const size_t bytes = work_bytes(x);
    const double sparsity = (double)count_zeros(x->w, x->n) / (double)x->n;
    double rel, sqnr;
    mp_code_t code;
    const float *orig;
    int bad = e == NULL || stored == NULL, rc = 0;

    if (x->t->dtype == MP_DT_F32 && (uintptr_t)x->t->data % _Alignof(float) == 0) {
        orig = x->t->data;
    } else if (scratch(run, x->t->name, err) == NULL ||
               (rc = mp__tensor_to_f32(x->t, run->scratch, err)) < 0) {
        json_decref(e);
        json_decref(stored);
        return rc < 0 ? rc : MP_ENOMEM;
    } else {
        orig = run->scratch;
    }
    mp__error_stats(orig, x->w, x->n, &rel, &sqnr);
    final_code(x, &code);
    for (size_t p = 0; x->coded && p < x->n_parts && !bad; p++) {
        for (int k = 0; k < MP_ROLE_COUNT && !bad; k++) {
            if (x->parts[p].l.role[k].suffix != NULL) {
                char *name = mp__name_join(x->parts[p].name, x->parts[p].l.role[k].suffix);
                bad = name == NULL || json_array_append_new(stored, json_string(name));
                free(name);
            }
        }
    }
    if (!x->coded) {
        bad = bad || json_array_append_new(stored, json_string(x->t->name));
    }
    bad = bad || json_object_set_new(e, "name", json_string(x->t->name)) ||
          json_object_set_new(e, "shape", shape_json(x->t->n_dims, x->t->shape)) ||
          json_object_set_new(e, "dtype", json_string(mp_dtype_name(x->t->dtype))) ||
          json_object_set_new(e, "steps", steps_json(run->r)) ||
          json_object_set_new(e, "code", mp__code_json(&code)) ||
          json_object_set(e, "stored", stored) ||
          json_object_set_new(e, "elements", json_integer((json_int_t)x->n)) ||
          json_object_set_new(e, "sparsity", json_real(sparsity)) ||
          json_object_set_new(e, "bits_per_weight",
                              json_real((double)bytes * 8.0 / (double)x->n)) ||
          json_object_set_new(e, "bytes_before", json_integer((json_int_t)x->t->n_bytes)) ||
          json_object_set_new(e, "bytes_after", json_integer((json_int_t)bytes)) ||
          json_object_set_new(e, "rel_error", json_real(rel)) ||
          json_object_set_new(e, "sqnr_db", isfinite(sqnr) ? json_real(sqnr) : json_null());
    if (!bad && x->shared) {
        bad = json_object_set_new(e, "clusters", json_integer(x->plan.code.clusters)) ||
              json_object_set_new(e, "sse", json_real(x->sse));
    }
    if (!bad && x->plan.factored) {
        bad = lowrank_figures(e, x) < 0;
    }
    if (!bad && x->t->n_dims >= 2) {
        /* output channels that are all zero can be removed from the layer */
        size_t zero_rows = 0;
        for (size_t r = 0; r < x->rows; r++) {
            zero_rows += count_zeros(x->w + r * x->cols, x->cols) == x->cols;
        }
        bad = json_object_set_new(e, "zero_channels", json_integer((json_int_t)zero_rows));
    }
    bad = bad || json_array_append(run->tensors, e) || record_tensor(run, x, sparsity) < 0;
    json_decref(stored);
    json_decref(e);
    MP_RETURN_IF(bad, MP_ENOMEM, REPORT_FAIL);
    return 0;
}

/* Append x's stored tensors to out, which takes their buffers. */
static int emit_tensor(mp_model_t *out, work_t *x, mp_errctx_t *err)
{
    const mp_tensor_t *t = x->t;
    void *buf;
    int rc = 0;

    if (!x->coded) {
        /* pruned only, or not changed at all: dense in its own dtype */
        if (t->dtype == MP_DT_F32) {
            buf = x->w;
            x->w = NULL;
        } else {
            buf = malloc(t->n_bytes ? t->n_bytes : 1);
            MP_RETURN_IF(buf == NULL, MP_ENOMEM, "out of memory storing tensor '%s'", t->name);
            mp__f32_to_dtype(x->w, x->n, t->dtype, buf);
        }
        return mp_model_add_take(out, t->name, t->dtype, t->n_dims, t->shape, buf, t->n_bytes,
                                 err);
    }
    for (size_t p = 0; p < x->n_parts && rc == 0; p++) {
        part_t *q = &x->parts[p];
        for (int k = 0; k < MP_ROLE_COUNT && rc == 0; k++) {
            char *name;
            if (q->l.role[k].suffix == NULL) {
                continue;
            }
            name = mp__name_join(q->name, q->l.role[k].suffix);
            if (name == NULL) {
                return mp__err_set(err, MP_ENOMEM, "out of memory storing '%s'", q->name);
            }
            rc = mp_model_add_take(out, name, q->l.role[k].dtype, q->l.role[k].n_dims,
                                   q->l.role[k].shape, q->buf[k], q->l.role[k].n_bytes, err);
            q->buf[k] = NULL; /* taken even on failure */
            free(name);
        }
    }
    return rc;
}

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Working copy of x from its input tensor. */
static int load_work(work_t *x, mp_errctx_t *err)
{
    if (x->w != NULL) {
        return 0;
    }
    x->w = malloc(x->n * sizeof *x->w);
    MP_RETURN_IF(x->w == NULL, MP_ENOMEM, "out of memory copying tensor '%s'", x->t->name);
    return mp__tensor_to_f32(x->t, x->w, err);
}

/* The leading steps up to and including the last global prune, step by step over every
 * selected tensor at once; returns how many steps were run. */
static int run_global(run_t *run, work_t *wk, size_t n_work, size_t *n_done, mp_errctx_t *err)
{
    size_t last = SIZE_MAX, n_zeroed;
    float **w = NULL;
    size_t *n = NULL;
    float *scratch = NULL;
    int rc = 0;

    *n_done = 0;
    for (size_t s = 0; s < run->r->n_steps; s++) {
        if (run->r->steps[s].kind == MP_STEP_PRUNE &&
            run->r->steps[s].prune.scope == MP_SCOPE_GLOBAL) {
            last = s;
        }
    }
    if (last == SIZE_MAX) {
        return 0;
    }
    w = calloc(n_work, sizeof *w);
    n = calloc(n_work, sizeof *n);
    MP_GOTO_IF(w == NULL || n == NULL, MP_ENOMEM, "out of memory for the prune step");
    for (size_t i = 0; i < n_work; i++) {
        if ((rc = load_work(&wk[i], err)) < 0) {
            goto out;
        }
        w[i] = wk[i].w;
        n[i] = wk[i].n;
    }
    for (size_t s = 0; s <= last; s++) {
        const mp_step_t *st = &run->r->steps[s];
        if (st->prune.scope == MP_SCOPE_LAYER) {
            for (size_t i = 0; i < n_work; i++) {
                if ((rc = step_tensor(&wk[i], s, run, err)) < 0) {
                    goto out;
                }
                progress(run, 1, "prune");
            }
        } else {
            /* one threshold across every selected tensor: a single call over all of them */
            MP_GOTO_IF(canceled(run), MP_ECANCELED, "canceled before the global prune step");
            free(scratch);
            scratch = malloc(mp__prune_scratch_elems(n, n_work) * sizeof *scratch);
            MP_GOTO_IF(scratch == NULL, MP_ENOMEM, "out of memory for the prune step");
            rc = mp__prune_magnitude(w, n, n_work, st->prune.sparsity, scratch, &n_zeroed, err);
            if (rc < 0) {
                goto out;
            }
            progress(run, n_work, "prune");
        }
        for (size_t i = 0; i < n_work; i++) {
            run->stage_bytes[s] += work_bytes(&wk[i]);
        }
    }
    *n_done = last + 1;
out:
    free(scratch);
    free(n);
    free(w);
    return rc;
}

/* Hand the pages of a mapped input tensor that is done with back to the kernel: the output
 * no longer refers to them, and a later read (the caller may still look) faults them in again
 * from the file. Without this a file-backed mapping keeps the whole input resident, and the
 * run's peak memory is the input plus everything made from it. */
static void release_input(const mp_model_t *in, const mp_tensor_t *t)
{
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), map = (uintptr_t)in->map;
    uintptr_t lo = (uintptr_t)t->data, hi = lo + t->n_bytes;

    if (in->map == NULL || lo < map || hi > map + in->map_bytes || page == 0) {
        return;
    }
    /* whole pages inside the tensor only: a neighbour may share the first or the last */
    lo = (lo + page - 1) / page * page;
    hi = hi / page * page;
    if (hi > lo) {
        (void)madvise((void *)lo, hi - lo, MADV_DONTNEED);
    }
}

/* Measure the output as the .mpz container: the size of the encoded image. */
static int mpz_bytes(const mp_model_t *m, size_t *n_bytes, mp_errctx_t *err)
{
    uint8_t *buf = NULL;
    int rc = mp_mpz_encode(m, &buf, n_bytes, err);

    free(buf);
    return rc;
}

static int add_report_totals(json_t *report, const run_t *run, size_t n_tensors, size_t n_work,
                             size_t bytes_before, size_t bytes_after, double t0)
{
    json_t *stages = json_array();
    int bad = stages == NULL;

    for (size_t s = 0; s < run->r->n_steps && !bad; s++) {
        bad = json_array_append_new(stages, json_pack("{s:s, s:I}", "step",
                                                      mp__step_name(run->r->steps[s].kind),
                                                      "bytes",
                                                      (json_int_t)run->stage_bytes[s]));
    }
    if (!bad && run->r->format == MP_OUT_MPZ && !run->r->has_huffman) {
        /* output.format mpz without a huffman step: the container is its own stage */
        bad = json_array_append_new(stages, json_pack("{s:s, s:I}", "step", "mpz", "bytes",
                                                      (json_int_t)bytes_after));
    }
    bad = bad || json_object_set_new(report, "n_tensors", json_integer((json_int_t)n_tensors)) ||
          json_object_set_new(report, "n_compressed", json_integer((json_int_t)n_work)) ||
          json_object_set_new(report, "bytes_before", json_integer((json_int_t)bytes_before)) ||
          json_object_set_new(report, "bytes_after", json_integer((json_int_t)bytes_after)) ||
          json_object_set_new(report, "compression_ratio",
                              json_real((double)bytes_before / (double)bytes_after)) ||
          json_object_set_new(report, "output_format",
                              json_string(mp_recipe_output_format(run->r))) ||
          json_object_set(report, "stages", stages) ||
          json_object_set_new(report, "isa", json_string(mp_kern_isa())) ||
          json_object_set_new(report, "duration_ms", json_real(now_ms() - t0));
    json_decref(stages);
    return bad ? -1 : 0;
}

int mp_report_set_output_format(char **report_json, const char *format, mp_errctx_t *err)
{
    json_t *j;
    char *text;

    MP_RETURN_IF(report_json == NULL || *report_json == NULL || format == NULL, MP_EINVAL,
                 "mp_report_set_output_format: NULL argument");
    j = json_loads(*report_json, 0, NULL);
    if (!json_is_object(j)) {
        json_decref(j);
        return mp__err_set(err, MP_EFORMAT, "the report is not a JSON object");
    }
    text = json_object_set_new(j, "output_format", json_string(format)) == 0
               ? json_dumps(j, JSON_COMPACT)
               : NULL;
    json_decref(j);
    MP_RETURN_IF(text == NULL, MP_ENOMEM, "out of memory completing the report");
    free(*report_json);
    *report_json = text;
    return 0;
}

int mp_pipeline_run(const mp_model_t *in, const mp_recipe_t *r, const mp_run_opts_t *opts,
                    mp_model_t **out, char **report_json, mp_errctx_t *err)
{
    const double t0 = now_ms();
    run_t run = {.r = r, .opts = opts};
    work_t *wk = NULL;
    size_t n_work = 0, max_n = 1, bytes_before = 0, bytes_kept = 0, bytes_after = 0, first = 0;
    mp_model_t *m = NULL;
    json_t *report = NULL, *record = NULL;
    char *record_text = NULL;
    int rc = 0;

    if (out != NULL) {
        *out = NULL;
    }
    if (report_json != NULL) {
        *report_json = NULL;
    }
    MP_RETURN_IF(in == NULL || r == NULL || out == NULL || report_json == NULL, MP_EINVAL,
                 "mp_pipeline_run: NULL argument");
    if ((rc = mp_recipe_check_model(r, in, err)) < 0) {
        return rc;
    }

    wk = calloc(in->n_tensors ? in->n_tensors : 1, sizeof *wk);
    run.stage_bytes = calloc(r->n_steps, sizeof *run.stage_bytes);
    run.tensors = json_array();
    run.record = json_object();
    report = json_object();
    record = json_object();
    m = mp_model_new();
    MP_GOTO_IF(wk == NULL || run.stage_bytes == NULL || run.tensors == NULL ||
                   run.record == NULL || report == NULL || record == NULL || m == NULL,
               MP_ENOMEM, "out of memory for %zu tensors", in->n_tensors);
    for (size_t i = 0; i < in->n_tensors; i++) {
        const mp_tensor_t *t = &in->tensors[i];
        work_t *x;
        bytes_before += t->n_bytes;
        if (!mp_recipe_selects(r, t)) {
            bytes_kept += t->n_bytes;
            continue;
        }
        x = &wk[n_work++];
        x->t = t;
        x->n = (size_t)mp_tensor_elements(t);
        x->rows = t->n_dims >= 2 ? (size_t)t->shape[0] : 1;
        x->cols = x->n / x->rows;
        mp__plan(r, t, &x->plan);
        max_n = x->n > max_n ? x->n : max_n;
    }
    run.total = r->n_steps * n_work;
    run.max_n = max_n;
    for (size_t s = 0; s < r->n_steps; s++) {
        run.stage_bytes[s] = bytes_kept;
    }
    if ((rc = run_global(&run, wk, n_work, &first, err)) < 0) {
        goto out;
    }

    /* tensor by tensor, in input order, through the remaining steps into the output */
    for (size_t i = 0, k = 0; i < in->n_tensors; i++) {
        const mp_tensor_t *t = &in->tensors[i];
        work_t *x = k < n_work && wk[k].t == t ? &wk[k++] : NULL;
        if (x == NULL) {
            rc = mp_model_add_ref(m, t->name, t->dtype, t->n_dims, t->shape, t->data, t->n_bytes,
                                  err);
            if (rc < 0) {
                goto out;
            }
            continue;
        }
        if ((rc = load_work(x, err)) < 0) {
            goto out;
        }
        for (size_t s = first; s < r->n_steps; s++) {
            if (r->steps[s].kind != MP_STEP_HUFFMAN) {
                if ((rc = step_tensor(x, s, &run, err)) < 0) {
                    goto out;
                }
                progress(&run, 1, mp__step_name(r->steps[s].kind));
            }
            run.stage_bytes[s] += work_bytes(x);
        }
        if ((rc = report_tensor(&run, x, err)) < 0 || (rc = emit_tensor(m, x, err)) < 0) {
            goto out;
        }
        free_work(x);
        release_input(in, t);
    }

    MP_GOTO_IF(json_object_set_new(record, "version", json_integer(MP_RECORD_VERSION)) ||
                   json_object_set(record, "tensors", run.record),
               MP_ENOMEM, REPORT_FAIL);
    record_text = json_dumps(record, JSON_COMPACT | JSON_SORT_KEYS);
    MP_GOTO_IF(record_text == NULL, MP_ENOMEM, "out of memory recording the compression");
    for (size_t i = 0; i < in->n_meta; i++) {
        MP_GOTO_IF(mp_model_set_meta(m, in->meta_keys[i], in->meta_values[i]) < 0, MP_ENOMEM,
                   "out of memory copying metadata");
    }
    MP_GOTO_IF(mp_model_set_meta(m, MP_META_KEY, record_text) < 0, MP_ENOMEM,
               "out of memory copying metadata");

    if (r->format == MP_OUT_MPZ) {
        MP_GOTO_IF(canceled(&run), MP_ECANCELED, "canceled before the .mpz encoding");
        if ((rc = mpz_bytes(m, &bytes_after, err)) < 0) {
            goto out;
        }
        if (r->has_huffman) {
            run.stage_bytes[r->n_steps - 1] = bytes_after;
            progress(&run, n_work, "huffman");
        }
    } else {
        for (size_t i = 0; i < m->n_tensors; i++) {
            bytes_after += m->tensors[i].n_bytes;
        }
    }
    MP_GOTO_IF(json_object_set(report, "tensors", run.tensors) ||
                   add_report_totals(report, &run, in->n_tensors, n_work, bytes_before,
                                     bytes_after, t0) < 0,
               MP_ENOMEM, REPORT_FAIL);
    *report_json = json_dumps(report, JSON_COMPACT);
    MP_GOTO_IF(*report_json == NULL, MP_ENOMEM, REPORT_FAIL);
    *out = m;
    m = NULL;
out:
    for (size_t i = 0; wk != NULL && i < n_work; i++) {
        free_work(&wk[i]);
    }
    free(wk);
    free(run.scratch);
    free(run.stage_bytes);
    free(record_text);
    json_decref(run.tensors);
    json_decref(run.record);
    json_decref(record);
    json_decref(report);
    mp_model_free(m);
    return rc;
}
