/* pb_int.h — a hardened protobuf wire codec with byte-exact pass-through (pb.c).
 *
 * Why hand-written rather than protobuf-c: protobuf-c needs generated code from a .proto and a
 * new run-time dependency, decodes every field into C structs (so writing back re-serialises
 * the whole file, reordering and re-encoding what we never meant to touch) and lets a file ask
 * for allocations we cannot bound. Here a message is a flat list of its fields in file order,
 * each remembering the exact bytes it came from: writing an unmodified message copies those
 * bytes, so parse + write reproduces the input byte for byte (fields this code has never heard
 * of included), and an edit re-encodes only the messages on the path to what changed. The
 * limits are ours: varints of at most 10 bytes, field number 0 and wire types 3-7 refused,
 * every length checked against the bytes that remain, a nesting depth limit, and memory in
 * proportion to the input (a field costs at least two bytes of it).
 *
 * The codec is schema-less: a length-delimited field stays bytes until the caller, who knows
 * the schema, asks for it as a message (mp__pb_field_msg). Field data borrow the buffer that
 * was parsed, which must outlive the tree; edits own what they add.
 */
#ifndef MP_PB_INT_H
#define MP_PB_INT_H

#include "mp_int.h"

/* The deepest message nesting accepted (ONNX: model > graph > node > attribute > graph …,
 * so 64 allows about 15 levels of nested subgraphs). */
#define MP_PB_MAX_DEPTH 64
#define MP_PB_MAX_FIELD ((1u << 29) - 1)

typedef enum {
    MP_PB_VARINT = 0,
    MP_PB_I64 = 1,
    MP_PB_LEN = 2,
    MP_PB_I32 = 5,
} mp__pb_wire_t;

typedef struct mp__pb_msg mp__pb_msg_t;

typedef struct mp__pb_field {
    uint32_t num;
    uint8_t wire;                /* mp__pb_wire_t */
    uint8_t dirty;               /* changed since parsing: re-encode it */
    uint64_t v;                  /* VARINT, I64 and I32 values (I32 in the low bits) */
    const uint8_t *data;         /* LEN payload */
    size_t len;
    const uint8_t *raw;          /* the field's original bytes (tag included), or NULL */
    size_t raw_len;
    size_t off;                  /* absolute offset of the payload in the input (messages) */
    mp__pb_msg_t *sub;           /* the payload parsed as a message, or NULL */
    void *owned;                 /* malloc'd payload (== data) when edits made it */
} mp__pb_field_t;

struct mp__pb_msg {
    mp__pb_field_t *f;
    size_t n, cap;
    int depth;                   /* 0 for the root */
    int dirty;                   /* fields added, removed or changed here */
    /* cached by the size pass of mp__pb_encode */
    size_t enc_bytes;
    int clean;                   /* nothing in this subtree changed */
};

/* Decode a varint at p (n bytes available). 0 on success with *v and *used set; -1 when the
 * bytes end inside it; -2 when it is longer than 10 bytes or overflows 64 bits. */
int mp__pb_varint(const uint8_t *p, size_t n, uint64_t *v, size_t *used);
/* Bytes a varint takes; encode one into out (room for 10). */
size_t mp__pb_varint_bytes(uint64_t v);
size_t mp__pb_put_varint(uint8_t *out, uint64_t v);

/* Parse n bytes as one message at nesting depth `depth`. base is the absolute file offset of
 * buf[0], used in messages ("byte 1234: …"). MP_EFORMAT with that offset for a malformed
 * field, MP_ETOOBIG past MP_PB_MAX_DEPTH, MP_ENOMEM. */
int mp__pb_parse(const uint8_t *buf, size_t n, size_t base, int depth, mp__pb_msg_t **out,
                 mp_errctx_t *err);
/* The payload of a LEN field as a message (parsed once, then cached in f->sub); what names
 * the field in error messages. MP_EFORMAT when f is not LEN. */
int mp__pb_field_msg(mp__pb_field_t *f, int parent_depth, const char *what,
                     mp__pb_msg_t **out, mp_errctx_t *err);
void mp__pb_msg_free(mp__pb_msg_t *m);

/* A deep copy of the tree (parsed sub-messages copied, payloads still borrowed or copied when
 * owned). NULL when out of memory. */
mp__pb_msg_t *mp__pb_msg_clone(const mp__pb_msg_t *m);

/* Lookups: the first field number num (NULL if none); the count of fields num. */
mp__pb_field_t *mp__pb_find(const mp__pb_msg_t *m, uint32_t num);
size_t mp__pb_count(const mp__pb_msg_t *m, uint32_t num);
/* A LEN field's payload as a NUL-terminated string (malloc'd), or NULL when out of memory. */
char *mp__pb_strdup(const mp__pb_field_t *f);
/* 1 if the LEN field's payload equals the string s. */
int mp__pb_streq(const mp__pb_field_t *f, const char *s);

/* Edits. Each marks the message dirty; the tree above it is found dirty at encode time.
 * Appended fields go at the end; _insert puts one at index at. */
int mp__pb_add_varint(mp__pb_msg_t *m, uint32_t num, uint64_t v);
int mp__pb_add_i32(mp__pb_msg_t *m, uint32_t num, uint32_t v);
/* Copies len bytes. */
int mp__pb_add_bytes(mp__pb_msg_t *m, uint32_t num, const void *data, size_t len);
int mp__pb_add_str(mp__pb_msg_t *m, uint32_t num, const char *s);
/* Takes sub (freed on failure too). */
int mp__pb_add_msg_take(mp__pb_msg_t *m, uint32_t num, mp__pb_msg_t *sub);
int mp__pb_insert_msg_take(mp__pb_msg_t *m, size_t at, uint32_t num, mp__pb_msg_t *sub);
/* Replace the payload of field i (made LEN) by a copy of len bytes. */
int mp__pb_set_bytes_at(mp__pb_msg_t *m, size_t i, const void *data, size_t len);
/* An empty message to fill and add; NULL when out of memory. */
mp__pb_msg_t *mp__pb_msg_new(void);
/* Remove field index i / every field number num. */
void mp__pb_remove_at(mp__pb_msg_t *m, size_t i);
void mp__pb_remove_all(mp__pb_msg_t *m, uint32_t num);

/* Serialise the tree: clean subtrees are copied as the bytes they were parsed from, changed
 * ones re-encoded (minimal varints, fields in list order). reencode != 0 ignores the original
 * bytes of every parsed message (tests use it to show the encoder reproduces what protobuf's
 * own serialisers wrote). *out is malloc'd, *n_bytes long. */
int mp__pb_encode(mp__pb_msg_t *m, int reencode, uint8_t **out, size_t *n_bytes,
                  mp_errctx_t *err);

#endif /* MP_PB_INT_H */
