#!/bin/sh
# test_quant_ref.sh — modelpress's quantization codes against PyTorch's on the same scales.
#
# Runs tests/reference/quant_ref.py with Debian's /usr/bin/python3, which drives the quant_tool
# built in the tree: with our scales and zero points, torch.quantize_per_channel (qint8, quint8),
# quantize_per_tensor and fake_quantize_per_channel_affine must give exactly our codes and
# dequantized values at every width 2..8, per channel, per group and per tensor, on random
# weights, the fixture's fc1.weight and two 512 x 1024 matrices full of rounding ties. The
# script prints each figure and what it asserts.
#
# Run by `make check` with top_srcdir and top_builddir set; by hand:
#   top_srcdir=. top_builddir=build sh tests/reference/test_quant_ref.sh
# Skips (exit 77, loudly) only when /usr/bin/python3 lacks NumPy or torch.

: "${top_srcdir:=$(dirname "$0")/../..}"
: "${top_builddir:=$top_srcdir}"
. "$top_srcdir/tests/lib/common.sh"

mp_require_numpy
"$MP_PYTHON" -c 'import torch' 2>/dev/null ||
    mp_skip "$MP_PYTHON cannot import torch (apt-get install python3-torch)"
TOOL=$top_builddir/tests/reference/quant_tool
[ -x "$TOOL" ] || mp_fail "$TOOL is not built (make tests/reference/quant_tool)"
mp_tmpdir

"$MP_PYTHON" "$top_srcdir/tests/reference/quant_ref.py" --tool "$TOOL" \
    --fixture "$top_srcdir/tests/fixtures/fmnist_mlp.safetensors" --tmp "$MP_TMP" ||
    mp_fail "modelpress's quantization codes differ from PyTorch's (see above)"
