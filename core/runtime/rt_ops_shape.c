/* rt_ops_shape.c — operators that move data without arithmetic: Reshape, Flatten, Squeeze,
 * Unsqueeze, Identity (views: no bytes move), Transpose, Concat, Split, Slice, Pad, Gather,
 * Shape, Constant and ConstantOfShape.
 *
 * They work on any element type by element size. Their shape inputs (Reshape's shape, Slice's
 * starts, Pad's pads, …) must be known when the session is built — constants, or computed from
 * constants and shapes by folding — since every shape is fixed up front; a shape that depends on
 * the input data is refused naming the node. Gather checks every index at run time (an index
 * out of range is MP_EINVAL naming the node, never a read outside the tensor).
 */
#include "rt_int.h"

#include <stdlib.h>
#include <string.h>

/* ---- views -------------------------------------------------------------------------------- */

static int view_out(rt_sess_t *s, rt_node_t *n, int rank, const int64_t *dims, mp_errctx_t *err)
{
    const rt_val_t *x = RT_IN(s, n, 0);
    int rc = mp__rt_out_shape(s, n, 0, x->dt, rank, dims, err);

    MP_RETURN_IF(rc == 0 && RT_OUT(s, n, 0)->n != x->n, MP_EINVAL,
                 "%s: %lld elements cannot be viewed as %lld", n->label, (long long)x->n,
                 (long long)RT_OUT(s, n, 0)->n);
    n->view = 1;
    return rc;
}

static int identity_prep(rt_sess_t *s, rt_node_t *n, mp_errctx_t *err)
{
    const rt_val_t *x = RT_IN(s, n, 0);
    return view_out(s, n, x->rank, x->dims, err);
}

static int reshape_prep(rt_sess_t *s, rt_node_t *n, mp_errctx_t *err)
{
    const rt_val_t *x = RT_IN(s, n, 0);
    int64_t sh[MP_MAX_DIMS], known = 1;
    int k, rc, infer = -1;
    const int allowzero = (int)mp__rt_attr_int(n, "allowzero", 0);

    if (s->opset < 5) {
        rc = mp__rt_attr_ints(n, "shape", sh, MP_MAX_DIMS, &k, err);
    } else {
        rc = RT_HAS(n, 1) ? mp__rt_const_ints(s, n, 1, sh, MP_MAX_DIMS, &k, err)
                          : mp__err_set(err, MP_EINVAL, "%s: no shape", n->label);
    }
    if (rc < 0) {
        return rc;
    }
    for (int i = 0; i < k; i++) {
        if (sh[i] == 0 && !allowzero) {
            MP_RETURN_IF(i >= x->rank, MP_EINVAL, "%s: shape[%d] = 0 copies a dim '%s' lacks",
                         n->label, i, x->name);
            sh[i] = x->dims[i];
        }
        if (sh[i] == -1) {
            MP_RETURN_IF(infer >= 0, MP_EINVAL, "%s: two -1 in the shape", n->label);
            infer = i;
        } else {
            MP_RETURN_IF(sh[i] < 0, MP_EINVAL, "%s: shape[%d] = %lld", n->label, i,
                         (long long)sh[i]);
            known *= sh[i];
        }
    }
    if (infer >= 0) {
        MP_RETURN_IF(known == 0 || x->n % known != 0, MP_EINVAL,
                     "%s: %lld elements do not fit the shape", n->label, (long long)x->n);
        sh[infer] = x->n / known;
    }
    return view_out(s, n, k, sh, err);
}

static int flatten_prep(rt_sess_t *s, rt_node_t *n, mp_errctx_t *err)
{
    const rt_val_t *x = RT_IN(s, n, 0);
    int64_t sh[2];
    int axis;
    const int64_t a = mp__rt_attr_int(n, "axis", 1);

    /* Flatten's axis lies in [-rank, rank]: rank itself is allowed */
    MP_RETURN_IF(a < -(int64_t)x->rank || a > x->rank, MP_EINVAL, "%s: axis %lld for %d dims",
                 n->label, (long long)a, x->rank);
    axis = (int)(a < 0 ? a + x->rank : a);
    sh[0] = rt_prod(x->dims, 0, axis);
    sh[1] = rt_prod(x->dims, axis, x->rank);
    return view_out(s, n, 2, sh, err);
}

/* Squeeze and Unsqueeze take axes from an attribute (opset < 13) or input 1. */
static int axes_of(rt_sess_t *s, rt_node_t *n, int64_t *axes, int *k, mp_errctx_t *err)
{
    *k = 0;
    if (s->opset >= 13) {
        return RT_HAS(n, 1) ? mp__rt_const_ints(s, n, 1, axes, MP_MAX_DIMS, k, err) : 0;
    }
    const int rc = mp__rt_attr_ints(n, "axes", axes, MP_MAX_DIMS, k, err);
    return rc < 0 ? rc : 0;
}

