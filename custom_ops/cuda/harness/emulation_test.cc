// CPU-only check of the GPU algorithm: runs the launchers' exact pipeline on
// the host -- the same per-thread bodies (../kernels/hotsketch_device_common.h) in the
// same kernel order, with std::stable_sort / exclusive scans standing in for
// the CUB radix sorts / scans (CUB's radix sort is documented stable) -- and
// compares it bit for bit with the CPU core on every harness scenario, the
// route and occurrence pipelines included (route_emulation.h,
// occurrence_emulation.h).
// What this cannot check: the CUDA-only code (grid-stride loops, the
// block-cooperative long-run sum, the atomics, CUB itself, launch errors).
//
// Build and run: custom_ops/cuda/run_emulation_test.sh (g++ only, no GPU).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "../../core/hotsketch.h"
#include "backend.h"
#include "batches.h"
#include "compare.h"
#include "occurrence_emulation.h"
#include "route_emulation.h"
#include "scenarios.h"
#include "self_test.h"
#include "../kernels/hotsketch_device_common.h"
#include "../kernels/routing_device_common.h"

namespace cafe {
namespace harness {
namespace {

// The device bodies (these hide cafe::BucketOf etc. of the core here, so the
// emulation runs the GPU's copies).
using cafe::cuda::detail::BucketInsertBody;
using cafe::cuda::detail::BucketOf;
using cafe::cuda::detail::CandidateCountBody;
using cafe::cuda::detail::CandidateScoreBits;
using cafe::cuda::detail::DecayDueBody;
using cafe::cuda::detail::DecaySlotBody;
using cafe::cuda::detail::DemoteScatterBody;
using cafe::cuda::detail::FingerprintKey;
using cafe::cuda::detail::FieldKeyBody;
using cafe::cuda::detail::FloatBits;
using cafe::cuda::detail::HotScoreBits;
using cafe::cuda::detail::SwapCountBody;
using cafe::cuda::detail::SwapDemoteBody;
using cafe::cuda::detail::InvalidEntry;
using cafe::cuda::detail::kChunk;
using cafe::cuda::detail::kPairwisePartials;
using cafe::cuda::detail::kShortRun;
using cafe::cuda::detail::PackedImportance;
using cafe::cuda::detail::PackedTag;
using cafe::cuda::detail::PackEntry;
using cafe::cuda::detail::PairwiseLevelBody;
using cafe::cuda::detail::PairwisePartialBody;
using cafe::cuda::detail::PromoteBody;
using cafe::cuda::detail::QueryBody;
using cafe::cuda::detail::RunSumSequential;
using cafe::cuda::detail::SequentialAdd;
using cafe::cuda::detail::UsedRowBody;

// Stable sort of `values` by `keys` (ascending or descending), like
// cub::DeviceRadixSort::SortPairs[Descending] over the full key width.
template <typename K, typename V>
void StableSortPairs(const std::vector<K>& keys, const std::vector<V>& values, bool descending,
                     std::vector<K>* keys_out, std::vector<V>* values_out) {
  std::vector<size_t> order(keys.size());
  std::iota(order.begin(), order.end(), size_t{0});
  if (descending) {
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return keys[a] > keys[b]; });
  } else {
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return keys[a] < keys[b]; });
  }
  keys_out->resize(keys.size());
  values_out->resize(keys.size());
  for (size_t i = 0; i < order.size(); ++i) {
    (*keys_out)[i] = keys[order[i]];
    (*values_out)[i] = values[order[i]];
  }
}

std::vector<int32_t> ExclusiveSum(const std::vector<int32_t>& in) {
  std::vector<int32_t> out(in.size());
  int32_t acc = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    out[i] = acc;
    acc += in[i];
  }
  return out;
}

// The GPU pipeline of hotsketch_kernels.cu, kernel by kernel, on the host.
class EmulatedGpuBackend : public Backend {
 public:
  std::string name() const override { return "gpu-emulation"; }
  void Reset(const SketchConfig& config) override {
    config_ = config;
    state_ = EmptySnapshot(config);
  }

