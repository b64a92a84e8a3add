/* rt_session.c — the evaluation runtime's public API: sessions built once, run many times.
 *
 * mp_session_new fixes every input's shape (the batch in dim 0), builds the graph (rt_graph.c),
 * then visits the needed nodes in topological order: an op the runtime lacks is refused with the
 * names of all such ops at once; each node's prep infers its outputs; a node whose inputs are
 * all constant runs right away and its outputs become constants (constant folding, which is
 * how shape arithmetic such as Shape -> Gather -> Concat -> Reshape is resolved before any
 * run). The remaining nodes are the steps. Two fusions follow, each only where nothing else
 * reads the intermediate tensor and it is no graph output: a Relu after a Conv or Gemm is
 * applied by that op (its step becomes a view), and a 2x2 stride-2 MaxPool after a Conv (or
 * after such a Relu) is run by the Conv image by image while the image is in cache, the Relu
 * then applied on the fly; the values are the unfused ones bit for bit. rt_plan.c places the
 * steps' tensors in one arena,
 * allocated here once. mp_session_run then only binds pointers and calls the steps' kernels:
 * no allocation, no shape work. OpenBLAS is set to one thread (see modelpress.h). The branches
 * of an If are sessions too, built by rt_if.c through mp__rt_session_finish and run by
 * mp__rt_steps_run with their inputs bound by the If.
 */
#include "rt_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers for the ops ------------------------------------------------------------------ */

int mp__rt_axis(const rt_node_t *n, int64_t axis, int rank, int *out, mp_errctx_t *err)
{
    MP_RETURN_IF(axis < -(int64_t)rank || axis >= (int64_t)rank, MP_EINVAL,
                 "%s: axis %lld is outside [-%d, %d)", n->label, (long long)axis, rank, rank);
    *out = (int)(axis < 0 ? axis + rank : axis);
    return 0;
}

int mp__rt_const_ints(const rt_sess_t *s, const rt_node_t *n, int i, int64_t *out, int cap,
                      int *count, mp_errctx_t *err)
{
    const rt_val_t *v = RT_IN(s, n, i);

    MP_RETURN_IF(v->cdata == NULL, MP_EUNSUPPORTED,
                 "%s: input %d ('%s') must be known before the run (it depends on the data)",
                 n->label, i, v->name);
    MP_RETURN_IF(v->dt != MP_DT_I64 && v->dt != MP_DT_I32, MP_EINVAL,
                 "%s: input %d ('%s') must be int64 or int32", n->label, i, v->name);
    MP_RETURN_IF(v->n > cap || v->rank > 1, MP_EUNSUPPORTED,
                 "%s: input %d ('%s') has %lld values, at most %d in one dimension", n->label, i,
                 v->name, (long long)v->n, cap);
    for (int64_t k = 0; k < v->n; k++) {
        out[k] = mp__rt_get_i64(v->dt, v->cdata, k);
    }
    *count = (int)v->n;
    return 0;
}

int mp__rt_const_float(const rt_sess_t *s, const rt_node_t *n, int i, float def, float *out,
                       mp_errctx_t *err)
{
    const rt_val_t *v;

    *out = def;
    if (!RT_HAS(n, i)) {
        return 0;
    }
    v = RT_IN(s, n, i);
    MP_RETURN_IF(v->cdata == NULL, MP_EUNSUPPORTED,
                 "%s: input %d ('%s') must be known before the run", n->label, i, v->name);
    MP_RETURN_IF(v->n < 1, MP_EINVAL, "%s: input %d ('%s') is empty", n->label, i, v->name);
    return mp__rt_convert(MP_DT_F32, out, v->dt, v->cdata, 1) < 0
               ? mp__err_set(err, MP_EUNSUPPORTED, "%s: input %d has an unsupported type",
                             n->label, i)
               : 0;
}

int mp__rt_need_type(const rt_sess_t *s, const rt_node_t *n, int i, mp_dtype_t dt,
                     mp_errctx_t *err)
{
    MP_RETURN_IF(!RT_HAS(n, i), MP_EINVAL, "%s: input %d is missing", n->label, i);
    const rt_val_t *v = RT_IN(s, n, i);
    MP_RETURN_IF(dt != MP_DT_COUNT && v->dt != dt, MP_EUNSUPPORTED,
                 "%s: input %d ('%s') is %s; the runtime runs this operator on %s only", n->label,
                 i, v->name, mp_dtype_name(v->dt), mp_dtype_name(dt));
    return 0;
}

