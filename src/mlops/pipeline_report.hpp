// Internal: the continuous-training run's report.html (self-contained, no scripts).
#pragma once

#include <string>

#include "kiln/mlops/pipeline.hpp"
#include "kiln/monitor/monitor.hpp"

namespace kiln::mlops::internal {

/// The page: outcome, trigger, the gate table (candidate vs production), reasons, the
/// versions involved, and the drift snapshot's section when one triggered the run.
std::string pipeline_report_html(const PipelineSpec& spec, const PipelineResult& result,
                                 const monitor::DriftReport* snapshot);

}  // namespace kiln::mlops::internal
