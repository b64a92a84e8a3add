/* check_recipe.c — recipe parsing, validation and selection (core/recipe.c).
 *
 * Every refusal is asserted with its code (MP_ERECIPE) and its exact message, because the
 * message is the product here: it must name the step index, the step and the field
 * (RELIABILITY.md item 9). Valid recipes are asserted field by field, defaults included.
 */
#include "recipe_int.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct refusal {
    const char *json;
    int code;
    const char *msg;
} refusal_t;

static const refusal_t REFUSALS[] = {
    /* RELIABILITY.md item 9 */
    {"{\"steps\":[{\"prune\":{\"sparsity\":0.5}},{\"quantize\":{}},{\"sharpen\":{}}]}", MP_ERECIPE,
     "steps[2]: unknown step 'sharpen' (known: prune, quantize, share, lowrank, huffman, "
     "finetune, distill)"},
    {"{\"steps\":[{\"quantize\":{\"bits\":0}}]}", MP_ERECIPE,
     "steps[0].quantize.bits: must be an integer from 2 to 8, got 0"},
    {"{\"steps\":[{\"prune\":{\"sparsity\":0.5}},{\"quantize\":{\"bits\":33}}]}", MP_ERECIPE,
     "steps[1].quantize.bits: must be an integer from 2 to 8, got 33"},
    {"{\"steps\":[{\"prune\":{\"sparsity\":1.5}}]}", MP_ERECIPE,
     "steps[0].prune.sparsity: must be a number from 0 to 1, got 1.5"},
    {"{\"steps\":[{\"prune\":{\"sparsity\":-0.1}}]}", MP_ERECIPE,
     "steps[0].prune.sparsity: must be a number from 0 to 1, got -0.1"},
    /* share is not available yet, but a value that is wrong in any version is called wrong */
    {"{\"steps\":[{\"share\":{\"clusters\":0}}]}", MP_ERECIPE,
     "steps[0].share.clusters: must be an integer from 2 to 256, got 0"},
    {"{\"steps\":[{\"share\":{\"clusters\":1099511627776}}]}", MP_ERECIPE,
     "steps[0].share.clusters: must be an integer from 2 to 256, got 1099511627776"},
    {"{\"steps\":[{\"share\":{\"clusters\":16}}]}", MP_ERECIPE,
     "steps[0].share: not available in this version (available steps: prune, quantize)"},
    {"{\"steps\":[{\"share\":{\"init\":\"random\"}}]}", MP_ERECIPE,
     "steps[0].share.init: must be one of linear, density, kmeans++; got 'random'"},
    {"{\"steps\":[{\"lowrank\":{\"rank\":0}}]}", MP_ERECIPE,
     "steps[0].lowrank.rank: must be an integer of at least 1, got 0"},
    {"{\"steps\":[{\"lowrank\":{\"rank\":4,\"energy\":0.9}}]}", MP_ERECIPE,
     "steps[0].lowrank: give exactly one of rank, rank_ratio, energy"},
    {"{\"steps\":[{\"lowrank\":{\"energy\":0.9}}]}", MP_ERECIPE,
     "steps[0].lowrank: not available in this version (available steps: prune, quantize)"},
    {"{\"steps\":[{\"huffman\":{\"level\":3}}]}", MP_ERECIPE,
     "steps[0].huffman.level: unknown field (steps[0].huffman takes no fields)"},
    {"{\"steps\":[{\"distill\":{}}]}", MP_ERECIPE,
     "steps[0].distill: not available in this version (available steps: prune, quantize)"},
    /* fields this version knows but cannot run */
    {"{\"steps\":[{\"quantize\":{\"bits\":4}}]}", MP_ERECIPE,
     "steps[0].quantize.bits: only 8 bits is available in this version, got 4"},
    {"{\"steps\":[{\"quantize\":{\"scheme\":\"asymmetric\"}}]}", MP_ERECIPE,
     "steps[0].quantize.scheme: 'asymmetric' is not available in this version (available: "
     "symmetric)"},
    {"{\"steps\":[{\"quantize\":{\"granularity\":\"group\"}}]}", MP_ERECIPE,
     "steps[0].quantize.granularity: 'group' is not available in this version (available: "
     "channel, tensor)"},
    {"{\"steps\":[{\"quantize\":{\"group_size\":64}}]}", MP_ERECIPE,
     "steps[0].quantize.group_size: applies only with granularity 'group'"},
    {"{\"steps\":[{\"quantize\":{\"method\":\"gptq\"}}]}", MP_ERECIPE,
     "steps[0].quantize.method: 'gptq' is not available in this version (available: round)"},
    {"{\"steps\":[{\"quantize\":{\"format\":\"fp16\"}}]}", MP_ERECIPE,
     "steps[0].quantize.format: 'fp16' is not available in this version (available: int)"},
    {"{\"steps\":[{\"prune\":{\"sparsity\":0.5,\"method\":\"obs\"}}]}", MP_ERECIPE,
     "steps[0].prune.method: 'obs' is not available in this version (available: magnitude)"},
    {"{\"steps\":[{\"prune\":{\"sparsity\":0.5,\"structure\":\"2:4\"}}]}", MP_ERECIPE,
     "steps[0].prune.structure: '2:4' is not available in this version (available: none)"},
    /* wrong types and unknown names */
    {"{\"steps\":[{\"quantize\":{\"bits\":8.5}}]}", MP_ERECIPE,
     "steps[0].quantize.bits: must be an integer from 2 to 8, got 8.5"},
    {"{\"steps\":[{\"quantize\":{\"bits\":\"8\"}}]}", MP_ERECIPE,
     "steps[0].quantize.bits: must be an integer from 2 to 8, got '8'"},
    {"{\"steps\":[{\"prune\":{\"sparsity\":true}}]}", MP_ERECIPE,
     "steps[0].prune.sparsity: must be a number from 0 to 1, got true"},
    {"{\"steps\":[{\"prune\":{}}]}", MP_ERECIPE,
     "steps[0].prune.sparsity: required, a number from 0 to 1"},
    {"{\"steps\":[{\"prune\":{\"sparsity\":0.5,\"scope\":\"model\"}}]}", MP_ERECIPE,
     "steps[0].prune.scope: must be one of layer, global; got 'model'"},
    {"{\"steps\":[{\"prune\":{\"sparsity\":0.5,\"amount\":3}}]}", MP_ERECIPE,
     "steps[0].prune.amount: unknown field (known: sparsity, method, scope, structure)"},
    {"{\"steps\":[{\"prune\":0.5}]}", MP_ERECIPE,
     "steps[0].prune: must be an object of fields, got 0.5"},
    {"{\"steps\":[{\"prune\":{\"sparsity\":0.5},\"quantize\":{}}]}", MP_ERECIPE,
     "steps[0]: must be an object with exactly one key naming the step, such as {\"prune\": "
     "{\"sparsity\": 0.5}}, got an object with 2 keys"},
    {"{\"steps\":[\"prune\"]}", MP_ERECIPE,
     "steps[0]: must be an object with exactly one key naming the step, such as {\"prune\": "
     "{\"sparsity\": 0.5}}, got 'prune'"},
    /* order: quantize is the last step that changes values */
    {"{\"steps\":[{\"quantize\":{}},{\"prune\":{\"sparsity\":0.5}}]}", MP_ERECIPE,
     "steps[1].prune: comes after steps[0].quantize; quantize must be the last step that "
     "changes values"},
    {"{\"steps\":[{\"prune\":{\"sparsity\":0.1}},{\"quantize\":{}},{\"quantize\":{}}]}",
     MP_ERECIPE,
     "steps[2].quantize: comes after steps[1].quantize; quantize must be the last step that "
     "changes values"},
    /* the list itself */
    {"{\"steps\":[]}", MP_ERECIPE, "steps: must list at least one step"},
    {"{}", MP_ERECIPE,
     "steps: required, a list of steps such as [{\"quantize\": {\"bits\": 8}}]"},
    {"{\"steps\":{\"prune\":{}}}", MP_ERECIPE, "steps: must be an array of steps, got an object"},
    {"{\"steps\":[{\"quantize\":{}}],\"stepz\":1}", MP_ERECIPE,
     "stepz: unknown field at the top of the recipe (known: steps, select, output, evaluate)"},
    {"[1]", MP_ERECIPE, "recipe: must be a JSON object with \"steps\", got an array"},
    /* select, output, evaluate */
    {"{\"steps\":[{\"quantize\":{}}],\"select\":{\"kinds\":[\"conv\"]}}", MP_ERECIPE,
     "select.kinds: tensor kinds (conv, linear) are not known for safetensors models; select by "
     "name with include and exclude"},
    {"{\"steps\":[{\"quantize\":{}}],\"select\":{\"include\":\"*weight\"}}", MP_ERECIPE,
     "select.include: must be an array of glob patterns (strings), got '*weight'"},
    {"{\"steps\":[{\"quantize\":{}}],\"select\":{\"include\":[]}}", MP_ERECIPE,
     "select.include: must list at least one glob pattern (leave it out to use the default "
     "selection)"},
    {"{\"steps\":[{\"quantize\":{}}],\"select\":{\"exclude\":[\"a\",7]}}", MP_ERECIPE,
     "select.exclude[1]: must be a glob pattern of 1 to 1024 bytes, got 7"},
    {"{\"steps\":[{\"quantize\":{}}],\"select\":{\"min_elements\":-1}}", MP_ERECIPE,
     "select.min_elements: must be an integer of at least 0, got -1"},
    {"{\"steps\":[{\"quantize\":{}}],\"select\":{\"names\":[\"a\"]}}", MP_ERECIPE,
     "select.names: unknown field (known: include, exclude, min_elements, kinds)"},
    {"{\"steps\":[{\"quantize\":{}}],\"output\":{\"format\":\"onnx\"}}", MP_ERECIPE,
     "output.format: 'onnx' is not available in this version (available: safetensors)"},
    {"{\"steps\":[{\"quantize\":{}}],\"output\":{\"format\":\"gguf\"}}", MP_ERECIPE,
     "output.format: must be one of safetensors, onnx, mpz; got 'gguf'"},
    {"{\"steps\":[{\"quantize\":{}}],\"evaluate\":{\"metric\":\"top1\"}}", MP_ERECIPE,
     "evaluate: needs the evaluation runtime, not in this version"},
    /* a name with a control byte is shown, not printed raw */
    {"{\"steps\":[{\"a\\nb\":{}}]}", MP_ERECIPE,
     "steps[0]: unknown step 'a?b' (known: prune, quantize, share, lowrank, huffman, finetune, "
     "distill)"},
};

