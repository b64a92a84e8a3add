/* check_safetensors.c — the model container, the safetensors reader and writer, and errors.
 *
 * Every hostile-file case of RELIABILITY.md's safetensors list (items 1-4) is its own test and
 * asserts the exact code and the exact message, so a message that stops naming the tensor or
 * the byte offset fails here. Files are built byte for byte in memory; the tests that need a
 * real file write one with mkstemp under /tmp and remove it.
 */
#include "mp_int.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- helpers --------------------------------------------------------------------------------- */

/* A safetensors image: the 8-byte length n_len, then rest (n_rest bytes). */
static unsigned char *raw_image(uint64_t n_len, const void *rest, size_t n_rest, size_t *n)
{
    unsigned char *p = malloc(8 + n_rest + 1);

    ck_assert_ptr_nonnull(p);
    for (int i = 0; i < 8; i++) {
        p[i] = (unsigned char)(n_len >> (8 * i));
    }
    if (n_rest) {
        memcpy(p + 8, rest, n_rest);
    }
    *n = 8 + n_rest;
    return p;
}

/* A well-framed image: header (hlen bytes, padded with spaces to pad_to), then data. */
static unsigned char *image_n(const char *header, size_t hlen, size_t pad_to, const void *data,
                              size_t n_data, size_t *n)
{
    size_t total = hlen > pad_to ? hlen : pad_to;
    unsigned char *rest = malloc(total + n_data + 1);
    unsigned char *p;

    ck_assert_ptr_nonnull(rest);
    memcpy(rest, header, hlen);
    memset(rest + hlen, ' ', total - hlen);
    if (n_data) {
        memcpy(rest + total, data, n_data);
    }
    p = raw_image(total, rest, total + n_data, n);
    free(rest);
    return p;
}

static unsigned char *image(const char *header, const void *data, size_t n_data, size_t *n)
{
    return image_n(header, strlen(header), 0, data, n_data, n);
}

/* Parse buf and require failure with exactly this code and message. */
static void expect_fail(const void *buf, size_t n, int code, const char *msg)
{
    mp_model_t *m = (mp_model_t *)&m; /* must be reset to NULL */
    mp_errctx_t err = {0};
    int rc = mp_safetensors_parse(buf, n, &m, &err);

    ck_assert_int_eq(rc, code);
    ck_assert_ptr_null(m);
    ck_assert_int_eq(err.code, code);
    ck_assert_str_eq(err.msg, msg);
}

static void expect_fail_image(const char *header, size_t n_data, int code, const char *msg)
{
    unsigned char data[64] = {0};
    size_t n;
    unsigned char *p;

    ck_assert_uint_le(n_data, sizeof data);
    p = image(header, data, n_data, &n);
    expect_fail(p, n, code, msg);
    free(p);
}

static mp_model_t *parse_ok(const void *buf, size_t n)
{
    mp_model_t *m = NULL;
    mp_errctx_t err = {0};
    int rc = mp_safetensors_parse(buf, n, &m, &err);

    ck_assert_msg(rc == 0, "parse failed: %s", err.msg);
    ck_assert_ptr_nonnull(m);
    return m;
}

/* A temporary file under /tmp holding n bytes; the path is written into path[32]. */
static void temp_file(char path[32], const void *buf, size_t n)
{
    int fd;

    strcpy(path, "/tmp/mp-st-XXXXXX");
    fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, buf, n), (ssize_t)n);
    ck_assert_int_eq(close(fd), 0);
}

static unsigned char *read_whole(const char *path, size_t *n)
{
    struct stat st;
    unsigned char *p;
    int fd = open(path, O_RDONLY);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(fstat(fd, &st), 0);
    p = malloc((size_t)st.st_size + 1);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(read(fd, p, (size_t)st.st_size), st.st_size);
    close(fd);
    *n = (size_t)st.st_size;
    return p;
}

static const char *ok_entry_f32_2 =
    "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";

/* ---- errors ---------------------------------------------------------------------------------- */

START_TEST(test_error_names)
{
    ck_assert_str_eq(mp_strerror(MP_OK), "success");
    ck_assert_str_eq(mp_strerror(MP_EFORMAT), "malformed model file");
    ck_assert_str_eq(mp_strerror(MP_EINTERNAL), "internal error");
    ck_assert_str_eq(mp_strerror(-999), "unknown error");
    ck_assert_str_eq(mp_err_name(MP_OK), "OK");
    ck_assert_str_eq(mp_err_name(MP_ENOSPC), "ENOSPC");
    ck_assert_str_eq(mp_err_name(MP_EFORMAT), "EFORMAT");
    ck_assert_str_eq(mp_err_name(1), "EUNKNOWN");
}
END_TEST

START_TEST(test_err_set)
{
    mp_errctx_t err = {0};
    char big[600];

    ck_assert_int_eq(mp__err_set(NULL, MP_EIO, "x %d", 1), MP_EIO);
    ck_assert_int_eq(mp__err_set(&err, MP_ENOENT, "tensor '%s' at byte %d", "w", 96), MP_ENOENT);
    ck_assert_int_eq(err.code, MP_ENOENT);
    ck_assert_str_eq(err.msg, "tensor 'w' at byte 96");
    /* 510 ASCII bytes, then a 2-byte character that the 512-byte buffer would cut in half:
     * it is dropped whole, so the message stays valid UTF-8. */
    memset(big, 'a', 510);
    strcpy(big + 510, "\xc3\xa9tail");
    mp__err_set(&err, MP_EFORMAT, "%s", big);
    ck_assert_uint_eq(strlen(err.msg), 510);
    /* Cut after a whole character: kept. */
    strcpy(big + 509, "\xc3\xa9tail");
    mp__err_set(&err, MP_EFORMAT, "%s", big);
    ck_assert_uint_eq(strlen(err.msg), 511);
    ck_assert_str_eq(err.msg + 509, "\xc3\xa9");
}
END_TEST

/* ---- the model container --------------------------------------------------------------------- */

START_TEST(test_dtypes)
{
    static const char *names[MP_DT_COUNT] = {"F32", "F16", "BF16", "F64", "I8",  "U8",  "I16",
                                             "U16", "I32", "U32",  "I64", "U64", "BOOL"};
    static const size_t sizes[MP_DT_COUNT] = {4, 2, 2, 8, 1, 1, 2, 2, 4, 4, 8, 8, 1};

    for (int i = 0; i < MP_DT_COUNT; i++) {
        ck_assert_str_eq(mp_dtype_name((mp_dtype_t)i), names[i]);
        ck_assert_uint_eq(mp_dtype_size((mp_dtype_t)i), sizes[i]);
        ck_assert_int_eq(mp_dtype_from_name(names[i]), i);
        ck_assert_int_eq(mp_dtype_is_float((mp_dtype_t)i), i <= MP_DT_F64);
    }
    ck_assert_int_eq(mp_dtype_from_name("f32"), -1);
    ck_assert_int_eq(mp_dtype_from_name("F33"), -1);
    ck_assert_int_eq(mp_dtype_from_name(NULL), -1);
    ck_assert_uint_eq(mp_dtype_size(MP_DT_COUNT), 0);
    ck_assert_uint_eq(mp_dtype_size((mp_dtype_t)-1), 0);
    ck_assert_int_eq(mp_dtype_is_float((mp_dtype_t)-1), 0);
}
END_TEST

