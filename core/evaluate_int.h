/* evaluate_int.h — the recipe's evaluate block, shared by the recipe parser and evaluate.c.
 *
 * mp_recipe_parse() validates an evaluate block with mp__eval_block_parse() (so a recipe with a
 * bad block is refused before any work is queued, with a message naming the field), and
 * mp_recipe_evaluate() reads the same block back out of the recipe's text for the callers that
 * run the evaluation (the daemon's workers, `modelpress compress --dataset`).
 */
#ifndef MP_EVALUATE_INT_H
#define MP_EVALUATE_INT_H

#include "mp_int.h"

#include <jansson.h>

/* Check the value of a recipe's "evaluate" field and, when out is not NULL, fill it.
 * MP_ERECIPE with "evaluate.<field>: …" in err for a bad block. */
int mp__eval_block_parse(const json_t *v, mp_eval_spec_t *out, mp_errctx_t *err);

#endif /* MP_EVALUATE_INT_H */
