#!/bin/sh
# test_dashboard.sh — the dashboard in a real browser: Debian's Chromium, headless, driven by
# playwright-core (npm, pinned in tests/web/package.json) against the real modelpressd on a
# free loopback port with a temporary state folder and one worker.
#
# dashboard.js does the work, in two runs of the browser:
# - auth off: a job submitted through the form (the trained fixture, int8 preset) reaches
#   succeeded on its page, whose four per-tensor charts have 3 bars each (3 compressed
#   tensors), in proportion to the report's values; the jobs page row and its filters;
#   a labelled dataset uploaded through its page and listed, then an ONNX classifier (written
#   here with python3-onnx) submitted with it and the int8 preset: the job page shows top-1
#   accuracy, latencies at batch 1 and 32, speed-ups, agreement and output SNR exactly as
#   GET /jobs/<id>/report has them (the original right on 234 of 256 samples), and the jobs
#   page its accuracy change; the server's 400 for bits=33 shown next to the editor; a big model (make_model.py, 12 × 1024 ×
#   1024) seen running with its progress bar moving, a second one canceled while it waits,
#   then the running one canceled;
#   a model named `<img src=x onerror=alert(2)>.safetensors` with tensors named
#   `<img src=x onerror=alert(1)>` and `</title><svg onload=alert(3)>` shown as text, no
#   element made from them and no dialog;
# - auth on (`--auth on`, a token from `modelpressd token add alice`): the token prompt on 401,
#   a wrong token refused, the right one kept in sessionStorage; a job and its charts, the
#   report downloaded with the token.
# Screenshots of each page, desktop (1280×900) and phone (390×844), are kept as artifacts in
# $top_builddir/tests/web/screenshots/.
#
# playwright-core is installed once into ${XDG_CACHE_HOME:-$HOME/.cache}/modelpress/npm/
# playwright (outside the source tree; it downloads no browser). Skips (77), loudly, only when
# /usr/bin/chromium is missing and cannot be installed, when the npm registry cannot be reached
# for a playwright-core not yet in the cache, or when node, npm or Debian's python3 with NumPy
# and onnx are missing.
# Run by `make check`; by hand: top_builddir=build top_srcdir=. tests/web/test_dashboard.sh

: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${top_builddir:=$top_srcdir}"
: "${MODELPRESSD:=$top_builddir/daemon/modelpressd}"
. "$top_srcdir/tests/lib/common.sh"

HERE=$top_srcdir/tests/web
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/modelpress/npm/playwright
PW_VERSION=1.64.1
CHROMIUM=/usr/bin/chromium
ART=$top_builddir/tests/web/screenshots

mp_require_cmd node npm
mp_require_numpy
"$MP_PYTHON" -c 'import onnx' 2>/dev/null ||
    mp_skip "$MP_PYTHON cannot import onnx (apt-get install python3-onnx); needed for the classifier to evaluate"
mp_tmpdir
T=$MP_TMP

# ---- Chromium: Debian's, installed here if it is missing and we may ------------------------
if [ ! -x "$CHROMIUM" ]; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        mp_log "installing Debian's chromium (apt-get install chromium)"
        { DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium ||
            { DEBIAN_FRONTEND=noninteractive apt-get update -q &&
                DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }; } \
            >"$T/apt.log" 2>&1
    fi
    [ -x "$CHROMIUM" ] ||
        mp_skip "$CHROMIUM is missing and cannot be installed here (apt-get install chromium): $(tail -c 300 "$T/apt.log" 2>/dev/null)"
fi
"$CHROMIUM" --version >"$T/chromium.version" 2>&1 || mp_fail "$CHROMIUM --version: $(cat "$T/chromium.version")"
mp_log "$(cat "$T/chromium.version")"

# ---- playwright-core, pinned, in the cache -------------------------------------------------
mkdir -p "$CACHE" || mp_fail "cannot create $CACHE"
if ! grep -q "\"version\": \"$PW_VERSION\"" "$CACHE/node_modules/playwright-core/package.json" 2>/dev/null; then
    npm view "playwright-core@$PW_VERSION" version --fetch-timeout=20000 --fetch-retries=1 \
        >/dev/null 2>"$T/npm-view.err" ||
        mp_skip "the npm registry cannot be reached ($(head -c 300 "$T/npm-view.err")); needed for playwright-core@$PW_VERSION"
    cp "$HERE/package.json" "$CACHE/package.json" || mp_fail "cannot write $CACHE/package.json"
    mp_log "installing playwright-core@$PW_VERSION into $CACHE"
    (cd "$CACHE" && npm install --no-audit --no-fund --fetch-timeout=60000 >"$T/npm-install.log" 2>&1) ||
        mp_fail "npm install failed: $(tail -c 800 "$T/npm-install.log")"
fi
NODE_PATH=$CACHE/node_modules
export NODE_PATH

