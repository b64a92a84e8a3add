#!/usr/bin/python3
"""prune_ref.py — modelpress's pruning masks against PyTorch's, on the same tensors.

Run by test_prune_ref.sh with Debian's /usr/bin/python3 (NumPy, torch 1.13):

    prune_ref.py --tool BUILD/tests/reference/prune_tool --fixture tests/fixtures/fmnist_mlp.safetensors --tmp DIR

Asserts, printing the figures:
- 90 % magnitude pruning of a 1024 x 1024 random normal matrix and of the fixture's fc1.weight
  (256 x 784): our mask equals torch.nn.utils.prune.l1_unstructured(module, 'weight',
  amount=0.9)'s weight_mask, ties aside. Both prune exactly round(0.9 n) entries; entries
  where the masks differ are counted and allowed only among those whose magnitude equals the
  cut (the k-th smallest |w|), where the two orders of equal values may legitimately differ.
- Channel pruning by L1 and L2 norm (n = 1, 2) of a random 96 x 300 matrix at 30 % and 50 %:
  our mask equals torch.nn.utils.prune.ln_structured(module, 'weight', amount, n, dim=0)'s
  exactly (random rows have norms far apart, so there are no ties to set aside), and L1 and L2
  choose different rows there.
The random matrix takes our sampled-band path (over 2^18 entries), the fixture our direct
selection.
The inputs must hold no zeros: the tool reads "pruned" off the zeros it finds afterwards.
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
    import torch.nn.utils.prune as tprune
except ImportError as e:  # the shell script checks first; this is the last line of defence
    print("prune_ref.py: SKIP: %s (apt-get install python3-numpy python3-torch)" % e,
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


def run_tool(what, tool, tmp, w, *extra):
    """Writes w, runs the tool, returns (our keep mask as bool array, number pruned)."""
    rows, cols = w.shape
    src, dst = os.path.join(tmp, "w.f32"), os.path.join(tmp, "w.mask")
    w.astype("<f4").tofile(src)
    cmd = [tool, what, src, str(rows), str(cols)] + [str(e) for e in extra] + [dst]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit("prune_ref.py: %s failed (%d): %s" % (" ".join(cmd), out.returncode,
                                                                 out.stderr.strip()))
    mask = np.fromfile(dst, dtype=np.uint8).reshape(rows, cols)
    assert set(np.unique(mask)) <= {0, 1}, "mask bytes other than 0 and 1"
    return mask.astype(bool), int(out.stdout.strip())


def linear_with(w):
    rows, cols = w.shape
    m = torch.nn.Linear(cols, rows, bias=False)
    with torch.no_grad():
        m.weight.copy_(torch.from_numpy(np.array(w, dtype=np.float32)))  # a writable copy
    return m


def compare_magnitude(label, w, tool, tmp, amount=0.9):
    n = w.size
    check(np.count_nonzero(w) == n, "%s: the input has no zeros" % label)
    ours, pruned = run_tool("magnitude", tool, tmp, w, amount)
    m = linear_with(w)
    tprune.l1_unstructured(m, "weight", amount=amount)
    theirs = m.weight_mask.detach().numpy().astype(bool)
    k = round(amount * n)  # torch's count (Python rounding; no half cases here)
    mag = np.abs(w)
    t = np.partition(mag.ravel(), k - 1)[k - 1]  # the k-th smallest magnitude: the cut
    differ = ours != theirs
    n_differ = int(differ.sum())
    n_at_cut = int((mag == t).sum())
    print("%s: %d x %d, k = %d, cut |w| = %.9g (%d entries at it), masks differ at %d entries"
          % (label, w.shape[0], w.shape[1], k, t, n_at_cut, n_differ))
    check(pruned == k, "%s: we prune exactly %d entries (tool says %d)" % (label, k, pruned))
    check(int((~ours).sum()) == k, "%s: our mask has %d zeros" % (label, k))
    check(int((~theirs).sum()) == k, "%s: torch's mask has %d zeros" % (label, k))
    check(bool(np.all(mag[differ] == t)),
          "%s: every differing entry has |w| equal to the cut (ties aside)" % label)
    if n_at_cut == 1:  # no ties at all: nothing may differ
        check(n_differ == 0, "%s: masks identical (%d differing entries)" % (label, n_differ))
    # below the cut both prune, above it both keep
    check(bool(np.all(~ours[mag < t]) and np.all(ours[mag > t])),
          "%s: we prune every |w| below the cut and keep every one above" % label)


def compare_channels(w, tool, tmp, amount, norm):
    label = "channels L%d %.0f%%" % (norm, amount * 100)
    ours, removed = run_tool("channels", tool, tmp, w, amount, norm)
    m = linear_with(w)
    tprune.ln_structured(m, "weight", amount=amount, n=norm, dim=0)
    theirs = m.weight_mask.detach().numpy().astype(bool)
    k = round(amount * w.shape[0])
    n_differ = int((ours != theirs).sum())
    rows_ours = np.flatnonzero(~ours.all(axis=1))
    rows_theirs = np.flatnonzero(~theirs.all(axis=1))
    print("%s: %d of %d rows removed (torch %d), masks differ at %d entries"
          % (label, len(rows_ours), w.shape[0], len(rows_theirs), n_differ))
    check(removed == k and len(rows_ours) == k, "%s: we remove exactly %d rows" % (label, k))
    check(n_differ == 0, "%s: masks identical (%d differing entries)" % (label, n_differ))
    return frozenset(rows_ours.tolist())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tool", required=True)
    ap.add_argument("--fixture", required=True)
    ap.add_argument("--tmp", required=True)
    a = ap.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(20260)

    compare_magnitude("random 1024x1024", rng.standard_normal((1024, 1024)).astype(np.float32),
                      a.tool, a.tmp)
    compare_magnitude("fixture fc1.weight", read_safetensors(a.fixture, "fc1.weight"), a.tool,
                      a.tmp)
    w = rng.standard_normal((96, 300)).astype(np.float32)
    chosen = {}
    for norm in (1, 2):
        for amount in (0.3, 0.5):
            chosen[norm, amount] = compare_channels(w, a.tool, a.tmp, amount, norm)
    # the two norms must rank these rows differently, or the L2 case would prove nothing new
    n_l1_only = len(chosen[1, 0.3] - chosen[2, 0.3])
    check(n_l1_only > 0, "L1 and L2 remove different rows at 30%% (%d rows differ)" % n_l1_only)

    if failures:
        print("prune_ref.py: %d assertion(s) failed" % len(failures), file=sys.stderr)
        return 1
    print("prune_ref.py: all assertions hold")
    return 0


if __name__ == "__main__":
    sys.exit(main())
