/* check_api.c — the HTTP API against the real modelpressd on 127.0.0.1:0.
 *
 * Each test starts the daemon built in this tree ($MODELPRESSD) with a fresh state folder and a
 * small upload cap, reads the bound address from its first stdout line, and talks plain
 * HTTP/1.1 over a socket, so what is tested is exactly what a client sees: statuses, JSON error
 * bodies, files left (or not) in the state folder, rows kept across a crash and a restart.
 * Models are written by the core's own safetensors writer.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/modelpress.h"

#define UPLOAD_MAX (256 * 1024 * 1024)

static char state_dir[256];
static pid_t daemon_pid = -1;
static int daemon_port;

/* ---- the daemon ---- */

/* Start the daemon on dir; extra (may be NULL) holds more arguments, NULL-terminated. */
static void start_daemon_args(const char *dir, int workers, const char *const *extra)
{
    const char *bin = getenv("MODELPRESSD");
    ck_assert_msg(bin != NULL, "MODELPRESSD is not set (run through make check)");
    int out[2];
    ck_assert_int_eq(pipe(out), 0);
    char w[16], cap[32];
    snprintf(w, sizeof w, "%d", workers);
    snprintf(cap, sizeof cap, "%d", UPLOAD_MAX);
    daemon_pid = fork();
    ck_assert_int_ge(daemon_pid, 0);
    if (daemon_pid == 0) {
        dup2(out[1], 1);
        close(out[0]);
        close(out[1]);
        char log[300];
        snprintf(log, sizeof log, "%s.log", dir);
        freopen(log, "a", stderr);
        const char *args[32] = {
            bin, "--listen",     "127.0.0.1:0", "--state-dir",          dir, "--workers",
            w,   "--upload-max", cap,           "--connection-timeout", "3"};
        size_t n = 11;
        for (size_t i = 0; extra != NULL && extra[i] != NULL && n < 31; i++) {
            args[n++] = extra[i];
        }
        args[n] = NULL;
        execv(bin, (char *const *)args);
        _exit(127);
    }
    close(out[1]);
    char line[256] = "";
    size_t n = 0;
    struct pollfd pfd = {out[0], POLLIN, 0};
    while (n < sizeof line - 1 && poll(&pfd, 1, 10000) > 0) {
        ssize_t r = read(out[0], line + n, 1);
        if (r <= 0 || line[n] == '\n') {
            break;
        }
        n++;
    }
    line[n] = '\0';
    close(out[0]);
    const char *p = strstr(line, "http://127.0.0.1:");
    ck_assert_msg(p != NULL, "daemon did not announce its address: '%s'", line);
    daemon_port = atoi(p + strlen("http://127.0.0.1:"));
    ck_assert_int_gt(daemon_port, 0);
}

static void start_daemon_in(const char *dir, int workers)
{
    start_daemon_args(dir, workers, NULL);
}

static int stop_daemon(int sig)
{
    int status = -1;
    if (daemon_pid > 0) {
        kill(daemon_pid, sig);
        for (int i = 0; i < 200; i++) {
            if (waitpid(daemon_pid, &status, WNOHANG) == daemon_pid) {
                daemon_pid = -1;
                return status;
            }
            usleep(50000);
        }
        kill(daemon_pid, SIGKILL);
        waitpid(daemon_pid, &status, 0);
        daemon_pid = -1;
        return -2; /* did not stop in 10 s */
    }
    return status;
}

static void setup(void)
{
    snprintf(state_dir, sizeof state_dir, "/tmp/mp-api-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(state_dir));
    start_daemon_in(state_dir, 1);
}

static void teardown(void)
{
    stop_daemon(SIGKILL);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s.log'", state_dir, state_dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "could not remove %s\n", state_dir);
    }
}

/* ---- a plain HTTP/1.1 client ---- */

typedef struct resp {
    int status; /* 0 when the connection closed without an answer */
    char *head;
    char *body;
    size_t body_len;
    json_t *json;
} resp_t;

static void resp_free(resp_t *r)
{
    free(r->head);
    free(r->body);
    json_decref(r->json);
    memset(r, 0, sizeof *r);
}

static int connect_daemon(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)daemon_port);
    a.sin_addr.s_addr = htonl(0x7f000001);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

static int send_all(int fd, const void *data, size_t n)
{
    const char *p = data;
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0) {
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Read a whole response (Connection: close) and parse it. */
static resp_t read_resp(int fd)
{
    resp_t r = {0};
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (n + 4096 > cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, 20000) <= 0) {
            break;
        }
        ssize_t got = recv(fd, buf + n, cap - n - 1, 0);
        if (got <= 0) {
            break;
        }
        n += (size_t)got;
    }
    buf[n] = '\0';
    char *sep = strstr(buf, "\r\n\r\n");
    if (n >= 12 && sep != NULL) {
        r.status = atoi(buf + 9);
        r.head = strndup(buf, (size_t)(sep - buf));
        r.body_len = n - (size_t)(sep + 4 - buf);
        r.body = malloc(r.body_len + 1);
        memcpy(r.body, sep + 4, r.body_len);
        r.body[r.body_len] = '\0';
        r.json = json_loadb(r.body, r.body_len, 0, NULL);
    }
    free(buf);
    return r;
}

static resp_t request(const char *method, const char *path, const char *extra_headers,
                      const void *body, size_t body_len)
{
    int fd = connect_daemon();
    char head[4096];
    int hn = snprintf(head, sizeof head,
                      "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s"
                      "Content-Length: %zu\r\n\r\n",
                      method, path, extra_headers != NULL ? extra_headers : "", body_len);
    send_all(fd, head, (size_t)hn);
    if (body_len > 0) {
        send_all(fd, body, body_len);
    }
    resp_t r = read_resp(fd);
    close(fd);
    return r;
}

static resp_t get(const char *path)
{
    return request("GET", path, NULL, NULL, 0);
}

/* The "Authorization: Bearer …\r\n" header line for a token. */
static const char *bearer(const char *token)
{
    static char line[256];
    snprintf(line, sizeof line, "Authorization: Bearer %s\r\n", token);
    return line;
}

/* multipart/form-data with a model file and a recipe field, as the holder of token (NULL:
 * no Authorization header). */
static resp_t post_job_as(const char *token, const void *model, size_t model_len,
                          const char *recipe)
{
    const char *b = "mpboundary7d3f";
    char pre[1024], mid[512], post[64];
    int pn = snprintf(pre, sizeof pre,
                      "--%s\r\nContent-Disposition: form-data; name=\"recipe\"\r\n\r\n%s\r\n"
                      "--%s\r\nContent-Disposition: form-data; name=\"model\"; "
                      "filename=\"net.safetensors\"\r\nContent-Type: application/octet-stream"
                      "\r\n\r\n",
                      b, recipe, b);
    int qn = snprintf(post, sizeof post, "\r\n--%s--\r\n", b);
    size_t total = (size_t)pn + model_len + (size_t)qn;
    char *body = malloc(total);
    memcpy(body, pre, (size_t)pn);
    memcpy(body + pn, model, model_len);
    memcpy(body + pn + model_len, post, (size_t)qn);
    snprintf(mid, sizeof mid, "Content-Type: multipart/form-data; boundary=%s\r\n%s", b,
             token != NULL ? bearer(token) : "");
    resp_t r = request("POST", "/jobs", mid, body, total);
    free(body);
    return r;
}

static resp_t post_job(const void *model, size_t model_len, const char *recipe)
{
    return post_job_as(NULL, model, model_len, recipe);
}

static const char *err_message(const resp_t *r)
{
    json_t *m = json_object_get(json_object_get(r->json, "error"), "message");
    return json_is_string(m) ? json_string_value(m) : "";
}

static const char *str_of(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    ck_assert_msg(json_is_string(v), "no string '%s'", key);
    return json_string_value(v);
}

static const char *err_code(const resp_t *r)
{
    json_t *m = json_object_get(json_object_get(r->json, "error"), "code");
    return json_is_string(m) ? json_string_value(m) : "";
}

/* ---- models ---- */

/* The whole file at path, malloc'd, *len bytes; the file is removed. */
static void *take_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = malloc(*len + 1);
    ck_assert_uint_eq(fread(buf, 1, *len, f), *len);
    fclose(f);
    unlink(path);
    return buf;
}

/* m as a safetensors image (m is freed). */
static void *safetensors_bytes(mp_model_t *m, size_t *len)
{
    char path[] = "/tmp/mp-api-model-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    ck_assert_int_eq(mp_safetensors_save(m, path, NULL), 0);
    mp_model_free(m);
    return take_file(path, len);
}

/* A safetensors image of n_layers [rows, cols] F32 weights plus a bias each, values from a
 * fixed sequence. *len receives its size; free() the result. */
static void *make_model(int n_layers, int rows, int cols, size_t *len)
{
    mp_model_t *m = mp_model_new();
    char name[64];
    uint32_t s = 12345;
    for (int l = 0; l < n_layers; l++) {
        size_t n = (size_t)rows * (size_t)cols;
        float *w = malloc(n * sizeof *w);
        for (size_t i = 0; i < n; i++) {
            s = s * 1664525u + 1013904223u;
            w[i] = ((float)(s >> 8) / 16777216.0f - 0.5f) * 0.2f;
        }
        int64_t shape[2] = {rows, cols};
        snprintf(name, sizeof name, "layers.%d.weight", l);
        ck_assert_int_eq(mp_model_add_take(m, name, MP_DT_F32, 2, shape, w, n * 4, NULL), 0);
        float *bias = calloc((size_t)rows, sizeof *bias);
        snprintf(name, sizeof name, "layers.%d.bias", l);
        ck_assert_int_eq(
            mp_model_add_take(m, name, MP_DT_F32, 1, shape, bias, (size_t)rows * 4, NULL), 0);
    }
    return safetensors_bytes(m, len);
}

