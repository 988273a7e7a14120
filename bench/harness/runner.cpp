#include "harness/runner.hpp"

#include <oneapi/tbb/version.h>
#include <unistd.h>

#include <algorithm>
#include <barrier>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "harness/affinity.hpp"
#include "harness/clock.hpp"
#include "harness/open_loop.hpp"
#include "harness/platform_control.hpp"
#include "harness/request_reply.hpp"
#include "ringflow/config.hpp"
#include "ringflow/topology.hpp"

#ifndef RINGFLOW_BENCH_CXX_FLAGS
#define RINGFLOW_BENCH_CXX_FLAGS "unknown"
#endif
#ifndef RINGFLOW_BENCH_BUILD_TYPE
#define RINGFLOW_BENCH_BUILD_TYPE "unknown"
#endif
#ifndef RINGFLOW_SOURCE_DIR
#define RINGFLOW_SOURCE_DIR "."
#endif

namespace ringflow::bench {
namespace {

constexpr std::uint64_t kRefusedGiveUpNs = 10'000'000'000;  // a system refusing for 10 s is stuck

int core_for(const std::vector<int>& cores, unsigned i) {
  return cores.empty() ? -1 : cores[i % cores.size()];
}

/// Fills `result.lost`/`error` when the sinks saw fewer (or more) deliveries than accepted.
void check_deliveries(TrialResult& result, const SinkTotals& totals, std::uint64_t accepted,
                      unsigned subscribers) {
  if (!totals.problem.empty()) {
    result.error = totals.problem;
    return;
  }
  const std::uint64_t expected = accepted * subscribers;
  // A dead letter (retry_dlq) ends one delivery too: the dead-letter handler saw it.
  const std::uint64_t seen =
      totals.sinks.processed + totals.filtered * subscribers + totals.dead_lettered;
  if (seen < expected) {
    result.lost += (expected - seen) / std::max(subscribers, 1u);
    result.error = "accepted " + std::to_string(accepted) + " events but the sinks saw " +
                   std::to_string(seen) + " deliveries (expected " + std::to_string(expected) + ")";
  } else if (seen > expected) {
    result.error = "sinks saw " + std::to_string(seen) + " deliveries, more than the " +
                   std::to_string(expected) + " accepted";
  }
}

std::string now_utc() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string run_command(const std::string& cmd) {
  std::string out;
  std::FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return out;
  char buf[256];
  while (std::fgets(buf, sizeof buf, p) != nullptr)
    out += buf;
  pclose(p);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' '))
    out.pop_back();
  return out;
}

std::string json_ints(const std::vector<int>& v) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.size(); ++i)
    s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

std::string shell_quote(const std::string& s) {
  if (!s.empty() && s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                        "0123456789_-./=:,+") == std::string::npos) {
    return s;
  }
  std::string q = "'";
  for (char c : s)
    q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// ---- live progress line (stderr, TTY only) ----

