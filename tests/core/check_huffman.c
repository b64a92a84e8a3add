/* check_huffman.c — length-limited canonical Huffman codes (core/huffman.c).
 *
 * The codes are checked against the textbook ones (RFC 1951's canonical example, CLRS's
 * Huffman example), the length limit on a Fibonacci count table whose unlimited Huffman code
 * would need 31 bits, round trips over many alphabets and skews with the exact coded size and
 * the Huffman bound (entropy <= bits per symbol < entropy + 1), and the decoder's refusals:
 * bad tables, truncated, over-long and corrupted streams. Streams come from a fixed-seed
 * generator, so every figure is reproducible.
 */
#include "huffman_int.h"

#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

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

static double rng_unit(void)
{
    return (double)(rng_next() >> 11) / 9007199254740992.0;
}

static void count_syms(const uint8_t *s, size_t n, uint64_t *counts)
{
    memset(counts, 0, MP__HUFF_MAX_SYMS * sizeof *counts);
    for (size_t i = 0; i < n; i++) {
        counts[s[i]]++;
    }
}

static double entropy_bits(const uint64_t *counts, int n_syms, uint64_t n)
{
    double h = 0;

    for (int s = 0; s < n_syms; s++) {
        if (counts[s]) {
            h -= (double)counts[s] * log2((double)counts[s] / (double)n);
        }
    }
    return h;
}

/* Kraft sum of a length table times 2^15 (32768 for a complete code). */
static long kraft(const uint8_t *lengths, int n_syms)
{
    long k = 0;

    for (int s = 0; s < n_syms; s++) {
        if (lengths[s]) {
            k += 1L << (MP__HUFF_MAX_BITS - lengths[s]);
        }
    }
    return k;
}

/* Code syms with the lengths counts give, decode them back, and require identity and the exact
 * size; returns the coded bits. */
static uint64_t round_trip(const uint8_t *syms, size_t n, int n_syms)
{
    uint64_t counts[MP__HUFF_MAX_SYMS];
    uint8_t lengths[MP__HUFF_MAX_SYMS];
    mp__huff_dec_t dec;
    mp_errctx_t err = {0};
    uint64_t bits;
    size_t cap, used = 0;
    uint8_t *buf, *back;

    count_syms(syms, n, counts);
    ck_assert_int_eq(mp__huff_lengths(counts, n_syms, MP__HUFF_MAX_BITS, lengths), 0);
    ck_assert_int_eq(kraft(lengths, n_syms), 1L << MP__HUFF_MAX_BITS);
    bits = mp__huff_cost(counts, lengths, n_syms);
    cap = (size_t)((bits + 7) / 8);
    buf = malloc(cap + 1);
    back = malloc(n);
    ck_assert_ptr_nonnull(buf);
    ck_assert_ptr_nonnull(back);
    ck_assert_int_eq(mp__huff_encode(lengths, n_syms, syms, n, buf, cap, &used), 0);
    ck_assert_uint_eq(used, cap);
    ck_assert_int_eq(mp__huff_dec_init(&dec, lengths, n_syms, &err), 0);
    ck_assert_int_eq(mp__huff_decode(&dec, buf, used, back, n, &err), 0);
    ck_assert_int_eq(memcmp(back, syms, n), 0);
    free(buf);
    free(back);
    return bits;
}

/* Simple O(n^2) Huffman: the unlimited optimum's cost, to compare the limited one with. */
static uint64_t huffman_cost_unlimited(const uint64_t *counts, int n_syms)
{
    uint64_t w[MP__HUFF_MAX_SYMS];
    uint64_t cost = 0;
    int n = 0;

    for (int s = 0; s < n_syms; s++) {
        if (counts[s]) {
            w[n++] = counts[s];
        }
    }
    while (n > 1) {
        int a = 0, b = 1;

        if (w[b] < w[a]) {
            a = 1;
            b = 0;
        }
        for (int i = 2; i < n; i++) {
            if (w[i] < w[a]) {
                b = a;
                a = i;
            } else if (w[i] < w[b]) {
                b = i;
            }
        }
        w[a] += w[b];
        cost += w[a];
        w[b] = w[--n];
    }
    return cost;
}

