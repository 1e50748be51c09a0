// A HotSketch implementation under comparison (a backend) and the
// authoritative one: the CPU core (custom_ops/core).
#ifndef CAFE_TF_CUDA_HARNESS_BACKEND_H_
#define CAFE_TF_CUDA_HARNESS_BACKEND_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "../../core/hotsketch.h"
#include "../../core/routing.h"

namespace cafe {
namespace harness {

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
                               const std::vector<int32_t>& feature_index) = 0;
  virtual void Query(const std::vector<int64_t>& ids, std::vector<int32_t>* rows,
                     std::vector<int32_t>* levels) = 0;
  virtual MigrationResult Migrate(bool force_decay) = 0;
  virtual Snapshot Read() = 0;
  // cafe::Route over the backend's state: *result, and *inverse (one per id).
  virtual void Route(const RouteTables& tables, const std::vector<int64_t>& ids,
                     const std::vector<int32_t>& feature_index, RouteResult* result,
                     std::vector<int32_t>* inverse) = 0;
  // cafe::FieldKeys of each feature's ids, the features one after another (CafeFieldKeys).
  virtual void FieldKeys(const std::vector<std::vector<int64_t>>& ids, std::vector<int64_t>* keys,
                         std::vector<int32_t>* feature_index) = 0;
  // cafe::SegmentRowSums of rows [n, d]; returns n when every segment id is
  // valid, else the first invalid index (then *out is not compared).
  virtual int64_t SegmentRowSums(const std::vector<float>& rows,
                                 const std::vector<int32_t>& segments, int64_t d,
                                 int64_t num_segments, std::vector<float>* out) = 0;
  // cafe::PairSums of rows [n, d]; returns as SegmentRowSums does.
  virtual int64_t PairImportance(const std::vector<float>& rows, const std::vector<int32_t>& pairs,
                                 int64_t d, bool norm, int64_t num_pairs,
                                 std::vector<double>* sums, std::vector<double>* occurrences) = 0;
};

// The authoritative CPU core (custom_ops/core), with `threads` shards run on
// std::threads (1 = serial).
std::unique_ptr<Backend> MakeCoreBackend(int threads);

// ParallelFor over std::threads (for the CPU throughput figure).
ParallelFor ThreadParallelFor(int threads);

// The first invalid index of a batch by exactly the test of
// cafe::ValidateInsert, or -1.
int64_t FirstInvalid(const std::vector<float>& importance,
                     const std::vector<int32_t>& feature_index, int32_t tag_bits);

}  // namespace harness
}  // namespace cafe

#endif  // CAFE_TF_CUDA_HARNESS_BACKEND_H_
