// Per-element bodies of the HotSketch CUDA kernels, shared verbatim between
// the GPU (hotsketch_kernels.cu, compiled by nvcc) and the CPU emulation of the
// GPU pipeline (../harness/emulation_test.cc, g++). Every function here is the
// body of one kernel thread (or one step of one), so the emulation runs exactly
// the arithmetic the GPU runs; only the CUB sorts/scans and the block-level
// cooperative sum of long runs are re-implemented on the host side.
//
// The arithmetic mirrors ../core/hotsketch.cc operation for operation (same
// float operations in the same order); see the comments next to each body.
// No TensorFlow and no CUDA runtime headers are needed here.
#ifndef CAFE_TF_CUDA_HOTSKETCH_DEVICE_COMMON_H_
#define CAFE_TF_CUDA_HOTSKETCH_DEVICE_COMMON_H_

#include <cstdint>
#include <cstring>

#include "../../core/hotsketch.h"        // Mix64, BucketOf: the one definition of the hashing
#include "../../core/hotsketch_rules.h"  // LookUpBucket: the one lookup rule

#if defined(__CUDACC__)
#define CAFE_HD __host__ __device__ __forceinline__
#else
#define CAFE_HD inline
#endif

namespace cafe {
namespace cuda {
namespace detail {

// Number of partial sums of the first PairwiseSum stage (a power of two).
constexpr int64_t kPairwisePartials = 8192;
// Runs (duplicates of one key) longer than this are summed by a whole block.
constexpr int64_t kShortRun = 32;
// Shared-memory chunk of a long run (floats per buffer; two buffers).
constexpr int kChunk = 4096;

CAFE_HD uint32_t FloatBits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof(u));
  return u;
}

CAFE_HD float BitsFloat(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof(f));
  return f;
}

using ::cafe::BucketOf;
using ::cafe::ColdMarker;
using ::cafe::DecayFactor;
using ::cafe::DecaySteps;
using ::cafe::DueDecaySteps;
using ::cafe::EntryRow;
using ::cafe::EntryTag;
using ::cafe::FingerprintOf;
using ::cafe::FlushSubnormal;
using ::cafe::HotEntry;
using ::cafe::kEmptySlot;
using ::cafe::kRepeatedBit;
using ::cafe::kRowNone;
using ::cafe::MarkerPending;
using ::cafe::MarkerTag;
using ::cafe::Mix64;
using ::cafe::SlotEntry;
using ::cafe::SlotFp;
using ::cafe::SlotWord;
using ::cafe::WithEntry;

// True when the insert entry (importance, tag) is invalid, with exactly the
// test of cafe::ValidateInsert (NaN, inf, negative importance; tag outside
// [0, 2^tag_bits)).
CAFE_HD bool InvalidEntry(float v, int32_t tag, int32_t tag_bits) {
  const uint32_t magnitude = FloatBits(v) & 0x7fffffffu;
  const bool nan_or_inf = magnitude >= 0x7f800000u;  // exponent all ones
  return nan_or_inf || v < 0.f || tag < 0 || (static_cast<uint32_t>(tag) >> tag_bits) != 0;
}

// Packs an insert entry as the value carried through the key sort: the float
// bits of the importance (a subnormal as 0, as on the CPU) in the high word, the
// tag in the low word.
CAFE_HD uint64_t PackEntry(float v, int32_t tag) {
  return (static_cast<uint64_t>(FloatBits(FlushSubnormal(v))) << 32) |
         static_cast<uint32_t>(tag);
}
CAFE_HD float PackedImportance(uint64_t p) { return BitsFloat(static_cast<uint32_t>(p >> 32)); }
CAFE_HD int32_t PackedTag(uint64_t p) { return static_cast<int32_t>(static_cast<uint32_t>(p)); }