/* ---- codes and lengths ----------------------------------------------------------------------- */

/* RFC 1951, 3.2.2: lengths (3, 3, 3, 3, 3, 2, 4, 4) for A..H give these codes. */
START_TEST(test_rfc1951_codes)
{
    static const uint8_t lengths[8] = {3, 3, 3, 3, 3, 2, 4, 4};
    static const uint16_t want[8] = {0x2, 0x3, 0x4, 0x5, 0x6, 0x0, 0xE, 0xF};
    uint16_t codes[8];
    mp_errctx_t err = {0};

    ck_assert_int_eq(mp__huff_check(lengths, 8, &err), 0);
    mp__huff_codes(lengths, 8, codes);
    for (int s = 0; s < 8; s++) {
        ck_assert_uint_eq(codes[s], want[s]);
    }
}
END_TEST

/* CLRS 16.3: frequencies a..f = 45, 13, 12, 16, 9, 5 cost 224 bits; lengths 1, 3, 3, 3, 4, 4;
 * canonically a = 0, b = 100, c = 101, d = 110, e = 1110, f = 1111. */
START_TEST(test_clrs_lengths)
{
    static const uint64_t counts[6] = {45, 13, 12, 16, 9, 5};
    static const uint8_t want_len[6] = {1, 3, 3, 3, 4, 4};
    static const uint16_t want_code[6] = {0x0, 0x4, 0x5, 0x6, 0xE, 0xF};
    uint8_t lengths[6];
    uint16_t codes[6];

    ck_assert_int_eq(mp__huff_lengths(counts, 6, MP__HUFF_MAX_BITS, lengths), 0);
    mp__huff_codes(lengths, 6, codes);
    for (int s = 0; s < 6; s++) {
        ck_assert_uint_eq(lengths[s], want_len[s]);
        ck_assert_uint_eq(codes[s], want_code[s]);
    }
    ck_assert_uint_eq(mp__huff_cost(counts, lengths, 6), 224);
    ck_assert_uint_eq(huffman_cost_unlimited(counts, 6), 224);
    /* A limit of 3 bits forces a complete 3-bit-deep code: 45 and 16 get 2 bits, the rest 3. */
    ck_assert_int_eq(mp__huff_lengths(counts, 6, 3, lengths), 0);
    ck_assert_uint_eq(mp__huff_cost(counts, lengths, 6), 2 * (45 + 16) + 3 * (13 + 12 + 9 + 5));
    ck_assert_int_eq(kraft(lengths, 6), 1L << MP__HUFF_MAX_BITS);
}
END_TEST

/* Fibonacci counts 1, 1, 2, 3, 5, ... make Huffman's tree a chain: 32 symbols would need a
 * 31-bit code. Limited to 15 bits, the longest code is exactly 15, the code is complete, and the
 * cost is the length-limited optimum, 14,930,358 bits: 42 bits above the unlimited Huffman
 * cost of 14,930,316. (The optimum was found independently by a dynamic program over the
 * symbols in weight order, lengths non-decreasing, and the Kraft sum used so far.) */
