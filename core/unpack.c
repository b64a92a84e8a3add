/* unpack.c — the stored forms of compressed tensors, and restoring plain F32 from them.
 *
 * A compressed tensor is stored as one or more parts (the tensor itself, or its low-rank
 * factors), each under a code; mp__code_layout() says which tensors a part becomes and
 * mp__part_decode() turns them back into floats. The pipeline calls the same decoder on what it
 * is about to write, so the values it reports on are the values unpack restores, bit for bit;
 * the low-rank products are formed by the fixed loops below for the same reason (no BLAS, whose
 * order of additions may change with the machine).
 *
 * mp_model_unpack() reads the "modelpress" metadata record (versions 1 and 2), which lists every
 * compressed tensor with its original shape, its code and its factorization, and gives a model
 * with each of them restored as F32 under its own name, in the place of its first stored
 * tensor; every tensor the record does not claim is borrowed unchanged, in input order. The
 * input may come from anyone's file, so everything in the record is checked before it is used:
 * the shape against overflow, the rank against the shape, every stored tensor against the
 * layout the record implies (dtype, shape, byte count) and every value a decoder indexes with
 * (codebook indices, zero points). A lie is MP_EFORMAT naming the tensor, never a read out of
 * bounds.
 */
#include "methods_int.h"
#include "recipe_int.h"

#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REC "metadata '" MP_META_KEY "'"

/* ---- layouts ----------------------------------------------------------------------------- */

void mp__code_resolve(mp_code_t *c, int n_dims, const int64_t *shape)
{
    int64_t n = 1, rows = n_dims >= 2 ? shape[0] : 1;

    for (int d = 0; d < n_dims; d++) {
        n *= shape[d];
    }
    if ((c->kind == MP_CODE_INT || c->kind == MP_CODE_BINARY || c->kind == MP_CODE_TERNARY) &&
        c->granularity == MP_GRAN_CHANNEL && n_dims < 2) {
        c->granularity = MP_GRAN_TENSOR; /* no output axis: one scale */
    }
    if (c->kind == MP_CODE_INT && c->granularity == MP_GRAN_GROUP && rows > 0 &&
        c->group > (size_t)(n / rows)) {
        c->group = (size_t)(n / rows);
    }
}

static void set_role(mp_layout_t *l, int role, const char *suffix, mp_dtype_t dt, int n_dims,
                     const int64_t *shape)
{
    size_t bytes = mp_dtype_size(dt);

    l->role[role].suffix = suffix;
    l->role[role].dtype = dt;
    l->role[role].n_dims = n_dims;
    for (int d = 0; d < n_dims; d++) {
        l->role[role].shape[d] = shape[d];
        bytes *= (size_t)shape[d]; /* every shape here is a part of one that fits */
    }
    l->role[role].n_bytes = bytes;
    l->n_bytes += bytes;
}

int mp__code_layout(const mp_code_t *c, int n_dims, const int64_t *shape, mp_layout_t *l)
{
    int64_t n;
    int64_t scale_shape[2], one = 1, packed, nd = n_dims;
    int scale_dims = 1;

    memset(l, 0, sizeof *l);
    if (n_dims < 0 || n_dims > MP_MAX_DIMS) {
        return MP_EINVAL;
    }
    l->n_dims = n_dims;
    for (int d = 0; d < n_dims; d++) {
        l->shape[d] = shape[d];
    }
    /* F64 is the widest element: if it fits, every role below fits too */
    if (mp__shape_bytes(MP_DT_F64, n_dims, shape, &n, NULL) != 0) {
        return MP_EINVAL;
    }
    l->n = (size_t)n;
    l->rows = n_dims >= 2 ? (size_t)shape[0] : 1;
    l->cols = l->rows > 0 ? l->n / l->rows : 0;
    scale_shape[0] = c->granularity == MP_GRAN_TENSOR ? 1 : (int64_t)l->rows;
    if (c->granularity == MP_GRAN_GROUP) {
        if (c->group == 0) {
            return MP_EINVAL;
        }
        scale_shape[1] = (int64_t)((l->cols + c->group - 1) / c->group);
        scale_dims = 2;
    }
    switch (c->kind) {
    case MP_CODE_RAW:
        if (!mp_dtype_is_float(c->dtype)) {
            return MP_EINVAL;
        }
        set_role(l, MP_ROLE_MAIN, "", c->dtype, n_dims, shape);
        break;
    case MP_CODE_INT:
        if (c->bits < 2 || c->bits > 8) {
            return MP_EINVAL;
        }
        if (c->bits == 8) {
            set_role(l, MP_ROLE_MAIN, "", c->asymmetric ? MP_DT_U8 : MP_DT_I8, n_dims, shape);
        } else {
            packed = (int64_t)mp__packed_bytes(l->n, c->bits);
            set_role(l, MP_ROLE_MAIN, "_packed", MP_DT_U8, 1, &packed);
            set_role(l, MP_ROLE_SHAPE, "_shape", MP_DT_I64, 1, &nd);
        }
        set_role(l, MP_ROLE_SCALE, "_scale", MP_DT_F32, scale_dims, scale_shape);
        if (c->asymmetric) {
            set_role(l, MP_ROLE_ZERO_POINT, "_zero_point", MP_DT_I32, scale_dims, scale_shape);
        }
        break;
    case MP_CODE_BINARY:
    case MP_CODE_TERNARY:
        if (c->granularity == MP_GRAN_GROUP) {
            return MP_EINVAL;
        }
        packed = (int64_t)mp__packed_bytes(l->n, c->kind == MP_CODE_BINARY ? 1 : 2);
        set_role(l, MP_ROLE_MAIN, "_packed", MP_DT_U8, 1, &packed);
        set_role(l, MP_ROLE_SHAPE, "_shape", MP_DT_I64, 1, &nd);
        set_role(l, MP_ROLE_SCALE, "_scale", MP_DT_F32, 1, scale_shape);
        break;
    case MP_CODE_SHARE:
        if (c->clusters < 2 || c->clusters > 256) {
            return MP_EINVAL;
        }
        one = c->clusters;
        set_role(l, MP_ROLE_MAIN, "_indices", MP_DT_U8, n_dims, shape);
        set_role(l, MP_ROLE_CODEBOOK, "_codebook", MP_DT_F32, 1, &one);
        break;
    default:
        return MP_EINVAL;
    }
    return 0;
}

