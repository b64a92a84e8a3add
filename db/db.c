/* db/db.c — modelpressd's storage on SQLite: the schema and its migrations, the job queue,
 * per-tensor metrics and the registry of content-addressed blobs.
 *
 * Invariants:
 * - Every SQL string of the project is in this file. The schema is the list `migrations`:
 *   entry i takes PRAGMA user_version from i to i+1 inside one BEGIN IMMEDIATE transaction,
 *   with the version re-read under the write lock, so a crash mid-migration leaves version i
 *   intact and two processes opening one file at once cannot apply a step twice. Entries are
 *   only ever appended.
 * - The statements used at run time are prepared once in db_open() and kept in db->st. Every
 *   use ends in stmt_done() (reset, clear bindings), so text bound with SQLITE_STATIC never
 *   outlives the call that bound it and no statement keeps a read transaction open.
 * - A job changes state only through an UPDATE or DELETE whose WHERE names the state(s) it
 *   may leave; when it touches no row, a lookup tells DB_ENOTFOUND from DB_ECONFLICT.
 * - Times are unix seconds as REAL (CLOCK_REALTIME); NULL in a time column means "not yet"
 *   and reads back as 0, as db_job_t documents.
 * - Every non-zero return leaves a message in db->err for db_errmsg().
 */
#include "db/db.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/* ---- schema -------------------------------------------------------------------------------- */

/* Ordered schema steps; db_open() applies the ones past the file's user_version. */
static const char *const migrations[] = {
    /* 1: jobs, their per-tensor metrics, and the blobs they point at. seq is the rowid and
     * breaks ties between jobs created in the same instant. STRICT makes a wrongly typed
     * bind an error instead of a silently converted value. */
    "CREATE TABLE jobs ("
    " seq INTEGER PRIMARY KEY,"
    " id TEXT NOT NULL UNIQUE CHECK (length(id) = 32),"
    " owner TEXT NOT NULL DEFAULT '',"
    " state TEXT NOT NULL DEFAULT 'queued'"
    "  CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'canceled')),"
    " model_blob TEXT NOT NULL,"
    " model_name TEXT,"
    " model_bytes INTEGER NOT NULL DEFAULT 0,"
    " dataset_blob TEXT,"
    " recipe TEXT NOT NULL,"
    " progress REAL NOT NULL DEFAULT 0,"
    " stage TEXT NOT NULL DEFAULT '',"
    " created_at REAL NOT NULL,"
    " started_at REAL,"
    " finished_at REAL,"
    " error_code TEXT,"
    " error_message TEXT,"
    " metrics TEXT,"
    " result_bytes INTEGER NOT NULL DEFAULT 0,"
    " attempts INTEGER NOT NULL DEFAULT 0"
    ") STRICT;"
    /* claim (state, oldest first) and the per-state counts */
    "CREATE INDEX jobs_state_created ON jobs (state, created_at);"
    /* a user's history */
    "CREATE INDEX jobs_owner_created ON jobs (owner, created_at);"
    /* the unfiltered history, newest first */
    "CREATE INDEX jobs_created ON jobs (created_at);"
    /* db_blob_refs */
    "CREATE INDEX jobs_model_blob ON jobs (model_blob);"
    "CREATE INDEX jobs_dataset_blob ON jobs (dataset_blob);"
    "CREATE TABLE tensor_metrics ("
    " job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,"
    " ordinal INTEGER NOT NULL,"
    " name TEXT NOT NULL,"
    " shape TEXT,"
    " elements INTEGER,"
    " sparsity REAL,"
    " bits_per_weight REAL,"
    " bytes_before INTEGER,"
    " bytes_after INTEGER,"
    " rel_error REAL,"
    " sqnr_db REAL,"
    " PRIMARY KEY (job_id, ordinal)"
    ") STRICT, WITHOUT ROWID;"
    "CREATE TABLE blobs ("
    " sha256 TEXT PRIMARY KEY CHECK (length(sha256) = 64),"
    " bytes INTEGER NOT NULL CHECK (bytes >= 0),"
    " kind TEXT NOT NULL CHECK (kind IN ('model', 'dataset')),"
    " created_at REAL NOT NULL"
    ") STRICT, WITHOUT ROWID;",
    /* 2: users of a shared server. Only the SHA-256 of a token is kept, so the database never
     * holds what would let someone act as a user. Quotas NULL: the server's defaults. */
    "CREATE TABLE users ("
    " name TEXT PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 63),"
    " token_sha256 TEXT NOT NULL UNIQUE CHECK (length(token_sha256) = 64),"
    " created_at REAL NOT NULL,"
    " quota_bytes INTEGER,"
    " quota_jobs INTEGER"
    ") STRICT, WITHOUT ROWID;",
    /* 3: datasets are blobs a user keeps, under a name, with what validation found in them
     * (info: JSON). Two people may upload the same bytes, and the same bytes may be a model
     * and a dataset, so a row is (sha256, kind, owner); the file is still stored once. Model
     * rows keep owner '' (a model belongs to the jobs that name it). */
    "CREATE TABLE blobs_v3 ("
    " sha256 TEXT NOT NULL CHECK (length(sha256) = 64),"
    " kind TEXT NOT NULL CHECK (kind IN ('model', 'dataset')),"
    " owner TEXT NOT NULL DEFAULT '',"
    " bytes INTEGER NOT NULL CHECK (bytes >= 0),"
    " name TEXT,"
    " info TEXT,"
    " created_at REAL NOT NULL,"
    " PRIMARY KEY (sha256, kind, owner)"
    ") STRICT, WITHOUT ROWID;"
    "INSERT INTO blobs_v3 (sha256, kind, owner, bytes, created_at)"
    " SELECT sha256, kind, '', bytes, created_at FROM blobs;"
    "DROP TABLE blobs;"
    "ALTER TABLE blobs_v3 RENAME TO blobs;"
    /* a user's datasets, newest first, and their bytes for the quota */
    "CREATE INDEX blobs_owner_kind ON blobs (owner, kind, created_at);",
};

#define N_MIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))

/* ---- statements ---------------------------------------------------------------------------- */

/* The column order read_job() expects. */
#define JOB_COLS                                                                                   \
    "id, owner, state, model_blob, model_name, model_bytes, dataset_blob, recipe, progress, "      \
    "stage, created_at, started_at, finished_at, error_code, error_message, metrics, "             \
    "result_bytes, attempts"

/* The history queries come in four shapes (any / by state / by owner / both) so each can use
 * its index; all take ?1 state, ?2 owner, ?3 limit, ?4 offset, unused ones left unbound. */
#define LIST_SQL(where)                                                                            \
    "SELECT " JOB_COLS " FROM jobs " where " ORDER BY created_at DESC, seq DESC"                   \
    " LIMIT ?3 OFFSET ?4"
#define COUNT_SQL(where) "SELECT count(*) FROM jobs " where
#define WHERE_STATE "WHERE state = ?1"
#define WHERE_OWNER "WHERE owner = ?2"
#define WHERE_BOTH "WHERE state = ?1 AND owner = ?2"

/* The column order read_dataset() expects. */
#define DATASET_COLS "sha256, owner, bytes, name, info, created_at"

