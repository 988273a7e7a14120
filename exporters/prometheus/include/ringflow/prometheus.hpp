#pragma once
// ringflow::prometheus: a Prometheus exposition endpoint for an Engine (target
// ringflow::prometheus, needs prometheus-cpp).
//
//   ringflow::Engine engine(cfg);
//   ...
//   engine.start();
//   ringflow::prom::Exporter exporter(engine);          // http://127.0.0.1:9464/metrics
//
// Each scrape takes one Engine::metrics() snapshot on the endpoint's own thread and converts it;
// nothing runs on the engine's threads and nothing is recorded per event. The engine must
// outlive the exporter.

#include <cstdint>
#include <memory>
#include <string>

#include "ringflow/engine.hpp"
#include "ringflow/metrics.hpp"

namespace ringflow::prom {

struct ExporterOptions {
  /// Where to listen, "host:port". Loopback by default: expose it further on purpose only.
  /// Port 0 picks a free port (see Exporter::port()).
  std::string address = "127.0.0.1:9464";
  std::string path = "/metrics";
  std::size_t threads = 1;  ///< HTTP worker threads
};

class Exporter {
 public:
  /// Starts listening; throws std::runtime_error naming the address when it cannot bind.
  explicit Exporter(const Engine& engine, ExporterOptions options = {});
  ~Exporter();
  Exporter(const Exporter&) = delete;
  Exporter& operator=(const Exporter&) = delete;

  /// The port it listens on (the chosen one when the address said 0).
  [[nodiscard]] std::uint16_t port() const;
  /// "http://host:port/path".
  [[nodiscard]] std::string url() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// A snapshot in the Prometheus text format (version 0.0.4), as the endpoint serves it.
[[nodiscard]] std::string to_text(const MetricsSnapshot& snapshot);

}  // namespace ringflow::prom
