#!/usr/bin/env bash
# CPU-only test of the GPU algorithm (no CUDA, no GPU): the launchers'
# per-thread bodies run on the host in kernel order and are compared bit for
# bit with the CPU core on every harness scenario, the benchmark-sized one
# included (--no-large skips it); the same for the CafeRoute pipeline
# (harness/routing_emulation_test.cc). Compiling takes most of its time.
#   custom_ops/cuda/run_emulation_test.sh [--no-large]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/sources.sh"
mkdir -p "$HERE/build"
g++ -std=c++17 -O2 -Wall -Wextra -Wno-maybe-uninitialized -pthread \
  "$HERE/harness/emulation_test.cc" "${HARNESS_SOURCES[@]}" "${CORE_SOURCES[@]}" \
  -o "$HERE/build/emulation_test" &
g++ -std=c++17 -O2 -Wall -Wextra -pthread "$HERE/harness/routing_emulation_test.cc" \
  "${CORE_SOURCES[@]}" -o "$HERE/build/routing_emulation_test"
wait $!
"$HERE/build/routing_emulation_test"
exec "$HERE/build/emulation_test" "$@"