enum stmt_id {
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_JOB_INSERT,
    ST_JOB_GET,
    ST_JOB_STATE,
    ST_LIST_ANY, /* the four list shapes, in filter-bit order: state = 1, owner = 2 */
    ST_LIST_STATE,
    ST_LIST_OWNER,
    ST_LIST_BOTH,
    ST_COUNT_ANY, /* likewise */
    ST_COUNT_STATE,
    ST_COUNT_OWNER,
    ST_COUNT_BOTH,
    ST_JOB_CLAIM,
    ST_JOB_PROGRESS,
    ST_JOB_FINISH,
    ST_JOB_CANCEL,
    ST_JOB_REQUEUE_ALL,
    ST_JOB_REQUEUE,
    ST_JOB_DELETE,
    ST_TM_DELETE,
    ST_TM_INSERT,
    ST_TM_GET,
    ST_BLOB_PUT,
    ST_BLOB_REFS,
    ST_BLOB_EXISTS,
    ST_BLOB_DELETE,
    ST_USER_ADD,
    ST_USER_BY_TOKEN,
    ST_USER_LIST,
    ST_USER_DELETE,
    ST_OWNER_USAGE,
    ST_DATASET_EXISTS,
    ST_DATASET_PUT,
    ST_DATASET_GET,
    ST_DATASET_LIST_ANY, /* owner NULL */
    ST_DATASET_LIST_OWNER,
    ST_DATASET_COUNT_ANY, /* owner NULL */
    ST_DATASET_COUNT_OWNER,
    ST_DATASET_DELETE,
    ST_N
};

static const char *const stmt_sql[ST_N] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_JOB_INSERT] = "INSERT INTO jobs (id, owner, state, model_blob, model_name, model_bytes,"
                      " dataset_blob, recipe, created_at)"
                      " VALUES (?1, ?2, 'queued', ?3, ?4, ?5, ?6, ?7, ?8)",
    [ST_JOB_GET] = "SELECT " JOB_COLS " FROM jobs WHERE id = ?1 AND (?2 IS NULL OR owner = ?2)",
    [ST_JOB_STATE] = "SELECT state FROM jobs WHERE id = ?1",
    [ST_LIST_ANY] = LIST_SQL(""),
    [ST_LIST_STATE] = LIST_SQL(WHERE_STATE),
    [ST_LIST_OWNER] = LIST_SQL(WHERE_OWNER),
    [ST_LIST_BOTH] = LIST_SQL(WHERE_BOTH),
    [ST_COUNT_ANY] = COUNT_SQL(""),
    [ST_COUNT_STATE] = COUNT_SQL(WHERE_STATE),
    [ST_COUNT_OWNER] = COUNT_SQL(WHERE_OWNER),
    [ST_COUNT_BOTH] = COUNT_SQL(WHERE_BOTH),
    /* One statement picks and takes the job, so no two claims can get the same one. */
    [ST_JOB_CLAIM] = "UPDATE jobs SET state = 'running', started_at = ?1, finished_at = NULL,"
                     " attempts = attempts + 1, progress = 0, stage = ''"
                     " WHERE id = (SELECT id FROM jobs WHERE state = 'queued'"
                     " ORDER BY created_at, seq LIMIT 1)"
                     " RETURNING " JOB_COLS,
    [ST_JOB_PROGRESS] = "UPDATE jobs SET progress = ?1, stage = ?2"
                        " WHERE id = ?3 AND state = 'running'",
    [ST_JOB_FINISH] = "UPDATE jobs SET state = ?1, finished_at = ?2, error_code = ?3,"
                      " error_message = ?4, metrics = ?5, result_bytes = ?6,"
                      " progress = CASE WHEN ?1 = 'succeeded' THEN 1.0 ELSE progress END,"
                      " stage = CASE WHEN ?1 = 'succeeded' THEN '' ELSE stage END"
                      " WHERE id = ?7 AND state = 'running'",
    [ST_JOB_CANCEL] = "UPDATE jobs SET state = 'canceled', finished_at = ?1"
                      " WHERE id = ?2 AND state = 'queued'",
    /* attempts stays: it counts how often a job was taken, crashes included. */
    [ST_JOB_REQUEUE_ALL] = "UPDATE jobs SET state = 'queued', started_at = NULL, progress = 0,"
                           " stage = '' WHERE state = 'running'",
    [ST_JOB_REQUEUE] = "UPDATE jobs SET state = 'queued', started_at = NULL, progress = 0,"
                       " stage = '' WHERE id = ?1 AND state = 'running'",
    /* tensor_metrics rows go with it (ON DELETE CASCADE). */
    [ST_JOB_DELETE] = "DELETE FROM jobs WHERE id = ?1"
                      " AND state IN ('succeeded', 'failed', 'canceled')",
    [ST_TM_DELETE] = "DELETE FROM tensor_metrics WHERE job_id = ?1",
    [ST_TM_INSERT] = "INSERT INTO tensor_metrics (job_id, ordinal, name, shape, elements,"
                     " sparsity, bits_per_weight, bytes_before, bytes_after, rel_error, sqnr_db)"
                     " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    /* The column order is tm_keys' order. */
    [ST_TM_GET] = "SELECT name, shape, elements, sparsity, bits_per_weight, bytes_before,"
                  " bytes_after, rel_error, sqnr_db FROM tensor_metrics WHERE job_id = ?1"
                  " ORDER BY ordinal",
    [ST_BLOB_PUT] = "INSERT INTO blobs (sha256, bytes, kind, created_at) VALUES (?1, ?2, ?3, ?4)"
                    " ON CONFLICT (sha256, kind, owner) DO NOTHING",
    /* A file is in use while a job names it or someone keeps it as a dataset. */
    [ST_BLOB_REFS] = "SELECT (SELECT count(*) FROM jobs WHERE model_blob = ?1 OR dataset_blob = ?1)"
                     " + (SELECT count(*) FROM blobs WHERE sha256 = ?1 AND kind = 'dataset')",
    [ST_BLOB_EXISTS] = "SELECT 1 FROM blobs WHERE sha256 = ?1",
    /* Refuses while referenced, so a job inserted after the caller counted keeps its blob. */
    [ST_BLOB_DELETE] =
        "DELETE FROM blobs WHERE sha256 = ?1 AND NOT EXISTS"
        " (SELECT 1 FROM jobs WHERE model_blob = ?1 OR dataset_blob = ?1)"
        " AND NOT EXISTS (SELECT 1 FROM blobs WHERE sha256 = ?1 AND kind = 'dataset')",
    [ST_USER_ADD] = "INSERT INTO users (name, token_sha256, created_at, quota_bytes, quota_jobs)"
                    " VALUES (?1, ?2, ?3, ?4, ?5)",
    [ST_USER_BY_TOKEN] = "SELECT name, created_at, quota_bytes, quota_jobs FROM users"
                         " WHERE token_sha256 = ?1",
    [ST_USER_LIST] = "SELECT name, created_at, quota_bytes, quota_jobs FROM users ORDER BY name",
    [ST_USER_DELETE] = "DELETE FROM users WHERE name = ?1",
    /* What a user holds: every upload and result of their jobs (a model uploaded twice counts
     * twice: it is stored once, but the quota is about what each person asks the server to
     * keep), and the jobs waiting or running. */
    [ST_OWNER_USAGE] = "SELECT coalesce(sum(model_bytes + result_bytes), 0)"
                       " + (SELECT coalesce(sum(bytes), 0) FROM blobs"
                       "    WHERE owner = ?1 AND kind = 'dataset'),"
                       " coalesce(sum(state IN ('queued', 'running')), 0)"
                       " FROM jobs WHERE owner = ?1",
    [ST_DATASET_EXISTS] =
        "SELECT 1 FROM blobs WHERE sha256 = ?1 AND kind = 'dataset' AND owner = ?2",
    /* Uploading the same bytes again keeps the dataset and takes the new name. */
    [ST_DATASET_PUT] = "INSERT INTO blobs (sha256, kind, owner, bytes, name, info, created_at)"
                       " VALUES (?1, 'dataset', ?2, ?3, ?4, ?5, ?6)"
                       " ON CONFLICT (sha256, kind, owner) DO UPDATE SET name = excluded.name,"
                       " info = excluded.info",
    [ST_DATASET_GET] = "SELECT " DATASET_COLS " FROM blobs WHERE sha256 = ?1 AND kind = 'dataset'"
                       " AND (?2 IS NULL OR owner = ?2) ORDER BY created_at LIMIT 1",
    /* ?2 owner (the _OWNER shapes), ?3 limit, ?4 offset */
    [ST_DATASET_LIST_ANY] = "SELECT " DATASET_COLS " FROM blobs WHERE kind = 'dataset'"
                            " ORDER BY created_at DESC, sha256, owner LIMIT ?3 OFFSET ?4",
    [ST_DATASET_LIST_OWNER] = "SELECT " DATASET_COLS " FROM blobs WHERE kind = 'dataset'"
                              " AND owner = ?2 ORDER BY created_at DESC, sha256 LIMIT ?3 OFFSET ?4",
    [ST_DATASET_COUNT_ANY] = "SELECT count(*) FROM blobs WHERE kind = 'dataset'",
    [ST_DATASET_COUNT_OWNER] = "SELECT count(*) FROM blobs WHERE kind = 'dataset' AND owner = ?2",
    [ST_DATASET_DELETE] = "DELETE FROM blobs WHERE sha256 = ?1 AND kind = 'dataset'"
                          " AND (?2 IS NULL OR owner = ?2)",
};