static int squeeze_prep(rt_sess_t *s, rt_node_t *n, mp_errctx_t *err)
{
    const rt_val_t *x = RT_IN(s, n, 0);
    int64_t axes[MP_MAX_DIMS], sh[MP_MAX_DIMS];
    int k, rc, drop[MP_MAX_DIMS] = {0}, r = 0;

    if ((rc = axes_of(s, n, axes, &k, err)) < 0) {
        return rc;
    }
    for (int i = 0; i < k; i++) {
        int a;
        if ((rc = mp__rt_axis(n, axes[i], x->rank, &a, err)) < 0) {
            return rc;
        }
        MP_RETURN_IF(x->dims[a] != 1, MP_EINVAL, "%s: dim %d of '%s' is %lld, not 1", n->label,
                     a, x->name, (long long)x->dims[a]);
        drop[a] = 1;
    }
    for (int d = 0; d < x->rank; d++) {
        if (!(k == 0 ? x->dims[d] == 1 : drop[d])) {
            sh[r++] = x->dims[d];
        }
    }
    return view_out(s, n, r, sh, err);
}

static int unsqueeze_prep(rt_sess_t *s, rt_node_t *n, mp_errctx_t *err)
{
    const rt_val_t *x = RT_IN(s, n, 0);
    int64_t axes[MP_MAX_DIMS], sh[MP_MAX_DIMS];
    int k, rc, ins[MP_MAX_DIMS] = {0}, src = 0;

    if ((rc = axes_of(s, n, axes, &k, err)) < 0) {
        return rc;
    }
    const int r = x->rank + k;
    MP_RETURN_IF(k == 0 || r > MP_MAX_DIMS, MP_EINVAL, "%s: %d axes for %d dims", n->label, k,
                 x->rank);
    for (int i = 0; i < k; i++) {
        int a;
        if ((rc = mp__rt_axis(n, axes[i], r, &a, err)) < 0) {
            return rc;
        }
        MP_RETURN_IF(ins[a], MP_EINVAL, "%s: axis %d given twice", n->label, a);
        ins[a] = 1;
    }
    for (int d = 0; d < r; d++) {
        sh[d] = ins[d] ? 1 : x->dims[src++];
    }
    return view_out(s, n, r, sh, err);
}

/* ---- Transpose ---------------------------------------------------------------------------- */

typedef struct transpose {
    int rank;
    int64_t odims[MP_MAX_DIMS], istr[MP_MAX_DIMS]; /* input stride of each output dim */
} transpose_t;

static int transpose_prep(rt_sess_t *s, rt_node_t *n, mp_errctx_t *err)
{
    const rt_val_t *x = RT_IN(s, n, 0);
    int64_t perm[MP_MAX_DIMS], str[MP_MAX_DIMS], st = 1;
    int k, rc, seen[MP_MAX_DIMS] = {0};
    transpose_t *t;

    if ((rc = mp__rt_attr_ints(n, "perm", perm, MP_MAX_DIMS, &k, err)) < 0) {
        return rc;
    }
    if (rc == 0) {
        k = x->rank;
        for (int i = 0; i < k; i++) {
            perm[i] = x->rank - 1 - i;
        }
    }
    MP_RETURN_IF(k != x->rank, MP_EINVAL, "%s: perm of %d values for %d dims", n->label, k,
                 x->rank);
    t = calloc(1, sizeof *t);
    MP_RETURN_IF(t == NULL, MP_ENOMEM, "out of memory");
    n->p = t;
    for (int d = x->rank - 1; d >= 0; d--) {
        str[d] = st;
        st *= x->dims[d];
    }
    t->rank = k;
    for (int i = 0; i < k; i++) {
        MP_RETURN_IF(perm[i] < 0 || perm[i] >= k || seen[perm[i]], MP_EINVAL,
                     "%s: perm is not a permutation", n->label);
        seen[perm[i]] = 1;
        t->odims[i] = x->dims[perm[i]];
        t->istr[i] = str[perm[i]];
    }
    return mp__rt_out_shape(s, n, 0, x->dt, k, t->odims, err);
}

static int transpose_run(const rt_exec_t *e, const rt_node_t *n, mp_errctx_t *err)
{
    const transpose_t *t = n->p;
    const rt_val_t *x = RT_IN(e->s, n, 0);
    const size_t es = mp_dtype_size(x->dt);
    const uint8_t *src = RT_PTR(e, n, 0);
    uint8_t *y = RT_OPTR(e, n, 0);
    int64_t idx[MP_MAX_DIMS] = {0}, off = 0;
    const int last = t->rank - 1;

    (void)err;
    if (t->rank == 0 || x->n == 0) {
        memcpy(y, src, x->n ? es : 0);
        return 0;
    }
    const int64_t len = t->odims[last], st = t->istr[last];
    for (int64_t o = 0; o < x->n; o += len) {
        if (es == 4) {
            const float *a = (const float *)src + off;
            float *b = (float *)y + o;
            for (int64_t i = 0; i < len; i++) {
                b[i] = a[i * st];
            }
        } else {
            for (int64_t i = 0; i < len; i++) {
                memcpy(y + (size_t)(o + i) * es, src + (size_t)(off + i * st) * es, es);
            }
        }
        for (int d = last - 1; d >= 0; d--) {
            off += t->istr[d];
            if (++idx[d] < t->odims[d]) {
                break;
            }
            off -= t->istr[d] * t->odims[d];
            idx[d] = 0;
        }
    }
    return 0;
}

