// The harness's scenarios: a sketch config, a batch stream and a schedule of
// migrations, each chosen to reach one corner of the rules.
#ifndef CAFE_TF_CUDA_HARNESS_SCENARIOS_H_
#define CAFE_TF_CUDA_HARNESS_SCENARIOS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "../../core/hotsketch.h"
#include "batches.h"

namespace cafe {
namespace harness {

struct Scenario {
  std::string name;
  SketchConfig config;
  int steps = 10;
  BatchSpec batch;
  int migrate_every = 1;      // run Migrate after every this many inserts (0 never)
  int force_decay_every = 0;  // force the decay on every this-many-th migration (0 never)
  // Importance mode of step i: modes[i % size] (empty: batch.importance).
  std::vector<ImportanceMode> modes;
  bool vary_size = true;  // steps other than every third draw n in [1, batch.n]
  int corrupt_every = 0;  // every this-many-th batch is corrupted (0 never)
  int empty_every = 0;    // every this-many-th batch is empty (0 never)
  int64_t drift = 0;      // rank offset grows by this per step (hot keys go cold)
  uint64_t seed = 1;
};

// The scenarios of the harness: tiny and full buckets, every slot hot, heavy
// duplicates and very long runs, underflowing decays (with demote threshold 0
// and > 0), score ties, both decay rules, extreme keys, zero / empty / invalid
// batches, c = 1 and c = 16 (also with the default 4/3 slots per hot row), inf scores, and one benchmark-sized case when
// `include_large`.
std::vector<Scenario> Scenarios(bool include_large);

}  // namespace harness
}  // namespace cafe

#endif  // CAFE_TF_CUDA_HARNESS_SCENARIOS_H_
