// Host-side parts of the CUDA harness (no CUDA, no TF): deterministic
// Zipf-skewed batch generation, the scenarios, the CPU-core backend and a
// bit-for-bit comparison of two backends. Shared by harness.cu (GPU vs core)
// and emulation_test.cc (host emulation of the GPU pipeline vs core), so the
// scenario and comparison logic is exercised on machines without a GPU.
#ifndef CAFE_TF_CUDA_HARNESS_COMMON_H_
#define CAFE_TF_CUDA_HARNESS_COMMON_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "../core/hotsketch.h"

namespace cafe {
namespace harness {

// splitmix64 stream: deterministic on every platform.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next();
  double Uniform();                 // [0, 1)
  uint64_t Below(uint64_t bound);   // [0, bound)

 private:
  uint64_t state_;
};

// Zipf(s) over ranks 1..n by inverse CDF (binary search in a table).
class Zipf {
 public:
  Zipf(int64_t n, double s);
  int64_t Sample(Rng& rng) const;  // rank in [1, n]
  int64_t n() const { return static_cast<int64_t>(cdf_.size()); }

 private:
  std::vector<double> cdf_;
};

// The state of one sketch, on the host (a copy of what a backend holds).
struct Snapshot {
  std::vector<int64_t> slots;  // SlotWord(fingerprint, entry)
  std::vector<float> scores;
  float mass = 0.f;
  int64_t batches = 0;
  SketchState view();  // pointers into this snapshot
};

Snapshot EmptySnapshot(const SketchConfig& config);

struct InsertOutcome {
  int64_t status = -1;  // -1 valid, else first invalid index
};

// A HotSketch implementation under test (or the reference).
class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  virtual void Reset(const SketchConfig& config) = 0;
  virtual InsertOutcome Insert(const std::vector<int64_t>& keys,
                               const std::vector<float>& importance,
                               const std::vector<int32_t>& tags) = 0;
  virtual void Query(const std::vector<int64_t>& ids, std::vector<int32_t>* rows,
                     std::vector<int32_t>* levels) = 0;
  virtual MigrationResult Migrate(bool force_decay) = 0;
  virtual Snapshot Read() = 0;
};

// The authoritative CPU core (custom_ops/core), with `threads` shards run on
// std::threads (1 = serial).
std::unique_ptr<Backend> MakeCoreBackend(int threads);

// ParallelFor over std::threads (for the CPU throughput figure).
ParallelFor ThreadParallelFor(int threads);

// kFingerprintPairs: ranks 2m and 2m + 1 are different keys whose Mix64
// agree in the high 32 bits (the fingerprint) and the low 16 bits (the bucket,
// for any power-of-two W <= 2^16): false matches of the 12-byte slots.
enum class KeyMode { kRank, kScrambled, kExtreme, kFingerprintPairs };
enum class ImportanceMode { kOnes, kUniform, kWide, kTiny, kHuge, kZeros, kMixedZeroNegZero };

struct BatchSpec {
  int64_t n = 0;
  int64_t vocabulary = 1000;
  double skew = 1.1;
  double hot_fraction = 0.0;  // this share of entries is one single key
  KeyMode key_mode = KeyMode::kScrambled;
  ImportanceMode importance = ImportanceMode::kUniform;
  int32_t max_tag = 26;
  int64_t rank_offset = 0;  // added to every drawn rank (distribution drift)
  // When >= 0: corrupt the batch at a random index (0 NaN, 1 +inf, 2 -inf,
  // 3 negative importance, 4 tag outside [0, 2^tag_bits) for every tag_bits,
  // 5 corrupt two indices).
  int corrupt = -1;
};

struct Scenario {
  std::string name;
  SketchConfig config;
  int steps = 10;
  BatchSpec batch;
  int migrate_every = 1;      // run Migrate after every this many inserts (0 never)
  int force_decay_every = 0;  // force the decay on every this-many-th migration (0 never)
  // Importance mode of step i: modes[i % size] (empty: batch.importance).
  std::vector<ImportanceMode> modes;
  bool vary_size = true;  // steps other than every third draw n in [1, batch.n]
  int corrupt_every = 0;  // every this-many-th batch is corrupted (0 never)
  int empty_every = 0;    // every this-many-th batch is empty (0 never)
  int64_t drift = 0;      // rank offset grows by this per step (hot keys go cold)
  uint64_t seed = 1;
};

// The scenarios of the harness: tiny and full buckets, every slot hot, heavy
// duplicates and very long runs, underflowing decays (with demote threshold 0
// and > 0), score ties, both decay rules, extreme keys, zero / empty / invalid
// batches, c = 1 and c = 16, inf scores, and one benchmark-sized case when
// `include_large`.
std::vector<Scenario> Scenarios(bool include_large);

// Generates one batch.
void MakeBatch(const BatchSpec& spec, Rng& rng, const Zipf& zipf, std::vector<int64_t>* keys,
               std::vector<float>* importance, std::vector<int32_t>* tags);

// Maps a Zipf rank to a key.
int64_t KeyOf(int64_t rank, KeyMode mode);

// The inverse of cafe::Mix64 (a bijection): Unmix64(Mix64(x)) == x.
uint64_t Unmix64(uint64_t h);

// Runs the scenario on both backends, comparing every state array bit for bit
// after every step, plus every op's outputs. Prints one PASS/FAIL line (and
// the first mismatches). Returns true on PASS.
bool RunScenario(const Scenario& scenario, Backend& reference, Backend& candidate);

// Bitwise comparison; appends human-readable differences (at most `limit`).
bool SameSnapshot(const Snapshot& a, const Snapshot& b, std::vector<std::string>* diffs,
                  int limit = 5);
bool SameMigration(const MigrationResult& a, const MigrationResult& b,
                   std::vector<std::string>* diffs, int limit = 5);

// Self-test of the pieces above that need no backend (generator determinism,
// Zipf shape, comparison catching a 1-ulp / -0.0 difference). True on success.
bool SelfTest();

}  // namespace harness
}  // namespace cafe

#endif  // CAFE_TF_CUDA_HARNESS_COMMON_H_
