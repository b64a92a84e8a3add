#!/usr/bin/python3
"""peers.py - modelpress against the Python tools people use today, side by side, one run.

Run by bench/run.sh (which fixes the environment: one thread everywhere, Debian's python3).
The 4096 x 4096 F32 matrix is generated once from a fixed seed and written to a raw file;
our side (bench/bench_core, a C program linked with the core) and the peers (torch, sklearn)
both read that file. Each side does one warm-up call and then --reps timed calls of exactly
one function; the table compares medians. Every speed row also prints the figure that makes
the comparison fair (identical codes, identical mask, SSE, reconstruction error), since a
faster answer to a different question is no win. Then runtime.py times our ONNX runtime against
onnxruntime-node and torch (models and linear layers), and the `modelpress compress` command runs
on a generated ~1 GB safetensors model while /proc is sampled, for the peak memory figure.
Nothing here asserts: it measures and prints; bench/README.md records the figures.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time

import numpy as np
import threadpoolctl
import torch

ROWS = COLS = 4096
SEED = 20240603
K = 16
KMEANS_N = 1 << 20
RANK = 256
MIB = 1 << 20


# ---- the shared input -------------------------------------------------------------------------

def make_matrix(path):
    """A weight-like matrix: entries roughly Gaussian (std 0.02, as in trained layers), with a
    decaying spectrum so that a rank-256 approximation means something (a plain Gaussian matrix
    has a flat spectrum, and every method's error would be the same ~0.9)."""
    rng = np.random.default_rng(SEED)
    a = rng.standard_normal((ROWS, COLS), dtype=np.float32)
    b = rng.standard_normal((COLS, COLS), dtype=np.float32)
    decay = np.arange(1, COLS + 1, dtype=np.float32) ** np.float32(-0.75)
    w = (a * decay) @ b
    w += np.float32(0.05 * float(np.abs(w).mean())) * rng.standard_normal(w.shape,
                                                                         dtype=np.float32)
    w *= np.float32(0.02) / w.std(dtype=np.float64).astype(np.float32)
    w.astype("<f4").tofile(path)


def load_matrix(data_dir):
    path = os.path.join(data_dir, "w4096.f32")
    if not os.path.exists(path) or os.path.getsize(path) != ROWS * COLS * 4:
        print(f"generating the {ROWS}x{COLS} F32 matrix (seed {SEED}) in {path}", file=sys.stderr)
        make_matrix(path + ".tmp")
        os.replace(path + ".tmp", path)
    return path, np.fromfile(path, dtype="<f4").reshape(ROWS, COLS)


# ---- timing -----------------------------------------------------------------------------------

def time_peer(fn, reps, setup=None):
    """(median wall seconds, median thread CPU seconds, last result) of fn(state) after one
    warm-up; setup() (untimed) gives the state. Every peer runs in this thread, one thread."""
    times, cpu, out = [], [], None
    for i in range(reps + 1):
        state = setup() if setup else None
        c0, t0 = time.thread_time(), time.perf_counter()
        out = fn(state)
        t1, c1 = time.perf_counter(), time.thread_time()
        if i > 0:
            times.append(t1 - t0)
            cpu.append(c1 - c0)
    return statistics.median(times), statistics.median(cpu), out


def run_ours(build, method, path, reps, *extra):
    exe = os.path.join(build, "bench", "bench_core")
    cmd = [exe, method, path, str(ROWS), str(COLS), "--reps", str(reps)] + [str(x) for x in extra]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return json.loads(proc.stdout)


# ---- one function per comparison; each returns a row for the table ----------------------------

def bench_quant(args, path, w):
    rows = []
    x = torch.from_numpy(w)
    absmax = x.abs().amax(dim=1)
    # the scales our quantizer computes: absmax / 127 in float, 1 when that is not a normal float
    scales = absmax / 127.0
    scales = torch.where(scales >= np.finfo(np.float32).tiny, scales, torch.ones_like(scales))
    zp = torch.zeros(ROWS, dtype=torch.int64)
    med, cpu, q = time_peer(lambda _: torch.quantize_per_channel(x, scales.double(), zp, 0,
                                                                torch.qint8), args.reps)
    peer_codes = q.int_repr().numpy()
    # mp__quant_affine is what the pipeline runs; mp__quant_i8_sym, the first int8 quantizer,
    # gives the same codes and stays for comparison
    for method, label in (("quant_affine", "mp__quant_affine (8 bits, group = row)"),
                          ("quant_i8", "mp__quant_i8_sym")):
        out = os.path.join(args.data, f"{method}.i8")
        ours = run_ours(args.build, method, path, args.reps, "--out", out)
        if not ours["available"]:
            rows.append(missing_row("int8 per-channel quantization", label))
            continue
        codes = np.fromfile(out, dtype=np.int8).reshape(ROWS, COLS)
        differ = int(np.count_nonzero(codes != peer_codes))
        task = "int8 per-channel quantization" if not rows else "  int8, the first quantizer"
        rows.append(row(task, label, ours, (med, cpu),
                        "torch.quantize_per_channel", w.nbytes, 10.0,
                        quality=f"codes differing from torch: {differ} of {codes.size}",
                        min_gbs=5.0))
    return rows


def bench_prune(args, path, w):
    import torch.nn.utils.prune as prune

    x = torch.from_numpy(w)

    def setup():
        m = torch.nn.Module()
        m.weight = torch.nn.Parameter(x.clone())
        return m

    med, cpu, m = time_peer(lambda m: prune.l1_unstructured(m, "weight", amount=0.9), args.reps,
                          setup)
    peer_keep = m.weight_mask.numpy() != 0
    out = os.path.join(args.data, "prune.f32")
    ours = run_ours(args.build, "prune", path, args.reps, "--sparsity", "0.9", "--out", out)
    our_keep = np.fromfile(out, dtype="<f4").reshape(ROWS, COLS) != 0
    differ = int(np.count_nonzero(our_keep != peer_keep))
    return [row("90% magnitude pruning", "mp__prune_magnitude", ours, (med, cpu),
                "prune.l1_unstructured", w.nbytes, 50.0,
                quality=f"mask entries differing from torch: {differ} of {w.size} "
                        f"(zeroed: ours {ours['n_zeroed']}, torch {int((~peer_keep).sum())})")]


def sse_of(x, centroids):
    """SSE of x against its nearest centroid, in float64 (the same figure for both sides)."""
    c = np.sort(np.asarray(centroids, dtype=np.float64))
    x = x.astype(np.float64)
    mid = (c[1:] + c[:-1]) / 2
    idx = np.searchsorted(mid, x)
    return float(((x - c[idx]) ** 2).sum())


def bench_kmeans(args, path, w):
    from sklearn.cluster import KMeans

    x = w.reshape(-1)[:KMEANS_N].copy()
    # Deep Compression's linear initialisation: k values evenly spaced over [min, max]
    init = np.linspace(x.min(), x.max(), K, dtype=np.float32)
    init_path = os.path.join(args.data, "kmeans_init.f32")
    init.astype("<f4").tofile(init_path)

    def fit(_):
        km = KMeans(n_clusters=K, init=init.reshape(-1, 1), n_init=1, max_iter=300)
        return km.fit(x.reshape(-1, 1))

    med, cpu, km = time_peer(fit, args.reps)
    peer_sse = sse_of(x, km.cluster_centers_.ravel())
    # sklearn stops at its default tol (1e-4 of the variance), we at a fixed point of the
    # assignment; one untimed-for-the-table fit with tol=0 shows the SSE of a full convergence
    t0 = time.perf_counter()
    km0 = KMeans(n_clusters=K, init=init.reshape(-1, 1), n_init=1, max_iter=300,
                 tol=0.0).fit(x.reshape(-1, 1))
    full = (f"; sklearn with tol=0: SSE {sse_of(x, km0.cluster_centers_.ravel()):.6g} after "
            f"{km0.n_iter_} iterations, {time.perf_counter() - t0:.2f} s")
    rows = []
    common = ["--n", KMEANS_N, "--k", K, "--max-iter", 300]
    for task, label, extra in (
            ("k-means, 16 clusters, 1M weights", "mp__kmeans_1d_from (same init)",
             ["--init-file", init_path]),
            ("  k-means, our linear init", "mp__kmeans_1d (linear init)", ["--init", "linear"]),
            ("  k-means, our k-means++ init", "mp__kmeans_1d (k-means++ init)",
             ["--init", "kmeans++"])):
        ours = run_ours(args.build, "kmeans", path, args.reps, *(common + extra))
        if not ours["available"]:
            rows.append(missing_row(task, label))
            continue
        our_sse = sse_of(x, ours["centroids"])
        rows.append(row(task, label, ours, (med, cpu), f"sklearn KMeans ({km.n_iter_} iterations)",
                        x.nbytes, 20.0,
                        quality=f"SSE ours {our_sse:.6g} (reported {ours['sse']:.6g}), "
                                f"sklearn {peer_sse:.6g}: ours/sklearn = "
                                f"{our_sse / peer_sse:.6f}" + (full if not rows else "")))
    return rows


def bench_svd(args, path, w):
    x = torch.from_numpy(w)
    xd = x.double()
    xnorm = float(torch.linalg.norm(xd))

    def peer(q):
        def svd(_):
            torch.manual_seed(0)
            return torch.svd_lowrank(x, q=q, niter=2)

        med, cpu, (u, s, v) = time_peer(svd, args.svd_reps)
        u, s, v = u[:, :RANK].double(), s[:RANK].double(), v[:, :RANK].double()
        return med, cpu, float(torch.linalg.norm(xd - (u * s) @ v.T)) / xnorm

    med, cpu, peer_err = peer(RANK)
    out = os.path.join(args.data, "svd_ab.f32")
    ours = run_ours(args.build, "svd", path, args.svd_reps, "--rank", RANK, "--iter", 2,
                    "--out", out)
    if not ours["available"]:
        return [missing_row("rank-256 truncated SVD", "mp__svd_lowrank")]
    # our error measured as the peer's is: ||w - a b||_F / ||w||_F in double
    ab = torch.from_numpy(np.fromfile(out, dtype="<f4")).double()
    a, b = ab[:ROWS * RANK].reshape(ROWS, RANK), ab[ROWS * RANK:].reshape(RANK, COLS)
    our_err = float(torch.linalg.norm(xd - a @ b)) / xnorm
    errs = f"rel. error ours {our_err:.6g} (it reports {ours['rel_error']:.6g})"
    rows = [row("rank-256 truncated SVD", "mp__svd_lowrank (randomized, n_iter=2)", ours, (med, cpu),
                "torch.svd_lowrank(q=256, niter=2)", w.nbytes, 1.0,
                quality=f"{errs}, torch {peer_err:.6g}")]
    # ours oversamples by 10 columns (l = 266) as Halko et al. advise; torch at q = 266,
    # truncated to rank 256, does the same work and reaches about the same error
    med, cpu, peer_err = peer(RANK + 10)
    rows.append(row("  same work: torch at q=266", "mp__svd_lowrank (as above)", ours, (med, cpu),
                    "torch.svd_lowrank(q=266, niter=2), first 256", w.nbytes, None,
                    quality=f"{errs}, torch {peer_err:.6g}"))
    return rows


def bench_copy(args, path, w):
    ours = run_ours(args.build, "copy", path, args.reps)
    x = torch.from_numpy(w)
    dst = torch.empty_like(x)
    med, cpu, _ = time_peer(lambda _: dst.copy_(x), args.reps)
    return [row("copy (the memory floor)", "memcpy", ours, (med, cpu), "torch copy_", w.nbytes, None)]


def row(task, ours_name, ours, peer_times, peer_name, nbytes, target, quality="", min_gbs=None):
    """peer_times: (median wall s, median CPU s) of the peer."""
    peer_s, peer_cpu = peer_times
    return {"task": task, "ours": ours_name, "ours_s": ours["median_s"],
            "ours_min_s": ours["min_s"], "ours_max_s": ours["max_s"], "peer": peer_name,
            "peer_s": peer_s, "gbs": nbytes / ours["median_s"] / 1e9,
            "peer_gbs": nbytes / peer_s / 1e9, "ratio": peer_s / ours["median_s"],
            "cpu_ratio": peer_cpu / ours["cpu_median_s"], "target": target,
            "min_gbs": min_gbs, "quality": quality, "isa": ours["isa"]}


def missing_row(task, ours_name):
    return {"task": task, "ours": ours_name, "missing": True}


def print_table(rows):
    head = (f"{'task':<34} {'ours':>10} {'GB/s':>6} {'peer':>10} {'GB/s':>6} {'ratio':>8} "
            f"{'cpu':>7} {'target':>8}  met")
    print(head)
    print("-" * len(head))
    for r in rows:
        if r.get("missing"):
            print(f"{r['task']:<34} {'(not in the library yet: ' + r['ours'] + ')'}")
            continue
        met = ""
        if r["target"] is not None:
            ok = r["ratio"] >= r["target"] and (r["min_gbs"] is None or r["gbs"] >= r["min_gbs"])
            met = "yes" if ok else "NO"
        target = "" if r["target"] is None else f">={r['target']:g}x"
        if r["min_gbs"]:
            target += f",{r['min_gbs']:g}GB/s"
        print(f"{r['task']:<34} {r['ours_s']:>9.4f}s {r['gbs']:>6.2f} {r['peer_s']:>9.4f}s "
              f"{r['peer_gbs']:>6.2f} {r['ratio']:>7.1f}x {r['cpu_ratio']:>6.1f}x {target:>8}  "
              f"{met}")
        print(f"    ours: {r['ours']} [{r['isa']}], min {r['ours_min_s']:.4f}s max "
              f"{r['ours_max_s']:.4f}s; peer: {r['peer']}")
        if r["quality"]:
            print(f"    {r['quality']}")


# ---- peak memory of `modelpress compress` -----------------------------------------------------

def make_model(path, n_tensors, dim):
    """n_tensors F32 matrices dim x dim ("layers.i.weight") plus a bias each, as safetensors."""
    rng = np.random.default_rng(SEED + 1)
    header, off, tensors = {}, 0, []
    for i in range(n_tensors):
        for name, shape in ((f"layers.{i}.weight", [dim, dim]), (f"layers.{i}.bias", [dim])):
            n = int(np.prod(shape)) * 4
            header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [off, off + n]}
            tensors.append((name, shape))
            off += n
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path + ".tmp", "wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        for name, shape in tensors:
            (rng.standard_normal(shape, dtype=np.float32) * np.float32(0.02)).tofile(f)
    os.replace(path + ".tmp", path)


