// TensorFlow shell over the routing core (../core/routing.h): registration,
// shape function, input checks. All semantics live in ../core.
#include <string>
#include <vector>

#include "../core/routing.h"
#include "routing_op_inputs.h"
#include "thread_pool_for.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace tensorflow {
namespace {

using shape_inference::InferenceContext;
using shape_inference::ShapeHandle;

REGISTER_OP("CafeRoute")
    .Input("slots: int64")
    .Input("scores: float")
    .Input("ids: int64")
    .Input("feature_index: int32")
    .Output("unique_ids: int64")
    .Output("unique_feature_index: int32")
    .Output("inverse: int32")
    .Output("hot_row: int32")
    .Output("level: int32")
    .Output("hashed_row: int64")
    .Output("medium_row: int64")
    .Output("read_hot: int32")
    .Output("read_hashed: int64")
    .Output("read_medium: int64")
    .Output("first_index: int32")
    .Output("medium_index: int32")
    .Output("occurrence_index: int32")
    .Attr("hashed_offsets: list(int)")
    .Attr("hashed_sizes: list(int)")
    .Attr("medium_offsets: list(int) = []")
    .Attr("medium_sizes: list(int) = []")
    .Attr("medium_threshold: float")
    .Attr("tag_bits: int = 0")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle slots;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 2, &slots));
      TF_RETURN_IF_ERROR(c->Merge(slots, c->input(1), &slots));
      ShapeHandle ids;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(2), 1, &ids));
      TF_RETURN_IF_ERROR(c->Merge(ids, c->input(3), &ids));
      for (int i = 0; i < c->num_outputs(); ++i) c->set_output(i, c->Vector(c->UnknownDim()));
      c->set_output(2, ids);
      c->set_output(12, ids);
      return OkStatus();
    })
    .Doc(R"doc(
Routes a CAFE lookup (cafe_tf/layers/routing.py `Route`): the distinct
(id, feature index) pairs in order of first occurrence, the inverse index, per
pair its hot row and level from the sketch (read-only) or its row in the packed
hashed (and medium) tables (a function of the id's 32-bit fingerprint and its
feature index), each table's distinct rows read, and per occurrence its pair's
first_index.
)doc");

REGISTER_OP("CafeFieldKeys")
    .Input("ids: N * int64")
    .Output("keys: int64")
    .Output("feature_index: int32")
    .Attr("N: int >= 1")
    .SetShapeFn([](InferenceContext* c) {
      shape_inference::DimensionHandle total = c->MakeDim(0);
      for (int i = 0; i < c->num_inputs(); ++i) {
        ShapeHandle ids;
        TF_RETURN_IF_ERROR(c->WithRank(c->input(i), 1, &ids));
        TF_RETURN_IF_ERROR(c->Add(total, c->Dim(ids, 0), &total));
      }
      c->set_output(0, c->Vector(total));
      c->set_output(1, c->Vector(total));
      return OkStatus();
    })
    .Doc(R"doc(
The sketch keys of a call (cafe_tf/layers/routing.py `field_keys`): feature i's
ids XOR its salt (cafe_tf.hashing.field_salt(i)), the features one after
another, and each key's feature index: CafeRoute's ids and feature_index.
)doc");

class CafeFieldKeysOp : public OpKernel {
 public:
  explicit CafeFieldKeysOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    OP_REQUIRES_OK(ctx, cafe_ops::ComputeFieldKeys(
                            ctx, [](int32_t feature, const int64_t* ids, int64_t n,
                                    int64_t* keys, int32_t* feature_index) {
                              cafe::FieldKeys(ids, n, feature, keys, feature_index);
                              return OkStatus();
                            }));
  }
};
REGISTER_KERNEL_BUILDER(Name("CafeFieldKeys").Device(DEVICE_CPU), CafeFieldKeysOp);

template <typename T>
Status Output(OpKernelContext* ctx, int index, const std::vector<T>& values) {
  Tensor* out = nullptr;
  TF_RETURN_IF_ERROR(ctx->allocate_output(
      index, TensorShape({static_cast<int64_t>(values.size())}), &out));
  std::copy(values.begin(), values.end(), out->flat<T>().data());
  return OkStatus();
}

class CafeRouteOp : public OpKernel {
 public:
  explicit CafeRouteOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, cafe_ops::ReadRouteAttrs(ctx, &attrs_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& slots = ctx->input(0);
    const Tensor& scores = ctx->input(1);
    const Tensor& ids = ctx->input(2);
    const Tensor& feature_index = ctx->input(3);
    OP_REQUIRES_OK(ctx, cafe_ops::CheckRouteInputs(slots, scores, ids, feature_index));
    const int64_t n = ids.NumElements();
    const int32_t* feature_data = feature_index.flat<int32_t>().data();
    const std::string problem =
        cafe::ValidateRouteInput(feature_data, n, attrs_.tables.num_features());
    OP_REQUIRES(ctx, problem.empty(), errors::InvalidArgument("CafeRoute: ", problem));
    Tensor* inverse = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, ids.shape(), &inverse));
    cafe::SketchConfig config;
    config.num_buckets = slots.dim_size(0);
    config.slots_per_bucket = slots.dim_size(1);
    config.tag_bits = attrs_.tag_bits;
    config.medium_threshold = attrs_.medium_threshold;
    cafe::RouteResult r;
    cafe::Route(config, cafe_ops::QueryStateOf(slots, scores), attrs_.tables,
                ids.flat<int64_t>().data(), feature_data, n, inverse->flat<int32_t>().data(), &r,
                cafe_ops::MakeParallelFor(ctx, cafe_ops::ThreadsFor(ctx, 0),
                                          cafe_ops::kQueryIdsPerPart));
    OP_REQUIRES_OK(ctx, Output(ctx, 0, r.keys));
    OP_REQUIRES_OK(ctx, Output(ctx, 1, r.feature_index));
    OP_REQUIRES_OK(ctx, Output(ctx, 3, r.hot_row));
    OP_REQUIRES_OK(ctx, Output(ctx, 4, r.level));
    OP_REQUIRES_OK(ctx, Output(ctx, 5, r.hashed_row));
    OP_REQUIRES_OK(ctx, Output(ctx, 6, r.medium_row));
    OP_REQUIRES_OK(ctx, Output(ctx, 7, r.read_hot));
    OP_REQUIRES_OK(ctx, Output(ctx, 8, r.read_hashed));
    OP_REQUIRES_OK(ctx, Output(ctx, 9, r.read_medium));
    OP_REQUIRES_OK(ctx, Output(ctx, 10, r.first_index));
    OP_REQUIRES_OK(ctx, Output(ctx, 11, r.medium_index));
    OP_REQUIRES_OK(ctx, Output(ctx, 12, r.occurrence_index));
  }

 private:
  cafe_ops::RouteAttrs attrs_;
};
REGISTER_KERNEL_BUILDER(Name("CafeRoute").Device(DEVICE_CPU), CafeRouteOp);

}  // namespace
}  // namespace tensorflow
