#include "harness/tune.hpp"

#include <unistd.h>
#include <ringflow/topology.hpp>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <fstream>
#include <numeric>
#include <stdexcept>
#include <thread>

#include "harness/affinity.hpp"
#include "harness/clock.hpp"
#include "harness/meta.hpp"
#include "harness/platform_control.hpp"
#include "harness/report.hpp"
#include "harness/runner.hpp"
#include "harness/system.hpp"

namespace ringflow::bench {
namespace {

/// Text printed and kept for tune.txt.
class Out {
 public:
  void line(const char* fmt, ...) __attribute__((format(printf, 2, 3))) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    text_ += buf;
    text_ += '\n';
    std::printf("%s\n", buf);
    std::fflush(stdout);
  }
  void blank() {
    text_ += '\n';
    std::printf("\n");
  }
  [[nodiscard]] const std::string& text() const noexcept { return text_; }

 private:
  std::string text_;
};

std::string score_text(const TuneScore& s, TuneObjective obj) {
  if (!s.error.empty()) return "ERROR " + s.error;
  char buf[200];
  if (obj == TuneObjective::latency) {
    std::snprintf(buf, sizeof buf, "%9s %9s %9s %9s %8llu %3u",
                  format_ns(s.latency.value_at_percentile(50)).c_str(),
                  format_ns(s.latency.value_at_percentile(99)).c_str(),
                  format_ns(s.latency.value_at_percentile(99.9)).c_str(),
                  format_ns(s.latency.max()).c_str(), static_cast<unsigned long long>(s.lost),
                  s.windows);
  } else {
    const auto [lo, hi] = std::minmax_element(s.achieved_all.begin(), s.achieved_all.end());
    std::snprintf(buf, sizeof buf, "%9s %9s %9s %3u", format_rate(s.achieved_eps).c_str(),
                  s.achieved_all.empty() ? "-" : format_rate(*lo).c_str(),
                  s.achieved_all.empty() ? "-" : format_rate(*hi).c_str(), s.windows);
  }
  return buf;
}

std::string score_header(TuneObjective obj) {
  return obj == TuneObjective::latency ? "      p50       p99     p99.9       max     lost win"
                                       : "   events/s       min       max win";
}

std::string score_summary(const TuneScore& s, TuneObjective obj) {
  if (!s.error.empty()) return "failed: " + s.error;
  if (obj == TuneObjective::latency) {
    return "p99.9 " + format_ns(s.latency.value_at_percentile(99.9)) + ", p99 " +
           format_ns(s.latency.value_at_percentile(99)) + ", p50 " +
           format_ns(s.latency.value_at_percentile(50)) + ", lost " + std::to_string(s.lost) +
           " (" + std::to_string(s.windows) + " windows pooled)";
  }
  return format_rate(s.achieved_eps) + " events/s (median of " + std::to_string(s.windows) +
         " windows)";
}

void add_window(TuneScore& into, const TrialResult& r) {
  ++into.windows;
  if (!r.error.empty()) {
    into.error = r.error;
    return;
  }
  into.achieved_all.push_back(r.achieved_eps);
  into.achieved_eps = median(into.achieved_all);
  into.latency.merge(r.latency);
  into.lost += r.lost;
}

}  // namespace

std::vector<TunePlacement> tune_placements(int n_cores, int producer_core) {
  std::vector<int> free;
  for (int c = 0; c < n_cores; ++c) {
    if (c != producer_core) free.push_back(c);
  }
  std::vector<TunePlacement> out;
  if (free.empty()) {  // one core: everything shares it
    out.push_back({"1 shard on core " + std::to_string(producer_core) + " (the producer's)",
                   1,
                   {producer_core},
                   0,
                   {}});
    return out;
  }
  const int a = free[0];
  out.push_back({"1 shard on core " + std::to_string(a), 1, {a}, 0, {}});
  if (free.size() >= 2) {
    const int b = free[1];
    out.push_back(
        {"2 shards on cores " + std::to_string(a) + "," + std::to_string(b), 2, {a, b}, 0, {}});
    out.push_back(
        {"1 shard on core " + std::to_string(a) + " + 1 graph worker on core " + std::to_string(b),
         1,
         {a},
         1,
         {b}});
  } else {
    const int p = producer_core;
    out.push_back({"2 shards on cores " + std::to_string(a) + "," + std::to_string(p) +
                       " (shard 1 shares the producer's core)",
                   2,
                   {a, p},
                   0,
                   {}});
    out.push_back({"1 shard on core " + std::to_string(a) + " + 1 graph worker on core " +
                       std::to_string(p) + " (the producer's)",
                   1,
                   {a},
                   1,
                   {p}});
  }
  return out;
}

