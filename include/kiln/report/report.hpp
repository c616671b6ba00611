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
// chart carries its series as data attributes so tests and scripts can read back exactly
// what was drawn.
//
// The page. One HTML file with inline CSS, inline SVG and a little inline script (hover
// tooltips; live polling): no network, no external scripts, fonts, images or style sheets.
// Its content is <main id="kiln-report" data-version="V">, V changing whenever a file of
// the run(s) changes (RunInfo::version; several runs: their versions joined with "-").
// Sections are <section id="curves|evaluation|layers|graph|data|explanations|run">, with
// data-present="1", or data-present="0" and a "not recorded" note when the run folder lacks
// the file (metrics.jsonl, evaluation.json, layers.jsonl, graph.json, data.json,
// explanations.json). A comparison has the sections runs, final, config and curves.
// Optional: <section id="drift" data-present="1" data-snapshots="N">, only when the run
// folder has drift snapshots (RUN_DIR/drift/*.json, sorted by name; an unreadable one is
// shown as an error) or ReportOptions::drift_snapshots names some: each drawn by
// kiln::mlops::drift_html (include/kiln/mlops/drift.hpp: chart "drift-K-psi" with the 0.1
// and 0.2 levels, "drift-K-hist-FEATURE" reference vs live histograms, with the reference
// from RUN_DIR/model.kiln's profile when the snapshot's content hash is that model's).
//
// Charts. Each is an <svg class="chart" data-chart="ID" data-kind="KIND">:
//   line       curves: <path data-series="NAME" data-x="X1 X2 ..." data-y="Y1 Y2 ...">,
//              numbers in the shortest text that reads back to the same double (as in the
//              JSONL files; bit-equal after strtod), non-finite values (and, on the log
//              axes of gradient norms and update ratios, values <= 0) left out. Paths carry
//              data-source ("step" or "epoch": which metrics.jsonl lines), data-run (the
//              run's name), and on layer charts data-tensor and data-stat.
//   bars       <rect data-label="..." data-value="V"> (data-error: the std whisker)
//   heatmap    <rect data-row="R" data-col="C" data-value="V">
//   heatstrip  per sampled step <g data-step="S"> of <rect data-value="COUNT"> (histograms)
//   graph      the model: <g data-layer="NAME" data-inputs="A B"> per layer, arrows between
// Chart IDs: "metric-NAME-step" (series NAME from step lines, or from epoch lines when step
// lines lack it; "val_NAME" from epoch lines, x = the epoch line's step), "metric-NAME-epoch"
// (NAME and val_NAME from epoch lines, x = epoch), "lr", "layer-L-activation" (mean, std,
// zero_fraction), "layer-L-activation-histogram", "layer-L-gradient-norm",
// "layer-L-weight-norm", "layer-L-update-ratio" (one series per tensor), "confusion",
// "model-graph", "class-balance", "permutation-importance", "attribution-I" (and
// "attribution-I-input" for images; "attribution-I-grid" and "-grid-input" too for tabular
// inputs whose k*k features are named like pixels: one prefix, then 0 .. k*k-1). In a comparison
// every run adds its series (data-run).
//
// Rules of thumb (the layers section says when one fires, as <div class="warning"
// data-warning="RULE" data-layer="L" data-tensor="T">, or <div class="ok"
// data-warning="none"> when none fires, and lists them):
//   vanishing-gradient  over the later half of the samples, the median of gradient norm /
//                       weight norm of a tensor is below 1e-7, or its median update ratio
//                       is below 1e-6;
//   exploding-gradient  a gradient norm above 1e3 or not finite, or every gradient norm of
//                       the last third of the samples over 10x the largest of the first
//                       third (at least 3 samples);
//   dead-relu           an activation whose op is relu with zero_fraction above 0.9 at the
//                       latest sample.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "kiln/export.hpp"

namespace kiln::report {

struct ReportOptions {
  /// The page title; empty: the run's name (or "Comparison of N runs").
  std::string title = {};
  /// For kiln board: the page fetches `live_url` (e.g. its own URL) every `live_poll_ms`
  /// and, when the answer holds an element id="kiln-report" whose data-version differs from
  /// its own, replaces its <main id="kiln-report"> content with that element's. So
  /// live_url must answer 200 with text/html that contains such an element: the page
  /// render_report (or render_index) gives for the same runs (and options) does. Other
  /// answers and network errors are ignored (the page keeps polling). Each request adds its
  /// current data-version as the query parameter `since` (live_url + "?since=V", or
  /// "&since=V" when live_url has a query), so a server can answer 204 No Content while
  /// nothing changed instead of sending the page again (kiln board does). Empty: a static
  /// page.
  std::string live_url = {};
  std::int64_t live_poll_ms = 1000;  ///< at least 100
  /// Drift snapshots (kiln::monitor::Monitor::write_snapshot) shown in a single run's
  /// report after those in RUN_DIR/drift/*.json; IoError / FormatError if one is unreadable.
  std::vector<std::string> drift_snapshots = {};
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
  /// Changes whenever a file of the run (or a drift snapshot in its drift/) changes (sizes and
  /// modification times).
  std::string version;
  /// The latest epoch line's values ("loss", "val_accuracy", "lr", ...; NaN for null).
  std::map<std::string, double> latest = {};
};
/// The runs directly inside `runs_dir` (folders with a run.json; `runs_dir` itself if it
/// is one), newest first. IoError if the folder cannot be read.
KILN_API std::vector<RunInfo> list_runs(const std::string& runs_dir);
/// The board's index page: the runs with their status and links ("run/FOLDER", FOLDER the
/// run folder's name, percent-encoded), and a form (GET "compare", checkboxes name="run"
/// value="FOLDER") to compare chosen runs. A run folder whose files cannot be read is
/// listed with status "unreadable".
KILN_API std::string render_index(const std::string& runs_dir, const ReportOptions& options = {});
/// `text` percent-encoded for a URL path segment or query value: RFC 3986 unreserved
/// characters (A-Z a-z 0-9 - _ . ~) kept, every other byte as %XX. render_index's links
/// are "run/" + url_encode(FOLDER); a board serves its run pages under that name.
KILN_API std::string url_encode(const std::string& text);

}  // namespace kiln::report
