/* dataset.c — evaluation and calibration data: NumPy .npy and .npz files and safetensors.
 *
 * A dataset is an input array x whose first axis is the samples, converted to F32, and
 * optionally class labels y (one per sample), converted to int64. The files are uploads,
 * hostile until validated (RELIABILITY.md item 8), and the order of work keeps every value
 * read from a file away from memory until it has been checked:
 * - .npy: the magic and version, then the header length against MP_NPY_MAX_HEADER_BYTES and
 *   the bytes really there; the header is a Python dict literal, read by a small parser that
 *   knows exactly the three keys descr, fortran_order and shape (anything else is refused, and
 *   nothing is ever evaluated: an object dtype, whose data would be a pickle, is refused by
 *   name); the shape's element and byte counts are computed with overflow checks and must match
 *   the data exactly (neither truncated nor followed by stray bytes). A fortran_order array is
 *   transposed into C order, so a dataset holds what np.load would give.
 * - .npz: a zip archive read from its central directory, never extracted to disk (so member
 *   names are only compared, never used as paths). Every offset and size of the end record,
 *   the zip64 records, the central entries and the local headers is checked against the file
 *   before use; members may not overlap (the overlapping-file zip bomb) and are only stored or
 *   deflated; a deflated member must inflate to exactly its declared size, which is limited
 *   absolutely (MP_DATASET_MAX_BYTES) and relative to its compressed size (MP_ZIP_MAX_RATIO);
 *   every member read has its CRC-32 checked.
 * - safetensors: mp_safetensors_parse's validation, then the tensors x and y.
 * Then x must have a sample axis and finite values, and y one non-negative integer per sample.
 * The dataset owns copies of its values, so the file or buffer can go as soon as it is read.
 */
#include "evaluate_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <zlib.h>

struct mp_dataset {
    const char *format; /* "npy", "npz" or "safetensors" (static) */
    int n_dims;
    int64_t shape[MP_MAX_DIMS];
    int64_t n_samples;
    int64_t sample_elements;
    float *x;
    int64_t *y;        /* NULL without labels */
    int64_t n_classes; /* max(y) + 1; 0 without labels */
};

/* One array as a file holds it, validated: dtype, shape, order and its bytes (borrowed). */
typedef struct arr {
    char what[80]; /* for messages: "x.npy", "the .npy", "tensor 'x'" */
    mp_dtype_t dtype;
    int n_dims;
    int64_t shape[MP_MAX_DIMS];
    int fortran;
    const unsigned char *data;
    size_t n_bytes;
    int64_t n_elements;
} arr_t;

/* Members of a zip archive that may be opened at most; a dataset needs two. */
#define ZIP_MAX_MEMBERS 65535u
/* Below this many bytes a deflated member may expand as much as deflate allows (a small y of
 * zeros compresses far beyond MP_ZIP_MAX_RATIO and is no bomb). */
#define ZIP_RATIO_FREE_BYTES (1u << 20)

static uint16_t le16(const unsigned char *p)
{
    return (uint16_t)(p[0] | (unsigned)p[1] << 8);
}

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)le16(p) | (uint32_t)le16(p + 2) << 16;
}

