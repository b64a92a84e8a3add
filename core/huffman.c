/* huffman.c — length-limited canonical Huffman codes: lengths, codes, tables, whole streams.
 *
 * Lengths come from package-merge, which is optimal under a length limit, so no heuristic
 * repair of an over-long Huffman tree is needed; its workspace is at most 15 lists of fewer
 * than 512 items (about 120 KiB, malloc'd so that worker threads with small stacks are safe).
 * Decoding is one look-up in a 2^10-entry table for all codes of up to 10 bits, and a canonical
 * search over at most 5 further lengths for the rest (see huffman_int.h for the invariants).
 *
 * No SIMD kernels here, on purpose: decoding is a serial dependency chain (where a code ends
 * is known only once the code before it is decoded), and encoding appends variable-length codes
 * to one accumulator, so vector lanes have nothing independent to do. The histogram pass of
 * mpz.c is bound by memory, not arithmetic.
 */
#include "huffman_int.h"

#include <stdlib.h>
#include <string.h>

/* ---- lengths ------------------------------------------------------------------------------- */

typedef struct pm_item {
    uint64_t weight;
    int sym; /* the symbol of a leaf; -1 for a package of two items of the next list */
} pm_item_t;

static int cmp_leaf(const void *a, const void *b)
{
    const pm_item_t *x = a;
    const pm_item_t *y = b;

    if (x->weight != y->weight) {
        return x->weight < y->weight ? -1 : 1;
    }
    return y->sym - x->sym; /* equal weights: the higher symbol first, so it ends up longer */
}

int mp__huff_lengths(const uint64_t *counts, int n_syms, int max_bits, uint8_t *lengths)
{
    pm_item_t leaves[MP__HUFF_MAX_SYMS];
    pm_item_t *lists = NULL; /* max_bits lists of up to 2n items; list 0 is the shallowest */
    size_t list_len[MP__HUFF_MAX_BITS];
    uint64_t total = 0;
    size_t n = 0;
    size_t active;
    int rc = 0;

    if (counts == NULL || lengths == NULL || n_syms < 1 || n_syms > MP__HUFF_MAX_SYMS ||
        max_bits < 1 || max_bits > MP__HUFF_MAX_BITS) {
        return MP_EINVAL;
    }
    memset(lengths, 0, (size_t)n_syms);
    for (int s = 0; s < n_syms; s++) {
        if (counts[s] == 0) {
            continue;
        }
        if (counts[s] >= MP__HUFF_MAX_TOTAL - total) {
            return MP_EINVAL;
        }
        total += counts[s];
        leaves[n].weight = counts[s];
        leaves[n].sym = s;
        n++;
    }
    if (n < 2) {
        return 0;
    }
    if (n > (size_t)1 << max_bits) {
        return MP_EINVAL;
    }
    qsort(leaves, n, sizeof *leaves, cmp_leaf);

    lists = malloc((size_t)max_bits * 2 * n * sizeof *lists);
    if (lists == NULL) {
        return MP_ENOMEM;
    }
    /* The deepest list holds the leaves; each shallower one merges the leaves with the packages
     * (pairs) of the list below it, both in ascending weight, a leaf first on a tie. */
    memcpy(lists + (size_t)(max_bits - 1) * 2 * n, leaves, n * sizeof *leaves);
    list_len[max_bits - 1] = n;
    for (int l = max_bits - 2; l >= 0; l--) {
        const pm_item_t *below = lists + (size_t)(l + 1) * 2 * n;
        pm_item_t *cur = lists + (size_t)l * 2 * n;
        size_t n_pk = list_len[l + 1] / 2;
        size_t i = 0, j = 0, k = 0;

        while (i < n || j < n_pk) {
            uint64_t pw = j < n_pk ? below[2 * j].weight + below[2 * j + 1].weight : 0;

            if (j >= n_pk || (i < n && leaves[i].weight <= pw)) {
                cur[k++] = leaves[i++];
            } else {
                cur[k].weight = pw;
                cur[k++].sym = -1;
                j++;
            }
        }
        list_len[l] = k;
    }
    /* The optimal code takes the first 2n - 2 items of the shallowest list; the items active in
     * each deeper list are the children of the packages active above it, which are a prefix.
     * A symbol's length is the number of lists in which its leaf is active. */
    active = 2 * n - 2;
    for (int l = 0; l < max_bits && active > 0; l++) {
        const pm_item_t *cur = lists + (size_t)l * 2 * n;
        size_t n_pk = 0;

        for (size_t i = 0; i < active; i++) {
            if (cur[i].sym >= 0) {
                lengths[cur[i].sym]++;
            } else {
                n_pk++;
            }
        }
        active = 2 * n_pk;
    }
    free(lists);
    return rc;
}