START_TEST(test_model_add_kinds)
{
    mp_model_t *m = mp_model_new();
    float src[3] = {1, 2, 3};
    float *taken = malloc(sizeof src);
    int64_t shape3[] = {3};
    int64_t shape0[] = {0, 5};
    int64_t shape345[] = {3, 4, 5};
    mp_errctx_t err = {0};
    const mp_tensor_t *t;

    ck_assert_ptr_nonnull(m);
    ck_assert_ptr_nonnull(taken);
    memcpy(taken, src, sizeof src);
    ck_assert_int_eq(mp_model_add(m, "copy", MP_DT_F32, 1, shape3, src, 12, &err), 0);
    ck_assert_int_eq(mp_model_add_ref(m, "ref", MP_DT_F32, 1, shape3, src, 12, &err), 0);
    ck_assert_int_eq(mp_model_add_take(m, "take", MP_DT_F32, 1, shape3, taken, 12, &err), 0);
    ck_assert_int_eq(mp_model_add(m, "empty", MP_DT_F32, 2, shape0, NULL, 0, &err), 0);
    ck_assert_int_eq(mp_model_add(m, "scalar", MP_DT_F64, 0, NULL, "\0\0\0\0\0\0\xf0\x3f", 8, &err),
                     0);
    ck_assert_uint_eq(m->n_tensors, 5);
    src[0] = 99;

    t = mp_model_find(m, "copy");
    ck_assert_ptr_eq(t, &m->tensors[0]);
    ck_assert_ptr_ne(t->data, src);
    ck_assert_ptr_eq(t->owned, t->data);
    ck_assert_float_eq(((const float *)t->data)[0], 1.0f); /* a copy: src changed after */
    t = mp_model_find(m, "ref");
    ck_assert_ptr_eq(t->data, src);
    ck_assert_ptr_null(t->owned);
    t = mp_model_find(m, "take");
    ck_assert_ptr_eq(t->data, taken);
    ck_assert_ptr_eq(t->owned, taken);
    t = mp_model_find(m, "empty");
    ck_assert_ptr_nonnull(t->data);
    ck_assert_uint_eq(t->n_bytes, 0);
    ck_assert_int_eq(mp_tensor_elements(t), 0);
    t = mp_model_find(m, "scalar");
    ck_assert_int_eq(t->n_dims, 0);
    ck_assert_int_eq(mp_tensor_elements(t), 1);
    ck_assert_double_eq(*(const double *)t->data, 1.0);
    ck_assert_ptr_null(mp_model_find(m, "missing"));

    ck_assert_int_eq(mp_model_add_ref(m, "big", MP_DT_U8, 3, shape345, src, 59, &err), MP_EINVAL);
    ck_assert_int_eq(
        mp_model_add_ref(m, "big", MP_DT_I8, 3, shape345, (const char[60]){0}, 60, &err), 0);
    ck_assert_int_eq(mp_tensor_elements(mp_model_find(m, "big")), 60);
    mp_model_free(m);
    mp_model_free(NULL);
}
END_TEST

START_TEST(test_model_refusals)
{
    mp_model_t *m = mp_model_new();
    float data[2] = {1, 2};
    int64_t shape[MP_MAX_DIMS + 1] = {2};
    int64_t neg[] = {2, -1};
    int64_t wrap[] = {4294967296LL, 4294967296LL};
    mp_errctx_t err = {0};

    ck_assert_int_eq(mp_model_add(m, "w", MP_DT_F32, 1, shape, data, 8, &err), 0);

    ck_assert_int_eq(mp_model_add(m, "w", MP_DT_F32, 1, shape, data, 8, &err), MP_EINVAL);
    ck_assert_str_eq(err.msg, "tensor 'w': the model already has a tensor of that name");
    ck_assert_int_eq(mp_model_add(m, "v", MP_DT_F32, 1, shape, data, 7, &err), MP_EINVAL);
    ck_assert_str_eq(err.msg, "tensor 'v': 7 bytes given but its shape of F32 needs 8");
    ck_assert_int_eq(mp_model_add(m, "", MP_DT_F32, 1, shape, data, 8, &err), MP_EINVAL);
    ck_assert_str_eq(err.msg, "tensor name is empty");
    ck_assert_int_eq(mp_model_add(m, "v", MP_DT_F32, MP_MAX_DIMS + 1, shape, data, 8, &err),
                     MP_EINVAL);
    ck_assert_str_eq(err.msg, "tensor 'v': 9 dimensions, must be 0 to 8");
    ck_assert_int_eq(mp_model_add(m, "v", MP_DT_F32, -1, shape, data, 8, &err), MP_EINVAL);
    ck_assert_str_eq(err.msg, "tensor 'v': -1 dimensions, must be 0 to 8");
    ck_assert_int_eq(mp_model_add(m, "v", MP_DT_F32, 2, neg, data, 8, &err), MP_EINVAL);
    ck_assert_str_eq(err.msg, "tensor 'v': dim 1 is -1, negative");
    ck_assert_int_eq(mp_model_add(m, "v", MP_DT_F32, 2, wrap, data, 0, &err), MP_EINVAL);
    ck_assert_str_eq(err.msg, "tensor 'v': element count times 4 bytes of F32 overflows 64 bits");
    ck_assert_int_eq(mp_model_add(m, "v", (mp_dtype_t)MP_DT_COUNT, 1, shape, data, 8, &err),
                     MP_EINVAL);
    ck_assert_str_eq(err.msg, "tensor 'v': dtype 13 is not a dtype");
    ck_assert_int_eq(mp_model_add(m, "v", MP_DT_F32, 1, shape, NULL, 8, &err), MP_EINVAL);
    ck_assert_str_eq(err.msg, "tensor 'v': no data");
    /* _take owns its data even when refused (a leak here fails under ASan). */
    ck_assert_int_eq(mp_model_add_take(m, "w", MP_DT_F32, 1, shape, malloc(8), 8, &err), MP_EINVAL);
    ck_assert_int_eq(mp_model_add_take(m, "v", MP_DT_F32, 1, shape, malloc(8), 4, &err), MP_EINVAL);
    ck_assert_uint_eq(m->n_tensors, 1);
    ck_assert_int_eq(mp_model_add(NULL, "v", MP_DT_F32, 1, shape, data, 8, NULL), MP_EINVAL);
    mp_model_free(m);
}
END_TEST

START_TEST(test_model_many_tensors)
{
    enum { N = 20000 };
    mp_model_t *m = mp_model_new();
    int64_t shape[] = {1};
    unsigned char byte = 7;
    mp_errctx_t err = {0};
    char name[32];

    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "layers.%d.weight", i);
        ck_assert_int_eq(mp_model_add_ref(m, name, MP_DT_U8, 1, shape, &byte, 1, &err), 0);
    }
    ck_assert_uint_eq(m->n_tensors, N);
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "layers.%d.weight", i);
        ck_assert_ptr_eq(mp_model_find(m, name), &m->tensors[i]);
    }
    ck_assert_ptr_null(mp_model_find(m, "layers.20000.weight"));
    ck_assert_int_eq(mp_model_add_ref(m, "layers.12345.weight", MP_DT_U8, 1, shape, &byte, 1, &err),
                     MP_EINVAL);
    ck_assert_uint_eq(m->n_tensors, N);
    /* A tensor array shortened behind the container's back is still searched correctly (the
     * index no longer describes it, so lookups scan). */
    m->n_tensors = N - 1;
    ck_assert_ptr_null(mp_model_find(m, "layers.19999.weight"));
    ck_assert_ptr_eq(mp_model_find(m, "layers.5.weight"), &m->tensors[5]);
    m->n_tensors = N;
    ck_assert_ptr_eq(mp_model_find(m, "layers.19999.weight"), &m->tensors[N - 1]);
    mp_model_free(m);
}
END_TEST

