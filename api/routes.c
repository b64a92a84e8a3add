/* routes.c — the HTTP routes of modelpressd and the JSON shape of a job.
 *
 * api_handle_cb is libmicrohttpd's access handler: the first call for a request creates its
 * api_req_t; uploads (POST) are routed at once and stream their bodies through upload.c, every
 * other route answers when the request is complete. Errors are {"error":{"code","message"}} with
 * the status from errors.c's table. Handlers run on the loop thread and read the db directly.
 */
#include "api/api_int.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

double api__now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int api_new(const api_config_t *cfg, db_t *db, const api_hooks_t *hooks, api_t **out, char *errbuf,
            size_t errlen)
{
    *out = NULL;
    if (api__store_init(cfg->state_dir, errbuf, errlen) != 0) {
        return -1;
    }
    api_t *api = calloc(1, sizeof *api);
    if (api == NULL || (api->state_dir = strdup(cfg->state_dir)) == NULL ||
        (api->web_dir = strdup(cfg->web_dir != NULL ? cfg->web_dir : "")) == NULL) {
        api_free(api);
        snprintf(errbuf, errlen, "out of memory");
        return -1;
    }
    api->upload_max_bytes = cfg->upload_max_bytes;
    api->auth = cfg->auth;
    api->quota_bytes = cfg->quota_bytes;
    api->quota_jobs = cfg->quota_jobs;
    api->db = db;
    if (hooks != NULL) {
        api->hooks = *hooks;
    }
    *out = api;
    return 0;
}

void api_free(api_t *api)
{
    if (api == NULL) {
        return;
    }
    free(api->state_dir);
    free(api->web_dir);
    free(api);
}

const api_stats_t *api_stats(const api_t *api)
{
    return &api->stats;
}

void api_set_draining(api_t *api)
{
    api->draining = 1;
}

/* ---- the JSON of a job ---- */

json_t *api__time_json(double unix_s)
{
    if (unix_s <= 0) {
        return json_null();
    }
    time_t t = (time_t)unix_s;
    struct tm tm;
    char buf[40];
    gmtime_r(&t, &tm);
    int ms = (int)((unix_s - (double)t) * 1000.0);
    if (ms < 0 || ms > 999) {
        ms = 0;
    }
    size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, sizeof buf - n, ".%03dZ", ms);
    return json_string(buf);
}

/* Parse stored JSON text; text that does not parse is shown as a string rather than lost. */
static json_t *stored_json(const char *text)
{
    if (text == NULL) {
        return json_null();
    }
    json_t *j = json_loads(text, 0, NULL);
    return j != NULL ? j : json_string(text);
}

json_t *api__job_json(const db_job_t *job)
{
    char self[64], result[80], report[80];
    snprintf(self, sizeof self, "/jobs/%s", job->id);
    snprintf(result, sizeof result, "/jobs/%s/result", job->id);
    snprintf(report, sizeof report, "/jobs/%s/report", job->id);
    json_t *error = json_null();
    if (job->error_code != NULL) {
        error = json_pack("{s:s,s:s}", "code", job->error_code, "message",
                          job->error_message != NULL ? job->error_message : "");
    }
    double end = job->finished_at;
    json_t *duration = json_null();
    if (job->started_at > 0 && end > 0) {
        duration = json_real(end - job->started_at);
    }
    json_t *links = json_pack("{s:s}", "self", self);
    if (job->state == DB_JOB_SUCCEEDED) {
        json_object_set_new(links, "result", json_string(result));
        json_object_set_new(links, "report", json_string(report));
    }
    json_t *dataset = json_null();
    if (job->dataset_blob[0] != '\0') {
        char href[80];
        snprintf(href, sizeof href, "/datasets/%s", job->dataset_blob);
        dataset = json_pack("{s:s,s:s}", "id", job->dataset_blob, "href", href);
    }
    return json_pack(
        "{s:s,s:s,s:s,s:{s:s?,s:I,s:s},s:o,s:o,s:f,s:s?,s:o,s:o,s:o,s:o,s:i,s:o,s:o,"
        "s:I,s:o}",
        "id", job->id, "state", db_job_state_name(job->state), "owner", job->owner, "model", "name",
        job->model_name, "bytes", (json_int_t)job->model_bytes, "sha256", job->model_blob,
        "dataset", dataset, "recipe", stored_json(job->recipe), "progress", job->progress, "stage",
        job->stage[0] != '\0' ? job->stage : NULL, "created_at", api__time_json(job->created_at),
        "started_at", api__time_json(job->started_at), "finished_at",
        api__time_json(job->finished_at), "duration_s", duration, "attempts", job->attempts,
        "error", error, "metrics", stored_json(job->metrics), "result_bytes",
        (json_int_t)job->result_bytes, "links", links);
}

