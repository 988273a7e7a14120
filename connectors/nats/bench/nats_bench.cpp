// JetStream alone vs JetStream -> ringflow -> JetStream (and NATS core as the floor), one run,
// interleaved. Every system does the same relay: events published to `in.<p>.<key>`, taken by a
// relay, published to `out.<p>.<key>`, received by a subscriber:
//   nats_core           core subscription -> core publish (no storage, no acks)
//   jetstream           per partition: pull fetch -> async publish (Nats-Msg-Id) -> wait for the
//                       window -> ack each; the connector's own flow, without the engine
//   jetstream_ringflow  ringflow::nats::Source -> engine -> Sink (before_ack = sink.flush)
// Throughput: M events pre-published, time until the subscriber has all M (closed loop).
// Latency: open loop at a fixed rate; each event carries its planned send time, latency is
// receive time - planned time (a stall charges every event it delays), all samples kept.
//
//   scripts/nats-bench.sh [--quick]   (starts nats-server, runs this, writes results/nats/)
#include <nats/nats.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "ringflow/nats/nats.hpp"
#include "ringflow/ringflow.hpp"

namespace {

namespace rn = ringflow::nats;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr std::uint32_t kParts = 4;
constexpr std::uint32_t kKeys = 1000;
constexpr std::size_t kPayload = 64;

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

void check(natsStatus s, const char* what) {
  if (s != NATS_OK) {
    throw std::runtime_error(std::string(what) + ": " + natsStatus_GetText(s));
  }
}

/// Counts (and times) what arrives on `<prefix>.>`.
struct Receiver {
  natsSubscription* sub = nullptr;
  std::atomic<std::uint64_t> count{0};
  std::mutex mu;
  std::vector<std::int64_t> lat;  // ns, only when recording
  std::atomic<bool> recording{false};
  std::int64_t record_after_ns = 0;

  static void on_msg(natsConnection* /*nc*/, natsSubscription* /*s*/, natsMsg* m, void* self) {
    auto& r = *static_cast<Receiver*>(self);
    const std::int64_t t = now_ns();
    if (r.recording.load(std::memory_order_relaxed) && natsMsg_GetDataLength(m) >= 8) {
      std::int64_t planned = 0;
      std::memcpy(&planned, natsMsg_GetData(m), sizeof planned);
      if (planned >= r.record_after_ns) {
        std::lock_guard lock(r.mu);
        r.lat.push_back(t - planned);
      }
    }
    r.count.fetch_add(1, std::memory_order_relaxed);
    natsMsg_Destroy(m);
  }
  Receiver(natsConnection* nc, const std::string& prefix) {
    check(natsConnection_Subscribe(&sub, nc, (prefix + ".>").c_str(), &Receiver::on_msg, this),
          "subscribe");
    (void)natsSubscription_SetPendingLimits(sub, -1, -1);
    check(natsConnection_Flush(nc), "flush");
  }
  ~Receiver() {
    (void)natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
  }
};

struct Trial {
  std::string in, out;  // subject prefixes
  std::string stream_in, stream_out;
};

/// A relay in one of the three shapes; runs until destroyed.
class Relay {
 public:
  virtual ~Relay() = default;
};

class CoreRelay : public Relay {
 public:
  CoreRelay(natsConnection* nc, const Trial& t) : nc_(nc), out_(t.out) {
    check(natsConnection_Subscribe(&sub_, nc, (t.in + ".>").c_str(), &CoreRelay::on_msg, this),
          "core relay subscribe");
    (void)natsSubscription_SetPendingLimits(sub_, -1, -1);
    check(natsConnection_Flush(nc), "flush");
  }
  ~CoreRelay() override {
    (void)natsSubscription_Unsubscribe(sub_);
    natsSubscription_Destroy(sub_);
  }

