// Attributes and input checks of the CafeRoute and CafeFieldKeys ops (routing_ops.cc),
// shared by their CPU kernels there and their GPU kernels (gpu_kernels.cc).
#ifndef CAFE_TF_TF_ROUTING_OP_INPUTS_H_
#define CAFE_TF_TF_ROUTING_OP_INPUTS_H_

#include <string>

#include "../core/routing.h"
#include "sketch_op_inputs.h"

namespace tensorflow {
namespace cafe_ops {

struct RouteAttrs {
  cafe::RouteTables tables;
  float medium_threshold = 0.0f;
  int32_t tag_bits = 0;
};

// Reads and checks the op's attributes (the packed tables, the medium threshold, tag_bits).
inline Status ReadRouteAttrs(OpKernelConstruction* ctx, RouteAttrs* attrs) {
  TF_RETURN_IF_ERROR(ctx->GetAttr("hashed_offsets", &attrs->tables.hashed_offsets));
  TF_RETURN_IF_ERROR(ctx->GetAttr("hashed_sizes", &attrs->tables.hashed_sizes));
  TF_RETURN_IF_ERROR(ctx->GetAttr("medium_offsets", &attrs->tables.medium_offsets));
  TF_RETURN_IF_ERROR(ctx->GetAttr("medium_sizes", &attrs->tables.medium_sizes));
  TF_RETURN_IF_ERROR(ctx->GetAttr("medium_threshold", &attrs->medium_threshold));
  TF_RETURN_IF_ERROR(ReadTagBits(ctx, &attrs->tag_bits));
  const std::string problem = attrs->tables.Validate();
  if (!problem.empty()) return errors::InvalidArgument("CafeRoute: ", problem);
  return OkStatus();
}

// The sketch state a route reads, and ids and feature_index: vectors of one length.
inline Status CheckRouteInputs(const Tensor& slots, const Tensor& scores, const Tensor& ids,
                               const Tensor& feature_index) {
  TF_RETURN_IF_ERROR(CheckQueryState(slots, scores));
  if (ids.dims() != 1 || feature_index.shape() != ids.shape()) {
    return errors::InvalidArgument("ids and feature_index must be vectors of one length, got ",
                                   ids.shape().DebugString(), " and ",
                                   feature_index.shape().DebugString());
  }
  return OkStatus();
}

// CafeFieldKeys on a device: checks that each feature's ids are a vector, allocates the
// keys and feature indices, and calls `keys_of(feature, ids, n, keys, feature_index)`
// for each feature in turn, at its offset (its Status is returned).
template <typename KeysOf>
Status ComputeFieldKeys(OpKernelContext* ctx, const KeysOf& keys_of) {
  OpInputList ids;
  TF_RETURN_IF_ERROR(ctx->input_list("ids", &ids));
  int64_t total = 0;
  for (int f = 0; f < ids.size(); ++f) {
    if (ids[f].dims() != 1) {
      return errors::InvalidArgument("CafeFieldKeys: the ids of each feature must be a vector, "
                                     "got shape ", ids[f].shape().DebugString(), " for feature ",
                                     f);
    }
    total += ids[f].NumElements();
  }
  Tensor* keys = nullptr;
  Tensor* feature_index = nullptr;
  TF_RETURN_IF_ERROR(ctx->allocate_output(0, TensorShape({total}), &keys));
  TF_RETURN_IF_ERROR(ctx->allocate_output(1, TensorShape({total}), &feature_index));
  int64_t offset = 0;
  for (int f = 0; f < ids.size(); ++f) {
    const int64_t n = ids[f].NumElements();
    TF_RETURN_IF_ERROR(keys_of(f, ids[f].flat<int64_t>().data(), n,
                               keys->flat<int64_t>().data() + offset,
                               feature_index->flat<int32_t>().data() + offset));
    offset += n;
  }
  return OkStatus();
}

}  // namespace cafe_ops
}  // namespace tensorflow

#endif  // CAFE_TF_TF_ROUTING_OP_INPUTS_H_
