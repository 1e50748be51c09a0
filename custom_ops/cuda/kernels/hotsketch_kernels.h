// CUDA launchers for the HotSketch ops: plain C++ API over device pointers and
// a cudaStream_t. No TensorFlow here, and no TensorFlow in the .cu file that
// implements it: TF's GPU kernels (../../tf/gpu_kernels.cc) and the standalone
// harness (harness.cu) both call these functions.
//
// Semantics: exactly cafe::Insert / cafe::Query / cafe::Migrate of
// ../core/hotsketch.h, bit for bit (same float operations in the same order).
// The state is a cafe::SketchState of device pointers. All launchers are
// asynchronous on `stream` (nothing synchronises, nothing allocates); the
// caller provides every buffer, including a workspace whose size it gets
// from the matching *WorkspaceBytes function (which needs no device buffers,
// but may query the current device, like every CUB size query).
//
// Limits: n (batch length) and W*c (slots) must be <= INT32_MAX; the
// launchers return cudaErrorInvalidValue otherwise.
#ifndef CAFE_TF_CUDA_HOTSKETCH_KERNELS_H_
#define CAFE_TF_CUDA_HOTSKETCH_KERNELS_H_

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "../../core/hotsketch.h"  // SketchConfig, SketchState

namespace cafe {
namespace cuda {

// ---------------------------------------------------------------- Insert ---

// Bytes of workspace LaunchInsert needs for a batch of n and W buckets.
// Returns 0 on error (and sets *error when given).
size_t InsertWorkspaceBytes(int64_t n, int64_t num_buckets, cudaError_t* error = nullptr);

// cafe::Insert(config{W, c, tag_bits, second_sighting, erode}, state, keys, importance,
// feature_index, n, ...) plus the validation of cafe::ValidateInsert, all on the device:
//   *d_status (device int64) = -1 when the batch is valid, else the first
//   index i whose importance is NaN/inf/negative or whose feature index is outside
//   [0, 2^tag_bits); in
//   that case the state is left unchanged (every state-writing kernel checks
//   it), exactly as the CPU op rejects the batch before any change.
// Read *d_status after the stream reached this point to report the error.
// n == 0 writes -1 and changes nothing (batches is not incremented).
// `workspace` may have any alignment (the size includes the slack to align
// it); it is scratch only and may be reused once the stream passed this call.
cudaError_t LaunchInsert(int64_t num_buckets, int32_t slots_per_bucket, int32_t tag_bits,
                         const SketchState& state, const int64_t* d_keys,
                         const float* d_importance, const int32_t* d_feature_index, int64_t n,
                         bool second_sighting, bool erode, int64_t* d_status,
                         void* workspace, size_t workspace_bytes, cudaStream_t stream);

// ----------------------------------------------------------------- Query ---

// cafe::Query: d_out_rows[i] = hot row or -1, d_out_levels[i] = 0 cold,
// 1 medium, 2 hot. Read-only on the state. No workspace.
cudaError_t LaunchQuery(int64_t num_buckets, int32_t slots_per_bucket, int32_t tag_bits,
                        float medium_threshold, const int64_t* d_state_slots,
                        const float* d_state_scores, const int64_t* d_ids, int64_t n,
                        int32_t* d_out_rows, int32_t* d_out_levels, cudaStream_t stream);

// --------------------------------------------------------------- Migrate ---

// Where LaunchMigrate writes its results (device memory).
struct MigrateOutputs {
  // counts[0] = decayed (0/1), counts[1] = #demoted, counts[2] = #promoted,
  // counts[3] = #promotion candidates (informational).
  int32_t* counts;  // [4]
  // Demoted entries (fingerprint, tag, row): the decay's in slot order, then
  // the displaced ones; capacity MigrateDemotedCapacity().
  int64_t* demoted_fingerprints;
  int32_t* demoted_tags;
  int32_t* demoted_rows;
  // Promoted entries (score desc, fingerprint asc, slot asc; rows ascending);
  // capacity MigratePromotedCapacity().
  int64_t* promoted_fingerprints;
  int32_t* promoted_tags;
  int32_t* promoted_rows;
};

inline int64_t MigrateDemotedCapacity(const SketchConfig& c) { return c.num_slots(); }
inline int64_t MigratePromotedCapacity(const SketchConfig& c) {
  const int64_t slots = c.num_slots();
  return slots < c.hot_rows ? slots : c.hot_rows;
}

// Bytes of workspace LaunchMigrate needs. Returns 0 on error.
size_t MigrateWorkspaceBytes(const SketchConfig& config, cudaError_t* error = nullptr);

// cafe::Migrate(config, state, force_decay): decay when due (or forced) with
// demotion, then promotion. The config must be valid (cafe::SketchConfig::
// Validate): the caller checks it on the host.
cudaError_t LaunchMigrate(const SketchConfig& config, const SketchState& state,
                          bool force_decay, const MigrateOutputs& out, void* workspace,
                          size_t workspace_bytes, cudaStream_t stream);

// ------------------------------------------------------ small utilities ---
// These use the CUDA runtime the launchers were built with, so a caller (the
// TF kernels) needs no CUDA runtime calls of its own.

// cudaMemcpyAsync device->device on `stream`.
cudaError_t CopyDeviceToDeviceAsync(void* dst, const void* src, size_t bytes,
                                    cudaStream_t stream);
// cudaMemcpyAsync host->device on `stream`; `src` may be reused once it returns
// (pageable host memory is staged before the call returns).
cudaError_t CopyHostToDeviceAsync(void* dst, const void* src, size_t bytes,
                                  cudaStream_t stream);
// cudaMemcpyAsync device->host on `stream`, then waits for the stream.
cudaError_t CopyDeviceToHostSync(void* dst, const void* src, size_t bytes, cudaStream_t stream);
// cudaGetErrorString.
const char* ErrorString(cudaError_t error);

}  // namespace cuda
}  // namespace cafe

#endif  // CAFE_TF_CUDA_HOTSKETCH_KERNELS_H_
