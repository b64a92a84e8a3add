/* check_pipeline.c — mp_pipeline_run and mp_model_unpack on small models built in memory.
 *
 * The first model: fc1.weight [4,8] and fc2.weight [3,5] (F32, magnitudes all distinct and at
 * least 0.1, fc2's larger, so that the pruned set is unique and no surviving weight rounds to
 * an int8 zero), plus the 1-D biases fc1.bias [4] and fc2.bias [3], which the default
 * selection keeps. The other tests build their own: a 6 x 40 weight for every stored format
 * (groups of 16 leave a shorter last group), a 6 x 8 matrix of known singular values for the
 * rank rules, an exact Tucker-2 product for the convolution factors, and two layers of 64 x 128
 * and 32 x 64 for Deep Compression's stages. Every expected figure — which entries pruning
 * zeroes, scales and codes, byte counts of every format, ranks, parameter and FLOP counts — is
 * computed here from the method's definition, and every run's output goes through both
 * containers and unpack, which must restore exactly the values the report measured.
 */
#include "methods_int.h"
#include "recipe_int.h"

#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
    float *all, thr;
    size_t total = 0;

    for (size_t a = 0; a < n_arrays; a++) {
        total += n[a];
    }
    all = malloc(total * sizeof *all);
    ck_assert_ptr_nonnull(all);
    total = 0;
    for (size_t a = 0; a < n_arrays; a++) {
        for (size_t i = 0; i < n[a]; i++) {
            all[total++] = fabsf(w[a][i]);
        }
    }
    qsort(all, total, sizeof all[0], cmp_float);
    thr = k < total ? all[k] : INFINITY;
    free(all);
    return thr;
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
    ck_assert_int_eq(jint(rec, "version"), 2);
    /* pruned only: stored raw in its own dtype */
    ck_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(json_object_get(json_object_get(rec, "tensors"),
                                                         "fc1.weight"),
                                         "code"),
                         "kind")),
                     "raw");
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
                                         "code"),
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
    ck_assert_str_eq(err.msg, "metadata 'modelpress': 'w_scale' must be F32 [2] to store 'w', "
                              "not F32 [3]");
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
    /* after each of 2 steps for each of 2 tensors, a tensor through all its steps first */
    ck_assert_int_eq(log.n, 4);
    ck_assert_str_eq(log.stage[0], "prune");
    ck_assert_str_eq(log.stage[1], "quantize");
    ck_assert_str_eq(log.stage[2], "prune");
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

    /* set after the first step of the first tensor: the run stops before the second step */
    ck_assert_int_eq(mp_pipeline_run(g_in, r, &opts, &out, &text, &err), MP_ECANCELED);
    ck_assert_int_eq(log.n, 1);
    ck_assert_ptr_null(out);
    ck_assert_ptr_null(text);
    ck_assert_str_eq(err.msg, "canceled before quantizing tensor 'fc1.weight'");
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

/* ---- every format: stored tensors, byte counts, values -------------------------------------- */

#define FR 6  /* the format tests' weight "w": FR x FC, groups of 16 leave a last group of 8 */
#define FC 40
#define FN (FR * FC)

/* Deterministic values in [-1, 1) with no two magnitudes alike (a small LCG). */
static void lcg_fill(float *w, size_t n, uint32_t seed)
{
    uint32_t x = seed;

    for (size_t i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        w[i] = (float)((x >> 8) & 0xffffff) / (float)0x800000 - 1.0f;
    }
}

/* A model of one F32 weight w [rows, cols] from lcg_fill, plus a bias b [rows] kept as it is. */
static mp_model_t *one_weight(const char *name, int n_dims, const int64_t *shape, float *w,
                              uint32_t seed)
{
    mp_model_t *m = mp_model_new();
    int64_t n = 1;
    float b[64] = {0};
    const int64_t sb[1] = {shape[0]};

    for (int d = 0; d < n_dims; d++) {
        n *= shape[d];
    }
    lcg_fill(w, (size_t)n, seed);
    ck_assert_int_eq(mp_model_add(m, name, MP_DT_F32, n_dims, shape, w, (size_t)n * 4, NULL), 0);
    ck_assert_int_eq(mp_model_add(m, "b", MP_DT_F32, 1, sb, b, (size_t)shape[0] * 4, NULL), 0);
    return m;
}

/* Save out (as .mpz or safetensors), load it back by content and unpack it. *loaded must be
 * freed after the unpacked model, which borrows from it. */
static mp_model_t *round_trip(const mp_model_t *out, int mpz, mp_model_t **loaded)
{
    char path[] = "/tmp/check_pipeline-XXXXXX";
    mp_model_t *plain = NULL;
    mp_errctx_t err = {0};
    int fd = mkstemp(path);

    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert_msg((mpz ? mp_mpz_save(out, path, &err) : mp_safetensors_save(out, path, &err)) == 0,
                  "%s", err.msg);
    ck_assert_msg(mp_model_load(path, loaded, &err) == 0, "%s", err.msg);
    unlink(path);
    ck_assert_msg(mp_model_unpack(*loaded, &plain, &err) == 0, "%s", err.msg);
    return plain;
}

/* The unpacked F32 values of name, copied into v (n of them). */
static void unpacked_values(const mp_model_t *plain, const char *name, float *v, size_t n)
{
    const mp_tensor_t *t = mp_model_find(plain, name);

    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->dtype, MP_DT_F32);
    ck_assert_uint_eq(t->n_bytes, n * sizeof(float));
    memcpy(v, t->data, n * sizeof(float));
}

/* What unpack restores is what the report measured: the same error figures to the last bit, in
 * both containers, and element by element the same values from both. */
static void check_unpack_is_reported(const mp_model_t *in, const mp_model_t *out,
                                     const json_t *rep)
{
    mp_model_t *loaded[2] = {NULL, NULL}, *plain[2];
    size_t i;
    json_t *e;

    plain[0] = round_trip(out, 0, &loaded[0]);
    plain[1] = round_trip(out, 1, &loaded[1]);
    json_array_foreach(json_object_get(rep, "tensors"), i, e) {
        const char *name = json_string_value(json_object_get(e, "name"));
        const mp_tensor_t *t = mp_model_find(in, name);
        const size_t n = (size_t)mp_tensor_elements(t);
        float *orig = malloc(n * sizeof *orig), *v0 = malloc(n * sizeof *v0),
              *v1 = malloc(n * sizeof *v1);
        double rel, sqnr;
        ck_assert_int_eq(mp__tensor_to_f32(t, orig, NULL), 0);
        unpacked_values(plain[0], name, v0, n);
        unpacked_values(plain[1], name, v1, n);
        ck_assert_int_eq(memcmp(v0, v1, n * sizeof *v0), 0);
        mp__error_stats(orig, v0, n, &rel, &sqnr);
        ck_assert_double_eq(jnum(e, "rel_error"), rel);
        if (isfinite(sqnr)) {
            ck_assert_double_eq(jnum(e, "sqnr_db"), sqnr);
        } else {
            ck_assert(json_is_null(json_object_get(e, "sqnr_db")));
        }
        ck_assert_double_eq(jnum(e, "sparsity"), (double)zeros(v0, n) / (double)n);
        free(orig);
        free(v0);
        free(v1);
    }
    for (int k = 0; k < 2; k++) {
        mp_model_free(plain[k]);
        mp_model_free(loaded[k]);
    }
}