# ---- models --------------------------------------------------------------------------------
FIXTURE=$top_srcdir/tests/fixtures/fmnist_mlp.safetensors
# About 10 s of low-rank work (0.8 s a matrix here): long enough to watch and cancel.
"$MP_PYTHON" "$top_srcdir/tests/daemon/make_model.py" "$T/big.safetensors" 12 1024 1024 ||
    mp_fail "make_model.py failed"
# Three matrices (so three compressed tensors), two of them named like markup.
"$MP_PYTHON" - "$T/xss.safetensors" <<'EOF' || mp_fail "cannot write the hostile-names model"
import json, struct, sys
import numpy as np
rng = np.random.default_rng(7)
names = [("<img src=x onerror=alert(1)>", (32, 64)), ("</title><svg onload=alert(3)>", (16, 64)),
         ("plain.weight", (8, 64))]
header, blobs, off = {}, [], 0
for name, shape in names:
    a = (rng.standard_normal(shape, dtype=np.float32) * 0.05).tobytes()
    header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [off, off + len(a)]}
    blobs.append(a)
    off += len(a)
h = json.dumps(header).encode()
h += b" " * (-len(h) % 8)
with open(sys.argv[1], "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
EOF

# A small ONNX classifier to evaluate (Gemm 16→32, Relu, Gemm 32→4; fixed-seed weights) and
# 256 labelled samples for it: the labels are the model's own top-1 class computed in float64,
# except every 12th, moved to the next class, so the original scores 234/256 = 91.41 %.
"$MP_PYTHON" - "$T/mlp.onnx" "$T/data.npz" <<'EOF' || mp_fail "cannot write the ONNX classifier and its dataset"
import sys
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
rng = np.random.default_rng(11)
w1 = (rng.standard_normal((32, 16)) * 0.5).astype(np.float32)
b1 = (rng.standard_normal(32) * 0.1).astype(np.float32)
w2 = (rng.standard_normal((4, 32)) * 0.5).astype(np.float32)
b2 = (rng.standard_normal(4) * 0.1).astype(np.float32)
nodes = [helper.make_node("Gemm", ["x", "fc1.weight", "fc1.bias"], ["h"], transB=1),
         helper.make_node("Relu", ["h"], ["a"]),
         helper.make_node("Gemm", ["a", "fc2.weight", "fc2.bias"], ["logits"], transB=1)]
inits = [numpy_helper.from_array(v, n) for n, v in
         (("fc1.weight", w1), ("fc1.bias", b1), ("fc2.weight", w2), ("fc2.bias", b2))]
graph = helper.make_graph(nodes, "mlp16",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 4])],
                          inits)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                          producer_name="modelpress tests")
model.ir_version = 8
onnx.checker.check_model(model)
onnx.save(model, sys.argv[1])
x = rng.standard_normal((256, 16)).astype(np.float32)
h = np.maximum(x.astype(np.float64) @ w1.T.astype(np.float64) + b1, 0)
y = (h @ w2.T.astype(np.float64) + b2).argmax(axis=1)
y[::12] = (y[::12] + 1) % 4
np.savez(sys.argv[2], x=x, y=y.astype(np.int64))
EOF

rm -rf "$ART"
mkdir -p "$ART" || mp_fail "cannot create $ART"

# ---- auth off ------------------------------------------------------------------------------
mp_start_daemon "$T/state" --workers 1 --web-dir "$top_srcdir/web"
node "$HERE/dashboard.js" open "$MP_URL" "$ART" "$FIXTURE" "$T/big.safetensors" "$T/xss.safetensors" \
    "$T/mlp.onnx" "$T/data.npz" ||
    mp_fail "the dashboard in Chromium (auth off); screenshots in $ART"
mp_stop_daemon || mp_fail "modelpressd exited with status $MP_DAEMON_STATUS on SIGTERM"

# ---- auth on -------------------------------------------------------------------------------
TOKEN=$("$MODELPRESSD" token add alice --state-dir "$T/state" 2>"$T/token.err") ||
    mp_fail "token add: $(cat "$T/token.err")"
mp_start_daemon "$T/state" --workers 1 --web-dir "$top_srcdir/web" --auth on
node "$HERE/dashboard.js" auth "$MP_URL" "$ART" "$FIXTURE" "$TOKEN" ||
    mp_fail "the dashboard in Chromium (auth on); screenshots in $ART"
mp_stop_daemon || mp_fail "modelpressd exited with status $MP_DAEMON_STATUS on SIGTERM"

for page in jobs job job-running submit token-prompt; do
    for size in desktop phone; do
        [ -s "$ART/$page-$size.png" ] || mp_fail "no screenshot $ART/$page-$size.png"
    done
done
mp_log "$(find "$ART" -name '*.png' | wc -l) screenshots in $ART"
exit 0
