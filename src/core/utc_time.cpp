#include "internal/utc_time.hpp"

#include <ctime>

namespace kiln::internal {

std::string utc_now(const char* format) {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  if (std::strftime(buf, sizeof buf, format, &tm) == 0) return {};
  return buf;
}

}  // namespace kiln::internal