/* The end of a run's checks: what unpack restores is what rep reports; then free both. */
static void check_and_free(const mp_model_t *in, mp_model_t *out, json_t *rep)
{
    check_unpack_is_reported(in, out, rep);
    json_decref(rep);
    mp_model_free(out);
}

/* The stored tensor name of out, checked for dtype and shape (n_dims dims in shape). */
static const mp_tensor_t *stored(const mp_model_t *out, const char *name, mp_dtype_t dt,
                                 int n_dims, const int64_t *shape)
{
    const mp_tensor_t *t = mp_model_find(out, name);

    ck_assert_msg(t != NULL, "no stored tensor %s", name);
    ck_assert_int_eq(t->dtype, dt);
    ck_assert_int_eq(t->n_dims, n_dims);
    for (int d = 0; d < n_dims; d++) {
        ck_assert_int_eq(t->shape[d], shape[d]);
    }
    return t;
}

static const char *record_code_kind(const mp_model_t *out, const char *name)
{
    static char kind[32];
    json_t *rec = json_loads(mp_model_get_meta(out, MP_META_KEY), 0, NULL);

    ck_assert_ptr_nonnull(rec);
    snprintf(kind, sizeof kind, "%s",
             json_string_value(json_object_get(
                 json_object_get(json_object_get(json_object_get(rec, "tensors"), name), "code"),
                 "kind")));
    json_decref(rec);
    return kind;
}

START_TEST(test_int4_group)
{
    float w[FN], got[FN];
    const int64_t shape[2] = {FR, FC}, packed[1] = {FN / 2}, two[1] = {2}, sc[2] = {FR, 3};
    mp_model_t *in = one_weight("w", 2, shape, w, 1), *out, *loaded, *plain;
    json_t *rep;
    const mp_tensor_t *p, *sh, *s;
    int64_t dims[2];

    out = run(in, "{\"steps\":[{\"quantize\":{\"bits\":4,\"granularity\":\"group\","
                  "\"group_size\":16}}]}",
              &rep);
    /* ceil(n 4 / 8) code bytes + 16 for the shape (I64 x 2) + 4 per group, 3 groups a row */
    ck_assert_int_eq(jint(tensor_entry(rep, "w"), "bytes_after"), FN / 2 + 16 + 4 * FR * 3);
    ck_assert_double_eq(jnum(tensor_entry(rep, "w"), "bits_per_weight"),
                        (FN / 2 + 16 + 4 * FR * 3) * 8.0 / FN);
    ck_assert_ptr_null(mp_model_find(out, "w"));
    p = stored(out, "w_packed", MP_DT_U8, 1, packed);
    sh = stored(out, "w_shape", MP_DT_I64, 1, two);
    s = stored(out, "w_scale", MP_DT_F32, 2, sc);
    ck_assert_ptr_null(mp_model_find(out, "w_zero_point"));
    memcpy(dims, sh->data, sizeof dims);
    ck_assert_int_eq(dims[0], FR);
    ck_assert_int_eq(dims[1], FC);
    ck_assert_str_eq(record_code_kind(out, "w"), "int");

    plain = round_trip(out, 0, &loaded);
    unpacked_values(plain, "w", got, FN);
    for (size_t r = 0; r < FR; r++) {
        for (size_t g = 0; g < 3; g++) {
            const size_t lo = g * 16, hi = lo + 16 < FC ? lo + 16 : FC;
            float absmax = 0.0f, scale;
            for (size_t c = lo; c < hi; c++) {
                absmax = fmaxf(absmax, fabsf(w[r * FC + c]));
            }
            scale = absmax / 7.0f; /* qmax = 2^(4-1) - 1 */
            ck_assert_float_eq(((const float *)s->data)[r * 3 + g], scale);
            for (size_t c = lo; c < hi; c++) {
                const size_t i = r * FC + c;
                float q = rintf(w[i] * (1.0f / scale));
                const int nib = (((const uint8_t *)p->data)[i / 2] >> (4 * (i % 2))) & 15;
                q = q > 7 ? 7 : q < -7 ? -7 : q;
                /* the code, offset by 8, at bit 4 i of the little-endian stream */
                ck_assert_int_eq(nib, (int)q + 8);
                ck_assert_float_eq_tol(got[i], q * scale, 1e-6f * scale);
                ck_assert(fabsf(got[i] - w[i]) <= 0.5f * scale * (1.0f + 1e-5f));
            }
        }
    }
    mp_model_free(plain);
    mp_model_free(loaded);
    check_and_free(in, out, rep);
    mp_model_free(in);
}
END_TEST

START_TEST(test_int_asymmetric)
{
    float w[FN], got[FN];
    const int64_t shape[2] = {FR, FC}, one[1] = {1}, rows[1] = {FR}, packed[1] = {FN * 3 / 8};
    mp_model_t *in = one_weight("w", 2, shape, w, 2), *out, *loaded, *plain;
    json_t *rep;
    const mp_tensor_t *q, *s, *z;
    float lo = 0.0f, hi = 0.0f, scale;
    int32_t zp;

    /* 8 bits, one scale and zero point for the tensor: U8 codes of its shape, 4 + 4 bytes */
    out = run(in, "{\"steps\":[{\"quantize\":{\"scheme\":\"asymmetric\",\"granularity\":"
                  "\"tensor\"}}]}",
              &rep);
    ck_assert_int_eq(jint(tensor_entry(rep, "w"), "bytes_after"), FN + 4 + 4);
    q = stored(out, "w", MP_DT_U8, 2, shape);
    s = stored(out, "w_scale", MP_DT_F32, 1, one);
    z = stored(out, "w_zero_point", MP_DT_I32, 1, one);
    for (size_t i = 0; i < FN; i++) {
        lo = fminf(lo, w[i]);
        hi = fmaxf(hi, w[i]);
    }
    scale = ((const float *)s->data)[0];
    memcpy(&zp, z->data, sizeof zp);
    ck_assert_float_eq_tol(scale, (hi - lo) / 255.0f, 1e-6f * scale);
    ck_assert_int_eq(zp, (int32_t)rintf(-lo / scale));
    plain = round_trip(out, 1, &loaded);
    unpacked_values(plain, "w", got, FN);
    for (size_t i = 0; i < FN; i++) {
        const int code = ((const uint8_t *)q->data)[i];
        ck_assert_float_eq_tol(got[i], (float)(code - zp) * scale, 1e-6f);
        ck_assert(fabsf(got[i] - w[i]) <= 0.5f * scale * (1.0f + 1e-4f));
    }
    mp_model_free(plain);
    mp_model_free(loaded);
    check_and_free(in, out, rep);

    /* 3 bits per channel: packed codes, [rows] scales and zero points */
    out = run(in, "{\"steps\":[{\"quantize\":{\"bits\":3,\"scheme\":\"asymmetric\"}}]}", &rep);
    ck_assert_int_eq(jint(tensor_entry(rep, "w"), "bytes_after"), FN * 3 / 8 + 16 + 8 * FR);
    stored(out, "w_packed", MP_DT_U8, 1, packed);
    stored(out, "w_scale", MP_DT_F32, 1, rows);
    stored(out, "w_zero_point", MP_DT_I32, 1, rows);
    check_and_free(in, out, rep);
    mp_model_free(in);
}
END_TEST

