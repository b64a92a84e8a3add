/* check_recipe.c — recipe parsing, validation and selection (core/recipe.c).
 *
 * Every refusal is asserted with its code (MP_ERECIPE) and its exact message, because the
 * message is the product here: it must name the step index, the step and the field
 * (RELIABILITY.md item 9). Valid recipes are asserted field by field, defaults included.
 */
#include "methods_int.h"
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
    /* prune: structures, norm, method */
    {"{\"steps\":[{\"prune\":{\"sparsity\":0.5,\"method\":\"obs\"}}]}", MP_ERECIPE,
     "steps[0].prune.method: 'obs' is not available in this version (available: magnitude)"},
    {"{\"steps\":[{\"prune\":{\"sparsity\":0.5,\"structure\":\"1:4\"}}]}", MP_ERECIPE,
     "steps[0].prune.structure: must be one of none, channel, 2:4, 4:8; got '1:4'"},
    {"{\"steps\":[{\"prune\":{\"structure\":\"channel\"}}]}", MP_ERECIPE,
     "steps[0].prune.sparsity: required, a number from 0 to 1"},
    {"{\"steps\":[{\"prune\":{\"structure\":\"2:4\",\"sparsity\":0.9}}]}", MP_ERECIPE,
     "steps[0].prune.sparsity: structure '2:4' keeps half of the weights, so the sparsity is "
     "0.5; got 0.9 (leave it out)"},
    {"{\"steps\":[{\"prune\":{\"structure\":\"4:8\",\"scope\":\"global\"}}]}", MP_ERECIPE,
     "steps[0].prune.scope: 'global' applies only with structure 'none' (channels and N:M groups "
     "are ranked within their own tensor)"},
    {"{\"steps\":[{\"prune\":{\"sparsity\":0.5,\"norm\":2}}]}", MP_ERECIPE,
     "steps[0].prune.norm: applies only with structure 'channel'"},
    {"{\"steps\":[{\"prune\":{\"sparsity\":0.5,\"structure\":\"channel\",\"norm\":3}}]}",
     MP_ERECIPE, "steps[0].prune.norm: must be an integer from 1 to 2, got 3"},
    /* quantize: every value is checked, then whether it applies */
    {"{\"steps\":[{\"quantize\":{\"method\":\"gptq\"}}]}", MP_ERECIPE,
     "steps[0].quantize.method: 'gptq' is not available in this version (available: round)"},
    {"{\"steps\":[{\"quantize\":{\"format\":\"int3\"}}]}", MP_ERECIPE,
     "steps[0].quantize.format: must be one of int, binary, ternary, fp16, bf16; got 'int3'"},
    {"{\"steps\":[{\"quantize\":{\"scheme\":\"affine\"}}]}", MP_ERECIPE,
     "steps[0].quantize.scheme: must be one of symmetric, asymmetric; got 'affine'"},
    {"{\"steps\":[{\"quantize\":{\"granularity\":\"row\"}}]}", MP_ERECIPE,
     "steps[0].quantize.granularity: must be one of channel, tensor, group; got 'row'"},
    {"{\"steps\":[{\"quantize\":{\"group_size\":64}}]}", MP_ERECIPE,
     "steps[0].quantize.group_size: applies only with granularity 'group'"},
    {"{\"steps\":[{\"quantize\":{\"granularity\":\"group\",\"group_size\":0}}]}", MP_ERECIPE,
     "steps[0].quantize.group_size: must be an integer from 1 to 2147483647, got 0"},
    {"{\"steps\":[{\"quantize\":{\"format\":\"fp16\",\"bits\":33}}]}", MP_ERECIPE,
     "steps[0].quantize.bits: must be an integer from 2 to 8, got 33"},
    {"{\"steps\":[{\"quantize\":{\"format\":\"fp16\",\"bits\":8}}]}", MP_ERECIPE,
     "steps[0].quantize.bits: does not apply to format 'fp16' (a cast with rounding to nearest "
     "even)"},
    {"{\"steps\":[{\"quantize\":{\"format\":\"bf16\",\"granularity\":\"tensor\"}}]}", MP_ERECIPE,
     "steps[0].quantize.granularity: does not apply to format 'bf16' (a cast with rounding to "
     "nearest even)"},
    {"{\"steps\":[{\"quantize\":{\"format\":\"binary\",\"bits\":2}}]}", MP_ERECIPE,
     "steps[0].quantize.bits: applies only with format 'int', not 'binary'"},
    {"{\"steps\":[{\"quantize\":{\"format\":\"ternary\",\"scheme\":\"asymmetric\"}}]}",
     MP_ERECIPE,
     "steps[0].quantize.scheme: 'asymmetric' applies only with format 'int', not 'ternary'"},
    {"{\"steps\":[{\"quantize\":{\"format\":\"binary\",\"granularity\":\"group\"}}]}", MP_ERECIPE,
     "steps[0].quantize.granularity: 'group' applies only with format 'int'; binary codes have "
     "one scale per channel or per tensor"},
    /* share */
    {"{\"steps\":[{\"share\":{\"clusters\":0}}]}", MP_ERECIPE,
     "steps[0].share.clusters: must be an integer from 2 to 256, got 0"},
    {"{\"steps\":[{\"share\":{\"clusters\":257}}]}", MP_ERECIPE,
     "steps[0].share.clusters: must be an integer from 2 to 256, got 257"},
    {"{\"steps\":[{\"share\":{\"clusters\":1099511627776}}]}", MP_ERECIPE,
     "steps[0].share.clusters: must be an integer from 2 to 256, got 1099511627776"},
    {"{\"steps\":[{\"share\":{\"init\":\"random\"}}]}", MP_ERECIPE,
     "steps[0].share.init: must be one of linear, density, kmeans++; got 'random'"},
    {"{\"steps\":[{\"share\":{\"optimal\":1}}]}", MP_ERECIPE,
     "steps[0].share.optimal: must be true or false, got 1"},
    {"{\"steps\":[{\"share\":{\"max_iter\":0}}]}", MP_ERECIPE,
     "steps[0].share.max_iter: must be an integer from 1 to 1000000, got 0"},
    {"{\"steps\":[{\"share\":{\"optimal\":true,\"init\":\"density\"}}]}", MP_ERECIPE,
     "steps[0].share.init: does not apply with optimal true (the exact optimum needs no "
     "starting centroids)"},
    {"{\"steps\":[{\"share\":{\"optimal\":true,\"max_iter\":5}}]}", MP_ERECIPE,
     "steps[0].share.max_iter: does not apply with optimal true (the exact optimum is not "
     "iterated)"},
    {"{\"steps\":[{\"share\":{\"k\":16}}]}", MP_ERECIPE,
     "steps[0].share.k: unknown field (known: clusters, init, optimal, max_iter)"},
    /* lowrank */
    {"{\"steps\":[{\"lowrank\":{\"rank\":0}}]}", MP_ERECIPE,
     "steps[0].lowrank.rank: must be an integer of at least 1, got 0"},
    {"{\"steps\":[{\"lowrank\":{\"rank\":4,\"energy\":0.9}}]}", MP_ERECIPE,
     "steps[0].lowrank: give exactly one of rank, rank_ratio, energy"},
    {"{\"steps\":[{\"lowrank\":{\"randomized\":true}}]}", MP_ERECIPE,
     "steps[0].lowrank: give exactly one of rank, rank_ratio, energy"},
    {"{\"steps\":[{\"lowrank\":{\"rank_ratio\":0}}]}", MP_ERECIPE,
     "steps[0].lowrank.rank_ratio: must be greater than 0, got 0"},
    {"{\"steps\":[{\"lowrank\":{\"energy\":1.01}}]}", MP_ERECIPE,
     "steps[0].lowrank.energy: must be a number from 0 to 1, got 1.01"},
    {"{\"steps\":[{\"lowrank\":{\"energy\":0.9,\"randomized\":\"yes\"}}]}", MP_ERECIPE,
     "steps[0].lowrank.randomized: must be true or false, got 'yes'"},
    /* huffman, finetune, distill */
    {"{\"steps\":[{\"huffman\":{\"level\":3}}]}", MP_ERECIPE,
     "steps[0].huffman.level: unknown field (steps[0].huffman takes no fields)"},
    {"{\"steps\":[{\"distill\":{}}]}", MP_ERECIPE,
     "steps[0].distill: not available in this version (available steps: prune, quantize, share, "
     "lowrank, huffman)"},
    {"{\"steps\":[{\"prune\":{\"sparsity\":0.5}},{\"finetune\":{\"epochs\":1}}]}", MP_ERECIPE,
     "steps[1].finetune: not available in this version (available steps: prune, quantize, "
     "share, lowrank, huffman)"},
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
     "steps[0].prune.amount: unknown field (known: sparsity, method, scope, structure, norm)"},
    {"{\"steps\":[{\"prune\":0.5}]}", MP_ERECIPE,
     "steps[0].prune: must be an object of fields, got 0.5"},
    {"{\"steps\":[{\"prune\":{\"sparsity\":0.5},\"quantize\":{}}]}", MP_ERECIPE,
     "steps[0]: must be an object with exactly one key naming the step, such as {\"prune\": "
     "{\"sparsity\": 0.5}}, got an object with 2 keys"},
    {"{\"steps\":[\"prune\"]}", MP_ERECIPE,
     "steps[0]: must be an object with exactly one key naming the step, such as {\"prune\": "
     "{\"sparsity\": 0.5}}, got 'prune'"},
    /* composition: prune first, one value coding (lowrank may be followed by a quantize),
     * huffman last */
    {"{\"steps\":[{\"quantize\":{}},{\"prune\":{\"sparsity\":0.5}}]}", MP_ERECIPE,
     "steps[1].prune: comes after steps[0].quantize; prune steps must come before quantize, "
     "share and lowrank"},
    {"{\"steps\":[{\"lowrank\":{\"rank\":2}},{\"prune\":{\"sparsity\":0.5}}]}", MP_ERECIPE,
     "steps[1].prune: comes after steps[0].lowrank; prune steps must come before quantize, "
     "share and lowrank"},
    {"{\"steps\":[{\"prune\":{\"sparsity\":0.1}},{\"quantize\":{}},{\"quantize\":{}}]}",
     MP_ERECIPE,
     "steps[2].quantize: comes after steps[1].quantize; a recipe codes values once, with "
     "quantize, share or lowrank (only lowrank may be followed by a quantize of its factors)"},
    {"{\"steps\":[{\"share\":{}},{\"quantize\":{\"bits\":4}}]}", MP_ERECIPE,
     "steps[1].quantize: comes after steps[0].share; a recipe codes values once, with "
     "quantize, share or lowrank (only lowrank may be followed by a quantize of its factors)"},
    {"{\"steps\":[{\"quantize\":{}},{\"lowrank\":{\"rank\":2}}]}", MP_ERECIPE,
     "steps[1].lowrank: comes after steps[0].quantize; a recipe codes values once, with "
     "quantize, share or lowrank (only lowrank may be followed by a quantize of its factors)"},
    {"{\"steps\":[{\"lowrank\":{\"rank\":2}},{\"share\":{}}]}", MP_ERECIPE,
     "steps[1].share: comes after steps[0].lowrank; a recipe codes values once, with "
     "quantize, share or lowrank (only lowrank may be followed by a quantize of its factors)"},
    {"{\"steps\":[{\"lowrank\":{\"rank\":2}},{\"quantize\":{}},{\"quantize\":{}}]}",
     MP_ERECIPE,
     "steps[2].quantize: comes after steps[1].quantize; a recipe codes values once, with "
     "quantize, share or lowrank (only lowrank may be followed by a quantize of its factors)"},
    {"{\"steps\":[{\"huffman\":{}},{\"quantize\":{}}]}", MP_ERECIPE,
     "steps[1].quantize: comes after steps[0].huffman; huffman must be the last step"},
    {"{\"steps\":[{\"share\":{}},{\"huffman\":{}},{\"huffman\":{}}]}", MP_ERECIPE,
     "steps[2].huffman: comes after steps[1].huffman; huffman must be the last step"},
    {"{\"steps\":[{\"share\":{}},{\"huffman\":{}}],\"output\":{\"format\":\"safetensors\"}}",
     MP_ERECIPE,
     "output.format: 'safetensors' cannot hold the Huffman coding of steps[1].huffman; use "
     "'mpz' or leave format out"},
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
     "output.format: 'onnx' is not available in this version (available: safetensors, mpz)"},
    {"{\"steps\":[{\"quantize\":{}}],\"output\":{\"format\":\"gguf\"}}", MP_ERECIPE,
     "output.format: must be one of safetensors, mpz, onnx; got 'gguf'"},
    {"{\"steps\":[{\"quantize\":{}}],\"evaluate\":{\"metric\":\"top5\"}}", MP_ERECIPE,
     "evaluate.metric: must be \"top1\" (top-1 accuracy), got \"top5\""},
    {"{\"steps\":[{\"quantize\":{}}],\"evaluate\":{\"dataset_id\":\"../x\"}}", MP_ERECIPE,
     "evaluate.dataset_id: must be the id of a dataset (64 lowercase hex digits, as POST "
     "/datasets answers), got \"../x\""},
    {"{\"steps\":[{\"quantize\":{}}],\"evaluate\":{\"latency_runs\":0}}", MP_ERECIPE,
     "evaluate.latency_runs: must be an integer from 1 to 1000, got 0"},
    {"{\"steps\":[{\"quantize\":{}}],\"evaluate\":{\"metrics\":1}}", MP_ERECIPE,
     "evaluate.metrics: unknown field (known: dataset_id, metric, latency_runs)"},
    {"{\"steps\":[{\"quantize\":{}}],\"evaluate\":[]}", MP_ERECIPE,
     "evaluate: must be an object such as {\"metric\": \"top1\"}, got an array"},
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
    ck_assert_int_eq(r->steps[0].prune.structure, MP_STRUCT_NONE);
    ck_assert_int_eq(r->steps[0].prune.norm, 1);
    ck_assert_int_eq(r->steps[1].kind, MP_STEP_QUANTIZE);
    ck_assert_int_eq(r->steps[1].quant.format, MP_QFMT_INT);
    ck_assert_int_eq(r->steps[1].quant.bits, 8);
    ck_assert_int_eq(r->steps[1].quant.asymmetric, 0);
    ck_assert_int_eq(r->steps[1].quant.granularity, MP_GRAN_CHANNEL);
    ck_assert_uint_eq(r->steps[1].quant.group_size, 128);
    ck_assert_int_eq(r->has_include, 0);
    ck_assert_uint_eq(r->n_exclude, 0);
    ck_assert_int_eq(r->min_elements, 0);
    ck_assert_int_eq(r->format, MP_OUT_SAFETENSORS);
    ck_assert_int_eq(r->has_huffman, 0);
    ck_assert_str_eq(mp_recipe_output_format(r), "safetensors");
    mp_recipe_free(r);

    /* share, lowrank, huffman with nothing but what they need */
    r = parse_ok("{\"steps\":[{\"share\":{}},{\"huffman\":{}}]}");
    ck_assert_int_eq(r->steps[0].kind, MP_STEP_SHARE);
    ck_assert_int_eq(r->steps[0].share.clusters, 16);
    ck_assert_int_eq(r->steps[0].share.init, MP_KM_INIT_LINEAR);
    ck_assert_int_eq(r->steps[0].share.optimal, 0);
    ck_assert_int_eq(r->steps[0].share.max_iter, 300);
    ck_assert_int_eq(r->steps[1].kind, MP_STEP_HUFFMAN);
    ck_assert_int_eq(r->has_huffman, 1);
    ck_assert_int_eq(r->format, MP_OUT_MPZ);
    ck_assert_str_eq(mp_recipe_output_format(r), "mpz");
    mp_recipe_free(r);

    r = parse_ok("{\"steps\":[{\"lowrank\":{\"energy\":0.9}}]}");
    ck_assert_int_eq(r->steps[0].kind, MP_STEP_LOWRANK);
    ck_assert_int_eq(r->steps[0].lowrank.rule, MP_RANK_ENERGY);
    ck_assert_double_eq(r->steps[0].lowrank.fraction, 0.9);
    ck_assert_int_eq(r->steps[0].lowrank.randomized, -1); /* decided by the matrix's size */
    mp_recipe_free(r);

    /* N:M needs no sparsity: it is 0.5; given as 0.5 it is accepted */
    r = parse_ok("{\"steps\":[{\"prune\":{\"structure\":\"2:4\"}},"
                 "{\"prune\":{\"structure\":\"4:8\",\"sparsity\":0.5}}]}");
    ck_assert_int_eq(r->steps[0].prune.structure, MP_STRUCT_2_4);
    ck_assert_double_eq(r->steps[0].prune.sparsity, 0.5);
    ck_assert_int_eq(r->steps[1].prune.structure, MP_STRUCT_4_8);
    ck_assert_double_eq(r->steps[1].prune.sparsity, 0.5);
    mp_recipe_free(r);
}
END_TEST