/* ---- decoding ------------------------------------------------------------------------------ */

/* n floats or int32s of a stored tensor copied out (its bytes may be unaligned in a file). */
static void *copy_out(const mp_tensor_t *t)
{
    void *p = malloc(t->n_bytes ? t->n_bytes : 1);

    if (p != NULL) {
        memcpy(p, t->data, t->n_bytes);
    }
    return p;
}

/* The floats of a scale or codebook tensor, every one finite; NULL with err set otherwise. */
static float *finite_floats(const char *name, const char *what, const mp_tensor_t *t,
                            mp_errctx_t *err)
{
    float *f = copy_out(t);
    const size_t n = t->n_bytes / sizeof(float);

    if (f == NULL) {
        mp__err_set(err, MP_ENOMEM, "out of memory decoding '%s'", name);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(f[i])) {
            mp__err_set(err, MP_EFORMAT, "tensor '%s': %s %zu is not finite", name, what, i);
            free(f);
            return NULL;
        }
    }
    return f;
}

static int decode_int(const char *name, const mp_code_t *c, const mp_layout_t *l,
                      const mp_tensor_t *const *t, float *out, mp_errctx_t *err)
{
    const int tensor = c->granularity == MP_GRAN_TENSOR;
    const size_t rows = tensor ? 1 : l->rows, cols = tensor ? l->n : l->cols;
    const size_t group = c->granularity == MP_GRAN_GROUP ? c->group : cols;
    const size_t n_scales = t[MP_ROLE_SCALE]->n_bytes / sizeof(float);
    const int32_t top = (1 << c->bits) - 1;
    uint8_t *codes = NULL;
    float *scales = NULL;
    int32_t *zps = NULL;
    const void *q = t[MP_ROLE_MAIN]->data;
    int rc = 0;

    scales = finite_floats(name, "scale", t[MP_ROLE_SCALE], err);
    if (scales == NULL) {
        return err != NULL ? err->code : MP_EFORMAT;
    }
    if (c->asymmetric) {
        zps = copy_out(t[MP_ROLE_ZERO_POINT]);
        MP_GOTO_IF(zps == NULL, MP_ENOMEM, "out of memory decoding '%s'", name);
        for (size_t g = 0; g < n_scales; g++) {
            MP_GOTO_IF(zps[g] < 0 || zps[g] > top, MP_EFORMAT,
                       "tensor '%s': zero point %zu is %" PRId32 ", outside 0..%" PRId32, name, g,
                       zps[g], top);
        }
    }
    if (c->bits < 8) {
        codes = malloc(l->n ? l->n : 1);
        MP_GOTO_IF(codes == NULL, MP_ENOMEM, "out of memory decoding '%s'", name);
        mp__unpack_bits(t[MP_ROLE_MAIN]->data, l->n, c->bits, codes);
        if (!c->asymmetric) {
            /* symmetric codes were stored offset by 2^(bits-1) */
            const int off = 1 << (c->bits - 1);
            int8_t *s = (int8_t *)codes;
            for (size_t i = 0; i < l->n; i++) {
                s[i] = (int8_t)((int)codes[i] - off);
            }
        }
        q = codes;
    }
    mp__dequant_affine(q, rows, cols, group, c->bits, c->asymmetric, scales, zps, out);
out:
    free(codes);
    free(zps);
    free(scales);
    return rc;
}

