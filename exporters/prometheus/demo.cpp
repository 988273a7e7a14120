// ringflow-metrics-demo: an engine behind a Prometheus endpoint with a known, paced workload,
// for ringflow-top, the README capture and the terminal test.
//
//   ringflow-metrics-demo [--address 127.0.0.1:9464] [--port-file F] [--rate N] [--count N]
//                         [--seconds S]
//
// Publishes --count events (0 = no limit) to "orders" and one in ten of that to "payments", at
// --rate events/s; every 100th order fails (dead-lettered), every 50th payment is retried
// once. Serves until --seconds pass (0 = until SIGINT/SIGTERM).
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>

#include "ringflow/prometheus.hpp"
#include "ringflow/ringflow.hpp"

namespace {

std::atomic<bool> g_stop{false};

void on_signal(int /*sig*/) {
  g_stop.store(true, std::memory_order_relaxed);  // only a flag the main loop polls
}

std::span<const std::byte> bytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

}  // namespace

int main(int argc, char** argv) {
  std::string address = "127.0.0.1:9464";
  std::string port_file;
  double rate = 1000;
  long long count = 0;
  double seconds = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << "ringflow-metrics-demo: " << a << " needs a value\n";
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--address") {
      address = next();
    } else if (a == "--port-file") {
      port_file = next();
    } else if (a == "--rate") {
      rate = std::stod(next());
    } else if (a == "--count") {
      count = std::stoll(next());
    } else if (a == "--seconds") {
      seconds = std::stod(next());
    } else {
      std::cerr << "usage: ringflow-metrics-demo [--address HOST:PORT] [--port-file F] "
                   "[--rate N] [--count N] [--seconds S]\n";
      return 2;
    }
  }
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);

  ringflow::EngineConfig cfg;
  cfg.partitions = 4;
  cfg.shards = 1;
  cfg.pin_threads = false;
  cfg.wait_strategy = ringflow::WaitStrategyKind::park;  // idle between paced events
  cfg.metrics_latency_sample_every = 1;
  ringflow::Engine engine(cfg);
  const ringflow::TopicId orders = engine.add_topic("orders");
  const ringflow::TopicId payments = engine.add_topic("payments");
  ringflow::SubscribeOptions so;
  so.retry_backoff = std::chrono::milliseconds(1);
  engine.subscribe("orders", ringflow::Handler([](const ringflow::EventView& e) {
                     return e.payload().size() == 4 ? ringflow::Outcome::fail("demo failure")
                                                    : ringflow::Outcome::ok();
                   }));
  engine.subscribe("payments", ringflow::Handler([](const ringflow::EventView& e) {
                     return e.payload().size() == 5 && e.attempt() == 1 ? ringflow::Outcome::retry()
                                                                        : ringflow::Outcome::ok();
                   }),
                   so);
  engine.subscribe("*.dlq", [](const ringflow::EventView&) {});
  engine.start();
  ringflow::prom::ExporterOptions eo;
  eo.address = address;
  ringflow::prom::Exporter exporter(engine, eo);
  std::cout << "ringflow-metrics-demo: serving " << exporter.url() << std::endl;
  if (!port_file.empty()) {
    const std::string tmp = port_file + ".tmp";
    std::ofstream(tmp) << exporter.port() << "\n";
    std::rename(tmp.c_str(), port_file.c_str());  // appears whole
  }

  auto producer = engine.make_producer();
  const auto start = std::chrono::steady_clock::now();
  const auto period = std::chrono::duration<double>(1.0 / rate);
  long long sent = 0;
  while (!g_stop.load(std::memory_order_relaxed)) {
    const auto now = std::chrono::steady_clock::now();
    if (seconds > 0 && now - start >= std::chrono::duration<double>(seconds)) break;
    if (count != 0 && sent >= count) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      continue;
    }
    const auto due = start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                 period * static_cast<double>(sent));
    if (now < due) {
      std::this_thread::sleep_until(std::min(due, now + std::chrono::milliseconds(50)));
      continue;
    }
    const std::string key = "k" + std::to_string(sent % 1000);
    // Payload sizes mark the fate: 4 bytes fail, everything else succeeds.
    const bool fail = sent % 100 == 99;
    while (producer.publish(orders, key, bytes(fail ? "fail" : "order")) ==
           ringflow::PublishStatus::full) {
      std::this_thread::yield();
    }
    if (sent % 10 == 9) {
      const bool retry = (sent / 10) % 50 == 49;
      while (producer.publish(payments, key, bytes(retry ? "retry" : "paid!!")) ==
             ringflow::PublishStatus::full) {
        std::this_thread::yield();
      }
    }
    ++sent;
  }
  engine.drain();
  return 0;
}
