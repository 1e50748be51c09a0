#!/usr/bin/env bash
# The GPU check, in one command, for a bare Linux machine with an NVIDIA GPU:
# needs bash, g++ and nvcc (CUDA 12.x or 13.x), no TensorFlow, Python or pip.
# Builds the standalone harness for the machine's GPU, runs every kernel
# (insert, query, migrate, route, segment row sums, pair importance) on the
# scenario table against the C++ core bit for bit, then prints the throughput
# of each at batches of 64k and 1M keys. The run is limited to 5 minutes.
#
#   custom_ops/cuda/device_check.sh            # on the GPU machine
#   custom_ops/cuda/device_check.sh --dry-run  # build only: needs nvcc, no GPU
#   custom_ops/cuda/device_check.sh --cpu      # no CUDA at all: the same scenario
#                                              # comparisons, with the kernels' bodies
#                                              # run on the host (run_emulation_test.sh)
#
# Exit status: 0 every result matched; 1 a mismatch; 2 a CUDA error (no GPU,
# driver too old for the toolkit, a failed launch); 3 a missing tool or a
# failed build; 124 the run passed its time limit (DEVICE_CHECK_TIMEOUT
# seconds, default 280); with --cpu, 1 on any failure. The whole output is
# also written to custom_ops/cuda/build/device_check.log.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MODE="${1:-run}"
case "$MODE" in
  run | --dry-run | --cpu) ;;
  *)
    echo "usage: $0 [--dry-run | --cpu]" >&2
    exit 3
    ;;
esac
mkdir -p "$HERE/build"
LOG="$HERE/build/device_check.log"
exec > >(tee "$LOG") 2>&1

fail() {
  echo "device_check: $2" >&2
  exit "$1"
}

command -v g++ >/dev/null || fail 3 "g++ not found (the C++ core and harness need it)"
if [ "$MODE" = "--cpu" ]; then
  echo "== device_check --cpu: the GPU pipelines emulated on the host, compared with the core"
  "$HERE/run_emulation_test.sh" --no-large || fail 1 "emulation FAILED (a mismatch or a build error, see above)"
  echo "device_check: PASS (emulation; no GPU code ran)"
  exit 0
fi

export NVCC="${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}"
[ -x "$NVCC" ] || fail 3 "nvcc not found (set NVCC, or put the CUDA toolkit's bin on PATH)"
# Build for this machine's GPU only (much faster than the default three targets).
if [ -z "${CAFE_CUDA_GENCODE:-}" ] && command -v nvidia-smi >/dev/null; then
  cap="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d '. ')"
  if [[ "$cap" =~ ^[0-9]+$ ]]; then
    export CAFE_CUDA_GENCODE="-gencode arch=compute_$cap,code=sm_$cap"
  fi
fi
echo "== device_check ($MODE): GPU targets ${CAFE_CUDA_GENCODE:-default (sm_80, sm_90)}"
"$HERE/run_harness.sh" --build-only || fail 3 "build FAILED"
if [ "$MODE" = "--dry-run" ]; then
  echo "device_check: BUILD OK (dry run: nothing ran on a GPU)"
  exit 0
fi

command -v nvidia-smi >/dev/null && nvidia-smi -L || echo "(nvidia-smi not found)"
rc=0
timeout "${DEVICE_CHECK_TIMEOUT:-280}" "$HERE/build/harness" || rc=$?
case "$rc" in
  0) echo "device_check: PASS (every kernel bit-identical to the core on every scenario)" ;;
  1) fail 1 "MISMATCH: a GPU result differs from the core (the FAIL lines above)" ;;
  2) fail 2 "CUDA ERROR (the line above; is there a GPU, and a driver for this toolkit?)" ;;
  124) fail 124 "TIMEOUT after ${DEVICE_CHECK_TIMEOUT:-280} s" ;;
  *) fail "$rc" "harness exited with status $rc" ;;
esac
