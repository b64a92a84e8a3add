/* recipe.c — parse and validate recipes, select the tensors they compress, and decide what
 * they do to each one.
 *
 * A recipe is untrusted JSON from a user (an HTTP form field or a file). It is bounded before
 * it is parsed (MP_RECIPE_MAX_BYTES, MP_RECIPE_MAX_DEPTH, duplicate keys refused), and every
 * refusal is MP_ERECIPE with a message that starts with the path of what is wrong —
 * "steps[1].quantize.bits: must be an integer from 2 to 8, got 33" — so a person can fix it.
 *
 * Validation runs step by step and stops at the first problem. Within a step every given value
 * is checked before whether it applies (a bits of 33 is called wrong even with format fp16,
 * where bits does not apply), and values this version knows but cannot run (method obs, gptq,
 * the steps finetune and distill, output onnx) are refused as not available. Then the order of
 * the steps is checked against the composition rules (check_order). A parsed recipe holds only
 * what the pipeline can run.
 *
 * mp__plan() decides, from the recipe and a tensor's shape alone, how that tensor will be
 * stored, so that mp_recipe_check_model() can refuse before any work what would fail later: a
 * step that cannot apply to a selected tensor (N:M on rows of the wrong length, a rank above
 * the matrix's) and two stored tensors that would get the same name.
 */
#include "evaluate_int.h"
#include "recipe_int.h"

#include <fnmatch.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Integers beyond 2^53 lose precision as JSON reals; no field needs them as reals. */
#define EXACT_REAL_LIMIT 9007199254740992.0

static const char *const STEP_NAMES[] = {"prune",   "quantize", "share",  "lowrank",
                                         "huffman", "finetune", "distill", NULL};
static const char *const TOP_FIELDS[] = {"steps", "select", "output", "evaluate", NULL};

/* ---- message helpers ---------------------------------------------------------------------- */

/* Copy s into buf for a message: control bytes become '?', long text is cut with "...". */
static void clean_text(const char *s, char *buf, size_t cap)
{
    size_t i = 0;
    const size_t keep = cap > 4 ? cap - 4 : 0;

    for (; s[i] != '\0' && i < keep; i++) {
        buf[i] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
    }
    if (s[i] != '\0' && cap >= 4) {
        memcpy(buf + i, "...", 3);
        i += 3;
    }
    buf[cap ? (i < cap ? i : cap - 1) : 0] = '\0';
}

