/* fuzz_recipe.c — libFuzzer target: recipe JSON as a user would send it in a form field.
 *
 * Every refusal must carry a message naming what was wrong; a recipe that parses is checked
 * against a small model, so selection and step validation run too.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/modelpress.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static mp_model_t *model;
    mp_recipe_t *r = NULL;
    mp_errctx_t err;
    if (model == NULL) {
        static float w[64 * 48], b[64];
        int64_t ws[2] = {64, 48}, bs[1] = {64};
        model = mp_model_new();
        if (model == NULL || mp_model_add_ref(model, "fc.weight", MP_DT_F32, 2, ws, w, sizeof w, NULL) != 0 ||
            mp_model_add_ref(model, "fc.bias", MP_DT_F32, 1, bs, b, sizeof b, NULL) != 0) {
            abort();
        }
    }
    int rc = mp_recipe_parse((const char *)data, size, &r, &err);
    if (rc != 0) {
        if (err.msg[0] == '\0' || r != NULL) {
            abort();
        }
        return 0;
    }
    if (mp_recipe_check_model(r, model, &err) != 0 && err.msg[0] == '\0') {
        abort();
    }
    mp_recipe_free(r);
    return 0;
}
