/* recipe_int.h — the parsed form of a recipe and the helpers shared by the recipe pipeline
 * (recipe.c parses, selects and plans; pipeline.c runs; unpack.c restores).
 *
 * A parsed mp_recipe_t is always valid: mp_recipe_parse() refuses anything this version cannot
 * run, so the pipeline never re-checks fields. Invariants of a parsed recipe: 1 <= n_steps <=
 * MP_RECIPE_MAX_STEPS; prune steps come first; then at most one value-coding step (quantize,
 * share or lowrank), except that lowrank may be followed by one quantize of its factors; a
 * huffman step, if any, is the last and then format is MP_OUT_MPZ; glob patterns are non-empty
 * NUL-terminated strings.
 *
 * The stored form of a compressed tensor is made of "parts": the tensor itself, or its low-rank
 * factors. Each part is a float array with a shape, stored under a code (raw floats, integer
 * codes, binary or ternary codes, or codebook indices) as up to four tensors named base +
 * suffix. mp__code_layout() is the one description of those tensors — names, dtypes, shapes,
 * byte counts — that the pipeline writes, unpack checks and the name check predicts, and
 * mp__part_decode() is the one function that turns them back into floats, for unpack and for
 * the pipeline's own error figures alike, so that what is reported is what is restored, bit for
 * bit.
 */
#ifndef MP_RECIPE_INT_H
#define MP_RECIPE_INT_H

#include "mp_int.h"

#define MP_RECIPE_MAX_STEPS 64
#define MP_RECIPE_MAX_BYTES (1u << 20)   /* recipe JSON text */
#define MP_RECIPE_MAX_DEPTH 16           /* nesting of arrays and objects */
#define MP_RECIPE_MAX_PATTERNS 256       /* per include / exclude list */
#define MP_RECIPE_MAX_PATTERN_BYTES 1024

/* The metadata key under which a compressed model records what was done to which tensor, and
 * the record version this code writes (it reads 1 and 2). */
#define MP_META_KEY "modelpress"
#define MP_RECORD_VERSION 2

/* Matrices whose smaller side is above this get the randomized SVD unless the recipe says. */
#define MP_LOWRANK_RANDOMIZED_ABOVE 1024
/* Power iterations of the randomized SVD (as torch.svd_lowrank's niter) and HOOI sweeps of
 * Tucker-2; the seed of the randomized range finder and of k-means++. Fixed, so that a recipe
 * gives the same bytes on every run. */
#define MP_LOWRANK_POWER_ITERS 2
#define MP_TUCKER_SWEEPS 2
#define MP_METHOD_SEED 0x6d6f64656c707273ull

typedef enum {
    MP_STEP_PRUNE = 0,
    MP_STEP_QUANTIZE,
    MP_STEP_SHARE,
    MP_STEP_LOWRANK,
    MP_STEP_HUFFMAN
} mp_step_kind_t;
typedef enum { MP_SCOPE_LAYER = 0, MP_SCOPE_GLOBAL } mp_prune_scope_t;
typedef enum { MP_STRUCT_NONE = 0, MP_STRUCT_CHANNEL, MP_STRUCT_2_4, MP_STRUCT_4_8 } mp_struct_t;
typedef enum { MP_GRAN_CHANNEL = 0, MP_GRAN_TENSOR, MP_GRAN_GROUP } mp_quant_gran_t;
typedef enum {
    MP_QFMT_INT = 0,
    MP_QFMT_BINARY,
    MP_QFMT_TERNARY,
    MP_QFMT_FP16,
    MP_QFMT_BF16
} mp_quant_format_t;
typedef enum { MP_RANK_FIXED = 0, MP_RANK_RATIO, MP_RANK_ENERGY } mp_rank_rule_t;
typedef enum { MP_OUT_SAFETENSORS = 0, MP_OUT_MPZ } mp_out_format_t;

