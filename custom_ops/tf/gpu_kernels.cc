// TensorFlow GPU kernels for the ops registered in ../tf/hotsketch_ops.cc
// (CafeSketchInsert, CafeSketchQuery, CafeSketchMigrate), ../tf/routing_ops.cc
// (CafeRoute, CafeFieldKeys) and ../tf/occurrence_ops.cc (CafeSegmentRowSums,
// CafePairImportance, CafeExpandGradient). They lock and validate exactly like
// the CPU kernels there and call the plain CUDA launchers of hotsketch_kernels.h,
// routing_kernels.h and occurrence_kernels.h on TensorFlow's own compute stream.
//
// This file includes TF headers but no CUDA kernel code; it is compiled by
// g++ with -DGOOGLE_CUDA=1 against TF's bundled CUDA headers and linked with
// the nvcc-built hotsketch_kernels.o and cudart (see build_gpu_ops.sh). Only
// CUDA *types* are used here (cudaStream_t, cudaError_t); every CUDA runtime
// call goes through hotsketch_kernels.h, i.e. through the runtime the kernels
// were built with.
//
// Without GOOGLE_CUDA this file compiles to nothing.
#if GOOGLE_CUDA

#define EIGEN_USE_GPU

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "../core/hotsketch.h"
#include "../core/occurrences.h"
#include "../core/routing.h"
#include "../cuda/kernels/hotsketch_kernels.h"
#include "../cuda/kernels/occurrence_kernels.h"
#include "../cuda/kernels/routing_kernels.h"
#include "occurrence_op_inputs.h"
#include "routing_op_inputs.h"
#include "sketch_op_inputs.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/resource_mgr.h"
#include "tensorflow/core/framework/resource_var.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/platform/mutex.h"

namespace tensorflow {
namespace {

using namespace cafe_ops;  // NOLINT: the shared state-input names

cudaStream_t StreamOf(OpKernelContext* ctx) { return ctx->eigen_gpu_device().stream(); }

Status CudaStatus(cudaError_t err, const char* op, const char* what) {
  if (err == cudaSuccess) return OkStatus();
  return errors::Internal(op, ": CUDA error in ", what, ": ", cafe::cuda::ErrorString(err));
}

// Allocates a device temporary of `bytes` bytes (DT_INT8), at least 1.
Status AllocateBytes(OpKernelContext* ctx, size_t bytes, Tensor* out) {
  return ctx->allocate_temp(DT_INT8, TensorShape({static_cast<int64_t>(std::max<size_t>(bytes, 1))}),
                            out);
}

template <typename T>
T* DevicePtr(Tensor& t) {
  return reinterpret_cast<T*>(t.data());
}

// Locks the seven state variables (mutexes in address order, each once), checks
// dtypes and shapes, and makes their buffers exclusively ours (copy-on-write
// on the GPU stream) before the update. Holds the locks while alive.
//
// Differences from the CPU LockedState, on purpose: the GPU variant of
// PrepareToUpdateVariable / MaybeLockVariableInputMutexesInOrder would
// instantiate functor::DenseUpdate<GPUDevice, T>, which libtensorflow_framework
// does not export (undefined symbol at load), so the copy-on-write is done here
// with a device-to-device copy on the op's stream. And no Tensor copy is held
// before the refcount test (a held copy makes RefCountIsOne() false and forces
// a full copy of the state on every call).
class GpuLockedState {
 public:
  GpuLockedState(OpKernelContext* ctx, const char* op) : op_(op) {
    std::vector<mutex*> mutexes;
    for (int i = 0; i < kNumStateInputs; ++i) {
      Var* var = nullptr;
      OP_REQUIRES_OK(ctx, LookupResource(ctx, HandleFromInput(ctx, i), &var));
      vars_[i].reset(var);
      mutexes.push_back(var->mu());
    }
    std::sort(mutexes.begin(), mutexes.end());
    mutexes.erase(std::unique(mutexes.begin(), mutexes.end()), mutexes.end());
    for (mutex* mu : mutexes) mu->lock();
    locked_ = std::move(mutexes);
    const Tensor* tensors[kNumStateInputs];
    for (int i = 0; i < kNumStateInputs; ++i) tensors[i] = vars_[i]->tensor();
    OP_REQUIRES_OK(ctx, CheckStateTensors(tensors));
    OP_REQUIRES(ctx, tensors[kSlots]->NumElements() <= std::numeric_limits<int32_t>::max(),
                errors::InvalidArgument("the GPU kernels support at most 2^31 - 1 sketch slots, "
                                        "got ", tensors[kSlots]->NumElements()));
    ok_ = true;
  }

