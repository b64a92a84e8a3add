/* rt_int.h — the evaluation runtime's internals, shared by the files of core/runtime/.
 *
 * A session is built once from an ONNX model (mp_session_new) and then run many times:
 * 1. rt_graph.c turns the main graph's nodes into rt_node_t and every name into an rt_val_t
 *    (graph inputs, initializers, node outputs), sorts the nodes topologically, recognises the
 *    compressed weights (DequantizeLinear of int8 codes, Gather from a codebook) that a
 *    Gemm/MatMul/Conv can consume directly, and keeps only the nodes the outputs need.
 * 2. rt_session.c calls each node's prep in order: it checks attributes and input types, infers
 *    the output shapes (all known up front: the batch is fixed at creation) and the workspace
 *    the node needs. A node whose inputs are all constant is run right there (constant folding:
 *    shape arithmetic, Constant, folded transposes), its outputs becoming constants.
 * 3. rt_plan.c gives every remaining tensor an offset in one arena from the steps that define
 *    and last read it, so that two tensors alive at the same step never overlap; views
 *    (Reshape, Flatten, Squeeze, Unsqueeze, Identity) share their source's bytes and extend its
 *    lifetime. One workspace region after the tensors serves every step in turn.
 * 4. mp_session_run binds the inputs, runs the steps in order and copies the outputs out; nothing
 *    is allocated while it runs.
 * Invariants: a value's shape never changes after prep; an op's run never writes its inputs;
 * run functions return 0 or a negative MP_E* code (index out of range in Gather), never abort.
 */
#ifndef MP_RT_INT_H
#define MP_RT_INT_H

#include "../onnx_int.h"

#include <stdint.h>

/* No single tensor may be larger than this; a model asking for more is MP_ETOOBIG. */
#define RT_MAX_TENSOR_BYTES ((size_t)1 << 34)
/* Alignment of every tensor in the arena (a cache line, also enough for AVX-512 loads). */
#define RT_ALIGN 64

typedef struct mp_session rt_sess_t;
typedef struct rt_node rt_node_t;

typedef struct rt_val {
    char *name;                  /* owned */
    mp_dtype_t dt;
    int rank;
    int64_t dims[MP_MAX_DIMS];
    int64_t n;                   /* elements */
    size_t bytes;
    int known;                   /* shape and type inferred */
    int input;                   /* index among the session's inputs, or -1 */
    int output;                  /* index among the session's outputs, or -1 (first one) */
    const void *cdata;           /* the bytes of a constant (initializer or folded), else NULL */
    void *cowned;                /* == cdata when the session owns them */
    int producer;                /* node index, or -1 */
    int alias;                   /* a view: the value whose bytes it shares, else -1 */
    int n_reads;                 /* reads by live steps (views count as reads of their root) */
    int def, last;               /* first and last step it is alive at (plan) */
    size_t off;                  /* arena offset (plan), when in_arena */
    int in_arena;
} rt_val_t;

typedef struct rt_exec {
    const rt_sess_t *s;
    void **ptr;                  /* data of every value for this run */
    void *ws;                    /* the node's workspace (ws_bytes) */
} rt_exec_t;

typedef struct rt_op {
    const char *name;
    /* Check attributes and inputs, set every output's shape and type, n->ws_bytes, n->view. */
    int (*prep)(rt_sess_t *s, rt_node_t *n, mp_errctx_t *err);
    /* Compute the outputs. Views do nothing here (the executor points them at their source). */
    int (*run)(const rt_exec_t *e, const rt_node_t *n, mp_errctx_t *err);
    /* Frees n->p when it holds more than one malloc'd block (else plain free). */
    void (*free_p)(void *p);
    /* The outputs depend on the inputs' shapes only (Shape): always computed at creation. */
    int shape_only;
} rt_op_t;

/* Where a Gemm/MatMul/Conv weight comes from when it is stored compressed. */
typedef enum { RT_W_PLAIN = 0, RT_W_QUANT, RT_W_CODEBOOK } rt_wkind_t;

typedef struct rt_wsrc {
    rt_wkind_t kind;
    int w;                       /* the weight value as the graph names it (float) */
    int q, scale, zp;            /* QUANT: DequantizeLinear's inputs (zp may be -1) */
    int64_t axis;                /* QUANT: its axis attribute */
    int codebook, indices;       /* CODEBOOK: Gather's data and (integer) indices */
} rt_wsrc_t;