static int count_files(const char *sub)
{
    char path[400];
    snprintf(path, sizeof path, "%s/%s", state_dir, sub);
    DIR *d = opendir(path);
    int n = 0;
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        n += e->d_name[0] != '.';
    }
    if (d != NULL) {
        closedir(d);
    }
    return n;
}

static char *job_id_of(const resp_t *r)
{
    json_t *id = json_object_get(r->json, "id");
    ck_assert_msg(json_is_string(id), "no job id in: %s", r->body);
    return strdup(json_string_value(id));
}

/* Poll GET /jobs/{id} until the state is not queued/running (at most ~60 s); returns it. */
static resp_t get_as(const char *token, const char *path);

static char *wait_done_as(const char *token, const char *id, resp_t *last)
{
    char path[128];
    snprintf(path, sizeof path, "/jobs/%s", id);
    for (int i = 0; i < 1200; i++) {
        resp_t r = get_as(token, path);
        const char *st = json_string_value(json_object_get(r.json, "state"));
        if (st != NULL && strcmp(st, "queued") != 0 && strcmp(st, "running") != 0) {
            char *s = strdup(st);
            *last = r;
            return s;
        }
        resp_free(&r);
        usleep(50000);
    }
    ck_abort_msg("job %s did not finish in 60 s", id);
    return NULL;
}

static char *wait_done(const char *id, resp_t *last)
{
    return wait_done_as(NULL, id, last);
}

/* POST a job as the holder of token (NULL: none) and insist on 202; the job's id (malloc'd). */
static char *submit_as(const char *token, const void *model, size_t model_len, const char *recipe)
{
    resp_t r = post_job_as(token, model, model_len, recipe);
    ck_assert_msg(r.status == 202, "POST /jobs answered %d: %s", r.status, r.body);
    char *id = job_id_of(&r);
    resp_free(&r);
    return id;
}

static char *submit(const void *model, size_t model_len, const char *recipe)
{
    return submit_as(NULL, model, model_len, recipe);
}

/* Poll a job until a worker has it (at most ~4 s; the caller asserts what follows). */
static void wait_running(const char *id)
{
    char path[128];
    snprintf(path, sizeof path, "/jobs/%s", id);
    for (int i = 0; i < 200; i++) {
        resp_t r = get(path);
        const char *st = json_string_value(json_object_get(r.json, "state"));
        int running = st != NULL && strcmp(st, "running") == 0;
        resp_free(&r);
        if (running) {
            return;
        }
        usleep(20000);
    }
}

/* ---- tests ---- */

START_TEST(test_healthz_and_routes)
{
    resp_t r = get("/healthz");
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(json_string_value(json_object_get(r.json, "status")), "ok");
    resp_free(&r);
    r = get("/no/such/route");
    ck_assert_int_eq(r.status, 404);
    ck_assert_str_eq(err_code(&r), "not_found");
    resp_free(&r);
    r = request("PUT", "/jobs", NULL, NULL, 0);
    ck_assert_int_eq(r.status, 405);
    ck_assert_ptr_nonnull(strstr(r.head, "Allow: GET, POST"));
    resp_free(&r);
    r = get("/jobs/0123456789abcdef0123456789abcdef");
    ck_assert_int_eq(r.status, 404);
    resp_free(&r);
    r = get("/jobs/../../etc/passwd");
    ck_assert_int_eq(r.status, 404);
    resp_free(&r);
    r = get("/jobs?state=sleeping");
    ck_assert_int_eq(r.status, 400);
    ck_assert_ptr_nonnull(strstr(err_message(&r), "sleeping"));
    resp_free(&r);
    r = get("/");
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(strstr(r.body, "modelpress"));
    resp_free(&r);
    r = get("/openapi.json");
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(strstr(r.head, "Content-Type: application/json"));
    ck_assert_ptr_nonnull(json_object_get(json_object_get(r.json, "paths"), "/jobs/{id}/result"));
    ck_assert_str_eq(json_string_value(json_object_get(r.json, "openapi")), "3.0.3");
    resp_free(&r);
}
END_TEST

START_TEST(test_job_lifecycle)
{
    size_t len;
    void *model = make_model(3, 64, 48, &len);
    resp_t r = post_job(model, len,
                        "{\"steps\":[{\"prune\":{\"sparsity\":0.5}},{\"quantize\":{\"bits\":8}}]}");
    ck_assert_msg(r.status == 202, "POST /jobs answered %d: %s", r.status, r.body);
    ck_assert_ptr_nonnull(strstr(r.head, "Location: /jobs/"));
    char *id = job_id_of(&r);
    ck_assert_uint_eq(strlen(id), 32);
    resp_free(&r);

    char *state = wait_done(id, &r);
    ck_assert_msg(strcmp(state, "succeeded") == 0, "job ended %s: %s", state, r.body);
    json_t *metrics = json_object_get(r.json, "metrics");
    /* 3 layers of 64x48 F32 weights + 64 F32 biases. */
    json_int_t before = json_integer_value(json_object_get(metrics, "bytes_before"));
    json_int_t after = json_integer_value(json_object_get(metrics, "bytes_after"));
    ck_assert_int_eq(before, 3 * (64 * 48 * 4 + 64 * 4));
    ck_assert_int_eq(after, 3 * (64 * 48 + 64 * 4 + 64 * 4));
    ck_assert_double_eq_tol(json_real_value(json_object_get(r.json, "progress")), 1.0, 1e-9);
    ck_assert(json_is_null(json_object_get(r.json, "stage")));
    ck_assert_str_eq(str_of(metrics, "output_format"), "safetensors");
    resp_free(&r);

    char path[128];
    snprintf(path, sizeof path, "/jobs/%s/result", id);
    r = get(path);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(strstr(r.head, "filename=\"net.compressed.safetensors\""));
    mp_model_t *out = NULL;
    ck_assert_int_eq(mp_safetensors_parse(r.body, r.body_len, &out, NULL), 0);
    const mp_tensor_t *w = mp_model_find(out, "layers.1.weight");
    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(w->dtype, MP_DT_I8);
    size_t zeros = 0;
    for (size_t i = 0; i < w->n_bytes; i++) {
        zeros += ((const int8_t *)w->data)[i] == 0;
    }
    ck_assert_uint_ge(zeros, 64 * 48 / 2); /* pruned half, plus any that round to 0 */
    ck_assert_ptr_nonnull(mp_model_find(out, "layers.1.weight_scale"));
    mp_model_free(out);
    resp_free(&r);

    snprintf(path, sizeof path, "/jobs/%s/report", id);
    r = get(path);
    ck_assert_int_eq(r.status, 200);
    json_t *tensors = json_object_get(r.json, "tensors");
    ck_assert_uint_eq(json_array_size(tensors), 3);
    ck_assert_double_eq_tol(
        json_real_value(json_object_get(json_array_get(tensors, 0), "sparsity")), 0.5, 0.02);
    resp_free(&r);

    r = get("/jobs?state=succeeded");
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq(json_integer_value(json_object_get(r.json, "total")), 1);
    resp_free(&r);

    /* The same model again is stored once. */
    char *id2 = submit(model, len, "{\"steps\":[{\"quantize\":{\"bits\":8}}]}");
    free(wait_done(id2, &r));
    resp_free(&r);
    char blob_dir[300];
    snprintf(blob_dir, sizeof blob_dir, "blobs/sha256");
    ck_assert_int_eq(count_files(blob_dir), 1);

    /* Delete a finished job: its files go, the shared blob stays for the other. */
    snprintf(path, sizeof path, "/jobs/%s", id);
    r = request("DELETE", path, NULL, NULL, 0);
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
    r = get(path);
    ck_assert_int_eq(r.status, 404);
    resp_free(&r);
    ck_assert_int_eq(count_files("results"), 1);
    free(id);
    free(id2);
    free(state);
    free(model);
}
END_TEST

START_TEST(test_raw_upload)
{
    size_t len;
    void *model = make_model(1, 32, 32, &len);
    resp_t r = request("POST",
                       "/jobs?name=raw.safetensors&recipe=%7B%22steps%22%3A%5B%7B%22quantize%22"
                       "%3A%7B%22bits%22%3A8%7D%7D%5D%7D",
                       "Content-Type: application/octet-stream\r\n", model, len);
    ck_assert_msg(r.status == 202, "raw upload answered %d: %s", r.status, r.body);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(r.json, "model"), "name")),
                     "raw.safetensors");
    char *id = job_id_of(&r);
    resp_free(&r);
    char *state = wait_done(id, &r);
    ck_assert_str_eq(state, "succeeded");
    resp_free(&r);
    /* Without a recipe: refused before the body is read. */
    r = request("POST", "/jobs", "Content-Type: application/octet-stream\r\n", model, len);
    ck_assert_int_eq(r.status, 400);
    ck_assert_ptr_nonnull(strstr(err_message(&r), "recipe"));
    resp_free(&r);
    free(id);
    free(state);
    free(model);
}
END_TEST

