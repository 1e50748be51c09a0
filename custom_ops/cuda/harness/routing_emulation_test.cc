// CPU-only check of the CafeRoute GPU pipeline (routing_kernels.cu): its
// per-thread bodies (routing_device_common.h) run on the host in kernel order
// -- a sequential compare-and-swap and min standing in for the atomics, a
// plain exclusive scan for CUB's -- and the result is compared bit for bit
// with the CPU core (cafe::Route) on random scenarios: lengths 0 to 20000,
// all-duplicate calls, extreme int64 ids, 1 to 26 features, one and two levels.
// Claims are made in both index orders (the GPU's order is arbitrary: the
// output must not depend on it). What this cannot check: the CUDA-only code
// (launch configuration, the real atomics, CUB).
//
// Build and run: custom_ops/cuda/run_emulation_test.sh (g++ only, no GPU).
#include <algorithm>
#include <climits>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "../../core/hotsketch.h"
#include "../../core/routing.h"
#include "route_emulation.h"

namespace {

template <typename T>
bool Same(const char* what, const std::vector<T>& a, const std::vector<T>& b,
          const std::string& scenario) {
  if (a == b) return true;
  std::printf("FAIL %s: %s differs (%zu vs %zu entries)\n", scenario.c_str(), what, a.size(),
              b.size());
  return false;
}

}  // namespace

int main() {
  std::mt19937_64 rng(7);
  cafe::SketchConfig config;
  config.num_buckets = 97;
  config.slots_per_bucket = 4;
  config.hot_rows = 40;
  config.tag_bits = 5;  // up to 26 features
  config.threshold = 6.f;
  config.demote_threshold = 6.f;
  config.medium_threshold = 2.f;
  const int64_t slots = config.num_slots();
  std::vector<int64_t> slot_words(slots, cafe::kEmptySlot);
  std::vector<float> scores(slots, 0.f);
  float mass = 0.f;
  int64_t batches = 0;
  cafe::SketchState state{slot_words.data(), scores.data(), &mass, &batches};
  const int64_t extremes[] = {INT64_MIN, INT64_MAX, 0, -1, 1, INT64_MIN + 1, INT64_MAX - 1};
  std::vector<int64_t> pool(extremes, extremes + 7);
  for (int i = 0; i < 300; ++i) pool.push_back(static_cast<int64_t>(rng()));
  std::exponential_distribution<float> exponential(1.f);
  for (int round = 0; round < 3; ++round) {  // hot, medium and cold keys
    std::vector<int64_t> batch(3000);
    std::vector<float> importance(3000);
    std::vector<int32_t> batch_tags(3000, 0);
    for (int i = 0; i < 3000; ++i) {
      batch[i] = pool[std::min<uint64_t>(rng() % 50, rng() % pool.size())];
      importance[i] = exponential(rng);
      batch_tags[i] = static_cast<int32_t>(rng() % 26);
    }
    cafe::Insert(config, state, batch.data(), importance.data(), batch_tags.data(), 3000, 1,
                 cafe::SerialFor);
    cafe::Migrate(config, state, false);
  }
  const cafe::ConstSketchState view{slot_words.data(), scores.data()};
  int failures = 0, scenarios = 0;
  for (int32_t features : {1, 2, 5, 26}) {
    for (bool multi : {false, true}) {
      cafe::RouteTables tables;
      int64_t offset = 0, medium_offset = 0;
      for (int32_t f = 0; f < features; ++f) {
        const int64_t size = 1 + static_cast<int64_t>(rng() % 50);
        tables.hashed_offsets.push_back(offset);
        tables.hashed_sizes.push_back(size);
        offset += size;
        if (multi) {
          const int64_t medium = 1 + static_cast<int64_t>(rng() % 20);
          tables.medium_offsets.push_back(medium_offset);
          tables.medium_sizes.push_back(medium);
          medium_offset += medium;
        }
      }
      for (int64_t n : {0, 1, 2, 17, 256, 3000, 20000}) {
        for (const char* kind : {"zipf", "all-duplicates", "extremes"}) {
          std::vector<int64_t> ids(n);
          std::vector<int32_t> feature_index(n);
          for (int64_t i = 0; i < n; ++i) {
            const std::string k = kind;
            ids[i] = k == "zipf"         ? pool[std::min<uint64_t>(rng() % 40, rng() % pool.size())]
                     : k == "extremes" ? extremes[rng() % 7]
                                       : pool[0];
            feature_index[i] = k == "all-duplicates" ? features - 1
                                                     : static_cast<int32_t>(rng() % features);
          }
          cafe::RouteResult expected;
          std::vector<int32_t> expected_inverse(n);
          cafe::Route(config, view, tables, ids.data(), feature_index.data(), n,
                      expected_inverse.data(), &expected, cafe::SerialFor);
          for (bool descending : {false, true}) {
            const std::string scenario = std::string(kind) + " n=" + std::to_string(n) +
                                         " features=" + std::to_string(features) +
                                         (multi ? " multi-level" : "") +
                                         (descending ? " claims descending" : "");
            std::vector<int32_t> inverse;
            const cafe::RouteResult got =
                cafe::harness::EmulateRoute(config, view, tables, ids, feature_index, descending, &inverse);
            const bool ok =
                Same("inverse", inverse, expected_inverse, scenario) &
                Same("keys", got.keys, expected.keys, scenario) &
                Same("feature_index", got.feature_index, expected.feature_index, scenario) &
                Same("hot_row", got.hot_row, expected.hot_row, scenario) &
                Same("level", got.level, expected.level, scenario) &
                Same("hashed_row", got.hashed_row, expected.hashed_row, scenario) &
                Same("medium_row", got.medium_row, expected.medium_row, scenario) &
                Same("read_hot", got.read_hot, expected.read_hot, scenario) &
                Same("read_hashed", got.read_hashed, expected.read_hashed, scenario) &
                Same("read_medium", got.read_medium, expected.read_medium, scenario) &
                Same("first_index", got.first_index, expected.first_index, scenario) &
                Same("medium_index", got.medium_index, expected.medium_index, scenario) &
                Same("occurrence_index", got.occurrence_index, expected.occurrence_index,
                     scenario);
            failures += !ok;
            ++scenarios;
          }
        }
      }
    }
  }
  std::printf("routing emulation: %d of %d scenarios match the core%s\n", scenarios - failures,
              scenarios, failures ? "" : " (PASS)");
  return failures == 0 ? 0 : 1;
}
