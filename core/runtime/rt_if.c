/* rt_if.c — the If operator (opsets 1-18): a scalar condition picks one of two subgraphs,
 * then_branch or else_branch, whose outputs become the If's outputs.
 *
 * A branch has no inputs of its own: it reads values of the enclosing graph by name. Building
 * the enclosing graph, mp__rt_if_outer adds every such value (read at any depth of nesting) to
 * the If node's inputs, so ordering, liveness, constant folding and the memory plan of the
 * enclosing graph treat them as ordinary inputs. At prep each branch becomes a session of its
 * own (its own values, steps and arena) whose reads of enclosing values are mirrors: constants
 * of the enclosing graph stay constants there, so a branch folds what depends on them, and the
 * other mirrors are pointed at the enclosing run's data before the branch runs. When the
 * condition is constant at creation (often, after constant folding) only the taken branch is
 * built and no test is made at run time; when the branch's inputs are constant as well, the
 * whole If is folded by the session. Invariant: with a condition known only at run time, both
 * branches give outputs of the same type and shape (the runtime fixes shapes at creation), else
 * the model is refused naming the output.
 */
#include "rt_int.h"

#include <stdlib.h>
#include <string.h>

typedef struct if_p {
    rt_sess_t *br[2];            /* then, else; NULL for a branch never taken */
    int taken;                   /* 0 or 1 when the condition is constant, else -1 */
} if_p_t;

static void if_free(void *p)
{
    if_p_t *q = p;

    mp_session_free(q->br[0]);
    mp_session_free(q->br[1]);
    free(q);
}

/* The GraphProto of attribute name (then_branch / else_branch). */
static int branch_graph(rt_sess_t *s, const rt_node_t *n, const char *name, mp__pb_msg_t **g,
                        mp_errctx_t *err)
{
    const mp__pb_msg_t *a = mp__rt_attr(n, name);
    mp__pb_field_t *f = a ? mp__pb_find(a, ONNX_ATTR_G) : NULL;

    *g = NULL;
    MP_RETURN_IF(f == NULL, MP_EFORMAT, "%s has no %s graph", n->label, name);
    return mp__rt_msg(s, f, a->depth, name, g, err);
}

/* Append value id v to n's inputs unless it is there already. */
static int add_input(rt_node_t *n, int v, mp_errctx_t *err)
{
    for (int i = 0; i < n->n_in; i++) {
        if (n->in[i] == v) {
            return 0;
        }
    }
    int *in = realloc(n->in, (size_t)(n->n_in + 1) * sizeof *in);
    MP_RETURN_IF(in == NULL, MP_ENOMEM, "out of memory");
    n->in = in;
    n->in[n->n_in++] = v;
    return 0;
}

/* Every name read by a node of g, or by a node of a subgraph of one (recursively), that s or
 * its enclosing session defines becomes an input of n. Names g defines itself are found in
 * neither (ONNX names are unique across scopes), except by a graph that shadows an outer name:
 * then the outer value is merely kept alive longer. */
static int collect(rt_sess_t *s, rt_node_t *n, mp__pb_msg_t *g, mp_errctx_t *err)
{
    int rc;

    for (size_t i = 0; i < g->n; i++) {
        mp__pb_msg_t *node;
        if (g->f[i].num != ONNX_GRAPH_NODE) {
            continue;
        }
        if ((rc = mp__rt_msg(s, &g->f[i], g->depth, "branch node", &node, err)) < 0) {
            return rc;
        }
        for (size_t j = 0; j < node->n; j++) {
            mp__pb_field_t *f = &node->f[j];
            if (f->num == ONNX_NODE_INPUT && f->wire == MP_PB_LEN && f->len > 0) {
                char *name = mp__pb_strdup(f);
                int id;
                MP_RETURN_IF(name == NULL, MP_ENOMEM, "out of memory");
                rc = mp__rt_resolve(s, name, &id, err);
                free(name);
                if (rc < 0 || (id >= 0 && (rc = add_input(n, id, err)) < 0)) {
                    return rc;
                }
            } else if (f->num == ONNX_NODE_ATTRIBUTE) {
                mp__pb_msg_t *a;
                if ((rc = mp__rt_msg(s, f, node->depth, "branch attribute", &a, err)) < 0) {
                    return rc;
                }
                for (size_t k = 0; k < a->n; k++) {
                    mp__pb_msg_t *sub;
                    if (a->f[k].num != ONNX_ATTR_G && a->f[k].num != ONNX_ATTR_GRAPHS) {
                        continue;
                    }
                    if ((rc = mp__rt_msg(s, &a->f[k], a->depth, "subgraph", &sub, err)) < 0 ||
                        (rc = collect(s, n, sub, err)) < 0) {
                        return rc;
                    }
                }
            }
        }
    }
    return 0;
}

int mp__rt_if_outer(rt_sess_t *s, rt_node_t *n, mp_errctx_t *err)
{
    static const char *const names[2] = {"then_branch", "else_branch"};
    int rc;

    for (int b = 0; b < 2; b++) {
        mp__pb_msg_t *g;
        if ((rc = branch_graph(s, n, names[b], &g, err)) < 0 || (rc = collect(s, n, g, err)) < 0) {
            return rc;
        }
    }
    return 0;
}

