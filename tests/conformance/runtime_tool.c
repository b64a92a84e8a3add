/* runtime_tool.c — runs an ONNX model through the evaluation runtime the way ort_run.js runs it
 * through onnxruntime-node, so the two outputs can be compared byte for byte of float32.
 *
 *   runtime_tool run MODEL MANIFEST.json OUT.bin    every run of the manifest, outputs appended
 *   runtime_tool time MODEL MANIFEST.json N         median wall time of N runs of the first feed
 *
 * MANIFEST is tests/integration/onnx's format: {"data": FILE, "runs": [{"feeds": {NAME: {"type":
 * "float32"|"int64", "dims": [...], "offset": BYTES}}}], "carry": {OUTPUT: INPUT}}. One session
 * is made from the first run's shapes; "carry" feeds an output of one run to an input of the
 * next. Every output of every run is appended to OUT.bin as float32, in the session's output
 * order. Exit 1 with the runtime's message when the model is refused or a run fails.
 */
#include "runtime/rt_int.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define MAX_IO 16

typedef struct feed {
    int rank;
    int64_t dims[MP_MAX_DIMS];
    int64_t n;
    float *data;                 /* converted to float, malloc'd */
} feed_t;

static int read_feed(json_t *f, const uint8_t *data, size_t n_data, feed_t *out)
{
    const char *type = json_string_value(json_object_get(f, "type"));
    json_t *dims = json_object_get(f, "dims");
    const json_int_t off = json_integer_value(json_object_get(f, "offset"));
    const int i64 = type && strcmp(type, "int64") == 0;
    size_t es = i64 ? 8 : 4, i;
    json_t *d;

    memset(out, 0, sizeof *out);
    out->n = 1;
    json_array_foreach(dims, i, d)
    {
        if (out->rank >= MP_MAX_DIMS) {
            return -1;
        }
        out->dims[out->rank++] = json_integer_value(d);
        out->n *= json_integer_value(d);
    }
    if (off < 0 || (size_t)off + (size_t)out->n * es > n_data) {
        return -1;
    }
    out->data = malloc((size_t)out->n * sizeof(float) + 1);
    if (out->data == NULL) {
        return -1;
    }
    return mp__rt_convert(MP_DT_F32, out->data, i64 ? MP_DT_I64 : MP_DT_F32, data + off, out->n);
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    mp_model_t *m = NULL;
    mp_session_t *s = NULL;
    mp_errctx_t err = {0};
    json_t *man = NULL, *runs, *carry;
    json_error_t jerr;
    void *map = NULL;
    size_t n_map = 0;
    feed_t feeds[MAX_IO];
    float *outs[MAX_IO] = {0};
    const float *ins[MAX_IO];
    int ranks[MAX_IO], status = 1, timing;
    const int64_t *dims[MAX_IO];
    char path[4096];
    FILE *fp = NULL;

    memset(feeds, 0, sizeof feeds);
    if (argc != 5 || (strcmp(argv[1], "run") && strcmp(argv[1], "time"))) {
        fprintf(stderr, "usage: %s run MODEL MANIFEST OUT.bin | time MODEL MANIFEST N\n", argv[0]);
        return 2;
    }
    timing = argv[1][0] == 't';
    if (mp_onnx_load(argv[2], &m, &err) < 0 ||
        (man = json_load_file(argv[3], 0, &jerr)) == NULL) {
        fprintf(stderr, "runtime_tool: %s\n", man == NULL && m ? jerr.text : err.msg);
        goto out;
    }
    {
        const char *dir_end = strrchr(argv[3], '/');
        snprintf(path, sizeof path, "%.*s%s", dir_end ? (int)(dir_end - argv[3] + 1) : 0,
                 argv[3], json_string_value(json_object_get(man, "data")));
    }
    if (mp__map_file(path, &map, &n_map, &err) < 0) {
        fprintf(stderr, "runtime_tool: %s\n", err.msg);
        goto out;
    }
    runs = json_object_get(man, "runs");
    carry = json_object_get(man, "carry");
    for (size_t r = 0; r < json_array_size(runs); r++) {
        json_t *fd = json_object_get(json_array_get(runs, r), "feeds");
        const char *name;
        json_t *f;
        json_object_foreach(fd, name, f)
        {
            int k = -1;
            for (size_t i = 0; s != NULL && i < mp_session_n_inputs(s); i++) {
                k = strcmp(mp_session_input_name(s, i), name) == 0 ? (int)i : k;
            }
            if (k < 0 && s != NULL) {
                fprintf(stderr, "runtime_tool: feed '%s' is no input of the model\n", name);
                goto out;
            }
            if (k >= 0) {
                free(feeds[k].data);
                if (read_feed(f, map, n_map, &feeds[k]) < 0) {
                    fprintf(stderr, "runtime_tool: feed '%s' is malformed\n", name);
                    goto out;
                }
            }
        }
        if (s == NULL) {
            /* the session is made from the first run's shapes, its feeds taken in the order of
             * the graph's inputs (read from a graph built alone) */
            rt_sess_t *g = calloc(1, sizeof *g);
            size_t n_in = 0;
            if (g == NULL) {
                goto out;
            }
            g->model = m;
            if (mp__rt_graph_build(g, &err) < 0 || g->n_inputs > MAX_IO) {
                fprintf(stderr, "runtime_tool: %s\n", err.msg);
                mp_session_free(g);
                goto out;
            }
            n_in = g->n_inputs;
            for (size_t i = 0; i < n_in; i++) {
                json_t *fi = json_object_get(fd, g->vals[g->inputs[i]].name);
                if (fi == NULL || read_feed(fi, map, n_map, &feeds[i]) < 0) {
                    fprintf(stderr, "runtime_tool: no feed for input '%s'\n",
                            g->vals[g->inputs[i]].name);
                    mp_session_free(g);
                    goto out;
                }
                ranks[i] = feeds[i].rank;
                dims[i] = feeds[i].dims;
            }
            mp_session_free(g);
            if (mp_session_new_shapes(m, n_in, ranks, dims, &s, &err) < 0) {
                fprintf(stderr, "runtime_tool: %s\n", err.msg);
                goto out;
            }
            for (size_t o = 0; o < mp_session_n_outputs(s); o++) {
                outs[o] = malloc((size_t)mp_session_output_elements(s, o) * sizeof(float) + 1);
                if (outs[o] == NULL) {
                    goto out;
                }
            }
            if (!timing && (fp = fopen(argv[4], "wb")) == NULL) {
                perror(argv[4]);
                goto out;
            }
        }
        for (size_t i = 0; i < mp_session_n_inputs(s); i++) {
            ins[i] = feeds[i].data;
        }
        if (timing) {
            const int n = atoi(argv[4]) > 0 ? atoi(argv[4]) : 1;
            double *t = malloc((size_t)n * sizeof *t);
            mp_session_run(s, ins, outs, &err); /* warm up */
            for (int k = 0; t != NULL && k < n; k++) {
                const double t0 = now();
                if (mp_session_run(s, ins, outs, &err) < 0) {
                    fprintf(stderr, "runtime_tool: %s\n", err.msg);
                    free(t);
                    goto out;
                }
                t[k] = now() - t0;
            }
            if (t != NULL) {
                qsort(t, (size_t)n, sizeof *t, cmp_double);
                printf("%.4f\n", 1e3 * t[n / 2]);
            }
            free(t);
            status = 0;
            goto out;
        }
        if (mp_session_run(s, ins, outs, &err) < 0) {
            fprintf(stderr, "runtime_tool: run %zu: %s\n", r, err.msg);
            goto out;
        }
        for (size_t o = 0; o < mp_session_n_outputs(s); o++) {
            const size_t n = (size_t)mp_session_output_elements(s, o);
            if (fwrite(outs[o], sizeof(float), n, fp) != n) {
                perror(argv[4]);
                goto out;
            }
        }
        /* carried outputs become the next run's inputs */
        const char *oname;
        json_t *iname;
        json_object_foreach(carry, oname, iname)
        {
            for (size_t o = 0; o < mp_session_n_outputs(s); o++) {
                for (size_t i = 0; i < mp_session_n_inputs(s); i++) {
                    if (strcmp(mp_session_output_name(s, o), oname) == 0 &&
                        strcmp(mp_session_input_name(s, i), json_string_value(iname)) == 0) {
                        memcpy(feeds[i].data, outs[o],
                               (size_t)mp_session_output_elements(s, o) * sizeof(float));
                    }
                }
            }
        }
    }
    status = 0;
out:
    if (fp != NULL && fclose(fp) != 0) {
        status = 1;
    }
    for (int i = 0; i < MAX_IO; i++) {
        free(feeds[i].data);
        free(outs[i]);
    }
    if (map != NULL) {
        munmap(map, n_map);
    }
    json_decref(man);
    mp_session_free(s);
    mp_model_free(m);
    return status;
}
