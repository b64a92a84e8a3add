/* check_pipeline.c — mp_pipeline_run and mp_model_unpack on small models built in memory.
 *
 * The model: fc1.weight [4,8] and fc2.weight [3,5] (F32, magnitudes all distinct and at least
 * 0.1, fc2's larger, so that the pruned set is unique and no surviving weight rounds to an int8 zero), plus
 * the 1-D biases fc1.bias [4] and fc2.bias [3], which the default selection keeps. The test
 * computes every expected figure itself — which entries magnitude pruning zeroes, the int8
 * step per row, byte counts — and asserts the pipeline's output and report against them.
 */
#include "methods_int.h"
#include "recipe_int.h"

#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define N1 32 /* fc1.weight 4 x 8 */
#define N2 15 /* fc2.weight 3 x 5 */

static float g_w1[N1], g_w2[N2], g_b1[4], g_b2[3];
static mp_model_t *g_in;

/* Distinct magnitudes in [0.1, 1.0) with mixed signs: entry i gets rank (i * 7) mod n. */
static void fill(float *w, size_t n, float offset)
{
    for (size_t i = 0; i < n; i++) {
        const float mag = 0.1f + 0.9f * (float)((i * 7) % n) / (float)n + offset;
        w[i] = (i % 3 == 0) ? -mag : mag;
    }
}

static void model_setup(void)
{
    const int64_t s1[2] = {4, 8}, s2[2] = {3, 5}, sb1[1] = {4}, sb2[1] = {3};

    fill(g_w1, N1, 0.0f);
    /* larger than fc1 and sharing no magnitude with it, so a global threshold prunes fc1
     * harder than a per-layer one would (about 20 of its 32 rather than 16) */
    fill(g_w2, N2, 0.3011f);
    for (int i = 0; i < 4; i++) {
        g_b1[i] = 0.25f * (float)i - 0.3f;
    }
    for (int i = 0; i < 3; i++) {
        g_b2[i] = 1e-3f * (float)(i + 1);
    }
    g_in = mp_model_new();
    ck_assert_ptr_nonnull(g_in);
    ck_assert_int_eq(mp_model_add(g_in, "fc1.weight", MP_DT_F32, 2, s1, g_w1, sizeof g_w1, NULL),
                     0);
    ck_assert_int_eq(mp_model_add(g_in, "fc1.bias", MP_DT_F32, 1, sb1, g_b1, sizeof g_b1, NULL),
                     0);
    ck_assert_int_eq(mp_model_add(g_in, "fc2.weight", MP_DT_F32, 2, s2, g_w2, sizeof g_w2, NULL),
                     0);
    ck_assert_int_eq(mp_model_add(g_in, "fc2.bias", MP_DT_F32, 1, sb2, g_b2, sizeof g_b2, NULL),
                     0);
    ck_assert_int_eq(mp_model_set_meta(g_in, "source", "check_pipeline"), 0);
}

static void model_teardown(void)
{
    mp_model_free(g_in);
    g_in = NULL;
}

/* ---- helpers -------------------------------------------------------------------------------- */

static mp_recipe_t *recipe(const char *json)
{
    mp_recipe_t *r = NULL;
    mp_errctx_t err = {0};

    ck_assert_msg(mp_recipe_parse(json, strlen(json), &r, &err) == 0, "%s", err.msg);
    return r;
}

/* Run json on in; returns the output and the parsed report. */
static mp_model_t *run(const mp_model_t *in, const char *json, json_t **report)
{
    mp_recipe_t *r = recipe(json);
    mp_model_t *out = NULL;
    char *text = NULL;
    mp_errctx_t err = {0};

    ck_assert_msg(mp_pipeline_run(in, r, NULL, &out, &text, &err) == 0, "%s", err.msg);
    ck_assert_ptr_nonnull(out);
    ck_assert_ptr_nonnull(text);
    *report = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
    ck_assert_ptr_nonnull(*report);
    free(text);
    mp_recipe_free(r);
    return out;
}