/* Binary and ternary: codes of 1 or 2 bits times a per-row (or per-tensor) alpha. */
static int decode_sign(const char *name, const mp_code_t *c, const mp_layout_t *l,
                       const mp_tensor_t *const *t, float *out, mp_errctx_t *err)
{
    const int ternary = c->kind == MP_CODE_TERNARY;
    const size_t cols = c->granularity == MP_GRAN_TENSOR ? l->n : l->cols;
    uint8_t *codes = malloc(l->n ? l->n : 1);
    float *alphas = NULL;
    int rc = 0;

    MP_GOTO_IF(codes == NULL, MP_ENOMEM, "out of memory decoding '%s'", name);
    alphas = finite_floats(name, "alpha", t[MP_ROLE_SCALE], err);
    if (alphas == NULL) {
        rc = err != NULL ? err->code : MP_EFORMAT;
        goto out;
    }
    mp__unpack_bits(t[MP_ROLE_MAIN]->data, l->n, ternary ? 2 : 1, codes);
    for (size_t i = 0; i < l->n; i++) {
        const float a = alphas[cols ? i / cols : 0];
        if (!ternary) {
            out[i] = codes[i] ? a : -a;
            continue;
        }
        MP_GOTO_IF(codes[i] > 2, MP_EFORMAT, "tensor '%s': ternary code %zu is 3", name, i);
        out[i] = codes[i] == 1 ? 0.0f : codes[i] == 2 ? a : -a;
    }
out:
    free(alphas);
    free(codes);
    return rc;
}

static int decode_share(const char *name, const mp_code_t *c, const mp_layout_t *l,
                        const mp_tensor_t *const *t, float *out, mp_errctx_t *err)
{
    const uint8_t *idx = t[MP_ROLE_MAIN]->data;
    float *book = finite_floats(name, "codebook entry", t[MP_ROLE_CODEBOOK], err);
    int rc = 0;

    if (book == NULL) {
        return err != NULL ? err->code : MP_EFORMAT;
    }
    for (size_t i = 0; i < l->n; i++) {
        MP_GOTO_IF(idx[i] >= c->clusters, MP_EFORMAT,
                   "tensor '%s': index %zu is %d, past the codebook of %d entries", name, i,
                   idx[i], c->clusters);
        out[i] = book[idx[i]];
    }
out:
    free(book);
    return rc;
}

int mp__part_decode(const char *name, const mp_code_t *c, const mp_layout_t *l,
                    const mp_tensor_t *const *t, float *out, mp_errctx_t *err)
{
    mp_errctx_t e = {0};
    int rc;

    if (l->role[MP_ROLE_SHAPE].suffix != NULL) {
        /* the _shape companion repeats the part's shape: it must not say otherwise */
        for (int d = 0; d < l->n_dims; d++) {
            int64_t dim;
            memcpy(&dim, (const unsigned char *)t[MP_ROLE_SHAPE]->data + d * sizeof dim,
                   sizeof dim);
            MP_RETURN_IF(dim != l->shape[d], MP_EFORMAT,
                         "tensor '%s_shape': dim %d is %" PRId64 ", but the part is %" PRId64,
                         name, d, dim, l->shape[d]);
        }
    }
    switch (c->kind) {
    case MP_CODE_RAW:
        rc = mp__tensor_to_f32(t[MP_ROLE_MAIN], out, &e);
        MP_RETURN_IF(rc < 0, MP_EFORMAT, "tensor '%s': %s", name, e.msg);
        return 0;
    case MP_CODE_INT:
        return decode_int(name, c, l, t, out, err);
    case MP_CODE_BINARY:
    case MP_CODE_TERNARY:
        return decode_sign(name, c, l, t, out, err);
    case MP_CODE_SHARE:
        return decode_share(name, c, l, t, out, err);
    }
    return mp__err_set(err, MP_EINTERNAL, "tensor '%s': unknown code", name);
}

/* ---- products of factors ------------------------------------------------------------------- */

void mp__lowrank_expand(const float *a, const float *b, size_t m, size_t r, size_t n, float *w)
{
    /* row i of w accumulates a[i][k] * row k of b for k = 0, 1, ... in that order: every
     * element sees the same sequence of float operations however the loop is vectorized */
    for (size_t i = 0; i < m; i++) {
        float *row = w + i * n;
        memset(row, 0, n * sizeof *row);
        for (size_t k = 0; k < r; k++) {
            const float aik = a[i * r + k];
            const float *brow = b + k * n;
            for (size_t j = 0; j < n; j++) {
                row[j] += aik * brow[j];
            }
        }
    }
}