START_TEST(test_binary_ternary)
{
    float w[FN], got[FN];
    const int64_t shape[2] = {FR, FC}, rows[1] = {FR}, bin[1] = {FN / 8}, ter[1] = {FN / 4};
    mp_model_t *in = one_weight("w", 2, shape, w, 3), *out, *loaded, *plain;
    json_t *rep;

    /* binary: 1 bit a weight, the shape, one alpha = mean |w| per row */
    out = run(in, "{\"steps\":[{\"quantize\":{\"format\":\"binary\"}}]}", &rep);
    ck_assert_int_eq(jint(tensor_entry(rep, "w"), "bytes_after"), FN / 8 + 16 + 4 * FR);
    stored(out, "w_packed", MP_DT_U8, 1, bin);
    stored(out, "w_scale", MP_DT_F32, 1, rows);
    ck_assert_str_eq(record_code_kind(out, "w"), "binary");
    plain = round_trip(out, 1, &loaded);
    unpacked_values(plain, "w", got, FN);
    for (size_t r = 0; r < FR; r++) {
        double mean = 0.0;
        for (size_t c = 0; c < FC; c++) {
            mean += fabs((double)w[r * FC + c]);
        }
        mean /= FC;
        for (size_t c = 0; c < FC; c++) {
            const float x = w[r * FC + c], y = got[r * FC + c];
            ck_assert_float_eq_tol(fabsf(y), (float)mean, 1e-6f);
            ck_assert_int_eq(y > 0.0f, x >= 0.0f); /* the sign, 0 counting as + */
        }
    }
    mp_model_free(plain);
    mp_model_free(loaded);
    check_and_free(in, out, rep);

    /* ternary: 2 bits, delta = 0.7 mean |w|, alpha = mean |w| over |w| > delta */
    out = run(in, "{\"steps\":[{\"quantize\":{\"format\":\"ternary\"}}]}", &rep);
    ck_assert_int_eq(jint(tensor_entry(rep, "w"), "bytes_after"), FN / 4 + 16 + 4 * FR);
    stored(out, "w_packed", MP_DT_U8, 1, ter);
    plain = round_trip(out, 0, &loaded);
    unpacked_values(plain, "w", got, FN);
    for (size_t r = 0; r < FR; r++) {
        double mean = 0.0, kept = 0.0, delta;
        size_t n_kept = 0;
        for (size_t c = 0; c < FC; c++) {
            mean += fabs((double)w[r * FC + c]);
        }
        delta = 0.7 * mean / FC;
        for (size_t c = 0; c < FC; c++) {
            if (fabs((double)w[r * FC + c]) > delta) {
                kept += fabs((double)w[r * FC + c]);
                n_kept++;
            }
        }
        for (size_t c = 0; c < FC; c++) {
            const float x = w[r * FC + c], y = got[r * FC + c];
            if (fabs((double)x) <= delta) {
                ck_assert_float_eq(y, 0.0f);
            } else {
                ck_assert_float_eq_tol(y, copysignf((float)(kept / (double)n_kept), x), 1e-6f);
            }
        }
    }
    mp_model_free(plain);
    mp_model_free(loaded);
    check_and_free(in, out, rep);
    mp_model_free(in);
}
END_TEST

/* Round to nearest even at bit 16: F32 to BF16 and back, the test's own. */
static float bf16_round(float f)
{
    uint32_t x;

    memcpy(&x, &f, sizeof x);
    x = (x + 0x7fffu + ((x >> 16) & 1u)) & 0xffff0000u;
    memcpy(&f, &x, sizeof f);
    return f;
}

START_TEST(test_fp16_bf16)
{
    float w[FN], got[FN];
    const int64_t shape[2] = {FR, FC};
    mp_model_t *in = one_weight("w", 2, shape, w, 4), *out, *loaded, *plain;
    json_t *rep;

    out = run(in, "{\"steps\":[{\"quantize\":{\"format\":\"fp16\"}}]}", &rep);
    ck_assert_int_eq(jint(tensor_entry(rep, "w"), "bytes_after"), FN * 2);
    stored(out, "w", MP_DT_F16, 2, shape);
    ck_assert_str_eq(record_code_kind(out, "w"), "raw");
    plain = round_trip(out, 1, &loaded);
    unpacked_values(plain, "w", got, FN);
    for (size_t i = 0; i < FN; i++) {
        ck_assert_float_eq(got[i], (float)(_Float16)w[i]); /* the compiler's own rounding */
    }
    mp_model_free(plain);
    mp_model_free(loaded);
    json_decref(rep);
    mp_model_free(out);

    out = run(in, "{\"steps\":[{\"quantize\":{\"format\":\"bf16\"}}]}", &rep);
    ck_assert_int_eq(jint(tensor_entry(rep, "w"), "bytes_after"), FN * 2);
    stored(out, "w", MP_DT_BF16, 2, shape);
    plain = round_trip(out, 0, &loaded);
    unpacked_values(plain, "w", got, FN);
    for (size_t i = 0; i < FN; i++) {
        ck_assert_float_eq(got[i], bf16_round(w[i]));
    }
    mp_model_free(plain);
    mp_model_free(loaded);
    check_and_free(in, out, rep);
    mp_model_free(in);
}
END_TEST

/* ---- share ---------------------------------------------------------------------------------- */