START_TEST(test_refusals)
{
    size_t len;
    void *model = make_model(1, 16, 16, &len);
    /* Item 9: a bad recipe names the step and field. */
    resp_t r = post_job(model, len, "{\"steps\":[{\"quantize\":{\"bits\":33}}]}");
    ck_assert_int_eq(r.status, 400);
    ck_assert_str_eq(err_code(&r), "invalid_recipe");
    ck_assert_ptr_nonnull(strstr(err_message(&r), "steps[0].quantize.bits"));
    resp_free(&r);
    r = post_job(model, len,
                 "{\"steps\":[{\"prune\":{\"sparsity\":0.5}}],"
                 "\"select\":{\"include\":[\"nothing*\"]}}");
    ck_assert_int_eq(r.status, 400);
    ck_assert_ptr_nonnull(strstr(err_message(&r), "select"));
    resp_free(&r);
    r = post_job(model, len, "not json");
    ck_assert_int_eq(r.status, 400);
    resp_free(&r);
    /* A truncated model: 422 saying what is wrong. */
    r = post_job(model, len - 7, "{\"steps\":[{\"quantize\":{\"bits\":8}}]}");
    ck_assert_int_eq(r.status, 422);
    ck_assert_str_eq(err_code(&r), "invalid_model");
    ck_assert_str_ne(err_message(&r), "");
    resp_free(&r);
    /* Not a model at all. */
    r = post_job("hello world, not a model", 24, "{\"steps\":[{\"quantize\":{\"bits\":8}}]}");
    ck_assert_msg(r.status == 422 || r.status == 415, "got %d", r.status);
    resp_free(&r);
    /* Missing fields, wrong content type. */
    r = post_job(model, 0, "{\"steps\":[{\"quantize\":{\"bits\":8}}]}");
    ck_assert_int_eq(r.status, 400);
    resp_free(&r);
    r = request("POST", "/jobs", "Content-Type: text/plain\r\n", "x", 1);
    ck_assert_int_eq(r.status, 415);
    resp_free(&r);
    /* Nothing refused left a file or a row. */
    ck_assert_int_eq(count_files("tmp"), 0);
    ck_assert_int_eq(count_files("blobs/sha256"), 0);
    r = get("/jobs");
    ck_assert_int_eq(json_integer_value(json_object_get(r.json, "total")), 0);
    resp_free(&r);
    free(model);
}
END_TEST

/* Item 11: an announced body over the cap is refused before it is read. */
START_TEST(test_upload_cap_announced)
{
    int fd = connect_daemon();
    char head[512];
    int n = snprintf(head, sizeof head,
                     "POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
                     "boundary=b\r\nContent-Length: %d\r\n\r\n",
                     UPLOAD_MAX + 1);
    send_all(fd, head, (size_t)n);
    resp_t r = read_resp(fd); /* no body was sent: the answer cannot have waited for it */
    close(fd);
    ck_assert_int_eq(r.status, 413);
    ck_assert_str_eq(err_code(&r), "payload_too_large");
    resp_free(&r);
}
END_TEST

/* Item 11: a chunked body that passes the cap closes the connection and leaves no file. */
START_TEST(test_upload_cap_chunked)
{
    int fd = connect_daemon();
    const char *head = "POST /jobs?recipe=%7B%22steps%22%3A%5B%7B%22quantize%22%3A%7B%22bits%22"
                       "%3A8%7D%7D%5D%7D HTTP/1.1\r\nHost: x\r\nContent-Type: "
                       "application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
    send_all(fd, head, strlen(head));
    size_t chunk = 1 << 20;
    char *buf = calloc(1, chunk);
    char line[32];
    int closed = 0;
    for (int i = 0; i < UPLOAD_MAX / (int)chunk + 8 && !closed; i++) {
        int ln = snprintf(line, sizeof line, "%zx\r\n", chunk);
        closed = send_all(fd, line, (size_t)ln) != 0 || send_all(fd, buf, chunk) != 0 ||
                 send_all(fd, "\r\n", 2) != 0;
    }
    resp_t r = read_resp(fd);
    close(fd);
    ck_assert_msg(closed || r.status == 0 || r.status == 413, "status %d", r.status);
    free(buf);
    resp_free(&r);
    usleep(200000);
    ck_assert_int_eq(count_files("tmp"), 0);
    r = get("/jobs");
    ck_assert_int_eq(json_integer_value(json_object_get(r.json, "total")), 0);
    resp_free(&r);
}
END_TEST

/* Item 13: a client that disconnects mid-upload leaves no temp file and no row. */
START_TEST(test_disconnect_mid_upload)
{
    size_t len;
    void *model = make_model(1, 256, 256, &len);
    int fd = connect_daemon();
    char head[512];
    int n = snprintf(head, sizeof head,
                     "POST /jobs?recipe=%%7B%%22steps%%22%%3A%%5B%%7B%%22quantize%%22%%3A%%7B"
                     "%%22bits%%22%%3A8%%7D%%7D%%5D%%7D HTTP/1.1\r\nHost: x\r\nContent-Type: "
                     "application/octet-stream\r\nContent-Length: %zu\r\n\r\n",
                     len);
    send_all(fd, head, (size_t)n);
    send_all(fd, model, len / 2);
    usleep(300000);
    ck_assert_int_eq(count_files("tmp"), 1); /* the upload is streaming to disk */
    close(fd);
    for (int i = 0; i < 50 && count_files("tmp") > 0; i++) {
        usleep(100000);
    }
    ck_assert_int_eq(count_files("tmp"), 0);
    resp_t r = get("/jobs");
    ck_assert_int_eq(json_integer_value(json_object_get(r.json, "total")), 0);
    resp_free(&r);
    r = get("/healthz");
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
    free(model);
}
END_TEST

/* A queued job is canceled at once; a running one stops at its next check. */
START_TEST(test_cancel)
{
    size_t big_len, len;
    /* Big enough to keep the single worker busy for a while. */
    void *big = make_model(48, 1024, 1024, &big_len);
    void *small = make_model(1, 16, 16, &len);
    const char *recipe = "{\"steps\":[{\"prune\":{\"sparsity\":0.9,\"scope\":\"global\"}},"
                         "{\"quantize\":{\"bits\":8}}]}";
    char *running = submit(big, big_len, recipe);
    resp_t r;
    char *queued = submit(small, len, recipe);

    char path[128];
    snprintf(path, sizeof path, "/jobs/%s", queued);
    r = request("DELETE", path, NULL, NULL, 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(json_string_value(json_object_get(r.json, "state")), "canceled");
    resp_free(&r);

    wait_running(running);
    snprintf(path, sizeof path, "/jobs/%s", running);
    r = request("DELETE", path, NULL, NULL, 0);
    ck_assert_msg(r.status == 202, "DELETE of a running job answered %d: %s", r.status, r.body);
    resp_free(&r);
    char *state = wait_done(running, &r);
    ck_assert_str_eq(state, "canceled");
    resp_free(&r);
    ck_assert_int_eq(count_files("results"), 0);
    free(state);
    free(running);
    free(queued);
    free(big);
    free(small);
}
END_TEST

/* Item 15 (part) and 18: kill -9 with a job running, restart: the job runs again and succeeds;
 * SIGTERM exits 0. */
START_TEST(test_crash_and_restart)
{
    size_t len;
    void *big = make_model(32, 1024, 1024, &len);
    char *id = submit(big, len,
                      "{\"steps\":[{\"prune\":{\"sparsity\":0.5,\"scope\":\"global\"}},"
                      "{\"quantize\":{\"bits\":8}}]}");
    resp_t r;
    wait_running(id);
    stop_daemon(SIGKILL);
    start_daemon_in(state_dir, 1);
    char *state = wait_done(id, &r);
    ck_assert_msg(strcmp(state, "succeeded") == 0, "after a restart the job ended %s: %s", state,
                  r.body);
    ck_assert_int_ge(json_integer_value(json_object_get(r.json, "attempts")), 1);
    resp_free(&r);
    int status = stop_daemon(SIGTERM);
    ck_assert_msg(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "SIGTERM: status %d", status);
    free(state);
    free(id);
    free(big);
}
END_TEST

/* ---- users, quotas, metrics ---- */

/* `modelpressd token add NAME --state-dir DIR [extra…]`: the token it prints (malloc'd). */
static char *token_add(const char *name, const char *extra)
{
    char cmd[1024], line[256] = "";
    snprintf(cmd, sizeof cmd, "'%s' token add %s --state-dir '%s' %s 2>/dev/null",
             getenv("MODELPRESSD"), name, state_dir, extra != NULL ? extra : "");
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    char *got = fgets(line, sizeof line, p);
    ck_assert_int_eq(pclose(p), 0);
    ck_assert_ptr_nonnull(got);
    line[strcspn(line, "\n")] = '\0';
    ck_assert_msg(strncmp(line, "mpt_", 4) == 0 && strlen(line) == 52, "token '%s'", line);
    return strdup(line);
}

static int run_status(const char *fmt, const char *arg)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, fmt, getenv("MODELPRESSD"), arg, state_dir);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static resp_t get_as(const char *token, const char *path)
{
    return request("GET", path, token != NULL ? bearer(token) : NULL, NULL, 0);
}

