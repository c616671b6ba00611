// Drift snapshots as files: what kiln::monitor::Monitor::write_snapshot writes (docs/mlops.md),
// read back for `kiln drift`, the report and the continuous-training trigger.
//
//   kiln::monitor::DriftReport r = kiln::mlops::read_drift_snapshot("drift.json");
//   std::cout << kiln::mlops::drift_text(r);      // the table kiln drift prints
//   // merge the snapshots of many devices of the same model, then test again:
//   auto all = kiln::mlops::merge_drift_snapshots({"a.json", "b.json"});
#pragma once

#include <string>
#include <vector>

#include "kiln/export.hpp"
#include "kiln/monitor/monitor.hpp"

namespace kiln::mlops {

/// Reads a snapshot file; throws IoError / FormatError naming the file.
KILN_API monitor::DriftReport read_drift_snapshot(const std::string& path);
/// Adds the live counts of snapshots of the same model (same content hash, else ValueError
/// naming the file) and recomputes every statistic against `model_path`'s profile.
KILN_API monitor::DriftReport merge_drift_snapshots(const std::string& model_path,
                                                    const std::vector<std::string>& paths,
                                                    const monitor::MonitorOptions& options = {});
/// A plain-text table: per feature the test, statistic, p-value, PSI and its level, flagged
/// features first (then by PSI, largest first; at most `max_rows` features, the number left
/// out said), the live anomalies (non-finite, below the reference min, above its max,
/// unseen categories); then predictions, labels and the verdict.
KILN_API std::string drift_text(const monitor::DriftReport& report, std::size_t max_rows = 20);
/// The report as JSON (the snapshot format without the live counts when `counts` is false).
KILN_API std::string drift_json(const monitor::DriftReport& report, bool counts = true);
/// A self-contained HTML section (no scripts from elsewhere) for the run report / CT report:
/// <section id="ID" class="drift" data-present="1" data-drifted="0|1"> holding the verdict, a
/// bar chart of PSI per feature (data-chart "ID-psi", flagged features and the largest PSI
/// first, at most 40 bars; <rect data-label=FEATURE data-value=PSI data-drifted=0|1>, the
/// 0.1 and 0.2 levels as <line data-level="moderate|significant" data-value=...>), the
/// per-feature table (<tr data-feature=NAME data-psi data-p-value data-statistic
/// data-drifted>), the prediction and label rows, and for the (up to) three most drifted
/// features and the predictions a histogram of the live proportions per reference bin
/// (data-chart "ID-hist-FEATURE" / "ID-hist-prediction", <rect data-series="live|reference"
/// data-bin=I data-count=C data-value=PROPORTION>), the reference ones too when `profile`
/// (the model's, from Profile::from_model) is given and matches. Numbers in data
/// attributes read back to the same double.
KILN_API std::string drift_html(const monitor::DriftReport& report,
                                const monitor::Profile* profile = nullptr,
                                const std::string& id = "drift");
/// A whole self-contained HTML page of drift_html (kiln drift --html), written atomically;
/// IoError naming `path` if it cannot be written.
KILN_API void write_drift_page(const monitor::DriftReport& report, const std::string& path,
                               const monitor::Profile* profile = nullptr);

}  // namespace kiln::mlops
