/* bench_core.c — times one of our compression methods on a raw F32 matrix and prints JSON.
 *
 * The C half of the benchmark suite (bench/README.md): bench/peers.py writes the matrix once,
 * times the Python peers on it and runs this program for our side, so both read the same bytes.
 * Usage: bench_core METHOD FILE ROWS COLS [options]; FILE holds ROWS x COLS little-endian F32
 * values, row-major. One warm-up call, then --reps timed calls of exactly the library function
 * named in the output (inputs that a call changes in place are restored outside the timed
 * region; buffers are allocated and touched once, before the warm-up). Timing is
 * CLOCK_MONOTONIC around each call (and the thread's CPU time beside it); the median is what
 * the table compares. Quality figures
 * (SSE, relative error) are those of the last call. Exit 0 with one JSON object on stdout,
 * 1 if the method failed, 2 for bad usage.
 *
 * A second mode, `bench_core stream_int8 MODEL OUT [--keep-pages]`, measures what peak memory
 * int8 compression could have: it quantizes each F32 matrix of a safetensors model straight
 * from the mapped input, one tensor at a time, computes the report's error figures row by row,
 * and (without --keep-pages) hands each tensor's input pages back with madvise(MADV_DONTNEED),
 * then saves the codes and scales. It shows how far from today's pipeline the 1.5 S bound is.
 *
 * The methods of issue 3 land one by one; those not yet in the library are weak references
 * (the library is linked whole, so any that exists is found) and report "available": false
 * instead of failing the whole run.
 */
#include "methods_int.h"

#include "kernels/kernels_int.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#pragma weak mp__quant_affine
#pragma weak mp__kmeans_1d
#pragma weak mp__kmeans_1d_from
#pragma weak mp__svd_lowrank

#define MAX_REPS 101

typedef struct opts {
    const char *method, *path, *out_path, *init, *init_path;
    size_t rows, cols, n;        /* n: elements used by kmeans (a prefix of the matrix) */
    int reps, warmup, k, max_iter, n_iter;
    size_t rank;
    double sparsity;
    uint64_t seed;
} opts_t;

typedef struct result {
    double times[MAX_REPS];
    double cpu[MAX_REPS];
    int n_times;
    size_t bytes_in;             /* bytes of F32 input one call reads (for GB/s) */
    char extra[8192];            /* further JSON members, each starting with ',' */
    size_t extra_len;
} result_t;

