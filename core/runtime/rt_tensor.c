/* rt_tensor.c — node attributes, TensorProto decoding and element type conversions for the
 * runtime.
 *
 * Attributes are read from the NodeProto tree the ONNX reader parsed (scalars and lists, packed
 * or not, as protobuf allows both). A TensorProto met outside the model's weights — a
 * ConstantOfShape value, a conformance case's input_0.pb — is decoded here: every count is
 * checked against the bytes present before anything is allocated, external data and strings are
 * refused. Conversions between element types go through double, which holds every value of
 * every type the runtime has exactly except 64-bit integers beyond 2^53 (never met in shapes);
 * conversions to integers truncate toward zero and saturate, NaN becoming 0, so no conversion
 * is undefined behaviour.
 */
#include "rt_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- attributes --------------------------------------------------------------------------- */

const mp__pb_msg_t *mp__rt_attr(const rt_node_t *n, const char *name)
{
    return mp__onnx_node_attr(n->pb, name);
}

int64_t mp__rt_attr_int(const rt_node_t *n, const char *name, int64_t def)
{
    const mp__pb_msg_t *a = mp__rt_attr(n, name);
    const mp__pb_field_t *f = a ? mp__pb_find(a, ONNX_ATTR_I) : NULL;

    return f != NULL && f->wire == MP_PB_VARINT ? (int64_t)f->v : def;
}

float mp__rt_attr_float(const rt_node_t *n, const char *name, float def)
{
    const mp__pb_msg_t *a = mp__rt_attr(n, name);
    const mp__pb_field_t *f = a ? mp__pb_find(a, ONNX_ATTR_F) : NULL;
    uint32_t b;
    float v;

    if (f == NULL || f->wire != MP_PB_I32) {
        return def;
    }
    b = (uint32_t)f->v;
    memcpy(&v, &b, 4);
    return v;
}

int mp__rt_attr_ints(const rt_node_t *n, const char *name, int64_t *out, int cap, int *count,
                     mp_errctx_t *err)
{
    const mp__pb_msg_t *a = mp__rt_attr(n, name);
    int k = 0;

    *count = 0;
    if (a == NULL) {
        return 0;
    }
    for (size_t i = 0; i < a->n; i++) {
        const mp__pb_field_t *f = &a->f[i];
        if (f->num != ONNX_ATTR_INTS) {
            continue;
        }
        if (f->wire == MP_PB_VARINT) {
            MP_RETURN_IF(k >= cap, MP_EUNSUPPORTED, "%s: attribute %s has more than %d values",
                         n->label, name, cap);
            out[k++] = (int64_t)f->v;
            continue;
        }
        MP_RETURN_IF(f->wire != MP_PB_LEN, MP_EFORMAT, "%s: attribute %s is malformed", n->label,
                     name);
        for (size_t p = 0; p < f->len;) {
            uint64_t v;
            size_t used;
            MP_RETURN_IF(mp__pb_varint(f->data + p, f->len - p, &v, &used) != 0, MP_EFORMAT,
                         "%s: attribute %s has a malformed packed value", n->label, name);
            MP_RETURN_IF(k >= cap, MP_EUNSUPPORTED, "%s: attribute %s has more than %d values",
                         n->label, name, cap);
            out[k++] = (int64_t)v;
            p += used;
        }
    }
    *count = k;
    return 1;
}

