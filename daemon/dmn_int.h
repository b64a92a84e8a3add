/* dmn_int.h — the parts of modelpressd: configuration, logging, the HTTP server on the libuv
 * loop, and the worker pool.
 *
 * Threads (DESIGN.md, Threads): the loop thread owns libuv, libmicrohttpd (driven through its
 * epoll fd and a timer armed from MHD_get_timeout) and the SQLite connection; worker threads run
 * mp_pipeline_run() and hand progress and results back through a mutex-guarded queue and
 * uv_async_send(). Workers never touch SQLite or MHD.
 */
#ifndef MP_DMN_INT_H
#define MP_DMN_INT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "api/api.h"
#include "db/db.h"

/* ---- configuration (config.c) ---- */

typedef struct dmn_config {
    char *config_file;
    char *listen; /* HOST:PORT, or [V6]:PORT */
    char *state_dir;
    char *web_dir;
    int64_t workers;            /* 0: one per core */
    int64_t upload_max;         /* bytes */
    int64_t connection_timeout; /* seconds */
    int64_t max_connections;
    int64_t per_ip_connections;
    int64_t stop_timeout; /* seconds SIGTERM waits for workers to hand back jobs */
    char *log_level;
    char *auth; /* on, off, auto */
    int64_t quota_bytes;
    int64_t quota_jobs;
    int64_t job_timeout_ms; /* 0: none */
    int64_t job_memory_max; /* bytes, 0: none */
} dmn_config_t;

/* Fill cfg from defaults < config file < MODELPRESS_* environment < flags. Returns 0, 1 when
 * the command line asked for --help or --version (printed; exit 0), or -1 with the reason
 * printed to stderr (exit 2). Arguments that are not options go to positional (at most
 * *n_positional of them; *n_positional receives the count); with n_positional NULL they are
 * refused. */
int dmn_config_load(dmn_config_t *cfg, int argc, char **argv, char **positional, int *n_positional);
/* 1 when cfg asks for tokens: auth=on, or auto and the listen address is not loopback. */
int dmn_config_auth_on(const dmn_config_t *cfg);

/* ---- users (token.c) ---- */

/* `modelpressd token add|list|revoke …`: exit status. */
int dmn_token_main(int argc, char **argv);
void dmn_config_cleanup(dmn_config_t *cfg);

/* ---- logging (log.c) ---- */

enum { LOG_ERR_ = 3, LOG_WARN_ = 4, LOG_INFO_ = 6, LOG_DEBUG_ = 7 };
/* Set the threshold from "error", "warning", "info" or "debug"; -1 if unknown. */
int dmn_log_set_level(const char *name);
int dmn_log_enabled(int level);
void dmn_log_at(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_at(level, ...)                                                                         \
    do {                                                                                           \
        if (dmn_log_enabled(level)) {                                                              \
            dmn_log_at(level, __VA_ARGS__);                                                        \
        }                                                                                          \
    } while (0)

/* ---- HTTP on the loop (http.c) ---- */

typedef struct dmn_http dmn_http_t;
struct sockaddr_storage;
/* "HOST:PORT" or "[V6]:PORT" (numeric port) into a socket address; -1 if it is not one. */
int dmn_parse_listen(const char *listen, struct sockaddr_storage *ss, int *is_v6);
/* Bind and start serving; prints nothing. bound_url receives http://HOST:PORT/. */
int dmn_http_start(uv_loop_t *loop, const dmn_config_t *cfg, api_t *api, dmn_http_t **out,
                   char *bound_url, size_t url_len);
/* Stop accepting connections; those open go on. */
void dmn_http_quiesce(dmn_http_t *h);
/* Stop serving and close the handles; *h is freed from the close callbacks. */
void dmn_http_stop(dmn_http_t *h);

/* ---- systemd (notify.c) ---- */

/* READY=1 (and the watchdog timer when WatchdogSec= is set); STOPPING=1; close the timer. */
void dmn_notify_ready(uv_loop_t *loop, const char *url);
void dmn_notify_stopping(void);
void dmn_notify_close(void);

/* ---- the worker pool (workers.c) ---- */

typedef struct dmn_pool dmn_pool_t;
/* Start n worker threads; the pool claims queued jobs from db on the loop thread. done_cb
 * (may be NULL) hears of every job that ends here, on the loop thread. */
typedef void (*dmn_job_done_cb)(void *ud, db_job_state_t state, double run_seconds);
int dmn_pool_start(uv_loop_t *loop, db_t *db, const char *state_dir, int n, dmn_job_done_cb done_cb,
                   void *done_ud, dmn_pool_t **out);
/* Limits per job: run time in seconds and estimated working memory in bytes (0: none). */
void dmn_pool_set_budgets(dmn_pool_t *p, double job_timeout_s, int64_t job_memory_max);
/* Claim queued jobs for idle workers. */
void dmn_pool_schedule(dmn_pool_t *p);
/* Ask a running job to stop; 0 if it was running here. */
int dmn_pool_cancel(dmn_pool_t *p, const char *job_id);
/* SIGTERM: running jobs are asked to stop and go back to the queue; done_cb runs on the loop
 * thread once every worker is idle. */
void dmn_pool_drain(dmn_pool_t *p, void (*done_cb)(void *ud), void *ud);
/* Jobs running now. */
int dmn_pool_busy(const dmn_pool_t *p);
/* Join the threads and free (after drain). */
void dmn_pool_free(dmn_pool_t *p);

#endif /* MP_DMN_INT_H */
