#pragma once
// ringflow::nats: many ringflow instances as one partitioned service, with NATS JetStream
// (nats-server 2.9, libnats 3.4) carrying the events between them. Uses the engine's public API
// only; link ringflow::nats.
//
// Subjects: `<prefix>.<partition>.<key>`, partition = ringflow::partition_of(key, partitions)
// (key_hash.hpp), so one key always lands in one partition of the stream and, through the source,
// in one partition of the engine: a key's order holds end to end. A key is one subject token
// (no '.', '*', '>', spaces; 1..255 bytes).
//
//   ringflow::nats::Connection conn({.servers = {"nats://a:4222", "nats://b:4222"}});
//   ringflow::nats::ensure_stream(conn, {.name = "ORDERS", .subject_prefix = "orders"});
//   ringflow::Engine engine(cfg);
//   engine.add_topic("orders");
//   ringflow::nats::Source source(conn, engine, {.stream = "ORDERS", .subject_prefix = "orders",
//                                                .partitions = 8, .owned = {0, 1, 2, 3},
//                                                .topic = "orders"});
//   ringflow::nats::Sink sink(conn, {.subject_prefix = "shipped"});
//   source.subscribe("orders", [&](const ringflow::EventView& e) { return sink.publish(e); });
//   engine.start();
//   source.start();
//   ...
//   source.stop();   // before engine.stop(): finishes (acks) what the engine holds
//
// How handler outcomes become acks (the one correlation to know):
//   - Each fetched message enters the engine with correlation_id = idempotency_key = its stream
//     sequence, and is remembered (by sequence) with the number of gating subscriptions, i.e.
//     those made through Source::subscribe whose pattern matches the source topic.
//   - A gating subscription's Outcome::ok counts one down. A dead letter of the source topic
//     (the engine made it after the subscription's last attempt, or on fail/throw) whose
//     DeadLetterInfo::subscription is a gating one counts one down and marks the message dead.
//   - At zero: ok -> natsMsg_Ack; dead -> a copy is published (JetStream, Nats-Msg-Id
//     "dlq-<sequence>") to `<subject>.dlq` with the reason, then natsMsg_Term.
//   - Retries run in the engine (its timer wheel, the subscription's backoff), not through
//     JetStream redelivery: the engine drops a repeated idempotency key, so a NAK'd message
//     coming back to the same instance would be dropped as a duplicate. JetStream redelivery
//     (after AckWait) is the crash path: a message whose instance died unacked goes to the
//     partition's next owner. MaxDeliver bounds those redeliveries: by default it is the
//     gating subscriptions' retry policy (their largest max_attempts), so a message is not
//     delivered more often than its subscription would attempt it; max_deliver overrides it.
//   - A redelivery of a message still in the engine replaces the handle that will be acked; a
//     redelivery of one already finished (its ack was lost) is answered again (ack or
//     DLQ + term) from a bounded memory of finished sequences, without entering the engine.
//   - NakWithDelay is used for what the engine did not take: a message still unfinished when
//     the source stops or releases its partition is NAK'd so the next owner gets it at once.
//   - The sourced topic must be fed by the source only, and its events must reach the gating
//     subscriptions (no filter or route that takes them away): otherwise they stay unacked.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "ringflow/engine.hpp"

