// ringflow-config check FILE [--synthetic DESC | --xml FILE]
// Prints every problem of an engine config on this machine (or the given topology), one per
// line as "file:line: key: reason; fix", or "ok". Exit 0 when valid, 1 when not, 2 on usage.

#include <CLI/CLI.hpp>

#include <algorithm>
#include <exception>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>

#include "ringflow/config.hpp"
#include "ringflow/topology.hpp"
#include "topology_choice.hpp"

int main(int argc, char** argv) {
  CLI::App app{"Check ringflow engine configs"};
  app.require_subcommand(1);
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
  CLI11_PARSE(app, argc, argv);

  std::optional<ringflow::Topology> other;
  if (!ringflow::tools::load_topology("ringflow-config", synthetic, xml, other)) return 2;
  const ringflow::Topology& topo = other ? *other : ringflow::Topology::machine();

  // Every problem at once: parse problems, then the range/relation/topology checks of what
  // parsed (a key that did not parse keeps its default and is not checked twice).
  std::vector<ringflow::ConfigIssue> issues;
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    std::cout << file << ": cannot read the file (check the path and permissions)\n";
    return 1;
  }
  std::ostringstream text;
  text << in.rdbuf();
  const ringflow::EngineConfig cfg = ringflow::parse_config_partial(text.str(), file, issues);
  const bool syntax_error = !issues.empty() && issues.front().key.empty() && cfg.key_lines.empty();
  if (!syntax_error) {
    for (auto& i : ringflow::check_config(cfg, topo))
      issues.push_back(std::move(i));
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
