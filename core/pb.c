/* pb.c — the protobuf wire codec behind the ONNX reader and writer (interface: pb_int.h,
 * which says why it is hand-written rather than protobuf-c).
 *
 * Invariants: a parsed message's fields are in file order and their raw bytes tile its payload
 * exactly, so copying them reproduces it; nothing is read before its length has been checked
 * against the bytes that remain (a length is compared with the remainder, never added to a
 * pointer first); a field's payload pointer always lies inside the buffer that was parsed or
 * inside its own allocation. Encoding is two passes over the tree: sizes (cached per message,
 * with whether its subtree is unchanged), then bytes into one exactly-sized buffer.
 */
#include "pb_int.h"

#include <stdlib.h>
#include <string.h>

/* ---- varints ------------------------------------------------------------------------------ */

int mp__pb_varint(const uint8_t *p, size_t n, uint64_t *v, size_t *used)
{
    uint64_t x = 0;

    for (size_t i = 0; i < 10; i++) {
        if (i >= n) {
            return -1;
        }
        /* the 10th byte carries bit 63 only: anything above overflows 64 bits */
        if (i == 9 && p[i] > 1) {
            return -2;
        }
        x |= (uint64_t)(p[i] & 0x7f) << (7 * i);
        if ((p[i] & 0x80) == 0) {
            *v = x;
            *used = i + 1;
            return 0;
        }
    }
    return -2;
}

size_t mp__pb_varint_bytes(uint64_t v)
{
    size_t k = 1;

    while (v >= 0x80) {
        v >>= 7;
        k++;
    }
    return k;
}

