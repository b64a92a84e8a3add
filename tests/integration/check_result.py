#!/usr/bin/python3
"""check_result.py — judge a pruned + int8-quantized safetensors model against its original.

Used by test_e2e.sh on what modelpressd (and the modelpress command) made of
tests/fixtures/fmnist_mlp.safetensors with the recipe
{"steps":[{"prune":{"sparsity":S}},{"quantize":{"bits":8}}]}, i.e. magnitude pruning per layer
followed by symmetric per-channel int8 (DESIGN.md, Recipes and Outputs; core/methods_int.h).
NumPy only. Exits 0 when every check holds, 1 with every failed check listed otherwise.

What it asserts, for each 2-D F32 weight L.weight of the original ([rows, cols], n elements):
- the result stores L.weight as I8 of the same shape and L.weight_scale as F32 [rows], no
  zero point (symmetric); an optional L.weight_shape must equal the original shape;
- scale[r] == max |pruned[r, :]| / 127 (to 2^-20 relative), or 1 for a row pruned whole
  (the fixture has 17 such rows in fc1.weight);
- exactly k = llround(S * n) elements are 0, and they are the k of smallest |orig| (ties to
  the earlier index); every other element dequantizes within half a step of the original:
  |q * scale - orig| <= scale * (0.5 + 2^-14). The 2^-14 covers float32 rounding of w * (1/scale)
  (|q| <= 127, so about 127 * 2^-23 of a step) and of q * scale (about 2^-17 of a step);
- 1-D tensors (biases) are byte-identical, with the same dtype and shape;
- no other tensors; the data section starts 8-byte aligned; the file is 0.24-0.30 of the
  original's size;
- the report (DESIGN.md, Reports) lists L.weight with the original shape, elements n, sparsity
  equal to the zeros the file holds, bytes_before = 4n, bytes_after = the bytes of L.weight and
  its companions in the file, rel_error and sqnr_db matching ||deq - orig|| / ||orig||;
  the report's bytes_before and bytes_after (top level) are the tensor data bytes of the two
  files, compression_ratio is their quotient, and stages are prune then quantize, the last one
  at the result's size.
"""

import argparse
import json
import math
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # the source tree may be read-only (make distcheck)
sys.path.insert(0, os.path.join(HERE, "..", "fixtures"))
from make_fmnist_mlp import read_safetensors  # noqa: E402  (the strict reader)

STEP_SLACK = 2.0 ** -14      # of a quantization step, see the docstring
SCALE_RTOL = 2.0 ** -20
FIGURE_RTOL = 1e-5           # report figures recomputed here in float64
COMPANIONS = ("_scale", "_zero_point", "_shape")

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
    return cond


def close(a, b, rtol):
    return a is not None and b is not None and abs(a - b) <= rtol * max(abs(a), abs(b), 1e-300)


def llround(x):
    return int(math.floor(x + 0.5))


def tensor_bytes(header, name):
    begin, end = header[name]["data_offsets"]
    return end - begin