/* Report keys of one tensor (DESIGN.md, Reports), in ST_TM_GET's column order. */
static const char *const tm_keys[] = {"name",        "shape",           "elements",
                                      "sparsity",    "bits_per_weight", "bytes_before",
                                      "bytes_after", "rel_error",       "sqnr_db"};

struct db {
    sqlite3 *h;
    sqlite3_stmt *st[ST_N];
    int last_rc; /* SQLite result of the last step_write(), for callers that retry */
    char err[256];
};

static const char *const state_names[DB_JOB_N_STATES] = {
    [DB_JOB_QUEUED] = "queued", [DB_JOB_RUNNING] = "running",   [DB_JOB_SUCCEEDED] = "succeeded",
    [DB_JOB_FAILED] = "failed", [DB_JOB_CANCELED] = "canceled",
};

const char *db_job_state_name(db_job_state_t s)
{
    return (unsigned)s < DB_JOB_N_STATES ? state_names[s] : "unknown";
}

int db_job_state_parse(const char *name)
{
    for (int i = 0; name != NULL && i < DB_JOB_N_STATES; i++) {
        if (strcmp(name, state_names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

void db_job_clear(db_job_t *j)
{
    if (j == NULL) {
        return;
    }
    free(j->model_name);
    free(j->recipe);
    free(j->error_code);
    free(j->error_message);
    free(j->metrics);
    memset(j, 0, sizeof *j);
}

/* ---- helpers ------------------------------------------------------------------------------- */

static int set_err(db_t *db, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int set_err(db_t *db, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(db->err, sizeof db->err, fmt, ap);
    va_end(ap);
    return code;
}

static int sql_err(db_t *db)
{
    return set_err(db, DB_EIO, "%s", sqlite3_errmsg(db->h));
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* 16 bytes from the kernel's CSPRNG as 32 lowercase hex digits: job ids are also what a user
 * must know to reach a job, so they must not be guessable. */
static int new_id(char out[33])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char b[16];
    size_t got = 0;
    while (got < sizeof b) {
        ssize_t r = getrandom(b + got, sizeof b - got, 0);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        got += (size_t)r;
    }
    for (size_t i = 0; i < sizeof b; i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 15];
    }
    out[32] = '\0';
    return 0;
}

static void stmt_done(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

/* Binders keep the first failure in *rc and do nothing after it, so a function binds all its
 * parameters and checks once. Text is bound SQLITE_STATIC: stmt_done() drops it before the
 * caller's string can go away. */
static void bind_text(sqlite3_stmt *st, int i, const char *s, int *rc)
{
    if (*rc == SQLITE_OK) {
        *rc = s != NULL ? sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i);
    }
}

/* A fixed db_job_t array: at most cap - 1 bytes, so it reads back whole. "" (or NULL) binds
 * NULL when empty_null (the dataset blob: none), else "". */
static void bind_fixed(sqlite3_stmt *st, int i, const char *s, size_t cap, int empty_null, int *rc)
{
    size_t n = s != NULL ? strnlen(s, cap - 1) : 0;
    if (*rc == SQLITE_OK) {
        *rc = n == 0 && empty_null ? sqlite3_bind_null(st, i)
                                   : sqlite3_bind_text(st, i, n ? s : "", (int)n, SQLITE_STATIC);
    }
}

static void bind_int64(sqlite3_stmt *st, int i, int64_t v, int *rc)
{
    if (*rc == SQLITE_OK) {
        *rc = sqlite3_bind_int64(st, i, v);
    }
}

static void bind_double(sqlite3_stmt *st, int i, double v, int *rc)
{
    if (*rc == SQLITE_OK) {
        *rc = sqlite3_bind_double(st, i, v);
    }
}

static void col_fixed(sqlite3_stmt *st, int i, char *dst, size_t cap)
{
    const char *s = (const char *)sqlite3_column_text(st, i);
    snprintf(dst, cap, "%s", s != NULL ? s : "");
}

/* Run a statement that returns no rows; rc is the binders' result. 0 or DB_EIO; the SQLite
 * code stays in db->last_rc. */
static int step_write(db_t *db, sqlite3_stmt *st, int rc)
{
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
    }
    db->last_rc = rc;
    int ret = rc == SQLITE_DONE ? 0 : sql_err(db);
    stmt_done(st);
    return ret;
}

/* Step a lookup; rc is the binders' result. 1 with a row to read, 0 when there is none,
 * DB_EIO on failure. The caller reads the row, then calls stmt_done(). */
static int step_lookup(db_t *db, sqlite3_stmt *st, int rc)
{
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
    }
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : sql_err(db);
}

/* Bind the filters of a history query shape: ?1 state, ?2 owner, each only where the shape
 * has it (a statement has no slot past its highest parameter). */
static void bind_filter(sqlite3_stmt *st, int state, const char *owner, int *rc)
{
    if (state >= 0) {
        bind_text(st, 1, state_names[state], rc);
    }
    if (owner != NULL) {
        bind_text(st, 2, owner, rc);
    }
}

/* Run a statement whose one row holds one integer. */
static int step_int64(db_t *db, sqlite3_stmt *st, int rc, int64_t *out)
{
    int ret = step_lookup(db, st, rc);
    if (ret == 1) {
        *out = sqlite3_column_int64(st, 0);
        ret = 0;
    } else if (ret == 0) {
        ret = set_err(db, DB_EIO, "an aggregate returned no row");
    }
    stmt_done(st);
    return ret;
}

static int tx(db_t *db, enum stmt_id which)
{
    return step_write(db, db->st[which], SQLITE_OK);
}

/* Undo a failed transaction, keeping the message of what failed rather than the rollback's. */
static void rollback(db_t *db)
{
    char keep[sizeof db->err];
    memcpy(keep, db->err, sizeof keep);
    tx(db, ST_ROLLBACK);
    memcpy(db->err, keep, sizeof keep);
}

/* The state name of job id into state[cap]: 0, DB_ENOTFOUND or DB_EIO. */
static int job_state(db_t *db, const char *id, char *state, size_t cap)
{
    sqlite3_stmt *st = db->st[ST_JOB_STATE];
    int rc = SQLITE_OK, ret;
    bind_text(st, 1, id, &rc);
    if ((ret = step_lookup(db, st, rc)) == 1) {
        col_fixed(st, 0, state, cap);
        ret = 0;
    } else if (ret == 0) {
        ret = set_err(db, DB_ENOTFOUND, "no job %s", id != NULL ? id : "(null)");
    }
    stmt_done(st);
    return ret;
}

/* After a guarded change touched no row: is the job missing, or in another state? */
static int missing_or_conflict(db_t *db, const char *id, const char *allowed)
{
    char state[16];
    int ret = job_state(db, id, state, sizeof state);
    if (ret == 0) {
        ret = set_err(db, DB_ECONFLICT, "job %s is %s; this needs it %s", id, state, allowed);
    }
    return ret;
}

/* A state change of one job: its UPDATE/DELETE names the states it may leave. */
static int transition(db_t *db, sqlite3_stmt *st, int rc, const char *id, const char *allowed)
{
    int ret = step_write(db, st, rc);
    if (ret == 0 && sqlite3_changes(db->h) == 0) {
        ret = missing_or_conflict(db, id, allowed);
    }
    return ret;
}

/* A nullable text column into a malloc'd string; -1 when out of memory. */
static int col_dup(sqlite3_stmt *st, int i, char **dst)
{
    *dst = NULL;
    if (sqlite3_column_type(st, i) == SQLITE_NULL) {
        return 0;
    }
    const char *s = (const char *)sqlite3_column_text(st, i);
    if (s == NULL || (*dst = strdup(s)) == NULL) {
        return -1;
    }
    return 0;
}

/* One row of JOB_COLS into *j (cleared first; left cleared on failure). */
static int read_job(db_t *db, sqlite3_stmt *st, db_job_t *j)
{
    int state;
    db_job_clear(j);
    col_fixed(st, 0, j->id, sizeof j->id);
    col_fixed(st, 1, j->owner, sizeof j->owner);
    if ((state = db_job_state_parse((const char *)sqlite3_column_text(st, 2))) < 0) {
        set_err(db, DB_EIO, "job %s has an unknown state", j->id);
        db_job_clear(j);
        return DB_EIO;
    }
    j->state = (db_job_state_t)state;
    col_fixed(st, 3, j->model_blob, sizeof j->model_blob);
    j->model_bytes = sqlite3_column_int64(st, 5);
    col_fixed(st, 6, j->dataset_blob, sizeof j->dataset_blob);
    j->progress = sqlite3_column_double(st, 8);
    col_fixed(st, 9, j->stage, sizeof j->stage);
    j->created_at = sqlite3_column_double(st, 10);
    j->started_at = sqlite3_column_double(st, 11);
    j->finished_at = sqlite3_column_double(st, 12);
    j->result_bytes = sqlite3_column_int64(st, 16);
    j->attempts = sqlite3_column_int(st, 17);
    if (col_dup(st, 4, &j->model_name) || col_dup(st, 7, &j->recipe) ||
        col_dup(st, 13, &j->error_code) || col_dup(st, 14, &j->error_message) ||
        col_dup(st, 15, &j->metrics)) {
        db_job_clear(j);
        return set_err(db, DB_EIO, "out of memory reading a job");
    }
    return 0;
}

/* ---- open, close, migrate ------------------------------------------------------------------ */

static int read_pragma_int(sqlite3 *h, const char *sql, int *out)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(h, sql, -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        *out = sqlite3_column_int(st, 0);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc;
}

/* Apply the migrations past the file's version, one transaction each. */
static int migrate(sqlite3 *h, char *errbuf, size_t errlen)
{
    int version = 0, ret = -1;
    for (;;) {
        char setv[48];
        if (sqlite3_exec(h, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
            snprintf(errbuf, errlen, "cannot begin a migration: %s", sqlite3_errmsg(h));
            goto out;
        }
        if (read_pragma_int(h, "PRAGMA user_version", &version) != SQLITE_OK) {
            snprintf(errbuf, errlen, "cannot read the schema version: %s", sqlite3_errmsg(h));
            goto rollback;
        }
        if (version > N_MIGRATIONS) {
            snprintf(errbuf, errlen,
                     "the database has schema version %d; this program knows up to %d", version,
                     N_MIGRATIONS);
            goto rollback;
        }
        if (version == N_MIGRATIONS) {
            if (sqlite3_exec(h, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
                snprintf(errbuf, errlen, "cannot end the migration: %s", sqlite3_errmsg(h));
                goto rollback;
            }
            break;
        }
        snprintf(setv, sizeof setv, "PRAGMA user_version = %d", version + 1);
        if (sqlite3_exec(h, migrations[version], NULL, NULL, NULL) != SQLITE_OK ||
            sqlite3_exec(h, setv, NULL, NULL, NULL) != SQLITE_OK ||
            sqlite3_exec(h, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
            snprintf(errbuf, errlen, "migration to schema version %d failed: %s", version + 1,
                     sqlite3_errmsg(h));
            goto rollback;
        }
    }
    ret = 0;
    goto out;
rollback:
    sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL);
out:
    return ret;
}

static int journal_mode_cb(void *ud, int n, char **vals, char **names)
{
    snprintf((char *)ud, 16, "%s", n > 0 && vals[0] != NULL ? vals[0] : "");
    return 0;
}

int db_open(const char *path, db_t **out, char *errbuf, size_t errlen)
{
    char mode[16] = "";
    int ret = DB_EIO;
    db_t *db = calloc(1, sizeof *db);
    *out = NULL;
    if (errlen > 0) {
        errbuf[0] = '\0';
    }
    if (db == NULL) {
        snprintf(errbuf, errlen, "out of memory");
        goto out;
    }
    /* NOMUTEX: only the loop thread holds the connection (db.h). */
    if (sqlite3_open_v2(path, &db->h,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        snprintf(errbuf, errlen, "cannot open %s: %s", path,
                 db->h != NULL ? sqlite3_errmsg(db->h) : "out of memory");
        goto out;
    }
    sqlite3_extended_result_codes(db->h, 1);
    sqlite3_busy_timeout(db->h, 5000);
    if (sqlite3_exec(db->h, "PRAGMA journal_mode = WAL", journal_mode_cb, mode, NULL) !=
            SQLITE_OK ||
        sqlite3_exec(db->h, "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON", NULL, NULL,
                     NULL) != SQLITE_OK) {
        snprintf(errbuf, errlen, "cannot configure %s: %s", path, sqlite3_errmsg(db->h));
        goto out;
    }
    /* An in-memory database reports "memory"; a file that cannot do WAL (no shared memory
     * on its file system) would lose the durability and concurrency this design counts on. */
    if (strcmp(mode, "wal") != 0 && strcmp(mode, "memory") != 0) {
        snprintf(errbuf, errlen, "%s: journal mode is %s, not wal", path, mode);
        goto out;
    }
    if (migrate(db->h, errbuf, errlen) != 0) {
        goto out;
    }
    for (int i = 0; i < ST_N; i++) {
        if (sqlite3_prepare_v3(db->h, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &db->st[i],
                               NULL) != SQLITE_OK) {
            snprintf(errbuf, errlen, "cannot prepare a statement: %s", sqlite3_errmsg(db->h));
            goto out;
        }
    }
    *out = db;
    db = NULL;
    ret = 0;
out:
    db_close(db);
    return ret;
}

void db_close(db_t *db)
{
    if (db == NULL) {
        return;
    }
    for (int i = 0; i < ST_N; i++) {
        sqlite3_finalize(db->st[i]);
    }
    sqlite3_close(db->h);
    free(db);
}

const char *db_errmsg(db_t *db)
{
    return db != NULL ? db->err : "no database";
}

int db_schema_version(db_t *db)
{
    int v = 0;
    if (read_pragma_int(db->h, "PRAGMA user_version", &v) != SQLITE_OK) {
        return sql_err(db);
    }
    return v;
}

int db_integrity_check(db_t *db)
{
    sqlite3_stmt *st = NULL;
    int ret = 0;
    /* Rare (start-up, tests): prepared when asked for, not kept. */
    int rc = sqlite3_prepare_v2(db->h, "PRAGMA integrity_check", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
    }
    if (rc != SQLITE_ROW) {
        ret = sql_err(db);
        goto out;
    }
    const char *first = (const char *)sqlite3_column_text(st, 0);
    if (first == NULL || strcmp(first, "ok") != 0) {
        ret = set_err(db, DB_EIO, "integrity check: %s", first != NULL ? first : "(no answer)");
    }
out:
    sqlite3_finalize(st);
    return ret;
}

/* ---- jobs ---------------------------------------------------------------------------------- */

int db_job_insert(db_t *db, db_job_t *job)
{
    sqlite3_stmt *st = db->st[ST_JOB_INSERT];
    int ret = 0;
    if (job->recipe == NULL || job->model_blob[0] == '\0') {
        return set_err(db, DB_EINVAL, "a job needs a model blob and a recipe");
    }
    double created = now();
    /* A repeated id means 2^-128 bad luck, not a bug: draw again, a few times at most. */
    for (int attempt = 0; attempt < 3; attempt++) {
        int rc = SQLITE_OK;
        if (new_id(job->id) != 0) {
            return set_err(db, DB_EIO, "getrandom: %s", strerror(errno));
        }
        bind_text(st, 1, job->id, &rc);
        bind_fixed(st, 2, job->owner, sizeof job->owner, 0, &rc);
        bind_fixed(st, 3, job->model_blob, sizeof job->model_blob, 0, &rc);
        bind_text(st, 4, job->model_name, &rc);
        bind_int64(st, 5, job->model_bytes, &rc);
        bind_fixed(st, 6, job->dataset_blob, sizeof job->dataset_blob, 1, &rc);
        bind_text(st, 7, job->recipe, &rc);
        bind_double(st, 8, created, &rc);
        ret = step_write(db, st, rc);
        if (ret == 0 || db->last_rc != SQLITE_CONSTRAINT_UNIQUE) {
            break;
        }
    }
    if (ret == 0) {
        job->state = DB_JOB_QUEUED;
        job->created_at = created;
    } else {
        job->id[0] = '\0';
    }
    return ret;
}

int db_job_get(db_t *db, const char *id, const char *owner, db_job_t *out)
{
    sqlite3_stmt *st = db->st[ST_JOB_GET];
    int rc = SQLITE_OK, ret;
    db_job_clear(out);
    bind_text(st, 1, id, &rc);
    bind_text(st, 2, owner, &rc);
    if ((ret = step_lookup(db, st, rc)) == 1) {
        ret = read_job(db, st, out);
    } else if (ret == 0) {
        /* Another owner's job is answered exactly as a missing one. */
        ret = set_err(db, DB_ENOTFOUND, "no job %s", id != NULL ? id : "(null)");
    }
    stmt_done(st);
    return ret;
}

int db_job_list(db_t *db, int state, const char *owner, int limit, int offset, db_job_t **out,
                size_t *n, int64_t *total)
{
    int filter = (state >= 0 ? 1 : 0) | (owner != NULL ? 2 : 0);
    sqlite3_stmt *st = db->st[ST_LIST_ANY + filter];
    sqlite3_stmt *cnt = db->st[ST_COUNT_ANY + filter];
    db_job_t *jobs = NULL;
    size_t n_jobs = 0, cap = 0;
    int rc = SQLITE_OK, ret = 0;

    *out = NULL;
    *n = 0;
    *total = 0;
    if (state < -1 || state >= DB_JOB_N_STATES) {
        return set_err(db, DB_EINVAL, "no job state %d", state);
    }
    limit = limit < 1 ? 1 : limit > 1000 ? 1000 : limit;
    offset = offset < 0 ? 0 : offset;
    bind_filter(st, state, owner, &rc);
    bind_int64(st, 3, limit, &rc);
    bind_int64(st, 4, offset, &rc);
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n_jobs == cap) {
            size_t ncap = cap ? 2 * cap : 16;
            db_job_t *grown = realloc(jobs, ncap * sizeof *jobs);
            if (grown == NULL) {
                ret = set_err(db, DB_EIO, "out of memory listing jobs");
                goto out;
            }
            jobs = grown;
            cap = ncap;
        }
        memset(&jobs[n_jobs], 0, sizeof *jobs);
        if ((ret = read_job(db, st, &jobs[n_jobs])) != 0) {
            goto out;
        }
        n_jobs++;
        rc = SQLITE_OK;
    }
    if (rc != SQLITE_DONE) {
        ret = sql_err(db);
        goto out;
    }
    rc = SQLITE_OK;
    bind_filter(cnt, state, owner, &rc);
    ret = step_int64(db, cnt, rc, total);
out:
    stmt_done(st);
    if (ret != 0) {
        for (size_t i = 0; i < n_jobs; i++) {
            db_job_clear(&jobs[i]);
        }
        free(jobs);
        *total = 0;
    } else {
        *out = jobs;
        *n = n_jobs;
    }
    return ret;
}

int db_job_claim_next(db_t *db, db_job_t *out)
{
    sqlite3_stmt *st = db->st[ST_JOB_CLAIM];
    int rc = SQLITE_OK, ret;
    db_job_clear(out);
    /* In a transaction so that a job we fail to read back (out of memory) is not left
     * running with no worker. */
    if ((ret = tx(db, ST_BEGIN)) != 0) {
        return ret;
    }
    bind_double(st, 1, now(), &rc);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
    }
    if (rc == SQLITE_DONE) {
        ret = set_err(db, DB_ENOTFOUND, "no job is queued");
    } else if (rc != SQLITE_ROW) {
        ret = sql_err(db);
    } else if ((ret = read_job(db, st, out)) == 0 && sqlite3_step(st) != SQLITE_DONE) {
        ret = sql_err(db);
    }
    stmt_done(st);
    if (ret == 0) {
        ret = tx(db, ST_COMMIT);
    }
    if (ret != 0) {
        rollback(db);
        db_job_clear(out);
    }
    return ret;
}

int db_job_set_progress(db_t *db, const char *id, double progress, const char *stage)
{
    sqlite3_stmt *st = db->st[ST_JOB_PROGRESS];
    int rc = SQLITE_OK, ret;
    progress = progress > 0 ? (progress < 1 ? progress : 1) : 0; /* NaN too becomes 0 */
    /* Progress is redrawn by the next update anyway: no fsync for it, which would stall the
     * loop thread several times a second per worker. WAL keeps it atomic; the next FULL
     * commit makes it durable along with its own change. */
    if (sqlite3_exec(db->h, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL) != SQLITE_OK) {
        return sql_err(db);
    }
    bind_double(st, 1, progress, &rc);
    bind_fixed(st, 2, stage, sizeof((db_job_t *)0)->stage, 0, &rc);
    bind_text(st, 3, id, &rc);
    ret = transition(db, st, rc, id, "running");
    if (sqlite3_exec(db->h, "PRAGMA synchronous = FULL", NULL, NULL, NULL) != SQLITE_OK) {
        ret = sql_err(db);
    }
    return ret;
}

int db_job_finish(db_t *db, const char *id, db_job_state_t state, const char *error_code,
                  const char *error_message, const char *metrics_json, int64_t result_bytes)
{
    sqlite3_stmt *st = db->st[ST_JOB_FINISH];
    int rc = SQLITE_OK;
    int ok = state == DB_JOB_SUCCEEDED;
    if (state != DB_JOB_SUCCEEDED && state != DB_JOB_FAILED && state != DB_JOB_CANCELED) {
        return set_err(db, DB_EINVAL, "a job cannot finish as %s", db_job_state_name(state));
    }
    /* Only the fields that belong to the outcome are kept, as db_job_t documents them. */
    bind_text(st, 1, state_names[state], &rc);
    bind_double(st, 2, now(), &rc);
    bind_text(st, 3, ok ? NULL : error_code, &rc);
    bind_text(st, 4, ok ? NULL : error_message, &rc);
    bind_text(st, 5, ok ? metrics_json : NULL, &rc);
    bind_int64(st, 6, ok ? result_bytes : 0, &rc);
    bind_text(st, 7, id, &rc);
    return transition(db, st, rc, id, "running");
}

int db_job_cancel_queued(db_t *db, const char *id)
{
    sqlite3_stmt *st = db->st[ST_JOB_CANCEL];
    int rc = SQLITE_OK;
    bind_double(st, 1, now(), &rc);
    bind_text(st, 2, id, &rc);
    return transition(db, st, rc, id, "queued");
}

int db_job_requeue_running(db_t *db, int *n_requeued)
{
    int ret = step_write(db, db->st[ST_JOB_REQUEUE_ALL], SQLITE_OK);
    *n_requeued = ret == 0 ? sqlite3_changes(db->h) : 0;
    return ret;
}

int db_job_requeue(db_t *db, const char *id)
{
    sqlite3_stmt *st = db->st[ST_JOB_REQUEUE];
    int rc = SQLITE_OK;
    bind_text(st, 1, id, &rc);
    return transition(db, st, rc, id, "running");
}

int db_job_delete(db_t *db, const char *id)
{
    sqlite3_stmt *st = db->st[ST_JOB_DELETE];
    int rc = SQLITE_OK;
    bind_text(st, 1, id, &rc);
    return transition(db, st, rc, id, "succeeded, failed or canceled");
}

int db_job_count(db_t *db, db_job_state_t state, int64_t *n)
{
    sqlite3_stmt *st = db->st[ST_COUNT_STATE];
    int rc = SQLITE_OK;
    *n = 0;
    if ((unsigned)state >= DB_JOB_N_STATES) {
        return set_err(db, DB_EINVAL, "no job state %d", (int)state);
    }
    bind_text(st, 1, state_names[state], &rc);
    return step_int64(db, st, rc, n);
}

/* ---- per-tensor metrics -------------------------------------------------------------------- */

/* A count from the report: integral JSON numbers only; anything else (absent, null, a
 * fraction) stores NULL. */
static void bind_json_int(sqlite3_stmt *st, int i, const json_t *v, int *rc)
{
    double d = json_number_value(v);
    if (*rc != SQLITE_OK) {
        return;
    }
    if (json_is_integer(v)) {
        *rc = sqlite3_bind_int64(st, i, json_integer_value(v));
    } else if (json_is_real(v) && d == floor(d) && fabs(d) < 9.0e15) {
        *rc = sqlite3_bind_int64(st, i, (int64_t)d);
    } else {
        *rc = sqlite3_bind_null(st, i);
    }
}

static void bind_json_real(sqlite3_stmt *st, int i, const json_t *v, int *rc)
{
    if (*rc == SQLITE_OK) {
        *rc = json_is_number(v) ? sqlite3_bind_double(st, i, json_number_value(v))
                                : sqlite3_bind_null(st, i);
    }
}

/* Insert tensor number ordinal of the report. */
static int put_tensor(db_t *db, const char *job_id, int64_t ordinal, const json_t *t)
{
    sqlite3_stmt *st = db->st[ST_TM_INSERT];
    const json_t *shape = json_object_get(t, "shape");
    const char *name = json_string_value(json_object_get(t, "name"));
    char *shape_text = NULL;
    int rc = SQLITE_OK, ret;
    if (!json_is_object(t)) {
        return set_err(db, DB_EINVAL, "report tensor %lld is not an object", (long long)ordinal);
    }
    if (json_is_array(shape) && (shape_text = json_dumps(shape, JSON_COMPACT)) == NULL) {
        return set_err(db, DB_EIO, "out of memory storing tensor metrics");
    }
    bind_text(st, 1, job_id, &rc);
    bind_int64(st, 2, ordinal, &rc);
    bind_text(st, 3, name != NULL ? name : "", &rc);
    bind_text(st, 4, shape_text, &rc);
    bind_json_int(st, 5, json_object_get(t, tm_keys[2]), &rc);
    bind_json_real(st, 6, json_object_get(t, tm_keys[3]), &rc);
    bind_json_real(st, 7, json_object_get(t, tm_keys[4]), &rc);
    bind_json_int(st, 8, json_object_get(t, tm_keys[5]), &rc);
    bind_json_int(st, 9, json_object_get(t, tm_keys[6]), &rc);
    bind_json_real(st, 10, json_object_get(t, tm_keys[7]), &rc);
    bind_json_real(st, 11, json_object_get(t, tm_keys[8]), &rc);
    ret = step_write(db, st, rc);
    free(shape_text);
    return ret;
}

/* 0 when the job exists, DB_ENOTFOUND or DB_EIO otherwise. */
static int job_exists(db_t *db, const char *id)
{
    char state[16];
    return job_state(db, id, state, sizeof state);
}

int db_tensor_metrics_put(db_t *db, const char *job_id, const char *report_json)
{
    json_error_t jerr;
    json_t *root = NULL;
    const json_t *tensors;
    int rc = SQLITE_OK, ret;
    if (report_json == NULL ||
        (root = json_loads(report_json, JSON_REJECT_DUPLICATES, &jerr)) == NULL) {
        return set_err(db, DB_EINVAL, "report is not JSON: %s",
                       report_json == NULL ? "no text" : jerr.text);
    }
    tensors = json_object_get(root, "tensors");
    if (!json_is_object(root) || (tensors != NULL && !json_is_array(tensors))) {
        ret = set_err(db, DB_EINVAL, "report has no \"tensors\" array");
        goto out;
    }
    if ((ret = tx(db, ST_BEGIN)) != 0) {
        goto out;
    }
    if ((ret = job_exists(db, job_id)) != 0) {
        goto rollback;
    }
    bind_text(db->st[ST_TM_DELETE], 1, job_id, &rc);
    if ((ret = step_write(db, db->st[ST_TM_DELETE], rc)) != 0) {
        goto rollback;
    }
    for (size_t i = 0; i < json_array_size(tensors); i++) {
        if ((ret = put_tensor(db, job_id, (int64_t)i, json_array_get(tensors, i))) != 0) {
            goto rollback;
        }
    }
    if ((ret = tx(db, ST_COMMIT)) == 0) {
        goto out;
    }
rollback:
    rollback(db);
out:
    json_decref(root);
    return ret;
}

/* One column of ST_TM_GET as JSON: shape is stored as JSON text, the rest as typed values. */
static json_t *tm_col_json(sqlite3_stmt *st, int i)
{
    switch (sqlite3_column_type(st, i)) {
    case SQLITE_INTEGER:
        return json_integer(sqlite3_column_int64(st, i));
    case SQLITE_FLOAT:
        return json_real(sqlite3_column_double(st, i));
    case SQLITE_TEXT: {
        const char *s = (const char *)sqlite3_column_text(st, i);
        if (s == NULL) {
            return NULL;
        }
        return i == 1 ? json_loads(s, 0, NULL) : json_string(s);
    }
    default:
        return json_null();
    }
}

int db_tensor_metrics_get(db_t *db, const char *job_id, char **json_out)
{
    sqlite3_stmt *st = db->st[ST_TM_GET];
    json_t *arr = NULL;
    int rc = SQLITE_OK, ret;
    *json_out = NULL;
    if ((ret = job_exists(db, job_id)) != 0) {
        return ret;
    }
    if ((arr = json_array()) == NULL) {
        ret = set_err(db, DB_EIO, "out of memory reading tensor metrics");
        goto out;
    }
    bind_text(st, 1, job_id, &rc);
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *o = json_object();
        if (o == NULL || json_array_append_new(arr, o) != 0) {
            ret = set_err(db, DB_EIO, "out of memory reading tensor metrics");
            goto out;
        }
        for (int i = 0; i < (int)(sizeof tm_keys / sizeof tm_keys[0]); i++) {
            json_t *v = tm_col_json(st, i);
            /* json_object_set_new takes v even when it fails */
            if (v == NULL || json_object_set_new(o, tm_keys[i], v) != 0) {
                ret = set_err(db, DB_EIO, "cannot read tensor metrics of job %s", job_id);
                goto out;
            }
        }
        rc = SQLITE_OK;
    }
    if (rc != SQLITE_DONE) {
        ret = sql_err(db);
        goto out;
    }
    if ((*json_out = json_dumps(arr, JSON_COMPACT)) == NULL) {
        ret = set_err(db, DB_EIO, "out of memory reading tensor metrics");
    }
out:
    stmt_done(st);
    json_decref(arr);
    return ret;
}

/* ---- blobs --------------------------------------------------------------------------------- */

/* Blob ids become file names (blobs/sha256/ab/<hash>): only 64 lowercase hex digits pass. */
static int check_sha256(db_t *db, const char *hex)
{
    size_t i = 0;
    while (hex != NULL && i < 64 &&
           ((hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f'))) {
        i++;
    }
    if (i != 64 || hex[64] != '\0') {
        return set_err(db, DB_EINVAL, "a blob id is 64 lowercase hex digits");
    }
    return 0;
}

int db_blob_put(db_t *db, const char *sha256_hex, int64_t bytes, const char *kind)
{
    sqlite3_stmt *st = db->st[ST_BLOB_PUT];
    int rc = SQLITE_OK, ret;
    if ((ret = check_sha256(db, sha256_hex)) != 0) {
        return ret;
    }
    if (kind == NULL || (strcmp(kind, "model") != 0 && strcmp(kind, "dataset") != 0) || bytes < 0) {
        return set_err(db, DB_EINVAL, "a blob is a model or a dataset of 0 or more bytes");
    }
    bind_text(st, 1, sha256_hex, &rc);
    bind_int64(st, 2, bytes, &rc);
    bind_text(st, 3, kind, &rc);
    bind_double(st, 4, now(), &rc);
    return step_write(db, st, rc);
}

int db_blob_refs(db_t *db, const char *sha256_hex, int64_t *n_refs)
{
    sqlite3_stmt *st = db->st[ST_BLOB_REFS];
    int rc = SQLITE_OK;
    *n_refs = 0;
    bind_text(st, 1, sha256_hex, &rc);
    return step_int64(db, st, rc, n_refs);
}

int db_blob_delete(db_t *db, const char *sha256_hex)
{
    sqlite3_stmt *st = db->st[ST_BLOB_DELETE];
    int rc = SQLITE_OK, ret;
    bind_text(st, 1, sha256_hex, &rc);
    if ((ret = step_write(db, st, rc)) != 0 || sqlite3_changes(db->h) > 0) {
        return ret;
    }
    st = db->st[ST_BLOB_EXISTS];
    rc = SQLITE_OK;
    bind_text(st, 1, sha256_hex, &rc);
    if ((ret = step_lookup(db, st, rc)) == 1) {
        ret = set_err(db, DB_ECONFLICT, "blob %s is still used by a job or kept as a dataset",
                      sha256_hex);
    } else if (ret == 0) {
        ret = set_err(db, DB_ENOTFOUND, "no blob %s", sha256_hex != NULL ? sha256_hex : "(null)");
    }
    stmt_done(st);
    return ret;
}

/* ---- users --------------------------------------------------------------------------------- */

static int check_user_name(db_t *db, const char *name)
{
    size_t n = name != NULL ? strlen(name) : 0;
    if (n == 0 || n > 63) {
        return set_err(db, DB_EINVAL, "a user name has 1 to 63 characters");
    }
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || c == '@')) {
            return set_err(db, DB_EINVAL, "user name '%s': letters, digits and - _ . @ only", name);
        }
    }
    return 0;
}

