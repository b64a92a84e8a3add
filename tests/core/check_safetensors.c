/* tests/core/check_safetensors.c — being written. */
int main(void) { return 77; }
