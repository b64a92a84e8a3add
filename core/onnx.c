/* onnx.c — reading ONNX models into mp_model_t and writing them back.
 *
 * A ModelProto is parsed with the pb codec into a tree that keeps every field; the reader then
 * walks ModelProto > GraphProto > nodes, recursing into the graphs held by node attributes
 * (If/Loop/Scan bodies, any depth up to the pb nesting limit), and exposes as model tensors:
 * - every initializer of every graph, used or not (several nodes may share one);
 * - the `value` tensor of every standard Constant node, named after the node's output.
 * A name already taken (a subgraph reusing an outer name) becomes "<scope>/<name>", scope
 * being the path of node names (or op_type#index) and attribute names from the main graph, and
 * "#2", "#3"… is appended while that is still taken; docs/onnx.md says the same.
 * STRING tensors and sparse initializers are not weights: they stay in the tree untouched.
 *
 * Uploads are hostile: each TensorProto is checked before a byte of its data is used —
 * a known data type (else refused naming the tensor), no negative dims, at most MP_MAX_DIMS,
 * raw_data exactly dims x element size, typed fields (float_data, int32_data, …) exactly
 * dims values each in range, never both; external data (data_location = EXTERNAL or an
 * external_data entry) is refused without touching the filesystem, whatever path it names.
 * IR versions 3-10 and default-domain opsets 1-18 are accepted, others refused (the writer and
 * the runtime are only known right for those; the rewrites of onnx_rewrite.c need opset 7 or
 * later and say so themselves). Raw data aligned for its element type is
 * borrowed from the input, anything else copied, so every tensor reads through a typed pointer.
 *
 * Writing encodes the tree: unchanged, it is the input byte for byte.
 */
#include "onnx_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MAX_NAME_TRIES 1000

/* ---- data types --------------------------------------------------------------------------- */

static const struct {
    int onnx;
    int dt;
} type_map[] = {
    {ONNX_FLOAT, MP_DT_F32},  {ONNX_UINT8, MP_DT_U8}, {ONNX_INT8, MP_DT_I8},
    {4, MP_DT_U16},           {5, MP_DT_I16},         {6, MP_DT_I32},
    {7, MP_DT_I64},           {9, MP_DT_BOOL},        {ONNX_FLOAT16, MP_DT_F16},
    {ONNX_DOUBLE, MP_DT_F64}, {12, MP_DT_U32},        {13, MP_DT_U64},
    {16, MP_DT_BF16},
};

int mp__onnx_dtype(int64_t onnx_type)
{
    for (size_t i = 0; i < sizeof type_map / sizeof *type_map; i++) {
        if (type_map[i].onnx == onnx_type) {
            return type_map[i].dt;
        }
    }
    return -1;
}

int mp__onnx_type_of(mp_dtype_t dt)
{
    for (size_t i = 0; i < sizeof type_map / sizeof *type_map; i++) {
        if (type_map[i].dt == (int)dt) {
            return type_map[i].onnx;
        }
    }
    return 0;
}

/* Names of the ONNX types without a counterpart, for the message that refuses them. */
static const char *unsupported_type_name(int64_t t)
{
    switch (t) {
    case 0:
        return "UNDEFINED";
    case 14:
        return "COMPLEX64";
    case 15:
        return "COMPLEX128";
    case 17:
        return "FLOAT8E4M3FN";
    case 18:
        return "FLOAT8E4M3FNUZ";
    case 19:
        return "FLOAT8E5M2";
    case 20:
        return "FLOAT8E5M2FNUZ";
    case 21:
        return "UINT4";
    case 22:
        return "INT4";
    default:
        return NULL;
    }
}

/* ---- small helpers ------------------------------------------------------------------------ */

mp__onnx_t *mp__onnx_ctx(const mp_model_t *m)
{
    return m != NULL && m->format_free == mp__onnx_ctx_free_cb ? m->format_ctx : NULL;
}

void mp__onnx_ctx_free_cb(void *p)
{
    mp__onnx_t *c = p;

    if (c == NULL) {
        return;
    }
    mp__pb_msg_free(c->root);
    free(c->w);
    free(c->buf);
    free(c);
}

int mp__onnx_node_is(const mp__pb_msg_t *node, const char *op_type)
{
    const mp__pb_field_t *op = mp__pb_find(node, ONNX_NODE_OP_TYPE);
    const mp__pb_field_t *dom = mp__pb_find(node, ONNX_NODE_DOMAIN);

    return op != NULL && mp__pb_streq(op, op_type) &&
           (dom == NULL || dom->len == 0 || mp__pb_streq(dom, "ai.onnx"));
}