static int cmp_float(const void *a, const void *b)
{
    const float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* The k-th smallest magnitude over the given arrays: everything below it is pruned. */
static float threshold(const float *const *w, const size_t *n, size_t n_arrays, size_t k)
{
    float all[N1 + N2];
    size_t total = 0;

    for (size_t a = 0; a < n_arrays; a++) {
        for (size_t i = 0; i < n[a]; i++) {
            all[total++] = fabsf(w[a][i]);
        }
    }
    qsort(all, total, sizeof all[0], cmp_float);
    return k < total ? all[k] : INFINITY;
}

static void prune_expected(const float *w, size_t n, float thr, float *out)
{
    for (size_t i = 0; i < n; i++) {
        out[i] = fabsf(w[i]) < thr ? 0.0f : w[i];
    }
}

static size_t zeros(const float *w, size_t n)
{
    size_t z = 0;
    for (size_t i = 0; i < n; i++) {
        z += w[i] == 0.0f;
    }
    return z;
}

static const json_t *tensor_entry(const json_t *report, const char *name)
{
    size_t i;
    json_t *t;

    json_array_foreach(json_object_get(report, "tensors"), i, t) {
        if (strcmp(json_string_value(json_object_get(t, "name")), name) == 0) {
            return t;
        }
    }
    ck_abort_msg("no report entry for %s", name);
    return NULL;
}

static json_int_t jint(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    ck_assert_msg(json_is_integer(v), "%s is not an integer", key);
    return json_integer_value(v);
}

static double jnum(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    ck_assert_msg(json_is_number(v), "%s is not a number", key);
    return json_number_value(v);
}

/* Check a per-channel int8 output of weight `name` against the pruned original `pruned`:
 * shape, scales = row absmax / 127, every value within half a step, zeros kept; returns the
 * dequantized values in deq. */
static void check_quantized(const mp_model_t *out, const char *name, const float *pruned,
                            size_t rows, size_t cols, float *deq)
{
    char scale_name[64];
    const mp_tensor_t *q = mp_model_find(out, name), *s;
    const int8_t *qv;
    const float *sv;

    snprintf(scale_name, sizeof scale_name, "%s_scale", name);
    s = mp_model_find(out, scale_name);
    ck_assert_ptr_nonnull(q);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(q->dtype, MP_DT_I8);
    ck_assert_int_eq(q->n_dims, 2);
    ck_assert_int_eq(q->shape[0], (int64_t)rows);
    ck_assert_int_eq(q->shape[1], (int64_t)cols);
    ck_assert_uint_eq(q->n_bytes, rows * cols);
    ck_assert_int_eq(s->dtype, MP_DT_F32);
    ck_assert_int_eq(s->n_dims, 1);
    ck_assert_int_eq(s->shape[0], (int64_t)rows);
    qv = q->data;
    sv = s->data;
    for (size_t r = 0; r < rows; r++) {
        float absmax = 0.0f;
        for (size_t c = 0; c < cols; c++) {
            absmax = fmaxf(absmax, fabsf(pruned[r * cols + c]));
        }
        ck_assert_float_eq_tol(sv[r], absmax / 127.0f, absmax * 1e-6f);
        for (size_t c = 0; c < cols; c++) {
            const size_t i = r * cols + c;
            deq[i] = (float)qv[i] * sv[r];
            ck_assert_msg(fabsf(deq[i] - pruned[i]) <= sv[r] * 0.5f * (1.0f + 1e-5f),
                          "%s[%zu]: %g vs %g, step %g", name, i, deq[i], pruned[i], sv[r]);
            ck_assert_int_eq(qv[i] == 0, pruned[i] == 0.0f);
        }
    }
}

/* Biases pass through: borrowed from the input, same bytes. */
static void check_untouched(const mp_model_t *out, const char *name)
{
    const mp_tensor_t *a = mp_model_find(g_in, name), *b = mp_model_find(out, name);

    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(b->dtype, a->dtype);
    ck_assert_uint_eq(b->n_bytes, a->n_bytes);
    ck_assert_ptr_eq(b->data, a->data);
    ck_assert_int_eq(memcmp(b->data, a->data, a->n_bytes), 0);
}

static void check_error_figures(const json_t *e, const float *orig, const float *deq, size_t n)
{
    double num = 0.0, den = 0.0;

    for (size_t i = 0; i < n; i++) {
        const double d = (double)orig[i] - (double)deq[i];
        num += d * d;
        den += (double)orig[i] * (double)orig[i];
    }
    ck_assert_double_eq_tol(jnum(e, "rel_error"), sqrt(num / den), 1e-9);
    ck_assert_double_eq_tol(jnum(e, "sqnr_db"), 10.0 * log10(den / num), 1e-6);
}

/* ---- prune 0.5 + quantize 8 ----------------------------------------------------------------- */

START_TEST(test_layer_prune_quantize)
{
    json_t *rep, *stages;
    mp_model_t *out = run(g_in,
                          "{\"steps\":[{\"prune\":{\"sparsity\":0.5}},{\"quantize\":{\"bits\":8}}]}",
                          &rep);
    const float *w1 = g_w1, *w2 = g_w2;
    const size_t n1 = N1, n2 = N2;
    float p1[N1], p2[N2], d1[N1], d2[N2];
    const json_t *e1, *e2;

    /* layer scope: k = llround(0.5 n) per tensor: 16 of 32, 8 of 15 */
    prune_expected(g_w1, N1, threshold(&w1, &n1, 1, 16), p1);
    prune_expected(g_w2, N2, threshold(&w2, &n2, 1, 8), p2);
    ck_assert_uint_eq(zeros(p1, N1), 16);
    ck_assert_uint_eq(zeros(p2, N2), 8);
    check_quantized(out, "fc1.weight", p1, 4, 8, d1);
    check_quantized(out, "fc2.weight", p2, 3, 5, d2);
    check_untouched(out, "fc1.bias");
    check_untouched(out, "fc2.bias");
    ck_assert_uint_eq(out->n_tensors, 6);
    ck_assert_str_eq(mp_model_get_meta(out, "source"), "check_pipeline");

    /* report: per tensor */
    e1 = tensor_entry(rep, "fc1.weight");
    e2 = tensor_entry(rep, "fc2.weight");
    ck_assert_int_eq(jint(e1, "elements"), 32);
    ck_assert_double_eq(jnum(e1, "sparsity"), 0.5);
    ck_assert_double_eq(jnum(e2, "sparsity"), 8.0 / 15.0);
    ck_assert_int_eq(jint(e1, "bytes_before"), 128);
    ck_assert_int_eq(jint(e1, "bytes_after"), 32 + 4 * 4);
    ck_assert_int_eq(jint(e2, "bytes_before"), 60);
    ck_assert_int_eq(jint(e2, "bytes_after"), 15 + 4 * 3);
    ck_assert_double_eq(jnum(e1, "bits_per_weight"), 48.0 * 8.0 / 32.0);
    ck_assert_double_eq(jnum(e2, "bits_per_weight"), 27.0 * 8.0 / 15.0);
    ck_assert_int_eq(json_array_size(json_object_get(e1, "shape")), 2);
    ck_assert_int_eq(json_integer_value(json_array_get(json_object_get(e1, "shape"), 1)), 8);
    check_error_figures(e1, g_w1, d1, N1);
    check_error_figures(e2, g_w2, d2, N2);

    /* report: totals over the whole model (biases 16 + 12 bytes count on both sides) */
    ck_assert_int_eq(jint(rep, "n_tensors"), 4);
    ck_assert_int_eq(jint(rep, "n_compressed"), 2);
    ck_assert_int_eq(jint(rep, "bytes_before"), 128 + 60 + 16 + 12);
    ck_assert_int_eq(jint(rep, "bytes_after"), 48 + 27 + 16 + 12);
    ck_assert_double_eq(jnum(rep, "compression_ratio"), 216.0 / 103.0);
    stages = json_object_get(rep, "stages");
    /* the size after each step; pruned zeros are stored densely, so prune leaves 216 */
    ck_assert_int_eq(json_array_size(stages), 2);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(stages, 0), "step")),
                     "prune");
    ck_assert_int_eq(jint(json_array_get(stages, 0), "bytes"), 216);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(stages, 1), "step")),
                     "quantize");
    ck_assert_int_eq(jint(json_array_get(stages, 1), "bytes"), 103);
    ck_assert_str_eq(json_string_value(json_object_get(rep, "isa")), mp_kern_isa());
    ck_assert(jnum(rep, "duration_ms") >= 0.0);

    json_decref(rep);
    mp_model_free(out);
}
END_TEST

