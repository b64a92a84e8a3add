/* core/kernels/nm_avx2.c — being written. */
typedef int mp__placeholder_t;
