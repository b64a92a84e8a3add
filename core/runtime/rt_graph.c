/* rt_graph.c — the executor's view of an ONNX main graph: values, nodes, order and liveness.
 *
 * Every name of the main graph becomes one rt_val_t: initializers (the model's tensors of depth
 * 0, borrowed, never copied), Constant outputs (likewise), graph inputs (their declared type and
 * dims; the session fixes unknown dims later) and node outputs. A name defined twice, a node
 * reading a name nothing defines, or a cycle is refused naming the node. The nodes are sorted
 * topologically (Kahn), so a graph stored out of order still runs.
 *
 * Compressed weights: a Gemm/MatMul/Conv whose weight is the output of DequantizeLinear over
 * int8/uint8 codes, or of Gather over a float codebook (indices possibly widened by Cast),
 * reads those stored tensors directly (rt_node_t.wsrc) and no longer reads the float weight;
 * the nodes that would have expanded it become dead unless something else reads it, so the
 * float weight is never materialised.
 *
 * The same code builds an If branch (s->graph, s->parent; rt_if.c): its initializers and
 * Constant nodes are those the ONNX reader found in that GraphProto, and a name the branch reads
 * without defining it is a value of the enclosing session, mirrored here (mp__rt_resolve).
 *
 * The shared model is only read: sub-messages not already parsed by the ONNX reader are parsed
 * into the session's own list (mp__rt_msg), so sessions may be built from one model in several
 * threads at once.
 */
#include "rt_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the name index ----------------------------------------------------------------------- */

typedef struct name_index {
    int *slot; /* value id + 1, 0 empty */
    size_t n_slots;
} name_index_t;

static uint64_t hash_str(const char *s)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (; *s; s++) {
        h = (h ^ (unsigned char)*s) * 0x100000001b3u;
    }
    return h;
}

static int index_put(rt_sess_t *s, int id)
{
    name_index_t *ix = s->index;

    if ((size_t)(id + 1) * 2 > ix->n_slots) {
        const size_t ns = ix->n_slots ? ix->n_slots * 2 : 256;
        int *slot = calloc(ns, sizeof *slot);
        if (slot == NULL) {
            return MP_ENOMEM;
        }
        for (size_t i = 0; i < ix->n_slots; i++) {
            if (ix->slot[i]) {
                size_t j = hash_str(s->vals[ix->slot[i] - 1].name) & (ns - 1);
                while (slot[j]) {
                    j = (j + 1) & (ns - 1);
                }
                slot[j] = ix->slot[i];
            }
        }
        free(ix->slot);
        ix->slot = slot;
        ix->n_slots = ns;
    }
    size_t j = hash_str(s->vals[id].name) & (ix->n_slots - 1);
    while (ix->slot[j]) {
        j = (j + 1) & (ix->n_slots - 1);
    }
    ix->slot[j] = id + 1;
    return 0;
}

int mp__rt_find(const rt_sess_t *s, const char *name)
{
    const name_index_t *ix = s->index;

    if (ix == NULL || ix->n_slots == 0) {
        return -1;
    }
    for (size_t j = hash_str(name) & (ix->n_slots - 1); ix->slot[j];
         j = (j + 1) & (ix->n_slots - 1)) {
        if (strcmp(s->vals[ix->slot[j] - 1].name, name) == 0) {
            return ix->slot[j] - 1;
        }
    }
    return -1;
}