START_TEST(test_auth_and_ownership)
{
    stop_daemon(SIGKILL);
    char *alice = token_add("alice", NULL);
    char *bob = token_add("bob", NULL);
    /* The same name twice is refused (exit 2); names are checked. */
    ck_assert_int_eq(run_status("'%s' token add %s --state-dir '%s' >/dev/null 2>&1", "alice"), 2);
    ck_assert_int_eq(run_status("'%s' token add '%s' --state-dir '%s' >/dev/null 2>&1", "a b"), 2);
    const char *extra[] = {"--auth", "on", NULL};
    start_daemon_args(state_dir, 1, extra);

    resp_t r = get("/jobs");
    ck_assert_int_eq(r.status, 401);
    ck_assert_str_eq(err_code(&r), "unauthorized");
    ck_assert_ptr_nonnull(strstr(r.head, "WWW-Authenticate: Bearer"));
    resp_free(&r);
    r = get_as("mpt_notatoken", "/jobs");
    ck_assert_int_eq(r.status, 401);
    resp_free(&r);
    char path[256];
    snprintf(path, sizeof path, "/jobs?access_token=%s", alice);
    r = get(path);
    ck_assert_int_eq(r.status, 400); /* never in the URL, even a valid one */
    ck_assert_ptr_nonnull(strstr(err_message(&r), "Authorization header"));
    resp_free(&r);
    r = get("/healthz");
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);

    size_t len;
    void *model = make_model(1, 16, 16, &len);
    r = post_job_as(alice, model, len, "{\"steps\":[{\"quantize\":{\"bits\":8}}]}");
    ck_assert_int_eq(r.status, 202);
    ck_assert_str_eq(json_string_value(json_object_get(r.json, "owner")), "alice");
    char *id = job_id_of(&r);
    resp_free(&r);
    snprintf(path, sizeof path, "/jobs/%s", id);
    for (int i = 0; i < 200; i++) {
        r = get_as(alice, path);
        int done = strcmp(json_string_value(json_object_get(r.json, "state")), "succeeded") == 0;
        resp_free(&r);
        if (done) {
            break;
        }
        usleep(20000);
    }
    /* bob sees nothing of alice's: 404 everywhere, an empty history */
    const char *subs[] = {"", "/result", "/report"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "/jobs/%s%s", id, subs[i]);
        r = get_as(bob, path);
        ck_assert_msg(r.status == 404, "bob GET %s: %d", path, r.status);
        resp_free(&r);
        r = get_as(alice, path);
        ck_assert_msg(r.status == 200, "alice GET %s: %d", path, r.status);
        resp_free(&r);
    }
    snprintf(path, sizeof path, "/jobs/%s", id);
    r = request("DELETE", path, bearer(bob), NULL, 0);
    ck_assert_int_eq(r.status, 404);
    resp_free(&r);
    r = get_as(bob, "/jobs?owner=alice");
    ck_assert_int_eq(json_integer_value(json_object_get(r.json, "total")), 0);
    resp_free(&r);
    r = get_as(alice, "/jobs");
    ck_assert_int_eq(json_integer_value(json_object_get(r.json, "total")), 1);
    resp_free(&r);
    /* Revoked: at once, while the service runs. */
    ck_assert_int_eq(run_status("'%s' token revoke %s --state-dir '%s' >/dev/null 2>&1", "bob"), 0);
    r = get_as(bob, "/jobs");
    ck_assert_int_eq(r.status, 401);
    resp_free(&r);
    ck_assert_int_eq(run_status("'%s' token revoke %s --state-dir '%s' >/dev/null 2>&1", "bob"), 1);
    free(id);
    free(model);
    free(alice);
    free(bob);
}
END_TEST

START_TEST(test_quotas)
{
    stop_daemon(SIGKILL);
    size_t small_len, big_len;
    void *small = make_model(1, 32, 32, &small_len);
    void *big = make_model(16, 1024, 1024, &big_len);
    char extra_q[64];
    /* Room for one small model and its result, not two. */
    snprintf(extra_q, sizeof extra_q, "--quota-bytes %zu", small_len + small_len / 2);
    char *carol = token_add("carol", extra_q);
    char *dave = token_add("dave", "--quota-jobs 1");
    const char *extra[] = {"--auth", "on", NULL};
    start_daemon_args(state_dir, 1, extra);
    const char *recipe = "{\"steps\":[{\"quantize\":{\"bits\":8}}]}";

    char *id = submit_as(carol, small, small_len, recipe);
    resp_t r;
    free(wait_done_as(carol, id, &r));
    resp_free(&r);
    r = post_job_as(carol, small, small_len, recipe);
    ck_assert_int_eq(r.status, 429);
    ck_assert_str_eq(err_code(&r), "quota_exceeded");
    ck_assert_ptr_nonnull(strstr(err_message(&r), "limit"));
    resp_free(&r);

    /* dave: one job at a time. The big one keeps the single worker busy. */
    r = post_job_as(dave, big, big_len, recipe);
    ck_assert_int_eq(r.status, 202);
    resp_free(&r);
    r = post_job_as(dave, small, small_len, recipe);
    ck_assert_int_eq(r.status, 429);
    ck_assert_ptr_nonnull(strstr(err_message(&r), "queued or running"));
    resp_free(&r);
    ck_assert_int_eq(count_files("tmp"), 0);
    free(id);
    free(carol);
    free(dave);
    free(small);
    free(big);
}
END_TEST

START_TEST(test_metrics)
{
    size_t len;
    void *model = make_model(1, 16, 16, &len);
    char *id = submit(model, len, "{\"steps\":[{\"quantize\":{\"bits\":8}}]}");
    resp_t r;
    free(wait_done(id, &r));
    resp_free(&r);
    r = get("/jobs/0123456789abcdef0123456789abcdef");
    resp_free(&r);
    r = get("/metrics");
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(strstr(r.head, "Content-Type: text/plain; version=0.0.4"));
    const char *want[] = {
        "modelpress_jobs{state=\"succeeded\"} 1\n",
        "modelpress_jobs{state=\"queued\"} 0\n",
        "modelpress_queue_depth 0\n",
        "modelpress_http_requests_total{route=\"/jobs\",status=\"202\"} 1\n",
        "modelpress_http_requests_total{route=\"/jobs/{id}\",status=\"404\"} 1\n",
        "modelpress_job_duration_seconds_count{state=\"succeeded\"} 1\n",
        "modelpress_job_duration_seconds_bucket{state=\"succeeded\",le=\"+Inf\"} 1\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        ck_assert_msg(strstr(r.body, want[i]) != NULL, "no '%s' in:\n%s", want[i], r.body);
    }
    const char *rx = strstr(r.body, "\nmodelpress_received_bytes_total ");
    ck_assert_ptr_nonnull(rx);
    ck_assert_uint_ge(strtoull(rx + 33, NULL, 10), len); /* the upload, plus the form around it */
    resp_free(&r);
    free(id);
    free(model);
}
END_TEST

/* Item 17: a job over its memory or time budget fails alone; the others go on. */
START_TEST(test_job_budgets)
{
    stop_daemon(SIGKILL);
    const char *extra[] = {"--job-memory-max", "4M", "--upload-max", "1G", NULL};
    start_daemon_args(state_dir, 1, extra);
    size_t small_len, mid_len, big_len;
    void *small = make_model(1, 32, 32, &small_len); /* 12 KiB of working memory */
    void *mid = make_model(1, 1024, 1024, &mid_len); /* 12 MiB: over the 4 MiB budget */
    const char *recipe = "{\"steps\":[{\"quantize\":{\"bits\":8}}]}";
    char *id_mid = submit(mid, mid_len, recipe);
    resp_t r;
    char *id_small = submit(small, small_len, recipe);
    char *st = wait_done(id_mid, &r);
    ck_assert_str_eq(st, "failed");
    json_t *e = json_object_get(r.json, "error");
    ck_assert_str_eq(json_string_value(json_object_get(e, "code")), "ETOOBIG");
    ck_assert_ptr_nonnull(
        strstr(json_string_value(json_object_get(e, "message")), "job-memory-max"));
    resp_free(&r);
    free(st);
    st = wait_done(id_small, &r);
    ck_assert_str_eq(st, "succeeded");
    resp_free(&r);
    free(st);
    stop_daemon(SIGKILL);

    /* Time: a job over 384 MiB of weights (global pruning copies and selects over all of them)
     * against a 0.1 s budget, checked every 50 ms. */
    const char *extra2[] = {"--job-timeout", "0.1", "--upload-max", "1G", NULL};
    start_daemon_args(state_dir, 1, extra2);
    void *big = make_model(96, 1024, 1024, &big_len);
    char *id_big = submit(big, big_len,
                          "{\"steps\":[{\"prune\":{\"sparsity\":0.9,\"scope\":\"global\"}},"
                          "{\"quantize\":{\"bits\":8}}]}");
    free(big);
    char *id_after = submit(small, small_len, recipe);
    st = wait_done(id_big, &r);
    ck_assert_msg(strcmp(st, "failed") == 0, "the slow job ended %s", st);
    e = json_object_get(r.json, "error");
    ck_assert_str_eq(json_string_value(json_object_get(e, "code")), "ETIMEDOUT");
    resp_free(&r);
    free(st);
    st = wait_done(id_after, &r);
    ck_assert_str_eq(st, "succeeded");
    resp_free(&r);
    free(st);
    /* The two that succeeded kept their results; the failed ones left nothing. */
    ck_assert_int_eq(count_files("results"), 2);
    char sub[64];
    snprintf(sub, sizeof sub, "results/%s", id_big);
    ck_assert_int_eq(count_files(sub), 0);
    free(id_mid);
    free(id_small);
    free(id_big);
    free(id_after);
    free(small);
    free(mid);
}
END_TEST

/* ---- HTTP robustness (RELIABILITY.md item 12) ---- */

