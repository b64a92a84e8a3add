/* config.c — modelpressd's options: one table row each (name, type, default, bounds, help).
 *
 * Precedence: defaults < config file (--config FILE or MODELPRESS_CONFIG; lines `name = value`,
 * `#` comments) < environment (MODELPRESS_<NAME>, upper case, '-' as '_') < command-line flags
 * (--name VALUE or --name=VALUE). --help is generated from the table. Every value is checked
 * here, so an invalid configuration fails before any socket is bound.
 */
#include "daemon/dmn_int.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "core/modelpress.h"

/* OPT_SECONDS: a decimal number of seconds, kept as milliseconds (bounds in ms too). */
typedef enum { OPT_STR, OPT_INT, OPT_BYTES, OPT_SECONDS } opt_type_t;

typedef struct opt {
    const char *name;
    opt_type_t type;
    const char *def;
    int64_t min, max;
    size_t offset;
    const char *help;
} opt_t;

#define OFF(f) offsetof(dmn_config_t, f)
static const opt_t options[] = {
    {"listen", OPT_STR, "127.0.0.1:8080", 0, 0, OFF(listen),
     "address to serve on, HOST:PORT or [V6]:PORT; port 0 picks a free one"},
    {"state-dir", OPT_STR, "./var", 0, 0, OFF(state_dir),
     "folder for the database, uploaded models and results"},
    {"workers", OPT_INT, "0", 0, 256, OFF(workers), "compression threads; 0 means one per core"},
    {"upload-max", OPT_BYTES, "4G", 1, INT64_C(1) << 44, OFF(upload_max),
     "largest upload accepted (bytes; K, M, G suffixes)"},
    {"web-dir", OPT_STR, "", 0, 0, OFF(web_dir),
     "folder of the dashboard's files (default: the installed one, else the source tree's)"},
    {"connection-timeout", OPT_INT, "60", 1, 3600, OFF(connection_timeout),
     "seconds an idle or slow connection is kept"},
    {"max-connections", OPT_INT, "1000", 1, 100000, OFF(max_connections),
     "connections served at once"},
    {"per-ip-connections", OPT_INT, "256", 0, 100000, OFF(per_ip_connections),
     "connections from one address at once (0: no limit)"},
    {"stop-timeout", OPT_INT, "20", 1, 3600, OFF(stop_timeout),
     "seconds SIGTERM waits for running jobs to be handed back"},
    {"log-level", OPT_STR, "info", 0, 0, OFF(log_level), "error, warning, info or debug"},
    {"auth", OPT_STR, "auto", 0, 0, OFF(auth),
     "bearer tokens: on, off, or auto (on unless listening on loopback only)"},
    {"quota-bytes", OPT_BYTES, "0", 0, INT64_C(1) << 50, OFF(quota_bytes),
     "per user: bytes of uploads and results kept (0: no limit; `token add` can override)"},
    {"job-timeout", OPT_SECONDS, "0", 0, INT64_C(30) * 86400 * 1000, OFF(job_timeout_ms),
     "seconds a job may run before it fails as timed out (0: no limit)"},
    {"job-memory-max", OPT_BYTES, "0", 0, INT64_C(1) << 50, OFF(job_memory_max),
     "working memory a job may need, estimated before it starts (0: no limit)"},
    {"quota-jobs", OPT_INT, "0", 0, 1000000, OFF(quota_jobs),
     "per user: jobs queued or running at once (0: no limit)"},
};
#define N_OPTIONS (sizeof options / sizeof options[0])

static const opt_t *find_opt(const char *name, size_t len)
{
    for (size_t i = 0; i < N_OPTIONS; i++) {
        if (strlen(options[i].name) == len && strncmp(options[i].name, name, len) == 0) {
            return &options[i];
        }
    }
    return NULL;
}

static int parse_bytes(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || v < 0) {
        return -1;
    }
    double mult = 1;
    switch (toupper((unsigned char)*end)) {
    case 'K':
        mult = 1024.0;
        end++;
        break;
    case 'M':
        mult = 1024.0 * 1024;
        end++;
        break;
    case 'G':
        mult = 1024.0 * 1024 * 1024;
        end++;
        break;
    case 'T':
        mult = 1024.0 * 1024 * 1024 * 1024;
        end++;
        break;
    default:
        break;
    }
    if (toupper((unsigned char)*end) == 'B' || toupper((unsigned char)*end) == 'I') {
        end++;
    }
    if (*end != '\0' || v * mult > 9.2e18) {
        return -1;
    }
    *out = (int64_t)(v * mult);
    return 0;
}

