/* upload.c — POST /jobs: take a model and a recipe, validate both, store the model durably,
 * commit the job row, answer 202.
 *
 * Two ways in: a multipart/form-data body (fields `model`, a file, and `recipe`, JSON text),
 * parsed as it streams by libmicrohttpd's post processor; or a raw application/octet-stream
 * body that is the model itself, with the recipe in ?recipe= or the X-Recipe header. Either
 * way the model streams to tmp/ while it is hashed, never held whole in memory.
 *
 * Order of checks, cheapest first: the announced Content-Length against the upload cap (413
 * before a byte of the body is read), the content type (415), the recipe's JSON when it is known
 * before the body (400); then, with the body in: the recipe (400), the model file (422 for a
 * malformed one, 415 for a format we do not read), the recipe against the model (400, e.g. a
 * select that matches nothing). Only then is the upload renamed into the blob store, the row
 * committed, and 202 answered. A refused or interrupted upload leaves no file and no row.
 */
#include "api/api_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Refuse the rest of the body: remember why, answer when the body has been read. */
static void refuse(api_req_t *req, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void refuse(api_req_t *req, const char *code, const char *fmt, ...)
{
    if (req->err_code[0] != '\0') {
        return; /* the first reason is the one to tell */
    }
    snprintf(req->err_code, sizeof req->err_code, "%s", code);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(req->err_msg, sizeof req->err_msg, fmt, ap);
    va_end(ap);
    api__upload_abort(&req->model);
}

static int append_recipe(api_req_t *req, const char *data, size_t size)
{
    if (req->recipe_len + size > API_RECIPE_MAX_BYTES) {
        refuse(req, "invalid_recipe", "recipe is larger than %d bytes", API_RECIPE_MAX_BYTES);
        return -1;
    }
    char *p = realloc(req->recipe, req->recipe_len + size + 1);
    if (p == NULL) {
        refuse(req, "internal", "out of memory reading the recipe");
        return -1;
    }
    memcpy(p + req->recipe_len, data, size);
    req->recipe = p;
    req->recipe_len += size;
    req->recipe[req->recipe_len] = '\0';
    req->have_recipe = 1;
    return 0;
}

static int model_chunk(api_req_t *req, const char *data, size_t size)
{
    int rc;
    if (req->model.fd < 0) {
        if ((rc = api__upload_open(req->api, &req->model)) != 0) {
            refuse(req, api__code_for_errno(rc), "cannot store the upload: %s", strerror(-rc));
            return -1;
        }
        req->have_model = 1;
    }
    if (size > 0 && (rc = api__upload_write(&req->model, data, size)) != 0) {
        refuse(req, api__code_for_errno(rc), "cannot store the upload after %llu bytes: %s",
               (unsigned long long)req->model.bytes, strerror(-rc));
        return -1;
    }
    return 0;
}

static enum MHD_Result form_field_cb(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *filename, const char *content_type,
                                     const char *transfer_encoding, const char *data, uint64_t off,
                                     size_t size)
{
    api_req_t *req = cls;
    if (req->err_code[0] != '\0') {
        return MHD_NO;
    }
    if (strcmp(key, "model") == 0) {
        if (off == 0 && req->have_model && req->model.bytes > 0) {
            refuse(req, "bad_request", "form field 'model' was sent twice");
            return MHD_NO;
        }
        if (off == 0 && filename != NULL && req->model_name == NULL) {
            req->model_name = strdup(filename);
        }
        return model_chunk(req, data, size) == 0 ? MHD_YES : MHD_NO;
    }
    if (strcmp(key, "recipe") == 0) {
        return append_recipe(req, data, size) == 0 ? MHD_YES : MHD_NO;
    }
    if (strcmp(key, "dataset") == 0 || strcmp(key, "dataset_id") == 0) {
        refuse(req, "bad_request",
               "form field '%s': evaluation datasets are not available in this version", key);
        return MHD_NO;
    }
    refuse(req, "bad_request", "unknown form field '%s' (expected 'model' and 'recipe')", key);
    return MHD_NO;
}

static uint64_t content_length(struct MHD_Connection *conn, int *present)
{
    const char *cl =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    *present = cl != NULL;
    return cl != NULL ? strtoull(cl, NULL, 10) : 0;
}

enum MHD_Result api__post_jobs_begin(api_req_t *req, struct MHD_Connection *conn)
{
    api_t *api = req->api;
    int has_len;
    uint64_t len = content_length(conn, &has_len);
    if (api->draining) {
        return api__send_error(req, conn, "unavailable",
                               "the service is shutting down; submit the job again shortly");
    }
    enum MHD_Result ret;
    if (api__over_quota(req, conn, has_len ? len : 0, &ret) != 0) {
        return ret;
    }
    if (has_len && len > api->upload_max_bytes) {
        return api__send_error(req, conn, "payload_too_large",
                               "the upload is %llu bytes; this server takes at most %llu",
                               (unsigned long long)len, (unsigned long long)api->upload_max_bytes);
    }
    const char *ct =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (ct != NULL && strncasecmp(ct, "multipart/form-data", 19) == 0) {
        req->pp = MHD_create_post_processor(conn, 64 * 1024, form_field_cb, req);
        if (req->pp == NULL) {
            return api__send_error(req, conn, "bad_request",
                                   "multipart/form-data without a boundary");
        }
        return MHD_YES;
    }
    if (ct != NULL && strncasecmp(ct, "application/octet-stream", 24) == 0) {
        req->raw = 1;
        const char *recipe = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "recipe");
        if (recipe == NULL) {
            recipe = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Recipe");
        }
        if (recipe == NULL) {
            return api__send_error(req, conn, "invalid_recipe",
                                   "a raw model upload needs the recipe in ?recipe= or the "
                                   "X-Recipe header");
        }
        mp_errctx_t err = {0};
        mp_recipe_t *r = NULL;
        int rc = mp_recipe_parse(recipe, strlen(recipe), &r, &err);
        mp_recipe_free(r);
        if (rc != 0) {
            return api__send_error(req, conn, api__code_for_mp(rc), "%s", err.msg);
        }
        if (append_recipe(req, recipe, strlen(recipe)) != 0) {
            return api__send_error(req, conn, req->err_code, "%s", req->err_msg);
        }
        const char *name = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "name");
        if (name != NULL) {
            req->model_name = strdup(name);
        }
        return MHD_YES;
    }
    return api__send_error(req, conn, "unsupported_media_type",
                           "POST /jobs takes multipart/form-data (fields 'model' and 'recipe') "
                           "or an application/octet-stream model with ?recipe=; got %s",
                           ct != NULL ? ct : "no Content-Type");
}

