// ringflow-config check FILE [--synthetic DESC | --xml FILE]
// Prints every problem of an engine config on this machine (or the given topology), one per
// line as "file:line: key: reason; fix", or "ok". Exit 0 when valid, 1 when not (a file that is
// missing, not a regular file or over 1 MiB included), 2 on usage.

#include <CLI/CLI.hpp>

#include <algorithm>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "ringflow/config.hpp"
#include "ringflow/topology.hpp"
#include "ringflow/version.hpp"
#include "topology_choice.hpp"

int main(int argc, char** argv) {
  CLI::App app{"Check ringflow engine configs"};
  app.set_version_flag("--version", "ringflow-config " + std::string(ringflow::version()));
  auto* check = app.add_subcommand("check", "print every problem of a config, or ok");
  std::string file;
  std::string synthetic;
  std::string xml;
  check->add_option("file", file, "config file (TOML)")->required();
  auto* syn =
      check->add_option("--synthetic", synthetic,
                        "check against an hwloc synthetic topology instead of this machine");
  check->add_option("--xml", xml, "check against an hwloc XML topology")
      ->check(CLI::ExistingFile)
      ->excludes(syn);
  // Extras are collected (not a parse error) so that a wrong subcommand is named as one, not
  // reported as a missing subcommand.
  app.allow_extras();
  CLI11_PARSE(app, argc, argv);
  if (const std::vector<std::string> extra = app.remaining(); !extra.empty()) {
    const std::string& first = extra.front();
    if (!check->parsed() && first.rfind('-', 0) != 0) {
      std::cerr << "ringflow-config: unknown subcommand '" << first << "'; valid: check\n"
                << "Run with --help for more information.\n";
    } else {
      std::cerr << "ringflow-config: unexpected argument '" << first << "'\n"
                << "Run with --help for more information.\n";
    }
    return 2;
  }
  if (!check->parsed()) {
    std::cerr << "ringflow-config: a subcommand is required; valid: check\n"
              << "Run with --help for more information.\n";
    return 2;
  }

  std::optional<ringflow::Topology> other;
  if (!ringflow::tools::load_topology("ringflow-config", synthetic, xml, other)) return 2;
  const ringflow::Topology& topo = other ? *other : ringflow::Topology::machine();

  // Every problem at once: parse problems, then the range/relation/topology checks of what
  // parsed (a key that did not parse keeps its default and is not checked twice).
  std::vector<ringflow::ConfigIssue> issues;
  std::string text;
  try {
    text = ringflow::read_config_file(file);  // regular files up to 1 MiB only
  } catch (const ringflow::ConfigError& e) {
    issues = e.issues();
  }
  if (issues.empty()) {
    const ringflow::EngineConfig cfg = ringflow::parse_config_partial(text, file, issues);
    // Nothing parsed (a syntax error): the defaults are not the file's, so do not check them.
    const bool nothing_parsed = !issues.empty() && cfg.key_lines.empty();
    if (!nothing_parsed) {
      for (auto& i : ringflow::check_config(cfg, topo))
        issues.push_back(std::move(i));
    }
  }
  std::stable_sort(issues.begin(), issues.end(),
                   [](const ringflow::ConfigIssue& a, const ringflow::ConfigIssue& b) {
                     return a.line < b.line;
                   });
  if (issues.empty()) {
    std::cout << "ok: " << file << " is valid on " << topo.description() << "\n";
    return 0;
  }
  for (const auto& i : issues)
    std::cout << i.to_string() << "\n";
  std::cout << issues.size() << " problem(s) in " << file << "\n";
  return 1;
}
