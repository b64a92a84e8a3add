/* tests/db/check_db.c — the storage layer of modelpressd against its contract in db/db.h.
 *
 * Most cases run on ":memory:" through the checked fixture (a fresh database per test). The
 * cases about files — reopening, crash recovery (a close without finishing, and a child
 * process that claims and _exit()s without closing), two connections racing for one job,
 * rows removed by a cascade — use a real file in a mkdtemp folder, removed at the end, and
 * look at the file with plain SQLite where db.h offers no reader.
 */
#include "db/db.h"

#include <check.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SHA_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define SHA_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define SHA_C "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define SHA_D "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
#define NO_SUCH_JOB "00000000000000000000000000000000"
#define RECIPE "{\"steps\":[{\"quantize\":{\"bits\":8}}]}"

static db_t *db; /* the fixture's :memory: database */

static void open_memory(void)
{
    char err[256];
    ck_assert_int_eq(db_open(":memory:", &db, err, sizeof err), 0);
    ck_assert_ptr_nonnull(db);
}

static void close_memory(void)
{
    db_close(db);
    db = NULL;
}

static double wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Insert a queued job and copy its id to id[33]. model_name and recipe stay the test's. */
static void insert_job(db_t *d, const char *owner, const char *model, const char *dataset, char *id)
{
    db_job_t j = {0};
    snprintf(j.owner, sizeof j.owner, "%s", owner);
    snprintf(j.model_blob, sizeof j.model_blob, "%s", model);
    snprintf(j.dataset_blob, sizeof j.dataset_blob, "%s", dataset);
    j.recipe = RECIPE;
    j.model_bytes = 1000;
    ck_assert_int_eq(db_job_insert(d, &j), 0);
    memcpy(id, j.id, 33);
}

static db_job_state_t state_of(db_t *d, const char *id)
{
    db_job_t j = {0};
    ck_assert_int_eq(db_job_get(d, id, NULL, &j), 0);
    db_job_state_t s = j.state;
    db_job_clear(&j);
    return s;
}

static int64_t count_of(db_t *d, db_job_state_t s)
{
    int64_t n = -1;
    ck_assert_int_eq(db_job_count(d, s, &n), 0);
    return n;
}

/* ---- files in a temporary folder ----------------------------------------------------------- */

typedef struct {
    char dir[64];
    char path[128];
} tmpdb_t;

static void tmpdb_make(tmpdb_t *t)
{
    snprintf(t->dir, sizeof t->dir, "/tmp/check_db.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(t->dir));
    snprintf(t->path, sizeof t->path, "%s/modelpress.db", t->dir);
}

static void tmpdb_remove(tmpdb_t *t)
{
    static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};
    char p[160];
    for (size_t i = 0; i < sizeof suffix / sizeof suffix[0]; i++) {
        snprintf(p, sizeof p, "%s%s", t->path, suffix[i]);
        unlink(p);
    }
    ck_assert_int_eq(rmdir(t->dir), 0);
}

static db_t *open_file(const char *path)
{
    char err[256];
    db_t *d = NULL;
    ck_assert_msg(db_open(path, &d, err, sizeof err) == 0, "db_open: %s", err);
    return d;
}

