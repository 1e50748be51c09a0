// HotSketch core: the exact semantics of the sketch (docs/sketch.md; CAFE,
// Zhang et al., SIGMOD 2024, sections on HotSketch and migration).
// Plain C++17, no TensorFlow: the TF op (custom_ops/tf) and the CUDA kernels
// (custom_ops/cuda) are checked against this file bit for bit.
#ifndef CAFE_TF_CORE_HOTSKETCH_H_
#define CAFE_TF_CORE_HOTSKETCH_H_

#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "host_device.h"  // Mix64, BucketOf, ...: also called from CUDA device code
#include "parallel_for.h"

namespace cafe {

// A slot is one int64 word, SlotWord(fp, entry), and one float32 score:
// 12 bytes. `fp` is the key's fingerprint (the high 32 bits of Mix64(key);
// the bucket is Mix64(key) mod W), `entry` an int32:
//  - >= 0: the key is hot, entry = HotEntry(row, tag, tag_bits) = (row << tag_bits) | tag;
//  - < 0: the key is not hot, entry = ColdMarker(tag, pending), which holds
//    the key's tag (its feature) and whether it is pending. A key that claimed
//    its slot by replacing another (eroding or inheriting its score) is
//    pending: it may not be promoted until it is seen again (the second
//    sighting rule, docs/sketch.md).
// Slots match keys by fingerprint: two keys of one bucket with the same
// fingerprint share a slot (a false match, docs/sketch.md).
// A tag is the key's feature index: which of the features sharing the sketch
// the key belongs to (the bit field of an entry that stores it).
// An empty slot (score 0) holds kEmptySlot: fingerprint 0, entry kRowNone.
constexpr int32_t kRowNone = -1;  // = ColdMarker(0, false); Query's "not hot"
constexpr int32_t kMaxTagBits = 30;
constexpr int32_t kMaxTag = (int32_t{1} << kMaxTagBits) - 1;  // cold markers hold tags up to this
constexpr int64_t kEmptySlot = int64_t{0xffffffff};

inline CAFE_HOST_DEVICE int32_t ColdMarker(int32_t tag, bool pending) {
  return -1 - 2 * tag - (pending ? 1 : 0);
}
// For a marker m < 0: its tag and whether it is pending.
inline CAFE_HOST_DEVICE int32_t MarkerTag(int32_t m) { return (-1 - m) >> 1; }
inline CAFE_HOST_DEVICE bool MarkerPending(int32_t m) { return ((-1 - m) & 1) != 0; }

// The entry of a hot key, and the row and tag in one (e >= 0).
inline CAFE_HOST_DEVICE int32_t HotEntry(int32_t row, int32_t tag, int32_t tag_bits) {
  return static_cast<int32_t>((static_cast<uint32_t>(row) << tag_bits) | static_cast<uint32_t>(tag));
}
inline CAFE_HOST_DEVICE int32_t EntryRow(int32_t e, int32_t tag_bits) { return e >> tag_bits; }
inline CAFE_HOST_DEVICE int32_t EntryTag(int32_t e, int32_t tag_bits) {
  return e >= 0 ? (e & ((int32_t{1} << tag_bits) - 1)) : MarkerTag(e);
}

// A slot word and its two halves.
inline CAFE_HOST_DEVICE int64_t SlotWord(uint32_t fp, int32_t entry) {
  return static_cast<int64_t>((static_cast<uint64_t>(fp) << 32) | static_cast<uint32_t>(entry));
}
inline CAFE_HOST_DEVICE uint32_t SlotFp(int64_t word) {
  return static_cast<uint32_t>(static_cast<uint64_t>(word) >> 32);
}
inline CAFE_HOST_DEVICE int32_t SlotEntry(int64_t word) {
  return static_cast<int32_t>(static_cast<uint32_t>(static_cast<uint64_t>(word)));
}
inline CAFE_HOST_DEVICE int64_t WithEntry(int64_t word, int32_t entry) {
  return SlotWord(SlotFp(word), entry);
}

// Set in a batch key's merged tag when the key occurs more than once in the
// batch (its second sighting); tags themselves are in [0, 2^tag_bits).
constexpr int32_t kRepeatedBit = INT32_MIN;

// A decay applies rho once per period due (mass or batches), at most this
// many times in one migration (so rarely migrated sketches are not wiped).
constexpr int64_t kMaxDecaySteps = 64;

// Levels returned by Query.
constexpr int32_t kLevelCold = 0;
constexpr int32_t kLevelMedium = 1;
constexpr int32_t kLevelHot = 2;

// splitmix64 finaliser: a fixed bijective 64-bit mixer.
inline CAFE_HOST_DEVICE uint64_t Mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

// Importances and decayed scores below FLT_MIN (subnormal) count as 0 in every
// implementation: TF runs its CPU kernels with flush-to-zero and
// denormals-are-zero, CUDA code does not, so no subnormal may ever reach an
// addition or a comparison. `v` is >= 0 (validated).
inline CAFE_HOST_DEVICE float FlushSubnormal(float v) { return v < 1.17549435e-38f ? 0.f : v; }

// Bucket of a key: Mix64(key) mod W (never `key mod W`, which clusters
// label-encoded ids).
inline CAFE_HOST_DEVICE int64_t BucketOf(int64_t key, int64_t num_buckets) {
  return static_cast<int64_t>(Mix64(static_cast<uint64_t>(key)) %
                              static_cast<uint64_t>(num_buckets));
}

// Fingerprint of a key: the high 32 bits of Mix64(key). CAFE's hashed (cold
// and medium) rows are functions of (fingerprint, feature), so migration can
// hand a promoted key's rows over from its slot alone (routing.h).
inline CAFE_HOST_DEVICE uint32_t FingerprintOf(int64_t key) {
  return static_cast<uint32_t>(Mix64(static_cast<uint64_t>(key)) >> 32);
}

// Sum of values[0, n) by pairwise halving over the length padded to a power
// of two: x[i] += x[i + half] until one element is left. This fixed tree is
// what every implementation (C++, CUDA, pure TF) computes, so the float sum
// is bit-identical everywhere.
float PairwiseSum(const float* values, int64_t n);

enum class DecayRule : int32_t {
  kMass = 0,     // paper: decay once the mass inserted exceeds factor * W * k
  kBatches = 1,  // decay every `decay_period` inserted (non-empty) batches
};

struct SketchConfig {
  int64_t num_buckets = 0;       // W
  int32_t slots_per_bucket = 0;  // c
  int32_t hot_rows = 0;          // rows of the hot table
  // Bits of a tag inside a hot entry: tags are in [0, 2^tag_bits), and
  // hot_rows << tag_bits must not exceed 2^31 (the entries fit an int32).
  int32_t tag_bits = 0;
  float threshold = 0.f;         // k: promotion threshold
  float demote_threshold = 0.f;  // hot features below this after a decay are demoted (default k)
  float medium_threshold = 0.f;  // Query: non-hot keys with score >= this are "medium"
  float decay_rate = 0.99f;      // rho
  DecayRule decay_rule = DecayRule::kMass;
  double decay_mass_factor = 10.0;  // kMass: one decay step per factor * W * k of mass
  int64_t decay_period = 0;         // kBatches: one decay step per this many batches
  bool second_sighting = true;      // false: the paper's rule (takeovers promotable at once)
  // A miss in a full bucket: true, erode the smallest non-hot score by the
  // newcomer's importance and take the slot only with what is left over
  // (Misra-Gries); false, take the slot and inherit its score (SpaceSaving, the paper).
  bool erode = true;
  // > 0: when candidates outnumber the free rows, a candidate displaces the
  // weakest hot key if its score is > swap_margin times that key's (0: off, the paper).
  float swap_margin = 0.f;
  // Swaps: a hot key whose score is below this yields its row to any candidate
  // (score >= threshold), without the margin (0: never; the layer's default
  // with filled rows is k / 2, so fillers and decayed keys make way).
  float yield_threshold = 0.f;
  // true: rows still free after the candidates (score >= threshold) go to the
  // strongest other tracked keys (score > 0, not pending); false: rows wait
  // for keys that reach the threshold (the paper).
  bool fill_free_rows = false;

