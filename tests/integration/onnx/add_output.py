"""add_output.py — a copy of an ONNX model that also returns some of its inner tensors.

    /usr/bin/python3 add_output.py IN.onnx OUT.onnx TENSOR...

Each TENSOR (the name of a node output) is appended to the graph's outputs, so both runtimes
report it; the model's own outputs and their order are unchanged. Exit 1 when a name is not a
node output of the main graph.
"""
import sys

import onnx


def main():
    src, dst, names = sys.argv[1], sys.argv[2], sys.argv[3:]
    model = onnx.load(src)
    produced = {o for n in model.graph.node for o in n.output}
    for name in names:
        if name not in produced:
            print(f"add_output.py: no node of {src} outputs '{name}'", file=sys.stderr)
            return 1
        model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    onnx.save(model, dst)
    return 0


if __name__ == "__main__":
    sys.exit(main())