  InsertOutcome Insert(const std::vector<int64_t>& keys, const std::vector<float>& importance,
                       const std::vector<int32_t>& feature_index) override {
    const int64_t n = static_cast<int64_t>(keys.size());
    const int64_t W = config_.num_buckets;
    const int32_t c = config_.slots_per_bucket;
    uint64_t status = ~0ULL;
    InsertOutcome out;
    if (n == 0) return out;
    // ValidatePackKernel
    std::vector<uint64_t> packed(n);
    for (int64_t i = 0; i < n; ++i) {
      if (InvalidEntry(importance[i], feature_index[i], config_.tag_bits))
        status = std::min<uint64_t>(status, i);
      packed[i] = PackEntry(importance[i], feature_index[i]);
    }
    // SortPairs(keys -> packed), 64 bits, stable
    std::vector<int64_t> sorted_keys;
    std::vector<uint64_t> sorted_packed;
    StableSortPairs(keys, packed, false, &sorted_keys, &sorted_packed);
    // RunHeadKernel, ExclusiveSum, RunStartKernel
    std::vector<int32_t> head(n);
    for (int64_t p = 0; p < n; ++p)
      head[p] = (p == 0 || sorted_keys[p] != sorted_keys[p - 1]) ? 1 : 0;
    const std::vector<int32_t> run_id = ExclusiveSum(head);
    std::vector<int32_t> run_start(n, -7);
    int32_t num_runs = -1;
    for (int64_t p = 0; p < n; ++p) {
      if (head[p]) run_start[run_id[p]] = static_cast<int32_t>(p);
      if (p == n - 1) num_runs = run_id[p] + head[p];
    }
    // RunKernel (short runs) and LongRunKernel (long runs: chunks of kChunk
    // floats, each added by SequentialAdd onto the running sum; tag = min)
    std::vector<int64_t> run_key(n, 0);
    std::vector<float> run_value(n, 0.f);
    std::vector<int32_t> run_tag(n, 0), iota(n);
    std::vector<uint32_t> run_bucket(n);
    for (int64_t r = 0; r < n; ++r) {
      iota[r] = static_cast<int32_t>(r);
      if (r < num_runs) {
        const int64_t begin = run_start[r];
        const int64_t end = r + 1 < num_runs ? run_start[r + 1] : n;
        run_key[r] = sorted_keys[begin];
        run_bucket[r] = static_cast<uint32_t>(BucketOf(run_key[r], W));
        if (end - begin <= kShortRun) {
          RunSumSequential(sorted_packed.data(), begin, end, &run_value[r], &run_tag[r]);
        } else {
          alignas(16) static float chunk[kChunk];
          float acc = 0.f;
          int32_t tmin = INT32_MAX;
          for (int64_t off = begin; off < end; off += kChunk) {
            const int clen = static_cast<int>(std::min<int64_t>(kChunk, end - off));
            for (int i = 0; i < clen; ++i) {
              chunk[i] = PackedImportance(sorted_packed[off + i]);
              tmin = std::min(tmin, PackedTag(sorted_packed[off + i]));
            }
            acc = SequentialAdd(chunk, clen, acc);
          }
          run_value[r] = acc;
          run_tag[r] = tmin | cafe::kRepeatedBit;
        }
      } else {
        run_bucket[r] = static_cast<uint32_t>(W);
      }
    }
    // SortPairs(run_bucket -> iota), stable
    std::vector<uint32_t> sorted_bucket;
    std::vector<int32_t> sorted_run;
    StableSortPairs(run_bucket, iota, false, &sorted_bucket, &sorted_run);
    // BucketInsertKernel
    if (status == ~0ULL) {
      for (int64_t q = 0; q < n; ++q)
        BucketInsertBody(q, num_runs, sorted_bucket.data(), sorted_run.data(), run_key.data(),
                         run_value.data(), run_tag.data(), c, config_.second_sighting,
                         config_.erode, state_.slots.data(), state_.scores.data());
    }
    // PairwisePartialKernel, PairwiseFinalKernel
    int log2_padded = 0;
    while ((int64_t{1} << log2_padded) < n) ++log2_padded;
    const int64_t padded = int64_t{1} << log2_padded;
    const int64_t h = std::min<int64_t>(padded, kPairwisePartials);
    int log2_h = 0;
    while ((int64_t{1} << log2_h) < h) ++log2_h;
    std::vector<float> y(h);
    for (int64_t i = 0; i < h; ++i)
      y[i] = PairwisePartialBody(importance.data(), n, i, h, log2_padded - log2_h);
    for (int64_t half = h >> 1; half >= 1; half >>= 1)
      for (int64_t i = 0; i < half; ++i) PairwiseLevelBody(y.data(), i, half);
    if (status == ~0ULL) {
      state_.mass += y[0];
      state_.batches += 1;
    }
    // Cross-check the two-stage sum against the core's PairwiseSum directly.
    const float expected = PairwiseSum(importance.data(), n);
    if (std::memcmp(&expected, &y[0], sizeof(float)) != 0) {
      std::printf("     PairwiseSum mismatch for n=%lld\n", static_cast<long long>(n));
      pairwise_mismatches_++;
    }
    out.status = status == ~0ULL ? -1 : static_cast<int64_t>(status);
    return out;
  }