/* Set one option from text; where says where the value came from, for the error. */
static int set_opt(dmn_config_t *cfg, const opt_t *o, const char *value, const char *where)
{
    void *field = (char *)cfg + o->offset;
    if (o->type == OPT_STR) {
        char *copy = strdup(value);
        if (copy == NULL) {
            return -1;
        }
        free(*(char **)field);
        *(char **)field = copy;
        return 0;
    }
    int64_t v;
    char *end;
    if (o->type == OPT_SECONDS) {
        errno = 0;
        double s = strtod(value, &end);
        if (errno != 0 || end == value || *end != '\0' || !(s >= 0) || s > 9e15) {
            fprintf(stderr, "modelpressd: %s: %s=%s is not a number of seconds\n", where, o->name,
                    value);
            return -1;
        }
        v = (int64_t)(s * 1000.0 + 0.5);
    } else if (o->type == OPT_BYTES) {
        if (parse_bytes(value, &v) != 0) {
            fprintf(stderr, "modelpressd: %s: %s=%s is not a size in bytes (e.g. 512M, 4G)\n",
                    where, o->name, value);
            return -1;
        }
    } else {
        errno = 0;
        long long x = strtoll(value, &end, 10);
        if (errno != 0 || end == value || *end != '\0') {
            fprintf(stderr, "modelpressd: %s: %s=%s is not an integer\n", where, o->name, value);
            return -1;
        }
        v = x;
    }
    if (v < o->min || v > o->max) {
        fprintf(stderr, "modelpressd: %s: %s=%s is out of range (%lld to %lld)\n", where, o->name,
                value, (long long)o->min, (long long)o->max);
        return -1;
    }
    *(int64_t *)field = v;
    return 0;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s)) {
        s++;
    }
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) {
        *--e = '\0';
    }
    return s;
}

static int load_file(dmn_config_t *cfg, const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "modelpressd: cannot read config file %s: %s\n", path, strerror(errno));
        return -1;
    }
    char line[4096], where[4200];
    int lineno = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f) != NULL) {
        lineno++;
        char *s = trim(line);
        if (*s == '\0' || *s == '#' || *s == ';') {
            continue;
        }
        char *eq = strchr(s, '=');
        snprintf(where, sizeof where, "%s:%d", path, lineno);
        if (eq == NULL) {
            fprintf(stderr, "modelpressd: %s: expected `name = value`\n", where);
            rc = -1;
            break;
        }
        *eq = '\0';
        char *name = trim(s), *value = trim(eq + 1);
        for (char *p = name; *p; p++) {
            if (*p == '_') {
                *p = '-';
            }
        }
        const opt_t *o = find_opt(name, strlen(name));
        if (o == NULL) {
            fprintf(stderr, "modelpressd: %s: unknown option '%s'\n", where, name);
            rc = -1;
            break;
        }
        rc = set_opt(cfg, o, value, where);
    }
    fclose(f);
    return rc;
}

static void env_name(const char *opt, char *buf, size_t n)
{
    size_t j = (size_t)snprintf(buf, n, "MODELPRESS_");
    for (size_t i = 0; opt[i] != '\0' && j + 1 < n; i++) {
        buf[j++] = opt[i] == '-' ? '_' : (char)toupper((unsigned char)opt[i]);
    }
    buf[j] = '\0';
}

static void usage(FILE *out)
{
    char env[64];
    fprintf(out, "Usage: modelpressd [--config FILE] [OPTION VALUE]...\n"
                 "       modelpressd token add NAME [--quota-bytes N] [--quota-jobs N] "
                 "[OPTION VALUE]...\n"
                 "       modelpressd token list|revoke NAME [OPTION VALUE]...\n"
                 "modelpress compression service: POST a model and a recipe to /jobs.\n"
                 "`token` manages the users of a shared server (in the state-dir's database).\n\n"
                 "  --config FILE   read options from FILE (name = value lines)\n");
    for (size_t i = 0; i < N_OPTIONS; i++) {
        env_name(options[i].name, env, sizeof env);
        fprintf(out, "  --%-20s %s\n  %-22s [default %s; env %s]\n", options[i].name,
                options[i].help, "", options[i].def[0] ? options[i].def : "none", env);
    }
    fprintf(out, "  --help, --version\n");
}

