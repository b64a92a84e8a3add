/* tests/core/check_prune.c — being written. */
int main(void) { return 77; }
