/* check_dataset.c — datasets: .npy, .npz and safetensors readers, and RELIABILITY.md item 8.
 *
 * Files are built byte for byte in memory (a .npy writer and a zip writer with deflate from
 * zlib live below), so each hostile case changes exactly one field of a valid file and asserts
 * the exact code and message. One TCase has Debian's NumPy write real files (np.save, np.savez,
 * np.savez_compressed, format versions 2.0 and 3.0, Fortran order, an object array) and checks
 * every value read back. Every truncation and every single-byte flip of a valid .npz is parsed
 * too: truncations must all fail with a message, flips must never crash.
 */
#include "mp_int.h"

#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <zlib.h>

/* ---- writers --------------------------------------------------------------------------------- */

static void put16(unsigned char *p, unsigned v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static void put32(unsigned char *p, uint32_t v)
{
    put16(p, v & 0xFFFFu);
    put16(p + 2, v >> 16);
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put64(unsigned char *p, uint64_t v)
{
    put32(p, (uint32_t)v);
    put32(p + 4, (uint32_t)(v >> 32));
}

/* A .npy image of format version major.0 with this header dict (padded with spaces and a
 * newline so the data starts at a multiple of 64, as NumPy does) and data. */
static unsigned char *npy(int major, const char *dict, const void *data, size_t n_data, size_t *n)
{
    size_t prefix = major == 1 ? 10 : 12, len = strlen(dict);
    size_t hlen = (prefix + len + 1 + 63) / 64 * 64 - prefix;
    unsigned char *b = malloc(prefix + hlen + n_data + 1);

    ck_assert_ptr_nonnull(b);
    memcpy(b, "\x93NUMPY", 6);
    b[6] = (unsigned char)major;
    b[7] = 0;
    if (major == 1) {
        put16(b + 8, (unsigned)hlen);
    } else {
        put32(b + 8, (uint32_t)hlen);
    }
    memcpy(b + prefix, dict, len);
    memset(b + prefix + len, ' ', hlen - len - 1);
    b[prefix + hlen - 1] = '\n';
    if (n_data) {
        memcpy(b + prefix + hlen, data, n_data);
    }
    *n = prefix + hlen + n_data;
    return b;
}

/* A .npy of float32 values with this shape text, e.g. "(2, 3)". */
static unsigned char *npy_f32(const char *shape, const float *v, size_t count, size_t *n)
{
    char dict[200];

    snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': %s, }", shape);
    return npy(1, dict, v, count * sizeof *v, n);
}

typedef struct zin {
    const char *name;
    const unsigned char *data;
    size_t n;
    int deflate;
} zin_t;

/* A zip image and where its parts are, so tests can change one field. */
typedef struct zout {
    unsigned char *b;
    size_t n;
    size_t local[4];   /* local header of member i */
    size_t central[4]; /* central entry of member i */
    size_t eocd;
} zout_t;

static size_t raw_deflate(const unsigned char *in, size_t n, unsigned char *out, size_t cap)
{
    z_stream zs;

    memset(&zs, 0, sizeof zs);
    ck_assert_int_eq(deflateInit2(&zs, 9, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)n;
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    ck_assert_int_eq(deflate(&zs, Z_FINISH), Z_STREAM_END);
    deflateEnd(&zs);
    return zs.total_out;
}

static zout_t zip(const zin_t *m, size_t k)
{
    size_t cap = 1024;
    zout_t z = {0};
    size_t o = 0;

    for (size_t i = 0; i < k; i++) {
        cap += 2 * (m[i].n + strlen(m[i].name)) + 200;
    }
    z.b = calloc(cap, 1);
    ck_assert_ptr_nonnull(z.b);
    uint32_t csize[4], crc[4];
    for (size_t i = 0; i < k; i++) {
        size_t nl = strlen(m[i].name);
        unsigned char *p = z.b + o;

        z.local[i] = o;
        crc[i] = (uint32_t)crc32(0, m[i].data, (uInt)m[i].n);
        put32(p, 0x04034b50u);
        put16(p + 4, 20);
        put16(p + 8, m[i].deflate ? 8 : 0);
        put32(p + 14, crc[i]);
        memcpy(p + 30, m[i].name, nl);
        if (m[i].deflate) {
            csize[i] = (uint32_t)raw_deflate(m[i].data, m[i].n, p + 30 + nl, cap - o - 30 - nl);
        } else {
            memcpy(p + 30 + nl, m[i].data, m[i].n);
            csize[i] = (uint32_t)m[i].n;
        }
        put32(p + 18, csize[i]);
        put32(p + 22, (uint32_t)m[i].n);
        put16(p + 26, (unsigned)nl);
        o += 30 + nl + csize[i];
    }
    size_t cd = o;
    for (size_t i = 0; i < k; i++) {
        size_t nl = strlen(m[i].name);
        unsigned char *p = z.b + o;

        z.central[i] = o;
        put32(p, 0x02014b50u);
        put16(p + 4, 20);
        put16(p + 6, 20);
        put16(p + 10, m[i].deflate ? 8 : 0);
        put32(p + 16, crc[i]);
        put32(p + 20, csize[i]);
        put32(p + 24, (uint32_t)m[i].n);
        put16(p + 28, (unsigned)nl);
        put32(p + 42, (uint32_t)z.local[i]);
        memcpy(p + 46, m[i].name, nl);
        o += 46 + nl;
    }
    z.eocd = o;
    put32(z.b + o, 0x06054b50u);
    put16(z.b + o + 8, (unsigned)k);
    put16(z.b + o + 10, (unsigned)k);
    put32(z.b + o + 12, (uint32_t)(o - cd));
    put32(z.b + o + 16, (uint32_t)cd);
    z.n = o + 22;
    return z;
}

/* The valid dataset most tests start from: x (3, 2) float32 and y (3,) int64. */
static const float X6[6] = {0.5f, -1.0f, 2.0f, 3.25f, -4.0f, 1e-3f};
static const int64_t Y3[3] = {2, 0, 1};

static zout_t xy_zip(int deflate)
{
    size_t nx, ny;
    unsigned char *x = npy_f32("(3, 2)", X6, 6, &nx);
    unsigned char *y =
        npy(1, "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", Y3, sizeof Y3, &ny);
    zin_t m[2] = {{"x.npy", x, nx, deflate}, {"y.npy", y, ny, deflate}};
    zout_t z = zip(m, 2);

    free(x);
    free(y);
    return z;
}

/* ---- assertions ------------------------------------------------------------------------------ */

static mp_dataset_t *parse_ok(const void *buf, size_t n)
{
    mp_dataset_t *ds = NULL;
    mp_errctx_t err = {0};
    int rc = mp_dataset_parse(buf, n, &ds, &err);

    ck_assert_msg(rc == 0, "parse failed: %s", err.msg);
    ck_assert_ptr_nonnull(ds);
    return ds;
}

static void expect_fail(const void *buf, size_t n, int code, const char *msg)
{
    mp_dataset_t *ds = (mp_dataset_t *)&ds; /* must be reset to NULL */
    mp_errctx_t err = {0};
    int rc = mp_dataset_parse(buf, n, &ds, &err);

    ck_assert_int_eq(rc, code);
    ck_assert_ptr_null(ds);
    ck_assert_int_eq(err.code, code);
    ck_assert_str_eq(err.msg, msg);
}

/* A .npy with this dict and data must fail with code and message. */
static void expect_npy_fail(const char *dict, const void *data, size_t n_data, int code,
                            const char *msg)
{
    size_t n;
    unsigned char *b = npy(1, dict, data, n_data, &n);

    expect_fail(b, n, code, msg);
    free(b);
}

static void expect_x(const mp_dataset_t *ds, const float *want, int64_t samples, int64_t per)
{
    const float *x = mp_dataset_x(ds);

    ck_assert_int_eq(mp_dataset_samples(ds), samples);
    ck_assert_int_eq(mp_dataset_sample_elements(ds), per);
    for (int64_t i = 0; i < samples * per; i++) {
        ck_assert_msg(x[i] == want[i], "x[%lld] = %g, want %g", (long long)i, x[i], want[i]);
    }
}

/* ---- .npy ------------------------------------------------------------------------------------ */

START_TEST(test_npy_f32)
{
    size_t n;
    unsigned char *b = npy_f32("(3, 2)", X6, 6, &n);
    mp_dataset_t *ds = parse_ok(b, n);
    int n_dims = 0;
    const int64_t *shape = mp_dataset_shape(ds, &n_dims);

    ck_assert_uint_eq(n, 128 + 24);
    ck_assert_str_eq(mp_dataset_format(ds), "npy");
    ck_assert_int_eq(n_dims, 2);
    ck_assert_int_eq(shape[0], 3);
    ck_assert_int_eq(shape[1], 2);
    expect_x(ds, X6, 3, 2);
    ck_assert_ptr_null(mp_dataset_labels(ds));
    ck_assert_int_eq(mp_dataset_classes(ds), 0);
    mp_dataset_free(ds);
    free(b);
}
END_TEST

/* Every accepted dtype converts exactly: -2, 0, 1, 100 (u1/u-types: 254 for -2). */
START_TEST(test_npy_dtypes)
{
    static const struct {
        const char *descr;
        size_t size;
        unsigned char bytes[32];
        float want[4];
    } cases[] = {
        {"<f8",
         8,
         {0, 0, 0, 0, 0, 0, 0,    0xc0, 0, 0, 0, 0, 0, 0, 0,    0,
          0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 0, 0, 0, 0, 0, 0, 0x59, 0x40},
         {-2, 0, 1, 100}},
        {"<f2", 2, {0x00, 0xc0, 0, 0, 0x00, 0x3c, 0x40, 0x56}, {-2, 0, 1, 100}},
        {"|u1", 1, {254, 0, 1, 100}, {254, 0, 1, 100}},
        {"|i1", 1, {0xfe, 0, 1, 100}, {-2, 0, 1, 100}},
        {"<i2", 2, {0xfe, 0xff, 0, 0, 1, 0, 100, 0}, {-2, 0, 1, 100}},
        {"<i4", 4, {0xfe, 0xff, 0xff, 0xff, 0, 0, 0, 0, 1, 0, 0, 0, 100, 0, 0, 0}, {-2, 0, 1, 100}},
        {"<i8",
         8,
         {0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0,   0, 0, 0, 0, 0, 0, 0,
          1,    0,    0,    0,    0,    0,    0,    0,    100, 0, 0, 0, 0, 0, 0, 0},
         {-2, 0, 1, 100}},
        {"<u2", 2, {0xfe, 0xff, 0, 0, 1, 0, 100, 0}, {65534, 0, 1, 100}},
        {"<u4", 4, {2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 100, 0, 0, 0}, {2, 0, 1, 100}},
        {"<u8",
         8,
         {2, 0, 0, 0, 0, 0, 0, 0, 0,   0, 0, 0, 0, 0, 0, 0,
          1, 0, 0, 0, 0, 0, 0, 0, 100, 0, 0, 0, 0, 0, 0, 0},
         {2, 0, 1, 100}},
        {"=f4",
         4,
         {0, 0, 0, 0xc0, 0, 0, 0, 0, 0, 0, 0x80, 0x3f, 0, 0, 0xc8, 0x42},
         {-2, 0, 1, 100}},
        {"<u1", 1, {254, 0, 1, 100}, {254, 0, 1, 100}},
    };

    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char dict[128];
        size_t n;
        unsigned char *b;
        mp_dataset_t *ds;

        snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (4,), }",
                 cases[i].descr);
        b = npy(1, dict, cases[i].bytes, 4 * cases[i].size, &n);
        ds = parse_ok(b, n);
        expect_x(ds, cases[i].want, 4, 1);
        mp_dataset_free(ds);
        free(b);
    }
}
END_TEST

