#!/usr/bin/python3
"""quant_ref.py — modelpress's quantization codes against PyTorch's, on the same scales.

Run by test_quant_ref.sh with Debian's /usr/bin/python3 (NumPy, torch 1.13):

    quant_ref.py --tool BUILD/tests/reference/quant_tool --fixture tests/fixtures/fmnist_mlp.safetensors --tmp DIR

For each matrix the tool quantizes at every width 2..8, symmetric and asymmetric, per channel,
per group and per tensor, and writes codes, scales, zero points and dequantized values. Given
OUR scales and zero points, PyTorch must then produce exactly our codes:
- 8 bits per channel: torch.quantize_per_channel(w, scales, zero_points, axis=0,
  dtype=torch.qint8).int_repr() equals our symmetric int8 codes (those of mp__quant_affine
  and of the pipeline's mp__quant_i8_sym alike), and with torch.quint8 our asymmetric uint8
  codes; per tensor likewise with torch.quantize_per_tensor; per group with
  quantize_per_channel on the matrix viewed as (rows * cols / group) x group.
- Every width 2..8: the same calls clamped to our code range ([-qmax, qmax] or [0, 2^b - 1];
  a clamp that changes anything is counted) equal our codes, and
  torch.fake_quantize_per_channel_affine(w, scales, zero_points, 0, qmin, qmax) equals our
  dequantized values bit for bit.
The matrices: a 64 x 300 random one (rows of very different magnitudes, a zero row, rows all
positive, all negative, constant), the fixture's fc1.weight (256 x 784), two 512 x 1024 built so
that w * (1/scale) lands exactly on k + 1/2 (rounding ties) for most elements — one for the
symmetric scales, one for the asymmetric ones with odd and even zero points, where rounding
before or after adding the zero point would differ — and a 1 x 1.
The rule both follow, documented in core/methods_int.h: code = clamp(nearbyint(w * fl(1/s)) + zp),
the reciprocal taken in float, rounding half to even, the zero point added after rounding. The
script prints how many ties and how many "division would round differently" elements each run
met, and fails if a tie matrix does not contain ties.
Exit 0 when every assertion holds, 1 otherwise, 77 when torch or numpy is missing.
"""
import argparse
import json
import os
import struct
import subprocess
import sys

try:
    import numpy as np
    import torch
except ImportError as e:  # the shell script checks first; this is the last line of defence
    print("quant_ref.py: SKIP: %s (apt-get install python3-numpy python3-torch)" % e,
          file=sys.stderr)
    sys.exit(77)

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def read_safetensors(path, name):
    """One F32 tensor of a safetensors file, as a NumPy array (a few lines of the format)."""
    with open(path, "rb") as f:
        data = f.read()
    (hlen,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + hlen])
    t = header[name]
    assert t["dtype"] == "F32", t
    lo, hi = t["data_offsets"]
    return np.frombuffer(data[8 + hlen + lo:8 + hlen + hi], dtype="<f4").reshape(t["shape"])


def run_tool(tool, tmp, w, group):
    """Writes w, runs the tool; returns {(bits, asym): (codes, scales, zps, deq)} and the int8
    codes and scales of mp__quant_i8_sym (None unless per channel)."""
    rows, cols = w.shape
    src, out = os.path.join(tmp, "w.f32"), os.path.join(tmp, "out")
    os.makedirs(out, exist_ok=True)
    w.astype("<f4").tofile(src)
    cmd = [tool, src, str(rows), str(cols), str(group), out]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit("quant_ref.py: %s failed (%d): %s" % (" ".join(cmd), res.returncode,
                                                               res.stderr.strip()))

    def load(name, dtype):
        return np.fromfile(os.path.join(out, name), dtype=dtype)

    runs = {}
    for bits in range(2, 9):
        for asym in (0, 1):
            p = "b%d_%s_" % (bits, "asym" if asym else "sym")
            codes = load(p + "codes.u8", "u1" if asym else "i1").reshape(rows, cols)
            scales = load(p + "scales.f32", "<f4")
            zps = load(p + "zp.i32", "<i4") if asym else np.zeros(scales.size, dtype="<i4")
            runs[bits, asym] = (codes, scales, zps, load(p + "deq.f32", "<f4").reshape(rows, cols))
    i8 = None
    if group == cols:
        i8 = (load("i8_codes.u8", "i1").reshape(rows, cols), load("i8_scales.f32", "<f4"))
    return runs, i8


