#include "harness/request_reply.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <thread>
#include <vector>

#include "harness/affinity.hpp"
#include "harness/clock.hpp"
#include "harness/histogram.hpp"
#include "harness/open_loop.hpp"
#include "harness/platform_control.hpp"
#include "ringflow/ringflow.hpp"

namespace ringflow::bench {

namespace {

constexpr std::size_t kWindow = 4096;  // requests in flight per open-loop caller, at most
constexpr std::int64_t kDeadlineNs = 100'000'000;  // a request's deadline: 100 ms after send

/// What one trial measured.
struct Trial {
  Histogram latency;          ///< round trips (open loop: from the scheduled send time)
  Histogram sender_lateness;  ///< open loop: send time - scheduled time
  std::uint64_t completed = 0;
  std::uint64_t failed = 0;  ///< refused at send, or ended other than replied
  double achieved = 0;       ///< round trips per second
  std::string error;
};

// ---- systems under test: one caller-side interface, two implementations

/// A ringflow engine whose one subscription replies with the request's payload. The shard
/// busy-spins on the worker core, like the ring pair's worker.
class RingflowEcho {
 public:
  RingflowEcho(int worker_core, unsigned callers) : engine_(config(worker_core, callers)) {
    topic_ = engine_.add_topic("rr.echo");
    engine_.subscribe("rr.echo",
                      [this](const EventView& e) { (void)engine_.reply(e, e.payload()); });
    engine_.start();
  }
  ~RingflowEcho() { engine_.stop(); }
  RingflowEcho(const RingflowEcho&) = delete;
  RingflowEcho& operator=(const RingflowEcho&) = delete;

  /// One caller's side (one producer; its thread only).
  class Caller {
   public:
    Caller(RingflowEcho& e, unsigned /*index*/) : owner_(&e) {
      ProducerOptions o;
      o.max_pending_requests = kWindow;
      producer_ = e.engine_.make_producer(o);
      handles_.resize(kWindow);
    }
    /// Sends request `seq` (open loop: does not wait). False when refused.
    bool send(std::uint64_t seq) {
      std::memcpy(payload_, &seq, sizeof seq);
      ReplyHandle& h = handles_[seq % kWindow];
      h = producer_.request(owner_->topic_, key(seq),
                            std::span<const std::byte>(payload_, sizeof payload_),
                            ringflow::now_ns() + kDeadlineNs);
      const RequestStatus s = h.poll();
      return s == RequestStatus::pending || s == RequestStatus::replied;
    }
    /// Whether request `seq` has ended; `ok` says whether it was replied to.
    bool done(std::uint64_t seq, bool& ok) {
      ReplyHandle& h = handles_[seq % kWindow];
      const RequestStatus s = h.poll();
      if (s == RequestStatus::pending) return false;
      ok = s == RequestStatus::replied && h.reply().size() == sizeof payload_;
      h = ReplyHandle();
      return true;
    }
    /// Closed loop: one request, waited for.
    bool round_trip(std::uint64_t seq) {
      std::memcpy(payload_, &seq, sizeof seq);
      ReplyHandle h = producer_.request(owner_->topic_, key(seq),
                                        std::span<const std::byte>(payload_, sizeof payload_),
                                        ringflow::now_ns() + kDeadlineNs);
      return h.wait() == RequestStatus::replied;
    }

   private:
    static std::string_view key(std::uint64_t seq) noexcept {
      static constexpr std::string_view kKeys[4] = {"k0", "k1", "k2", "k3"};
      return kKeys[seq % 4];
    }
    RingflowEcho* owner_;
    Producer producer_;
    std::vector<ReplyHandle> handles_;
    std::byte payload_[16] = {};
  };

