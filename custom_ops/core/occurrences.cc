#include "occurrences.h"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace cafe {

std::string ValidateSegments(const int32_t* segments, int64_t n, int64_t num_segments) {
  for (int64_t i = 0; i < n; ++i) {
    if (segments[i] < 0 || segments[i] >= num_segments) {
      std::ostringstream err;
      err << "segment ids must be in [0, " << num_segments << "), got " << segments[i]
          << " at index " << i;
      return err.str();
    }
  }
  return "";
}

void SegmentRowSums(const float* rows, const int32_t* segments, int64_t n, int64_t d,
                    int64_t num_segments, float* out) {
  std::fill(out, out + num_segments * d, 0.0f);
  for (int64_t i = 0; i < n; ++i) {
    const float* row = rows + i * d;
    float* sum = out + static_cast<int64_t>(segments[i]) * d;
    for (int64_t j = 0; j < d; ++j) sum[j] += row[j];
  }
}

float RowNorm(const float* row, int64_t d) {
  float total = 0.0f;
  for (int64_t j = 0; j < d; ++j) {
    const float square = row[j] * row[j];
    total += square;
  }
  return std::sqrt(total);
}

void PairSums(const float* rows, const int32_t* pairs, int64_t n, int64_t d, bool norm,
              int64_t num_pairs, double* sums, double* occurrences) {
  std::fill(sums, sums + num_pairs, 0.0);
  std::fill(occurrences, occurrences + num_pairs, 0.0);
  for (int64_t i = 0; i < n; ++i) {
    const float value = norm ? RowNorm(rows + i * d, d) : std::fabs(rows[i]);
    sums[pairs[i]] += static_cast<double>(value);
    occurrences[pairs[i]] += 1.0;
  }
}

}  // namespace cafe