START_TEST(test_refused)
{
    const refusal_t *c = &REFUSALS[_i];
    mp_recipe_t *r = (mp_recipe_t *)1;
    mp_errctx_t err = {0};

    ck_assert_int_eq(mp_recipe_parse(c->json, strlen(c->json), &r, &err), c->code);
    ck_assert_ptr_null(r);
    ck_assert_int_eq(err.code, c->code);
    ck_assert_str_eq(err.msg, c->msg);
}
END_TEST

/* Messages that depend on jansson's wording are checked by their fixed start. */
static void assert_refused_prefix(const char *json, size_t len, const char *prefix)
{
    mp_recipe_t *r = NULL;
    mp_errctx_t err = {0};

    ck_assert_int_eq(mp_recipe_parse(json, len, &r, &err), MP_ERECIPE);
    ck_assert_ptr_null(r);
    ck_assert_msg(strncmp(err.msg, prefix, strlen(prefix)) == 0, "message '%s' lacks '%s'",
                  err.msg, prefix);
}

START_TEST(test_refused_limits)
{
    static const char DUP[] = "{\"steps\":[{\"quantize\":{}}],\"steps\":[]}";
    static const char CUT[] = "{\"steps\":[";
    static const char HUGE[] = "{\"steps\":[{\"quantize\":{\"bits\":1e999}}]}";
    static const char INSTR[] = "{\"steps\":[{\"x\\\"[[[[[[[[[[[[[[[[[[[[\":{}}]}";
    char *buf = malloc(MP_RECIPE_MAX_BYTES + 2);
    size_t n = 0;

    ck_assert_ptr_nonnull(buf);
    assert_refused_prefix(DUP, strlen(DUP), "recipe: not valid JSON: duplicate object key");
    assert_refused_prefix(CUT, strlen(CUT), "recipe: not valid JSON: ");
    assert_refused_prefix(HUGE, strlen(HUGE), "recipe: not valid JSON: ");

    /* nested 17 deep: refused before jansson recurses; 16 deep reaches the field checks */
    for (int depth = 16; depth <= 17; depth++) {
        n = (size_t)snprintf(buf, 64, "{\"select\":");
        for (int i = 1; i < depth; i++) {
            buf[n++] = '[';
        }
        for (int i = 1; i < depth; i++) {
            buf[n++] = ']';
        }
        buf[n++] = '}';
        assert_refused_prefix(buf, n, depth == 16 ? "steps: required"
                                                  : "recipe: nested more than 16 levels deep");
    }
    /* brackets inside strings (and escaped quotes) do not count */
    assert_refused_prefix(INSTR, strlen(INSTR), "steps[0]: unknown step 'x\"[[[[");

    /* size: one byte over the limit, whatever it holds */
    memset(buf, ' ', MP_RECIPE_MAX_BYTES + 1);
    assert_refused_prefix(buf, MP_RECIPE_MAX_BYTES + 1,
                          "recipe: 1048577 bytes, more than the 1048576 allowed");
    free(buf);
}
END_TEST

