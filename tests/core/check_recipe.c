/* tests/core/check_recipe.c — being written. */
int main(void) { return 77; }
