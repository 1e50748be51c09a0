// Per-occurrence reductions of a CAFE lookup's backward pass: the gradient of
// the expand from distinct rows to occurrences, and each distinct pair's
// importance. Plain C++17, no TensorFlow; the pure-TF definitions are
// cafe_tf/layers/occurrences.py, which this matches bit for bit. Every sum runs
// in occurrence order per output (as TensorFlow's CPU UnsortedSegmentSum
// does), so results do not depend on threads.
#ifndef CAFE_TF_CORE_OCCURRENCES_H_
#define CAFE_TF_CORE_OCCURRENCES_H_

#include <cstdint>
#include <string>

namespace cafe {

// Empty when every segments[i] (i < n) is in [0, num_segments), else the first
// that is not.
std::string ValidateSegments(const int32_t* segments, int64_t n, int64_t num_segments);

// out[s] = the sum of rows[i] over the i with segments[i] == s, in order of i
// (rows: n x d, out: num_segments x d; rows no occurrence names are 0).
void SegmentRowSums(const float* rows, const int32_t* segments, int64_t n, int64_t d,
                    int64_t num_segments, float* out);

// The Euclidean norm of a row of d floats: the float32 sum of the squares in
// column order, then its square root.
float RowNorm(const float* row, int64_t d);

// Per pair p < num_pairs: sums[p] = the float64 sum, in order of i, of the
// values of the occurrences i with pairs[i] == p, and occurrences[p] their
// count. An occurrence's value is RowNorm of its row (rows: n x d) with
// `norm`, else |rows[i]| (then d is 1).
void PairSums(const float* rows, const int32_t* pairs, int64_t n, int64_t d, bool norm,
              int64_t num_pairs, double* sums, double* occurrences);

}  // namespace cafe

#endif  // CAFE_TF_CORE_OCCURRENCES_H_