/* 1 when the server closed fd within max_ms (reads EOF or an error). */
static int closed_within(int fd, int max_ms)
{
    char buf[4096];
    for (int waited = 0; waited < max_ms; waited += 100) {
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, 100) > 0) {
            ssize_t r = recv(fd, buf, sizeof buf, 0);
            if (r <= 0) {
                return 1;
            }
        }
    }
    return 0;
}

START_TEST(test_slow_and_idle_clients)
{
    /* The daemon runs with --connection-timeout 3. A client that sends half a request line
     * and stops, and one that connects and says nothing, are both closed in time. */
    int slow = connect_daemon();
    send_all(slow, "GET /healthz HT", 15);
    int idle = connect_daemon();
    /* A keep-alive connection that did one request and then idles. */
    int keep = connect_daemon();
    const char *req = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    send_all(keep, req, strlen(req));
    char buf[2048];
    struct pollfd pfd = {keep, POLLIN, 0};
    ck_assert_int_eq(poll(&pfd, 1, 5000), 1);
    ck_assert_int_gt(recv(keep, buf, sizeof buf, 0), 0);
    ck_assert_msg(closed_within(slow, 8000), "a slow client was not closed at the timeout");
    ck_assert_msg(closed_within(idle, 8000), "an idle client was not closed at the timeout");
    ck_assert_msg(closed_within(keep, 8000), "an idle keep-alive was not closed at the timeout");
    close(slow);
    close(idle);
    close(keep);
    resp_t r = get("/healthz");
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
}
END_TEST

START_TEST(test_per_ip_limit)
{
    stop_daemon(SIGKILL);
    const char *extra[] = {"--per-ip-connections", "4", NULL};
    start_daemon_args(state_dir, 1, extra);
    int fds[4];
    for (int i = 0; i < 4; i++) {
        fds[i] = connect_daemon();
        send_all(fds[i], "GET /healthz HT", 15); /* held open, unfinished */
    }
    usleep(200000);
    /* The fifth from the same address is closed without an answer. */
    resp_t r = get("/healthz");
    ck_assert_msg(r.status == 0, "a fifth connection from one address was served: %d", r.status);
    resp_free(&r);
    for (int i = 0; i < 4; i++) {
        close(fds[i]);
    }
    usleep(200000);
    r = get("/healthz");
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
}
END_TEST

START_TEST(test_huge_header_line)
{
    size_t n = 64 * 1024;
    char *h = malloc(n + 64);
    int k = snprintf(h, n + 64, "X-Big: ");
    memset(h + k, 'a', n);
    memcpy(h + k + n, "\r\n", 3);
    resp_t r = request("GET", "/healthz", h, NULL, 0);
    ck_assert_msg(r.status == 0 || (r.status >= 400 && r.status < 500),
                  "a 64 KiB header line got %d", r.status);
    resp_free(&r);
    free(h);
    r = get("/healthz");
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
}
END_TEST

/* ---- the dashboard's files ---- */

static void write_text(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fputs(text, f) >= 0, 1);
    ck_assert_int_eq(fclose(f), 0);
}

/* The value of a response header (case as the daemon writes it), or "" when it is absent. */
static const char *header_value(const resp_t *r, const char *name)
{
    static char v[512];
    char key[128];
    snprintf(key, sizeof key, "\r\n%s: ", name);
    const char *p = r->head != NULL ? strstr(r->head, key) : NULL;
    v[0] = '\0';
    if (p != NULL) {
        p += strlen(key);
        size_t n = strcspn(p, "\r\n");
        snprintf(v, sizeof v, "%.*s", (int)(n < sizeof v ? n : sizeof v - 1), p);
    }
    return v;
}

#define APP_JS "import { x } from \"./util.js\";\nexport const y = x + 1;\n"
#define STYLE_CSS "body { color: #123; }\n"
#define INDEX_HTML "<!doctype html><title>modelpress</title><p>static-test</p>\n"

/* GET /static/NAME serves exactly web_dir/NAME with its type, for names of [a-z0-9_.-] with a
 * known extension; every way out of web_dir and everything else is 404, with auth on too. */
START_TEST(test_static_files)
{
    stop_daemon(SIGKILL);
    char web[300], path[600];
    snprintf(web, sizeof web, "%s/web", state_dir);
    ck_assert_int_eq(mkdir(web, 0755), 0);
    write_text(web, "index.html", INDEX_HTML);
    write_text(web, "app.js", APP_JS);
    write_text(web, "style.css", STYLE_CSS);
    write_text(web, "notes.txt", "not a dashboard file\n");
    write_text(web, ".hidden.js", "hidden\n");
    write_text(web, "Upper.js", "upper\n");
    write_text(state_dir, "secret.js", "secret outside web_dir\n");
    snprintf(path, sizeof path, "%s/link.js", web);
    ck_assert_int_eq(symlink("../secret.js", path), 0);
    snprintf(path, sizeof path, "%s/dir.js", web);
    ck_assert_int_eq(mkdir(path, 0755), 0);
    char long_name[80];
    memset(long_name, 'a', 62);
    memcpy(long_name + 62, ".js", 4); /* 65 characters */
    write_text(web, long_name, "long\n");
    const char *extra[] = {"--web-dir", web, "--auth", "on", NULL};
    start_daemon_args(state_dir, 1, extra);

    resp_t r = get("/static/app.js");
    ck_assert_int_eq(r.status, 200);
    ck_assert_uint_eq(r.body_len, strlen(APP_JS));
    ck_assert_str_eq(r.body, APP_JS);
    ck_assert_str_eq(header_value(&r, "Content-Type"), "text/javascript; charset=utf-8");
    ck_assert_str_eq(header_value(&r, "X-Content-Type-Options"), "nosniff");
    ck_assert_str_eq(header_value(&r, "Cache-Control"), "no-cache");
    ck_assert_str_eq(header_value(&r, "Content-Security-Policy"), "");
    resp_free(&r);
    r = get("/static/style.css");
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, STYLE_CSS);
    ck_assert_str_eq(header_value(&r, "Content-Type"), "text/css; charset=utf-8");
    resp_free(&r);
    /* The page needs no token (the dashboard asks for one) and forbids foreign scripts. */
    r = get("/");
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, INDEX_HTML);
    ck_assert_str_eq(header_value(&r, "Content-Type"), "text/html; charset=utf-8");
    ck_assert_ptr_nonnull(
        strstr(header_value(&r, "Content-Security-Policy"), "script-src 'self';"));
    resp_free(&r);
    r = request("HEAD", "/static/style.css", NULL, NULL, 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_uint_eq(r.body_len, 0);
    ck_assert_str_eq(header_value(&r, "Content-Length"), "22");
    resp_free(&r);
    r = get("/jobs");
    ck_assert_int_eq(r.status, 401); /* auth is on: only the files are public */
    resp_free(&r);

    static const char *const refused[] = {
        "/static/",
        "/static/../secret.js",
        "/static/%2e%2e/secret.js",
        "/static/..%2fsecret.js",
        "/static/web/../../secret.js",
        "/static/a/app.js",
        "/static/%2fetc%2fpasswd.js",
        "/static/notes.txt",
        "/static/.hidden.js",
        "/static/Upper.js",
        "/static/link.js",
        "/static/dir.js",
        "/static/index.html.bak",
        "/static/..",
        "/staticapp.js",
    };
    for (size_t i = 0; i <= sizeof refused / sizeof refused[0]; i++) {
        /* the last one: a name of 65 characters, one over the limit (the file exists) */
        snprintf(path, sizeof path, "/static/%s", long_name);
        const char *url = i < sizeof refused / sizeof refused[0] ? refused[i] : path;
        r = get(url);
        ck_assert_msg(r.status == 404, "%s: HTTP %d", url, r.status);
        ck_assert_str_eq(err_code(&r), "not_found");
        ck_assert_ptr_null(strstr(r.body, "secret"));
        resp_free(&r);
    }
    r = request("POST", "/static/app.js", NULL, NULL, 0);
    ck_assert_int_eq(r.status, 405);
    ck_assert_str_eq(header_value(&r, "Allow"), "GET");
    resp_free(&r);
    /* A name of 64 characters is still served. */
    memset(long_name, 'b', 61);
    memcpy(long_name + 61, ".js", 4);
    write_text(web, long_name, "ok\n");
    snprintf(path, sizeof path, "/static/%s", long_name);
    r = get(path);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "ok\n");
    resp_free(&r);
}
END_TEST

/* ---- datasets ---- */

/* One part of a multipart/form-data body: a text field (filename NULL) or a file. */
typedef struct part {
    const char *name;
    const char *filename;
    const void *data;
    size_t len;
} part_t;

static resp_t post_parts_as(const char *token, const char *path, const part_t *parts, size_t n)
{
    const char *b = "mpboundary7d3f";
    size_t cap = 256, total = 0;
    for (size_t i = 0; i < n; i++) {
        cap += parts[i].len + 256;
    }
    char *body = malloc(cap), mid[512];
    for (size_t i = 0; i < n; i++) {
        total += (size_t)snprintf(body + total, cap - total,
                                  "--%s\r\nContent-Disposition: form-data; name=\"%s\"", b,
                                  parts[i].name);
        if (parts[i].filename != NULL) {
            total += (size_t)snprintf(body + total, cap - total,
                                      "; filename=\"%s\"\r\nContent-Type: "
                                      "application/octet-stream",
                                      parts[i].filename);
        }
        total += (size_t)snprintf(body + total, cap - total, "\r\n\r\n");
        memcpy(body + total, parts[i].data, parts[i].len);
        total += parts[i].len;
        total += (size_t)snprintf(body + total, cap - total, "\r\n");
    }
    total += (size_t)snprintf(body + total, cap - total, "--%s--\r\n", b);
    snprintf(mid, sizeof mid, "Content-Type: multipart/form-data; boundary=%s\r\n%s", b,
             token != NULL ? bearer(token) : "");
    resp_t r = request("POST", path, mid, body, total);
    free(body);
    return r;
}