def check_weight(name, orig, res, res_header, sparsity, entry):
    rows = orig.shape[0]
    n = orig.size
    if not check(name in res and res_header[name]["dtype"] == "I8",
                 "%s: stored as %s, expected I8" % (name, res_header.get(name, {}).get("dtype"))):
        return
    q = res[name]
    scale_name = name + "_scale"
    if not check(q.shape == orig.shape, "%s: shape %s, expected %s" % (name, q.shape, orig.shape)):
        return
    if not check(scale_name in res and res_header[scale_name]["dtype"] == "F32"
                 and res[scale_name].shape == (rows,),
                 "%s: expected F32 [%d], got %s" % (scale_name, rows, res_header.get(scale_name))):
        return
    check(name + "_zero_point" not in res, "%s_zero_point present for a symmetric scheme" % name)
    if name + "_shape" in res:
        check(list(res[name + "_shape"].ravel()) == list(orig.shape),
              "%s_shape is %s" % (name, list(res[name + "_shape"].ravel())))

    w = orig.astype(np.float64)
    s = res[scale_name].astype(np.float64)
    k = llround(sparsity * n)
    order = np.argsort(np.abs(w).ravel(), kind="stable")
    pruned = np.zeros(n, dtype=bool)
    pruned[order[:k]] = True
    pruned = pruned.reshape(orig.shape)
    # A row pruned whole has absmax 0 and gets scale 1, so it dequantizes to exact zeros.
    absmax = np.where(pruned, 0.0, np.abs(w)).max(axis=1)
    want = np.where(absmax > 0, absmax / 127.0, 1.0)
    bad = np.flatnonzero(np.abs(s - want) > SCALE_RTOL * want)
    check(bad.size == 0, "%s: %d scales differ from absmax/127 of the pruned row (1 for a row "
          "of zeros), first row %s: %r vs %r" % (scale_name, bad.size, bad[:1], s[bad[:1]],
                                                 want[bad[:1]]))
    qf = q.astype(np.float64)
    deq = qf * s[:, None]
    zeros = int(np.count_nonzero(q == 0))
    check(zeros == k, "%s: %d of %d elements are 0, expected llround(%g * %d) = %d"
          % (name, zeros, n, sparsity, n, k))
    wrong = int(np.count_nonzero(q[pruned] != 0))
    check(wrong == 0, "%s: %d of the %d smallest-magnitude elements are not 0" % (name, wrong, k))
    err = np.abs(deq - w)
    tol = np.broadcast_to(s[:, None] * (0.5 + STEP_SLACK), orig.shape)
    over = ~pruned & (err > tol)
    if not check(not over.any(), "%s: %d kept elements are more than half a step off"
                 % (name, int(over.sum()))):
        r, c = np.argwhere(over)[0]
        failures.append("  first at [%d,%d]: orig %r, q %d, scale %r, |error| %r > %r"
                        % (r, c, w[r, c], q[r, c], s[r], err[r, c], tol[r, c]))

    if not check(entry is not None, "report: no entry for %s" % name):
        return
    after = sum(tensor_bytes(res_header, name + sfx) for sfx in ("",) + COMPANIONS
                if name + sfx in res_header)
    rel = float(np.linalg.norm(deq - w) / np.linalg.norm(w))
    check(list(entry.get("shape", [])) == list(orig.shape),
          "report %s: shape %r" % (name, entry.get("shape")))
    check(entry.get("elements") == n, "report %s: elements %r, expected %d"
          % (name, entry.get("elements"), n))
    check(close(entry.get("sparsity"), zeros / n, 1e-9),
          "report %s: sparsity %r, the file holds %d/%d = %r zeros"
          % (name, entry.get("sparsity"), zeros, n, zeros / n))
    check(entry.get("bytes_before") == 4 * n, "report %s: bytes_before %r, expected 4 * %d"
          % (name, entry.get("bytes_before"), n))
    check(entry.get("bytes_after") == after, "report %s: bytes_after %r, the file holds %d bytes "
          "for it and its companions" % (name, entry.get("bytes_after"), after))
    check(close(entry.get("rel_error"), rel, FIGURE_RTOL),
          "report %s: rel_error %r, recomputed %r" % (name, entry.get("rel_error"), rel))
    check(close(entry.get("sqnr_db"), -20.0 * math.log10(rel), FIGURE_RTOL),
          "report %s: sqnr_db %r, recomputed %r" % (name, entry.get("sqnr_db"),
                                                    -20.0 * math.log10(rel)))
    bpw = entry.get("bits_per_weight")
    check(isinstance(bpw, (int, float)) and 8 - 1e-9 <= bpw <= 8.0 * after / n + 1e-9,
          "report %s: bits_per_weight %r outside [8, %r]" % (name, bpw, 8.0 * after / n))
    print("%-12s %s: %d zeros (%.4f), kept elements off by at most %.6f of a step, "
          "rel_error %.5f, %d -> %d bytes" % (name, list(orig.shape), zeros, zeros / n,
                                              float(np.max((err / s[:, None])[~pruned])), rel,
                                              4 * n, after))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("original")
    p.add_argument("result")
    p.add_argument("report", help="the report JSON of the job")
    p.add_argument("--sparsity", type=float, default=0.5)
    args = p.parse_args()

    orig, _, orig_header = read_safetensors(args.original)
    try:
        res, _, res_header = read_safetensors(args.result)
    except (ValueError, KeyError, UnicodeDecodeError) as e:
        print("FAIL: the result does not parse as safetensors: %s" % e)
        return 1
    with open(args.report) as f:
        report = json.load(f)
    entries = {e.get("name"): e for e in report.get("tensors", []) if isinstance(e, dict)}

    with open(args.result, "rb") as f:
        header_len = int.from_bytes(f.read(8), "little")
    check((8 + header_len) % 8 == 0, "result: data starts at byte %d, not 8-aligned"
          % (8 + header_len))

    expected = set()
    for name, t in sorted(orig.items()):
        if t.ndim >= 2:
            expected.update(name + sfx for sfx in ("", "_scale"))
            check_weight(name, t, res, res_header, args.sparsity, entries.get(name))
            if name + "_shape" in res:
                expected.add(name + "_shape")
        else:
            expected.add(name)
            same = (name in res and res_header[name]["dtype"] == orig_header[name]["dtype"]
                    and res[name].shape == t.shape and res[name].tobytes() == t.tobytes())
            check(same, "%s: not byte-identical to the original" % name)
            e = entries.get(name)
            if e is not None:
                check(e.get("bytes_before") == t.nbytes and e.get("bytes_after") == t.nbytes,
                      "report %s: a kept tensor with bytes %r -> %r, expected %d"
                      % (name, e.get("bytes_before"), e.get("bytes_after"), t.nbytes))
    extra = sorted(set(res) - expected)
    check(not extra, "result: unexpected tensors %s" % extra)

    size_o = os.path.getsize(args.original)
    size_r = os.path.getsize(args.result)
    check(0.24 <= size_r / size_o <= 0.30, "result is %d bytes, %.4f of the original's %d, "
          "expected 0.24-0.30" % (size_r, size_r / size_o, size_o))

    # The totals sit at the top level of the report, beside "tensors".
    data_o = sum(tensor_bytes(orig_header, n) for n in orig_header)
    data_r = sum(tensor_bytes(res_header, n) for n in res_header)
    check(report.get("bytes_before") == data_o, "report: bytes_before %r, the original holds %d "
          "bytes of tensor data" % (report.get("bytes_before"), data_o))
    check(report.get("bytes_after") == data_r, "report: bytes_after %r, the result holds %d "
          "bytes of tensor data" % (report.get("bytes_after"), data_r))
    check(close(report.get("compression_ratio"), data_o / data_r, 1e-6),
          "report: compression_ratio %r, expected %d/%d = %r"
          % (report.get("compression_ratio"), data_o, data_r, data_o / data_r))
    stages = report.get("stages")
    check(isinstance(stages, list) and [st.get("step") for st in stages] == ["prune", "quantize"]
          and stages[-1].get("bytes") == data_r,
          "report: stages %r, expected prune then quantize, the last at %d bytes"
          % (stages, data_r))
    print("file %d -> %d bytes (%.4f); tensor data %d -> %d bytes (ratio %.4f)"
          % (size_o, size_r, size_r / size_o, data_o, data_r, data_o / data_r))

    for f in failures:
        print("FAIL: " + f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
