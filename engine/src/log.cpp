#include "ringflow/log.hpp"

#include <cstdio>
#include <string>

namespace ringflow {

std::string_view to_string(LogLevel level) noexcept {
  switch (level) {
    case LogLevel::debug:
      return "debug";
    case LogLevel::info:
      return "info";
    case LogLevel::warn:
      return "warn";
    case LogLevel::error:
      return "error";
  }
  return "unknown";
}

LogSink stderr_log_sink(LogLevel min_level) {
  return [min_level](const LogRecord& r) {
    if (r.level < min_level) return;
    std::string line = "ringflow ";
    line.append(to_string(r.level)).append(" ").append(r.component).append(": ");
    line.append(r.message);
    if (r.suppressed != 0) {
      line.append(" (").append(std::to_string(r.suppressed)).append(" similar suppressed)");
    }
    line.push_back('\n');
    // One write per record: lines from several threads do not interleave.
    std::fwrite(line.data(), 1, line.size(), stderr);
  };
}

LogSink null_log_sink() {
  return [](const LogRecord&) {};
}

}  // namespace ringflow
