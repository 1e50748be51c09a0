#!/usr/bin/env bash
# Builds cafe_tf's op library WITH the GPU kernels (used when CAFE_TF_CUDA=1):
#   custom_ops/core/*.cc + custom_ops/tf/*.cc     (ops + CPU kernels, as setup.py)
#   custom_ops/tf/gpu_kernels.cc                  (TF GPU kernels; g++, TF headers)
#   custom_ops/cuda/kernels/hotsketch_kernels.cu  (CUDA kernels; nvcc, no TF headers)
#   custom_ops/cuda/kernels/routing_kernels.cu    (CafeRoute's CUDA launcher)
#   custom_ops/cuda/kernels/occurrence_kernels.cu (CafeSegmentRowSums, CafePairImportance)
# linked into one shared library with the CUDA runtime linked statically
# (libcudart_static.a), so the library needs no libcudart.so at run time, only
# a driver new enough for the toolkit it was built with.
#
#   custom_ops/cuda/build_gpu_ops.sh [OUTPUT.so]
#
# Default OUTPUT: custom_ops/cuda/build/_cafe_ops_gpu.so. With
# `CAFE_TF_CUDA=1 pip install --no-build-isolation -e .`, setup.py passes its
# library path, cafe_tf/_cafe_ops_tf<version>.so.
#
# Environment:
#   PYTHON             python with the TensorFlow to build against (default: python3)
#   NVCC               nvcc (default: nvcc on PATH, else $CUDA_HOME/bin/nvcc)
#   CUDA_HOME          toolkit root (default: from nvcc's location)
#   CAFE_CUDA_GENCODE  target archs (default: sm_80 + sm_90 SASS, compute_90 PTX)
#
# Toolkit: TF 2.16 is built with CUDA 12.3. Build with a CUDA 12.x toolkit
# (12.3 or newer) for a library that runs on any driver TF 2.16 runs on. A
# CUDA 13 toolkit also builds it (checked), but its static runtime then needs
# an R580+ driver, and CUDA 13 cannot target sm_70 (V100) any more.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/sources.sh"
ROOT="$(cd "$HERE/../.." && pwd)"
OUT="${1:-$HERE/build/_cafe_ops_gpu.so}"
PYTHON="${PYTHON:-python3}"
NVCC="${NVCC:-$(command -v nvcc || echo "${CUDA_HOME:-/usr/local/cuda}/bin/nvcc")}"
CUDA_HOME="${CUDA_HOME:-$(cd "$(dirname "$NVCC")/.." && pwd)}"
GENCODE="${CAFE_CUDA_GENCODE:--gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90}"
OBJ="$HERE/build/gpu_ops"
mkdir -p "$OBJ" "$(dirname "$OUT")"

read -r -a TF_CFLAGS <<<"$("$PYTHON" -c 'import tensorflow as tf; print(" ".join(f for f in tf.sysconfig.get_compile_flags() if f != "--std=c++17"))' 2>/dev/null)"
read -r -a TF_LFLAGS <<<"$("$PYTHON" -c 'import tensorflow as tf; print(" ".join(tf.sysconfig.get_link_flags()))' 2>/dev/null)"
TF_INCLUDE="$("$PYTHON" -c 'import tensorflow as tf; print(tf.sysconfig.get_include())' 2>/dev/null)"
# TF's GPU headers (Eigen's GpuDevice) need cuda_runtime.h: use the CUDA
# headers TF ships (those TF itself was built with), else the toolkit's.
if [ -f "$TF_INCLUDE/third_party/gpus/cuda/include/cuda_runtime.h" ]; then
  TF_CUDA_INCLUDE="$TF_INCLUDE/third_party/gpus/cuda/include"
else
  TF_CUDA_INCLUDE="$CUDA_HOME/include"
fi
CUDART_STATIC="$CUDA_HOME/lib64/libcudart_static.a"
[ -f "$CUDART_STATIC" ] || CUDART_STATIC="$(find "$CUDA_HOME" -name libcudart_static.a | head -n 1)"
if [ ! -f "$CUDART_STATIC" ]; then
  echo "build_gpu_ops: libcudart_static.a not found under $CUDA_HOME" >&2
  exit 1
fi

echo "== nvcc: $("$NVCC" --version | tail -n 2 | head -n 1)"
pids=()
KERNEL_OBJECTS=()
for src in "${KERNEL_SOURCES[@]}"; do
  obj="$OBJ/$(basename "${src%.cu}").o"
  KERNEL_OBJECTS+=("$obj")
  # shellcheck disable=SC2086
  "$NVCC" -std=c++17 -O3 --fmad=false --threads 0 $GENCODE -Xcompiler -fPIC \
    -Xcompiler -fvisibility=hidden -c "$src" -o "$obj" &
  pids+=($!)
done
g++ -std=c++17 -fPIC -O3 -DGOOGLE_CUDA=1 "${TF_CFLAGS[@]}" -I"$TF_CUDA_INCLUDE" \
  -c "$ROOT/custom_ops/tf/gpu_kernels.cc" -o "$OBJ/gpu_kernels.o" &
pids+=($!)
for pid in "${pids[@]}"; do wait "$pid"; done
# The CPU library's sources (setup.py's list: all but gpu_kernels.cc, built above).
mapfile -t SOURCES < <(ls "$ROOT"/custom_ops/core/*.cc "$ROOT"/custom_ops/tf/*.cc |
                       grep -v '/gpu_kernels\.cc$')
g++ -std=c++17 -shared -fPIC -O3 "${SOURCES[@]}" "$OBJ/gpu_kernels.o" \
  "${KERNEL_OBJECTS[@]}" -o "$OUT" "${TF_CFLAGS[@]}" "${TF_LFLAGS[@]}" \
  "$CUDART_STATIC" -ldl -lrt -lpthread
echo "== built $OUT"
