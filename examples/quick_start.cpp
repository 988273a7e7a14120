// Quick start (the README's "Embedding it"): orders are validated, routed by amount and handled
// by two subscribers. Exits non-zero unless every order was handled. ctest builds it against the
// installed package and runs it.
//
//   quick_start [CONFIG.toml]   default: EngineConfig{}; `cmake --install` puts the shipped
//                               configs in <prefix>/share/ringflow/configs/
#include <ringflow/ringflow.hpp>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <span>
#include <string>
#include <thread>

namespace {

struct Order {  // what this service publishes
  std::uint64_t id;
  std::uint64_t amount_cents;
};

Order order_of(const ringflow::EventView& e) {  // after "validate" checked the size
  Order o{};
  std::memcpy(&o, e.payload().data(), sizeof o);
  return o;
}

}  // namespace

int main(int argc, char** argv) try {
  // The defaults run on any machine with 2 or more cores; a TOML file may change any of them.
  const ringflow::EngineConfig cfg =
      argc > 1 ? ringflow::load_config(argv[1]) : ringflow::EngineConfig{};
  ringflow::Engine engine(cfg);  // checks cfg on this machine; ConfigError names every problem
  const ringflow::TopicId placed = engine.add_topic("orders.placed");
  const ringflow::TopicId large = engine.add_topic("orders.large");
  const ringflow::TopicId standard = engine.add_topic("orders.standard");

  engine.pipeline()
      .filter("validate",  // what it drops is counted in stats().filtered
              [](const ringflow::EventView& e) { return e.payload().size() == sizeof(Order); })
      .route("by-amount", [&](const ringflow::EventView& e) {
        return order_of(e).amount_cents >= 100'000 ? large : standard;
      });

  std::atomic<std::uint64_t> reviewed{0};
  std::atomic<std::uint64_t> shipped{0};
  engine.subscribe("orders.large",
                   [&](const ringflow::EventView&) { reviewed.fetch_add(1); });  // returns ok
  engine.subscribe("orders.standard", [&](const ringflow::EventView&) -> ringflow::Outcome {
    shipped.fetch_add(1);
    return ringflow::Outcome::ok();  // or retry(delay), or fail("why"): a dead letter
  });
  engine.start();

  // Each publishing thread makes its own producer. PublishOptions adds a deadline, the urgent
  // lane or an idempotency key (see "Delivery semantics").
  ringflow::Producer producer = engine.make_producer();
  constexpr std::uint64_t kOrders = 1000;
  for (std::uint64_t id = 1; id <= kOrders; ++id) {
    const Order order{id, id * 397 % 200'000};
    const std::string customer = "customer-" + std::to_string(id % 16);  // key: kept in order
    ringflow::PublishStatus status = ringflow::PublishStatus::full;
    while ((status = producer.publish(placed, customer, std::as_bytes(std::span(&order, 1)))) ==
           ringflow::PublishStatus::full) {
      std::this_thread::yield();  // backpressure: this program waits for space
    }
    if (status != ringflow::PublishStatus::ok) {
      std::fprintf(stderr, "publish: %s\n", std::string(ringflow::to_string(status)).c_str());
      return 1;
    }
  }
  engine.drain();  // every event accepted so far has been processed
  const ringflow::EngineStats stats = engine.stats();
  engine.stop();  // the destructor would do it too

  const std::uint64_t handled = reviewed.load() + shipped.load();
  std::printf("%llu orders: %llu reviewed, %llu shipped, %llu filtered, %llu dead letters\n",
              static_cast<unsigned long long>(kOrders),
              static_cast<unsigned long long>(reviewed.load()),
              static_cast<unsigned long long>(shipped.load()),
              static_cast<unsigned long long>(stats.filtered),
              static_cast<unsigned long long>(stats.dead_letters_total()));
  return handled == kOrders ? 0 : 1;
} catch (const std::exception& e) {  // ConfigError, or a bad topic name
  std::fprintf(stderr, "quick_start: %s\n", e.what());
  return 1;
}
