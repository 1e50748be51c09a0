// The query's driver: cafe::Query (hotsketch.h) with its buckets hashed and
// prefetched ahead, and a SIMD / branch-free scan of a bucket for the usual
// slot counts. It answers what hotsketch_rules.h's LookUpBucket answers.
#include <algorithm>
#include <cstdint>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "bucket_reducer.h"
#include "hotsketch.h"
#include "hotsketch_rules.h"

namespace cafe {

namespace {

using internal::BucketReducer;
using internal::LookUpBucket;

constexpr int64_t kQueryAhead = 16;  // ids hashed and prefetched this far ahead

// Bit j set iff slot j is occupied (score > 0) and holds fingerprint `fp`.
template <int C>
inline uint32_t MatchMask(const int64_t* slot_words, const float* slot_scores, uint32_t fp) {
#if defined(__SSE2__)
  if (C == 4) {
    // The high 32-bit halves (fingerprints) of the four words, compared at once.
    const __m128 a = _mm_castsi128_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(slot_words)));
    const __m128 b =
        _mm_castsi128_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(slot_words + 2)));
    const __m128i high = _mm_castps_si128(_mm_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1)));
    const __m128 equal = _mm_castsi128_ps(
        _mm_cmpeq_epi32(high, _mm_set1_epi32(static_cast<int32_t>(fp))));
    const __m128 occupied = _mm_cmpgt_ps(_mm_loadu_ps(slot_scores), _mm_setzero_ps());
    return static_cast<uint32_t>(_mm_movemask_ps(_mm_and_ps(equal, occupied)));
  }
  if (C > 4 && C % 4 == 0) {  // four slots at a time
    uint32_t mask = 0;
    for (int j = 0; j < C; j += 4)
      mask |= MatchMask<4>(slot_words + j, slot_scores + j, fp) << j;
    return mask;
  }
#endif
  uint32_t mask = 0;
  for (int j = 0; j < C; ++j)
    mask |= static_cast<uint32_t>((slot_scores[j] > 0.f) & (SlotFp(slot_words[j]) == fp)) << j;
  return mask;
}

// LookUpBucket's answer, branch-free (and SIMD for C a multiple of 4) when C > 0.
template <int C>
inline void LookUp(const int64_t* slot_words, const float* slot_scores, int64_t c,
                   int32_t tag_bits, float medium, uint32_t fp, int32_t* out_row,
                   int32_t* out_level) {
  if (C > 0) {  // branch-free
    const uint32_t mask = MatchMask<C>(slot_words, slot_scores, fp);
    static_assert((C & (C - 1)) == 0, "C must be a power of two");
    // First match, or (no match: ctz gives C) slot 0, whose values are then ignored.
    const uint32_t j = static_cast<uint32_t>(__builtin_ctz(mask | (1u << C))) & (C - 1);
    // Integer arithmetic instead of branches: hit/miss and hot/not are unpredictable.
    const uint32_t found = mask != 0;
    // -1 when not found or not hot (a cold marker; -1 >> tag_bits is -1).
    const int32_t row = EntryRow(std::max(SlotEntry(slot_words[j]), kRowNone), tag_bits) |
                        (static_cast<int32_t>(found) - 1);
    const uint32_t hot = static_cast<uint32_t>(~row) >> 31;                // row >= 0
    const uint32_t medium_or_cold = found & static_cast<uint32_t>(slot_scores[j] >= medium);
    *out_row = row;
    *out_level = static_cast<int32_t>((hot << 1) | (medium_or_cold & (hot ^ 1)));
    return;
  }
  LookUpBucket(slot_words, slot_scores, c, tag_bits, medium, fp, out_row, out_level);
}
static_assert(kLevelCold == 0 && kLevelMedium == 1 && kLevelHot == 2,
              "LookUp computes the level arithmetically");