int mp__rt_attr_floats(const rt_node_t *n, const char *name, float **out, int64_t *count,
                       mp_errctx_t *err)
{
    const mp__pb_msg_t *a = mp__rt_attr(n, name);
    size_t k = 0, total = 0;
    float *v;

    *out = NULL;
    *count = 0;
    if (a == NULL) {
        return 0;
    }
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < a->n; i++) {
            const mp__pb_field_t *f = &a->f[i];
            uint32_t b;
            if (f->num != 7) { /* AttributeProto.floats */
                continue;
            }
            if (f->wire == MP_PB_I32) {
                if (pass == 1) {
                    b = (uint32_t)f->v;
                    memcpy(&(*out)[k++], &b, 4);
                } else {
                    total++;
                }
                continue;
            }
            MP_RETURN_IF(f->wire != MP_PB_LEN || f->len % 4 != 0, MP_EFORMAT,
                         "%s: attribute %s is malformed", n->label, name);
            if (pass == 1) {
                memcpy(&(*out)[k], f->data, f->len);
                k += f->len / 4;
            } else {
                total += f->len / 4;
            }
        }
        if (pass == 0) {
            v = malloc((total ? total : 1) * sizeof *v);
            MP_RETURN_IF(v == NULL, MP_ENOMEM, "out of memory");
            *out = v;
        }
    }
    *count = (int64_t)k;
    return 1;
}

int mp__rt_attr_str(const rt_node_t *n, const char *name, char *buf, size_t cap, const char *def)
{
    const mp__pb_msg_t *a = mp__rt_attr(n, name);
    const mp__pb_field_t *f = a ? mp__pb_find(a, ONNX_ATTR_S) : NULL;
    size_t k;

    if (f == NULL || f->wire != MP_PB_LEN) {
        snprintf(buf, cap, "%s", def);
        return 0;
    }
    k = f->len < cap - 1 ? f->len : cap - 1;
    memcpy(buf, f->data, k);
    buf[k] = '\0';
    return 1;
}

/* ---- TensorProto ------------------------------------------------------------------------- */

void mp__rt_tensor_cleanup(rt_tensor_t *t)
{
    if (t != NULL) {
        free(t->data);
        free(t->name);
        memset(t, 0, sizeof *t);
    }
}

/* Count (out NULL) or decode the values of repeated field num: VARINT (fixed 0), I32 (4) or
 * I64 (8) values, each possibly packed. */