 private:
  static EngineConfig config(int worker_core, unsigned callers) {
    EngineConfig c;
    c.partitions = 4;
    c.shards = 1;
    if (worker_core >= 0) c.shard_cores = {worker_core};
    c.pin_threads = worker_core >= 0;
    c.wait_strategy = WaitStrategyKind::busy_spin;
    c.ring_capacity = 8192;
    c.batch_size = 64;
    c.max_producers = std::max(4U, callers + 1);
    return c;
  }
  Engine engine_;
  TopicId topic_;
};

/// The control: per caller a request ring and a reply ring; one worker thread spins over the
/// request rings and echoes every request into its caller's reply ring. The least a round trip
/// through another core can cost.
class RingPair {
 public:
  RingPair(int worker_core, unsigned callers) {
    for (unsigned i = 0; i < callers; ++i)
      pairs_.push_back(std::make_unique<Pair>());
    worker_ = std::thread([this, worker_core] {
      (void)pin_current_thread(worker_core);
      std::uint64_t seq = 0;
      while (!stop_.load(std::memory_order_acquire)) {  // acquire: pairs with the destructor
        for (auto& p : pairs_) {
          if (p->requests.try_pop(seq)) {
            while (!p->replies.try_push(seq) && !stop_.load(std::memory_order_relaxed))
              cpu_relax();
          }
        }
      }
    });
  }
  ~RingPair() {
    stop_.store(true, std::memory_order_release);
    worker_.join();
  }
  RingPair(const RingPair&) = delete;
  RingPair& operator=(const RingPair&) = delete;

 private:
  struct Pair {
    SpscRing<std::uint64_t> requests{8192};
    SpscRing<std::uint64_t> replies{8192};
  };

 public:
  class Caller {
   public:
    Caller(RingPair& rp, unsigned index) : pair_(rp.pairs_[index].get()), done_(kWindow, 0) {}
    bool send(std::uint64_t seq) { return pair_->requests.try_push(seq); }
    bool done(std::uint64_t seq, bool& ok) {
      std::uint64_t r = 0;
      while (pair_->replies.try_pop(r))
        done_[r % kWindow] = r + 1;
      if (done_[seq % kWindow] != seq + 1) return false;
      done_[seq % kWindow] = 0;
      ok = true;
      return true;
    }
    bool round_trip(std::uint64_t seq) {
      while (!pair_->requests.try_push(seq))
        cpu_relax();
      std::uint64_t r = 0;
      while (!pair_->replies.try_pop(r))
        cpu_relax();
      return r == seq;
    }

   private:
    RingPair::Pair* pair_;
    std::vector<std::uint64_t> done_;  ///< by seq % window: seq + 1 once its reply came
  };

