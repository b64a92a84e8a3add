/* http.c — libmicrohttpd driven by the libuv loop.
 *
 * MHD runs in external-loop mode with epoll: its epoll fd is watched by a uv_poll_t, and a
 * uv_timer_t armed from MHD_get_timeout() after every MHD_run() closes idle and slow
 * connections on time. Both call MHD_run(), so every request handler runs on the loop thread.
 */
#include "daemon/dmn_int.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct dmn_http {
    struct MHD_Daemon *mhd;
    uv_poll_t poll;
    uv_timer_t timer;
    int n_open; /* handles not yet closed */
};

static void timer_cb(uv_timer_t *handle);

static void run_mhd(dmn_http_t *h)
{
    MHD_run(h->mhd);
    MHD_UNSIGNED_LONG_LONG timeout_ms;
    if (MHD_get_timeout(h->mhd, &timeout_ms) == MHD_YES) {
        /* +1: a timer that fires a hair early finds nothing to time out and re-arms at 0. */
        uv_timer_start(&h->timer, timer_cb, (uint64_t)timeout_ms + 1, 0);
    } else {
        uv_timer_stop(&h->timer);
    }
}

static void poll_cb(uv_poll_t *handle, int status, int events)
{
    run_mhd(handle->data);
}

static void timer_cb(uv_timer_t *handle)
{
    run_mhd(handle->data);
}

int dmn_parse_listen(const char *listen, struct sockaddr_storage *ss, int *is_v6)
{
    char host[256];
    const char *port;
    if (listen[0] == '[') {
        const char *close = strchr(listen, ']');
        if (close == NULL || close[1] != ':' || (size_t)(close - listen - 1) >= sizeof host) {
            return -1;
        }
        memcpy(host, listen + 1, (size_t)(close - listen - 1));
        host[close - listen - 1] = '\0';
        port = close + 2;
    } else {
        const char *colon = strrchr(listen, ':');
        if (colon == NULL || (size_t)(colon - listen) >= sizeof host) {
            return -1;
        }
        memcpy(host, listen, (size_t)(colon - listen));
        host[colon - listen] = '\0';
        port = colon + 1;
    }
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    if (*port == '\0' || getaddrinfo(host[0] ? host : NULL, port, &hints, &res) != 0) {
        return -1;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *is_v6 = res->ai_family == AF_INET6;
    freeaddrinfo(res);
    return 0;
}

int dmn_http_start(uv_loop_t *loop, const dmn_config_t *cfg, api_t *api, dmn_http_t **out,
                   char *bound_url, size_t url_len)
{
    struct sockaddr_storage ss;
    int is_v6 = 0;
    *out = NULL;
    if (dmn_parse_listen(cfg->listen, &ss, &is_v6) != 0) {
        log_at(LOG_ERR_, "listen=%s: expected HOST:PORT such as 127.0.0.1:8080 or [::1]:8080",
               cfg->listen);
        return -1;
    }
    dmn_http_t *h = calloc(1, sizeof *h);
    if (h == NULL) {
        return -1;
    }
    unsigned int flags = MHD_USE_EPOLL | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    if (is_v6) {
        flags |= MHD_USE_IPv6;
    }
    h->mhd = MHD_start_daemon(
        flags, 0, NULL, NULL, api_handle_cb, api, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_NOTIFY_COMPLETED, api_completed_cb, api, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned int)cfg->connection_timeout, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned int)cfg->max_connections, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        (unsigned int)cfg->per_ip_connections, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        /* 32 KiB per connection: libmicrohttpd clears a connection's pool for every request,
         * so a larger one costs time on every keep-alive request (128 KiB cost a quarter of
         * GET /jobs/{id}); uploads stream through the post processor's own buffer. */
        (size_t)(32 * 1024), MHD_OPTION_LISTEN_BACKLOG_SIZE, 512u, MHD_OPTION_END);
    if (h->mhd == NULL) {
        log_at(LOG_ERR_, "cannot listen on %s (in use, or not an address of this machine?)",
               cfg->listen);
        free(h);
        return -1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_EPOLL_FD);
    const union MHD_DaemonInfo *pinfo = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_BIND_PORT);
    char host[INET6_ADDRSTRLEN] = "";
    if (is_v6) {
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, host, sizeof host);
        snprintf(bound_url, url_len, "http://[%s]:%u/", host, pinfo != NULL ? pinfo->port : 0);
    } else {
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, host, sizeof host);
        snprintf(bound_url, url_len, "http://%s:%u/", host, pinfo != NULL ? pinfo->port : 0);
    }
    uv_poll_init(loop, &h->poll, info->epoll_fd);
    uv_timer_init(loop, &h->timer);
    h->poll.data = h;
    h->timer.data = h;
    h->n_open = 2;
    uv_poll_start(&h->poll, UV_READABLE, poll_cb);
    run_mhd(h);
    *out = h;
    return 0;
}

void dmn_http_quiesce(dmn_http_t *h)
{
    MHD_socket s = MHD_quiesce_daemon(h->mhd);
    if (s != MHD_INVALID_SOCKET) {
        close(s);
    }
}

static void close_cb(uv_handle_t *handle)
{
    dmn_http_t *h = handle->data;
    if (--h->n_open == 0) {
        free(h);
    }
}

void dmn_http_stop(dmn_http_t *h)
{
    if (h == NULL) {
        return;
    }
    uv_poll_stop(&h->poll);
    uv_timer_stop(&h->timer);
    MHD_stop_daemon(h->mhd);
    h->mhd = NULL;
    uv_close((uv_handle_t *)&h->poll, close_cb);
    uv_close((uv_handle_t *)&h->timer, close_cb);
}