static void read_user(sqlite3_stmt *st, db_user_t *u)
{
    memset(u, 0, sizeof *u);
    col_fixed(st, 0, u->name, sizeof u->name);
    u->created_at = sqlite3_column_double(st, 1);
    u->quota_bytes = sqlite3_column_type(st, 2) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 2);
    u->quota_jobs = sqlite3_column_type(st, 3) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 3);
}

int db_user_add(db_t *db, const char *name, const char *token_sha256_hex, int64_t quota_bytes,
                int64_t quota_jobs)
{
    sqlite3_stmt *st = db->st[ST_USER_ADD];
    int rc = SQLITE_OK, ret;
    if ((ret = check_user_name(db, name)) != 0 || (ret = check_sha256(db, token_sha256_hex)) != 0) {
        return ret;
    }
    bind_text(st, 1, name, &rc);
    bind_text(st, 2, token_sha256_hex, &rc);
    bind_double(st, 3, now(), &rc);
    if (rc == SQLITE_OK) {
        rc = quota_bytes < 0 ? sqlite3_bind_null(st, 4) : sqlite3_bind_int64(st, 4, quota_bytes);
    }
    if (rc == SQLITE_OK) {
        rc = quota_jobs < 0 ? sqlite3_bind_null(st, 5) : sqlite3_bind_int64(st, 5, quota_jobs);
    }
    ret = step_write(db, st, rc);
    if (ret != 0 && (db->last_rc & 0xff) == SQLITE_CONSTRAINT) {
        ret = set_err(db, DB_ECONFLICT, "user '%s' exists already (revoke it first)", name);
    }
    return ret;
}

