/* tests/api/check_api.c — being written. */
int main(void) { return 77; }
