// Internal: the JSON of a drift report (the snapshot file layout of docs/mlops.md), written
// by hand so kiln_infer needs no JSON library. Monitor::write_snapshot writes it and
// kiln::mlops::drift_json (libkiln) returns it; read_drift_snapshot (libkiln) reads it.
#pragma once

#include <string>

#include "internal/internal_api.hpp"
#include "kiln/monitor/monitor.hpp"

namespace kiln::monitor::internal {

/// The snapshot format's version ("format" in the file).
inline constexpr int snapshot_format_version = 1;

/// The report as JSON; without the live counts when `counts` is false. Numbers use %.17g
/// (they read back to the same double); NaN and infinities are written as null.
KILN_INTERNAL_API std::string drift_report_json(const DriftReport& report, bool counts);

}  // namespace kiln::monitor::internal
