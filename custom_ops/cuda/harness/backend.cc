#include "backend.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <thread>

#include "../../core/id_range.h"
#include "../../core/occurrences.h"

namespace cafe {
namespace harness {

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

int64_t FirstInvalid(const std::vector<float>& importance,
                     const std::vector<int32_t>& feature_index, int32_t tag_bits) {
  for (size_t i = 0; i < importance.size(); ++i) {
    const float v = importance[i];
    if (std::isnan(v) || std::isinf(v) || v < 0.f || feature_index[i] < 0 ||
        feature_index[i] >= (int64_t{1} << tag_bits))
      return static_cast<int64_t>(i);
  }
  return -1;
}

namespace {

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
                       const std::vector<int32_t>& feature_index) override {
    InsertOutcome out;
    const int64_t n = static_cast<int64_t>(keys.size());
    const std::string problem =
        ValidateInsert(importance.data(), feature_index.data(), n, config_.tag_bits);
    out.status = FirstInvalid(importance, feature_index, config_.tag_bits);
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
    cafe::Insert(c, state_.view(), keys.data(), importance.data(), feature_index.data(), n,
                 threads_, parallel_for_);
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
  void Route(const RouteTables& tables, const std::vector<int64_t>& ids,
             const std::vector<int32_t>& feature_index, RouteResult* result,
             std::vector<int32_t>* inverse) override {
    inverse->assign(ids.size(), 0);
    const ConstSketchState view{state_.slots.data(), state_.scores.data()};
    cafe::Route(config_, view, tables, ids.data(), feature_index.data(),
                static_cast<int64_t>(ids.size()), inverse->data(), result, parallel_for_);
  }
  void FieldKeys(const std::vector<std::vector<int64_t>>& ids, std::vector<int64_t>* keys,
                 std::vector<int32_t>* feature_index) override {
    size_t offset = 0;
    for (const std::vector<int64_t>& f : ids) offset += f.size();
    keys->assign(offset, 0);
    feature_index->assign(offset, 0);
    offset = 0;
    for (size_t f = 0; f < ids.size(); ++f) {
      cafe::FieldKeys(ids[f].data(), static_cast<int64_t>(ids[f].size()),
                      static_cast<int32_t>(f), keys->data() + offset,
                      feature_index->data() + offset);
      offset += ids[f].size();
    }
  }
  int64_t SegmentRowSums(const std::vector<float>& rows, const std::vector<int32_t>& segments,
                         int64_t d, int64_t num_segments, std::vector<float>* out) override {
    const int64_t n = static_cast<int64_t>(segments.size());
    const int64_t status = FirstOutOfRange(segments.data(), n, num_segments);
    out->assign(num_segments * d, 0.f);
    if (status == n) {
      cafe::SegmentRowSums(rows.data(), segments.data(), n, d, num_segments, out->data());
    }
    return status;
  }
  int64_t PairImportance(const std::vector<float>& rows, const std::vector<int32_t>& pairs,
                         int64_t d, bool norm, int64_t num_pairs, std::vector<double>* sums,
                         std::vector<double>* occurrences) override {
    const int64_t n = static_cast<int64_t>(pairs.size());
    const int64_t status = FirstOutOfRange(pairs.data(), n, num_pairs);
    sums->assign(num_pairs, 0.0);
    occurrences->assign(num_pairs, 0.0);
    if (status == n) {
      PairSums(rows.data(), pairs.data(), n, d, norm, num_pairs, sums->data(),
               occurrences->data());
    }
    return status;
  }

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

}  // namespace harness
}  // namespace cafe
