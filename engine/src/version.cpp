#include "ringflow/version.hpp"

namespace ringflow {

std::string_view version() noexcept { return RINGFLOW_VERSION_STRING; }

}  // namespace ringflow
