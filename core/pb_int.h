/* core/pb_int.h — being written. */