/* ---- Concat and Split --------------------------------------------------------------------- */

typedef struct concat {
    int64_t outer;               /* product of dims before the axis */
    size_t inner_bytes;          /* bytes per unit of the axis (dims after it x element) */
} concat_t;

static int concat_prep(rt_sess_t *s, rt_node_t *n, mp_errctx_t *err)
{
    const rt_val_t *x0;
    int64_t od[MP_MAX_DIMS];
    int axis, rc, first = -1;
    concat_t *c;

    for (int i = 0; i < n->n_in && first < 0; i++) {
        first = n->in[i] >= 0 ? i : -1;
    }
    MP_RETURN_IF(first < 0, MP_EINVAL, "%s: no inputs", n->label);
    x0 = RT_IN(s, n, first);
    if ((rc = mp__rt_axis(n, mp__rt_attr_int(n, "axis", s->opset < 4 ? 1 : 0), x0->rank, &axis,
                          err)) < 0) {
        return rc;
    }
    memcpy(od, x0->dims, sizeof od);
    od[axis] = 0;
    for (int i = 0; i < n->n_in; i++) {
        const rt_val_t *x;
        if (n->in[i] < 0) {
            continue;
        }
        x = RT_IN(s, n, i);
        MP_RETURN_IF(x->dt != x0->dt || x->rank != x0->rank, MP_EINVAL,
                     "%s: input '%s' differs in type or rank", n->label, x->name);
        for (int d = 0; d < x->rank; d++) {
            MP_RETURN_IF(d != axis && x->dims[d] != x0->dims[d], MP_EINVAL,
                         "%s: input '%s' has dim %d = %lld, not %lld", n->label, x->name, d,
                         (long long)x->dims[d], (long long)x0->dims[d]);
        }
        od[axis] += x->dims[axis];
    }
    c = calloc(1, sizeof *c);
    MP_RETURN_IF(c == NULL, MP_ENOMEM, "out of memory");
    n->p = c;
    c->outer = rt_prod(x0->dims, 0, axis);
    c->inner_bytes = (size_t)rt_prod(x0->dims, axis + 1, x0->rank) * mp_dtype_size(x0->dt);
    return mp__rt_out_shape(s, n, 0, x0->dt, x0->rank, od, err);
}

static int concat_run(const rt_exec_t *e, const rt_node_t *n, mp_errctx_t *err)
{
    const concat_t *c = n->p;
    const rt_val_t *y = RT_OUT(e->s, n, 0);
    uint8_t *out = RT_OPTR(e, n, 0);
    const size_t row = c->outer ? y->bytes / (size_t)c->outer : 0;
    size_t at = 0;

    (void)err;
    for (int i = 0; i < n->n_in; i++) {
        if (n->in[i] < 0) {
            continue;
        }
        const rt_val_t *x = RT_IN(e->s, n, i);
        const uint8_t *src = RT_PTR(e, n, i);
        const size_t part = c->outer ? x->bytes / (size_t)c->outer : 0;
        for (int64_t o = 0; o < c->outer; o++) {
            memcpy(out + (size_t)o * row + at, src + (size_t)o * part, part);
        }
        at += part;
    }
    return 0;
}

typedef struct split {
    int64_t outer;
    size_t unit;                 /* bytes per index of the axis */
    int64_t len[64];
} split_t;