mp__pb_msg_t *mp__onnx_node_attr(mp__pb_msg_t *node, const char *name)
{
    for (size_t i = 0; i < node->n; i++) {
        mp__pb_field_t *f = &node->f[i];
        const mp__pb_field_t *an;
        if (f->num != ONNX_NODE_ATTRIBUTE || f->sub == NULL) {
            continue;
        }
        an = mp__pb_find(f->sub, ONNX_ATTR_NAME);
        if (an != NULL && mp__pb_streq(an, name)) {
            return f->sub;
        }
    }
    return NULL;
}

/* A field's string payload made printable (control and non-ASCII bytes as '?'), cut to cap-1
 * bytes, for messages: names and paths from a hostile file go into logs and JSON. */
static const char *printable(const mp__pb_field_t *f, char *s, size_t cap)
{
    size_t k = 0;

    if (f != NULL && f->wire == MP_PB_LEN) {
        for (; k < f->len && k + 1 < cap; k++) {
            const uint8_t c = f->data[k];
            s[k] = c >= 0x20 && c < 0x7f ? (char)c : '?';
        }
    }
    s[k] = '\0';
    return s;
}

/* ---- tensors ------------------------------------------------------------------------------ */

/* The values of a repeated numeric field (all its occurrences, packed or not) as uint64 in
 * order: first counted (so a count that disagrees with the dims is refused before anything
 * is allocated), then decoded into out (n values) when out is not NULL. */
static int repeated_values(const mp__pb_msg_t *tp, uint32_t num, int fixed_bytes, uint64_t *out,
                           size_t *n, const char *name, mp_errctx_t *err)
{
    size_t k = 0;

    for (size_t i = 0; i < tp->n; i++) {
        const mp__pb_field_t *f = &tp->f[i];
        if (f->num != num) {
            continue;
        }
        if (f->wire != MP_PB_LEN) {
            const int ok = fixed_bytes == 0   ? f->wire == MP_PB_VARINT
                           : fixed_bytes == 4 ? f->wire == MP_PB_I32
                                              : f->wire == MP_PB_I64;
            MP_RETURN_IF(!ok, MP_EFORMAT, "tensor '%s': field %u has the wrong wire type", name,
                         num);
            if (out != NULL) {
                out[k] = f->v;
            }
            k++;
            continue;
        }
        /* packed */
        if (fixed_bytes != 0) {
            MP_RETURN_IF(f->len % (size_t)fixed_bytes != 0, MP_EFORMAT,
                         "byte %zu: tensor '%s': packed field %u of %zu bytes is not a whole "
                         "number of %d-byte values",
                         f->off, name, num, f->len, fixed_bytes);
            for (size_t p = 0; p < f->len; p += (size_t)fixed_bytes) {
                if (out != NULL) {
                    uint64_t v = 0;
                    for (int b = 0; b < fixed_bytes; b++) {
                        v |= (uint64_t)f->data[p + (size_t)b] << (8 * b);
                    }
                    out[k] = v;
                }
                k++;
            }
            continue;
        }
        for (size_t p = 0; p < f->len;) {
            uint64_t v;
            size_t used;
            const int vr = mp__pb_varint(f->data + p, f->len - p, &v, &used);
            MP_RETURN_IF(vr < 0, MP_EFORMAT, "byte %zu: tensor '%s': %s in packed field %u",
                         f->off + p, name,
                         vr == -1 ? "truncated varint" : "varint longer than 10 bytes", num);
            if (out != NULL) {
                out[k] = v;
            }
            k++;
            p += used;
        }
    }
    *n = k;
    return 0;
}

/* Narrow one int32_data value into an element of dt; -1 when it does not fit. */
static int store_narrow(mp_dtype_t dt, uint64_t raw, unsigned char *dst)
{
    const int64_t v = (int64_t)raw; /* int32 fields are sign-extended varints */
    uint16_t u16;
    int16_t i16;
    int32_t i32;

    switch (dt) {
    case MP_DT_I8:
        if (v < INT8_MIN || v > INT8_MAX) {
            return -1;
        }
        *(int8_t *)dst = (int8_t)v;
        return 0;
    case MP_DT_U8:
    case MP_DT_BOOL:
        if (v < 0 || v > UINT8_MAX || (dt == MP_DT_BOOL && v > 1)) {
            return -1;
        }
        *dst = (unsigned char)v;
        return 0;
    case MP_DT_I16:
        if (v < INT16_MIN || v > INT16_MAX) {
            return -1;
        }
        i16 = (int16_t)v;
        memcpy(dst, &i16, 2);
        return 0;
    case MP_DT_U16:
    case MP_DT_F16: /* the bits of a half, as ONNX stores them */
    case MP_DT_BF16:
        if (v < 0 || v > UINT16_MAX) {
            return -1;
        }
        u16 = (uint16_t)v;
        memcpy(dst, &u16, 2);
        return 0;
    default: /* I32 */
        if (v < INT32_MIN || v > INT32_MAX) {
            return -1;
        }
        i32 = (int32_t)v;
        memcpy(dst, &i32, 4);
        return 0;
    }
}

