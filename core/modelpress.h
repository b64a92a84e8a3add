/* modelpress.h — the public interface of libmodelpress, the compression core.
 *
 * libmodelpress loads trained networks (safetensors today), applies a recipe of compression
 * steps (prune, quantize, …) and writes the compressed model plus a report of what was lost.
 * The same engine runs inside modelpressd's worker threads and behind the `modelpress` command.
 *
 * Conventions, kept by every function here:
 * - Functions return int: 0 on success or a negative MP_E* code. Results go out through
 *   pointer parameters. Where a function takes an mp_errctx_t *, a human-readable detail
 *   (which tensor, which byte offset, which recipe field) is written there on failure; the
 *   pointer may be NULL when the caller does not want it.
 * - Whoever allocates frees; every *_free(NULL) is a no-op. A function that takes ownership of
 *   an argument says so in its name (_take).
 * - Nothing here logs, aborts on bad input or keeps global mutable state apart from the kernel
 *   table chosen once at first use; distinct objects may be used from distinct threads.
 */
#ifndef MODELPRESS_H
#define MODELPRESS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MP_VERSION_STRING "0.1.0"

/* ---- errors ------------------------------------------------------------------------------ */

/* X(name, value, message): the one list of error codes. */
#define MP_ERRNO_MAP(X)                                                                            \
    X(OK, 0, "success")                                                                            \
    X(EINVAL, -1, "invalid argument")                                                              \
    X(ENOMEM, -2, "out of memory")                                                                 \
    X(EIO, -3, "input/output error")                                                               \
    X(EFORMAT, -4, "malformed model file")                                                         \
    X(EUNSUPPORTED, -5, "unsupported feature")                                                     \
    X(ERECIPE, -6, "invalid recipe")                                                               \
    X(ECANCELED, -7, "canceled")                                                                   \
    X(ENOENT, -8, "not found")                                                                     \
    X(ETOOBIG, -9, "too large")                                                                    \
    X(ENOSPC, -10, "no space left on device")                                                      \
    X(EINTERNAL, -11, "internal error")

typedef enum {
#define MP_X_ENUM(name, value, msg) MP_##name = (value),
    MP_ERRNO_MAP(MP_X_ENUM)
#undef MP_X_ENUM
} mp_errno_t;

/* Static strings; unknown codes give "unknown error" / "EUNKNOWN". */
const char *mp_strerror(int err);
const char *mp_err_name(int err);

/* Where a failing function writes what went wrong, for a person to read. */
typedef struct mp_errctx {
    int code;
    char msg[512];
} mp_errctx_t;

/* ---- tensors and models ------------------------------------------------------------------ */

typedef enum {
    MP_DT_F32 = 0,
    MP_DT_F16,
    MP_DT_BF16,
    MP_DT_F64,
    MP_DT_I8,
    MP_DT_U8,
    MP_DT_I16,
    MP_DT_U16,
    MP_DT_I32,
    MP_DT_U32,
    MP_DT_I64,
    MP_DT_U64,
    MP_DT_BOOL,
    MP_DT_COUNT
} mp_dtype_t;

/* Element size in bytes (0 for an out-of-range value), the safetensors spelling ("F32", …),
 * and the reverse lookup (-1 if the name is unknown). */
size_t mp_dtype_size(mp_dtype_t dt);
const char *mp_dtype_name(mp_dtype_t dt);
int mp_dtype_from_name(const char *name);
int mp_dtype_is_float(mp_dtype_t dt);

#define MP_MAX_DIMS 8

typedef struct mp_tensor {
    char *name;                  /* owned by the model, NUL-terminated, no NUL inside */
    mp_dtype_t dtype;
    int n_dims;                  /* 0 for a scalar */
    int64_t shape[MP_MAX_DIMS];
    const void *data;            /* n_bytes bytes; may point into a mapped file (read-only) */
    size_t n_bytes;              /* == product(shape) * mp_dtype_size(dtype), checked */
    void *owned;                 /* non-NULL when the model must free the data (== data) */
} mp_tensor_t;