START_TEST(test_model_meta)
{
    mp_model_t *m = mp_model_new();

    ck_assert_int_eq(mp_model_set_meta(m, "format", "pt"), 0);
    ck_assert_int_eq(mp_model_set_meta(m, "seed", "1"), 0);
    ck_assert_int_eq(mp_model_set_meta(m, "format", "np"), 0);
    ck_assert_uint_eq(m->n_meta, 2);
    ck_assert_str_eq(m->meta_keys[0], "format");
    ck_assert_str_eq(m->meta_keys[1], "seed");
    ck_assert_str_eq(mp_model_get_meta(m, "format"), "np");
    ck_assert_str_eq(mp_model_get_meta(m, "seed"), "1");
    ck_assert_ptr_null(mp_model_get_meta(m, "missing"));
    ck_assert_int_eq(mp_model_set_meta(m, NULL, "x"), MP_EINVAL);
    ck_assert_int_eq(mp_model_set_meta(NULL, "k", "x"), MP_EINVAL);
    mp_model_free(m);
}
END_TEST

/* ---- hostile files, item 1: the header length ------------------------------------------------ */

START_TEST(test_empty_file)
{
    expect_fail("", 0, MP_EFORMAT,
                "file is 0 bytes, shorter than the 8-byte header length that starts a safetensors "
                "file");
    expect_fail(NULL, 0, MP_EFORMAT,
                "file is 0 bytes, shorter than the 8-byte header length that starts a safetensors "
                "file");
}
END_TEST

START_TEST(test_seven_bytes)
{
    expect_fail("\x02\0\0\0\0\0\0", 7, MP_EFORMAT,
                "file is 7 bytes, shorter than the 8-byte header length that starts a safetensors "
                "file");
}
END_TEST

START_TEST(test_header_past_file)
{
    size_t n;
    unsigned char *p = raw_image(1000, "{\"a\":{}}    ", 12, &n);

    expect_fail(p, n, MP_EFORMAT,
                "header length 1000 B (bytes 0-7) runs past the end of the file: the header would "
                "end at byte 1008 but the file is 20 bytes");
    free(p);
    /* One byte past the end is already too far. */
    p = raw_image(13, "{\"a\":{}}    ", 12, &n);
    expect_fail(p, n, MP_EFORMAT,
                "header length 13 B (bytes 0-7) runs past the end of the file: the header would "
                "end at byte 21 but the file is 20 bytes");
    free(p);
    /* 2^64 - 1: the largest length the field holds. */
    p = raw_image(UINT64_MAX, "{}", 2, &n);
    expect_fail(p, n, MP_EFORMAT,
                "header length 18446744073709551615 B (bytes 0-7) is above the limit of "
                "100000000 B");
    free(p);
}
END_TEST

START_TEST(test_header_over_limit)
{
    size_t n;
    unsigned char *p = raw_image(100000001, "{}", 2, &n);
    char path[32];
    mp_model_t *m = NULL;
    mp_errctx_t err = {0};
    int fd;

    expect_fail(p, n, MP_EFORMAT,
                "header length 100000001 B (bytes 0-7) is above the limit of 100000000 B");
    free(p);

    /* A real (sparse) file large enough to hold that header: the limit, not the file size,
     * refuses it, and nothing past byte 8 is read. */
    p = raw_image(100000001, "{", 1, &n);
    temp_file(path, p, n);
    free(p);
    fd = open(path, O_WRONLY);
    ck_assert_int_eq(ftruncate(fd, 8 + 100000001 + 7), 0);
    close(fd);
    ck_assert_int_eq(mp_safetensors_load(path, &m, &err), MP_EFORMAT);
    ck_assert_ptr_null(m);
    ck_assert_str_eq(err.msg,
                     "header length 100000001 B (bytes 0-7) is above the limit of 100000000 B");
    unlink(path);

    /* Exactly at the limit is allowed by the length check (then fails on content). */
    p = raw_image(100000000, "{", 1, &n);
    expect_fail(p, n, MP_EFORMAT,
                "header length 100000000 B (bytes 0-7) runs past the end of the file: the header "
                "would end at byte 100000008 but the file is 9 bytes");
    free(p);
}
END_TEST

START_TEST(test_header_too_short)
{
    size_t n;
    unsigned char *p = raw_image(1, "{", 1, &n);

    expect_fail(p, n, MP_EFORMAT, "header length 1 B (bytes 0-7) is too short for a JSON object");
    free(p);
    p = raw_image(0, "", 0, &n);
    expect_fail(p, n, MP_EFORMAT, "header length 0 B (bytes 0-7) is too short for a JSON object");
    free(p);
}
END_TEST

/* ---- item 2: the header text ----------------------------------------------------------------- */

START_TEST(test_header_not_utf8)
{
    static const struct {
        const char *header;
        unsigned bad_byte;
        int at;
    } cases[] = {
        /* 0xff at byte 11 (8 for the length, then `{"a`). */
        {"{\"a\xff\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}}", 0xff, 11},
        {"{\"\xc0\xaf\":1}", 0xc0, 10},         /* overlong encoding of '/' */
        {"{\"\xed\xa0\x80\":1}", 0xed, 10},     /* UTF-16 surrogate U+D800 */
        {"{\"\xf4\x90\x80\x80\":1}", 0xf4, 10}, /* above U+10FFFF */
        {"{\"\":1}\xe2\x82", 0xe2, 14},         /* cut by the end of the header */
    };
    char msg[128];

    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        snprintf(msg, sizeof msg,
                 "header is not UTF-8: byte 0x%02x at byte %d does not start a valid UTF-8 "
                 "sequence",
                 cases[i].bad_byte, cases[i].at);
        expect_fail_image(cases[i].header, 0, MP_EFORMAT, msg);
    }
}
END_TEST

START_TEST(test_header_not_json)
{
    expect_fail_image("{\"w\" 1}", 0, MP_EFORMAT,
                      "header is not valid JSON: at byte 14: ':' expected near '1'");
    expect_fail_image("{\"w\":{\"dtype\":\"F32\"", 0, MP_EFORMAT,
                      "header is not valid JSON: at byte 27: '}' expected near end of file");
    /* Something after the object other than the space padding. */
    expect_fail_image("{} x", 0, MP_EFORMAT,
                      "header is not valid JSON: at byte 12: end of file expected near 'x'");
}
END_TEST

START_TEST(test_header_not_object)
{
    expect_fail_image("[1, 2]", 0, MP_EFORMAT,
                      "header at byte 8 starts with 0x5b, not '{': it is not a JSON object");
    expect_fail_image(" {}", 0, MP_EFORMAT,
                      "header at byte 8 starts with 0x20, not '{': it is not a JSON object");
    /* The header is an object but a tensor entry is not. */
    expect_fail_image("{\"w\":[0,8]}", 0, MP_EFORMAT,
                      "tensor 'w' (header byte 9): entry is not an object");
}
END_TEST

START_TEST(test_duplicate_names)
{
    expect_fail_image("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                      "\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}",
                      2, MP_EFORMAT,
                      "header is not valid JSON: at byte 64: duplicate object key near '\"w\"'");
    /* A duplicate key inside an entry is refused the same way. */
    expect_fail_image("{\"w\":{\"dtype\":\"U8\",\"dtype\":\"U8\",\"shape\":[1],"
                      "\"data_offsets\":[0,1]}}",
                      1, MP_EFORMAT,
                      "header is not valid JSON: at byte 34: duplicate object key near "
                      "'\"dtype\"'");
}
END_TEST

