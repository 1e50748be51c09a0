#include "self_test.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "../../core/hotsketch.h"
#include "backend.h"
#include "batches.h"
#include "compare.h"

namespace cafe {
namespace harness {

bool SelfTest() {
  bool ok = true;
  auto check = [&ok](bool cond, const char* what) {
    if (!cond) {
      std::printf("SELFTEST FAIL: %s\n", what);
      ok = false;
    }
  };
  {
    Rng r(0);
    check(r.Next() == 0xe220a8397b1dcdafULL, "splitmix64 reference value");
  }
  {
    const Zipf z(1000, 1.1);
    Rng r(7);
    int64_t first = 0;
    const int64_t draws = 200000;
    for (int64_t i = 0; i < draws; ++i) first += z.Sample(r) == 1 ? 1 : 0;
    double norm = 0.0;
    for (int i = 1; i <= 1000; ++i) norm += std::pow(i, -1.1);
    const double expected = draws / norm;
    check(std::fabs(static_cast<double>(first) - expected) < 0.05 * expected,
          "Zipf rank-1 frequency");
    Rng r2(9);
    bool in_range = true;
    for (int i = 0; i < 10000; ++i) {
      const int64_t k = z.Sample(r2);
      in_range &= k >= 1 && k <= 1000;
    }
    check(in_range, "Zipf ranks in [1, n]");
  }
  {
    BatchSpec spec;
    spec.n = 500;
    spec.corrupt = 5;
    const Zipf z(100, 1.1);
    std::vector<int64_t> k1, k2;
    std::vector<float> i1, i2;
    std::vector<int32_t> t1, t2;
    Rng a(3), b(3);
    MakeBatch(spec, a, z, &k1, &i1, &t1);
    MakeBatch(spec, b, z, &k2, &i2, &t2);
    check(k1 == k2 && t1 == t2 && std::memcmp(i1.data(), i2.data(), i1.size() * 4) == 0,
          "batches are deterministic");
    check(FirstInvalid(i1, t1, kMaxTagBits) >= 0, "corrupted batch is invalid");
  }
  {
    std::vector<int64_t> seen;
    for (int64_t r = 1; r <= 5000; ++r) seen.push_back(KeyOf(r, KeyMode::kExtreme));
    std::sort(seen.begin(), seen.end());
    check(std::adjacent_find(seen.begin(), seen.end()) == seen.end(), "extreme keys distinct");
  }
  {
    bool inverse = true, pairs = true;
    for (int64_t r = 0; r < 2000; ++r) {
      const uint64_t x = static_cast<uint64_t>(KeyOf(r, KeyMode::kScrambled));
      inverse &= Unmix64(Mix64(x)) == x;
    }
    for (int64_t m = 1; m <= 1000; ++m) {
      const int64_t a = KeyOf(2 * m, KeyMode::kFingerprintPairs);
      const int64_t b = KeyOf(2 * m + 1, KeyMode::kFingerprintPairs);
      pairs &= a != b && FingerprintOf(a) == FingerprintOf(b) && BucketOf(a, 16) == BucketOf(b, 16);
    }
    check(inverse, "Unmix64 inverts Mix64");
    check(pairs, "fingerprint pairs: distinct keys, same fingerprint and bucket");
  }
  {
    SketchConfig c;
    c.num_buckets = 4;
    c.slots_per_bucket = 2;
    c.hot_rows = 3;
    Snapshot a = EmptySnapshot(c), b = EmptySnapshot(c);
    std::vector<std::string> d;
    check(SameSnapshot(a, b, &d), "equal snapshots compare equal");
    b.scores[3] = -0.f;
    check(!SameSnapshot(a, b, &d), "-0.0 vs 0.0 is a difference");
    b = a;
    a.scores[1] = 1.f;
    b.scores[1] = std::nextafter(1.f, 2.f);
    check(!SameSnapshot(a, b, &d), "1-ulp difference is caught");
    b = a;
    b.mass = std::nextafter(0.f, 1.f);
    check(!SameSnapshot(a, b, &d), "mass difference is caught");
    b = a;
    b.slots[2] = SlotWord(1, kRowNone);
    check(!SameSnapshot(a, b, &d), "fingerprint difference is caught");
    b = a;
    b.slots[5] = SlotWord(0, 0);
    check(!SameSnapshot(a, b, &d), "entry difference is caught");
    MigrationResult m1, m2;
    m1.promoted.push_back({5, 1, 0});
    m2.promoted.push_back({5, 1, 1});
    check(!SameMigration(m1, m2, &d), "promoted row difference is caught");
  }
  std::printf("%s harness self-test\n", ok ? "PASS" : "FAIL");
  return ok;
}

}  // namespace harness
}  // namespace cafe
