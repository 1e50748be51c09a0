// CUDA kernels for the HotSketch ops. Bit-identical to ../core/hotsketch.cc:
// see hotsketch_kernels.h for the API and hotsketch_device_common.h for the
// per-thread bodies (shared with the CPU emulation in ../harness/emulation_test.cc).
//
// Never include TensorFlow headers here (TF 2.16 ships CUDA 12.3 headers;
// this file may be built with another toolkit).
//
// Insert pipeline (n entries, W buckets, c slots per bucket):
//   1. validate + pack (importance bits, tag) per entry; first bad index via
//      atomicMin (a min, so the result does not depend on thread order)
//   2. CUB stable radix sort of (key -> packed) over all 64 key bits: equal
//      keys stay in input-index order
//   3. run heads, exclusive scan -> run ids, run starts, number of runs
//   4. per run (distinct key): sequential float sum in index order starting
//      from 0.f (one thread for short runs; for long runs one block streams
//      the run through shared memory while a single thread adds, so the adds
//      are still one sequential chain), tag = min, bucket = Mix64(key) % W
//   5. CUB stable radix sort of (bucket -> run id): within a bucket the runs
//      stay in ascending key order (signed, as the CPU's std::sort)
//   6. one thread per bucket present in the batch walks its keys in
//      ascending order: hit (by fingerprint) / first empty / erosion or
//      takeover, exactly InsertIntoBucket (no atomics on the state: a bucket
//      has one owner)
//   7. mass += PairwiseSum(importance) with the CPU's halving tree (two
//      stages), batches += 1
// Every state write (6, 7) is skipped when step 1 found an invalid entry.
#include "hotsketch_kernels.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cstdint>

#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_scan.cuh>

#include "hotsketch_device_common.h"
#include "launch_common.cuh"