uint64_t mp__huff_cost(const uint64_t *counts, const uint8_t *lengths, int n_syms)
{
    uint64_t bits = 0;

    for (int s = 0; s < n_syms; s++) {
        bits += counts[s] * lengths[s];
    }
    return bits;
}

/* ---- tables and codes ---------------------------------------------------------------------- */

int mp__huff_check(const uint8_t *lengths, int n_syms, mp_errctx_t *err)
{
    int32_t left = 1; /* codes still available at the current length (puff.c's method) */
    int count[MP__HUFF_MAX_BITS + 1] = {0};

    MP_RETURN_IF(n_syms < 1 || n_syms > MP__HUFF_MAX_SYMS, MP_EFORMAT,
                 "alphabet of %d symbols, must be 1 to %d", n_syms, MP__HUFF_MAX_SYMS);
    for (int s = 0; s < n_syms; s++) {
        MP_RETURN_IF(lengths[s] > MP__HUFF_MAX_BITS, MP_EFORMAT,
                     "symbol %d has a %u-bit code, longer than %d", s, lengths[s],
                     MP__HUFF_MAX_BITS);
        count[lengths[s]]++;
    }
    for (int len = 1; len <= MP__HUFF_MAX_BITS; len++) {
        left = 2 * left - count[len];
        MP_RETURN_IF(left < 0, MP_EFORMAT,
                     "code lengths over-subscribed at %d bits (Kraft sum above 1)", len);
    }
    MP_RETURN_IF(left > 0, MP_EFORMAT,
                 "code lengths incomplete: %d of %d codes of %d bits left unused (Kraft sum "
                 "below 1)",
                 (int)left, 1 << MP__HUFF_MAX_BITS, MP__HUFF_MAX_BITS);
    return 0;
}

/* next[len] = the first canonical code of each length (RFC 1951, 3.2.2, step 2). */
static void first_codes(const uint8_t *lengths, int n_syms, uint16_t *count, uint16_t *next)
{
    uint32_t code = 0;

    memset(count, 0, (MP__HUFF_MAX_BITS + 1) * sizeof *count);
    for (int s = 0; s < n_syms; s++) {
        count[lengths[s]]++;
    }
    count[0] = 0;
    next[0] = 0;
    for (int len = 1; len <= MP__HUFF_MAX_BITS; len++) {
        code = (code + count[len - 1]) << 1;
        next[len] = (uint16_t)code;
    }
}

void mp__huff_codes(const uint8_t *lengths, int n_syms, uint16_t *codes)
{
    uint16_t count[MP__HUFF_MAX_BITS + 1];
    uint16_t next[MP__HUFF_MAX_BITS + 1];

    first_codes(lengths, n_syms, count, next);
    for (int s = 0; s < n_syms; s++) {
        codes[s] = lengths[s] ? next[lengths[s]]++ : 0;
    }
}

void mp__huff_table_pack(const uint8_t *lengths, int n_syms, uint8_t *out)
{
    for (int s = 0; s < n_syms; s += 2) {
        out[s / 2] = (uint8_t)(lengths[s] | (s + 1 < n_syms ? lengths[s + 1] << 4 : 0));
    }
}

int mp__huff_table_unpack(const uint8_t *in, int n_syms, uint8_t *lengths, mp_errctx_t *err)
{
    for (int s = 0; s < n_syms; s++) {
        lengths[s] = (uint8_t)((in[s / 2] >> (4 * (s & 1))) & 15);
    }
    MP_RETURN_IF((n_syms & 1) && (in[n_syms / 2] >> 4) != 0, MP_EFORMAT,
                 "the unused high nibble of the code-length table's last byte is %u, not 0",
                 (unsigned)(in[n_syms / 2] >> 4));
    return 0;
}