/* Versions 2.0 and 3.0 have a 4-byte header length; double quotes and no trailing comma are
 * valid Python too. */
START_TEST(test_npy_versions)
{
    for (int major = 2; major <= 3; major++) {
        size_t n;
        unsigned char *b = npy(major, "{\"descr\":\"<f4\",\"fortran_order\":False,\"shape\":(3,2)}",
                               X6, sizeof X6, &n);
        mp_dataset_t *ds = parse_ok(b, n);

        ck_assert_uint_eq(n, 64 + 24);
        expect_x(ds, X6, 3, 2);
        mp_dataset_free(ds);
        free(b);
    }
}
END_TEST

/* fortran_order True is transposed into C order: the file holds columns first. */
START_TEST(test_npy_fortran)
{
    /* C-order x = [[0, 1, 2], [3, 4, 5]] (shape (2, 3)) stored column by column */
    const float file[6] = {0, 3, 1, 4, 2, 5};
    const float want[6] = {0, 1, 2, 3, 4, 5};
    /* a (2, 2, 2) cube: element (i, j, k) is 4i + 2j + k, stored with i fastest */
    const float cube[8] = {0, 4, 2, 6, 1, 5, 3, 7};
    const float cube_want[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    size_t n;
    unsigned char *b =
        npy(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", file, sizeof file, &n);
    mp_dataset_t *ds = parse_ok(b, n);

    expect_x(ds, want, 2, 3);
    mp_dataset_free(ds);
    free(b);
    b = npy(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2, 2), }", cube, sizeof cube,
            &n);
    ds = parse_ok(b, n);
    expect_x(ds, cube_want, 2, 4);
    mp_dataset_free(ds);
    free(b);
}
END_TEST

/* RELIABILITY.md item 8: header length past the file, or over 10,000 bytes. */
START_TEST(test_npy_header_length)
{
    size_t n;
    unsigned char *b = npy_f32("(3, 2)", X6, 6, &n);

    put16(b + 8, 200);
    expect_fail(b, 100, MP_EFORMAT,
                ".npy: header length 200 B (bytes 8-9) runs past the end: the header would end "
                "at byte 210 but there are 100 bytes");
    free(b);
    b = npy(2, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }", X6, sizeof X6, &n);
    put32(b + 8, 10001);
    expect_fail(b, n, MP_EFORMAT,
                ".npy: header length 10001 B (bytes 8-11) is above the limit of 10000 B");
    put32(b + 8, 0xFFFFFFFFu);
    expect_fail(b, n, MP_EFORMAT,
                ".npy: header length 4294967295 B (bytes 8-11) is above the limit of 10000 B");
    b[6] = 4;
    expect_fail(b, n, MP_EUNSUPPORTED,
                ".npy: .npy format version 4.0 is not supported (1.0, 2.0 and 3.0 are)");
    expect_fail(b, 9, MP_EFORMAT, ".npy: shorter than the 10-byte .npy preamble");
    free(b);
}
END_TEST

/* RELIABILITY.md item 8: keys other than descr, fortran_order and shape. */
START_TEST(test_npy_keys)
{
    expect_npy_fail("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'extra': 1}", X6, 4,
                    MP_EFORMAT,
                    ".npy: header at byte 66: key 'extra' is not allowed (only descr, "
                    "fortran_order and shape)");
    expect_npy_fail("{'descr': '<f4', 'shape': (1,), }", X6, 4, MP_EFORMAT,
                    ".npy: header has no 'fortran_order' key");
    expect_npy_fail("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}", X6,
                    4, MP_EFORMAT, ".npy: header at byte 27: key 'descr' appears twice");
    expect_npy_fail("{'descr': '<f4', 'fortran_order': 0, 'shape': (1,)}", X6, 4, MP_EFORMAT,
                    ".npy: header at byte 44: fortran_order must be True or False");
    expect_npy_fail("{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} x", X6, 4, MP_EFORMAT,
                    ".npy: header at byte 66: unexpected text after the header dict");
    expect_npy_fail("['descr', '<f4']", X6, 4, MP_EFORMAT,
                    ".npy: header at byte 10: expected '{' at the start of the header dict");
    expect_npy_fail("{'descr': '<f4', 'fortran_order': False, 'shape': (1,)\xc3\xa9}", X6, 4,
                    MP_EFORMAT, ".npy: header byte 64 is 0xc3, not printable ASCII");
}
END_TEST

/* RELIABILITY.md item 8: an object dtype is a pickle and is refused; other dtypes we do not
 * read are named. */
START_TEST(test_npy_dtype_refused)
{
    expect_npy_fail("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", "\x80\x04", 2,
                    MP_EFORMAT,
                    ".npy: header at byte 20: object dtype '|O' is refused: its data is a Python "
                    "pickle, which modelpress never loads; save a numeric array (e.g. "
                    "x.astype('float32'))");
    expect_npy_fail("{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }", X6, 4,
                    MP_EUNSUPPORTED,
                    ".npy: header at byte 20: big-endian dtype '>f4' is not supported; save it "
                    "little-endian (x.astype('<f4'))");
    expect_npy_fail("{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", X6, 8,
                    MP_EUNSUPPORTED,
                    ".npy: header at byte 20: dtype '<c8' is not supported (supported: <f4 <f8 "
                    "<f2 |u1 |i1 <i2 <i4 <i8 <u2 <u4 <u8)");
    expect_npy_fail("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", X6, 4,
                    MP_EUNSUPPORTED,
                    ".npy: header at byte 20: a structured dtype (record array) is not supported; "
                    "save plain numeric arrays");
}
END_TEST

