// Randomized soak: engines with random configs are started, loaded and stopped in a loop until
// the time is up. Each round draws ring and batch sizes, wait strategy, backpressure policy,
// shard and partition counts, retry capacity and idempotency window; producer threads join and
// leave (each publishes a while through a producer with its own backpressure policy, then drops
// it); events carry deadlines, idempotency keys (some repeated), urgent priority; a filter and
// a throwing map stage drop some events; one subscription's handler returns ok, throws, fails,
// retries, blocks briefly or calls the engine's read-only API; pub-sub and consumer-group
// subscriptions check per-key order; a dead-letter subscription counts what it gets. drain()
// runs at random times and stop() at a random time, often while producers still publish. The
// handler watchdog is off, tight (1 ms: it samples and reports the briefly blocking handler)
// or at its default. The run ends with the laws' totals over every round.
//
// After each round, from the partition logs and what the handlers saw:
//   - the accounting laws of the README's Guarantees hold exactly (engine, topic, subscription);
//   - every accepted event was appended once, or dead-lettered as expired at ingest, or dropped
//     as a duplicate of an idempotency key another accepted event carried (and stats count
//     exactly those);
//   - every appended event that passed the stages reached each matching subscription exactly
//     once and ended there exactly once (ok, or one dead letter from that subscription);
//   - events of one key from one producer on one lane reached each ordered subscription in
//     publish order.
//
// RINGFLOW_SOAK_SECONDS (default 60) bounds the run; RINGFLOW_SOAK_SEED replays the random
// choices (thread timing differs between runs). Every round runs under a watchdog: a hang
// prints the seed, round and phase and exits instead of blocking the test run.
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "ringflow/ringflow.hpp"