START_TEST(test_deep_nesting)
{
    enum { DEPTH = 5000 };
    char *h = malloc(2 * DEPTH + 8);

    ck_assert_ptr_nonnull(h);
    strcpy(h, "{\"a\":");
    memset(h + 5, '[', DEPTH);
    memset(h + 5 + DEPTH, ']', DEPTH);
    strcpy(h + 5 + 2 * DEPTH, "}");
    /* The root is level 1; the 16th '[' (at byte 8 + 5 + 15) is level 17. */
    expect_fail_image(h, 0, MP_EFORMAT, "header JSON nests deeper than 16 levels at byte 28");
    /* Brackets inside strings do not count. */
    memset(h, '[', 2 * DEPTH);
    memcpy(h, "{\"a\":\"", 6);
    strcpy(h + 2 * DEPTH, "\"}");
    expect_fail_image(h, 0, MP_EFORMAT, "tensor 'a' (header byte 9): entry is not an object");
    free(h);
}
END_TEST

START_TEST(test_nul_in_name)
{
    static const char raw[] = "{\"a\0b\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}}";
    size_t n;
    unsigned char *p;

    expect_fail_image("{\"a\\u0000b\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}}", 0,
                      MP_EFORMAT,
                      "header is not valid JSON: at byte 19: NUL byte in object key not "
                      "supported near '\"a\\u0000b\"'");
    /* A raw NUL byte rather than an escape. */
    p = image_n(raw, sizeof raw - 1, 0, NULL, 0, &n);
    expect_fail(p, n, MP_EFORMAT,
                "header is not valid JSON: at byte 11: control character 0x0 near '\"a'");
    free(p);
}
END_TEST

START_TEST(test_unknown_dtype)
{
    expect_fail_image("{\"w\":{\"dtype\":\"F33\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
                      MP_EFORMAT, "tensor 'w' (header byte 9): unknown dtype \"F33\"");
    /* Named dtypes of the format that this build does not handle. */
    expect_fail_image("{\"w\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2,
                      MP_EUNSUPPORTED,
                      "tensor 'w' (header byte 9): dtype F8_E4M3 is not "
                      "supported");
    /* The offset is that of the failing tensor's key, here the second. */
    expect_fail_image("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                      "\"b\":{\"dtype\":7,\"shape\":[1],\"data_offsets\":[1,2]}}",
                      2, MP_EFORMAT, "tensor 'b' (header byte 61): \"dtype\" is not a string");
    expect_fail_image("{\"w\":{\"shape\":[1],\"data_offsets\":[0,1]}}", 1, MP_EFORMAT,
                      "tensor 'w' (header byte 9): \"dtype\" is missing");
}
END_TEST

START_TEST(test_entry_keys_and_metadata)
{
    expect_fail_image("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1],\"x\":1}}", 1,
                      MP_EFORMAT, "tensor 'w' (header byte 9): unknown key \"x\" in the entry");
    expect_fail_image("{\"w\":{\"dtype\":\"U8\",\"data_offsets\":[0,1]}}", 1, MP_EFORMAT,
                      "tensor 'w' (header byte 9): \"shape\" is missing");
    expect_fail_image("{\"w\":{\"dtype\":\"U8\",\"shape\":[1]}}", 1, MP_EFORMAT,
                      "tensor 'w' (header byte 9): \"data_offsets\" is missing");
    expect_fail_image("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1,2]}}", 1,
                      MP_EFORMAT,
                      "tensor 'w' (header byte 9): \"data_offsets\" is not an array [begin, end]");
    expect_fail_image("{\"w\":{\"dtype\":\"U8\",\"shape\":[1,\"2\"],\"data_offsets\":[0,1]}}", 1,
                      MP_EFORMAT, "tensor 'w' (header byte 9): shape[1] is not a number");
    expect_fail_image("{\"w\":{\"dtype\":\"U8\",\"shape\":[1,-2],\"data_offsets\":[0,1]}}", 1,
                      MP_EFORMAT, "tensor 'w' (header byte 9): shape[1] is -2, negative");
    expect_fail_image("{\"w\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],"
                      "\"data_offsets\":[0,1]}}",
                      1, MP_EUNSUPPORTED,
                      "tensor 'w' (header byte 9): 9 dimensions, at most 8 supported");
    expect_fail_image("{\"\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
                      MP_EFORMAT, "tensor '' (header byte 9): empty tensor name");
    expect_fail_image("{\"__metadata__\":{\"a\":1}}", 0, MP_EFORMAT,
                      "__metadata__ (header byte 9): the value of 'a' is not a string");
    expect_fail_image("{\"__metadata__\":[]}", 0, MP_EFORMAT,
                      "__metadata__ (header byte 9) is not an object of strings");
    /* A name with control characters is quoted with them replaced. */
    expect_fail_image("{\"a\\u001b[2Jb\":[]}", 0, MP_EFORMAT,
                      "tensor 'a?[2Jb' (header byte 9): entry is not an object");
}
END_TEST

/* ---- item 3: offsets against shape x dtype --------------------------------------------------- */

START_TEST(test_offsets_mismatch_shape)
{
    expect_fail_image("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4,
                      MP_EFORMAT,
                      "tensor 'w': data_offsets [0, 4] hold 4 bytes but shape [2] of F32 needs 8 "
                      "(data segment starts at byte 62)");
    expect_fail_image("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,12]}}", 12,
                      MP_EFORMAT,
                      "tensor 'w': data_offsets [0, 12] hold 12 bytes but shape [2] of F32 needs "
                      "8 (data segment starts at byte 63)");
}
END_TEST

START_TEST(test_offsets_reversed)
{
    expect_fail_image("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8,
                      MP_EFORMAT,
                      "tensor 'w': data_offsets [8, 4] are reversed (data segment starts at byte "
                      "62)");
}
END_TEST

START_TEST(test_offsets_negative)
{
    expect_fail_image("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4,
                      MP_EFORMAT,
                      "tensor 'w': data_offsets[0] is -4, negative (data segment starts at byte "
                      "63)");
    expect_fail_image("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,-4]}}", 4,
                      MP_EFORMAT,
                      "tensor 'w': data_offsets[1] is -4, negative (data segment starts at byte "
                      "63)");
}
END_TEST

START_TEST(test_offsets_fractional)
{
    expect_fail_image("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0.5,4]}}", 4,
                      MP_EFORMAT, "tensor 'w' (header byte 9): data_offsets[0] is not an integer");
    /* 4.0 is a real in JSON, not an integer: refused rather than converted. */
    expect_fail_image("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4.0]}}", 4,
                      MP_EFORMAT, "tensor 'w' (header byte 9): data_offsets[1] is not an integer");
    expect_fail_image("{\"w\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4,
                      MP_EFORMAT, "tensor 'w' (header byte 9): shape[0] is not an integer");
}
END_TEST

START_TEST(test_offsets_overlap)
{
    expect_fail_image("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                      "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                      12, MP_EFORMAT,
                      "tensor 'b': data_offsets [4, 12] overlap those of tensor 'a' [0, 8] (data "
                      "segment starts at byte 116)");
    /* Two tensors on the same bytes. */
    expect_fail_image("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                      "\"b\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
                      8, MP_EFORMAT,
                      "tensor 'b': data_offsets [0, 8] overlap those of tensor 'a' [0, 8] (data "
                      "segment starts at byte 115)");
}
END_TEST

START_TEST(test_offsets_gap)
{
    expect_fail_image("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                      "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
                      12, MP_EFORMAT,
                      "tensor 'b': data_offsets [8, 12] leave a gap of 4 bytes after tensor 'a' "
                      "[0, 4] (data segment starts at byte 116)");
    expect_fail_image("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8,
                      MP_EFORMAT,
                      "tensor 'a': data_offsets [4, 8] leave the first 4 bytes of the data segment "
                      "unused (data segment starts at byte 62)");
}
END_TEST

