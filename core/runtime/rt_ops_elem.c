/* rt_ops_elem.c — element-wise operators: activations, arithmetic with broadcasting, Softmax and
 * LogSoftmax, Cast, QuantizeLinear and DequantizeLinear.
 *
 * Broadcasting follows numpy (ONNX's multidirectional rule): shapes are aligned on the right,
 * a dim of 1 stretches. Before opset 7 it is the older rule (legacy_broadcast: only with
 * broadcast=1, only the second input, placed at `axis`), and PRelu's slope is per channel;
 * both are turned into a view of the second input that the numpy rule runs as it is. prep
 * reduces the pair of inputs to a few merged dims with a stride of 0 or 1 element per input in
 * the innermost one, so the run is an odometer over the outer dims and a tight loop over the
 * inner one, specialised for (1,1), (1,0) and (0,1) strides so the compiler vectorises it.
 * Arithmetic runs on F32, and on INT64/INT32 for the shape arithmetic exported graphs do (integer
 * Div truncates toward zero; division by zero gives 0 rather than a trap). Clip runs on every
 * integer type too (from opset 12, as ONNX allows); the other activations and the
 * normalisations are F32 only.
 */
#include "rt_int.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- unary -------------------------------------------------------------------------------- */

typedef enum {
    U_RELU,
    U_LEAKY,
    U_SIGMOID,
    U_HSIGMOID,
    U_HSWISH,
    U_TANH,
    U_CLIP,
    U_SQRT,
} unary_kind_t;

typedef struct unary {
    unary_kind_t kind;
    float a, b;
    int a_run, b_run;            /* Clip: min / max read at run time (not constant) */
    mp_dtype_t int_dt;           /* Clip on an integer type (else MP_DT_F32) */
} unary_t;

/* Clip's bound i (1 min, 2 max): a constant now, or a scalar read at each run. */
static int clip_bound(rt_sess_t *s, rt_node_t *n, int i, float def, float *v, int *at_run,
                      mp_errctx_t *err)
{
    if (RT_HAS(n, i) && RT_IN(s, n, i)->cdata == NULL) {
        MP_RETURN_IF(RT_IN(s, n, i)->dt != MP_DT_F32 || RT_IN(s, n, i)->n != 1, MP_EUNSUPPORTED,
                     "%s: bound %d must be one float", n->label, i);
        *at_run = 1;
        return 0;
    }
    return mp__rt_const_float(s, n, i, def, v, err);
}

static int unary_prep_kind(rt_sess_t *s, rt_node_t *n, mp_errctx_t *err, unary_kind_t kind)
{
    const rt_val_t *x = RT_IN(s, n, 0);
    unary_t *u;
    int rc;

    if ((rc = mp__rt_need_type(s, n, 0, MP_DT_F32, err)) < 0) {
        return rc;
    }
    u = calloc(1, sizeof *u);
    MP_RETURN_IF(u == NULL, MP_ENOMEM, "out of memory");
    n->p = u;
    u->kind = kind;
    switch (kind) {
    case U_LEAKY:
        u->a = mp__rt_attr_float(n, "alpha", 0.01f);
        break;
    case U_HSIGMOID:
        u->a = mp__rt_attr_float(n, "alpha", 0.2f);
        u->b = mp__rt_attr_float(n, "beta", 0.5f);
        break;
    case U_CLIP:
        if (s->opset < 11) {
            u->a = mp__rt_attr_float(n, "min", -FLT_MAX);
            u->b = mp__rt_attr_float(n, "max", FLT_MAX);
        } else if ((rc = clip_bound(s, n, 1, -INFINITY, &u->a, &u->a_run, err)) < 0 ||
                   (rc = clip_bound(s, n, 2, INFINITY, &u->b, &u->b_run, err)) < 0) {
            return rc;
        }
        break;
    default:
        break;
    }
    return mp__rt_out_shape(s, n, 0, MP_DT_F32, x->rank, x->dims, err);
}

#define UNARY_PREP(fn, kind)                                                                       \
    static int fn(rt_sess_t *s, rt_node_t *n, mp_errctx_t *err)                                    \
    {                                                                                              \
        return unary_prep_kind(s, n, err, kind);                                                   \
    }
UNARY_PREP(relu_prep, U_RELU)
UNARY_PREP(leaky_prep, U_LEAKY)
UNARY_PREP(sigmoid_prep, U_SIGMOID)
UNARY_PREP(hsigmoid_prep, U_HSIGMOID)
UNARY_PREP(hswish_prep, U_HSWISH)
UNARY_PREP(tanh_prep, U_TANH)
UNARY_PREP(sqrt_prep, U_SQRT)

static int is_int_type(mp_dtype_t dt)
{
    return dt >= MP_DT_I8 && dt <= MP_DT_U64;
}

/* Clip from opset 12 runs on the integer types too: min and max (optional scalars of the
 * input's type, constant or read at each run) clip in that type. Before, F32 only. */
