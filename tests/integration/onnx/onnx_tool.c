/* onnx_tool.c — the ONNX reader, writer and rewrites driven from scripts (test_onnx_ort.sh).
 *
 *   onnx_tool roundtrip IN OUT         read IN, write it back to OUT unmodified
 *   onnx_tool reencode IN              exit 0 when re-encoding every message gives IN's bytes
 *   onnx_tool describe IN [RECIPE]     the mp_onnx_describe JSON on stdout
 *   onnx_tool compress IN RECIPE OUT [UNPACKED]
 *                                      run the recipe (JSON text) and write the ONNX result;
 *                                      the pipeline's report on stdout; with UNPACKED, also the
 *                                      F32 weights mp_model_unpack restores, as safetensors
 * Errors go to stderr with the core's message; exit 1 on failure, 2 on bad usage.
 */
#include "onnx_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *what, int rc, const mp_errctx_t *err)
{
    fprintf(stderr, "onnx_tool: %s: %s (%s)\n", what, err->msg[0] ? err->msg : mp_strerror(rc),
            mp_err_name(rc));
    return 1;
}

static int reencode(const mp_model_t *m, const char *path)
{
    const mp__onnx_t *c = mp__onnx_ctx(m);
    mp_errctx_t err = {0};
    uint8_t *buf = NULL;
    size_t n = 0;
    int rc, same;

    rc = mp__pb_encode(c->root, 1, &buf, &n, &err);
    if (rc < 0) {
        return fail(path, rc, &err);
    }
    same = n == m->map_bytes && memcmp(buf, m->map, n) == 0;
    printf("%s: re-encoded %zu bytes, input %zu bytes, %s\n", path, n, m->map_bytes,
           same ? "identical" : "different");
    free(buf);
    return same ? 0 : 1;
}

int main(int argc, char **argv)
{
    mp_errctx_t err = {0};
    mp_model_t *in = NULL, *comp = NULL, *out = NULL, *plain = NULL;
    mp_recipe_t *r = NULL;
    char *report = NULL;
    int rc = 0, status = 0;

    if (argc < 3) {
        fputs("usage: onnx_tool roundtrip|reencode|describe|compress IN [ARGS]\n", stderr);
        return 2;
    }
    if ((rc = mp_onnx_load(argv[2], &in, &err)) < 0) {
        return fail(argv[2], rc, &err);
    }
    if (strcmp(argv[1], "roundtrip") == 0 && argc == 4) {
        rc = mp_onnx_save(in, argv[3], &err);
    } else if (strcmp(argv[1], "reencode") == 0) {
        status = reencode(in, argv[2]);
    } else if (strcmp(argv[1], "describe") == 0) {
        if (argc == 4) {
            rc = mp_recipe_parse(argv[3], strlen(argv[3]), &r, &err);
        }
        if (rc == 0 && (rc = mp_onnx_describe(in, r, &report, &err)) == 0) {
            puts(report);
        }
    } else if (strcmp(argv[1], "compress") == 0 && (argc == 5 || argc == 6)) {
        rc = mp_recipe_parse(argv[3], strlen(argv[3]), &r, &err);
        if (rc == 0) {
            rc = mp_pipeline_run(in, r, NULL, &comp, &report, &err);
        }
        if (rc == 0) {
            rc = mp_onnx_apply(in, comp, &out, &err);
        }
        if (rc == 0) {
            rc = mp_onnx_save(out, argv[4], &err);
        }
        if (rc == 0 && argc == 6) {
            rc = mp_model_unpack(comp, &plain, &err);
            if (rc == 0) {
                rc = mp_safetensors_save(plain, argv[5], &err);
            }
        }
        if (rc == 0) {
            puts(report);
        }
    } else {
        fputs("onnx_tool: bad usage\n", stderr);
        status = 2;
    }
    if (rc < 0) {
        status = fail(argv[1], rc, &err);
    }
    free(report);
    mp_model_free(plain);
    mp_model_free(out);
    mp_model_free(comp);
    mp_recipe_free(r);
    mp_model_free(in);
    return status;
}