struct rt_node {
    const rt_op_t *op;
    mp__pb_msg_t *pb;            /* the NodeProto (borrowed from the model) */
    char op_type[48];
    char label[112];             /* "op_type 'name'" or "op_type #index", for messages */
    int *in, n_in;               /* value ids; -1 for an absent optional input */
    int *out, n_out;
    void *p;                     /* op parameters, owned */
    size_t ws_bytes;
    int view;                    /* output 0 shares input 0's bytes */
    int needed;                  /* the outputs depend on it */
    int folded;                  /* run at creation; its outputs are constants */
    rt_wsrc_t wsrc;              /* Gemm/MatMul/Conv: a compressed weight read directly */
    int relu;                    /* Conv/Gemm: a Relu fused into output 0 (rt_session.c) */
    int pool;                    /* Conv: 1 + the id of a 2x2 MaxPool it runs per image, else 0 */
    int by_step;                 /* 1 + the step that computes this node's outputs (a fused
                                  * MaxPool, run by its Conv), else 0; the plan defines them
                                  * there */
};

struct mp_session {
    const mp_model_t *model;
    mp__onnx_t *ctx;
    int64_t opset;
    rt_val_t *vals;
    size_t n_vals, cap_vals;
    void *index;                 /* name -> value id (rt_graph.c) */
    rt_node_t *nodes;
    size_t n_nodes;
    int *order;                  /* node ids in topological order */
    size_t n_order;
    int *steps;                  /* node ids run by mp_session_run, in order */
    size_t n_steps;
    int *inputs, *outputs;       /* value ids */
    size_t n_inputs, n_outputs;
    mp__pb_msg_t **priv;         /* messages parsed here (not cached in the shared model) */
    size_t n_priv;
    /* plan */
    uint8_t *arena;
    size_t arena_bytes;          /* tensors + workspace */
    size_t tensor_bytes;         /* where the workspace starts */
    size_t ws_bytes;
    void **ptr;
    void *in_conv;               /* staging for inputs of a type other than F32 */
    int lin_counts[4];           /* Gemm/MatMul/Conv steps by rt_lin_kind_t */
    /* a branch of an If (rt_if.c): the GraphProto it runs and the session whose values it
     * reads by name; mirror[k] is a value of this session standing for the enclosing session's
     * value mirror_src[k] (same shape, same constant bytes, else bound before each run) */
    mp__pb_msg_t *graph;         /* NULL for the main graph */
    const rt_sess_t *parent;
    int *mirror, *mirror_src;
    size_t n_mirror;
};

/* 1 if node n is a MaxPool a Conv can run per image (rt_ops_nn.c): F32, 2x2 windows at stride
 * 2 inside a 2-D input, no Indices output. */
int mp__rt_pool2_fusable(const rt_node_t *n);

/* Relu as the Relu operator computes it (x > 0 ? x : 0; NaN and -0 give +0), y may be x. */
void mp__rt_relu(float *y, const float *x, int64_t n);

/* ---- values (rt_graph.c) ------------------------------------------------------------------ */

/* Set v's type and shape; MP_ETOOBIG (naming what) when it is larger than the limit or
 * overflows. */
int mp__rt_set_shape(rt_val_t *v, mp_dtype_t dt, int rank, const int64_t *dims, const char *what,
                     mp_errctx_t *err);
/* Same, for output i of node n. */
int mp__rt_out_shape(rt_sess_t *s, rt_node_t *n, int i, mp_dtype_t dt, int rank,
                     const int64_t *dims, mp_errctx_t *err);
/* Build the graph of s->model: values, nodes, order, compressed-weight patterns, liveness. */
int mp__rt_graph_build(rt_sess_t *s, mp_errctx_t *err);
/* The value id of a name, or -1. */
int mp__rt_find(const rt_sess_t *s, const char *name);
/* The value id of a name in s (*id), or -1 when neither s nor the enclosing session defines
 * it; a name of the enclosing session gets a mirror value in s. (A nested branch finds what
 * it reads from further out in its parent: the parent's If listed it, so it is mirrored.) */
int mp__rt_resolve(rt_sess_t *s, const char *name, int *id, mp_errctx_t *err);
/* A field's payload as a message: the cached sub-message, or one parsed privately (kept by the
 * session), so the shared model is never written. */
int mp__rt_msg(rt_sess_t *s, mp__pb_field_t *f, int depth, const char *what, mp__pb_msg_t **out,
               mp_errctx_t *err);

/* ---- attributes and tensors (rt_tensor.c) ------------------------------------------------- */

/* The node's attribute `name`, or NULL. */
const mp__pb_msg_t *mp__rt_attr(const rt_node_t *n, const char *name);
int64_t mp__rt_attr_int(const rt_node_t *n, const char *name, int64_t def);
float mp__rt_attr_float(const rt_node_t *n, const char *name, float def);
/* Repeated ints: *count values (at most cap; more is MP_EUNSUPPORTED). Returns 1 if present,
 * 0 if absent (count 0), or a negative code. */
int mp__rt_attr_ints(const rt_node_t *n, const char *name, int64_t *out, int cap, int *count,
                     mp_errctx_t *err);
