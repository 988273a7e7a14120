// ringflow as a System: the same three stages (stages.hpp) as ringflow pipeline stages and a
// subscription, driven through the engine's public API only.
//
//   producer ─publish(bench.events)─▶ shard: log append ─▶ filter "validate" ─▶ map "enrich"
//     (writes the hash into the payload) ─▶ route "route" (bench.route0 / bench.route1)
//     ─▶ subscription(s) "bench.>": sink (counters + latency histogram)
//
// Sink state is kept per (subscription, partition): a partition belongs to one shard and a
// subscription's node in a shard's graph is serial, so each SinkState has one writer at a time
// and needs no lock. They are merged after stop() joined the shard threads.
//
// Two names: "ringflow" runs with latency sampling off (metrics_latency_sample_every = 0) and
// nobody reading the metrics; "ringflow_metrics" samples as configured (default one batch per
// 64 events) and a scraper thread takes Engine::metrics() once a second, as a Prometheus
// endpoint would. Counters are always on in both: they are part of the engine.

#include <ringflow/engine.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

#include "harness/system.hpp"

namespace ringflow::bench {
namespace {

constexpr std::size_t kHashOffset = layout::filler;  // enrich writes its hash here
constexpr std::size_t kDlqTopics = 3;                // bench.events / route0 / route1 .dlq

class RingflowSender final : public Sender {
 public:
  RingflowSender(ringflow::Producer p, ringflow::TopicId topic)
      : producer_(std::move(p)), topic_(topic) {}
  bool send(const BenchEvent& ev) noexcept override {
    const std::byte* p = ev.bytes.data();
    const std::string_view key(reinterpret_cast<const char*>(p + layout::key),
                               sizeof(std::uint32_t));
    return producer_.publish(topic_, key, std::span<const std::byte>(ev.bytes)) ==
           ringflow::PublishStatus::ok;
  }
  bool send_urgent(const BenchEvent& ev) noexcept override {
    const std::byte* p = ev.bytes.data();
    const std::string_view key(reinterpret_cast<const char*>(p + layout::key),
                               sizeof(std::uint32_t));
    ringflow::PublishOptions o;
    o.priority = ringflow::Priority::urgent;
    return producer_.publish(topic_, key, std::span<const std::byte>(ev.bytes), o) ==
           ringflow::PublishStatus::ok;
  }

 private:
  ringflow::Producer producer_;
  ringflow::TopicId topic_;
};

class RingflowSystem final : public System {
 public:
  explicit RingflowSystem(bool with_metrics) : metrics_(with_metrics) {}
  std::string name() const override { return metrics_ ? "ringflow_metrics" : "ringflow"; }
  bool has_urgent_lane() const override { return true; }
  bool has_retries() const override { return true; }

  std::string unsupported(const RunSpec& spec) const override {
    try {
      const ringflow::EngineConfig cfg = config_for(spec, metrics_);
      if (spec.producers > cfg.max_producers) {
        return "engine.max_producers = " + std::to_string(cfg.max_producers) + " < " +
               std::to_string(spec.producers) + " producers";
      }
      if (kEventBytes > cfg.max_payload_bytes) {
        return "engine.max_payload_bytes = " + std::to_string(cfg.max_payload_bytes) +
               " is smaller than the " + std::to_string(kEventBytes) + "-byte events";
      }
    } catch (const std::exception& e) {
      return std::string("engine config: ") + e.what();
    }
    return {};
  }

