/* main.c — modelpressd: the compression service.
 *
 * Wires the parts together on one libuv loop: configuration (config.c), the SQLite database
 * (db/), the HTTP API (api/) served by libmicrohttpd through http.c, and the worker pool
 * (workers.c). At start, jobs a crash left `running` go back to `queued`, so nothing accepted is
 * lost. The first line on stdout is `modelpressd listening on http://HOST:PORT/` (scripts and
 * tests read the port from it when --listen asks for port 0).
 *
 * SIGTERM or SIGINT: stop accepting connections and jobs, ask running jobs to stop and hand them
 * back to the queue, then exit 0. If workers do not hand back within stop-timeout seconds, their
 * jobs are re-queued in the database and the process exits anyway.
 */
#include "daemon/dmn_int.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/modelpress.h"

typedef struct dmn {
    dmn_config_t cfg;
    uv_loop_t *loop;
    db_t *db;
    api_t *api;
    dmn_pool_t *pool;
    dmn_http_t *http;
    uv_signal_t sigterm, sigint;
    uv_timer_t stop_timer;
    int stopping;
    int timer_started;
} dmn_t;

static void on_job_queued(void *ud)
{
    dmn_t *d = ud;
    dmn_pool_schedule(d->pool);
}

static int on_job_cancel(void *ud, const char *job_id)
{
    dmn_t *d = ud;
    int rc = dmn_pool_cancel(d->pool, job_id);
    if (rc == 0) {
        log_at(LOG_INFO_, "job=%s cancel requested", job_id);
    }
    return rc;
}

static void on_job_done(void *ud, db_job_state_t state, double run_seconds)
{
    dmn_t *d = ud;
    if (d->api != NULL) {
        api_observe_job(d->api, state, run_seconds);
    }
}

static void on_request_log(void *ud, int level, const char *line)
{
    log_at(level, "%s", line);
}

static void shutdown_now(dmn_t *d)
{
    dmn_notify_close();
    dmn_http_stop(d->http);
    d->http = NULL;
    dmn_pool_free(d->pool);
    d->pool = NULL;
    uv_close((uv_handle_t *)&d->sigterm, NULL);
    uv_close((uv_handle_t *)&d->sigint, NULL);
    if (d->timer_started) {
        uv_close((uv_handle_t *)&d->stop_timer, NULL);
    }
}

static void drained_cb(void *ud)
{
    dmn_t *d = ud;
    log_at(LOG_INFO_, "every running job was handed back; stopping");
    if (d->timer_started) {
        uv_timer_stop(&d->stop_timer);
    }
    shutdown_now(d);
}

static void stop_timeout_cb(uv_timer_t *t)
{
    dmn_t *d = t->data;
    int n = 0;
    log_at(LOG_WARN_, "workers did not stop within %llds; re-queueing their jobs and exiting",
           (long long)d->cfg.stop_timeout);
    db_job_requeue_running(d->db, &n);
    db_close(d->db);
    fflush(NULL);
    _exit(0);
}

static void signal_cb(uv_signal_t *s, int signum)
{
    dmn_t *d = s->data;
    if (d->stopping) {
        return;
    }
    d->stopping = 1;
    dmn_notify_stopping();
    log_at(LOG_INFO_, "%s: no new connections or jobs; handing running jobs back to the queue",
           signum == SIGTERM ? "SIGTERM" : "SIGINT");
    dmn_http_quiesce(d->http);
    api_set_draining(d->api);
    uv_timer_init(d->loop, &d->stop_timer);
    d->stop_timer.data = d;
    d->timer_started = 1;
    uv_timer_start(&d->stop_timer, stop_timeout_cb, (uint64_t)d->cfg.stop_timeout * 1000, 0);
    dmn_pool_drain(d->pool, drained_cb, d);
}

static const char *pick_web_dir(const dmn_config_t *cfg)
{
    struct stat st;
    if (cfg->web_dir[0] != '\0') {
        return cfg->web_dir;
    }
    if (stat(MP_WEB_DIR "/index.html", &st) == 0) {
        return MP_WEB_DIR;
    }
    return MP_SRC_WEB_DIR;
}