static int split_prep(rt_sess_t *s, rt_node_t *n, mp_errctx_t *err)
{
    const rt_val_t *x = RT_IN(s, n, 0);
    int64_t parts[64], od[MP_MAX_DIMS], sum = 0;
    int axis, rc, k = 0;
    split_t *p;

    MP_RETURN_IF(n->n_out > 64, MP_EUNSUPPORTED, "%s: more than 64 outputs", n->label);
    if ((rc = mp__rt_axis(n, mp__rt_attr_int(n, "axis", 0), x->rank, &axis, err)) < 0) {
        return rc;
    }
    /* split: input 1 from opset 13 (and in Split-1, as an alternative to the attribute) */
    if ((s->opset >= 13 || s->opset < 2) && RT_HAS(n, 1)) {
        rc = mp__rt_const_ints(s, n, 1, parts, 64, &k, err);
    } else if (s->opset < 13) {
        rc = mp__rt_attr_ints(n, "split", parts, 64, &k, err);
    } else {
        rc = 0;
    }
    if (rc < 0) {
        return rc;
    }
    if (k == 0) {
        const int64_t per = (x->dims[axis] + n->n_out - 1) / n->n_out;
        for (int i = 0; i < n->n_out; i++) {
            parts[i] = x->dims[axis] - sum < per ? x->dims[axis] - sum : per;
            sum += parts[i];
        }
        k = n->n_out;
    } else {
        for (int i = 0; i < k; i++) {
            MP_RETURN_IF(parts[i] < 0, MP_EINVAL, "%s: negative split", n->label);
            sum += parts[i];
        }
    }
    MP_RETURN_IF(k != n->n_out || sum != x->dims[axis], MP_EINVAL,
                 "%s: splits of %lld along a dim of %lld into %d outputs", n->label,
                 (long long)sum, (long long)x->dims[axis], n->n_out);
    p = calloc(1, sizeof *p);
    MP_RETURN_IF(p == NULL, MP_ENOMEM, "out of memory");
    n->p = p;
    p->outer = rt_prod(x->dims, 0, axis);
    p->unit = (size_t)rt_prod(x->dims, axis + 1, x->rank) * mp_dtype_size(x->dt);
    memcpy(od, x->dims, sizeof od);
    for (int i = 0; i < k; i++) {
        p->len[i] = parts[i];
        od[axis] = parts[i];
        if (n->out[i] >= 0 && (rc = mp__rt_out_shape(s, n, i, x->dt, x->rank, od, err)) < 0) {
            return rc;
        }
    }
    return 0;
}

static int split_run(const rt_exec_t *e, const rt_node_t *n, mp_errctx_t *err)
{
    const split_t *p = n->p;
    const uint8_t *x = RT_PTR(e, n, 0);
    const size_t row = (size_t)RT_IN(e->s, n, 0)->bytes / (size_t)(p->outer ? p->outer : 1);
    size_t at = 0;

    (void)err;
    for (int i = 0; i < n->n_out; i++) {
        const size_t part = (size_t)p->len[i] * p->unit;
        if (n->out[i] >= 0) {
            uint8_t *y = RT_OPTR(e, n, i);
            for (int64_t o = 0; o < p->outer; o++) {
                memcpy(y + (size_t)o * part, x + (size_t)o * row + at, part);
            }
        }
        at += part;
    }
    return 0;
}

/* ---- Slice and Pad (strided copies through one index map per dim) ------------------------ */

typedef struct slice {
    int rank;
    int64_t odims[MP_MAX_DIMS], start[MP_MAX_DIMS], step[MP_MAX_DIMS], istr[MP_MAX_DIMS];
} slice_t;

static int slice_prep(rt_sess_t *s, rt_node_t *n, mp_errctx_t *err)
{
    const rt_val_t *x = RT_IN(s, n, 0);
    int64_t st[MP_MAX_DIMS], en[MP_MAX_DIMS], ax[MP_MAX_DIMS], sp[MP_MAX_DIMS], str = 1;
    int ns, ne, na = 0, nsp = 0, rc;
    slice_t *p;

    if (s->opset < 10) {
        if ((rc = mp__rt_attr_ints(n, "starts", st, MP_MAX_DIMS, &ns, err)) < 0 ||
            (rc = mp__rt_attr_ints(n, "ends", en, MP_MAX_DIMS, &ne, err)) < 0 ||
            (rc = mp__rt_attr_ints(n, "axes", ax, MP_MAX_DIMS, &na, err)) < 0) {
            return rc;
        }
    } else {
        MP_RETURN_IF(!RT_HAS(n, 1) || !RT_HAS(n, 2), MP_EINVAL, "%s: no starts or ends",
                     n->label);
        if ((rc = mp__rt_const_ints(s, n, 1, st, MP_MAX_DIMS, &ns, err)) < 0 ||
            (rc = mp__rt_const_ints(s, n, 2, en, MP_MAX_DIMS, &ne, err)) < 0 ||
            (RT_HAS(n, 3) && (rc = mp__rt_const_ints(s, n, 3, ax, MP_MAX_DIMS, &na, err)) < 0) ||
            (RT_HAS(n, 4) && (rc = mp__rt_const_ints(s, n, 4, sp, MP_MAX_DIMS, &nsp, err)) < 0)) {
            return rc;
        }
    }
    MP_RETURN_IF(ns != ne || (na && na != ns) || (nsp && nsp != ns), MP_EINVAL,
                 "%s: starts, ends, axes and steps differ in length", n->label);
    p = calloc(1, sizeof *p);
    MP_RETURN_IF(p == NULL, MP_ENOMEM, "out of memory");
    n->p = p;
    p->rank = x->rank;
    for (int d = x->rank - 1; d >= 0; d--) {
        p->odims[d] = x->dims[d];
        p->start[d] = 0;
        p->step[d] = 1;
        p->istr[d] = str;
        str *= x->dims[d];
    }
    for (int i = 0; i < ns; i++) {
        int a;
        if ((rc = mp__rt_axis(n, na ? ax[i] : i, x->rank, &a, err)) < 0) {
            return rc;
        }
        const int64_t dim = x->dims[a], step = nsp ? sp[i] : 1;
        int64_t b = st[i], e = en[i];
        MP_RETURN_IF(step == 0, MP_EINVAL, "%s: step 0", n->label);
        b = b < 0 ? b + dim : b;
        e = e < 0 ? e + dim : e;
        if (step > 0) {
            b = b < 0 ? 0 : b > dim ? dim : b;
            e = e < 0 ? 0 : e > dim ? dim : e;
            p->odims[a] = e > b ? (e - b + step - 1) / step : 0;
        } else {
            b = b < 0 ? -1 : b > dim - 1 ? dim - 1 : b;
            e = e < -1 ? -1 : e > dim - 1 ? dim - 1 : e;
            p->odims[a] = b > e ? (b - e + (-step) - 1) / (-step) : 0;
        }
        p->start[a] = b;
        p->step[a] = step;
    }
    return mp__rt_out_shape(s, n, 0, x->dt, x->rank, p->odims, err);
}

