// kiln report: (re)builds a run's report.html, or the comparison of several runs
// (kiln::report::write_report).
#include <cstdio>
#include <string>

#include "commands.hpp"
#include "kiln/report/report.hpp"

namespace kiln_cli {

int run_report(const ReportArgs& args) {
  std::string written;
  if (args.run_dirs.size() == 1 && args.out.empty()) {
    written = kiln::report::write_report(args.run_dirs.front());
  } else {
    written = kiln::report::write_report(
        args.run_dirs, args.out.empty() ? std::string("comparison.html") : args.out);
  }
  std::printf("%s\n", written.c_str());
  return exit_ok;
}

}  // namespace kiln_cli
