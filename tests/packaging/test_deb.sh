#!/bin/sh
# test_deb.sh — the Debian packages: build them with dpkg-buildpackage from the source tree,
# unpack them into a scratch root, and run the installed modelpressd: --version, then a real job
# on the test model, with the dashboard served from the installed web files.
# Run by `./dev check` after the test suites (it builds the whole tree once more).
set -u
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$top_srcdir/tests/lib/common.sh"
mp_require_cmd dpkg-buildpackage dh fakeroot curl git
mp_require_numpy
mp_tmpdir
src=$MP_TMP/modelpress-0.1.0
mkdir -p "$src"
# The files git tracks, as they are in the working tree, plus debian/ from packaging/.
(cd "$top_srcdir" && git ls-files -z | tar --null -T - -cf -) | tar -x -C "$src" ||
    mp_fail "cannot copy the source tree"
cp -r "$top_srcdir/packaging/debian" "$src/debian"
mp_log "dpkg-buildpackage -b -us -uc (a few minutes)"
(cd "$src" && DEB_BUILD_OPTIONS="nocheck parallel=$(nproc)" dpkg-buildpackage -b -us -uc \
    >"$MP_TMP/build.log" 2>&1) || { tail -40 "$MP_TMP/build.log" >&2; mp_fail "dpkg-buildpackage failed"; }
root=$MP_TMP/root
for p in modelpressd modelpress libmodelpress0 libmodelpress-dev; do
    deb=$(ls "$MP_TMP"/${p}_0.1.0_*.deb 2>/dev/null | head -n 1)
    [ -n "$deb" ] || mp_fail "no package $p was built"
    dpkg-deb -x "$deb" "$root"
done
for f in usr/sbin/modelpressd usr/bin/modelpress usr/include/modelpress.h \
    usr/share/modelpress/web/index.html usr/share/man/man8/modelpressd.8.gz \
    usr/share/man/man1/modelpress.1.gz usr/lib/systemd/system/modelpressd.service \
    etc/modelpress/modelpressd.conf; do
    [ -e "$root/$f" ] || mp_fail "the packages do not install $f"
done
ls "$root"/usr/lib/*/libmodelpress.so.0* >/dev/null 2>&1 || mp_fail "no libmodelpress.so.0"
"$root/usr/sbin/modelpressd" --version | grep -q "^modelpressd 0.1.0" || mp_fail "--version"
MODELPRESSD=$root/usr/sbin/modelpressd
mp_start_daemon "$MP_TMP/state" --config "$root/etc/modelpress/modelpressd.conf" \
    --web-dir "$root/usr/share/modelpress/web"
st=$(mp_http "$MP_TMP/page" "$MP_URL/")
[ "$st" = 200 ] && grep -q modelpress "$MP_TMP/page" || mp_fail "installed dashboard: $st"
st=$(mp_http "$MP_TMP/job" -F model=@"$top_srcdir/tests/fixtures/fmnist_mlp.safetensors" \
    -F 'recipe={"steps":[{"quantize":{"bits":8}}]}' "$MP_URL/jobs")
[ "$st" = 202 ] || mp_fail "POST /jobs on the installed daemon: $st"
id=$(mp_json "$MP_TMP/job" 'd["id"]')
i=0
while :; do
    mp_http "$MP_TMP/j" "$MP_URL/jobs/$id" >/dev/null
    state=$(mp_json "$MP_TMP/j" 'd["state"]')
    case $state in queued | running) ;; *) break ;; esac
    i=$((i + 1))
    [ $i -lt 300 ] || mp_fail "job still $state"
    sleep 0.1
done
[ "$state" = succeeded ] || mp_fail "the installed daemon's job ended $state"
mp_stop_daemon || mp_fail "SIGTERM: $MP_DAEMON_STATUS"
mp_log "PASS: packages built, installed into a scratch root, and a job ran from them"
exit 0
