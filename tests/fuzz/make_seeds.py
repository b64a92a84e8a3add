"""make_seeds.py — writes the committed seed corpora of the fuzz targets (tests/fuzz/corpus/).

Run from anywhere with Debian's /usr/bin/python3 (python3-numpy and python3-onnx for the npy,
npz and onnx seeds); it rewrites corpus/safetensors, recipe, npy, npz, mpz and onnx from
scratch (crashers found later are kept in corpus/*/crash-* and not touched). Seeds are small
valid inputs of every shape the parsers know plus the hostile cases of RELIABILITY.md, so the
fuzzer starts next to every branch. Files written by NumPy and onnx are theirs, byte for byte.
"""
import io
import json
import os
import struct
import time
import zipfile
import zlib

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
    for kind in ("safetensors", "recipe", "npy", "npz", "mpz", "onnx"):
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
    npy_seeds()
    npz_seeds()
    mpz_seeds()
    onnx_seeds()


# ---- datasets: .npy and .npz (RELIABILITY.md item 8) -----------------------------------------


def npy_raw(header, data=b"", major=1, hlen=None):
    """A .npy image with this header text (padded as NumPy pads) and data; hlen overrides the
    header length field."""
    prefix = 10 if major == 1 else 12
    h = header.encode() if isinstance(header, str) else header
    h += b" " * (-(prefix + len(h) + 1) % 64) + b"\n"
    n = len(h) if hlen is None else hlen
    length = struct.pack("<H", n) if major == 1 else struct.pack("<I", n)
    return b"\x93NUMPY" + bytes([major, 0]) + length + h + data


def np_bytes(arr, version=None, allow_pickle=False):
    import numpy as np

    f = io.BytesIO()
    if version is None:
        np.save(f, arr, allow_pickle=allow_pickle)
    else:
        np.lib.format.write_array(f, arr, version=version, allow_pickle=allow_pickle)
    return f.getvalue()


def npy_seeds():
    import numpy as np

    x = (np.arange(24, dtype=np.float32).reshape(4, 2, 3) - 5) / 8
    for dt in ("<f4", "<f8", "<f2", "|u1", "|i1", "<i2", "<i4", "<i8", "<u2", "<u4", "<u8"):
        write("npy", "valid_" + dt[1:], np_bytes((x * 8).astype(dt)))
    write("npy", "valid_fortran", np_bytes(np.asfortranarray(x)))
    write("npy", "valid_v2", np_bytes(x, version=(2, 0)))
    write("npy", "valid_v3", np_bytes(x, version=(3, 0)))
    write("npy", "valid_1d", np_bytes(np.arange(5, dtype=np.float32)))
    d = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }"
    f4 = struct.pack("<4f", 1, 2, 3, 4)
    hostile = {
        "object_pickle": np_bytes(np.array([{"a": 1}], dtype=object), allow_pickle=True),
        "header_past_end": npy_raw(d, f4, hlen=4000),
        "header_over_limit": npy_raw(d, f4, major=2, hlen=10001),
        "extra_key": npy_raw("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), 'x': 1}", f4),
        "missing_key": npy_raw("{'descr': '<f4', 'shape': (2, 2)}", f4),
        "duplicate_key": npy_raw("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (4,)}", f4),
        "negative_shape": npy_raw("{'descr': '<f4', 'fortran_order': False, 'shape': (2, -2), }", f4),
        "overflowing_shape": npy_raw("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }"),
        "long_shape": npy_raw("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }"),
        "nine_dims": npy_raw("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 1, 1, 1, 1, 1, 1, 1), }", f4[:4]),
        "truncated": npy_raw(d, f4[:15]),
        "stray_bytes": npy_raw(d, f4 + b"\x00"),
        "version_4": npy_raw(d, f4, major=4),
        "big_endian": npy_raw("{'descr': '>f4', 'fortran_order': False, 'shape': (2, 2), }", f4),
        "structured": npy_raw("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (4,), }", f4),
        "not_ascii": npy_raw("{'descr': '<f4', 'fortran_order': False, 'shape': (4,)\u00e9}".encode(), f4),
        "nan": npy_raw(d, struct.pack("<4f", 1, float("nan"), 3, 4)),
        "scalar": npy_raw("{'descr': '<f4', 'fortran_order': False, 'shape': (), }", f4[:4]),
        "nine_bytes": b"\x93NUMPY\x01\x00\x00",
    }
    for name, blob in hostile.items():
        write("npy", name, blob)


