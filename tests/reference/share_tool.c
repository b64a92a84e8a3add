/* share_tool.c — our 1-D k-means on files, for share_ref.py to hold against scikit-learn.
 *
 *   share_tool VALUES.f32 INIT.f32 MAX_ITER OUTDIR
 *
 * VALUES.f32 holds n little-endian float32 values and INIT.f32 the k initial centroids (n and k
 * from the file sizes). The tool runs mp__kmeans_1d_from (Lloyd from INIT, at most MAX_ITER
 * updates) and mp__kmeans_1d_optimal on the same values and writes, in OUTDIR,
 * lloyd_centroids.f32 (k float32), lloyd_assign.u8 (n bytes), and the same two for "opt"; on
 * stdout one line per figure: `lloyd_sse X`, `opt_sse X` (%.17g, the SSE each function
 * reported) and `lloyd_seconds X`, `opt_seconds X` (wall time of each call). Exit status 0, or
 * 1 with the reason on stderr.
 */
#include "core/methods_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* The whole file into a malloc'd buffer of *n elements of elem bytes (the size must divide). */
static void *read_all(const char *path, size_t elem, size_t *n)
{
    void *buf = NULL;
    FILE *f = fopen(path, "rb");
    long len;
    if (!f || fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fprintf(stderr, "share_tool: %s: %s\n", path, strerror(errno));
        goto out;
    }
    if (len == 0 || (size_t)len % elem != 0) {
        fprintf(stderr, "share_tool: %s: %ld bytes is not a positive multiple of %zu\n", path, len,
                elem);
        goto out;
    }
    buf = malloc((size_t)len);
    if (!buf || fread(buf, 1, (size_t)len, f) != (size_t)len) {
        fprintf(stderr, "share_tool: %s: cannot read %ld bytes\n", path, len);
        free(buf);
        buf = NULL;
        goto out;
    }
    *n = (size_t)len / elem;
out:
    if (f) {
        fclose(f);
    }
    return buf;
}

static int write_all(const char *dir, const char *name, const void *buf, size_t bytes)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(buf, 1, bytes, f) == bytes;
    if (f && fclose(f) != 0) {
        ok = 0;
    }
    if (!ok) {
        fprintf(stderr, "share_tool: cannot write %s\n", path);
    }
    return ok ? 0 : -1;
}

/* One side: Lloyd from init (init != NULL) or the optimum; writes OUTDIR/<side>_centroids.f32
 * and <side>_assign.u8 and prints <side>_sse and <side>_seconds. */
static int run_side(const char *side, const float *w, size_t n, const float *init, size_t k,
                    int max_iter, const char *dir, uint8_t *assign)
{
    float c[256];
    char name[64];
    double sse;
    mp_errctx_t err = {0};
    double t0 = now();
    int rc = init ? (memcpy(c, init, k * sizeof *c),
                     mp__kmeans_1d_from(w, n, (int)k, max_iter, c, assign, &sse, &err))
                  : mp__kmeans_1d_optimal(w, n, (int)k, c, assign, &sse, &err);
    double seconds = now() - t0;
    if (rc < 0) {
        fprintf(stderr, "share_tool: %s: %s\n", side, err.msg);
        return -1;
    }
    snprintf(name, sizeof name, "%s_centroids.f32", side);
    if (write_all(dir, name, c, k * sizeof *c) < 0) {
        return -1;
    }
    snprintf(name, sizeof name, "%s_assign.u8", side);
    if (write_all(dir, name, assign, n) < 0) {
        return -1;
    }
    printf("%s_sse %.17g\n%s_seconds %.6f\n", side, sse, side, seconds);
    return 0;
}

int main(int argc, char **argv)
{
    int status = 1;
    size_t n = 0, k = 0;
    float *w = NULL, *init = NULL;
    uint8_t *assign = NULL;

    if (argc != 5) {
        fprintf(stderr, "usage: share_tool VALUES.f32 INIT.f32 MAX_ITER OUTDIR\n");
        return 1;
    }
    int max_iter = atoi(argv[3]);
    if (!(w = read_all(argv[1], sizeof *w, &n)) || !(init = read_all(argv[2], sizeof *init, &k))) {
        goto out;
    }
    if (k > 256) {
        fprintf(stderr, "share_tool: %zu initial centroids, at most 256\n", k);
        goto out;
    }
    if (!(assign = malloc(n))) {
        fprintf(stderr, "share_tool: out of memory\n");
        goto out;
    }
    if (run_side("lloyd", w, n, init, k, max_iter, argv[4], assign) == 0 &&
        run_side("opt", w, n, NULL, k, 0, argv[4], assign) == 0) {
        status = 0;
    }
out:
    free(w);
    free(init);
    free(assign);
    return status;
}
