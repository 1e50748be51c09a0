// The two stages of PairwiseSum (hotsketch.h), which the parallel insert
// spreads over its tasks.
#ifndef CAFE_TF_CORE_PAIRWISE_SUM_H_
#define CAFE_TF_CORE_PAIRWISE_SUM_H_

#include <cstdint>

namespace cafe {
namespace internal {

// PairwiseSum in two stages, bit-identical to the padded in-place version
// (x = values padded with zeros to a power of two; x[i] = x[i] + x[i + h] for
// h = half, half/2, ..., 1 and i < h), without the padded copy. The halving levels
// h = half, half/2, ..., S (S = `residues`, a power of two <= half) only ever
// combine indices that are equal mod S, so the residues split into disjoint
// ranges that tasks run independently (this function, for residues
// [first, last)); the levels below S then run serially on x[0, S)
// (PairwiseFinish). Same additions, same operands, same order per element.
void PairwiseResidues(const float* __restrict values, int64_t n, int64_t half, int64_t residues,
                      int64_t first, int64_t last, float* __restrict x);
float PairwiseFinish(int64_t residues, float* x);

}  // namespace internal
}  // namespace cafe

#endif  // CAFE_TF_CORE_PAIRWISE_SUM_H_
