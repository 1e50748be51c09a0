// Per-occurrence reductions of a CAFE lookup's backward pass: the gradient of
// the expand from distinct rows to occurrences, and each distinct pair's
// importance. Plain C++17, no TensorFlow; the pure-TF definitions are
// cafe_tf/layers/occurrences.py, which this matches bit for bit. Every sum runs
// in occurrence order per output (as TensorFlow's CPU UnsortedSegmentSum
// does), so results do not depend on threads. The CUDA kernels
// (custom_ops/cuda/kernels/occurrence_kernels.h) match it bit for bit.
#ifndef CAFE_TF_CORE_OCCURRENCES_H_
#define CAFE_TF_CORE_OCCURRENCES_H_

#include <cmath>
#include <cstdint>
#include <string>

#include "host_device.h"  // RowNorm, OccurrenceValue: also CUDA device code
#include "parallel_for.h"

namespace cafe {

// The error for segment id `value` at `index`, outside [0, num_segments).
std::string InvalidSegment(int32_t value, int64_t index, int64_t num_segments);

// out[s] = the sum (FlushedAdd) of rows[i] over the i with segments[i] == s,
// in order of i, from 0 (rows: n x d, out: num_segments x d; rows no
// occurrence names are 0).
void SegmentRowSums(const float* rows, const int32_t* segments, int64_t n, int64_t d,
                    int64_t num_segments, float* out);

// v, a subnormal replaced by a zero of its sign: what TF's CPU kernels, which
// run with flush-to-zero and denormals-are-zero, make of an operand or a
// result. Done explicitly so that the core outside TF and the CUDA kernels
// (built without -ftz) give the CPU op's bits.
inline CAFE_HOST_DEVICE float FlushToZero(float v) {
  return v > -1.17549435e-38f && v < 1.17549435e-38f ? v * 0.0f : v;
}

// sum + x under flush-to-zero and denormals-are-zero (`sum` is already flushed).
inline CAFE_HOST_DEVICE float FlushedAdd(float sum, float x) {
  return FlushToZero(sum + FlushToZero(x));
}

// The Euclidean norm of a row of d floats: the float32 sum of the squares in
// column order, then its square root (flushed as in TF).
inline CAFE_HOST_DEVICE float RowNorm(const float* row, int64_t d) {
  float total = 0.0f;
  for (int64_t j = 0; j < d; ++j) {
    const float x = FlushToZero(row[j]);
    total = FlushedAdd(total, x * x);
  }
  return std::sqrt(total);
}

// An occurrence's importance: RowNorm of its row with `norm`, else the
// absolute value of its one column (flushed as in TF).
inline CAFE_HOST_DEVICE float OccurrenceValue(const float* row, int64_t d, bool norm) {
  return norm ? RowNorm(row, d) : FlushToZero(std::fabs(row[0]));
}

// Per pair p < num_pairs: sums[p] = the float64 sum, in order of i, of the
// OccurrenceValue of the occurrences i with pairs[i] == p (rows: n x d; d is 1
// without `norm`), and occurrences[p] their count.
void PairSums(const float* rows, const int32_t* pairs, int64_t n, int64_t d, bool norm,
              int64_t num_pairs, double* sums, double* occurrences);

// The gradient of the expand with gradient-norm importance:
// SegmentRowSums(rows, segments, n, d, num_segments, out) and
// PairSums(rows, pairs, n, d, /*norm=*/true, num_pairs, sums, occurrences), the
// same bits, as two tasks of `parallel_for` (each pass reads the rows once).
void ExpandGradient(const float* rows, const int32_t* segments, const int32_t* pairs, int64_t n,
                    int64_t d, int64_t num_segments, int64_t num_pairs, float* out, double* sums,
                    double* occurrences, const ParallelFor& parallel_for);

}  // namespace cafe

#endif  // CAFE_TF_CORE_OCCURRENCES_H_