namespace {

using namespace std::chrono_literals;
using ringflow::BackpressurePolicy;
using ringflow::Engine;
using ringflow::EngineConfig;
using ringflow::EventView;
using ringflow::Outcome;
using ringflow::PublishStatus;
using ringflow::ReadStatus;
using ringflow::TopicId;
using ringflow::WaitStrategyKind;

constexpr std::size_t kMaxEvents = 20000;  // ids per round
constexpr std::size_t kMaxProducers = 48;  // producer instances per round
constexpr std::size_t kKeys = 16;
constexpr std::size_t kTopics = 3;  // soak.a, soak.b, soak.c.d
constexpr std::uint32_t kNoSubscription = UINT32_MAX;
constexpr std::uint8_t kMapped = 0xAB;  // what the map stage writes into Payload::mark
constexpr auto kWatchdog = std::chrono::seconds(240);

std::uint64_t mix(std::uint64_t x) noexcept {  // splitmix64 finaliser
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

/// What every round's check counted, summed over the run (printed at the end).
struct Totals {
  std::uint64_t rounds = 0, accepted = 0, appended = 0, expired = 0, duplicates = 0;
  std::uint64_t filtered = 0, stage_failures = 0, dead_letters = 0, deliveries = 0;
  std::uint64_t handler_stalls = 0, watchdog_records = 0;
};
Totals g_totals;

/// What every event carries (the dead letter of an event carries the same bytes).
struct Payload {
  std::uint64_t id;
  std::uint32_t producer;  ///< producer instance of the round
  std::uint32_t seq;       ///< per (producer, key, lane), from 1
  std::uint8_t key;
  std::uint8_t lane;  ///< 0 normal, 1 urgent
  std::uint8_t mark;  ///< 0 as published; the map stage sets kMapped
  std::uint8_t pad[5];
};
static_assert(sizeof(Payload) == 24);

Payload payload_of(const EventView& e) {
  Payload p{};
  if (e.payload().size() == sizeof p) std::memcpy(&p, e.payload().data(), sizeof p);
  return p;
}

/// What happens to an event, chosen from its id so every party agrees.
struct Fate {
  bool filtered;
  bool stage_throws;
  int behaviour;  ///< subscription 0's handler, 0..99
};

/// Producer-side record of one id (written by its producer thread, read after the round).
struct Sent {
  bool accepted = false;
  std::uint8_t topic = 0;
  std::uint64_t idem = 0;
};

/// Counters of one subscription, by id.
struct PerId {
  std::unique_ptr<std::atomic<std::uint32_t>[]> first =
      std::make_unique<std::atomic<std::uint32_t>[]>(kMaxEvents);
  std::unique_ptr<std::atomic<std::uint32_t>[]> ok =
      std::make_unique<std::atomic<std::uint32_t>[]>(kMaxEvents);
};

struct Rng {
  std::mt19937_64 g;
  explicit Rng(std::uint64_t seed) : g(seed) {}
  std::uint64_t below(std::uint64_t n) {
    return std::uniform_int_distribution<std::uint64_t>(0, n - 1)(g);
  }
  bool chance(double p) { return std::uniform_real_distribution<double>(0, 1)(g) < p; }
  template <class T, std::size_t N>
  T pick(const std::array<T, N>& a) {
    return a[below(N)];
  }
};

std::uint64_t env_u64(const char* name, std::uint64_t fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  return std::strtoull(v, nullptr, 0);
}

/// Exits the process (with the seed) when a round does not finish in time: a hung engine
/// thread cannot be joined, and the test must never sit until the ctest timeout.
class Watchdog {
 public:
  Watchdog(std::uint64_t seed, std::uint64_t round) : seed_(seed), round_(round) {
    thread_ = std::thread([this] {
      std::unique_lock lock(mu_);
      if (!cv_.wait_for(lock, kWatchdog, [this] { return done_; })) {
        std::fprintf(stderr,
                     "FAILED: soak round %llu did not finish within %lld s in phase '%s' (hang); "
                     "replay with RINGFLOW_SOAK_SEED=%llu\n",
                     static_cast<unsigned long long>(round_),
                     static_cast<long long>(kWatchdog.count()), phase_,
                     static_cast<unsigned long long>(seed_));
        std::fflush(stderr);
        std::_Exit(1);
      }
    });
  }
  ~Watchdog() {
    {
      std::lock_guard lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;
  void phase(const char* p) {
    std::lock_guard lock(mu_);
    phase_ = p;
  }

 private:
  std::uint64_t seed_;
  std::uint64_t round_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  const char* phase_ = "setup";
  std::thread thread_;
};

class Round {
 public:
  Round(std::uint64_t seed, std::uint64_t round)
      : seed_(seed), round_(round), rng_(mix(seed ^ mix(round))) {}

  /// Runs one engine from construction to stop() and checks it. Returns a one-line summary.
  std::string run() {
    Watchdog dog(seed_, round_);
    EngineConfig cfg = random_config();
    Engine engine(cfg);
    engine_ = &engine;
    engine.set_log_sink([this](const ringflow::LogRecord& r) {
      if (r.component == "watchdog") watchdog_records_.fetch_add(1);
    });
    const std::array<std::string, kTopics> names{"soak.a", "soak.b", "soak.c.d"};
    ringflow::TopicOptions to;
    to.dead_letter_topic = "dlq.soak";
    for (std::size_t t = 0; t < kTopics; ++t)
      topics_[t] = engine.add_topic(names[t], to);
    dlq_ = engine.topic("dlq.soak");

    engine.pipeline()
        .filter("drop-some",
                [this](const EventView& e) { return !fate(payload_of(e).id).filtered; })
        .map("mark", [this](ringflow::Event& e) {
          const Payload p = payload_of(e);
          if (fate(p.id).stage_throws) throw std::runtime_error("map stage refuses this event");
          e.mutable_payload()[offsetof(Payload, mark)] = std::byte{kMapped};
        });

    ringflow::SubscribeOptions o0;
    o0.max_attempts = static_cast<std::uint32_t>(1 + rng_.below(4));
    o0.retry_backoff = std::chrono::microseconds(20 + rng_.below(500));
    o0.retry_backoff_max = 2ms;
    sub_[0] = engine.subscribe(
        "soak.>", [this](const EventView& e) { return behave(e); }, o0);
    sub_[1] = engine.subscribe("soak.*", [this](const EventView& e) { return ordered(1, e); });
    ringflow::SubscribeOptions g;
    g.group = "members";
    sub_[2] = engine.subscribe(
        "soak.a", [this](const EventView& e) { return ordered(2, e); }, g);
    sub_[3] = engine.subscribe(
        "soak.a", [this](const EventView& e) { return ordered(3, e); }, g);
    sub_[4] = engine.subscribe("dlq.soak", [this](const EventView& e) {
      const Payload p = payload_of(e);
      if (e.dead_letter() == nullptr || p.id >= kMaxEvents) {
        bad_.fetch_add(1);
      } else {
        dlq_seen_[p.id].fetch_add(1);
      }
      return Outcome::ok();
    });
    engine.start();

    dog.phase("load");
    const auto publish_for = std::chrono::milliseconds(100 + rng_.below(900));
    const std::size_t threads = 1 + rng_.below(3);
    std::vector<std::thread> producers;
    for (std::size_t i = 0; i < threads; ++i)
      producers.emplace_back([this, i] { produce(mix(seed_ ^ mix(round_ * 16 + i + 1))); });
    const auto until = std::chrono::steady_clock::now() + publish_for;
    while (std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1 + rng_.below(40)));
      const auto action = rng_.below(4);
      if (action == 0) {
        dog.phase("drain under load");
        engine.drain();
        dog.phase("load");
      } else if (action == 1) {
        (void)engine.stats();
      }
    }
    const bool stop_under_load = rng_.chance(0.5);
    if (stop_under_load) {
      dog.phase("stop under load");
      engine.stop();
      stop_producers_.store(true);
    } else {
      stop_producers_.store(true);
    }
    dog.phase("join producers");
    for (auto& t : producers)
      t.join();
    if (!stop_under_load) {
      dog.phase("drain");
      engine.drain();
      dog.phase("stop");
      engine.stop();
    }
    dog.phase("check");
    check(engine);
    engine_ = nullptr;

    char line[256];
    std::snprintf(
        line, sizeof line,
        "round %llu: %u partitions, %u shards, ring %zu, batch %zu, %s, %s, %zu producer "
        "thread(s), %u producers, %llu events, %s",
        static_cast<unsigned long long>(round_), cfg.partitions, cfg.shards, cfg.ring_capacity,
        cfg.batch_size, std::string(ringflow::to_string(cfg.wait_strategy)).c_str(),
        std::string(ringflow::to_string(cfg.backpressure)).c_str(), threads, next_producer_.load(),
        static_cast<unsigned long long>(std::min<std::uint64_t>(next_id_.load(), kMaxEvents)),
        stop_under_load ? "stopped under load" : "drained, then stopped");
    return line;
  }

 private:
  EngineConfig random_config() {
    EngineConfig c;
    c.pin_threads = false;
    c.partitions = static_cast<std::uint32_t>(1U << rng_.below(3));  // 1, 2, 4
    c.shards = static_cast<std::uint32_t>(1 + rng_.below(std::min<std::uint32_t>(c.partitions, 2)));
    c.graph_workers_per_shard = rng_.chance(0.25) ? 1 : 0;
#if defined(RINGFLOW_TSAN)
    // Debian's oneTBB is not instrumented: under TSan no TBB worker threads (tests/tsan.supp).
    c.graph_workers_per_shard = 0;
#endif
    c.max_producers = 8;
    c.ring_capacity = std::size_t{1} << (3 + rng_.below(10));  // 8 .. 4096
    c.batch_size = std::min<std::size_t>(c.ring_capacity,
                                         rng_.pick(std::array<std::size_t, 5>{1, 3, 16, 64, 256}));
    c.wait_strategy = rng_.pick(std::array<WaitStrategyKind, 3>{
        WaitStrategyKind::park, WaitStrategyKind::spin_yield, WaitStrategyKind::busy_spin});
    if (c.wait_strategy == WaitStrategyKind::busy_spin && c.shards > 1)
      c.wait_strategy = WaitStrategyKind::park;
    c.urgent_ratio = static_cast<std::uint32_t>(1 + rng_.below(8));
    c.backpressure = rng_.pick(std::array<BackpressurePolicy, 3>{
        BackpressurePolicy::fail_fast, BackpressurePolicy::spin, BackpressurePolicy::park});
    c.backpressure_timeout = std::chrono::microseconds(50 + rng_.below(2000));
    c.segment_bytes = std::size_t{512} << 10;
    c.retention_bytes = std::size_t{8}
                        << 20;  // never evicts kMaxEvents events: the check reads all
    c.idempotency_window = rng_.chance(0.2) ? 0 : std::size_t{1} << (4 + rng_.below(10));
    c.retry_capacity = std::size_t{1} << (2 + rng_.below(10));  // small: retry_overflow happens
    c.allocator = ringflow::AllocatorKind::system;
    // The watchdog samples the shards while they run: off, tight (the handlers that hold up
    // their shard briefly may trip it), or the default.
    c.handler_watchdog = rng_.pick(std::array<std::chrono::milliseconds, 3>{0ms, 1ms, 2000ms});
    return c;
  }

  Fate fate(std::uint64_t id) const noexcept {
    const std::uint64_t h = mix(seed_ ^ mix(round_) ^ (id * 0x9E37U));
    return Fate{h % 97 == 0, h % 89 == 1, static_cast<int>((h >> 20) % 100)};
  }

  Outcome behave(const EventView& e) {
    const Payload p = payload_of(e);
    if (p.id >= kMaxEvents) {
      bad_.fetch_add(1);
      return Outcome::ok();
    }
    if (e.attempt() == 1) per_sub_[0].first[p.id].fetch_add(1);
    const int b = fate(p.id).behaviour;
    auto ok = [&] {
      per_sub_[0].ok[p.id].fetch_add(1);
      return Outcome::ok();
    };
    if (b < 45) return ok();
    if (b < 52) throw std::runtime_error("handler throws");
    if (b < 58) return Outcome::fail("handler fails");
    if (b < 70) return e.attempt() >= 2 ? ok() : Outcome::retry();
    if (b < 76) {  // holds up its shard briefly
      std::this_thread::sleep_for(std::chrono::microseconds(20 + (p.id % 180)));
      return ok();
    }
    if (b < 92) {  // the read-only API, from a handler
      Engine& en = *engine_;
      if (en.topic_name(e.topic()).substr(0, 5) != "soak.") bad_.fetch_add(1);
      if (!en.find_topic("dlq.soak").has_value()) bad_.fetch_add(1);
      ringflow::PartitionReader r = en.reader(e.partition());
      ringflow::StoredEvent s;
      if (r.seek(e.offset()) != ReadStatus::ok || r.next(s) != ReadStatus::ok || s.id != e.id() ||
          s.payload.size() != sizeof(Payload)) {
        bad_.fetch_add(1);
      }
      if (p.id % 50 == 0) (void)en.stats();
      return ok();
    }
    return Outcome::retry();  // until its attempts run out
  }

  Outcome ordered(int sub, const EventView& e) {
    const Payload p = payload_of(e);
    if (p.id >= kMaxEvents || p.producer >= kMaxProducers || p.key >= kKeys || p.lane > 1 ||
        p.mark != kMapped) {
      bad_.fetch_add(1);
      return Outcome::ok();
    }
    per_sub_[sub].first[p.id].fetch_add(1);
    per_sub_[sub].ok[p.id].fetch_add(1);
    auto& last = last_seq_[sub - 1][p.producer][p.key][p.lane];
    const std::uint32_t prev = last.exchange(p.seq);
    if (p.seq <= prev) order_violations_.fetch_add(1);
    return Outcome::ok();
  }

  /// One producer thread: makes producers, publishes a while through each, drops them, until
  /// told to stop, the engine stops, or the round's ids or producer instances run out.
  void produce(std::uint64_t seed) {
    Rng rng(seed);
    std::uint64_t idem_counter = 0;
    while (!stop_producers_.load()) {
      const std::uint32_t me = next_producer_.fetch_add(1);
      if (me >= kMaxProducers) return;
      ringflow::ProducerOptions po;
      po.backpressure = rng.pick(std::array<BackpressurePolicy, 3>{
          BackpressurePolicy::fail_fast, BackpressurePolicy::spin, BackpressurePolicy::park});
      po.backpressure_timeout = std::chrono::microseconds(10 + rng.below(1000));
      std::optional<ringflow::Producer> producer;
      try {
        producer.emplace(engine_->make_producer(po));
      } catch (const std::logic_error&) {
        return;  // the engine stopped
      } catch (const std::runtime_error&) {
        std::this_thread::yield();  // max_producers in use by the other threads right now
        continue;
      }
      std::array<std::array<std::uint32_t, 2>, kKeys> seq{};
      std::array<std::uint64_t, kKeys> last_idem{};
      const std::uint64_t count = 1 + rng.below(3000);
      for (std::uint64_t n = 0; n < count && !stop_producers_.load(); ++n) {
        const std::uint64_t id = next_id_.fetch_add(1);
        if (id >= kMaxEvents) return;
        Payload p{};
        p.id = id;
        p.producer = me;
        p.key = static_cast<std::uint8_t>(rng.below(kKeys));
        p.lane = rng.chance(0.1) ? 1 : 0;
        p.seq = ++seq[p.key][p.lane];
        const auto topic = static_cast<std::uint8_t>(rng.below(kTopics));
        ringflow::PublishOptions opts;
        opts.priority = p.lane == 1 ? ringflow::Priority::urgent : ringflow::Priority::normal;
        bool past_deadline = false;
        if (rng.chance(0.1)) {
          opts.deadline_ns = ringflow::now_ns() + static_cast<std::int64_t>(rng.below(3'000'000));
        } else if (rng.chance(0.02)) {
          opts.deadline_ns = ringflow::now_ns() - 1;
          past_deadline = true;
        }
        if (last_idem[p.key] != 0 && rng.chance(0.05)) {
          opts.idempotency_key = last_idem[p.key];  // a duplicate (same key, same partition)
        } else if (rng.chance(0.2)) {
          opts.idempotency_key = (std::uint64_t{me} << 40) | ++idem_counter;
          last_idem[p.key] = opts.idempotency_key;
        }
        const char key[3] = {'k', static_cast<char>('a' + p.key), '\0'};
        sent_[id].topic = topic;
        sent_[id].idem = opts.idempotency_key;
        PublishStatus s = PublishStatus::full;
        for (int tries = 0; tries < 4 && s == PublishStatus::full; ++tries) {
          s = producer->publish(
              topics_[topic], key,
              std::span<const std::byte>(reinterpret_cast<const std::byte*>(&p), sizeof p), opts);
          if (s == PublishStatus::full) std::this_thread::yield();
        }
        switch (s) {
          case PublishStatus::ok:
            sent_[id].accepted = true;
            accepted_.fetch_add(1);
            break;
          case PublishStatus::full:
            break;  // given up: not accepted
          case PublishStatus::stopped:
            return;
          case PublishStatus::expired:  // a deadline already passed when publish() ran
            if (!past_deadline &&
                (opts.deadline_ns == 0 || opts.deadline_ns > ringflow::now_ns())) {
              unexpected_status_.fetch_add(1);
              last_unexpected_.store(static_cast<int>(s));
            }
            break;
          default:
            unexpected_status_.fetch_add(1);
            last_unexpected_.store(static_cast<int>(s));
            break;
        }
      }
    }
  }

  void check(Engine& engine) {
    const std::string where =
        "round " + std::to_string(round_) + " (RINGFLOW_SOAK_SEED=" + std::to_string(seed_) + ")";
    SCOPED_TRACE(where);
    EXPECT_EQ(bad_.load(), 0U) << "handlers saw malformed events or a failed read-only call";
    EXPECT_EQ(unexpected_status_.load(), 0U)
        << "publish() returned an unexpected status, e.g. " << last_unexpected_.load();
    EXPECT_EQ(order_violations_.load(), 0U) << "per-key order broken";

    // Read every partition log: appended events and dead letters, by id.
    std::vector<std::uint8_t> appended(kMaxEvents, 0);
    std::vector<std::uint8_t> expired_at_ingest(kMaxEvents, 0);
    std::vector<std::uint8_t> dead_by_sub0(kMaxEvents, 0);
    std::uint64_t dead_letters = 0;
    for (std::uint32_t part = 0; part < engine.partitions(); ++part) {
      ASSERT_EQ(engine.log(part).first_offset(), 0U)
          << "retention evicted records; the check needs all";
      ringflow::PartitionReader r = engine.reader(part);
      ringflow::StoredEvent s;
      while (r.next(s) == ReadStatus::ok) {
        Payload p{};
        ASSERT_EQ(s.payload.size(), sizeof p);
        std::memcpy(&p, s.payload.data(), sizeof p);
        ASSERT_LT(p.id, kMaxEvents);
        if (s.topic == dlq_) {
          ++dead_letters;
          ASSERT_TRUE(s.dead_letter.has_value());
          if (s.dead_letter->subscription == kNoSubscription) {
            EXPECT_EQ(s.dead_letter->reason, ringflow::DeadLetterReason::expired);
            ++expired_at_ingest[p.id];
          } else {
            EXPECT_EQ(s.dead_letter->subscription, sub_[0]) << "only subscription 0 gives up";
            ++dead_by_sub0[p.id];
            if (fate(p.id).behaviour >= 45 && fate(p.id).behaviour < 58) {
              EXPECT_EQ(s.dead_letter->reason, ringflow::DeadLetterReason::failed) << "id " << p.id;
            }
          }
        } else {
          ++appended[p.id];
          EXPECT_EQ(s.topic, topics_[sent_[p.id].topic]) << "id " << p.id;
        }
      }
    }

    // Idempotency keys carried by accepted events.
    std::unordered_map<std::uint64_t, std::uint32_t> idem_uses;
    const std::uint64_t ids = std::min<std::uint64_t>(next_id_.load(), kMaxEvents);
    for (std::uint64_t id = 0; id < ids; ++id) {
      if (sent_[id].accepted && sent_[id].idem != 0) ++idem_uses[sent_[id].idem];
    }

    std::uint64_t accepted = 0;
    std::uint64_t n_appended = 0;
    std::uint64_t n_expired = 0;
    std::uint64_t n_duplicates = 0;
    std::uint64_t n_filtered = 0;
    std::uint64_t n_stage_failures = 0;
    std::array<std::uint64_t, kTopics> topic_accepted{};
    int reported = 0;
    auto report = [&](std::uint64_t id, const char* what) {
      if (++reported <= 10) ADD_FAILURE() << "id " << id << ": " << what;
    };
    for (std::uint64_t id = 0; id < kMaxEvents; ++id) {
      const Sent& s = sent_[id];
      const std::uint32_t first0 = per_sub_[0].first[id].load();
      const std::uint32_t ok0 = per_sub_[0].ok[id].load();
      const std::uint32_t ok1 = per_sub_[1].ok[id].load();
      const std::uint32_t okg = per_sub_[2].ok[id].load() + per_sub_[3].ok[id].load();
      const std::uint32_t dlq = dlq_seen_[id].load();
      if (!s.accepted) {
        if (appended[id] + expired_at_ingest[id] + first0 + ok1 + okg + dlq != 0) {
          report(id, "an event publish() did not accept was stored or delivered");
        }
        continue;
      }
      ++accepted;
      ++topic_accepted[s.topic];
      if (appended[id] + expired_at_ingest[id] > 1) report(id, "stored more than once");
      if (dlq != expired_at_ingest[id] + dead_by_sub0[id])
        report(id, "the dead-letter subscription did not get each dead letter once");
      if (expired_at_ingest[id] == 1) {
        ++n_expired;
        if (first0 + ok1 + okg != 0)
          report(id, "an event that expired before ingest was delivered");
        continue;
      }
      if (appended[id] == 0) {
        ++n_duplicates;
        if (s.idem == 0 || idem_uses[s.idem] < 2)
          report(id, "an accepted event was lost (not stored, not a duplicate)");
        continue;
      }
      ++n_appended;
      const Fate f = fate(id);
      if (f.filtered || f.stage_throws) {
        f.filtered ? ++n_filtered : ++n_stage_failures;
        if (first0 + ok1 + okg + dead_by_sub0[id] != 0)
          report(id, "an event a stage dropped was delivered");
        continue;
      }
      if (first0 != 1) report(id, "subscription 0 did not get the event exactly once");
      if (ok0 + dead_by_sub0[id] != 1)
        report(id, "subscription 0 did not end the event exactly once (ok or dead letter)");
      const bool pubsub = s.topic != 2;  // soak.* matches soak.a and soak.b
      const bool group = s.topic == 0;   // the group is on soak.a
      if (ok1 != (pubsub ? 1U : 0U))
        report(id, "the pub-sub subscription did not get the event exactly once");
      if (okg != (group ? 1U : 0U))
        report(id, "the consumer group did not get the event exactly once");
    }

    const ringflow::EngineStats st = engine.stats();
    EXPECT_EQ(st.published_count(PublishStatus::ok), accepted_.load());
    EXPECT_EQ(accepted, accepted_.load());
    // Engine law.
    EXPECT_EQ(st.published_count(PublishStatus::ok), st.appended + st.expired + st.duplicates);
    EXPECT_EQ(st.appended, n_appended);
    EXPECT_EQ(st.expired, n_expired);
    EXPECT_EQ(st.duplicates, n_duplicates);
    EXPECT_EQ(st.filtered, n_filtered);
    EXPECT_EQ(st.stage_failures, n_stage_failures);
    EXPECT_EQ(st.dead_letters_total(), dead_letters);
    // Topic laws.
    for (std::size_t t = 0; t < kTopics; ++t) {
      const auto& ts = st.topics[topics_[t].value];
      EXPECT_EQ(ts.accepted, topic_accepted[t]) << ts.name;
      EXPECT_EQ(ts.accepted, ts.appended + ts.expired + ts.duplicates) << ts.name;
    }
    // Subscription laws (the dead-letter subscription's included).
    for (const auto& ss : st.subscriptions) {
      EXPECT_EQ(ss.first_deliveries, ss.ok + ss.dead_lettered) << ss.pattern << " " << ss.group;
    }
    EXPECT_EQ(st.subscriptions[sub_[4]].first_deliveries, dead_letters);
    if (engine.config().handler_watchdog.count() == 0) {
      EXPECT_EQ(st.handler_stalls, 0U);
    }

    ++g_totals.rounds;
    g_totals.accepted += accepted;
    g_totals.appended += st.appended;
    g_totals.expired += st.expired;
    g_totals.duplicates += st.duplicates;
    g_totals.filtered += st.filtered;
    g_totals.stage_failures += st.stage_failures;
    g_totals.dead_letters += st.dead_letters_total();
    g_totals.deliveries += st.deliveries;
    g_totals.handler_stalls += st.handler_stalls;
    g_totals.watchdog_records += watchdog_records_.load();
  }

  std::uint64_t seed_;
  std::uint64_t round_;
  Rng rng_;
  Engine* engine_ = nullptr;
  std::array<TopicId, kTopics> topics_{};
  TopicId dlq_{};
  std::array<std::uint32_t, 5> sub_{};
  std::atomic<bool> stop_producers_{false};
  std::atomic<std::uint64_t> next_id_{0};
  std::atomic<std::uint32_t> next_producer_{0};
  std::atomic<std::uint64_t> accepted_{0};
  std::atomic<std::uint64_t> bad_{0};
  std::atomic<std::uint64_t> unexpected_status_{0};
  std::atomic<std::uint64_t> order_violations_{0};
  std::atomic<int> last_unexpected_{-1};
  std::atomic<std::uint64_t> watchdog_records_{0};
  std::vector<Sent> sent_ = std::vector<Sent>(kMaxEvents);
  std::array<PerId, 4> per_sub_;
  std::unique_ptr<std::atomic<std::uint32_t>[]> dlq_seen_ =
      std::make_unique<std::atomic<std::uint32_t>[]>(kMaxEvents);
  // [ordered subscription 1..3][producer][key][lane]
  std::unique_ptr<std::atomic<std::uint32_t>[][kMaxProducers][kKeys][2]> last_seq_ =
      std::make_unique<std::atomic<std::uint32_t>[][kMaxProducers][kKeys][2]>(3);
};

TEST(Soak, RandomEnginesKeepTheirLaws) {
  const std::uint64_t seed = env_u64(
      "RINGFLOW_SOAK_SEED", std::random_device{}() ^ (std::uint64_t{std::random_device{}()} << 32));
  const std::uint64_t seconds = env_u64("RINGFLOW_SOAK_SECONDS", 60);
  std::printf("soak: RINGFLOW_SOAK_SEED=%llu RINGFLOW_SOAK_SECONDS=%llu\n",
              static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seconds));
  std::fflush(stdout);
  const auto start = std::chrono::steady_clock::now();
  const auto end = start + std::chrono::seconds(seconds);
  std::uint64_t round = 0;
  do {
    Round r(seed, round);
    const std::string summary = r.run();
    std::printf("soak: %s\n", summary.c_str());
    std::fflush(stdout);
    if (::testing::Test::HasFailure()) {
      std::printf("soak: FAILED in round %llu; replay with RINGFLOW_SOAK_SEED=%llu\n",
                  static_cast<unsigned long long>(round), static_cast<unsigned long long>(seed));
      break;
    }
    ++round;
  } while (std::chrono::steady_clock::now() < end);
  const double took =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("soak: %llu rounds in %.1f s, seed %llu\n", static_cast<unsigned long long>(round),
              took, static_cast<unsigned long long>(seed));
  const Totals& t = g_totals;
  std::printf(
      "soak: totals over %llu checked rounds: accepted %llu = appended %llu + expired %llu + "
      "duplicates %llu; filtered %llu, stage failures %llu, dead letters %llu, handler calls "
      "%llu; watchdog: %llu stalls, %llu records\n",
      static_cast<unsigned long long>(t.rounds), static_cast<unsigned long long>(t.accepted),
      static_cast<unsigned long long>(t.appended), static_cast<unsigned long long>(t.expired),
      static_cast<unsigned long long>(t.duplicates), static_cast<unsigned long long>(t.filtered),
      static_cast<unsigned long long>(t.stage_failures),
      static_cast<unsigned long long>(t.dead_letters),
      static_cast<unsigned long long>(t.deliveries),
      static_cast<unsigned long long>(t.handler_stalls),
      static_cast<unsigned long long>(t.watchdog_records));
  EXPECT_EQ(t.accepted, t.appended + t.expired + t.duplicates);
}

}  // namespace
