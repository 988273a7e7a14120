#include "harness/report.hpp"

#include <algorithm>

#include "harness/meta.hpp"

namespace ringflow::bench {

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::string format_ns(std::uint64_t ns) {
  char buf[32];
  const auto v = static_cast<double>(ns);
  if (ns < 1'000) {
    std::snprintf(buf, sizeof buf, "%llu ns", static_cast<unsigned long long>(ns));
  } else if (ns < 1'000'000) {
    std::snprintf(buf, sizeof buf, v < 1e4 ? "%.2f us" : (v < 1e5 ? "%.1f us" : "%.0f us"),
                  v / 1e3);
  } else if (ns < 1'000'000'000) {
    std::snprintf(buf, sizeof buf, v < 1e7 ? "%.2f ms" : (v < 1e8 ? "%.1f ms" : "%.0f ms"),
                  v / 1e6);
  } else {
    std::snprintf(buf, sizeof buf, "%.2f s", v / 1e9);
  }
  return buf;
}

std::string format_rate(double eps) {
  char buf[32];
  if (eps >= 1e6) {
    std::snprintf(buf, sizeof buf, "%.2fM", eps / 1e6);
  } else if (eps >= 1e3) {
    std::snprintf(buf, sizeof buf, "%.0fk", eps / 1e3);
  } else {
    std::snprintf(buf, sizeof buf, "%.0f", eps);
  }
  return buf;
}

std::vector<Ratio> compute_ratios(const std::vector<Row>& rows) {
  std::vector<Ratio> out;
  for (const auto& rf : rows) {
    if (rf.system != "ringflow") continue;
    for (const auto& b : rows) {
      if (b.system == "ringflow" || b.system == "platform_control") continue;
      if (b.scenario != rf.scenario || b.variant != rf.variant || b.offered_eps != rf.offered_eps) {
        continue;
      }
      Ratio r;
      r.scenario = rf.scenario;
      r.variant = rf.variant;
      r.offered_eps = rf.offered_eps;
      r.baseline = b.system;
      r.throughput = b.achieved_eps > 0 ? rf.achieved_eps / b.achieved_eps : 0.0;
      if (rf.has_latency && b.has_latency && b.p999_ns > 0) {
        r.p999 = static_cast<double>(rf.p999_ns) / static_cast<double>(b.p999_ns);
      }
      out.push_back(std::move(r));
    }
  }
  return out;
}

void write_summary_json(const std::filesystem::path& path, const std::vector<Row>& rows) {
  Json out = Json::array();
  for (const Row& r : rows) {
    auto lat = [&](std::uint64_t v) { return r.has_latency ? Json(v) : Json(nullptr); };
    Json j;
    j["scenario"] = r.scenario;
    j["system"] = r.system;
    j["offered_eps"] = r.offered_eps;
    j["achieved_eps"] = r.achieved_eps;
    j["p50_ns"] = lat(r.p50_ns);
    j["p99_ns"] = lat(r.p99_ns);
    j["p999_ns"] = lat(r.p999_ns);
    j["p9999_ns"] = lat(r.p9999_ns);
    j["max_ns"] = lat(r.max_ns);
    j["events"] = r.events;
    j["lost"] = r.lost;
    j["variant"] = r.variant;
    j["achieved_min_eps"] = r.achieved_min_eps;
    j["achieved_max_eps"] = r.achieved_max_eps;
    j["p90_ns"] = lat(r.p90_ns);
    j["repeats"] = r.repeats;
    j["histogram_csv"] = r.histogram_csv.empty() ? Json(nullptr) : Json(r.histogram_csv);
    j["note"] = r.note;
    out.push_back(std::move(j));
  }
  write_json(path, out);
}

void write_ratios_json(const std::filesystem::path& path, const std::vector<Ratio>& ratios) {
  Json out = Json::array();
  for (const Ratio& r : ratios) {
    Json j;
    j["scenario"] = r.scenario;
    j["variant"] = r.variant;
    j["offered_eps"] = r.offered_eps;
    j["baseline"] = r.baseline;
    j["throughput_ratio"] = r.throughput;
    j["p999_ratio"] = r.p999 ? Json(*r.p999) : Json(nullptr);
    out.push_back(std::move(j));
  }
  write_json(path, out);
}

void print_table(std::FILE* out, const std::vector<Row>& rows, const std::vector<Ratio>& ratios,
                 const std::vector<std::string>& notes) {
  std::string current;
  auto ratios_for = [&](const std::string& scenario) {
    bool any = false;
    for (const auto& r : ratios) {
      if (r.scenario != scenario) continue;
      if (!any) std::fprintf(out, "  ringflow vs baselines:\n");
      any = true;
      std::string where = r.variant;
      if (r.offered_eps > 0) {
        if (!where.empty()) where += ' ';
        where += format_rate(r.offered_eps);
        where += "/s";
      }
      std::fprintf(out, "    %-18s %-16s throughput x%.2f", where.c_str(), r.baseline.c_str(),
                   r.throughput);
      if (r.p999) std::fprintf(out, "   p99.9 x%.2f", *r.p999);
      std::fprintf(out, "\n");
    }
  };
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const Row& r = rows[i];
    if (r.scenario != current) {
      if (!current.empty()) ratios_for(current);
      current = r.scenario;
      std::fprintf(out, "\n== %s ==\n", r.scenario.c_str());
      std::fprintf(out, "  %-16s %-17s %9s %-24s %9s %9s %9s %9s %9s %10s %8s\n", "variant",
                   "system", "offered", "achieved/s (min-max)", "p50", "p99", "p99.9", "p99.99",
                   "max", "events", "lost");
    }
    std::string achieved = format_rate(r.achieved_eps);
    if (r.repeats > 1) {
      achieved +=
          " (" + format_rate(r.achieved_min_eps) + "-" + format_rate(r.achieved_max_eps) + ")";
    }
    auto lat = [&](std::uint64_t v) { return r.has_latency ? format_ns(v) : std::string("-"); };
    std::fprintf(
        out, "  %-16s %-17s %9s %-24s %9s %9s %9s %9s %9s %10llu %8llu%s%s\n", r.variant.c_str(),
        r.system.c_str(), r.offered_eps > 0 ? format_rate(r.offered_eps).c_str() : "max",
        achieved.c_str(), lat(r.p50_ns).c_str(), lat(r.p99_ns).c_str(), lat(r.p999_ns).c_str(),
        lat(r.p9999_ns).c_str(), lat(r.max_ns).c_str(), static_cast<unsigned long long>(r.events),
        static_cast<unsigned long long>(r.lost), r.note.empty() ? "" : "  ", r.note.c_str());
  }
  if (!current.empty()) ratios_for(current);
  bool has_ringflow = false;
  for (const auto& r : rows)
    has_ringflow = has_ringflow || r.system == "ringflow";
  if (!rows.empty() && !has_ringflow) {
    std::fprintf(out, "\n(no ringflow rows: ratios to the baselines could not be computed)\n");
  }
  bool has_control = false;
  for (const auto& r : rows)
    has_control = has_control || r.system == "platform_control";
  if (has_control) {
    // The definition of the control row (platform_control.hpp), printed with every table that
    // has one, so a reader of the table alone knows what the tails are judged against.
    std::fprintf(out,
                 "\nplatform_control: same open-loop schedule, same two cores, no queue. Per "
                 "scheduled send t (sent at s):\n  latency = max(s - t, end - s of a "
                 "worker-core stall [start, end) with start <= s < end); the spinner on the "
                 "worker core\n  records every gap > 1 us. The ~100 ns cross-core hand-off is "
                 "not added: a control for stalls, not a queue.\n");
  }
  if (!notes.empty()) {
    std::fprintf(out, "\nnotes:\n");
    for (const auto& n : notes)
      std::fprintf(out, "  - %s\n", n.c_str());
  }
  std::fflush(out);
}

}  // namespace ringflow::bench