/* A short description of a JSON value for "got ...": the value itself for scalars. */
static void describe(const json_t *v, char *buf, size_t cap)
{
    char tmp[48];

    switch (json_typeof(v)) {
    case JSON_INTEGER:
        snprintf(buf, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        break;
    case JSON_REAL:
        snprintf(buf, cap, "%.15g", json_real_value(v));
        break;
    case JSON_STRING:
        clean_text(json_string_value(v), tmp, sizeof tmp);
        snprintf(buf, cap, "'%s'", tmp);
        break;
    case JSON_TRUE:
        snprintf(buf, cap, "true");
        break;
    case JSON_FALSE:
        snprintf(buf, cap, "false");
        break;
    case JSON_NULL:
        snprintf(buf, cap, "null");
        break;
    case JSON_OBJECT:
        snprintf(buf, cap, "an object");
        break;
    case JSON_ARRAY:
        snprintf(buf, cap, "an array");
        break;
    }
}

/* "a, b, c" from a NULL-terminated list. */
static void join(const char *const *list, const char *sep, char *buf, size_t cap)
{
    size_t used = 0;

    buf[0] = '\0';
    for (size_t i = 0; list[i] != NULL && used < cap; i++) {
        int n = snprintf(buf + used, cap - used, "%s%s", i ? sep : "", list[i]);
        if (n < 0) {
            break;
        }
        used += (size_t)n;
    }
}

static int list_index(const char *const *list, const char *s)
{
    for (int i = 0; list[i] != NULL; i++) {
        if (strcmp(list[i], s) == 0) {
            return i;
        }
    }
    return -1;
}

/* ---- field readers: each names where/field in its message ------------------------------ */

/* Refuse any key of obj not in known (NULL-terminated). */
static int check_fields(const json_t *obj, const char *where, const char *const *known,
                        mp_errctx_t *err)
{
    const char *key;
    json_t *v;
    char names[256], k[64];

    json_object_foreach((json_t *)obj, key, v) {
        if (list_index(known, key) < 0) {
            clean_text(key, k, sizeof k);
            if (known[0] == NULL) {
                return mp__err_set(err, MP_ERECIPE, "%s.%s: unknown field (%s takes no fields)",
                                   where, k, where);
            }
            join(known, ", ", names, sizeof names);
            return mp__err_set(err, MP_ERECIPE, "%s.%s: unknown field (known: %s)", where, k,
                               names);
        }
    }
    return 0;
}

/* A number in [lo, hi]. Absent: MP_ERECIPE if required, else *out keeps its default. */
static int field_number(const json_t *obj, const char *where, const char *field, double lo,
                        double hi, int required, double *out, mp_errctx_t *err)
{
    const json_t *v = json_object_get(obj, field);
    char got[64];

    if (v == NULL) {
        MP_RETURN_IF(required, MP_ERECIPE, "%s.%s: required, a number from %g to %g", where,
                     field, lo, hi);
        return 0;
    }
    if (json_is_number(v) && json_number_value(v) >= lo && json_number_value(v) <= hi) {
        *out = json_number_value(v);
        return 0;
    }
    describe(v, got, sizeof got);
    return mp__err_set(err, MP_ERECIPE, "%s.%s: must be a number from %g to %g, got %s", where,
                       field, lo, hi, got);
}

/* An integer in [lo, hi] (hi == INT64_MAX: no upper bound); an integral real such as 8.0 counts
 * as the integer, since many JSON writers do not tell them apart. */
static int field_int(const json_t *obj, const char *where, const char *field, int64_t lo,
                     int64_t hi, int64_t *out, mp_errctx_t *err)
{
    const json_t *v = json_object_get(obj, field);
    char got[64];
    int ok = 0;
    int64_t x = 0;

    if (v == NULL) {
        return 0;
    }
    if (json_is_integer(v)) {
        x = json_integer_value(v);
        ok = 1;
    } else if (json_is_real(v)) {
        double d = json_real_value(v);
        if (d == floor(d) && fabs(d) < EXACT_REAL_LIMIT) {
            x = (int64_t)d;
            ok = 1;
        }
    }
    if (ok && x >= lo && x <= hi) {
        *out = x;
        return 0;
    }
    describe(v, got, sizeof got);
    if (hi == INT64_MAX) {
        return mp__err_set(err, MP_ERECIPE, "%s.%s: must be an integer of at least %" PRId64
                           ", got %s", where, field, lo, got);
    }
    return mp__err_set(err, MP_ERECIPE, "%s.%s: must be an integer from %" PRId64 " to %" PRId64
                       ", got %s", where, field, lo, hi, got);
}

/* One of the strings in known; the first n_avail of them are available in this version, the
 * others are refused as not available yet. Absent: *out keeps its default. */
static int field_enum(const json_t *obj, const char *where, const char *field,
                      const char *const *known, int n_avail, int *out, mp_errctx_t *err)
{
    const json_t *v = json_object_get(obj, field);
    char names[256], got[64];
    int i;

    if (v == NULL) {
        return 0;
    }
    i = json_is_string(v) ? list_index(known, json_string_value(v)) : -1;
    if (i < 0) {
        join(known, ", ", names, sizeof names);
        describe(v, got, sizeof got);
        return mp__err_set(err, MP_ERECIPE, "%s.%s: must be one of %s; got %s", where, field,
                           names, got);
    }
    if (i >= n_avail) {
        /* the available ones are a prefix of known: print just that prefix */
        const char *avail[8] = {NULL};
        for (int j = 0; j < n_avail && j < 7; j++) {
            avail[j] = known[j];
        }
        join(avail, ", ", names, sizeof names);
        return mp__err_set(err, MP_ERECIPE,
                           "%s.%s: '%s' is not available in this version (available: %s)", where,
                           field, known[i], names);
    }
    *out = i;
    return 0;
}

/* true or false into *out; absent: *out keeps its default. */
static int field_bool(const json_t *obj, const char *where, const char *field, int *out,
                      mp_errctx_t *err)
{
    const json_t *v = json_object_get(obj, field);
    char got[64];

    if (v == NULL) {
        return 0;
    }
    if (json_is_boolean(v)) {
        *out = json_is_true(v);
        return 0;
    }
    describe(v, got, sizeof got);
    return mp__err_set(err, MP_ERECIPE, "%s.%s: must be true or false, got %s", where, field,
                       got);
}

/* ---- steps ------------------------------------------------------------------------------- */

static const char *const STEP_KIND_NAMES[] = {"prune", "quantize", "share", "lowrank", "huffman"};

const char *mp__step_name(mp_step_kind_t kind)
{
    return (unsigned)kind < sizeof STEP_KIND_NAMES / sizeof STEP_KIND_NAMES[0]
               ? STEP_KIND_NAMES[kind]
               : "?";
}

/* Refuse field when it is given although it does not apply; why says when it would. */
static int not_applicable(const json_t *o, const char *where, const char *field, const char *why,
                          mp_errctx_t *err)
{
    MP_RETURN_IF(json_object_get(o, field) != NULL, MP_ERECIPE, "%s.%s: %s", where, field, why);
    return 0;
}

static int parse_prune(const json_t *o, const char *where, mp_step_t *st, mp_errctx_t *err)
{
    static const char *const fields[] = {"sparsity", "method", "scope", "structure", "norm",
                                         NULL};
    static const char *const methods[] = {"magnitude", "obs", NULL};
    static const char *const scopes[] = {"layer", "global", NULL};
    /* order matches mp_struct_t */
    static const char *const structures[] = {"none", "channel", "2:4", "4:8", NULL};
    int rc, method = 0, scope = MP_SCOPE_LAYER, structure = MP_STRUCT_NONE, nm;
    int64_t norm = 1;
    const json_t *sparsity;

    st->kind = MP_STEP_PRUNE;
    if ((rc = check_fields(o, where, fields, err)) < 0 ||
        (rc = field_enum(o, where, "structure", structures, 4, &structure, err)) < 0) {
        return rc;
    }
    nm = structure == MP_STRUCT_2_4 || structure == MP_STRUCT_4_8;
    if ((rc = field_number(o, where, "sparsity", 0.0, 1.0, !nm, &st->prune.sparsity, err)) < 0 ||
        (rc = field_enum(o, where, "method", methods, 1, &method, err)) < 0 ||
        (rc = field_enum(o, where, "scope", scopes, 2, &scope, err)) < 0 ||
        (rc = field_int(o, where, "norm", 1, 2, &norm, err)) < 0) {
        return rc;
    }
    sparsity = json_object_get(o, "sparsity");
    if (nm) {
        /* N:M keeps N of every M: 2 of 4 and 4 of 8 both fix the sparsity at 0.5 */
        MP_RETURN_IF(sparsity != NULL && json_number_value(sparsity) != 0.5, MP_ERECIPE,
                     "%s.sparsity: structure '%s' keeps half of the weights, so the sparsity is "
                     "0.5; got %.15g (leave it out)",
                     where, structures[structure], json_number_value(sparsity));
        st->prune.sparsity = 0.5;
    }
    MP_RETURN_IF(scope == MP_SCOPE_GLOBAL && structure != MP_STRUCT_NONE, MP_ERECIPE,
                 "%s.scope: 'global' applies only with structure 'none' (channels and N:M groups "
                 "are ranked within their own tensor)",
                 where);
    if (structure != MP_STRUCT_CHANNEL &&
        (rc = not_applicable(o, where, "norm", "applies only with structure 'channel'", err)) <
            0) {
        return rc;
    }
    st->prune.scope = (mp_prune_scope_t)scope;
    st->prune.structure = (mp_struct_t)structure;
    st->prune.norm = (int)norm;
    return 0;
}

static int parse_quantize(const json_t *o, const char *where, mp_step_t *st, mp_errctx_t *err)
{
    static const char *const fields[] = {"bits",   "scheme", "granularity", "group_size",
                                         "method", "format", NULL};
    static const char *const schemes[] = {"symmetric", "asymmetric", NULL};
    /* orders match mp_quant_gran_t and mp_quant_format_t */
    static const char *const grans[] = {"channel", "tensor", "group", NULL};
    static const char *const methods[] = {"round", "gptq", NULL};
    static const char *const formats[] = {"int", "binary", "ternary", "fp16", "bf16", NULL};
    static const char *const int_only[] = {"bits", "scheme", "granularity", "group_size", NULL};
    int rc, scheme = 0, gran = MP_GRAN_CHANNEL, method = 0, format = MP_QFMT_INT;
    int64_t bits = 8, group_size = 128;
    char why[128];

    st->kind = MP_STEP_QUANTIZE;
    /* every value is checked before whether it applies, so a wrong one is called wrong */
    if ((rc = check_fields(o, where, fields, err)) < 0 ||
        (rc = field_int(o, where, "bits", 2, 8, &bits, err)) < 0 ||
        (rc = field_enum(o, where, "scheme", schemes, 2, &scheme, err)) < 0 ||
        (rc = field_enum(o, where, "granularity", grans, 3, &gran, err)) < 0 ||
        (rc = field_int(o, where, "group_size", 1, INT32_MAX, &group_size, err)) < 0 ||
        (rc = field_enum(o, where, "method", methods, 1, &method, err)) < 0 ||
        (rc = field_enum(o, where, "format", formats, 5, &format, err)) < 0) {
        return rc;
    }
    if (format == MP_QFMT_FP16 || format == MP_QFMT_BF16) {
        /* a cast has no parameters */
        snprintf(why, sizeof why, "does not apply to format '%s' (a cast with rounding to "
                 "nearest even)", formats[format]);
        for (int i = 0; int_only[i] != NULL; i++) {
            if ((rc = not_applicable(o, where, int_only[i], why, err)) < 0) {
                return rc;
            }
        }
    } else if (format != MP_QFMT_INT) {
        snprintf(why, sizeof why, "applies only with format 'int', not '%s'", formats[format]);
        if ((rc = not_applicable(o, where, "bits", why, err)) < 0) {
            return rc;
        }
        MP_RETURN_IF(scheme != 0, MP_ERECIPE,
                     "%s.scheme: 'asymmetric' applies only with format 'int', not '%s'", where,
                     formats[format]);
        MP_RETURN_IF(gran == MP_GRAN_GROUP, MP_ERECIPE,
                     "%s.granularity: 'group' applies only with format 'int'; %s codes have one "
                     "scale per channel or per tensor",
                     where, formats[format]);
    }
    MP_RETURN_IF(gran != MP_GRAN_GROUP && json_object_get(o, "group_size") != NULL, MP_ERECIPE,
                 "%s.group_size: applies only with granularity 'group'", where);
    st->quant.format = (mp_quant_format_t)format;
    st->quant.bits = (int)bits;
    st->quant.asymmetric = scheme == 1;
    st->quant.granularity = (mp_quant_gran_t)gran;
    st->quant.group_size = (size_t)group_size;
    return 0;
}

static int parse_share(const json_t *o, const char *where, mp_step_t *st, mp_errctx_t *err)
{
    static const char *const fields[] = {"clusters", "init", "optimal", "max_iter", NULL};
    /* order matches mp__km_init_t */
    static const char *const inits[] = {"linear", "density", "kmeans++", NULL};
    int rc, init = 0, optimal = 0;
    int64_t clusters = 16, max_iter = 300;

    st->kind = MP_STEP_SHARE;
    if ((rc = check_fields(o, where, fields, err)) < 0 ||
        (rc = field_int(o, where, "clusters", 2, 256, &clusters, err)) < 0 ||
        (rc = field_enum(o, where, "init", inits, 3, &init, err)) < 0 ||
        (rc = field_bool(o, where, "optimal", &optimal, err)) < 0 ||
        (rc = field_int(o, where, "max_iter", 1, 1000000, &max_iter, err)) < 0) {
        return rc;
    }
    if (optimal &&
        ((rc = not_applicable(o, where, "init", "does not apply with optimal true (the exact "
                              "optimum needs no starting centroids)", err)) < 0 ||
         (rc = not_applicable(o, where, "max_iter", "does not apply with optimal true (the "
                              "exact optimum is not iterated)", err)) < 0)) {
        return rc;
    }
    st->share.clusters = (int)clusters;
    st->share.init = init;
    st->share.optimal = optimal;
    st->share.max_iter = (int)max_iter;
    return 0;
}

static int parse_lowrank(const json_t *o, const char *where, mp_step_t *st, mp_errctx_t *err)
{
    static const char *const fields[] = {"rank", "rank_ratio", "energy", "randomized", NULL};
    int rc, given = 0, randomized = -1;
    int64_t rank = 1;
    double ratio = 1.0, energy = 1.0;

    st->kind = MP_STEP_LOWRANK;
    if ((rc = check_fields(o, where, fields, err)) < 0) {
        return rc;
    }
    for (int i = 0; i < 3; i++) {
        given += json_object_get(o, fields[i]) != NULL;
    }
    MP_RETURN_IF(given != 1, MP_ERECIPE, "%s: give exactly one of rank, rank_ratio, energy",
                 where);
    if ((rc = field_int(o, where, "rank", 1, INT64_MAX, &rank, err)) < 0 ||
        (rc = field_number(o, where, "rank_ratio", 0.0, 1.0, 0, &ratio, err)) < 0 ||
        (rc = field_number(o, where, "energy", 0.0, 1.0, 0, &energy, err)) < 0 ||
        (rc = field_bool(o, where, "randomized", &randomized, err)) < 0) {
        return rc;
    }
    MP_RETURN_IF(ratio == 0.0, MP_ERECIPE, "%s.rank_ratio: must be greater than 0, got 0", where);
    MP_RETURN_IF(energy == 0.0, MP_ERECIPE, "%s.energy: must be greater than 0, got 0", where);
    if (json_object_get(o, "rank") != NULL) {
        st->lowrank.rule = MP_RANK_FIXED;
    } else if (json_object_get(o, "rank_ratio") != NULL) {
        st->lowrank.rule = MP_RANK_RATIO;
        st->lowrank.fraction = ratio;
    } else {
        st->lowrank.rule = MP_RANK_ENERGY;
        st->lowrank.fraction = energy;
    }
    st->lowrank.rank = rank;
    st->lowrank.randomized = randomized;
    return 0;
}

/* Parse steps[i] into st, or refuse it. */
static int parse_step(const json_t *s, size_t i, mp_step_t *st, mp_errctx_t *err)
{
    static const char *const none[] = {NULL};
    char where[64], got[64], names[128], k[64];
    const char *name;
    json_t *body;
    void *iter;

    if (!json_is_object(s) || json_object_size(s) != 1) {
        if (json_is_object(s)) {
            snprintf(got, sizeof got, "an object with %zu keys", json_object_size(s));
        } else {
            describe(s, got, sizeof got);
        }
        return mp__err_set(err, MP_ERECIPE,
                           "steps[%zu]: must be an object with exactly one key naming the step, "
                           "such as {\"prune\": {\"sparsity\": 0.5}}, got %s",
                           i, got);
    }
    iter = json_object_iter((json_t *)s); /* the one key */
    name = json_object_iter_key(iter);
    body = json_object_iter_value(iter);
    if (list_index(STEP_NAMES, name) < 0) {
        join(STEP_NAMES, ", ", names, sizeof names);
        clean_text(name, k, sizeof k);
        return mp__err_set(err, MP_ERECIPE, "steps[%zu]: unknown step '%s' (known: %s)", i, k,
                           names);
    }
    snprintf(where, sizeof where, "steps[%zu].%s", i, name);
    if (!json_is_object(body)) {
        describe(body, got, sizeof got);
        return mp__err_set(err, MP_ERECIPE, "%s: must be an object of fields, got %s", where,
                           got);
    }
    if (strcmp(name, "prune") == 0) {
        return parse_prune(body, where, st, err);
    }
    if (strcmp(name, "quantize") == 0) {
        return parse_quantize(body, where, st, err);
    }
    if (strcmp(name, "share") == 0) {
        return parse_share(body, where, st, err);
    }
    if (strcmp(name, "lowrank") == 0) {
        return parse_lowrank(body, where, st, err);
    }
    if (strcmp(name, "huffman") == 0) {
        st->kind = MP_STEP_HUFFMAN;
        return check_fields(body, where, none, err);
    }
    /* finetune, distill: they need training data and a training loop; fields not settled */
    return mp__err_set(err, MP_ERECIPE,
                       "%s: not available in this version (available steps: prune, quantize, "
                       "share, lowrank, huffman)",
                       where);
}

/* The composition rules (README, Recipes): prune steps first; then at most one value-coding
 * step, quantize, share or lowrank, where lowrank may be followed by one quantize of its
 * factors; huffman last. st is steps[i]; the *_at are the indices seen so far (SIZE_MAX none). */
static int check_order(const mp_recipe_t *r, size_t i, size_t coding_at, size_t huffman_at,
                       mp_errctx_t *err)
{
    const mp_step_t *st = &r->steps[i];
    const char *name = mp__step_name(st->kind);

    MP_RETURN_IF(huffman_at != SIZE_MAX, MP_ERECIPE,
                 "steps[%zu].%s: comes after steps[%zu].huffman; huffman must be the last step",
                 i, name, huffman_at);
    if (coding_at == SIZE_MAX || st->kind == MP_STEP_HUFFMAN) {
        return 0;
    }
    MP_RETURN_IF(st->kind == MP_STEP_PRUNE, MP_ERECIPE,
                 "steps[%zu].prune: comes after steps[%zu].%s; prune steps must come before "
                 "quantize, share and lowrank",
                 i, coding_at, mp__step_name(r->steps[coding_at].kind));
    MP_RETURN_IF(!(st->kind == MP_STEP_QUANTIZE && r->steps[coding_at].kind == MP_STEP_LOWRANK),
                 MP_ERECIPE,
                 "steps[%zu].%s: comes after steps[%zu].%s; a recipe codes values once, with "
                 "quantize, share or lowrank (only lowrank may be followed by a quantize of its "
                 "factors)",
                 i, name, coding_at, mp__step_name(r->steps[coding_at].kind));
    return 0;
}

static int parse_steps(const json_t *steps, mp_recipe_t *r, mp_errctx_t *err)
{
    char got[64];
    size_t n, coding_at = SIZE_MAX, huffman_at = SIZE_MAX;
    int rc;

    MP_RETURN_IF(steps == NULL, MP_ERECIPE,
                 "steps: required, a list of steps such as [{\"quantize\": {\"bits\": 8}}]");
    if (!json_is_array(steps)) {
        describe(steps, got, sizeof got);
        return mp__err_set(err, MP_ERECIPE, "steps: must be an array of steps, got %s", got);
    }
    n = json_array_size(steps);
    MP_RETURN_IF(n == 0, MP_ERECIPE, "steps: must list at least one step");
    MP_RETURN_IF(n > MP_RECIPE_MAX_STEPS, MP_ERECIPE, "steps: at most %d steps, got %zu",
                 MP_RECIPE_MAX_STEPS, n);
    r->steps = calloc(n, sizeof *r->steps);
    MP_RETURN_IF(r->steps == NULL, MP_ENOMEM, "out of memory parsing the recipe");
    for (size_t i = 0; i < n; i++) {
        mp_step_t *st = &r->steps[i];
        if ((rc = parse_step(json_array_get(steps, i), i, st, err)) < 0 ||
            (rc = check_order(r, i, coding_at, huffman_at, err)) < 0) {
            return rc;
        }
        if (st->kind == MP_STEP_QUANTIZE || st->kind == MP_STEP_SHARE ||
            st->kind == MP_STEP_LOWRANK) {
            coding_at = i;
        } else if (st->kind == MP_STEP_HUFFMAN) {
            huffman_at = i;
        }
        r->n_steps = i + 1;
    }
    if (huffman_at != SIZE_MAX) {
        r->has_huffman = 1;
        r->format = MP_OUT_MPZ;
    }
    return 0;
}

/* ---- select and output ------------------------------------------------------------------- */

static int parse_patterns(const json_t *arr, const char *field, int allow_empty, char ***out,
                          size_t *n_out, mp_errctx_t *err)
{
    char got[64];
    size_t n;

    if (!json_is_array(arr)) {
        describe(arr, got, sizeof got);
        return mp__err_set(err, MP_ERECIPE,
                           "select.%s: must be an array of glob patterns (strings), got %s",
                           field, got);
    }
    n = json_array_size(arr);
    MP_RETURN_IF(n == 0 && !allow_empty, MP_ERECIPE,
                 "select.%s: must list at least one glob pattern (leave it out to use the "
                 "default selection)",
                 field);
    MP_RETURN_IF(n > MP_RECIPE_MAX_PATTERNS, MP_ERECIPE,
                 "select.%s: at most %d patterns, got %zu", field, MP_RECIPE_MAX_PATTERNS, n);
    *out = calloc(n ? n : 1, sizeof **out);
    MP_RETURN_IF(*out == NULL, MP_ENOMEM, "out of memory parsing the recipe");
    for (size_t i = 0; i < n; i++) {
        const json_t *p = json_array_get(arr, i);
        size_t len = json_is_string(p) ? json_string_length(p) : 0;
        if (len == 0 || len > MP_RECIPE_MAX_PATTERN_BYTES) {
            describe(p, got, sizeof got);
            return mp__err_set(err, MP_ERECIPE,
                               "select.%s[%zu]: must be a glob pattern of 1 to %d bytes, got %s",
                               field, i, MP_RECIPE_MAX_PATTERN_BYTES, got);
        }
        (*out)[i] = strdup(json_string_value(p));
        MP_RETURN_IF((*out)[i] == NULL, MP_ENOMEM, "out of memory parsing the recipe");
        *n_out = i + 1;
    }
    return 0;
}

static int parse_select(const json_t *sel, mp_recipe_t *r, mp_errctx_t *err)
{
    static const char *const fields[] = {"include", "exclude", "min_elements", "kinds", NULL};
    const json_t *v;
    char got[64];
    int rc;

    if (!json_is_object(sel)) {
        describe(sel, got, sizeof got);
        return mp__err_set(err, MP_ERECIPE, "select: must be an object, got %s", got);
    }
    if ((rc = check_fields(sel, "select", fields, err)) < 0) {
        return rc;
    }
    MP_RETURN_IF(json_object_get(sel, "kinds") != NULL, MP_ERECIPE,
                 "select.kinds: tensor kinds (conv, linear) are not known for safetensors "
                 "models; select by name with include and exclude");
    if ((v = json_object_get(sel, "include")) != NULL) {
        r->has_include = 1;
        if ((rc = parse_patterns(v, "include", 0, &r->include, &r->n_include, err)) < 0) {
            return rc;
        }
    }
    if ((v = json_object_get(sel, "exclude")) != NULL &&
        (rc = parse_patterns(v, "exclude", 1, &r->exclude, &r->n_exclude, err)) < 0) {
        return rc;
    }
    return field_int(sel, "select", "min_elements", 0, INT64_MAX, &r->min_elements, err);
}

static int parse_output(const json_t *o, mp_recipe_t *r, mp_errctx_t *err)
{
    static const char *const fields[] = {"format", NULL};
    /* order matches mp_out_format_t; onnx comes later */
    static const char *const formats[] = {"safetensors", "mpz", "onnx", NULL};
    char got[64];
    int rc, format = (int)r->format;

    if (!json_is_object(o)) {
        describe(o, got, sizeof got);
        return mp__err_set(err, MP_ERECIPE, "output: must be an object, got %s", got);
    }
    if ((rc = check_fields(o, "output", fields, err)) < 0 ||
        (rc = field_enum(o, "output", "format", formats, 2, &format, err)) < 0) {
        return rc;
    }
    MP_RETURN_IF(r->has_huffman && format != MP_OUT_MPZ, MP_ERECIPE,
                 "output.format: 'safetensors' cannot hold the Huffman coding of "
                 "steps[%zu].huffman; use 'mpz' or leave format out",
                 r->n_steps - 1);
    r->format = (mp_out_format_t)format;
    return 0;
}

/* Deepest nesting of arrays/objects in the text, counted before jansson recurses into it. */
static size_t json_depth(const char *s, size_t len)
{
    size_t depth = 0, max = 0;
    int in_str = 0;

    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\') {
                i++;
            } else if (c == '"') {
                in_str = 0;
            }
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '[' || c == '{') {
            if (++depth > max) {
                max = depth;
            }
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        }
    }
    return max;
}