/* {"steps":[n prune steps, sparsity 0.00, 0.01, ...]} */
static size_t prune_steps(char *buf, size_t cap, int n)
{
    size_t len = (size_t)snprintf(buf, cap, "{\"steps\":[");

    for (int i = 0; i < n; i++) {
        len += (size_t)snprintf(buf + len, cap - len, "%s{\"prune\":{\"sparsity\":0.%02d}}",
                                i ? "," : "", i);
    }
    len += (size_t)snprintf(buf + len, cap - len, "]}");
    return len;
}

START_TEST(test_refused_step_count)
{
    char buf[4096];
    size_t n;
    mp_recipe_t *r = NULL;
    mp_errctx_t err = {0};

    n = prune_steps(buf, sizeof buf, 65);
    ck_assert_int_eq(mp_recipe_parse(buf, n, &r, &err), MP_ERECIPE);
    ck_assert_str_eq(err.msg, "steps: at most 64 steps, got 65");
    ck_assert_ptr_null(r);

    n = prune_steps(buf, sizeof buf, 64);
    ck_assert_int_eq(mp_recipe_parse(buf, n, &r, &err), 0);
    ck_assert_uint_eq(r->n_steps, 64);
    ck_assert_double_eq(r->steps[63].prune.sparsity, 0.63);
    mp_recipe_free(r);
}
END_TEST