  ~GpuLockedState() {
    for (auto it = locked_.rbegin(); it != locked_.rend(); ++it) (*it)->unlock();
  }

  // Call once the inputs are validated: from here on the buffers may change.
  Status PrepareForUpdate(OpKernelContext* ctx, cudaStream_t stream) {
    for (int i = 0; i < kNumStateInputs; ++i) {
      Var* var = vars_[i].get();
      Tensor* t = var->tensor();
      if (var->copy_on_read_mode.load() || !t->RefCountIsOne()) {
        Tensor copy;
        AllocatorAttributes attr;
        attr.set_gpu_compatible(true);
        attr.set_nic_compatible(true);
        TF_RETURN_IF_ERROR(ctx->allocate_temp(t->dtype(), t->shape(), &copy, attr));
        TF_RETURN_IF_ERROR(CudaStatus(
            cafe::cuda::CopyDeviceToDeviceAsync(copy.data(), t->data(), t->TotalBytes(), stream),
            op_, "copy-on-write"));
        *t = copy;
      }
      tensors_[i] = *t;
    }
    return OkStatus();
  }

  bool ok() const { return ok_; }
  int64_t num_buckets() const { return vars_[kSlots]->tensor()->dim_size(0); }
  int32_t slots_per_bucket() const {
    return static_cast<int32_t>(vars_[kSlots]->tensor()->dim_size(1));
  }

  // Valid after PrepareForUpdate.
  cafe::SketchState state() {
    return {DevicePtr<int64_t>(tensors_[kSlots]), DevicePtr<float>(tensors_[kScores]),
            DevicePtr<float>(tensors_[kMass]), DevicePtr<int64_t>(tensors_[kBatches])};
  }

 private:
  const char* op_;
  core::RefCountPtr<Var> vars_[kNumStateInputs];
  std::vector<mutex*> locked_;
  Tensor tensors_[kNumStateInputs];
  bool ok_ = false;
};

// ---------------------------------------------------------------- Insert ---

class CafeSketchInsertGpuOp : public OpKernel {
 public:
  explicit CafeSketchInsertGpuOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    // num_threads is read (and checked) but is a CPU-only knob.
    OP_REQUIRES_OK(ctx, ReadInsertAttrs(ctx, &attrs_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& ids = ctx->input(kNumStateInputs);
    const Tensor& importance = ctx->input(kNumStateInputs + 1);
    const Tensor& feature_index = ctx->input(kNumStateInputs + 2);
    OP_REQUIRES_OK(ctx, cafe_ops::CheckInsertShapes(ids, importance, feature_index));
    const int64_t n = ids.NumElements();
    OP_REQUIRES(ctx, n <= std::numeric_limits<int32_t>::max(),
                errors::InvalidArgument("the GPU insert supports at most 2^31 - 1 ids, got ", n));
    GpuLockedState locked(ctx, "CafeSketchInsert");
    if (!locked.ok() || n == 0) return;
    const cudaStream_t stream = StreamOf(ctx);
    OP_REQUIRES_OK(ctx, locked.PrepareForUpdate(ctx, stream));

    cudaError_t err = cudaSuccess;
    const size_t bytes = cafe::cuda::InsertWorkspaceBytes(n, locked.num_buckets(), &err);
    OP_REQUIRES_OK(ctx, CudaStatus(err, "CafeSketchInsert", "workspace query"));
    Tensor workspace, status;
    OP_REQUIRES_OK(ctx, AllocateBytes(ctx, bytes, &workspace));
    OP_REQUIRES_OK(ctx, ctx->allocate_temp(DT_INT64, TensorShape({1}), &status));
    OP_REQUIRES_OK(
        ctx, CudaStatus(cafe::cuda::LaunchInsert(
                            locked.num_buckets(), locked.slots_per_bucket(), attrs_.tag_bits,
                            locked.state(),
                            ids.flat<int64_t>().data(), importance.flat<float>().data(),
                            feature_index.flat<int32_t>().data(), n, attrs_.second_sighting, attrs_.erode,
                            DevicePtr<int64_t>(status), workspace.data(), bytes, stream),
                        "CafeSketchInsert", "launch"));
    // The CPU op rejects an invalid batch with InvalidArgument; the GPU
    // kernels leave the state untouched in that case, and we report the same
    // message. This needs the validation result on the host: one 8-byte copy
    // and a stream synchronisation per insert.
    int64_t bad = -1;
    OP_REQUIRES_OK(ctx, CudaStatus(cafe::cuda::CopyDeviceToHostSync(
                                       &bad, DevicePtr<int64_t>(status), sizeof(bad), stream),
                                   "CafeSketchInsert", "status read"));
    if (bad >= 0) {
      float v = 0.f;
      int32_t t = 0;
      OP_REQUIRES_OK(ctx, CudaStatus(cafe::cuda::CopyDeviceToHostSync(
                                         &v, importance.flat<float>().data() + bad, sizeof(v),
                                         stream),
                                     "CafeSketchInsert", "status read"));
      OP_REQUIRES_OK(ctx, CudaStatus(cafe::cuda::CopyDeviceToHostSync(
                                         &t, feature_index.flat<int32_t>().data() + bad,
                                         sizeof(t), stream),
                                     "CafeSketchInsert", "status read"));
      // Same text as the CPU op.
      ctx->SetStatus(errors::InvalidArgument("CafeSketchInsert: ",
                                             cafe::InvalidInsertEntry(v, t, bad, attrs_.tag_bits)));
    }
  }

 private:
  InsertAttrs attrs_;
};

// ----------------------------------------------------------------- Query ---

class CafeSketchQueryGpuOp : public OpKernel {
 public:
  explicit CafeSketchQueryGpuOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("medium_threshold", &medium_threshold_));
    OP_REQUIRES_OK(ctx, ReadTagBits(ctx, &tag_bits_));
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
    const int64_t n = ids.NumElements();
    if (n == 0) return;
    OP_REQUIRES_OK(
        ctx, CudaStatus(cafe::cuda::LaunchQuery(
                            slots.dim_size(0), static_cast<int32_t>(slots.dim_size(1)),
                            tag_bits_, medium_threshold_, slots.flat<int64_t>().data(),
                            scores.flat<float>().data(), ids.flat<int64_t>().data(), n, hot_rows->flat<int32_t>().data(),
                            levels->flat<int32_t>().data(), StreamOf(ctx)),
                        "CafeSketchQuery", "launch"));
  }