def code_range(bits, asym):
    return (0, (1 << bits) - 1) if asym else (-((1 << (bits - 1)) - 1), (1 << (bits - 1)) - 1)


def torch_codes(w, scales, zps, asym, per_tensor):
    """PyTorch's codes for w (one scale per row of w, or one for all) as an int64 array."""
    dtype = torch.quint8 if asym else torch.qint8
    t = torch.from_numpy(np.ascontiguousarray(w))
    if per_tensor:
        q = torch.quantize_per_tensor(t, float(scales[0]), int(zps[0]), dtype)
    else:
        q = torch.quantize_per_channel(t, torch.from_numpy(scales.astype(np.float64)),
                                       torch.from_numpy(zps.astype(np.int64)), 0, dtype)
    return q.int_repr().numpy().astype(np.int64)


def rounding_figures(w, scales):
    """(exact ties, elements where w / s and w * fl(1/s) round differently) for w viewed with
    one scale per row: the cases where the rule matters."""
    inv = (np.float32(1) / scales.astype(np.float32))[:, None]
    y = w * inv  # float32 products, as both implementations compute them
    ties = int(np.count_nonzero(y - np.floor(y) == np.float32(0.5)))
    by_div = np.rint(w.astype(np.float64) / scales.astype(np.float64)[:, None])
    return ties, int(np.count_nonzero(np.rint(y) != by_div))


def compare(label, w, tool, tmp, group, ties_for=None):
    """Quantizes w with groups of `group` along each row (group == cols: per channel; a 1-row w
    with group == cols: per tensor) and holds every width and scheme against PyTorch.
    ties_for = (asym, n): the 8-bit run of that scheme must meet at least n exact ties."""
    rows, cols = w.shape
    assert cols % group == 0, "torch sees groups as the rows of a reshaped matrix"
    runs, i8 = run_tool(tool, tmp, w, group)
    per_tensor = rows == 1 and group == cols
    view = w.reshape(-1, group)  # one row per group, in the order of our scales
    ties8 = {}
    for (bits, asym), (codes, scales, zps, deq) in sorted(runs.items()):
        what = "%s, %d bits %s" % (label, bits, "asymmetric" if asym else "symmetric")
        ties, div_diff = rounding_figures(view, scales)
        if bits == 8:
            ties8[asym] = ties
        qmin, qmax = code_range(bits, asym)
        theirs = torch_codes(view, scales, zps, asym, per_tensor).reshape(rows, cols)
        ours = codes.astype(np.int64)
        clamped = np.clip(theirs, qmin, qmax)
        n_clamped = int(np.count_nonzero(clamped != theirs))
        if bits == 8:
            n_diff = int(np.count_nonzero(ours != theirs))
            check(n_diff == 0, "%s: codes identical to torch's int_repr (%d differ; %d ties, "
                  "%d where division would round otherwise)" % (what, n_diff, ties, div_diff))
        else:
            n_diff = int(np.count_nonzero(ours != clamped))
            check(n_diff == 0, "%s: codes identical to torch's clamped to [%d, %d] (%d differ, "
                  "%d clamped; %d ties)" % (what, qmin, qmax, n_diff, n_clamped, ties))
        fq = torch.fake_quantize_per_channel_affine(
            torch.from_numpy(np.ascontiguousarray(view)), torch.from_numpy(scales),
            torch.from_numpy(zps.astype(np.int32)), 0, qmin, qmax).numpy().reshape(rows, cols)
        n_fq = int(np.count_nonzero(fq.view(np.uint32) != deq.view(np.uint32)))
        check(n_fq == 0, "%s: dequantized values bit-identical to torch's "
              "fake_quantize_per_channel_affine (%d differ)" % (what, n_fq))
    if i8 is not None:
        ours8, s8 = runs[8, 0][0], runs[8, 0][1]
        check(np.array_equal(i8[0], ours8) and np.array_equal(i8[1].view(np.uint32),
                                                              s8.view(np.uint32)),
              "%s: mp__quant_i8_sym gives the same int8 codes and scales" % label)
    if ties_for:
        asym, n = ties_for
        check(ties8[asym] >= n, "%s: %d exact ties at 8 bits %s (at least %d)"
              % (label, ties8[asym], "asymmetric" if asym else "symmetric", n))