/* ---- public ------------------------------------------------------------------------------ */

int mp_recipe_parse(const char *json, size_t len, mp_recipe_t **out, mp_errctx_t *err)
{
    json_t *root = NULL;
    json_error_t jerr;
    mp_recipe_t *r = NULL;
    const char *key;
    json_t *v;
    char got[64], names[128], k[64];
    int rc = 0;

    if (out != NULL) {
        *out = NULL;
    }
    MP_GOTO_IF(json == NULL || out == NULL, MP_EINVAL, "mp_recipe_parse: NULL argument");
    MP_GOTO_IF(len > MP_RECIPE_MAX_BYTES, MP_ERECIPE, "recipe: %zu bytes, more than the %u allowed",
               len, MP_RECIPE_MAX_BYTES);
    MP_GOTO_IF(json_depth(json, len) > MP_RECIPE_MAX_DEPTH, MP_ERECIPE,
               "recipe: nested more than %d levels deep", MP_RECIPE_MAX_DEPTH);
    root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    MP_GOTO_IF(root == NULL, MP_ERECIPE, "recipe: not valid JSON: %s (line %d, column %d)",
               jerr.text, jerr.line, jerr.column);
    if (!json_is_object(root)) {
        describe(root, got, sizeof got);
        MP_GOTO_IF(1, MP_ERECIPE, "recipe: must be a JSON object with \"steps\", got %s", got);
    }
    json_object_foreach(root, key, v) {
        if (list_index(TOP_FIELDS, key) < 0) {
            join(TOP_FIELDS, ", ", names, sizeof names);
            clean_text(key, k, sizeof k);
            MP_GOTO_IF(1, MP_ERECIPE, "%s: unknown field at the top of the recipe (known: %s)", k,
                       names);
        }
    }
    r = calloc(1, sizeof *r);
    MP_GOTO_IF(r == NULL, MP_ENOMEM, "out of memory parsing the recipe");
    r->format = MP_OUT_SAFETENSORS;
    if ((rc = parse_steps(json_object_get(root, "steps"), r, err)) < 0) {
        goto out;
    }
    if ((v = json_object_get(root, "select")) != NULL && (rc = parse_select(v, r, err)) < 0) {
        goto out;
    }
    if ((v = json_object_get(root, "output")) != NULL && (rc = parse_output(v, r, err)) < 0) {
        goto out;
    }
    if ((v = json_object_get(root, "evaluate")) != NULL &&
        (rc = mp__eval_block_parse(v, NULL, err)) < 0) {
        goto out;
    }
    *out = r;
    r = NULL;
out:
    mp_recipe_free(r);
    json_decref(root);
    return rc;
}

