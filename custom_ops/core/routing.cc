#include "routing.h"

#include <algorithm>
#include <memory>
#include <sstream>
#include <utility>

#include "id_range.h"
#include "memory.h"

namespace cafe {

namespace {

// Open-addressing table of distinct (key, feature index) pairs, at most half full;
// each slot holds its pair, so a probe touches one cache line. Sized by the
// occurrences, a call fills a few percent of it (click logs repeat), so the table
// is kept across calls (PairTableLease) with every slot empty between uses: a use
// empties the slots it took, instead of filling megabytes of slots each call.
class PairTable {
 public:
  struct Slot {
    int64_t key;
    int32_t feature;
    int32_t index;  // -1: empty
  };

  // Makes room for n distinct pairs; the table must be empty (a fresh one, or Clear).
  void Prepare(int64_t n) {
    int bits = 4;
    while ((int64_t{1} << bits) < 2 * n) ++bits;
    const int64_t size = int64_t{1} << bits;
    if (size > initialised_) {  // grown: every slot empty, once
      std::fill_n(slots_.Reserve(size), size, Slot{0, 0, -1});
      initialised_ = size;
    }
    mask_ = static_cast<uint64_t>(size - 1);
    shift_ = 64 - bits;
    used_.Reserve(n);
    num_used_ = 0;
  }

  // The index of (key, feature): its existing one, else `next` (then stored).
  int32_t Insert(int64_t key, int32_t feature, int32_t next) {
    Slot* slots = slots_.data();
    for (uint64_t h = Slot0(key, feature);; h = (h + 1) & mask_) {
      Slot& slot = slots[h];
      if (slot.index < 0) {
        slot = Slot{key, feature, next};
        used_.data()[num_used_++] = static_cast<uint32_t>(h);
        return next;
      }
      if (slot.key == key && slot.feature == feature) return slot.index;
    }
  }

  // Empties the slots taken since Prepare.
  void Clear() {
    Slot* slots = slots_.data();
    const uint32_t* used = used_.data();
    for (int64_t u = 0; u < num_used_; ++u) slots[used[u]].index = -1;
    num_used_ = 0;
  }

  int64_t bytes() const { return slots_.bytes() + used_.bytes(); }

 private:
  // The first slot probed: a multiplicative hash, its top bits. Cheaper than PairHash's
  // two Mix64 (the table runs once per occurrence); the index it hands out does not depend
  // on it. The fold first mixes a key's high bits into the bits the product carries up.
  uint64_t Slot0(int64_t key, int32_t feature) const {
    uint64_t x = static_cast<uint64_t>(key) ^ (uint64_t{static_cast<uint32_t>(feature)} << 40);
    x ^= x >> 32;
    return (x * 0x9e3779b97f4a7c15ULL) >> shift_;
  }

  internal::Buffer<Slot> slots_;
  int64_t initialised_ = 0;  // slots [0, initialised_) are set (empty between uses)
  internal::Buffer<uint32_t> used_;  // slots taken (n < 2^31: 2n slots fit 32 bits)
  int64_t num_used_ = 0;
  uint64_t mask_ = 0;
  int shift_ = 64;
};

// A few idle pair tables are kept across calls, each at most 128 MiB (calls of up to
// about two million occurrences; a bigger table is freed after its call).
using PairTablePool = internal::ScratchPool<PairTable, 4, int64_t{128} << 20>;

// A pair table of the pool for one Route or DistinctPairs call, given back empty.
class PairTableLease {
 public:
  PairTableLease() : table_(Pool().Acquire()) {}
  ~PairTableLease() {
    table_->Clear();  // after an exception mid-use too
    Pool().Release(std::move(table_));
  }
  PairTableLease(const PairTableLease&) = delete;
  PairTableLease& operator=(const PairTableLease&) = delete;

  PairTable& operator*() const { return *table_; }

 private:
  static PairTablePool& Pool() {
    static auto* pool = new PairTablePool();  // never destroyed: no exit-order hazard
    return *pool;
  }