/* A session for the branch graph g of node n, nested in s. */
static int branch_new(rt_sess_t *s, const rt_node_t *n, mp__pb_msg_t *g, rt_sess_t **out,
                      mp_errctx_t *err)
{
    rt_sess_t *b = calloc(1, sizeof *b);
    int rc;

    *out = NULL;
    MP_RETURN_IF(b == NULL, MP_ENOMEM, "out of memory");
    b->model = s->model;
    b->graph = g;
    b->parent = s;
    if ((rc = mp__rt_graph_build(b, err)) < 0 || (rc = mp__rt_session_finish(b, err)) < 0) {
        if (err != NULL) {
            char why[sizeof err->msg];
            memcpy(why, err->msg, sizeof why);
            mp__err_set(err, rc, "%s: %s", n->label, why);
        }
        mp_session_free(b);
        return rc;
    }
    *out = b;
    return 0;
}

static int truth(mp_dtype_t dt, const void *p)
{
    float f = 0;

    mp__rt_convert(MP_DT_F32, &f, dt, p, 1);
    return f != 0;
}

static int if_prep(rt_sess_t *s, rt_node_t *n, mp_errctx_t *err)
{
    static const char *const names[2] = {"then_branch", "else_branch"};
    const rt_val_t *c;
    if_p_t *p;
    int rc;

    MP_RETURN_IF(!RT_HAS(n, 0), MP_EINVAL, "%s has no condition", n->label);
    c = RT_IN(s, n, 0);
    MP_RETURN_IF(c->n != 1, MP_EINVAL, "%s: the condition '%s' has %lld elements, not one",
                 n->label, c->name, (long long)c->n);
    p = calloc(1, sizeof *p);
    MP_RETURN_IF(p == NULL, MP_ENOMEM, "out of memory");
    n->p = p;
    p->taken = c->cdata != NULL ? !truth(c->dt, c->cdata) : -1;
    if (p->taken >= 0) {
        /* the branch not taken reads nothing: keep only what the taken one reads, so that the
         * session folds the If when those are constant, and the plan frees the others sooner */
        mp__pb_msg_t *g;
        n->n_in = 1;
        if ((rc = branch_graph(s, n, names[p->taken], &g, err)) < 0 ||
            (rc = collect(s, n, g, err)) < 0) {
            return rc;
        }
    }
    for (int b = 0; b < 2; b++) {
        mp__pb_msg_t *g;
        if (p->taken >= 0 && p->taken != b) {
            continue;
        }
        if ((rc = branch_graph(s, n, names[b], &g, err)) < 0 ||
            (rc = branch_new(s, n, g, &p->br[b], err)) < 0) {
            return rc;
        }
        MP_RETURN_IF(p->br[b]->n_outputs != (size_t)n->n_out, MP_EFORMAT,
                     "%s: %s has %zu outputs, the If %d", n->label, names[b],
                     p->br[b]->n_outputs, n->n_out);
    }
    for (int o = 0; o < n->n_out; o++) {
        const rt_val_t *v = NULL;
        for (int b = 0; b < 2; b++) {
            const rt_val_t *w = p->br[b] ? &p->br[b]->vals[p->br[b]->outputs[o]] : NULL;
            if (w != NULL && v != NULL) {
                MP_RETURN_IF(w->dt != v->dt || w->rank != v->rank ||
                                 memcmp(w->dims, v->dims, (size_t)v->rank * sizeof *v->dims),
                             MP_EUNSUPPORTED,
                             "%s: the branches give output %d ('%s') different types or shapes, "
                             "and the condition is known only when it runs",
                             n->label, o, v->name);
            }
            v = w != NULL ? w : v;
        }
        if (n->out[o] >= 0 &&
            (rc = mp__rt_out_shape(s, n, o, v->dt, v->rank, v->dims, err)) < 0) {
            return rc;
        }
    }
    return 0;
}

static int if_run(const rt_exec_t *e, const rt_node_t *n, mp_errctx_t *err)
{
    const if_p_t *p = n->p;
    rt_sess_t *b;
    int rc;

    b = p->br[p->taken >= 0 ? p->taken : !truth(RT_IN(e->s, n, 0)->dt, RT_PTR(e, n, 0))];
    for (size_t k = 0; k < b->n_mirror; k++) {
        if (b->vals[b->mirror[k]].cdata == NULL) {
            b->ptr[b->mirror[k]] = e->ptr[b->mirror_src[k]];
        }
    }
    if ((rc = mp__rt_steps_run(b, err)) < 0) {
        return rc;
    }
    for (int o = 0; o < n->n_out; o++) {
        if (n->out[o] >= 0 && RT_OUT(e->s, n, o)->bytes > 0) {
            memcpy(RT_OPTR(e, n, o), b->ptr[b->outputs[o]], RT_OUT(e->s, n, o)->bytes);
        }
    }
    return 0;
}

const rt_op_t mp__rt_op_if = {"If", if_prep, if_run, if_free, 0};