namespace ringflow::nats {

/// A NATS or JetStream call failed; what() names the call, the status and the server's text.
class NatsError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// What the connector tells the embedding service (from NATS library threads or its own: the
/// callback must be thread-safe and quick).
struct Status {
  enum class Kind : std::uint8_t {
    disconnected,   ///< lost the server; reconnecting (forever, with backoff)
    reconnected,    ///< connected again (detail: the server URL)
    closed,         ///< connection closed for good (only when the Connection is destroyed)
    async_error,    ///< the NATS library reported an asynchronous error (slow consumer, ...)
    fetch_error,    ///< a pull fetch failed other than by timing out (retried)
    ack_error,      ///< an ack/nak/term could not be sent (the message will be redelivered)
    publish_error,  ///< a sink publish was refused or timed out after being queued
    dead_letter,    ///< a sourced message became a dead letter (detail: subject and reason)
    dlq_error,      ///< a dead letter could not be published (the message stays unacked)
  };
  Kind kind;
  std::string detail;
};
using StatusCallback = std::function<void(const Status&)>;
[[nodiscard]] std::string_view to_string(Status::Kind k) noexcept;

struct ConnectionOptions {
  /// Every server of the cluster ("nats://host:port"); the client picks one and fails over.
  std::vector<std::string> servers{"nats://127.0.0.1:4222"};
  std::string name = "ringflow";
  /// Reconnect forever: the n-th attempt after a loss waits reconnect_wait * 2^(n-1), at most
  /// reconnect_wait_max (a pass over the whole server list counts as one attempt).
  std::chrono::milliseconds reconnect_wait{50};
  std::chrono::milliseconds reconnect_wait_max{2000};
  /// Initial connect: each server is tried once within this; failing them all throws.
  std::chrono::milliseconds connect_timeout{2000};
  /// JetStream API requests (stream/consumer management, synchronous publishes).
  std::chrono::milliseconds request_timeout{5000};
  /// Write each publish (and ack) to the socket at once instead of leaving it to libnats'
  /// flusher thread. Measured here (results/nats): a relay's p50 falls from ~2.4 ms to ~0.4 ms,
  /// and throughput does not drop. Off: fewer system calls when many small publishes queue up.
  bool send_asap = true;
  StatusCallback on_status{};
};

/// One NATS connection and its default JetStream context. Thread-safe (libnats is).
class Connection {
 public:
  /// Connects; throws NatsError when no server answers within connect_timeout. Once connected it
  /// never gives up: losses are reported through on_status and reconnected with backoff.
  explicit Connection(ConnectionOptions options);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  [[nodiscard]] const ConnectionOptions& options() const noexcept;
  /// libnats handles (natsConnection*, jsCtx*), for calls the connector does not wrap.
  [[nodiscard]] void* native_connection() const noexcept;
  [[nodiscard]] void* native_jetstream() const noexcept;
  /// Sends everything buffered and waits for the server's answer (false: timed out).
  bool flush(std::chrono::milliseconds timeout);
  void report(Status::Kind kind, std::string detail) const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

/// Whether `key` can be a subject token (1..255 bytes, no '.', '*', '>', whitespace or control).
[[nodiscard]] bool valid_key(std::string_view key) noexcept;
/// `<prefix>.<partition_of(key, partitions)>.<key>`; throws std::invalid_argument for a bad key.
[[nodiscard]] std::string subject_for(std::string_view prefix, std::string_view key,
                                      std::uint32_t partitions);

struct StreamOptions {
  std::string name = "RINGFLOW";
  std::string subject_prefix = "events";  ///< the stream holds `<prefix>.>`
  int replicas = 1;                       ///< 3 on a 3-node cluster (see the README)
  bool file_storage = true;
  /// Window in which a repeated Nats-Msg-Id is dropped by the server.
  std::chrono::seconds duplicate_window{120};
};
/// Creates the stream if it does not exist (an existing one is left as it is).
void ensure_stream(Connection& conn, const StreamOptions& options);

struct SourceOptions {
  std::string stream = "RINGFLOW";
  std::string subject_prefix = "events";
  std::uint32_t partitions = 8;        ///< of the subject layout (may differ from the engine's)
  std::vector<std::uint32_t> owned{};  ///< partitions consumed from start() (static ownership)
  std::string durable_prefix = "ringflow";  ///< partition p's durable consumer: <prefix>_<p>
  std::string topic;                        ///< engine topic the messages are published to
  /// The durable consumers' MaxDeliver: JetStream deliveries per message, counting every one
  /// (the first, redeliveries after a crash or an expired ack_wait, NAKs on release). 0 (the
  /// default): the gating subscriptions' retry policy, i.e. the largest max_attempts among them
  /// (SubscribeOptions, 3 unless set); > 0: exactly this many.
  std::uint32_t max_deliver = 0;
  int max_ack_pending = 1024;  ///< unacked messages per partition (bounds memory too)
  std::chrono::milliseconds ack_wait{30000};  ///< unacked this long: redelivered
  /// Messages a no-wait fetch asks for (at most max_ack_pending: the server refuses more).
  int fetch_batch = 256;
  std::chrono::milliseconds fetch_expiry{1000};  ///< a pull request lives this long at most
  /// Idle heartbeat the server sends during a pull request (0: none); must be < fetch_expiry/2.
  std::chrono::milliseconds fetch_heartbeat{250};
  /// Finished sequences remembered to answer redeliveries (>= the engine's idempotency window
  /// per partition times the owned partitions is what keeps every redelivery answered).
  std::size_t remembered = 1 << 16;
  /// stop()/release(): how long to wait for the engine to finish fetched messages.
  std::chrono::milliseconds stop_timeout{10000};
  /// Called before each batch of acks (e.g. Sink::flush): acks wait until it returns true, so
  /// outputs queued by handlers are stored before their inputs are acked.
  std::function<bool()> before_ack{};
};

struct SourceStats {
  std::uint64_t fetched = 0;         ///< messages received
  std::uint64_t redelivered = 0;     ///< of those, with NumDelivered > 1
  std::uint64_t published = 0;       ///< handed to the engine
  std::uint64_t answered_again = 0;  ///< redeliveries of finished messages, answered from memory
  std::uint64_t acked = 0;
  std::uint64_t dead_lettered = 0;  ///< published to <subject>.dlq and terminated
  std::uint64_t naked = 0;          ///< given back on stop/release
  std::uint64_t fetch_errors = 0;
  std::uint64_t in_flight = 0;  ///< fetched, not yet finished
};

/// The JetStream source: one durable pull consumer per owned partition, feeding one engine
/// topic. Construct and subscribe() before engine.start(); start() after it.
class Source {
 public:
  /// Registers the dead-letter watcher on `options.topic`'s dead-letter topic (so `engine` must
  /// not be started yet and the topic must exist). Throws std::invalid_argument for bad options.
  Source(Connection& conn, Engine& engine, SourceOptions options);
  ~Source();  ///< stop()
  Source(const Source&) = delete;
  Source& operator=(const Source&) = delete;