int db_user_by_token(db_t *db, const char *token_sha256_hex, db_user_t *out)
{
    sqlite3_stmt *st = db->st[ST_USER_BY_TOKEN];
    int rc = SQLITE_OK, ret;
    memset(out, 0, sizeof *out);
    bind_text(st, 1, token_sha256_hex, &rc);
    if ((ret = step_lookup(db, st, rc)) == 1) {
        read_user(st, out);
        ret = 0;
    } else if (ret == 0) {
        ret = set_err(db, DB_ENOTFOUND, "no user has this token");
    }
    stmt_done(st);
    return ret;
}

int db_user_list(db_t *db, db_user_t **out, size_t *n)
{
    sqlite3_stmt *st = db->st[ST_USER_LIST];
    size_t cap = 0;
    int ret;
    *out = NULL;
    *n = 0;
    while ((ret = step_lookup(db, st, SQLITE_OK)) == 1) {
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            db_user_t *p = realloc(*out, cap * sizeof *p);
            if (p == NULL) {
                ret = set_err(db, DB_EIO, "out of memory");
                break;
            }
            *out = p;
        }
        read_user(st, &(*out)[(*n)++]);
    }
    stmt_done(st);
    if (ret < 0) {
        free(*out);
        *out = NULL;
        *n = 0;
        return ret;
    }
    return 0;
}

