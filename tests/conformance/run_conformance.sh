#!/bin/sh
# run_conformance.sh — ONNX's own conformance cases through the evaluation runtime.
#
# Runs every case of Debian's libonnx-testdata (data/node and data/pytorch-converted) with
# conformance_run (tests/conformance/conformance_run.c, which states the tolerance: |got - want|
# <= 1e-5 + 1e-3 |want|). Cases using an operator the runtime does not claim are skipped, as are
# cases the ONNX reader or the runtime refuses as unsupported (an attribute value such as Resize's
# cubic mode, a type such as STRING); every skip is listed below with its reason, grouped. Every
# opset from 1 runs: the pytorch-converted cases are opset 6 (Add/Gemm with broadcast=1, PRelu's
# per-channel slope, Pad's pads attribute, BatchNormalization's is_test), and all of those whose
# operators are claimed must pass like the node cases (76 of its 82; 333 in all). Prints the claimed operators and the totals as the line "N passed, M failed".
# Fails when any case of the claimed operators fails, or when fewer than MIN_PASS cases pass (so
# the suite cannot pass having run nothing). Skips (77), loudly, only when the package is
# missing. Run by `make check`; by hand: top_builddir=build top_srcdir=. tests/conformance/run_conformance.sh

: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${top_builddir:=$top_srcdir}"
. "$top_srcdir/tests/lib/common.sh"

DATA=${ONNX_TESTDATA:-/usr/share/libonnx-testdata/data}
DRIVER=$top_builddir/tests/conformance/conformance_run
MIN_PASS=330

[ -d "$DATA/node" ] && [ -d "$DATA/pytorch-converted" ] ||
    mp_skip "Debian's libonnx-testdata is not installed ($DATA/node is missing): apt-get install libonnx-testdata"
[ -x "$DRIVER" ] || mp_fail "$DRIVER is not built (make tests/conformance/conformance_run)"
mp_tmpdir

"$DRIVER" "$DATA/node" "$DATA/pytorch-converted" >"$MP_TMP/out.txt" 2>"$MP_TMP/err.txt"
rc=$?
grep '^FAIL' "$MP_TMP/out.txt"
echo "skipped, by reason:"
grep '^SKIP' "$MP_TMP/out.txt" | sed -e 's/^SKIP [^:]*: //' \
    -e 's/^\(operator [A-Za-z]*\) is not claimed/\1 is not claimed/' \
    -e 's|/usr/share/libonnx-testdata/data/[^:]*: ||' -e 's/#[0-9]*//' | sort | uniq -c |
    sort -rn | sed 's/^/    /'
grep '^claimed operators:' "$MP_TMP/out.txt"
grep '^[0-9]* skipped$' "$MP_TMP/out.txt"
totals=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$MP_TMP/out.txt")
[ -n "$totals" ] || mp_fail "conformance_run printed no totals (exit $rc): $(tail -c 600 "$MP_TMP/err.txt")"
echo "$totals"
passed=${totals%% passed*}
[ "$rc" -eq 0 ] || mp_fail "cases of claimed operators failed (listed above)"
[ "$passed" -ge "$MIN_PASS" ] || mp_fail "only $passed cases passed, fewer than $MIN_PASS"
exit 0
