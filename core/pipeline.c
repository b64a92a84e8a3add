/* pipeline.c — run a parsed recipe on a model: working copies, steps, output model, report.
 *
 * Every selected tensor gets one F32 working copy (F16/BF16/F64 converted; non-finite values
 * refused) that the steps change in place, in recipe order: a prune step zeroes entries of
 * every copy (per tensor, or across all copies at once for global scope); the quantize step,
 * always the last step that changes values, replaces a copy by its int8 codes and scales and
 * leaves the dequantized values in the copy, so that the copy always holds what a reader of the
 * output will see. The report compares those final values with the input.
 *
 * The output model borrows every tensor it does not change from the input (the caller keeps
 * the input alive). Quantized tensors follow the compressed-tensors convention: `L.weight` as
 * I8 of the original shape plus `L.weight_scale` F32 of shape [rows] (per channel) or [1];
 * pruned-only tensors keep their dtype (stored dense, so no smaller). The metadata key
 * "modelpress" records per compressed tensor what was done, which is what mp_model_unpack()
 * reads. Progress is reported after each tensor of each step (after the whole step for global
 * pruning, which is one operation over all tensors); the cancel flag is read before each
 * tensor, so a run stops within one tensor's work.
 */
#include "methods_int.h"
#include "recipe_int.h"

#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* jansson also refuses names that are not UTF-8, which only models built in memory can have */
#define REPORT_FAIL "cannot write the report: out of memory or a tensor name that is not UTF-8"

/* One selected tensor on its way through the steps. */
typedef struct work {
    const mp_tensor_t *t;        /* input tensor, borrowed */
    float *w;                    /* working copy: n values, the final values after the steps */
    size_t n;
    int8_t *q;                   /* after quantize: n codes and n_scales scales */
    float *scales;
    size_t n_scales;
    int per_channel;             /* scales are per row (dim 0) rather than one per tensor */
    const mp_step_t *quant;      /* the quantize step applied, or NULL */
    size_t bytes_after;          /* storage of this tensor after the steps so far */
} work_t;

/* ---- dtype conversion --------------------------------------------------------------------- */

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

/* ---- the steps ---------------------------------------------------------------------------- */