int db_user_delete(db_t *db, const char *name)
{
    sqlite3_stmt *st = db->st[ST_USER_DELETE];
    int rc = SQLITE_OK, ret;
    bind_text(st, 1, name, &rc);
    if ((ret = step_write(db, st, rc)) == 0 && sqlite3_changes(db->h) == 0) {
        ret = set_err(db, DB_ENOTFOUND, "no user '%s'", name != NULL ? name : "(null)");
    }
    return ret;
}

int db_owner_usage(db_t *db, const char *owner, int64_t *bytes, int64_t *active_jobs)
{
    sqlite3_stmt *st = db->st[ST_OWNER_USAGE];
    int rc = SQLITE_OK, ret;
    *bytes = *active_jobs = 0;
    bind_text(st, 1, owner, &rc);
    if ((ret = step_lookup(db, st, rc)) == 1) {
        *bytes = sqlite3_column_int64(st, 0);
        *active_jobs = sqlite3_column_int64(st, 1);
        ret = 0;
    } else if (ret == 0) {
        ret = set_err(db, DB_EIO, "an aggregate returned no row");
    }
    stmt_done(st);
    return ret;
}

/* ---- datasets (schema version 3) ----------------------------------------------------------- */

void db_dataset_clear(db_dataset_t *d)
{
    if (d == NULL) {
        return;
    }
    free(d->info);
    memset(d, 0, sizeof *d);
}