int mp__huff_dec_init(mp__huff_dec_t *d, const uint8_t *lengths, int n_syms, mp_errctx_t *err)
{
    uint16_t next[MP__HUFF_MAX_BITS + 1];
    uint16_t fill[MP__HUFF_MAX_BITS + 1];
    int rc = mp__huff_check(lengths, n_syms, err);

    if (rc != 0) {
        return rc;
    }
    memset(d, 0, sizeof *d);
    first_codes(lengths, n_syms, d->count, next);
    memcpy(d->first, next, sizeof next);
    for (int len = 1; len <= MP__HUFF_MAX_BITS; len++) {
        d->index[len] = len > 1 ? (uint16_t)(d->index[len - 1] + d->count[len - 1]) : 0;
        if (d->count[len] > 0) {
            d->max_len = len;
        }
    }
    memcpy(fill, d->index, sizeof fill);
    d->lut_bits = d->max_len < MP__HUFF_LUT_BITS ? d->max_len : MP__HUFF_LUT_BITS;
    for (int s = 0; s < n_syms; s++) {
        int len = lengths[s];

        if (len == 0) {
            continue;
        }
        d->sorted[fill[len]++] = (uint8_t)s;
        if (len <= d->lut_bits) {
            /* Every table index whose top len bits are this code decodes to s. */
            uint32_t lo = (uint32_t)next[len]++ << (d->lut_bits - len);
            uint32_t hi = lo + (1u << (d->lut_bits - len));

            for (uint32_t i = lo; i < hi; i++) {
                d->lut[i] = (uint16_t)(s << 4 | len);
            }
        }
    }
    return 0;
}

/* ---- streams ------------------------------------------------------------------------------- */

size_t mp__bitw_finish(mp__bitw_t *w)
{
    if (w->n_acc > 0) {
        mp__bitw_put(w, 0, 8 - w->n_acc);
    }
    return w->pos <= w->cap ? w->pos : (size_t)-1;
}

int mp__bitr_finish(mp__bitr_t *r, mp_errctx_t *err)
{
    uint64_t used = mp__bitr_consumed(r);
    uint64_t used_bytes = (used + 7) / 8;
    int pad = (int)(used_bytes * 8 - used);

    MP_RETURN_IF(mp__bitr_overrun(r), MP_EFORMAT, "the code stream runs past its %zu bytes",
                 r->n_bytes);
    MP_RETURN_IF(used_bytes != r->n_bytes, MP_EFORMAT,
                 "the code stream ends after %llu of its %zu bytes", (unsigned long long)used_bytes,
                 r->n_bytes);
    if (pad > 0) {
        if (r->n_acc < pad) {
            mp__bitr_refill(r);
        }
        MP_RETURN_IF(((r->acc >> (r->n_acc - pad)) & ((1u << pad) - 1)) != 0, MP_EFORMAT,
                     "the %d padding bits of the code stream's last byte are not 0", pad);
    }
    return 0;
}

int mp__huff_encode(const uint8_t *lengths, int n_syms, const uint8_t *syms, size_t n, uint8_t *out,
                    size_t cap, size_t *n_out)
{
    uint16_t codes[MP__HUFF_MAX_SYMS];
    mp__bitw_t w;
    size_t used;

    mp__huff_codes(lengths, n_syms, codes);
    mp__bitw_init(&w, out, cap);
    for (size_t i = 0; i < n; i++) {
        if (syms[i] >= n_syms || lengths[syms[i]] == 0) {
            return MP_EINVAL;
        }
        mp__bitw_put(&w, codes[syms[i]], lengths[syms[i]]);
    }
    used = mp__bitw_finish(&w);
    if (used == (size_t)-1) {
        return MP_EINVAL;
    }
    *n_out = used;
    return 0;
}

int mp__huff_decode(const mp__huff_dec_t *d, const uint8_t *in, size_t n_in, uint8_t *syms,
                    size_t n, mp_errctx_t *err)
{
    mp__bitr_t r;

    mp__bitr_init(&r, in, n_in);
    for (size_t i = 0; i < n; i++) {
        uint64_t at = mp__bitr_consumed(&r);
        int s = mp__huff_decode_sym(d, &r);

        MP_RETURN_IF(s == MP__HUFF_PAST_END, MP_EFORMAT,
                     "symbol %zu of %zu at bit %llu: the code stream ends after %zu bytes", i, n,
                     (unsigned long long)at, n_in);
        MP_RETURN_IF(s < 0, MP_EFORMAT, "symbol %zu of %zu at bit %llu: no such code", i, n,
                     (unsigned long long)at);
        syms[i] = (uint8_t)s;
    }
    return mp__bitr_finish(&r, err);
}
