/* safetensors.c — reading and writing the safetensors format, and choosing a reader by content.
 *
 * A safetensors file is an 8-byte little-endian header length N, N bytes of UTF-8 JSON (an
 * object, possibly padded with spaces), then the data segment. Each tensor's entry is
 * {"dtype", "shape", "data_offsets": [begin, end]} with offsets relative to the data segment;
 * "__metadata__" is an optional object of strings.
 *
 * Files are uploads, hostile until validated. Order of work in the reader, and why:
 * 1. The header length is checked against MP_ST_MAX_HEADER_BYTES and the file's real size
 *    before anything is allocated or read past byte 8.
 * 2. One byte-level pass over the header checks UTF-8 and caps the nesting depth, so the
 *    (recursive) JSON parser never meets a hostile nesting and errors can name the byte.
 * 3. jansson parses with JSON_REJECT_DUPLICATES; every entry is checked for exact keys, a known
 *    dtype, integer shapes and offsets, and byte count == elements x dtype size, with
 *    overflow-checked arithmetic.
 * 4. The offsets must tile the data segment exactly: sorted, they start at 0, each begins
 *    where the previous ended, and the last ends at the end of the file.
 * Only then is a pointer into the buffer formed. Every error names the tensor and an absolute
 * byte offset in the file. A tensor whose bytes are not aligned to its element size in memory
 * (possible: the format has no padding between tensors) is copied into an aligned buffer, so
 * every tensor of a parsed model can be read through a pointer of its element type.
 *
 * The writer puts "__metadata__" first and the tensors in sorted-name order (bytewise), in the
 * header and in the data segment alike, and pads the header with spaces so the data segment
 * starts at a multiple of 8. Same model, same bytes.
 */
#include "mp_int.h"
#include "onnx_int.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* The deepest a valid header nests is 3 (root, entry, shape); more is refused outright. */
#define ST_MAX_DEPTH 16
/* At most this many bytes of a name from a file are quoted in a message. */
#define SHOW_BYTES 100

static const char *const unsupported_dtypes[] = {"F4",      "F6_E2M3", "F6_E3M2", "F8_E5M2",
                                                 "F8_E4M3", "F8_E8M0", "C64"};

/* ---- text helpers -------------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (n bytes available), or 0 if it is not one: no
 * overlong forms, no surrogates, nothing above U+10FFFF. */
static size_t utf8_seq_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */

    if (c < 0x80) {
        return 1;
    }
    if (c < 0xC2 || c > 0xF4) {
        return 0;
    }
    len = c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    if (c == 0xE0) {
        lo = 0xA0;
    } else if (c == 0xED) {
        hi = 0x9F;
    } else if (c == 0xF0) {
        lo = 0x90;
    } else if (c == 0xF4) {
        hi = 0x8F;
    }
    if (n < len || s[1] < lo || s[1] > hi) {
        return 0;
    }
    for (size_t i = 2; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            return 0;
        }
    }
    return len;
}

static int is_utf8(const char *s)
{
    size_t n = strlen(s);

    for (size_t i = 0, k; i < n; i += k) {
        k = utf8_seq_len((const unsigned char *)s + i, n - i);
        if (k == 0) {
            return 0;
        }
    }
    return 1;
}

/* A copy of s fit to quote in a message: at most SHOW_BYTES bytes cut on a character boundary
 * (then "..."), control characters and invalid UTF-8 replaced by '?', so that a name from a
 * hostile file can neither drive a terminal nor break the JSON reply that carries it. */
static const char *show(const char *s, char buf[SHOW_BYTES + 4])
{
    size_t n = strlen(s);
    size_t o = 0;

    for (size_t i = 0, k; i < n; i += k) {
        const unsigned char *c = (const unsigned char *)s + i;

        k = utf8_seq_len(c, n - i);
        if (k == 0 || (k == 1 && (*c < 0x20 || *c == 0x7F))) {
            k = 1;
            c = (const unsigned char *)"?";
        }
        if (o + k > SHOW_BYTES) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        memcpy(buf + o, c, k);
        o += k;
    }
    buf[o] = '\0';
    return buf;
}

/* "[1000, 1000]" */
static const char *show_shape(const int64_t *shape, int n_dims, char *buf, size_t cap)
{
    size_t o = (size_t)snprintf(buf, cap, "[");

    for (int i = 0; i < n_dims && o < cap; i++) {
        o += (size_t)snprintf(buf + o, cap - o, "%s%lld", i ? ", " : "", (long long)shape[i]);
    }
    if (o < cap) {
        snprintf(buf + o, cap - o, "]");
    }
    return buf;
}

