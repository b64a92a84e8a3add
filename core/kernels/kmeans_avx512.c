/* core/kernels/kmeans_avx512.c — being written. */
typedef int mp__placeholder_t;
