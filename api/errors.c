/* errors.c — the one table from error code to HTTP status, and the JSON replies.
 *
 * Every error the API gives is {"error":{"code":"…","message":"…"}}; the code is a stable
 * lowercase word that scripts can test, the message says what was wrong in words a person can
 * act on (which field, which tensor, which byte).
 */
#include "api/api_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *code;
    unsigned int status;
} status_table[] = {
    {"bad_request", MHD_HTTP_BAD_REQUEST},
    {"unauthorized", MHD_HTTP_UNAUTHORIZED},
    {"quota_exceeded", MHD_HTTP_TOO_MANY_REQUESTS},
    {"invalid_recipe", MHD_HTTP_BAD_REQUEST},
    {"not_found", MHD_HTTP_NOT_FOUND},
    {"method_not_allowed", MHD_HTTP_METHOD_NOT_ALLOWED},
    {"conflict", MHD_HTTP_CONFLICT},
    {"payload_too_large", MHD_HTTP_CONTENT_TOO_LARGE},
    {"unsupported_media_type", MHD_HTTP_UNSUPPORTED_MEDIA_TYPE},
    {"unsupported_model", MHD_HTTP_UNSUPPORTED_MEDIA_TYPE},
    {"invalid_model", MHD_HTTP_UNPROCESSABLE_CONTENT},
    {"invalid_dataset", MHD_HTTP_UNPROCESSABLE_CONTENT},
    {"unsupported_dataset", MHD_HTTP_UNSUPPORTED_MEDIA_TYPE},
    {"internal", MHD_HTTP_INTERNAL_SERVER_ERROR},
    {"unavailable", MHD_HTTP_SERVICE_UNAVAILABLE},
    {"insufficient_storage", MHD_HTTP_INSUFFICIENT_STORAGE},
};

unsigned int api__status_for(const char *code)
{
    for (size_t i = 0; i < sizeof status_table / sizeof status_table[0]; i++) {
        if (strcmp(status_table[i].code, code) == 0) {
            return status_table[i].status;
        }
    }
    return MHD_HTTP_INTERNAL_SERVER_ERROR;
}

const char *api__code_for_mp(int mp_err)
{
    switch (mp_err) {
    case MP_ERECIPE:
    case MP_EINVAL:
        return "invalid_recipe";
    case MP_EFORMAT:
        return "invalid_model";
    case MP_EUNSUPPORTED:
        return "unsupported_model";
    case MP_ETOOBIG:
        return "payload_too_large";
    case MP_ENOSPC:
        return "insufficient_storage";
    case MP_ENOENT:
        return "not_found";
    default:
        return "internal";
    }
}

const char *api__code_for_errno(int neg_errno)
{
    return (neg_errno == -ENOSPC || neg_errno == -EDQUOT) ? "insufficient_storage" : "internal";
}

enum MHD_Result api__send_json(api_req_t *req, struct MHD_Connection *conn, unsigned int status,
                               json_t *body, const char *extra_header, const char *extra_value)
{
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (text == NULL) {
        return MHD_NO;
    }
    size_t len = strlen(text);
    /* One trailing newline makes curl output readable. */
    char *buf = realloc(text, len + 2);
    if (buf == NULL) {
        free(text);
        return MHD_NO;
    }
    buf[len] = '\n';
    buf[len + 1] = '\0';
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len + 1, buf, MHD_RESPMEM_MUST_FREE);
    if (resp == NULL) {
        free(buf);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (extra_header != NULL && extra_value != NULL) {
        MHD_add_response_header(resp, extra_header, extra_value);
    }
    if (req != NULL) {
        req->status = status;
        req->out_bytes += len + 1;
    }
    enum MHD_Result r = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return r;
}

enum MHD_Result api__send_error(api_req_t *req, struct MHD_Connection *conn, const char *code,
                                const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *body = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg);
    if (body == NULL) {
        return MHD_NO;
    }
    return api__send_json(req, conn, api__status_for(code), body, NULL, NULL);
}
