/* model.c — dtypes, tensors and the model container every format reader and writer shares.
 *
 * A model is an ordered list of named tensors plus string metadata. Invariants kept by every
 * function here, so the rest of the core can rely on them without checking again:
 * - tensor names are non-empty, unique and NUL-terminated;
 * - 0 <= n_dims <= MP_MAX_DIMS, every dim >= 0, unused dims are 0;
 * - n_bytes == product(shape) * mp_dtype_size(dtype), computed without overflow, and the
 *   element count fits int64_t;
 * - data is never NULL (a tensor without bytes points at a static empty object), and `owned`
 *   is either NULL or the malloc'd block behind data.
 * Name lookup goes through a small open-addressing hash index (m->name_index) so that adding
 * or finding each of a model's thousands of tensors costs O(1), not a scan; a model whose
 * tensor array was changed behind our back is still answered correctly by a linear scan.
 */
#include "mp_int.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* ---- dtypes ------------------------------------------------------------------------------ */

static const struct {
    const char *name;
    size_t size;
    int is_float;
} dtypes[MP_DT_COUNT] = {
    [MP_DT_F32] = {"F32", 4, 1},   [MP_DT_F16] = {"F16", 2, 1}, [MP_DT_BF16] = {"BF16", 2, 1},
    [MP_DT_F64] = {"F64", 8, 1},   [MP_DT_I8] = {"I8", 1, 0},   [MP_DT_U8] = {"U8", 1, 0},
    [MP_DT_I16] = {"I16", 2, 0},   [MP_DT_U16] = {"U16", 2, 0}, [MP_DT_I32] = {"I32", 4, 0},
    [MP_DT_U32] = {"U32", 4, 0},   [MP_DT_I64] = {"I64", 8, 0}, [MP_DT_U64] = {"U64", 8, 0},
    [MP_DT_BOOL] = {"BOOL", 1, 0},
};

static int dtype_valid(mp_dtype_t dt)
{
    /* Compared as unsigned so that a negative value cast into the enum is refused too. */
    return (unsigned)dt < (unsigned)MP_DT_COUNT;
}

size_t mp_dtype_size(mp_dtype_t dt)
{
    return dtype_valid(dt) ? dtypes[dt].size : 0;
}

const char *mp_dtype_name(mp_dtype_t dt)
{
    return dtype_valid(dt) ? dtypes[dt].name : "?";
}

int mp_dtype_from_name(const char *name)
{
    if (name == NULL) {
        return -1;
    }
    for (int i = 0; i < MP_DT_COUNT; i++) {
        if (strcmp(name, dtypes[i].name) == 0) {
            return i;
        }
    }
    return -1;
}

int mp_dtype_is_float(mp_dtype_t dt)
{
    return dtype_valid(dt) ? dtypes[dt].is_float : 0;
}

int mp__shape_bytes(mp_dtype_t dt, int n_dims, const int64_t *shape, int64_t *n_elements,
                    size_t *n_bytes)
{
    uint64_t count = 1;
    size_t bytes;

    if (!dtype_valid(dt) || n_dims < 0 || n_dims > MP_MAX_DIMS || (n_dims > 0 && !shape)) {
        return -1;
    }
    for (int i = 0; i < n_dims; i++) {
        if (shape[i] < 0 || __builtin_mul_overflow(count, (uint64_t)shape[i], &count)) {
            return -1;
        }
    }
    /* The element count must fit int64_t (mp_tensor_elements) and the byte count size_t. */
    if (count > (uint64_t)INT64_MAX || count > SIZE_MAX ||
        mp__mul_size((size_t)count, dtypes[dt].size, &bytes) != 0) {
        return -1;
    }
    if (n_elements) {
        *n_elements = (int64_t)count;
    }
    if (n_bytes) {
        *n_bytes = bytes;
    }
    return 0;
}

int64_t mp_tensor_elements(const mp_tensor_t *t)
{
    int64_t n;

    if (t == NULL || mp__shape_bytes(t->dtype, t->n_dims, t->shape, &n, NULL) != 0) {
        return -1;
    }
    return n;
}