/* ---- routes ---- */

static int valid_job_id(const char *s, size_t n)
{
    if (n != 32) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i])) {
            return 0;
        }
    }
    return 1;
}

static enum MHD_Result not_found(api_req_t *req, struct MHD_Connection *conn, const char *what)
{
    return api__send_error(req, conn, "not_found", "%s", what);
}

enum MHD_Result api__method_not_allowed(api_req_t *req, struct MHD_Connection *conn,
                                        const char *allow)
{
    json_t *body = json_pack("{s:{s:s,s:s}}", "error", "code", "method_not_allowed", "message",
                             "method not allowed here");
    json_object_set_new(json_object_get(body, "error"), "allow", json_string(allow));
    return api__send_json(req, conn, MHD_HTTP_METHOD_NOT_ALLOWED, body, MHD_HTTP_HEADER_ALLOW,
                          allow);
}

static enum MHD_Result get_healthz(api_req_t *req, struct MHD_Connection *conn)
{
    int64_t queued = 0, running = 0;
    if (db_job_count(req->api->db, DB_JOB_QUEUED, &queued) != 0 ||
        db_job_count(req->api->db, DB_JOB_RUNNING, &running) != 0) {
        return api__send_error(req, conn, "internal", "database: %s", db_errmsg(req->api->db));
    }
    json_t *body = json_pack("{s:s,s:s,s:s,s:I,s:I,s:b}", "status", "ok", "version",
                             MP_VERSION_STRING, "isa", mp_kern_isa(), "queued", (json_int_t)queued,
                             "running", (json_int_t)running, "draining", req->api->draining);
    return api__send_json(req, conn, MHD_HTTP_OK, body, NULL, NULL);
}

int api__uint_arg(struct MHD_Connection *conn, const char *name, long def, long max, long *out)
{
    const char *v = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, name);
    if (v == NULL || *v == '\0') {
        *out = def;
        return 0;
    }
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno != 0 || *end != '\0' || x < 0 || x > max) {
        return -1;
    }
    *out = x;
    return 0;
}

static enum MHD_Result get_jobs(api_req_t *req, struct MHD_Connection *conn)
{
    long limit, offset;
    int state = -1;
    const char *s = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "state");
    if (s != NULL && *s != '\0' && (state = db_job_state_parse(s)) < 0) {
        return api__send_error(req, conn, "bad_request",
                               "state=%s: must be queued, running, succeeded, failed or canceled",
                               s);
    }
    if (api__uint_arg(conn, "limit", 50, 1000, &limit) != 0 || limit == 0) {
        return api__send_error(req, conn, "bad_request", "limit: must be an integer 1 to 1000");
    }
    if (api__uint_arg(conn, "offset", 0, INT_MAX, &offset) != 0) {
        return api__send_error(req, conn, "bad_request",
                               "offset: must be an integer 0 to 2147483647");
    }
    /* With auth on, a user sees their own jobs only. */
    const char *owner = req->owner != NULL
                            ? req->owner
                            : MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "owner");
    db_job_t *jobs = NULL;
    size_t n = 0;
    int64_t total = 0;
    if (db_job_list(req->api->db, state, owner, (int)limit, (int)offset, &jobs, &n, &total) != 0) {
        return api__send_error(req, conn, "internal", "database: %s", db_errmsg(req->api->db));
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(arr, api__job_json(&jobs[i]));
        db_job_clear(&jobs[i]);
    }
    free(jobs);
    json_t *body = json_pack("{s:o,s:I,s:i,s:i}", "jobs", arr, "total", (json_int_t)total, "limit",
                             (int)limit, "offset", (int)offset);
    return api__send_json(req, conn, MHD_HTTP_OK, body, NULL, NULL);
}

