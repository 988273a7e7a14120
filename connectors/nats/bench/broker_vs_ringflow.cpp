// An order service four ways, side by side in one run: the same handler, the same injected
// failures, the same open-loop load.
//   nats_core           core publish -> core subscription -> handler; a failure is an error
//                       (no retry), a message dropped for a slow consumer is lost
//   jetstream           stream -> durable pull consumers (AckExplicit, MaxDeliver 3) ->
//                       handler; a failure is NakWithDelay(1 ms): JetStream's redelivery is the
//                       only retry; after the third delivery it is an error (JetStream keeps no
//                       dead letter: only an advisory)
//   ringflow            Producer::publish -> engine subscription (max_attempts 3, backoff
//                       1 ms) -> handler; exhausted = a dead letter on orders.dlq
//   jetstream_ringflow  stream -> ringflow::nats::Source -> the same subscription; exhausted =
//                       a dead letter, published to <subject>.dlq, input terminated
// Failures, by event index and seed: 2 % transient (fail the first attempt), 0.5 % permanent
// (fail every attempt). error_share = events that ended failed without a dead letter, or lost.
// Latency = handler success time - planned send time (open loop, coordinated omission
// corrected), over the events that succeeded; platform_control = the sender's own lateness in
// the same latency runs (what the machine adds whatever the system); throughput = events settled
// per second with everything pre-published (core: published while consuming, it has no storage).
//
//   connectors/nats/bench/broker-vs-ringflow.sh   (starts nats-server, writes
//                                                 results/broker-vs-ringflow/)
#include <nats/nats.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
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
constexpr std::uint32_t kAttempts = 3;
constexpr std::size_t kPayload = 64;  // planned send time (8 B), event index (8 B), padding
std::uint64_t g_seed = 42;

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

void check(natsStatus s, const char* what) {
  if (s != NATS_OK) throw std::runtime_error(std::string(what) + ": " + natsStatus_GetText(s));
}

std::uint64_t mix(std::uint64_t x) {  // splitmix64
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30U)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27U)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31U);
}

enum class Fault : std::uint8_t { none, transient, permanent };
Fault fault_of(std::uint64_t index) {
  const std::uint64_t r = mix(index ^ (g_seed * 0x2545f4914f6cdd1dULL)) % 1000;
  if (r < 20) return Fault::transient;  // 2 %
  if (r < 25) return Fault::permanent;  // 0.5 %
  return Fault::none;
}

/// The order service's handler, the same for every system: a little work (a checksum over the
/// order), then the injected outcome. True: handled.
bool handle_order(std::uint64_t index, std::uint32_t attempt, const char* data, std::size_t n) {
  std::uint64_t h = index;
  for (int round = 0; round < 4; ++round) {
    for (std::size_t k = 0; k < n; ++k)
      h = (h ^ static_cast<unsigned char>(data[k])) * 0x100000001b3ULL;
  }
  asm volatile("" : : "r"(h));
  switch (fault_of(index)) {
    case Fault::none:
      return true;
    case Fault::transient:
      return attempt > 1;
    case Fault::permanent:
      return false;
  }
  return false;
}

struct Order {
  std::int64_t planned = 0;
  std::uint64_t index = 0;
};
Order decode(const char* data, std::size_t n) {
  Order o;
  if (n >= 16) {
    std::memcpy(&o.planned, data, 8);
    std::memcpy(&o.index, data + 8, 8);
  }
  return o;
}

/// What a system's consumer side reports.
struct Tally {
  std::atomic<std::uint64_t> ok{0}, errors{0}, dead{0}, attempts{0};
  std::mutex mu;
  std::vector<std::int64_t> lat;
  std::int64_t record_after = INT64_MAX;  // set before the first send
  void succeeded(const Order& o) {
    const std::int64_t t = now_ns();
    ok.fetch_add(1, std::memory_order_relaxed);
    if (o.planned >= record_after) {
      std::lock_guard lock(mu);
      lat.push_back(t - o.planned);
    }
  }
  [[nodiscard]] std::uint64_t settled() const { return ok.load() + errors.load() + dead.load(); }
};