/* A new value named name (taken: freed on failure); its id in *id. */
static int add_val(rt_sess_t *s, char *name, int *id, mp_errctx_t *err)
{
    int rc = 0;

    if (name == NULL) {
        return mp__err_set(err, MP_ENOMEM, "out of memory");
    }
    MP_GOTO_IF(mp__rt_find(s, name) >= 0, MP_EFORMAT, "the graph defines '%s' twice", name);
    if (s->n_vals == s->cap_vals) {
        const size_t cap = s->cap_vals ? s->cap_vals * 2 : 64;
        rt_val_t *v = realloc(s->vals, cap * sizeof *v);
        MP_GOTO_IF(v == NULL, MP_ENOMEM, "out of memory");
        s->vals = v;
        s->cap_vals = cap;
    }
    memset(&s->vals[s->n_vals], 0, sizeof s->vals[0]);
    s->vals[s->n_vals].name = name;
    s->vals[s->n_vals].input = -1;
    s->vals[s->n_vals].output = -1;
    s->vals[s->n_vals].producer = -1;
    s->vals[s->n_vals].alias = -1;
    *id = (int)s->n_vals++;
    name = NULL;
    if (index_put(s, *id) < 0) {
        s->n_vals--;
        free(s->vals[*id].name);
        rc = mp__err_set(err, MP_ENOMEM, "out of memory");
    }
out:
    free(name);
    return rc;
}

int mp__rt_resolve(rt_sess_t *s, const char *name, int *id, mp_errctx_t *err)
{
    const rt_val_t *src;
    int k, rc;

    *id = mp__rt_find(s, name);
    if (*id >= 0 || s->parent == NULL || (k = mp__rt_find(s->parent, name)) < 0) {
        return 0;
    }
    src = &s->parent->vals[k];
    int *m = realloc(s->mirror, (s->n_mirror + 1) * sizeof *m);
    MP_RETURN_IF(m == NULL, MP_ENOMEM, "out of memory");
    s->mirror = m;
    m = realloc(s->mirror_src, (s->n_mirror + 1) * sizeof *m);
    MP_RETURN_IF(m == NULL, MP_ENOMEM, "out of memory");
    s->mirror_src = m;
    if ((rc = add_val(s, strdup(name), id, err)) < 0) {
        return rc;
    }
    if (src->known && (rc = mp__rt_set_shape(&s->vals[*id], src->dt, src->rank, src->dims,
                                             "branch", err)) < 0) {
        return rc;
    }
    s->vals[*id].cdata = src->cdata; /* borrowed: the enclosing session outlives its branches */
    s->mirror[s->n_mirror] = *id;
    s->mirror_src[s->n_mirror++] = k;
    return 0;
}

int mp__rt_set_shape(rt_val_t *v, mp_dtype_t dt, int rank, const int64_t *dims, const char *what,
                     mp_errctx_t *err)
{
    MP_RETURN_IF(rank < 0 || rank > MP_MAX_DIMS, MP_EUNSUPPORTED,
                 "%s: '%s' would have %d dims (at most %d)", what, v->name, rank, MP_MAX_DIMS);
    v->dt = dt;
    v->rank = rank;
    for (int d = 0; d < rank; d++) {
        v->dims[d] = dims[d];
    }
    MP_RETURN_IF(mp__shape_bytes(dt, rank, v->dims, &v->n, &v->bytes) != 0 ||
                     v->bytes > RT_MAX_TENSOR_BYTES,
                 MP_ETOOBIG, "%s: '%s' would have a negative or too large shape", what, v->name);
    v->known = 1;
    return 0;
}

int mp__rt_out_shape(rt_sess_t *s, rt_node_t *n, int i, mp_dtype_t dt, int rank,
                     const int64_t *dims, mp_errctx_t *err)
{
    return mp__rt_set_shape(RT_OUT(s, n, i), dt, rank, dims, n->label, err);
}

int mp__rt_msg(rt_sess_t *s, mp__pb_field_t *f, int depth, const char *what, mp__pb_msg_t **out,
               mp_errctx_t *err)
{
    mp__pb_msg_t **p;
    int rc;

    *out = NULL;
    if (f->sub != NULL) {
        *out = f->sub;
        return 0;
    }
    MP_RETURN_IF(f->wire != MP_PB_LEN, MP_EFORMAT, "%s is not a message", what);
    p = realloc(s->priv, (s->n_priv + 1) * sizeof *p);
    MP_RETURN_IF(p == NULL, MP_ENOMEM, "out of memory");
    s->priv = p;
    if ((rc = mp__pb_parse(f->data, f->len, f->off, depth + 1, out, err)) < 0) {
        return rc;
    }
    s->priv[s->n_priv++] = *out;
    return 0;
}