/* RELIABILITY.md item 8: negative or overflowing shapes. */
START_TEST(test_npy_shape)
{
    expect_npy_fail("{'descr': '<f4', 'fortran_order': False, 'shape': (3, -2), }", X6, 24,
                    MP_EFORMAT, ".npy: header at byte 64: shape[1] is negative");
    expect_npy_fail("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }",
                    X6, 4, MP_EFORMAT, ".npy: header at byte 61: shape[0] overflows 64 bits");
    expect_npy_fail("{'descr': '<f4', 'fortran_order': False, 'shape': (9223372036854775808,), }",
                    X6, 4, MP_EFORMAT, ".npy: header at byte 61: shape[0] overflows 64 bits");
    /* 2^32 x 2^32 elements: the count overflows, or wraps to 0 bytes if unchecked */
    expect_npy_fail("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }",
                    NULL, 0, MP_EFORMAT,
                    ".npy: shape (4294967296, 4294967296) of F32 overflows 64 bits (elements or "
                    "bytes)");
    expect_npy_fail(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 1, 1, 1, 1, 1, 1, 1), "
        "}",
        X6, 4, MP_EUNSUPPORTED, ".npy: header at byte 85: more than 8 dimensions");
    expect_npy_fail("{'descr': '<f4', 'fortran_order': False, 'shape': (3 2), }", X6, 24,
                    MP_EFORMAT, ".npy: header at byte 63: expected ',' or ')' in the shape");
    /* valid arrays that are no dataset */
    expect_npy_fail("{'descr': '<f4', 'fortran_order': False, 'shape': (), }", X6, 4, MP_EFORMAT,
                    ".npy: x has shape (); its first axis counts the samples and needs at least "
                    "one");
    expect_npy_fail("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 3), }", NULL, 0,
                    MP_EFORMAT,
                    ".npy: x has shape (0, 3); its first axis counts the samples and needs at "
                    "least one");
    expect_npy_fail("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 0), }", NULL, 0,
                    MP_EFORMAT, ".npy: x has shape (3, 0): its samples hold no values");
}
END_TEST

/* RELIABILITY.md item 8: truncated data, and stray bytes after it. */
START_TEST(test_npy_data_length)
{
    size_t n;
    unsigned char *b = npy_f32("(3, 2)", X6, 6, &n);

    expect_fail(b, n - 1, MP_EFORMAT,
                ".npy: data is truncated: shape (3, 2) of F32 needs 24 bytes from byte 128, there "
                "are 23");
    expect_fail(b, 128, MP_EFORMAT,
                ".npy: data is truncated: shape (3, 2) of F32 needs 24 bytes from byte 128, there "
                "are 0");
    free(b);
    b = npy_f32("(3, 2)", X6, 5, &n); /* a (3, 2) array with the bytes of a (5,) one */
    expect_fail(b, n, MP_EFORMAT,
                ".npy: data is truncated: shape (3, 2) of F32 needs 24 bytes from byte 128, there "
                "are 20");
    free(b);
    b = npy_f32("(5,)", X6, 6, &n);
    expect_fail(b, n, MP_EFORMAT, ".npy: 4 stray bytes after the data, which ends at byte 148");
    free(b);
}
END_TEST

/* Inputs must be finite float32 values. */
START_TEST(test_npy_nonfinite)
{
    const float v[4] = {1, 2, NAN, 4};
    const double big[2] = {1.0, 1e300};

    expect_npy_fail("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", v, sizeof v,
                    MP_EFORMAT,
                    ".npy: x[2] (sample 1, value 0) is NaN; inputs must be finite float32 values");
    expect_npy_fail("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", big, sizeof big,
                    MP_EFORMAT,
                    ".npy: x[1] (sample 1, value 0) is beyond the float32 range; inputs must be "
                    "finite float32 values");
}
END_TEST

/* ---- .npz ------------------------------------------------------------------------------------ */

START_TEST(test_npz_stored_and_deflated)
{
    for (int deflate = 0; deflate <= 1; deflate++) {
        zout_t z = xy_zip(deflate);
        mp_dataset_t *ds = parse_ok(z.b, z.n);
        const int64_t *y = mp_dataset_labels(ds);

        ck_assert_str_eq(mp_dataset_format(ds), "npz");
        expect_x(ds, X6, 3, 2);
        ck_assert_ptr_nonnull(y);
        ck_assert_int_eq(y[0], 2);
        ck_assert_int_eq(y[1], 0);
        ck_assert_int_eq(y[2], 1);
        ck_assert_int_eq(mp_dataset_classes(ds), 3);
        mp_dataset_free(ds);
        free(z.b);
    }
}
END_TEST

/* Labels of any integer type, as (N,) or (N, 1); without y there are no labels; members other
 * than x.npy and y.npy are not read. */
START_TEST(test_npz_labels)
{
    const uint8_t y8[3] = {9, 0, 4};
    size_t nx, ny;
    unsigned char *x = npy_f32("(3, 2)", X6, 6, &nx);
    unsigned char *y =
        npy(1, "{'descr': '|u1', 'fortran_order': False, 'shape': (3, 1), }", y8, 3, &ny);
    zin_t m[3] = {{"notes.txt", (const unsigned char *)"not an array", 12, 0},
                  {"y.npy", y, ny, 1},
                  {"x.npy", x, nx, 0}};
    zout_t z = zip(m, 3);
    mp_dataset_t *ds = parse_ok(z.b, z.n);

    ck_assert_int_eq(mp_dataset_labels(ds)[0], 9);
    ck_assert_int_eq(mp_dataset_labels(ds)[2], 4);
    ck_assert_int_eq(mp_dataset_classes(ds), 10);
    mp_dataset_free(ds);
    free(z.b);
    z = zip(&m[2], 1);
    ds = parse_ok(z.b, z.n);
    ck_assert_ptr_null(mp_dataset_labels(ds));
    mp_dataset_free(ds);
    free(z.b);
    free(x);
    free(y);
}
END_TEST

/* An .npz of X6 as x (3, 2) and a y.npy with this dict and data must fail with msg. */
static void expect_y_fail(const char *dict, const void *y, size_t n_y, const char *msg)
{
    size_t nx, ny;
    unsigned char *x = npy_f32("(3, 2)", X6, 6, &nx);
    unsigned char *yb = npy(1, dict, y, n_y, &ny);
    zin_t m[2] = {{"x.npy", x, nx, 0}, {"y.npy", yb, ny, 0}};
    zout_t z = zip(m, 2);

    expect_fail(z.b, z.n, MP_EFORMAT, msg);
    free(z.b);
    free(yb);
    free(x);
}

START_TEST(test_npz_bad_labels)
{
    const int32_t neg[3] = {1, -1, 0};
    const float fl[3] = {1, 0, 2};
    const uint64_t huge[3] = {1, 1ull << 63, 0};
    const int64_t big[3] = {1, (int64_t)1 << 31, 0};

    expect_y_fail("{'descr': '<i4', 'fortran_order': False, 'shape': (3,), }", neg, 12,
                  ".npz member y.npy: y[1] is -1; labels are class indices >= 0");
    expect_y_fail("{'descr': '<u8', 'fortran_order': False, 'shape': (3,), }", huge, 24,
                  ".npz member y.npy: y[1] is 9223372036854775808, not a class index");
    /* found by fuzz_npz: INT64_MAX + 1 classes (corpus/npz/crash-062ef6dd…) */
    expect_y_fail("{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", big, 24,
                  ".npz member y.npy: y[1] is 2147483648, not a class index (at most "
                  "2147483647)");
    expect_y_fail("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", fl, 12,
                  ".npz member y.npy: y is F32; labels are integer class indices");
    expect_y_fail("{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }", neg, 8,
                  ".npz member y.npy: y has shape (2,); with 3 samples in x it must be (3,)");
    expect_y_fail("{'descr': '<i4', 'fortran_order': False, 'shape': (3, 2), }", X6, 24,
                  ".npz member y.npy: y has shape (3, 2); with 3 samples in x it must be (3,)");
}
END_TEST

