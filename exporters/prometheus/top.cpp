// ringflow-top: a live terminal view of a running engine, read from its Prometheus endpoint.
// Plain ANSI (works over ssh), no dependency beyond the C++ library.
//
//   ringflow-top [--interval-ms 1000] [--iterations N] [--path /metrics] [--no-clear] HOST:PORT
//
// Rates are differences between two scrapes; p50/p99 come from the ingest->done and per-stage
// histograms over the last interval (or since start when the interval had no sample).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "scrape.hpp"

namespace {

using ringflow::prom::Scrape;
using M = std::map<std::string, std::string>;

std::string fmt_rate(std::optional<double> r) {
  if (!r) return "-";
  char b[32];
  std::snprintf(b, sizeof b, "%.1f", *r);
  return b;
}
std::string fmt_count(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.0f", v);
  return b;
}
std::string fmt_ns(std::optional<double> seconds) {
  if (!seconds) return "-";
  const double ns = *seconds * 1e9;
  char b[32];
  if (ns < 1e3) {
    std::snprintf(b, sizeof b, "%.0fns", ns);
  } else if (ns < 1e6) {
    std::snprintf(b, sizeof b, "%.1fus", ns / 1e3);
  } else if (ns < 1e9) {
    std::snprintf(b, sizeof b, "%.1fms", ns / 1e6);
  } else {
    std::snprintf(b, sizeof b, "%.2fs", ns / 1e9);
  }
  return b;
}

/// Cumulative buckets of the interval: now minus before (same le set).
std::vector<std::pair<double, double>> delta(const std::vector<std::pair<double, double>>& now,
                                             const std::vector<std::pair<double, double>>& before) {
  if (before.size() != now.size()) return now;
  std::vector<std::pair<double, double>> out = now;
  for (std::size_t i = 0; i < out.size(); ++i)
    out[i].second -= before[i].second;
  return out;
}

struct View {
  const Scrape& now;
  const Scrape* before;
  double dt;

