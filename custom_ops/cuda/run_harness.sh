#!/usr/bin/env bash
# Builds the standalone CUDA harness (no TensorFlow) and runs it: every
# scenario compares the GPU kernels (insert, query, migrate, route, segment row
# sums, pair importance) with the CPU core bit for bit, then the throughput
# figures. Exits non-zero on any mismatch (1) or CUDA error (2).
#
#   custom_ops/cuda/run_harness.sh [harness args: --no-large --no-bench --bench-only --bench-iters N]
#   custom_ops/cuda/run_harness.sh --build-only    # build, do not run (no GPU needed)
#
# Environment: NVCC (default: nvcc on PATH, else /usr/local/cuda/bin/nvcc);
# CAFE_CUDA_GENCODE to override the target architectures (default sm_80 and
# sm_90 SASS plus compute_90 PTX); CAFE_CUDA_OPT and CAFE_HOST_OPT, the
# optimisation flags of nvcc and g++ (default -O3; compile_check.sh lowers them).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/sources.sh"
NVCC="${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}"
GENCODE="${CAFE_CUDA_GENCODE:--gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90}"
BUILD="$HERE/build"
mkdir -p "$BUILD"
# --fmad=false: no float contraction anywhere (the core has no a*b+c either,
# but this keeps future edits from silently fusing).
read -r -a OPT <<<"${CAFE_CUDA_OPT:--O3}"
read -r -a HOST_OPT <<<"${CAFE_HOST_OPT:--O3}"
FLAGS=(-std=c++17 "${OPT[@]}" --fmad=false --threads 0 -Xcompiler -pthread)
echo "== building with $("$NVCC" --version | tail -n 2 | head -n 1)"
start=$(date +%s)
pids=()
KERNEL_OBJECTS=()
for src in "${KERNEL_SOURCES[@]}"; do
  obj="$BUILD/$(basename "${src%.cu}").o"
  KERNEL_OBJECTS+=("$obj")
  # shellcheck disable=SC2086
  "$NVCC" "${FLAGS[@]}" $GENCODE -c "$src" -o "$obj" &
  pids+=($!)
done
# shellcheck disable=SC2086
"$NVCC" "${FLAGS[@]}" $GENCODE -c "$HERE/harness/harness.cu" -o "$BUILD/harness.o" &
pids+=($!)
# The host-side pieces (harness and core), one object per source.
HOST_OBJECTS=()
for src in "${HARNESS_SOURCES[@]}" "${CORE_SOURCES[@]}"; do
  obj="$BUILD/host_$(basename "$(dirname "$src")")_$(basename "${src%.cc}").o"
  HOST_OBJECTS+=("$obj")
  g++ -std=c++17 "${HOST_OPT[@]}" -pthread -c "$src" -o "$obj" &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
# shellcheck disable=SC2086
"$NVCC" "${FLAGS[@]}" $GENCODE "$BUILD/harness.o" "${KERNEL_OBJECTS[@]}" \
  "${HOST_OBJECTS[@]}" -o "$BUILD/harness"
echo "== built $BUILD/harness in $(( $(date +%s) - start )) s"
if [ "${1:-}" = "--build-only" ]; then exit 0; fi
exec "$BUILD/harness" "$@"
