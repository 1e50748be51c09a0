// CUDA kernels of CafeSegmentRowSums and CafePairImportance (see
// occurrence_kernels.h and occurrence_device_common.h). No TensorFlow headers.
// Both share one ordering pass: validate the ids, radix-sort them stably with
// the occurrence indices as values, mark each segment's range. The sums then
// run one thread per output, so nothing depends on thread order.
#include <cub/device/device_radix_sort.cuh>

#include <algorithm>
#include <climits>

#include "launch_common.cuh"
#include "occurrence_device_common.h"
#include "occurrence_kernels.h"

namespace cafe {
namespace cuda {
namespace {

using namespace detail;  // NOLINT: the shared bodies

using launch::BitsFor;
using launch::Carver;
using launch::GridFor;
using launch::kThreads;

struct Workspace {
  int32_t* index;   // [n] 0, 1, ..., n - 1
  int32_t* sorted;  // [n] the sorted segment ids
  int32_t* order;   // [n] occurrence indices, stably sorted by segment
  int32_t* begin;   // [num_segments]
  int32_t* end;     // [num_segments]
  float* values;    // [n] occurrence values (pair importance)
  void* sort;       // CUB temporary storage
  size_t sort_bytes;
};

// Lays the workspace out from `base` (nullptr: only sizes it); returns the bytes used.
size_t Layout(int64_t n, int64_t num_segments, void* base, size_t sort_bytes, Workspace* w) {
  Carver carve(base);
  w->index = carve.Take<int32_t>(n);
  w->sorted = carve.Take<int32_t>(n);
  w->order = carve.Take<int32_t>(n);
  w->begin = carve.Take<int32_t>(num_segments);
  w->end = carve.Take<int32_t>(num_segments);
  w->values = carve.Take<float>(n);
  w->sort = carve.TakeBytes(sort_bytes);
  w->sort_bytes = sort_bytes;
  return carve.used();
}

cudaError_t SortBytes(int64_t n, size_t* bytes) {
  *bytes = 0;
  return cub::DeviceRadixSort::SortPairs(nullptr, *bytes, static_cast<const int32_t*>(nullptr),
                                         static_cast<int32_t*>(nullptr),
                                         static_cast<const int32_t*>(nullptr),
                                         static_cast<int32_t*>(nullptr), static_cast<int>(n));
}

__global__ void ValidateKernel(const int32_t* segments, int64_t n, int64_t num_segments,
                               int32_t* index, int64_t* status) {
  CAFE_GRID_LOOP(i, n) {
    index[i] = static_cast<int32_t>(i);
    const int64_t bad = BadSegmentBody(i, segments, num_segments, n);
    if (bad < n) atomicMin(reinterpret_cast<unsigned long long*>(status), bad);
  }
}

__global__ void StatusKernel(int64_t* status, int64_t n) { *status = n; }

__global__ void BoundsKernel(const int32_t* sorted, int64_t n, int64_t num_segments,
                             int32_t* begin, int32_t* end) {
  CAFE_GRID_LOOP(k, n) { BoundsBody(k, sorted, n, num_segments, begin, end); }
}

__global__ void SegmentColumnSumKernel(const float* rows, int64_t d, int64_t outputs,
                                       Workspace w, float* out) {
  CAFE_GRID_LOOP(t, outputs) { SegmentColumnSumBody(t, rows, d, w.order, w.begin, w.end, out); }
}

__global__ void OccurrenceValueKernel(const float* rows, int64_t n, int64_t d, bool norm,
                                      float* values) {
  CAFE_GRID_LOOP(i, n) { OccurrenceValueBody(i, rows, d, norm, values); }
}

__global__ void PairSumKernel(int64_t num_pairs, Workspace w, double* sums,
                              double* occurrences) {
  CAFE_GRID_LOOP(p, num_pairs) {
    PairSumBody(p, w.values, w.order, w.begin, w.end, sums, occurrences);
  }
}

// Validates the ids and orders the occurrences by segment (w.order, w.begin, w.end).
cudaError_t Order(const int32_t* segments, int64_t n, int64_t num_segments, int64_t* status,
                  void* workspace, size_t workspace_bytes, Workspace* w, cudaStream_t stream) {
  if (n < 0 || n > INT_MAX || num_segments < 0 || num_segments > INT_MAX) {
    return cudaErrorInvalidValue;
  }
  size_t sort_bytes = 0;
  CAFE_CUDA_RETURN_IF_ERROR(SortBytes(std::max<int64_t>(n, 1), &sort_bytes));
  if (Layout(n, num_segments, nullptr, sort_bytes, w) > workspace_bytes) {
    return cudaErrorInvalidValue;
  }
  Layout(n, num_segments, workspace, sort_bytes, w);
  StatusKernel<<<1, 1, 0, stream>>>(status, n);
  if (num_segments > 0) {
    CAFE_CUDA_RETURN_IF_ERROR(
        cudaMemsetAsync(w->begin, 0, sizeof(int32_t) * num_segments, stream));
    CAFE_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(w->end, 0, sizeof(int32_t) * num_segments, stream));
  }
  if (n == 0) return cudaGetLastError();
  ValidateKernel<<<GridFor(n), kThreads, 0, stream>>>(segments, n, num_segments, w->index,
                                                      status);
  CAFE_CUDA_RETURN_IF_ERROR(cub::DeviceRadixSort::SortPairs(
      w->sort, sort_bytes, segments, w->sorted, w->index, w->order, static_cast<int>(n), 0,
      BitsFor(static_cast<uint64_t>(std::max<int64_t>(num_segments, 1) - 1)), stream));
  BoundsKernel<<<GridFor(n), kThreads, 0, stream>>>(w->sorted, n, num_segments, w->begin, w->end);
  return cudaGetLastError();
}

}  // namespace

size_t OccurrenceWorkspaceBytes(int64_t n, int64_t num_segments, cudaError_t* error) {
  size_t sort_bytes = 0;
  const cudaError_t err = SortBytes(std::max<int64_t>(n, 1), &sort_bytes);
  if (error != nullptr) *error = err;
  if (err != cudaSuccess) return 0;
  Workspace w;
  return Layout(std::max<int64_t>(n, 0), std::max<int64_t>(num_segments, 0), nullptr, sort_bytes,
                &w);
}

cudaError_t LaunchSegmentRowSums(const float* d_rows, const int32_t* d_segments, int64_t n,
                                 int64_t d, int64_t num_segments, float* d_out,
                                 int64_t* d_status, void* workspace, size_t workspace_bytes,
                                 cudaStream_t stream) {
  if (d < 0) return cudaErrorInvalidValue;
  Workspace w;
  CAFE_CUDA_RETURN_IF_ERROR(
      Order(d_segments, n, num_segments, d_status, workspace, workspace_bytes, &w, stream));
  const int64_t outputs = num_segments * d;
  if (outputs > 0) {
    SegmentColumnSumKernel<<<GridFor(outputs), kThreads, 0, stream>>>(d_rows, d, outputs, w,
                                                                       d_out);
  }
  return cudaGetLastError();
}

cudaError_t LaunchPairImportance(const float* d_rows, const int32_t* d_pairs, int64_t n,
                                 int64_t d, bool norm, int64_t num_pairs, double* d_sums,
                                 double* d_occurrences, int64_t* d_status, void* workspace,
                                 size_t workspace_bytes, cudaStream_t stream) {
  if (d < 0 || (!norm && d != 1 && n > 0)) return cudaErrorInvalidValue;
  Workspace w;
  CAFE_CUDA_RETURN_IF_ERROR(
      Order(d_pairs, n, num_pairs, d_status, workspace, workspace_bytes, &w, stream));
  if (n > 0) OccurrenceValueKernel<<<GridFor(n), kThreads, 0, stream>>>(d_rows, n, d, norm,
                                                                        w.values);
  if (num_pairs > 0) {
    PairSumKernel<<<GridFor(num_pairs), kThreads, 0, stream>>>(num_pairs, w, d_sums,
                                                               d_occurrences);
  }
  return cudaGetLastError();
}

}  // namespace cuda
}  // namespace cafe
