// Launch helpers shared by the .cu files of this folder (not by the host
// emulation): the block size, grid sizing, the grid-stride loop, error
// propagation, and the carving of one caller-provided workspace into aligned
// buffers. No TensorFlow headers.
#ifndef CAFE_TF_CUDA_LAUNCH_COMMON_CUH_
#define CAFE_TF_CUDA_LAUNCH_COMMON_CUH_

#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>

#define CAFE_CUDA_RETURN_IF_ERROR(expr)             \
  do {                                              \
    const cudaError_t cafe_err_ = (expr);           \
    if (cafe_err_ != cudaSuccess) return cafe_err_; \
  } while (0)

// Grid-stride index loop.
#define CAFE_GRID_LOOP(i, n)                                                              \
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)

namespace cafe {
namespace cuda {
namespace launch {

constexpr int kThreads = 256;
constexpr size_t kAlign = 256;

// Blocks for n threads of `threads` each (at least 1, at most 2^20: the
// grid-stride loops cover the rest).
inline unsigned int GridFor(int64_t n, int threads = kThreads) {
  const int64_t blocks = (n + threads - 1) / threads;
  return static_cast<unsigned int>(std::max<int64_t>(1, std::min<int64_t>(blocks, 1 << 20)));
}

// Bits a radix sort must look at for keys in [0, max_value] (at least 1).
inline int BitsFor(uint64_t max_value) {
  int bits = 1;
  while (bits < 64 && (max_value >> bits) != 0) ++bits;
  return bits;
}

inline size_t AlignUp(size_t x) { return (x + kAlign - 1) / kAlign * kAlign; }

// Carves kAlign-aligned sub-buffers out of one workspace. The base address
// is rounded up to kAlign first, and used() counts kAlign - 1 bytes of slack
// for that, so any base address works. With base == nullptr it only adds up
// the sizes (the size query runs the same code as the launch).
class Carver {
 public:
  explicit Carver(void* base)
      : base_(base == nullptr
                  ? nullptr
                  : reinterpret_cast<char*>(AlignUp(reinterpret_cast<uintptr_t>(base)))) {}
  template <typename T>
  T* Take(int64_t count) {
    return static_cast<T*>(TakeBytes(static_cast<size_t>(std::max<int64_t>(count, 1)) * sizeof(T)));
  }
  void* TakeBytes(size_t bytes) {
    const size_t offset = offset_;
    offset_ = AlignUp(offset_ + std::max<size_t>(bytes, 1));
    return base_ == nullptr ? nullptr : static_cast<void*>(base_ + offset);
  }
  size_t used() const { return offset_ + (kAlign - 1); }

 private:
  char* base_;
  size_t offset_ = 0;  // from the aligned base
};

}  // namespace launch
}  // namespace cuda
}  // namespace cafe

#endif  // CAFE_TF_CUDA_LAUNCH_COMMON_CUH_