static int clip_prep(rt_sess_t *s, rt_node_t *n, mp_errctx_t *err)
{
    const rt_val_t *x = RT_IN(s, n, 0);
    unary_t *u;

    if (s->opset < 12 || !is_int_type(x->dt)) {
        return unary_prep_kind(s, n, err, U_CLIP);
    }
    for (int i = 1; i <= 2; i++) {
        MP_RETURN_IF(RT_HAS(n, i) && (RT_IN(s, n, i)->dt != x->dt || RT_IN(s, n, i)->n != 1),
                     MP_EINVAL, "%s: bound %d ('%s') must be one %s value, as the input", n->label,
                     i, RT_IN(s, n, i)->name, mp_dtype_name(x->dt));
    }
    u = calloc(1, sizeof *u);
    MP_RETURN_IF(u == NULL, MP_ENOMEM, "out of memory");
    n->p = u;
    u->kind = U_CLIP;
    u->int_dt = x->dt;
    return mp__rt_out_shape(s, n, 0, x->dt, x->rank, x->dims, err);
}

/* y = min(max(x, lo), hi) in T (so hi wins when lo > hi, as numpy.clip); an absent bound is
 * the type's limit. */
#define CLIP_INT(T, LO, HI)                                                                        \
    do {                                                                                           \
        const T *xs = RT_PTR(e, n, 0);                                                             \
        T *ys = RT_OPTR(e, n, 0);                                                                  \
        const T lo = RT_HAS(n, 1) ? *(const T *)RT_PTR(e, n, 1) : (LO);                            \
        const T hi = RT_HAS(n, 2) ? *(const T *)RT_PTR(e, n, 2) : (HI);                            \
        for (int64_t i = 0; i < len; i++) {                                                        \
            const T v = xs[i] < lo ? lo : xs[i];                                                   \
            ys[i] = v > hi ? hi : v;                                                               \
        }                                                                                          \
    } while (0)

static void clip_int_run(const rt_exec_t *e, const rt_node_t *n, mp_dtype_t dt, int64_t len)
{
    switch (dt) {
    case MP_DT_I8:
        CLIP_INT(int8_t, INT8_MIN, INT8_MAX);
        break;
    case MP_DT_U8:
        CLIP_INT(uint8_t, 0, UINT8_MAX);
        break;
    case MP_DT_I16:
        CLIP_INT(int16_t, INT16_MIN, INT16_MAX);
        break;
    case MP_DT_U16:
        CLIP_INT(uint16_t, 0, UINT16_MAX);
        break;
    case MP_DT_I32:
        CLIP_INT(int32_t, INT32_MIN, INT32_MAX);
        break;
    case MP_DT_U32:
        CLIP_INT(uint32_t, 0, UINT32_MAX);
        break;
    case MP_DT_I64:
        CLIP_INT(int64_t, INT64_MIN, INT64_MAX);
        break;
    default:
        CLIP_INT(uint64_t, 0, UINT64_MAX);
        break;
    }
}

void mp__rt_relu(float *y, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        y[i] = x[i] > 0.0f ? x[i] : 0.0f;
    }
}

static int unary_run(const rt_exec_t *e, const rt_node_t *n, mp_errctx_t *err)
{
    const unary_t *u = n->p;
    const float *x = RT_PTR(e, n, 0);
    float *y = RT_OPTR(e, n, 0);
    const int64_t len = RT_IN(e->s, n, 0)->n;
    const float a = u->a_run ? *(const float *)RT_PTR(e, n, 1) : u->a;
    const float b = u->b_run ? *(const float *)RT_PTR(e, n, 2) : u->b;

    (void)err;
    if (u->int_dt != MP_DT_F32) {
        clip_int_run(e, n, u->int_dt, len);
        return 0;
    }
    switch (u->kind) {
    case U_RELU:
        mp__rt_relu(y, x, len);
        break;
    case U_LEAKY:
        for (int64_t i = 0; i < len; i++) {
            y[i] = x[i] >= 0.0f ? x[i] : a * x[i];
        }
        break;
    case U_SIGMOID:
        for (int64_t i = 0; i < len; i++) {
            /* exp of a non-positive number never overflows */
            const float t = expf(-fabsf(x[i]));
            y[i] = x[i] >= 0.0f ? 1.0f / (1.0f + t) : t / (1.0f + t);
        }
        break;
    case U_HSIGMOID:
        for (int64_t i = 0; i < len; i++) {
            const float v = a * x[i] + b;
            y[i] = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
        }
        break;
    case U_HSWISH:
        for (int64_t i = 0; i < len; i++) {
            const float v = x[i] / 6.0f + 0.5f;
            y[i] = x[i] * (v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v);
        }
        break;
    case U_TANH:
        for (int64_t i = 0; i < len; i++) {
            y[i] = tanhf(x[i]);
        }
        break;
    case U_CLIP:
        /* min(max(x, a), b): b when a > b, as numpy.clip */
        for (int64_t i = 0; i < len; i++) {
            const float v = x[i] < a ? a : x[i];
            y[i] = v > b ? b : v;
        }
        break;
    case U_SQRT:
        for (int64_t i = 0; i < len; i++) {
            y[i] = sqrtf(x[i]);
        }
        break;
    }
    return 0;
}

