#include "batches.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "../../core/hotsketch.h"

namespace cafe {
namespace harness {

// ------------------------------------------------------------------ Rng ---

uint64_t Rng::Next() {
  uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

double Rng::Uniform() { return static_cast<double>(Next() >> 11) * (1.0 / 9007199254740992.0); }

uint64_t Rng::Below(uint64_t bound) { return bound == 0 ? 0 : Next() % bound; }

// ----------------------------------------------------------------- Zipf ---

Zipf::Zipf(int64_t n, double s) : cdf_(static_cast<size_t>(std::max<int64_t>(n, 1))) {
  double total = 0.0;
  for (size_t i = 0; i < cdf_.size(); ++i) {
    total += std::pow(static_cast<double>(i + 1), -s);
    cdf_[i] = total;
  }
  for (double& c : cdf_) c /= total;
  cdf_.back() = 1.0;
}

int64_t Zipf::Sample(Rng& rng) const {
  const double u = rng.Uniform();
  const auto it = std::upper_bound(cdf_.begin(), cdf_.end(), u);
  const int64_t index = std::min<int64_t>(it - cdf_.begin(), n() - 1);
  return index + 1;
}


// -------------------------------------------------------------- batches ---

namespace {

// The x with x ^ (x >> shift) == y.
uint64_t UnXorShift(uint64_t y, int shift) {
  uint64_t x = y;
  for (int i = 0; i <= 64 / shift; ++i) x = y ^ (x >> shift);
  return x;
}

// The inverse of an odd multiplier modulo 2^64 (Newton's iteration).
uint64_t InverseOdd(uint64_t a) {
  uint64_t x = a;  // correct to 3 bits
  for (int i = 0; i < 5; ++i) x *= 2 - a * x;
  return x;
}

}  // namespace

uint64_t Unmix64(uint64_t h) {
  uint64_t x = UnXorShift(h, 31);
  x *= InverseOdd(0x94d049bb133111ebULL);
  x = UnXorShift(x, 27);
  x *= InverseOdd(0xbf58476d1ce4e5b9ULL);
  return UnXorShift(x, 30);
}

int64_t KeyOf(int64_t rank, KeyMode mode) {
  switch (mode) {
    case KeyMode::kFingerprintPairs: {
      const uint64_t base = Mix64(static_cast<uint64_t>(rank >> 1) + 0x51ed27ULL);
      const uint64_t h = (base & 0xffffffff0000ffffULL) | (static_cast<uint64_t>(rank & 1) << 16);
      return static_cast<int64_t>(Unmix64(h));
    }
    case KeyMode::kRank:
      return rank;
    case KeyMode::kScrambled:
      return static_cast<int64_t>(
          Mix64(static_cast<uint64_t>(rank) * 0x9e3779b97f4a7c15ULL + 0x1234567ULL));
    case KeyMode::kExtreme: {
      static const int64_t kSpecial[] = {std::numeric_limits<int64_t>::min(),
                                         std::numeric_limits<int64_t>::max(),
                                         0,
                                         -1,
                                         1,
                                         std::numeric_limits<int64_t>::min() + 1,
                                         std::numeric_limits<int64_t>::max() - 1};
      if (rank >= 1 && rank <= 7) return kSpecial[rank - 1];
      const int64_t magnitude = rank << 20;
      return (rank & 1) ? -magnitude : magnitude;
    }
  }
  return rank;
}

namespace {

float DrawImportance(ImportanceMode mode, Rng& rng) {
  switch (mode) {
    case ImportanceMode::kOnes:
      return 1.f;
    case ImportanceMode::kUniform:
      return static_cast<float>(rng.Uniform() * 2.0);
    case ImportanceMode::kWide:
      return static_cast<float>(std::pow(10.0, -6.0 + 10.0 * rng.Uniform()));
    case ImportanceMode::kTiny: {
      // Denormals and values just above the normal range.
      const uint64_t pick = rng.Below(3);
      if (pick == 0) return std::ldexp(static_cast<float>(1 + rng.Below(64)), -149);
      if (pick == 1) return static_cast<float>(rng.Uniform() * 1e-38);
      return static_cast<float>(rng.Uniform() * 1e-36);
    }
    case ImportanceMode::kHuge:
      return static_cast<float>(rng.Uniform() * 3.0e38);
    case ImportanceMode::kZeros:
      return 0.f;
    case ImportanceMode::kMixedZeroNegZero: {
      const uint64_t pick = rng.Below(4);
      if (pick == 0) return 0.f;
      if (pick == 1) return -0.f;
      if (pick == 2) return 1.f;
      return static_cast<float>(rng.Uniform());
    }
  }
  return 1.f;
}

}  // namespace

void MakeBatch(const BatchSpec& spec, Rng& rng, const Zipf& zipf, std::vector<int64_t>* keys,
               std::vector<float>* importance, std::vector<int32_t>* feature_index) {
  const size_t n = static_cast<size_t>(spec.n);
  keys->resize(n);
  importance->resize(n);
  feature_index->resize(n);
  for (size_t i = 0; i < n; ++i) {
    const bool hot = spec.hot_fraction > 0.0 && rng.Uniform() < spec.hot_fraction;
    (*keys)[i] = KeyOf(spec.rank_offset + (hot ? 1 : zipf.Sample(rng)), spec.key_mode);
    (*importance)[i] = DrawImportance(spec.importance, rng);
    (*feature_index)[i] = static_cast<int32_t>(rng.Below(static_cast<uint64_t>(spec.max_tag) + 1));
  }
  if (spec.corrupt >= 0 && n > 0) {
    const size_t at = static_cast<size_t>(rng.Below(n));
    switch (spec.corrupt) {
      case 0: (*importance)[at] = std::numeric_limits<float>::quiet_NaN(); break;
      case 1: (*importance)[at] = std::numeric_limits<float>::infinity(); break;
      case 2: (*importance)[at] = -std::numeric_limits<float>::infinity(); break;
      case 3: (*importance)[at] = -0.5f; break;
      case 4: (*feature_index)[at] = rng.Below(2) ? -3 : kMaxTag + 1; break;
      default: {
        (*importance)[at] = std::numeric_limits<float>::quiet_NaN();
        (*feature_index)[at / 2] = -1;
        break;
      }
    }
  }
}

}  // namespace harness
}  // namespace cafe