ringflow::EngineConfig with_placement(ringflow::EngineConfig base, const TunePlacement& p) {
  base.shards = p.shards;
  base.shard_cores = p.shard_cores;
  base.graph_workers_per_shard = p.workers_per_shard;
  base.graph_cores = p.graph_cores;
  base.partitions = std::max(base.partitions, p.shards);
  return base;
}

std::string candidate_label(const ringflow::EngineConfig& cfg, const std::string& placement) {
  return std::string(ringflow::to_string(cfg.wait_strategy)) + " batch " +
         std::to_string(cfg.batch_size) + " cap " + std::to_string(cfg.ring_capacity) + " | " +
         placement;
}

std::vector<TuneCandidate> tune_stage1(const ringflow::EngineConfig& base, const TuneSpace& space,
                                       TuneGrid grid) {
  std::vector<TuneCandidate> out;
  const std::vector<std::size_t> own_batch{base.batch_size};
  const std::vector<std::size_t> own_cap{base.ring_capacity};
  const bool full = grid == TuneGrid::full;
  for (const auto& p : space.placements) {
    for (const auto w : space.waits) {
      for (const std::size_t cap : full ? space.capacities : own_cap) {
        for (const std::size_t batch : full ? space.batch_sizes : own_batch) {
          if (batch > cap) continue;
          ringflow::EngineConfig c = with_placement(base, p);
          c.wait_strategy = w;
          c.ring_capacity = cap;
          c.batch_size = batch;
          out.push_back({candidate_label(c, p.label), c});
        }
      }
    }
  }
  return out;
}

std::vector<TuneCandidate> tune_stage2(const TuneCandidate& best, const TuneSpace& space) {
  const std::string placement = best.label.substr(best.label.find(" | ") + 3);
  std::vector<TuneCandidate> out;
  for (const std::size_t cap : space.capacities) {
    for (const std::size_t batch : space.batch_sizes) {
      if (batch > cap) continue;
      ringflow::EngineConfig c = best.cfg;
      c.ring_capacity = cap;
      c.batch_size = batch;
      out.push_back({candidate_label(c, placement), c});
    }
  }
  return out;
}

bool tune_better(const TuneScore& a, const TuneScore& b, TuneObjective objective) {
  const bool a_bad = !a.error.empty() || a.windows == 0;
  const bool b_bad = !b.error.empty() || b.windows == 0;
  if (a_bad != b_bad) return b_bad;
  if (a_bad) return false;
  if (objective == TuneObjective::throughput) return a.achieved_eps > b.achieved_eps;
  if ((a.lost == 0) != (b.lost == 0)) return a.lost == 0;
  for (const double p : {99.9, 99.0, 50.0}) {
    const std::uint64_t va = a.latency.value_at_percentile(p);
    const std::uint64_t vb = b.latency.value_at_percentile(p);
    if (va != vb) return va < vb;
  }
  return false;
}

