// Standalone driver for the HotSketch C++ core (no TensorFlow): timing of
// Insert / Query on the benchmark's workload, and a bit-exactness check of the
// core against a deliberately naive restatement of the insert (docs/sketch.md).
//
// Build (from the repository root):
//   g++ -std=c++17 -O3 -g -pthread benchmarks/core_bench.cc custom_ops/core/*.cc
//       -o /tmp/core_bench
// Run:
//   /tmp/core_bench bench [n=1048576] [repeats=5] [threads=2] [phase=all|insert|query]
//   /tmp/core_bench verify [rounds=300]
//   /tmp/core_bench occurrences [n=106496] [repeats=50]
//   /tmp/core_bench route [ids_per_feature=4096] [repeats=200]
// Deterministic profile (threads=1; read the inclusive cost of cafe::Insert and cafe::Query,
// two calls of each):
//   valgrind --tool=callgrind /tmp/core_bench bench 1048576 1 1
//   callgrind_annotate --inclusive=yes callgrind.out.<pid>
// The workload is the one of benchmarks/sketch_throughput.py: ids from the
// finite Zipf(1.1) over 10M distinct ids, W = 65536 buckets, c = 4, unit
// importance, the same batch inserted repeatedly, then a migration, then
// queries of that batch. The Zipf ids are cached in /tmp (they take a while
// to draw under valgrind).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <random>
#include <mutex>
#include <string>
#include <thread>
#include <time.h>
#include <vector>

#include "../custom_ops/core/hotsketch.h"
#include "../custom_ops/core/occurrences.h"
#include "../custom_ops/core/routing.h"

#if defined(__SSE2__)
#include <xmmintrin.h>
#endif

namespace {

// ---- a small persistent thread pool: ParallelFor splits [0, n) into `threads` ranges -----
class Pool {
 public:
  explicit Pool(int threads) : threads_(std::max(1, threads)) {
    for (int t = 1; t < threads_; ++t) workers_.emplace_back([this, t] { Loop(t); });
  }
  ~Pool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& w : workers_) w.join();
  }
  int threads() const { return threads_; }

  void Run(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
    if (n <= 0) return;
    const int parts = static_cast<int>(std::min<int64_t>(threads_, n));
    if (parts == 1) {
      fn(0, n);
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      fn_ = &fn;
      n_ = n;
      parts_ = parts;
      pending_ = parts - 1;
      ++generation_;
    }
    cv_.notify_all();
    fn(0, n / parts);
    std::unique_lock<std::mutex> lock(mu_);
    done_cv_.wait(lock, [this] { return pending_ == 0; });
  }

  cafe::ParallelFor AsParallelFor() {
    return [this](int64_t n, const std::function<void(int64_t, int64_t)>& fn) { Run(n, fn); };
  }

 private:
  void Loop(int t) {
    uint64_t seen = 0;
    for (;;) {
      const std::function<void(int64_t, int64_t)>* fn;
      int64_t n;
      int parts;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
        fn = fn_;
        n = n_;
        parts = parts_;
      }
      if (t < parts) (*fn)(n * t / parts, n * (t + 1) / parts);
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (t < parts && --pending_ == 0) done_cv_.notify_one();
      }
    }
  }

  int threads_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
  int64_t n_ = 0;
  int parts_ = 0;
  int pending_ = 0;
  uint64_t generation_ = 0;
  bool stop_ = false;
};

uint64_t SplitMix(uint64_t* state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
  return cafe::Mix64(z);
}
double Uniform(uint64_t* state) { return (SplitMix(state) >> 11) * 0x1.0p-53; }