  void start(const RunSpec& spec) override {
    spec_ = spec;
    engine_ = std::make_unique<ringflow::Engine>(config_for(spec, metrics_));
    topic_ = engine_->add_topic("bench.events");
    const ringflow::TopicId routes[2] = {engine_->add_topic("bench.route0"),
                                         engine_->add_topic("bench.route1")};
    engine_->pipeline()
        .filter("validate",
                [](const ringflow::EventView& e) {
                  return e.payload().size() == kEventBytes && stage_validate(e.payload().data());
                })
        .map("enrich",
             [](ringflow::Event& e) {
               const std::uint64_t h = stage_enrich(e.payload().data());
               std::memcpy(e.mutable_payload().data() + kHashOffset, &h, sizeof h);
             })
        .route("route", [routes](const ringflow::EventView& e) {
          return routes[std::to_integer<std::uint8_t>(e.payload()[layout::route]) & 1u];
        });
    const std::uint32_t parts = engine_->partitions();
    const unsigned subs = std::max(spec.subscribers, 1u);
    sinks_.assign(static_cast<std::size_t>(subs) * parts, SinkState{});
    counts_.assign(static_cast<std::size_t>(subs) * parts, Counts{});
    const std::int64_t work_ns = static_cast<std::int64_t>(spec.handler_work_ns);
    const double fail = spec.fail_share;
    const double retry = spec.retry_share;
    const bool verdicts = fail > 0 || retry > 0;
    ringflow::SubscribeOptions opts;
    opts.max_attempts = 3;  // a retry_once event needs 2; the third is never used
    opts.retry_backoff = std::chrono::microseconds(100);
    for (unsigned s = 0; s < subs; ++s) {
      SinkState* mine = &sinks_[static_cast<std::size_t>(s) * parts];
      Counts* counts = &counts_[static_cast<std::size_t>(s) * parts];
      engine_->subscribe(
          "bench.>",
          ringflow::Handler([mine, counts, work_ns, fail, retry,
                             verdicts](const ringflow::EventView& e) -> ringflow::Outcome {
            const std::byte* p = e.payload().data();
            if (work_ns > 0 && (std::to_integer<std::uint8_t>(p[layout::flags]) & kFloodEvent)) {
              const std::int64_t until = ringflow::now_ns() + work_ns;
              while (ringflow::now_ns() < until) {
              }
            }
            if (verdicts) {
              const auto v = verdict_of(load_field<std::uint64_t>(p, layout::seq), fail, retry);
              if (v == HandlerVerdict::fail) {
                ++counts[e.partition()].failed;
                return ringflow::Outcome::fail("bench: fail_share");
              }
              if (v == HandlerVerdict::retry_once && e.attempt() == 1) {
                ++counts[e.partition()].retried;
                return ringflow::Outcome::retry();
              }
            }
            stage_route_sink(mine[e.partition()], p, load_field<std::uint64_t>(p, kHashOffset));
            return ringflow::Outcome::ok();
          }),
          opts);
    }
    if (verdicts) {
      // `>` never matches a dead-letter topic: each one is named. A dead letter goes to the
      // dead-letter topic of the topic its record was stored under (bench.events, before the
      // route stage), so all three are subscribed.
      const char* const dlqs[kDlqTopics] = {"bench.events.dlq", "bench.route0.dlq",
                                            "bench.route1.dlq"};
      dead_.assign(kDlqTopics * static_cast<std::size_t>(parts), 0);
      for (std::size_t r = 0; r < kDlqTopics; ++r) {
        std::uint64_t* mine = &dead_[r * parts];
        engine_->subscribe(dlqs[r], [mine, parts](const ringflow::EventView& e) {
          if (e.dead_letter() != nullptr && e.partition() < parts) ++mine[e.partition()];
        });
      }
    }
    engine_->start();
    if (metrics_) {
      scrapes_ = 0;
      scraper_stop_ = false;
      scraper_ = std::thread([this] {
        std::unique_lock lock(scraper_mu_);
        for (;;) {
          if (scraper_cv_.wait_for(lock, std::chrono::seconds(1), [this] { return scraper_stop_; }))
            return;
          const ringflow::MetricsSnapshot snap = engine_->metrics();
          scrapes_ += snap.families.empty() ? 0 : 1;
        }
      });
    }
  }

  std::unique_ptr<Sender> make_sender(unsigned /*index*/) override {
    return std::make_unique<RingflowSender>(engine_->make_producer(), topic_);
  }

  void drain() override { engine_->drain(); }