void mp_recipe_free(mp_recipe_t *r)
{
    if (r == NULL) {
        return;
    }
    for (size_t i = 0; i < r->n_include; i++) {
        free(r->include[i]);
    }
    for (size_t i = 0; i < r->n_exclude; i++) {
        free(r->exclude[i]);
    }
    free(r->include);
    free(r->exclude);
    free(r->steps);
    free(r);
}


static int matches_any(char *const *patterns, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (fnmatch(patterns[i], name, 0) == 0) {
            return 1;
        }
    }
    return 0;
}

char *mp__name_join(const char *name, const char *suffix)
{
    const size_t len = strlen(name), slen = strlen(suffix);
    char *s = malloc(len + slen + 1);

    if (s != NULL) {
        memcpy(s, name, len);
        memcpy(s + len, suffix, slen + 1);
    }
    return s;
}

int mp_recipe_selects(const mp_recipe_t *r, const mp_tensor_t *t)
{
    int64_t n = mp_tensor_elements(t);

    if (n <= 0) {
        return 0; /* nothing to compress */
    }
    if (r == NULL || !r->has_include) {
        if (!mp_dtype_is_float(t->dtype) || t->n_dims < 2) {
            return 0;
        }
    } else if (!matches_any(r->include, r->n_include, t->name)) {
        return 0;
    }
    if (r != NULL && (matches_any(r->exclude, r->n_exclude, t->name) || n < r->min_elements)) {
        return 0;
    }
    return 1;
}