/* ---- reader -------------------------------------------------------------------------------- */

typedef struct st_entry {
    const char *name; /* borrowed from the parsed header */
    size_t key_no;    /* position of its key among the header's top-level keys */
    mp_dtype_t dtype;
    int n_dims;
    int64_t shape[MP_MAX_DIMS];
    size_t n_bytes;
    size_t begin, end; /* relative to the data segment, validated */
} st_entry_t;

typedef struct st_parse {
    const unsigned char *buf;
    size_t n_bytes;
    size_t header_bytes; /* N */
    size_t data_start;   /* 8 + N: absolute offset of the data segment */
    size_t data_bytes;
    mp_errctx_t *err;
} st_parse_t;

/* One byte-level pass over the header as JSON text, without interpreting values: checks that
 * it is UTF-8 and nests at most ST_MAX_DEPTH deep (reported through err). With want !=
 * SIZE_MAX it also finds the absolute offset of the top-level key number want, for messages
 * (the header's byte 8 if there is no such key). */
static int scan_header(const st_parse_t *p, size_t want, size_t *key_at, mp_errctx_t *err)
{
    const unsigned char *h = p->buf + 8;
    size_t n = p->header_bytes;
    size_t depth = 0;
    size_t n_keys = 0;
    int in_str = 0;
    int expect_key = 0;

    if (key_at) {
        *key_at = 8;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = h[i];

        if (c >= 0x80) {
            size_t k = utf8_seq_len(h + i, n - i);

            MP_RETURN_IF(k == 0, MP_EFORMAT,
                         "header is not UTF-8: byte 0x%02x at byte %zu does not start a valid "
                         "UTF-8 sequence",
                         c, 8 + i);
            i += k - 1;
            continue;
        }
        if (in_str) {
            if (c == '\\' && i + 1 < n && h[i + 1] < 0x80) {
                i++;
            } else if (c == '"') {
                in_str = 0;
            }
            continue;
        }
        switch (c) {
        case '"':
            in_str = 1;
            if (depth == 1 && expect_key) {
                if (n_keys == want) {
                    *key_at = 8 + i;
                    return 0;
                }
                n_keys++;
                expect_key = 0;
            }
            break;
        case '{':
        case '[':
            depth++;
            MP_RETURN_IF(depth > ST_MAX_DEPTH, MP_EFORMAT,
                         "header JSON nests deeper than %d levels at byte %zu", ST_MAX_DEPTH,
                         8 + i);
            expect_key = c == '{' && depth == 1;
            break;
        case '}':
        case ']':
            depth -= depth > 0;
            break;
        case ',':
            expect_key = depth == 1;
            break;
        default:
            break;
        }
    }
    return 0;
}

static size_t key_offset(const st_parse_t *p, size_t key_no)
{
    size_t at = 8;

    scan_header(p, key_no, &at, NULL);
    return at;
}

/* Where tensor_fail() places a failure: in the tensor's header entry (its key number), or
 * AT_DATA, in the data segment. */
#define AT_DATA SIZE_MAX

/* A failure of one tensor, naming it and the absolute byte offset: about its header entry,
 * "tensor 'x' (header byte 123): detail"; about where its bytes are, "tensor 'x': detail (data
 * segment starts at byte 96)". */
static int MP__PRINTF(5, 6) tensor_fail(const st_parse_t *p, const char *name, size_t key_no,
                                        int code, const char *fmt, ...)
{
    char detail[384];
    char shown[SHOW_BYTES + 4];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    if (key_no == AT_DATA) {
        return mp__err_set(p->err, code, "tensor '%s': %s (data segment starts at byte %zu)",
                           show(name, shown), detail, p->data_start);
    }
    return mp__err_set(p->err, code, "tensor '%s' (header byte %zu): %s", show(name, shown),
                       key_offset(p, key_no), detail);
}