/* One row of DATASET_COLS into *d; -1 when out of memory. */
static int read_dataset(sqlite3_stmt *st, db_dataset_t *d)
{
    memset(d, 0, sizeof *d);
    col_fixed(st, 0, d->id, sizeof d->id);
    col_fixed(st, 1, d->owner, sizeof d->owner);
    d->bytes = sqlite3_column_int64(st, 2);
    col_fixed(st, 3, d->name, sizeof d->name);
    d->created_at = sqlite3_column_double(st, 5);
    return col_dup(st, 4, &d->info);
}

int db_dataset_put(db_t *db, const char *sha256_hex, const char *owner, const char *name,
                   int64_t bytes, const char *info_json, int *created)
{
    sqlite3_stmt *st = db->st[ST_DATASET_EXISTS];
    json_t *info = NULL;
    int rc = SQLITE_OK, ret;

    *created = 0;
    if ((ret = check_sha256(db, sha256_hex)) != 0) {
        return ret;
    }
    if (owner == NULL || bytes < 0 || name == NULL) {
        return set_err(db, DB_EINVAL, "a dataset needs an owner, a name and 0 or more bytes");
    }
    if (info_json != NULL) {
        info = json_loads(info_json, 0, NULL); /* not inside json_is_object: a macro */
        ret =
            json_is_object(info) ? 0 : set_err(db, DB_EINVAL, "dataset info is not a JSON object");
        json_decref(info);
        if (ret != 0) {
            return ret;
        }
    }
    bind_text(st, 1, sha256_hex, &rc);
    bind_text(st, 2, owner, &rc);
    ret = step_lookup(db, st, rc);
    stmt_done(st);
    if (ret < 0) {
        return ret;
    }
    *created = ret == 0;
    st = db->st[ST_DATASET_PUT];
    rc = SQLITE_OK;
    bind_text(st, 1, sha256_hex, &rc);
    bind_text(st, 2, owner, &rc);
    bind_int64(st, 3, bytes, &rc);
    bind_fixed(st, 4, name, sizeof((db_dataset_t *)0)->name, 0, &rc);
    bind_text(st, 5, info_json, &rc);
    bind_double(st, 6, now(), &rc);
    return step_write(db, st, rc);
}

