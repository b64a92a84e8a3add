/* prune_tool.c — runs modelpress's pruners on a matrix written by prune_ref.py and writes the
 * mask they produce, so the script can hold it against PyTorch's.
 *
 *   prune_tool magnitude IN.f32 ROWS COLS SPARSITY OUT.mask
 *   prune_tool channels  IN.f32 ROWS COLS SPARSITY NORM OUT.mask     (NORM 1 or 2)
 *
 * IN.f32 is ROWS x COLS float32, little-endian, row-major, nothing else (its size must be
 * exactly that). OUT.mask gets ROWS x COLS bytes in the same order, 1 where the weight is kept
 * and 0 where it was pruned, as torch.nn.utils.prune's weight_mask. Magnitude pruning is
 * mp__prune_magnitude in layer scope; a weight counts as pruned when it is 0 afterwards, which
 * is exact for inputs without zeros (the script checks that its inputs have none). Channel
 * pruning is mp__prune_channels, whose removed[] flags give the mask row by row. The number
 * pruned (entries or rows) is printed on stdout. Exit 0 on success, 1 when a step fails (with
 * the library's message), 2 for bad usage.
 */
#include "core/methods_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(void)
{
    fputs("usage: prune_tool magnitude IN.f32 ROWS COLS SPARSITY OUT.mask\n"
          "       prune_tool channels IN.f32 ROWS COLS SPARSITY NORM OUT.mask\n",
          stderr);
    return 2;
}

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

/* Reads exactly n floats from path into a new buffer; NULL (with a message) otherwise. */
static float *read_f32(const char *path, size_t n)
{
    FILE *f = fopen(path, "rb");
    float *x = NULL;
    if (!f) {
        fprintf(stderr, "prune_tool: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    x = malloc((n ? n : 1) * sizeof(float));
    if (!x || fread(x, sizeof(float), n, f) != n || fgetc(f) != EOF) {
        fprintf(stderr, "prune_tool: %s: not exactly %zu float32 values\n", path, n);
        free(x);
        x = NULL;
    }
    fclose(f);
    return x;
}

static int write_bytes(const char *path, const uint8_t *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(b, 1, n, f) == n;
    if (f && fclose(f) != 0) {
        ok = 0;
    }
    if (!ok) {
        fprintf(stderr, "prune_tool: cannot write %s\n", path);
    }
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    int channels = argc >= 2 && strcmp(argv[1], "channels") == 0;
    size_t rows, cols, n;
    float *w = NULL;
    uint8_t *mask = NULL, *removed = NULL;
    size_t pruned = 0;
    mp_errctx_t err = {0};
    char *end;
    int rc = 1;

    if (argc != (channels ? 8 : 7) || (!channels && strcmp(argv[1], "magnitude") != 0) ||
        parse_size(argv[3], &rows) || parse_size(argv[4], &cols) || mp__mul_size(rows, cols, &n)) {
        return usage();
    }
    double sparsity = strtod(argv[5], &end);
    if (end == argv[5] || *end) {
        return usage();
    }
    int norm = channels ? atoi(argv[6]) : 0;
    const char *out = argv[channels ? 7 : 6];

    w = read_f32(argv[2], n);
    mask = malloc(n ? n : 1);
    removed = malloc(rows ? rows : 1);
    if (!w || !mask || !removed) {
        goto out;
    }
    if (channels) {
        if (mp__prune_channels("input", w, rows, cols, sparsity, norm, removed, &pruned, &err)) {
            fprintf(stderr, "prune_tool: %s\n", err.msg);
            goto out;
        }
        for (size_t r = 0; r < rows; r++) {
            memset(mask + r * cols, !removed[r], cols);
        }
    } else {
        float *scratch = malloc((n ? n : 1) * sizeof(float));
        int prc = scratch ? mp__prune_magnitude(&w, &n, 1, sparsity, scratch, &pruned, &err)
                          : mp__err_set(&err, MP_ENOMEM, "out of memory");
        free(scratch);
        if (prc) {
            fprintf(stderr, "prune_tool: %s\n", err.msg);
            goto out;
        }
        for (size_t i = 0; i < n; i++) {
            mask[i] = w[i] != 0.0f;
        }
    }
    printf("%zu\n", pruned);
    rc = write_bytes(out, mask, n);
out:
    free(w);
    free(mask);
    free(removed);
    return rc;
}