/* The 8-byte length and the first header byte, checked before anything is allocated. */
static int check_prefix(st_parse_t *p)
{
    mp_errctx_t *err = p->err;
    uint64_t n = 0;

    MP_RETURN_IF(p->n_bytes < 8, MP_EFORMAT,
                 "file is %zu bytes, shorter than the 8-byte header length that starts a "
                 "safetensors file",
                 p->n_bytes);
    for (int i = 7; i >= 0; i--) {
        n = (n << 8) | p->buf[i];
    }
    MP_RETURN_IF(n > MP_ST_MAX_HEADER_BYTES, MP_EFORMAT,
                 "header length %llu B (bytes 0-7) is above the limit of %u B",
                 (unsigned long long)n, (unsigned)MP_ST_MAX_HEADER_BYTES);
    MP_RETURN_IF(n > p->n_bytes - 8, MP_EFORMAT,
                 "header length %llu B (bytes 0-7) runs past the end of the file: the header "
                 "would end at byte %llu but the file is %zu bytes",
                 (unsigned long long)n, (unsigned long long)n + 8, p->n_bytes);
    MP_RETURN_IF(n < 2, MP_EFORMAT,
                 "header length %llu B (bytes 0-7) is too short for a JSON object",
                 (unsigned long long)n);
    MP_RETURN_IF(p->buf[8] != '{', MP_EFORMAT,
                 "header at byte 8 starts with 0x%02x, not '{': it is not a JSON object",
                 p->buf[8]);
    p->header_bytes = (size_t)n;
    p->data_start = 8 + (size_t)n;
    p->data_bytes = p->n_bytes - p->data_start;
    return 0;
}

static int read_metadata(const st_parse_t *p, size_t key_no, json_t *v, mp_model_t *m)
{
    mp_errctx_t *err = p->err;
    char shown[SHOW_BYTES + 4];
    const char *k;
    json_t *s;

    if (json_is_null(v)) {
        return 0;
    }
    MP_RETURN_IF(!json_is_object(v), MP_EFORMAT,
                 "__metadata__ (header byte %zu) is not an object of strings",
                 key_offset(p, key_no));
    json_object_foreach(v, k, s)
    {
        MP_RETURN_IF(!json_is_string(s), MP_EFORMAT,
                     "__metadata__ (header byte %zu): the value of '%s' is not a string",
                     key_offset(p, key_no), show(k, shown));
        MP_RETURN_IF(mp_model_set_meta(m, k, json_string_value(s)) != 0, MP_ENOMEM,
                     "__metadata__: out of memory");
    }
    return 0;
}

/* A non-negative integer of the header into *out: 0; -1 if v is no integer (*what says what
 * it is instead); -2 if it is negative (*out holds it, for the message). */
static int read_count(const json_t *v, long long *out, const char **what)
{
    if (!json_is_integer(v)) {
        *what = json_is_real(v) ? "not an integer" : "not a number";
        return -1;
    }
    *out = json_integer_value(v);
    return *out < 0 ? -2 : 0;
}