static double clock_s(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double now_s(void)
{
    return clock_s(CLOCK_MONOTONIC);
}

/* CPU time of this thread: on a shared machine it does not count the time another process
 * held the core, so it is steadier than wall time (the work is single-threaded: OpenBLAS with
 * one thread runs in the caller). */
static double cpu_s(void)
{
    return clock_s(CLOCK_THREAD_CPUTIME_ID);
}

static void extra_add(result_t *res, const char *fmt, ...) MP__PRINTF(2, 3);
static void extra_add(result_t *res, const char *fmt, ...)
{
    va_list ap;
    size_t room = sizeof res->extra - res->extra_len;
    int w;

    va_start(ap, fmt);
    w = vsnprintf(res->extra + res->extra_len, room, fmt, ap);
    va_end(ap);
    if (w > 0) {
        res->extra_len += (size_t)w < room ? (size_t)w : room - 1;
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Reads exactly n_bytes from path into a new buffer (NULL with a message on failure). */
static void *read_file(const char *path, size_t n_bytes)
{
    FILE *f = fopen(path, "rb");
    void *buf = NULL;
    long size;

    if (f == NULL) {
        fprintf(stderr, "bench_core: cannot open %s: %s\n", path, strerror(errno));
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || (size_t)size != n_bytes) {
        fprintf(stderr, "bench_core: %s is not %zu bytes long\n", path, n_bytes);
        goto out;
    }
    rewind(f);
    buf = malloc(n_bytes ? n_bytes : 1);
    if (buf == NULL || fread(buf, 1, n_bytes, f) != n_bytes) {
        fprintf(stderr, "bench_core: cannot read %zu bytes from %s\n", n_bytes, path);
        free(buf);
        buf = NULL;
    }
out:
    fclose(f);
    return buf;
}

static int put_file(const char *path, const char *mode, const void *buf, size_t n_bytes)
{
    FILE *f = fopen(path, mode);
    int ok = f != NULL && fwrite(buf, 1, n_bytes, f) == n_bytes;

    if (f != NULL && fclose(f) != 0) {
        ok = 0;
    }
    if (!ok) {
        fprintf(stderr, "bench_core: cannot write %s\n", path);
    }
    return ok ? 0 : -1;
}

static int write_file(const char *path, const void *buf, size_t n_bytes)
{
    return put_file(path, "wb", buf, n_bytes);
}

static int append_file(const char *path, const void *buf, size_t n_bytes)
{
    return put_file(path, "ab", buf, n_bytes);
}

/* ---- one timed call per method; each returns 0 or a negative MP_E* code ------------------ */

typedef struct ctx {
    const opts_t *o;
    const float *w;              /* the input matrix, never changed */
    float *work;                 /* a copy for the methods that change it in place */
    void *q;
    float *scales, *a, *b, *centroids, *init;
    int32_t *zp;
    uint8_t *assign;
    float *scratch;
    double quality;              /* sse or rel_error of the last call */
    size_t count;                /* n_zeroed of the last call */
    mp_errctx_t err;
} ctx_t;

static int call_quant_i8(ctx_t *c)
{
    return mp__quant_i8_sym("bench", c->w, c->o->rows, c->o->cols, 1, c->q, c->scales, &c->err);
}

static int call_quant_affine(ctx_t *c)
{
    return mp__quant_affine("bench", c->w, c->o->rows, c->o->cols, c->o->cols, 8, 0, c->q,
                            c->scales, c->zp, &c->err);
}

static int call_prune(ctx_t *c)
{
    size_t n = c->o->rows * c->o->cols;
    return mp__prune_magnitude(&c->work, &n, 1, c->o->sparsity, c->scratch, &c->count, &c->err);
}

static int call_kmeans(ctx_t *c)
{
    const opts_t *o = c->o;

    if (c->init != NULL) {
        memcpy(c->centroids, c->init, (size_t)o->k * sizeof *c->centroids);
        return mp__kmeans_1d_from(c->w, o->n, o->k, o->max_iter, c->centroids, c->assign,
                                  &c->quality, &c->err);
    }
    mp__km_init_t init = strcmp(o->init, "kmeans++") == 0  ? MP_KM_INIT_KMEANSPP
                         : strcmp(o->init, "density") == 0 ? MP_KM_INIT_DENSITY
                                                           : MP_KM_INIT_LINEAR;
    return mp__kmeans_1d(c->w, o->n, o->k, init, o->seed, o->max_iter, c->centroids, c->assign,
                         &c->quality, &c->err);
}

static int call_svd(ctx_t *c)
{
    const opts_t *o = c->o;
    return mp__svd_lowrank(c->w, o->rows, o->cols, o->rank, 1, o->n_iter, o->seed, c->a, c->b,
                           &c->quality, &c->err);
}

/* The floor every streaming method is measured against: one read and one write of the input. */
static int call_copy(ctx_t *c)
{
    memcpy(c->work, c->w, c->o->rows * c->o->cols * sizeof(float));
    return 0;
}

typedef struct method {
    const char *name;
    const char *function;        /* what is timed, printed with the figures */
    int (*call)(ctx_t *c);
    int in_place;                /* restore c->work from c->w before each call */
} method_t;

static const method_t methods[] = {
    {"quant_i8", "mp__quant_i8_sym", call_quant_i8, 0},
    {"quant_affine", "mp__quant_affine", call_quant_affine, 0},
    {"prune", "mp__prune_magnitude", call_prune, 1},
    {"kmeans", "mp__kmeans_1d", call_kmeans, 0},
    {"svd", "mp__svd_lowrank", call_svd, 0},
    {"copy", "memcpy", call_copy, 0},
};

static int available(const method_t *m, const ctx_t *c)
{
    if (m->call == call_quant_affine) {
        return mp__quant_affine != NULL;
    }
    if (m->call == call_kmeans) {
        return c->init != NULL ? mp__kmeans_1d_from != NULL : mp__kmeans_1d != NULL;
    }
    if (m->call == call_svd) {
        return mp__svd_lowrank != NULL;
    }
    return 1;
}

/* Allocates and touches what the method needs, so no timed call pays for page faults. */
static int ctx_alloc(ctx_t *c, const method_t *m)
{
    const opts_t *o = c->o;
    const size_t n = o->rows * o->cols;

    if (m->in_place || m->call == call_copy) {
        c->work = malloc(n * sizeof *c->work);
        if (c->work == NULL) {
            return MP_ENOMEM;
        }
        memcpy(c->work, c->w, n * sizeof *c->work);
    }
    if (m->call == call_quant_i8 || m->call == call_quant_affine) {
        c->q = calloc(n, 1);
        c->scales = calloc(o->rows, sizeof *c->scales);
        c->zp = calloc(o->rows, sizeof *c->zp);
    } else if (m->call == call_prune) {
        c->scratch = calloc(mp__prune_scratch_elems(&n, 1), sizeof *c->scratch);
    } else if (m->call == call_kmeans) {
        c->centroids = calloc(256, sizeof *c->centroids);
        c->assign = calloc(o->n ? o->n : 1, 1);
    } else if (m->call == call_svd) {
        c->a = calloc(o->rows * o->rank, sizeof *c->a);
        c->b = calloc(o->rank * o->cols, sizeof *c->b);
    }
    if ((m->call == call_quant_i8 || m->call == call_quant_affine) &&
        (c->q == NULL || c->scales == NULL || c->zp == NULL)) {
        return MP_ENOMEM;
    }
    if ((m->call == call_prune && c->scratch == NULL) ||
        (m->call == call_kmeans && (c->centroids == NULL || c->assign == NULL)) ||
        (m->call == call_svd && (c->a == NULL || c->b == NULL))) {
        return MP_ENOMEM;
    }
    return 0;
}

static void ctx_free(ctx_t *c)
{
    free(c->work);
    free(c->q);
    free(c->scales);
    free(c->zp);
    free(c->scratch);
    free(c->centroids);
    free(c->assign);
    free(c->a);
    free(c->b);
    free(c->init);
}

/* The figures of the last call that the Python side checks against the peer. */
static int report_quality(ctx_t *c, const method_t *m, result_t *res)
{
    const opts_t *o = c->o;
    const size_t n = o->rows * o->cols;

    if (m->call == call_prune) {
        extra_add(res, ",\"n_zeroed\":%zu", c->count);
        if (o->out_path && write_file(o->out_path, c->work, n * sizeof(float)) < 0) {
            return -1;
        }
    } else if (m->call == call_quant_i8 || m->call == call_quant_affine) {
        if (o->out_path && write_file(o->out_path, c->q, n) < 0) {
            return -1;
        }
    } else if (m->call == call_kmeans) {
        extra_add(res, ",\"sse\":%.17g,\"centroids\":[", c->quality);
        for (int j = 0; j < o->k; j++) {
            extra_add(res, "%s%.9g", j ? "," : "", (double)c->centroids[j]);
        }
        extra_add(res, "]");
    } else if (m->call == call_svd) {
        extra_add(res, ",\"rel_error\":%.17g", c->quality);
        /* a (rows x rank) then b (rank x cols), for the error to be measured like the peer's */
        if (o->out_path && (write_file(o->out_path, c->a, o->rows * o->rank * sizeof(float)) < 0 ||
                            append_file(o->out_path, c->b, o->rank * o->cols * sizeof(float)) < 0)) {
            return -1;
        }
    }
    return 0;
}

static int run(const opts_t *o, const method_t *m, const float *w, result_t *res)
{
    ctx_t c = {.o = o, .w = w};
    int rc = 0;

    res->bytes_in = (m->call == call_kmeans ? o->n : o->rows * o->cols) * sizeof(float);
    if (o->init_path != NULL) {
        c.init = read_file(o->init_path, (size_t)o->k * sizeof(float));
        if (c.init == NULL) {
            rc = -1;
            goto out;
        }
    }
    if (!available(m, &c)) {
        extra_add(res, ",\"available\":false");
        goto out;
    }
    extra_add(res, ",\"available\":true");
    if ((rc = ctx_alloc(&c, m)) < 0) {
        fprintf(stderr, "bench_core: out of memory\n");
        goto out;
    }
    for (int i = -o->warmup; i < o->reps; i++) {
        if (m->in_place) {
            memcpy(c.work, w, o->rows * o->cols * sizeof *c.work);
        }
        double c0 = cpu_s(), t0 = now_s();
        rc = m->call(&c);
        double t1 = now_s(), c1 = cpu_s();
        if (rc < 0) {
            fprintf(stderr, "bench_core: %s failed: %s (%s)\n", m->function, c.err.msg,
                    mp_strerror(rc));
            goto out;
        }
        if (i >= 0) {
            res->cpu[res->n_times] = c1 - c0;
            res->times[res->n_times++] = t1 - t0;
        }
    }
    rc = report_quality(&c, m, res);
out:
    ctx_free(&c);
    return rc;
}

/* ---- peak memory of streamed int8 compression ---------------------------------------------- */

/* Drops the whole pages inside [p, p + n) of a read-only private file mapping from this
 * process's resident set; reading them again faults them back in from the page cache. */
static void release_pages(const void *p, size_t n)
{
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t lo = ((uintptr_t)p + page - 1) & ~(page - 1), hi = ((uintptr_t)p + n) & ~(page - 1);

    if (hi > lo) {
        madvise((void *)lo, hi - lo, MADV_DONTNEED);
    }
}

/* Codes and scales of one F32 matrix, quantized from the mapping; signal and noise (the
 * report's rel_error and SQNR) summed row by row through a one-row scratch. */
static int stream_tensor(mp_model_t *out, const mp_tensor_t *t, float *row, double *signal,
                         double *noise, mp_errctx_t *err)
{
    const size_t rows = (size_t)t->shape[0], cols = t->n_bytes / 4 / rows;
    const int64_t n_scales = (int64_t)rows;
    const float *w = t->data;
    int8_t *q = malloc(rows * cols);
    float *scales = malloc(rows * sizeof *scales);
    char name[600];
    int rc;

    if (q == NULL || scales == NULL) {
        free(q);
        free(scales);
        return mp__err_set(err, MP_ENOMEM, "out of memory for tensor '%s'", t->name);
    }
    rc = mp__quant_i8_sym(t->name, w, rows, cols, 1, q, scales, err);
    for (size_t r = 0; rc == 0 && r < rows; r++) {
        mp__dequant_i8_sym(q + r * cols, 1, cols, 1, &scales[r], row);
        for (size_t j = 0; j < cols; j++) {
            double a = w[r * cols + j], d = a - (double)row[j];
            *signal += a * a;
            *noise += d * d;
        }
    }
    if (rc < 0) {
        free(q);
        free(scales);
        return rc;
    }
    rc = mp_model_add_take(out, t->name, MP_DT_I8, t->n_dims, t->shape, q, rows * cols, err);
    snprintf(name, sizeof name, "%s_scale", t->name);
    if (rc == 0) {
        rc = mp_model_add_take(out, name, MP_DT_F32, 1, &n_scales, scales, rows * sizeof(float),
                               err);
    } else {
        free(scales);
    }
    return rc;
}

static int stream_int8(const char *in_path, const char *out_path, int keep_pages)
{
    mp_model_t *in = NULL, *out = NULL;
    mp_errctx_t err = {0};
    float *row = NULL;
    double signal = 0.0, noise = 0.0, t0 = now_s();
    size_t max_cols = 1;
    struct rusage ru;
    int rc;

    if ((rc = mp_model_load(in_path, &in, &err)) < 0 || (out = mp_model_new()) == NULL) {
        rc = rc < 0 ? rc : MP_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < in->n_tensors; i++) {
        const mp_tensor_t *t = &in->tensors[i];
        if (t->n_dims >= 2 && t->shape[0] > 0 && t->n_bytes / 4 / (size_t)t->shape[0] > max_cols) {
            max_cols = t->n_bytes / 4 / (size_t)t->shape[0];
        }
    }
    if ((row = malloc(max_cols * sizeof *row)) == NULL) {
        rc = MP_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < in->n_tensors; i++) {
        const mp_tensor_t *t = &in->tensors[i];
        if (t->dtype == MP_DT_F32 && t->n_dims >= 2 && t->n_bytes > 0) {
            rc = stream_tensor(out, t, row, &signal, &noise, &err);
            if (!keep_pages) {
                release_pages(t->data, t->n_bytes);
            }
        } else {
            rc = mp_model_add_ref(out, t->name, t->dtype, t->n_dims, t->shape, t->data,
                                  t->n_bytes, &err);
        }
        if (rc < 0) {
            goto out;
        }
    }
    rc = mp_safetensors_save(out, out_path, &err);
out:
    if (rc < 0) {
        fprintf(stderr, "bench_core: stream_int8: %s (%s)\n", err.msg, mp_strerror(rc));
    } else {
        getrusage(RUSAGE_SELF, &ru);
        printf("{\"method\":\"stream_int8\",\"keep_pages\":%s,\"seconds\":%.3f,"
               "\"maxrss_bytes\":%ld,\"rel_error\":%.9g}\n",
               keep_pages ? "true" : "false", now_s() - t0, ru.ru_maxrss * 1024L,
               signal > 0.0 ? sqrt(noise / signal) : 0.0);
    }
    free(row);
    mp_model_free(out);
    mp_model_free(in);
    return rc < 0 ? 1 : 0;
}

/* ---- command line -------------------------------------------------------------------------- */

static int usage(void)
{
    fprintf(stderr,
            "usage: bench_core METHOD FILE ROWS COLS [--reps N] [--warmup N] [--out FILE]\n"
            "  METHOD: quant_i8 | quant_affine | prune | kmeans | svd | copy\n"
            "  prune:  [--sparsity S (0.9)]\n"
            "  kmeans: [--n N (all)] [--k K (16)] [--init linear|density|kmeans++ (linear)]\n"
            "          [--init-file F32FILE (K centroids: mp__kmeans_1d_from)] [--max-iter I]\n"
            "          [--seed S]\n"
            "  svd:    [--rank R (256)] [--iter I (2)] [--seed S]\n"
            "   or: bench_core stream_int8 MODEL.safetensors OUT.safetensors [--keep-pages]\n");
    return 2;
}

static int parse_size(const char *s, size_t *v)
{
    char *end;
    unsigned long long x;

    errno = 0;
    x = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-') {
        return -1;
    }
    *v = (size_t)x;
    return 0;
}

static int parse_args(int argc, char **argv, opts_t *o)
{
    size_t v;

    if (argc < 5 || parse_size(argv[3], &o->rows) < 0 || parse_size(argv[4], &o->cols) < 0 ||
        o->rows == 0 || o->cols == 0 || o->rows > SIZE_MAX / 4 / o->cols) {
        return -1;
    }
    o->method = argv[1];
    o->path = argv[2];
    o->n = o->rows * o->cols;
    for (int i = 5; i < argc; i += 2) {
        const char *k = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (val == NULL) {
            return -1;
        }
        if (strcmp(k, "--out") == 0) {
            o->out_path = val;
        } else if (strcmp(k, "--init") == 0) {
            o->init = val;
        } else if (strcmp(k, "--init-file") == 0) {
            o->init_path = val;
        } else if (strcmp(k, "--sparsity") == 0) {
            o->sparsity = atof(val);
        } else if (parse_size(val, &v) < 0) {
            return -1;
        } else if (strcmp(k, "--reps") == 0 && v >= 1 && v <= MAX_REPS) {
            o->reps = (int)v;
        } else if (strcmp(k, "--warmup") == 0 && v <= 100) {
            o->warmup = (int)v;
        } else if (strcmp(k, "--n") == 0 && v >= 1 && v <= o->rows * o->cols) {
            o->n = v;
        } else if (strcmp(k, "--k") == 0 && v >= 2 && v <= 256) {
            o->k = (int)v;
        } else if (strcmp(k, "--max-iter") == 0 && v >= 1 && v <= 100000) {
            o->max_iter = (int)v;
        } else if (strcmp(k, "--iter") == 0 && v <= 100) {
            o->n_iter = (int)v;
        } else if (strcmp(k, "--rank") == 0 && v >= 1) {
            o->rank = v;
        } else if (strcmp(k, "--seed") == 0) {
            o->seed = v;
        } else {
            return -1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    opts_t o = {.reps = 7, .warmup = 1, .k = 16, .max_iter = 300, .n_iter = 2, .rank = 256,
                .sparsity = 0.9, .seed = 1, .init = "linear"};
    const method_t *m = NULL;
    static result_t res;
    float *w = NULL;
    int rc;

    if (argc >= 4 && strcmp(argv[1], "stream_int8") == 0) {
        if (argc > 5 || (argc == 5 && strcmp(argv[4], "--keep-pages") != 0)) {
            return usage();
        }
        return stream_int8(argv[2], argv[3], argc == 5);
    }
    if (parse_args(argc, argv, &o) < 0) {
        return usage();
    }
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        if (strcmp(methods[i].name, o.method) == 0) {
            m = &methods[i];
        }
    }
    if (m == NULL || (m->call == call_svd && o.rank > (o.rows < o.cols ? o.rows : o.cols))) {
        return usage();
    }
    w = read_file(o.path, o.rows * o.cols * sizeof *w);
    if (w == NULL) {
        return 1;
    }
    rc = run(&o, m, w, &res);
    free(w);
    if (rc < 0) {
        return 1;
    }
    qsort(res.times, (size_t)res.n_times, sizeof res.times[0], cmp_double);
    qsort(res.cpu, (size_t)res.n_times, sizeof res.cpu[0], cmp_double);
    printf("{\"method\":\"%s\",\"function\":\"%s\",\"isa\":\"%s\",\"rows\":%zu,\"cols\":%zu,"
           "\"bytes_in\":%zu,\"reps\":%d",
           m->name, m->function, mp_kern_isa(), o.rows, o.cols, res.bytes_in, res.n_times);
    if (res.n_times > 0) {
        printf(",\"median_s\":%.9g,\"min_s\":%.9g,\"max_s\":%.9g,\"cpu_median_s\":%.9g",
               res.times[res.n_times / 2], res.times[0], res.times[res.n_times - 1],
               res.cpu[res.n_times / 2]);
    }
    printf("%s}\n", res.extra);
    return 0;
}
