#!/bin/sh
# test_e2e.sh — the service end to end: the real modelpressd on a free loopback port compresses
# the trained fixture (prune 50% then int8) through the HTTP API, and the result is judged
# element by element against the original (check_result.py).
#
# Then the refusals RELIABILITY.md asks for (a truncated model, an impossible recipe, an unknown
# job) must each be a clean 4xx with an error JSON, create no job, and leave the daemon serving.
# Finally the `modelpress compress` command must report the same compressed size as the daemon,
# and SIGTERM must stop the daemon with exit status 0.
# Run by `make check` with MODELPRESSD, MODELPRESS, top_srcdir and top_builddir exported; by hand:
#   top_builddir=build top_srcdir=. tests/integration/test_e2e.sh
# Skips (77) only when curl or /usr/bin/python3 with NumPy is missing.

: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${top_builddir:=$top_srcdir}"
: "${MODELPRESSD:=$top_builddir/daemon/modelpressd}"
: "${MODELPRESS:=$top_builddir/cli/modelpress}"
. "$top_srcdir/tests/lib/common.sh"

mp_require_cmd curl
mp_require_numpy
mp_tmpdir

FIXTURE=$top_srcdir/tests/fixtures/fmnist_mlp.safetensors
RECIPE='{"steps":[{"prune":{"sparsity":0.5}},{"quantize":{"bits":8}}]}'
T=$MP_TMP

# expect_status WANTED GOT WHAT BODYFILE: fail with the body when the status is not WANTED
# (WANTED may list alternatives: "415|422").
expect_status() {
    case "|$1|" in
    *"|$2|"*) ;;
    *) mp_fail "$3: HTTP $2, expected $1; body: $(head -c 600 "$4")" ;;
    esac
}

# expect_error FILE WHAT: the body is {"error":{"code":"…","message":"…"}} with both non-empty;
# prints the message.
expect_error() {
    "$MP_PYTHON" - "$1" <<'EOF' || mp_fail "$2: not an error JSON: $(head -c 600 "$1")"
import json, sys
e = json.load(open(sys.argv[1]))["error"]
assert isinstance(e["code"], str) and e["code"], e
assert isinstance(e["message"], str) and e["message"], e
print(e["message"])
EOF
}

# Prints how many jobs GET /jobs counts; leaves the body in $T/list.json.
job_count() {
    st=$(mp_http "$T/list.json" "$MP_URL/jobs")
    expect_status 200 "$st" "GET /jobs" "$T/list.json"
    mp_json "$T/list.json" 'd["total"] if isinstance(d, dict) else len(d)'
}

mp_start_daemon "$T/state"

st=$(mp_http "$T/health.json" "$MP_URL/healthz")
expect_status 200 "$st" "GET /healthz" "$T/health.json"

# ---- the happy path ------------------------------------------------------------------------
st=$(mp_http "$T/post.json" -F "model=@$FIXTURE" -F "recipe=$RECIPE" "$MP_URL/jobs")
expect_status 202 "$st" "POST /jobs" "$T/post.json"
"$MP_PYTHON" - "$T/post.json" <<'EOF' || mp_fail "POST /jobs answered an unexpected job: $(cat "$T/post.json")"
import json, re, sys
j = json.load(open(sys.argv[1]))
for k in ("id", "state", "progress", "stage", "created_at"):
    assert k in j, "no field %r" % k
assert re.fullmatch(r"[0-9a-f]{32}", j["id"]), j["id"]
assert j["state"] in ("queued", "running", "succeeded"), j["state"]
assert isinstance(j["progress"], (int, float)) and 0 <= j["progress"] <= 1, j["progress"]
EOF
ID=$(mp_json "$T/post.json" 'd["id"]') || exit 1
mp_log "job $ID accepted"

# Poll for up to 60 s.
i=0
while :; do
    st=$(mp_http "$T/job.json" "$MP_URL/jobs/$ID")
    expect_status 200 "$st" "GET /jobs/$ID" "$T/job.json"
    state=$(mp_json "$T/job.json" 'd["state"]') || exit 1
    case "$state" in
    succeeded) break ;;
    failed | canceled) mp_fail "job $ID $state: $(mp_json "$T/job.json" 'd.get("error")')" ;;
    queued | running) ;;
    *) mp_fail "job $ID in unknown state '$state'" ;;
    esac
    i=$((i + 1))
    [ "$i" -le 300 ] || mp_fail "job $ID still $state after 60 s: $(cat "$T/job.json")"
    sleep 0.2
done
progress=$(mp_json "$T/job.json" 'd["progress"]') || exit 1
[ "$progress" = 1 ] || [ "$progress" = 1.0 ] || mp_fail "job succeeded with progress $progress, expected 1"
mp_log "job $ID succeeded after $i polls"

