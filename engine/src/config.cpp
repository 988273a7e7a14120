// TOML -> EngineConfig, and the checks that decide whether a config can run on a topology.
//
// Two stages, so that a config filled in code gets the same checks as a parsed one:
//   parse_config(): syntax, unknown sections/keys (with the nearest valid key), wrong types,
//                   values the field cannot hold (negative, too big, unknown enum word).
//   check_config(): ranges and relations between keys, and the topology (cores that exist,
//                   exclusive cores). Lines come from EngineConfig::key_lines.
// Ring capacity that is not a power of two is rejected (not rounded): the file says what runs.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <toml++/toml.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <system_error>
#include <utility>

#include "ringflow/config.hpp"
#include "ringflow/partition_log.hpp"
#include "ringflow/topology.hpp"

namespace ringflow {

// ---------------------------------------------------------------------------------------------
// ConfigIssue / ConfigError

std::string ConfigIssue::to_string() const {
  std::string s = source.empty() ? "<config>" : source;
  if (line > 0) s += ":" + std::to_string(line);
  s += ": ";
  if (!key.empty()) s += key + ": ";
  s += message;
  return s;
}

namespace {
std::string join_issues(const std::vector<ConfigIssue>& issues) {
  if (issues.size() == 1) return "invalid config: " + issues.front().to_string();
  std::string s = "invalid config (" + std::to_string(issues.size()) + " problems):";
  for (const auto& i : issues)
    s += "\n  " + i.to_string();
  return s;
}
}  // namespace

ConfigError::ConfigError(ConfigIssue issue)
    : ConfigError(std::vector<ConfigIssue>{std::move(issue)}) {}

ConfigError::ConfigError(std::vector<ConfigIssue> issues)
    : std::runtime_error(join_issues(issues)), issues_(std::move(issues)) {}

std::string_view to_string(WaitStrategyKind k) noexcept {
  switch (k) {
    case WaitStrategyKind::busy_spin:
      return "busy_spin";
    case WaitStrategyKind::spin_yield:
      return "spin_yield";
    case WaitStrategyKind::park:
      return "park";
  }
  return "?";
}

std::string_view to_string(BackpressurePolicy p) noexcept {
  switch (p) {
    case BackpressurePolicy::fail_fast:
      return "fail_fast";
    case BackpressurePolicy::spin:
      return "spin";
    case BackpressurePolicy::park:
      return "park";
  }
  return "?";
}

std::string_view to_string(NumaBinding n) noexcept {
  switch (n) {
    case NumaBinding::off:
      return "off";
    case NumaBinding::on:
      return "on";
    case NumaBinding::automatic:
      return "auto";
  }
  return "?";
}

std::string_view to_string(AllocatorKind a) noexcept {
  switch (a) {
    case AllocatorKind::system:
      return "system";
    case AllocatorKind::jemalloc:
      return "jemalloc";
  }
  return "?";
}

std::string_view to_string(WalMode m) noexcept {
  switch (m) {
    case WalMode::off:
      return "off";
    case WalMode::os:
      return "os";
    case WalMode::interval:
      return "interval";
    case WalMode::sync:
      return "sync";
  }
  return "?";
}

// ---------------------------------------------------------------------------------------------
// Parsing

namespace {

// The documented range of every integer key (docs/configuration.md, "allowed / checked"): the
// parser and check_config() both name it, so a value is never told one limit at parse time and
// another when checked. Relations between keys (batch <= capacity, ...) are in check_config().
struct Bounds {
  std::string_view key;
  std::uint64_t lo;
  std::uint64_t hi;
};
constexpr std::array kBounds{
    Bounds{"engine.partitions", 1, std::uint64_t{1} << 16},
    Bounds{"engine.max_producers", 1, 4096},
    Bounds{"engine.max_payload_bytes", 1, kMaxPayloadBytes},
    Bounds{"engine.max_topics", 1, std::uint64_t{1} << 20},
    Bounds{"shards.count", 1, kMaxShards},
    Bounds{"graph.workers_per_shard", 0, 64},
    Bounds{"rings.capacity", 2, std::uint64_t{1} << 24},
    Bounds{"rings.batch_size", 1, std::uint64_t{1} << 24},
    Bounds{"rings.urgent_ratio", 1, 1024},
    Bounds{"backpressure.timeout_us", 0, 60'000'000},
    Bounds{"log.segment_bytes", 4096, std::uint64_t{1} << 30},
    Bounds{"log.retention_bytes", 0, std::uint64_t{1} << 50},
    Bounds{"idempotency.window", 0, std::uint64_t{1} << 24},
    Bounds{"retry.capacity", 1, std::uint64_t{1} << 24},
    Bounds{"wal.segment_bytes", 1 << 20, std::uint64_t{1} << 32},
    Bounds{"wal.interval_ms", 1, 60'000},
    Bounds{"wal.retention_bytes", 0, std::uint64_t{1} << 50},
    Bounds{"metrics.latency_sample_every", 0, std::uint64_t{1} << 24},
    Bounds{"watchdog.handler_ms", 0, 3'600'000},
};

constexpr const Bounds* find_bounds(std::string_view key) {
  for (const Bounds& b : kBounds) {
    if (b.key == key) return &b;
  }
  return nullptr;
}

// The range of a key without a documented upper bound: what the parser can hold.
constexpr Bounds bounds_of(std::string_view key) {
  const Bounds* b = find_bounds(key);
  return b != nullptr ? *b : Bounds{key, 0, std::numeric_limits<std::int64_t>::max()};
}

std::string out_of_range(std::string_view value, const Bounds& b) {
  return "out of range: " + std::string(value) + " (allowed " + std::to_string(b.lo) + ".." +
         std::to_string(b.hi) + ")";
}

// Reports a problem of the node being stored (an array element names its own line).
using Report = std::function<void(const toml::node& where, std::string why)>;

// One accepted key, declared once: how to store a TOML node into EngineConfig (every problem
// goes to `report`) and how to write the field back as a TOML value (config_to_toml()). Its
// checks against other keys live in check_config().
struct KeySpec {
  std::string_view key;  // dotted
  std::function<void(const toml::node&, EngineConfig&, const Report&)> store;
  std::function<std::string(const EngineConfig&)> write;
};

std::string toml_quoted(std::string_view s) {
  std::string q(1, '"');
  for (const char ch : s) {
    if (ch == '"' || ch == '\\') q += '\\';  // a TOML basic string (paths may hold either)
    q += ch;
  }
  q += '"';
  return q;
}

std::string type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
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

// A non-negative integer the field can hold. A value the field cannot hold is reported here,
// with the documented range; one it can hold but outside the range is left to check_config().
template <typename T>
KeySpec uint_key(std::string_view key, T EngineConfig::*field) {
  const Bounds b = bounds_of(key);
  return {key,
          [field, b](const toml::node& n, EngineConfig& c, const Report& report) {
            const auto v = n.value_exact<std::int64_t>();
            if (!n.is_integer() || !v) {
              report(n, "expected a non-negative integer, got " + type_name(n) +
                            " (write it without quotes, e.g. 1024)");
              return;
            }
            if (*v < 0 || static_cast<std::uint64_t>(*v) > std::numeric_limits<T>::max()) {
              report(n, out_of_range(std::to_string(*v), b));
              return;
            }
            c.*field = static_cast<T>(*v);
          },
          [field](const EngineConfig& c) { return std::to_string(c.*field); }};
}

KeySpec bool_key(std::string_view key, bool EngineConfig::*field) {
  return {key,
          [field](const toml::node& n, EngineConfig& c, const Report& report) {
            if (!n.is_boolean()) {
              report(n, "expected true or false, got " + type_name(n) + " (no quotes)");
              return;
            }
            c.*field = n.as_boolean()->get();
          },
          [field](const EngineConfig& c) { return std::string(c.*field ? "true" : "false"); }};
}

template <typename E, std::size_t N>
KeySpec enum_key(std::string_view key, E EngineConfig::*field,
                 std::array<std::pair<std::string_view, E>, N> words) {
  return {key,
          [field, words](const toml::node& n, EngineConfig& c, const Report& report) {
            std::string allowed;
            for (const auto& [w, e] : words) {
              allowed += (allowed.empty() ? "\"" : ", \"") + std::string(w) + "\"";
            }
            if (!n.is_string()) {
              report(n, "expected one of " + allowed + ", got " + type_name(n));
              return;
            }
            const std::string& s = n.as_string()->get();
            for (const auto& [w, e] : words) {
              if (s == w) {
                c.*field = e;
                return;
              }
            }
            report(n, "unknown value \"" + s + "\"; use one of " + allowed);
          },
          [field, words](const EngineConfig& c) {
            for (const auto& [w, e] : words) {
              if (c.*field == e) return toml_quoted(w);
            }
            return std::string("\"?\"");  // not reachable: every enumerator has a word
          }};
}

// Every bad element is reported (each on its own line), not only the first; the field is set
// only when all of them are good.
KeySpec core_list_key(std::string_view key, std::vector<int> EngineConfig::*field) {
  return {key,
          [field](const toml::node& n, EngineConfig& c, const Report& report) {
            const toml::array* arr = n.as_array();
            if (arr == nullptr) {
              report(n, "expected an array of core indexes, got " + type_name(n) +
                            " (e.g. [1, 2]; [] lets the planner choose)");
              return;
            }
            std::vector<int> cores;
            bool all_good = true;
            for (std::size_t i = 0; i < arr->size(); ++i) {
              const toml::node& e = *arr->get(i);
              const std::string where = "element [" + std::to_string(i) + "]: ";
              const auto v = e.value_exact<std::int64_t>();
              if (!e.is_integer() || !v) {
                report(e, where + "expected an integer core index, got " + type_name(e));
                all_good = false;
              } else if (*v < 0 || *v > std::numeric_limits<int>::max()) {
                report(e, where + "core index " + std::to_string(*v) + " is out of range (0.." +
                              std::to_string(std::numeric_limits<int>::max()) + ")");
                all_good = false;
              } else {
                cores.push_back(static_cast<int>(*v));
              }
            }
            if (all_good) c.*field = std::move(cores);
          },
          [field](const EngineConfig& c) {
            std::string s = "[";
            for (std::size_t i = 0; i < (c.*field).size(); ++i)
              s += (i != 0 ? ", " : "") + std::to_string((c.*field)[i]);
            return s + "]";
          }};
}

KeySpec string_key(std::string_view key, std::string EngineConfig::*field) {
  return {key,
          [field](const toml::node& n, EngineConfig& c, const Report& report) {
            if (!n.is_string()) {
              report(n, "expected a string in quotes, got " + type_name(n));
              return;
            }
            c.*field = n.as_string()->get();
          },
          [field](const EngineConfig& c) { return toml_quoted(c.*field); }};
}

template <typename Dur>
KeySpec duration_key(std::string_view key, Dur EngineConfig::*field) {
  const Bounds* b = find_bounds(key);  // null: no upper bound (0 = no limit)
  return {key,
          [field, b](const toml::node& n, EngineConfig& c, const Report& report) {
            const auto v = n.value_exact<std::int64_t>();
            if (!n.is_integer() || !v) {
              report(n, "expected a non-negative integer, got " + type_name(n));
              return;
            }
            if (*v < 0) {
              report(n, b != nullptr ? out_of_range(std::to_string(*v), *b)
                                     : "must not be negative (got " + std::to_string(*v) + ")");
              return;
            }
            c.*field = Dur{*v};
          },
          [field](const EngineConfig& c) { return std::to_string((c.*field).count()); }};
}

const std::vector<KeySpec>& key_specs() {
  using E = EngineConfig;
  static const std::vector<KeySpec> specs = {
      uint_key("engine.partitions", &E::partitions),
      uint_key("engine.max_producers", &E::max_producers),
      uint_key("engine.max_payload_bytes", &E::max_payload_bytes),
      uint_key("engine.max_topics", &E::max_topics),
      uint_key("shards.count", &E::shards),
      core_list_key("shards.cores", &E::shard_cores),
      bool_key("shards.exclusive_cores", &E::exclusive_cores),
      uint_key("graph.workers_per_shard", &E::graph_workers_per_shard),
      core_list_key("graph.cores", &E::graph_cores),
      uint_key("rings.capacity", &E::ring_capacity),
      uint_key("rings.batch_size", &E::batch_size),
      enum_key("rings.wait_strategy", &E::wait_strategy,
               std::array<std::pair<std::string_view, WaitStrategyKind>, 3>{
                   {{"busy_spin", WaitStrategyKind::busy_spin},
                    {"spin_yield", WaitStrategyKind::spin_yield},
                    {"park", WaitStrategyKind::park}}}),
      uint_key("rings.urgent_ratio", &E::urgent_ratio),
      enum_key("backpressure.policy", &E::backpressure,
               std::array<std::pair<std::string_view, BackpressurePolicy>, 3>{
                   {{"fail_fast", BackpressurePolicy::fail_fast},
                    {"spin", BackpressurePolicy::spin},
                    {"park", BackpressurePolicy::park}}}),
      duration_key("backpressure.timeout_us", &E::backpressure_timeout),
      enum_key("memory.numa", &E::numa,
               std::array<std::pair<std::string_view, NumaBinding>, 3>{
                   {{"off", NumaBinding::off},
                    {"on", NumaBinding::on},
                    {"auto", NumaBinding::automatic}}}),
      enum_key("memory.allocator", &E::allocator,
               std::array<std::pair<std::string_view, AllocatorKind>, 2>{
                   {{"system", AllocatorKind::system}, {"jemalloc", AllocatorKind::jemalloc}}}),
      uint_key("log.segment_bytes", &E::segment_bytes),
      uint_key("log.retention_bytes", &E::retention_bytes),
      duration_key("log.retention_age_ms", &E::retention_age),
      uint_key("idempotency.window", &E::idempotency_window),
      duration_key("idempotency.window_ms", &E::idempotency_window_age),
      uint_key("retry.capacity", &E::retry_capacity),
      enum_key("wal.mode", &E::wal_mode,
               std::array<std::pair<std::string_view, WalMode>, 4>{{{"off", WalMode::off},
                                                                    {"os", WalMode::os},
                                                                    {"interval", WalMode::interval},
                                                                    {"sync", WalMode::sync}}}),
      string_key("wal.dir", &E::wal_dir),
      uint_key("wal.segment_bytes", &E::wal_segment_bytes),
      duration_key("wal.interval_ms", &E::wal_interval),
      string_key("wal.key_file", &E::wal_key_file),
      string_key("wal.key_env", &E::wal_key_env),
      uint_key("wal.retention_bytes", &E::wal_retention_bytes),
      duration_key("wal.retention_age_ms", &E::wal_retention_age),
      duration_key("watchdog.handler_ms", &E::handler_watchdog),
      bool_key("affinity.pin_threads", &E::pin_threads),
      uint_key("metrics.latency_sample_every", &E::metrics_latency_sample_every),
  };
  return specs;
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> prev(b.size() + 1);
  std::vector<std::size_t> cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j)
    prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

// " (did you mean 'x'?)" when some candidate is close enough to be a typo, else the list.
std::string suggestion(std::string_view wrong, const std::vector<std::string>& candidates) {
  std::string best;
  std::size_t best_d = std::numeric_limits<std::size_t>::max();
  for (const auto& c : candidates) {
    // A bare name may be a key written outside its section: compare with the key part too.
    std::size_t d = edit_distance(wrong, c);
    if (wrong.find('.') == std::string_view::npos && c.find('.') != std::string::npos) {
      d = std::min(d, edit_distance(wrong, std::string_view(c).substr(c.find('.') + 1)));
    }
    if (d < best_d) {
      best_d = d;
      best = c;
    }
  }
  if (!best.empty() && best_d <= std::max<std::size_t>(2, wrong.size() / 3)) {
    return "did you mean '" + best + "'?";
  }
  std::string all;
  for (const auto& c : candidates)
    all += (all.empty() ? "" : ", ") + c;
  return "valid: " + all;
}

std::vector<std::string> sections() {
  std::vector<std::string> out;
  for (const auto& s : key_specs()) {
    const std::string sec(s.key.substr(0, s.key.find('.')));
    if (std::find(out.begin(), out.end(), sec) == out.end()) out.push_back(sec);
  }
  return out;
}

int line_of(const toml::node& n) {
  return static_cast<int>(n.source().begin.line);
}

std::string_view trim(std::string_view s) {
  const auto first = s.find_first_not_of(" \t\r");
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(" \t\r") - first + 1);
}

// The dotted key written on 1-based `line` of `text` ("engine.partitions" for `partitions = ...`
// under [engine]), or "" when that line holds no plain `key = value`. A syntax error (e.g. an
// integer TOML cannot hold) stops the parser before it builds any node, so this names its key.
std::string key_on_line(std::string_view text, int line) {
  std::string section;
  int n = 0;
  while (!text.empty()) {
    const auto eol = text.find('\n');
    const std::string_view l = trim(text.substr(0, eol));
    text = eol == std::string_view::npos ? std::string_view{} : text.substr(eol + 1);
    ++n;
    if (l.size() > 2 && l.front() == '[' && l[1] != '[' && l.find(']') != std::string_view::npos) {
      section = std::string(trim(l.substr(1, l.find(']') - 1)));
    }
    if (n < line) continue;
    const auto eq = l.find('=');
    if (eq == std::string_view::npos || l.front() == '#') return {};
    const std::string_view key = trim(l.substr(0, eq));
    const bool bare = !key.empty() && std::all_of(key.begin(), key.end(), [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '_' || c == '-' || c == '.';
    });
    if (!bare) return {};
    return section.empty() ? std::string(key) : section + "." + std::string(key);
  }
  return {};
}

}  // namespace

const std::vector<std::string_view>& known_config_keys() {
  static const std::vector<std::string_view> keys = [] {
    std::vector<std::string_view> k;
    for (const auto& s : key_specs())
      k.push_back(s.key);
    return k;
  }();
  return keys;
}

namespace {
/// Every setting as (dotted key, TOML value), in key_specs() (= configs/default.toml) order.
std::vector<std::pair<std::string_view, std::string>> settings(const EngineConfig& c) {
  std::vector<std::pair<std::string_view, std::string>> out;
  out.reserve(key_specs().size());
  for (const KeySpec& k : key_specs())
    out.emplace_back(k.key, k.write(c));
  return out;
}
}  // namespace

std::string config_to_toml(const EngineConfig& cfg, std::string_view header) {
  std::string out(header);
  if (!out.empty() && out.back() != '\n') out += '\n';
  std::string_view section;
  for (const auto& [key, value] : settings(cfg)) {
    const std::size_t dot = key.find('.');
    const std::string_view sec = key.substr(0, dot);
    if (sec != section) {
      if (!out.empty()) out += '\n';
      out += "[" + std::string(sec) + "]\n";
      section = sec;
    }
    out += std::string(key.substr(dot + 1)) + " = " + value + "\n";
  }
  return out;
}

bool configs_equal(const EngineConfig& a, const EngineConfig& b) {
  return settings(a) == settings(b);
}

std::string config_diff(const EngineConfig& from, const EngineConfig& to) {
  const auto a = settings(from);
  const auto b = settings(to);
  std::string out;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].second != b[i].second) {
      out += std::string(a[i].first) + ": " + a[i].second + " -> " + b[i].second + "\n";
    }
  }
  return out;
}