// n ids from the finite Zipf(alpha) over `distinct` ranks, scattered over int64.
std::vector<int64_t> ZipfIds(int64_t n, int64_t distinct, double alpha, uint64_t seed) {
  char path[256];
  std::snprintf(path, sizeof(path), "/tmp/core_bench_zipf_%lld_%lld_%g_%llu.bin",
                static_cast<long long>(n), static_cast<long long>(distinct), alpha,
                static_cast<unsigned long long>(seed));
  std::vector<int64_t> ids(n);
  if (FILE* f = std::fopen(path, "rb")) {
    const size_t got = std::fread(ids.data(), sizeof(int64_t), n, f);
    std::fclose(f);
    if (static_cast<int64_t>(got) == n) return ids;
  }
  std::vector<double> cdf(distinct);
  double total = 0;
  for (int64_t r = 0; r < distinct; ++r) cdf[r] = total += std::pow(r + 1.0, -alpha);
  uint64_t state = seed;
  for (int64_t i = 0; i < n; ++i) {
    const double u = Uniform(&state) * total;
    const uint64_t rank = std::lower_bound(cdf.begin(), cdf.end(), u) - cdf.begin() + 1;
    ids[i] = static_cast<int64_t>(rank * 0x9E3779B97F4A7C15ULL);
  }
  if (FILE* f = std::fopen(path, "wb")) {
    std::fwrite(ids.data(), sizeof(int64_t), n, f);
    std::fclose(f);
  }
  return ids;
}

struct OwnedState {
  std::vector<int64_t> slots;  // SlotWord(fingerprint, entry)
  std::vector<float> scores;
  float mass = 0.f;
  int64_t batches = 0;

  explicit OwnedState(int64_t num_slots) : slots(num_slots, cafe::kEmptySlot), scores(num_slots, 0.f) {}
  cafe::SketchState View() { return {slots.data(), scores.data(), &mass, &batches}; }
  cafe::ConstSketchState ConstView() const { return {slots.data(), scores.data()}; }
  bool operator==(const OwnedState& o) const {
    auto bits_equal = [](const std::vector<float>& a, const std::vector<float>& b) {
      return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * 4) == 0;
    };
    return slots == o.slots && bits_equal(scores, o.scores) &&
           std::memcmp(&mass, &o.mass, 4) == 0 && batches == o.batches;
  }
};

double Seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// CPU time of the whole process (all threads): on a machine shared with other
// jobs it is much steadier than wall time (it does not count time spent
// waiting for a core), and with threads=1 it is the call's cost.
double CpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// The median ms of each of `calls` over `repeats` rounds, each round calling every one in
// turn (interleaved, so machine noise hits all alike).
std::vector<double> InterleavedMedianMs(const std::vector<std::function<void()>>& calls,
                                        int repeats) {
  std::vector<std::vector<double>> ms(calls.size());
  for (int r = 0; r < repeats; ++r) {
    for (size_t k = 0; k < calls.size(); ++k) {
      const double start = Seconds();
      calls[k]();
      ms[k].push_back(1000 * (Seconds() - start));
    }
  }
  std::vector<double> median;
  for (std::vector<double>& m : ms) {
    std::sort(m.begin(), m.end());
    median.push_back(m[m.size() / 2]);
  }
  return median;
}

