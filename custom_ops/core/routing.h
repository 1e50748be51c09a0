// Routing of a CAFE lookup: the distinct (key, feature) pairs of a call, the
// inverse index, and per distinct pair its hot row (from the HotSketch query)
// or hashed (and medium) row, with each table's distinct rows read. Plain
// C++17, no TensorFlow; the pure-TF definition is cafe_tf/layers/routing.py
// (route_reference), which this matches bit for bit.
#ifndef CAFE_TF_CORE_ROUTING_H_
#define CAFE_TF_CORE_ROUTING_H_

#include <cstdint>
#include <string>
#include <vector>

#include "hotsketch.h"

namespace cafe {

// The int64 XORed into the ids of feature `feature` to form their sketch keys
// (cafe_tf.hashing.field_salt): equal ids of different features become different keys.
inline CAFE_HOST_DEVICE int64_t FieldSalt(int32_t feature) {
  return static_cast<int64_t>(Mix64(static_cast<uint64_t>(feature) + 1));
}

// The sketch keys of feature `feature`'s ids[n] (id XOR FieldSalt(feature)) into keys[n],
// and `feature` into feature_index[n]: one feature's part of a call's keys.
void FieldKeys(const int64_t* ids, int64_t n, int32_t feature, int64_t* keys,
               int32_t* feature_index);

// Salt XORed into keys before hashing into the table of `seed`
// (cafe_tf.hashing.hashed_row).
inline CAFE_HOST_DEVICE uint64_t TableSalt(int64_t seed) {
  return Mix64(~static_cast<uint64_t>(seed));
}

// Row of `key` in a hashed table of `rows` rows salted with `salt`.
inline CAFE_HOST_DEVICE int64_t HashedRow(int64_t key, uint64_t salt, int64_t rows) {
  return static_cast<int64_t>(Mix64(static_cast<uint64_t>(key) ^ salt) %
                              static_cast<uint64_t>(rows));
}

// CAFE's hashed (cold) and medium row of a key: the row of its fingerprint
// (FingerprintOf, hotsketch.h), so that migration, which keeps only the
// fingerprint, finds a promoted key's rows (cafe_tf.hashing.fingerprint_row).
inline CAFE_HOST_DEVICE int64_t FingerprintRow(uint32_t fp, uint64_t salt, int64_t rows) {
  return HashedRow(static_cast<int64_t>(fp), salt, rows);
}

// Tables of CAFE's hashed rows hold fewer rows than this: there are only 2^32 fingerprints.
constexpr int64_t kMaxFingerprintTableRows = int64_t{1} << 32;

// Hash of a (key, feature index) pair for the dedup tables (the key mixed first,
// so pairs whose key and feature index sum alike do not collide).
inline CAFE_HOST_DEVICE uint64_t PairHash(int64_t key, int32_t feature_index) {
  return Mix64(Mix64(static_cast<uint64_t>(key)) + static_cast<uint32_t>(feature_index));
}

// Per feature, the first row and the number of rows of its table inside
// tables packed back to back. `medium` is empty without multi-level hashing.
struct RouteTables {
  std::vector<int64_t> hashed_offsets, hashed_sizes;
  std::vector<int64_t> medium_offsets, medium_sizes;
  int64_t hashed_seed = 1;
  int64_t medium_seed = 2;

  int32_t num_features() const { return static_cast<int32_t>(hashed_sizes.size()); }
  // Empty when valid, else what is wrong.
  std::string Validate() const;
};

// Everything of a route but the inverse index (which the caller owns), for n
// occurrences of U distinct pairs; see cafe_tf/layers/routing.py `Route` for
// each field.
struct RouteResult {
  std::vector<int64_t> keys;
  std::vector<int32_t> feature_index;
  std::vector<int32_t> hot_row, level;
  std::vector<int64_t> hashed_row, medium_row;
  std::vector<int32_t> read_hot;
  std::vector<int64_t> read_hashed, read_medium;
  std::vector<int32_t> first_index, medium_index;
  // [n] per occurrence (not per pair): its pair's first_index.
  std::vector<int32_t> occurrence_index;
};

// Empty when every feature index is in [0, num_features) and n < 2^31, else the problem.
std::string ValidateRouteInput(const int32_t* feature_index, int64_t n, int32_t num_features);

// The problem of feature_index[index] = value outside [0, num_features) (the CPU and
// GPU kernels report it alike).
std::string InvalidFeatureIndex(int32_t value, int64_t index, int32_t num_features);

// Distinct values of (a[i], b[i]) for i < n (b may be null: all 0), in order
// of first occurrence; writes the pair index of each i to `inverse` and
// returns the position of each distinct pair's first occurrence.
std::vector<int64_t> DistinctPairs(const int64_t* a, const int32_t* b, int64_t n,
                                   int32_t* inverse);

// The route of keys[n] of features feature_index[n] (validated) in the sketch
// `state` (read-only; `config` gives W, c, tag_bits and the medium
// threshold). A non-hot key's rows are FingerprintRow of its fingerprint.
// `inverse` has room for n entries. The sketch query of the distinct pairs runs
// on `parallel_for`; the result does not depend on it.
void Route(const SketchConfig& config, const ConstSketchState& state, const RouteTables& tables,
           const int64_t* keys, const int32_t* feature_index, int64_t n, int32_t* inverse,
           RouteResult* result, const ParallelFor& parallel_for);

}  // namespace cafe

#endif  // CAFE_TF_CORE_ROUTING_H_