int mp__tucker2_expand(const float *u_out, const float *core, const float *u_in, size_t o,
                       size_t i, size_t s, size_t r_out, size_t r_in, float *w, mp_errctx_t *err)
{
    size_t n_t;
    float *t;

    /* t[a][j][x] = sum_b u_in[b][j] core[a][b][x], then w = u_out t (as an o x (i s) product) */
    MP_RETURN_IF(mp__mul_size(r_out, i, &n_t) || mp__mul_size(n_t, s, &n_t) ||
                     mp__mul_size(n_t, sizeof *t, &n_t),
                 MP_ENOMEM, "Tucker-2 product too large");
    t = malloc(n_t ? n_t : 1);
    MP_RETURN_IF(t == NULL, MP_ENOMEM, "out of memory forming a Tucker-2 product");
    for (size_t a = 0; a < r_out; a++) {
        float *ta = t + a * i * s;
        memset(ta, 0, i * s * sizeof *ta);
        for (size_t b = 0; b < r_in; b++) {
            const float *cab = core + (a * r_in + b) * s;
            for (size_t j = 0; j < i; j++) {
                const float u = u_in[b * i + j];
                float *tj = ta + j * s;
                for (size_t x = 0; x < s; x++) {
                    tj[x] += u * cab[x];
                }
            }
        }
    }
    mp__lowrank_expand(u_out, t, o, r_out, i * s, w);
    free(t);
    return 0;
}

/* ---- the record ------------------------------------------------------------------------------ */

static const char *const KIND_NAMES[] = {"raw", "int", "binary", "ternary", "share", NULL};
static const char *const GRAN_NAMES[] = {"channel", "tensor", "group", NULL};

json_t *mp__code_json(const mp_code_t *c)
{
    json_t *j = json_pack("{s:s}", "kind", KIND_NAMES[c->kind]);
    int bad = j == NULL;

    switch (c->kind) {
    case MP_CODE_RAW:
        bad = bad || json_object_set_new(j, "dtype", json_string(mp_dtype_name(c->dtype)));
        break;
    case MP_CODE_INT:
        bad = bad || json_object_set_new(j, "bits", json_integer(c->bits)) ||
              json_object_set_new(j, "scheme",
                                  json_string(c->asymmetric ? "asymmetric" : "symmetric"));
        /* integer codes have a granularity like binary and ternary */
        __attribute__((fallthrough));
    case MP_CODE_BINARY:
    case MP_CODE_TERNARY:
        bad = bad || json_object_set_new(j, "granularity",
                                         json_string(GRAN_NAMES[c->granularity]));
        if (c->granularity == MP_GRAN_GROUP) {
            bad = bad || json_object_set_new(j, "group_size", json_integer((json_int_t)c->group));
        }
        break;
    case MP_CODE_SHARE:
        bad = bad || json_object_set_new(j, "clusters", json_integer(c->clusters));
        break;
    }
    if (bad) {
        json_decref(j);
        return NULL;
    }
    return j;
}

static int list_at(const char *const *list, const char *s)
{
    for (int i = 0; s != NULL && list[i] != NULL; i++) {
        if (strcmp(list[i], s) == 0) {
            return i;
        }
    }
    return -1;
}

/* An integer member of o in [lo, hi], or -1 (caller reports). */
static int get_int(const json_t *o, const char *key, json_int_t lo, json_int_t hi,
                   json_int_t *out)
{
    const json_t *v = json_object_get(o, key);

    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        return -1;
    }
    *out = json_integer_value(v);
    return 0;
}

static int parse_code(const char *name, const json_t *j, mp_code_t *c, mp_errctx_t *err)
{
    const int kind = list_at(KIND_NAMES, json_string_value(json_object_get(j, "kind")));
    json_int_t v = 0;
    int dt, gran;

    memset(c, 0, sizeof *c);
    MP_RETURN_IF(!json_is_object(j) || kind < 0, MP_EFORMAT,
                 REC ": tensor '%s': \"code\" must be an object with a kind of raw, int, binary, "
                 "ternary or share",
                 name);
    c->kind = (mp_code_kind_t)kind;
    switch (c->kind) {
    case MP_CODE_RAW:
        dt = json_is_string(json_object_get(j, "dtype"))
                 ? mp_dtype_from_name(json_string_value(json_object_get(j, "dtype")))
                 : -1;
        MP_RETURN_IF(dt < 0 || !mp_dtype_is_float((mp_dtype_t)dt), MP_EFORMAT,
                     REC ": tensor '%s': a raw code needs a float dtype", name);
        c->dtype = (mp_dtype_t)dt;
        return 0;
    case MP_CODE_SHARE:
        MP_RETURN_IF(get_int(j, "clusters", 2, 256, &v) < 0, MP_EFORMAT,
                     REC ": tensor '%s': clusters must be an integer from 2 to 256", name);
        c->clusters = (int)v;
        return 0;
    default:
        break;
    }
    gran = list_at(GRAN_NAMES, json_string_value(json_object_get(j, "granularity")));
    MP_RETURN_IF(gran < 0 || (gran == MP_GRAN_GROUP && c->kind != MP_CODE_INT), MP_EFORMAT,
                 REC ": tensor '%s': unknown granularity for a %s code", name, KIND_NAMES[kind]);
    c->granularity = (mp_quant_gran_t)gran;
    if (c->kind != MP_CODE_INT) {
        return 0;
    }
    MP_RETURN_IF(get_int(j, "bits", 2, 8, &v) < 0, MP_EFORMAT,
                 REC ": tensor '%s': bits must be an integer from 2 to 8", name);
    c->bits = (int)v;
    c->asymmetric = list_at((const char *const[]){"symmetric", "asymmetric", NULL},
                            json_string_value(json_object_get(j, "scheme")));
    MP_RETURN_IF(c->asymmetric < 0, MP_EFORMAT,
                 REC ": tensor '%s': scheme must be symmetric or asymmetric", name);
    if (gran == MP_GRAN_GROUP) {
        MP_RETURN_IF(get_int(j, "group_size", 1, INT64_MAX, &v) < 0, MP_EFORMAT,
                     REC ": tensor '%s': group_size must be a positive integer", name);
        c->group = (size_t)v;
    }
    return 0;
}

