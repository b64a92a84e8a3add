#!/bin/sh
# run.sh — fuzz every target with libFuzzer (Debian's clang) for a bounded time each.
#
#   tests/fuzz/run.sh [SECONDS]     default 60 per target
#
# Builds a clang tree with --enable-fuzzing in ./build-fuzz, then runs each target on its
# corpus. New interesting inputs stay in build-fuzz; a crasher is written into the target's
# corpus folder as crash-<hash> (commit it, fix the bug: make check replays it from then on).
# Exit status non-zero when a target crashed.
set -eu
cd "$(dirname "$0")/../.."
secs=${1:-60}
top=$PWD
command -v clang >/dev/null || { echo "run.sh: clang is missing (apt-get install clang libclang-rt-14-dev)" >&2; exit 2; }
[ -x configure ] || autoreconf -fi
mkdir -p build-fuzz
if [ ! -f build-fuzz/Makefile ]; then
    (cd build-fuzz && ../configure -q CC=clang --enable-fuzzing)
fi
targets="safetensors recipe npy npz mpz onnx"
for t in $targets; do
    make -C build-fuzz -j"$(nproc)" "tests/fuzz/fuzz_$t" >/dev/null
done
status=0
for t in $targets; do
    work=build-fuzz/corpus-$t
    mkdir -p "$work"
    echo "run.sh: fuzzing $t for ${secs}s"
    if ! build-fuzz/tests/fuzz/fuzz_$t -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$top/tests/fuzz/corpus/$t/crash-" \
        "$work" "$top/tests/fuzz/corpus/$t" >build-fuzz/fuzz-$t.log 2>&1; then
        echo "run.sh: $t CRASHED; see build-fuzz/fuzz-$t.log and tests/fuzz/corpus/$t/crash-*" >&2
        tail -30 build-fuzz/fuzz-$t.log >&2
        status=1
    fi
    grep -E "stat::number_of_executed_units|stat::peak_rss_mb" build-fuzz/fuzz-$t.log | sed "s/^/run.sh: $t /"
done
exit $status
