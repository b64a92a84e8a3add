"""compare_outputs.py — the evaluation runtime's outputs against onnxruntime-node's.

    /usr/bin/python3 compare_outputs.py NAME ORT.bin ORT.json OURS.bin TOL [OUTPUT=RULE ...]

ORT.json is the line ort_run.js prints ({"outputs": [...], "dims": {name: dims}}); both .bin
files hold every output of every run as float32, outputs in that order. For each output of each
run the error is max|ours - ort| / max|ort| (relative to the output's largest magnitude, so a
near-zero element does not dominate); prints the largest per output and fails (exit 1) when any
exceeds TOL, or when the files differ in size. A RULE changes how one output is judged:

- a number: that output's own tolerance instead of TOL;
- `track`: the runs are consecutive chunks of one signal (a recurrent model fed its own state),
  and the output is judged as the one track it forms: relative to its largest magnitude over
  all runs rather than each run's own. A one-element output judged per run would otherwise be
  an element's error relative to itself, which for a probability near zero is below the
  resolution of onnxruntime's own logistic (it returns multiples of 2^-25 below 0.5, i.e.
  1.3e-4 relative at 2.4e-4). Both figures are printed.
- `peaks:HEAT`: the output keeps HEAT where HEAT equals the maximum of its 3x3 window and is 0
  elsewhere (MaxPool + Equal + Mul, as M-LSD computes its line-centre scores), HEAT being
  another output of the same run (same element count, both read as square 2-D maps). The
  continuous HEAT is judged by TOL like any output. Where both runtimes make the same keep
  decision, the values must agree within TOL. A decision may differ only where it is a tie
  within the measured disagreement: the element's gap to the largest other value of its window,
  in onnxruntime's HEAT, is at most twice the largest |ours - ort| of HEAT in that run. (A
  1-ulp difference anywhere upstream moves such a near-tie either way, and onnxruntime's
  logistic makes exact ties common.) The number of differing decisions and the largest such
  gap are printed.
"""
import json
import sys

import numpy as np


def rel_err(a, b, scale=None):
    """max|a - b| / scale (default: max|b|), in float64; inf when not finite."""
    if a.size == 0:
        return 0.0
    if scale is None:
        scale = float(np.abs(b).max()) or 1.0
    err = float(np.abs(a.astype(np.float64) - b).max()) / scale
    return err if np.isfinite(err) else float("inf")


def window_others_max(m):
    """Per element, the largest value among the other elements of its 3x3 window."""
    p = np.pad(m.astype(np.float64), 1, constant_values=-np.inf)
    h, w = m.shape
    best = np.full(m.shape, -np.inf)
    for dy in range(3):
        for dx in range(3):
            if dy != 1 or dx != 1:
                best = np.maximum(best, p[dy:dy + h, dx:dx + w])
    return best


def square(v):
    side = int(round(v.size ** 0.5))
    if side * side != v.size:
        raise SystemExit(f"peaks: an output of {v.size} elements is not a square map")
    return v.reshape(side, side)


def judge_peaks(got, ref, heat_got, heat_ref, tol):
    """(error where decisions agree, differing decisions, largest gap, gap limit, ok)."""
    g, r = square(got), square(ref)
    hg, hr = square(heat_got).astype(np.float64), square(heat_ref).astype(np.float64)
    delta = float(np.abs(hg - hr).max())
    same = (g != 0) == (r != 0)
    scale = float(np.abs(r).max()) or 1.0
    err = rel_err(g[same], r[same], scale)
    gaps = np.abs(hr - window_others_max(hr))[~same]
    gap = float(gaps.max()) if gaps.size else 0.0
    return err, int((~same).sum()), gap, 2 * delta, err <= tol and gap <= 2 * delta


def main():
    name, ort_bin, ort_json, ours_bin, tol = sys.argv[1:6]
    tol = float(tol)
    rules = dict(a.split("=", 1) for a in sys.argv[6:])
    with open(ort_json) as f:
        meta = json.loads(f.read().strip().splitlines()[-1])
    outputs = meta["outputs"]
    ref = np.fromfile(ort_bin, "<f4")
    got = np.fromfile(ours_bin, "<f4")
    if ref.size != got.size:
        print(f"{name}: {got.size} values, onnxruntime gave {ref.size}")
        return 1
    for o, rule in rules.items():
        heat = rule[6:] if rule.startswith("peaks:") else None
        if o not in outputs or (heat is not None and heat not in outputs):
            print(f"{name}: rule {o}={rule} names no output of {outputs}")
            return 1
    sizes = [int(np.prod(meta["dims"][o])) for o in outputs]
    per_run = sum(sizes)
    runs = ref.size // per_run
    starts = dict(zip(outputs, np.cumsum([0] + sizes[:-1])))

    def values(arr, r, o):
        at = r * per_run + starts[o]
        return arr[at:at + sizes[outputs.index(o)]]

    worst = {o: 0.0 for o in outputs}
    notes = {}
    ok = True
    for o in outputs:
        rule = rules.get(o, "")
        limit = tol if rule in ("", "track") or rule.startswith("peaks:") else float(rule)
        if rule == "track":
            a = np.concatenate([values(got, r, o) for r in range(runs)])
            b = np.concatenate([values(ref, r, o) for r in range(runs)])
            worst[o] = rel_err(a, b)
            per_run_worst = max(rel_err(values(got, r, o), values(ref, r, o)) for r in range(runs))
            notes[o] = f"of the track over {runs} runs; per run {per_run_worst:.2e}"
        elif rule.startswith("peaks:"):
            heat = rule[6:]
            differ, gap, gap_limit = 0, 0.0, 0.0
            for r in range(runs):
                e, n, g, gl, good = judge_peaks(values(got, r, o), values(ref, r, o),
                                                values(got, r, heat), values(ref, r, heat), tol)
                worst[o] = max(worst[o], e)
                differ, gap, gap_limit = differ + n, max(gap, g), max(gap_limit, gl)
                ok = ok and good
            notes[o] = (f"where the keep decisions agree; {differ} differ, at most {gap:.2e} from "
                        f"their window's maximum in onnxruntime's {heat} (ties allowed to "
                        f"{gap_limit:.2e})")
        else:
            for r in range(runs):
                worst[o] = max(worst[o], rel_err(values(got, r, o), values(ref, r, o)))
        ok = ok and worst[o] <= limit
        notes[o] = f"{worst[o]:.2e} (<= {limit:g})" + (f" {notes[o]}" if o in notes else "")
    figures = ", ".join(f"{o} {notes[o]}" for o in outputs)
    print(f"{name}: {runs} runs, max relative error per output: {figures}: "
          f"{'within' if ok else 'NOT within'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