/* ---- binary with broadcasting ------------------------------------------------------------- */

typedef enum { B_ADD, B_SUB, B_MUL, B_DIV, B_POW, B_PRELU, B_EQUAL } binary_kind_t;

typedef struct binary {
    binary_kind_t kind;
    int rank;                    /* merged dims */
    int64_t dims[MP_MAX_DIMS], sa[MP_MAX_DIMS], sb[MP_MAX_DIMS];
} binary_t;

/* Broadcast a and b to out dims (od, *orank) and merge dims into bin (dims, element strides). */
static int broadcast(const rt_node_t *n, const rt_val_t *a, const rt_val_t *b, int uni,
                     binary_t *bin, int64_t *od, int *orank, mp_errctx_t *err)
{
    const int r = a->rank > b->rank ? a->rank : b->rank;
    int64_t ad[MP_MAX_DIMS], bd[MP_MAX_DIMS], sa = 1, sb = 1;
    int64_t fa[MP_MAX_DIMS], fb[MP_MAX_DIMS];

    MP_RETURN_IF(uni && b->rank > a->rank, MP_EINVAL, "%s: '%s' does not broadcast to '%s'",
                 n->label, b->name, a->name);
    for (int i = 0; i < r; i++) {
        ad[i] = i - (r - a->rank) >= 0 ? a->dims[i - (r - a->rank)] : 1;
        bd[i] = i - (r - b->rank) >= 0 ? b->dims[i - (r - b->rank)] : 1;
        MP_RETURN_IF(ad[i] != bd[i] && ad[i] != 1 && bd[i] != 1, MP_EINVAL,
                     "%s: shapes of '%s' and '%s' do not broadcast (dim %d: %lld vs %lld)",
                     n->label, a->name, b->name, i, (long long)ad[i], (long long)bd[i]);
        MP_RETURN_IF(uni && ad[i] != bd[i] && bd[i] != 1, MP_EINVAL,
                     "%s: '%s' does not broadcast to '%s'", n->label, b->name, a->name);
        od[i] = ad[i] == 1 ? bd[i] : ad[i];
    }
    *orank = r;
    /* element strides in the full shape, 0 where broadcast */
    for (int i = r - 1; i >= 0; i--) {
        fa[i] = ad[i] == 1 && od[i] != 1 ? 0 : sa;
        fb[i] = bd[i] == 1 && od[i] != 1 ? 0 : sb;
        sa *= ad[i];
        sb *= bd[i];
    }
    /* merge neighbours that step alike: drop size-1 dims, join i into i+1 when both inputs'
     * strides continue contiguously */
    bin->rank = 0;
    for (int i = 0; i < r; i++) {
        if (od[i] == 1) {
            continue;
        }
        const int k = bin->rank;
        if (k > 0 && bin->sa[k - 1] == fa[i] * od[i] && bin->sb[k - 1] == fb[i] * od[i]) {
            bin->dims[k - 1] *= od[i];
            bin->sa[k - 1] = fa[i];
            bin->sb[k - 1] = fb[i];
            continue;
        }
        bin->dims[k] = od[i];
        bin->sa[k] = fa[i];
        bin->sb[k] = fb[i];
        bin->rank++;
    }
    if (bin->rank == 0) {
        bin->rank = 1;
        bin->dims[0] = 1;
        bin->sa[0] = bin->sb[0] = 0;
    }
    return 0;
}

/* Before opset 7 (Add, Sub, Mul, Div, Pow, Equal: versions 1 and 6) inputs of two shapes
 * combine only with broadcast=1, and then only B stretches to A's shape: B's dims lie on A's
 * from `axis` on (by default on A's last ones), each equal to A's or 1, or B holds one value.
 * Without broadcast=1 the shapes must be equal. bv is B seen with A's rank (1 outside B's run
 * of dims), which the unidirectional numpy rule then runs as it is. */
