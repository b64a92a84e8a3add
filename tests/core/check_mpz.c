/* check_mpz.c — the .mpz container (core/mpz.c) and its recognition by mp_model_load.
 *
 * Round trips give back every name, dtype, shape, byte and metadata entry at sparsities 0 to
 * 0.99; the coded size of a 90 % sparse tensor is held to the entropy of its positions and
 * values; the layout is checked byte for byte against docs/mpz.md by a writer in this file
 * that follows the document (with its own bitwise CRC-32), which also forges the hostile files:
 * absurd counts and lengths with valid checksums, each refused with its exact message. Every
 * byte of a small file is flipped and the file cut at every length: always MP_EFORMAT, never a
 * crash, a leak or an over-read (the suite runs under ASan in CI).
 */
#include "mp_int.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* ---- helpers --------------------------------------------------------------------------------- */

static uint64_t rng_state;

static uint64_t rng_next(void)
{
    /* splitmix64 */
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15u);

    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}

/* n bytes of which exactly round(sparsity * n) are 0 (at random places) and the others drawn
 * uniformly from 1..n_values-1. */
static uint8_t *sparse_bytes(size_t n, double sparsity, int n_values)
{
    uint8_t *b = malloc(n ? n : 1);
    size_t n_zero = (size_t)llround(sparsity * (double)n);

    ck_assert_ptr_nonnull(b);
    for (size_t i = 0; i < n; i++) {
        b[i] = i < n_zero ? 0 : (uint8_t)(1 + rng_next() % (uint64_t)(n_values - 1));
    }
    for (size_t i = n; i > 1; i--) { /* Fisher-Yates */
        size_t j = (size_t)(rng_next() % i);
        uint8_t t = b[i - 1];

        b[i - 1] = b[j];
        b[j] = t;
    }
    return b;
}

static void add(mp_model_t *m, const char *name, mp_dtype_t dt, int n_dims, const int64_t *shape,
                const void *data)
{
    size_t n_bytes;
    mp_errctx_t err = {0};

    ck_assert_int_eq(mp__shape_bytes(dt, n_dims, shape, NULL, &n_bytes), 0);
    ck_assert_msg(mp_model_add(m, name, dt, n_dims, shape, data, n_bytes, &err) == 0, "%s",
                  err.msg);
}

/* A model as the pipeline makes them: shared-weight indices with a codebook, int8 codes with
 * scales, untouched F32, a scalar, an empty tensor, metadata. */
static mp_model_t *pipeline_model(double sparsity, size_t rows)
{
    mp_model_t *m = mp_model_new();
    const int64_t s_idx[2] = {(int64_t)rows, 96};
    const int64_t s_cb[1] = {16};
    const int64_t s_q[2] = {(int64_t)rows, 40};
    const int64_t s_scale[1] = {(int64_t)rows};
    const int64_t s_empty[2] = {0, 5};
    float codebook[16], *scale = malloc(rows * sizeof(float)), scalar = 0.5f;
    uint8_t *idx = sparse_bytes(rows * 96, sparsity, 16);
    uint8_t *q = sparse_bytes(rows * 40, sparsity, 256);

    ck_assert_ptr_nonnull(m);
    ck_assert_ptr_nonnull(scale);
    for (int i = 0; i < 16; i++) {
        codebook[i] = (float)i * 0.125f - 1.0f;
    }
    for (size_t i = 0; i < rows; i++) {
        scale[i] = 0.01f * (float)(i + 1);
    }
    add(m, "fc1.weight_indices", MP_DT_U8, 2, s_idx, idx);
    add(m, "fc1.weight_codebook", MP_DT_F32, 1, s_cb, codebook);
    add(m, "fc2.weight", MP_DT_I8, 2, s_q, q);
    add(m, "fc2.weight_scale", MP_DT_F32, 1, s_scale, scale);
    add(m, "temperature", MP_DT_F32, 0, NULL, &scalar);
    add(m, "empty", MP_DT_U8, 2, s_empty, NULL);
    ck_assert_int_eq(mp_model_set_meta(m, "format", "pt"), 0);
    ck_assert_int_eq(mp_model_set_meta(m, "modelpress", "{\"steps\":[\"prune\",\"share\"]}"), 0);
    free(scale);
    free(idx);
    free(q);
    return m;
}

static void assert_models_equal(const mp_model_t *a, const mp_model_t *b)
{
    ck_assert_uint_eq(a->n_tensors, b->n_tensors);
    for (size_t i = 0; i < a->n_tensors; i++) {
        const mp_tensor_t *x = &a->tensors[i];
        const mp_tensor_t *y = &b->tensors[i];

        ck_assert_str_eq(x->name, y->name);
        ck_assert_int_eq(x->dtype, y->dtype);
        ck_assert_int_eq(x->n_dims, y->n_dims);
        for (int d = 0; d < MP_MAX_DIMS; d++) {
            ck_assert_int_eq(x->shape[d], y->shape[d]);
        }
        ck_assert_uint_eq(x->n_bytes, y->n_bytes);
        ck_assert_int_eq(memcmp(x->data, y->data, x->n_bytes), 0);
    }
    ck_assert_uint_eq(a->n_meta, b->n_meta);
    for (size_t i = 0; i < a->n_meta; i++) {
        ck_assert_str_eq(a->meta_keys[i], b->meta_keys[i]);
        ck_assert_str_eq(a->meta_values[i], b->meta_values[i]);
    }
}

