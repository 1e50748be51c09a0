#include "occurrences.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#if defined(__SSE2__)
#include <emmintrin.h>
#include <xmmintrin.h>
#endif

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

// Magnitudes at or above which plain float arithmetic gives the flushed result
// without a flush per operation (which costs 20 to 40 times the sums): floats
// of magnitude >= 2^-102 are multiples of 2^-125, and so are their sums, so none
// of those operands or results is subnormal.
constexpr float kSumFloor = 0x1p-102f;   // sums of such values stay normal
constexpr float kNormFloor = 0x1p-50f;   // their squares >= 2^-100, and sums of squares
constexpr float kValueFloor = 0x1p-126f;  // the smallest normal float

// 1 when x is nonzero and below `floor` in magnitude (NaN and infinities are not).
inline int Below(float x, float floor) {
  const float magnitude = std::fabs(x);
  return (magnitude < floor) & (magnitude > 0.0f);
}

// The plain passes below check their operands as they go (one read of the rows,
// which bounds their speed) and return false when one was below the floor; the
// caller then starts again with a flush per operation.

// out += each row, plain; false if a value is below kSumFloor.
bool PlainSegmentRowSums(const float* __restrict rows, const int32_t* segments, int64_t n,
                         int64_t d, float* __restrict out) {
  int below = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float* __restrict row = rows + i * d;
    float* __restrict sum = out + static_cast<int64_t>(segments[i]) * d;
    for (int64_t j = 0; j < d; ++j) {
      sum[j] += row[j];
      below |= Below(row[j], kSumFloor);
    }
  }
  return below == 0;
}

// RowNorm without the flushes: the same bits where no square or partial sum is
// subnormal.
inline float PlainRowNorm(const float* row, int64_t d) {
  float total = 0.0f;
  for (int64_t j = 0; j < d; ++j) total += row[j] * row[j];
  return std::sqrt(total);
}

// add(i, PlainRowNorm of row i, j0) for every row in order; false if a value is
// below kNormFloor. With SSE2, four rows at a time, one per lane: each lane sums its
// row's squares in column order, as PlainRowNorm does; those rows' columns [0, j0)
// went to chunk(row, j, four values from column j) first, as they were loaded (j0 is
// 0 for rows done one at a time). Per row and column, chunk and add see the rows in
// order.
template <typename Add, typename Chunk>
bool PlainRowNorms(const float* rows, int64_t n, int64_t d, Add add, Chunk chunk) {
  int64_t i = 0;
  int below = 0;
#if defined(__SSE2__)
  const __m128 floor = _mm_set1_ps(kNormFloor);
  const __m128 zero = _mm_setzero_ps();
  const __m128 magnitude_bits = _mm_castsi128_ps(_mm_set1_epi32(0x7fffffff));
  __m128 below_lanes = zero;
  alignas(16) float norms[4];
  const int64_t chunked = d - d % 4;
  for (; i + 4 <= n; i += 4) {
    const float* r0 = rows + i * d;
    const float* r1 = r0 + d;
    const float* r2 = r1 + d;
    const float* r3 = r2 + d;
    __m128 total = zero;
    auto add_column = [&](__m128 x) {
      total = _mm_add_ps(total, _mm_mul_ps(x, x));
      const __m128 magnitude = _mm_and_ps(x, magnitude_bits);
      below_lanes = _mm_or_ps(
          below_lanes, _mm_and_ps(_mm_cmplt_ps(magnitude, floor), _mm_cmpgt_ps(magnitude, zero)));
    };
    int64_t j = 0;
    for (; j < chunked; j += 4) {
      __m128 c0 = _mm_loadu_ps(r0 + j), c1 = _mm_loadu_ps(r1 + j);
      __m128 c2 = _mm_loadu_ps(r2 + j), c3 = _mm_loadu_ps(r3 + j);
      chunk(i, j, c0);
      chunk(i + 1, j, c1);
      chunk(i + 2, j, c2);
      chunk(i + 3, j, c3);
      _MM_TRANSPOSE4_PS(c0, c1, c2, c3);  // rows to columns
      add_column(c0);
      add_column(c1);
      add_column(c2);
      add_column(c3);
    }
    for (; j < d; ++j) add_column(_mm_set_ps(r3[j], r2[j], r1[j], r0[j]));
    _mm_store_ps(norms, _mm_sqrt_ps(total));
    for (int k = 0; k < 4; ++k) add(i + k, norms[k], chunked);
  }
  below = _mm_movemask_ps(below_lanes);
#else
  (void)chunk;
#endif
  for (; i < n; ++i) {
    const float* row = rows + i * d;
    for (int64_t j = 0; j < d; ++j) below |= Below(row[j], kNormFloor);
    add(i, PlainRowNorm(row, d), int64_t{0});
  }
  return below == 0;
}