/* Member names are only compared, never used as paths: "../x.npy" is not x.npy, and nothing
 * is written anywhere. */
START_TEST(test_npz_missing_x)
{
    size_t nx;
    unsigned char *x = npy_f32("(3, 2)", X6, 6, &nx);
    zin_t m[2] = {{"../x.npy", x, nx, 0}, {"/etc/passwd", x, nx, 0}};
    zout_t z = zip(m, 2);

    expect_fail(z.b, z.n, MP_EFORMAT,
                ".npz: no array 'x' (member x.npy) with the inputs; the archive holds ../x.npy, "
                "/etc/passwd (save with np.savez(f, x=inputs, y=labels))");
    free(z.b);
    m[1].name = "x.npy";
    m[0].name = "x.npy";
    z = zip(m, 2);
    expect_fail(z.b, z.n, MP_EFORMAT, ".npz: two members are named 'x.npy'");
    free(z.b);
    free(x);
}
END_TEST

/* Zip hostility: the end record and the central directory pointing past the end. */
START_TEST(test_zip_directory_offsets)
{
    zout_t z = xy_zip(0);

    put32(z.b + z.eocd + 16, (uint32_t)z.n);
    expect_fail(z.b, z.n, MP_EFORMAT,
                ".npz: the central directory [498, +102 bytes) runs past its end record at byte "
                "476");
    put32(z.b + z.eocd + 16, (uint32_t)z.central[0]);
    put32(z.b + z.eocd + 12, 0x7FFFFFFFu);
    expect_fail(z.b, z.n, MP_EFORMAT,
                ".npz: the central directory [374, +2147483647 bytes) runs past its end record at "
                "byte 476");
    put32(z.b + z.eocd + 12, 102);
    put16(z.b + z.eocd + 8, 60000);
    put16(z.b + z.eocd + 10, 60000);
    expect_fail(z.b, z.n, MP_EFORMAT,
                ".npz: 60000 members cannot fit in a central directory of 102 bytes");
    put16(z.b + z.eocd + 8, 2);
    put16(z.b + z.eocd + 10, 2);
    /* a local header offset past the directory, and one that is no local header */
    put32(z.b + z.central[1] + 42, 0xFFFFFF00u);
    expect_fail(z.b, z.n, MP_EFORMAT, ".npz: member 'y.npy': no local header at byte 4294967040");
    put32(z.b + z.central[1] + 42, 5);
    expect_fail(z.b, z.n, MP_EFORMAT, ".npz: member 'y.npy': no local header at byte 5");
    put32(z.b + z.central[1] + 42, (uint32_t)z.local[1]);
    /* the end record must end the file: cut it, or add a byte after it */
    expect_fail(z.b, z.n - 1, MP_EFORMAT,
                ".npz: no end of central directory record at the end of the file: not a "
                "complete zip archive (truncated?)");
    put16(z.b + z.eocd + 4, 1);
    expect_fail(z.b, z.n, MP_EUNSUPPORTED,
                ".npz: a zip archive split over several disks is not supported");
    free(z.b);
}
END_TEST

/* Zip hostility: a member whose declared sizes lie. */
START_TEST(test_zip_size_lies)
{
    zout_t z = xy_zip(1);
    unsigned char *p = z.b + z.central[0];
    uint32_t usize = get32(p + 24), csize = get32(p + 20);
    char msg[200];

    ck_assert_uint_eq(usize, 152);
    put32(p + 24, usize - 1);
    expect_fail(z.b, z.n, MP_EFORMAT,
                ".npz: member 'x.npy' inflates to more than the 151 bytes it declares");
    put32(p + 24, usize + 1);
    expect_fail(z.b, z.n, MP_EFORMAT,
                ".npz: member 'x.npy' inflates to 152 bytes, fewer than the 153 it declares");
    put32(p + 24, usize);
    put32(p + 20, csize - 1);
    snprintf(msg, sizeof msg,
             ".npz: member 'x.npy': the deflate stream is cut off after its %u compressed bytes",
             csize - 1);
    expect_fail(z.b, z.n, MP_EFORMAT, msg);
    put32(p + 20, 0x10000000u);
    snprintf(msg, sizeof msg,
             ".npz: member 'x.npy': its 268435456 bytes from byte 35 run past the start of the "
             "central directory at byte %zu",
             z.central[0]);
    expect_fail(z.b, z.n, MP_EFORMAT, msg);
    put32(p + 20, csize);
    free(z.b);
    z = xy_zip(0);
    put32(z.b + z.central[0] + 24, 150);
    expect_fail(z.b, z.n, MP_EFORMAT,
                ".npz: stored member 'x.npy' declares 152 bytes compressed but 150 uncompressed");
    free(z.b);
}
END_TEST

/* Zip hostility: a corrupt stream, a wrong CRC, encryption, unknown methods, a local header
 * that names another file. */
START_TEST(test_zip_corrupt)
{
    zout_t z = xy_zip(0);

    z.b[z.local[0] + 30 + 5 + 130] ^= 1; /* a byte of x's data */
    expect_fail(z.b, z.n, MP_EFORMAT,
                ".npz: member 'x.npy': CRC-32 mismatch (the data is corrupt)");
    z.b[z.local[0] + 30 + 5 + 130] ^= 1;
    put16(z.b + z.central[1] + 8, 1);
    expect_fail(z.b, z.n, MP_EUNSUPPORTED, ".npz: member 'y.npy' is encrypted");
    put16(z.b + z.central[1] + 8, 0);
    put16(z.b + z.central[1] + 10, 12);
    expect_fail(z.b, z.n, MP_EUNSUPPORTED,
                ".npz: member 'y.npy' uses compression method 12; only stored (0) and deflated "
                "(8) are supported");
    put16(z.b + z.central[1] + 10, 0);
    z.b[z.local[1] + 30] = 'z';
    expect_fail(z.b, z.n, MP_EFORMAT,
                ".npz: member 'y.npy': the local header at byte 187 names another file");
    free(z.b);
    z = xy_zip(1);
    z.b[z.local[0] + 30 + 5] = 0xff; /* block type 3: invalid */
    expect_fail(z.b, z.n, MP_EFORMAT,
                ".npz: member 'x.npy': corrupt deflate data after 1 compressed bytes: invalid "
                "block type");
    free(z.b);
}
END_TEST

/* Zip hostility: members sharing bytes (the overlapping-file bomb). */
START_TEST(test_zip_overlap)
{
    zout_t z = xy_zip(0);

    put32(z.b + z.central[1] + 42, (uint32_t)z.local[0]);
    put32(z.b + z.central[1] + 20, 152);
    put32(z.b + z.central[1] + 24, 152);
    put16(z.b + z.central[1] + 28, 5);
    memcpy(z.b + z.central[1] + 46, "x.npy", 5);
    expect_fail(z.b, z.n, MP_EFORMAT,
                ".npz: member 'x.npy' (bytes 0-187) overlaps member 'x.npy' at byte 0");
    free(z.b);
}
END_TEST

/* Zip hostility: a bomb. 8 MiB of zeros deflate to about 8 KiB, a ratio near 1000: refused
 * before anything is allocated; so is a declared size above MP_DATASET_MAX_BYTES. */
START_TEST(test_zip_bomb)
{
    const size_t big = (size_t)8 << 20;
    unsigned char *zeros = calloc(big, 1);
    size_t nx;
    unsigned char *x = npy_f32("(3, 2)", X6, 6, &nx);
    zin_t m[2] = {{"x.npy", zeros, big, 1}, {"y.npy", x, nx, 0}};
    zout_t z;
    char msg[300];
    uint32_t csize;

    ck_assert_ptr_nonnull(zeros);
    z = zip(m, 2);
    csize = get32(z.b + z.central[0] + 20);
    ck_assert_uint_lt(csize, big / MP_ZIP_MAX_RATIO);
    snprintf(msg, sizeof msg,
             ".npz: member 'x.npy' would expand %u bytes to 8388608, more than 200 times: refused "
             "as a zip bomb",
             csize);
    expect_fail(z.b, z.n, MP_ETOOBIG, msg);
    free(z.b);
    /* the same data stored is no bomb: it is read (and then refused as a .npy) */
    m[0].deflate = 0;
    z = zip(m, 2);
    expect_fail(z.b, z.n, MP_EFORMAT,
                ".npz member x.npy: does not start with the .npy magic \\x93NUMPY");
    free(z.b);
    free(zeros);
    free(x);
}
END_TEST