START_TEST(test_every_field)
{
    mp_recipe_t *r = parse_ok(
        "{\"steps\":[{\"prune\":{\"sparsity\":1,\"method\":\"magnitude\",\"scope\":\"global\","
        "\"structure\":\"none\"}},{\"prune\":{\"sparsity\":0}},"
        "{\"prune\":{\"sparsity\":0.25,\"structure\":\"channel\",\"norm\":2}},"
        "{\"quantize\":{\"bits\":8.0,\"scheme\":\"symmetric\",\"granularity\":\"tensor\","
        "\"method\":\"round\",\"format\":\"int\"}}],"
        "\"select\":{\"include\":[\"*.weight\",\"emb*\"],\"exclude\":[\"head.*\"],"
        "\"min_elements\":1024},\"output\":{\"format\":\"safetensors\"}}");

    ck_assert_uint_eq(r->n_steps, 4);
    ck_assert_double_eq(r->steps[0].prune.sparsity, 1.0);
    ck_assert_int_eq(r->steps[0].prune.scope, MP_SCOPE_GLOBAL);
    ck_assert_double_eq(r->steps[1].prune.sparsity, 0.0);
    ck_assert_int_eq(r->steps[1].prune.scope, MP_SCOPE_LAYER);
    ck_assert_int_eq(r->steps[2].prune.structure, MP_STRUCT_CHANNEL);
    ck_assert_int_eq(r->steps[2].prune.norm, 2);
    ck_assert_double_eq(r->steps[2].prune.sparsity, 0.25);
    ck_assert_int_eq(r->steps[3].quant.bits, 8);
    ck_assert_int_eq(r->steps[3].quant.granularity, MP_GRAN_TENSOR);
    ck_assert_int_eq(r->has_include, 1);
    ck_assert_uint_eq(r->n_include, 2);
    ck_assert_str_eq(r->include[0], "*.weight");
    ck_assert_str_eq(r->include[1], "emb*");
    ck_assert_uint_eq(r->n_exclude, 1);
    ck_assert_str_eq(r->exclude[0], "head.*");
    ck_assert_int_eq(r->min_elements, 1024);
    mp_recipe_free(r);

    r = parse_ok("{\"steps\":[{\"quantize\":{\"bits\":3,\"scheme\":\"asymmetric\","
                 "\"granularity\":\"group\",\"group_size\":64}}],"
                 "\"output\":{\"format\":\"mpz\"}}");
    ck_assert_int_eq(r->steps[0].quant.format, MP_QFMT_INT);
    ck_assert_int_eq(r->steps[0].quant.bits, 3);
    ck_assert_int_eq(r->steps[0].quant.asymmetric, 1);
    ck_assert_int_eq(r->steps[0].quant.granularity, MP_GRAN_GROUP);
    ck_assert_uint_eq(r->steps[0].quant.group_size, 64);
    ck_assert_int_eq(r->format, MP_OUT_MPZ);
    ck_assert_int_eq(r->has_huffman, 0);
    mp_recipe_free(r);

    /* the formats that are not integer codes, each with what applies to it */
    r = parse_ok("{\"steps\":[{\"quantize\":{\"format\":\"binary\",\"granularity\":\"tensor\"}}]}");
    ck_assert_int_eq(r->steps[0].quant.format, MP_QFMT_BINARY);
    ck_assert_int_eq(r->steps[0].quant.granularity, MP_GRAN_TENSOR);
    mp_recipe_free(r);
    r = parse_ok("{\"steps\":[{\"quantize\":{\"format\":\"ternary\"}}]}");
    ck_assert_int_eq(r->steps[0].quant.format, MP_QFMT_TERNARY);
    ck_assert_int_eq(r->steps[0].quant.granularity, MP_GRAN_CHANNEL);
    mp_recipe_free(r);
    r = parse_ok("{\"steps\":[{\"quantize\":{\"format\":\"fp16\",\"method\":\"round\"}}]}");
    ck_assert_int_eq(r->steps[0].quant.format, MP_QFMT_FP16);
    mp_recipe_free(r);
    r = parse_ok("{\"steps\":[{\"quantize\":{\"format\":\"bf16\"}}]}");
    ck_assert_int_eq(r->steps[0].quant.format, MP_QFMT_BF16);
    mp_recipe_free(r);

    r = parse_ok("{\"steps\":[{\"prune\":{\"sparsity\":0.9}},{\"share\":{\"clusters\":256,"
                 "\"init\":\"kmeans++\",\"max_iter\":7}},{\"huffman\":{}}],"
                 "\"output\":{\"format\":\"mpz\"}}");
    ck_assert_int_eq(r->steps[1].share.clusters, 256);
    ck_assert_int_eq(r->steps[1].share.init, MP_KM_INIT_KMEANSPP);
    ck_assert_int_eq(r->steps[1].share.max_iter, 7);
    ck_assert_int_eq(r->has_huffman, 1);
    mp_recipe_free(r);
    r = parse_ok("{\"steps\":[{\"share\":{\"clusters\":2,\"optimal\":true}}]}");
    ck_assert_int_eq(r->steps[0].share.clusters, 2);
    ck_assert_int_eq(r->steps[0].share.optimal, 1);
    mp_recipe_free(r);
    r = parse_ok("{\"steps\":[{\"share\":{\"init\":\"density\",\"optimal\":false}}]}");
    ck_assert_int_eq(r->steps[0].share.init, MP_KM_INIT_DENSITY);
    ck_assert_int_eq(r->steps[0].share.optimal, 0);
    mp_recipe_free(r);

    /* lowrank: each rule, randomized either way, and a quantize of the factors after it */
    r = parse_ok("{\"steps\":[{\"lowrank\":{\"rank\":12,\"randomized\":false}},"
                 "{\"quantize\":{\"bits\":4}}]}");
    ck_assert_int_eq(r->steps[0].lowrank.rule, MP_RANK_FIXED);
    ck_assert_int_eq(r->steps[0].lowrank.rank, 12);
    ck_assert_int_eq(r->steps[0].lowrank.randomized, 0);
    ck_assert_int_eq(r->steps[1].quant.bits, 4);
    mp_recipe_free(r);
    r = parse_ok("{\"steps\":[{\"prune\":{\"sparsity\":0.1}},"
                 "{\"lowrank\":{\"rank_ratio\":0.25,\"randomized\":true}}]}");
    ck_assert_int_eq(r->steps[1].lowrank.rule, MP_RANK_RATIO);
    ck_assert_double_eq(r->steps[1].lowrank.fraction, 0.25);
    ck_assert_int_eq(r->steps[1].lowrank.randomized, 1);
    mp_recipe_free(r);
}
END_TEST

