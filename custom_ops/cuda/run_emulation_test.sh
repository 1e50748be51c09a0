#!/usr/bin/env bash
# CPU-only test of the GPU algorithm (no CUDA, no GPU): the launchers'
# per-thread bodies run on the host in kernel order and are compared bit for
# bit with the CPU core on every harness scenario (route and occurrence sums
# included), the benchmark-sized one included (--no-large skips it); then the
# CafeRoute pipeline (harness/routing_emulation_test.cc) and the occurrence
# sums (harness/occurrence_emulation_test.cc) on their own shapes. Compiling
# takes most of its time.
#   custom_ops/cuda/run_emulation_test.sh [--no-large]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/sources.sh"
mkdir -p "$HERE/build"
FLAGS=(-std=c++17 -O2 -Wall -Wextra -pthread)
# One object per shared source, so the three tests compile each once.
OBJECTS=()
pids=()
for src in "${HARNESS_SOURCES[@]}" "${EMULATION_SOURCES[@]}" "${CORE_SOURCES[@]}"; do
  obj="$HERE/build/emu_$(basename "$(dirname "$src")")_$(basename "${src%.cc}").o"
  OBJECTS+=("$obj")
  g++ "${FLAGS[@]}" -Wno-maybe-uninitialized -c "$src" -o "$obj" &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
g++ "${FLAGS[@]}" -Wno-maybe-uninitialized "$HERE/harness/emulation_test.cc" "${OBJECTS[@]}" \
  -o "$HERE/build/emulation_test" &
pid=$!
for test in routing_emulation_test occurrence_emulation_test; do
  g++ "${FLAGS[@]}" "$HERE/harness/$test.cc" "${OBJECTS[@]}" -o "$HERE/build/$test"
done
wait $pid
"$HERE/build/routing_emulation_test"
"$HERE/build/occurrence_emulation_test"
exec "$HERE/build/emulation_test" "$@"