/* ---- name index --------------------------------------------------------------------------- */

/* Open addressing with linear probing; a slot holds a tensor index + 1 (0 = empty). The table
 * is kept at most half full and rebuilt at twice the size when it would pass that. */
typedef struct name_index {
    size_t n_slots;   /* a power of two */
    size_t n_indexed; /* how many tensors (a prefix of m->tensors) are in the table */
    size_t slots[];
} name_index_t;

static uint64_t hash_name(const char *s)
{
    uint64_t h = 0xcbf29ce484222325u; /* FNV-1a */

    for (; *s; s++) {
        h = (h ^ (unsigned char)*s) * 0x100000001b3u;
    }
    return h;
}

/* The index when it describes every tensor of m, else NULL (callers then scan). */
static const name_index_t *index_of(const mp_model_t *m)
{
    const name_index_t *ix = m->name_index;

    return ix && ix->n_indexed == m->n_tensors ? ix : NULL;
}

static size_t *index_probe(const mp_model_t *m, const name_index_t *ix, const char *name)
{
    size_t mask = ix->n_slots - 1;
    size_t i = (size_t)hash_name(name) & mask;

    for (;;) {
        size_t v = ix->slots[i];

        if (v == 0 || strcmp(m->tensors[v - 1].name, name) == 0) {
            return (size_t *)&ix->slots[i];
        }
        i = (i + 1) & mask;
    }
}

/* Make the index hold all n_tensors tensors plus room for one more. MP_ENOMEM on failure,
 * leaving the model as it was. */
static int index_reserve(mp_model_t *m)
{
    name_index_t *ix = m->name_index;
    size_t want = m->n_tensors + 1;
    size_t n_slots = 16;
    size_t bytes;

    if (ix && ix->n_indexed == m->n_tensors && want <= ix->n_slots / 2) {
        return 0;
    }
    while (n_slots / 2 < want) {
        if (mp__mul_size(n_slots, 2, &n_slots) != 0) {
            return MP_ENOMEM;
        }
    }
    if (mp__mul_size(n_slots, sizeof(size_t), &bytes) != 0 ||
        mp__add_size(bytes, sizeof(name_index_t), &bytes) != 0) {
        return MP_ENOMEM;
    }
    ix = calloc(1, bytes);
    if (ix == NULL) {
        return MP_ENOMEM;
    }
    ix->n_slots = n_slots;
    for (size_t t = 0; t < m->n_tensors; t++) {
        *index_probe(m, ix, m->tensors[t].name) = t + 1;
    }
    ix->n_indexed = m->n_tensors;
    free(m->name_index);
    m->name_index = ix;
    return 0;
}

const mp_tensor_t *mp_model_find(const mp_model_t *m, const char *name)
{
    const name_index_t *ix;
    size_t v;

    if (m == NULL || name == NULL) {
        return NULL;
    }
    ix = index_of(m);
    if (ix) {
        v = *index_probe(m, ix, name);
        return v ? &m->tensors[v - 1] : NULL;
    }
    for (size_t i = 0; i < m->n_tensors; i++) {
        if (strcmp(m->tensors[i].name, name) == 0) {
            return &m->tensors[i];
        }
    }
    return NULL;
}

/* ---- the model ---------------------------------------------------------------------------- */

/* What a tensor without bytes points at, so that data is never NULL (memcpy and friends
 * forbid NULL even for 0 bytes). */
static const max_align_t empty_data;

mp_model_t *mp_model_new(void)
{
    return calloc(1, sizeof(mp_model_t));
}

void mp_model_free(mp_model_t *m)
{
    if (m == NULL) {
        return;
    }
    /* the format's context may point into the mapping: it goes first */
    if (m->format_free != NULL) {
        m->format_free(m->format_ctx);
    }
    for (size_t i = 0; i < m->n_tensors; i++) {
        free(m->tensors[i].name);
        free(m->tensors[i].owned);
    }
    free(m->tensors);
    for (size_t i = 0; i < m->n_meta; i++) {
        free(m->meta_keys[i]);
        free(m->meta_values[i]);
    }
    free(m->meta_keys);
    free(m->meta_values);
    free(m->name_index);
    if (m->map) {
        munmap(m->map, m->map_bytes);
    }
    free(m);
}