// Duplicate sum of one run [begin, end) of the key-sorted batch. The sort is
// stable, so the run is in input-index order, and this is exactly the CPU loop
//   float v = 0.f; tag = feature_index[first]; for each: v += importance; tag = min(tag, .)
// The tag carries kRepeatedBit when the run is longer than one (as on the CPU).
CAFE_HD void RunSumSequential(const uint64_t* packed, int64_t begin, int64_t end, float* v_out,
                              int32_t* tag_out) {
  float v = 0.f;
  int32_t tag = PackedTag(packed[begin]);
  for (int64_t p = begin; p < end; ++p) {
    const uint64_t e = packed[p];
    v += PackedImportance(e);
    const int32_t t = PackedTag(e);
    tag = t < tag ? t : tag;
  }
  *v_out = v;
  *tag_out = end - begin > 1 ? (tag | kRepeatedBit) : tag;
}

struct alignas(16) Float4 {
  float x, y, z, w;
};

// acc + src[0] + src[1] + ... + src[len - 1], one addition at a time, left to
// right: the same chain as `for (i) acc += src[i]`. Used by the GPU's
// long-run sum on shared memory; the reads are issued two 16-byte vectors
// ahead of the additions, so the loop runs at the latency of the dependent
// adds. src must be 16-byte aligned.
CAFE_HD float SequentialAdd(const float* src, int len, float acc) {
  const Float4* v = reinterpret_cast<const Float4*>(src);
  const int nv = len / 4;
  const Float4 zero = {0.f, 0.f, 0.f, 0.f};
  Float4 a = nv > 0 ? v[0] : zero;
  Float4 b = nv > 1 ? v[1] : zero;
  for (int i = 0; i < nv; ++i) {
    const Float4 c = i + 2 < nv ? v[i + 2] : zero;
    acc += a.x;
    acc += a.y;
    acc += a.z;
    acc += a.w;
    a = b;
    b = c;
  }
  for (int i = nv * 4; i < len; ++i) acc += src[i];
  return acc;
}

// cafe::(anonymous)::InsertIntoBucket, statement for statement (slots match
// the key's fingerprint fp).
CAFE_HD void InsertIntoBucket(int64_t* slots, float* scores, int64_t base, int32_t c,
                              uint32_t fp, float v, int32_t tag, bool sighted, bool erode) {
  int32_t empty = -1;
  for (int32_t j = 0; j < c; ++j) {
    const int64_t s = base + j;
    if (scores[s] > 0.f) {
      if (SlotFp(slots[s]) == fp) {
        scores[s] += v;
        const int32_t m = SlotEntry(slots[s]);
        // seen again
        if (m < 0 && MarkerPending(m)) slots[s] = SlotWord(fp, ColdMarker(MarkerTag(m), false));
        return;
      }
    } else if (empty < 0) {
      empty = j;
    }
  }
  if (empty >= 0) {
    const int64_t s = base + empty;
    slots[s] = SlotWord(fp, ColdMarker(tag, false));
    scores[s] = v;
    return;
  }
  // The smallest non-hot slot (ties: highest index) is eroded or taken over.
  int32_t victim = -1;
  for (int32_t j = 0; j < c; ++j) {
    const int64_t s = base + j;
    if (SlotEntry(slots[s]) >= 0) continue;
    if (victim < 0 || scores[s] <= scores[base + victim]) victim = j;
  }
  if (victim < 0) return;  // every slot is hot: the update is dropped
  const int64_t s = base + victim;
  if (erode) {
    const float gain = FlushSubnormal(v - scores[s]);
    if (!(gain > 0.f)) {  // eroded: the newcomer is not recorded
      const float left = FlushSubnormal(scores[s] - v);
      if (left > 0.f) {
        scores[s] = left;
      } else {  // eroded to 0: the slot is empty
        slots[s] = kEmptySlot;
        scores[s] = 0.f;
      }
      return;
    }
    scores[s] = gain;
  } else {
    scores[s] += v;  // SpaceSaving: the newcomer inherits the score
  }
  slots[s] = SlotWord(fp, ColdMarker(tag, !sighted));  // waits for a second sighting
}