int Bench(int64_t n, int repeats, int threads, const std::string& phase) {
  const int64_t W = 65536;
  cafe::SketchConfig config;
  config.num_buckets = W;
  config.slots_per_bucket = 4;
  config.hot_rows = W;
  config.threshold = 500.f;
  config.demote_threshold = 500.f;
  config.medium_threshold = 500.f;
  const std::vector<int64_t> ids = ZipfIds(n, 10'000'000, 1.1, 0);
  const std::vector<float> importance(n, 1.f);
  const std::vector<int32_t> tags(n, 0);
  Pool pool(threads);
  const cafe::ParallelFor pf = pool.AsParallelFor();
  OwnedState state(config.num_slots());
  const bool do_insert = phase != "query";
  const bool do_query = phase != "insert";
  double best_insert = 1e30, best_query = 1e30, cpu_insert = 1e30, cpu_query = 1e30;
  for (int r = 0; r < (do_insert ? repeats + 1 : 1); ++r) {  // the first one is a warm-up
    const double t0 = Seconds(), c0 = CpuSeconds();
    cafe::Insert(config, state.View(), ids.data(), importance.data(), tags.data(), n, threads, pf);
    if (r > 0 || !do_insert) {
      best_insert = std::min(best_insert, Seconds() - t0);
      cpu_insert = std::min(cpu_insert, CpuSeconds() - c0);
    }
  }
  const cafe::MigrationResult migrated = cafe::Migrate(config, state.View(), false);
  std::vector<int32_t> out_rows(n), out_levels(n);
  int64_t hot = 0;
  if (do_query) {
    for (int r = 0; r < repeats + 1; ++r) {
      const double t0 = Seconds(), c0 = CpuSeconds();
      cafe::Query(config, state.ConstView(), ids.data(), n, out_rows.data(), out_levels.data(), pf);
      if (r > 0) {
        best_query = std::min(best_query, Seconds() - t0);
        cpu_query = std::min(cpu_query, CpuSeconds() - c0);
      }
    }
    for (int64_t i = 0; i < n; ++i) hot += out_levels[i] == cafe::kLevelHot;
  }
  uint64_t digest = 0;
  for (int64_t s = 0; s < config.num_slots(); ++s) {
    uint32_t bits;
    std::memcpy(&bits, &state.scores[s], 4);
    digest = cafe::Mix64(digest ^ static_cast<uint64_t>(state.slots[s]) ^ bits);
  }
  std::printf("n=%lld threads=%d promoted=%zu hot_queries=%lld state_digest=%016llx\n",
              static_cast<long long>(n), threads, migrated.promoted.size(),
              static_cast<long long>(hot), static_cast<unsigned long long>(digest));
  if (do_insert)
    std::printf("insert: %8.3f ms  %7.1f M keys/s  (cpu %8.3f ms)\n", best_insert * 1e3,
                n / best_insert / 1e6, cpu_insert * 1e3);
  if (do_query)
    std::printf("query:  %8.3f ms  %7.1f M keys/s  (cpu %8.3f ms)\n", best_query * 1e3,
                n / best_query / 1e6, cpu_query * 1e3);
  return 0;
}

// ---- naive restatement of the batch insert (the oracle of `verify`) ----------------------
float NaivePairwiseSum(const float* v, int64_t n) {
  if (n <= 0) return 0.f;
  int64_t padded = 1;
  while (padded < n) padded <<= 1;
  std::vector<float> x(padded, 0.f);
  for (int64_t i = 0; i < n; ++i) x[i] = cafe::FlushSubnormal(v[i]);
  for (int64_t half = padded / 2; half >= 1; half /= 2)
    for (int64_t i = 0; i < half; ++i) x[i] += x[i + half];
  return x[0];
}

