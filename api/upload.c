/* upload.c — POST /jobs: take a model and a recipe, validate both, store the model durably,
 * commit the job row, answer 202; and the body streaming that POST /datasets shares.
 *
 * Two ways in: a multipart/form-data body (fields `model`, a file, and `recipe`, JSON text;
 * optionally `dataset`, a file, or `dataset_id`), parsed as it streams by libmicrohttpd's post
 * processor; or a raw application/octet-stream body that is the model itself, with the recipe
 * in ?recipe= or the X-Recipe header (and a dataset only by ?dataset_id= or the recipe's
 * evaluate.dataset_id). Either way files stream to tmp/ while they are hashed, never held whole
 * in memory.
 *
 * Order of checks, cheapest first: the announced Content-Length against the upload cap (413
 * before a byte of the body is read), the content type (415), the recipe's JSON when it is known
 * before the body (400); then, with the body in: the recipe (400), the model file (422 for a
 * malformed one, 415 for a format we do not read), the recipe against the model (400, e.g. a
 * select that matches nothing), the dataset (422 for a bad file, 404 for an id the user does not
 * have) and the evaluate block (400 without a dataset, or for a model without a graph). Only
 * then is the upload renamed into the blob store, the row committed, and 202 answered. A refused
 * or interrupted upload leaves no file and no row.
 */
#include "api/api_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void api__refuse(api_req_t *req, const char *code, const char *fmt, ...)
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
    if (req->have_dataset) {
        api__upload_abort(&req->dataset);
    }
}

static int append_recipe(api_req_t *req, const char *data, size_t size)
{
    if (req->recipe_len + size > API_RECIPE_MAX_BYTES) {
        api__refuse(req, "invalid_recipe", "recipe is larger than %d bytes", API_RECIPE_MAX_BYTES);
        return -1;
    }
    char *p = realloc(req->recipe, req->recipe_len + size + 1);
    if (p == NULL) {
        api__refuse(req, "internal", "out of memory reading the recipe");
        return -1;
    }
    memcpy(p + req->recipe_len, data, size);
    req->recipe = p;
    req->recipe_len += size;
    req->recipe[req->recipe_len] = '\0';
    req->have_recipe = 1;
    return 0;
}

int api__upload_chunk(api_req_t *req, api_upload_t *up, int *have, const char *data, size_t size)
{
    int rc;
    if (!*have) {
        if ((rc = api__upload_open(req->api, up)) != 0) {
            api__refuse(req, api__code_for_errno(rc), "cannot store the upload: %s", strerror(-rc));
            return -1;
        }
        *have = 1;
    }
    if (up->fd < 0) {
        return -1; /* dropped by a refusal */
    }
    if (size > 0 && (rc = api__upload_write(up, data, size)) != 0) {
        api__refuse(req, api__code_for_errno(rc), "cannot store the upload after %llu bytes: %s",
                    (unsigned long long)up->bytes, strerror(-rc));
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
            api__refuse(req, "bad_request", "form field 'model' was sent twice");
            return MHD_NO;
        }
        if (off == 0 && filename != NULL && req->model_name == NULL) {
            req->model_name = strdup(filename);
        }
        return api__upload_chunk(req, &req->model, &req->have_model, data, size) == 0 ? MHD_YES
                                                                                      : MHD_NO;
    }
    if (strcmp(key, "recipe") == 0) {
        return append_recipe(req, data, size) == 0 ? MHD_YES : MHD_NO;
    }
    enum MHD_Result ret;
    if (api__dataset_field(req, key, filename, data, off, size, 1, &ret)) {
        return ret;
    }
    api__refuse(req, "bad_request",
                "unknown form field '%s' (expected 'model', 'recipe', and 'dataset' or "
                "'dataset_id')",
                key);
    return MHD_NO;
}

static uint64_t content_length(struct MHD_Connection *conn, int *present)
{
    const char *cl =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    *present = cl != NULL;
    return cl != NULL ? strtoull(cl, NULL, 10) : 0;
}