START_TEST(test_share)
{
    float w[FN], p[FN], got[FN];
    const int64_t shape[2] = {FR, FC}, k4[1] = {4};
    const float *wp = w;
    const size_t n = FN;
    mp_model_t *in = one_weight("w", 2, shape, w, 5), *out, *loaded, *plain;
    json_t *rep;
    const mp_tensor_t *idx, *book;
    double sse = 0.0, sse_lloyd;
    float cb[4];

    /* prune half, then 4 clusters: entry 0 is 0.0 for the pruned, 3 for the rest */
    out = run(in, "{\"steps\":[{\"prune\":{\"sparsity\":0.5}},{\"share\":{\"clusters\":4}}]}",
              &rep);
    prune_expected(w, FN, threshold(&wp, &n, 1, FN / 2), p);
    ck_assert_int_eq(jint(tensor_entry(rep, "w"), "bytes_after"), FN + 4 * 4);
    ck_assert_int_eq(jint(tensor_entry(rep, "w"), "clusters"), 4);
    idx = stored(out, "w_indices", MP_DT_U8, 2, shape);
    book = stored(out, "w_codebook", MP_DT_F32, 1, k4);
    memcpy(cb, book->data, sizeof cb);
    ck_assert_float_eq(cb[0], 0.0f);
    ck_assert(cb[1] < cb[2] && cb[2] < cb[3]);
    plain = round_trip(out, 1, &loaded);
    unpacked_values(plain, "w", got, FN);
    for (size_t i = 0; i < FN; i++) {
        const int k = ((const uint8_t *)idx->data)[i];
        ck_assert_int_eq(k == 0, p[i] == 0.0f); /* zeros stay exactly zero, and only they */
        ck_assert_float_eq(got[i], cb[k]);
        /* a converged k-means: every weight at its nearest centroid */
        for (int j = 1; j < 4 && p[i] != 0.0f; j++) {
            ck_assert(fabsf(p[i] - cb[k]) <= fabsf(p[i] - cb[j]));
        }
        sse += ((double)p[i] - (double)got[i]) * ((double)p[i] - (double)got[i]);
    }
    ck_assert_double_eq_tol(jnum(tensor_entry(rep, "w"), "sse"), sse, 1e-9);
    ck_assert_double_eq(jnum(tensor_entry(rep, "w"), "sparsity"), 0.5);
    sse_lloyd = sse;
    mp_model_free(plain);
    mp_model_free(loaded);
    check_and_free(in, out, rep);

    /* the exact optimum is never worse than Lloyd's from the linear start */
    out = run(in, "{\"steps\":[{\"prune\":{\"sparsity\":0.5}},{\"share\":{\"clusters\":4,"
                  "\"optimal\":true}}]}",
              &rep);
    ck_assert(jnum(tensor_entry(rep, "w"), "sse") <= sse_lloyd * (1.0 + 1e-12));
    check_and_free(in, out, rep);

    /* without zeros all k entries are clusters of the weights; 2 clusters of [-1, 1) values
     * split at 0 by sign */
    out = run(in, "{\"steps\":[{\"share\":{\"clusters\":2,\"init\":\"kmeans++\"}}]}", &rep);
    book = stored(out, "w_codebook", MP_DT_F32, 1, (const int64_t[]){2});
    memcpy(cb, book->data, 2 * sizeof *cb);
    ck_assert(cb[0] < 0.0f && cb[1] > 0.0f);
    idx = mp_model_find(out, "w_indices");
    for (size_t i = 0; i < FN; i++) {
        ck_assert_int_eq(((const uint8_t *)idx->data)[i], w[i] > (cb[0] + cb[1]) / 2);
    }
    check_and_free(in, out, rep);
    mp_model_free(in);
}
END_TEST

/* ---- structured pruning ------------------------------------------------------------------- */

START_TEST(test_channels_and_nm)
{
    /* rows: L1 4 / L2 2, L1 3 / L2 3, L1 20 / L2 10, L1 0.4 / L2 0.2 */
    static const float w[16] = {1, 1, -1, 1, 3, 0, 0, 0, 5, -5, 5, 5, 0.1f, 0.1f, -0.1f, 0.1f};
    const int64_t shape[2] = {4, 4};
    mp_model_t *in = mp_model_new(), *out;
    json_t *rep;
    const float *v;

    ck_assert_int_eq(mp_model_add(in, "w", MP_DT_F32, 2, shape, w, sizeof w, NULL), 0);
    /* half the channels by L1: rows 3 and 1 go; by L2: rows 3 and 0 */
    out = run(in, "{\"steps\":[{\"prune\":{\"sparsity\":0.5,\"structure\":\"channel\"}}]}",
              &rep);
    v = mp_model_find(out, "w")->data;
    ck_assert_float_eq(v[0], 1.0f);
    ck_assert_float_eq(v[4], 0.0f);
    ck_assert_float_eq(v[12], 0.0f);
    ck_assert_int_eq(jint(tensor_entry(rep, "w"), "zero_channels"), 2);
    ck_assert_double_eq(jnum(tensor_entry(rep, "w"), "sparsity"), 8.0 / 16.0 + 0.0);
    json_decref(rep);
    mp_model_free(out);
    out = run(in, "{\"steps\":[{\"prune\":{\"sparsity\":0.5,\"structure\":\"channel\","
                  "\"norm\":2}}]}",
              &rep);
    v = mp_model_find(out, "w")->data;
    ck_assert_float_eq(v[0], 0.0f);
    ck_assert_float_eq(v[4], 3.0f);
    /* row 1 keeps its own zeros: 2 zero rows, 8 + 3 zeros in all */
    ck_assert_int_eq(jint(tensor_entry(rep, "w"), "zero_channels"), 2);
    ck_assert_double_eq(jnum(tensor_entry(rep, "w"), "sparsity"), 11.0 / 16.0);
    json_decref(rep);
    mp_model_free(out);

    /* 2:4 keeps the two largest |w| of every 4 (ties: the lower index), then int8 */
    out = run(in, "{\"steps\":[{\"prune\":{\"structure\":\"2:4\"}},{\"quantize\":{}}]}", &rep);
    {
        static const int keep[16] = {1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0};
        const int8_t *q = mp_model_find(out, "w")->data;
        for (int i = 0; i < 16; i++) {
            ck_assert_int_eq(q[i] != 0, keep[i] && w[i] != 0.0f);
        }
    }
    ck_assert_double_eq(jnum(tensor_entry(rep, "w"), "sparsity"), 9.0 / 16.0);
    check_and_free(in, out, rep);
    mp_model_free(in);
}
END_TEST

/* ---- lowrank -------------------------------------------------------------------------------- */

/* W [6, 8] with singular values 4, 3, 2, 1, 0.5, 0.25: a signed, permuted diagonal. */
static const float SV[6] = {4.0f, 3.0f, 2.0f, 1.0f, 0.5f, 0.25f};

static mp_model_t *sv_model(float *w)
{
    static const int rows[6] = {3, 0, 5, 1, 4, 2}, cols[6] = {7, 2, 0, 5, 1, 6};
    const int64_t shape[2] = {6, 8};
    mp_model_t *m = mp_model_new();

    memset(w, 0, 48 * sizeof *w);
    for (int j = 0; j < 6; j++) {
        w[rows[j] * 8 + cols[j]] = j % 2 ? -SV[j] : SV[j];
    }
    ck_assert_int_eq(mp_model_add(m, "w", MP_DT_F32, 2, shape, w, 48 * sizeof *w, NULL), 0);
    return m;
}