int run_tune(const TuneOptions& opts) {
  const ringflow::EngineConfig base = ringflow::load_config(opts.base_config);
  const ringflow::Topology& topo = ringflow::Topology::machine();
  if (auto issues = ringflow::check_config(base, topo); !issues.empty()) {
    throw ringflow::ConfigError(std::move(issues));
  }
  const auto usable = usable_cores();
  if (usable.empty()) throw std::runtime_error("no usable cores");
  const int producer_core = usable.front();
  std::vector<int> worker_cores(usable.begin() + 1, usable.end());
  if (worker_cores.empty()) worker_cores = {producer_core};

  TuneSpace space;
  space.placements = tune_placements(static_cast<int>(topo.cores().size()), producer_core);
  const TuneObjective obj = opts.objective;
  const bool lat = obj == TuneObjective::latency;

  std::filesystem::create_directories(opts.out_dir);
  const std::filesystem::path tmp =
      std::filesystem::temp_directory_path() / ("ringflow-tune-" + std::to_string(getpid()));
  std::filesystem::create_directories(tmp);
  struct Cleanup {
    std::filesystem::path dir;
    ~Cleanup() {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    }
  } cleanup{tmp};

  Out out;
  const std::string started = now_utc();
  const std::string what =
      lat ? "open-loop latency at " + format_rate(opts.rate_eps) + " ev/s, " +
                std::to_string(opts.window_s).substr(0, 4) + " s windows after " +
                std::to_string(opts.warmup_s).substr(0, 4) + " s warm-up, ranked by p99.9 then p99"
          : "max throughput, " + std::to_string(opts.events) + " events per window after " +
                std::to_string(opts.warmup_events) + " warm-up, ranked by events/s";
  out.line("ringflow-bench --tune %s: objective %s (%s)", opts.base_config.string().c_str(),
           lat ? "latency" : "throughput", what.c_str());
  out.line("producer on core %d; placements tried:", producer_core);
  for (const auto& p : space.placements)
    out.line("  - %s", p.label.c_str());

  std::optional<ControlResult> control;
  if (lat) {
    ControlSpec cs;
    cs.rate_eps = opts.rate_eps;
    cs.warmup_events = static_cast<std::uint64_t>(opts.rate_eps * opts.warmup_s);
    cs.events = static_cast<std::uint64_t>(opts.rate_eps * opts.window_s);
    cs.sender_core = producer_core;
    cs.spinner_core = worker_cores.front();
    control = run_platform_control(cs);
    out.line("platform control (two-core, same rate and window): p50 %s, p99 %s, p99.9 %s, max %s",
             format_ns(control->latency.value_at_percentile(50)).c_str(),
             format_ns(control->latency.value_at_percentile(99)).c_str(),
             format_ns(control->latency.value_at_percentile(99.9)).c_str(),
             format_ns(control->latency.max()).c_str());
  }

  // Every measured candidate, by config text (a candidate met twice is measured once).
  struct Entry {
    TuneCandidate cand;
    TuneScore score;
    int stage = 0;
  };
  std::vector<Entry> all;
  unsigned file_no = 0;
  auto measure_once = [&](const TuneCandidate& c) -> TrialResult {
    const std::filesystem::path f = tmp / ("candidate-" + std::to_string(file_no++) + ".toml");
    {
      std::ofstream o(f, std::ios::binary | std::ios::trunc);
      o << config_to_toml(c.cfg, "# ringflow-bench --tune candidate: " + c.label + "\n");
      if (!o) throw std::runtime_error("cannot write " + f.string());
    }
    RunSpec spec;
    spec.mode = lat ? RunMode::latency : RunMode::max_throughput;
    spec.producers = 1;
    spec.subscribers = 1;
    spec.partitions = 0;  // the config's own
    spec.producer_cores = {producer_core};
    spec.worker_cores = worker_cores;
    spec.engine_config = f.string();
    std::string why;
    auto sys = make_system("ringflow", why);
    TrialResult r;
    if (!sys) {
      r.error = why;
      return r;
    }
    if (std::string u = sys->unsupported(spec); !u.empty()) {
      r.error = u;
      return r;
    }
    try {
      r = lat ? run_latency_trial(*sys, spec, opts.rate_eps, opts.window_s, opts.warmup_s)
              : run_throughput_trial(*sys, spec, opts.events, opts.warmup_events);
    } catch (const std::exception& e) {
      r.error = e.what();
    }
    return r;
  };
  int width = 20;  // the candidate column: as wide as the longest label
  for (const auto& c : tune_stage1(base, space, TuneGrid::full))
    width = std::max(width, static_cast<int>(c.label.size()));
  auto run_stage = [&](const std::vector<TuneCandidate>& cands, int stage, const char* title) {
    out.blank();
    out.line("stage %d: %s (%zu candidates)", stage, title, cands.size());
    out.line("  %-*s %s", width, "candidate", score_header(obj).c_str());
    for (const auto& c : cands) {
      const auto seen = std::find_if(
          all.begin(), all.end(), [&](const Entry& e) { return configs_equal(e.cand.cfg, c.cfg); });
      if (seen != all.end()) {
        out.line("  %-*s %s  (stage %d)", width, c.label.c_str(),
                 score_text(seen->score, obj).c_str(), seen->stage);
        continue;
      }
      Entry e{c, {}, stage};
      if (auto issues = ringflow::check_config(c.cfg, topo); !issues.empty()) {
        e.score.error = "invalid here: " + issues.front().to_string();
        e.score.windows = 1;
      } else {
        add_window(e.score, measure_once(c));
      }
      out.line("  %-*s %s", width, c.label.c_str(), score_text(e.score, obj).c_str());
      all.push_back(std::move(e));
    }
  };
  auto best_of = [&](int stage) -> const Entry* {
    const Entry* best = nullptr;
    for (const auto& e : all) {
      if ((stage == 0 || e.stage == stage) &&
          (best == nullptr || tune_better(e.score, best->score, obj))) {
        best = &e;
      }
    }
    return best;
  };

  const std::uint64_t t0 = now_ns();
  const std::string grid_text =
      opts.grid == TuneGrid::full
          ? "full grid: every wait_strategy x placement x batch_size x capacity"
          : "staged: (1) wait_strategy x placement at the base batch_size/capacity, (2) "
            "batch_size x capacity with the best of (1)";
  run_stage(tune_stage1(base, space, opts.grid), 1,
            opts.grid == TuneGrid::full ? "every combination" : "wait_strategy x placement");
  if (opts.grid == TuneGrid::staged) {
    const Entry* b1 = best_of(1);
    if (b1 != nullptr && b1->score.error.empty()) {
      run_stage(tune_stage2(b1->cand, space), 2,
                ("batch_size x capacity on: " + b1->cand.label).c_str());
    }
  }

  // Final: the best few, re-measured interleaved, ranked on everything measured.
  std::vector<std::size_t> order(all.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return tune_better(all[a].score, all[b].score, obj);
  });
  std::vector<std::size_t> finalists;
  for (const std::size_t i : order) {
    if (finalists.size() >= opts.finalists || !all[i].score.error.empty()) break;
    finalists.push_back(i);
  }
  if (finalists.empty()) {
    out.line("no candidate ran; nothing written");
    return 1;
  }
  out.blank();
  out.line("final: the %zu best re-measured %u more times, interleaved; pooled", finalists.size(),
           opts.confirm_rounds);
  for (unsigned round = 0; round < opts.confirm_rounds && finalists.size() > 1; ++round) {
    for (const std::size_t i : finalists)
      add_window(all[i].score, measure_once(all[i].cand));
  }
  std::stable_sort(finalists.begin(), finalists.end(), [&](std::size_t a, std::size_t b) {
    return tune_better(all[a].score, all[b].score, obj);
  });
  out.line("  %-4s %-*s %s", "rank", width, "candidate", score_header(obj).c_str());
  for (std::size_t k = 0; k < finalists.size(); ++k) {
    const Entry& e = all[finalists[k]];
    out.line("  %-4zu %-*s %s", k + 1, width, e.cand.label.c_str(),
             score_text(e.score, obj).c_str());
  }
  const double took = static_cast<double>(now_ns() - t0) / 1e9;
  out.blank();
  out.line("%zu candidates measured in %.0f s", all.size(), took);

  // tuned.toml
  const Entry& best = all[finalists.front()];
  const Entry* runner_up = finalists.size() > 1 ? &all[finalists[1]] : nullptr;
  const std::string cmd = command_text(opts.command_line);
  const std::string rev = git_revision();
  std::string header;
  auto h = [&](const std::string& s) { header += (s.empty() ? "#" : "# " + s) + "\n"; };
  h("ringflow engine config chosen by `ringflow-bench --tune` (every key written; same keys as");
  h("configs/default.toml). Check it with `ringflow-config check` before using it elsewhere.");
  h("");
  h("objective: " + std::string(lat ? "latency" : "throughput") + " -- " + what);
  h("command:   " + cmd);
  h("date:      " + started + "   git: " + (rev.empty() ? "unknown" : rev));
  h("machine:   " + cpu_model() + ", " + std::to_string(std::thread::hardware_concurrency()) +
    " cores online (usable " + cores_text(usable) + "); producer pinned to core " +
    std::to_string(producer_core));
  h("sweep:     " + grid_text + "; " + std::to_string(all.size()) + " candidates; the best " +
    std::to_string(finalists.size()) + " re-measured " + std::to_string(opts.confirm_rounds) +
    " more times, interleaved, in " + std::to_string(static_cast<int>(took)) + " s");
  h("chosen:    " + best.cand.label);
  h("           " + score_summary(best.score, obj));
  if (runner_up != nullptr) {
    h("runner-up: " + runner_up->cand.label);
    h("           " + score_summary(runner_up->score, obj));
  }
  if (control) {
    h("control:   platform_control (two-core) at the same rate, same window: p99 " +
      format_ns(control->latency.value_at_percentile(99)) + ", p99.9 " +
      format_ns(control->latency.value_at_percentile(99.9)));
  }
  std::string diff = config_diff(base, best.cand.cfg);
  h("changed from " + opts.base_config.string() + (diff.empty() ? ": nothing" : ":"));
  while (!diff.empty()) {
    const std::size_t nl = diff.find('\n');
    h("  " + diff.substr(0, nl));
    diff.erase(0, nl == std::string::npos ? diff.size() : nl + 1);
  }
  const std::string toml = config_to_toml(best.cand.cfg, header);
  // What is written must read back as what was measured.
  if (!configs_equal(ringflow::parse_config(toml, "tuned.toml"), best.cand.cfg)) {
    throw std::runtime_error("tuned.toml does not read back as the chosen config (writer bug)");
  }
  {
    std::ofstream o(opts.out_dir / "tuned.toml", std::ios::binary | std::ios::trunc);
    o << toml;
    if (!o) throw std::runtime_error("cannot write " + (opts.out_dir / "tuned.toml").string());
  }
  out.line("best: %s -> %s", best.cand.label.c_str(), (opts.out_dir / "tuned.toml").c_str());
  {
    std::ofstream o(opts.out_dir / "tune.txt", std::ios::binary | std::ios::trunc);
    o << out.text();
  }
  return 0;
}

}  // namespace ringflow::bench