int db_dataset_get(db_t *db, const char *sha256_hex, const char *owner, db_dataset_t *out)
{
    sqlite3_stmt *st = db->st[ST_DATASET_GET];
    int rc = SQLITE_OK, ret;

    memset(out, 0, sizeof *out);
    bind_text(st, 1, sha256_hex, &rc);
    bind_text(st, 2, owner, &rc);
    if ((ret = step_lookup(db, st, rc)) == 1) {
        ret =
            read_dataset(st, out) == 0 ? 0 : set_err(db, DB_EIO, "out of memory reading a dataset");
    } else if (ret == 0) {
        /* Another owner's dataset is answered exactly as a missing one. */
        ret =
            set_err(db, DB_ENOTFOUND, "no dataset %s", sha256_hex != NULL ? sha256_hex : "(null)");
    }
    stmt_done(st);
    return ret;
}

int db_dataset_list(db_t *db, const char *owner, int limit, int offset, db_dataset_t **out,
                    size_t *n, int64_t *total)
{
    sqlite3_stmt *st = db->st[owner != NULL ? ST_DATASET_LIST_OWNER : ST_DATASET_LIST_ANY];
    sqlite3_stmt *cnt = db->st[owner != NULL ? ST_DATASET_COUNT_OWNER : ST_DATASET_COUNT_ANY];
    size_t cap = 0;
    int rc = SQLITE_OK, ret;

    *out = NULL;
    *n = 0;
    *total = 0;
    limit = limit < 1 ? 1 : limit > 1000 ? 1000 : limit;
    offset = offset < 0 ? 0 : offset;
    bind_filter(st, -1, owner, &rc);
    bind_int64(st, 3, limit, &rc);
    bind_int64(st, 4, offset, &rc);
    while ((ret = step_lookup(db, st, rc)) == 1) {
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            db_dataset_t *p = realloc(*out, cap * sizeof *p);
            if (p == NULL) {
                ret = set_err(db, DB_EIO, "out of memory listing datasets");
                break;
            }
            *out = p;
        }
        if (read_dataset(st, &(*out)[*n]) != 0) {
            ret = set_err(db, DB_EIO, "out of memory listing datasets");
            break;
        }
        (*n)++;
    }
    stmt_done(st);
    if (ret >= 0) {
        rc = SQLITE_OK;
        bind_filter(cnt, -1, owner, &rc);
        ret = step_int64(db, cnt, rc, total);
    }
    if (ret < 0) {
        for (size_t i = 0; i < *n; i++) {
            db_dataset_clear(&(*out)[i]);
        }
        free(*out);
        *out = NULL;
        *n = 0;
        *total = 0;
        return ret;
    }
    return 0;
}

int db_dataset_delete(db_t *db, const char *sha256_hex, const char *owner)
{
    sqlite3_stmt *st = db->st[ST_DATASET_DELETE];
    int rc = SQLITE_OK, ret;

    bind_text(st, 1, sha256_hex, &rc);
    bind_text(st, 2, owner, &rc);
    if ((ret = step_write(db, st, rc)) == 0 && sqlite3_changes(db->h) == 0) {
        ret =
            set_err(db, DB_ENOTFOUND, "no dataset %s", sha256_hex != NULL ? sha256_hex : "(null)");
    }
    return ret;
}
