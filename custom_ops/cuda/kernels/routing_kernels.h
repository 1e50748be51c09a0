// CUDA launchers of the CafeRoute and CafeFieldKeys ops: plain C++ API over
// device pointers and a cudaStream_t, no TensorFlow (as hotsketch_kernels.h).
// Semantics: exactly cafe::Route and cafe::FieldKeys of ../core/routing.h, bit
// for bit (integer work only).
#ifndef CAFE_TF_CUDA_ROUTING_KERNELS_H_
#define CAFE_TF_CUDA_ROUTING_KERNELS_H_

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace cafe {
namespace cuda {

// Per feature (device arrays of num_features entries): first row and rows of
// its table in the packed tables; medium_* are null without multi-level hashing.
struct DeviceRouteTables {
  const int64_t* hashed_offsets;
  const int64_t* hashed_sizes;
  const int64_t* medium_offsets;
  const int64_t* medium_sizes;
  int32_t num_features;
  int64_t hashed_seed;
  int64_t medium_seed;
};

// Outputs (device), each with room for n entries (the number of distinct pairs
// U, and of rows read per table, is at most n). Only their first counts[k]
// entries are written: counts = {U, hot rows read, hashed rows read, medium
// rows read}; counts[4] = n when every feature index is in [0, num_features), else
// the first bad index (then nothing else is meaningful). Names as in
// cafe::RouteResult; `inverse` and `occurrence_index` have n entries.
struct DeviceRouteOutput {
  int64_t* keys;
  int32_t* feature_index;
  int32_t* inverse;
  int32_t* hot_row;
  int32_t* level;
  int64_t* hashed_row;
  int64_t* medium_row;
  int32_t* read_hot;
  int64_t* read_hashed;
  int64_t* read_medium;
  int32_t* first_index;
  int32_t* medium_index;
  int32_t* occurrence_index;
  int64_t* counts;  // [5]
};

// Bytes of workspace LaunchRoute needs for n ids (0 on error, *error set when given).
size_t RouteWorkspaceBytes(int64_t n, cudaError_t* error = nullptr);

// cafe::Route over the sketch's read-only slots/scores ([W*c] each),
// asynchronous on `stream`. n must be <= INT32_MAX / 2 (cudaErrorInvalidValue
// otherwise). Read `out.counts` after the stream reached this point.
cudaError_t LaunchRoute(int64_t num_buckets, int32_t slots_per_bucket, int32_t tag_bits,
                        float medium_threshold, const int64_t* d_sketch_slots,
                        const float* d_sketch_scores, const DeviceRouteTables& tables,
                        const int64_t* d_ids, const int32_t* d_feature_index, int64_t n,
                        const DeviceRouteOutput& out, void* workspace, size_t workspace_bytes,
                        cudaStream_t stream);

// cafe::FieldKeys of feature `feature`'s d_ids[n] into d_keys[n] and
// d_feature_index[n] (device), asynchronous on `stream`: CafeFieldKeys launches it
// once per feature, each at its offset in the call's keys.
cudaError_t LaunchFieldKeys(const int64_t* d_ids, int64_t n, int32_t feature, int64_t* d_keys,
                            int32_t* d_feature_index, cudaStream_t stream);

}  // namespace cuda
}  // namespace cafe

#endif  // CAFE_TF_CUDA_ROUTING_KERNELS_H_
