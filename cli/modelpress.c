/* modelpress.c — the `modelpress` command: compress, inspect and unpack models offline.
 *
 * The same engine as the daemon's workers, run in this process. Contract kept for scripts
 * (DESIGN.md, Command lines): with --json exactly one JSON document goes to stdout — for
 * compress the very report the API serves — and everything meant for people (summaries,
 * messages, the progress bar, drawn only when stderr is a terminal) goes to stderr. Exit status
 * 0 on success, 1 when the job failed (unreadable model, failed run, failed write), 2 for bad
 * usage or a bad recipe (the message names the field). Output files are written to
 * OUT.tmp-XXXXXX, fsynced and renamed, so OUT is either the old file or the complete new one.
 * SIGINT and SIGTERM during compress and unpack cancel the job between tensors (and before the
 * rename), so no temporary file is left behind.
 */
#include "modelpress.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <libgen.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2 };

/* More than a recipe may be (mp_recipe_parse refuses 1 MiB + 1 with a message naming it). */
#define RECIPE_READ_MAX ((size_t)(1u << 20) + 1)

static atomic_int g_cancel;

static const char USAGE[] =
    "usage: modelpress <command> [options]\n"
    "\n"
    "commands:\n"
    "  compress MODEL -r RECIPE.json -o OUT [--dataset DATA] [--json]\n"
    "                      apply a recipe (prune, quantize, share, lowrank, huffman) and write\n"
    "                      the compressed model: .mpz when OUT ends in .mpz or the recipe has a\n"
    "                      huffman step, else safetensors; with a dataset (and an ONNX model)\n"
    "                      also measure accuracy, agreement and speed before and after\n"
    "  eval MODEL --dataset DATA [--runs N] [--json]\n"
    "                      run an ONNX model on a dataset: top-1 accuracy (with labels) and\n"
    "                      latency at batch 1 and 32 (median of N runs, 10 by default)\n"
    "  inspect MODEL [--json]\n"
    "                      list tensors, dtypes, shapes, sizes and the default selection, or\n"
    "                      for a compressed model (safetensors or .mpz) what was done to each\n"
    "  unpack IN -o OUT.safetensors\n"
    "                      restore plain F32 tensors from a compressed model (.mpz too)\n"
    "\n"
    "options:\n"
    "  -r, --recipe FILE   the recipe (JSON); '-' reads it from stdin\n"
    "  -o, --output FILE   where to write the result\n"
    "  -d, --dataset DATA  .npz (x, optional y labels), .npy or safetensors with x and y\n"
    "      --json          print one JSON document on stdout (human output goes to stderr)\n"
    "  -h, --help          this text\n"
    "      --version       print the version\n"
    "\n"
    "A recipe: {\"steps\": [{\"prune\": {\"sparsity\": 0.9}}, {\"share\": {\"clusters\": 16}},\n"
    "           {\"huffman\": {}}]}   (every step and field: the README's Recipes section)\n"
    "Exit status: 0 success, 1 the job failed, 2 bad usage or bad recipe.\n";

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fprintf(stderr, "modelpress: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(see modelpress --help)\n");
    va_end(ap);
    return EXIT_USAGE;
}

static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&g_cancel, 1);
}

/* From here on SIGINT/SIGTERM ask the job to stop instead of killing the process, so that a
 * run stops between tensors and no temporary file is left behind. */
