// Inputs of the HotSketch ops shared by the CPU kernels (hotsketch_ops.cc) and
// the GPU kernels (../cuda/tf_gpu_kernels.cc): the order and dtypes of the
// state variables, the shape checks of an insert batch, and the migrate op's
// attributes.
#ifndef CAFE_TF_TF_SKETCH_OP_INPUTS_H_
#define CAFE_TF_TF_SKETCH_OP_INPUTS_H_

#include <string>

#include "../core/hotsketch.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/framework/types.h"
#include "tensorflow/core/platform/errors.h"
#include "tensorflow/core/platform/status.h"

namespace tensorflow {
namespace cafe_ops {

// Variable inputs shared by the mutating ops, in this order.
//
// The state's int32 arrays -- rows [W*c], row_slot [H], row_tag [H] -- lie back to
// back in one int64 variable ("packed_int32", PackedInt64Elements long): TF keeps
// int32 variables in host memory (there is no int32 VarHandleOp on GPUs) and its
// collectives (MultiWorkerMirroredStrategy's initial broadcast) have no uint32,
// while int64 variables live on any device and are copied bit for bit.
enum StateInput { kKeys = 0, kScores, kPackedInt32, kMass, kBatches, kNumStateInputs };
inline constexpr DataType kStateDtypes[kNumStateInputs] = {DT_INT64, DT_FLOAT, DT_INT64,
                                                           DT_FLOAT, DT_INT64};
inline constexpr const char* kStateNames[kNumStateInputs] = {"keys", "scores", "packed_int32",
                                                             "mass", "batches"};

inline int64_t PackedInt64Elements(int64_t slots, int64_t hot_rows) {
  return (slots + 2 * hot_rows + 1) / 2;
}

// The int32 arrays inside a packed_int32 buffer of a sketch with `slots` slots
// and `hot_rows` hot rows.
struct Int32Arrays {
  int32_t* rows;
  int32_t* row_slot;
  int32_t* row_tag;
};
inline Int32Arrays UnpackInt32(void* packed, int64_t slots, int64_t hot_rows) {
  int32_t* words = static_cast<int32_t*>(packed);
  return {words, words + slots, words + slots + hot_rows};
}

// Checks the dtypes and shapes of the state variables' tensors (`state[i]` is
// variable i's tensor) for a sketch with `hot_rows` hot rows.
inline Status CheckStateTensors(const Tensor* const* state, int64_t hot_rows) {
  for (int i = 0; i < kNumStateInputs; ++i) {
    if (state[i]->dtype() != kStateDtypes[i]) {
      return errors::InvalidArgument("sketch variable '", kStateNames[i], "' must be ",
                                     DataTypeString(kStateDtypes[i]), ", got ",
                                     DataTypeString(state[i]->dtype()));
    }
  }
  const TensorShape& keys = state[kKeys]->shape();
  if (keys.dims() != 2 || keys.dim_size(0) <= 0 || keys.dim_size(1) <= 0) {
    return errors::InvalidArgument("sketch keys must have shape [W, c] with W, c > 0, got ",
                                   keys.DebugString());
  }
  if (state[kScores]->shape() != keys) {
    return errors::InvalidArgument("sketch scores must have the shape of keys ",
                                   keys.DebugString(), ", got ",
                                   state[kScores]->shape().DebugString());
  }
  if (hot_rows <= 0) {
    return errors::InvalidArgument("hot_rows must be > 0, got ", hot_rows);
  }
  const int64_t packed = PackedInt64Elements(keys.num_elements(), hot_rows);
  if (state[kPackedInt32]->shape() != TensorShape({packed})) {
    return errors::InvalidArgument("sketch packed_int32 must have shape [", packed,
                                   "] for ", keys.num_elements(), " slots and ", hot_rows,
                                   " hot rows, got ", state[kPackedInt32]->shape().DebugString());
  }
  if (state[kMass]->NumElements() != 1 || state[kBatches]->NumElements() != 1) {
    return errors::InvalidArgument("sketch mass and batches must be scalars");
  }
  return OkStatus();
}

// The state a query reads: keys and scores [W, c], and the packed_int32 value,
// whose first W*c int32 words are the slots' hot rows.
inline Status CheckQueryState(const Tensor& keys, const Tensor& scores, const Tensor& packed) {
  if (keys.dims() != 2 || keys.dim_size(0) <= 0 || keys.dim_size(1) <= 0) {
    return errors::InvalidArgument("sketch keys must have shape [W, c] with W, c > 0, got ",
                                   keys.shape().DebugString());
  }
  if (scores.shape() != keys.shape()) {
    return errors::InvalidArgument("sketch keys and scores must have one shape, got ",
                                   keys.shape().DebugString(), " and ",
                                   scores.shape().DebugString());
  }
  // The rows (one int32 per slot) and at least one hot row's two words.
  if (packed.dims() != 1 || 2 * packed.NumElements() < keys.NumElements() + 2) {
    return errors::InvalidArgument("sketch packed_int32 must be a vector of at least ",
                                   (keys.NumElements() + 3) / 2, " int64 (the ",
                                   keys.NumElements(), " slots' rows and a hot row), got shape ",
                                   packed.shape().DebugString());
  }
  return OkStatus();
}

// The read-only sketch state of query inputs checked by CheckQueryState.
inline cafe::ConstSketchState QueryStateOf(const Tensor& keys, const Tensor& scores,
                                           const Tensor& packed) {
  return {keys.flat<int64_t>().data(), scores.flat<float>().data(),
          reinterpret_cast<const int32_t*>(packed.flat<int64_t>().data())};
}

// An insert batch is three vectors of one length: ids, importance, tags.
inline Status CheckInsertShapes(const Tensor& ids, const Tensor& importance, const Tensor& tags) {
  if (ids.dims() != 1) {
    return errors::InvalidArgument("ids must be a vector, got shape ", ids.shape().DebugString());
  }
  if (importance.shape() != ids.shape() || tags.shape() != ids.shape()) {
    return errors::InvalidArgument("ids, importance and tags must have the same length, got ",
                                   ids.shape().DebugString(), ", ",
                                   importance.shape().DebugString(), " and ",
                                   tags.shape().DebugString());
  }
  return OkStatus();
}

// CafeSketchMigrate's attributes as a SketchConfig; its sizes come from the
// state at each call (SizedMigrateConfig).
inline Status ReadMigrateAttrs(OpKernelConstruction* ctx, cafe::SketchConfig* config) {
  TF_RETURN_IF_ERROR(ctx->GetAttr("hot_rows", &config->hot_rows));
  TF_RETURN_IF_ERROR(ctx->GetAttr("threshold", &config->threshold));
  TF_RETURN_IF_ERROR(ctx->GetAttr("demote_threshold", &config->demote_threshold));
  TF_RETURN_IF_ERROR(ctx->GetAttr("decay_rate", &config->decay_rate));
  std::string rule;
  TF_RETURN_IF_ERROR(ctx->GetAttr("decay_rule", &rule));
  config->decay_rule = rule == "mass" ? cafe::DecayRule::kMass : cafe::DecayRule::kBatches;
  float factor;
  TF_RETURN_IF_ERROR(ctx->GetAttr("decay_mass_factor", &factor));
  config->decay_mass_factor = factor;
  TF_RETURN_IF_ERROR(ctx->GetAttr("swap_margin", &config->swap_margin));
  return ctx->GetAttr("decay_period", &config->decay_period);
}

// The attributes' config sized to the state, or an error naming what is wrong.
inline Status SizedMigrateConfig(const cafe::SketchConfig& attrs, int64_t num_buckets,
                                 int32_t slots_per_bucket, cafe::SketchConfig* config) {
  *config = attrs;
  config->num_buckets = num_buckets;
  config->slots_per_bucket = slots_per_bucket;
  const std::string problem = config->Validate();
  if (!problem.empty()) return errors::InvalidArgument("CafeSketchMigrate: ", problem);
  return OkStatus();
}

}  // namespace cafe_ops
}  // namespace tensorflow

#endif  // CAFE_TF_TF_SKETCH_OP_INPUTS_H_
