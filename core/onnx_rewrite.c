/* onnx_rewrite.c — writing what the recipe pipeline did into an ONNX graph, and describing an
 * ONNX model for `modelpress inspect`.
 *
 * mp_onnx_apply() reads the compressed model's "modelpress" record (versions 1 and 2: see
 * core/unpack.c) and, for each compressed weight W (an initializer or a Constant's value, in the
 * main graph or a subgraph), replaces the tensor that held W by the tensors the pipeline stored
 * and by nodes that compute W from them, so that every consumer of W reads the same name as
 * before and nothing else in the graph changes (unknown operators and domains included):
 * - int8 codes: an INT8 (UINT8 when asymmetric) tensor "W_quantized", "W_scale" and
 *   "W_zero_point", then DequantizeLinear (opset >= 13: per-axis along the axis the scales run
 *   on; opset 10-12: per tensor only) or, where DequantizeLinear cannot say it, Cast + (Sub) +
 *   Mul with the scales shaped to broadcast along that axis;
 * - raw codes in another float type (fp16/bf16): that tensor, then Cast back;
 * - codebook indices: UINT8 "W_indices" and F32 "W_codebook", then Cast(indices to INT32) and
 *   Gather(codebook, indices), which has W's shape already (no Reshape needed);
 * - pruned-only weights: W itself, zeros stored densely (raw_data) — unless whole output
 *   channels of a Conv are zero and reach only another Conv: then they are removed (see
 *   "structured pruning" below) and reported in the metadata key "modelpress.channels";
 * - a value that was not F32 is Cast back to its type at the end.
 * New initializers take the place of W's initializer, their nodes go first in W's graph (they
 * read initializers only, so the graph stays topologically sorted); a Constant's replacement
 * goes where the Constant was. W is taken off the graph's inputs (IR < 4 lists initializers as
 * inputs; there the new initializers are listed instead). New names are W plus a suffix, made
 * unique against every name in the model. The edits go to a second tree read from the input's
 * own bytes (borrowed: nothing of the input is copied), which is then encoded and read back as
 * the output model; so the peak is the input plus one output, and the output owns its bytes.
 */
#include "onnx_int.h"
#include "recipe_int.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REC "metadata '" MP_META_KEY "'"
#define MAX_NEW 160

/* ---- names ------------------------------------------------------------------------------- */

/* Every value name in the model, for making new ones unique: a hash set of borrowed strings
 * (from the tree) plus owned ones (names made here). */
typedef struct names {
    char **slot;
    size_t n_slots, n;
    char **owned;
    size_t n_owned, cap_owned;
} names_t;

static uint64_t hash_str(const char *s)
{
    uint64_t h = 0xcbf29ce484222325u;

    for (; *s; s++) {
        h = (h ^ (unsigned char)*s) * 0x100000001b3u;
    }
    return h;
}

