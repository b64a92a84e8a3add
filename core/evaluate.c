/* evaluate.c — measuring what compression cost: the recipe's evaluate block, and running the
 * original and the compressed model on a dataset.
 *
 * The evaluate block is validated here for mp_recipe_parse() (one definition of its fields, so
 * the parser and the callers that run the evaluation cannot disagree) and read back out of the
 * recipe's text by mp_recipe_evaluate().
 *
 * mp_evaluate() runs each model through the evaluation runtime (mp_session_*): the whole
 * dataset at batch MP_EVAL_BATCH (the last batch padded with zeros, whose outputs are ignored:
 * inference treats samples independently) for top-1 accuracy, top-1 agreement and the output
 * SNR, all taken from the model's first output; then latencies, each the median of
 * latency_runs timed runs after one untimed warm-up, at batch 1 (the first sample) and at batch
 * MP_EVAL_BATCH (the first batch). Both models get identical inputs and sessions built the same
 * way, so their figures differ only by what compression did to the weights and kernels.
 */
#include "evaluate_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_LATENCY_RUNS 10

/* What a JSON value is, for "got …" in messages: the value itself when short and printable. */
static const char *got(const json_t *v, char *buf, size_t cap)
{
    const char *s = json_string_value(v);

    if (json_is_string(v)) {
        size_t n = strlen(s), o = 0;

        buf[o++] = '"';
        for (size_t i = 0; i < n && o + 5 < cap; i++) {
            buf[o++] = s[i] >= 0x20 && s[i] < 0x7F ? s[i] : '?';
            if (i == 70 && n > 72) {
                memcpy(buf + o, "...", 3);
                o += 3;
                break;
            }
        }
        buf[o++] = '"';
        buf[o] = '\0';
    } else if (json_is_integer(v)) {
        snprintf(buf, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    } else if (json_is_real(v)) {
        snprintf(buf, cap, "%g", json_real_value(v));
    } else {
        snprintf(buf, cap, "%s",
                 json_is_object(v)  ? "an object"
                 : json_is_array(v) ? "an array"
                 : json_is_null(v)  ? "null"
                                    : "a boolean");
    }
    return buf;
}

static int is_blob_id(const char *s)
{
    size_t i = 0;

    while (s[i] != '\0' && i < 64 &&
           ((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
        i++;
    }
    return i == 64 && s[64] == '\0';
}

int mp__eval_block_parse(const json_t *v, mp_eval_spec_t *out, mp_errctx_t *err)
{
    mp_eval_spec_t spec = {.present = 1, .latency_runs = DEFAULT_LATENCY_RUNS};
    char g[100];
    const char *key;
    json_t *x;

    MP_RETURN_IF(!json_is_object(v), MP_ERECIPE,
                 "evaluate: must be an object such as {\"metric\": \"top1\"}, got %s",
                 got(v, g, sizeof g));
    json_object_foreach((json_t *)v, key, x)
    {
        if (strcmp(key, "dataset_id") == 0) {
            MP_RETURN_IF(!json_is_string(x) || !is_blob_id(json_string_value(x)), MP_ERECIPE,
                         "evaluate.dataset_id: must be the id of a dataset (64 lowercase hex "
                         "digits, as POST /datasets answers), got %s",
                         got(x, g, sizeof g));
            memcpy(spec.dataset_id, json_string_value(x), 65);
        } else if (strcmp(key, "metric") == 0) {
            MP_RETURN_IF(!json_is_string(x) || strcmp(json_string_value(x), "top1") != 0,
                         MP_ERECIPE, "evaluate.metric: must be \"top1\" (top-1 accuracy), got %s",
                         got(x, g, sizeof g));
        } else if (strcmp(key, "latency_runs") == 0) {
            MP_RETURN_IF(!json_is_integer(x) || json_integer_value(x) < 1 ||
                             json_integer_value(x) > MP_EVAL_MAX_LATENCY_RUNS,
                         MP_ERECIPE,
                         "evaluate.latency_runs: must be an integer from 1 to %d, got %s",
                         MP_EVAL_MAX_LATENCY_RUNS, got(x, g, sizeof g));
            spec.latency_runs = (int)json_integer_value(x);
        } else {
            snprintf(g, sizeof g, "%.60s", key);
            for (char *c = g; *c != '\0'; c++) {
                *c = *c >= 0x20 && *c < 0x7F ? *c : '?';
            }
            return mp__err_set(err, MP_ERECIPE,
                               "evaluate.%s: unknown field (known: dataset_id, metric, "
                               "latency_runs)",
                               g);
        }
    }
    if (out != NULL) {
        *out = spec;
    }
    return 0;
}

int mp_recipe_evaluate(const char *json, size_t len, mp_eval_spec_t *out, mp_errctx_t *err)
{
    json_error_t jerr;
    json_t *root;
    const json_t *v;
    int rc = 0;

    MP_RETURN_IF(json == NULL || out == NULL, MP_EINVAL, "mp_recipe_evaluate: NULL argument");
    memset(out, 0, sizeof *out);
    out->latency_runs = DEFAULT_LATENCY_RUNS;
    root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    MP_GOTO_IF(!json_is_object(root), MP_ERECIPE, "recipe: not a JSON object");
    if ((v = json_object_get(root, "evaluate")) != NULL) {
        rc = mp__eval_block_parse(v, out, err);
    }
out:
    json_decref(root);
    return rc;
}

/* ---- running the models ---------------------------------------------------------------------- */

/* One model's sessions and figures. */
typedef struct side {
    const char *which; /* "original" or "compressed", for messages */
    mp_session_t *b1, *bn;
    int64_t correct;
    double latency_b1, latency_bn; /* ms */
} side_t;

/* Prefix err's message with the model it is about. */
static int about(mp_errctx_t *err, int rc, const char *which)
{
    char msg[sizeof err->msg];

    if (err == NULL) {
        return rc;
    }
    memcpy(msg, err->msg, sizeof msg);
    return mp__err_set(err, rc, "%s model: %s", which, msg);
}

/* Sessions at batch 1 and batch for m, checked against the dataset: one input taking a
 * sample's values, a first output with out_per values per sample at either batch. */
static int open_side(const mp_model_t *m, const mp_dataset_t *ds, int batch, side_t *s,
                     int64_t *out_per, mp_errctx_t *err)
{
    const int64_t per = mp_dataset_sample_elements(ds);
    int64_t dims[MP_MAX_DIMS];
    char sb[200];
    int rc, rank;

    MP_RETURN_IF(m == NULL || !mp_model_is_onnx(m), MP_EINVAL,
                 "%s model: not ONNX: only a model with a graph can be run", s->which);
    if ((rc = mp_session_new(m, batch, &s->bn, err)) != 0 ||
        (rc = mp_session_new(m, 1, &s->b1, err)) != 0) {
        return about(err, rc, s->which);
    }
    MP_RETURN_IF(mp_session_n_inputs(s->bn) != 1, MP_EUNSUPPORTED,
                 "%s model: it has %zu inputs; an evaluation feeds one, the dataset's x", s->which,
                 mp_session_n_inputs(s->bn));
    MP_RETURN_IF(mp_session_n_outputs(s->bn) < 1, MP_EUNSUPPORTED, "%s model: it has no output",
                 s->which);
    rank = mp_session_input_shape(s->b1, 0, dims);
    MP_RETURN_IF(mp_session_input_elements(s->b1, 0) != per ||
                     mp_session_input_elements(s->bn, 0) != per * batch,
                 MP_EINVAL,
                 "%s model: its input '%s' takes %lld values per sample (shape %s at batch 1); "
                 "the dataset's samples hold %lld",
                 s->which, mp_session_input_name(s->b1, 0),
                 (long long)mp_session_input_elements(s->b1, 0),
                 mp__dims_text(dims, rank, 0, sb, sizeof sb), (long long)per);
    *out_per = mp_session_output_elements(s->b1, 0);
    MP_RETURN_IF(*out_per < 1 || mp_session_output_elements(s->bn, 0) != *out_per * batch,
                 MP_EUNSUPPORTED,
                 "%s model: its output '%s' does not hold one row per sample (%lld values at "
                 "batch 1, %lld at batch %d)",
                 s->which, mp_session_output_name(s->b1, 0), (long long)*out_per,
                 (long long)mp_session_output_elements(s->bn, 0), batch);
    return 0;
}

static int64_t argmax(const float *v, int64_t n)
{
    int64_t best = 0;

    for (int64_t i = 1; i < n; i++) {
        best = v[i] > v[best] ? i : best;
    }
    return best;
}

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

/* Median wall time in ms of runs runs of s, after one warm-up. */
static int median_ms(mp_session_t *s, const float *in, float *out, int runs, double *ms,
                     mp_errctx_t *err)
{
    double *t = malloc((size_t)runs * sizeof *t);
    int rc;

    MP_RETURN_IF(t == NULL, MP_ENOMEM, "out of memory for %d latency runs", runs);
    rc = mp_session_run(s, &in, &out, err);
    for (int i = 0; i < runs && rc == 0; i++) {
        double t0 = now_ms();

        rc = mp_session_run(s, &in, &out, err);
        t[i] = now_ms() - t0;
    }
    if (rc == 0) {
        qsort(t, (size_t)runs, sizeof *t, cmp_double);
        *ms = runs % 2 ? t[runs / 2] : (t[runs / 2 - 1] + t[runs / 2]) / 2;
    }
    free(t);
    return rc;
}

static int cancelled(const mp_eval_opts_t *o)
{
    return o != NULL && o->cancel != NULL && atomic_load(o->cancel) != 0;
}

/* A finite number, or null (JSON has no infinity or NaN). */
static json_t *num(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

static json_t *side_json(const side_t *s, const mp_dataset_t *ds)
{
    const int64_t n = mp_dataset_samples(ds);

    return json_pack("{s:o,s:o,s:o}", "accuracy",
                     mp_dataset_labels(ds) != NULL ? num((double)s->correct / (double)n)
                                                   : json_null(),
                     "latency_ms", num(s->latency_b1), "latency_ms_b32", num(s->latency_bn));
}

int mp_evaluate(const mp_model_t *before, const mp_model_t *after, const mp_dataset_t *ds,
                const mp_eval_opts_t *opts, char **json, mp_errctx_t *err)
{
    const int batch = MP_EVAL_BATCH;
    const int runs =
        opts != NULL && opts->latency_runs > 0 ? opts->latency_runs : DEFAULT_LATENCY_RUNS;
    side_t s[2] = {{.which = "original"}, {.which = "compressed"}};
    const int n_sides = after != NULL ? 2 : 1;
    int64_t n, per, out_per = 0, out_per_after = 0, agree = 0;
    const int64_t *y;
    double signal = 0, noise = 0;
    float *in = NULL, *out[2] = {NULL, NULL};
    json_t *root = NULL;
    int rc = 0;

    MP_RETURN_IF(json == NULL || ds == NULL, MP_EINVAL, "mp_evaluate: NULL argument");
    *json = NULL;
    MP_RETURN_IF(runs > MP_EVAL_MAX_LATENCY_RUNS, MP_EINVAL, "latency_runs %d: at most %d", runs,
                 MP_EVAL_MAX_LATENCY_RUNS);
    n = mp_dataset_samples(ds);
    per = mp_dataset_sample_elements(ds);
    y = mp_dataset_labels(ds);
    if ((rc = open_side(before, ds, batch, &s[0], &out_per, err)) != 0 ||
        (n_sides == 2 && (rc = open_side(after, ds, batch, &s[1], &out_per_after, err)) != 0)) {
        goto out;
    }
    MP_GOTO_IF(n_sides == 2 && out_per_after != out_per, MP_EINVAL,
               "the compressed model gives %lld values per sample, the original %lld",
               (long long)out_per_after, (long long)out_per);
    MP_GOTO_IF(y != NULL && mp_dataset_classes(ds) > out_per, MP_EINVAL,
               "the labels go up to %lld but the model gives %lld values per sample: they are "
               "not its classes",
               (long long)mp_dataset_classes(ds) - 1, (long long)out_per);
    in = malloc((size_t)(batch * per) * sizeof *in);
    out[0] = malloc((size_t)(batch * out_per) * sizeof *out[0]);
    out[1] = malloc((size_t)(batch * out_per) * sizeof *out[1]);
    MP_GOTO_IF(in == NULL || out[0] == NULL || out[1] == NULL, MP_ENOMEM,
               "out of memory for a batch of %d", batch);

    /* accuracy, agreement and output SNR over the whole dataset */
    for (int64_t start = 0; start < n; start += batch) {
        const int64_t k = n - start < batch ? n - start : batch;
        int64_t pred[2] = {0, 0};

        MP_GOTO_IF(cancelled(opts), MP_ECANCELED, "evaluation canceled");
        memcpy(in, mp_dataset_x(ds) + start * per, (size_t)(k * per) * sizeof *in);
        memset(in + k * per, 0, (size_t)((batch - k) * per) * sizeof *in);
        for (int m = 0; m < n_sides; m++) {
            if ((rc = mp_session_run(s[m].bn, (const float *const *)&in, &out[m], err)) != 0) {
                rc = about(err, rc, s[m].which);
                goto out;
            }
        }
        for (int64_t i = 0; i < k; i++) {
            for (int m = 0; m < n_sides; m++) {
                pred[m] = argmax(out[m] + i * out_per, out_per);
                s[m].correct += y != NULL && pred[m] == y[start + i];
            }
            agree += pred[0] == pred[1];
        }
        for (int64_t i = 0; n_sides == 2 && i < k * out_per; i++) {
            signal += (double)out[0][i] * out[0][i];
            noise += ((double)out[0][i] - out[1][i]) * ((double)out[0][i] - out[1][i]);
        }
        if (opts != NULL && opts->progress_cb != NULL) {
            opts->progress_cb(opts->ud, 0.5 * (double)(start + k) / (double)n, "evaluate");
        }
    }

    /* latencies: the first sample, and the first batch as it was run above */
    memcpy(in, mp_dataset_x(ds), (size_t)((n < batch ? n : batch) * per) * sizeof *in);
    for (int m = 0; m < n_sides; m++) {
        MP_GOTO_IF(cancelled(opts), MP_ECANCELED, "evaluation canceled");
        if ((rc = median_ms(s[m].b1, in, out[m], runs, &s[m].latency_b1, err)) != 0 ||
            (rc = median_ms(s[m].bn, in, out[m], runs, &s[m].latency_bn, err)) != 0) {
            rc = about(err, rc, s[m].which);
            goto out;
        }
        if (opts != NULL && opts->progress_cb != NULL) {
            opts->progress_cb(opts->ud, 0.5 + 0.5 * (m + 1) / n_sides, "evaluate");
        }
    }

    root =
        json_pack("{s:I,s:i,s:i,s:I,s:o}", "samples", (json_int_t)n, "batch", batch, "latency_runs",
                  runs, "outputs_per_sample", (json_int_t)out_per, "before", side_json(&s[0], ds));
    if (root != NULL && n_sides == 2) {
        /* SNR of the compressed model's outputs against the original's; exact outputs have
         * no noise and get null, as an exact tensor's sqnr_db does */
        json_object_set_new(root, "after", side_json(&s[1], ds));
        json_object_set_new(root, "agreement", num((double)agree / (double)n));
        json_object_set_new(root, "output_snr_db",
                            noise > 0 ? num(10 * log10(signal / noise)) : json_null());
        json_object_set_new(root, "speedup", num(s[0].latency_b1 / s[1].latency_b1));
        json_object_set_new(root, "speedup_b32", num(s[0].latency_bn / s[1].latency_bn));
    }
    MP_GOTO_IF(root == NULL ||
                   (*json = json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(6))) == NULL,
               MP_ENOMEM, "out of memory for the evaluation report");
out:
    json_decref(root);
    for (int m = 0; m < 2; m++) {
        mp_session_free(s[m].b1);
        mp_session_free(s[m].bn);
        free(out[m]);
    }
    free(in);
    return rc;
}

int mp_evaluate_pipeline(const mp_model_t *in, const mp_model_t *out, const mp_dataset_t *ds,
                         const mp_eval_opts_t *opts, char **report_json, mp_errctx_t *err)
{
    mp_model_t *onnx = NULL;
    char *figures = NULL, *text = NULL;
    json_t *report = NULL, *evaluation = NULL;
    int rc;

    MP_RETURN_IF(report_json == NULL || *report_json == NULL, MP_EINVAL,
                 "mp_evaluate_pipeline: no report");
    if ((rc = mp_onnx_apply(in, out, &onnx, err)) != 0 ||
        (rc = mp_evaluate(in, onnx, ds, opts, &figures, err)) != 0) {
        goto out;
    }
    report = json_loads(*report_json, 0, NULL);
    evaluation = json_loads(figures, 0, NULL);
    MP_GOTO_IF(!json_is_object(report) || evaluation == NULL, MP_EINVAL,
               "the pipeline's report is not a JSON object");
    /* json_object_set_new takes evaluation even when it fails */
    rc = json_object_set_new(report, "evaluation", evaluation);
    evaluation = NULL;
    MP_GOTO_IF(rc != 0 || (text = json_dumps(report, JSON_COMPACT)) == NULL, MP_ENOMEM,
               "out of memory adding the evaluation to the report");
    free(*report_json);
    *report_json = text;
out:
    json_decref(evaluation);
    json_decref(report);
    free(figures);
    mp_model_free(onnx);
    return rc;
}