/* The body is in: validate, store, commit, answer. */
static enum MHD_Result finish_post(api_req_t *req, struct MHD_Connection *conn)
{
    api_t *api = req->api;
    mp_recipe_t *recipe = NULL;
    mp_model_t *model = NULL;
    mp_errctx_t err = {0};
    db_job_t job = {0};
    char blob_path[API_PATH_MAX];
    enum MHD_Result ret;
    int rc;

    if (req->pp != NULL) {
        MHD_destroy_post_processor(req->pp);
        req->pp = NULL;
    }
    if (req->err_code[0] != '\0') {
        ret = api__send_error(req, conn, req->err_code, "%s", req->err_msg);
        goto out;
    }
    if (!req->have_model || req->model.bytes == 0) {
        ret = api__send_error(req, conn, "bad_request",
                              req->have_model ? "the model file is empty"
                                              : "missing form field 'model' (the model file)");
        goto out;
    }
    if (!req->have_recipe) {
        ret = api__send_error(req, conn, "invalid_recipe",
                              "missing form field 'recipe' (JSON text, e.g. "
                              "{\"steps\":[{\"quantize\":{\"bits\":8}}]})");
        goto out;
    }
    if ((rc = mp_recipe_parse(req->recipe, req->recipe_len, &recipe, &err)) != 0) {
        ret = api__send_error(req, conn, api__code_for_mp(rc), "%s", err.msg);
        goto out;
    }
    if ((rc = api__upload_finish(&req->model)) != 0) {
        ret = api__send_error(req, conn, api__code_for_errno(rc), "cannot store the upload: %s",
                              strerror(-rc));
        goto out;
    }
    if ((rc = mp_model_load(req->model.tmp_path, &model, &err)) != 0) {
        ret = api__send_error(req, conn,
                              rc == MP_EUNSUPPORTED ? "unsupported_model" : "invalid_model", "%s",
                              err.msg);
        goto out;
    }
    if ((rc = mp_recipe_check_model(recipe, model, &err)) != 0) {
        ret = api__send_error(req, conn, api__code_for_mp(rc), "%s", err.msg);
        goto out;
    }
    mp_model_free(model); /* unmap before the file moves */
    model = NULL;
    if (api__over_quota(req, conn, req->model.bytes, &ret) != 0) {
        goto out;
    }
    if ((rc = api__upload_commit(api, &req->model, blob_path, sizeof blob_path)) != 0) {
        ret = api__send_error(req, conn, api__code_for_errno(rc), "cannot store the upload: %s",
                              strerror(-rc));
        goto out;
    }
    if (db_blob_put(api->db, req->model.hex, (int64_t)req->model.bytes, "model") != 0) {
        ret = api__send_error(req, conn, "internal", "database: %s", db_errmsg(api->db));
        goto out;
    }
    snprintf(job.model_blob, sizeof job.model_blob, "%s", req->model.hex);
    snprintf(job.owner, sizeof job.owner, "%s", req->user);
    job.model_name = req->model_name;
    job.model_bytes = (int64_t)req->model.bytes;
    job.recipe = req->recipe;
    if (db_job_insert(api->db, &job) != 0) {
        job.model_name = NULL;
        job.recipe = NULL;
        ret = api__send_error(req, conn, "internal", "database: %s", db_errmsg(api->db));
        goto out;
    }
    job.model_name = NULL; /* still owned by req */
    job.recipe = NULL;
    db_job_t stored = {0};
    json_t *body;
    if (db_job_get(api->db, job.id, req->owner, &stored) == 0) {
        body = api__job_json(&stored);
    } else {
        body = json_pack("{s:s,s:s}", "id", job.id, "state", "queued");
    }
    db_job_clear(&stored);
    char location[64];
    snprintf(location, sizeof location, "/jobs/%s", job.id);
    ret = api__send_json(req, conn, MHD_HTTP_ACCEPTED, body, MHD_HTTP_HEADER_LOCATION, location);
    if (api->hooks.job_queued_cb != NULL) {
        api->hooks.job_queued_cb(api->hooks.ud);
    }
out:
    mp_model_free(model);
    mp_recipe_free(recipe);
    db_job_clear(&job);
    api__upload_abort(&req->model); /* a no-op once committed */
    return ret;
}

enum MHD_Result api__post_jobs(api_req_t *req, struct MHD_Connection *conn, const char *upload_data,
                               size_t *upload_data_size)
{
    size_t n = *upload_data_size;
    if (n == 0) {
        return finish_post(req, conn);
    }
    *upload_data_size = 0;
    req->body_bytes += n;
    req->api->stats.bytes_in += n;
    if (req->body_bytes > req->api->upload_max_bytes) {
        /* A chunked body past the cap: close the connection; the completion callback removes
         * the partial file. */
        api__upload_abort(&req->model);
        req->status = MHD_HTTP_CONTENT_TOO_LARGE;
        return MHD_NO;
    }
    if (req->err_code[0] != '\0') {
        return MHD_YES; /* read and drop the rest, then answer */
    }
    if (req->raw) {
        model_chunk(req, upload_data, n);
    } else if (MHD_post_process(req->pp, upload_data, n) != MHD_YES) {
        refuse(req, "bad_request", "malformed multipart/form-data body");
    }
    return MHD_YES;
}

void api__req_release(api_req_t *req)
{
    if (req->pp != NULL) {
        MHD_destroy_post_processor(req->pp);
    }
    api__upload_abort(&req->model);
    free(req->model_name);
    free(req->recipe);
    free(req);
}
