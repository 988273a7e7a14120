#pragma once
// The handler watchdog: a thread owned by the engine that samples every shard's call slots
// (CallWatch, shard.hpp) and reports a handler or stage call that has not returned after
// watchdog.handler_ms: a warn record through the log sink naming the shard, the subscription
// (or stage), the topic and how long the call has been blocked, repeated every handler_ms while
// it stays blocked (and rate limited), and one count per blocked call (stats().handler_stalls).
//
// It costs the hot path two relaxed stores per call and no clock read: a call is timed here,
// on steady_clock, as the time its call number has stayed the same. So a reported call has
// been running for at least the time reported (up to one check period more). It only reads
// the shards, which outlive it; it sleeps on a condition variable between checks.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "logger.hpp"
#include "shard.hpp"

namespace ringflow::detail {

class Watchdog {
 public:
  /// What it watches. The pointed-to objects outlive the watchdog (Engine::Impl owns them).
  struct Targets {
    const std::vector<std::unique_ptr<Shard>>* shards;
    const std::vector<Subscription>* subscriptions;
    const Pipeline* pipeline;
    const std::deque<std::string>* topic_names;
    const LogSink* log_sink;
    const std::atomic<bool>* stopping;  ///< true while stop() waits for the shards
  };

  Watchdog(std::chrono::milliseconds limit, Targets targets);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  void start();
  /// Ends the thread (idempotent); the counts stay readable.
  void stop() noexcept;

  /// Calls reported blocked on shard `s` (each once, however long it blocks).
  [[nodiscard]] std::uint64_t stalls(std::size_t shard) const noexcept {
    return shard < stalls_.size() ? stalls_[shard].get() : 0;
  }

 private:
  /// What the watchdog remembers of one call slot.
  struct Seen {
    std::uint64_t state = 0;
    std::chrono::steady_clock::time_point since{};  ///< when this call was first seen running
    std::chrono::steady_clock::time_point next_report{};
    bool reported = false;
  };

  void run();
  void check(std::chrono::steady_clock::time_point now);
  /// `sub` < subscriptions: a subscription's slot; else the stage slot.
  void look(std::size_t shard, std::size_t sub, const CallWatch& w, Seen& seen,
            std::chrono::steady_clock::time_point now);
  void report(std::size_t shard, std::size_t sub, std::uint32_t topic,
              std::chrono::steady_clock::duration blocked) noexcept;

  std::chrono::milliseconds limit_;
  std::chrono::milliseconds period_;
  Targets t_;
  std::vector<std::vector<Seen>> seen_;  ///< [shard][subscription, then the stage slot]
  std::vector<Counter> stalls_;          ///< by shard; written by the watchdog thread only
  LogRateLimit rate_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool exit_ = false;  ///< under mu_
  std::thread thread_;
};

}  // namespace ringflow::detail