/* ---- creation ----------------------------------------------------------------------------- */

void mp_session_free(mp_session_t *s)
{
    if (s == NULL) {
        return;
    }
    for (size_t j = 0; j < s->n_nodes; j++) {
        rt_node_t *n = &s->nodes[j];
        if (n->p != NULL) {
            if (n->op != NULL && n->op->free_p != NULL) {
                n->op->free_p(n->p);
            } else {
                free(n->p);
            }
        }
        free(n->in);
        free(n->out);
    }
    for (size_t v = 0; v < s->n_vals; v++) {
        free(s->vals[v].name);
        free(s->vals[v].cowned);
    }
    for (size_t i = 0; i < s->n_priv; i++) {
        mp__pb_msg_free(s->priv[i]);
    }
    if (s->index != NULL) {
        free(*(int **)s->index); /* name_index_t's slot array comes first */
        free(s->index);
    }
    free(s->priv);
    free(s->nodes);
    free(s->vals);
    free(s->order);
    free(s->steps);
    free(s->inputs);
    free(s->outputs);
    free(s->arena);
    free(s->ptr);
    free(s->in_conv);
    free(s->mirror);
    free(s->mirror_src);
    free(s);
}

/* Refuse every op the runtime lacks at once, so a user learns the whole list. */
static int check_ops(const rt_sess_t *s, mp_errctx_t *err)
{
    char list[400] = "";
    size_t len = 0, n_bad = 0;

    for (size_t k = 0; k < s->n_order; k++) {
        const rt_node_t *n = &s->nodes[s->order[k]];
        int seen = 0;
        if (!n->needed || n->folded || n->op != NULL) {
            continue;
        }
        for (size_t q = 0; q < k && !seen; q++) {
            const rt_node_t *m = &s->nodes[s->order[q]];
            seen = m->needed && !m->folded && m->op == NULL && strcmp(m->op_type, n->op_type) == 0;
        }
        if (!seen && len + strlen(n->op_type) + 3 < sizeof list) {
            len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", n_bad ? ", " : "",
                                    n->op_type);
        }
        n_bad += !seen;
    }
    MP_RETURN_IF(n_bad > 0, MP_EUNSUPPORTED,
                 "the evaluation runtime does not support the operator%s %s", n_bad > 1 ? "s" : "",
                 list);
    return 0;
}

/* Run node n now (all its inputs constant); its outputs become constants the session owns. */
static int fold(rt_sess_t *s, rt_node_t *n, mp_errctx_t *err)
{
    void *ws = NULL;
    rt_exec_t e = {.s = s, .ptr = s->ptr};
    int rc = 0;

    for (int i = 0; i < n->n_in; i++) {
        if (n->in[i] >= 0) {
            /* NULL for a shape_only op's input that is not constant: its data is never read */
            s->ptr[n->in[i]] = (void *)s->vals[n->in[i]].cdata;
        }
    }
    if (n->view) {
        rt_val_t *o = RT_OUT(s, n, 0);
        o->cdata = RT_IN(s, n, 0)->cdata;
        n->folded = 1;
        return 0;
    }
    for (int o = 0; o < n->n_out; o++) {
        rt_val_t *v;
        if (n->out[o] < 0) {
            continue;
        }
        v = RT_OUT(s, n, o);
        v->cowned = malloc(v->bytes ? v->bytes : 1);
        MP_GOTO_IF(v->cowned == NULL, MP_ENOMEM, "%s: out of memory folding a constant",
                   n->label);
        v->cdata = v->cowned;
        s->ptr[n->out[o]] = v->cowned;
    }
    ws = malloc(n->ws_bytes ? n->ws_bytes : 1);
    MP_GOTO_IF(ws == NULL, MP_ENOMEM, "%s: out of memory", n->label);
    e.ws = ws;
    if ((rc = n->op->run(&e, n, err)) < 0) {
        goto out;
    }
    n->folded = 1;
out:
    free(ws);
    return rc;
}

