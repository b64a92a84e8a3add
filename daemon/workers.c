/* workers.c — the worker pool: threads that run compression jobs.
 *
 * The loop thread claims queued jobs from SQLite (dmn_pool_schedule) and hands each to an idle
 * worker under the pool's mutex. A worker loads the model, runs mp_pipeline_run() with a
 * progress callback and a cancel flag, evaluates the result on the job's dataset when it has one
 * (mp_evaluate), writes results/<job-id>/model.<format> and report.json (each to a temporary
 * name, fsynced, renamed), and reports back through an event queue guarded by the same mutex
 * plus uv_async_send(). Only the loop thread touches the
 * database: it records progress and the outcome when it drains the queue. Workers never touch
 * SQLite or libmicrohttpd.
 */
#include "daemon/dmn_int.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/modelpress.h"

#define PATH_BYTES 4096
/* Progress is sent at most this often per job (and on every change of stage). */
#define PROGRESS_INTERVAL_S 0.25

typedef enum { EV_PROGRESS, EV_DONE } ev_kind_t;

typedef struct ev {
    struct ev *next;
    ev_kind_t kind;
    int worker;
    char job_id[33];
    double progress;
    char stage[32];
    int rc;
    char *message; /* EV_DONE, failure */
    char *report;  /* EV_DONE, success: the report JSON text */
    int64_t result_bytes;
} ev_t;

typedef struct worker {
    dmn_pool_t *pool;
    int index;
    pthread_t thread;
    int started;
    /* Handed over under pool->mu. */
    int assigned;
    char job_id[33];
    char model_path[PATH_BYTES];
    char dataset_path[PATH_BYTES]; /* "" when the job brings no dataset */
    char *recipe;
    /* Set by the loop, read by the worker's pipeline. */
    atomic_int cancel;
    /* Loop thread only. */
    int busy;
    int requeue;      /* canceled by a drain: back to the queue, not canceled */
    double handed_at; /* monotonic seconds when the job was handed over */
    int timed_out;    /* canceled because it ran past the time budget */
    /* Worker thread only. */
    double last_progress;
    char last_stage[32];
} worker_t;

