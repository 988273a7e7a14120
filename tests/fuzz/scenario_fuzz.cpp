// Fuzz target: the benchmark scenario-file parser. TOML text -> ScenarioFile or ScenarioError,
// nothing else; every scenario that parses is runnable (non-empty systems, repeats >= 1) and
// make_quick() keeps it so.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_check.hpp"
#include "harness/scenario.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    ringflow::bench::ScenarioFile f = ringflow::bench::parse_scenarios(text, "fuzz.toml");
    for (const auto& s : f.scenarios) {
      RINGFLOW_FUZZ_CHECK(!s.systems.empty(), "a scenario without systems parsed");
      RINGFLOW_FUZZ_CHECK(s.repeats >= 1, "a scenario with no repeats parsed");
      RINGFLOW_FUZZ_CHECK(!s.name.empty(), "a scenario without a name parsed");
    }
    ringflow::bench::make_quick(f);
    for (const auto& s : f.scenarios) {
      RINGFLOW_FUZZ_CHECK(s.repeats >= 1, "make_quick left no repeats");
    }
  } catch (const ringflow::bench::ScenarioError& e) {
    RINGFLOW_FUZZ_CHECK(!e.reason().empty(), "ScenarioError without a reason");
  }
  return 0;
}
