#include "ringflow/prometheus.hpp"

#include <prometheus/collectable.h>
#include <prometheus/exposer.h>
#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

#include <limits>
#include <stdexcept>
#include <vector>

namespace ringflow::prom {

namespace {

::prometheus::MetricType type_of(MetricKind k) noexcept {
  switch (k) {
    case MetricKind::counter:
      return ::prometheus::MetricType::Counter;
    case MetricKind::gauge:
      return ::prometheus::MetricType::Gauge;
    case MetricKind::histogram:
      return ::prometheus::MetricType::Histogram;
  }
  return ::prometheus::MetricType::Untyped;
}

std::vector<::prometheus::MetricFamily> to_families(const MetricsSnapshot& snap) {
  std::vector<::prometheus::MetricFamily> out;
  out.reserve(snap.families.size());
  for (const MetricFamilySnapshot& f : snap.families) {
    ::prometheus::MetricFamily pf;
    pf.name = std::string(f.def->name);
    pf.help = std::string(f.def->help);
    pf.type = type_of(f.def->kind);
    pf.metric.reserve(f.samples.size());
    for (const MetricSample& s : f.samples) {
      ::prometheus::ClientMetric m;
      for (std::size_t i = 0; i < s.label_values.size() && i < f.def->label_count; ++i)
        m.label.push_back({std::string(f.def->labels[i]), s.label_values[i]});
      switch (f.def->kind) {
        case MetricKind::counter:
          m.counter.value = static_cast<double>(s.value);
          break;
        case MetricKind::gauge:
          m.gauge.value = static_cast<double>(s.value);
          break;
        case MetricKind::histogram: {
          const HistogramSnapshot& h = s.histogram;
          m.histogram.sample_count = h.count;
          m.histogram.sample_sum = static_cast<double>(h.sum_ns) * 1e-9;
          std::uint64_t cumulative = 0;
          // Finite buckets only: the serializer adds le="+Inf" with the sample count.
          for (std::size_t b = 0; b < h.buckets.size() && b < LatencyBuckets::kFinite; ++b) {
            cumulative += h.buckets[b];
            m.histogram.bucket.push_back(
                {cumulative, static_cast<double>(LatencyBuckets::upper_bound_ns(b)) * 1e-9});
          }
          break;
        }
      }
      pf.metric.push_back(std::move(m));
    }
    out.push_back(std::move(pf));
  }
  return out;
}

/// Takes the snapshot when scraped, on the endpoint's thread.
class EngineCollectable final : public ::prometheus::Collectable {
 public:
  explicit EngineCollectable(const Engine& e) : engine_(e) {}
  std::vector<::prometheus::MetricFamily> Collect() const override {
    return to_families(engine_.metrics());
  }

 private:
  const Engine& engine_;
};

}  // namespace

struct Exporter::Impl {
  ExporterOptions options;
  std::unique_ptr<::prometheus::Exposer> exposer;
  std::shared_ptr<EngineCollectable> collectable;
  std::uint16_t port = 0;
};

Exporter::Exporter(const Engine& engine, ExporterOptions options)
    : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
  try {
    impl_->exposer =
        std::make_unique<::prometheus::Exposer>(impl_->options.address, impl_->options.threads);
  } catch (const std::exception& e) {
    throw std::runtime_error("ringflow::prom::Exporter: cannot listen on " +
                             impl_->options.address + ": " + e.what());
  }
  const std::vector<int> ports = impl_->exposer->GetListeningPorts();
  if (ports.empty()) {
    throw std::runtime_error("ringflow::prom::Exporter: no listening port for " +
                             impl_->options.address);
  }
  impl_->port = static_cast<std::uint16_t>(ports.front());
  impl_->collectable = std::make_shared<EngineCollectable>(engine);
  impl_->exposer->RegisterCollectable(impl_->collectable, impl_->options.path);
}

Exporter::~Exporter() {
  if (impl_ && impl_->exposer) {
    impl_->exposer->RemoveCollectable(impl_->collectable, impl_->options.path);
    impl_->exposer.reset();  // joins the HTTP threads before the collectable goes
  }
}

std::uint16_t Exporter::port() const {
  return impl_->port;
}

std::string Exporter::url() const {
  const std::string& a = impl_->options.address;
  const std::string host = a.substr(0, a.rfind(':'));
  return "http://" + host + ":" + std::to_string(impl_->port) + impl_->options.path;
}

std::string to_text(const MetricsSnapshot& snapshot) {
  const ::prometheus::TextSerializer serializer;
  return serializer.Serialize(to_families(snapshot));
}

}  // namespace ringflow::prom
