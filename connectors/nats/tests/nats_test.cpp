// ringflow::nats against real nats-server processes (ctest label `nats`). Each test starts its
// own `nats-server -js` on a free loopback port with a temporary store, and kills it at the end
// (RAII, also when an assertion fails). Skipped only when the nats-server binary is absent.
//
// RINGFLOW_NATS_EVENTS=<n> sets the size of the single-server run (default 100000; 1000000 is
// the size: 21-26 s on a loaded 2-vCPU VM, results/nats/single-server-1m.md).
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <nats/nats.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "ringflow/nats/nats.hpp"
#include "ringflow/ringflow.hpp"
#include "support/bounded.hpp"

namespace {

namespace fs = std::filesystem;
namespace rn = ringflow::nats;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::optional<std::string> find_nats_server() {
  std::vector<std::string> dirs;
  if (const char* path = std::getenv("PATH"); path != nullptr) {
    std::string p = path;
    std::size_t pos = 0;
    while (pos <= p.size()) {
      const std::size_t c = p.find(':', pos);
      dirs.push_back(p.substr(pos, c == std::string::npos ? std::string::npos : c - pos));
      if (c == std::string::npos) break;
      pos = c + 1;
    }
  }
  dirs.emplace_back("/usr/sbin");
  dirs.emplace_back("/usr/bin");
  for (const std::string& d : dirs) {
    const std::string f = d + "/nats-server";
    if (::access(f.c_str(), X_OK) == 0) return f;
  }
  return std::nullopt;
}

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  int port = -1;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  ::close(fd);
  return port;
}

bool port_open(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

/// Waits for `pred` up to `timeout`, polling every 5 ms. Returns its last value.
bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  const auto end = Clock::now() + timeout;
  while (!pred()) {
    if (Clock::now() >= end) return pred();
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

/// A child process (fork + exec), SIGKILLed and reaped on destruction, and killed by the kernel
/// if the test process dies first (construct it on the test's own thread: the signal follows
/// the thread that forked).
class Child {
 public:
  Child(const std::string& exe, const std::vector<std::string>& args, const std::string& log) {
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(exe.c_str()));
    for (const std::string& a : args)
      argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ == 0) {
      // Killed with the test process too, even when it cannot run destructors (SIGKILL by a
      // ctest timeout, _Exit on a hang): no nats-server outlives its test.
      (void)::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      ::execv(exe.c_str(), argv.data());
      ::_exit(127);
    }
  }
  ~Child() { kill(); }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  [[nodiscard]] bool running() {
    if (pid_ <= 0) return false;
    int st = 0;
    if (::waitpid(pid_, &st, WNOHANG) == pid_) {
      pid_ = -1;
      return false;
    }
    return true;
  }
  void signal(int sig) {
    if (pid_ > 0) ::kill(pid_, sig);
  }
  /// Its state in /proc: 'T' when stopped by SIGSTOP ('?' when unknown).
  [[nodiscard]] char state() const {
    if (pid_ <= 0) return '?';
    const std::string path = "/proc/" + std::to_string(pid_) + "/stat";
    FILE* f = std::fopen(path.c_str(), "r");
    if (f == nullptr) return '?';
    char buf[512] = {};
    const std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
    std::fclose(f);
    // "<pid> (<comm>) <state> ...": the state follows the last ')'.
    const std::string t(buf, n);
    const std::size_t close = t.rfind(')');
    return close != std::string::npos && close + 2 < t.size() ? t[close + 2] : '?';
  }
  /// SIGTERM, then SIGKILL if it has not exited within `grace`.
  void terminate(std::chrono::milliseconds grace) {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    if (wait_until([&] { return !running(); }, grace)) return;
    kill();
  }
  void kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int st = 0;
    ::waitpid(pid_, &st, 0);
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
};

/// nats-server -js on a free loopback port with a store under a temporary directory.
class Server {
 public:
  explicit Server(std::string binary) : binary_(std::move(binary)) {
    char tmpl[] = "/tmp/ringflow-nats-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    start();
  }
  ~Server() {
    child_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  /// (Re)starts it on the same port and store (a new port the first time).
  void start() {
    for (int attempt = 0; attempt < 5; ++attempt) {
      if (port_ <= 0 || attempt > 0) port_ = free_port();
      child_ = std::make_unique<Child>(
          binary_,
          std::vector<std::string>{"-js", "-a", "127.0.0.1", "-p", std::to_string(port_), "-sd",
                                   dir_ + "/store", "-n", "ringflow-test"},
          dir_ + "/server.log");
      if (wait_until([&] { return port_open(port_) || !child_->running(); }, 10s) &&
          child_->running()) {
        return;
      }
    }
    throw std::runtime_error("nats-server did not start; see " + dir_ + "/server.log");
  }
  void kill() { child_.reset(); }
  /// SIGSTOP / SIGCONT: the server keeps its connections but answers nothing meanwhile (a
  /// stopped process is still SIGKILLed by kill() or the destructor).
  void pause() {
    if (!child_) return;
    child_->signal(SIGSTOP);
    if (!wait_until([&] { return child_->state() == 'T'; }, 10s)) {
      throw std::runtime_error("nats-server was not stopped by SIGSTOP within 10 s");
    }
  }
  void resume() {
    if (!child_) return;
    child_->signal(SIGCONT);
    if (!wait_until([&] { return child_->state() != 'T'; }, 10s)) {
      throw std::runtime_error("nats-server did not continue after SIGCONT within 10 s");
    }
  }
  /// A clean shutdown (the server writes its consumers' state).
  void shut_down() {
    // Generous: a server killed before it has written its consumers' state would redeliver
    // what was acked (a loaded CI machine can be slow to shut one down).
    if (child_) child_->terminate(60s);
    child_.reset();
  }
  [[nodiscard]] std::string url() const { return "nats://127.0.0.1:" + std::to_string(port_); }
  [[nodiscard]] const std::string& dir() const { return dir_; }

 private:
  std::string binary_;
  std::string dir_;
  int port_ = -1;
  std::unique_ptr<Child> child_;
};

#define REQUIRE_NATS_SERVER()                                                              \
  const std::optional<std::string> nats_server_bin = find_nats_server();                   \
  if (!nats_server_bin) {                                                                  \
    GTEST_SKIP() << "nats-server is not installed (Debian: apt-get install nats-server); " \
                    "the connector's real-server tests need it";                           \
  }

rn::ConnectionOptions conn_options(const Server& s) {
  rn::ConnectionOptions o;
  o.servers = {s.url()};
  o.reconnect_wait = 20ms;
  o.reconnect_wait_max = 200ms;
  return o;
}

ringflow::EngineConfig engine_config() {
  ringflow::EngineConfig c;
  c.partitions = 4;
  c.pin_threads = false;
  c.wait_strategy = ringflow::WaitStrategyKind::park;
  c.ring_capacity = 4096;
  return c;
}

// Formatted with snprintf: GCC 12 warns falsely (-Wrestrict) on "k" + std::to_string(k) once
// inlined.
std::string key_of(std::uint32_t k) {
  char buf[16];
  const int n = std::snprintf(buf, sizeof buf, "k%u", k);
  return {buf, static_cast<std::size_t>(n)};
}

/// Publishes n events, keys k0..k(keys-1) round robin; payload "<per-key index>".
void publish_input(rn::Connection& conn, const std::string& prefix, std::uint32_t partitions,
                   std::uint64_t n, std::uint32_t keys) {
  auto* nc = static_cast<natsConnection*>(conn.native_connection());
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.PublishAsync.MaxPending = 4096;
  jsCtx* js = nullptr;
  ASSERT_EQ(natsConnection_JetStream(&js, nc, &jo), NATS_OK);
  std::vector<std::string> subjects(keys);
  for (std::uint32_t k = 0; k < keys; ++k)
    subjects[k] = rn::subject_for(prefix, key_of(k), partitions);
  for (std::uint64_t i = 0; i < n; ++i) {
    const std::string payload = std::to_string(i / keys);
    natsStatus s = NATS_OK;
    for (int tries = 0; tries < 1000; ++tries) {
      s = js_PublishAsync(js, subjects[i % keys].c_str(), payload.data(),
                          static_cast<int>(payload.size()), nullptr);
      if (s == NATS_OK) break;
    }
    ASSERT_EQ(s, NATS_OK) << "publishing input " << i << ": " << natsStatus_GetText(s);
  }
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = 60000;
  ASSERT_EQ(js_PublishAsyncComplete(js, &po), NATS_OK) << "input not acknowledged within 60 s";
  jsCtx_Destroy(js);
}

std::uint64_t stream_msgs(rn::Connection& conn, const std::string& stream) {
  jsStreamInfo* si = nullptr;
  jsErrCode jerr{};
  if (js_GetStreamInfo(&si, static_cast<jsCtx*>(conn.native_jetstream()), stream.c_str(), nullptr,
                       &jerr) != NATS_OK) {
    return 0;
  }
  const std::uint64_t n = si->State.Msgs;
  jsStreamInfo_Destroy(si);
  return n;
}

struct ConsumerState {
  std::uint64_t pending = UINT64_MAX;    // not yet delivered
  std::int64_t ack_pending = INT64_MAX;  // delivered, not acked
  std::uint64_t ack_floor = 0;           // consumer sequence acked through
};

ConsumerState consumer_state(rn::Connection& conn, const std::string& stream,
                             const std::string& name) {
  jsConsumerInfo* ci = nullptr;
  jsErrCode jerr{};
  ConsumerState st;
  if (js_GetConsumerInfo(&ci, static_cast<jsCtx*>(conn.native_jetstream()), stream.c_str(),
                         name.c_str(), nullptr, &jerr) == NATS_OK) {
    st.pending = ci->NumPending;
    st.ack_pending = ci->NumAckPending;
    st.ack_floor = ci->AckFloor.Consumer;
    jsConsumerInfo_Destroy(ci);
  }
  return st;
}

std::string consumers_text(rn::Connection& conn, const std::string& stream,
                           const std::string& durable, std::uint32_t partitions) {
  std::string t;
  for (std::uint32_t p = 0; p < partitions; ++p) {
    const ConsumerState st = consumer_state(conn, stream, durable + "_" + std::to_string(p));
    t += " [" + std::to_string(p) + ": pending " + std::to_string(st.pending) + ", unacked " +
         std::to_string(st.ack_pending) + "]";
  }
  return t;
}

bool all_acked(rn::Connection& conn, const std::string& stream, const std::string& durable,
               std::uint32_t partitions) {
  for (std::uint32_t p = 0; p < partitions; ++p) {
    const ConsumerState st = consumer_state(conn, stream, durable + "_" + std::to_string(p));
    if (st.pending != 0 || st.ack_pending != 0) return false;
  }
  return true;
}

/// Whether every message delivered to the durable consumers has been acknowledged.
bool none_unacked(rn::Connection& conn, const std::string& stream, const std::string& durable,
                  std::uint32_t partitions) {
  for (std::uint32_t p = 0; p < partitions; ++p) {
    if (consumer_state(conn, stream, durable + "_" + std::to_string(p)).ack_pending != 0) {
      return false;
    }
  }
  return true;
}

/// What a gating subscription saw: deliveries per stream sequence, per-key order.
struct Recorder {
  explicit Recorder(std::uint64_t n, std::uint32_t keys) : seen(n + 1), next(keys) {}
  std::mutex mu;
  std::vector<std::uint32_t> seen;  // by stream sequence
  std::vector<std::uint64_t> next;  // expected per-key index
  std::uint64_t order_violations = 0;
  std::uint64_t distinct = 0;
  std::uint64_t total = 0;
  std::vector<std::uint64_t> seqs;  // in arrival order

