/* api/api.h — being written. */