START_TEST(test_global_prune)
{
    json_t *rep;
    mp_model_t *out = run(g_in,
                          "{\"steps\":[{\"prune\":{\"sparsity\":0.5,\"scope\":\"global\"}},"
                          "{\"quantize\":{}}]}",
                          &rep);
    const float *w[2] = {g_w1, g_w2};
    const size_t n[2] = {N1, N2};
    float p1[N1], p2[N2], d1[N1], d2[N2], thr;
    size_t z1, z2;

    /* one threshold over both: k = llround(0.5 * 47) = 24 zeros in all */
    thr = threshold(w, n, 2, 24);
    prune_expected(g_w1, N1, thr, p1);
    prune_expected(g_w2, N2, thr, p2);
    z1 = zeros(p1, N1);
    z2 = zeros(p2, N2);
    ck_assert_uint_eq(z1 + z2, 24);
    ck_assert_uint_ne(z1, 16); /* differs from layer scope, so scope was honoured */
    check_quantized(out, "fc1.weight", p1, 4, 8, d1);
    check_quantized(out, "fc2.weight", p2, 3, 5, d2);
    ck_assert_double_eq(jnum(tensor_entry(rep, "fc1.weight"), "sparsity"), (double)z1 / N1);
    ck_assert_double_eq(jnum(tensor_entry(rep, "fc2.weight"), "sparsity"), (double)z2 / N2);
    json_decref(rep);
    mp_model_free(out);
}
END_TEST