typedef struct run {
    const mp_run_opts_t *opts;
    size_t done, total;          /* progress units: one per tensor per step */
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

static int step_prune(work_t *wk, size_t n_work, const mp_step_t *st, run_t *run,
                      mp_errctx_t *err)
{
    float **w = calloc(n_work, sizeof *w);
    size_t *n = calloc(n_work, sizeof *n);
    float *scratch = NULL;
    size_t n_zeroed, max_n = 0;
    int rc = 0;

    MP_GOTO_IF(w == NULL || n == NULL, MP_ENOMEM, "out of memory for the prune step");
    for (size_t i = 0; i < n_work; i++) {
        w[i] = wk[i].w;
        n[i] = wk[i].n;
        max_n = n[i] > max_n ? n[i] : max_n;
    }
    if (st->prune.scope == MP_SCOPE_GLOBAL) {
        /* one threshold across every selected tensor: a single call over all of them */
        MP_GOTO_IF(canceled(run), MP_ECANCELED, "canceled before the prune step");
        scratch = malloc(mp__prune_scratch_elems(n, n_work) * sizeof *scratch);
        MP_GOTO_IF(scratch == NULL, MP_ENOMEM, "out of memory for the prune step");
        rc = mp__prune_magnitude(w, n, n_work, st->prune.sparsity, scratch, &n_zeroed, err);
        if (rc < 0) {
            goto out;
        }
        progress(run, n_work, "prune");
        goto out;
    }
    scratch = malloc(mp__prune_scratch_elems(&max_n, 1) * sizeof *scratch);
    MP_GOTO_IF(scratch == NULL, MP_ENOMEM, "out of memory for the prune step");
    for (size_t i = 0; i < n_work; i++) {
        MP_GOTO_IF(canceled(run), MP_ECANCELED, "canceled before pruning tensor '%s'",
                   wk[i].t->name);
        rc = mp__prune_magnitude(&w[i], &n[i], 1, st->prune.sparsity, scratch, &n_zeroed, err);
        if (rc < 0) {
            goto out;
        }
        progress(run, 1, "prune");
    }
out:
    free(scratch);
    free(n);
    free(w);
    return rc;
}

static int step_quantize(work_t *wk, size_t n_work, const mp_step_t *st, run_t *run,
                         mp_errctx_t *err)
{
    int rc = 0;

    for (size_t i = 0; i < n_work; i++) {
        work_t *x = &wk[i];
        /* per channel needs an output axis; a 1-D tensor selected explicitly has none */
        const int per_channel = st->quant.granularity == MP_GRAN_CHANNEL && x->t->n_dims >= 2;
        const size_t rows = per_channel ? (size_t)x->t->shape[0] : 1;

        MP_GOTO_IF(canceled(run), MP_ECANCELED, "canceled before quantizing tensor '%s'",
                   x->t->name);
        x->q = malloc(x->n);
        x->scales = malloc(rows * sizeof *x->scales);
        MP_GOTO_IF(x->q == NULL || x->scales == NULL, MP_ENOMEM,
                   "out of memory quantizing tensor '%s'", x->t->name);
        rc = mp__quant_i8_sym(x->t->name, x->w, rows, x->n / rows, per_channel, x->q, x->scales,
                              err);
        if (rc < 0) {
            goto out;
        }
        mp__dequant_i8_sym(x->q, rows, x->n / rows, per_channel, x->scales, x->w);
        x->n_scales = rows;
        x->per_channel = per_channel;
        x->quant = st;
        x->bytes_after = x->n + rows * sizeof(float);
        progress(run, 1, "quantize");
    }
out:
    return rc;
}

/* ---- output model and report ------------------------------------------------------------- */

static size_t count_zeros(const float *w, size_t n)
{
    size_t z = 0;

    for (size_t i = 0; i < n; i++) {
        z += w[i] == 0.0f;
    }
    return z;
}

/* The "modelpress" metadata: per compressed tensor what unpack must undo. New JSON text. */
static char *record_json(const work_t *wk, size_t n_work)
{
    json_t *root = json_object(), *tensors = json_object();
    char *text = NULL;
    int bad = root == NULL || tensors == NULL;

    bad |= json_object_set_new(root, "version", json_integer(1));
    bad |= json_object_set(root, "tensors", tensors);
    for (size_t i = 0; i < n_work && !bad; i++) {
        const work_t *x = &wk[i];
        json_t *e = json_object();
        bad |= json_object_set_new(tensors, x->t->name, e);
        if (x->quant != NULL) {
            bad |= json_object_set_new(e, "quantize",
                                       json_pack("{s:i, s:s, s:s}", "bits", x->quant->quant.bits,
                                                 "scheme", "symmetric", "granularity",
                                                 x->per_channel ? "channel" : "tensor"));
        }
        bad |= json_object_set_new(e, "sparsity",
                                   json_real((double)count_zeros(x->w, x->n) / (double)x->n));
        bad |= json_object_set_new(e, "dtype", json_string(mp_dtype_name(x->t->dtype)));
    }
    if (!bad) {
        text = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
    }
    json_decref(tensors);
    json_decref(root);
    return text;
}

static json_t *shape_json(const mp_tensor_t *t)
{
    json_t *a = json_array();

    for (int d = 0; d < t->n_dims && a != NULL; d++) {
        if (json_array_append_new(a, json_integer(t->shape[d])) < 0) {
            json_decref(a);
            a = NULL;
        }
    }
    return a;
}

/* Per-tensor figures of the report; orig is scratch for the input's values. */
static json_t *tensor_report(const work_t *x, float *orig, mp_errctx_t *err, int *rc)
{
    json_t *e = json_object();
    double rel, sqnr;
    int bad = e == NULL;

    *rc = mp__tensor_to_f32(x->t, orig, err);
    if (*rc < 0) {
        json_decref(e);
        return NULL;
    }
    mp__error_stats(orig, x->w, x->n, &rel, &sqnr);
    bad |= json_object_set_new(e, "name", json_string(x->t->name));
    bad |= json_object_set_new(e, "shape", shape_json(x->t));
    bad |= json_object_set_new(e, "dtype", json_string(mp_dtype_name(x->t->dtype)));
    bad |= json_object_set_new(e, "stored_dtype",
                               json_string(mp_dtype_name(x->quant ? MP_DT_I8 : x->t->dtype)));
    bad |= json_object_set_new(e, "elements", json_integer((json_int_t)x->n));
    bad |= json_object_set_new(e, "sparsity",
                               json_real((double)count_zeros(x->w, x->n) / (double)x->n));
    bad |= json_object_set_new(e, "bits_per_weight",
                               json_real((double)x->bytes_after * 8.0 / (double)x->n));
    bad |= json_object_set_new(e, "bytes_before", json_integer((json_int_t)x->t->n_bytes));
    bad |= json_object_set_new(e, "bytes_after", json_integer((json_int_t)x->bytes_after));
    bad |= json_object_set_new(e, "rel_error", json_real(rel));
    bad |= json_object_set_new(e, "sqnr_db", isfinite(sqnr) ? json_real(sqnr) : json_null());
    if (bad) {
        json_decref(e);
        *rc = mp__err_set(err, MP_ENOMEM, REPORT_FAIL);
        return NULL;
    }
    return e;
}

/* Append x to out: I8 + scales when quantized, else its own dtype. Takes x's buffers. */
static int emit_tensor(mp_model_t *out, work_t *x, mp_errctx_t *err)
{
    const mp_tensor_t *t = x->t;
    const int64_t n_scales = (int64_t)x->n_scales;
    char *scale_name = NULL;
    void *buf;
    int rc;

    if (x->quant != NULL) {
        rc = mp_model_add_take(out, t->name, MP_DT_I8, t->n_dims, t->shape, x->q, x->n, err);
        x->q = NULL;
        if (rc < 0) {
            return rc;
        }
        scale_name = mp__scale_name(t->name);
        MP_RETURN_IF(scale_name == NULL, MP_ENOMEM, "out of memory naming the scales of '%s'",
                     t->name);
        rc = mp_model_add_take(out, scale_name, MP_DT_F32, 1, &n_scales, x->scales,
                               x->n_scales * sizeof(float), err);
        x->scales = NULL;
        free(scale_name);
        return rc;
    }
    if (t->dtype == MP_DT_F32) {
        buf = x->w;
        x->w = NULL;
    } else {
        buf = malloc(t->n_bytes);
        MP_RETURN_IF(buf == NULL, MP_ENOMEM, "out of memory storing tensor '%s'", t->name);
        mp__f32_to_dtype(x->w, x->n, t->dtype, buf);
    }
    return mp_model_add_take(out, t->name, t->dtype, t->n_dims, t->shape, buf, t->n_bytes, err);
}

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int add_stage(json_t *stages, const char *step, size_t bytes)
{
    return json_array_append_new(stages, json_pack("{s:s, s:I}", "step", step, "bytes",
                                                   (json_int_t)bytes));
}

int mp_pipeline_run(const mp_model_t *in, const mp_recipe_t *r, const mp_run_opts_t *opts,
                    mp_model_t **out, char **report_json, mp_errctx_t *err)
{
    const double t0 = now_ms();
    run_t run = {.opts = opts};
    work_t *wk = NULL;
    size_t n_work = 0, max_n = 0, bytes_before = 0, bytes_kept = 0, bytes_after;
    mp_model_t *m = NULL;
    json_t *report = NULL, *tensors = NULL, *stages = NULL;
    float *orig = NULL;
    char *record = NULL;
    int rc = 0, bad = 0;

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

    wk = calloc(in->n_tensors, sizeof *wk);
    MP_GOTO_IF(wk == NULL, MP_ENOMEM, "out of memory for %zu tensors", in->n_tensors);
    for (size_t i = 0; i < in->n_tensors; i++) {
        const mp_tensor_t *t = &in->tensors[i];
        bytes_before += t->n_bytes;
        if (!mp_recipe_selects(r, t)) {
            bytes_kept += t->n_bytes;
            continue;
        }
        work_t *x = &wk[n_work++];
        x->t = t;
        x->n = (size_t)mp_tensor_elements(t);
        x->bytes_after = t->n_bytes;
        max_n = x->n > max_n ? x->n : max_n;
        x->w = malloc(x->n * sizeof *x->w);
        MP_GOTO_IF(x->w == NULL, MP_ENOMEM, "out of memory copying tensor '%s'", t->name);
        if ((rc = mp__tensor_to_f32(t, x->w, err)) < 0) {
            goto out;
        }
    }

    report = json_object();
    tensors = json_array();
    stages = json_array();
    MP_GOTO_IF(report == NULL || tensors == NULL || stages == NULL, MP_ENOMEM,
               REPORT_FAIL);
    /* stages: the model's size after each step (DESIGN.md, Reports); the size before is
     * bytes_before, so it is not repeated here */
    run.total = r->n_steps * n_work;
    for (size_t s = 0; s < r->n_steps; s++) {
        const mp_step_t *st = &r->steps[s];
        rc = st->kind == MP_STEP_PRUNE ? step_prune(wk, n_work, st, &run, err)
                                       : step_quantize(wk, n_work, st, &run, err);
        if (rc < 0) {
            goto out;
        }
        bytes_after = bytes_kept;
        for (size_t i = 0; i < n_work; i++) {
            bytes_after += wk[i].bytes_after;
        }
        bad |= add_stage(stages, st->kind == MP_STEP_PRUNE ? "prune" : "quantize", bytes_after);
    }

    orig = malloc(max_n * sizeof *orig);
    MP_GOTO_IF(orig == NULL, MP_ENOMEM, REPORT_FAIL);
    for (size_t i = 0; i < n_work; i++) {
        json_t *e = tensor_report(&wk[i], orig, err, &rc);
        if (e == NULL) {
            goto out;
        }
        bad |= json_array_append_new(tensors, e);
    }
    record = record_json(wk, n_work);
    MP_GOTO_IF(record == NULL, MP_ENOMEM, "out of memory recording the compression");

    m = mp_model_new();
    MP_GOTO_IF(m == NULL, MP_ENOMEM, "out of memory for the output model");
    for (size_t i = 0; i < in->n_meta; i++) {
        MP_GOTO_IF(mp_model_set_meta(m, in->meta_keys[i], in->meta_values[i]) < 0, MP_ENOMEM,
                   "out of memory copying metadata");
    }
    MP_GOTO_IF(mp_model_set_meta(m, MP_META_KEY, record) < 0, MP_ENOMEM,
               "out of memory copying metadata");
    for (size_t i = 0, k = 0; i < in->n_tensors; i++) {
        const mp_tensor_t *t = &in->tensors[i];
        if (k < n_work && wk[k].t == t) {
            rc = emit_tensor(m, &wk[k++], err);
        } else {
            rc = mp_model_add_ref(m, t->name, t->dtype, t->n_dims, t->shape, t->data, t->n_bytes,
                                  err);
        }
        if (rc < 0) {
            goto out;
        }
    }

    bytes_after = 0;
    for (size_t i = 0; i < m->n_tensors; i++) {
        bytes_after += m->tensors[i].n_bytes;
    }
    bad |= json_object_set_new(report, "tensors", tensors);
    tensors = NULL;
    bad |= json_object_set_new(report, "n_tensors", json_integer((json_int_t)in->n_tensors));
    bad |= json_object_set_new(report, "n_compressed", json_integer((json_int_t)n_work));
    bad |= json_object_set_new(report, "bytes_before", json_integer((json_int_t)bytes_before));
    bad |= json_object_set_new(report, "bytes_after", json_integer((json_int_t)bytes_after));
    bad |= json_object_set_new(report, "compression_ratio",
                               json_real((double)bytes_before / (double)bytes_after));
    bad |= json_object_set_new(report, "stages", stages);
    stages = NULL;
    bad |= json_object_set_new(report, "isa", json_string(mp_kern_isa()));
    bad |= json_object_set_new(report, "duration_ms", json_real(now_ms() - t0));
    MP_GOTO_IF(bad, MP_ENOMEM, REPORT_FAIL);
    *report_json = json_dumps(report, JSON_COMPACT);
    MP_GOTO_IF(*report_json == NULL, MP_ENOMEM, REPORT_FAIL);
    *out = m;
    m = NULL;
out:
    for (size_t i = 0; wk != NULL && i < n_work; i++) {
        free(wk[i].w);
        free(wk[i].q);
        free(wk[i].scales);
    }
    free(wk);
    free(orig);
    free(record);
    json_decref(tensors);
    json_decref(stages);
    json_decref(report);
    mp_model_free(m);
    return rc;
}