/* Queue 200 with the body read from fd (taken: closed here or by libmicrohttpd), size bytes
 * long, and headers: name/value pairs up to a NULL name. */
static enum MHD_Result queue_fd(api_req_t *req, struct MHD_Connection *conn, int fd, uint64_t size,
                                const char *const *headers)
{
    struct MHD_Response *resp = MHD_create_response_from_fd(size, fd);
    if (resp == NULL) {
        close(fd);
        return MHD_NO;
    }
    for (size_t i = 0; headers[i] != NULL; i += 2) {
        MHD_add_response_header(resp, headers[i], headers[i + 1]);
    }
    req->status = MHD_HTTP_OK;
    req->out_bytes += size;
    req->api->stats.bytes_out += size;
    enum MHD_Result r = MHD_queue_response(conn, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    return r;
}

/* Serve a file of a finished job from its descriptor. */
static enum MHD_Result send_file(api_req_t *req, struct MHD_Connection *conn, const char *path,
                                 const char *content_type, const char *download_name)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        if (fd >= 0) {
            close(fd);
        }
        return api__send_error(req, conn, "not_found",
                               "the job's output file is missing from the server");
    }
    char cd[512];
    const char *headers[] = {MHD_HTTP_HEADER_CONTENT_TYPE, content_type, NULL, NULL, NULL};
    if (download_name != NULL) {
        snprintf(cd, sizeof cd, "attachment; filename=\"%s\"", download_name);
        headers[2] = MHD_HTTP_HEADER_CONTENT_DISPOSITION;
        headers[3] = cd;
    }
    return queue_fd(req, conn, fd, (uint64_t)st.st_size, headers);
}

/* A file name for the download: the upload's name without its extension, made safe for a
 * header, plus ".compressed." and the container's extension. */
static void download_name(const db_job_t *job, const char *ext, char *buf, size_t n)
{
    char base[128];
    size_t j = 0;
    const char *src = job->model_name != NULL ? job->model_name : "model";
    const char *slash = strrchr(src, '/');
    src = slash != NULL ? slash + 1 : src;
    for (size_t i = 0; src[i] != '\0' && j + 1 < sizeof base; i++) {
        unsigned char c = (unsigned char)src[i];
        base[j++] = (isalnum(c) || c == '-' || c == '_' || c == '.') ? (char)c : '_';
    }
    base[j] = '\0';
    char *dot = strrchr(base, '.');
    if (dot != NULL && dot != base) {
        *dot = '\0';
    }
    snprintf(buf, n, "%s.compressed.%s", base[0] != '\0' ? base : "model", ext);
}