START_TEST(test_refused_args)
{
    mp_recipe_t *r = NULL;

    ck_assert_int_eq(mp_recipe_parse(NULL, 0, &r, NULL), MP_EINVAL);
    ck_assert_int_eq(mp_recipe_parse("{}", 2, NULL, NULL), MP_EINVAL);
    mp_recipe_free(NULL);
}
END_TEST

/* ---- valid recipes --------------------------------------------------------------------- */

static mp_recipe_t *parse_ok(const char *json)
{
    mp_recipe_t *r = NULL;
    mp_errctx_t err = {0};

    ck_assert_msg(mp_recipe_parse(json, strlen(json), &r, &err) == 0, "%s: %s", json, err.msg);
    ck_assert_ptr_nonnull(r);
    return r;
}

START_TEST(test_defaults)
{
    mp_recipe_t *r =
        parse_ok("{\"steps\":[{\"prune\":{\"sparsity\":0.5}},{\"quantize\":{}}]}");

    ck_assert_uint_eq(r->n_steps, 2);
    ck_assert_int_eq(r->steps[0].kind, MP_STEP_PRUNE);
    ck_assert_double_eq(r->steps[0].prune.sparsity, 0.5);
    ck_assert_int_eq(r->steps[0].prune.scope, MP_SCOPE_LAYER);
    ck_assert_int_eq(r->steps[1].kind, MP_STEP_QUANTIZE);
    ck_assert_int_eq(r->steps[1].quant.bits, 8);
    ck_assert_int_eq(r->steps[1].quant.granularity, MP_GRAN_CHANNEL);
    ck_assert_int_eq(r->has_include, 0);
    ck_assert_uint_eq(r->n_exclude, 0);
    ck_assert_int_eq(r->min_elements, 0);
    ck_assert_int_eq(r->format, MP_OUT_SAFETENSORS);
    mp_recipe_free(r);
}
END_TEST

