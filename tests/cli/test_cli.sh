#!/bin/sh
# test_cli.sh — the `modelpress` command as scripts use it (DESIGN.md, Command lines).
#
# Writes a small safetensors model with NumPy (F32, F16 and BF16 weights, an F32 bias, an I64
# table, metadata) into a temporary folder, then checks: compress --json prints exactly one JSON
# document whose figures match the file it wrote (element by element: zeros where magnitude
# pruning puts them, scales = row absmax / 127, every value within half a step); human output
# goes to stderr only; a bad recipe exits 2 naming the field and writes nothing; a truncated or
# missing model exits 1 (the job failed: the model is data, not usage); unpack restores F32
# exactly as q * scale; the .mpz round trip (on a 128 x 256 weight): prune 90 % + share 16
# written as safetensors and, by the -o name, as .mpz unpack to the same bytes, which are
# codebook[indices] with exactly 90 % zeros; a huffman recipe's stages shrink and end at the
# .mpz file's size, inspect shows the .mpz's record, and a .safetensors name is refused for it;
# 4-bit group codes decode in Python to what unpack gives; inspect lists what the default
# selection compresses.
#
# Run by `make check` with MODELPRESS and top_srcdir set; by hand:
#   MODELPRESS=build/cli/modelpress top_srcdir=. sh tests/cli/test_cli.sh
# Needs /usr/bin/python3 with NumPy; skips (exit 77, loudly) without it.

: "${top_srcdir:=$(dirname "$0")/../..}"
: "${top_builddir:=$top_srcdir}"
: "${MODELPRESS:=$top_builddir/cli/modelpress}"
. "$top_srcdir/tests/lib/common.sh"

mp_require_numpy
[ -x "$MODELPRESS" ] || mp_fail "MODELPRESS='$MODELPRESS' is not an executable"
mp_tmpdir
T=$MP_TMP

# mp_run WANT NAME ARGS…: run modelpress ARGS with stdout/stderr in $T/NAME.out and NAME.err,
# and fail unless it exits with WANT.
mp_run() {
    want=$1
    name=$2
    shift 2
    "$MODELPRESS" "$@" >"$T/$name.out" 2>"$T/$name.err"
    got=$?
    [ "$got" -eq "$want" ] ||
        mp_fail "modelpress $*: exit $got, expected $want; stderr: $(cat "$T/$name.err")"
}

# expect_err NAME TEXT: stderr of run NAME contains TEXT (fixed string).
expect_err() {
    grep -F -e "$2" "$T/$1.err" >/dev/null ||
        mp_fail "$1: stderr lacks \"$2\"; it says: $(cat "$T/$1.err")"
}

expect_no_stdout() {
    [ ! -s "$T/$1.out" ] || mp_fail "$1: wrote to stdout: $(head -c 300 "$T/$1.out")"
}

cat >"$T/check.py" <<'EOF'
"""Model maker and judge for test_cli.sh; every check raises on failure."""
import json
import math
import os
import struct
import sys

import numpy as np

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.environ["top_srcdir"], "tests", "fixtures"))
from make_fmnist_mlp import read_safetensors  # noqa: E402  (the strict reader)

STEP_SLACK = 2.0 ** -14   # float32 rounding of w * (1/scale) and q * scale, in steps
SCALE_RTOL = 2.0 ** -20
SPARSITY = 0.5