START_TEST(test_prune_only_and_tensor_granularity)
{
    json_t *rep, *rec;
    mp_model_t *out = run(g_in, "{\"steps\":[{\"prune\":{\"sparsity\":0.25}}]}", &rep);
    const mp_tensor_t *t = mp_model_find(out, "fc1.weight");
    const float *w1 = g_w1;
    const size_t n1 = N1;
    float p1[N1];

    /* pruned only: same dtype and size, zeros where expected, the rest bit-identical */
    prune_expected(g_w1, N1, threshold(&w1, &n1, 1, 8), p1);
    ck_assert_int_eq(t->dtype, MP_DT_F32);
    ck_assert_int_eq(memcmp(t->data, p1, sizeof p1), 0);
    ck_assert_ptr_null(mp_model_find(out, "fc1.weight_scale"));
    ck_assert_int_eq(jint(tensor_entry(rep, "fc1.weight"), "bytes_after"), 128);
    check_error_figures(tensor_entry(rep, "fc1.weight"), g_w1, p1, N1);
    ck_assert_int_eq(jint(rep, "bytes_after"), jint(rep, "bytes_before"));
    rec = json_loads(mp_model_get_meta(out, MP_META_KEY), 0, NULL);
    ck_assert_ptr_nonnull(rec);
    ck_assert_int_eq(jint(rec, "version"), 1);
    ck_assert_ptr_null(json_object_get(
        json_object_get(json_object_get(rec, "tensors"), "fc1.weight"), "quantize"));
    ck_assert_double_eq(
        jnum(json_object_get(json_object_get(rec, "tensors"), "fc1.weight"), "sparsity"), 0.25);
    json_decref(rec);
    json_decref(rep);
    mp_model_free(out);

    /* nothing changed: error 0, SQNR null (infinite) */
    out = run(g_in, "{\"steps\":[{\"prune\":{\"sparsity\":0}}]}", &rep);
    ck_assert_double_eq(jnum(tensor_entry(rep, "fc2.weight"), "rel_error"), 0.0);
    ck_assert(json_is_null(json_object_get(tensor_entry(rep, "fc2.weight"), "sqnr_db")));
    ck_assert_double_eq(jnum(tensor_entry(rep, "fc2.weight"), "sparsity"), 0.0);
    json_decref(rep);
    mp_model_free(out);

    /* per tensor: one scale of shape [1]; bytes 32 + 4 */
    out = run(g_in, "{\"steps\":[{\"quantize\":{\"granularity\":\"tensor\"}}]}", &rep);
    t = mp_model_find(out, "fc1.weight_scale");
    ck_assert_int_eq(t->n_dims, 1);
    ck_assert_int_eq(t->shape[0], 1);
    ck_assert_int_eq(jint(tensor_entry(rep, "fc1.weight"), "bytes_after"), 36);
    rec = json_loads(mp_model_get_meta(out, MP_META_KEY), 0, NULL);
    ck_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(json_object_get(json_object_get(rec, "tensors"),
                                                         "fc1.weight"),
                                         "quantize"),
                         "granularity")),
                     "tensor");
    json_decref(rec);
    json_decref(rep);
    mp_model_free(out);

    /* a 1-D tensor selected explicitly: per tensor even with granularity channel */
    out = run(g_in, "{\"steps\":[{\"quantize\":{}}],\"select\":{\"include\":[\"fc1.bias\"]}}",
              &rep);
    t = mp_model_find(out, "fc1.bias_scale");
    ck_assert_int_eq(t->shape[0], 1);
    ck_assert_int_eq(jint(rep, "n_compressed"), 1);
    ck_assert_int_eq(jint(tensor_entry(rep, "fc1.bias"), "bytes_after"), 4 + 4);
    json_decref(rep);
    mp_model_free(out);
}
END_TEST

