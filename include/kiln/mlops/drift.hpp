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
/// features first; then predictions, labels and the verdict.
KILN_API std::string drift_text(const monitor::DriftReport& report, std::size_t max_rows = 20);
/// The report as JSON (the snapshot format without the live counts when `counts` is false).
KILN_API std::string drift_json(const monitor::DriftReport& report, bool counts = true);
/// A self-contained HTML section (no scripts from elsewhere) for the run report / CT report.
KILN_API std::string drift_html(const monitor::DriftReport& report);

}  // namespace kiln::mlops