namespace cafe {
namespace cuda {
namespace {

using namespace detail;  // NOLINT: the shared bodies

using launch::BitsFor;
using launch::Carver;
using launch::GridFor;
using launch::kThreads;

constexpr int kFinalThreads = 1024;
// Blocks of LongRunKernel (each takes long runs j, j + grid, ...).
constexpr int64_t kLongRunBlocks = 2048;

// ------------------------------------------------------------ workspace ---

struct InsertBuffers {
  uint64_t* packed;         // [n] input order
  int64_t* sorted_keys;     // [n]
  uint64_t* sorted_packed;  // [n]
  int32_t* head;            // [n]
  int32_t* run_id;          // [n]
  int32_t* run_start;       // [n]
  int32_t* num_runs;        // [1]
  int64_t* run_key;         // [n]
  float* run_value;         // [n]
  int32_t* run_tag;         // [n]
  uint32_t* run_bucket;     // [n] (W for r >= num_runs)
  int32_t* iota;            // [n]
  int32_t* long_runs;       // [n / (kShortRun + 1) + 1]
  int32_t* long_count;      // [1]
  uint32_t* sorted_bucket;  // [n]
  int32_t* sorted_run;      // [n]
  float* partials;          // [kPairwisePartials]
  void* cub_temp;
  size_t cub_temp_bytes;
};

cudaError_t InsertCubBytes(int n, int bucket_bits, size_t* bytes) {
  size_t sort_keys = 0, scan = 0, sort_buckets = 0;
  CAFE_CUDA_RETURN_IF_ERROR(cub::DeviceRadixSort::SortPairs(
      nullptr, sort_keys, static_cast<const int64_t*>(nullptr), static_cast<int64_t*>(nullptr),
      static_cast<const uint64_t*>(nullptr), static_cast<uint64_t*>(nullptr), n, 0, 64));
  CAFE_CUDA_RETURN_IF_ERROR(cub::DeviceScan::ExclusiveSum(
      nullptr, scan, static_cast<const int32_t*>(nullptr), static_cast<int32_t*>(nullptr), n));
  CAFE_CUDA_RETURN_IF_ERROR(cub::DeviceRadixSort::SortPairs(
      nullptr, sort_buckets, static_cast<const uint32_t*>(nullptr),
      static_cast<uint32_t*>(nullptr), static_cast<const int32_t*>(nullptr),
      static_cast<int32_t*>(nullptr), n, 0, bucket_bits));
  *bytes = std::max(sort_keys, std::max(scan, sort_buckets));
  return cudaSuccess;
}

// At most this many runs are longer than kShortRun in a batch of n.
int64_t MaxLongRuns(int64_t n) { return n / (kShortRun + 1) + 1; }

cudaError_t CarveInsert(void* base, int64_t n, int64_t num_buckets, InsertBuffers* b,
                        size_t* total) {
  if (n < 0 || n > INT_MAX || num_buckets <= 0 || num_buckets > INT_MAX)
    return cudaErrorInvalidValue;
  if (n == 0) {  // LaunchInsert needs no workspace for an empty batch
    *total = 0;
    return cudaSuccess;
  }
  Carver carve(base);
  b->packed = carve.Take<uint64_t>(n);
  b->sorted_keys = carve.Take<int64_t>(n);
  b->sorted_packed = carve.Take<uint64_t>(n);
  b->head = carve.Take<int32_t>(n);
  b->run_id = carve.Take<int32_t>(n);
  b->run_start = carve.Take<int32_t>(n);
  b->num_runs = carve.Take<int32_t>(1);
  b->run_key = carve.Take<int64_t>(n);
  b->run_value = carve.Take<float>(n);
  b->run_tag = carve.Take<int32_t>(n);
  b->run_bucket = carve.Take<uint32_t>(n);
  b->iota = carve.Take<int32_t>(n);
  b->long_runs = carve.Take<int32_t>(MaxLongRuns(n));
  b->long_count = carve.Take<int32_t>(1);
  b->sorted_bucket = carve.Take<uint32_t>(n);
  b->sorted_run = carve.Take<int32_t>(n);
  b->partials = carve.Take<float>(kPairwisePartials);
  CAFE_CUDA_RETURN_IF_ERROR(InsertCubBytes(static_cast<int>(n),
                                           BitsFor(static_cast<uint64_t>(num_buckets)),
                                           &b->cub_temp_bytes));
  b->cub_temp = carve.TakeBytes(b->cub_temp_bytes);
  *total = carve.used();
  return cudaSuccess;
}

// -------------------------------------------------------- insert kernels ---

__global__ void ValidatePackKernel(const float* importance, const int32_t* feature_index,
                                   int64_t n, int32_t tag_bits, unsigned long long* status,
                                   uint64_t* packed) {
  CAFE_GRID_LOOP(i, n) {
    const float v = importance[i];
    const int32_t t = feature_index[i];
    if (InvalidEntry(v, t, tag_bits)) atomicMin(status, static_cast<unsigned long long>(i));
    packed[i] = PackEntry(v, t);
  }
}

__global__ void RunHeadKernel(const int64_t* sorted_keys, int64_t n, int32_t* head) {
  CAFE_GRID_LOOP(p, n) { head[p] = (p == 0 || sorted_keys[p] != sorted_keys[p - 1]) ? 1 : 0; }
}

__global__ void RunStartKernel(const int32_t* head, const int32_t* run_id, int64_t n,
                               int32_t* run_start, int32_t* num_runs) {
  CAFE_GRID_LOOP(p, n) {
    if (head[p]) run_start[run_id[p]] = static_cast<int32_t>(p);
    if (p == n - 1) *num_runs = run_id[p] + head[p];
  }
}

// Sums one long run [begin, end) with the whole block: warps 1.. stream
// chunks of the run into a double-buffered shared-memory ring; thread 0 adds
// every element in order (one sequential chain: v = 0.f; v += x[p] ...), so
// the result is exactly RunSumSequential's. The tag minimum is an integer min,
// reduced in any order; a long run is repeated, so it carries kRepeatedBit.
// Must be called by every thread of the block.
__device__ void LongRunSum(const uint64_t* __restrict__ packed, int64_t begin, int64_t end,
                           float (*buf)[kChunk], int* s_tag, float* v_out, int32_t* tag_out) {
  const int tid = threadIdx.x;
  const int warp = tid / 32;
  const int loader = tid - 32;  // index among the loading threads (warps 1..)
  const int loaders = blockDim.x - 32;
  const int64_t len = end - begin;
  const int64_t nchunks = (len + kChunk - 1) / kChunk;
  int32_t tmin = INT_MAX;
  if (tid == 0) *s_tag = INT_MAX;
  __syncthreads();  // s_tag initialised; buf free (previous users are done)
  auto load = [&](int64_t k) {
    float* dst = buf[k & 1];
    const int64_t off = begin + k * kChunk;
    const int64_t left = len - k * kChunk;
    const int clen = static_cast<int>(left < kChunk ? left : kChunk);
#pragma unroll 4
    for (int i = loader; i < clen; i += loaders) {
      const uint64_t e = packed[off + i];
      dst[i] = PackedImportance(e);
      const int32_t t = PackedTag(e);
      tmin = t < tmin ? t : tmin;
    }
  };
  if (warp != 0) load(0);
  float acc = 0.f;
  for (int64_t k = 0; k < nchunks; ++k) {
    __syncthreads();  // chunk k is in buf[k & 1]; buf[(k + 1) & 1] was consumed at k - 1
    if (warp == 0) {
      if (tid == 0) {
        const int64_t left = len - k * kChunk;
        const int clen = static_cast<int>(left < kChunk ? left : kChunk);
        acc = SequentialAdd(buf[k & 1], clen, acc);
      }
    } else if (k + 1 < nchunks) {
      load(k + 1);
    }
  }
  if (warp != 0) atomicMin(s_tag, tmin);
  __syncthreads();  // all adds and all tag mins done
  if (tid == 0) {
    *v_out = acc;
    *tag_out = *s_tag | kRepeatedBit;
  }
}

// One thread per run. Runs of length <= kShortRun are summed here; longer
// runs are appended to a list (in any order: each run's result depends only
// on the run) for LongRunKernel. Also writes the bucket sort's inputs for
// every r < n (sentinel bucket W past the last run).
__global__ void RunKernel(const int64_t* __restrict__ sorted_keys,
                          const uint64_t* __restrict__ sorted_packed,
                          const int32_t* __restrict__ run_start,
                          const int32_t* __restrict__ num_runs_ptr, int64_t n,
                          int64_t num_buckets, int64_t* run_key, float* run_value,
                          int32_t* run_tag, uint32_t* run_bucket, int32_t* iota,
                          int32_t* long_runs, int32_t* long_count) {
  const int64_t num_runs = *num_runs_ptr;
  CAFE_GRID_LOOP(r, n) {
    iota[r] = static_cast<int32_t>(r);
    if (r < num_runs) {
      const int64_t begin = run_start[r];
      const int64_t end = r + 1 < num_runs ? run_start[r + 1] : n;
      const int64_t key = sorted_keys[begin];
      run_key[r] = key;
      run_bucket[r] = static_cast<uint32_t>(BucketOf(key, num_buckets));
      if (end - begin <= kShortRun) {
        RunSumSequential(sorted_packed, begin, end, &run_value[r], &run_tag[r]);
      } else {
        long_runs[atomicAdd(long_count, 1)] = static_cast<int32_t>(r);
      }
    } else {
      run_bucket[r] = static_cast<uint32_t>(num_buckets);  // sorts after every real bucket
    }
  }
}

// One block per long run (grid-stride over the list; the loop bound is the
// same for every thread of a block, so the barriers in LongRunSum are
// block-uniform).
__global__ void __launch_bounds__(kThreads)
    LongRunKernel(const uint64_t* __restrict__ sorted_packed,
                  const int32_t* __restrict__ run_start, const int32_t* __restrict__ num_runs_ptr,
                  int64_t n, const int32_t* __restrict__ long_runs,
                  const int32_t* __restrict__ long_count, float* run_value, int32_t* run_tag) {
  __shared__ __align__(16) float buf[2][kChunk];  // kChunk * 4 is a multiple of 16
  __shared__ int s_tag;
  const int64_t num_runs = *num_runs_ptr;
  const int count = *long_count;
  for (int j = blockIdx.x; j < count; j += gridDim.x) {
    const int64_t r = long_runs[j];
    const int64_t begin = run_start[r];
    const int64_t end = r + 1 < num_runs ? run_start[r + 1] : n;
    LongRunSum(sorted_packed, begin, end, buf, &s_tag, &run_value[r], &run_tag[r]);
  }
}

__global__ void BucketInsertKernel(const unsigned long long* status, const uint32_t* sorted_bucket,
                                   const int32_t* sorted_run, const int32_t* num_runs_ptr,
                                   const int64_t* run_key, const float* run_value,
                                   const int32_t* run_tag, int64_t n, int32_t c,
                                   bool second_sighting, bool erode, int64_t* slots,
                                   float* scores) {
  if (*status != ~0ULL) return;  // invalid batch: no state change
  const int64_t num_runs = *num_runs_ptr;
  CAFE_GRID_LOOP(q, n) {
    BucketInsertBody(q, num_runs, sorted_bucket, sorted_run, run_key, run_value, run_tag, c,
                     second_sighting, erode, slots, scores);
  }
}

__global__ void PairwisePartialKernel(const float* values, int64_t n, int64_t h, int log2_m,
                                      float* partials) {
  CAFE_GRID_LOOP(i, h) { partials[i] = PairwisePartialBody(values, n, i, h, log2_m); }
}

// Second stage of PairwiseSum over the h (<= kPairwisePartials, a power of
// two) partials, one block, then mass += sum and batches += 1.
__global__ void __launch_bounds__(kFinalThreads)
    PairwiseFinalKernel(const float* partials, int64_t h, const unsigned long long* status,
                        float* mass, int64_t* batches) {
  __shared__ float y[kPairwisePartials];
  for (int64_t i = threadIdx.x; i < h; i += blockDim.x) y[i] = partials[i];
  __syncthreads();
  for (int64_t half = h >> 1; half >= 1; half >>= 1) {
    for (int64_t i = threadIdx.x; i < half; i += blockDim.x) PairwiseLevelBody(y, i, half);
    __syncthreads();
  }
  if (threadIdx.x == 0 && *status == ~0ULL) {
    *mass += y[0];
    *batches += 1;
  }
}

// ------------------------------------------------------- query kernel ---

__global__ void QueryKernel(const int64_t* ids, int64_t n, int64_t num_buckets, int32_t c,
                            int32_t tag_bits, float medium, const int64_t* slots,
                            const float* scores, int32_t* out_rows, int32_t* out_levels) {
  CAFE_GRID_LOOP(i, n) {
    QueryBody(i, ids, num_buckets, c, tag_bits, medium, slots, scores, out_rows, out_levels);
  }
}

// ------------------------------------------------------ migrate kernels ---

struct MigrateBuffers {
  int32_t* demote_flag;     // [S]
  int32_t* demote_pos;      // [S]
  int32_t* demote_row;      // [S]
  int32_t* empty_after;     // [S]
  int32_t* slot_iota;       // [S]
  uint32_t* fp_keys;        // [S]
  uint32_t* fp_sorted;      // [S]
  int32_t* slots_by_fp;     // [S]
  uint32_t* score_bits;     // [S]
  uint32_t* bits_sorted;    // [S]
  int32_t* candidates;      // [S]
  int32_t* used;            // [H]
  int32_t* free_flag;       // [H]
  int32_t* free_pos;        // [H]
  int32_t* free_rows;       // [H]
  int32_t* num_free;        // [1]
  float* decay_factor;      // [1]
  uint32_t* hot_bits;       // [S]
  uint32_t* hot_bits_sorted;  // [S]
  int32_t* hot_sorted;      // [S]
  int32_t* num_swaps;       // [1]
  int32_t* num_strong;      // [1] candidates >= threshold
  void* cub_temp;
  size_t cub_temp_bytes;
};

cudaError_t MigrateCubBytes(int slots, int hot_rows, size_t* bytes) {
  size_t scan_slots = 0, scan_rows = 0, sort_fps = 0, sort_scores = 0, sort_hot = 0;
  CAFE_CUDA_RETURN_IF_ERROR(cub::DeviceScan::ExclusiveSum(
      nullptr, scan_slots, static_cast<const int32_t*>(nullptr), static_cast<int32_t*>(nullptr),
      slots));
  CAFE_CUDA_RETURN_IF_ERROR(cub::DeviceScan::ExclusiveSum(
      nullptr, scan_rows, static_cast<const int32_t*>(nullptr), static_cast<int32_t*>(nullptr),
      hot_rows));
  CAFE_CUDA_RETURN_IF_ERROR(cub::DeviceRadixSort::SortPairs(
      nullptr, sort_fps, static_cast<const uint32_t*>(nullptr), static_cast<uint32_t*>(nullptr),
      static_cast<const int32_t*>(nullptr), static_cast<int32_t*>(nullptr), slots, 0, 32));
  CAFE_CUDA_RETURN_IF_ERROR(cub::DeviceRadixSort::SortPairsDescending(
      nullptr, sort_scores, static_cast<const uint32_t*>(nullptr),
      static_cast<uint32_t*>(nullptr), static_cast<const int32_t*>(nullptr),
      static_cast<int32_t*>(nullptr), slots, 0, 32));
  CAFE_CUDA_RETURN_IF_ERROR(cub::DeviceRadixSort::SortPairs(
      nullptr, sort_hot, static_cast<const uint32_t*>(nullptr), static_cast<uint32_t*>(nullptr),
      static_cast<const int32_t*>(nullptr), static_cast<int32_t*>(nullptr), slots, 0, 32));
  *bytes = std::max({scan_slots, scan_rows, sort_fps, sort_scores, sort_hot});
  return cudaSuccess;
}

cudaError_t CarveMigrate(void* base, const SketchConfig& config, MigrateBuffers* b,
                         size_t* total) {
  if (config.num_buckets <= 0 || config.slots_per_bucket <= 0 || config.hot_rows <= 0)
    return cudaErrorInvalidValue;
  const int64_t slots = config.num_buckets * config.slots_per_bucket;
  if (config.num_buckets > INT_MAX || slots > INT_MAX) return cudaErrorInvalidValue;
  const int64_t rows = config.hot_rows;
  Carver carve(base);
  b->demote_flag = carve.Take<int32_t>(slots);
  b->demote_pos = carve.Take<int32_t>(slots);
  b->demote_row = carve.Take<int32_t>(slots);
  b->empty_after = carve.Take<int32_t>(slots);
  b->slot_iota = carve.Take<int32_t>(slots);
  b->fp_keys = carve.Take<uint32_t>(slots);
  b->fp_sorted = carve.Take<uint32_t>(slots);
  b->slots_by_fp = carve.Take<int32_t>(slots);
  b->score_bits = carve.Take<uint32_t>(slots);
  b->bits_sorted = carve.Take<uint32_t>(slots);
  b->candidates = carve.Take<int32_t>(slots);
  b->used = carve.Take<int32_t>(rows);
  b->free_flag = carve.Take<int32_t>(rows);
  b->free_pos = carve.Take<int32_t>(rows);
  b->free_rows = carve.Take<int32_t>(rows);
  b->num_free = carve.Take<int32_t>(1);
  b->decay_factor = carve.Take<float>(1);
  b->hot_bits = carve.Take<uint32_t>(slots);
  b->hot_bits_sorted = carve.Take<uint32_t>(slots);
  b->hot_sorted = carve.Take<int32_t>(slots);
  b->num_swaps = carve.Take<int32_t>(1);
  b->num_strong = carve.Take<int32_t>(1);
  CAFE_CUDA_RETURN_IF_ERROR(
      MigrateCubBytes(static_cast<int>(slots), static_cast<int>(rows), &b->cub_temp_bytes));
  b->cub_temp = carve.TakeBytes(b->cub_temp_bytes);
  *total = carve.used();
  return cudaSuccess;
}

__global__ void DecayDueKernel(bool force, int32_t rule_batches, int64_t period, double limit,
                               float rate, float* mass, int64_t* batches, int32_t* counts,
                               float* factor) {
  if (blockIdx.x == 0 && threadIdx.x == 0)
    DecayDueBody(force, rule_batches, period, limit, rate, mass, batches, counts, factor);
}

__global__ void DecayKernel(int64_t slots, const int32_t* counts, const float* factor,
                            float demote, int32_t tag_bits, int64_t* slot_words, float* scores,
                            int32_t* demote_flag, int32_t* demote_row, int32_t* empty_after,
                            int32_t* slot_iota) {
  CAFE_GRID_LOOP(s, slots) {
    DecaySlotBody(s, counts, factor, demote, tag_bits, slot_words, scores, demote_flag,
                  demote_row, empty_after);
    slot_iota[s] = static_cast<int32_t>(s);
  }
}

// out = pos[len - 1] + flag[len - 1] (the total of an exclusive scan).
__global__ void ScanTotalKernel(const int32_t* flag, const int32_t* pos, int64_t len,
                                int32_t* out) {
  if (blockIdx.x == 0 && threadIdx.x == 0) *out = pos[len - 1] + flag[len - 1];
}

__global__ void DemoteScatterKernel(int64_t slots, const int32_t* demote_flag,
                                    const int32_t* demote_pos, const int32_t* demote_row,
                                    const int32_t* empty_after, int64_t* slot_words,
                                    float* scores, int64_t* out_fps, int32_t* out_tags,
                                    int32_t* out_rows) {
  CAFE_GRID_LOOP(s, slots) {
    DemoteScatterBody(s, demote_flag, demote_pos, demote_row, empty_after, slot_words, scores,
                      out_fps, out_tags, out_rows);
  }
}

__global__ void FingerprintKeyKernel(int64_t slots, const int64_t* slot_words, uint32_t* keys) {
  CAFE_GRID_LOOP(s, slots) { keys[s] = FingerprintKey(slot_words, s); }
}

__global__ void ScoreBitsKernel(int64_t slots, const int32_t* slots_by_fp, const float* scores,
                                const int64_t* slot_words, float floor, uint32_t* bits) {
  CAFE_GRID_LOOP(q, slots) {
    bits[q] = CandidateScoreBits(scores, slot_words, slots_by_fp[q], floor);
  }
}

// Both counts in one pass: every candidate (counts[3]) and those >= threshold.
__global__ void CandidateCountKernel(int64_t slots, const uint32_t* bits_sorted,
                                     uint32_t threshold_bits, int32_t* num_candidates,
                                     int32_t* num_strong) {
  CAFE_GRID_LOOP(q, slots) {
    CandidateCountBody(q, slots, bits_sorted, 1u, num_candidates);
    CandidateCountBody(q, slots, bits_sorted, threshold_bits, num_strong);
  }
}

__global__ void UsedRowKernel(int64_t slots, const int64_t* slot_words, int32_t tag_bits,
                              int32_t hot_rows, int32_t* used) {
  CAFE_GRID_LOOP(s, slots) { UsedRowBody(s, slot_words, tag_bits, hot_rows, used); }
}

__global__ void FreeFlagKernel(int64_t hot_rows, const int32_t* used, int32_t* free_flag) {
  CAFE_GRID_LOOP(r, hot_rows) { free_flag[r] = used[r] ? 0 : 1; }
}

__global__ void FreeScatterKernel(int64_t hot_rows, const int32_t* free_flag,
                                  const int32_t* free_pos, int32_t* free_rows) {
  CAFE_GRID_LOOP(r, hot_rows) {
    if (free_flag[r]) free_rows[free_pos[r]] = static_cast<int32_t>(r);
  }
}

__global__ void HotBitsKernel(int64_t slots, const int32_t* slots_by_fp, const float* scores,
                              const int64_t* slot_words, uint32_t* bits) {
  CAFE_GRID_LOOP(q, slots) { bits[q] = HotScoreBits(scores, slot_words, slots_by_fp[q]); }
}

__global__ void SwapCountKernel(int32_t hot_rows, const int32_t* num_free,
                                const int32_t* num_strong, const int32_t* candidates,
                                const int32_t* hot, const float* scores,
                                float yield_threshold, float margin, int32_t* swaps) {
  if (blockIdx.x == 0 && threadIdx.x == 0)
    SwapCountBody(hot_rows, num_free, num_strong, candidates, hot, scores, yield_threshold,
                  margin, swaps);
}

__global__ void SwapDemoteKernel(int64_t capacity, const int32_t* swaps, const int32_t* counts,
                                 const int32_t* hot, int32_t tag_bits, int64_t* slot_words,
                                 int64_t* out_fps, int32_t* out_tags, int32_t* out_rows) {
  CAFE_GRID_LOOP(i, capacity) {
    SwapDemoteBody(i, swaps, counts + 1, hot, tag_bits, slot_words, out_fps, out_tags, out_rows);
  }
}

// counts[1] += swaps (after SwapDemoteKernel read the old value).
__global__ void AddSwapsKernel(const int32_t* swaps, int32_t* counts) {
  if (blockIdx.x == 0 && threadIdx.x == 0) counts[1] += *swaps;
}

// counts[2] = min(#candidates, #free rows).
__global__ void PromoteCountKernel(const int32_t* num_free, int32_t* counts) {
  if (blockIdx.x == 0 && threadIdx.x == 0) counts[2] = counts[3] < *num_free ? counts[3] : *num_free;
}

__global__ void PromoteKernel(int64_t capacity, const int32_t* counts, const int32_t* candidates,
                              const int32_t* free_rows, int32_t tag_bits, int64_t* slot_words,
                              int64_t* out_fps, int32_t* out_tags, int32_t* out_rows) {
  const int32_t promoted = counts[2];
  CAFE_GRID_LOOP(i, capacity) {
    PromoteBody(i, promoted, candidates, free_rows, tag_bits, slot_words, out_fps, out_tags,
                out_rows);
  }
}

}  // namespace

// ------------------------------------------------------------ launchers ---

size_t InsertWorkspaceBytes(int64_t n, int64_t num_buckets, cudaError_t* error) {
  InsertBuffers b;
  size_t total = 0;
  const cudaError_t err = CarveInsert(nullptr, n, num_buckets, &b, &total);
  if (error != nullptr) *error = err;
  return err == cudaSuccess ? total : 0;
}

cudaError_t LaunchInsert(int64_t num_buckets, int32_t slots_per_bucket, int32_t tag_bits,
                         const SketchState& state, const int64_t* d_keys,
                         const float* d_importance, const int32_t* d_feature_index, int64_t n,
                         bool second_sighting, bool erode, int64_t* d_status,
                         void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  if (n < 0 || num_buckets <= 0 || slots_per_bucket <= 0 || tag_bits < 0 ||
      tag_bits > cafe::kMaxTagBits ||
      num_buckets * static_cast<int64_t>(slots_per_bucket) > INT_MAX)
    return cudaErrorInvalidValue;
  // -1 == all bits set == "no invalid entry" (also the atomicMin identity).
  CAFE_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(d_status, 0xFF, sizeof(int64_t), stream));
  if (n == 0) return cudaSuccess;
  InsertBuffers b;
  size_t needed = 0;
  CAFE_CUDA_RETURN_IF_ERROR(CarveInsert(workspace, n, num_buckets, &b, &needed));
  if (workspace == nullptr || needed > workspace_bytes) return cudaErrorInvalidValue;
  auto* status = reinterpret_cast<unsigned long long*>(d_status);
  const int ni = static_cast<int>(n);
  const unsigned int grid = GridFor(n, kThreads);

