// Standalone GPU harness (no TensorFlow): runs the CUDA launchers of
// hotsketch_kernels.h, routing_kernels.h and occurrence_kernels.h and the CPU
// core (../core) on the same inputs, compares every state array and every op
// output bit for bit (PASS/FAIL per scenario), then measures throughput at
// 64k and 1M keys.
//
//   custom_ops/cuda/device_check.sh         # build + run everything, time-limited
//   custom_ops/cuda/run_harness.sh          # build + run everything
//   harness [--no-large] [--no-bench] [--bench-only] [--bench-iters N]
//
// Exit status: 0 when every scenario passed, 1 on any mismatch, 2 on a CUDA
// error.
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "../../core/hotsketch.h"
#include "backend.h"
#include "batches.h"
#include "compare.h"
#include "scenarios.h"
#include "self_test.h"
#include "../kernels/hotsketch_kernels.h"
#include "../kernels/occurrence_kernels.h"
#include "../kernels/routing_kernels.h"

namespace cafe {
namespace harness {
namespace {

#define CHECK_CUDA(expr)                                                                   \
  do {                                                                                     \
    const cudaError_t err_ = (expr);                                                       \
    if (err_ != cudaSuccess) {                                                             \
      std::fprintf(stderr, "CUDA error %s at %s:%d: %s\n", cudaGetErrorName(err_), __FILE__, \
                   __LINE__, cudaGetErrorString(err_));                                    \
      std::exit(2);                                                                        \
    }                                                                                      \
  } while (0)

// A device buffer that only grows.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() {
    if (ptr_ != nullptr) cudaFree(ptr_);
  }
  void* Get(size_t bytes) {
    if (bytes > size_) {
      if (ptr_ != nullptr) CHECK_CUDA(cudaFree(ptr_));
      ptr_ = nullptr;
      CHECK_CUDA(cudaMalloc(&ptr_, std::max<size_t>(bytes, 256)));
      size_ = bytes;
    }
    if (ptr_ == nullptr) CHECK_CUDA(cudaMalloc(&ptr_, 256));
    return ptr_;
  }
  template <typename T>
  T* As(size_t count) {
    return static_cast<T*>(Get(count * sizeof(T)));
  }

 private:
  void* ptr_ = nullptr;
  size_t size_ = 0;
};

template <typename T>
void Upload(DeviceBuffer& buf, const std::vector<T>& host, cudaStream_t stream) {
  T* d = buf.As<T>(host.size());
  if (!host.empty())
    CHECK_CUDA(cudaMemcpyAsync(d, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice,
                               stream));
}

template <typename T>
void Download(std::vector<T>* host, const T* d, size_t count, cudaStream_t stream) {
  host->resize(count);
  if (count > 0)
    CHECK_CUDA(cudaMemcpyAsync(host->data(), d, count * sizeof(T), cudaMemcpyDeviceToHost, stream));
}

// LaunchRoute's outputs in `buffers` (12, in DeviceRouteOutput's order), each
// with room for n entries, and its counts in `counts`.
cuda::DeviceRouteOutput RouteOutputs(DeviceBuffer* buffers, DeviceBuffer& counts, size_t n) {
  return {buffers[0].As<int64_t>(n),  buffers[1].As<int32_t>(n),  buffers[2].As<int32_t>(n),
          buffers[3].As<int32_t>(n),  buffers[4].As<int32_t>(n),  buffers[5].As<int64_t>(n),
          buffers[6].As<int64_t>(n),  buffers[7].As<int32_t>(n),  buffers[8].As<int64_t>(n),
          buffers[9].As<int64_t>(n),  buffers[10].As<int32_t>(n), buffers[11].As<int32_t>(n),
          buffers[12].As<int32_t>(n), counts.As<int64_t>(5)};
}

class GpuBackend : public Backend {
 public:
  GpuBackend() { CHECK_CUDA(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking)); }
  ~GpuBackend() override { cudaStreamDestroy(stream_); }
  std::string name() const override { return "gpu"; }

  void Reset(const SketchConfig& config) override {
    config_ = config;
    const Snapshot empty = EmptySnapshot(config);
    Upload(slots_, empty.slots, stream_);
    Upload(scores_, empty.scores, stream_);
    Upload(mass_, std::vector<float>{empty.mass}, stream_);
    Upload(batches_, std::vector<int64_t>{empty.batches}, stream_);
    CHECK_CUDA(cudaStreamSynchronize(stream_));
  }