START_TEST(test_offsets_past_end)
{
    expect_fail_image("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4,
                      MP_EFORMAT,
                      "tensor 'w': data_offsets [0, 8] end at byte 70, past the end of the file at "
                      "byte 66 (data segment starts at byte 62)");
    /* Offsets near 2^63 must not wrap when made absolute. */
    expect_fail_image("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],"
                      "\"data_offsets\":[9223372036854775806,9223372036854775807]}}",
                      0, MP_EFORMAT,
                      "tensor 'w': data_offsets [9223372036854775806, 9223372036854775807] end at "
                      "byte 9223372036854775904, past the end of the file at byte 97 (data "
                      "segment starts at byte 97)");
}
END_TEST

START_TEST(test_shape_overflow_wraps)
{
    /* 2^32 x 2^32 elements: the product is 2^64, which wraps to 0 in 64-bit arithmetic and so
     * would "match" offsets [0, 0]. */
    expect_fail_image("{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],"
                      "\"data_offsets\":[0,0]}}",
                      0, MP_EFORMAT,
                      "tensor 'w' (header byte 9): shape [4294967296, 4294967296] of F32 "
                      "overflows 64 bits (elements or bytes)");
    /* 2^62 elements fit, but 2^62 x 4 bytes wraps to 0. */
    expect_fail_image("{\"w\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904],"
                      "\"data_offsets\":[0,0]}}",
                      0, MP_EFORMAT,
                      "tensor 'w' (header byte 9): shape [4611686018427387904] of F32 overflows "
                      "64 bits (elements or bytes)");
    /* 2^61 x 2 F64 = 2^66 bytes wraps to 0 as well, through a zero-size second dim check. */
    expect_fail_image("{\"w\":{\"dtype\":\"F64\",\"shape\":[2305843009213693952,2,2],"
                      "\"data_offsets\":[0,0]}}",
                      0, MP_EFORMAT,
                      "tensor 'w' (header byte 9): shape [2305843009213693952, 2, 2] of F64 "
                      "overflows 64 bits (elements or bytes)");
}
END_TEST

START_TEST(test_big_shape_tiny_data)
{
    static const char h[] =
        "{\"fc1.weight\":{\"dtype\":\"F32\",\"shape\":[1000,1000],\"data_offsets\":[0,4]}}";
    size_t n;
    unsigned char *p = image_n(h, strlen(h), 88, "\0\0\x80\x3f", 4, &n);

    ck_assert_uint_eq(n, 100);
    expect_fail(p, n, MP_EFORMAT,
                "tensor 'fc1.weight': data_offsets [0, 4] hold 4 bytes but shape [1000, 1000] of "
                "F32 needs 4000000 (data segment starts at byte 96)");
    free(p);
}
END_TEST

/* ---- item 4: the end of the file ------------------------------------------------------------- */

START_TEST(test_trailing_bytes)
{
    expect_fail_image(ok_entry_f32_2, 10, MP_EFORMAT,
                      "2 trailing bytes after the last tensor 'w', which ends at byte 70 (file is "
                      "72 bytes)");
    expect_fail_image("{}", 3, MP_EFORMAT,
                      "3 trailing bytes after the header, which ends at byte 10 and describes no "
                      "tensor (file is 13 bytes)");
}
END_TEST

START_TEST(test_two_bytes_short)
{
    size_t n;
    unsigned char data[12] = {0};
    unsigned char *p = image("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                             "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                             data, sizeof data, &n);
    mp_model_t *m = parse_ok(p, n); /* the whole file is fine */

    mp_model_free(m);
    expect_fail(p, n - 2, MP_EFORMAT,
                "tensor 'b': data_offsets [4, 12] end at byte 128, past the end of the file at "
                "byte 126 (data segment starts at byte 116)");
    free(p);
}
END_TEST

/* ---- good files ------------------------------------------------------------------------------ */

/* What Python's safetensors (save_file, Rust core) writes for
 * {"weight": f32 [2,2], "bias": f32 [2], "mask": bool [3], "step": i64 []} with metadata
 * {"format": "pt"}: "__metadata__" first, tensors sorted by dtype (largest alignment first)
 * then by name, compact JSON, the header padded with spaces to a multiple of 8 — here 265
 * bytes of JSON and 7 spaces, N = 272 = 0x110. Written out by hand, byte for byte. */
static const unsigned char python_file[] =
    "\x10\x01\x00\x00\x00\x00\x00\x00"
    "{\"__metadata__\":{\"format\":\"pt\"},"
    "\"step\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[0,8]},"
    "\"bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]},"
    "\"weight\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[16,32]},"
    "\"mask\":{\"dtype\":\"BOOL\",\"shape\":[3],\"data_offsets\":[32,35]}}"
    "       "
    "\xe8\x03\x00\x00\x00\x00\x00\x00"                                 /* step = 1000 */
    "\x00\x00\xc0\x3f\x00\x00\x00\xc0"                                 /* bias = 1.5, -2 */
    "\x00\x00\x80\x3e\x00\x00\x40\x40\x00\x00\x00\xbf\x00\x00\x00\x41" /* 0.25, 3, -0.5, 8 */
    "\x01\x00\x01";                                                    /* mask */

static void check_python_model(const mp_model_t *m, const unsigned char *base)
{
    static const char *order[] = {"step", "bias", "weight", "mask"};
    const mp_tensor_t *t;

    ck_assert_uint_eq(m->n_tensors, 4);
    for (int i = 0; i < 4; i++) {
        ck_assert_str_eq(m->tensors[i].name, order[i]); /* header order kept */
    }
    ck_assert_uint_eq(m->n_meta, 1);
    ck_assert_str_eq(mp_model_get_meta(m, "format"), "pt");

    t = mp_model_find(m, "step");
    ck_assert_int_eq(t->dtype, MP_DT_I64);
    ck_assert_int_eq(t->n_dims, 0);
    ck_assert_int_eq(*(const int64_t *)t->data, 1000);
    ck_assert_ptr_eq(t->data, base + 280); /* borrowed, at 8 + 272 */
    t = mp_model_find(m, "bias");
    ck_assert_int_eq(t->n_dims, 1);
    ck_assert_int_eq(t->shape[0], 2);
    ck_assert_float_eq(((const float *)t->data)[1], -2.0f);
    t = mp_model_find(m, "weight");
    ck_assert_int_eq(t->n_dims, 2);
    ck_assert_int_eq(t->shape[0] * t->shape[1], 4);
    ck_assert_uint_eq(t->n_bytes, 16);
    ck_assert_float_eq(((const float *)t->data)[3], 8.0f);
    ck_assert_ptr_eq(t->data, base + 296);
    ck_assert_ptr_null(t->owned);
    t = mp_model_find(m, "mask");
    ck_assert_int_eq(t->dtype, MP_DT_BOOL);
    ck_assert_mem_eq(t->data, "\x01\x00\x01", 3);
}

START_TEST(test_python_layout)
{
    size_t n = sizeof python_file - 1;
    unsigned char *copy = malloc(n); /* malloc'd, so the data segment at 280 is 8-aligned */
    mp_model_t *m;

    ck_assert_uint_eq(n, 8 + 272 + 35);
    ck_assert_ptr_nonnull(copy);
    memcpy(copy, python_file, n);
    m = parse_ok(copy, n);
    check_python_model(m, copy);
    mp_model_free(m);
    free(copy);
}
END_TEST

