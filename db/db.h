/* db.h — modelpressd's storage: the SQLite schema, its migrations and every query.
 *
 * Only the loop thread of modelpressd holds a db_t (see DESIGN.md, Threads); nothing here is
 * thread-safe beyond what one connection gives. Every SQL string of the project lives in db/.
 * The database runs in WAL mode with synchronous=FULL, a busy timeout, and foreign keys on;
 * writes use BEGIN IMMEDIATE; a job is claimed with UPDATE ... RETURNING so it cannot run twice.
 * The schema version is PRAGMA user_version, and db_open() migrates forward step by step.
 *
 * Return codes: 0 success, DB_ENOTFOUND when the row does not exist, DB_ECONFLICT when the
 * row is not in a state that allows the change, DB_EIO for an SQLite failure (the message is
 * in db_errmsg()), DB_EINVAL for an argument no row could hold (an unknown state or blob kind,
 * report text that is not JSON). db_errmsg() describes every non-zero return.
 */
#ifndef MP_DB_H
#define MP_DB_H

#include <stddef.h>
#include <stdint.h>

#define DB_ENOTFOUND (-1)
#define DB_ECONFLICT (-2)
#define DB_EIO (-3)
#define DB_EINVAL (-4)

typedef struct db db_t;

typedef enum {
    DB_JOB_QUEUED = 0,
    DB_JOB_RUNNING,
    DB_JOB_SUCCEEDED,
    DB_JOB_FAILED,
    DB_JOB_CANCELED,
    DB_JOB_N_STATES
} db_job_state_t;

/* "queued", "running", …; db_job_state_parse returns -1 for an unknown name. */
const char *db_job_state_name(db_job_state_t s);
int db_job_state_parse(const char *name);

/* One row of the jobs table. Strings marked (owned) are malloc'd and released by
 * db_job_clear(); the fixed arrays are always NUL-terminated. */
typedef struct db_job {
    char id[33];            /* 32 lowercase hex digits, random; set by db_job_insert */
    char owner[64];         /* user name; "" when auth is off */
    db_job_state_t state;
    char model_blob[65];    /* SHA-256 hex of the uploaded model */
    char *model_name;       /* (owned) file name the user uploaded, may be NULL */
    int64_t model_bytes;
    char dataset_blob[65];  /* "" when none */
    char *recipe;           /* (owned) recipe JSON text as submitted */
    double progress;        /* 0..1 */
    char stage[32];         /* current step name, "" when none */
    double created_at;      /* unix time, seconds with fraction; 0 = not yet */
    double started_at;
    double finished_at;
    char *error_code;       /* (owned) e.g. "EFORMAT", NULL unless failed */
    char *error_message;    /* (owned) */
    char *metrics;          /* (owned) JSON text of the totals, NULL until succeeded */
    int64_t result_bytes;   /* size of the output model, 0 until succeeded */
    int attempts;           /* times the job was claimed (a crash re-queues it) */
} db_job_t;

/* Free the owned strings and zero the struct. */
void db_job_clear(db_job_t *j);

/* Open (creating if needed) and migrate. path may be ":memory:". On failure *out is NULL and
 * errbuf holds the reason. */
int db_open(const char *path, db_t **out, char *errbuf, size_t errlen);
void db_close(db_t *db);
const char *db_errmsg(db_t *db);
/* The schema version after migration. */
int db_schema_version(db_t *db);
/* PRAGMA integrity_check: 0 when it says "ok". */
int db_integrity_check(db_t *db);

/* Insert a new queued job from job->owner, model_blob, model_name, model_bytes,
 * dataset_blob and recipe; fills job->id, state and created_at. Durable when it returns 0. */
int db_job_insert(db_t *db, db_job_t *job);

/* Read one job into *out (cleared first). owner NULL: any owner; otherwise a job of another
 * owner is DB_ENOTFOUND. */
int db_job_get(db_t *db, const char *id, const char *owner, db_job_t *out);

/* A page of jobs, newest first. state -1: any; owner NULL: any. *out is a malloc'd array of
 * *n jobs (free each with db_job_clear, then free the array); *total counts all matches. */
int db_job_list(db_t *db, int state, const char *owner, int limit, int offset, db_job_t **out,
                size_t *n, int64_t *total);

/* Claim the oldest queued job: it becomes running (started_at now, attempts + 1, progress 0)
 * and is read into *out. DB_ENOTFOUND when none is queued. */
int db_job_claim_next(db_t *db, db_job_t *out);

/* Progress of a running job (not durable: synchronous=NORMAL would do; cheap). */
int db_job_set_progress(db_t *db, const char *id, double progress, const char *stage);

/* A running job ends: state succeeded, failed or canceled; error fields for failed/canceled;
 * metrics JSON and result_bytes for succeeded. DB_ECONFLICT if the job was not running. */
int db_job_finish(db_t *db, const char *id, db_job_state_t state, const char *error_code,
                  const char *error_message, const char *metrics_json, int64_t result_bytes);