 private:
  float medium_threshold_;
  int32_t tag_bits_;
};

// --------------------------------------------------------------- Migrate ---

class CafeSketchMigrateGpuOp : public OpKernel {
 public:
  explicit CafeSketchMigrateGpuOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ReadMigrateAttrs(ctx, &config_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& force = ctx->input(kNumStateInputs);  // host memory
    OP_REQUIRES(ctx, force.NumElements() == 1,
                errors::InvalidArgument("force_decay must be a scalar"));
    GpuLockedState locked(ctx, "CafeSketchMigrate");
    if (!locked.ok()) return;
    cafe::SketchConfig config;
    OP_REQUIRES_OK(ctx, SizedMigrateConfig(config_, locked.num_buckets(),
                                           locked.slots_per_bucket(), &config));
    const cudaStream_t stream = StreamOf(ctx);
    OP_REQUIRES_OK(ctx, locked.PrepareForUpdate(ctx, stream));

    cudaError_t err = cudaSuccess;
    const size_t bytes = cafe::cuda::MigrateWorkspaceBytes(config, &err);
    OP_REQUIRES_OK(ctx, CudaStatus(err, "CafeSketchMigrate", "workspace query"));
    const int64_t dcap = cafe::cuda::MigrateDemotedCapacity(config);
    const int64_t pcap = cafe::cuda::MigratePromotedCapacity(config);
    Tensor workspace, counts, dkeys, dtags, drows, pkeys, ptags, prows;
    OP_REQUIRES_OK(ctx, AllocateBytes(ctx, bytes, &workspace));
    OP_REQUIRES_OK(ctx, ctx->allocate_temp(DT_INT32, TensorShape({4}), &counts));
    OP_REQUIRES_OK(ctx, ctx->allocate_temp(DT_INT64, TensorShape({dcap}), &dkeys));
    OP_REQUIRES_OK(ctx, ctx->allocate_temp(DT_INT32, TensorShape({dcap}), &dtags));
    OP_REQUIRES_OK(ctx, ctx->allocate_temp(DT_INT32, TensorShape({dcap}), &drows));
    OP_REQUIRES_OK(ctx, ctx->allocate_temp(DT_INT64, TensorShape({pcap}), &pkeys));
    OP_REQUIRES_OK(ctx, ctx->allocate_temp(DT_INT32, TensorShape({pcap}), &ptags));
    OP_REQUIRES_OK(ctx, ctx->allocate_temp(DT_INT32, TensorShape({pcap}), &prows));
    cafe::cuda::MigrateOutputs out;
    out.counts = DevicePtr<int32_t>(counts);
    out.demoted_fingerprints = DevicePtr<int64_t>(dkeys);
    out.demoted_tags = DevicePtr<int32_t>(dtags);
    out.demoted_rows = DevicePtr<int32_t>(drows);
    out.promoted_fingerprints = DevicePtr<int64_t>(pkeys);
    out.promoted_tags = DevicePtr<int32_t>(ptags);
    out.promoted_rows = DevicePtr<int32_t>(prows);
    OP_REQUIRES_OK(ctx, CudaStatus(cafe::cuda::LaunchMigrate(config, locked.state(),
                                                             force.scalar<bool>()(), out,
                                                             workspace.data(), bytes, stream),
                                   "CafeSketchMigrate", "launch"));
    // Data-dependent output sizes: read the counts (synchronises the stream).
    int32_t host_counts[4] = {0, 0, 0, 0};
    OP_REQUIRES_OK(ctx, CudaStatus(cafe::cuda::CopyDeviceToHostSync(
                                       host_counts, out.counts, sizeof(host_counts), stream),
                                   "CafeSketchMigrate", "count read"));
    Tensor* decayed = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({}), &decayed));  // host memory
    decayed->scalar<bool>()() = host_counts[0] != 0;
    OP_REQUIRES_OK(ctx, Emit(ctx, 1, host_counts[1], dkeys, dtags, drows, stream));
    OP_REQUIRES_OK(ctx, Emit(ctx, 4, host_counts[2], pkeys, ptags, prows, stream));
  }

 private:
  static Status Emit(OpKernelContext* ctx, int first, int64_t n, Tensor& keys, Tensor& tags,
                     Tensor& rows, cudaStream_t stream) {
    Tensor *k, *t, *r;
    TF_RETURN_IF_ERROR(ctx->allocate_output(first, TensorShape({n}), &k));
    TF_RETURN_IF_ERROR(ctx->allocate_output(first + 1, TensorShape({n}), &t));
    TF_RETURN_IF_ERROR(ctx->allocate_output(first + 2, TensorShape({n}), &r));
    if (n == 0) return OkStatus();
    TF_RETURN_IF_ERROR(CudaStatus(
        cafe::cuda::CopyDeviceToDeviceAsync(k->data(), keys.data(), n * sizeof(int64_t), stream),
        "CafeSketchMigrate", "output copy"));
    TF_RETURN_IF_ERROR(CudaStatus(
        cafe::cuda::CopyDeviceToDeviceAsync(t->data(), tags.data(), n * sizeof(int32_t), stream),
        "CafeSketchMigrate", "output copy"));
    return CudaStatus(
        cafe::cuda::CopyDeviceToDeviceAsync(r->data(), rows.data(), n * sizeof(int32_t), stream),
        "CafeSketchMigrate", "output copy");
  }

  cafe::SketchConfig config_;
};

