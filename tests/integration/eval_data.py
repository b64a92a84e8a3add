"""eval_data.py — what test_eval.sh evaluates: the fixture classifier as ONNX and Fashion-MNIST.

    /usr/bin/python3 tests/integration/eval_data.py OUTDIR N

Writes OUTDIR/model.onnx (tests/fixtures/fmnist_mlp.safetensors as three Gemm layers with
ReLU; input x [N, 784], output logits [N, 10]), OUTDIR/model_opset6.onnx (the same as an
opset-6 graph, Gemm with broadcast=1), OUTDIR/test.npz (the first N test images of
Debian's dataset-fashion-mnist as x float32 (N, 28, 28) = pixel / 255 and y uint8 labels, the
fixture's own input convention) and prints how many of them the fixture classifies right,
computed here in float64 — the figure the runtime's accuracy must match.
"""
import gzip
import json
import os
import struct
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.join(HERE, "..", "fixtures", "fmnist_mlp.safetensors")
DATA = "/usr/share/datasets/fashion-mnist"


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack_from("<Q", raw)[0]
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        a, b = e["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + a:8 + n + b], dtype=np.float32).reshape(e["shape"])
    return out


def read_idx(name, header_bytes):
    with gzip.open(os.path.join(DATA, name)) as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=header_bytes)


def main():
    out_dir, n = sys.argv[1], int(sys.argv[2])
    w = read_safetensors(FIXTURE)
    nodes, inits, prev = [], [], "x"
    for i in (1, 2, 3):
        inits += [numpy_helper.from_array(w["fc%d.weight" % i], "fc%d.weight" % i),
                  numpy_helper.from_array(w["fc%d.bias" % i], "fc%d.bias" % i)]
        nodes.append(helper.make_node("Gemm", [prev, "fc%d.weight" % i, "fc%d.bias" % i],
                                      ["h%d" % i if i < 3 else "logits"], transB=1))
        if i < 3:
            nodes.append(helper.make_node("Relu", ["h%d" % i], ["a%d" % i]))
            prev = "a%d" % i
    graph = helper.make_graph(nodes, "fmnist_mlp",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 784])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="modelpress tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(out_dir, "model.onnx"))

    # The same network as an opset-6 graph (IR 3), whose Gemm adds its bias only under
    # broadcast=1: what an old exporter wrote.
    old = onnx.ModelProto()
    old.CopyFrom(model)
    for node in old.graph.node:
        if node.op_type == "Gemm":
            node.attribute.append(helper.make_attribute("broadcast", 1))
    old.opset_import[0].version = 6
    old.ir_version = 3  # which lists every initializer among the graph's inputs as well
    for init in old.graph.initializer:
        old.graph.input.append(helper.make_tensor_value_info(init.name, init.data_type,
                                                             list(init.dims)))
    onnx.checker.check_model(old)
    onnx.save(old, os.path.join(out_dir, "model_opset6.onnx"))

    images = read_idx("t10k-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)[:n]
    labels = read_idx("t10k-labels-idx1-ubyte.gz", 8)[:n]
    x = images.astype(np.float32) / np.float32(255)
    np.savez_compressed(os.path.join(out_dir, "test.npz"), x=x, y=labels)

    h = x.reshape(n, 784).astype(np.float64)
    for i in (1, 2, 3):
        h = h @ w["fc%d.weight" % i].T.astype(np.float64) + w["fc%d.bias" % i]
        if i < 3:
            h = np.maximum(h, 0)
    print(int((h.argmax(axis=1) == labels).sum()))


if __name__ == "__main__":
    main()
