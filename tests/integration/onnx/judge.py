"""judge.py — how close a compressed model's outputs (from ort_run.js) are to the original's.

    /usr/bin/python3 judge.py KIND REF.bin OUT.bin NAME

KIND is blazeface, mlsd, silero or ppocr_cls; prints one line of figures and exits 1 when the
model's tolerance is not met (tolerances below, each with what was measured when they were set).
- blazeface: face / non-face accuracy on the 200 lfw_subset images >= 0.98 (face when the
  largest of the 896 anchor logits is above 0, i.e. sigmoid > 0.5; fp32 gets 0.99, int8 per
  channel 0.995).
- ppocr_cls: the same class as the original on all 20 crops, and no probability more than
  0.05 away (int8 per channel: 0.019).
- silero: no speech probability more than 0.1 away from the original over the 60 chunks, and
  output SNR >= 20 dB (int8 per channel: 0.040 and 27.0 dB).
- mlsd: output SNR >= 5 dB and at least 30 of the original's 50 strongest line-centre scores
  among the compressed model's 50 strongest (int8 per channel: 6.7 dB, 39 of 50). M-LSD tiny's
  folded depthwise kernels span up to 100:1 within one output channel (const_fold_opt__311: max
  4.08, median 0.053), which 8-bit codes cannot hold; fp16 weights keep 31 dB.
KIND "same" checks a rewritten graph against the original graph run with the weights
mp_model_unpack restores (substitute.py): they must agree to float rounding, output SNR >= 80 dB
(measured: 94 dB for M-LSD with pruned channels removed, whose constant is folded into the next
bias in another order than the runtime's fused Conv+BatchNormalization; 107 dB and up for
low-rank splits, whose sums run in another order; 300 dB and up, i.e. the same bits, for
everything else). A real mistake in a rewrite costs tens of dB, not a few.
The "relaxed" suffix on KIND (e.g. blazeface-relaxed) only requires the outputs to be finite and
reports the figures: for codebook and low-rank versions, whose accuracy is reported, not promised.
"""
import sys

import numpy as np


def snr_db(a, b):
    err = float(((a - b) ** 2).sum())
    return float("inf") if err == 0 else 10 * np.log10(float((a ** 2).sum()) / err)


def main():
    kind, ref_path, out_path, name = sys.argv[1:5]
    relaxed = kind.endswith("-relaxed")
    kind = kind.replace("-relaxed", "")
    ref = np.fromfile(ref_path, dtype="<f4")
    out = np.fromfile(out_path, dtype="<f4")
    if ref.shape != out.shape:
        print(f"{name}: {out.size} output values, the original gives {ref.size}")
        return 1
    ok = bool(np.isfinite(out).all())
    snr = snr_db(ref, out)
    if kind == "same":
        print(f"{name}: the rewritten graph against the original run with the unpacked weights: "
              f"output SNR {snr:.1f} dB")
        ok = ok and snr >= 80
    elif kind == "blazeface":
        per = out.reshape(200, -1)
        logits = np.concatenate([per[:, :512], per[:, 512:896]], axis=1)
        truth = np.r_[np.ones(100), np.zeros(100)]
        acc = float(((logits.max(axis=1) > 0) == truth).mean())
        ref_acc = float(((np.concatenate([ref.reshape(200, -1)[:, :896]], 1).max(1) > 0)
                         == truth).mean())
        print(f"{name}: accuracy {acc:.3f} (original {ref_acc:.3f}), output SNR {snr:.1f} dB")
        ok = ok and (relaxed or acc >= 0.98)
    elif kind == "ppocr_cls":
        a, b = ref.reshape(-1, 2), out.reshape(-1, 2)
        agree = float((a.argmax(1) == b.argmax(1)).mean())
        diff = float(np.abs(a - b).max())
        print(f"{name}: class agreement {agree:.3f}, largest probability change {diff:.4f}, "
              f"SNR {snr:.1f} dB")
        ok = ok and (relaxed or (agree == 1.0 and diff <= 0.05))
    elif kind == "silero":
        a, b = ref.reshape(60, -1)[:, 0], out.reshape(60, -1)[:, 0]
        diff = float(np.abs(a - b).max())
        print(f"{name}: largest speech-probability change {diff:.4f}, output SNR {snr:.1f} dB")
        ok = ok and (relaxed or (diff <= 0.1 and snr >= 20))
    elif kind == "mlp":
        print(f"{name}: output SNR {snr:.1f} dB")
        ok = ok and relaxed
    elif kind == "mlsd":
        s_ref, s_out = ref[102400:], out[102400:]
        top = len(set(np.argsort(-s_ref)[:50]) & set(np.argsort(-s_out)[:50]))
        print(f"{name}: output SNR {snr:.1f} dB, {top} of the 50 strongest line centres kept")
        ok = ok and (relaxed or (snr >= 5 and top >= 30))
    else:
        print(f"judge.py: unknown kind {kind}")
        return 2
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
