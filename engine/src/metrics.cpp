// MetricsSnapshot helpers (metrics.hpp). Engine::metrics() itself is in engine.cpp.
#include "ringflow/metrics.hpp"

#include <algorithm>

namespace ringflow {

double HistogramSnapshot::quantile_ns(double q) const noexcept {
  if (count == 0 || buckets.empty()) return 0.0;
  q = std::clamp(q, 0.0, 1.0);
  const double rank = q * static_cast<double>(count);
  std::uint64_t below = 0;
  for (std::size_t i = 0; i < buckets.size(); ++i) {
    if (buckets[i] == 0) continue;
    if (static_cast<double>(below + buckets[i]) >= rank) {
      const double lo = i == 0 ? 0.0 : static_cast<double>(LatencyBuckets::upper_bound_ns(i - 1));
      if (i >= LatencyBuckets::kFinite) return lo;  // +Inf bucket: its lower bound
      const double hi = static_cast<double>(LatencyBuckets::upper_bound_ns(i));
      const double f = (rank - static_cast<double>(below)) / static_cast<double>(buckets[i]);
      return lo + (hi - lo) * std::clamp(f, 0.0, 1.0);
    }
    below += buckets[i];
  }
  return static_cast<double>(LatencyBuckets::upper_bound_ns(LatencyBuckets::kFinite - 1));
}

HistogramSnapshot& HistogramSnapshot::operator+=(const HistogramSnapshot& o) {
  if (buckets.size() < o.buckets.size()) buckets.resize(o.buckets.size(), 0);
  for (std::size_t i = 0; i < o.buckets.size(); ++i)
    buckets[i] += o.buckets[i];
  count += o.count;
  sum_ns += o.sum_ns;
  return *this;
}

const MetricSample* MetricsSnapshot::find(Metric m,
                                          std::initializer_list<std::string_view> labels) const {
  for (const MetricSample& s : family(m).samples) {
    if (s.label_values.size() == labels.size() &&
        std::equal(labels.begin(), labels.end(), s.label_values.begin())) {
      return &s;
    }
  }
  return nullptr;
}

std::uint64_t MetricsSnapshot::value(Metric m,
                                     std::initializer_list<std::string_view> labels) const {
  const MetricSample* s = find(m, labels);
  return s == nullptr ? 0 : s->value;
}

std::uint64_t MetricsSnapshot::total(Metric m) const {
  std::uint64_t sum = 0;
  for (const MetricSample& s : family(m).samples)
    sum += s.value;
  return sum;
}

HistogramSnapshot MetricsSnapshot::merged_histogram(Metric m) const {
  HistogramSnapshot h;
  h.buckets.assign(LatencyBuckets::kCount, 0);
  for (const MetricSample& s : family(m).samples)
    h += s.histogram;
  return h;
}

}  // namespace ringflow
