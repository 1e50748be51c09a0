// TensorFlow shell over the per-occurrence reductions (../core/occurrences.h):
// registration, shape functions, input checks. All semantics live in ../core.
#include <cstdint>
#include <string>

#include "../core/id_range.h"
#include "../core/occurrences.h"
#include "occurrence_op_inputs.h"
#include "thread_pool_for.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace tensorflow {
namespace {

using shape_inference::DimensionHandle;
using shape_inference::InferenceContext;
using shape_inference::ShapeHandle;

// rows [N, D] (input 0), ids [N] (input `ids_input`) and their scalar bound (input
// `count_input`): *count, the first dimension of the outputs the ids index.
Status IdInputsShape(InferenceContext* c, int ids_input, int count_input, ShapeHandle* rows,
                     DimensionHandle* count) {
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 2, rows));
  ShapeHandle ids;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(ids_input), 1, &ids));
  DimensionHandle n;
  TF_RETURN_IF_ERROR(c->Merge(c->Dim(*rows, 0), c->Dim(ids, 0), &n));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(count_input), 0, &ids));
  return c->MakeDimForScalarInput(count_input, count);
}

// Checks on the host that every id of `ids` is in [0, count); `what` starts the error.
Status CheckIdValues(const Tensor& ids, int64_t count, const std::string& what) {
  const int32_t* values = ids.flat<int32_t>().data();
  const int64_t bad = cafe::FirstOutOfRange(values, ids.NumElements(), count);
  if (bad < ids.NumElements()) {
    return errors::InvalidArgument(what, ": ", cafe::InvalidSegment(values[bad], bad, count));
  }
  return OkStatus();
}

// Checks the inputs as CheckSegmentShapes does, and the segment ids' values
// on the host; sets *num_segments.
Status CheckSegmentInputs(OpKernelContext* ctx, const char* op, int64_t* num_segments) {
  TF_RETURN_IF_ERROR(cafe_ops::CheckSegmentShapes(ctx, op, num_segments));
  return CheckIdValues(ctx->input(1), *num_segments, op);
}

// Checks CafeExpandGradient's pairs [N] and num_pairs (inputs 3 and 4) as
// CheckSegmentInputs checks the segment ids; sets *num_pairs.
Status CheckPairInputs(OpKernelContext* ctx, const char* op, int64_t* num_pairs) {
  TF_RETURN_IF_ERROR(cafe_ops::CheckExpandPairShapes(ctx, op, num_pairs));
  return CheckIdValues(ctx->input(3), *num_pairs, std::string(op) + ": pairs");
}

REGISTER_OP("CafeSegmentRowSums")
    .Input("rows: float")
    .Input("segment_ids: int32")
    .Input("num_segments: int32")
    .Output("sums: float")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle rows;
      DimensionHandle segments;
      TF_RETURN_IF_ERROR(IdInputsShape(c, 1, 2, &rows, &segments));
      c->set_output(0, c->Matrix(segments, c->Dim(rows, 1)));
      return OkStatus();
    })
    .Doc(R"doc(
Sums the rows of each segment, in row order (tf.math.unsorted_segment_sum of
rank-2 float rows, bit for bit): the gradient of the expand from a lookup's
distinct rows to its occurrences.
)doc");

class CafeSegmentRowSumsOp : public OpKernel {
 public:
  using OpKernel::OpKernel;

  void Compute(OpKernelContext* ctx) override {
    int64_t num_segments = 0;
    OP_REQUIRES_OK(ctx, CheckSegmentInputs(ctx, "CafeSegmentRowSums", &num_segments));
    const Tensor& rows = ctx->input(0);
    const int64_t d = rows.dim_size(1);
    Tensor* sums = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({num_segments, d}), &sums));
    cafe::SegmentRowSums(rows.flat<float>().data(), ctx->input(1).flat<int32_t>().data(),
                         rows.dim_size(0), d, num_segments, sums->flat<float>().data());
  }
};
REGISTER_KERNEL_BUILDER(Name("CafeSegmentRowSums").Device(DEVICE_CPU), CafeSegmentRowSumsOp);