/* Everything one tensor entry says, checked on its own (tiling comes later). */
static int read_entry(const st_parse_t *p, const char *name, const json_t *v, st_entry_t *e)
{
    char sb[200];
    char shown[SHOW_BYTES + 4];
    const char *k;
    const char *what;
    json_t *x;
    json_t *dtype, *shape, *offs;
    long long val[2];
    int dt;

    e->name = name;
    if (name[0] == '\0') {
        return tensor_fail(p, name, e->key_no, MP_EFORMAT, "empty tensor name");
    }
    if (!json_is_object(v)) {
        return tensor_fail(p, name, e->key_no, MP_EFORMAT, "entry is not an object");
    }
    json_object_foreach((json_t *)v, k, x)
    {
        if (strcmp(k, "dtype") != 0 && strcmp(k, "shape") != 0 && strcmp(k, "data_offsets") != 0) {
            return tensor_fail(p, name, e->key_no, MP_EFORMAT, "unknown key \"%s\" in the entry",
                               show(k, shown));
        }
    }

    dtype = json_object_get(v, "dtype");
    if (!json_is_string(dtype)) {
        return tensor_fail(p, name, e->key_no, MP_EFORMAT, "\"dtype\" %s",
                           dtype ? "is not a string" : "is missing");
    }
    dt = mp_dtype_from_name(json_string_value(dtype));
    if (dt < 0) {
        for (size_t i = 0; i < sizeof unsupported_dtypes / sizeof *unsupported_dtypes; i++) {
            if (strcmp(json_string_value(dtype), unsupported_dtypes[i]) == 0) {
                return tensor_fail(p, name, e->key_no, MP_EUNSUPPORTED, "dtype %s is not supported",
                                   unsupported_dtypes[i]);
            }
        }
        return tensor_fail(p, name, e->key_no, MP_EFORMAT, "unknown dtype \"%s\"",
                           show(json_string_value(dtype), shown));
    }
    e->dtype = (mp_dtype_t)dt;

    shape = json_object_get(v, "shape");
    if (!json_is_array(shape)) {
        return tensor_fail(p, name, e->key_no, MP_EFORMAT, "\"shape\" %s",
                           shape ? "is not an array" : "is missing");
    }
    if (json_array_size(shape) > MP_MAX_DIMS) {
        return tensor_fail(p, name, e->key_no, MP_EUNSUPPORTED,
                           "%zu dimensions, at most %d supported", json_array_size(shape),
                           MP_MAX_DIMS);
    }
    e->n_dims = (int)json_array_size(shape);
    for (int i = 0; i < e->n_dims; i++) {
        switch (read_count(json_array_get(shape, (size_t)i), &val[0], &what)) {
        case -1:
            return tensor_fail(p, name, e->key_no, MP_EFORMAT, "shape[%d] is %s", i, what);
        case -2:
            return tensor_fail(p, name, e->key_no, MP_EFORMAT, "shape[%d] is %lld, negative", i,
                               val[0]);
        default:
            break;
        }
        e->shape[i] = val[0];
    }
    if (mp__shape_bytes(e->dtype, e->n_dims, e->shape, NULL, &e->n_bytes) != 0) {
        return tensor_fail(p, name, e->key_no, MP_EFORMAT,
                           "shape %s of %s overflows 64 bits (elements or bytes)",
                           show_shape(e->shape, e->n_dims, sb, sizeof sb), mp_dtype_name(e->dtype));
    }

    offs = json_object_get(v, "data_offsets");
    if (!json_is_array(offs) || json_array_size(offs) != 2) {
        return tensor_fail(p, name, e->key_no, MP_EFORMAT, "\"data_offsets\" %s",
                           offs ? "is not an array [begin, end]" : "is missing");
    }
    for (int i = 0; i < 2; i++) {
        switch (read_count(json_array_get(offs, (size_t)i), &val[i], &what)) {
        case -1:
            return tensor_fail(p, name, e->key_no, MP_EFORMAT, "data_offsets[%d] is %s", i, what);
        case -2:
            return tensor_fail(p, name, AT_DATA, MP_EFORMAT, "data_offsets[%d] is %lld, negative",
                               i, val[i]);
        default:
            break;
        }
    }
    if (val[0] > val[1]) {
        return tensor_fail(p, name, AT_DATA, MP_EFORMAT, "data_offsets [%lld, %lld] are reversed",
                           val[0], val[1]);
    }
    if ((unsigned long long)val[1] > p->data_bytes) {
        return tensor_fail(p, name, AT_DATA, MP_EFORMAT,
                           "data_offsets [%lld, %lld] end at byte %llu, past the end of the file "
                           "at byte %zu",
                           val[0], val[1], (unsigned long long)val[1] + p->data_start, p->n_bytes);
    }
    e->begin = (size_t)val[0];
    e->end = (size_t)val[1];
    if (e->end - e->begin != e->n_bytes) {
        return tensor_fail(p, name, AT_DATA, MP_EFORMAT,
                           "data_offsets [%zu, %zu] hold %zu bytes but shape %s of %s needs %zu",
                           e->begin, e->end, e->end - e->begin,
                           show_shape(e->shape, e->n_dims, sb, sizeof sb), mp_dtype_name(e->dtype),
                           e->n_bytes);
    }
    return 0;
}

static int cmp_by_offsets(const void *a, const void *b)
{
    const st_entry_t *x = *(const st_entry_t *const *)a;
    const st_entry_t *y = *(const st_entry_t *const *)b;

    if (x->begin != y->begin) {
        return x->begin < y->begin ? -1 : 1;
    }
    if (x->end != y->end) {
        return x->end < y->end ? -1 : 1;
    }
    return x->key_no < y->key_no ? -1 : x->key_no > y->key_no;
}

/* The tensors' bytes must cover the data segment exactly once: no gap, no overlap, nothing
 * after the last one. */