void NaiveInsert(const cafe::SketchConfig& config, OwnedState* st, const int64_t* keys,
                 const float* importance, const int32_t* tags, int64_t n) {
  if (n <= 0) return;
  st->mass += NaivePairwiseSum(importance, n);
  st->batches += 1;
  struct Merged {
    float v;
    int32_t tag;
    int64_t count;
  };
  std::map<int64_t, Merged> distinct;  // ascending key order
  for (int64_t i = 0; i < n; ++i) {
    auto it = distinct.find(keys[i]);
    if (it == distinct.end()) {
      distinct[keys[i]] = {0.f + cafe::FlushSubnormal(importance[i]), tags[i], 1};
    } else {
      it->second.v += cafe::FlushSubnormal(importance[i]);
      it->second.tag = std::min(it->second.tag, tags[i]);
      it->second.count += 1;
    }
  }
  const int c = config.slots_per_bucket;
  for (const auto& [key, value] : distinct) {
    const float v = value.v;
    if (!(v > 0.f)) continue;
    const bool sighted = value.count > 1 || !config.second_sighting;
    const uint64_t h = cafe::Mix64(static_cast<uint64_t>(key));
    const int64_t base = static_cast<int64_t>(h % static_cast<uint64_t>(config.num_buckets)) * c;
    const uint32_t fp = static_cast<uint32_t>(h >> 32);  // slots match fingerprints
    int hit = -1, empty = -1;
    for (int j = 0; j < c; ++j) {
      if (st->scores[base + j] > 0.f) {
        if (hit < 0 && cafe::SlotFp(st->slots[base + j]) == fp) hit = j;
      } else if (empty < 0) {
        empty = j;
      }
    }
    if (hit >= 0) {
      st->scores[base + hit] += v;
      const int32_t m = cafe::SlotEntry(st->slots[base + hit]);
      if (m < 0 && cafe::MarkerPending(m))
        st->slots[base + hit] = cafe::SlotWord(fp, cafe::ColdMarker(cafe::MarkerTag(m), false));
    } else if (empty >= 0) {
      st->slots[base + empty] = cafe::SlotWord(fp, cafe::ColdMarker(value.tag, false));
      st->scores[base + empty] = v;
    } else {
      int victim = -1;
      for (int j = 0; j < c; ++j) {
        if (cafe::SlotEntry(st->slots[base + j]) >= 0) continue;
        if (victim < 0 || st->scores[base + j] <= st->scores[base + victim]) victim = j;
      }
      if (victim < 0) continue;
      const int64_t s = base + victim;
      const float old = st->scores[s];
      if (config.erode && !(cafe::FlushSubnormal(v - old) > 0.f)) {
        st->scores[s] = cafe::FlushSubnormal(old - v);
        if (!(st->scores[s] > 0.f)) {
          st->slots[s] = cafe::kEmptySlot;
          st->scores[s] = 0.f;
        }
        continue;
      }
      st->scores[s] = config.erode ? cafe::FlushSubnormal(v - old) : old + v;
      st->slots[s] = cafe::SlotWord(fp, cafe::ColdMarker(value.tag, !sighted));
    }
  }
}

void NaiveQuery(const cafe::SketchConfig& config, const OwnedState& st, const int64_t* keys,
                int64_t n, int32_t* rows, int32_t* levels) {
  const int c = config.slots_per_bucket;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t base = cafe::BucketOf(keys[i], config.num_buckets) * c;
    const uint32_t fp = cafe::FingerprintOf(keys[i]);
    rows[i] = -1;
    levels[i] = cafe::kLevelCold;
    for (int j = 0; j < c; ++j) {
      if (st.scores[base + j] > 0.f && cafe::SlotFp(st.slots[base + j]) == fp) {
        const int32_t e = cafe::SlotEntry(st.slots[base + j]);  // a cold marker: not hot
        rows[i] = e >= 0 ? cafe::EntryRow(e, config.tag_bits) : cafe::kRowNone;
        levels[i] = rows[i] >= 0 ? cafe::kLevelHot
                                 : (st.scores[base + j] >= config.medium_threshold
                                        ? cafe::kLevelMedium
                                        : cafe::kLevelCold);
        break;
      }
    }
  }
}