START_TEST(test_fibonacci_limit)
{
    uint64_t counts[32];
    uint8_t lengths[32];
    uint8_t max_len = 0;
    uint8_t syms[4096];
    mp_errctx_t err = {0};

    counts[0] = counts[1] = 1;
    for (int s = 2; s < 32; s++) {
        counts[s] = counts[s - 1] + counts[s - 2];
    }
    ck_assert_uint_eq(huffman_cost_unlimited(counts, 32), 14930316);
    ck_assert_int_eq(mp__huff_lengths(counts, 32, 15, lengths), 0);
    for (int s = 0; s < 32; s++) {
        max_len = lengths[s] > max_len ? lengths[s] : max_len;
        /* A heavier symbol never gets a longer code. */
        if (s > 0) {
            ck_assert_uint_le(lengths[s], lengths[s - 1]);
        }
    }
    ck_assert_uint_eq(max_len, 15);
    ck_assert_int_eq(mp__huff_check(lengths, 32, &err), 0);
    ck_assert_uint_eq(mp__huff_cost(counts, lengths, 32), 14930358);
    /* Tighter limits hold too, down to 5 bits (32 symbols need at least 5). */
    for (int limit = 5; limit <= 15; limit++) {
        ck_assert_int_eq(mp__huff_lengths(counts, 32, limit, lengths), 0);
        for (int s = 0; s < 32; s++) {
            ck_assert_uint_le(lengths[s], limit);
        }
        ck_assert_int_eq(kraft(lengths, 32), 1L << MP__HUFF_MAX_BITS);
    }
    ck_assert_int_eq(mp__huff_lengths(counts, 32, 4, lengths), MP_EINVAL);
    /* The long codes (11 to 15 bits) decode through the canonical search past the table. */
    for (size_t i = 0; i < sizeof syms; i++) {
        syms[i] = (uint8_t)(i % 32);
    }
    round_trip(syms, sizeof syms, 32);
}
END_TEST

START_TEST(test_lengths_edges)
{
    uint64_t counts[MP__HUFF_MAX_SYMS] = {0};
    uint8_t lengths[MP__HUFF_MAX_SYMS];

    /* No symbol, one symbol: nothing to code, every length 0. */
    ck_assert_int_eq(mp__huff_lengths(counts, 256, 15, lengths), 0);
    ck_assert_int_eq(kraft(lengths, 256), 0);
    counts[77] = 1000;
    ck_assert_int_eq(mp__huff_lengths(counts, 256, 15, lengths), 0);
    ck_assert_int_eq(kraft(lengths, 256), 0);
    /* Two symbols: one bit each, whatever their counts. */
    counts[3] = 1;
    ck_assert_int_eq(mp__huff_lengths(counts, 256, 15, lengths), 0);
    ck_assert_uint_eq(lengths[3], 1);
    ck_assert_uint_eq(lengths[77], 1);
    ck_assert_int_eq(kraft(lengths, 256), 1L << 15);
    /* 256 equal counts: 8 bits each. */
    for (int s = 0; s < 256; s++) {
        counts[s] = 5;
    }
    ck_assert_int_eq(mp__huff_lengths(counts, 256, 15, lengths), 0);
    for (int s = 0; s < 256; s++) {
        ck_assert_uint_eq(lengths[s], 8);
    }
    /* Refusals: 256 symbols in 7 bits, bad alphabets and limits, counts near 2^48. */
    ck_assert_int_eq(mp__huff_lengths(counts, 256, 7, lengths), MP_EINVAL);
    ck_assert_int_eq(mp__huff_lengths(counts, 0, 15, lengths), MP_EINVAL);
    ck_assert_int_eq(mp__huff_lengths(counts, 257, 15, lengths), MP_EINVAL);
    ck_assert_int_eq(mp__huff_lengths(counts, 256, 16, lengths), MP_EINVAL);
    ck_assert_int_eq(mp__huff_lengths(counts, 256, 0, lengths), MP_EINVAL);
    counts[0] = MP__HUFF_MAX_TOTAL - 5 * 255;
    ck_assert_int_eq(mp__huff_lengths(counts, 256, 15, lengths), MP_EINVAL);
    counts[0] = MP__HUFF_MAX_TOTAL - 5 * 255 - 1;
    ck_assert_int_eq(mp__huff_lengths(counts, 256, 15, lengths), 0);
    ck_assert_uint_eq(lengths[0], 1);
}
END_TEST

