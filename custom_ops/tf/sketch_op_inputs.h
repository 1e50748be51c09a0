// Inputs of the HotSketch ops shared by the CPU kernels (hotsketch_ops.cc) and
// the GPU kernels (../cuda/tf_gpu_kernels.cc): the order and dtypes of the
// state variables, and the shape checks of an insert batch.
#ifndef CAFE_TF_TF_SKETCH_OP_INPUTS_H_
#define CAFE_TF_TF_SKETCH_OP_INPUTS_H_

#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/framework/types.h"
#include "tensorflow/core/platform/errors.h"
#include "tensorflow/core/platform/status.h"

namespace tensorflow {
namespace cafe_ops {

// Variable inputs shared by the mutating ops, in this order.
enum StateInput { kKeys = 0, kScores, kRows, kTags, kRowSlot, kMass, kBatches, kNumStateInputs };
inline constexpr DataType kStateDtypes[kNumStateInputs] = {DT_INT64, DT_FLOAT, DT_INT32,
                                                           DT_INT32, DT_INT32, DT_FLOAT,
                                                           DT_INT64};
inline constexpr const char* kStateNames[kNumStateInputs] = {"keys", "scores", "rows", "tags",
                                                             "row_slot", "mass", "batches"};

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

}  // namespace cafe_ops
}  // namespace tensorflow

#endif  // CAFE_TF_TF_SKETCH_OP_INPUTS_H_