typedef struct mp_step {
    mp_step_kind_t kind;
    struct {
        double sparsity;         /* 0..1; 0.5 for N:M */
        mp_prune_scope_t scope;  /* global only with structure none */
        mp_struct_t structure;
        int norm;                /* channel: 1 or 2 */
    } prune;
    struct {
        mp_quant_format_t format;
        int bits;                /* int: 2..8 */
        int asymmetric;          /* int only */
        mp_quant_gran_t granularity; /* group only for int */
        size_t group_size;       /* >= 1 */
    } quant;
    struct {
        int clusters;            /* 2..256 */
        int init;                /* mp__km_init_t */
        int optimal;
        int max_iter;
    } share;
    struct {
        mp_rank_rule_t rule;
        int64_t rank;            /* MP_RANK_FIXED: >= 1 */
        double fraction;         /* rank_ratio or energy: (0, 1] */
        int randomized;          /* -1 auto, 0 exact, 1 randomized */
    } lowrank;
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
    int has_huffman;             /* the last step is huffman */
};

/* ---- stored parts ---------------------------------------------------------------------------- */

typedef enum {
    MP_CODE_RAW = 0,             /* the values in a float dtype */
    MP_CODE_INT,                 /* affine integer codes, mp__quant_affine */
    MP_CODE_BINARY,              /* 1-bit codes and per-row (or per-tensor) alphas */
    MP_CODE_TERNARY,             /* 2-bit codes 0, 1, 2 for -alpha, 0, +alpha */
    MP_CODE_SHARE                /* U8 codebook indices and an F32 codebook */
} mp_code_kind_t;

typedef struct mp_code {
    mp_code_kind_t kind;
    mp_dtype_t dtype;            /* RAW: F32, F16, BF16 or F64 */
    int bits;                    /* INT: 2..8 */
    int asymmetric;              /* INT */
    mp_quant_gran_t granularity; /* INT, BINARY, TERNARY; TENSOR for parts of fewer than 2 dims */
    size_t group;                /* INT with GROUP: elements per group along a row, 1..cols */
    int clusters;                /* SHARE: codebook entries, 2..256 */
} mp_code_t;

/* The stored tensors of a part, by role; a role is present when its suffix is not NULL. */
enum {
    MP_ROLE_MAIN = 0,            /* values, int8 codes, packed codes or indices */
    MP_ROLE_SHAPE,               /* I64 [n_dims]: the part's shape, next to packed codes */
    MP_ROLE_SCALE,               /* F32 scales or alphas */
    MP_ROLE_ZERO_POINT,          /* I32, asymmetric only */
    MP_ROLE_CODEBOOK,            /* F32 [clusters] */
    MP_ROLE_COUNT
};

typedef struct mp_layout {
    int n_dims;                  /* the part's shape */
    int64_t shape[MP_MAX_DIMS];
    size_t rows, cols, n;        /* the part viewed as rows (dim 0) x cols */
    size_t n_bytes;              /* all its tensors together */
    struct {
        const char *suffix;      /* NULL: role absent; "" for the part's own name */
        mp_dtype_t dtype;
        int n_dims;
        int64_t shape[MP_MAX_DIMS];
        size_t n_bytes;
    } role[MP_ROLE_COUNT];
} mp_layout_t;

/* Fill l with the tensors a part of this shape is stored as under code c (which must be
 * resolved by mp__code_resolve for this shape). MP_EINVAL when the shape's bytes overflow. */
int mp__code_layout(const mp_code_t *c, int n_dims, const int64_t *shape, mp_layout_t *l);

/* Settle the shape-dependent fields of c for a part of this shape: a per-channel code of a
 * part with fewer than two dims is per tensor; a group longer than a row is one group a row. */
void mp__code_resolve(mp_code_t *c, int n_dims, const int64_t *shape);

/* The code a coding step (quantize or share) gives a part; with st NULL the part stays raw in
 * raw_dtype. fp16 and bf16 are raw codes in F16 and BF16. Not yet resolved for a shape. */
void mp__step_code(const mp_step_t *st, mp_dtype_t raw_dtype, mp_code_t *c);