START_TEST(test_check_tables)
{
    static const uint8_t over[3] = {1, 1, 1};
    static const uint8_t incomplete[2] = {1, 2};
    static const uint8_t single[4] = {0, 1, 0, 0};
    static const uint8_t too_long[2] = {1, 16};
    mp__huff_dec_t dec;
    mp_errctx_t err = {0};

    ck_assert_int_eq(mp__huff_check(over, 3, &err), MP_EFORMAT);
    ck_assert_str_eq(err.msg, "code lengths over-subscribed at 1 bits (Kraft sum above 1)");
    ck_assert_int_eq(mp__huff_check(incomplete, 2, &err), MP_EFORMAT);
    ck_assert_str_eq(err.msg, "code lengths incomplete: 8192 of 32768 codes of 15 bits left "
                              "unused (Kraft sum below 1)");
    ck_assert_int_eq(mp__huff_dec_init(&dec, single, 4, &err), MP_EFORMAT);
    ck_assert_str_eq(err.msg, "code lengths incomplete: 16384 of 32768 codes of 15 bits left "
                              "unused (Kraft sum below 1)");
    ck_assert_int_eq(mp__huff_dec_init(&dec, too_long, 2, &err), MP_EFORMAT);
    ck_assert_str_eq(err.msg, "symbol 1 has a 16-bit code, longer than 15");
    ck_assert_int_eq(mp__huff_check(over, 0, &err), MP_EFORMAT);
    ck_assert_str_eq(err.msg, "alphabet of 0 symbols, must be 1 to 256");
}
END_TEST

START_TEST(test_table_pack)
{
    uint8_t lengths[5] = {1, 15, 0, 7, 3};
    uint8_t packed[3], back[5];
    mp_errctx_t err = {0};

    ck_assert_uint_eq(mp__huff_table_bytes(5), 3);
    ck_assert_uint_eq(mp__huff_table_bytes(256), 128);
    mp__huff_table_pack(lengths, 5, packed);
    ck_assert_uint_eq(packed[0], 0xF1);
    ck_assert_uint_eq(packed[1], 0x70);
    ck_assert_uint_eq(packed[2], 0x03);
    ck_assert_int_eq(mp__huff_table_unpack(packed, 5, back, &err), 0);
    ck_assert_int_eq(memcmp(back, lengths, 5), 0);
    packed[2] = 0x13;
    ck_assert_int_eq(mp__huff_table_unpack(packed, 5, back, &err), MP_EFORMAT);
    ck_assert_str_eq(err.msg,
                     "the unused high nibble of the code-length table's last byte is 1, not 0");
}
END_TEST

/* ---- round trips ----------------------------------------------------------------------------- */

enum skew { UNIFORM, GEOMETRIC_HALF, GEOMETRIC_TENTH, ZIPF, ONE_DOMINANT };

static uint8_t draw(enum skew k, int n_syms)
{
    double u = rng_unit();
    int s = 0;

    switch (k) {
    case UNIFORM:
        s = (int)(u * n_syms);
        break;
    case GEOMETRIC_HALF:
        s = (int)(-log2(1.0 - u));
        break;
    case GEOMETRIC_TENTH:
        s = (int)(log(1.0 - u) / log(0.9));
        break;
    case ZIPF:
        s = (int)(pow((double)n_syms + 1, u)) - 1; /* p(s) roughly 1/(s+1) */
        break;
    case ONE_DOMINANT:
        s = u < 0.99 ? 0 : (int)(rng_unit() * n_syms);
        break;
    }
    return (uint8_t)(s < n_syms ? s : n_syms - 1);
}

START_TEST(test_round_trips)
{
    static const int alphabets[] = {2, 3, 7, 16, 100, 255, 256};
    const size_t n = 20000;
    uint8_t *syms = malloc(n);
    uint64_t counts[MP__HUFF_MAX_SYMS];

    ck_assert_ptr_nonnull(syms);
    rng_state = 42;
    for (size_t a = 0; a < sizeof alphabets / sizeof *alphabets; a++) {
        for (int k = UNIFORM; k <= ONE_DOMINANT; k++) {
            int n_syms = alphabets[a];
            uint64_t bits;
            double h;
            int used = 0;

            for (size_t i = 0; i < n; i++) {
                syms[i] = draw((enum skew)k, n_syms);
            }
            count_syms(syms, n, counts);
            for (int s = 0; s < n_syms; s++) {
                used += counts[s] > 0;
            }
            if (used < 2) {
                continue; /* a constant stream needs no code */
            }
            bits = round_trip(syms, n, n_syms);
            h = entropy_bits(counts, n_syms, n);
            /* Huffman's bound: H <= L < H + 1 bit per symbol. */
            ck_assert_double_ge((double)bits, h - 1e-6);
            ck_assert_double_lt((double)bits, h + (double)n);
        }
    }
    free(syms);
}
END_TEST

