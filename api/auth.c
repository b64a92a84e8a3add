/* auth.c — who is asking, and how much they may keep: bearer tokens and per-user quotas.
 *
 * A token is a random string given once to its user by `modelpressd token add NAME`; the
 * database keeps only its SHA-256, so a copy of the database does not let anyone act as a user.
 * Tokens travel in `Authorization: Bearer …` only: one in the query string is refused (URLs end
 * up in logs, histories and Referer headers). With auth on, every job belongs to its user and
 * another user's job is answered 404, as if it did not exist.
 */
#include "api/api_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

int api_token_new(char *buf, size_t n)
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char raw[API_TOKEN_CHARS - 4];
    if (n < API_TOKEN_CHARS + 1) {
        return -1;
    }
    size_t got = 0;
    while (got < sizeof raw) {
        ssize_t r = getrandom(raw + got, sizeof raw - got, 0);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        got += (size_t)r;
    }
    /* "mpt_" marks what it is (secret scanners, and people reading a config file); 48 letters or
     * digits from 36 give about 248 bits. 252 of 256 byte values keep the choice uniform. */
    memcpy(buf, "mpt_", 4);
    size_t j = 4;
    for (size_t i = 0; i < sizeof raw && j < API_TOKEN_CHARS; i++) {
        if (raw[i] < 252) {
            buf[j++] = alphabet[raw[i] % 36];
        }
    }
    while (j < API_TOKEN_CHARS) { /* rare: top up after rejected bytes */
        unsigned char b;
        if (getrandom(&b, 1, 0) == 1 && b < 252) {
            buf[j++] = alphabet[b % 36];
        }
    }
    buf[j] = '\0';
    return 0;
}

void api_token_hash(const char *token, char hex[65])
{
    struct sha256_ctx ctx;
    uint8_t digest[SHA256_DIGEST_SIZE];
    sha256_init(&ctx);
    sha256_update(&ctx, strlen(token), (const uint8_t *)token);
    sha256_digest(&ctx, sizeof digest, digest);
    for (size_t i = 0; i < sizeof digest; i++) {
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    }
}

/* 1 when the query string carries something that looks like a credential. */
static int token_in_query(struct MHD_Connection *conn)
{
    static const char *const names[] = {"token", "access_token", "auth", "bearer", "api_key"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, names[i]) != NULL) {
            return 1;
        }
    }
    return 0;
}

static enum MHD_Result unauthorized(api_req_t *req, struct MHD_Connection *conn, const char *msg)
{
    json_t *body = json_pack("{s:{s:s,s:s}}", "error", "code", "unauthorized", "message", msg);
    return api__send_json(req, conn, MHD_HTTP_UNAUTHORIZED, body, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                          "Bearer realm=\"modelpress\"");
}

int api__authenticate(api_req_t *req, struct MHD_Connection *conn, int needs_auth,
                      enum MHD_Result *ret)
{
    api_t *api = req->api;
    req->quota_bytes = api->quota_bytes;
    req->quota_jobs = api->quota_jobs;
    if (token_in_query(conn)) {
        *ret = api__send_error(req, conn, "bad_request",
                               "tokens go in the Authorization header (Bearer), never in the URL");
        return -1;
    }
    if (!api->auth || !needs_auth) {
        return 0;
    }
    const char *h =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (h == NULL) {
        *ret = unauthorized(req, conn,
                            "this server needs a token: send Authorization: Bearer <token> "
                            "(an administrator makes one with `modelpressd token add NAME`)");
        return -1;
    }
    if (strncasecmp(h, "Bearer ", 7) != 0 || h[7] == '\0' || strlen(h + 7) > 256) {
        *ret = unauthorized(req, conn, "the Authorization header must be `Bearer <token>`");
        return -1;
    }
    char hex[65];
    db_user_t user;
    api_token_hash(h + 7, hex);
    int rc = db_user_by_token(api->db, hex, &user);
    if (rc == DB_ENOTFOUND) {
        *ret = unauthorized(req, conn, "unknown or revoked token");
        return -1;
    }
    if (rc != 0) {
        *ret = api__send_error(req, conn, "internal", "database: %s", db_errmsg(api->db));
        return -1;
    }
    snprintf(req->user, sizeof req->user, "%s", user.name);
    req->owner = req->user;
    if (user.quota_bytes >= 0) {
        req->quota_bytes = user.quota_bytes;
    }
    if (user.quota_jobs >= 0) {
        req->quota_jobs = user.quota_jobs;
    }
    return 0;
}

int api__over_quota(api_req_t *req, struct MHD_Connection *conn, uint64_t extra_bytes,
                    enum MHD_Result *ret)
{
    api_t *api = req->api;
    int64_t bytes = 0, active = 0;
    if (req->quota_bytes <= 0 && req->quota_jobs <= 0) {
        return 0;
    }
    if (db_owner_usage(api->db, req->user, &bytes, &active) != 0) {
        *ret = api__send_error(req, conn, "internal", "database: %s", db_errmsg(api->db));
        return -1;
    }
    /* The jobs quota is about submitting jobs; a dataset upload only adds bytes. */
    if (req->kind == REQ_POST_JOBS && req->quota_jobs > 0 && active >= req->quota_jobs) {
        *ret = api__send_error(req, conn, "quota_exceeded",
                               "%lld of your jobs are queued or running; the limit is %lld: wait "
                               "for one to finish or cancel one",
                               (long long)active, (long long)req->quota_jobs);
        return -1;
    }
    if (req->quota_bytes > 0 && (uint64_t)bytes + extra_bytes > (uint64_t)req->quota_bytes) {
        *ret = api__send_error(req, conn, "quota_exceeded",
                               "you keep %lld bytes of uploads and results here and this upload "
                               "adds %llu; the limit is %lld: delete finished jobs to make room",
                               (long long)bytes, (unsigned long long)extra_bytes,
                               (long long)req->quota_bytes);
        return -1;
    }
    return 0;
}
