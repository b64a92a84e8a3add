"""check_model.py — run onnx.checker (Debian's python3-onnx) on ONNX files modelpress wrote.

    /usr/bin/python3 check_model.py FILE...

A file whose IR version is above what this onnx knows (onnx 1.12: IR 8) is reported and not
checked; any other failure exits 1 with the checker's message.
"""
import sys

import onnx


def main():
    status = 0
    for path in sys.argv[1:]:
        m = onnx.load(path)
        if m.ir_version > onnx.IR_VERSION:
            print(f"{path}: IR {m.ir_version} is newer than onnx {onnx.__version__} checks "
                  f"(IR <= {onnx.IR_VERSION}): not checked")
            continue
        try:
            onnx.checker.check_model(m)
            print(f"{path}: passes onnx.checker (onnx {onnx.__version__}, IR {m.ir_version})")
        except onnx.checker.ValidationError as e:
            print(f"{path}: onnx.checker: {str(e).splitlines()[0]}")
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
