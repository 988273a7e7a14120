#include "harness/affinity.hpp"

#include <pthread.h>
#include <sched.h>

#include <cstring>
#include <fstream>

namespace ringflow::bench {

std::string pin_current_thread(int core) {
  if (core < 0) return {};  // "not pinned" is a valid plan; the caller reports it
  const auto cores = usable_cores();
  bool known = false;
  for (int c : cores)
    known = known || c == core;
  if (!known) {
    return "core " + std::to_string(core) + " is not usable by this process (" +
           std::to_string(cores.size()) + " usable cores)";
  }
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(static_cast<unsigned>(core), &set);
  const int rc = pthread_setaffinity_np(pthread_self(), sizeof set, &set);
  if (rc != 0) {
    return "pthread_setaffinity_np(core " + std::to_string(core) + "): " + std::strerror(rc);
  }
  return {};
}

namespace {

std::vector<int> read_affinity_mask() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> out;
  if (sched_getaffinity(0, sizeof set, &set) != 0) return out;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (CPU_ISSET(static_cast<unsigned>(c), &set)) out.push_back(c);
  }
  return out;
}

// Taken at static initialisation, before any thread of this process is pinned: a pinned thread's
// own mask (and that of threads it creates) is narrower than what the process may use.
const std::vector<int> g_process_cores = read_affinity_mask();

}  // namespace

std::vector<int> usable_cores() {
  return g_process_cores;
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) {
        auto v = line.substr(colon + 1);
        const auto first = v.find_first_not_of(" \t");
        return first == std::string::npos ? v : v.substr(first);
      }
    }
  }
  return "unknown";
}

}  // namespace ringflow::bench