static int slice_run(const rt_exec_t *e, const rt_node_t *n, mp_errctx_t *err)
{
    const slice_t *p = n->p;
    const rt_val_t *x = RT_IN(e->s, n, 0), *y = RT_OUT(e->s, n, 0);
    const size_t es = mp_dtype_size(x->dt);
    const uint8_t *src = RT_PTR(e, n, 0);
    uint8_t *dst = RT_OPTR(e, n, 0);
    int64_t idx[MP_MAX_DIMS] = {0};

    (void)err;
    for (int64_t o = 0; o < y->n; o++) {
        int64_t off = 0;
        for (int d = 0; d < p->rank; d++) {
            off += (p->start[d] + idx[d] * p->step[d]) * p->istr[d];
        }
        memcpy(dst + (size_t)o * es, src + (size_t)off * es, es);
        rt_next(idx, p->odims, p->rank);
    }
    return 0;
}

typedef struct pad {
    int rank, mode;              /* 0 constant, 1 reflect, 2 edge */
    int64_t odims[MP_MAX_DIMS], pb[MP_MAX_DIMS], istr[MP_MAX_DIMS];
    uint8_t value[8];
} pad_t;

static int pad_prep(rt_sess_t *s, rt_node_t *n, mp_errctx_t *err)
{
    const rt_val_t *x = RT_IN(s, n, 0);
    int64_t pads[2 * MP_MAX_DIMS], ax[MP_MAX_DIMS], str = 1;
    int np, na = 0, rc;
    char mode[16];
    pad_t *p;
    float cv = 0.0f;

    p = calloc(1, sizeof *p);
    MP_RETURN_IF(p == NULL, MP_ENOMEM, "out of memory");
    n->p = p;
    mp__rt_attr_str(n, "mode", mode, sizeof mode, "constant");
    p->mode = strcmp(mode, "constant") == 0 ? 0 : strcmp(mode, "reflect") == 0 ? 1
              : strcmp(mode, "edge") == 0   ? 2
                                            : -1;
    MP_RETURN_IF(p->mode < 0, MP_EUNSUPPORTED, "%s: mode '%s' is not supported", n->label, mode);
    if (s->opset < 11) {
        /* Pad-1 calls them paddings */
        if ((rc = mp__rt_attr_ints(n, s->opset < 2 ? "paddings" : "pads", pads, 2 * MP_MAX_DIMS,
                                   &np, err)) < 0) {
            return rc;
        }
        cv = mp__rt_attr_float(n, "value", 0.0f);
    } else {
        if ((rc = mp__rt_const_ints(s, n, 1, pads, 2 * MP_MAX_DIMS, &np, err)) < 0 ||
            (RT_HAS(n, 3) && (rc = mp__rt_const_ints(s, n, 3, ax, MP_MAX_DIMS, &na, err)) < 0)) {
            return rc;
        }
        if (RT_HAS(n, 2) && RT_IN(s, n, 2)->n > 0) {
            const rt_val_t *v = RT_IN(s, n, 2);
            MP_RETURN_IF(v->cdata == NULL, MP_EUNSUPPORTED,
                         "%s: constant_value must be known before the run", n->label);
            MP_RETURN_IF(v->dt != x->dt, MP_EINVAL,
                         "%s: constant_value is not of the input's type", n->label);
            memcpy(p->value, v->cdata, mp_dtype_size(x->dt));
        }
    }
    if (s->opset < 11) {
        mp__rt_convert(x->dt, p->value, MP_DT_F32, &cv, 1);
    }
    const int k = na ? na : x->rank;
    MP_RETURN_IF(np != 2 * k, MP_EINVAL, "%s: %d pads for %d axes", n->label, np, k);
    p->rank = x->rank;
    for (int d = x->rank - 1; d >= 0; d--) {
        p->istr[d] = str;
        str *= x->dims[d];
        p->odims[d] = x->dims[d];
    }
    for (int i = 0; i < k; i++) {
        int a;
        if ((rc = mp__rt_axis(n, na ? ax[i] : i, x->rank, &a, err)) < 0) {
            return rc;
        }
        p->pb[a] = pads[i];
        p->odims[a] = x->dims[a] + pads[i] + pads[k + i];
        MP_RETURN_IF(p->odims[a] < 0, MP_EINVAL, "%s: pads leave dim %d negative", n->label, a);
        MP_RETURN_IF(p->mode != 0 && (pads[i] < 0 || pads[k + i] < 0), MP_EUNSUPPORTED,
                     "%s: negative pads in mode %s", n->label, mode);
        MP_RETURN_IF(p->mode == 1 && (pads[i] >= x->dims[a] || pads[k + i] >= x->dims[a]) &&
                         (pads[i] || pads[k + i]),
                     MP_EINVAL, "%s: reflect pads must be smaller than the dim", n->label);
        MP_RETURN_IF(p->mode == 2 && x->dims[a] == 0 && (pads[i] || pads[k + i]), MP_EINVAL,
                     "%s: edge padding of an empty dim", n->label);
    }
    return mp__rt_out_shape(s, n, 0, x->dt, x->rank, p->odims, err);
}

