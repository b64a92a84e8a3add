#!/bin/sh
# test_systemd.sh — the unit file: Type=notify, hardened as RELIABILITY.md lists, and
# `systemd-analyze security --offline=true` rates its exposure at 2.0 or better.
. "$top_srcdir/tests/lib/common.sh"
mp_require_cmd systemd-analyze
unit=$top_srcdir/systemd/modelpressd.service
for line in Type=notify DynamicUser=yes StateDirectory=modelpress ProtectSystem=strict \
    PrivateTmp=yes NoNewPrivileges=yes "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6" \
    SystemCallFilter=@system-service CapabilityBoundingSet= MemoryMax= WatchdogSec=; do
    grep -q "^$line" "$unit" || mp_fail "the unit lacks $line"
done
mp_tmpdir
cp "$unit" "$MP_TMP/modelpressd.service"
systemd-analyze security --offline=true --no-pager "$MP_TMP/modelpressd.service" \
    >"$MP_TMP/security" 2>&1 || :
level=$(sed -n 's/.*Overall exposure level for modelpressd.service: \([0-9.]*\).*/\1/p' \
    "$MP_TMP/security")
[ -n "$level" ] || mp_fail "no exposure level in: $(tail -5 "$MP_TMP/security")"
mp_log "exposure level $level"
awk -v l="$level" 'BEGIN { exit !(l <= 2.0) }' || mp_fail "exposure level $level is above 2.0"
exit 0
