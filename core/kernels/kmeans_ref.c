/* core/kernels/kmeans_ref.c — being written. */
typedef int mp__placeholder_t;
