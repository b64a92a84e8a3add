#!/bin/sh
# test_replay.sh — make check's share of fuzzing: every fuzz target, built with the ordinary
# compiler against replay.c, runs over its committed corpus (seeds and every crasher found so
# far). In the sanitizer build this is ASan+UBSan over all of them.
. "$top_srcdir/tests/lib/common.sh"
for t in safetensors recipe npy npz mpz onnx; do
    bin=$top_builddir/tests/fuzz/replay_$t
    [ -x "$bin" ] || mp_fail "$bin was not built"
    "$bin" "$top_srcdir/tests/fuzz/corpus/$t" || mp_fail "replay of the $t corpus failed"
done
exit 0