STATUS_KEYS = ("VmRSS", "RssAnon", "RssFile", "VmHWM")


def read_status(pid):
    vals = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in STATUS_KEYS:
                    vals[k] = int(v.split()[0]) * 1024
    except (OSError, ValueError):
        pass
    return vals


def child_of(pid):
    """The first child of pid, once it has one (None if pid exits first)."""
    while True:
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                kids = f.read().split()
        except OSError:
            return None
        if kids:
            return int(kids[0])
        time.sleep(0.0005)


def measure(cmd, out_path):
    """Runs cmd (stdout to out_path) under /usr/bin/time, sampling its /proc/PID/status every
    2 ms; returns the exit code, wall seconds, the peak RSS in bytes that time reports and the
    sampled peaks. Not ru_maxrss from our own wait4: Linux carries the parent's high-water mark
    over fork and exec into the child's, so a child of this (large) Python process would report
    at least Python's own RSS; /usr/bin/time is small, so its child's figure is the command's."""
    rss_path = out_path + ".maxrss"
    with open(out_path, "w") as out, open(os.devnull, "w") as devnull:
        t0 = time.perf_counter()
        proc = subprocess.Popen(["/usr/bin/time", "-f", "%M", "-o", rss_path] + cmd,
                                stdout=out, stderr=devnull)
        pid = child_of(proc.pid)
        peak = {k: 0 for k in STATUS_KEYS}
        timeline = []
        done = threading.Event()

        def sample():
            while pid is not None and not done.is_set():
                s = read_status(pid)
                for k, v in s.items():
                    peak[k] = max(peak[k], v)
                if s:
                    timeline.append((time.perf_counter() - t0, s))
                time.sleep(0.002)

        th = threading.Thread(target=sample)
        th.start()
        rc = proc.wait()
        done.set()
        th.join()
    with open(rss_path) as f:
        maxrss = int(f.read().split()[-1]) * 1024
    return rc, time.perf_counter() - t0, maxrss, peak, timeline