int dmn_config_load(dmn_config_t *cfg, int argc, char **argv, char **positional, int *n_positional)
{
    int max_positional = n_positional != NULL ? *n_positional : 0;
    if (n_positional != NULL) {
        *n_positional = 0;
    }
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < N_OPTIONS; i++) {
        if (set_opt(cfg, &options[i], options[i].def, "default") != 0) {
            return -1;
        }
    }
    /* The config file is named first, from the flag or the environment. */
    const char *file = getenv("MODELPRESS_CONFIG");
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 1;
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("modelpressd %s\n", MP_VERSION_STRING);
            return 1;
        }
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            file = argv[i + 1];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            file = argv[i] + 9;
        }
    }
    if (file != NULL) {
        cfg->config_file = strdup(file);
        if (load_file(cfg, file) != 0) {
            return -1;
        }
    }
    char env[64];
    for (size_t i = 0; i < N_OPTIONS; i++) {
        env_name(options[i].name, env, sizeof env);
        const char *v = getenv(env);
        if (v != NULL && set_opt(cfg, &options[i], v, env) != 0) {
            return -1;
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0) {
            if (n_positional != NULL && *n_positional < max_positional) {
                positional[(*n_positional)++] = argv[i];
                continue;
            }
            fprintf(stderr, "modelpressd: unexpected argument '%s' (see --help)\n", a);
            return -1;
        }
        a += 2;
        const char *eq = strchr(a, '=');
        size_t len = eq != NULL ? (size_t)(eq - a) : strlen(a);
        const char *value = eq != NULL ? eq + 1 : (i + 1 < argc ? argv[i + 1] : NULL);
        if (len == 6 && strncmp(a, "config", 6) == 0) {
            i += eq == NULL;
            continue;
        }
        const opt_t *o = find_opt(a, len);
        if (o == NULL) {
            fprintf(stderr, "modelpressd: unknown option '--%.*s' (see --help)\n", (int)len, a);
            return -1;
        }
        if (value == NULL) {
            fprintf(stderr, "modelpressd: --%s needs a value\n", o->name);
            return -1;
        }
        if (set_opt(cfg, o, value, "command line") != 0) {
            return -1;
        }
        i += eq == NULL;
    }
    if (dmn_log_set_level(cfg->log_level) != 0) {
        fprintf(stderr, "modelpressd: log-level=%s: must be error, warning, info or debug\n",
                cfg->log_level);
        return -1;
    }
    if (strcmp(cfg->auth, "on") != 0 && strcmp(cfg->auth, "off") != 0 &&
        strcmp(cfg->auth, "auto") != 0) {
        fprintf(stderr, "modelpressd: auth=%s: must be on, off or auto\n", cfg->auth);
        return -1;
    }
    struct sockaddr_storage ss;
    int is_v6;
    if (dmn_parse_listen(cfg->listen, &ss, &is_v6) != 0) {
        fprintf(stderr,
                "modelpressd: listen=%s: expected HOST:PORT such as 127.0.0.1:8080 or "
                "[::1]:8080\n",
                cfg->listen);
        return -1;
    }
    if (cfg->state_dir[0] == '\0') {
        fprintf(stderr, "modelpressd: state-dir must not be empty\n");
        return -1;
    }
    return 0;
}

void dmn_config_cleanup(dmn_config_t *cfg)
{
    for (size_t i = 0; i < N_OPTIONS; i++) {
        if (options[i].type == OPT_STR) {
            char **field = (char **)((char *)cfg + options[i].offset);
            free(*field);
            *field = NULL;
        }
    }
    free(cfg->config_file);
    cfg->config_file = NULL;
}

int dmn_config_auth_on(const dmn_config_t *cfg)
{
    if (strcmp(cfg->auth, "on") == 0) {
        return 1;
    }
    if (strcmp(cfg->auth, "off") == 0) {
        return 0;
    }
    /* auto: a single-user loopback setup needs no tokens; anything reachable from elsewhere
     * does. */
    struct sockaddr_storage ss;
    int is_v6 = 0;
    if (dmn_parse_listen(cfg->listen, &ss, &is_v6) != 0) {
        return 1;
    }
    if (is_v6) {
        return !IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)&ss)->sin6_addr);
    }
    return (ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr) >> 24) != 127;
}
