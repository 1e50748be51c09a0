#include "occurrence_emulation.h"

#include <algorithm>
#include <numeric>

#include "../kernels/occurrence_device_common.h"

namespace cafe {
namespace harness {
namespace {

using cuda::detail::BadSegmentBody;
using cuda::detail::BoundsBody;

// The ordering pass (validation, stable sort, ranges); returns the status.
int64_t Order(const std::vector<int32_t>& segments, int64_t num_segments,
              std::vector<int32_t>* order, std::vector<int32_t>* begin,
              std::vector<int32_t>* end) {
  const int64_t n = static_cast<int64_t>(segments.size());
  int64_t status = n;
  for (int64_t i = 0; i < n; ++i)
    status = std::min(status, BadSegmentBody(i, segments.data(), num_segments, n));
  order->resize(n);
  std::iota(order->begin(), order->end(), 0);
  std::stable_sort(order->begin(), order->end(),
                   [&](int32_t a, int32_t b) { return segments[a] < segments[b]; });
  std::vector<int32_t> sorted(n);
  for (int64_t k = 0; k < n; ++k) sorted[k] = segments[(*order)[k]];
  begin->assign(num_segments, 0);
  end->assign(num_segments, 0);
  for (int64_t k = 0; k < n; ++k)
    BoundsBody(k, sorted.data(), n, num_segments, begin->data(), end->data());
  return status;
}

}  // namespace

int64_t EmulateSegmentRowSums(const std::vector<float>& rows, const std::vector<int32_t>& segments,
                              int64_t d, int64_t num_segments, std::vector<float>* out) {
  std::vector<int32_t> order, begin, end;
  const int64_t status = Order(segments, num_segments, &order, &begin, &end);
  out->assign(num_segments * d, 0.f);
  for (int64_t t = 0; t < num_segments * d; ++t) {
    cuda::detail::SegmentColumnSumBody(t, rows.data(), d, order.data(), begin.data(), end.data(),
                                       out->data());
  }
  return status;
}

int64_t EmulatePairImportance(const std::vector<float>& rows, const std::vector<int32_t>& pairs,
                              int64_t d, bool norm, int64_t num_pairs, std::vector<double>* sums,
                              std::vector<double>* occurrences) {
  std::vector<int32_t> order, begin, end;
  const int64_t status = Order(pairs, num_pairs, &order, &begin, &end);
  const int64_t n = static_cast<int64_t>(pairs.size());
  std::vector<float> values(n);
  for (int64_t i = 0; i < n; ++i)
    cuda::detail::OccurrenceValueBody(i, rows.data(), d, norm, values.data());
  sums->assign(num_pairs, 0.0);
  occurrences->assign(num_pairs, 0.0);
  for (int64_t p = 0; p < num_pairs; ++p) {
    cuda::detail::PairSumBody(p, values.data(), order.data(), begin.data(), end.data(),
                              sums->data(), occurrences->data());
  }
  return status;
}

}  // namespace harness
}  // namespace cafe