// ----------------------------------------------------------------- Route ---

class CafeRouteGpuOp : public OpKernel {
 public:
  explicit CafeRouteGpuOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ReadRouteAttrs(ctx, &attrs_));
    const cafe::RouteTables& t = attrs_.tables;
    // The four per-feature arrays back to back, copied to the device at each call.
    for (const auto* v : {&t.hashed_offsets, &t.hashed_sizes, &t.medium_offsets,
                          &t.medium_sizes}) {
      host_tables_.insert(host_tables_.end(), v->begin(), v->end());
    }
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& slots = ctx->input(0);
    const Tensor& scores = ctx->input(1);
    const Tensor& ids = ctx->input(2);
    const Tensor& feature_index = ctx->input(3);
    OP_REQUIRES_OK(ctx, CheckRouteInputs(slots, scores, ids, feature_index));
    const int64_t n = ids.NumElements();
    OP_REQUIRES(ctx, n <= std::numeric_limits<int32_t>::max() / 2,
                errors::InvalidArgument("CafeRoute: a call must hold at most 2^30 ids on a "
                                        "GPU, got ", n));
    if (n == 0) {  // nothing to route: every output empty
      for (int k = 0; k < kRouteOutputs; ++k) {
        Tensor* output = nullptr;
        OP_REQUIRES_OK(ctx, ctx->allocate_output(k, TensorShape({0}), &output));
      }
      return;
    }
    const cudaStream_t stream = StreamOf(ctx);
    const int64_t features = attrs_.tables.num_features();
    const int64_t medium = static_cast<int64_t>(attrs_.tables.medium_sizes.size());
    Tensor device_tables;
    OP_REQUIRES_OK(ctx, ctx->allocate_temp(
                            DT_INT64, TensorShape({std::max<int64_t>(1, host_tables_.size())}),
                            &device_tables));
    int64_t* t = DevicePtr<int64_t>(device_tables);
    OP_REQUIRES_OK(ctx, CudaStatus(cafe::cuda::CopyHostToDeviceAsync(
                                       t, host_tables_.data(),
                                       host_tables_.size() * sizeof(int64_t), stream),
                                   "CafeRoute", "table copy"));
    cafe::cuda::DeviceRouteTables tables;
    tables.hashed_offsets = t;
    tables.hashed_sizes = t + features;
    tables.medium_offsets = medium > 0 ? t + 2 * features : nullptr;
    tables.medium_sizes = medium > 0 ? t + 2 * features + medium : nullptr;
    tables.num_features = static_cast<int32_t>(features);
    tables.hashed_seed = attrs_.tables.hashed_seed;
    tables.medium_seed = attrs_.tables.medium_seed;

    // Every output has at most n entries: the launcher writes temporaries of n,
    // and the outputs are sized from its counts (a synchronising read).
    Tensor* inverse = nullptr;
    Tensor* occurrence_index = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, ids.shape(), &inverse));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(12, ids.shape(), &occurrence_index));
    Tensor temps[kRouteOutputs];
    for (int k = 0; k < kRouteOutputs; ++k) {
      if (k == 2 || k == 12) continue;
      OP_REQUIRES_OK(ctx, ctx->allocate_temp(kRouteDtypes[k], TensorShape({n}), &temps[k]));
    }
    Tensor counts;
    OP_REQUIRES_OK(ctx, ctx->allocate_temp(DT_INT64, TensorShape({5}), &counts));
    cafe::cuda::DeviceRouteOutput out;
    out.keys = DevicePtr<int64_t>(temps[0]);
    out.feature_index = DevicePtr<int32_t>(temps[1]);
    out.inverse = inverse->flat<int32_t>().data();
    out.hot_row = DevicePtr<int32_t>(temps[3]);
    out.level = DevicePtr<int32_t>(temps[4]);
    out.hashed_row = DevicePtr<int64_t>(temps[5]);
    out.medium_row = DevicePtr<int64_t>(temps[6]);
    out.read_hot = DevicePtr<int32_t>(temps[7]);
    out.read_hashed = DevicePtr<int64_t>(temps[8]);
    out.read_medium = DevicePtr<int64_t>(temps[9]);
    out.first_index = DevicePtr<int32_t>(temps[10]);
    out.medium_index = DevicePtr<int32_t>(temps[11]);
    out.occurrence_index = occurrence_index->flat<int32_t>().data();
    out.counts = DevicePtr<int64_t>(counts);
    cudaError_t err = cudaSuccess;
    const size_t bytes = cafe::cuda::RouteWorkspaceBytes(n, &err);
    OP_REQUIRES_OK(ctx, CudaStatus(err, "CafeRoute", "workspace query"));
    Tensor workspace;
    OP_REQUIRES_OK(ctx, AllocateBytes(ctx, bytes, &workspace));
    OP_REQUIRES_OK(ctx, CudaStatus(cafe::cuda::LaunchRoute(
                                       slots.dim_size(0), static_cast<int32_t>(slots.dim_size(1)),
                                       attrs_.tag_bits, attrs_.medium_threshold,
                                       slots.flat<int64_t>().data(), scores.flat<float>().data(),
                                       tables,
                                       ids.flat<int64_t>().data(),
                                       feature_index.flat<int32_t>().data(),
                                       n, out, workspace.data(), bytes, stream),
                                   "CafeRoute", "launch"));
    int64_t host_counts[5] = {0, 0, 0, 0, n};
    OP_REQUIRES_OK(ctx, CudaStatus(cafe::cuda::CopyDeviceToHostSync(
                                       host_counts, out.counts, sizeof(host_counts), stream),
                                   "CafeRoute", "count read"));
    if (host_counts[4] < n) {  // the first feature index outside [0, features)
      int32_t bad = 0;
      const int32_t* first_bad = feature_index.flat<int32_t>().data() + host_counts[4];
      OP_REQUIRES_OK(ctx, CudaStatus(cafe::cuda::CopyDeviceToHostSync(&bad, first_bad,
                                                                      sizeof(bad), stream),
                                     "CafeRoute", "feature index read"));
      // Same text as the CPU op.
      ctx->SetStatus(errors::InvalidArgument(
          "CafeRoute: ", cafe::InvalidFeatureIndex(bad, host_counts[4],
                                                   static_cast<int32_t>(features))));
      return;
    }
    // Output k holds U entries, or the rows read of its table.
    const int64_t sizes[kRouteOutputs] = {
        host_counts[0], host_counts[0], n,              host_counts[0],
        host_counts[0], host_counts[0], host_counts[0], host_counts[1],
        host_counts[2], host_counts[3], host_counts[0], host_counts[0], n};
    for (int k = 0; k < kRouteOutputs; ++k) {
      if (k == 2 || k == 12) continue;
      Tensor* output = nullptr;
      OP_REQUIRES_OK(ctx, ctx->allocate_output(k, TensorShape({sizes[k]}), &output));
      OP_REQUIRES_OK(ctx, CudaStatus(cafe::cuda::CopyDeviceToDeviceAsync(
                                         output->data(), temps[k].data(),
                                         sizes[k] * DataTypeSize(kRouteDtypes[k]), stream),
                                     "CafeRoute", "output copy"));
    }
  }

 private:
  // CafeRoute's outputs (../tf/routing_ops.cc), in order.
  static constexpr int kRouteOutputs = 13;
  static constexpr DataType kRouteDtypes[kRouteOutputs] = {
      DT_INT64, DT_INT32, DT_INT32, DT_INT32, DT_INT32, DT_INT64, DT_INT64,
      DT_INT32, DT_INT64, DT_INT64, DT_INT32, DT_INT32, DT_INT32};

  RouteAttrs attrs_;
  std::vector<int64_t> host_tables_;
};