static uint8_t *encode(const mp_model_t *m, size_t *n)
{
    uint8_t *buf = NULL;
    mp_errctx_t err = {0};

    ck_assert_msg(mp_mpz_encode(m, &buf, n, &err) == 0, "%s", err.msg);
    return buf;
}

static mp_model_t *parse_ok(const uint8_t *buf, size_t n)
{
    mp_model_t *m = NULL;
    mp_errctx_t err = {0};

    ck_assert_msg(mp_mpz_parse(buf, n, &m, &err) == 0, "%s", err.msg);
    return m;
}

/* Parse a copy of buf[0..n) (exactly n bytes, so ASan sees any over-read); the code. */
static int parse_copy(const uint8_t *buf, size_t n, mp_errctx_t *err)
{
    uint8_t *copy = malloc(n ? n : 1);
    mp_model_t *m = (mp_model_t *)&m;
    int rc;

    ck_assert_ptr_nonnull(copy);
    memcpy(copy, buf, n);
    rc = mp_mpz_parse(copy, n, &m, err);
    if (rc == 0) {
        mp_model_free(m);
    } else {
        ck_assert_ptr_null(m);
    }
    free(copy);
    return rc;
}

static void expect_fail(const uint8_t *buf, size_t n, int code, const char *msg)
{
    mp_errctx_t err = {0};

    ck_assert_int_eq(parse_copy(buf, n, &err), code);
    ck_assert_int_eq(err.code, code);
    ck_assert_str_eq(err.msg, msg);
}

/* ---- the layout of docs/mpz.md, written independently ---------------------------------------- */

/* Bitwise CRC-32 (reflected 0xEDB88320), the definition rather than mpz.c's sliced tables. */
static uint32_t crc32_bitwise(const uint8_t *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;

    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) {
            c = c & 1 ? (c >> 1) ^ 0xEDB88320u : c >> 1;
        }
    }
    return ~c;
}

typedef struct fb {
    uint8_t b[8192];
    size_t n;
    size_t part; /* where the current CRC-covered part began */
} fb_t;

static void fb_le(fb_t *f, uint64_t v, int bytes)
{
    ck_assert_uint_le(f->n + (size_t)bytes, sizeof f->b);
    for (int i = 0; i < bytes; i++) {
        f->b[f->n++] = (uint8_t)(v >> (8 * i));
    }
}

static void fb_bytes(fb_t *f, const void *p, size_t n)
{
    ck_assert_uint_le(f->n + n, sizeof f->b);
    memcpy(f->b + f->n, p, n);
    f->n += n;
}

static void fb_crc(fb_t *f)
{
    fb_le(f, crc32_bitwise(f->b + f->part, f->n - f->part), 4);
    f->part = f->n;
}

static void fb_header(fb_t *f, unsigned version, unsigned n_meta, unsigned n_tensors)
{
    f->n = f->part = 0;
    fb_bytes(f, "\x89MPZ\r\n\x1a\n", 8);
    fb_le(f, version, 2);
    fb_le(f, 0, 2);
    fb_le(f, n_meta, 4);
    fb_le(f, n_tensors, 4);
    fb_crc(f);
}

static void fb_meta(fb_t *f, const char *key, const char *value)
{
    fb_le(f, strlen(key), 4);
    fb_le(f, strlen(value), 4);
    fb_bytes(f, key, strlen(key));
    fb_bytes(f, value, strlen(value));
}

/* A record's fixed part, shape and name; the payload follows, then fb_crc. */
static void fb_record(fb_t *f, int encoding, int dtype, int n_dims, const uint64_t *shape,
                      const char *name, uint64_t payload_bytes)
{
    f->b[f->n++] = (uint8_t)encoding;
    f->b[f->n++] = (uint8_t)dtype;
    f->b[f->n++] = (uint8_t)n_dims;
    f->b[f->n++] = 0;
    fb_le(f, strlen(name), 4);
    fb_le(f, payload_bytes, 8);
    for (int d = 0; d < n_dims; d++) {
        fb_le(f, shape[d], 8);
    }
    fb_bytes(f, name, strlen(name));
}

static void fb_trailer(fb_t *f)
{
    f->part = f->n;
    fb_le(f, f->n + 16, 8);
    fb_bytes(f, "MPZE", 4);
    fb_crc(f);
}

/* A valid file with one metadata entry and one raw U8 tensor "t" of the given bytes. */
static void fb_simple(fb_t *f, const uint8_t *bytes, uint64_t n)
{
    fb_header(f, 1, 1, 1);
    fb_meta(f, "k", "v");
    fb_crc(f);
    fb_record(f, 0, MP_DT_U8, 1, &n, "t", n);
    fb_bytes(f, bytes, (size_t)n);
    fb_crc(f);
    fb_trailer(f);
}