/* A named collection of tensors plus string metadata, in file order. */
typedef struct mp_model {
    mp_tensor_t *tensors;
    size_t n_tensors;
    size_t cap_tensors;
    char **meta_keys;            /* safetensors __metadata__, in file order */
    char **meta_values;
    size_t n_meta;
    void *map;                   /* the mapped file the borrowed tensors point into, or NULL */
    size_t map_bytes;
    void *name_index;            /* private to model.c: hash index of tensor names, or NULL */
    /* What the format reader keeps to write the model back (the parsed ONNX graph), and how
     * to free it; mp_model_free calls format_free(format_ctx) first, before the mapping goes. */
    void *format_ctx;
    void (*format_free)(void *ctx);
} mp_model_t;

/* Element count of a tensor (product of its shape; 1 for a scalar). */
int64_t mp_tensor_elements(const mp_tensor_t *t);

/* An empty model; NULL when out of memory. */
mp_model_t *mp_model_new(void);
void mp_model_free(mp_model_t *m);

/* Append a tensor. _add copies data; _add_take takes ownership of data (malloc'd) even on
 * failure; _add_ref borrows it (the caller keeps it alive as long as the model, as with the
 * tensors of an input model passed through to an output model unchanged).
 * Refuses a duplicate name, an empty name or a byte count that disagrees with the shape. */
int mp_model_add(mp_model_t *m, const char *name, mp_dtype_t dt, int n_dims, const int64_t *shape,
                 const void *data, size_t n_bytes, mp_errctx_t *err);
int mp_model_add_take(mp_model_t *m, const char *name, mp_dtype_t dt, int n_dims,
                      const int64_t *shape, void *data, size_t n_bytes, mp_errctx_t *err);
int mp_model_add_ref(mp_model_t *m, const char *name, mp_dtype_t dt, int n_dims,
                     const int64_t *shape, const void *data, size_t n_bytes, mp_errctx_t *err);

/* Set (or replace) one metadata entry. */
int mp_model_set_meta(mp_model_t *m, const char *key, const char *value);
/* Borrowed value, or NULL. */
const char *mp_model_get_meta(const mp_model_t *m, const char *key);
/* Borrowed tensor, or NULL. */
const mp_tensor_t *mp_model_find(const mp_model_t *m, const char *name);

/* ---- safetensors --------------------------------------------------------------------------- */

/* Hard limits on what a file may ask of us before anything is allocated. */
#define MP_ST_MAX_HEADER_BYTES (100u * 1000u * 1000u)

/* Parse a safetensors image held in memory. The tensors borrow buf, which must outlive the
 * model. Every field is validated against n_bytes before use; errors name the tensor and the
 * byte offset. MP_EFORMAT for a malformed file. */
int mp_safetensors_parse(const void *buf, size_t n_bytes, mp_model_t **out, mp_errctx_t *err);

/* Map a file read-only and parse it; the model owns the mapping. */
int mp_safetensors_load(const char *path, mp_model_t **out, mp_errctx_t *err);

/* Write a model: header keys sorted, tensor data 8-byte aligned by header padding and laid out
 * in sorted-name order, __metadata__ kept. Writes to path directly (callers that need
 * atomicity write to a temporary name and rename). */
int mp_safetensors_save(const mp_model_t *m, const char *path, mp_errctx_t *err);

/* Load any model format modelpress reads (safetensors, .mpz), chosen by content. */
int mp_model_load(const char *path, mp_model_t **out, mp_errctx_t *err);

/* ---- ONNX (onnx.c, onnx_rewrite.c; docs/onnx.md) ----------------------------------------- */

