#pragma once
// What a result file says about how it was made, shared by the runner (meta.json) and --tune
// (tuned.toml's header): the command, the time, the revision, the compiler and the machine.
// Also the one place the harness writes a JSON file.

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace ringflow::bench {

/// JSON objects keep their keys in insertion order, so result files read in a fixed order.
using Json = nlohmann::ordered_json;

/// "2026-12-02T10:55:00Z"
[[nodiscard]] std::string now_utc();
/// argv joined with spaces, each argument shell-quoted where it needs it (copy-paste runnable).
[[nodiscard]] std::string command_text(const std::vector<std::string>& argv);
/// HEAD of the source tree the harness was built from; "" when unknown (no git, no checkout).
[[nodiscard]] std::string git_revision();
/// Whether tracked files differ from HEAD; false when unknown.
[[nodiscard]] bool git_dirty();
/// "0,1"
[[nodiscard]] std::string cores_text(const std::vector<int>& cores);

/// The build and the machine: git_revision, git_dirty (null when the revision is unknown),
/// compiler, cxx_flags, build_type, tbb_version, cpu_model, cores_online, cores_usable.
[[nodiscard]] Json build_and_machine();

/// Writes `j` indented, with a final newline; throws std::runtime_error when it cannot.
void write_json(const std::filesystem::path& path, const Json& j);

}  // namespace ringflow::bench