int api__upload_begin(api_req_t *req, struct MHD_Connection *conn, MHD_PostDataIterator field_cb,
                      const char *usage, enum MHD_Result *ret)
{
    api_t *api = req->api;
    int has_len;
    uint64_t len = content_length(conn, &has_len);
    if (api->draining) {
        *ret = api__send_error(req, conn, "unavailable",
                               "the service is shutting down; send it again shortly");
        return -1;
    }
    if (api__over_quota(req, conn, has_len ? len : 0, ret) != 0) {
        return -1;
    }
    if (has_len && len > api->upload_max_bytes) {
        *ret = api__send_error(req, conn, "payload_too_large",
                               "the upload is %llu bytes; this server takes at most %llu",
                               (unsigned long long)len, (unsigned long long)api->upload_max_bytes);
        return -1;
    }
    const char *ct =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (ct != NULL && strncasecmp(ct, "multipart/form-data", 19) == 0) {
        req->pp = MHD_create_post_processor(conn, 64 * 1024, field_cb, req);
        if (req->pp == NULL) {
            *ret =
                api__send_error(req, conn, "bad_request", "multipart/form-data without a boundary");
            return -1;
        }
        return 0;
    }
    if (ct != NULL && strncasecmp(ct, "application/octet-stream", 24) == 0) {
        req->raw = 1;
        return 0;
    }
    *ret = api__send_error(req, conn, "unsupported_media_type", "%s; got %s", usage,
                           ct != NULL ? ct : "no Content-Type");
    return -1;
}

enum MHD_Result api__post_jobs_begin(api_req_t *req, struct MHD_Connection *conn)
{
    enum MHD_Result ret;
    if (api__upload_begin(req, conn, form_field_cb,
                          "POST /jobs takes multipart/form-data (fields 'model' and 'recipe') or "
                          "an application/octet-stream model with ?recipe=",
                          &ret) != 0) {
        return ret;
    }
    if (req->raw) {
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
        const char *id = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "dataset_id");
        if (id != NULL && api__dataset_field(req, "dataset_id", NULL, id, 0, strlen(id), 1, &ret) &&
            req->err_code[0] != '\0') {
            return api__send_error(req, conn, req->err_code, "%s", req->err_msg);
        }
    }
    return MHD_YES;
}

/* The dataset of a job and its evaluate block, checked together: a dataset is there to be used
 * by an evaluate block, an evaluate block needs a dataset and a model with a graph to run. A
 * dataset file sent with the job is validated and kept for the user like one from POST
 * /datasets; an id must name one of the user's datasets (404 otherwise, as for a missing one).
 * On success req->dataset_id is the job's dataset ("" for none). */
static int check_dataset(api_req_t *req, struct MHD_Connection *conn, const mp_model_t *model,
                         enum MHD_Result *ret)
{
    mp_eval_spec_t spec;
    mp_errctx_t err = {0};
    db_dataset_t d = {0};
    int rc, created;

    if ((rc = mp_recipe_evaluate(req->recipe, req->recipe_len, &spec, &err)) != 0) {
        *ret = api__send_error(req, conn, api__code_for_mp(rc), "%s", err.msg);
        return -1;
    }
    if (req->have_dataset && req->dataset_id[0] != '\0') {
        *ret = api__send_error(req, conn, "bad_request",
                               "send a dataset file or a dataset_id, not both");
        return -1;
    }
    if (req->have_dataset && req->dataset.bytes == 0) {
        *ret = api__send_error(req, conn, "bad_request", "the dataset file is empty");
        return -1;
    }
    if (req->dataset_id_len > 0 && !api__dataset_id_valid(req->dataset_id, req->dataset_id_len)) {
        *ret = api__send_error(req, conn, "bad_request",
                               "dataset_id: must be the id of a dataset (64 lowercase hex "
                               "digits, as POST /datasets answers)");
        return -1;
    }
    if (req->dataset_id[0] != '\0' && spec.dataset_id[0] != '\0' &&
        strcmp(req->dataset_id, spec.dataset_id) != 0) {
        *ret = api__send_error(req, conn, "bad_request",
                               "dataset_id %s and the recipe's evaluate.dataset_id %s differ",
                               req->dataset_id, spec.dataset_id);
        return -1;
    }
    if (req->dataset_id[0] == '\0') {
        memcpy(req->dataset_id, spec.dataset_id, sizeof req->dataset_id);
    }
    int has = req->have_dataset || req->dataset_id[0] != '\0';
    if (has && !spec.present) {
        *ret = api__send_error(req, conn, "invalid_recipe",
                               "a dataset came with the job but the recipe has no evaluate block "
                               "to use it: add \"evaluate\": {\"metric\": \"top1\"}");
        return -1;
    }
    if (spec.present && !has) {
        *ret = api__send_error(req, conn, "invalid_recipe",
                               "evaluate: needs a dataset: name it in evaluate.dataset_id or a "
                               "dataset_id field, or send the file in a dataset field");
        return -1;
    }
    if (spec.present && !mp_model_is_onnx(model)) {
        *ret = api__send_error(req, conn, "invalid_recipe",
                               "evaluate: only an ONNX model can be run to measure accuracy and "
                               "speed; this one is not (safetensors and .mpz files hold weights "
                               "without a graph)");
        return -1;
    }
    if (req->have_dataset) {
        return api__dataset_store(req, conn, req->model.bytes, &created, NULL, ret);
    }
    if (!has) {
        return 0;
    }
    rc = db_dataset_get(req->api->db, req->dataset_id, req->owner, &d);
    db_dataset_clear(&d);
    if (rc != 0) {
        *ret =
            rc == DB_ENOTFOUND
                ? api__send_error(req, conn, "not_found",
                                  "no dataset %.64s here (upload one with POST /datasets)",
                                  req->dataset_id)
                : api__send_error(req, conn, "internal", "database: %s", db_errmsg(req->api->db));
        return -1;
    }
    return 0;
}