  [[nodiscard]] std::optional<double> rate(const std::string& name, const M& match = {}) const {
    if (before == nullptr || dt <= 0) return std::nullopt;
    return std::max(0.0, (now.sum(name, match) - before->sum(name, match)) / dt);
  }
  /// p-quantile of histogram `base` over the interval, else since start.
  [[nodiscard]] std::optional<double> latency(
      double q, const M& match = {},
      const std::string& base = "ringflow_ingest_to_done_seconds") const {
    const auto b = now.buckets(base, match);
    if (before != nullptr) {
      const auto d = delta(b, before->buckets(base, match));
      if (!d.empty() && d.back().second > 0) return ringflow::prom::quantile(d, q);
    }
    return ringflow::prom::quantile(b, q);
  }
};

void render(std::ostream& o, const std::string& url, const View& v, bool clear) {
  const Scrape& s = v.now;
  if (clear) o << "\x1b[H\x1b[2J";
  const std::time_t t = std::time(nullptr);
  char when[32];
  std::strftime(when, sizeof when, "%H:%M:%S", std::localtime(&t));
  o << "\x1b[1mringflow-top\x1b[0m  " << url << "  " << when << "\n\n";

  o << "events in   " << fmt_rate(v.rate("ringflow_events_total")) << "/s   total "
    << fmt_count(s.sum("ringflow_events_total")) << "   stored "
    << fmt_count(s.sum("ringflow_events_stored_total")) << "   processed "
    << fmt_count(s.sum("ringflow_processed_total")) << "\n";
  o << "latency     ingest->done  p50 " << fmt_ns(v.latency(0.50)) << "  p99 "
    << fmt_ns(v.latency(0.99)) << "\n";
  o << "handlers    ok " << fmt_rate(v.rate("ringflow_handled_ok_total")) << "/s  failures "
    << fmt_rate(v.rate("ringflow_handler_failures_total")) << "/s  retries "
    << fmt_rate(v.rate("ringflow_retries_total")) << "/s\n";
  o << "dead letters " << fmt_count(s.sum("ringflow_dead_letters_total")) << " (";
  bool first = true;
  for (const std::string& r : s.label_values("ringflow_dead_letters_total", "reason")) {
    o << (first ? "" : ", ") << r << " "
      << fmt_count(s.sum("ringflow_dead_letters_total", M{{"reason", r}}));
    first = false;
  }
  o << ")  " << fmt_rate(v.rate("ringflow_dead_letters_total")) << "/s\n";
  o << "refusals   ";
  for (const std::string& st : s.label_values("ringflow_published_total", "status")) {
    if (st == "ok") continue;
    o << " " << st << " " << fmt_count(s.sum("ringflow_published_total", M{{"status", st}}));
  }
  o << "\n\n";

  char line[256];
  std::snprintf(line, sizeof line, "\x1b[1m%-24s %10s %12s %12s %8s %8s %8s\x1b[0m\n", "TOPIC",
                "EVENTS/S", "TOTAL", "STORED", "EXPIRED", "DUPL", "DLQ");
  o << line;
  for (const std::string& topic : s.label_values("ringflow_events_total", "topic")) {
    const M m{{"topic", topic}};
    std::snprintf(line, sizeof line, "%-24s %10s %12s %12s %8s %8s %8s\n", topic.c_str(),
                  fmt_rate(v.rate("ringflow_events_total", m)).c_str(),
                  fmt_count(s.sum("ringflow_events_total", m)).c_str(),
                  fmt_count(s.sum("ringflow_events_stored_total", m)).c_str(),
                  fmt_count(s.sum("ringflow_events_expired_total", m)).c_str(),
                  fmt_count(s.sum("ringflow_events_duplicate_total", m)).c_str(),
                  fmt_count(s.sum("ringflow_topic_dead_letters_total", m)).c_str());
    o << line;
  }
  o << "\n";
  std::snprintf(line, sizeof line, "\x1b[1m%-4s %-20s %-10s %10s %10s %8s %8s %8s\x1b[0m\n", "SUB",
                "PATTERN", "GROUP", "DELIV/S", "OK", "FAILED", "RETRIES", "DLQ");
  o << line;
  for (const std::string& sub : s.label_values("ringflow_deliveries_total", "subscription")) {
    const M m{{"subscription", sub}};
    std::string pattern;
    std::string group;
    for (const auto& smp : s.samples()) {
      if (smp.name == "ringflow_deliveries_total" && smp.labels.count("subscription") != 0 &&
          smp.labels.at("subscription") == sub) {
        pattern = smp.labels.count("pattern") != 0 ? smp.labels.at("pattern") : "";
        group = smp.labels.count("group") != 0 ? smp.labels.at("group") : "";
      }
    }
    std::snprintf(line, sizeof line, "%-4s %-20s %-10s %10s %10s %8s %8s %8s\n", sub.c_str(),
                  pattern.c_str(), group.empty() ? "-" : group.c_str(),
                  fmt_rate(v.rate("ringflow_deliveries_total", m)).c_str(),
                  fmt_count(s.sum("ringflow_handled_ok_total", m)).c_str(),
                  fmt_count(s.sum("ringflow_handler_failures_total", m)).c_str(),
                  fmt_count(s.sum("ringflow_retries_total", m)).c_str(),
                  fmt_count(s.sum("ringflow_subscription_dead_letters_total", m)).c_str());
    o << line;
  }
  o << "\n";
  std::snprintf(line, sizeof line, "\x1b[1m%-6s %10s %10s %10s %10s %10s %10s %10s\x1b[0m\n",
                "SHARD", "BATCHES/S", "RING", "URGENT", "FULL", "IDLE/S", "P50", "P99");
  o << line;
  for (const std::string& sh : s.label_values("ringflow_batches_total", "shard")) {
    const M m{{"shard", sh}};
    std::snprintf(
        line, sizeof line, "%-6s %10s %10s %10s %10s %10s %10s %10s\n", sh.c_str(),
        fmt_rate(v.rate("ringflow_batches_total", m)).c_str(),
        fmt_count(s.sum("ringflow_ring_depth", M{{"shard", sh}, {"lane", "normal"}})).c_str(),
        fmt_count(s.sum("ringflow_ring_depth", M{{"shard", sh}, {"lane", "urgent"}})).c_str(),
        fmt_count(s.sum("ringflow_ring_full_total", m)).c_str(),
        fmt_rate(v.rate("ringflow_shard_idle_polls_total", m)).c_str(),
        fmt_ns(v.latency(0.50, m)).c_str(), fmt_ns(v.latency(0.99, m)).c_str());
    o << line;
  }
  // Where ingest -> done goes: the shard's stages, all shards together, in the engine's order.
  o << "\n";
  std::snprintf(line, sizeof line, "\x1b[1m%-10s %10s %10s\x1b[0m\n", "STAGE", "P50", "P99");
  o << line;
  static constexpr const char* kStages[] = {"store", "stages", "handlers", "failures"};
  for (const char* st : kStages) {
    const M m{{"stage", st}};
    if (s.buckets("ringflow_stage_seconds", m).empty()) continue;
    std::snprintf(line, sizeof line, "%-10s %10s %10s\n", st,
                  fmt_ns(v.latency(0.50, m, "ringflow_stage_seconds")).c_str(),
                  fmt_ns(v.latency(0.99, m, "ringflow_stage_seconds")).c_str());
    o << line;
  }
  o.flush();
}

int usage() {
  std::cerr << "usage: ringflow-top [--interval-ms N] [--iterations N] [--path P] [--no-clear] "
               "HOST:PORT\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  long interval_ms = 1000;
  long iterations = 0;  // 0 = until interrupted
  std::string path = "/metrics";
  std::string address;
  bool clear = true;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--interval-ms" && i + 1 < argc) {
      interval_ms = std::strtol(argv[++i], nullptr, 10);
    } else if (a == "--iterations" && i + 1 < argc) {
      iterations = std::strtol(argv[++i], nullptr, 10);
    } else if (a == "--path" && i + 1 < argc) {
      path = argv[++i];
    } else if (a == "--no-clear") {
      clear = false;
    } else if (!a.empty() && a[0] != '-' && address.empty()) {
      address = a;
    } else {
      return usage();
    }
  }
  std::string host;
  std::uint16_t port = 0;
  if (address.empty() || !ringflow::prom::split_host_port(address, host, port) ||
      interval_ms <= 0) {
    return usage();
  }
  const std::string url = "http://" + address + path;
  std::optional<Scrape> before;
  auto before_at = std::chrono::steady_clock::now();
  for (long n = 0; iterations == 0 || n < iterations; ++n) {
    const auto tick = std::chrono::steady_clock::now();
    std::string error;
    const auto r =
        ringflow::prom::http_get(host, port, path, std::chrono::milliseconds(2000), &error);
    const auto at = std::chrono::steady_clock::now();
    if (!r || r->status != 200) {
      if (clear) std::cout << "\x1b[H\x1b[2J";
      std::cout << "ringflow-top  " << url << ": "
                << (r ? "HTTP " + std::to_string(r->status) : error) << "\n"
                << std::flush;
      before.reset();
    } else {
      try {
        Scrape now(ringflow::prom::parse_text(r->body));
        const double dt = std::chrono::duration<double>(at - before_at).count();
        render(std::cout, url, View{now, before ? &*before : nullptr, dt}, clear);
        before = std::move(now);
        before_at = at;
      } catch (const std::exception& e) {
        std::cout << "ringflow-top  " << url << ": " << e.what() << "\n" << std::flush;
        before.reset();
      }
    }
    if (iterations != 0 && n + 1 >= iterations) break;
    std::this_thread::sleep_until(tick + std::chrono::milliseconds(interval_ms));
  }
  return 0;
}
