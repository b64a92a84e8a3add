#!/bin/sh
# test_notify.sh — Type=notify: under a NOTIFY_SOCKET the daemon sends READY=1 once it serves,
# WATCHDOG=1 at half of WATCHDOG_USEC, and STOPPING=1 when SIGTERM starts the drain.
. "$top_srcdir/tests/lib/common.sh"
mp_require_cmd curl
[ -x "$MP_PYTHON" ] || mp_skip "$MP_PYTHON is missing"
mp_tmpdir
sock=$MP_TMP/notify.sock
# A listener standing in for systemd: it records every datagram, one per line.
"$MP_PYTHON" - "$sock" "$MP_TMP/notes" <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(30)
with open(sys.argv[2], "a") as out:
    try:
        while True:
            msg = s.recv(4096).decode()
            out.write(msg.replace("\n", " ") + "\n")
            out.flush()
            if "STOPPING=1" in msg:
                break
    except socket.timeout:
        pass
PY
listener=$!
i=0
while [ ! -S "$sock" ]; do
    i=$((i + 1))
    [ $i -lt 100 ] || mp_fail "the stand-in notify socket did not appear"
    sleep 0.05
done
NOTIFY_SOCKET=$sock WATCHDOG_USEC=400000 mp_start_daemon "$MP_TMP/state"
sleep 0.6
grep -q "READY=1" "$MP_TMP/notes" || mp_fail "no READY=1: $(cat "$MP_TMP/notes")"
grep -q "STATUS=listening on $MP_URL" "$MP_TMP/notes" || mp_fail "no STATUS line with the URL"
n=$(grep -c "WATCHDOG=1" "$MP_TMP/notes")
[ "$n" -ge 2 ] || mp_fail "expected WATCHDOG=1 every 0.2 s, got $n in 0.6 s"
mp_stop_daemon || mp_fail "SIGTERM: exit status $MP_DAEMON_STATUS"
wait "$listener"
grep -q "STOPPING=1" "$MP_TMP/notes" || mp_fail "no STOPPING=1 on SIGTERM"
exit 0
