#!/bin/sh
# test_load.sh — RELIABILITY.md item 14: 200 concurrent connections on loopback (wrk) against
# GET /jobs/{id} and GET /jobs: no socket errors, no non-2xx answers, and the loop stays
# responsive (a /healthz request made during the load answers within a second). Short (5 s per
# route) so make check stays quick; bench/load.sh runs the 30 s version and records the figures.
. "$top_srcdir/tests/lib/common.sh"
mp_require_cmd curl wrk
mp_require_numpy
mp_tmpdir
ulimit -n 4096 2>/dev/null || :
mp_start_daemon "$MP_TMP/state" --workers 1 --max-connections 1000 --per-ip-connections 0
st=$(mp_http "$MP_TMP/p" -F model=@"$top_srcdir/tests/fixtures/fmnist_mlp.safetensors" \
    -F 'recipe={"steps":[{"quantize":{"bits":8}}]}' "$MP_URL/jobs")
[ "$st" = 202 ] || mp_fail "POST /jobs: $st"
id=$(mp_json "$MP_TMP/p" 'd["id"]')
for route in "/jobs/$id" "/jobs"; do
    wrk -t2 -c200 -d5s --timeout 5s "$MP_URL$route" >"$MP_TMP/wrk" 2>&1 &
    wrkpid=$!
    sleep 2
    t0=$(date +%s%N)
    st=$(mp_http "$MP_TMP/h" --max-time 5 "$MP_URL/healthz")
    t1=$(date +%s%N)
    wait "$wrkpid" || mp_fail "wrk failed: $(cat "$MP_TMP/wrk")"
    ms=$(( (t1 - t0) / 1000000 ))
    [ "$st" = 200 ] || mp_fail "/healthz during the load on $route: $st"
    [ "$ms" -lt 1000 ] || mp_fail "/healthz took $ms ms during the load on $route"
    grep -q "Socket errors" "$MP_TMP/wrk" && mp_fail "socket errors on $route: $(cat "$MP_TMP/wrk")"
    grep -q "Non-2xx" "$MP_TMP/wrk" && mp_fail "non-2xx answers on $route: $(cat "$MP_TMP/wrk")"
    rps=$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' "$MP_TMP/wrk")
    [ -n "$rps" ] || mp_fail "no request rate from wrk: $(cat "$MP_TMP/wrk")"
    mp_log "$route: $rps requests/s with 200 connections, /healthz meanwhile in $ms ms"
done
mp_stop_daemon || mp_fail "SIGTERM: exit status $MP_DAEMON_STATUS"
exit 0
