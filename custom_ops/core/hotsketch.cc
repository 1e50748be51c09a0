// The sketch's rules beyond one bucket: validation and migration. The rules
// of one bucket (insert of a key, lookup) are in hotsketch_rules.h; the
// drivers that apply them fast are parallel_insert.cc (batch insert),
// bucket_scan.cc (query) and pairwise_sum.cc (the mass sum).
#include "hotsketch.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>
#include <vector>

namespace cafe {

std::string SketchConfig::Validate() const {
  std::ostringstream err;
  if (num_buckets <= 0) err << "num_buckets must be > 0, got " << num_buckets << ". ";
  if (slots_per_bucket <= 0) err << "slots_per_bucket must be > 0, got " << slots_per_bucket << ". ";
  if (hot_rows <= 0) err << "hot_rows must be > 0, got " << hot_rows << ". ";
  if (!(threshold > 0.f) || !std::isfinite(threshold))
    err << "threshold must be finite and > 0, got " << threshold << ". ";
  if (!(demote_threshold >= 0.f) || !std::isfinite(demote_threshold))
    err << "demote_threshold must be finite and >= 0, got " << demote_threshold << ". ";
  if (std::isnan(medium_threshold)) err << "medium_threshold must not be NaN. ";
  if (!(yield_threshold >= 0.f) || !std::isfinite(yield_threshold))
    err << "yield_threshold must be finite and >= 0, got " << yield_threshold << ". ";
  if (!(swap_margin == 0.f || (swap_margin >= 1.f && std::isfinite(swap_margin))))
    err << "swap_margin must be 0 (off) or finite and >= 1, got " << swap_margin << ". ";
  if (!(decay_rate > 0.f && decay_rate <= 1.f))
    err << "decay_rate must be in (0, 1], got " << decay_rate << ". ";
  if (decay_rule == DecayRule::kMass && !(decay_mass_factor > 0.0))
    err << "decay_mass_factor must be > 0, got " << decay_mass_factor << ". ";
  if (decay_rule == DecayRule::kBatches && decay_period <= 0)
    err << "decay_period must be > 0, got " << decay_period << ". ";
  const std::string layout = ValidateEntryLayout(hot_rows, tag_bits);
  if (!layout.empty()) err << layout << ". ";
  return err.str();
}

std::string ValidateEntryLayout(int64_t hot_rows, int32_t tag_bits) {
  std::ostringstream err;
  if (tag_bits < 0 || tag_bits > kMaxTagBits) {
    err << "tag_bits must be in [0, " << kMaxTagBits << "], got " << tag_bits;
  } else if (hot_rows > (int64_t{1} << (31 - tag_bits))) {
    err << "a hot slot packs (row << tag_bits) | tag into an int32, so hot_rows * 2^tag_bits "
           "must be <= 2^31: tag_bits " << tag_bits << " (tags < " << (int64_t{1} << tag_bits)
        << ") allows at most " << (int64_t{1} << (31 - tag_bits)) << " hot rows, got "
        << hot_rows;
  }
  return err.str();
}

std::string CheckHotRows(const SketchConfig& config, const int64_t* slots) {
  const int64_t n = config.num_slots();
  for (int64_t s = 0; s < n; ++s) {
    const int32_t e = SlotEntry(slots[s]);
    if (e >= 0 && EntryRow(e, config.tag_bits) >= config.hot_rows) {
      std::ostringstream err;
      err << "the sketch state holds hot row " << EntryRow(e, config.tag_bits) << ", but hot_rows is "
          << config.hot_rows << " (with tag_bits " << config.tag_bits
          << "): the state was written with other hot_rows or tag_bits";
      return err.str();
    }
  }
  return "";
}

std::string ValidateInsert(const float* importance, const int32_t* feature_index, int64_t n,
                           int32_t tag_bits) {
  if (n >= (int64_t{1} << 31)) return "a batch must hold fewer than 2^31 ids";
  // Branch-free screen (vectorised): an importance is valid iff its bits are
  // those of a finite float >= 0 (+0 .. FLT_MAX, or -0), a tag iff its bits
  // from tag_bits up are clear (0 <= tag < 2^tag_bits). Only a batch that
  // fails it is scanned again for the message.
  constexpr int64_t kChunk = 4096;
  bool bad = false;
  for (int64_t begin = 0; begin < n && !bad; begin += kChunk) {
    const int64_t end = std::min(n, begin + kChunk);
    uint32_t flags = 0;
    for (int64_t i = begin; i < end; ++i) {
      uint32_t bits;
      std::memcpy(&bits, importance + i, sizeof(bits));
      flags |= static_cast<uint32_t>((bits >= 0x7f800000u) & (bits != 0x80000000u));
      flags |= static_cast<uint32_t>(feature_index[i]) >> tag_bits;
    }
    bad = flags != 0;
  }
  if (!bad) return "";
  for (int64_t i = 0; i < n; ++i) {
    std::string problem = InvalidInsertEntry(importance[i], feature_index[i], i, tag_bits);
    if (!problem.empty()) return problem;
  }
  return "";
}

std::string InvalidInsertEntry(float v, int32_t tag, int64_t index, int32_t tag_bits) {
  std::ostringstream err;
  if (std::isnan(v) || std::isinf(v) || v < 0.f) {
    err << "importance must be finite and >= 0, got " << v << " at index " << index;
  } else if (tag < 0 || (static_cast<uint32_t>(tag) >> tag_bits) != 0) {
    err << "feature_index must be in [0, 2^tag_bits) = [0, " << (int64_t{1} << tag_bits)
        << ") (tag_bits " << tag_bits << ", from the number of features), got " << tag
        << " at index " << index;
  }
  return err.str();
}

double DecayMassLimit(const SketchConfig& config) {
  return config.decay_mass_factor * static_cast<double>(config.num_buckets) *
         static_cast<double>(config.threshold);
}

MigrationResult Migrate(const SketchConfig& config, const SketchState& state, bool force_decay) {
  MigrationResult result;
  const int64_t slots = config.num_slots();
  const int32_t tag_bits = config.tag_bits;
  const DecaySteps due =
      DueDecaySteps(config.decay_rule == DecayRule::kBatches, DecayMassLimit(config),
                    config.decay_period, force_decay, *state.mass, *state.batches);
  if (due.steps > 0) {
    result.decayed = true;
    const float factor = DecayFactor(config.decay_rate, due.steps);
    for (int64_t s = 0; s < slots; ++s) {
      if (!(state.scores[s] > 0.f)) continue;
      state.scores[s] = FlushSubnormal(state.scores[s] * factor);
      const int32_t e = SlotEntry(state.slots[s]);
      // A hot key is demoted below the threshold, and always when its score
      // underflowed to 0 (its slot empties, so it cannot keep a row).
      if (e >= 0 && (state.scores[s] < config.demote_threshold || !(state.scores[s] > 0.f))) {
        const int32_t tag = EntryTag(e, tag_bits);
        result.demoted.push_back({SlotFp(state.slots[s]), tag, EntryRow(e, tag_bits)});
        state.slots[s] = WithEntry(state.slots[s], ColdMarker(tag, false));
      }
      if (!(state.scores[s] > 0.f)) {  // underflowed: the slot is empty again
        state.slots[s] = kEmptySlot;
        state.scores[s] = 0.f;
      }
    }
    *state.mass = due.mass_left;
    *state.batches = due.batches_left;
  }
  // Orders by score break ties by fingerprint, then by slot (fingerprints are
  // unique within a bucket, not across buckets).
  auto fp_then_slot = [&](int64_t a, int64_t b) {
    const uint32_t fa = SlotFp(state.slots[a]), fb = SlotFp(state.slots[b]);
    return fa != fb ? fa < fb : a < b;
  };
  // Pending keys (not seen since they took their slot over) wait.
  std::vector<int64_t> candidates;
  const float floor = config.promotion_floor();
  for (int64_t s = 0; s < slots; ++s) {
    const int32_t m = SlotEntry(state.slots[s]);
    if (m < 0 && !MarkerPending(m) && state.scores[s] > 0.f && state.scores[s] >= floor)
      candidates.push_back(s);
  }
  if (candidates.empty()) return result;
  const auto strongest_first = [&](int64_t a, int64_t b) {
    if (state.scores[a] != state.scores[b]) return state.scores[a] > state.scores[b];
    return fp_then_slot(a, b);
  };
  // Keys >= threshold come first in the order; of the others (fillers, with
  // fill_free_rows) only as many as rows stay free need ordering. The orders
  // are total, so partial orders pick exactly what full sorts would.
  const auto fillers_begin = std::partition(
      candidates.begin(), candidates.end(),
      [&](int64_t s) { return state.scores[s] >= config.threshold; });
  std::sort(candidates.begin(), fillers_begin, strongest_first);
  const int64_t strong = fillers_begin - candidates.begin();
  // Rows in use: those a hot slot's entry holds.
  std::vector<char> used(static_cast<size_t>(config.hot_rows), 0);
  std::vector<int64_t> hot;
  for (int64_t s = 0; s < slots; ++s) {
    const int32_t e = SlotEntry(state.slots[s]);
    if (e >= 0) {
      used[EntryRow(e, tag_bits)] = 1;
      hot.push_back(s);
    }
  }
  const int64_t free = config.hot_rows - static_cast<int64_t>(hot.size());
  int64_t swaps = 0;
  if (config.swap_margin > 0.f && free < strong) {
    // Candidates >= threshold beyond the free rows displace the weakest hot
    // keys (score ascending, fingerprint ascending, slot ascending) that are
    // below yield_threshold or that they outscore by the margin: the candidates'
    // scores fall and the hot keys' rise, so the pairs that qualify are a prefix.
    const int64_t pairs = std::min<int64_t>(static_cast<int64_t>(hot.size()), strong - free);
    std::partial_sort(hot.begin(), hot.begin() + pairs, hot.end(), [&](int64_t a, int64_t b) {
      if (state.scores[a] != state.scores[b]) return state.scores[a] < state.scores[b];
      return fp_then_slot(a, b);
    });
    for (; swaps < pairs; ++swaps) {
      const int64_t s = hot[swaps];
      if (!Displaces(state.scores[candidates[free + swaps]], state.scores[s],
                     config.yield_threshold, config.swap_margin))
        break;
      const int32_t e = SlotEntry(state.slots[s]);
      const int32_t row = EntryRow(e, tag_bits);
      const int32_t tag = EntryTag(e, tag_bits);
      result.demoted.push_back({SlotFp(state.slots[s]), tag, row});
      used[row] = 0;
      state.slots[s] = WithEntry(state.slots[s], ColdMarker(tag, false));
    }
  }
  const int64_t fillers = std::min<int64_t>(static_cast<int64_t>(candidates.end() - fillers_begin),
                                            std::max<int64_t>(0, free + swaps - strong));
  std::partial_sort(fillers_begin, fillers_begin + fillers, candidates.end(), strongest_first);
  size_t next = 0;
  for (int32_t row = 0; row < config.hot_rows && next < candidates.size(); ++row) {
    if (used[row]) continue;
    const int64_t s = candidates[next++];
    const int32_t tag = MarkerTag(SlotEntry(state.slots[s]));
    state.slots[s] = WithEntry(state.slots[s], HotEntry(row, tag, tag_bits));
    result.promoted.push_back({SlotFp(state.slots[s]), tag, row});
  }
  return result;
}

}  // namespace cafe