// The call's keys: one launch per feature, each at its offset; no readback.
class CafeFieldKeysGpuOp : public OpKernel {
 public:
  explicit CafeFieldKeysGpuOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const cudaStream_t stream = StreamOf(ctx);
    OP_REQUIRES_OK(ctx, ComputeFieldKeys(ctx, [stream](int32_t feature, const int64_t* ids,
                                                       int64_t n, int64_t* keys,
                                                       int32_t* feature_index) {
                     return CudaStatus(cafe::cuda::LaunchFieldKeys(ids, n, feature, keys,
                                                                   feature_index, stream),
                                       "CafeFieldKeys", "launch");
                   }));
  }
};

// ----------------------------------------------- occurrence reductions ---

// Validates the segment ids on the device (the launcher's status word) and
// reports a bad one with the CPU op's message. The check needs its result on
// the host: one 8-byte readback (a stream synchronisation) per call, plus one
// more to read the bad id when there is one.
Status CheckSegmentStatus(const char* op, const Tensor& status, const Tensor& segments,
                          int64_t num_segments, cudaStream_t stream) {
  const int64_t n = segments.NumElements();
  int64_t bad = n;
  TF_RETURN_IF_ERROR(CudaStatus(cafe::cuda::CopyDeviceToHostSync(
                                    &bad, status.flat<int64_t>().data(), sizeof(bad), stream),
                                op, "status read"));
  if (bad >= n) return OkStatus();
  int32_t value = 0;
  TF_RETURN_IF_ERROR(CudaStatus(
      cafe::cuda::CopyDeviceToHostSync(&value, segments.flat<int32_t>().data() + bad,
                                       sizeof(value), stream),
      op, "status read"));
  return errors::InvalidArgument(op, ": ", cafe::InvalidSegment(value, bad, num_segments));
}

