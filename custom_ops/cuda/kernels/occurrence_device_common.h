// Per-thread bodies of the occurrence kernels (occurrence_kernels.cu), shared
// verbatim with their CPU emulation (../harness/occurrence_emulation.cc).
// Semantics: cafe::SegmentRowSums and cafe::PairSums (../core/occurrences.h),
// bit for bit. The occurrences are first ordered by segment, stably (a radix
// sort of the segment ids carrying the occurrence indices: `order`), and each
// segment's range [begin[s], end[s]) in that order is marked; then one thread
// per output sums its range sequentially, from zero, in occurrence order:
// exactly the additions of the core's loop, with no float atomics.
#ifndef CAFE_TF_CUDA_OCCURRENCE_DEVICE_COMMON_H_
#define CAFE_TF_CUDA_OCCURRENCE_DEVICE_COMMON_H_

#include <cstdint>

#include "../../core/occurrences.h"   // FlushedAdd, OccurrenceValue
#include "hotsketch_device_common.h"  // CAFE_HD

namespace cafe {
namespace cuda {
namespace detail {

// Entry i's segment id is outside [0, num_segments): i, else n.
CAFE_HD int64_t BadSegmentBody(int64_t i, const int32_t* segments, int64_t num_segments,
                               int64_t n) {
  return segments[i] < 0 || segments[i] >= num_segments ? i : n;
}

// Position k of the sorted segment ids: where its segment's range begins
// and ends (segments no occurrence names keep begin = end = 0). Ids outside
// [0, num_segments) are skipped: the call is invalid then, and reported.
CAFE_HD void BoundsBody(int64_t k, const int32_t* sorted, int64_t n, int64_t num_segments,
                        int32_t* begin, int32_t* end) {
  const int32_t s = sorted[k];
  if (s < 0 || s >= num_segments) return;
  if (k == 0 || sorted[k - 1] != s) begin[s] = static_cast<int32_t>(k);
  if (k == n - 1 || sorted[k + 1] != s) end[s] = static_cast<int32_t>(k + 1);
}

// Additions wait on loads that do not wait on one another: each segment's
// values are loaded kAhead at a time, then added one by one in order (the
// same additions; only the loads are grouped, so that several are in flight).
constexpr int kAhead = 8;

// The sum, from zero and in order, of load(k) over k in [begin, end), added
// with `add` (a float or a double accumulator).
template <typename T, typename Load, typename Add>
CAFE_HD T SumInOrder(int32_t begin, int32_t end, const Load& load, const Add& add) {
  T sum = 0;
  int32_t k = begin;
  for (; static_cast<int64_t>(k) + kAhead <= end; k += kAhead) {
    decltype(load(k)) x[kAhead];
    for (int a = 0; a < kAhead; ++a) x[a] = load(k + a);
    for (int a = 0; a < kAhead; ++a) sum = add(sum, x[a]);
  }
  for (; k < end; ++k) sum = add(sum, load(k));
  return sum;
}

// Output t = s * d + j of SegmentRowSums: column j of segment s's rows.
CAFE_HD void SegmentColumnSumBody(int64_t t, const float* rows, int64_t d, const int32_t* order,
                                  const int32_t* begin, const int32_t* end, float* out) {
  const int64_t s = t / d;
  const int64_t j = t - s * d;
  out[t] = SumInOrder<float>(
      begin[s], end[s], [&](int32_t k) { return rows[static_cast<int64_t>(order[k]) * d + j]; },
      [](float sum, float x) { return FlushedAdd(sum, x); });
}

// Occurrence i's importance (the core's OccurrenceValue).
CAFE_HD void OccurrenceValueBody(int64_t i, const float* rows, int64_t d, bool norm,
                                 float* values) {
  values[i] = OccurrenceValue(rows + i * d, d, norm);
}

// Pair p of PairSums: the float64 sum of its occurrences' values, and their count.
CAFE_HD void PairSumBody(int64_t p, const float* values, const int32_t* order,
                         const int32_t* begin, const int32_t* end, double* sums,
                         double* occurrences) {
  sums[p] = SumInOrder<double>(
      begin[p], end[p], [&](int32_t k) { return values[order[k]]; },
      [](double sum, float x) { return sum + static_cast<double>(x); });
  occurrences[p] = static_cast<double>(end[p] - begin[p]);
}

}  // namespace detail
}  // namespace cuda
}  // namespace cafe

#endif  // CAFE_TF_CUDA_OCCURRENCE_DEVICE_COMMON_H_