/* The typed field that holds dt's values when raw_data is not used, and its encoding. */
static uint32_t typed_field(mp_dtype_t dt, int *fixed_bytes)
{
    *fixed_bytes = 0;
    switch (dt) {
    case MP_DT_F32:
        *fixed_bytes = 4;
        return ONNX_TENSOR_FLOAT_DATA;
    case MP_DT_F64:
        *fixed_bytes = 8;
        return ONNX_TENSOR_DOUBLE_DATA;
    case MP_DT_I64:
        return ONNX_TENSOR_INT64_DATA;
    case MP_DT_U32:
    case MP_DT_U64:
        return ONNX_TENSOR_UINT64_DATA;
    default:
        return ONNX_TENSOR_INT32_DATA;
    }
}

/* Refuse external data, naming the tensor and (printably) where it points; never opened. */
static int refuse_external(const mp__pb_msg_t *tp, const char *name, mp_errctx_t *err)
{
    char where[160] = "";

    for (size_t i = 0; i < tp->n; i++) {
        const mp__pb_field_t *f = &tp->f[i];
        mp__pb_msg_t *e;
        if (f->num != ONNX_TENSOR_EXTERNAL_DATA || f->wire != MP_PB_LEN) {
            continue;
        }
        /* parsed on a copy so the tree stays as read; a malformed entry just names nothing */
        if (mp__pb_parse(f->data, f->len, f->off, MP_PB_MAX_DEPTH, &e, NULL) == 0) {
            const mp__pb_field_t *k = mp__pb_find(e, ONNX_ENTRY_KEY);
            const mp__pb_field_t *v = mp__pb_find(e, ONNX_ENTRY_VALUE);
            if (k != NULL && v != NULL && mp__pb_streq(k, "location")) {
                printable(v, where, sizeof where);
            }
            mp__pb_msg_free(e);
        }
    }
    return mp__err_set(err, MP_EUNSUPPORTED,
                       "tensor '%s': its data is stored outside the model file%s%s%s; external "
                       "data is never read (save the model with every tensor inside it, e.g. "
                       "onnx.save_model(m, path, save_as_external_data=False))",
                       name, where[0] ? " ('" : "", where, where[0] ? "')" : "");
}