/* ---- reading the graph -------------------------------------------------------------------- */

/* A graph input's declared element type and dims (-1 where symbolic or missing). */
static int read_input(rt_sess_t *s, mp__pb_field_t *f, int depth, mp_errctx_t *err)
{
    mp__pb_msg_t *vi, *tp, *tt, *sh;
    mp__pb_field_t *nf, *tf, *ttf, *et, *shf;
    char *name;
    int id, rc, k = 0;
    int64_t dims[MP_MAX_DIMS];

    if ((rc = mp__rt_msg(s, f, depth, "graph input", &vi, err)) < 0) {
        return rc;
    }
    nf = mp__pb_find(vi, ONNX_VI_NAME);
    MP_RETURN_IF(nf == NULL || nf->wire != MP_PB_LEN, MP_EFORMAT, "a graph input has no name");
    name = mp__pb_strdup(nf);
    MP_RETURN_IF(name == NULL, MP_ENOMEM, "out of memory");
    if (mp__rt_find(s, name) >= 0) {
        free(name); /* IR < 4 lists initializers as inputs: they stay constants */
        return 0;
    }
    if ((rc = add_val(s, name, &id, err)) < 0) {
        return rc;
    }
    tf = mp__pb_find(vi, ONNX_VI_TYPE);
    MP_RETURN_IF(tf == NULL, MP_EUNSUPPORTED, "graph input '%s' has no type", s->vals[id].name);
    if ((rc = mp__rt_msg(s, tf, vi->depth, "input type", &tp, err)) < 0) {
        return rc;
    }
    ttf = mp__pb_find(tp, ONNX_TYPE_TENSOR);
    MP_RETURN_IF(ttf == NULL, MP_EUNSUPPORTED, "graph input '%s' is not a tensor",
                 s->vals[id].name);
    if ((rc = mp__rt_msg(s, ttf, tp->depth, "input tensor type", &tt, err)) < 0) {
        return rc;
    }
    et = mp__pb_find(tt, ONNX_TTYPE_ELEM_TYPE);
    const int dt = et ? mp__onnx_dtype((int64_t)et->v) : -1;
    MP_RETURN_IF(dt < 0, MP_EUNSUPPORTED, "graph input '%s': element type %lld not supported",
                 s->vals[id].name, et ? (long long)et->v : 0LL);
    s->vals[id].dt = (mp_dtype_t)dt;
    shf = mp__pb_find(tt, ONNX_TTYPE_SHAPE);
    s->vals[id].rank = -1; /* no shape given at all */
    if (shf != NULL) {
        if ((rc = mp__rt_msg(s, shf, tt->depth, "input shape", &sh, err)) < 0) {
            return rc;
        }
        for (size_t i = 0; i < sh->n; i++) {
            mp__pb_msg_t *dm;
            const mp__pb_field_t *dv;
            if (sh->f[i].num != ONNX_SHAPE_DIM) {
                continue;
            }
            MP_RETURN_IF(k >= MP_MAX_DIMS, MP_EUNSUPPORTED, "graph input '%s' has over %d dims",
                         s->vals[id].name, MP_MAX_DIMS);
            if ((rc = mp__rt_msg(s, &sh->f[i], sh->depth, "input dim", &dm, err)) < 0) {
                return rc;
            }
            dv = mp__pb_find(dm, ONNX_DIM_VALUE);
            dims[k++] = dv && dv->wire == MP_PB_VARINT && (int64_t)dv->v >= 0 ? (int64_t)dv->v
                                                                              : -1;
        }
        s->vals[id].rank = k;
        memcpy(s->vals[id].dims, dims, (size_t)k * sizeof dims[0]);
    }
    int *in = realloc(s->inputs, (s->n_inputs + 1) * sizeof *in);
    MP_RETURN_IF(in == NULL, MP_ENOMEM, "out of memory");
    s->inputs = in;
    s->vals[id].input = (int)s->n_inputs;
    s->inputs[s->n_inputs++] = id;
    return 0;
}

