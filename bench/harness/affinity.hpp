#pragma once
// Thread placement for the harness and the facts about the machine that go into meta.json.

#include <string>
#include <vector>

namespace ringflow::bench {

/// Pins the calling thread to `core` (pthread_setaffinity_np). Returns an empty string on
/// success, else the reason (e.g. "core 3 does not exist: 2 online cores").
[[nodiscard]] std::string pin_current_thread(int core);

/// Cores the process may run on (its affinity mask at start-up, before any pinning), in order.
[[nodiscard]] std::vector<int> usable_cores();

/// "model name" from /proc/cpuinfo, or "unknown".
[[nodiscard]] std::string cpu_model();

}  // namespace ringflow::bench