static enum MHD_Result job_route(api_req_t *req, struct MHD_Connection *conn, const char *method,
                                 const char *id, size_t id_len, const char *sub)
{
    api_t *api = req->api;
    char idbuf[33];
    db_job_t job = {0};
    enum MHD_Result ret;
    if (!valid_job_id(id, id_len)) {
        return not_found(req, conn, "no such job");
    }
    memcpy(idbuf, id, 32);
    idbuf[32] = '\0';
    int rc = db_job_get(api->db, idbuf, req->owner, &job);
    if (rc == DB_ENOTFOUND) {
        return not_found(req, conn, "no such job");
    }
    if (rc != 0) {
        return api__send_error(req, conn, "internal", "database: %s", db_errmsg(api->db));
    }
    if (*sub == '\0') {
        if (strcmp(method, "GET") == 0) {
            ret = api__send_json(req, conn, MHD_HTTP_OK, api__job_json(&job), NULL, NULL);
        } else if (strcmp(method, "DELETE") == 0) {
            if (job.state == DB_JOB_QUEUED && db_job_cancel_queued(api->db, idbuf) == 0) {
                db_job_clear(&job);
                db_job_get(api->db, idbuf, NULL, &job);
                ret = api__send_json(req, conn, MHD_HTTP_OK, api__job_json(&job), NULL, NULL);
            } else if (job.state == DB_JOB_RUNNING || job.state == DB_JOB_QUEUED) {
                /* Running (or claimed since we read it): the worker stops at its next check. */
                if (api->hooks.job_cancel_cb != NULL) {
                    api->hooks.job_cancel_cb(api->hooks.ud, idbuf);
                }
                json_t *body = api__job_json(&job);
                json_object_set_new(body, "cancel_requested", json_true());
                ret = api__send_json(req, conn, MHD_HTTP_ACCEPTED, body, NULL, NULL);
            } else {
                rc = db_job_delete(api->db, idbuf);
                if (rc != 0) {
                    ret = api__send_error(req, conn, rc == DB_ECONFLICT ? "conflict" : "internal",
                                          "cannot delete the job: %s", db_errmsg(api->db));
                } else {
                    int64_t refs = 1;
                    api_result_remove(api->state_dir, idbuf);
                    if (db_blob_refs(api->db, job.model_blob, &refs) == 0 && refs == 0) {
                        char path[API_PATH_MAX];
                        if (api_blob_path(api->state_dir, job.model_blob, path, sizeof path) == 0) {
                            unlink(path);
                        }
                        db_blob_delete(api->db, job.model_blob);
                    }
                    ret = api__send_json(req, conn, MHD_HTTP_OK,
                                         json_pack("{s:s,s:b}", "id", idbuf, "deleted", 1), NULL,
                                         NULL);
                }
            }
        } else {
            ret = api__method_not_allowed(req, conn, "GET, DELETE");
        }
        goto out;
    }
    if (strcmp(sub, "/result") != 0 && strcmp(sub, "/report") != 0) {
        ret = not_found(req, conn, "no such route");
        goto out;
    }
    if (strcmp(method, "GET") != 0) {
        ret = api__method_not_allowed(req, conn, "GET");
        goto out;
    }
    if (job.state != DB_JOB_SUCCEEDED) {
        ret = api__send_error(req, conn, "conflict",
                              "job %s is %s; its %s exists once it has succeeded", idbuf,
                              db_job_state_name(job.state), sub + 1);
        goto out;
    }
    char dir[API_PATH_MAX], path[API_PATH_MAX + 32], name[200];
    api_result_dir(api->state_dir, idbuf, dir, sizeof dir);
    if (strcmp(sub, "/result") == 0) {
        /* The worker wrote one of these, as the recipe and the upload asked. */
        static const char *const exts[] = {"safetensors", "mpz", "onnx"};
        const char *ext = exts[0];
        for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++) {
            snprintf(path, sizeof path, "%s/model.%s", dir, exts[i]);
            if (access(path, F_OK) == 0) {
                ext = exts[i];
                break;
            }
        }
        snprintf(path, sizeof path, "%s/model.%s", dir, ext);
        download_name(&job, ext, name, sizeof name);
        ret = send_file(req, conn, path, "application/octet-stream", name);
    } else {
        snprintf(path, sizeof path, "%s/report.json", dir);
        ret = send_file(req, conn, path, "application/json", NULL);
    }
out:
    db_job_clear(&job);
    return ret;
}

/* ---- the dashboard's files ----
 *
 * GET / is web_dir/index.html; GET /static/NAME is web_dir/NAME. NAME is judged before it
 * reaches the filesystem: 1 to 64 characters of [a-z0-9_.-], not starting with '.', ending in
 * an extension of web_types[], which also gives the content type. A name cannot hold '/', so no
 * path leaves web_dir (libmicrohttpd has already decoded %2f and %2e); the file is opened with
 * O_NOFOLLOW and must be a regular file, so a symlink or a folder there is not served either.
 * Every answer is 404 when the name does not qualify, whatever is on disk. The page gets a
 * Content-Security-Policy that allows scripts and styles from this server only: a name from a
 * model file that somehow became markup still could not run. */

#define WEB_NAME_MAX 64

