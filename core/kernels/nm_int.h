/* core/kernels/nm_int.h — being written. */