struct dmn_pool {
    uv_loop_t *loop;
    db_t *db;
    char *state_dir;
    int n;
    worker_t *w;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    ev_t *head, *tail;
    uv_async_t async;
    int stopping;
    int draining;
    void (*drain_cb)(void *ud);
    void *drain_ud;
    dmn_job_done_cb done_cb;
    void *done_ud;
    double job_timeout;      /* seconds, 0: none */
    int64_t job_memory_max;  /* bytes, 0: none */
    uv_timer_t budget_timer; /* checks running jobs against the time budget */
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void push_event(dmn_pool_t *p, ev_t *e)
{
    pthread_mutex_lock(&p->mu);
    if (p->tail != NULL) {
        p->tail->next = e;
    } else {
        p->head = e;
    }
    p->tail = e;
    pthread_mutex_unlock(&p->mu);
    uv_async_send(&p->async);
}

static void progress_cb(void *ud, double progress, const char *stage)
{
    worker_t *w = ud;
    double t = now_s();
    int new_stage = strncmp(stage != NULL ? stage : "", w->last_stage, sizeof w->last_stage) != 0;
    if (!new_stage && t - w->last_progress < PROGRESS_INTERVAL_S) {
        return;
    }
    ev_t *e = calloc(1, sizeof *e);
    if (e == NULL) {
        return; /* progress is best effort */
    }
    w->last_progress = t;
    snprintf(w->last_stage, sizeof w->last_stage, "%s", stage != NULL ? stage : "");
    e->kind = EV_PROGRESS;
    e->worker = w->index;
    memcpy(e->job_id, w->job_id, sizeof e->job_id);
    e->progress = progress;
    snprintf(e->stage, sizeof e->stage, "%s", w->last_stage);
    push_event(w->pool, e);
}

static int set_err(mp_errctx_t *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int set_err(mp_errctx_t *err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    err->code = code;
    return code;
}

static int fsync_path(const char *path, int dir)
{
    int fd = open(path, (dir ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    int rc = fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

static int write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        return -errno;
    }
    size_t n = strlen(text);
    int rc = fwrite(text, 1, n, f) == n ? 0 : -errno;
    if (fflush(f) != 0 && rc == 0) {
        rc = -errno;
    }
    if (rc == 0 && fsync(fileno(f)) != 0) {
        rc = -errno;
    }
    if (fclose(f) != 0 && rc == 0) {
        rc = -errno;
    }
    return rc;
}

/* Write the compressed model in the container the job asks for: .mpz when the recipe ends in
 * huffman (or says output.format mpz), ONNX with the graph rewritten when the upload was ONNX,
 * else safetensors. */
static int save_model(const mp_model_t *in, const mp_model_t *out, const char *format,
                      const char *path, mp_errctx_t *err)
{
    if (strcmp(format, "mpz") == 0) {
        return mp_mpz_save(out, path, err);
    }
    if (strcmp(format, "onnx") == 0) {
        mp_model_t *onnx = NULL;
        int rc = mp_onnx_apply(in, out, &onnx, err);
        if (rc == 0) {
            rc = mp_onnx_save(onnx, path, err);
        }
        mp_model_free(onnx);
        return rc;
    }
    return mp_safetensors_save(out, path, err);
}

/* The container a job's result is written in: the recipe's, except that an ONNX upload comes
 * back as ONNX unless the recipe asks for .mpz. */
static const char *result_format(const mp_model_t *in, const mp_recipe_t *recipe)
{
    const char *format = mp_recipe_output_format(recipe);
    return strcmp(format, "mpz") != 0 && mp_model_is_onnx(in) ? "onnx" : format;
}

/* Write the outputs of a job durably; returns 0 or an MP_E code with err filled. */
static int save_results(worker_t *w, const mp_model_t *in, const mp_model_t *out,
                        const char *format, const char *report, int64_t *result_bytes,
                        mp_errctx_t *err)
{
    char dir[PATH_BYTES], tmp[PATH_BYTES + 64], final[PATH_BYTES + 64];
    int rc;
    if (api_result_dir(w->pool->state_dir, w->job_id, dir, sizeof dir) != 0) {
        return set_err(err, MP_EIO, "result path too long");
    }
    if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
        return set_err(err, errno == ENOSPC ? MP_ENOSPC : MP_EIO, "cannot create %s: %s", dir,
                       strerror(errno));
    }
    snprintf(tmp, sizeof tmp, "%s/model.%s.tmp", dir, format);
    snprintf(final, sizeof final, "%s/model.%s", dir, format);
    if ((rc = save_model(in, out, format, tmp, err)) != 0) {
        unlink(tmp);
        return rc;
    }
    struct stat st;
    if ((rc = fsync_path(tmp, 0)) != 0 || stat(tmp, &st) != 0 || rename(tmp, final) != 0) {
        int e = rc != 0 ? -rc : errno;
        unlink(tmp);
        return set_err(err, e == ENOSPC ? MP_ENOSPC : MP_EIO, "cannot write the result: %s",
                       strerror(e));
    }
    *result_bytes = st.st_size;
    snprintf(tmp, sizeof tmp, "%s/report.json.tmp", dir);
    snprintf(final, sizeof final, "%s/report.json", dir);
    if ((rc = write_text(tmp, report)) != 0 || rename(tmp, final) != 0) {
        int e = rc != 0 ? -rc : errno;
        unlink(tmp);
        return set_err(err, e == ENOSPC ? MP_ENOSPC : MP_EIO, "cannot write the report: %s",
                       strerror(e));
    }
    fsync_path(dir, 1);
    return 0;
}

/* The memory budget: the pipeline holds a float working copy of each selected tensor, its
 * original values for the error figures, and the output, so a job needs about 3 x 4 bytes per
 * selected element on top of the mapped input. A job whose estimate is over the budget fails
 * before it allocates, alone; a job that still runs out of memory fails with ENOMEM, alone too,
 * since the core never aborts. */
static int check_memory(const dmn_pool_t *p, const mp_model_t *m, const mp_recipe_t *r,
                        mp_errctx_t *err)
{
    if (p->job_memory_max <= 0) {
        return 0;
    }
    double need = 0;
    for (size_t i = 0; i < m->n_tensors; i++) {
        if (mp_recipe_selects(r, &m->tensors[i])) {
            need += 12.0 * (double)mp_tensor_elements(&m->tensors[i]);
        }
    }
    if (need > (double)p->job_memory_max) {
        return set_err(err, MP_ETOOBIG,
                       "the job needs about %.0f MiB of working memory; this server's budget per "
                       "job is %.0f MiB (job-memory-max)",
                       need / 1048576.0, (double)p->job_memory_max / 1048576.0);
    }
    return 0;
}

/* The evaluate step (a job with a dataset): run the original and the compressed model on the
 * dataset and put the figures into the report as "evaluation" (DESIGN.md, Reports). The
 * compressed model runs as the ONNX graph its weights are written into (mp_onnx_apply),
 * whatever container the job stores it in. A failure fails the job, named as the evaluation's:
 * the user asked for these figures. */
static int evaluate(worker_t *w, const mp_model_t *in, const mp_model_t *out, char **report,
                    mp_errctx_t *err)
{
    mp_eval_opts_t opts = {.progress_cb = progress_cb, .ud = w, .cancel = &w->cancel};
    mp_eval_spec_t spec;
    mp_dataset_t *ds = NULL;
    int rc;

    progress_cb(w, 0.0, "evaluate");
    if ((rc = mp_recipe_evaluate(w->recipe, strlen(w->recipe), &spec, err)) == 0 &&
        (rc = mp_dataset_load(w->dataset_path, &ds, err)) == 0) {
        opts.latency_runs = spec.latency_runs;
        rc = mp_evaluate_pipeline(in, out, ds, &opts, report, err);
    }
    if (rc != 0 && rc != MP_ECANCELED) {
        char msg[sizeof err->msg];
        memcpy(msg, err->msg, sizeof msg);
        set_err(err, rc, "evaluation: %s", msg);
    }
    mp_dataset_free(ds);
    return rc;
}

static void run_job(worker_t *w, ev_t *done)
{
    mp_model_t *in = NULL, *out = NULL;
    mp_recipe_t *recipe = NULL;
    char *report = NULL;
    mp_errctx_t err = {0};
    mp_run_opts_t opts = {progress_cb, w, &w->cancel};
    int rc;

    w->last_progress = 0;
    w->last_stage[0] = '\0';
    progress_cb(w, 0.0, "load");
    if ((rc = mp_model_load(w->model_path, &in, &err)) != 0 ||
        (rc = mp_recipe_parse(w->recipe, strlen(w->recipe), &recipe, &err)) != 0 ||
        (rc = check_memory(w->pool, in, recipe, &err)) != 0 ||
        (rc = mp_pipeline_run(in, recipe, &opts, &out, &report, &err)) != 0 ||
        (w->dataset_path[0] != '\0' && (rc = evaluate(w, in, out, &report, &err)) != 0)) {
        goto out;
    }
    progress_cb(w, 1.0, "write");
    const char *format = result_format(in, recipe);
    if ((rc = mp_report_set_output_format(&report, format, &err)) != 0 ||
        (rc = save_results(w, in, out, format, report, &done->result_bytes, &err)) != 0) {
        goto out;
    }
    done->report = report;
    report = NULL;
out:
    done->rc = rc;
    if (rc != 0) {
        done->message = strdup(err.msg[0] != '\0' ? err.msg : mp_strerror(rc));
    }
    free(report);
    mp_model_free(out);
    mp_model_free(in);
    mp_recipe_free(recipe);
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    dmn_pool_t *p = w->pool;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!w->assigned && !p->stopping) {
            pthread_cond_wait(&p->cv, &p->mu);
        }
        if (!w->assigned) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        pthread_mutex_unlock(&p->mu);

        ev_t *done = calloc(1, sizeof *done);
        if (done == NULL) {
            /* Without memory for the event the loop would never hear back: wait and retry. */
            sleep(1);
            continue;
        }
        run_job(w, done);
        done->kind = EV_DONE;
        done->worker = w->index;
        memcpy(done->job_id, w->job_id, sizeof done->job_id);
        pthread_mutex_lock(&p->mu);
        w->assigned = 0;
        free(w->recipe);
        w->recipe = NULL;
        pthread_mutex_unlock(&p->mu);
        push_event(p, done);
    }
}

