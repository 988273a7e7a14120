// Built against the installed package's ringflow::prometheus: an engine's metrics in the
// Prometheus text format, and an endpoint on a free loopback port.
#include <cstdio>
#include <string>

#include <ringflow/prometheus.hpp>
#include <ringflow/ringflow.hpp>

int main() {
  ringflow::EngineConfig cfg;
  cfg.pin_threads = false;
  ringflow::Engine engine(cfg);
  (void)engine.add_topic("orders");
  engine.set_log_sink(ringflow::null_log_sink());
  engine.start();
  int rc = 0;
  {
    ringflow::prom::ExporterOptions o;
    o.address = "127.0.0.1:0";
    const ringflow::prom::Exporter exporter(engine, o);
    const std::string text = ringflow::prom::to_text(engine.metrics());
    if (exporter.port() == 0 ||
        text.find("ringflow_events_total{topic=\"orders\"} 0") == std::string::npos) {
      rc = 2;
    }
    std::printf("ringflow::prometheus consumer: %s\n", exporter.url().c_str());
  }
  engine.stop();
  return rc;
}