const char *mp_recipe_output_format(const mp_recipe_t *r)
{
    return r != NULL && r->format == MP_OUT_MPZ ? "mpz" : "safetensors";
}

int mp_recipe_set_output_format(mp_recipe_t *r, const char *format, mp_errctx_t *err)
{
    MP_RETURN_IF(r == NULL || format == NULL, MP_EINVAL,
                 "mp_recipe_set_output_format: NULL argument");
    if (strcmp(format, "mpz") == 0) {
        r->format = MP_OUT_MPZ;
        return 0;
    }
    MP_RETURN_IF(strcmp(format, "safetensors") != 0, MP_EINVAL,
                 "output format '%s' is not one of safetensors, mpz", format);
    MP_RETURN_IF(r->has_huffman, MP_ERECIPE,
                 "output: steps[%zu].huffman writes the .mpz container, which safetensors cannot "
                 "hold",
                 r->n_steps - 1);
    MP_RETURN_IF(r->format == MP_OUT_MPZ, MP_ERECIPE,
                 "output: the recipe's output.format is 'mpz', not safetensors");
    return 0;
}

/* ---- plans: what the recipe does to one tensor ----------------------------------------- */

void mp__step_code(const mp_step_t *st, mp_dtype_t raw_dtype, mp_code_t *c)
{
    memset(c, 0, sizeof *c);
    c->kind = MP_CODE_RAW;
    c->dtype = raw_dtype;
    if (st == NULL) {
        return;
    }
    if (st->kind == MP_STEP_SHARE) {
        c->kind = MP_CODE_SHARE;
        c->clusters = st->share.clusters;
        return;
    }
    switch (st->quant.format) {
    case MP_QFMT_INT:
        c->kind = MP_CODE_INT;
        c->bits = st->quant.bits;
        c->asymmetric = st->quant.asymmetric;
        c->granularity = st->quant.granularity;
        c->group = st->quant.group_size;
        break;
    case MP_QFMT_BINARY:
    case MP_QFMT_TERNARY:
        c->kind = st->quant.format == MP_QFMT_BINARY ? MP_CODE_BINARY : MP_CODE_TERNARY;
        c->granularity = st->quant.granularity;
        break;
    case MP_QFMT_FP16:
        c->dtype = MP_DT_F16;
        break;
    case MP_QFMT_BF16:
        c->dtype = MP_DT_BF16;
        break;
    }
}