static int legacy_broadcast(const rt_sess_t *s, const rt_node_t *n, const rt_val_t *a,
                            const rt_val_t *b, rt_val_t *bv, mp_errctx_t *err)
{
    int64_t axis = mp__rt_attr_int(n, "axis", a->rank - b->rank);
    int same = a->rank == b->rank;

    *bv = *b;
    for (int i = 0; same && i < a->rank; i++) {
        same = a->dims[i] == b->dims[i];
    }
    if (mp__rt_attr_int(n, "broadcast", 0) == 0) {
        MP_RETURN_IF(!same, MP_EINVAL,
                     "%s: at opset %lld, inputs '%s' and '%s' of different shapes need "
                     "broadcast=1",
                     n->label, (long long)s->opset, a->name, b->name);
        return 0;
    }
    MP_RETURN_IF(b->rank > a->rank, MP_EINVAL,
                 "%s: with broadcast=1, '%s' (%d dims) has more dims than '%s' (%d)", n->label,
                 b->name, b->rank, a->name, a->rank);
    if (b->n == 1) {
        bv->rank = 0;
        return 0;
    }
    axis = axis < 0 ? axis + a->rank : axis;
    MP_RETURN_IF(axis < 0 || axis + b->rank > a->rank, MP_EINVAL,
                 "%s: axis %lld does not place the %d dims of '%s' within the %d of '%s'", n->label,
                 (long long)mp__rt_attr_int(n, "axis", 0), b->rank, b->name, a->rank, a->name);
    bv->rank = a->rank;
    for (int i = 0; i < a->rank; i++) {
        bv->dims[i] = i >= axis && i < axis + b->rank ? b->dims[i - axis] : 1;
        MP_RETURN_IF(bv->dims[i] != 1 && bv->dims[i] != a->dims[i], MP_EINVAL,
                     "%s: dim %d of '%s' (%lld) does not match dim %d of '%s' (%lld) at axis "
                     "%lld",
                     n->label, (int)(i - axis), b->name, (long long)bv->dims[i], i, a->name,
                     (long long)a->dims[i], (long long)axis);
    }
    return 0;
}

/* PRelu before opset 7 (versions 1 and 6): a slope of one value is shared, one of C values (a
 * vector as long as X's dim 1) is per channel; any other slope broadcasts as from opset 7. */
static void legacy_slope(const rt_val_t *x, const rt_val_t *slope, rt_val_t *sv)
{
    *sv = *slope;
    if (slope->rank == 1 && x->rank >= 2 && slope->dims[0] == x->dims[1] && slope->n > 1) {
        sv->rank = x->rank - 1;
        for (int i = 1; i < sv->rank; i++) {
            sv->dims[i] = 1;
        }
    }
}

static int binary_prep_kind(rt_sess_t *s, rt_node_t *n, mp_errctx_t *err, binary_kind_t kind)
{
    const rt_val_t *a, *b;
    rt_val_t bv;
    int64_t od[MP_MAX_DIMS];
    int orank = 0, rc;
    binary_t *bin;

    MP_RETURN_IF(!RT_HAS(n, 0) || !RT_HAS(n, 1), MP_EINVAL, "%s: needs two inputs", n->label);
    a = RT_IN(s, n, 0);
    b = RT_IN(s, n, 1);
    MP_RETURN_IF(a->dt != b->dt && kind != B_POW, MP_EINVAL, "%s: inputs of types %s and %s",
                 n->label, mp_dtype_name(a->dt), mp_dtype_name(b->dt));
    MP_RETURN_IF(a->dt == MP_DT_BOOL || a->dt == MP_DT_F16 || a->dt == MP_DT_BF16 ||
                     b->dt == MP_DT_BOOL || b->dt == MP_DT_F16 || b->dt == MP_DT_BF16 ||
                     (a->dt != MP_DT_F32 && kind == B_PRELU),
                 MP_EUNSUPPORTED, "%s: inputs of type %s are not supported", n->label,
                 mp_dtype_name(a->dt));
    bin = calloc(1, sizeof *bin);
    MP_RETURN_IF(bin == NULL, MP_ENOMEM, "out of memory");
    n->p = bin;
    bin->kind = kind;
    if (s->opset < 7 && kind == B_PRELU) {
        legacy_slope(a, b, &bv);
        b = &bv;
    } else if (s->opset < 7) {
        if ((rc = legacy_broadcast(s, n, a, b, &bv, err)) < 0) {
            return rc;
        }
        b = &bv;
    }
    if ((rc = broadcast(n, a, b, kind == B_PRELU || s->opset < 7, bin, od, &orank, err)) < 0) {
        return rc;
    }
    return mp__rt_out_shape(s, n, 0, kind == B_EQUAL ? MP_DT_BOOL : a->dt, orank, od, err);
}

#define BINARY_PREP(fn, kind)                                                                      \
    static int fn(rt_sess_t *s, rt_node_t *n, mp_errctx_t *err)                                    \
    {                                                                                              \
        return binary_prep_kind(s, n, err, kind);                                                  \
    }
BINARY_PREP(add_prep, B_ADD)
BINARY_PREP(sub_prep, B_SUB)
BINARY_PREP(mul_prep, B_MUL)
BINARY_PREP(div_prep, B_DIV)
BINARY_PREP(pow_prep, B_POW)
BINARY_PREP(prelu_prep, B_PRELU)
BINARY_PREP(equal_prep, B_EQUAL)