static int add_const(rt_sess_t *s, const mp_tensor_t *t, int *id, mp_errctx_t *err)
{
    int rc;

    MP_RETURN_IF(!mp__rt_dtype_ok(t->dtype), MP_EUNSUPPORTED, "tensor '%s': type not supported",
                 t->name);
    if ((rc = add_val(s, strdup(t->name), id, err)) < 0) {
        return rc;
    }
    rc = mp__rt_set_shape(&s->vals[*id], t->dtype, t->n_dims, t->shape, "initializer", err);
    s->vals[*id].cdata = t->data ? t->data : (const void *)"";
    return rc;
}

/* The node's strings of field num (inputs or outputs) as value ids; "" is -1 (absent). Names
 * not defined yet are left as -2 and resolved by resolve_inputs. */
static int node_names(rt_sess_t *s, rt_node_t *n, uint32_t num, int **ids, int *count, int define,
                      mp_errctx_t *err)
{
    const size_t k = mp__pb_count(n->pb, num);
    int c = 0, rc;

    *ids = calloc(k ? k : 1, sizeof **ids);
    MP_RETURN_IF(*ids == NULL, MP_ENOMEM, "out of memory");
    for (size_t i = 0; i < n->pb->n; i++) {
        const mp__pb_field_t *f = &n->pb->f[i];
        char *name;
        if (f->num != num) {
            continue;
        }
        MP_RETURN_IF(f->wire != MP_PB_LEN || memchr(f->data, 0, f->len), MP_EFORMAT,
                     "%s: malformed input or output name", n->label);
        if (f->len == 0) {
            (*ids)[c++] = -1;
            continue;
        }
        name = mp__pb_strdup(f);
        MP_RETURN_IF(name == NULL, MP_ENOMEM, "out of memory");
        if (define) {
            if (mp__rt_find(s, name) >= 0) {
                rc = mp__err_set(err, MP_EFORMAT, "%s defines '%s', which is already defined",
                                 n->label, name);
                free(name);
                return rc;
            }
            if ((rc = add_val(s, name, &(*ids)[c], err)) < 0) {
                return rc;
            }
        } else {
            if ((rc = mp__rt_resolve(s, name, &(*ids)[c], err)) < 0) {
                free(name);
                return rc;
            }
            if ((*ids)[c] < 0) {
                rc = mp__err_set(err, MP_EFORMAT,
                                 "%s reads '%s', which no node, input or initializer defines",
                                 n->label, name);
                free(name);
                return rc;
            }
            free(name);
        }
        c++;
    }
    *count = c;
    return 0;
}

static int read_nodes(rt_sess_t *s, mp_errctx_t *err)
{
    mp__pb_msg_t *g = s->graph;
    const size_t k = mp__pb_count(g, ONNX_GRAPH_NODE);
    size_t idx = 0;
    int rc;

    s->nodes = calloc(k ? k : 1, sizeof *s->nodes);
    MP_RETURN_IF(s->nodes == NULL, MP_ENOMEM, "out of memory");
    for (size_t i = 0; i < g->n; i++) {
        rt_node_t *n;
        const mp__pb_field_t *op, *nm, *dom;
        if (g->f[i].num != ONNX_GRAPH_NODE) {
            continue;
        }
        n = &s->nodes[s->n_nodes++];
        if ((rc = mp__rt_msg(s, &g->f[i], g->depth, "node", &n->pb, err)) < 0) {
            return rc;
        }
        op = mp__pb_find(n->pb, ONNX_NODE_OP_TYPE);
        nm = mp__pb_find(n->pb, ONNX_NODE_NAME);
        dom = mp__pb_find(n->pb, ONNX_NODE_DOMAIN);
        if (op && op->wire == MP_PB_LEN) {
            const size_t l = op->len < sizeof n->op_type - 1 ? op->len : sizeof n->op_type - 1;
            for (size_t c = 0; c < l; c++) {
                const uint8_t ch = op->data[c];
                n->op_type[c] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
            }
        }
        if (nm && nm->wire == MP_PB_LEN && nm->len > 0 && nm->len < 64 &&
            !memchr(nm->data, 0, nm->len)) {
            snprintf(n->label, sizeof n->label, "%s '%.*s'", n->op_type, (int)nm->len,
                     (const char *)nm->data);
        } else {
            snprintf(n->label, sizeof n->label, "%s #%zu", n->op_type, idx);
        }
        idx++;
        if (dom && dom->wire == MP_PB_LEN && dom->len > 0 && !mp__pb_streq(dom, "ai.onnx")) {
            /* another domain's op: never ours, whatever its name */
            char op_only[sizeof n->op_type];
            memcpy(op_only, n->op_type, sizeof op_only);
            snprintf(n->op_type, sizeof n->op_type, "%.*s:%.26s",
                     (int)(dom->len < 20 ? dom->len : 20), (const char *)dom->data, op_only);
            n->op = NULL;
        } else {
            n->op = strcmp(n->op_type, "If") == 0 ? &mp__rt_op_if : mp__rt_op_find(n->op_type);
        }
        if ((rc = node_names(s, n, ONNX_NODE_OUTPUT, &n->out, &n->n_out, 1, err)) < 0) {
            return rc;
        }
        for (int o = 0; o < n->n_out; o++) {
            if (n->out[o] >= 0) {
                s->vals[n->out[o]].producer = (int)(n - s->nodes);
            }
        }
    }
    return 0;
}

