#include "compare.h"

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "batches.h"

namespace cafe {
namespace harness {

namespace {

template <typename T>
bool SameBits(const T& a, const T& b) {
  return std::memcmp(&a, &b, sizeof(T)) == 0;
}

// Same bits, or both NaN: x86 and CUDA make NaNs of different bit patterns
// (x86 keeps an operand's payload, CUDA returns its canonical NaN).
template <typename T>
bool SameValue(const T& a, const T& b) {
  return SameBits(a, b) || (a != a && b != b);  // NOLINT: x != x is the NaN test for any T
}

std::string Show(int64_t v) { return std::to_string(v); }
std::string Show(int32_t v) { return std::to_string(v); }
std::string Show(double v) {
  char buf[64];
  uint64_t bits;
  std::memcpy(&bits, &v, sizeof(bits));
  std::snprintf(buf, sizeof(buf), "%.17g (0x%016" PRIx64 ")", v, bits);
  return buf;
}
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
    if (SameValue(a[i], b[i])) continue;
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

// -------------------------------------------------------------- lookup ---

namespace {

// Rows [n, d] of gradient-like values over 40 binades (so every sum depends
// on its order), with now and then a NaN, an infinity, a signed zero, a
// subnormal or a huge value.
std::vector<float> MakeRows(Rng& rng, int64_t n, int64_t d) {
  static const float kSpecial[] = {std::nanf(""), INFINITY, -INFINITY, -0.0f, 0.0f, 1e-40f,
                                   -3e-39f, 1.5e-38f, -1.2e-38f, 3e38f, -3e38f, 1e-20f};
  std::vector<float> rows(static_cast<size_t>(n * d));
  for (float& x : rows) {
    x = rng.Below(40) == 0 ? kSpecial[rng.Below(sizeof(kSpecial) / sizeof(float))]
                           : static_cast<float>((rng.Uniform() * 2.0 - 1.0) *
                                                std::exp2(rng.Uniform() * 40.0 - 20.0));
  }
  return rows;
}

// Three features' tables, with medium tables when `multi_level`.
RouteTables LookupTables(bool multi_level) {
  RouteTables t;
  t.hashed_offsets = {0, 97, 98};
  t.hashed_sizes = {97, 1, 1000};
  if (multi_level) {
    t.medium_offsets = {0, 13, 14};
    t.medium_sizes = {13, 1, 200};
  }
  return t;
}

bool SameStatus(const char* what, int64_t a, int64_t b, std::vector<std::string>* diffs) {
  if (a == b) return true;
  diffs->push_back(std::string(what) + " status: " + Show(a) + " vs " + Show(b));
  return false;
}

// A lookup on both backends: the field keys of `ids` split into three features, the
// route of `ids`, then the backward pass's sums of rows over the route's inverse
// (segment row sums, pair importance with and without norm), with empty segments on
// odd steps and one invalid id on every fourth step.
bool CompareLookup(int step, uint64_t seed, const std::vector<int64_t>& ids,
                   const std::vector<int32_t>& feature_index, Backend& reference,
                   Backend& candidate, std::vector<std::string>* diffs) {
  Rng rng(seed ^ (0x51ed27ULL * static_cast<uint64_t>(step + 1)));
  const int64_t n = static_cast<int64_t>(ids.size());
  std::vector<int32_t> route_features(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {  // in [0, 3), from a corrupted batch's -1 too
    route_features[i] = i < feature_index.size() ? (feature_index[i] % 3 + 3) % 3
                                                 : static_cast<int32_t>(rng.Below(3));
  }
  // The call's keys from per-feature ids (CafeFieldKeys): the ids of each feature in turn.
  std::vector<std::vector<int64_t>> feature_ids(3);
  for (size_t i = 0; i < ids.size(); ++i) feature_ids[route_features[i]].push_back(ids[i]);
  std::vector<int64_t> keys_a, keys_b;
  std::vector<int32_t> index_a, index_b;
  reference.FieldKeys(feature_ids, &keys_a, &index_a);
  candidate.FieldKeys(feature_ids, &keys_b, &index_b);
  bool keys_ok = CompareArray("field keys", keys_a, keys_b, diffs, 5);
  keys_ok = CompareArray("field keys feature_index", index_a, index_b, diffs, 5) && keys_ok;
  if (!keys_ok) return false;
  const RouteTables tables = LookupTables(step % 2 == 1);
  RouteResult ra, rb;
  std::vector<int32_t> ia, ib;
  reference.Route(tables, ids, route_features, &ra, &ia);
  candidate.Route(tables, ids, route_features, &rb, &ib);
  bool ok = CompareArray("route inverse", ia, ib, diffs, 5);
  ok = CompareArray("route keys", ra.keys, rb.keys, diffs, 5) && ok;
  ok = CompareArray("route feature_index", ra.feature_index, rb.feature_index, diffs, 5) && ok;
  ok = CompareArray("route hot_row", ra.hot_row, rb.hot_row, diffs, 5) && ok;
  ok = CompareArray("route level", ra.level, rb.level, diffs, 5) && ok;
  ok = CompareArray("route hashed_row", ra.hashed_row, rb.hashed_row, diffs, 5) && ok;
  ok = CompareArray("route medium_row", ra.medium_row, rb.medium_row, diffs, 5) && ok;
  ok = CompareArray("route read_hot", ra.read_hot, rb.read_hot, diffs, 5) && ok;
  ok = CompareArray("route read_hashed", ra.read_hashed, rb.read_hashed, diffs, 5) && ok;
  ok = CompareArray("route read_medium", ra.read_medium, rb.read_medium, diffs, 5) && ok;
  ok = CompareArray("route first_index", ra.first_index, rb.first_index, diffs, 5) && ok;
  ok = CompareArray("route medium_index", ra.medium_index, rb.medium_index, diffs, 5) && ok;
  ok = CompareArray("route occurrence_index", ra.occurrence_index, rb.occurrence_index, diffs, 5) &&
       ok;
  if (!ok) return false;

  // The gradient rows of the occurrences, summed per distinct pair.
  static const int64_t kWidths[] = {1, 5, 16, 33};
  const int64_t d = std::min<int64_t>(kWidths[step % 4], std::max<int64_t>(1, (1 << 21) / (n + 1)));
  std::vector<int32_t> segments = ia;
  const int64_t num_segments = static_cast<int64_t>(ra.keys.size()) + (step % 2 == 1 ? 3 : 0);
  if (step % 4 == 3 && n > 0) {
    segments[rng.Below(static_cast<uint64_t>(n))] =
        rng.Below(2) == 0 ? -1 : static_cast<int32_t>(num_segments);
  }
  const std::vector<float> rows = MakeRows(rng, n, d);
  const std::vector<float> column = MakeRows(rng, n, 1);
  // An invalid call's outputs are meaningless: only its status is compared.
  std::vector<float> sa, sb;
  const int64_t status = reference.SegmentRowSums(rows, segments, d, num_segments, &sa);
  ok = SameStatus("segment row sums", status,
                  candidate.SegmentRowSums(rows, segments, d, num_segments, &sb), diffs);
  if (status == n) ok = CompareArray("segment row sums", sa, sb, diffs, 5) && ok;
  for (bool norm : {true, false}) {
    std::vector<double> pa, pb, oa, ob;
    const std::vector<float>& values = norm ? rows : column;
    const int64_t width = norm ? d : 1;
    const char* what = norm ? "pair importance (norm)" : "pair importance (abs)";
    ok = SameStatus(what,
                    reference.PairImportance(values, segments, width, norm, num_segments, &pa, &oa),
                    candidate.PairImportance(values, segments, width, norm, num_segments, &pb, &ob),
                    diffs) &&
         ok;
    if (status != n) continue;
    ok = CompareArray(what, pa, pb, diffs, 5) && ok;
    ok = CompareArray("pair occurrences", oa, ob, diffs, 5) && ok;
  }
  return ok;
}

}  // namespace

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
  int lookups = 0;
  int64_t dangling_seen = 0;  // hot slots emptied by an underflow (see README)
  int migrations = 0;
  bool ok = true;
  std::vector<int64_t> keys, ids;
  std::vector<float> importance;
  std::vector<int32_t> feature_index, rows_a, rows_b, levels_a, levels_b;
  for (int step = 0; step < sc.steps && ok; ++step) {
    BatchSpec spec = sc.batch;
    spec.rank_offset = sc.batch.rank_offset + sc.drift * step;
    if (!sc.modes.empty()) spec.importance = sc.modes[static_cast<size_t>(step) % sc.modes.size()];
    if (sc.vary_size && step % 3 != 0 && spec.n > 1)
      spec.n = 1 + static_cast<int64_t>(rng.Below(static_cast<uint64_t>(spec.n)));
    if (sc.empty_every > 0 && step % sc.empty_every == sc.empty_every - 1) spec.n = 0;
    if (sc.corrupt_every > 0 && step % sc.corrupt_every == sc.corrupt_every - 1)
      spec.corrupt = static_cast<int>(rng.Below(6));
    MakeBatch(spec, rng, zipf, &keys, &importance, &feature_index);

    where = "insert step " + std::to_string(step) + " (n=" + std::to_string(spec.n) + ")";
    const InsertOutcome a = reference.Insert(keys, importance, feature_index);
    const InsertOutcome b = candidate.Insert(keys, importance, feature_index);
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
    if (!ok) break;
    where = "route and occurrence sums after step " + std::to_string(step);
    ok = CompareLookup(step, sc.seed, ids, feature_index, reference, candidate, &diffs);
    ++lookups;
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
              " decays, %" PRId64 " demoted, %" PRId64 " promoted), %d routes summed, final %" PRId64
              "/%zu slots occupied, %" PRId64 " hot, %" PRId64 " pending; max %" PRId64
              " empty hot slots\n",
              ok ? "PASS" : "FAIL", sc.name.c_str(), reference.name().c_str(),
              candidate.name().c_str(), sc.steps, inserted, invalid, queried, migrations, decays,
              demoted, promoted, lookups, occupied, final_state.scores.size(), hot, pending,
              dangling_seen);
  if (!ok) {
    std::printf("     first mismatch at %s:\n", where.c_str());
    for (const std::string& d : diffs) std::printf("       %s\n", d.c_str());
  }
  std::fflush(stdout);
  return ok;
}

}  // namespace harness
}  // namespace cafe
