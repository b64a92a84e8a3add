/* fuzz_onnx.c — libFuzzer target: the ONNX reader (mp_onnx_parse) on hostile protobuf.
 *
 * A model that is read must hold consistent tensors (byte count from the shape, names found by
 * lookup, every byte readable), describe itself as JSON, and encode back to exactly the bytes
 * it was read from (the writer is byte-exact for a graph nothing changed), which then read
 * again to as many tensors. Built with clang by tests/fuzz/run.sh; replayed over the committed
 * corpus by make check (tests/fuzz/replay.c).
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mp_model_t *m = NULL, *again = NULL;
    mp_errctx_t err;
    uint8_t *enc = NULL;
    size_t n_enc = 0;
    char *desc = NULL;

    err.msg[0] = '\0';
    if (mp_onnx_parse(data, size, &m, &err) != 0) {
        if (m != NULL || err.msg[0] == '\0') {
            abort(); /* every refusal says why */
        }
        return 0;
    }
    fuzz_model_check(m);
    if (mp_onnx_describe(m, NULL, &desc, &err) == 0) {
        json_t *j = json_loads(desc, 0, NULL);
        if (!json_is_object(j)) {
            abort();
        }
        json_decref(j);
    } else if (err.msg[0] == '\0') {
        abort();
    }
    if (mp_onnx_encode(m, &enc, &n_enc, &err) != 0 || n_enc != size ||
        memcmp(enc, data, size) != 0) {
        abort(); /* what was read is written back byte for byte */
    }
    if (mp_onnx_parse(enc, n_enc, &again, &err) != 0 || again->n_tensors != m->n_tensors) {
        abort();
    }
    mp_model_free(again);
    free(enc);
    free(desc);
    mp_model_free(m);
    return 0;
}
