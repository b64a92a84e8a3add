#!/bin/sh
# run.sh — the benchmark suite in one command: ours against the Python peers, one thread each.
#
# Usage: bench/run.sh [--build BUILD_DIR] [peers.py options]   (or `make bench` in a build
# folder, which builds bench/bench_core and cli/modelpress first). BUILD_DIR defaults to
# ./build. Every thread pool is held to one thread on both sides. OPENBLAS_CORETYPE and
# OPENBLAS_L2_SIZE, which this lab sets on some processors for old OpenBLAS builds, slow a
# current numpy/torch down; they are unset for this one command only (never in tests or CI), and
# bench_core inherits the same environment, so both sides use the same OpenBLAS kernels.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build="$here/../build"
if [ "${1:-}" = "--build" ]; then
    build=$2
    shift 2
fi
if [ ! -x "$build/bench/bench_core" ]; then
    echo "run.sh: no $build/bench/bench_core; build it and cli/modelpress first" \
        "(make bench/bench_core cli/modelpress, or make bench)" >&2
    exit 2
fi
exec env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
    MKL_NUM_THREADS=1 /usr/bin/python3 "$here/peers.py" --build "$build" "$@"