START_TEST(test_output_format)
{
    mp_recipe_t *r = parse_ok("{\"steps\":[{\"quantize\":{}}]}");
    mp_errctx_t err = {0};

    /* a file name may ask for the container; asking for safetensors again changes nothing */
    ck_assert_int_eq(mp_recipe_set_output_format(r, "safetensors", &err), 0);
    ck_assert_str_eq(mp_recipe_output_format(r), "safetensors");
    ck_assert_int_eq(mp_recipe_set_output_format(r, "mpz", &err), 0);
    ck_assert_str_eq(mp_recipe_output_format(r), "mpz");
    ck_assert_int_eq(mp_recipe_set_output_format(r, "onnx", &err), MP_EINVAL);
    ck_assert_str_eq(err.msg, "output format 'onnx' is not one of safetensors, mpz");
    ck_assert_int_eq(mp_recipe_set_output_format(NULL, "mpz", NULL), MP_EINVAL);
    ck_assert_str_eq(mp_recipe_output_format(NULL), "safetensors");
    mp_recipe_free(r);

    /* but not away from what the recipe asks for */
    r = parse_ok("{\"steps\":[{\"share\":{}},{\"huffman\":{}}]}");
    ck_assert_int_eq(mp_recipe_set_output_format(r, "safetensors", &err), MP_ERECIPE);
    ck_assert_str_eq(err.msg, "output: steps[1].huffman writes the .mpz container, which "
                              "safetensors cannot hold");
    ck_assert_str_eq(mp_recipe_output_format(r), "mpz");
    mp_recipe_free(r);
    r = parse_ok("{\"steps\":[{\"share\":{}}],\"output\":{\"format\":\"mpz\"}}");
    ck_assert_int_eq(mp_recipe_set_output_format(r, "safetensors", &err), MP_ERECIPE);
    ck_assert_str_eq(err.msg, "output: the recipe's output.format is 'mpz', not safetensors");
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
                 "select: tensor 'fc1.weight' would be stored as 'fc1.weight_scale', but the "
                 "model already has a tensor of that name");
    assert_check("{\"steps\":[{\"prune\":{\"sparsity\":0.5}}]}", 0, NULL);

    /* a second compression would lose the record of the first */
    ck_assert_int_eq(mp_model_set_meta(g_model, MP_META_KEY, "{\"version\":1}"), 0);
    assert_check("{\"steps\":[{\"prune\":{\"sparsity\":0.5}}]}", MP_EUNSUPPORTED,
                 "the model was already compressed by modelpress (metadata 'modelpress'); "
                 "unpack it first");
}
END_TEST

