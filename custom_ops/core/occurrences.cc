#include "occurrences.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#if defined(__SSE2__)
#include <emmintrin.h>
#include <xmmintrin.h>
#endif

namespace cafe {

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
//
// Row sums go run by run: a run of consecutive occurrences of one segment (one
// row's occurrences of a feature often follow one another) is added up in
// registers, from the sum loaded at its start, and stored at its end. These are
// the plain loop's additions in its order, so the bits are the same; what goes is
// the store-to-load dependency from each occurrence to the next, which made a run
// cost a store-forwarding round trip per occurrence.

#if defined(__SSE2__)
// Lanes of x nonzero and below `floor` in magnitude (Below, four at a time).
inline __m128 BelowLanes(__m128 x, __m128 floor) {
  const __m128 magnitude = _mm_and_ps(x, _mm_castsi128_ps(_mm_set1_epi32(0x7fffffff)));
  return _mm_and_ps(_mm_cmplt_ps(magnitude, floor), _mm_cmpgt_ps(magnitude, _mm_setzero_ps()));
}

// Columns [j0, j0 + 4 V) of out[segments[i]] += rows[i], run by run (above); a
// mask of the values below `floor` is ORed into *below.
template <int V>
void AddColumnRuns(const float* rows, const int32_t* segments, int64_t n, int64_t d, int64_t j0,
                   float* out, __m128 floor, __m128* below) {
  if (n == 0) return;
  __m128 sum[V];
  __m128 small = _mm_setzero_ps();  // a local: *below may alias the sums (__m128 may alias)
  int32_t segment = segments[0];
  float* target = out + static_cast<int64_t>(segment) * d + j0;
  for (int v = 0; v < V; ++v) sum[v] = _mm_loadu_ps(target + 4 * v);
  for (int64_t i = 0; i < n; ++i) {
    if (segments[i] != segment) {
      for (int v = 0; v < V; ++v) _mm_storeu_ps(target + 4 * v, sum[v]);
      segment = segments[i];
      target = out + static_cast<int64_t>(segment) * d + j0;
      for (int v = 0; v < V; ++v) sum[v] = _mm_loadu_ps(target + 4 * v);
    }
    const float* row = rows + i * d + j0;
    for (int v = 0; v < V; ++v) {
      const __m128 x = _mm_loadu_ps(row + 4 * v);
      sum[v] = _mm_add_ps(sum[v], x);
      small = _mm_or_ps(small, BelowLanes(x, floor));
    }
  }
  for (int v = 0; v < V; ++v) _mm_storeu_ps(target + 4 * v, sum[v]);
  *below = _mm_or_ps(*below, small);
}
#endif

// out += each row, plain and run by run; false if a value is below kSumFloor.
bool PlainSegmentRowSums(const float* __restrict rows, const int32_t* segments, int64_t n,
                         int64_t d, float* __restrict out) {
#if defined(__SSE2__)
  if (d % 4 == 0) {  // blocks of up to 16 columns, each summed in 4 registers
    const __m128 floor = _mm_set1_ps(kSumFloor);
    __m128 below = _mm_setzero_ps();
    for (int64_t j0 = 0; j0 < d; j0 += 16) {
      switch (std::min<int64_t>(4, (d - j0) / 4)) {
        case 1: AddColumnRuns<1>(rows, segments, n, d, j0, out, floor, &below); break;
        case 2: AddColumnRuns<2>(rows, segments, n, d, j0, out, floor, &below); break;
        case 3: AddColumnRuns<3>(rows, segments, n, d, j0, out, floor, &below); break;
        default: AddColumnRuns<4>(rows, segments, n, d, j0, out, floor, &below); break;
      }
    }
    return _mm_movemask_ps(below) == 0;
  }
#endif
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

// add(i, PlainRowNorm of row i) for every row in order; false if a value is below
// kNormFloor. With SSE2, four rows at a time, one per lane: each lane sums its
// row's squares in column order, as PlainRowNorm does.
template <typename Add>
bool PlainRowNorms(const float* rows, int64_t n, int64_t d, Add add) {
  int64_t i = 0;
  int below = 0;
#if defined(__SSE2__)
  const __m128 floor = _mm_set1_ps(kNormFloor);
  __m128 below_lanes = _mm_setzero_ps();
  alignas(16) float norms[4];
  const int64_t chunked = d - d % 4;
  for (; i + 4 <= n; i += 4) {
    const float* r0 = rows + i * d;
    const float* r1 = r0 + d;
    const float* r2 = r1 + d;
    const float* r3 = r2 + d;
    __m128 total = _mm_setzero_ps();
    auto add_column = [&](__m128 x) {
      total = _mm_add_ps(total, _mm_mul_ps(x, x));
      below_lanes = _mm_or_ps(below_lanes, BelowLanes(x, floor));
    };
    int64_t j = 0;
    for (; j < chunked; j += 4) {
      __m128 c0 = _mm_loadu_ps(r0 + j), c1 = _mm_loadu_ps(r1 + j);
      __m128 c2 = _mm_loadu_ps(r2 + j), c3 = _mm_loadu_ps(r3 + j);
      _MM_TRANSPOSE4_PS(c0, c1, c2, c3);  // rows to columns
      add_column(c0);
      add_column(c1);
      add_column(c2);
      add_column(c3);
    }
    for (; j < d; ++j) add_column(_mm_set_ps(r3[j], r2[j], r1[j], r0[j]));
    _mm_store_ps(norms, _mm_sqrt_ps(total));
    for (int k = 0; k < 4; ++k) add(i + k, norms[k]);
  }
  below = _mm_movemask_ps(below_lanes);
#endif
  for (; i < n; ++i) {
    const float* row = rows + i * d;
    for (int64_t j = 0; j < d; ++j) below |= Below(row[j], kNormFloor);
    add(i, PlainRowNorm(row, d));
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

void ClearPairSums(int64_t num_pairs, double* sums, double* occurrences) {
  std::fill(sums, sums + num_pairs, 0.0);
  std::fill(occurrences, occurrences + num_pairs, 0.0);
}

// PairSums without flushes; false (the sums are meaningless) if a value was below
// its floor. Pairs change from one occurrence to the next too irregularly for runs.
bool PlainPairSums(const float* rows, const int32_t* pairs, int64_t n, int64_t d, bool norm,
                   int64_t num_pairs, double* sums, double* occurrences) {
  ClearPairSums(num_pairs, sums, occurrences);
  const auto add = [&](int64_t i, float value) {
    sums[pairs[i]] += static_cast<double>(value);
    occurrences[pairs[i]] += 1.0;
  };
  return norm ? PlainRowNorms(rows, n, d, add) : PlainAbsoluteValues(rows, n, d, add);
}

// The sums with a flush per operation, from zero: for rows that failed the plain pass.
void FlushedSegmentRowSums(const float* rows, const int32_t* segments, int64_t n, int64_t d,
                           int64_t num_segments, float* out) {
  std::fill(out, out + num_segments * d, 0.0f);
  for (int64_t i = 0; i < n; ++i) {
    const float* row = rows + i * d;
    float* sum = out + static_cast<int64_t>(segments[i]) * d;
    for (int64_t j = 0; j < d; ++j) sum[j] = FlushedAdd(sum[j], row[j]);
  }
}

void FlushedPairSums(const float* rows, const int32_t* pairs, int64_t n, int64_t d, bool norm,
                     int64_t num_pairs, double* sums, double* occurrences) {
  ClearPairSums(num_pairs, sums, occurrences);
  for (int64_t i = 0; i < n; ++i) {
    sums[pairs[i]] += static_cast<double>(OccurrenceValue(rows + i * d, d, norm));
    occurrences[pairs[i]] += 1.0;
  }
}

// ExpandGradient runs its two passes on one thread below this many occurrences, where
// handing a task to another thread costs about what it saves.
constexpr int64_t kTwoTaskRows = 16384;

}  // namespace

void SegmentRowSums(const float* rows, const int32_t* segments, int64_t n, int64_t d,
                    int64_t num_segments, float* out) {
  std::fill(out, out + num_segments * d, 0.0f);
  if (!PlainSegmentRowSums(rows, segments, n, d, out)) {
    FlushedSegmentRowSums(rows, segments, n, d, num_segments, out);
  }
}

void PairSums(const float* rows, const int32_t* pairs, int64_t n, int64_t d, bool norm,
              int64_t num_pairs, double* sums, double* occurrences) {
  if (!PlainPairSums(rows, pairs, n, d, norm, num_pairs, sums, occurrences)) {
    FlushedPairSums(rows, pairs, n, d, norm, num_pairs, sums, occurrences);
  }
}

void ExpandGradient(const float* rows, const int32_t* segments, const int32_t* pairs, int64_t n,
                    int64_t d, int64_t num_segments, int64_t num_pairs, float* out, double* sums,
                    double* occurrences, const ParallelFor& parallel_for) {
  // The row sums and the pair sums write apart: two tasks, each SegmentRowSums or
  // PairSums (norms) as above.
  (n < kTwoTaskRows ? ParallelFor(SerialFor) : parallel_for)(2, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      if (task == 0) {
        SegmentRowSums(rows, segments, n, d, num_segments, out);
      } else {
        PairSums(rows, pairs, n, d, /*norm=*/true, num_pairs, sums, occurrences);
      }
    }
  });
}

}  // namespace cafe
