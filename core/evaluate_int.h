/* evaluate_int.h — internals of datasets and evaluation shared across core files.
 *
 * mp_recipe_parse() validates an evaluate block with mp__eval_block_parse() (so a recipe with a
 * bad block is refused before any work is queued, with a message naming the field), and
 * mp_recipe_evaluate() reads the same block back out of the recipe's text for the callers that
 * run the evaluation (the daemon's workers, `modelpress compress --dataset`). dataset.c and
 * evaluate.c write shapes into their messages the same way.
 */
#ifndef MP_EVALUATE_INT_H
#define MP_EVALUATE_INT_H

#include "mp_int.h"

#include <jansson.h>

/* Check the value of a recipe's "evaluate" field and, when out is not NULL, fill it.
 * MP_ERECIPE with "evaluate.<field>: …" in err for a bad block. */
int mp__eval_block_parse(const json_t *v, mp_eval_spec_t *out, mp_errctx_t *err);

/* A shape for messages (dataset.c): "(3, 4)" and "(3,)" as NumPy writes it when numpy is
 * set, else "[3, 4]". Returns buf. */
const char *mp__dims_text(const int64_t *dims, int n_dims, int numpy, char *buf, size_t cap);

#endif /* MP_EVALUATE_INT_H */