  ValidatePackKernel<<<grid, kThreads, 0, stream>>>(d_importance, d_feature_index, n, tag_bits,
                                                    status, b.packed);
  CAFE_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  size_t temp = b.cub_temp_bytes;
  CAFE_CUDA_RETURN_IF_ERROR(cub::DeviceRadixSort::SortPairs(b.cub_temp, temp, d_keys,
                                                            b.sorted_keys, b.packed,
                                                            b.sorted_packed, ni, 0, 64, stream));
  RunHeadKernel<<<grid, kThreads, 0, stream>>>(b.sorted_keys, n, b.head);
  CAFE_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  temp = b.cub_temp_bytes;
  CAFE_CUDA_RETURN_IF_ERROR(
      cub::DeviceScan::ExclusiveSum(b.cub_temp, temp, b.head, b.run_id, ni, stream));
  RunStartKernel<<<grid, kThreads, 0, stream>>>(b.head, b.run_id, n, b.run_start, b.num_runs);
  CAFE_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  CAFE_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(b.long_count, 0, sizeof(int32_t), stream));
  RunKernel<<<grid, kThreads, 0, stream>>>(b.sorted_keys, b.sorted_packed, b.run_start,
                                           b.num_runs, n, num_buckets, b.run_key, b.run_value,
                                           b.run_tag, b.run_bucket, b.iota, b.long_runs,
                                           b.long_count);
  CAFE_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  LongRunKernel<<<static_cast<unsigned int>(std::min<int64_t>(MaxLongRuns(n), kLongRunBlocks)),
                  kThreads, 0, stream>>>(b.sorted_packed, b.run_start, b.num_runs, n,
                                         b.long_runs, b.long_count, b.run_value, b.run_tag);
  CAFE_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  temp = b.cub_temp_bytes;
  CAFE_CUDA_RETURN_IF_ERROR(cub::DeviceRadixSort::SortPairs(
      b.cub_temp, temp, b.run_bucket, b.sorted_bucket, b.iota, b.sorted_run, ni, 0,
      BitsFor(static_cast<uint64_t>(num_buckets)), stream));
  BucketInsertKernel<<<grid, kThreads, 0, stream>>>(
      status, b.sorted_bucket, b.sorted_run, b.num_runs, b.run_key, b.run_value, b.run_tag, n,
      slots_per_bucket, second_sighting, erode, state.slots, state.scores);
  CAFE_CUDA_RETURN_IF_ERROR(cudaGetLastError());

