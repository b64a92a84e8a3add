/* api/api_int.h — being written. */