static resp_t post_dataset_as(const char *token, const char *filename, const void *data, size_t len)
{
    part_t p = {"dataset", filename, data, len};
    return post_parts_as(token, "/datasets", &p, 1);
}

/* A safetensors dataset: x (n, 2) F32 and labels y (n,) I64 of i % 3. */
static void *make_dataset(int n, size_t *len)
{
    mp_model_t *m = mp_model_new();
    float *x = malloc((size_t)n * 2 * sizeof *x);
    int64_t *y = malloc((size_t)n * sizeof *y);
    for (int i = 0; i < n; i++) {
        x[2 * i] = (float)i;
        x[2 * i + 1] = -(float)i / 4;
        y[i] = i % 3;
    }
    int64_t xs[2] = {n, 2}, ys[1] = {n};
    ck_assert_int_eq(mp_model_add_take(m, "x", MP_DT_F32, 2, xs, x, (size_t)n * 8, NULL), 0);
    ck_assert_int_eq(mp_model_add_take(m, "y", MP_DT_I64, 1, ys, y, (size_t)n * 8, NULL), 0);
    return safetensors_bytes(m, len);
}

/* A .npy image: magic, version 1.0, this header dict padded to 64 bytes, data. */
static void *make_npy(const char *dict, const void *data, size_t n_data, size_t *len)
{
    size_t hlen = (10 + strlen(dict) + 1 + 63) / 64 * 64 - 10;
    unsigned char *b = malloc(10 + hlen + n_data);
    memcpy(b, "\x93NUMPY\x01\x00", 8);
    b[8] = (unsigned char)hlen;
    b[9] = (unsigned char)(hlen >> 8);
    memset(b + 10, ' ', hlen);
    memcpy(b + 10, dict, strlen(dict));
    b[10 + hlen - 1] = '\n';
    memcpy(b + 10 + hlen, data, n_data);
    *len = 10 + hlen + n_data;
    return b;
}

static json_int_t int_of(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    ck_assert_msg(json_is_integer(v), "no integer '%s'", key);
    return json_integer_value(v);
}

/* The size of the blob stored under id, or -1. */
static long blob_size(const char *id)
{
    char path[512];
    struct stat st;
    snprintf(path, sizeof path, "%s/blobs/sha256/%.2s/%s", state_dir, id, id);
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* An ONNX model y = flatten(x) W (W 2x3) of the given opset, written by Debian's python3-onnx
 * into *len bytes. */
static void *make_onnx_opset(int opset, size_t *len)
{
    char path[] = "/tmp/mp-api-onnx-XXXXXX", cmd[1024];
    int fd = mkstemp(path);
    close(fd);
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c \"import onnx, numpy as np; from onnx import helper as h, "
             "TensorProto as T, numpy_helper as nh; "
             "g = h.make_graph([h.make_node('MatMul', ['x', 'W'], ['y'])], 'g', "
             "[h.make_tensor_value_info('x', T.FLOAT, ['N', 2])], "
             "[h.make_tensor_value_info('y', T.FLOAT, ['N', 3])], "
             "[nh.from_array(np.arange(6, dtype=np.float32).reshape(2, 3) / 8, 'W')]); "
             "m = h.make_model(g, opset_imports=[h.make_opsetid('', %d)]); m.ir_version = 8; "
             "onnx.save(m, '%s')\"",
             opset, path);
    ck_assert_msg(system(cmd) == 0, "python3-onnx could not write a model (apt-get install "
                                    "python3-onnx)");
    return take_file(path, len);
}

static void *make_onnx(size_t *len)
{
    return make_onnx_opset(13, len);
}

/* POST /jobs with these form parts, insist on 202, wait for the job to succeed: its id
 * (malloc'd), the final GET /jobs/<id> answer in *last. */
static char *run_parts(const part_t *parts, size_t n, resp_t *last)
{
    resp_t r = post_parts_as(NULL, "/jobs", parts, n);
    ck_assert_msg(r.status == 202, "POST /jobs answered %d: %s", r.status, r.body);
    char *id = job_id_of(&r);
    resp_free(&r);
    char *st = wait_done(id, last);
    ck_assert_msg(strcmp(st, "succeeded") == 0, "job ended %s: %s", st, last->body);
    free(st);
    return id;
}

/* The files in the blob store (blobs/sha256/ab/<hash>). */
static int count_blobs(void)
{
    char path[400];
    snprintf(path, sizeof path, "%s/blobs/sha256", state_dir);
    DIR *d = opendir(path);
    int n = 0;
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.') {
            char sub[300];
            snprintf(sub, sizeof sub, "blobs/sha256/%s", e->d_name);
            n += count_files(sub);
        }
    }
    if (d != NULL) {
        closedir(d);
    }
    return n;
}

START_TEST(test_datasets_upload)
{
    size_t len, npy_len, bad_len;
    void *ds = make_dataset(5, &len);
    const float x4[4] = {1, 2, 3, 4};
    void *npy = make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", x4,
                         sizeof x4, &npy_len);

    resp_t r = post_dataset_as(NULL, "train.safetensors", ds, len);
    ck_assert_msg(r.status == 201, "POST /datasets answered %d: %s", r.status, r.body);
    char *id = strdup(str_of(r.json, "id"));
    ck_assert_uint_eq(strlen(id), 64);
    ck_assert_str_eq(str_of(r.json, "name"), "train.safetensors");
    ck_assert_str_eq(str_of(r.json, "format"), "safetensors");
    ck_assert_int_eq(int_of(r.json, "samples"), 5);
    ck_assert_int_eq(int_of(r.json, "bytes"), (json_int_t)len);
    ck_assert_int_eq(int_of(r.json, "n_classes"), 3);
    ck_assert(json_is_true(json_object_get(r.json, "has_labels")));
    json_t *xs = json_object_get(r.json, "x_shape");
    ck_assert_uint_eq(json_array_size(xs), 2);
    ck_assert_int_eq(json_integer_value(json_array_get(xs, 0)), 5);
    ck_assert_int_eq(json_integer_value(json_array_get(xs, 1)), 2);
    ck_assert_int_eq(blob_size(id), (long)len);
    char location[128];
    snprintf(location, sizeof location, "Location: /datasets/%s", id);
    ck_assert_ptr_nonnull(strstr(r.head, location));
    resp_free(&r);

    /* the same bytes again, with a name field: kept once, renamed, 200 */
    part_t again[2] = {{"name", NULL, "renamed", 7}, {"dataset", "copy.bin", ds, len}};
    r = post_parts_as(NULL, "/datasets", again, 2);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(str_of(r.json, "id"), id);
    ck_assert_str_eq(str_of(r.json, "name"), "renamed");
    resp_free(&r);

    /* a raw .npy body named in the query */
    r = request("POST", "/datasets?name=inputs.npy", "Content-Type: application/octet-stream\r\n",
                npy, npy_len);
    ck_assert_msg(r.status == 201, "raw POST /datasets answered %d: %s", r.status, r.body);
    char *npy_id = strdup(str_of(r.json, "id"));
    ck_assert_str_eq(str_of(r.json, "format"), "npy");
    ck_assert_str_eq(str_of(r.json, "name"), "inputs.npy");
    ck_assert(json_is_false(json_object_get(r.json, "has_labels")));
    ck_assert_int_eq(int_of(r.json, "samples"), 2);
    resp_free(&r);

    r = get("/datasets");
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq(int_of(r.json, "total"), 2);
    json_t *list = json_object_get(r.json, "datasets");
    ck_assert_str_eq(str_of(json_array_get(list, 0), "id"), npy_id); /* newest first */
    ck_assert_str_eq(str_of(json_array_get(list, 1), "name"), "renamed");
    resp_free(&r);

    /* one, then gone with its file */
    char path[128];
    snprintf(path, sizeof path, "/datasets/%s", npy_id);
    r = get(path);
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq(int_of(r.json, "bytes"), (json_int_t)npy_len);
    resp_free(&r);
    ck_assert_int_eq(blob_size(npy_id), (long)npy_len);
    r = request("DELETE", path, NULL, NULL, 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert(json_is_true(json_object_get(r.json, "deleted")));
    resp_free(&r);
    ck_assert_int_eq(blob_size(npy_id), -1);
    r = get(path);
    ck_assert_int_eq(r.status, 404);
    resp_free(&r);
    r = get("/datasets/../../etc/passwd");
    ck_assert_int_eq(r.status, 404);
    resp_free(&r);
    r = request("PUT", "/datasets", NULL, NULL, 0);
    ck_assert_int_eq(r.status, 405);
    ck_assert_ptr_nonnull(strstr(r.head, "Allow: GET, POST"));
    resp_free(&r);

    /* refusals name the problem; nothing refused is kept */
    void *bad = make_npy("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", "\x80\x04", 2,
                         &bad_len);
    r = post_dataset_as(NULL, "pickle.npy", bad, bad_len);
    ck_assert_int_eq(r.status, 422);
    ck_assert_str_eq(err_code(&r), "invalid_dataset");
    ck_assert_str_eq(err_message(&r),
                     "dataset: .npy: header at byte 20: object dtype '|O' is refused: its data is "
                     "a Python pickle, which modelpress never loads; save a numeric array (e.g. "
                     "x.astype('float32'))");
    resp_free(&r);
    free(bad);
    bad = make_npy("{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }", x4, 4, &bad_len);
    r = post_dataset_as(NULL, "big-endian.npy", bad, bad_len);
    ck_assert_int_eq(r.status, 415);
    ck_assert_str_eq(err_code(&r), "unsupported_dataset");
    resp_free(&r);
    free(bad);
    r = post_dataset_as(NULL, "truncated.npy", npy, npy_len - 1);
    ck_assert_int_eq(r.status, 422);
    ck_assert_str_eq(err_message(&r), "dataset: .npy: data is truncated: shape (2, 2) of F32 "
                                      "needs 16 bytes from byte 128, there are 15");
    resp_free(&r);
    r = post_dataset_as(NULL, "empty.npz", "", 0);
    ck_assert_int_eq(r.status, 400);
    resp_free(&r);
    part_t other = {"file", "x.npy", npy, npy_len};
    r = post_parts_as(NULL, "/datasets", &other, 1);
    ck_assert_int_eq(r.status, 400);
    ck_assert_str_eq(err_message(&r), "unknown form field 'file' (expected 'dataset' and 'name')");
    resp_free(&r);
    r = request("POST", "/datasets", "Content-Type: text/plain\r\n", "x", 1);
    ck_assert_int_eq(r.status, 415);
    resp_free(&r);
    ck_assert_int_eq(count_files("tmp"), 0);
    ck_assert_int_eq(count_blobs(), 1);
    free(id);
    free(npy_id);
    free(ds);
    free(npy);
}
END_TEST