/* Parse an ONNX ModelProto held in memory (IR 3-10, default-domain opset 1-18). The model's
 * tensors are the graph's weights: every initializer of the main graph and of every subgraph
 * (If/Loop/Scan bodies), used or not, and every Constant node's value, named after its output
 * (a name already taken becomes "<scope>/<name>", see docs/onnx.md). The parsed graph is kept
 * in the model (format_ctx), so mp_onnx_save writes it back byte for byte. Tensors and graph
 * borrow buf, which must outlive the model. Hostile files are refused with MP_EFORMAT or
 * MP_EUNSUPPORTED naming the tensor or byte offset; external data is always refused and no
 * file is ever opened for it. */
int mp_onnx_parse(const void *buf, size_t n_bytes, mp_model_t **out, mp_errctx_t *err);
/* Map and parse a file (mp_model_load, which recognises ONNX by content); MP_EFORMAT when the
 * file is another format. */
int mp_onnx_load(const char *path, mp_model_t **out, mp_errctx_t *err);
/* 1 if m carries an ONNX graph (read by the functions above or made by mp_onnx_apply). */
int mp_model_is_onnx(const mp_model_t *m);
/* Serialise m's ONNX graph: a malloc'd buffer (*buf, *n_bytes), or a file written at path.
 * MP_EINVAL for a model without an ONNX graph. */
int mp_onnx_encode(const mp_model_t *m, uint8_t **buf, size_t *n_bytes, mp_errctx_t *err);
int mp_onnx_save(const mp_model_t *m, const char *path, mp_errctx_t *err);

/* Write what mp_pipeline_run did to the tensors of an ONNX model into its graph: onnx_in is
 * the ONNX model the pipeline ran on, compressed the pipeline's output (its tensors and its
 * "modelpress" metadata record). *onnx_out is a new ONNX model (owning its bytes; onnx_in may
 * be freed after) where an int8-quantized weight W is an INT8 tensor "W_quantized" plus its
 * scales dequantized back into the value W (DequantizeLinear, per axis for per-channel scales,
 * or Cast and Mul below opset 13), a pruned-only weight is W with its zeros, and everything
 * else — unknown operators and domains included — is passed through untouched. Every recipe
 * step has its form (docs/onnx.md): packed sub-8-bit codes unpacked in the graph, codebooks
 * through Gather, low-rank factors splitting MatMul/Gemm/Conv; zero output channels of a Conv
 * are removed where they only reach another Conv, and the metadata key "modelpress.channels"
 * of *onnx_out reports per weight what was removed or why not. onnx_in must have opset 7 or
 * later (the nodes added broadcast as opset 7 defines): older graphs are MP_EUNSUPPORTED. */
int mp_onnx_apply(const mp_model_t *onnx_in, const mp_model_t *compressed, mp_model_t **onnx_out,
                  mp_errctx_t *err);
/* Whether mp_onnx_apply can write into onnx_in's graph at all (its opset), so a caller can
 * refuse before compressing: 0, MP_EUNSUPPORTED with the reason, MP_EINVAL when not ONNX. */
int mp_onnx_check_apply(const mp_model_t *onnx_in, mp_errctx_t *err);

/* For `modelpress inspect`: a malloc'd JSON document describing an ONNX model — ir_version,
 * opset, producer, node and parameter counts, operator counts ("domain.Op" outside the default
 * domain), and per weight its name, graph value, origin (initializer or Constant), subgraph
 * depth, dtype, shape, elements, the nodes that consume it (op, node, input index), the output
 * channel axis its consumers imply (Conv 0, Gemm by transB, MatMul's last; null when unknown or
 * disagreeing) and whether recipe r (NULL: the default selection) would compress it. */
typedef struct mp_recipe mp_recipe_t; /* (declared again below; C11 allows it) */
int mp_onnx_describe(const mp_model_t *m, const mp_recipe_t *r, char **json, mp_errctx_t *err);

/* ---- the .mpz container (mpz.c, huffman.c) ----------------------------------------------- */