static int pad_run(const rt_exec_t *e, const rt_node_t *n, mp_errctx_t *err)
{
    const pad_t *p = n->p;
    const rt_val_t *x = RT_IN(e->s, n, 0), *y = RT_OUT(e->s, n, 0);
    const size_t es = mp_dtype_size(x->dt);
    const uint8_t *src = RT_PTR(e, n, 0);
    uint8_t *dst = RT_OPTR(e, n, 0);
    int64_t idx[MP_MAX_DIMS] = {0};

    (void)err;
    for (int64_t o = 0; o < y->n; o++) {
        int64_t off = 0;
        int inside = 1;
        for (int d = 0; d < p->rank; d++) {
            int64_t i = idx[d] - p->pb[d];
            const int64_t D = x->dims[d];
            if (i < 0 || i >= D) {
                if (p->mode == 0) {
                    inside = 0;
                    break;
                }
                if (p->mode == 2) {
                    i = i < 0 ? 0 : D - 1;
                } else {
                    /* reflect without repeating the edge: period 2(D-1) */
                    const int64_t per = 2 * (D - 1);
                    i = per ? ((i % per) + per) % per : 0;
                    i = i >= D ? per - i : i;
                }
            }
            off += i * p->istr[d];
        }
        memcpy(dst + (size_t)o * es, inside ? src + (size_t)off * es : p->value, es);
        rt_next(idx, p->odims, p->rank);
    }
    return 0;
}

/* ---- Gather ------------------------------------------------------------------------------- */

typedef struct gather {
    int64_t outer, dim;
    size_t unit;                 /* bytes per index along the axis */
} gather_t;

static int gather_prep(rt_sess_t *s, rt_node_t *n, mp_errctx_t *err)
{
    const rt_val_t *x = RT_IN(s, n, 0), *ix = RT_IN(s, n, 1);
    int64_t od[MP_MAX_DIMS];
    int axis, rc, r = 0;
    gather_t *g;

    MP_RETURN_IF(ix->dt != MP_DT_I64 && ix->dt != MP_DT_I32, MP_EUNSUPPORTED,
                 "%s: indices of type %s", n->label, mp_dtype_name(ix->dt));
    if ((rc = mp__rt_axis(n, mp__rt_attr_int(n, "axis", 0), x->rank, &axis, err)) < 0) {
        return rc;
    }
    MP_RETURN_IF(x->rank + ix->rank - 1 > MP_MAX_DIMS, MP_EUNSUPPORTED, "%s: too many dims",
                 n->label);
    for (int d = 0; d < axis; d++) {
        od[r++] = x->dims[d];
    }
    for (int d = 0; d < ix->rank; d++) {
        od[r++] = ix->dims[d];
    }
    for (int d = axis + 1; d < x->rank; d++) {
        od[r++] = x->dims[d];
    }
    g = calloc(1, sizeof *g);
    MP_RETURN_IF(g == NULL, MP_ENOMEM, "out of memory");
    n->p = g;
    g->outer = rt_prod(x->dims, 0, axis);
    g->dim = x->dims[axis];
    g->unit = (size_t)rt_prod(x->dims, axis + 1, x->rank) * mp_dtype_size(x->dt);
    return mp__rt_out_shape(s, n, 0, x->dt, r, od, err);
}

static int gather_run(const rt_exec_t *e, const rt_node_t *n, mp_errctx_t *err)
{
    const gather_t *g = n->p;
    const rt_val_t *ix = RT_IN(e->s, n, 1);
    const uint8_t *x = RT_PTR(e, n, 0);
    const void *ip = RT_PTR(e, n, 1);
    uint8_t *y = RT_OPTR(e, n, 0);

    for (int64_t o = 0; o < g->outer; o++) {
        for (int64_t k = 0; k < ix->n; k++) {
            int64_t i = mp__rt_get_i64(ix->dt, ip, k);
            i = i < 0 ? i + g->dim : i;
            MP_RETURN_IF(i < 0 || i >= g->dim, MP_EINVAL,
                         "%s: index %lld is outside [-%lld, %lld)", n->label,
                         (long long)mp__rt_get_i64(ix->dt, ip, k), (long long)g->dim,
                         (long long)g->dim);
            memcpy(y + (size_t)(o * ix->n + k) * g->unit,
                   x + (size_t)(o * g->dim + i) * g->unit, g->unit);
        }
    }
    return 0;
}

