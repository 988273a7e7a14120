// ringflow-bench: end-to-end benchmarks of ringflow against the baselines a user would
// otherwise write (mutex_queue, tbb_graph_direct), with the platform control measured in the
// same run. See bench/harness/runner.hpp and bench/scenarios/*.toml.
//
//   ringflow-bench --scenarios bench/scenarios/default.toml --config configs/default.toml
//                  --out results/my-run [--quick]

#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "harness/runner.hpp"
#include "harness/scenario.hpp"

int main(int argc, char** argv) {
  CLI::App app{
      "ringflow end-to-end benchmark: ringflow vs baselines, open-loop latency and "
      "throughput, with a platform control row"};
  std::string scenarios;
  std::string config;
  std::string out;
  bool quick = false;
  bool no_progress = false;
  app.add_option("--scenarios", scenarios,
                 "scenario file (TOML), e.g. bench/scenarios/default.toml")
      ->required()
      ->check(CLI::ExistingFile);
  app.add_option("--config", config, "engine config file for ringflow (TOML)")
      ->check(CLI::ExistingFile);
  app.add_option("--out", out, "output folder, e.g. results/my-run")->required();
  app.add_flag("--quick", quick, "~10x shorter runs, 1 repeat (a smoke check, not a measurement)");
  app.add_flag("--no-progress", no_progress, "no live progress line on stderr");
  CLI11_PARSE(app, argc, argv);

  ringflow::bench::RunnerOptions opts;
  opts.scenarios_file = scenarios;
  opts.engine_config = config;
  opts.out_dir = out;
  opts.quick = quick;
  opts.progress = !no_progress;
  opts.command_line.assign(argv, argv + argc);
  try {
    return ringflow::bench::run_benchmarks(opts);
  } catch (const ringflow::bench::ScenarioError& e) {
    std::fprintf(stderr, "ringflow-bench: bad scenario file: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ringflow-bench: %s\n", e.what());
    return 2;
  }
}