// Body of the per-bucket insert kernel for position q of the bucket-sorted
// distinct keys. Only the first position of each bucket's segment does work:
// it walks the segment (keys ascending, as the key sort was stable under the
// bucket sort) and applies InsertIntoBucket to each key with a positive sum.
CAFE_HD void BucketInsertBody(int64_t q, int64_t num_runs, const uint32_t* sorted_bucket,
                              const int32_t* sorted_run, const int64_t* run_key,
                              const float* run_value, const int32_t* run_tag, int32_t c,
                              bool second_sighting, bool erode, int64_t* slots, float* scores) {
  if (q >= num_runs) return;
  const uint32_t b = sorted_bucket[q];
  if (q > 0 && sorted_bucket[q - 1] == b) return;
  const int64_t base = static_cast<int64_t>(b) * c;
  for (int64_t e = q; e < num_runs && sorted_bucket[e] == b; ++e) {
    const int32_t r = sorted_run[e];
    const float v = run_value[r];
    const int32_t tag = run_tag[r];
    if (v > 0.f) {
      InsertIntoBucket(slots, scores, base, c, FingerprintOf(run_key[r]), v,
                       tag & ~kRepeatedBit, tag < 0 || !second_sighting, erode);
    }
  }
}

// Reverses the low `bits` bits of x.
CAFE_HD uint64_t ReverseBits(uint64_t x, int bits) {
  uint64_t r = 0;
  for (int i = 0; i < bits; ++i) {
    r = (r << 1) | (x & 1);
    x >>= 1;
  }
  return r;
}

// First stage of cafe::PairwiseSum. With P the padded length (a power of two)
// and h = number of partials (a power of two <= P), the halving tree
//   for half = P/2 .. 1: x[i] += x[i + half]
// leaves, after the levels half >= h, x[i] (i < h) = the halving tree over the
// m = P/h values e_k = x[i + k*h]. That tree pairs e_k with e_{k+m/2}, which is
// the contiguous pairwise recursion over e taken in bit-reversed index order;
// this body computes it with a stack (left + right, the same two operands per
// addition as the CPU). Padding values (index >= n) are +0.f as on the CPU.
CAFE_HD float PairwisePartialBody(const float* values, int64_t n, int64_t i, int64_t h,
                                  int log2_m) {
  float stack[40];  // depth <= log2_m + 1 <= 32
  int sp = 0;
  const int64_t m = int64_t{1} << log2_m;
  for (int64_t j = 0; j < m; ++j) {
    const int64_t idx = i + static_cast<int64_t>(ReverseBits(static_cast<uint64_t>(j), log2_m)) * h;
    float val = idx < n ? FlushSubnormal(values[idx]) : 0.f;
    for (int64_t t = j; t & 1; t >>= 1) val = stack[--sp] + val;
    stack[sp++] = val;
  }
  return stack[0];
}

// One level of the second stage: y[i] += y[i + half] (the CPU's statement).
CAFE_HD void PairwiseLevelBody(float* y, int64_t i, int64_t half) { y[i] += y[i + half]; }

// Query body: the core's lookup rule (cafe::internal::LookUpBucket) for ids[i].
CAFE_HD void QueryBody(int64_t i, const int64_t* ids, int64_t num_buckets, int32_t c,
                       int32_t tag_bits, float medium, const int64_t* slots,
                       const float* scores, int32_t* out_rows, int32_t* out_levels) {
  const int64_t key = ids[i];
  const int64_t base = BucketOf(key, num_buckets) * c;
  ::cafe::internal::LookUpBucket(slots + base, scores + base, c, tag_bits, medium,
                                 FingerprintOf(key), out_rows + i, out_levels + i);
}

// Migrate, step 1 (one thread): the decay steps due, as cafe::Migrate
// computes them (cafe::DueDecaySteps, with `mass_limit` = factor * W * k
// computed on the host in double exactly as the core does). When it decays:
// counts[0] = 1, *factor = rho^steps (cafe::DecayFactor), and the counters keep
// what is left.
CAFE_HD void DecayDueBody(bool force, int32_t rule_batches, int64_t period, double mass_limit,
                          float rate, float* mass, int64_t* batches, int32_t* counts,
                          float* factor) {
  const DecaySteps due = DueDecaySteps(rule_batches != 0, mass_limit, period, force, *mass,
                                       *batches);
  counts[0] = due.steps > 0 ? 1 : 0;
  if (due.steps > 0) {
    *factor = DecayFactor(rate, due.steps);
    *mass = due.mass_left;
    *batches = due.batches_left;
  }
}