def random_matrix(rng):
    """64 x 300: rows of magnitude 10^[-3, 3), a zero row, all-positive and all-negative rows,
    a constant row, a row with one huge outlier."""
    w = (rng.standard_normal((64, 300)) * 10.0 ** rng.uniform(-3, 3, (64, 1))).astype(np.float32)
    w[5] = 0
    w[6] = np.abs(w[6]) + 0.5
    w[7] = -np.abs(w[7]) - 0.25
    w[8] = 0.75
    w[9, 17] = 1e4
    return w


def tie_matrix_sym(rng):
    """512 x 1024, row r with scale 2^e (e = r % 13 - 6): element 0 is the absmax 127 * 2^e (its
    sign alternating), the others (k + 1/2) * 2^e for k in [-127, 126], so that
    w * (1/scale) = k + 1/2 exactly (1/2^e is exact), except one in eight drawn at random."""
    rows, cols = 512, 1024
    e = (np.arange(rows) % 13 - 6).astype(np.float64)[:, None]
    k = rng.integers(-127, 127, (rows, cols)).astype(np.float64)
    w = (k + 0.5) * 2.0 ** e
    noise = rng.uniform(-127, 127, (rows, cols)) * 2.0 ** e
    w = np.where(rng.random((rows, cols)) < 0.125, noise, w)
    w[:, 0] = np.where(np.arange(rows) % 2 == 0, 127.0, -127.0) * 2.0 ** e[:, 0]
    return w.astype(np.float32)


def tie_matrix_asym(rng):
    """512 x 1024 for the asymmetric scales: row r spans exactly [-z 2^e, (255 - z) 2^e] with
    z = r % 256 (odd and even zero points, 0 and 255 included), so the scale is 2^e; the other
    elements are (k + 1/2) 2^e inside that range — ties whose result depends on rounding before
    adding the zero point (ours and torch's) or after (rint(zp + x) would round 0.5 + odd zp up)."""
    rows, cols = 512, 1024
    r = np.arange(rows)
    z = (r % 256).astype(np.float64)[:, None]
    e = (r % 7 - 3).astype(np.float64)[:, None]
    k = rng.integers(0, 255, (rows, cols)).astype(np.float64) - z  # k + 1/2 in [-z, 255 - z)
    w = (k + 0.5) * 2.0 ** e
    w[:, 0] = -z[:, 0] * 2.0 ** e[:, 0]
    w[:, 1] = (255 - z[:, 0]) * 2.0 ** e[:, 0]
    return w.astype(np.float32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tool", required=True)
    ap.add_argument("--fixture", required=True)
    ap.add_argument("--tmp", required=True)
    a = ap.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(20260)

    w = random_matrix(rng)
    compare("random 64x300 per channel", w, a.tool, a.tmp, 300)
    compare("random 64x300 groups of 100", w, a.tool, a.tmp, 100)
    compare("random 64x300 per tensor", w.reshape(1, -1), a.tool, a.tmp, w.size)

    fc1 = np.array(read_safetensors(a.fixture, "fc1.weight"))
    compare("fc1.weight 256x784 per channel", fc1, a.tool, a.tmp, 784)
    compare("fc1.weight 256x784 groups of 16", fc1, a.tool, a.tmp, 16)
    compare("fc1.weight per tensor", fc1.reshape(1, -1), a.tool, a.tmp, fc1.size)

    ts = tie_matrix_sym(rng)
    compare("ties 512x1024 per channel", ts, a.tool, a.tmp, 1024, ties_for=(0, 400000))
    compare("ties 512x1024 groups of 128", ts, a.tool, a.tmp, 128)
    ta = tie_matrix_asym(rng)
    compare("asymmetric ties 512x1024 per channel", ta, a.tool, a.tmp, 1024,
            ties_for=(1, 500000))

    compare("1x1", np.array([[-3.25]], dtype=np.float32), a.tool, a.tmp, 1)

    if failures:
        print("quant_ref.py: %d check(s) failed:" % len(failures))
        for f in failures:
            print("  " + f)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