int main(int argc, char **argv)
{
    dmn_t d;
    char errbuf[512], db_path[4200], url[128];
    int rc, exit_code = 1;

    memset(&d, 0, sizeof d);
    signal(SIGPIPE, SIG_IGN);
    if (argc > 1 && strcmp(argv[1], "token") == 0) {
        return dmn_token_main(argc - 1, argv + 1);
    }
    rc = dmn_config_load(&d.cfg, argc, argv, NULL, NULL);
    if (rc != 0) {
        dmn_config_cleanup(&d.cfg);
        return rc > 0 ? 0 : 2;
    }
    int workers = (int)d.cfg.workers;
    if (workers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        workers = n > 0 ? (int)n : 1;
    }
    if (mkdir(d.cfg.state_dir, 0750) != 0 && errno != EEXIST) {
        log_at(LOG_ERR_, "cannot create state-dir %s: %s", d.cfg.state_dir, strerror(errno));
        goto out;
    }
    snprintf(db_path, sizeof db_path, "%s/modelpress.db", d.cfg.state_dir);
    if (db_open(db_path, &d.db, errbuf, sizeof errbuf) != 0) {
        log_at(LOG_ERR_, "cannot open the database %s: %s", db_path, errbuf);
        goto out;
    }
    int requeued = 0;
    if (db_job_requeue_running(d.db, &requeued) != 0) {
        log_at(LOG_ERR_, "cannot re-queue interrupted jobs: %s", db_errmsg(d.db));
        goto out;
    }
    if (requeued > 0) {
        log_at(LOG_INFO_, "%d job(s) interrupted by the last stop went back to the queue",
               requeued);
    }
    d.loop = uv_default_loop();
    if (dmn_pool_start(d.loop, d.db, d.cfg.state_dir, workers, on_job_done, &d, &d.pool) != 0) {
        log_at(LOG_ERR_, "cannot start the worker pool");
        goto out;
    }
    dmn_pool_set_budgets(d.pool, (double)d.cfg.job_timeout_ms / 1000.0, d.cfg.job_memory_max);
    api_hooks_t hooks = {&d, on_job_queued, on_job_cancel, on_request_log};
    int auth = dmn_config_auth_on(&d.cfg);
    api_config_t acfg = {d.cfg.state_dir,   pick_web_dir(&d.cfg), (uint64_t)d.cfg.upload_max, auth,
                         d.cfg.quota_bytes, d.cfg.quota_jobs};
    if (api_new(&acfg, d.db, &hooks, &d.api, errbuf, sizeof errbuf) != 0) {
        log_at(LOG_ERR_, "%s", errbuf);
        goto out;
    }
    if (dmn_http_start(d.loop, &d.cfg, d.api, &d.http, url, sizeof url) != 0) {
        goto out;
    }
    printf("modelpressd listening on %s\n", url);
    fflush(stdout);
    log_at(LOG_INFO_, "modelpressd %s listening on %s state-dir=%s workers=%d kernels=%s auth=%s",
           MP_VERSION_STRING, url, d.cfg.state_dir, workers, mp_kern_isa(), auth ? "on" : "off");
    uv_signal_init(d.loop, &d.sigterm);
    uv_signal_init(d.loop, &d.sigint);
    d.sigterm.data = d.sigint.data = &d;
    uv_signal_start(&d.sigterm, signal_cb, SIGTERM);
    uv_signal_start(&d.sigint, signal_cb, SIGINT);
    dmn_notify_ready(d.loop, url);
    dmn_pool_schedule(d.pool);
    uv_run(d.loop, UV_RUN_DEFAULT);
    uv_loop_close(d.loop);
    exit_code = 0;
    log_at(LOG_INFO_, "stopped");
out:
    api_free(d.api);
    db_close(d.db);
    dmn_config_cleanup(&d.cfg);
    return exit_code;
}