typedef enum { ADD_COPY, ADD_TAKE, ADD_REF } add_mode_t;

/* Double the capacity of an array of n elements of size elem, for one more. */
static int grow(void **arr, size_t *cap, size_t n, size_t elem)
{
    size_t new_cap;
    size_t bytes;
    void *p;

    if (n < *cap) {
        return 0;
    }
    new_cap = *cap ? *cap : 8;
    while (new_cap <= n) {
        if (mp__mul_size(new_cap, 2, &new_cap) != 0) {
            return MP_ENOMEM;
        }
    }
    if (mp__mul_size(new_cap, elem, &bytes) != 0) {
        return MP_ENOMEM;
    }
    p = realloc(*arr, bytes);
    if (p == NULL) {
        return MP_ENOMEM;
    }
    *arr = p;
    *cap = new_cap;
    return 0;
}

/* The one implementation behind _add, _add_take and _add_ref. With ADD_TAKE, data is freed on
 * failure (the caller handed it over). */
static int add_tensor(mp_model_t *m, const char *name, mp_dtype_t dt, int n_dims,
                      const int64_t *shape, const void *data, size_t n_bytes, add_mode_t mode,
                      mp_errctx_t *err)
{
    mp_tensor_t *t;
    size_t need;
    char *name_copy = NULL;
    void *owned = NULL;
    size_t *slot;
    int rc = 0;

    MP_GOTO_IF(m == NULL || name == NULL, MP_EINVAL, "mp_model_add: no model or no name");
    MP_GOTO_IF(name[0] == '\0', MP_EINVAL, "tensor name is empty");
    MP_GOTO_IF(!dtype_valid(dt), MP_EINVAL, "tensor '%s': dtype %d is not a dtype", name, (int)dt);
    MP_GOTO_IF(n_dims < 0 || n_dims > MP_MAX_DIMS, MP_EINVAL,
               "tensor '%s': %d dimensions, must be 0 to %d", name, n_dims, MP_MAX_DIMS);
    MP_GOTO_IF(n_dims > 0 && shape == NULL, MP_EINVAL, "tensor '%s': no shape", name);
    for (int i = 0; i < n_dims; i++) {
        MP_GOTO_IF(shape[i] < 0, MP_EINVAL, "tensor '%s': dim %d is %lld, negative", name, i,
                   (long long)shape[i]);
    }
    MP_GOTO_IF(mp__shape_bytes(dt, n_dims, shape, NULL, &need) != 0, MP_EINVAL,
               "tensor '%s': element count times %zu bytes of %s overflows 64 bits", name,
               dtypes[dt].size, dtypes[dt].name);
    MP_GOTO_IF(n_bytes != need, MP_EINVAL,
               "tensor '%s': %zu bytes given but its shape of %s needs %zu", name, n_bytes,
               dtypes[dt].name, need);
    MP_GOTO_IF(data == NULL && n_bytes > 0, MP_EINVAL, "tensor '%s': no data", name);

    rc = index_reserve(m);
    MP_GOTO_IF(rc != 0, rc, "tensor '%s': out of memory", name);
    slot = index_probe(m, m->name_index, name);
    MP_GOTO_IF(*slot != 0, MP_EINVAL, "tensor '%s': the model already has a tensor of that name",
               name);
    rc = grow((void **)&m->tensors, &m->cap_tensors, m->n_tensors, sizeof(mp_tensor_t));
    MP_GOTO_IF(rc != 0, rc, "tensor '%s': out of memory", name);

    name_copy = strdup(name);
    MP_GOTO_IF(name_copy == NULL, MP_ENOMEM, "tensor '%s': out of memory", name);
    if (mode == ADD_TAKE) {
        owned = (void *)data;
    } else if (mode == ADD_COPY && n_bytes > 0) {
        owned = malloc(n_bytes);
        MP_GOTO_IF(owned == NULL, MP_ENOMEM, "tensor '%s': out of memory for %zu bytes", name,
                   n_bytes);
        memcpy(owned, data, n_bytes);
    }

    t = &m->tensors[m->n_tensors];
    memset(t, 0, sizeof *t);
    t->name = name_copy;
    t->dtype = dt;
    t->n_dims = n_dims;
    for (int i = 0; i < n_dims; i++) {
        t->shape[i] = shape[i];
    }
    t->owned = owned;
    t->data = owned ? owned : data ? data : (const void *)&empty_data;
    t->n_bytes = n_bytes;
    *slot = m->n_tensors + 1;
    m->n_tensors++;
    ((name_index_t *)m->name_index)->n_indexed = m->n_tensors;
    name_copy = NULL;
    owned = NULL;
    data = NULL;

out:
    free(name_copy);
    if (rc != 0 && mode == ADD_TAKE) {
        free((void *)data);
    } else if (rc != 0 && mode == ADD_COPY) {
        free(owned);
    }
    return rc;
}