class ProgressLine {
 public:
  ProgressLine(bool enabled, double total_s) : enabled_(enabled), total_s_(total_s) {
    if (!enabled_) return;
    started_ = now_ns();
    thread_ = std::thread([this] { loop(); });
  }
  ~ProgressLine() {
    if (!enabled_) return;
    {
      const std::lock_guard lk(m_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
    std::fprintf(stderr, "\r\033[K");
    std::fflush(stderr);
  }
  ProgressLine(const ProgressLine&) = delete;
  ProgressLine& operator=(const ProgressLine&) = delete;

  /// A new trial: label, and how many senders share the counter's producer (rate scale).
  void phase(std::string label, unsigned scale) {
    if (!enabled_) return;
    const std::lock_guard lk(m_);
    label_ = std::move(label);
    scale_ = scale;
    counter_.store(0, std::memory_order_relaxed);  // relaxed: a display hint
    last_count_ = 0;
    last_t_ = now_ns();
  }
  void p99_so_far(std::optional<std::uint64_t> ns) {
    if (!enabled_) return;
    const std::lock_guard lk(m_);
    p99_ = ns;
  }
  std::atomic<std::uint64_t>* counter() { return enabled_ ? &counter_ : nullptr; }

 private:
  void loop() {
    std::unique_lock lk(m_);
    while (!cv_.wait_for(lk, std::chrono::milliseconds(250), [&] { return stop_; })) {
      const std::uint64_t t = now_ns();
      const std::uint64_t c = counter_.load(std::memory_order_relaxed);
      const double dt = static_cast<double>(t - last_t_) / 1e9;
      const double rate =
          dt > 0 && c >= last_count_ ? static_cast<double>(c - last_count_) * scale_ / dt : 0.0;
      last_count_ = c;
      last_t_ = t;
      const double elapsed = static_cast<double>(t - started_) / 1e9;
      std::fprintf(stderr, "\r\033[K%s | %.0f/~%.0f s | %s ev/s | p99 so far %s", label_.c_str(),
                   elapsed, total_s_, format_rate(rate).c_str(),
                   p99_ ? format_ns(*p99_).c_str() : "-");
      std::fflush(stderr);
    }
  }

  bool enabled_;
  double total_s_;
  std::uint64_t started_ = 0;
  std::thread thread_;
  std::mutex m_;
  std::condition_variable cv_;
  bool stop_ = false;                 // guarded by m_
  std::string label_;                 // guarded by m_
  unsigned scale_ = 1;                // guarded by m_
  std::optional<std::uint64_t> p99_;  // guarded by m_
  std::uint64_t last_count_ = 0;      // progress thread only (reset under m_)
  std::uint64_t last_t_ = 0;          // likewise
  std::atomic<std::uint64_t> counter_{0};
};

/// Producer threads of one trial; joins on destruction.
class Producers {
 public:
  Producers() = default;
  Producers(const Producers&) = delete;
  Producers& operator=(const Producers&) = delete;
  ~Producers() { join(); }
  template <class F>
  void spawn(F&& f) {
    threads_.emplace_back(std::forward<F>(f));
  }
  void join() {
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
  }

 private:
  std::vector<std::thread> threads_;
};

}  // namespace

// ------------------------------------------------------------------------------------------
// trials
// ------------------------------------------------------------------------------------------

TrialResult run_throughput_trial(System& sys, const RunSpec& spec, std::uint64_t events,
                                 std::uint64_t warmup_events,
                                 std::atomic<std::uint64_t>* progress) {
  TrialResult res;
  const unsigned P = std::max(spec.producers, 1u);
  sys.start(spec);
  std::barrier sync(static_cast<std::ptrdiff_t>(P) + 1);
  std::vector<std::string> errors(P);
  {
    Producers producers;
    for (unsigned k = 0; k < P; ++k) {
      producers.spawn([&, k] {
        std::unique_ptr<Sender> sender;
        try {
          errors[k] = pin_current_thread(core_for(spec.producer_cores, k));
          sender = sys.make_sender(k);
        } catch (const std::exception& e) {
          errors[k] = std::string("make_sender: ") + e.what();
        }
        auto push = [&](std::uint64_t from, std::uint64_t to) {
          if (!errors[k].empty()) return;
          for (std::uint64_t g = from + k; g < to; g += P) {
            const BenchEvent ev = make_event(g, 0, 0);
            unsigned spins = 0;
            std::uint64_t refused_since = 0;
            while (!sender->send(ev)) {
              if (++spins < 64) {
                cpu_relax();
                continue;
              }
              std::this_thread::yield();
              const std::uint64_t t = now_ns();
              if (refused_since == 0) refused_since = t;
              if (t - refused_since > kRefusedGiveUpNs) {
                errors[k] = "the system refused every send for 10 s (stuck?)";
                return;
              }
            }
            // relaxed: a display hint
            if (progress != nullptr && k == 0 && (g & 1023u) < P) {
              progress->store(g - from, std::memory_order_relaxed);
            }
          }
        };
        sync.arrive_and_wait();  // ready
        push(0, warmup_events);
        sync.arrive_and_wait();  // warm-up sent
        sync.arrive_and_wait();  // warm-up drained: go
        push(warmup_events, warmup_events + events);
        sender.reset();
      });
    }
    sync.arrive_and_wait();
    sync.arrive_and_wait();
    sys.drain();
    const std::uint64_t t0 = now_ns();
    sync.arrive_and_wait();
    producers.join();
    for (const auto& e : errors) {
      if (!e.empty()) res.error = e;
    }
    if (res.error.empty()) {
      sys.drain();
      const std::uint64_t t1 = now_ns();
      res.achieved_eps = static_cast<double>(events) / (static_cast<double>(t1 - t0) / 1e9);
      res.events = events;
    }
  }
  const SinkTotals totals = sys.stop();
  if (res.error.empty()) check_deliveries(res, totals, warmup_events + events, spec.subscribers);
  return res;
}

TrialResult run_latency_trial(System& sys, const RunSpec& spec, double rate_eps, double duration_s,
                              double warmup_s, std::atomic<std::uint64_t>* progress) {
  TrialResult res;
  const unsigned P = std::max(spec.producers, 1u);
  const auto warm = static_cast<std::uint64_t>(std::llround(rate_eps * warmup_s));
  const auto measured =
      std::max<std::uint64_t>(1, static_cast<std::uint64_t>(std::llround(rate_eps * duration_s)));
  sys.start(spec);
  std::barrier sync(static_cast<std::ptrdiff_t>(P) + 1);
  std::vector<OpenLoopPlan> plans;
  std::vector<std::string> errors(P);
  std::vector<std::uint64_t> accepted(P, 0);
  std::vector<std::uint64_t> refused(P, 0);
  std::vector<std::uint64_t> accepted_measured(P, 0);
  std::vector<Histogram> lateness(P);
  std::uint64_t measured_start = 0;
  {
    Producers producers;
    for (unsigned k = 0; k < P; ++k) {
      producers.spawn([&, k] {
        std::unique_ptr<Sender> sender;
        try {
          errors[k] = pin_current_thread(core_for(spec.producer_cores, k));
          sender = sys.make_sender(k);
        } catch (const std::exception& e) {
          errors[k] = std::string("make_sender: ") + e.what();
        }
        sync.arrive_and_wait();  // ready
        sync.arrive_and_wait();  // plans are set
        if (!errors[k].empty()) return;
        OpenLoopHooks hooks;
        if (k == 0) hooks.progress = progress;
        hooks.lateness = &lateness[k];
        std::uint64_t acc_measured = 0;
        const SendStats st = run_open_loop(
            plans[k],
            [&](std::uint64_t i, std::uint64_t due) {
              const std::uint64_t g = k + i * P;
              const bool record = g >= warm;
              const bool ok = sender->send(make_event(g, due, record ? kRecordLatency : 0));
              if (ok && record) ++acc_measured;
              return ok;
            },
            hooks);
        accepted[k] = st.sent;
        refused[k] = st.refused;
        accepted_measured[k] = acc_measured;
        sender.reset();
      });
    }
    sync.arrive_and_wait();
    const std::uint64_t start = now_ns() + 5'000'000;  // 5 ms: every sender is spinning by then
    plans = split_plan(rate_eps, warm + measured, start, P);
    measured_start = plans[0].scheduled_ns(0) +
                     static_cast<std::uint64_t>(static_cast<long double>(warm) * 1e9L / rate_eps);
    sync.arrive_and_wait();
    producers.join();
  }
  for (const auto& e : errors) {
    if (!e.empty()) res.error = e;
  }
  if (res.error.empty()) sys.drain();
  const std::uint64_t t_end = now_ns();
  const SinkTotals totals = sys.stop();
  std::uint64_t acc = 0;
  std::uint64_t acc_measured = 0;
  for (unsigned k = 0; k < P; ++k) {
    acc += accepted[k];
    acc_measured += accepted_measured[k];
    res.lost += refused[k];
    res.sender_lateness.merge(lateness[k]);
  }
  if (res.error.empty() && t_end > measured_start) {
    res.achieved_eps =
        static_cast<double>(acc_measured) / (static_cast<double>(t_end - measured_start) / 1e9);
  }
  res.latency = totals.sinks.latency;
  res.events = res.latency.count();
  if (res.error.empty()) check_deliveries(res, totals, acc, spec.subscribers);
  return res;
}

// ------------------------------------------------------------------------------------------
// the run
// ------------------------------------------------------------------------------------------

namespace {

struct Variant {
  std::string label;  // "" / "subscribers=4" / "partitions=2"
  unsigned subscribers = 1;
  unsigned partitions = 0;  // 0: each system's default
};

std::vector<Variant> variants_of(const Scenario& s) {
  std::vector<Variant> out;
  if (s.kind == ScenarioKind::urgent_under_load || s.kind == ScenarioKind::retry_dlq) {
    return out;  // run_delivery_scenario()
  }
  if (s.kind == ScenarioKind::fanout) {
    for (unsigned n : s.subscribers)
      out.push_back({"subscribers=" + std::to_string(n), n, 0});
  } else if (s.kind == ScenarioKind::partitions_scaling) {
    for (unsigned n : s.partitions)
      out.push_back({"partitions=" + std::to_string(n), 1, n});
  } else {
    out.push_back({});
  }
  return out;
}

struct Aggregate {
  std::vector<double> achieved;
  Histogram latency;
  Histogram sender_lateness;
  std::uint64_t events = 0;
  std::uint64_t lost = 0;
  std::vector<std::string> errors;
};

Row make_row(const Scenario& s, const Variant& v, const std::string& system, double offered,
             const Aggregate& a, bool latency) {
  Row r;
  r.scenario = s.name;
  r.variant = v.label;
  r.system = system;
  r.offered_eps = offered;
  std::vector<double> sorted = a.achieved;
  std::sort(sorted.begin(), sorted.end());
  if (!sorted.empty()) {
    const std::size_t n = sorted.size();
    r.achieved_eps = n % 2 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
    r.achieved_min_eps = sorted.front();
    r.achieved_max_eps = sorted.back();
  }
  r.repeats = static_cast<unsigned>(a.achieved.size());
  r.events = a.events;
  r.lost = a.lost;
  r.has_latency = latency && !a.latency.empty();
  if (r.has_latency) {
    r.p50_ns = a.latency.value_at_percentile(50);
    r.p90_ns = a.latency.value_at_percentile(90);
    r.p99_ns = a.latency.value_at_percentile(99);
    r.p999_ns = a.latency.value_at_percentile(99.9);
    r.p9999_ns = a.latency.value_at_percentile(99.99);
    r.max_ns = a.latency.max();
  }
  if (latency && !a.sender_lateness.empty()) {
    // The sender's own lateness in the same trials: a tail that is also here is the platform's.
    r.note = "sender late p99.9 " + format_ns(a.sender_lateness.value_at_percentile(99.9)) +
             ", max " + format_ns(a.sender_lateness.max());
  }
  for (const auto& e : a.errors)
    r.note += (r.note.empty() ? "ERROR: " : "; ") + e;
  return r;
}

std::string file_stem(const Scenario& s, const Variant& v, double offered, const std::string& sys) {
  std::string stem = s.name;
  if (!v.label.empty()) {
    std::string l = v.label;
    std::replace(l.begin(), l.end(), '=', '-');
    stem += "__" + l;
  }
  if (offered > 0) stem += "__" + std::to_string(static_cast<std::uint64_t>(offered)) + "eps";
  return stem + "__" + sys;
}

/// Forwards to a system and keeps what its stop() returned (delivery counts for the note).
class Capture final : public System {
 public:
  explicit Capture(System& inner) : inner_(inner) {}
  std::string name() const override { return inner_.name(); }
  std::string unsupported(const RunSpec& spec) const override { return inner_.unsupported(spec); }
  bool has_urgent_lane() const override { return inner_.has_urgent_lane(); }
  bool has_retries() const override { return inner_.has_retries(); }
  void start(const RunSpec& spec) override { inner_.start(spec); }
  std::unique_ptr<Sender> make_sender(unsigned index) override { return inner_.make_sender(index); }
  void drain() override { inner_.drain(); }
  SinkTotals stop() override {
    totals = inner_.stop();
    return totals;
  }
  std::string placement() const override { return inner_.placement(); }