  /// A gating subscription: engine.subscribe() whose ok (or final failure) decides the ack.
  std::uint32_t subscribe(std::string_view pattern, Handler handler,
                          const SubscribeOptions& options = {});
  template <class F>
  requires std::is_void_v<std::invoke_result_t<F&, const EventView&>> std::uint32_t subscribe(
      std::string_view pattern, F f, const SubscribeOptions& options = {}) {
    return subscribe(pattern, Handler([g = std::move(f)](const EventView& e) mutable {
                       g(e);
                       return Outcome::ok();
                     }),
                     options);
  }

  /// Creates (or updates) the owned partitions' consumers and starts fetching. The engine must
  /// be running. Throws NatsError / std::logic_error (no gating subscription matches the topic).
  void start();
  /// Takes partition p over (creates/binds its consumer, starts fetching). Idempotent.
  void own(std::uint32_t partition);
  /// Stops fetching p, waits (stop_timeout) for its messages to finish, NAKs the rest.
  void release(std::uint32_t partition);
  [[nodiscard]] std::vector<std::uint32_t> owned() const;
  /// Releases every partition; then acks are flushed. Idempotent.
  void stop();

  [[nodiscard]] SourceStats stats() const;
  [[nodiscard]] std::uint32_t partitions() const noexcept;
  /// The consumers' MaxDeliver: max_deliver, or (0) the gating subscriptions' largest
  /// max_attempts. Fixed by start().
  [[nodiscard]] std::uint32_t max_deliver() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;  // shared with the handlers registered in the engine
};

struct LeaseOptions {
  std::string bucket = "ringflow_leases";  ///< JetStream KV bucket (created if absent)
  std::string instance;  ///< this instance's unique id: a subject token (required)
  /// The bucket's TTL (per bucket in 2.9): a lease or membership not renewed for this long is
  /// gone. Leases are renewed at ~75 % of it; membership is refreshed every tick (ttl / 10).
  std::chrono::milliseconds ttl{6000};
  int replicas = 1;
};

struct LeaseStats {
  std::uint64_t acquired = 0;  ///< leases created (partition taken)
  std::uint64_t renewed = 0;
  std::uint64_t released = 0;  ///< given up for a rebalance or stop
  std::uint64_t lost = 0;      ///< renewal refused (someone else holds it) or too late
  std::uint32_t members = 0;   ///< instances seen at the last tick
};

/// Dynamic ownership of a Source's partitions through leases in a JetStream KV bucket.
///
/// Every tick (ttl / 10) an instance refreshes `member.<instance>` and reads the members; the
/// desired owner of partition p is members_sorted[p % members]. It creates the lease
/// `p.<p>` of each partition it should own (create-if-absent: only one instance can), then
/// owns it; renews each lease by revision (update with the last revision) at ~75 % of the TTL;
/// a refused renewal means someone else holds it: the partition is released at once (fencing by
/// revision). A lease not renewed by 90 % of the TTL (e.g. cut off from NATS) is dropped locally
/// before the server can give it away. On a rebalance (a member joined) the current owner
/// releases the partition first (finishing what the engine holds), then deletes the lease, so
/// two instances never hold one partition at once. A dead instance's partitions move to the
/// survivors within ttl + one tick (its unacked messages come back after the source's
/// ack_wait). Keep the source's stop_timeout well below ttl / 10.
class Leases {
 public:
  /// Creates or binds the bucket. The source must be started (with no static `owned`).
  Leases(Connection& conn, Source& source, LeaseOptions options);
  ~Leases();  ///< stop()
  Leases(const Leases&) = delete;
  Leases& operator=(const Leases&) = delete;