/* 1 if an output of step t is a graph output or is read by a step after it. */
static int step_read(const rt_sess_t *s, size_t t)
{
    const rt_node_t *n = &s->nodes[s->steps[t]];

    for (int o = 0; o < n->n_out; o++) {
        if (n->out[o] < 0) {
            continue;
        }
        if (s->vals[n->out[o]].output >= 0) {
            return 1;
        }
        for (size_t u = t + 1; u < s->n_steps; u++) {
            const rt_node_t *r = &s->nodes[s->steps[u]];
            for (int i = 0; i < r->n_in; i++) {
                if (r->in[i] == n->out[o]) {
                    return 1;
                }
            }
        }
    }
    return 0;
}

/* Drop the steps whose outputs nothing reads once folding is done: the producers of what only
 * the untaken branch of an If with a constant condition read, or of what only a folded Shape
 * read. Last step first, so a chain feeding only dropped steps goes too; order is kept. */
static void prune_steps(rt_sess_t *s)
{
    size_t t = s->n_steps;

    while (t-- > 0) {
        if (!step_read(s, t)) {
            memmove(&s->steps[t], &s->steps[t + 1], (s->n_steps - t - 1) * sizeof *s->steps);
            s->n_steps--;
        }
    }
}

/* Fuse a Relu into the Conv or Gemm that produces its input, when that Relu is the input's only
 * reader and the input is no graph output: the producer applies the Relu to its output as it
 * writes it (mp__rt_relu, the Relu operator's own loop, so the same bits), and the Relu step
 * becomes a view of it. This saves a pass over the tensor; a Conv applies it per image and
 * group, while the output is in cache. */
static void fuse_relu(rt_sess_t *s)
{
    for (size_t t = 0; t < s->n_steps; t++) {
        rt_node_t *n = &s->nodes[s->steps[t]];
        int v, reads = 0;
        if (strcmp(n->op_type, "Relu") != 0 || n->view || n->n_in < 1 || n->n_out < 1 ||
            (v = n->in[0]) < 0 || n->out[0] < 0) {
            continue;
        }
        const rt_val_t *x = &s->vals[v];
        if (x->dt != MP_DT_F32 || x->output >= 0 || x->input >= 0 || x->cdata != NULL ||
            x->alias >= 0 || x->producer < 0) {
            continue;
        }
        rt_node_t *p = &s->nodes[x->producer];
        if ((strcmp(p->op_type, "Conv") != 0 && strcmp(p->op_type, "Gemm") != 0) || p->folded ||
            p->view || p->relu || p->out[0] != v) {
            continue;
        }
        for (size_t u = 0; u < s->n_steps; u++) {
            const rt_node_t *r = &s->nodes[s->steps[u]];
            for (int i = 0; i < r->n_in; i++) {
                reads += r->in[i] == v;
            }
        }
        if (reads == 1) {
            p->relu = 1;
            n->view = 1;
            s->vals[n->out[0]].alias = v;
        }
    }
}

/* Readers of value v among the steps, views followed: the steps that read v or a view of it,
 * views not counted; -1 when v or a view of it is a graph output. *reader: the last found. */
static int readers(const rt_sess_t *s, int v, int *reader)
{
    int count = 0;

    if (s->vals[v].output >= 0) {
        return -1;
    }
    for (size_t u = 0; u < s->n_steps; u++) {
        const rt_node_t *r = &s->nodes[s->steps[u]];
        for (int i = 0; i < r->n_in; i++) {
            if (r->in[i] != v) {
                continue;
            }
            if (r->view) {
                const int c = readers(s, r->out[0], reader);
                if (c < 0) {
                    return -1;
                }
                count += c;
            } else {
                count++;
                *reader = s->steps[u];
            }
        }
    }
    return count;
}

/* Fuse a 2x2 stride-2 MaxPool into the Conv producing its input (through a fused Relu's view or
 * directly), when it is that output's only reader and nothing of it is a graph output: the Conv
 * pools each image as soon as it is computed, while it is in cache, and the MaxPool step does
 * nothing; the plan defines the pooled output at the Conv's step, so nothing the Conv still
 * reads can share its bytes. */
static void fuse_pool(rt_sess_t *s)
{
    for (size_t t = 0; t < s->n_steps; t++) {
        rt_node_t *c = &s->nodes[s->steps[t]];
        int pool = -1;
        if (strcmp(c->op_type, "Conv") != 0 || c->folded || c->pool || c->n_out < 1 ||
            c->out[0] < 0 || s->vals[c->out[0]].rank != 4 ||
            readers(s, c->out[0], &pool) != 1) {
            continue;
        }
        rt_node_t *p = &s->nodes[pool];
        if (!mp__rt_pool2_fusable(p) || p->by_step || p->folded) {
            continue;
        }
        c->pool = pool + 1;
        p->by_step = (int)t + 1;
    }
}