  // The lowest score a key can be promoted with: 0 (any tracked key) when
  // free rows are filled, else the threshold.
  float promotion_floor() const { return fill_free_rows ? 0.f : threshold; }

  // Empty string when valid, else what is wrong.
  std::string Validate() const;
  int64_t num_slots() const { return num_buckets * slots_per_bucket; }
};

// Views of the sketch state (owned by the caller, e.g. tf.Variables).
// Slot s = bucket * c + j. A slot is occupied iff scores[s] > 0; an empty
// slot holds kEmptySlot. A hot row is in use iff one slot's entry holds it.
struct SketchState {
  int64_t* slots;               // [W*c] SlotWord(fingerprint, entry)
  float* scores;                // [W*c]
  float* mass;                  // [1] importance inserted since the last decay step
  int64_t* batches;             // [1] non-empty batches inserted since the last decay step
};

// What Query reads: slots and scores.
struct ConstSketchState {
  const int64_t* slots;
  const float* scores;
};

// The smallest number of tag bits that holds tags [0, num_tags).
inline int32_t TagBitsFor(int64_t num_tags) {
  int32_t bits = 0;
  while ((int64_t{1} << bits) < num_tags) ++bits;
  return bits;
}
// Empty when hot_rows and tag_bits fit an int32 hot entry, else the limit broken.
std::string ValidateEntryLayout(int64_t hot_rows, int32_t tag_bits);
// Empty when every hot entry of the state's W*c slots holds a row below
// config.hot_rows, else the first that does not (the state was written with
// other hot_rows or tag_bits). Migrate relies on it.
std::string CheckHotRows(const SketchConfig& config, const int64_t* slots);

// Empty when the batch is valid, else the problem (NaN/inf/negative
// importance, feature index outside [0, 2^tag_bits)). Checked before any state changes.
std::string ValidateInsert(const float* importance, const int32_t* feature_index, int64_t n,
                           int32_t tag_bits);
// The problem with entry `index` (importance v, tag), or empty when it is valid.
std::string InvalidInsertEntry(float v, int32_t tag, int64_t index, int32_t tag_bits);

// Batch insert (docs/sketch.md): mass += PairwiseSum(importance), batches += 1;
// then each distinct key, its importances summed in input order and its
// smallest tag kept, enters its bucket by InsertBatchKey (hotsketch_rules.h),
// a bucket's keys in ascending key order. The driver (parallel_insert.cc) runs
// about `num_shards` tasks through `parallel_for`; the resulting state is the
// same for every value.
void Insert(const SketchConfig& config, const SketchState& state, const int64_t* keys,
            const float* importance, const int32_t* feature_index, int64_t n, int num_shards,
            const ParallelFor& parallel_for);

// Read-only lookup: hot row (or -1) and level per key (config: W, c, tag_bits
// and the medium threshold).
void Query(const SketchConfig& config, const ConstSketchState& state, const int64_t* keys,
           int64_t n, int32_t* out_rows, int32_t* out_levels, const ParallelFor& parallel_for);

struct MigrationEntry {
  uint32_t fingerprint;
  int32_t tag;
  int32_t row;
};

struct MigrationResult {
  bool decayed = false;
  std::vector<MigrationEntry> demoted;   // decay's in slot order, then the displaced ones
  std::vector<MigrationEntry> promoted;  // score desc, fingerprint asc, slot asc; rows ascending
};

// Decay steps due now: whole periods (`mass_limit` = decay_mass_factor * W * k
// of mass, or `period` batches) since the last decay; 0 until mass exceeds one
// period (mass rule) or batches reach one (batches rule). With `force`, at
// least one. Also the counters left after the decay: the rule's counter less
// the periods decayed, the other one 0. Called by the CUDA kernels too.
struct DecaySteps {
  int64_t steps;
  float mass_left;
  int64_t batches_left;
};
inline CAFE_HOST_DEVICE DecaySteps DueDecaySteps(bool rule_batches, double mass_limit,
                                                 int64_t period, bool force, float mass,
                                                 int64_t batches) {
  DecaySteps d = {0, 0.f, 0};
  if (rule_batches) {
    d.steps = batches >= period ? batches / period : 0;
    d.batches_left = batches - d.steps * period;
  } else if (static_cast<double>(mass) > mass_limit) {
    const double periods = floor(static_cast<double>(mass) / mass_limit);
    d.steps = periods < static_cast<double>(kMaxDecaySteps) ? static_cast<int64_t>(periods)
                                                            : kMaxDecaySteps;
    const double left = static_cast<double>(mass) - periods * mass_limit;
    d.mass_left = FlushSubnormal(left > 0.0 ? static_cast<float>(left) : 0.f);
  } else {
    d.mass_left = mass;
  }
  if (force && d.steps == 0) d = {1, 0.f, 0};  // a forced decay starts every period afresh
  return d;
}

// The factor a decay of `steps` applies: rho multiplied in float, one step at
// a time (at most kMaxDecaySteps), subnormals flushed. Called by the CUDA
// kernels too.
inline CAFE_HOST_DEVICE float DecayFactor(float rate, int64_t steps) {
  float f = 1.f;
  for (int64_t i = 0; i < steps && i < kMaxDecaySteps && f > 0.f && rate < 1.f; ++i)
    f = FlushSubnormal(f * rate);
  return f;
}

// Swaps: whether a candidate (score >= threshold) displaces a hot key. A hot
// key below yield_threshold (a filler, or one that decayed) yields to any
// candidate; the others only to a candidate outscoring them by the margin.
CAFE_HOST_DEVICE inline bool Displaces(float candidate, float hot, float yield_threshold,
                                       float margin) {
  return hot < yield_threshold || candidate > margin * hot;
}

// The mass limit of the mass rule: factor * W * k in double.
double DecayMassLimit(const SketchConfig& config);

// Migration (docs/sketch.md): decay (when due or forced: at least one step)
// by rho^steps with demotion of hot keys below demote_threshold; with a
// swap_margin, demotion of the weakest hot keys that the candidates beyond the
// free rows outscore by that margin; then promotion of non-hot, non-pending
// keys with score >= threshold into free rows in ascending row order (free:
// held by no slot's hot entry), and with fill_free_rows, of the other tracked
// non-hot, non-pending keys into the rows still free (only keys >= threshold
// displace hot keys). Orders by score break ties by fingerprint,
// then slot. Demoted entries: the decay's in slot order, then the displaced ones, weakest
// first.
MigrationResult Migrate(const SketchConfig& config, const SketchState& state, bool force_decay);

}  // namespace cafe

#endif  // CAFE_TF_CORE_HOTSKETCH_H_
