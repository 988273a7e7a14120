// An order service embedding ringflow: orders are published from several request threads,
// validated, enriched with a tax amount, routed by amount to a "large orders" sink (manual
// review) or a "standard orders" sink (fulfilment), with each customer's orders handled in the
// order that customer placed them. Exits non-zero if any order is lost, duplicated or reordered.
//
//   build/release/examples/ringflow_example_order_service [configs/default.toml]

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "ringflow/ringflow.hpp"

namespace {

// The wire format of an order (what the request threads publish): 32 bytes.
struct Order {
  std::uint64_t order_no;  // per customer, increasing
  std::uint64_t amount_cents;
  std::uint64_t tax_cents;  // filled in by the "enrich" stage
  std::uint32_t customer;
  std::uint32_t checksum;  // order_no ^ amount ^ customer, checked by "validate"
};

std::uint32_t checksum(const Order& o) {
  return static_cast<std::uint32_t>(o.order_no ^ o.amount_cents ^ o.customer);
}

Order decode(const ringflow::EventView& e) {
  Order o{};
  std::memcpy(&o, e.payload().data(), std::min(sizeof o, e.payload().size()));
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  ringflow::EngineConfig cfg = argc > 1 ? ringflow::load_config(argv[1]) : ringflow::EngineConfig{};
  cfg.pin_threads = false;  // an example shares its machine; production configs pin
  ringflow::Engine engine(cfg);

  const auto placed = engine.add_topic("orders.placed");
  const auto large = engine.add_topic("orders.large");
  const auto standard = engine.add_topic("orders.standard");

  engine.pipeline()
      .filter("validate",
              [](const ringflow::EventView& e) {
                return e.payload().size() == sizeof(Order) &&
                       checksum(decode(e)) == decode(e).checksum;
              })
      .map("enrich",
           [](ringflow::Event& e) {
             Order o = decode(e);
             o.tax_cents = o.amount_cents / 5;  // 20 % tax
             std::memcpy(e.mutable_payload().data(), &o, sizeof o);
           })
      .route("by-amount", [&](const ringflow::EventView& e) {
        return decode(e).amount_cents >= 100'000 ? large : standard;
      });

  // Sinks. A customer's orders are one key, so one partition: each sink sees that customer's
  // orders in the order they were placed (strictly increasing order numbers). Across the two
  // sinks there is no common order: they are independent subscriptions.
  struct Sink {
    std::mutex mu;
    std::map<std::uint32_t, std::uint64_t> next_min;  // customer -> smallest allowed order_no
    std::atomic<std::uint64_t> count{0};
  };
  Sink large_sink;
  Sink standard_sink;
  std::atomic<std::uint64_t> bad{0};
  const auto see = [&](Sink& sink, const Order& o) {
    {
      std::lock_guard lock(sink.mu);
      std::uint64_t& min = sink.next_min[o.customer];
      if (o.order_no < min) bad.fetch_add(1);  // reordered or duplicated
      min = o.order_no + 1;
    }
    if (o.tax_cents != o.amount_cents / 5) bad.fetch_add(1);  // not enriched
    sink.count.fetch_add(1, std::memory_order_relaxed);
  };
  engine.subscribe("orders.large",
                   [&](const ringflow::EventView& e) { see(large_sink, decode(e)); });
  engine.subscribe("orders.standard",
                   [&](const ringflow::EventView& e) { see(standard_sink, decode(e)); });
  engine.start();

  constexpr int kThreads = 4;
  constexpr std::uint32_t kCustomersPerThread = 50;
  constexpr std::uint64_t kOrdersPerCustomer = 200;
  std::atomic<std::uint64_t> invalid_sent{0};
  std::vector<std::thread> request_threads;
  request_threads.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    request_threads.emplace_back([&, t] {
      ringflow::Producer producer = engine.make_producer();
      std::vector<std::uint64_t> next(kCustomersPerThread, 0);
      for (std::uint64_t round = 0; round < kOrdersPerCustomer; ++round) {
        for (std::uint32_t c = 0; c < kCustomersPerThread; ++c) {
          Order o{};
          o.customer = static_cast<std::uint32_t>(t) * 1000 + c;
          o.order_no = next[c]++;
          o.amount_cents = (std::uint64_t{o.customer} * 7919 + o.order_no * 104729) % 200'000;
          o.checksum = checksum(o);
          const std::string key = "customer-" + std::to_string(o.customer);
          const std::string_view bytes(reinterpret_cast<const char*>(&o), sizeof o);
          while (producer.publish(placed, key, bytes) == ringflow::PublishStatus::full) {
            std::this_thread::yield();  // this service's backpressure: wait for space
          }
          if (round == kOrdersPerCustomer - 1 && c == 0) {
            // A corrupted order the validate stage must drop.
            Order broken = o;
            broken.checksum ^= 1;
            const std::string_view junk(reinterpret_cast<const char*>(&broken), sizeof broken);
            while (producer.publish(placed, "junk", junk) == ringflow::PublishStatus::full) {
              std::this_thread::yield();
            }
            invalid_sent.fetch_add(1);
          }
        }
      }
    });
  }
  for (auto& th : request_threads)
    th.join();
  engine.drain();
  const ringflow::EngineStats st = engine.stats();
  engine.stop();

  const std::uint64_t expected = std::uint64_t{kThreads} * kCustomersPerThread * kOrdersPerCustomer;
  const std::uint64_t got = large_sink.count.load() + standard_sink.count.load();
  std::printf(
      "orders: %llu published, %llu large, %llu standard, %llu rejected by validate, "
      "%llu ordering/enrichment errors\n",
      static_cast<unsigned long long>(st.published_count(ringflow::PublishStatus::ok)),
      static_cast<unsigned long long>(large_sink.count.load()),
      static_cast<unsigned long long>(standard_sink.count.load()),
      static_cast<unsigned long long>(st.filtered), static_cast<unsigned long long>(bad.load()));
  const bool ok = got == expected && bad.load() == 0 && st.filtered == invalid_sent.load() &&
                  large_sink.count.load() > 0 && standard_sink.count.load() > 0;
  std::puts(ok ? "order_service: ok" : "order_service: FAILED");
  return ok ? 0 : 1;
}