/* Zip64: the end record's fields overflow into a zip64 end record, a member's sizes into its
 * zip64 extra field (as Python's zipfile writes them above 4 GiB, and numpy always forces in
 * local headers); and the absolute limit on a member's size. */
START_TEST(test_zip64)
{
    zout_t z = xy_zip(0);
    size_t cd = z.central[0], cd_bytes = z.eocd - cd;
    /* new layout: members, central entry 0 with a 28-byte zip64 extra, central entry 1,
     * zip64 end record (56), locator (20), end record (22) */
    size_t n = z.eocd + 28 + 56 + 20 + 22;
    unsigned char *b = calloc(n, 1);
    size_t e0 = z.central[1] - z.central[0];
    size_t at;
    mp_dataset_t *ds;

    memcpy(b, z.b, cd + e0);
    put16(b + cd + 30, 28);
    put16(b + cd + 46 + 5, 0x0001);
    put16(b + cd + 46 + 5 + 2, 24);
    put64(b + cd + 46 + 5 + 4, 152);  /* usize */
    put64(b + cd + 46 + 5 + 12, 152); /* csize */
    put64(b + cd + 46 + 5 + 20, 0);   /* local header offset */
    put32(b + cd + 20, 0xFFFFFFFFu);
    put32(b + cd + 24, 0xFFFFFFFFu);
    put32(b + cd + 42, 0xFFFFFFFFu);
    memcpy(b + cd + e0 + 28, z.b + z.central[1], cd_bytes - e0);
    at = z.eocd + 28;
    put32(b + at, 0x06064b50u);
    put64(b + at + 4, 44);
    put64(b + at + 24, 2);
    put64(b + at + 32, 2);
    put64(b + at + 40, cd_bytes + 28);
    put64(b + at + 48, cd);
    put32(b + at + 56, 0x07064b50u);
    put64(b + at + 56 + 8, at);
    put32(b + at + 76, 0x06054b50u);
    put16(b + at + 76 + 8, 0xFFFF);
    put16(b + at + 76 + 10, 0xFFFF);
    put32(b + at + 76 + 12, 0xFFFFFFFFu);
    put32(b + at + 76 + 16, 0xFFFFFFFFu);
    ds = parse_ok(b, n);
    expect_x(ds, X6, 3, 2);
    ck_assert_int_eq(mp_dataset_labels(ds)[0], 2);
    mp_dataset_free(ds);
    /* the member's size past the limit, refused before any allocation */
    put64(b + cd + 46 + 5 + 4, MP_DATASET_MAX_BYTES + 1);
    put64(b + cd + 46 + 5 + 12, MP_DATASET_MAX_BYTES + 1);
    expect_fail(b, n, MP_EFORMAT,
                ".npz: member 'x.npy': its 4294967297 bytes from byte 35 run past the start of "
                "the central directory at byte 374");
    put64(b + cd + 46 + 5 + 12, 152);
    put16(b + cd + 10, 8);
    put16(b + 8, 8);
    expect_fail(b, n, MP_ETOOBIG,
                ".npz: member 'x.npy' is 4294967297 bytes uncompressed, above the limit of "
                "4294967296");
    put64(b + cd + 46 + 5 + 4, 152);
    put16(b + cd + 10, 0);
    put16(b + 8, 0);
    /* a zip64 field without room for the three values the entry defers to it */
    put16(b + cd + 46 + 5 + 2, 16);
    expect_fail(b, n, MP_EFORMAT,
                ".npz: member 'x.npy' (central entry at byte 374): the zip64 field is too short");
    put16(b + cd + 46 + 5 + 2, 24);
    /* a locator pointing nowhere */
    put64(b + at + 56 + 8, at + 1);
    expect_fail(b, n, MP_EFORMAT,
                ".npz: the zip64 locator at byte 560 points at byte 505, where no zip64 end "
                "record is");
    put32(b + at + 56, 0);
    expect_fail(b, n, MP_EFORMAT,
                ".npz: the end record at byte 580 needs a zip64 locator, which is missing");
    free(b);
    free(z.b);
}
END_TEST

/* Whether byte k of z lies in a field the reader has no use for: in a local header its
 * version, flags, time, date, CRC and sizes (bytes 4-7 and 10-25: the central directory's
 * copies are the ones that count); in a central entry the versions, the flag bits other than
 * the two of encryption, time, date, disk, attributes (4-7, 8-9 but bits 0 and 6, 12-15,
 * 34-41). */
static int unread_field(const zout_t *z, size_t k, int bit)
{
    for (int i = 0; i < 2; i++) {
        size_t l = k - z->local[i], c = k - z->central[i];

        if (k >= z->local[i] && ((l >= 4 && l < 8) || (l >= 10 && l < 26))) {
            return 1;
        }
        if (k >= z->central[i] &&
            ((c >= 4 && c < 8) || (c >= 12 && c < 16) || (c >= 34 && c < 42) || c == 9 ||
             (c == 8 && bit != 0 && bit != 6))) {
            return 1;
        }
    }
    return 0;
}

/* Every truncation of a valid .npz fails with a message; a flip of any bit of a stored one
 * is refused with a message unless it falls in a field the reader does not use (and then the
 * dataset is the same). ASan watches for the rest in the sanitizer build. */
START_TEST(test_zip_every_byte)
{
    mp_errctx_t err;

    for (int deflate = 0; deflate <= 1; deflate++) {
        zout_t z = xy_zip(deflate);

        for (size_t k = 0; k < z.n; k++) {
            mp_dataset_t *ds = NULL;
            unsigned char *cut = malloc(k + 1);

            memcpy(cut, z.b, k);
            err.msg[0] = '\0';
            ck_assert_int_lt(mp_dataset_parse(cut, k, &ds, &err), 0);
            ck_assert_ptr_null(ds);
            ck_assert_msg(err.msg[0] != '\0', "no message for a cut at %zu", k);
            free(cut);
        }
        free(z.b);
    }
    zout_t z = xy_zip(0);
    int n_read = 0;
    for (size_t k = 0; k < z.n; k++) {
        for (int bit = 0; bit < 8; bit++) {
            mp_dataset_t *ds = NULL;
            int rc;

            z.b[k] ^= (unsigned char)(1u << bit);
            err.msg[0] = '\0';
            rc = mp_dataset_parse(z.b, z.n, &ds, &err);
            if (unread_field(&z, k, bit)) {
                ck_assert_msg(rc == 0, "flip of bit %d of byte %zu: %s", bit, k, err.msg);
                expect_x(ds, X6, 3, 2);
                n_read++;
            } else {
                ck_assert_msg(rc < 0 && ds == NULL && err.msg[0] != '\0',
                              "flip of bit %d of byte %zu was not refused", bit, k);
            }
            mp_dataset_free(ds);
            z.b[k] ^= (unsigned char)(1u << bit);
        }
    }
    ck_assert_int_eq(n_read, 2 * (8 * (4 + 16 + 4 + 1 + 4 + 8) + 6));
    free(z.b);
}
END_TEST

/* ---- safetensors and files ---------------------------------------------------------------------
 */

START_TEST(test_safetensors)
{
    char path[] = "/tmp/mp-check-dataset-XXXXXX";
    int fd = mkstemp(path);
    mp_model_t *m = mp_model_new();
    mp_dataset_t *ds = NULL;
    mp_errctx_t err = {0};
    const int64_t xs[2] = {3, 2}, ys[1] = {3};
    const uint16_t bf[6] = {0x3f00, 0xbf80, 0x4000, 0x4050, 0xc080, 0x3a83};
    const float want_bf[6] = {0.5f, -1.0f, 2.0f, 3.25f, -4.0f, 0.00099945068359375f};

    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert_int_eq(mp_model_add(m, "x", MP_DT_F32, 2, xs, X6, sizeof X6, &err), 0);
    ck_assert_int_eq(mp_model_add(m, "y", MP_DT_I64, 1, ys, Y3, sizeof Y3, &err), 0);
    ck_assert_int_eq(mp_safetensors_save(m, path, &err), 0);
    ck_assert_int_eq(mp_dataset_load(path, &ds, &err), 0);
    ck_assert_str_eq(mp_dataset_format(ds), "safetensors");
    expect_x(ds, X6, 3, 2);
    ck_assert_int_eq(mp_dataset_labels(ds)[0], 2);
    ck_assert_int_eq(mp_dataset_classes(ds), 3);
    mp_dataset_free(ds);
    mp_model_free(m);
    /* BF16 inputs, no labels */
    m = mp_model_new();
    ck_assert_int_eq(mp_model_add(m, "x", MP_DT_BF16, 2, xs, bf, sizeof bf, &err), 0);
    ck_assert_int_eq(mp_safetensors_save(m, path, &err), 0);
    ck_assert_int_eq(mp_dataset_load(path, &ds, &err), 0);
    expect_x(ds, want_bf, 3, 2);
    ck_assert_ptr_null(mp_dataset_labels(ds));
    mp_dataset_free(ds);
    mp_model_free(m);
    /* no x */
    m = mp_model_new();
    ck_assert_int_eq(mp_model_add(m, "inputs", MP_DT_F32, 2, xs, X6, sizeof X6, &err), 0);
    ck_assert_int_eq(mp_safetensors_save(m, path, &err), 0);
    ds = (mp_dataset_t *)&ds;
    ck_assert_int_eq(mp_dataset_load(path, &ds, &err), MP_EFORMAT);
    ck_assert_ptr_null(ds);
    ck_assert_str_eq(err.msg, "safetensors: none of the 1 tensors is named 'x'; a dataset has the "
                              "inputs in 'x' and the labels, if any, in 'y'");
    mp_model_free(m);
    unlink(path);
    ck_assert_int_eq(mp_dataset_load(path, &ds, &err), MP_ENOENT);
    ck_assert_str_eq(err.msg + strlen(path), ": no such file");
}
END_TEST