EngineConfig parse_config(std::string_view toml_text, std::string_view source_name) {
  std::vector<ConfigIssue> issues;
  EngineConfig cfg = parse_config_partial(toml_text, source_name, issues);
  if (!issues.empty()) throw ConfigError(std::move(issues));
  return cfg;
}

EngineConfig parse_config_partial(std::string_view toml_text, std::string_view source_name,
                                  std::vector<ConfigIssue>& issues) {
  EngineConfig cfg;
  cfg.source = std::string(source_name);
  const std::size_t first_new = issues.size();
  auto issue = [&](int line, std::string key, std::string msg) {
    issues.push_back(ConfigIssue{cfg.source, line, std::move(key), std::move(msg)});
  };

  toml::table root;
  try {
    root = toml::parse(toml_text, source_name);
  } catch (const toml::parse_error& e) {
    const int line = static_cast<int>(e.source().begin.line);
    issue(line, key_on_line(toml_text, line), "TOML syntax error: " + std::string(e.description()));
    return cfg;
  }

  const std::vector<std::string> section_names = sections();
  std::vector<std::string> all_keys;
  for (const auto& s : key_specs())
    all_keys.emplace_back(s.key);

  for (const auto& [sec_key, sec_node] : root) {
    const std::string sec(sec_key.str());
    const int sec_line = line_of(sec_node);
    if (std::find(section_names.begin(), section_names.end(), sec) == section_names.end()) {
      // A top-level key that should be inside a section reads "did you mean 'rings.capacity'?".
      const bool is_table = sec_node.is_table();
      issue(sec_line, sec,
            std::string(is_table ? "unknown section [" + sec + "]" : "unknown top-level key") +
                "; " + suggestion(sec, is_table ? section_names : all_keys));
      continue;
    }
    const toml::table* table = sec_node.as_table();
    if (table == nullptr) {
      issue(sec_line, sec,
            std::string("'")
                    .append(sec)
                    .append("' must be a section ([")
                    .append(sec)
                    .append("]), got ") +
                type_name(sec_node));
      continue;
    }
    cfg.key_lines[sec] = sec_line;
    for (const auto& [key, node] : *table) {
      const std::string dotted = sec + "." + std::string(key.str());
      const int line = line_of(node);
      const auto spec = std::find_if(key_specs().begin(), key_specs().end(),
                                     [&](const KeySpec& s) { return s.key == dotted; });
      if (spec == key_specs().end()) {
        issue(line, dotted, "unknown key; " + suggestion(dotted, all_keys));
        continue;
      }
      cfg.key_lines[dotted] = line;
      spec->store(node, cfg, [&](const toml::node& where, std::string why) {
        issue(line_of(where) > 0 ? line_of(where) : line, dotted, std::move(why));
      });
    }
  }
  // toml++ tables iterate in key order; report in file order.
  std::stable_sort(issues.begin() + static_cast<std::ptrdiff_t>(first_new), issues.end(),
                   [](const ConfigIssue& a, const ConfigIssue& b) { return a.line < b.line; });
  return cfg;
}

