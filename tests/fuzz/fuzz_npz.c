/* fuzz_npz.c — libFuzzer target: the dataset reader on hostile .npz (zip) files.
 *
 * Each input is read as it is, then once more with the CRC-32 of every stored member set right
 * in the central directory: a flipped byte in a member's data would otherwise stop at the CRC
 * check nearly every time, and the .npy inside would never meet the fuzzer. The checks are
 * fuzz_check.h's. Built with clang by tests/fuzz/run.sh; replayed over the committed corpus
 * by make check (tests/fuzz/replay.c).
 */
#include <string.h>
#include <zlib.h>

#include "tests/fuzz/fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Walk the central directory as far as it is in bounds (classic end record only) and write
 * the CRC-32 of each stored member's bytes into its entry. */
static void fix_stored_crcs(uint8_t *b, size_t n)
{
    size_t eocd = n;
    for (size_t i = n >= 22 ? n - 22 : 0; n >= 22; i--) {
        if (le32(b + i) == 0x06054b50u) {
            eocd = i;
            break;
        }
        if (i == 0) {
            break;
        }
    }
    if (eocd == n) {
        return;
    }
    size_t at = le32(b + eocd + 16), entries = (size_t)(b[eocd + 10] | b[eocd + 11] << 8);
    for (size_t k = 0; k < entries && at <= eocd && eocd - at >= 46; k++) {
        uint8_t *e = b + at;
        size_t name = (size_t)(e[28] | e[29] << 8), extra = (size_t)(e[30] | e[31] << 8);
        size_t comment = (size_t)(e[32] | e[33] << 8), local = le32(e + 42);
        size_t csize = le32(e + 20);
        if (le32(e) != 0x02014b50u) {
            return;
        }
        if ((e[10] | e[11] << 8) == 0 && local < n && n - local >= 30) {
            size_t off = local + 30 + (size_t)(b[local + 26] | b[local + 27] << 8) +
                         (size_t)(b[local + 28] | b[local + 29] << 8);
            if (off <= n && csize <= n - off) {
                uint32_t crc = (uint32_t)crc32(0, b + off, (uInt)csize);
                memcpy(e + 16, &crc, 4); /* little-endian, as x86 and the format */
            }
        }
        at += 46 + name + extra + comment;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_dataset_check(data, size);
    uint8_t *copy = malloc(size ? size : 1);
    if (copy == NULL) {
        return 0;
    }
    memcpy(copy, data, size);
    fix_stored_crcs(copy, size);
    if (memcmp(copy, data, size) != 0) {
        fuzz_dataset_check(copy, size);
    }
    free(copy);
    return 0;
}
