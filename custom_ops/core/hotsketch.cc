#include "hotsketch.h"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace cafe {

float PairwiseSum(const float* values, int64_t n) {
  if (n <= 0) return 0.f;
  int64_t padded = 1;
  while (padded < n) padded <<= 1;
  std::vector<float> x(padded, 0.f);
  std::copy(values, values + n, x.begin());
  for (int64_t half = padded >> 1; half >= 1; half >>= 1) {
    for (int64_t i = 0; i < half; ++i) x[i] += x[i + half];
  }
  return x[0];
}

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
  if (!(decay_rate > 0.f && decay_rate <= 1.f))
    err << "decay_rate must be in (0, 1], got " << decay_rate << ". ";
  if (decay_rule == DecayRule::kMass && !(decay_mass_factor > 0.0))
    err << "decay_mass_factor must be > 0, got " << decay_mass_factor << ". ";
  if (decay_rule == DecayRule::kBatches && decay_period <= 0)
    err << "decay_period must be > 0, got " << decay_period << ". ";
  return err.str();
}

void SerialFor(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
  if (n > 0) fn(0, n);
}

std::string ValidateInsert(const float* importance, const int32_t* tags, int64_t n) {
  if (n >= (int64_t{1} << 31)) return "a batch must hold fewer than 2^31 ids";
  for (int64_t i = 0; i < n; ++i) {
    const float v = importance[i];
    if (std::isnan(v) || std::isinf(v) || v < 0.f) {
      std::ostringstream err;
      err << "importance must be finite and >= 0, got " << v << " at index " << i;
      return err.str();
    }
    if (tags[i] < 0) {
      std::ostringstream err;
      err << "tags must be >= 0, got " << tags[i] << " at index " << i;
      return err.str();
    }
  }
  return "";
}

