#include "watchdog.hpp"

#include <pthread.h>

#include <algorithm>
#include <cstdio>

namespace ringflow::detail {

namespace {

std::string format_duration(std::chrono::steady_clock::duration d) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  char buf[32];
  if (ms >= 10'000) {
    std::snprintf(buf, sizeof buf, "%lld s", static_cast<long long>(ms / 1000));
  } else {
    std::snprintf(buf, sizeof buf, "%lld ms", static_cast<long long>(ms));
  }
  return buf;
}

}  // namespace

Watchdog::Watchdog(std::chrono::milliseconds limit, Targets targets)
    : limit_(limit),
      // A few checks per limit, but no busier than 1 ms and no lazier than 250 ms.
      period_(std::clamp(limit / 4, std::chrono::milliseconds(1), std::chrono::milliseconds(250))),
      t_(targets),
      stalls_(targets.shards->size()) {
  seen_.resize(targets.shards->size());
  for (auto& per_shard : seen_)
    per_shard.resize(targets.subscriptions->size() + 1);
}

Watchdog::~Watchdog() {
  stop();
}

void Watchdog::start() {
  thread_ = std::thread([this] { run(); });
}

void Watchdog::stop() noexcept {
  {
    std::lock_guard lock(mu_);
    exit_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Watchdog::run() {
  (void)pthread_setname_np(pthread_self(), "rf-watchdog");
  std::unique_lock lock(mu_);
  while (!cv_.wait_for(lock, period_, [this] { return exit_; })) {
    lock.unlock();
    check(std::chrono::steady_clock::now());
    lock.lock();
  }
}

void Watchdog::check(std::chrono::steady_clock::time_point now) {
  const auto& shards = *t_.shards;
  const std::size_t subs = t_.subscriptions->size();
  for (std::size_t sh = 0; sh < shards.size(); ++sh) {
    for (std::size_t s = 0; s < subs; ++s)
      look(sh, s, shards[sh]->subscription_watch(s), seen_[sh][s], now);
    look(sh, subs, shards[sh]->stage_watch(), seen_[sh][subs], now);
  }
}

void Watchdog::look(std::size_t shard, std::size_t sub, const CallWatch& w, Seen& seen,
                    std::chrono::steady_clock::time_point now) {
  // Relaxed: a sample; a call that stays blocked shows the same value at every check.
  const std::uint64_t state = w.state.load(std::memory_order_relaxed);
  if (state != seen.state) {  // another call (or none) since the last check
    seen.state = state;
    seen.since = now;
    seen.next_report = now + limit_;
    seen.reported = false;
    return;
  }
  if ((state & 1U) == 0 || now < seen.next_report) return;  // idle, or not blocked long enough
  if (!seen.reported) {
    seen.reported = true;
    stalls_[shard].add(1);
  }
  seen.next_report = now + limit_;
  report(shard, sub, w.topic.load(std::memory_order_relaxed), now - seen.since);  // relaxed: sample
}

void Watchdog::report(std::size_t shard, std::size_t sub, std::uint32_t topic,
                      std::chrono::steady_clock::duration blocked) noexcept {
  std::uint64_t suppressed = 0;
  const std::int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                               std::chrono::steady_clock::now().time_since_epoch())
                               .count();
  if (!rate_.admit(now, suppressed)) return;
  try {
    std::string what;
    if (sub < t_.subscriptions->size()) {
      what = "handler of subscription " + std::to_string(sub) + " ('" +
             (*t_.subscriptions)[sub].pattern + "')";
    } else {
      const std::uint32_t st = (*t_.shards)[shard]->watched_stage();
      const auto& stages = t_.pipeline->stages();
      what = st < stages.size() ? "stage '" + stages[st].name + "'" : "a stage";
    }
    const std::string topic_name = topic < t_.topic_names->size() ? (*t_.topic_names)[topic] : "?";
    std::string line = "shard " + std::to_string(shard) + ": " + what + " blocked for " +
                       format_duration(blocked) + " on an event of topic '" + topic_name +
                       "' (watchdog.handler_ms = " + std::to_string(limit_.count()) + ")";
    // Relaxed: it only changes the wording of the record.
    if (t_.stopping->load(std::memory_order_relaxed)) {
      line += "; stop() is waiting for it to return";
    }
    Logger(t_.log_sink).log(LogLevel::warn, "watchdog", line, suppressed);
  } catch (...) {  // NOLINT(bugprone-empty-catch): no memory for the message: skip this report
  }
}

}  // namespace ringflow::detail
