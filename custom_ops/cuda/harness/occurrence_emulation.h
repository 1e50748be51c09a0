// The GPU pipeline of occurrence_kernels.cu run on the host: its per-thread
// bodies (../kernels/occurrence_device_common.h) in kernel order, with
// std::stable_sort standing in for CUB's radix sort. Used by
// occurrence_emulation_test.cc and by the emulated backend of emulation_test.cc.
#ifndef CAFE_TF_CUDA_HARNESS_OCCURRENCE_EMULATION_H_
#define CAFE_TF_CUDA_HARNESS_OCCURRENCE_EMULATION_H_

#include <cstdint>
#include <vector>

namespace cafe {
namespace harness {

// LaunchSegmentRowSums: *out [num_segments, d]; returns the status (n when valid).
int64_t EmulateSegmentRowSums(const std::vector<float>& rows, const std::vector<int32_t>& segments,
                              int64_t d, int64_t num_segments, std::vector<float>* out);

// LaunchPairImportance: *sums and *occurrences [num_pairs]; returns the status.
int64_t EmulatePairImportance(const std::vector<float>& rows, const std::vector<int32_t>& pairs,
                              int64_t d, bool norm, int64_t num_pairs, std::vector<double>* sums,
                              std::vector<double>* occurrences);

}  // namespace harness
}  // namespace cafe

#endif  // CAFE_TF_CUDA_HARNESS_OCCURRENCE_EMULATION_H_
