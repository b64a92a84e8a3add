/* tests/core/check_pipeline.c — being written. */
int main(void) { return 77; }