namespace {

std::string file_kind(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "a special file";
}

// Closes a file descriptor on every path out of read_config_file().
struct FdCloser {
  int fd;
  explicit FdCloser(int f) noexcept : fd(f) {}
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;
  ~FdCloser() { ::close(fd); }
};

}  // namespace

std::string read_config_file(const std::filesystem::path& file) {
  const auto fail = [&](std::string why) {
    throw ConfigError(ConfigIssue{file.string(), 0, {}, std::move(why)});
  };
  const auto os_error = [](int err) { return std::generic_category().message(err); };
  const std::string limit = "1 MiB (" + std::to_string(kMaxConfigFileBytes) + " bytes)";
  const auto not_regular = [&](mode_t mode) {
    return "is " + file_kind(mode) + ", not a regular file; give the path of a TOML config file";
  };

  // stat() first: opening a FIFO for reading blocks until a writer comes, and a device never
  // ends, so only a regular file is opened at all.
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) {
    const int err = errno;
    if (err == ENOENT || err == ENOTDIR) fail("no such file (check the path)");
    if (err == EACCES) fail("cannot read the file (check its permissions)");
    fail("cannot read the file: " + os_error(err));
  }
  if (!S_ISREG(st.st_mode)) fail(not_regular(st.st_mode));
  if (static_cast<std::uint64_t>(st.st_size) > kMaxConfigFileBytes) {
    fail("is " + std::to_string(st.st_size) + " bytes; a config file may be at most " + limit);
  }
  // O_NONBLOCK: should the path have become a FIFO since stat(), open() must still not wait;
  // fstat() then refuses it.
  const int fd = ::open(file.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    const int err = errno;
    if (err == EACCES) fail("cannot read the file (check its permissions)");
    fail("cannot open the file: " + os_error(err));
  }
  const FdCloser closer{fd};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) fail(not_regular(st.st_mode));

  // Read at most one byte past the limit: a file that grew since stat() is refused, not read
  // without bound.
  std::string text(kMaxConfigFileBytes + 1, '\0');
  std::size_t got = 0;
  while (got < text.size()) {
    const ssize_t n = ::read(fd, text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail("cannot read the file: " + os_error(errno));
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  if (got > kMaxConfigFileBytes)
    fail("is larger than " + limit + ", the most a config file may be");
  text.resize(got);
  return text;
}

EngineConfig load_config(const std::filesystem::path& file) {
  return parse_config(read_config_file(file), file.string());
}

// ---------------------------------------------------------------------------------------------
// Checking

namespace {

/// Bytes a log record needs besides its payload (header, key, alignment): kept generous so a
/// max-size payload always fits a segment whatever the log's exact header is.
constexpr std::uint64_t kRecordOverhead = 256;

std::uint64_t next_pow2(std::uint64_t v) {
  std::uint64_t p = 1;
  while (p < v && p < (std::uint64_t{1} << 62))
    p <<= 1;
  return p;
}

}  // namespace

std::vector<ConfigIssue> check_config(const EngineConfig& cfg, const Topology& topo) {
  std::vector<ConfigIssue> issues;
  auto issue = [&](std::string_view key, std::string msg) {
    issues.push_back(ConfigIssue{cfg.source, cfg.line_of(key), std::string(key), std::move(msg)});
  };
  // The documented range of `key` (kBounds), in the parser's words.
  auto range = [&](std::string_view key, std::uint64_t v) {
    const Bounds b = bounds_of(key);
    if (v < b.lo || v > b.hi) {
      issue(key, out_of_range(std::to_string(v), b));
      return false;
    }
    return true;
  };

  // [engine]
  range("engine.partitions", cfg.partitions);
  range("engine.max_producers", cfg.max_producers);
  if (cfg.max_payload_bytes > kMaxPayloadBytes) {
    issue("engine.max_payload_bytes", std::to_string(cfg.max_payload_bytes) + " is more than the " +
                                          std::to_string(kMaxPayloadBytes) +
                                          " bytes an event carries inline; lower it (and "
                                          "publish a reference to larger data)");
  } else {
    range("engine.max_payload_bytes", cfg.max_payload_bytes);
  }
  range("engine.max_topics", cfg.max_topics);

  // [shards]
  const bool shards_ok = range("shards.count", cfg.shards);
  if (shards_ok && cfg.partitions >= 1 && cfg.shards > cfg.partitions) {
    issue("shards.count", std::to_string(cfg.shards) + " shards but only " +
                              std::to_string(cfg.partitions) +
                              " partitions: a shard would own none; raise engine.partitions to "
                              "at least " +
                              std::to_string(cfg.shards) + " or lower shards.count");
  }
  const int n_cores = static_cast<int>(topo.cores().size());
  auto check_cores_exist = [&](std::string_view key, const std::vector<int>& cores) {
    for (int c : cores) {
      if (!topo.has_core(c)) {
        issue(key, "core " + std::to_string(c) + " does not exist on " + topo.description() +
                       " (cores 0.." + std::to_string(n_cores - 1) +
                       "); see `ringflow-topo` for the valid core indexes");
      }
    }
  };
  if (!cfg.shard_cores.empty()) {
    if (cfg.shard_cores.size() != cfg.shards) {
      issue("shards.cores", "lists " + std::to_string(cfg.shard_cores.size()) +
                                " core(s) but shards.count = " + std::to_string(cfg.shards) +
                                "; give exactly one core per shard, or [] to let the planner "
                                "choose");
    }
    check_cores_exist("shards.cores", cfg.shard_cores);
  }

  // [graph]
  const bool workers_ok = range("graph.workers_per_shard", cfg.graph_workers_per_shard);
  const std::uint64_t n_graph = std::uint64_t{cfg.shards} * cfg.graph_workers_per_shard;
  if (!cfg.graph_cores.empty()) {
    if (workers_ok && shards_ok && cfg.graph_cores.size() != n_graph) {
      issue("graph.cores",
            "lists " + std::to_string(cfg.graph_cores.size()) +
                " core(s) but shards.count x graph.workers_per_shard = " + std::to_string(n_graph) +
                "; give one core per graph worker (shard 0's workers first), "
                "or [] to let the planner choose");
    }
    check_cores_exist("graph.cores", cfg.graph_cores);
  }

  // Exclusive cores: no two pinned roles on one core, and enough cores for every role.
  if (cfg.exclusive_cores && cfg.pin_threads && shards_ok && workers_ok) {
    std::map<int, std::string> owner;
    auto claim = [&](std::string_view key, int core, const std::string& role) {
      if (!topo.has_core(core)) return;
      const auto [it, inserted] = owner.emplace(core, role);
      if (!inserted) {
        issue(key, "core " + std::to_string(core) + " is given to both " + it->second + " and " +
                       role +
                       " but shards.exclusive_cores = true; use distinct cores or set "
                       "exclusive_cores = false");
      }
    };
    for (std::size_t i = 0; i < cfg.shard_cores.size() && i < cfg.shards; ++i) {
      claim("shards.cores", cfg.shard_cores[i], "shard " + std::to_string(i));
    }
    for (std::size_t i = 0; i < cfg.graph_cores.size() && i < n_graph; ++i) {
      claim("graph.cores", cfg.graph_cores[i],
            "graph worker " + std::to_string(i / cfg.graph_workers_per_shard) + "." +
                std::to_string(i % cfg.graph_workers_per_shard));
    }
    const std::uint64_t roles = cfg.shards + n_graph;
    if (roles > static_cast<std::uint64_t>(n_cores)) {
      issue("shards.exclusive_cores",
            std::to_string(roles) + " pinned threads (" + std::to_string(cfg.shards) +
                " shards + " + std::to_string(n_graph) + " graph workers) need " +
                std::to_string(roles) + " exclusive cores but " + topo.description() + " has " +
                std::to_string(n_cores) + "; set exclusive_cores = false or use fewer threads");
    }
  }

  // [rings]
  if (range("rings.capacity", cfg.ring_capacity) &&
      (cfg.ring_capacity & (cfg.ring_capacity - 1)) != 0) {
    issue("rings.capacity", std::to_string(cfg.ring_capacity) + " is not a power of two; use " +
                                std::to_string(next_pow2(cfg.ring_capacity)) +
                                " (the next one up) or " +
                                std::to_string(next_pow2(cfg.ring_capacity) / 2));
  }
  const bool batch_ok = range("rings.batch_size", cfg.batch_size);
  if (batch_ok && cfg.batch_size > cfg.ring_capacity) {
    issue("rings.batch_size", std::to_string(cfg.batch_size) + " is larger than rings.capacity (" +
                                  std::to_string(cfg.ring_capacity) +
                                  "); a batch cannot exceed the ring; use at most " +
                                  std::to_string(cfg.ring_capacity));
  }
  range("rings.urgent_ratio", cfg.urgent_ratio);

  // [backpressure]
  const auto timeout = cfg.backpressure_timeout.count();
  const Bounds timeout_bounds = bounds_of("backpressure.timeout_us");
  if (timeout < 0 || static_cast<std::uint64_t>(timeout) > timeout_bounds.hi) {
    issue("backpressure.timeout_us", out_of_range(std::to_string(timeout), timeout_bounds));
  } else if (timeout == 0 && cfg.backpressure != BackpressurePolicy::fail_fast) {
    issue("backpressure.timeout_us",
          "0 with policy \"" + std::string(to_string(cfg.backpressure)) +
              "\" would never wait; give a timeout > 0 or use policy = \"fail_fast\"");
  }

  // [log]
  const bool seg_ok = range("log.segment_bytes", cfg.segment_bytes);
  if (range("log.retention_bytes", cfg.retention_bytes) && seg_ok &&
      cfg.retention_bytes < 2 * cfg.segment_bytes) {
    issue("log.retention_bytes",
          std::to_string(cfg.retention_bytes) + " holds fewer than two segments of " +
              std::to_string(cfg.segment_bytes) +
              " bytes; retention reuses the oldest segment while the newest fills, so it needs "
              "at least two: raise retention_bytes to " +
              std::to_string(2 * cfg.segment_bytes) + " or lower log.segment_bytes");
  }
  // A shard appends a whole batch before the pipeline runs, and a segment may not be reused
  // while the batch's events are being processed: a segment must hold a full batch of the
  // largest records.
  const std::uint64_t batch_bytes =
      std::uint64_t{PartitionLog::kMaxRecordBytes} * std::max<std::uint64_t>(cfg.batch_size, 1);
  if (seg_ok && batch_ok && cfg.segment_bytes < batch_bytes) {
    issue("log.segment_bytes", std::to_string(cfg.segment_bytes) +
                                   " cannot hold one batch of the largest records (" +
                                   std::to_string(batch_bytes) + " bytes = rings.batch_size " +
                                   std::to_string(cfg.batch_size) + " x " +
                                   std::to_string(PartitionLog::kMaxRecordBytes) +
                                   "): raise segment_bytes or lower rings.batch_size");
  }
  if (seg_ok && cfg.max_payload_bytes + kRecordOverhead > cfg.segment_bytes) {
    issue("engine.max_payload_bytes",
          std::to_string(cfg.max_payload_bytes) + " bytes plus a " +
              std::to_string(kRecordOverhead) +
              "-byte record header does not fit in one log "
              "segment (log.segment_bytes = " +
              std::to_string(cfg.segment_bytes) +
              "); lower max_payload_bytes or raise segment_bytes to at least " +
              std::to_string(cfg.max_payload_bytes + kRecordOverhead));
  }
  range("retry.capacity", cfg.retry_capacity);
  range("metrics.latency_sample_every", cfg.metrics_latency_sample_every);
  range("idempotency.window", cfg.idempotency_window);
  if (cfg.idempotency_window_age.count() < 0) {
    issue("idempotency.window_ms", "must not be negative (0 = no age limit)");
  }
  if (cfg.retention_age.count() < 0) {
    issue("log.retention_age_ms", "must not be negative (0 = no age limit)");
  }

  // [wal]
  if (cfg.wal_mode != WalMode::off) {
    if (cfg.wal_dir.empty()) {
      issue("wal.mode", "\"" + std::string(to_string(cfg.wal_mode)) +
                            "\" needs wal.dir (the directory holding the log files)");
    }
    range("wal.segment_bytes", cfg.wal_segment_bytes);
    const Bounds ib = bounds_of("wal.interval_ms");
    const auto ms = cfg.wal_interval.count();
    if (ms < static_cast<std::int64_t>(ib.lo) || static_cast<std::uint64_t>(ms) > ib.hi) {
      issue("wal.interval_ms", out_of_range(std::to_string(ms), ib));
    }
    if (range("wal.retention_bytes", cfg.wal_retention_bytes) && cfg.wal_retention_bytes != 0 &&
        cfg.wal_retention_bytes < 2 * std::uint64_t{cfg.wal_segment_bytes}) {
      issue("wal.retention_bytes",
            std::to_string(cfg.wal_retention_bytes) + " holds fewer than two segment files of " +
                std::to_string(cfg.wal_segment_bytes) +
                " bytes (the one being written is never deleted): use 0 to keep everything, or "
                "at least " +
                std::to_string(2 * std::uint64_t{cfg.wal_segment_bytes}));
    }
    if (cfg.wal_retention_age.count() < 0) {
      issue("wal.retention_age_ms", "must not be negative (0 = no age limit)");
    }
    if (!cfg.wal_key_file.empty() && !cfg.wal_key_env.empty()) {
      issue("wal.key_file",
            "give the encryption key either as wal.key_file or as wal.key_env, "
            "not both");
    }
  } else if (!cfg.wal_key_file.empty() || !cfg.wal_key_env.empty()) {
    issue("wal.mode",
          "a key is set (wal.key_file/wal.key_env) but wal.mode is \"off\": nothing "
          "would be written; set a mode or remove the key");
  }
  const auto watchdog = cfg.handler_watchdog.count();
  const Bounds watchdog_bounds = bounds_of("watchdog.handler_ms");
  if (watchdog < 0 || static_cast<std::uint64_t>(watchdog) > watchdog_bounds.hi) {
    issue("watchdog.handler_ms", out_of_range(std::to_string(watchdog), watchdog_bounds));
  }
  return issues;
}

void validate(const EngineConfig& cfg, const Topology& topo) {
  auto issues = check_config(cfg, topo);
  if (!issues.empty()) throw ConfigError(std::move(issues));
}

}  // namespace ringflow
