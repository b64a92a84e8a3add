/* store.c — where uploads and results live on disk.
 *
 * An upload is written to state_dir/tmp/ and hashed (SHA-256, nettle) as it arrives; when it
 * is complete it is fsynced and renamed to blobs/sha256/<first two hex>/<hash>, and the
 * directory is fsynced, so a blob that has a name is whole. The same model uploaded twice is
 * stored once. Anything left in tmp/ belongs to an upload a crash interrupted and is removed at
 * start. Results are in results/<job-id>/.
 */
#include "api/api_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int mkdir_p(const char *path)
{
    char buf[API_PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
        return -ENAMETOOLONG;
    }
    for (char *p = buf + 1; *p != '\0'; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(buf, 0750) != 0 && errno != EEXIST) {
                return -errno;
            }
            *p = '/';
        }
    }
    if (mkdir(buf, 0750) != 0 && errno != EEXIST) {
        return -errno;
    }
    return 0;
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    int rc = fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

/* Remove the regular files directly inside dir (tmp/ and a result folder hold no more). */
static void remove_files_in(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
            continue;
        }
        unlinkat(dirfd(d), e->d_name, 0);
    }
    closedir(d);
}

int api__store_init(const char *state_dir, char *errbuf, size_t errlen)
{
    static const char *const subdirs[] = {"tmp", "blobs/sha256", "results"};
    char path[API_PATH_MAX];
    int rc = mkdir_p(state_dir);
    for (size_t i = 0; rc == 0 && i < sizeof subdirs / sizeof subdirs[0]; i++) {
        if (snprintf(path, sizeof path, "%s/%s", state_dir, subdirs[i]) >= (int)sizeof path) {
            rc = -ENAMETOOLONG;
            break;
        }
        rc = mkdir_p(path);
    }
    if (rc != 0) {
        snprintf(errbuf, errlen, "cannot create the state folders under %s: %s", state_dir,
                 strerror(-rc));
        return rc;
    }
    snprintf(path, sizeof path, "%s/tmp", state_dir);
    remove_files_in(path);
    return 0;
}

int api_blob_path(const char *state_dir, const char *hex, char *buf, size_t n)
{
    int w = snprintf(buf, n, "%s/blobs/sha256/%.2s/%s", state_dir, hex, hex);
    return (w < 0 || (size_t)w >= n) ? -1 : 0;
}

int api_result_dir(const char *state_dir, const char *job_id, char *buf, size_t n)
{
    int w = snprintf(buf, n, "%s/results/%s", state_dir, job_id);
    return (w < 0 || (size_t)w >= n) ? -1 : 0;
}

void api_result_remove(const char *state_dir, const char *job_id)
{
    char dir[API_PATH_MAX];
    if (api_result_dir(state_dir, job_id, dir, sizeof dir) != 0) {
        return;
    }
    remove_files_in(dir);
    rmdir(dir);
}

int api__upload_open(const api_t *api, api_upload_t *up)
{
    memset(up, 0, sizeof *up);
    up->fd = -1;
    if (snprintf(up->tmp_path, sizeof up->tmp_path, "%s/tmp/upload-XXXXXX", api->state_dir) >=
        (int)sizeof up->tmp_path) {
        up->tmp_path[0] = '\0';
        return -ENAMETOOLONG;
    }
    up->fd = mkostemp(up->tmp_path, O_CLOEXEC);
    if (up->fd < 0) {
        up->tmp_path[0] = '\0';
        return -errno;
    }
    sha256_init(&up->sha);
    return 0;
}

int api__upload_write(api_upload_t *up, const void *data, size_t n)
{
    const uint8_t *p = data;
    sha256_update(&up->sha, n, p);
    up->bytes += n;
    while (n > 0) {
        ssize_t w = write(up->fd, p, n);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int api__upload_finish(api_upload_t *up)
{
    uint8_t digest[SHA256_DIGEST_SIZE];
    int rc = 0;
    if (fsync(up->fd) != 0) {
        rc = -errno;
    }
    if (close(up->fd) != 0 && rc == 0) {
        rc = -errno;
    }
    up->fd = -1;
    sha256_digest(&up->sha, sizeof digest, digest);
    for (size_t i = 0; i < sizeof digest; i++) {
        snprintf(up->hex + 2 * i, 3, "%02x", digest[i]);
    }
    return rc;
}

int api__upload_commit(const api_t *api, api_upload_t *up, char *blob_path, size_t n)
{
    char dir[API_PATH_MAX];
    int rc;
    if (snprintf(dir, sizeof dir, "%s/blobs/sha256/%.2s", api->state_dir, up->hex) >=
            (int)sizeof dir ||
        api_blob_path(api->state_dir, up->hex, blob_path, n) != 0) {
        return -ENAMETOOLONG;
    }
    if ((rc = mkdir_p(dir)) != 0) {
        return rc;
    }
    struct stat st;
    if (stat(blob_path, &st) == 0 && (uint64_t)st.st_size == up->bytes) {
        /* Stored already: the same bytes have the same name. */
        unlink(up->tmp_path);
        up->tmp_path[0] = '\0';
        return 0;
    }
    if (rename(up->tmp_path, blob_path) != 0) {
        return -errno;
    }
    up->tmp_path[0] = '\0';
    return fsync_dir(dir);
}

void api__upload_abort(api_upload_t *up)
{
    if (up->fd >= 0) {
        close(up->fd);
        up->fd = -1;
    }
    if (up->tmp_path[0] != '\0') {
        unlink(up->tmp_path);
        up->tmp_path[0] = '\0';
    }
}
