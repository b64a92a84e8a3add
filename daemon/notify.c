/* notify.c — telling systemd how the service is (Type=notify).
 *
 * READY=1 once the socket is bound and the database is open, STOPPING=1 when SIGTERM starts the
 * drain, and WATCHDOG=1 at half the WatchdogSec= interval from a loop timer, so a wedged loop
 * thread is restarted by systemd. Outside systemd (no NOTIFY_SOCKET) every call is a no-op.
 */
#include "daemon/dmn_int.h"

#include <stdio.h>
#include <systemd/sd-daemon.h>

static uv_timer_t watchdog;
static int watchdog_on;

static void watchdog_cb(uv_timer_t *t)
{
    sd_notify(0, "WATCHDOG=1");
}

void dmn_notify_ready(uv_loop_t *loop, const char *url)
{
    uint64_t usec = 0;
    sd_notifyf(0, "READY=1\nSTATUS=listening on %s", url);
    if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
        uv_timer_init(loop, &watchdog);
        uv_timer_start(&watchdog, watchdog_cb, usec / 2000, usec / 2000);
        watchdog_on = 1;
    }
}

void dmn_notify_stopping(void)
{
    /* The watchdog timer keeps running through the drain; dmn_notify_close() ends it. */
    sd_notify(0, "STOPPING=1\nSTATUS=handing running jobs back to the queue");
}

void dmn_notify_close(void)
{
    if (watchdog_on) {
        uv_timer_stop(&watchdog);
        uv_close((uv_handle_t *)&watchdog, NULL);
        watchdog_on = 0;
    }
}
