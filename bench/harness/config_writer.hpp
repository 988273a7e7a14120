#pragma once
// EngineConfig -> TOML text, every key of configs/default.toml under the same names, that
// ringflow::parse_config() reads back to an equal config (configs_equal()). Used by
// `ringflow-bench --tune` to write the config it chose, and to hand each candidate to the
// ringflow system as a file, the same path a user's config takes.
//
//   std::string text = config_to_toml(cfg, "# tuned by ringflow-bench --tune ...\n");
//   assert(configs_equal(ringflow::parse_config(text), cfg));

#include <ringflow/config.hpp>

#include <string>
#include <string_view>

namespace ringflow::bench {

/// The full config as TOML: [engine] [shards] [graph] [rings] [backpressure] [memory] [log]
/// [affinity], every key written. `header` (comment lines, each starting with '#') goes first.
[[nodiscard]] std::string config_to_toml(const ringflow::EngineConfig& cfg,
                                         std::string_view header = {});

/// Every setting equal (source and key_lines, which say where a config came from, ignored).
[[nodiscard]] bool configs_equal(const ringflow::EngineConfig& a, const ringflow::EngineConfig& b);

/// One line per setting that differs, "rings.batch_size: 256 -> 64"; empty when equal.
[[nodiscard]] std::string config_diff(const ringflow::EngineConfig& from,
                                      const ringflow::EngineConfig& to);

}  // namespace ringflow::bench
