/* rt_plan.c — the memory plan: one arena for every tensor a run computes.
 *
 * Each value a step computes lives from the step that defines it (def) to the last step that
 * reads it (last); graph outputs live to the end. A view (Reshape and friends) owns no bytes:
 * its reads count as reads of the value it views (its root), which therefore lives as long as
 * any of its views is read. Values are placed greedily, largest first, each at the lowest
 * 64-byte-aligned offset where it overlaps no value already placed whose lifetime meets its own
 * (the "greedy by size" plan of TFLite's arena planner): two tensors alive at the same step never
 * share a byte, which mp__rt_plan_check verifies and the tests assert. Constants and graph
 * inputs are never in the arena. After the tensors comes one workspace region, as large as the
 * largest any step asks for, used by each step in turn.
 */
#include "rt_int.h"

#include <stdlib.h>
#include <string.h>

static int root_of(const rt_sess_t *s, int v)
{
    while (s->vals[v].alias >= 0) {
        v = s->vals[v].alias;
    }
    return v;
}

static size_t align_up(size_t x)
{
    return (x + RT_ALIGN - 1) & ~(size_t)(RT_ALIGN - 1);
}

static int overlaps_life(const rt_val_t *a, const rt_val_t *b)
{
    return a->def <= b->last && b->def <= a->last;
}

typedef struct placed {
    size_t off, end;
} placed_t;

static int cmp_placed(const void *a, const void *b)
{
    const placed_t *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off;
}

/* Largest first; ties by id, so the plan is the same on every run. */
static int cmp_size(const void *a, const void *b, void *ctx)
{
    const rt_sess_t *s = ctx;
    const rt_val_t *x = &s->vals[*(const int *)a], *y = &s->vals[*(const int *)b];
    if (x->bytes != y->bytes) {
        return x->bytes > y->bytes ? -1 : 1;
    }
    return *(const int *)a - *(const int *)b;
}

int mp__rt_plan(rt_sess_t *s, mp_errctx_t *err)
{
    int *order = NULL, n_arena = 0, rc = 0;
    placed_t *busy = NULL;
    size_t top = 0;

    for (size_t v = 0; v < s->n_vals; v++) {
        s->vals[v].def = -1;
        s->vals[v].last = -1;
        s->vals[v].in_arena = 0;
        s->vals[v].n_reads = 0;
    }
    s->ws_bytes = 0;
    for (size_t t = 0; t < s->n_steps; t++) {
        const rt_node_t *n = &s->nodes[s->steps[t]];
        for (int i = 0; i < n->n_in; i++) {
            if (n->in[i] >= 0) {
                rt_val_t *r = &s->vals[root_of(s, n->in[i])];
                r->last = (int)t;
                r->n_reads++;
            }
        }
        for (int o = 0; o < n->n_out; o++) {
            if (n->out[o] >= 0) {
                rt_val_t *v = &s->vals[n->out[o]];
                v->def = n->by_step ? n->by_step - 1 : (int)t; /* a fused step's: its producer's */
                v->last = v->last < (int)t ? (int)t : v->last;
                v->in_arena = v->cdata == NULL && v->alias < 0;
            }
        }
        if (n->ws_bytes > s->ws_bytes) {
            s->ws_bytes = n->ws_bytes;
        }
    }
    for (size_t o = 0; o < s->n_outputs; o++) {
        s->vals[root_of(s, s->outputs[o])].last = (int)s->n_steps;
    }
    order = malloc((s->n_vals + 1) * sizeof *order);
    busy = malloc((s->n_vals + 1) * sizeof *busy);
    MP_GOTO_IF(order == NULL || busy == NULL, MP_ENOMEM, "out of memory planning the arena");
    for (size_t v = 0; v < s->n_vals; v++) {
        if (s->vals[v].in_arena) {
            order[n_arena++] = (int)v;
        }
    }
    qsort_r(order, (size_t)n_arena, sizeof *order, cmp_size, s);
    for (int a = 0; a < n_arena; a++) {
        rt_val_t *v = &s->vals[order[a]];
        const size_t need = align_up(v->bytes ? v->bytes : 1);
        size_t nb = 0, off = 0;
        for (int b = 0; b < a; b++) {
            const rt_val_t *w = &s->vals[order[b]];
            if (overlaps_life(v, w)) {
                busy[nb++] = (placed_t){w->off, w->off + align_up(w->bytes ? w->bytes : 1)};
            }
        }
        qsort(busy, nb, sizeof *busy, cmp_placed);
        for (size_t b = 0; b < nb; b++) {
            if (busy[b].off >= off + need) {
                break; /* the gap before this one fits */
            }
            if (busy[b].end > off) {
                off = busy[b].end;
            }
        }
        v->off = off;
        if (off + need > top) {
            top = off + need;
        }
    }
    s->tensor_bytes = top;
    s->ws_bytes = align_up(s->ws_bytes);
    MP_GOTO_IF(mp__add_size(top, s->ws_bytes, &s->arena_bytes) != 0, MP_ETOOBIG,
               "the model needs more memory than can be addressed");
out:
    free(order);
    free(busy);
    return rc;
}

int mp__rt_plan_check(const rt_sess_t *s, mp_errctx_t *err)
{
    for (size_t a = 0; a < s->n_vals; a++) {
        const rt_val_t *x = &s->vals[a];
        if (!x->in_arena) {
            continue;
        }
        if (x->off % RT_ALIGN != 0 || x->off + x->bytes > s->tensor_bytes) {
            return mp__err_set(err, -1, "'%s' at %zu+%zu lies outside the tensor region (%zu)",
                               x->name, x->off, x->bytes, s->tensor_bytes);
        }
        for (size_t b = a + 1; b < s->n_vals; b++) {
            const rt_val_t *y = &s->vals[b];
            if (y->in_arena && overlaps_life(x, y) && x->bytes > 0 && y->bytes > 0 &&
                x->off < y->off + y->bytes && y->off < x->off + x->bytes) {
                return mp__err_set(err, -1,
                                   "'%s' [%zu, %zu) steps %d-%d overlaps '%s' [%zu, %zu) steps "
                                   "%d-%d",
                                   x->name, x->off, x->off + x->bytes, x->def, x->last, y->name,
                                   y->off, y->off + y->bytes, y->def, y->last);
            }
        }
    }
    return 0;
}
