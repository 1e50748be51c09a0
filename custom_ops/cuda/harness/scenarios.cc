#include "scenarios.h"

#include <cstdint>
#include <limits>
#include <vector>

namespace cafe {
namespace harness {

std::vector<Scenario> Scenarios(bool include_large) {
  std::vector<Scenario> list;
  uint64_t seed = 11;
  auto make = [&seed](const char* name, int64_t w, int32_t c, int32_t h, float k) {
    Scenario s;
    s.name = name;
    s.config.num_buckets = w;
    s.config.slots_per_bucket = c;
    s.config.hot_rows = h;
    s.config.tag_bits = 5;  // tags up to batch.max_tag = 26
    s.config.threshold = k;
    s.config.demote_threshold = k;
    s.config.medium_threshold = 0.2f * k;
    s.config.decay_rate = 0.99f;
    s.config.decay_rule = DecayRule::kMass;
    s.config.decay_mass_factor = 10.0;
    s.seed = seed++ * 0x9e3779b97f4a7c15ULL;
    return s;
  };
  {
    Scenario s = make("one_bucket_every_slot_hot", 1, 4, 4, 1.f);
    s.steps = 12;
    s.batch.n = 64;
    s.batch.vocabulary = 20;
    s.batch.skew = 1.1;
    s.batch.importance = ImportanceMode::kOnes;
    s.migrate_every = 1;
    list.push_back(s);
  }
  {
    Scenario s = make("tiny_full_buckets_takeovers", 3, 2, 3, 2.f);
    s.config.erode = false;  // SpaceSaving takeovers (erosion: every other scenario)
    s.steps = 30;
    s.batch.n = 500;
    s.batch.vocabulary = 1000;
    s.batch.skew = 1.1;
    s.modes = {ImportanceMode::kUniform, ImportanceMode::kOnes, ImportanceMode::kWide};
    s.config.decay_rate = 0.6f;
    s.migrate_every = 1;
    s.force_decay_every = 3;
    s.drift = 50;
    list.push_back(s);
  }
  {
    // The largest tags: 30 tag bits leave room for 2 hot rows.
    Scenario s = make("paper_rules_no_second_sighting", 3, 2, 2, 2.f);
    s.config.second_sighting = false;
    s.config.erode = false;
    s.config.tag_bits = kMaxTagBits;
    s.steps = 20;
    s.batch.n = 500;
    s.batch.vocabulary = 1000;
    s.batch.max_tag = kMaxTag;
    s.modes = {ImportanceMode::kUniform, ImportanceMode::kOnes};
    s.config.decay_rate = 0.6f;
    s.drift = 50;
    list.push_back(s);
  }
  {
    Scenario s = make("multi_step_decays", 64, 4, 40, 5.f);
    s.config.decay_mass_factor = 0.3;  // several mass periods per migration
    s.config.decay_rate = 0.93f;
    s.steps = 16;
    s.batch.n = 4000;
    s.batch.vocabulary = 5000;
    s.modes = {ImportanceMode::kUniform, ImportanceMode::kWide, ImportanceMode::kTiny};
    s.migrate_every = 3;
    s.force_decay_every = 4;
    s.drift = 300;
    list.push_back(s);
  }
  {
    Scenario s = make("swaps_under_drift", 128, 4, 30, 3.f);
    s.config.swap_margin = 1.5f;
    s.config.decay_rate = 0.9f;
    s.steps = 24;
    s.batch.n = 3000;
    s.batch.vocabulary = 20000;
    s.modes = {ImportanceMode::kOnes, ImportanceMode::kUniform};
    s.force_decay_every = 5;
    s.drift = 400;
    list.push_back(s);
  }
  {
    // Rows left free after the candidates >= k go to weaker keys; hot keys keep
    // their rows until displaced (demote_threshold 0).
    Scenario s = make("fill_free_rows_under_drift", 128, 4, 60, 4.f);
    s.config.fill_free_rows = true;
    s.config.yield_threshold = 2.f;
    s.config.swap_margin = 1.5f;
    s.config.demote_threshold = 0.f;
    s.config.decay_rate = 0.8f;
    s.steps = 24;
    s.batch.n = 2000;
    s.batch.vocabulary = 20000;
    s.modes = {ImportanceMode::kOnes, ImportanceMode::kUniform, ImportanceMode::kTiny};
    s.force_decay_every = 4;
    s.drift = 400;
    list.push_back(s);
  }
  {
    // Keys far below k fill the rows and decay; keys below k beyond the full rows
    // outscore them by the margin, yet only keys >= k may displace.
    Scenario s = make("fill_weak_keys_do_not_displace", 8, 8, 6, 20.f);
    s.config.fill_free_rows = true;
    s.config.yield_threshold = 10.f;
    s.config.swap_margin = 1.5f;
    s.config.demote_threshold = 0.f;
    s.config.decay_rate = 0.5f;
    s.config.decay_mass_factor = 0.5;
    s.steps = 16;
    s.batch.n = 300;
    s.batch.vocabulary = 2000;
    s.modes = {ImportanceMode::kUniform, ImportanceMode::kOnes};
    s.drift = 50;
    list.push_back(s);
  }
  {
    // Hot keys decayed below k (x0.8 every 3 batches) yield to candidates at k
    // that do not outscore them by the margin (integer scores: 3.2 < 4 < 1.5 * 3.2).
    Scenario s = make("hot_below_k_yields_without_margin", 4, 8, 4, 4.f);
    s.config.swap_margin = 1.5f;
    s.config.yield_threshold = 4.f;
    s.config.demote_threshold = 0.f;
    s.config.decay_rule = DecayRule::kBatches;
    s.config.decay_period = 3;
    s.config.decay_rate = 0.8f;
    s.steps = 40;
    s.batch.n = 20;
    s.batch.vocabulary = 40;
    s.batch.importance = ImportanceMode::kOnes;
    s.batch.key_mode = KeyMode::kRank;
    s.drift = 5;
    list.push_back(s);
  }
  {
    // Filling without swaps, with demotion at k / 2: fillers below it leave at
    // the next decay.
    Scenario s = make("fill_free_rows_demote_half", 32, 4, 50, 2.f);
    s.config.fill_free_rows = true;
    s.config.demote_threshold = 1.f;
    s.config.decay_rate = 0.7f;
    s.steps = 20;
    s.batch.n = 600;
    s.batch.vocabulary = 3000;
    s.modes = {ImportanceMode::kUniform, ImportanceMode::kWide};
    s.migrate_every = 1;
    s.force_decay_every = 3;
    s.drift = 100;
    list.push_back(s);
  }
  {
    Scenario s = make("swap_ties_margin_1", 16, 2, 8, 1.f);
    s.config.swap_margin = 1.f;
    s.steps = 20;
    s.batch.n = 400;
    s.batch.vocabulary = 300;
    s.batch.importance = ImportanceMode::kOnes;
    s.batch.key_mode = KeyMode::kRank;
    s.drift = 40;
    list.push_back(s);
  }
  {
    Scenario s = make("heavy_duplicates_long_runs", 64, 4, 40, 50.f);
    s.config.decay_mass_factor = 1000.0;  // a few decay steps per migration
    s.steps = 12;
    s.batch.n = 20000;
    s.batch.vocabulary = 5000;
    s.batch.skew = 1.3;
    s.modes = {ImportanceMode::kUniform, ImportanceMode::kWide};
    s.migrate_every = 2;
    s.force_decay_every = 2;
    s.drift = 200;
    s.config.decay_rate = 0.7f;
    list.push_back(s);
  }
  {
    Scenario s = make("one_huge_run_multi_chunk", 16, 4, 8, 100.f);
    s.steps = 4;
    s.batch.n = 300000;
    s.batch.vocabulary = 100000;
    s.batch.skew = 1.05;
    s.batch.hot_fraction = 0.9;
    s.modes = {ImportanceMode::kUniform, ImportanceMode::kWide};
    s.vary_size = false;
    s.migrate_every = 1;
    list.push_back(s);
  }
  {
    // Decays that underflow hot and non-hot scores to 0 with demote
    // threshold 0: hot slots are emptied without being demoted (see
    // README "core behaviour worth knowing").
    Scenario s = make("underflow_demote_threshold_0", 8, 4, 16, 1e-37f);
    s.config.demote_threshold = 0.f;
    s.config.medium_threshold = 1e-38f;
    s.config.decay_rate = 0.25f;
    s.steps = 90;
    s.batch.n = 200;
    s.batch.vocabulary = 300;
    s.batch.skew = 1.2;
    s.modes = {ImportanceMode::kTiny, ImportanceMode::kTiny, ImportanceMode::kOnes};
    s.migrate_every = 1;
    s.force_decay_every = 1;
    s.drift = 60;
    list.push_back(s);
  }
  {
    // Demote threshold in the denormal range: slots demoted and emptied at once.
    Scenario s = make("underflow_demoted_and_emptied", 8, 4, 16, 1e-38f);
    s.config.decay_mass_factor = 1000.0;  // a few decay steps per migration
    s.config.demote_threshold = 1e-40f;
    s.config.medium_threshold = 1e-39f;
    s.config.decay_rate = 0.5f;
    s.steps = 40;
    s.batch.n = 200;
    s.batch.vocabulary = 300;
    s.batch.skew = 1.2;
    s.batch.importance = ImportanceMode::kTiny;
    s.migrate_every = 1;
    s.force_decay_every = 1;
    s.drift = 60;
    list.push_back(s);
  }
  {
    Scenario s = make("frequency_score_ties_mass_rule", 500, 4, 300, 3.f);
    s.config.decay_mass_factor = 0.5;  // decays are due often
    s.steps = 20;
    s.batch.n = 5000;
    s.batch.vocabulary = 100000;
    s.batch.skew = 1.05;
    s.batch.importance = ImportanceMode::kOnes;
    s.batch.key_mode = KeyMode::kRank;
    s.migrate_every = 1;
    s.drift = 2000;
    s.config.decay_rate = 0.8f;
    list.push_back(s);
  }
  {
    Scenario s = make("batches_rule_odd_c", 128, 3, 50, 5.f);
    s.config.decay_rule = DecayRule::kBatches;
    s.config.decay_period = 3;
    s.config.demote_threshold = 4.f;
    s.steps = 20;
    s.batch.n = 3000;
    s.batch.vocabulary = 20000;
    s.batch.skew = 1.1;
    s.modes = {ImportanceMode::kUniform, ImportanceMode::kOnes};
    s.migrate_every = 7;  // 2 or 3 periods per migration
    s.drift = 500;
    s.config.decay_rate = 0.7f;
    list.push_back(s);
  }
  {
    Scenario s = make("extreme_and_negative_keys", 97, 2, 40, 2.f);
    s.steps = 15;
    s.batch.n = 2000;
    s.batch.vocabulary = 3000;
    s.batch.skew = 1.2;
    s.batch.key_mode = KeyMode::kExtreme;
    s.modes = {ImportanceMode::kUniform, ImportanceMode::kOnes};
    s.migrate_every = 2;
    s.force_decay_every = 2;
    s.drift = 300;
    s.config.decay_rate = 0.7f;
    list.push_back(s);
  }
  {
    Scenario s = make("fingerprint_false_matches", 16, 4, 12, 3.f);
    s.config.tag_bits = 0;  // one tag: hot entries are plain rows
    s.steps = 16;
    s.batch.n = 1000;
    s.batch.vocabulary = 400;
    s.batch.max_tag = 0;
    s.batch.key_mode = KeyMode::kFingerprintPairs;
    s.modes = {ImportanceMode::kUniform, ImportanceMode::kOnes};
    s.migrate_every = 1;
    s.force_decay_every = 3;
    s.drift = 40;
    s.config.swap_margin = 1.25f;
    s.config.decay_rate = 0.7f;
    list.push_back(s);
  }
  {
    Scenario s = make("zero_empty_invalid_batches", 32, 4, 20, 1.f);
    s.steps = 30;
    s.batch.n = 1000;
    s.batch.vocabulary = 2000;
    s.batch.skew = 1.1;
    s.modes = {ImportanceMode::kMixedZeroNegZero, ImportanceMode::kZeros, ImportanceMode::kUniform};
    s.corrupt_every = 3;
    s.empty_every = 5;
    s.migrate_every = 2;
    s.config.decay_rate = 0.8f;
    list.push_back(s);
  }
  {
    Scenario s = make("wide_buckets_c16", 50, 16, 200, 4.f);
    s.config.decay_mass_factor = 1000.0;  // a few decay steps per migration
    s.steps = 12;
    s.batch.n = 8000;
    s.batch.vocabulary = 50000;
    s.batch.skew = 1.1;
    s.modes = {ImportanceMode::kUniform, ImportanceMode::kWide};
    s.migrate_every = 2;
    s.force_decay_every = 3;
    s.drift = 2000;
    s.config.decay_rate = 0.75f;
    list.push_back(s);
  }
  {
    // The default layout: c = 16 and about 4/3 slots per hot row (W*c = 1200
    // slots for 900 hot rows), so W is far from the number of hot rows.
    Scenario s = make("default_layout_c16_4_3_slots_per_hot_row", 75, 16, 900, 2.f);
    s.steps = 12;
    s.batch.n = 6000;
    s.batch.vocabulary = 20000;
    s.batch.skew = 1.05;
    s.modes = {ImportanceMode::kUniform, ImportanceMode::kOnes};
    s.migrate_every = 2;
    s.force_decay_every = 3;
    s.drift = 500;
    list.push_back(s);
  }
  {
    Scenario s = make("c1_many_buckets", 100000, 1, 5000, 3.f);
    s.steps = 6;
    s.batch.n = 200000;
    s.batch.vocabulary = 1000000;
    s.batch.skew = 1.1;
    s.modes = {ImportanceMode::kUniform, ImportanceMode::kOnes};
    s.migrate_every = 2;
    s.force_decay_every = 2;
    s.drift = 50000;
    s.config.decay_rate = 0.5f;
    list.push_back(s);
  }
  {
    Scenario s = make("inf_scores_overflow", 16, 4, 30, 1e30f);
    s.config.medium_threshold = 1e29f;
    s.steps = 10;
    s.batch.n = 2000;
    s.batch.vocabulary = 200;
    s.batch.skew = 1.1;
    s.modes = {ImportanceMode::kHuge, ImportanceMode::kUniform};
    s.migrate_every = 1;
    s.force_decay_every = 2;
    s.drift = 20;
    list.push_back(s);
  }
  if (include_large) {
    Scenario s = make("benchmark_shape_1M_zipf1.1_10M_W64k", 65536, 4, 32768, 20.f);
    s.steps = 3;
    s.batch.n = 1000000;
    s.batch.vocabulary = 10000000;
    s.batch.skew = 1.1;
    s.batch.importance = ImportanceMode::kUniform;
    s.vary_size = false;
    s.migrate_every = 1;
    s.force_decay_every = 2;
    list.push_back(s);
  }
  return list;
}

}  // namespace harness
}  // namespace cafe
