// Leases: dynamic partition ownership through a JetStream KV bucket (see nats.hpp).
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "nats_common.hpp"

namespace ringflow::nats {

namespace {

using Clock = std::chrono::steady_clock;

struct Held {
  std::uint64_t revision = 0;
  Clock::time_point written;  // taken before the write was sent: conservative
};

}  // namespace

struct Leases::Impl {
  Connection& conn;
  Source& source;
  LeaseOptions o;
  kvStore* kv = nullptr;
  std::uint32_t partitions = 0;

  mutable std::mutex mu;  // held, stats; the lease thread is the only writer of held
  std::map<std::uint32_t, Held> held;
  LeaseStats st;

  std::mutex run_mu;
  std::condition_variable run_cv;
  bool run = false;
  std::thread thread;

  Impl(Connection& c, Source& s, LeaseOptions opt)
      : conn(c), source(s), o(std::move(opt)), partitions(s.partitions()) {}
  ~Impl() {
    if (kv != nullptr) kvStore_Destroy(kv);
  }

  [[nodiscard]] std::chrono::milliseconds tick() const {
    return std::max(std::chrono::milliseconds(10), o.ttl / 10);
  }
  static std::string lease_key(std::uint32_t p) { return "p." + std::to_string(p); }

  std::vector<std::string> members() {
    std::vector<std::string> m;
    kvKeysList keys{};
    kvWatchOptions wo;
    kvWatchOptions_Init(&wo);
    wo.IgnoreDeletes = true;
    wo.Timeout = std::max<std::int64_t>(100, tick().count());
    if (kvStore_Keys(&keys, kv, &wo) == NATS_OK) {
      for (int k = 0; k < keys.Count; ++k) {
        const std::string_view key = keys.Keys[k];
        if (key.starts_with("member.")) m.emplace_back(key.substr(7));
      }
      kvKeysList_Destroy(&keys);
    }
    if (std::find(m.begin(), m.end(), o.instance) == m.end()) m.push_back(o.instance);
    std::sort(m.begin(), m.end());
    return m;
  }

  void drop(std::uint32_t p, bool delete_lease) {
    source.release(p);  // stop processing first: never two owners at once
    Held h;
    {
      std::lock_guard lock(mu);
      h = held[p];
      held.erase(p);
      if (delete_lease) {
        ++st.released;
      } else {
        ++st.lost;
      }
    }
    if (!delete_lease) return;
    // Delete only our own lease (its revision unchanged), so a successor's is never removed.
    kvEntry* e = nullptr;
    if (kvStore_Get(&e, kv, lease_key(p).c_str()) == NATS_OK) {
      const bool ours = kvEntry_Revision(e) == h.revision;
      kvEntry_Destroy(e);
      if (ours) (void)kvStore_Delete(kv, lease_key(p).c_str());
    }
  }

  void step() {
    const Clock::time_point now = Clock::now();
    std::uint64_t member_rev = 0;
    (void)kvStore_PutString(&member_rev, kv, ("member." + o.instance).c_str(), "1");
    const std::vector<std::string> m = members();
    {
      std::lock_guard lock(mu);
      st.members = static_cast<std::uint32_t>(m.size());
    }
    const auto desired_mine = [&](std::uint32_t p) { return m[p % m.size()] == o.instance; };

    std::map<std::uint32_t, Held> mine;
    {
      std::lock_guard lock(mu);
      mine = held;
    }
    for (auto& [p, h] : mine) {
      const auto age = now - h.written;
      if (age >= o.ttl * 9 / 10) {  // renewals failed too long: the server may give it away
        drop(p, false);
        continue;
      }
      if (!desired_mine(p)) {  // rebalance: another member should have it
        drop(p, true);
        continue;
      }
      if (age >= o.ttl * 3 / 4) {
        std::uint64_t rev = 0;
        const natsStatus s =
            kvStore_UpdateString(&rev, kv, lease_key(p).c_str(), o.instance.c_str(), h.revision);
        if (s == NATS_OK) {
          std::lock_guard lock(mu);
          held[p] = Held{rev, now};
          ++st.renewed;
        } else if (s != NATS_TIMEOUT && s != NATS_CONNECTION_DISCONNECTED &&
                   s != NATS_CONNECTION_CLOSED && s != NATS_NO_RESPONDERS) {
          drop(p, false);  // refused: the key moved on (someone else holds it)
        }
      }
    }
    for (std::uint32_t p = 0; p < partitions; ++p) {
      if (!desired_mine(p) || mine.count(p) != 0) continue;
      std::uint64_t rev = 0;
      const Clock::time_point t = Clock::now();
      if (kvStore_CreateString(&rev, kv, lease_key(p).c_str(), o.instance.c_str()) != NATS_OK) {
        continue;  // held by someone (until released or expired)
      }
      try {
        source.own(p);
      } catch (const std::exception& ex) {
        conn.report(Status::Kind::fetch_error,
                    "lease for partition " + std::to_string(p) + ": " + ex.what());
        (void)kvStore_Delete(kv, lease_key(p).c_str());
        continue;
      }
      std::lock_guard lock(mu);
      held[p] = Held{rev, t};
      ++st.acquired;
    }
  }