/* A model for the steps' own checks: a [6, 8], b [5, 6], conv [8, 3, 3, 3], bias [6]. */
static mp_model_t *steps_model(void)
{
    static const float z[216] = {0};
    const int64_t sa[2] = {6, 8}, sb[2] = {5, 6}, sc[4] = {8, 3, 3, 3}, sd[1] = {6};
    mp_model_t *m = mp_model_new();

    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(mp_model_add(m, "a.weight", MP_DT_F32, 2, sa, z, 48 * 4, NULL), 0);
    ck_assert_int_eq(mp_model_add(m, "b.weight", MP_DT_F32, 2, sb, z, 30 * 4, NULL), 0);
    ck_assert_int_eq(mp_model_add(m, "conv.weight", MP_DT_F32, 4, sc, z, 216 * 4, NULL), 0);
    ck_assert_int_eq(mp_model_add(m, "bias", MP_DT_F32, 1, sd, z, 6 * 4, NULL), 0);
    return m;
}

static void assert_check_on(const mp_model_t *m, const char *json, int code, const char *msg)
{
    mp_recipe_t *r = parse_ok(json);
    mp_errctx_t err = {0};

    ck_assert_msg(mp_recipe_check_model(r, m, &err) == code, "%s: %s", json, err.msg);
    if (msg != NULL) {
        ck_assert_str_eq(err.msg, msg);
    }
    mp_recipe_free(r);
}

