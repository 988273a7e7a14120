#include "harness/scenario.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include "harness/system.hpp"

namespace ringflow::bench {
namespace {

constexpr std::pair<ScenarioKind, std::string_view> kKinds[] = {
    {ScenarioKind::max_throughput, "max_throughput"},
    {ScenarioKind::latency_at_rate, "latency_at_rate"},
    {ScenarioKind::latency_curve, "latency_curve"},
    {ScenarioKind::fanout, "fanout"},
    {ScenarioKind::partitions_scaling, "partitions_scaling"},
    {ScenarioKind::urgent_under_load, "urgent_under_load"},
    {ScenarioKind::retry_dlq, "retry_dlq"},
    {ScenarioKind::request_reply, "request_reply"},
};

std::string kinds_list() {
  std::string s;
  for (const auto& [k, n] : kKinds)
    s += (s.empty() ? "" : ", ") + std::string(n);
  return s;
}

std::string_view type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a number";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::table:
      return "a table";
    default:
      return "a date/time";
  }
}

/// Reads one table (the [run] defaults or one [[scenario]]) with file/line/key context.
class Reader {
 public:
  Reader(std::string file, const toml::table& t, std::string prefix)
      : file_(std::move(file)), t_(t), prefix_(std::move(prefix)) {}

  [[noreturn]] void fail(std::string_view key, const toml::node* n, const std::string& why) const {
    int line = n ? static_cast<int>(n->source().begin.line) : 0;
    if (line == 0) line = static_cast<int>(t_.source().begin.line);
    throw ScenarioError(file_, line, key.empty() ? prefix_ : prefix_ + "." + std::string(key), why);
  }

  void check_keys(const std::set<std::string_view>& allowed, std::string_view what) const {
    for (const auto& [k, v] : t_) {
      if (allowed.count(k.str()) == 0) {
        std::string list;
        for (auto a : allowed) {
          if (!list.empty()) list += ", ";
          list += a;
        }
        fail(k.str(), &v, "unknown key for " + std::string(what) + " (known: " + list + ")");
      }
    }
  }

  [[nodiscard]] const toml::node* get(std::string_view key) const { return t_.get(key); }
  [[nodiscard]] bool has(std::string_view key) const { return t_.contains(key); }

  std::int64_t integer(std::string_view key, const toml::node& n, std::int64_t lo,
                       std::int64_t hi) const {
    // The type first: value<int64_t>() would convert a float, and a float like 1e308 does not
    // fit in an int64_t (undefined behaviour; found by fuzz_scenario).
    if (!n.is_integer()) fail(key, &n, "expected an integer, got " + std::string(type_name(n)));
    const auto v = n.value<std::int64_t>();
    if (!v) fail(key, &n, "expected an integer, got " + std::string(type_name(n)));
    if (*v < lo || *v > hi) {
      fail(key, &n,
           "must be between " + std::to_string(lo) + " and " + std::to_string(hi) + ", got " +
               std::to_string(*v));
    }
    return *v;
  }
  double number(std::string_view key, const toml::node& n, double lo, double hi) const {
    if (!n.is_number()) fail(key, &n, "expected a number, got " + std::string(type_name(n)));
    const double v = *n.value<double>();
    if (!(v > lo) || v > hi) {
      std::ostringstream os;
      os << "must be > " << lo << " and <= " << hi << ", got " << v;
      fail(key, &n, os.str());
    }
    return v;
  }