  void record(const ringflow::EventView& e, bool check_order) {
    const std::uint64_t seq = e.correlation_id();
    const auto k = static_cast<std::uint32_t>(std::stoul(std::string(e.key().substr(1))));
    const std::uint64_t idx = std::stoull(std::string(e.payload_string()));
    std::lock_guard lock(mu);
    ++total;
    seqs.push_back(seq);
    if (seq < seen.size() && seen[seq]++ == 0) ++distinct;
    if (check_order && k < next.size()) {
      if (idx < next[k]) ++order_violations;
      next[k] = idx + 1;
    }
  }
  std::uint64_t distinct_count() {
    std::lock_guard lock(mu);
    return distinct;
  }
};

/// The last 3000 bytes of a file (a child's log, for a failure message: its directory is
/// removed with the server).
std::string log_tail(const std::string& path) {
  std::string t;
  if (FILE* f = std::fopen(path.c_str(), "r"); f != nullptr) {
    char buf[4096];
    std::size_t n = 0;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0)
      t.append(buf, n);
    std::fclose(f);
  }
  return t.size() > 3000 ? t.substr(t.size() - 3000) : t;
}

/// For a failure message: the input sequences (1..inputs) with no output `<prefix>-<seq>`
/// (Nats-Msg-Id) in `out_stream`, at most 5, each with its input subject.
std::string inputs_without_output(rn::Connection& conn, const std::string& in_stream,
                                  const std::string& out_stream, const std::string& prefix,
                                  std::uint64_t inputs,
                                  const std::function<std::string(std::uint64_t)>& about) {
  auto* js = static_cast<jsCtx*>(conn.native_jetstream());
  std::vector<bool> has(inputs + 1, false);
  const std::uint64_t outs = stream_msgs(conn, out_stream);
  for (std::uint64_t q = 1; q <= outs + 1000; ++q) {
    natsMsg* m = nullptr;
    jsErrCode jerr{};
    if (js_GetMsg(&m, js, out_stream.c_str(), q, nullptr, &jerr) != NATS_OK) continue;
    const char* id = nullptr;
    if (natsMsgHeader_Get(m, "Nats-Msg-Id", &id) == NATS_OK && id != nullptr) {
      const std::string v = id;
      if (v.rfind(prefix + "-", 0) == 0) {
        const std::uint64_t seq = std::strtoull(v.c_str() + prefix.size() + 1, nullptr, 10);
        if (seq <= inputs) has[seq] = true;
      }
    }
    natsMsg_Destroy(m);
  }
  std::string t;
  int shown = 0;
  for (std::uint64_t seq = 1; seq <= inputs && shown < 5; ++seq) {
    if (has[seq]) continue;
    ++shown;
    t += " " + std::to_string(seq);
    natsMsg* m = nullptr;
    jsErrCode jerr{};
    if (js_GetMsg(&m, js, in_stream.c_str(), seq, nullptr, &jerr) == NATS_OK) {
      t += std::string(" (") + natsMsg_GetSubject(m) + ")";
      natsMsg_Destroy(m);
    }
    t += about(seq);
  }
  return t.empty() ? " none" : t;
}

std::uint64_t events_from_env(std::uint64_t dflt) {
  if (const char* v = std::getenv("RINGFLOW_NATS_EVENTS"); v != nullptr && *v != '\0') {
    return std::strtoull(v, nullptr, 10);
  }
  return dflt;
}

// ---- bad paths first: they need no server ----

TEST(NatsConfig, SubjectsFollowTheEnginePartitioning) {
  EXPECT_EQ(rn::subject_for("ev", "k7", 4),
            "ev." + std::to_string(ringflow::partition_of("k7", 4)) + ".k7");
  EXPECT_TRUE(rn::valid_key("order-17_x"));
  for (const char* bad : {"", "a.b", "a*", ">", "a b", "tab\t"}) {
    EXPECT_FALSE(rn::valid_key(bad)) << bad;
    EXPECT_THROW((void)rn::subject_for("ev", bad, 4), std::invalid_argument) << bad;
  }
  EXPECT_THROW((void)rn::subject_for("ev", "k", 0), std::invalid_argument);
}

TEST(NatsConfig, ConnectingToNothingFailsWithinTheTimeout) {
  rn::ConnectionOptions o;
  o.servers = {"nats://127.0.0.1:" + std::to_string(free_port())};
  o.connect_timeout = 500ms;
  const auto t0 = Clock::now();
  EXPECT_THROW(rn::Connection c(o), rn::NatsError);
  EXPECT_LT(Clock::now() - t0, 10s);
  o.servers.clear();
  EXPECT_THROW(rn::Connection c(o), std::invalid_argument);
}

// ---- with a server ----

TEST(NatsSource, RejectsBadOptionsAndAStartWithoutGatingSubscription) {
  REQUIRE_NATS_SERVER();
  Server server(*nats_server_bin);
  rn::Connection conn(conn_options(server));
  rn::ensure_stream(conn, {.name = "EV", .subject_prefix = "ev"});
  ringflow::Engine engine(engine_config());
  engine.add_topic("ev");
  rn::SourceOptions so{
      .stream = "EV", .subject_prefix = "ev", .partitions = 4, .owned = {4}, .topic = "ev"};
  EXPECT_THROW(rn::Source(conn, engine, so), std::invalid_argument);  // partition 4 of 4
  so.owned = {0};
  so.topic = "nope";
  EXPECT_THROW(rn::Source(conn, engine, so), std::out_of_range);
  so.topic = "ev";
  rn::Source source(conn, engine, so);
  EXPECT_THROW(source.subscribe("ev", ringflow::Handler{}), std::invalid_argument);
  ringflow::SubscribeOptions grouped;
  grouped.group = "g";
  EXPECT_THROW(source.subscribe(
                   "ev", [](const ringflow::EventView&) {}, grouped),
               std::invalid_argument);
  engine.start();
  EXPECT_THROW(source.start(), std::logic_error);  // no gating subscription
}

std::int64_t consumer_max_deliver(rn::Connection& conn, const std::string& stream,
                                  const std::string& name) {
  jsConsumerInfo* ci = nullptr;
  jsErrCode jerr{};
  std::int64_t v = -1;
  if (js_GetConsumerInfo(&ci, static_cast<jsCtx*>(conn.native_jetstream()), stream.c_str(),
                         name.c_str(), nullptr, &jerr) == NATS_OK) {
    v = ci->Config->MaxDeliver;
    jsConsumerInfo_Destroy(ci);
  }
  return v;
}

