#include "occurrences.h"

#include <algorithm>
#include <cmath>
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

namespace {

// True when every value is 0, NaN, infinite or at least `floor` in magnitude. Floats of
// magnitude >= 2^-102 are multiples of 2^-125, and so are their sums: none of those
// operands or results is subnormal, so plain float arithmetic gives the flushed
// result without a flush per operation (which costs about ten times the sums).
bool NothingBelow(const float* values, int64_t count, float floor) {
  int below = 0;
  for (int64_t i = 0; i < count; ++i) {
    const float magnitude = std::fabs(values[i]);
    below |= (magnitude < floor) & (magnitude > 0.0f);
  }
  return below == 0;
}

constexpr float kSumFloor = 0x1p-102f;   // sums of such values stay normal
constexpr float kNormFloor = 0x1p-50f;   // their squares >= 2^-100, and sums of squares
constexpr float kValueFloor = 0x1p-126f;  // the smallest normal float

}  // namespace

void SegmentRowSums(const float* rows, const int32_t* segments, int64_t n, int64_t d,
                    int64_t num_segments, float* out) {
  std::fill(out, out + num_segments * d, 0.0f);
  if (NothingBelow(rows, n * d, kSumFloor)) {
    for (int64_t i = 0; i < n; ++i) {
      const float* row = rows + i * d;
      float* sum = out + static_cast<int64_t>(segments[i]) * d;
      for (int64_t j = 0; j < d; ++j) sum[j] += row[j];
    }
    return;
  }
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
  const bool plain = NothingBelow(rows, n * d, norm ? kNormFloor : kValueFloor);
  auto add = [&](auto value_of) {
    for (int64_t i = 0; i < n; ++i) {
      sums[pairs[i]] += static_cast<double>(value_of(rows + i * d));
      occurrences[pairs[i]] += 1.0;
    }
  };
  if (!plain) {
    add([&](const float* row) { return OccurrenceValue(row, d, norm); });
  } else if (norm) {
    add([&](const float* row) { return PlainRowNorm(row, d); });
  } else {
    add([](const float* row) { return std::fabs(row[0]); });
  }
}

}  // namespace cafe
