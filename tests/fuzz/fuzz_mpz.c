/* fuzz_mpz.c — libFuzzer target: the .mpz reader (mp_mpz_parse) on hostile bytes.
 *
 * Every part of an .mpz file carries a CRC-32, so nearly every mutation would stop at the first
 * check. Each input is therefore read twice: as it is, and with every CRC (and the trailer's
 * length) recomputed over the parts as the layout of docs/mpz.md delimits them, which lets
 * mutated lengths, shapes, tables and code streams reach the decoder. A file that is read must
 * hold consistent tensors, encode again and read back to the same tensors and metadata
 * (the container is lossless), and unpack or refuse to with a message.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "tests/fuzz/fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
    return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static void put_crc(uint8_t *b, size_t from, size_t to)
{
    put32(b + to, (uint32_t)crc32(0, b + from, (uInt)(to - from)));
}

/* Recompute the CRCs of header, metadata, records and trailer, as far as the parts fit. */
static void fix_crcs(uint8_t *b, size_t n)
{
    if (n < 44) {
        return;
    }
    size_t end = n - 16;
    put_crc(b, 0, 20);
    for (int i = 0; i < 8; i++) {
        b[end + i] = (uint8_t)((uint64_t)n >> (8 * i));
    }
    memcpy(b + end + 8, "MPZE", 4);
    put_crc(b, end, end + 12);
    size_t p = 24;
    for (uint32_t i = 0, n_meta = le32(b + 12); i < n_meta; i++) {
        if (end - p < 8 || le32(b + p) > end - p - 8 ||
            le32(b + p + 4) > end - p - 8 - le32(b + p)) {
            return;
        }
        p += 8 + (size_t)le32(b + p) + le32(b + p + 4);
    }
    if (end - p < 4) {
        return;
    }
    put_crc(b, 24, p);
    p += 4;
    for (uint32_t i = 0, n_tensors = le32(b + 16); i < n_tensors; i++) {
        if (end - p < 16 || b[p + 2] > MP_MAX_DIMS) {
            return;
        }
        size_t fixed = 16 + 8 * (size_t)b[p + 2];
        uint64_t name = le32(b + p + 4), payload = le64(b + p + 8);
        if (fixed > end - p || name > end - p - fixed || payload > end - p - fixed - name ||
            end - p - fixed - name - payload < 4) {
            return;
        }
        size_t rec = fixed + (size_t)name + (size_t)payload;
        put_crc(b, p, p + rec);
        p += rec + 4;
    }
}

static void check(const uint8_t *data, size_t size)
{
    mp_model_t *m = NULL, *again = NULL, *unpacked = NULL;
    mp_errctx_t err;
    uint8_t *enc = NULL;
    size_t n_enc = 0;

    err.msg[0] = '\0';
    if (mp_mpz_parse(data, size, &m, &err) != 0) {
        if (m != NULL || err.msg[0] == '\0') {
            abort(); /* every refusal says why */
        }
        return;
    }
    fuzz_model_check(m);
    /* lossless: what is read encodes again and reads back the same */
    if (mp_mpz_encode(m, &enc, &n_enc, &err) != 0 || mp_mpz_parse(enc, n_enc, &again, &err) != 0 ||
        again->n_tensors != m->n_tensors || again->n_meta != m->n_meta) {
        abort();
    }
    for (size_t i = 0; i < m->n_tensors; i++) {
        const mp_tensor_t *a = &m->tensors[i], *b = &again->tensors[i];
        if (strcmp(a->name, b->name) != 0 || a->dtype != b->dtype || a->n_bytes != b->n_bytes ||
            (a->n_bytes > 0 && memcmp(a->data, b->data, a->n_bytes) != 0)) {
            abort();
        }
    }
    err.msg[0] = '\0';
    if (mp_model_unpack(m, &unpacked, &err) != 0 && err.msg[0] == '\0') {
        abort();
    }
    mp_model_free(unpacked);
    mp_model_free(again);
    free(enc);
    mp_model_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check(data, size);
    uint8_t *copy = malloc(size ? size : 1);
    if (copy == NULL) {
        return 0;
    }
    memcpy(copy, data, size);
    fix_crcs(copy, size);
    if (memcmp(copy, data, size) != 0) {
        check(copy, size);
    }
    free(copy);
    return 0;
}
