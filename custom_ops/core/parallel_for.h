// How the core splits work over threads without knowing whose threads they are:
// the caller passes a ParallelFor (TF's intra-op pool in the op library, plain
// threads in the CUDA harness and core_bench, SerialFor in tests).
#ifndef CAFE_TF_CORE_PARALLEL_FOR_H_
#define CAFE_TF_CORE_PARALLEL_FOR_H_

#include <cstdint>
#include <functional>

namespace cafe {

// Runs fn(begin, end) over disjoint ranges covering [0, n), possibly in
// parallel. The core's results never depend on how the range is split.
using ParallelFor =
    std::function<void(int64_t n, const std::function<void(int64_t, int64_t)>& fn)>;

// Runs everything on the calling thread.
inline void SerialFor(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
  if (n > 0) fn(0, n);
}

}  // namespace cafe

#endif  // CAFE_TF_CORE_PARALLEL_FOR_H_