/* Datasets belong to their user (404 to anyone else, jobs included) and count toward the byte
 * quota, before a job is ever submitted. */
START_TEST(test_datasets_owners_and_quota)
{
    stop_daemon(SIGKILL);
    size_t len, model_len, onnx_len;
    void *ds = make_dataset(200, &len);
    void *model = make_model(1, 32, 32, &model_len);
    void *onnx = make_onnx(&onnx_len);
    char extra_q[64];
    snprintf(extra_q, sizeof extra_q, "--quota-bytes %zu", len + model_len / 2);
    char *alice = token_add("alice", NULL);
    char *bob = token_add("bob", NULL);
    char *erin = token_add("erin", extra_q);
    const char *extra[] = {"--auth", "on", NULL};
    start_daemon_args(state_dir, 1, extra);

    resp_t r = post_dataset_as(NULL, "d.safetensors", ds, len);
    ck_assert_int_eq(r.status, 401);
    resp_free(&r);
    r = post_dataset_as(alice, "d.safetensors", ds, len);
    ck_assert_int_eq(r.status, 201);
    ck_assert_str_eq(str_of(r.json, "owner"), "alice");
    char *id = strdup(str_of(r.json, "id"));
    resp_free(&r);
    char path[128];
    snprintf(path, sizeof path, "/datasets/%s", id);
    r = get_as(bob, path);
    ck_assert_int_eq(r.status, 404);
    resp_free(&r);
    r = get_as(bob, "/datasets");
    ck_assert_int_eq(int_of(r.json, "total"), 0);
    resp_free(&r);
    r = request("DELETE", path, bearer(bob), NULL, 0);
    ck_assert_int_eq(r.status, 404);
    resp_free(&r);
    char recipe[256];
    snprintf(recipe, sizeof recipe,
             "{\"steps\":[{\"quantize\":{\"bits\":8}}],\"evaluate\":{\"dataset_id\":\"%s\"}}", id);
    part_t job[2] = {{"recipe", NULL, recipe, strlen(recipe)}, {"model", "n.onnx", onnx, onnx_len}};
    r = post_parts_as(bob, "/jobs", job, 2);
    ck_assert_int_eq(r.status, 404);
    ck_assert_str_eq(err_code(&r), "not_found");
    resp_free(&r);
    /* bob uploading the same bytes keeps his own copy of the one file */
    r = post_dataset_as(bob, "mine.safetensors", ds, len);
    ck_assert_int_eq(r.status, 201);
    ck_assert_str_eq(str_of(r.json, "id"), id);
    resp_free(&r);
    r = request("DELETE", path, bearer(alice), NULL, 0);
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
    ck_assert_int_eq(blob_size(id), (long)len); /* bob still keeps it */
    r = get_as(bob, path);
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);

    /* erin: room for the dataset and half a model */
    r = post_dataset_as(erin, "d.safetensors", ds, len);
    ck_assert_int_eq(r.status, 201);
    resp_free(&r);
    r = post_job_as(erin, model, model_len, "{\"steps\":[{\"quantize\":{\"bits\":8}}]}");
    ck_assert_int_eq(r.status, 429);
    ck_assert_str_eq(err_code(&r), "quota_exceeded");
    resp_free(&r);
    void *ds2 = make_dataset(201, &len);
    r = post_dataset_as(erin, "more.safetensors", ds2, len);
    ck_assert_int_eq(r.status, 429);
    resp_free(&r);
    ck_assert_int_eq(count_files("tmp"), 0);
    free(ds2);
    free(id);
    free(alice);
    free(bob);
    free(erin);
    free(ds);
    free(model);
    free(onnx);
}
END_TEST

/* POST /jobs with a dataset: the dataset and the evaluate block come together, the model must
 * have a graph, an id must be the user's; a dataset file sent with the job is kept like one
 * from POST /datasets. */
START_TEST(test_jobs_with_dataset)
{
    size_t len, onnx_len, st_len;
    void *ds = make_dataset(8, &len);
    void *onnx = make_onnx(&onnx_len);
    void *st = make_model(1, 8, 8, &st_len);
    const char *plain = "{\"steps\":[{\"quantize\":{\"bits\":8}}]}";
    const char *eval =
        "{\"steps\":[{\"quantize\":{\"bits\":8}}],\"evaluate\":{\"metric\":\"top1\"}}";

    resp_t r = post_dataset_as(NULL, "d.safetensors", ds, len);
    ck_assert_int_eq(r.status, 201);
    char *id = strdup(str_of(r.json, "id"));
    resp_free(&r);

    part_t p[3] = {{"recipe", NULL, eval, strlen(eval)},
                   {"model", "net.onnx", onnx, onnx_len},
                   {"dataset_id", NULL, id, 64}};
    r = post_parts_as(NULL, "/jobs", p, 2);
    ck_assert_int_eq(r.status, 400);
    ck_assert_str_eq(err_message(&r), "evaluate: needs a dataset: name it in evaluate.dataset_id "
                                      "or a dataset_id field, or send the file in a dataset field");
    resp_free(&r);
    p[0].data = plain;
    p[0].len = strlen(plain);
    r = post_parts_as(NULL, "/jobs", p, 3);
    ck_assert_int_eq(r.status, 400);
    ck_assert_str_eq(err_message(&r),
                     "a dataset came with the job but the recipe has no evaluate block to use it: "
                     "add \"evaluate\": {\"metric\": \"top1\"}");
    resp_free(&r);
    p[0].data = eval;
    p[0].len = strlen(eval);
    p[1].data = st;
    p[1].len = st_len;
    r = post_parts_as(NULL, "/jobs", p, 3);
    ck_assert_int_eq(r.status, 400);
    ck_assert_str_eq(err_message(&r),
                     "evaluate: only an ONNX model can be run to measure accuracy and speed; this "
                     "one is not (safetensors and .mpz files hold weights without a graph)");
    resp_free(&r);
    p[1].data = onnx;
    p[1].len = onnx_len;
    p[2].data = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    r = post_parts_as(NULL, "/jobs", p, 3);
    ck_assert_int_eq(r.status, 404);
    resp_free(&r);
    p[2].data = "../../etc/passwd";
    p[2].len = 16;
    r = post_parts_as(NULL, "/jobs", p, 3);
    ck_assert_int_eq(r.status, 400);
    resp_free(&r);
    ck_assert_int_eq(count_files("tmp"), 0);

    /* accepted: by id, and by a file sent along */
    p[2].data = id;
    p[2].len = 64;
    r = post_parts_as(NULL, "/jobs", p, 3);
    ck_assert_msg(r.status == 202, "POST /jobs answered %d: %s", r.status, r.body);
    ck_assert_str_eq(str_of(json_object_get(r.json, "dataset"), "id"), id);
    resp_free(&r);
    size_t len2;
    void *ds2 = make_dataset(9, &len2);
    part_t q[3] = {{"recipe", NULL, eval, strlen(eval)},
                   {"model", "net.onnx", onnx, onnx_len},
                   {"dataset", "sent-along.safetensors", ds2, len2}};
    r = post_parts_as(NULL, "/jobs", q, 3);
    ck_assert_msg(r.status == 202, "POST /jobs answered %d: %s", r.status, r.body);
    const char *id2 = str_of(json_object_get(r.json, "dataset"), "id");
    ck_assert_int_eq(blob_size(id2), (long)len2);
    resp_free(&r);
    r = get("/datasets");
    ck_assert_int_eq(int_of(r.json, "total"), 2);
    ck_assert_int_eq(int_of(r.json, "limit"), 100);
    ck_assert_str_eq(str_of(json_array_get(json_object_get(r.json, "datasets"), 0), "name"),
                     "sent-along.safetensors");
    resp_free(&r);
    /* pages of them, as GET /jobs pages: the older one second */
    r = get("/datasets?limit=1&offset=1");
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq(int_of(r.json, "total"), 2);
    ck_assert_int_eq(int_of(r.json, "offset"), 1);
    ck_assert_uint_eq(json_array_size(json_object_get(r.json, "datasets")), 1);
    ck_assert_str_eq(str_of(json_array_get(json_object_get(r.json, "datasets"), 0), "id"), id);
    resp_free(&r);
    r = get("/datasets?limit=0");
    ck_assert_int_eq(r.status, 400);
    ck_assert_str_eq(err_message(&r), "limit: must be an integer 1 to 1000");
    resp_free(&r);
    r = get("/datasets?offset=-1");
    ck_assert_int_eq(r.status, 400);
    resp_free(&r);
    ck_assert_int_eq(count_files("tmp"), 0);
    free(ds2);
    free(id);
    free(ds);
    free(onnx);
    free(st);
}
END_TEST