/* Prep every needed node in order, folding those whose inputs are all constant (every op of
 * the runtime is deterministic, so folding never changes a result). */
static int prepare(rt_sess_t *s, mp_errctx_t *err)
{
    int rc;

    if ((rc = check_ops(s, err)) < 0) {
        return rc;
    }
    s->ptr = calloc(s->n_vals + 1, sizeof *s->ptr);
    s->steps = malloc((s->n_nodes + 1) * sizeof *s->steps);
    MP_RETURN_IF(s->ptr == NULL || s->steps == NULL, MP_ENOMEM, "out of memory");
    for (size_t k = 0; k < s->n_order; k++) {
        rt_node_t *n = &s->nodes[s->order[k]];
        int all_const = 1;
        if (!n->needed || n->folded) {
            continue;
        }
        for (int i = 0; i < n->n_in; i++) {
            if (n->in[i] >= 0) {
                MP_RETURN_IF(!s->vals[n->in[i]].known, MP_EINTERNAL,
                             "%s: input '%s' has no shape", n->label, s->vals[n->in[i]].name);
            }
        }
        if ((rc = n->op->prep(s, n, err)) < 0) {
            return rc;
        }
        /* after prep, which may drop inputs it will not read (If with a constant condition) */
        for (int i = 0; i < n->n_in; i++) {
            all_const &= n->in[i] < 0 || s->vals[n->in[i]].cdata != NULL;
        }
        for (int o = 0; o < n->n_out; o++) {
            if (n->out[o] >= 0 && !s->vals[n->out[o]].known) {
                /* an optional output the op does not compute: nothing may read it */
                rt_val_t *v = RT_OUT(s, n, o);
                MP_RETURN_IF(v->output >= 0, MP_EUNSUPPORTED,
                             "%s: output %d ('%s') is not computed by the runtime", n->label, o,
                             v->name);
                for (size_t j = 0; j < s->n_nodes; j++) {
                    for (int i = 0; s->nodes[j].needed && i < s->nodes[j].n_in; i++) {
                        MP_RETURN_IF(s->nodes[j].in[i] == n->out[o], MP_EUNSUPPORTED,
                                     "%s: output %d ('%s') is not computed by the runtime",
                                     n->label, o, v->name);
                    }
                }
                n->out[o] = -1;
            }
        }
        if (n->view) {
            RT_OUT(s, n, 0)->alias = n->in[0];
        }
        if ((all_const || n->op->shape_only) && (rc = fold(s, n, err)) < 0) {
            return rc;
        }
        if (!n->folded) {
            s->steps[s->n_steps++] = s->order[k];
        }
    }
    prune_steps(s);
    fuse_relu(s);
    fuse_pool(s);
    return 0;
}

/* The shape of input i: declared dims, with dim 0 the batch when batch > 0 and dim 0 is
 * symbolic or 1. */
static int input_shape(rt_sess_t *s, size_t i, int batch, int rank, const int64_t *dims,
                       mp_errctx_t *err)
{
    rt_val_t *v = &s->vals[s->inputs[i]];
    int64_t d[MP_MAX_DIMS];

    if (dims == NULL) {
        MP_RETURN_IF(v->rank < 0, MP_EINVAL,
                     "input '%s' declares no shape: give it (mp_session_new_shapes)", v->name);
        rank = v->rank;
        memcpy(d, v->dims, (size_t)rank * sizeof *d);
        if (batch > 0 && rank > 0 && (d[0] < 0 || d[0] == 1)) {
            d[0] = batch;
        }
        for (int k = 0; k < rank; k++) {
            MP_RETURN_IF(d[k] < 0, MP_EINVAL,
                         "input '%s': dim %d is symbolic; only dim 0 takes the batch size, give "
                         "the others (mp_session_new_shapes)",
                         v->name, k);
        }
    } else {
        MP_RETURN_IF(rank < 0 || rank > MP_MAX_DIMS, MP_EINVAL, "input '%s': rank %d", v->name,
                     rank);
        /* given shapes win over declared ones, as in other runtimes: exporters often declare
         * sizes the model does not depend on */
        for (int k = 0; k < rank; k++) {
            MP_RETURN_IF(dims[k] < 0, MP_EINVAL, "input '%s': dim %d is negative", v->name, k);
            d[k] = dims[k];
        }
    }
    MP_RETURN_IF(!mp__rt_dtype_ok(v->dt), MP_EUNSUPPORTED, "input '%s': type not supported",
                 v->name);
    return mp__rt_set_shape(v, v->dt, rank, d, "input", err);
}

