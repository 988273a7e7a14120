#pragma once

#include <string_view>

#define RINGFLOW_VERSION_MAJOR 0
#define RINGFLOW_VERSION_MINOR 1
#define RINGFLOW_VERSION_PATCH 0
#define RINGFLOW_VERSION_STRING "0.1.0"

namespace ringflow {

/// The library's version, "MAJOR.MINOR.PATCH".
std::string_view version() noexcept;

}  // namespace ringflow
