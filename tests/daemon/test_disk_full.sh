#!/bin/sh
# test_disk_full.sh — RELIABILITY.md item 16: the state folder on a small tmpfs fills up during an
# upload and during a result write. The upload gets 507 and leaves no file and no row; the job
# whose result cannot be written fails with ENOSPC and leaves no partial result; the daemon
# serves on. Needs root (mount); skips loudly without it.
. "$top_srcdir/tests/lib/common.sh"
mp_require_cmd curl
mp_require_numpy
mp_tmpdir
mkdir -p "$MP_TMP/state"
if [ "$(id -u)" -ne 0 ] || ! mount -t tmpfs -o size=3m tmpfs "$MP_TMP/state" 2>/dev/null; then
    mp_skip "cannot mount a small tmpfs here (needs root and mount permission)"
fi
umount_state() {
    mp_stop_daemon >/dev/null 2>&1 || :
    umount "$MP_TMP/state" 2>/dev/null || :
}
trap 'st=$?; umount_state; mp__cleanup_with "$st"' EXIT
mp__cleanup_with() {
    (exit "$1")
    mp__cleanup
}

"$MP_PYTHON" "$top_srcdir/tests/daemon/make_model.py" "$MP_TMP/big.st" 4 512 512 # 4 MiB
"$MP_PYTHON" "$top_srcdir/tests/daemon/make_model.py" "$MP_TMP/two.st" 2 512 512 # 2 MiB
mp_start_daemon "$MP_TMP/state" --workers 1

# 1. An upload larger than the free space: 507, nothing left in tmp/ or blobs/, no job.
st=$(mp_http "$MP_TMP/r1" -F model=@"$MP_TMP/big.st" \
    -F 'recipe={"steps":[{"quantize":{"bits":8}}]}' "$MP_URL/jobs")
[ "$st" = 507 ] || mp_fail "upload into a full disk: status $st ($(cat "$MP_TMP/r1"))"
code=$(mp_json "$MP_TMP/r1" 'd["error"]["code"]')
[ "$code" = insufficient_storage ] || mp_fail "error code $code"
[ -z "$(ls -A "$MP_TMP/state/tmp")" ] || mp_fail "files left in tmp/: $(ls "$MP_TMP/state/tmp")"
[ -z "$(find "$MP_TMP/state/blobs" -type f)" ] || mp_fail "a partial blob was kept"
st=$(mp_http "$MP_TMP/l" "$MP_URL/jobs")
[ "$(mp_json "$MP_TMP/l" 'd["total"]')" = 0 ] || mp_fail "a job row was created"

# 2. A 2 MiB model fits; its result (pruned, stored dense: the same 2 MiB) does not.
st=$(mp_http "$MP_TMP/r2" -F model=@"$MP_TMP/two.st" \
    -F 'recipe={"steps":[{"prune":{"sparsity":0.5}}]}' "$MP_URL/jobs")
[ "$st" = 202 ] || mp_fail "2 MiB upload: status $st ($(cat "$MP_TMP/r2"))"
id=$(mp_json "$MP_TMP/r2" 'd["id"]')
i=0
while :; do
    mp_http "$MP_TMP/j" "$MP_URL/jobs/$id" >/dev/null
    state=$(mp_json "$MP_TMP/j" 'd["state"]')
    case $state in queued | running) ;; *) break ;; esac
    i=$((i + 1))
    [ $i -lt 300 ] || mp_fail "job still $state after 30 s"
    sleep 0.1
done
[ "$state" = failed ] || mp_fail "job whose result cannot be written ended $state"
ecode=$(mp_json "$MP_TMP/j" 'd["error"]["code"]')
[ "$ecode" = ENOSPC ] || mp_fail "error code $ecode: $(mp_json "$MP_TMP/j" 'd["error"]["message"]')"
[ ! -e "$MP_TMP/state/results/$id" ] || [ -z "$(ls -A "$MP_TMP/state/results/$id")" ] ||
    mp_fail "partial result left: $(ls -l "$MP_TMP/state/results/$id")"

# 3. Still serving.
st=$(mp_http "$MP_TMP/h" "$MP_URL/healthz")
[ "$st" = 200 ] || mp_fail "healthz after a full disk: $st"
mp_stop_daemon || mp_fail "SIGTERM: exit status $MP_DAEMON_STATUS"
exit 0
