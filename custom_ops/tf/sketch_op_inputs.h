// Inputs of the HotSketch ops shared by the CPU kernels (hotsketch_ops.cc) and
// the GPU kernels (gpu_kernels.cc): the order and dtypes of the
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
// A slot is one int64 word (its key's 32-bit fingerprint in the high half, an
// int32 entry -- hot row and tag, or a cold marker -- in the low half) and one
// float32 score: 12 bytes, and only int64/float32 variables, which live on
// any device (TF keeps int32 variables in host memory) and which collectives
// copy bit for bit.
enum StateInput { kSlots = 0, kScores, kMass, kBatches, kNumStateInputs };
inline constexpr DataType kStateDtypes[kNumStateInputs] = {DT_INT64, DT_FLOAT, DT_FLOAT,
                                                           DT_INT64};
inline constexpr const char* kStateNames[kNumStateInputs] = {"slots", "scores", "mass",
                                                             "batches"};

// Checks the dtypes and shapes of the state variables' tensors (`state[i]` is
// variable i's tensor).
inline Status CheckStateTensors(const Tensor* const* state) {
  for (int i = 0; i < kNumStateInputs; ++i) {
    if (state[i]->dtype() != kStateDtypes[i]) {
      return errors::InvalidArgument("sketch variable '", kStateNames[i], "' must be ",
                                     DataTypeString(kStateDtypes[i]), ", got ",
                                     DataTypeString(state[i]->dtype()));
    }
  }
  const TensorShape& slots = state[kSlots]->shape();
  if (slots.dims() != 2 || slots.dim_size(0) <= 0 || slots.dim_size(1) <= 0) {
    return errors::InvalidArgument("sketch slots must have shape [W, c] with W, c > 0, got ",
                                   slots.DebugString());
  }
  if (state[kScores]->shape() != slots) {
    return errors::InvalidArgument("sketch scores must have the shape of slots ",
                                   slots.DebugString(), ", got ",
                                   state[kScores]->shape().DebugString());
  }
  if (state[kMass]->NumElements() != 1 || state[kBatches]->NumElements() != 1) {
    return errors::InvalidArgument("sketch mass and batches must be scalars");
  }
  return OkStatus();
}

// The state a query reads: slots and scores [W, c].
inline Status CheckQueryState(const Tensor& slots, const Tensor& scores) {
  if (slots.dims() != 2 || slots.dim_size(0) <= 0 || slots.dim_size(1) <= 0) {
    return errors::InvalidArgument("sketch slots must have shape [W, c] with W, c > 0, got ",
                                   slots.shape().DebugString());
  }
  if (scores.shape() != slots.shape()) {
    return errors::InvalidArgument("sketch slots and scores must have one shape, got ",
                                   slots.shape().DebugString(), " and ",
                                   scores.shape().DebugString());
  }
  return OkStatus();
}

// The read-only sketch state of query inputs checked by CheckQueryState.
inline cafe::ConstSketchState QueryStateOf(const Tensor& slots, const Tensor& scores) {
  return {slots.flat<int64_t>().data(), scores.flat<float>().data()};
}

// The tag_bits attribute, checked: tags of [0, 2^tag_bits) fit an entry.
inline Status ReadTagBits(OpKernelConstruction* ctx, int32_t* tag_bits) {
  TF_RETURN_IF_ERROR(ctx->GetAttr("tag_bits", tag_bits));
  if (*tag_bits < 0 || *tag_bits > cafe::kMaxTagBits) {
    return errors::InvalidArgument("tag_bits must be in [0, ", cafe::kMaxTagBits, "], got ",
                                   *tag_bits);
  }
  return OkStatus();
}

// CafeSketchInsert's attributes, read and checked once for the CPU and the GPU kernel.
struct InsertAttrs {
  int32_t tag_bits = 0;
  bool second_sighting = false;
  bool erode = false;   // replacement "erode", else "inherit"
  int num_threads = 0;  // CPU only: 0 = TensorFlow's intra-op pool
};

inline Status ReadInsertAttrs(OpKernelConstruction* ctx, InsertAttrs* attrs) {
  TF_RETURN_IF_ERROR(ReadTagBits(ctx, &attrs->tag_bits));
  TF_RETURN_IF_ERROR(ctx->GetAttr("second_sighting", &attrs->second_sighting));
  std::string replacement;
  TF_RETURN_IF_ERROR(ctx->GetAttr("replacement", &replacement));
  attrs->erode = replacement == "erode";
  TF_RETURN_IF_ERROR(ctx->GetAttr("num_threads", &attrs->num_threads));
  if (attrs->num_threads < 0) {
    return errors::InvalidArgument("num_threads must be >= 0, got ", attrs->num_threads);
  }
  return OkStatus();
}

// An insert batch is three vectors of one length: ids, importance, feature_index.
inline Status CheckInsertShapes(const Tensor& ids, const Tensor& importance,
                                const Tensor& feature_index) {
  if (ids.dims() != 1) {
    return errors::InvalidArgument("ids must be a vector, got shape ", ids.shape().DebugString());
  }
  if (importance.shape() != ids.shape() || feature_index.shape() != ids.shape()) {
    return errors::InvalidArgument("ids, importance and feature_index must have the same "
                                   "length, got ", ids.shape().DebugString(), ", ",
                                   importance.shape().DebugString(), " and ",
                                   feature_index.shape().DebugString());
  }
  return OkStatus();
}

// CafeSketchMigrate's attributes as a SketchConfig; its sizes come from the
// state at each call (SizedMigrateConfig).
inline Status ReadMigrateAttrs(OpKernelConstruction* ctx, cafe::SketchConfig* config) {
  TF_RETURN_IF_ERROR(ctx->GetAttr("hot_rows", &config->hot_rows));
  TF_RETURN_IF_ERROR(ReadTagBits(ctx, &config->tag_bits));
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
  TF_RETURN_IF_ERROR(ctx->GetAttr("fill_free_rows", &config->fill_free_rows));
  TF_RETURN_IF_ERROR(ctx->GetAttr("yield_threshold", &config->yield_threshold));
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