/* Walk a file's tensor records as docs/mpz.md lays them out: each record's encoding, payload
 * size and (coded ones) gap width go to the arrays; returns the number of records. */
static size_t walk_records(const uint8_t *b, size_t n, int *enc, uint64_t *payload, int *gap_bits)
{
    size_t pos = 24;
    uint32_t n_meta = (uint32_t)(b[12] | b[13] << 8 | b[14] << 16 | (uint32_t)b[15] << 24);
    uint32_t n_tensors = (uint32_t)(b[16] | b[17] << 8 | b[18] << 16 | (uint32_t)b[19] << 24);

    for (uint32_t i = 0; i < n_meta; i++) {
        uint64_t nk = 0, nv = 0;

        for (int k = 3; k >= 0; k--) {
            nk = nk << 8 | b[pos + k];
            nv = nv << 8 | b[pos + 4 + k];
        }
        pos += 8 + nk + nv;
    }
    pos += 4;
    for (uint32_t i = 0; i < n_tensors; i++) {
        uint64_t nn = 0, np = 0;

        for (int k = 3; k >= 0; k--) {
            nn = nn << 8 | b[pos + 4 + k];
        }
        for (int k = 7; k >= 0; k--) {
            np = np << 8 | b[pos + 8 + k];
        }
        enc[i] = b[pos];
        payload[i] = np;
        pos += 16 + 8 * (size_t)b[pos + 2] + nn;
        gap_bits[i] = enc[i] == 1 ? b[pos + 1] : -1;
        pos += np + 4;
        ck_assert_uint_le(pos, n);
    }
    return n_tensors;
}

/* ---- round trips ----------------------------------------------------------------------------- */

START_TEST(test_round_trip_sparsities)
{
    static const double sparsities[] = {0, 0.5, 0.9, 0.99};
    /* The 1-byte tensors' coding, per sparsity: records 0 (U8 indices, 15 values) and 2 (I8,
     * 255 values). Dense indices are plain Huffman (gap width 0), dense random int8 is no
     * better coded (raw). */
    static const int want_enc[4][2] = {{1, 0}, {1, 1}, {1, 1}, {1, 1}};

    for (int k = 0; k < 4; k++) {
        mp_model_t *m, *back;
        uint8_t *buf;
        size_t n;
        int enc[8], gap_bits[8];
        uint64_t payload[8];

        rng_state = 1000 + (uint64_t)k;
        m = pipeline_model(sparsities[k], 256);
        buf = encode(m, &n);
        ck_assert_uint_eq(walk_records(buf, n, enc, payload, gap_bits), 6);
        ck_assert_int_eq(enc[0], want_enc[k][0]);
        ck_assert_int_eq(enc[2], want_enc[k][1]);
        /* The F32 tensors and the empty one are raw, with exactly their bytes. */
        ck_assert_int_eq(enc[1], 0);
        ck_assert_uint_eq(payload[1], 64);
        ck_assert_int_eq(enc[3], 0);
        ck_assert_uint_eq(payload[3], 256 * 4);
        ck_assert_int_eq(enc[4], 0);
        ck_assert_uint_eq(payload[4], 4);
        ck_assert_int_eq(enc[5], 0);
        ck_assert_uint_eq(payload[5], 0);
        /* Dense indices cost about log2(15) bits each: under 4 of their 8. */
        ck_assert_uint_lt(payload[0], 256 * 96 / 2);
        if (k == 0) {
            ck_assert_int_eq(gap_bits[0], 0);
        }
        back = parse_ok(buf, n);
        assert_models_equal(m, back);
        mp_model_free(back);
        mp_model_free(m);
        free(buf);
    }
}
END_TEST

/* Entropy of x[0..n)'s non-zero positions (n H2(nnz/n)) plus that of its non-zero values. */
static double sparse_entropy_bits(const uint8_t *x, size_t n)
{
    uint64_t counts[256] = {0};
    double nnz, p, h;

    for (size_t i = 0; i < n; i++) {
        counts[x[i]]++;
    }
    nnz = (double)(n - counts[0]);
    p = nnz / (double)n;
    h = -(double)n * (p * log2(p) + (1 - p) * log2(1 - p));
    for (int v = 1; v < 256; v++) {
        if (counts[v]) {
            h -= (double)counts[v] * log2((double)counts[v] / nnz);
        }
    }
    return h;
}

/* Deep Compression's case: 90 % of the indices pruned to 0, the rest spread over 15 clusters.
 * Gaps and values each Huffman-coded come within 10 % of the entropy (4.7 bits of position
 * and 3.9 bits of value per kept weight), far below the 8 bits a raw byte costs. */