  std::unique_ptr<PairTable> table_;
};

// DistinctPairs in `table` (empty; left empty).
std::vector<int64_t> DistinctPairsIn(PairTable& table, const int64_t* a, const int32_t* b,
                                     int64_t n, int32_t* inverse) {
  std::vector<int64_t> first;
  table.Prepare(n);
  for (int64_t i = 0; i < n; ++i) {
    const int32_t d =
        table.Insert(a[i], b == nullptr ? 0 : b[i], static_cast<int32_t>(first.size()));
    if (d == static_cast<int32_t>(first.size())) first.push_back(i);
    inverse[i] = d;
  }
  table.Clear();
  return first;
}

// Distinct values among `values[u]` for the u where `use[u]`, in order of
// first use: `index[u]` (offset by `base`) where used, else -1.
template <typename T, typename Use>
std::vector<T> DistinctRows(PairTable& table, const std::vector<T>& values, const Use& use,
                            int32_t base, std::vector<int32_t>* index) {
  const int64_t n = static_cast<int64_t>(values.size());
  std::vector<T> distinct;
  index->assign(values.size(), -1);
  table.Prepare(n);
  for (int64_t u = 0; u < n; ++u) {
    if (!use(u)) continue;
    const int32_t d = table.Insert(values[u], 0, static_cast<int32_t>(distinct.size()));
    if (d == static_cast<int32_t>(distinct.size())) distinct.push_back(values[u]);
    (*index)[u] = base + d;
  }
  table.Clear();
  return distinct;
}

}  // namespace

std::string RouteTables::Validate() const {
  std::ostringstream err;
  if (hashed_sizes.empty()) err << "at least one feature (hashed table) is needed. ";
  if (hashed_offsets.size() != hashed_sizes.size())
    err << "hashed_offsets and hashed_sizes must have one entry per feature. ";
  if (!medium_sizes.empty() && medium_sizes.size() != hashed_sizes.size())
    err << "medium_sizes must be empty or have one entry per feature. ";
  if (medium_offsets.size() != medium_sizes.size())
    err << "medium_offsets and medium_sizes must have the same length. ";
  for (int64_t s : hashed_sizes)
    if (s <= 0 || s >= kMaxFingerprintTableRows)
      err << "hashed table sizes must be in [1, 2^32) (rows are hashed from 32-bit "
             "fingerprints), got " << s << ". ";
  for (int64_t s : medium_sizes)
    if (s <= 0 || s >= kMaxFingerprintTableRows)
      err << "medium table sizes must be in [1, 2^32) (rows are hashed from 32-bit "
             "fingerprints), got " << s << ". ";
  return err.str();
}

std::string ValidateRouteInput(const int32_t* feature_index, int64_t n, int32_t num_features) {
  if (n >= (int64_t{1} << 31)) return "a call must hold fewer than 2^31 ids";
  const int64_t bad = FirstOutOfRange(feature_index, n, num_features);
  return bad < n ? InvalidFeatureIndex(feature_index[bad], bad, num_features) : "";
}

std::string InvalidFeatureIndex(int32_t value, int64_t index, int32_t num_features) {
  std::ostringstream err;
  err << "feature_index must be in [0, " << num_features << "), got " << value << " at index "
      << index;
  return err.str();
}

void FieldKeys(const int64_t* ids, int64_t n, int32_t feature, int64_t* keys,
               int32_t* feature_index) {
  const int64_t salt = FieldSalt(feature);
  for (int64_t i = 0; i < n; ++i) keys[i] = ids[i] ^ salt;
  std::fill_n(feature_index, n, feature);
}

std::vector<int64_t> DistinctPairs(const int64_t* a, const int32_t* b, int64_t n,
                                   int32_t* inverse) {
  const PairTableLease table;
  return DistinctPairsIn(*table, a, b, n, inverse);
}

void Route(const SketchConfig& config, const ConstSketchState& state, const RouteTables& tables,
           const int64_t* keys, const int32_t* feature_index, int64_t n, int32_t* inverse,
           RouteResult* result, const ParallelFor& parallel_for) {
  RouteResult& r = *result;
  const PairTableLease table;
  const std::vector<int64_t> first = DistinctPairsIn(*table, keys, feature_index, n, inverse);
  const int64_t u_count = static_cast<int64_t>(first.size());
  r.keys.resize(u_count);
  r.feature_index.resize(u_count);
  for (int64_t u = 0; u < u_count; ++u) {
    r.keys[u] = keys[first[u]];
    r.feature_index[u] = feature_index[first[u]];
  }
  r.hot_row.resize(u_count);
  r.level.resize(u_count);
  Query(config, state, r.keys.data(), u_count, r.hot_row.data(), r.level.data(), parallel_for);

  const bool multi_level = !tables.medium_sizes.empty();
  const uint64_t hashed_salt = TableSalt(tables.hashed_seed);
  const uint64_t medium_salt = TableSalt(tables.medium_seed);
  r.hashed_row.resize(u_count);
  r.medium_row.resize(u_count);
  for (int64_t u = 0; u < u_count; ++u) {
    const int32_t f = r.feature_index[u];
    const uint32_t fp = FingerprintOf(r.keys[u]);
    r.hashed_row[u] = r.hot_row[u] >= 0
                          ? -1
                          : tables.hashed_offsets[f] +
                                FingerprintRow(fp, hashed_salt, tables.hashed_sizes[f]);
    r.medium_row[u] = multi_level && r.level[u] == kLevelMedium
                          ? tables.medium_offsets[f] +
                                FingerprintRow(fp, medium_salt, tables.medium_sizes[f])
                          : -1;
  }

  std::vector<int32_t> hashed_index;
  r.read_hot = DistinctRows(
      *table, r.hot_row, [&](int64_t u) { return r.hot_row[u] >= 0; }, 0, &r.first_index);
  r.read_hashed =
      DistinctRows(*table, r.hashed_row, [&](int64_t u) { return r.hot_row[u] < 0; },
                   static_cast<int32_t>(r.read_hot.size()), &hashed_index);
  for (int64_t u = 0; u < u_count; ++u) {
    if (r.hot_row[u] < 0) r.first_index[u] = hashed_index[u];
  }
  r.read_medium = DistinctRows(
      *table, r.medium_row, [&](int64_t u) { return r.medium_row[u] >= 0; }, 0, &r.medium_index);
  r.occurrence_index.resize(n);
  for (int64_t i = 0; i < n; ++i) r.occurrence_index[i] = r.first_index[inverse[i]];
}

}  // namespace cafe