  template <class T>
  void opt_uint(std::string_view key, T& out, std::int64_t lo, std::int64_t hi) const {
    if (const auto* n = get(key)) out = static_cast<T>(integer(key, *n, lo, hi));
  }
  void opt_number(std::string_view key, double& out, double lo, double hi) const {
    if (const auto* n = get(key)) out = number(key, *n, lo, hi);
  }
  void opt_bool(std::string_view key, bool& out) const {
    if (const auto* n = get(key)) {
      if (!n->is_boolean())
        fail(key, n, "expected true or false, got " + std::string(type_name(*n)));
      out = *n->value<bool>();
    }
  }
  std::string string(std::string_view key, const toml::node& n) const {
    if (!n.is_string()) fail(key, &n, "expected a string, got " + std::string(type_name(n)));
    return n.value_or(std::string{});
  }
  /// An array of integers, or a single integer taken as a one-element list.
  template <class T>
  void opt_uint_list(std::string_view key, std::vector<T>& out, std::int64_t lo,
                     std::int64_t hi) const {
    const auto* n = get(key);
    if (n == nullptr) return;
    out.clear();
    if (n->is_integer()) {
      out.push_back(static_cast<T>(integer(key, *n, lo, hi)));
      return;
    }
    const auto* arr = n->as_array();
    if (arr == nullptr)
      fail(key, n,
           "expected an integer or an array of integers, got " + std::string(type_name(*n)));
    if (arr->empty()) fail(key, n, "must not be empty");
    for (std::size_t i = 0; i < arr->size(); ++i) {
      out.push_back(static_cast<T>(
          integer(std::string(key) + "[" + std::to_string(i) + "]", (*arr)[i], lo, hi)));
    }
  }
  void opt_number_list(std::string_view key, std::vector<double>& out, double lo, double hi) const {
    const auto* n = get(key);
    if (n == nullptr) return;
    out.clear();
    const auto* arr = n->as_array();
    if (arr == nullptr)
      fail(key, n, "expected an array of numbers, got " + std::string(type_name(*n)));
    if (arr->empty()) fail(key, n, "must not be empty");
    for (std::size_t i = 0; i < arr->size(); ++i) {
      out.push_back(number(std::string(key) + "[" + std::to_string(i) + "]", (*arr)[i], lo, hi));
    }
  }
  void opt_systems(std::vector<std::string>& out) const {
    const auto* n = get("systems");
    if (n == nullptr) return;
    const auto* arr = n->as_array();
    if (arr == nullptr)
      fail("systems", n, "expected an array of strings, got " + std::string(type_name(*n)));
    if (arr->empty()) fail("systems", n, "must not be empty");
    const auto known = known_systems();
    out.clear();
    for (std::size_t i = 0; i < arr->size(); ++i) {
      const std::string key = "systems[" + std::to_string(i) + "]";
      std::string s = string(key, (*arr)[i]);
      if (s == "platform_control") {
        fail(key, &(*arr)[i], "platform_control is not a system; set control = true instead");
      }
      if (std::find(known.begin(), known.end(), s) == known.end()) {
        std::string list;
        for (const auto& k : known) {
          if (!list.empty()) list += ", ";
          list += k;
        }
        std::string msg = "unknown system '";
        msg.append(s).append("' (known: ").append(list).append(")");
        fail(key, &(*arr)[i], msg);
      }
      if (std::find(out.begin(), out.end(), s) != out.end()) {
        fail(key, &(*arr)[i], "system '" + s + "' is listed twice");
      }
      out.push_back(std::move(s));
    }
  }

  // Keys any table may set (the [run] defaults, or one scenario's overrides).
  void common(Scenario& s) const {
    opt_systems(s.systems);
    opt_uint("repeats", s.repeats, 1, 100);
    opt_uint("producers", s.producers, 1, 64);
    opt_uint("capacity", s.capacity, 1, std::int64_t{1} << 30);
    opt_uint_list("producer_cores", s.producer_cores, 0, 4095);
    opt_uint_list("worker_cores", s.worker_cores, 0, 4095);
    opt_uint("events", s.events, 1, std::int64_t{1} << 40);
    opt_uint("warmup_events", s.warmup_events, 0, std::int64_t{1} << 40);
    opt_number("duration_s", s.duration_s, 0.0, 3600.0);
    if (const auto* n = get("warmup_s")) {
      if (!n->is_number())
        fail("warmup_s", n, "expected a number, got " + std::string(type_name(*n)));
      s.warmup_s = *n->value<double>();
      if (s.warmup_s < 0 || s.warmup_s > 600) fail("warmup_s", n, "must be between 0 and 600");
    }
    opt_bool("control", s.control);
  }

