// The range check of id inputs (segment ids, pair ids, feature indices) that the
// ops run before they index anything with them.
#ifndef CAFE_TF_CORE_ID_RANGE_H_
#define CAFE_TF_CORE_ID_RANGE_H_

#include <algorithm>
#include <cstdint>

namespace cafe {

// The first i < n whose values[i] is outside [0, bound) (bound < 2^32), else n.
// Blocks are screened branch-free (the compiler vectorises it); only a block that
// fails is scanned again for its first bad value.
inline int64_t FirstOutOfRange(const int32_t* values, int64_t n, int64_t bound) {
  constexpr int64_t kBlock = 4096;
  const uint32_t limit = static_cast<uint32_t>(bound);  // a negative id wraps above it
  for (int64_t begin = 0; begin < n; begin += kBlock) {
    const int64_t end = std::min(n, begin + kBlock);
    uint32_t bad = 0;
    for (int64_t i = begin; i < end; ++i) bad |= static_cast<uint32_t>(values[i]) >= limit;
    if (bad == 0) continue;
    for (int64_t i = begin; i < end; ++i) {
      if (static_cast<uint32_t>(values[i]) >= limit) return i;
    }
  }
  return n;
}

}  // namespace cafe

#endif  // CAFE_TF_CORE_ID_RANGE_H_
