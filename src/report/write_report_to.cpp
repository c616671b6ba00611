// kiln::report::write_report(run_dirs, path): a report or comparison page written to a
// chosen file (kiln report RUN_A RUN_B --out FILE).
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "io/model_data.hpp"
#include "kiln/report/report.hpp"

namespace kiln::report {

std::string write_report(const std::vector<std::string>& run_dirs, const std::string& path,
                         const ReportOptions& options) {
  const std::string html = render_report(run_dirs, options);
  internal::write_file_atomically(
      path, std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(html.data()),
                                          html.size()));
  return path;
}

}  // namespace kiln::report
