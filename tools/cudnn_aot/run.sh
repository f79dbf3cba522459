#!/usr/bin/env bash
# Builds and runs tools/cudnn_aot/cudnn_aot.cu (see its header): a GPU-less check that cuDNN accepts
# the attention graphs of kernels/cuda/attention_cudnn.cu (built with kernels/cuda/cudnn_graph.cu)
# and offers engines for them on a described device. Needs the CUDA toolkit and cuDNN >= 9.8
# (headers and library); no GPU.
# Usage: tools/cudnn_aot/run.sh [DEVICE_JSON]   (default tools/cudnn_aot/h100.json: an H100 SXM)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
json=$(realpath "${1:-$here/h100.json}")
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
nvcc -std=c++17 -O1 -DEXITRL_HAVE_CUDNN=1 -I"$root/kernels" -I"$root/kernels/cuda" -I"$root/host" \
    "$here/cudnn_aot.cu" -o "$out/cudnn_aot" -lcudnn -lcublasLt
# No driver here: the toolkit's stub libcuda lets cuDNN start (it then stops at loading kernels).
stubs=$(dirname "$(command -v nvcc)")/../lib64/stubs
mkdir -p "$out/lib"
[ -e /usr/lib/x86_64-linux-gnu/libcuda.so.1 ] || ln -s "$stubs/libcuda.so" "$out/lib/libcuda.so.1"
LD_LIBRARY_PATH="$out/lib:${LD_LIBRARY_PATH:-}" "$out/cudnn_aot" "$json"
