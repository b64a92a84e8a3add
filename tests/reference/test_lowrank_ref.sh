#!/bin/sh
# test_lowrank_ref.sh — modelpress's truncated SVD against NumPy's and PyTorch's on the same
# matrices.
#
# Runs tests/reference/lowrank_ref.py with Debian's /usr/bin/python3, which drives the
# lowrank_tool built in the tree: on a 512 x 384 random matrix and on the fixture's fc1.weight,
# for several ranks, our exact truncation error must equal numpy.linalg.svd truncation's within
# 1e-4 relative, and our randomized error (n_iter 2) must be at most 1.02 times
# torch.svd_lowrank(q=r, niter=2)'s. The script prints each figure and what it asserts.
#
# Run by `make check` with top_srcdir and top_builddir set; by hand:
#   top_srcdir=. top_builddir=build sh tests/reference/test_lowrank_ref.sh
# Skips (exit 77, loudly) only when /usr/bin/python3 lacks NumPy or torch.

: "${top_srcdir:=$(dirname "$0")/../..}"
: "${top_builddir:=$top_srcdir}"
. "$top_srcdir/tests/lib/common.sh"

mp_require_numpy
"$MP_PYTHON" -c 'import torch' 2>/dev/null ||
    mp_skip "$MP_PYTHON cannot import torch (apt-get install python3-torch)"
TOOL=$top_builddir/tests/reference/lowrank_tool
[ -x "$TOOL" ] || mp_fail "$TOOL is not built (make tests/reference/lowrank_tool)"
mp_tmpdir

"$MP_PYTHON" "$top_srcdir/tests/reference/lowrank_ref.py" --tool "$TOOL" \
    --fixture "$top_srcdir/tests/fixtures/fmnist_mlp.safetensors" --tmp "$MP_TMP" ||
    mp_fail "modelpress's truncated SVD differs from NumPy's or PyTorch's (see above)"