/* ---- loop thread ---- */

/* The report without its per-tensor list: the totals a job row keeps. */
static char *metrics_from_report(const char *report)
{
    json_t *j = json_loads(report, 0, NULL);
    if (j == NULL) {
        return NULL;
    }
    json_object_del(j, "tensors");
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return text;
}

static void finish_job(dmn_pool_t *p, worker_t *w, ev_t *e)
{
    int rc = 0;
    if (e->rc == 0) {
        char *metrics = metrics_from_report(e->report);
        if (db_tensor_metrics_put(p->db, e->job_id, e->report) != 0) {
            log_at(LOG_WARN_, "job=%s per-tensor metrics not stored: %s", e->job_id,
                   db_errmsg(p->db));
        }
        rc =
            db_job_finish(p->db, e->job_id, DB_JOB_SUCCEEDED, NULL, NULL, metrics, e->result_bytes);
        log_at(LOG_INFO_, "job=%s succeeded result_bytes=%lld", e->job_id,
               (long long)e->result_bytes);
        free(metrics);
    } else if (e->rc == MP_ECANCELED && w->timed_out) {
        char msg[160];
        api_result_remove(p->state_dir, e->job_id);
        snprintf(msg, sizeof msg,
                 "the job ran past this server's time budget of %g s (job-timeout)",
                 p->job_timeout);
        rc = db_job_finish(p->db, e->job_id, DB_JOB_FAILED, "ETIMEDOUT", msg, NULL, 0);
        log_at(LOG_INFO_, "job=%s failed ETIMEDOUT: %s", e->job_id, msg);
    } else if (e->rc == MP_ECANCELED && w->requeue) {
        api_result_remove(p->state_dir, e->job_id);
        rc = db_job_requeue(p->db, e->job_id);
        log_at(LOG_INFO_, "job=%s handed back to the queue (shutting down)", e->job_id);
    } else if (e->rc == MP_ECANCELED) {
        api_result_remove(p->state_dir, e->job_id);
        rc = db_job_finish(p->db, e->job_id, DB_JOB_CANCELED, "ECANCELED", "canceled by request",
                           NULL, 0);
        log_at(LOG_INFO_, "job=%s canceled", e->job_id);
    } else {
        api_result_remove(p->state_dir, e->job_id);
        rc = db_job_finish(p->db, e->job_id, DB_JOB_FAILED, mp_err_name(e->rc),
                           e->message != NULL ? e->message : mp_strerror(e->rc), NULL, 0);
        log_at(LOG_INFO_, "job=%s failed %s: %s", e->job_id, mp_err_name(e->rc),
               e->message != NULL ? e->message : "");
    }
    if (rc != 0) {
        log_at(LOG_ERR_, "job=%s outcome not recorded: %s", e->job_id, db_errmsg(p->db));
    }
    if (p->done_cb != NULL && !(e->rc == MP_ECANCELED && w->requeue)) {
        db_job_state_t st = e->rc == 0              ? DB_JOB_SUCCEEDED
                            : e->rc == MP_ECANCELED ? DB_JOB_CANCELED
                                                    : DB_JOB_FAILED;
        p->done_cb(p->done_ud, st, now_s() - w->handed_at);
    }
    w->busy = 0;
    w->requeue = 0;
    w->timed_out = 0;
}

