// Connection (reconnect forever with backoff, status callback), subjects and streams.
#include <algorithm>
#include <array>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "nats_common.hpp"
#include "ringflow/key_hash.hpp"

namespace ringflow::nats {

namespace detail {

std::string error_text(std::string_view call, natsStatus s, jsErrCode jerr) {
  std::string t(call);
  t += ": ";
  t += natsStatus_GetText(s);
  if (jerr != 0) t += " (JetStream error " + std::to_string(static_cast<int>(jerr)) + ")";
  natsStatus last = NATS_OK;
  const char* text = nats_GetLastError(&last);
  if (text != nullptr && *text != '\0') {
    t += ": ";
    t += text;
  }
  return t;
}

void fail(std::string_view call, natsStatus s, jsErrCode jerr) {
  throw NatsError(error_text(call, s, jerr));
}

}  // namespace detail

using detail::fail;

std::string_view to_string(Status::Kind k) noexcept {
  switch (k) {
    case Status::Kind::disconnected:
      return "disconnected";
    case Status::Kind::reconnected:
      return "reconnected";
    case Status::Kind::closed:
      return "closed";
    case Status::Kind::async_error:
      return "async_error";
    case Status::Kind::fetch_error:
      return "fetch_error";
    case Status::Kind::ack_error:
      return "ack_error";
    case Status::Kind::publish_error:
      return "publish_error";
    case Status::Kind::dead_letter:
      return "dead_letter";
    case Status::Kind::dlq_error:
      return "dlq_error";
  }
  return "unknown";
}

struct Connection::Impl {
  ConnectionOptions o;
  natsOptions* opts = nullptr;
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  // libnats calls the connection callbacks on its own thread, also after natsConnection_Close()
  // returns; the closed callback comes last. The destructor waits for it, so no callback ever
  // runs on a destroyed Impl.
  std::mutex close_mu;
  std::condition_variable close_cv;
  bool closed = false;

  void report(Status::Kind k, std::string detail) const {
    if (o.on_status) o.on_status(Status{k, std::move(detail)});
  }

  static void on_disconnected(natsConnection* /*nc*/, void* self) {
    static_cast<Impl*>(self)->report(Status::Kind::disconnected, {});
  }
  static void on_reconnected(natsConnection* nc, void* self) {
    std::array<char, 256> url{};
    (void)natsConnection_GetConnectedUrl(nc, url.data(), url.size());
    static_cast<Impl*>(self)->report(Status::Kind::reconnected, url.data());
  }
  static void on_closed(natsConnection* /*nc*/, void* self) {
    auto* me = static_cast<Impl*>(self);
    me->report(Status::Kind::closed, {});
    {
      std::lock_guard lock(me->close_mu);
      me->closed = true;
    }
    me->close_cv.notify_all();
  }
  static void on_error(natsConnection* /*nc*/, natsSubscription* /*sub*/, natsStatus err,
                       void* self) {
    static_cast<Impl*>(self)->report(Status::Kind::async_error, natsStatus_GetText(err));
  }
  // Exponential backoff: attempt n waits reconnect_wait * 2^(n-1), capped.
  static int64_t reconnect_delay(natsConnection* /*nc*/, int attempts, void* self) {
    const Impl& i = *static_cast<Impl*>(self);
    const std::int64_t base = i.o.reconnect_wait.count();
    const std::int64_t cap = i.o.reconnect_wait_max.count();
    const int shift = std::clamp(attempts - 1, 0, 20);
    return std::min(cap, base << shift);
  }

