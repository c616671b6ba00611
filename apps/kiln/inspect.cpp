// kiln inspect: signatures, metadata, metrics, preprocessing, labels, layers, content hash,
// data schema and spec of a model file (kiln::load_graph, nn::summarize, ModelSpec).
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <string>

#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "kiln/core/dtype.hpp"
#include "kiln/io/load_graph.hpp"
#include "kiln/monitor/profile.hpp"
#include "kiln/nn/summary.hpp"
#include "kiln/train/spec.hpp"

namespace kiln_cli {
namespace {

using json = nlohmann::json;

std::string section_text(const kiln::LoadedGraph& m, const std::string& name) {
  auto it = m.sections.find(name);
  if (it == m.sections.end()) return {};
  return std::string(it->second.begin(), it->second.end());
}

json signature(const std::string& name, const kiln::Value& v) {
  json dims = json::array();
  for (auto d : v.shape().dims()) dims.push_back(d == kiln::batch ? json("batch") : json(d));
  return {{"name", name}, {"shape", dims}, {"dtype", std::string(kiln::to_string(v.dtype()))}};
}

}  // namespace

int run_inspect(const InspectArgs& args) {
  const kiln::LoadedGraph m = kiln::load_graph(args.model);
  const kiln::ModelMetadata& meta = m.metadata;
  const kiln::nn::ModelSummary summary = kiln::nn::summarize(*m.graph, m.outputs);
  const std::string spec_text = section_text(m, "kiln.spec");
  const std::string data_text = section_text(m, "kiln.data");
  // A spec that does not parse is reported, not fatal: inspect shows what the file holds.
  json spec = nullptr;
  std::string spec_error;
  if (!spec_text.empty()) {
    try {
      spec = json::parse(
          kiln::train::ModelSpec::from_json(spec_text, args.model + ": kiln.spec").to_json());
    } catch (const std::exception& e) {
      spec_error = e.what();
    }
  }
  json data = nullptr;
  if (!data_text.empty()) data = json::parse(data_text, nullptr, false);
  // The reference profile (kiln.profile), summarised; unreadable is reported, not fatal.
  json profile = nullptr;
  std::string profile_line;
  if (auto it = m.sections.find(kiln::monitor::profile_section); it != m.sections.end()) {
    try {
      const auto p = kiln::monitor::Profile::from_bytes(it->second, args.model + ": kiln.profile");
      std::int64_t categorical = 0;
      std::uint64_t rows = 0;
      for (const auto& f : p.features) {
        categorical += f.kind == kiln::monitor::FeatureKind::categorical;
        rows = std::max(rows, f.count);
      }
      const char* predicted = p.predicted == kiln::monitor::PredictionKind::classes  ? "classes"
                              : p.predicted == kiln::monitor::PredictionKind::values ? "values"
                                                                                     : "none";
      profile = {{"input", p.input},           {"features", p.features.size()},
                 {"categorical", categorical}, {"rows", rows},
                 {"predicted", predicted},     {"prediction_rows", p.prediction_count},
                 {"metrics", json::object()}};
      for (const auto& [k, v] : p.metrics) profile["metrics"][k] = v;
      profile_line = std::to_string(p.features.size()) + " features of input '" + p.input + "' (" +
                     std::to_string(categorical) + " categorical) over " + std::to_string(rows) +
                     " rows; predictions: " + predicted +
                     (p.predicted == kiln::monitor::PredictionKind::none
                          ? ""
                          : " over " + std::to_string(p.prediction_count) + " held-out rows");
    } catch (const kiln::Error& e) {
      profile = {{"error", e.what()}};
      profile_line = std::string("unreadable: ") + e.what();
    }
  }

  json j;
  j["file"] = args.model;
  j["format_version"] = m.format_version;
  j["content_hash"] = m.content_hash;
  j["name"] = meta.name;
  j["version"] = meta.version;
  j["description"] = meta.description;
  j["created"] = meta.created;
  j["library_version"] = meta.library_version;
  j["inputs"] = json::array();
  for (const kiln::Value& v : m.inputs) j["inputs"].push_back(signature(v.name(), v));
  j["outputs"] = json::array();
  for (std::size_t k = 0; k < m.outputs.size(); ++k)
    j["outputs"].push_back(signature(m.output_names[k], m.outputs[k]));
  j["labels"] = meta.labels;
  j["metrics"] = json::object();
  for (const auto& [k, v] : meta.metrics) j["metrics"][k] = v;
  j["extra"] = json::object();
  for (const auto& [k, v] : meta.extra) j["extra"][k] = v;
  j["preprocessing"] = json::array();
  for (const kiln::Normalization& n : meta.preprocessing)
    j["preprocessing"].push_back({{"input", n.input}, {"mean", n.mean}, {"stddev", n.stddev}});
  j["layers"] = json::array();
  for (const kiln::nn::LayerSummary& l : summary.layers) {
    json dims = json::array();
    for (auto d : l.output_shape.dims()) dims.push_back(d == kiln::batch ? json("batch") : json(d));
    j["layers"].push_back({{"name", l.name},
                           {"type", l.type},
                           {"output_shape", dims},
                           {"params", l.params()},
                           {"trainable", l.trainable}});
  }
  j["params"] = {{"total", summary.total()},
                 {"trainable", summary.trainable},
                 {"non_trainable", summary.non_trainable}};
  j["sections"] = json::array();
  for (const auto& [name, bytes] : m.sections)
    j["sections"].push_back({{"name", name}, {"bytes", bytes.size()}});
  j["spec"] = spec;
  if (!spec_error.empty()) j["spec_error"] = spec_error;
  j["data"] = data;
  j["profile"] = profile;

  if (args.json) {
    std::cout << j.dump() << "\n";
    return exit_ok;
  }
  std::cout << "Model: " << args.model << "\n";
  std::cout << "  name: " << meta.name << "  version: " << meta.version << "\n";
  if (!meta.description.empty()) std::cout << "  description: " << meta.description << "\n";
  std::cout << "  format: v" << m.format_version << "  created: " << meta.created << "  by Kiln "
            << meta.library_version << "\n";
  std::cout << "  content hash: " << (m.content_hash.empty() ? "(none, v1 file)" : m.content_hash)
            << "\n";
  std::cout << "Inputs:\n";
  for (const kiln::Value& v : m.inputs)
    std::cout << "  " << v.name() << "  " << v.shape().str() << " " << kiln::to_string(v.dtype())
              << "\n";
  std::cout << "Outputs:\n";
  for (std::size_t k = 0; k < m.outputs.size(); ++k)
    std::cout << "  " << m.output_names[k] << "  " << m.outputs[k].shape().str() << " "
              << kiln::to_string(m.outputs[k].dtype()) << "\n";
  if (!meta.labels.empty()) {
    std::cout << "Labels (" << meta.labels.size() << "):";
    for (std::size_t k = 0; k < meta.labels.size(); ++k)
      std::cout << (k ? ", " : " ") << k << "=" << meta.labels[k];
    std::cout << "\n";
  }
  if (!meta.metrics.empty()) {
    std::cout << "Metrics:\n";
    for (const auto& [k, v] : meta.metrics) std::printf("  %s = %.6g\n", k.c_str(), v);
    std::fflush(stdout);
  }
  if (!meta.preprocessing.empty()) {
    std::cout << "Preprocessing:\n";
    for (const kiln::Normalization& n : meta.preprocessing) {
      std::cout << "  " << n.input << ": (x - mean) / stddev over " << n.mean.size()
                << " features\n    mean:  ";
      for (std::size_t k = 0; k < n.mean.size() && k < 8; ++k) std::cout << n.mean[k] << " ";
      std::cout << (n.mean.size() > 8 ? "...\n    stddev: " : "\n    stddev: ");
      for (std::size_t k = 0; k < n.stddev.size() && k < 8; ++k) std::cout << n.stddev[k] << " ";
      std::cout << (n.stddev.size() > 8 ? "...\n" : "\n");
    }
  }
  if (!meta.extra.empty()) {
    std::cout << "Extra:\n";
    for (const auto& [k, v] : meta.extra) std::cout << "  " << k << ": " << v << "\n";
  }
  std::cout << "Layers:\n" << summary.str();
  if (!m.sections.empty()) {
    std::cout << "Sections:";
    for (const auto& [name, bytes] : m.sections)
      std::cout << " " << name << " (" << bytes.size() << " B)";
    std::cout << "\n";
  }
  std::cout << "Reference profile (kiln.profile): "
            << (profile_line.empty() ? "none (kiln validate checks no ranges, no drift monitor)"
                                     : profile_line)
            << "\n";
  if (!data.is_null()) std::cout << "Data columns (kiln.data):\n" << data.dump(2) << "\n";
  if (!spec.is_null()) std::cout << "Spec (kiln.spec):\n" << spec.dump(2) << "\n";
  if (!spec_error.empty()) std::cout << "Spec (kiln.spec): unreadable: " << spec_error << "\n";
  return exit_ok;
}

}  // namespace kiln_cli