// MaxDeliver follows the gating subscriptions' retry policy (their largest max_attempts; a
// subscription of another topic does not count), unless max_deliver sets it; an existing
// consumer is brought to it.
TEST(NatsSource, MaxDeliverComesFromTheRetryPolicyUnlessSet) {
  REQUIRE_NATS_SERVER();
  Server server(*nats_server_bin);
  rn::Connection conn(conn_options(server));
  rn::ensure_stream(conn, {.name = "EV", .subject_prefix = "ev"});
  const auto run = [&](std::uint32_t max_deliver, std::uint32_t attempts) {
    ringflow::Engine engine(engine_config());
    engine.add_topic("ev");
    engine.add_topic("other");
    rn::SourceOptions so{.stream = "EV",
                         .subject_prefix = "ev",
                         .partitions = 2,
                         .owned = {0, 1},
                         .topic = "ev",
                         .max_deliver = max_deliver};
    rn::Source source(conn, engine, so);
    ringflow::SubscribeOptions few;
    few.max_attempts = 2;
    ringflow::SubscribeOptions many;
    many.max_attempts = attempts;
    ringflow::SubscribeOptions most;
    most.max_attempts = 50;
    source.subscribe(
        "ev", [](const ringflow::EventView&) {}, few);
    source.subscribe(
        "ev", [](const ringflow::EventView&) {}, many);
    source.subscribe(
        "other", [](const ringflow::EventView&) {}, most);  // not this topic
    engine.start();
    source.start();
    const std::uint32_t effective = source.max_deliver();
    const std::int64_t p0 = consumer_max_deliver(conn, "EV", "ringflow_0");
    const std::int64_t p1 = consumer_max_deliver(conn, "EV", "ringflow_1");
    source.stop();
    engine.stop();
    EXPECT_EQ(p0, effective);
    EXPECT_EQ(p1, effective);
    return effective;
  };
  EXPECT_EQ(run(0, 7), 7U) << "derived from the largest max_attempts of the gating subscriptions";
  EXPECT_EQ(run(4, 7), 4U) << "an explicit max_deliver wins (and updates the existing consumer)";
  EXPECT_EQ(run(0, 1), 2U);
}