/* The inner loop for one op and element type, with strides (1,1), (1,0), (0,1) or general. */
#define INNER(T, OUT_T, EXPR)                                                                      \
    do {                                                                                           \
        const T *A = (const T *)a_, *B = (const T *)b_;                                            \
        OUT_T *Y = (OUT_T *)y_;                                                                    \
        if (sa == 1 && sb == 1) {                                                                  \
            for (int64_t i = 0; i < len; i++) {                                                    \
                const T x = A[i], z = B[i];                                                        \
                Y[i] = (OUT_T)(EXPR);                                                              \
            }                                                                                      \
        } else if (sa == 1 && sb == 0) {                                                           \
            const T z = B[0];                                                                      \
            for (int64_t i = 0; i < len; i++) {                                                    \
                const T x = A[i];                                                                  \
                Y[i] = (OUT_T)(EXPR);                                                              \
            }                                                                                      \
        } else if (sa == 0 && sb == 1) {                                                           \
            const T x = A[0];                                                                      \
            for (int64_t i = 0; i < len; i++) {                                                    \
                const T z = B[i];                                                                  \
                Y[i] = (OUT_T)(EXPR);                                                              \
            }                                                                                      \
        } else {                                                                                   \
            for (int64_t i = 0; i < len; i++) {                                                    \
                const T x = A[i * sa], z = B[i * sb];                                              \
                Y[i] = (OUT_T)(EXPR);                                                              \
            }                                                                                      \
        }                                                                                          \
    } while (0)

static void inner_f32(binary_kind_t k, const void *a_, int64_t sa, const void *b_, int64_t sb,
                      void *y_, int64_t len)
{
    switch (k) {
    case B_ADD:
        INNER(float, float, x + z);
        break;
    case B_SUB:
        INNER(float, float, x - z);
        break;
    case B_MUL:
        INNER(float, float, x *z);
        break;
    case B_DIV:
        INNER(float, float, x / z);
        break;
    case B_POW:
        INNER(float, float, powf(x, z));
        break;
    case B_PRELU:
        INNER(float, float, x < 0.0f ? z * x : x);
        break;
    case B_EQUAL:
        INNER(float, uint8_t, x == z);
        break;
    }
}

/* Integer ops wrap like two's complement (computed in uint64_t, which never overflows in C)
 * and never trap: x / 0 is 0, as is INT_MIN / -1 (whose true value does not fit). MIN is the
 * type's smallest value (0 for unsigned types, where z == (T)-1 is simply the largest). */
#define INNER_INT(T, MIN)                                                                          \
    static void inner_##T(binary_kind_t k, const void *a_, int64_t sa, const void *b_, int64_t sb, \
                          void *y_, int64_t len)                                                   \
    {                                                                                              \
        switch (k) {                                                                               \
        case B_ADD:                                                                                \
            INNER(T, T, (T)((uint64_t)x + (uint64_t)z));                                           \
            break;                                                                                 \
        case B_SUB:                                                                                \
            INNER(T, T, (T)((uint64_t)x - (uint64_t)z));                                           \
            break;                                                                                 \
        case B_MUL:                                                                                \
            INNER(T, T, (T)((uint64_t)x * (uint64_t)z));                                           \
            break;                                                                                 \
        case B_DIV:                                                                                \
            INNER(T, T, z == 0 || ((MIN) != 0 && x == (T)(MIN) && z == (T)-1) ? 0 : x / z);       \
            break;                                                                                 \
        case B_EQUAL:                                                                              \
            INNER(T, uint8_t, x == z);                                                             \
            break;                                                                                 \
        default:                                                                                   \
            break;                                                                                 \
        }                                                                                          \
    }
INNER_INT(int64_t, INT64_MIN)
INNER_INT(int32_t, INT32_MIN)
INNER_INT(int16_t, INT16_MIN)
INNER_INT(int8_t, INT8_MIN)
INNER_INT(uint64_t, 0)
INNER_INT(uint32_t, 0)
INNER_INT(uint16_t, 0)
INNER_INT(uint8_t, 0)

typedef void (*inner_fn)(binary_kind_t, const void *, int64_t, const void *, int64_t, void *,
                         int64_t);

static inner_fn inner_for(mp_dtype_t dt)
{
    switch (dt) {
    case MP_DT_F32:
        return inner_f32;
    case MP_DT_I64:
        return inner_int64_t;
    case MP_DT_I32:
        return inner_int32_t;
    case MP_DT_I16:
        return inner_int16_t;
    case MP_DT_I8:
        return inner_int8_t;
    case MP_DT_U64:
        return inner_uint64_t;
    case MP_DT_U32:
        return inner_uint32_t;
    case MP_DT_U16:
        return inner_uint16_t;
    case MP_DT_U8:
        return inner_uint8_t;
    default:
        return NULL;
    }
}

