// Input checks of CafeSegmentRowSums, CafePairImportance and CafeExpandGradient
// (occurrence_ops.cc), shared by their CPU kernels there and their GPU kernels
// (gpu_kernels.cc).
// The check of the segment ids' values is not here: it needs the ids, which
// the CPU kernel reads on the host and the GPU kernel checks on the device.
#ifndef CAFE_TF_TF_OCCURRENCE_OP_INPUTS_H_
#define CAFE_TF_TF_OCCURRENCE_OP_INPUTS_H_

#include <cstdint>

#include "tensorflow/core/framework/op_kernel.h"

namespace tensorflow {
namespace cafe_ops {

// Checks rows [N, D], segment ids [N] and a scalar num_segments >= 0 (inputs
// 0, 1, 2; num_segments in host memory); sets *num_segments.
inline Status CheckSegmentShapes(OpKernelContext* ctx, const char* op, int64_t* num_segments) {
  const Tensor& rows = ctx->input(0);
  const Tensor& segments = ctx->input(1);
  const Tensor& count = ctx->input(2);
  if (rows.dims() != 2 || segments.dims() != 1 || segments.dim_size(0) != rows.dim_size(0)) {
    return errors::InvalidArgument(op, ": rows must be [N, D] and segment ids [N], got ",
                                   rows.shape().DebugString(), " and ",
                                   segments.shape().DebugString());
  }
  if (count.dims() != 0 || count.scalar<int32_t>()() < 0) {
    return errors::InvalidArgument(op, ": the number of segments must be a scalar >= 0");
  }
  *num_segments = count.scalar<int32_t>()();
  return OkStatus();
}

// Checks CafeExpandGradient's pairs [N] (input 3, N as the rows') and scalar
// num_pairs >= 0 (input 4, in host memory); sets *num_pairs.
inline Status CheckExpandPairShapes(OpKernelContext* ctx, const char* op, int64_t* num_pairs) {
  const Tensor& pairs = ctx->input(3);
  const Tensor& count = ctx->input(4);
  if (pairs.dims() != 1 || pairs.dim_size(0) != ctx->input(0).dim_size(0)) {
    return errors::InvalidArgument(op, ": pairs must be [N] as the rows [N, D], got ",
                                   pairs.shape().DebugString(), " and ",
                                   ctx->input(0).shape().DebugString());
  }
  if (count.dims() != 0 || count.scalar<int32_t>()() < 0) {
    return errors::InvalidArgument(op, ": the number of pairs must be a scalar >= 0");
  }
  *num_pairs = count.scalar<int32_t>()();
  return OkStatus();
}

// Allocates CafeExpandGradient's outputs: row sums [num_segments, d], pair sums and
// occurrences [num_pairs].
inline Status AllocateExpandGradientOutputs(OpKernelContext* ctx, int64_t num_segments,
                                            int64_t num_pairs, Tensor** sums, Tensor** pair_sums,
                                            Tensor** occurrences) {
  TF_RETURN_IF_ERROR(ctx->allocate_output(
      0, TensorShape({num_segments, ctx->input(0).dim_size(1)}), sums));
  TF_RETURN_IF_ERROR(ctx->allocate_output(1, TensorShape({num_pairs}), pair_sums));
  return ctx->allocate_output(2, TensorShape({num_pairs}), occurrences);
}

// CafePairImportance without `norm` takes one-column rows.
inline Status CheckPairRows(const Tensor& rows, bool norm) {
  if (norm || rows.dim_size(1) == 1) return OkStatus();
  return errors::InvalidArgument("CafePairImportance: without norm, rows must have one column, "
                                 "got ", rows.shape().DebugString());
}

}  // namespace cafe_ops
}  // namespace tensorflow

#endif  // CAFE_TF_TF_OCCURRENCE_OP_INPUTS_H_