static int values(const mp__pb_msg_t *tp, uint32_t num, int fixed, uint64_t *out, size_t *n,
                  mp_errctx_t *err)
{
    size_t k = 0;

    for (size_t i = 0; i < tp->n; i++) {
        const mp__pb_field_t *f = &tp->f[i];
        if (f->num != num) {
            continue;
        }
        if (f->wire != MP_PB_LEN) {
            if (out) {
                out[k] = f->v;
            }
            k++;
            continue;
        }
        if (fixed) {
            MP_RETURN_IF(f->len % (size_t)fixed, MP_EFORMAT,
                         "tensor field %u: %zu bytes are not whole values", num, f->len);
            for (size_t p = 0; p < f->len; p += (size_t)fixed) {
                if (out) {
                    uint64_t v = 0;
                    for (int b = 0; b < fixed; b++) {
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
            MP_RETURN_IF(mp__pb_varint(f->data + p, f->len - p, &v, &used) != 0, MP_EFORMAT,
                         "tensor field %u: malformed packed varint", num);
            if (out) {
                out[k] = v;
            }
            k++;
            p += used;
        }
    }
    *n = k;
    return 0;
}

int mp__rt_tensor_decode(const mp__pb_msg_t *tp, rt_tensor_t *t, mp_errctx_t *err)
{
    const mp__pb_field_t *dtf = mp__pb_find(tp, ONNX_TENSOR_DATA_TYPE);
    const mp__pb_field_t *raw = mp__pb_find(tp, ONNX_TENSOR_RAW_DATA);
    const mp__pb_field_t *nf = mp__pb_find(tp, ONNX_TENSOR_NAME);
    const mp__pb_field_t *loc = mp__pb_find(tp, ONNX_TENSOR_DATA_LOCATION);
    uint64_t dims[MP_MAX_DIMS], *vals = NULL;
    size_t n_dims = 0, n_vals = 0, es;
    uint32_t field;
    int fixed = 0, dt, rc = 0;

    memset(t, 0, sizeof *t);
    MP_RETURN_IF(dtf == NULL, MP_EFORMAT, "tensor without a data_type");
    MP_RETURN_IF((loc && loc->v) || mp__pb_find(tp, ONNX_TENSOR_EXTERNAL_DATA), MP_EUNSUPPORTED,
                 "tensor data stored outside the file is never read");
    dt = mp__onnx_dtype((int64_t)dtf->v);
    MP_RETURN_IF(dt < 0 || !mp__rt_dtype_ok((mp_dtype_t)dt), MP_EUNSUPPORTED,
                 "tensor of ONNX data type %lld: not supported by the runtime",
                 (long long)dtf->v);
    if ((rc = values(tp, ONNX_TENSOR_DIMS, 0, NULL, &n_dims, err)) < 0) {
        return rc;
    }
    MP_RETURN_IF(n_dims > MP_MAX_DIMS, MP_EUNSUPPORTED, "tensor of %zu dims (at most %d)", n_dims,
                 MP_MAX_DIMS);
    if ((rc = values(tp, ONNX_TENSOR_DIMS, 0, dims, &n_dims, err)) < 0) {
        return rc;
    }
    t->dt = (mp_dtype_t)dt;
    t->rank = (int)n_dims;
    for (size_t d = 0; d < n_dims; d++) {
        t->dims[d] = (int64_t)dims[d];
    }
    MP_RETURN_IF(mp__shape_bytes(t->dt, t->rank, t->dims, &t->n, &t->bytes) != 0 ||
                     t->bytes > RT_MAX_TENSOR_BYTES,
                 MP_EFORMAT, "tensor dims are negative or too large");
    es = mp_dtype_size(t->dt);
    t->name = nf && nf->wire == MP_PB_LEN ? mp__pb_strdup(nf) : strdup("");
    MP_GOTO_IF(t->name == NULL, MP_ENOMEM, "out of memory");
    if (raw != NULL) {
        MP_GOTO_IF(raw->wire != MP_PB_LEN || raw->len != t->bytes, MP_EFORMAT,
                   "tensor '%s': raw_data of %zu bytes, its dims need %zu", t->name, raw->len,
                   t->bytes);
        t->data = malloc(t->bytes ? t->bytes : 1);
        MP_GOTO_IF(t->data == NULL, MP_ENOMEM, "out of memory");
        memcpy(t->data, raw->data, t->bytes);
        goto out;
    }
    switch (t->dt) {
    case MP_DT_F32:
        field = ONNX_TENSOR_FLOAT_DATA, fixed = 4;
        break;
    case MP_DT_F64:
        field = ONNX_TENSOR_DOUBLE_DATA, fixed = 8;
        break;
    case MP_DT_I64:
        field = ONNX_TENSOR_INT64_DATA;
        break;
    case MP_DT_U32:
    case MP_DT_U64:
        field = ONNX_TENSOR_UINT64_DATA;
        break;
    default:
        field = ONNX_TENSOR_INT32_DATA;
        break;
    }
    if ((rc = values(tp, field, fixed, NULL, &n_vals, err)) < 0) {
        goto out;
    }
    MP_GOTO_IF((int64_t)n_vals != t->n, MP_EFORMAT,
               "tensor '%s': %zu values stored, its dims give %lld", t->name, n_vals,
               (long long)t->n);
    vals = malloc((n_vals ? n_vals : 1) * sizeof *vals);
    t->data = malloc(t->bytes ? t->bytes : 1);
    MP_GOTO_IF(vals == NULL || t->data == NULL, MP_ENOMEM, "out of memory");
    if ((rc = values(tp, field, fixed, vals, &n_vals, err)) < 0) {
        goto out;
    }
    for (size_t i = 0; i < n_vals; i++) {
        /* the low es bytes of the little-endian value: int32_data holds int8..uint16 and the
         * bits of halves, sign-extended, and truncating keeps exactly the element's bits */
        const uint64_t v = vals[i];
        uint8_t *dst = (uint8_t *)t->data + i * es;
        for (size_t b = 0; b < es; b++) {
            dst[b] = (uint8_t)(v >> (8 * b));
        }
    }
out:
    free(vals);
    if (rc < 0) {
        mp__rt_tensor_cleanup(t);
    }
    return rc;
}

int mp__rt_tensor_parse(const void *buf, size_t n, rt_tensor_t *t, mp_errctx_t *err)
{
    mp__pb_msg_t *m = NULL;
    int rc;

    memset(t, 0, sizeof *t);
    if ((rc = mp__pb_parse(buf, n, 0, 0, &m, err)) < 0) {
        return rc;
    }
    rc = mp__rt_tensor_decode(m, t, err);
    mp__pb_msg_free(m);
    return rc;
}

/* ---- conversions -------------------------------------------------------------------------- */

int mp__rt_dtype_ok(mp_dtype_t dt)
{
    return dt >= MP_DT_F32 && dt < MP_DT_COUNT;
}

static float half_to_float(uint16_t h)
{
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t e = (h >> 10) & 0x1f, m = h & 0x3ffu;
    uint32_t x;
    float f;

    if (e == 0) {
        f = (float)m * 0x1p-24f;
        memcpy(&x, &f, 4);
        x |= sign;
    } else if (e == 31) {
        x = sign | 0x7f800000u | (m << 13);
    } else {
        x = sign | ((e + 112) << 23) | (m << 13);
    }
    memcpy(&f, &x, 4);
    return f;
}

/* Round to nearest, ties to even, as IEEE conversion does. */
static uint16_t float_to_half(float f)
{
    uint32_t x, m, h, rem, half;
    int e;

    memcpy(&x, &f, 4);
    const uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    m = x & 0x7fffffu;
    e = (int)((x >> 23) & 0xff);
    if (e == 0xff) {
        return (uint16_t)(sign | 0x7c00u | (m ? 0x200u | (m >> 13) : 0));
    }
    e = e - 127 + 15;
    if (e >= 31) {
        return sign | 0x7c00u;
    }
    if (e <= 0) {
        if (e < -10) {
            return sign;
        }
        m |= 0x800000u;
        const int shift = 14 - e;
        h = m >> shift;
        rem = m & ((1u << shift) - 1);
        half = 1u << (shift - 1);
    } else {
        h = ((uint32_t)e << 10) | (m >> 13);
        rem = m & 0x1fffu;
        half = 0x1000u;
    }
    if (rem > half || (rem == half && (h & 1u))) {
        h++; /* may carry into the exponent, which is the right rounding (up to inf) */
    }
    return (uint16_t)(sign | h);
}

static double load(mp_dtype_t dt, const void *p, int64_t i)
{
    const uint8_t *b = (const uint8_t *)p + (size_t)i * mp_dtype_size(dt);
    union {
        float f;
        double d;
        int8_t i8;
        uint8_t u8;
        int16_t i16;
        uint16_t u16;
        int32_t i32;
        uint32_t u32;
        int64_t i64;
        uint64_t u64;
    } u;
    uint32_t x;

    memcpy(&u, b, mp_dtype_size(dt));
    switch (dt) {
    case MP_DT_F32:
        return u.f;
    case MP_DT_F64:
        return u.d;
    case MP_DT_F16:
        return half_to_float(u.u16);
    case MP_DT_BF16:
        x = (uint32_t)u.u16 << 16;
        memcpy(&u.f, &x, 4);
        return u.f;
    case MP_DT_I8:
        return u.i8;
    case MP_DT_U8:
    case MP_DT_BOOL:
        return u.u8;
    case MP_DT_I16:
        return u.i16;
    case MP_DT_U16:
        return u.u16;
    case MP_DT_I32:
        return u.i32;
    case MP_DT_U32:
        return u.u32;
    case MP_DT_I64:
        return (double)u.i64;
    case MP_DT_U64:
        return (double)u.u64;
    default:
        return 0;
    }
}

/* Truncate toward zero into [lo, hi]; NaN gives 0. */
static double to_int(double v, double lo, double hi)
{
    if (v != v) {
        return 0;
    }
    v = trunc(v);
    return v < lo ? lo : v > hi ? hi : v;
}

static void store(mp_dtype_t dt, void *p, int64_t i, double v)
{
    uint8_t *b = (uint8_t *)p + (size_t)i * mp_dtype_size(dt);
    float f;
    uint32_t x;
    uint16_t h;
    int8_t i8;
    int16_t i16;
    int32_t i32;
    uint32_t u32;
    int64_t i64;
    uint64_t u64;

    switch (dt) {
    case MP_DT_F32:
        f = (float)v;
        memcpy(b, &f, 4);
        break;
    case MP_DT_F64:
        memcpy(b, &v, 8);
        break;
    case MP_DT_F16:
        h = float_to_half((float)v);
        memcpy(b, &h, 2);
        break;
    case MP_DT_BF16:
        f = (float)v;
        memcpy(&x, &f, 4);
        /* the upper half, as ONNX's reference Cast does (its conformance data expect it);
         * a NaN whose payload lies in the lower half stays a NaN */
        h = (uint16_t)(x >> 16);
        if ((x & 0x7fffffffu) > 0x7f800000u) {
            h |= 0x40u;
        }
        memcpy(b, &h, 2);
        break;
    case MP_DT_I8:
        i8 = (int8_t)to_int(v, INT8_MIN, INT8_MAX);
        memcpy(b, &i8, 1);
        break;
    case MP_DT_U8:
        *b = (uint8_t)to_int(v, 0, UINT8_MAX);
        break;
    case MP_DT_BOOL:
        *b = v != 0;
        break;
    case MP_DT_I16:
        i16 = (int16_t)to_int(v, INT16_MIN, INT16_MAX);
        memcpy(b, &i16, 2);
        break;
    case MP_DT_U16:
        h = (uint16_t)to_int(v, 0, UINT16_MAX);
        memcpy(b, &h, 2);
        break;
    case MP_DT_I32:
        i32 = (int32_t)to_int(v, INT32_MIN, INT32_MAX);
        memcpy(b, &i32, 4);
        break;
    case MP_DT_U32:
        u32 = (uint32_t)to_int(v, 0, UINT32_MAX);
        memcpy(b, &u32, 4);
        break;
    case MP_DT_I64:
        /* 2^63 is not an int64: the largest double below it is */
        i64 = (int64_t)to_int(v, -0x1p63, 0x1.fffffffffffffp62);
        memcpy(b, &i64, 8);
        break;
    case MP_DT_U64:
        u64 = (uint64_t)to_int(v, 0, 0x1.fffffffffffffp63);
        memcpy(b, &u64, 8);
        break;
    default:
        break;
    }
}

int mp__rt_convert(mp_dtype_t to, void *dst, mp_dtype_t from, const void *src, int64_t n)
{
    if (!mp__rt_dtype_ok(to) || !mp__rt_dtype_ok(from)) {
        return MP_EUNSUPPORTED;
    }
    if (to == from) {
        memmove(dst, src, (size_t)n * mp_dtype_size(to));
        return 0;
    }
    if (from == MP_DT_I64 && (to == MP_DT_I32 || to == MP_DT_U64)) {
        /* integers beyond 2^53 would lose bits through double */
        for (int64_t i = 0; i < n; i++) {
            int64_t v;
            memcpy(&v, (const uint8_t *)src + 8 * i, 8);
            if (to == MP_DT_I32) {
                const int32_t w = v < INT32_MIN ? INT32_MIN : v > INT32_MAX ? INT32_MAX : (int32_t)v;
                memcpy((uint8_t *)dst + 4 * i, &w, 4);
            } else {
                const uint64_t w = v < 0 ? 0 : (uint64_t)v;
                memcpy((uint8_t *)dst + 8 * i, &w, 8);
            }
        }
        return 0;
    }
    for (int64_t i = 0; i < n; i++) {
        store(to, dst, i, load(from, src, i));
    }
    return 0;
}

int64_t mp__rt_get_i64(mp_dtype_t dt, const void *p, int64_t i)
{
    int64_t v;

    if (dt == MP_DT_I64) {
        memcpy(&v, (const uint8_t *)p + 8 * i, 8);
        return v;
    }
    store(MP_DT_I64, &v, 0, load(dt, p, i));
    return v;
}