START_TEST(test_check_steps)
{
    mp_model_t *m = steps_model();

    /* N:M runs along rows: a's rows of 8 take 2:4 and 4:8, b's rows of 6 neither */
    assert_check_on(m, "{\"steps\":[{\"prune\":{\"structure\":\"4:8\"}}],"
                       "\"select\":{\"include\":[\"a.*\"]}}", 0, NULL);
    assert_check_on(m, "{\"steps\":[{\"prune\":{\"structure\":\"2:4\"}}]}", MP_ERECIPE,
                    "steps[0].prune.structure: '2:4' needs rows whose length is a multiple of 4; "
                    "tensor 'b.weight' (5 x 6) has rows of 6");
    assert_check_on(m, "{\"steps\":[{\"prune\":{\"structure\":\"4:8\"}}],"
                       "\"select\":{\"include\":[\"conv.*\"]}}", MP_ERECIPE,
                    "steps[0].prune.structure: '4:8' needs rows whose length is a multiple of 8; "
                    "tensor 'conv.weight' (8 x 3 x 3 x 3) has rows of 27");
    /* channels need an output axis */
    assert_check_on(m, "{\"steps\":[{\"prune\":{\"sparsity\":0.5,\"structure\":\"channel\"}}]}",
                    0, NULL);
    assert_check_on(m, "{\"steps\":[{\"prune\":{\"sparsity\":0.5,\"structure\":\"channel\"}}],"
                       "\"select\":{\"include\":[\"*\"]}}", MP_ERECIPE,
                    "steps[0].prune.structure: 'channel' needs tensors of two or more dims; "
                    "tensor 'bias' has 1");
    /* a rank up to the smaller side of a matrix, or of the two channel modes of a conv */
    assert_check_on(m, "{\"steps\":[{\"lowrank\":{\"rank\":5}}],"
                       "\"select\":{\"exclude\":[\"conv.*\"]}}", 0, NULL);
    assert_check_on(m, "{\"steps\":[{\"lowrank\":{\"rank\":6}}]}", MP_ERECIPE,
                    "steps[0].lowrank.rank: 6 is more than tensor 'b.weight' (5 x 6) can have "
                    "(5)");
    assert_check_on(m, "{\"steps\":[{\"lowrank\":{\"rank\":4}}],"
                       "\"select\":{\"include\":[\"conv.*\"]}}", MP_ERECIPE,
                    "steps[0].lowrank.rank: 4 is more than tensor 'conv.weight' (8 x 3 x 3 x 3) "
                    "can have (3)");
    assert_check_on(m, "{\"steps\":[{\"lowrank\":{\"rank\":3}}]}", 0, NULL);
    assert_check_on(m, "{\"steps\":[{\"lowrank\":{\"energy\":0.5}}],"
                       "\"select\":{\"include\":[\"bias\"]}}", MP_ERECIPE,
                    "steps[0].lowrank: needs tensors of two or more dims; tensor 'bias' has 1");
    mp_model_free(m);
}
END_TEST