class System {
 public:
  virtual ~System() = default;
  /// Starts consuming (JetStream: creates the consumers; the stream may already hold events).
  virtual void start() {}
  virtual void send(const std::string& key, const char* data) = 0;
  virtual void complete() {}
  Tally tally;
};

std::vector<std::string> keys() {
  std::vector<std::string> v;
  for (std::uint32_t k = 0; k < kKeys; ++k) {
    char b[16];
    const int n = std::snprintf(b, sizeof b, "c%u", k);
    v.emplace_back(b, static_cast<std::size_t>(n));
  }
  return v;
}

// ---- NATS core pub-sub

class CoreSystem : public System {
 public:
  CoreSystem(natsConnection* nc, int trial) : nc_(nc), prefix_("core" + std::to_string(trial)) {
    check(natsConnection_Subscribe(&sub_, nc, (prefix_ + ".>").c_str(), &CoreSystem::on_msg, this),
          "core subscribe");
    // The library's default pending limits: what a subscriber gets unless it raises them.
    check(natsConnection_Flush(nc), "flush");
  }
  ~CoreSystem() override {
    (void)natsSubscription_Unsubscribe(sub_);
    natsSubscription_Destroy(sub_);
  }
  void send(const std::string& key, const char* data) override {
    const std::string subj = rn::subject_for(prefix_, key, kParts);
    (void)natsConnection_Publish(nc_, subj.c_str(), data, kPayload);
  }
  void complete() override { (void)natsConnection_FlushTimeout(nc_, 60000); }

 private:
  static void on_msg(natsConnection* /*nc*/, natsSubscription* /*s*/, natsMsg* m, void* self) {
    auto& sys = *static_cast<CoreSystem*>(self);
    const auto n = static_cast<std::size_t>(natsMsg_GetDataLength(m));
    const Order o = decode(natsMsg_GetData(m), n);
    sys.tally.attempts.fetch_add(1, std::memory_order_relaxed);
    if (handle_order(o.index, 1, natsMsg_GetData(m), n)) {
      sys.tally.succeeded(o);
    } else {
      sys.tally.errors.fetch_add(1, std::memory_order_relaxed);  // nobody retries
    }
    natsMsg_Destroy(m);
  }
  natsConnection* nc_;
  std::string prefix_;
  natsSubscription* sub_ = nullptr;
};

// ---- JetStream, redelivery as the only retry

/// Async JetStream publisher (bounded window).
struct JsSender {
  jsCtx* js = nullptr;
  explicit JsSender(natsConnection* nc) {
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.PublishAsync.MaxPending = 4096;
    check(natsConnection_JetStream(&js, nc, &jo), "sender jetstream");
  }
  ~JsSender() { jsCtx_Destroy(js); }
  JsSender(const JsSender&) = delete;
  JsSender& operator=(const JsSender&) = delete;
  void send(const std::string& subj, const char* data) const {
    while (js_PublishAsync(js, subj.c_str(), data, kPayload, nullptr) != NATS_OK) {
    }
  }
  void complete() const {
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 60000;
    (void)js_PublishAsyncComplete(js, &po);
  }
};

