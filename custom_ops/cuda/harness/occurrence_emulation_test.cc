// CPU-only check of the occurrence GPU pipeline (occurrence_kernels.cu): its
// per-thread bodies (occurrence_device_common.h) run on the host in kernel
// order (occurrence_emulation.h), and the results are compared bit for bit
// (any NaN matching any NaN) with the core's cafe::SegmentRowSums and cafe::PairSums:
// n from 0 to 300,000, widths 0 to 64, segments with no occurrence, one
// segment holding every occurrence, rows with NaN, infinities, signed zeros,
// subnormals and huge values, and invalid segment ids (the status). The core
// also runs under flush-to-zero and denormals-are-zero, as TF runs its CPU
// kernels (x86): the GPU's results, which no such mode touches, must equal
// those too.
// What this cannot check: the CUDA-only code (launches, CUB's radix sort).
//
// Build and run: custom_ops/cuda/run_emulation_test.sh (g++ only, no GPU).
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "../../core/id_range.h"
#include "../../core/occurrences.h"
#include "occurrence_emulation.h"

#if defined(__SSE2__)
#include <xmmintrin.h>
#endif

namespace {

// Bit for bit, except that any NaN matches any NaN: which NaN an addition of
// two returns depends on the operand order the compiler picks (x86) or is
// one canonical NaN (CUDA).
template <typename T>
bool SameBits(const char* what, const std::vector<T>& a, const std::vector<T>& b,
              const std::string& scenario) {
  bool same = a.size() == b.size();
  for (size_t i = 0; same && i < a.size(); ++i) {
    same = std::memcmp(&a[i], &b[i], sizeof(T)) == 0 || (std::isnan(a[i]) && std::isnan(b[i]));
  }
  if (!same) std::printf("FAIL %s: %s differs\n", scenario.c_str(), what);
  return same;
}

// `specials`: NaN, infinities, signed zeros, subnormals and huge values among them;
// `tiny`: magnitudes in [2^e, 2^(e + 4)) for one e below, at or above where the core
// sums (2^-102) or takes norms (2^-50) without a flush per operation; below, their sums
// and squares can be subnormal.
std::vector<float> Rows(std::mt19937_64& rng, int64_t count, bool specials, bool tiny) {
  static const float kSpecial[] = {std::nanf(""), -std::nanf(""), INFINITY, -INFINITY, -0.0f,
                                   0.0f,          1e-40f,         -3e-39f,  1.5e-38f,  -1.2e-38f,
                                   3e38f,         -3e38f,         1e-20f,   -1e-19f};
  static const int kTinyExponents[] = {-112, -103, -102, -101, -66, -51, -50, -49};
  const int e = kTinyExponents[rng() % 8];
  // Magnitudes over 24 binades, so that every float64 sum depends on its order.
  std::uniform_real_distribution<float> uniform(-2.f, 2.f), exponent(-12.f, 12.f);
  std::vector<float> rows(count);
  for (float& x : rows) {
    x = specials && rng() % 8 == 0 ? kSpecial[rng() % (sizeof(kSpecial) / sizeof(float))]
        : tiny ? std::ldexp(1.f + std::fabs(uniform(rng)) / 2.f, e + static_cast<int>(rng() % 4)) *
                     (rng() % 2 ? 1.f : -1.f)
               : uniform(rng) * std::exp2(exponent(rng));
  }
  return rows;
}

// Runs `fn` with flush-to-zero and denormals-are-zero set (TF's CPU kernels'
// mode), where the CPU has them.
template <typename Fn>
void UnderFlushToZero(const Fn& fn) {
#if defined(__SSE2__)
  const unsigned int saved = _mm_getcsr();
  _mm_setcsr(saved | 0x8040);  // FTZ | DAZ
  fn();
  _mm_setcsr(saved);
#else
  fn();
#endif
}

}  // namespace

int main() {
  using cafe::harness::EmulatePairImportance;
  using cafe::harness::EmulateSegmentRowSums;
  std::mt19937_64 rng(23);
  int failures = 0, scenarios = 0;
  for (int64_t n : {0, 1, 2, 7, 100, 2049, 300000}) {
    for (int64_t d : {0, 1, 3, 64}) {
      if (n * d > 4000000) continue;
      for (const char* layout : {"uniform", "one-segment", "sparse", "invalid"}) {
        for (int mode : {0, 1, 2}) {
          const bool specials = mode == 1, tiny = mode == 2;
          const std::string kind = layout;
          const int64_t num_segments = kind == "one-segment" ? 1
                                       : kind == "sparse"    ? 3 * n + 5  // most are empty
                                                             : n / 3 + 1;
          std::vector<int32_t> segments(n);
          for (int32_t& s : segments) {
            s = kind == "one-segment" ? 0 : static_cast<int32_t>(rng() % num_segments);
          }
          if (kind == "invalid" && n > 0) {
            segments[rng() % n] = rng() % 2 ? -1 : static_cast<int32_t>(num_segments);
          }
          const std::string scenario = kind + " n=" + std::to_string(n) + " d=" +
                                       std::to_string(d) +
                                       (specials ? " specials" : tiny ? " tiny" : "");
          const std::vector<float> rows = Rows(rng, n * d, specials, tiny);
          const std::vector<float> column = Rows(rng, n, specials, tiny);
          const int64_t valid = cafe::FirstOutOfRange(segments.data(), n, num_segments);
          bool ok = true;
          std::vector<float> sums;
          const int64_t status = EmulateSegmentRowSums(rows, segments, d, num_segments, &sums);
          if (status != valid) {
            std::printf("FAIL %s: status %lld, the core says %lld\n", scenario.c_str(),
                        static_cast<long long>(status), static_cast<long long>(valid));
            ok = false;
          }
          if (valid == n) {
            std::vector<float> expected(num_segments * d);
            cafe::SegmentRowSums(rows.data(), segments.data(), n, d, num_segments,
                                 expected.data());
            ok = SameBits("segment row sums", sums, expected, scenario) && ok;
            UnderFlushToZero([&] {
              cafe::SegmentRowSums(rows.data(), segments.data(), n, d, num_segments,
                                   expected.data());
            });
            ok = SameBits("segment row sums (core under FTZ/DAZ)", sums, expected, scenario) && ok;
            for (bool norm : {true, false}) {
              const std::vector<float>& values = norm ? rows : column;
              const int64_t width = norm ? d : 1;
              std::vector<double> got_sums, got_occurrences;
              std::vector<double> want_sums(num_segments), want_occurrences(num_segments);
              EmulatePairImportance(values, segments, width, norm, num_segments, &got_sums,
                                    &got_occurrences);
              cafe::PairSums(values.data(), segments.data(), n, width, norm, num_segments,
                             want_sums.data(), want_occurrences.data());
              ok = SameBits(norm ? "pair sums (norm)" : "pair sums (abs)", got_sums, want_sums,
                            scenario) &&
                   ok;
              ok = SameBits("pair occurrences", got_occurrences, want_occurrences, scenario) && ok;
              UnderFlushToZero([&] {
                cafe::PairSums(values.data(), segments.data(), n, width, norm, num_segments,
                               want_sums.data(), want_occurrences.data());
              });
              ok = SameBits("pair sums (core under FTZ/DAZ)", got_sums, want_sums, scenario) && ok;
            }
          }
          failures += !ok;
          ++scenarios;
        }
      }
    }
  }
  std::printf("occurrence emulation: %d of %d scenarios match the core%s\n",
              scenarios - failures, scenarios, failures ? "" : " (PASS)");
  return failures == 0 ? 0 : 1;
}
