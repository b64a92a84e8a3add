#!/bin/sh
# test_eval_cnn.sh — the runtime runs the project's Fashion-MNIST CNN (tests/fixtures/
# fmnist_cnn.onnx: Conv, Relu, MaxPool, Flatten, Gemm; made by make_fmnist_cnn.py) as torch did.
#
# - `modelpress eval` on all 10,000 test images must classify as many right as torch did when
#   the file was written (its metadata_props test_correct, 9,067), to within 2 images (near
#   ties: the runtime sums in another order than torch);
# - `modelpress compress` with int8 weights, ONNX in and ONNX out, with --dataset: the written
#   ONNX must be int8 (a quarter of the bytes or less) and lose under 1 point of accuracy, in the
#   report and when evaluated again on its own; agreement with the original >= 98 %.
# Run by `make check`; by hand: top_builddir=build top_srcdir=. tests/integration/test_eval_cnn.sh
# Skips (77) when python3-numpy, python3-onnx or dataset-fashion-mnist is missing.

: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${top_builddir:=$top_srcdir}"
: "${MODELPRESS:=$top_builddir/cli/modelpress}"
. "$top_srcdir/tests/lib/common.sh"

MODEL=$top_srcdir/tests/fixtures/fmnist_cnn.onnx
DATA=/usr/share/datasets/fashion-mnist
mp_require_numpy
"$MP_PYTHON" -c 'import onnx' 2>/dev/null || mp_skip "$MP_PYTHON cannot import onnx (apt-get install python3-onnx)"
[ -r $DATA/t10k-images-idx3-ubyte.gz ] ||
    mp_skip "Fashion-MNIST is missing (apt-get install dataset-fashion-mnist)"
mp_tmpdir
T=$MP_TMP

# the test set as the fixture reads it (x float32 (N, 28, 28) = pixel / 255, y uint8), and the
# count torch recorded
recorded=$("$MP_PYTHON" - "$DATA" "$T/test.npz" "$MODEL" <<'PY'
import gzip, sys
import numpy as np
import onnx
data, out, model = sys.argv[1:]
with gzip.open(data + "/t10k-images-idx3-ubyte.gz") as f:
    x = np.frombuffer(f.read(), dtype=np.uint8, offset=16).reshape(-1, 28, 28)
with gzip.open(data + "/t10k-labels-idx1-ubyte.gz") as f:
    y = np.frombuffer(f.read(), dtype=np.uint8, offset=8)
np.savez(out, x=x.astype(np.float32) / np.float32(255), y=y)
props = {p.key: p.value for p in onnx.load(model).metadata_props}
assert props["test_samples"] == str(len(y)), props
print(props["test_correct"])
PY
) || mp_fail "cannot write the test set or read the recorded accuracy"
N=10000
mp_log "torch (recorded in the fixture): $recorded of $N right"

check() {
    [ "$(mp_json "$1" "bool($2)")" = true ] || mp_fail "$3: $2 is false in $(head -c 900 "$1")"
}

"$MODELPRESS" eval "$MODEL" --dataset "$T/test.npz" --runs 3 --json >"$T/eval.json" ||
    mp_fail "modelpress eval failed"
check "$T/eval.json" "d['samples'] == $N and d['outputs_per_sample'] == 10" "eval: what was run"
check "$T/eval.json" "abs(round(d['accuracy'] * $N) - $recorded) <= 2" "eval: accuracy against torch's"
before=$(mp_json "$T/eval.json" 'd["accuracy"]')
mp_log "runtime: accuracy $before"

echo '{"steps":[{"quantize":{"bits":8}}]}' >"$T/int8.json"
"$MODELPRESS" compress "$MODEL" -r "$T/int8.json" -o "$T/int8.onnx" --dataset "$T/test.npz" \
    --json >"$T/int8-report.json" || mp_fail "compress int8 --dataset failed"
E="d['evaluation']"
check "$T/int8-report.json" "$E['before']['accuracy'] == $before" "int8: the original's accuracy as eval gives it"
check "$T/int8-report.json" "$E['before']['accuracy'] - $E['after']['accuracy'] < 0.01" "int8: accuracy kept"
check "$T/int8-report.json" "$E['agreement'] >= 0.98" "int8: agreement"
check "$T/int8-report.json" "d['n_compressed'] == 4" "int8: the four weights (two Conv, two Gemm)"
"$MP_PYTHON" -c 'import onnx, sys; onnx.load(sys.argv[1])' "$T/int8.onnx" 2>"$T/load.err" ||
    mp_fail "the compressed file is no ONNX: $(tail -c 300 "$T/load.err")"
[ $(($(wc -c <"$T/int8.onnx") * 4)) -le $(($(wc -c <"$MODEL") + 4096 * 4)) ] ||
    mp_fail "the compressed ONNX is $(wc -c <"$T/int8.onnx") bytes, not a quarter of $(wc -c <"$MODEL")"
"$MODELPRESS" eval "$T/int8.onnx" --dataset "$T/test.npz" --runs 3 --json >"$T/eval8.json" ||
    mp_fail "modelpress eval of the int8 ONNX failed"
check "$T/eval8.json" "d['accuracy'] == $(mp_json "$T/int8-report.json" "$E['after']['accuracy']")" \
    "int8: the written file evaluates as the report says"
mp_log "int8: accuracy $(mp_json "$T/eval8.json" 'd["accuracy"]'), agreement $(mp_json "$T/int8-report.json" "$E['agreement']"), $(wc -c <"$MODEL") -> $(wc -c <"$T/int8.onnx") bytes"
exit 0