static int binary_run(const rt_exec_t *e, const rt_node_t *n, mp_errctx_t *err)
{
    const binary_t *b = n->p;
    const rt_val_t *av = RT_IN(e->s, n, 0), *yv = RT_OUT(e->s, n, 0);
    const uint8_t *a = RT_PTR(e, n, 0), *bp = RT_PTR(e, n, 1);
    uint8_t *y = RT_OPTR(e, n, 0);
    const rt_val_t *bv = RT_IN(e->s, n, 1);
    const size_t es = mp_dtype_size(av->dt), bs = mp_dtype_size(bv->dt);
    const size_t ys = mp_dtype_size(yv->dt);
    const int last = b->rank - 1;
    const int64_t len = b->dims[last], outer = len ? yv->n / len : 0;
    int64_t idx[MP_MAX_DIMS] = {0}, oa = 0, ob = 0;
    const inner_fn inner = inner_for(av->dt);
    const int generic = b->kind == B_POW && (av->dt != MP_DT_F32 || bv->dt != MP_DT_F32);

    (void)err;
    for (int64_t t = 0; t < outer; t++) {
        if (generic) {
            /* Pow of other types: through double, the result in the base's type */
            for (int64_t i = 0; i < len; i++) {
                double x, z;
                mp__rt_convert(MP_DT_F64, &x, av->dt, a + (size_t)(oa + i * b->sa[last]) * es, 1);
                mp__rt_convert(MP_DT_F64, &z, bv->dt, bp + (size_t)(ob + i * b->sb[last]) * bs, 1);
                x = pow(x, z);
                mp__rt_convert(yv->dt, y + (size_t)(t * len + i) * ys, MP_DT_F64, &x, 1);
            }
        } else {
            inner(b->kind, a + (size_t)oa * es, b->sa[last], bp + (size_t)ob * es, b->sb[last],
                  y + (size_t)(t * len) * ys, len);
        }
        for (int d = last - 1; d >= 0; d--) {
            oa += b->sa[d];
            ob += b->sb[d];
            if (++idx[d] < b->dims[d]) {
                break;
            }
            oa -= b->sa[d] * b->dims[d];
            ob -= b->sb[d] * b->dims[d];
            idx[d] = 0;
        }
    }
    return 0;
}

/* ---- Softmax and LogSoftmax --------------------------------------------------------------- */

typedef struct softmax {
    int64_t outer, len, inner;
    int log;
} softmax_t;

static int softmax_prep_kind(rt_sess_t *s, rt_node_t *n, mp_errctx_t *err, int log)
{
    const rt_val_t *x = RT_IN(s, n, 0);
    softmax_t *p;
    int axis, rc;

    if ((rc = mp__rt_need_type(s, n, 0, MP_DT_F32, err)) < 0 ||
        (rc = mp__rt_axis(n, mp__rt_attr_int(n, "axis", s->opset < 13 ? 1 : -1),
                          x->rank ? x->rank : 1, &axis, err)) < 0) {
        return rc;
    }
    p = calloc(1, sizeof *p);
    MP_RETURN_IF(p == NULL, MP_ENOMEM, "out of memory");
    n->p = p;
    p->log = log;
    p->outer = rt_prod(x->dims, 0, axis);
    if (s->opset < 13) {
        /* before opset 13 the input is coerced to 2-D at axis */
        p->len = rt_prod(x->dims, axis, x->rank);
        p->inner = 1;
    } else {
        p->len = x->rank ? x->dims[axis] : 1;
        p->inner = rt_prod(x->dims, axis + 1, x->rank);
    }
    return mp__rt_out_shape(s, n, 0, MP_DT_F32, x->rank, x->dims, err);
}

static int softmax_prep(rt_sess_t *s, rt_node_t *n, mp_errctx_t *err)
{
    return softmax_prep_kind(s, n, err, 0);
}

static int logsoftmax_prep(rt_sess_t *s, rt_node_t *n, mp_errctx_t *err)
{
    return softmax_prep_kind(s, n, err, 1);
}

static int softmax_run(const rt_exec_t *e, const rt_node_t *n, mp_errctx_t *err)
{
    const softmax_t *p = n->p;
    const float *x = RT_PTR(e, n, 0);
    float *y = RT_OPTR(e, n, 0);

    (void)err;
    for (int64_t o = 0; o < p->outer; o++) {
        for (int64_t i = 0; i < p->inner; i++) {
            const float *xs = x + o * p->len * p->inner + i;
            float *ys = y + o * p->len * p->inner + i;
            float mx = -INFINITY, sum = 0.0f;
            for (int64_t k = 0; k < p->len; k++) {
                mx = xs[k * p->inner] > mx ? xs[k * p->inner] : mx;
            }
            for (int64_t k = 0; k < p->len; k++) {
                const float v = expf(xs[k * p->inner] - mx);
                ys[k * p->inner] = v;
                sum += v;
            }
            if (p->log) {
                const float ls = logf(sum);
                for (int64_t k = 0; k < p->len; k++) {
                    ys[k * p->inner] = xs[k * p->inner] - mx - ls;
                }
            } else {
                for (int64_t k = 0; k < p->len; k++) {
                    ys[k * p->inner] /= sum;
                }
            }
        }
    }
    return 0;
}