/* The rank a lowrank recipe chose for w, checked with every figure that follows from it. */
static int chosen_rank(const mp_model_t *in, const char *step)
{
    char json[160];
    json_t *rep;
    mp_model_t *out;
    const json_t *e;
    double tail = 0.0;
    int r;

    snprintf(json, sizeof json, "{\"steps\":[{\"lowrank\":%s}]}", step);
    out = run(in, json, &rep);
    e = tensor_entry(rep, "w");
    r = (int)jint(e, "rank");
    ck_assert_str_eq(json_string_value(json_object_get(e, "decomposition")), "svd");
    ck_assert(json_is_false(json_object_get(e, "randomized"))); /* 6 x 8 is small */
    ck_assert_int_eq(jint(e, "params_before"), 48);
    ck_assert_int_eq(jint(e, "params_after"), r * (6 + 8));
    ck_assert_int_eq(jint(e, "flops_before"), 2 * 48);
    ck_assert_int_eq(jint(e, "flops_after"), 2 * r * (6 + 8));
    ck_assert_int_eq(jint(e, "bytes_after"), 4 * r * (6 + 8));
    stored(out, "w_u", MP_DT_F32, 2, (const int64_t[]){6, r});
    stored(out, "w_v", MP_DT_F32, 2, (const int64_t[]){r, 8});
    ck_assert_ptr_null(mp_model_find(out, "w"));
    /* the truncation error of an SVD: the singular values left out */
    for (int j = r; j < 6; j++) {
        tail += (double)SV[j] * SV[j];
    }
    ck_assert_double_eq_tol(jnum(e, "rel_error"), sqrt(tail / 30.3125), 1e-5);
    check_and_free(in, out, rep);
    return r;
}

START_TEST(test_lowrank_rank_rules)
{
    float w[48];
    mp_model_t *in = sv_model(w);

    ck_assert_int_eq(chosen_rank(in, "{\"rank\":2}"), 2);
    ck_assert_int_eq(chosen_rank(in, "{\"rank\":6}"), 6);
    /* of the full rank 6: 0.4 -> llround(2.4) = 2, 0.42 -> llround(2.52) = 3, tiny -> 1 */
    ck_assert_int_eq(chosen_rank(in, "{\"rank_ratio\":0.4}"), 2);
    ck_assert_int_eq(chosen_rank(in, "{\"rank_ratio\":0.42}"), 3);
    ck_assert_int_eq(chosen_rank(in, "{\"rank_ratio\":0.01}"), 1);
    /* squared singular values 16, 9, 4, 1, 0.25, 0.0625 of 30.3125, summed: 16, 25, 29, 30,
     * 30.25, 30.3125. 0.9 of the total is 27.28 (3 values), 0.5 is 15.16 (1), 0.99 is 30.009
     * (5: 4 give only 30), 1 needs all 6 */
    ck_assert_int_eq(chosen_rank(in, "{\"energy\":0.9}"), 3);
    ck_assert_int_eq(chosen_rank(in, "{\"energy\":0.5}"), 1);
    ck_assert_int_eq(chosen_rank(in, "{\"energy\":0.99}"), 5);
    ck_assert_int_eq(chosen_rank(in, "{\"energy\":1}"), 6);
    ck_assert_int_eq(chosen_rank(in, "{\"energy\":0.9,\"randomized\":false}"), 3);
    mp_model_free(in);
}
END_TEST

START_TEST(test_lowrank_quantized_and_f16)
{
    float w[48], got[48];
    const int64_t shape[2] = {6, 8};
    uint16_t h[48];
    mp_model_t *in = one_weight("w", 2, shape, w, 6), *out, *h_in, *loaded, *plain;
    json_t *rep;

    /* rank 3 factors as int8 codes with per-row scales: 18 + 24 codes, 6 + 3 scales */
    out = run(in, "{\"steps\":[{\"lowrank\":{\"rank\":3}},{\"quantize\":{}}]}", &rep);
    stored(out, "w_u", MP_DT_I8, 2, (const int64_t[]){6, 3});
    stored(out, "w_u_scale", MP_DT_F32, 1, (const int64_t[]){6});
    stored(out, "w_v", MP_DT_I8, 2, (const int64_t[]){3, 8});
    stored(out, "w_v_scale", MP_DT_F32, 1, (const int64_t[]){3});
    ck_assert_int_eq(jint(tensor_entry(rep, "w"), "bytes_after"), 18 + 24 + 4 * (6 + 3));
    ck_assert_int_eq(jint(json_array_get(json_object_get(rep, "stages"), 0), "bytes"),
                     4 * 3 * 14 + 24);
    ck_assert_int_eq(jint(json_array_get(json_object_get(rep, "stages"), 1), "bytes"),
                     18 + 24 + 36 + 24);
    check_and_free(in, out, rep);

    /* an F16 weight keeps F16 factors */
    mp__f32_to_dtype(w, 48, MP_DT_F16, h);
    h_in = mp_model_new();
    ck_assert_int_eq(mp_model_add(h_in, "w", MP_DT_F16, 2, shape, h, sizeof h, NULL), 0);
    out = run(h_in, "{\"steps\":[{\"lowrank\":{\"rank\":6}}]}", &rep);
    stored(out, "w_u", MP_DT_F16, 2, (const int64_t[]){6, 6});
    stored(out, "w_v", MP_DT_F16, 2, (const int64_t[]){6, 8});
    ck_assert_int_eq(jint(tensor_entry(rep, "w"), "bytes_after"), 2 * 6 * 14);
    /* full rank: only the F16 rounding of the factors is lost */
    ck_assert(jnum(tensor_entry(rep, "w"), "rel_error") < 4e-3);
    plain = round_trip(out, 1, &loaded);
    unpacked_values(plain, "w", got, 48);
    for (int i = 0; i < 48; i++) {
        float x;
        mp__tensor_to_f32(&(mp_tensor_t){.name = "h", .dtype = MP_DT_F16, .n_dims = 1,
                                         .shape = {1}, .data = &h[i], .n_bytes = 2},
                          &x, NULL);
        ck_assert_float_eq_tol(got[i], x, 1e-2f);
    }
    mp_model_free(plain);
    mp_model_free(loaded);
    check_and_free(h_in, out, rep);
    mp_model_free(h_in);
    mp_model_free(in);
}
END_TEST

