/* tests/core/check_onnx.c — being written. */
#include <stdio.h>
int main(void) { fputs("SKIP: being written\n", stderr); return 77; }
