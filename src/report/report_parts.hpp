// Internal: the pieces the single-run report, the comparison and the board index share.
#pragma once

#include <string>
#include <vector>

#include "kiln/report/report.hpp"
#include "report/run_reader.hpp"

namespace kiln::report::internal {

/// The whole HTML document: inline CSS, `body` inside <main id="kiln-report"
/// data-version=VERSION>, the tooltip and (with options.live_url) polling script.
std::string page(const std::string& title, const std::string& version, const std::string& body,
                 const ReportOptions& options);

/// The logged values charted as curves: "loss" first, then the others by name; "val_X"
/// is drawn with X, "lr" has its own chart.
std::vector<std::string> metric_names(const std::vector<const RunData*>& runs);

/// The curve charts of the runs ("metric-<name>-step", "metric-<name>-epoch" and "lr"),
/// one colour per run when there are several.
std::string metric_charts(const std::vector<const RunData*>& runs);

/// A table cell holding a number: short text, the exact value in its title.
std::string number_cell(double v);

/// The status as a coloured badge.
std::string status_badge(const std::string& status);

/// A rule of thumb that fired on a run's per-layer statistics.
struct LayerWarning {
  std::string rule;  ///< "vanishing-gradient", "exploding-gradient", "dead-relu"
  std::string layer;
  std::string tensor;
  std::string text;  ///< plain words (HTML-escaped by the caller)
};
/// The rules of thumb (thresholds documented in include/kiln/report/report.hpp).
std::vector<LayerWarning> layer_warnings(const RunData& run);

/// The single-run sections; each is a <section id=...> with data-present="1", or a
/// "not recorded" note with data-present="0".
std::string layers_section(const RunData& run);
std::string graph_section(const RunData& run);
std::string data_section(const RunData& run);
std::string evaluation_section(const RunData& run);
std::string explanations_section(const RunData& run);
/// The drift snapshots of RUN_DIR/drift/*.json and `snapshots` (kiln::mlops::drift_html);
/// "" when there are none (the section is optional).
std::string drift_section(const RunData& run, const std::vector<std::string>& snapshots);
std::string absent_section(const std::string& id, const std::string& title,
                           const std::string& file);

/// The comparison page of several runs.
std::string render_comparison(const std::vector<RunData>& runs, const ReportOptions& options);

}  // namespace kiln::report::internal
