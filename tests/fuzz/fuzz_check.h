/* fuzz_check.h — what the fuzz targets check of what a reader lets through.
 *
 * fuzz_model_check: every tensor of a model that was read has the byte count its shape and
 * dtype give, is found by its name, and has each of its bytes read once (so ASan sees a bad
 * pointer). fuzz_dataset_check (fuzz_npy.c, fuzz_npz.c): a refusal says why, and a dataset
 * that is read keeps the promises of modelpress.h (at least one sample of at least one value,
 * the shape's product matching, finite inputs, labels within [0, classes)).
 */
#ifndef FUZZ_CHECK_H
#define FUZZ_CHECK_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/modelpress.h"

static inline void fuzz_model_check(const mp_model_t *m)
{
    for (size_t i = 0; i < m->n_tensors; i++) {
        const mp_tensor_t *t = &m->tensors[i];
        if ((size_t)mp_tensor_elements(t) * mp_dtype_size(t->dtype) != t->n_bytes ||
            mp_model_find(m, t->name) != t) {
            abort();
        }
        volatile uint8_t sum = 0;
        for (size_t b = 0; b < t->n_bytes; b++) {
            sum ^= ((const uint8_t *)t->data)[b];
        }
        (void)sum;
    }
}

static inline void fuzz_dataset_check(const uint8_t *data, size_t size)
{
    mp_dataset_t *ds = NULL;
    mp_errctx_t err;

    err.msg[0] = '\0';
    if (mp_dataset_parse(data, size, &ds, &err) != 0) {
        if (ds != NULL || err.msg[0] == '\0') {
            abort(); /* every refusal says why, and leaves nothing behind */
        }
        return;
    }
    int n_dims = 0;
    const int64_t *shape = mp_dataset_shape(ds, &n_dims);
    int64_t samples = mp_dataset_samples(ds), per = mp_dataset_sample_elements(ds), prod = 1;
    if (n_dims < 1 || n_dims > MP_MAX_DIMS || samples < 1 || per < 1 || shape[0] != samples) {
        abort();
    }
    for (int i = 1; i < n_dims; i++) {
        prod *= shape[i];
    }
    if (prod != per) {
        abort();
    }
    const float *x = mp_dataset_x(ds);
    for (int64_t i = 0; i < samples * per; i++) {
        if (!isfinite(x[i])) {
            abort();
        }
    }
    const int64_t *y = mp_dataset_labels(ds);
    for (int64_t i = 0; y != NULL && i < samples; i++) {
        if (y[i] < 0 || y[i] >= mp_dataset_classes(ds)) {
            abort();
        }
    }
    mp_dataset_free(ds);
}

#endif /* FUZZ_CHECK_H */
