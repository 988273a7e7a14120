#include "harness/runner.hpp"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <barrier>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>

#include "harness/affinity.hpp"
#include "harness/clock.hpp"
#include "harness/meta.hpp"
#include "harness/open_loop.hpp"
#include "harness/platform_control.hpp"
#include "harness/request_reply.hpp"
#include "ringflow/config.hpp"
#include "ringflow/topology.hpp"

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
  res.delivery = DeliveryCounts::of(totals);
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
  res.delivery = DeliveryCounts::of(totals);
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
// retry_dlq counts
// ------------------------------------------------------------------------------------------

void DeliveryCounts::add(const DeliveryCounts& o) noexcept {
  failed += o.failed;
  retried += o.retried;
  retries += o.retries;
  dead_letters += o.dead_letters;
  dead_lettered += o.dead_lettered;
}

DeliveryCounts DeliveryCounts::of(const SinkTotals& t) noexcept {
  return {t.failed, t.retried, t.retries, t.dead_letters, t.dead_lettered};
}

std::string DeliveryCounts::note() const {
  const bool ok = dead_letters == failed && dead_lettered == failed && retries == retried;
  return std::string(ok ? "" : "MISMATCH: ") + "retries " + std::to_string(retries) +
         " (handler asked " + std::to_string(retried) + "), dead letters " +
         std::to_string(dead_letters) + " (handler failed " + std::to_string(failed) +
         ", DLQ handler saw " + std::to_string(dead_lettered) + ")";
}

// ------------------------------------------------------------------------------------------
// urgent_under_load trial, cores
// ------------------------------------------------------------------------------------------

namespace {

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

}  // namespace

// ------------------------------------------------------------------------------------------
// the run: one function per scenario kind (kKinds), sharing the aggregation and the rows
// ------------------------------------------------------------------------------------------

namespace {

/// What the whole run collects; the scenario functions append to it.
struct RunContext {
  const RunnerOptions& opts;
  ProgressLine& progress;
  std::map<std::string, std::string> unavailable;  ///< systems this build cannot make, and why
  std::vector<Row> rows;
  std::vector<std::string> notes;   ///< printed under the table
  std::vector<std::string> errors;  ///< trial errors: meta.json, the table, the exit code
  Json pinning = Json::array();     ///< meta.json
  Json skipped = Json::array();     ///< meta.json

  void skip(const std::string& scenario, const std::string& system, const std::string& why) {
    Json j;
    j["scenario"] = scenario;
    j["system"] = system;
    j["reason"] = why;
    skipped.push_back(std::move(j));
    notes.push_back(scenario + (system.empty() ? "" : " / " + system) + ": " + why);
  }
};

struct Variant {
  std::string label;  // "" / "subscribers=4" / "partitions=2"
  unsigned subscribers = 1;
  unsigned partitions = 0;  // 0: each system's default
};

/// A row's trials, pooled: throughput median (min-max) over the trials that ran, latency
/// samples merged, losses and errors summed.
struct Aggregate {
  std::vector<double> achieved;
  Histogram latency;
  Histogram sender_lateness;
  std::uint64_t events = 0;
  std::uint64_t lost = 0;
  std::vector<std::string> errors;
  DeliveryCounts delivery;