int mp__onnx_read_tensor(const mp__pb_msg_t *tp, const char *name, mp__onnx_tensor_t *r,
                         mp_errctx_t *err)
{
    const mp__pb_field_t *dtf = mp__pb_find(tp, ONNX_TENSOR_DATA_TYPE);
    const mp__pb_field_t *loc = mp__pb_find(tp, ONNX_TENSOR_DATA_LOCATION);
    const mp__pb_field_t *raw = mp__pb_find(tp, ONNX_TENSOR_RAW_DATA);
    uint64_t dims[MP_MAX_DIMS];
    uint64_t *vals = NULL;
    size_t n_dims = 0, n_vals = 0, esize;
    int64_t n_elem = 0, onnx_type;
    uint32_t tf;
    int fixed, dt, rc = 0;

    memset(r, 0, sizeof *r);
    if ((loc != NULL && loc->v != 0) || mp__pb_find(tp, ONNX_TENSOR_EXTERNAL_DATA) != NULL) {
        return refuse_external(tp, name, err);
    }
    MP_RETURN_IF(dtf == NULL || dtf->wire != MP_PB_VARINT, MP_EFORMAT, "tensor '%s': no data_type",
                 name);
    onnx_type = (int64_t)dtf->v;
    if (onnx_type == ONNX_STRING) {
        return 0; /* not a weight: kept in the graph as it is */
    }
    dt = mp__onnx_dtype(onnx_type);
    if (dt < 0) {
        const char *tn = unsupported_type_name(onnx_type);
        return mp__err_set(err, tn && onnx_type ? MP_EUNSUPPORTED : MP_EFORMAT,
                           "tensor '%s': %s data type %lld%s%s", name,
                           tn && onnx_type ? "unsupported" : "unknown", (long long)onnx_type,
                           tn ? " " : "", tn ? tn : "");
    }
    MP_RETURN_IF(mp__pb_find(tp, ONNX_TENSOR_SEGMENT) != NULL, MP_EUNSUPPORTED,
                 "tensor '%s': segmented tensors are not supported", name);
    /* dims: counted first so that more than MP_MAX_DIMS never writes past dims[] */
    if ((rc = repeated_values(tp, ONNX_TENSOR_DIMS, 0, NULL, &n_dims, name, err)) < 0) {
        return rc;
    }
    MP_RETURN_IF(n_dims > MP_MAX_DIMS, MP_EUNSUPPORTED,
                 "tensor '%s': %zu dims, more than the %d supported", name, n_dims, MP_MAX_DIMS);
    if ((rc = repeated_values(tp, ONNX_TENSOR_DIMS, 0, dims, &n_dims, name, err)) < 0) {
        return rc;
    }
    for (size_t d = 0; d < n_dims; d++) {
        MP_RETURN_IF((int64_t)dims[d] < 0, MP_EFORMAT, "tensor '%s': dim %zu is negative (%lld)",
                     name, d, (long long)(int64_t)dims[d]);
        r->shape[d] = (int64_t)dims[d];
    }
    r->dt = (mp_dtype_t)dt;
    r->n_dims = (int)n_dims;
    MP_RETURN_IF(mp__shape_bytes(r->dt, r->n_dims, r->shape, &n_elem, &r->n_bytes) != 0, MP_EFORMAT,
                 "tensor '%s': its dims overflow", name);
    esize = mp_dtype_size(r->dt);
    tf = typed_field(r->dt, &fixed);
    if ((rc = repeated_values(tp, tf, fixed, NULL, &n_vals, name, err)) < 0) {
        return rc;
    }
    r->is_weight = 1;
    if (raw != NULL) {
        MP_RETURN_IF(raw->wire != MP_PB_LEN, MP_EFORMAT, "tensor '%s': raw_data is not bytes",
                     name);
        MP_RETURN_IF(n_vals != 0, MP_EFORMAT, "tensor '%s': has both raw_data and %zu typed values",
                     name, n_vals);
        MP_RETURN_IF(raw->len != r->n_bytes, MP_EFORMAT,
                     "byte %zu: tensor '%s': raw_data is %zu bytes, but its dims and data type "
                     "need %lld x %zu = %zu",
                     raw->off, name, raw->len, (long long)n_elem, esize, r->n_bytes);
        if ((uintptr_t)raw->data % esize == 0) {
            r->data = raw->data;
            return 0;
        }
        r->owned = malloc(r->n_bytes);
        MP_RETURN_IF(r->owned == NULL, MP_ENOMEM, "out of memory copying tensor '%s'", name);
        memcpy(r->owned, raw->data, r->n_bytes);
        r->data = r->owned;
        return 0;
    }
    MP_RETURN_IF((int64_t)n_vals != n_elem, MP_EFORMAT,
                 "tensor '%s': %zu values stored, but its dims give %lld elements", name, n_vals,
                 (long long)n_elem);
    r->owned = malloc(r->n_bytes ? r->n_bytes : 1);
    vals = malloc((n_vals ? n_vals : 1) * sizeof *vals);
    MP_GOTO_IF(r->owned == NULL || vals == NULL, MP_ENOMEM, "out of memory decoding tensor '%s'",
               name);
    if ((rc = repeated_values(tp, tf, fixed, vals, &n_vals, name, err)) < 0) {
        goto out;
    }
    for (size_t i = 0; i < n_vals; i++) {
        unsigned char *dst = (unsigned char *)r->owned + i * esize;
        if (fixed == 4) {
            const uint32_t b = (uint32_t)vals[i];
            memcpy(dst, &b, 4);
        } else if (r->dt == MP_DT_U32) {
            const uint32_t u = (uint32_t)vals[i];
            MP_GOTO_IF(vals[i] > UINT32_MAX, MP_EFORMAT,
                       "tensor '%s': value %zu does not fit UINT32", name, i);
            memcpy(dst, &u, 4);
        } else if (fixed == 8 || tf != ONNX_TENSOR_INT32_DATA) {
            memcpy(dst, &vals[i], 8); /* int64, uint64 and double: the bits as stored */
        } else {
            MP_GOTO_IF(store_narrow(r->dt, vals[i], dst) < 0, MP_EFORMAT,
                       "tensor '%s': value %zu (%lld) does not fit %s", name, i,
                       (long long)(int64_t)vals[i], mp_dtype_name(r->dt));
        }
    }
    r->data = r->owned;
out:
    free(vals);
    if (rc < 0) {
        free(r->owned);
        r->owned = NULL;
    }
    return rc;
}

/* ---- the graph walk ----------------------------------------------------------------------- */

typedef struct walk {
    mp_model_t *m;
    mp__onnx_t *c;
    size_t cap_w;
    mp_errctx_t *err;
} walk_t;

