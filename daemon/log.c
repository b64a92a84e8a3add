/* log.c — modelpressd's log: one line per event on stderr.
 *
 * Under systemd (JOURNAL_STREAM is set) each line starts with the <N> priority prefix the journal
 * understands; on a terminal or in a file it starts with a UTC timestamp and the level's name.
 * log_at() checks the level before formatting anything.
 */
#include "daemon/dmn_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int threshold = LOG_INFO_;

static const struct {
    const char *name;
    int level;
} levels[] = {
    {"error", LOG_ERR_}, {"warning", LOG_WARN_}, {"info", LOG_INFO_}, {"debug", LOG_DEBUG_}};

int dmn_log_set_level(const char *name)
{
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++) {
        if (strcmp(levels[i].name, name) == 0) {
            threshold = levels[i].level;
            return 0;
        }
    }
    return -1;
}

int dmn_log_enabled(int level)
{
    return level <= threshold;
}

void dmn_log_at(int level, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (getenv("JOURNAL_STREAM") != NULL) {
        fprintf(stderr, "<%d>%s\n", level, msg);
        return;
    }
    const char *name = "info";
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++) {
        if (levels[i].level == level) {
            name = levels[i].name;
        }
    }
    struct timespec ts;
    struct tm tm;
    char when[32];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(stderr, "%s.%03ldZ %s %s\n", when, ts.tv_nsec / 1000000, name, msg);
}