  SketchState state() {
    const size_t slots = static_cast<size_t>(config_.num_slots());
    return {slots_.As<int64_t>(slots), scores_.As<float>(slots), mass_.As<float>(1),
            batches_.As<int64_t>(1)};
  }

  // Uploads a batch once; InsertUploaded runs the launcher on it.
  void UploadBatch(const std::vector<int64_t>& keys, const std::vector<float>& importance,
                   const std::vector<int32_t>& feature_index) {
    Upload(in_keys_, keys, stream_);
    Upload(in_importance_, importance, stream_);
    Upload(in_feature_index_, feature_index, stream_);
    batch_n_ = static_cast<int64_t>(keys.size());
  }

  void InsertUploaded(const int64_t* d_keys, const float* d_importance,
                      const int32_t* d_feature_index, int64_t n) {
    cudaError_t err = cudaSuccess;
    const size_t bytes = cuda::InsertWorkspaceBytes(n, config_.num_buckets, &err);
    CHECK_CUDA(err);
    void* ws = workspace_.Get(bytes);
    CHECK_CUDA(cuda::LaunchInsert(config_.num_buckets, config_.slots_per_bucket, config_.tag_bits,
                                  state(), d_keys,
                                  d_importance, d_feature_index, n, config_.second_sighting,
                                  config_.erode, status_.As<int64_t>(1), ws, bytes, stream_));
  }

  InsertOutcome Insert(const std::vector<int64_t>& keys, const std::vector<float>& importance,
                       const std::vector<int32_t>& feature_index) override {
    UploadBatch(keys, importance, feature_index);
    const size_t n = keys.size();
    InsertUploaded(in_keys_.As<int64_t>(n), in_importance_.As<float>(n),
                   in_feature_index_.As<int32_t>(n), batch_n_);
    InsertOutcome out;
    CHECK_CUDA(cudaMemcpyAsync(&out.status, status_.As<int64_t>(1), sizeof(int64_t),
                               cudaMemcpyDeviceToHost, stream_));
    CHECK_CUDA(cudaStreamSynchronize(stream_));
    return out;
  }

  void Query(const std::vector<int64_t>& ids, std::vector<int32_t>* rows,
             std::vector<int32_t>* levels) override {
    Upload(in_keys_, ids, stream_);
    const size_t n = ids.size();
    const size_t slots = static_cast<size_t>(config_.num_slots());
    CHECK_CUDA(cuda::LaunchQuery(config_.num_buckets, config_.slots_per_bucket, config_.tag_bits,
                                 config_.medium_threshold, slots_.As<int64_t>(slots),
                                 scores_.As<float>(slots), in_keys_.As<int64_t>(n), static_cast<int64_t>(n),
                                 out_rows_.As<int32_t>(n), out_levels_.As<int32_t>(n), stream_));
    Download(rows, out_rows_.As<int32_t>(n), n, stream_);
    Download(levels, out_levels_.As<int32_t>(n), n, stream_);
    CHECK_CUDA(cudaStreamSynchronize(stream_));
  }