static void async_cb(uv_async_t *handle)
{
    dmn_pool_t *p = handle->data;
    pthread_mutex_lock(&p->mu);
    ev_t *e = p->head;
    p->head = p->tail = NULL;
    pthread_mutex_unlock(&p->mu);
    while (e != NULL) {
        ev_t *next = e->next;
        worker_t *w = &p->w[e->worker];
        if (e->kind == EV_PROGRESS) {
            db_job_set_progress(p->db, e->job_id, e->progress, e->stage);
        } else {
            finish_job(p, w, e);
        }
        free(e->message);
        free(e->report);
        free(e);
        e = next;
    }
    if (p->draining) {
        if (dmn_pool_busy(p) == 0 && p->drain_cb != NULL) {
            void (*cb)(void *) = p->drain_cb;
            p->drain_cb = NULL;
            cb(p->drain_ud);
        }
        return;
    }
    dmn_pool_schedule(p);
}

/* A few times per budget: a job past it is asked to stop, and fails as timed out. */
static void budget_cb(uv_timer_t *t)
{
    dmn_pool_t *p = t->data;
    double now = now_s();
    for (int i = 0; i < p->n; i++) {
        worker_t *w = &p->w[i];
        if (w->busy && !w->timed_out && !w->requeue && now - w->handed_at > p->job_timeout) {
            w->timed_out = 1;
            atomic_store(&w->cancel, 1);
            log_at(LOG_WARN_, "job=%s over its time budget of %g s: stopping it", w->job_id,
                   p->job_timeout);
        }
    }
}

void dmn_pool_set_budgets(dmn_pool_t *p, double job_timeout_s, int64_t job_memory_max)
{
    p->job_timeout = job_timeout_s;
    p->job_memory_max = job_memory_max;
    if (job_timeout_s > 0) {
        /* Check four times per budget, between every 50 ms and every second. */
        double every = job_timeout_s * 250.0;
        uint64_t ms = every < 50 ? 50 : every > 1000 ? 1000 : (uint64_t)every;
        uv_timer_start(&p->budget_timer, budget_cb, ms, ms);
    } else {
        uv_timer_stop(&p->budget_timer);
    }
}