int Verify(int rounds) {
  uint64_t rng = 12345;
  auto below = [&](uint64_t m) { return SplitMix(&rng) % m; };
  Pool pools[3] = {Pool(1), Pool(2), Pool(3)};
  int64_t checked = 0;
  for (int round = 0; round < rounds; ++round) {
    cafe::SketchConfig config;
    const int64_t widths[] = {1, 3, 8, 64, 255, 1024, 4099, 65536, 100003, 1 << 19, 500009};
    config.num_buckets = widths[below(11)];
    config.slots_per_bucket = 1 + static_cast<int32_t>(below(6));
    config.hot_rows = 1 + static_cast<int32_t>(below(std::min<int64_t>(config.num_slots(), 5000)));
    config.threshold = 0.5f + static_cast<float>(below(20));
    config.demote_threshold = config.threshold * 0.5f;
    config.medium_threshold = config.threshold * 0.25f;
    config.decay_rate = 0.5f + 0.1f * static_cast<float>(below(5));
    config.decay_mass_factor = 0.05 + 0.1 * below(5);
    config.second_sighting = below(2);
    config.erode = below(2);
    config.tag_bits = 2;  // tags below tag_mod <= 4
    const int64_t sizes[] = {0, 1, 2, 17, 300, 4096, 20000, 70000, 300000};
    const int64_t distinct = 1 + below(below(2) ? 1000 : 3000000);
    const double alpha = 1.01 + 0.1 * below(8);
    const int tag_mod = 1 + static_cast<int>(below(4));
    const bool random_importance = below(2);
    const int threads = 1 + static_cast<int>(below(3));
    const int shards = 1 + static_cast<int>(below(9));
    OwnedState a(config.num_slots()), b = a;
    const cafe::ParallelFor pf = pools[threads - 1].AsParallelFor();
    const int steps = 1 + static_cast<int>(below(5));
    for (int step = 0; step < steps; ++step) {
      const int64_t n = sizes[below(9)] + below(3);
      std::vector<int64_t> ids(n);
      std::vector<float> imp(n);
      std::vector<int32_t> tags(n);
      for (int64_t i = 0; i < n; ++i) {
        // Zipf-ish ranks by inversion of a continuous power law.
        const double u = Uniform(&rng);
        int64_t rank = static_cast<int64_t>(std::pow(1.0 - u, -1.0 / (alpha - 1.0)));
        rank = std::min<int64_t>(std::max<int64_t>(rank, 1), distinct) - 1;
        ids[i] = static_cast<int64_t>((rank * 0x9E3779B97F4A7C15ULL) ^ 0x5555);
        imp[i] = random_importance ? (below(20) == 0 ? 0.f : static_cast<float>(-std::log(1 - Uniform(&rng))))
                                   : 1.f;
        if (below(1000) == 0) imp[i] = -0.f;
        tags[i] = static_cast<int32_t>((rank + below(2)) % tag_mod);
      }
      NaiveInsert(config, &a, ids.data(), imp.data(), tags.data(), n);
      cafe::Insert(config, b.View(), ids.data(), imp.data(), tags.data(), n, shards, pf);
      if (!(a == b)) {
        std::printf("MISMATCH after insert: round %d step %d W=%lld c=%d n=%lld threads=%d "
                    "shards=%d\n", round, step, static_cast<long long>(config.num_buckets),
                    config.slots_per_bucket, static_cast<long long>(n), threads, shards);
        return 1;
      }
      std::vector<int32_t> ra(n), la(n), rb(n), lb(n);
      NaiveQuery(config, a, ids.data(), n, ra.data(), la.data());
      cafe::Query(config, b.ConstView(), ids.data(), n, rb.data(), lb.data(), pf);
      if (ra != rb || la != lb) {
        std::printf("MISMATCH in query: round %d step %d\n", round, step);
        return 1;
      }
      const bool force = below(3) == 0;
      cafe::Migrate(config, a.View(), force);
      cafe::Migrate(config, b.View(), force);
      ++checked;
    }
  }
  for (int k = 0; k < 2000; ++k) {  // the public PairwiseSum too
    const int64_t n = k < 40 ? k : static_cast<int64_t>(below(k < 1000 ? 5000 : 300000));
    std::vector<float> v(n);
    const bool zeros = k % 10 == 0;  // all -0: the padding's +0 must show in the sign
    for (float& x : v) x = zeros || below(7) == 0 ? -0.f : static_cast<float>(Uniform(&rng) * 1e3);
    const float a = NaivePairwiseSum(v.data(), n), b = cafe::PairwiseSum(v.data(), n);
    if (std::memcmp(&a, &b, sizeof(float)) != 0) {
      std::printf("MISMATCH in PairwiseSum, n=%lld\n", static_cast<long long>(n));
      return 1;
    }
  }
  std::printf("verify: %lld insert/query steps and 2000 pairwise sums bit-identical to the "
              "naive oracle\n", static_cast<long long>(checked));
  return 0;
}

