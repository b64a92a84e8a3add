/* core/huffman_int.h — being written. */
