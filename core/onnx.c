/* core/onnx.c — being written. */
typedef int mp__placeholder_t;
