/* lowrank_tool.c — runs modelpress's truncated SVD on a matrix written by lowrank_ref.py and
 * writes the factors, so the script can hold the fit against NumPy's and PyTorch's.
 *
 *   lowrank_tool exact      IN.f32 ROWS COLS RANK OUT_A.f32 OUT_B.f32
 *   lowrank_tool randomized IN.f32 ROWS COLS RANK N_ITER SEED OUT_A.f32 OUT_B.f32
 *
 * IN.f32 is ROWS x COLS float32, little-endian, row-major, nothing else (its size must be
 * exactly that). OUT_A gets a = U_r S_r (ROWS x RANK) and OUT_B gets b = V_r^T (RANK x COLS),
 * in the same format, from mp__svd_lowrank; the error it reports, ||w - a b|| / ||w||, is printed
 * on stdout as "rel_error X" with 17 significant digits. Exit 0 on success, 1 when a step fails
 * (with the library's message), 2 for bad usage.
 */
#include "core/methods_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(void)
{
    fputs("usage: lowrank_tool exact IN.f32 ROWS COLS RANK OUT_A.f32 OUT_B.f32\n"
          "       lowrank_tool randomized IN.f32 ROWS COLS RANK N_ITER SEED OUT_A.f32 OUT_B.f32\n",
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
        fprintf(stderr, "lowrank_tool: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    x = malloc((n ? n : 1) * sizeof(float));
    if (!x || fread(x, sizeof(float), n, f) != n || fgetc(f) != EOF) {
        fprintf(stderr, "lowrank_tool: %s: not exactly %zu float32 values\n", path, n);
        free(x);
        x = NULL;
    }
    fclose(f);
    return x;
}

static int write_f32(const char *path, const float *x, size_t n)
{
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(x, sizeof(float), n, f) == n;
    if (f && fclose(f) != 0) {
        ok = 0;
    }
    if (!ok) {
        fprintf(stderr, "lowrank_tool: cannot write %s\n", path);
    }
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    int randomized = argc >= 2 && strcmp(argv[1], "randomized") == 0;
    size_t rows, cols, rank, n_iter = 0, seed = 0, n;
    if (argc != (randomized ? 10 : 8) || (!randomized && strcmp(argv[1], "exact") != 0) ||
        parse_size(argv[3], &rows) || parse_size(argv[4], &cols) || parse_size(argv[5], &rank) ||
        (randomized &&
         (parse_size(argv[6], &n_iter) || n_iter > 1000 || parse_size(argv[7], &seed))) ||
        __builtin_mul_overflow(rows, cols, &n) || rank > rows || rank > cols) {
        return usage();
    }
    const char *out_a = argv[argc - 2], *out_b = argv[argc - 1];
    int rc = 1;
    float *a = NULL, *b = NULL, *w = read_f32(argv[2], n);
    if (!w) {
        goto out;
    }
    /* rank 0 reaches the library, which refuses it; malloc(0) may return NULL */
    a = malloc((rows * rank + 1) * sizeof(float));
    b = malloc((rank * cols + 1) * sizeof(float));
    if (!a || !b) {
        fputs("lowrank_tool: out of memory\n", stderr);
        goto out;
    }
    mp_errctx_t err = {0};
    double rel = 0.0;
    if (mp__svd_lowrank(w, rows, cols, rank, randomized, (int)n_iter, (uint64_t)seed, a, b, &rel,
                        &err) != 0) {
        fprintf(stderr, "lowrank_tool: %s\n", err.msg);
        goto out;
    }
    if (write_f32(out_a, a, rows * rank) || write_f32(out_b, b, rank * cols)) {
        goto out;
    }
    printf("rel_error %.17g\n", rel);
    rc = 0;
out:
    free(w);
    free(a);
    free(b);
    return rc;
}