  void start();
  /// Releases every held partition and deletes its lease (the others take them at once).
  void stop();
  [[nodiscard]] std::vector<std::uint32_t> held() const;
  [[nodiscard]] LeaseStats stats() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

struct SinkOptions {
  /// Default subject: `<subject_prefix>.<partition_of(key, partitions)>.<key>`, and
  /// `<...>.dlq` for events of a dead-letter topic. `subject` overrides it.
  std::string subject_prefix = "processed";
  std::uint32_t partitions = 8;
  std::function<std::string(const EventView&)> subject{};
  /// Non-empty: Nats-Msg-Id = `<msg_id_prefix>-<correlation_id>` (`-dlq` added for dead
  /// letters). Events from a Source carry their input's stream sequence, so a reprocessed input
  /// publishes the same id and the server drops the copy (within the stream's duplicate
  /// window). Set it only for such events: the engine's own correlation ids (event ids) start
  /// again after a restart, and the server would drop new events as duplicates. Empty: no id.
  std::string msg_id_prefix{};
  /// Async publishes in flight at most (libnats' default is unbounded).
  std::int64_t max_pending = 4096;
  /// How long publish() may wait for room in the window before answering Outcome::retry.
  std::chrono::milliseconds stall_wait{1};
  std::chrono::nanoseconds retry_delay = std::chrono::milliseconds(1);
  /// A queued publish the server has not answered within this long (it died or stopped holding
  /// it, or the request was lost on a disconnect) leaves the window: it is reported
  /// (publish_error), counted (SinkStats::timed_out) and kept like a refused one, so flush()
  /// queues it again (same Nats-Msg-Id) and keeps answering false until it is stored. Without
  /// it such a publish would hold its window slot, and flush() (the source's acks), forever.
  std::chrono::milliseconds publish_timeout{5000};
};

struct SinkStats {
  std::uint64_t published = 0;      ///< queued
  std::uint64_t stored = 0;         ///< acknowledged by the server
  std::uint64_t duplicates = 0;     ///< acknowledged as duplicates (dropped by Nats-Msg-Id)
  std::uint64_t back_pressure = 0;  ///< publish() answered retry
  std::uint64_t failed = 0;         ///< refused after being queued (reported; kept for flush)
  std::uint64_t timed_out = 0;      ///< no answer within publish_timeout (reported; kept too)
  std::uint64_t republished = 0;    ///< refused or timed-out ones queued again by flush()
};

/// Publishes events to JetStream, asynchronously with a bounded window. Thread-safe.
class Sink {
 public:
  Sink(Connection& conn, SinkOptions options);
  /// Waits up to 5 s for publishes in flight to be stored (flush()); if some are still
  /// unanswered then, up to publish_timeout + 1 s more until each has ended (stored or timed
  /// out), so that no ack handler runs after the sink is gone. Publishes not stored by then are
  /// dropped (they were reported as publish_error; their inputs were never acked by a source
  /// whose before_ack is this sink's flush()).
  ~Sink();
  Sink(const Sink&) = delete;
  Sink& operator=(const Sink&) = delete;

