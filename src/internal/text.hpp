// Internal: small text helpers for error messages.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace kiln::internal {

/// "'a', 'b' and 3 more": the first eight names quoted, then a count.
inline std::string quoted_list(const std::vector<std::string>& names) {
  constexpr std::size_t shown = 8;
  std::string out;
  for (std::size_t i = 0; i < names.size() && i < shown; ++i) {
    if (i > 0) out += ", ";
    out += "'" + names[i] + "'";
  }
  if (names.size() > shown) out += " and " + std::to_string(names.size() - shown) + " more";
  return out;
}

}  // namespace kiln::internal
