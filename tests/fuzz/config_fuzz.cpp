// Fuzz target: TOML config text -> EngineConfig or ConfigError, nothing else.
//
// parse_config() must either return a config or throw ConfigError with at least one issue;
// parse_config_partial() must never throw and must agree with it (issues iff parse_config
// throws). A config that parses is then checked with check_config(), which never throws.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "fuzz_check.hpp"
#include "ringflow/config.hpp"
#include "ringflow/topology.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  bool parsed = false;
  ringflow::EngineConfig cfg;
  try {
    cfg = ringflow::parse_config(text, "fuzz.toml");
    parsed = true;
  } catch (const ringflow::ConfigError& e) {
    RINGFLOW_FUZZ_CHECK(!e.issues().empty(), "ConfigError without an issue");
    for (const auto& issue : e.issues()) {
      RINGFLOW_FUZZ_CHECK(!issue.message.empty(), "ConfigError issue without a message");
      (void)issue.to_string();
    }
  }
  // Anything else escaping parse_config() is a finding: libFuzzer reports the uncaught
  // exception as a crash (std::terminate -> abort).

  std::vector<ringflow::ConfigIssue> issues;
  const ringflow::EngineConfig partial = ringflow::parse_config_partial(text, "fuzz.toml", issues);
  RINGFLOW_FUZZ_CHECK(parsed == issues.empty(), "parse_config and parse_config_partial disagree");
  (void)partial;

  if (parsed) {
    const auto problems = ringflow::check_config(cfg, ringflow::Topology::machine());
    for (const auto& p : problems)
      (void)p.to_string();
  }
  return 0;
}