// Lookup of keys[begin, end): buckets hashed and prefetched kQueryAhead ids
// ahead. C > 0: slots per bucket known at compile time; C == 0: any c.
template <int C, bool kPow2>
void QueryRange(const BucketReducer& bucket_of, int32_t c_runtime, int32_t tag_bits,
                const ConstSketchState& state, float medium, const int64_t* __restrict keys,
                int64_t begin, int64_t end, int32_t* __restrict out_rows,
                int32_t* __restrict out_levels) {
  const int64_t c = C > 0 ? C : c_runtime;
  const int64_t* const state_slots = state.slots;
  const float* const state_scores = state.scores;
  struct Located {
    int64_t base;
    uint32_t fp;
  };
  Located ring[kQueryAhead];
  auto locate = [&](int64_t i) {
    const uint64_t h = Mix64(static_cast<uint64_t>(keys[i]));
    const int64_t base = static_cast<int64_t>(bucket_of.ReduceHash<kPow2>(h)) * c;
    __builtin_prefetch(state_slots + base);
    __builtin_prefetch(state_scores + base);
    return Located{base, static_cast<uint32_t>(h >> 32)};
  };
  auto answer = [&](int64_t i, Located at) {
    LookUp<C>(state_slots + at.base, state_scores + at.base, c, tag_bits, medium, at.fp,
              out_rows + i, out_levels + i);
  };
  if (end - begin <= kQueryAhead) {
    for (int64_t i = begin; i < end; ++i) answer(i, locate(i));
    return;
  }
  for (int64_t k = 0; k < kQueryAhead; ++k) ring[k] = locate(begin + k);
  int64_t i = begin;
  for (; i + kQueryAhead < end; ++i) {
    const int64_t r = (i - begin) & (kQueryAhead - 1);
    const Located at = ring[r];
    ring[r] = locate(i + kQueryAhead);
    answer(i, at);
  }
  for (; i < end; ++i) answer(i, ring[(i - begin) & (kQueryAhead - 1)]);
}

template <int C>
void QueryRangeFor(const BucketReducer& bucket_of, int32_t c, int32_t tag_bits,
                   const ConstSketchState& state, float medium, const int64_t* keys,
                   int64_t begin, int64_t end, int32_t* out_rows, int32_t* out_levels) {
  if (bucket_of.pow2()) {
    QueryRange<C, true>(bucket_of, c, tag_bits, state, medium, keys, begin, end, out_rows,
                        out_levels);
  } else {
    QueryRange<C, false>(bucket_of, c, tag_bits, state, medium, keys, begin, end, out_rows,
                         out_levels);
  }
}

}  // namespace

void Query(const SketchConfig& config, const ConstSketchState& state, const int64_t* keys,
           int64_t n, int32_t* out_rows, int32_t* out_levels, const ParallelFor& parallel_for) {
  const BucketReducer bucket_of(config.num_buckets);
  const int32_t c = config.slots_per_bucket;
  const int32_t t = config.tag_bits;
  const float medium = config.medium_threshold;
  parallel_for(n, [&](int64_t begin, int64_t end) {
    switch (c) {
      case 1: return QueryRangeFor<1>(bucket_of, c, t, state, medium, keys, begin, end, out_rows, out_levels);
      case 2: return QueryRangeFor<2>(bucket_of, c, t, state, medium, keys, begin, end, out_rows, out_levels);
      case 4: return QueryRangeFor<4>(bucket_of, c, t, state, medium, keys, begin, end, out_rows, out_levels);
      case 8: return QueryRangeFor<8>(bucket_of, c, t, state, medium, keys, begin, end, out_rows, out_levels);
      case 16: return QueryRangeFor<16>(bucket_of, c, t, state, medium, keys, begin, end, out_rows, out_levels);
      default: return QueryRangeFor<0>(bucket_of, c, t, state, medium, keys, begin, end, out_rows, out_levels);
    }
  });
}

}  // namespace cafe
