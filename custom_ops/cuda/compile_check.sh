#!/usr/bin/env bash
# Compile check for CI (no GPU needed): `device_check.sh --dry-run` for one
# architecture (sm_90) with low optimisation (only diagnostics matter; ptxas
# still runs, so register and shared-memory limits are checked), plus a g++
# syntax check of the host emulation tests.
#   custom_ops/cuda/compile_check.sh
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/sources.sh"
NVCC="${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}"
start=$(date +%s)
g++ -std=c++17 -O0 -Wall -Wextra -fsyntax-only "${HARNESS_SOURCES[@]}" "${EMULATION_SOURCES[@]}" \
  "$HERE"/harness/*emulation_test.cc &
syntax=$!
rc=0
NVCC="$NVCC" CAFE_CUDA_GENCODE="-gencode arch=compute_90,code=sm_90" \
  CAFE_CUDA_OPT="-O0 -Xptxas -O1 -Xcompiler -Wall" CAFE_HOST_OPT="-O0 -Wall" \
  "$HERE/device_check.sh" --dry-run || rc=1
wait $syntax || rc=1
if [ $rc -ne 0 ]; then
  echo "compile_check: FAILED" >&2
  exit 1
fi
echo "compile_check: OK ($("$NVCC" --version | tail -n 2 | head -n 1); $(( $(date +%s) - start )) s)"