// add(i, |first value of row i|) for every row in order; false if one is below
// kValueFloor.
template <typename Add>
bool PlainAbsoluteValues(const float* rows, int64_t n, int64_t d, Add add) {
  int below = 0;
  for (int64_t i = 0; i < n; ++i) {
    below |= Below(rows[i * d], kValueFloor);
    add(i, std::fabs(rows[i * d]));
  }
  return below == 0;
}

}  // namespace

void SegmentRowSums(const float* rows, const int32_t* segments, int64_t n, int64_t d,
                    int64_t num_segments, float* out) {
  std::fill(out, out + num_segments * d, 0.0f);
  if (PlainSegmentRowSums(rows, segments, n, d, out)) return;
  std::fill(out, out + num_segments * d, 0.0f);
  for (int64_t i = 0; i < n; ++i) {
    const float* row = rows + i * d;
    float* sum = out + static_cast<int64_t>(segments[i]) * d;
    for (int64_t j = 0; j < d; ++j) sum[j] = FlushedAdd(sum[j], row[j]);
  }
}

void PairSums(const float* rows, const int32_t* pairs, int64_t n, int64_t d, bool norm,
              int64_t num_pairs, double* sums, double* occurrences) {
  auto clear = [&] {
    std::fill(sums, sums + num_pairs, 0.0);
    std::fill(occurrences, occurrences + num_pairs, 0.0);
  };
  auto add = [&](int64_t i, float value) {
    sums[pairs[i]] += static_cast<double>(value);
    occurrences[pairs[i]] += 1.0;
  };
  clear();
  const auto add_norm = [&](int64_t i, float value, int64_t) { add(i, value); };
  const auto no_chunk = [](int64_t, int64_t, auto) {};
  if (norm ? PlainRowNorms(rows, n, d, add_norm, no_chunk) : PlainAbsoluteValues(rows, n, d, add))
    return;
  clear();
  for (int64_t i = 0; i < n; ++i) add(i, OccurrenceValue(rows + i * d, d, norm));
}

void ExpandGradient(const float* rows, const int32_t* segments, const int32_t* pairs, int64_t n,
                    int64_t d, int64_t num_segments, int64_t num_pairs, float* out, double* sums,
                    double* occurrences) {
  std::fill(out, out + num_segments * d, 0.0f);
  std::fill(sums, sums + num_pairs, 0.0);
  std::fill(occurrences, occurrences + num_pairs, 0.0);
  // Each row is added to its segment as it is loaded for its norm. No value below
  // kNormFloor means none below kSumFloor: the plain sums are exact too.
  auto segment_sum = [&](int64_t i) { return out + static_cast<int64_t>(segments[i]) * d; };
#if defined(__SSE2__)
  auto add_chunk = [&](int64_t i, int64_t j, __m128 values) {
    float* sum = segment_sum(i) + j;
    _mm_storeu_ps(sum, _mm_add_ps(_mm_loadu_ps(sum), values));
  };
#else
  auto add_chunk = [](int64_t, int64_t, auto) {};
#endif
  auto add_row = [&](int64_t i, float norm, int64_t first_column) {
    sums[pairs[i]] += static_cast<double>(norm);
    occurrences[pairs[i]] += 1.0;
    const float* row = rows + i * d;
    float* sum = segment_sum(i);
    for (int64_t j = first_column; j < d; ++j) sum[j] += row[j];
  };
  const bool plain = PlainRowNorms(rows, n, d, add_row, add_chunk);
  if (plain) return;
  SegmentRowSums(rows, segments, n, d, num_segments, out);
  PairSums(rows, pairs, n, d, /*norm=*/true, num_pairs, sums, occurrences);
}

}  // namespace cafe
