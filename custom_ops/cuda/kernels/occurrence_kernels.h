// CUDA launchers of CafeSegmentRowSums and CafePairImportance: plain C++ API
// over device pointers and a cudaStream_t, no TensorFlow (as
// hotsketch_kernels.h). Semantics: exactly cafe::SegmentRowSums and
// cafe::PairSums of ../core/occurrences.h, bit for bit.
//
// Both validate the segment ids on the device: *d_status (device int64) is n
// when every id is in [0, num_segments), else the first index that is not
// (then the outputs are meaningless). Read it after the stream reached the
// call. Limits: n <= INT32_MAX (cudaErrorInvalidValue otherwise).
#ifndef CAFE_TF_CUDA_OCCURRENCE_KERNELS_H_
#define CAFE_TF_CUDA_OCCURRENCE_KERNELS_H_

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace cafe {
namespace cuda {

// Bytes of workspace either launcher needs for n occurrences and num_segments
// outputs (0 on error, *error set when given).
size_t OccurrenceWorkspaceBytes(int64_t n, int64_t num_segments, cudaError_t* error = nullptr);

// cafe::SegmentRowSums: d_out [num_segments, d] from d_rows [n, d].
cudaError_t LaunchSegmentRowSums(const float* d_rows, const int32_t* d_segments, int64_t n,
                                 int64_t d, int64_t num_segments, float* d_out,
                                 int64_t* d_status, void* workspace, size_t workspace_bytes,
                                 cudaStream_t stream);

// cafe::PairSums: d_sums and d_occurrences [num_pairs] from d_rows [n, d].
cudaError_t LaunchPairImportance(const float* d_rows, const int32_t* d_pairs, int64_t n,
                                 int64_t d, bool norm, int64_t num_pairs, double* d_sums,
                                 double* d_occurrences, int64_t* d_status, void* workspace,
                                 size_t workspace_bytes, cudaStream_t stream);

}  // namespace cuda
}  // namespace cafe

#endif  // CAFE_TF_CUDA_OCCURRENCE_KERNELS_H_