  MigrationResult Migrate(bool force_decay) override {
    cudaError_t err = cudaSuccess;
    const size_t bytes = cuda::MigrateWorkspaceBytes(config_, &err);
    CHECK_CUDA(err);
    const size_t dcap = static_cast<size_t>(cuda::MigrateDemotedCapacity(config_));
    const size_t pcap = static_cast<size_t>(cuda::MigratePromotedCapacity(config_));
    cuda::MigrateOutputs out;
    out.counts = counts_.As<int32_t>(4);
    out.demoted_fingerprints = dkeys_.As<int64_t>(dcap);
    out.demoted_tags = dtags_.As<int32_t>(dcap);
    out.demoted_rows = drows_.As<int32_t>(dcap);
    out.promoted_fingerprints = pkeys_.As<int64_t>(pcap);
    out.promoted_tags = ptags_.As<int32_t>(pcap);
    out.promoted_rows = prows_.As<int32_t>(pcap);
    CHECK_CUDA(cuda::LaunchMigrate(config_, state(), force_decay, out, workspace_.Get(bytes),
                                   bytes, stream_));
    int32_t counts[4];
    CHECK_CUDA(cudaMemcpyAsync(counts, out.counts, sizeof(counts), cudaMemcpyDeviceToHost,
                               stream_));
    CHECK_CUDA(cudaStreamSynchronize(stream_));
    std::vector<int64_t> dk, pk;
    std::vector<int32_t> dt, dr, pt, pr;
    Download(&dk, out.demoted_fingerprints, counts[1], stream_);
    Download(&dt, out.demoted_tags, counts[1], stream_);
    Download(&dr, out.demoted_rows, counts[1], stream_);
    Download(&pk, out.promoted_fingerprints, counts[2], stream_);
    Download(&pt, out.promoted_tags, counts[2], stream_);
    Download(&pr, out.promoted_rows, counts[2], stream_);
    CHECK_CUDA(cudaStreamSynchronize(stream_));
    MigrationResult result;
    result.decayed = counts[0] != 0;
    for (int32_t i = 0; i < counts[1]; ++i)
      result.demoted.push_back({static_cast<uint32_t>(dk[i]), dt[i], dr[i]});
    for (int32_t i = 0; i < counts[2]; ++i)
      result.promoted.push_back({static_cast<uint32_t>(pk[i]), pt[i], pr[i]});
    return result;
  }

  Snapshot Read() override {
    Snapshot s;
    const size_t slots = static_cast<size_t>(config_.num_slots());
    const SketchState d = state();
    Download(&s.slots, d.slots, slots, stream_);
    Download(&s.scores, d.scores, slots, stream_);
    CHECK_CUDA(cudaMemcpyAsync(&s.mass, d.mass, sizeof(float), cudaMemcpyDeviceToHost, stream_));
    CHECK_CUDA(
        cudaMemcpyAsync(&s.batches, d.batches, sizeof(int64_t), cudaMemcpyDeviceToHost, stream_));
    CHECK_CUDA(cudaStreamSynchronize(stream_));
    return s;
  }

  void Route(const RouteTables& tables, const std::vector<int64_t>& ids,
             const std::vector<int32_t>& feature_index, RouteResult* result,
             std::vector<int32_t>* inverse) override {
    const int64_t n = static_cast<int64_t>(ids.size());
    const size_t un = ids.size();
    Upload(in_keys_, ids, stream_);
    Upload(in_feature_index_, feature_index, stream_);
    Upload(tables_[0], tables.hashed_offsets, stream_);
    Upload(tables_[1], tables.hashed_sizes, stream_);
    const bool multi = !tables.medium_sizes.empty();
    Upload(tables_[2], tables.medium_offsets, stream_);
    Upload(tables_[3], tables.medium_sizes, stream_);
    const cuda::DeviceRouteTables t{
        tables_[0].As<int64_t>(0), tables_[1].As<int64_t>(0),
        multi ? tables_[2].As<int64_t>(0) : nullptr, multi ? tables_[3].As<int64_t>(0) : nullptr,
        static_cast<int32_t>(tables.num_features()), tables.hashed_seed, tables.medium_seed};
    const cuda::DeviceRouteOutput out = RouteOutputs(route_, counts64_, un);
    cudaError_t err = cudaSuccess;
    const size_t bytes = cuda::RouteWorkspaceBytes(n, &err);
    CHECK_CUDA(err);
    CHECK_CUDA(cuda::LaunchRoute(config_.num_buckets, config_.slots_per_bucket, config_.tag_bits,
                                 config_.medium_threshold, state().slots, state().scores, t,
                                 in_keys_.As<int64_t>(un), in_feature_index_.As<int32_t>(un), n,
                                 out, workspace_.Get(bytes), bytes, stream_));
    int64_t counts[5];
    CHECK_CUDA(cudaMemcpyAsync(counts, out.counts, sizeof(counts), cudaMemcpyDeviceToHost,
                               stream_));
    CHECK_CUDA(cudaStreamSynchronize(stream_));
    const size_t u = static_cast<size_t>(counts[0]);
    Download(&result->keys, out.keys, u, stream_);
    Download(&result->feature_index, out.feature_index, u, stream_);
    Download(inverse, out.inverse, un, stream_);
    Download(&result->hot_row, out.hot_row, u, stream_);
    Download(&result->level, out.level, u, stream_);
    Download(&result->hashed_row, out.hashed_row, u, stream_);
    Download(&result->medium_row, out.medium_row, u, stream_);
    Download(&result->read_hot, out.read_hot, static_cast<size_t>(counts[1]), stream_);
    Download(&result->read_hashed, out.read_hashed, static_cast<size_t>(counts[2]), stream_);
    Download(&result->read_medium, out.read_medium, static_cast<size_t>(counts[3]), stream_);
    Download(&result->first_index, out.first_index, u, stream_);
    Download(&result->medium_index, out.medium_index, u, stream_);
    Download(&result->occurrence_index, out.occurrence_index, un, stream_);
    CHECK_CUDA(cudaStreamSynchronize(stream_));
  }