class JetStreamSystem : public System {
 public:
  JetStreamSystem(rn::Connection& conn, int trial)
      : conn_(conn),
        prefix_("js" + std::to_string(trial)),
        stream_("JS" + std::to_string(trial)),
        sender_(static_cast<natsConnection*>(conn.native_connection())) {
    rn::ensure_stream(conn, {.name = stream_, .subject_prefix = prefix_});
  }
  void start() override {
    auto* js = static_cast<jsCtx*>(conn_.native_jetstream());
    for (std::uint32_t p = 0; p < kParts; ++p) {
      const std::string durable = "orders_" + std::to_string(p);
      const std::string filter = prefix_ + "." + std::to_string(p) + ".*";
      jsConsumerConfig cc;
      jsConsumerConfig_Init(&cc);
      cc.Durable = durable.c_str();
      cc.AckPolicy = js_AckExplicit;
      cc.MaxAckPending = 1024;
      cc.MaxDeliver = kAttempts;
      cc.FilterSubject = filter.c_str();
      jsConsumerInfo* ci = nullptr;
      jsErrCode jerr{};
      check(js_AddConsumer(&ci, js, stream_.c_str(), &cc, nullptr, &jerr), "add consumer");
      jsConsumerInfo_Destroy(ci);
      jsSubOptions so;
      jsSubOptions_Init(&so);
      so.Stream = stream_.c_str();
      so.Consumer = durable.c_str();
      natsSubscription* sub = nullptr;
      check(js_PullSubscribe(&sub, js, filter.c_str(), durable.c_str(), nullptr, &so, &jerr),
            "pull subscribe");
      subs_.push_back(sub);
    }
    for (natsSubscription* sub : subs_)
      threads_.emplace_back([this, sub] { loop(sub); });
  }
  ~JetStreamSystem() override {
    run_.store(false);
    for (auto& th : threads_)
      th.join();
    for (natsSubscription* s : subs_) {
      (void)natsSubscription_Unsubscribe(s);
      natsSubscription_Destroy(s);
    }
    jsErrCode jerr{};
    (void)js_DeleteStream(static_cast<jsCtx*>(conn_.native_jetstream()), stream_.c_str(), nullptr,
                          &jerr);
  }
  void send(const std::string& key, const char* data) override {
    sender_.send(rn::subject_for(prefix_, key, kParts), data);
  }
  void complete() override { sender_.complete(); }

 private:
  void loop(natsSubscription* sub) {
    // As the connector fetches: a no-wait request for what is there, else a long poll for one.
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
        std::uint32_t attempt = 1;
        if (jsMsgMetaData* meta = nullptr; natsMsg_GetMetaData(&meta, m) == NATS_OK) {
          attempt = static_cast<std::uint32_t>(meta->NumDelivered);
          jsMsgMetaData_Destroy(meta);
        }
        const auto n = static_cast<std::size_t>(natsMsg_GetDataLength(m));
        const Order o = decode(natsMsg_GetData(m), n);
        tally.attempts.fetch_add(1, std::memory_order_relaxed);
        if (handle_order(o.index, attempt, natsMsg_GetData(m), n)) {
          (void)natsMsg_Ack(m, nullptr);
          tally.succeeded(o);
        } else if (attempt < kAttempts) {
          (void)natsMsg_NakWithDelay(m, 1, nullptr);  // JetStream redelivers it in 1 ms
        } else {
          // MaxDeliver reached: JetStream will not deliver it again and keeps no dead letter.
          (void)natsMsg_Term(m, nullptr);
          tally.errors.fetch_add(1, std::memory_order_relaxed);
        }
      }
      natsMsgList_Destroy(&list);
    }
  }
  rn::Connection& conn_;
  std::string prefix_, stream_;
  JsSender sender_;
  std::vector<natsSubscription*> subs_;
  std::vector<std::thread> threads_;
  std::atomic<bool> run_{true};
};

// ---- ringflow: in process, and behind the JetStream bridge

ringflow::EngineConfig engine_config() {
  ringflow::EngineConfig cfg;
  cfg.partitions = kParts;
  cfg.pin_threads = false;  // the server and the sender need the two cores too
  cfg.wait_strategy = ringflow::WaitStrategyKind::park;
  return cfg;
}

ringflow::SubscribeOptions retry_policy() {
  ringflow::SubscribeOptions so;
  so.max_attempts = kAttempts;
  so.retry_backoff = 1ms;  // the same delay as the JetStream system's NakWithDelay
  so.retry_backoff_max = 1ms;
  return so;
}

ringflow::Outcome order_handler(Tally& t, const ringflow::EventView& e) {
  const std::string_view d = e.payload_string();
  const Order o = decode(d.data(), d.size());
  t.attempts.fetch_add(1, std::memory_order_relaxed);
  if (!handle_order(o.index, e.attempt(), d.data(), d.size())) {
    return ringflow::Outcome::retry(1ms);  // the last attempt's retry becomes a dead letter
  }
  t.succeeded(o);
  return ringflow::Outcome::ok();
}

