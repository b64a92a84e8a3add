#!/bin/sh
# test_onnx_job.sh — an ONNX model through the service: upload a small MLP (Gemm, Relu, Gemm,
# written with Debian's python3-onnx), compress it int8 per channel, download an ONNX file that
# passes onnx.checker, whose weights now come through DequantizeLinear, and whose outputs
# (computed with numpy from the file's own initializers) stay within 2 % of the original's.
. "$top_srcdir/tests/lib/common.sh"
mp_require_cmd curl
mp_require_numpy
"$MP_PYTHON" -c 'import onnx' 2>/dev/null || mp_skip "$MP_PYTHON cannot import onnx (apt-get install python3-onnx)"
mp_tmpdir
"$MP_PYTHON" - "$MP_TMP/mlp.onnx" <<'PY'
import sys
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
rng = np.random.default_rng(0)
w1 = (rng.standard_normal((64, 32)) * 0.1).astype(np.float32)
w2 = (rng.standard_normal((10, 64)) * 0.1).astype(np.float32)
nodes = [helper.make_node("Gemm", ["x", "W1"], ["h"], transB=1),
         helper.make_node("Relu", ["h"], ["r"]),
         helper.make_node("Gemm", ["r", "W2"], ["y"], transB=1)]
g = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 32])],
                      [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 10])],
                      [numpy_helper.from_array(w1, "W1"), numpy_helper.from_array(w2, "W2")])
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
m.ir_version = 8
onnx.save(m, sys.argv[1])
PY
mp_start_daemon "$MP_TMP/state"
st=$(mp_http "$MP_TMP/p" -F model=@"$MP_TMP/mlp.onnx" -F 'recipe={"steps":[{"quantize":{"bits":8}}]}' \
    "$MP_URL/jobs")
[ "$st" = 202 ] || mp_fail "POST an ONNX model: $st $(cat "$MP_TMP/p")"
id=$(mp_json "$MP_TMP/p" 'd["id"]')
i=0
while :; do
    mp_http "$MP_TMP/j" "$MP_URL/jobs/$id" >/dev/null
    state=$(mp_json "$MP_TMP/j" 'd["state"]')
    case $state in queued | running) ;; *) break ;; esac
    i=$((i + 1))
    [ $i -lt 300 ] || mp_fail "job still $state"
    sleep 0.1
done
[ "$state" = succeeded ] || mp_fail "the ONNX job ended $state: $(cat "$MP_TMP/j")"
st=$(mp_http "$MP_TMP/out.onnx" "$MP_URL/jobs/$id/result")
[ "$st" = 200 ] || mp_fail "GET result: $st"
grep -qi 'filename="mlp.compressed.onnx"' "$MP_TMP/out.onnx.headers" || mp_fail "download name"
"$MP_PYTHON" - "$MP_TMP/mlp.onnx" "$MP_TMP/out.onnx" <<'PY' || mp_fail "the compressed ONNX model is wrong"
import sys
import numpy as np
import onnx
from onnx import numpy_helper

def run(path):
    m = onnx.load(path)
    onnx.checker.check_model(m)
    vals = {t.name: numpy_helper.to_array(t).astype(np.float32 if t.data_type == 1 else None)
            for t in m.graph.initializer}
    for n in m.graph.node:
        for a in n.attribute:
            if n.op_type == "Constant" and a.name == "value":
                vals[n.output[0]] = numpy_helper.to_array(a.t)
    x = np.linspace(-1, 1, 4 * 32, dtype=np.float32).reshape(4, 32)
    vals["x"] = x
    ops = []
    for n in m.graph.node:
        ops.append(n.op_type)
        a = {at.name: helper_attr(at) for at in n.attribute}
        i = [vals.get(k) for k in n.input]
        if n.op_type == "DequantizeLinear":
            q, s = i[0].astype(np.float32), i[1].astype(np.float32)
            z = i[2].astype(np.float32) if len(i) > 2 and i[2] is not None else 0
            axis = a.get("axis", 1)
            if s.ndim == 1 and s.size > 1:
                shape = [1] * q.ndim
                shape[axis] = -1
                s = s.reshape(shape)
                z = z.reshape(shape) if np.ndim(z) else z
            out = (q - z) * s
        elif n.op_type == "Gemm":
            b = i[1].T if a.get("transB", 0) else i[1]
            out = i[0] @ b
        elif n.op_type == "Relu":
            out = np.maximum(i[0], 0)
        else:
            raise SystemExit(f"unexpected op {n.op_type}")
        vals[n.output[0]] = out
    return vals["y"], ops

def helper_attr(at):
    return onnx.helper.get_attribute_value(at)

y0, _ = run(sys.argv[1])
y1, ops = run(sys.argv[2])
assert ops.count("DequantizeLinear") == 2, ops
err = np.abs(y1 - y0).max() / np.abs(y0).max()
assert err < 0.02, err
print("relative output error", err)
PY
mp_stop_daemon || mp_fail "SIGTERM: $MP_DAEMON_STATUS"

# The command does the same offline, and inspect describes the graph.
echo '{"steps":[{"quantize":{"bits":8}}]}' >"$MP_TMP/q8.json"
"$MODELPRESS" compress "$MP_TMP/mlp.onnx" -r "$MP_TMP/q8.json" -o "$MP_TMP/cli.onnx" 2>"$MP_TMP/cli.err" ||
    mp_fail "modelpress compress on ONNX: $(cat "$MP_TMP/cli.err")"
grep -q "written to .*cli.onnx (onnx)" "$MP_TMP/cli.err" || mp_fail "summary: $(cat "$MP_TMP/cli.err")"
cmp -s "$MP_TMP/cli.onnx" "$MP_TMP/out.onnx" || mp_fail "the command and the service wrote different ONNX files"
"$MODELPRESS" inspect "$MP_TMP/mlp.onnx" --json >"$MP_TMP/inspect.json" || mp_fail "inspect --json"
ops=$(mp_json "$MP_TMP/inspect.json" 'd["onnx"]["operators"]')
[ "$ops" = '{"Gemm": 2, "Relu": 1}' ] || mp_fail "inspect operators: $ops"
sel=$(mp_json "$MP_TMP/inspect.json" '[w["name"] for w in d["onnx"]["weights"] if w["selected"]]')
[ "$sel" = '["W1", "W2"]' ] || mp_fail "inspect selection: $sel"
exit 0