void mp__plan(const mp_recipe_t *r, const mp_tensor_t *t, mp_plan_t *p)
{
    mp_dtype_t raw = t->dtype;

    memset(p, 0, sizeof *p);
    for (size_t s = 0; s < r->n_steps; s++) {
        const mp_step_t *st = &r->steps[s];
        if (st->kind == MP_STEP_QUANTIZE || st->kind == MP_STEP_SHARE) {
            p->coding = st;
        } else if (st->kind == MP_STEP_LOWRANK) {
            p->lowrank = st;
        }
    }
    p->n_parts = 1;
    if (p->lowrank != NULL) {
        p->factored = t->n_dims >= 3 ? 2 : 1;
        p->n_parts = (size_t)p->factored + 1;
        /* factors are stored in the input's 16-bit type, or else in F32 */
        raw = t->dtype == MP_DT_F16 || t->dtype == MP_DT_BF16 ? t->dtype : MP_DT_F32;
        p->factor_dtype = raw;
    }
    p->part_suffix = mp__part_suffixes(p->factored);
    mp__step_code(p->coding, raw, &p->code);
}

/* ---- the check against a model ------------------------------------------------------------ */

/* "N tensors, e.g. 'a', 'b', 'c'" for a select that matched nothing. */
static void sample_names(const mp_model_t *m, char *buf, size_t cap)
{
    size_t used;
    char k[48];

    used = (size_t)snprintf(buf, cap, "%zu tensor%s", m->n_tensors, m->n_tensors == 1 ? "" : "s");
    for (size_t i = 0; i < m->n_tensors && i < 3 && used < cap; i++) {
        clean_text(m->tensors[i].name, k, sizeof k);
        int n = snprintf(buf + used, cap - used, "%s'%s'", i ? ", " : ", e.g. ", k);
        if (n < 0) {
            break;
        }
        used += (size_t)n;
    }
}