  void Query(const std::vector<int64_t>& ids, std::vector<int32_t>* rows,
             std::vector<int32_t>* levels) override {
    rows->assign(ids.size(), 0);
    levels->assign(ids.size(), 0);
    for (size_t i = 0; i < ids.size(); ++i)
      QueryBody(static_cast<int64_t>(i), ids.data(), config_.num_buckets,
                config_.slots_per_bucket, config_.tag_bits, config_.medium_threshold,
                state_.slots.data(), state_.scores.data(), rows->data(), levels->data());
  }

  MigrationResult Migrate(bool force_decay) override {
    const int64_t S = config_.num_slots();
    const int64_t H = config_.hot_rows;
    int32_t counts[4] = {0, 0, 0, 0};
    float factor = -7.f;
    DecayDueBody(force_decay, config_.decay_rule == DecayRule::kBatches ? 1 : 0,
                 config_.decay_period, DecayMassLimit(config_), config_.decay_rate,
                 &state_.mass, &state_.batches, counts, &factor);
    const int32_t T = config_.tag_bits;
    std::vector<int32_t> demote_flag(S), demote_row(S, -7), empty_after(S), slot_iota(S);
    for (int64_t s = 0; s < S; ++s) {
      DecaySlotBody(s, counts, &factor, config_.demote_threshold, T, state_.slots.data(),
                    state_.scores.data(), demote_flag.data(), demote_row.data(),
                    empty_after.data());
      slot_iota[s] = static_cast<int32_t>(s);
    }
    const std::vector<int32_t> demote_pos = ExclusiveSum(demote_flag);
    counts[1] = demote_pos[S - 1] + demote_flag[S - 1];
    std::vector<int64_t> dk(S, -7);
    std::vector<int32_t> dt(S, -7), dr(S, -7);
    for (int64_t s = 0; s < S; ++s)
      DemoteScatterBody(s, demote_flag.data(), demote_pos.data(), demote_row.data(),
                        empty_after.data(), state_.slots.data(), state_.scores.data(),
                        dk.data(), dt.data(), dr.data());
    // FingerprintKeyKernel, SortPairs(fingerprint -> slot), 32 bits, stable
    std::vector<uint32_t> fp_keys(S), fp_sorted;
    for (int64_t s = 0; s < S; ++s) fp_keys[s] = FingerprintKey(state_.slots.data(), s);
    std::vector<int32_t> slots_by_fp;
    StableSortPairs(fp_keys, slot_iota, false, &fp_sorted, &slots_by_fp);
    std::vector<uint32_t> bits(S);
    for (int64_t q = 0; q < S; ++q)
      bits[q] = CandidateScoreBits(state_.scores.data(), state_.slots.data(), slots_by_fp[q],
                                   config_.promotion_floor());
    std::vector<uint32_t> bits_sorted;
    std::vector<int32_t> candidates;
    StableSortPairs(bits, slots_by_fp, true, &bits_sorted, &candidates);
    int32_t num_strong = 0;
    for (int64_t q = 0; q < S; ++q) {
      CandidateCountBody(q, S, bits_sorted.data(), 1u, &counts[3]);
      CandidateCountBody(q, S, bits_sorted.data(), FloatBits(config_.threshold), &num_strong);
    }
    std::vector<int32_t> used(H), free_flag(H), free_rows(H, -7);
    int32_t num_free = -7;
    auto list_free_rows = [&]() {
      std::fill(used.begin(), used.end(), 0);
      for (int64_t s = 0; s < S; ++s)
        UsedRowBody(s, state_.slots.data(), T, static_cast<int32_t>(H), used.data());
      for (int64_t r = 0; r < H; ++r) free_flag[r] = used[r] ? 0 : 1;
      const std::vector<int32_t> free_pos = ExclusiveSum(free_flag);
      for (int64_t r = 0; r < H; ++r)
        if (free_flag[r]) free_rows[free_pos[r]] = static_cast<int32_t>(r);
      num_free = free_pos[H - 1] + free_flag[H - 1];
    };
    list_free_rows();
    if (config_.swap_margin > 0.f) {  // HotBits, SortPairs ascending, swaps
      std::vector<uint32_t> hot_bits(S), hot_bits_sorted;
      for (int64_t q = 0; q < S; ++q)
        hot_bits[q] = HotScoreBits(state_.scores.data(), state_.slots.data(), slots_by_fp[q]);
      std::vector<int32_t> hot_sorted;
      StableSortPairs(hot_bits, slots_by_fp, false, &hot_bits_sorted, &hot_sorted);
      int32_t swaps = -7;
      SwapCountBody(static_cast<int32_t>(H), &num_free, &num_strong, candidates.data(),
                    hot_sorted.data(), state_.scores.data(), config_.yield_threshold,
                    config_.swap_margin, &swaps);
      for (int64_t i = 0; i < H; ++i)
        SwapDemoteBody(i, &swaps, &counts[1], hot_sorted.data(), T, state_.slots.data(),
                       dk.data(), dt.data(), dr.data());
      counts[1] += swaps;
      list_free_rows();
    }
    counts[2] = std::min(counts[3], num_free);
    const int64_t capacity = std::min<int64_t>(S, H);
    std::vector<int64_t> pk(capacity, -7);
    std::vector<int32_t> pt(capacity, -7), pr(capacity, -7);
    for (int64_t i = 0; i < capacity; ++i)
      PromoteBody(i, counts[2], candidates.data(), free_rows.data(), T, state_.slots.data(),
                  pk.data(), pt.data(), pr.data());
    MigrationResult result;
    result.decayed = counts[0] != 0;
    for (int32_t i = 0; i < counts[1]; ++i)
      result.demoted.push_back({static_cast<uint32_t>(dk[i]), dt[i], dr[i]});
    for (int32_t i = 0; i < counts[2]; ++i)
      result.promoted.push_back({static_cast<uint32_t>(pk[i]), pt[i], pr[i]});
    return result;
  }