/* ---- Shape, Constant, ConstantOfShape (always folded) ------------------------------------- */

typedef struct shape_op {
    int64_t start, end;
} shape_op_t;

static int shape_prep(rt_sess_t *s, rt_node_t *n, mp_errctx_t *err)
{
    const rt_val_t *x = RT_IN(s, n, 0);
    int64_t st = mp__rt_attr_int(n, "start", 0), en = mp__rt_attr_int(n, "end", x->rank), len;
    shape_op_t *p;

    st = st < 0 ? st + x->rank : st;
    en = en < 0 ? en + x->rank : en;
    st = st < 0 ? 0 : st > x->rank ? x->rank : st;
    en = en < 0 ? 0 : en > x->rank ? x->rank : en;
    len = en > st ? en - st : 0;
    p = calloc(1, sizeof *p);
    MP_RETURN_IF(p == NULL, MP_ENOMEM, "out of memory");
    n->p = p;
    p->start = st;
    p->end = st + len;
    return mp__rt_out_shape(s, n, 0, MP_DT_I64, 1, &len, err);
}

static int shape_run(const rt_exec_t *e, const rt_node_t *n, mp_errctx_t *err)
{
    const shape_op_t *p = n->p;
    const rt_val_t *x = RT_IN(e->s, n, 0);

    (void)err;
    memcpy(RT_OPTR(e, n, 0), x->dims + p->start, (size_t)(p->end - p->start) * sizeof(int64_t));
    return 0;
}

typedef struct constant {
    rt_tensor_t t;
} constant_t;

static void constant_free(void *p)
{
    mp__rt_tensor_cleanup(&((constant_t *)p)->t);
    free(p);
}

/* The value of a Constant node (its tensor was not a model weight: a scalar attribute, or a
 * tensor type the weights leave out) or of ConstantOfShape's value attribute. */
static int attr_tensor(rt_sess_t *s, rt_node_t *n, const char *name, rt_tensor_t *t, int *found,
                       mp_errctx_t *err)
{
    mp__pb_msg_t *a = mp__onnx_node_attr(n->pb, name), *tp;
    mp__pb_field_t *f = a ? mp__pb_find(a, ONNX_ATTR_T) : NULL;
    int rc;

    *found = f != NULL;
    if (f == NULL) {
        return 0;
    }
    if ((rc = mp__rt_msg(s, f, a->depth, "tensor attribute", &tp, err)) < 0) {
        return rc;
    }
    if ((rc = mp__rt_tensor_decode(tp, t, err)) < 0) {
        return mp__err_set(err, rc, "%s: attribute %s: %s", n->label, name,
                           rc == MP_EUNSUPPORTED ? "type not supported" : "malformed tensor");
    }
    return 0;
}

static int constant_prep(rt_sess_t *s, rt_node_t *n, mp_errctx_t *err)
{
    constant_t *c = calloc(1, sizeof *c);
    rt_tensor_t *t;
    int64_t iv[1];
    float *fv = NULL;
    int64_t nf;
    int found, rc, k;

    MP_RETURN_IF(c == NULL, MP_ENOMEM, "out of memory");
    n->p = c;
    t = &c->t;
    if ((rc = attr_tensor(s, n, "value", t, &found, err)) < 0) {
        return rc;
    }
    if (!found && mp__rt_attr(n, "value_float") != NULL) {
        t->dt = MP_DT_F32;
        t->n = 1;
        t->data = malloc(4);
        MP_RETURN_IF(t->data == NULL, MP_ENOMEM, "out of memory");
        *(float *)t->data = mp__rt_attr_float(n, "value_float", 0.0f);
        found = 1;
    } else if (!found && mp__rt_attr(n, "value_int") != NULL) {
        t->dt = MP_DT_I64;
        t->n = 1;
        t->data = malloc(8);
        MP_RETURN_IF(t->data == NULL, MP_ENOMEM, "out of memory");
        iv[0] = mp__rt_attr_int(n, "value_int", 0);
        memcpy(t->data, iv, 8);
        found = 1;
    } else if (!found && mp__rt_attr(n, "value_ints") != NULL) {
        int64_t vals[64];
        if ((rc = mp__rt_attr_ints(n, "value_ints", vals, 64, &k, err)) < 0) {
            return rc;
        }
        t->dt = MP_DT_I64;
        t->rank = 1;
        t->dims[0] = t->n = k;
        t->data = malloc((size_t)k * 8 + 1);
        MP_RETURN_IF(t->data == NULL, MP_ENOMEM, "out of memory");
        memcpy(t->data, vals, (size_t)k * 8);
        found = 1;
    } else if (!found && (rc = mp__rt_attr_floats(n, "value_floats", &fv, &nf, err)) != 0) {
        if (rc < 0) {
            return rc;
        }
        t->dt = MP_DT_F32;
        t->rank = 1;
        t->dims[0] = t->n = nf;
        t->data = fv;
        found = 1;
    }
    MP_RETURN_IF(!found, MP_EUNSUPPORTED, "%s: only value, value_float(s) and value_int(s) are "
                 "supported", n->label);
    return mp__rt_out_shape(s, n, 0, t->dt, t->rank, t->dims, err);
}