  SinkTotals totals;

 private:
  System& inner_;
};

/// retry_dlq counts over a row's trials.
struct DeliveryCounts {
  std::uint64_t failed = 0;
  std::uint64_t retried = 0;
  std::uint64_t retries = 0;
  std::uint64_t dead_letters = 0;
  std::uint64_t dead_lettered = 0;
  void add(const SinkTotals& t) {
    failed += t.failed;
    retried += t.retried;
    retries += t.retries;
    dead_letters += t.dead_letters;
    dead_lettered += t.dead_lettered;
  }
  [[nodiscard]] std::string note() const {
    const bool ok = dead_letters == failed && dead_lettered == failed && retries == retried;
    return std::string(ok ? "" : "MISMATCH: ") + "retries " + std::to_string(retries) +
           " (handler asked " + std::to_string(retried) + "), dead letters " +
           std::to_string(dead_letters) + " (handler failed " + std::to_string(failed) +
           ", DLQ handler saw " + std::to_string(dead_lettered) + ")";
  }
};

struct UrgentTrial {
  TrialResult r;  ///< latency: the probes'; achieved_eps: probes accepted per second
  double flood_eps = 0;
  std::uint64_t probes = 0;   ///< measured probes sent
  std::uint64_t refused = 0;  ///< probes refused (all, warm-up included; counted in r.lost)
};

/// One urgent_under_load trial: a single producer thread floods the normal lane (as
/// max_throughput: every accepted event is replaced by the next) and, whenever a probe is due
/// on the open-loop plan at `rate`, sends it first: on the urgent lane, or on the normal lane
/// (the baseline). Probe latency: scheduled time -> sink completion.
UrgentTrial run_urgent_trial(System& sys, const RunSpec& spec, double rate, double duration_s,
                             double warmup_s, bool urgent, std::atomic<std::uint64_t>* progress) {
  UrgentTrial out;
  TrialResult& res = out.r;
  const auto warm = static_cast<std::uint64_t>(std::llround(rate * warmup_s));
  const auto measured =
      std::max<std::uint64_t>(1, static_cast<std::uint64_t>(std::llround(rate * duration_s)));
  const double period_ns = 1e9 / rate;
  constexpr std::uint64_t kProbeSeq = std::uint64_t{1} << 48;  // probes' own sequence numbers
  sys.start(spec);
  std::uint64_t accepted = 0;
  std::uint64_t flood_measured = 0;
  std::uint64_t measure_from = 0;
  std::uint64_t t_stop = 0;
  std::string error;
  {
    Producers producer;
    producer.spawn([&] {
      std::unique_ptr<Sender> sender;
      try {
        error = pin_current_thread(core_for(spec.producer_cores, 0));
        sender = sys.make_sender(0);
      } catch (const std::exception& e) {
        error = std::string("make_sender: ") + e.what();
      }
      if (!error.empty()) return;
      const std::uint64_t start = now_ns() + 1'000'000;
      auto due = [&](std::uint64_t i) {
        return start + static_cast<std::uint64_t>(static_cast<double>(i) * period_ns);
      };
      const std::uint64_t total = warm + measured;
      measure_from = due(warm);
      std::uint64_t g = 0;
      BenchEvent flood = make_event(g, 0, kFloodEvent);
      for (std::uint64_t i = 0; i < total;) {
        const std::uint64_t now = now_ns();
        const std::uint64_t d = due(i);
        if (now >= d) {
          const bool record = i >= warm;
          const BenchEvent ev = make_event(kProbeSeq + i, d, record ? kRecordLatency : 0);
          const bool ok = urgent ? sender->send_urgent(ev) : sender->send(ev);
          if (ok) {
            ++accepted;
          } else {
            ++out.refused;
          }
          if (record) {
            ++out.probes;
            res.sender_lateness.record(now - d);
          }
          ++i;
          // relaxed: a display hint
          if (progress != nullptr) progress->store(i, std::memory_order_relaxed);
          continue;
        }
        if (sender->send(flood)) {
          ++accepted;
          if (now >= measure_from) ++flood_measured;
          flood = make_event(++g, 0, kFloodEvent);
        }
      }
      t_stop = now_ns();
      sender.reset();
    });
  }
  res.error = error;
  if (res.error.empty()) sys.drain();
  const SinkTotals totals = sys.stop();
  res.lost = out.refused;
  res.latency = totals.sinks.latency;
  res.events = res.latency.count();
  if (res.error.empty() && t_stop > measure_from) {
    const double span = static_cast<double>(t_stop - measure_from) / 1e9;
    out.flood_eps = static_cast<double>(flood_measured) / span;
    res.achieved_eps = static_cast<double>(out.probes - std::min(out.probes, out.refused)) / span;
  }
  if (res.error.empty()) check_deliveries(res, totals, accepted, 1);
  return out;
}

/// Resolves and checks the cores of a scenario against this machine.
void resolve_cores(Scenario& s, const std::string& file) {
  const auto usable = usable_cores();
  if (usable.empty()) throw std::runtime_error("no usable cores (sched_getaffinity failed)");
  if (s.producer_cores.empty()) s.producer_cores = {usable.front()};
  if (s.worker_cores.empty()) {
    for (int c : usable) {
      if (std::find(s.producer_cores.begin(), s.producer_cores.end(), c) ==
          s.producer_cores.end()) {
        s.worker_cores.push_back(c);
      }
    }
    if (s.worker_cores.empty()) s.worker_cores = {usable.back()};
  }
  for (const auto* key : {"producer_cores", "worker_cores"}) {
    const auto& v = std::string_view(key) == "producer_cores" ? s.producer_cores : s.worker_cores;
    for (int c : v) {
      if (std::find(usable.begin(), usable.end(), c) == usable.end()) {
        std::string list;
        for (int u : usable) {
          if (!list.empty()) list += ',';
          list += std::to_string(u);
        }
        throw ScenarioError(
            file, s.line, s.name + "." + key,
            "core " + std::to_string(c) + " is not usable here (usable: " + list + ")");
      }
    }
  }
}

double estimate_seconds(const Scenario& s, std::size_t systems) {
  if (s.kind == ScenarioKind::request_reply) return request_reply_seconds(s);
  if (s.kind == ScenarioKind::urgent_under_load) {
    return 2.0 * s.repeats * (s.duration_s + s.warmup_s + 0.05);
  }
  if (s.kind == ScenarioKind::retry_dlq) {
    return s.repeats * (static_cast<double>(s.events + s.warmup_events) / 2e6 +
                        static_cast<double>(s.rates.size()) * (s.duration_s + s.warmup_s + 0.05));
  }
  const double variants = s.kind == ScenarioKind::fanout ? static_cast<double>(s.subscribers.size())
                          : s.kind == ScenarioKind::partitions_scaling
                              ? static_cast<double>(s.partitions.size())
                              : 1.0;
  if (s.is_latency()) {
    const double per = s.duration_s + s.warmup_s + 0.05;
    return variants * static_cast<double>(s.rates.size()) * s.repeats *
           static_cast<double>(systems + (s.control ? 1 : 0)) * per;
  }
  return variants * s.repeats * static_cast<double>(systems) *
         static_cast<double>(s.events + s.warmup_events) / 2e6;
}

struct SystemSlot {
  std::string name;
  std::string skip_reason;  // non-empty: not run
};

}  // namespace

int run_benchmarks(const RunnerOptions& opts) {
  ScenarioFile file = load_scenarios(opts.scenarios_file);
  if (opts.quick) make_quick(file);
  for (auto& s : file.scenarios)
    resolve_cores(s, file.source);

  // The engine config is checked before anything runs: one ringflow cannot start on is an
  // error (ConfigError), not a ringflow row skipped after a minute of baselines.
  std::string engine_config_text;
  if (!opts.engine_config.empty()) {
    engine_config_text = ringflow::read_config_file(opts.engine_config);
    ringflow::validate(ringflow::parse_config(engine_config_text, opts.engine_config.string()),
                       ringflow::Topology::machine());
  }
  std::filesystem::create_directories(opts.out_dir / "hist");
  const std::string started = now_utc();

  // Which systems can be built at all (once, not per trial).
  std::map<std::string, std::string> unavailable;
  for (const auto& name : known_systems()) {
    std::string why;
    if (!make_system(name, why)) unavailable[name] = why.empty() ? "cannot be built" : why;
  }

  double total_s = 0;
  for (const auto& s : file.scenarios)
    total_s += estimate_seconds(s, s.systems.size());
  ProgressLine progress(opts.progress && isatty(STDERR_FILENO) != 0, total_s);

  std::vector<Row> rows;
  std::vector<std::string> notes;
  std::vector<std::string> errors;
  std::ostringstream pinning;  // JSON objects for meta.json
  std::ostringstream skipped;  // likewise
  bool first_pin = true;
  bool first_skip = true;
  auto skip = [&](const std::string& scenario, const std::string& system, const std::string& why) {
    skipped << (first_skip ? "" : ",") << "\n    {\"scenario\": \"" << json_escape(scenario)
            << "\", \"system\": \"" << json_escape(system) << "\", \"reason\": \""
            << json_escape(why) << "\"}";
    first_skip = false;
    notes.push_back(scenario + (system.empty() ? "" : " / " + system) + ": " + why);
  };

  for (const Scenario& s : file.scenarios) {
    if (s.kind == ScenarioKind::request_reply) {
      // Its own systems: ringflow's request/reply against a hand-written request ring +
      // reply ring (the others have no request/reply to compare).
      progress.phase(s.name + " | ringflow, ring_pair, platform_control", 1);
      run_request_reply(s, rows, errors, progress.counter());
      continue;
    }
    std::vector<SystemSlot> systems;
    for (const auto& name : s.systems) {
      SystemSlot slot{name, {}};
      if (auto it = unavailable.find(name); it != unavailable.end()) {
        slot.skip_reason = it->second;
        skip(s.name, name, "skipped: " + it->second);
      }
      systems.push_back(slot);
    }

    RunSpec base;
    base.mode = s.is_latency() ? RunMode::latency : RunMode::max_throughput;
    base.producers = s.producers;
    base.capacity = s.capacity;
    base.producer_cores = s.producer_cores;
    base.worker_cores = s.worker_cores;
    base.engine_config = opts.engine_config.string();

    std::map<std::string, std::string> placements;
    if (s.kind == ScenarioKind::urgent_under_load || s.kind == ScenarioKind::retry_dlq) {
      const bool urgent_kind = s.kind == ScenarioKind::urgent_under_load;
      RunSpec spec = base;
      spec.mode = urgent_kind ? RunMode::latency : RunMode::max_throughput;
      if (urgent_kind) {
        spec.handler_work_ns = s.handler_work_ns;
      } else {
        spec.fail_share = s.fail_share;
        spec.retry_share = s.retry_share;
      }
      std::vector<std::string> able;
      for (const auto& slot : systems) {
        if (!slot.skip_reason.empty()) continue;
        std::string why;
        auto sys = make_system(slot.name, why);
        std::string reason = sys ? sys->unsupported(spec) : why;
        if (reason.empty() && urgent_kind && !sys->has_urgent_lane()) {
          reason = slot.name +
                   " has no urgent lane (no priority publish): nothing to compare, no numbers";
        }
        if (reason.empty() && !urgent_kind && !sys->has_retries()) {
          reason = slot.name + " has no retry machinery and no dead-letter topic: no numbers";
        }
        if (!reason.empty()) {
          skip(s.name, slot.name, "skipped: " + reason);
          continue;
        }
        able.push_back(slot.name);
      }
      auto record = [&](Aggregate& a, const TrialResult& r, const std::string& where) {
        if (!r.error.empty()) {
          a.errors.push_back(r.error);
          errors.push_back(s.name + where + ": " + r.error);
        } else {
          a.achieved.push_back(r.achieved_eps);
        }
        a.latency.merge(r.latency);
        a.sender_lateness.merge(r.sender_lateness);
        a.events += r.events;
        a.lost += r.lost;
      };
      auto emit = [&](const Variant& v, const std::string& name, double offered, Aggregate& a,
                      bool latency, const std::string& note) {
        Row row = make_row(s, v, name, offered, a, latency);
        row.note = row.note.empty() ? note : note + "; " + row.note;
        if (row.has_latency) {
          const std::string csv = "hist/" + file_stem(s, v, offered, name) + ".csv";
          a.latency.write_percentile_csv(opts.out_dir / csv);
          row.histogram_csv = csv;
        }
        rows.push_back(std::move(row));
      };
      for (const auto& name : able) {
        if (urgent_kind) {
          const Variant lanes[2] = {{"urgent", 1, 0}, {"normal", 1, 0}};
          Aggregate agg[2];
          std::vector<double> flood[2];
          std::uint64_t probes[2] = {0, 0};
          std::uint64_t refused[2] = {0, 0};
          for (unsigned rep = 0; rep < s.repeats; ++rep) {
            for (int lane = 0; lane < 2; ++lane) {  // interleaved: urgent normal urgent ...
              progress.phase(s.name + " " + lanes[lane].label + " probes @" + format_rate(s.rate) +
                                 "/s | " + name + " rep " + std::to_string(rep + 1) + "/" +
                                 std::to_string(s.repeats),
                             1);
              std::string why;
              auto sys = make_system(name, why);
              UrgentTrial u;
              try {
                u = run_urgent_trial(*sys, spec, s.rate, s.duration_s, s.warmup_s, lane == 0,
                                     progress.counter());
              } catch (const std::exception& e) {
                u.r.error = e.what();
              }
              placements[name] = sys->placement();
              record(agg[lane], u.r, " " + lanes[lane].label + " / " + name);
              if (u.r.error.empty()) flood[lane].push_back(u.flood_eps);
              probes[lane] += u.probes;
              refused[lane] += u.refused;
            }
          }
          for (int lane = 0; lane < 2; ++lane) {
            std::sort(flood[lane].begin(), flood[lane].end());
            std::string note =
                std::string(lane == 0 ? "probes on the urgent lane"
                                      : "probes on the normal lane (baseline)") +
                "; flood " +
                (flood[lane].empty() ? std::string("-")
                                     : format_rate(flood[lane][flood[lane].size() / 2]) +
                                           " ev/s (" + format_rate(flood[lane].front()) + "-" +
                                           format_rate(flood[lane].back()) + ")") +
                ", handler work " + std::to_string(s.handler_work_ns) +
                " ns/flood event; probes refused " + std::to_string(refused[lane]) + " (" +
                std::to_string(probes[lane]) + " measured sent)";
            emit(lanes[lane], name, s.rate, agg[lane], true, note);
          }
          continue;
        }
        // retry_dlq: max throughput, then open loop at each rate.
        const Variant none{};
        {
          Aggregate a;
          DeliveryCounts c;
          for (unsigned rep = 0; rep < s.repeats; ++rep) {
            progress.phase(s.name + " | " + name + " rep " + std::to_string(rep + 1) + "/" +
                               std::to_string(s.repeats),
                           std::max(s.producers, 1u));
            std::string why;
            auto inner = make_system(name, why);
            Capture sys(*inner);
            TrialResult r;
            try {
              r = run_throughput_trial(sys, spec, s.events, s.warmup_events, progress.counter());
            } catch (const std::exception& e) {
              r.error = e.what();
            }
            placements[name] = inner->placement();
            record(a, r, " / " + name);
            c.add(sys.totals);
          }
          emit(none, name, 0, a, false, c.note());
        }
        RunSpec lat = spec;
        lat.mode = RunMode::latency;
        for (const double rate : s.rates) {
          Aggregate a;
          DeliveryCounts c;
          for (unsigned rep = 0; rep < s.repeats; ++rep) {
            progress.phase(s.name + " @" + format_rate(rate) + "/s | " + name + " rep " +
                               std::to_string(rep + 1) + "/" + std::to_string(s.repeats),
                           std::max(s.producers, 1u));
            std::string why;
            auto inner = make_system(name, why);
            Capture sys(*inner);
            TrialResult r;
            try {
              r = run_latency_trial(sys, lat, rate, s.duration_s, s.warmup_s, progress.counter());
            } catch (const std::exception& e) {
              r.error = e.what();
            }
            placements[name] = inner->placement();
            record(a, r, " @" + format_rate(rate) + " / " + name);
            c.add(sys.totals);
          }
          emit(none, name, rate, a, true, c.note());
        }
      }
    }
    for (const Variant& v : variants_of(s)) {
      RunSpec spec = base;
      spec.subscribers = v.subscribers;
      spec.partitions = v.partitions;
      // Per-variant support check (e.g. a system without fan-out).
      std::vector<SystemSlot> active = systems;
      for (auto& slot : active) {
        if (!slot.skip_reason.empty()) continue;
        std::string why;
        auto sys = make_system(slot.name, why);
        const std::string reason = sys ? sys->unsupported(spec) : why;
        if (!reason.empty()) {
          slot.skip_reason = reason;
          skip(s.name + (v.label.empty() ? "" : " " + v.label), slot.name, "skipped: " + reason);
        }
      }

      auto run_one = [&](const std::string& name, double rate,
                         const std::string& label) -> TrialResult {
        progress.phase(label, std::max(s.producers, 1u));
        std::string why;
        auto sys = make_system(name, why);
        TrialResult r;
        if (!sys) {
          r.error = why;
          return r;
        }
        try {
          r = s.is_latency()
                  ? run_latency_trial(*sys, spec, rate, s.duration_s, s.warmup_s,
                                      progress.counter())
                  : run_throughput_trial(*sys, spec, s.events, s.warmup_events, progress.counter());
        } catch (const std::exception& e) {
          r.error = e.what();
        }
        placements[name] = sys->placement();
        return r;
      };

      if (!s.is_latency()) {
        std::map<std::string, Aggregate> agg;
        for (unsigned rep = 0; rep < s.repeats; ++rep) {
          for (const auto& slot : active) {  // interleaved: A B C A B C ...
            if (!slot.skip_reason.empty()) continue;
            const std::string label = s.name + (v.label.empty() ? "" : " " + v.label) + " | " +
                                      slot.name + " rep " + std::to_string(rep + 1) + "/" +
                                      std::to_string(s.repeats);
            TrialResult r = run_one(slot.name, 0, label);
            Aggregate& a = agg[slot.name];
            if (!r.error.empty()) {
              a.errors.push_back(r.error);
              errors.push_back(s.name + " / " + slot.name + ": " + r.error);
            } else {
              a.achieved.push_back(r.achieved_eps);
            }
            a.events += r.events;
            a.lost += r.lost;
          }
        }
        for (const auto& slot : active) {
          if (slot.skip_reason.empty())
            rows.push_back(make_row(s, v, slot.name, 0, agg[slot.name], false));
        }
        continue;
      }

      // Latency: rate by rate; each rate's trials interleaved and repeated.
      std::map<std::string, double> saturated_at;
      for (const double rate : s.rates) {
        std::map<std::string, Aggregate> agg;
        SpinnerStats spinner_total;
        Histogram control_sender_only;  // the old, sender-only control, for its note
        std::uint64_t control_gaps = 0;
        std::uint64_t control_gaps_dropped = 0;
        Histogram so_far;
        progress.p99_so_far(std::nullopt);
        for (unsigned rep = 0; rep < s.repeats; ++rep) {
          for (const auto& slot : active) {
            if (!slot.skip_reason.empty() || saturated_at.count(slot.name) != 0) continue;
            const std::string label = s.name + (v.label.empty() ? "" : " " + v.label) + " @" +
                                      format_rate(rate) + "/s | " + slot.name + " rep " +
                                      std::to_string(rep + 1) + "/" + std::to_string(s.repeats);
            TrialResult r = run_one(slot.name, rate, label);
            Aggregate& a = agg[slot.name];
            if (!r.error.empty()) {
              a.errors.push_back(r.error);
              errors.push_back(s.name + " @" + format_rate(rate) + " / " + slot.name + ": " +
                               r.error);
            } else {
              a.achieved.push_back(r.achieved_eps);
            }
            a.latency.merge(r.latency);
            a.sender_lateness.merge(r.sender_lateness);
            a.events += r.events;
            a.lost += r.lost;
            so_far.merge(r.latency);
            progress.p99_so_far(so_far.value_at_percentile(99));
          }
          if (s.control) {
            progress.phase(s.name + " @" + format_rate(rate) + "/s | platform_control rep " +
                               std::to_string(rep + 1) + "/" + std::to_string(s.repeats),
                           1);
            ControlSpec cs;
            cs.rate_eps = rate;
            cs.warmup_events = static_cast<std::uint64_t>(std::llround(rate * s.warmup_s));
            cs.events = std::max<std::uint64_t>(
                1, static_cast<std::uint64_t>(std::llround(rate * s.duration_s)));
            cs.sender_core = s.producer_cores.front();
            cs.spinner_core = s.worker_cores.front();
            cs.progress = progress.counter();
            Aggregate& a = agg["platform_control"];
            try {
              const ControlResult cr = run_platform_control(cs);
              const double span = static_cast<double>(cr.send.last_send_ns - cr.measured_start_ns);
              a.achieved.push_back(span > 0 ? static_cast<double>(cs.events) / (span / 1e9) : 0.0);
              a.latency.merge(cr.latency);  // two-core: max(sender lateness, worker stall)
              a.events += cr.latency.count();
              control_sender_only.merge(cr.lateness);
              control_gaps += cr.timeline.gaps.size();
              control_gaps_dropped += cr.timeline.dropped;
              spinner_total.gaps.merge(cr.spinner.gaps);
              spinner_total.spun_ns += cr.spinner.spun_ns;
              spinner_total.gaps_over_10us += cr.spinner.gaps_over_10us;
              spinner_total.gaps_over_1ms += cr.spinner.gaps_over_1ms;
              spinner_total.lost_ns_over_10us += cr.spinner.lost_ns_over_10us;
            } catch (const std::exception& e) {
              a.errors.push_back(e.what());
              errors.push_back(s.name + " / platform_control: " + e.what());
            }
          }
        }
        auto emit = [&](const std::string& name, const std::string& note) {
          Row row = make_row(s, v, name, rate, agg[name], true);
          if (!note.empty()) row.note = row.note.empty() ? note : row.note + "; " + note;
          if (row.has_latency) {
            const std::string csv = "hist/" + file_stem(s, v, rate, name) + ".csv";
            agg[name].latency.write_percentile_csv(opts.out_dir / csv);
            row.histogram_csv = csv;
          }
          rows.push_back(std::move(row));
        };
        for (const auto& slot : active) {
          if (!slot.skip_reason.empty() || saturated_at.count(slot.name) != 0) continue;
          emit(slot.name, {});
          const Row& row = rows.back();
          if (s.kind == ScenarioKind::latency_curve && agg[slot.name].errors.empty() &&
              (row.achieved_eps < s.saturation * rate || row.lost * 1000 > row.events + row.lost)) {
            saturated_at[slot.name] = rate;
            rows.back().note += (rows.back().note.empty() ? "" : "; ") +
                                std::string("saturated: higher rates skipped");
          }
        }
        if (s.control) {
          // The row's percentiles are the two-core control (platform_control.hpp); the note
          // keeps the sender-only figure (the control before it covered the worker core) and
          // the worker-core spinner's statistics.
          const std::string dropped = control_gaps_dropped == 0
                                          ? std::string()
                                          : " (" + std::to_string(control_gaps_dropped) +
                                                " did not fit: the control UNDER-states)";
          char buf[400];
          std::snprintf(
              buf, sizeof buf,
              "sender-only p99 %s, p99.9 %s, max %s; spinner core %d: %.2f%% of time in gaps "
              ">10us, %llu gaps >1ms, longest %s; %llu gaps >1us on its timeline%s",
              format_ns(control_sender_only.value_at_percentile(99)).c_str(),
              format_ns(control_sender_only.value_at_percentile(99.9)).c_str(),
              format_ns(control_sender_only.max()).c_str(), s.worker_cores.front(),
              spinner_total.lost_share_10us() * 100.0,
              static_cast<unsigned long long>(spinner_total.gaps_over_1ms),
              format_ns(spinner_total.gaps.max()).c_str(),
              static_cast<unsigned long long>(control_gaps), dropped.c_str());
          emit("platform_control", buf);
        }
      }
    }

    pinning << (first_pin ? "" : ",") << "\n    {\"scenario\": \"" << json_escape(s.name)
            << "\", \"producer_cores\": " << json_ints(s.producer_cores)
            << ", \"worker_cores\": " << json_ints(s.worker_cores) << ", \"systems\": {";
    bool first = true;
    for (const auto& [name, where] : placements) {
      pinning << (first ? "" : ", ") << "\"" << json_escape(name) << "\": \"" << json_escape(where)
              << "\"";
      first = false;
    }
    if (s.control && s.is_latency()) {
      pinning << (first ? "" : ", ") << "\"platform_control\": \"sender on core "
              << s.producer_cores.front() << ", spinner on core " << s.worker_cores.front() << "\"";
    }
    pinning << "}}";
    first_pin = false;
  }

  const auto ratios = compute_ratios(rows);
  write_summary_json(opts.out_dir / "summary.json", rows);
  write_ratios_json(opts.out_dir / "ratios.json", ratios);

  // meta.json
  std::ostringstream m;
  std::string cmd;
  for (const auto& a : opts.command_line)
    cmd += (cmd.empty() ? "" : " ") + shell_quote(a);
  const std::string src = RINGFLOW_SOURCE_DIR;
  const std::string rev = run_command("git -C " + shell_quote(src) + " rev-parse HEAD 2>/dev/null");
  const std::string dirty =
      rev.empty() ? ""
                  : run_command("git -C " + shell_quote(src) +
                                " status --porcelain --untracked-files=no 2>/dev/null | head -1");
#if defined(__clang__)
  const std::string compiler = std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  const std::string compiler = std::string("g++ ") + __VERSION__;
#else
  const std::string compiler = "unknown";
#endif
  const auto usable = usable_cores();
  m << "{\n  \"command\": \"" << json_escape(cmd) << "\",\n  \"cwd\": \""
    << json_escape(std::filesystem::current_path().string()) << "\",\n  \"started_utc\": \""
    << started << "\",\n  \"finished_utc\": \"" << now_utc()
    << "\",\n  \"quick\": " << (opts.quick ? "true" : "false")
    << ",\n  \"scenario_file\": {\"path\": \"" << json_escape(opts.scenarios_file.string())
    << "\", \"contents\": \"" << json_escape(file.text)
    << "\"},\n  \"engine_config\": {\"path\": \"" << json_escape(opts.engine_config.string())
    << "\", \"contents\": "
    << (opts.engine_config.empty() ? "null" : "\"" + json_escape(engine_config_text) + "\"")
    << "},\n  \"git_revision\": " << (rev.empty() ? "null" : "\"" + json_escape(rev) + "\"")
    << ",\n  \"git_dirty\": " << (rev.empty() ? "null" : (dirty.empty() ? "false" : "true"))
    << ",\n  \"compiler\": \"" << json_escape(compiler) << "\",\n  \"cxx_flags\": \""
    << json_escape(RINGFLOW_BENCH_CXX_FLAGS) << "\",\n  \"build_type\": \""
    << json_escape(RINGFLOW_BENCH_BUILD_TYPE) << "\",\n  \"tbb_version\": \"" << TBB_VERSION_STRING
    << "\",\n  \"cpu_model\": \"" << json_escape(cpu_model())
    << "\",\n  \"cores_online\": " << std::thread::hardware_concurrency()
    << ",\n  \"cores_usable\": " << json_ints(usable) << ",\n  \"pinning\": [" << pinning.str()
    << "\n  ],\n  \"skipped\": [" << skipped.str() << "\n  ],\n  \"errors\": [";
  for (std::size_t i = 0; i < errors.size(); ++i) {
    m << (i ? "," : "") << "\n    \"" << json_escape(errors[i]) << "\"";
  }
  m << "\n  ]\n}\n";
  {
    std::ofstream out(opts.out_dir / "meta.json", std::ios::binary | std::ios::trunc);
    out << m.str();
    if (!out) throw std::runtime_error("cannot write " + (opts.out_dir / "meta.json").string());
  }

  std::vector<std::string> all_notes = notes;
  for (const auto& e : errors)
    all_notes.push_back("ERROR " + e);
  print_table(stdout, rows, ratios, all_notes);
  std::printf("\nresults: %s (summary.json, ratios.json, meta.json, hist/*.csv)\n",
              opts.out_dir.string().c_str());
  return errors.empty() ? 0 : 1;
}

}  // namespace ringflow::bench
