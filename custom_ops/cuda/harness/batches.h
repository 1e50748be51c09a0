// Deterministic, Zipf-skewed batches for the harness and the emulation
// tests: the random stream, the key and importance modes, and the generator.
#ifndef CAFE_TF_CUDA_HARNESS_BATCHES_H_
#define CAFE_TF_CUDA_HARNESS_BATCHES_H_

#include <cstdint>
#include <vector>

namespace cafe {
namespace harness {

// splitmix64 stream: deterministic on every platform.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next();
  double Uniform();                 // [0, 1)
  uint64_t Below(uint64_t bound);   // [0, bound)

 private:
  uint64_t state_;
};

// Zipf(s) over ranks 1..n by inverse CDF (binary search in a table).
class Zipf {
 public:
  Zipf(int64_t n, double s);
  int64_t Sample(Rng& rng) const;  // rank in [1, n]
  int64_t n() const { return static_cast<int64_t>(cdf_.size()); }

 private:
  std::vector<double> cdf_;
};

// kFingerprintPairs: ranks 2m and 2m + 1 are different keys whose Mix64
// agree in the high 32 bits (the fingerprint) and the low 16 bits (the bucket,
// for any power-of-two W <= 2^16): false matches of the 12-byte slots.
enum class KeyMode { kRank, kScrambled, kExtreme, kFingerprintPairs };
enum class ImportanceMode { kOnes, kUniform, kWide, kTiny, kHuge, kZeros, kMixedZeroNegZero };

struct BatchSpec {
  int64_t n = 0;
  int64_t vocabulary = 1000;
  double skew = 1.1;
  double hot_fraction = 0.0;  // this share of entries is one single key
  KeyMode key_mode = KeyMode::kScrambled;
  ImportanceMode importance = ImportanceMode::kUniform;
  int32_t max_tag = 26;
  int64_t rank_offset = 0;  // added to every drawn rank (distribution drift)
  // When >= 0: corrupt the batch at a random index (0 NaN, 1 +inf, 2 -inf,
  // 3 negative importance, 4 tag outside [0, 2^tag_bits) for every tag_bits,
  // 5 corrupt two indices).
  int corrupt = -1;
};

// Generates one batch.
void MakeBatch(const BatchSpec& spec, Rng& rng, const Zipf& zipf, std::vector<int64_t>* keys,
               std::vector<float>* importance, std::vector<int32_t>* feature_index);

// Maps a Zipf rank to a key.
int64_t KeyOf(int64_t rank, KeyMode mode);

// The inverse of cafe::Mix64 (a bijection): Unmix64(Mix64(x)) == x.
uint64_t Unmix64(uint64_t h);

}  // namespace harness
}  // namespace cafe

#endif  // CAFE_TF_CUDA_HARNESS_BATCHES_H_
