// Standalone GPU harness (no TensorFlow): runs the CUDA launchers of
// hotsketch_kernels.h and the CPU core (../core/hotsketch.cc) on the same
// inputs, compares every state array and every op output bit for bit
// (PASS/FAIL per scenario), then measures throughput.
//
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

  cudaStream_t stream() const { return stream_; }

 private:
  cudaStream_t stream_ = nullptr;
  SketchConfig config_;
  DeviceBuffer slots_, scores_, mass_, batches_;
  DeviceBuffer in_keys_, in_importance_, in_feature_index_, status_, workspace_;
  DeviceBuffer out_rows_, out_levels_, counts_, dkeys_, dtags_, drows_, pkeys_, ptags_, prows_;
  int64_t batch_n_ = 0;
};

double Seconds(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// Throughput at the benchmark shape: batches of 1M ids from Zipf(1.1) over
// 10M ids, W = 65536 buckets, c = 4.
void Benchmark(int iters) {
  const int64_t n = 1000000;
  SketchConfig config;
  config.num_buckets = 65536;
  config.slots_per_bucket = 4;
  config.hot_rows = 32768;
  config.tag_bits = 5;  // MakeBatch's feature indices go up to 26
  config.threshold = 20.f;
  config.demote_threshold = 20.f;
  config.medium_threshold = 4.f;
  std::printf("\nThroughput: batch %" PRId64 " ids ~ Zipf(1.1) over 10M ids, W=%" PRId64
              " buckets, c=%d\n",
              n, config.num_buckets, config.slots_per_bucket);
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
  {
    std::vector<int64_t> sorted = keys[0];
    std::sort(sorted.begin(), sorted.end());
    int64_t distinct = 0, longest = 0, run = 0;
    for (size_t i = 0; i < sorted.size(); ++i) {
      run = (i > 0 && sorted[i] == sorted[i - 1]) ? run + 1 : 1;
      distinct += run == 1 ? 1 : 0;
      longest = std::max(longest, run);
    }
    std::printf("  batch 0: %" PRId64 " distinct ids, the most frequent appears %" PRId64
                " times\n",
                distinct, longest);
  }

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
  auto insert = [&](int b) {
    gpu.InsertUploaded(dk[b].As<int64_t>(n), di[b].As<float>(n), dt[b].As<int32_t>(n), n);
  };
  for (int i = 0; i < 4; ++i) insert(i % kBatches);  // warm-up (allocations, CUB tuning)
  CHECK_CUDA(cudaStreamSynchronize(stream));
  cudaEvent_t start, stop;
  CHECK_CUDA(cudaEventCreate(&start));
  CHECK_CUDA(cudaEventCreate(&stop));
  CHECK_CUDA(cudaEventRecord(start, stream));
  for (int i = 0; i < iters; ++i) insert(i % kBatches);
  CHECK_CUDA(cudaEventRecord(stop, stream));
  CHECK_CUDA(cudaEventSynchronize(stop));
  float ms = 0.f;
  CHECK_CUDA(cudaEventElapsedTime(&ms, start, stop));
  const double gpu_insert = static_cast<double>(n) * iters / (ms * 1e-3);
  std::printf("  GPU insert: %8.2f M keys/s  (%.3f ms per 1M batch, %d batches; goal >= 500 M "
              "keys/s on an H100: %s)\n",
              gpu_insert / 1e6, ms / iters, iters, gpu_insert >= 5e8 ? "met" : "NOT met");

  // Query.
  std::vector<int32_t> unused_rows, unused_levels;
  const size_t slots = static_cast<size_t>(config.num_slots());
  DeviceBuffer qr, ql;
  const SketchState st = gpu.state();
  auto query = [&](int b) {
    CHECK_CUDA(cuda::LaunchQuery(config.num_buckets, config.slots_per_bucket, config.tag_bits,
                                 config.medium_threshold, st.slots, st.scores,
                                 dk[b].As<int64_t>(n), n, qr.As<int32_t>(n), ql.As<int32_t>(n),
                                 stream));
  };
  (void)slots;
  for (int i = 0; i < 4; ++i) query(i % kBatches);
  CHECK_CUDA(cudaEventRecord(start, stream));
  const int qiters = iters * 5;
  for (int i = 0; i < qiters; ++i) query(i % kBatches);
  CHECK_CUDA(cudaEventRecord(stop, stream));
  CHECK_CUDA(cudaEventSynchronize(stop));
  CHECK_CUDA(cudaEventElapsedTime(&ms, start, stop));
  const double gpu_query = static_cast<double>(n) * qiters / (ms * 1e-3);
  std::printf("  GPU query:  %8.2f M keys/s  (%.3f ms per 1M batch)\n", gpu_query / 1e6,
              ms / qiters);

  // Migration (one forced decay + promotion) at this shape, for reference.
  {
    const auto t0 = std::chrono::steady_clock::now();
    gpu.Migrate(true);
    const auto t1 = std::chrono::steady_clock::now();
    std::printf("  GPU migrate (forced decay, %zu slots, incl. result download): %.3f ms\n",
                slots, Seconds(t0, t1) * 1e3);
  }

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
  CHECK_CUDA(cudaEventDestroy(start));
  CHECK_CUDA(cudaEventDestroy(stop));
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
  if (bench) Benchmark(iters);
  std::printf("%s\n", ok ? "ALL PASS" : "MISMATCH: FAIL");
  return ok ? 0 : 1;
}
