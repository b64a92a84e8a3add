/* unpack.c — restore plain F32 tensors from a model written by mp_pipeline_run().
 *
 * The "modelpress" metadata lists every compressed tensor and what was done to it. A quantized
 * `L` is I8 plus the F32 companion `L_scale` ([rows] per channel, [1] per tensor) and becomes F32
 * again under its own name, the companion dropped; a pruned-only tensor is converted to F32
 * (borrowed when it already is F32); every other tensor is borrowed from the input unchanged,
 * in input order. The input may come from anyone's file, so the record is checked against the
 * tensors it names (dtype, shape, scale count) before any value is read: a lie in it is
 * MP_EFORMAT naming the tensor, never a read out of bounds.
 */
#include "methods_int.h"
#include "recipe_int.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define REC "metadata '" MP_META_KEY "'"

enum role { KEEP = 0, DEQUANT, TO_F32, DROP };

/* Dequantize tensor t (index i) with its companion into restored[i]; mark the companion. */
static int restore_quant(const mp_model_t *in, size_t i, const json_t *spec, enum role *roles,
                         float **restored, mp_errctx_t *err)
{
    const mp_tensor_t *t = &in->tensors[i], *s;
    const char *scheme = NULL, *gran = NULL;
    json_int_t bits = 0;
    json_error_t jerr;
    char *scale_name = NULL;
    float *scales = NULL;
    size_t n, rows, si;
    int per_channel, rc = 0;

    MP_GOTO_IF(json_unpack_ex((json_t *)spec, &jerr, JSON_STRICT, "{s:I, s:s, s:s}", "bits",
                              &bits, "scheme", &scheme, "granularity", &gran) < 0,
               MP_EFORMAT, REC ": tensor '%s': bad quantize record (%s)", t->name, jerr.text);
    MP_GOTO_IF(bits != 8 || strcmp(scheme, "symmetric") != 0, MP_EUNSUPPORTED,
               REC ": tensor '%s': %d-bit %s quantization cannot be unpacked by this version",
               t->name, (int)bits, scheme);
    per_channel = strcmp(gran, "channel") == 0;
    MP_GOTO_IF(!per_channel && strcmp(gran, "tensor") != 0, MP_EFORMAT,
               REC ": tensor '%s': unknown granularity '%s'", t->name, gran);
    n = (size_t)mp_tensor_elements(t);
    MP_GOTO_IF(t->dtype != MP_DT_I8 || n == 0 || (per_channel && t->n_dims < 1), MP_EFORMAT,
               REC ": tensor '%s' is recorded as quantized, but it is %s with %zu elements",
               t->name, mp_dtype_name(t->dtype), n);
    rows = per_channel ? (size_t)t->shape[0] : 1;

    scale_name = mp__scale_name(t->name);
    MP_GOTO_IF(scale_name == NULL, MP_ENOMEM, "out of memory unpacking '%s'", t->name);
    s = mp_model_find(in, scale_name);
    MP_GOTO_IF(s == NULL, MP_EFORMAT, REC ": tensor '%s' is quantized but '%s' is missing",
               t->name, scale_name);
    MP_GOTO_IF(s->dtype != MP_DT_F32 || s->n_dims != 1 || (size_t)s->shape[0] != rows,
               MP_EFORMAT, REC ": '%s' must be F32 of shape [%zu] for the %s scales of '%s'",
               scale_name, rows, gran, t->name);
    si = (size_t)(s - in->tensors);
    MP_GOTO_IF(roles[si] != KEEP, MP_EFORMAT, REC ": tensor '%s' is listed twice", scale_name);
    roles[si] = DROP;

    /* the file's bytes may be unaligned: copy the scales out before using them as floats */
    scales = malloc(rows * sizeof *scales);
    restored[i] = malloc(n * sizeof(float));
    MP_GOTO_IF(scales == NULL || restored[i] == NULL, MP_ENOMEM, "out of memory unpacking '%s'",
               t->name);
    memcpy(scales, s->data, rows * sizeof *scales);
    for (size_t r = 0; r < rows; r++) {
        MP_GOTO_IF(!isfinite(scales[r]), MP_EFORMAT, "tensor '%s': scale %zu is not finite",
                   scale_name, r);
    }
    mp__dequant_i8_sym(t->data, rows, n / rows, per_channel, scales, restored[i]);
out:
    free(scales);
    free(scale_name);
    return rc;
}

