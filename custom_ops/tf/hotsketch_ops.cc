// TensorFlow shell over the HotSketch core: op registration, shape functions,
// input checks and variable locking. All semantics live in ../core.
#define EIGEN_USE_THREADS

#include <algorithm>
#include <string>
#include <vector>

#include "../core/hotsketch.h"
#include "sketch_op_inputs.h"
#include "thread_pool_for.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/resource_var.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/kernels/training_op_helpers.h"
#include "tensorflow/core/platform/mutex.h"
#include "tensorflow/core/platform/threadpool.h"

namespace tensorflow {
namespace {

using CPUDevice = Eigen::ThreadPoolDevice;
using shape_inference::InferenceContext;
using shape_inference::ShapeHandle;

using namespace cafe_ops;  // NOLINT: the shared state-input names

// Locks the state variables, makes their buffers exclusively ours
// (copy-on-write) and checks dtypes and shapes. Holds the locks while alive.
class LockedState {
 public:
  explicit LockedState(OpKernelContext* ctx)
      : lock_(MaybeLockVariableInputMutexesInOrder<CPUDevice, float>(
            ctx, /*do_lock=*/true, /*sparse=*/false, InputIds())) {
    const Tensor* tensors[kNumStateInputs];
    for (int i = 0; i < kNumStateInputs; ++i) {
      core::RefCountPtr<Var> var;
      OP_REQUIRES_OK(ctx, LookupResource(ctx, HandleFromInput(ctx, i), &var));
      tensors[i] = var->tensor();
      vars_[i] = std::move(var);
    }
    OP_REQUIRES_OK(ctx, CheckStateTensors(tensors));
    ok_ = true;
  }

  // Call once the inputs are validated: from here on the buffers may change.
  Status PrepareForUpdate(OpKernelContext* ctx) {
    TF_RETURN_IF_ERROR(Prepare<int64_t>(ctx, kSlots));
    TF_RETURN_IF_ERROR(Prepare<float>(ctx, kScores));
    TF_RETURN_IF_ERROR(Prepare<float>(ctx, kMass));
    return Prepare<int64_t>(ctx, kBatches);
  }

  bool ok() const { return ok_; }
  int64_t num_buckets() const { return vars_[kSlots]->tensor()->dim_size(0); }
  int32_t slots_per_bucket() const { return vars_[kSlots]->tensor()->dim_size(1); }
  // The slot words, read-only (before PrepareForUpdate too).
  const int64_t* slots() const { return vars_[kSlots]->tensor()->flat<int64_t>().data(); }

  // Valid after PrepareForUpdate.
  cafe::SketchState state() {
    return {tensors_[kSlots].flat<int64_t>().data(), tensors_[kScores].flat<float>().data(),
            tensors_[kMass].flat<float>().data(), tensors_[kBatches].flat<int64_t>().data()};
  }

 private:
  static std::vector<int> InputIds() {
    std::vector<int> ids;
    for (int i = 0; i < kNumStateInputs; ++i) ids.push_back(i);
    return ids;
  }

  template <typename T>
  Status Prepare(OpKernelContext* ctx, int i) {
    // PrepareToUpdateVariable copies the buffer whenever its refcount is not
    // one, so no Tensor copy of ours may be alive here (it would force a full
    // copy of the state on every update).
    TF_RETURN_IF_ERROR(PrepareToUpdateVariable<CPUDevice, T>(ctx, vars_[i]->tensor(),
                                                             vars_[i]->copy_on_read_mode.load()));
    tensors_[i] = *vars_[i]->tensor();
    return OkStatus();
  }

  VariableInputLockHolder lock_;
  core::RefCountPtr<Var> vars_[kNumStateInputs];
  Tensor tensors_[kNumStateInputs];
  bool ok_ = false;
};

Status StateShapes(InferenceContext* c) {
  for (int i = 0; i < kNumStateInputs; ++i) {
    ShapeHandle unused;
    TF_RETURN_IF_ERROR(c->WithRank(c->input(i), 0, &unused));
  }
  return OkStatus();
}

REGISTER_OP("CafeSketchInsert")
    .Input("slots_var: resource")
    .Input("scores_var: resource")
    .Input("mass_var: resource")
    .Input("batches_var: resource")
    .Input("ids: int64")
    .Input("importance: float")
    .Input("feature_index: int32")
    .Attr("tag_bits: int = 0")
    .Attr("second_sighting: bool = true")
    .Attr("replacement: {'erode', 'inherit'} = 'erode'")
    .Attr("num_threads: int = 0")
    .SetIsStateful()
    .SetShapeFn([](InferenceContext* c) {
      TF_RETURN_IF_ERROR(StateShapes(c));
      ShapeHandle ids, importance, feature_index;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(kNumStateInputs), 1, &ids));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(kNumStateInputs + 1), 1, &importance));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(kNumStateInputs + 2), 1, &feature_index));
      TF_RETURN_IF_ERROR(c->Merge(ids, importance, &ids));
      return c->Merge(ids, feature_index, &ids);
    })
    .Doc(R"doc(
Inserts a batch of (id, importance, feature index) into a HotSketch held in
variables, in place. Duplicate ids are summed; each bucket processes its
distinct ids in ascending order, so the state does not depend on the thread
count. Slots match ids by their 32-bit fingerprint. Feature indices must be in
[0, 2^tag_bits): a slot keeps its key's in its entry's tag field. A miss in a
full bucket erodes its smallest non-hot score and takes the slot with what is
left (replacement 'erode'), or takes the slot
and inherits the score ('inherit', SpaceSaving as in the paper). With
second_sighting, an id that takes a slot over is not promotable until it is
seen again (docs/sketch.md).
)doc");

