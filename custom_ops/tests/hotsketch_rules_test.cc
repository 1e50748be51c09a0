// The rules of the C++ HotSketch core (docs/sketch.md), checked one by one on
// sketches small enough to reason about slot by slot. Plain C++17, no test
// framework: every failed CHECK prints its line, and the exit status is the
// number of failures (0: all pass). tests/sketch/test_core_rules.py runs it; by hand:
//
//   g++ -std=c++17 -O2 -pthread custom_ops/tests/hotsketch_rules_test.cc custom_ops/core/*.cc -o /tmp/t && /tmp/t
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <thread>
#include <unordered_map>
#include <vector>

#include "../core/hotsketch.h"

namespace {

int checks = 0;
int failures = 0;

#define CHECK(cond)                                                                 \
  do {                                                                              \
    ++checks;                                                                       \
    if (!(cond)) {                                                                  \
      ++failures;                                                                   \
      std::printf("%s:%d: in %s: CHECK(%s) failed\n", __FILE__, __LINE__, __func__, \
                  #cond);                                                           \
    }                                                                               \
  } while (0)

using cafe::ColdMarker;
using cafe::FingerprintOf;
using cafe::HotEntry;
using cafe::SlotEntry;
using cafe::SlotFp;
using cafe::SlotWord;

constexpr int32_t kTagBits = 4;

// A config where nothing decays unless forced: the batches rule, a long period.
cafe::SketchConfig Config(int64_t buckets, int32_t slots, int32_t hot_rows) {
  cafe::SketchConfig c;
  c.num_buckets = buckets;
  c.slots_per_bucket = slots;
  c.hot_rows = hot_rows;
  c.tag_bits = kTagBits;
  c.threshold = 10.f;
  c.demote_threshold = 10.f;
  c.medium_threshold = 4.f;
  c.decay_rate = 0.5f;
  c.decay_rule = cafe::DecayRule::kBatches;
  c.decay_period = 1000;
  return c;
}

// ParallelFor over `threads` std::threads, each taking one contiguous range.
cafe::ParallelFor Threads(int threads) {
  return [threads](int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
      const int64_t begin = n * t / threads, end = n * (t + 1) / threads;
      if (begin < end) pool.emplace_back([&fn, begin, end] { fn(begin, end); });
    }
    for (std::thread& t : pool) t.join();
  };
}

// A sketch and its state, with the core's three operations.
struct Sketch {
  explicit Sketch(const cafe::SketchConfig& c)
      : config(c),
        slots(static_cast<size_t>(c.num_slots()), cafe::kEmptySlot),
        scores(static_cast<size_t>(c.num_slots()), 0.f) {
    if (!c.Validate().empty()) std::printf("bad test config: %s\n", c.Validate().c_str());
  }
  cafe::SketchState State() { return {slots.data(), scores.data(), &mass, &batches}; }

  void Insert(const std::vector<int64_t>& keys, const std::vector<float>& importance,
              const std::vector<int32_t>& feature_index, int threads = 1) {
    CHECK(cafe::ValidateInsert(importance.data(), feature_index.data(),
                               static_cast<int64_t>(keys.size()), kTagBits)
              .empty());
    cafe::Insert(config, State(), keys.data(), importance.data(), feature_index.data(),
                 static_cast<int64_t>(keys.size()), threads,
                 threads == 1 ? cafe::ParallelFor(cafe::SerialFor) : Threads(threads));
  }
  // One key, tag 1.
  void Insert(int64_t key, float v) { Insert({key}, {v}, {1}); }

  // {row, level} of one key.
  std::pair<int32_t, int32_t> Query(int64_t key) const {
    int32_t row = 0, level = 0;
    cafe::Query(config, {slots.data(), scores.data()}, &key, 1, &row, &level, cafe::SerialFor);
    return {row, level};
  }
  cafe::MigrationResult Migrate(bool force_decay = false) {
    return cafe::Migrate(config, State(), force_decay);
  }