def zip_bytes(members, compression=zipfile.ZIP_STORED):
    f = io.BytesIO()
    with zipfile.ZipFile(f, "w", compression=compression) as z:
        for name, data in members:
            z.writestr(name, data)
    return f.getvalue()


def npz_seeds():
    import numpy as np

    # zipfile stamps members with the time of day: pin it, so the seeds are the same each run
    os.environ["TZ"] = "UTC"
    time.tzset()
    clock, time.time = time.time, lambda: 1700000000.0
    try:
        npz_seeds_at_fixed_time(np)
    finally:
        time.time = clock


def npz_seeds_at_fixed_time(np):
    x = (np.arange(24, dtype=np.float32).reshape(4, 6) - 5) / 8
    y = np.array([3, 1, 0, 2], dtype=np.int64)
    f = io.BytesIO()
    np.savez(f, x=x, y=y)
    plain = f.getvalue()
    write("npz", "valid_savez", plain)
    f = io.BytesIO()
    np.savez_compressed(f, x=x, y=y.astype(np.uint8).reshape(4, 1), extra=np.zeros(3))
    write("npz", "valid_savez_compressed", f.getvalue())
    f = io.BytesIO()
    np.savez(f, x=x)
    write("npz", "valid_no_labels", f.getvalue())
    xb, yb = np_bytes(x), np_bytes(y)
    stored = zip_bytes([("x.npy", xb), ("y.npy", yb)])
    write("npz", "valid_stored", stored)
    # offsets of the parts of the stored archive, to change one field each
    eocd = len(stored) - 22
    cd = struct.unpack_from("<I", stored, eocd + 16)[0]

    def patch(b, at, fmt, v):
        b = bytearray(b)
        struct.pack_into(fmt, b, at, v)
        return bytes(b)

    hostile = {
        "cd_past_end": patch(stored, eocd + 16, "<I", len(stored) + 100),
        "cd_size_huge": patch(stored, eocd + 12, "<I", 0x7FFFFFFF),
        "too_many_members": patch(patch(stored, eocd + 8, "<H", 60000), eocd + 10, "<H", 60000),
        "local_offset_past_end": patch(stored, cd + 42, "<I", 0xFFFFFF00),
        "stored_size_lies": patch(stored, cd + 24, "<I", 100),
        "csize_past_cd": patch(patch(stored, cd + 20, "<I", 0x10000000), cd + 24, "<I", 0x10000000),
        "crc_mismatch": patch(stored, cd + 16, "<I", 0x12345678),
        "encrypted": patch(stored, cd + 8, "<H", 1),
        "method_bzip2": patch(stored, cd + 10, "<H", 12),
        "split": patch(stored, eocd + 4, "<H", 1),
        "truncated": stored[:-1],
        # the second entry takes the first's name and local header: two members, one set of bytes
        "overlap": patch(patch(stored, cd + 46 + 5 + 42, "<I", 0), cd + 46 + 5 + 46, "<B", ord("x")),
        "missing_x": zip_bytes([("X.npy", xb), ("../x.npy", xb)]),
        "duplicate_x": zip_bytes([("x.npy", xb), ("x.npy", xb)]),
        "bad_labels": zip_bytes([("x.npy", xb), ("y.npy", np_bytes(np.array([1, -1, 0, 2])))]),
        "float_labels": zip_bytes([("x.npy", xb), ("y.npy", np_bytes(y.astype(np.float32)))]),
        "bomb": zip_bytes([("x.npy", np_bytes(np.zeros((1 << 21,), dtype=np.float32)))], zipfile.ZIP_DEFLATED),
        "empty_zip": zip_bytes([]),
    }
    deflated = zip_bytes([("x.npy", xb), ("y.npy", yb)], zipfile.ZIP_DEFLATED)
    dcd = struct.unpack_from("<I", deflated, len(deflated) - 22 + 16)[0]
    usize = struct.unpack_from("<I", deflated, dcd + 24)[0]
    hostile["deflate_size_short"] = patch(deflated, dcd + 24, "<I", usize - 1)
    hostile["deflate_size_long"] = patch(deflated, dcd + 24, "<I", usize + 1)
    csize = struct.unpack_from("<I", deflated, dcd + 20)[0]
    hostile["deflate_cut"] = patch(deflated, dcd + 20, "<I", csize - 1)
    for name, blob in hostile.items():
        write("npz", name, blob)