/* A unique tensor name for `base` found in the graph at scope (NULL for the main graph), in
 * *out (malloc'd). MP_ENOMEM, or MP_EFORMAT when MAX_NAME_TRIES names are all taken. */
static int unique_name(const mp_model_t *m, const char *scope, const char *base, char **out)
{
    char *s = NULL;
    int k;

    *out = NULL;
    if (mp_model_find(m, base) == NULL || scope == NULL) {
        *out = strdup(base);
        return *out ? 0 : MP_ENOMEM;
    }
    if (asprintf(&s, "%s/%s", scope, base) < 0) {
        return MP_ENOMEM;
    }
    for (k = 2; mp_model_find(m, s) != NULL && k < MAX_NAME_TRIES; k++) {
        free(s);
        if (asprintf(&s, "%s/%s#%d", scope, base, k) < 0) {
            return MP_ENOMEM;
        }
    }
    if (k == MAX_NAME_TRIES) {
        free(s);
        return MP_EFORMAT;
    }
    *out = s;
    return 0;
}

/* Add one TensorProto as a model tensor named after base (already printable-checked). */
static int add_weight(walk_t *wk, mp__pb_msg_t *graph, mp__pb_msg_t *node, mp__pb_msg_t *tp,
                      const char *scope, int depth, const char *base)
{
    mp_errctx_t *err = wk->err;
    mp__onnx_tensor_t r;
    char *name = NULL;
    int rc;

    if ((rc = mp__onnx_read_tensor(tp, base, &r, err)) < 0 || !r.is_weight) {
        return rc;
    }
    rc = unique_name(wk->m, scope, base, &name);
    MP_GOTO_IF(rc == MP_ENOMEM, MP_ENOMEM, "out of memory naming tensor '%s'", base);
    MP_GOTO_IF(rc < 0, MP_EFORMAT, "tensor '%s': %d tensors of that name in one scope", base,
               MAX_NAME_TRIES);
    MP_GOTO_IF(mp_model_find(wk->m, name) != NULL, MP_EFORMAT,
               "two initializers of the main graph are named '%s'", name);
    if (wk->c->n_w == wk->cap_w) {
        const size_t cap = wk->cap_w ? wk->cap_w * 2 : 64;
        mp__onnx_weight_t *w = realloc(wk->c->w, cap * sizeof *w);
        MP_GOTO_IF(w == NULL, MP_ENOMEM, "out of memory reading tensor '%s'", name);
        wk->c->w = w;
        wk->cap_w = cap;
    }
    if (r.owned != NULL) {
        rc = mp_model_add_take(wk->m, name, r.dt, r.n_dims, r.shape, r.owned, r.n_bytes, err);
        r.owned = NULL;
    } else {
        rc = mp_model_add_ref(wk->m, name, r.dt, r.n_dims, r.shape, r.data, r.n_bytes, err);
    }
    if (rc < 0) {
        goto out;
    }
    wk->c->w[wk->c->n_w++] = (mp__onnx_weight_t){
        .origin = node ? MP_ONNX_CONSTANT : MP_ONNX_INITIALIZER,
        .graph = graph,
        .node = node,
        .tensor = tp,
        .depth = depth,
    };
out:
    free(r.owned);
    free(name);
    return rc;
}

/* A name field as a C string for naming: NUL bytes inside are refused. */
static int name_of(const mp__pb_field_t *f, const char *what, char **out, mp_errctx_t *err)
{
    *out = NULL;
    MP_RETURN_IF(f == NULL || f->wire != MP_PB_LEN || f->len == 0, MP_EFORMAT, "%s has no name",
                 what);
    MP_RETURN_IF(memchr(f->data, 0, f->len) != NULL, MP_EFORMAT,
                 "byte %zu: %s name contains a NUL byte", f->off, what);
    *out = mp__pb_strdup(f);
    MP_RETURN_IF(*out == NULL, MP_ENOMEM, "out of memory");
    return 0;
}

static int walk_graph(walk_t *wk, mp__pb_msg_t *g, const char *scope, int depth);

