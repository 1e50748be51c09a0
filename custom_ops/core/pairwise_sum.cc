#include "pairwise_sum.h"

#include <algorithm>
#include <vector>

#include "hotsketch.h"

namespace cafe {
namespace internal {

void PairwiseResidues(const float* __restrict values, int64_t n, int64_t half, int64_t residues,
                      int64_t first, int64_t last, float* __restrict x) {
  const int64_t paired = n - half;  // x[i] has a real partner for i < paired
  for (int64_t k = 0; k < half; k += residues) {
    const int64_t begin = k + first, end = k + last;
    const int64_t split = std::min(end, std::max(begin, paired));
    for (int64_t i = begin; i < split; ++i) {
      x[i] = FlushSubnormal(values[i]) + FlushSubnormal(values[i + half]);
    }
    for (int64_t i = split; i < end; ++i) x[i] = FlushSubnormal(values[i]) + 0.f;
  }
  for (int64_t h = half >> 1; h >= residues; h >>= 1) {
    for (int64_t k = 0; k < h; k += residues) {
      for (int64_t i = k + first, end = k + last; i < end; ++i) x[i] += x[i + h];
    }
  }
}

float PairwiseFinish(int64_t residues, float* x) {
  for (int64_t h = residues >> 1; h >= 1; h >>= 1) {
    for (int64_t i = 0; i < h; ++i) x[i] += x[i + h];
  }
  return x[0];
}

}  // namespace internal

float PairwiseSum(const float* values, int64_t n) {
  if (n <= 1) return n == 1 ? FlushSubnormal(values[0]) : 0.f;
  int64_t padded = 1;
  while (padded < n) padded <<= 1;
  const int64_t half = padded >> 1;
  std::vector<float> x(half);
  internal::PairwiseResidues(values, n, half, half, 0, half, x.data());
  return internal::PairwiseFinish(half, x.data());
}

}  // namespace cafe
