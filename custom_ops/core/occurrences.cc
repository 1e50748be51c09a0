#include "occurrences.h"

#include <algorithm>
#include <sstream>

namespace cafe {

int64_t FirstInvalidSegment(const int32_t* segments, int64_t n, int64_t num_segments) {
  for (int64_t i = 0; i < n; ++i) {
    if (segments[i] < 0 || segments[i] >= num_segments) return i;
  }
  return n;
}

std::string InvalidSegment(int32_t value, int64_t index, int64_t num_segments) {
  std::ostringstream err;
  err << "segment ids must be in [0, " << num_segments << "), got " << value << " at index "
      << index;
  return err.str();
}

void SegmentRowSums(const float* rows, const int32_t* segments, int64_t n, int64_t d,
                    int64_t num_segments, float* out) {
  std::fill(out, out + num_segments * d, 0.0f);
  for (int64_t i = 0; i < n; ++i) {
    const float* row = rows + i * d;
    float* sum = out + static_cast<int64_t>(segments[i]) * d;
    for (int64_t j = 0; j < d; ++j) sum[j] = FlushedAdd(sum[j], row[j]);
  }
}

void PairSums(const float* rows, const int32_t* pairs, int64_t n, int64_t d, bool norm,
              int64_t num_pairs, double* sums, double* occurrences) {
  std::fill(sums, sums + num_pairs, 0.0);
  std::fill(occurrences, occurrences + num_pairs, 0.0);
  for (int64_t i = 0; i < n; ++i) {
    sums[pairs[i]] += static_cast<double>(OccurrenceValue(rows + i * d, d, norm));
    occurrences[pairs[i]] += 1.0;
  }
}

}  // namespace cafe