static int check_tiling(const st_parse_t *p, st_entry_t *entries, size_t n)
{
    mp_errctx_t *err = p->err;
    char shown[SHOW_BYTES + 4];
    st_entry_t **sorted = NULL;
    const st_entry_t *prev = NULL;
    size_t at = 0;
    int rc = 0;

    if (n > 0) {
        sorted = malloc(n * sizeof *sorted);
        MP_GOTO_IF(sorted == NULL, MP_ENOMEM, "out of memory sorting %zu tensors", n);
        for (size_t i = 0; i < n; i++) {
            sorted[i] = &entries[i];
        }
        qsort(sorted, n, sizeof *sorted, cmp_by_offsets);
    }
    for (size_t i = 0; i < n; i++) {
        const st_entry_t *e = sorted[i];

        if (e->begin < at) {
            rc = tensor_fail(p, e->name, AT_DATA, MP_EFORMAT,
                             "data_offsets [%zu, %zu] overlap those of tensor '%s' "
                             "[%zu, %zu]",
                             e->begin, e->end, show(prev->name, shown), prev->begin, prev->end);
            goto out;
        }
        if (e->begin > at && prev == NULL) {
            rc = tensor_fail(p, e->name, AT_DATA, MP_EFORMAT,
                             "data_offsets [%zu, %zu] leave the first %zu bytes of "
                             "the data segment unused",
                             e->begin, e->end, e->begin);
            goto out;
        }
        if (e->begin > at) {
            rc = tensor_fail(p, e->name, AT_DATA, MP_EFORMAT,
                             "data_offsets [%zu, %zu] leave a gap of %zu bytes after "
                             "tensor '%s' [%zu, %zu]",
                             e->begin, e->end, e->begin - at, show(prev->name, shown), prev->begin,
                             prev->end);
            goto out;
        }
        at = e->end;
        prev = e;
    }
    if (at != p->data_bytes && prev) {
        rc = mp__err_set(err, MP_EFORMAT,
                         "%zu trailing bytes after the last tensor '%s', which ends at byte %zu "
                         "(file is %zu bytes)",
                         p->data_bytes - at, show(prev->name, shown), p->data_start + at,
                         p->n_bytes);
    } else if (at != p->data_bytes) {
        rc = mp__err_set(err, MP_EFORMAT,
                         "%zu trailing bytes after the header, which ends at byte %zu and "
                         "describes no tensor (file is %zu bytes)",
                         p->data_bytes, p->data_start, p->n_bytes);
    }
out:
    free(sorted);
    return rc;
}

/* The validated entries as tensors of m, borrowing their bytes unless misaligned. */
static int add_entries(const st_parse_t *p, const st_entry_t *entries, size_t n, mp_model_t *m)
{
    for (size_t i = 0; i < n; i++) {
        const st_entry_t *e = &entries[i];
        const unsigned char *data = e->n_bytes ? p->buf + p->data_start + e->begin : NULL;
        size_t align = mp_dtype_size(e->dtype);
        int rc;

        if (data && (uintptr_t)data % align != 0) {
            rc = mp_model_add(m, e->name, e->dtype, e->n_dims, e->shape, data, e->n_bytes, p->err);
        } else {
            rc = mp_model_add_ref(m, e->name, e->dtype, e->n_dims, e->shape, data, e->n_bytes,
                                  p->err);
        }
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

int mp_safetensors_parse(const void *buf, size_t n_bytes, mp_model_t **out, mp_errctx_t *err)
{
    st_parse_t p = {.buf = buf, .n_bytes = n_bytes, .err = err};
    json_t *root = NULL;
    json_error_t jerr = {0};
    st_entry_t *entries = NULL;
    size_t n_entries = 0;
    size_t key_no = 0;
    mp_model_t *m = NULL;
    const char *key;
    json_t *v;
    int rc = 0;

    MP_GOTO_IF(out == NULL || (buf == NULL && n_bytes > 0), MP_EINVAL,
               "mp_safetensors_parse: no buffer or no result pointer");
    *out = NULL;
    rc = check_prefix(&p);
    if (rc == 0) {
        rc = scan_header(&p, SIZE_MAX, NULL, err);
    }
    if (rc != 0) {
        goto out;
    }
    root = json_loadb((const char *)p.buf + 8, p.header_bytes, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        char shown[SHOW_BYTES + 4];

        /* jansson fails without a message only when an allocation fails. */
        MP_GOTO_IF(json_error_code(&jerr) == json_error_out_of_memory || jerr.text[0] == '\0',
                   MP_ENOMEM, "out of memory parsing the %zu-byte header", p.header_bytes);
        rc = mp__err_set(err, MP_EFORMAT, "header is not valid JSON: at byte %zu: %s",
                         8 + (size_t)(jerr.position > 0 ? jerr.position : 0),
                         show(jerr.text, shown));
        goto out;
    }
    MP_GOTO_IF(!json_is_object(root), MP_EFORMAT, "header at byte 8 is not a JSON object");

    m = mp_model_new();
    entries = calloc(json_object_size(root) + 1, sizeof *entries);
    MP_GOTO_IF(m == NULL || entries == NULL, MP_ENOMEM, "out of memory for %zu header entries",
               json_object_size(root));
    json_object_foreach(root, key, v)
    {
        if (strcmp(key, "__metadata__") == 0) {
            rc = read_metadata(&p, key_no, v, m);
        } else {
            entries[n_entries].key_no = key_no;
            rc = read_entry(&p, key, v, &entries[n_entries]);
            n_entries++;
        }
        if (rc != 0) {
            goto out;
        }
        key_no++;
    }
    rc = check_tiling(&p, entries, n_entries);
    if (rc == 0) {
        rc = add_entries(&p, entries, n_entries, m);
    }
    if (rc == 0) {
        *out = m;
        m = NULL;
    }
out:
    mp_model_free(m);
    free(entries);
    json_decref(root);
    return rc;
}

/* ---- files --------------------------------------------------------------------------------- */

int mp__io_fail(mp_errctx_t *err, const char *path, const char *what, int e)
{
    char buf[128];
    int code = e == ENOSPC || e == EDQUOT ? MP_ENOSPC : MP_EIO;

    /* The GNU strerror_r (we build with _GNU_SOURCE): thread-safe, returns the text. */
    return mp__err_set(err, code, "%s: %s: %s", path, what, strerror_r(e, buf, sizeof buf));
}

/* Map path read-only. *map is NULL for an empty file (mmap refuses 0 bytes). The file must not
 * be truncated while mapped (uploads are immutable blobs), or reading it raises SIGBUS. */
int mp__map_file(const char *path, void **map, size_t *n_bytes, mp_errctx_t *err)
{
    struct stat st;
    int fd = -1;
    int rc = 0;

    *map = NULL;
    *n_bytes = 0;
    MP_GOTO_IF(path == NULL, MP_EINVAL, "no path");
    /* O_NONBLOCK: a FIFO given as a model must fail, not hang in open(). */
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        rc = errno == ENOENT ? mp__err_set(err, MP_ENOENT, "%s: no such file", path)
                             : mp__io_fail(err, path, "cannot open", errno);
        goto out;
    }
    if (fstat(fd, &st) != 0) {
        rc = mp__io_fail(err, path, "cannot stat", errno);
        goto out;
    }
    MP_GOTO_IF(!S_ISREG(st.st_mode), MP_EIO, "%s: not a regular file", path);
    MP_GOTO_IF((uintmax_t)st.st_size > SIZE_MAX, MP_ETOOBIG, "%s: too large to map", path);
    if (st.st_size > 0) {
        void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);

        if (p == MAP_FAILED) {
            rc = errno == ENOMEM ? mp__err_set(err, MP_ENOMEM,
                                               "%s: out of memory mapping %lld "
                                               "bytes",
                                               path, (long long)st.st_size)
                                 : mp__io_fail(err, path, "cannot map", errno);
            goto out;
        }
        *map = p;
        *n_bytes = (size_t)st.st_size;
    }
out:
    if (fd >= 0) {
        close(fd);
    }
    return rc;
}