 private:
  std::string file_;
  const toml::table& t_;
  std::string prefix_;
};

const std::set<std::string_view> kCommonKeys = {
    "systems", "repeats",       "producers",  "capacity", "producer_cores", "worker_cores",
    "events",  "warmup_events", "duration_s", "warmup_s", "control"};

Scenario parse_one(const std::string& file, const toml::table& t, std::size_t index,
                   const Scenario& defaults) {
  const std::string prefix = "scenario[" + std::to_string(index) + "]";
  Reader r(file, t, prefix);
  Scenario s = defaults;
  s.line = static_cast<int>(t.source().begin.line);

  std::set<std::string_view> allowed = kCommonKeys;
  for (auto k :
       {"name", "kind", "rates", "rate_min", "rate_max", "steps", "saturation", "subscribers",
        "partitions", "mode", "rate", "handler_work_ns", "fail_share", "retry_share", "callers"}) {
    allowed.insert(k);
  }
  r.check_keys(allowed, "a scenario");

  const auto* kind_node = r.get("kind");
  if (kind_node == nullptr) r.fail("kind", nullptr, "missing; one of: " + kinds_list());
  const std::string kind = r.string("kind", *kind_node);
  bool found = false;
  for (const auto& [k, n] : kKinds) {
    if (n == kind) {
      s.kind = k;
      found = true;
    }
  }
  if (!found)
    r.fail("kind", kind_node, "unknown kind '" + kind + "' (one of: " + kinds_list() + ")");
  s.name = kind;
  if (const auto* n = r.get("name")) {
    s.name = r.string("name", *n);
    const bool ok = !s.name.empty() && std::all_of(s.name.begin(), s.name.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
    });
    if (!ok) r.fail("name", n, "use letters, digits, '_' and '-' only (it names output files)");
  }

  // Keys that only some kinds use: an unused key is an error, not silently ignored.
  const bool variant = s.kind == ScenarioKind::fanout || s.kind == ScenarioKind::partitions_scaling;
  if (const auto* n = r.get("mode")) {
    if (!variant) r.fail("mode", n, "only fanout and partitions_scaling take a mode");
    const std::string m = r.string("mode", *n);
    if (m != "throughput" && m != "latency") {
      r.fail("mode", n, "expected \"throughput\" or \"latency\", got \"" + m + "\"");
    }
    s.latency_mode = m == "latency";
  }
  auto only_for = [&](std::string_view key, bool used, const std::string& why) {
    if (const auto* n = r.get(key); n != nullptr && !used) r.fail(key, n, why);
  };
  const std::string kname(to_string(s.kind));
  only_for("subscribers", s.kind == ScenarioKind::fanout, "only kind fanout uses it");
  only_for("partitions", s.kind == ScenarioKind::partitions_scaling,
           "only kind partitions_scaling uses it");
  for (auto k : {"rate_min", "rate_max", "steps", "saturation"}) {
    only_for(k, s.kind == ScenarioKind::latency_curve, "only kind latency_curve uses it");
  }
  const bool latency = s.is_latency();
  const bool urgent = s.kind == ScenarioKind::urgent_under_load;
  const bool retry = s.kind == ScenarioKind::retry_dlq;
  const bool rr = s.kind == ScenarioKind::request_reply;
  only_for("callers", rr, "only kind request_reply uses it");
  only_for("rate", urgent, "only kind urgent_under_load uses it (the probe rate)");
  only_for("handler_work_ns", urgent, "only kind urgent_under_load uses it");
  only_for("fail_share", retry, "only kind retry_dlq uses it");
  only_for("retry_share", retry, "only kind retry_dlq uses it");
  for (auto k : {"events", "warmup_events"}) {
    only_for(k, !latency && !urgent && !rr,
             "not used by a latency run (kind " + kname + "): it runs for duration_s" +
                 (urgent ? "" : " at each rate"));
  }
  for (auto k : {"rates", "duration_s", "warmup_s", "control"}) {
    const bool used =
        latency || rr || (retry && std::string_view(k) != "control") ||
        (urgent && std::string_view(k) != "rates" && std::string_view(k) != "control");
    only_for(k, used,
             (urgent || retry) ? "not used by kind " + kname +
                                     (urgent && std::string_view(k) == "rates" ? " (set rate)" : "")
                               : "not used by a throughput run (kind " + kname + ")" +
                                     (variant ? "; set mode = \"latency\"" : ""));
  }

  r.common(s);
  r.opt_number_list("rates", s.rates, 0.0, 1e9);
  r.opt_uint_list("subscribers", s.subscribers, 1, 64);
  r.opt_uint_list("callers", s.callers, 1, 64);
  r.opt_uint_list("partitions", s.partitions, 1, 1024);
  r.opt_number("saturation", s.saturation, 0.0, 1.0);
  r.opt_number("rate", s.rate, 0.0, 1e9);
  r.opt_uint("handler_work_ns", s.handler_work_ns, 0, 1'000'000);
  for (auto [k, out] : {std::pair{"fail_share", &s.fail_share}, {"retry_share", &s.retry_share}}) {
    if (const auto* n = r.get(k)) {
      if (!n->is_number()) r.fail(k, n, "expected a number, got " + std::string(type_name(*n)));
      *out = *n->value<double>();
      if (!(*out >= 0.0 && *out <= 1.0)) {
        std::ostringstream os;
        os << "must be between 0 and 1, got " << *out;
        r.fail(k, n, os.str());
      }
    }
  }
  if (retry && s.fail_share + s.retry_share > 1.0) {
    r.fail(r.has("retry_share") ? "retry_share" : "fail_share",
           r.get(r.has("retry_share") ? "retry_share" : "fail_share"),
           "fail_share + retry_share must not exceed 1");
  }
  if (retry && s.rates.empty()) s.rates = {500'000};
  if (rr && s.rates.empty()) s.rates = {10'000, 100'000};

  if (s.kind == ScenarioKind::latency_at_rate || (variant && s.latency_mode)) {
    if (s.rates.empty()) r.fail("rates", nullptr, "missing: a latency run needs rates = [...]");
  }
  if (s.kind == ScenarioKind::fanout && !r.has("subscribers")) {
    r.fail("subscribers", nullptr, "missing: fanout needs subscribers = [1, 2, 4]");
  }
  if (s.kind == ScenarioKind::partitions_scaling && !r.has("partitions")) {
    r.fail("partitions", nullptr, "missing: partitions_scaling needs partitions = [1, 2, 4]");
  }
  if (s.kind == ScenarioKind::latency_curve) {
    const bool has_range = r.has("rate_min") || r.has("rate_max") || r.has("steps");
    if (has_range && r.has("rates")) {
      r.fail("rates", r.get("rates"), "give either rates or rate_min/rate_max/steps, not both");
    }
    if (!has_range && s.rates.empty()) {
      r.fail("rate_min", nullptr,
             "missing: latency_curve needs rate_min, rate_max and steps (or rates)");
    }
    if (has_range) {
      double lo = 0;
      double hi = 0;
      unsigned steps = 0;
      for (auto k : {"rate_min", "rate_max", "steps"}) {
        if (!r.has(k)) r.fail(k, nullptr, "missing: rate_min, rate_max and steps go together");
      }
      r.opt_number("rate_min", lo, 0.0, 1e9);
      r.opt_number("rate_max", hi, 0.0, 1e9);
      r.opt_uint("steps", steps, 2, 100);
      if (hi <= lo) r.fail("rate_max", r.get("rate_max"), "must be greater than rate_min");
      s.rates.clear();
      for (unsigned i = 0; i < steps; ++i) {
        s.rates.push_back(std::round(lo * std::pow(hi / lo, static_cast<double>(i) / (steps - 1))));
      }
    }
  }
  if (s.warmup_events >= s.events && !latency && !urgent) {
    r.fail("warmup_events", r.get("warmup_events"), "must be smaller than events");
  }
  return s;
}

}  // namespace