/* An ONNX model comes back as ONNX unless the recipe asks for .mpz, and an evaluation runs the
 * rewritten graph: either needs a graph mp_onnx_apply can write into, which is known now, before
 * anything is stored or compressed (an opset below 7 is not). */
static int check_onnx_output(api_req_t *req, struct MHD_Connection *conn, const mp_model_t *model,
                             const mp_recipe_t *recipe, enum MHD_Result *ret)
{
    mp_eval_spec_t spec = {0};
    mp_errctx_t err = {0};
    int rc;

    if (!mp_model_is_onnx(model)) {
        return 0;
    }
    const int evaluating = req->have_dataset || req->dataset_id[0] != '\0' ||
                           (mp_recipe_evaluate(req->recipe, req->recipe_len, &spec, NULL) == 0 &&
                            spec.present);
    if ((strcmp(mp_recipe_output_format(recipe), "mpz") != 0 || evaluating) &&
        (rc = mp_onnx_check_apply(model, &err)) != 0) {
        *ret = api__send_error(req, conn, api__code_for_mp(rc), "%s", err.msg);
        return -1;
    }
    return 0;
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
    if (check_onnx_output(req, conn, model, recipe, &ret) != 0 ||
        check_dataset(req, conn, model, &ret) != 0) {
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
    snprintf(job.dataset_blob, sizeof job.dataset_blob, "%s", req->dataset_id);
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
    if (req->have_dataset) {
        api__upload_abort(&req->dataset);
    }
    return ret;
}

enum MHD_Result api__post_body(api_req_t *req, struct MHD_Connection *conn, const char *upload_data,
                               size_t *upload_data_size)
{
    size_t n = *upload_data_size;
    if (n == 0) {
        return req->kind == REQ_POST_JOBS ? finish_post(req, conn)
                                          : api__post_datasets_end(req, conn);
    }
    *upload_data_size = 0;
    req->body_bytes += n;
    req->api->stats.bytes_in += n;
    if (req->body_bytes > req->api->upload_max_bytes) {
        /* A chunked body past the cap: close the connection; the completion callback removes
         * the partial files. */
        api__upload_abort(&req->model);
        if (req->have_dataset) {
            api__upload_abort(&req->dataset);
        }
        req->status = MHD_HTTP_CONTENT_TOO_LARGE;
        return MHD_NO;
    }
    if (req->err_code[0] != '\0') {
        return MHD_YES; /* read and drop the rest, then answer */
    }
    if (req->raw && req->kind == REQ_POST_JOBS) {
        api__upload_chunk(req, &req->model, &req->have_model, upload_data, n);
    } else if (req->raw) {
        api__upload_chunk(req, &req->dataset, &req->have_dataset, upload_data, n);
    } else if (MHD_post_process(req->pp, upload_data, n) != MHD_YES) {
        api__refuse(req, "bad_request", "malformed multipart/form-data body");
    }
    return MHD_YES;
}

void api__req_release(api_req_t *req)
{
    if (req->pp != NULL) {
        MHD_destroy_post_processor(req->pp);
    }
    api__upload_abort(&req->model);
    if (req->have_dataset) {
        api__upload_abort(&req->dataset);
    }
    free(req->model_name);
    free(req->dataset_name);
    free(req->recipe);
    free(req);
}
