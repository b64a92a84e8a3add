/* token.c — `modelpressd token add|list|revoke`: the users of a shared server.
 *
 * An administrator runs these on the server, with the same --state-dir (or --config) as the
 * service: `token add NAME` prints a new token once, and only its SHA-256 is stored; `token
 * revoke NAME` makes it stop working at once (the user's jobs stay); `token list` shows who has
 * one. The running service sees changes immediately: it looks tokens up in the database on every
 * request.
 */
#include "daemon/dmn_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* Pull `--quota-bytes V` and `--quota-jobs V` out of argv (they are the user's, not the
 * server's defaults), compacting the rest. -1 when not given. */
static int take_quota_flags(int *argc, char **argv, int64_t *qb, int64_t *qj)
{
    int j = 1;
    *qb = *qj = -1;
    for (int i = 1; i < *argc; i++) {
        int is_b = strcmp(argv[i], "--quota-bytes") == 0;
        int is_j = strcmp(argv[i], "--quota-jobs") == 0;
        if ((is_b || is_j) && i + 1 < *argc) {
            char *end;
            errno = 0;
            double v = strtod(argv[i + 1], &end);
            double mult = 1;
            switch (*end) {
            case 'K':
            case 'k':
                mult = 1024.0;
                end++;
                break;
            case 'M':
            case 'm':
                mult = 1048576.0;
                end++;
                break;
            case 'G':
            case 'g':
                mult = 1073741824.0;
                end++;
                break;
            case 'T':
            case 't':
                mult = 1099511627776.0;
                end++;
                break;
            default:
                break;
            }
            if (errno != 0 || end == argv[i + 1] || *end != '\0' || v < 0 || v * mult > 9e18 ||
                (is_j && mult != 1)) {
                fprintf(stderr, "modelpressd token: %s %s is not a valid amount\n", argv[i],
                        argv[i + 1]);
                return -1;
            }
            *(is_b ? qb : qj) = (int64_t)(v * mult);
            i++;
            continue;
        }
        argv[j++] = argv[i];
    }
    *argc = j;
    return 0;
}

static void quota_text(int64_t v, int64_t server_default, char *buf, size_t n)
{
    if (v < 0) {
        if (server_default > 0) {
            snprintf(buf, n, "default (%lld)", (long long)server_default);
        } else {
            snprintf(buf, n, "default (none)");
        }
    } else {
        snprintf(buf, n, "%lld", (long long)v);
    }
}

int dmn_token_main(int argc, char **argv)
{
    dmn_config_t cfg;
    char *pos[3];
    int n_pos = 3, rc, status = 2;
    int64_t qb, qj;
    db_t *db = NULL;
    char errbuf[512], path[4200];

    if (take_quota_flags(&argc, argv, &qb, &qj) != 0) {
        return 2;
    }
    rc = dmn_config_load(&cfg, argc, argv, pos, &n_pos);
    if (rc != 0) {
        dmn_config_cleanup(&cfg);
        return rc > 0 ? 0 : 2;
    }
    const char *verb = n_pos > 0 ? pos[0] : "";
    int wants_name = strcmp(verb, "add") == 0 || strcmp(verb, "revoke") == 0;
    if (!(wants_name && n_pos == 2) && !(strcmp(verb, "list") == 0 && n_pos == 1)) {
        fprintf(stderr, "usage: modelpressd token add NAME [--quota-bytes N] [--quota-jobs N]\n"
                        "       modelpressd token list\n"
                        "       modelpressd token revoke NAME\n"
                        "(with the service's --state-dir or --config)\n");
        goto out;
    }
    if (mkdir(cfg.state_dir, 0750) != 0 && errno != EEXIST) {
        fprintf(stderr, "modelpressd token: cannot create state-dir %s: %s\n", cfg.state_dir,
                strerror(errno));
        status = 1;
        goto out;
    }
    snprintf(path, sizeof path, "%s/modelpress.db", cfg.state_dir);
    if (db_open(path, &db, errbuf, sizeof errbuf) != 0) {
        fprintf(stderr, "modelpressd token: cannot open %s: %s\n", path, errbuf);
        status = 1;
        goto out;
    }
    status = 1;
    if (strcmp(verb, "add") == 0) {
        char token[API_TOKEN_CHARS + 1], hex[65];
        if (api_token_new(token, sizeof token) != 0) {
            fprintf(stderr, "modelpressd token: no randomness for a token\n");
            goto out;
        }
        api_token_hash(token, hex);
        if (db_user_add(db, pos[1], hex, qb, qj) != 0) {
            fprintf(stderr, "modelpressd token: %s\n", db_errmsg(db));
            status = 2;
            goto out;
        }
        /* The token on stdout alone, so scripts can capture it; the advice on stderr. */
        printf("%s\n", token);
        fprintf(stderr,
                "Token for '%s' (shown once; only its SHA-256 is stored). Use it as\n"
                "  curl -H 'Authorization: Bearer %s' ...\n",
                pos[1], token);
    } else if (strcmp(verb, "revoke") == 0) {
        if (db_user_delete(db, pos[1]) != 0) {
            fprintf(stderr, "modelpressd token: %s\n", db_errmsg(db));
            goto out;
        }
        fprintf(stderr, "Token of '%s' revoked; their jobs stay.\n", pos[1]);
    } else {
        db_user_t *users = NULL;
        size_t n = 0;
        if (db_user_list(db, &users, &n) != 0) {
            fprintf(stderr, "modelpressd token: %s\n", db_errmsg(db));
            goto out;
        }
        printf("%-24s %-20s %-22s %s\n", "NAME", "CREATED (UTC)", "QUOTA BYTES", "QUOTA JOBS");
        for (size_t i = 0; i < n; i++) {
            char when[32], b[40], j[40];
            time_t t = (time_t)users[i].created_at;
            struct tm tm;
            gmtime_r(&t, &tm);
            strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
            quota_text(users[i].quota_bytes, cfg.quota_bytes, b, sizeof b);
            quota_text(users[i].quota_jobs, cfg.quota_jobs, j, sizeof j);
            printf("%-24s %-20s %-22s %s\n", users[i].name, when, b, j);
        }
        free(users);
    }
    status = 0;
out:
    db_close(db);
    dmn_config_cleanup(&cfg);
    return status;
}
