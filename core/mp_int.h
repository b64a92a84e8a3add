/* mp_int.h — internals shared by the files of libmodelpress (never installed).
 *
 * Error helpers: mp__err_set() fills an mp_errctx_t (which may be NULL) and returns the code,
 * so a failure is one line: `return mp__err_set(err, MP_EFORMAT, "tensor %s: ...", name);`.
 * MP_RETURN_IF and MP_GOTO_IF do the same inside a condition, the latter for functions with a
 * single exit behind `out:` that must release what they hold.
 */
#ifndef MP_INT_H
#define MP_INT_H

#include "modelpress.h"

#include <stdarg.h>

#if defined(__GNUC__)
#define MP__PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define MP__PRINTF(a, b)
#endif

/* Fill err (if not NULL) with code and a formatted message; returns code. */
int mp__err_set(mp_errctx_t *err, int code, const char *fmt, ...) MP__PRINTF(3, 4);

#define MP_RETURN_IF(cond, code, ...)                                                              \
    do {                                                                                           \
        if (cond) {                                                                                \
            return mp__err_set(err, (code), __VA_ARGS__);                                          \
        }                                                                                          \
    } while (0)

/* Sets rc and jumps to out; the function declares `int rc` and an `out:` label. */
#define MP_GOTO_IF(cond, code, ...)                                                                \
    do {                                                                                           \
        if (cond) {                                                                                \
            rc = mp__err_set(err, (code), __VA_ARGS__);                                            \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

/* Overflow-checked size arithmetic: 0 on success, -1 if the result does not fit. */
static inline int mp__mul_size(size_t a, size_t b, size_t *r)
{
    return __builtin_mul_overflow(a, b, r) ? -1 : 0;
}
static inline int mp__add_size(size_t a, size_t b, size_t *r)
{
    return __builtin_add_overflow(a, b, r) ? -1 : 0;
}

/* Element and byte count of a shape (model.c): 0 on success; -1 for an invalid dtype or n_dims,
 * a negative dim, an element count above INT64_MAX or a byte count that does not fit size_t.
 * n_elements and n_bytes may be NULL. */
int mp__shape_bytes(mp_dtype_t dt, int n_dims, const int64_t *shape, int64_t *n_elements,
                    size_t *n_bytes);

/* Files (safetensors.c), shared by the format readers and writers. mp__map_file maps path
 * read-only (*map NULL for an empty file; MP_ENOENT, MP_EIO, MP_ETOOBIG or MP_ENOMEM with the
 * path in err); mp__write_all writes all n bytes or fails naming path; mp__io_fail turns errno
 * e into MP_ENOSPC or MP_EIO with "path: what: reason" in err. */
int mp__map_file(const char *path, void **map, size_t *n_bytes, mp_errctx_t *err);
int mp__write_all(int fd, const void *buf, size_t n, const char *path, mp_errctx_t *err);
int mp__io_fail(mp_errctx_t *err, const char *path, const char *what, int e);

#endif /* MP_INT_H */
