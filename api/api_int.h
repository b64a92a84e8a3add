/* api_int.h — internals shared by the files of api/: the api object, one request's state, the
 * upload store and the error table. Loop thread only.
 */
#ifndef MP_API_INT_H
#define MP_API_INT_H

#include <jansson.h>
#include <limits.h>
#include <nettle/sha2.h>
#include <stdarg.h>

#include "api/api.h"
#include "core/modelpress.h"

#define API_RECIPE_MAX_BYTES (64 * 1024)
#define API_PATH_MAX 4096

/* /metrics: requests by route and status, and finished jobs by state and run time. */
#define API_MAX_STATUS_ROWS 128
#define API_N_DURATION_BUCKETS 10

typedef struct api_status_row {
    const char *route;
    unsigned int status;
    uint64_t count;
} api_status_row_t;

typedef struct api_metrics {
    api_status_row_t rows[API_MAX_STATUS_ROWS];
    size_t n_rows;
    uint64_t duration_buckets[DB_JOB_N_STATES][API_N_DURATION_BUCKETS + 1]; /* last: +Inf */
    double duration_sum[DB_JOB_N_STATES];
    uint64_t duration_count[DB_JOB_N_STATES];
} api_metrics_t;

struct api {
    char *state_dir;
    char *web_dir;
    uint64_t upload_max_bytes;
    int auth;
    int64_t quota_bytes;
    int64_t quota_jobs;
    api_metrics_t metrics;
    db_t *db;
    api_hooks_t hooks;
    api_stats_t stats;
    int draining;
    uint64_t next_req_id;
};

/* ---- the upload store (store.c) ---- */

/* One file arriving: written to state_dir/tmp/, hashed as it arrives. */
typedef struct api_upload {
    int fd;                      /* -1 when closed */
    char tmp_path[API_PATH_MAX]; /* "" when there is no temp file */
    struct sha256_ctx sha;
    uint64_t bytes;
    char hex[65]; /* set by api__upload_finish */
} api_upload_t;

/* All return 0 or a negative errno. */
int api__store_init(const char *state_dir, char *errbuf, size_t errlen);
int api__upload_open(const api_t *api, api_upload_t *up);
int api__upload_write(api_upload_t *up, const void *data, size_t n);
/* fsync and close the file, compute the digest. */
int api__upload_finish(api_upload_t *up);
/* Move the finished upload to its content address (or drop it if that blob exists already),
 * fsync the directory; blob_path receives the final path. */
int api__upload_commit(const api_t *api, api_upload_t *up, char *blob_path, size_t n);
/* Close and delete whatever is left of an upload; safe to call twice. */
void api__upload_abort(api_upload_t *up);

/* ---- errors and replies (errors.c) ---- */

/* The one table from error code to HTTP status; unknown codes are 500. */
unsigned int api__status_for(const char *code);
/* The api error code for a core error (MP_ERECIPE -> "invalid_recipe", …). */
const char *api__code_for_mp(int mp_err);
/* The api error code for a failed file operation (ENOSPC -> "insufficient_storage"). */
const char *api__code_for_errno(int neg_errno);