  // The features' ids uploaded back to back, then one LaunchFieldKeys each (CafeFieldKeys).
  void FieldKeys(const std::vector<std::vector<int64_t>>& ids, std::vector<int64_t>* keys,
                 std::vector<int32_t>* feature_index) override {
    std::vector<int64_t> all;
    for (const std::vector<int64_t>& f : ids) all.insert(all.end(), f.begin(), f.end());
    Upload(in_keys_, all, stream_);
    int64_t* d_keys = route_[0].As<int64_t>(all.size());
    int32_t* d_index = route_[1].As<int32_t>(all.size());
    size_t offset = 0;
    for (size_t f = 0; f < ids.size(); ++f) {
      CHECK_CUDA(cuda::LaunchFieldKeys(in_keys_.As<int64_t>(all.size()) + offset,
                                       static_cast<int64_t>(ids[f].size()),
                                       static_cast<int32_t>(f), d_keys + offset, d_index + offset,
                                       stream_));
      offset += ids[f].size();
    }
    Download(keys, d_keys, all.size(), stream_);
    Download(feature_index, d_index, all.size(), stream_);
    CHECK_CUDA(cudaStreamSynchronize(stream_));
  }

  int64_t SegmentRowSums(const std::vector<float>& rows, const std::vector<int32_t>& segments,
                         int64_t d, int64_t num_segments, std::vector<float>* out) override {
    const int64_t n = static_cast<int64_t>(segments.size());
    Upload(in_rows_, rows, stream_);
    Upload(in_segments_, segments, stream_);
    const size_t outputs = static_cast<size_t>(num_segments * d);
    cudaError_t err = cudaSuccess;
    const size_t bytes = cuda::OccurrenceWorkspaceBytes(n, num_segments, &err);
    CHECK_CUDA(err);
    CHECK_CUDA(cuda::LaunchSegmentRowSums(in_rows_.As<float>(rows.size()),
                                          in_segments_.As<int32_t>(segments.size()), n, d,
                                          num_segments, out_sums_.As<float>(outputs),
                                          status_.As<int64_t>(1), workspace_.Get(bytes), bytes,
                                          stream_));
    return DownloadStatusAnd(out, out_sums_.As<float>(outputs), outputs);
  }

  int64_t PairImportance(const std::vector<float>& rows, const std::vector<int32_t>& pairs,
                         int64_t d, bool norm, int64_t num_pairs, std::vector<double>* sums,
                         std::vector<double>* occurrences) override {
    const int64_t n = static_cast<int64_t>(pairs.size());
    const size_t np = static_cast<size_t>(num_pairs);
    Upload(in_rows_, rows, stream_);
    Upload(in_segments_, pairs, stream_);
    cudaError_t err = cudaSuccess;
    const size_t bytes = cuda::OccurrenceWorkspaceBytes(n, num_pairs, &err);
    CHECK_CUDA(err);
    CHECK_CUDA(cuda::LaunchPairImportance(
        in_rows_.As<float>(rows.size()), in_segments_.As<int32_t>(pairs.size()), n, d, norm,
        num_pairs, out_pair_sums_.As<double>(np), out_pair_counts_.As<double>(np),
        status_.As<int64_t>(1), workspace_.Get(bytes), bytes, stream_));
    Download(occurrences, out_pair_counts_.As<double>(np), np, stream_);
    return DownloadStatusAnd(sums, out_pair_sums_.As<double>(np), np);
  }

  cudaStream_t stream() const { return stream_; }