  /// Queues `e` (key, payload; dead letters with their reason in headers). Outcome::retry when
  /// the window stays full for stall_wait or the connection refuses: NATS back-pressure.
  Outcome publish(const EventView& e);
  [[nodiscard]] Handler handler() {
    return [this](const EventView& e) { return publish(e); };
  }
  /// Waits until every queued publish is stored (false: timed out). A publish the server refused
  /// after it was queued (e.g. its stream has no leader for a moment), or did not answer within
  /// publish_timeout, is queued again, with the same Nats-Msg-Id, until it is stored or the
  /// timeout passes; as `before_ack` this keeps an input unacked until its outputs are stored.
  bool flush(std::chrono::milliseconds timeout);
  [[nodiscard]] SinkStats stats() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// ---- Request/reply across instances (NATS core request/reply)

struct ResponderOptions {
  /// Requests for topic T arrive on "<subject_prefix>.<T>"; instances serving the same topics
  /// share them through the queue group (one instance answers each request).
  std::string subject_prefix = "rpc";
  std::string queue_group = "ringflow";
  /// Requests this responder may have pending in its engine at once (its producer's
  /// max_pending_requests); beyond it a request is answered too_many_pending at once.
  std::uint32_t max_pending = 1024;
};

struct ResponderStats {
  std::uint64_t received = 0;  ///< requests taken from NATS
  std::uint64_t answered = 0;  ///< responses sent (every received request gets one)
  std::uint64_t replied = 0;   ///< ... of which carried a handler's reply
};

/// Serves this engine's request/reply (Producer::request -> handler -> Engine::reply) to other
/// instances: a NATS request on "<prefix>.<topic>" (key and remaining time in headers, see
/// request() below) becomes a Producer::request() on the topic; how it ends goes back to the
/// NATS reply subject, with the same RequestStatus as in process (header Ringflow-Status). An
/// unknown topic is answered no_subscriber. Construct after the engine's topics exist; start()
/// once the engine runs; stop() (or the destructor) before engine.stop().
class Responder {
 public:
  Responder(Connection& conn, Engine& engine, ResponderOptions options = {});
  ~Responder();
  Responder(const Responder&) = delete;
  Responder& operator=(const Responder&) = delete;
  void start();
  /// Stops taking requests; those pending in the engine are answered first (at the latest at
  /// their deadlines).
  void stop();
  [[nodiscard]] ResponderStats stats() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

/// How a remote request ended: the same statuses as in process, plus the reply's bytes.
struct RemoteReply {
  RequestStatus status = RequestStatus::expired;
  std::string payload;  ///< the reply when status == replied
  std::string detail;   ///< e.g. the dead-letter reason, or what NATS said
};

/// Calls topic `topic`'s request/reply on whichever instance serves it (a Responder with the
/// same subject_prefix), blocking until it ends or `deadline_ns` (ringflow::now_ns() clock;
/// the remaining time travels, not the clock reading). Statuses: as in process; no instance
/// listening is no_subscriber; no answer by the deadline is expired; a refused send is
/// not_accepted. Never throws for the request's own outcome; thread-safe.
RemoteReply request(Connection& conn, std::string_view topic, std::string_view key,
                    std::span<const std::byte> payload, std::int64_t deadline_ns,
                    std::string_view subject_prefix = "rpc");
inline RemoteReply request(Connection& conn, std::string_view topic, std::string_view key,
                           std::string_view payload, std::int64_t deadline_ns,
                           std::string_view subject_prefix = "rpc") {
  return request(conn, topic, key,
                 std::span<const std::byte>(reinterpret_cast<const std::byte*>(payload.data()),
                                            payload.size()),
                 deadline_ns, subject_prefix);
}

}  // namespace ringflow::nats