static const struct {
    const char *ext;
    const char *type;
} web_types[] = {
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".ico", "image/x-icon"},
    {".json", "application/json"},
};

static const char WEB_CSP[] = "default-src 'self'; script-src 'self'; style-src 'self'; "
                              "img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; "
                              "base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/* The content type for a dashboard file name, or NULL when the name is not one we serve. */
static const char *web_type(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > WEB_NAME_MAX || name[0] == '.') {
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
              c == '-')) {
            return NULL;
        }
    }
    for (size_t i = 0; i < sizeof web_types / sizeof web_types[0]; i++) {
        size_t e = strlen(web_types[i].ext);
        if (n > e && strcmp(name + n - e, web_types[i].ext) == 0) {
            return web_types[i].type;
        }
    }
    return NULL;
}

static enum MHD_Result send_web_file(api_req_t *req, struct MHD_Connection *conn, const char *name)
{
    char path[API_PATH_MAX];
    struct stat st;
    const char *type = web_type(name);
    if (type == NULL) {
        return not_found(req, conn, "no such file");
    }
    if ((size_t)snprintf(path, sizeof path, "%s/%s", req->api->web_dir, name) >= sizeof path) {
        return not_found(req, conn, "no such file");
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0) {
            close(fd);
        }
        if (strcmp(name, "index.html") == 0) {
            return api__send_error(req, conn, "not_found", "the dashboard is not installed (%s)",
                                   path);
        }
        return not_found(req, conn, "no such file");
    }
    /* no-cache: revalidate every time, so an upgraded daemon never runs last version's
     * scripts. The policy (the last pair) goes with the page only. */
    const char *headers[] = {MHD_HTTP_HEADER_CONTENT_TYPE,
                             type,
                             "X-Content-Type-Options",
                             "nosniff",
                             MHD_HTTP_HEADER_CACHE_CONTROL,
                             "no-cache",
                             "Referrer-Policy",
                             "no-referrer",
                             strcmp(name, "index.html") == 0 ? "Content-Security-Policy" : NULL,
                             WEB_CSP,
                             NULL};
    return queue_fd(req, conn, fd, (uint64_t)st.st_size, headers);
}

/* The route's pattern, for /metrics and the log; public routes need no token. */
static const char *route_name(const char *url, int *public)
{
    *public = 0;
    if (strcmp(url, "/jobs") == 0 || strcmp(url, "/jobs/") == 0) {
        return "/jobs";
    }
    if (strncmp(url, "/jobs/", 6) == 0) {
        const char *sub = strchr(url + 6, '/');
        if (sub == NULL) {
            return "/jobs/{id}";
        }
        return strcmp(sub, "/result") == 0   ? "/jobs/{id}/result"
               : strcmp(sub, "/report") == 0 ? "/jobs/{id}/report"
                                             : "other";
    }
    const char *datasets = api__datasets_route_name(url);
    if (datasets != NULL) {
        return datasets;
    }
    *public = 1;
    if (strcmp(url, "/healthz") == 0) {
        return "/healthz";
    }
    if (strcmp(url, "/metrics") == 0) {
        return "/metrics";
    }
    if (strcmp(url, "/openapi.json") == 0) {
        return "/openapi.json";
    }
    if (strcmp(url, "/") == 0 || strcmp(url, "/index.html") == 0) {
        return "/";
    }
    if (strncmp(url, "/static/", 8) == 0) {
        return "/static/{name}";
    }
    return "other";
}