/* A float list, malloc'd (*out) with *count values; 1 if present, 0 if absent. */
int mp__rt_attr_floats(const rt_node_t *n, const char *name, float **out, int64_t *count,
                       mp_errctx_t *err);
/* A string attribute copied into buf (cut to cap-1); 1 if present, 0 if absent (buf = def). */
int mp__rt_attr_str(const rt_node_t *n, const char *name, char *buf, size_t cap, const char *def);

/* A decoded TensorProto. */
typedef struct rt_tensor {
    mp_dtype_t dt;
    int rank;
    int64_t dims[MP_MAX_DIMS];
    int64_t n;
    size_t bytes;
    void *data;                  /* malloc'd, bytes long (at least 1 byte) */
    char *name;                  /* malloc'd, may be "" */
} rt_tensor_t;

/* Decode a TensorProto (raw_data or the typed fields; external data and strings refused). */
int mp__rt_tensor_decode(const mp__pb_msg_t *tp, rt_tensor_t *t, mp_errctx_t *err);
/* Parse a serialized TensorProto (a conformance .pb file) and decode it. */
int mp__rt_tensor_parse(const void *buf, size_t n, rt_tensor_t *t, mp_errctx_t *err);
void mp__rt_tensor_cleanup(rt_tensor_t *t);

/* Element conversions between any two runtime types (via double; to integers: truncated toward
 * zero and saturated, NaN to 0; to bool: nonzero). 0, or MP_EUNSUPPORTED for a type pair the
 * runtime has no conversion for. */
int mp__rt_convert(mp_dtype_t to, void *dst, mp_dtype_t from, const void *src, int64_t n);
/* 1 if the runtime can hold values of this type. */
int mp__rt_dtype_ok(mp_dtype_t dt);
/* Read element i of an integer (I8..U64) or float tensor as int64 (floats truncated). */
int64_t mp__rt_get_i64(mp_dtype_t dt, const void *p, int64_t i);

/* ---- ops (rt_ops_*.c) ---------------------------------------------------------------------- */

/* The op of an op_type in the default domain, or NULL. */
const rt_op_t *mp__rt_op_find(const char *op_type);
/* Every op_type the runtime claims, NULL-terminated, in alphabetical order. */
extern const char *const mp__rt_claimed[];

extern const rt_op_t mp__rt_ops_elem[];
extern const rt_op_t mp__rt_ops_nn[];
extern const rt_op_t mp__rt_ops_shape[];

/* ---- control flow (rt_if.c) ---------------------------------------------------------------- */

/* If: each branch is a session of its own over the branch's GraphProto (built at prep, with
 * the enclosing values it reads as mirrors); a condition constant at creation builds and runs
 * only the taken branch, and when the branch's inputs are constant too the If is folded. */
extern const rt_op_t mp__rt_op_if;
/* Append to the inputs of If node n every value of s its branches read (at any depth), so the
 * enclosing graph orders, keeps and plans them like any other input. */
int mp__rt_if_outer(rt_sess_t *s, rt_node_t *n, mp_errctx_t *err);
/* Prepare, plan and allocate a session whose graph is built (rt_session.c). */
int mp__rt_session_finish(rt_sess_t *s, mp_errctx_t *err);
/* Run the steps of a session whose inputs are bound (rt_session.c). */
int mp__rt_steps_run(rt_sess_t *s, mp_errctx_t *err);

/* Shorthands for prep and run. */
#define RT_IN(s, n, i) (&(s)->vals[(n)->in[(i)]])
#define RT_OUT(s, n, i) (&(s)->vals[(n)->out[(i)]])
#define RT_HAS(n, i) ((n)->n_in > (i) && (n)->in[(i)] >= 0)
#define RT_PTR(e, n, i) ((e)->ptr[(n)->in[(i)]])
#define RT_OPTR(e, n, i) ((e)->ptr[(n)->out[(i)]])

/* Normalise an axis in [-rank, rank) to [0, rank); MP_EINVAL naming the node when outside. */
int mp__rt_axis(const rt_node_t *n, int64_t axis, int rank, int *out, mp_errctx_t *err);
/* The values of a constant integer input (at most cap) into out; MP_EUNSUPPORTED when the input
 * is not known at creation (a shape that depends on the data). */
int mp__rt_const_ints(const rt_sess_t *s, const rt_node_t *n, int i, int64_t *out, int cap,
                      int *count, mp_errctx_t *err);
/* A constant scalar input as float (first element); def when the input is absent. */
int mp__rt_const_float(const rt_sess_t *s, const rt_node_t *n, int i, float def, float *out,
                       mp_errctx_t *err);
/* The inputs must be of type dt (or any runtime type when dt is MP_DT_COUNT). */
int mp__rt_need_type(const rt_sess_t *s, const rt_node_t *n, int i, mp_dtype_t dt,
                     mp_errctx_t *err);