/* One integer from a query on a plain SQLite connection to the file. */
static int64_t raw_int(const char *path, const char *sql)
{
    sqlite3 *h = NULL;
    sqlite3_stmt *st = NULL;
    ck_assert_int_eq(sqlite3_open(path, &h), SQLITE_OK);
    ck_assert_int_eq(sqlite3_prepare_v2(h, sql, -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(h);
    return v;
}

/* ---- schema -------------------------------------------------------------------------------- */

#define SCHEMA_VERSION 3

START_TEST(test_schema_memory)
{
    ck_assert_int_eq(db_schema_version(db), SCHEMA_VERSION);
    ck_assert_int_eq(db_integrity_check(db), 0);
}
END_TEST

START_TEST(test_schema_file_reopen)
{
    tmpdb_t t;
    tmpdb_make(&t);
    db_t *d = open_file(t.path);
    ck_assert_int_eq(db_schema_version(d), SCHEMA_VERSION);
    db_close(d);
    d = open_file(t.path);
    ck_assert_int_eq(db_schema_version(d), SCHEMA_VERSION);
    db_close(d);
    ck_assert_int_eq(raw_int(t.path, "PRAGMA user_version"), SCHEMA_VERSION);
    /* WAL is a property of the file: a fresh connection still sees it. */
    ck_assert_int_eq(raw_int(t.path, "SELECT count(*) FROM pragma_journal_mode "
                                     "WHERE journal_mode = 'wal'"),
                     1);
    ck_assert_int_eq(raw_int(t.path, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' "
                                     "AND name IN ('jobs', 'tensor_metrics', 'blobs')"),
                     3);
    ck_assert_int_eq(raw_int(t.path, "SELECT count(*) FROM sqlite_schema WHERE type = 'index' "
                                     "AND name IN ('jobs_state_created', 'jobs_owner_created')"),
                     2);
    tmpdb_remove(&t);
}
END_TEST

START_TEST(test_schema_newer_refused)
{
    tmpdb_t t;
    char err[256] = "";
    db_t *d = (db_t *)&t; /* must come back NULL */
    tmpdb_make(&t);
    db_close(open_file(t.path));
    ck_assert_int_eq(raw_int(t.path, "PRAGMA user_version"), SCHEMA_VERSION);
    sqlite3 *h = NULL;
    ck_assert_int_eq(sqlite3_open(t.path, &h), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(h, "PRAGMA user_version = 7", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(h);
    ck_assert_int_ne(db_open(t.path, &d, err, sizeof err), 0);
    ck_assert_ptr_null(d);
    ck_assert_ptr_nonnull(strstr(err, "schema version 7"));
    tmpdb_remove(&t);
}
END_TEST

/* A version-1 file (jobs, no users) migrates to the current version keeping its jobs. */
START_TEST(test_schema_migrates_v1)
{
    tmpdb_t t;
    tmpdb_make(&t);
    db_t *d = open_file(t.path);
    db_job_t j = {0};
    j.recipe = "{}";
    snprintf(j.model_blob, sizeof j.model_blob, SHA_A);
    ck_assert_int_eq(db_job_insert(d, &j), 0);
    db_close(d);
    sqlite3 *h = NULL;
    ck_assert_int_eq(sqlite3_open(t.path, &h), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(h, "DROP TABLE users; PRAGMA user_version = 1", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(h);
    d = open_file(t.path);
    ck_assert_int_eq(db_schema_version(d), SCHEMA_VERSION);
    db_job_t got = {0};
    ck_assert_int_eq(db_job_get(d, j.id, NULL, &got), 0);
    db_job_clear(&got);
    ck_assert_int_eq(db_user_add(d, "alice", SHA_B, -1, -1), 0);
    db_close(d);
    tmpdb_remove(&t);
}
END_TEST

/* A version-2 file (blobs keyed by hash alone) migrates to version 3 keeping its blobs as
 * owner-less rows, still counted and deleted as before. */
START_TEST(test_schema_migrates_v2)
{
    tmpdb_t t;
    tmpdb_make(&t);
    db_close(open_file(t.path));
    sqlite3 *h = NULL;
    ck_assert_int_eq(sqlite3_open(t.path, &h), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(h,
                                  "DROP TABLE blobs;"
                                  "CREATE TABLE blobs (sha256 TEXT PRIMARY KEY"
                                  " CHECK (length(sha256) = 64), bytes INTEGER NOT NULL"
                                  " CHECK (bytes >= 0), kind TEXT NOT NULL CHECK (kind IN"
                                  " ('model', 'dataset')), created_at REAL NOT NULL)"
                                  " STRICT, WITHOUT ROWID;"
                                  "INSERT INTO blobs VALUES ('" SHA_A "', 941408, 'model', 1.5);"
                                  "PRAGMA user_version = 2",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(h);
    db_t *d = open_file(t.path);
    ck_assert_int_eq(db_schema_version(d), SCHEMA_VERSION);
    ck_assert_int_eq(raw_int(t.path, "SELECT bytes FROM blobs WHERE sha256 = '" SHA_A
                                     "' AND kind = 'model' AND owner = ''"),
                     941408);
    ck_assert_int_eq(raw_int(t.path, "SELECT count(*) FROM sqlite_schema WHERE type = 'index' "
                                     "AND name = 'blobs_owner_kind'"),
                     1);
    int created = -1;
    ck_assert_int_eq(db_dataset_put(d, SHA_A, "alice", "same bytes", 941408, NULL, &created), 0);
    ck_assert_int_eq(created, 1);
    ck_assert_int_eq(db_blob_delete(d, SHA_A), DB_ECONFLICT);
    ck_assert_int_eq(db_dataset_delete(d, SHA_A, "alice"), 0);
    ck_assert_int_eq(db_blob_delete(d, SHA_A), 0);
    ck_assert_int_eq(raw_int(t.path, "SELECT count(*) FROM blobs"), 0);
    db_close(d);
    tmpdb_remove(&t);
}
END_TEST

START_TEST(test_state_names)
{
    for (int s = 0; s < DB_JOB_N_STATES; s++) {
        ck_assert_int_eq(db_job_state_parse(db_job_state_name((db_job_state_t)s)), s);
    }
    ck_assert_str_eq(db_job_state_name(DB_JOB_CANCELED), "canceled");
    ck_assert_int_eq(db_job_state_parse("cancelled"), -1);
    ck_assert_int_eq(db_job_state_parse(NULL), -1);
    ck_assert_str_eq(db_job_state_name((db_job_state_t)99), "unknown");
}
END_TEST

/* ---- users --------------------------------------------------------------------------------- */

START_TEST(test_users)
{
    db_user_t u;
    ck_assert_int_eq(db_user_add(db, "alice", SHA_A, 1000, 3), 0);
    ck_assert_int_eq(db_user_add(db, "bob", SHA_B, -1, -1), 0);
    /* the name and the token are each unique */
    ck_assert_int_eq(db_user_add(db, "alice", SHA_C, -1, -1), DB_ECONFLICT);
    ck_assert_int_eq(db_user_add(db, "carol", SHA_A, -1, -1), DB_ECONFLICT);
    ck_assert_int_eq(db_user_add(db, "", SHA_C, -1, -1), DB_EINVAL);
    ck_assert_int_eq(db_user_add(db, "x y", SHA_C, -1, -1), DB_EINVAL);
    ck_assert_int_eq(db_user_add(db, "carol", "abc", -1, -1), DB_EINVAL);
    ck_assert_int_eq(db_user_by_token(db, SHA_A, &u), 0);
    ck_assert_str_eq(u.name, "alice");
    ck_assert_int_eq(u.quota_bytes, 1000);
    ck_assert_int_eq(u.quota_jobs, 3);
    ck_assert_int_eq(db_user_by_token(db, SHA_B, &u), 0);
    ck_assert_str_eq(u.name, "bob");
    ck_assert_int_eq(u.quota_bytes, -1);
    ck_assert_int_eq(db_user_by_token(db, SHA_C, &u), DB_ENOTFOUND);
    db_user_t *all = NULL;
    size_t n = 0;
    ck_assert_int_eq(db_user_list(db, &all, &n), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(all[0].name, "alice");
    ck_assert_str_eq(all[1].name, "bob");
    free(all);
    ck_assert_int_eq(db_user_delete(db, "alice"), 0);
    ck_assert_int_eq(db_user_by_token(db, SHA_A, &u), DB_ENOTFOUND);
    ck_assert_int_eq(db_user_delete(db, "alice"), DB_ENOTFOUND);
}
END_TEST

START_TEST(test_owner_usage)
{
    int64_t bytes = -1, active = -1;
    ck_assert_int_eq(db_owner_usage(db, "alice", &bytes, &active), 0);
    ck_assert_int_eq(bytes, 0);
    ck_assert_int_eq(active, 0);
    const char *owners[] = {"alice", "alice", "alice", "bob"};
    char ids[4][33];
    for (int i = 0; i < 4; i++) {
        db_job_t j = {0};
        snprintf(j.owner, sizeof j.owner, "%s", owners[i]);
        snprintf(j.model_blob, sizeof j.model_blob, SHA_A);
        j.model_bytes = 100 * (i + 1);
        j.recipe = "{}";
        ck_assert_int_eq(db_job_insert(db, &j), 0);
        memcpy(ids[i], j.id, 33);
    }
    /* alice: 100 + 200 + 300 uploaded; the first finishes with a 40-byte result. */
    db_job_t c = {0};
    ck_assert_int_eq(db_job_claim_next(db, &c), 0);
    ck_assert_str_eq(c.id, ids[0]);
    db_job_clear(&c);
    ck_assert_int_eq(db_job_finish(db, ids[0], DB_JOB_SUCCEEDED, NULL, NULL, "{}", 40), 0);
    ck_assert_int_eq(db_owner_usage(db, "alice", &bytes, &active), 0);
    ck_assert_int_eq(bytes, 640);
    ck_assert_int_eq(active, 2);
    ck_assert_int_eq(db_owner_usage(db, "bob", &bytes, &active), 0);
    ck_assert_int_eq(bytes, 400);
    ck_assert_int_eq(active, 1);
    /* the datasets a user keeps count too, each owner's own */
    int created = 0;
    ck_assert_int_eq(db_dataset_put(db, SHA_B, "alice", "train", 7840, NULL, &created), 0);
    ck_assert_int_eq(db_dataset_put(db, SHA_B, "bob", "mine too", 7840, NULL, &created), 0);
    ck_assert_int_eq(db_dataset_put(db, SHA_C, "alice", "test", 1000, NULL, &created), 0);
    ck_assert_int_eq(db_owner_usage(db, "alice", &bytes, &active), 0);
    ck_assert_int_eq(bytes, 640 + 7840 + 1000);
    ck_assert_int_eq(active, 2);
    ck_assert_int_eq(db_owner_usage(db, "bob", &bytes, &active), 0);
    ck_assert_int_eq(bytes, 400 + 7840);
    ck_assert_int_eq(db_owner_usage(db, "carol", &bytes, &active), 0);
    ck_assert_int_eq(bytes, 0);
}
END_TEST

/* ---- insert and get ------------------------------------------------------------------------ */

START_TEST(test_round_trip)
{
    db_job_t in = {0}, out = {0};
    snprintf(in.owner, sizeof in.owner, "alice");
    snprintf(in.model_blob, sizeof in.model_blob, SHA_A);
    snprintf(in.dataset_blob, sizeof in.dataset_blob, SHA_B);
    in.model_name = "fmnist_mlp.safetensors";
    in.model_bytes = 941408;
    in.recipe = RECIPE;
    double t0 = wall_now();
    ck_assert_int_eq(db_job_insert(db, &in), 0);
    double t1 = wall_now();
    ck_assert_uint_eq(strlen(in.id), 32);
    ck_assert_int_eq(in.state, DB_JOB_QUEUED);
    ck_assert(in.created_at >= t0 && in.created_at <= t1);

    ck_assert_int_eq(db_job_get(db, in.id, NULL, &out), 0);
    ck_assert_str_eq(out.id, in.id);
    ck_assert_str_eq(out.owner, "alice");
    ck_assert_int_eq(out.state, DB_JOB_QUEUED);
    ck_assert_str_eq(out.model_blob, SHA_A);
    ck_assert_str_eq(out.model_name, "fmnist_mlp.safetensors");
    ck_assert_int_eq(out.model_bytes, 941408);
    ck_assert_str_eq(out.dataset_blob, SHA_B);
    ck_assert_str_eq(out.recipe, RECIPE);
    ck_assert_double_eq(out.progress, 0.0);
    ck_assert_str_eq(out.stage, "");
    ck_assert_double_eq(out.created_at, in.created_at);
    ck_assert_double_eq(out.started_at, 0.0);
    ck_assert_double_eq(out.finished_at, 0.0);
    ck_assert_ptr_null(out.error_code);
    ck_assert_ptr_null(out.error_message);
    ck_assert_ptr_null(out.metrics);
    ck_assert_int_eq(out.result_bytes, 0);
    ck_assert_int_eq(out.attempts, 0);

    double t2 = wall_now();
    ck_assert_int_eq(db_job_claim_next(db, &out), 0);
    ck_assert_str_eq(out.id, in.id);
    ck_assert_int_eq(out.state, DB_JOB_RUNNING);
    ck_assert(out.started_at >= t2 && out.started_at <= wall_now());
    ck_assert_int_eq(out.attempts, 1);

    ck_assert_int_eq(db_job_set_progress(db, in.id, 0.25, "quantize"), 0);
    ck_assert_int_eq(db_job_get(db, in.id, NULL, &out), 0);
    ck_assert_double_eq(out.progress, 0.25);
    ck_assert_str_eq(out.stage, "quantize");
    /* Out-of-range progress is clamped; a long stage is cut to what db_job_t holds. */
    ck_assert_int_eq(db_job_set_progress(db, in.id, 1.5, "a-stage-name-much-longer-than-31-chars"),
                     0);
    ck_assert_int_eq(db_job_get(db, in.id, NULL, &out), 0);
    ck_assert_double_eq(out.progress, 1.0);
    ck_assert_str_eq(out.stage, "a-stage-name-much-longer-than-3");
    ck_assert_int_eq(db_job_set_progress(db, in.id, -0.5, NULL), 0);
    ck_assert_int_eq(db_job_get(db, in.id, NULL, &out), 0);
    ck_assert_double_eq(out.progress, 0.0);
    ck_assert_str_eq(out.stage, "");

    /* Success keeps metrics and result size; error fields given with it are dropped, and the
     * stage of the last progress report goes (a finished job is in no stage). */
    ck_assert_int_eq(db_job_set_progress(db, in.id, 1.0, "write"), 0);
    double started = out.started_at;
    ck_assert_int_eq(db_job_finish(db, in.id, DB_JOB_SUCCEEDED, "EIGNORED", "ignored",
                                   "{\"compression_ratio\":3.95}", 238336),
                     0);
    ck_assert_int_eq(db_job_get(db, in.id, NULL, &out), 0);
    ck_assert_int_eq(out.state, DB_JOB_SUCCEEDED);
    ck_assert_double_eq(out.progress, 1.0);
    ck_assert_str_eq(out.stage, "");
    ck_assert_double_eq(out.started_at, started);
    ck_assert(out.finished_at >= started && out.finished_at <= wall_now());
    ck_assert_str_eq(out.metrics, "{\"compression_ratio\":3.95}");
    ck_assert_int_eq(out.result_bytes, 238336);
    ck_assert_ptr_null(out.error_code);
    ck_assert_ptr_null(out.error_message);
    ck_assert_int_eq(out.attempts, 1);
    db_job_clear(&out);
    ck_assert_str_eq(out.id, ""); /* cleared means zeroed */
    ck_assert_ptr_null(out.recipe);
}
END_TEST

START_TEST(test_round_trip_failed)
{
    db_job_t in = {0}, out = {0};
    snprintf(in.model_blob, sizeof in.model_blob, SHA_C);
    in.recipe = RECIPE;
    ck_assert_int_eq(db_job_insert(db, &in), 0);
    ck_assert_int_eq(db_job_get(db, in.id, NULL, &out), 0);
    ck_assert_str_eq(out.owner, "");
    ck_assert_ptr_null(out.model_name);
    ck_assert_str_eq(out.dataset_blob, "");
    ck_assert_int_eq(out.model_bytes, 0);
    ck_assert_int_eq(db_job_claim_next(db, &out), 0);
    ck_assert_int_eq(db_job_set_progress(db, in.id, 0.5, "prune"), 0);
    /* Failure keeps the error; metrics and result size given with it are dropped. */
    ck_assert_int_eq(db_job_finish(db, in.id, DB_JOB_FAILED, "EFORMAT",
                                   "tensor fc1.weight: shape [3] does not match 12 bytes", "{}", 7),
                     0);
    ck_assert_int_eq(db_job_get(db, in.id, NULL, &out), 0);
    ck_assert_int_eq(out.state, DB_JOB_FAILED);
    ck_assert_str_eq(out.error_code, "EFORMAT");
    ck_assert_str_eq(out.error_message, "tensor fc1.weight: shape [3] does not match 12 bytes");
    ck_assert_ptr_null(out.metrics);
    ck_assert_int_eq(out.result_bytes, 0);
    ck_assert_double_eq(out.progress, 0.5); /* where it stopped */
    ck_assert_str_eq(out.stage, "prune");
    db_job_clear(&out);
}
END_TEST

START_TEST(test_insert_refuses_incomplete)
{
    db_job_t j = {0};
    snprintf(j.model_blob, sizeof j.model_blob, SHA_A);
    ck_assert_int_eq(db_job_insert(db, &j), DB_EINVAL); /* no recipe */
    ck_assert_str_eq(j.id, "");
    j.recipe = RECIPE;
    j.model_blob[0] = '\0';
    ck_assert_int_eq(db_job_insert(db, &j), DB_EINVAL); /* no model */
    ck_assert_int_eq(count_of(db, DB_JOB_QUEUED), 0);
}
END_TEST

static int cmp_id(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

START_TEST(test_ids_unique)
{
    enum { N = 1000 };
    static char ids[N][33];
    for (int i = 0; i < N; i++) {
        insert_job(db, "", SHA_A, "", ids[i]);
        ck_assert_uint_eq(strlen(ids[i]), 32);
        ck_assert_uint_eq(strspn(ids[i], "0123456789abcdef"), 32);
    }
    /* Every hex digit shows up at every position: 128 random bits, all of them encoded. For
     * uniform ids a digit is missing at a position with probability 16 * (15/16)^1000 < 1e-26. */
    for (int pos = 0; pos < 32; pos++) {
        unsigned seen = 0;
        for (int i = 0; i < N; i++) {
            seen |= 1u << (strchr("0123456789abcdef", ids[i][pos]) - "0123456789abcdef");
        }
        ck_assert_uint_eq(seen, 0xffff);
    }
    qsort(ids, N, sizeof ids[0], cmp_id);
    for (int i = 1; i < N; i++) {
        ck_assert_str_ne(ids[i - 1], ids[i]);
    }
    ck_assert_int_eq(count_of(db, DB_JOB_QUEUED), N);
}
END_TEST

START_TEST(test_owner_isolation)
{
    char id[33];
    db_job_t j = {0};
    insert_job(db, "alice", SHA_A, "", id);
    ck_assert_int_eq(db_job_get(db, id, "bob", &j), DB_ENOTFOUND);
    ck_assert_str_eq(j.id, "");
    ck_assert_int_eq(db_job_get(db, id, "alice", &j), 0);
    ck_assert_str_eq(j.owner, "alice");
    ck_assert_int_eq(db_job_get(db, id, NULL, &j), 0);
    ck_assert_int_eq(db_job_get(db, NO_SUCH_JOB, NULL, &j), DB_ENOTFOUND);
    db_job_clear(&j);
}
END_TEST

/* ---- list ---------------------------------------------------------------------------------- */

/* ids[0..4] inserted oldest first; owners alice, bob, alice, bob, alice. */
static char list_ids[5][33];

static void list_setup(void)
{
    open_memory();
    for (int i = 0; i < 5; i++) {
        insert_job(db, i % 2 ? "bob" : "alice", SHA_A, "", list_ids[i]);
    }
}

/* List and compare against the expected list_ids indices, newest first. */
static void expect_list(int state, const char *owner, int limit, int offset, int64_t total,
                        const int *want, size_t n_want)
{
    db_job_t *jobs = NULL;
    size_t n = 99;
    int64_t tot = -1;
    ck_assert_int_eq(db_job_list(db, state, owner, limit, offset, &jobs, &n, &tot), 0);
    ck_assert_int_eq(tot, total);
    ck_assert_uint_eq(n, n_want);
    for (size_t i = 0; i < n; i++) {
        ck_assert_str_eq(jobs[i].id, list_ids[want[i]]);
        db_job_clear(&jobs[i]);
    }
    free(jobs);
}

START_TEST(test_list_order_paging)
{
    expect_list(-1, NULL, 10, 0, 5, (const int[]){4, 3, 2, 1, 0}, 5);
    expect_list(-1, NULL, 2, 1, 5, (const int[]){3, 2}, 2);
    expect_list(-1, NULL, 2, 4, 5, (const int[]){0}, 1);
    expect_list(-1, NULL, 2, 5, 5, NULL, 0);
    expect_list(-1, NULL, 0, 0, 5, (const int[]){4}, 1);     /* limit clamped up to 1 */
    expect_list(-1, NULL, 2, -3, 5, (const int[]){4, 3}, 2); /* offset clamped to 0 */
}
END_TEST

START_TEST(test_list_filters)
{
    db_job_t j = {0};
    ck_assert_int_eq(db_job_claim_next(db, &j), 0); /* list_ids[0], alice's */
    ck_assert_str_eq(j.id, list_ids[0]);
    db_job_clear(&j);
    expect_list(DB_JOB_RUNNING, NULL, 10, 0, 1, (const int[]){0}, 1);
    expect_list(DB_JOB_QUEUED, NULL, 10, 0, 4, (const int[]){4, 3, 2, 1}, 4);
    expect_list(DB_JOB_QUEUED, NULL, 1, 1, 4, (const int[]){3}, 1);
    expect_list(-1, "alice", 10, 0, 3, (const int[]){4, 2, 0}, 3);
    expect_list(-1, "bob", 10, 0, 2, (const int[]){3, 1}, 2);
    expect_list(DB_JOB_QUEUED, "alice", 10, 0, 2, (const int[]){4, 2}, 2);
    expect_list(DB_JOB_RUNNING, "bob", 10, 0, 0, NULL, 0);
    expect_list(DB_JOB_FAILED, NULL, 10, 0, 0, NULL, 0);
    expect_list(-1, "carol", 10, 0, 0, NULL, 0);

    db_job_t *jobs = NULL;
    size_t n = 0;
    int64_t total = 0;
    ck_assert_int_eq(db_job_list(db, DB_JOB_N_STATES, NULL, 10, 0, &jobs, &n, &total), DB_EINVAL);
    ck_assert_ptr_null(jobs);
}
END_TEST

START_TEST(test_list_limit_clamp)
{
    char id[33];
    db_job_t *jobs = NULL;
    size_t n = 0;
    int64_t total = 0;
    for (int i = 5; i < 1001; i++) {
        insert_job(db, "", SHA_A, "", id);
    }
    ck_assert_int_eq(db_job_list(db, -1, NULL, 5000, 0, &jobs, &n, &total), 0);
    ck_assert_uint_eq(n, 1000);
    ck_assert_int_eq(total, 1001);
    ck_assert_str_eq(jobs[0].id, id);            /* newest first */
    ck_assert_str_eq(jobs[999].id, list_ids[1]); /* the oldest is the 1001st */
    for (size_t i = 0; i < n; i++) {
        db_job_clear(&jobs[i]);
    }
    free(jobs);
}
END_TEST

/* ---- claim --------------------------------------------------------------------------------- */

START_TEST(test_claim_order)
{
    char ids[3][33];
    db_job_t j = {0};
    for (int i = 0; i < 3; i++) {
        insert_job(db, "", SHA_A, "", ids[i]);
    }
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(db_job_claim_next(db, &j), 0);
        ck_assert_str_eq(j.id, ids[i]);
        ck_assert_int_eq(j.state, DB_JOB_RUNNING);
        ck_assert_int_eq(j.attempts, 1);
        ck_assert_str_eq(j.recipe, RECIPE);
    }
    ck_assert_int_eq(db_job_claim_next(db, &j), DB_ENOTFOUND);
    ck_assert_str_eq(j.id, "");
    ck_assert_ptr_null(j.recipe);
    ck_assert_int_eq(count_of(db, DB_JOB_RUNNING), 3);
}
END_TEST

START_TEST(test_claim_none_queued)
{
    db_job_t j = {0};
    char id[33];
    ck_assert_int_eq(db_job_claim_next(db, &j), DB_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(db_errmsg(db), "no job is queued"));
    /* An empty queue leaves no transaction behind: the daemon inserts and claims next. */
    insert_job(db, "", SHA_A, "", id);
    ck_assert_int_eq(db_job_claim_next(db, &j), 0);
    ck_assert_str_eq(j.id, id);
    db_job_clear(&j);
}
END_TEST

START_TEST(test_claim_once)
{
    char id[33];
    db_job_t j = {0};
    insert_job(db, "", SHA_A, "", id);
    ck_assert_int_eq(db_job_claim_next(db, &j), 0);
    ck_assert_int_eq(db_job_claim_next(db, &j), DB_ENOTFOUND);
    ck_assert_int_eq(db_job_get(db, id, NULL, &j), 0);
    ck_assert_int_eq(j.state, DB_JOB_RUNNING);
    ck_assert_int_eq(j.attempts, 1);
    db_job_clear(&j);
}
END_TEST

START_TEST(test_claim_two_connections)
{
    tmpdb_t t;
    char id[33];
    db_job_t j = {0};
    tmpdb_make(&t);
    db_t *a = open_file(t.path), *b = open_file(t.path);
    insert_job(a, "", SHA_A, "", id);
    ck_assert_int_eq(db_job_claim_next(b, &j), 0);
    ck_assert_str_eq(j.id, id);
    ck_assert_int_eq(db_job_claim_next(a, &j), DB_ENOTFOUND);
    ck_assert_int_eq(state_of(a, id), DB_JOB_RUNNING);
    db_close(a);
    db_close(b);
    tmpdb_remove(&t);
}
END_TEST

/* ---- state rules --------------------------------------------------------------------------- */

START_TEST(test_transitions_refused)
{
    char q[33], r[33];
    db_job_t j = {0};
    insert_job(db, "", SHA_A, "", r);
    insert_job(db, "", SHA_A, "", q);
    ck_assert_int_eq(db_job_claim_next(db, &j), 0); /* r */
    db_job_clear(&j);

    ck_assert_int_eq(db_job_finish(db, q, DB_JOB_SUCCEEDED, NULL, NULL, "{}", 1), DB_ECONFLICT);
    ck_assert_ptr_nonnull(strstr(db_errmsg(db), "queued"));
    ck_assert_int_eq(state_of(db, q), DB_JOB_QUEUED);
    ck_assert_int_eq(db_job_set_progress(db, q, 0.5, "prune"), DB_ECONFLICT);
    ck_assert_int_eq(db_job_requeue(db, q), DB_ECONFLICT);
    ck_assert_int_eq(db_job_cancel_queued(db, r), DB_ECONFLICT);
    ck_assert_int_eq(state_of(db, r), DB_JOB_RUNNING);
    ck_assert_int_eq(db_job_delete(db, r), DB_ECONFLICT);
    ck_assert_int_eq(db_job_delete(db, q), DB_ECONFLICT);
    ck_assert_int_eq(db_job_finish(db, r, DB_JOB_QUEUED, NULL, NULL, NULL, 0), DB_EINVAL);
    ck_assert_int_eq(db_job_finish(db, r, DB_JOB_RUNNING, NULL, NULL, NULL, 0), DB_EINVAL);
    ck_assert_int_eq(state_of(db, r), DB_JOB_RUNNING);

    ck_assert_int_eq(db_job_finish(db, NO_SUCH_JOB, DB_JOB_FAILED, "E", "m", NULL, 0),
                     DB_ENOTFOUND);
    ck_assert_int_eq(db_job_cancel_queued(db, NO_SUCH_JOB), DB_ENOTFOUND);
    ck_assert_int_eq(db_job_delete(db, NO_SUCH_JOB), DB_ENOTFOUND);
    ck_assert_int_eq(db_job_requeue(db, NO_SUCH_JOB), DB_ENOTFOUND);
    ck_assert_int_eq(db_job_set_progress(db, NO_SUCH_JOB, 0.1, "x"), DB_ENOTFOUND);

    /* Once finished, it cannot finish again. */
    ck_assert_int_eq(db_job_finish(db, r, DB_JOB_CANCELED, "ECANCELED", "canceled", NULL, 0), 0);
    ck_assert_int_eq(db_job_finish(db, r, DB_JOB_SUCCEEDED, NULL, NULL, "{}", 1), DB_ECONFLICT);
    ck_assert_int_eq(state_of(db, r), DB_JOB_CANCELED);
}
END_TEST

START_TEST(test_cancel_queued)
{
    char q[33];
    db_job_t j = {0};
    insert_job(db, "", SHA_A, "", q);
    ck_assert_int_eq(db_job_cancel_queued(db, q), 0);
    ck_assert_int_eq(db_job_get(db, q, NULL, &j), 0);
    ck_assert_int_eq(j.state, DB_JOB_CANCELED);
    ck_assert(j.finished_at >= j.created_at);
    ck_assert_double_eq(j.started_at, 0.0);
    ck_assert_int_eq(j.attempts, 0);
    ck_assert_int_eq(db_job_cancel_queued(db, q), DB_ECONFLICT);
    ck_assert_int_eq(db_job_claim_next(db, &j), DB_ENOTFOUND); /* never runs */
    ck_assert_int_eq(db_job_delete(db, q), 0);
    ck_assert_int_eq(db_job_get(db, q, NULL, &j), DB_ENOTFOUND);
}
END_TEST

START_TEST(test_requeue_one)
{
    char id[33];
    db_job_t j = {0};
    insert_job(db, "", SHA_A, "", id);
    ck_assert_int_eq(db_job_claim_next(db, &j), 0);
    ck_assert_int_eq(db_job_set_progress(db, id, 0.75, "share"), 0);
    ck_assert_int_eq(db_job_requeue(db, id), 0);
    ck_assert_int_eq(db_job_get(db, id, NULL, &j), 0);
    ck_assert_int_eq(j.state, DB_JOB_QUEUED);
    ck_assert_int_eq(j.attempts, 1);
    ck_assert_double_eq(j.progress, 0.0);
    ck_assert_str_eq(j.stage, "");
    ck_assert_double_eq(j.started_at, 0.0);
    ck_assert_int_eq(db_job_requeue(db, id), DB_ECONFLICT);
    ck_assert_int_eq(db_job_claim_next(db, &j), 0);
    ck_assert_str_eq(j.id, id);
    ck_assert_int_eq(j.attempts, 2);
    db_job_clear(&j);
}
END_TEST

START_TEST(test_counts)
{
    char ids[10][33];
    db_job_t j = {0};
    int64_t n = -1;
    for (int i = 0; i < 10; i++) {
        insert_job(db, "", SHA_A, "", ids[i]);
    }
    ck_assert_int_eq(db_job_cancel_queued(db, ids[0]), 0);
    for (int i = 1; i <= 6; i++) {
        ck_assert_int_eq(db_job_claim_next(db, &j), 0);
        ck_assert_str_eq(j.id, ids[i]);
    }
    db_job_clear(&j);
    for (int i = 1; i <= 3; i++) {
        ck_assert_int_eq(db_job_finish(db, ids[i], DB_JOB_SUCCEEDED, NULL, NULL, "{}", 10), 0);
    }
    for (int i = 4; i <= 5; i++) {
        ck_assert_int_eq(db_job_finish(db, ids[i], DB_JOB_FAILED, "EIO", "disk", NULL, 0), 0);
    }
    ck_assert_int_eq(count_of(db, DB_JOB_QUEUED), 3);
    ck_assert_int_eq(count_of(db, DB_JOB_RUNNING), 1);
    ck_assert_int_eq(count_of(db, DB_JOB_SUCCEEDED), 3);
    ck_assert_int_eq(count_of(db, DB_JOB_FAILED), 2);
    ck_assert_int_eq(count_of(db, DB_JOB_CANCELED), 1);
    ck_assert_int_eq(db_job_count(db, DB_JOB_N_STATES, &n), DB_EINVAL);
    ck_assert_int_eq(n, 0);
}
END_TEST

START_TEST(test_delete_cascades_metrics)
{
    tmpdb_t t;
    char keep[33], gone[33], sql[160];
    db_job_t j = {0};
    tmpdb_make(&t);
    db_t *d = open_file(t.path);
    insert_job(d, "", SHA_A, "", gone);
    insert_job(d, "", SHA_A, "", keep);
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(db_job_claim_next(d, &j), 0);
    }
    db_job_clear(&j);
    ck_assert_int_eq(db_job_finish(d, gone, DB_JOB_SUCCEEDED, NULL, NULL, "{}", 1), 0);
    ck_assert_int_eq(db_job_finish(d, keep, DB_JOB_FAILED, "E", "m", NULL, 0), 0);
    const char *report = "{\"tensors\":[{\"name\":\"a\"},{\"name\":\"b\"},{\"name\":\"c\"}]}";
    ck_assert_int_eq(db_tensor_metrics_put(d, gone, report), 0);
    ck_assert_int_eq(db_tensor_metrics_put(d, keep, report), 0);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM tensor_metrics WHERE job_id = '%s'", gone);
    ck_assert_int_eq(raw_int(t.path, sql), 3);
    ck_assert_int_eq(db_job_delete(d, gone), 0);
    ck_assert_int_eq(raw_int(t.path, sql), 0);
    ck_assert_int_eq(raw_int(t.path, "SELECT count(*) FROM tensor_metrics"), 3);
    ck_assert_int_eq(db_job_delete(d, gone), DB_ENOTFOUND);
    ck_assert_int_eq(db_integrity_check(d), 0);
    db_close(d);
    tmpdb_remove(&t);
}
END_TEST

/* ---- crash recovery (real files) ----------------------------------------------------------- */

/* After a crash with a[0], a[1] claimed and a[2] queued: restart recovery puts both back. */
static void expect_recovered(const char *path, char ids[3][33])
{
    db_job_t j = {0};
    int n = -1;
    db_t *d = open_file(path);
    ck_assert_int_eq(count_of(d, DB_JOB_RUNNING), 2);
    ck_assert_int_eq(db_job_requeue_running(d, &n), 0);
    ck_assert_int_eq(n, 2);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(db_job_get(d, ids[i], NULL, &j), 0);
        ck_assert_int_eq(j.state, DB_JOB_QUEUED);
        ck_assert_int_eq(j.attempts, i < 2 ? 1 : 0);
        ck_assert_double_eq(j.started_at, 0.0);
    }
    ck_assert_int_eq(count_of(d, DB_JOB_QUEUED), 3);
    ck_assert_int_eq(db_job_requeue_running(d, &n), 0);
    ck_assert_int_eq(n, 0);
    ck_assert_int_eq(db_integrity_check(d), 0);
    /* The oldest runs again first and counts its second attempt. */
    ck_assert_int_eq(db_job_claim_next(d, &j), 0);
    ck_assert_str_eq(j.id, ids[0]);
    ck_assert_int_eq(j.attempts, 2);
    db_job_clear(&j);
    db_close(d);
}

START_TEST(test_recover_after_close)
{
    tmpdb_t t;
    char ids[3][33];
    db_job_t j = {0};
    tmpdb_make(&t);
    db_t *d = open_file(t.path);
    for (int i = 0; i < 3; i++) {
        insert_job(d, "", SHA_A, "", ids[i]);
    }
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(db_job_claim_next(d, &j), 0);
        ck_assert_str_eq(j.id, ids[i]);
    }
    db_job_clear(&j);
    db_close(d);
    expect_recovered(t.path, ids);
    tmpdb_remove(&t);
}
END_TEST

START_TEST(test_recover_after_crash)
{
    tmpdb_t t;
    char ids[3][33], wal[160];
    int status = -1;
    tmpdb_make(&t);
    db_t *d = open_file(t.path);
    for (int i = 0; i < 3; i++) {
        insert_job(d, "", SHA_A, "", ids[i]);
    }
    db_close(d);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        /* The crashing daemon: claims two jobs and dies without closing anything. */
        char err[256];
        db_job_t j = {0};
        db_t *c = NULL;
        if (db_open(t.path, &c, err, sizeof err) != 0) {
            _exit(10);
        }
        for (int i = 0; i < 2; i++) {
            if (db_job_claim_next(c, &j) != 0 || strcmp(j.id, ids[i]) != 0) {
                _exit(11 + i);
            }
        }
        _exit(0);
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 0);
    /* The claims live only in the write-ahead log the dead process left behind. */
    snprintf(wal, sizeof wal, "%s-wal", t.path);
    ck_assert_int_eq(access(wal, F_OK), 0);
    expect_recovered(t.path, ids);
    tmpdb_remove(&t);
}
END_TEST

/* ---- per-tensor metrics -------------------------------------------------------------------- */

static const char *const report_json =
    "{\"tensors\":["
    "{\"name\":\"fc1.weight\",\"shape\":[256,784],\"elements\":200704,\"sparsity\":0.9,"
    "\"bits_per_weight\":4.5,\"bytes_before\":802816,\"bytes_after\":112896,"
    "\"rel_error\":0.0123,\"sqnr_db\":38.25},"
    "{\"name\":\"fc1.bias\",\"shape\":[256],\"elements\":256,\"sparsity\":0,"
    "\"bits_per_weight\":32,\"bytes_before\":1024,\"bytes_after\":1024,"
    "\"rel_error\":0,\"sqnr_db\":null},"
    "{\"name\":\"fc2.weight\"}],"
    "\"bytes_before\":803840,\"bytes_after\":113920,\"compression_ratio\":7.056}";

static json_t *metrics_of(const char *id)
{
    char *text = NULL;
    ck_assert_int_eq(db_tensor_metrics_get(db, id, &text), 0);
    json_t *arr = json_loads(text, 0, NULL);
    free(text);
    ck_assert(json_is_array(arr));
    return arr;
}

static void finished_job(char *id)
{
    db_job_t j = {0};
    insert_job(db, "", SHA_A, "", id);
    ck_assert_int_eq(db_job_claim_next(db, &j), 0);
    db_job_clear(&j);
    ck_assert_int_eq(db_job_finish(db, id, DB_JOB_SUCCEEDED, NULL, NULL, "{}", 1), 0);
}

START_TEST(test_metrics_round_trip)
{
    char id[33];
    finished_job(id);
    json_t *arr = metrics_of(id);
    ck_assert_uint_eq(json_array_size(arr), 0); /* none yet */
    json_decref(arr);

    ck_assert_int_eq(db_tensor_metrics_put(db, id, report_json), 0);
    arr = metrics_of(id);
    ck_assert_uint_eq(json_array_size(arr), 3);
    json_t *w = json_array_get(arr, 0), *b = json_array_get(arr, 1), *m = json_array_get(arr, 2);
    ck_assert_str_eq(json_string_value(json_object_get(w, "name")), "fc1.weight");
    json_t *shape = json_object_get(w, "shape");
    ck_assert_uint_eq(json_array_size(shape), 2);
    ck_assert_int_eq(json_integer_value(json_array_get(shape, 0)), 256);
    ck_assert_int_eq(json_integer_value(json_array_get(shape, 1)), 784);
    ck_assert_int_eq(json_integer_value(json_object_get(w, "elements")), 200704);
    ck_assert_double_eq(json_real_value(json_object_get(w, "sparsity")), 0.9);
    ck_assert_double_eq(json_real_value(json_object_get(w, "bits_per_weight")), 4.5);
    ck_assert_int_eq(json_integer_value(json_object_get(w, "bytes_before")), 802816);
    ck_assert_int_eq(json_integer_value(json_object_get(w, "bytes_after")), 112896);
    ck_assert_double_eq(json_real_value(json_object_get(w, "rel_error")), 0.0123);
    ck_assert_double_eq(json_real_value(json_object_get(w, "sqnr_db")), 38.25);

    ck_assert_str_eq(json_string_value(json_object_get(b, "name")), "fc1.bias");
    ck_assert_uint_eq(json_array_size(json_object_get(b, "shape")), 1);
    ck_assert(json_is_real(json_object_get(b, "sparsity"))); /* an integer 0 read as REAL */
    ck_assert_double_eq(json_real_value(json_object_get(b, "sparsity")), 0.0);
    ck_assert_double_eq(json_real_value(json_object_get(b, "bits_per_weight")), 32.0);
    ck_assert(json_is_null(json_object_get(b, "sqnr_db")));

    /* Only a name: every figure is null, none is made up. */
    ck_assert_str_eq(json_string_value(json_object_get(m, "name")), "fc2.weight");
    for (int k = 1; k < 9; k++) {
        static const char *const keys[] = {"name",        "shape",           "elements",
                                           "sparsity",    "bits_per_weight", "bytes_before",
                                           "bytes_after", "rel_error",       "sqnr_db"};
        ck_assert_msg(json_is_null(json_object_get(m, keys[k])), "%s should be null", keys[k]);
    }
    json_decref(arr);

    /* A second report replaces the first. */
    ck_assert_int_eq(db_tensor_metrics_put(db, id, "{\"tensors\":[{\"name\":\"only\"}]}"), 0);
    arr = metrics_of(id);
    ck_assert_uint_eq(json_array_size(arr), 1);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(arr, 0), "name")), "only");
    json_decref(arr);
}
END_TEST

START_TEST(test_metrics_bad_input)
{
    char id[33], *text = (char *)"untouched";
    finished_job(id);
    ck_assert_int_eq(db_tensor_metrics_put(db, id, "{\"tensors\":[{\"name\":\"kept\"}]}"), 0);
    ck_assert_int_eq(db_tensor_metrics_put(db, id, "{not json"), DB_EINVAL);
    ck_assert_int_eq(db_tensor_metrics_put(db, id, "[1,2]"), DB_EINVAL);
    ck_assert_int_eq(db_tensor_metrics_put(db, id, "{\"tensors\":5}"), DB_EINVAL);
    ck_assert_int_eq(db_tensor_metrics_put(db, id, NULL), DB_EINVAL);
    /* A bad second entry rolls back the whole report: the old rows stay. */
    ck_assert_int_eq(db_tensor_metrics_put(db, id, "{\"tensors\":[{\"name\":\"x\"},3]}"),
                     DB_EINVAL);
    json_t *arr = metrics_of(id);
    ck_assert_uint_eq(json_array_size(arr), 1);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(arr, 0), "name")), "kept");
    json_decref(arr);
    ck_assert_int_eq(db_tensor_metrics_put(db, NO_SUCH_JOB, report_json), DB_ENOTFOUND);
    ck_assert_int_eq(db_tensor_metrics_get(db, NO_SUCH_JOB, &text), DB_ENOTFOUND);
    ck_assert_ptr_null(text);
    /* The database is usable after every refusal: no transaction left open. */
    ck_assert_int_eq(db_tensor_metrics_put(db, id, report_json), 0);
    arr = metrics_of(id);
    ck_assert_uint_eq(json_array_size(arr), 3);
    json_decref(arr);
}
END_TEST