/* Parse a mapping and hand it to the model, or unmap it. */
static int parse_mapped(void *map, size_t n_bytes, mp_model_t **out, mp_errctx_t *err)
{
    int rc = mp_safetensors_parse(map, n_bytes, out, err);

    if (rc == 0) {
        (*out)->map = map;
        (*out)->map_bytes = n_bytes;
    } else if (map) {
        munmap(map, n_bytes);
    }
    return rc;
}

int mp_safetensors_load(const char *path, mp_model_t **out, mp_errctx_t *err)
{
    void *map;
    size_t n_bytes;
    int rc;

    if (out == NULL) {
        return mp__err_set(err, MP_EINVAL, "mp_safetensors_load: no result pointer");
    }
    *out = NULL;
    rc = mp__map_file(path, &map, &n_bytes, err);
    return rc != 0 ? rc : parse_mapped(map, n_bytes, out, err);
}

/* What a file that is not safetensors looks like, for the message that refuses it. */
static void describe(const unsigned char *b, size_t n, char *out, size_t cap)
{
    static const struct {
        const char *magic;
        size_t len;
        const char *what;
    } magics[] = {
        {"PK\x03\x04", 4, "a zip archive (NumPy .npz or PyTorch .pt?)"},
        {"\x93NUMPY", 6, "a NumPy .npy array"},
        {"GGUF", 4, "a GGUF file"},
        {"\x89HDF\r\n\x1a\n", 8, "an HDF5 file (Keras .h5?)"},
        {"\x1f\x8b", 2, "gzip-compressed data"},
    };
    uint64_t hlen = 0;

    for (size_t i = 0; i < sizeof magics / sizeof *magics; i++) {
        if (n >= magics[i].len && memcmp(b, magics[i].magic, magics[i].len) == 0) {
            snprintf(out, cap, "%s", magics[i].what);
            return;
        }
    }
    if (n >= 2 && b[0] == 0x80 && b[1] >= 2 && b[1] <= 5) {
        snprintf(out, cap, "a Python pickle (PyTorch .bin?)");
        return;
    }
    if (n < 10) {
        snprintf(out, cap, "%zu bytes, too short for a model", n);
        return;
    }
    for (int i = 7; i >= 0; i--) {
        hlen = (hlen << 8) | b[i];
    }
    snprintf(out, cap,
             "header length %llu B in bytes 0-7, but byte 8 is 0x%02x, not the '{' that starts a "
             "safetensors header%s",
             (unsigned long long)hlen, b[8],
             b[0] == 0x08 ? " (a protobuf such as ONNX, which is not read yet?)" : "");
}

