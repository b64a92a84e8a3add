/* tests/core/check_quant.c — being written. */
int main(void) { return 77; }