int mp_model_add(mp_model_t *m, const char *name, mp_dtype_t dt, int n_dims, const int64_t *shape,
                 const void *data, size_t n_bytes, mp_errctx_t *err)
{
    return add_tensor(m, name, dt, n_dims, shape, data, n_bytes, ADD_COPY, err);
}

int mp_model_add_take(mp_model_t *m, const char *name, mp_dtype_t dt, int n_dims,
                      const int64_t *shape, void *data, size_t n_bytes, mp_errctx_t *err)
{
    return add_tensor(m, name, dt, n_dims, shape, data, n_bytes, ADD_TAKE, err);
}

int mp_model_add_ref(mp_model_t *m, const char *name, mp_dtype_t dt, int n_dims,
                     const int64_t *shape, const void *data, size_t n_bytes, mp_errctx_t *err)
{
    return add_tensor(m, name, dt, n_dims, shape, data, n_bytes, ADD_REF, err);
}

/* ---- metadata ------------------------------------------------------------------------------ */

static size_t meta_index(const mp_model_t *m, const char *key)
{
    for (size_t i = 0; i < m->n_meta; i++) {
        if (strcmp(m->meta_keys[i], key) == 0) {
            return i;
        }
    }
    return m->n_meta;
}

int mp_model_set_meta(mp_model_t *m, const char *key, const char *value)
{
    size_t i;
    size_t bytes;
    char **p;
    char *k = NULL;
    char *v = NULL;
    int rc = MP_ENOMEM;

    if (m == NULL || key == NULL || value == NULL) {
        return MP_EINVAL;
    }
    i = meta_index(m, key);
    v = strdup(value);
    if (v == NULL) {
        goto out;
    }
    if (i < m->n_meta) {
        free(m->meta_values[i]);
        m->meta_values[i] = v;
        return 0;
    }
    k = strdup(key);
    if (k == NULL || mp__mul_size(m->n_meta + 1, sizeof(char *), &bytes) != 0) {
        goto out;
    }
    /* Metadata holds a handful of entries, so the arrays grow one slot at a time (the struct
     * records no capacity for them). A failure leaves both arrays valid for n_meta entries. */
    p = realloc(m->meta_keys, bytes);
    if (p == NULL) {
        goto out;
    }
    m->meta_keys = p;
    p = realloc(m->meta_values, bytes);
    if (p == NULL) {
        goto out;
    }
    m->meta_values = p;
    m->meta_keys[m->n_meta] = k;
    m->meta_values[m->n_meta] = v;
    m->n_meta++;
    k = NULL;
    v = NULL;
    rc = 0;
out:
    free(k);
    free(v);
    return rc;
}

const char *mp_model_get_meta(const mp_model_t *m, const char *key)
{
    size_t i;

    if (m == NULL || key == NULL) {
        return NULL;
    }
    i = meta_index(m, key);
    return i < m->n_meta ? m->meta_values[i] : NULL;
}
