"""substitute.py — the original ONNX graph with the weights mp_model_unpack restores put in
place of its own, as a float reference for graphs whose structure the rewrites changed
(low-rank factors split into two MatMul/Gemm or three Conv).

    /usr/bin/python3 substitute.py ORIG.onnx UNPACKED.safetensors OUT.onnx

Initializers and Constant values of every graph, subgraphs included, are replaced by the F32
tensor of the same name (cast back to the original data type). Prints how many were replaced.
"""
import json
import struct
import sys

import numpy as np
import onnx
from onnx import numpy_helper


def graphs(g):
    yield g
    for node in g.node:
        for a in node.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                yield from graphs(a.g)
            for sg in a.graphs:
                yield from graphs(sg)


def main():
    src, unpacked, dst = sys.argv[1:4]
    m = onnx.load(src)
    with open(unpacked, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        blob = f.read()
    values = {}
    for name, e in header.items():
        if name != "__metadata__" and e["dtype"] == "F32":
            b, end = e["data_offsets"]
            values[name] = np.frombuffer(blob[b:end], dtype="<f4").reshape(e["shape"])
    count = 0

    def put(t, name):
        nonlocal count
        if name in values:
            old = numpy_helper.to_array(t)
            t.CopyFrom(numpy_helper.from_array(values[name].astype(old.dtype), t.name))
            count += 1

    for g in graphs(m.graph):
        for t in g.initializer:
            put(t, t.name)
        for node in g.node:
            if node.op_type == "Constant":
                for a in node.attribute:
                    if a.name == "value":
                        put(a.t, node.output[0])
    onnx.save(m, dst)
    print(f"{count} weights substituted")


if __name__ == "__main__":
    main()