static enum MHD_Result route(api_req_t *req, struct MHD_Connection *conn, const char *url,
                             const char *method)
{
    int public;
    enum MHD_Result ret;
    req->route = route_name(url, &public);
    if (api__authenticate(req, conn, !public, &ret) != 0) {
        return ret;
    }
    if (strcmp(url, "/metrics") == 0) {
        return strcmp(method, "GET") == 0 ? api__get_metrics(req, conn)
                                          : api__method_not_allowed(req, conn, "GET");
    }
    if (strcmp(url, "/jobs") == 0 || strcmp(url, "/jobs/") == 0) {
        if (strcmp(method, "GET") == 0) {
            return get_jobs(req, conn);
        }
        if (strcmp(method, "POST") == 0) {
            req->kind = REQ_POST_JOBS;
            return api__post_jobs_begin(req, conn);
        }
        return api__method_not_allowed(req, conn, "GET, POST");
    }
    if (strncmp(url, "/jobs/", 6) == 0) {
        const char *id = url + 6;
        const char *slash = strchr(id, '/');
        size_t id_len = slash != NULL ? (size_t)(slash - id) : strlen(id);
        return job_route(req, conn, method, id, id_len, id + id_len);
    }
    if (strcmp(url, "/datasets") == 0 || strncmp(url, "/datasets/", 10) == 0) {
        return api__datasets_route(req, conn, url, method);
    }
    if (strcmp(url, "/healthz") == 0) {
        return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0
                   ? get_healthz(req, conn)
                   : api__method_not_allowed(req, conn, "GET");
    }
    if (strcmp(url, "/") == 0 || strcmp(url, "/index.html") == 0 ||
        strcmp(url, "/openapi.json") == 0) {
        return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0
                   ? send_web_file(req, conn, url[1] == 'o' ? "openapi.json" : "index.html")
                   : api__method_not_allowed(req, conn, "GET");
    }
    if (strncmp(url, "/static/", 8) == 0) {
        return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0
                   ? send_web_file(req, conn, url + 8)
                   : api__method_not_allowed(req, conn, "GET");
    }
    return not_found(req, conn, "no such route");
}

enum MHD_Result api_handle_cb(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **req_cls)
{
    api_t *api = cls;
    api_req_t *req = *req_cls;
    if (req == NULL) {
        req = calloc(1, sizeof *req);
        if (req == NULL) {
            return MHD_NO;
        }
        req->api = api;
        req->id = ++api->next_req_id;
        req->t_start = api__now();
        req->model.fd = -1;
        snprintf(req->method, sizeof req->method, "%s", method);
        snprintf(req->path, sizeof req->path, "%s", url);
        api->stats.requests++;
        *req_cls = req;
        /* Uploads are routed now, so that a refusal (413, 401, 429) comes before the body is
         * read. Everything else is answered on the next call, once the request is complete:
         * libmicrohttpd closes a connection whose response was queued in the first call, and
         * keep-alive is what lets one client poll a job cheaply. */
        if (strcmp(method, "POST") == 0) {
            return route(req, conn, url, method);
        }
        return MHD_YES;
    }
    if ((req->kind == REQ_POST_JOBS || req->kind == REQ_POST_DATASETS) && req->status == 0) {
        return api__post_body(req, conn, upload_data, upload_data_size);
    }
    if (*upload_data_size != 0 || req->status != 0) {
        /* A body nobody asked for, or one after a refusal: read and drop it. */
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (req->kind == REQ_OTHER && strcmp(method, "POST") != 0) {
        req->kind = REQ_ANSWERED;
        return route(req, conn, url, method);
    }
    return MHD_YES;
}

void api_completed_cb(void *cls, struct MHD_Connection *conn, void **req_cls,
                      enum MHD_RequestTerminationCode toe)
{
    api_t *api = cls;
    api_req_t *req = *req_cls;
    if (req == NULL) {
        return;
    }
    if (api->hooks.log_cb != NULL) {
        char line[512];
        snprintf(line, sizeof line,
                 "req=%llu user=%s %s %s route=%s status=%u in=%llu out=%llu ms=%.1f%s",
                 (unsigned long long)req->id, req->user[0] != '\0' ? req->user : "-", req->method,
                 req->path, req->route != NULL ? req->route : "other", req->status,
                 (unsigned long long)req->body_bytes, (unsigned long long)req->out_bytes,
                 (api__now() - req->t_start) * 1000.0,
                 toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (connection closed early)");
        api->hooks.log_cb(api->hooks.ud, toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? 6 : 4, line);
    }
    api__count_request(api, req->route != NULL ? req->route : "other", req->status);
    api__req_release(req);
    *req_cls = NULL;
}