static int constant_run(const rt_exec_t *e, const rt_node_t *n, mp_errctx_t *err)
{
    const constant_t *c = n->p;

    (void)err;
    memcpy(RT_OPTR(e, n, 0), c->t.data, RT_OUT(e->s, n, 0)->bytes);
    return 0;
}

static int cos_prep(rt_sess_t *s, rt_node_t *n, mp_errctx_t *err)
{
    int64_t dims[MP_MAX_DIMS];
    constant_t *c = calloc(1, sizeof *c);
    int found, rc, k;

    MP_RETURN_IF(c == NULL, MP_ENOMEM, "out of memory");
    n->p = c;
    if ((rc = mp__rt_const_ints(s, n, 0, dims, MP_MAX_DIMS, &k, err)) < 0 ||
        (rc = attr_tensor(s, n, "value", &c->t, &found, err)) < 0) {
        return rc;
    }
    if (!found) {
        c->t.dt = MP_DT_F32;
        c->t.n = 1;
        c->t.data = calloc(1, 4);
        MP_RETURN_IF(c->t.data == NULL, MP_ENOMEM, "out of memory");
    }
    MP_RETURN_IF(c->t.n != 1, MP_EINVAL, "%s: value must hold one element", n->label);
    return mp__rt_out_shape(s, n, 0, c->t.dt, k, dims, err);
}

static int cos_run(const rt_exec_t *e, const rt_node_t *n, mp_errctx_t *err)
{
    const constant_t *c = n->p;
    const rt_val_t *y = RT_OUT(e->s, n, 0);
    const size_t es = mp_dtype_size(y->dt);
    uint8_t *out = RT_OPTR(e, n, 0);

    (void)err;
    for (int64_t i = 0; i < y->n; i++) {
        memcpy(out + (size_t)i * es, c->t.data, es);
    }
    return 0;
}

const rt_op_t mp__rt_ops_shape[] = {
    {"Concat", concat_prep, concat_run, NULL, 0},
    {"Constant", constant_prep, constant_run, constant_free, 0},
    {"ConstantOfShape", cos_prep, cos_run, constant_free, 0},
    {"Flatten", flatten_prep, NULL, NULL, 0},
    {"Gather", gather_prep, gather_run, NULL, 0},
    {"Identity", identity_prep, NULL, NULL, 0},
    {"Pad", pad_prep, pad_run, NULL, 0},
    {"Reshape", reshape_prep, NULL, NULL, 0},
    {"Shape", shape_prep, shape_run, NULL, 1},
    {"Slice", slice_prep, slice_run, NULL, 0},
    {"Split", split_prep, split_run, NULL, 0},
    {"Squeeze", squeeze_prep, NULL, NULL, 0},
    {"Transpose", transpose_prep, transpose_run, NULL, 0},
    {"Unsqueeze", unsqueeze_prep, NULL, NULL, 0},
    {NULL, NULL, NULL, NULL, 0},
};

/* ---- the op table ------------------------------------------------------------------------- */

const char *const mp__rt_claimed[] = {
    "Add",          "AveragePool", "BatchNormalization", "Cast",
    "Clip",         "Concat",      "Constant",           "ConstantOfShape",
    "Conv",         "ConvTranspose", "DequantizeLinear", "Div",
    "Equal",        "Flatten",     "Gather",             "Gemm",
    "GlobalAveragePool", "HardSigmoid", "HardSwish",     "Identity",     "If",
    "LeakyRelu",    "LogSoftmax",  "MatMul",             "MaxPool",
    "Mul",          "PRelu",       "Pad",                "Pow",
    "QuantizeLinear", "ReduceMean", "Relu",              "Reshape",
    "Resize",       "Shape",       "Sigmoid",            "Slice",
    "Softmax",      "Split",       "Sqrt",               "Squeeze",
    "Sub",          "Tanh",        "Transpose",          "Unsqueeze",
    NULL,
};

const rt_op_t *mp__rt_op_find(const char *op_type)
{
    const rt_op_t *tables[] = {mp__rt_ops_elem, mp__rt_ops_nn, mp__rt_ops_shape};

    for (size_t t = 0; t < sizeof tables / sizeof *tables; t++) {
        for (const rt_op_t *o = tables[t]; o->name != NULL; o++) {
            if (strcmp(o->name, op_type) == 0) {
                return o;
            }
        }
    }
    return NULL;
}