// An id input an occurrence op validates on the device: its input index, the
// bound its ids must stay below, and the name its errors give it.
struct DeviceIds {
  int input;
  int64_t count;
  const char* what;
};

// The shell the occurrence ops share: the input checks, the workspace and one
// status word per id input, the launch (each op's Launch), and the readback of
// the device checks of the ids.
class OccurrenceGpuOp : public OpKernel {
 public:
  OccurrenceGpuOp(OpKernelConstruction* ctx, const char* op) : OpKernel(ctx), op_(op) {}

  void Compute(OpKernelContext* ctx) override {
    std::vector<DeviceIds> ids;
    OP_REQUIRES_OK(ctx, CheckShapes(ctx, &ids));
    const int64_t n = ctx->input(0).dim_size(0);
    OP_REQUIRES(ctx, n <= std::numeric_limits<int32_t>::max(),
                errors::InvalidArgument(op_, ": the GPU kernel supports at most 2^31 - 1 rows, "
                                        "got ", n));
    int64_t largest = 0;
    for (const DeviceIds& each : ids) largest = std::max(largest, each.count);
    cudaError_t err = cudaSuccess;
    const size_t bytes = cafe::cuda::OccurrenceWorkspaceBytes(n, largest, &err);
    OP_REQUIRES_OK(ctx, CudaStatus(err, op_, "workspace query"));
    Tensor workspace, status;
    OP_REQUIRES_OK(ctx, AllocateBytes(ctx, bytes, &workspace));
    const int64_t words = static_cast<int64_t>(ids.size());
    OP_REQUIRES_OK(ctx, ctx->allocate_temp(DT_INT64, TensorShape({words}), &status));
    const cudaStream_t stream = StreamOf(ctx);
    OP_REQUIRES_OK(ctx, Launch(ctx, ids, DevicePtr<int64_t>(status), workspace.data(), bytes,
                               stream));
    for (int64_t k = 0; k < words; ++k) {
      const DeviceIds& each = ids[k];
      OP_REQUIRES_OK(ctx, CheckSegmentStatus(each.what, status.Slice(k, k + 1),
                                             ctx->input(each.input), each.count, stream));
    }
  }

