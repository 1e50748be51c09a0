// Per-element bodies of the CafeRoute CUDA kernels (routing_kernels.cu),
// shared verbatim with the CPU emulation of the GPU pipeline
// (../harness/routing_emulation_test.cc). The semantics are cafe::Route
// (../core/routing.h): distinct pairs in order of first occurrence, found
// here without any order-dependent step: every occurrence claims a hash slot
// for its pair (compare-and-swap), the slot keeps the smallest occurrence
// index (atomic min), and an exclusive scan over "is the first occurrence"
// flags numbers the pairs in order of first occurrence. Slot positions depend
// on the claim order; nothing in the output does.
#ifndef CAFE_TF_CUDA_ROUTING_DEVICE_COMMON_H_
#define CAFE_TF_CUDA_ROUTING_DEVICE_COMMON_H_

#include <cstdint>

#include "../../core/routing.h"            // PairHash, TableSalt, FingerprintRow
#include "hotsketch_device_common.h"  // QueryBody, CAFE_HD

namespace cafe {
namespace cuda {
namespace detail {

using ::cafe::PairHash;

// Slots of the pair table for n entries: a power of two >= 2n (at least 16),
// so the table is at most half full.
inline int64_t PairTableSlots(int64_t n) {
  int64_t slots = 16;
  while (slots < 2 * n) slots <<= 1;
  return slots;
}

// Entry i (used) claims the slot of its pair (a[i], b[i]) (b null: 0) in
// `owner` (-1: free) with `cas(slot, expected, desired) -> previous`; returns
// the slot, and lowers `first[slot]` to i with `atomic_min`.
template <typename Cas, typename Min>
CAFE_HD int32_t ClaimBody(int64_t i, const int64_t* a, const int32_t* b, int32_t* owner,
                          int32_t* first, uint64_t mask, const Cas& cas, const Min& atomic_min) {
  const int64_t ka = a[i];
  const int32_t kb = b == nullptr ? 0 : b[i];
  for (uint64_t h = PairHash(ka, kb);; ++h) {
    const int32_t slot = static_cast<int32_t>(h & mask);
    const int32_t previous = cas(owner + slot, -1, static_cast<int32_t>(i));
    if (previous < 0 || (a[previous] == ka && (b == nullptr || b[previous] == kb))) {
      atomic_min(first + slot, static_cast<int32_t>(i));
      return slot;
    }
  }
}

// flag[i] = 1 iff entry i is the first (used) occurrence of its pair.
CAFE_HD void FirstFlagBody(int64_t i, const int32_t* slot_of, const int32_t* first,
                           int32_t* flag) {
  flag[i] = slot_of[i] >= 0 && first[slot_of[i]] == i ? 1 : 0;
}

// Entry i's distinct index (pos: exclusive scan of flag), `base` added; -1 unused.
// A first occurrence also writes its value(s) to the distinct lists.
template <typename T>
CAFE_HD void ScatterDistinctBody(int64_t i, const int64_t* a, const int32_t* b,
                                 const int32_t* slot_of, const int32_t* first, const int32_t* flag,
                                 const int32_t* pos, int32_t base, int32_t* index, T* out_a,
                                 int32_t* out_b) {
  if (slot_of[i] < 0) {
    index[i] = -1;
    return;
  }
  if (flag[i]) {
    out_a[pos[i]] = static_cast<T>(a[i]);
    if (out_b != nullptr) out_b[pos[i]] = b[i];
  }
  index[i] = base + pos[first[slot_of[i]]];
}

// Per distinct pair u: its hashed and medium rows as cafe::Route computes
// them (from the key's fingerprint), and the values the per-table dedup
// passes read (row, or unused).
CAFE_HD void RowsBody(int64_t u, const int64_t* keys, const int32_t* feature_index,
                      const int32_t* hot_row, const int32_t* level,
                      const int64_t* hashed_offsets, const int64_t* hashed_sizes,
                      const int64_t* medium_offsets, const int64_t* medium_sizes, bool multi_level,
                      uint64_t hashed_salt, uint64_t medium_salt, int64_t* hashed_row,
                      int64_t* medium_row, int64_t* hot64) {
  const int32_t f = feature_index[u];
  const bool hot = hot_row[u] >= 0;
  hot64[u] = hot_row[u];
  const uint32_t fp = FingerprintOf(keys[u]);
  hashed_row[u] =
      hot ? -1 : hashed_offsets[f] + FingerprintRow(fp, hashed_salt, hashed_sizes[f]);
  medium_row[u] = multi_level && level[u] == kLevelMedium
                       ? medium_offsets[f] + FingerprintRow(fp, medium_salt, medium_sizes[f])
                       : -1;
}

// first_index of pair u: its hot-read index, else its hashed-read index
// (already offset by the number of hot rows read).
CAFE_HD void FirstIndexBody(int64_t u, const int32_t* hot_index, const int32_t* hashed_index,
                            int32_t* first_index) {
  first_index[u] = hot_index[u] >= 0 ? hot_index[u] : hashed_index[u];
}

// Id i of feature `feature` as a sketch key (cafe::FieldKeys), with its feature index.
CAFE_HD void FieldKeyBody(int64_t i, const int64_t* ids, int64_t salt, int32_t feature,
                          int64_t* keys, int32_t* feature_index) {
  keys[i] = ids[i] ^ salt;
  feature_index[i] = feature;
}

// Occurrence i's first_index: that of its pair.
CAFE_HD void OccurrenceIndexBody(int64_t i, const int32_t* inverse, const int32_t* first_index,
                                 int32_t* occurrence_index) {
  occurrence_index[i] = first_index[inverse[i]];
}

// Entry i of feature_index is out of [0, num_features): its index, else n.
CAFE_HD int64_t BadFeatureIndexBody(int64_t i, const int32_t* feature_index, int32_t num_features,
                                    int64_t n) {
  return feature_index[i] < 0 || feature_index[i] >= num_features ? i : n;
}

}  // namespace detail
}  // namespace cuda
}  // namespace cafe

#endif  // CAFE_TF_CUDA_ROUTING_DEVICE_COMMON_H_