static int names_has(const names_t *ns, const char *s)
{
    if (ns->n_slots == 0) {
        return 0;
    }
    for (size_t i = hash_str(s) & (ns->n_slots - 1); ns->slot[i]; i = (i + 1) & (ns->n_slots - 1)) {
        if (strcmp(ns->slot[i], s) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Add s (owned by the set from now on, freed on failure too). */
static int names_add_take(names_t *ns, char *s)
{
    if (s == NULL) {
        return MP_ENOMEM;
    }
    if (names_has(ns, s)) {
        free(s);
        return 0;
    }
    if (ns->n_owned == ns->cap_owned) {
        const size_t cap = ns->cap_owned ? ns->cap_owned * 2 : 64;
        char **o = realloc(ns->owned, cap * sizeof *o);
        if (o == NULL) {
            free(s);
            return MP_ENOMEM;
        }
        ns->owned = o;
        ns->cap_owned = cap;
    }
    ns->owned[ns->n_owned++] = s;
    if ((ns->n + 1) * 2 > ns->n_slots) {
        const size_t n_slots = ns->n_slots ? ns->n_slots * 2 : 1024;
        char **slot = calloc(n_slots, sizeof *slot);
        if (slot == NULL) {
            return MP_ENOMEM;
        }
        for (size_t i = 0; i < ns->n_slots; i++) {
            if (ns->slot[i] != NULL) {
                size_t j = hash_str(ns->slot[i]) & (n_slots - 1);
                while (slot[j] != NULL) {
                    j = (j + 1) & (n_slots - 1);
                }
                slot[j] = ns->slot[i];
            }
        }
        free(ns->slot);
        ns->slot = slot;
        ns->n_slots = n_slots;
    }
    size_t i = hash_str(s) & (ns->n_slots - 1);
    while (ns->slot[i] != NULL) {
        i = (i + 1) & (ns->n_slots - 1);
    }
    ns->slot[i] = s;
    ns->n++;
    return 0;
}

static void names_cleanup(names_t *ns)
{
    for (size_t i = 0; i < ns->n_owned; i++) {
        free(ns->owned[i]);
    }
    free(ns->owned);
    free(ns->slot);
}

/* Every name a graph (and its subgraphs) defines or reads. */
static int collect_names(names_t *ns, const mp__pb_msg_t *g)
{
    int rc = 0;

    for (size_t i = 0; i < g->n && rc == 0; i++) {
        const mp__pb_field_t *f = &g->f[i];
        const mp__pb_msg_t *s = f->sub;
        if (s == NULL) {
            continue;
        }
        if (f->num == ONNX_GRAPH_INITIALIZER && mp__pb_find(s, ONNX_TENSOR_NAME)) {
            rc = names_add_take(ns, mp__pb_strdup(mp__pb_find(s, ONNX_TENSOR_NAME)));
        } else if (f->num == ONNX_GRAPH_NODE) {
            for (size_t j = 0; j < s->n && rc == 0; j++) {
                const mp__pb_field_t *nf = &s->f[j];
                if (nf->num == ONNX_NODE_INPUT || nf->num == ONNX_NODE_OUTPUT) {
                    rc = names_add_take(ns, mp__pb_strdup(nf));
                } else if (nf->num == ONNX_NODE_ATTRIBUTE && nf->sub != NULL) {
                    for (size_t k = 0; k < nf->sub->n && rc == 0; k++) {
                        const mp__pb_field_t *af = &nf->sub->f[k];
                        if ((af->num == ONNX_ATTR_G || af->num == ONNX_ATTR_GRAPHS) &&
                            af->sub != NULL) {
                            rc = collect_names(ns, af->sub);
                        }
                    }
                }
            }
        }
    }
    return rc;
}

/* base + suffix, unique in ns (then "_2", "_3"… before the suffix's end); recorded in ns.
 * Borrowed from ns. NULL when out of memory. */
static const char *fresh_name(names_t *ns, const char *base, const char *suffix)
{
    char *s = NULL;

    for (int k = 1; k < 1000; k++) {
        int r =
            k == 1 ? asprintf(&s, "%s%s", base, suffix) : asprintf(&s, "%s%s_%d", base, suffix, k);
        if (r < 0) {
            return NULL;
        }
        if (!names_has(ns, s)) {
            return names_add_take(ns, s) == 0 ? ns->owned[ns->n_owned - 1] : NULL;
        }
        free(s);
    }
    return NULL;
}

/* ---- building messages -------------------------------------------------------------------- */

static mp__pb_msg_t *tensor_msg(const char *name, int onnx_type, int n_dims, const int64_t *dims,
                                const void *data, size_t n_bytes)
{
    mp__pb_msg_t *t = mp__pb_msg_new();
    int bad = t == NULL;

    for (int d = 0; d < n_dims && !bad; d++) {
        bad = mp__pb_add_varint(t, ONNX_TENSOR_DIMS, (uint64_t)dims[d]) < 0;
    }
    bad = bad || mp__pb_add_varint(t, ONNX_TENSOR_DATA_TYPE, (uint64_t)onnx_type) < 0;
    bad = bad || mp__pb_add_str(t, ONNX_TENSOR_NAME, name) < 0;
    bad = bad || mp__pb_add_bytes(t, ONNX_TENSOR_RAW_DATA, data, n_bytes) < 0;
    if (bad) {
        mp__pb_msg_free(t);
        return NULL;
    }
    return t;
}

/* A node op(inputs) -> outputs, named name (none when NULL); NULL inputs are written as ""
 * (an omitted optional input). */
static mp__pb_msg_t *node_msg(const char *op, const char *const *in, int n_in,
                              const char *const *out, int n_out, const char *name)
{
    mp__pb_msg_t *n = mp__pb_msg_new();
    int bad = n == NULL;

    for (int i = 0; i < n_in && !bad; i++) {
        bad = mp__pb_add_str(n, ONNX_NODE_INPUT, in[i] ? in[i] : "") < 0;
    }
    for (int i = 0; i < n_out && !bad; i++) {
        bad = mp__pb_add_str(n, ONNX_NODE_OUTPUT, out[i]) < 0;
    }
    bad = bad || (name != NULL && mp__pb_add_str(n, ONNX_NODE_NAME, name) < 0);
    bad = bad || mp__pb_add_str(n, ONNX_NODE_OP_TYPE, op) < 0;
    if (bad) {
        mp__pb_msg_free(n);
        return NULL;
    }
    return n;
}

static int node_attr_int(mp__pb_msg_t *n, const char *name, int64_t v)
{
    mp__pb_msg_t *a = mp__pb_msg_new();

    if (a == NULL || mp__pb_add_str(a, ONNX_ATTR_NAME, name) < 0 ||
        mp__pb_add_varint(a, ONNX_ATTR_I, (uint64_t)v) < 0 ||
        mp__pb_add_varint(a, ONNX_ATTR_TYPE, ONNX_AT_INT) < 0) {
        mp__pb_msg_free(a);
        return MP_ENOMEM;
    }
    return mp__pb_add_msg_take(n, ONNX_NODE_ATTRIBUTE, a);
}

static int node_attr_tensor_take(mp__pb_msg_t *n, const char *name, mp__pb_msg_t *t)
{
    mp__pb_msg_t *a = mp__pb_msg_new();

    if (a == NULL || mp__pb_add_str(a, ONNX_ATTR_NAME, name) < 0) {
        mp__pb_msg_free(a);
        mp__pb_msg_free(t);
        return MP_ENOMEM;
    }
    if (mp__pb_add_msg_take(a, ONNX_ATTR_T, t) < 0) { /* t is freed by it */
        mp__pb_msg_free(a);
        return MP_ENOMEM;
    }
    if (mp__pb_add_varint(a, ONNX_ATTR_TYPE, ONNX_AT_TENSOR) < 0) {
        mp__pb_msg_free(a);
        return MP_ENOMEM;
    }
    return mp__pb_add_msg_take(n, ONNX_NODE_ATTRIBUTE, a);
}

static int node_attr_ints(mp__pb_msg_t *n, const char *name, const int64_t *v, int k)
{
    mp__pb_msg_t *a = mp__pb_msg_new();
    int bad = a == NULL || mp__pb_add_str(a, ONNX_ATTR_NAME, name) < 0;

    for (int i = 0; i < k && !bad; i++) {
        bad = mp__pb_add_varint(a, ONNX_ATTR_INTS, (uint64_t)v[i]) < 0;
    }
    if (bad || mp__pb_add_varint(a, ONNX_ATTR_TYPE, ONNX_AT_INTS) < 0) {
        mp__pb_msg_free(a);
        return MP_ENOMEM;
    }
    return mp__pb_add_msg_take(n, ONNX_NODE_ATTRIBUTE, a);
}

/* A ValueInfoProto name: tensor(elem_type, dims) for the inputs of IR < 4 graphs. */
static mp__pb_msg_t *value_info_msg(const char *name, int elem_type, int n_dims,
                                    const int64_t *dims)
{
    mp__pb_msg_t *vi = mp__pb_msg_new(), *type = mp__pb_msg_new(), *tt = mp__pb_msg_new(),
                 *shape = mp__pb_msg_new();
    int bad = vi == NULL || type == NULL || tt == NULL || shape == NULL;

    for (int d = 0; d < n_dims && !bad; d++) {
        mp__pb_msg_t *dim = mp__pb_msg_new();
        bad = dim == NULL || mp__pb_add_varint(dim, ONNX_DIM_VALUE, (uint64_t)dims[d]) < 0;
        if (bad) {
            mp__pb_msg_free(dim);
        } else {
            bad = mp__pb_add_msg_take(shape, ONNX_SHAPE_DIM, dim) < 0;
        }
    }
    bad = bad || mp__pb_add_varint(tt, ONNX_TTYPE_ELEM_TYPE, (uint64_t)elem_type) < 0;
    if (!bad) {
        bad = mp__pb_add_msg_take(tt, ONNX_TTYPE_SHAPE, shape) < 0;
        shape = NULL;
    }
    if (!bad) {
        bad = mp__pb_add_msg_take(type, ONNX_TYPE_TENSOR, tt) < 0;
        tt = NULL;
    }
    bad = bad || mp__pb_add_str(vi, ONNX_VI_NAME, name) < 0;
    if (!bad) {
        bad = mp__pb_add_msg_take(vi, ONNX_VI_TYPE, type) < 0;
        type = NULL;
    }
    mp__pb_msg_free(shape);
    mp__pb_msg_free(tt);
    mp__pb_msg_free(type);
    if (bad) {
        mp__pb_msg_free(vi);
        return NULL;
    }
    return vi;
}

/* The name field of a graph's input or output field f, parsed into the tree (malformed:
 * MP_EFORMAT; the reader never needed them before). */
static int vi_name(mp__pb_msg_t *g, mp__pb_field_t *f, const mp__pb_field_t **name,
                   mp_errctx_t *err)
{
    mp__pb_msg_t *vi;
    int rc = mp__pb_field_msg(f, g->depth, "graph input or output", &vi, err);

    *name = rc == 0 ? mp__pb_find(vi, ONNX_VI_NAME) : NULL;
    return rc;
}

/* ---- one weight's replacement ------------------------------------------------------------- */

typedef struct newt {
    const char *name;  /* borrowed from the names set */
    mp__pb_msg_t *msg; /* TensorProto */
    int onnx_type;
    int n_dims;
    int64_t dims[MP_MAX_DIMS];
} newt_t;

typedef struct edit {
    newt_t t[MAX_NEW];
    size_t n_t;
    mp__pb_msg_t *node[MAX_NEW];
    size_t n_node;
} edit_t;

/* A compressed weight whose output channels were removed: its new shape. */
typedef struct shape_ov {
    size_t tensor; /* index in the work model */
    int n_dims;
    int64_t shape[MP_MAX_DIMS];
} shape_ov_t;

typedef struct rw {
    mp__onnx_t *c;        /* the private copy being edited */
    mp_model_t *m;        /* its model (tensor names) */
    const mp_model_t *cm; /* the compressed model */
    mp_model_t *cm_own;   /* stored tensors replaced by channel removal (looked up first) */
    shape_ov_t *ov;       /* and the new shapes of their weights */
    size_t n_ov;
    names_t names;
    const char *tmp; /* short unique prefix for the intermediate values of a weight */
    mp_errctx_t *err;
} rw_t;

static void edit_cleanup(edit_t *e)
{
    for (size_t i = 0; i < e->n_t; i++) {
        mp__pb_msg_free(e->t[i].msg);
    }
    for (size_t i = 0; i < e->n_node; i++) {
        mp__pb_msg_free(e->node[i]);
    }
    memset(e, 0, sizeof *e);
}

/* A new tensor named value + suffix holding data; its unique name through *name (borrowed
 * from the names set, or value itself, which must then outlive the edit). */
static int edit_tensor(rw_t *rw, edit_t *e, const char *value, const char *suffix, mp_dtype_t dt,
                       int n_dims, const int64_t *dims, const void *data, size_t n_bytes,
                       const char **name)
{
    mp_errctx_t *err = rw->err;
    newt_t *t = &e->t[e->n_t];

    MP_RETURN_IF(e->n_t == MAX_NEW, MP_EINTERNAL, "too many tensors for '%s'", value);
    /* suffix NULL: the tensor keeps the value's own name (it replaces the old one in place) */
    t->name = suffix == NULL ? value : fresh_name(&rw->names, value, suffix);
    MP_RETURN_IF(t->name == NULL, MP_ENOMEM, "out of memory naming a tensor of '%s'", value);
    t->onnx_type = mp__onnx_type_of(dt);
    t->n_dims = n_dims;
    if (n_dims > 0) {
        memcpy(t->dims, dims, (size_t)n_dims * sizeof *dims);
    }
    t->msg = tensor_msg(t->name, t->onnx_type, n_dims, dims, data, n_bytes);
    MP_RETURN_IF(t->msg == NULL, MP_ENOMEM, "out of memory writing a tensor of '%s'", value);
    e->n_t++;
    *name = t->name;
    return 0;
}

/* A new node; out is its one output. */
static int edit_node(rw_t *rw, edit_t *e, const char *op, const char *const *in, int n_in,
                     const char *out, mp__pb_msg_t **node)
{
    mp_errctx_t *err = rw->err;

    MP_RETURN_IF(e->n_node == MAX_NEW, MP_EINTERNAL, "too many nodes for '%s'", out);
    /* no node name: optional in ONNX, and long names would cost more than small weights */
    e->node[e->n_node] = node_msg(op, in, n_in, &out, 1, NULL);
    MP_RETURN_IF(e->node[e->n_node] == NULL, MP_ENOMEM, "out of memory writing a node");
    *node = e->node[e->n_node++];
    return 0;
}

static int edit_cast(rw_t *rw, edit_t *e, const char *in, const char *out, mp_dtype_t to)
{
    mp__pb_msg_t *n = NULL;
    int rc = edit_node(rw, e, "Cast", &in, 1, out, &n);

    if (rc == 0 && node_attr_int(n, "to", mp__onnx_type_of(to)) < 0) {
        rc = mp__err_set(rw->err, MP_ENOMEM, "out of memory writing a node");
    }
    return rc;
}

/* A compressed tensor of the pipeline's output checked against what the record implies. */
static int stored(rw_t *rw, const char *name, const char *suffix, mp_dtype_t dt, int n_dims,
                  const int64_t *shape, const mp_tensor_t **out)
{
    mp_errctx_t *err = rw->err;
    char *full = NULL;
    const mp_tensor_t *t;

    if (asprintf(&full, "%s%s", name, suffix) < 0) {
        return mp__err_set(err, MP_ENOMEM, "out of memory");
    }
    t = rw->cm_own ? mp_model_find(rw->cm_own, full) : NULL;
    if (t == NULL) {
        t = mp_model_find(rw->cm, full);
    }
    free(full);
    MP_RETURN_IF(t == NULL, MP_EFORMAT, REC ": tensor '%s' has no stored '%s%s'", name, name,
                 suffix);
    MP_RETURN_IF(t->dtype != dt, MP_EFORMAT, REC ": '%s%s' is %s, not %s", name, suffix,
                 mp_dtype_name(t->dtype), mp_dtype_name(dt));
    if (shape != NULL) {
        int same = t->n_dims == n_dims;
        for (int d = 0; same && d < n_dims; d++) {
            same = t->shape[d] == shape[d];
        }
        MP_RETURN_IF(!same, MP_EFORMAT, REC ": '%s%s' does not have the shape the record gives",
                     name, suffix);
    }
    *out = t;
    return 0;
}

/* What the record says of one weight (or one low-rank factor). */
typedef struct code {
    enum { CODE_RAW, CODE_INT, CODE_SHARE, CODE_BINARY, CODE_TERNARY } kind;
    mp_dtype_t dtype;                                    /* RAW */
    int bits, asymmetric;                                /* INT */
    enum { GRAN_CHANNEL, GRAN_TENSOR, GRAN_GROUP } gran; /* INT, BINARY, TERNARY */
    int64_t group; /* GRAN_GROUP: elements per group along a row */
    int clusters;  /* SHARE */
} code_t;

/* One record entry (v1 or v2): its code and factorization. */
typedef struct entry {
    code_t code;         /* of the tensor, or of each factor (resolved per factor) */
    int factored;        /* 0; 1 SVD factors _u, _v; 2 Tucker-2 _u_out, _core, _u_in */
    int64_t r_out, r_in; /* SVD: r_out is the rank */
} entry_t;

/* The shape-dependent part of a code, as the pipeline settles it (mp__code_resolve): per
 * channel needs two dims, a group is at most a row. */
static void code_resolve(code_t *c, int n_dims, const int64_t *shape)
{
    int64_t n = 1;

    for (int d = 0; d < n_dims; d++) {
        n *= shape[d];
    }
    if (c->gran == GRAN_CHANNEL && n_dims < 2) {
        c->gran = GRAN_TENSOR;
    }
    if (c->gran == GRAN_GROUP && n_dims >= 2 && shape[0] > 0 && c->group > n / shape[0]) {
        c->group = n / shape[0];
    }
}

/* A new INT64 [n] tensor, for shapes and Slice bounds. */
static int edit_i64(rw_t *rw, edit_t *e, const char *value, const char *suffix, int n,
                    const int64_t *v, const char **name)
{
    const int64_t dim = n;

    return edit_tensor(rw, e, value, suffix, MP_DT_I64, 1, &dim, v, (size_t)n * sizeof *v, name);
}

/* A node out = op(a, b) with out a fresh name from value + suffix (or value itself when
 * suffix is NULL). */
static int edit_op2(rw_t *rw, edit_t *e, const char *op, const char *a, const char *b,
                    const char *value, const char *suffix, const char **out)
{
    const char *in[2] = {a, b};
    mp__pb_msg_t *n;

    *out = suffix == NULL ? value : fresh_name(&rw->names, value, suffix);
    if (*out == NULL) {
        return mp__err_set(rw->err, MP_ENOMEM, "out of memory");
    }
    return edit_node(rw, e, op, in, b != NULL ? 2 : 1, *out, &n);
}

static int edit_reshape(rw_t *rw, edit_t *e, const char *in, int n_dims, const int64_t *dims,
                        const char *value, const char *suffix, const char **out)
{
    const char *shape;
    int rc = edit_i64(rw, e, rw->tmp, "_shape", n_dims, dims, &shape);

    return rc < 0 ? rc : edit_op2(rw, e, "Reshape", in, shape, value, suffix, out);
}

/* Unpack n codes of `bits` bits (the little-endian bit stream of mp__pack_bits) from the UINT8
 * tensor named packed (nb bytes) into a float value of shape [n] (*out), with operators every
 * opset from 7 has: bit k of each byte (as INT32) is x / 2^k - 2 (x / 2^(k+1)) in integer
 * division (Mod came only with opset 10); the bit stream, cut to n x bits, is read as
 * [n, bits] and multiplied by the column 1, 2, 4 … (MatMul). */
static int edit_unpack(rw_t *rw, edit_t *e, const char *value, const char *packed, int64_t nb,
                       int64_t n, int bits, const char **out)
{
    const int32_t pow2[8] = {1, 2, 4, 8, 16, 32, 64, 128},
                  pow2n[8] = {2, 4, 8, 16, 32, 64, 128, 256}, two = 2;
    const float weights[8] = {1, 2, 4, 8, 16, 32, 64, 128};
    const int64_t d18[2] = {1, 8}, dbits[2] = {bits, 1}, col[2] = {nb, 1};
    const int64_t flat = nb * 8, used = n * bits, nb_shape[2] = {n, bits};
    const int64_t zero = 0;
    const char *x, *p2, *p2n, *t2, *w, *hi, *lo, *starts, *ends;
    int rc;

    (void)value;
    if ((rc = edit_op2(rw, e, "Cast", packed, NULL, rw->tmp, "_bytes", &x)) < 0 ||
        node_attr_int(e->node[e->n_node - 1], "to", 6) < 0) {
        return rc < 0 ? rc : mp__err_set(rw->err, MP_ENOMEM, "out of memory");
    }
    if ((rc = edit_reshape(rw, e, x, 2, col, rw->tmp, "_col", &x)) < 0 ||
        (rc = edit_tensor(rw, e, rw->tmp, "_pow2", MP_DT_I32, 2, d18, pow2, sizeof pow2, &p2)) <
            0 ||
        (rc = edit_tensor(rw, e, rw->tmp, "_pow2next", MP_DT_I32, 2, d18, pow2n, sizeof pow2n,
                          &p2n)) < 0 ||
        (rc = edit_tensor(rw, e, rw->tmp, "_two", MP_DT_I32, 0, NULL, &two, sizeof two, &t2)) < 0 ||
        (rc = edit_op2(rw, e, "Div", x, p2, rw->tmp, "_shifted", &lo)) < 0 ||
        (rc = edit_op2(rw, e, "Div", x, p2n, rw->tmp, "_above", &hi)) < 0 ||
        (rc = edit_op2(rw, e, "Mul", hi, t2, rw->tmp, "_above2", &hi)) < 0 ||
        (rc = edit_op2(rw, e, "Sub", lo, hi, rw->tmp, "_bits", &x)) < 0 ||
        (rc = edit_reshape(rw, e, x, 1, &flat, rw->tmp, "_stream", &x)) < 0) {
        return rc;
    }
    if (used != flat) {
        const char *in[3] = {x, NULL, NULL};
        mp__pb_msg_t *node;
        const int with_inputs = rw->c->opset >= 10; /* Slice-10 takes starts/ends as inputs */
        if (with_inputs && ((rc = edit_i64(rw, e, rw->tmp, "_starts", 1, &zero, &starts)) < 0 ||
                            (rc = edit_i64(rw, e, rw->tmp, "_ends", 1, &used, &ends)) < 0)) {
            return rc;
        }
        in[1] = with_inputs ? starts : NULL;
        in[2] = with_inputs ? ends : NULL;
        x = fresh_name(&rw->names, rw->tmp, "_cut");
        if (x == NULL) {
            return mp__err_set(rw->err, MP_ENOMEM, "out of memory");
        }
        if ((rc = edit_node(rw, e, "Slice", in, with_inputs ? 3 : 1, x, &node)) < 0) {
            return rc;
        }
        if (!with_inputs && (node_attr_ints(node, "starts", &zero, 1) < 0 ||
                             node_attr_ints(node, "ends", &used, 1) < 0)) {
            return mp__err_set(rw->err, MP_ENOMEM, "out of memory");
        }
    }
    if ((rc = edit_reshape(rw, e, x, 2, nb_shape, rw->tmp, "_codebits", &x)) < 0 ||
        (rc = edit_op2(rw, e, "Cast", x, NULL, rw->tmp, "_codebits_f", &x)) < 0 ||
        node_attr_int(e->node[e->n_node - 1], "to", 1) < 0 ||
        (rc = edit_tensor(rw, e, rw->tmp, "_bitweights", MP_DT_F32, 2, dbits, weights,
                          (size_t)bits * sizeof *weights, &w)) < 0) {
        return rc < 0 ? rc : mp__err_set(rw->err, MP_ENOMEM, "out of memory");
    }
    return edit_op2(rw, e, "MatMul", x, w, rw->tmp, "_codes", out);
}

/* A per-row (or per-group, or per-tensor) float table t of n_scales values as a value that
 * broadcasts against [rows, cols]: a scalar, [rows, 1], or — per group — [rows, n_groups]
 * gathered along axis 1 by the INT32 group index of each column. scale_by multiplies each
 * value (binary codes use 2 alpha). */
static int edit_table(rw_t *rw, edit_t *e, const char *value, const char *suffix, const code_t *c,
                      const float *t, int64_t rows, int64_t cols, float scale_by, int as_u8,
                      const char **out)
{
    const int64_t n_groups = c->gran == GRAN_GROUP ? (cols + c->group - 1) / c->group : 1;
    const int64_t n = c->gran == GRAN_TENSOR ? 1 : rows * n_groups;
    const int64_t shape[2] = {rows, c->gran == GRAN_GROUP ? n_groups : 1};
    float *v = malloc((size_t)(n ? n : 1) * sizeof *v);
    int32_t *idx = NULL;
    const char *tab, *ix;
    int rc;

    if (v == NULL) {
        return mp__err_set(rw->err, MP_ENOMEM, "out of memory");
    }
    for (int64_t i = 0; i < n; i++) {
        v[i] = t[i] * scale_by;
    }
    if (as_u8) {
        /* zero points are whole numbers 0..255: stored as UINT8, a quarter of F32 */
        uint8_t *u = (uint8_t *)v;
        for (int64_t i = 0; i < n; i++) {
            u[i] = (uint8_t)v[i];
        }
        rc = edit_tensor(rw, e, value, suffix, MP_DT_U8, c->gran == GRAN_TENSOR ? 0 : 2, shape, u,
                         (size_t)n, &tab);
        if (rc == 0 && ((rc = edit_op2(rw, e, "Cast", tab, NULL, rw->tmp, "_zp", &tab)) < 0 ||
                        node_attr_int(e->node[e->n_node - 1], "to", 1) < 0)) {
            rc = rc < 0 ? rc : mp__err_set(rw->err, MP_ENOMEM, "out of memory");
        }
    } else {
        rc = edit_tensor(rw, e, value, suffix, MP_DT_F32, c->gran == GRAN_TENSOR ? 0 : 2, shape, v,
                         (size_t)n * sizeof *v, &tab);
    }
    free(v);
    if (rc < 0 || c->gran != GRAN_GROUP) {
        *out = tab;
        return rc;
    }
    idx = malloc((size_t)(cols ? cols : 1) * sizeof *idx);
    if (idx == NULL) {
        return mp__err_set(rw->err, MP_ENOMEM, "out of memory");
    }
    for (int64_t j = 0; j < cols; j++) {
        idx[j] = (int32_t)(j / c->group);
    }
    rc = edit_tensor(rw, e, rw->tmp, "_group_index", MP_DT_I32, 1, &cols, idx,
                     (size_t)cols * sizeof *idx, &ix);
    free(idx);
    if (rc == 0) {
        rc = edit_op2(rw, e, "Gather", tab, ix, rw->tmp, suffix, out);
    }
    if (rc == 0 && node_attr_int(e->node[e->n_node - 1], "axis", 1) < 0) {
        rc = mp__err_set(rw->err, MP_ENOMEM, "out of memory");
    }
    return rc;
}

/* Integer, binary and ternary codes in general: (code - offset) x scale on [rows, cols] in
 * float, then the value's own shape. The codes are a plain INT8/UINT8 tensor (8 bits) or a
 * packed UINT8 stream unpacked in the graph. */
static int emit_codes(rw_t *rw, edit_t *e, const char *name, const char *value, const char *f32,
                      int n_dims, const int64_t *shape, const code_t *c)
/* (f32 is the float value written: value itself, or a name the caller casts to value) */
{
    mp_errctx_t *err = rw->err;
    const int bits = c->kind == CODE_BINARY ? 1 : c->kind == CODE_TERNARY ? 2 : c->bits;
    const int sign = c->kind != CODE_INT;
    int64_t n = 1, rows = n_dims >= 2 ? shape[0] : 1, cols, nb, n_scales, nd = n_dims;
    int64_t sshape[2], mat[2];
    const mp_tensor_t *tq, *ts, *tz = NULL, *tshape;
    const char *codes, *off = NULL, *scale, *x;
    float *zf = NULL, offset;
    int rc;

    for (int d = 0; d < n_dims; d++) {
        n *= shape[d];
    }
    cols = rows ? n / rows : 0;
    if (c->gran == GRAN_TENSOR) {
        rows = 1;
        cols = n;
    }
    n_scales = c->gran == GRAN_TENSOR    ? 1
               : c->gran == GRAN_CHANNEL ? rows
                                         : rows * ((cols + c->group - 1) / c->group);
    sshape[0] = c->gran == GRAN_TENSOR ? 1 : rows;
    sshape[1] = c->gran == GRAN_GROUP ? n_scales / rows : 1;
    if ((rc = stored(rw, name, "_scale", MP_DT_F32, c->gran == GRAN_GROUP ? 2 : 1, sshape, &ts)) <
        0) {
        return rc;
    }
    if (c->asymmetric && (rc = stored(rw, name, "_zero_point", MP_DT_I32,
                                      c->gran == GRAN_GROUP ? 2 : 1, sshape, &tz)) < 0) {
        return rc;
    }
    mat[0] = rows;
    mat[1] = cols;
    if (bits == 8) {
        if ((rc = stored(rw, name, "", c->asymmetric ? MP_DT_U8 : MP_DT_I8, n_dims, shape, &tq)) <
                0 ||
            (rc = edit_tensor(rw, e, value, "_quantized", tq->dtype, n_dims, shape, tq->data,
                              tq->n_bytes, &codes)) < 0 ||
            (rc = edit_op2(rw, e, "Cast", codes, NULL, rw->tmp, "_codes_f", &x)) < 0 ||
            node_attr_int(e->node[e->n_node - 1], "to", 1) < 0 ||
            (rc = edit_reshape(rw, e, x, 2, mat, rw->tmp, "_matrix", &codes)) < 0) {
            return rc < 0 ? rc : mp__err_set(err, MP_ENOMEM, "out of memory");
        }
    } else {
        nb = (n * bits + 7) / 8;
        if ((rc = stored(rw, name, "_packed", MP_DT_U8, 1, &nb, &tq)) < 0 ||
            (rc = stored(rw, name, "_shape", MP_DT_I64, 1, &nd, &tshape)) < 0) {
            return rc;
        }
        MP_RETURN_IF(memcmp(tshape->data, shape, (size_t)n_dims * sizeof *shape) != 0, MP_EFORMAT,
                     REC ": '%s_shape' disagrees with the shape the record gives", name);
        if (c->kind == CODE_TERNARY) {
            /* code 3 is no ternary value: refused here as mp_model_unpack refuses it */
            for (int64_t i = 0; i < n; i++) {
                const uint8_t byte = ((const uint8_t *)tq->data)[i / 4];
                MP_RETURN_IF(((byte >> (2 * (i % 4))) & 3) == 3, MP_EFORMAT,
                             "tensor '%s': ternary code %lld is 3", name, (long long)i);
            }
        }
        if ((rc = edit_tensor(rw, e, value, "_packed", MP_DT_U8, 1, &nb, tq->data, tq->n_bytes,
                              &codes)) < 0 ||
            (rc = edit_unpack(rw, e, value, codes, nb, n, bits, &x)) < 0 ||
            (rc = edit_reshape(rw, e, x, 2, mat, rw->tmp, "_matrix", &codes)) < 0) {
            return rc;
        }
    }
    /* the offset: a zero point per group, or the constant that centres the codes */
    if (c->asymmetric) {
        zf = malloc((size_t)n_scales * sizeof *zf);
        MP_RETURN_IF(zf == NULL, MP_ENOMEM, "out of memory");
        for (int64_t i = 0; i < n_scales; i++) {
            int32_t z;
            memcpy(&z, (const char *)tz->data + 4 * i, 4);
            if (z < 0 || z >= (1 << bits)) {
                free(zf);
                return mp__err_set(err, MP_EFORMAT, REC ": '%s_zero_point' has %d, not 0..%d", name,
                                   (int)z, (1 << bits) - 1);
            }
            zf[i] = (float)z;
        }
        rc = edit_table(rw, e, value, "_zero_point", c, zf, rows, cols, 1.0f, 1, &off);
        free(zf);
    } else if (bits < 8 || sign) {
        offset = c->kind == CODE_BINARY    ? 0.5f
                 : c->kind == CODE_TERNARY ? 1.0f
                                           : (float)(1 << (bits - 1));
        rc = edit_tensor(rw, e, rw->tmp, "_offset", MP_DT_F32, 0, NULL, &offset, sizeof offset,
                         &off);
    }
    if (rc == 0 && off != NULL) {
        rc = edit_op2(rw, e, "Sub", codes, off, rw->tmp, "_centred", &codes);
    }
    /* binary: (code - 1/2) x 2 alpha = ±alpha */
    if (rc == 0) {
        float *sv = malloc((size_t)n_scales * sizeof *sv);
        rc = sv == NULL ? mp__err_set(err, MP_ENOMEM, "out of memory") : 0;
        if (rc == 0) {
            memcpy(sv, ts->data, (size_t)n_scales * sizeof *sv);
            rc = edit_table(rw, e, value, "_scale", c, sv, rows, cols,
                            c->kind == CODE_BINARY ? 2.0f : 1.0f, 0, &scale);
        }
        free(sv);
    }
    if (rc == 0) {
        rc = edit_op2(rw, e, "Mul", codes, scale, rw->tmp, "_dequantized", &x);
    }
    if (rc == 0) {
        rc = edit_reshape(rw, e, x, n_dims, shape, f32, NULL, &x);
    }
    return rc;
}

/* The nodes and tensors that compute value (of original dtype orig, shape of t_main) from
 * the stored tensors of weight `name` under code c. */
static int emit_value(rw_t *rw, edit_t *e, const char *name, const char *value, mp_dtype_t orig,
                      int n_dims, const int64_t *shape, const code_t *c)
{
    mp_errctx_t *err = rw->err;
    const int64_t opset = rw->c->opset;
    const char *f32 = value, *in[3], *q, *s, *zp = NULL;
    const mp_tensor_t *tq, *ts, *tz = NULL;
    mp__pb_msg_t *node;
    int rc;

    if (orig != MP_DT_F32) {
        f32 = fresh_name(&rw->names, rw->tmp, "_f32");
        MP_RETURN_IF(f32 == NULL, MP_ENOMEM, "out of memory");
    }
    if (c->kind == CODE_RAW) {
        if ((rc = stored(rw, name, "", c->dtype, n_dims, shape, &tq)) < 0) {
            return rc;
        }
        if (c->dtype == orig) {
            return edit_tensor(rw, e, value, NULL, orig, n_dims, shape, tq->data, tq->n_bytes, &q);
        }
        MP_RETURN_IF(c->dtype == MP_DT_BF16 && opset < 13, MP_EUNSUPPORTED,
                     "tensor '%s': BF16 needs opset 13 for Cast; the model has opset %lld", name,
                     (long long)opset);
        rc = edit_tensor(rw, e, value, c->dtype == MP_DT_F16 ? "_fp16" : "_bf16", c->dtype, n_dims,
                         shape, tq->data, tq->n_bytes, &q);
        return rc < 0 ? rc : edit_cast(rw, e, q, value, orig);
    }
    if (c->kind == CODE_SHARE) {
        const int64_t k = c->clusters;
        const char *idx;
        if ((rc = stored(rw, name, "_indices", MP_DT_U8, n_dims, shape, &tq)) < 0 ||
            (rc = stored(rw, name, "_codebook", MP_DT_F32, 1, &k, &ts)) < 0) {
            return rc;
        }
        for (size_t i = 0; i < tq->n_bytes; i++) {
            MP_RETURN_IF(((const uint8_t *)tq->data)[i] >= k, MP_EFORMAT,
                         REC ": '%s_indices' has index %u past the codebook of %d", name,
                         ((const uint8_t *)tq->data)[i], (int)k);
        }
        if ((rc = edit_tensor(rw, e, value, "_codebook", MP_DT_F32, 1, &k, ts->data, ts->n_bytes,
                              &s)) < 0 ||
            (rc = edit_tensor(rw, e, value, "_indices", MP_DT_U8, n_dims, shape, tq->data,
                              tq->n_bytes, &q)) < 0) {
            return rc;
        }
        /* Gather's indices must be INT32 or INT64: stored as UINT8, widened at load */
        idx = fresh_name(&rw->names, rw->tmp, "_indices");
        MP_RETURN_IF(idx == NULL, MP_ENOMEM, "out of memory");
        if ((rc = edit_cast(rw, e, q, idx, MP_DT_I32)) < 0) {
            return rc;
        }
        in[0] = s;
        in[1] = idx;
        if ((rc = edit_node(rw, e, "Gather", in, 2, f32, &node)) < 0) {
            return rc;
        }
        return f32 == value ? 0 : edit_cast(rw, e, f32, value, orig);
    }

    if (c->kind != CODE_INT || c->bits != 8 || c->gran == GRAN_GROUP) {
        rc = emit_codes(rw, e, name, value, f32, n_dims, shape, c);
        return rc < 0 || f32 == value ? rc : edit_cast(rw, e, f32, value, orig);
    }

    /* 8-bit codes per channel or per tensor: DequantizeLinear where the opset has it */
    const int per_channel = c->gran == GRAN_CHANNEL;
    const int64_t rows = n_dims >= 1 ? shape[0] : 1;
    const int64_t n_scale = per_channel ? rows : 1;
    const mp_dtype_t qdt = c->asymmetric ? MP_DT_U8 : MP_DT_I8;
    int64_t bshape[MP_MAX_DIMS];
    uint8_t *zpb = NULL;

    if ((rc = stored(rw, name, "", qdt, n_dims, shape, &tq)) < 0 ||
        (rc = stored(rw, name, "_scale", MP_DT_F32, 1, &n_scale, &ts)) < 0) {
        return rc;
    }
    if (c->asymmetric) {
        if ((rc = stored(rw, name, "_zero_point", MP_DT_I32, 1, &n_scale, &tz)) < 0) {
            return rc;
        }
        zpb = malloc((size_t)n_scale);
        MP_RETURN_IF(zpb == NULL, MP_ENOMEM, "out of memory");
        for (int64_t i = 0; i < n_scale; i++) {
            int32_t z;
            memcpy(&z, (const char *)tz->data + 4 * i, 4);
            if (z < 0 || z > 255) {
                free(zpb);
                return mp__err_set(err, MP_EFORMAT, REC ": '%s_zero_point' has %d, not 0..255",
                                   name, (int)z);
            }
            zpb[i] = (uint8_t)z;
        }
    }
    rc = edit_tensor(rw, e, value, "_quantized", qdt, n_dims, shape, tq->data, tq->n_bytes, &q);
    if (rc == 0 && (opset >= 13 || (opset >= 10 && !per_channel))) {
        /* DequantizeLinear: per tensor with scalars, per axis (opset 13) with [rows] along 0 */
        const int sd = per_channel ? 1 : 0;
        static const int8_t zeros8[1];
        rc =
            edit_tensor(rw, e, value, "_scale", MP_DT_F32, sd, &n_scale, ts->data, ts->n_bytes, &s);
        if (rc == 0 && zpb == NULL) {
            /* an explicit zero point of the codes' type: some runtimes want it */
            int8_t *z = calloc((size_t)n_scale, 1);
            rc = z == NULL ? mp__err_set(err, MP_ENOMEM, "out of memory")
                           : edit_tensor(rw, e, value, "_zero_point", qdt, sd, &n_scale,
                                         n_scale ? z : zeros8, (size_t)n_scale, &zp);
            free(z);
        } else if (rc == 0) {
            rc = edit_tensor(rw, e, value, "_zero_point", qdt, sd, &n_scale, zpb, (size_t)n_scale,
                             &zp);
        }
        in[0] = q;
        in[1] = s;
        in[2] = zp;
        if (rc == 0) {
            rc = edit_node(rw, e, "DequantizeLinear", in, 3, f32, &node);
        }
        if (rc == 0 && per_channel && node_attr_int(node, "axis", 0) < 0) {
            rc = mp__err_set(err, MP_ENOMEM, "out of memory writing a node");
        }
    } else if (rc == 0) {
        /* Cast + (Sub) + Mul, the scales shaped [rows, 1, 1, …] to broadcast along axis 0 */
        const char *qf = fresh_name(&rw->names, rw->tmp, "_codes_f");
        const char *centred = qf;
        const int bd = per_channel ? n_dims : 0;
        bshape[0] = n_scale;
        for (int d = 1; d < bd; d++) {
            bshape[d] = 1;
        }
        rc = qf == NULL ? mp__err_set(err, MP_ENOMEM, "out of memory")
                        : edit_cast(rw, e, q, qf, MP_DT_F32);
        if (rc == 0) {
            rc = edit_tensor(rw, e, value, "_scale", MP_DT_F32, bd, bshape, ts->data, ts->n_bytes,
                             &s);
        }
        if (rc == 0 && zpb != NULL) {
            float *zf = malloc((size_t)n_scale * sizeof *zf);
            for (int64_t i = 0; zf != NULL && i < n_scale; i++) {
                zf[i] = (float)zpb[i];
            }
            centred = fresh_name(&rw->names, rw->tmp, "_centred");
            rc = zf == NULL || centred == NULL
                     ? mp__err_set(err, MP_ENOMEM, "out of memory")
                     : edit_tensor(rw, e, value, "_zero_point", MP_DT_F32, bd, bshape, zf,
                                   (size_t)n_scale * sizeof *zf, &zp);
            free(zf);
            in[0] = qf;
            in[1] = zp;
            if (rc == 0) {
                rc = edit_node(rw, e, "Sub", in, 2, centred, &node);
            }
        }
        in[0] = centred;
        in[1] = s;
        if (rc == 0) {
            rc = edit_node(rw, e, "Mul", in, 2, f32, &node);
        }
    }
    free(zpb);
    if (rc == 0 && f32 != value) {
        rc = edit_cast(rw, e, f32, value, orig);
    }
    return rc;
}

/* ---- low-rank factors -------------------------------------------------------------------- */

static const char *const SVD_PARTS[2] = {"_u", "_v"};
static const char *const TUCKER_PARTS[3] = {"_u_out", "_core", "_u_in"};

/* The shapes of the factors (as mp__part_shapes): SVD w [m, n] ~ u [m, r] v [r, n]; Tucker-2
 * w [o, i, k…] ~ u_out [o, r_out], core [r_out, r_in, k…], u_in [r_in, i]. */
static int part_shapes(const mp_tensor_t *t, const entry_t *en, int *pd, int64_t (*ps)[MP_MAX_DIMS])
{
    if (en->factored == 1) {
        pd[0] = pd[1] = 2;
        ps[0][0] = t->shape[0];
        ps[0][1] = en->r_out;
        ps[1][0] = en->r_out;
        ps[1][1] = t->shape[1];
        return 2;
    }
    pd[0] = pd[2] = 2;
    pd[1] = t->n_dims;
    ps[0][0] = t->shape[0];
    ps[0][1] = en->r_out;
    ps[1][0] = en->r_out;
    ps[1][1] = en->r_in;
    memcpy(&ps[1][2], &t->shape[2], (size_t)(t->n_dims - 2) * sizeof *t->shape);
    ps[2][0] = en->r_in;
    ps[2][1] = t->shape[1];
    return 3;
}

/* Each factor as a float value (its own code, resolved for its shape); names into pv[]. */
static int emit_parts(rw_t *rw, edit_t *e, const char *name, const char *value,
                      const mp_tensor_t *t, const entry_t *en, const char **pv)
{
    const char *const *suffix = en->factored == 1 ? SVD_PARTS : TUCKER_PARTS;
    int pd[3];
    int64_t ps[3][MP_MAX_DIMS];
    const int n = part_shapes(t, en, pd, ps);
    char *base = NULL;
    int rc = 0;

    for (int p = 0; p < n && rc == 0; p++) {
        code_t c = en->code;
        code_resolve(&c, pd[p], ps[p]);
        pv[p] = fresh_name(&rw->names, value, suffix[p]);
        if (pv[p] == NULL || asprintf(&base, "%s%s", name, suffix[p]) < 0) {
            return mp__err_set(rw->err, MP_ENOMEM, "out of memory");
        }
        rc = emit_value(rw, e, base, pv[p], MP_DT_F32, pd[p], ps[p], &c);
        free(base);
        base = NULL;
    }
    return rc;
}

/* The weight rebuilt from its factors inside the graph, for consumers that cannot be rewired:
 * SVD: MatMul(u, v); Tucker-2: u_out (core as [r_out, r_in k]) -> [o, r_in, k] -> [o, k, r_in]
 * times u_in -> [o, k, i] -> [o, i, k] -> w's shape. */
static int emit_product(rw_t *rw, edit_t *e, const char *value, const char *f32,
                        const mp_tensor_t *t, const entry_t *en, const char **pv)
{
    const int64_t perm[3] = {0, 2, 1};
    int64_t k = 1, s2[2], s3[3];
    const char *x;
    int rc;

    if (en->factored == 1) {
        return edit_op2(rw, e, "MatMul", pv[0], pv[1], f32, NULL, &x);
    }
    for (int d = 2; d < t->n_dims; d++) {
        k *= t->shape[d];
    }
    s2[0] = en->r_out;
    s2[1] = en->r_in * k;
    s3[0] = t->shape[0];
    s3[1] = en->r_in;
    s3[2] = k;
    if ((rc = edit_reshape(rw, e, pv[1], 2, s2, rw->tmp, "_core_matrix", &x)) < 0 ||
        (rc = edit_op2(rw, e, "MatMul", pv[0], x, rw->tmp, "_outer", &x)) < 0 ||
        (rc = edit_reshape(rw, e, x, 3, s3, rw->tmp, "_outer3", &x)) < 0 ||
        (rc = edit_op2(rw, e, "Transpose", x, NULL, rw->tmp, "_outer3t", &x)) < 0 ||
        node_attr_ints(e->node[e->n_node - 1], "perm", perm, 3) < 0 ||
        (rc = edit_op2(rw, e, "MatMul", x, pv[2], rw->tmp, "_full_t", &x)) < 0 ||
        (rc = edit_op2(rw, e, "Transpose", x, NULL, rw->tmp, "_full", &x)) < 0 ||
        node_attr_ints(e->node[e->n_node - 1], "perm", perm, 3) < 0) {
        return rc < 0 ? rc : mp__err_set(rw->err, MP_ENOMEM, "out of memory");
    }
    return edit_reshape(rw, e, x, t->n_dims, t->shape, f32, NULL, &x);
}

/* Index (among its inputs) at which node reads value, or -1; several uses count as -2. */
static int input_index(const mp__pb_msg_t *node, const char *value)
{
    int k = 0, at = -1;

    for (size_t j = 0; j < node->n; j++) {
        if (node->f[j].num != ONNX_NODE_INPUT) {
            continue;
        }
        if (mp__pb_streq(&node->f[j], value)) {
            at = at == -1 ? k : -2;
        }
        k++;
    }
    return at;
}

/* 1 if a subgraph of a node of g (at any depth) names value anywhere. */
static int used_below(const mp__pb_msg_t *g, const char *value)
{
    for (size_t i = 0; i < g->n; i++) {
        const mp__pb_msg_t *node = g->f[i].sub;
        if (g->f[i].num != ONNX_GRAPH_NODE || node == NULL) {
            continue;
        }
        for (size_t j = 0; j < node->n; j++) {
            const mp__pb_msg_t *a = node->f[j].sub;
            if (node->f[j].num != ONNX_NODE_ATTRIBUTE || a == NULL) {
                continue;
            }
            for (size_t k = 0; k < a->n; k++) {
                const mp__pb_msg_t *sg = a->f[k].sub;
                if ((a->f[k].num == ONNX_ATTR_G || a->f[k].num == ONNX_ATTR_GRAPHS) && sg != NULL) {
                    for (size_t q = 0; q < sg->n; q++) {
                        if (sg->f[q].num == ONNX_GRAPH_NODE && sg->f[q].sub != NULL &&
                            input_index(sg->f[q].sub, value) != -1) {
                            return 1;
                        }
                    }
                    if (used_below(sg, value)) {
                        return 1;
                    }
                }
            }
        }
    }
    return 0;
}

/* 1 if g lists value among its outputs, 0 if not, or an error code. */
static int is_output(mp__pb_msg_t *g, const char *value, mp_errctx_t *err)
{
    for (size_t i = 0; i < g->n; i++) {
        const mp__pb_field_t *nf;
        int rc;
        if (g->f[i].num != ONNX_GRAPH_OUTPUT) {
            continue;
        }
        if ((rc = vi_name(g, &g->f[i], &nf, err)) < 0) {
            return rc;
        }
        if (nf != NULL && mp__pb_streq(nf, value)) {
            return 1;
        }
    }
    return 0;
}

static int64_t attr_i(mp__pb_msg_t *node, const char *name, int64_t dflt)
{
    const mp__pb_msg_t *a = mp__onnx_node_attr(node, name);
    const mp__pb_field_t *f = a ? mp__pb_find(a, ONNX_ATTR_I) : NULL;

    return f ? (int64_t)f->v : dflt;
}

/* Whether every use of the factored weight is one the graph can split: SVD under MatMul (either
 * input) or Gemm (B, opset 11 for the optional C), Tucker-2 under Conv (W, group 1); all in the
 * weight's own graph, none in a subgraph or a graph output, the weight F32. 1 or 0, or an
 * error code. */
static int can_rewire(const rw_t *rw, mp__pb_msg_t *g, const char *value, const mp_tensor_t *t,
                      const entry_t *en)
{
    int n_uses = 0, out;

    if (t->dtype != MP_DT_F32 || used_below(g, value)) {
        return 0;
    }
    if ((out = is_output(g, value, rw->err)) != 0) {
        return out < 0 ? out : 0;
    }
    for (size_t i = 0; i < g->n; i++) {
        mp__pb_msg_t *node = g->f[i].sub;
        int at;
        if (g->f[i].num != ONNX_GRAPH_NODE || node == NULL ||
            (at = input_index(node, value)) == -1) {
            continue;
        }
        n_uses++;
        if (at == -2) {
            return 0;
        }
        if (en->factored == 1) {
            const int ok = mp__onnx_node_is(node, "MatMul") ||
                           (mp__onnx_node_is(node, "Gemm") && at == 1 && rw->c->opset >= 11);
            if (!ok) {
                return 0;
            }
        } else if (!mp__onnx_node_is(node, "Conv") || at != 1 || attr_i(node, "group", 1) != 1) {
            return 0;
        }
    }
    return n_uses > 0;
}

/* Field index of the k-th field num of m, or m->n. */
static size_t nth_field(const mp__pb_msg_t *m, uint32_t num, int k)
{
    for (size_t i = 0; i < m->n; i++) {
        if (m->f[i].num == num && k-- == 0) {
            return i;
        }
    }
    return m->n;
}

static int set_str(mp__pb_msg_t *m, uint32_t num, int k, const char *s)
{
    const size_t i = nth_field(m, num, k);

    return i == m->n ? MP_EINTERNAL : mp__pb_set_bytes_at(m, i, s, strlen(s));
}

static void drop_attr(mp__pb_msg_t *node, const char *name)
{
    for (size_t i = node->n; i-- > 0;) {
        const mp__pb_msg_t *a = node->f[i].sub;
        if (node->f[i].num == ONNX_NODE_ATTRIBUTE && a != NULL &&
            mp__pb_find(a, ONNX_ATTR_NAME) != NULL &&
            mp__pb_streq(mp__pb_find(a, ONNX_ATTR_NAME), name)) {
            mp__pb_remove_at(node, i);
        }
    }
}

/* A copy of a node's attribute by name onto another node (nothing when absent). */
static int copy_attr(mp__pb_msg_t *from, mp__pb_msg_t *to, const char *name)
{
    mp__pb_msg_t *a = mp__onnx_node_attr(from, name), *c;

    if (a == NULL) {
        return 0;
    }
    c = mp__pb_msg_clone(a);
    return c == NULL ? MP_ENOMEM : mp__pb_add_msg_take(to, ONNX_NODE_ATTRIBUTE, c);
}

/* Split one consumer: it is rewritten in place to its first half, writing a fresh value, and
 * its second half is inserted after it writing the consumer's own output. */
static int rewire_one(rw_t *rw, mp__pb_msg_t *g, size_t at, const char *value, const mp_tensor_t *t,
                      const entry_t *en, const char **pv)
{
    mp__pb_msg_t *node = g->f[at].sub, *second = NULL, *first = NULL;
    const int in = input_index(node, value);
    char *out = mp__pb_strdup(&node->f[nth_field(node, ONNX_NODE_OUTPUT, 0)]);
    const char *mid = fresh_name(&rw->names, rw->tmp, "_partial");
    const char *ins[3];
    int64_t ones[MP_MAX_DIMS];
    int rc = 0;

    if (out == NULL || mid == NULL || nth_field(node, ONNX_NODE_OUTPUT, 0) == node->n) {
        free(out);
        return mp__err_set(rw->err, MP_ENOMEM, "out of memory rewiring '%s'", value);
    }
    if (en->factored == 1 && mp__onnx_node_is(node, "MatMul")) {
        /* X w = (X u) v;  w X = u (v X) */
        rc = set_str(node, ONNX_NODE_INPUT, in, in == 1 ? pv[0] : pv[1]);
        ins[0] = in == 1 ? mid : pv[0];
        ins[1] = in == 1 ? pv[1] : mid;
        second = node_msg("MatMul", ins, 2, (const char *const *)&out, 1, NULL);
        rc = rc == 0 && second == NULL ? MP_ENOMEM : rc;
    } else if (en->factored == 1) {
        /* Gemm: A' op(w) = A' op(u v): transB 0 -> (A' u) v, transB 1 -> (A' v^T) u^T; alpha,
         * beta and C go to the second Gemm */
        const int tb = attr_i(node, "transB", 0) != 0;
        const size_t ci = nth_field(node, ONNX_NODE_INPUT, 2);
        char *cname = ci < node->n ? mp__pb_strdup(&node->f[ci]) : NULL;
        rc = ci < node->n && cname == NULL ? MP_ENOMEM
                                           : set_str(node, ONNX_NODE_INPUT, 1, tb ? pv[1] : pv[0]);
        if (rc == 0 && ci < node->n) {
            mp__pb_remove_at(node, ci);
        }
        ins[0] = mid;
        ins[1] = tb ? pv[0] : pv[1];
        ins[2] = cname;
        if (rc == 0) {
            second = node_msg("Gemm", ins, cname ? 3 : 2, (const char *const *)&out, 1, NULL);
            if (second == NULL || copy_attr(node, second, "alpha") < 0 ||
                copy_attr(node, second, "beta") < 0 || copy_attr(node, second, "transB") < 0) {
                rc = MP_ENOMEM;
            }
        }
        if (rc == 0) {
            drop_attr(node, "alpha");
            drop_attr(node, "beta");
        }
        free(cname);
    } else {
        /* Conv(X, w, B) = Conv1x1(Conv_kxk(Conv1x1(X, u_in), core), u_out, B) */
        const size_t bi = nth_field(node, ONNX_NODE_INPUT, 2);
        char *bname = bi < node->n ? mp__pb_strdup(&node->f[bi]) : NULL;
        if (bi < node->n && bname == NULL) {
            free(out);
            return mp__err_set(rw->err, MP_ENOMEM, "out of memory rewiring '%s'", value);
        }
        const char *uin4, *uout4, *x0 = NULL, *first_out;
        int64_t sin[MP_MAX_DIMS], sout[MP_MAX_DIMS];
        edit_t e2 = {0};
        for (int d = 0; d < t->n_dims; d++) {
            ones[d] = 1;
        }
        memcpy(sin, ones, sizeof ones);
        memcpy(sout, ones, sizeof ones);
        sin[0] = en->r_in;
        sin[1] = t->shape[1];
        sout[0] = t->shape[0];
        sout[1] = en->r_out;
        /* the 1x1 kernels: the factors reshaped to [r_in, i, 1…] and [o, r_out, 1…] */
        if ((rc = edit_reshape(rw, &e2, pv[2], t->n_dims, sin, rw->tmp, "_u_in_kernel", &uin4)) <
                0 ||
            (rc = edit_reshape(rw, &e2, pv[0], t->n_dims, sout, rw->tmp, "_u_out_kernel", &uout4)) <
                0) {
            edit_cleanup(&e2);
            free(bname);
            free(out);
            return rc;
        }
        x0 = mp__pb_strdup(&node->f[nth_field(node, ONNX_NODE_INPUT, 0)]);
        first_out = fresh_name(&rw->names, rw->tmp, "_reduced");
        ins[0] = x0;
        ins[1] = uin4;
        first = x0 && first_out ? node_msg("Conv", ins, 2, &first_out, 1, NULL) : NULL;
        rc = first == NULL ? MP_ENOMEM : 0;
        if (rc == 0) {
            rc = set_str(node, ONNX_NODE_INPUT, 0, first_out);
        }
        if (rc == 0) {
            rc = set_str(node, ONNX_NODE_INPUT, 1, pv[1]);
        }
        if (rc == 0 && bi < node->n) {
            mp__pb_remove_at(node, bi);
        }
        ins[0] = mid;
        ins[1] = uout4;
        ins[2] = bname;
        if (rc == 0) {
            second = node_msg("Conv", ins, bname ? 3 : 2, (const char *const *)&out, 1, NULL);
            rc = second == NULL ? MP_ENOMEM : 0;
        }
        /* the reshapes and the first 1x1 go right before the consumer */
        for (size_t i = 0; i < e2.n_t && rc == 0; i++) {
            rc = mp__pb_insert_msg_take(g, 0, ONNX_GRAPH_INITIALIZER, e2.t[i].msg);
            e2.t[i].msg = NULL;
            at++;
        }
        for (size_t i = 0; i < e2.n_node && rc == 0; i++) {
            rc = mp__pb_insert_msg_take(g, at++, ONNX_GRAPH_NODE, e2.node[i]);
            e2.node[i] = NULL;
        }
        if (rc == 0) {
            rc = mp__pb_insert_msg_take(g, at++, ONNX_GRAPH_NODE, first);
            first = NULL;
        }
        edit_cleanup(&e2);
        free((char *)x0);
        free(bname);
    }
    if (rc == 0) {
        rc = set_str(node, ONNX_NODE_OUTPUT, 0, mid);
    }
    if (rc == 0) {
        rc = mp__pb_insert_msg_take(g, at + 1, ONNX_GRAPH_NODE, second);
        second = NULL;
    }
    mp__pb_msg_free(first);
    mp__pb_msg_free(second);
    free(out);
    return rc < 0 ? mp__err_set(rw->err, rc, "cannot rewire the consumers of '%s'", value) : 0;
}

static int rewire(rw_t *rw, mp__pb_msg_t *g, const char *value, const mp_tensor_t *t,
                  const entry_t *en, const char **pv)
{
    for (size_t i = 0; i < g->n; i++) {
        mp__pb_msg_t *node = g->f[i].sub;
        size_t before = g->n;
        int rc;
        if (g->f[i].num != ONNX_GRAPH_NODE || node == NULL || input_index(node, value) < 0) {
            continue;
        }
        if ((rc = rewire_one(rw, g, i, value, t, en, pv)) < 0) {
            return rc;
        }
        /* skip what was inserted: the consumer moved down with what went before it, and its
         * second half follows it */
        i += g->n - before;
    }
    return 0;
}

/* ---- placing an edit in the graph --------------------------------------------------------- */

static size_t field_index(const mp__pb_msg_t *g, uint32_t num, const mp__pb_msg_t *sub)
{
    for (size_t i = 0; i < g->n; i++) {
        if (g->f[i].num == num && (sub == NULL || g->f[i].sub == sub)) {
            return i;
        }
    }
    return g->n;
}

/* Take the graph input named value off (it becomes a node output): 1 if there was one, 0 if
 * not, or an error code. */
static int drop_input(mp__pb_msg_t *g, const char *value, mp_errctx_t *err)
{
    for (size_t i = 0; i < g->n; i++) {
        const mp__pb_field_t *nf;
        int rc;
        if (g->f[i].num != ONNX_GRAPH_INPUT) {
            continue;
        }
        if ((rc = vi_name(g, &g->f[i], &nf, err)) < 0) {
            return rc;
        }
        if (nf != NULL && mp__pb_streq(nf, value)) {
            mp__pb_remove_at(g, i);
            return 1;
        }
    }
    return 0;
}

static int place(rw_t *rw, const mp__onnx_weight_t *w, const char *value, edit_t *e)
{
    mp_errctx_t *err = rw->err;
    mp__pb_msg_t *g = w->graph;
    size_t at;
    int rc = 0;

    if (w->origin == MP_ONNX_CONSTANT) {
        /* the Constant's place: a Constant per new tensor, then the nodes */
        at = field_index(g, ONNX_GRAPH_NODE, w->node);
        MP_RETURN_IF(at == g->n, MP_EINTERNAL, "lost the Constant node of '%s'", value);
        mp__pb_remove_at(g, at);
        for (size_t i = 0; i < e->n_t && rc == 0; i++) {
            mp__pb_msg_t *cn = node_msg("Constant", NULL, 0, &e->t[i].name, 1, NULL);
            mp__pb_msg_t *tm = e->t[i].msg;
            e->t[i].msg = NULL;
            if (cn == NULL) {
                mp__pb_msg_free(tm);
            }
            if (cn == NULL || node_attr_tensor_take(cn, "value", tm) < 0) {
                mp__pb_msg_free(cn);
                rc = mp__err_set(err, MP_ENOMEM, "out of memory");
            }
            if (rc == 0) {
                rc = mp__pb_insert_msg_take(g, at++, ONNX_GRAPH_NODE, cn);
            }
        }
    } else {
        const int listed = drop_input(g, value, err);
        if (listed < 0) {
            return listed;
        }
        at = field_index(g, ONNX_GRAPH_INITIALIZER, w->tensor);
        MP_RETURN_IF(at == g->n, MP_EINTERNAL, "lost the initializer of '%s'", value);
        mp__pb_remove_at(g, at);
        for (size_t i = 0; i < e->n_t && rc == 0; i++) {
            rc = mp__pb_insert_msg_take(g, at++, ONNX_GRAPH_INITIALIZER, e->t[i].msg);
            e->t[i].msg = NULL;
            /* IR < 4: every initializer is also a graph input */
            if (rc == 0 && listed && rw->c->ir_version < 4) {
                rc = mp__pb_add_msg_take(
                    g, ONNX_GRAPH_INPUT,
                    value_info_msg(e->t[i].name, e->t[i].onnx_type, e->t[i].n_dims, e->t[i].dims));
            }
        }
        at = field_index(g, ONNX_GRAPH_NODE, NULL);
    }
    for (size_t i = 0; i < e->n_node && rc == 0; i++) {
        rc = mp__pb_insert_msg_take(g, at++, ONNX_GRAPH_NODE, e->node[i]);
        e->node[i] = NULL;
    }
    if (rc < 0 && rc != MP_EINTERNAL) {
        rc = mp__err_set(err, MP_ENOMEM, "out of memory editing the graph at '%s'", value);
    }
    return rc;
}

/* ---- the record --------------------------------------------------------------------------- */

static int parse_code(const char *name, const json_t *j, code_t *c, mp_errctx_t *err)
{
    const char *kind = json_string_value(json_object_get(j, "kind"));
    const char *gran, *scheme;

    MP_RETURN_IF(kind == NULL, MP_EFORMAT, REC ": tensor '%s': no code kind", name);
    if (strcmp(kind, "raw") == 0) {
        const int dt = mp_dtype_from_name(json_string_value(json_object_get(j, "dtype")) ?: "");
        MP_RETURN_IF(dt < 0 || !mp_dtype_is_float((mp_dtype_t)dt), MP_EFORMAT,
                     REC ": tensor '%s': a raw code needs a float dtype", name);
        c->kind = CODE_RAW;
        c->dtype = (mp_dtype_t)dt;
        return 0;
    }
    if (strcmp(kind, "share") == 0) {
        const json_t *k = json_object_get(j, "clusters");
        MP_RETURN_IF(!json_is_integer(k) || json_integer_value(k) < 2 ||
                         json_integer_value(k) > 256,
                     MP_EFORMAT, REC ": tensor '%s': clusters must be from 2 to 256", name);
        c->kind = CODE_SHARE;
        c->clusters = (int)json_integer_value(k);
        return 0;
    }
    if (strcmp(kind, "binary") == 0 || strcmp(kind, "ternary") == 0) {
        c->kind = kind[0] == 'b' ? CODE_BINARY : CODE_TERNARY;
    } else {
        const json_t *bits = json_object_get(j, "bits");
        MP_RETURN_IF(strcmp(kind, "int") != 0, MP_EFORMAT,
                     REC ": tensor '%s': unknown code kind '%s'", name, kind);
        MP_RETURN_IF(!json_is_integer(bits) || json_integer_value(bits) < 2 ||
                         json_integer_value(bits) > 8,
                     MP_EFORMAT, REC ": tensor '%s': bits must be from 2 to 8", name);
        c->kind = CODE_INT;
        c->bits = (int)json_integer_value(bits);
        scheme = json_string_value(json_object_get(j, "scheme"));
        MP_RETURN_IF(scheme == NULL ||
                         (strcmp(scheme, "symmetric") != 0 && strcmp(scheme, "asymmetric") != 0),
                     MP_EFORMAT, REC ": tensor '%s': scheme must be symmetric or asymmetric", name);
        c->asymmetric = strcmp(scheme, "asymmetric") == 0;
    }
    gran = json_string_value(json_object_get(j, "granularity"));
    MP_RETURN_IF(gran == NULL, MP_EFORMAT, REC ": tensor '%s': no granularity", name);
    if (strcmp(gran, "group") == 0 && c->kind == CODE_INT) {
        const json_t *g = json_object_get(j, "group_size");
        MP_RETURN_IF(!json_is_integer(g) || json_integer_value(g) < 1, MP_EFORMAT,
                     REC ": tensor '%s': group_size must be a positive integer", name);
        c->gran = GRAN_GROUP;
        c->group = json_integer_value(g);
        return 0;
    }
    MP_RETURN_IF(strcmp(gran, "channel") != 0 && strcmp(gran, "tensor") != 0, MP_EFORMAT,
                 REC ": tensor '%s': unknown granularity '%s'", name, gran);
    c->gran = strcmp(gran, "channel") == 0 ? GRAN_CHANNEL : GRAN_TENSOR;
    return 0;
}

static int entry_parse(int version, const char *name, const json_t *spec, const mp_tensor_t *orig,
                       entry_t *en, mp_errctx_t *err)
{
    const json_t *lr, *rank;
    const char *dec;
    int rc;

    memset(en, 0, sizeof *en);
    MP_RETURN_IF(!json_is_object(spec), MP_EFORMAT, REC ": tensor '%s': not an object", name);
    if (version == 1) {
        /* {"quantize": {"bits": 8, "scheme": …, "granularity": …}}, or pruned only */
        const json_t *q = json_object_get(spec, "quantize");
        if (q == NULL) {
            en->code.kind = CODE_RAW;
            en->code.dtype = orig->dtype;
            return 0;
        }
        json_t *j = json_pack("{s:s, s:O?, s:O?, s:O?}", "kind", "int", "bits",
                              json_object_get(q, "bits"), "scheme", json_object_get(q, "scheme"),
                              "granularity", json_object_get(q, "granularity"));
        MP_RETURN_IF(j == NULL, MP_ENOMEM, "out of memory");
        rc = parse_code(name, j, &en->code, err);
        json_decref(j);
        return rc;
    }
    /* version 2: the record's shape must be the weight's */
    const json_t *shape = json_object_get(spec, "shape");
    int same = json_is_array(shape) && json_array_size(shape) == (size_t)orig->n_dims;
    for (int d = 0; same && d < orig->n_dims; d++) {
        same = json_integer_value(json_array_get(shape, (size_t)d)) == orig->shape[d];
    }
    MP_RETURN_IF(!same, MP_EFORMAT, REC ": tensor '%s': \"shape\" is not the weight's shape", name);
    if ((rc = parse_code(name, json_object_get(spec, "code"), &en->code, err)) < 0) {
        return rc;
    }
    lr = json_object_get(spec, "lowrank");
    if (lr == NULL) {
        return 0;
    }
    dec = json_string_value(json_object_get(lr, "decomposition"));
    rank = json_object_get(lr, "rank");
    if (dec != NULL && strcmp(dec, "svd") == 0) {
        MP_RETURN_IF(orig->n_dims != 2 || !json_is_integer(rank) || json_integer_value(rank) < 1 ||
                         json_integer_value(rank) > orig->shape[0] ||
                         json_integer_value(rank) > orig->shape[1],
                     MP_EFORMAT, REC ": tensor '%s': bad SVD rank for its shape", name);
        en->factored = 1;
        en->r_out = json_integer_value(rank);
        return 0;
    }
    MP_RETURN_IF(dec == NULL || strcmp(dec, "tucker2") != 0, MP_EFORMAT,
                 REC ": tensor '%s': decomposition must be svd or tucker2", name);
    MP_RETURN_IF(orig->n_dims < 3 || !json_is_array(rank) || json_array_size(rank) != 2 ||
                     json_integer_value(json_array_get(rank, 0)) < 1 ||
                     json_integer_value(json_array_get(rank, 0)) > orig->shape[0] ||
                     json_integer_value(json_array_get(rank, 1)) < 1 ||
                     json_integer_value(json_array_get(rank, 1)) > orig->shape[1],
                 MP_EFORMAT, REC ": tensor '%s': bad Tucker-2 rank for its shape", name);
    en->factored = 2;
    en->r_out = json_integer_value(json_array_get(rank, 0));
    en->r_in = json_integer_value(json_array_get(rank, 1));
    return 0;
}

/* The value name a weight has in its graph (initializer name or Constant output), borrowed
 * into a malloc'd copy. */
static char *value_name(const mp__onnx_weight_t *w)
{
    return mp__pb_strdup(w->node ? mp__pb_find(w->node, ONNX_NODE_OUTPUT)
                                 : mp__pb_find(w->tensor, ONNX_TENSOR_NAME));
}

/* ---- structured pruning: removing channels ------------------------------------------------ */

/* A Conv weight W (or a Gemm weight with transB 1) whose output channels c are all zero
 * (structured pruning) gives the constant bias[c] (beta C[c]) on those channels, whatever the
 * padding. Where that constant reaches exactly one Conv, Gemm or MatMul through per-channel
 * operators only (BatchNormalization, Relu, Clip, LeakyRelu, Sigmoid,
 * HardSigmoid, Tanh, MaxPool, GlobalAveragePool, GlobalMaxPool, AveragePool without counted
 * padding), the channels are removed: W's rows, the bias and BatchNormalization entries, the
 * consumer's input columns; the constant the consumer would have seen is folded into its bias
 * (exact only where the consumer pads nothing, so a padded consumer is left alone unless the
 * constant is 0). Everything else — residual Adds, Concat, Reshape, several consumers, a graph
 * output, a subgraph reading a value, a weight already rewired, codes other than raw floats or
 * 8-bit — is left as zeros, and the reason is reported in the output's metadata. */

#define MAX_CHAIN 12

static const char *const PASS_OPS[] = {"Relu",
                                       "Clip",
                                       "LeakyRelu",
                                       "Sigmoid",
                                       "HardSigmoid",
                                       "Tanh",
                                       "MaxPool",
                                       "GlobalAveragePool",
                                       "GlobalMaxPool",
                                       "AveragePool",
                                       "BatchNormalization",
                                       NULL};

/* The single node of g reading value (its input index in *at), or NULL with a reason. */
static mp__pb_msg_t *sole_consumer(rw_t *rw, mp__pb_msg_t *g, const char *value, int *at,
                                   const char **why, int *rc)
{
    mp__pb_msg_t *found = NULL;
    int out;

    *rc = 0;
    if (used_below(g, value)) {
        *why = "a subgraph reads it";
        return NULL;
    }
    if ((out = is_output(g, value, rw->err)) != 0) {
        *rc = out < 0 ? out : 0;
        *why = "it is a graph output";
        return NULL;
    }
    for (size_t i = 0; i < g->n; i++) {
        mp__pb_msg_t *node = g->f[i].sub;
        int k;
        if (g->f[i].num != ONNX_GRAPH_NODE || node == NULL ||
            (k = input_index(node, value)) == -1) {
            continue;
        }
        if (found != NULL || k == -2) {
            *why = "several nodes read it";
            return NULL;
        }
        found = node;
        *at = k;
    }
    if (found == NULL) {
        *why = "nothing reads it";
    }
    return found;
}

/* The model tensor that is the weight named value in graph g (an initializer, or a Constant's
 * value), or -1. */
static ssize_t init_of(const rw_t *rw, const mp__pb_msg_t *g, const char *value)
{
    for (size_t i = 0; i < rw->m->n_tensors; i++) {
        const mp__onnx_weight_t *w = &rw->c->w[i];
        const mp__pb_field_t *nf;
        if (w->graph != g) {
            continue;
        }
        /* an initializer by its name, a Constant by its output */
        nf = w->node != NULL ? mp__pb_find(w->node, ONNX_NODE_OUTPUT)
                             : mp__pb_find(w->tensor, ONNX_TENSOR_NAME);
        if (nf != NULL && mp__pb_streq(nf, value)) {
            return (ssize_t)i;
        }
    }
    return -1;
}

/* The name of input k of node (malloc'd), or NULL when absent or empty — or when out of
 * memory, which sets *rc to MP_ENOMEM (and leaves it alone otherwise). */
static char *input_name(const mp__pb_msg_t *node, int k, int *rc)
{
    const size_t i = nth_field(node, ONNX_NODE_INPUT, k);
    char *s;

    if (i == node->n || node->f[i].len == 0) {
        return NULL;
    }
    if ((s = mp__pb_strdup(&node->f[i])) == NULL) {
        *rc = MP_ENOMEM;
    }
    return s;
}

static float attr_f(mp__pb_msg_t *node, const char *name, float dflt)
{
    const mp__pb_msg_t *a = mp__onnx_node_attr(node, name);
    const mp__pb_field_t *f = a ? mp__pb_find(a, ONNX_ATTR_F) : NULL;
    float v = dflt;

    if (f != NULL && f->wire == MP_PB_I32) {
        const uint32_t b = (uint32_t)f->v;
        memcpy(&v, &b, 4);
    }
    return v;
}

/* 1 if a Conv or pool pads nothing (no pads or all zero, auto_pad absent, NOTSET or VALID). */
static int pads_nothing(mp__pb_msg_t *node)
{
    const mp__pb_msg_t *a = mp__onnx_node_attr(node, "pads");
    const mp__pb_msg_t *ap = mp__onnx_node_attr(node, "auto_pad");
    const mp__pb_field_t *s = ap ? mp__pb_find(ap, ONNX_ATTR_S) : NULL;

    if (s != NULL && !mp__pb_streq(s, "NOTSET") && !mp__pb_streq(s, "VALID") && s->len > 0) {
        return 0;
    }
    for (size_t i = 0; a != NULL && i < a->n; i++) {
        if (a->f[i].num == ONNX_ATTR_INTS) {
            if (a->f[i].wire == MP_PB_VARINT && a->f[i].v != 0) {
                return 0;
            }
            if (a->f[i].wire == MP_PB_LEN) {
                for (size_t b = 0; b < a->f[i].len; b++) {
                    if (a->f[i].data[b] != 0) {
                        return 0;
                    }
                }
            }
        }
    }
    return 1;
}

/* The F32 values of a weight as the output graph will compute them: an uncompressed F32
 * initializer, or a compressed one stored raw (F32) or as 8-bit codes per channel or tensor.
 * *vals malloc'd (n elements). 1 done, 0 not a form handled (why set), or an error code. */
static int weight_values(rw_t *rw, size_t ti, const json_t *spec, int version, float **vals,
                         const char **why)
{
    mp_errctx_t *err = rw->err;
    const mp_tensor_t *t = &rw->m->tensors[ti], *q, *sc;
    const size_t n = (size_t)mp_tensor_elements(t);
    entry_t en;
    int rc;

    *vals = NULL;
    if (t->dtype != MP_DT_F32) {
        *why = "not an F32 weight";
        return 0;
    }
    if (spec == NULL) {
        *vals = malloc(n ? n * sizeof **vals : 1);
        MP_RETURN_IF(*vals == NULL, MP_ENOMEM, "out of memory");
        memcpy(*vals, t->data, n * sizeof **vals);
        return 1;
    }
    if ((rc = entry_parse(version, t->name, spec, t, &en, rw->err)) < 0) {
        return rc;
    }
    code_resolve(&en.code, t->n_dims, t->shape);
    if (en.factored || !((en.code.kind == CODE_RAW && en.code.dtype == MP_DT_F32) ||
                         (en.code.kind == CODE_INT && en.code.bits == 8 &&
                          en.code.gran != GRAN_GROUP && !en.code.asymmetric))) {
        *why = "its code is neither raw floats nor symmetric 8-bit codes";
        return 0;
    }
    if (en.code.kind == CODE_RAW) {
        if ((rc = stored(rw, t->name, "", MP_DT_F32, t->n_dims, t->shape, &q)) < 0) {
            return rc;
        }
        *vals = malloc(n ? n * sizeof **vals : 1);
        MP_RETURN_IF(*vals == NULL, MP_ENOMEM, "out of memory");
        memcpy(*vals, q->data, n * sizeof **vals);
        return 1;
    }
    const int64_t rows = en.code.gran == GRAN_CHANNEL ? t->shape[0] : 1;
    if ((rc = stored(rw, t->name, "", MP_DT_I8, t->n_dims, t->shape, &q)) < 0 ||
        (rc = stored(rw, t->name, "_scale", MP_DT_F32, 1, &rows, &sc)) < 0) {
        return rc;
    }
    *vals = malloc(n ? n * sizeof **vals : 1);
    MP_RETURN_IF(*vals == NULL, MP_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        float s;
        memcpy(&s, (const char *)sc->data + 4 * (rows > 1 ? i / (n / (size_t)rows) : 0), 4);
        (*vals)[i] = (float)((const int8_t *)q->data)[i] * s;
    }
    return 1;
}

/* Replace the data of a TensorProto: new dims and raw_data, the same name and type. */
static int tensor_replace(mp__pb_msg_t *tp, int n_dims, const int64_t *dims, const void *data,
                          size_t n_bytes)
{
    static const uint32_t data_fields[] = {ONNX_TENSOR_DIMS,       ONNX_TENSOR_FLOAT_DATA,
                                           ONNX_TENSOR_INT32_DATA, ONNX_TENSOR_INT64_DATA,
                                           ONNX_TENSOR_RAW_DATA,   ONNX_TENSOR_DOUBLE_DATA,
                                           ONNX_TENSOR_UINT64_DATA};
    int rc = 0;

    for (size_t i = 0; i < sizeof data_fields / sizeof *data_fields; i++) {
        mp__pb_remove_all(tp, data_fields[i]);
    }
    for (int d = 0; d < n_dims && rc == 0; d++) {
        rc = mp__pb_add_varint(tp, ONNX_TENSOR_DIMS, (uint64_t)dims[d]);
    }
    return rc == 0 ? mp__pb_add_bytes(tp, ONNX_TENSOR_RAW_DATA, data, n_bytes) : rc;
}

/* Keep the entries of a [len] F32 vector (an initializer of g named value, read by nothing
 * else) whose keep[c] is set. */
static int shrink_vector(rw_t *rw, mp__pb_msg_t *g, const char *value, const uint8_t *keep,
                         int64_t len)
{
    const ssize_t ti = init_of(rw, g, value);
    const mp_tensor_t *t;
    float *v;
    int64_t k = 0;
    int rc;

    if (ti < 0) {
        return MP_EINTERNAL;
    }
    t = &rw->m->tensors[ti];
    v = malloc((size_t)len * sizeof *v + 1);
    if (v == NULL) {
        return MP_ENOMEM;
    }
    for (int64_t c = 0; c < len; c++) {
        if (keep[c]) {
            memcpy(&v[k++], (const float *)t->data + c, 4);
        }
    }
    rc = tensor_replace(rw->c->w[ti].tensor, 1, &k, v, (size_t)k * sizeof *v);
    free(v);
    return rc;
}

/* 1 if value is an uncompressed F32 [n] initializer of g read by one node only (the caller's),
 * 0 if not, or an error code. */
static int vector_ok(rw_t *rw, mp__pb_msg_t *g, const char *value, int64_t n, const json_t *tensors)
{
    const ssize_t ti = value ? init_of(rw, g, value) : -1;
    const mp_tensor_t *t;
    const mp__pb_msg_t *user;
    const char *why;
    int at, rc = 0;

    if (ti < 0) {
        return 0;
    }
    t = &rw->m->tensors[ti];
    if (t->dtype != MP_DT_F32 || t->n_dims != 1 || t->shape[0] != n ||
        json_object_get(tensors, t->name) != NULL) {
        return 0;
    }
    user = sole_consumer(rw, g, value, &at, &why, &rc);
    return rc < 0 ? rc : user != NULL;
}

typedef struct chan {
    const char *wname; /* the pruned weight (model tensor name) */
    size_t wi;         /* its index */
    mp__pb_msg_t *g;
    mp__pb_msg_t *conv; /* its Conv */
    mp__pb_msg_t *chain[MAX_CHAIN];
    int n_chain;
    mp__pb_msg_t *next; /* the Conv, Gemm or MatMul that reads the channels */
    size_t w2i;         /* its weight */
    int axis2;          /* the axis of that weight the channels are on */
    int64_t o;          /* output channels of W */
    uint8_t *keep;      /* [o] */
    float *v;           /* [o]: the constant each channel carries to `next` */
    int64_t n_removed;
} chan_t;

/* Follow W's channels from its layer to the layer that reads them; 1 when they can be removed,
 * 0 (why set) when not, or an error code. */
static int chan_trace(rw_t *rw, chan_t *ch, const json_t *tensors, int version, uint8_t *touched,
                      const char **why)
{
    mp__pb_msg_t *node;
    char *cur = NULL, *b = NULL, *w2 = NULL, *wv = value_name(&rw->c->w[ch->wi]);
    int at, rc = 0, res = 0;

    if (wv == NULL) {
        return mp__err_set(rw->err, MP_ENOMEM, "out of memory removing channels");
    }
    if (rw->c->ir_version < 4) {
        *why = "IR 3 lists every initializer among the graph inputs, with its shape";
        free(wv);
        return 0;
    }
    node = sole_consumer(rw, ch->g, wv, &at, why, &rc);
    free(wv);
    if (rc < 0 || node == NULL) {
        return rc;
    }
    if (at != 1 || !((mp__onnx_node_is(node, "Conv") && attr_i(node, "group", 1) == 1) ||
                     (mp__onnx_node_is(node, "Gemm") && attr_i(node, "transB", 0) != 0 &&
                      rw->m->tensors[ch->wi].n_dims == 2))) {
        *why = "its consumer is not a Conv (group 1) or a Gemm (transB 1) reading it as the "
               "weight";
        return 0;
    }
    ch->conv = node;
    /* the bias: each removed channel carries bias[c] (0 without one) */
    b = input_name(node, 2, &rc);
    if (rc < 0) {
        goto out;
    }
    for (int64_t c = 0; c < ch->o; c++) {
        ch->v[c] = 0.0f;
    }
    if (b != NULL) {
        const ssize_t bi = init_of(rw, ch->g, b);
        const int ok = vector_ok(rw, ch->g, b, ch->o, tensors);
        if (ok <= 0) {
            rc = ok;
            *why = "its bias is not a plain F32 initializer of its own";
            goto out;
        }
        memcpy(ch->v, rw->m->tensors[bi].data, (size_t)ch->o * sizeof *ch->v);
        if (mp__onnx_node_is(node, "Gemm")) {
            /* alpha A W^T + beta C: a zero row of W leaves beta C[c] */
            const float beta = attr_f(node, "beta", 1.0f);
            for (int64_t c = 0; c < ch->o; c++) {
                ch->v[c] *= beta;
            }
        }
    }
    cur = mp__pb_strdup(&node->f[nth_field(node, ONNX_NODE_OUTPUT, 0)]);
    rc = cur == NULL ? MP_ENOMEM : 0;
    while (rc == 0) {
        int k;
        node = sole_consumer(rw, ch->g, cur, &at, why, &rc);
        if (rc < 0 || node == NULL) {
            goto out;
        }
        if (mp__onnx_node_is(node, "Conv") || mp__onnx_node_is(node, "Gemm") ||
            mp__onnx_node_is(node, "MatMul")) {
            break;
        }
        for (k = 0; PASS_OPS[k] != NULL && !mp__onnx_node_is(node, PASS_OPS[k]); k++) {
        }
        if (PASS_OPS[k] == NULL || at != 0 || ch->n_chain == MAX_CHAIN ||
            mp__pb_count(node, ONNX_NODE_OUTPUT) != 1) {
            *why = "the channels reach something other than per-channel operators and a Conv "
                   "(a residual Add, Concat, Reshape, …)";
            goto out;
        }
        if (mp__onnx_node_is(node, "AveragePool") && attr_i(node, "count_include_pad", 0) != 0 &&
            !pads_nothing(node)) {
            *why = "an AveragePool counts padding";
            goto out;
        }
        if (mp__onnx_node_is(node, "BatchNormalization")) {
            for (int p = 1; p <= 4; p++) {
                char *pn = input_name(node, p, &rc);
                const int ok = pn != NULL ? vector_ok(rw, ch->g, pn, ch->o, tensors) : 0;
                free(pn);
                rc = rc < 0 ? rc : ok < 0 ? ok : 0;
                if (rc < 0) {
                    goto out;
                }
                if (!ok) {
                    *why = "a BatchNormalization parameter is not a plain F32 initializer of its "
                           "own";
                    goto out;
                }
            }
        }
        if (mp__onnx_node_is(node, "Clip") && rw->c->opset >= 11) {
            for (int p = 1; p <= 2; p++) {
                char *pn = input_name(node, p, &rc);
                const ssize_t pi = pn ? init_of(rw, ch->g, pn) : -1;
                const int ok = pn == NULL || (pi >= 0 && rw->m->tensors[pi].dtype == MP_DT_F32 &&
                                              mp_tensor_elements(&rw->m->tensors[pi]) == 1);
                free(pn);
                if (rc < 0) {
                    goto out;
                }
                if (!ok) {
                    *why = "a Clip bound is not a constant";
                    goto out;
                }
            }
        }
        ch->chain[ch->n_chain++] = node;
        free(cur);
        cur = mp__pb_strdup(&node->f[nth_field(node, ONNX_NODE_OUTPUT, 0)]);
        rc = cur == NULL ? MP_ENOMEM : 0;
    }
    if (rc < 0) {
        goto out;
    }
    w2 = input_name(node, 1, &rc);
    if (rc < 0) {
        goto out;
    }
    if (at != 0 || attr_i(node, "group", 1) != 1 || attr_i(node, "transA", 0) != 0 || w2 == NULL) {
        *why = "the layer that reads the channels is grouped, transposes them or reads them "
               "otherwise";
        goto out;
    }
    /* the channels are W2's axis 1 for Conv and Gemm(transB 1), axis 0 for Gemm(transB 0) and
     * MatMul */
    ch->axis2 = mp__onnx_node_is(node, "Conv") ||
                (mp__onnx_node_is(node, "Gemm") && attr_i(node, "transB", 0) != 0);
    {
        const ssize_t w2i = init_of(rw, ch->g, w2);
        int at2;
        if (w2i < 0 || (size_t)w2i == ch->wi || touched[w2i] || touched[ch->wi] ||
            sole_consumer(rw, ch->g, w2, &at2, why, &rc) != node || rc < 0) {
            *why = rc < 0 ? *why : "the next layer's weight is shared or rewired already";
            goto out;
        }
        const mp_tensor_t *t2 = &rw->m->tensors[w2i];
        float *vals = NULL;
        if (t2->n_dims < 2 || (!mp__onnx_node_is(node, "Conv") && t2->n_dims != 2) ||
            t2->shape[ch->axis2 ? 1 : 0] != ch->o) {
            *why = "the next layer's weight does not read these channels";
            goto out;
        }
        rc =
            weight_values(rw, (size_t)w2i, json_object_get(tensors, t2->name), version, &vals, why);
        free(vals);
        if (rc <= 0) {
            goto out;
        }
        rc = 0;
        ch->w2i = (size_t)w2i;
    }
    ch->next = node;
    res = 1;
out:
    free(cur);
    free(b);
    free(w2);
    return rc < 0 ? rc : res;
}

/* The constants through the chain (as the operators compute them, in float). */
static int chan_propagate(rw_t *rw, chan_t *ch)
{
    for (int k = 0; k < ch->n_chain; k++) {
        mp__pb_msg_t *node = ch->chain[k];
        const float *bn[5] = {NULL};
        float lo = -INFINITY, hi = INFINITY;
        if (mp__onnx_node_is(node, "BatchNormalization")) {
            for (int p = 1; p <= 4; p++) {
                int rc = 0;
                char *pn = input_name(node, p, &rc);
                const ssize_t pi = pn ? init_of(rw, ch->g, pn) : -1;
                free(pn);
                if (pi < 0) {
                    return MP_ENOMEM; /* vector_ok passed: only strdup could fail */
                }
                bn[p] = rw->m->tensors[pi].data;
            }
        }
        if (mp__onnx_node_is(node, "Clip")) {
            if (rw->c->opset < 11) {
                lo = attr_f(node, "min", -INFINITY);
                hi = attr_f(node, "max", INFINITY);
            } else {
                for (int p = 1; p <= 2; p++) {
                    int rc = 0;
                    char *pn = input_name(node, p, &rc);
                    const ssize_t pi = pn ? init_of(rw, ch->g, pn) : -1;
                    if (rc < 0 || (pn != NULL && pi < 0)) {
                        free(pn);
                        return MP_ENOMEM;
                    }
                    free(pn);
                    if (pi >= 0) {
                        memcpy(p == 1 ? &lo : &hi, rw->m->tensors[pi].data, 4);
                    }
                }
            }
        }
        for (int64_t c = 0; c < ch->o; c++) {
            float x = ch->v[c];
            if (bn[1] != NULL) {
                const float eps = attr_f(node, "epsilon", 1e-5f);
                x = (x - bn[3][c]) / sqrtf(bn[4][c] + eps) * bn[1][c] + bn[2][c];
            } else if (mp__onnx_node_is(node, "Relu")) {
                x = x > 0 ? x : 0;
            } else if (mp__onnx_node_is(node, "Clip")) {
                x = x < lo ? lo : x > hi ? hi : x;
            } else if (mp__onnx_node_is(node, "LeakyRelu")) {
                x = x >= 0 ? x : x * attr_f(node, "alpha", 0.01f);
            } else if (mp__onnx_node_is(node, "Sigmoid")) {
                x = 1.0f / (1.0f + expf(-x));
            } else if (mp__onnx_node_is(node, "HardSigmoid")) {
                x = attr_f(node, "alpha", 0.2f) * x + attr_f(node, "beta", 0.5f);
                x = x < 0 ? 0 : x > 1 ? 1 : x;
            } else if (mp__onnx_node_is(node, "Tanh")) {
                x = tanhf(x);
            } /* pools: a constant stays itself */
            ch->v[c] = x;
        }
    }
    return 0;
}

/* A compressed weight's stored tensors with rows (axis 0) or columns (axis 1) dropped where
 * keep is 0, as replacements in rw->cm_own, and its new shape recorded. */
static int chan_cut_stored(rw_t *rw, size_t ti, const json_t *spec, int version, int axis,
                           const uint8_t *keep, int64_t n_keep)
{
    mp_errctx_t *err = rw->err;
    const mp_tensor_t *t = &rw->m->tensors[ti], *q, *sc;
    entry_t en;
    shape_ov_t *ov;
    int64_t shape[MP_MAX_DIMS], inner = 1;
    const int64_t rows = t->shape[0], mid = t->shape[1];
    size_t es;
    uint8_t *out = NULL;
    int rc;

    if ((rc = entry_parse(version, t->name, spec, t, &en, rw->err)) < 0) {
        return rc;
    }
    code_resolve(&en.code, t->n_dims, t->shape);
    const int is_int = en.code.kind == CODE_INT;
    if ((rc = stored(rw, t->name, "", is_int ? MP_DT_I8 : MP_DT_F32, t->n_dims, t->shape, &q)) <
        0) {
        return rc;
    }
    for (int d = 2; d < t->n_dims; d++) {
        inner *= t->shape[d];
    }
    memcpy(shape, t->shape, sizeof shape);
    shape[axis] = n_keep;
    es = mp_dtype_size(q->dtype);
    out = malloc((size_t)(shape[0] * shape[1] * inner) * es + 1);
    MP_RETURN_IF(out == NULL, MP_ENOMEM, "out of memory removing channels");
    size_t k = 0;
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t c = 0; c < mid; c++) {
            if ((axis == 0 && !keep[r]) || (axis == 1 && !keep[c])) {
                continue;
            }
            memcpy(out + k, (const uint8_t *)q->data + (size_t)((r * mid + c) * inner) * es,
                   (size_t)inner * es);
            k += (size_t)inner * es;
        }
    }
    if (rw->cm_own == NULL && (rw->cm_own = mp_model_new()) == NULL) {
        free(out);
        return mp__err_set(rw->err, MP_ENOMEM, "out of memory removing channels");
    }
    rc = mp_model_add_take(rw->cm_own, t->name, q->dtype, t->n_dims, shape, out, k, rw->err);
    if (rc == 0 && is_int && axis == 0 && en.code.gran == GRAN_CHANNEL) {
        float *s = malloc((size_t)n_keep * sizeof *s + 1);
        char *sname = NULL;
        int64_t j = 0;
        if ((rc = stored(rw, t->name, "_scale", MP_DT_F32, 1, &rows, &sc)) < 0) {
            free(s);
            return rc;
        }
        if (s == NULL || asprintf(&sname, "%s_scale", t->name) < 0) {
            free(s);
            return mp__err_set(rw->err, MP_ENOMEM, "out of memory removing channels");
        }
        for (int64_t r = 0; r < rows; r++) {
            if (keep[r]) {
                memcpy(&s[j++], (const float *)sc->data + r, 4);
            }
        }
        rc = mp_model_add_take(rw->cm_own, sname, MP_DT_F32, 1, &n_keep, s,
                               (size_t)n_keep * sizeof *s, rw->err);
        free(sname);
    }
    if (rc < 0) {
        return rc;
    }
    ov = realloc(rw->ov, (rw->n_ov + 1) * sizeof *ov);
    MP_RETURN_IF(ov == NULL, MP_ENOMEM, "out of memory removing channels");
    rw->ov = ov;
    ov[rw->n_ov].tensor = ti;
    ov[rw->n_ov].n_dims = t->n_dims;
    memcpy(ov[rw->n_ov].shape, shape, sizeof shape);
    rw->n_ov++;
    return 0;
}

/* An uncompressed F32 weight's initializer with rows or columns dropped, in the tree. */
static int chan_cut_init(rw_t *rw, size_t ti, int axis, const uint8_t *keep, int64_t n_keep)
{
    mp_errctx_t *err = rw->err;
    const mp_tensor_t *t = &rw->m->tensors[ti];
    int64_t shape[MP_MAX_DIMS], inner = 1;
    float *out;
    size_t k = 0;
    int rc;

    for (int d = 2; d < t->n_dims; d++) {
        inner *= t->shape[d];
    }
    memcpy(shape, t->shape, sizeof shape);
    shape[axis] = n_keep;
    out = malloc((size_t)(shape[0] * shape[1] * inner) * sizeof *out + 1);
    MP_RETURN_IF(out == NULL, MP_ENOMEM, "out of memory removing channels");
    for (int64_t r = 0; r < t->shape[0]; r++) {
        for (int64_t c = 0; c < t->shape[1]; c++) {
            if ((axis == 0 && !keep[r]) || (axis == 1 && !keep[c])) {
                continue;
            }
            memcpy(out + k, (const float *)t->data + (r * t->shape[1] + c) * inner,
                   (size_t)inner * sizeof *out);
            k += (size_t)inner;
        }
    }
    rc = tensor_replace(rw->c->w[ti].tensor, t->n_dims, shape, out, k * sizeof *out);
    free(out);
    return rc < 0 ? mp__err_set(rw->err, MP_ENOMEM, "out of memory removing channels") : 0;
}

/* Apply one traced removal. */
static int chan_apply(rw_t *rw, chan_t *ch, const json_t *tensors, int version)
{
    mp_errctx_t *err = rw->err;
    const mp_tensor_t *t2 = &rw->m->tensors[ch->w2i];
    const json_t *spec2 = json_object_get(tensors, t2->name);
    const int64_t o2 = t2->shape[ch->axis2 ? 0 : 1], n_keep = ch->o - ch->n_removed;
    const int gemm = mp__onnx_node_is(ch->next, "Gemm");
    /* Gemm adds beta C to alpha A B: what is folded into C is scaled by alpha / beta */
    const float ab = gemm ? attr_f(ch->next, "alpha", 1.0f) / attr_f(ch->next, "beta", 1.0f) : 1;
    int64_t inner = 1;
    float *w2 = NULL, *add = NULL;
    const char *why = NULL;
    char *b = NULL;
    int rc, fold = 0;

    for (int d = 2; d < t2->n_dims; d++) {
        inner *= t2->shape[d];
    }
    /* the constants the removed channels would have fed the next Conv, into its bias */
    rc = weight_values(rw, ch->w2i, spec2, version, &w2, &why);
    if (rc <= 0) {
        return rc < 0 ? rc : mp__err_set(rw->err, MP_EINTERNAL, "checked before: %s", why);
    }
    add = calloc((size_t)o2 + 1, sizeof *add);
    MP_GOTO_IF(add == NULL, MP_ENOMEM, "out of memory removing channels");
    for (int64_t c = 0; c < ch->o; c++) {
        if (ch->keep[c] || ch->v[c] == 0.0f) {
            continue;
        }
        fold = 1;
        for (int64_t r = 0; r < o2; r++) {
            float s = 0;
            for (int64_t j = 0; j < inner; j++) {
                s += ch->axis2 ? w2[(r * ch->o + c) * inner + j] : w2[c * o2 + r];
            }
            add[r] += s * ch->v[c] * ab;
        }
    }
    /* W's rows, W's bias, the BatchNormalization entries */
    rc = chan_cut_stored(rw, ch->wi, json_object_get(tensors, ch->wname), version, 0, ch->keep,
                         n_keep);
    if (rc == 0 && (b = input_name(ch->conv, 2, &rc)) != NULL) {
        rc = shrink_vector(rw, ch->g, b, ch->keep, ch->o);
    }
    for (int k = 0; k < ch->n_chain && rc == 0; k++) {
        if (!mp__onnx_node_is(ch->chain[k], "BatchNormalization")) {
            continue;
        }
        for (int p = 1; p <= 4 && rc == 0; p++) {
            char *pn = input_name(ch->chain[k], p, &rc);
            rc = pn == NULL ? MP_ENOMEM : shrink_vector(rw, ch->g, pn, ch->keep, ch->o);
            free(pn);
        }
    }
    /* the next Conv's columns and bias */
    if (rc == 0) {
        const int axis = ch->axis2 ? 1 : 0;
        rc = spec2 != NULL ? chan_cut_stored(rw, ch->w2i, spec2, version, axis, ch->keep, n_keep)
                           : chan_cut_init(rw, ch->w2i, axis, ch->keep, n_keep);
    }
    free(b);
    b = NULL;
    if (rc == 0 && fold) {
        b = input_name(ch->next, 2, &rc);
        if (rc < 0) {
            goto out;
        }
        if (b != NULL) {
            const ssize_t bi = init_of(rw, ch->g, b);
            for (int64_t r = 0; r < o2; r++) {
                add[r] += ((const float *)rw->m->tensors[bi].data)[r];
            }
            rc = tensor_replace(rw->c->w[bi].tensor, 1, &o2, add, (size_t)o2 * sizeof *add);
        } else {
            /* a new bias initializer, and the Conv's third input */
            const char *bn = fresh_name(&rw->names, rw->m->tensors[ch->w2i].name, "_bias");
            mp__pb_msg_t *tm = bn ? tensor_msg(bn, ONNX_FLOAT, 1, &o2, add, (size_t)o2 * 4) : NULL;
            rc = tm == NULL ? MP_ENOMEM
                            : mp__pb_insert_msg_take(ch->g, 0, ONNX_GRAPH_INITIALIZER, tm);
            /* the third input: appended (repeated fields keep their own order), or an empty
             * one named */
            if (rc == 0) {
                rc = mp__pb_count(ch->next, ONNX_NODE_INPUT) >= 3
                         ? set_str(ch->next, ONNX_NODE_INPUT, 2, bn)
                         : mp__pb_add_str(ch->next, ONNX_NODE_INPUT, bn);
            }
        }
    }
    /* shapes recorded for the values between the two Convs are stale: dropped */
    for (int k = -1; k < ch->n_chain && rc == 0; k++) {
        mp__pb_msg_t *node = k < 0 ? ch->conv : ch->chain[k];
        const mp__pb_field_t *of = &node->f[nth_field(node, ONNX_NODE_OUTPUT, 0)];
        for (size_t i = ch->g->n; i-- > 0 && rc == 0;) {
            const mp__pb_field_t *nf;
            if (ch->g->f[i].num != ONNX_GRAPH_VALUE_INFO) {
                continue;
            }
            if ((rc = vi_name(ch->g, &ch->g->f[i], &nf, rw->err)) == 0 && nf != NULL &&
                nf->len == of->len && memcmp(nf->data, of->data, of->len) == 0) {
                mp__pb_remove_at(ch->g, i);
            }
        }
    }
    if (rc < 0 && rc != MP_EINTERNAL) {
        rc = mp__err_set(rw->err, MP_ENOMEM, "out of memory removing channels");
    }
out:
    free(b);
    free(add);
    free(w2);
    return rc;
}

/* The pass: every compressed Conv weight with zero output channels, traced, removed where
 * safe; what was done and what was not, as a JSON object added to *report. */
static int remove_channels(rw_t *rw, const json_t *tensors, int version, json_t *report)
{
    mp_errctx_t *err = rw->err;
    uint8_t *touched = calloc(rw->m->n_tensors + 1, 1);
    const char *name;
    json_t *spec;
    chan_t ch;
    int rc = 0;

    MP_RETURN_IF(touched == NULL, MP_ENOMEM, "out of memory removing channels");
    memset(&ch, 0, sizeof ch);
    json_object_foreach((json_t *)tensors, name, spec)
    {
        const mp_tensor_t *t = mp_model_find(rw->m, name);
        const char *why = NULL;
        float *w = NULL;
        json_t *r = NULL;
        int ok;

        if (t == NULL || t->n_dims < 2) {
            continue;
        }
        if (touched[t - rw->m->tensors]) {
            continue; /* its input channels went with an earlier removal: not cut twice */
        }
        memset(&ch, 0, sizeof ch);
        ch.wname = name;
        ch.wi = (size_t)(t - rw->m->tensors);
        ch.g = rw->c->w[ch.wi].graph;
        ch.o = t->shape[0];
        if ((rc = weight_values(rw, ch.wi, spec, version, &w, &why)) < 0) {
            break;
        }
        if (rc == 0) {
            continue; /* not a form whose zeros we read */
        }
        rc = 0;
        ch.keep = malloc((size_t)ch.o + 1);
        ch.v = malloc((size_t)ch.o * sizeof *ch.v + 1);
        if (ch.keep == NULL || ch.v == NULL) {
            rc = mp__err_set(rw->err, MP_ENOMEM, "out of memory removing channels");
        }
        const size_t per = ch.o ? (size_t)mp_tensor_elements(t) / (size_t)ch.o : 0;
        for (int64_t c = 0; rc == 0 && c < ch.o; c++) {
            size_t z = 0;
            while (z < per && w[(size_t)c * per + z] == 0.0f) {
                z++;
            }
            ch.keep[c] = z < per;
            ch.n_removed += !ch.keep[c];
        }
        free(w);
        if (rc == 0 && ch.n_removed > 0 && ch.n_removed < ch.o) {
            ok = chan_trace(rw, &ch, tensors, version, touched, &why);
            if (ok == 1 && (rc = chan_propagate(rw, &ch)) == 0) {
                int folds = 0;
                for (int64_t c = 0; c < ch.o; c++) {
                    folds |= !ch.keep[c] && ch.v[c] != 0.0f;
                }
                if (folds && mp__onnx_node_is(ch.next, "Conv") && !pads_nothing(ch.next)) {
                    ok = 0;
                    why = "the next Conv pads, so the removed channels' constant cannot be "
                          "folded into its bias";
                } else if (folds && (mp__onnx_node_is(ch.next, "MatMul") ||
                                     attr_f(ch.next, "beta", 1.0f) == 0.0f)) {
                    ok = 0;
                    why = "the next layer has no bias to fold the removed channels' constant "
                          "into";
                } else if (folds) {
                    const mp_tensor_t *t2 = &rw->m->tensors[ch.w2i];
                    char *b2 = input_name(ch.next, 2, &rc);
                    const int bok =
                        b2 == NULL ? 1
                                   : vector_ok(rw, ch.g, b2, t2->shape[ch.axis2 ? 0 : 1], tensors);
                    free(b2);
                    rc = rc < 0 ? rc : bok < 0 ? bok : 0;
                    if (bok == 0) {
                        ok = 0;
                        why = "the next layer's bias is not a plain F32 vector of its own";
                    }
                }
            }
            rc = ok < 0 ? ok : rc;
            if (rc == 0 && ok == 1) {
                rc = chan_apply(rw, &ch, tensors, version);
                touched[ch.wi] = touched[ch.w2i] = 1;
                r = json_pack("{s:I, s:I, s:s}", "removed", (json_int_t)ch.n_removed, "of",
                              (json_int_t)ch.o, "into", rw->m->tensors[ch.w2i].name);
            } else if (rc == 0) {
                r = json_pack("{s:I, s:I, s:s}", "zero_channels", (json_int_t)ch.n_removed, "of",
                              (json_int_t)ch.o, "kept_because", why ? why : "");
            }
            if (rc == 0 && (r == NULL || json_object_set_new(report, name, r) < 0)) {
                rc = mp__err_set(rw->err, MP_ENOMEM, "out of memory removing channels");
            }
        }
        free(ch.keep);
        free(ch.v);
        if (rc < 0) {
            break;
        }
    }
    free(touched);
    return rc;
}

/* The channel report as metadata_props "modelpress.channels" of the output (JSON text). */
static int add_metadata(rw_t *rw, const json_t *report)
{
    char *text = json_dumps(report, JSON_COMPACT | JSON_SORT_KEYS);
    mp__pb_msg_t *e = mp__pb_msg_new();
    int rc = text == NULL || e == NULL ||
                     mp__pb_add_str(e, ONNX_ENTRY_KEY, MP_ONNX_CHANNELS_KEY) < 0 ||
                     mp__pb_add_str(e, ONNX_ENTRY_VALUE, text) < 0
                 ? MP_ENOMEM
                 : 0;

    free(text);
    if (rc < 0) {
        mp__pb_msg_free(e);
        return mp__err_set(rw->err, MP_ENOMEM, "out of memory writing the channel report");
    }
    rc = mp__pb_add_msg_take(rw->c->root, ONNX_MODEL_METADATA_PROPS, e);
    return rc < 0 ? mp__err_set(rw->err, MP_ENOMEM, "out of memory writing the channel report") : 0;
}

int mp_onnx_check_apply(const mp_model_t *onnx_in, mp_errctx_t *err)
{
    const mp__onnx_t *cin = mp__onnx_ctx(onnx_in);

    MP_RETURN_IF(cin == NULL, MP_EINVAL, "mp_onnx_apply: the input model is not ONNX");
    MP_RETURN_IF(cin->opset < MP_ONNX_REWRITE_OPSET_MIN, MP_EUNSUPPORTED,
                 "compressing an ONNX model needs opset %d or later (the nodes that rebuild its "
                 "weights broadcast as opset %d defines); this one has opset %lld: convert it "
                 "first (onnx.version_converter), or write the compressed tensors as .mpz or "
                 ".safetensors",
                 MP_ONNX_REWRITE_OPSET_MIN, MP_ONNX_REWRITE_OPSET_MIN, (long long)cin->opset);
    return 0;
}

int mp_onnx_apply(const mp_model_t *onnx_in, const mp_model_t *compressed, mp_model_t **onnx_out,
                  mp_errctx_t *err)
{
    const mp__onnx_t *cin = mp__onnx_ctx(onnx_in);
    const char *record, *name;
    json_t *root = NULL, *tensors, *spec, *chan_report = NULL;
    json_error_t jerr;
    mp_model_t *work = NULL;
    rw_t rw = {.cm = compressed, .err = err};
    edit_t e = {0};
    uint8_t *buf = NULL;
    size_t n = 0;
    char *value = NULL;
    int version, rc = 0;

    MP_RETURN_IF(onnx_out == NULL || compressed == NULL, MP_EINVAL, "mp_onnx_apply: NULL argument");
    *onnx_out = NULL;
    if ((rc = mp_onnx_check_apply(onnx_in, err)) < 0) {
        return rc;
    }
    record = mp_model_get_meta(compressed, MP_META_KEY);
    MP_RETURN_IF(record == NULL, MP_EFORMAT,
                 "the compressed model has no '" MP_META_KEY "' metadata record");
    root = json_loads(record, JSON_REJECT_DUPLICATES, &jerr);
    MP_GOTO_IF(root == NULL,
               json_error_code(&jerr) == json_error_out_of_memory ? MP_ENOMEM : MP_EFORMAT,
               REC ": not JSON (%s)", jerr.text);
    version = (int)json_integer_value(json_object_get(root, "version"));
    tensors = json_object_get(root, "tensors");
    MP_GOTO_IF((version != 1 && version != 2) || !json_is_object(tensors), MP_EFORMAT,
               REC ": version 1 or 2 with a \"tensors\" object expected");

    /* a private tree to edit: the input's bytes read again (borrowed, not copied; the input
     * outlives this call), so its weights are found exactly as in the input */
    if ((rc = mp__onnx_parse_buf(cin->src, cin->n_src, 0, &work, err)) < 0) {
        goto out;
    }
    rw.c = mp__onnx_ctx(work);
    rw.m = work;
    if ((rc = collect_names(&rw.names, rw.c->graph)) < 0) {
        rc = mp__err_set(err, MP_ENOMEM, "out of memory collecting names");
        goto out;
    }
    chan_report = json_object();
    MP_GOTO_IF(chan_report == NULL, MP_ENOMEM, "out of memory");
    if ((rc = remove_channels(&rw, tensors, version, chan_report)) < 0) {
        goto out;
    }
    json_object_foreach(tensors, name, spec)
    {
        const mp_tensor_t *t = mp_model_find(work, name);
        const mp__onnx_weight_t *w;
        const char *pv[3] = {NULL, NULL, NULL}, *f32;
        const int64_t *shape;
        int n_dims;
        entry_t en;
        int split = 0;

        MP_GOTO_IF(t == NULL, MP_EFORMAT,
                   REC " names tensor '%s', which is not a weight of the ONNX model", name);
        w = &rw.c->w[t - work->tensors];
        if ((rc = entry_parse(version, name, spec, t, &en, err)) < 0) {
            goto out;
        }
        MP_GOTO_IF(!mp_dtype_is_float(t->dtype), MP_EFORMAT,
                   REC ": tensor '%s' is %s, not a float weight", name, mp_dtype_name(t->dtype));
        free(value);
        value = value_name(w);
        rw.tmp = fresh_name(&rw.names, "mp", "");
        MP_GOTO_IF(value == NULL || rw.tmp == NULL, MP_ENOMEM, "out of memory");
        /* the shape after channel removal, if any */
        n_dims = t->n_dims;
        shape = t->shape;
        for (size_t o = 0; o < rw.n_ov; o++) {
            if (rw.ov[o].tensor == (size_t)(t - work->tensors)) {
                n_dims = rw.ov[o].n_dims;
                shape = rw.ov[o].shape;
            }
        }
        if (en.factored == 0) {
            code_resolve(&en.code, n_dims, shape);
            rc = emit_value(&rw, &e, name, value, t->dtype, n_dims, shape, &en.code);
        } else {
            rc = emit_parts(&rw, &e, name, value, t, &en, pv);
            if (rc == 0 && (split = can_rewire(&rw, w->graph, value, t, &en)) < 0) {
                rc = split;
            }
            if (rc == 0 && !split) {
                f32 = t->dtype == MP_DT_F32 ? value : fresh_name(&rw.names, rw.tmp, "_f32");
                MP_GOTO_IF(f32 == NULL, MP_ENOMEM, "out of memory");
                rc = emit_product(&rw, &e, value, f32, t, &en, pv);
                if (rc == 0 && f32 != value) {
                    rc = edit_cast(&rw, &e, f32, value, t->dtype);
                }
            }
        }
        if (rc < 0 || (rc = place(&rw, w, value, &e)) < 0 ||
            (split && (rc = rewire(&rw, w->graph, value, t, &en, pv)) < 0)) {
            goto out;
        }
        edit_cleanup(&e);
    }
    if (json_object_size(chan_report) > 0 && (rc = add_metadata(&rw, chan_report)) < 0) {
        goto out;
    }
    if ((rc = mp__pb_encode(rw.c->root, 0, &buf, &n, err)) < 0) {
        goto out;
    }
    rc = mp__onnx_parse_buf(buf, n, 1, onnx_out, err);
    buf = NULL;
out:
    edit_cleanup(&e);
    free(value);
    free(buf);
    free(rw.ov);
    mp_model_free(rw.cm_own);
    json_decref(chan_report);
    names_cleanup(&rw.names);
    mp_model_free(work);
    json_decref(root);
    return rc;
}

/* ---- describe ----------------------------------------------------------------------------- */

/* The output-channel axis of a weight read as input `input` of node (op_type), or -1. */
static int channel_axis(mp__pb_msg_t *node, int input, int n_dims)
{
    const mp__pb_msg_t *a;
    const mp__pb_field_t *iv;

    if (mp__onnx_node_is(node, "Conv")) {
        return input == 1 ? 0 : -1;
    }
    if (mp__onnx_node_is(node, "ConvTranspose")) {
        return input == 1 ? 1 : -1;
    }
    if (mp__onnx_node_is(node, "Gemm") && input <= 1) {
        a = mp__onnx_node_attr(node, input == 1 ? "transB" : "transA");
        iv = a ? mp__pb_find(a, ONNX_ATTR_I) : NULL;
        /* B [K, N] has its outputs on axis 1, B^T [N, K] on 0; A [M, K] on 0, A^T on 1 */
        return (iv != NULL && iv->v != 0) == (input == 1) ? 0 : 1;
    }
    if (mp__onnx_node_is(node, "MatMul") && input <= 1 && n_dims >= 2) {
        return input == 1 ? n_dims - 1 : n_dims - 2;
    }
    return -1;
}

typedef struct desc {
    const mp_model_t *m;
    const mp__onnx_t *c;
    char **values;      /* value name of each weight */
    json_t **consumers; /* array per weight */
    int *axis;          /* -2 unset, -1 unknown or disagreeing */
    json_t *ops;
    size_t n_nodes;
} desc_t;

static int describe_graph(desc_t *d, const mp__pb_msg_t *g)
{
    for (size_t i = 0; i < g->n; i++) {
        const mp__pb_field_t *f = &g->f[i];
        mp__pb_msg_t *node = f->sub;
        const mp__pb_field_t *op, *dom, *nm;
        char *key = NULL, *nname;
        int input = 0;

        if (f->num != ONNX_GRAPH_NODE || node == NULL) {
            continue;
        }
        d->n_nodes++;
        op = mp__pb_find(node, ONNX_NODE_OP_TYPE);
        dom = mp__pb_find(node, ONNX_NODE_DOMAIN);
        nm = mp__pb_find(node, ONNX_NODE_NAME);
        char *ops = op ? mp__pb_strdup(op) : strdup("?");
        const int other_domain = dom && dom->len && !mp__pb_streq(dom, "ai.onnx");
        char *doms = other_domain ? mp__pb_strdup(dom) : NULL;
        if (ops == NULL || (other_domain && doms == NULL) ||
            asprintf(&key, "%s%s%s", doms ? doms : "", doms ? "." : "", ops) < 0) {
            free(ops);
            free(doms);
            return MP_ENOMEM;
        }
        free(doms);
        json_int_t k = json_integer_value(json_object_get(d->ops, key));
        if (json_object_set_new(d->ops, key, json_integer(k + 1)) < 0) {
            free(key);
            free(ops);
            return MP_ENOMEM;
        }
        free(key);
        nname = nm ? mp__pb_strdup(nm) : strdup("");
        if (nname == NULL) {
            free(ops);
            return MP_ENOMEM;
        }
        for (size_t j = 0; j < node->n; j++) {
            const mp__pb_field_t *nf = &node->f[j];
            if (nf->num == ONNX_NODE_INPUT) {
                for (size_t w = 0; w < d->m->n_tensors; w++) {
                    if (d->values[w] == NULL || !mp__pb_streq(nf, d->values[w])) {
                        continue;
                    }
                    const int ax = channel_axis(node, input, d->m->tensors[w].n_dims);
                    if (json_array_append_new(d->consumers[w],
                                              json_pack("{s:s, s:s, s:i}", "op", ops, "node", nname,
                                                        "input", input)) < 0) {
                        free(ops);
                        free(nname);
                        return MP_ENOMEM;
                    }
                    d->axis[w] = d->axis[w] == -2 || d->axis[w] == ax ? ax : -1;
                }
                input++;
            } else if (nf->num == ONNX_NODE_ATTRIBUTE && nf->sub != NULL) {
                for (size_t k2 = 0; k2 < nf->sub->n; k2++) {
                    const mp__pb_field_t *af = &nf->sub->f[k2];
                    if ((af->num == ONNX_ATTR_G || af->num == ONNX_ATTR_GRAPHS) &&
                        af->sub != NULL && describe_graph(d, af->sub) < 0) {
                        free(ops);
                        free(nname);
                        return MP_ENOMEM;
                    }
                }
            }
        }
        free(ops);
        free(nname);
    }
    return 0;
}

int mp_onnx_describe(const mp_model_t *m, const mp_recipe_t *r, char **json, mp_errctx_t *err)
{
    const mp__onnx_t *c = mp__onnx_ctx(m);
    desc_t d = {.m = m, .c = c};
    json_t *root = NULL, *weights = NULL;
    const mp__pb_field_t *prod;
    char *producer = NULL;
    int64_t params = 0;
    int rc = 0, bad;

    MP_RETURN_IF(json == NULL, MP_EINVAL, "mp_onnx_describe: NULL argument");
    *json = NULL;
    MP_RETURN_IF(c == NULL, MP_EINVAL, "mp_onnx_describe: not an ONNX model");
    d.values = calloc(m->n_tensors + 1, sizeof *d.values);
    d.consumers = calloc(m->n_tensors + 1, sizeof *d.consumers);
    d.axis = calloc(m->n_tensors + 1, sizeof *d.axis);
    d.ops = json_object();
    weights = json_array();
    MP_GOTO_IF(d.values == NULL || d.consumers == NULL || d.axis == NULL || d.ops == NULL ||
                   weights == NULL,
               MP_ENOMEM, "out of memory describing the model");
    for (size_t i = 0; i < m->n_tensors; i++) {
        d.values[i] = value_name(&c->w[i]);
        d.consumers[i] = json_array();
        d.axis[i] = -2;
        MP_GOTO_IF(d.values[i] == NULL || d.consumers[i] == NULL, MP_ENOMEM,
                   "out of memory describing the model");
    }
    MP_GOTO_IF(describe_graph(&d, c->graph) < 0, MP_ENOMEM, "out of memory describing the model");
    bad = 0;
    for (size_t i = 0; i < m->n_tensors; i++) {
        const mp_tensor_t *t = &m->tensors[i];
        json_t *shape = json_array();
        for (int k = 0; k < t->n_dims; k++) {
            bad |= json_array_append_new(shape, json_integer(t->shape[k]));
        }
        params += mp_tensor_elements(t);
        bad |= json_array_append_new(
            weights,
            json_pack("{s:s, s:s, s:s, s:i, s:s, s:o, s:I, s:O, s:o, s:b}", "name", t->name,
                      "value", d.values[i], "origin",
                      c->w[i].origin == MP_ONNX_CONSTANT ? "Constant" : "initializer", "depth",
                      c->w[i].depth, "dtype", mp_dtype_name(t->dtype), "shape", shape, "elements",
                      (json_int_t)mp_tensor_elements(t), "consumers", d.consumers[i],
                      "channel_axis", d.axis[i] >= 0 ? json_integer(d.axis[i]) : json_null(),
                      "selected", mp_recipe_selects(r, t)));
    }
    prod = mp__pb_find(c->root, ONNX_MODEL_PRODUCER_NAME);
    producer = prod ? mp__pb_strdup(prod) : strdup("");
    MP_GOTO_IF(producer == NULL, MP_ENOMEM, "out of memory describing the model");
    root = json_pack("{s:s, s:I, s:I, s:s?, s:I, s:I, s:O, s:O}", "format", "onnx", "ir_version",
                     (json_int_t)c->ir_version, "opset", (json_int_t)c->opset, "producer", producer,
                     "nodes", (json_int_t)d.n_nodes, "parameters", (json_int_t)params, "operators",
                     d.ops, "weights", weights);
    MP_GOTO_IF(bad || root == NULL, MP_ENOMEM,
               "cannot describe the model: out of memory or a name that is not UTF-8");
    *json = json_dumps(root, JSON_COMPACT);
    MP_GOTO_IF(*json == NULL, MP_ENOMEM, "out of memory describing the model");
out:
    for (size_t i = 0; d.values != NULL && i < m->n_tensors; i++) {
        free(d.values[i]);
        json_decref(d.consumers ? d.consumers[i] : NULL);
    }
    free(d.values);
    free(d.consumers);
    free(d.axis);
    free(producer);
    json_decref(d.ops);
    json_decref(weights);
    json_decref(root);
    return rc;
}