/* Constant nodes whose value the ONNX reader made a model tensor: their output is that tensor. */
static int bind_constants(rt_sess_t *s, mp_errctx_t *err)
{
    for (size_t i = 0; i < s->model->n_tensors; i++) {
        const mp__onnx_weight_t *w = &s->ctx->w[i];
        if (w->graph != s->graph || w->origin != MP_ONNX_CONSTANT) {
            continue;
        }
        for (size_t j = 0; j < s->n_nodes; j++) {
            rt_node_t *n = &s->nodes[j];
            if (n->pb == w->node && n->n_out == 1 && n->out[0] >= 0) {
                const mp_tensor_t *t = &s->model->tensors[i];
                rt_val_t *v = &s->vals[n->out[0]];
                MP_RETURN_IF(!mp__rt_dtype_ok(t->dtype), MP_EUNSUPPORTED,
                             "%s: type not supported", n->label);
                int rc = mp__rt_set_shape(v, t->dtype, t->n_dims, t->shape, n->label, err);
                if (rc < 0) {
                    return rc;
                }
                v->cdata = t->data ? t->data : (const void *)"";
                n->folded = 1;
            }
        }
    }
    return 0;
}

static int sort_nodes(rt_sess_t *s, mp_errctx_t *err)
{
    int *pending = calloc(s->n_nodes + 1, sizeof *pending);
    int *queue = malloc((s->n_nodes + 1) * sizeof *queue);
    size_t head = 0, tail = 0;
    int rc = 0;

    s->order = malloc((s->n_nodes + 1) * sizeof *s->order);
    MP_GOTO_IF(pending == NULL || queue == NULL || s->order == NULL, MP_ENOMEM, "out of memory");
    for (size_t j = 0; j < s->n_nodes; j++) {
        for (int i = 0; i < s->nodes[j].n_in; i++) {
            const int v = s->nodes[j].in[i];
            pending[j] += v >= 0 && s->vals[v].producer >= 0;
        }
        if (pending[j] == 0) {
            queue[tail++] = (int)j;
        }
    }
    while (head < tail) {
        const int j = queue[head++];
        s->order[s->n_order++] = j;
        for (int o = 0; o < s->nodes[j].n_out; o++) {
            const int v = s->nodes[j].out[o];
            if (v < 0) {
                continue;
            }
            /* every reader of v has one fewer pending input per time it reads v */
            for (size_t r = 0; r < s->n_nodes; r++) {
                for (int i = 0; i < s->nodes[r].n_in; i++) {
                    if (s->nodes[r].in[i] == v && --pending[r] == 0) {
                        queue[tail++] = (int)r;
                    }
                }
            }
        }
    }
    MP_GOTO_IF(s->n_order != s->n_nodes, MP_EFORMAT,
               "the graph has a cycle (%zu of %zu nodes can be ordered)", s->n_order,
               s->n_nodes);
out:
    free(pending);
    free(queue);
    return rc;
}