int mp_model_load(const char *path, mp_model_t **out, mp_errctx_t *err)
{
    void *map;
    size_t n_bytes;
    char what[200];
    int rc;

    if (out == NULL) {
        return mp__err_set(err, MP_EINVAL, "mp_model_load: no result pointer");
    }
    *out = NULL;
    rc = mp__map_file(path, &map, &n_bytes, err);
    if (rc != 0) {
        return rc;
    }
    if (n_bytes >= 4 && memcmp(map, "\x89MPZ", 4) == 0) { /* .mpz: decoded into owned memory */
        rc = mp_mpz_parse(map, n_bytes, out, err);
        munmap(map, n_bytes);
        return rc;
    }
    /* safetensors: a length, then a JSON object. Anything starting that way goes to the
     * safetensors reader, whose messages then say precisely what is wrong with it. */
    if (n_bytes >= 10 && ((const unsigned char *)map)[8] == '{') {
        return parse_mapped(map, n_bytes, out, err);
    }
    /* ONNX: a ModelProto's first field; the ONNX reader says what is wrong past that */
    if (mp__onnx_sniff(map, n_bytes)) {
        return mp__onnx_parse_mapped(map, n_bytes, out, err);
    }
    describe(map, n_bytes, what, sizeof what);
    if (map) {
        munmap(map, n_bytes);
    }
    return mp__err_set(err, MP_EFORMAT, "not a safetensors file: %s", what);
}

/* ---- writer -------------------------------------------------------------------------------- */

static int cmp_by_name(const void *a, const void *b)
{
    return strcmp((*(const mp_tensor_t *const *)a)->name, (*(const mp_tensor_t *const *)b)->name);
}

/* The header entry of one tensor; NULL when out of memory. */
static json_t *entry_json(const mp_tensor_t *t, size_t begin)
{
    json_t *e = json_object();
    json_t *shape = json_array();
    int bad = e == NULL || shape == NULL;

    for (int i = 0; i < t->n_dims && !bad; i++) {
        bad = json_array_append_new(shape, json_integer(t->shape[i])) != 0;
    }
    bad = bad || json_object_set_new(e, "dtype", json_string(mp_dtype_name(t->dtype))) != 0;
    bad = bad || json_object_set(e, "shape", shape) != 0;
    bad = bad || json_object_set_new(
                     e, "data_offsets",
                     json_pack("[I,I]", (json_int_t)begin, (json_int_t)(begin + t->n_bytes))) != 0;
    json_decref(shape);
    if (bad) {
        json_decref(e);
        return NULL;
    }
    return e;
}

/* The header (length, JSON, padding) of m with its tensors in the order of sorted; malloc'd
 * into *head, *head_bytes long. */
