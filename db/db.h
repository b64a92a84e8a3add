/* db/db.h — being written. */