/* ---- save, reload, unpack --------------------------------------------------------------------- */

START_TEST(test_save_reload_unpack)
{
    json_t *rep;
    mp_model_t *out = run(g_in,
                          "{\"steps\":[{\"prune\":{\"sparsity\":0.5}},{\"quantize\":{}}]}",
                          &rep);
    mp_model_t *loaded = NULL, *plain = NULL;
    mp_errctx_t err = {0};
    char path[] = "/tmp/check_pipeline-XXXXXX";
    const char *names[2] = {"fc1.weight", "fc2.weight"};
    const size_t rows[2] = {4, 3}, cols[2] = {8, 5};
    int fd = mkstemp(path);

    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert_msg(mp_safetensors_save(out, path, &err) == 0, "%s", err.msg);
    ck_assert_msg(mp_safetensors_load(path, &loaded, &err) == 0, "%s", err.msg);
    unlink(path);
    ck_assert_msg(mp_model_unpack(loaded, &plain, &err) == 0, "%s", err.msg);

    ck_assert_uint_eq(plain->n_tensors, 4);
    ck_assert_ptr_null(mp_model_find(plain, "fc1.weight_scale"));
    ck_assert_ptr_null(mp_model_find(plain, "fc2.weight_scale"));
    ck_assert_ptr_null(mp_model_get_meta(plain, MP_META_KEY));
    ck_assert_str_eq(mp_model_get_meta(plain, "source"), "check_pipeline");
    for (int k = 0; k < 2; k++) {
        const mp_tensor_t *q = mp_model_find(out, names[k]);
        const float *scales = mp_model_find(loaded, k ? "fc2.weight_scale" : "fc1.weight_scale")
                                  ->data;
        const mp_tensor_t *u = mp_model_find(plain, names[k]);
        float v;
        ck_assert_int_eq(u->dtype, MP_DT_F32);
        ck_assert_int_eq(u->shape[0], (int64_t)rows[k]);
        ck_assert_int_eq(u->shape[1], (int64_t)cols[k]);
        for (size_t i = 0; i < rows[k] * cols[k]; i++) {
            memcpy(&v, (const float *)u->data + i, sizeof v);
            ck_assert_float_eq(v, (float)((const int8_t *)q->data)[i] * scales[i / cols[k]]);
        }
    }
    /* the biases went through two files unchanged */
    ck_assert_int_eq(memcmp(mp_model_find(plain, "fc1.bias")->data, g_b1, sizeof g_b1), 0);
    ck_assert_int_eq(memcmp(mp_model_find(plain, "fc2.bias")->data, g_b2, sizeof g_b2), 0);

    mp_model_free(plain);
    mp_model_free(loaded);
    json_decref(rep);
    mp_model_free(out);
}
END_TEST