START_TEST(test_entropy_bound)
{
    const size_t n = (size_t)1 << 20;
    const int64_t shape[2] = {1024, 1024};
    mp_model_t *m = mp_model_new();
    uint8_t *x, *buf;
    size_t n_bytes;
    double h;
    int enc[1], gap_bits[1];
    uint64_t payload[1];

    rng_state = 90;
    x = sparse_bytes(n, 0.9, 16);
    add(m, "conv.weight_indices", MP_DT_U8, 2, shape, x);
    buf = encode(m, &n_bytes);
    h = sparse_entropy_bits(x, n);
    ck_assert_double_gt(h, 0.85 * (double)n); /* about 0.86 bits per element */
    ck_assert_double_lt(8.0 * (double)n_bytes, 1.10 * h);
    ck_assert_double_gt(8.0 * (double)n_bytes, h);
    walk_records(buf, n_bytes, enc, payload, gap_bits);
    ck_assert_int_eq(enc[0], 1);
    ck_assert_int_ge(gap_bits[0], 3);
    mp_model_t *back = parse_ok(buf, n_bytes);
    assert_models_equal(m, back);
    mp_model_free(back);
    mp_model_free(m);
    free(x);
    free(buf);
}
END_TEST

/* Coding that does not pay is not used: uniform random bytes and a 3-byte tensor stay raw. */
START_TEST(test_raw_fallback)
{
    const int64_t big[1] = {4096}, tiny[1] = {3};
    static const uint8_t three[3] = {0, 0, 7};
    mp_model_t *m = mp_model_new(), *back;
    uint8_t *x = malloc(4096), *buf;
    size_t n;
    int enc[2], gap_bits[2];
    uint64_t payload[2];

    rng_state = 5;
    for (int i = 0; i < 4096; i++) {
        x[i] = (uint8_t)rng_next();
    }
    add(m, "noise", MP_DT_I8, 1, big, x);
    add(m, "tiny", MP_DT_BOOL, 1, tiny, three);
    buf = encode(m, &n);
    ck_assert_uint_eq(walk_records(buf, n, enc, payload, gap_bits), 2);
    ck_assert_int_eq(enc[0], 0);
    ck_assert_uint_eq(payload[0], 4096);
    ck_assert_int_eq(enc[1], 0);
    ck_assert_uint_eq(payload[1], 3);
    /* header 24, metadata CRC 4, records 16+8+5+4096+4 and 16+8+4+3+4, trailer 16 */
    ck_assert_uint_eq(n, 24 + 4 + (16 + 8 + 5 + 4096 + 4) + (16 + 8 + 4 + 3 + 4) + 16);
    back = parse_ok(buf, n);
    assert_models_equal(m, back);
    mp_model_free(back);
    mp_model_free(m);
    free(x);
    free(buf);
}
END_TEST

/* The bytes of a small file, exactly as docs/mpz.md describes them. */
START_TEST(test_layout_bytes)
{
    static const uint8_t data[2] = {1, 2};
    mp_model_t *m = mp_model_new(), *e = mp_model_new(), *back;
    const int64_t shape[1] = {2};
    uint8_t *buf;
    size_t n;
    fb_t f;

    ck_assert_uint_eq(crc32_bitwise((const uint8_t *)"123456789", 9), 0xCBF43926u);
    add(m, "t", MP_DT_U8, 1, shape, data);
    ck_assert_int_eq(mp_model_set_meta(m, "k", "v"), 0);
    buf = encode(m, &n);
    fb_simple(&f, data, 2);
    ck_assert_uint_eq(n, 24 + (8 + 2 + 4) + (16 + 8 + 1 + 2 + 4) + 16);
    ck_assert_uint_eq(n, f.n);
    ck_assert_int_eq(memcmp(buf, f.b, n), 0);
    free(buf);
    /* A model with nothing in it: header, the empty metadata's CRC (of no bytes: 0), trailer. */
    buf = encode(e, &n);
    ck_assert_uint_eq(n, 44);
    ck_assert_uint_eq(buf[24] | buf[25] | buf[26] | buf[27], 0);
    back = parse_ok(buf, n);
    ck_assert_uint_eq(back->n_tensors + back->n_meta, 0);
    mp_model_free(back);
    free(buf);
    mp_model_free(m);
    mp_model_free(e);
}
END_TEST

/* Dense int8 codes of a bell-shaped distribution: every element is an entry (gap width 0) and
 * the bytes are Huffman-coded near their entropy of about 5.4 bits. */
START_TEST(test_dense_int8)
{
    const int64_t shape[2] = {128, 256};
    mp_model_t *m = mp_model_new(), *back;
    uint8_t *x = malloc(128 * 256), *buf;
    size_t n;
    int enc[1], gap_bits[1];
    uint64_t payload[1];

    rng_state = 8;
    for (int i = 0; i < 128 * 256; i++) {
        int s = 0;

        for (int k = 0; k < 4; k++) {
            s += (int)(rng_next() % 21) - 10; /* sum of 4 uniforms: std about 12 */
        }
        x[i] = (uint8_t)(int8_t)s;
    }
    add(m, "fc.weight", MP_DT_I8, 2, shape, x);
    buf = encode(m, &n);
    walk_records(buf, n, enc, payload, gap_bits);
    ck_assert_int_eq(enc[0], 1);
    ck_assert_int_eq(gap_bits[0], 0);
    ck_assert_uint_lt(payload[0], 128 * 256 * 6 / 8);
    back = parse_ok(buf, n);
    assert_models_equal(m, back);
    mp_model_free(back);
    mp_model_free(m);
    free(x);
    free(buf);
}
END_TEST