/* ---- Cast --------------------------------------------------------------------------------- */

/* Cast-1 names its target type as a string: the TensorProto.DataType enum's names, 1 to 13. */
static int64_t cast_to_name(const rt_node_t *n, char *name, size_t cap)
{
    static const char *const names[] = {"FLOAT",  "UINT8",  "INT8",   "UINT16", "INT16",
                                        "INT32",  "INT64",  "STRING", "BOOL",   "FLOAT16",
                                        "DOUBLE", "UINT32", "UINT64"};

    if (mp__rt_attr_str(n, "to", name, cap, "") <= 0) {
        return -1;
    }
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        if (strcasecmp(name, names[i]) == 0) {
            return (int64_t)i + 1;
        }
    }
    return -1;
}

static int cast_prep(rt_sess_t *s, rt_node_t *n, mp_errctx_t *err)
{
    const rt_val_t *x = RT_IN(s, n, 0);
    char name[32] = "";
    const int64_t to =
        s->opset < 6 ? cast_to_name(n, name, sizeof name) : mp__rt_attr_int(n, "to", -1);
    const int dt = mp__onnx_dtype(to);

    MP_RETURN_IF(s->opset < 6 && to < 0, MP_EUNSUPPORTED,
                 "%s: cast to '%s' is not supported (Cast-1 names a TensorProto data type)",
                 n->label, name);
    MP_RETURN_IF(dt < 0 || !mp__rt_dtype_ok((mp_dtype_t)dt), MP_EUNSUPPORTED,
                 "%s: cast to ONNX type %lld is not supported", n->label, (long long)to);
    return mp__rt_out_shape(s, n, 0, (mp_dtype_t)dt, x->rank, x->dims, err);
}

static int cast_run(const rt_exec_t *e, const rt_node_t *n, mp_errctx_t *err)
{
    const rt_val_t *x = RT_IN(e->s, n, 0), *y = RT_OUT(e->s, n, 0);

    (void)err;
    return mp__rt_convert(y->dt, RT_OPTR(e, n, 0), x->dt, RT_PTR(e, n, 0), x->n);
}

/* ---- QuantizeLinear and DequantizeLinear -------------------------------------------------- */

typedef struct qlin {
    int64_t outer, ch, inner;    /* x as [outer, ch, inner]; ch = 1 per tensor */
} qlin_t;

/* Scale (input 1) and zero point (input 2) per tensor, or per channel along axis. */
static int qlin_layout(rt_sess_t *s, rt_node_t *n, const rt_val_t *x, mp_errctx_t *err)
{
    const rt_val_t *sc = RT_IN(s, n, 1);
    qlin_t *q;
    int axis, rc;

    MP_RETURN_IF(sc->dt != MP_DT_F32, MP_EUNSUPPORTED, "%s: scale of type %s", n->label,
                 mp_dtype_name(sc->dt));
    q = calloc(1, sizeof *q);
    MP_RETURN_IF(q == NULL, MP_ENOMEM, "out of memory");
    n->p = q;
    q->outer = 1;
    q->ch = 1;
    q->inner = x->n;
    if (sc->n != 1 || sc->rank == 1) {
        if (sc->rank == 1 && sc->n == 1 && x->rank == 0) {
            return 0;
        }
        if ((rc = mp__rt_axis(n, mp__rt_attr_int(n, "axis", 1), x->rank, &axis, err)) < 0) {
            return rc;
        }
        MP_RETURN_IF(sc->rank != 1 || sc->n != x->dims[axis], MP_EINVAL,
                     "%s: %lld scales for axis %d of size %lld", n->label, (long long)sc->n, axis,
                     (long long)x->dims[axis]);
        q->outer = rt_prod(x->dims, 0, axis);
        q->ch = x->dims[axis];
        q->inner = rt_prod(x->dims, axis + 1, x->rank);
    }
    if (RT_HAS(n, 2)) {
        MP_RETURN_IF(RT_IN(s, n, 2)->n != sc->n, MP_EINVAL,
                     "%s: zero point and scale differ in size", n->label);
    }
    return 0;
}

static int quant_prep(rt_sess_t *s, rt_node_t *n, mp_errctx_t *err)
{
    const rt_val_t *x = RT_IN(s, n, 0);
    const mp_dtype_t ydt = RT_HAS(n, 2) ? RT_IN(s, n, 2)->dt : MP_DT_U8;
    int rc;

    if ((rc = mp__rt_need_type(s, n, 0, MP_DT_F32, err)) < 0) {
        return rc;
    }
    MP_RETURN_IF(ydt != MP_DT_U8 && ydt != MP_DT_I8, MP_EUNSUPPORTED,
                 "%s: output type %s is not supported", n->label, mp_dtype_name(ydt));
    if ((rc = qlin_layout(s, n, x, err)) < 0) {
        return rc;
    }
    return mp__rt_out_shape(s, n, 0, ydt, x->rank, x->dims, err);
}