/* A queued job is canceled without running. DB_ECONFLICT if it is not queued any more. */
int db_job_cancel_queued(db_t *db, const char *id);

/* Every running job goes back to queued (after a crash, or at a drain that re-queues);
 * *n_requeued receives how many. */
int db_job_requeue_running(db_t *db, int *n_requeued);

/* A single running job goes back to queued (SIGTERM drain). */
int db_job_requeue(db_t *db, const char *id);

/* Delete a finished job and its tensor metrics. DB_ECONFLICT if queued or running. */
int db_job_delete(db_t *db, const char *id);

/* Number of jobs in a state (for /metrics and the scheduler). */
int db_job_count(db_t *db, db_job_state_t state, int64_t *n);

/* Per-tensor figures of a finished job, taken from its report JSON ("tensors" array with the
 * keys of DESIGN.md, Reports); replaces any earlier rows of the job. */
int db_tensor_metrics_put(db_t *db, const char *job_id, const char *report_json);
/* The stored per-tensor rows as a JSON array text (malloc'd) in report order. */
int db_tensor_metrics_get(db_t *db, const char *job_id, char **json_out);

/* Content-addressed blobs: record one (a no-op if present), and count the jobs that still
 * reference it (as model or dataset) plus the datasets users keep of it, so its file is removed
 * only when that reaches 0. db_blob_delete is DB_ECONFLICT while a job still references the
 * blob or someone keeps it as a dataset. */
int db_blob_put(db_t *db, const char *sha256_hex, int64_t bytes, const char *kind);
int db_blob_refs(db_t *db, const char *sha256_hex, int64_t *n_refs);
int db_blob_delete(db_t *db, const char *sha256_hex);

/* ---- users of a shared server (schema version 2) ---- */

typedef struct db_user {
    char name[64];
    double created_at;
    int64_t quota_bytes; /* -1: the server's default */
    int64_t quota_jobs;  /* -1: the server's default */
} db_user_t;

/* Add a user with the SHA-256 (hex) of their token. Names: 1 to 63 of letters, digits and
 * - _ . @ (DB_EINVAL otherwise). DB_ECONFLICT if the name or the token exists. Quotas -1: the
 * server's defaults. */
int db_user_add(db_t *db, const char *name, const char *token_sha256_hex, int64_t quota_bytes,
                int64_t quota_jobs);
/* The user a token belongs to: DB_ENOTFOUND if none. */
int db_user_by_token(db_t *db, const char *token_sha256_hex, db_user_t *out);
/* Every user, by name; *out is malloc'd (free() it). */
int db_user_list(db_t *db, db_user_t **out, size_t *n);
/* Revoke: the user's token stops working at once; their jobs stay. DB_ENOTFOUND if none. */
int db_user_delete(db_t *db, const char *name);
/* What an owner holds: bytes of uploads plus results over their jobs plus the datasets they
 * keep, and jobs queued or running (for quotas). */
int db_owner_usage(db_t *db, const char *owner, int64_t *bytes, int64_t *active_jobs);

/* ---- datasets (schema version 3) ----
 * A dataset is a blob of kind 'dataset' that a user keeps under a name, with a JSON summary of
 * what validation found in it (info). Rows are per owner: two users uploading the same bytes
 * each keep their own dataset of one stored file. While a user keeps a dataset its file counts
 * as referenced (db_blob_refs) and db_blob_delete refuses it. */
typedef struct db_dataset {
    char id[65];      /* SHA-256 hex of the file */
    char owner[64];   /* "" when auth is off */
    char name[256];   /* longer names are cut on storing */
    int64_t bytes;
    double created_at;
    char *info;       /* (owned) JSON object text, may be NULL */
} db_dataset_t;

/* Free the owned string and zero the struct. */
void db_dataset_clear(db_dataset_t *d);
/* Keep a dataset for owner; *created is 1 for a new one, 0 when the owner had these bytes
 * already (the name and info are then replaced). DB_EINVAL for a bad id, a NULL owner or name,
 * negative bytes or info that is not a JSON object. */
int db_dataset_put(db_t *db, const char *sha256_hex, const char *owner, const char *name,
                   int64_t bytes, const char *info_json, int *created);
/* One dataset; owner NULL: any owner (the oldest row). Another owner's is DB_ENOTFOUND. */
int db_dataset_get(db_t *db, const char *sha256_hex, const char *owner, db_dataset_t *out);
/* A page of the datasets of owner (NULL: everyone's), newest first: at most limit (clamped to
 * 1..1000) from offset; *total counts them all. *out is malloc'd (clear each with
 * db_dataset_clear, then free the array). */
int db_dataset_list(db_t *db, const char *owner, int limit, int offset, db_dataset_t **out,
                    size_t *n, int64_t *total);
/* Stop keeping a dataset (owner NULL: every owner's row of it). DB_ENOTFOUND if there was
 * none. The caller removes the file when db_blob_refs then says 0. */
int db_dataset_delete(db_t *db, const char *sha256_hex, const char *owner);

#endif /* MP_DB_H */