/* jansson's allocator that fails after chaos_left more allocations (jansson's test_chaos). */
static int chaos_left;

static void *chaos_malloc(size_t n)
{
    return chaos_left-- > 0 ? malloc(n) : NULL;
}

START_TEST(test_metrics_out_of_memory)
{
    char id[33], *want = NULL, *text = NULL;
    int k, rc;
    finished_job(id);
    ck_assert_int_eq(db_tensor_metrics_get(db, id, &want), 0);
    ck_assert_str_eq(want, "[]");
    free(want);
    /* Every allocation of a put fails in turn: refused cleanly, never half stored. */
    json_set_alloc_funcs(chaos_malloc, free);
    for (k = 0;; k++) {
        chaos_left = k;
        if ((rc = db_tensor_metrics_put(db, id, report_json)) == 0) {
            break;
        }
        ck_assert_msg(rc == DB_EINVAL || rc == DB_EIO, "allocation %d: %d", k, rc);
    }
    json_set_alloc_funcs(malloc, free);
    ck_assert_int_gt(k, 10);
    ck_assert_int_eq(db_tensor_metrics_get(db, id, &want), 0);
    /* And every allocation of a get. */
    json_set_alloc_funcs(chaos_malloc, free);
    for (k = 0;; k++) {
        chaos_left = k;
        if ((rc = db_tensor_metrics_get(db, id, &text)) == 0) {
            break;
        }
        ck_assert_int_eq(rc, DB_EIO);
        ck_assert_ptr_null(text);
    }
    json_set_alloc_funcs(malloc, free);
    ck_assert_int_gt(k, 10);
    ck_assert_str_eq(text, want);
    json_t *arr = json_loads(want, 0, NULL);
    ck_assert_uint_eq(json_array_size(arr), 3);
    json_decref(arr);
    free(text);
    free(want);
}
END_TEST