/* Decode one part into out[l->n] floats from its tensors t[role] (NULL where the role is
 * absent), which the caller has checked against mp__code_layout. name names the part in
 * messages. MP_EFORMAT for something no encoder writes: a non-finite scale, alpha or codebook
 * entry, an index past the codebook, a ternary code 3, a zero point out of range, an _shape
 * that disagrees. */
int mp__part_decode(const char *name, const mp_code_t *c, const mp_layout_t *l,
                    const mp_tensor_t *const *t, float *out, mp_errctx_t *err);

/* The record's description of a code ({"kind": "int", "bits": 4, ...}), a new reference or
 * NULL when out of memory; unpack.c reads it back. */
struct json_t *mp__code_json(const mp_code_t *c);

/* The parts of a tensor stored whole (factored 0), as SVD factors (1: "_u" [m, r_out], "_v"
 * [r_out, n]) or as Tucker-2 factors (2: "_u_out" [o, r_out], "_core" [r_out, r_in, k...],
 * "_u_in" [r_in, i]): their name suffixes, and their shapes from the tensor's shape and ranks
 * (which the caller has checked: 2 dims for SVD, 3 or more for Tucker-2, ranks within them).
 * Returns the number of parts. */
const char *const *mp__part_suffixes(int factored);
size_t mp__part_shapes(int factored, int n_dims, const int64_t *shape, size_t r_out,
                       size_t r_in, int *part_dims, int64_t (*part_shape)[MP_MAX_DIMS]);

/* w[m x n] = a[m x r] b[r x n], in float with a fixed order of operations, so that the pipeline
 * and unpack give the same bits everywhere. */
void mp__lowrank_expand(const float *a, const float *b, size_t m, size_t r, size_t n, float *w);
/* w[o x i x s] = core[r_out x r_in x s] x1 u_out[o x r_out] x2 u_in[r_in x i], likewise fixed;
 * MP_ENOMEM when its scratch cannot be had. */
int mp__tucker2_expand(const float *u_out, const float *core, const float *u_in, size_t o,
                       size_t i, size_t s, size_t r_out, size_t r_in, float *w,
                       mp_errctx_t *err);

/* ---- what a recipe does to one tensor ----------------------------------------------------- */

/* Decided from the recipe and the tensor's shape alone, so that the model check, the name check
 * and the pipeline agree. */
typedef struct mp_plan {
    const mp_step_t *coding;     /* the quantize or share step applied to the parts, or NULL */
    const mp_step_t *lowrank;    /* the lowrank step, or NULL */
    int factored;                /* 0; 1 SVD of a matrix; 2 Tucker-2 of 3 or more dims */
    size_t n_parts;              /* 1, 2 or 3 */
    const char *const *part_suffix; /* mp__part_suffixes(factored) */
    mp_dtype_t factor_dtype;     /* factors before a quantize: F16/BF16 as the input, else F32 */
    mp_code_t code;              /* of every part, not yet resolved for a shape */
} mp_plan_t;

void mp__plan(const mp_recipe_t *r, const mp_tensor_t *t, mp_plan_t *p);

/* name + suffix, malloc'd (NULL when out of memory). */
char *mp__name_join(const char *name, const char *suffix);

/* The recipe's name of a step kind: "prune", "quantize", "share", "lowrank" or "huffman". */
const char *mp__step_name(mp_step_kind_t kind);

/* Convert a tensor's n elements (F32/F16/BF16/F64; data may be unaligned) to floats in dst.
 * MP_EINVAL naming the tensor and the element for a value that is not finite or does not fit
 * in F32, so every method downstream sees finite floats. */
int mp__tensor_to_f32(const mp_tensor_t *t, float *dst, mp_errctx_t *err);

/* Store n floats as dtype dt (F32/F16/BF16/F64, rounding to nearest even) into dst, which
 * holds n * mp_dtype_size(dt) bytes. */
void mp__f32_to_dtype(const float *src, size_t n, mp_dtype_t dt, void *dst);

#endif /* MP_RECIPE_INT_H */