START_TEST(test_unpack_refusals)
{
    mp_model_t *out = NULL;
    mp_errctx_t err = {0};
    const int64_t s2[2] = {2, 2}, s_bad[1] = {3};
    static const int8_t q[4] = {1, -2, 3, -4};
    static const float sc[3] = {0.5f, 0.25f, 1.0f};

    /* no record: nothing to unpack */
    ck_assert_int_eq(mp_model_unpack(g_in, &out, &err), MP_EINVAL);
    ck_assert_str_eq(err.msg, "the model has no 'modelpress' metadata: it was not written by "
                              "modelpress compress, so there is nothing to unpack");
    ck_assert_ptr_null(out);

    /* a record whose scales do not fit the tensor */
    mp_model_t *m = mp_model_new();
    ck_assert_int_eq(mp_model_add(m, "w", MP_DT_I8, 2, s2, q, sizeof q, NULL), 0);
    ck_assert_int_eq(mp_model_add(m, "w_scale", MP_DT_F32, 1, s_bad, sc, sizeof sc, NULL), 0);
    ck_assert_int_eq(mp_model_set_meta(m, MP_META_KEY,
                                       "{\"version\":1,\"tensors\":{\"w\":{\"quantize\":{"
                                       "\"bits\":8,\"scheme\":\"symmetric\",\"granularity\":"
                                       "\"channel\"},\"sparsity\":0,\"dtype\":\"F32\"}}}"),
                     0);
    ck_assert_int_eq(mp_model_unpack(m, &out, &err), MP_EFORMAT);
    ck_assert_str_eq(err.msg, "metadata 'modelpress': 'w_scale' must be F32 of shape [2] for the "
                              "channel scales of 'w'");
    /* a record naming a tensor the model does not have */
    ck_assert_int_eq(mp_model_set_meta(m, MP_META_KEY,
                                       "{\"version\":1,\"tensors\":{\"v\":{\"sparsity\":0,"
                                       "\"dtype\":\"F32\"}}}"),
                     0);
    ck_assert_int_eq(mp_model_unpack(m, &out, &err), MP_EFORMAT);
    ck_assert_str_eq(err.msg,
                     "metadata 'modelpress' lists tensor 'v', which the model does not have");
    /* per tensor with the one scale: dequantizes as q * 0.5 */
    ck_assert_int_eq(mp_model_set_meta(m, MP_META_KEY,
                                       "{\"version\":1,\"tensors\":{\"w\":{\"quantize\":{"
                                       "\"bits\":8,\"scheme\":\"symmetric\",\"granularity\":"
                                       "\"tensor\"},\"sparsity\":0,\"dtype\":\"F32\"}}}"),
                     0);
    ck_assert_int_eq(mp_model_unpack(m, &out, &err), MP_EFORMAT); /* w_scale has 3, not 1 */
    ck_assert_ptr_null(out);
    mp_model_free(m);
}
END_TEST

/* ---- progress and cancel ------------------------------------------------------------------- */

typedef struct progress_log {
    int n;
    double value[8];
    const char *stage[8];
    atomic_int *cancel;
    int cancel_at;               /* set the flag on this call (1-based), 0 never */
} progress_log_t;

static void log_cb(void *ud, double progress, const char *stage)
{
    progress_log_t *log = ud;

    if (log->n < 8) {
        log->value[log->n] = progress;
        log->stage[log->n] = stage;
    }
    if (++log->n == log->cancel_at) {
        atomic_store(log->cancel, 1);
    }
}

START_TEST(test_progress)
{
    atomic_int cancel = 0;
    progress_log_t log = {.cancel = &cancel};
    mp_run_opts_t opts = {.progress_cb = log_cb, .ud = &log, .cancel = &cancel};
    mp_recipe_t *r = recipe("{\"steps\":[{\"prune\":{\"sparsity\":0.5}},{\"quantize\":{}}]}");
    mp_model_t *out = NULL;
    char *text = NULL;

    ck_assert_int_eq(mp_pipeline_run(g_in, r, &opts, &out, &text, NULL), 0);
    /* after each of 2 tensors for each of 2 steps */
    ck_assert_int_eq(log.n, 4);
    ck_assert_str_eq(log.stage[0], "prune");
    ck_assert_str_eq(log.stage[1], "prune");
    ck_assert_str_eq(log.stage[2], "quantize");
    ck_assert_str_eq(log.stage[3], "quantize");
    for (int i = 0; i < 4; i++) {
        ck_assert_double_eq(log.value[i], (i + 1) / 4.0);
    }
    free(text);
    mp_model_free(out);
    mp_recipe_free(r);
}
END_TEST