static void catch_signals(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

static int ends_with(const char *s, const char *suffix)
{
    const size_t n = strlen(s), k = strlen(suffix);

    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* "1.5 MiB" */
static void human_bytes(double b, char *buf, size_t cap)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;

    while (b >= 1024.0 && u < 4) {
        b /= 1024.0;
        u++;
    }
    snprintf(buf, cap, u ? "%.1f %s" : "%.0f %s", b, units[u]);
}

static void shape_text(const json_t *shape, char *buf, size_t cap)
{
    size_t used = 0, i;
    json_t *d;

    buf[0] = '\0';
    json_array_foreach(shape, i, d)
    {
        int n = snprintf(buf + used, cap - used, "%s%" JSON_INTEGER_FORMAT, i ? "x" : "",
                         json_integer_value(d));
        if (n < 0 || (size_t)n >= cap - used) {
            break;
        }
        used += (size_t)n;
    }
    if (i == 0) {
        snprintf(buf, cap, "scalar");
    }
}

/* ---- progress bar ------------------------------------------------------------------------- */

typedef struct bar {
    int last; /* last percentage drawn, -1 before the first */
} bar_t;

static void bar_cb(void *ud, double progress, const char *stage)
{
    bar_t *b = ud;
    const int pct = (int)(progress * 100.0 + 0.5);
    char fill[31];
    const int n = pct * 30 / 100;

    if (pct == b->last) {
        return;
    }
    b->last = pct;
    memset(fill, '#', (size_t)n);
    memset(fill + n, '.', (size_t)(30 - n));
    fill[30] = '\0';
    fprintf(stderr, "\r%-9s [%s] %3d%%", stage, fill, pct);
    fflush(stderr);
}

static void bar_clear(const bar_t *b)
{
    if (b->last >= 0) {
        fprintf(stderr, "\r%50s\r", "");
    }
}

/* ---- files -------------------------------------------------------------------------------- */

/* Read at most RECIPE_READ_MAX bytes of path ("-": stdin) into a malloc'd buffer. */
static int read_recipe(const char *path, char **out, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    char *buf = NULL;
    size_t n = 0;
    int rc = -1;

    if (f == NULL) {
        goto out;
    }
    buf = malloc(RECIPE_READ_MAX);
    if (buf == NULL) {
        goto out;
    }
    n = fread(buf, 1, RECIPE_READ_MAX, f);
    if (ferror(f)) {
        goto out;
    }
    *out = buf;
    *len = n;
    buf = NULL;
    rc = 0;
out:
    if (f != NULL && f != stdin) {
        fclose(f);
    }
    free(buf);
    return rc;
}

static int fsync_path(const char *path, int flags)
{
    int fd = open(path, flags | O_CLOEXEC);
    int rc;

    if (fd < 0) {
        return -1;
    }
    rc = fsync(fd);
    close(fd);
    return rc;
}

/* Save m to path (as .mpz when mpz, else safetensors) through path.tmp-XXXXXX: write, fsync,
 * rename, fsync the folder. */
/* Write m to path as container ("safetensors", "mpz" or "onnx": m then carries its graph)
 * through a temporary file, fsynced and renamed. */
static int save_atomic(const mp_model_t *m, const char *path, const char *container,
                       mp_errctx_t *err)
{
    const size_t len = strlen(path);
    char *tmp = malloc(len + sizeof ".tmp-XXXXXX");
    char *dir_copy = strdup(path);
    mode_t mask;
    int fd = -1, rc = 0;

    if (tmp == NULL || dir_copy == NULL) {
        rc = err->code = MP_ENOMEM;
        snprintf(err->msg, sizeof err->msg, "out of memory");
        goto out;
    }
    memcpy(tmp, path, len);
    memcpy(tmp + len, ".tmp-XXXXXX", sizeof ".tmp-XXXXXX");
    fd = mkstemp(tmp);
    if (fd < 0) {
        rc = err->code = MP_EIO;
        snprintf(err->msg, sizeof err->msg, "%s: cannot create a temporary file: %s", path,
                 strerror(errno));
        free(tmp);
        tmp = NULL; /* nothing to remove */
        goto out;
    }
    /* mkstemp makes 0600; give the result the permissions any new file would get */
    mask = umask(0);
    umask(mask);
    (void)fchmod(fd, 0666 & ~mask);
    close(fd);

    rc = strcmp(container, "mpz") == 0    ? mp_mpz_save(m, tmp, err)
         : strcmp(container, "onnx") == 0 ? mp_onnx_save(m, tmp, err)
                                          : mp_safetensors_save(m, tmp, err);
    if (rc < 0) {
        goto out;
    }
    if (atomic_load(&g_cancel)) {
        rc = err->code = MP_ECANCELED;
        snprintf(err->msg, sizeof err->msg, "%s: canceled before it was complete", path);
        goto out;
    }
    if (fsync_path(tmp, O_RDONLY) < 0 || rename(tmp, path) < 0) {
        rc = err->code = errno == ENOSPC ? MP_ENOSPC : MP_EIO;
        snprintf(err->msg, sizeof err->msg, "%s: %s", path, strerror(errno));
        goto out;
    }
    free(tmp);
    tmp = NULL;
    /* the rename is durable only once the folder is */
    (void)fsync_path(dirname(dir_copy), O_RDONLY | O_DIRECTORY);
out:
    if (tmp != NULL) {
        unlink(tmp);
        free(tmp);
    }
    free(dir_copy);
    return rc;
}

/* ---- compress ----------------------------------------------------------------------------- */

/* "int4 sym group 128", "share 16", "svd rank 12 + int8 sym channel" from a report or record
 * entry's code and the object holding its "decomposition" and "rank" (a report entry itself,
 * a record entry's "lowrank"; NULL or without them when not factored). */
static void code_text(const json_t *code, const json_t *factors, char *buf, size_t cap)
{
    const char *kind = json_string_value(json_object_get(code, "kind"));
    const char *gran = json_string_value(json_object_get(code, "granularity"));
    const char *decomposition = json_string_value(json_object_get(factors, "decomposition"));
    const json_t *rank = json_object_get(factors, "rank");
    char lr[64] = "", what[64];

    if (decomposition != NULL) {
        if (json_is_array(rank)) {
            snprintf(lr, sizeof lr, "%s rank %" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT " + ",
                     decomposition, json_integer_value(json_array_get(rank, 0)),
                     json_integer_value(json_array_get(rank, 1)));
        } else {
            snprintf(lr, sizeof lr, "%s rank %" JSON_INTEGER_FORMAT " + ", decomposition,
                     json_integer_value(rank));
        }
    }
    if (kind == NULL) {
        snprintf(what, sizeof what, "?");
    } else if (strcmp(kind, "raw") == 0) {
        snprintf(what, sizeof what, "%s", json_string_value(json_object_get(code, "dtype")));
    } else if (strcmp(kind, "share") == 0) {
        snprintf(what, sizeof what, "share %" JSON_INTEGER_FORMAT,
                 json_integer_value(json_object_get(code, "clusters")));
    } else if (strcmp(kind, "int") == 0) {
        const json_t *g = json_object_get(code, "group_size");
        const char *scheme = json_string_value(json_object_get(code, "scheme"));
        snprintf(what, sizeof what, "int%" JSON_INTEGER_FORMAT " %s %s",
                 json_integer_value(json_object_get(code, "bits")),
                 scheme != NULL && strcmp(scheme, "asymmetric") == 0 ? "asym" : "sym",
                 gran ? gran : "?");
        if (g != NULL) {
            size_t used = strlen(what);
            snprintf(what + used, sizeof what - used, " %" JSON_INTEGER_FORMAT,
                     json_integer_value(g));
        }
    } else {
        snprintf(what, sizeof what, "%s %s", kind, gran ? gran : "?");
    }
    snprintf(buf, cap, "%s%s", lr, what);
}

/* container: what was written (the report's output_format when NULL). */
static void print_summary(const char *model_path, const char *out_path, const char *report_text,
                          const char *container)
{
    json_t *rep = json_loads(report_text, 0, NULL);
    json_t *t, *stage;
    size_t i;
    char before[32], after[32], shape[64], code[96];
    int pruned = 0;
    const char *format;

    if (rep == NULL) {
        return;
    }
    format = json_string_value(json_object_get(rep, "output_format"));
    fprintf(stderr,
            "modelpress: %s: compressed %" JSON_INTEGER_FORMAT " of %" JSON_INTEGER_FORMAT
            " tensors in %.0f ms (kernels: %s)\n",
            model_path, json_integer_value(json_object_get(rep, "n_compressed")),
            json_integer_value(json_object_get(rep, "n_tensors")),
            json_number_value(json_object_get(rep, "duration_ms")),
            json_string_value(json_object_get(rep, "isa")));
    fprintf(stderr, "  %-28s %-12s %-30s %8s %7s %10s %10s %9s %8s\n", "tensor", "shape",
            "stored as", "sparsity", "bits/w", "before", "after", "rel_err", "SQNR dB");
    json_array_foreach(json_object_get(rep, "tensors"), i, t)
    {
        const json_t *sq = json_object_get(t, "sqnr_db");
        char sqnr[16];
        shape_text(json_object_get(t, "shape"), shape, sizeof shape);
        code_text(json_object_get(t, "code"), t, code, sizeof code);
        human_bytes(json_number_value(json_object_get(t, "bytes_before")), before, sizeof before);
        human_bytes(json_number_value(json_object_get(t, "bytes_after")), after, sizeof after);
        snprintf(sqnr, sizeof sqnr, json_is_null(sq) ? "exact" : "%.1f", json_number_value(sq));
        fprintf(stderr, "  %-28s %-12s %-30s %7.1f%% %7.2f %10s %10s %9.2e %8s\n",
                json_string_value(json_object_get(t, "name")), shape, code,
                100.0 * json_number_value(json_object_get(t, "sparsity")),
                json_number_value(json_object_get(t, "bits_per_weight")), before, after,
                json_number_value(json_object_get(t, "rel_error")), sqnr);
    }
    human_bytes(json_number_value(json_object_get(rep, "bytes_before")), before, sizeof before);
    fprintf(stderr, "  stages: %s", before);
    json_array_foreach(json_object_get(rep, "stages"), i, stage)
    {
        const char *step = json_string_value(json_object_get(stage, "step"));
        pruned |= strcmp(step, "prune") == 0;
        human_bytes(json_number_value(json_object_get(stage, "bytes")), after, sizeof after);
        fprintf(stderr, " -> %s %s", step, after);
    }
    fprintf(stderr, "\n");
    human_bytes(json_number_value(json_object_get(rep, "bytes_after")), after, sizeof after);
    if (container != NULL) {
        format = container;
    }
    fprintf(stderr, "  total: %s -> %s (%.2fx), written to %s (%s)\n", before, after,
            json_number_value(json_object_get(rep, "compression_ratio")), out_path,
            format ? format : "?");
    if (pruned && format != NULL && strcmp(format, "safetensors") == 0) {
        fprintf(stderr, "  note: safetensors stores pruned zeros densely, so pruning alone does "
                        "not shrink the file;\n        sparse storage comes with the .mpz "
                        "container (a huffman step, or -o OUT.mpz)\n");
    }
    json_decref(rep);
}

/* ---- evaluation (compress --dataset, eval) ------------------------------------------------- */

/* "88.00 %", or "-" for null. */
static const char *pct(const json_t *v, char *buf, size_t cap)
{
    snprintf(buf, cap, json_is_number(v) ? "%.2f %%" : "-", 100.0 * json_number_value(v));
    return buf;
}

/* The figures of an evaluation (mp_evaluate's JSON object), for people, on stderr. */
static void print_evaluation(const json_t *ev)
{
    const json_t *b = json_object_get(ev, "before"), *a = json_object_get(ev, "after");
    char p1[32], p2[32], p3[32];

    fprintf(stderr,
            "  evaluation on %" JSON_INTEGER_FORMAT " samples (median of %" JSON_INTEGER_FORMAT
            " timed runs, kernels: %s)\n",
            json_integer_value(json_object_get(ev, "samples")),
            json_integer_value(json_object_get(ev, "latency_runs")), mp_kern_isa());
    if (a == NULL) {
        fprintf(stderr, "  top-1 accuracy %s; latency %.4f ms at batch 1, %.4f ms at batch %d\n",
                pct(json_object_get(b, "accuracy"), p1, sizeof p1),
                json_number_value(json_object_get(b, "latency_ms")),
                json_number_value(json_object_get(b, "latency_ms_b32")), MP_EVAL_BATCH);
        return;
    }
    fprintf(stderr, "  top-1 accuracy %s -> %s, agreement with the original %s, output SNR ",
            pct(json_object_get(b, "accuracy"), p1, sizeof p1),
            pct(json_object_get(a, "accuracy"), p2, sizeof p2),
            pct(json_object_get(ev, "agreement"), p3, sizeof p3));
    if (json_is_number(json_object_get(ev, "output_snr_db"))) {
        fprintf(stderr, "%.1f dB\n", json_number_value(json_object_get(ev, "output_snr_db")));
    } else {
        fprintf(stderr, "exact\n");
    }
    fprintf(stderr,
            "  latency %.4f -> %.4f ms at batch 1 (%.2fx), %.4f -> %.4f ms at batch %d "
            "(%.2fx)\n",
            json_number_value(json_object_get(b, "latency_ms")),
            json_number_value(json_object_get(a, "latency_ms")),
            json_number_value(json_object_get(ev, "speedup")),
            json_number_value(json_object_get(b, "latency_ms_b32")),
            json_number_value(json_object_get(a, "latency_ms_b32")), MP_EVAL_BATCH,
            json_number_value(json_object_get(ev, "speedup_b32")));
}

static void print_evaluation_of(const char *report_text)
{
    json_t *rep = json_loads(report_text, 0, NULL);

    if (json_is_object(json_object_get(rep, "evaluation"))) {
        print_evaluation(json_object_get(rep, "evaluation"));
    }
    json_decref(rep);
}

/* What compress evaluates on: the dataset at path (NULL: none), checked before any work is
 * done. A recipe with an evaluate block needs --dataset here (dataset ids belong to the
 * service); only an ONNX model can be run. EXIT_OK with *ds (or NULL), else the exit status. */
static int open_dataset(const char *path, const char *model_path, const mp_model_t *m,
                        const char *recipe_path, const char *recipe_text, size_t recipe_len,
                        mp_dataset_t **ds, mp_eval_spec_t *spec)
{
    mp_errctx_t err = {0};

    if (mp_recipe_evaluate(recipe_text, recipe_len, spec, &err) < 0) {
        fprintf(stderr, "modelpress: %s: %s\n", recipe_path, err.msg);
        return EXIT_USAGE;
    }
    if (path == NULL && spec->present) {
        return usage_error("%s: the recipe has an evaluate block: give the data with --dataset "
                           "DATA (dataset ids are the service's)",
                           recipe_path);
    }
    if (path == NULL) {
        return EXIT_OK;
    }
    if (!mp_model_is_onnx(m)) {
        return usage_error("--dataset: %s is not ONNX; only a model with a graph can be run to "
                           "measure accuracy and speed",
                           model_path);
    }
    if (mp_dataset_load(path, ds, &err) < 0) {
        fprintf(stderr, "modelpress: %s: %s\n", path, err.msg);
        return EXIT_FAILED;
    }
    return EXIT_OK;
}

/* The evaluate step of compress: the figures go into the report. */
static int evaluate_result(const mp_model_t *in, const mp_model_t *out, const mp_dataset_t *ds,
                           const mp_eval_spec_t *spec, const char *dataset_path, char **report)
{
    bar_t bar = {.last = -1};
    mp_eval_opts_t opts = {.latency_runs = spec->latency_runs, .cancel = &g_cancel};
    mp_errctx_t err = {0};
    int rc;

    if (isatty(STDERR_FILENO)) {
        opts.progress_cb = bar_cb;
        opts.ud = &bar;
    }
    rc = mp_evaluate_pipeline(in, out, ds, &opts, report, &err);
    bar_clear(&bar);
    if (rc < 0) {
        fprintf(stderr, "modelpress: evaluation on %s: %s\n", dataset_path, err.msg);
        return EXIT_FAILED;
    }
    return EXIT_OK;
}

static int cmd_eval(int argc, char **argv)
{
    static const struct option longopts[] = {{"dataset", required_argument, NULL, 'd'},
                                             {"runs", required_argument, NULL, 'n'},
                                             {"json", no_argument, NULL, 'j'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    const char *dataset_path = NULL;
    mp_eval_opts_t opts = {.cancel = &g_cancel};
    mp_errctx_t err = {0};
    mp_model_t *m = NULL;
    mp_dataset_t *ds = NULL;
    bar_t bar = {.last = -1};
    char *text = NULL, *end;
    json_t *ev = NULL, *doc = NULL;
    int c, json = 0, status = EXIT_FAILED;
    long runs;

    while ((c = getopt_long(argc, argv, "d:n:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'd':
            dataset_path = optarg;
            break;
        case 'n':
            runs = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || runs < 1 || runs > MP_EVAL_MAX_LATENCY_RUNS) {
                return usage_error("--runs %s: an integer from 1 to %d", optarg,
                                   MP_EVAL_MAX_LATENCY_RUNS);
            }
            opts.latency_runs = (int)runs;
            break;
        case 'j':
            json = 1;
            break;
        case 'h':
            fputs(USAGE, stdout);
            return EXIT_OK;
        default:
            return usage_error("%s: bad option", "eval");
        }
    }
    if (optind != argc - 1 || dataset_path == NULL) {
        return usage_error("%s: give one MODEL and --dataset DATA", "eval");
    }
    if (mp_model_load(argv[optind], &m, &err) < 0) {
        fprintf(stderr, "modelpress: %s: %s\n", argv[optind], err.msg);
        goto out;
    }
    if (!mp_model_is_onnx(m)) {
        status = usage_error("%s is not ONNX; only a model with a graph can be run", argv[optind]);
        goto out;
    }
    if (mp_dataset_load(dataset_path, &ds, &err) < 0) {
        fprintf(stderr, "modelpress: %s: %s\n", dataset_path, err.msg);
        goto out;
    }
    catch_signals();
    if (isatty(STDERR_FILENO)) {
        opts.progress_cb = bar_cb;
        opts.ud = &bar;
    }
    if (mp_evaluate(m, NULL, ds, &opts, &text, &err) < 0) {
        bar_clear(&bar);
        fprintf(stderr, "modelpress: %s on %s: %s\n", argv[optind], dataset_path, err.msg);
        goto out;
    }
    bar_clear(&bar);
    ev = json_loads(text, 0, NULL);
    if (json) {
        /* one model: its figures at the top, beside what was run on what */
        doc = json_pack("{s:s,s:s}", "model", argv[optind], "dataset", dataset_path);
        if (doc == NULL || json_object_update(doc, json_object_get(ev, "before")) != 0) {
            fprintf(stderr, "modelpress: out of memory\n");
            goto out;
        }
        json_object_del(ev, "before");
        json_object_update(doc, ev);
        free(text);
        text = json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(6));
        printf("%s\n", text != NULL ? text : "{}");
    } else {
        fprintf(stderr, "modelpress: %s on %s\n", argv[optind], dataset_path);
        print_evaluation(ev);
    }
    status = fflush(stdout) == 0 ? EXIT_OK : EXIT_FAILED;
out:
    json_decref(doc);
    json_decref(ev);
    free(text);
    mp_dataset_free(ds);
    mp_model_free(m);
    return status;
}

static int cmd_compress(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"recipe", required_argument, NULL, 'r'},  {"output", required_argument, NULL, 'o'},
        {"dataset", required_argument, NULL, 'd'}, {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0}};
    const char *recipe_path = NULL, *out_path = NULL, *dataset_path = NULL;
    mp_dataset_t *ds = NULL;
    mp_eval_spec_t spec = {0};
    mp_errctx_t err = {0};
    mp_model_t *in = NULL, *out = NULL, *onnx_out = NULL;
    mp_recipe_t *recipe = NULL;
    char *recipe_text = NULL, *report = NULL;
    size_t recipe_len = 0;
    bar_t bar = {.last = -1};
    mp_run_opts_t opts = {.cancel = &g_cancel};
    int c, json = 0, rc, status = EXIT_FAILED;

    while ((c = getopt_long(argc, argv, "r:o:d:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'r':
            recipe_path = optarg;
            break;
        case 'o':
            out_path = optarg;
            break;
        case 'j':
            json = 1;
            break;
        case 'd':
            dataset_path = optarg;
            break;
        case 'h':
            fputs(USAGE, stdout);
            return EXIT_OK;
        default:
            return usage_error("%s: bad option", "compress");
        }
    }
    if (optind != argc - 1) {
        return usage_error("%s: give exactly one MODEL", "compress");
    }
    if (recipe_path == NULL || out_path == NULL) {
        return usage_error("%s: needs -r RECIPE.json and -o OUT", "compress");
    }

    if (read_recipe(recipe_path, &recipe_text, &recipe_len) < 0) {
        fprintf(stderr, "modelpress: %s: %s\n", recipe_path, strerror(errno));
        status = EXIT_USAGE;
        goto out;
    }
    if ((rc = mp_recipe_parse(recipe_text, recipe_len, &recipe, &err)) < 0) {
        fprintf(stderr, "modelpress: %s: %s\n", recipe_path, err.msg);
        status = rc == MP_ERECIPE ? EXIT_USAGE : EXIT_FAILED;
        goto out;
    }
    /* the file name may ask for the container; a .safetensors name may not refuse it */
    if ((ends_with(out_path, ".mpz") && mp_recipe_set_output_format(recipe, "mpz", &err) < 0) ||
        (ends_with(out_path, ".safetensors") &&
         mp_recipe_set_output_format(recipe, "safetensors", &err) < 0)) {
        fprintf(stderr, "modelpress: %s: %s; name the output .mpz\n", out_path,
                err.msg + (strncmp(err.msg, "output: ", 8) == 0 ? 8 : 0));
        status = EXIT_USAGE;
        goto out;
    }
    if (mp_model_load(argv[optind], &in, &err) < 0) {
        fprintf(stderr, "modelpress: %s: %s\n", argv[optind], err.msg);
        goto out;
    }
    if ((rc = mp_recipe_check_model(recipe, in, &err)) < 0) {
        fprintf(stderr, "modelpress: %s: %s\n", recipe_path, err.msg);
        status = rc == MP_ERECIPE ? EXIT_USAGE : EXIT_FAILED;
        goto out;
    }
    /* An ONNX model comes back as ONNX (its graph rewritten), unless the recipe asks for the
     * .mpz container or OUT names a .safetensors file (the compressed tensors alone); the
     * rewritten graph is also what --dataset evaluates. Refused now if it cannot be written. */
    const int to_onnx = strcmp(mp_recipe_output_format(recipe), "mpz") != 0 &&
                        mp_model_is_onnx(in) && !ends_with(out_path, ".safetensors");
    if ((to_onnx || (dataset_path != NULL && mp_model_is_onnx(in))) &&
        mp_onnx_check_apply(in, &err) < 0) {
        fprintf(stderr, "modelpress: %s: %s\n", argv[optind], err.msg);
        goto out;
    }
    if ((rc = open_dataset(dataset_path, argv[optind], in, recipe_path, recipe_text, recipe_len,
                           &ds, &spec)) != EXIT_OK) {
        status = rc;
        goto out;
    }
    catch_signals();
    if (isatty(STDERR_FILENO)) {
        opts.progress_cb = bar_cb;
        opts.ud = &bar;
    }
    rc = mp_pipeline_run(in, recipe, &opts, &out, &report, &err);
    bar_clear(&bar);
    if (rc < 0) {
        fprintf(stderr, "modelpress: %s: %s\n", argv[optind], err.msg);
        goto out;
    }
    if (ds != NULL && evaluate_result(in, out, ds, &spec, dataset_path, &report) != EXIT_OK) {
        goto out;
    }
    const char *container = mp_recipe_output_format(recipe);
    if (to_onnx) {
        if (mp_onnx_apply(in, out, &onnx_out, &err) < 0) {
            fprintf(stderr, "modelpress: %s: %s\n", argv[optind], err.msg);
            goto out;
        }
        container = "onnx";
        if (mp_report_set_output_format(&report, container, &err) < 0) {
            fprintf(stderr, "modelpress: %s\n", err.msg);
            goto out;
        }
    }
    if (save_atomic(onnx_out != NULL ? onnx_out : out, out_path, container, &err) < 0) {
        fprintf(stderr, "modelpress: %s\n", err.msg);
        goto out;
    }
    if (json) {
        printf("%s\n", report);
    } else {
        print_summary(argv[optind], out_path, report, container);
        print_evaluation_of(report);
    }
    status = fflush(stdout) == 0 ? EXIT_OK : EXIT_FAILED;
out:
    mp_dataset_free(ds);
    free(report);
    mp_model_free(onnx_out);
    mp_model_free(out);
    mp_model_free(in);
    mp_recipe_free(recipe);
    free(recipe_text);
    return status;
}

/* ---- inspect ------------------------------------------------------------------------------ */

/* The record of a compressed model ("modelpress" metadata) as JSON, new; NULL if absent or
 * not JSON (unpack says what is wrong with it). */
static json_t *record_of(const mp_model_t *m)
{
    const char *text = mp_model_get_meta(m, "modelpress");

    return text != NULL ? json_loads(text, 0, NULL) : NULL;
}

static json_t *inspect_json(const mp_model_t *m, const char *container, json_int_t file_bytes)
{
    json_t *root = json_object(), *tensors = json_array(), *meta = json_object();
    json_t *record = record_of(m);
    json_int_t params = 0, sel_params = 0, n_sel = 0, bytes = 0;
    int bad = root == NULL || tensors == NULL || meta == NULL;

    for (size_t i = 0; i < m->n_tensors && !bad; i++) {
        const mp_tensor_t *t = &m->tensors[i];
        const int sel = mp_recipe_selects(NULL, t);
        json_t *e = json_object(), *shape = json_array();
        for (int d = 0; d < t->n_dims; d++) {
            bad |= json_array_append_new(shape, json_integer(t->shape[d]));
        }
        bad |= json_object_set_new(e, "name", json_string(t->name));
        bad |= json_object_set_new(e, "dtype", json_string(mp_dtype_name(t->dtype)));
        bad |= json_object_set_new(e, "shape", shape);
        bad |= json_object_set_new(e, "elements", json_integer(mp_tensor_elements(t)));
        bad |= json_object_set_new(e, "bytes", json_integer((json_int_t)t->n_bytes));
        bad |= json_object_set_new(e, "selected", json_boolean(sel));
        bad |= json_array_append_new(tensors, e);
        params += mp_tensor_elements(t);
        bytes += (json_int_t)t->n_bytes;
        sel_params += sel ? mp_tensor_elements(t) : 0;
        n_sel += sel;
    }
    for (size_t i = 0; i < m->n_meta && !bad; i++) {
        bad |= json_object_set_new(meta, m->meta_keys[i], json_string(m->meta_values[i]));
    }
    bad |= json_object_set_new(root, "n_tensors", json_integer((json_int_t)m->n_tensors));
    bad |= json_object_set_new(root, "parameters", json_integer(params));
    bad |= json_object_set_new(root, "bytes", json_integer(bytes));
    bad |= json_object_set_new(root, "n_selected", json_integer(n_sel));
    bad |= json_object_set_new(root, "selected_parameters", json_integer(sel_params));
    bad |= json_object_set_new(root, "compressed_by_modelpress",
                               json_boolean(mp_model_get_meta(m, "modelpress") != NULL));
    bad |= json_object_set_new(root, "container", json_string(container));
    bad |= json_object_set_new(root, "file_bytes", json_integer(file_bytes));
    if (json_is_object(json_object_get(record, "tensors"))) {
        /* what was done to each compressed tensor: shape, code, factorization, sparsity */
        bad |= json_object_set(root, "compressed", json_object_get(record, "tensors"));
    }
    json_decref(record);
    bad |= json_object_set(root, "tensors", tensors);
    bad |= json_object_set(root, "metadata", meta);
    json_decref(tensors);
    json_decref(meta);
    if (bad) {
        json_decref(root);
        return NULL;
    }
    return root;
}

static void print_inspect(const char *path, const json_t *info)
{
    json_t *t;
    size_t i;
    char bytes[32], shape[64];

    fprintf(stderr, "%s: %" JSON_INTEGER_FORMAT " tensors\n", path,
            json_integer_value(json_object_get(info, "n_tensors")));
    fprintf(stderr, "  %-40s %-5s %-16s %12s %10s  %s\n", "tensor", "dtype", "shape", "parameters",
            "bytes", "default selection");
    json_array_foreach(json_object_get(info, "tensors"), i, t)
    {
        shape_text(json_object_get(t, "shape"), shape, sizeof shape);
        human_bytes(json_number_value(json_object_get(t, "bytes")), bytes, sizeof bytes);
        fprintf(stderr, "  %-40s %-5s %-16s %12" JSON_INTEGER_FORMAT " %10s  %s\n",
                json_string_value(json_object_get(t, "name")),
                json_string_value(json_object_get(t, "dtype")), shape,
                json_integer_value(json_object_get(t, "elements")), bytes,
                json_is_true(json_object_get(t, "selected")) ? "compress" : "keep");
    }
    human_bytes(json_number_value(json_object_get(info, "bytes")), bytes, sizeof bytes);
    if (!json_is_true(json_object_get(info, "compressed_by_modelpress"))) {
        fprintf(stderr,
                "  total: %" JSON_INTEGER_FORMAT " parameters, %s; the default selection "
                "compresses %" JSON_INTEGER_FORMAT " tensors (%" JSON_INTEGER_FORMAT
                " parameters)\n",
                json_integer_value(json_object_get(info, "parameters")), bytes,
                json_integer_value(json_object_get(info, "n_selected")),
                json_integer_value(json_object_get(info, "selected_parameters")));
    } else {
        const char *name;
        json_t *e;
        fprintf(stderr, "  total: %" JSON_INTEGER_FORMAT " stored values, %s\n",
                json_integer_value(json_object_get(info, "parameters")), bytes);
        human_bytes(json_number_value(json_object_get(info, "file_bytes")), bytes, sizeof bytes);
        fprintf(stderr,
                "  compressed by modelpress (%s, %s): `modelpress unpack` restores F32 "
                "tensors\n",
                json_string_value(json_object_get(info, "container")), bytes);
        fprintf(stderr, "  %-40s %-16s %-32s %8s\n", "compressed tensor", "shape", "stored as",
                "sparsity");
        json_object_foreach(json_object_get(info, "compressed"), name, e)
        {
            char code[96];
            shape_text(json_object_get(e, "shape"), shape, sizeof shape);
            code_text(json_object_get(e, "code"), json_object_get(e, "lowrank"), code, sizeof code);
            fprintf(stderr, "  %-40s %-16s %-32s %7.1f%%\n", name, shape, code,
                    100.0 * json_number_value(json_object_get(e, "sparsity")));
        }
    }
}

static json_int_t file_size(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 ? (json_int_t)st.st_size : -1;
}

/* "mpz", "onnx" or "safetensors": what mp_model_load found in path (the .mpz magic is
 * docs/mpz.md's). */
static const char *container_of(const char *path, const mp_model_t *m)
{
    static const unsigned char MPZ_MAGIC[8] = {0x89, 'M', 'P', 'Z', '\r', '\n', 0x1a, '\n'};
    unsigned char head[8];
    FILE *f;
    size_t n = 0;

    if (mp_model_is_onnx(m)) {
        return "onnx";
    }
    if ((f = fopen(path, "rb")) != NULL) {
        n = fread(head, 1, sizeof head, f);
        fclose(f);
    }
    return n == sizeof head && memcmp(head, MPZ_MAGIC, sizeof head) == 0 ? "mpz" : "safetensors";
}

/* The human view of mp_onnx_describe's document (inspect on an ONNX model), on stderr. */
static void print_onnx(const json_t *g)
{
    const char *key;
    json_t *v;
    size_t i;
    if (g == NULL) {
        return;
    }
    fprintf(stderr, "  ONNX IR %lld, opset %lld, %lld nodes, %lld parameters\n  operators:",
            (long long)json_integer_value(json_object_get(g, "ir_version")),
            (long long)json_integer_value(json_object_get(g, "opset")),
            (long long)json_integer_value(json_object_get(g, "nodes")),
            (long long)json_integer_value(json_object_get(g, "parameters")));
    json_object_foreach(json_object_get(g, "operators"), key, v)
    {
        fprintf(stderr, " %s x%lld", key, (long long)json_integer_value(v));
    }
    fprintf(stderr, "\n  %-40s %10s  %-28s %s\n", "weight", "params", "used by", "compressed");
    json_array_foreach(json_object_get(g, "weights"), i, v)
    {
        char used[64] = "";
        size_t j, n = 0;
        json_t *c;
        json_array_foreach(json_object_get(v, "consumers"), j, c)
        {
            const char *op = json_string_value(json_object_get(c, "op"));
            n += (size_t)snprintf(used + n, n < sizeof used ? sizeof used - n : 0, "%s%s",
                                  j ? "," : "", op != NULL ? op : "?");
        }
        fprintf(stderr, "  %-40s %10lld  %-28.28s %s\n",
                json_string_value(json_object_get(v, "name")),
                (long long)json_integer_value(json_object_get(v, "elements")), used,
                json_is_true(json_object_get(v, "selected")) ? "yes" : "no");
    }
}

static int cmd_inspect(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    mp_errctx_t err = {0};
    mp_model_t *m = NULL;
    json_t *info = NULL;
    char *text = NULL;
    int c, json = 0, status = EXIT_FAILED;

    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'j':
            json = 1;
            break;
        case 'h':
            fputs(USAGE, stdout);
            return EXIT_OK;
        default:
            return usage_error("%s: bad option", "inspect");
        }
    }
    if (optind != argc - 1) {
        return usage_error("%s: give exactly one MODEL", "inspect");
    }
    if (mp_model_load(argv[optind], &m, &err) < 0) {
        fprintf(stderr, "modelpress: %s: %s\n", argv[optind], err.msg);
        goto out;
    }
    info = inspect_json(m, container_of(argv[optind], m), file_size(argv[optind]));
    if (info == NULL) {
        fprintf(stderr, "modelpress: %s: out of memory, or a name that is not UTF-8\n",
                argv[optind]);
        goto out;
    }
    if (mp_model_is_onnx(m)) {
        /* Operators, parameters per weight, its consumers, and what the default recipe takes. */
        char *graph = NULL;
        json_t *g = NULL;
        if (mp_onnx_describe(m, NULL, &graph, &err) < 0 ||
            (g = json_loads(graph, 0, NULL)) == NULL) {
            fprintf(stderr, "modelpress: %s: %s\n", argv[optind],
                    err.msg[0] ? err.msg : "cannot describe the graph");
            free(graph);
            goto out;
        }
        free(graph);
        json_object_set_new(info, "onnx", g);
    }
    if (json) {
        text = json_dumps(info, JSON_COMPACT);
        if (text == NULL) {
            fprintf(stderr, "modelpress: out of memory\n");
            goto out;
        }
        printf("%s\n", text);
    } else {
        print_inspect(argv[optind], info);
        print_onnx(json_object_get(info, "onnx"));
    }
    status = fflush(stdout) == 0 ? EXIT_OK : EXIT_FAILED;