/* A Deep Compression recipe gives an .mpz result, the size its report's last stage names. */
START_TEST(test_mpz_result)
{
    size_t len;
    void *model = make_model(2, 64, 64, &len);
    char *id = submit(model, len,
                      "{\"steps\":[{\"prune\":{\"sparsity\":0.9}},{\"share\":{\"clusters\":16}},"
                      "{\"huffman\":{}}]}");
    resp_t r;
    char *st = wait_done(id, &r);
    ck_assert_msg(strcmp(st, "succeeded") == 0, "job ended %s: %s", st, r.body);
    json_t *stages = json_object_get(json_object_get(r.json, "metrics"), "stages");
    json_int_t last = json_integer_value(
        json_object_get(json_array_get(stages, json_array_size(stages) - 1), "bytes"));
    resp_free(&r);
    char path[128];
    snprintf(path, sizeof path, "/jobs/%s/result", id);
    r = get(path);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(strstr(r.head, "filename=\"net.compressed.mpz\""));
    ck_assert_int_eq((json_int_t)r.body_len, last);
    mp_model_t *m = NULL;
    ck_assert_int_eq(mp_mpz_parse(r.body, r.body_len, &m, NULL), 0);
    ck_assert_ptr_nonnull(mp_model_find(m, "layers.0.weight_indices"));
    mp_model_free(m);
    resp_free(&r);
    free(st);
    free(id);
    free(model);
}
END_TEST

/* An ONNX upload comes back as ONNX, and the job and its report say so; a finished job is in no
 * stage. */
START_TEST(test_onnx_result)
{
    size_t len;
    void *onnx = make_onnx(&len);
    const char *recipe = "{\"steps\":[{\"quantize\":{\"bits\":8}}]}";
    part_t p[2] = {{"recipe", NULL, recipe, strlen(recipe)}, {"model", "net.onnx", onnx, len}};
    resp_t r;
    char *id = run_parts(p, 2, &r);
    ck_assert_str_eq(str_of(json_object_get(r.json, "metrics"), "output_format"), "onnx");
    ck_assert(json_is_null(json_object_get(r.json, "stage")));
    resp_free(&r);
    char path[128];
    snprintf(path, sizeof path, "/jobs/%s/report", id);
    r = get(path);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(str_of(r.json, "output_format"), "onnx");
    resp_free(&r);
    snprintf(path, sizeof path, "/jobs/%s/result", id);
    r = get(path);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(strstr(r.head, "filename=\"net.compressed.onnx\""));
    mp_model_t *m = NULL;
    ck_assert_int_eq(mp_onnx_parse(r.body, r.body_len, &m, NULL), 0);
    mp_model_free(m);
    resp_free(&r);
    free(id);
    free(onnx);
}
END_TEST

/* An opset-6 graph can be read but not rewritten: a job that would write it back as ONNX (or
 * evaluate the rewritten graph) is refused at upload, with nothing stored; as .mpz it runs. */
START_TEST(test_onnx_old_opset)
{
    size_t len;
    void *onnx = make_onnx_opset(6, &len);
    const char *as_onnx = "{\"steps\":[{\"quantize\":{\"bits\":8}}]}";
    const char *as_mpz = "{\"steps\":[{\"quantize\":{\"bits\":8}}],\"output\":{\"format\":\"mpz\"}}";
    part_t p[2] = {{"recipe", NULL, as_onnx, strlen(as_onnx)}, {"model", "old.onnx", onnx, len}};
    resp_t r = post_parts_as(NULL, "/jobs", p, 2);
    ck_assert_int_eq(r.status, 415);
    ck_assert_str_eq(err_code(&r), "unsupported_model");
    ck_assert_ptr_nonnull(strstr(err_message(&r), "needs opset 7 or later"));
    ck_assert_ptr_nonnull(strstr(err_message(&r), "this one has opset 6"));
    resp_free(&r);
    ck_assert_int_eq(count_blobs(), 0);
    ck_assert_int_eq(count_files("tmp"), 0);
    p[0].data = as_mpz;
    p[0].len = strlen(as_mpz);
    char *id = run_parts(p, 2, &r);
    ck_assert_str_eq(str_of(json_object_get(r.json, "metrics"), "output_format"), "mpz");
    resp_free(&r);
    free(id);
    free(onnx);
}
END_TEST

/* Item 10: one or two random bytes of a valid model flipped, uploaded: every answer is 202 or a
 * clean 4xx, every accepted job ends succeeded or failed with a message, the daemon serves on. */
START_TEST(test_flipped_bytes)
{
    size_t len;
    uint8_t *model = make_model(2, 24, 40, &len);
    uint8_t *copy = malloc(len);
    uint32_t s = 2026;
    char *ids[60];
    int n_ids = 0, n_refused = 0;
    for (int i = 0; i < 60; i++) {
        memcpy(copy, model, len);
        for (int k = 0; k < 1 + (i & 1); k++) {
            s = s * 1664525u + 1013904223u;
            /* Half of the flips land in the 8-byte length and the JSON header. */
            size_t at = (i % 4 < 2) ? (s >> 8) % 200 : (s >> 8) % len;
            copy[at] ^= (uint8_t)(1u << ((s >> 4) & 7));
        }
        resp_t r = post_job(copy, len,
                            "{\"steps\":[{\"prune\":{\"sparsity\":0.5}},{\"quantize\":{\"bits\":4,"
                            "\"granularity\":\"group\",\"group_size\":8}}]}");
        if (r.status == 202) {
            ids[n_ids++] = job_id_of(&r);
        } else {
            ck_assert_msg(r.status >= 400 && r.status < 500, "flip %d: status %d", i, r.status);
            ck_assert_str_ne(err_message(&r), "");
            n_refused++;
        }
        resp_free(&r);
    }
    for (int i = 0; i < n_ids; i++) {
        resp_t r;
        char *st = wait_done(ids[i], &r);
        ck_assert_msg(strcmp(st, "succeeded") == 0 || strcmp(st, "failed") == 0, "ended %s", st);
        if (strcmp(st, "failed") == 0) {
            ck_assert_ptr_nonnull(json_object_get(json_object_get(r.json, "error"), "message"));
        }
        resp_free(&r);
        free(st);
        free(ids[i]);
    }
    ck_assert_int_gt(n_refused, 0); /* the header flips were caught at the door */
    resp_t r = get("/healthz");
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
    ck_assert_int_eq(count_files("tmp"), 0);
    free(copy);
    free(model);
}
END_TEST

/* A TCase of this suite: every test gets its own daemon and state folder (setup/teardown). */
static TCase *api_tcase(Suite *s, const char *name, int timeout_s)
{
    TCase *tc = tcase_create(name);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, timeout_s);
    suite_add_tcase(s, tc);
    return tc;
}

static Suite *api_suite(void)
{
    Suite *s = suite_create("api");
    TCase *tc;
    tc = api_tcase(s, "routes", 120);
    tcase_add_test(tc, test_healthz_and_routes);
    tcase_add_test(tc, test_job_lifecycle);
    tcase_add_test(tc, test_raw_upload);
    tcase_add_test(tc, test_mpz_result);
    tcase_add_test(tc, test_onnx_result);
    tcase_add_test(tc, test_onnx_old_opset);
    tc = api_tcase(s, "refusals", 120);
    tcase_add_test(tc, test_refusals);
    tcase_add_test(tc, test_upload_cap_announced);
    tcase_add_test(tc, test_upload_cap_chunked);
    tcase_add_test(tc, test_disconnect_mid_upload);
    tcase_add_test(tc, test_flipped_bytes);
    tc = api_tcase(s, "jobs", 180);
    tcase_add_test(tc, test_cancel);
    tcase_add_test(tc, test_crash_and_restart);
    tcase_add_test(tc, test_job_budgets);
    tc = api_tcase(s, "http", 60);
    tcase_add_test(tc, test_slow_and_idle_clients);
    tcase_add_test(tc, test_per_ip_limit);
    tcase_add_test(tc, test_huge_header_line);
    tc = api_tcase(s, "users", 120);
    tcase_add_test(tc, test_auth_and_ownership);
    tcase_add_test(tc, test_quotas);
    tcase_add_test(tc, test_metrics);
    tc = api_tcase(s, "datasets", 120);
    tcase_add_test(tc, test_datasets_upload);
    tcase_add_test(tc, test_datasets_owners_and_quota);
    tcase_add_test(tc, test_jobs_with_dataset);
    tc = api_tcase(s, "web", 60);
    tcase_add_test(tc, test_static_files);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(api_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
