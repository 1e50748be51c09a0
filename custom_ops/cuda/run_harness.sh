#!/usr/bin/env bash
# Builds the standalone CUDA harness (no TensorFlow) and runs it: every
# scenario compares the GPU kernels with the CPU core bit for bit, then the
# throughput figures. Exits non-zero on any mismatch (1) or CUDA error (2).
#
#   custom_ops/cuda/run_harness.sh [harness args: --no-large --no-bench --bench-only --bench-iters N]
#
# Environment: NVCC (default: nvcc on PATH, else /usr/local/cuda/bin/nvcc);
# CAFE_CUDA_GENCODE to override the target architectures (default sm_80 and
# sm_90 SASS plus compute_90 PTX).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
NVCC="${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}"
GENCODE="${CAFE_CUDA_GENCODE:--gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90}"
BUILD="$HERE/build"
mkdir -p "$BUILD"
# --fmad=false: no float contraction anywhere (the core has no a*b+c either,
# but this keeps future edits from silently fusing).
FLAGS=(-std=c++17 -O3 --fmad=false --threads 0 -Xcompiler -pthread)
echo "== building with $("$NVCC" --version | tail -n 2 | head -n 1)"
start=$(date +%s)
# shellcheck disable=SC2086
"$NVCC" "${FLAGS[@]}" $GENCODE -c "$HERE/hotsketch_kernels.cu" -o "$BUILD/hotsketch_kernels.o" &
k=$!
# shellcheck disable=SC2086
"$NVCC" "${FLAGS[@]}" $GENCODE -c "$HERE/harness.cu" -o "$BUILD/harness.o" &
h=$!
g++ -std=c++17 -O3 -pthread -c "$HERE/harness_common.cc" -o "$BUILD/harness_common.o" &
c=$!
g++ -std=c++17 -O3 -pthread -c "$HERE/../core/hotsketch.cc" -o "$BUILD/core_hotsketch.o" &
s=$!
wait $k; wait $h; wait $c; wait $s
# shellcheck disable=SC2086
"$NVCC" "${FLAGS[@]}" $GENCODE "$BUILD/harness.o" "$BUILD/hotsketch_kernels.o" \
  "$BUILD/harness_common.o" "$BUILD/core_hotsketch.o" -o "$BUILD/harness"
echo "== built in $(( $(date +%s) - start )) s; running"
exec "$BUILD/harness" "$@"
