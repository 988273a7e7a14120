// ringflow-bench: end-to-end benchmarks of ringflow against the baselines a user would
// otherwise write (mutex_queue, tbb_graph_direct), with the platform control measured in the
// same run. See bench/harness/runner.hpp and bench/scenarios/*.toml.
//
//   ringflow-bench --scenarios bench/scenarios/default.toml --config configs/default.toml
//                  --out results/my-run [--quick]
//
// Tuning (bench/harness/tune.hpp): sweeps batch size, ring capacity, wait strategy and the
// placements this machine allows around CONFIG and writes the best as <out>/tuned.toml:
//
//   ringflow-bench --tune configs/default.toml --objective latency [--out results/local/tune]

#include <CLI/CLI.hpp>

#include <cmath>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "harness/runner.hpp"
#include "harness/scenario.hpp"
#include "harness/tune.hpp"
#include "ringflow/config.hpp"
#include "ringflow/version.hpp"

int main(int argc, char** argv) {
  CLI::App app{
      "ringflow end-to-end benchmark: ringflow vs baselines, open-loop latency and "
      "throughput, with a platform control row; or --tune an engine config"};
  std::string scenarios;
  std::string config;
  std::string out;
  bool quick = false;
  bool no_progress = false;
  std::string tune;
  auto objective = ringflow::bench::TuneObjective::latency;
  auto grid = ringflow::bench::TuneGrid::staged;
  ringflow::bench::TuneOptions topts;
  app.set_version_flag("--version", "ringflow-bench " + std::string(ringflow::version()));
  // A number > 0, named in plain words (CLI::PositiveNumber's message prints the largest
  // double as a 300-digit bound).
  const CLI::Validator positive(
      [](std::string& s) -> std::string {
        double v = 0;
        if (!CLI::detail::lexical_cast(s, v) || !std::isfinite(v) || v <= 0)
          return "must be a number > 0, got " + s;
        return {};
      },
      "NUMBER > 0");
  auto* scen_opt = app.add_option("--scenarios", scenarios,
                                  "scenario file (TOML), e.g. bench/scenarios/default.toml")
                       ->check(CLI::ExistingFile);
  app.add_option("--config", config, "engine config file for ringflow (TOML)")
      ->check(CLI::ExistingFile);
  app.add_option(
      "--out", out,
      "output folder, e.g. results/local/my-run (--tune: default results/local/tune-<objective>, "
      "ignored by git)");
  app.add_flag("--quick", quick, "~10x shorter runs, 1 repeat (a smoke check, not a measurement)");
  app.add_flag("--no-progress", no_progress, "no live progress line on stderr");
  auto* tune_opt =
      app.add_option("--tune", tune,
                     "tune this engine config (TOML) instead of running scenarios; writes "
                     "<out>/tuned.toml and <out>/tune.txt")
          ->check(CLI::ExistingFile)
          ->excludes(scen_opt);
  // Choices are parsed as words and mapped after parsing: a CheckedTransformer over the enums
  // would print their underlying bytes (NUL, 0x01) in --help and in its error messages.
  std::string objective_word = "latency";
  std::string grid_word = "staged";
  app.add_option("--objective", objective_word,
                 "--tune: latency (open loop at --tune-rate, rank by p99.9 then p99) or "
                 "throughput (max events/s)")
      ->check(CLI::IsMember({"latency", "throughput"}, CLI::ignore_case))
      ->capture_default_str()
      ->needs(tune_opt);
  app.add_option("--tune-grid", grid_word,
                 "--tune: staged (wait x placement, then batch x capacity; ~1-2 min) or full "
                 "(every combination; several minutes)")
      ->check(CLI::IsMember({"staged", "full"}, CLI::ignore_case))
      ->capture_default_str()
      ->needs(tune_opt);
  app.add_option("--tune-rate", topts.rate_eps, "--tune latency: offered events/s")
      ->capture_default_str()
      ->check(positive)
      ->needs(tune_opt);
  app.add_option("--tune-window", topts.window_s,
                 "--tune latency: seconds measured per candidate window")
      ->capture_default_str()
      ->check(positive)
      ->needs(tune_opt);
  CLI11_PARSE(app, argc, argv);
  objective = objective_word == "throughput" ? ringflow::bench::TuneObjective::throughput
                                             : ringflow::bench::TuneObjective::latency;
  grid = grid_word == "full" ? ringflow::bench::TuneGrid::full : ringflow::bench::TuneGrid::staged;

  try {
    if (!tune.empty()) {
      topts.base_config = tune;
      topts.objective = objective;
      topts.grid = grid;
      topts.out_dir =
          out.empty() ? std::string("results/local/tune-") +
                            (objective == ringflow::bench::TuneObjective::latency ? "latency"
                                                                                  : "throughput")
                      : out;
      topts.command_line.assign(argv, argv + argc);
      return ringflow::bench::run_tune(topts);
    }
    if (scenarios.empty() || out.empty()) {
      std::fprintf(stderr, "ringflow-bench: --scenarios and --out are required (or --tune)\n%s",
                   app.help().c_str());
      return 2;
    }
    ringflow::bench::RunnerOptions opts;
    opts.scenarios_file = scenarios;
    opts.engine_config = config;
    opts.out_dir = out;
    opts.quick = quick;
    opts.progress = !no_progress;
    opts.command_line.assign(argv, argv + argc);
    return ringflow::bench::run_benchmarks(opts);
  } catch (const ringflow::bench::ScenarioError& e) {
    std::fprintf(stderr, "ringflow-bench: bad scenario file: %s\n", e.what());
    return 2;
  } catch (const ringflow::ConfigError& e) {
    std::fprintf(stderr, "ringflow-bench: bad engine config, nothing was run: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ringflow-bench: %s\n", e.what());
    return 2;
  }
}
