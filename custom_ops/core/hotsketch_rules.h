// The rules of one bucket, on which the whole sketch rests (docs/sketch.md):
// how one distinct key of a batch enters its bucket, and what a lookup of a
// fingerprint answers. Inline, since the insert and query drivers
// (parallel_insert.cc, bucket_scan.cc) call them once per key; the rest of the
// rules (validation, migration) are in hotsketch.cc.
//
// A slot's entry holds a tag: the index of the key's feature (its feature
// index) among the features that share the sketch.
#ifndef CAFE_TF_CORE_HOTSKETCH_RULES_H_
#define CAFE_TF_CORE_HOTSKETCH_RULES_H_

#include <cstdint>

#include "hotsketch.h"

namespace cafe {
namespace internal {

// How a bucket treats a key: the config's insert rules.
struct InsertRules {
  bool second_sighting;
  bool erode;
};

// Inserts one distinct key, of fingerprint fp, into its bucket (docs/sketch.md,
// batch insert). `sighted`: the key may be promoted even if it takes a slot
// over (it occurs more than once in the batch, or the second sighting rule is off).
inline void InsertIntoBucket(const SketchState& state, int64_t base, int32_t c, uint32_t fp,
                             float v, int32_t tag, bool sighted, bool erode) {
  int32_t empty = -1;
  for (int32_t j = 0; j < c; ++j) {
    const int64_t s = base + j;
    if (state.scores[s] > 0.f) {
      if (SlotFp(state.slots[s]) == fp) {
        state.scores[s] += v;
        const int32_t m = SlotEntry(state.slots[s]);
        // Seen again: a pending key becomes promotable.
        if (m < 0 && MarkerPending(m)) state.slots[s] = SlotWord(fp, ColdMarker(MarkerTag(m), false));
        return;
      }
    } else if (empty < 0) {
      empty = j;
    }
  }
  if (empty >= 0) {
    const int64_t s = base + empty;
    state.slots[s] = SlotWord(fp, ColdMarker(tag, false));
    state.scores[s] = v;
    return;
  }
  // The smallest non-hot slot (ties: highest index) is eroded or taken over.
  int32_t victim = -1;
  for (int32_t j = 0; j < c; ++j) {
    const int64_t s = base + j;
    if (SlotEntry(state.slots[s]) >= 0) continue;
    if (victim < 0 || state.scores[s] <= state.scores[base + victim]) victim = j;
  }
  if (victim < 0) return;  // every slot is hot: the update is dropped
  const int64_t s = base + victim;
  if (erode) {
    const float gain = FlushSubnormal(v - state.scores[s]);
    if (!(gain > 0.f)) {  // eroded: the newcomer is not recorded
      const float left = FlushSubnormal(state.scores[s] - v);
      if (left > 0.f) {
        state.scores[s] = left;
      } else {  // eroded to 0: the slot is empty
        state.slots[s] = kEmptySlot;
        state.scores[s] = 0.f;
      }
      return;
    }
    state.scores[s] = gain;
  } else {
    state.scores[s] += v;  // SpaceSaving: the newcomer inherits the score
  }
  // A newcomer that took a slot over waits for a second sighting.
  state.slots[s] = SlotWord(fp, ColdMarker(tag, !sighted));
}

// Inserts one distinct key of a batch into its bucket (slots [base, base + c)).
// A batch's keys go into each bucket in ascending key order. `sum`: the key's
// importances summed in input order; `merged_tag`: its smallest tag, with
// kRepeatedBit set when the key occurs more than once in the batch (a second
// sighting). A key whose summed importance is 0 changes nothing.
inline void InsertBatchKey(const SketchState& state, int64_t base, int32_t c,
                           const InsertRules& rules, int64_t key, float sum, int32_t merged_tag) {
  if (sum > 0.f) {
    InsertIntoBucket(state, base, c, FingerprintOf(key), sum, merged_tag & ~kRepeatedBit,
                     merged_tag < 0 || !rules.second_sighting, rules.erode);
  }
}

// The answer of a lookup of fingerprint `fp` in a bucket of c slots: the first
// occupied slot holding `fp` gives the row (-1 unless hot) and the level (hot;
// else medium when its score is >= `medium`; else cold); no such slot: -1, cold.
// Also the CUDA query's body (custom_ops/cuda/kernels).
inline CAFE_HOST_DEVICE void LookUpBucket(const int64_t* slot_words, const float* slot_scores,
                                          int64_t c, int32_t tag_bits, float medium,
                                          uint32_t fp, int32_t* out_row, int32_t* out_level) {
  int32_t row = -1;
  int32_t level = kLevelCold;
  for (int64_t j = 0; j < c; ++j) {
    if (slot_scores[j] > 0.f && SlotFp(slot_words[j]) == fp) {
      const int32_t e = SlotEntry(slot_words[j]);
      row = e >= 0 ? EntryRow(e, tag_bits) : kRowNone;
      level = row >= 0 ? kLevelHot : (slot_scores[j] >= medium ? kLevelMedium : kLevelCold);
      break;
    }
  }
  *out_row = row;
  *out_level = level;
}

}  // namespace internal
}  // namespace cafe

#endif  // CAFE_TF_CORE_HOTSKETCH_RULES_H_