/* conv [8, 6, 3, 3] = core [2, 3, 3, 3] x1 A [8, 2] x2 B [3, 6]: mode ranks 2 and 3 exactly. */
START_TEST(test_tucker2)
{
    float a[16], b[18], core[54], w[432];
    const int64_t shape[4] = {8, 6, 3, 3};
    mp_model_t *in = mp_model_new(), *out;
    json_t *rep;
    const json_t *e, *rank;

    lcg_fill(a, 16, 7);
    lcg_fill(b, 18, 8);
    lcg_fill(core, 54, 9);
    for (int o = 0; o < 8; o++) {
        for (int i = 0; i < 6; i++) {
            for (int k = 0; k < 9; k++) {
                double acc = 0.0;
                for (int p = 0; p < 2; p++) {
                    for (int q = 0; q < 3; q++) {
                        acc += (double)a[o * 2 + p] * core[(p * 3 + q) * 9 + k] * b[q * 6 + i];
                    }
                }
                w[(o * 6 + i) * 9 + k] = (float)acc;
            }
        }
    }
    ck_assert_int_eq(mp_model_add(in, "conv.weight", MP_DT_F32, 4, shape, w, sizeof w, NULL), 0);

    /* energy finds the ranks of both channel modes; three factors reproduce the weight */
    out = run(in, "{\"steps\":[{\"lowrank\":{\"energy\":0.9999}}]}", &rep);
    e = tensor_entry(rep, "conv.weight");
    rank = json_object_get(e, "rank");
    ck_assert_str_eq(json_string_value(json_object_get(e, "decomposition")), "tucker2");
    ck_assert_int_eq(json_integer_value(json_array_get(rank, 0)), 2);
    ck_assert_int_eq(json_integer_value(json_array_get(rank, 1)), 3);
    stored(out, "conv.weight_u_out", MP_DT_F32, 2, (const int64_t[]){8, 2});
    stored(out, "conv.weight_core", MP_DT_F32, 4, (const int64_t[]){2, 3, 3, 3});
    stored(out, "conv.weight_u_in", MP_DT_F32, 2, (const int64_t[]){3, 6});
    /* 1x1 conv 6 -> 3, 3x3 conv 3 -> 2, 1x1 conv 2 -> 8: 18 + 54 + 16 weights */
    ck_assert_int_eq(jint(e, "params_before"), 432);
    ck_assert_int_eq(jint(e, "params_after"), 88);
    ck_assert_int_eq(jint(e, "bytes_after"), 4 * 88);
    ck_assert_int_eq(jint(e, "flops_before"), 2 * 432);
    ck_assert_int_eq(jint(e, "flops_after"), 2 * (18 + 54 + 16));
    ck_assert(jnum(e, "rel_error") < 1e-5);
    check_and_free(in, out, rep);

    /* a fixed rank applies to both modes; a ratio to each mode's full rank (8 and 6) */
    out = run(in, "{\"steps\":[{\"lowrank\":{\"rank\":1}}]}", &rep);
    stored(out, "conv.weight_core", MP_DT_F32, 4, (const int64_t[]){1, 1, 3, 3});
    ck_assert(jnum(tensor_entry(rep, "conv.weight"), "rel_error") > 1e-3);
    check_and_free(in, out, rep);
    out = run(in, "{\"steps\":[{\"lowrank\":{\"rank_ratio\":0.5}}]}", &rep);
    stored(out, "conv.weight_u_out", MP_DT_F32, 2, (const int64_t[]){8, 4});
    stored(out, "conv.weight_u_in", MP_DT_F32, 2, (const int64_t[]){3, 6});
    json_decref(rep);
    mp_model_free(out);
    mp_model_free(in);
}
END_TEST

/* ---- composition: Deep Compression's stages ------------------------------------------------- */

/* fc1 [64, 128], fc2 [32, 64] from lcg_fill, and their biases. */
static mp_model_t *two_layers(float *w1, float *w2)
{
    static float b1[64], b2[32];
    const int64_t s1[2] = {64, 128}, s2[2] = {32, 64}, sb1[1] = {64}, sb2[1] = {32};
    mp_model_t *m = mp_model_new();

    lcg_fill(w1, 64 * 128, 10);
    lcg_fill(w2, 32 * 64, 11);
    lcg_fill(b1, 64, 12);
    lcg_fill(b2, 32, 13);
    ck_assert_int_eq(mp_model_add(m, "fc1.weight", MP_DT_F32, 2, s1, w1, 64 * 128 * 4, NULL), 0);
    ck_assert_int_eq(mp_model_add(m, "fc1.bias", MP_DT_F32, 1, sb1, b1, sizeof b1, NULL), 0);
    ck_assert_int_eq(mp_model_add(m, "fc2.weight", MP_DT_F32, 2, s2, w2, 32 * 64 * 4, NULL), 0);
    ck_assert_int_eq(mp_model_add(m, "fc2.bias", MP_DT_F32, 1, sb2, b2, sizeof b2, NULL), 0);
    return m;
}

/* The stages of rep, which must name the steps in order; sizes into bytes. */
static void stages_of(const json_t *rep, const char *const *steps, size_t n, json_int_t *bytes)
{
    const json_t *st = json_object_get(rep, "stages");

    ck_assert_uint_eq(json_array_size(st), n);
    for (size_t i = 0; i < n; i++) {
        ck_assert_str_eq(json_string_value(json_object_get(json_array_get(st, i), "step")),
                         steps[i]);
        bytes[i] = jint(json_array_get(st, i), "bytes");
    }
}