// One instance, N keyed events: each processed once per subscription, per-key order held,
// retries absorbed in the engine, permanent failures on <subject>.dlq, everything acked.
TEST(NatsSource, SingleServerEveryEventOncePerSubscriptionInKeyOrder) {
  REQUIRE_NATS_SERVER();
  const std::uint64_t n = events_from_env(100'000);
  constexpr std::uint32_t kKeys = 1000;
  constexpr std::uint32_t kParts = 4;
  Server server(*nats_server_bin);
  rn::Connection conn(conn_options(server));
  rn::ensure_stream(conn, {.name = "EV", .subject_prefix = "ev"});
  const auto t_publish = Clock::now();
  publish_input(conn, "ev", kParts, n, kKeys);
  ASSERT_EQ(stream_msgs(conn, "EV"), n);
  const auto published_in = Clock::now() - t_publish;

  // Dead letters as the service would see them: a core subscription on the DLQ subjects.
  natsSubscription* dlq_sub = nullptr;
  ASSERT_EQ(natsConnection_SubscribeSync(
                &dlq_sub, static_cast<natsConnection*>(conn.native_connection()), "ev.*.*.dlq"),
            NATS_OK);
  ASSERT_TRUE(conn.flush(5s));

  ringflow::Engine engine(engine_config());
  engine.add_topic("ev");
  rn::Source source(conn, engine,
                    {.stream = "EV",
                     .subject_prefix = "ev",
                     .partitions = kParts,
                     .owned = {0, 1, 2, 3},
                     .topic = "ev"});
  Recorder plain(n, kKeys);
  Recorder flaky(n, kKeys);
  std::atomic<std::uint64_t> retried{0};
  source.subscribe("ev", [&](const ringflow::EventView& e) { plain.record(e, true); });
  ringflow::SubscribeOptions retries;
  retries.max_attempts = 3;
  retries.retry_backoff = 100us;
  source.subscribe(
      "ev",
      [&](const ringflow::EventView& e) -> ringflow::Outcome {
        const std::uint64_t seq = e.correlation_id();
        if (seq % 1000 == 7) return ringflow::Outcome::fail("permanent");
        if (seq % 1000 == 9) throw std::runtime_error("handler threw");
        if (seq % 10 == 3 && e.attempt() == 1) {
          retried.fetch_add(1, std::memory_order_relaxed);
          return ringflow::Outcome::retry();
        }
        flaky.record(e, false);
        return ringflow::Outcome::ok();
      },
      retries);
  engine.start();
  const auto t_consume = Clock::now();
  source.start();

  std::uint64_t dead = 0;
  for (std::uint64_t s = 1; s <= n; ++s)
    dead += (s % 1000 == 7 || s % 1000 == 9) ? 1 : 0;
  const auto budget = std::chrono::milliseconds(30'000 + n / 5);
  ASSERT_TRUE(
      wait_until([&] { return source.stats().acked + source.stats().dead_lettered >= n; }, budget))
      << "not every message was settled: " << source.stats().acked << " acked, "
      << source.stats().dead_lettered << " dead of " << n;
  const auto settled_in = Clock::now() - t_consume;
  ASSERT_TRUE(wait_until([&] { return all_acked(conn, "EV", "ringflow", kParts); }, 20s))
      << "the server still has unacked or undelivered messages";

  // Dead letters arrive on the DLQ subjects with the reason.
  std::uint64_t dlq_msgs = 0;
  for (;;) {
    natsMsg* m = nullptr;
    if (natsSubscription_NextMsg(&m, dlq_sub, dlq_msgs < dead ? 5000 : 200) != NATS_OK) break;
    const char* reason = nullptr;
    EXPECT_EQ(natsMsgHeader_Get(m, "Ringflow-Reason", &reason), NATS_OK);
    if (reason != nullptr) {
      EXPECT_NE(std::string(reason).find("failed"), std::string::npos);
    }
    ++dlq_msgs;
    natsMsg_Destroy(m);
  }
  natsSubscription_Destroy(dlq_sub);
  source.stop();
  engine.stop();

  const rn::SourceStats st = source.stats();
  EXPECT_EQ(plain.total, n) << "the plain subscription must see every event exactly once";
  EXPECT_EQ(plain.distinct, n);
  EXPECT_EQ(plain.order_violations, 0U) << "per-key order broken";
  EXPECT_EQ(flaky.distinct, n - dead);
  EXPECT_EQ(flaky.total, n - dead);
  EXPECT_GT(retried.load(), 0U);
  EXPECT_EQ(st.acked, n - dead);
  EXPECT_EQ(st.dead_lettered, dead);
  EXPECT_EQ(dlq_msgs, dead) << "each dead letter published once to <subject>.dlq";
  EXPECT_EQ(stream_msgs(conn, "EV"), n + dead);  // the DLQ copies live in the stream too
  EXPECT_EQ(st.in_flight, 0U);
  EXPECT_EQ(st.naked, 0U);
  const ringflow::EngineStats es = engine.stats();
  EXPECT_EQ(es.dead_letters(ringflow::DeadLetterReason::failed), dead);
  std::printf(
      "single server: %llu events, %llu retried in the engine, %llu dead letters, "
      "%llu redelivered by JetStream\n",
      static_cast<unsigned long long>(n), static_cast<unsigned long long>(retried.load()),
      static_cast<unsigned long long>(dead), static_cast<unsigned long long>(st.redelivered));
  // Wall times of the two phases (the input publish, then the source until every message is
  // acked or dead-lettered): for the record of a run, not checked.
  const auto ms = [](Clock::duration d) {
    return static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
  };
  std::printf("single server: input published in %lld ms, consumed and settled in %lld ms\n",
              ms(published_in), ms(settled_in));
  RecordProperty("publish_ms", std::to_string(ms(published_in)));
  RecordProperty("settle_ms", std::to_string(ms(settled_in)));
}

// Restart of everything: the instance stops mid-stream, the server shuts down and restarts on
// its store, a new instance resumes from the acked positions: nothing processed twice or lost.
TEST(NatsSource, RestartResumesFromAckedPositions) {
  REQUIRE_NATS_SERVER();
  constexpr std::uint64_t kN = 20'000;
  constexpr std::uint32_t kKeys = 100;
  constexpr std::uint32_t kParts = 4;
  Server server(*nats_server_bin);
  std::vector<std::uint64_t> first;
  {
    rn::Connection conn(conn_options(server));
    rn::ensure_stream(conn, {.name = "EV", .subject_prefix = "ev"});
    publish_input(conn, "ev", kParts, kN, kKeys);
    ringflow::Engine engine(engine_config());
    engine.add_topic("ev");
    rn::Source source(conn, engine,
                      {.stream = "EV",
                       .subject_prefix = "ev",
                       .partitions = kParts,
                       .owned = {0, 1, 2, 3},
                       .topic = "ev",
                       .fetch_batch = 64});
    Recorder rec(kN, kKeys);
    source.subscribe("ev", [&](const ringflow::EventView& e) {
      rec.record(e, true);
      std::this_thread::sleep_for(20us);  // so that stopping lands mid-stream
    });
    engine.start();
    source.start();
    ASSERT_TRUE(wait_until([&] { return rec.distinct_count() >= kN / 3; }, 60s))
        << "first instance made no progress: " << rec.distinct_count();
    source.stop();
    engine.stop();
    EXPECT_EQ(source.stats().naked, 0U) << "a clean stop finishes what it fetched";
    EXPECT_EQ(rec.order_violations, 0U);
    first = rec.seqs;
    ASSERT_LT(first.size(), kN) << "stopped too late to prove a resume";
    // The server has every ack of the first run before it is shut down.
    ASSERT_TRUE(wait_until([&] { return none_unacked(conn, "EV", "ringflow", kParts); }, 20s))
        << "acks of the first run did not reach the server:"
        << consumers_text(conn, "EV", "ringflow", kParts);
  }
  server.shut_down();
  server.start();
  rn::Connection conn(conn_options(server));
  ASSERT_EQ(stream_msgs(conn, "EV"), kN) << "the restarted server lost stored messages";
  ringflow::Engine engine(engine_config());
  engine.add_topic("ev");
  rn::Source source(conn, engine,
                    {.stream = "EV",
                     .subject_prefix = "ev",
                     .partitions = kParts,
                     .owned = {0, 1, 2, 3},
                     .topic = "ev"});
  Recorder rec(kN, kKeys);
  source.subscribe("ev", [&](const ringflow::EventView& e) { rec.record(e, false); });
  engine.start();
  source.start();
  ASSERT_TRUE(wait_until([&] { return first.size() + rec.distinct_count() >= kN; }, 60s))
      << "after restart: " << first.size() << " + " << rec.distinct_count() << " of " << kN;
  ASSERT_TRUE(wait_until([&] { return all_acked(conn, "EV", "ringflow", kParts); }, 20s))
      << consumers_text(conn, "EV", "ringflow", kParts) << "; fetched " << source.stats().fetched
      << " redelivered " << source.stats().redelivered << " acked " << source.stats().acked
      << " in flight " << source.stats().in_flight << " answered again "
      << source.stats().answered_again;
  source.stop();
  engine.stop();
  std::set<std::uint64_t> a(first.begin(), first.end());
  EXPECT_EQ(a.size(), first.size()) << "first run processed something twice";
  std::uint64_t overlap = 0;
  for (const std::uint64_t s : rec.seqs)
    overlap += a.count(s);
  EXPECT_EQ(overlap, 0U) << "the second run re-processed acked messages";
  EXPECT_EQ(first.size() + rec.total, kN);
  EXPECT_EQ(source.stats().redelivered, 0U);
}

// Two instances split the partitions; one (a child process) is SIGKILLed mid-stream; the
// survivor takes its partitions over. Every input ends up in the output stream exactly once in
// effect (Nats-Msg-Id dedup absorbs the reprocessed ones); redeliveries are counted.
// MaxDeliver is 20, not the default 3: it counts every delivery, and with the short ack_wait
// (2 s, for a quick takeover) a loaded machine made A hold a message through three deliveries
// (each redelivery to A only replaces its handle) and die with it; the server then never
// delivered it again and its output was missing (5 times in ~120 loop runs; once with the
// server's MaxDeliver advisory counted: 1). The advisories are counted and must stay 0.
TEST(NatsSource, KilledInstancesPartitionsAreTakenOver) {
  REQUIRE_NATS_SERVER();
  constexpr std::uint64_t kN = 20'000;
  constexpr std::uint32_t kKeys = 200;
  constexpr std::uint32_t kParts = 4;
  Server server(*nats_server_bin);
  rn::Connection conn(conn_options(server));
  rn::ensure_stream(conn, {.name = "IN", .subject_prefix = "in"});
  rn::ensure_stream(conn, {.name = "OUT", .subject_prefix = "out"});
  publish_input(conn, "in", kParts, kN, kKeys);

  const std::string log = server.dir() + "/instance-a.log";
  Child a(RINGFLOW_NATS_INSTANCE,
          {"--server",      server.url(), "--stream",      "IN",
           "--prefix",      "in",         "--partitions",  std::to_string(kParts),
           "--own",         "0,1",        "--out-stream",  "OUT",
           "--out-prefix",  "out",        "--ack-wait-ms", "2000",
           "--max-deliver", "20",         "--delay-us",    "300"},
          log);

  // The server's advisories for messages that reached MaxDeliver (it never delivers them again).
  natsSubscription* max_deliveries = nullptr;
  ASSERT_EQ(natsConnection_SubscribeSync(&max_deliveries,
                                         static_cast<natsConnection*>(conn.native_connection()),
                                         "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.IN.*"),
            NATS_OK);
  ASSERT_TRUE(conn.flush(5s));
  const auto max_delivery_advisories = [&] {
    int n = 0;
    natsSubscription_GetPending(max_deliveries, &n, nullptr);
    return n;
  };

  // Instance B, in this process: partitions 2 and 3, the same handler (publish to OUT).
  ringflow::Engine engine(engine_config());
  engine.add_topic("in");
  rn::Sink sink(conn, {.subject_prefix = "out", .partitions = kParts, .msg_id_prefix = "out"});
  rn::SourceOptions so{.stream = "IN",
                       .subject_prefix = "in",
                       .partitions = kParts,
                       .owned = {2, 3},
                       .topic = "in",
                       .max_deliver = 20,
                       .ack_wait = 2000ms};
  so.before_ack = [&sink] { return sink.flush(1s); };
  rn::Source source(conn, engine, so);
  Recorder rec(kN, kKeys);
  std::mutex parts_mu;
  std::set<std::uint32_t> late_keys;  // keys of partitions 0 and 1 (order not checked there)
  source.subscribe("in", [&](const ringflow::EventView& e) {
    const bool own_from_start = ringflow::partition_of(e.key(), kParts) >= 2;
    rec.record(e, own_from_start);
    return sink.publish(e);
  });
  engine.start();
  source.start();

  // Kill A mid-stream: once it has acked a few hundred messages of partition 0.
  ASSERT_TRUE(
      wait_until([&] { return consumer_state(conn, "IN", "ringflow_0").ack_floor >= 300; }, 60s))
      << "instance A made no progress; see " << log;
  a.kill();
  const ConsumerState p0 = consumer_state(conn, "IN", "ringflow_0");
  const ConsumerState p1 = consumer_state(conn, "IN", "ringflow_1");
  ASSERT_GT(p0.pending + static_cast<std::uint64_t>(p0.ack_pending) + p1.pending +
                static_cast<std::uint64_t>(p1.ack_pending),
            0U)
      << "instance A finished before it was killed: nothing to take over";
  const std::uint64_t unacked_at_kill =
      static_cast<std::uint64_t>(p0.ack_pending) + static_cast<std::uint64_t>(p1.ack_pending);

  source.own(0);
  source.own(1);
  EXPECT_EQ(source.owned(), (std::vector<std::uint32_t>{0, 1, 2, 3}));
  ASSERT_TRUE(wait_until([&] { return all_acked(conn, "IN", "ringflow", kParts); }, 90s))
      << "the survivor did not finish the killed instance's partitions";
  ASSERT_TRUE(sink.flush(10s));
  ASSERT_TRUE(wait_until([&] { return stream_msgs(conn, "OUT") >= kN; }, 10s))
      << stream_msgs(conn, "OUT") << " outputs of " << kN << " inputs; the input stream holds "
      << stream_msgs(conn, "IN") - kN
      << " dead letters (both instances); the survivor: " << source.stats().dead_lettered
      << " dead-lettered, " << source.stats().redelivered << " redelivered, "
      << source.stats().in_flight << " in flight, " << engine.stats().duplicates
      << " dropped by the engine as duplicates, sink back-pressure " << sink.stats().back_pressure
      << ", refused " << sink.stats().failed << ", timed out " << sink.stats().timed_out
      << "; inputs without an output:"
      << inputs_without_output(conn, "IN", "OUT", "out", kN,
                               [&](std::uint64_t seq) {
                                 std::lock_guard lock(rec.mu);
                                 return std::string(seq < rec.seen.size() && rec.seen[seq] > 0
                                                        ? " [handled by the survivor]"
                                                        : " [not handled by the survivor]");
                               })
      << "; the input consumers:" << consumers_text(conn, "IN", "ringflow", kParts)
      << "; MaxDeliver advisories: " << max_delivery_advisories()
      << "; the survivor's sink: " << sink.stats().published << " queued, " << sink.stats().stored
      << " stored, " << sink.stats().duplicates << " duplicates"
      << "; instance A's log ends:\n"
      << log_tail(log);
  source.stop();
  engine.stop();

  const rn::SourceStats st = source.stats();
  const rn::SinkStats sk = sink.stats();
  EXPECT_EQ(stream_msgs(conn, "OUT"), kN) << "every input once in the output, in effect";
  EXPECT_EQ(rec.order_violations, 0U) << "per-key order broken on the survivor's partitions";
  EXPECT_EQ(sk.failed, 0U);
  EXPECT_EQ(st.dead_lettered, 0U);
  EXPECT_EQ(max_delivery_advisories(), 0) << "a message reached MaxDeliver";
  natsSubscription_Destroy(max_deliveries);
  std::printf(
      "takeover: %llu unacked at the kill, %llu redelivered to the survivor, "
      "%llu outputs dropped as duplicates by Nats-Msg-Id\n",
      static_cast<unsigned long long>(unacked_at_kill),
      static_cast<unsigned long long>(st.redelivered),
      static_cast<unsigned long long>(sk.duplicates));
  RecordProperty("redelivered", std::to_string(st.redelivered));
  RecordProperty("duplicates_dropped", std::to_string(sk.duplicates));
  // (unacked_at_kill may include acks still on their way when A died.)
  if (unacked_at_kill > 0) {
    EXPECT_GT(st.redelivered, 0U) << "A's unacked messages come again";
  }
}

// NATS back-pressure: with the server gone and a window of 4, the fifth publish waits
// stall_wait and answers retry; when the server is back, the queued ones are stored.
TEST(NatsSink, FullWindowIsRetryAndReconnectDeliversTheQueued) {
  REQUIRE_NATS_SERVER();
  Server server(*nats_server_bin);
  std::mutex mu;
  std::vector<rn::Status::Kind> seen;
  rn::ConnectionOptions co = conn_options(server);
  co.on_status = [&](const rn::Status& s) {
    std::lock_guard lock(mu);
    seen.push_back(s.kind);
  };
  rn::Connection conn(co);
  rn::ensure_stream(conn, {.name = "OUT", .subject_prefix = "out"});
  rn::Sink sink(conn,
                {.subject_prefix = "out", .partitions = 4, .max_pending = 4, .stall_wait = 5ms});
  ringflow::Engine engine(engine_config());
  const ringflow::TopicId t = engine.add_topic("t");
  std::vector<ringflow::Outcome::Kind> got;
  std::mutex got_mu;
  ringflow::SubscribeOptions once;
  once.max_attempts = 1;
  engine.subscribe(
      "t",
      [&](const ringflow::EventView& e) {
        const ringflow::Outcome o = sink.publish(e);
        std::lock_guard lock(got_mu);
        got.push_back(o.kind());
        return ringflow::Outcome::ok();
      },
      once);
  engine.start();
  server.kill();
  ASSERT_TRUE(wait_until(
      [&] {
        std::lock_guard lock(mu);
        return std::find(seen.begin(), seen.end(), rn::Status::Kind::disconnected) != seen.end();
      },
      10s))
      << "no disconnected status within 10 s";
  ringflow::Producer p = engine.make_producer();
  for (int k = 0; k < 6; ++k) {
    ASSERT_EQ(p.publish(t, "k" + std::to_string(k), "x"), ringflow::PublishStatus::ok);
  }
  engine.drain();
  {
    std::lock_guard lock(got_mu);
    ASSERT_EQ(got.size(), 6U);
    for (int k = 0; k < 4; ++k)
      EXPECT_EQ(got[k], ringflow::Outcome::Kind::ok) << k;
    EXPECT_EQ(got[4], ringflow::Outcome::Kind::retry);
    EXPECT_EQ(got[5], ringflow::Outcome::Kind::retry);
  }
  EXPECT_EQ(sink.stats().back_pressure, 2U);
  server.start();
  ASSERT_TRUE(wait_until(
      [&] {
        std::lock_guard lock(mu);
        return std::find(seen.begin(), seen.end(), rn::Status::Kind::reconnected) != seen.end();
      },
      20s))
      << "no reconnect within 20 s";
  EXPECT_TRUE(sink.flush(10s));
  EXPECT_EQ(sink.stats().stored, 4U) << "flush() == true: every queued publish is stored";
  engine.stop();
}

// A publish the server refuses after it was queued (here: no stream has its subject yet, so
// nobody answers it) is kept and queued again by flush(), with the same Nats-Msg-Id, until it is
// stored: as the source's before_ack, flush() == true means the outputs are stored.
TEST(NatsSink, RefusedPublishesAreQueuedAgainByFlush) {
  REQUIRE_NATS_SERVER();
  Server server(*nats_server_bin);
  rn::Connection conn(conn_options(server));
  rn::Sink sink(conn, {.subject_prefix = "late", .partitions = 4, .msg_id_prefix = "late"});
  ringflow::Engine engine(engine_config());
  const ringflow::TopicId t = engine.add_topic("t");
  ringflow::SubscribeOptions once;
  once.max_attempts = 1;
  engine.subscribe(
      "t", [&](const ringflow::EventView& e) { return sink.publish(e); }, once);
  engine.start();
  ringflow::Producer p = engine.make_producer();
  for (int k = 0; k < 3; ++k) {
    ASSERT_EQ(p.publish(t, key_of(static_cast<std::uint32_t>(k)), "x"),
              ringflow::PublishStatus::ok);
  }
  engine.drain();
  EXPECT_FALSE(sink.flush(300ms)) << "nothing can be stored without a stream";
  EXPECT_GE(sink.stats().failed, 3U);
  EXPECT_EQ(sink.stats().stored, 0U);
  rn::ensure_stream(conn, {.name = "LATE", .subject_prefix = "late"});
  EXPECT_TRUE(sink.flush(10s)) << "refused publishes were not queued again";
  EXPECT_EQ(sink.stats().stored, 3U);
  EXPECT_GE(sink.stats().republished, 3U);
  EXPECT_EQ(stream_msgs(conn, "LATE"), 3U) << "each output once (Nats-Msg-Id)";
  engine.stop();
}

// A publish the server never answers (here: the server is stopped with SIGSTOP after the
// publishes were written to it) leaves the window after publish_timeout: reported, counted, and
// the window has room again at once; flush() answers false while it is not stored, and queues
// it again (same Nats-Msg-Id) once the server answers: every output stored once.
TEST(NatsSink, UnansweredPublishesTimeOutAndAreQueuedAgainByFlush) {
  REQUIRE_NATS_SERVER();
  Server server(*nats_server_bin);
  std::mutex mu;
  std::vector<std::string> timeouts;
  rn::ConnectionOptions co = conn_options(server);
  co.on_status = [&](const rn::Status& s) {
    if (s.kind != rn::Status::Kind::publish_error) return;
    if (s.detail.find("publish_timeout") == std::string::npos) return;
    std::lock_guard lock(mu);
    timeouts.push_back(s.detail);
  };
  rn::Connection conn(co);
  rn::ensure_stream(conn, {.name = "OUT", .subject_prefix = "out"});
  constexpr int kWindow = 4;
  rn::Sink sink(conn, {.subject_prefix = "out",
                       .partitions = 4,
                       .msg_id_prefix = "out",
                       .max_pending = kWindow,
                       .stall_wait = 5ms,
                       .publish_timeout = 300ms});
  ringflow::Engine engine(engine_config());
  const ringflow::TopicId t = engine.add_topic("t");
  std::vector<ringflow::Outcome::Kind> got;
  std::mutex got_mu;
  ringflow::SubscribeOptions once;
  once.max_attempts = 1;
  engine.subscribe(
      "t",
      [&](const ringflow::EventView& e) {
        const ringflow::Outcome o = sink.publish(e);
        std::lock_guard lock(got_mu);
        got.push_back(o.kind());
        return ringflow::Outcome::ok();
      },
      once);
  engine.start();
  ringflow::Producer p = engine.make_producer();
  const auto publish = [&](int from, int to) {
    for (int k = from; k < to; ++k) {
      ASSERT_EQ(p.publish(t, key_of(static_cast<std::uint32_t>(k)), "x"),
                ringflow::PublishStatus::ok);
    }
    engine.drain();
  };
  const auto outcomes = [&] {
    std::lock_guard lock(got_mu);
    return got;
  };
  // Served normally first.
  publish(0, 2);
  ASSERT_TRUE(sink.flush(10s)) << "the server did not store two publishes within 10 s";

  server.pause();
  publish(2, 2 + kWindow + 1);  // fills the window; one finds it full: retry
  {
    const std::vector<ringflow::Outcome::Kind> o = outcomes();
    ASSERT_EQ(o.size(), 2U + kWindow + 1);
    EXPECT_EQ(std::count(o.begin(), o.end(), ringflow::Outcome::Kind::retry), 1)
        << "the window of " << kWindow << " should have been full for the last publish";
  }
  EXPECT_FALSE(sink.flush(100ms)) << "nothing can be stored while the server is stopped";
  ASSERT_TRUE(wait_until([&] { return sink.stats().timed_out >= kWindow; }, 10s))
      << "unanswered publishes did not time out within 10 s (publish_timeout 300 ms): "
      << sink.stats().timed_out << " timed out";
  {
    std::lock_guard lock(mu);
    EXPECT_GE(timeouts.size(), static_cast<std::size_t>(kWindow))
        << "each timeout is reported as a publish_error";
  }
  // The window has room again although the server still answers nothing.
  publish(2 + kWindow + 1, 2 + kWindow + 2);
  EXPECT_EQ(outcomes().back(), ringflow::Outcome::Kind::ok)
      << "timed-out publishes left the window";
  EXPECT_FALSE(sink.flush(100ms)) << "flush() == true would claim unstored outputs";

  server.resume();
  // The two before the stop, the kWindow queued while stopped and the one after the timeouts;
  // the one answered retry was not queued.
  const std::uint64_t expected = 2 + kWindow + 1;
  EXPECT_TRUE(sink.flush(30s)) << "flush() did not store the timed-out publishes within 30 s";
  ASSERT_TRUE(wait_until([&] { return stream_msgs(conn, "OUT") >= expected; }, 10s))
      << stream_msgs(conn, "OUT") << " of " << expected << " outputs stored";
  EXPECT_EQ(stream_msgs(conn, "OUT"), expected) << "each output once (Nats-Msg-Id)";
  EXPECT_GE(sink.stats().republished, static_cast<std::uint64_t>(kWindow));
  EXPECT_EQ(sink.stats().failed, 0U);
  engine.stop();
}

TEST(NatsSink, DestroyingASinkWhileTheServerIsStoppedLeavesNoPublishBehind) {
  REQUIRE_NATS_SERVER();
  Server server(*nats_server_bin);
  std::atomic<int> reports{0};
  rn::ConnectionOptions co = conn_options(server);
  co.on_status = [&](const rn::Status& s) {
    if (s.kind == rn::Status::Kind::publish_error) reports.fetch_add(1);
  };
  rn::Connection conn(co);
  rn::ensure_stream(conn, {.name = "OUT", .subject_prefix = "out"});
  constexpr auto kTimeout = 200ms;
  auto sink = std::make_unique<rn::Sink>(conn, rn::SinkOptions{.subject_prefix = "out",
                                                               .partitions = 4,
                                                               .msg_id_prefix = "out",
                                                               .max_pending = 4,
                                                               .stall_wait = 5ms,
                                                               .publish_timeout = kTimeout});
  {
    ringflow::Engine engine(engine_config());
    const ringflow::TopicId t = engine.add_topic("t");
    ringflow::SubscribeOptions once;
    once.max_attempts = 1;
    engine.subscribe(
        "t", [&](const ringflow::EventView& e) { return sink->publish(e); }, once);
    engine.start();
    ringflow::Producer p = engine.make_producer();
    ASSERT_EQ(p.publish(t, key_of(0), "x"), ringflow::PublishStatus::ok);
    engine.drain();
    ASSERT_TRUE(sink->flush(10s)) << "the server did not store one publish within 10 s";
    server.pause();
    for (std::uint32_t k = 1; k <= 4; ++k)
      ASSERT_EQ(p.publish(t, key_of(k), "x"), ringflow::PublishStatus::ok);
    engine.drain();
    engine.stop();  // no handler uses the sink from here on
  }
  // The destructor's flush cannot store anything while the server is stopped; it must still
  // leave no publish in flight behind (their ack handler points into the sink).
  ringflow::test::bounded("~Sink with the server stopped", 30s, [&] { sink.reset(); });
  const int at_destruction = reports.load();
  EXPECT_GT(at_destruction, 0) << "the unanswered publishes were reported while it waited";
  // A publish left in flight would time out within kTimeout and call into the freed sink
  // (ASan: heap-use-after-free; here: one more report). Give such a timeout three times the
  // time it needs, then check nothing came.
  std::this_thread::sleep_for(3 * kTimeout);
  EXPECT_EQ(reports.load(), at_destruction) << "a publish outlived its sink";
  server.resume();
}

}  // namespace

namespace {

std::string file_text(const std::string& path) {
  std::string t;
  if (FILE* f = std::fopen(path.c_str(), "r"); f != nullptr) {
    char buf[4096];
    std::size_t n = 0;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0)
      t.append(buf, n);
    std::fclose(f);
  }
  return t.size() > 4000 ? t.substr(t.size() - 4000) : t;
}

std::string held_text(const std::vector<std::uint32_t>& v) {
  std::string t = "{";
  for (const std::uint32_t p : v)
    t.append(" ").append(std::to_string(p));
  return t + " }";
}

std::string lease_owner(rn::Connection& conn, const std::string& bucket, std::uint32_t p) {
  kvStore* kv = nullptr;
  if (js_KeyValue(&kv, static_cast<jsCtx*>(conn.native_jetstream()), bucket.c_str()) != NATS_OK) {
    return {};
  }
  std::string owner;
  kvEntry* e = nullptr;
  const std::string key = "p." + std::to_string(p);
  if (kvStore_Get(&e, kv, key.c_str()) == NATS_OK) {
    owner = kvEntry_ValueString(e);
    kvEntry_Destroy(e);
  }
  kvStore_Destroy(kv);
  return owner;
}

// Leases: alone, an instance takes every partition; when a second joins, half move to it (the
// holder releases before the newcomer can create the lease); when the newcomer is SIGKILLed,
// its partitions come back to the survivor within the TTL and a tick or two, and every event
// published meanwhile ends up in the output once.
TEST(NatsLeases, PartitionsRebalanceOnJoinAndMoveOnDeath) {
  REQUIRE_NATS_SERVER();
  constexpr std::uint64_t kN = 10'000;
  constexpr std::uint32_t kKeys = 100;
  constexpr std::uint32_t kParts = 4;
  constexpr auto kTtl = 2000ms;
  Server server(*nats_server_bin);
  rn::Connection conn(conn_options(server));
  rn::ensure_stream(conn, {.name = "IN", .subject_prefix = "in"});
  rn::ensure_stream(conn, {.name = "OUT", .subject_prefix = "out"});

  ringflow::Engine engine(engine_config());
  engine.add_topic("in");
  rn::Sink sink(conn, {.subject_prefix = "out", .partitions = kParts, .msg_id_prefix = "out"});
  rn::SourceOptions so{.stream = "IN",
                       .subject_prefix = "in",
                       .partitions = kParts,
                       .topic = "in",
                       .ack_wait = 2000ms,
                       .stop_timeout = 150ms};
  so.before_ack = [&sink] { return sink.flush(1s); };
  rn::Source source(conn, engine, so);
  source.subscribe("in", [&](const ringflow::EventView& e) { return sink.publish(e); });
  engine.start();
  source.start();
  rn::Leases leases(conn, source, {.bucket = "ringflow_leases", .instance = "b", .ttl = kTtl});
  EXPECT_THROW(rn::Leases(conn, source, {.bucket = "ringflow_leases", .instance = "b.c"}),
               std::invalid_argument);
  leases.start();
  ASSERT_TRUE(wait_until([&] { return leases.held().size() == kParts; }, 10s))
      << "a lone instance did not take every partition; holds " << leases.held().size();

  // Members sorted: "a" < "b", so a gets partitions 0 and 2, b keeps 1 and 3.
  const std::string log = server.dir() + "/instance-a.log";
  Child a(RINGFLOW_NATS_INSTANCE,
          {"--server",         server.url(), "--stream",       "IN",
           "--prefix",         "in",         "--partitions",   std::to_string(kParts),
           "--lease-instance", "a",          "--lease-ttl-ms", "2000",
           "--ack-wait-ms",    "2000",       "--out-stream",   "OUT",
           "--out-prefix",     "out",        "--delay-us",     "300"},
          log);
  const std::vector<std::uint32_t> b_share{1, 3};
  ASSERT_TRUE(wait_until(
      [&] {
        return leases.held() == b_share && source.owned() == b_share &&
               lease_owner(conn, "ringflow_leases", 0) == "a" &&
               lease_owner(conn, "ringflow_leases", 2) == "a";
      },
      20s))
      << "no rebalance to {a: 0,2; b: 1,3} within 20 s: b holds " << held_text(leases.held())
      << ", owns " << held_text(source.owned()) << ", sees " << leases.stats().members
      << " members; owners of 0..3: " << lease_owner(conn, "ringflow_leases", 0) << ","
      << lease_owner(conn, "ringflow_leases", 1) << "," << lease_owner(conn, "ringflow_leases", 2)
      << "," << lease_owner(conn, "ringflow_leases", 3) << "; instance a:\n"
      << file_text(log);
  EXPECT_GE(leases.stats().released, 2U);

  publish_input(conn, "in", kParts, kN, kKeys);
  ASSERT_TRUE(
      wait_until([&] { return consumer_state(conn, "IN", "ringflow_0").ack_floor >= 200; }, 60s))
      << "instance a made no progress; see " << log;
  a.kill();
  const auto killed = Clock::now();
  ASSERT_TRUE(wait_until([&] { return leases.held().size() == kParts; }, 20s))
      << "the survivor did not take the dead instance's partitions within 20 s";
  const auto takeover =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - killed);
  EXPECT_LE(takeover, 3 * kTtl) << "takeover took " << takeover.count() << " ms";
  ASSERT_TRUE(wait_until([&] { return all_acked(conn, "IN", "ringflow", kParts); }, 60s))
      << consumers_text(conn, "IN", "ringflow", kParts);
  ASSERT_TRUE(sink.flush(10s));
  ASSERT_TRUE(wait_until([&] { return stream_msgs(conn, "OUT") >= kN; }, 10s));
  EXPECT_EQ(stream_msgs(conn, "OUT"), kN) << "every input once in the output, in effect";
  std::printf("leases: takeover %lld ms after SIGKILL (ttl %lld ms), %llu redelivered\n",
              static_cast<long long>(takeover.count()), static_cast<long long>(kTtl.count()),
              static_cast<unsigned long long>(source.stats().redelivered));
  RecordProperty("takeover_ms", std::to_string(takeover.count()));
  leases.stop();
  EXPECT_TRUE(leases.held().empty());
  EXPECT_TRUE(source.owned().empty());
  EXPECT_TRUE(lease_owner(conn, "ringflow_leases", 1).empty()) << "stop() deletes its leases";
  source.stop();
  engine.stop();
}

}  // namespace

