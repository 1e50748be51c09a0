#include "harness_common.h"

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <sstream>
#include <thread>

namespace cafe {
namespace harness {

// ------------------------------------------------------------------ Rng ---

uint64_t Rng::Next() {
  uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

double Rng::Uniform() { return static_cast<double>(Next() >> 11) * (1.0 / 9007199254740992.0); }

uint64_t Rng::Below(uint64_t bound) { return bound == 0 ? 0 : Next() % bound; }

// ----------------------------------------------------------------- Zipf ---

Zipf::Zipf(int64_t n, double s) : cdf_(static_cast<size_t>(std::max<int64_t>(n, 1))) {
  double total = 0.0;
  for (size_t i = 0; i < cdf_.size(); ++i) {
    total += std::pow(static_cast<double>(i + 1), -s);
    cdf_[i] = total;
  }
  for (double& c : cdf_) c /= total;
  cdf_.back() = 1.0;
}

int64_t Zipf::Sample(Rng& rng) const {
  const double u = rng.Uniform();
  const auto it = std::upper_bound(cdf_.begin(), cdf_.end(), u);
  const int64_t index = std::min<int64_t>(it - cdf_.begin(), n() - 1);
  return index + 1;
}

// ------------------------------------------------------------- Snapshot ---

SketchState Snapshot::view() { return {slots.data(), scores.data(), &mass, &batches}; }

Snapshot EmptySnapshot(const SketchConfig& config) {
  Snapshot s;
  const size_t slots = static_cast<size_t>(config.num_slots());
  s.slots.assign(slots, kEmptySlot);
  s.scores.assign(slots, 0.f);
  return s;
}

// --------------------------------------------------------- core backend ---

ParallelFor ThreadParallelFor(int threads) {
  return [threads](int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
    if (n <= 0) return;
    const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(threads, n));
    if (parts == 1) {
      fn(0, n);
      return;
    }
    std::vector<std::thread> pool;
    for (int64_t p = 1; p < parts; ++p)
      pool.emplace_back([&fn, p, parts, n] { fn(p * n / parts, (p + 1) * n / parts); });
    fn(0, n / parts);
    for (auto& t : pool) t.join();
  };
}

namespace {

// First invalid index by exactly the test of cafe::ValidateInsert, or -1.
int64_t FirstInvalid(const std::vector<float>& importance, const std::vector<int32_t>& tags,
                     int32_t tag_bits) {
  for (size_t i = 0; i < importance.size(); ++i) {
    const float v = importance[i];
    if (std::isnan(v) || std::isinf(v) || v < 0.f || tags[i] < 0 ||
        tags[i] >= (int64_t{1} << tag_bits))
      return static_cast<int64_t>(i);
  }
  return -1;
}

class CoreBackend : public Backend {
 public:
  explicit CoreBackend(int threads)
      : threads_(threads),
        parallel_for_(threads > 1 ? ThreadParallelFor(threads) : ParallelFor(SerialFor)) {}
  std::string name() const override { return "cpu-core"; }
  void Reset(const SketchConfig& config) override {
    config_ = config;
    state_ = EmptySnapshot(config);
  }
  InsertOutcome Insert(const std::vector<int64_t>& keys, const std::vector<float>& importance,
                       const std::vector<int32_t>& tags) override {
    InsertOutcome out;
    const int64_t n = static_cast<int64_t>(keys.size());
    const std::string problem = ValidateInsert(importance.data(), tags.data(), n, config_.tag_bits);
    out.status = FirstInvalid(importance, tags, config_.tag_bits);
    if (problem.empty() != (out.status < 0)) {
      std::fprintf(stderr, "harness bug: FirstInvalid disagrees with cafe::ValidateInsert\n");
      std::abort();
    }
    if (out.status >= 0) return out;
    // What the insert op passes: the sizes, tag bits and the insert rules.
    SketchConfig c;
    c.num_buckets = config_.num_buckets;
    c.slots_per_bucket = config_.slots_per_bucket;
    c.tag_bits = config_.tag_bits;
    c.second_sighting = config_.second_sighting;
    c.erode = config_.erode;
    cafe::Insert(c, state_.view(), keys.data(), importance.data(), tags.data(), n, threads_,
                 parallel_for_);
    return out;
  }
  void Query(const std::vector<int64_t>& ids, std::vector<int32_t>* rows,
             std::vector<int32_t>* levels) override {
    rows->assign(ids.size(), 0);
    levels->assign(ids.size(), 0);
    const ConstSketchState view{state_.slots.data(), state_.scores.data()};
    cafe::Query(config_, view, ids.data(), static_cast<int64_t>(ids.size()), rows->data(),
                levels->data(), parallel_for_);
  }
  MigrationResult Migrate(bool force_decay) override {
    return cafe::Migrate(config_, state_.view(), force_decay);
  }
  Snapshot Read() override { return state_; }