/* ---- files ----------------------------------------------------------------------------------- */

static void temp_path(char *path)
{
    int fd;

    strcpy(path, "/tmp/check_mpz_XXXXXX");
    fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
}

START_TEST(test_save_and_load)
{
    mp_model_t *m, *back = NULL;
    mp_errctx_t err = {0};
    char path[32];
    uint8_t *buf, *file;
    size_t n;
    FILE *fp;

    rng_state = 3;
    m = pipeline_model(0.9, 64);
    temp_path(path);
    ck_assert_msg(mp_mpz_save(m, path, &err) == 0, "%s", err.msg);
    /* The file is the encoded image, byte for byte. */
    buf = encode(m, &n);
    file = malloc(n + 1);
    fp = fopen(path, "rb");
    ck_assert_uint_eq(fread(file, 1, n + 1, fp), n);
    fclose(fp);
    ck_assert_int_eq(memcmp(buf, file, n), 0);
    ck_assert_int_eq(mp_mpz_load(path, &back, &err), 0);
    assert_models_equal(m, back);
    mp_model_free(back);
    /* mp_model_load knows it by its magic. */
    ck_assert_msg(mp_model_load(path, &back, &err) == 0, "%s", err.msg);
    assert_models_equal(m, back);
    mp_model_free(back);
    /* ... and a damaged one gets the .mpz reader's message. */
    fp = fopen(path, "wb");
    ck_assert_uint_eq(fwrite(file, 1, n - 1, fp), n - 1);
    fclose(fp);
    ck_assert_int_eq(mp_model_load(path, &back, &err), MP_EFORMAT);
    ck_assert_ptr_null(back);
    ck_assert_int_eq(strncmp(err.msg, "trailer at byte ", 16), 0);
    unlink(path);
    /* Files that cannot be: a missing one, a folder to write to. */
    ck_assert_int_eq(mp_mpz_load(path, &back, &err), MP_ENOENT);
    ck_assert_int_eq(mp_mpz_save(m, "/tmp", &err), MP_EIO);
    ck_assert_str_eq(err.msg, "/tmp: cannot create: Is a directory");
    mp_model_free(m);
    free(buf);
    free(file);
}
END_TEST

/* A model that decodes to more than 64 MiB + 1024 x its file size gets zero ballast before the
 * trailer; without the ballast the reader refuses it before allocating. */
START_TEST(test_ballast)
{
    const size_t n_el = (size_t)72 << 20;
    const int64_t shape[1] = {(int64_t)n_el};
    mp_model_t *m = mp_model_new(), *back;
    uint8_t *zeros = calloc(n_el, 1), *buf;
    size_t n, used;
    fb_t f;

    add(m, "pruned", MP_DT_U8, 1, shape, zeros);
    free(zeros);
    buf = encode(m, &n);
    /* 8 MiB over the free 64 MiB at 1024 bytes per file byte: 8192 bytes. */
    ck_assert_uint_eq(n, 8192);
    back = parse_ok(buf, n);
    assert_models_equal(m, back);
    mp_model_free(back);
    /* The same without ballast: the records, then a trailer of the shorter length. */
    used = 24 + 4 + 16 + 8 + 6 + 12 + 1 + 1 + 4;
    ck_assert_int_eq(buf[used], 0);
    memcpy(f.b, buf, used);
    f.n = f.part = used;
    fb_trailer(&f);
    expect_fail(f.b, f.n, MP_EFORMAT,
                "tensor 'pruned' at byte 28: 75497472 decoded bytes pass the expansion limit of "
                "this 92-byte file (67203072 bytes left)");
    mp_model_free(m);
    free(buf);
}
END_TEST

/* Allocations that fail (an address-space limit a little above what the process uses) are
 * MP_ENOMEM naming the tensor, with nothing leaked or half-built. Not under ASan, whose shadow
 * memory needs the address space. */
START_TEST(test_out_of_memory)
{
#if defined(__SANITIZE_ADDRESS__)
    fputs("test_out_of_memory: skipped under AddressSanitizer\n", stderr);
#else
    const size_t n_el = (size_t)72 << 20;
    const int64_t shape[1] = {(int64_t)n_el};
    const int64_t fshape[1] = {(int64_t)(n_el / 4)};
    mp_model_t *m = mp_model_new(), *f = mp_model_new(), *back = (mp_model_t *)&back;
    uint8_t *zeros = calloc(n_el, 1), *buf, *out = NULL;
    mp_errctx_t err = {0};
    struct rlimit old, lim;
    unsigned long vm_pages = 0;
    size_t n, n_out = 0;
    FILE *fp;
    int rc_parse, rc_encode;

    ck_assert_ptr_nonnull(zeros);
    add(m, "pruned", MP_DT_U8, 1, shape, zeros);
    ck_assert_int_eq(mp_model_add_ref(f, "big", MP_DT_F32, 1, fshape, zeros, n_el, &err), 0);
    buf = encode(m, &n);
    fp = fopen("/proc/self/statm", "r");
    ck_assert_ptr_nonnull(fp);
    ck_assert_int_eq(fscanf(fp, "%lu", &vm_pages), 1);
    fclose(fp);
    ck_assert_int_eq(getrlimit(RLIMIT_AS, &old), 0);
    lim = old;
    lim.rlim_cur = (rlim_t)vm_pages * (rlim_t)sysconf(_SC_PAGESIZE) + ((rlim_t)32 << 20);
    ck_assert_int_eq(setrlimit(RLIMIT_AS, &lim), 0);
    rc_parse = mp_mpz_parse(buf, n, &back, &err);
    rc_encode = mp_mpz_encode(f, &out, &n_out, NULL);
    ck_assert_int_eq(setrlimit(RLIMIT_AS, &old), 0);
    ck_assert_int_eq(rc_parse, MP_ENOMEM);
    ck_assert_str_eq(err.msg, "tensor 'pruned': out of memory for 75497472 bytes");
    ck_assert_ptr_null(back);
    ck_assert_int_eq(rc_encode, MP_ENOMEM);
    ck_assert_ptr_null(out);
    ck_assert_uint_eq(n_out, 0);
    mp_model_free(m);
    mp_model_free(f);
    free(zeros);
    free(buf);
#endif
}
END_TEST