/* "256 x 784" */
static void shape_text(const mp_tensor_t *t, char *buf, size_t cap)
{
    size_t used = 0;

    buf[0] = '\0';
    for (int d = 0; d < t->n_dims && used < cap; d++) {
        int n = snprintf(buf + used, cap - used, "%s%" PRId64, d ? " x " : "", t->shape[d]);
        if (n < 0) {
            break;
        }
        used += (size_t)n;
    }
}

/* Whether each step can apply to tensor t (k: its cleaned name). */
static int check_steps(const mp_recipe_t *r, const mp_tensor_t *t, const char *k,
                       mp_errctx_t *err)
{
    const int64_t n = mp_tensor_elements(t);
    const int64_t rows = t->n_dims >= 2 ? t->shape[0] : 1, cols = n / rows;
    char shape[96];

    shape_text(t, shape, sizeof shape);
    for (size_t s = 0; s < r->n_steps; s++) {
        const mp_step_t *st = &r->steps[s];
        if (st->kind == MP_STEP_PRUNE && st->prune.structure == MP_STRUCT_CHANNEL) {
            MP_RETURN_IF(t->n_dims < 2, MP_ERECIPE,
                         "steps[%zu].prune.structure: 'channel' needs tensors of two or more "
                         "dims; tensor '%s' has %d",
                         s, k, t->n_dims);
        } else if (st->kind == MP_STEP_PRUNE && st->prune.structure != MP_STRUCT_NONE) {
            const int m = st->prune.structure == MP_STRUCT_2_4 ? 4 : 8;
            MP_RETURN_IF(cols % m != 0, MP_ERECIPE,
                         "steps[%zu].prune.structure: '%d:%d' needs rows whose length is a "
                         "multiple of %d; tensor '%s' (%s) has rows of %" PRId64,
                         s, m / 2, m, m, k, shape, cols);
        } else if (st->kind == MP_STEP_LOWRANK) {
            int64_t full;
            MP_RETURN_IF(t->n_dims < 2, MP_ERECIPE,
                         "steps[%zu].lowrank: needs tensors of two or more dims; tensor '%s' "
                         "has %d",
                         s, k, t->n_dims);
            /* Tucker-2 applies the rank to both channel modes */
            full = t->shape[0] < t->shape[1] ? t->shape[0] : t->shape[1];
            MP_RETURN_IF(st->lowrank.rule == MP_RANK_FIXED && st->lowrank.rank > full,
                         MP_ERECIPE,
                         "steps[%zu].lowrank.rank: %" PRId64 " is more than tensor '%s' (%s) "
                         "can have (%" PRId64 ")",
                         s, st->lowrank.rank, k, shape, full);
        }
    }
    return 0;
}