/* The size of out as an .mpz file. */
static size_t mpz_file_bytes(const mp_model_t *out)
{
    char path[] = "/tmp/check_pipeline-XXXXXX";
    struct stat st;
    mp_errctx_t err = {0};
    int fd = mkstemp(path);

    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert_msg(mp_mpz_save(out, path, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(stat(path, &st), 0);
    unlink(path);
    return (size_t)st.st_size;
}

START_TEST(test_deep_compression)
{
    static float w1[64 * 128], w2[32 * 64];
    static const char *const steps[3] = {"prune", "share", "huffman"};
    mp_model_t *in = two_layers(w1, w2), *out, *loaded, *plain;
    const json_int_t dense = (64 * 128 + 32 * 64 + 64 + 32) * 4;
    json_int_t b[3];
    json_t *rep;
    float *v = malloc(64 * 128 * sizeof *v);

    out = run(in, "{\"steps\":[{\"prune\":{\"sparsity\":0.9}},{\"share\":{\"clusters\":16}},"
                  "{\"huffman\":{}}]}",
              &rep);
    stages_of(rep, steps, 3, b);
    /* pruned weights are still stored densely; sharing stores a byte a weight and 16 floats;
     * the container codes the runs of zeros and the indices */
    ck_assert_int_eq(b[0], dense);
    ck_assert_int_eq(b[1], 64 * 128 + 32 * 64 + 2 * 16 * 4 + (64 + 32) * 4);
    ck_assert_int_lt(b[2], b[1]);
    ck_assert_int_eq(b[2], (json_int_t)mpz_file_bytes(out));
    ck_assert_int_eq(jint(rep, "bytes_after"), b[2]);
    ck_assert_double_eq(jnum(rep, "compression_ratio"), (double)dense / (double)b[2]);
    ck_assert_str_eq(json_string_value(json_object_get(rep, "output_format")), "mpz");
    /* 90 % of each weight stays exactly 0 through sharing and the container */
    plain = round_trip(out, 1, &loaded);
    unpacked_values(plain, "fc1.weight", v, 64 * 128);
    ck_assert_uint_eq(zeros(v, 64 * 128), 7373); /* llround(0.9 * 8192) */
    unpacked_values(plain, "fc2.weight", v, 32 * 64);
    ck_assert_uint_eq(zeros(v, 32 * 64), 1843);  /* llround(0.9 * 2048) */
    ck_assert_int_eq(memcmp(mp_model_find(plain, "fc1.bias")->data,
                            mp_model_find(in, "fc1.bias")->data, 64 * 4),
                     0);
    mp_model_free(plain);
    mp_model_free(loaded);
    check_and_free(in, out, rep);
    free(v);
    mp_model_free(in);
}
END_TEST

START_TEST(test_prune_int4_huffman)
{
    static float w1[64 * 128], w2[32 * 64];
    static const char *const steps[3] = {"prune", "quantize", "huffman"};
    static const char *const mpz_steps[2] = {"quantize", "mpz"};
    mp_model_t *in = two_layers(w1, w2), *out;
    json_int_t b[3];
    json_t *rep;

    out = run(in, "{\"steps\":[{\"prune\":{\"sparsity\":0.9}},{\"quantize\":{\"bits\":4}},"
                  "{\"huffman\":{}}]}",
              &rep);
    stages_of(rep, steps, 3, b);
    /* 4 bits a weight, the shapes, a scale per row */
    ck_assert_int_eq(b[1], (64 * 128 + 32 * 64) / 2 + 2 * 16 + (64 + 32) * 4 + (64 + 32) * 4);
    ck_assert_int_lt(b[1], b[0]);
    ck_assert_int_lt(b[2], b[1]);
    ck_assert_int_eq(b[2], (json_int_t)mpz_file_bytes(out));
    check_and_free(in, out, rep);

    /* output.format mpz without a huffman step: the container is a stage of its own */
    out = run(in, "{\"steps\":[{\"quantize\":{\"bits\":4}}],\"output\":{\"format\":\"mpz\"}}",
              &rep);
    stages_of(rep, mpz_steps, 2, b);
    ck_assert_int_eq(b[1], (json_int_t)mpz_file_bytes(out));
    ck_assert_int_eq(jint(rep, "bytes_after"), b[1]);
    json_decref(rep);
    mp_model_free(out);
    mp_model_free(in);
}
END_TEST

/* A global prune runs over all tensors first; the steps after it go tensor by tensor. */
START_TEST(test_global_prune_share)
{
    static float w1[64 * 128], w2[32 * 64];
    mp_model_t *in = two_layers(w1, w2), *out;
    json_t *rep;
    double s1, s2;

    out = run(in, "{\"steps\":[{\"prune\":{\"sparsity\":0.3}},{\"prune\":{\"sparsity\":0.6,"
                  "\"scope\":\"global\"}},{\"share\":{\"clusters\":8}}]}",
              &rep);
    s1 = jnum(tensor_entry(rep, "fc1.weight"), "sparsity");
    s2 = jnum(tensor_entry(rep, "fc2.weight"), "sparsity");
    /* llround(0.6 * 10240) = 6144 zeros in all, shared out by one threshold */
    ck_assert_double_eq_tol(s1 * 8192 + s2 * 2048, 6144.0, 1e-9);
    ck_assert(s1 >= 0.3 && s2 >= 0.3);
    check_and_free(in, out, rep);
    mp_model_free(in);
}
END_TEST

/* ---- unpack refuses what no encoder writes ------------------------------------------------- */

/* Unpack m with the record text; expect code and message. */
static void assert_unpack_refused(mp_model_t *m, const char *record, int code, const char *msg)
{
    mp_model_t *out = (mp_model_t *)1;
    mp_errctx_t err = {0};

    ck_assert_int_eq(mp_model_set_meta(m, MP_META_KEY, record), 0);
    ck_assert_int_eq(mp_model_unpack(m, &out, &err), code);
    ck_assert_str_eq(err.msg, msg);
    ck_assert_ptr_null(out);
}

START_TEST(test_unpack_refusals_v2)
{
    static const uint8_t idx[4] = {0, 1, 5, 1}, tern[1] = {0xff}, u8[4] = {1, 2, 3, 4};
    static const float book[2] = {0.0f, 1.0f}, sc[2] = {0.5f, 0.5f}, one[1] = {1.0f};
    static const float four[4] = {1.0f, 2.0f, 3.0f, 4.0f};
    static const uint8_t ok_idx[4] = {0, 1, 1, 0};
    static const int64_t good_shape[2] = {2, 2}, bad_shape[2] = {4, 1};
    static const int32_t zp[1] = {300};
    const int64_t s22[2] = {2, 2}, s2[1] = {2}, s1[1] = {1}, s4[1] = {4};
    mp_model_t *m = mp_model_new();

    ck_assert_int_eq(mp_model_add(m, "s_indices", MP_DT_U8, 2, s22, idx, 4, NULL), 0);
    ck_assert_int_eq(mp_model_add(m, "s_codebook", MP_DT_F32, 1, s2, book, 8, NULL), 0);
    ck_assert_int_eq(mp_model_add(m, "t_packed", MP_DT_U8, 1, s1, tern, 1, NULL), 0);
    ck_assert_int_eq(mp_model_add(m, "t_shape", MP_DT_I64, 1, s2, good_shape, 16, NULL), 0);
    ck_assert_int_eq(mp_model_add(m, "t_scale", MP_DT_F32, 1, s2, sc, 8, NULL), 0);
    ck_assert_int_eq(mp_model_add(m, "b_packed", MP_DT_U8, 1, s1, tern, 1, NULL), 0);
    ck_assert_int_eq(mp_model_add(m, "b_shape", MP_DT_I64, 1, s2, bad_shape, 16, NULL), 0);
    ck_assert_int_eq(mp_model_add(m, "b_scale", MP_DT_F32, 1, s2, sc, 8, NULL), 0);
    ck_assert_int_eq(mp_model_add(m, "a", MP_DT_U8, 2, s22, u8, 4, NULL), 0);
    ck_assert_int_eq(mp_model_add(m, "a_scale", MP_DT_F32, 1, s1, one, 4, NULL), 0);
    ck_assert_int_eq(mp_model_add(m, "a_zero_point", MP_DT_I32, 1, s1, zp, 4, NULL), 0);
    ck_assert_int_eq(mp_model_add(m, "f_u", MP_DT_F32, 1, s4, four, sizeof four, NULL), 0);

    assert_unpack_refused(m, "{\"version\":2,\"tensors\":{\"s\":{\"shape\":[2,2],\"code\":{"
                             "\"kind\":\"share\",\"clusters\":2}}}}",
                          MP_EFORMAT, "tensor 's': index 2 is 5, past the codebook of 2 entries");
    assert_unpack_refused(m, "{\"version\":2,\"tensors\":{\"t\":{\"shape\":[2,2],\"code\":{"
                             "\"kind\":\"ternary\",\"granularity\":\"channel\"}}}}",
                          MP_EFORMAT, "tensor 't': ternary code 0 is 3");
    assert_unpack_refused(m, "{\"version\":2,\"tensors\":{\"b\":{\"shape\":[2,2],\"code\":{"
                             "\"kind\":\"binary\",\"granularity\":\"channel\"}}}}",
                          MP_EFORMAT, "tensor 'b_shape': dim 0 is 4, but the part is 2");
    assert_unpack_refused(m, "{\"version\":2,\"tensors\":{\"a\":{\"shape\":[2,2],\"code\":{"
                             "\"kind\":\"int\",\"bits\":8,\"scheme\":\"asymmetric\","
                             "\"granularity\":\"tensor\"}}}}",
                          MP_EFORMAT, "tensor 'a': zero point 0 is 300, outside 0..255");
    assert_unpack_refused(m, "{\"version\":2,\"tensors\":{\"s\":{\"shape\":[2,2],\"code\":{"
                             "\"kind\":\"share\",\"clusters\":3}}}}",
                          MP_EFORMAT, "metadata 'modelpress': 's_codebook' must be F32 [3] to "
                                      "store 's', not F32 [2]");
    assert_unpack_refused(m, "{\"version\":2,\"tensors\":{\"f\":{\"shape\":[2,2],\"code\":{"
                             "\"kind\":\"raw\",\"dtype\":\"F32\"},\"lowrank\":{\"decomposition\":"
                             "\"svd\",\"rank\":3}}}}",
                          MP_EFORMAT, "metadata 'modelpress': tensor 'f': the rank must be from "
                                      "1 to the smaller dim");
    assert_unpack_refused(m, "{\"version\":2,\"tensors\":{\"f\":{\"shape\":[2,2],\"code\":{"
                             "\"kind\":\"raw\",\"dtype\":\"F32\"},\"lowrank\":{\"decomposition\":"
                             "\"svd\",\"rank\":2}}}}",
                          MP_EFORMAT, "metadata 'modelpress': 'f_u' must be F32 [2, 2] to store "
                                      "'f', not F32 [4]");
    assert_unpack_refused(m, "{\"version\":2,\"tensors\":{\"g\":{\"shape\":[2,2],\"code\":{"
                             "\"kind\":\"int\",\"bits\":4,\"scheme\":\"symmetric\","
                             "\"granularity\":\"channel\"}}}}",
                          MP_EFORMAT, "metadata 'modelpress': tensor 'g' is stored as "
                                      "'g_packed', which is missing");
    assert_unpack_refused(m, "{\"version\":2,\"tensors\":{\"a\":{\"shape\":[2,2],"
                             "\"code\":{\"kind\":\"share\",\"clusters\":2}}}}",
                          MP_EFORMAT, "metadata 'modelpress': tensor 'a' is stored as "
                                      "'a_indices', which is missing");
    assert_unpack_refused(m, "{\"version\":3,\"tensors\":{}}", MP_EUNSUPPORTED,
                          "metadata 'modelpress': only versions 1 and 2 are understood by this "
                          "version");
    assert_unpack_refused(m, "{\"version\":2,\"tensors\":{\"s\":{\"shape\":[2,-2],\"code\":{"
                             "\"kind\":\"share\",\"clusters\":2}}}}",
                          MP_EFORMAT, "metadata 'modelpress': tensor 's': dim 1 of \"shape\" is "
                                      "not a positive integer");
    assert_unpack_refused(m, "{\"version\":2,\"tensors\":{\"s\":{\"shape\":[2,2],\"code\":{"
                             "\"kind\":\"lzma\"}}}}",
                          MP_EFORMAT, "metadata 'modelpress': tensor 's': \"code\" must be an "
                                      "object with a kind of raw, int, binary, ternary or share");
    mp_model_free(m);

    /* a restored tensor would take the name of one that is passed through */
    m = mp_model_new();
    ck_assert_int_eq(mp_model_add(m, "w", MP_DT_F32, 2, s22, four, sizeof four, NULL), 0);
    ck_assert_int_eq(mp_model_add(m, "w_indices", MP_DT_U8, 2, s22, ok_idx, 4, NULL), 0);
    ck_assert_int_eq(mp_model_add(m, "w_codebook", MP_DT_F32, 1, s2, book, 8, NULL), 0);
    assert_unpack_refused(m, "{\"version\":2,\"tensors\":{\"w\":{\"shape\":[2,2],\"code\":{"
                             "\"kind\":\"share\",\"clusters\":2}}}}",
                          MP_EFORMAT, "metadata 'modelpress' lists tensor 'w' as compressed, but "
                                      "the model also has a tensor of that name that is not part "
                                      "of it");
    mp_model_free(m);
}
END_TEST

/* A caller writing another container than the recipe's names it in the report; the other keys
 * stay, and a report that is not an object is refused and left as it was. */
START_TEST(test_report_output_format)
{
    mp_errctx_t err = {0};
    char *rep = strdup("{\"bytes_after\":12,\"output_format\":\"safetensors\"}");
    char *bad = strdup("[1]");
    ck_assert_int_eq(mp_report_set_output_format(&rep, "onnx", &err), 0);
    json_t *j = json_loads(rep, 0, NULL);
    ck_assert_str_eq(json_string_value(json_object_get(j, "output_format")), "onnx");
    ck_assert_int_eq(json_integer_value(json_object_get(j, "bytes_after")), 12);
    json_decref(j);
    ck_assert_int_eq(mp_report_set_output_format(&bad, "onnx", &err), MP_EFORMAT);
    ck_assert_str_eq(bad, "[1]");
    ck_assert_str_eq(err.msg, "the report is not a JSON object");
    ck_assert_int_eq(mp_report_set_output_format(NULL, "onnx", NULL), MP_EINVAL);
    free(rep);
    free(bad);
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
    tcase_add_test(tc, test_report_output_format);
    suite_add_tcase(s, tc);

    tc = tcase_create("formats");
    tcase_add_test(tc, test_int4_group);
    tcase_add_test(tc, test_int_asymmetric);
    tcase_add_test(tc, test_binary_ternary);
    tcase_add_test(tc, test_fp16_bf16);
    tcase_add_test(tc, test_share);
    tcase_add_test(tc, test_channels_and_nm);
    suite_add_tcase(s, tc);

    tc = tcase_create("lowrank");
    tcase_add_test(tc, test_lowrank_rank_rules);
    tcase_add_test(tc, test_lowrank_quantized_and_f16);
    tcase_add_test(tc, test_tucker2);
    suite_add_tcase(s, tc);

    tc = tcase_create("compose");
    tcase_add_test(tc, test_deep_compression);
    tcase_add_test(tc, test_prune_int4_huffman);
    tcase_add_test(tc, test_global_prune_share);
    tcase_add_test(tc, test_unpack_refusals_v2);
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