/* ---- hostile files --------------------------------------------------------------------------- */

/* Every byte of a small file, flipped in three ways: always MP_EFORMAT with a message that
 * names a byte offset — the CRCs catch what the structure does not. */
START_TEST(test_every_byte_flipped)
{
    static const uint8_t masks[3] = {0x01, 0x80, 0xFF};
    mp_model_t *m;
    uint8_t *buf;
    size_t n;
    int n_crc = 0;

    rng_state = 11;
    m = pipeline_model(0.9, 4);
    buf = encode(m, &n);
    ck_assert_uint_lt(n, 2000);
    for (size_t i = 0; i < n; i++) {
        for (int k = 0; k < 3; k++) {
            mp_errctx_t err = {0};

            buf[i] ^= masks[k];
            ck_assert_int_eq(parse_copy(buf, n, &err), MP_EFORMAT);
            ck_assert_ptr_nonnull(strstr(err.msg, "byte"));
            n_crc += strstr(err.msg, "CRC-32") != NULL;
            buf[i] ^= masks[k];
        }
    }
    /* Most flips land in data only the checksums guard. */
    ck_assert_int_gt(n_crc, (int)n);
    mp_model_free(m);
    free(buf);
}
END_TEST

START_TEST(test_every_truncation)
{
    mp_model_t *m;
    uint8_t *buf;
    size_t n;

    rng_state = 12;
    m = pipeline_model(0.5, 4);
    buf = encode(m, &n);
    for (size_t cut = 0; cut < n; cut++) {
        mp_errctx_t err = {0};

        ck_assert_int_eq(parse_copy(buf, cut, &err), MP_EFORMAT);
    }
    expect_fail(buf, 7, MP_EFORMAT,
                "not an .mpz file: bytes 0-7 are not the .mpz magic \\x89MPZ\\r\\n\\x1a\\n");
    expect_fail(buf, 43, MP_EFORMAT, ".mpz file of 43 bytes, too short (at least 44)");
    mp_model_free(m);
    free(buf);
}
END_TEST

START_TEST(test_header_fields)
{
    static const uint8_t d[2] = {1, 2};
    fb_t f;

    /* A later version, or flags, with a valid CRC: not ours to read. */
    fb_header(&f, 2, 0, 0);
    fb_crc(&f);
    fb_trailer(&f);
    expect_fail(f.b, f.n, MP_EUNSUPPORTED, ".mpz version 2 at byte 8; this reader knows version 1");
    fb_simple(&f, d, 2);
    f.b[20] ^= 1;
    expect_fail(f.b, f.n, MP_EFORMAT,
                "header at byte 0: CRC-32 0x0582d1e1 stored at byte 20, computed 0x0582d1e0");
    /* Counts no file could hold. */
    fb_header(&f, 1, 0, 0xFFFFFFFFu);
    fb_crc(&f);
    fb_trailer(&f);
    expect_fail(f.b, f.n, MP_EFORMAT,
                "header: 4294967295 tensors at byte 16, but the 0 bytes from byte 28 hold at "
                "most 0");
    fb_header(&f, 1, 5000, 0);
    fb_crc(&f);
    fb_trailer(&f);
    expect_fail(f.b, f.n, MP_EFORMAT,
                "header: 5000 metadata entries at byte 12, more than the 4096 allowed");
    fb_header(&f, 1, 1, 0);
    fb_le(&f, 0xFFFFFFFFu, 4);
    fb_le(&f, 0xFFFFFFFFu, 4);
    fb_crc(&f);
    fb_trailer(&f);
    expect_fail(f.b, f.n, MP_EFORMAT,
                "metadata entry 0 at byte 24: key of 4294967295 and value of 4294967295 bytes "
                "pass the end of the data at byte 36");
    /* The trailer must give the file's real length. */
    fb_simple(&f, d, 2);
    f.n -= 16;
    f.part = f.n;
    fb_le(&f, f.n + 17, 8);
    fb_bytes(&f, "MPZE", 4);
    fb_crc(&f);
    expect_fail(f.b, f.n, MP_EFORMAT,
                "trailer at byte 69: the file was written with 86 bytes but has 85");
    /* Ballast must be zero. */
    fb_simple(&f, d, 2);
    f.n -= 16;
    f.part = f.n;
    fb_le(&f, 0x0100, 2);
    f.part = f.n;
    fb_trailer(&f);
    expect_fail(f.b, f.n, MP_EFORMAT,
                "byte 70: 0x01 after the last tensor, where only zero ballast may stand");
}
END_TEST