/* .mpz packs a compressed model losslessly the way Deep Compression stores AlexNet: every
 * 1-byte tensor (int8 codes, codebook indices) is stored as the positions of the entries that
 * differ from its most frequent value (relative gaps) plus those entries, both canonical-Huffman
 * coded; other tensors are stored as they are. Versioned and checksummed (docs/mpz.md). Reading
 * gives back exactly the tensors (names, dtypes, shapes, bytes) and metadata that were written,
 * so mp_model_unpack() applies to it like to a compressed safetensors file. */
int mp_mpz_encode(const mp_model_t *m, uint8_t **buf, size_t *n_bytes, mp_errctx_t *err);
int mp_mpz_save(const mp_model_t *m, const char *path, mp_errctx_t *err);
/* Parse an .mpz image; the model owns its (decoded) data. Validated like any upload. */
int mp_mpz_parse(const void *buf, size_t n_bytes, mp_model_t **out, mp_errctx_t *err);
int mp_mpz_load(const char *path, mp_model_t **out, mp_errctx_t *err);

/* ---- recipes and the pipeline -------------------------------------------------------------- */

typedef struct mp_recipe mp_recipe_t;

/* Parse and validate a recipe (JSON text of len bytes). An unknown step or a bad field is
 * MP_ERECIPE with a message naming the step and field, e.g.
 * "steps[1].quantize.bits: must be an integer from 2 to 8, got 33". */
int mp_recipe_parse(const char *json, size_t len, mp_recipe_t **out, mp_errctx_t *err);
void mp_recipe_free(mp_recipe_t *r);

/* The container the recipe's output is meant for: "mpz" when it ends with a huffman step or
 * says output.format "mpz", else "safetensors". A static string; thread-safe. */
const char *mp_recipe_output_format(const mp_recipe_t *r);

/* Choose the container ("safetensors" or "mpz"), for callers that take it from an output file
 * name. "mpz" always works; "safetensors" is MP_ERECIPE when the recipe asks for the .mpz
 * container (a huffman step or output.format "mpz"); MP_EINVAL for another name. */
int mp_recipe_set_output_format(mp_recipe_t *r, const char *format, mp_errctx_t *err);

/* Check a parsed recipe against a model before any work is queued: MP_ERECIPE when its select
 * matches no tensor, or a step cannot apply to what it selects. */
int mp_recipe_check_model(const mp_recipe_t *r, const mp_model_t *m, mp_errctx_t *err);

/* 1 if the recipe's select picks tensor t for compression, else 0. With r NULL, the default
 * selection: float tensors (F32/F16/BF16/F64) of two or more dims. Tensors without elements are
 * never selected. A selected tensor may still be refused by mp_recipe_check_model (not float). */
int mp_recipe_selects(const mp_recipe_t *r, const mp_tensor_t *t);

/* Called from the thread running the pipeline; progress is 0..1, stage a static string such as
 * "prune" or "quantize". Must be cheap. */
typedef void (*mp_progress_cb)(void *ud, double progress, const char *stage);

typedef struct mp_run_opts {
    mp_progress_cb progress_cb;  /* may be NULL */
    void *ud;
    const atomic_int *cancel;    /* may be NULL; nonzero asks the run to stop (MP_ECANCELED) */
} mp_run_opts_t;

/* Run every step of the recipe on the selected tensors of in. On success *out is a new model
 * (tensors not touched borrow from in, so in must outlive *out) and *report_json a malloc'd
 * JSON document with the per-tensor and total figures (see DESIGN.md, Reports). */
int mp_pipeline_run(const mp_model_t *in, const mp_recipe_t *r, const mp_run_opts_t *opts,
                    mp_model_t **out, char **report_json, mp_errctx_t *err);
/* The report's "output_format" is the recipe's container; a caller that writes another (an
 * ONNX model written back as ONNX) names it here: *report_json is replaced by a new malloc'd
 * document with format as its output_format. MP_EFORMAT when *report_json is not a JSON
 * object, MP_ENOMEM; *report_json is unchanged on failure. */