namespace {

// ---- request/reply across instances

TEST(NatsRequestReply, TheSameCallWorksAcrossInstancesWithTheSameStatuses) {
  REQUIRE_NATS_SERVER();
  Server server(*nats_server_bin);
  rn::Connection serving(conn_options(server));
  rn::Connection calling(conn_options(server));

  // Instance A serves "stock.reserve" (replies), "stock.fail" (dead-letters) and
  // "stock.silent" (never replies).
  ringflow::Engine engine(engine_config());
  (void)engine.add_topic("stock.reserve");
  (void)engine.add_topic("stock.fail");
  (void)engine.add_topic("stock.silent");
  engine.subscribe("stock.reserve", [&](const ringflow::EventView& e) {
    const std::string answer =
        std::string("reserved:").append(e.key()).append(":").append(e.payload_string());
    EXPECT_EQ(engine.reply(e, answer), ringflow::ReplyStatus::ok);
  });
  engine.subscribe("stock.fail", ringflow::Handler([](const ringflow::EventView&) {
                     return ringflow::Outcome::fail("out of stock");
                   }));
  engine.subscribe("stock.silent", [](const ringflow::EventView&) {});
  engine.start();
  rn::Responder responder(serving, engine);
  responder.start();
  ASSERT_TRUE(serving.flush(5s)) << "the responder's subscription did not reach the server";

  // Instance B calls through NATS only.
  const auto in = [](std::chrono::nanoseconds d) { return ringflow::now_ns() + d.count(); };
  for (int i = 0; i < 50; ++i) {
    const std::string key = key_of(static_cast<std::uint32_t>(i));
    const rn::RemoteReply r = rn::request(calling, "stock.reserve", key, "2 units", in(5s));
    ASSERT_EQ(r.status, ringflow::RequestStatus::replied)
        << r.detail << " (responder received " << responder.stats().received << ", answered "
        << responder.stats().answered << "; engine deliveries " << engine.stats().deliveries
        << ", late replies " << engine.stats().late_replies << ", published ok "
        << engine.stats().published_count(ringflow::PublishStatus::ok) << ")";
    EXPECT_EQ(r.payload, "reserved:" + key + ":2 units");
  }
  const rn::RemoteReply dead = rn::request(calling, "stock.fail", "k", "x", in(5s));
  EXPECT_EQ(dead.status, ringflow::RequestStatus::dead_lettered);
  EXPECT_EQ(dead.detail, "failed");
  const auto t0 = Clock::now();
  const rn::RemoteReply late = rn::request(calling, "stock.silent", "k", "x", in(200ms));
  EXPECT_EQ(late.status, ringflow::RequestStatus::expired);
  EXPECT_LT(Clock::now() - t0, 5s);
  const rn::RemoteReply unknown = rn::request(calling, "stock.nowhere", "k", "x", in(5s));
  EXPECT_EQ(unknown.status, ringflow::RequestStatus::no_subscriber);
  const rn::RemoteReply nobody =
      rn::request(calling, "stock.reserve", "k", "x", in(5s), "no-such-prefix");
  EXPECT_EQ(nobody.status, ringflow::RequestStatus::no_subscriber) << nobody.detail;
  EXPECT_EQ(rn::request(calling, "stock.reserve", "k", "x", in(-1ms)).status,
            ringflow::RequestStatus::expired);

  responder.stop();
  const auto st = responder.stats();
  EXPECT_EQ(st.received, st.answered) << "every request taken got an answer";
  EXPECT_EQ(st.replied, 50U);
  engine.stop();
}

}  // namespace

