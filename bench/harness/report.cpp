#include "harness/report.hpp"

#include <cmath>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <tuple>

namespace ringflow::bench {
namespace {

void write_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) throw std::runtime_error("cannot write '" + path.string() + "'");
}

std::string json_quoted(std::string_view s) {
  std::string q(1, '"');
  q += json_escape(s);
  q += '"';
  return q;
}

std::string num(double v) {
  if (!std::isfinite(v)) return "null";
  std::ostringstream os;
  os.precision(15);
  os << v;
  return os.str();
}

}  // namespace

std::string json_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  for (const char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out;
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
  std::ostringstream os;
  os << "[\n";
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const Row& r = rows[i];
    auto lat = [&](std::uint64_t v) { return r.has_latency ? std::to_string(v) : "null"; };
    os << "  {\"scenario\": \"" << json_escape(r.scenario) << "\", \"system\": \""
       << json_escape(r.system) << "\", \"offered_eps\": " << num(r.offered_eps)
       << ", \"achieved_eps\": " << num(r.achieved_eps) << ", \"p50_ns\": " << lat(r.p50_ns)
       << ", \"p99_ns\": " << lat(r.p99_ns) << ", \"p999_ns\": " << lat(r.p999_ns)
       << ", \"p9999_ns\": " << lat(r.p9999_ns) << ", \"max_ns\": " << lat(r.max_ns)
       << ", \"events\": " << r.events << ", \"lost\": " << r.lost << ",\n   \"variant\": \""
       << json_escape(r.variant) << "\", \"achieved_min_eps\": " << num(r.achieved_min_eps)
       << ", \"achieved_max_eps\": " << num(r.achieved_max_eps) << ", \"p90_ns\": " << lat(r.p90_ns)
       << ", \"repeats\": " << r.repeats << ", \"histogram_csv\": "
       << (r.histogram_csv.empty() ? std::string("null") : json_quoted(r.histogram_csv))
       << ", \"note\": \"" << json_escape(r.note) << "\"}" << (i + 1 < rows.size() ? "," : "")
       << "\n";
  }
  os << "]\n";
  write_file(path, os.str());
}

void write_ratios_json(const std::filesystem::path& path, const std::vector<Ratio>& ratios) {
  std::ostringstream os;
  os << "[\n";
  for (std::size_t i = 0; i < ratios.size(); ++i) {
    const Ratio& r = ratios[i];
    os << "  {\"scenario\": \"" << json_escape(r.scenario) << "\", \"variant\": \""
       << json_escape(r.variant) << "\", \"offered_eps\": " << num(r.offered_eps)
       << ", \"baseline\": \"" << json_escape(r.baseline)
       << "\", \"throughput_ratio\": " << num(r.throughput)
       << ", \"p999_ratio\": " << (r.p999 ? num(*r.p999) : "null") << "}"
       << (i + 1 < ratios.size() ? "," : "") << "\n";
  }
  os << "]\n";
  write_file(path, os.str());
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