st=$(mp_http "$T/result.safetensors" "$MP_URL/jobs/$ID/result")
expect_status 200 "$st" "GET /jobs/$ID/result" "$T/result.safetensors"
st=$(mp_http "$T/report.json" "$MP_URL/jobs/$ID/report")
expect_status 200 "$st" "GET /jobs/$ID/report" "$T/report.json"
"$MP_PYTHON" "$top_srcdir/tests/integration/check_result.py" "$FIXTURE" "$T/result.safetensors" \
    "$T/report.json" --sparsity 0.5 || mp_fail "the daemon's result does not hold (above)"

n=$(job_count) || exit 1
[ "$n" = 1 ] || mp_fail "GET /jobs counts $n jobs, expected 1"
"$MP_PYTHON" - "$T/list.json" "$ID" <<'EOF' || mp_fail "GET /jobs does not list $ID as succeeded: $(head -c 600 "$T/list.json")"
import json, sys
d = json.load(open(sys.argv[1]))
jobs = d["jobs"] if isinstance(d, dict) else d
assert [j["state"] for j in jobs if j["id"] == sys.argv[2]] == ["succeeded"], jobs
EOF

# ---- refusals ------------------------------------------------------------------------------
head -c 1000 "$FIXTURE" >"$T/truncated.safetensors"
st=$(mp_http "$T/trunc.json" -F "model=@$T/truncated.safetensors" -F "recipe=$RECIPE" "$MP_URL/jobs")
expect_status "415|422" "$st" "POST /jobs with the first 1000 bytes of the model" "$T/trunc.json"
msg=$(expect_error "$T/trunc.json" "truncated model") || exit 1
# The data section holds 176 of 940,584 bytes: the message must name the tensor that does not
# fit or the byte counts involved.
case "$msg" in
*fc[123].weight* | *fc[123].bias* | *1000* | *176*) ;;
*) mp_fail "truncated model refused with '$msg', which names neither a tensor nor a size" ;;
esac
mp_log "truncated model: HTTP $st: $msg"

st=$(mp_http "$T/bits.json" -F "model=@$FIXTURE" -F 'recipe={"steps":[{"quantize":{"bits":33}}]}' \
    "$MP_URL/jobs")
expect_status 400 "$st" "POST /jobs with bits 33" "$T/bits.json"
msg=$(expect_error "$T/bits.json" "bits 33") || exit 1
case "$msg" in
*bits*) ;;
*) mp_fail "bits 33 refused with '$msg', which does not name the field bits" ;;
esac
mp_log "bits 33: HTTP $st: $msg"

for path in jobs/0123456789abcdef0123456789abcdef jobs/0123456789abcdef0123456789abcdef/result \
    jobs/no-such-job; do
    st=$(mp_http "$T/unknown.json" "$MP_URL/$path")
    expect_status 404 "$st" "GET /$path" "$T/unknown.json"
    expect_error "$T/unknown.json" "GET /$path" >/dev/null || exit 1
done

n=$(job_count) || exit 1
[ "$n" = 1 ] || mp_fail "after the refusals GET /jobs counts $n jobs, expected 1"
st=$(mp_http "$T/health.json" "$MP_URL/healthz")
expect_status 200 "$st" "GET /healthz after the refusals" "$T/health.json"

# ---- the command gives the same figures ----------------------------------------------------
printf '%s\n' "$RECIPE" >"$T/recipe.json"
"$MODELPRESS" compress "$FIXTURE" -r "$T/recipe.json" -o "$T/cli.safetensors" --json \
    >"$T/cli.json" 2>"$T/cli.err" ||
    mp_fail "modelpress compress exited $?: $(cat "$T/cli.err")"
"$MP_PYTHON" - "$T/report.json" "$T/cli.json" <<'EOF' || mp_fail "modelpress compress --json and the daemon disagree"
import json, sys
d, c = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
for k in ("bytes_before", "bytes_after"):
    print("%s: daemon %r, command %r" % (k, d.get(k), c.get(k)))
    assert isinstance(d.get(k), int) and d.get(k) == c.get(k), k
EOF
cmp -s "$T/cli.safetensors" "$T/result.safetensors" &&
    mp_log "the command's output is byte-identical to the daemon's"

# ---- SIGTERM -------------------------------------------------------------------------------
mp_stop_daemon
[ "$MP_DAEMON_STATUS" -eq 0 ] || mp_fail "modelpressd exited with status $MP_DAEMON_STATUS on SIGTERM"
mp_log "PASS"
exit 0