// The backward pass's occurrence sums on a lookup-shaped gradient: n rows of 16
// floats, 8,000 distinct pairs on 1,000 rows read, in two layouts: "shuffled" (Zipf(1.2)
// pairs in random order: consecutive occurrences rarely share a row) and "by feature"
// (26 features one after the other, as a CAFE call lays its occurrences out; each
// feature's pairs Zipf(1.2) over its share of the pairs, its pairs on its share of the
// rows, so small features repeat rows back to back). Median ms of `repeats`
// interleaved calls of SegmentRowSums, of PairSums with norms (each the pass of one
// op) and of ExpandGradient (both) on one thread and on two, under flush-to-zero and
// denormals-are-zero as in TF's CPU kernels.
int BenchOccurrences(int64_t n, int repeats) {
#if defined(__SSE2__)
  _mm_setcsr(_mm_getcsr() | 0x8040);
#endif
  const int64_t d = 16, num_pairs = 8000, num_rows = 1000, features = 26;
  std::mt19937_64 rng(7);
  std::normal_distribution<float> normal(0.f, 1e-3f);
  std::vector<float> rows(n * d);
  for (float& x : rows) x = normal(rng);
  auto zipf = [&](int64_t count) {  // Zipf(1.2) rank in [0, count)
    const double u = (static_cast<double>(rng() >> 11) + 0.5) * 0x1p-53;
    return static_cast<int64_t>(std::min(std::pow(u, -1.0 / 0.2), static_cast<double>(count))) - 1;
  };
  Pool pool(2);
  const cafe::ParallelFor two_threads = pool.AsParallelFor();
  for (const char* layout : {"shuffled", "by feature"}) {
    const bool by_feature = std::string(layout) == "by feature";
    std::vector<int32_t> pair_rows(num_pairs), pairs(n), segments(n);
    for (int64_t p = 0; p < num_pairs; ++p) {
      // By feature, feature f's pairs [f P / F, (f + 1) P / F) share rows
      // [f R / F, (f + 1) R / F), about 38 rows each.
      const int64_t f = p * features / num_pairs;
      pair_rows[p] = static_cast<int32_t>(
          by_feature ? f * num_rows / features + rng() % (num_rows / features) : rng() % num_rows);
    }
    for (int64_t i = 0; i < n; ++i) {
      const int64_t f = i * features / n;
      const int64_t first = f * num_pairs / features, count = num_pairs / features;
      pairs[i] = static_cast<int32_t>(by_feature ? first + zipf(count) : zipf(num_pairs));
      segments[i] = pair_rows[pairs[i]];
    }
    std::vector<float> out(num_rows * d);
    std::vector<double> sums(num_pairs), counts(num_pairs);
    auto expand_gradient = [&](const cafe::ParallelFor& parallel_for) {
      cafe::ExpandGradient(rows.data(), segments.data(), pairs.data(), n, d, num_rows, num_pairs,
                           out.data(), sums.data(), counts.data(), parallel_for);
    };
    const std::vector<double> median = InterleavedMedianMs(
        {[&] { cafe::SegmentRowSums(rows.data(), segments.data(), n, d, num_rows, out.data()); },
         [&] {
           cafe::PairSums(rows.data(), pairs.data(), n, d, true, num_pairs, sums.data(),
                          counts.data());
         },
         [&] { expand_gradient(cafe::SerialFor); }, [&] { expand_gradient(two_threads); }},
        repeats);
    std::printf("occurrences, %s: n=%lld x %lld, %lld pairs on %lld rows, median of %d calls\n"
                "  SegmentRowSums %.3f ms, PairSums (norms) %.3f ms\n"
                "  ExpandGradient (both) %.3f ms on one thread, %.3f ms on two\n",
                layout, static_cast<long long>(n), static_cast<long long>(d),
                static_cast<long long>(num_pairs), static_cast<long long>(num_rows), repeats,
                median[0], median[1], median[2], median[3]);
  }
  return 0;
}

