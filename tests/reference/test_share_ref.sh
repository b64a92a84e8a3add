#!/bin/sh
# test_share_ref.sh — modelpress's k-means weight sharing against scikit-learn's KMeans.
#
# Runs tests/reference/share_ref.py with Debian's /usr/bin/python3, which drives the share_tool
# built in the tree: on 1M weights drawn like trained ones and on the fixture's fc1.weight, from
# the same initial centroids, our Lloyd's SSE must be <= scikit-learn's (n_init=1,
# algorithm='lloyd', max_iter=300, tol=0) * (1 + 1e-6), and the exact optimum's SSE <= both;
# our assignments must be to the nearest centroid and our SSE what we report. The script
# prints each figure and what it asserts. One thread, about a minute on these machines.
#
# Run by `make check` with top_srcdir and top_builddir set; by hand:
#   top_srcdir=. top_builddir=build sh tests/reference/test_share_ref.sh
# Skips (exit 77, loudly) only when /usr/bin/python3 lacks NumPy or scikit-learn.

: "${top_srcdir:=$(dirname "$0")/../..}"
: "${top_builddir:=$top_srcdir}"
. "$top_srcdir/tests/lib/common.sh"

mp_require_numpy
"$MP_PYTHON" -c 'import sklearn' 2>/dev/null ||
    mp_skip "$MP_PYTHON cannot import sklearn (apt-get install python3-sklearn)"
TOOL=$top_builddir/tests/reference/share_tool
[ -x "$TOOL" ] || mp_fail "$TOOL is not built (make tests/reference/share_tool)"
mp_tmpdir

OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 "$MP_PYTHON" "$top_srcdir/tests/reference/share_ref.py" \
    --tool "$TOOL" --fixture "$top_srcdir/tests/fixtures/fmnist_mlp.safetensors" --tmp "$MP_TMP" ||
    mp_fail "modelpress's k-means is worse than scikit-learn's or broke a promise (see above)"
