/* datasets.c — evaluation data on the server: POST /datasets, GET /datasets, GET and DELETE
 * /datasets/{id}, and the dataset a job brings with POST /jobs.
 *
 * A dataset arrives like a model (multipart field `dataset`, optionally with a text field
 * `name`, or a raw application/octet-stream body with ?name=), streams to tmp/ while it is
 * hashed, and is validated by the core's mp_dataset_load before anything is kept: a malformed
 * file is 422 with the core's message (which array, which byte), a valid one modelpress cannot
 * use 415, one past the limits 413. Only then is it renamed into the blob store
 * (content-addressed, so the same file is stored once) and recorded as a dataset of the user
 * (db_dataset_put); its id is its SHA-256. Answers: 201 with the dataset when it is new to the
 * user, 200 when they had those bytes already (the name is replaced). Datasets count toward the
 * user's byte quota; another user's dataset is 404, exactly like a missing one.
 */
#include "api/api_int.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_NAME "dataset"

const char *api__datasets_route_name(const char *url)
{
    if (strcmp(url, "/datasets") == 0 || strcmp(url, "/datasets/") == 0) {
        return "/datasets";
    }
    if (strncmp(url, "/datasets/", 10) == 0 && strchr(url + 10, '/') == NULL) {
        return "/datasets/{id}";
    }
    return NULL;
}

int api__dataset_id_valid(const char *s, size_t n)
{
    if (n != 64) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i])) {
            return 0;
        }
    }
    return 1;
}

/* ---- the JSON of a dataset ---- */

/* A name fit for a JSON string and a dashboard: control characters become '?', and so does
 * every byte above 0x7F when the whole is not UTF-8 (jansson refuses such strings). */
