/* huffman_int.h — length-limited canonical Huffman codes over byte alphabets (internal).
 *
 * The .mpz container (mpz.c) codes the gaps between non-dominant entries of a 1-byte tensor and
 * those entries' values with the codes made here. Invariants every function keeps:
 * - an alphabet has 1..MP__HUFF_MAX_SYMS symbols, numbered 0..n_syms-1, so a symbol is a byte;
 * - a code length is 0 (symbol unused) or 1..MP__HUFF_MAX_BITS, so a length fits a nibble;
 * - codes are canonical (RFC 1951, 3.2.2): shorter codes first, and among codes of one length
 *   the smaller symbol first; bits go out most significant first, so a code read as a number
 *   indexes the decoding table directly;
 * - a decoder is only ever built from a complete table (Kraft sum exactly 1, two or more
 *   symbols): every bit string then decodes, an over-subscribed or incomplete table is refused,
 *   and a stream that ends early is reported, never read past (bits beyond the buffer are
 *   virtual zeros that are counted, not loaded).
 * A stream of one repeated symbol needs no bits at all; that case belongs to the caller (mpz.c
 * stores the symbol instead of a table), so mp__huff_lengths gives every length 0 for it.
 */
#ifndef MP_HUFFMAN_INT_H
#define MP_HUFFMAN_INT_H

#include "mp_int.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define MP__HUFF_MAX_SYMS 256
/* 15 bits: the lengths fit a nibble of the stored table, and 2^15 >= 256 symbols always fit. */
#define MP__HUFF_MAX_BITS 15
/* Codes up to this long decode with one table look-up; longer ones (rare by construction:
 * their symbols have probability below about 2^-10) by a short canonical search. */
#define MP__HUFF_LUT_BITS 10
/* Sum of the counts passed to mp__huff_lengths, so package weights cannot overflow 64 bits. */
#define MP__HUFF_MAX_TOTAL (UINT64_C(1) << 48)

/* Optimal code lengths for counts[0..n_syms) with no length above max_bits (1..15), by the
 * package-merge algorithm (Larmore and Hirschberg), which is optimal among length-limited codes
 * and so equals Huffman's when Huffman's fits. Unused symbols get 0. With fewer than two used
 * symbols every length is 0 (nothing needs coding). Among codes of equal cost the lighter
 * symbol, then the higher-numbered one, gets the longer code, so the result is deterministic.
 * MP_EINVAL for a bad n_syms or max_bits, more used symbols than 2^max_bits codes, or counts
 * summing to MP__HUFF_MAX_TOTAL or more; MP_ENOMEM if its workspace cannot be had. */
int mp__huff_lengths(const uint64_t *counts, int n_syms, int max_bits, uint8_t *lengths);

/* Check a length table: 0 when it is a complete prefix code of two or more symbols; otherwise
 * MP_EFORMAT with the reason (a length over 15, over-subscribed, incomplete) in err. */
int mp__huff_check(const uint8_t *lengths, int n_syms, mp_errctx_t *err);

/* Canonical codes for a table that passed mp__huff_check (codes[s] holds lengths[s] bits). */
void mp__huff_codes(const uint8_t *lengths, int n_syms, uint16_t *codes);

/* Total bits of a stream with these counts and lengths (exact: counts below 2^48 each). */
uint64_t mp__huff_cost(const uint64_t *counts, const uint8_t *lengths, int n_syms);

/* The stored form of a length table: two lengths a byte, symbol 2i in the low nibble of byte
 * i and 2i+1 in the high one, a missing last symbol as 0. */
static inline size_t mp__huff_table_bytes(int n_syms)
{
    return ((size_t)n_syms + 1) / 2;
}
void mp__huff_table_pack(const uint8_t *lengths, int n_syms, uint8_t *out);
/* MP_EFORMAT when the unused nibble of an odd-sized table is not 0. */
int mp__huff_table_unpack(const uint8_t *in, int n_syms, uint8_t *lengths, mp_errctx_t *err);

/* ---- bit writer ---------------------------------------------------------------------------- */

/* Writes into a buffer of cap bytes sized beforehand from mp__huff_cost; bytes that would pass
 * cap are counted but not stored, so a wrong size is reported by mp__bitw_finish. */
typedef struct mp__bitw {
    uint8_t *p;
    size_t cap;
    size_t pos;
    uint64_t acc; /* the low n_acc bits are pending */
    int n_acc;    /* 0..7 between calls */
} mp__bitw_t;

static inline void mp__bitw_init(mp__bitw_t *w, uint8_t *p, size_t cap)
{
    w->p = p;
    w->cap = cap;
    w->pos = 0;
    w->acc = 0;
    w->n_acc = 0;
}

static inline void mp__bitw_put(mp__bitw_t *w, uint32_t code, int len)
{
    w->acc = (w->acc << len) | code;
    w->n_acc += len;
    while (w->n_acc >= 8) {
        w->n_acc -= 8;
        if (w->pos < w->cap) {
            w->p[w->pos] = (uint8_t)(w->acc >> w->n_acc);
        }
        w->pos++;
    }
}

/* Pad the last byte with zero bits; returns the bytes written, or (size_t)-1 if they were more
 * than cap. */
size_t mp__bitw_finish(mp__bitw_t *w);

/* ---- decoder ------------------------------------------------------------------------------- */