 private:
  int threads_;
  ParallelFor parallel_for_;
  SketchConfig config_;
  Snapshot state_;
};

}  // namespace

std::unique_ptr<Backend> MakeCoreBackend(int threads) {
  return std::unique_ptr<Backend>(new CoreBackend(threads));
}

// -------------------------------------------------------------- batches ---

namespace {

// The x with x ^ (x >> shift) == y.
uint64_t UnXorShift(uint64_t y, int shift) {
  uint64_t x = y;
  for (int i = 0; i <= 64 / shift; ++i) x = y ^ (x >> shift);
  return x;
}

// The inverse of an odd multiplier modulo 2^64 (Newton's iteration).
uint64_t InverseOdd(uint64_t a) {
  uint64_t x = a;  // correct to 3 bits
  for (int i = 0; i < 5; ++i) x *= 2 - a * x;
  return x;
}

}  // namespace

uint64_t Unmix64(uint64_t h) {
  uint64_t x = UnXorShift(h, 31);
  x *= InverseOdd(0x94d049bb133111ebULL);
  x = UnXorShift(x, 27);
  x *= InverseOdd(0xbf58476d1ce4e5b9ULL);
  return UnXorShift(x, 30);
}

int64_t KeyOf(int64_t rank, KeyMode mode) {
  switch (mode) {
    case KeyMode::kFingerprintPairs: {
      const uint64_t base = Mix64(static_cast<uint64_t>(rank >> 1) + 0x51ed27ULL);
      const uint64_t h = (base & 0xffffffff0000ffffULL) | (static_cast<uint64_t>(rank & 1) << 16);
      return static_cast<int64_t>(Unmix64(h));
    }
    case KeyMode::kRank:
      return rank;
    case KeyMode::kScrambled:
      return static_cast<int64_t>(
          Mix64(static_cast<uint64_t>(rank) * 0x9e3779b97f4a7c15ULL + 0x1234567ULL));
    case KeyMode::kExtreme: {
      static const int64_t kSpecial[] = {std::numeric_limits<int64_t>::min(),
                                         std::numeric_limits<int64_t>::max(),
                                         0,
                                         -1,
                                         1,
                                         std::numeric_limits<int64_t>::min() + 1,
                                         std::numeric_limits<int64_t>::max() - 1};
      if (rank >= 1 && rank <= 7) return kSpecial[rank - 1];
      const int64_t magnitude = rank << 20;
      return (rank & 1) ? -magnitude : magnitude;
    }
  }
  return rank;
}

namespace {

float DrawImportance(ImportanceMode mode, Rng& rng) {
  switch (mode) {
    case ImportanceMode::kOnes:
      return 1.f;
    case ImportanceMode::kUniform:
      return static_cast<float>(rng.Uniform() * 2.0);
    case ImportanceMode::kWide:
      return static_cast<float>(std::pow(10.0, -6.0 + 10.0 * rng.Uniform()));
    case ImportanceMode::kTiny: {
      // Denormals and values just above the normal range.
      const uint64_t pick = rng.Below(3);
      if (pick == 0) return std::ldexp(static_cast<float>(1 + rng.Below(64)), -149);
      if (pick == 1) return static_cast<float>(rng.Uniform() * 1e-38);
      return static_cast<float>(rng.Uniform() * 1e-36);
    }
    case ImportanceMode::kHuge:
      return static_cast<float>(rng.Uniform() * 3.0e38);
    case ImportanceMode::kZeros:
      return 0.f;
    case ImportanceMode::kMixedZeroNegZero: {
      const uint64_t pick = rng.Below(4);
      if (pick == 0) return 0.f;
      if (pick == 1) return -0.f;
      if (pick == 2) return 1.f;
      return static_cast<float>(rng.Uniform());
    }
  }
  return 1.f;
}

}  // namespace

void MakeBatch(const BatchSpec& spec, Rng& rng, const Zipf& zipf, std::vector<int64_t>* keys,
               std::vector<float>* importance, std::vector<int32_t>* tags) {
  const size_t n = static_cast<size_t>(spec.n);
  keys->resize(n);
  importance->resize(n);
  tags->resize(n);
  for (size_t i = 0; i < n; ++i) {
    const bool hot = spec.hot_fraction > 0.0 && rng.Uniform() < spec.hot_fraction;
    (*keys)[i] = KeyOf(spec.rank_offset + (hot ? 1 : zipf.Sample(rng)), spec.key_mode);
    (*importance)[i] = DrawImportance(spec.importance, rng);
    (*tags)[i] = static_cast<int32_t>(rng.Below(static_cast<uint64_t>(spec.max_tag) + 1));
  }
  if (spec.corrupt >= 0 && n > 0) {
    const size_t at = static_cast<size_t>(rng.Below(n));
    switch (spec.corrupt) {
      case 0: (*importance)[at] = std::numeric_limits<float>::quiet_NaN(); break;
      case 1: (*importance)[at] = std::numeric_limits<float>::infinity(); break;
      case 2: (*importance)[at] = -std::numeric_limits<float>::infinity(); break;
      case 3: (*importance)[at] = -0.5f; break;
      case 4: (*tags)[at] = rng.Below(2) ? -3 : kMaxTag + 1; break;
      default: {
        (*importance)[at] = std::numeric_limits<float>::quiet_NaN();
        (*tags)[at / 2] = -1;
        break;
      }
    }
  }
}

// ------------------------------------------------------------ scenarios ---

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

// ----------------------------------------------------------- comparison ---

namespace {

template <typename T>
bool SameBits(const T& a, const T& b) {
  return std::memcmp(&a, &b, sizeof(T)) == 0;
}

std::string Show(int64_t v) { return std::to_string(v); }
std::string Show(int32_t v) { return std::to_string(v); }
std::string Show(float v) {
  char buf[64];
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof(bits));
  std::snprintf(buf, sizeof(buf), "%.9g (0x%08x)", static_cast<double>(v), bits);
  return buf;
}

template <typename T>
bool CompareArray(const char* what, const std::vector<T>& a, const std::vector<T>& b,
                  std::vector<std::string>* diffs, int limit) {
  if (a.size() != b.size()) {
    diffs->push_back(std::string(what) + ": sizes " + std::to_string(a.size()) + " vs " +
                     std::to_string(b.size()));
    return false;
  }
  bool same = true;
  int64_t count = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (SameBits(a[i], b[i])) continue;
    same = false;
    if (count++ < limit)
      diffs->push_back(std::string(what) + "[" + std::to_string(i) + "]: " + Show(a[i]) + " vs " +
                       Show(b[i]));
  }
  if (count > limit)
    diffs->push_back(std::string(what) + ": " + std::to_string(count) + " differences in all");
  return same;
}

bool CompareEntries(const char* what, const std::vector<MigrationEntry>& a,
                    const std::vector<MigrationEntry>& b, std::vector<std::string>* diffs,
                    int limit) {
  bool same = a.size() == b.size();
  if (!same)
    diffs->push_back(std::string(what) + ": " + std::to_string(a.size()) + " vs " +
                     std::to_string(b.size()) + " entries");
  int count = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    if (a[i].fingerprint == b[i].fingerprint && a[i].tag == b[i].tag && a[i].row == b[i].row)
      continue;
    same = false;
    if (count++ < limit)
      diffs->push_back(std::string(what) + "[" + std::to_string(i) + "]: (" + Show(static_cast<int64_t>(a[i].fingerprint)) +
                       ", " + Show(a[i].tag) + ", " + Show(a[i].row) + ") vs (" +
                       Show(static_cast<int64_t>(b[i].fingerprint)) + ", " + Show(b[i].tag) + ", " + Show(b[i].row) + ")");
  }
  return same;
}

}  // namespace