/* All 256 byte values equally often: 8-bit codes, so the stream is exactly as long as the
 * input; a single repeated symbol gets no code at all. */
START_TEST(test_uniform_and_single)
{
    uint8_t syms[256 * 40];
    uint64_t counts[MP__HUFF_MAX_SYMS];
    uint8_t lengths[MP__HUFF_MAX_SYMS];

    for (size_t i = 0; i < sizeof syms; i++) {
        syms[i] = (uint8_t)(i * 7);
    }
    ck_assert_uint_eq(round_trip(syms, sizeof syms, 256), 8 * sizeof syms);
    memset(syms, 9, sizeof syms);
    count_syms(syms, sizeof syms, counts);
    ck_assert_int_eq(mp__huff_lengths(counts, 256, 15, lengths), 0);
    ck_assert_int_eq(kraft(lengths, 256), 0);
}
END_TEST

/* Geometric counts 2^-1, 2^-2, ... are coded exactly at their entropy: lengths 1, 2, 3, ... */
START_TEST(test_geometric_exact)
{
    uint8_t syms[1024];
    uint64_t counts[MP__HUFF_MAX_SYMS];
    uint8_t lengths[MP__HUFF_MAX_SYMS];
    size_t n = 0;

    /* 512 zeros, 256 ones, ..., 2 eights, 2 nines: the last two share the deepest level. */
    for (int s = 0; s < 9; s++) {
        for (int k = 0; k < (512 >> s); k++) {
            syms[n++] = (uint8_t)s;
        }
    }
    syms[n++] = 9;
    syms[n++] = 9;
    ck_assert_uint_eq(n, 1024);
    count_syms(syms, n, counts);
    ck_assert_int_eq(mp__huff_lengths(counts, 10, 15, lengths), 0);
    for (int s = 0; s < 9; s++) {
        ck_assert_uint_eq(lengths[s], s + 1);
    }
    ck_assert_uint_eq(lengths[9], 9);
    ck_assert_double_eq_tol((double)round_trip(syms, n, 10), entropy_bits(counts, 10, n), 1e-6);
}
END_TEST

/* ---- decoding errors ---------------------------------------------------------------------------
 */

/* A 1000-symbol stream over 5 symbols of skewed counts, for the error tests. */
static size_t sample_stream(uint8_t *syms, uint8_t *lengths, uint8_t *buf, size_t cap)
{
    uint64_t counts[MP__HUFF_MAX_SYMS];
    size_t used = 0;

    rng_state = 7;
    for (int i = 0; i < 1000; i++) {
        syms[i] = draw(GEOMETRIC_HALF, 5);
    }
    count_syms(syms, 1000, counts);
    ck_assert_int_eq(mp__huff_lengths(counts, 5, 15, lengths), 0);
    ck_assert_int_eq(mp__huff_encode(lengths, 5, syms, 1000, buf, cap, &used), 0);
    return used;
}

START_TEST(test_truncated)
{
    uint8_t syms[1000], back[1000], lengths[5], buf[1000];
    size_t used = sample_stream(syms, lengths, buf, sizeof buf);
    mp__huff_dec_t dec;
    mp_errctx_t err = {0};

    ck_assert_uint_eq(used, 229); /* 1,828 bits for this seed: 4 bits of padding */
    ck_assert_int_eq(mp__huff_dec_init(&dec, lengths, 5, &err), 0);
    /* Every shorter buffer is refused (the bytes are copied so ASan sees any over-read). */
    for (size_t cut = 0; cut < used; cut++) {
        uint8_t *copy = malloc(cut ? cut : 1);

        memcpy(copy, buf, cut);
        ck_assert_int_eq(mp__huff_decode(&dec, copy, cut, back, 1000, &err), MP_EFORMAT);
        free(copy);
    }
    ck_assert_int_eq(mp__huff_decode(&dec, buf, 0, back, 1000, &err), MP_EFORMAT);
    ck_assert_str_eq(err.msg, "symbol 0 of 1000 at bit 0: the code stream ends after 0 bytes");
    /* One byte too many, or a stray padding bit. */
    buf[used] = 0;
    ck_assert_int_eq(mp__huff_decode(&dec, buf, used + 1, back, 1000, &err), MP_EFORMAT);
    ck_assert_str_eq(err.msg, "the code stream ends after 229 of its 230 bytes");
    buf[used - 1] |= 1;
    ck_assert_int_eq(mp__huff_decode(&dec, buf, used, back, 1000, &err), MP_EFORMAT);
    ck_assert_str_eq(err.msg, "the 4 padding bits of the code stream's last byte are not 0");
}
END_TEST

