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
pids=()
for src in "${KERNEL_SOURCES[@]}"; do
  "$NVCC" "${FLAGS[@]}" -c "$src" -o "$OUT/$(basename "${src%.cu}").o" &
  pids+=($!)
done
# harness.cu has no kernels of its own: PTX-only target is enough.
"$NVCC" -std=c++17 -O0 -gencode arch=compute_90,code=compute_90 -Xcompiler -Wall \
  -c "$HERE/harness/harness.cu" -o "$OUT/harness.o" &
pids+=($!)
g++ -std=c++17 -O0 -Wall -Wextra -fsyntax-only "${HARNESS_SOURCES[@]}" "${EMULATION_SOURCES[@]}" \
  "$HERE"/harness/*emulation_test.cc &
pids+=($!)
rc=0
for pid in "${pids[@]}"; do wait "$pid" || rc=1; done
if [ $rc -ne 0 ]; then
  echo "compile_check: FAILED" >&2
  exit 1
fi
echo "compile_check: OK ($("$NVCC" --version | tail -n 2 | head -n 1); $(( $(date +%s) - start )) s)"
