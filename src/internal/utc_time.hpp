// Internal: the current UTC time as text, the one implementation of the time stamps the
// model files, run folders, drift reports, the registry and pipeline runs record.
#pragma once

#include <string>

#include "internal/internal_api.hpp"

namespace kiln::internal {

/// The current UTC time formatted by strftime `format` (default ISO 8601,
/// "YYYY-MM-DDTHH:MM:SSZ"; at most 31 characters).
KILN_INTERNAL_API std::string utc_now(const char* format = "%Y-%m-%dT%H:%M:%SZ");

}  // namespace kiln::internal