// CafeRoute's core on a CAFE call's layout: 26 features one after another, each
// `per_feature` ids from a Zipf(1.6) over 20,000 ids of its own (at 4,096 per feature,
// about 6,400 distinct pairs: train_speed.py's batch of 4,096 x 26 has 8,000), in a
// sketch that has seen them once (W = 1024, c = 16, 4,000 hot rows). Median of
// `repeats` interleaved calls of the deduplication alone (DistinctPairs) and of the
// whole route.
int BenchRoute(int64_t per_feature, int repeats) {
  constexpr int32_t kFeatures = 26;
  const int64_t n = per_feature * kFeatures;
  std::vector<int64_t> keys(n);
  std::vector<int32_t> feature_index(n);
  cafe::RouteTables tables;
  for (int32_t f = 0; f < kFeatures; ++f) {
    const std::vector<int64_t> ids = ZipfIds(per_feature, 20000, 1.6, f);
    for (int64_t i = 0; i < per_feature; ++i) {
      keys[f * per_feature + i] = ids[i] ^ static_cast<int64_t>(cafe::Mix64(f + 1));
      feature_index[f * per_feature + i] = f;
    }
    tables.hashed_offsets.push_back(f * 1000);
    tables.hashed_sizes.push_back(1000);
  }
  cafe::SketchConfig config;
  config.num_buckets = 1024;
  config.slots_per_bucket = 16;
  config.hot_rows = 4000;
  config.threshold = config.demote_threshold = config.medium_threshold = 2.f;
  config.fill_free_rows = true;
  OwnedState state(config.num_slots());
  const std::vector<float> importance(n, 1.f);
  Pool pool(2);
  const cafe::ParallelFor two_threads = pool.AsParallelFor();
  cafe::Insert(config, state.View(), keys.data(), importance.data(), feature_index.data(), n, 2,
               two_threads);
  cafe::Migrate(config, state.View(), false);
  std::vector<int32_t> inverse(n);
  cafe::RouteResult route;
  const std::vector<double> median = InterleavedMedianMs(
      {[&] { cafe::DistinctPairs(keys.data(), feature_index.data(), n, inverse.data()); },
       [&] {
         cafe::Route(config, state.ConstView(), tables, keys.data(), feature_index.data(), n,
                     inverse.data(), &route, two_threads);
       }},
      repeats);
  const int64_t hot = std::count_if(route.hot_row.begin(), route.hot_row.end(),
                                    [](int32_t row) { return row >= 0; });
  std::printf("route: n=%lld (26 features x %lld), %zu distinct pairs (%lld hot), median of %d "
              "calls\n  DistinctPairs %.3f ms, Route %.3f ms\n",
              static_cast<long long>(n), static_cast<long long>(per_feature), route.keys.size(),
              static_cast<long long>(hot), repeats, median[0], median[1]);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "bench";
  if (mode == "verify") return Verify(argc > 2 ? std::atoi(argv[2]) : 300);
  if (mode == "route") {
    return BenchRoute(argc > 2 ? std::atoll(argv[2]) : 4096, argc > 3 ? std::atoi(argv[3]) : 200);
  }
  if (mode == "occurrences") {
    return BenchOccurrences(argc > 2 ? std::atoll(argv[2]) : 106496,
                            argc > 3 ? std::atoi(argv[3]) : 50);
  }
  const int64_t n = argc > 2 ? std::atoll(argv[2]) : (1 << 20);
  const int repeats = argc > 3 ? std::atoi(argv[3]) : 5;
  const int threads = argc > 4 ? std::atoi(argv[4]) : 2;
  const std::string phase = argc > 5 ? argv[5] : "all";
  return Bench(n, repeats, threads, phase);
}
