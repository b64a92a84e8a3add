# common.sh — helpers for the shell tests (POSIX sh; sourced, never run).
#
# A test sources this file, calls mp_tmpdir once, and may then start the real daemon on a free
# loopback port with mp_start_daemon. Whatever happens, the exit trap stops the daemon (SIGTERM,
# then SIGKILL after a bounded wait), prints its output when the test failed, and removes the
# temporary folder. Exit statuses follow automake's test protocol: 0 pass, 1 fail, 77 skip.
#
# Set by the helpers: MP_TMP (the temporary folder), MP_URL (the daemon's base URL, no trailing
# slash), MP_DAEMON_PID (empty when no daemon runs), MP_DAEMON_OUT / MP_DAEMON_ERR (its logs).

MP_TMP=
MP_URL=
MP_DAEMON_PID=
MP_DAEMON_OUT=
MP_DAEMON_ERR=
MP_PYTHON=/usr/bin/python3

mp_log() {
    printf '%s: %s\n' "${0##*/}" "$*"
}

# Fail the test with a message (on stderr and in the test log).
mp_fail() {
    printf '%s: FAIL: %s\n' "${0##*/}" "$*" >&2
    exit 1
}

# Skip the test, loudly: a skip hides a whole test, so the reason must be impossible to miss.
mp_skip() {
    printf '%s: ************************************************************\n' "${0##*/}" >&2
    printf '%s: SKIP: %s\n' "${0##*/}" "$*" >&2
    printf '%s: ************************************************************\n' "${0##*/}" >&2
    exit 77
}

# Skip unless each named command is on PATH.
mp_require_cmd() {
    for mp__c in "$@"; do
        command -v "$mp__c" >/dev/null 2>&1 || mp_skip "$mp__c is not installed (apt-get install $mp__c)"
    done
}

# Skip unless Debian's python3 has NumPy (the pyenv python3 on PATH may not).
mp_require_numpy() {
    [ -x "$MP_PYTHON" ] || mp_skip "$MP_PYTHON is missing (apt-get install python3-numpy)"
    "$MP_PYTHON" -c 'import numpy' 2>/dev/null ||
        mp_skip "$MP_PYTHON cannot import numpy (apt-get install python3-numpy)"
}

mp__cleanup() {
    mp__status=$?
    trap - EXIT
    if [ -n "$MP_DAEMON_PID" ]; then
        mp_stop_daemon >/dev/null 2>&1 || :
    fi
    if [ "$mp__status" -ne 0 ] && [ "$mp__status" -ne 77 ]; then
        mp_print_daemon_log
    fi
    if [ -n "$MP_TMP" ]; then
        rm -rf "$MP_TMP"
    fi
    exit "$mp__status"
}