class RingflowSystem : public System {
 public:
  RingflowSystem() : engine_(engine_config()) {
    topic_ = engine_.add_topic("orders");
    engine_.subscribe(
        "orders", [this](const ringflow::EventView& e) { return order_handler(tally, e); },
        retry_policy());
    engine_.subscribe("orders.dlq", [this](const ringflow::EventView&) {
      tally.dead.fetch_add(1, std::memory_order_relaxed);
    });
    engine_.start();
    ringflow::ProducerOptions po;
    po.backpressure = ringflow::BackpressurePolicy::park;  // wait for room, as a broker would
    po.backpressure_timeout = std::chrono::microseconds(10'000);
    producer_ = engine_.make_producer(po);
  }
  ~RingflowSystem() override {
    producer_ = ringflow::Producer{};
    engine_.stop();
  }
  void send(const std::string& key, const char* data) override {
    while (producer_.publish(topic_, key, std::string_view(data, kPayload)) ==
           ringflow::PublishStatus::full) {
    }
  }

 private:
  ringflow::Engine engine_;
  ringflow::TopicId topic_{};
  ringflow::Producer producer_;
};

class BridgeSystem : public System {
 public:
  BridgeSystem(rn::Connection& conn, int trial)
      : conn_(conn),
        prefix_("rf" + std::to_string(trial)),
        stream_("RF" + std::to_string(trial)),
        sender_(static_cast<natsConnection*>(conn.native_connection())),
        engine_(engine_config()) {
    rn::ensure_stream(conn, {.name = stream_, .subject_prefix = prefix_});
    engine_.add_topic("orders");
    rn::SourceOptions so;
    so.stream = stream_;
    so.subject_prefix = prefix_;
    so.partitions = kParts;
    so.owned = {0, 1, 2, 3};
    so.topic = "orders";
    so.fetch_expiry = 200ms;
    so.fetch_heartbeat = 50ms;
    source_ = std::make_unique<rn::Source>(conn, engine_, so);
    source_->subscribe(
        "orders", [this](const ringflow::EventView& e) { return order_handler(tally, e); },
        retry_policy());
  }
  void start() override {
    engine_.start();
    source_->start();
  }
  ~BridgeSystem() override {
    source_->stop();
    if (engine_.state() == ringflow::Engine::State::running) engine_.stop();
    jsErrCode jerr{};
    (void)js_DeleteStream(static_cast<jsCtx*>(conn_.native_jetstream()), stream_.c_str(), nullptr,
                          &jerr);
  }
  void send(const std::string& key, const char* data) override {
    sender_.send(rn::subject_for(prefix_, key, kParts), data);
  }
  void complete() override { sender_.complete(); }
  /// Dead letters as the source settles them (published to <subject>.dlq, then terminated).
  void sync_dead() { tally.dead.store(source_->stats().dead_lettered); }