 private:
  static void on_msg(natsConnection* nc, natsSubscription* /*s*/, natsMsg* m, void* self) {
    auto& r = *static_cast<CoreRelay*>(self);
    std::string subj = natsMsg_GetSubject(m);
    subj = r.out_ + subj.substr(subj.find('.'));
    (void)natsConnection_Publish(nc, subj.c_str(), natsMsg_GetData(m), natsMsg_GetDataLength(m));
    natsMsg_Destroy(m);
  }
  natsConnection* nc_;
  std::string out_;
  natsSubscription* sub_ = nullptr;
};

class JetStreamRelay : public Relay {
 public:
  JetStreamRelay(rn::Connection& conn, const Trial& t) : out_(t.out) {
    auto* nc = static_cast<natsConnection*>(conn.native_connection());
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.PublishAsync.MaxPending = 4096;
    check(natsConnection_JetStream(&js_, nc, &jo), "relay jetstream");
    for (std::uint32_t p = 0; p < kParts; ++p) {
      const std::string durable = "plain_" + std::to_string(p);
      const std::string filter = t.in + "." + std::to_string(p) + ".*";
      jsConsumerConfig cc;
      jsConsumerConfig_Init(&cc);
      cc.Durable = durable.c_str();
      cc.AckPolicy = js_AckExplicit;
      cc.MaxAckPending = 1024;
      cc.FilterSubject = filter.c_str();
      jsConsumerInfo* ci = nullptr;
      jsErrCode jerr{};
      check(js_AddConsumer(&ci, js_, t.stream_in.c_str(), &cc, nullptr, &jerr), "add consumer");
      jsConsumerInfo_Destroy(ci);
      jsSubOptions so;
      jsSubOptions_Init(&so);
      so.Stream = t.stream_in.c_str();
      so.Consumer = durable.c_str();
      natsSubscription* sub = nullptr;
      check(js_PullSubscribe(&sub, js_, filter.c_str(), durable.c_str(), nullptr, &so, &jerr),
            "pull subscribe");
      subs_.push_back(sub);
    }
    for (natsSubscription* sub : subs_)
      threads_.emplace_back([this, sub] { loop(sub); });
  }
  ~JetStreamRelay() override {
    run_.store(false);
    for (auto& th : threads_)
      th.join();
    for (natsSubscription* s : subs_) {
      (void)natsSubscription_Unsubscribe(s);
      natsSubscription_Destroy(s);
    }
    jsCtx_Destroy(js_);
  }

 private:
  void loop(natsSubscription* sub) {
    // The same two requests as the connector's source: no-wait for what is there, else a long
    // poll for one message.
    jsFetchRequest now;
    jsFetchRequest_Init(&now);
    now.Batch = 256;
    now.NoWait = true;
    now.Expires = std::chrono::nanoseconds(200ms).count();
    jsFetchRequest wait;
    jsFetchRequest_Init(&wait);
    wait.Batch = 1;
    wait.Expires = std::chrono::nanoseconds(200ms).count();
    bool poll = false;
    while (run_.load()) {
      natsMsgList list{};
      jsFetchRequest req = poll ? wait : now;  // libnats writes into it (Batch, Expires)
      (void)natsSubscription_FetchRequest(&list, sub, &req);
      poll = list.Count == 0 && !poll;
      for (int k = 0; k < list.Count; ++k) {
        natsMsg* m = list.Msgs[k];
        jsMsgMetaData* meta = nullptr;
        std::string id = "0";
        if (natsMsg_GetMetaData(&meta, m) == NATS_OK) {
          id = std::to_string(meta->Sequence.Stream);
          jsMsgMetaData_Destroy(meta);
        }
        std::string subj = natsMsg_GetSubject(m);
        subj = out_ + subj.substr(subj.find('.'));
        jsPubOptions po;
        jsPubOptions_Init(&po);
        po.MsgId = id.c_str();
        while (js_PublishAsync(js_, subj.c_str(), natsMsg_GetData(m), natsMsg_GetDataLength(m),
                               &po) != NATS_OK) {
        }
      }
      if (list.Count > 0) {
        jsPubOptions po;
        jsPubOptions_Init(&po);
        po.MaxWait = 5000;
        std::lock_guard lock(complete_mu_);  // one PublishAsyncComplete at a time per context
        (void)js_PublishAsyncComplete(js_, &po);
      }
      for (int k = 0; k < list.Count; ++k)
        (void)natsMsg_Ack(list.Msgs[k], nullptr);
      natsMsgList_Destroy(&list);
    }
  }
  std::string out_;
  jsCtx* js_ = nullptr;
  std::mutex complete_mu_;
  std::vector<natsSubscription*> subs_;
  std::vector<std::thread> threads_;
  std::atomic<bool> run_{true};
};

class RingflowRelay : public Relay {
 public:
  RingflowRelay(rn::Connection& conn, const Trial& t) {
    ringflow::EngineConfig cfg;
    cfg.partitions = kParts;
    cfg.pin_threads = false;
    cfg.wait_strategy = ringflow::WaitStrategyKind::park;
    engine_ = std::make_unique<ringflow::Engine>(cfg);
    engine_->add_topic("in");
    rn::SinkOptions sk;
    sk.subject_prefix = t.out;
    sk.partitions = kParts;
    sk.msg_id_prefix = "rf";
    sink_ = std::make_unique<rn::Sink>(conn, sk);
    rn::SourceOptions so;
    so.stream = t.stream_in;
    so.subject_prefix = t.in;
    so.partitions = kParts;
    so.owned = {0, 1, 2, 3};
    so.topic = "in";
    so.durable_prefix = "rf";
    so.fetch_expiry = 200ms;
    so.fetch_heartbeat = 50ms;
    rn::Sink* sink = sink_.get();
    so.before_ack = [sink] { return sink->flush(5s); };
    source_ = std::make_unique<rn::Source>(conn, *engine_, so);
    source_->subscribe("in", [sink](const ringflow::EventView& e) { return sink->publish(e); });
    engine_->start();
    source_->start();
  }
  ~RingflowRelay() override {
    source_->stop();
    engine_->stop();
  }