  // mass += PairwiseSum(importance, n); batches += 1.
  int log2_padded = 0;
  while ((int64_t{1} << log2_padded) < n) ++log2_padded;
  const int64_t padded = int64_t{1} << log2_padded;
  const int64_t h = std::min<int64_t>(padded, kPairwisePartials);
  int log2_h = 0;
  while ((int64_t{1} << log2_h) < h) ++log2_h;
  PairwisePartialKernel<<<GridFor(h, kThreads), kThreads, 0, stream>>>(
      d_importance, n, h, log2_padded - log2_h, b.partials);
  CAFE_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  PairwiseFinalKernel<<<1, kFinalThreads, 0, stream>>>(b.partials, h, status, state.mass,
                                                       state.batches);
  return cudaGetLastError();
}

cudaError_t LaunchQuery(int64_t num_buckets, int32_t slots_per_bucket, int32_t tag_bits,
                        float medium_threshold, const int64_t* d_state_slots,
                        const float* d_state_scores, const int64_t* d_ids, int64_t n,
                        int32_t* d_out_rows, int32_t* d_out_levels, cudaStream_t stream) {
  if (n < 0 || num_buckets <= 0 || slots_per_bucket <= 0 || tag_bits < 0 ||
      tag_bits > cafe::kMaxTagBits)
    return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  QueryKernel<<<GridFor(n, kThreads), kThreads, 0, stream>>>(
      d_ids, n, num_buckets, slots_per_bucket, tag_bits, medium_threshold, d_state_slots,
      d_state_scores, d_out_rows, d_out_levels);
  return cudaGetLastError();
}

