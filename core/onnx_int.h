/* onnx_int.h — what the ONNX reader/writer (onnx.c) shares with the graph rewrites
 * (onnx_rewrite.c) and with mp_model_load's choice by content (safetensors.c).
 *
 * An ONNX model read by mp_onnx_parse() is an mp_model_t whose tensors are the graph's weights
 * and whose format_ctx is an mp__onnx_t: the whole ModelProto as a pb tree (every field kept,
 * so writing it back reproduces the file byte for byte) plus, for each tensor of the model,
 * where in the tree it lives. The tree and the borrowed tensors point into the parsed bytes
 * (the model's mapping, the caller's buffer, or ctx->buf when the ctx owns them).
 */
#ifndef MP_ONNX_INT_H
#define MP_ONNX_INT_H

#include "pb_int.h"

/* The metadata key under which mp_onnx_apply reports structured pruning: a JSON object, per
 * weight with zero output channels, {"removed", "of", "into"} or {"zero_channels", "of",
 * "kept_because"}. */
#define MP_ONNX_CHANNELS_KEY "modelpress.channels"

/* What the reader accepts (docs/onnx.md says why). Every opset from 1 is read and evaluated;
 * mp_onnx_apply writes compressed weights only into graphs of opset MP_ONNX_REWRITE_OPSET_MIN or
 * later, since the nodes it adds (Mul, Sub, Div with numpy broadcasting, Cast with a numeric
 * `to`) mean something else, or nothing, below opset 7. */
#define MP_ONNX_IR_MIN 3
#define MP_ONNX_IR_MAX 10
#define MP_ONNX_OPSET_MIN 1
#define MP_ONNX_OPSET_MAX 18
#define MP_ONNX_REWRITE_OPSET_MIN 7

/* Field numbers of onnx.proto (ONNX 1.x; they never change once published). */
enum {
    ONNX_MODEL_IR_VERSION = 1,
    ONNX_MODEL_PRODUCER_NAME = 2,
    ONNX_MODEL_GRAPH = 7,
    ONNX_MODEL_OPSET_IMPORT = 8,
    ONNX_MODEL_METADATA_PROPS = 14,
    ONNX_OPSET_DOMAIN = 1,
    ONNX_OPSET_VERSION = 2,
    ONNX_ENTRY_KEY = 1, /* StringStringEntryProto */
    ONNX_ENTRY_VALUE = 2,
    ONNX_GRAPH_NODE = 1,
    ONNX_GRAPH_NAME = 2,
    ONNX_GRAPH_INITIALIZER = 5,
    ONNX_GRAPH_INPUT = 11,
    ONNX_GRAPH_OUTPUT = 12,
    ONNX_GRAPH_VALUE_INFO = 13,
    ONNX_GRAPH_SPARSE_INITIALIZER = 15,
    ONNX_NODE_INPUT = 1,
    ONNX_NODE_OUTPUT = 2,
    ONNX_NODE_NAME = 3,
    ONNX_NODE_OP_TYPE = 4,
    ONNX_NODE_ATTRIBUTE = 5,
    ONNX_NODE_DOMAIN = 7,
    ONNX_ATTR_NAME = 1,
    ONNX_ATTR_F = 2,
    ONNX_ATTR_I = 3,
    ONNX_ATTR_S = 4,
    ONNX_ATTR_T = 5,
    ONNX_ATTR_G = 6,
    ONNX_ATTR_INTS = 8,
    ONNX_ATTR_TENSORS = 10,
    ONNX_ATTR_GRAPHS = 11,
    ONNX_ATTR_TYPE = 20,
    ONNX_TENSOR_DIMS = 1,
    ONNX_TENSOR_DATA_TYPE = 2,
    ONNX_TENSOR_SEGMENT = 3,
    ONNX_TENSOR_FLOAT_DATA = 4,
    ONNX_TENSOR_INT32_DATA = 5,
    ONNX_TENSOR_STRING_DATA = 6,
    ONNX_TENSOR_INT64_DATA = 7,
    ONNX_TENSOR_NAME = 8,
    ONNX_TENSOR_RAW_DATA = 9,
    ONNX_TENSOR_DOUBLE_DATA = 10,
    ONNX_TENSOR_UINT64_DATA = 11,
    ONNX_TENSOR_EXTERNAL_DATA = 13,
    ONNX_TENSOR_DATA_LOCATION = 14,
    ONNX_VI_NAME = 1, /* ValueInfoProto */
    ONNX_VI_TYPE = 2,
    ONNX_TYPE_TENSOR = 1,       /* TypeProto.tensor_type */
    ONNX_TTYPE_ELEM_TYPE = 1,   /* TypeProto.Tensor */
    ONNX_TTYPE_SHAPE = 2,
    ONNX_SHAPE_DIM = 1,         /* TensorShapeProto */
    ONNX_DIM_VALUE = 1,
};

