#!/usr/bin/env bash
# CPU-only test of the GPU algorithm (no CUDA, no GPU): the launchers'
# per-thread bodies run on the host in kernel order and are compared bit for
# bit with the CPU core on every harness scenario; the same for the CafeRoute
# pipeline (routing_emulation_test.cc). About 15 s.
#   custom_ops/cuda/run_emulation_test.sh [--large]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mkdir -p "$HERE/build"
g++ -std=c++17 -O2 -Wall -Wextra -Wno-maybe-uninitialized -pthread "$HERE/emulation_test.cc" \
  "$HERE/harness_common.cc" "$HERE/../core/hotsketch.cc" -o "$HERE/build/emulation_test" &
g++ -std=c++17 -O2 -Wall -Wextra "$HERE/routing_emulation_test.cc" "$HERE/../core/hotsketch.cc" \
  "$HERE/../core/routing.cc" -o "$HERE/build/routing_emulation_test"
wait $!
"$HERE/build/routing_emulation_test"
exec "$HERE/build/emulation_test" "$@"
