/* tests/core/check_kernels.c — being written. */
int main(void) { return 77; }