static uint64_t le64(const unsigned char *p)
{
    return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

const char *mp__dims_text(const int64_t *dims, int n_dims, int numpy, char *buf, size_t cap)
{
    size_t o = (size_t)snprintf(buf, cap, numpy ? "(" : "[");

    for (int i = 0; i < n_dims && o < cap; i++) {
        o += (size_t)snprintf(buf + o, cap - o, "%s%lld", i ? ", " : "", (long long)dims[i]);
    }
    if (o < cap) {
        snprintf(buf + o, cap - o, !numpy ? "]" : n_dims == 1 ? ",)" : ")");
    }
    return buf;
}

/* "(3, 4)", as NumPy writes a shape. */
static const char *shape_text(const int64_t *shape, int n_dims, char *buf, size_t cap)
{
    return mp__dims_text(shape, n_dims, 1, buf, cap);
}

/* ---- .npy ---------------------------------------------------------------------------------- */

/* The dtypes a dataset may hold, in NumPy's spelling (little-endian; '|' for one byte). */
static const struct {
    const char *descr;
    mp_dtype_t dt;
} npy_dtypes[] = {
    {"<f4", MP_DT_F32}, {"<f8", MP_DT_F64}, {"<f2", MP_DT_F16}, {"|u1", MP_DT_U8},
    {"|i1", MP_DT_I8},  {"<i2", MP_DT_I16}, {"<i4", MP_DT_I32}, {"<i8", MP_DT_I64},
    {"<u2", MP_DT_U16}, {"<u4", MP_DT_U32}, {"<u8", MP_DT_U64},
};

#define NPY_SUPPORTED "<f4 <f8 <f2 |u1 |i1 <i2 <i4 <i8 <u2 <u4 <u8"

/* The header's dict literal, read left to right. */
typedef struct lit {
    const unsigned char *s;
    size_t n;
    size_t i;
    size_t base; /* offset of s[0] in the file, for messages */
    const char *what;
    mp_errctx_t *err;
} lit_t;

static void lit_ws(lit_t *l)
{
    while (l->i < l->n &&
           (l->s[l->i] == ' ' || l->s[l->i] == '\t' || l->s[l->i] == '\n' || l->s[l->i] == '\r')) {
        l->i++;
    }
}

static int MP__PRINTF(2, 3) lit_fail(lit_t *l, const char *fmt, ...)
{
    char detail[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    return mp__err_set(l->err, MP_EFORMAT, "%s: header at byte %zu: %s", l->what, l->base + l->i,
                       detail);
}

/* Expect character c after optional white space. */
static int lit_expect(lit_t *l, char c, const char *where)
{
    lit_ws(l);
    if (l->i >= l->n || l->s[l->i] != (unsigned char)c) {
        return lit_fail(l, "expected '%c' %s", c, where);
    }
    l->i++;
    return 0;
}

/* A quoted string ('…' or "…") into buf; a backslash takes the next character as it is. */
static int lit_string(lit_t *l, char *buf, size_t cap)
{
    size_t o = 0;
    unsigned char q;

    lit_ws(l);
    if (l->i >= l->n || (l->s[l->i] != '\'' && l->s[l->i] != '"')) {
        return lit_fail(l, "expected a quoted string");
    }
    q = l->s[l->i++];
    while (l->i < l->n && l->s[l->i] != q) {
        if (l->s[l->i] == '\\' && l->i + 1 < l->n) {
            l->i++;
        }
        if (o + 1 >= cap) {
            return lit_fail(l, "string longer than %zu characters", cap - 1);
        }
        buf[o++] = (char)l->s[l->i++];
    }
    if (l->i >= l->n) {
        return lit_fail(l, "string not closed");
    }
    l->i++;
    buf[o] = '\0';
    return 0;
}

static int lit_word(lit_t *l, const char *w)
{
    size_t k = strlen(w);

    if (l->n - l->i >= k && memcmp(l->s + l->i, w, k) == 0) {
        l->i += k;
        return 1;
    }
    return 0;
}

/* descr: one of npy_dtypes. An object dtype is refused by name: its data is a pickle. */
static int npy_descr(lit_t *l, arr_t *a)
{
    char d[64];
    size_t at;
    int rc;

    lit_ws(l);
    at = l->base + l->i;
    if (l->i < l->n && l->s[l->i] == '[') {
        return mp__err_set(l->err, MP_EUNSUPPORTED,
                           "%s: header at byte %zu: a structured dtype (record array) is not "
                           "supported; save plain numeric arrays",
                           l->what, at);
    }
    if ((rc = lit_string(l, d, sizeof d)) != 0) {
        return rc;
    }
    if (d[0] == '=') {
        d[0] = '<'; /* native order: little-endian on every machine modelpress runs on */
    }
    if ((d[0] == '<' || d[0] == '>') && d[1] != '\0' && strcmp(d + 2, "1") == 0) {
        d[0] = '|'; /* byte order means nothing for one byte */
    }
    for (size_t i = 0; i < sizeof npy_dtypes / sizeof *npy_dtypes; i++) {
        if (strcmp(d, npy_dtypes[i].descr) == 0) {
            a->dtype = npy_dtypes[i].dt;
            return 0;
        }
    }
    if (strchr("<>|=", d[0]) != NULL ? d[1] == 'O' : d[0] == 'O') {
        return mp__err_set(l->err, MP_EFORMAT,
                           "%s: header at byte %zu: object dtype '%s' is refused: its data is a "
                           "Python pickle, which modelpress never loads; save a numeric array "
                           "(e.g. x.astype('float32'))",
                           l->what, at, d);
    }
    if (d[0] == '>') {
        return mp__err_set(l->err, MP_EUNSUPPORTED,
                           "%s: header at byte %zu: big-endian dtype '%s' is not supported; save "
                           "it little-endian (x.astype('<%s'))",
                           l->what, at, d, d + 1);
    }
    return mp__err_set(
        l->err, MP_EUNSUPPORTED,
        "%s: header at byte %zu: dtype '%s' is not supported (supported: " NPY_SUPPORTED ")",
        l->what, at, d);
}

/* fortran_order: True or False. */
static int npy_fortran(lit_t *l, arr_t *a)
{
    lit_ws(l);
    if (lit_word(l, "True")) {
        a->fortran = 1;
    } else if (lit_word(l, "False")) {
        a->fortran = 0;
    } else {
        return lit_fail(l, "fortran_order must be True or False");
    }
    return 0;
}

/* shape: a tuple of non-negative integers, "()", "(3,)" or "(3, 4)". */
static int npy_shape(lit_t *l, arr_t *a)
{
    int rc;

    if ((rc = lit_expect(l, '(', "to open the shape tuple")) != 0) {
        return rc;
    }
    a->n_dims = 0;
    for (;;) {
        uint64_t v = 0;
        size_t start;

        lit_ws(l);
        if (l->i < l->n && l->s[l->i] == ')') {
            l->i++;
            return 0;
        }
        if (a->n_dims > 0) {
            if (l->i >= l->n || l->s[l->i] != ',') {
                return lit_fail(l, "expected ',' or ')' in the shape");
            }
            l->i++;
            lit_ws(l);
            if (l->i < l->n && l->s[l->i] == ')') {
                l->i++;
                return 0;
            }
        }
        start = l->base + l->i;
        if (l->i < l->n && l->s[l->i] == '-') {
            return mp__err_set(l->err, MP_EFORMAT, "%s: header at byte %zu: shape[%d] is negative",
                               l->what, start, a->n_dims);
        }
        if (l->i >= l->n || l->s[l->i] < '0' || l->s[l->i] > '9') {
            return lit_fail(l, "expected an integer in the shape");
        }
        while (l->i < l->n && l->s[l->i] >= '0' && l->s[l->i] <= '9') {
            if (__builtin_mul_overflow(v, 10u, &v) ||
                __builtin_add_overflow(v, (uint64_t)(l->s[l->i] - '0'), &v) ||
                v > (uint64_t)INT64_MAX) {
                return mp__err_set(l->err, MP_EFORMAT,
                                   "%s: header at byte %zu: shape[%d] overflows 64 bits", l->what,
                                   start, a->n_dims);
            }
            l->i++;
        }
        if (a->n_dims == MP_MAX_DIMS) {
            return mp__err_set(l->err, MP_EUNSUPPORTED,
                               "%s: header at byte %zu: more than %d dimensions", l->what, start,
                               MP_MAX_DIMS);
        }
        a->shape[a->n_dims++] = (int64_t)v;
    }
}

/* The header dict: exactly the keys descr, fortran_order and shape, each once. */
static int npy_dict(lit_t *l, arr_t *a)
{
    static const char *const keys[3] = {"descr", "fortran_order", "shape"};
    mp_errctx_t *err = l->err;
    int seen[3] = {0, 0, 0};
    char key[32];
    int rc;

    if ((rc = lit_expect(l, '{', "at the start of the header dict")) != 0) {
        return rc;
    }
    for (;;) {
        int k = -1;
        size_t at;

        lit_ws(l);
        if (l->i < l->n && l->s[l->i] == '}') {
            l->i++;
            break;
        }
        at = l->base + l->i;
        if ((rc = lit_string(l, key, sizeof key)) != 0) {
            return rc;
        }
        for (int i = 0; i < 3; i++) {
            k = strcmp(key, keys[i]) == 0 ? i : k;
        }
        MP_RETURN_IF(k < 0, MP_EFORMAT,
                     "%s: header at byte %zu: key '%s' is not allowed (only descr, "
                     "fortran_order and shape)",
                     a->what, at, key);
        MP_RETURN_IF(seen[k], MP_EFORMAT, "%s: header at byte %zu: key '%s' appears twice", a->what,
                     at, key);
        seen[k] = 1;
        if ((rc = lit_expect(l, ':', "after a key")) != 0) {
            return rc;
        }
        rc = k == 0 ? npy_descr(l, a) : k == 1 ? npy_fortran(l, a) : npy_shape(l, a);
        if (rc != 0) {
            return rc;
        }
        lit_ws(l);
        if (l->i < l->n && l->s[l->i] == ',') {
            l->i++;
        } else if (l->i >= l->n || l->s[l->i] != '}') {
            return lit_fail(l, "expected ',' or '}' after the value of '%s'", key);
        }
    }
    lit_ws(l);
    if (l->i != l->n) {
        return lit_fail(l, "unexpected text after the header dict");
    }
    for (int i = 0; i < 3; i++) {
        MP_RETURN_IF(!seen[i], MP_EFORMAT, "%s: header has no '%s' key", a->what, keys[i]);
    }
    return 0;
}

/* Read a .npy image (b, n bytes) into *a; a->what names it in messages. */
static int npy_parse(const unsigned char *b, size_t n, arr_t *a, mp_errctx_t *err)
{
    char sb[200];
    size_t prefix, hlen, need;
    lit_t l;
    int rc;

    MP_RETURN_IF(n < 10 || memcmp(b, "\x93NUMPY", 6) != 0, MP_EFORMAT, "%s: %s", a->what,
                 n < 10 ? "shorter than the 10-byte .npy preamble"
                        : "does not start with the .npy magic \\x93NUMPY");
    MP_RETURN_IF(b[6] < 1 || b[6] > 3 || b[7] != 0, MP_EUNSUPPORTED,
                 "%s: .npy format version %u.%u is not supported (1.0, 2.0 and 3.0 are)", a->what,
                 b[6], b[7]);
    if (b[6] == 1) {
        prefix = 10;
        hlen = le16(b + 8);
    } else {
        MP_RETURN_IF(n < 12, MP_EFORMAT, "%s: shorter than the 12-byte .npy %u.0 preamble", a->what,
                     b[6]);
        prefix = 12;
        hlen = le32(b + 8);
    }
    MP_RETURN_IF(hlen > MP_NPY_MAX_HEADER_BYTES, MP_EFORMAT,
                 "%s: header length %zu B (bytes 8-%zu) is above the limit of %u B", a->what, hlen,
                 prefix - 1, (unsigned)MP_NPY_MAX_HEADER_BYTES);
    MP_RETURN_IF(hlen > n - prefix, MP_EFORMAT,
                 "%s: header length %zu B (bytes 8-%zu) runs past the end: the header would end "
                 "at byte %zu but there are %zu bytes",
                 a->what, hlen, prefix - 1, prefix + hlen, n);
    for (size_t i = prefix; i < prefix + hlen; i++) {
        /* The dict of a numeric array is ASCII; anything else cannot be one we read. */
        MP_RETURN_IF(b[i] >= 0x7F || (b[i] < 0x20 && b[i] != '\n' && b[i] != '\t' && b[i] != '\r'),
                     MP_EFORMAT, "%s: header byte %zu is 0x%02x, not printable ASCII", a->what, i,
                     b[i]);
    }
    l = (lit_t){.s = b + prefix, .n = hlen, .base = prefix, .what = a->what, .err = err};
    if ((rc = npy_dict(&l, a)) != 0) {
        return rc;
    }
    MP_RETURN_IF(mp__shape_bytes(a->dtype, a->n_dims, a->shape, &a->n_elements, &need) != 0,
                 MP_EFORMAT, "%s: shape %s of %s overflows 64 bits (elements or bytes)", a->what,
                 shape_text(a->shape, a->n_dims, sb, sizeof sb), mp_dtype_name(a->dtype));
    MP_RETURN_IF(n - prefix - hlen < need, MP_EFORMAT,
                 "%s: data is truncated: shape %s of %s needs %zu bytes from byte %zu, there are "
                 "%zu",
                 a->what, shape_text(a->shape, a->n_dims, sb, sizeof sb), mp_dtype_name(a->dtype),
                 need, prefix + hlen, n - prefix - hlen);
    MP_RETURN_IF(n - prefix - hlen > need, MP_EFORMAT,
                 "%s: %zu stray bytes after the data, which ends at byte %zu", a->what,
                 n - prefix - hlen - need, prefix + hlen + need);
    a->data = b + prefix + hlen;
    a->n_bytes = need;
    return 0;
}

/* ---- .npz (zip) ---------------------------------------------------------------------------- */

typedef struct zmember {
    const unsigned char *name;
    size_t name_len;
    uint16_t flags;
    uint16_t method;
    uint32_t crc;
    uint64_t csize, usize;
    uint64_t local_off;
    uint64_t data_off;
    uint64_t cd_off; /* where its central entry is, for messages */
} zmember_t;

typedef struct zip {
    const unsigned char *b;
    size_t n;
    zmember_t *m;
    size_t n_members;
    uint64_t cd_off; /* start of the central directory: every member's data ends before it */
    mp_errctx_t *err;
} zip_t;

/* A member's name fit for a message: printable ASCII kept, anything else as '?', cut at 60. */
static const char *zname(const zmember_t *m, char *buf, size_t cap)
{
    size_t o = 0;

    for (size_t i = 0; i < m->name_len && o + 4 < cap; i++) {
        if (o >= 60) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        buf[o++] = m->name[i] >= 0x20 && m->name[i] < 0x7F ? (char)m->name[i] : '?';
    }
    buf[o] = '\0';
    return buf;
}

/* The end of central directory record (and the zip64 one when the classic fields overflow):
 * fills z->cd_off and the entry count and size of the central directory. */
static int zip_end(zip_t *z, uint64_t *n_entries, uint64_t *cd_size)
{
    mp_errctx_t *err = z->err;
    const unsigned char *b = z->b;
    size_t n = z->n, eocd = SIZE_MAX, limit;

    /* The record is 22 bytes plus a comment of up to 65535, and must end the file exactly. */
    for (size_t i = n >= 22 ? n - 22 : 0; n >= 22; i--) {
        if (le32(b + i) == 0x06054b50u && i + 22 + le16(b + i + 20) == n) {
            eocd = i;
            break;
        }
        if (i == 0 || n - 22 - i >= 65535) {
            break;
        }
    }
    MP_RETURN_IF(eocd == SIZE_MAX, MP_EFORMAT,
                 ".npz: no end of central directory record at the end of the file: not a "
                 "complete zip archive (truncated?)");
    MP_RETURN_IF(le16(b + eocd + 4) != 0 || le16(b + eocd + 6) != 0 ||
                     le16(b + eocd + 8) != le16(b + eocd + 10),
                 MP_EUNSUPPORTED, ".npz: a zip archive split over several disks is not supported");
    *n_entries = le16(b + eocd + 10);
    *cd_size = le32(b + eocd + 12);
    z->cd_off = le32(b + eocd + 16);
    limit = eocd;
    if (*n_entries == 0xFFFF || *cd_size == 0xFFFFFFFFu || z->cd_off == 0xFFFFFFFFu) {
        size_t loc = eocd >= 20 ? eocd - 20 : SIZE_MAX;
        uint64_t z64;

        MP_RETURN_IF(loc == SIZE_MAX || le32(b + loc) != 0x07064b50u, MP_EFORMAT,
                     ".npz: the end record at byte %zu needs a zip64 locator, which is missing",
                     eocd);
        z64 = le64(b + loc + 8);
        MP_RETURN_IF(z64 > loc || loc - z64 < 56 || le32(b + z64) != 0x06064b50u, MP_EFORMAT,
                     ".npz: the zip64 locator at byte %zu points at byte %llu, where no zip64 end "
                     "record is",
                     loc, (unsigned long long)z64);
        MP_RETURN_IF(le32(b + z64 + 16) != 0 || le32(b + z64 + 20) != 0 ||
                         le64(b + z64 + 24) != le64(b + z64 + 32),
                     MP_EUNSUPPORTED,
                     ".npz: a zip archive split over several disks is not supported");
        *n_entries = le64(b + z64 + 32);
        *cd_size = le64(b + z64 + 40);
        z->cd_off = le64(b + z64 + 48);
        limit = (size_t)z64;
    }
    MP_RETURN_IF(z->cd_off > limit || *cd_size > limit - z->cd_off, MP_EFORMAT,
                 ".npz: the central directory [%llu, +%llu bytes) runs past its end record at "
                 "byte %zu",
                 (unsigned long long)z->cd_off, (unsigned long long)*cd_size, limit);
    MP_RETURN_IF(*n_entries > *cd_size / 46, MP_EFORMAT,
                 ".npz: %llu members cannot fit in a central directory of %llu bytes",
                 (unsigned long long)*n_entries, (unsigned long long)*cd_size);
    MP_RETURN_IF(*n_entries > ZIP_MAX_MEMBERS, MP_EUNSUPPORTED,
                 ".npz: %llu members, more than the %u a dataset may have",
                 (unsigned long long)*n_entries, ZIP_MAX_MEMBERS);
    return 0;
}

/* The zip64 extra field of a central entry: the 8-byte values of the fields that hold
 * 0xFFFFFFFF, in the order usize, csize, offset. */
static int zip64_extra(zip_t *z, zmember_t *m, const unsigned char *x, size_t n_x)
{
    mp_errctx_t *err = z->err;
    char nb[72];

    while (n_x >= 4) {
        size_t id = le16(x), len = le16(x + 2);

        MP_RETURN_IF(len > n_x - 4, MP_EFORMAT,
                     ".npz: member '%s' (central entry at byte %llu): an extra field runs past "
                     "its entry",
                     zname(m, nb, sizeof nb), (unsigned long long)m->cd_off);
        if (id == 0x0001) {
            uint64_t *fields[3] = {&m->usize, &m->csize, &m->local_off};
            size_t at = 4;

            for (int i = 0; i < 3; i++) {
                if (*fields[i] != 0xFFFFFFFFu) {
                    continue;
                }
                MP_RETURN_IF(at + 8 > 4 + len, MP_EFORMAT,
                             ".npz: member '%s' (central entry at byte %llu): the zip64 field "
                             "is too short",
                             zname(m, nb, sizeof nb), (unsigned long long)m->cd_off);
                *fields[i] = le64(x + at);
                at += 8;
            }
        }
        x += 4 + len;
        n_x -= 4 + len;
    }
    return 0;
}

/* One central directory entry at *at (advanced past it) into m, checked. */
static int zip_entry(zip_t *z, uint64_t *at, uint64_t cd_end, zmember_t *m)
{
    mp_errctx_t *err = z->err;
    const unsigned char *b = z->b, *p = b + *at;
    size_t name_len, extra_len, comment_len;
    char nb[72];
    int rc;

    MP_RETURN_IF(cd_end - *at < 46 || le32(p) != 0x02014b50u, MP_EFORMAT,
                 ".npz: no central directory entry at byte %llu", (unsigned long long)*at);
    name_len = le16(p + 28);
    extra_len = le16(p + 30);
    comment_len = le16(p + 32);
    MP_RETURN_IF(46 + name_len + extra_len + comment_len > cd_end - *at, MP_EFORMAT,
                 ".npz: the central directory entry at byte %llu runs past the directory's end",
                 (unsigned long long)*at);
    *m = (zmember_t){.name = p + 46,
                     .name_len = name_len,
                     .flags = le16(p + 8),
                     .method = le16(p + 10),
                     .crc = le32(p + 16),
                     .csize = le32(p + 20),
                     .usize = le32(p + 24),
                     .local_off = le32(p + 42),
                     .cd_off = *at};
    if ((rc = zip64_extra(z, m, p + 46 + name_len, extra_len)) != 0) {
        return rc;
    }
    *at += 46 + name_len + extra_len + comment_len;
    MP_RETURN_IF(m->flags & 0x41u, MP_EUNSUPPORTED, ".npz: member '%s' is encrypted",
                 zname(m, nb, sizeof nb));
    MP_RETURN_IF(m->method != 0 && m->method != 8, MP_EUNSUPPORTED,
                 ".npz: member '%s' uses compression method %u; only stored (0) and deflated (8) "
                 "are supported",
                 zname(m, nb, sizeof nb), m->method);
    MP_RETURN_IF(m->method == 0 && m->csize != m->usize, MP_EFORMAT,
                 ".npz: stored member '%s' declares %llu bytes compressed but %llu uncompressed",
                 zname(m, nb, sizeof nb), (unsigned long long)m->csize,
                 (unsigned long long)m->usize);
    /* The local header repeats the name; the data follows it and ends before the directory. */
    MP_RETURN_IF(m->local_off > z->cd_off || z->cd_off - m->local_off < 30 ||
                     le32(b + m->local_off) != 0x04034b50u,
                 MP_EFORMAT, ".npz: member '%s': no local header at byte %llu",
                 zname(m, nb, sizeof nb), (unsigned long long)m->local_off);
    p = b + m->local_off;
    m->data_off = m->local_off + 30 + le16(p + 26) + le16(p + 28);
    MP_RETURN_IF(m->data_off > z->cd_off || m->csize > z->cd_off - m->data_off, MP_EFORMAT,
                 ".npz: member '%s': its %llu bytes from byte %llu run past the start of the "
                 "central directory at byte %llu",
                 zname(m, nb, sizeof nb), (unsigned long long)m->csize,
                 (unsigned long long)m->data_off, (unsigned long long)z->cd_off);
    MP_RETURN_IF(le16(p + 26) != name_len || memcmp(p + 30, m->name, name_len) != 0, MP_EFORMAT,
                 ".npz: member '%s': the local header at byte %llu names another file",
                 zname(m, nb, sizeof nb), (unsigned long long)m->local_off);
    MP_RETURN_IF(le16(p + 8) != m->method, MP_EFORMAT,
                 ".npz: member '%s': the local header at byte %llu gives compression method %u, "
                 "the central directory %u",
                 zname(m, nb, sizeof nb), (unsigned long long)m->local_off, le16(p + 8), m->method);
    return 0;
}

static int cmp_local_off(const void *a, const void *b)
{
    const zmember_t *x = a, *y = b;

    return x->local_off < y->local_off ? -1 : x->local_off > y->local_off;
}

/* Read and check the whole central directory into z->m. */
static int zip_open(zip_t *z)
{
    mp_errctx_t *err = z->err;
    uint64_t n_entries = 0, cd_size = 0, at;
    char nb[72], nb2[72];
    int rc;

    if ((rc = zip_end(z, &n_entries, &cd_size)) != 0) {
        return rc;
    }
    z->m = calloc(n_entries + 1, sizeof *z->m);
    MP_RETURN_IF(z->m == NULL, MP_ENOMEM, ".npz: out of memory for %llu members",
                 (unsigned long long)n_entries);
    at = z->cd_off;
    for (z->n_members = 0; z->n_members < n_entries; z->n_members++) {
        if ((rc = zip_entry(z, &at, z->cd_off + cd_size, &z->m[z->n_members])) != 0) {
            return rc;
        }
    }
    /* Members may not share bytes: overlapping members are how the worst zip bombs expand. */
    qsort(z->m, z->n_members, sizeof *z->m, cmp_local_off);
    for (size_t i = 1; i < z->n_members; i++) {
        const zmember_t *a = &z->m[i - 1], *b = &z->m[i];

        MP_RETURN_IF(a->data_off + a->csize > b->local_off, MP_EFORMAT,
                     ".npz: member '%s' (bytes %llu-%llu) overlaps member '%s' at byte %llu",
                     zname(a, nb, sizeof nb), (unsigned long long)a->local_off,
                     (unsigned long long)(a->data_off + a->csize), zname(b, nb2, sizeof nb2),
                     (unsigned long long)b->local_off);
    }
    return 0;
}

/* The member called name, or NULL; two of that name are an error (*rc). */
static const zmember_t *zip_find(zip_t *z, const char *name, int *rc)
{
    mp_errctx_t *err = z->err;
    const zmember_t *found = NULL;
    size_t k = strlen(name);

    *rc = 0;
    for (size_t i = 0; i < z->n_members; i++) {
        if (z->m[i].name_len == k && memcmp(z->m[i].name, name, k) == 0) {
            if (found != NULL) {
                *rc = mp__err_set(err, MP_EFORMAT, ".npz: two members are named '%s'", name);
                return NULL;
            }
            found = &z->m[i];
        }
    }
    return found;
}

static uint32_t crc32_of(const unsigned char *p, uint64_t n)
{
    uLong crc = crc32(0L, Z_NULL, 0);

    while (n > 0) {
        uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
        crc = crc32(crc, p, k);
        p += k;
        n -= k;
    }
    return (uint32_t)crc;
}

/* Inflate a raw deflate member into out (m->usize bytes, plus one byte of room that only a
 * stream longer than declared can reach). */
static int zip_inflate(zip_t *z, const zmember_t *m, unsigned char *out)
{
    mp_errctx_t *err = z->err;
    const unsigned char *in = z->b + m->data_off;
    uint64_t in_left = m->csize, out_left = m->usize + 1;
    z_stream zs;
    char nb[72];
    int zr, rc = 0;

    memset(&zs, 0, sizeof zs);
    MP_RETURN_IF(inflateInit2(&zs, -MAX_WBITS) != Z_OK, MP_ENOMEM,
                 ".npz: out of memory to inflate member '%s'", zname(m, nb, sizeof nb));
    for (;;) {
        if (zs.avail_in == 0 && in_left > 0) {
            zs.next_in = (Bytef *)in;
            zs.avail_in = in_left > (1u << 30) ? (1u << 30) : (uInt)in_left;
            in += zs.avail_in;
            in_left -= zs.avail_in;
        }
        if (zs.avail_out == 0 && out_left > 0) {
            zs.next_out = out;
            zs.avail_out = out_left > (1u << 30) ? (1u << 30) : (uInt)out_left;
            out += zs.avail_out;
            out_left -= zs.avail_out;
        }
        zr = inflate(&zs, Z_NO_FLUSH);
        MP_GOTO_IF(zs.total_out > m->usize, MP_EFORMAT,
                   ".npz: member '%s' inflates to more than the %llu bytes it declares",
                   zname(m, nb, sizeof nb), (unsigned long long)m->usize);
        if (zr == Z_STREAM_END) {
            break;
        }
        MP_GOTO_IF(zr == Z_MEM_ERROR, MP_ENOMEM, ".npz: out of memory to inflate member '%s'",
                   zname(m, nb, sizeof nb));
        MP_GOTO_IF(zr != Z_OK && zr != Z_BUF_ERROR, MP_EFORMAT,
                   ".npz: member '%s': corrupt deflate data after %lu compressed bytes: %s",
                   zname(m, nb, sizeof nb), (unsigned long)zs.total_in,
                   zs.msg != NULL ? zs.msg : "invalid stream");
        MP_GOTO_IF(zs.avail_in == 0 && in_left == 0, MP_EFORMAT,
                   ".npz: member '%s': the deflate stream is cut off after its %llu compressed "
                   "bytes",
                   zname(m, nb, sizeof nb), (unsigned long long)m->csize);
    }
    MP_GOTO_IF(zs.total_out != m->usize, MP_EFORMAT,
               ".npz: member '%s' inflates to %lu bytes, fewer than the %llu it declares",
               zname(m, nb, sizeof nb), (unsigned long)zs.total_out, (unsigned long long)m->usize);
    MP_GOTO_IF(zs.total_in != m->csize, MP_EFORMAT,
               ".npz: member '%s': the deflate stream ends after %lu of its %llu compressed bytes",
               zname(m, nb, sizeof nb), (unsigned long)zs.total_in, (unsigned long long)m->csize);
out:
    inflateEnd(&zs);
    return rc;
}

/* The bytes of member m: borrowed from the archive when stored (*owned NULL), else inflated
 * into *owned. Limits apply before anything is allocated; the CRC-32 is checked either way. */
static int zip_read(zip_t *z, const zmember_t *m, const unsigned char **data, unsigned char **owned)
{
    mp_errctx_t *err = z->err;
    char nb[72];
    int rc = 0;

    *owned = NULL;
    MP_RETURN_IF(m->usize > MP_DATASET_MAX_BYTES, MP_ETOOBIG,
                 ".npz: member '%s' is %llu bytes uncompressed, above the limit of %llu",
                 zname(m, nb, sizeof nb), (unsigned long long)m->usize,
                 (unsigned long long)MP_DATASET_MAX_BYTES);
    if (m->method == 0) {
        *data = z->b + m->data_off;
    } else {
        MP_RETURN_IF(m->usize > ZIP_RATIO_FREE_BYTES && m->usize / MP_ZIP_MAX_RATIO > m->csize,
                     MP_ETOOBIG,
                     ".npz: member '%s' would expand %llu bytes to %llu, more than %u times: "
                     "refused as a zip bomb",
                     zname(m, nb, sizeof nb), (unsigned long long)m->csize,
                     (unsigned long long)m->usize, (unsigned)MP_ZIP_MAX_RATIO);
        *owned = malloc(m->usize + 1);
        MP_RETURN_IF(*owned == NULL, MP_ENOMEM, ".npz: out of memory for member '%s' (%llu bytes)",
                     zname(m, nb, sizeof nb), (unsigned long long)m->usize);
        if ((rc = zip_inflate(z, m, *owned)) != 0) {
            goto out;
        }
        *data = *owned;
    }
    MP_GOTO_IF(crc32_of(*data, m->usize) != m->crc, MP_EFORMAT,
               ".npz: member '%s': CRC-32 mismatch (the data is corrupt)", zname(m, nb, sizeof nb));
out:
    if (rc != 0) {
        free(*owned);
        *owned = NULL;
    }
    return rc;
}

/* Names of the members, for the message that says x.npy is missing. */
static void zip_list(const zip_t *z, char *buf, size_t cap)
{
    size_t o = 0;
    char nb[72];

    buf[0] = '\0';
    for (size_t i = 0; i < z->n_members && o + 8 < cap; i++) {
        int w = snprintf(buf + o, cap - o, "%s%s", i ? ", " : "", zname(&z->m[i], nb, sizeof nb));
        o = w < 0 || (size_t)w >= cap - o ? cap : o + (size_t)w;
    }
    if (z->n_members == 0) {
        snprintf(buf, cap, "no members");
    }
}

/* ---- the dataset --------------------------------------------------------------------------- */

static float f16_value(uint16_t h)
{
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    uint32_t bits;
    float f;

    if (exp == 0) {
        f = (float)man * 0x1p-24f; /* zero or subnormal, exact */
        return sign ? -f : f;
    }
    bits = sign | (exp == 31 ? 0x7f800000u : (exp + 112u) << 23) | man << 13;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* Element i of a numeric array as a double (exact for every dtype but 64-bit integers
 * beyond 2^53, which as inputs become the nearest float anyway). */
static double elem_f64(const unsigned char *p, mp_dtype_t dt)
{
    union {
        float f;
        double d;
        uint16_t u16;
        int16_t i16;
        uint32_t u32;
        int32_t i32;
        uint64_t u64;
        int64_t i64;
    } v;

    memcpy(&v, p, mp_dtype_size(dt));
    switch (dt) {
    case MP_DT_F32:
        return v.f;
    case MP_DT_F64:
        return v.d;
    case MP_DT_F16:
        return f16_value(v.u16);
    case MP_DT_BF16:
        v.u32 = (uint32_t)v.u16 << 16;
        return v.f;
    case MP_DT_I8:
        return (int8_t)p[0];
    case MP_DT_U8:
    case MP_DT_BOOL:
        return p[0];
    case MP_DT_I16:
        return v.i16;
    case MP_DT_U16:
        return v.u16;
    case MP_DT_I32:
        return v.i32;
    case MP_DT_U32:
        return v.u32;
    case MP_DT_I64:
        return (double)v.i64;
    default:
        return (double)v.u64;
    }
}

/* Walks the elements of an array in C order and gives, for each, its position in the file:
 * the same in C order, and with the first axis fastest in Fortran order. */
typedef struct order {
    int n_dims;
    int64_t shape[MP_MAX_DIMS];
    int64_t idx[MP_MAX_DIMS];
    uint64_t stride[MP_MAX_DIMS];
    uint64_t pos;
} order_t;

static void order_init(order_t *o, const arr_t *a)
{
    uint64_t s = 1;

    memset(o, 0, sizeof *o);
    o->n_dims = a->fortran ? a->n_dims : 0; /* C order: pos simply counts */
    for (int k = 0; k < o->n_dims; k++) {
        o->shape[k] = a->shape[k];
        o->stride[k] = s;
        s *= (uint64_t)a->shape[k]; /* no overflow: the element count was checked */
    }
}

static uint64_t order_next(order_t *o)
{
    uint64_t here = o->pos;

    if (o->n_dims == 0) {
        o->pos++;
        return here;
    }
    for (int k = o->n_dims - 1; k >= 0; k--) {
        o->pos += o->stride[k];
        if (++o->idx[k] < o->shape[k]) {
            break;
        }
        o->pos -= o->stride[k] * (uint64_t)o->shape[k];
        o->idx[k] = 0;
    }
    return here;
}

static int set_x(mp_dataset_t *ds, const arr_t *a, mp_errctx_t *err)
{
    char sb[200];
    size_t esize = mp_dtype_size(a->dtype), f32_bytes;
    order_t o;

    MP_RETURN_IF(a->n_dims < 1 || a->shape[0] < 1, MP_EFORMAT,
                 "%s: x has shape %s; its first axis counts the samples and needs at least one",
                 a->what, shape_text(a->shape, a->n_dims, sb, sizeof sb));
    MP_RETURN_IF(a->n_elements == 0, MP_EFORMAT, "%s: x has shape %s: its samples hold no values",
                 a->what, shape_text(a->shape, a->n_dims, sb, sizeof sb));
    MP_RETURN_IF(a->dtype == MP_DT_BOOL, MP_EUNSUPPORTED, "%s: x is boolean; give numbers",
                 a->what);
    MP_RETURN_IF(mp__mul_size((size_t)a->n_elements, sizeof(float), &f32_bytes) != 0 ||
                     f32_bytes > MP_DATASET_MAX_BYTES,
                 MP_ETOOBIG,
                 "%s: x has %lld values, %llu bytes as float32, above the limit of %llu", a->what,
                 (long long)a->n_elements, (unsigned long long)a->n_elements * 4ull,
                 (unsigned long long)MP_DATASET_MAX_BYTES);
    ds->x = malloc(f32_bytes);
    MP_RETURN_IF(ds->x == NULL, MP_ENOMEM, "%s: out of memory for x (%zu bytes)", a->what,
                 f32_bytes);
    ds->n_dims = a->n_dims;
    memcpy(ds->shape, a->shape, sizeof ds->shape);
    ds->n_samples = a->shape[0];
    ds->sample_elements = a->n_elements / a->shape[0];
    order_init(&o, a);
    for (int64_t i = 0; i < a->n_elements; i++) {
        double v = elem_f64(a->data + order_next(&o) * esize, a->dtype);

        ds->x[i] = (float)v;
        MP_RETURN_IF(!isfinite(ds->x[i]), MP_EFORMAT,
                     "%s: x[%lld] (sample %lld, value %lld) is %s; inputs must be finite float32 "
                     "values",
                     a->what, (long long)i, (long long)(i / ds->sample_elements),
                     (long long)(i % ds->sample_elements),
                     isnan(v)   ? "NaN"
                     : isinf(v) ? "infinite"
                                : "beyond the float32 range");
    }
    return 0;
}

static int set_y(mp_dataset_t *ds, const arr_t *a, mp_errctx_t *err)
{
    char sb[200];
    size_t esize = mp_dtype_size(a->dtype);

    MP_RETURN_IF(mp_dtype_is_float(a->dtype) || a->dtype == MP_DT_BOOL, MP_EFORMAT,
                 "%s: y is %s; labels are integer class indices", a->what, mp_dtype_name(a->dtype));
    MP_RETURN_IF(a->n_dims < 1 || a->n_dims > 2 || (a->n_dims == 2 && a->shape[1] != 1) ||
                     a->shape[0] != ds->n_samples,
                 MP_EFORMAT, "%s: y has shape %s; with %lld samples in x it must be (%lld,)",
                 a->what, shape_text(a->shape, a->n_dims, sb, sizeof sb), (long long)ds->n_samples,
                 (long long)ds->n_samples);
    ds->y = malloc((size_t)ds->n_samples * sizeof *ds->y);
    MP_RETURN_IF(ds->y == NULL, MP_ENOMEM, "%s: out of memory for y", a->what);
    for (int64_t i = 0; i < ds->n_samples; i++) {
        const unsigned char *p = a->data + (size_t)i * esize;
        int64_t v;

        if (a->dtype == MP_DT_U64 || a->dtype == MP_DT_I64) {
            memcpy(&v, p, 8); /* a U64 at or above 2^63 reads as negative: refused below */
        } else {
            v = (int64_t)elem_f64(p, a->dtype);
        }
        MP_RETURN_IF(v < 0 && a->dtype == MP_DT_U64, MP_EFORMAT,
                     "%s: y[%lld] is %llu, not a class index", a->what, (long long)i,
                     (unsigned long long)v);
        MP_RETURN_IF(v < 0, MP_EFORMAT, "%s: y[%lld] is %lld; labels are class indices >= 0",
                     a->what, (long long)i, (long long)v);
        MP_RETURN_IF(v > MP_DATASET_MAX_LABEL, MP_EFORMAT,
                     "%s: y[%lld] is %lld, not a class index (at most %lld)", a->what, (long long)i,
                     (long long)v, (long long)MP_DATASET_MAX_LABEL);
        ds->y[i] = v;
        ds->n_classes = v >= ds->n_classes ? v + 1 : ds->n_classes;
    }
    return 0;
}

static mp_dataset_t *dataset_new(const char *format)
{
    mp_dataset_t *ds = calloc(1, sizeof *ds);

    if (ds != NULL) {
        ds->format = format;
    }
    return ds;
}

void mp_dataset_free(mp_dataset_t *ds)
{
    if (ds == NULL) {
        return;
    }
    free(ds->x);
    free(ds->y);
    free(ds);
}

/* x, and y when there is one, into a new dataset. */
static int build(const char *format, const arr_t *x, const arr_t *y, mp_dataset_t **out,
                 mp_errctx_t *err)
{
    mp_dataset_t *ds = dataset_new(format);
    int rc;

    MP_RETURN_IF(ds == NULL, MP_ENOMEM, "out of memory for a dataset");
    rc = set_x(ds, x, err);
    if (rc == 0 && y != NULL) {
        rc = set_y(ds, y, err);
    }
    if (rc != 0) {
        mp_dataset_free(ds);
        return rc;
    }
    *out = ds;
    return 0;
}

static int parse_npz(const unsigned char *b, size_t n, mp_dataset_t **out, mp_errctx_t *err)
{
    static const char *const names[2] = {"x.npy", "y.npy"};
    zip_t z = {.b = b, .n = n, .err = err};
    unsigned char *owned[2] = {NULL, NULL};
    arr_t a[2];
    const zmember_t *m[2];
    char list[300];
    int rc;

    if ((rc = zip_open(&z)) != 0) {
        goto out;
    }
    for (int i = 0; i < 2; i++) {
        const unsigned char *data = NULL;

        m[i] = zip_find(&z, names[i], &rc);
        if (rc != 0) {
            goto out;
        }
        if (m[i] == NULL) {
            zip_list(&z, list, sizeof list);
            MP_GOTO_IF(i == 0, MP_EFORMAT,
                       ".npz: no array 'x' (member x.npy) with the inputs; the archive holds %s "
                       "(save with np.savez(f, x=inputs, y=labels))",
                       list);
            continue;
        }
        if ((rc = zip_read(&z, m[i], &data, &owned[i])) != 0) {
            goto out;
        }
        memset(&a[i], 0, sizeof a[i]);
        snprintf(a[i].what, sizeof a[i].what, ".npz member %s", names[i]);
        if ((rc = npy_parse(data, (size_t)m[i]->usize, &a[i], err)) != 0) {
            goto out;
        }
    }
    rc = build("npz", &a[0], m[1] != NULL ? &a[1] : NULL, out, err);
out:
    free(owned[0]);
    free(owned[1]);
    free(z.m);
    return rc;
}

static void tensor_arr(const mp_tensor_t *t, arr_t *a)
{
    memset(a, 0, sizeof *a);
    snprintf(a->what, sizeof a->what, "safetensors tensor '%s'", t->name);
    a->dtype = t->dtype;
    a->n_dims = t->n_dims;
    memcpy(a->shape, t->shape, sizeof a->shape);
    a->data = t->data;
    a->n_bytes = t->n_bytes;
    a->n_elements = mp_tensor_elements(t);
}

static int parse_safetensors(const unsigned char *b, size_t n, mp_dataset_t **out, mp_errctx_t *err)
{
    mp_model_t *m = NULL;
    const mp_tensor_t *x, *y;
    arr_t ax, ay;
    int rc = mp_safetensors_parse(b, n, &m, err);

    if (rc != 0) {
        return rc;
    }
    x = mp_model_find(m, "x");
    y = mp_model_find(m, "y");
    MP_GOTO_IF(x == NULL, MP_EFORMAT,
               "safetensors: none of the %zu tensors is named 'x'; a dataset has the inputs in "
               "'x' and the labels, if any, in 'y'",
               m->n_tensors);
    tensor_arr(x, &ax);
    if (y != NULL) {
        tensor_arr(y, &ay);
    }
    rc = build("safetensors", &ax, y != NULL ? &ay : NULL, out, err);
out:
    mp_model_free(m);
    return rc;
}

int mp_dataset_parse(const void *buf, size_t n_bytes, mp_dataset_t **out, mp_errctx_t *err)
{
    const unsigned char *b = buf;
    arr_t a;

    MP_RETURN_IF(out == NULL || (buf == NULL && n_bytes > 0), MP_EINVAL,
                 "mp_dataset_parse: no buffer or no result pointer");
    *out = NULL;
    if (n_bytes >= 6 && memcmp(b, "\x93NUMPY", 6) == 0) {
        int rc;

        memset(&a, 0, sizeof a);
        snprintf(a.what, sizeof a.what, ".npy");
        rc = npy_parse(b, n_bytes, &a, err);
        return rc != 0 ? rc : build("npy", &a, NULL, out, err);
    }
    if (n_bytes >= 4 && (memcmp(b, "PK\x03\x04", 4) == 0 || memcmp(b, "PK\x05\x06", 4) == 0)) {
        return parse_npz(b, n_bytes, out, err);
    }
    if (n_bytes >= 9 && b[8] == '{') {
        return parse_safetensors(b, n_bytes, out, err);
    }
    return mp__err_set(err, MP_EFORMAT,
                       "not a dataset: expected a NumPy .npy or .npz file (np.savez(f, x=inputs, "
                       "y=labels)) or safetensors with tensors x and y%s",
                       n_bytes >= 2 && b[0] == 0x80 && b[1] >= 2 && b[1] <= 5
                           ? "; this is a Python pickle, which is never loaded"
                           : "");
}

int mp_dataset_load(const char *path, mp_dataset_t **out, mp_errctx_t *err)
{
    void *map;
    size_t n_bytes;
    int rc;

    MP_RETURN_IF(out == NULL, MP_EINVAL, "mp_dataset_load: no result pointer");
    *out = NULL;
    if ((rc = mp__map_file(path, &map, &n_bytes, err)) != 0) {
        return rc;
    }
    rc = mp_dataset_parse(map, n_bytes, out, err);
    if (map != NULL) {
        munmap(map, n_bytes);
    }
    return rc;
}

/* ---- accessors ----------------------------------------------------------------------------- */

const char *mp_dataset_format(const mp_dataset_t *ds)
{
    return ds->format;
}

int64_t mp_dataset_samples(const mp_dataset_t *ds)
{
    return ds->n_samples;
}

const int64_t *mp_dataset_shape(const mp_dataset_t *ds, int *n_dims)
{
    *n_dims = ds->n_dims;
    return ds->shape;
}

int64_t mp_dataset_sample_elements(const mp_dataset_t *ds)
{
    return ds->sample_elements;
}

const float *mp_dataset_x(const mp_dataset_t *ds)
{
    return ds->x;
}

const int64_t *mp_dataset_labels(const mp_dataset_t *ds)
{
    return ds->y;
}

int64_t mp_dataset_classes(const mp_dataset_t *ds)
{
    return ds->n_classes;
}