// Migrate, step 2 (one thread per slot): the body of the CPU decay loop. The
// demoted entry's fingerprint and tag (in its cold marker) are read by
// DemoteScatterBody before the slot is emptied, so an emptied demoted slot is
// only marked here (empty_after).
CAFE_HD void DecaySlotBody(int64_t s, const int32_t* counts, const float* factor, float demote,
                           int32_t tag_bits, int64_t* slots, float* scores,
                           int32_t* demote_flag, int32_t* demote_row, int32_t* empty_after) {
  demote_flag[s] = 0;
  empty_after[s] = 0;
  if (counts[0] == 0) return;
  if (!(scores[s] > 0.f)) return;
  scores[s] = FlushSubnormal(scores[s] * *factor);
  const int32_t e = SlotEntry(slots[s]);
  bool demoted = false;
  // Demoted below the threshold, and always when the score underflowed to 0.
  if (e >= 0 && (scores[s] < demote || !(scores[s] > 0.f))) {
    demoted = true;
    demote_flag[s] = 1;
    demote_row[s] = EntryRow(e, tag_bits);
    slots[s] = WithEntry(slots[s], ColdMarker(EntryTag(e, tag_bits), false));
  }
  if (!(scores[s] > 0.f)) {  // underflowed: the slot is empty again
    if (demoted) {
      empty_after[s] = 1;
    } else {
      slots[s] = kEmptySlot;
      scores[s] = 0.f;
    }
  }
}

// Migrate, step 3 (one thread per slot): writes demoted entries at their
// position in slot order, then empties underflowed demoted slots.
CAFE_HD void DemoteScatterBody(int64_t s, const int32_t* demote_flag, const int32_t* demote_pos,
                               const int32_t* demote_row, const int32_t* empty_after,
                               int64_t* slots, float* scores, int64_t* out_fps,
                               int32_t* out_tags, int32_t* out_rows) {
  if (!demote_flag[s]) return;
  const int32_t p = demote_pos[s];
  out_fps[p] = SlotFp(slots[s]);
  out_tags[p] = MarkerTag(SlotEntry(slots[s]));
  out_rows[p] = demote_row[s];
  if (empty_after[s]) {
    slots[s] = kEmptySlot;
    scores[s] = 0.f;
  }
}

// Sort key of the fingerprint pass: the slot's fingerprint. The stable sorts
// by score that follow then break score ties by fingerprint, then by slot.
CAFE_HD uint32_t FingerprintKey(const int64_t* slots, int64_t s) { return SlotFp(slots[s]); }

// Promotion candidate test of cafe::Migrate (pending keys wait); `floor` is
// SketchConfig::promotion_floor().
CAFE_HD bool IsCandidate(const float* scores, const int64_t* slots, int64_t s, float floor) {
  const int32_t m = SlotEntry(slots[s]);
  return m < 0 && !MarkerPending(m) && scores[s] > 0.f && scores[s] >= floor;
}

// Sort key of the score pass (descending): the float bits of a candidate's
// score (> 0, so its bits order like the value and are >= 1), 0 otherwise, so
// non-candidates sort after every candidate.
CAFE_HD uint32_t CandidateScoreBits(const float* scores, const int64_t* slots, int64_t s,
                                    float floor) {
  return IsCandidate(scores, slots, s, floor) ? FloatBits(scores[s]) : 0u;
}

// After the descending score sort: the number of keys whose bits are >=
// min_bits is the position of the first below it (the thread at the boundary
// writes it; the count starts at 0). min_bits 1 counts every candidate, the
// bits of the threshold those that may displace hot keys.
CAFE_HD void CandidateCountBody(int64_t q, int64_t num_slots, const uint32_t* sorted_bits,
                                uint32_t min_bits, int32_t* count) {
  if (sorted_bits[q] >= min_bits && (q + 1 == num_slots || sorted_bits[q + 1] < min_bits))
    *count = static_cast<int32_t>(q + 1);
}

