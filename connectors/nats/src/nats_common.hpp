#pragma once
// Internals shared by the connector's translation units.

#include <nats/nats.h>

#include <chrono>
#include <string>
#include <string_view>

#include "ringflow/nats/nats.hpp"

namespace ringflow::nats::detail {

/// "<call>: <status text> (<last error>)" plus the JetStream error code when there is one.
std::string error_text(std::string_view call, natsStatus s,
                       jsErrCode jerr = static_cast<jsErrCode>(0));
[[noreturn]] void fail(std::string_view call, natsStatus s,
                       jsErrCode jerr = static_cast<jsErrCode>(0));

inline natsConnection* nc_of(const Connection& c) {
  return static_cast<natsConnection*>(c.native_connection());
}
inline jsCtx* js_of(const Connection& c) {
  return static_cast<jsCtx*>(c.native_jetstream());
}

constexpr std::int64_t to_ns(std::chrono::nanoseconds d) noexcept {
  return d.count();
}

}  // namespace ringflow::nats::detail
