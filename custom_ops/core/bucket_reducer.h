// BucketOf without a division, for the insert and query drivers (speed only:
// the same value as BucketOf in hotsketch.h).
#ifndef CAFE_TF_CORE_BUCKET_REDUCER_H_
#define CAFE_TF_CORE_BUCKET_REDUCER_H_

#include <cstdint>

#include "hotsketch.h"

namespace cafe {
namespace internal {

// Mix64(key) mod W, the value of BucketOf, without a division or branches: a
// mask when W is a power of two, else q = mulhi(x, floor((2^64-1)/W)), which
// never exceeds the true quotient and falls short by at most 2, fixed by two
// conditional subtractions (conditional moves).
class BucketReducer {
 public:
  explicit BucketReducer(int64_t num_buckets)
      : d_(static_cast<uint64_t>(num_buckets)),
        m_(~0ULL / d_),
        pow2_((d_ & (d_ - 1)) == 0) {}
  bool pow2() const { return pow2_; }
  // kPow2 must equal pow2().
  template <bool kPow2>
  uint64_t Reduce(int64_t key) const {
    return ReduceHash<kPow2>(Mix64(static_cast<uint64_t>(key)));
  }
  // The same for x = Mix64(key).
  template <bool kPow2>
  uint64_t ReduceHash(uint64_t x) const {
    if (kPow2) return x & (d_ - 1);
    const uint64_t q = static_cast<uint64_t>((static_cast<unsigned __int128>(x) * m_) >> 64);
    uint64_t r = x - q * d_;
    r = r >= d_ ? r - d_ : r;
    r = r >= d_ ? r - d_ : r;
    return r;
  }

 private:
  uint64_t d_;
  uint64_t m_;
  bool pow2_;
};

}  // namespace internal
}  // namespace cafe

#endif  // CAFE_TF_CORE_BUCKET_REDUCER_H_
