// kiln drift: drift snapshots (kiln::monitor::Monitor::write_snapshot) shown as a table, JSON
// or an HTML page; several snapshots of one model merged against its profile
// (kiln::mlops::read_drift_snapshot, merge_drift_snapshots, drift_text, drift_html).
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>

#include "commands.hpp"
#include "kiln/core/error.hpp"
#include "kiln/infer/model.hpp"
#include "kiln/mlops/drift.hpp"
#include "kiln/monitor/profile.hpp"

namespace kiln_cli {

int run_drift(const DriftArgs& args) {
  if (args.snapshots.size() > 1 && args.model.empty()) {
    std::fprintf(stderr,
                 "kiln: merging %zu snapshots needs the model they are of (--model MODEL)\n",
                 args.snapshots.size());
    return exit_usage;
  }
  const kiln::monitor::DriftReport report =
      args.model.empty() ? kiln::mlops::read_drift_snapshot(args.snapshots.front())
                         : kiln::mlops::merge_drift_snapshots(args.model, args.snapshots);
  if (!args.html.empty()) {
    std::optional<kiln::monitor::Profile> profile;
    if (!args.model.empty())
      profile = kiln::monitor::Profile::from_model(kiln::infer::Model::load(args.model));
    kiln::mlops::write_drift_page(report, args.html, profile ? &*profile : nullptr);
  }
  if (args.json)
    std::cout << kiln::mlops::drift_json(report) << "\n";
  else
    std::cout << kiln::mlops::drift_text(report);
  return report.drifted || report.labels.decayed ? exit_drift : exit_ok;
}

}  // namespace kiln_cli
