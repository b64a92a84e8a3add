/* evaluate.c — measuring what compression cost: the recipe's evaluate block, and running the
 * original and the compressed model on a dataset.
 *
 * The evaluate block is validated here for mp_recipe_parse() (one definition of its fields, so
 * the parser and the callers that run the evaluation cannot disagree) and read back out of the
 * recipe's text by mp_recipe_evaluate().
 */
#include "evaluate_int.h"

#include <stdio.h>
#include <string.h>

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
