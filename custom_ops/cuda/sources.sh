# Source lists of the CUDA build and test scripts (sourced by them, not run).
# shellcheck disable=SC2034
CUDA_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# The C++ core (custom_ops/core): the reference every GPU result is compared with.
CORE_SOURCES=("$CUDA_DIR"/../core/*.cc)
# The CUDA kernels (nvcc): the sketch ops, CafeRoute, the occurrence sums.
KERNEL_SOURCES=("$CUDA_DIR"/kernels/{hotsketch,routing,occurrence}_kernels.cu)
# The harness's host-side pieces, shared by harness.cu and emulation_test.cc.
HARNESS_SOURCES=("$CUDA_DIR"/harness/{backend,batches,compare,scenarios,self_test}.cc)
# The host emulations of the route and occurrence pipelines (emulation tests).
EMULATION_SOURCES=("$CUDA_DIR"/harness/{route,occurrence}_emulation.cc)