 private:
  // Downloads `count` values of `d` into *host and returns the status word.
  template <typename T>
  int64_t DownloadStatusAnd(std::vector<T>* host, const T* d, size_t count) {
    Download(host, d, count, stream_);
    int64_t status = 0;
    CHECK_CUDA(cudaMemcpyAsync(&status, status_.As<int64_t>(1), sizeof(status),
                               cudaMemcpyDeviceToHost, stream_));
    CHECK_CUDA(cudaStreamSynchronize(stream_));
    return status;
  }

  cudaStream_t stream_ = nullptr;
  SketchConfig config_;
  DeviceBuffer slots_, scores_, mass_, batches_;
  DeviceBuffer in_keys_, in_importance_, in_feature_index_, status_, workspace_;
  DeviceBuffer out_rows_, out_levels_, counts_, dkeys_, dtags_, drows_, pkeys_, ptags_, prows_;
  DeviceBuffer tables_[4], route_[13], counts64_;
  DeviceBuffer in_rows_, in_segments_, out_sums_, out_pair_sums_, out_pair_counts_;
  int64_t batch_n_ = 0;
};

double Seconds(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// Milliseconds per call of `launch` (asynchronous launches on `stream`, timed
// by events after two warm-up calls).
template <typename Launch>
float MsPerCall(cudaStream_t stream, int iters, const Launch& launch) {
  for (int i = 0; i < 2; ++i) launch(i);  // allocations, CUB tuning
  cudaEvent_t start, stop;
  CHECK_CUDA(cudaEventCreate(&start));
  CHECK_CUDA(cudaEventCreate(&stop));
  CHECK_CUDA(cudaEventRecord(start, stream));
  for (int i = 0; i < iters; ++i) launch(i);
  CHECK_CUDA(cudaEventRecord(stop, stream));
  CHECK_CUDA(cudaEventSynchronize(stop));
  float ms = 0.f;
  CHECK_CUDA(cudaEventElapsedTime(&ms, start, stop));
  CHECK_CUDA(cudaEventDestroy(start));
  CHECK_CUDA(cudaEventDestroy(stop));
  return ms / iters;
}

void PrintRate(const char* what, int64_t n, float ms, const char* goal) {
  const double rate = static_cast<double>(n) / (ms * 1e-3);
  std::printf("  GPU %-26s %9.2f M keys/s  (%.3f ms per call)%s\n", what, rate / 1e6, ms, goal);
}

// Throughput on batches of n ids ~ Zipf(1.1) over 10M ids, in the default
// sketch layout: c = 16 slots per bucket, about 4/3 slots per hot row.
void Benchmark(int64_t n, int iters) {
  SketchConfig config;
  config.hot_rows = 98304;
  config.slots_per_bucket = 16;
  config.num_buckets = config.hot_rows * 4 / 3 / config.slots_per_bucket;  // 8192
  config.tag_bits = 5;  // MakeBatch's feature indices go up to 26
  config.threshold = 20.f;
  config.demote_threshold = 20.f;
  config.medium_threshold = 4.f;
  const int64_t d = 16;  // embedding width of the occurrence sums
  std::printf("\nThroughput: batches of %" PRId64 " ids ~ Zipf(1.1) over 10M ids; W=%" PRId64
              " buckets, c=%d, %d hot rows; occurrence sums over rows of %" PRId64 " floats\n",
              n, config.num_buckets, config.slots_per_bucket, config.hot_rows, d);
  const Zipf zipf(10000000, 1.1);
  Rng rng(2024);
  const int kBatches = 4;
  std::vector<std::vector<int64_t>> keys(kBatches);
  std::vector<std::vector<float>> imp(kBatches);
  std::vector<std::vector<int32_t>> feature_index(kBatches);
  BatchSpec spec;
  spec.n = n;
  spec.key_mode = KeyMode::kScrambled;
  spec.importance = ImportanceMode::kUniform;
  for (int b = 0; b < kBatches; ++b)
    MakeBatch(spec, rng, zipf, &keys[b], &imp[b], &feature_index[b]);

  GpuBackend gpu;
  gpu.Reset(config);
  cudaStream_t stream = gpu.stream();
  std::vector<DeviceBuffer> dk(kBatches), di(kBatches), dt(kBatches);
  for (int b = 0; b < kBatches; ++b) {
    Upload(dk[b], keys[b], stream);
    Upload(di[b], imp[b], stream);
    Upload(dt[b], feature_index[b], stream);
  }
  CHECK_CUDA(cudaStreamSynchronize(stream));
  const float insert_ms = MsPerCall(stream, iters, [&](int i) {
    const int b = i % kBatches;
    gpu.InsertUploaded(dk[b].As<int64_t>(n), di[b].As<float>(n), dt[b].As<int32_t>(n), n);
  });
  const bool at_1m = n >= 1000000;
  PrintRate("insert", n, insert_ms, at_1m ? "  goal on an H100: >= 500 M keys/s" : "");
  gpu.Migrate(true);  // promote the hottest keys, so queries and routes find hot rows

  const SketchState st = gpu.state();
  DeviceBuffer qr, ql;
  const float query_ms = MsPerCall(stream, iters * 5, [&](int i) {
    CHECK_CUDA(cuda::LaunchQuery(config.num_buckets, config.slots_per_bucket, config.tag_bits,
                                 config.medium_threshold, st.slots, st.scores,
                                 dk[i % kBatches].As<int64_t>(n), n, qr.As<int32_t>(n),
                                 ql.As<int32_t>(n), stream));
  });
  PrintRate("query", n, query_ms, at_1m ? "  goal on an H100: >= 1000 M keys/s" : "");

  // Route: 32 features of 65536 hashed rows, one level; the launcher alone
  // (the TF kernel adds one count readback per call).
  RouteTables tables;
  for (int f = 0; f < 32; ++f) {
    tables.hashed_offsets.push_back(int64_t{f} << 16);
    tables.hashed_sizes.push_back(int64_t{1} << 16);
  }
  DeviceBuffer t_offsets, t_sizes, route_ws, counts;
  Upload(t_offsets, tables.hashed_offsets, stream);
  Upload(t_sizes, tables.hashed_sizes, stream);
  const cuda::DeviceRouteTables dtables{t_offsets.As<int64_t>(32), t_sizes.As<int64_t>(32),
                                        nullptr, nullptr, 32, tables.hashed_seed,
                                        tables.medium_seed};
  DeviceBuffer ro[13];
  const cuda::DeviceRouteOutput out = RouteOutputs(ro, counts, static_cast<size_t>(n));
  cudaError_t err = cudaSuccess;
  const size_t route_bytes = cuda::RouteWorkspaceBytes(n, &err);
  CHECK_CUDA(err);
  void* rws = route_ws.Get(route_bytes);
  auto route = [&](int b) {
    CHECK_CUDA(cuda::LaunchRoute(config.num_buckets, config.slots_per_bucket, config.tag_bits,
                                 config.medium_threshold, st.slots, st.scores, dtables,
                                 dk[b].As<int64_t>(n), dt[b].As<int32_t>(n), n, out, rws,
                                 route_bytes, stream));
  };
  PrintRate("route", n, MsPerCall(stream, iters, [&](int i) { route(i % kBatches); }), "");

  // The occurrence sums over batch 0's route: rows [n, d], segments = its inverse.
  route(0);
  int64_t distinct = 0;
  CHECK_CUDA(cudaMemcpyAsync(&distinct, out.counts, sizeof(distinct), cudaMemcpyDeviceToHost,
                             stream));
  CHECK_CUDA(cudaStreamSynchronize(stream));
  std::vector<float> rows(static_cast<size_t>(n * d));
  for (float& x : rows) x = static_cast<float>(rng.Uniform() * 2.0 - 1.0);
  DeviceBuffer drows, dsums, dpairs, dcounts, status, occ_ws;
  Upload(drows, rows, stream);
  const size_t occ_bytes = cuda::OccurrenceWorkspaceBytes(n, distinct, &err);
  CHECK_CUDA(err);
  void* ows = occ_ws.Get(occ_bytes);
  float* sums = dsums.As<float>(static_cast<size_t>(distinct * d));
  double* pair_sums = dpairs.As<double>(static_cast<size_t>(distinct));
  double* pair_counts = dcounts.As<double>(static_cast<size_t>(distinct));
  const float row_sums_ms = MsPerCall(stream, iters, [&](int) {
    CHECK_CUDA(cuda::LaunchSegmentRowSums(drows.As<float>(0), out.inverse, n, d, distinct, sums,
                                          status.As<int64_t>(1), ows, occ_bytes, stream));
  });
  PrintRate("segment row sums (d=16)", n, row_sums_ms, "");
  const float pair_ms = MsPerCall(stream, iters, [&](int) {
    CHECK_CUDA(cuda::LaunchPairImportance(drows.As<float>(0), out.inverse, n, d, true, distinct,
                                          pair_sums, pair_counts, status.As<int64_t>(1), ows,
                                          occ_bytes, stream));
  });
  PrintRate("pair importance (d=16)", n, pair_ms, "");
  std::printf("  (%" PRId64 " distinct (id, feature) pairs in batch 0)\n", distinct);

  // CPU core, serial and threaded, on the same batches.
  const int hw = std::max(1u, std::thread::hardware_concurrency());
  for (int threads : {1, hw}) {
    if (threads == hw && hw == 1) break;
    Snapshot state = EmptySnapshot(config);
    const ParallelFor pf = threads > 1 ? ThreadParallelFor(threads) : ParallelFor(SerialFor);
    SketchConfig ic;
    ic.num_buckets = config.num_buckets;
    ic.slots_per_bucket = config.slots_per_bucket;
    cafe::Insert(ic, state.view(), keys[0].data(), imp[0].data(), feature_index[0].data(), n,
                 threads, pf);
    const int cpu_iters = 3;
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < cpu_iters; ++i) {
      const int b = (i + 1) % kBatches;
      cafe::Insert(ic, state.view(), keys[b].data(), imp[b].data(), feature_index[b].data(), n,
                   threads, pf);
    }
    auto t1 = std::chrono::steady_clock::now();
    const double cpu_insert = static_cast<double>(n) * cpu_iters / Seconds(t0, t1);
    std::vector<int32_t> r(n), l(n);
    const ConstSketchState cs{state.slots.data(), state.scores.data()};
    t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < cpu_iters; ++i)
      cafe::Query(config, cs, keys[i % kBatches].data(), n, r.data(), l.data(), pf);
    t1 = std::chrono::steady_clock::now();
    const double cpu_query = static_cast<double>(n) * cpu_iters / Seconds(t0, t1);
    std::printf("  CPU core (%2d thread%s): insert %8.2f M keys/s, query %8.2f M keys/s\n",
                threads, threads == 1 ? " " : "s", cpu_insert / 1e6, cpu_query / 1e6);
  }
}