class CafeSketchInsertOp : public OpKernel {
 public:
  explicit CafeSketchInsertOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, cafe_ops::ReadInsertAttrs(ctx, &attrs_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& ids = ctx->input(kNumStateInputs);
    const Tensor& importance = ctx->input(kNumStateInputs + 1);
    const Tensor& feature_index = ctx->input(kNumStateInputs + 2);
    OP_REQUIRES_OK(ctx, cafe_ops::CheckInsertShapes(ids, importance, feature_index));
    const int64_t n = ids.NumElements();
    const std::string problem =
        cafe::ValidateInsert(importance.flat<float>().data(),
                             feature_index.flat<int32_t>().data(), n, attrs_.tag_bits);
    OP_REQUIRES(ctx, problem.empty(), errors::InvalidArgument("CafeSketchInsert: ", problem));
    LockedState locked(ctx);
    if (!locked.ok() || n == 0) return;
    OP_REQUIRES_OK(ctx, locked.PrepareForUpdate(ctx));
    cafe::SketchConfig config;
    config.num_buckets = locked.num_buckets();
    config.slots_per_bucket = locked.slots_per_bucket();
    config.tag_bits = attrs_.tag_bits;
    config.second_sighting = attrs_.second_sighting;
    config.erode = attrs_.erode;
    const int threads = ThreadsFor(ctx, attrs_.num_threads);
    // The core splits the batch into `threads` tasks itself (fewer for small batches),
    // which share out its work dynamically.
    cafe::Insert(config, locked.state(), ids.flat<int64_t>().data(), importance.flat<float>().data(),
                 feature_index.flat<int32_t>().data(), n, threads,
                 MakeParallelFor(ctx, threads, 1));
  }

 private:
  cafe_ops::InsertAttrs attrs_;
};
REGISTER_KERNEL_BUILDER(Name("CafeSketchInsert").Device(DEVICE_CPU), CafeSketchInsertOp);

REGISTER_OP("CafeSketchQuery")
    .Input("slots: int64")
    .Input("scores: float")
    .Input("ids: int64")
    .Output("hot_rows: int32")
    .Output("levels: int32")
    .Attr("medium_threshold: float")
    .Attr("tag_bits: int = 0")
    .Attr("num_threads: int = 0")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle slots;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 2, &slots));
      TF_RETURN_IF_ERROR(c->Merge(slots, c->input(1), &slots));
      c->set_output(0, c->input(2));
      c->set_output(1, c->input(2));
      return OkStatus();
    })
    .Doc(R"doc(
Looks ids up in a HotSketch: hot row (or -1) and level (0 cold, 1 medium,
2 hot) per id, with the shape of ids. Read-only. slots and scores are the
values of the sketch's variables; tag_bits is the sketch's.
)doc");

class CafeSketchQueryOp : public OpKernel {
 public:
  explicit CafeSketchQueryOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("medium_threshold", &medium_threshold_));
    OP_REQUIRES_OK(ctx, cafe_ops::ReadTagBits(ctx, &tag_bits_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("num_threads", &num_threads_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& slots = ctx->input(0);
    const Tensor& scores = ctx->input(1);
    const Tensor& ids = ctx->input(2);
    OP_REQUIRES_OK(ctx, CheckQueryState(slots, scores));
    Tensor* hot_rows = nullptr;
    Tensor* levels = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, ids.shape(), &hot_rows));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, ids.shape(), &levels));
    cafe::SketchConfig config;
    config.num_buckets = slots.dim_size(0);
    config.slots_per_bucket = slots.dim_size(1);
    config.tag_bits = tag_bits_;
    config.medium_threshold = medium_threshold_;
    cafe::Query(config, QueryStateOf(slots, scores), ids.flat<int64_t>().data(), ids.NumElements(), hot_rows->flat<int32_t>().data(),
                levels->flat<int32_t>().data(),
                MakeParallelFor(ctx, ThreadsFor(ctx, num_threads_), kQueryIdsPerPart));
  }

 private:
  float medium_threshold_;
  int32_t tag_bits_;
  int num_threads_;
};
REGISTER_KERNEL_BUILDER(Name("CafeSketchQuery").Device(DEVICE_CPU), CafeSketchQueryOp);