START_TEST(test_cancel)
{
    atomic_int cancel = 0;
    progress_log_t log = {.cancel = &cancel, .cancel_at = 1};
    mp_run_opts_t opts = {.progress_cb = log_cb, .ud = &log, .cancel = &cancel};
    mp_recipe_t *r = recipe("{\"steps\":[{\"prune\":{\"sparsity\":0.5}},{\"quantize\":{}}]}");
    mp_model_t *out = (mp_model_t *)1;
    char *text = (char *)1;
    mp_errctx_t err = {0};

    /* set after the first tensor: the run stops before the second */
    ck_assert_int_eq(mp_pipeline_run(g_in, r, &opts, &out, &text, &err), MP_ECANCELED);
    ck_assert_int_eq(log.n, 1);
    ck_assert_ptr_null(out);
    ck_assert_ptr_null(text);
    ck_assert_str_eq(err.msg, "canceled before pruning tensor 'fc2.weight'");
    mp_recipe_free(r);
}
END_TEST

/* ---- dtypes ----------------------------------------------------------------------------------- */

START_TEST(test_f16_input)
{
    /* k/8 for k = -7..8 skipping 0: exact in F16, magnitudes pairwise distinct except sign */
    static const float vals[8] = {0.125f, -0.25f, 0.375f, -0.5f, 0.625f, -0.75f, 0.875f, -1.0f};
    const int64_t shape[2] = {2, 4};
    uint16_t h[8];
    mp_model_t *in = mp_model_new(), *out, *plain = NULL;
    json_t *rep;
    mp_errctx_t err = {0};
    const mp_tensor_t *t;

    mp__f32_to_dtype(vals, 8, MP_DT_F16, h);
    ck_assert_uint_eq(h[0], 0x3000); /* 0.125 */
    ck_assert_uint_eq(h[7], 0xbc00); /* -1.0 */
    ck_assert_int_eq(mp_model_add(in, "w", MP_DT_F16, 2, shape, h, sizeof h, NULL), 0);

    /* prune only: stays F16, the four smallest magnitudes become +0 */
    out = run(in, "{\"steps\":[{\"prune\":{\"sparsity\":0.5}}]}", &rep);
    t = mp_model_find(out, "w");
    ck_assert_int_eq(t->dtype, MP_DT_F16);
    ck_assert_int_eq(memcmp(t->data, (const uint16_t[]){0, 0, 0, 0, h[4], h[5], h[6], h[7]}, 16),
                     0);
    ck_assert_int_eq(jint(tensor_entry(rep, "w"), "bytes_before"), 16);
    ck_assert_int_eq(jint(tensor_entry(rep, "w"), "bytes_after"), 16);
    /* unpack gives F32 */
    ck_assert_int_eq(mp_model_unpack(out, &plain, &err), 0);
    t = mp_model_find(plain, "w");
    ck_assert_int_eq(t->dtype, MP_DT_F32);
    ck_assert_float_eq(((const float *)t->data)[5], -0.75f);
    ck_assert_float_eq(((const float *)t->data)[1], 0.0f);
    mp_model_free(plain);
    json_decref(rep);
    mp_model_free(out);

    /* quantize: I8 [2,4] + 2 scales; 8 + 8 bytes from 16 */
    out = run(in, "{\"steps\":[{\"quantize\":{}}]}", &rep);
    t = mp_model_find(out, "w");
    ck_assert_int_eq(t->dtype, MP_DT_I8);
    ck_assert_int_eq(((const int8_t *)t->data)[3], -127); /* row absmax -0.5 */
    ck_assert_int_eq(((const int8_t *)t->data)[7], -127);
    ck_assert_int_eq(jint(tensor_entry(rep, "w"), "bytes_after"), 8 + 8);
    ck_assert_str_eq(json_string_value(json_object_get(tensor_entry(rep, "w"), "dtype")), "F16");
    json_decref(rep);
    mp_model_free(out);
    mp_model_free(in);
}
END_TEST

/* Every finite bit pattern of a 16-bit float type (exponent field exp_mask << exp_shift not all
 * ones) converts to F32 and back to itself; returns how many there are. */