START_TEST(test_metadata_fields)
{
    fb_t f;

    fb_header(&f, 1, 2, 0);
    fb_meta(&f, "k", "v");
    fb_meta(&f, "k", "w");
    fb_crc(&f);
    fb_trailer(&f);
    expect_fail(f.b, f.n, MP_EFORMAT, "metadata entry 'k' at byte 34: the key appears twice");
    fb_header(&f, 1, 1, 0);
    fb_le(&f, 3, 4);
    fb_le(&f, 0, 4);
    fb_bytes(&f, "a\0b", 3);
    fb_crc(&f);
    fb_trailer(&f);
    expect_fail(f.b, f.n, MP_EFORMAT,
                "metadata entry 'a?b' at byte 24: a NUL byte inside its key or value");
}
END_TEST

/* A file of one record and no metadata: p[0..np) as its payload, declared as payload_bytes
 * (normally np), with valid CRCs throughout. */
static void fb_one(fb_t *f, int encoding, int dtype, int n_dims, const uint64_t *shape,
                   const char *name, const uint8_t *p, size_t np, uint64_t payload_bytes)
{
    fb_header(f, 1, 0, 1);
    fb_crc(f);
    fb_record(f, encoding, dtype, n_dims, shape, name, payload_bytes);
    fb_bytes(f, p, np);
    fb_crc(f);
    fb_trailer(f);
}

/* A coded record of n U8 elements around a hand-made payload. */
static void fb_coded(fb_t *f, uint64_t n, const uint8_t *payload, size_t np)
{
    fb_one(f, 1, MP_DT_U8, 1, &n, "w", payload, np, np);
}

