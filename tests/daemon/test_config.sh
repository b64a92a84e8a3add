#!/bin/sh
# test_config.sh — modelpressd's configuration: file < environment < flags, --help generated
# from the option table, and invalid values refused (exit 2, naming the option) before any
# socket is bound.
. "$top_srcdir/tests/lib/common.sh"
mp_require_cmd curl
mp_tmpdir

# --help lists every option with its environment variable; --version names the version.
"$MODELPRESSD" --help >"$MP_TMP/help" || mp_fail "--help exited $?"
for opt in listen state-dir workers upload-max connection-timeout max-connections \
    per-ip-connections stop-timeout log-level; do
    grep -q -- "--$opt" "$MP_TMP/help" || mp_fail "--help does not list --$opt"
done
grep -q MODELPRESS_UPLOAD_MAX "$MP_TMP/help" || mp_fail "--help does not name MODELPRESS_UPLOAD_MAX"
"$MODELPRESSD" --version | grep -q '^modelpressd [0-9]' || mp_fail "--version"

# Refused before binding: status 2 and the option named on stderr.
expect_refused() {
    what=$1
    shift
    if "$@" >"$MP_TMP/out" 2>"$MP_TMP/err"; then
        mp_fail "$what: accepted"
    else
        st=$?
    fi
    [ "$st" -eq 2 ] || mp_fail "$what: exit $st, expected 2 ($(cat "$MP_TMP/err"))"
    [ ! -s "$MP_TMP/out" ] || mp_fail "$what: printed a listening line: $(cat "$MP_TMP/out")"
}
expect_refused "workers=-1" "$MODELPRESSD" --workers -1 --state-dir "$MP_TMP/s"
grep -q "workers" "$MP_TMP/err" || mp_fail "workers=-1: message does not name the option"
expect_refused "unknown flag" "$MODELPRESSD" --frobnicate 1
grep -q "frobnicate" "$MP_TMP/err" || mp_fail "unknown flag not named"
expect_refused "bad size" env MODELPRESS_UPLOAD_MAX=lots "$MODELPRESSD" --state-dir "$MP_TMP/s"
grep -q "MODELPRESS_UPLOAD_MAX" "$MP_TMP/err" || mp_fail "bad env value: source not named"
printf 'listen = 127.0.0.1:0\nno_such_option = 3\n' >"$MP_TMP/bad.conf"
expect_refused "bad config file" "$MODELPRESSD" --config "$MP_TMP/bad.conf"
grep -q "bad.conf:2" "$MP_TMP/err" || mp_fail "config error does not give file:line"
expect_refused "bad listen" "$MODELPRESSD" --listen "nonsense" --state-dir "$MP_TMP/s"

# Precedence: the file sets the cap to 1 KiB and 3 workers, the environment raises the cap to
# 2 KiB, the flag sets the log level. Observed through the API: 413 above 2 KiB, not above 1.
cat >"$MP_TMP/ok.conf" <<CONF
# a comment
upload_max = 1K
workers = 3
log-level = error
CONF
MODELPRESS_UPLOAD_MAX=2K mp_start_daemon "$MP_TMP/state" --config "$MP_TMP/ok.conf" \
    --log-level info
head -c 1500 /dev/zero >"$MP_TMP/1500"
head -c 2500 /dev/zero >"$MP_TMP/2500"
recipe='%7B%22steps%22%3A%5B%7B%22quantize%22%3A%7B%22bits%22%3A8%7D%7D%5D%7D'
st=$(mp_http "$MP_TMP/r1" -H 'Content-Type: application/octet-stream' \
    --data-binary @"$MP_TMP/2500" "$MP_URL/jobs?recipe=$recipe")
[ "$st" = 413 ] || mp_fail "2500 bytes with upload_max 2K (env over file): status $st"
st=$(mp_http "$MP_TMP/r2" -H 'Content-Type: application/octet-stream' \
    --data-binary @"$MP_TMP/1500" "$MP_URL/jobs?recipe=$recipe")
[ "$st" = 422 ] || mp_fail "1500 zero bytes under the 2K cap: status $st, expected 422 (not a model)"
# The flag's log level (info) beat the file's (error): request lines are logged.
grep -q "POST /jobs route=/jobs status=422" "$MP_DAEMON_ERR" || mp_fail "log-level flag did not win over the file"
mp_stop_daemon || mp_fail "SIGTERM: exit status $MP_DAEMON_STATUS"
# mp_start_daemon passes --workers 2, which beats the file's 3.
grep -q "workers=2 " "$MP_DAEMON_ERR" || mp_fail "the --workers flag did not win over the file"
exit 0
