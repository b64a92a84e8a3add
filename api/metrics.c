/* metrics.c — GET /metrics in Prometheus' text format (version 0.0.4).
 *
 * Jobs by state and the queue depth come from the database when scraped; requests by route and
 * status, bytes in and out, and the job-duration histogram are counted in memory by the loop
 * thread since the daemon started (counters reset on restart, as Prometheus expects).
 */
#include "api/api_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Upper bounds of the job-duration buckets, in seconds. */
static const double bucket_le[API_N_DURATION_BUCKETS] = {0.1, 0.5, 1,   5,    10,
                                                         30,  60,  300, 1800, 3600};

void api__count_request(api_t *api, const char *route, unsigned int status)
{
    api_metrics_t *m = &api->metrics;
    for (size_t i = 0; i < m->n_rows; i++) {
        if (m->rows[i].status == status && strcmp(m->rows[i].route, route) == 0) {
            m->rows[i].count++;
            return;
        }
    }
    if (m->n_rows < API_MAX_STATUS_ROWS) {
        m->rows[m->n_rows++] = (api_status_row_t){route, status, 1};
    }
}

void api_observe_job(api_t *api, db_job_state_t state, double run_seconds)
{
    api_metrics_t *m = &api->metrics;
    if ((unsigned)state >= DB_JOB_N_STATES) {
        return;
    }
    size_t b = 0;
    while (b < API_N_DURATION_BUCKETS && run_seconds > bucket_le[b]) {
        b++;
    }
    m->duration_buckets[state][b]++;
    m->duration_sum[state] += run_seconds;
    m->duration_count[state]++;
}

/* A growing text buffer; on allocation failure it stops growing and ok becomes 0. */
typedef struct buf {
    char *p;
    size_t n, cap;
    int ok;
} buf_t;

static void add(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(buf_t *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int w = vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
        va_end(ap);
        if (w < 0) {
            b->ok = 0;
            return;
        }
        if ((size_t)w < b->cap - b->n) {
            b->n += (size_t)w;
            return;
        }
        char *q = realloc(b->p, b->cap * 2 + (size_t)w);
        if (q == NULL) {
            b->ok = 0;
            return;
        }
        b->p = q;
        b->cap = b->cap * 2 + (size_t)w;
    }
}

enum MHD_Result api__get_metrics(api_req_t *req, struct MHD_Connection *conn)
{
    api_t *api = req->api;
    api_metrics_t *m = &api->metrics;
    buf_t b = {malloc(4096), 0, 4096, 1};
    if (b.p == NULL) {
        return MHD_NO;
    }
    add(&b, "# HELP modelpress_jobs Jobs in the database by state.\n"
            "# TYPE modelpress_jobs gauge\n");
    int64_t queued = 0;
    for (int s = 0; s < DB_JOB_N_STATES; s++) {
        int64_t n = 0;
        if (db_job_count(api->db, (db_job_state_t)s, &n) != 0) {
            free(b.p);
            return api__send_error(req, conn, "internal", "database: %s", db_errmsg(api->db));
        }
        if (s == DB_JOB_QUEUED) {
            queued = n;
        }
        add(&b, "modelpress_jobs{state=\"%s\"} %lld\n", db_job_state_name((db_job_state_t)s),
            (long long)n);
    }
    add(&b,
        "# HELP modelpress_queue_depth Jobs waiting for a worker.\n"
        "# TYPE modelpress_queue_depth gauge\nmodelpress_queue_depth %lld\n"
        "# HELP modelpress_received_bytes_total Request body bytes received.\n"
        "# TYPE modelpress_received_bytes_total counter\nmodelpress_received_bytes_total %llu\n"
        "# HELP modelpress_sent_bytes_total Response body bytes sent.\n"
        "# TYPE modelpress_sent_bytes_total counter\nmodelpress_sent_bytes_total %llu\n",
        (long long)queued, (unsigned long long)api->stats.bytes_in,
        (unsigned long long)api->stats.bytes_out);
    add(&b, "# HELP modelpress_job_duration_seconds Run time of finished jobs, by final state.\n"
            "# TYPE modelpress_job_duration_seconds histogram\n");
    for (int s = DB_JOB_SUCCEEDED; s < DB_JOB_N_STATES; s++) {
        const char *st = db_job_state_name((db_job_state_t)s);
        uint64_t cum = 0;
        for (size_t i = 0; i < API_N_DURATION_BUCKETS; i++) {
            cum += m->duration_buckets[s][i];
            add(&b, "modelpress_job_duration_seconds_bucket{state=\"%s\",le=\"%g\"} %llu\n", st,
                bucket_le[i], (unsigned long long)cum);
        }
        cum += m->duration_buckets[s][API_N_DURATION_BUCKETS];
        add(&b,
            "modelpress_job_duration_seconds_bucket{state=\"%s\",le=\"+Inf\"} %llu\n"
            "modelpress_job_duration_seconds_sum{state=\"%s\"} %.6f\n"
            "modelpress_job_duration_seconds_count{state=\"%s\"} %llu\n",
            st, (unsigned long long)cum, st, m->duration_sum[s], st,
            (unsigned long long)m->duration_count[s]);
    }
    add(&b, "# HELP modelpress_http_requests_total Requests answered, by route and status.\n"
            "# TYPE modelpress_http_requests_total counter\n");
    for (size_t i = 0; i < m->n_rows; i++) {
        add(&b, "modelpress_http_requests_total{route=\"%s\",status=\"%u\"} %llu\n",
            m->rows[i].route, m->rows[i].status, (unsigned long long)m->rows[i].count);
    }
    if (!b.ok) {
        free(b.p);
        return MHD_NO;
    }
    struct MHD_Response *resp = MHD_create_response_from_buffer(b.n, b.p, MHD_RESPMEM_MUST_FREE);
    if (resp == NULL) {
        free(b.p);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8");
    req->status = MHD_HTTP_OK;
    req->out_bytes += b.n;
    enum MHD_Result r = MHD_queue_response(conn, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    return r;
}