namespace {

// Inserts one distinct key into its bucket (spec section 2, step 2).
void InsertIntoBucket(const SketchState& state, int64_t base, int32_t c, int64_t key, float v,
                      int32_t tag) {
  int32_t empty = -1;
  for (int32_t j = 0; j < c; ++j) {
    const int64_t s = base + j;
    if (state.scores[s] > 0.f) {
      if (state.keys[s] == key) {
        state.scores[s] += v;
        return;
      }
    } else if (empty < 0) {
      empty = j;
    }
  }
  if (empty >= 0) {
    const int64_t s = base + empty;
    state.keys[s] = key;
    state.scores[s] = v;
    state.tags[s] = tag;
    return;
  }
  // SpaceSaving takeover of the smallest non-hot slot (ties: highest index).
  int32_t victim = -1;
  for (int32_t j = 0; j < c; ++j) {
    const int64_t s = base + j;
    if (state.rows[s] >= 0) continue;
    if (victim < 0 || state.scores[s] <= state.scores[base + victim]) victim = j;
  }
  if (victim < 0) return;  // every slot is hot: the update is dropped
  const int64_t s = base + victim;
  state.keys[s] = key;
  state.scores[s] += v;
  state.tags[s] = tag;
}

// A distinct key of the batch with its importance summed in input order.
struct DistinctKey {
  int64_t key;
  float sum;
  int32_t tag;
};

// Distinct keys of one bucket's entries (`index`, in input order): sums in
// input order, min tag, ascending key. Linear search while the bucket has few
// distinct keys (the common case, even for buckets of very hot keys); a sort
// by (key, input position) otherwise.
void DistinctInBucket(const int64_t* keys, const float* importance, const int32_t* tags,
                      const int32_t* index, int64_t m, std::vector<DistinctKey>* out,
                      std::vector<std::pair<int64_t, int32_t>>* sort_buffer) {
  constexpr size_t kLinearLimit = 32;
  out->clear();
  int64_t e = 0;
  for (; e < m; ++e) {
    const int32_t i = index[e];
    const int64_t key = keys[i];
    DistinctKey* found = nullptr;
    for (DistinctKey& d : *out) {
      if (d.key == key) {
        found = &d;
        break;
      }
    }
    if (found != nullptr) {
      found->sum += importance[i];
      found->tag = std::min(found->tag, tags[i]);
    } else if (out->size() < kLinearLimit) {
      out->push_back({key, 0.f + importance[i], tags[i]});
    } else {
      break;
    }
  }
  if (e < m) {  // many distinct keys: sort instead
    out->clear();
    sort_buffer->clear();
    for (int64_t k = 0; k < m; ++k) sort_buffer->push_back({keys[index[k]], index[k]});
    std::sort(sort_buffer->begin(), sort_buffer->end());
    for (size_t k = 0; k < sort_buffer->size();) {
      const int64_t key = (*sort_buffer)[k].first;
      DistinctKey d{key, 0.f, tags[(*sort_buffer)[k].second]};
      for (; k < sort_buffer->size() && (*sort_buffer)[k].first == key; ++k) {
        d.sum += importance[(*sort_buffer)[k].second];
        d.tag = std::min(d.tag, tags[(*sort_buffer)[k].second]);
      }
      out->push_back(d);
    }
    return;
  }
  std::sort(out->begin(), out->end(),
            [](const DistinctKey& a, const DistinctKey& b) { return a.key < b.key; });
}

// Processes the buckets [bucket_begin, bucket_end) of one batch.
void InsertShard(const SketchConfig& config, const SketchState& state, const int64_t* keys,
                 const float* importance, const int32_t* tags, const uint32_t* buckets,
                 int64_t n, uint32_t bucket_begin, uint32_t bucket_end) {
  const int64_t width = static_cast<int64_t>(bucket_end) - bucket_begin;
  if (width <= 0) return;
  // Stable counting sort of this shard's entries by bucket.
  std::vector<int32_t> offsets(width + 1, 0);
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t local = buckets[i] - bucket_begin;
    if (local < width) ++offsets[local + 1];
  }
  for (int64_t b = 0; b < width; ++b) offsets[b + 1] += offsets[b];
  std::vector<int32_t> grouped(offsets[width]);
  {
    std::vector<int32_t> cursor(offsets.begin(), offsets.end() - 1);
    for (int64_t i = 0; i < n; ++i) {
      const uint32_t local = buckets[i] - bucket_begin;
      if (local < width) grouped[cursor[local]++] = static_cast<int32_t>(i);
    }
  }
  const int32_t c = config.slots_per_bucket;
  std::vector<DistinctKey> distinct;
  std::vector<std::pair<int64_t, int32_t>> sort_buffer;
  for (int64_t b = 0; b < width; ++b) {
    const int64_t m = offsets[b + 1] - offsets[b];
    if (m == 0) continue;
    DistinctInBucket(keys, importance, tags, grouped.data() + offsets[b], m, &distinct,
                     &sort_buffer);
    const int64_t base = (static_cast<int64_t>(bucket_begin) + b) * c;
    for (const DistinctKey& d : distinct) {
      // A key whose summed importance is 0 changes nothing.
      if (d.sum > 0.f) InsertIntoBucket(state, base, c, d.key, d.sum, d.tag);
    }
  }
}

}  // namespace

void Insert(const SketchConfig& config, const SketchState& state, const int64_t* keys,
            const float* importance, const int32_t* tags, int64_t n, int num_shards,
            const ParallelFor& parallel_for) {
  if (n <= 0) return;
  *state.mass += PairwiseSum(importance, n);
  *state.batches += 1;
  const int64_t W = config.num_buckets;
  const FastMod mod_w(W);
  std::vector<uint32_t> buckets(n);  // W * c < 2^31, so buckets fit
  parallel_for(n, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i)
      buckets[i] = static_cast<uint32_t>(mod_w(Mix64(static_cast<uint64_t>(keys[i]))));
  });
  const int64_t shards = std::max<int64_t>(1, std::min<int64_t>(num_shards, W));
  parallel_for(shards, [&](int64_t begin, int64_t end) {
    for (int64_t s = begin; s < end; ++s) {
      InsertShard(config, state, keys, importance, tags, buckets.data(), n,
                  static_cast<uint32_t>(s * W / shards), static_cast<uint32_t>((s + 1) * W / shards));
    }
  });
}