 private:
  std::vector<std::unique_ptr<Pair>> pairs_;
  std::atomic<bool> stop_{false};
  std::thread worker_;
};

// ---- trials

/// Open loop: requests at planned times; replies polled between sends.
template <class System>
Trial open_loop(System& sys, const Scenario& s, double rate, std::atomic<std::uint64_t>* progress) {
  Trial t;
  typename System::Caller caller(sys, 0);
  if (std::string why = pin_current_thread(s.producer_cores.front()); !why.empty()) t.error = why;
  const auto warm = static_cast<std::uint64_t>(std::llround(rate * s.warmup_s));
  const auto measured =
      std::max<std::uint64_t>(1, static_cast<std::uint64_t>(std::llround(rate * s.duration_s)));
  OpenLoopPlan plan{.rate_eps = rate, .events = warm + measured, .start_ns = now_ns() + 1'000'000};
  std::vector<std::uint64_t> in_flight;  // seqs, oldest first
  in_flight.reserve(kWindow);
  std::uint64_t next = 0;
  std::uint64_t first_measured_done = 0;
  std::uint64_t last_done = 0;
  const std::uint64_t give_up = plan.scheduled_ns(plan.events) + 5'000'000'000ULL;
  while (next < plan.events || !in_flight.empty()) {
    const std::uint64_t now = now_ns();
    if (now > give_up) {
      t.error = std::to_string(in_flight.size()) + " requests unanswered 5 s after the last send";
      t.failed += in_flight.size();
      break;
    }
    if (next < plan.events && now >= plan.scheduled_ns(next)) {
      if (next >= warm) t.sender_lateness.record(now - plan.scheduled_ns(next));
      // The callers index their state by seq % kWindow: the oldest request in flight and the
      // new one must be less than a window apart.
      const bool room = in_flight.empty() || next - in_flight.front() < kWindow;
      if (room && caller.send(next)) {
        in_flight.push_back(next);
      } else if (next >= warm) {
        ++t.failed;
      }
      ++next;
      if (progress != nullptr) progress->store(next, std::memory_order_relaxed);  // display hint
      continue;
    }
    // Replies: every request in flight that has ended.
    std::size_t kept = 0;
    for (std::uint64_t seq : in_flight) {
      bool ok = false;
      if (!caller.done(seq, ok)) {
        in_flight[kept++] = seq;
        continue;
      }
      if (seq < warm) continue;
      if (!ok) {
        ++t.failed;
        continue;
      }
      const std::uint64_t at = now_ns();
      t.latency.record(at - plan.scheduled_ns(seq));
      ++t.completed;
      if (first_measured_done == 0) first_measured_done = plan.scheduled_ns(warm);
      last_done = at;
    }
    in_flight.resize(kept);
  }
  if (last_done > first_measured_done && first_measured_done != 0) {
    t.achieved = static_cast<double>(t.completed) /
                 (static_cast<double>(last_done - first_measured_done) / 1e9);
  }
  return t;
}

/// Closed loop: `callers` threads, each one request at a time, for duration_s.
template <class System>
Trial closed_loop(System& sys, const Scenario& s, unsigned callers) {
  Trial t;
  std::vector<Trial> per(callers);
  std::atomic<bool> go{false};
  std::atomic<bool> stop{false};
  std::vector<std::thread> ts;
  std::vector<std::unique_ptr<typename System::Caller>> cs;
  for (unsigned c = 0; c < callers; ++c)
    cs.push_back(std::make_unique<typename System::Caller>(sys, c));
  for (unsigned c = 0; c < callers; ++c) {
    ts.emplace_back([&, c] {
      const auto& cores = s.producer_cores;
      (void)pin_current_thread(cores[c % cores.size()]);
      while (!go.load(std::memory_order_acquire))  // acquire: pairs with the start below
        cpu_relax();
      std::uint64_t seq = 0;
      while (!stop.load(std::memory_order_relaxed)) {  // relaxed: a stop hint
        const std::uint64_t t0 = now_ns();
        if (cs[c]->round_trip(seq++)) {
          per[c].latency.record(now_ns() - t0);
          ++per[c].completed;
        } else {
          ++per[c].failed;
        }
      }
    });
  }
  const std::uint64_t start = now_ns();
  go.store(true, std::memory_order_release);
  std::this_thread::sleep_for(std::chrono::duration<double>(s.duration_s));
  stop.store(true, std::memory_order_relaxed);
  for (auto& th : ts)
    th.join();
  const double span = static_cast<double>(now_ns() - start) / 1e9;
  for (const auto& p : per) {
    t.latency.merge(p.latency);
    t.completed += p.completed;
    t.failed += p.failed;
  }
  t.achieved = static_cast<double>(t.completed) / span;
  return t;
}

Row to_row(const Scenario& s, const std::string& variant, const std::string& system, double offered,
           std::vector<Trial>& trials, const std::string& note) {
  Row r;
  r.scenario = s.name;
  r.variant = variant;
  r.system = system;
  r.offered_eps = offered;
  Histogram all;
  std::vector<double> achieved;
  for (auto& t : trials) {
    all.merge(t.latency);
    achieved.push_back(t.achieved);
    r.lost += t.failed;
    if (!t.error.empty()) r.note += (r.note.empty() ? "ERROR: " : "; ") + t.error;
  }
  std::sort(achieved.begin(), achieved.end());
  if (!achieved.empty()) {
    const std::size_t n = achieved.size();
    r.achieved_eps = n % 2 ? achieved[n / 2] : (achieved[n / 2 - 1] + achieved[n / 2]) / 2;
    r.achieved_min_eps = achieved.front();
    r.achieved_max_eps = achieved.back();
  }
  r.repeats = static_cast<unsigned>(trials.size());
  r.events = all.count();
  r.has_latency = !all.empty();
  if (r.has_latency) {
    r.p50_ns = all.value_at_percentile(50);
    r.p90_ns = all.value_at_percentile(90);
    r.p99_ns = all.value_at_percentile(99);
    r.p999_ns = all.value_at_percentile(99.9);
    r.p9999_ns = all.value_at_percentile(99.99);
    r.max_ns = all.max();
  }
  if (!note.empty()) r.note = r.note.empty() ? note : note + "; " + r.note;
  return r;
}

}  // namespace

double request_reply_seconds(const Scenario& s) {
  const double per = s.duration_s + s.warmup_s + 0.2;
  return static_cast<double>(s.repeats) *
         (static_cast<double>(s.rates.size()) * (2 + (s.control ? 1 : 0)) * per +
          static_cast<double>(s.callers.size()) * 2 * (s.duration_s + 0.2));
}

void run_request_reply(const Scenario& s, std::vector<Row>& rows, std::vector<std::string>& errors,
                       std::atomic<std::uint64_t>* progress) {
  const int worker = s.worker_cores.front();
  unsigned max_callers = 1;
  for (unsigned c : s.callers)
    max_callers = std::max(max_callers, c);
  auto guarded = [&](const std::string& what, auto&& fn) {
    try {
      Trial t = fn();
      if (!t.error.empty()) errors.push_back(s.name + " / " + what + ": " + t.error);
      return t;
    } catch (const std::exception& e) {
      Trial t;
      t.error = e.what();
      errors.push_back(s.name + " / " + what + ": " + e.what());
      return t;
    }
  };
  for (const double rate : s.rates) {
    std::vector<Trial> rf;
    std::vector<Trial> rp;
    Histogram control;
    std::vector<double> control_rate;
    for (unsigned rep = 0; rep < s.repeats; ++rep) {  // interleaved: A B control A B control
      rf.push_back(guarded("ringflow", [&] {
        RingflowEcho sys(worker, 1);
        return open_loop(sys, s, rate, progress);
      }));
      rp.push_back(guarded("ring_pair", [&] {
        RingPair sys(worker, 1);
        return open_loop(sys, s, rate, progress);
      }));
      if (s.control) {
        ControlSpec cs;
        cs.rate_eps = rate;
        cs.warmup_events = static_cast<std::uint64_t>(std::llround(rate * s.warmup_s));
        cs.events = std::max<std::uint64_t>(
            1, static_cast<std::uint64_t>(std::llround(rate * s.duration_s)));
        cs.sender_core = s.producer_cores.front();
        cs.spinner_core = worker;
        try {
          const ControlResult cr = run_platform_control(cs);
          control.merge(cr.latency);
          const double span = static_cast<double>(cr.send.last_send_ns - cr.measured_start_ns);
          control_rate.push_back(span > 0 ? static_cast<double>(cs.events) / (span / 1e9) : 0.0);
        } catch (const std::exception& e) {
          errors.push_back(s.name + " / platform_control: " + e.what());
        }
      }
    }
    const std::string how = "open loop: round trip from the scheduled send to the reply seen";
    rows.push_back(to_row(s, "", "ringflow", rate, rf, how + " (request -> handler -> reply)"));
    rows.push_back(to_row(s, "", "ring_pair", rate, rp, how + " (request ring + reply ring)"));
    if (s.control) {
      std::vector<Trial> ct(1);
      ct[0].latency = control;
      std::sort(control_rate.begin(), control_rate.end());
      ct[0].achieved = control_rate.empty() ? 0 : control_rate[control_rate.size() / 2];
      Row r = to_row(s, "", "platform_control", rate, ct, "the platform's own stalls");
      r.repeats = static_cast<unsigned>(control_rate.size());
      rows.push_back(r);
    }
  }
  for (const unsigned callers : s.callers) {
    std::vector<Trial> rf;
    std::vector<Trial> rp;
    for (unsigned rep = 0; rep < s.repeats; ++rep) {
      rf.push_back(guarded("ringflow callers=" + std::to_string(callers), [&] {
        RingflowEcho sys(worker, max_callers);
        return closed_loop(sys, s, callers);
      }));
      rp.push_back(guarded("ring_pair callers=" + std::to_string(callers), [&] {
        RingPair sys(worker, callers);
        return closed_loop(sys, s, callers);
      }));
    }
    const std::string variant = "callers=" + std::to_string(callers);
    const std::string how = "closed loop: each caller waits for its reply before the next request";
    rows.push_back(to_row(s, variant, "ringflow", 0, rf, how));
    rows.push_back(to_row(s, variant, "ring_pair", 0, rp, how));
  }
}

}  // namespace ringflow::bench