std::string_view to_string(ScenarioKind k) noexcept {
  for (const auto& [kind, n] : kKinds) {
    if (kind == k) return n;
  }
  return "unknown";
}

ScenarioError::ScenarioError(std::string file, int line, std::string key, std::string reason)
    : std::runtime_error(file + ":" + std::to_string(line) + ": " + key + ": " + reason),
      file_(std::move(file)),
      line_(line),
      key_(std::move(key)),
      reason_(std::move(reason)) {}

ScenarioFile parse_scenarios(std::string_view toml_text, std::string_view source_name) {
  ScenarioFile f;
  f.source = std::string(source_name);
  f.text = std::string(toml_text);
  toml::table root;
  try {
    root = toml::parse(toml_text, source_name);
  } catch (const toml::parse_error& e) {
    throw ScenarioError(f.source, static_cast<int>(e.source().begin.line), "(syntax)",
                        std::string(e.description()));
  }
  for (const auto& [k, v] : root) {
    if (k.str() != "run" && k.str() != "scenario") {
      throw ScenarioError(f.source, static_cast<int>(v.source().begin.line), std::string(k.str()),
                          "unknown top-level key (known: [run], [[scenario]])");
    }
  }
  Scenario defaults;
  defaults.systems = known_systems();
  // ringflow_metrics is ringflow again, with its metrics sampled and read: run it only where a
  // scenario file asks for it.
  std::erase(defaults.systems, std::string("ringflow_metrics"));
  if (const auto* run = root.get("run")) {
    const auto* t = run->as_table();
    if (t == nullptr) {
      throw ScenarioError(f.source, static_cast<int>(run->source().begin.line), "run",
                          "expected a table [run]");
    }
    Reader r(f.source, *t, "run");
    r.check_keys(kCommonKeys, "[run]");
    r.common(defaults);
  }
  const auto* list = root.get("scenario");
  const auto* arr = list ? list->as_array() : nullptr;
  if (list != nullptr && (arr == nullptr || !arr->is_array_of_tables())) {
    throw ScenarioError(f.source, static_cast<int>(list->source().begin.line), "scenario",
                        "expected [[scenario]] tables");
  }
  if (arr == nullptr || arr->empty()) {
    throw ScenarioError(f.source, 1, "scenario", "no [[scenario]] in the file: nothing to run");
  }
  std::set<std::string> names;
  for (std::size_t i = 0; i < arr->size(); ++i) {
    Scenario s = parse_one(f.source, *(*arr)[i].as_table(), i, defaults);
    if (!names.insert(s.name).second) {
      throw ScenarioError(f.source, s.line, "scenario[" + std::to_string(i) + "].name",
                          "duplicate scenario name '" + s.name + "'; set name = \"...\"");
    }
    f.scenarios.push_back(std::move(s));
  }
  return f;
}

ScenarioFile load_scenarios(const std::filesystem::path& file) {
  // A directory, FIFO or device is refused before it is opened (a FIFO would block).
  std::error_code ec;
  if (!std::filesystem::is_regular_file(file, ec)) {
    throw ScenarioError(file.string(), 0, "(file)",
                        std::filesystem::exists(file, ec)
                            ? "not a regular file; give the path of a scenario file (TOML)"
                            : "cannot open the scenario file: no such file (check the path)");
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) throw ScenarioError(file.string(), 0, "(file)", "cannot open the scenario file");
  std::ostringstream ss;
  ss << in.rdbuf();
  return parse_scenarios(ss.str(), file.string());
}

void make_quick(ScenarioFile& f) {
  for (auto& s : f.scenarios) {
    s.repeats = 1;
    s.events = std::max<std::uint64_t>(s.events / 10, 10'000);
    s.warmup_events = std::min(s.warmup_events / 10, s.events / 2);
    s.duration_s = std::max(s.duration_s / 10, 0.2);
    s.warmup_s = std::min(s.warmup_s, 0.1);
  }
}

}  // namespace ringflow::bench