// Sort key of the hot pass (ascending): the float bits of a hot slot's score
// (>= 0, so its bits order like the value), all ones otherwise, so that the
// stable sort of the fingerprint-sorted slots gives hot slots by (score,
// fingerprint, slot) ascending.
CAFE_HD uint32_t HotScoreBits(const float* scores, const int64_t* slots, int64_t s) {
  return SlotEntry(slots[s]) >= 0 ? FloatBits(scores[s]) : 0xffffffffu;
}

// Rows in use (one thread per slot; `used` zeroed before): the row of a hot
// slot's entry. Rows >= hot_rows (a state not written with these hot_rows and
// tag_bits; the CPU op refuses it) are ignored rather than written out of bounds.
CAFE_HD void UsedRowBody(int64_t s, const int64_t* slots, int32_t tag_bits, int32_t hot_rows,
                         int32_t* used) {
  const int32_t e = SlotEntry(slots[s]);
  if (e >= 0 && EntryRow(e, tag_bits) < hot_rows) used[EntryRow(e, tag_bits)] = 1;
}

// Migrate, swaps (one thread): how many of the weakest hot keys (hot[i],
// score ascending) the candidates >= threshold beyond the free rows
// (candidates[free + i], score descending; `num_strong` of them) displace
// (cafe::Displaces), as the loop of cafe::Migrate counts.
CAFE_HD void SwapCountBody(int32_t hot_rows, const int32_t* num_free, const int32_t* num_strong,
                           const int32_t* candidates, const int32_t* hot, const float* scores,
                           float yield_threshold, float margin, int32_t* swaps) {
  const int32_t num_hot = hot_rows - *num_free;  // one hot slot per row in use
  int32_t i = 0;
  while (i < num_hot && *num_free + i < *num_strong &&
         Displaces(scores[candidates[*num_free + i]], scores[hot[i]], yield_threshold, margin))
    ++i;
  *swaps = i;
}

// Migrate, swaps (one thread per swap i): demotes hot[i], appending it to the
// demoted entries after the decay's `*num_demoted`.
CAFE_HD void SwapDemoteBody(int64_t i, const int32_t* swaps, const int32_t* num_demoted,
                            const int32_t* hot, int32_t tag_bits, int64_t* slots,
                            int64_t* out_fps, int32_t* out_tags, int32_t* out_rows) {
  if (i >= *swaps) return;
  const int64_t s = hot[i];
  const int32_t e = SlotEntry(slots[s]);
  const int32_t tag = EntryTag(e, tag_bits);
  const int64_t p = *num_demoted + i;
  out_fps[p] = SlotFp(slots[s]);
  out_tags[p] = tag;
  out_rows[p] = EntryRow(e, tag_bits);
  slots[s] = WithEntry(slots[s], ColdMarker(tag, false));
}

// Migrate, promotion (one thread per promoted position i): the i-th candidate
// (score desc, fingerprint asc, slot asc) gets the i-th free row in ascending
// order, as the CPU loop over rows does.
CAFE_HD void PromoteBody(int64_t i, int32_t num_promoted, const int32_t* candidates,
                         const int32_t* free_rows, int32_t tag_bits, int64_t* slots,
                         int64_t* out_fps, int32_t* out_tags, int32_t* out_rows) {
  if (i >= num_promoted) return;
  const int64_t s = candidates[i];
  const int32_t row = free_rows[i];
  const int32_t tag = MarkerTag(SlotEntry(slots[s]));
  slots[s] = WithEntry(slots[s], HotEntry(row, tag, tag_bits));
  out_fps[i] = SlotFp(slots[s]);
  out_tags[i] = tag;
  out_rows[i] = row;
}

}  // namespace detail
}  // namespace cuda
}  // namespace cafe

#endif  // CAFE_TF_CUDA_HOTSKETCH_DEVICE_COMMON_H_