/* The attributes of one node: Constant's value tensor, and every graph it holds. */
static int walk_node(walk_t *wk, mp__pb_msg_t *g, mp__pb_msg_t *node, size_t index,
                     const char *scope, int depth)
{
    mp_errctx_t *err = wk->err;
    const int is_const = mp__onnx_node_is(node, "Constant");
    const mp__pb_field_t *nf = mp__pb_find(node, ONNX_NODE_NAME);
    char label[128], op[64], *out_name = NULL, *sub_scope = NULL;
    int rc = 0;

    if (nf != NULL && nf->len > 0) {
        printable(nf, label, sizeof label);
    } else {
        snprintf(label, sizeof label, "%s#%zu",
                 printable(mp__pb_find(node, ONNX_NODE_OP_TYPE), op, sizeof op), index);
    }
    for (size_t i = 0; i < node->n; i++) {
        mp__pb_field_t *af = &node->f[i];
        mp__pb_msg_t *attr, *sub;
        const mp__pb_field_t *an;
        char aname[64];

        if (af->num != ONNX_NODE_ATTRIBUTE) {
            continue;
        }
        if ((rc = mp__pb_field_msg(af, node->depth, "attribute", &attr, err)) < 0) {
            goto out;
        }
        an = mp__pb_find(attr, ONNX_ATTR_NAME);
        printable(an, aname, sizeof aname);
        for (size_t j = 0; j < attr->n; j++) {
            mp__pb_field_t *v = &attr->f[j];
            if (v->num == ONNX_ATTR_T && is_const && an && mp__pb_streq(an, "value")) {
                rc = mp__pb_field_msg(v, attr->depth, "Constant value", &sub, err);
                if (rc == 0 && out_name == NULL) {
                    rc = name_of(mp__pb_find(node, ONNX_NODE_OUTPUT), "Constant node output",
                                 &out_name, err);
                }
                if (rc == 0) {
                    rc = add_weight(wk, g, node, sub, scope, depth, out_name);
                }
            } else if (v->num == ONNX_ATTR_G || v->num == ONNX_ATTR_GRAPHS) {
                rc = mp__pb_field_msg(v, attr->depth, "subgraph", &sub, err);
                free(sub_scope);
                sub_scope = NULL;
                if (rc == 0 && asprintf(&sub_scope, "%s%s%s.%s", scope ? scope : "",
                                        scope ? "/" : "", label, aname) < 0) {
                    sub_scope = NULL;
                    rc = mp__err_set(err, MP_ENOMEM, "out of memory");
                }
                if (rc == 0) {
                    rc = walk_graph(wk, sub, sub_scope, depth + 1);
                }
            }
            if (rc < 0) {
                goto out;
            }
        }
    }
out:
    free(out_name);
    free(sub_scope);
    return rc;
}

static int walk_graph(walk_t *wk, mp__pb_msg_t *g, const char *scope, int depth)
{
    mp_errctx_t *err = wk->err;
    size_t n_node = 0;
    char *name = NULL;
    int rc = 0;

    for (size_t i = 0; i < g->n && rc == 0; i++) {
        mp__pb_field_t *f = &g->f[i];
        mp__pb_msg_t *sub;

        if (f->num == ONNX_GRAPH_INITIALIZER) {
            rc = mp__pb_field_msg(f, g->depth, "initializer", &sub, err);
            if (rc == 0) {
                rc = name_of(mp__pb_find(sub, ONNX_TENSOR_NAME), "initializer", &name, err);
            }
            if (rc == 0) {
                rc = add_weight(wk, g, NULL, sub, scope, depth, name);
            }
            free(name);
            name = NULL;
        } else if (f->num == ONNX_GRAPH_NODE) {
            rc = mp__pb_field_msg(f, g->depth, "node", &sub, err);
            if (rc == 0) {
                rc = walk_node(wk, g, sub, n_node++, scope, depth);
            }
        }
    }
    return rc;
}

/* ---- the model ---------------------------------------------------------------------------- */

static int read_opsets(const mp__pb_msg_t *root, int64_t *opset, mp_errctx_t *err)
{
    int rc;

    *opset = -1;
    for (size_t i = 0; i < root->n; i++) {
        mp__pb_field_t *f = &root->f[i];
        mp__pb_msg_t *os;
        const mp__pb_field_t *dom, *ver;

        if (f->num != ONNX_MODEL_OPSET_IMPORT) {
            continue;
        }
        if ((rc = mp__pb_field_msg(f, root->depth, "opset_import", &os, err)) < 0) {
            return rc;
        }
        dom = mp__pb_find(os, ONNX_OPSET_DOMAIN);
        ver = mp__pb_find(os, ONNX_OPSET_VERSION);
        if (dom == NULL || dom->len == 0 || mp__pb_streq(dom, "ai.onnx")) {
            MP_RETURN_IF(ver == NULL || ver->wire != MP_PB_VARINT, MP_EFORMAT,
                         "opset_import of the default domain has no version");
            *opset = (int64_t)ver->v;
        }
    }
    MP_RETURN_IF(*opset < 0, MP_EFORMAT, "the model imports no opset of the default ONNX domain");
    MP_RETURN_IF(*opset < MP_ONNX_OPSET_MIN || *opset > MP_ONNX_OPSET_MAX, MP_EUNSUPPORTED,
                 "ONNX opset %lld is not supported (opsets %d to %d are)", (long long)*opset,
                 MP_ONNX_OPSET_MIN, MP_ONNX_OPSET_MAX);
    return 0;
}

