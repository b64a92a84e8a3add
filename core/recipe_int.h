/* recipe_int.h — the parsed form of a recipe and the helpers shared by the recipe pipeline
 * (recipe.c parses and selects, pipeline.c runs, unpack.c restores).
 *
 * A parsed mp_recipe_t is always valid: mp_recipe_parse() refuses anything this version cannot
 * run, so the pipeline never re-checks fields. Only the steps this version runs have a parsed
 * form (prune, quantize); every other known step is refused at parse time. Invariants: 1 <=
 * n_steps <= MP_RECIPE_MAX_STEPS, a quantize step is the last step that changes values, the
 * glob patterns are non-empty NUL-terminated strings.
 */
#ifndef MP_RECIPE_INT_H
#define MP_RECIPE_INT_H

#include "mp_int.h"

#define MP_RECIPE_MAX_STEPS 64
#define MP_RECIPE_MAX_BYTES (1u << 20)   /* recipe JSON text */
#define MP_RECIPE_MAX_DEPTH 16           /* nesting of arrays and objects */
#define MP_RECIPE_MAX_PATTERNS 256       /* per include / exclude list */
#define MP_RECIPE_MAX_PATTERN_BYTES 1024

/* The metadata key under which a compressed model records what was done to which tensor. */
#define MP_META_KEY "modelpress"
/* The suffix of the companion tensor holding int8 scales (compressed-tensors convention). */
#define MP_SCALE_SUFFIX "_scale"

typedef enum { MP_STEP_PRUNE = 0, MP_STEP_QUANTIZE } mp_step_kind_t;
typedef enum { MP_SCOPE_LAYER = 0, MP_SCOPE_GLOBAL } mp_prune_scope_t;
typedef enum { MP_GRAN_CHANNEL = 0, MP_GRAN_TENSOR } mp_quant_gran_t;
typedef enum { MP_OUT_SAFETENSORS = 0 } mp_out_format_t;

typedef struct mp_step {
    mp_step_kind_t kind;
    struct {
        double sparsity;         /* 0..1 */
        mp_prune_scope_t scope;  /* method magnitude, structure none: the only ones today */
    } prune;
    struct {
        int bits;                /* 8: the only width today (symmetric, round, int) */
        mp_quant_gran_t granularity;
    } quant;
} mp_step_t;

struct mp_recipe {
    mp_step_t *steps;
    size_t n_steps;
    int has_include;             /* include given: it replaces the default selection */
    char **include;
    size_t n_include;
    char **exclude;
    size_t n_exclude;
    int64_t min_elements;        /* 0 when not given */
    mp_out_format_t format;
};

/* name + MP_SCALE_SUFFIX, malloc'd (NULL when out of memory). */
char *mp__scale_name(const char *name);

/* Convert a tensor's n elements (F32/F16/BF16/F64; data may be unaligned) to floats in dst.
 * MP_EINVAL naming the tensor and the element for a value that is not finite or does not fit
 * in F32, so every method downstream sees finite floats. */
int mp__tensor_to_f32(const mp_tensor_t *t, float *dst, mp_errctx_t *err);

/* Store n floats as dtype dt (F32/F16/BF16/F64, rounding to nearest even) into dst, which
 * holds n * mp_dtype_size(dt) bytes. */
void mp__f32_to_dtype(const float *src, size_t n, mp_dtype_t dt, void *dst);

#endif /* MP_RECIPE_INT_H */