bool SameSnapshot(const Snapshot& a, const Snapshot& b, std::vector<std::string>* diffs,
                  int limit) {
  bool same = true;
  same &= CompareArray("slots", a.slots, b.slots, diffs, limit);
  same &= CompareArray("scores", a.scores, b.scores, diffs, limit);
  if (!SameBits(a.mass, b.mass)) {
    same = false;
    diffs->push_back("mass: " + Show(a.mass) + " vs " + Show(b.mass));
  }
  if (a.batches != b.batches) {
    same = false;
    diffs->push_back("batches: " + Show(a.batches) + " vs " + Show(b.batches));
  }
  return same;
}

bool SameMigration(const MigrationResult& a, const MigrationResult& b,
                   std::vector<std::string>* diffs, int limit) {
  bool same = true;
  if (a.decayed != b.decayed) {
    same = false;
    diffs->push_back(std::string("decayed: ") + (a.decayed ? "true" : "false") + " vs " +
                     (b.decayed ? "true" : "false"));
  }
  same &= CompareEntries("demoted", a.demoted, b.demoted, diffs, limit);
  same &= CompareEntries("promoted", a.promoted, b.promoted, diffs, limit);
  return same;
}

// ------------------------------------------------------------ scenario ---

bool RunScenario(const Scenario& sc, Backend& reference, Backend& candidate) {
  const std::string problem = sc.config.Validate();
  if (!problem.empty()) {
    std::printf("FAIL %-40s invalid scenario config: %s\n", sc.name.c_str(), problem.c_str());
    return false;
  }
  reference.Reset(sc.config);
  candidate.Reset(sc.config);
  Rng rng(sc.seed);
  const Zipf zipf(sc.batch.vocabulary, sc.batch.skew);
  std::vector<std::string> diffs;
  std::string where;
  int64_t inserted = 0, invalid = 0, decays = 0, demoted = 0, promoted = 0, queried = 0;
  int64_t dangling_seen = 0;  // hot slots emptied by an underflow (see README)
  int migrations = 0;
  bool ok = true;
  std::vector<int64_t> keys, ids;
  std::vector<float> importance;
  std::vector<int32_t> tags, rows_a, rows_b, levels_a, levels_b;
  for (int step = 0; step < sc.steps && ok; ++step) {
    BatchSpec spec = sc.batch;
    spec.rank_offset = sc.batch.rank_offset + sc.drift * step;
    if (!sc.modes.empty()) spec.importance = sc.modes[static_cast<size_t>(step) % sc.modes.size()];
    if (sc.vary_size && step % 3 != 0 && spec.n > 1)
      spec.n = 1 + static_cast<int64_t>(rng.Below(static_cast<uint64_t>(spec.n)));
    if (sc.empty_every > 0 && step % sc.empty_every == sc.empty_every - 1) spec.n = 0;
    if (sc.corrupt_every > 0 && step % sc.corrupt_every == sc.corrupt_every - 1)
      spec.corrupt = static_cast<int>(rng.Below(6));
    MakeBatch(spec, rng, zipf, &keys, &importance, &tags);

    where = "insert step " + std::to_string(step) + " (n=" + std::to_string(spec.n) + ")";
    const InsertOutcome a = reference.Insert(keys, importance, tags);
    const InsertOutcome b = candidate.Insert(keys, importance, tags);
    if (a.status != b.status) {
      diffs.push_back("insert status: " + Show(a.status) + " vs " + Show(b.status));
      ok = false;
    }
    if (a.status >= 0) ++invalid;
    inserted += spec.n;
    ok = SameSnapshot(reference.Read(), candidate.Read(), &diffs) && ok;
    if (!ok) break;

    if (sc.migrate_every > 0 && (step + 1) % sc.migrate_every == 0) {
      ++migrations;
      const bool force = sc.force_decay_every > 0 && migrations % sc.force_decay_every == 0;
      where = "migrate after step " + std::to_string(step) + (force ? " (forced decay)" : "");
      const MigrationResult ma = reference.Migrate(force);
      const MigrationResult mb = candidate.Migrate(force);
      ok = SameMigration(ma, mb, &diffs) && ok;
      ok = SameSnapshot(reference.Read(), candidate.Read(), &diffs) && ok;
      {
        const Snapshot st = reference.Read();
        int64_t d = 0;
        for (size_t i = 0; i < st.scores.size(); ++i)
          d += (SlotEntry(st.slots[i]) >= 0 && !(st.scores[i] > 0.f)) ? 1 : 0;
        dangling_seen = std::max(dangling_seen, d);
      }
      decays += ma.decayed ? 1 : 0;
      demoted += static_cast<int64_t>(ma.demoted.size());
      promoted += static_cast<int64_t>(ma.promoted.size());
      if (!ok) break;
    }

    // Query the batch's keys plus unseen ones.
    ids.assign(keys.begin(), keys.end());
    for (int i = 0; i < 64; ++i)
      ids.push_back(KeyOf(1 + static_cast<int64_t>(rng.Below(2 * static_cast<uint64_t>(
                                  sc.batch.vocabulary))),
                          sc.batch.key_mode));
    where = "query after step " + std::to_string(step);
    reference.Query(ids, &rows_a, &levels_a);
    candidate.Query(ids, &rows_b, &levels_b);
    ok = CompareArray("query rows", rows_a, rows_b, &diffs, 5) && ok;
    ok = CompareArray("query levels", levels_a, levels_b, &diffs, 5) && ok;
    queried += static_cast<int64_t>(ids.size());
  }
  // Occupancy figures, to show the scenario exercised what it claims.
  const Snapshot final_state = reference.Read();
  int64_t occupied = 0, hot = 0, pending = 0;
  for (size_t s = 0; s < final_state.scores.size(); ++s) {
    occupied += final_state.scores[s] > 0.f ? 1 : 0;
    const int32_t e = SlotEntry(final_state.slots[s]);
    hot += e >= 0 ? 1 : 0;
    pending += e < 0 && MarkerPending(e) ? 1 : 0;
  }
  std::printf("%s %-40s %s vs %s: %d steps, %" PRId64 " keys inserted (%" PRId64
              " invalid batches), %" PRId64 " queried, %d migrations (%" PRId64
              " decays, %" PRId64 " demoted, %" PRId64 " promoted), final %" PRId64
              "/%zu slots occupied, %" PRId64 " hot, %" PRId64 " pending; max %" PRId64
              " empty hot slots\n",
              ok ? "PASS" : "FAIL", sc.name.c_str(), reference.name().c_str(),
              candidate.name().c_str(), sc.steps, inserted, invalid, queried, migrations, decays,
              demoted, promoted, occupied, final_state.scores.size(), hot, pending,
              dangling_seen);
  if (!ok) {
    std::printf("     first mismatch at %s:\n", where.c_str());
    for (const std::string& d : diffs) std::printf("       %s\n", d.c_str());
  }
  std::fflush(stdout);
  return ok;
}