/* Product of dims [from, to). */
static inline int64_t rt_prod(const int64_t *d, int from, int to)
{
    int64_t p = 1;
    for (int i = from; i < to; i++) {
        p *= d[i];
    }
    return p;
}

/* Step a multi-index over dims, the last dim fastest (back to all zeros after the last). */
static inline void rt_next(int64_t *idx, const int64_t *dims, int rank)
{
    for (int d = rank - 1; d >= 0; d--) {
        if (++idx[d] < dims[d]) {
            return;
        }
        idx[d] = 0;
    }
}

/* ---- dense and compressed linear algebra (rt_linear.c) ----------------------------------- */

/* One thread for OpenBLAS, once per process (see mp_session_new in modelpress.h). */
void mp__rt_blas_init(void);
/* C[M,N] = A[M,K] (or A^T) x B[K,N] (or B^T) + beta C, row-major, through cblas_sgemm. */
void mp__rt_sgemm(int ta, int tb, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                  const float *B, int64_t ldb, float beta, float *C, int64_t ldc);

/* A linear map y[M,N] = x[M,K] W^T (+ bias) whose W[N,K] is prepared once for the fastest
 * kernel its storage allows: int8 codes (VNNI), CSR when mostly zeros, codebook indices, or
 * dense F32 through sgemm. */
typedef enum { RT_LIN_DENSE = 0, RT_LIN_INT8, RT_LIN_CSR, RT_LIN_CODEBOOK } rt_lin_kind_t;

typedef struct rt_lin rt_lin_t;

/* Prepare W from the weight source of node n: the stored matrix is [K,N] when k_major (MatMul's
 * B, Gemm's B without transB), else [N,K] (Gemm transB, Conv's [M, C/g*kh*kw]); groups are
 * stacked along N (n_groups x N rows). Dense constant weights become CSR when at least
 * RT_CSR_MIN_SPARSITY of them are zero; a dense weight that is not constant is passed to each
 * apply (w_rt). Counts the kind chosen in s->lin_counts. */
#define RT_CSR_MIN_SPARSITY 0.70
int mp__rt_lin_prepare(rt_sess_t *s, const rt_node_t *n, int k_major, int64_t N, int64_t K,
                       int n_groups, rt_lin_t **lin, mp_errctx_t *err);
/* The weight of node n as dense floats: borrowed constant data, or expanded from its compressed
 * source into *owned (malloc'd, freed by the caller); NULL with 0 when it is read at run time. */
int mp__rt_weight_dense(const rt_sess_t *s, const rt_node_t *n, const float **w, float **owned,
                        mp_errctx_t *err);
void mp__rt_lin_free(rt_lin_t *lin);
rt_lin_kind_t mp__rt_lin_kind(const rt_lin_t *lin);
/* Workspace for rows rows of x (per call of mp__rt_lin_apply). */
size_t mp__rt_lin_ws_bytes(const rt_lin_t *lin, int64_t rows);
/* Y = X[rows,K] W_g^T (+ bias) for group g. X is x[r*ldx + k], or x[k*ldx + r] when xt
 * (im2col's [K, pixels]); Y is written y[r*ldy + n], or y[n*ldy + r] when yt (Conv's
 * [M, pixels] output). bias (N values) may be NULL. ws: mp__rt_lin_ws_bytes(lin, rows). */
void mp__rt_lin_apply(const rt_lin_t *lin, const float *w_rt, int g, int64_t rows,
                      const float *x, int64_t ldx, int xt, float *y, int64_t ldy, int yt,
                      const float *bias, void *ws);
/* 1 when the kernel wants X as rows (xt = 0 avoids a transpose), 0 when columns suit it. */
int mp__rt_lin_wants_rows(const rt_lin_t *lin);
/* The shape and type of node n's weight (input 1), wherever it is stored. */
void mp__rt_weight_shape(const rt_sess_t *s, const rt_node_t *n, int *rank, int64_t *dims);

/* For tests: 0 when no two tensors alive at a common step overlap in the arena and each lies
 * inside it; else -1 with the two names in err. */
int mp__rt_plan_check(const rt_sess_t *s, mp_errctx_t *err);
/* mp_session_new and mp_session_new_shapes in one (batch used when ranks is NULL); values[i],
 * when not NULL, makes input i a constant of the session holding those bytes (its own type), so
 * shapes that depend on it are known up front (the conformance driver binds integer inputs). */
int mp__rt_session_new(const mp_model_t *onnx, int batch, size_t n_given, const int *ranks,
                       const int64_t *const *dims, const void *const *values,
                       mp_session_t **out, mp_errctx_t *err);
/* The memory plan (rt_plan.c). */
int mp__rt_plan(rt_sess_t *s, mp_errctx_t *err);

#endif /* MP_RT_INT_H */
