// Drift snapshot files (kiln/mlops/drift.hpp): reading them back (nlohmann JSON), merging
// the snapshots of many devices, and the report as JSON (the writer kiln_infer's monitor
// uses, monitor/snapshot_json.hpp, so the layout is written in one place).
#include <cmath>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "io/model_data.hpp"
#include "kiln/core/error.hpp"
#include "kiln/infer/model.hpp"
#include "kiln/mlops/drift.hpp"
#include "monitor/snapshot_json.hpp"

namespace kiln::mlops {
namespace {

using monitor::DriftReport;
using monitor::FeatureDrift;
using nlohmann::json;

[[noreturn]] void bad(const std::string& path, const std::string& what) {
  throw FormatError(path + ": " + what);
}

const json& field(const json& obj, const char* key, const std::string& path,
                  const std::string& where) {
  if (!obj.is_object()) bad(path, where + " is not an object");
  const auto it = obj.find(key);
  if (it == obj.end()) bad(path, where + " has no \"" + key + "\"");
  return *it;
}

double number(const json& obj, const char* key, const std::string& path, const std::string& where) {
  const json& v = field(obj, key, path, where);
  if (v.is_null()) return std::nan("");
  if (!v.is_number()) bad(path, where + ": \"" + key + "\" is not a number");
  return v.get<double>();
}

bool is_count(const json& v) {
  return v.is_number_unsigned() || (v.is_number_integer() && v.get<std::int64_t>() >= 0);
}

std::uint64_t count(const json& obj, const char* key, const std::string& path,
                    const std::string& where) {
  const json& v = field(obj, key, path, where);
  if (!is_count(v)) bad(path, where + ": \"" + key + "\" is not a count");
  return v.get<std::uint64_t>();
}

std::string text(const json& obj, const char* key, const std::string& path,
                 const std::string& where) {
  const json& v = field(obj, key, path, where);
  if (!v.is_string()) bad(path, where + ": \"" + key + "\" is not a string");
  return v.get<std::string>();
}

bool flag(const json& obj, const char* key, const std::string& path, const std::string& where) {
  const json& v = field(obj, key, path, where);
  if (!v.is_boolean()) bad(path, where + ": \"" + key + "\" is not true or false");
  return v.get<bool>();
}

/// The value paired with the text at `key` in `names`; "unknown <key>" otherwise.
template <class T>
T one_of(const json& obj, const char* key, const std::string& path, const std::string& where,
         std::initializer_list<std::pair<const char*, T>> names) {
  const std::string s = text(obj, key, path, where);
  for (const auto& [name, value] : names)
    if (s == name) return value;
  bad(path, where + ": unknown " + key + " \"" + s + "\"");
}

FeatureDrift read_feature(const json& j, const std::string& path, const std::string& where) {
  FeatureDrift f;
  f.name = text(j, "name", path, where);
  f.kind = one_of<monitor::FeatureKind>(j, "kind", path, where,
                                        {{"numeric", monitor::FeatureKind::numeric},
                                         {"categorical", monitor::FeatureKind::categorical}});
  f.test = one_of<const char*>(j, "test", path, where, {{"ks", "ks"}, {"chi2", "chi2"}});
  f.rows = count(j, "rows", path, where);
  f.statistic = number(j, "statistic", path, where);
  f.p_value = number(j, "p_value", path, where);
  f.psi = number(j, "psi", path, where);
  f.psi_level = one_of<monitor::PsiLevel>(j, "psi_level", path, where,
                                          {{"none", monitor::PsiLevel::none},
                                           {"moderate", monitor::PsiLevel::moderate},
                                           {"significant", monitor::PsiLevel::significant}});
  f.drifted = flag(j, "drifted", path, where);
  f.nonfinite = count(j, "nonfinite", path, where);
  f.below_min = count(j, "below_min", path, where);
  f.above_max = count(j, "above_max", path, where);
  f.unseen_category = count(j, "unseen_category", path, where);
  f.live_mean = number(j, "live_mean", path, where);
  const auto it = j.find("live_counts");
  if (it != j.end()) {
    if (!it->is_array()) bad(path, where + ": \"live_counts\" is not an array");
    f.live_counts.reserve(it->size());
    for (const json& c : *it) {
      if (!is_count(c)) bad(path, where + ": a live count is not a count");
      f.live_counts.push_back(c.get<std::uint64_t>());
    }
  }
  return f;
}

}  // namespace

monitor::DriftReport read_drift_snapshot(const std::string& path) {
  const std::vector<std::uint8_t> bytes = kiln::internal::read_file(path);
  json j;
  try {
    j = json::parse(bytes.begin(), bytes.end());
  } catch (const json::exception& e) {
    bad(path, std::string("not JSON: ") + e.what());
  }
  const std::string top = "the snapshot";
  if (!j.is_object() || text(j, "kind", path, top) != "kiln.drift_snapshot")
    bad(path, "not a drift snapshot (\"kind\" is not \"kiln.drift_snapshot\")");
  const std::uint64_t format = count(j, "format", path, top);
  if (format != static_cast<std::uint64_t>(monitor::internal::snapshot_format_version))
    bad(path, "snapshot format " + std::to_string(format) + " is not supported (1)");
  DriftReport r;
  r.model = text(j, "model", path, top);
  r.model_version = text(j, "model_version", path, top);
  r.model_hash = text(j, "model_hash", path, top);
  r.created = text(j, "created", path, top);
  r.rows_seen = count(j, "rows_seen", path, top);
  r.rows_observed = count(j, "rows_observed", path, top);
  r.alpha = number(j, "alpha", path, top);
  r.corrected_alpha = number(j, "corrected_alpha", path, top);
  r.drifted = flag(j, "drifted", path, top);
  r.features_drifted = static_cast<std::int64_t>(count(j, "features_drifted", path, top));
  r.max_psi = number(j, "max_psi", path, top);
  const json& features = field(j, "features", path, top);
  if (!features.is_array()) bad(path, "\"features\" is not an array");
  for (std::size_t i = 0; i < features.size(); ++i)
    r.features.push_back(read_feature(features[i], path, "feature " + std::to_string(i)));
  r.prediction = read_feature(field(j, "prediction", path, top), path, "the prediction");
  const json& labels = field(j, "labels", path, top);
  const std::string lw = "the labels";
  r.labels.labelled = count(labels, "labelled", path, lw);
  r.labels.metric = text(labels, "metric", path, lw);
  r.labels.live = number(labels, "live", path, lw);
  r.labels.reference = number(labels, "reference", path, lw);
  r.labels.decayed = flag(labels, "decayed", path, lw);
  r.labels.p_value = number(labels, "p_value", path, lw);
  r.labels.sum = number(labels, "sum", path, lw);
  r.labels.sum_sq = number(labels, "sum_sq", path, lw);
  return r;
}

monitor::DriftReport merge_drift_snapshots(const std::string& model_path,
                                           const std::vector<std::string>& paths,
                                           const monitor::MonitorOptions& options) {
  const infer::Model model = infer::Model::load(model_path);
  monitor::Monitor merged(model, options);
  for (const std::string& path : paths) {
    const DriftReport snap = read_drift_snapshot(path);
    if (snap.model_hash != model.content_hash())
      throw ValueError(path + ": the snapshot is of model content hash '" + snap.model_hash +
                       "', not of " + model_path + " ('" + model.content_hash() + "')");
    try {
      merged.merge(snap);
    } catch (const ValueError& e) {
      throw ValueError(path + ": " + e.what());
    }
  }
  return merged.report();
}

std::string drift_json(const monitor::DriftReport& report, bool counts) {
  return monitor::internal::drift_report_json(report, counts);
}

}  // namespace kiln::mlops
