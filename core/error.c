/* error.c — the error codes of libmodelpress as text, and the error context writer.
 *
 * Both tables come from the one X-macro MP_ERRNO_MAP in modelpress.h, so a new code needs no
 * change here. mp__err_set() is how every core function reports a failure: it fills the
 * caller's mp_errctx_t (which may be NULL) and returns the code, so a failure is one line.
 * Invariant: err->msg is always NUL-terminated and valid UTF-8 when its arguments are — a
 * message cut at the buffer's end is cut at a character boundary, because messages go out in
 * JSON replies, whose encoders refuse broken UTF-8.
 */
#include "mp_int.h"

#include <stdio.h>
#include <string.h>

const char *mp_strerror(int err)
{
    switch (err) {
#define MP_X_STR(name, value, msg)                                                                 \
    case (value):                                                                                  \
        return msg;
        MP_ERRNO_MAP(MP_X_STR)
#undef MP_X_STR
    default:
        return "unknown error";
    }
}

const char *mp_err_name(int err)
{
    switch (err) {
#define MP_X_NAME(name, value, msg)                                                                \
    case (value):                                                                                  \
        return #name;
        MP_ERRNO_MAP(MP_X_NAME)
#undef MP_X_NAME
    default:
        return "EUNKNOWN";
    }
}

/* Drop a multi-byte UTF-8 sequence left incomplete at the end of s (after truncation). */
static void trim_partial_utf8(char *s)
{
    size_t len = strlen(s);
    size_t lead = len;
    size_t need;
    unsigned char c;

    /* Walk back over at most 3 continuation bytes to the sequence's lead byte. */
    while (lead > 0 && len - lead < 4 && ((unsigned char)s[lead - 1] & 0xC0) == 0x80) {
        lead--;
    }
    if (lead == 0) {
        return;
    }
    c = (unsigned char)s[lead - 1];
    if (c < 0x80) {
        return; /* ASCII: the string ends on a boundary */
    }
    need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    if (len - (lead - 1) < need) {
        s[lead - 1] = '\0';
    }
}

int mp__err_set(mp_errctx_t *err, int code, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (err == NULL) {
        return code;
    }
    err->code = code;
    if (fmt == NULL) {
        snprintf(err->msg, sizeof err->msg, "%s", mp_strerror(code));
        return code;
    }
    va_start(ap, fmt);
    n = vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    if (n < 0) {
        snprintf(err->msg, sizeof err->msg, "%s", mp_strerror(code));
    } else if ((size_t)n >= sizeof err->msg) {
        trim_partial_utf8(err->msg);
    }
    return code;
}