static json_t *name_json(const char *name)
{
    json_t *j;
    char *copy;

    for (const char *c = name; *c != '\0'; c++) {
        if ((unsigned char)*c < 0x20 || *c == 0x7F) {
            goto clean;
        }
    }
    if ((j = json_string(name)) != NULL) {
        return j;
    }
clean:
    if ((copy = strdup(name)) == NULL) {
        return NULL;
    }
    for (char *c = copy; *c != '\0'; c++) {
        *c = (unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7F ? '?' : *c;
    }
    j = json_string(copy);
    free(copy);
    return j;
}

/* What the API shows of a stored dataset (new reference): id, owner, name, bytes, created_at
 * and what validation found (format, samples, x_shape, has_labels, n_classes). */
static json_t *dataset_json(const db_dataset_t *d)
{
    json_t *info = d->info != NULL ? json_loads(d->info, 0, NULL) : NULL;
    json_t *j = json_pack("{s:s,s:s,s:o*,s:I,s:o}", "id", d->id, "owner", d->owner, "name",
                          name_json(d->name), "bytes", (json_int_t)d->bytes, "created_at",
                          api__time_json(d->created_at));

    if (j != NULL && json_is_object(info)) {
        json_object_update_missing(j, info);
    }
    json_decref(info);
    return j;
}

/* What validation found in a dataset, as stored in the row's info (JSON text, malloc'd). */
static char *info_text(const mp_dataset_t *ds)
{
    int n_dims = 0;
    const int64_t *shape = mp_dataset_shape(ds, &n_dims);
    json_t *x_shape = json_array();
    json_t *info;
    char *text;

    for (int i = 0; i < n_dims; i++) {
        json_array_append_new(x_shape, json_integer(shape[i]));
    }
    info =
        json_pack("{s:s,s:I,s:o,s:b,s:I}", "format", mp_dataset_format(ds), "samples",
                  (json_int_t)mp_dataset_samples(ds), "x_shape", x_shape, "has_labels",
                  mp_dataset_labels(ds) != NULL, "n_classes", (json_int_t)mp_dataset_classes(ds));
    text = info != NULL ? json_dumps(info, JSON_COMPACT) : NULL;
    json_decref(info);
    return text;
}

/* ---- receiving ---- */

int api__dataset_field(api_req_t *req, const char *key, const char *filename, const char *data,
                       uint64_t off, size_t size, int ids_too, enum MHD_Result *ret)
{
    if (strcmp(key, "dataset") == 0) {
        if (off == 0 && req->have_dataset && req->dataset.bytes > 0) {
            api__refuse(req, "bad_request", "form field 'dataset' was sent twice");
            *ret = MHD_NO;
            return 1;
        }
        if (off == 0 && filename != NULL && req->dataset_name == NULL) {
            req->dataset_name = strdup(filename);
        }
        *ret = api__upload_chunk(req, &req->dataset, &req->have_dataset, data, size) == 0 ? MHD_YES
                                                                                          : MHD_NO;
        return 1;
    }
    if (ids_too && strcmp(key, "dataset_id") == 0) {
        if (size > sizeof req->dataset_id - 1 - req->dataset_id_len) {
            api__refuse(req, "bad_request",
                        "dataset_id: must be the id of a dataset (64 lowercase hex digits, as "
                        "POST /datasets answers)");
            *ret = MHD_NO;
            return 1;
        }
        memcpy(req->dataset_id + req->dataset_id_len, data, size);
        req->dataset_id_len += size;
        req->dataset_id[req->dataset_id_len] = '\0';
        *ret = MHD_YES;
        return 1;
    }
    return 0;
}

/* POST /datasets' multipart fields: `dataset` (the file) and `name`. */
static enum MHD_Result field_cb(void *cls, enum MHD_ValueKind kind, const char *key,
                                const char *filename, const char *content_type,
                                const char *transfer_encoding, const char *data, uint64_t off,
                                size_t size)
{
    api_req_t *req = cls;
    enum MHD_Result ret;

    if (req->err_code[0] != '\0') {
        return MHD_NO;
    }
    if (api__dataset_field(req, key, filename, data, off, size, 0, &ret)) {
        return ret;
    }
    if (strcmp(key, "name") == 0) {
        /* the text field wins over the file's name, whichever comes first */
        size_t have = off == 0 || req->dataset_name == NULL ? 0 : strlen(req->dataset_name);
        char *p = have + size > 1024
                      ? NULL
                      : realloc(off == 0 ? NULL : req->dataset_name, have + size + 1);
        if (p == NULL) {
            api__refuse(req, "bad_request", "name: at most 1024 bytes");
            return MHD_NO;
        }
        if (off == 0) {
            free(req->dataset_name);
        }
        memcpy(p + have, data, size);
        p[have + size] = '\0';
        req->dataset_name = p;
        return MHD_YES;
    }
    api__refuse(req, "bad_request", "unknown form field '%s' (expected 'dataset' and 'name')", key);
    return MHD_NO;
}

int api__dataset_store(api_req_t *req, struct MHD_Connection *conn, uint64_t extra_bytes,
                       int *created, json_t **json, enum MHD_Result *ret)
{
    api_t *api = req->api;
    mp_dataset_t *ds = NULL;
    mp_errctx_t err = {0};
    db_dataset_t row = {0};
    char blob_path[API_PATH_MAX];
    char *info = NULL;
    int rc, stored = -1;

    if ((rc = api__upload_finish(&req->dataset)) != 0) {
        *ret = api__send_error(req, conn, api__code_for_errno(rc), "cannot store the upload: %s",
                               strerror(-rc));
        goto out;
    }
    if ((rc = mp_dataset_load(req->dataset.tmp_path, &ds, &err)) != 0) {
        *ret = api__send_error(req, conn,
                               rc == MP_EFORMAT        ? "invalid_dataset"
                               : rc == MP_EUNSUPPORTED ? "unsupported_dataset"
                                                       : api__code_for_mp(rc),
                               "dataset: %s", err.msg);
        goto out;
    }
    if ((info = info_text(ds)) == NULL) {
        *ret = api__send_error(req, conn, "internal", "out of memory");
        goto out;
    }
    mp_dataset_free(ds);
    ds = NULL;
    rc = db_dataset_get(api->db, req->dataset.hex, req->user, &row);
    db_dataset_clear(&row);
    if (rc != 0 && rc != DB_ENOTFOUND) {
        *ret = api__send_error(req, conn, "internal", "database: %s", db_errmsg(api->db));
        goto out;
    }
    /* The same bytes again add nothing to what the user keeps. */
    if (api__over_quota(req, conn, (rc == 0 ? 0 : req->dataset.bytes) + extra_bytes, ret) != 0) {
        goto out;
    }
    if ((rc = api__upload_commit(api, &req->dataset, blob_path, sizeof blob_path)) != 0) {
        *ret = api__send_error(req, conn, api__code_for_errno(rc), "cannot store the upload: %s",
                               strerror(-rc));
        goto out;
    }
    if (db_dataset_put(api->db, req->dataset.hex, req->user,
                       req->dataset_name != NULL && req->dataset_name[0] != '\0' ? req->dataset_name
                                                                                 : DEFAULT_NAME,
                       (int64_t)req->dataset.bytes, info, created) != 0 ||
        db_dataset_get(api->db, req->dataset.hex, req->user, &row) != 0) {
        *ret = api__send_error(req, conn, "internal", "database: %s", db_errmsg(api->db));
        goto out;
    }
    memcpy(req->dataset_id, req->dataset.hex, sizeof req->dataset_id);
    if (json != NULL) {
        *json = dataset_json(&row);
    }
    stored = 0;
out:
    db_dataset_clear(&row);
    mp_dataset_free(ds);
    free(info);
    return stored;
}

enum MHD_Result api__post_datasets_end(api_req_t *req, struct MHD_Connection *conn)
{
    enum MHD_Result ret;
    json_t *body = NULL;
    int created = 0;

    if (req->pp != NULL) {
        MHD_destroy_post_processor(req->pp);
        req->pp = NULL;
    }
    if (req->err_code[0] != '\0') {
        ret = api__send_error(req, conn, req->err_code, "%s", req->err_msg);
    } else if (!req->have_dataset || req->dataset.bytes == 0) {
        ret = api__send_error(req, conn, "bad_request",
                              req->have_dataset ? "the dataset file is empty"
                                                : "missing form field 'dataset' (the file: .npz "
                                                  "with x and y, .npy, or safetensors)");
    } else if (api__dataset_store(req, conn, 0, &created, &body, &ret) == 0) {
        char location[80];

        snprintf(location, sizeof location, "/datasets/%s", req->dataset_id);
        ret = api__send_json(req, conn, created ? MHD_HTTP_CREATED : MHD_HTTP_OK, body,
                             MHD_HTTP_HEADER_LOCATION, location);
    }
    if (req->have_dataset) {
        api__upload_abort(&req->dataset); /* a no-op once committed */
    }
    return ret;
}

/* ---- the routes ---- */

/* A page of the user's datasets (everyone's with auth off), newest first: ?limit= (1 to 1000,
 * default 100) and ?offset=, with the total, as GET /jobs pages. */
static enum MHD_Result get_datasets(api_req_t *req, struct MHD_Connection *conn)
{
    db_dataset_t *list = NULL;
    json_t *arr;
    size_t n = 0;
    int64_t total = 0;
    long limit, offset;

    if (api__uint_arg(conn, "limit", 100, 1000, &limit) != 0 || limit == 0) {
        return api__send_error(req, conn, "bad_request", "limit: must be an integer 1 to 1000");
    }
    if (api__uint_arg(conn, "offset", 0, INT_MAX, &offset) != 0) {
        return api__send_error(req, conn, "bad_request",
                               "offset: must be an integer 0 to 2147483647");
    }
    arr = json_array();
    if (db_dataset_list(req->api->db, req->owner, (int)limit, (int)offset, &list, &n, &total) !=
        0) {
        json_decref(arr);
        return api__send_error(req, conn, "internal", "database: %s", db_errmsg(req->api->db));
    }
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(arr, dataset_json(&list[i]));
        db_dataset_clear(&list[i]);
    }
    free(list);
    return api__send_json(req, conn, MHD_HTTP_OK,
                          json_pack("{s:o,s:I,s:i,s:i}", "datasets", arr, "total",
                                    (json_int_t)total, "limit", (int)limit, "offset", (int)offset),
                          NULL, NULL);
}