/* Every stored tensor must get a name of its own. */
START_TEST(test_check_names)
{
    static const float z[16] = {0};
    const int64_t s2[2] = {4, 4}, s1[1] = {4};
    mp_model_t *m = mp_model_new();

    ck_assert_int_eq(mp_model_add(m, "w", MP_DT_F32, 2, s2, z, sizeof z, NULL), 0);
    ck_assert_int_eq(mp_model_add(m, "w_scale", MP_DT_F32, 2, s2, z, sizeof z, NULL), 0);
    ck_assert_int_eq(mp_model_add(m, "w_codebook", MP_DT_F32, 1, s1, z, 16, NULL), 0);
    ck_assert_int_eq(mp_model_add(m, "w_u_packed", MP_DT_F32, 1, s1, z, 16, NULL), 0);

    /* factors take names of their own: w_u, w_v and w_scale_u, w_scale_v */
    assert_check_on(m, "{\"steps\":[{\"lowrank\":{\"rank\":2}}]}", 0, NULL);
    /* but the int8 scales of w would take the name of w_scale's own codes */
    assert_check_on(m, "{\"steps\":[{\"quantize\":{}}]}", MP_ERECIPE,
                    "select: tensors 'w' and 'w_scale' would both be stored as 'w_scale'; leave "
                    "one out with select.exclude");
    /* a kept tensor in the way: w_codebook for share, w_u_packed for 4-bit factors */
    assert_check_on(m, "{\"steps\":[{\"share\":{}}]}", MP_ERECIPE,
                    "select: tensor 'w' would be stored as 'w_codebook', but the model already "
                    "has a tensor of that name");
    assert_check_on(m, "{\"steps\":[{\"lowrank\":{\"rank\":2}},{\"quantize\":{\"bits\":4}}],"
                       "\"select\":{\"include\":[\"w\"]}}", MP_ERECIPE,
                    "select: tensor 'w' would be stored as 'w_u_packed', but the model already "
                    "has a tensor of that name");
    /* fp16 keeps the name and needs no other */
    assert_check_on(m, "{\"steps\":[{\"quantize\":{\"format\":\"fp16\"}}]}", 0, NULL);
    mp_model_free(m);
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
    tcase_add_test(tc, test_output_format);
    suite_add_tcase(s, tc);

    tc = tcase_create("select");
    tcase_add_checked_fixture(tc, model_setup, model_teardown);
    tcase_add_test(tc, test_selects);
    tcase_add_test(tc, test_check_model);
    tcase_add_test(tc, test_check_empty_model);
    tcase_add_test(tc, test_check_steps);
    tcase_add_test(tc, test_check_names);
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