int mp__rt_session_finish(rt_sess_t *s, mp_errctx_t *err)
{
    int rc;

    if ((rc = prepare(s, err)) < 0 || (rc = mp__rt_plan(s, err)) < 0) {
        return rc;
    }
    s->arena = aligned_alloc(RT_ALIGN, s->arena_bytes ? s->arena_bytes : RT_ALIGN);
    MP_RETURN_IF(s->arena == NULL, MP_ENOMEM,
                 "out of memory: the model needs %zu bytes of tensors", s->arena_bytes);
    for (size_t v = 0; v < s->n_vals; v++) {
        if (s->vals[v].in_arena) {
            s->ptr[v] = s->arena + s->vals[v].off;
        } else if (s->vals[v].cdata != NULL) {
            s->ptr[v] = (void *)s->vals[v].cdata;
        }
    }
    return 0;
}

int mp__rt_session_new(const mp_model_t *onnx, int batch, size_t n_given, const int *ranks,
                       const int64_t *const *dims, const void *const *values,
                       mp_session_t **out, mp_errctx_t *err)
{
    mp_session_t *s = NULL;
    size_t conv_bytes = 0;
    int rc = 0;

    MP_RETURN_IF(out == NULL, MP_EINVAL, "mp_session_new: no result pointer");
    *out = NULL;
    MP_RETURN_IF(onnx == NULL, MP_EINVAL, "mp_session_new: no model");
    mp__rt_blas_init();
    s = calloc(1, sizeof *s);
    MP_GOTO_IF(s == NULL, MP_ENOMEM, "out of memory");
    s->model = onnx;
    if ((rc = mp__rt_graph_build(s, err)) < 0) {
        goto out;
    }
    MP_GOTO_IF(ranks != NULL && n_given != s->n_inputs, MP_EINVAL,
               "the model has %zu inputs, %zu shapes given", s->n_inputs, n_given);
    for (size_t i = 0; i < s->n_inputs; i++) {
        const int64_t *d = ranks != NULL ? dims[i] : NULL;
        if ((rc = input_shape(s, i, batch, ranks ? ranks[i] : 0, d, err)) < 0) {
            goto out;
        }
        rt_val_t *v = &s->vals[s->inputs[i]];
        if (values != NULL && values[i] != NULL) {
            v->cowned = malloc(v->bytes ? v->bytes : 1);
            MP_GOTO_IF(v->cowned == NULL, MP_ENOMEM, "out of memory");
            memcpy(v->cowned, values[i], v->bytes);
            v->cdata = v->cowned;
        }
        if (v->dt != MP_DT_F32) {
            conv_bytes += (v->bytes + RT_ALIGN - 1) & ~(size_t)(RT_ALIGN - 1);
        }
    }
    s->in_conv = malloc(conv_bytes ? conv_bytes : 1);
    MP_GOTO_IF(s->in_conv == NULL, MP_ENOMEM, "out of memory");
    if ((rc = mp__rt_session_finish(s, err)) < 0) {
        goto out;
    }
    *out = s;
    s = NULL;
out:
    mp_session_free(s);
    return rc;
}

int mp_session_new(const mp_model_t *onnx, int batch, mp_session_t **out, mp_errctx_t *err)
{
    MP_RETURN_IF(batch < 1, MP_EINVAL, "batch size %d: must be at least 1", batch);
    return mp__rt_session_new(onnx, batch, 0, NULL, NULL, NULL, out, err);
}

int mp_session_new_shapes(const mp_model_t *onnx, size_t n_inputs, const int *ranks,
                          const int64_t *const *dims, mp_session_t **out, mp_errctx_t *err)
{
    MP_RETURN_IF(ranks == NULL || dims == NULL, MP_EINVAL, "mp_session_new_shapes: no shapes");
    return mp__rt_session_new(onnx, 0, n_inputs, ranks, dims, NULL, out, err);
}

/* ---- running ------------------------------------------------------------------------------ */