  Snapshot Read() override { return state_; }
  // Route and the occurrence sums: the pipelines of routing_kernels.cu and
  // occurrence_kernels.cu (route_emulation.h, occurrence_emulation.h).
  void Route(const RouteTables& tables, const std::vector<int64_t>& ids,
             const std::vector<int32_t>& feature_index, RouteResult* result,
             std::vector<int32_t>* inverse) override {
    const ConstSketchState view{state_.slots.data(), state_.scores.data()};
    *result = EmulateRoute(config_, view, tables, ids, feature_index, false, inverse);
  }
  // CafeFieldKeys: one FieldKeysKernel per feature, each at its offset.
  void FieldKeys(const std::vector<std::vector<int64_t>>& ids, std::vector<int64_t>* keys,
                 std::vector<int32_t>* feature_index) override {
    keys->clear();
    feature_index->clear();
    for (size_t f = 0; f < ids.size(); ++f) {
      const size_t offset = keys->size();
      keys->resize(offset + ids[f].size());
      feature_index->resize(offset + ids[f].size());
      const int32_t feature = static_cast<int32_t>(f);
      for (size_t i = 0; i < ids[f].size(); ++i) {
        FieldKeyBody(static_cast<int64_t>(i), ids[f].data(), FieldSalt(feature), feature,
                     keys->data() + offset, feature_index->data() + offset);
      }
    }
  }
  int64_t SegmentRowSums(const std::vector<float>& rows, const std::vector<int32_t>& segments,
                         int64_t d, int64_t num_segments, std::vector<float>* out) override {
    return EmulateSegmentRowSums(rows, segments, d, num_segments, out);
  }
  int64_t PairImportance(const std::vector<float>& rows, const std::vector<int32_t>& pairs,
                         int64_t d, bool norm, int64_t num_pairs, std::vector<double>* sums,
                         std::vector<double>* occurrences) override {
    return EmulatePairImportance(rows, pairs, d, norm, num_pairs, sums, occurrences);
  }
  int pairwise_mismatches() const { return pairwise_mismatches_; }