int mp_report_set_output_format(char **report_json, const char *format, mp_errctx_t *err);

/* Restore plain F32 tensors under their original names from a compressed model (quantized
 * weights dequantized, companions such as *_scale removed). Tensors that were never
 * compressed are borrowed from in. */
int mp_model_unpack(const mp_model_t *in, mp_model_t **out, mp_errctx_t *err);

/* ---- datasets (dataset.c) ----------------------------------------------------------------- */

/* Evaluation and calibration data: inputs x, whose first axis counts the samples, and
 * optionally integer class labels y, one per sample. Read from a NumPy .npy (x alone), a .npz
 * (members x.npy and y.npy, stored or deflated; other members are not read) or a safetensors
 * file (tensors x and y). x may be f4 f8 f2 u1 i1 i2 i4 i8 u2 u4 u8 (safetensors also BF16) and
 * becomes F32, finite values only; y may be any integer type and becomes int64, class indices
 * from 0 to MP_DATASET_MAX_LABEL. A fortran_order .npy array is transposed into C order (what
 * np.load gives). Files are validated like model uploads (RELIABILITY.md item 8): the .npy
 * header at most MP_NPY_MAX_HEADER_BYTES with exactly the keys descr, fortran_order and shape
 * (object dtypes, i.e. pickles, refused), shapes checked for sign and overflow, data neither
 * truncated nor followed by stray bytes; zip offsets checked against the file, overlapping
 * members refused, a deflated member inflated only to its declared size, at most
 * MP_DATASET_MAX_BYTES and (above 1 MiB) at most MP_ZIP_MAX_RATIO times its compressed size,
 * CRC-32 checked. Nothing is extracted to disk.
 * Failures are MP_EFORMAT (malformed), MP_EUNSUPPORTED (a valid file modelpress cannot use, such
 * as a big-endian dtype), MP_ETOOBIG (limits) or MP_ENOMEM, with a message naming the array or
 * member and the byte. A dataset owns its values: the buffer or file may go once it is read;
 * distinct datasets may be used from distinct threads, one dataset from many for reading. */
#define MP_NPY_MAX_HEADER_BYTES 10000u
#define MP_DATASET_MAX_BYTES (4ull << 30)
#define MP_ZIP_MAX_RATIO 200u
#define MP_DATASET_MAX_LABEL INT32_MAX

typedef struct mp_dataset mp_dataset_t;

/* Parse a dataset held in memory, the format chosen by content. */
int mp_dataset_parse(const void *buf, size_t n_bytes, mp_dataset_t **out, mp_errctx_t *err);
/* Map a file, parse it, unmap it. */
int mp_dataset_load(const char *path, mp_dataset_t **out, mp_errctx_t *err);
void mp_dataset_free(mp_dataset_t *ds);

/* "npy", "npz" or "safetensors" (static). */
const char *mp_dataset_format(const mp_dataset_t *ds);
/* Number of samples: x's first dimension, >= 1. */
int64_t mp_dataset_samples(const mp_dataset_t *ds);
/* x's shape (borrowed, *n_dims >= 1 entries, the first the samples). */
const int64_t *mp_dataset_shape(const mp_dataset_t *ds, int *n_dims);
/* Values per sample (product of the shape after the first axis), >= 1. */
int64_t mp_dataset_sample_elements(const mp_dataset_t *ds);
/* x as F32, samples × sample_elements in C order (borrowed). */
const float *mp_dataset_x(const mp_dataset_t *ds);
/* The labels, one per sample (borrowed), or NULL without labels. */
const int64_t *mp_dataset_labels(const mp_dataset_t *ds);
/* The largest label plus one; 0 without labels. */
int64_t mp_dataset_classes(const mp_dataset_t *ds);

/* A recipe's evaluate block (evaluate.c): {"dataset_id": "<id from POST /datasets>",
 * "metric": "top1", "latency_runs": 10}, every field optional. mp_recipe_parse() refuses a bad
 * block naming the field ("evaluate.metric: …"). */