 private:
  std::unique_ptr<ringflow::Engine> engine_;
  std::unique_ptr<rn::Sink> sink_;
  std::unique_ptr<rn::Source> source_;
};

struct Row {
  std::string system, kind;
  double offered = 0, achieved = 0;
  std::int64_t p50 = 0, p90 = 0, p99 = 0, p999 = 0, max = 0;
  std::uint64_t samples = 0;
};

std::unique_ptr<Relay> make_relay(const std::string& sys, rn::Connection& conn, const Trial& t) {
  auto* nc = static_cast<natsConnection*>(conn.native_connection());
  if (sys == "nats_core") return std::make_unique<CoreRelay>(nc, t);
  if (sys == "jetstream") return std::make_unique<JetStreamRelay>(conn, t);
  return std::make_unique<RingflowRelay>(conn, t);
}

Trial new_trial(rn::Connection& conn, int n, bool jetstream) {
  Trial t;
  t.in = "in" + std::to_string(n);
  t.out = "out" + std::to_string(n);
  t.stream_in = "IN" + std::to_string(n);
  t.stream_out = "OUT" + std::to_string(n);
  if (jetstream) {
    rn::ensure_stream(conn, {.name = t.stream_in, .subject_prefix = t.in});
    rn::ensure_stream(conn, {.name = t.stream_out, .subject_prefix = t.out});
  }
  return t;
}

void delete_trial(rn::Connection& conn, const Trial& t) {
  auto* js = static_cast<jsCtx*>(conn.native_jetstream());
  jsErrCode jerr{};
  (void)js_DeleteStream(js, t.stream_in.c_str(), nullptr, &jerr);
  (void)js_DeleteStream(js, t.stream_out.c_str(), nullptr, &jerr);
}

std::vector<std::string> subjects(const std::string& prefix) {
  std::vector<std::string> s;
  for (std::uint32_t k = 0; k < kKeys; ++k) {
    char key[16];  // snprintf: GCC 12 warns falsely (-Wrestrict) on "k" + std::to_string(k)
    const int n = std::snprintf(key, sizeof key, "k%u", k);
    s.push_back(
        rn::subject_for(prefix, std::string_view(key, static_cast<std::size_t>(n)), kParts));
  }
  return s;
}

/// Publishes to `in`: JetStream async (window 4096) or core.
struct Sender {
  natsConnection* nc;
  jsCtx* js = nullptr;
  bool jetstream;
  Sender(natsConnection* c, bool jet) : nc(c), jetstream(jet) {
    if (jetstream) {
      jsOptions jo;
      jsOptions_Init(&jo);
      jo.PublishAsync.MaxPending = 4096;
      check(natsConnection_JetStream(&js, nc, &jo), "sender jetstream");
    }
  }
  ~Sender() {
    if (js != nullptr) jsCtx_Destroy(js);
  }
  void send(const std::string& subj, const char* data) {
    if (jetstream) {
      while (js_PublishAsync(js, subj.c_str(), data, kPayload, nullptr) != NATS_OK) {
      }
    } else {
      (void)natsConnection_Publish(nc, subj.c_str(), data, kPayload);
    }
  }
  void complete() {
    if (jetstream) {
      jsPubOptions po;
      jsPubOptions_Init(&po);
      po.MaxWait = 60000;
      (void)js_PublishAsyncComplete(js, &po);
    } else {
      (void)natsConnection_FlushTimeout(nc, 60000);
    }
  }
};

Row throughput(const std::string& sys, rn::Connection& conn, int n, std::uint64_t events) {
  auto* nc = static_cast<natsConnection*>(conn.native_connection());
  const bool jet = sys != "nats_core";
  const Trial t = new_trial(conn, n, jet);
  const auto subj = subjects(t.in);
  Receiver rx(nc, t.out);
  Row r{sys, "throughput"};
  char data[kPayload] = {};
  std::int64_t t0 = 0;
  if (jet) {  // pre-published: the relay alone is timed
    Sender s(nc, true);
    for (std::uint64_t i = 0; i < events; ++i)
      s.send(subj[i % kKeys], data);
    s.complete();
    t0 = now_ns();
    auto relay = make_relay(sys, conn, t);
    while (rx.count.load() < events && now_ns() - t0 < 120'000'000'000) {
      std::this_thread::sleep_for(1ms);
    }
  } else {  // core has no storage: the relay runs while publishing
    auto relay = make_relay(sys, conn, t);
    Sender s(nc, false);
    t0 = now_ns();
    for (std::uint64_t i = 0; i < events; ++i)
      s.send(subj[i % kKeys], data);
    s.complete();
    while (rx.count.load() < events && now_ns() - t0 < 20'000'000'000) {
      std::this_thread::sleep_for(1ms);
    }
  }
  const double secs = static_cast<double>(now_ns() - t0) / 1e9;
  r.achieved = static_cast<double>(rx.count.load()) / secs;
  r.samples = rx.count.load();
  if (jet) delete_trial(conn, t);
  return r;
}

Row percentiles(std::string system, std::string kind, std::vector<std::int64_t> v) {
  Row r{std::move(system), std::move(kind)};
  std::sort(v.begin(), v.end());
  r.samples = v.size();
  const auto pct = [&](double q) {
    return v.empty() ? 0
                     : v[std::min(v.size() - 1,
                                  static_cast<std::size_t>(q * static_cast<double>(v.size())))];
  };
  r.p50 = pct(0.50);
  r.p90 = pct(0.90);
  r.p99 = pct(0.99);
  r.p999 = pct(0.999);
  r.max = v.empty() ? 0 : v.back();
  return r;
}

/// `late`: the sender's own lateness (actual - planned send time), the platform control.
Row latency(const std::string& sys, rn::Connection& conn, int n, double rate, double seconds,
            double warmup, std::vector<std::int64_t>& late) {
  auto* nc = static_cast<natsConnection*>(conn.native_connection());
  const bool jet = sys != "nats_core";
  const Trial t = new_trial(conn, n, jet);
  const auto subj = subjects(t.in);
  Receiver rx(nc, t.out);
  Row r{sys, "latency"};
  r.offered = rate;
  {
    auto relay = make_relay(sys, conn, t);
    Sender s(nc, jet);
    const auto total = static_cast<std::uint64_t>(rate * (seconds + warmup));
    const std::int64_t start = now_ns() + 10'000'000;
    rx.record_after_ns = start + static_cast<std::int64_t>(warmup * 1e9);
    rx.recording.store(true);
    char data[kPayload] = {};
    late.reserve(total);
    for (std::uint64_t i = 0; i < total; ++i) {
      const std::int64_t planned =
          start + static_cast<std::int64_t>(static_cast<double>(i) * 1e9 / rate);
      // Sleep, do not spin: on 2 vCPUs a spinning sender steals the server's core. Oversleeping
      // makes the send late, and that lateness is charged (latency runs from `planned`).
      if (const std::int64_t ahead = planned - now_ns(); ahead > 0) {
        std::this_thread::sleep_for(std::chrono::nanoseconds(ahead));
      }
      late.push_back(now_ns() - planned);
      std::memcpy(data, &planned, sizeof planned);
      s.send(subj[i % kKeys], data);
    }
    s.complete();
    const std::int64_t end = now_ns();
    while (rx.count.load() < total && now_ns() - end < 30'000'000'000) {
      std::this_thread::sleep_for(1ms);
    }
    r.achieved = static_cast<double>(rx.count.load()) / (seconds + warmup);
  }
  std::vector<std::int64_t> v;
  {
    std::lock_guard lock(rx.mu);
    v = rx.lat;
  }
  const double achieved = r.achieved;
  r = percentiles(sys, "latency", std::move(v));
  r.offered = rate;
  r.achieved = achieved;
  if (jet) delete_trial(conn, t);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  std::string server = "nats://127.0.0.1:4222";
  std::string out = "results/nats";
  std::uint64_t events = 100'000;
  int repeats = 3;
  std::vector<double> rates{2000, 10000};
  double seconds = 5.0;
  bool send_asap = true;  // --send-asap 0: libnats' flusher batches writes
  for (int k = 1; k + 1 < argc; k += 2) {
    const std::string a = argv[k];
    const std::string v = argv[k + 1];
    if (a == "--server")
      server = v;
    else if (a == "--send-asap")
      send_asap = v == "1" || v == "true";
    else if (a == "--out")
      out = v;
    else if (a == "--events")
      events = std::stoull(v);
    else if (a == "--repeats")
      repeats = std::stoi(v);
    else if (a == "--seconds")
      seconds = std::stod(v);
    else if (a == "--rates") {
      rates.clear();
      std::size_t pos = 0;
      while (pos < v.size()) {
        const std::size_t c = v.find(',', pos);
        rates.push_back(std::stod(v.substr(pos, c == std::string::npos ? v.npos : c - pos)));
        if (c == std::string::npos) break;
        pos = c + 1;
      }
    }
  }
  try {
    rn::ConnectionOptions co;
    co.servers = {server};
    co.name = "ringflow-nats-bench";
    co.send_asap = send_asap;
    rn::Connection conn(co);
    const std::vector<std::string> systems{"nats_core", "jetstream", "jetstream_ringflow"};
    std::vector<Row> rows;
    int trial = 0;
    for (int rep = 0; rep < repeats; ++rep) {  // interleaved: A B C A B C ...
      for (const auto& sys : systems) {
        rows.push_back(throughput(sys, conn, ++trial, sys == "nats_core" ? events * 5 : events));
        std::cerr << sys << " throughput " << static_cast<std::uint64_t>(rows.back().achieved)
                  << "/s\n";
      }
    }
    for (const double rate : rates) {
      std::vector<std::int64_t> late;  // the sender's lateness over all three systems
      for (const auto& sys : systems) {
        rows.push_back(latency(sys, conn, ++trial, rate, seconds, 1.0, late));
        const Row& r = rows.back();
        std::cerr << sys << " @" << rate << "/s: p50 " << r.p50 / 1000 << " us, p99 "
                  << r.p99 / 1000 << " us, p99.9 " << r.p999 / 1000 << " us\n";
      }
      Row c = percentiles("platform_control", "sender_lateness", std::move(late));
      c.offered = rate;
      std::cerr << "sender lateness @" << rate << "/s: p50 " << c.p50 / 1000 << " us, p99 "
                << c.p99 / 1000 << " us\n";
      rows.push_back(c);
    }
    std::ofstream f(out + "/summary.json");
    f << "[\n";
    for (std::size_t k = 0; k < rows.size(); ++k) {
      const Row& r = rows[k];
      f << "  {\"system\": \"" << r.system << "\", \"kind\": \"" << r.kind
        << "\", \"offered_eps\": " << static_cast<std::uint64_t>(r.offered)
        << ", \"achieved_eps\": " << static_cast<std::uint64_t>(r.achieved)
        << ", \"p50_ns\": " << r.p50 << ", \"p90_ns\": " << r.p90 << ", \"p99_ns\": " << r.p99
        << ", \"p999_ns\": " << r.p999 << ", \"max_ns\": " << r.max
        << ", \"samples\": " << r.samples << "}" << (k + 1 < rows.size() ? "," : "") << "\n";
    }
    f << "]\n";
  } catch (const std::exception& e) {
    std::cerr << "ringflow_nats_bench: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