static int quant_run(const rt_exec_t *e, const rt_node_t *n, mp_errctx_t *err)
{
    const qlin_t *q = n->p;
    const rt_val_t *yv = RT_OUT(e->s, n, 0);
    const float *x = RT_PTR(e, n, 0), *sc = RT_PTR(e, n, 1);
    const void *zp = RT_HAS(n, 2) ? RT_PTR(e, n, 2) : NULL;
    const int u8 = yv->dt == MP_DT_U8;
    const float lo = u8 ? 0.0f : -128.0f, hi = u8 ? 255.0f : 127.0f;
    uint8_t *y = RT_OPTR(e, n, 0);

    (void)err;
    for (int64_t o = 0; o < q->outer; o++) {
        for (int64_t c = 0; c < q->ch; c++) {
            const float z = zp ? (float)mp__rt_get_i64(yv->dt, zp, c) : 0.0f;
            const int64_t base = (o * q->ch + c) * q->inner;
            for (int64_t i = 0; i < q->inner; i++) {
                float v = nearbyintf(x[base + i] / sc[c]) + z;
                v = v != v ? 0.0f : v < lo ? lo : v > hi ? hi : v;
                y[base + i] = u8 ? (uint8_t)v : (uint8_t)(int8_t)v;
            }
        }
    }
    return 0;
}

static int dequant_prep(rt_sess_t *s, rt_node_t *n, mp_errctx_t *err)
{
    const rt_val_t *x = RT_IN(s, n, 0);
    int rc;

    MP_RETURN_IF(x->dt != MP_DT_U8 && x->dt != MP_DT_I8 && x->dt != MP_DT_I32, MP_EUNSUPPORTED,
                 "%s: input of type %s is not supported", n->label, mp_dtype_name(x->dt));
    MP_RETURN_IF(RT_HAS(n, 2) && RT_IN(s, n, 2)->dt != x->dt, MP_EINVAL,
                 "%s: zero point of another type than the input", n->label);
    if ((rc = qlin_layout(s, n, x, err)) < 0) {
        return rc;
    }
    return mp__rt_out_shape(s, n, 0, MP_DT_F32, x->rank, x->dims, err);
}

static int dequant_run(const rt_exec_t *e, const rt_node_t *n, mp_errctx_t *err)
{
    const qlin_t *q = n->p;
    const rt_val_t *xv = RT_IN(e->s, n, 0);
    const void *x = RT_PTR(e, n, 0), *zp = RT_HAS(n, 2) ? RT_PTR(e, n, 2) : NULL;
    const float *sc = RT_PTR(e, n, 1);
    float *y = RT_OPTR(e, n, 0);

    (void)err;
    for (int64_t o = 0; o < q->outer; o++) {
        for (int64_t c = 0; c < q->ch; c++) {
            const int64_t z = zp ? mp__rt_get_i64(xv->dt, zp, c) : 0;
            const int64_t base = (o * q->ch + c) * q->inner;
            for (int64_t i = 0; i < q->inner; i++) {
                y[base + i] = (float)(mp__rt_get_i64(xv->dt, x, base + i) - z) * sc[c];
            }
        }
    }
    return 0;
}

const rt_op_t mp__rt_ops_elem[] = {
    {"Add", add_prep, binary_run, NULL, 0},
    {"Cast", cast_prep, cast_run, NULL, 0},
    {"Clip", clip_prep, unary_run, NULL, 0},
    {"DequantizeLinear", dequant_prep, dequant_run, NULL, 0},
    {"Div", div_prep, binary_run, NULL, 0},
    {"Equal", equal_prep, binary_run, NULL, 0},
    {"HardSigmoid", hsigmoid_prep, unary_run, NULL, 0},
    {"HardSwish", hswish_prep, unary_run, NULL, 0},
    {"LeakyRelu", leaky_prep, unary_run, NULL, 0},
    {"LogSoftmax", logsoftmax_prep, softmax_run, NULL, 0},
    {"Mul", mul_prep, binary_run, NULL, 0},
    {"PRelu", prelu_prep, binary_run, NULL, 0},
    {"Pow", pow_prep, binary_run, NULL, 0},
    {"QuantizeLinear", quant_prep, quant_run, NULL, 0},
    {"Relu", relu_prep, unary_run, NULL, 0},
    {"Sigmoid", sigmoid_prep, unary_run, NULL, 0},
    {"Softmax", softmax_prep, softmax_run, NULL, 0},
    {"Sqrt", sqrt_prep, unary_run, NULL, 0},
    {"Sub", sub_prep, binary_run, NULL, 0},
    {"Tanh", tanh_prep, unary_run, NULL, 0},
    {NULL, NULL, NULL, NULL, 0},
};