// ------------------------------------------------------------ self-test ---

bool SelfTest() {
  bool ok = true;
  auto check = [&ok](bool cond, const char* what) {
    if (!cond) {
      std::printf("SELFTEST FAIL: %s\n", what);
      ok = false;
    }
  };
  {
    Rng r(0);
    check(r.Next() == 0xe220a8397b1dcdafULL, "splitmix64 reference value");
  }
  {
    const Zipf z(1000, 1.1);
    Rng r(7);
    int64_t first = 0;
    const int64_t draws = 200000;
    for (int64_t i = 0; i < draws; ++i) first += z.Sample(r) == 1 ? 1 : 0;
    double norm = 0.0;
    for (int i = 1; i <= 1000; ++i) norm += std::pow(i, -1.1);
    const double expected = draws / norm;
    check(std::fabs(static_cast<double>(first) - expected) < 0.05 * expected,
          "Zipf rank-1 frequency");
    Rng r2(9);
    bool in_range = true;
    for (int i = 0; i < 10000; ++i) {
      const int64_t k = z.Sample(r2);
      in_range &= k >= 1 && k <= 1000;
    }
    check(in_range, "Zipf ranks in [1, n]");
  }
  {
    BatchSpec spec;
    spec.n = 500;
    spec.corrupt = 5;
    const Zipf z(100, 1.1);
    std::vector<int64_t> k1, k2;
    std::vector<float> i1, i2;
    std::vector<int32_t> t1, t2;
    Rng a(3), b(3);
    MakeBatch(spec, a, z, &k1, &i1, &t1);
    MakeBatch(spec, b, z, &k2, &i2, &t2);
    check(k1 == k2 && t1 == t2 && std::memcmp(i1.data(), i2.data(), i1.size() * 4) == 0,
          "batches are deterministic");
    check(FirstInvalid(i1, t1, kMaxTagBits) >= 0, "corrupted batch is invalid");
  }
  {
    std::vector<int64_t> seen;
    for (int64_t r = 1; r <= 5000; ++r) seen.push_back(KeyOf(r, KeyMode::kExtreme));
    std::sort(seen.begin(), seen.end());
    check(std::adjacent_find(seen.begin(), seen.end()) == seen.end(), "extreme keys distinct");
  }
  {
    bool inverse = true, pairs = true;
    for (int64_t r = 0; r < 2000; ++r) {
      const uint64_t x = static_cast<uint64_t>(KeyOf(r, KeyMode::kScrambled));
      inverse &= Unmix64(Mix64(x)) == x;
    }
    for (int64_t m = 1; m <= 1000; ++m) {
      const int64_t a = KeyOf(2 * m, KeyMode::kFingerprintPairs);
      const int64_t b = KeyOf(2 * m + 1, KeyMode::kFingerprintPairs);
      pairs &= a != b && FingerprintOf(a) == FingerprintOf(b) && BucketOf(a, 16) == BucketOf(b, 16);
    }
    check(inverse, "Unmix64 inverts Mix64");
    check(pairs, "fingerprint pairs: distinct keys, same fingerprint and bucket");
  }
  {
    SketchConfig c;
    c.num_buckets = 4;
    c.slots_per_bucket = 2;
    c.hot_rows = 3;
    Snapshot a = EmptySnapshot(c), b = EmptySnapshot(c);
    std::vector<std::string> d;
    check(SameSnapshot(a, b, &d), "equal snapshots compare equal");
    b.scores[3] = -0.f;
    check(!SameSnapshot(a, b, &d), "-0.0 vs 0.0 is a difference");
    b = a;
    a.scores[1] = 1.f;
    b.scores[1] = std::nextafter(1.f, 2.f);
    check(!SameSnapshot(a, b, &d), "1-ulp difference is caught");
    b = a;
    b.mass = std::nextafter(0.f, 1.f);
    check(!SameSnapshot(a, b, &d), "mass difference is caught");
    b = a;
    b.slots[2] = SlotWord(1, kRowNone);
    check(!SameSnapshot(a, b, &d), "fingerprint difference is caught");
    b = a;
    b.slots[5] = SlotWord(0, 0);
    check(!SameSnapshot(a, b, &d), "entry difference is caught");
    MigrationResult m1, m2;
    m1.promoted.push_back({5, 1, 0});
    m2.promoted.push_back({5, 1, 1});
    check(!SameMigration(m1, m2, &d), "promoted row difference is caught");
  }
  std::printf("%s harness self-test\n", ok ? "PASS" : "FAIL");
  return ok;
}

}  // namespace harness
}  // namespace cafe