START_TEST(test_every_field)
{
    mp_recipe_t *r = parse_ok(
        "{\"steps\":[{\"prune\":{\"sparsity\":1,\"method\":\"magnitude\",\"scope\":\"global\","
        "\"structure\":\"none\"}},{\"prune\":{\"sparsity\":0}},"
        "{\"quantize\":{\"bits\":8.0,\"scheme\":\"symmetric\",\"granularity\":\"tensor\","
        "\"method\":\"round\",\"format\":\"int\"}}],"
        "\"select\":{\"include\":[\"*.weight\",\"emb*\"],\"exclude\":[\"head.*\"],"
        "\"min_elements\":1024},\"output\":{\"format\":\"safetensors\"}}");

    ck_assert_uint_eq(r->n_steps, 3);
    ck_assert_double_eq(r->steps[0].prune.sparsity, 1.0);
    ck_assert_int_eq(r->steps[0].prune.scope, MP_SCOPE_GLOBAL);
    ck_assert_double_eq(r->steps[1].prune.sparsity, 0.0);
    ck_assert_int_eq(r->steps[1].prune.scope, MP_SCOPE_LAYER);
    ck_assert_int_eq(r->steps[2].quant.bits, 8);
    ck_assert_int_eq(r->steps[2].quant.granularity, MP_GRAN_TENSOR);
    ck_assert_int_eq(r->has_include, 1);
    ck_assert_uint_eq(r->n_include, 2);
    ck_assert_str_eq(r->include[0], "*.weight");
    ck_assert_str_eq(r->include[1], "emb*");
    ck_assert_uint_eq(r->n_exclude, 1);
    ck_assert_str_eq(r->exclude[0], "head.*");
    ck_assert_int_eq(r->min_elements, 1024);
    mp_recipe_free(r);
}
END_TEST

/* ---- selection against a model ------------------------------------------------------------ */

static mp_model_t *g_model;

static void model_setup(void)
{
    static const float w[12] = {0};
    static const float b[4] = {0};
    static const int64_t ids[3] = {0, 1, 2};
    const int64_t s_w[2] = {4, 3}, s_b[1] = {4}, s_ids[1] = {3};
    const int64_t s_empty[2] = {0, 5};

    g_model = mp_model_new();
    ck_assert_ptr_nonnull(g_model);
    ck_assert_int_eq(mp_model_add(g_model, "fc1.weight", MP_DT_F32, 2, s_w, w, sizeof w, NULL), 0);
    ck_assert_int_eq(mp_model_add(g_model, "fc1.bias", MP_DT_F32, 1, s_b, b, sizeof b, NULL), 0);
    ck_assert_int_eq(mp_model_add(g_model, "ids", MP_DT_I64, 1, s_ids, ids, sizeof ids, NULL), 0);
    ck_assert_int_eq(mp_model_add(g_model, "empty", MP_DT_F32, 2, s_empty, w, 0, NULL), 0);
}

static void model_teardown(void)
{
    mp_model_free(g_model);
    g_model = NULL;
}

/* Which of the model's tensors r selects, as a string of 0/1 in model order. */
static void selection(const char *json, char *out)
{
    mp_recipe_t *r = json ? parse_ok(json) : NULL;

    for (size_t i = 0; i < g_model->n_tensors; i++) {
        out[i] = mp_recipe_selects(r, &g_model->tensors[i]) ? '1' : '0';
    }
    out[g_model->n_tensors] = '\0';
    mp_recipe_free(r);
}

START_TEST(test_selects)
{
    char sel[8];

    /* default: float, two or more dims, not empty */
    selection(NULL, sel);
    ck_assert_str_eq(sel, "1000");
    selection("{\"steps\":[{\"quantize\":{}}]}", sel);
    ck_assert_str_eq(sel, "1000");
    /* include replaces the default; '*' crosses dots */
    selection("{\"steps\":[{\"quantize\":{}}],\"select\":{\"include\":[\"*\"]}}", sel);
    ck_assert_str_eq(sel, "1110");
    selection("{\"steps\":[{\"quantize\":{}}],\"select\":{\"include\":[\"fc1.*\"],"
              "\"exclude\":[\"*.bias\"]}}",
              sel);
    ck_assert_str_eq(sel, "1000");
    /* min_elements: the weight has 12 elements */
    selection("{\"steps\":[{\"quantize\":{}}],\"select\":{\"min_elements\":12}}", sel);
    ck_assert_str_eq(sel, "1000");
    selection("{\"steps\":[{\"quantize\":{}}],\"select\":{\"min_elements\":13}}", sel);
    ck_assert_str_eq(sel, "0000");
    selection("{\"steps\":[{\"quantize\":{}}],\"select\":{\"include\":[\"fc1.?ias\"]}}", sel);
    ck_assert_str_eq(sel, "0100");
}
END_TEST

