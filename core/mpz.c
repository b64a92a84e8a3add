/* mpz.c — the .mpz container: a compressed model packed losslessly, Deep Compression style.
 *
 * docs/mpz.md is the byte layout; this file is its one writer and reader. In short: a header
 * (magic, version, flags, counts), the metadata, one record per tensor, zero "ballast" bytes
 * if needed, and a trailer holding the file's length; every part carries its own CRC-32. A
 * tensor of 1-byte elements (I8, U8, BOOL) is coded as the positions of the entries that differ
 * from its most frequent byte, as relative gaps below 2^b (a longer run is bridged by filler
 * entries holding that byte, as in Deep Compression), plus those entries' values; gaps and
 * values are canonical-Huffman coded (huffman.c, 15-bit limit) with their length tables stored.
 * The writer tries every b from 0 to 8 and keeps the smallest; b = 0 makes every element an
 * entry, i.e. plain Huffman coding of the bytes, which suits dense int8 codes. A tensor whose
 * coding does not beat its raw bytes, and every wider tensor, is stored raw.
 *
 * The reader treats the file as hostile. Invariants, in the order it works:
 * - every length and count is checked against the bytes that remain before it is used, and
 *   the CRC of a part is verified before anything in the part is interpreted;
 * - nothing is allocated from a count before that check; a tensor's decoded bytes are also
 *   capped by the expansion limit (MPZ_FREE_BYTES + MPZ_MAX_RATIO x file size for the whole
 *   model), so a small file cannot demand a huge allocation; the writer adds ballast to files
 *   that compress better than that;
 * - a coded tensor must decode to exactly its shape's element count, with the code stream used
 *   to its last byte, and in the one form the writer produces (a filler only where a run needs
 *   it, never as the last entry), so every tensor has exactly one valid coding;
 * - every error is MP_EFORMAT (MP_EUNSUPPORTED for a later version) naming the tensor, or the
 *   part, and the byte offset in the file.
 * The model returned owns all its data: the input buffer may be unmapped right after.
 */
#include "huffman_int.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MPZ_MAGIC "\x89MPZ\r\n\x1a\n"
#define MPZ_END_MAGIC "MPZE"
#define MPZ_VERSION 1
#define MPZ_HEADER_BYTES 24
#define MPZ_TRAILER_BYTES 16
#define MPZ_RECORD_FIXED 16 /* encoding, dtype, n_dims, reserved, name bytes, payload bytes */
#define MPZ_SPARSE_FIXED 12 /* dominant, gap bits, two table kinds, entry count */
#define MPZ_MAX_META 4096   /* metadata is a handful of strings; the model stores it in a list */
#define MPZ_MAX_NAME_BYTES 65536u
/* The expansion limit: a file of F bytes decodes to at most FREE + RATIO x F bytes. The best
 * real compression (a 99.9 % sparse tensor) stays far below RATIO; an all-zero tensor does
 * not, and is padded with ballast. */
#define MPZ_FREE_BYTES ((uint64_t)64 << 20)
#define MPZ_MAX_RATIO 1024u

enum { ENC_RAW = 0, ENC_SPARSE = 1 };
enum { TABLE_CONST = 0, TABLE_HUFFMAN = 1 };

/* ---- CRC-32 (ISO-HDLC, as zlib's crc32: reflected 0x04C11DB7, init and final ~0) ---------- */

/* Slice-by-8 tables, built once: about 2 GB/s, so checking a large model costs less than
 * reading it from disk. */
static uint32_t crc_tab[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;

        for (int k = 0; k < 8; k++) {
            c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        }
        crc_tab[0][i] = c;
    }
    for (int i = 0; i < 256; i++) {
        for (int k = 1; k < 8; k++) {
            crc_tab[k][i] = (crc_tab[k - 1][i] >> 8) ^ crc_tab[0][crc_tab[k - 1][i] & 0xFF];
        }
    }
}

/* crc32(crc32(0, a), b) == crc32(0, a b), as zlib's. */
static uint32_t crc32_update(uint32_t crc, const uint8_t *p, size_t n)
{
    pthread_once(&crc_once, crc_init);
    crc = ~crc;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t v;

        memcpy(&v, p, 8);
        v ^= crc;
        crc = crc_tab[7][v & 0xFF] ^ crc_tab[6][(v >> 8) & 0xFF] ^ crc_tab[5][(v >> 16) & 0xFF] ^
              crc_tab[4][(v >> 24) & 0xFF] ^ crc_tab[3][(v >> 32) & 0xFF] ^
              crc_tab[2][(v >> 40) & 0xFF] ^ crc_tab[1][(v >> 48) & 0xFF] ^ crc_tab[0][v >> 56];
    }
#endif
    for (; n > 0; p++, n--) {
        crc = crc_tab[0][(crc ^ *p) & 0xFF] ^ (crc >> 8);
    }
    return ~crc;
}

/* ---- little-endian fields ------------------------------------------------------------------ */