/* One compressed tensor as the record describes it. */
typedef struct entry {
    const char *name;            /* borrowed from the record's JSON */
    int n_dims;
    int64_t shape[MP_MAX_DIMS];
    size_t n;
    mp_code_t code;              /* unresolved when factored (each factor resolves its own) */
    int factored;                /* 0; 1 SVD factors u, v; 2 Tucker-2 u_out, core, u_in */
    size_t r_out, r_in;          /* SVD: r_out is the rank */
} entry_t;

static int parse_shape(const char *name, const json_t *a, entry_t *e, mp_errctx_t *err)
{
    int64_t n;
    size_t i;
    json_t *d;

    MP_RETURN_IF(!json_is_array(a) || json_array_size(a) > MP_MAX_DIMS, MP_EFORMAT,
                 REC ": tensor '%s': \"shape\" must be an array of at most %d dims", name,
                 MP_MAX_DIMS);
    e->n_dims = (int)json_array_size(a);
    json_array_foreach(a, i, d) {
        MP_RETURN_IF(!json_is_integer(d) || json_integer_value(d) < 1, MP_EFORMAT,
                     REC ": tensor '%s': dim %zu of \"shape\" is not a positive integer", name,
                     i);
        e->shape[i] = json_integer_value(d);
    }
    MP_RETURN_IF(mp__shape_bytes(MP_DT_F64, e->n_dims, e->shape, &n, NULL) != 0, MP_EFORMAT,
                 REC ": tensor '%s': \"shape\" is too large", name);
    e->n = (size_t)n;
    return 0;
}

static int parse_lowrank(const char *name, const json_t *j, entry_t *e, mp_errctx_t *err)
{
    const char *dec = json_string_value(json_object_get(j, "decomposition"));
    const json_t *rank = json_object_get(j, "rank");

    if (dec != NULL && strcmp(dec, "svd") == 0) {
        MP_RETURN_IF(e->n_dims != 2, MP_EFORMAT,
                     REC ": tensor '%s': SVD factors need a shape of 2 dims", name);
        MP_RETURN_IF(!json_is_integer(rank) || json_integer_value(rank) < 1 ||
                         json_integer_value(rank) > (e->shape[0] < e->shape[1] ? e->shape[0]
                                                                                : e->shape[1]),
                     MP_EFORMAT, REC ": tensor '%s': the rank must be from 1 to the smaller dim",
                     name);
        e->factored = 1;
        e->r_out = (size_t)json_integer_value(rank);
        return 0;
    }
    MP_RETURN_IF(dec == NULL || strcmp(dec, "tucker2") != 0, MP_EFORMAT,
                 REC ": tensor '%s': decomposition must be svd or tucker2", name);
    MP_RETURN_IF(e->n_dims < 3, MP_EFORMAT,
                 REC ": tensor '%s': Tucker-2 factors need a shape of 3 or more dims", name);
    MP_RETURN_IF(!json_is_array(rank) || json_array_size(rank) != 2 ||
                     !json_is_integer(json_array_get(rank, 0)) ||
                     !json_is_integer(json_array_get(rank, 1)) ||
                     json_integer_value(json_array_get(rank, 0)) < 1 ||
                     json_integer_value(json_array_get(rank, 0)) > e->shape[0] ||
                     json_integer_value(json_array_get(rank, 1)) < 1 ||
                     json_integer_value(json_array_get(rank, 1)) > e->shape[1],
                 MP_EFORMAT,
                 REC ": tensor '%s': a Tucker-2 rank must be [r_out, r_in] within the channel "
                 "dims",
                 name);
    e->factored = 2;
    e->r_out = (size_t)json_integer_value(json_array_get(rank, 0));
    e->r_in = (size_t)json_integer_value(json_array_get(rank, 1));
    return 0;
}

