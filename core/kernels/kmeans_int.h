/* core/kernels/kmeans_int.h — being written. */
