/* conformance_run.c — runs ONNX's own node and PyTorch conformance cases through the runtime.
 *
 *   conformance_run ROOT...   (e.g. /usr/share/libonnx-testdata/data/node)
 *
 * Each case folder holds model.onnx and test_data_set_N/{input,output}_K.pb (serialized
 * TensorProtos, decoded here with the runtime's TensorProto reader over pb.c). A case whose
 * graph uses an operator the runtime does not claim is SKIPPED (not claimed). A case of claimed
 * operators is PASSED when, for every data set, a session built for the inputs' shapes computes
 * every output within |got - want| <= ATOL + RTOL * |want| (NaN matching NaN, integers exactly).
 * Integer inputs (shapes, pads, axes, indices: INT64/INT32) are given to the session as constants
 * of the data set, as a model holds them in initializers, because the runtime fixes every shape
 * when the session is made; float inputs are fed at run time, unless one of them sets a shape
 * too (Resize's scales), when every input becomes a constant and the graph runs as the session
 * is made (constant folding, through the same operator code);
 * it is SKIPPED when the reader or the runtime refuses it as unsupported (an attribute value, a
 * type), with the reason, and FAILED for anything else: a wrong value, a wrong shape, another
 * error. One line per case, then the skip reasons grouped, the claimed operators, and the totals
 * as "N passed, M failed" and "K skipped". Exit 0 when nothing failed, 1 otherwise.
 */
#include "runtime/rt_int.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define RTOL 1e-3
#define ATOL 1e-5
#define MAX_IO 16

static int n_pass, n_fail, n_skip;

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted entries of dir whose names start with prefix (malloc'd array of malloc'd names). */
static int list_dir(const char *dir, const char *prefix, char ***out)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char **v = NULL;
    int n = 0;

    *out = NULL;
    if (d == NULL) {
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0 && e->d_name[0] != '.') {
            char **nv = realloc(v, (size_t)(n + 1) * sizeof *v);
            if (nv == NULL) {
                break;
            }
            v = nv;
            v[n++] = strdup(e->d_name);
        }
    }
    closedir(d);
    if (n > 1) {
        qsort(v, (size_t)n, sizeof *v, cmp_str);
    }
    *out = v;
    return n;
}

static void free_list(char **v, int n)
{
    for (int i = 0; i < n; i++) {
        free(v[i]);
    }
    free(v);
}

static int read_pb(const char *path, rt_tensor_t *t, mp_errctx_t *err)
{
    void *map = NULL;
    size_t n = 0;
    int rc = mp__map_file(path, &map, &n, err);

    if (rc < 0) {
        return rc;
    }
    rc = mp__rt_tensor_parse(map ? map : "", n, t, err);
    if (map != NULL) {
        munmap(map, n);
    }
    return rc;
}

/* The first op type of the main graph the runtime does not claim, or NULL. */
static const char *unclaimed_op(const mp_model_t *m, char *buf, size_t cap)
{
    const mp__onnx_t *c = mp__onnx_ctx(m);

    for (size_t i = 0; i < c->graph->n; i++) {
        const mp__pb_field_t *f = &c->graph->f[i], *op, *dom;
        int claimed = 0;
        if (f->num != ONNX_GRAPH_NODE || f->sub == NULL) {
            continue;
        }
        op = mp__pb_find(f->sub, ONNX_NODE_OP_TYPE);
        dom = mp__pb_find(f->sub, ONNX_NODE_DOMAIN);
        snprintf(buf, cap, "%.*s", op ? (int)op->len : 0, op ? (const char *)op->data : "");
        for (int k = 0; mp__rt_claimed[k] != NULL && !(dom && dom->len); k++) {
            claimed |= strcmp(mp__rt_claimed[k], buf) == 0;
        }
        if (!claimed) {
            return buf;
        }
    }
    return NULL;
}

/* 1 when every graph input and output is a tensor (not a sequence or an optional). */
static int io_are_tensors(const mp_model_t *m)
{
    const mp__onnx_t *c = mp__onnx_ctx(m);
    int ok = 1;

    for (size_t i = 0; i < c->graph->n && ok; i++) {
        const mp__pb_field_t *f = &c->graph->f[i];
        mp__pb_msg_t *vi = NULL, *tp = NULL;
        const mp__pb_field_t *tf;
        if (f->num != ONNX_GRAPH_INPUT && f->num != ONNX_GRAPH_OUTPUT) {
            continue;
        }
        if (mp__pb_parse(f->data, f->len, 0, 0, &vi, NULL) == 0 &&
            (tf = mp__pb_find(vi, ONNX_VI_TYPE)) != NULL &&
            mp__pb_parse(tf->data, tf->len, 0, 0, &tp, NULL) == 0) {
            ok = mp__pb_find(tp, ONNX_TYPE_TENSOR) != NULL;
        }
        mp__pb_msg_free(tp);
        mp__pb_msg_free(vi);
    }
    return ok;
}