START_TEST(test_empty_model_files)
{
    /* Python's bytes for no tensors, with and without metadata. */
    mp_model_t *m = parse_ok("\x08\0\0\0\0\0\0\0{}      ", 16);

    ck_assert_uint_eq(m->n_tensors, 0);
    ck_assert_uint_eq(m->n_meta, 0);
    mp_model_free(m);
    m = parse_ok("\x28\0\0\0\0\0\0\0{\"__metadata__\":{\"framework\":\"pt\"}}     ", 48);
    ck_assert_str_eq(mp_model_get_meta(m, "framework"), "pt");
    mp_model_free(m);
    /* "__metadata__": null is the same as none. */
    m = parse_ok("\x15\0\0\0\0\0\0\0{\"__metadata__\":null}", 29);
    ck_assert_uint_eq(m->n_meta, 0);
    mp_model_free(m);
}
END_TEST

/* ---- the writer ------------------------------------------------------------------------------ */

START_TEST(test_round_trip_every_dtype)
{
    mp_model_t *m = mp_model_new();
    mp_model_t *back = NULL;
    mp_errctx_t err = {0};
    char path[32], path2[32];
    unsigned char buf[1024]; /* the largest tensor below: 13 x 6 x 8 = 624 bytes */
    unsigned char *f1, *f2;
    size_t n1, n2;
    size_t total = 0;

    for (size_t i = 0; i < sizeof buf; i++) {
        buf[i] = (unsigned char)(i * 37 + 11);
    }
    /* Added in reverse dtype order, so the file's sorted order differs from this one. */
    for (int dt = MP_DT_COUNT - 1; dt >= 0; dt--) {
        int64_t shape[3] = {dt + 1, 3, 2};
        size_t bytes = (size_t)(dt + 1) * 6 * mp_dtype_size((mp_dtype_t)dt);
        char name[32];

        snprintf(name, sizeof name, "t_%s", mp_dtype_name((mp_dtype_t)dt));
        ck_assert_int_eq(mp_model_add(m, name, (mp_dtype_t)dt, 3, shape, buf + dt, bytes, &err), 0);
        total += bytes;
    }
    ck_assert_int_eq(mp_model_add(m, "zero", MP_DT_F32, 2, (int64_t[]){0, 5}, NULL, 0, &err), 0);
    ck_assert_int_eq(mp_model_add(m, "scalar", MP_DT_F64, 0, NULL, buf, 8, &err), 0);
    total += 8;
    ck_assert_int_eq(mp_model_set_meta(m, "format", "pt"), 0);
    ck_assert_int_eq(mp_model_set_meta(m, "note", "\xc3\xbcnicode \xe2\x9c\x93 \"quoted\""), 0);

    temp_file(path, "", 0);
    ck_assert_int_eq(mp_safetensors_save(m, path, &err), 0);
    ck_assert_int_eq(mp_safetensors_load(path, &back, &err), 0);
    ck_assert_uint_eq(back->n_tensors, MP_DT_COUNT + 2);
    for (size_t i = 0; i < m->n_tensors; i++) {
        const mp_tensor_t *a = &m->tensors[i];
        const mp_tensor_t *b = mp_model_find(back, a->name);

        ck_assert_ptr_nonnull(b);
        ck_assert_int_eq(b->dtype, a->dtype);
        ck_assert_int_eq(b->n_dims, a->n_dims);
        ck_assert_mem_eq(b->shape, a->shape, sizeof a->shape);
        ck_assert_uint_eq(b->n_bytes, a->n_bytes);
        ck_assert_mem_eq(b->data, a->data, a->n_bytes);
        ck_assert_uint_eq((uintptr_t)b->data % mp_dtype_size(b->dtype), 0);
    }
    ck_assert_uint_eq(back->n_meta, 2);
    ck_assert_str_eq(mp_model_get_meta(back, "format"), "pt");
    ck_assert_str_eq(mp_model_get_meta(back, "note"), "\xc3\xbcnicode \xe2\x9c\x93 \"quoted\"");
    ck_assert_uint_eq(back->map_bytes % 8, total % 8); /* header is a multiple of 8 */

    /* Saving what was loaded gives the same bytes. */
    temp_file(path2, "", 0);
    ck_assert_int_eq(mp_safetensors_save(back, path2, &err), 0);
    f1 = read_whole(path, &n1);
    f2 = read_whole(path2, &n2);
    ck_assert_uint_eq(n1, n2);
    ck_assert_mem_eq(f1, f2, n1);
    ck_assert_uint_eq(n1, back->map_bytes);
    free(f1);
    free(f2);
    unlink(path);
    unlink(path2);
    mp_model_free(back);
    mp_model_free(m);
}
END_TEST

START_TEST(test_writer_layout)
{
    static const char want[] = "{\"__metadata__\":{\"format\":\"pt\"},"
                               "\"a\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[0,3]},"
                               "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[3,11]}}"
                               "      "; /* 138 bytes of JSON, padded to 144 */
    mp_model_t *m = mp_model_new();
    mp_model_t *back = NULL;
    mp_errctx_t err = {0};
    float b[2] = {1.5f, -2.0f};
    char path[32];
    unsigned char *f;
    const mp_tensor_t *t;
    size_t n;

    ck_assert_int_eq(mp_model_add(m, "b", MP_DT_F32, 1, (int64_t[]){2}, b, 8, &err), 0);
    ck_assert_int_eq(mp_model_add(m, "a", MP_DT_U8, 1, (int64_t[]){3}, "xyz", 3, &err), 0);
    ck_assert_int_eq(mp_model_set_meta(m, "format", "pt"), 0);
    temp_file(path, "", 0);
    ck_assert_int_eq(mp_safetensors_save(m, path, &err), 0);

    f = read_whole(path, &n);
    ck_assert_uint_eq(n, 8 + 144 + 11);
    ck_assert_mem_eq(f, "\x90\0\0\0\0\0\0\0", 8);
    ck_assert_mem_eq(f + 8, want, 144);
    ck_assert_mem_eq(f + 152, "xyz", 3);
    ck_assert_mem_eq(f + 155, b, 8);

    /* "b" sits at file byte 155, not 4-aligned: the reader hands out an aligned copy, while
     * the aligned "a" stays borrowed from the mapping. */
    ck_assert_int_eq(mp_safetensors_load(path, &back, &err), 0);
    t = mp_model_find(back, "b");
    ck_assert_ptr_nonnull(t->owned);
    ck_assert_uint_eq((uintptr_t)t->data % 4, 0);
    ck_assert_float_eq(((const float *)t->data)[0], 1.5f);
    t = mp_model_find(back, "a");
    ck_assert_ptr_null(t->owned);
    ck_assert_ptr_eq(t->data, (const unsigned char *)back->map + 152);
    mp_model_free(back);
    free(f);
    unlink(path);
    mp_model_free(m);
}
END_TEST

START_TEST(test_writer_sorted_bytewise)
{
    static const char *added[] = {"layer.2", "\xc3\xa9t\xc3\xa9", "_x", "layer.10", "Z"};
    static const char *sorted[] = {"Z", "_x", "layer.10", "layer.2", "\xc3\xa9t\xc3\xa9"};
    mp_model_t *m = mp_model_new();
    mp_model_t *back = NULL;
    mp_errctx_t err = {0};
    char path[32];
    uint16_t v = 0x1234;

    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(mp_model_add(m, added[i], MP_DT_U16, 1, (int64_t[]){1}, &v, 2, &err), 0);
    }
    temp_file(path, "", 0);
    ck_assert_int_eq(mp_safetensors_save(m, path, &err), 0);
    ck_assert_int_eq(mp_safetensors_load(path, &back, &err), 0);
    for (int i = 0; i < 5; i++) {
        const mp_tensor_t *t = &back->tensors[i];
        /* The header order is the data order: tensor i holds bytes [2i, 2i + 2). */
        ck_assert_str_eq(t->name, sorted[i]);
        ck_assert_ptr_eq(t->data, (const unsigned char *)back->map + back->map_bytes - 10 + 2 * i);
    }
    ck_assert_uint_eq((back->map_bytes - 10) % 8, 0);
    mp_model_free(back);
    unlink(path);
    mp_model_free(m);
}
END_TEST