START_TEST(test_record_fields)
{
    static const uint8_t d[4] = {0};
    const uint64_t two[1] = {2}, huge[2] = {(uint64_t)1 << 62, (uint64_t)1 << 62};
    const uint64_t neg[1] = {(uint64_t)1 << 63}, nine[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    fb_t f;

    /* Lengths past the end, or too many dimensions: found before the CRC is computed. */
    fb_one(&f, 0, MP_DT_U8, 1, two, "t", d, 2, UINT64_MAX);
    expect_fail(f.b, f.n, MP_EFORMAT,
                "tensor record 0 at byte 28: a name of 1 and a payload of 18446744073709551615 "
                "bytes pass the end of the data at byte 59");
    fb_one(&f, 0, MP_DT_U8, 9, nine, "t", d, 1, 1);
    expect_fail(f.b, f.n, MP_EFORMAT, "tensor record 0 at byte 30: 9 dimensions, at most 8");
    /* Shapes: a product that overflows, a dimension above INT64_MAX, bytes that disagree. */
    fb_one(&f, 0, MP_DT_U8, 2, huge, "t", d, 0, 0);
    expect_fail(f.b, f.n, MP_EFORMAT, "tensor 't' at byte 44: its shape's byte count overflows");
    fb_one(&f, 0, MP_DT_U8, 1, neg, "t", d, 0, 0);
    expect_fail(f.b, f.n, MP_EFORMAT, "tensor 't' at byte 44: dimension 0 is 9223372036854775808");
    fb_one(&f, 0, MP_DT_F32, 1, two, "t", d, 4, 4);
    expect_fail(f.b, f.n, MP_EFORMAT,
                "tensor 't' at byte 36: 4 raw bytes, its shape of F32 needs 8");
    /* Unknown encoding or dtype; a coded F16; an empty name; a duplicate name. */
    fb_one(&f, 2, 13, 1, two, "t", d, 0, 0);
    expect_fail(f.b, f.n, MP_EFORMAT,
                "tensor 't' at byte 28: encoding 2, dtype 13, reserved byte 0 (known: encodings "
                "0-1, dtypes 0-12, reserved 0)");
    fb_one(&f, 1, MP_DT_F16, 1, two, "t", d, 0, 0);
    expect_fail(f.b, f.n, MP_EFORMAT,
                "tensor 't' at byte 29: coded, but F16 elements are not 1 byte");
    fb_one(&f, 0, MP_DT_U8, 1, two, "", d, 2, 2);
    expect_fail(f.b, f.n, MP_EFORMAT,
                "tensor '' at byte 52: an empty name or a NUL byte inside it");
    fb_header(&f, 1, 0, 2);
    fb_crc(&f);
    for (int k = 0; k < 2; k++) {
        fb_record(&f, 0, MP_DT_U8, 1, two, "t", 2);
        fb_bytes(&f, d, 2);
        fb_crc(&f);
    }
    fb_trailer(&f);
    expect_fail(f.b, f.n, MP_EFORMAT, "tensor 't' at byte 83: a second tensor of that name");
}
END_TEST

START_TEST(test_coded_payloads)
{
    /* dominant 0, gap width 0, both streams constant (gap 0, value 5), 4 entries: 5 5 5 5 */
    uint8_t p[12 + 2 + 128 + 8] = {0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 5};
    mp_model_t *m;
    fb_t f;

    fb_coded(&f, 4, p, 14);
    m = parse_ok(f.b, f.n);
    ck_assert_uint_eq(m->n_tensors, 1);
    ck_assert_int_eq(memcmp(m->tensors[0].data, "\5\5\5\5", 4), 0);
    mp_model_free(m);
    /* More entries than elements; a gap past the end; a gap width of 9. */
    p[4] = 5;
    fb_coded(&f, 4, p, 14);
    expect_fail(f.b, f.n, MP_EFORMAT, "tensor 'w': byte 57: 5 entries for 4 elements");
    p[4] = 2;
    p[1] = 1;  /* gaps 0..1, the constant gap 0 ... */
    p[12] = 1; /* ... made 1: entries at elements 1 and 3 */
    fb_coded(&f, 4, p, 14);
    m = parse_ok(f.b, f.n);
    ck_assert_int_eq(memcmp(m->tensors[0].data, "\0\5\0\5", 4), 0);
    mp_model_free(m);
    fb_coded(&f, 3, p, 14);
    expect_fail(f.b, f.n, MP_EFORMAT,
                "tensor 'w': entry 1 at byte 67 bit 0: a gap of 1 past element 2 of 3");
    p[1] = 9;
    fb_coded(&f, 4, p, 14);
    expect_fail(f.b, f.n, MP_EFORMAT, "tensor 'w': byte 54: gap width of 9 bits, at most 8");
    /* The dominant value as the last entry: a filler where none belongs. */
    p[1] = 0;
    p[12] = 0;
    p[13] = 0;
    fb_coded(&f, 4, p, 14);
    expect_fail(f.b, f.n, MP_EFORMAT,
                "tensor 'w': entry 1 at byte 67 bit 0: the dominant value 0x00 where no filler "
                "belongs");
    /* A Huffman value table: symbols 1 and 2 with one bit each, but no bits follow. */
    p[3] = 1;
    memset(p + 13, 0, 128);
    p[13] = 0x10; /* symbol 1: length 1 (high nibble of byte 0) */
    p[14] = 0x01; /* symbol 2: length 1 (low nibble of byte 1) */
    fb_coded(&f, 4, p, 12 + 1 + 128);
    expect_fail(f.b, f.n, MP_EFORMAT,
                "tensor 'w': entry 0 of 2 at byte 194 bit 0: the code stream ends too soon");
    /* Bits 1 0 -> symbols 2 then 1: two elements 2 1, then padding and a byte too many. */
    p[141] = 0x80;
    fb_coded(&f, 2, p, 12 + 1 + 128 + 1);
    m = parse_ok(f.b, f.n);
    ck_assert_int_eq(memcmp(m->tensors[0].data, "\2\1", 2), 0);
    mp_model_free(m);
    fb_coded(&f, 2, p, 12 + 1 + 128 + 2);
    expect_fail(f.b, f.n, MP_EFORMAT,
                "tensor 'w': code stream at byte 194: the code stream ends after 1 of its 2 "
                "bytes");
    /* An over-subscribed table: a third one-bit code. */
    p[13] = 0x11;
    fb_coded(&f, 2, p, 12 + 1 + 128 + 1);
    expect_fail(f.b, f.n, MP_EFORMAT,
                "tensor 'w': byte 66: value code table: code lengths over-subscribed at 1 bits "
                "(Kraft sum above 1)");
    /* A constant gap outside its alphabet of 1. */
    p[12] = 1;
    p[13] = 0x10;
    fb_coded(&f, 2, p, 12 + 1 + 128 + 1);
    expect_fail(f.b, f.n, MP_EFORMAT,
                "tensor 'w': byte 65: gap code table: constant symbol 1 of an alphabet of 1");
}
END_TEST

static Suite *mpz_suite(void)
{
    Suite *s = suite_create("mpz");
    TCase *tc;

    tc = tcase_create("round_trip");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_round_trip_sparsities);
    tcase_add_test(tc, test_entropy_bound);
    tcase_add_test(tc, test_raw_fallback);
    tcase_add_test(tc, test_layout_bytes);
    tcase_add_test(tc, test_dense_int8);
    suite_add_tcase(s, tc);

    tc = tcase_create("files");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_save_and_load);
    tcase_add_test(tc, test_ballast);
    tcase_add_test(tc, test_out_of_memory);
    suite_add_tcase(s, tc);

    tc = tcase_create("hostile");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_every_byte_flipped);
    tcase_add_test(tc, test_every_truncation);
    tcase_add_test(tc, test_header_fields);
    tcase_add_test(tc, test_metadata_fields);
    tcase_add_test(tc, test_record_fields);
    tcase_add_test(tc, test_coded_payloads);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(mpz_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
