#include "route_emulation.h"

#include <algorithm>
#include <climits>

#include "../kernels/routing_device_common.h"

namespace cafe {
namespace harness {
namespace {

using cafe::cuda::detail::ClaimBody;
using cafe::cuda::detail::FirstFlagBody;
using cafe::cuda::detail::FirstIndexBody;
using cafe::cuda::detail::OccurrenceIndexBody;
using cafe::cuda::detail::PairTableSlots;
using cafe::cuda::detail::QueryBody;
using cafe::cuda::detail::RowsBody;
using cafe::cuda::detail::ScatterDistinctBody;

// One distinct pass of the GPU over a[0, n), entries >= limit or (non_negative)
// negative unused; claims in ascending or descending index order.
template <typename T>
int64_t DistinctPass(const std::vector<int64_t>& a, const int32_t* b, int64_t n, int64_t limit,
                     bool non_negative, int32_t base, bool descending, std::vector<int32_t>* index,
                     std::vector<T>* out_a, std::vector<int32_t>* out_b) {
  const int64_t slots = PairTableSlots(n);
  std::vector<int32_t> owner(slots, -1), first(slots, INT_MAX), slot_of(n), flag(n), pos(n);
  auto cas = [](int32_t* p, int32_t expected, int32_t desired) {
    const int32_t previous = *p;
    if (previous == expected) *p = desired;
    return previous;
  };
  auto atomic_min = [](int32_t* p, int32_t v) { *p = std::min(*p, v); };
  for (int64_t k = 0; k < n; ++k) {
    const int64_t i = descending ? n - 1 - k : k;
    slot_of[i] = i >= limit || (non_negative && a[i] < 0)
                     ? -1
                     : ClaimBody(i, a.data(), b, owner.data(), first.data(),
                                 static_cast<uint64_t>(slots - 1), cas, atomic_min);
  }
  for (int64_t i = 0; i < n; ++i) FirstFlagBody(i, slot_of.data(), first.data(), flag.data());
  int32_t total = 0;
  for (int64_t i = 0; i < n; ++i) {
    pos[i] = total;
    total += flag[i];
  }
  out_a->assign(n, 0);
  if (out_b != nullptr) out_b->assign(n, 0);
  index->assign(n, 0);
  for (int64_t i = 0; i < n; ++i) {
    ScatterDistinctBody(i, a.data(), b, slot_of.data(), first.data(), flag.data(), pos.data(),
                        base, index->data(), out_a->data(),
                        out_b == nullptr ? nullptr : out_b->data());
  }
  out_a->resize(total);
  if (out_b != nullptr) out_b->resize(total);
  return total;
}

}  // namespace

RouteResult EmulateRoute(const SketchConfig& config, const ConstSketchState& s,
                         const RouteTables& tables, const std::vector<int64_t>& ids,
                         const std::vector<int32_t>& feature_index, bool descending,
                         std::vector<int32_t>* inverse) {
  const int64_t n = static_cast<int64_t>(ids.size());
  cafe::RouteResult r;
  const int64_t u = DistinctPass(ids, feature_index.data(), n, n, false, 0, descending, inverse,
                                 &r.keys, &r.feature_index);
  inverse->resize(n);
  r.hot_row.assign(u, 0);
  r.level.assign(u, 0);
  for (int64_t i = 0; i < u; ++i) {
    QueryBody(i, r.keys.data(), config.num_buckets, config.slots_per_bucket, config.tag_bits,
              config.medium_threshold, s.slots, s.scores, r.hot_row.data(), r.level.data());
  }
  std::vector<int64_t> hot64(n, -1);
  r.hashed_row.assign(n, -1);
  r.medium_row.assign(n, -1);
  const bool multi = !tables.medium_sizes.empty();
  for (int64_t i = 0; i < u; ++i) {
    RowsBody(i, r.keys.data(), r.feature_index.data(), r.hot_row.data(), r.level.data(),
             tables.hashed_offsets.data(), tables.hashed_sizes.data(),
             multi ? tables.medium_offsets.data() : nullptr,
             multi ? tables.medium_sizes.data() : nullptr, multi,
             cafe::TableSalt(tables.hashed_seed), cafe::TableSalt(tables.medium_seed),
             r.hashed_row.data(), r.medium_row.data(), hot64.data());
  }
  std::vector<int32_t> hashed_index;
  const int64_t hot_read = DistinctPass(hot64, nullptr, n, u, true, 0, descending,
                                        &r.first_index, &r.read_hot, nullptr);
  DistinctPass(r.hashed_row, nullptr, n, u, true, static_cast<int32_t>(hot_read), descending,
               &hashed_index, &r.read_hashed, nullptr);
  for (int64_t i = 0; i < u; ++i) {
    FirstIndexBody(i, r.first_index.data(), hashed_index.data(), r.first_index.data());
  }
  DistinctPass(r.medium_row, nullptr, n, u, true, 0, descending, &r.medium_index,
               &r.read_medium, nullptr);
  for (auto* v : {&r.first_index, &r.medium_index}) v->resize(u);
  for (auto* v : {&r.hashed_row, &r.medium_row}) v->resize(u);
  r.occurrence_index.assign(n, 0);
  for (int64_t i = 0; i < n; ++i) {
    OccurrenceIndexBody(i, inverse->data(), r.first_index.data(), r.occurrence_index.data());
  }
  return r;
}

}  // namespace harness
}  // namespace cafe
