"""make_seeds.py — writes the committed seed corpora of the fuzz targets (tests/fuzz/corpus/).

Run from anywhere with Debian's /usr/bin/python3; it rewrites corpus/safetensors and
corpus/recipe from scratch (crashers found later are kept in corpus/*/crash-* and not touched).
Seeds are small valid inputs of every shape the parsers know plus the hostile cases of
RELIABILITY.md, so the fuzzer starts next to every branch.
"""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def st(header, data=b"", pad=True):
    h = json.dumps(header, sort_keys=True).encode()
    if pad:
        h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def write(kind, name, blob):
    d = os.path.join(HERE, "corpus", kind)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(blob)


def main():
    for kind in ("safetensors", "recipe"):
        d = os.path.join(HERE, "corpus", kind)
        if os.path.isdir(d):
            for n in os.listdir(d):
                if not n.startswith("crash-"):
                    os.remove(os.path.join(d, n))
    f32 = struct.pack("<6f", 1, -2, 3, -4, 5, -6)
    write("safetensors", "valid_f32", st({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}}, f32))
    write("safetensors", "valid_meta", st({"__metadata__": {"format": "pt", "k": "v"},
                                           "a": {"dtype": "I8", "shape": [3], "data_offsets": [0, 3]},
                                           "b": {"dtype": "F16", "shape": [1, 2], "data_offsets": [3, 7]}},
                                          b"\x01\x02\x03" + b"\x00\x3c\x00\xbc"))
    write("safetensors", "valid_scalar_empty", st({"s": {"dtype": "F64", "shape": [], "data_offsets": [0, 8]},
                                                   "z": {"dtype": "BF16", "shape": [0, 4], "data_offsets": [8, 8]}},
                                                  struct.pack("<d", 3.5)))
    dtypes = ["F32", "F16", "BF16", "F64", "I8", "U8", "I16", "U16", "I32", "U32", "I64", "U64", "BOOL"]
    sizes = [4, 2, 2, 8, 1, 1, 2, 2, 4, 4, 8, 8, 1]
    hdr, off = {}, 0
    for dt, sz in zip(dtypes, sizes):
        hdr["t_" + dt] = {"dtype": dt, "shape": [2], "data_offsets": [off, off + 2 * sz]}
        off += 2 * sz
    write("safetensors", "valid_all_dtypes", st(hdr, bytes(range(off % 256)) + bytes(max(0, off - 256))))
    hostile = {
        "empty": b"",
        "seven_bytes": b"\x07\x00\x00\x00\x00\x00\x00",
        "header_past_end": struct.pack("<Q", 1000) + b"{}",
        "header_huge": struct.pack("<Q", 100_000_001) + b"{}",
        "not_utf8": struct.pack("<Q", 4) + b"\xff\xfe{}",
        "not_json": struct.pack("<Q", 8) + b"not json",
        "not_object": struct.pack("<Q", 8) + b"[1,2,3] ",
        "duplicate": struct.pack("<Q", 104) + b'{"a":{"dtype":"I8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"I8","shape":[1],"data_offsets":[0,1]}}' + b"\x00",
        "deep": struct.pack("<Q", 4000) + b"[" * 2000 + b"]" * 2000,
        "nul_name": st({"a\u0000b": {"dtype": "I8", "shape": [1], "data_offsets": [0, 1]}}, b"\x00"),
        "unknown_dtype": st({"a": {"dtype": "F33", "shape": [1], "data_offsets": [0, 4]}}, b"\x00" * 4),
        "offsets_mismatch": st({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, b"\x00" * 4),
        "offsets_reversed": st({"a": {"dtype": "I8", "shape": [4], "data_offsets": [4, 0]}}, b"\x00" * 4),
        "offsets_negative": st({"a": {"dtype": "I8", "shape": [4], "data_offsets": [-4, 0]}}, b"\x00" * 4),
        "offsets_fraction": st({"a": {"dtype": "I8", "shape": [4], "data_offsets": [0, 4.5]}}, b"\x00" * 4),
        "overlap": st({"a": {"dtype": "I8", "shape": [4], "data_offsets": [0, 4]},
                       "b": {"dtype": "I8", "shape": [4], "data_offsets": [2, 6]}}, b"\x00" * 6),
        "gap": st({"a": {"dtype": "I8", "shape": [2], "data_offsets": [0, 2]},
                   "b": {"dtype": "I8", "shape": [2], "data_offsets": [4, 6]}}, b"\x00" * 6),
        "past_end": st({"a": {"dtype": "I8", "shape": [8], "data_offsets": [0, 8]}}, b"\x00" * 4),
        "shape_overflow": st({"a": {"dtype": "F32", "shape": [2**32, 2**32], "data_offsets": [0, 0]}}),
        "big_on_4_bytes": st({"a": {"dtype": "F32", "shape": [1000, 1000], "data_offsets": [0, 4]}}, b"\x00" * 4),
        "trailing": st({"a": {"dtype": "I8", "shape": [2], "data_offsets": [0, 2]}}, b"\x00" * 4),
        "two_short": st({"a": {"dtype": "I8", "shape": [4], "data_offsets": [0, 4]}}, b"\x00" * 2),
    }
    for name, blob in hostile.items():
        write("safetensors", name, blob)
    recipes = {
        "int8": {"steps": [{"quantize": {"bits": 8}}]},
        "prune_int8": {"steps": [{"prune": {"sparsity": 0.5}}, {"quantize": {"bits": 8}}]},
        "global": {"steps": [{"prune": {"sparsity": 0.9, "scope": "global"}}]},
        "int4_group": {"steps": [{"quantize": {"bits": 4, "granularity": "group", "group_size": 32, "scheme": "asymmetric"}}]},
        "deep_compression": {"steps": [{"prune": {"sparsity": 0.9}}, {"share": {"clusters": 16}}, {"huffman": {}}]},
        "lowrank": {"steps": [{"lowrank": {"energy": 0.9}}]},
        "nm": {"steps": [{"prune": {"sparsity": 0.5, "structure": "2:4"}}]},
        "select": {"steps": [{"quantize": {"bits": 8}}], "select": {"include": ["fc.*"], "exclude": ["*bias"], "min_elements": 16}},
        "output": {"steps": [{"quantize": {"bits": 8}}], "output": {"format": "safetensors"}},
        "bad_bits": {"steps": [{"quantize": {"bits": 33}}]},
        "bad_sparsity": {"steps": [{"prune": {"sparsity": 1.5}}]},
        "bad_clusters": {"steps": [{"share": {"clusters": 2**40}}]},
        "unknown_step": {"steps": [{"sharpen": {}}]},
        "nothing_selected": {"steps": [{"quantize": {"bits": 8}}], "select": {"include": ["nothing*"]}},
    }
    for name, r in recipes.items():
        write("recipe", name, json.dumps(r).encode())
    write("recipe", "not_json", b"{steps: [")
    write("recipe", "deep", b"[" * 500 + b"]" * 500)


if __name__ == "__main__":
    main()
