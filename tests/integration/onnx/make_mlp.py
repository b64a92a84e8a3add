"""make_mlp.py — a small MLP as ONNX, for the channel-removal rewrites of Gemm layers.

    /usr/bin/python3 make_mlp.py OUTDIR

Writes OUTDIR/mlp.onnx (IR 8, opset 13): X [1, 16] -> Gemm(W1 [32, 16], transB=1, C1 [32])
-> Relu -> Gemm(W2 [32, 8], transB=0, C2 [8], alpha 0.5, beta 2) -> Relu -> MatMul(W3 [8, 4])
-> Y, seeded random weights; and OUTDIR/mlp.json/.bin, 20 seeded input rows for ort_run.js.
"""
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def main():
    out = sys.argv[1]
    rng = np.random.default_rng(7)
    w1 = rng.standard_normal((32, 16)).astype(np.float32)
    c1 = rng.standard_normal(32).astype(np.float32)
    w2 = rng.standard_normal((32, 8)).astype(np.float32)
    c2 = rng.standard_normal(8).astype(np.float32)
    w3 = rng.standard_normal((8, 4)).astype(np.float32)
    nodes = [
        helper.make_node("Gemm", ["X", "W1", "C1"], ["H1"], transB=1),
        helper.make_node("Relu", ["H1"], ["R1"]),
        helper.make_node("Gemm", ["R1", "W2", "C2"], ["H2"], alpha=0.5, beta=2.0),
        helper.make_node("Relu", ["H2"], ["R2"]),
        helper.make_node("MatMul", ["R2", "W3"], ["Y"]),
    ]
    inits = [numpy_helper.from_array(a, n) for a, n in
             ((w1, "W1"), (c1, "C1"), (w2, "W2"), (c2, "C2"), (w3, "W3"))]
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("X", TensorProto.FLOAT,
                                                                            [1, 16])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 4])],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(out, "mlp.onnx"))
    x = rng.standard_normal((20, 16)).astype("<f4")
    with open(os.path.join(out, "mlp.bin"), "wb") as f:
        f.write(x.tobytes())
    runs = [{"feeds": {"X": {"type": "float32", "dims": [1, 16], "offset": i * 64}}}
            for i in range(20)]
    with open(os.path.join(out, "mlp.json"), "w") as f:
        json.dump({"data": "mlp.bin", "runs": runs}, f)


if __name__ == "__main__":
    main()