REGISTER_OP("CafeSketchMigrate")
    .Input("slots_var: resource")
    .Input("scores_var: resource")
    .Input("mass_var: resource")
    .Input("batches_var: resource")
    .Input("force_decay: bool")
    .Output("decayed: bool")
    .Output("demoted_fingerprints: int64")
    .Output("demoted_feature_index: int32")
    .Output("demoted_rows: int32")
    .Output("promoted_fingerprints: int64")
    .Output("promoted_feature_index: int32")
    .Output("promoted_rows: int32")
    .Attr("hot_rows: int")
    .Attr("tag_bits: int = 0")
    .Attr("threshold: float")
    .Attr("demote_threshold: float")
    .Attr("decay_rate: float")
    .Attr("decay_rule: {'mass', 'batches'} = 'mass'")
    .Attr("decay_mass_factor: float = 10.0")
    .Attr("decay_period: int = 0")
    .Attr("swap_margin: float = 0.0")
    .Attr("fill_free_rows: bool = false")
    .Attr("yield_threshold: float = 0.0")
    .SetIsStateful()
    .SetShapeFn([](InferenceContext* c) {
      TF_RETURN_IF_ERROR(StateShapes(c));
      c->set_output(0, c->Scalar());
      for (int i = 1; i < 7; ++i) c->set_output(i, c->Vector(InferenceContext::kUnknownDim));
      return OkStatus();
    })
    .Doc(R"doc(
Decays the sketch when due (or forced) by decay_rate once per period due,
demoting hot keys whose score fell below demote_threshold; with swap_margin
> 0, demotes the weakest hot keys that the candidates beyond the free rows
find below yield_threshold or outscore by that factor; then promotes non-hot keys seen since they took their
slot (not pending) with score >= threshold (score descending, fingerprint
ascending, slot ascending) into free hot rows in ascending order; with
fill_free_rows, then the other non-hot, non-pending keys (score > 0) into the
rows still free, in the same order.
Returns what it did: (fingerprint, feature index (the entry's tag), row) per
demoted and promoted key.
)doc");

class CafeSketchMigrateOp : public OpKernel {
 public:
  explicit CafeSketchMigrateOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, cafe_ops::ReadMigrateAttrs(ctx, &config_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& force = ctx->input(kNumStateInputs);
    OP_REQUIRES(ctx, force.NumElements() == 1,
                errors::InvalidArgument("force_decay must be a scalar"));
    LockedState locked(ctx);
    if (!locked.ok()) return;
    cafe::SketchConfig config;
    OP_REQUIRES_OK(ctx, cafe_ops::SizedMigrateConfig(config_, locked.num_buckets(),
                                                     locked.slots_per_bucket(), &config));
    const std::string problem = cafe::CheckHotRows(config, locked.slots());
    OP_REQUIRES(ctx, problem.empty(), errors::InvalidArgument("CafeSketchMigrate: ", problem));
    OP_REQUIRES_OK(ctx, locked.PrepareForUpdate(ctx));
    const cafe::MigrationResult result =
        cafe::Migrate(config, locked.state(), force.scalar<bool>()());
    Tensor* decayed = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({}), &decayed));
    decayed->scalar<bool>()() = result.decayed;
    OP_REQUIRES_OK(ctx, Emit(ctx, 1, result.demoted));
    OP_REQUIRES_OK(ctx, Emit(ctx, 4, result.promoted));
  }

 private:
  static Status Emit(OpKernelContext* ctx, int first,
                     const std::vector<cafe::MigrationEntry>& entries) {
    const int64_t n = entries.size();
    Tensor *fingerprints, *tags, *rows;
    TF_RETURN_IF_ERROR(ctx->allocate_output(first, TensorShape({n}), &fingerprints));
    TF_RETURN_IF_ERROR(ctx->allocate_output(first + 1, TensorShape({n}), &tags));
    TF_RETURN_IF_ERROR(ctx->allocate_output(first + 2, TensorShape({n}), &rows));
    for (int64_t i = 0; i < n; ++i) {
      fingerprints->flat<int64_t>()(i) = entries[i].fingerprint;
      tags->flat<int32_t>()(i) = entries[i].tag;
      rows->flat<int32_t>()(i) = entries[i].row;
    }
    return OkStatus();
  }

  cafe::SketchConfig config_;
};
REGISTER_KERNEL_BUILDER(Name("CafeSketchMigrate").Device(DEVICE_CPU), CafeSketchMigrateOp);

}  // namespace
}  // namespace tensorflow
