// Bit-for-bit comparison of two backends: their state after every step of a
// scenario, and every op's outputs.
#ifndef CAFE_TF_CUDA_HARNESS_COMPARE_H_
#define CAFE_TF_CUDA_HARNESS_COMPARE_H_

#include <string>
#include <vector>

#include "../../core/hotsketch.h"
#include "backend.h"
#include "scenarios.h"

namespace cafe {
namespace harness {

// Runs the scenario on both backends, comparing every state array bit for bit
// after every step, plus every op's outputs: insert, migrate, query, and
// after each query a route of the queried ids and the occurrence sums over its
// inverse (segment row sums, pair importance). Floats compare bit for bit,
// except that any NaN matches any NaN (x86 and CUDA make different NaN bits).
// Prints one PASS/FAIL line (and the first mismatches). Returns true on PASS.
bool RunScenario(const Scenario& scenario, Backend& reference, Backend& candidate);

// Bitwise comparison; appends human-readable differences (at most `limit`).
bool SameSnapshot(const Snapshot& a, const Snapshot& b, std::vector<std::string>* diffs,
                  int limit = 5);
bool SameMigration(const MigrationResult& a, const MigrationResult& b,
                   std::vector<std::string>* diffs, int limit = 5);

}  // namespace harness
}  // namespace cafe

#endif  // CAFE_TF_CUDA_HARNESS_COMPARE_H_