typedef struct mp__huff_dec {
    int lut_bits;                          /* min(MP__HUFF_LUT_BITS, longest code) */
    int max_len;                           /* longest code */
    uint16_t lut[1u << MP__HUFF_LUT_BITS]; /* symbol << 4 | length; 0 = a longer code */
    uint16_t first[MP__HUFF_MAX_BITS + 1]; /* first canonical code of each length */
    uint16_t count[MP__HUFF_MAX_BITS + 1]; /* codes of each length */
    uint16_t index[MP__HUFF_MAX_BITS + 1]; /* where each length starts in sorted[] */
    uint8_t sorted[MP__HUFF_MAX_SYMS];     /* symbols in canonical order */
} mp__huff_dec_t;

/* Build a decoder from a length table; MP_EFORMAT (as mp__huff_check) for a table that is not
 * a complete code. */
int mp__huff_dec_init(mp__huff_dec_t *d, const uint8_t *lengths, int n_syms, mp_errctx_t *err);

/* Reads most significant bit first. pos may run past n_bytes: the bytes there are virtual
 * zeros, never loaded, and mp__bitr_overrun tells when any of them were consumed. */
typedef struct mp__bitr {
    const uint8_t *p;
    size_t n_bytes;
    size_t pos;   /* next byte to load */
    uint64_t acc; /* the low n_acc bits are the next bits of the stream */
    int n_acc;
} mp__bitr_t;

static inline void mp__bitr_init(mp__bitr_t *r, const uint8_t *p, size_t n_bytes)
{
    r->p = p;
    r->n_bytes = n_bytes;
    r->pos = 0;
    r->acc = 0;
    r->n_acc = 0;
}

static inline void mp__bitr_refill(mp__bitr_t *r)
{
    if (r->n_acc <= 15 && r->pos <= r->n_bytes && r->n_bytes - r->pos >= 8) {
        /* Away from the end: as many whole bytes as fit (6 or 7) from one big-endian load. */
        int k = (63 - r->n_acc) >> 3;
        uint64_t v;

        memcpy(&v, r->p + r->pos, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        v = __builtin_bswap64(v);
#endif
        r->acc = (r->acc << (8 * k)) | (v >> (64 - 8 * k));
        r->pos += (size_t)k;
        r->n_acc += 8 * k;
        return;
    }
    while (r->n_acc <= 56) {
        uint64_t byte = r->pos < r->n_bytes ? r->p[r->pos] : 0;

        r->pos++;
        r->acc = (r->acc << 8) | byte;
        r->n_acc += 8;
    }
}

/* 1 when bits past the end of the buffer have been consumed. */
static inline int mp__bitr_overrun(const mp__bitr_t *r)
{
    return r->pos > r->n_bytes && (r->pos - r->n_bytes) * 8 > (size_t)r->n_acc;
}

/* Bits of the buffer consumed so far (meaningful while not overrun). */
static inline uint64_t mp__bitr_consumed(const mp__bitr_t *r)
{
    return (uint64_t)r->pos * 8 - (uint64_t)r->n_acc;
}

#define MP__HUFF_PAST_END (-1)
#define MP__HUFF_BAD_CODE (-2)

/* The next symbol; MP__HUFF_PAST_END when its code runs past the end of the buffer;
 * MP__HUFF_BAD_CODE for bits that are no code (impossible with the complete tables
 * mp__huff_dec_init accepts, and still checked, so a decoder built any other way fails
 * cleanly). */
static inline int mp__huff_decode_sym(const mp__huff_dec_t *d, mp__bitr_t *r)
{
    uint32_t e;

    if (r->n_acc < MP__HUFF_MAX_BITS) {
        mp__bitr_refill(r);
    }
    e = d->lut[(r->acc >> (r->n_acc - d->lut_bits)) & ((1u << d->lut_bits) - 1)];
    if (e == 0) {
        /* A code longer than the table: canonical codes of length len are the len-bit numbers
         * first[len] .. first[len] + count[len] - 1, and a complete code has exactly one
         * length whose range holds the next len bits. */
        for (int len = d->lut_bits + 1; len <= d->max_len; len++) {
            uint32_t code = (uint32_t)(r->acc >> (r->n_acc - len)) & ((1u << len) - 1);

            if (code - d->first[len] < d->count[len]) {
                e = (uint32_t)d->sorted[d->index[len] + code - d->first[len]] << 4 | (uint32_t)len;
                break;
            }
        }
    }
    if (e == 0) {
        return MP__HUFF_BAD_CODE;
    }
    r->n_acc -= (int)(e & 15);
    return mp__bitr_overrun(r) ? MP__HUFF_PAST_END : (int)(e >> 4);
}

/* After the last symbol: 0 when the stream ended within the buffer's last byte and its padding
 * bits are 0; otherwise MP_EFORMAT with what was wrong (past the end, trailing bytes, padding)
 * in err. */
int mp__bitr_finish(mp__bitr_t *r, mp_errctx_t *err);

/* ---- whole streams (what the tests and simple callers use) ------------------------------ */

/* Code syms[0..n) (each < n_syms) with a table that passed mp__huff_check into out (cap bytes);
 * *n_out receives the bytes used. MP_EINVAL for a symbol without a code or too small a cap. */
int mp__huff_encode(const uint8_t *lengths, int n_syms, const uint8_t *syms, size_t n, uint8_t *out,
                    size_t cap, size_t *n_out);

/* Decode exactly n symbols from in[0..n_in), which they must fill to its last byte (zero
 * padding). MP_EFORMAT naming the symbol index and bit offset when the stream is short, and as
 * mp__bitr_finish when it is long. */
int mp__huff_decode(const mp__huff_dec_t *d, const uint8_t *in, size_t n_in, uint8_t *syms,
                    size_t n, mp_errctx_t *err);

#endif /* MP_HUFFMAN_INT_H */