/* Read one entry of the record; version 1 entries take their shape from the stored tensor. */
static int parse_entry(const mp_model_t *in, int version, const char *name, const json_t *spec,
                       entry_t *e, mp_errctx_t *err)
{
    const json_t *lr;
    json_t *code;
    int rc;

    memset(e, 0, sizeof *e);
    e->name = name;
    MP_RETURN_IF(!json_is_object(spec), MP_EFORMAT, REC ": tensor '%s': not an object", name);
    if (version == 1) {
        /* {"quantize": {"bits": 8, "scheme": "symmetric", "granularity": ...}} or pruned */
        const mp_tensor_t *t = mp_model_find(in, name);
        const json_t *q = json_object_get(spec, "quantize");
        MP_RETURN_IF(t == NULL, MP_EFORMAT, REC " lists tensor '%s', which the model does not have",
                     name);
        e->n_dims = t->n_dims;
        memcpy(e->shape, t->shape, sizeof e->shape);
        e->n = (size_t)mp_tensor_elements(t);
        if (q == NULL) {
            e->code.kind = MP_CODE_RAW;
            e->code.dtype = t->dtype;
            MP_RETURN_IF(!mp_dtype_is_float(t->dtype), MP_EFORMAT,
                         REC ": tensor '%s' is recorded as pruned, but it is %s", name,
                         mp_dtype_name(t->dtype));
            return 0;
        }
        /* a version 1 quantize record is a version 2 int code without the kind */
        code = json_deep_copy(q);
        rc = code == NULL || json_object_set_new(code, "kind", json_string("int")) < 0
                 ? mp__err_set(err, MP_ENOMEM, "out of memory reading " REC)
                 : parse_code(name, code, &e->code, err);
        json_decref(code);
        return rc;
    }
    if ((rc = parse_shape(name, json_object_get(spec, "shape"), e, err)) < 0 ||
        (rc = parse_code(name, json_object_get(spec, "code"), &e->code, err)) < 0) {
        return rc;
    }
    lr = json_object_get(spec, "lowrank");
    if (lr != NULL && (rc = parse_lowrank(name, lr, e, err)) < 0) {
        return rc;
    }
    return 0;
}

/* ---- parts ----------------------------------------------------------------------------------- */

const char *const *mp__part_suffixes(int factored)
{
    static const char *const single[] = {""}, *const svd[] = {"_u", "_v"},
                             *const tucker[] = {"_u_out", "_core", "_u_in"};

    return factored == 2 ? tucker : factored == 1 ? svd : single;
}

size_t mp__part_shapes(int factored, int n_dims, const int64_t *shape, size_t r_out,
                       size_t r_in, int *part_dims, int64_t (*part_shape)[MP_MAX_DIMS])
{
    if (factored == 0) {
        part_dims[0] = n_dims;
        memcpy(part_shape[0], shape, (size_t)n_dims * sizeof *shape);
        return 1;
    }
    if (factored == 1) {
        /* w [m, n] ~ u [m, r] v [r, n] */
        part_dims[0] = part_dims[1] = 2;
        part_shape[0][0] = shape[0];
        part_shape[0][1] = (int64_t)r_out;
        part_shape[1][0] = (int64_t)r_out;
        part_shape[1][1] = shape[1];
        return 2;
    }
    /* w [o, i, k...] ~ core [r_out, r_in, k...] x1 u_out [o, r_out] x2 u_in [r_in, i] */
    part_dims[0] = part_dims[2] = 2;
    part_dims[1] = n_dims;
    part_shape[0][0] = shape[0];
    part_shape[0][1] = (int64_t)r_out;
    part_shape[1][0] = (int64_t)r_out;
    part_shape[1][1] = (int64_t)r_in;
    memcpy(&part_shape[1][2], &shape[2], (size_t)(n_dims - 2) * sizeof *shape);
    part_shape[2][0] = (int64_t)r_in;
    part_shape[2][1] = shape[1];
    return 3;
}

/* ---- unpack ---------------------------------------------------------------------------------- */

/* What becomes of each input tensor. */
enum role { KEEP = 0, DROP, ANCHOR, BORROW };

typedef struct unpack {
    const mp_model_t *in;
    enum role *role;
    size_t *owner;               /* for DROP, ANCHOR, BORROW: the entry that claimed it */
    entry_t *entries;
    float **restored;            /* per entry, NULL for BORROW */
    unsigned char *placed;       /* per entry: its ANCHOR is chosen */
    json_t *json;                /* the record, which the entries' names point into */
} unpack_t;

/* "F32 [3, 4]" */
static void shape_text(mp_dtype_t dt, int n_dims, const int64_t *shape, char *buf, size_t cap)
{
    size_t used = (size_t)snprintf(buf, cap, "%s [", mp_dtype_name(dt));

    for (int d = 0; d < n_dims && used < cap; d++) {
        used += (size_t)snprintf(buf + used, cap - used, "%s%" PRId64, d ? ", " : "", shape[d]);
    }
    if (used < cap) {
        snprintf(buf + used, cap - used, "]");
    }
}

