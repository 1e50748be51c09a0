// CUDA kernels of the CafeRoute op (see routing_kernels.h). No TensorFlow
// headers. Each pass "distinct values of a list" is: claim a hash slot per
// entry (compare-and-swap) keeping the smallest entry index per slot (atomic
// min), flag first occurrences, exclusive scan, scatter. The passes over the
// U distinct pairs run over n entries and treat entries >= U (device count)
// as unused, so nothing waits for the host.
#include <cub/device/device_scan.cuh>

#include <algorithm>
#include <climits>

#include "routing_device_common.h"
#include "launch_common.cuh"
#include "routing_kernels.h"

namespace cafe {
namespace cuda {
namespace {

using namespace detail;  // NOLINT: the shared bodies

using launch::Carver;
using launch::GridFor;
using launch::kThreads;

struct Workspace {
  int32_t* owner;     // [slots]
  int32_t* first;     // [slots]
  int32_t* slot_of;   // [n]
  int32_t* flag;      // [n]
  int32_t* pos;       // [n]
  int32_t* index;     // [n] scratch index of a read pass
  int64_t* hot64;     // [n]
  void* scan;         // CUB temporary storage
  size_t scan_bytes;
};

// Lays the workspace out from `base` (nullptr: only sizes it); returns the bytes used.
size_t Layout(int64_t n, void* base, Workspace* w, size_t scan_bytes) {
  const int64_t slots = PairTableSlots(n);
  Carver carve(base);
  w->owner = carve.Take<int32_t>(slots);
  w->first = carve.Take<int32_t>(slots);
  w->slot_of = carve.Take<int32_t>(n);
  w->flag = carve.Take<int32_t>(n);
  w->pos = carve.Take<int32_t>(n);
  w->index = carve.Take<int32_t>(n);
  w->hot64 = carve.Take<int64_t>(n);
  w->scan = carve.TakeBytes(scan_bytes);
  w->scan_bytes = scan_bytes;
  return carve.used();
}

cudaError_t ScanBytes(int64_t n, size_t* bytes) {
  *bytes = 0;
  return cub::DeviceScan::ExclusiveSum(nullptr, *bytes, static_cast<const int32_t*>(nullptr),
                                       static_cast<int32_t*>(nullptr), static_cast<int>(n));
}

__global__ void FillKernel(int32_t* owner, int32_t* first, int64_t slots) {
  CAFE_GRID_LOOP(s, slots) {
    owner[s] = -1;
    first[s] = INT_MAX;
  }
}

__global__ void BadFeatureIndexKernel(const int32_t* feature_index, int32_t num_features,
                                      int64_t n, int64_t* counts) {
  CAFE_GRID_LOOP(i, n) {
    const int64_t bad = BadFeatureIndexBody(i, feature_index, num_features, n);
    if (bad < n) atomicMin(reinterpret_cast<unsigned long long*>(counts + 4), bad);
  }
}

// `limit` (device, may be null: all n) bounds the used entries; with
// `non_negative`, only entries whose value is >= 0 are used.
__global__ void ClaimKernel(const int64_t* a, const int32_t* b, int64_t n, const int64_t* limit,
                            bool non_negative, uint64_t mask, Workspace w) {
  const int64_t m = limit == nullptr ? n : *limit;
  CAFE_GRID_LOOP(i, n) {
    if (i >= m || (non_negative && a[i] < 0)) {
      w.slot_of[i] = -1;
      continue;
    }
    w.slot_of[i] = ClaimBody(
        i, a, b, w.owner, w.first, mask,
        [](int32_t* p, int32_t e, int32_t d) { return atomicCAS(p, e, d); },
        [](int32_t* p, int32_t v) { atomicMin(p, v); });
  }
}

__global__ void FlagKernel(int64_t n, Workspace w) {
  CAFE_GRID_LOOP(i, n) { FirstFlagBody(i, w.slot_of, w.first, w.flag); }
}

__global__ void CountKernel(int64_t n, Workspace w, int64_t* count) {
  *count = n == 0 ? 0 : static_cast<int64_t>(w.pos[n - 1]) + w.flag[n - 1];
}

template <typename T>
__global__ void ScatterKernel(const int64_t* a, const int32_t* b, int64_t n, Workspace w,
                              const int64_t* base, int32_t* index, T* out_a, int32_t* out_b) {
  const int32_t offset = base == nullptr ? 0 : static_cast<int32_t>(*base);
  CAFE_GRID_LOOP(i, n) {
    ScatterDistinctBody(i, a, b, w.slot_of, w.first, w.flag, w.pos, offset, index, out_a, out_b);
  }
}

__global__ void QueryUniqueKernel(const int64_t* ids, const int64_t* count, int64_t num_buckets,
                                  int32_t c, int32_t tag_bits, float medium,
                                  const int64_t* slots, const float* scores, int32_t* out_rows,
                                  int32_t* out_levels, int64_t n) {
  CAFE_GRID_LOOP(u, n) {
    if (u >= *count) {  // unused entries read as "not hot, no row"
      out_rows[u] = -1;
      continue;
    }
    QueryBody(u, ids, num_buckets, c, tag_bits, medium, slots, scores, out_rows, out_levels);
  }
}

__global__ void RowsKernel(const int64_t* count, int64_t n, DeviceRouteTables tables,
                           uint64_t hashed_salt, uint64_t medium_salt, DeviceRouteOutput out,
                           int64_t* hot64) {
  CAFE_GRID_LOOP(u, n) {
    if (u >= *count) {
      hot64[u] = out.hashed_row[u] = out.medium_row[u] = -1;
      continue;
    }
    RowsBody(u, out.keys, out.feature_index, out.hot_row, out.level, tables.hashed_offsets,
             tables.hashed_sizes, tables.medium_offsets, tables.medium_sizes,
             tables.medium_sizes != nullptr, hashed_salt, medium_salt, out.hashed_row,
             out.medium_row, hot64);
  }
}

__global__ void FirstIndexKernel(const int64_t* count, const int32_t* hot_index,
                                 const int32_t* hashed_index, int32_t* first_index) {
  CAFE_GRID_LOOP(u, *count) { FirstIndexBody(u, hot_index, hashed_index, first_index); }
}

__global__ void FieldKeysKernel(const int64_t* ids, int64_t n, int64_t salt, int32_t feature,
                                int64_t* keys, int32_t* feature_index) {
  CAFE_GRID_LOOP(i, n) { FieldKeyBody(i, ids, salt, feature, keys, feature_index); }
}

__global__ void OccurrenceIndexKernel(int64_t n, const int32_t* inverse,
                                      const int32_t* first_index, int32_t* occurrence_index) {
  CAFE_GRID_LOOP(i, n) { OccurrenceIndexBody(i, inverse, first_index, occurrence_index); }
}

// One "distinct values" pass over a[0, n) (see the file comment).
template <typename T>
cudaError_t DistinctPass(const int64_t* a, const int32_t* b, int64_t n, const int64_t* limit,
                         bool non_negative, const int64_t* base, const Workspace& w,
                         int32_t* index, T* out_a, int32_t* out_b, int64_t* count,
                         cudaStream_t stream) {
  const int64_t slots = PairTableSlots(n);
  FillKernel<<<GridFor(slots), kThreads, 0, stream>>>(w.owner, w.first, slots);
  ClaimKernel<<<GridFor(n), kThreads, 0, stream>>>(a, b, n, limit, non_negative,
                                                   static_cast<uint64_t>(slots - 1), w);
  FlagKernel<<<GridFor(n), kThreads, 0, stream>>>(n, w);
  size_t scan_bytes = w.scan_bytes;
  CAFE_CUDA_RETURN_IF_ERROR(cub::DeviceScan::ExclusiveSum(w.scan, scan_bytes, w.flag, w.pos,
                                                          static_cast<int>(n), stream));
  CountKernel<<<1, 1, 0, stream>>>(n, w, count);
  ScatterKernel<T><<<GridFor(n), kThreads, 0, stream>>>(a, b, n, w, base, index, out_a, out_b);
  return cudaGetLastError();
}

}  // namespace

size_t RouteWorkspaceBytes(int64_t n, cudaError_t* error) {
  size_t scan_bytes = 0;
  const cudaError_t err = ScanBytes(std::max<int64_t>(n, 1), &scan_bytes);
  if (error != nullptr) *error = err;
  if (err != cudaSuccess) return 0;
  Workspace w;
  return Layout(std::max<int64_t>(n, 1), nullptr, &w, scan_bytes);
}

cudaError_t LaunchRoute(int64_t num_buckets, int32_t slots_per_bucket, int32_t tag_bits,
                        float medium_threshold, const int64_t* d_sketch_slots,
                        const float* d_sketch_scores, const DeviceRouteTables& tables,
                        const int64_t* d_ids, const int32_t* d_feature_index, int64_t n,
                        const DeviceRouteOutput& out, void* workspace, size_t workspace_bytes,
                        cudaStream_t stream) {
  if (n < 0 || n > INT_MAX / 2 || num_buckets <= 0 || slots_per_bucket <= 0 ||
      tables.num_features <= 0 || tag_bits < 0 || tag_bits > kMaxTagBits) {
    return cudaErrorInvalidValue;
  }
  // counts = {0, 0, 0, 0, n}: counts[4] drops to the first bad feature index, if any.
  const int64_t initial[5] = {0, 0, 0, 0, n};
  CAFE_CUDA_RETURN_IF_ERROR(
      cudaMemcpyAsync(out.counts, initial, sizeof(initial), cudaMemcpyHostToDevice, stream));
  if (n == 0) return cudaSuccess;
  size_t scan_bytes = 0;
  CAFE_CUDA_RETURN_IF_ERROR(ScanBytes(n, &scan_bytes));
  Workspace w;
  if (Layout(n, nullptr, &w, scan_bytes) > workspace_bytes) return cudaErrorInvalidValue;
  Layout(n, workspace, &w, scan_bytes);
  BadFeatureIndexKernel<<<GridFor(n), kThreads, 0, stream>>>(d_feature_index,
                                                             tables.num_features, n, out.counts);
  // 1. distinct (id, feature index) pairs, the inverse index.
  CAFE_CUDA_RETURN_IF_ERROR(DistinctPass<int64_t>(d_ids, d_feature_index, n, nullptr, false,
                                                  nullptr, w, out.inverse, out.keys,
                                                  out.feature_index, out.counts, stream));
  const int64_t* u_count = out.counts;
  // 2. the sketch query and the rows of each distinct pair.
  QueryUniqueKernel<<<GridFor(n), kThreads, 0, stream>>>(
      out.keys, u_count, num_buckets, slots_per_bucket, tag_bits, medium_threshold,
      d_sketch_slots, d_sketch_scores, out.hot_row, out.level, n);
  RowsKernel<<<GridFor(n), kThreads, 0, stream>>>(u_count, n, tables,
                                                  TableSalt(tables.hashed_seed),
                                                  TableSalt(tables.medium_seed), out, w.hot64);
  // 3. each table's distinct rows: hot, hashed (indices after the hot ones), medium.
  CAFE_CUDA_RETURN_IF_ERROR(DistinctPass<int32_t>(w.hot64, nullptr, n, u_count, true, nullptr, w,
                                                  out.first_index, out.read_hot, nullptr,
                                                  out.counts + 1, stream));
  CAFE_CUDA_RETURN_IF_ERROR(DistinctPass<int64_t>(out.hashed_row, nullptr, n, u_count, true,
                                                  out.counts + 1, w, w.index, out.read_hashed,
                                                  nullptr, out.counts + 2, stream));
  FirstIndexKernel<<<GridFor(n), kThreads, 0, stream>>>(u_count, out.first_index, w.index,
                                                        out.first_index);
  OccurrenceIndexKernel<<<GridFor(n), kThreads, 0, stream>>>(n, out.inverse, out.first_index,
                                                             out.occurrence_index);
  CAFE_CUDA_RETURN_IF_ERROR(DistinctPass<int64_t>(out.medium_row, nullptr, n, u_count, true,
                                                  nullptr, w, out.medium_index, out.read_medium,
                                                  nullptr, out.counts + 3, stream));
  return cudaGetLastError();
}

cudaError_t LaunchFieldKeys(const int64_t* d_ids, int64_t n, int32_t feature, int64_t* d_keys,
                            int32_t* d_feature_index, cudaStream_t stream) {
  if (n < 0 || feature < 0) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  FieldKeysKernel<<<GridFor(n), kThreads, 0, stream>>>(d_ids, n, FieldSalt(feature), feature,
                                                       d_keys, d_feature_index);
  return cudaGetLastError();
}

}  // namespace cuda
}  // namespace cafe