def print_memory(label, size, res, show_timeline):
    rc, wall, maxrss, peak, timeline = res
    if rc != 0:
        print(f"  {label}: failed with exit {rc}")
        return
    print(f"  {label}: {wall:.1f} s, peak RSS (/usr/bin/time) {maxrss / MIB:.0f} MiB = {maxrss / size:.2f} S "
          f"({'within' if maxrss <= 1.5 * size else 'OVER'} 1.5 S), VmHWM {peak['VmHWM'] / MIB:.0f} MiB;"
          f"\n      peaks sampled: anonymous "
          f"{peak['RssAnon'] / MIB:.0f} MiB = {peak['RssAnon'] / size:.2f} S, file-backed "
          f"(the mapped input) {peak['RssFile'] / MIB:.0f} MiB = {peak['RssFile'] / size:.2f} S")
    if show_timeline:
        step = max(1, len(timeline) // 10)
        for t, s in timeline[::step]:
            print(f"      t={t:6.2f}s anon {s.get('RssAnon', 0) / MIB:6.0f} MiB  file "
                  f"{s.get('RssFile', 0) / MIB:6.0f} MiB")


def bench_memory(args):
    dim = 8192
    n_tensors = max(1, round(args.model_mb * MIB / (dim * dim * 4)))
    path = os.path.join(args.data, f"model_{n_tensors}x{dim}.safetensors")
    if not os.path.exists(path):
        print(f"generating {path}", file=sys.stderr)
        make_model(path, n_tensors, dim)
    size = os.path.getsize(path)
    recipe = os.path.join(args.data, "recipe_int8.json")
    with open(recipe, "w") as f:
        json.dump({"steps": [{"quantize": {"bits": 8}}]}, f)
    out = os.path.join(args.data, "model_int8.safetensors")
    exe = args.modelpress or os.path.join(args.build, "cli", "modelpress")
    print(f"\nPeak resident memory, int8 per channel, on a model of S = {size / MIB:.0f} MiB "
          f"({n_tensors} F32 tensors {dim}x{dim} + biases); target <= 1.5 S:")
    if os.access(exe, os.X_OK):
        cmd = [exe, "compress", path, "-r", recipe, "-o", out, "--json"]
        res = measure(cmd, os.path.join(args.data, "compress_report.json"))
        print_memory("modelpress compress", size, res, True)
    else:
        print(f"  modelpress compress: skipped, no {exe} (make cli/modelpress)")
    # what the same work needs when done tensor by tensor (bench_core stream_int8)
    bench = os.path.join(args.build, "bench", "bench_core")
    for label, extra in (("streamed, input pages kept", ["--keep-pages"]),
                         ("streamed, input pages released", [])):
        res = measure([bench, "stream_int8", path, out] + extra,
                      os.path.join(args.data, "stream.json"))
        print_memory(f"bench_core stream_int8 ({label})", size, res, False)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", required=True, help="build folder with bench/bench_core")
    ap.add_argument("--data", help="where the inputs are generated (default BUILD/bench-data)")
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--svd-reps", type=int, default=5)
    ap.add_argument("--only", default="copy,quant,prune,kmeans,svd,runtime,memory")
    ap.add_argument("--runs", type=int, default=200,
                    help="runtime: timed runs per round and side (runtime.py)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="runtime: alternating rounds of ours and the peer (runtime.py)")
    ap.add_argument("--model-mb", type=int, default=1024)
    ap.add_argument("--modelpress", help="the command to measure (default BUILD/cli/modelpress)")
    args = ap.parse_args()
    args.data = args.data or os.path.join(args.build, "bench-data")
    os.makedirs(args.data, exist_ok=True)

    torch.set_num_threads(1)
    threadpoolctl.threadpool_limits(1)
    blas = [(i["internal_api"], i.get("architecture"), i["num_threads"])
            for i in threadpoolctl.threadpool_info()]
    print(f"torch {torch.__version__} threads {torch.get_num_threads()}, numpy "
          f"{np.__version__}, pools {blas}; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')} "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')} OPENBLAS_CORETYPE="
          f"{os.environ.get('OPENBLAS_CORETYPE', '(unset)')}; load {os.getloadavg()[0]:.2f}")

    path, w = load_matrix(args.data)
    only = args.only.split(",")
    benches = {"copy": bench_copy, "quant": bench_quant, "prune": bench_prune,
               "kmeans": bench_kmeans, "svd": bench_svd}
    rows = []
    for name, fn in benches.items():
        if name in only:
            rows += fn(args, path, w)
    if rows:
        print(f"\n{ROWS}x{COLS} F32 matrix ({w.nbytes / MIB:.0f} MiB), one thread each side, "
              f"median of {args.reps} after a warm-up ({args.svd_reps} for the SVD);\n"
              f"ratio = peer / ours in wall time (judged), cpu = the same in thread CPU time\n")
        print_table(rows)
    if "runtime" in only:
        sys.dont_write_bytecode = True  # no __pycache__ in the source tree
        import runtime  # bench/runtime.py: our ONNX runtime against onnxruntime-node and torch
        runtime.bench_runtime(args, w)
    if "memory" in only:
        bench_memory(args)
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