START_TEST(test_not_a_dataset)
{
    expect_fail("", 0, MP_EFORMAT,
                "not a dataset: expected a NumPy .npy or .npz file (np.savez(f, x=inputs, "
                "y=labels)) or safetensors with tensors x and y");
    expect_fail("\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00", 10, MP_EFORMAT,
                "not a dataset: expected a NumPy .npy or .npz file (np.savez(f, x=inputs, "
                "y=labels)) or safetensors with tensors x and y; this is a Python pickle, which "
                "is never loaded");
    expect_fail("\x07\x00\x00\x00\x00\x00\x00\x00{}", 10, MP_EFORMAT,
                "header length 7 B (bytes 0-7) runs past the end of the file: the header would "
                "end at byte 15 but the file is 10 bytes");
}
END_TEST

/* Failed allocations (an address-space limit a little above what the process uses) are
 * MP_ENOMEM naming the array. Not under ASan, whose shadow memory needs the address space. */
START_TEST(test_out_of_memory)
{
#if defined(__SANITIZE_ADDRESS__)
    fputs("test_out_of_memory: skipped under AddressSanitizer\n", stderr);
#else
    /* 64 Mi u1 values: 64 MiB in the file, 256 MiB as float32 */
    const size_t count = (size_t)64 << 20;
    unsigned char *b = calloc(128 + count, 1);
    size_t n;
    unsigned char *head =
        npy(1, "{'descr': '|u1', 'fortran_order': False, 'shape': (67108864,), }", NULL, 0, &n);
    mp_dataset_t *ds = (mp_dataset_t *)&ds;
    mp_errctx_t err = {0};
    struct rlimit old, lim;
    unsigned long vm_pages = 0;
    FILE *fp = fopen("/proc/self/statm", "r");
    int rc;

    ck_assert_ptr_nonnull(b);
    ck_assert_uint_eq(n, 128);
    memcpy(b, head, n);
    ck_assert_ptr_nonnull(fp);
    ck_assert_int_eq(fscanf(fp, "%lu", &vm_pages), 1);
    fclose(fp);
    ck_assert_int_eq(getrlimit(RLIMIT_AS, &old), 0);
    lim = old;
    lim.rlim_cur = (rlim_t)vm_pages * (rlim_t)sysconf(_SC_PAGESIZE) + ((rlim_t)64 << 20);
    ck_assert_int_eq(setrlimit(RLIMIT_AS, &lim), 0);
    rc = mp_dataset_parse(b, 128 + count, &ds, &err);
    ck_assert_int_eq(setrlimit(RLIMIT_AS, &old), 0);
    ck_assert_int_eq(rc, MP_ENOMEM);
    ck_assert_str_eq(err.msg, ".npy: out of memory for x (268435456 bytes)");
    ck_assert_ptr_null(ds);
    free(head);
    free(b);
#endif
}
END_TEST

/* ---- what NumPy writes
 * --------------------------------------------------------------------------- */

/* Make the folder dir (a mkdtemp template) and run Debian's python3 on script there, with dir
 * as its argument; the script file is removed again. package is what to install if it fails. */
static void run_python(const char *script, char *dir, const char *package)
{
    char cmd[512], path[300];
    FILE *p;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/make.py", dir);
    p = fopen(path, "w");
    ck_assert_ptr_nonnull(p);
    fputs(script, p);
    fclose(p);
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s %s", path, dir);
    ck_assert_msg(system(cmd) == 0, "%s failed (apt-get install %s)", cmd, package);
    unlink(path);
}

static const char NUMPY_SCRIPT[] =
    "import numpy as np, sys\n"
    "d = sys.argv[1]\n"
    "x = (np.arange(24, dtype=np.float32).reshape(4, 2, 3) - 5) / 8\n"
    "y = np.array([3, 1, 0, 2], dtype=np.int64)\n"
    "np.savez(d + '/plain.npz', x=x, y=y)\n"
    "np.savez_compressed(d + '/compressed.npz', x=x, y=y.astype(np.int32).reshape(4, 1),\n"
    "                    extra=np.zeros(3))\n"
    "np.save(d + '/fortran.npy', np.asfortranarray(x))\n"
    "np.save(d + '/f16.npy', x.astype(np.float16))\n"
    "np.save(d + '/f64.npy', x.astype(np.float64))\n"
    "for v in (2, 3):\n"
    "    with open(d + '/v%d.npy' % v, 'wb') as f:\n"
    "        np.lib.format.write_array(f, x, version=(v, 0))\n"
    "np.save(d + '/object.npy', np.array([{'a': 1}], dtype=object), allow_pickle=True)\n";