  // The slot holding `key`'s fingerprint (occupied), or -1.
  int64_t SlotOf(int64_t key) const {
    const int64_t base = cafe::BucketOf(key, config.num_buckets) * config.slots_per_bucket;
    for (int64_t s = base; s < base + config.slots_per_bucket; ++s) {
      if (scores[s] > 0.f && SlotFp(slots[s]) == FingerprintOf(key)) return s;
    }
    return -1;
  }
  bool Pending(int64_t key) const {
    const int32_t e = SlotEntry(slots[SlotOf(key)]);
    return e < 0 && cafe::MarkerPending(e);
  }
  int32_t Row(int64_t key) const {
    const int32_t e = SlotEntry(slots[SlotOf(key)]);
    return e >= 0 ? cafe::EntryRow(e, kTagBits) : -1;
  }

  cafe::SketchConfig config;
  std::vector<int64_t> slots;
  std::vector<float> scores;
  float mass = 0.f;
  int64_t batches = 0;
};

bool SameBits(const Sketch& a, const Sketch& b) {
  return a.slots == b.slots &&
         std::memcmp(a.scores.data(), b.scores.data(), a.scores.size() * sizeof(float)) == 0 &&
         std::memcmp(&a.mass, &b.mass, sizeof(float)) == 0 && a.batches == b.batches;
}

// One bucket (W = 1) holds every key, so slot s is slot s of that bucket.

void TestHitAddsToTheSlot() {
  Sketch k(Config(1, 2, 4));
  k.Insert(7, 1.5f);
  k.Insert(7, 2.f);
  CHECK(k.SlotOf(7) == 0);
  CHECK(k.scores[0] == 3.5f);
  CHECK(k.scores[1] == 0.f);  // the second slot stays empty
  CHECK(k.batches == 2 && k.mass == 3.5f);
}

void TestMissTakesTheFirstEmptySlot() {
  Sketch k(Config(1, 3, 4));
  k.Insert({5, 9}, {1.f, 2.f}, {3, 2});
  // Keys enter in ascending key order: 5 takes slot 0, 9 slot 1, not pending.
  CHECK(k.slots[0] == SlotWord(FingerprintOf(5), ColdMarker(3, false)));
  CHECK(k.slots[1] == SlotWord(FingerprintOf(9), ColdMarker(2, false)));
  CHECK(k.scores[0] == 1.f && k.scores[1] == 2.f);
  CHECK(k.slots[2] == cafe::kEmptySlot && k.scores[2] == 0.f);
}

void TestDuplicatesSumInInputOrderAndKeepTheSmallestTag() {
  Sketch k(Config(1, 2, 4));
  // In input order (3 + 1e8) + 3 rounds to 1e8; any other order gives 1e8 + 8.
  k.Insert({4, 4, 4}, {3.f, 1e8f, 3.f}, {9, 3, 5});
  CHECK(k.scores[k.SlotOf(4)] == 1e8f);
  CHECK(k.mass == 1e8f + 8.f);  // the mass is the batch's pairwise sum: (3 + 3) + 1e8
  CHECK(cafe::MarkerTag(SlotEntry(k.slots[k.SlotOf(4)])) == 3);
  k.Insert({6}, {0.f}, {1});  // a zero sum changes nothing
  CHECK(k.SlotOf(6) == -1);
}

void TestSpaceSavingReplacementInheritsTheScore() {
  cafe::SketchConfig c = Config(1, 2, 4);
  c.erode = false;
  Sketch k(c);
  k.Insert({1, 2}, {5.f, 3.f}, {1, 1});
  k.Insert({3}, {1.f}, {2});
  // The victim is the smallest non-hot slot (key 2's); the newcomer inherits.
  CHECK(k.SlotOf(2) == -1);
  CHECK(k.SlotOf(3) == 1);
  CHECK(k.scores[1] == 4.f);
  CHECK(k.Pending(3));
  CHECK(cafe::MarkerTag(SlotEntry(k.slots[1])) == 2);
  // Ties between the smallest scores: the highest slot index is the victim.
  Sketch t(c);
  t.Insert({1, 2}, {3.f, 3.f}, {1, 1});
  t.Insert(3, 1.f);
  CHECK(t.SlotOf(1) == 0 && t.SlotOf(3) == 1);
}

void TestErosion() {
  Sketch k(Config(1, 2, 4));  // erode = true, the default
  k.Insert({1, 2}, {5.f, 3.f}, {1, 1});
  k.Insert(3, 1.f);  // smaller than the victim: the victim wears down, 3 is not recorded
  CHECK(k.SlotOf(3) == -1);
  CHECK(k.scores[k.SlotOf(2)] == 2.f);
  k.Insert(3, 6.f);  // larger: 3 takes the slot with the excess
  CHECK(k.SlotOf(2) == -1 && k.SlotOf(3) == 1);
  CHECK(k.scores[1] == 4.f && k.Pending(3));
  k.Insert(8, 4.f);  // exactly the victim's score: the slot empties
  CHECK(k.SlotOf(8) == -1 && k.SlotOf(3) == -1);
  CHECK(k.slots[1] == cafe::kEmptySlot && k.scores[1] == 0.f);
}

void TestAllHotBucketDropsTheUpdate() {
  Sketch k(Config(1, 2, 4));
  k.Insert({1, 2}, {20.f, 30.f}, {1, 1});
  CHECK(k.Migrate().promoted.size() == 2);
  const std::vector<int64_t> slots = k.slots;
  const std::vector<float> scores = k.scores;
  k.Insert(3, 100.f);
  CHECK(k.slots == slots && k.scores == scores);
  CHECK(k.SlotOf(3) == -1);
  CHECK(k.mass == 150.f);  // the mass still counts it
}

void TestSecondSighting() {
  cafe::SketchConfig c = Config(1, 1, 4);
  c.erode = false;  // the takeover inherits a score above the threshold
  {
    Sketch k(c);
    k.Insert(1, 50.f);
    k.Insert(2, 1.f);  // takes slot 0 over with score 51, seen once
    CHECK(k.Pending(2));
    CHECK(k.Migrate().promoted.empty());
    k.Insert(2, 1.f);  // seen again: promotable
    CHECK(!k.Pending(2));
    CHECK(k.Migrate().promoted.size() == 1 && k.Row(2) == 0);
  }
  {
    Sketch k(c);
    k.Insert(1, 50.f);
    k.Insert({2, 2}, {0.5f, 0.5f}, {1, 1});  // twice in the batch: sighted
    CHECK(!k.Pending(2));
    CHECK(k.Migrate().promoted.size() == 1);
  }
  {
    c.second_sighting = false;  // the paper's rule: promotable at once
    Sketch k(c);
    k.Insert(1, 50.f);
    k.Insert(2, 1.f);
    CHECK(!k.Pending(2));
    CHECK(k.Migrate().promoted.size() == 1);
  }
}

void TestQueryLevels() {
  Sketch k(Config(1, 4, 4));
  k.Insert({1, 2, 3}, {20.f, 4.f, 3.f}, {1, 1, 1});
  k.Migrate();  // 1 is hot (>= threshold 10), in row 0
  CHECK(k.Query(1) == std::make_pair(0, cafe::kLevelHot));
  CHECK(k.Query(2) == std::make_pair(-1, cafe::kLevelMedium));  // score == medium threshold
  CHECK(k.Query(3) == std::make_pair(-1, cafe::kLevelCold));
  CHECK(k.Query(4) == std::make_pair(-1, cafe::kLevelCold));  // absent
  // The same through the usual slot counts (the SIMD scan) and an odd one.
  for (int32_t c : {1, 2, 3, 8}) {
    Sketch w(Config(64, c, 64));
    std::vector<int64_t> keys;
    std::vector<float> importance;
    for (int64_t key = 0; key < 200; ++key) {
      keys.push_back(key);
      importance.push_back(static_cast<float>(key % 25));
    }
    w.Insert(keys, importance, std::vector<int32_t>(keys.size(), 1));
    w.Migrate();
    bool all = true;
    for (int64_t key = 0; key < 300; ++key) {
      const int64_t s = w.SlotOf(key);
      const int32_t level = s < 0 ? cafe::kLevelCold
                            : w.Row(key) >= 0 ? cafe::kLevelHot
                            : w.scores[s] >= 4.f ? cafe::kLevelMedium : cafe::kLevelCold;
      all &= w.Query(key) == std::make_pair(s < 0 ? -1 : w.Row(key), level);
    }
    CHECK(all);
  }
}

void TestDecayAndDemotion() {
  Sketch k(Config(1, 4, 4));
  k.Insert({1, 2, 3}, {40.f, 16.f, 12.f}, {1, 2, 3});
  CHECK(k.Migrate().promoted.size() == 3);
  CHECK(!k.Migrate().decayed);  // batches rule: 1 of 1000 batches, no decay due
  const cafe::MigrationResult r = k.Migrate(/*force_decay=*/true);
  CHECK(r.decayed);
  CHECK(k.scores[k.SlotOf(1)] == 20.f && k.scores[k.SlotOf(2)] == 8.f &&
        k.scores[k.SlotOf(3)] == 6.f);
  // Below the demote threshold (10): demoted in slot order, rows freed.
  CHECK(r.demoted.size() == 2);
  CHECK(r.demoted[0].fingerprint == FingerprintOf(2) && r.demoted[0].tag == 2);
  CHECK(r.demoted[1].fingerprint == FingerprintOf(3) && r.demoted[1].tag == 3);
  CHECK(k.Row(2) == -1 && k.Row(3) == -1 && k.Row(1) >= 0);
  CHECK(SlotEntry(k.slots[k.SlotOf(2)]) == ColdMarker(2, false));
  CHECK(k.batches == 0);

  // The batches rule decays once per whole period due.
  cafe::SketchConfig c = Config(1, 1, 1);
  c.decay_period = 2;
  Sketch p(c);
  for (int b = 0; b < 5; ++b) p.Insert(1, 1.f);
  CHECK(p.Migrate().decayed);
  CHECK(p.scores[0] == 5.f * 0.25f && p.batches == 1);  // two periods, one batch left

  // A score that underflows to 0 empties its slot.
  cafe::SketchConfig u = Config(1, 1, 1);
  u.decay_rate = 1e-30f;
  Sketch e(u);
  e.Insert(1, 1.f);
  e.Migrate(true);
  e.Migrate(true);
  CHECK(e.slots[0] == cafe::kEmptySlot && e.scores[0] == 0.f);
}

void TestPromotionOrderAndFreeRows() {
  Sketch k(Config(1, 8, 3));
  k.Insert({1}, {50.f}, {1});
  k.Migrate();
  CHECK(k.Row(1) == 0);
  // Row 0 is held; candidates by score descending take rows 1, 2; the rest wait.
  k.Insert({2, 3, 4, 5}, {11.f, 30.f, 20.f, 9.f}, {1, 1, 1, 1});
  const cafe::MigrationResult r = k.Migrate();
  CHECK(r.promoted.size() == 2);
  CHECK(r.promoted[0].fingerprint == FingerprintOf(3) && r.promoted[0].row == 1);
  CHECK(r.promoted[1].fingerprint == FingerprintOf(4) && r.promoted[1].row == 2);
  CHECK(k.Row(2) == -1 && k.Row(5) == -1);  // 5 is below the threshold anyway
  // Equal scores: fingerprint ascending.
  Sketch t(Config(1, 4, 4));
  t.Insert({1, 2, 3}, {15.f, 15.f, 15.f}, {1, 1, 1});
  const cafe::MigrationResult tie = t.Migrate();
  bool ascending = tie.promoted.size() == 3;
  for (size_t i = 1; ascending && i < tie.promoted.size(); ++i) {
    ascending = tie.promoted[i - 1].fingerprint < tie.promoted[i].fingerprint &&
                tie.promoted[i - 1].row < tie.promoted[i].row;
  }
  CHECK(ascending);
}

void TestSwapMargin() {
  cafe::SketchConfig c = Config(1, 4, 1);
  c.swap_margin = 2.f;
  Sketch k(c);
  k.Insert(1, 15.f);
  k.Migrate();
  k.Insert(2, 29.f);  // not more than 2x key 1's 15: no swap
  CHECK(k.Migrate().demoted.empty() && k.Row(1) == 0);
  k.Insert(2, 2.f);  // 31 > 2 * 15: key 2 displaces key 1 and takes its row
  const cafe::MigrationResult r = k.Migrate();
  CHECK(r.demoted.size() == 1 && r.demoted[0].fingerprint == FingerprintOf(1));
  CHECK(k.Row(1) == -1 && k.Row(2) == 0);
}

void TestSameStateForEveryThreadCount() {
  std::mt19937_64 rng(3);
  std::vector<int64_t> keys(300000);
  std::vector<float> importance(keys.size());
  std::vector<int32_t> feature_index(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    keys[i] = static_cast<int64_t>(rng() % 50000) - 20000;  // duplicates, negative keys
    importance[i] = static_cast<float>(rng() % 1000) / 7.f;
    feature_index[i] = static_cast<int32_t>(rng() % 16);
  }
  cafe::SketchConfig c = Config(3000, 4, 512);  // W not a power of two
  Sketch serial(c), threaded(c);
  for (int step = 0; step < 3; ++step) {
    serial.Insert(keys, importance, feature_index, 1);
    threaded.Insert(keys, importance, feature_index, 7);
    serial.Migrate();
    threaded.Migrate();
  }
  CHECK(SameBits(serial, threaded));
  // No decay was due: the mass is the three batches' pairwise sums, added one by one.
  const float batch_mass = cafe::PairwiseSum(importance.data(), 300000);
  CHECK(serial.mass == (batch_mass + batch_mass) + batch_mass);
  std::vector<int32_t> rows1(keys.size()), levels1(keys.size()), rows7(keys.size()),
      levels7(keys.size());
  cafe::Query(c, {serial.slots.data(), serial.scores.data()}, keys.data(),
              static_cast<int64_t>(keys.size()), rows1.data(), levels1.data(), cafe::SerialFor);
  cafe::Query(c, {serial.slots.data(), serial.scores.data()}, keys.data(),
              static_cast<int64_t>(keys.size()), rows7.data(), levels7.data(), Threads(7));
  CHECK(rows1 == rows7 && levels1 == levels7);
}

void TestFingerprintFalseMatchesShareASlot() {
  // Two distinct keys with one fingerprint (a birthday search over 32 bits).
  std::unordered_map<uint32_t, int64_t> seen;
  int64_t a = -1, b = -1;
  for (int64_t key = 1; a < 0; ++key) {
    auto it = seen.emplace(FingerprintOf(key), key);
    if (!it.second) a = it.first->second, b = key;
  }
  Sketch k(Config(1, 2, 4));  // one bucket: both keys in it
  k.Insert({a, b}, {6.f, 7.f}, {1, 2});
  // Distinct keys of one batch: the first in key order takes the slot, the second hits it.
  CHECK(k.SlotOf(a) == 0 && k.SlotOf(b) == 0);
  CHECK(k.scores[0] == 13.f && k.scores[1] == 0.f);
  CHECK(cafe::MarkerTag(SlotEntry(k.slots[0])) == 1);
  k.Migrate();
  CHECK(k.Query(a) == k.Query(b) && k.Query(b).second == cafe::kLevelHot);
}

}  // namespace

int main() {
  TestHitAddsToTheSlot();
  TestMissTakesTheFirstEmptySlot();
  TestDuplicatesSumInInputOrderAndKeepTheSmallestTag();
  TestSpaceSavingReplacementInheritsTheScore();
  TestErosion();
  TestAllHotBucketDropsTheUpdate();
  TestSecondSighting();
  TestQueryLevels();
  TestDecayAndDemotion();
  TestPromotionOrderAndFreeRows();
  TestSwapMargin();
  TestSameStateForEveryThreadCount();
  TestFingerprintFalseMatchesShareASlot();
  std::printf("%s: %d checks, %d failed\n", failures == 0 ? "PASS" : "FAIL", checks, failures);
  return failures == 0 ? 0 : 1;
}