/* Queue {"error":{"code","message"}} with the code's status. */
struct api_req;
enum MHD_Result api__send_error(struct api_req *req, struct MHD_Connection *conn, const char *code,
                                const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Queue a JSON body (body is stolen); extra_header/value may be NULL. req (may be NULL)
 * records the status and size for the request log. */
enum MHD_Result api__send_json(struct api_req *req, struct MHD_Connection *conn,
                               unsigned int status, json_t *body, const char *extra_header,
                               const char *extra_value);

/* ---- one request ---- */

typedef enum { REQ_OTHER = 0, REQ_POST_JOBS, REQ_POST_DATASETS, REQ_ANSWERED } api_req_kind_t;

typedef struct api_req {
    api_t *api;
    api_req_kind_t kind;
    uint64_t id;
    double t_start;
    unsigned int status; /* what was answered, for the log */
    char method[8];
    char path[128];
    const char *route;   /* the route's pattern, for /metrics: "/jobs/{id}" */
    char user[64];       /* who is asking; "" when auth is off */
    const char *owner;   /* user when auth is on, NULL (anyone) when it is off */
    int64_t quota_bytes; /* this user's limits (0: none) */
    int64_t quota_jobs;
    uint64_t body_bytes;
    uint64_t out_bytes;
    /* POST /jobs */
    struct MHD_PostProcessor *pp;
    int raw; /* application/octet-stream body */
    api_upload_t model;
    int have_model;
    char *model_name;
    char *recipe; /* NUL-terminated */
    size_t recipe_len;
    int have_recipe;
    char err_code[32]; /* set when the body is refused part way: answered at the end */
    char err_msg[512];
    /* POST /datasets, and a dataset file or id sent with POST /jobs */
    api_upload_t dataset; /* fd valid only once have_dataset is set */
    int have_dataset;
    char *dataset_name;
    char dataset_id[65];
    size_t dataset_id_len;
} api_req_t;

/* The body of POST /jobs or POST /datasets, called for every piece and once more at its end
 * (upload.c): the pieces stream to disk, the end validates, stores and answers. */
enum MHD_Result api__post_body(api_req_t *req, struct MHD_Connection *conn, const char *upload_data,
                               size_t *upload_data_size);
/* First call of POST /jobs: checks that can refuse before the body is read. */
enum MHD_Result api__post_jobs_begin(api_req_t *req, struct MHD_Connection *conn);
void api__req_release(api_req_t *req);

/* Shared by the uploads (upload.c). api__upload_begin makes the checks every upload makes
 * before its body (draining, quota, the cap, the content type) and sets up req->pp with
 * field_cb for multipart/form-data or req->raw for application/octet-stream; 0 to go on, else
 * the refusal is queued and MHD's result is in *ret. usage describes what the route takes, for
 * the 415 message. api__refuse remembers why the rest of a body is refused (the first reason
 * counts), drops the files being received, and lets the body be read before answering.
 * api__upload_chunk appends to up, opening it (and setting *have) on the first piece. */
int api__upload_begin(api_req_t *req, struct MHD_Connection *conn, MHD_PostDataIterator field_cb,
                      const char *usage, enum MHD_Result *ret);
void api__refuse(api_req_t *req, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int api__upload_chunk(api_req_t *req, api_upload_t *up, int *have, const char *data, size_t size);

/* ---- datasets (datasets.c) ---- */

/* 1 when s (n bytes) is a dataset id: 64 lowercase hex digits. */
int api__dataset_id_valid(const char *s, size_t n);
/* The route pattern of a /datasets URL for /metrics, or NULL when url is not one. */
const char *api__datasets_route_name(const char *url);
/* GET and POST /datasets, GET and DELETE /datasets/{id} (url starts with /datasets). */
enum MHD_Result api__datasets_route(api_req_t *req, struct MHD_Connection *conn, const char *url,
                                    const char *method);
/* The end of POST /datasets' body. */
enum MHD_Result api__post_datasets_end(api_req_t *req, struct MHD_Connection *conn);
/* A multipart field of POST /jobs or POST /datasets that carries a dataset: the file `dataset`
 * (streamed into req->dataset) or, when ids_too, the text `dataset_id`. 1 when key was one of
 * them (and MHD's answer is in *ret), 0 when it is another field. */
int api__dataset_field(api_req_t *req, const char *key, const char *filename, const char *data,
                       uint64_t off, size_t size, int ids_too, enum MHD_Result *ret);
/* Validate the finished upload req->dataset (mp_dataset_load), store it and keep it as a
 * dataset of req->user named name; the id goes to req->dataset_id, *created says whether it is
 * new to the user, *json (new, may be NULL) is the dataset as the API shows it. 0 on success,
 * else an error is queued and MHD's result is in *ret. extra_bytes is what else this request
 * stores, for the quota. */
int api__dataset_store(api_req_t *req, struct MHD_Connection *conn, uint64_t extra_bytes,
                       int *created, json_t **json, enum MHD_Result *ret);

/* 405 with the methods the route allows (routes.c). */
enum MHD_Result api__method_not_allowed(api_req_t *req, struct MHD_Connection *conn,
                                        const char *allow);

/* Unix seconds as the API writes times ("2025-01-31T12:00:00.000Z"), or null for 0 (new). */
json_t *api__time_json(double unix_s);
/* The query argument name as an integer 0..max (def when absent or empty); -1 when it is not
 * one. */
int api__uint_arg(struct MHD_Connection *conn, const char *name, long def, long max, long *out);

/* Who is asking (auth.c): with auth on and needs_auth, a valid bearer token fills req->user
 * and req->owner; a token in the query string is always refused. 0 to go on, else an error is
 * queued and MHD's result is in *ret. Also sets the request's quotas. */
int api__authenticate(api_req_t *req, struct MHD_Connection *conn, int needs_auth,
                      enum MHD_Result *ret);

/* Quotas for uploads: 0 when within them (counting extra_bytes more; the jobs quota only for
 * POST /jobs), else an error queued (429) and MHD's result in *ret. */
int api__over_quota(api_req_t *req, struct MHD_Connection *conn, uint64_t extra_bytes,
                    enum MHD_Result *ret);

/* GET /metrics (metrics.c). */
enum MHD_Result api__get_metrics(api_req_t *req, struct MHD_Connection *conn);
/* Count one answered request (metrics.c). */
void api__count_request(api_t *api, const char *route, unsigned int status);

/* The JSON of a job as the API shows it (new reference). */
json_t *api__job_json(const db_job_t *job);

/* Monotonic seconds. */
double api__now(void);

#endif /* MP_API_INT_H */