/* metadata_props become the model's metadata. */
static int read_metadata(mp_model_t *m, mp__pb_msg_t *root, mp_errctx_t *err)
{
    int rc = 0;

    for (size_t i = 0; i < root->n && rc == 0; i++) {
        mp__pb_field_t *f = &root->f[i];
        mp__pb_msg_t *e;
        char *k = NULL, *v = NULL;

        if (f->num != ONNX_MODEL_METADATA_PROPS) {
            continue;
        }
        if ((rc = mp__pb_field_msg(f, root->depth, "metadata_props", &e, err)) < 0) {
            break;
        }
        if (mp__pb_find(e, ONNX_ENTRY_KEY) == NULL) {
            continue;
        }
        k = mp__pb_strdup(mp__pb_find(e, ONNX_ENTRY_KEY));
        v = mp__pb_find(e, ONNX_ENTRY_VALUE) ? mp__pb_strdup(mp__pb_find(e, ONNX_ENTRY_VALUE))
                                             : strdup("");
        if (k == NULL || v == NULL || mp_model_set_meta(m, k, v) < 0) {
            rc = mp__err_set(err, MP_ENOMEM, "out of memory reading metadata_props");
        }
        free(k);
        free(v);
    }
    return rc;
}

int mp__onnx_parse_buf(const void *buf, size_t n_bytes, int owned_buf, mp_model_t **out,
                       mp_errctx_t *err)
{
    mp_model_t *m = NULL;
    mp__onnx_t *c = NULL;
    const mp__pb_field_t *irf;
    mp__pb_field_t *gf;
    walk_t wk = {.err = err};
    int rc = 0;

    *out = NULL;
    m = mp_model_new();
    c = calloc(1, sizeof *c);
    MP_GOTO_IF(m == NULL || c == NULL, MP_ENOMEM, "out of memory reading an ONNX model");
    if (owned_buf) {
        c->buf = (void *)buf;
        buf = NULL; /* the ctx frees it from here on */
    }
    m->format_ctx = c;
    m->format_free = mp__onnx_ctx_free_cb;
    c = NULL;
    mp__onnx_t *ctx = m->format_ctx;
    MP_GOTO_IF(n_bytes == 0, MP_EFORMAT, "empty file: not an ONNX model");
    ctx->src = owned_buf ? ctx->buf : buf;
    ctx->n_src = n_bytes;
    rc = mp__pb_parse(ctx->src, n_bytes, 0, 0, &ctx->root, err);
    if (rc < 0) {
        goto out;
    }
    irf = mp__pb_find(ctx->root, ONNX_MODEL_IR_VERSION);
    MP_GOTO_IF(irf == NULL || irf->wire != MP_PB_VARINT, MP_EFORMAT,
               "not an ONNX model: no ir_version (field 1 of ModelProto)");
    ctx->ir_version = (int64_t)irf->v;
    MP_GOTO_IF(ctx->ir_version < MP_ONNX_IR_MIN || ctx->ir_version > MP_ONNX_IR_MAX,
               MP_EUNSUPPORTED, "ONNX IR version %lld is not supported (versions %d to %d are)",
               (long long)ctx->ir_version, MP_ONNX_IR_MIN, MP_ONNX_IR_MAX);
    if ((rc = read_opsets(ctx->root, &ctx->opset, err)) < 0) {
        goto out;
    }
    gf = mp__pb_find(ctx->root, ONNX_MODEL_GRAPH);
    MP_GOTO_IF(gf == NULL, MP_EFORMAT, "not an ONNX model: no graph (field 7 of ModelProto)");
    MP_GOTO_IF(mp__pb_count(ctx->root, ONNX_MODEL_GRAPH) != 1, MP_EFORMAT,
               "the ONNX model has %zu graphs", mp__pb_count(ctx->root, ONNX_MODEL_GRAPH));
    if ((rc = mp__pb_field_msg(gf, 0, "graph", &ctx->graph, err)) < 0) {
        goto out;
    }
    if ((rc = read_metadata(m, ctx->root, err)) < 0) {
        goto out;
    }
    wk.m = m;
    wk.c = ctx;
    rc = walk_graph(&wk, ctx->graph, NULL, 0);
    if (rc < 0) {
        goto out;
    }
    *out = m;
    m = NULL;
out:
    free(c);
    mp_model_free(m);
    return rc;
}