/* Compare one output; returns 0 or -1 with the reason in why. */
static int compare(const rt_tensor_t *want, mp_dtype_t gdt, const float *got,
                   const int64_t *gdims, int grank, char *why, size_t cap)
{
    /* bfloat16 values are stored as UINT16 in ONNX's test data: read them as the model's type */
    const mp_dtype_t wdt =
        mp_dtype_size(gdt) == mp_dtype_size(want->dt) && gdt != want->dt ? gdt : want->dt;
    float *w;

    if (grank != want->rank || memcmp(gdims, want->dims, (size_t)grank * sizeof *gdims) != 0) {
        snprintf(why, cap, "output '%s': shape differs (rank %d vs %d, %lld vs %lld elements)",
                 want->name, grank, want->rank, (long long)rt_prod(gdims, 0, grank),
                 (long long)want->n);
        return -1;
    }
    w = malloc((size_t)want->n * sizeof *w + 1);
    if (w == NULL || mp__rt_convert(MP_DT_F32, w, wdt, want->data, want->n) < 0) {
        free(w);
        snprintf(why, cap, "output '%s': cannot read the expected values", want->name);
        return -1;
    }
    for (int64_t i = 0; i < want->n; i++) {
        const double a = got[i], b = w[i];
        const int ok = (a != a && b != b) || a == b || fabs(a - b) <= ATOL + RTOL * fabs(b);
        if (!ok) {
            snprintf(why, cap, "output '%s'[%lld]: %.9g, expected %.9g", want->name,
                     (long long)i, a, b);
            free(w);
            return -1;
        }
    }
    free(w);
    return 0;
}

/* One data set: build a session for its input shapes, run, compare. 1 pass, 0 skip, -1 fail. */
static int run_set(const mp_model_t *m, const char *dir, char *why, size_t cap)
{
    char **ins = NULL, **outs = NULL, path[3000];
    int n_in = list_dir(dir, "input_", &ins), n_out = list_dir(dir, "output_", &outs);
    rt_tensor_t tin[MAX_IO], tout[MAX_IO];
    float *fin[MAX_IO] = {0}, *fout[MAX_IO] = {0};
    const int64_t *dims[MAX_IO];
    const void *values[MAX_IO];
    int ranks[MAX_IO], result = -1, rc;
    mp_session_t *s = NULL;
    mp_errctx_t err = {0};

    memset(tin, 0, sizeof tin);
    memset(tout, 0, sizeof tout);
    if (n_in < 0 || n_out <= 0 || n_in > MAX_IO || n_out > MAX_IO) {
        snprintf(why, cap, "%.600s: cannot list its inputs and outputs", dir);
        goto out;
    }
    for (int i = 0; i < n_in + n_out; i++) {
        const int is_in = i < n_in;
        rt_tensor_t *t = is_in ? &tin[i] : &tout[i - n_in];
        snprintf(path, sizeof path, "%s/%s", dir, is_in ? ins[i] : outs[i - n_in]);
        if ((rc = read_pb(path, t, &err)) < 0) {
            snprintf(why, cap, "%.200s: %.400s", path, err.msg);
            result = rc == MP_EUNSUPPORTED ? 0 : -1;
            goto out;
        }
    }
    for (int i = 0; i < n_in; i++) {
        ranks[i] = tin[i].rank;
        dims[i] = tin[i].dims;
        values[i] = tin[i].dt == MP_DT_I64 || tin[i].dt == MP_DT_I32 ? tin[i].data : NULL;
    }
    rc = mp__rt_session_new(m, 0, (size_t)n_in, ranks, dims, values, &s, &err);
    if (rc == MP_EUNSUPPORTED && strstr(err.msg, "must be known before the run") != NULL) {
        /* a float input sets a shape (Resize's scales) or a constant (Pad's value): give every
         * input as a constant; the nodes then run while the session is made, through the same
         * code */
        for (int i = 0; i < n_in; i++) {
            values[i] = tin[i].data;
        }
        rc = mp__rt_session_new(m, 0, (size_t)n_in, ranks, dims, values, &s, &err);
    }
    if (rc < 0) {
        snprintf(why, cap, "%s: %.500s", mp_err_name(rc), err.msg);
        result = rc == MP_EUNSUPPORTED ? 0 : -1;
        goto out;
    }
    for (int i = 0; i < n_in; i++) {
        const mp_dtype_t sdt = (mp_dtype_t)mp_session_input_dtype(s, (size_t)i);
        const mp_dtype_t dt =
            mp_dtype_size(sdt) == mp_dtype_size(tin[i].dt) && sdt != tin[i].dt ? sdt : tin[i].dt;
        fin[i] = malloc((size_t)tin[i].n * sizeof(float) + 1);
        if (fin[i] == NULL || mp__rt_convert(MP_DT_F32, fin[i], dt, tin[i].data, tin[i].n) < 0) {
            snprintf(why, cap, "input %d: cannot convert", i);
            goto out;
        }
    }
    if ((int)mp_session_n_outputs(s) != n_out) {
        snprintf(why, cap, "%zu outputs, %d expected", mp_session_n_outputs(s), n_out);
        goto out;
    }
    for (int o = 0; o < n_out; o++) {
        fout[o] = malloc((size_t)mp_session_output_elements(s, (size_t)o) * sizeof(float) + 1);
        if (fout[o] == NULL) {
            goto out;
        }
    }
    if ((rc = mp_session_run(s, (const float *const *)fin, fout, &err)) < 0) {
        snprintf(why, cap, "run: %s: %.500s", mp_err_name(rc), err.msg);
        goto out;
    }
    result = 1;
    for (int o = 0; o < n_out && result == 1; o++) {
        int64_t gd[MP_MAX_DIMS];
        const int gr = mp_session_output_shape(s, (size_t)o, gd);
        if (compare(&tout[o], s->vals[s->outputs[o]].dt, fout[o], gd, gr, why, cap) < 0) {
            result = -1;
        }
    }
out:
    mp_session_free(s);
    for (int i = 0; i < MAX_IO; i++) {
        mp__rt_tensor_cleanup(&tin[i]);
        mp__rt_tensor_cleanup(&tout[i]);
        free(fin[i]);
        free(fout[i]);
    }
    free_list(ins, n_in);
    free_list(outs, n_out);
    return result;
}

