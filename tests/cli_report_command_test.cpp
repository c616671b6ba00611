// `kiln report` as a user runs it (the built binary, KILN_CLI): one run folder recorded
// with kiln::report::RunRecorder -> RUN_DIR/report.html whose loss chart carries the
// logged values; two folders -> a comparison page (default comparison.html in the current
// folder, or --out); a missing folder -> exit code 4 naming it; no folder -> usage error.
#include <gtest/gtest.h>

#include <filesystem>
#include <regex>
#include <sstream>
#include <string>

#include "kiln/report/run_record.hpp"
#include "tests/support/cli_test_support.hpp"

namespace {

namespace fs = std::filesystem;

using kiln_test::CliResult;
using kiln_test::slurp;

class ReportCommand : public kiln_test::CliTest {
 protected:
  ReportCommand() : CliTest("kiln_cli_report_command_test_") {}

  /// A finished run in dir_/NAME with epoch losses `losses`.
  void record(const std::string& name, const std::vector<double>& losses, double lr) {
    kiln::report::RunRecorder rec({.dir = (dir_ / name).string(), .sample_every = 0});
    rec.set_config("{\"lr\": " + std::to_string(lr) + "}");
    for (std::size_t e = 0; e < losses.size(); ++e) {
      rec.log_epoch(static_cast<std::int64_t>(e), static_cast<std::int64_t>(10 * (e + 1)),
                    {{"loss", losses[e]}});
    }
    rec.finish();
  }
};

/// The numbers of the data-y attribute of the series `series` of the chart `chart` (the
/// report's charts carry their data, kiln/report/report.hpp).
std::vector<double> series_y(const std::string& html, const std::string& chart,
                             const std::string& series) {
  const auto at = html.find("data-chart=\"" + chart + "\"");
  if (at == std::string::npos) return {};
  const std::string svg = html.substr(at, html.find("</svg>", at) - at);
  std::smatch m;
  if (!std::regex_search(svg, m,
                         std::regex("data-series=\"" + series + "\"[^>]*data-y=\"([^\"]*)\""))) {
    return {};
  }
  std::vector<double> ys;
  std::istringstream in(m[1].str());
  for (double y; in >> y;) ys.push_back(y);
  return ys;
}

TEST_F(ReportCommand, OneRunWritesItsReport) {
  record("run-a", {0.75, 0.5, 0.375}, 0.1);
  const CliResult r = kiln("report run-a");
  ASSERT_EQ(r.rc, 0) << r.err;
  const fs::path report = dir_ / "run-a" / "report.html";
  EXPECT_EQ(r.out, report.lexically_relative(dir_).string() + "\n");
  ASSERT_TRUE(fs::exists(report));
  const std::string html = slurp(report);
  EXPECT_EQ(series_y(html, "metric-loss-epoch", "loss"), (std::vector<double>{0.75, 0.5, 0.375}));
  EXPECT_EQ(html.find(" data-live-url=\""), std::string::npos) << "a report file is static";
}

TEST_F(ReportCommand, SeveralRunsWriteAComparison) {
  record("run-a", {0.75, 0.5}, 0.1);
  record("run-b", {0.875, 0.25}, 0.01);
  CliResult r = kiln("report run-a run-b");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out, "comparison.html\n");
  const std::string html = slurp(dir_ / "comparison.html");
  EXPECT_NE(html.find("run-a"), std::string::npos);
  EXPECT_NE(html.find("run-b"), std::string::npos);

  r = kiln("report run-a run-b --out sub-out.html");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(slurp(dir_ / "sub-out.html"), html) << "the same runs render the same page";
}

TEST_F(ReportCommand, MissingFolderAndNoArguments) {
  record("run-a", {0.75}, 0.1);
  CliResult r = kiln("report no-such-run");
  EXPECT_EQ(r.rc, 4) << r.err;
  EXPECT_NE(r.err.find("no-such-run"), std::string::npos) << r.err;
  r = kiln("report run-a no-such-run --out c.html");
  EXPECT_EQ(r.rc, 4) << r.err;
  EXPECT_NE(r.err.find("no-such-run"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "c.html"));
  r = kiln("report");
  EXPECT_EQ(r.rc, 1) << r.err;
}

}  // namespace
