/* daemon/dmn_int.h — being written. */