static enum MHD_Result dataset_route(api_req_t *req, struct MHD_Connection *conn,
                                     const char *method, const char *id)
{
    api_t *api = req->api;
    db_dataset_t d = {0};
    enum MHD_Result ret;
    int64_t refs = 1;
    int rc;

    if (strcmp(method, "GET") != 0 && strcmp(method, "DELETE") != 0) {
        return api__method_not_allowed(req, conn, "GET, DELETE");
    }
    if (!api__dataset_id_valid(id, strlen(id))) {
        return api__send_error(req, conn, "not_found", "no such dataset");
    }
    rc = strcmp(method, "GET") == 0 ? db_dataset_get(api->db, id, req->owner, &d)
                                    : db_dataset_delete(api->db, id, req->owner);
    if (rc == DB_ENOTFOUND) {
        return api__send_error(req, conn, "not_found", "no such dataset");
    }
    if (rc != 0) {
        return api__send_error(req, conn, "internal", "database: %s", db_errmsg(api->db));
    }
    if (strcmp(method, "GET") == 0) {
        ret = api__send_json(req, conn, MHD_HTTP_OK, dataset_json(&d), NULL, NULL);
        db_dataset_clear(&d);
        return ret;
    }
    /* The file goes with the last reference: no job names it and no one else keeps it. */
    if (db_blob_refs(api->db, id, &refs) == 0 && refs == 0) {
        char path[API_PATH_MAX];

        if (api_blob_path(api->state_dir, id, path, sizeof path) == 0) {
            unlink(path);
        }
        db_blob_delete(api->db, id);
    }
    return api__send_json(req, conn, MHD_HTTP_OK, json_pack("{s:s,s:b}", "id", id, "deleted", 1),
                          NULL, NULL);
}

enum MHD_Result api__datasets_route(api_req_t *req, struct MHD_Connection *conn, const char *url,
                                    const char *method)
{
    enum MHD_Result ret;

    if (strcmp(url, "/datasets") != 0 && strcmp(url, "/datasets/") != 0) {
        return dataset_route(req, conn, method, url + 10);
    }
    if (strcmp(method, "GET") == 0) {
        return get_datasets(req, conn);
    }
    if (strcmp(method, "POST") != 0) {
        return api__method_not_allowed(req, conn, "GET, POST");
    }
    req->kind = REQ_POST_DATASETS;
    if (api__upload_begin(req, conn, field_cb,
                          "POST /datasets takes multipart/form-data (field 'dataset', the file) or "
                          "an application/octet-stream body with ?name=",
                          &ret) != 0) {
        return ret;
    }
    if (req->raw) {
        const char *name = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "name");

        req->dataset_name = strdup(name != NULL ? name : DEFAULT_NAME);
    }
    return MHD_YES;
}
