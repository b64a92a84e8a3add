"""make_model.py — write a safetensors model of N random F32 matrices for the shell tests.

usage: make_model.py OUT N_LAYERS ROWS COLS [SEED]
Tensors are layers.<i>.weight, values N(0, 0.05), header sorted, data 8-byte aligned.
"""
import json
import struct
import sys

import numpy as np

out, n, rows, cols = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = np.random.default_rng(int(sys.argv[5]) if len(sys.argv) > 5 else 1)
header, blobs, off = {}, [], 0
for i in range(n):
    a = (rng.standard_normal((rows, cols), dtype=np.float32) * 0.05).tobytes()
    header[f"layers.{i}.weight"] = {"dtype": "F32", "shape": [rows, cols],
                                    "data_offsets": [off, off + len(a)]}
    blobs.append(a)
    off += len(a)
h = json.dumps(header, sort_keys=True).encode()
h += b" " * (-len(h) % 8)
with open(out, "wb") as f:
    f.write(struct.pack("<Q", len(h)))
    f.write(h)
    for b in blobs:
        f.write(b)