void Query(const SketchConfig& config, const ConstSketchState& state, const int64_t* keys,
           int64_t n, int32_t* out_rows, int32_t* out_levels, const ParallelFor& parallel_for) {
  const FastMod mod_w(config.num_buckets);
  const int32_t c = config.slots_per_bucket;
  const float medium = config.medium_threshold;
  constexpr int64_t kBlock = 32;  // bucket addresses computed and prefetched a block ahead
  parallel_for(n, [&](int64_t begin, int64_t end) {
    int64_t base[kBlock];
    for (int64_t block = begin; block < end; block += kBlock) {
      const int64_t count = std::min(kBlock, end - block);
      for (int64_t k = 0; k < count; ++k) {
        base[k] = static_cast<int64_t>(mod_w(Mix64(static_cast<uint64_t>(keys[block + k])))) * c;
        __builtin_prefetch(state.keys + base[k]);
        __builtin_prefetch(state.scores + base[k]);
        __builtin_prefetch(state.rows + base[k]);
      }
      for (int64_t k = 0; k < count; ++k) {
        const int64_t key = keys[block + k];
        int32_t row = -1;
        int32_t level = kLevelCold;
        for (int32_t j = 0; j < c; ++j) {
          const int64_t s = base[k] + j;
          if (state.scores[s] > 0.f && state.keys[s] == key) {
            row = state.rows[s];
            level = row >= 0 ? kLevelHot : (state.scores[s] >= medium ? kLevelMedium : kLevelCold);
            break;
          }
        }
        out_rows[block + k] = row;
        out_levels[block + k] = level;
      }
    }
  });
}

bool DecayDue(const SketchConfig& config, const SketchState& state) {
  if (config.decay_rule == DecayRule::kBatches) return *state.batches >= config.decay_period;
  const double limit = config.decay_mass_factor * static_cast<double>(config.num_buckets) *
                       static_cast<double>(config.threshold);
  return static_cast<double>(*state.mass) > limit;
}

MigrationResult Migrate(const SketchConfig& config, const SketchState& state, bool force_decay) {
  MigrationResult result;
  const int64_t slots = config.num_slots();
  if (force_decay || DecayDue(config, state)) {
    result.decayed = true;
    for (int64_t s = 0; s < slots; ++s) {
      if (!(state.scores[s] > 0.f)) continue;
      state.scores[s] *= config.decay_rate;
      const int32_t row = state.rows[s];
      if (row >= 0 && state.scores[s] < config.demote_threshold) {
        result.demoted.push_back({state.keys[s], state.tags[s], row});
        state.row_slot[row] = -1;
        state.rows[s] = -1;
      }
      if (!(state.scores[s] > 0.f)) {  // underflowed: the slot is empty again
        state.keys[s] = 0;
        state.scores[s] = 0.f;
        state.tags[s] = 0;
      }
    }
    *state.mass = 0.f;
    *state.batches = 0;
  }
  std::vector<int64_t> candidates;
  for (int64_t s = 0; s < slots; ++s) {
    if (state.rows[s] < 0 && state.scores[s] > 0.f && state.scores[s] >= config.threshold)
      candidates.push_back(s);
  }
  if (candidates.empty()) return result;
  std::sort(candidates.begin(), candidates.end(), [&](int64_t a, int64_t b) {
    if (state.scores[a] != state.scores[b]) return state.scores[a] > state.scores[b];
    return state.keys[a] < state.keys[b];
  });
  size_t next = 0;
  for (int32_t row = 0; row < config.hot_rows && next < candidates.size(); ++row) {
    if (state.row_slot[row] >= 0) continue;
    const int64_t s = candidates[next++];
    state.rows[s] = row;
    state.row_slot[row] = static_cast<int32_t>(s);
    result.promoted.push_back({state.keys[s], state.tags[s], row});
  }
  return result;
}

}  // namespace cafe