static void put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static uint64_t get_le(const uint8_t *p, int n)
{
    uint64_t v = 0;

    for (int i = n - 1; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

/* A name from a file, fit to quote in a message: at most 80 bytes, anything but printable
 * ASCII shown as '?', so a hostile name can neither drive a terminal nor break JSON. */
static const char *show(const uint8_t *s, size_t n, char buf[88])
{
    size_t o = 0;

    for (size_t i = 0; i < n && o < 80; i++) {
        buf[o++] = s[i] >= 0x20 && s[i] < 0x7F ? (char)s[i] : '?';
    }
    if (o < n) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
    return buf;
}

/* ---- writer: where the bytes go ------------------------------------------------------------ */

/* Either the whole file in memory (fd < 0) or a 1 MiB staging buffer in front of fd. The CRC
 * of the part being written runs along. */
typedef struct sink {
    uint8_t *buf;
    size_t len;
    size_t cap;
    int fd;
    const char *path;
    uint64_t offset; /* bytes emitted so far */
    uint32_t crc;
    mp_errctx_t *err;
} sink_t;

#define SINK_STAGE_BYTES ((size_t)1 << 20)

/* In file mode, write out the staged bytes; in memory mode there is nothing to do. */
static int sink_flush(sink_t *s)
{
    int rc = 0;

    if (s->fd >= 0) {
        rc = s->len > 0 ? mp__write_all(s->fd, s->buf, s->len, s->path, s->err) : 0;
        s->len = 0;
    }
    return rc;
}

static int sink_put(sink_t *s, const void *p, size_t n)
{
    mp_errctx_t *err = s->err;

    s->crc = crc32_update(s->crc, p, n);
    s->offset += n;
    if (s->fd >= 0 && s->len + n > s->cap) {
        int rc = sink_flush(s);

        if (rc != 0 || n >= s->cap) {
            return rc != 0 ? rc : mp__write_all(s->fd, p, n, s->path, err);
        }
    }
    if (s->len + n > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        uint8_t *b;

        while (cap < s->len + n) {
            MP_RETURN_IF(mp__mul_size(cap, 2, &cap) != 0, MP_ENOMEM, "out of memory writing .mpz");
        }
        b = realloc(s->buf, cap);
        MP_RETURN_IF(b == NULL, MP_ENOMEM, "out of memory for %zu bytes of .mpz", cap);
        s->buf = b;
        s->cap = cap;
    }
    if (n > 0) {
        memcpy(s->buf + s->len, p, n);
        s->len += n;
    }
    return 0;
}

/* Close the current part: its CRC-32 goes out (not covered by itself) and a new part starts. */
static int sink_put_crc(sink_t *s)
{
    uint8_t b[4];
    int rc;

    put_le(b, s->crc, 4);
    rc = sink_put(s, b, 4);
    s->crc = 0;
    return rc;
}

static int sink_put_zeros(sink_t *s, uint64_t n)
{
    static const uint8_t zeros[4096];
    int rc = 0;

    while (n > 0 && rc == 0) {
        size_t k = n < sizeof zeros ? (size_t)n : sizeof zeros;

        rc = sink_put(s, zeros, k);
        n -= k;
    }
    return rc;
}

/* ---- writer: coding one 1-byte tensor ------------------------------------------------------- */

/* One symbol stream's code: a constant (no bits) or a Huffman length table. */
typedef struct stream_code {
    int n_syms;
    int kind;    /* TABLE_CONST or TABLE_HUFFMAN */
    uint8_t sym; /* the constant */
    uint8_t lengths[MP__HUFF_MAX_SYMS];
    uint16_t codes[MP__HUFF_MAX_SYMS];
} stream_code_t;

typedef struct plan {
    uint8_t dominant;
    int gap_bits;
    uint64_t n_entries;
    stream_code_t gaps;
    stream_code_t values;
    uint64_t stream_bytes;
    uint64_t payload_bytes;
} plan_t;

/* The code of a stream with these counts; *table_bytes and *bits its stored size. */
static int code_stream(const uint64_t *counts, int n_syms, stream_code_t *c, uint64_t *table_bytes,
                       uint64_t *bits)
{
    int n_used = 0;
    int rc;

    c->n_syms = n_syms;
    c->kind = TABLE_CONST;
    c->sym = 0;
    for (int s = 0; s < n_syms; s++) {
        if (counts[s] > 0) {
            n_used++;
            c->sym = (uint8_t)s;
        }
    }
    if (n_used < 2) {
        *table_bytes = 1;
        *bits = 0;
        return 0;
    }
    rc = mp__huff_lengths(counts, n_syms, MP__HUFF_MAX_BITS, c->lengths);
    if (rc != 0) {
        return rc;
    }
    c->kind = TABLE_HUFFMAN;
    mp__huff_codes(c->lengths, n_syms, c->codes);
    *table_bytes = mp__huff_table_bytes(n_syms);
    *bits = mp__huff_cost(counts, c->lengths, n_syms);
    return 0;
}

#define RUN_BINS 65536

/* Count `times` runs of r dominant bytes for every gap width b = 0..8. */
static void tally_run(uint64_t gap_hist[9][256], uint64_t *fillers, uint64_t r, uint64_t times)
{
    for (int b = 0; b <= 8; b++) {
        gap_hist[b][r & ((1u << b) - 1)] += times;
        fillers[b] += (r >> b) * times;
    }
}

/* Choose the dominant byte and gap width for x[0..n): the smallest payload over b = 0..8.
 * *coded is 0 when no b beats the n raw bytes. */
static int plan_tensor(const uint8_t *x, size_t n, plan_t *best, int *coded)
{
    uint64_t hist[256] = {0};
    uint64_t gap_hist[9][256];
    uint64_t fillers[9] = {0};
    uint64_t counts[256];
    uint64_t *runs = NULL;
    size_t n_bins;
    plan_t *p = NULL;
    size_t prev = (size_t)-1; /* index of the previous non-dominant entry; -1 before the first */
    uint64_t nnz;
    int rc = 0;

    *coded = 0;
    if (n == 0 || n >= MP__HUFF_MAX_TOTAL) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        hist[x[i]]++;
    }
    best->dominant = 0;
    for (int v = 1; v < 256; v++) {
        if (hist[v] > hist[best->dominant]) {
            best->dominant = (uint8_t)v;
        }
    }
    nnz = n - hist[best->dominant];
    /* A run of r dominant bytes before an entry becomes r >> b fillers and a gap r mod 2^b.
     * Runs are counted once, in runs[] (the rare ones of RUN_BINS or more directly), and the
     * nine widths are tallied from the counts, not from every entry nine times. */
    n_bins = n < RUN_BINS ? n : RUN_BINS; /* a run is shorter than the tensor */
    runs = calloc(n_bins, sizeof *runs);
    p = malloc(sizeof *p);
    if (runs == NULL || p == NULL) {
        rc = MP_ENOMEM;
        goto out;
    }
    memset(gap_hist, 0, sizeof gap_hist);
    for (size_t i = 0; i < n; i++) {
        if (x[i] != best->dominant) {
            uint64_t r = i - prev - 1;

            if (r < n_bins) {
                runs[r]++;
            } else {
                tally_run(gap_hist, fillers, r, 1);
            }
            prev = i;
        }
    }
    for (size_t r = 0; r < n_bins; r++) {
        if (runs[r]) {
            tally_run(gap_hist, fillers, r, runs[r]);
        }
    }
    for (int b = 0; b <= 8; b++) {
        uint64_t gap_table, gap_bits, value_table, value_bits;
        int m = 1 << b;

        *p = *best;
        p->gap_bits = b;
        p->n_entries = nnz + fillers[b];
        if (p->n_entries >= MP__HUFF_MAX_TOTAL) {
            continue;
        }
        gap_hist[b][m - 1] += fillers[b];
        rc = code_stream(gap_hist[b], m, &p->gaps, &gap_table, &gap_bits);
        gap_hist[b][m - 1] -= fillers[b];
        if (rc != 0) {
            goto out;
        }
        memcpy(counts, hist, sizeof counts);
        counts[p->dominant] = fillers[b];
        rc = code_stream(counts, 256, &p->values, &value_table, &value_bits);
        if (rc != 0) {
            goto out;
        }
        p->stream_bytes = (gap_bits + value_bits + 7) / 8;
        p->payload_bytes = MPZ_SPARSE_FIXED + gap_table + value_table + p->stream_bytes;
        if (p->payload_bytes < n && (!*coded || p->payload_bytes < best->payload_bytes)) {
            *best = *p;
            *coded = 1;
        }
    }
out:
    free(runs);
    free(p);
    return rc;
}

static void put_code(mp__bitw_t *w, const stream_code_t *c, uint8_t sym)
{
    if (c->kind == TABLE_HUFFMAN) {
        mp__bitw_put(w, c->codes[sym], c->lengths[sym]);
    }
}

static uint8_t *put_table(uint8_t *q, const stream_code_t *c)
{
    if (c->kind == TABLE_CONST) {
        *q = c->sym;
        return q + 1;
    }
    mp__huff_table_pack(c->lengths, c->n_syms, q);
    return q + mp__huff_table_bytes(c->n_syms);
}

/* The payload of plan pl for x[0..n), malloc'd, exactly pl->payload_bytes long. */
static int encode_sparse(const uint8_t *x, size_t n, const plan_t *pl, uint8_t **out,
                         const char *name, mp_errctx_t *err)
{
    uint8_t *buf = malloc(pl->payload_bytes);
    uint8_t *q = buf;
    uint32_t m = 1u << pl->gap_bits;
    size_t prev = (size_t)-1;
    mp__bitw_t w;
    int rc = 0;

    MP_GOTO_IF(buf == NULL, MP_ENOMEM, "tensor '%s': out of memory coding %llu bytes", name,
               (unsigned long long)pl->payload_bytes);
    q[0] = pl->dominant;
    q[1] = (uint8_t)pl->gap_bits;
    q[2] = (uint8_t)pl->gaps.kind;
    q[3] = (uint8_t)pl->values.kind;
    put_le(q + 4, pl->n_entries, 8);
    q = put_table(q + MPZ_SPARSE_FIXED, &pl->gaps);
    q = put_table(q, &pl->values);
    mp__bitw_init(&w, q, pl->stream_bytes);
    for (size_t i = 0; i < n; i++) {
        if (x[i] != pl->dominant) {
            uint64_t r = i - prev - 1;

            for (; r >= m; r -= m) {
                put_code(&w, &pl->gaps, (uint8_t)(m - 1));
                put_code(&w, &pl->values, pl->dominant);
            }
            put_code(&w, &pl->gaps, (uint8_t)r);
            put_code(&w, &pl->values, x[i]);
            prev = i;
        }
    }
    MP_GOTO_IF(mp__bitw_finish(&w) != pl->stream_bytes, MP_EINTERNAL,
               "tensor '%s': coded %zu bytes where %llu were planned", name, w.pos,
               (unsigned long long)pl->stream_bytes);
    *out = buf;
    buf = NULL;
out:
    free(buf);
    return rc;
}

/* ---- writer: the file ---------------------------------------------------------------------- */

/* Refuse what the reader would refuse, before anything is written. */
static int check_model(const mp_model_t *m, uint64_t *decoded, mp_errctx_t *err)
{
    *decoded = 0;
    MP_RETURN_IF(m->n_meta > MPZ_MAX_META, MP_ETOOBIG,
                 ".mpz holds at most %d metadata entries, the model has %zu", MPZ_MAX_META,
                 m->n_meta);
    MP_RETURN_IF(m->n_tensors > UINT32_MAX, MP_ETOOBIG, ".mpz holds at most %u tensors",
                 UINT32_MAX);
    for (size_t i = 0; i < m->n_meta; i++) {
        MP_RETURN_IF(strlen(m->meta_keys[i]) > MPZ_MAX_NAME_BYTES ||
                         strlen(m->meta_values[i]) > UINT32_MAX,
                     MP_ETOOBIG, "metadata entry %zu: key over %u or value over %u bytes", i,
                     MPZ_MAX_NAME_BYTES, UINT32_MAX);
    }
    for (size_t i = 0; i < m->n_tensors; i++) {
        const mp_tensor_t *t = &m->tensors[i];
        size_t bytes;

        MP_RETURN_IF(strlen(t->name) > MPZ_MAX_NAME_BYTES, MP_ETOOBIG,
                     "tensor %zu: name of %zu bytes, .mpz allows %u", i, strlen(t->name),
                     MPZ_MAX_NAME_BYTES);
        MP_RETURN_IF(mp__shape_bytes(t->dtype, t->n_dims, t->shape, NULL, &bytes) != 0 ||
                         bytes != t->n_bytes,
                     MP_EINVAL, "tensor '%s': its byte count disagrees with its shape", t->name);
        *decoded += t->n_bytes;
    }
    return 0;
}

static int put_meta(sink_t *s, const mp_model_t *m)
{
    int rc = 0;

    for (size_t i = 0; i < m->n_meta && rc == 0; i++) {
        size_t nk = strlen(m->meta_keys[i]);
        size_t nv = strlen(m->meta_values[i]);
        uint8_t b[8];

        put_le(b, nk, 4);
        put_le(b + 4, nv, 4);
        rc = sink_put(s, b, 8);
        rc = rc ? rc : sink_put(s, m->meta_keys[i], nk);
        rc = rc ? rc : sink_put(s, m->meta_values[i], nv);
    }
    return rc ? rc : sink_put_crc(s);
}

static int put_tensor(sink_t *s, const mp_tensor_t *t, mp_errctx_t *err)
{
    uint8_t head[MPZ_RECORD_FIXED + 8 * MP_MAX_DIMS];
    size_t name_bytes = strlen(t->name);
    const void *payload = t->data;
    uint8_t *coded_buf = NULL;
    plan_t *pl = NULL;
    int coded = 0;
    int rc = 0;

    pl = malloc(sizeof *pl);
    MP_GOTO_IF(pl == NULL, MP_ENOMEM, "tensor '%s': out of memory", t->name);
    pl->payload_bytes = t->n_bytes;
    if (mp_dtype_size(t->dtype) == 1) {
        rc = plan_tensor(t->data, t->n_bytes, pl, &coded);
        MP_GOTO_IF(rc != 0, rc, "tensor '%s': out of memory planning its code", t->name);
    }
    if (coded) {
        rc = encode_sparse(t->data, t->n_bytes, pl, &coded_buf, t->name, err);
        if (rc != 0) {
            goto out;
        }
        payload = coded_buf;
    }
    head[0] = coded ? ENC_SPARSE : ENC_RAW;
    head[1] = (uint8_t)t->dtype;
    head[2] = (uint8_t)t->n_dims;
    head[3] = 0;
    put_le(head + 4, name_bytes, 4);
    put_le(head + 8, coded ? pl->payload_bytes : t->n_bytes, 8);
    for (int d = 0; d < t->n_dims; d++) {
        put_le(head + MPZ_RECORD_FIXED + 8 * d, (uint64_t)t->shape[d], 8);
    }
    rc = sink_put(s, head, MPZ_RECORD_FIXED + 8 * (size_t)t->n_dims);
    rc = rc ? rc : sink_put(s, t->name, name_bytes);
    rc = rc ? rc : sink_put(s, payload, coded ? pl->payload_bytes : t->n_bytes);
    rc = rc ? rc : sink_put_crc(s);
out:
    free(coded_buf);
    free(pl);
    return rc;
}

static int write_model(sink_t *s, const mp_model_t *m)
{
    mp_errctx_t *err = s->err;
    uint8_t b[MPZ_HEADER_BYTES];
    uint64_t decoded, floor_bytes;
    int rc;

    MP_RETURN_IF(m == NULL, MP_EINVAL, "mp_mpz_encode: no model");
    rc = check_model(m, &decoded, err);
    if (rc != 0) {
        return rc;
    }
    memcpy(b, MPZ_MAGIC, 8);
    put_le(b + 8, MPZ_VERSION, 2);
    put_le(b + 10, 0, 2);
    put_le(b + 12, m->n_meta, 4);
    put_le(b + 16, m->n_tensors, 4);
    s->crc = 0;
    rc = sink_put(s, b, 20);
    rc = rc ? rc : sink_put_crc(s);
    rc = rc ? rc : put_meta(s, m);
    for (size_t i = 0; i < m->n_tensors && rc == 0; i++) {
        rc = put_tensor(s, &m->tensors[i], err);
    }
    if (rc != 0) {
        return rc;
    }
    /* Ballast: enough zero bytes that the file honours the expansion limit. */
    floor_bytes = decoded > MPZ_FREE_BYTES
                      ? (decoded - MPZ_FREE_BYTES + MPZ_MAX_RATIO - 1) / MPZ_MAX_RATIO
                      : 0;
    if (s->offset + MPZ_TRAILER_BYTES < floor_bytes) {
        rc = sink_put_zeros(s, floor_bytes - s->offset - MPZ_TRAILER_BYTES);
    }
    put_le(b, s->offset + MPZ_TRAILER_BYTES, 8);
    memcpy(b + 8, MPZ_END_MAGIC, 4);
    s->crc = 0;
    rc = rc ? rc : sink_put(s, b, 12);
    rc = rc ? rc : sink_put_crc(s);
    return rc ? rc : sink_flush(s);
}

int mp_mpz_encode(const mp_model_t *m, uint8_t **buf, size_t *n_bytes, mp_errctx_t *err)
{
    sink_t s = {.fd = -1, .err = err};
    int rc;

    MP_RETURN_IF(buf == NULL || n_bytes == NULL, MP_EINVAL, "mp_mpz_encode: no result pointer");
    *buf = NULL;
    *n_bytes = 0;
    rc = write_model(&s, m);
    if (rc != 0) {
        free(s.buf);
        return rc;
    }
    *buf = s.buf;
    *n_bytes = s.len;
    return 0;
}

/* path must not be a file m's tensors are mapped from (as for mp_safetensors_save). */
int mp_mpz_save(const mp_model_t *m, const char *path, mp_errctx_t *err)
{
    sink_t s = {.fd = -1, .path = path, .err = err};
    struct stat st;
    int regular = 0;
    int rc = 0;

    MP_GOTO_IF(m == NULL || path == NULL, MP_EINVAL, "mp_mpz_save: no model or no path");
    s.buf = malloc(SINK_STAGE_BYTES);
    MP_GOTO_IF(s.buf == NULL, MP_ENOMEM, "%s: out of memory", path);
    s.cap = SINK_STAGE_BYTES;
    s.fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (s.fd < 0) {
        rc = mp__io_fail(err, path, "cannot create", errno);
        goto out;
    }
    regular = fstat(s.fd, &st) == 0 && S_ISREG(st.st_mode);
    rc = write_model(&s, m);
    /* close() is where NFS and some quotas report a failed write-back. */
    if (close(s.fd) != 0 && rc == 0) {
        rc = mp__io_fail(err, path, "close failed", errno);
    }
    s.fd = -1;
out:
    if (s.fd >= 0) {
        close(s.fd);
    }
    if (rc != 0 && regular) {
        unlink(path); /* a partial file is no model */
    }
    free(s.buf);
    return rc;
}

/* ---- reader -------------------------------------------------------------------------------- */

typedef struct reader {
    const uint8_t *p;
    size_t n;       /* file bytes */
    size_t end;     /* where the trailer starts: parts must end by here */
    uint64_t limit; /* decoded bytes the file may still produce */
    mp_errctx_t *err;
} reader_t;

/* The stored CRC-32 at p[n..n+4) against the data p[0..n). */
static int crc_ok(const uint8_t *p, size_t n, uint32_t *stored, uint32_t *computed)
{
    *stored = (uint32_t)get_le(p + n, 4);
    *computed = crc32_update(0, p, n);
    return *stored == *computed;
}

static int read_header(reader_t *r, uint32_t *n_meta, uint32_t *n_tensors)
{
    mp_errctx_t *err = r->err;
    uint32_t stored, computed;
    const uint8_t *t;
    uint64_t file_bytes;

    MP_RETURN_IF(r->n < 8 || memcmp(r->p, MPZ_MAGIC, 8) != 0, MP_EFORMAT,
                 "not an .mpz file: bytes 0-7 are not the .mpz magic \\x89MPZ\\r\\n\\x1a\\n");
    MP_RETURN_IF(r->n < MPZ_HEADER_BYTES + 4 + MPZ_TRAILER_BYTES, MP_EFORMAT,
                 ".mpz file of %zu bytes, too short (at least %d)", r->n,
                 MPZ_HEADER_BYTES + 4 + MPZ_TRAILER_BYTES);
    MP_RETURN_IF(!crc_ok(r->p, 20, &stored, &computed), MP_EFORMAT,
                 "header at byte 0: CRC-32 0x%08x stored at byte 20, computed 0x%08x", stored,
                 computed);
    MP_RETURN_IF(get_le(r->p + 8, 2) != MPZ_VERSION, MP_EUNSUPPORTED,
                 ".mpz version %u at byte 8; this reader knows version %d",
                 (unsigned)get_le(r->p + 8, 2), MPZ_VERSION);
    MP_RETURN_IF(get_le(r->p + 10, 2) != 0, MP_EUNSUPPORTED,
                 ".mpz flags 0x%04x at byte 10; this reader knows none",
                 (unsigned)get_le(r->p + 10, 2));
    *n_meta = (uint32_t)get_le(r->p + 12, 4);
    *n_tensors = (uint32_t)get_le(r->p + 16, 4);

    /* The trailer says how long the file was written: a truncated or extended file is named
     * as such before any part is read. */
    t = r->p + r->end;
    file_bytes = get_le(t, 8);
    MP_RETURN_IF(!crc_ok(t, 12, &stored, &computed) || memcmp(t + 8, MPZ_END_MAGIC, 4) != 0,
                 MP_EFORMAT,
                 "trailer at byte %zu (the last %d bytes): no valid end mark (CRC-32 0x%08x "
                 "stored, 0x%08x computed) — the file is truncated, extended or damaged",
                 r->end, MPZ_TRAILER_BYTES, stored, computed);
    MP_RETURN_IF(file_bytes != r->n, MP_EFORMAT,
                 "trailer at byte %zu: the file was written with %llu bytes but has %zu", r->end,
                 (unsigned long long)file_bytes, r->n);
    MP_RETURN_IF(*n_meta > MPZ_MAX_META, MP_EFORMAT,
                 "header: %u metadata entries at byte 12, more than the %d allowed", *n_meta,
                 MPZ_MAX_META);
    return 0;
}

static int read_meta(reader_t *r, size_t *pos, uint32_t n_meta, mp_model_t *m)
{
    mp_errctx_t *err = r->err;
    size_t start = *pos;
    size_t at = start;
    uint32_t stored, computed;
    char *key = NULL, *value = NULL;
    int rc = 0;

    /* Bounds first, so the CRC can be checked before any entry is believed. */
    for (uint32_t i = 0; i < n_meta; i++) {
        uint64_t nk, nv;

        MP_GOTO_IF(r->end - at < 8, MP_EFORMAT,
                   "metadata entry %u at byte %zu: its lengths pass the end of the data", i, at);
        nk = get_le(r->p + at, 4);
        nv = get_le(r->p + at + 4, 4);
        MP_GOTO_IF(nk > MPZ_MAX_NAME_BYTES || nk + nv > r->end - at - 8, MP_EFORMAT,
                   "metadata entry %u at byte %zu: key of %llu and value of %llu bytes pass the "
                   "end of the data at byte %zu",
                   i, at, (unsigned long long)nk, (unsigned long long)nv, r->end);
        at += 8 + nk + nv;
    }
    MP_GOTO_IF(r->end - at < 4, MP_EFORMAT,
               "metadata at byte %zu: its CRC-32 passes the end of the data", start);
    MP_GOTO_IF(!crc_ok(r->p + start, at - start, &stored, &computed), MP_EFORMAT,
               "metadata at byte %zu: CRC-32 0x%08x stored at byte %zu, computed 0x%08x", start,
               stored, at, computed);
    *pos = at + 4;
    for (at = start; n_meta > 0; n_meta--) {
        size_t nk = get_le(r->p + at, 4);
        size_t nv = get_le(r->p + at + 4, 4);
        char shown[88];

        key = strndup((const char *)r->p + at + 8, nk);
        value = strndup((const char *)r->p + at + 8 + nk, nv);
        MP_GOTO_IF(key == NULL || value == NULL, MP_ENOMEM, "out of memory reading metadata");
        MP_GOTO_IF(strlen(key) != nk || strlen(value) != nv, MP_EFORMAT,
                   "metadata entry '%s' at byte %zu: a NUL byte inside its key or value",
                   show(r->p + at + 8, nk, shown), at);
        MP_GOTO_IF(mp_model_get_meta(m, key) != NULL, MP_EFORMAT,
                   "metadata entry '%s' at byte %zu: the key appears twice",
                   show(r->p + at + 8, nk, shown), at);
        MP_GOTO_IF(mp_model_set_meta(m, key, value) != 0, MP_ENOMEM,
                   "out of memory reading metadata");
        free(key);
        free(value);
        key = value = NULL;
        at += 8 + nk + nv;
    }
out:
    free(key);
    free(value);
    return rc;
}

/* A stored code table of a stream of n_syms symbols at q (avail bytes). */
static int read_table(const uint8_t **q, size_t *avail, int kind, int n_syms, stream_code_t *c,
                      mp__huff_dec_t *dec, mp_errctx_t *err)
{
    size_t need = kind == TABLE_CONST ? 1 : mp__huff_table_bytes(n_syms);
    int rc;

    MP_RETURN_IF(*avail < need, MP_EFORMAT, "its %zu-byte code table passes the payload's end",
                 need);
    c->kind = kind;
    c->n_syms = n_syms;
    if (kind == TABLE_CONST) {
        c->sym = **q;
        MP_RETURN_IF(c->sym >= n_syms, MP_EFORMAT, "constant symbol %u of an alphabet of %d",
                     c->sym, n_syms);
    } else {
        rc = mp__huff_table_unpack(*q, n_syms, c->lengths, err);
        rc = rc ? rc : mp__huff_dec_init(dec, c->lengths, n_syms, err);
        if (rc != 0) {
            return rc;
        }
    }
    *q += need;
    *avail -= need;
    return 0;
}

static int next_sym(const stream_code_t *c, const mp__huff_dec_t *dec, mp__bitr_t *br)
{
    return c->kind == TABLE_CONST ? c->sym : mp__huff_decode_sym(dec, br);
}

/* Decode a sparse payload p[0..np) into out[0..n); at is p's byte offset in the file. The
 * message says what is wrong and where; the caller names the tensor. */
static int decode_sparse(const uint8_t *p, size_t np, size_t at, uint8_t *out, size_t n,
                         mp_errctx_t *err)
{
    mp_errctx_t sub = {0};
    stream_code_t *codes = NULL;
    mp__huff_dec_t *decs = NULL;
    const uint8_t *q = p + MPZ_SPARSE_FIXED;
    size_t avail;
    uint8_t dominant;
    uint32_t m;
    uint64_t n_entries;
    size_t pos = (size_t)-1;
    mp__bitr_t br;
    int rc = 0;

    MP_GOTO_IF(np < MPZ_SPARSE_FIXED, MP_EFORMAT,
               "byte %zu: a coded payload of %zu bytes, shorter than its %d-byte head", at, np,
               MPZ_SPARSE_FIXED);
    avail = np - MPZ_SPARSE_FIXED;
    dominant = p[0];
    MP_GOTO_IF(p[1] > 8, MP_EFORMAT, "byte %zu: gap width of %u bits, at most 8", at + 1, p[1]);
    m = 1u << p[1];
    MP_GOTO_IF(p[2] > TABLE_HUFFMAN || p[3] > TABLE_HUFFMAN, MP_EFORMAT,
               "byte %zu: code table kinds %u and %u, each must be 0 or 1", at + 2, p[2], p[3]);
    n_entries = get_le(p + 4, 8);
    MP_GOTO_IF(n_entries > n, MP_EFORMAT, "byte %zu: %llu entries for %zu elements", at + 4,
               (unsigned long long)n_entries, n);
    codes = malloc(2 * sizeof *codes);
    decs = malloc(2 * sizeof *decs);
    MP_GOTO_IF(codes == NULL || decs == NULL, MP_ENOMEM, "out of memory for code tables");
    rc = read_table(&q, &avail, p[2], (int)m, &codes[0], &decs[0], &sub);
    MP_GOTO_IF(rc != 0, rc, "byte %zu: gap code table: %s", (size_t)(q - p) + at, sub.msg);
    rc = read_table(&q, &avail, p[3], 256, &codes[1], &decs[1], &sub);
    MP_GOTO_IF(rc != 0, rc, "byte %zu: value code table: %s", (size_t)(q - p) + at, sub.msg);
    at += (size_t)(q - p);

    memset(out, dominant, n);
    mp__bitr_init(&br, q, avail);
    for (uint64_t e = 0; e < n_entries; e++) {
        uint64_t bit = mp__bitr_consumed(&br);
        int gap = next_sym(&codes[0], &decs[0], &br);
        int value = gap < 0 ? gap : next_sym(&codes[1], &decs[1], &br);

        MP_GOTO_IF(
            value < 0, MP_EFORMAT, "entry %llu of %llu at byte %zu bit %d: the code stream %s",
            (unsigned long long)e, (unsigned long long)n_entries, at + (size_t)(bit / 8),
            (int)(bit % 8), value == MP__HUFF_PAST_END ? "ends too soon" : "holds no valid code");
        MP_GOTO_IF(value == dominant && ((uint32_t)gap != m - 1 || e + 1 == n_entries), MP_EFORMAT,
                   "entry %llu at byte %zu bit %d: the dominant value 0x%02x where no filler "
                   "belongs",
                   (unsigned long long)e, at + (size_t)(bit / 8), (int)(bit % 8), dominant);
        MP_GOTO_IF((uint64_t)gap >= n - (pos + 1), MP_EFORMAT,
                   "entry %llu at byte %zu bit %d: a gap of %d past element %zu of %zu",
                   (unsigned long long)e, at + (size_t)(bit / 8), (int)(bit % 8), gap, pos + 1, n);
        pos += (size_t)gap + 1;
        out[pos] = (uint8_t)value;
    }
    rc = mp__bitr_finish(&br, &sub);
    MP_GOTO_IF(rc != 0, rc, "code stream at byte %zu: %s", at, sub.msg);
out:
    free(codes);
    free(decs);
    return rc;
}

/* One tensor record at *pos (the k-th). */
static int read_tensor(reader_t *r, size_t *pos, uint32_t k, mp_model_t *m)
{
    mp_errctx_t *err = r->err;
    mp_errctx_t sub = {0};
    const uint8_t *h = r->p + *pos;
    size_t at = *pos;
    size_t left = r->end - at;
    int64_t shape[MP_MAX_DIMS] = {0};
    uint64_t name_bytes, payload_bytes;
    uint32_t stored, computed;
    size_t fixed, n_bytes, extent;
    const uint8_t *payload;
    char shown[88];
    char *name = NULL;
    uint8_t *data = NULL;
    int n_dims, dtype;
    int rc = 0;

    MP_GOTO_IF(left < MPZ_RECORD_FIXED, MP_EFORMAT,
               "tensor record %u at byte %zu: passes the end of the data at byte %zu", k, at,
               r->end);
    n_dims = h[2];
    MP_GOTO_IF(n_dims > MP_MAX_DIMS, MP_EFORMAT,
               "tensor record %u at byte %zu: %d dimensions, at most %d", k, at + 2, n_dims,
               MP_MAX_DIMS);
    name_bytes = get_le(h + 4, 4);
    payload_bytes = get_le(h + 8, 8);
    fixed = MPZ_RECORD_FIXED + 8 * (size_t)n_dims;
    MP_GOTO_IF(name_bytes > MPZ_MAX_NAME_BYTES || left < fixed + 4 ||
                   name_bytes > left - fixed - 4 || payload_bytes > left - fixed - 4 - name_bytes,
               MP_EFORMAT,
               "tensor record %u at byte %zu: a name of %llu and a payload of %llu bytes pass "
               "the end of the data at byte %zu",
               k, at, (unsigned long long)name_bytes, (unsigned long long)payload_bytes, r->end);
    extent = fixed + (size_t)name_bytes + (size_t)payload_bytes;
    MP_GOTO_IF(!crc_ok(h, extent, &stored, &computed), MP_EFORMAT,
               "tensor record %u at byte %zu: CRC-32 0x%08x stored at byte %zu, computed 0x%08x", k,
               at, stored, at + extent, computed);
    *pos = at + extent + 4;

    /* The record is what was written; now check that what was written makes sense. */
    show(h + fixed, (size_t)name_bytes, shown);
    MP_GOTO_IF(h[3] != 0 || h[0] > ENC_SPARSE || h[1] >= MP_DT_COUNT, MP_EFORMAT,
               "tensor '%s' at byte %zu: encoding %u, dtype %u, reserved byte %u (known: "
               "encodings 0-1, dtypes 0-%d, reserved 0)",
               shown, at, h[0], h[1], h[3], MP_DT_COUNT - 1);
    dtype = h[1];
    for (int d = 0; d < n_dims; d++) {
        uint64_t v = get_le(h + MPZ_RECORD_FIXED + 8 * d, 8);

        MP_GOTO_IF(v > INT64_MAX, MP_EFORMAT, "tensor '%s' at byte %zu: dimension %d is %llu",
                   shown, at + MPZ_RECORD_FIXED + 8 * (size_t)d, d, (unsigned long long)v);
        shape[d] = (int64_t)v;
    }
    MP_GOTO_IF(mp__shape_bytes(dtype, n_dims, shape, NULL, &n_bytes) != 0, MP_EFORMAT,
               "tensor '%s' at byte %zu: its shape's byte count overflows", shown,
               at + MPZ_RECORD_FIXED);
    MP_GOTO_IF(n_bytes > r->limit, MP_EFORMAT,
               "tensor '%s' at byte %zu: %zu decoded bytes pass the expansion limit of this "
               "%zu-byte file (%llu bytes left)",
               shown, at, n_bytes, r->n, (unsigned long long)r->limit);
    r->limit -= n_bytes;
    name = malloc((size_t)name_bytes + 1);
    MP_GOTO_IF(name == NULL, MP_ENOMEM, "tensor '%s': out of memory", shown);
    memcpy(name, h + fixed, (size_t)name_bytes);
    name[name_bytes] = '\0';
    MP_GOTO_IF(name_bytes == 0 || strlen(name) != name_bytes, MP_EFORMAT,
               "tensor '%s' at byte %zu: an empty name or a NUL byte inside it", shown, at + fixed);

    payload = h + fixed + name_bytes;
    if (h[0] == ENC_RAW) {
        MP_GOTO_IF(payload_bytes != n_bytes, MP_EFORMAT,
                   "tensor '%s' at byte %zu: %llu raw bytes, its shape of %s needs %zu", shown,
                   at + 8, (unsigned long long)payload_bytes, mp_dtype_name(dtype), n_bytes);
    } else {
        MP_GOTO_IF(mp_dtype_size(dtype) != 1, MP_EFORMAT,
                   "tensor '%s' at byte %zu: coded, but %s elements are not 1 byte", shown, at + 1,
                   mp_dtype_name(dtype));
    }
    MP_GOTO_IF(mp_model_find(m, name) != NULL, MP_EFORMAT,
               "tensor '%s' at byte %zu: a second tensor of that name", shown, at + fixed);
    /* At least one byte, so that even an empty tensor has a buffer memset and memcpy accept. */
    data = malloc(n_bytes ? n_bytes : 1);
    MP_GOTO_IF(data == NULL, MP_ENOMEM, "tensor '%s': out of memory for %zu bytes", shown, n_bytes);
    if (h[0] == ENC_RAW) {
        memcpy(data, payload, n_bytes);
    } else {
        rc = decode_sparse(payload, (size_t)payload_bytes, (size_t)(payload - r->p), data, n_bytes,
                           &sub);
        MP_GOTO_IF(rc != 0, rc, "tensor '%s': %s", shown, sub.msg);
    }
    rc = mp_model_add_take(m, name, (mp_dtype_t)dtype, n_dims, shape, data, n_bytes, &sub);
    data = NULL; /* taken, even on failure */
    MP_GOTO_IF(rc != 0, rc, "tensor '%s' at byte %zu: %s", shown, at, sub.msg);
out:
    free(name);
    free(data);
    return rc;
}

int mp_mpz_parse(const void *buf, size_t n_bytes, mp_model_t **out, mp_errctx_t *err)
{
    reader_t r = {.p = buf, .n = n_bytes, .err = err};
    mp_model_t *m = NULL;
    uint32_t n_meta = 0, n_tensors = 0;
    size_t pos = MPZ_HEADER_BYTES;
    int rc;

    MP_RETURN_IF(out == NULL || (buf == NULL && n_bytes > 0), MP_EINVAL,
                 "mp_mpz_parse: no buffer or no result pointer");
    *out = NULL;
    r.end = n_bytes >= MPZ_TRAILER_BYTES ? n_bytes - MPZ_TRAILER_BYTES : 0;
    r.limit = n_bytes > (UINT64_MAX - MPZ_FREE_BYTES) / MPZ_MAX_RATIO
                  ? UINT64_MAX
                  : MPZ_FREE_BYTES + (uint64_t)MPZ_MAX_RATIO * n_bytes;
    rc = read_header(&r, &n_meta, &n_tensors);
    if (rc != 0) {
        return rc;
    }
    m = mp_model_new();
    MP_GOTO_IF(m == NULL, MP_ENOMEM, "out of memory");
    rc = read_meta(&r, &pos, n_meta, m);
    if (rc != 0) {
        goto out;
    }
    /* Each record takes at least its fixed part and CRC: a count the file cannot hold is
     * named as such before the first record is read. */
    MP_GOTO_IF(n_tensors > (r.end - pos) / (MPZ_RECORD_FIXED + 4), MP_EFORMAT,
               "header: %u tensors at byte 16, but the %zu bytes from byte %zu hold at most %zu",
               n_tensors, r.end - pos, pos, (r.end - pos) / (MPZ_RECORD_FIXED + 4));
    for (uint32_t k = 0; k < n_tensors; k++) {
        rc = read_tensor(&r, &pos, k, m);
        if (rc != 0) {
            goto out;
        }
    }
    for (; pos < r.end; pos++) {
        MP_GOTO_IF(r.p[pos] != 0, MP_EFORMAT,
                   "byte %zu: 0x%02x after the last tensor, where only zero ballast may stand", pos,
                   r.p[pos]);
    }
out:
    if (rc != 0) {
        mp_model_free(m);
        m = NULL;
    }
    *out = m;
    return rc;
}

int mp_mpz_load(const char *path, mp_model_t **out, mp_errctx_t *err)
{
    void *map = NULL;
    size_t n_bytes = 0;
    int rc;

    MP_RETURN_IF(out == NULL, MP_EINVAL, "mp_mpz_load: no result pointer");
    *out = NULL;
    rc = mp__map_file(path, &map, &n_bytes, err);
    if (rc != 0) {
        return rc;
    }
    rc = mp_mpz_parse(map, n_bytes, out, err);
    if (map) {
        munmap(map, n_bytes);
    }
    return rc;
}