#define MP_EVAL_MAX_LATENCY_RUNS 1000
typedef struct mp_eval_spec {
    int present;         /* 1 when the recipe has an evaluate block */
    char dataset_id[65]; /* 64 lowercase hex digits, or "" when the block names no dataset */
    int latency_runs;    /* timed runs behind each latency median, 1..1000 [10] */
} mp_eval_spec_t;

/* Read the evaluate block out of a recipe's JSON text (len bytes) into *out (present 0 and
 * the defaults when there is none). MP_ERECIPE for text that is not a JSON object or a bad
 * block. Thread-safe. */
int mp_recipe_evaluate(const char *json, size_t len, mp_eval_spec_t *out, mp_errctx_t *err);

/* ---- evaluation runtime (core/runtime/) ---------------------------------------------------- */

/* A session runs an ONNX model (read by mp_onnx_parse / mp_model_load) on float inputs. It is
 * built once for fixed input shapes: every shape is inferred up front, shape arithmetic and
 * constant subgraphs are computed then (constant folding), and one arena holds every tensor a
 * run computes, laid out from their lifetimes — a run allocates nothing. Operators run in
 * topological order; those supported are listed in docs/runtime.md (Conv, ConvTranspose, Gemm,
 * MatMul, the element-wise and shape operators, poolings, BatchNormalization, Resize, Softmax,
 * QuantizeLinear/DequantizeLinear, …); a model with others is refused with MP_EUNSUPPORTED
 * naming every missing operator.
 * Compressed weights run compressed: a Gemm/MatMul/Conv weight read through DequantizeLinear
 * from int8/uint8 codes multiplies int8 codes by int8 activations (quantized per row on the fly;
 * AVX-512 VNNI where the CPU has it), one read through Gather from a codebook runs a lookup
 * kernel, and a float weight with at least 70 % zeros runs as a CSR sparse product; other dense
 * float products go through OpenBLAS sgemm.
 * Threads: OpenBLAS is set to one thread (openblas_set_num_threads(1), process-wide, on the
 * first session), so results do not depend on the core count and the daemon's workers — one
 * session each — do not oversubscribe the cores. A session is used by one thread at a time;
 * distinct sessions, also of one model, run in parallel. The model must outlive its sessions. */
typedef struct mp_session mp_session_t;

/* A session for batch inputs: dim 0 of each input becomes `batch` (>= 1) where the model
 * declares it symbolic or 1; every other dim must be declared. MP_EINVAL for a model without an
 * ONNX graph or a shape that cannot be inferred, MP_EUNSUPPORTED naming operators or attributes
 * the runtime lacks, MP_ETOOBIG / MP_ENOMEM when the tensors do not fit; err says which node. */
int mp_session_new(const mp_model_t *onnx, int batch, mp_session_t **out, mp_errctx_t *err);
/* The same with every input's shape given: ranks[i] dims dims[i][0..ranks[i]) for input i, in
 * the order of mp_session_input_name (n_inputs must be their number). */
int mp_session_new_shapes(const mp_model_t *onnx, size_t n_inputs, const int *ranks,
                          const int64_t *const *dims, mp_session_t **out, mp_errctx_t *err);
void mp_session_free(mp_session_t *s);

/* Run once: inputs[i] holds mp_session_input_elements(s, i) floats in C order, outputs[i] room
 * for mp_session_output_elements(s, i) floats. An input of another element type (e.g. INT64)
 * is converted from the floats given; every output is converted to float. MP_EINVAL for a
 * missing buffer or data the model refuses at run time (a Gather index out of range). */
int mp_session_run(mp_session_t *s, const float *const *inputs, float *const *outputs,
                   mp_errctx_t *err);

