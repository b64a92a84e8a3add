/* core/recipe_int.h — being written. */