/* Read the record and decide the role of every input tensor, restoring values on the way. */
static int plan(const mp_model_t *in, const char *record, enum role *roles, float **restored,
                mp_errctx_t *err)
{
    json_t *root, *tensors, *spec;
    json_error_t jerr;
    const char *name;
    int rc = 0;

    root = json_loads(record, JSON_REJECT_DUPLICATES, &jerr);
    MP_GOTO_IF(root == NULL, MP_EFORMAT, REC " is not valid JSON: %s", jerr.text);
    MP_GOTO_IF(json_integer_value(json_object_get(root, "version")) != 1, MP_EUNSUPPORTED,
               REC ": only version 1 is understood by this version");
    tensors = json_object_get(root, "tensors");
    MP_GOTO_IF(!json_is_object(tensors), MP_EFORMAT, REC ": \"tensors\" must be an object");

    json_object_foreach(tensors, name, spec) {
        const mp_tensor_t *t = mp_model_find(in, name);
        const json_t *q = json_object_get(spec, "quantize");
        size_t i;

        MP_GOTO_IF(t == NULL, MP_EFORMAT, REC " lists tensor '%s', which the model does not have",
                   name);
        i = (size_t)(t - in->tensors);
        MP_GOTO_IF(roles[i] != KEEP, MP_EFORMAT, REC ": tensor '%s' is listed twice", name);
        if (q != NULL) {
            roles[i] = DEQUANT;
            if ((rc = restore_quant(in, i, q, roles, restored, err)) < 0) {
                goto out;
            }
        } else if (t->dtype != MP_DT_F32) {
            roles[i] = TO_F32;
            MP_GOTO_IF(mp_tensor_elements(t) <= 0, MP_EFORMAT, REC ": tensor '%s' is empty",
                       name);
            restored[i] = malloc((size_t)mp_tensor_elements(t) * sizeof(float));
            MP_GOTO_IF(restored[i] == NULL, MP_ENOMEM, "out of memory unpacking '%s'", name);
            if ((rc = mp__tensor_to_f32(t, restored[i], err)) < 0) {
                goto out;
            }
        }
        /* a pruned-only F32 tensor is already what unpack gives: it stays borrowed */
    }
out:
    json_decref(root);
    return rc;
}

int mp_model_unpack(const mp_model_t *in, mp_model_t **out, mp_errctx_t *err)
{
    const char *record;
    enum role *roles = NULL;
    float **restored = NULL;
    mp_model_t *m = NULL;
    int rc = 0;

    if (out != NULL) {
        *out = NULL;
    }
    MP_RETURN_IF(in == NULL || out == NULL, MP_EINVAL, "mp_model_unpack: NULL argument");
    record = mp_model_get_meta(in, MP_META_KEY);
    MP_RETURN_IF(record == NULL, MP_EINVAL,
                 "the model has no '%s' metadata: it was not written by modelpress compress, so "
                 "there is nothing to unpack",
                 MP_META_KEY);

    roles = calloc(in->n_tensors ? in->n_tensors : 1, sizeof *roles);
    restored = calloc(in->n_tensors ? in->n_tensors : 1, sizeof *restored);
    MP_GOTO_IF(roles == NULL || restored == NULL, MP_ENOMEM, "out of memory unpacking");
    if ((rc = plan(in, record, roles, restored, err)) < 0) {
        goto out;
    }

    m = mp_model_new();
    MP_GOTO_IF(m == NULL, MP_ENOMEM, "out of memory unpacking");
    for (size_t i = 0; i < in->n_meta; i++) {
        if (strcmp(in->meta_keys[i], MP_META_KEY) != 0) {
            MP_GOTO_IF(mp_model_set_meta(m, in->meta_keys[i], in->meta_values[i]) < 0,
                       MP_ENOMEM, "out of memory copying metadata");
        }
    }
    for (size_t i = 0; i < in->n_tensors; i++) {
        const mp_tensor_t *t = &in->tensors[i];
        if (roles[i] == DROP) {
            continue;
        }
        if (roles[i] == KEEP) {
            rc = mp_model_add_ref(m, t->name, t->dtype, t->n_dims, t->shape, t->data, t->n_bytes,
                                  err);
        } else {
            const size_t n = (size_t)mp_tensor_elements(t);
            rc = mp_model_add_take(m, t->name, MP_DT_F32, t->n_dims, t->shape, restored[i],
                                   n * sizeof(float), err);
            restored[i] = NULL; /* taken even on failure */
        }
        if (rc < 0) {
            goto out;
        }
    }
    *out = m;
    m = NULL;
out:
    for (size_t i = 0; restored != NULL && i < in->n_tensors; i++) {
        free(restored[i]);
    }
    free(restored);
    free(roles);
    mp_model_free(m);
    return rc;
}