static int build_header(const mp_model_t *m, const mp_tensor_t *const *sorted, unsigned char **head,
                        size_t *head_bytes, mp_errctx_t *err)
{
    char shown[SHOW_BYTES + 4];
    json_t *root = json_object();
    json_t *meta = NULL;
    char *text = NULL;
    size_t offset = 0;
    size_t len, padded;
    int rc = 0;

    MP_GOTO_IF(root == NULL, MP_ENOMEM, "out of memory for the header");
    if (m->n_meta > 0) {
        meta = json_object();
        MP_GOTO_IF(meta == NULL || json_object_set(root, "__metadata__", meta) != 0, MP_ENOMEM,
                   "out of memory for the header");
    }
    for (size_t i = 0; i < m->n_meta; i++) {
        MP_GOTO_IF(!is_utf8(m->meta_keys[i]) || !is_utf8(m->meta_values[i]), MP_EINVAL,
                   "metadata '%s': key or value is not UTF-8", show(m->meta_keys[i], shown));
        MP_GOTO_IF(json_object_set_new(meta, m->meta_keys[i], json_string(m->meta_values[i])),
                   MP_ENOMEM, "out of memory for the header");
    }
    for (size_t i = 0; i < m->n_tensors; i++) {
        const mp_tensor_t *t = sorted[i];

        MP_GOTO_IF(!is_utf8(t->name), MP_EINVAL, "tensor '%s': name is not UTF-8",
                   show(t->name, shown));
        MP_GOTO_IF(strcmp(t->name, "__metadata__") == 0, MP_EINVAL,
                   "tensor '__metadata__': the name is reserved for metadata in safetensors");
        MP_GOTO_IF(mp__add_size(offset, t->n_bytes, &len) != 0 || len > INT64_MAX, MP_ETOOBIG,
                   "tensor '%s': the data passes 2^63 bytes", show(t->name, shown));
        MP_GOTO_IF(json_object_set_new(root, t->name, entry_json(t, offset)) != 0, MP_ENOMEM,
                   "out of memory for the header");
        offset = len;
    }
    text = json_dumps(root, JSON_COMPACT);
    MP_GOTO_IF(text == NULL, MP_ENOMEM, "out of memory for the header");
    len = strlen(text);
    padded = (len + 7) / 8 * 8; /* 8 + padded is then a multiple of 8 too */
    MP_GOTO_IF(padded > MP_ST_MAX_HEADER_BYTES, MP_ETOOBIG,
               "the header would be %zu bytes, above the limit of %u", padded,
               (unsigned)MP_ST_MAX_HEADER_BYTES);
    *head = malloc(8 + padded);
    MP_GOTO_IF(*head == NULL, MP_ENOMEM, "out of memory for the header");
    for (int i = 0; i < 8; i++) {
        (*head)[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    }
    memcpy(*head + 8, text, len);
    memset(*head + 8 + len, ' ', padded - len);
    *head_bytes = 8 + padded;
out:
    free(text);
    json_decref(meta);
    json_decref(root);
    return rc;
}

int mp__write_all(int fd, const void *buf, size_t n, const char *path, mp_errctx_t *err)
{
    const unsigned char *p = buf;

    while (n > 0) {
        /* Linux writes at most about 2 GiB per call; ask for 1 GiB at a time. */
        ssize_t w = write(fd, p, n < (1u << 30) ? n : (1u << 30));

        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return mp__io_fail(err, path, "write failed", w < 0 ? errno : EIO);
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* The header is built in memory first, so a model the format cannot hold (a tensor named
 * "__metadata__", a name that is not UTF-8) is refused before path is touched. path must not
 * be the file m's tensors are mapped from: truncating it under the mapping would fault (write
 * to another name and rename, as callers needing atomicity do anyway). */
int mp_safetensors_save(const mp_model_t *m, const char *path, mp_errctx_t *err)
{
    const mp_tensor_t **sorted = NULL;
    unsigned char *head = NULL;
    size_t head_bytes = 0;
    struct stat st;
    int regular = 0;
    int fd = -1;
    int rc = 0;

    MP_GOTO_IF(m == NULL || path == NULL, MP_EINVAL, "mp_safetensors_save: no model or no path");
    sorted = malloc((m->n_tensors + 1) * sizeof *sorted);
    MP_GOTO_IF(sorted == NULL, MP_ENOMEM, "out of memory sorting %zu tensors", m->n_tensors);
    for (size_t i = 0; i < m->n_tensors; i++) {
        sorted[i] = &m->tensors[i];
    }
    qsort(sorted, m->n_tensors, sizeof *sorted, cmp_by_name);
    rc = build_header(m, sorted, &head, &head_bytes, err);
    if (rc != 0) {
        goto out;
    }

    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) {
        rc = mp__io_fail(err, path, "cannot create", errno);
        goto out;
    }
    regular = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
    rc = mp__write_all(fd, head, head_bytes, path, err);
    for (size_t i = 0; i < m->n_tensors && rc == 0; i++) {
        rc = mp__write_all(fd, sorted[i]->data, sorted[i]->n_bytes, path, err);
    }
    /* close() is where NFS and some quotas report a failed write-back. */
    if (close(fd) != 0 && rc == 0) {
        rc = mp__io_fail(err, path, "close failed", errno);
    }
    fd = -1;
out:
    if (fd >= 0) {
        close(fd);
    }
    /* A partial file is no model: remove it, unless path is not ours to remove (a device). */
    if (rc != 0 && regular) {
        unlink(path);
    }
    free(head);
    free(sorted);
    return rc;
}