void PrintDevice() {
  int device = 0;
  CHECK_CUDA(cudaGetDevice(&device));
  cudaDeviceProp prop;
  CHECK_CUDA(cudaGetDeviceProperties(&prop, device));
  int runtime = 0, driver = 0;
  CHECK_CUDA(cudaRuntimeGetVersion(&runtime));
  CHECK_CUDA(cudaDriverGetVersion(&driver));
  std::printf("Device %d: %s, compute capability %d.%d, %d SMs; CUDA runtime %d, driver %d\n",
              device, prop.name, prop.major, prop.minor, prop.multiProcessorCount, runtime,
              driver);
}

}  // namespace
}  // namespace harness
}  // namespace cafe

int main(int argc, char** argv) {
  using namespace cafe::harness;
  bool large = true, bench = true, scenarios = true;
  int iters = 20;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--no-large") large = false;
    else if (a == "--no-bench") bench = false;
    else if (a == "--bench-only") scenarios = false;
    else if (a == "--bench-iters" && i + 1 < argc) iters = std::max(1, std::atoi(argv[++i]));
    else {
      std::fprintf(stderr, "usage: %s [--no-large] [--no-bench] [--bench-only] [--bench-iters N]\n",
                   argv[0]);
      return 2;
    }
  }
  PrintDevice();
  bool ok = SelfTest();
  int passed = 0, failed = 0;
  if (scenarios) {
    GpuBackend gpu;
    for (const Scenario& sc : Scenarios(large)) {
      auto core = MakeCoreBackend(sc.config.num_buckets > 1 ? 2 : 1);
      if (RunScenario(sc, *core, gpu)) ++passed;
      else ++failed;
    }
    std::printf("%d scenarios passed, %d failed\n", passed, failed);
  }
  ok = ok && failed == 0;
  if (bench) {
    for (int64_t n : {int64_t{65536}, int64_t{1000000}}) Benchmark(n, iters);
  }
  std::printf("%s\n", ok ? "ALL PASS" : "MISMATCH: FAIL");
  return ok ? 0 : 1;
}
