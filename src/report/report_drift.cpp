// The report's drift section: the drift snapshots of the run's model (RUN_DIR/drift/*.json
// and ReportOptions::drift_snapshots) drawn by kiln::mlops::drift_html, with the reference
// histograms of RUN_DIR/model.kiln's profile when the snapshot is of that model.
#include <algorithm>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "kiln/core/error.hpp"
#include "kiln/infer/model.hpp"
#include "kiln/mlops/drift.hpp"
#include "kiln/monitor/profile.hpp"
#include "report/report_parts.hpp"
#include "report/svg.hpp"

namespace kiln::report::internal {
namespace {

/// Snapshots drawn in full (the others are listed by name).
constexpr std::size_t max_snapshots = 8;

std::vector<std::string> run_snapshots(const std::string& dir) {
  std::vector<std::string> out;
  const std::filesystem::path folder = std::filesystem::path(dir) / "drift";
  std::error_code ec;
  if (!std::filesystem::is_directory(folder, ec)) return out;
  for (const auto& entry : std::filesystem::directory_iterator(folder, ec))
    if (entry.is_regular_file(ec) && entry.path().extension() == ".json")
      out.push_back(entry.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

std::string drift_section(const RunData& run, const std::vector<std::string>& snapshots) {
  std::vector<std::string> paths = run_snapshots(run.dir);
  const std::size_t from_run = paths.size();
  paths.insert(paths.end(), snapshots.begin(), snapshots.end());
  if (paths.empty()) return {};
  // The run's model and its profile, for the reference histograms.
  std::optional<monitor::Profile> profile;
  std::string model_hash;
  const std::filesystem::path model_path = std::filesystem::path(run.dir) / "model.kiln";
  std::error_code ec;
  if (std::filesystem::is_regular_file(model_path, ec)) {
    try {
      const infer::Model model = infer::Model::load(model_path.string());
      if (model.has_section(monitor::profile_section)) {
        profile = monitor::Profile::from_model(model);
        model_hash = model.content_hash();
      }
    } catch (const Error&) {
      profile.reset();  // the histograms are drawn without the reference
    }
  }
  std::string s = "<section id=\"drift\" data-present=\"1\" data-snapshots=\"" +
                  std::to_string(paths.size()) + "\"><h2>Drift</h2><p class=\"note\">" +
                  std::to_string(paths.size()) +
                  (paths.size() == 1 ? " drift snapshot" : " drift snapshots") +
                  " of the model (kiln::monitor::Monitor::write_snapshot; kiln drift prints "
                  "them), newest last.</p>";
  const std::size_t first = paths.size() > max_snapshots ? paths.size() - max_snapshots : 0;
  if (first > 0) {
    s += "<p class=\"note\">Not drawn (older): ";
    for (std::size_t k = 0; k < first; ++k)
      s += (k ? ", " : "") + std::string("<code>") + escape(paths[k]) + "</code>";
    s += "</p>";
  }
  for (std::size_t k = first; k < paths.size(); ++k) {
    const std::string& path = paths[k];
    s += "<h3>" + escape(std::filesystem::path(path).filename().string()) + "</h3>";
    monitor::DriftReport r;
    try {
      r = mlops::read_drift_snapshot(path);
    } catch (const Error& e) {
      if (k >= from_run) throw;  // a snapshot named on the command line must be readable
      s += "<div class=\"error\" data-snapshot=\"" + escape(path) + "\">" + escape(e.what()) +
           "</div>";
      continue;
    }
    const bool same_model = profile && !model_hash.empty() && r.model_hash == model_hash;
    s += mlops::drift_html(r, same_model ? &*profile : nullptr, "drift-" + std::to_string(k + 1));
  }
  return s + "</section>";
}

}  // namespace kiln::report::internal