int dmn_pool_start(uv_loop_t *loop, db_t *db, const char *state_dir, int n, dmn_job_done_cb done_cb,
                   void *done_ud, dmn_pool_t **out)
{
    dmn_pool_t *p = calloc(1, sizeof *p);
    *out = NULL;
    if (p == NULL || (p->w = calloc((size_t)n, sizeof *p->w)) == NULL ||
        (p->state_dir = strdup(state_dir)) == NULL) {
        if (p != NULL) {
            free(p->w);
        }
        free(p);
        return -1;
    }
    p->loop = loop;
    p->db = db;
    p->done_cb = done_cb;
    p->done_ud = done_ud;
    p->n = n;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    uv_async_init(loop, &p->async, async_cb);
    p->async.data = p;
    uv_timer_init(loop, &p->budget_timer);
    p->budget_timer.data = p;
    for (int i = 0; i < n; i++) {
        worker_t *w = &p->w[i];
        w->pool = p;
        w->index = i;
        atomic_init(&w->cancel, 0);
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            log_at(LOG_ERR_, "cannot start worker thread %d", i);
            p->n = i;
            break;
        }
        w->started = 1;
    }
    *out = p;
    return p->n > 0 ? 0 : -1;
}

void dmn_pool_schedule(dmn_pool_t *p)
{
    if (p->draining) {
        return;
    }
    for (int i = 0; i < p->n; i++) {
        worker_t *w = &p->w[i];
        if (w->busy) {
            continue;
        }
        db_job_t job = {0};
        int rc = db_job_claim_next(p->db, &job);
        if (rc == DB_ENOTFOUND) {
            return;
        }
        if (rc != 0) {
            log_at(LOG_ERR_, "cannot claim a job: %s", db_errmsg(p->db));
            return;
        }
        char path[PATH_BYTES], dataset[PATH_BYTES] = "";
        char *recipe = job.recipe != NULL ? strdup(job.recipe) : NULL;
        if (api_blob_path(p->state_dir, job.model_blob, path, sizeof path) != 0 ||
            (job.dataset_blob[0] != '\0' &&
             api_blob_path(p->state_dir, job.dataset_blob, dataset, sizeof dataset) != 0) ||
            recipe == NULL) {
            free(recipe);
            db_job_finish(p->db, job.id, DB_JOB_FAILED, "EINTERNAL",
                          "cannot hand the job to a worker", NULL, 0);
            db_job_clear(&job);
            continue;
        }
        log_at(LOG_INFO_, "job=%s started worker=%d attempt=%d model=%s", job.id, i, job.attempts,
               job.model_name != NULL ? job.model_name : job.model_blob);
        w->busy = 1;
        w->requeue = 0;
        w->timed_out = 0;
        w->handed_at = now_s();
        atomic_store(&w->cancel, 0);
        pthread_mutex_lock(&p->mu);
        memcpy(w->job_id, job.id, sizeof w->job_id);
        memcpy(w->model_path, path, sizeof w->model_path);
        memcpy(w->dataset_path, dataset, sizeof w->dataset_path);
        w->recipe = recipe;
        w->assigned = 1;
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
        db_job_clear(&job);
    }
}

int dmn_pool_cancel(dmn_pool_t *p, const char *job_id)
{
    for (int i = 0; i < p->n; i++) {
        worker_t *w = &p->w[i];
        if (w->busy && strcmp(w->job_id, job_id) == 0) {
            atomic_store(&w->cancel, 1);
            return 0;
        }
    }
    return -1;
}

int dmn_pool_busy(const dmn_pool_t *p)
{
    int n = 0;
    for (int i = 0; i < p->n; i++) {
        n += p->w[i].busy;
    }
    return n;
}

void dmn_pool_drain(dmn_pool_t *p, void (*done_cb)(void *ud), void *ud)
{
    p->draining = 1;
    p->drain_cb = done_cb;
    p->drain_ud = ud;
    for (int i = 0; i < p->n; i++) {
        if (p->w[i].busy) {
            p->w[i].requeue = 1;
            atomic_store(&p->w[i].cancel, 1);
        }
    }
    if (dmn_pool_busy(p) == 0) {
        p->drain_cb = NULL;
        done_cb(ud);
    }
}

static void async_close_cb(uv_handle_t *h)
{
    dmn_pool_t *p = h->data;
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    while (p->head != NULL) {
        ev_t *next = p->head->next;
        free(p->head->message);
        free(p->head->report);
        free(p->head);
        p->head = next;
    }
    free(p->state_dir);
    free(p->w);
    free(p);
}

void dmn_pool_free(dmn_pool_t *p)
{
    if (p == NULL) {
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n; i++) {
        if (p->w[i].started) {
            pthread_join(p->w[i].thread, NULL);
        }
        free(p->w[i].recipe);
    }
    uv_timer_stop(&p->budget_timer);
    uv_close((uv_handle_t *)&p->budget_timer, NULL);
    uv_close((uv_handle_t *)&p->async, async_close_cb);
}