# ---- the .mpz container (docs/mpz.md) -------------------------------------------------------


def crc(b):
    return zlib.crc32(b) & 0xFFFFFFFF


def mpz(meta, records, ballast=b"", version=1):
    """An .mpz image: meta is [(key, value)], records [(encoding, dtype, shape, name, payload)],
    every CRC right; ballast goes before the trailer."""
    h = b"\x89MPZ\r\n\x1a\n" + struct.pack("<HHII", version, 0, len(meta), len(records))
    h += struct.pack("<I", crc(h))
    m = b"".join(struct.pack("<II", len(k), len(v)) + k + v for k, v in meta)
    body = h + m + struct.pack("<I", crc(m))
    for enc, dt, shape, name, payload in records:
        r = struct.pack("<BBBBIQ", enc, dt, len(shape), 0, len(name), len(payload))
        r += b"".join(struct.pack("<Q", d) for d in shape) + name + payload
        body += r + struct.pack("<I", crc(r))
    body += ballast
    t = struct.pack("<Q", len(body) + 16) + b"MPZE"
    return body + t + struct.pack("<I", crc(t))


def sparse(dominant, gap_bits, gap_table, value_table, n_entries, stream=b""):
    """A sparse payload; a table is an int (constant symbol) or bytes (Huffman lengths)."""
    p = struct.pack("<BBBBQ", dominant, gap_bits, 0 if isinstance(gap_table, int) else 1,
                    0 if isinstance(value_table, int) else 1, n_entries)
    for t in (gap_table, value_table):
        p += bytes([t]) if isinstance(t, int) else t
    return p + stream


def mpz_seeds():
    U8, I8, F32, BOOL = 5, 4, 0, 12
    f32 = struct.pack("<4f", 1.5, -2, 0, 3)
    # gaps 0, 1, 0 (elements 0, 2, 3 of 6) with 1-bit codes, all values 7
    coded = sparse(0, 1, b"\x11", 7, 3, b"\x40")
    # values 7 and 9 Huffman-coded (symbols 7 and 9, length 1 each), gaps constant 0
    vt = bytearray(128)
    vt[3] = 0x10
    vt[4] = 0x10
    coded_values = sparse(0, 0, 0, bytes(vt), 3, b"\x40")
    write("mpz", "valid_doc_example", mpz([(b"k", b"v")], [(0, U8, [2], b"t", b"\x01\x02")]))
    write("mpz", "valid_raw_f32", mpz([], [(0, F32, [2, 2], b"w", f32)]))
    write("mpz", "valid_constant_tables", mpz([], [(1, U8, [8], b"c", sparse(0, 2, 3, 5, 1))]))
    write("mpz", "valid_huffman_gaps", mpz([], [(1, I8, [6], b"g", coded)]))
    write("mpz", "valid_huffman_values", mpz([], [(1, U8, [3], b"v", coded_values)]))
    write("mpz", "valid_scalar_and_bool", mpz([(b"modelpress", b"{}")],
                                              [(0, F32, [], b"s", f32[:4]), (0, BOOL, [3], b"b", b"\x00\x01\x00")]))
    write("mpz", "valid_ballast", mpz([], [(1, U8, [8], b"c", sparse(0, 2, 3, 5, 1))], ballast=b"\x00" * 8))
    hostile = {
        "empty": b"",
        "bad_magic": b"\x89MPY" + mpz([], [])[4:],
        "version_2": mpz([], [], version=2),
        "truncated": mpz([], [(0, F32, [2, 2], b"w", f32)])[:-1],
        "nine_dims": mpz([], [(0, U8, [1] * 9, b"t", b"\x01")]),
        "shape_overflow": mpz([], [(0, F32, [1 << 32, 1 << 32], b"t", b"")]),
        "expansion_limit": mpz([], [(1, U8, [1 << 40], b"t", sparse(0, 0, 0, 0, 0))]),
        "raw_size_mismatch": mpz([], [(0, F32, [4], b"t", f32[:12])]),
        "duplicate_names": mpz([], [(0, U8, [1], b"t", b"\x01"), (0, U8, [1], b"t", b"\x02")]),
        "nul_in_name": mpz([], [(0, U8, [1], b"a\x00b", b"\x01")]),
        "sparse_f32": mpz([], [(1, F32, [2], b"t", sparse(0, 0, 0, 0, 0))]),
        "incomplete_table": mpz([], [(1, U8, [6], b"t", sparse(0, 2, b"\x21", 7, 3, b"\x40"))]),
        "stream_too_long": mpz([], [(1, I8, [6], b"t", coded + b"\x00")]),
        "dominant_entry": mpz([], [(1, U8, [8], b"t", sparse(0, 2, 1, 0, 1))]),
        "past_the_end": mpz([], [(1, U8, [2], b"t", sparse(0, 2, 3, 5, 1))]),
        "nonzero_ballast": mpz([], [], ballast=b"\x00\x01"),
        "meta_twice": mpz([(b"k", b"v"), (b"k", b"w")], []),
        "unknown_dtype": mpz([], [(0, 13, [1], b"t", b"\x01")]),
    }
    for name, blob in hostile.items():
        write("mpz", name, blob)


