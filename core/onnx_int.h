/* core/onnx_int.h — being written. */