  void loop() {
    std::unique_lock lock(run_mu);
    while (run) {
      lock.unlock();
      step();
      lock.lock();
      run_cv.wait_for(lock, tick(), [&] { return !run; });
    }
  }
};

Leases::Leases(Connection& conn, Source& source, LeaseOptions options)
    : impl_(std::make_unique<Impl>(conn, source, std::move(options))) {
  Impl& i = *impl_;
  if (!valid_key(i.o.instance)) {
    throw std::invalid_argument("ringflow::nats: lease instance id '" + i.o.instance +
                                "' must be a subject token");
  }
  if (i.o.ttl < std::chrono::milliseconds(100)) {
    throw std::invalid_argument("ringflow::nats: lease ttl must be >= 100 ms");
  }
  jsCtx* js = detail::js_of(conn);
  natsStatus s = js_KeyValue(&i.kv, js, i.o.bucket.c_str());
  if (s != NATS_OK) {
    kvConfig kc;
    kvConfig_Init(&kc);
    kc.Bucket = i.o.bucket.c_str();
    kc.History = 1;
    kc.TTL = std::chrono::nanoseconds(i.o.ttl).count();
    kc.Replicas = i.o.replicas;
    kc.StorageType = js_FileStorage;
    s = js_CreateKeyValue(&i.kv, js, &kc);
    if (s != NATS_OK) {
      // Another instance created it in the meantime.
      s = js_KeyValue(&i.kv, js, i.o.bucket.c_str());
      if (s != NATS_OK) detail::fail("js_CreateKeyValue " + i.o.bucket, s);
    }
  }
}

Leases::~Leases() {
  stop();
}

void Leases::start() {
  Impl& i = *impl_;
  {
    std::lock_guard lock(i.run_mu);
    if (i.run || i.thread.joinable()) throw std::logic_error("ringflow::nats::Leases: started");
    i.run = true;
  }
  i.thread = std::thread([&i] { i.loop(); });
}

void Leases::stop() {
  Impl& i = *impl_;
  {
    std::lock_guard lock(i.run_mu);
    if (!i.run) return;
    i.run = false;
  }
  i.run_cv.notify_all();
  if (i.thread.joinable()) i.thread.join();
  std::vector<std::uint32_t> ps;
  {
    std::lock_guard lock(i.mu);
    for (const auto& kv : i.held)
      ps.push_back(kv.first);
  }
  for (const std::uint32_t p : ps)
    i.drop(p, true);
  (void)kvStore_Delete(i.kv, ("member." + i.o.instance).c_str());
}

std::vector<std::uint32_t> Leases::held() const {
  std::lock_guard lock(impl_->mu);
  std::vector<std::uint32_t> v;
  for (const auto& kv : impl_->held)
    v.push_back(kv.first);
  return v;
}

LeaseStats Leases::stats() const {
  std::lock_guard lock(impl_->mu);
  return impl_->st;
}

}  // namespace ringflow::nats