size_t mp__pb_put_varint(uint8_t *out, uint64_t v)
{
    size_t k = 0;

    while (v >= 0x80) {
        out[k++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[k++] = (uint8_t)v;
    return k;
}

/* ---- the tree ----------------------------------------------------------------------------- */

mp__pb_msg_t *mp__pb_msg_new(void)
{
    return calloc(1, sizeof(mp__pb_msg_t));
}

static void field_cleanup(mp__pb_field_t *f)
{
    mp__pb_msg_free(f->sub);
    free(f->owned);
}

void mp__pb_msg_free(mp__pb_msg_t *m)
{
    if (m == NULL) {
        return;
    }
    for (size_t i = 0; i < m->n; i++) {
        field_cleanup(&m->f[i]);
    }
    free(m->f);
    free(m);
}

/* Room for one more field at the end. */
static int reserve(mp__pb_msg_t *m)
{
    mp__pb_field_t *f;
    size_t cap;

    if (m->n < m->cap) {
        return 0;
    }
    cap = m->cap ? m->cap * 2 : 8;
    if (cap > SIZE_MAX / sizeof *f) {
        return MP_ENOMEM;
    }
    f = realloc(m->f, cap * sizeof *f);
    if (f == NULL) {
        return MP_ENOMEM;
    }
    m->f = f;
    m->cap = cap;
    return 0;
}

static const char *wire_name(unsigned wire)
{
    static const char *names[8] = {"varint",    "fixed64", "length-delimited", "group start",
                                   "group end", "fixed32", "6 (undefined)",    "7 (undefined)"};
    return names[wire & 7];
}

int mp__pb_parse(const uint8_t *buf, size_t n, size_t base, int depth, mp__pb_msg_t **out,
                 mp_errctx_t *err)
{
    mp__pb_msg_t *m = NULL;
    size_t pos = 0;
    int rc = 0;

    *out = NULL;
    MP_RETURN_IF(depth > MP_PB_MAX_DEPTH, MP_ETOOBIG, "byte %zu: messages nested more than %d deep",
                 base, MP_PB_MAX_DEPTH);
    m = mp__pb_msg_new();
    MP_GOTO_IF(m == NULL, MP_ENOMEM, "out of memory parsing protobuf");
    m->depth = depth;
    while (pos < n) {
        const size_t start = pos;
        mp__pb_field_t f = {0};
        uint64_t tag, len;
        size_t used;
        int vr;

        vr = mp__pb_varint(buf + pos, n - pos, &tag, &used);
        MP_GOTO_IF(vr == -1, MP_EFORMAT, "byte %zu: truncated field tag", base + pos);
        MP_GOTO_IF(vr == -2, MP_EFORMAT, "byte %zu: varint longer than 10 bytes", base + pos);
        pos += used;
        MP_GOTO_IF((tag >> 3) == 0, MP_EFORMAT, "byte %zu: field number 0", base + start);
        MP_GOTO_IF((tag >> 3) > MP_PB_MAX_FIELD, MP_EFORMAT,
                   "byte %zu: field number %llu is above the protobuf maximum", base + start,
                   (unsigned long long)(tag >> 3));
        f.num = (uint32_t)(tag >> 3);
        f.wire = (uint8_t)(tag & 7);
        switch (f.wire) {
        case MP_PB_VARINT:
            vr = mp__pb_varint(buf + pos, n - pos, &f.v, &used);
            MP_GOTO_IF(vr == -1, MP_EFORMAT, "byte %zu: field %u: truncated varint", base + pos,
                       f.num);
            MP_GOTO_IF(vr == -2, MP_EFORMAT, "byte %zu: field %u: varint longer than 10 bytes",
                       base + pos, f.num);
            pos += used;
            break;
        case MP_PB_I64:
        case MP_PB_I32: {
            const size_t k = f.wire == MP_PB_I64 ? 8 : 4;
            MP_GOTO_IF(n - pos < k, MP_EFORMAT,
                       "byte %zu: field %u: %zu-byte value but %zu bytes remain", base + pos, f.num,
                       k, n - pos);
            for (size_t i = 0; i < k; i++) {
                f.v |= (uint64_t)buf[pos + i] << (8 * i);
            }
            pos += k;
            break;
        }
        case MP_PB_LEN:
            vr = mp__pb_varint(buf + pos, n - pos, &len, &used);
            MP_GOTO_IF(vr == -1, MP_EFORMAT, "byte %zu: field %u: truncated length", base + pos,
                       f.num);
            MP_GOTO_IF(vr == -2, MP_EFORMAT, "byte %zu: field %u: varint longer than 10 bytes",
                       base + pos, f.num);
            pos += used;
            MP_GOTO_IF(len > n - pos, MP_EFORMAT,
                       "byte %zu: field %u: length %llu runs past the end (%zu bytes remain)",
                       base + start, f.num, (unsigned long long)len, n - pos);
            f.data = buf + pos;
            f.len = (size_t)len;
            f.off = base + pos;
            pos += (size_t)len;
            break;
        default:
            MP_GOTO_IF(1, MP_EFORMAT, "byte %zu: field %u: wire type %s is not accepted",
                       base + start, f.num, wire_name(f.wire));
        }
        f.raw = buf + start;
        f.raw_len = pos - start;
        MP_GOTO_IF(reserve(m) < 0, MP_ENOMEM, "out of memory parsing protobuf");
        m->f[m->n++] = f;
    }
    *out = m;
    m = NULL;
out:
    mp__pb_msg_free(m);
    return rc;
}

int mp__pb_field_msg(mp__pb_field_t *f, int parent_depth, const char *what, mp__pb_msg_t **out,
                     mp_errctx_t *err)
{
    int rc;

    *out = NULL;
    if (f->sub == NULL) {
        MP_RETURN_IF(f->wire != MP_PB_LEN, MP_EFORMAT, "%s (field %u) is a %s, not a message", what,
                     f->num, wire_name(f->wire));
        rc = mp__pb_parse(f->data, f->len, f->off, parent_depth + 1, &f->sub, err);
        if (rc < 0) {
            return rc;
        }
    }
    *out = f->sub;
    return 0;
}

mp__pb_msg_t *mp__pb_msg_clone(const mp__pb_msg_t *m)
{
    mp__pb_msg_t *c = mp__pb_msg_new();

    if (c == NULL) {
        return NULL;
    }
    c->depth = m->depth;
    c->dirty = m->dirty;
    c->f = m->n ? malloc(m->n * sizeof *c->f) : NULL;
    if (m->n && c->f == NULL) {
        free(c);
        return NULL;
    }
    c->cap = m->n;
    for (size_t i = 0; i < m->n; i++) {
        mp__pb_field_t f = m->f[i];
        f.sub = NULL;
        f.owned = NULL;
        if (m->f[i].owned != NULL) {
            f.owned = malloc(f.len ? f.len : 1);
            if (f.owned == NULL) {
                goto fail;
            }
            memcpy(f.owned, m->f[i].data, f.len);
            f.data = f.owned;
        }
        if (m->f[i].sub != NULL && (f.sub = mp__pb_msg_clone(m->f[i].sub)) == NULL) {
            free(f.owned);
            goto fail;
        }
        c->f[c->n++] = f;
    }
    return c;
fail:
    mp__pb_msg_free(c);
    return NULL;
}

/* ---- lookups ------------------------------------------------------------------------------ */

mp__pb_field_t *mp__pb_find(const mp__pb_msg_t *m, uint32_t num)
{
    for (size_t i = 0; i < m->n; i++) {
        if (m->f[i].num == num) {
            return &m->f[i];
        }
    }
    return NULL;
}

size_t mp__pb_count(const mp__pb_msg_t *m, uint32_t num)
{
    size_t k = 0;

    for (size_t i = 0; i < m->n; i++) {
        k += m->f[i].num == num;
    }
    return k;
}

char *mp__pb_strdup(const mp__pb_field_t *f)
{
    char *s;

    if (f->wire != MP_PB_LEN) {
        return calloc(1, 1);
    }
    s = malloc(f->len + 1);
    if (s != NULL) {
        memcpy(s, f->data, f->len);
        s[f->len] = '\0';
    }
    return s;
}

int mp__pb_streq(const mp__pb_field_t *f, const char *s)
{
    const size_t k = strlen(s);

    return f->wire == MP_PB_LEN && f->len == k && memcmp(f->data, s, k) == 0;
}

/* ---- edits -------------------------------------------------------------------------------- */

static int add_field(mp__pb_msg_t *m, const mp__pb_field_t *f)
{
    if (reserve(m) < 0) {
        return MP_ENOMEM;
    }
    m->f[m->n] = *f;
    m->f[m->n].dirty = 1;
    m->n++;
    m->dirty = 1;
    return 0;
}

int mp__pb_add_varint(mp__pb_msg_t *m, uint32_t num, uint64_t v)
{
    const mp__pb_field_t f = {.num = num, .wire = MP_PB_VARINT, .v = v};

    return add_field(m, &f);
}

int mp__pb_add_i32(mp__pb_msg_t *m, uint32_t num, uint32_t v)
{
    const mp__pb_field_t f = {.num = num, .wire = MP_PB_I32, .v = v};

    return add_field(m, &f);
}

int mp__pb_add_bytes(mp__pb_msg_t *m, uint32_t num, const void *data, size_t len)
{
    mp__pb_field_t f = {.num = num, .wire = MP_PB_LEN, .len = len};
    int rc;

    f.owned = malloc(len ? len : 1);
    if (f.owned == NULL) {
        return MP_ENOMEM;
    }
    if (len) {
        memcpy(f.owned, data, len);
    }
    f.data = f.owned;
    rc = add_field(m, &f);
    if (rc < 0) {
        free(f.owned);
    }
    return rc;
}

int mp__pb_set_bytes_at(mp__pb_msg_t *m, size_t i, const void *data, size_t len)
{
    mp__pb_field_t *f;
    void *copy;

    if (i >= m->n || (copy = malloc(len ? len : 1)) == NULL) {
        return MP_ENOMEM;
    }
    if (len) {
        memcpy(copy, data, len);
    }
    f = &m->f[i];
    field_cleanup(f);
    f->sub = NULL;
    f->owned = copy;
    f->data = copy;
    f->len = len;
    f->wire = MP_PB_LEN;
    f->dirty = 1;
    m->dirty = 1;
    return 0;
}

int mp__pb_add_str(mp__pb_msg_t *m, uint32_t num, const char *s)
{
    return mp__pb_add_bytes(m, num, s, strlen(s));
}

int mp__pb_add_msg_take(mp__pb_msg_t *m, uint32_t num, mp__pb_msg_t *sub)
{
    return mp__pb_insert_msg_take(m, m->n, num, sub);
}

int mp__pb_insert_msg_take(mp__pb_msg_t *m, size_t at, uint32_t num, mp__pb_msg_t *sub)
{
    const mp__pb_field_t f = {.num = num, .wire = MP_PB_LEN, .sub = sub, .dirty = 1};

    if (sub == NULL || at > m->n || reserve(m) < 0) {
        mp__pb_msg_free(sub);
        return MP_ENOMEM;
    }
    sub->depth = m->depth + 1;
    memmove(&m->f[at + 1], &m->f[at], (m->n - at) * sizeof *m->f);
    m->f[at] = f;
    m->n++;
    m->dirty = 1;
    return 0;
}

void mp__pb_remove_at(mp__pb_msg_t *m, size_t i)
{
    if (i >= m->n) {
        return;
    }
    field_cleanup(&m->f[i]);
    memmove(&m->f[i], &m->f[i + 1], (m->n - i - 1) * sizeof *m->f);
    m->n--;
    m->dirty = 1;
}

void mp__pb_remove_all(mp__pb_msg_t *m, uint32_t num)
{
    for (size_t i = m->n; i-- > 0;) {
        if (m->f[i].num == num) {
            mp__pb_remove_at(m, i);
        }
    }
}

/* ---- encoding ----------------------------------------------------------------------------- */

/* Whether field f is written as its original bytes. */
static int field_verbatim(const mp__pb_field_t *f, int reencode)
{
    return f->raw != NULL && !f->dirty && (f->sub == NULL ? !reencode : f->sub->clean);
}

/* Size pass: fills enc_bytes and clean of m and every parsed sub-message. -1 on overflow. */
static int msg_size(mp__pb_msg_t *m, int reencode)
{
    size_t total = 0;

    m->clean = !m->dirty && !reencode;
    for (size_t i = 0; i < m->n; i++) {
        mp__pb_field_t *f = &m->f[i];
        size_t k, body = 0;

        if (f->sub != NULL) {
            if (msg_size(f->sub, reencode) < 0) {
                return -1;
            }
            m->clean &= f->sub->clean;
        }
        m->clean &= !f->dirty;
        if (field_verbatim(f, reencode)) {
            k = f->raw_len;
        } else {
            k = mp__pb_varint_bytes(((uint64_t)f->num << 3) | f->wire);
            switch (f->wire) {
            case MP_PB_VARINT:
                k += mp__pb_varint_bytes(f->v);
                break;
            case MP_PB_I64:
                k += 8;
                break;
            case MP_PB_I32:
                k += 4;
                break;
            default:
                body = f->sub != NULL ? f->sub->enc_bytes : f->len;
                if (mp__add_size(k + mp__pb_varint_bytes(body), body, &k) != 0) {
                    return -1;
                }
            }
        }
        if (mp__add_size(total, k, &total) != 0) {
            return -1;
        }
    }
    m->enc_bytes = total;
    return 0;
}

static uint8_t *msg_write(const mp__pb_msg_t *m, uint8_t *p, int reencode)
{
    for (size_t i = 0; i < m->n; i++) {
        const mp__pb_field_t *f = &m->f[i];

        if (field_verbatim(f, reencode)) {
            memcpy(p, f->raw, f->raw_len);
            p += f->raw_len;
            continue;
        }
        p += mp__pb_put_varint(p, ((uint64_t)f->num << 3) | f->wire);
        switch (f->wire) {
        case MP_PB_VARINT:
            p += mp__pb_put_varint(p, f->v);
            break;
        case MP_PB_I64:
        case MP_PB_I32:
            for (int b = 0; b < (f->wire == MP_PB_I64 ? 8 : 4); b++) {
                *p++ = (uint8_t)(f->v >> (8 * b));
            }
            break;
        default:
            if (f->sub != NULL) {
                p += mp__pb_put_varint(p, f->sub->enc_bytes);
                p = msg_write(f->sub, p, reencode);
            } else {
                p += mp__pb_put_varint(p, f->len);
                if (f->len) {
                    memcpy(p, f->data, f->len);
                }
                p += f->len;
            }
        }
    }
    return p;
}

int mp__pb_encode(mp__pb_msg_t *m, int reencode, uint8_t **out, size_t *n_bytes, mp_errctx_t *err)
{
    uint8_t *buf, *end;

    *out = NULL;
    *n_bytes = 0;
    MP_RETURN_IF(msg_size(m, reencode) < 0, MP_ETOOBIG, "protobuf message too large to encode");
    buf = malloc(m->enc_bytes ? m->enc_bytes : 1);
    MP_RETURN_IF(buf == NULL, MP_ENOMEM, "out of memory encoding %zu bytes of protobuf",
                 m->enc_bytes);
    end = msg_write(m, buf, reencode);
    if ((size_t)(end - buf) != m->enc_bytes) {
        free(buf);
        return mp__err_set(err, MP_EINTERNAL, "protobuf size pass and write pass disagree");
    }
    *out = buf;
    *n_bytes = m->enc_bytes;
    return 0;
}