/* ---- compressed weights ------------------------------------------------------------------- */

static int is_const(const rt_sess_t *s, int v)
{
    return v >= 0 && s->vals[v].cdata != NULL;
}

static const rt_node_t *producer_is(const rt_sess_t *s, int v, const char *op)
{
    if (v < 0 || s->vals[v].producer < 0) {
        return NULL;
    }
    const rt_node_t *p = &s->nodes[s->vals[v].producer];
    return strcmp(p->op_type, op) == 0 ? p : NULL;
}

static int is_int_type(mp_dtype_t dt)
{
    return dt == MP_DT_I8 || dt == MP_DT_U8 || dt == MP_DT_I16 || dt == MP_DT_U16 ||
           dt == MP_DT_I32 || dt == MP_DT_U32 || dt == MP_DT_I64;
}

static void find_compressed(rt_sess_t *s)
{
    for (size_t j = 0; j < s->n_nodes; j++) {
        rt_node_t *n = &s->nodes[j];
        const rt_node_t *p;
        int w;

        if ((strcmp(n->op_type, "Gemm") && strcmp(n->op_type, "MatMul") &&
             strcmp(n->op_type, "Conv")) ||
            n->n_in < 2 || (w = n->in[1]) < 0) {
            continue;
        }
        if ((p = producer_is(s, w, "DequantizeLinear")) != NULL && p->n_in >= 2 &&
            is_const(s, p->in[0]) && is_const(s, p->in[1]) &&
            (s->vals[p->in[0]].dt == MP_DT_I8 || s->vals[p->in[0]].dt == MP_DT_U8) &&
            s->vals[p->in[1]].dt == MP_DT_F32 &&
            (p->n_in < 3 || p->in[2] < 0 ||
             (is_const(s, p->in[2]) && s->vals[p->in[2]].dt == s->vals[p->in[0]].dt))) {
            n->wsrc = (rt_wsrc_t){.kind = RT_W_QUANT,
                                  .w = w,
                                  .q = p->in[0],
                                  .scale = p->in[1],
                                  .zp = p->n_in >= 3 ? p->in[2] : -1,
                                  .axis = mp__rt_attr_int(p, "axis", 1)};
        } else if ((p = producer_is(s, w, "Gather")) != NULL && p->n_in == 2 &&
                   is_const(s, p->in[0]) && s->vals[p->in[0]].dt == MP_DT_F32 &&
                   s->vals[p->in[0]].rank == 1 && s->vals[p->in[0]].n <= 256 &&
                   s->vals[p->in[0]].n > 0 && mp__rt_attr_int(p, "axis", 0) == 0) {
            int ix = p->in[1];
            const rt_node_t *c = producer_is(s, ix, "Cast");
            if (c != NULL && c->n_in == 1 && is_const(s, c->in[0]) &&
                is_int_type(s->vals[c->in[0]].dt)) {
                ix = c->in[0];
            }
            if (is_const(s, ix) && is_int_type(s->vals[ix].dt)) {
                n->wsrc = (rt_wsrc_t){
                    .kind = RT_W_CODEBOOK, .w = w, .codebook = p->in[0], .indices = ix};
            }
        }
        if (n->wsrc.kind != RT_W_PLAIN) {
            n->in[1] = -1; /* read from wsrc; the float weight is never needed by this node */
        }
    }
}

/* ---- liveness ----------------------------------------------------------------------------- */