# ---- ONNX (RELIABILITY.md items 5-7) ---------------------------------------------------------


def pb_field(number, payload):
    """A length-delimited protobuf field."""
    def varint(v):
        out = b""
        while v >= 0x80:
            out += bytes([v & 0x7F | 0x80])
            v >>= 7
        return out + bytes([v])
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def deep_graph(levels):
    """A ModelProto whose graph holds a node whose attribute holds a graph ..., levels deep."""
    g = b""
    for _ in range(levels):
        g = pb_field(1, pb_field(5, pb_field(6, g)))  # GraphProto.node, .attribute, .g
    # ir_version 8, opset 13 of the default domain, then the graph
    return b"\x08\x08" + pb_field(8, b"\x10\x0d") + pb_field(7, g)


def onnx_seeds():
    import numpy as np
    import onnx
    from onnx import TensorProto as T
    from onnx import helper as h
    from onnx import numpy_helper as nh

    def model(nodes, inputs, outputs, inits, opset=13):
        g = h.make_graph(nodes, "g", inputs, outputs, inits)
        m = h.make_model(g, opset_imports=[h.make_opsetid("", opset)], producer_name="seeds")
        m.ir_version = 8
        return m.SerializeToString()

    vi = h.make_tensor_value_info
    w = nh.from_array((np.arange(12, dtype=np.float32).reshape(3, 4) - 6) / 8, "W")
    b = nh.from_array(np.arange(4, dtype=np.float32), "B")
    mlp = model([h.make_node("MatMul", ["x", "W"], ["h"]), h.make_node("Add", ["h", "B"], ["a"]),
                 h.make_node("Relu", ["a"], ["y"])],
                [vi("x", T.FLOAT, ["N", 3])], [vi("y", T.FLOAT, ["N", 4])], [w, b])
    write("onnx", "valid_mlp", mlp)
    k = nh.from_array(np.ones((2, 1, 3, 3), dtype=np.float32) / 9, "K")
    write("onnx", "valid_conv", model(
        [h.make_node("Conv", ["x", "K"], ["c"], pads=[1, 1, 1, 1]), h.make_node("GlobalAveragePool", ["c"], ["p"]),
         h.make_node("Flatten", ["p"], ["y"])],
        [vi("x", T.FLOAT, ["N", 1, 8, 8])], [vi("y", T.FLOAT, ["N", 2])], [k]))
    const = h.make_node("Constant", [], ["C"], value=nh.from_array(np.full((3, 4), 0.5, dtype=np.float32)))
    write("onnx", "valid_constant", model([const, h.make_node("MatMul", ["x", "C"], ["y"])],
                                          [vi("x", T.FLOAT, ["N", 3])], [vi("y", T.FLOAT, ["N", 4])], []))
    q = nh.from_array(np.arange(-6, 6, dtype=np.int8).reshape(3, 4), "Wq")
    s = nh.from_array(np.array(0.125, dtype=np.float32), "s")
    zp = nh.from_array(np.array(0, dtype=np.int8), "z")
    write("onnx", "valid_int8", model(
        [h.make_node("DequantizeLinear", ["Wq", "s", "z"], ["W"]), h.make_node("MatMul", ["x", "W"], ["y"])],
        [vi("x", T.FLOAT, ["N", 3])], [vi("y", T.FLOAT, ["N", 4])], [q, s, zp]))
    then_g = h.make_graph([h.make_node("Identity", ["T1"], ["o"])], "then", [], [vi("o", T.FLOAT, [2])],
                          [nh.from_array(np.array([1, 2], dtype=np.float32), "T1")])
    else_g = h.make_graph([h.make_node("Identity", ["T2"], ["o"])], "else", [], [vi("o", T.FLOAT, [2])],
                          [nh.from_array(np.array([3, 4], dtype=np.float32), "T2")])
    write("onnx", "valid_if_subgraphs", model([h.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g)],
                                              [vi("c", T.BOOL, [])], [vi("y", T.FLOAT, [2])], []))
    fl = h.make_tensor("F", T.FLOAT, [2, 2], [1.0, 2.0, 3.0, 4.0])  # float_data, not raw_data
    write("onnx", "valid_float_data", model([h.make_node("MatMul", ["x", "F"], ["y"])],
                                            [vi("x", T.FLOAT, ["N", 2])], [vi("y", T.FLOAT, ["N", 2])], [fl]))
    ext = onnx.TensorProto()
    ext.CopyFrom(w)
    ext.ClearField("raw_data")
    ext.data_location = T.EXTERNAL
    for key, value in (("location", "../../etc/passwd"), ("offset", "0"), ("length", "48")):
        e = ext.external_data.add()
        e.key, e.value = key, value
    hostile = {
        "external_data": model([h.make_node("MatMul", ["x", "W"], ["y"])],
                               [vi("x", T.FLOAT, ["N", 3])], [vi("y", T.FLOAT, ["N", 4])], [ext]),
        "truncated": mlp[:-7],
        "varint_11_bytes": b"\x08" + b"\xff" * 10 + b"\x01",
        "field_zero": b"\x00\x01",
        "wire_type_7": b"\x0f\x01",
        "length_past_end": b"\x3a\xff\xff\xff\xff\x0f",
        "deep_nesting": deep_graph(60),
    }
    short = onnx.TensorProto()
    short.CopyFrom(w)
    short.raw_data = w.raw_data[:-4]
    hostile["raw_data_short"] = model([h.make_node("MatMul", ["x", "W"], ["y"])],
                                      [vi("x", T.FLOAT, ["N", 3])], [vi("y", T.FLOAT, ["N", 4])], [short])
    neg = onnx.TensorProto()
    neg.CopyFrom(w)
    del neg.dims[:]
    neg.dims.extend([-3, 4])
    hostile["negative_dims"] = model([h.make_node("MatMul", ["x", "W"], ["y"])],
                                     [vi("x", T.FLOAT, ["N", 3])], [vi("y", T.FLOAT, ["N", 4])], [neg])
    bad_type = onnx.TensorProto()
    bad_type.CopyFrom(w)
    bad_type.data_type = 99
    hostile["unknown_data_type"] = model([h.make_node("MatMul", ["x", "W"], ["y"])],
                                         [vi("x", T.FLOAT, ["N", 3])], [vi("y", T.FLOAT, ["N", 4])], [bad_type])
    for name, blob in hostile.items():
        write("onnx", name, blob)


if __name__ == "__main__":
    main()