/* AttributeProto.AttributeType values used here. */
enum { ONNX_AT_FLOAT = 1, ONNX_AT_INT = 2, ONNX_AT_TENSOR = 4, ONNX_AT_GRAPH = 5, ONNX_AT_INTS = 7 };

/* TensorProto.DataType values with an mp_dtype_t counterpart. */
enum {
    ONNX_FLOAT = 1,
    ONNX_UINT8 = 2,
    ONNX_INT8 = 3,
    ONNX_STRING = 8,
    ONNX_FLOAT16 = 10,
    ONNX_DOUBLE = 11,
};

typedef enum { MP_ONNX_INITIALIZER = 0, MP_ONNX_CONSTANT } mp__onnx_origin_t;

/* Where one tensor of the model lives in the tree. */
typedef struct mp__onnx_weight {
    mp__onnx_origin_t origin;
    mp__pb_msg_t *graph;         /* the GraphProto holding it (the main graph or a subgraph) */
    mp__pb_msg_t *node;          /* the Constant NodeProto, or NULL for an initializer */
    mp__pb_msg_t *tensor;        /* its TensorProto */
    int depth;                   /* 0 in the main graph, +1 per subgraph level */
} mp__onnx_weight_t;

typedef struct mp__onnx {
    mp__pb_msg_t *root;          /* ModelProto */
    mp__pb_msg_t *graph;         /* the main GraphProto (inside root) */
    mp__onnx_weight_t *w;        /* w[i] for model tensor i */
    size_t n_w;
    int64_t ir_version;
    int64_t opset;               /* of the default domain */
    void *buf;                   /* malloc'd bytes the tree borrows, owned here, or NULL */
    const uint8_t *src;          /* the bytes that were parsed (buf, a mapping or the caller's) */
    size_t n_src;
} mp__onnx_t;

/* The ctx of an ONNX model, or NULL for a model of another format; its destructor, which
 * mp_model_free calls through m->format_free. */
mp__onnx_t *mp__onnx_ctx(const mp_model_t *m);
void mp__onnx_ctx_free_cb(void *ctx);

/* Parse an ONNX image; with owned_buf != 0 the model takes buf (malloc'd), even on failure. */
int mp__onnx_parse_buf(const void *buf, size_t n_bytes, int owned_buf, mp_model_t **out,
                       mp_errctx_t *err);

/* 1 if the first bytes look like a ModelProto (a known field of it, well-formed), else 0. */
int mp__onnx_sniff(const void *buf, size_t n_bytes);
/* mp_model_load's ONNX branch: parse a mapping and hand it to the model, or unmap it. */
int mp__onnx_parse_mapped(void *map, size_t n_bytes, mp_model_t **out, mp_errctx_t *err);

/* One TensorProto, validated and decoded by mp__onnx_read_tensor: is_weight 0 for a STRING
 * tensor (nothing else set); otherwise dtype, shape and n_bytes == elements x element size, and
 * data either borrowed from the parsed bytes (raw_data aligned for its type) or == owned, a
 * malloc'd copy or decoding of the typed fields that the caller frees. */
typedef struct mp__onnx_tensor {
    int is_weight;
    mp_dtype_t dt;
    int n_dims;
    int64_t shape[MP_MAX_DIMS];
    const void *data;
    size_t n_bytes;
    void *owned;
} mp__onnx_tensor_t;

/* Every check of the reader on one TensorProto (docs/onnx.md, "What is refused"): external
 * data refused without touching the filesystem, a known data type, no negative dims, at most
 * MP_MAX_DIMS, raw_data of exactly the right length or typed values of the right count, each in
 * range. name names the tensor in messages. */
int mp__onnx_read_tensor(const mp__pb_msg_t *tp, const char *name, mp__onnx_tensor_t *r,
                         mp_errctx_t *err);

/* mp_dtype_t of an ONNX data type, or -1 when it has none. */
int mp__onnx_dtype(int64_t onnx_type);
/* ONNX data type of an mp_dtype_t. */
int mp__onnx_type_of(mp_dtype_t dt);

/* Strings of a node: its op_type (borrowed into s, at most cap-1 bytes); 1 if the node is the
 * standard Constant. */
int mp__onnx_node_is(const mp__pb_msg_t *node, const char *op_type);
/* A node's attribute by name, or NULL. */
mp__pb_msg_t *mp__onnx_node_attr(mp__pb_msg_t *node, const char *name);

#endif /* MP_ONNX_INT_H */
