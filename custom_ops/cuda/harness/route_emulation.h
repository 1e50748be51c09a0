// The CafeRoute GPU pipeline of routing_kernels.cu run on the host: its
// per-thread bodies (../kernels/routing_device_common.h) in kernel order, a
// sequential compare-and-swap and min standing in for the atomics and a plain
// exclusive scan for CUB's. Used by routing_emulation_test.cc and by the
// emulated backend of emulation_test.cc.
#ifndef CAFE_TF_CUDA_HARNESS_ROUTE_EMULATION_H_
#define CAFE_TF_CUDA_HARNESS_ROUTE_EMULATION_H_

#include <cstdint>
#include <vector>

#include "../../core/hotsketch.h"
#include "../../core/routing.h"

namespace cafe {
namespace harness {

// LaunchRoute on the host; claims in ascending or (`descending`) descending
// index order (the GPU's order is arbitrary: the output must not depend on it).
RouteResult EmulateRoute(const SketchConfig& config, const ConstSketchState& s,
                         const RouteTables& tables, const std::vector<int64_t>& ids,
                         const std::vector<int32_t>& feature_index, bool descending,
                         std::vector<int32_t>* inverse);

}  // namespace harness
}  // namespace cafe

#endif  // CAFE_TF_CUDA_HARNESS_ROUTE_EMULATION_H_