/* ---- blobs --------------------------------------------------------------------------------- */

static int64_t refs_of(const char *sha)
{
    int64_t n = -1;
    ck_assert_int_eq(db_blob_refs(db, sha, &n), 0);
    return n;
}

START_TEST(test_blob_refs)
{
    char j1[33], j2[33], j3[33];
    ck_assert_int_eq(db_blob_put(db, SHA_A, 941408, "model"), 0);
    ck_assert_int_eq(db_blob_put(db, SHA_A, 941408, "model"), 0); /* already there: no-op */
    ck_assert_int_eq(db_blob_put(db, SHA_B, 7840, "dataset"), 0);
    ck_assert_int_eq(db_blob_put(db, SHA_C, 1000, "model"), 0);
    ck_assert_int_eq(refs_of(SHA_A), 0);
    insert_job(db, "", SHA_A, SHA_B, j1);
    insert_job(db, "", SHA_A, "", j2);
    insert_job(db, "", SHA_C, SHA_A, j3); /* SHA_A as a dataset counts too */
    ck_assert_int_eq(refs_of(SHA_A), 3);
    ck_assert_int_eq(refs_of(SHA_B), 2); /* its job, and being kept as a dataset */
    ck_assert_int_eq(refs_of(SHA_C), 1);
    ck_assert_int_eq(refs_of(SHA_D), 0);

    ck_assert_int_eq(db_blob_delete(db, SHA_A), DB_ECONFLICT);
    ck_assert_int_eq(db_job_cancel_queued(db, j1), 0);
    ck_assert_int_eq(db_job_delete(db, j1), 0);
    ck_assert_int_eq(refs_of(SHA_A), 2);
    ck_assert_int_eq(refs_of(SHA_B), 1);
    ck_assert_int_eq(db_blob_delete(db, SHA_B), DB_ECONFLICT); /* a dataset is deleted as one */
    ck_assert_int_eq(db_dataset_delete(db, SHA_B, NULL), 0);
    ck_assert_int_eq(refs_of(SHA_B), 0);
    ck_assert_int_eq(db_blob_delete(db, SHA_B), DB_ENOTFOUND);
    ck_assert_int_eq(db_job_cancel_queued(db, j2), 0);
    ck_assert_int_eq(db_job_delete(db, j2), 0);
    ck_assert_int_eq(db_job_cancel_queued(db, j3), 0);
    ck_assert_int_eq(db_job_delete(db, j3), 0);
    ck_assert_int_eq(refs_of(SHA_A), 0);
    ck_assert_int_eq(db_blob_delete(db, SHA_A), 0);
    ck_assert_int_eq(db_blob_delete(db, SHA_D), DB_ENOTFOUND);
}
END_TEST