START_TEST(test_writer_refusals)
{
    mp_model_t *m = mp_model_new();
    mp_errctx_t err = {0};
    struct stat st;

    ck_assert_int_eq(mp_model_add(m, "__metadata__", MP_DT_U8, 0, NULL, "x", 1, &err), 0);
    ck_assert_int_eq(mp_safetensors_save(m, "/tmp/mp-st-never-written", &err), MP_EINVAL);
    ck_assert_str_eq(err.msg,
                     "tensor '__metadata__': the name is reserved for metadata in safetensors");
    mp_model_free(m);

    m = mp_model_new();
    ck_assert_int_eq(mp_model_add(m, "bad\xff", MP_DT_U8, 0, NULL, "x", 1, &err), 0);
    ck_assert_int_eq(mp_safetensors_save(m, "/tmp/mp-st-never-written", &err), MP_EINVAL);
    ck_assert_str_eq(err.msg, "tensor 'bad?': name is not UTF-8");
    mp_model_free(m);

    m = mp_model_new();
    ck_assert_int_eq(mp_model_set_meta(m, "k", "\xff"), 0);
    ck_assert_int_eq(mp_safetensors_save(m, "/tmp/mp-st-never-written", &err), MP_EINVAL);
    ck_assert_str_eq(err.msg, "metadata 'k': key or value is not UTF-8");
    ck_assert_int_eq(stat("/tmp/mp-st-never-written", &st), -1);
    mp_model_free(m);
}
END_TEST

START_TEST(test_writer_disk_full)
{
    mp_model_t *m = mp_model_new();
    mp_errctx_t err = {0};
    struct stat st;

    ck_assert_int_eq(mp_model_add(m, "w", MP_DT_U8, 0, NULL, "x", 1, &err), 0);
    ck_assert_int_eq(mp_safetensors_save(m, "/dev/full", &err), MP_ENOSPC);
    ck_assert_str_eq(err.msg, "/dev/full: write failed: No space left on device");
    /* Not a regular file, so not removed. */
    ck_assert_int_eq(stat("/dev/full", &st), 0);
    ck_assert(S_ISCHR(st.st_mode));
    mp_model_free(m);
}
END_TEST

START_TEST(test_writer_io_errors)
{
    mp_model_t *m = mp_model_new();
    mp_errctx_t err = {0};
    unsigned char *big = calloc(1, 65536);
    struct rlimit old, lim;
    struct stat st;
    char path[32];
    int rc;

    ck_assert_int_eq(mp_model_add_take(m, "w", MP_DT_U8, 1, (int64_t[]){65536}, big, 65536, &err),
                     0);
    ck_assert_int_eq(mp_safetensors_save(m, "/tmp/mp-st-no-such-dir/x.safetensors", &err), MP_EIO);
    ck_assert_str_eq(err.msg,
                     "/tmp/mp-st-no-such-dir/x.safetensors: cannot create: No such file or "
                     "directory");

    /* A write that fails half way (file size limit: EFBIG) is MP_EIO naming the path, and the
     * partial file is removed. */
    temp_file(path, "", 0);
    signal(SIGXFSZ, SIG_IGN);
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = 4096;
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    rc = mp_safetensors_save(m, path, &err);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
    ck_assert_int_eq(rc, MP_EIO);
    ck_assert_int_eq(strncmp(err.msg, path, strlen(path)), 0);
    ck_assert_str_eq(err.msg + strlen(path), ": write failed: File too large");
    ck_assert_int_eq(stat(path, &st), -1);
    ck_assert_int_eq(errno, ENOENT);
    mp_model_free(m);
}
END_TEST

/* A JSON allocator that fails once chaos_left allocations have been made (jansson's own
 * test_chaos does the same). */
static int chaos_left;

static void *chaos_malloc(size_t n)
{
    return chaos_left-- > 0 ? malloc(n) : NULL;
}

START_TEST(test_out_of_memory)
{
    size_t n = sizeof python_file - 1;
    unsigned char *copy = malloc(n);
    mp_model_t *m = NULL;
    mp_errctx_t err = {0};
    char path[32];
    int n_nomem = 0;
    int rc, k;

    ck_assert_ptr_nonnull(copy);
    memcpy(copy, python_file, n);
    /* Every allocation of the header parse fails in turn: each is a clean failure, never a
     * crash or a leak (under ASan). jansson reports most as out of memory (MP_ENOMEM) but a
     * failed string allocation as a syntax error near that string, so MP_EFORMAT is accepted
     * too — yet only for those, which are fewer than half. */
    for (k = 0;; k++) {
        chaos_left = k;
        json_set_alloc_funcs(chaos_malloc, free);
        rc = mp_safetensors_parse(copy, n, &m, &err);
        json_set_alloc_funcs(malloc, free);
        if (rc == 0) {
            break;
        }
        ck_assert_msg(rc == MP_ENOMEM || rc == MP_EFORMAT, "allocation %d: %s", k, err.msg);
        ck_assert_ptr_null(m);
        n_nomem += rc == MP_ENOMEM;
    }
    ck_assert_int_gt(n_nomem, k / 2);
    check_python_model(m, copy);

    /* The same for the writer's header, with the file left untouched until it is built. */
    temp_file(path, "", 0);
    for (k = 0;; k++) {
        chaos_left = k;
        json_set_alloc_funcs(chaos_malloc, free);
        rc = mp_safetensors_save(m, path, &err);
        json_set_alloc_funcs(malloc, free);
        if (rc == 0) {
            break;
        }
        ck_assert_msg(rc == MP_ENOMEM, "allocation %d: %s", k, err.msg);
    }
    ck_assert_int_gt(k, 0);
    mp_model_free(m);
    m = NULL;
    ck_assert_int_eq(mp_safetensors_load(path, &m, &err), 0);
    ck_assert_uint_eq(m->n_tensors, 4);
    mp_model_free(m);
    unlink(path);
    free(copy);
}
END_TEST

/* ---- files ----------------------------------------------------------------------------------- */

START_TEST(test_load_real_file)
{
    size_t n = sizeof python_file - 1;
    mp_model_t *m = NULL;
    mp_errctx_t err = {0};
    char path[32];

    temp_file(path, python_file, n);
    ck_assert_int_eq(mp_safetensors_load(path, &m, &err), 0);
    ck_assert_ptr_nonnull(m->map);
    ck_assert_uint_eq(m->map_bytes, n);
    check_python_model(m, m->map);
    mp_model_free(m);

    m = NULL;
    ck_assert_int_eq(mp_model_load(path, &m, &err), 0);
    ck_assert_uint_eq(m->n_tensors, 4);
    mp_model_free(m);
    unlink(path);
}
END_TEST

