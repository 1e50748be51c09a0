// Attributes and input checks of the CafeRoute op (routing_ops.cc), shared by
// its CPU kernel there and its GPU kernel (gpu_kernels.cc).
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

}  // namespace cafe_ops
}  // namespace tensorflow

#endif  // CAFE_TF_TF_ROUTING_OP_INPUTS_H_
