/* tests/db/check_db.c — being written. */
int main(void) { return 77; }
