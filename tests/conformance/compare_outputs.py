"""compare_outputs.py — the evaluation runtime's outputs against onnxruntime-node's.

    /usr/bin/python3 compare_outputs.py NAME ORT.bin ORT.json OURS.bin TOL [OUTPUT=TOL ...]

ORT.json is the line ort_run.js prints ({"outputs": [...], "dims": {name: dims}}); both .bin
files hold every output of every run as float32, outputs in that order. For each output of each
run the error is max|ours - ort| / max|ort| (relative to the output's largest magnitude, so a
near-zero element does not dominate); prints the largest per output and fails (exit 1) when any
exceeds TOL (or the tolerance given for that output by name), or when the files differ in size.
"""
import json
import sys

import numpy as np


def main():
    name, ort_bin, ort_json, ours_bin, tol = sys.argv[1:6]
    tol = float(tol)
    tols = dict(a.split("=", 1) for a in sys.argv[6:])
    with open(ort_json) as f:
        meta = json.loads(f.read().strip().splitlines()[-1])
    ref = np.fromfile(ort_bin, "<f4")
    got = np.fromfile(ours_bin, "<f4")
    if ref.size != got.size:
        print(f"{name}: {got.size} values, onnxruntime gave {ref.size}")
        return 1
    sizes = [int(np.prod(meta["dims"][o])) for o in meta["outputs"]]
    per_run = sum(sizes)
    runs = ref.size // per_run
    worst = {o: 0.0 for o in meta["outputs"]}
    for r in range(runs):
        at = r * per_run
        for o, n in zip(meta["outputs"], sizes):
            a, b = got[at:at + n], ref[at:at + n]
            scale = float(np.abs(b).max()) or 1.0
            err = float(np.abs(a.astype(np.float64) - b).max()) / scale if n else 0.0
            if not np.isfinite(err):
                err = float("inf")
            worst[o] = max(worst[o], err)
            at += n
    limit = {o: float(tols.get(o, tol)) for o in worst}
    ok = all(e <= limit[o] for o, e in worst.items())
    figures = ", ".join(f"{o} {e:.2e} (<= {limit[o]:g})" for o, e in worst.items())
    print(f"{name}: {runs} runs, max relative error per output: {figures}: "
          f"{'within' if ok else 'NOT within'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