def write_model(path):
    rng = np.random.default_rng(7)
    f32 = rng.standard_normal((16, 32)).astype("<f4")
    bf16 = (rng.standard_normal((8, 4)).astype("<f4").view("<u4") >> 16).astype("<u2")
    tensors = [  # name, dtype, shape, bytes
        ("fc1.weight", "F32", [16, 32], f32.tobytes()),
        ("fc1.bias", "F32", [16], rng.standard_normal(16).astype("<f4").tobytes()),
        ("fc2.weight", "F16", [4, 16], rng.standard_normal((4, 16)).astype("<f2").tobytes()),
        ("emb", "BF16", [8, 4], bf16.tobytes()),
        ("pos", "I64", [5], np.arange(5, dtype="<i8").tobytes()),
    ]
    header = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, dt, shape, blob in tensors:
        header[name] = {"dtype": dt, "shape": shape, "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
    text = json.dumps(header).encode()
    text += b" " * (-(8 + len(text)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(t[3] for t in tensors))


def write_big(path):
    """One 128 x 256 F32 weight and its bias: big enough that the .mpz's own header and record
    are small beside what its coding saves."""
    rng = np.random.default_rng(11)
    w = rng.standard_normal((128, 256)).astype("<f4").tobytes()
    b = rng.standard_normal(128).astype("<f4").tobytes()
    header = {"fc.bias": {"dtype": "F32", "shape": [128], "data_offsets": [0, len(b)]},
              "fc.weight": {"dtype": "F32", "shape": [128, 256],
                            "data_offsets": [len(b), len(b) + len(w)]}}
    text = json.dumps(header).encode()
    text += b" " * (-(8 + len(text)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b + w)


def data_bytes(header):
    return sum(h["data_offsets"][1] - h["data_offsets"][0] for h in header.values())


def check(cond, what):
    if not cond:
        raise SystemExit("FAIL: " + what)


def close(a, b, rtol):
    return abs(a - b) <= rtol * max(abs(a), abs(b), 1e-300)


def check_compress(model, out, report_path):
    with open(report_path) as f:
        text = f.read()
    rep = json.loads(text)  # raises on anything but exactly one document
    check(text.count("\n") == 1 and text.endswith("\n"), "--json output is not one line")
    orig, ometa, ohead = read_safetensors(model)
    res, rmeta, rhead = read_safetensors(out)
    entries = {e["name"]: e for e in rep["tensors"]}
    weights = ["emb", "fc1.weight", "fc2.weight"]

    check(rep["n_tensors"] == 5 and rep["n_compressed"] == 3,
          "n_tensors %r, n_compressed %r" % (rep["n_tensors"], rep["n_compressed"]))
    check(sorted(entries) == weights, "report lists %s" % sorted(entries))
    check(sorted(res) == sorted(["fc1.bias", "pos"] + weights + [w + "_scale" for w in weights]),
          "output holds %s" % sorted(res))
    for name in ("fc1.bias", "pos"):
        check(rhead[name]["dtype"] == ohead[name]["dtype"]
              and res[name].tobytes() == orig[name].tobytes(), name + " changed")
    check(rmeta.get("format") == "pt", "input metadata lost: %r" % rmeta)
    record = json.loads(rmeta["modelpress"])
    check(record["version"] == 2, "record version %r" % record.get("version"))

    for name in weights:
        w = orig[name].astype(np.float64)
        n, rows = w.size, w.shape[0]
        q, s = res[name], res[name + "_scale"].astype(np.float64)
        e, rec = entries[name], record["tensors"][name]
        check(rhead[name]["dtype"] == "I8" and q.shape == w.shape, name + ": not I8 of its shape")
        check(rhead[name + "_scale"]["dtype"] == "F32" and s.shape == (rows,),
              name + "_scale: not F32 [rows]")
        check(rec["code"] == {"kind": "int", "bits": 8, "scheme": "symmetric",
                              "granularity": "channel"}
              and rec["dtype"] == ohead[name]["dtype"] and rec["shape"] == list(w.shape),
              name + ": record %r" % rec)
        k = int(math.floor(SPARSITY * n + 0.5))
        order = np.argsort(np.abs(w).ravel(), kind="stable")
        pruned = np.zeros(n, dtype=bool)
        pruned[order[:k]] = True
        pruned = pruned.reshape(w.shape)
        p = np.where(pruned, 0.0, w)
        want = np.abs(p).max(axis=1) / 127.0
        check(np.all(np.abs(s - want) <= SCALE_RTOL * want), name + ": scales != absmax/127")
        check(np.array_equal(q == 0, pruned), name + ": zeros are not the %d smallest" % k)
        deq = q.astype(np.float64) * s[:, None]
        check(np.all(np.abs(deq - p) <= s[:, None] * (0.5 + STEP_SLACK)),
              name + ": a value is more than half a step off")
        after = rhead[name]["data_offsets"][1] - rhead[name]["data_offsets"][0] \
            + rhead[name + "_scale"]["data_offsets"][1] - rhead[name + "_scale"]["data_offsets"][0]
        check(after == n + 4 * rows, name + ": %d bytes stored" % after)
        rel = float(np.linalg.norm(deq - w) / np.linalg.norm(w))
        check(e["shape"] == list(w.shape) and e["elements"] == n, name + ": shape/elements")
        check(e["sparsity"] == k / n, name + ": sparsity %r, expected %r" % (e["sparsity"], k / n))
        check(e["bytes_before"] == w.size * {"F32": 4, "F16": 2, "BF16": 2}[ohead[name]["dtype"]],
              name + ": bytes_before %r" % e["bytes_before"])
        check(e["bytes_after"] == after, name + ": bytes_after %r, file %d" % (e["bytes_after"],
                                                                              after))
        check(close(e["bits_per_weight"], 8.0 * after / n, 1e-12), name + ": bits_per_weight")
        check(close(e["rel_error"], rel, 1e-5), name + ": rel_error %r vs %r" % (e["rel_error"],
                                                                                 rel))
        check(close(e["sqnr_db"], -20 * math.log10(rel), 1e-5), name + ": sqnr_db")

    before, after = data_bytes(ohead), data_bytes(rhead)
    check((before, after) == (2344, 824), "data bytes %d -> %d" % (before, after))
    check(rep["bytes_before"] == before and rep["bytes_after"] == after,
          "totals %r -> %r, files %d -> %d" % (rep["bytes_before"], rep["bytes_after"], before,
                                               after))
    check(close(rep["compression_ratio"], before / after, 1e-12), "compression_ratio")
    check([(st["step"], st["bytes"]) for st in rep["stages"]]
          == [("prune", before), ("quantize", after)], "stages %r" % rep["stages"])
    check(isinstance(rep["isa"], str) and rep["duration_ms"] >= 0, "isa / duration_ms")
    print("compress: %d -> %d bytes, every figure matches the file" % (before, after))


def check_unpack(out, plain):
    res, _, _ = read_safetensors(out)
    got, meta, head = read_safetensors(plain)
    check(sorted(got) == ["emb", "fc1.bias", "fc1.weight", "fc2.weight", "pos"],
          "unpacked holds %s" % sorted(got))
    check("modelpress" not in meta and meta.get("format") == "pt", "metadata %r" % meta)
    for name in ("emb", "fc1.weight", "fc2.weight"):
        want = res[name].astype(np.float32) * res[name + "_scale"][:, None]
        check(head[name]["dtype"] == "F32" and np.array_equal(got[name], want),
              name + ": not q * scale in F32")
    for name in ("fc1.bias", "pos"):
        check(got[name].tobytes() == res[name].tobytes(), name + " changed")
    print("unpack: F32 equal to q * scale, the rest unchanged")


def check_share(model, out, plain, report_path, mpz_path, mpz_report_path):
    """prune 0.9 + share 16, written as safetensors and (by the -o name) as .mpz."""
    orig, _, _ = read_safetensors(model)
    res, _, rhead = read_safetensors(out)
    got, _, head = read_safetensors(plain)
    with open(report_path) as f:
        rep = json.load(f)
    with open(mpz_report_path) as f:
        mrep = json.load(f)
    entries = {e["name"]: e for e in rep["tensors"]}
    check(sorted(entries) == ["fc.weight"], "share: report lists %s" % sorted(entries))
    for name in ("fc.weight",):
        idx, book = res[name + "_indices"], res[name + "_codebook"]
        w = orig[name].astype(np.float32)
        check(rhead[name + "_indices"]["dtype"] == "U8" and idx.shape == w.shape
              and rhead[name + "_codebook"]["dtype"] == "F32" and book.shape == (16,),
              name + ": not U8 indices of its shape and 16 F32 entries")
        check(book[0] == 0.0 and np.array_equal(idx == 0, got[name] == 0),
              name + ": the zeros are not codebook entry 0")
        k = int(math.floor(0.9 * w.size + 0.5))
        check(int((got[name] == 0).sum()) == k, name + ": %d zeros, expected %d"
              % (int((got[name] == 0).sum()), k))
        check(head[name]["dtype"] == "F32" and np.array_equal(got[name], book[idx]),
              name + ": unpack is not codebook[indices]")
        d = got[name].astype(np.float64) - w.astype(np.float64)
        rel = float(np.linalg.norm(d) / np.linalg.norm(w.astype(np.float64)))
        e = entries[name]
        check(close(e["rel_error"], rel, 1e-6) and e["clusters"] == 16
              and e["bytes_after"] == w.size + 64, name + ": report %r" % e)
    size = os.path.getsize(mpz_path)
    check([s["step"] for s in rep["stages"]] == ["prune", "share"]
          and [s["step"] for s in mrep["stages"]] == ["prune", "share", "mpz"]
          and mrep["stages"][-1]["bytes"] == size and mrep["bytes_after"] == size
          and mrep["output_format"] == "mpz" and rep["output_format"] == "safetensors"
          and size < rep["bytes_after"],
          "stages %r / %r, .mpz %d bytes" % (rep["stages"], mrep["stages"], size))
    print("share: indices and codebook as stored, .mpz %d bytes < %d" % (size, rep["bytes_after"]))


def check_huffman(report_path, mpz_path, inspect_path):
    with open(report_path) as f:
        rep = json.load(f)
    with open(inspect_path) as f:
        info = json.load(f)
    size = os.path.getsize(mpz_path)
    b = [s["bytes"] for s in rep["stages"]]
    check([s["step"] for s in rep["stages"]] == ["prune", "share", "huffman"]
          and b[0] == 131584 and b[1] == 32768 + 64 + 512 and b[2] < b[1] and b[2] == size
          and rep["bytes_after"] == size
          and close(rep["compression_ratio"], 131584 / size, 1e-12),
          "stages %r, file %d" % (rep["stages"], size))
    check(info["container"] == "mpz" and info["file_bytes"] == size
          and info["compressed_by_modelpress"]
          and sorted(info["compressed"]) == ["fc.weight"]
          and info["compressed"]["fc.weight"]["code"] == {"kind": "share", "clusters": 16}
          and info["compressed"]["fc.weight"]["shape"] == [128, 256],
          "inspect of the .mpz: %r" % info)
    print("huffman: stages %r, the last the .mpz's %d bytes" % (b, size))


def check_int4(out, plain):
    """4-bit codes in groups of 16: nibbles offset by 8, unpacked as (code - 8) * scale."""
    res, _, rhead = read_safetensors(out)
    got, _, _ = read_safetensors(plain)
    for name in ("emb", "fc1.weight", "fc2.weight"):
        shape = [int(d) for d in res[name + "_shape"]]
        scale = res[name + "_scale"]
        packed = res[name + "_packed"]
        n = int(np.prod(shape))
        codes = np.empty(2 * packed.size, dtype=np.int32)
        codes[0::2], codes[1::2] = packed & 15, packed >> 4
        codes = codes[:n].reshape(shape[0], -1) - 8
        cols = codes.shape[1]
        groups = -(-cols // 16)
        check(rhead[name + "_packed"]["dtype"] == "U8" and packed.size == (n + 1) // 2
              and scale.shape == (shape[0], groups) and name not in res,
              name + ": not packed 4-bit codes with [rows, groups] scales")
        s = np.repeat(scale, 16, axis=1)[:, :cols]
        want = (codes.astype(np.float32) * s).reshape(shape)
        check(np.array_equal(got[name], want), name + ": unpack is not (code - 8) * scale")
    print("int4: nibbles and group scales decode to exactly what unpack gives")


def check_inspect(path):
    with open(path) as f:
        info = json.load(f)
    sel = {t["name"]: t["selected"] for t in info["tensors"]}
    check(sel == {"fc1.weight": True, "fc1.bias": False, "fc2.weight": True, "emb": True,
                  "pos": False}, "selection %r" % sel)
    check(info["n_tensors"] == 5 and info["parameters"] == 512 + 16 + 64 + 32 + 5
          and info["bytes"] == 2344 and info["n_selected"] == 3
          and info["selected_parameters"] == 608, "totals %r" % info)
    fc2 = [t for t in info["tensors"] if t["name"] == "fc2.weight"][0]
    check(fc2 == {"name": "fc2.weight", "dtype": "F16", "shape": [4, 16], "elements": 64,
                  "bytes": 128, "selected": True}, "fc2.weight: %r" % fc2)
    check(info["metadata"] == {"format": "pt"}, "metadata %r" % info["metadata"])
    print("inspect: tensors, sizes and the default selection as expected")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "make":
        write_model(sys.argv[2])
    elif cmd == "make_big":
        write_big(sys.argv[2])
    elif cmd == "compress":
        check_compress(*sys.argv[2:5])
    elif cmd == "unpack":
        check_unpack(*sys.argv[2:4])
    elif cmd == "inspect":
        check_inspect(sys.argv[2])
    elif cmd == "share":
        check_share(*sys.argv[2:8])
    elif cmd == "huffman":
        check_huffman(*sys.argv[2:5])
    elif cmd == "int4":
        check_int4(*sys.argv[2:4])
EOF
export top_srcdir
"$MP_PYTHON" "$T/check.py" make "$T/model.safetensors" || mp_fail "could not write the model"
printf '%s\n' '{"steps":[{"prune":{"sparsity":0.5}},{"quantize":{"bits":8}}]}' >"$T/recipe.json"

# ---- compress --------------------------------------------------------------------------------
mp_run 0 compress compress "$T/model.safetensors" -r "$T/recipe.json" -o "$T/out.safetensors" --json
"$MP_PYTHON" "$T/check.py" compress "$T/model.safetensors" "$T/out.safetensors" \
    "$T/compress.out" || mp_fail "compress --json: figures or file wrong"
ls "$T" | grep -F '.tmp-' >/dev/null && mp_fail "a temporary file was left: $(ls "$T")"

# without --json: the summary on stderr, nothing on stdout; the recipe may come from stdin
"$MODELPRESS" compress "$T/model.safetensors" -r - -o "$T/human.safetensors" \
    <"$T/recipe.json" >"$T/human.out" 2>"$T/human.err" ||
    mp_fail "compress with the recipe on stdin: exit $?: $(cat "$T/human.err")"
expect_no_stdout human
expect_err human "compressed 3 of 5 tensors"
expect_err human "written to $T/human.safetensors"
expect_err human "pruning alone does not shrink the file"
cmp -s "$T/out.safetensors" "$T/human.safetensors" ||
    mp_fail "two runs of the same recipe wrote different files"

# ---- refusals: exit 2 names the field, nothing is written ----------------------------------
refuse() { # refuse NAME RECIPE MESSAGE
    printf '%s\n' "$2" >"$T/$1.json"
    mp_run 2 "$1" compress "$T/model.safetensors" -r "$T/$1.json" -o "$T/$1.safetensors" --json
    expect_err "$1" "$3"
    expect_no_stdout "$1"
    [ ! -e "$T/$1.safetensors" ] || mp_fail "$1: an output was written for a refused recipe"
}
refuse bits33 '{"steps":[{"quantize":{"bits":33}}]}' \
    "steps[0].quantize.bits: must be an integer from 2 to 8, got 33"
refuse sparsity '{"steps":[{"prune":{"sparsity":1.5}},{"quantize":{}}]}' \
    "steps[0].prune.sparsity: must be a number from 0 to 1, got 1.5"
refuse unknown '{"steps":[{"quantize":{}},{"sharpen":{}}]}' "steps[1]: unknown step 'sharpen'"
refuse nothing '{"steps":[{"quantize":{}}],"select":{"include":["conv*"]}}' \
    "select matches no tensor of the model (5 tensors, e.g. 'fc1.weight', 'fc1.bias', 'fc2.weight')"
refuse int '{"steps":[{"quantize":{}}],"select":{"include":["pos"]}}' \
    "select.include: matches tensor 'pos' of dtype I64"
refuse notjson '{"steps":[' "recipe: not valid JSON"

mp_run 2 norecipe compress "$T/model.safetensors" -r "$T/missing.json" -o "$T/x.safetensors"
expect_err norecipe "$T/missing.json"
mp_run 2 noout compress "$T/model.safetensors" -r "$T/recipe.json"
expect_err noout "needs -r RECIPE.json and -o OUT"
mp_run 2 nocmd frobnicate
expect_err nocmd "unknown command 'frobnicate'"

# ---- a broken model: exit 1, the job failed --------------------------------------------------
size=$(wc -c <"$T/model.safetensors")
head -c $((size - 2)) "$T/model.safetensors" >"$T/short.safetensors"
mp_run 1 short compress "$T/short.safetensors" -r "$T/recipe.json" -o "$T/short-out.safetensors"
expect_err short "$T/short.safetensors: "
[ ! -e "$T/short-out.safetensors" ] || mp_fail "an output was written for a truncated model"
mp_run 1 absent inspect "$T/absent.safetensors"
expect_err absent "$T/absent.safetensors: "

# ---- unpack ----------------------------------------------------------------------------------
mp_run 0 unpack unpack "$T/out.safetensors" -o "$T/plain.safetensors"
expect_no_stdout unpack
"$MP_PYTHON" "$T/check.py" unpack "$T/out.safetensors" "$T/plain.safetensors" ||
    mp_fail "unpack: wrong values"
mp_run 1 unpack_plain unpack "$T/model.safetensors" -o "$T/plain2.safetensors"
expect_err unpack_plain "nothing to unpack"
mp_run 2 unpack_onnx unpack "$T/out.safetensors" -o "$T/plain.onnx"
expect_err unpack_onnx "ONNX output is not available"

# ---- .mpz and the other methods, through the command -------------------------------------------
# prune 90 % + share 16 as safetensors, and the same recipe as .mpz because of the -o name
"$MP_PYTHON" "$T/check.py" make_big "$T/big.safetensors" || mp_fail "could not write big"
printf '%s\n' '{"steps":[{"prune":{"sparsity":0.9}},{"share":{"clusters":16}}]}' >"$T/share.json"
mp_run 0 share compress "$T/big.safetensors" -r "$T/share.json" -o "$T/share.safetensors" --json
mp_run 0 share_mpz compress "$T/big.safetensors" -r "$T/share.json" -o "$T/share.mpz" --json
mp_run 0 unpack_share unpack "$T/share.safetensors" -o "$T/share-plain.safetensors"
mp_run 0 unpack_share_mpz unpack "$T/share.mpz" -o "$T/share-mpz-plain.safetensors"
cmp -s "$T/share-plain.safetensors" "$T/share-mpz-plain.safetensors" ||
    mp_fail "unpacking the .mpz gave other bytes than unpacking the safetensors"
"$MP_PYTHON" "$T/check.py" share "$T/big.safetensors" "$T/share.safetensors" \
    "$T/share-plain.safetensors" "$T/share.out" "$T/share.mpz" "$T/share_mpz.out" ||
    mp_fail "share: values or figures wrong"

# Deep Compression's three stages: a huffman step makes the output .mpz
printf '%s\n' '{"steps":[{"prune":{"sparsity":0.9}},{"share":{"clusters":16}},{"huffman":{}}]}' \
    >"$T/dc.json"
mp_run 0 dc compress "$T/big.safetensors" -r "$T/dc.json" -o "$T/dc.mpz" --json
mp_run 0 dc_inspect inspect "$T/dc.mpz" --json
"$MP_PYTHON" "$T/check.py" huffman "$T/dc.out" "$T/dc.mpz" "$T/dc_inspect.out" ||
    mp_fail "huffman: stages or inspect wrong"
mp_run 0 dc_unpack unpack "$T/dc.mpz" -o "$T/dc-plain.safetensors"
cmp -s "$T/dc-plain.safetensors" "$T/share-plain.safetensors" ||
    mp_fail "the huffman recipe restored other values than prune + share"
mp_run 0 dc_human compress "$T/big.safetensors" -r "$T/dc.json" -o "$T/dc2.mpz"
expect_err dc_human "-> huffman "
expect_err dc_human "(mpz)"
mp_run 0 dc_inspect_h inspect "$T/dc.mpz"
expect_err dc_inspect_h "compressed by modelpress (mpz, "
expect_err dc_inspect_h "share 16"
# a huffman recipe cannot write safetensors: refused before any work, nothing written
mp_run 2 dc_st compress "$T/model.safetensors" -r "$T/dc.json" -o "$T/dc.safetensors"
expect_err dc_st "steps[2].huffman writes the .mpz container, which safetensors cannot hold; name the output .mpz"
[ ! -e "$T/dc.safetensors" ] || mp_fail "a safetensors file was written for a huffman recipe"

# 4-bit codes in groups of 16, decoded by Python from the packed bytes
printf '%s\n' '{"steps":[{"quantize":{"bits":4,"granularity":"group","group_size":16}}]}' \
    >"$T/int4.json"
mp_run 0 int4 compress "$T/model.safetensors" -r "$T/int4.json" -o "$T/int4.safetensors"
mp_run 0 int4_unpack unpack "$T/int4.safetensors" -o "$T/int4-plain.safetensors"
"$MP_PYTHON" "$T/check.py" int4 "$T/int4.safetensors" "$T/int4-plain.safetensors" ||
    mp_fail "int4: packed codes wrong"

# ---- inspect ---------------------------------------------------------------------------------
mp_run 0 inspect inspect "$T/model.safetensors" --json
"$MP_PYTHON" "$T/check.py" inspect "$T/inspect.out" || mp_fail "inspect --json: wrong figures"
mp_run 0 inspect_h inspect "$T/model.safetensors"
expect_no_stdout inspect_h
expect_err inspect_h "the default selection compresses 3 tensors (608 parameters)"
mp_run 0 inspect_c inspect "$T/out.safetensors"
expect_err inspect_c "compressed by modelpress"

# ---- --help, --version ----------------------------------------------------------------------
mp_run 0 version --version
grep -Fx "modelpress 0.1.0" "$T/version.out" >/dev/null || mp_fail "--version: $(cat "$T/version.out")"
mp_run 0 help --help
grep -F "compress MODEL -r RECIPE.json -o OUT" "$T/help.out" >/dev/null || mp_fail "--help lacks compress"

mp_log "PASS"
exit 0
