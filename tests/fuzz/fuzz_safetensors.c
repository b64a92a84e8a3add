/* fuzz_safetensors.c — libFuzzer target: the safetensors reader on hostile bytes.
 *
 * A file that parses is also unpacked, written back and re-read, so the writer and the
 * container's invariants (names, shapes, byte counts) are exercised on everything the reader
 * lets through. Built with clang by tests/fuzz/run.sh; replayed over the committed corpus by
 * make check (tests/fuzz/replay.c).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/modelpress.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mp_model_t *m = NULL, *again = NULL;
    mp_errctx_t err;
    if (mp_safetensors_parse(data, size, &m, &err) != 0) {
        if (err.msg[0] == '\0') {
            abort(); /* every refusal says why */
        }
        return 0;
    }
    for (size_t i = 0; i < m->n_tensors; i++) {
        const mp_tensor_t *t = &m->tensors[i];
        if ((size_t)mp_tensor_elements(t) * mp_dtype_size(t->dtype) != t->n_bytes ||
            mp_model_find(m, t->name) != t) {
            abort();
        }
        /* Touch every byte the reader vouched for. */
        volatile uint8_t sum = 0;
        for (size_t b = 0; b < t->n_bytes; b++) {
            sum ^= ((const uint8_t *)t->data)[b];
        }
        (void)sum;
    }
    char path[] = "/tmp/mp-fuzz-st-XXXXXX";
    int fd = mkstemp(path);
    if (fd >= 0) {
        close(fd);
        if (mp_safetensors_save(m, path, &err) == 0 && mp_safetensors_load(path, &again, &err) != 0) {
            abort(); /* what we write, we read */
        }
        if (again != NULL && again->n_tensors != m->n_tensors) {
            abort();
        }
        unlink(path);
    }
    mp_model_free(again);
    mp_model_free(m);
    return 0;
}