 private:
  rn::Connection& conn_;
  std::string prefix_, stream_;
  JsSender sender_;
  ringflow::Engine engine_;
  std::unique_ptr<rn::Source> source_;
};

std::unique_ptr<System> make_system(const std::string& name, rn::Connection& conn, int trial) {
  if (name == "nats_core") {
    return std::make_unique<CoreSystem>(static_cast<natsConnection*>(conn.native_connection()),
                                        trial);
  }
  if (name == "jetstream") return std::make_unique<JetStreamSystem>(conn, trial);
  if (name == "ringflow") return std::make_unique<RingflowSystem>();
  return std::make_unique<BridgeSystem>(conn, trial);
}

std::uint64_t settled(System& s) {
  if (auto* b = dynamic_cast<BridgeSystem*>(&s); b != nullptr) b->sync_dead();
  return s.tally.settled();
}

/// Waits until every event is settled, or until nothing has settled for `quiet` (core: the
/// rest was lost), at most `limit`.
void wait_settled(System& s, std::uint64_t events, std::chrono::milliseconds quiet,
                  std::chrono::seconds limit) {
  const auto end = Clock::now() + limit;
  std::uint64_t last = settled(s);
  auto last_change = Clock::now();
  while (Clock::now() < end) {
    const std::uint64_t n = settled(s);
    if (n >= events) return;
    if (n != last) {
      last = n;
      last_change = Clock::now();
    } else if (Clock::now() - last_change > quiet) {
      return;
    }
    std::this_thread::sleep_for(1ms);
  }
}

struct Row {
  std::string system, kind;
  double offered = 0, achieved = 0;
  double mean = 0;
  std::int64_t p50 = 0, p99 = 0;
  std::uint64_t events = 0, ok = 0, errors = 0, dead = 0, lost = 0, attempts = 0;
};

/// Mean, p50 and p99 of `v` into `r`.
void stats_of(Row& r, std::vector<std::int64_t> v) {
  std::sort(v.begin(), v.end());
  if (!v.empty()) {
    double sum = 0;
    for (const std::int64_t x : v)
      sum += static_cast<double>(x);
    r.mean = sum / static_cast<double>(v.size());
    r.p50 = v[v.size() / 2];
    r.p99 = v[std::min(v.size() - 1, v.size() * 99 / 100)];
  }
}

void fill(Row& r, System& s, std::uint64_t events) {
  (void)settled(s);
  r.events = events;
  r.ok = s.tally.ok.load();
  r.errors = s.tally.errors.load();
  r.dead = s.tally.dead.load();
  r.attempts = s.tally.attempts.load();
  const std::uint64_t done = r.ok + r.errors + r.dead;
  r.lost = events > done ? events - done : 0;
  std::vector<std::int64_t> v;
  {
    std::lock_guard lock(s.tally.mu);
    v = s.tally.lat;
  }
  stats_of(r, std::move(v));
}

const std::vector<std::string>& key_list() {
  static const std::vector<std::string> k = keys();
  return k;
}

void encode(char* data, std::int64_t planned, std::uint64_t index) {
  std::memcpy(data, &planned, 8);
  std::memcpy(data + 8, &index, 8);
}

/// Everything published as fast as the system takes it (JetStream: stored before the clock
/// starts; core and in-process: published while consuming), time until all are settled.
Row throughput(const std::string& name, rn::Connection& conn, int trial, std::uint64_t events) {
  auto sys = make_system(name, conn, trial);
  const auto& k = key_list();
  char data[kPayload] = {};
  const bool stored_first = name == "jetstream" || name == "jetstream_ringflow";
  Row r{name, "throughput"};
  std::int64_t t0 = now_ns();
  if (!stored_first) sys->start();
  for (std::uint64_t i = 0; i < events; ++i) {
    encode(data, 0, i);
    sys->send(k[i % kKeys], data);
  }
  sys->complete();
  if (stored_first) {  // the consumers alone are timed, as in results/nats
    t0 = now_ns();
    sys->start();
  }
  wait_settled(*sys, events, 2s, 120s);
  const double secs = static_cast<double>(now_ns() - t0) / 1e9;
  fill(r, *sys, events);
  r.achieved = static_cast<double>(r.ok + r.errors + r.dead) / secs;
  return r;
}

/// Open loop at `rate`: each event carries its planned send time. `late` collects the sender's
/// own lateness (actual - planned send time, after the warm-up): the platform control.
Row latency(const std::string& name, rn::Connection& conn, int trial, double rate, double seconds,
            double warmup, std::vector<std::int64_t>& late) {
  auto sys = make_system(name, conn, trial);
  sys->start();
  const auto& k = key_list();
  char data[kPayload] = {};
  const auto total = static_cast<std::uint64_t>(rate * (seconds + warmup));
  const std::int64_t start = now_ns() + 10'000'000;
  sys->tally.record_after = start + static_cast<std::int64_t>(warmup * 1e9);
  for (std::uint64_t i = 0; i < total; ++i) {
    const std::int64_t planned =
        start + static_cast<std::int64_t>(static_cast<double>(i) * 1e9 / rate);
    // Sleep, do not spin: on 2 vCPUs a spinning sender steals the server's core. A late send
    // is charged to the event (latency runs from `planned`).
    if (const std::int64_t ahead = planned - now_ns(); ahead > 0) {
      std::this_thread::sleep_for(std::chrono::nanoseconds(ahead));
    }
    if (planned >= sys->tally.record_after) late.push_back(now_ns() - planned);
    encode(data, planned, i);
    sys->send(k[i % kKeys], data);
  }
  sys->complete();
  wait_settled(*sys, total, 2s, 60s);
  Row r{name, "latency"};
  r.offered = rate;
  fill(r, *sys, total);
  r.achieved = static_cast<double>(r.ok + r.errors + r.dead) / (seconds + warmup);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  std::string server = "nats://127.0.0.1:4222";
  std::string out = "results/broker-vs-ringflow";
  std::uint64_t events = 50'000;
  int repeats = 3;
  double rate = 2000;
  double seconds = 5.0;
  for (int k = 1; k + 1 < argc; k += 2) {
    const std::string a = argv[k];
    const std::string v = argv[k + 1];
    if (a == "--server") {
      server = v;
    } else if (a == "--out") {
      out = v;
    } else if (a == "--events") {
      events = std::stoull(v);
    } else if (a == "--repeats") {
      repeats = std::stoi(v);
    } else if (a == "--rate") {
      rate = std::stod(v);
    } else if (a == "--seconds") {
      seconds = std::stod(v);
    } else if (a == "--seed") {
      g_seed = std::stoull(v);
    } else {
      std::cerr << "unknown argument " << a << "\n";
      return 2;
    }
  }
  try {
    rn::ConnectionOptions co;
    co.servers = {server};
    co.name = "ringflow-broker-vs-ringflow";
    rn::Connection conn(co);
    const std::vector<std::string> systems{"nats_core", "jetstream", "ringflow",
                                           "jetstream_ringflow"};
    std::vector<Row> rows;
    int trial = 0;
    for (int rep = 0; rep < repeats; ++rep) {  // interleaved: A B C D A B C D ...
      for (const auto& sys : systems) {
        rows.push_back(throughput(sys, conn, ++trial, events));
        const Row& r = rows.back();
        std::cerr << sys << " throughput " << static_cast<std::uint64_t>(r.achieved)
                  << "/s, errors " << r.errors << ", lost " << r.lost << ", dead " << r.dead
                  << "\n";
      }
      std::vector<std::int64_t> late;  // the sender's lateness over the four systems
      for (const auto& sys : systems) {
        rows.push_back(latency(sys, conn, ++trial, rate, seconds, 1.0, late));
        const Row& r = rows.back();
        std::cerr << sys << " @" << rate << "/s: mean " << static_cast<std::int64_t>(r.mean) / 1000
                  << " us, p99 " << r.p99 / 1000 << " us, errors " << r.errors << ", lost "
                  << r.lost << ", dead " << r.dead << "\n";
      }
      Row c{"platform_control", "sender_lateness"};
      c.offered = rate;
      c.events = late.size();
      stats_of(c, std::move(late));
      std::cerr << "sender lateness @" << rate << "/s: mean "
                << static_cast<std::int64_t>(c.mean) / 1000 << " us, p99 " << c.p99 / 1000
                << " us\n";
      rows.push_back(c);
    }
    nlohmann::json j = nlohmann::json::array();
    for (const Row& r : rows) {
      const double share =
          r.events == 0 ? 0.0
                        : static_cast<double>(r.errors + r.lost) / static_cast<double>(r.events);
      j.push_back({{"system", r.system},
                   {"kind", r.kind},
                   {"offered_eps", static_cast<std::uint64_t>(r.offered)},
                   {"achieved_eps", static_cast<std::uint64_t>(r.achieved)},
                   {"mean_ns", static_cast<std::int64_t>(r.mean)},
                   {"p50_ns", r.p50},
                   {"p99_ns", r.p99},
                   {"error_share", share},
                   {"events", r.events},
                   {"ok", r.ok},
                   {"errors", r.errors},
                   {"lost", r.lost},
                   {"dead_letters", r.dead},
                   {"attempts", r.attempts}});
    }
    std::ofstream f(out + "/summary.json");
    f << j.dump(1) << "\n";
  } catch (const std::exception& e) {
    std::cerr << "ringflow_broker_vs_ringflow_bench: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