 protected:
  // Checks the shapes and lists the id inputs; by default the segment ids (input 1).
  virtual Status CheckShapes(OpKernelContext* ctx, std::vector<DeviceIds>* ids) {
    int64_t num_segments = 0;
    TF_RETURN_IF_ERROR(CheckSegmentShapes(ctx, op_, &num_segments));
    ids->push_back({1, num_segments, op_});
    return OkStatus();
  }

  // Checks the op's own inputs, allocates its outputs and launches its kernels, one
  // status word per id input, in the order of `ids`.
  virtual Status Launch(OpKernelContext* ctx, const std::vector<DeviceIds>& ids,
                        int64_t* status, void* workspace, size_t bytes, cudaStream_t stream) = 0;

  const char* op_;
};

class CafeSegmentRowSumsGpuOp : public OccurrenceGpuOp {
 public:
  explicit CafeSegmentRowSumsGpuOp(OpKernelConstruction* ctx)
      : OccurrenceGpuOp(ctx, "CafeSegmentRowSums") {}

 protected:
  Status Launch(OpKernelContext* ctx, const std::vector<DeviceIds>& ids, int64_t* status,
                void* workspace, size_t bytes, cudaStream_t stream) override {
    const int64_t num_segments = ids[0].count;
    const Tensor& rows = ctx->input(0);
    const int64_t d = rows.dim_size(1);
    Tensor* sums = nullptr;
    TF_RETURN_IF_ERROR(ctx->allocate_output(0, TensorShape({num_segments, d}), &sums));
    return CudaStatus(cafe::cuda::LaunchSegmentRowSums(
                          rows.flat<float>().data(), ctx->input(1).flat<int32_t>().data(),
                          rows.dim_size(0), d, num_segments, sums->flat<float>().data(), status,
                          workspace, bytes, stream),
                      op_, "launch");
  }
};

class CafePairImportanceGpuOp : public OccurrenceGpuOp {
 public:
  explicit CafePairImportanceGpuOp(OpKernelConstruction* ctx)
      : OccurrenceGpuOp(ctx, "CafePairImportance") {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("norm", &norm_));
  }

 protected:
  Status Launch(OpKernelContext* ctx, const std::vector<DeviceIds>& ids, int64_t* status,
                void* workspace, size_t bytes, cudaStream_t stream) override {
    const int64_t num_pairs = ids[0].count;
    const Tensor& rows = ctx->input(0);
    TF_RETURN_IF_ERROR(CheckPairRows(rows, norm_));
    Tensor* sums = nullptr;
    Tensor* occurrences = nullptr;
    TF_RETURN_IF_ERROR(ctx->allocate_output(0, TensorShape({num_pairs}), &sums));
    TF_RETURN_IF_ERROR(ctx->allocate_output(1, TensorShape({num_pairs}), &occurrences));
    return CudaStatus(cafe::cuda::LaunchPairImportance(
                          rows.flat<float>().data(), ctx->input(1).flat<int32_t>().data(),
                          rows.dim_size(0), rows.dim_size(1), norm_, num_pairs,
                          sums->flat<double>().data(), occurrences->flat<double>().data(), status,
                          workspace, bytes, stream),
                      op_, "launch");
  }

 private:
  bool norm_;
};