static size_t round_trip_all(mp_dtype_t dt, unsigned exp_shift, unsigned exp_mask)
{
    static uint16_t bits[65536], back[65536];
    static float f[65536];
    mp_tensor_t t = {.name = "all", .dtype = dt, .n_dims = 1, .data = bits};
    size_t n = 0;

    for (uint32_t b = 0; b < 65536; b++) {
        if (((b >> exp_shift) & exp_mask) != exp_mask) {
            bits[n++] = (uint16_t)b;
        }
    }
    t.shape[0] = (int64_t)n;
    t.n_bytes = n * 2;
    ck_assert_int_eq(mp__tensor_to_f32(&t, f, NULL), 0);
    ck_assert_float_eq(f[1], dt == MP_DT_F16 ? 0x1p-24f : 0x1p-133f); /* smallest subnormal */
    mp__f32_to_dtype(f, n, dt, back);
    ck_assert_int_eq(memcmp(bits, back, n * 2), 0);
    return n;
}

START_TEST(test_f16_bf16_round_trip)
{
    float f[3];
    uint16_t back[3];

    ck_assert_uint_eq(round_trip_all(MP_DT_F16, 10, 0x1f), 65536 - 2048);
    ck_assert_uint_eq(round_trip_all(MP_DT_BF16, 7, 0xff), 65536 - 256);

    /* rounding to nearest even: 1 + 2^-11 is a tie between 1 and 1 + 2^-10 */
    f[0] = 1.0f + 0x1p-11f;
    f[1] = 1.0f + 3 * 0x1p-11f;
    f[2] = 65520.0f;
    mp__f32_to_dtype(f, 3, MP_DT_F16, back);
    ck_assert_uint_eq(back[0], 0x3c00);
    ck_assert_uint_eq(back[1], 0x3c02);
    ck_assert_uint_eq(back[2], 0x7c00);
}
END_TEST

START_TEST(test_bad_values)
{
    const int64_t shape[2] = {2, 2};
    double d[4] = {1.0, 2.0, 1e300, 4.0};
    mp_model_t *in = mp_model_new(), *out = (mp_model_t *)1;
    mp_recipe_t *r = recipe("{\"steps\":[{\"quantize\":{}}]}");
    char *text = NULL;
    mp_errctx_t err = {0};

    ck_assert_int_eq(mp_model_add(in, "d", MP_DT_F64, 2, shape, d, sizeof d, NULL), 0);
    ck_assert_int_eq(mp_pipeline_run(in, r, NULL, &out, &text, &err), MP_EINVAL);
    ck_assert_str_eq(err.msg, "tensor 'd': element 2 (1e+300) does not fit in F32");
    ck_assert_ptr_null(out);
    mp_model_free(in);

    g_w1[3] = NAN;
    in = mp_model_new();
    ck_assert_int_eq(mp_model_add(in, "w", MP_DT_F32, 2, shape, g_w1, 16, NULL), 0);
    ck_assert_int_eq(mp_pipeline_run(in, r, NULL, &out, &text, &err), MP_EINVAL);
    ck_assert_str_eq(err.msg,
                     "tensor 'w': element 3 is NaN; only finite values can be compressed");
    mp_model_free(in);

    /* the model check runs inside the pipeline too */
    in = mp_model_new();
    ck_assert_int_eq(mp_pipeline_run(in, r, NULL, &out, &text, &err), MP_ERECIPE);
    ck_assert_ptr_null(text);
    mp_model_free(in);
    mp_recipe_free(r);
}
END_TEST

static Suite *pipeline_suite(void)
{
    Suite *s = suite_create("pipeline");
    TCase *tc;

    tc = tcase_create("run");
    tcase_add_checked_fixture(tc, model_setup, model_teardown);
    tcase_add_test(tc, test_layer_prune_quantize);
    tcase_add_test(tc, test_global_prune);
    tcase_add_test(tc, test_prune_only_and_tensor_granularity);
    tcase_add_test(tc, test_progress);
    tcase_add_test(tc, test_cancel);
    tcase_add_test(tc, test_bad_values);
    suite_add_tcase(s, tc);

    tc = tcase_create("unpack");
    tcase_add_checked_fixture(tc, model_setup, model_teardown);
    tcase_add_test(tc, test_save_reload_unpack);
    tcase_add_test(tc, test_unpack_refusals);
    suite_add_tcase(s, tc);

    tc = tcase_create("dtypes");
    tcase_add_test(tc, test_f16_input);
    tcase_add_test(tc, test_f16_bf16_round_trip);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(pipeline_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