# Make MP_TMP, removed (with everything in it, the daemon stopped first) when the test exits.
mp_tmpdir() {
    MP_TMP=$(mktemp -d "${TMPDIR:-/tmp}/mp-test.XXXXXX") || mp_fail "mktemp -d failed"
    trap mp__cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

mp_print_daemon_log() {
    for mp__f in "$MP_DAEMON_OUT" "$MP_DAEMON_ERR"; do
        if [ -n "$mp__f" ] && [ -s "$mp__f" ]; then
            printf '%s: ---- %s ----\n' "${0##*/}" "${mp__f##*/}" >&2
            tail -n 200 "$mp__f" >&2
        fi
    done
}

# mp_start_daemon STATE_DIR [extra options…]: start $MODELPRESSD on 127.0.0.1:0 and wait up to
# 10 s for its first stdout line, "modelpressd listening on http://127.0.0.1:PORT/", which gives
# MP_URL. Fails the test if the daemon exits or does not print that line in time.
mp_start_daemon() {
    [ -n "$MP_TMP" ] || mp_fail "mp_start_daemon before mp_tmpdir"
    [ -x "$MODELPRESSD" ] || mp_fail "MODELPRESSD='$MODELPRESSD' is not an executable"
    mp__state=$1
    shift
    MP_DAEMON_OUT=$MP_TMP/daemon.out
    MP_DAEMON_ERR=$MP_TMP/daemon.err
    : >"$MP_DAEMON_OUT"
    "$MODELPRESSD" --listen 127.0.0.1:0 --state-dir "$mp__state" --workers 2 "$@" \
        >"$MP_DAEMON_OUT" 2>"$MP_DAEMON_ERR" &
    MP_DAEMON_PID=$!
    mp__i=0
    while :; do
        # Only a complete line counts: the daemon may be halfway through writing it.
        if [ "$(wc -l <"$MP_DAEMON_OUT")" -ge 1 ]; then
            break
        fi
        if ! kill -0 "$MP_DAEMON_PID" 2>/dev/null; then
            wait "$MP_DAEMON_PID"
            mp__rc=$?
            MP_DAEMON_PID=
            mp_fail "modelpressd exited with status $mp__rc before printing its address"
        fi
        mp__i=$((mp__i + 1))
        [ "$mp__i" -le 100 ] || mp_fail "modelpressd printed no line within 10 s"
        sleep 0.1
    done
    mp__line=$(head -n 1 "$MP_DAEMON_OUT")
    case "$mp__line" in
    "modelpressd listening on http://127.0.0.1:"*/) ;;
    *) mp_fail "first line of modelpressd is '$mp__line', expected 'modelpressd listening on http://127.0.0.1:PORT/'" ;;
    esac
    MP_URL=${mp__line#modelpressd listening on }
    MP_URL=${MP_URL%/}
    mp__port=${MP_URL##*:}
    case "$mp__port" in
    "" | *[!0-9]* | 0) mp_fail "no port in '$mp__line'" ;;
    esac
    mp_log "daemon pid $MP_DAEMON_PID at $MP_URL/"
}

# Stop the daemon: SIGTERM, then SIGKILL if it is still there after 15 s. Returns (and leaves
# in MP_DAEMON_STATUS) its exit status; 0 when no daemon runs.
mp_stop_daemon() {
    MP_DAEMON_STATUS=0
    [ -n "$MP_DAEMON_PID" ] || return 0
    kill -TERM "$MP_DAEMON_PID" 2>/dev/null
    mp__i=0
    while kill -0 "$MP_DAEMON_PID" 2>/dev/null; do
        mp__i=$((mp__i + 1))
        if [ "$mp__i" -gt 150 ]; then
            mp_log "modelpressd did not stop within 15 s of SIGTERM; sending SIGKILL" >&2
            kill -KILL "$MP_DAEMON_PID" 2>/dev/null
            break
        fi
        sleep 0.1
    done
    wait "$MP_DAEMON_PID"
    MP_DAEMON_STATUS=$?
    MP_DAEMON_PID=
    return "$MP_DAEMON_STATUS"
}

# mp_http OUTFILE curl-arguments…: run curl with the body to OUTFILE and print the HTTP status
# (000 when the connection failed). Headers go to OUTFILE.headers.
mp_http() {
    mp__out=$1
    shift
    curl -sS --max-time 60 -o "$mp__out" -D "$mp__out.headers" -w '%{http_code}' "$@" || :
}

# mp_json FILE EXPR: evaluate the Python expression EXPR with d = the JSON document in FILE and
# print it (strings raw, everything else as JSON). Returns 1 (with the reason on stderr) when
# FILE is not JSON or EXPR fails, so use it as `v=$(mp_json F 'd["id"]') || exit 1`.
mp_json() {
    "$MP_PYTHON" - "$1" "$2" <<'EOF' || mp_fail "cannot evaluate $2 on $1: $(head -c 400 "$1")"
import json, sys
with open(sys.argv[1], "rb") as f:
    d = json.load(f)
v = eval(sys.argv[2], {"d": d})
print(v if isinstance(v, str) else json.dumps(v))
EOF
}