int mp_onnx_parse(const void *buf, size_t n_bytes, mp_model_t **out, mp_errctx_t *err)
{
    if (out == NULL) {
        return mp__err_set(err, MP_EINVAL, "mp_onnx_parse: no result pointer");
    }
    *out = NULL;
    MP_RETURN_IF(buf == NULL && n_bytes > 0, MP_EINVAL, "mp_onnx_parse: no buffer");
    return mp__onnx_parse_buf(buf, n_bytes, 0, out, err);
}

int mp__onnx_parse_mapped(void *map, size_t n_bytes, mp_model_t **out, mp_errctx_t *err)
{
    int rc = mp__onnx_parse_buf(map, n_bytes, 0, out, err);

    if (rc == 0) {
        (*out)->map = map;
        (*out)->map_bytes = n_bytes;
    } else if (map) {
        munmap(map, n_bytes);
    }
    return rc;
}

int mp__onnx_sniff(const void *buf, size_t n_bytes)
{
    const uint8_t *b = buf;
    uint64_t tag, v;
    size_t used;

    /* the first field must be one ModelProto has, well-formed: ir_version (1), producer_name,
     * producer_version, domain (2-4), model_version (5), doc_string (6), graph (7),
     * opset_import (8), metadata_props (14) */
    if (b == NULL || mp__pb_varint(b, n_bytes, &tag, &used) != 0) {
        return 0;
    }
    switch (tag) {
    case (1u << 3) | MP_PB_VARINT:
    case (5u << 3) | MP_PB_VARINT:
        return mp__pb_varint(b + used, n_bytes - used, &v, &used) == 0;
    case (2u << 3) | MP_PB_LEN:
    case (3u << 3) | MP_PB_LEN:
    case (4u << 3) | MP_PB_LEN:
    case (6u << 3) | MP_PB_LEN:
    case (7u << 3) | MP_PB_LEN:
    case (8u << 3) | MP_PB_LEN:
    case (14u << 3) | MP_PB_LEN:
        return mp__pb_varint(b + used, n_bytes - used, &v, &used) == 0;
    default:
        return 0;
    }
}

int mp_model_is_onnx(const mp_model_t *m)
{
    return mp__onnx_ctx(m) != NULL;
}

int mp_onnx_load(const char *path, mp_model_t **out, mp_errctx_t *err)
{
    int rc;

    if (out == NULL) {
        return mp__err_set(err, MP_EINVAL, "mp_onnx_load: no result pointer");
    }
    rc = mp_model_load(path, out, err);
    if (rc == 0 && !mp_model_is_onnx(*out)) {
        mp_model_free(*out);
        *out = NULL;
        rc = mp__err_set(err, MP_EFORMAT, "%s: not an ONNX model", path);
    }
    return rc;
}

/* ---- writing ------------------------------------------------------------------------------ */

int mp_onnx_encode(const mp_model_t *m, uint8_t **buf, size_t *n_bytes, mp_errctx_t *err)
{
    mp__onnx_t *c = mp__onnx_ctx(m);

    MP_RETURN_IF(buf == NULL || n_bytes == NULL, MP_EINVAL, "mp_onnx_encode: NULL argument");
    *buf = NULL;
    *n_bytes = 0;
    MP_RETURN_IF(c == NULL, MP_EINVAL,
                 "the model has no ONNX graph to write (it was not read from ONNX; "
                 "mp_onnx_apply makes one from an ONNX input and its compressed tensors)");
    return mp__pb_encode(c->root, 0, buf, n_bytes, err);
}

/* errno e as MP_ENOSPC or MP_EIO with "path: what: reason" in err. */
static int io_error(mp_errctx_t *err, const char *path, const char *what, int e)
{
    char buf[128];

    /* the GNU strerror_r (_GNU_SOURCE): thread-safe, returns the text */
    return mp__err_set(err, e == ENOSPC || e == EDQUOT ? MP_ENOSPC : MP_EIO, "%s: %s: %s", path,
                       what, strerror_r(e, buf, sizeof buf));
}

int mp_onnx_save(const mp_model_t *m, const char *path, mp_errctx_t *err)
{
    uint8_t *buf = NULL;
    size_t n = 0;
    FILE *fp = NULL;
    int rc;

    MP_RETURN_IF(path == NULL, MP_EINVAL, "mp_onnx_save: no path");
    if ((rc = mp_onnx_encode(m, &buf, &n, err)) < 0) {
        return rc;
    }
    fp = fopen(path, "wbe");
    if (fp == NULL) {
        rc = io_error(err, path, "cannot create", errno);
        goto out;
    }
    if (fwrite(buf, 1, n, fp) != n || fflush(fp) != 0) {
        rc = io_error(err, path, "write failed", errno);
    }
out:
    if (fp != NULL && fclose(fp) != 0 && rc == 0) {
        rc = io_error(err, path, "close failed", errno);
    }
    free(buf);
    return rc;
}
