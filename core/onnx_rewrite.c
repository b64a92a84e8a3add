/* core/onnx_rewrite.c — being written. */
typedef int mp__placeholder_t;
