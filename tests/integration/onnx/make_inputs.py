"""make_inputs.py — the inputs test_onnx_ort.sh feeds each TESTDATA.md model, as ort_run.js
manifests (a JSON list of runs whose feeds point into one binary file of little-endian values).

    /usr/bin/python3 make_inputs.py OUTDIR

- blazeface: scikit-image's lfw_subset (200 images of 25x25: the first 100 faces, the last 100
  not), upscaled bilinearly to 128x128, grey to RGB, scaled to [-1, 1], NHWC; one run each.
- mlsd: scikit-image's astronaut at 320x320, RGB in [0, 255] plus an alpha plane of ones, NHWC
  (the original M-LSD feeds raw pixel values and normalises inside the graph).
- silero: 60 chunks of 512 samples at 16 kHz (a 220 Hz tone switched on and off at 2 Hz over
  low noise, seeded), the recurrent state carried from each run to the next.
- ppocr_cls: 10 words rendered black on white at 192x48 with DejaVu Sans (the default bitmap
  font when it is missing), then the same 10 rotated by 180 degrees; NCHW in [-1, 1].
- fmnist_cnn (tests/fixtures/fmnist_cnn.onnx): the first 320 Fashion-MNIST test images as 10
  runs of a batch of 32, [32, 1, 28, 28] pixel / 255 (fmnist_cnn_b1 and fmnist_cnn_b32: one
  run of the first image and of the first 32, for bench/runtime.py); skipped when Debian's
  dataset-fashion-mnist is missing.
Deterministic: the same bytes on every run.
"""
import json
import os
import sys

import numpy as np
from skimage import data, transform


def write(outdir, name, arrays, runs, carry=None):
    blob = b"".join(a.tobytes() for a in arrays)
    with open(os.path.join(outdir, name + ".bin"), "wb") as f:
        f.write(blob)
    manifest = {"data": name + ".bin", "runs": runs}
    if carry:
        manifest["carry"] = carry
    with open(os.path.join(outdir, name + ".json"), "w") as f:
        json.dump(manifest, f)


def feed(dims, offset, kind="float32"):
    return {"type": kind, "dims": dims, "offset": offset}


def blazeface(outdir):
    faces = data.lfw_subset()
    assert faces.shape == (200, 25, 25)
    img = np.stack([transform.resize(x, (128, 128), order=1, anti_aliasing=False)
                    for x in faces])
    x = (np.repeat(img[..., None], 3, axis=3) * 2 - 1).astype("<f4")
    n = 128 * 128 * 3 * 4
    write(outdir, "blazeface", [x],
          [{"feeds": {"input:0": feed([1, 128, 128, 3], i * n)}} for i in range(200)])


def mlsd(outdir):
    im = transform.resize(data.astronaut(), (320, 320), anti_aliasing=True)
    x = np.concatenate([im * 255, np.ones((320, 320, 1))], axis=2)[None].astype("<f4")
    write(outdir, "mlsd", [x],
          [{"feeds": {"input_image_with_alpha:0": feed([1, 320, 320, 4], 0)}}])


def silero(outdir):
    rng = np.random.default_rng(0)
    t = np.arange(60 * 512) / 16000
    gate = np.sin(2 * np.pi * 2 * t) > 0
    sig = 0.3 * np.sin(2 * np.pi * 220 * t) * gate + 0.02 * rng.standard_normal(t.size)
    chunks = sig.reshape(60, 512).astype("<f4")
    sr = np.array(16000, dtype="<i8")
    state = np.zeros((2, 1, 128), dtype="<f4")
    off_sr = chunks.nbytes
    runs = []
    for i in range(60):
        f = {"input": feed([1, 512], i * 512 * 4), "sr": feed([], off_sr, "int64")}
        if i == 0:
            f["state"] = feed([2, 1, 128], off_sr + 8)
        runs.append({"feeds": f})
    write(outdir, "silero", [chunks, sr, state], runs, carry={"stateN": "state"})


def ppocr_cls(outdir):
    from PIL import Image, ImageDraw, ImageFont
    try:
        font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 28)
    except OSError:
        font = ImageFont.load_default()
    words = ["modelpress", "compress", "ONNX", "runtime", "quantize", "hello world", "12345",
             "int8", "Deep", "network"]
    crops = []
    for i, w in enumerate(words * 2):
        img = Image.new("RGB", (192, 48), (255, 255, 255))
        ImageDraw.Draw(img).text((6, 6), w, fill=(0, 0, 0), font=font)
        if i >= len(words):
            img = img.rotate(180)
        a = (np.asarray(img, dtype=np.float32) / 255 - 0.5) / 0.5
        crops.append(a.transpose(2, 0, 1))
    x = np.stack(crops).astype("<f4")
    n = 3 * 48 * 192 * 4
    write(outdir, "ppocr_cls", [x],
          [{"feeds": {"x": feed([1, 3, 48, 192], i * n)}} for i in range(len(crops))])


def fmnist_cnn(outdir):
    import gzip
    path = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
    if not os.path.exists(path):
        print("make_inputs.py: no %s, no fmnist_cnn inputs" % path, file=sys.stderr)
        return
    with gzip.open(path) as f:
        pix = np.frombuffer(f.read(), dtype=np.uint8, offset=16)[:320 * 784]
    x = (pix.astype(np.float32) / np.float32(255)).reshape(320, 1, 28, 28).astype("<f4")
    n = 32 * 784 * 4
    write(outdir, "fmnist_cnn", [x],
          [{"feeds": {"x": feed([32, 1, 28, 28], i * n)}} for i in range(10)])
    for b in (1, 32):
        write(outdir, "fmnist_cnn_b%d" % b, [x[:b]], [{"feeds": {"x": feed([b, 1, 28, 28], 0)}}])


def main():
    outdir = sys.argv[1]
    fmnist_cnn(outdir)
    blazeface(outdir)
    mlsd(outdir)
    silero(outdir)
    ppocr_cls(outdir)


if __name__ == "__main__":
    main()