static void assert_check(const char *json, int code, const char *msg)
{
    mp_recipe_t *r = parse_ok(json);
    mp_errctx_t err = {0};

    ck_assert_int_eq(mp_recipe_check_model(r, g_model, &err), code);
    if (msg != NULL) {
        ck_assert_str_eq(err.msg, msg);
    }
    mp_recipe_free(r);
}

START_TEST(test_check_model)
{
    const int64_t s_scale[1] = {4};
    static const float scale[4] = {1, 1, 1, 1};

    assert_check("{\"steps\":[{\"quantize\":{}}]}", 0, NULL);
    assert_check("{\"steps\":[{\"quantize\":{}}],\"select\":{\"include\":[\"fc1.bias\"]}}", 0,
                 NULL);
    /* RELIABILITY.md item 9: a select that matches nothing */
    assert_check("{\"steps\":[{\"quantize\":{}}],\"select\":{\"include\":[\"conv*\"]}}",
                 MP_ERECIPE,
                 "select matches no tensor of the model (4 tensors, e.g. 'fc1.weight', "
                 "'fc1.bias', 'ids')");
    assert_check("{\"steps\":[{\"quantize\":{}}],\"select\":{\"exclude\":[\"fc1.weight\"]}}",
                 MP_ERECIPE,
                 "select matches no tensor of the model (4 tensors, e.g. 'fc1.weight', "
                 "'fc1.bias', 'ids'); without select.include only float tensors of two or more "
                 "dims are compressed");
    assert_check("{\"steps\":[{\"quantize\":{}}],\"select\":{\"include\":[\"*\"]}}", MP_ERECIPE,
                 "select.include: matches tensor 'ids' of dtype I64; only float tensors (F32, "
                 "F16, BF16, F64) can be compressed");

    /* the scales' name is taken: refused for quantize, fine for prune alone */
    ck_assert_int_eq(
        mp_model_add(g_model, "fc1.weight_scale", MP_DT_F32, 1, s_scale, scale, 16, NULL), 0);
    assert_check("{\"steps\":[{\"quantize\":{}}]}", MP_ERECIPE,
                 "select: tensor 'fc1.weight' would be quantized, but the model already has a "
                 "tensor named 'fc1.weight_scale' where its scales would go");
    assert_check("{\"steps\":[{\"prune\":{\"sparsity\":0.5}}]}", 0, NULL);

    /* a second compression would lose the record of the first */
    ck_assert_int_eq(mp_model_set_meta(g_model, MP_META_KEY, "{\"version\":1}"), 0);
    assert_check("{\"steps\":[{\"prune\":{\"sparsity\":0.5}}]}", MP_EUNSUPPORTED,
                 "the model was already compressed by modelpress (metadata 'modelpress'); "
                 "unpack it first");
}
END_TEST

START_TEST(test_check_empty_model)
{
    mp_model_t *m = mp_model_new();
    mp_recipe_t *r = parse_ok("{\"steps\":[{\"quantize\":{}}]}");
    mp_errctx_t err = {0};

    ck_assert_int_eq(mp_recipe_check_model(r, m, &err), MP_ERECIPE);
    ck_assert_str_eq(err.msg, "select matches no tensor of the model (0 tensors); without "
                              "select.include only float tensors of two or more dims are "
                              "compressed");
    ck_assert_int_eq(mp_recipe_check_model(NULL, m, NULL), MP_EINVAL);
    mp_recipe_free(r);
    mp_model_free(m);
}
END_TEST

static Suite *recipe_suite(void)
{
    Suite *s = suite_create("recipe");
    TCase *tc;

    tc = tcase_create("refused");
    tcase_add_loop_test(tc, test_refused, 0, (int)(sizeof REFUSALS / sizeof REFUSALS[0]));
    tcase_add_test(tc, test_refused_limits);
    tcase_add_test(tc, test_refused_step_count);
    tcase_add_test(tc, test_refused_args);
    suite_add_tcase(s, tc);

    tc = tcase_create("parsed");
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_every_field);
    suite_add_tcase(s, tc);

    tc = tcase_create("select");
    tcase_add_checked_fixture(tc, model_setup, model_teardown);
    tcase_add_test(tc, test_selects);
    tcase_add_test(tc, test_check_model);
    tcase_add_test(tc, test_check_empty_model);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(recipe_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
