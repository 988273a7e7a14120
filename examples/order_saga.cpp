// A saga on ringflow: order -> reserve stock -> charge payment -> complete; when the charge
// fails, compensating events release the stock and cancel the order. Every step is an event
// published by the previous step's handler with ringflow::caused_by(), so each order's chain
// can be followed by causation id, and all of it shares the order's correlation id.
// Exits non-zero if the final state or any chain is wrong.
//
//   build/release/examples/ringflow_example_order_saga

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "ringflow/ringflow.hpp"

namespace {

struct Order {
  std::uint32_t order_no;
  std::uint32_t customer;
  std::uint32_t sku;
  std::uint32_t qty;
};

Order decode(const ringflow::EventView& e) {
  Order o{};
  std::memcpy(&o, e.payload().data(), std::min(sizeof o, e.payload().size()));
  return o;
}

std::string_view bytes(const Order& o) {
  return {reinterpret_cast<const char*>(&o), sizeof o};
}

}  // namespace

int main() {
  ringflow::EngineConfig cfg;
  cfg.pin_threads = false;
  ringflow::Engine engine(cfg);
  const auto placed = engine.add_topic("orders.placed");
  const auto reserved = engine.add_topic("stock.reserved");
  const auto charged = engine.add_topic("payment.charged");
  const auto failed = engine.add_topic("payment.failed");
  const auto released = engine.add_topic("stock.released");
  const auto completed = engine.add_topic("orders.completed");
  const auto cancelled = engine.add_topic("orders.cancelled");

  // Service state. One shard runs every handler (cfg.shards = 1), so the state needs no lock.
  std::map<std::uint32_t, int> stock = {{1, 50}, {2, 5}};
  std::map<std::uint32_t, std::int64_t> balance;  // customer -> cents
  for (std::uint32_t c = 0; c < 10; ++c)
    balance[c] = c % 3 == 0 ? 0 : 1'000'000;     // some broke
  std::map<std::uint32_t, std::string> outcome;  // order -> "completed" / "cancelled: ..."

  // Follow-up events are published from handlers, on the shard thread, by one producer.
  ringflow::Producer saga = engine.make_producer();
  const auto next = [&](ringflow::TopicId t, const ringflow::EventView& cause, const Order& o) {
    const auto s = saga.publish(t, cause.key(), bytes(o), ringflow::caused_by(cause));
    // A full ring is backpressure: ask for a retry, the step runs again shortly.
    return s == ringflow::PublishStatus::ok ? ringflow::Outcome::ok() : ringflow::Outcome::retry();
  };
  ringflow::SubscribeOptions patient;
  patient.max_attempts = 1000;

  engine.subscribe("orders.placed", ringflow::Handler([&](const ringflow::EventView& e) {
                     const Order o = decode(e);
                     if (stock[o.sku] < static_cast<int>(o.qty)) return next(cancelled, e, o);
                     // Change state only once the next step is published: a retried step
                     // (full ring) must not reserve twice.
                     const ringflow::Outcome r = next(reserved, e, o);
                     if (r.kind() == ringflow::Outcome::Kind::ok) {
                       stock[o.sku] -= static_cast<int>(o.qty);
                     }
                     return r;
                   }),
                   patient);
  engine.subscribe("stock.reserved", ringflow::Handler([&](const ringflow::EventView& e) {
                     const Order o = decode(e);
                     const std::int64_t price = std::int64_t{1000} * o.qty;
                     if (balance[o.customer] < price) return next(failed, e, o);
                     const ringflow::Outcome r = next(charged, e, o);
                     if (r.kind() == ringflow::Outcome::Kind::ok) balance[o.customer] -= price;
                     return r;
                   }),
                   patient);
  engine.subscribe("payment.charged", ringflow::Handler([&](const ringflow::EventView& e) {
                     return next(completed, e, decode(e));
                   }),
                   patient);
  engine.subscribe(
      "payment.failed",  // compensation: give the stock back
      ringflow::Handler([&](const ringflow::EventView& e) { return next(released, e, decode(e)); }),
      patient);
  engine.subscribe("stock.released", ringflow::Handler([&](const ringflow::EventView& e) {
                     const Order o = decode(e);
                     const ringflow::Outcome r = next(cancelled, e, o);
                     if (r.kind() == ringflow::Outcome::Kind::ok)
                       stock[o.sku] += static_cast<int>(o.qty);
                     return r;
                   }),
                   patient);
  engine.subscribe("orders.completed", [&](const ringflow::EventView& e) {
    outcome[decode(e).order_no] = "completed";
  });
  engine.subscribe("orders.cancelled", [&](const ringflow::EventView& e) {
    outcome[decode(e).order_no] = "cancelled";
  });

  // The journal: every event with its topic and causation (a '>' pattern sees all but DLQs).
  struct Entry {
    std::uint32_t topic;
    std::uint64_t causation;
    std::uint64_t correlation;
  };
  std::mutex journal_mu;  // only for reading it from main() after drain
  std::map<std::uint64_t, Entry> journal;
  engine.subscribe(">", [&](const ringflow::EventView& e) {
    std::lock_guard lock(journal_mu);
    journal[e.id()] = Entry{e.topic().value, e.causation_id(), e.correlation_id()};
  });
  engine.start();

  ringflow::Producer shop = engine.make_producer();
  constexpr std::uint32_t kOrders = 40;
  for (std::uint32_t n = 0; n < kOrders; ++n) {
    const Order o{n, n % 10, n % 2 == 0 ? 1U : 2U, 1 + n % 3};
    ringflow::PublishOptions opts;
    opts.correlation_id = 1'000'000 + n;  // the order's trace id
    while (shop.publish(placed, "order-" + std::to_string(n), bytes(o), opts) ==
           ringflow::PublishStatus::full) {
    }
  }
  // Each step publishes the next while being processed: drain until nothing new appears.
  std::uint64_t before = 0;
  for (;;) {
    engine.drain();
    const std::uint64_t now = engine.stats().appended;
    if (now == before) break;
    before = now;
  }
  engine.stop();

  // Check: every order resolved, stock conserved, and each chain well-formed.
  int errors = 0;
  std::uint32_t n_completed = 0;
  std::uint32_t n_compensated = 0;
  int sold[3] = {0, 0, 0};
  {
    std::lock_guard lock(journal_mu);
    for (std::uint32_t n = 0; n < kOrders; ++n) {
      if (outcome.count(n) == 0) {
        std::printf("order %u never resolved\n", n);
        ++errors;
      }
    }
    for (const auto& [id, entry] : journal) {
      if (entry.topic != completed.value && entry.topic != cancelled.value) continue;
      // Walk back to orders.placed; every hop must share the correlation id.
      std::vector<std::uint32_t> chain{entry.topic};
      std::uint64_t cur = entry.causation;
      while (cur != 0) {
        const auto it = journal.find(cur);
        if (it == journal.end()) break;
        if (it->second.correlation != entry.correlation) ++errors;
        chain.push_back(it->second.topic);
        cur = it->second.causation;
      }
      if (chain.back() != placed.value) {
        std::printf(
            "a chain does not lead back to orders.placed (length %zu, last topic %u, cause %llu)\n",
            chain.size(), chain.back(), static_cast<unsigned long long>(cur));
        ++errors;
      }
      if (entry.topic == completed.value) {
        ++n_completed;
        errors += chain.size() == 4 ? 0 : 1;  // completed <- charged <- reserved <- placed
      } else if (chain.size() == 5) {         // cancelled <- released <- failed <- reserved
        ++n_compensated;                      //           <- placed
        if (chain[1] != released.value || chain[2] != failed.value) ++errors;
      }
    }
  }
  for (std::uint32_t n = 0; n < kOrders; ++n) {
    if (outcome[n] == "completed") sold[n % 2 == 0 ? 1 : 2] += static_cast<int>(1 + n % 3);
  }
  if (stock[1] != 50 - sold[1] || stock[2] != 5 - sold[2]) {
    std::printf("stock not conserved: sku1 %d (sold %d), sku2 %d (sold %d)\n", stock[1], sold[1],
                stock[2], sold[2]);
    ++errors;
  }
  std::printf(
      "saga: %u orders, %u completed, %u compensated (payment failed, stock released), "
      "%u cancelled for lack of stock, %d errors\n",
      kOrders, n_completed, n_compensated, kOrders - n_completed - n_compensated, errors);
  const bool ok = errors == 0 && n_completed > 0 && n_compensated > 0;
  std::puts(ok ? "order_saga: ok" : "order_saga: FAILED");
  return ok ? 0 : 1;
}