REGISTER_OP("CafePairImportance")
    .Input("rows: float")
    .Input("pairs: int32")
    .Input("num_pairs: int32")
    .Output("sums: double")
    .Output("occurrences: double")
    .Attr("norm: bool")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle rows;
      DimensionHandle pairs;
      TF_RETURN_IF_ERROR(IdInputsShape(c, 1, 2, &rows, &pairs));
      c->set_output(0, c->Vector(pairs));
      c->set_output(1, c->Vector(pairs));
      return OkStatus();
    })
    .Doc(R"doc(
Per distinct pair, the float64 sum of its occurrences' importance (the norm of
each occurrence's row with `norm`, else the absolute value of its one-column
row) and its number of occurrences, in occurrence order.
)doc");

class CafePairImportanceOp : public OpKernel {
 public:
  explicit CafePairImportanceOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("norm", &norm_));
  }

  void Compute(OpKernelContext* ctx) override {
    int64_t num_pairs = 0;
    OP_REQUIRES_OK(ctx, CheckSegmentInputs(ctx, "CafePairImportance", &num_pairs));
    const Tensor& rows = ctx->input(0);
    OP_REQUIRES_OK(ctx, cafe_ops::CheckPairRows(rows, norm_));
    Tensor* sums = nullptr;
    Tensor* occurrences = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({num_pairs}), &sums));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({num_pairs}), &occurrences));
    cafe::PairSums(rows.flat<float>().data(), ctx->input(1).flat<int32_t>().data(),
                   rows.dim_size(0), rows.dim_size(1), norm_, num_pairs,
                   sums->flat<double>().data(), occurrences->flat<double>().data());
  }

 private:
  bool norm_;
};
REGISTER_KERNEL_BUILDER(Name("CafePairImportance").Device(DEVICE_CPU), CafePairImportanceOp);

REGISTER_OP("CafeExpandGradient")
    .Input("rows: float")
    .Input("segment_ids: int32")
    .Input("num_segments: int32")
    .Input("pairs: int32")
    .Input("num_pairs: int32")
    .Output("sums: float")
    .Output("pair_sums: double")
    .Output("occurrences: double")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle rows;
      DimensionHandle segments, num_pairs;
      TF_RETURN_IF_ERROR(IdInputsShape(c, 1, 2, &rows, &segments));
      TF_RETURN_IF_ERROR(IdInputsShape(c, 3, 4, &rows, &num_pairs));
      c->set_output(0, c->Matrix(segments, c->Dim(rows, 1)));
      c->set_output(1, c->Vector(num_pairs));
      c->set_output(2, c->Vector(num_pairs));
      return OkStatus();
    })
    .Doc(R"doc(
CafeSegmentRowSums(rows, segment_ids, num_segments) and
CafePairImportance(rows, pairs, num_pairs, norm=True) in one op (two tasks on
the CPU's thread pool), bit for bit: the gradient of a lookup's expand and its
occurrences' importance.
)doc");

class CafeExpandGradientOp : public OpKernel {
 public:
  using OpKernel::OpKernel;

  void Compute(OpKernelContext* ctx) override {
    int64_t num_segments = 0, num_pairs = 0;
    OP_REQUIRES_OK(ctx, CheckSegmentInputs(ctx, "CafeExpandGradient", &num_segments));
    OP_REQUIRES_OK(ctx, CheckPairInputs(ctx, "CafeExpandGradient", &num_pairs));
    const Tensor& rows = ctx->input(0);
    const int64_t d = rows.dim_size(1);
    Tensor* sums = nullptr;
    Tensor* pair_sums = nullptr;
    Tensor* occurrences = nullptr;
    OP_REQUIRES_OK(ctx, cafe_ops::AllocateExpandGradientOutputs(ctx, num_segments, num_pairs,
                                                                &sums, &pair_sums, &occurrences));
    cafe::ExpandGradient(rows.flat<float>().data(), ctx->input(1).flat<int32_t>().data(),
                         ctx->input(3).flat<int32_t>().data(), rows.dim_size(0), d, num_segments,
                         num_pairs, sums->flat<float>().data(), pair_sums->flat<double>().data(),
                         occurrences->flat<double>().data(),
                         cafe_ops::MakeParallelFor(ctx, cafe_ops::ThreadsFor(ctx, 0), 1));
  }
};
REGISTER_KERNEL_BUILDER(Name("CafeExpandGradient").Device(DEVICE_CPU), CafeExpandGradientOp);

}  // namespace
}  // namespace tensorflow