START_TEST(test_numpy_files)
{
    static const char *const files[] = {"plain.npz", "compressed.npz", "fortran.npy", "f16.npy",
                                        "f64.npy",   "v2.npy",         "v3.npy"};
    char dir[] = "/tmp/mp-check-numpy-XXXXXX";
    char path[256];
    float want[24];

    run_python(NUMPY_SCRIPT, dir, "python3-numpy");
    for (int i = 0; i < 24; i++) {
        want[i] = (float)(i - 5) / 8; /* exact in every float dtype, f16 included */
    }
    for (size_t f = 0; f < sizeof files / sizeof *files; f++) {
        mp_dataset_t *ds = NULL;
        mp_errctx_t err = {0};
        int n_dims = 0;

        snprintf(path, sizeof path, "%s/%s", dir, files[f]);
        ck_assert_msg(mp_dataset_load(path, &ds, &err) == 0, "%s: %s", files[f], err.msg);
        expect_x(ds, want, 4, 6);
        ck_assert_int_eq(mp_dataset_shape(ds, &n_dims)[2], 3);
        ck_assert_int_eq(n_dims, 3);
        if (f < 2) {
            ck_assert_int_eq(mp_dataset_labels(ds)[0], 3);
            ck_assert_int_eq(mp_dataset_labels(ds)[3], 2);
            ck_assert_int_eq(mp_dataset_classes(ds), 4);
        } else {
            ck_assert_ptr_null(mp_dataset_labels(ds));
        }
        mp_dataset_free(ds);
        unlink(path);
    }
    {
        mp_dataset_t *ds = NULL;
        mp_errctx_t err = {0};

        snprintf(path, sizeof path, "%s/object.npy", dir);
        ck_assert_int_eq(mp_dataset_load(path, &ds, &err), MP_EFORMAT);
        ck_assert_str_eq(err.msg, ".npy: header at byte 20: object dtype '|O' is refused: its data "
                                  "is a Python pickle, which modelpress never loads; save a "
                                  "numeric array (e.g. x.astype('float32'))");
        unlink(path);
    }
    ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

/* ---- the recipe's evaluate block ------------------------------------------------------------- */

START_TEST(test_recipe_evaluate)
{
    static const char with[] =
        "{\"steps\":[{\"quantize\":{}}],\"evaluate\":{\"dataset_id\":"
        "\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\","
        "\"metric\":\"top1\",\"latency_runs\":25}}";
    static const char without[] = "{\"steps\":[{\"quantize\":{}}]}";
    static const char empty[] = "{\"steps\":[{\"quantize\":{}}],\"evaluate\":{}}";
    mp_eval_spec_t spec;
    mp_recipe_t *r = NULL;
    mp_errctx_t err = {0};

    ck_assert_int_eq(mp_recipe_parse(with, strlen(with), &r, &err), 0);
    mp_recipe_free(r);
    ck_assert_int_eq(mp_recipe_evaluate(with, strlen(with), &spec, &err), 0);
    ck_assert_int_eq(spec.present, 1);
    ck_assert_str_eq(spec.dataset_id,
                     "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
    ck_assert_int_eq(spec.latency_runs, 25);
    ck_assert_int_eq(mp_recipe_evaluate(without, strlen(without), &spec, &err), 0);
    ck_assert_int_eq(spec.present, 0);
    ck_assert_str_eq(spec.dataset_id, "");
    ck_assert_int_eq(spec.latency_runs, 10);
    ck_assert_int_eq(mp_recipe_evaluate(empty, strlen(empty), &spec, &err), 0);
    ck_assert_int_eq(spec.present, 1);
    ck_assert_str_eq(spec.dataset_id, "");
    ck_assert_int_eq(spec.latency_runs, 10);
    ck_assert_int_eq(mp_recipe_evaluate("[1]", 3, &spec, &err), MP_ERECIPE);
    ck_assert_str_eq(err.msg, "recipe: not a JSON object");
}
END_TEST

/* ---- evaluation ---------------------------------------------------------------------------- */

/* Two ONNX models y = x W (x [N, 4], W [4, 5]) written by Debian's python3-onnx into dir: a.onnx
 * and b.onnx, whose W differs from a's by 0.01 in every entry. */
static const char ONNX_SCRIPT[] =
    "import sys, numpy as np, onnx\n"
    "from onnx import helper as h, TensorProto as T, numpy_helper as nh\n"
    "w = (np.arange(20, dtype=np.float32).reshape(4, 5) % 7 - 3) / 4\n"
    "for name, wt in (('a', w), ('b', w + np.float32(0.01))):\n"
    "    g = h.make_graph([h.make_node('MatMul', ['x', 'W'], ['y'])], 'g',\n"
    "                     [h.make_tensor_value_info('x', T.FLOAT, ['N', 4])],\n"
    "                     [h.make_tensor_value_info('y', T.FLOAT, ['N', 5])],\n"
    "                     [nh.from_array(wt.astype(np.float32), 'W')])\n"
    "    m = h.make_model(g, opset_imports=[h.make_opsetid('', 13)])\n"
    "    m.ir_version = 8\n"
    "    onnx.save(m, sys.argv[1] + '/' + name + '.onnx')\n";

static mp_model_t *eval_a, *eval_b;

static void eval_setup(void)
{
    char dir[] = "/tmp/mp-check-eval-XXXXXX", path[300];
    mp_errctx_t err = {0};

    run_python(ONNX_SCRIPT, dir, "python3-onnx");
    snprintf(path, sizeof path, "%s/a.onnx", dir);
    ck_assert_msg(mp_model_load(path, &eval_a, &err) == 0, "%s", err.msg);
    unlink(path); /* the model keeps its mapping */
    snprintf(path, sizeof path, "%s/b.onnx", dir);
    ck_assert_msg(mp_model_load(path, &eval_b, &err) == 0, "%s", err.msg);
    unlink(path);
    rmdir(dir);
}

static void eval_teardown(void)
{
    mp_model_free(eval_a);
    mp_model_free(eval_b);
}

/* x W in double for sample xs (4 values) into y (5). */
static void reference(const mp_model_t *m, const float *xs, double *y)
{
    const float *w = mp_model_find(m, "W")->data;

    for (int j = 0; j < 5; j++) {
        y[j] = 0;
        for (int i = 0; i < 4; i++) {
            y[j] += (double)xs[i] * w[i * 5 + j];
        }
    }
}

static int top1(const double *y)
{
    int best = 0;

    for (int j = 1; j < 5; j++) {
        best = y[j] > y[best] ? j : best;
    }
    return best;
}

/* 40 samples (two batches of 32, the second padded) whose top-1 under a is clear by 0.05;
 * labels are a's top-1 for the first 30 and a wrong class for the last 10. The expected
 * agreement and SNR of b against a, in double, go to *agree and *snr_db. */
static mp_dataset_t *eval_dataset(double *agree, double *snr_db)
{
    static float x[40 * 4];
    static int64_t y[40];
    int64_t xs[2] = {40, 4}, ys[1] = {40};
    uint32_t r = 99;
    double signal = 0, noise = 0;
    int same = 0;
    mp_model_t *m = mp_model_new();
    mp_errctx_t err = {0};

    for (int n = 0; n < 40;) {
        double ya[5], yb[5], second = -1e9;
        int best;

        for (int i = 0; i < 4; i++) {
            r = r * 1664525u + 1013904223u;
            x[n * 4 + i] = (float)((r >> 8) % 2001) / 1000.0f - 1.0f;
        }
        reference(eval_a, x + n * 4, ya);
        best = top1(ya);
        for (int j = 0; j < 5; j++) {
            second = j != best && ya[j] > second ? ya[j] : second;
        }
        if (ya[best] - second < 0.05) {
            continue; /* a near tie: float and double might disagree */
        }
        reference(eval_b, x + n * 4, yb);
        same += top1(yb) == best;
        for (int j = 0; j < 5; j++) {
            signal += ya[j] * ya[j];
            noise += (ya[j] - yb[j]) * (ya[j] - yb[j]);
        }
        y[n] = n < 30 ? best : (best + 1) % 5;
        n++;
    }
    *agree = same / 40.0;
    *snr_db = 10 * log10(signal / noise);
    ck_assert_int_eq(mp_model_add_ref(m, "x", MP_DT_F32, 2, xs, x, sizeof x, &err), 0);
    ck_assert_int_eq(mp_model_add_ref(m, "y", MP_DT_I64, 1, ys, y, sizeof y, &err), 0);
    char path[] = "/tmp/mp-check-eval-ds-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    ck_assert_int_eq(mp_safetensors_save(m, path, &err), 0);
    mp_model_free(m);
    mp_dataset_t *ds = NULL;
    ck_assert_int_eq(mp_dataset_load(path, &ds, &err), 0);
    unlink(path);
    return ds;
}

static double figure(const json_t *o, const char *path1, const char *path2)
{
    const json_t *v = json_object_get(o, path1);

    if (path2 != NULL) {
        v = json_object_get(v, path2);
    }
    ck_assert_msg(json_is_number(v), "%s.%s is not a number", path1, path2 ? path2 : "");
    return json_number_value(v);
}

START_TEST(test_evaluate_before_after)
{
    double agree, snr_db;
    mp_dataset_t *ds = eval_dataset(&agree, &snr_db);
    mp_eval_opts_t opts = {.latency_runs = 5};
    mp_errctx_t err = {0};
    char *text = NULL;
    json_t *j;

    ck_assert_msg(mp_evaluate(eval_a, eval_b, ds, &opts, &text, &err) == 0, "%s", err.msg);
    j = json_loads(text, 0, NULL);
    ck_assert_ptr_nonnull(j);
    ck_assert_int_eq(figure(j, "samples", NULL), 40);
    ck_assert_int_eq(figure(j, "batch", NULL), 32);
    ck_assert_int_eq(figure(j, "latency_runs", NULL), 5);
    ck_assert_int_eq(figure(j, "outputs_per_sample", NULL), 5);
    ck_assert_double_eq_tol(figure(j, "before", "accuracy"), 0.75, 1e-9);
    ck_assert_double_eq_tol(figure(j, "agreement", NULL), agree, 1e-9);
    ck_assert_double_eq_tol(figure(j, "output_snr_db", NULL), snr_db, 1e-3);
    ck_assert(snr_db > 10 && snr_db < 60); /* the perturbation is real but small */
    for (int k = 0; k < 2; k++) {
        const char *side = k ? "after" : "before";
        ck_assert(figure(j, side, "latency_ms") > 0 && figure(j, side, "latency_ms") < 1000);
        ck_assert(figure(j, side, "latency_ms_b32") > 0);
    }
    ck_assert_double_eq_tol(figure(j, "speedup", NULL),
                            figure(j, "before", "latency_ms") / figure(j, "after", "latency_ms"),
                            1e-4 * figure(j, "speedup", NULL));
    ck_assert_double_eq_tol(figure(j, "speedup_b32", NULL),
                            figure(j, "before", "latency_ms_b32") /
                                figure(j, "after", "latency_ms_b32"),
                            1e-4 * figure(j, "speedup_b32", NULL));
    json_decref(j);
    free(text);
    /* a model against itself: full agreement, outputs identical (no SNR), before alone */
    ck_assert_int_eq(mp_evaluate(eval_a, eval_a, ds, NULL, &text, &err), 0);
    j = json_loads(text, 0, NULL);
    ck_assert_double_eq(figure(j, "agreement", NULL), 1.0);
    ck_assert(json_is_null(json_object_get(j, "output_snr_db")));
    ck_assert_int_eq(figure(j, "latency_runs", NULL), 10);
    json_decref(j);
    free(text);
    ck_assert_int_eq(mp_evaluate(eval_a, NULL, ds, NULL, &text, &err), 0);
    j = json_loads(text, 0, NULL);
    ck_assert_double_eq_tol(figure(j, "before", "accuracy"), 0.75, 1e-9);
    ck_assert_ptr_null(json_object_get(j, "after"));
    ck_assert_ptr_null(json_object_get(j, "agreement"));
    json_decref(j);
    free(text);
    mp_dataset_free(ds);
}
END_TEST

/* The real flow: int8 weights from the pipeline, written into the graph, run by the runtime's
 * int8 kernels; what that costs on this dataset, added to the pipeline's report. */
START_TEST(test_evaluate_compressed)
{
    static const char recipe_text[] = "{\"steps\":[{\"quantize\":{\"bits\":8}}],"
                                      "\"select\":{\"include\":[\"W\"]}}";
    double agree, snr_db;
    mp_dataset_t *ds = eval_dataset(&agree, &snr_db);
    mp_recipe_t *recipe = NULL;
    mp_model_t *out = NULL;
    mp_errctx_t err = {0};
    char *report = NULL;
    json_t *j, *e;

    ck_assert_msg(mp_recipe_parse(recipe_text, strlen(recipe_text), &recipe, &err) == 0, "%s",
                  err.msg);
    ck_assert_msg(mp_pipeline_run(eval_a, recipe, NULL, &out, &report, &err) == 0, "%s", err.msg);
    ck_assert_msg(mp_evaluate_pipeline(eval_a, out, ds, NULL, &report, &err) == 0, "%s", err.msg);
    j = json_loads(report, 0, NULL);
    e = json_object_get(j, "evaluation");
    /* the pipeline's figures stay; every top-1 is clear by 0.05, far above int8's error here */
    ck_assert_uint_eq(json_array_size(json_object_get(j, "tensors")), 1);
    ck_assert_int_eq(figure(j, "n_compressed", NULL), 1);
    ck_assert_double_eq(figure(e, "agreement", NULL), 1.0);
    ck_assert_double_eq_tol(figure(e, "before", "accuracy"), 0.75, 1e-9);
    ck_assert_double_eq_tol(figure(e, "after", "accuracy"), 0.75, 1e-9);
    ck_assert(figure(e, "output_snr_db", NULL) > 30);
    json_decref(j);
    free(report);
    /* a model without a graph cannot be evaluated; the report is left as it was */
    report = strdup("{}");
    ck_assert_int_eq(mp_evaluate_pipeline(out, out, ds, NULL, &report, &err), MP_EINVAL);
    ck_assert_str_eq(report, "{}");
    free(report);
    mp_model_free(out);
    mp_recipe_free(recipe);
    mp_dataset_free(ds);
}
END_TEST

START_TEST(test_evaluate_refusals)
{
    double agree, snr_db;
    mp_dataset_t *ds = eval_dataset(&agree, &snr_db), *wrong = NULL;
    const float x3[6] = {1, 2, 3, 4, 5, 6};
    const int64_t y9[2] = {9, 0};
    mp_model_t *m = mp_model_new();
    mp_errctx_t err = {0};
    const float x8[8] = {1, 0, 0, 0, 0, 1, 0, 0};
    const int64_t s24[2] = {2, 4}, s2[1] = {2};
    mp_eval_opts_t opts = {.latency_runs = 1001};
    atomic_int cancel = 1;
    char *text = (char *)&text;
    size_t n;
    unsigned char *b;

    ck_assert_int_eq(mp_evaluate(eval_a, eval_b, ds, &opts, &text, &err), MP_EINVAL);
    ck_assert_ptr_null(text);
    ck_assert_str_eq(err.msg, "latency_runs 1001: at most 1000");
    opts = (mp_eval_opts_t){.cancel = &cancel};
    ck_assert_int_eq(mp_evaluate(eval_a, eval_b, ds, &opts, &text, &err), MP_ECANCELED);
    ck_assert_int_eq(mp_evaluate(m, NULL, ds, NULL, &text, &err), MP_EINVAL);
    ck_assert_str_eq(err.msg, "original model: not ONNX: only a model with a graph can be run");
    /* samples of 3 values for a model taking 4 */
    b = npy_f32("(2, 3)", x3, 6, &n);
    wrong = parse_ok(b, n);
    ck_assert_int_eq(mp_evaluate(eval_a, NULL, wrong, NULL, &text, &err), MP_EINVAL);
    ck_assert_str_eq(err.msg, "original model: its input 'x' takes 4 values per sample (shape [1, "
                              "4] at batch 1); the dataset's samples hold 3");
    mp_dataset_free(wrong);
    free(b);
    /* labels that are not the model's classes */
    ck_assert_int_eq(mp_model_add_ref(m, "x", MP_DT_F32, 2, s24, x8, sizeof x8, &err), 0);
    ck_assert_int_eq(mp_model_add_ref(m, "y", MP_DT_I64, 1, s2, y9, sizeof y9, &err), 0);
    {
        char path[] = "/tmp/mp-check-eval-y-XXXXXX";
        int fd = mkstemp(path);
        close(fd);
        ck_assert_int_eq(mp_safetensors_save(m, path, &err), 0);
        ck_assert_int_eq(mp_dataset_load(path, &wrong, &err), 0);
        unlink(path);
    }
    ck_assert_int_eq(mp_evaluate(eval_a, NULL, wrong, NULL, &text, &err), MP_EINVAL);
    ck_assert_str_eq(err.msg, "the labels go up to 9 but the model gives 5 values per sample: "
                              "they are not its classes");
    mp_dataset_free(wrong);
    mp_model_free(m);
    mp_dataset_free(ds);
}
END_TEST

static Suite *dataset_suite(void)
{
    Suite *s = suite_create("dataset");
    TCase *tc = tcase_create("npy");

    tcase_add_test(tc, test_npy_f32);
    tcase_add_test(tc, test_npy_dtypes);
    tcase_add_test(tc, test_npy_versions);
    tcase_add_test(tc, test_npy_fortran);
    suite_add_tcase(s, tc);
    tc = tcase_create("npy_hostile");
    tcase_add_test(tc, test_npy_header_length);
    tcase_add_test(tc, test_npy_keys);
    tcase_add_test(tc, test_npy_dtype_refused);
    tcase_add_test(tc, test_npy_shape);
    tcase_add_test(tc, test_npy_data_length);
    tcase_add_test(tc, test_npy_nonfinite);
    suite_add_tcase(s, tc);
    tc = tcase_create("npz");
    tcase_add_test(tc, test_npz_stored_and_deflated);
    tcase_add_test(tc, test_npz_labels);
    tcase_add_test(tc, test_npz_bad_labels);
    tcase_add_test(tc, test_npz_missing_x);
    tcase_add_test(tc, test_zip64);
    suite_add_tcase(s, tc);
    tc = tcase_create("zip_hostile");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_zip_directory_offsets);
    tcase_add_test(tc, test_zip_size_lies);
    tcase_add_test(tc, test_zip_corrupt);
    tcase_add_test(tc, test_zip_overlap);
    tcase_add_test(tc, test_zip_bomb);
    tcase_add_test(tc, test_zip_every_byte);
    suite_add_tcase(s, tc);
    tc = tcase_create("files");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_safetensors);
    tcase_add_test(tc, test_not_a_dataset);
    tcase_add_test(tc, test_out_of_memory);
    tcase_add_test(tc, test_numpy_files);
    suite_add_tcase(s, tc);
    tc = tcase_create("recipe_evaluate");
    tcase_add_test(tc, test_recipe_evaluate);
    suite_add_tcase(s, tc);
    tc = tcase_create("evaluate");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, eval_setup, eval_teardown);
    tcase_add_test(tc, test_evaluate_before_after);
    tcase_add_test(tc, test_evaluate_compressed);
    tcase_add_test(tc, test_evaluate_refusals);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(dataset_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