  /// `where` names the trial in the run's error list ("max_throughput / ringflow").
  void add(const TrialResult& r, RunContext& ctx, const std::string& where) {
    if (!r.error.empty()) {
      errors.push_back(r.error);
      ctx.errors.push_back(where + ": " + r.error);
    } else {
      achieved.push_back(r.achieved_eps);
    }
    latency.merge(r.latency);
    sender_lateness.merge(r.sender_lateness);
    events += r.events;
    lost += r.lost;
    delivery.add(r.delivery);
  }
};

Row make_row(const Scenario& s, const Variant& v, const std::string& system, double offered,
             const Aggregate& a, bool latency) {
  Row r;
  r.scenario = s.name;
  r.variant = v.label;
  r.system = system;
  r.offered_eps = offered;
  if (!a.achieved.empty()) {
    r.achieved_eps = median(a.achieved);
    const auto [lo, hi] = std::minmax_element(a.achieved.begin(), a.achieved.end());
    r.achieved_min_eps = *lo;
    r.achieved_max_eps = *hi;
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

std::string rep_text(unsigned rep, unsigned repeats) {
  return " rep " + std::to_string(rep + 1) + "/" + std::to_string(repeats);
}

/// The progress line's label of one trial: "<where> | <system> rep i/n".
std::string trial_label(const std::string& where, const std::string& system, unsigned rep,
                        unsigned repeats) {
  std::string label = where;
  label += " | ";
  label += system;
  label += rep_text(rep, repeats);
  return label;
}

/// One scenario being run: its base RunSpec, the systems that can run it, where they ran.
class ScenarioRun {
 public:
  ScenarioRun(RunContext& context, const Scenario& scenario) : ctx(context), s(scenario) {
    base.mode = s.is_latency() ? RunMode::latency : RunMode::max_throughput;
    base.producers = s.producers;
    base.capacity = s.capacity;
    base.producer_cores = s.producer_cores;
    base.worker_cores = s.worker_cores;
    base.engine_config = ctx.opts.engine_config.string();
  }

  /// The systems of the scenario that can run `spec`; each one that cannot is reported skipped
  /// (under `where`, e.g. "fanout subscribers=4"), with `extra` giving a reason of its own.
  std::vector<std::string> able(const RunSpec& spec, const std::string& where,
                                const std::function<std::string(System&)>& extra = {}) {
    std::vector<std::string> out;
    for (const auto& name : s.systems) {
      if (auto it = ctx.unavailable.find(name); it != ctx.unavailable.end()) {
        if (!unavailable_noted_) ctx.skip(s.name, name, "skipped: " + it->second);
        continue;
      }
      std::string why;
      auto sys = make_system(name, why);
      std::string reason = sys ? sys->unsupported(spec) : why;
      if (reason.empty() && extra) reason = extra(*sys);
      if (!reason.empty()) {
        ctx.skip(where, name, "skipped: " + reason);
        continue;
      }
      out.push_back(name);
    }
    unavailable_noted_ = true;
    return out;
  }

  /// One trial of a fresh `name`: `body` runs it; an exception is the trial's error.
  TrialResult trial(const std::string& name, const std::string& label, unsigned scale,
                    const std::function<TrialResult(System&)>& body) {
    ctx.progress.phase(label, scale);
    std::string why;
    auto sys = make_system(name, why);
    TrialResult r;
    if (!sys) {
      r.error = why;
      return r;
    }
    try {
      r = body(*sys);
    } catch (const std::exception& e) {
      r.error = e.what();
    }
    placements_[name] = sys->placement();
    return r;
  }

  /// Appends the row of (variant, system, offered) from its trials, with its histogram CSV.
  void emit(const Variant& v, const std::string& name, double offered, const Aggregate& a,
            bool latency, const std::string& note = {}) {
    Row row = make_row(s, v, name, offered, a, latency);
    if (!note.empty()) row.note = row.note.empty() ? note : note + "; " + row.note;
    if (row.has_latency) {
      const std::string csv = "hist/" + file_stem(s, v, offered, name) + ".csv";
      a.latency.write_percentile_csv(ctx.opts.out_dir / csv);
      row.histogram_csv = csv;
    }
    ctx.rows.push_back(std::move(row));
  }

  /// meta.json's pinning entry of this scenario.
  void record_pinning() {
    Json j;
    j["scenario"] = s.name;
    j["producer_cores"] = s.producer_cores;
    j["worker_cores"] = s.worker_cores;
    Json systems = Json::object();
    for (const auto& [name, where] : placements_)
      systems[name] = where;
    if (s.control && s.is_latency()) {
      systems["platform_control"] = "sender on core " + std::to_string(s.producer_cores.front()) +
                                    ", spinner on core " + std::to_string(s.worker_cores.front());
    }
    j["systems"] = std::move(systems);
    ctx.pinning.push_back(std::move(j));
  }

  [[nodiscard]] unsigned producers() const { return std::max(s.producers, 1u); }

  RunContext& ctx;
  const Scenario& s;
  RunSpec base;

 private:
  std::map<std::string, std::string> placements_;
  bool unavailable_noted_ = false;
};

/// The platform control's trials at one rate, pooled, and the note of its row.
struct ControlAggregate {
  Aggregate agg;
  SpinnerStats spinner;
  Histogram sender_only;  // the old, sender-only control, for its note
  std::uint64_t gaps = 0;
  std::uint64_t gaps_dropped = 0;

  void run(ScenarioRun& run, double rate, unsigned rep) {
    const Scenario& s = run.s;
    run.ctx.progress.phase(
        s.name + " @" + format_rate(rate) + "/s | platform_control" + rep_text(rep, s.repeats), 1);
    ControlSpec cs;
    cs.rate_eps = rate;
    cs.warmup_events = static_cast<std::uint64_t>(std::llround(rate * s.warmup_s));
    cs.events =
        std::max<std::uint64_t>(1, static_cast<std::uint64_t>(std::llround(rate * s.duration_s)));
    cs.sender_core = s.producer_cores.front();
    cs.spinner_core = s.worker_cores.front();
    cs.progress = run.ctx.progress.counter();
    try {
      const ControlResult cr = run_platform_control(cs);
      const double span = static_cast<double>(cr.send.last_send_ns - cr.measured_start_ns);
      agg.achieved.push_back(span > 0 ? static_cast<double>(cs.events) / (span / 1e9) : 0.0);
      agg.latency.merge(cr.latency);  // two-core: max(sender lateness, worker stall)
      agg.events += cr.latency.count();
      sender_only.merge(cr.lateness);
      gaps += cr.timeline.gaps.size();
      gaps_dropped += cr.timeline.dropped;
      spinner.gaps.merge(cr.spinner.gaps);
      spinner.spun_ns += cr.spinner.spun_ns;
      spinner.gaps_over_10us += cr.spinner.gaps_over_10us;
      spinner.gaps_over_1ms += cr.spinner.gaps_over_1ms;
      spinner.lost_ns_over_10us += cr.spinner.lost_ns_over_10us;
    } catch (const std::exception& e) {
      agg.errors.push_back(e.what());
      run.ctx.errors.push_back(s.name + " / platform_control: " + e.what());
    }
  }

  /// The row's percentiles are the two-core control (platform_control.hpp); the note keeps the
  /// sender-only figure and the worker-core spinner's statistics.
  [[nodiscard]] std::string note(int spinner_core) const {
    const std::string dropped = gaps_dropped == 0 ? std::string()
                                                  : " (" + std::to_string(gaps_dropped) +
                                                        " did not fit: the control UNDER-states)";
    char buf[400];
    std::snprintf(buf, sizeof buf,
                  "sender-only p99 %s, p99.9 %s, max %s; spinner core %d: %.2f%% of time in gaps "
                  ">10us, %llu gaps >1ms, longest %s; %llu gaps >1us on its timeline%s",
                  format_ns(sender_only.value_at_percentile(99)).c_str(),
                  format_ns(sender_only.value_at_percentile(99.9)).c_str(),
                  format_ns(sender_only.max()).c_str(), spinner_core,
                  spinner.lost_share_10us() * 100.0,
                  static_cast<unsigned long long>(spinner.gaps_over_1ms),
                  format_ns(spinner.gaps.max()).c_str(), static_cast<unsigned long long>(gaps),
                  dropped.c_str());
    return buf;
  }
};

// ---- per kind ----

/// max_throughput (and fanout / partitions_scaling without mode = "latency"): the systems
/// interleaved (A B C A B C ...), `repeats` times, one row each.
void throughput_rows(ScenarioRun& run, const Variant& v, const RunSpec& spec) {
  const Scenario& s = run.s;
  const std::string where = s.name + (v.label.empty() ? "" : " " + v.label);
  const auto systems = run.able(spec, where);
  std::map<std::string, Aggregate> agg;
  for (unsigned rep = 0; rep < s.repeats; ++rep) {
    for (const auto& name : systems) {
      const TrialResult r = run.trial(
          name, trial_label(where, name, rep, s.repeats), run.producers(), [&](System& sys) {
            return run_throughput_trial(sys, spec, s.events, s.warmup_events,
                                        run.ctx.progress.counter());
          });
      agg[name].add(r, run.ctx, s.name + " / " + name);
    }
  }
  for (const auto& name : systems)
    run.emit(v, name, 0, agg[name], false);
}

/// latency_at_rate / latency_curve (and the variants with mode = "latency"): rate by rate, the
/// systems interleaved and repeated, then the platform control at the same rate. A
/// latency_curve stops a system's sweep at the first rate it cannot sustain.
void latency_rows(ScenarioRun& run, const Variant& v, const RunSpec& spec) {
  const Scenario& s = run.s;
  const std::string where = s.name + (v.label.empty() ? "" : " " + v.label);
  const auto systems = run.able(spec, where);
  std::map<std::string, bool> saturated;
  for (const double rate : s.rates) {
    const std::string where_at = where + " @" + format_rate(rate) + "/s";
    std::map<std::string, Aggregate> agg;
    ControlAggregate control;
    Histogram so_far;
    run.ctx.progress.p99_so_far(std::nullopt);
    for (unsigned rep = 0; rep < s.repeats; ++rep) {
      for (const auto& name : systems) {
        if (saturated[name]) continue;
        const TrialResult r = run.trial(
            name, trial_label(where_at, name, rep, s.repeats), run.producers(), [&](System& sys) {
              return run_latency_trial(sys, spec, rate, s.duration_s, s.warmup_s,
                                       run.ctx.progress.counter());
            });
        agg[name].add(r, run.ctx, s.name + " @" + format_rate(rate) + " / " + name);
        so_far.merge(r.latency);
        run.ctx.progress.p99_so_far(so_far.value_at_percentile(99));
      }
      if (s.control) control.run(run, rate, rep);
    }
    for (const auto& name : systems) {
      if (saturated[name]) continue;
      const Aggregate& a = agg[name];
      run.emit(v, name, rate, a, true);
      Row& row = run.ctx.rows.back();
      if (s.kind == ScenarioKind::latency_curve && a.errors.empty() &&
          (row.achieved_eps < s.saturation * rate || row.lost * 1000 > row.events + row.lost)) {
        saturated[name] = true;
        row.note += (row.note.empty() ? "" : "; ") + std::string("saturated: higher rates skipped");
      }
    }
    if (s.control) {
      run.emit(v, "platform_control", rate, control.agg, true,
               control.note(s.worker_cores.front()));
    }
  }
}

/// One row per variant, in throughput or latency mode.
void variant_rows(ScenarioRun& run, const std::vector<Variant>& variants) {
  for (const Variant& v : variants) {
    RunSpec spec = run.base;
    spec.subscribers = v.subscribers;
    spec.partitions = v.partitions;
    if (run.s.is_latency()) {
      latency_rows(run, v, spec);
    } else {
      throughput_rows(run, v, spec);
    }
  }
}

void run_single(ScenarioRun& run) {
  variant_rows(run, {Variant{}});
}

void run_fanout(ScenarioRun& run) {
  std::vector<Variant> vs;
  for (unsigned n : run.s.subscribers)
    vs.push_back({"subscribers=" + std::to_string(n), n, 0});
  variant_rows(run, vs);
}

void run_partitions(ScenarioRun& run) {
  std::vector<Variant> vs;
  for (unsigned n : run.s.partitions)
    vs.push_back({"partitions=" + std::to_string(n), 1, n});
  variant_rows(run, vs);
}

/// urgent_under_load: per system, probes on the urgent lane and (interleaved) on the normal
/// lane under the same flood; two rows, "urgent" and "normal".
void run_urgent(ScenarioRun& run) {
  const Scenario& s = run.s;
  RunSpec spec = run.base;
  spec.mode = RunMode::latency;
  spec.handler_work_ns = s.handler_work_ns;
  const auto systems = run.able(spec, s.name, [](System& sys) {
    return sys.has_urgent_lane()
               ? std::string()
               : sys.name() +
                     " has no urgent lane (no priority publish): nothing to compare, "
                     "no numbers";
  });
  const Variant lanes[2] = {{"urgent", 1, 0}, {"normal", 1, 0}};
  for (const auto& name : systems) {
    Aggregate agg[2];
    std::vector<double> flood[2];
    std::uint64_t probes[2] = {0, 0};
    std::uint64_t refused[2] = {0, 0};
    for (unsigned rep = 0; rep < s.repeats; ++rep) {
      for (int lane = 0; lane < 2; ++lane) {  // interleaved: urgent normal urgent ...
        UrgentTrial u;
        const TrialResult r =
            run.trial(name,
                      s.name + " " + lanes[lane].label + " probes @" + format_rate(s.rate) +
                          "/s | " + name + rep_text(rep, s.repeats),
                      1, [&](System& sys) {
                        u = run_urgent_trial(sys, spec, s.rate, s.duration_s, s.warmup_s, lane == 0,
                                             run.ctx.progress.counter());
                        return u.r;
                      });
        agg[lane].add(r, run.ctx, s.name + " " + lanes[lane].label + " / " + name);
        if (r.error.empty()) flood[lane].push_back(u.flood_eps);
        probes[lane] += u.probes;
        refused[lane] += u.refused;
      }
    }
    for (int lane = 0; lane < 2; ++lane) {
      std::sort(flood[lane].begin(), flood[lane].end());
      const std::string note = std::string(lane == 0 ? "probes on the urgent lane"
                                                     : "probes on the normal lane (baseline)") +
                               "; flood " +
                               (flood[lane].empty() ? std::string("-")
                                                    : format_rate(median(flood[lane])) + " ev/s (" +
                                                          format_rate(flood[lane].front()) + "-" +
                                                          format_rate(flood[lane].back()) + ")") +
                               ", handler work " + std::to_string(s.handler_work_ns) +
                               " ns/flood event; probes refused " + std::to_string(refused[lane]) +
                               " (" + std::to_string(probes[lane]) + " measured sent)";
      run.emit(lanes[lane], name, s.rate, agg[lane], true, note);
    }
  }
}

/// retry_dlq: per system, max throughput, then open loop at each rate, with handlers failing
/// and retrying a share of the events; each row's note checks the retry/dead-letter counts.
void run_retry_dlq(ScenarioRun& run) {
  const Scenario& s = run.s;
  RunSpec spec = run.base;
  spec.mode = RunMode::max_throughput;
  spec.fail_share = s.fail_share;
  spec.retry_share = s.retry_share;
  const auto systems = run.able(spec, s.name, [](System& sys) {
    return sys.has_retries()
               ? std::string()
               : sys.name() + " has no retry machinery and no dead-letter topic: no numbers";
  });
  RunSpec lat = spec;
  lat.mode = RunMode::latency;
  const Variant none{};
  for (const auto& name : systems) {
    Aggregate a;
    for (unsigned rep = 0; rep < s.repeats; ++rep) {
      a.add(run.trial(name, s.name + " | " + name + rep_text(rep, s.repeats), run.producers(),
                      [&](System& sys) {
                        return run_throughput_trial(sys, spec, s.events, s.warmup_events,
                                                    run.ctx.progress.counter());
                      }),
            run.ctx, s.name + " / " + name);
    }
    run.emit(none, name, 0, a, false, a.delivery.note());
    for (const double rate : s.rates) {
      Aggregate al;
      for (unsigned rep = 0; rep < s.repeats; ++rep) {
        al.add(
            run.trial(name,
                      s.name + " @" + format_rate(rate) + "/s | " + name + rep_text(rep, s.repeats),
                      run.producers(),
                      [&](System& sys) {
                        return run_latency_trial(sys, lat, rate, s.duration_s, s.warmup_s,
                                                 run.ctx.progress.counter());
                      }),
            run.ctx, s.name + " @" + format_rate(rate) + " / " + name);
      }
      run.emit(none, name, rate, al, true, al.delivery.note());
    }
  }
}

/// request_reply: its own systems (ringflow's request/reply against a hand-written request
/// ring + reply ring; the others have no request/reply to compare), request_reply.cpp.
void run_request_reply_kind(ScenarioRun& run) {
  run.ctx.progress.phase(run.s.name + " | ringflow, ring_pair, platform_control", 1);
  run_request_reply(run.s, run.ctx.rows, run.ctx.errors, run.ctx.progress.counter());
}

// ---- how long each kind takes (the progress line's estimate) ----

double variant_count(const Scenario& s) {
  return s.kind == ScenarioKind::fanout               ? static_cast<double>(s.subscribers.size())
         : s.kind == ScenarioKind::partitions_scaling ? static_cast<double>(s.partitions.size())
                                                      : 1.0;
}

double variant_seconds(const Scenario& s) {
  const auto systems = static_cast<double>(s.systems.size());
  if (s.is_latency()) {
    const double per = s.duration_s + s.warmup_s + 0.05;
    return variant_count(s) * static_cast<double>(s.rates.size()) * s.repeats *
           (systems + (s.control ? 1 : 0)) * per;
  }
  return variant_count(s) * s.repeats * systems * static_cast<double>(s.events + s.warmup_events) /
         2e6;
}

double urgent_seconds(const Scenario& s) {
  return 2.0 * s.repeats * (s.duration_s + s.warmup_s + 0.05);
}

double retry_dlq_seconds(const Scenario& s) {
  return s.repeats * (static_cast<double>(s.events + s.warmup_events) / 2e6 +
                      static_cast<double>(s.rates.size()) * (s.duration_s + s.warmup_s + 0.05));
}

struct KindEntry {
  ScenarioKind kind;
  void (*run)(ScenarioRun&);
  double (*seconds)(const Scenario&);
  bool pinning;  ///< has a meta.json pinning entry (request_reply reports its own placement)
};

constexpr std::array kKinds{
    KindEntry{ScenarioKind::max_throughput, run_single, variant_seconds, true},
    KindEntry{ScenarioKind::latency_at_rate, run_single, variant_seconds, true},
    KindEntry{ScenarioKind::latency_curve, run_single, variant_seconds, true},
    KindEntry{ScenarioKind::fanout, run_fanout, variant_seconds, true},
    KindEntry{ScenarioKind::partitions_scaling, run_partitions, variant_seconds, true},
    KindEntry{ScenarioKind::urgent_under_load, run_urgent, urgent_seconds, true},
    KindEntry{ScenarioKind::retry_dlq, run_retry_dlq, retry_dlq_seconds, true},
    KindEntry{ScenarioKind::request_reply, run_request_reply_kind, request_reply_seconds, false},
};

const KindEntry& kind_entry(ScenarioKind k) {
  for (const auto& e : kKinds) {
    if (e.kind == k) return e;
  }
  throw std::logic_error("ringflow-bench: no runner for scenario kind " +
                         std::string(to_string(k)));
}

Json meta_json(const RunnerOptions& opts, const ScenarioFile& file,
               const std::string& engine_config_text, const std::string& started, RunContext& ctx) {
  Json m;
  m["command"] = command_text(opts.command_line);
  m["cwd"] = std::filesystem::current_path().string();
  m["started_utc"] = started;
  m["finished_utc"] = now_utc();
  m["quick"] = opts.quick;
  m["scenario_file"] = {{"path", opts.scenarios_file.string()}, {"contents", file.text}};
  m["engine_config"] = {
      {"path", opts.engine_config.string()},
      {"contents", opts.engine_config.empty() ? Json(nullptr) : Json(engine_config_text)}};
  const Json facts = build_and_machine();
  for (const auto& [key, value] : facts.items())
    m[key] = value;
  m["pinning"] = std::move(ctx.pinning);
  m["skipped"] = std::move(ctx.skipped);
  m["errors"] = ctx.errors;
  return m;
}

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

  double total_s = 0;
  for (const auto& s : file.scenarios)
    total_s += kind_entry(s.kind).seconds(s);
  ProgressLine progress(opts.progress && isatty(STDERR_FILENO) != 0, total_s);

  RunContext ctx{opts, progress, {}, {}, {}, {}, Json::array(), Json::array()};
  // Which systems can be built at all (once, not per trial).
  for (const auto& name : known_systems()) {
    std::string why;
    if (!make_system(name, why)) ctx.unavailable[name] = why.empty() ? "cannot be built" : why;
  }

  for (const Scenario& s : file.scenarios) {
    const KindEntry& kind = kind_entry(s.kind);
    ScenarioRun run(ctx, s);
    kind.run(run);
    if (kind.pinning) run.record_pinning();
  }

  const auto ratios = compute_ratios(ctx.rows);
  write_summary_json(opts.out_dir / "summary.json", ctx.rows);
  write_ratios_json(opts.out_dir / "ratios.json", ratios);
  write_json(opts.out_dir / "meta.json", meta_json(opts, file, engine_config_text, started, ctx));

  std::vector<std::string> all_notes = ctx.notes;
  for (const auto& e : ctx.errors)
    all_notes.push_back("ERROR " + e);
  print_table(stdout, ctx.rows, ratios, all_notes);
  std::printf("\nresults: %s (summary.json, ratios.json, meta.json, hist/*.csv)\n",
              opts.out_dir.string().c_str());
  return ctx.errors.empty() ? 0 : 1;
}

}  // namespace ringflow::bench