static int mark_needed(rt_sess_t *s, mp_errctx_t *err)
{
    int *stack = malloc((s->n_nodes + 1) * sizeof *stack);
    size_t top = 0;

    MP_RETURN_IF(stack == NULL, MP_ENOMEM, "out of memory");
    for (size_t o = 0; o < s->n_outputs; o++) {
        const int p = s->vals[s->outputs[o]].producer;
        if (p >= 0 && !s->nodes[p].needed) {
            s->nodes[p].needed = 1;
            stack[top++] = p;
        }
    }
    while (top > 0) {
        const rt_node_t *n = &s->nodes[stack[--top]];
        for (int i = 0; i < n->n_in; i++) {
            const int p = n->in[i] >= 0 ? s->vals[n->in[i]].producer : -1;
            if (p >= 0 && !s->nodes[p].needed) {
                s->nodes[p].needed = 1;
                stack[top++] = p;
            }
        }
    }
    free(stack);
    return 0;
}

int mp__rt_graph_build(rt_sess_t *s, mp_errctx_t *err)
{
    mp__pb_msg_t *g;
    int rc;

    s->ctx = mp__onnx_ctx(s->model);
    MP_RETURN_IF(s->ctx == NULL || s->ctx->graph == NULL, MP_EINVAL,
                 "the model has no ONNX graph to run (load an .onnx file)");
    s->opset = s->ctx->opset;
    if (s->graph == NULL) {
        s->graph = s->ctx->graph;
    }
    g = s->graph;
    s->index = calloc(1, sizeof(name_index_t));
    MP_RETURN_IF(s->index == NULL, MP_ENOMEM, "out of memory");
    for (size_t i = 0; i < s->model->n_tensors; i++) {
        int id;
        if (s->ctx->w[i].graph == g && s->ctx->w[i].origin == MP_ONNX_INITIALIZER &&
            (rc = add_const(s, &s->model->tensors[i], &id, err)) < 0) {
            return rc;
        }
    }
    for (size_t i = 0; i < g->n; i++) {
        if (g->f[i].num == ONNX_GRAPH_INPUT && (rc = read_input(s, &g->f[i], g->depth, err)) < 0) {
            return rc;
        }
    }
    if ((rc = read_nodes(s, err)) < 0 || (rc = bind_constants(s, err)) < 0) {
        return rc;
    }
    for (size_t j = 0; j < s->n_nodes; j++) {
        rt_node_t *n = &s->nodes[j];
        if ((rc = node_names(s, n, ONNX_NODE_INPUT, &n->in, &n->n_in, 0, err)) < 0 ||
            (n->op == &mp__rt_op_if && (rc = mp__rt_if_outer(s, n, err)) < 0)) {
            return rc;
        }
    }
    s->outputs = calloc(mp__pb_count(g, ONNX_GRAPH_OUTPUT) + 1, sizeof *s->outputs);
    MP_RETURN_IF(s->outputs == NULL, MP_ENOMEM, "out of memory");
    for (size_t i = 0; i < g->n; i++) {
        mp__pb_msg_t *vi;
        const mp__pb_field_t *nf;
        char *name;
        int id;
        if (g->f[i].num != ONNX_GRAPH_OUTPUT) {
            continue;
        }
        if ((rc = mp__rt_msg(s, &g->f[i], g->depth, "graph output", &vi, err)) < 0) {
            return rc;
        }
        nf = mp__pb_find(vi, ONNX_VI_NAME);
        MP_RETURN_IF(nf == NULL || nf->wire != MP_PB_LEN, MP_EFORMAT,
                     "a graph output has no name");
        name = mp__pb_strdup(nf);
        MP_RETURN_IF(name == NULL, MP_ENOMEM, "out of memory");
        rc = mp__rt_resolve(s, name, &id, err);
        free(name);
        if (rc < 0) {
            return rc;
        }
        MP_RETURN_IF(id < 0, MP_EFORMAT, "graph output %zu names nothing the graph defines",
                     s->n_outputs);
        if (s->vals[id].output < 0) {
            s->vals[id].output = (int)s->n_outputs;
        }
        s->outputs[s->n_outputs++] = id;
    }
    MP_RETURN_IF(s->n_outputs == 0, MP_EFORMAT, "the graph has no outputs");
    if ((rc = sort_nodes(s, err)) < 0) {
        return rc;
    }
    find_compressed(s);
    return mark_needed(s, err);
}
