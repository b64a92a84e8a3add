/* api.h — modelpressd's HTTP interface: routes, request validation, uploads and the JSON shapes
 * of jobs and errors (DESIGN.md, HTTP API).
 *
 * Everything here runs on the loop thread: libmicrohttpd is driven in external-loop mode by
 * daemon/http.c, so request handlers may use the db_t directly. The api owns no threads and
 * knows nothing of libuv; it tells the daemon about new and canceled jobs through api_hooks_t.
 *
 * Files on disk (state_dir): tmp/ for uploads in flight, blobs/sha256/ab/<hash> for uploaded
 * models (content-addressed, written to tmp/, fsynced, renamed, directory fsynced), and
 * results/<job-id>/ for outputs. A job is answered 202 only after its model is durable and its
 * row is committed.
 */
#ifndef MP_API_H
#define MP_API_H

#include <microhttpd.h>
#include <stddef.h>
#include <stdint.h>

#include "db/db.h"

/* What the api asks of the daemon. */
typedef struct api_hooks {
    void *ud;
    /* A job was queued: schedule work if a worker is idle. */
    void (*job_queued_cb)(void *ud);
    /* Ask a running job to stop. Returns 0 when the job was running here and was told. */
    int (*job_cancel_cb)(void *ud, const char *job_id);
    /* One finished request, for the log: level is syslog's (6 info, 4 warning). */
    void (*log_cb)(void *ud, int level, const char *line);
} api_hooks_t;

typedef struct api_config {
    const char *state_dir;     /* required; created if missing */
    const char *web_dir;       /* the dashboard's static files */
    uint64_t upload_max_bytes; /* larger bodies get 413 (before reading, when announced) */
    int auth;                  /* 1: every route but /healthz, /metrics and / needs a token */
    int64_t quota_bytes;       /* per user: uploads + results kept (0: no limit) */
    int64_t quota_jobs;        /* per user: jobs queued or running at once (0: no limit) */
} api_config_t;

typedef struct api api_t;

/* Create the api over an open db: makes state_dir's folders and removes uploads a crash left in
 * tmp/. On failure returns -1 with the reason in errbuf. */
int api_new(const api_config_t *cfg, db_t *db, const api_hooks_t *hooks, api_t **out, char *errbuf,
            size_t errlen);
void api_free(api_t *api);

/* libmicrohttpd callbacks; cls is the api_t. */
enum MHD_Result api_handle_cb(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **req_cls);
void api_completed_cb(void *cls, struct MHD_Connection *conn, void **req_cls,
                      enum MHD_RequestTerminationCode toe);

/* Paths a worker needs, written into buf (returns -1 if it does not fit). */
int api_blob_path(const char *state_dir, const char *sha256_hex, char *buf, size_t n);
int api_result_dir(const char *state_dir, const char *job_id, char *buf, size_t n);
/* Remove results/<job-id>/ and what is in it (missing is fine). */
void api_result_remove(const char *state_dir, const char *job_id);

/* Counters for the logs and /healthz. */
typedef struct api_stats {
    uint64_t requests;
    uint64_t bytes_in;
    uint64_t bytes_out;
} api_stats_t;
const api_stats_t *api_stats(const api_t *api);

/* A job ended (for /metrics): its final state and how long it ran. */
void api_observe_job(api_t *api, db_job_state_t state, double run_seconds);

/* Tokens: a new random token (NUL-terminated, API_TOKEN_CHARS characters) and the SHA-256 hex
 * of a token, which is all the database keeps. */
#define API_TOKEN_CHARS 52
int api_token_new(char *buf, size_t n);
void api_token_hash(const char *token, char hex[65]);

/* Stop accepting new jobs (SIGTERM drain): POST /jobs answers 503 from now on. */
void api_set_draining(api_t *api);

#endif /* MP_API_H */