/* A complete prefix code maps bit strings to symbol strings one to one, so a flipped bit
 * either breaks the framing (an error) or yields other symbols; never the same ones, never a
 * read past the buffer. */
START_TEST(test_corrupted)
{
    uint8_t syms[1000], back[1000], lengths[5], buf[1000];
    size_t used = sample_stream(syms, lengths, buf, sizeof buf);
    mp__huff_dec_t dec;
    mp_errctx_t err = {0};
    int n_err = 0, n_other = 0;

    ck_assert_int_eq(mp__huff_dec_init(&dec, lengths, 5, &err), 0);
    for (size_t bit = 0; bit < used * 8; bit++) {
        uint8_t *copy = malloc(used);
        int rc;

        memcpy(copy, buf, used);
        copy[bit / 8] ^= (uint8_t)(0x80 >> (bit % 8));
        rc = mp__huff_decode(&dec, copy, used, back, 1000, &err);
        if (rc == 0) {
            ck_assert_int_ne(memcmp(back, syms, 1000), 0);
            n_other++;
        } else {
            ck_assert_int_eq(rc, MP_EFORMAT);
            n_err++;
        }
        free(copy);
    }
    ck_assert_int_eq(n_err + n_other, (int)used * 8);
    ck_assert_int_gt(n_err, 0);
    ck_assert_int_gt(n_other, 0);
}
END_TEST

/* The bit writer reports a buffer sized too small instead of writing past it. */
START_TEST(test_encode_refusals)
{
    static const uint8_t lengths[3] = {1, 2, 2};
    static const uint8_t syms[4] = {1, 2, 1, 0};
    static const uint8_t bad[1] = {3};
    uint8_t buf[2] = {0xAA, 0xAA};
    size_t used = 0;

    ck_assert_int_eq(mp__huff_encode(lengths, 3, syms, 4, buf, 0, &used), MP_EINVAL);
    ck_assert_uint_eq(buf[0], 0xAA);
    ck_assert_int_eq(mp__huff_encode(lengths, 3, syms, 4, buf, 2, &used), 0);
    /* 10 11 10 0 + 0 padding */
    ck_assert_uint_eq(used, 1);
    ck_assert_uint_eq(buf[0], 0xB8);
    ck_assert_int_eq(mp__huff_encode(lengths, 3, bad, 1, buf, 2, &used), MP_EINVAL);
}
END_TEST

static Suite *huffman_suite(void)
{
    Suite *s = suite_create("huffman");
    TCase *tc;

    tc = tcase_create("codes");
    tcase_add_test(tc, test_rfc1951_codes);
    tcase_add_test(tc, test_clrs_lengths);
    tcase_add_test(tc, test_fibonacci_limit);
    tcase_add_test(tc, test_lengths_edges);
    tcase_add_test(tc, test_check_tables);
    tcase_add_test(tc, test_table_pack);
    suite_add_tcase(s, tc);

    tc = tcase_create("round_trips");
    tcase_add_test(tc, test_round_trips);
    tcase_add_test(tc, test_uniform_and_single);
    tcase_add_test(tc, test_geometric_exact);
    suite_add_tcase(s, tc);

    tc = tcase_create("decode_errors");
    tcase_add_test(tc, test_truncated);
    tcase_add_test(tc, test_corrupted);
    tcase_add_test(tc, test_encode_refusals);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(huffman_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
