#!/bin/sh
# test_prune_ref.sh — modelpress's pruning masks against PyTorch's on the same tensors.
#
# Runs tests/reference/prune_ref.py with Debian's /usr/bin/python3, which drives the
# prune_tool built in the tree: the 90 % magnitude mask of a 1024 x 1024 random matrix and of
# the fixture's fc1.weight must equal torch.nn.utils.prune.l1_unstructured's (ties at the cut
# aside), and channel pruning by L1 and L2 norm must equal torch's ln_structured(dim=0)
# exactly. The script prints each figure and what it asserts.
#
# Run by `make check` with top_srcdir and top_builddir set; by hand:
#   top_srcdir=. top_builddir=build sh tests/reference/test_prune_ref.sh
# Skips (exit 77, loudly) only when /usr/bin/python3 lacks NumPy or torch.

: "${top_srcdir:=$(dirname "$0")/../..}"
: "${top_builddir:=$top_srcdir}"
. "$top_srcdir/tests/lib/common.sh"

mp_require_numpy
"$MP_PYTHON" -c 'import torch' 2>/dev/null ||
    mp_skip "$MP_PYTHON cannot import torch (apt-get install python3-torch)"
TOOL=$top_builddir/tests/reference/prune_tool
[ -x "$TOOL" ] || mp_fail "$TOOL is not built (make tests/reference/prune_tool)"
mp_tmpdir

"$MP_PYTHON" "$top_srcdir/tests/reference/prune_ref.py" --tool "$TOOL" \
    --fixture "$top_srcdir/tests/fixtures/fmnist_mlp.safetensors" --tmp "$MP_TMP" ||
    mp_fail "modelpress's masks differ from PyTorch's (see above)"
