/* quant_tool.c — runs modelpress's quantizers on a matrix written by quant_ref.py and writes
 * the codes, scales, zero points and dequantized values, so the script can hold them against
 * PyTorch's quantize_per_channel / quantize_per_tensor / fake_quantize on the same scales.
 *
 *   quant_tool IN.f32 ROWS COLS GROUP OUTDIR
 *
 * IN.f32 is ROWS x COLS float32, little-endian, row-major, nothing else (its size must be
 * exactly that). For every width 2..8 and both schemes, mp__quant_affine with groups of GROUP
 * elements along each row (GROUP == COLS: per channel; ROWS 1 and GROUP == COLS: per tensor)
 * and then mp__dequant_affine; in OUTDIR, for B in 2..8 and S in sym, asym:
 *   bB_S_codes.u8   ROWS x COLS bytes (int8 for sym, uint8 for asym)
 *   bB_S_scales.f32 one float32 per group, groups in row order
 *   bB_S_zp.i32     one int32 per group (asym only)
 *   bB_S_deq.f32    ROWS x COLS float32, the dequantized values
 * and, when GROUP == COLS, i8_codes.u8 and i8_scales.f32 from mp__quant_i8_sym per channel
 * (the int8 path the pipeline has used from the start). All little-endian. Exit 0 on success,
 * 1 when a step fails (with the library's message), 2 for bad usage.
 */
#include "core/methods_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse_size(const char *s, size_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v > SIZE_MAX) {
        return -1;
    }
    *out = (size_t)v;
    return 0;
}

/* Reads exactly `bytes` bytes from path into buf; -1 with a message otherwise. */
static int read_exact(const char *path, void *buf, size_t bytes)
{
    FILE *f = fopen(path, "rb");
    int rc = -1;
    if (!f) {
        fprintf(stderr, "quant_tool: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (fread(buf, 1, bytes, f) != bytes || fgetc(f) != EOF) {
        fprintf(stderr, "quant_tool: %s: not exactly %zu bytes\n", path, bytes);
        goto out;
    }
    rc = 0;
out:
    fclose(f);
    return rc;
}

static int write_file(const char *dir, const char *name, const void *buf, size_t bytes)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(buf, 1, bytes, f) == bytes;
    if (f && fclose(f) != 0) {
        ok = 0;
    }
    if (!ok) {
        fprintf(stderr, "quant_tool: cannot write %s\n", path);
    }
    return ok ? 0 : -1;
}

/* Writes bB_S_<what> for one width and scheme. */
static int write_part(const char *dir, int bits, int asym, const char *what, const void *buf,
                      size_t bytes)
{
    char name[64];
    snprintf(name, sizeof name, "b%d_%s_%s", bits, asym ? "asym" : "sym", what);
    return write_file(dir, name, buf, bytes);
}

int main(int argc, char **argv)
{
    int status = 1;
    size_t rows, cols, group, n, n_groups;
    float *w = NULL, *deq = NULL, *scales = NULL;
    int32_t *zps = NULL;
    uint8_t *q = NULL;
    mp_errctx_t err = {0};

    if (argc != 6 || parse_size(argv[2], &rows) || parse_size(argv[3], &cols) ||
        parse_size(argv[4], &group) || group == 0 || rows == 0 || cols == 0 ||
        __builtin_mul_overflow(rows, cols, &n) || n > ((size_t)1 << 28)) {
        fputs("usage: quant_tool IN.f32 ROWS COLS GROUP OUTDIR (at most 2^28 elements)\n", stderr);
        return 2;
    }
    const char *dir = argv[5];
    n_groups = rows * ((cols + group - 1) / group);
    w = malloc(n * sizeof *w);
    deq = malloc(n * sizeof *deq);
    q = malloc(n);
    scales = malloc(n_groups * sizeof *scales);
    zps = malloc(n_groups * sizeof *zps);
    if (!w || !deq || !q || !scales || !zps) {
        fputs("quant_tool: out of memory\n", stderr);
        goto out;
    }
    if (read_exact(argv[1], w, n * sizeof *w) < 0) {
        goto out;
    }

    for (int bits = 2; bits <= 8; bits++) {
        for (int asym = 0; asym <= 1; asym++) {
            if (mp__quant_affine(argv[1], w, rows, cols, group, bits, asym, q, scales,
                                 asym ? zps : NULL, &err) < 0) {
                fprintf(stderr, "quant_tool: mp__quant_affine: %s\n", err.msg);
                goto out;
            }
            mp__dequant_affine(q, rows, cols, group, bits, asym, scales, asym ? zps : NULL, deq);
            if (write_part(dir, bits, asym, "codes.u8", q, n) < 0 ||
                write_part(dir, bits, asym, "scales.f32", scales, n_groups * sizeof *scales) < 0 ||
                (asym && write_part(dir, bits, asym, "zp.i32", zps, n_groups * sizeof *zps) < 0) ||
                write_part(dir, bits, asym, "deq.f32", deq, n * sizeof *deq) < 0) {
                goto out;
            }
        }
    }
    if (group == cols) {
        if (mp__quant_i8_sym(argv[1], w, rows, cols, 1, (int8_t *)q, scales, &err) < 0) {
            fprintf(stderr, "quant_tool: mp__quant_i8_sym: %s\n", err.msg);
            goto out;
        }
        if (write_file(dir, "i8_codes.u8", q, n) < 0 ||
            write_file(dir, "i8_scales.f32", scales, rows * sizeof *scales) < 0) {
            goto out;
        }
    }
    status = 0;
out:
    free(w);
    free(deq);
    free(q);
    free(scales);
    free(zps);
    return status;
}
