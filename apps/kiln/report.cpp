// kiln report: (re)builds a run's report.html, or the comparison of several runs
// (kiln::report::write_report), with drift snapshots in a single run's report.
#include <cstdio>
#include <filesystem>
#include <string>

#include "commands.hpp"
#include "kiln/report/report.hpp"

namespace kiln_cli {

int run_report(const ReportArgs& args) {
  if (!args.drift.empty() && args.run_dirs.size() > 1) {
    std::fprintf(stderr, "kiln: --drift goes with one run folder, not a comparison\n");
    return exit_usage;
  }
  std::string written;
  if (args.run_dirs.size() == 1 && args.out.empty() && args.drift.empty()) {
    written = kiln::report::write_report(args.run_dirs.front());
  } else {
    const std::string out =
        !args.out.empty() ? args.out
        : args.run_dirs.size() == 1
            ? (std::filesystem::path(args.run_dirs.front()) / "report.html").string()
            : std::string("comparison.html");
    written = kiln::report::write_report(args.run_dirs, out, {.drift_snapshots = args.drift});
  }
  std::printf("%s\n", written.c_str());
  return exit_ok;
}

}  // namespace kiln_cli