static void run_case(const char *root, const char *name)
{
    char dir[2048], path[2100], why[700] = "", opbuf[64], **sets = NULL;
    mp_model_t *m = NULL;
    mp_errctx_t err = {0};
    int n_sets, result = 1, rc;
    const char *op;

    snprintf(dir, sizeof dir, "%s/%s", root, name);
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    rc = mp_onnx_load(path, &m, &err);
    if (rc < 0) {
        printf("SKIP %s: the ONNX reader refuses the model: %s\n", name, err.msg);
        n_skip++;
        return;
    }
    if ((op = unclaimed_op(m, opbuf, sizeof opbuf)) != NULL) {
        printf("SKIP %s: operator %s is not claimed\n", name, op);
        n_skip++;
        mp_model_free(m);
        return;
    }
    if (!io_are_tensors(m)) {
        printf("SKIP %s: an input or output is a sequence or an optional, not a tensor\n", name);
        n_skip++;
        mp_model_free(m);
        return;
    }
    n_sets = list_dir(dir, "test_data_set_", &sets);
    for (int i = 0; i < n_sets && result == 1; i++) {
        char sd[2400];
        snprintf(sd, sizeof sd, "%s/%s", dir, sets[i]);
        result = run_set(m, sd, why, sizeof why);
    }
    if (n_sets <= 0) {
        result = -1;
        snprintf(why, sizeof why, "no test_data_set_* folder");
    }
    if (result == 1) {
        printf("PASS %s\n", name);
        n_pass++;
    } else if (result == 0) {
        printf("SKIP %s: %s\n", name, why);
        n_skip++;
    } else {
        printf("FAIL %s: %s\n", name, why);
        n_fail++;
    }
    free_list(sets, n_sets);
    mp_model_free(m);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s ROOT...\n", argv[0]);
        return 2;
    }
    for (int a = 1; a < argc; a++) {
        char **cases = NULL;
        const int n = list_dir(argv[a], "test_", &cases);
        if (n < 0) {
            fprintf(stderr, "%s: cannot read the folder\n", argv[a]);
            return 2;
        }
        for (int i = 0; i < n; i++) {
            run_case(argv[a], cases[i]);
        }
        free_list(cases, n);
    }
    printf("claimed operators:");
    for (int k = 0; mp__rt_claimed[k] != NULL; k++) {
        printf(" %s", mp__rt_claimed[k]);
    }
    printf("\n%d skipped\n%d passed, %d failed\n", n_skip, n_pass, n_fail);
    return n_fail > 0;
}
