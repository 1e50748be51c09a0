#!/usr/bin/env bash
# Compile-only check of the CUDA sources with the machine's nvcc (no GPU
# needed), for CI. One architecture (sm_90) keeps it well under a minute on
# 2 cores. Also builds the host-only pieces of the harness with g++.
#   custom_ops/cuda/compile_check.sh
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/sources.sh"
NVCC="${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}"
OUT="$HERE/build/compile_check"
mkdir -p "$OUT"
# Device code at sm_90 SASS (ptxas runs: register / shared-memory limits are
# checked); host code at -O0 and ptxas at -O1, since only diagnostics matter.
FLAGS=(-std=c++17 -O0 -Xptxas -O1 --fmad=false -gencode arch=compute_90,code=sm_90 -Xcompiler -Wall)
start=$(date +%s)
"$NVCC" "${FLAGS[@]}" -c "$HERE/kernels/hotsketch_kernels.cu" -o "$OUT/hotsketch_kernels.o" &
k=$!
"$NVCC" "${FLAGS[@]}" -c "$HERE/kernels/routing_kernels.cu" -o "$OUT/routing_kernels.o" &
r=$!
# harness.cu has no kernels of its own: PTX-only target is enough.
"$NVCC" -std=c++17 -O0 -gencode arch=compute_90,code=compute_90 -Xcompiler -Wall \
  -c "$HERE/harness/harness.cu" -o "$OUT/harness.o" &
h=$!
g++ -std=c++17 -O0 -Wall -Wextra -fsyntax-only "${HARNESS_SOURCES[@]}" \
  "$HERE/harness/emulation_test.cc" "$HERE/harness/routing_emulation_test.cc" &
g=$!
rc=0
wait $k || rc=1
wait $r || rc=1
wait $h || rc=1
wait $g || rc=1
if [ $rc -ne 0 ]; then
  echo "compile_check: FAILED" >&2
  exit 1
fi
echo "compile_check: OK ($("$NVCC" --version | tail -n 2 | head -n 1); $(( $(date +%s) - start )) s)"