 private:
  SketchConfig config_;
  Snapshot state_;
  int pairwise_mismatches_ = 0;
};

// PairwiseSum two-stage decomposition against the core for many lengths,
// including lengths around powers of two and above kPairwisePartials.
bool PairwiseSelfTest() {
  Rng rng(99);
  std::vector<int64_t> lengths = {1, 2, 3, 4, 5, 7, 8, 9, 31, 32, 33, 1000, 8191, 8192, 8193,
                                  16384, 16385, 100000, 262144, 262145};
  bool ok = true;
  for (int64_t n : lengths) {
    std::vector<float> v(n);
    for (auto& x : v) x = static_cast<float>(std::ldexp(rng.Uniform(), -static_cast<int>(rng.Below(40))));
    int log2_padded = 0;
    while ((int64_t{1} << log2_padded) < n) ++log2_padded;
    const int64_t padded = int64_t{1} << log2_padded;
    const int64_t h = std::min<int64_t>(padded, kPairwisePartials);
    int log2_h = 0;
    while ((int64_t{1} << log2_h) < h) ++log2_h;
    std::vector<float> y(h);
    for (int64_t i = 0; i < h; ++i) y[i] = PairwisePartialBody(v.data(), n, i, h, log2_padded - log2_h);
    for (int64_t half = h >> 1; half >= 1; half >>= 1)
      for (int64_t i = 0; i < half; ++i) PairwiseLevelBody(y.data(), i, half);
    const float expected = PairwiseSum(v.data(), n);
    if (std::memcmp(&expected, &y[0], 4) != 0) {
      std::printf("FAIL pairwise n=%lld: %a vs %a\n", static_cast<long long>(n), expected, y[0]);
      ok = false;
    }
  }
  std::printf("%s two-stage PairwiseSum == core PairwiseSum (%zu lengths)\n", ok ? "PASS" : "FAIL",
              lengths.size());
  return ok;
}

// The GPU long-run adder (vector reads, scalar chain) against the plain loop,
// for lengths around its vector width and chunk size, and a nonzero start.
bool SequentialAddSelfTest() {
  Rng rng(5);
  bool ok = true;
  alignas(16) static float buf[4096 + 8];
  for (int len : {0, 1, 2, 3, 4, 5, 7, 8, 9, 11, 12, 13, 100, 4093, 4094, 4095, 4096}) {
    for (int i = 0; i < len; ++i)
      buf[i] = static_cast<float>(std::ldexp(rng.Uniform(), -static_cast<int>(rng.Below(30))));
    const float start = static_cast<float>(rng.Uniform());
    float expected = start;
    for (int i = 0; i < len; ++i) expected += buf[i];
    const float got = SequentialAdd(buf, len, start);
    if (std::memcmp(&expected, &got, 4) != 0) {
      std::printf("FAIL SequentialAdd len=%d: %a vs %a\n", len, expected, got);
      ok = false;
    }
  }
  std::printf("%s SequentialAdd == sequential loop\n", ok ? "PASS" : "FAIL");
  return ok;
}

}  // namespace
}  // namespace harness
}  // namespace cafe

int main(int argc, char** argv) {
  using namespace cafe::harness;
  // Every scenario, as the GPU harness runs them; --no-large skips the benchmark-sized one.
  bool include_large = true;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--no-large") {
      include_large = false;
    } else {
      std::fprintf(stderr, "usage: %s [--no-large]\n", argv[0]);
      return 2;
    }
  }
  bool ok = SelfTest();
  ok = PairwiseSelfTest() && ok;
  ok = SequentialAddSelfTest() && ok;
  for (const Scenario& sc : Scenarios(include_large)) {
    auto core = MakeCoreBackend(sc.config.num_buckets > 1 ? 3 : 1);  // sharded core
    EmulatedGpuBackend emu;
    ok = RunScenario(sc, *core, emu) && ok;
    if (emu.pairwise_mismatches() > 0) ok = false;
  }
  std::printf("%s\n", ok ? "ALL PASS" : "SOME FAILED");
  return ok ? 0 : 1;
}
