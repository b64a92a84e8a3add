#!/bin/sh
# load.sh — the service under load (issue 7): wrk with 200 connections for 30 s on
# GET /jobs/{id} and on GET /jobs, requests/s and p99 latency; then a 1 GB upload while the
# daemon's resident memory is sampled (uploads stream to disk: it must stay under 64 MB).
#
#   bench/load.sh [BUILD_DIR] [SECONDS]        (defaults: ./build, 30)
#
# Needs wrk and curl (Debian packages). Traffic goes to 127.0.0.1 only. Run it on a quiet
# machine: the figures are for comparing runs on the same machine.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build}
secs=${2:-30}
daemon=$build/daemon/modelpressd
[ -x "$daemon" ] || { echo "load.sh: build first ($daemon is missing)" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
ulimit -n 8192 2>/dev/null || :
"$daemon" --listen 127.0.0.1:0 --state-dir "$tmp/state" --workers 1 --per-ip-connections 0 \
    --upload-max 2G --log-level warning >"$tmp/out" 2>"$tmp/err" &
pid=$!
while [ ! -s "$tmp/out" ]; do sleep 0.05; done
url=$(sed -n 's/^modelpressd listening on \(http:[^ ]*\)\/$/\1/p' "$tmp/out")
id=$(curl -sS -F model=@"$top/tests/fixtures/fmnist_mlp.safetensors" \
    -F 'recipe={"steps":[{"quantize":{"bits":8}}]}' "$url/jobs" |
    /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
sleep 1
printf '%-22s %12s %10s %10s %8s\n' route requests/s p50 p99 errors
for route in "/jobs/$id" "/jobs"; do
    wrk -t2 -c200 -d"${secs}s" --latency "$url$route" >"$tmp/wrk" 2>&1
    rps=$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' "$tmp/wrk")
    p50=$(awk '$1 == "50%" {print $2}' "$tmp/wrk")
    p99=$(awk '$1 == "99%" {print $2}' "$tmp/wrk")
    errs=$(sed -n 's/.*Socket errors: \(.*\)/\1/p; s/.*Non-2xx or 3xx responses: \([0-9]*\)/non-2xx \1/p' "$tmp/wrk")
    case $route in /jobs/*) name="GET /jobs/{id}" ;; *) name="GET /jobs" ;; esac
    printf '%-22s %12s %10s %10s %8s\n' "$name" "$rps" "$p50" "$p99" "${errs:-0}"
done
# 1 GB upload (not a model: it is refused with 422 once stored and read), RSS sampled meanwhile.
# Measured after the wrk runs, so the figure includes what 200 connections left allocated.
dd if=/dev/zero of="$tmp/big" bs=1M count=1024 2>/dev/null
curl -sS -o /dev/null -X POST -T "$tmp/big" -H 'Content-Type: application/octet-stream' \
    "$url/jobs?recipe=%7B%22steps%22%3A%5B%7B%22quantize%22%3A%7B%22bits%22%3A8%7D%7D%5D%7D" &
cpid=$!
peak=0
while kill -0 "$cpid" 2>/dev/null; do
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
    [ "$rss" -gt "$peak" ] && peak=$rss
    sleep 0.05
done
wait "$cpid" || echo "load.sh: the upload failed" >&2
echo "1 GB upload: daemon resident memory peak $((peak / 1024)) MB while it streamed (limit 64 MB)"