  ~Impl() {
    if (js != nullptr) jsCtx_Destroy(js);
    if (nc != nullptr) {
      natsConnection_Close(nc);
      {
        std::unique_lock lock(close_mu);
        (void)close_cv.wait_for(lock, std::chrono::seconds(10), [this] { return closed; });
      }
      natsConnection_Destroy(nc);
    }
    if (opts != nullptr) natsOptions_Destroy(opts);
  }
};

Connection::Connection(ConnectionOptions options) : impl_(std::make_unique<Impl>()) {
  Impl& i = *impl_;
  i.o = std::move(options);
  if (i.o.servers.empty()) throw std::invalid_argument("ringflow::nats: no server URL given");
  if (i.o.reconnect_wait.count() <= 0 || i.o.reconnect_wait_max < i.o.reconnect_wait) {
    throw std::invalid_argument(
        "ringflow::nats: reconnect_wait must be > 0 and <= reconnect_wait_max");
  }
  natsStatus s = natsOptions_Create(&i.opts);
  if (s != NATS_OK) fail("natsOptions_Create", s);
  std::vector<const char*> urls;
  urls.reserve(i.o.servers.size());
  for (const std::string& u : i.o.servers)
    urls.push_back(u.c_str());
  s = natsOptions_SetServers(i.opts, urls.data(), static_cast<int>(urls.size()));
  if (s == NATS_OK) s = natsOptions_SetName(i.opts, i.o.name.c_str());
  if (s == NATS_OK) s = natsOptions_SetTimeout(i.opts, i.o.connect_timeout.count());
  if (s == NATS_OK) s = natsOptions_SetMaxReconnect(i.opts, -1);  // forever
  if (s == NATS_OK) s = natsOptions_SetSendAsap(i.opts, i.o.send_asap);
  if (s == NATS_OK) s = natsOptions_SetCustomReconnectDelay(i.opts, &Impl::reconnect_delay, &i);
  // A dead server is noticed within ~3 pings even when TCP does not say so.
  if (s == NATS_OK) s = natsOptions_SetPingInterval(i.opts, 1000);
  if (s == NATS_OK) s = natsOptions_SetMaxPingsOut(i.opts, 3);
  if (s == NATS_OK) s = natsOptions_SetDisconnectedCB(i.opts, &Impl::on_disconnected, &i);
  if (s == NATS_OK) s = natsOptions_SetReconnectedCB(i.opts, &Impl::on_reconnected, &i);
  if (s == NATS_OK) s = natsOptions_SetClosedCB(i.opts, &Impl::on_closed, &i);
  if (s == NATS_OK) s = natsOptions_SetErrorHandler(i.opts, &Impl::on_error, &i);
  if (s != NATS_OK) fail("natsOptions", s);
  s = natsConnection_Connect(&i.nc, i.opts);
  if (s != NATS_OK) fail("natsConnection_Connect", s);
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = i.o.request_timeout.count();
  s = natsConnection_JetStream(&i.js, i.nc, &jo);
  if (s != NATS_OK) fail("natsConnection_JetStream", s);
}

Connection::~Connection() = default;

const ConnectionOptions& Connection::options() const noexcept {
  return impl_->o;
}
void* Connection::native_connection() const noexcept {
  return impl_->nc;
}
void* Connection::native_jetstream() const noexcept {
  return impl_->js;
}
bool Connection::flush(std::chrono::milliseconds timeout) {
  return natsConnection_FlushTimeout(impl_->nc, timeout.count()) == NATS_OK;
}
void Connection::report(Status::Kind kind, std::string detail) const {
  impl_->report(kind, std::move(detail));
}

bool valid_key(std::string_view key) noexcept {
  if (key.empty() || key.size() > 255) return false;
  return std::none_of(key.begin(), key.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return c == '.' || c == '*' || c == '>' || u <= 0x20 || u == 0x7f;
  });
}

std::string subject_for(std::string_view prefix, std::string_view key, std::uint32_t partitions) {
  if (partitions == 0) throw std::invalid_argument("ringflow::nats: partitions must be > 0");
  if (!valid_key(key)) {
    throw std::invalid_argument("ringflow::nats: key '" + std::string(key) +
                                "' is not a subject token (1..255 bytes, no '.', '*', '>' or "
                                "whitespace)");
  }
  std::string s(prefix);
  s += '.';
  s += std::to_string(partition_of(key, partitions));
  s += '.';
  s += key;
  return s;
}

void ensure_stream(Connection& conn, const StreamOptions& options) {
  jsCtx* js = detail::js_of(conn);
  jsStreamInfo* si = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_GetStreamInfo(&si, js, options.name.c_str(), nullptr, &jerr);
  if (s == NATS_OK) {
    jsStreamInfo_Destroy(si);
    return;
  }
  if (s != NATS_NOT_FOUND && jerr != JSStreamNotFoundErr) fail("js_GetStreamInfo", s, jerr);
  const std::string subjects = options.subject_prefix + ".>";
  const char* subj = subjects.c_str();
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  cfg.Name = options.name.c_str();
  cfg.Subjects = &subj;
  cfg.SubjectsLen = 1;
  cfg.Storage = options.file_storage ? js_FileStorage : js_MemoryStorage;
  cfg.Replicas = options.replicas;
  cfg.Duplicates = std::chrono::nanoseconds(options.duplicate_window).count();
  jerr = static_cast<jsErrCode>(0);
  s = js_AddStream(&si, js, &cfg, nullptr, &jerr);
  if (s != NATS_OK && jerr != JSStreamNameExistErr) fail("js_AddStream " + options.name, s, jerr);
  if (si != nullptr) jsStreamInfo_Destroy(si);
}

}  // namespace ringflow::nats