namespace {

// ---- a 3-node cluster (R3)

/// Three `nats-server -js` clustered on free loopback ports (client and route port each), one
/// store directory each under a temporary directory; every child SIGKILLed and reaped on
/// destruction.
class Cluster {
 public:
  static constexpr int kNodes = 3;

  explicit Cluster(const std::string& binary) {
    char tmpl[] = "/tmp/ringflow-nats-r3-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    for (int i = 0; i < kNodes; ++i) {
      client_[i] = free_port();
      route_[i] = free_port();
    }
    std::string routes;
    for (int i = 0; i < kNodes; ++i) {
      routes += (i == 0 ? "" : ", ") + std::string("\"nats-route://127.0.0.1:") +
                std::to_string(route_[i]) + "\"";
    }
    for (int i = 0; i < kNodes; ++i) {
      const std::string conf = dir_ + "/" + name(i) + ".conf";
      if (FILE* f = std::fopen(conf.c_str(), "w"); f != nullptr) {
        std::fprintf(f,
                     "server_name: %s\nlisten: 127.0.0.1:%d\n"
                     "jetstream { store_dir: \"%s/%s\" }\n"
                     "cluster { name: ringflow-test\n  listen: 127.0.0.1:%d\n  routes: [%s]\n}\n",
                     name(i).c_str(), client_[i], dir_.c_str(), name(i).c_str(), route_[i],
                     routes.c_str());
        std::fclose(f);
      }
      nodes_[i] = std::make_unique<Child>(binary, std::vector<std::string>{"-c", conf},
                                          dir_ + "/" + name(i) + ".log");
    }
    for (int i = 0; i < kNodes; ++i) {
      if (!wait_until([&] { return port_open(client_[i]) || !nodes_[i]->running(); }, 20s) ||
          !nodes_[i]->running()) {
        throw std::runtime_error("nats-server " + name(i) + " did not start (a port taken?):\n" +
                                 log_tail(i));
      }
    }
  }
  ~Cluster() {
    for (auto& n : nodes_)
      n.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  [[nodiscard]] static std::string name(int i) { return "n" + std::to_string(i); }
  [[nodiscard]] std::vector<std::string> urls() const {
    std::vector<std::string> v;
    for (const int p : client_)
      v.push_back("nats://127.0.0.1:" + std::to_string(p));
    return v;
  }
  /// SIGKILL: no shutdown, no flush of its store.
  void kill(int i) { nodes_[i].reset(); }
  [[nodiscard]] std::string log_tail(int i) const {
    std::string t;
    if (FILE* f = std::fopen((dir_ + "/" + name(i) + ".log").c_str(), "r"); f != nullptr) {
      char buf[4096];
      std::size_t n = 0;
      while ((n = std::fread(buf, 1, sizeof buf, f)) > 0)
        t.append(buf, n);
      std::fclose(f);
    }
    return t.size() > 2000 ? t.substr(t.size() - 2000) : t;
  }

 private:
  std::string dir_;
  int client_[kNodes]{};
  int route_[kNodes]{};
  std::unique_ptr<Child> nodes_[kNodes];
};

/// The stream's leader (server_name), or "" while it has none.
std::string stream_leader(rn::Connection& conn, const std::string& stream) {
  jsStreamInfo* si = nullptr;
  jsErrCode jerr{};
  if (js_GetStreamInfo(&si, static_cast<jsCtx*>(conn.native_jetstream()), stream.c_str(), nullptr,
                       &jerr) != NATS_OK) {
    return {};
  }
  std::string leader;
  if (si->Cluster != nullptr && si->Cluster->Leader != nullptr) leader = si->Cluster->Leader;
  jsStreamInfo_Destroy(si);
  return leader;
}

/// Publishes event `i` (key k<i % keys>, payload "<i>", Nats-Msg-Id "in-<i>") until the stream
/// acknowledges it or `deadline` passes; a timed-out or refused publish is sent again with the
/// same id, so the server keeps one copy. Returns whether it was acknowledged.
bool publish_acked(jsCtx* js, const std::string& prefix, std::uint32_t partitions,
                   std::uint32_t keys, std::uint64_t i, Clock::time_point deadline) {
  const std::string subject =
      rn::subject_for(prefix, key_of(static_cast<std::uint32_t>(i % keys)), partitions);
  const std::string payload = std::to_string(i);
  const std::string id = "in-" + payload;
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MsgId = id.c_str();
  po.MaxWait = 2000;
  while (Clock::now() < deadline) {
    jsPubAck* pa = nullptr;
    jsErrCode jerr{};
    const natsStatus s = js_Publish(&pa, js, subject.c_str(), payload.data(),
                                    static_cast<int>(payload.size()), &po, &jerr);
    if (pa != nullptr) jsPubAck_Destroy(pa);
    if (s == NATS_OK) return true;
    // No leader for a moment (election), or no server: wait a little, bounded by the deadline.
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

/// One ringflow instance of the partitioned service, in this process: its own connection to
/// every server of the cluster, engine, JetStream source (static partitions) and sink.
struct R3Instance {
  std::unique_ptr<rn::Connection> conn;
  std::unique_ptr<ringflow::Engine> engine;
  std::unique_ptr<rn::Sink> sink;
  std::unique_ptr<rn::Source> source;
  std::atomic<std::uint64_t> processed{0};
  std::atomic<std::uint64_t> held{0};        // handlers waiting at the gate
  std::atomic<std::uint64_t> after_kill{0};  // events published after the kill, processed here

  /// Events with index >= gate_at wait in the handler (bounded) until `open`: so the kill lands
  /// while both instances hold fetched, unacknowledged messages.
  R3Instance(const std::vector<std::string>& servers, std::vector<std::uint32_t> owned,
             std::uint32_t parts, std::vector<std::atomic<std::uint32_t>>& seen,
             std::uint64_t gate_at, const std::atomic<bool>& open,
             const std::atomic<std::uint64_t>& kill_boundary) {
    rn::ConnectionOptions co;
    co.servers = servers;
    co.reconnect_wait = 20ms;
    co.reconnect_wait_max = 200ms;
    conn = std::make_unique<rn::Connection>(co);
    engine = std::make_unique<ringflow::Engine>(engine_config());
    engine->add_topic("in");
    sink = std::make_unique<rn::Sink>(
        *conn,
        rn::SinkOptions{.subject_prefix = "out", .partitions = parts, .msg_id_prefix = "out"});
    rn::SourceOptions so{.stream = "IN",
                         .subject_prefix = "in",
                         .partitions = parts,
                         .owned = std::move(owned),
                         .topic = "in",
                         .ack_wait = 3000ms};
    so.before_ack = [s = sink.get()] { return s->flush(1s); };
    source = std::make_unique<rn::Source>(*conn, *engine, so);
    source->subscribe("in",
                      [this, &seen, gate_at, &open, &kill_boundary](const ringflow::EventView& e) {
                        const std::uint64_t i = std::stoull(std::string(e.payload_string()));
                        if (i >= gate_at && !open.load()) {
                          held.fetch_add(1);
                          // Bounded: the test opens the gate right after the kill (or fails
                          // before).
                          (void)wait_until([&] { return open.load(); }, 60s);
                          held.fetch_sub(1);
                        }
                        if (i < seen.size()) seen[i].fetch_add(1, std::memory_order_relaxed);
                        processed.fetch_add(1, std::memory_order_relaxed);
                        if (i >= kill_boundary.load(std::memory_order_relaxed)) {
                          after_kill.fetch_add(1, std::memory_order_relaxed);
                        }
                        return sink->publish(e);
                      });
    engine->start();
    source->start();
  }
  ~R3Instance() {
    if (source) source->stop();
    if (engine) engine->stop();
  }
};

// R3 on a 3-node cluster: two instances consume an R3 stream; the stream's leader is SIGKILLed
// mid-stream. Every event the stream acknowledged to the publisher (before, during and after
// the failover) is processed, both instances go on processing after the failover, and every
// stored input has exactly one output (redeliveries absorbed by the source's memory and the
// output's Nats-Msg-Id).
TEST(NatsCluster, R3SurvivesAServerKilledMidStream) {
  REQUIRE_NATS_SERVER();
  constexpr std::uint64_t kN = 8'000;
  constexpr std::uint64_t kBeforeKill = kN * 6 / 10;
  constexpr std::uint64_t kGateAt = kN / 4;
  constexpr std::uint32_t kKeys = 200;
  constexpr std::uint32_t kParts = 4;
  constexpr int kPublishers = 4;  // thread t publishes keys k with k % 4 == t
  Cluster cluster(*nats_server_bin);
  rn::ConnectionOptions co;
  co.servers = cluster.urls();
  co.reconnect_wait = 20ms;
  co.reconnect_wait_max = 200ms;
  rn::Connection admin(co);

  // The cluster has formed once the JetStream meta leader accepts an R3 stream.
  std::string last_error;
  const auto created = [&] {
    try {
      rn::ensure_stream(admin, {.name = "IN", .subject_prefix = "in", .replicas = 3});
      rn::ensure_stream(admin, {.name = "OUT", .subject_prefix = "out", .replicas = 3});
      return !stream_leader(admin, "IN").empty() && !stream_leader(admin, "OUT").empty();
    } catch (const rn::NatsError& e) {
      last_error = e.what();
      return false;
    }
  };
  ASSERT_TRUE(wait_until(created, 60s))
      << "no R3 streams within 60 s (cluster not formed?): " << last_error << "\n"
      << cluster.log_tail(0);

  std::vector<std::atomic<std::uint32_t>> seen(kN);
  std::atomic<std::uint64_t> kill_boundary{UINT64_MAX};
  std::atomic<bool> open{false};
  // Reversed server lists: the two instances start on different servers.
  std::vector<std::string> reversed = cluster.urls();
  std::reverse(reversed.begin(), reversed.end());
  R3Instance a(cluster.urls(), {0, 1}, kParts, seen, kGateAt, open, kill_boundary);
  R3Instance b(reversed, {2, 3}, kParts, seen, kGateAt, open, kill_boundary);
  // However the test ends, the handlers are let go before the instances stop.
  struct Opener {
    std::atomic<bool>& open;
    ~Opener() { open.store(true); }
  } opener{open};

  // Publishers: events [from, to), each until acknowledged (bounded).
  rn::Connection pub_conn(co);
  std::vector<std::atomic<bool>> acked(kN);
  const auto publish_range = [&](std::uint64_t from, std::uint64_t to) {
    const auto deadline = Clock::now() + 90s;
    std::vector<std::thread> threads;
    for (int t = 0; t < kPublishers; ++t) {
      threads.emplace_back([&, t] {
        auto* js = static_cast<jsCtx*>(pub_conn.native_jetstream());
        for (std::uint64_t i = from; i < to; ++i) {
          if (i % kKeys % kPublishers != static_cast<std::uint64_t>(t)) continue;
          if (!publish_acked(js, "in", kParts, kKeys, i, deadline)) return;
          acked[i].store(true, std::memory_order_relaxed);
        }
      });
    }
    for (auto& th : threads)
      th.join();
  };
  const auto count_acked = [&] {
    std::uint64_t n = 0;
    for (const auto& x : acked)
      n += x.load(std::memory_order_relaxed) ? 1 : 0;
    return n;
  };
  publish_range(0, kBeforeKill);
  ASSERT_EQ(count_acked(), kBeforeKill) << "the healthy cluster did not acknowledge every event";

  // Mid-stream: both instances hold fetched, unacknowledged messages at the gate.
  ASSERT_TRUE(wait_until([&] { return a.held.load() > 0 && b.held.load() > 0; }, 60s))
      << "instances did not reach the gate: a " << a.processed.load() << ", b "
      << b.processed.load() << " processed";
  const std::string leader = stream_leader(admin, "IN");
  int victim = -1;
  for (int i = 0; i < Cluster::kNodes; ++i) {
    if (Cluster::name(i) == leader) victim = i;
  }
  ASSERT_GE(victim, 0) << "no leader of IN: '" << leader << "'";
  kill_boundary.store(kBeforeKill);
  const std::uint64_t processed_at_kill = a.processed.load() + b.processed.load();
  cluster.kill(victim);
  const std::uint64_t a_at_kill = a.processed.load();
  const std::uint64_t b_at_kill = b.processed.load();
  open.store(true);

  // Publishing goes on through the failover: every event is acknowledged eventually.
  publish_range(kBeforeKill, kN);
  ASSERT_EQ(count_acked(), kN) << "the surviving servers did not acknowledge every event within "
                                  "90 s (IN leader: '"
                               << stream_leader(admin, "IN") << "')";

  const auto unseen = [&] {
    std::uint64_t n = 0;
    for (std::uint64_t i = 0; i < kN; ++i)
      n += (acked[i].load() && seen[i].load() == 0) ? 1 : 0;
    return n;
  };
  ASSERT_TRUE(wait_until([&] { return unseen() == 0; }, 90s))
      << unseen() << " acknowledged events never processed; a " << a.processed.load() << ", b "
      << b.processed.load() << ";" << consumers_text(admin, "IN", "ringflow", kParts);
  ASSERT_TRUE(wait_until([&] { return all_acked(admin, "IN", "ringflow", kParts); }, 60s))
      << "inputs left unacked:" << consumers_text(admin, "IN", "ringflow", kParts);
  ASSERT_TRUE(a.sink->flush(20s) && b.sink->flush(20s)) << "outputs not acknowledged";
  const std::uint64_t in_msgs = stream_msgs(admin, "IN");
  ASSERT_TRUE(wait_until([&] { return stream_msgs(admin, "OUT") >= in_msgs; }, 20s))
      << "outputs missing: " << stream_msgs(admin, "OUT") << " of " << in_msgs;

  EXPECT_EQ(in_msgs, kN) << "the stream kept one copy per event (publish retries deduplicated)";
  EXPECT_EQ(stream_msgs(admin, "OUT"), in_msgs) << "one output per stored input, in effect";
  EXPECT_GT(a.processed.load(), a_at_kill) << "instance a stopped at the failover";
  EXPECT_GT(b.processed.load(), b_at_kill) << "instance b stopped at the failover";
  EXPECT_GT(a.after_kill.load(), 0U) << "instance a processed nothing published after the kill";
  EXPECT_GT(b.after_kill.load(), 0U) << "instance b processed nothing published after the kill";
  EXPECT_EQ(a.source->stats().dead_lettered + b.source->stats().dead_lettered, 0U);
  std::uint64_t twice = 0;
  for (const auto& s : seen)
    twice += s.load() > 1 ? 1 : 0;
  const std::uint64_t redelivered = a.source->stats().redelivered + b.source->stats().redelivered;
  std::printf(
      "r3: killed %s (IN leader) after %llu processed; new IN leader %s; %llu redelivered, "
      "%llu handled twice, %llu outputs dropped as duplicates; after the kill a %llu, b %llu\n",
      leader.c_str(), static_cast<unsigned long long>(processed_at_kill),
      stream_leader(admin, "IN").c_str(), static_cast<unsigned long long>(redelivered),
      static_cast<unsigned long long>(twice),
      static_cast<unsigned long long>(a.sink->stats().duplicates + b.sink->stats().duplicates),
      static_cast<unsigned long long>(a.after_kill.load()),
      static_cast<unsigned long long>(b.after_kill.load()));
  RecordProperty("redelivered", std::to_string(redelivered));
}

}  // namespace