/* Inputs and outputs, in the graph's order. Names are borrowed (NULL for i out of range);
 * *_shape writes the dims (room for MP_MAX_DIMS) and returns the rank, or -1 for i out of
 * range; *_elements returns the element count (-1 out of range); mp_session_input_dtype the
 * input's element type (an mp_dtype_t, or -1). */
size_t mp_session_n_inputs(const mp_session_t *s);
size_t mp_session_n_outputs(const mp_session_t *s);
const char *mp_session_input_name(const mp_session_t *s, size_t i);
const char *mp_session_output_name(const mp_session_t *s, size_t i);
int mp_session_input_shape(const mp_session_t *s, size_t i, int64_t *dims);
int mp_session_output_shape(const mp_session_t *s, size_t i, int64_t *dims);
int64_t mp_session_input_elements(const mp_session_t *s, size_t i);
int64_t mp_session_output_elements(const mp_session_t *s, size_t i);
int mp_session_input_dtype(const mp_session_t *s, size_t i);
/* Bytes of the arena (tensors plus the largest workspace of any step). */
size_t mp_session_arena_bytes(const mp_session_t *s);

/* ---- evaluation (evaluate.c) --------------------------------------------------------------- */

/* What a compression cost, measured on a dataset through the evaluation runtime (DESIGN.md,
 * Reports). Both models are ONNX (before: the original; after: the compressed one, e.g. from
 * mp_onnx_apply; NULL to measure before alone, as `modelpress eval` does) with one input taking
 * a sample's values (any shape of that many) and a first output with one row per sample, whose
 * argmax is the prediction. The whole dataset runs at batch MP_EVAL_BATCH (top-1 accuracy when
 * there are labels, top-1 agreement between the models, SNR of the compressed model's outputs
 * against the original's); latencies are medians of latency_runs timed runs after a warm-up, at
 * batch 1 and MP_EVAL_BATCH, on this machine's kernels. *json is a malloc'd JSON object:
 * {"samples", "batch", "latency_runs", "outputs_per_sample", "before": {"accuracy" (null
 * without labels), "latency_ms", "latency_ms_b32"}, and with after: "after": {…same…},
 * "agreement", "output_snr_db" (null for identical outputs), "speedup", "speedup_b32"} (batch 1
 * and batch 32 ratios before/after). MP_EINVAL when the dataset does not fit the model (its
 * message says how), MP_EUNSUPPORTED for what the runtime cannot run, MP_ECANCELED when cancel
 * is set. Uses its own sessions: thread-safe for distinct calls. */
#define MP_EVAL_BATCH 32
typedef struct mp_eval_opts {
    int latency_runs;           /* timed runs per latency, 1..1000 (0: 10) */
    mp_progress_cb progress_cb; /* may be NULL; stage "evaluate", progress 0..1 */
    void *ud;
    const atomic_int *cancel;   /* may be NULL */
} mp_eval_opts_t;
int mp_evaluate(const mp_model_t *before, const mp_model_t *after, const mp_dataset_t *ds,
                const mp_eval_opts_t *opts, char **json, mp_errctx_t *err);
/* The evaluate step of a job: in is the ONNX model mp_pipeline_run ran on, out its result;
 * out's weights are written into in's graph (mp_onnx_apply), both graphs are evaluated as above,
 * and the figures are added to the pipeline's report as "evaluation" (*report_json is replaced
 * by a new malloc'd text; unchanged on failure). */
int mp_evaluate_pipeline(const mp_model_t *in, const mp_model_t *out, const mp_dataset_t *ds,
                         const mp_eval_opts_t *opts, char **report_json, mp_errctx_t *err);

/* ---- kernels ------------------------------------------------------------------------------- */

/* Name of the instruction set the kernels run with: "ref", "avx2" or "avx512". Chosen once from
 * the CPU, or forced with MODELPRESS_ISA=ref|avx2|avx512 (falling back to the best available
 * if the forced one is not supported). */
const char *mp_kern_isa(void);

#ifdef __cplusplus
}
#endif
#endif /* MODELPRESS_H */
