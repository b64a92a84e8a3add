/* core/kernels/qbits_int.h — being written. */
