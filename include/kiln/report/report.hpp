// The training report: run folders (docs/run-format.md) rendered as one self-contained
// HTML file with inline SVG charts (no network, no external scripts or fonts).
//
//   kiln::report::write_report("runs/iris");                   // runs/iris/report.html
//   std::string html = kiln::report::render_report({"runs/a", "runs/b"});   // a comparison
//
// One run: loss and metric curves against step and epoch, learning rate, per-layer
// statistics over time with plain-words warnings (vanishing or exploding gradients, dead
// ReLUs), the confusion matrix with per-class precision and recall, the model graph, the
// data summary and the explanations. Several runs: their curves overlaid, their final
// metrics side by side, and the hyper-parameters that differ.
//
// Every number a chart draws is also in the page as text (tooltips and tables), and each
// chart carries its series as data attributes (data-series, data-x, data-y) so tests and
// scripts can read back exactly what was drawn.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kiln/export.hpp"

namespace kiln::report {

struct ReportOptions {
  /// The page title; empty: the run's name (or "Comparison of N runs").
  std::string title = {};
  /// For kiln board: the page polls `live_url` (relative) every `live_poll_ms` and redraws
  /// when the runs change. Empty: a static page.
  std::string live_url = {};
  std::int64_t live_poll_ms = 1000;
};

/// The report of one run, or the comparison of several. Throws IoError / FormatError
/// naming the folder or file when a run folder is missing or unreadable.
KILN_API std::string render_report(const std::vector<std::string>& run_dirs,
                                   const ReportOptions& options = {});
/// Renders the report of one run into RUN_DIR/report.html (atomically); returns its path.
KILN_API std::string write_report(const std::string& run_dir);
/// Renders render_report(run_dirs, options) (one run's report, or the comparison of
/// several) into `path` (atomically); returns `path`. IoError naming it if unwritable.
KILN_API std::string write_report(const std::vector<std::string>& run_dirs, const std::string& path,
                                  const ReportOptions& options = {});

/// What a board shows for a folder of runs.
struct RunInfo {
  std::string dir;     ///< the run folder
  std::string name;    ///< run.json's name
  std::string status;  ///< "running", "completed", ...
  std::string started;
  std::int64_t epochs = 0;  ///< epoch lines so far
  std::int64_t steps = 0;   ///< the latest line's step
  /// Changes whenever a file of the run changes (sizes and modification times).
  std::string version;
};
/// The runs directly inside `runs_dir` (folders with a run.json; `runs_dir` itself if it
/// is one), newest first. IoError if the folder cannot be read.
KILN_API std::vector<RunInfo> list_runs(const std::string& runs_dir);
/// The board's index page: the runs with their status and links ("run/<name>"), and a
/// form to compare chosen runs.
KILN_API std::string render_index(const std::string& runs_dir, const ReportOptions& options = {});

}  // namespace kiln::report