START_TEST(test_blob_put_refuses)
{
    ck_assert_int_eq(db_blob_put(db, SHA_A, 10, "weights"), DB_EINVAL);
    ck_assert_int_eq(db_blob_put(db, SHA_A, 10, NULL), DB_EINVAL);
    ck_assert_int_eq(db_blob_put(db, SHA_A, -1, "model"), DB_EINVAL);
    ck_assert_int_eq(db_blob_put(db,
                                 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                                 10, "model"),
                     DB_EINVAL);
    ck_assert_int_eq(db_blob_put(db, SHA_A "0", 10, "model"), DB_EINVAL);
    ck_assert_int_eq(db_blob_put(db, "../../etc/passwd", 10, "model"), DB_EINVAL);
    ck_assert_int_eq(db_blob_put(db, NULL, 10, "model"), DB_EINVAL);
    ck_assert_int_eq(db_blob_delete(db, SHA_A), DB_ENOTFOUND); /* none was stored */
}
END_TEST

/* ---- datasets ------------------------------------------------------------------------------ */

#define INFO "{\"samples\":3,\"x_shape\":[3,2],\"has_labels\":true}"

START_TEST(test_datasets)
{
    int created = -1;
    db_dataset_t d;
    db_dataset_t *all = NULL;
    size_t n = 0;
    ck_assert_int_eq(db_dataset_put(db, SHA_A, "alice", "mnist-test.npz", 7840, INFO, &created), 0);
    ck_assert_int_eq(created, 1);
    ck_assert_int_eq(db_dataset_put(db, SHA_B, "alice", "calib", 512, NULL, &created), 0);
    ck_assert_int_eq(db_dataset_put(db, SHA_A, "bob", "bob's copy", 7840, INFO, &created), 0);
    ck_assert_int_eq(created, 1);
    /* the same bytes again: kept once, under the new name */
    ck_assert_int_eq(db_dataset_put(db, SHA_A, "alice", "renamed", 7840, INFO, &created), 0);
    ck_assert_int_eq(created, 0);
    ck_assert_int_eq(db_dataset_get(db, SHA_A, "alice", &d), 0);
    ck_assert_str_eq(d.id, SHA_A);
    ck_assert_str_eq(d.owner, "alice");
    ck_assert_str_eq(d.name, "renamed");
    ck_assert_int_eq(d.bytes, 7840);
    ck_assert_str_eq(d.info, INFO);
    ck_assert(d.created_at > wall_now() - 60 && d.created_at <= wall_now());
    db_dataset_clear(&d);
    ck_assert_ptr_null(d.info);
    /* another user's dataset is not found; owner NULL finds any */
    ck_assert_int_eq(db_dataset_get(db, SHA_B, "bob", &d), DB_ENOTFOUND);
    ck_assert_int_eq(db_dataset_get(db, SHA_D, NULL, &d), DB_ENOTFOUND);
    ck_assert_int_eq(db_dataset_get(db, SHA_B, NULL, &d), 0);
    ck_assert_str_eq(d.owner, "alice");
    ck_assert_ptr_null(d.info);
    db_dataset_clear(&d);
    /* lists: one owner's, newest first, or everyone's; pages of them with the total */
    int64_t total = 0;
    ck_assert_int_eq(db_dataset_list(db, "alice", 100, 0, &all, &n, &total), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(total, 2);
    ck_assert_str_eq(all[0].id, SHA_B);
    ck_assert_str_eq(all[1].id, SHA_A);
    for (size_t i = 0; i < n; i++) {
        db_dataset_clear(&all[i]);
    }
    free(all);
    ck_assert_int_eq(db_dataset_list(db, "alice", 1, 1, &all, &n, &total), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(total, 2);
    ck_assert_str_eq(all[0].id, SHA_A);
    db_dataset_clear(&all[0]);
    free(all);
    ck_assert_int_eq(db_dataset_list(db, NULL, 2, 0, &all, &n, &total), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(total, 3);
    for (size_t i = 0; i < n; i++) {
        db_dataset_clear(&all[i]);
    }
    free(all);
    ck_assert_int_eq(db_dataset_list(db, NULL, 100, 3, &all, &n, &total), 0);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(total, 3);
    free(all);
    ck_assert_int_eq(db_dataset_list(db, "carol", 100, 0, &all, &n, &total), 0);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(total, 0);
    ck_assert_ptr_null(all);
    /* the file is in use while anyone keeps it */
    ck_assert_int_eq(refs_of(SHA_A), 2);
    ck_assert_int_eq(db_dataset_delete(db, SHA_A, "bob"), 0);
    ck_assert_int_eq(db_dataset_delete(db, SHA_A, "bob"), DB_ENOTFOUND);
    ck_assert_int_eq(db_dataset_delete(db, SHA_B, "bob"), DB_ENOTFOUND);
    ck_assert_int_eq(refs_of(SHA_A), 1);
    ck_assert_int_eq(db_dataset_get(db, SHA_A, "alice", &d), 0);
    db_dataset_clear(&d);
}
END_TEST

START_TEST(test_dataset_put_refuses)
{
    int created = -1;
    char long_name[400];
    db_dataset_t d;
    ck_assert_int_eq(db_dataset_put(db, "../../etc/passwd", "alice", "x", 1, NULL, &created),
                     DB_EINVAL);
    ck_assert_int_eq(db_dataset_put(db, SHA_A, NULL, "x", 1, NULL, &created), DB_EINVAL);
    ck_assert_int_eq(db_dataset_put(db, SHA_A, "alice", NULL, 1, NULL, &created), DB_EINVAL);
    ck_assert_int_eq(db_dataset_put(db, SHA_A, "alice", "x", -1, NULL, &created), DB_EINVAL);
    ck_assert_int_eq(db_dataset_put(db, SHA_A, "alice", "x", 1, "[1,2]", &created), DB_EINVAL);
    ck_assert_int_eq(db_dataset_put(db, SHA_A, "alice", "x", 1, "{not json", &created), DB_EINVAL);
    ck_assert_int_eq(created, 0);
    /* a long name is cut to what the struct holds */
    memset(long_name, 'n', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    ck_assert_int_eq(db_dataset_put(db, SHA_A, "alice", long_name, 1, NULL, &created), 0);
    ck_assert_int_eq(db_dataset_get(db, SHA_A, "alice", &d), 0);
    ck_assert_uint_eq(strlen(d.name), 255);
    db_dataset_clear(&d);
}
END_TEST

/* ---- suite --------------------------------------------------------------------------------- */

static TCase *tcase(const char *name, void (*setup)(void))
{
    TCase *tc = tcase_create(name);
    tcase_add_checked_fixture(tc, setup, close_memory);
    return tc;
}

static Suite *db_suite(void)
{
    Suite *s = suite_create("db");
    TCase *tc = tcase("schema", open_memory);
    tcase_add_test(tc, test_schema_memory);
    tcase_add_test(tc, test_schema_file_reopen);
    tcase_add_test(tc, test_schema_newer_refused);
    tcase_add_test(tc, test_schema_migrates_v1);
    tcase_add_test(tc, test_schema_migrates_v2);
    tcase_add_test(tc, test_state_names);
    suite_add_tcase(s, tc);

    tc = tcase("users", open_memory);
    tcase_add_test(tc, test_users);
    tcase_add_test(tc, test_owner_usage);
    suite_add_tcase(s, tc);

    tc = tcase("insert_get", open_memory);
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_round_trip_failed);
    tcase_add_test(tc, test_insert_refuses_incomplete);
    tcase_add_test(tc, test_ids_unique);
    tcase_add_test(tc, test_owner_isolation);
    suite_add_tcase(s, tc);

    tc = tcase("list", list_setup);
    tcase_add_test(tc, test_list_order_paging);
    tcase_add_test(tc, test_list_filters);
    tcase_add_test(tc, test_list_limit_clamp);
    suite_add_tcase(s, tc);

    tc = tcase("claim", open_memory);
    tcase_add_test(tc, test_claim_order);
    tcase_add_test(tc, test_claim_none_queued);
    tcase_add_test(tc, test_claim_once);
    tcase_add_test(tc, test_claim_two_connections);
    suite_add_tcase(s, tc);

    tc = tcase("state_rules", open_memory);
    tcase_add_test(tc, test_transitions_refused);
    tcase_add_test(tc, test_cancel_queued);
    tcase_add_test(tc, test_requeue_one);
    tcase_add_test(tc, test_counts);
    tcase_add_test(tc, test_delete_cascades_metrics);
    suite_add_tcase(s, tc);

    tc = tcase("recovery", open_memory);
    tcase_add_test(tc, test_recover_after_close);
    tcase_add_test(tc, test_recover_after_crash);
    suite_add_tcase(s, tc);

    tc = tcase("tensor_metrics", open_memory);
    tcase_add_test(tc, test_metrics_round_trip);
    tcase_add_test(tc, test_metrics_bad_input);
    tcase_add_test(tc, test_metrics_out_of_memory);
    suite_add_tcase(s, tc);

    tc = tcase("blobs", open_memory);
    tcase_add_test(tc, test_blob_refs);
    tcase_add_test(tc, test_blob_put_refuses);
    suite_add_tcase(s, tc);

    tc = tcase("datasets", open_memory);
    tcase_add_test(tc, test_datasets);
    tcase_add_test(tc, test_dataset_put_refuses);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(db_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