/* Find, check against the layout and claim the stored tensors of one part of entry ei. */
static int claim_part(unpack_t *u, size_t ei, const char *part_name, const mp_layout_t *l,
                      const mp_tensor_t **t, mp_errctx_t *err)
{
    int rc = 0;

    for (int role = 0; role < MP_ROLE_COUNT; role++) {
        const mp_tensor_t *s;
        char *name;
        size_t si;
        int same;
        t[role] = NULL;
        if (l->role[role].suffix == NULL) {
            continue;
        }
        name = mp__name_join(part_name, l->role[role].suffix);
        MP_RETURN_IF(name == NULL, MP_ENOMEM, "out of memory unpacking '%s'", part_name);
        s = mp_model_find(u->in, name);
        same = s != NULL && s->dtype == l->role[role].dtype &&
               s->n_dims == l->role[role].n_dims && s->n_bytes == l->role[role].n_bytes &&
               memcmp(s->shape, l->role[role].shape, (size_t)s->n_dims * sizeof *s->shape) == 0;
        if (s == NULL) {
            rc = mp__err_set(err, MP_EFORMAT, REC ": tensor '%s' is stored as '%s', which is missing",
                             u->entries[ei].name, name);
        } else if (!same) {
            char want[160], got[160];
            shape_text(l->role[role].dtype, l->role[role].n_dims, l->role[role].shape, want,
                       sizeof want);
            shape_text(s->dtype, s->n_dims, s->shape, got, sizeof got);
            rc = mp__err_set(err, MP_EFORMAT, REC ": '%s' must be %s to store '%s', not %s", name,
                             want, u->entries[ei].name, got);
        } else if (u->role[(si = (size_t)(s - u->in->tensors))] != KEEP) {
            rc = mp__err_set(err, MP_EFORMAT, REC ": tensor '%s' is claimed twice", name);
        } else {
            u->role[si] = DROP;
            u->owner[si] = ei;
            t[role] = s;
        }
        free(name);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

/* Claim and decode every part of entry ei into u->restored[ei]. */
static int restore_entry(unpack_t *u, size_t ei, mp_errctx_t *err)
{
    const entry_t *e = &u->entries[ei];
    const char *const *suffix = mp__part_suffixes(e->factored);
    int part_dims[3];
    int64_t part_shape[3][MP_MAX_DIMS];
    float *parts[3] = {NULL, NULL, NULL};
    const size_t n_parts = mp__part_shapes(e->factored, e->n_dims, e->shape, e->r_out, e->r_in,
                                           part_dims, part_shape);
    char *part_name = NULL;
    int rc = 0;

    for (size_t p = 0; p < n_parts; p++) {
        const mp_tensor_t *t[MP_ROLE_COUNT];
        mp_layout_t l;
        mp_code_t c = e->code;

        mp__code_resolve(&c, part_dims[p], part_shape[p]);
        MP_GOTO_IF(mp__code_layout(&c, part_dims[p], part_shape[p], &l) < 0, MP_EFORMAT,
                   REC ": tensor '%s': no layout for its code", e->name);
        free(part_name);
        part_name = mp__name_join(e->name, suffix[p]);
        MP_GOTO_IF(part_name == NULL, MP_ENOMEM, "out of memory unpacking '%s'", e->name);
        if ((rc = claim_part(u, ei, part_name, &l, t, err)) < 0) {
            goto out;
        }
        if (e->factored == 0 && c.kind == MP_CODE_RAW && c.dtype == MP_DT_F32) {
            /* already what unpack gives: passed through without a copy */
            u->role[t[MP_ROLE_MAIN] - u->in->tensors] = BORROW;
            goto out;
        }
        parts[p] = malloc(l.n * sizeof(float));
        MP_GOTO_IF(parts[p] == NULL, MP_ENOMEM, "out of memory unpacking '%s'", e->name);
        if ((rc = mp__part_decode(part_name, &c, &l, t, parts[p], err)) < 0) {
            goto out;
        }
    }
    if (e->factored == 0) {
        u->restored[ei] = parts[0];
        parts[0] = NULL;
        goto out;
    }
    u->restored[ei] = malloc(e->n * sizeof(float));
    MP_GOTO_IF(u->restored[ei] == NULL, MP_ENOMEM, "out of memory unpacking '%s'", e->name);
    if (e->factored == 1) {
        mp__lowrank_expand(parts[0], parts[1], (size_t)e->shape[0], e->r_out,
                           (size_t)e->shape[1], u->restored[ei]);
    } else {
        rc = mp__tucker2_expand(parts[0], parts[1], parts[2], (size_t)e->shape[0],
                                (size_t)e->shape[1], e->n / (size_t)(e->shape[0] * e->shape[1]),
                                e->r_out, e->r_in, u->restored[ei], err);
    }
out:
    free(part_name);
    for (int p = 0; p < 3; p++) {
        free(parts[p]);
    }
    return rc;
}

/* Read the record and settle the role of every input tensor, restoring values on the way. */
static int plan(unpack_t *u, const char *record, mp_errctx_t *err)
{
    json_t *root, *tensors, *spec;
    json_error_t jerr;
    const char *name;
    json_int_t version;
    size_t ei = 0;
    int rc = 0;

    root = json_loads(record, JSON_REJECT_DUPLICATES, &jerr);
    MP_GOTO_IF(root == NULL, MP_EFORMAT, REC " is not valid JSON: %s", jerr.text);
    version = json_integer_value(json_object_get(root, "version"));
    MP_GOTO_IF(version != 1 && version != MP_RECORD_VERSION, MP_EUNSUPPORTED,
               REC ": only versions 1 and %d are understood by this version", MP_RECORD_VERSION);
    tensors = json_object_get(root, "tensors");
    MP_GOTO_IF(!json_is_object(tensors), MP_EFORMAT, REC ": \"tensors\" must be an object");
    u->entries = calloc(json_object_size(tensors) + 1, sizeof *u->entries);
    u->restored = calloc(json_object_size(tensors) + 1, sizeof *u->restored);
    u->placed = calloc(json_object_size(tensors) + 1, sizeof *u->placed);
    MP_GOTO_IF(u->entries == NULL || u->restored == NULL || u->placed == NULL, MP_ENOMEM,
               "out of memory unpacking");

    json_object_foreach(tensors, name, spec) {
        if ((rc = parse_entry(u->in, (int)version, name, spec, &u->entries[ei], err)) < 0 ||
            (rc = restore_entry(u, ei, err)) < 0) {
            goto out;
        }
        ei++;
    }
    for (size_t e = 0; e < ei; e++) {
        /* a restored tensor takes its name: no tensor passed through may have it */
        const mp_tensor_t *own = mp_model_find(u->in, u->entries[e].name);
        MP_GOTO_IF(own != NULL && u->role[own - u->in->tensors] == KEEP, MP_EFORMAT,
                   REC " lists tensor '%s' as compressed, but the model also has a tensor of "
                   "that name that is not part of it",
                   u->entries[e].name);
    }
    /* each restored tensor goes where the first of its stored tensors was */
    for (size_t i = 0; i < u->in->n_tensors; i++) {
        if (u->role[i] == DROP && u->restored[u->owner[i]] != NULL && !u->placed[u->owner[i]]) {
            u->role[i] = ANCHOR;
            u->placed[u->owner[i]] = 1;
        }
    }
out:
    u->json = root; /* the entries' names point into it */
    return rc;
}

int mp_model_unpack(const mp_model_t *in, mp_model_t **out, mp_errctx_t *err)
{
    const char *record;
    unpack_t u = {.in = in};
    mp_model_t *m = NULL;
    const size_t n_alloc = in != NULL && in->n_tensors ? in->n_tensors : 1;
    size_t n_entries = 0;
    int rc = 0;

    if (out != NULL) {
        *out = NULL;
    }
    MP_RETURN_IF(in == NULL || out == NULL, MP_EINVAL, "mp_model_unpack: NULL argument");
    record = mp_model_get_meta(in, MP_META_KEY);
    MP_RETURN_IF(record == NULL, MP_EINVAL,
                 "the model has no '%s' metadata: it was not written by modelpress compress, so "
                 "there is nothing to unpack",
                 MP_META_KEY);

    u.role = calloc(n_alloc, sizeof *u.role);
    u.owner = calloc(n_alloc, sizeof *u.owner);
    MP_GOTO_IF(u.role == NULL || u.owner == NULL, MP_ENOMEM, "out of memory unpacking");
    rc = plan(&u, record, err);
    n_entries = u.json != NULL ? json_object_size(json_object_get(u.json, "tensors")) : 0;
    if (rc < 0) {
        goto out;
    }

    m = mp_model_new();
    MP_GOTO_IF(m == NULL, MP_ENOMEM, "out of memory unpacking");
    for (size_t i = 0; i < in->n_meta; i++) {
        if (strcmp(in->meta_keys[i], MP_META_KEY) != 0) {
            MP_GOTO_IF(mp_model_set_meta(m, in->meta_keys[i], in->meta_values[i]) < 0,
                       MP_ENOMEM, "out of memory copying metadata");
        }
    }
    for (size_t i = 0; i < in->n_tensors; i++) {
        const mp_tensor_t *t = &in->tensors[i];
        const entry_t *e = &u.entries[u.owner[i]];
        if (u.role[i] == DROP) {
            continue;
        }
        if (u.role[i] != ANCHOR) {
            rc = mp_model_add_ref(m, t->name, t->dtype, t->n_dims, t->shape, t->data, t->n_bytes,
                                  err);
        } else {
            rc = mp_model_add_take(m, e->name, MP_DT_F32, e->n_dims, e->shape,
                                   u.restored[u.owner[i]], e->n * sizeof(float), err);
            u.restored[u.owner[i]] = NULL; /* taken even on failure */
        }
        if (rc < 0) {
            goto out;
        }
    }
    *out = m;
    m = NULL;
out:
    for (size_t e = 0; u.restored != NULL && e < n_entries; e++) {
        free(u.restored[e]);
    }
    free(u.restored);
    free(u.entries);
    free(u.placed);
    free(u.owner);
    free(u.role);
    json_decref(u.json);
    mp_model_free(m);
    return rc;
}