/* Every name the output will hold must be unique: the tensors kept as they are, and the stored
 * tensors of every selected one (mp__code_layout's suffixes on each part's name). names is an
 * empty model used as a set of names, owner[j] the input tensor behind its j-th name. */
static int check_names(const mp_recipe_t *r, const mp_model_t *m, mp_model_t *names,
                       size_t *owner, mp_errctx_t *err)
{
    static const int64_t zero_shape[1] = {0};
    static const int64_t probe[2] = {1, 1};
    char k[64], kn[96], ko[64];

    for (int pass = 0; pass < 2; pass++) {
        /* kept tensors first, so that a clash with one of them is named as such */
        for (size_t i = 0; i < m->n_tensors; i++) {
            const mp_tensor_t *t = &m->tensors[i];
            const int sel = mp_recipe_selects(r, t);
            mp_plan_t p;
            if (sel != pass) {
                continue;
            }
            mp__plan(r, t, &p);
            if (!sel) {
                /* kept as it is: one raw part under its own name */
                p.n_parts = 1;
                p.part_suffix = mp__part_suffixes(0);
                mp__step_code(NULL, MP_DT_F32, &p.code);
            }
            for (size_t part = 0; part < p.n_parts; part++) {
                mp_layout_t l;
                mp_code_t c = p.code;
                mp__code_resolve(&c, 2, probe);
                if (mp__code_layout(&c, 2, probe, &l) < 0) {
                    return mp__err_set(err, MP_EINTERNAL, "no layout for tensor '%s'", t->name);
                }
                for (int role = 0; role < MP_ROLE_COUNT; role++) {
                    char *name;
                    const mp_tensor_t *prev;
                    int rc;
                    if (l.role[role].suffix == NULL) {
                        continue;
                    }
                    name = mp__name_join(t->name, p.part_suffix[part]);
                    if (name != NULL) {
                        char *full = mp__name_join(name, l.role[role].suffix);
                        free(name);
                        name = full;
                    }
                    MP_RETURN_IF(name == NULL, MP_ENOMEM, "out of memory checking the recipe");
                    prev = mp_model_find(names, name);
                    if (prev != NULL) {
                        const mp_tensor_t *o = &m->tensors[owner[prev - names->tensors]];
                        clean_text(t->name, k, sizeof k);
                        clean_text(name, kn, sizeof kn);
                        clean_text(o->name, ko, sizeof ko);
                        free(name);
                        if (!mp_recipe_selects(r, o)) {
                            return mp__err_set(err, MP_ERECIPE,
                                               "select: tensor '%s' would be stored as '%s', but "
                                               "the model already has a tensor of that name",
                                               k, kn);
                        }
                        return mp__err_set(err, MP_ERECIPE,
                                           "select: tensors '%s' and '%s' would both be stored "
                                           "as '%s'; leave one out with select.exclude",
                                           ko, k, kn);
                    }
                    owner[names->n_tensors] = i;
                    rc = mp_model_add(names, name, MP_DT_F32, 1, zero_shape, NULL, 0, err);
                    free(name);
                    if (rc < 0) {
                        return rc;
                    }
                }
            }
        }
    }
    return 0;
}

int mp_recipe_check_model(const mp_recipe_t *r, const mp_model_t *m, mp_errctx_t *err)
{
    size_t n_sel = 0, *owner = NULL, n_names;
    mp_model_t *names = NULL;
    char buf[256], k[64];
    int rc = 0;

    MP_RETURN_IF(r == NULL || m == NULL, MP_EINVAL, "mp_recipe_check_model: NULL argument");
    /* a second run would overwrite the record of the first and make it impossible to unpack */
    MP_RETURN_IF(mp_model_get_meta(m, MP_META_KEY) != NULL, MP_EUNSUPPORTED,
                 "the model was already compressed by modelpress (metadata '%s'); unpack it "
                 "first",
                 MP_META_KEY);
    for (size_t i = 0; i < m->n_tensors; i++) {
        const mp_tensor_t *t = &m->tensors[i];
        if (!mp_recipe_selects(r, t)) {
            continue;
        }
        clean_text(t->name, k, sizeof k);
        MP_RETURN_IF(!mp_dtype_is_float(t->dtype), MP_ERECIPE,
                     "select.include: matches tensor '%s' of dtype %s; only float tensors (F32, "
                     "F16, BF16, F64) can be compressed",
                     k, mp_dtype_name(t->dtype));
        if ((rc = check_steps(r, t, k, err)) < 0) {
            return rc;
        }
        n_sel++;
    }
    if (n_sel == 0) {
        sample_names(m, buf, sizeof buf);
        return mp__err_set(err, MP_ERECIPE, "select matches no tensor of the model (%s)%s", buf,
                           r->has_include ? ""
                                          : "; without select.include only float tensors of two "
                                            "or more dims are compressed");
    }
    /* at most MP_ROLE_COUNT names for each of 3 parts of every tensor */
    MP_GOTO_IF(mp__mul_size(m->n_tensors, 3 * MP_ROLE_COUNT, &n_names), MP_ENOMEM,
               "too many tensors");
    names = mp_model_new();
    owner = malloc(n_names * sizeof *owner);
    MP_GOTO_IF(names == NULL || owner == NULL, MP_ENOMEM, "out of memory checking the recipe");
    rc = check_names(r, m, names, owner, err);
out:
    free(owner);
    mp_model_free(names);
    return rc;
}