out:
    free(text);
    json_decref(info);
    mp_model_free(m);
    return status;
}

/* ---- unpack ------------------------------------------------------------------------------- */

static int cmd_unpack(int argc, char **argv)
{
    static const struct option longopts[] = {{"output", required_argument, NULL, 'o'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    const char *out_path = NULL;
    mp_errctx_t err = {0};
    mp_model_t *in = NULL, *out = NULL;
    int c, status = EXIT_FAILED;

    while ((c = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'o':
            out_path = optarg;
            break;
        case 'h':
            fputs(USAGE, stdout);
            return EXIT_OK;
        default:
            return usage_error("%s: bad option", "unpack");
        }
    }
    if (optind != argc - 1 || out_path == NULL) {
        return usage_error("%s: give one IN and -o OUT.safetensors", "unpack");
    }
    if (ends_with(out_path, ".onnx")) {
        return usage_error("%s: ONNX output is not available in this version", out_path);
    }
    if (mp_model_load(argv[optind], &in, &err) < 0 || mp_model_unpack(in, &out, &err) < 0) {
        fprintf(stderr, "modelpress: %s: %s\n", argv[optind], err.msg);
        goto out;
    }
    catch_signals();
    if (save_atomic(out, out_path, "safetensors", &err) < 0) {
        fprintf(stderr, "modelpress: %s\n", err.msg);
        goto out;
    }
    fprintf(stderr, "modelpress: %s: %zu tensors restored to %s\n", argv[optind], out->n_tensors,
            out_path);
    status = EXIT_OK;
out:
    mp_model_free(out);
    mp_model_free(in);
    return status;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(USAGE, stderr);
        return EXIT_USAGE;
    }
    /* each command parses its own options from its name on */
    if (strcmp(argv[1], "compress") == 0) {
        return cmd_compress(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "inspect") == 0) {
        return cmd_inspect(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "unpack") == 0) {
        return cmd_unpack(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "eval") == 0) {
        return cmd_eval(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(USAGE, stdout);
        return EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("modelpress %s\n", MP_VERSION_STRING);
        return EXIT_OK;
    }
    return usage_error("unknown command '%s'", argv[1]);
}