int mp__rt_steps_run(rt_sess_t *s, mp_errctx_t *err)
{
    const rt_exec_t e = {.s = s, .ptr = s->ptr, .ws = s->arena + s->tensor_bytes};
    int rc;

    for (size_t t = 0; t < s->n_steps; t++) {
        const rt_node_t *n = &s->nodes[s->steps[t]];
        if (n->view) {
            s->ptr[n->out[0]] = s->ptr[n->in[0]];
            continue;
        }
        if ((rc = n->op->run(&e, n, err)) < 0) {
            return rc;
        }
    }
    return 0;
}

int mp_session_run(mp_session_t *s, const float *const *inputs, float *const *outputs,
                   mp_errctx_t *err)
{
    uint8_t *conv;
    int rc = 0;

    MP_RETURN_IF(s == NULL || (s->n_inputs && inputs == NULL) || outputs == NULL, MP_EINVAL,
                 "mp_session_run: NULL argument");
    conv = s->in_conv;
    for (size_t i = 0; i < s->n_inputs; i++) {
        const rt_val_t *v = &s->vals[s->inputs[i]];
        MP_RETURN_IF(inputs[i] == NULL && v->n > 0, MP_EINVAL, "input '%s': no data", v->name);
        if (v->cdata != NULL) {
            continue; /* bound as a constant when the session was made */
        }
        if (v->dt == MP_DT_F32) {
            s->ptr[s->inputs[i]] = (void *)inputs[i];
            continue;
        }
        mp__rt_convert(v->dt, conv, MP_DT_F32, inputs[i], v->n);
        s->ptr[s->inputs[i]] = conv;
        conv += (v->bytes + RT_ALIGN - 1) & ~(size_t)(RT_ALIGN - 1);
    }
    if ((rc = mp__rt_steps_run(s, err)) < 0) {
        return rc;
    }
    for (size_t o = 0; o < s->n_outputs; o++) {
        const rt_val_t *v = &s->vals[s->outputs[o]];
        MP_RETURN_IF(outputs[o] == NULL && v->n > 0, MP_EINVAL, "output '%s': no buffer",
                     v->name);
        if (v->n > 0) {
            mp__rt_convert(MP_DT_F32, outputs[o], v->dt, s->ptr[s->outputs[o]], v->n);
        }
    }
    return 0;
}

/* ---- accessors ---------------------------------------------------------------------------- */

size_t mp_session_n_inputs(const mp_session_t *s)
{
    return s ? s->n_inputs : 0;
}

size_t mp_session_n_outputs(const mp_session_t *s)
{
    return s ? s->n_outputs : 0;
}

static const rt_val_t *io_val(const mp_session_t *s, int output, size_t i)
{
    if (s == NULL || i >= (output ? s->n_outputs : s->n_inputs)) {
        return NULL;
    }
    return &s->vals[output ? s->outputs[i] : s->inputs[i]];
}

const char *mp_session_input_name(const mp_session_t *s, size_t i)
{
    const rt_val_t *v = io_val(s, 0, i);
    return v ? v->name : NULL;
}

const char *mp_session_output_name(const mp_session_t *s, size_t i)
{
    const rt_val_t *v = io_val(s, 1, i);
    return v ? v->name : NULL;
}

static int shape_of(const rt_val_t *v, int64_t *dims)
{
    if (v == NULL) {
        return -1;
    }
    if (dims != NULL) {
        memcpy(dims, v->dims, (size_t)v->rank * sizeof *dims);
    }
    return v->rank;
}

int mp_session_input_shape(const mp_session_t *s, size_t i, int64_t *dims)
{
    return shape_of(io_val(s, 0, i), dims);
}

int mp_session_output_shape(const mp_session_t *s, size_t i, int64_t *dims)
{
    return shape_of(io_val(s, 1, i), dims);
}

int64_t mp_session_input_elements(const mp_session_t *s, size_t i)
{
    const rt_val_t *v = io_val(s, 0, i);
    return v ? v->n : -1;
}

int64_t mp_session_output_elements(const mp_session_t *s, size_t i)
{
    const rt_val_t *v = io_val(s, 1, i);
    return v ? v->n : -1;
}

int mp_session_input_dtype(const mp_session_t *s, size_t i)
{
    const rt_val_t *v = io_val(s, 0, i);
    return v ? (int)v->dt : -1;
}

size_t mp_session_arena_bytes(const mp_session_t *s)
{
    return s ? s->arena_bytes : 0;
}