// CafeSegmentRowSums and CafePairImportance (norm) on one workspace, one launch
// after the other on the stream: on a GPU the two passes over the rows cost
// less than on a CPU core, and the launchers stay those the device check runs.
class CafeExpandGradientGpuOp : public OccurrenceGpuOp {
 public:
  explicit CafeExpandGradientGpuOp(OpKernelConstruction* ctx)
      : OccurrenceGpuOp(ctx, "CafeExpandGradient") {}

 protected:
  Status CheckShapes(OpKernelContext* ctx, std::vector<DeviceIds>* ids) override {
    TF_RETURN_IF_ERROR(OccurrenceGpuOp::CheckShapes(ctx, ids));
    int64_t num_pairs = 0;
    TF_RETURN_IF_ERROR(CheckExpandPairShapes(ctx, op_, &num_pairs));
    ids->push_back({3, num_pairs, "CafeExpandGradient: pairs"});
    return OkStatus();
  }

  Status Launch(OpKernelContext* ctx, const std::vector<DeviceIds>& ids, int64_t* status,
                void* workspace, size_t bytes, cudaStream_t stream) override {
    const int64_t num_segments = ids[0].count, num_pairs = ids[1].count;
    const Tensor& rows = ctx->input(0);
    const int64_t n = rows.dim_size(0), d = rows.dim_size(1);
    Tensor* sums = nullptr;
    Tensor* pair_sums = nullptr;
    Tensor* occurrences = nullptr;
    TF_RETURN_IF_ERROR(AllocateExpandGradientOutputs(ctx, num_segments, num_pairs, &sums,
                                                     &pair_sums, &occurrences));
    TF_RETURN_IF_ERROR(CudaStatus(
        cafe::cuda::LaunchSegmentRowSums(rows.flat<float>().data(),
                                         ctx->input(1).flat<int32_t>().data(), n, d,
                                         num_segments, sums->flat<float>().data(), status,
                                         workspace, bytes, stream),
        op_, "launch"));
    return CudaStatus(cafe::cuda::LaunchPairImportance(
                          rows.flat<float>().data(), ctx->input(3).flat<int32_t>().data(), n, d,
                          /*norm=*/true, num_pairs, pair_sums->flat<double>().data(),
                          occurrences->flat<double>().data(), status + 1, workspace, bytes,
                          stream),
                      op_, "launch");
  }
};

#define CAFE_STATE_HOST_MEMORY                                                      \
  HostMemory("slots_var").HostMemory("scores_var").HostMemory("mass_var")            \
      .HostMemory("batches_var")

REGISTER_KERNEL_BUILDER(Name("CafeSketchInsert").Device(DEVICE_GPU).CAFE_STATE_HOST_MEMORY,
                        CafeSketchInsertGpuOp);
REGISTER_KERNEL_BUILDER(Name("CafeSketchQuery").Device(DEVICE_GPU), CafeSketchQueryGpuOp);
REGISTER_KERNEL_BUILDER(Name("CafeSketchMigrate")
                            .Device(DEVICE_GPU)
                            .CAFE_STATE_HOST_MEMORY.HostMemory("force_decay")
                            .HostMemory("decayed"),
                        CafeSketchMigrateGpuOp);

REGISTER_KERNEL_BUILDER(Name("CafeRoute").Device(DEVICE_GPU), CafeRouteGpuOp);
REGISTER_KERNEL_BUILDER(Name("CafeFieldKeys").Device(DEVICE_GPU), CafeFieldKeysGpuOp);

// num_segments sizes the output, so the kernel reads it on the host.
REGISTER_KERNEL_BUILDER(
    Name("CafeSegmentRowSums").Device(DEVICE_GPU).HostMemory("num_segments"),
    CafeSegmentRowSumsGpuOp);
REGISTER_KERNEL_BUILDER(Name("CafePairImportance").Device(DEVICE_GPU).HostMemory("num_pairs"),
                        CafePairImportanceGpuOp);
REGISTER_KERNEL_BUILDER(Name("CafeExpandGradient")
                            .Device(DEVICE_GPU)
                            .HostMemory("num_segments")
                            .HostMemory("num_pairs"),
                        CafeExpandGradientGpuOp);

#undef CAFE_STATE_HOST_MEMORY

}  // namespace
}  // namespace tensorflow

#endif  // GOOGLE_CUDA