size_t MigrateWorkspaceBytes(const SketchConfig& config, cudaError_t* error) {
  MigrateBuffers b;
  size_t total = 0;
  const cudaError_t err = CarveMigrate(nullptr, config, &b, &total);
  if (error != nullptr) *error = err;
  return err == cudaSuccess ? total : 0;
}

cudaError_t LaunchMigrate(const SketchConfig& config, const SketchState& state,
                          bool force_decay, const MigrateOutputs& out, void* workspace,
                          size_t workspace_bytes, cudaStream_t stream) {
  MigrateBuffers b;
  size_t needed = 0;
  CAFE_CUDA_RETURN_IF_ERROR(CarveMigrate(workspace, config, &b, &needed));
  if (workspace == nullptr || needed > workspace_bytes) return cudaErrorInvalidValue;
  const int64_t slots = config.num_buckets * config.slots_per_bucket;
  const int64_t rows = config.hot_rows;
  const int si = static_cast<int>(slots);
  const int ri = static_cast<int>(rows);
  const unsigned int grid_s = GridFor(slots, kThreads);
  const unsigned int grid_r = GridFor(rows, kThreads);
  const int32_t rule_batches = config.decay_rule == DecayRule::kBatches ? 1 : 0;

  CAFE_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(out.counts, 0, 4 * sizeof(int32_t), stream));
  DecayDueKernel<<<1, 1, 0, stream>>>(force_decay, rule_batches, config.decay_period,
                                      DecayMassLimit(config), config.decay_rate, state.mass,
                                      state.batches, out.counts, b.decay_factor);
  CAFE_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  // 1. Decay (when due) with demotion; demoted entries compacted in slot order.
  DecayKernel<<<grid_s, kThreads, 0, stream>>>(
      slots, out.counts, b.decay_factor, config.demote_threshold, config.tag_bits, state.slots,
      state.scores, b.demote_flag, b.demote_row, b.empty_after, b.slot_iota);
  CAFE_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  size_t temp = b.cub_temp_bytes;
  CAFE_CUDA_RETURN_IF_ERROR(
      cub::DeviceScan::ExclusiveSum(b.cub_temp, temp, b.demote_flag, b.demote_pos, si, stream));
  ScanTotalKernel<<<1, 1, 0, stream>>>(b.demote_flag, b.demote_pos, slots, out.counts + 1);
  CAFE_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  DemoteScatterKernel<<<grid_s, kThreads, 0, stream>>>(
      slots, b.demote_flag, b.demote_pos, b.demote_row, b.empty_after, state.slots, state.scores,
      out.demoted_fingerprints, out.demoted_tags, out.demoted_rows);
  CAFE_CUDA_RETURN_IF_ERROR(cudaGetLastError());

  // 2. Candidates ordered by score desc, fingerprint asc, slot asc: stable sort
  // of the slots (in slot order) by fingerprint, then stable sort by score bits
  // (descending); non-candidates get bits 0 and end up last.
  FingerprintKeyKernel<<<grid_s, kThreads, 0, stream>>>(slots, state.slots, b.fp_keys);
  CAFE_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  temp = b.cub_temp_bytes;
  CAFE_CUDA_RETURN_IF_ERROR(cub::DeviceRadixSort::SortPairs(b.cub_temp, temp, b.fp_keys,
                                                            b.fp_sorted, b.slot_iota,
                                                            b.slots_by_fp, si, 0, 32, stream));
  ScoreBitsKernel<<<grid_s, kThreads, 0, stream>>>(slots, b.slots_by_fp, state.scores,
                                                   state.slots, config.promotion_floor(),
                                                   b.score_bits);
  CAFE_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  temp = b.cub_temp_bytes;
  CAFE_CUDA_RETURN_IF_ERROR(cub::DeviceRadixSort::SortPairsDescending(
      b.cub_temp, temp, b.score_bits, b.bits_sorted, b.slots_by_fp, b.candidates, si, 0, 32,
      stream));
  CAFE_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(b.num_strong, 0, sizeof(int32_t), stream));
  CandidateCountKernel<<<grid_s, kThreads, 0, stream>>>(
      slots, b.bits_sorted, detail::FloatBits(config.threshold), out.counts + 3, b.num_strong);
  CAFE_CUDA_RETURN_IF_ERROR(cudaGetLastError());

  // 3. Free rows in ascending order: the rows no hot slot's entry holds.
  auto free_rows = [&]() -> cudaError_t {
    CAFE_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(b.used, 0, rows * sizeof(int32_t), stream));
    UsedRowKernel<<<grid_s, kThreads, 0, stream>>>(slots, state.slots, config.tag_bits, ri,
                                                   b.used);
    CAFE_CUDA_RETURN_IF_ERROR(cudaGetLastError());
    FreeFlagKernel<<<grid_r, kThreads, 0, stream>>>(rows, b.used, b.free_flag);
    CAFE_CUDA_RETURN_IF_ERROR(cudaGetLastError());
    size_t bytes = b.cub_temp_bytes;
    CAFE_CUDA_RETURN_IF_ERROR(
        cub::DeviceScan::ExclusiveSum(b.cub_temp, bytes, b.free_flag, b.free_pos, ri, stream));
    FreeScatterKernel<<<grid_r, kThreads, 0, stream>>>(rows, b.free_flag, b.free_pos,
                                                       b.free_rows);
    CAFE_CUDA_RETURN_IF_ERROR(cudaGetLastError());
    ScanTotalKernel<<<1, 1, 0, stream>>>(b.free_flag, b.free_pos, rows, b.num_free);
    return cudaGetLastError();
  };
  CAFE_CUDA_RETURN_IF_ERROR(free_rows());

  // 3b. Swaps: candidates beyond the free rows displace the weakest hot keys
  // (hot slots by score, fingerprint, slot ascending: a stable sort of the
  // fingerprint-sorted slots), then the free rows are listed again.
  if (config.swap_margin > 0.f) {
    HotBitsKernel<<<grid_s, kThreads, 0, stream>>>(slots, b.slots_by_fp, state.scores,
                                                   state.slots, b.hot_bits);
    CAFE_CUDA_RETURN_IF_ERROR(cudaGetLastError());
    temp = b.cub_temp_bytes;
    CAFE_CUDA_RETURN_IF_ERROR(cub::DeviceRadixSort::SortPairs(
        b.cub_temp, temp, b.hot_bits, b.hot_bits_sorted, b.slots_by_fp, b.hot_sorted, si, 0, 32,
        stream));
    SwapCountKernel<<<1, 1, 0, stream>>>(ri, b.num_free, b.num_strong, b.candidates,
                                         b.hot_sorted, state.scores, config.yield_threshold,
                                         config.swap_margin, b.num_swaps);
    CAFE_CUDA_RETURN_IF_ERROR(cudaGetLastError());
    SwapDemoteKernel<<<grid_r, kThreads, 0, stream>>>(
        rows, b.num_swaps, out.counts, b.hot_sorted, config.tag_bits, state.slots,
        out.demoted_fingerprints, out.demoted_tags, out.demoted_rows);
    CAFE_CUDA_RETURN_IF_ERROR(cudaGetLastError());
    AddSwapsKernel<<<1, 1, 0, stream>>>(b.num_swaps, out.counts);
    CAFE_CUDA_RETURN_IF_ERROR(cudaGetLastError());
    CAFE_CUDA_RETURN_IF_ERROR(free_rows());
  }

  // 4. Promote min(#candidates, #free) candidates into the free rows.
  PromoteCountKernel<<<1, 1, 0, stream>>>(b.num_free, out.counts);
  CAFE_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  const int64_t capacity = MigratePromotedCapacity(config);
  PromoteKernel<<<GridFor(capacity, kThreads), kThreads, 0, stream>>>(
      capacity, out.counts, b.candidates, b.free_rows, config.tag_bits, state.slots,
      out.promoted_fingerprints, out.promoted_tags, out.promoted_rows);
  return cudaGetLastError();
}

cudaError_t CopyDeviceToDeviceAsync(void* dst, const void* src, size_t bytes,
                                    cudaStream_t stream) {
  if (bytes == 0) return cudaSuccess;
  return cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream);
}

cudaError_t CopyHostToDeviceAsync(void* dst, const void* src, size_t bytes,
                                  cudaStream_t stream) {
  if (bytes == 0) return cudaSuccess;
  return cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream);
}

cudaError_t CopyDeviceToHostSync(void* dst, const void* src, size_t bytes, cudaStream_t stream) {
  if (bytes > 0)
    CAFE_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream));
  return cudaStreamSynchronize(stream);
}

const char* ErrorString(cudaError_t error) { return cudaGetErrorString(error); }

}  // namespace cuda
}  // namespace cafe