  SinkTotals stop() override {
    if (scraper_.joinable()) {
      {
        const std::lock_guard lock(scraper_mu_);
        scraper_stop_ = true;
      }
      scraper_cv_.notify_one();
      scraper_.join();
    }
    engine_->stop();
    SinkTotals t;
    for (const auto& s : sinks_)
      t.sinks.merge(s);
    for (const auto& c : counts_) {
      t.failed += c.failed;
      t.retried += c.retried;
    }
    for (const std::uint64_t d : dead_)
      t.dead_lettered += d;
    const ringflow::EngineStats st = engine_->stats();
    t.filtered = st.filtered;
    t.retries = st.retries;
    t.dead_letters = st.dead_letters_total();
    if (t.dead_letters != t.failed || t.dead_lettered != t.failed || t.retries != t.retried) {
      t.problem = "MISMATCH: handler failed " + std::to_string(t.failed) + " events, engine " +
                  "counted " + std::to_string(t.dead_letters) + " dead letters, the DLQ " +
                  "handler saw " + std::to_string(t.dead_lettered) + "; handler asked " +
                  std::to_string(t.retried) + " retries, engine scheduled " +
                  std::to_string(t.retries);
    }
    std::string odd;
    for (std::size_t i = 0; i < ringflow::kPublishStatusCount; ++i) {
      const auto status = static_cast<ringflow::PublishStatus>(i);
      if (status == ringflow::PublishStatus::ok || status == ringflow::PublishStatus::full)
        continue;
      if (st.published[i] != 0) {
        if (!odd.empty()) odd += ", ";
        odd += ringflow::to_string(status);
        odd += " x" + std::to_string(st.published[i]);
      }
    }
    if (!odd.empty())
      t.problem += std::string(t.problem.empty() ? "" : "; ") + "publish returned " + odd;
    if (st.stage_failures != 0) {
      t.problem +=
          (t.problem.empty() ? "" : "; ") + std::to_string(st.stage_failures) + " stage failures";
    }
    placement_ = describe(engine_->plan(), engine_->config());
    engine_.reset();
    sinks_.clear();
    counts_.clear();
    dead_.clear();
    return t;
  }

  std::string placement() const override { return placement_; }

 private:
  static ringflow::EngineConfig config_for(const RunSpec& spec, bool with_metrics) {
    ringflow::EngineConfig cfg = spec.engine_config.empty()
                                     ? ringflow::EngineConfig{}
                                     : ringflow::load_config(spec.engine_config);
    if (spec.partitions != 0) {
      cfg.partitions = spec.partitions;
      cfg.shards = std::min(cfg.shards, cfg.partitions);
      if (cfg.shard_cores.size() > cfg.shards) cfg.shard_cores.resize(cfg.shards);
    }
    if (!with_metrics) {
      cfg.metrics_latency_sample_every = 0;
    } else if (cfg.metrics_latency_sample_every == 0) {
      cfg.metrics_latency_sample_every = 64;
    }
    return cfg;
  }

  static std::string describe(const ringflow::Plan& plan, const ringflow::EngineConfig& cfg) {
    std::string s = std::to_string(plan.shards.size()) + " shard(s) on core(s)";
    for (const auto& p : plan.shards) {
      s += ' ';
      s += std::to_string(p.pu_os_index);
    }
    std::size_t workers = 0;
    for (const auto& w : plan.graph_workers)
      workers += w.size();
    s += ", " + std::to_string(workers) + " graph worker(s)";
    s += plan.pinning ? ", pinned" : ", not pinned";
    s += "; " + std::to_string(cfg.partitions) + " partitions, rings " +
         std::to_string(cfg.ring_capacity) + " slots, wait " +
         std::string(ringflow::to_string(cfg.wait_strategy)) + ", backpressure " +
         std::string(ringflow::to_string(cfg.backpressure)) + ", latency sampling " +
         (cfg.metrics_latency_sample_every == 0
              ? std::string("off")
              : "1 batch per " + std::to_string(cfg.metrics_latency_sample_every) +
                    " events + Engine::metrics() every 1 s") +
         " (engine config " + cfg.source + ")";
    return s;
  }

  RunSpec spec_;
  bool metrics_ = false;
  std::unique_ptr<ringflow::Engine> engine_;
  std::thread scraper_;  // ringflow_metrics: Engine::metrics() once a second
  std::mutex scraper_mu_;
  std::condition_variable scraper_cv_;
  bool scraper_stop_ = false;  // under scraper_mu_
  std::uint64_t scrapes_ = 0;  // under scraper_mu_
  ringflow::TopicId topic_;
  struct Counts {
    std::uint64_t failed = 0;
    std::uint64_t retried = 0;
  };
  std::vector<SinkState> sinks_;     // [subscription * partitions + partition]
  std::vector<Counts> counts_;       // likewise
  std::vector<std::uint64_t> dead_;  // [route * partitions + partition], DLQ handlers
  std::string placement_ = "engine config placement";
};

}  // namespace

std::unique_ptr<System> make_ringflow_system(std::string& /*why*/) {
  return std::make_unique<RingflowSystem>(false);
}

std::unique_ptr<System> make_ringflow_metrics_system(std::string& /*why*/) {
  return std::make_unique<RingflowSystem>(true);
}

}  // namespace ringflow::bench