START_TEST(test_load_missing_and_odd_paths)
{
    mp_model_t *m = (mp_model_t *)&m;
    mp_errctx_t err = {0};
    char path[32];

    ck_assert_int_eq(mp_safetensors_load("/tmp/mp-st-missing.safetensors", &m, &err), MP_ENOENT);
    ck_assert_ptr_null(m);
    ck_assert_str_eq(err.msg, "/tmp/mp-st-missing.safetensors: no such file");
    ck_assert_int_eq(mp_model_load("/tmp/mp-st-missing.safetensors", &m, &err), MP_ENOENT);
    ck_assert_int_eq(mp_safetensors_load("/tmp", &m, &err), MP_EIO);
    ck_assert_str_eq(err.msg, "/tmp: not a regular file");

    /* An empty file. */
    temp_file(path, "", 0);
    ck_assert_int_eq(mp_safetensors_load(path, &m, &err), MP_EFORMAT);
    ck_assert_str_eq(err.msg, "file is 0 bytes, shorter than the 8-byte header length that starts "
                              "a safetensors file");
    ck_assert_int_eq(mp_model_load(path, &m, &err), MP_EFORMAT);
    ck_assert_str_eq(err.msg, "not a safetensors file: 0 bytes, too short for a model");
    unlink(path);
}
END_TEST

static void expect_load_fail(const void *buf, size_t n, const char *msg)
{
    mp_model_t *m = NULL;
    mp_errctx_t err = {0};
    char path[32];

    temp_file(path, buf, n);
    ck_assert_int_eq(mp_model_load(path, &m, &err), MP_EFORMAT);
    ck_assert_ptr_null(m);
    ck_assert_str_eq(err.msg, msg);
    unlink(path);
}

START_TEST(test_model_load_by_content)
{
    expect_load_fail("\x07\0\0\0\0\0\0", 7,
                     "not a safetensors file: 7 bytes, too short for a model");
    expect_load_fail("\x07\0\0\0\0\0\0\0ABCDEFG", 15,
                     "not a safetensors file: header length 7 B in bytes 0-7, but byte 8 is 0x41, "
                     "not the '{' that starts a safetensors header");
    expect_load_fail("PK\x03\x04\x14\0\0\0\0\0", 10,
                     "not a safetensors file: a zip archive (NumPy .npz or PyTorch .pt?)");
    expect_load_fail("\x93NUMPY\x01\0v\0{'descr': '<f4'}", 25,
                     "not a safetensors file: a NumPy .npy array");
    expect_load_fail("\x80\x02}q\0.", 6, "not a safetensors file: a Python pickle (PyTorch .bin?)");
    /* Protobuf framing goes to the ONNX reader, which says where the message breaks. */
    {
        mp_model_t *m = NULL;
        mp_errctx_t err = {0};
        char path[32];
        temp_file(path, "\x08\x07\x12\x07pytorch\x1a\x03", 14);
        ck_assert_int_eq(mp_model_load(path, &m, &err), MP_EFORMAT);
        ck_assert_ptr_null(m);
        ck_assert_msg(strstr(err.msg, "byte 11") != NULL && strstr(err.msg, "past the end") != NULL,
                      "%s", err.msg);
        unlink(path);
    }
    /* Anything framed like safetensors gets the safetensors reader's precise message. */
    expect_load_fail(python_file, sizeof python_file - 3,
                     "tensor 'mask': data_offsets [32, 35] end at byte 315, past the end of the "
                     "file at byte 313 (data segment starts at byte 280)");
}
END_TEST

START_TEST(test_load_fixture)
{
    const char *top = getenv("top_srcdir");
    char path[4096];
    mp_model_t *m = NULL;
    mp_errctx_t err = {0};
    const mp_tensor_t *t;

    /* Under make check top_srcdir is set; run by hand from the build folder, the source file's
     * own path leads there. */
    if (top) {
        snprintf(path, sizeof path, "%s/tests/fixtures/fmnist_mlp.safetensors", top);
    } else {
        snprintf(path, sizeof path, "%.*s/../fixtures/fmnist_mlp.safetensors",
                 (int)(strrchr(__FILE__, '/') - __FILE__), __FILE__);
    }
    ck_assert_msg(mp_model_load(path, &m, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(m->map_bytes, 941408);
    ck_assert_uint_eq(m->n_tensors, 6);
    t = mp_model_find(m, "fc1.weight");
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->dtype, MP_DT_F32);
    ck_assert_int_eq(t->shape[0], 256);
    ck_assert_int_eq(t->shape[1], 784);
    ck_assert_ptr_null(t->owned); /* aligned, so borrowed from the mapping */
    ck_assert_int_eq(mp_tensor_elements(mp_model_find(m, "fc3.bias")), 10);
    ck_assert_str_eq(mp_model_get_meta(m, "test_accuracy"), "0.8866");
    mp_model_free(m);
}
END_TEST

static Suite *safetensors_suite(void)
{
    Suite *s = suite_create("safetensors");
    TCase *tc;

    tc = tcase_create("errors");
    tcase_add_test(tc, test_error_names);
    tcase_add_test(tc, test_err_set);
    suite_add_tcase(s, tc);

    tc = tcase_create("model");
    tcase_add_test(tc, test_dtypes);
    tcase_add_test(tc, test_model_add_kinds);
    tcase_add_test(tc, test_model_refusals);
    tcase_add_test(tc, test_model_many_tensors);
    tcase_add_test(tc, test_model_meta);
    suite_add_tcase(s, tc);

    tc = tcase_create("header_length");
    tcase_add_test(tc, test_empty_file);
    tcase_add_test(tc, test_seven_bytes);
    tcase_add_test(tc, test_header_past_file);
    tcase_add_test(tc, test_header_over_limit);
    tcase_add_test(tc, test_header_too_short);
    suite_add_tcase(s, tc);

    tc = tcase_create("header_text");
    tcase_add_test(tc, test_header_not_utf8);
    tcase_add_test(tc, test_header_not_json);
    tcase_add_test(tc, test_header_not_object);
    tcase_add_test(tc, test_duplicate_names);
    tcase_add_test(tc, test_deep_nesting);
    tcase_add_test(tc, test_nul_in_name);
    tcase_add_test(tc, test_unknown_dtype);
    tcase_add_test(tc, test_entry_keys_and_metadata);
    suite_add_tcase(s, tc);

    tc = tcase_create("offsets");
    tcase_add_test(tc, test_offsets_mismatch_shape);
    tcase_add_test(tc, test_offsets_reversed);
    tcase_add_test(tc, test_offsets_negative);
    tcase_add_test(tc, test_offsets_fractional);
    tcase_add_test(tc, test_offsets_overlap);
    tcase_add_test(tc, test_offsets_gap);
    tcase_add_test(tc, test_offsets_past_end);
    tcase_add_test(tc, test_shape_overflow_wraps);
    tcase_add_test(tc, test_big_shape_tiny_data);
    suite_add_tcase(s, tc);

    tc = tcase_create("file_end");
    tcase_add_test(tc, test_trailing_bytes);
    tcase_add_test(tc, test_two_bytes_short);
    suite_add_tcase(s, tc);

    tc = tcase_create("good_files");
    tcase_add_test(tc, test_python_layout);
    tcase_add_test(tc, test_empty_model_files);
    suite_add_tcase(s, tc);

    tc = tcase_create("writer");
    tcase_add_test(tc, test_round_trip_every_dtype);
    tcase_add_test(tc, test_writer_layout);
    tcase_add_test(tc, test_writer_sorted_bytewise);
    tcase_add_test(tc, test_writer_refusals);
    tcase_add_test(tc, test_writer_disk_full);
    tcase_add_test(tc, test_writer_io_errors);
    tcase_add_test(tc, test_out_of_memory);
    suite_add_tcase(s, tc);

    tc = tcase_create("files");
    tcase_add_test(tc, test_load_real_file);
    tcase_add_test(tc, test_load_missing_and_odd_paths);
    tcase_add_test(tc, test_model_load_by_content);
    tcase_add_test(tc, test_load_fixture);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(safetensors_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
