#!/usr/bin/python3
"""lowrank_ref.py — modelpress's truncated SVD against NumPy's and PyTorch's, on the same matrices.

Run by test_lowrank_ref.sh with Debian's /usr/bin/python3 (NumPy, torch 1.13):

    lowrank_ref.py --tool BUILD/tests/reference/lowrank_tool --fixture tests/fixtures/fmnist_mlp.safetensors --tmp DIR

On a 512 x 384 random normal matrix (ranks 1, 16, 64, 192, 383) and on the fixture's fc1.weight
(256 x 784; ranks 1, 8, 32, 128, 255), every error being ||w - a b||_F / ||w||_F computed here
in float64 from the float32 factors, asserts and prints:
- exact: our rank-r error equals that of numpy.linalg.svd's truncation (float32 input, as people
  call it) within 1e-4 relative;
- randomized (n_iter 2): our error is at most 1.02 times torch.svd_lowrank(q=r, niter=2)'s for
  the same rank (torch seeded with 0);
- both: the error the tool reports equals the one recomputed here within 1e-4 relative, and the
  factor files hold exactly m*r floats (a = U_r S_r) and r*n floats (b = V_r^T).
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
    print("lowrank_ref.py: SKIP: %s (apt-get install python3-numpy python3-torch)" % e,
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


def rel_error(w, a, b):
    w64 = w.astype(np.float64)
    return float(np.linalg.norm(w64 - a.astype(np.float64) @ b.astype(np.float64)) /
                 np.linalg.norm(w64))


def run_tool(name, tool, tmp, w, r, mode):
    """Our factors (a, b) and the error the tool reports."""
    m, n = w.shape
    src = os.path.join(tmp, "w.f32")
    fa, fb = os.path.join(tmp, "a.f32"), os.path.join(tmp, "b.f32")
    w.astype("<f4").tofile(src)
    args = [tool, mode, src, str(m), str(n), str(r)]
    if mode == "randomized":
        args += ["2", "1"]
    out = subprocess.run(args + [fa, fb], check=True, capture_output=True, text=True).stdout
    reported = float(out.split()[1])
    a, b = np.fromfile(fa, dtype="<f4"), np.fromfile(fb, dtype="<f4")
    check(a.size == m * r and b.size == r * n,
          "%s rank %d %s: a holds %d floats (m*r = %d), b %d (r*n = %d)" %
          (name, r, mode, a.size, m * r, b.size, r * n))
    return a.reshape(m, r), b.reshape(r, n), reported


def numpy_error(w, r):
    u, s, vt = np.linalg.svd(w, full_matrices=False)
    return rel_error(w, u[:, :r] * s[:r], vt[:r])


def torch_error(w, r):
    torch.manual_seed(0)
    u, s, v = torch.svd_lowrank(torch.from_numpy(np.array(w, dtype=np.float32)), q=r, niter=2)
    return rel_error(w, (u * s).numpy(), v.T.numpy())


def compare(name, tool, tmp, w, ranks):
    for r in ranks:
        a, b, reported = run_tool(name, tool, tmp, w, r, "exact")
        ours, peer = rel_error(w, a, b), numpy_error(w, r)
        check(abs(ours / peer - 1.0) <= 1e-4,
              "%s rank %d exact: error %.7f, numpy.linalg.svd truncation %.7f (ratio - 1 = %.1e)"
              % (name, r, ours, peer, ours / peer - 1.0))
        check(abs(reported / ours - 1.0) <= 1e-4,
              "%s rank %d exact: reported %.7f, recomputed %.7f" % (name, r, reported, ours))

        a, b, reported = run_tool(name, tool, tmp, w, r, "randomized")
        ours, peer = rel_error(w, a, b), torch_error(w, r)
        check(ours <= peer * 1.02,
              "%s rank %d randomized: error %.7f, torch.svd_lowrank(q=%d, niter=2) %.7f "
              "(ratio %.4f, at most 1.02)" % (name, r, ours, r, peer, ours / peer))
        check(abs(reported / ours - 1.0) <= 1e-4,
              "%s rank %d randomized: reported %.7f, recomputed %.7f" % (name, r, reported, ours))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tool", required=True)
    ap.add_argument("--fixture", required=True)
    ap.add_argument("--tmp", required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)

    rng = np.random.default_rng(20260)
    w = rng.standard_normal((512, 384)).astype(np.float32)
    compare("random 512x384", args.tool, args.tmp, w, [1, 16, 64, 192, 383])
    fc1 = read_safetensors(args.fixture, "fc1.weight")
    compare("fc1.weight 256x784", args.tool, args.tmp, fc1, [1, 8, 32, 128, 255])

    if failures:
        print("%d check(s) failed" % len(failures))
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
