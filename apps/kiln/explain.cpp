// kiln explain: attributions of one row (a feature table, or an HTML heat map for images) and
// permutation feature importance over a labelled file, through kiln::report.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <numeric>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "kiln/core/error.hpp"
#include "kiln/report/explain.hpp"
#include "kiln/train/from_spec.hpp"

namespace kiln_cli {
namespace {

using json = nlohmann::json;
namespace rp = kiln::report;

int explain_importance(const ExplainArgs& args) {
  const kiln::data::Dataset d =
      kiln::train::read_csv_for_model(args.model, args.data, kiln::data::TargetColumn::required);
  const rp::PermutationImportance imp = rp::permutation_importance(
      args.model, d, {.metric = args.metric, .repeats = args.repeats, .seed = args.seed});
  if (args.json) {
    json j = json::parse(rp::importance_json(imp));
    j["model"] = args.model;
    j["data"] = args.data;
    std::cout << j.dump() << "\n";
    return exit_ok;
  }
  std::printf("permutation importance of %s on %s: %lld rows, %s %.4f, %lld repeats\n",
              args.model.c_str(), args.data.c_str(), static_cast<long long>(imp.rows),
              imp.metric.c_str(), imp.baseline, static_cast<long long>(imp.repeats));
  std::size_t w = 7;
  for (const auto& f : imp.features) w = std::max(w, f.name.size());
  std::printf("  %-*s %12s %10s\n", static_cast<int>(w), "feature", "importance", "std");
  for (const auto& f : imp.features)
    std::printf("  %-*s %12.4f %10.4f\n", static_cast<int>(w), f.name.c_str(), f.importance, f.std);
  std::printf(
      "importance: the mean drop in %s when the column is shuffled (larger: more "
      "important)\n",
      imp.metric.c_str());
  return exit_ok;
}

int explain_row(const ExplainArgs& args) {
  const kiln::data::Dataset d =
      kiln::train::read_csv_for_model(args.model, args.data, kiln::data::TargetColumn::ignore);
  const std::int64_t row = *args.row;
  if (row < 0 || row >= d.size())
    throw kiln::DataError(args.data + ": row " + std::to_string(row) + " is out of range: the " +
                          "file has " + std::to_string(d.size()) +
                          " data rows, numbered from 0 (the header is not a row)");
  rp::Explainer ex = rp::Explainer::from_file(args.model);
  const bool image = ex.input_shape().rank() == 3;
  if (image && args.out.empty()) {
    std::fprintf(stderr, "kiln: %s takes images: --out FILE is required for the heat map page\n",
                 args.model.c_str());
    return exit_usage;
  }
  const std::int64_t target = args.target_class.empty() ? -1 : ex.class_index(args.target_class);
  const kiln::Tensor x = d["features"].rows(row, row + 1);
  const bool ig = args.method == "integrated-gradients";
  const rp::Attribution a =
      ig ? ex.integrated_gradients(x, {.target_class = target, .steps = args.steps})
         : ex.saliency(x, {.target_class = target});
  const std::string name = ex.class_name(a.target_class);
  const double sum = a.attributions.to(kiln::DType::f64).sum();
  std::string what = ig ? "integrated gradients of class " : "saliency of class ";
  if (!name.empty()) what.append("'").append(name).append("' ");
  what.append("(output index ").append(std::to_string(a.target_class)).append(") for row ");
  what.append(std::to_string(row)).append(" of ").append(args.data);
  if (image) rp::write_attribution_html(args.out, a, args.model + ": " + what);

  if (args.json) {
    json j = json::parse(rp::attribution_json(a, row, ex));
    j["model"] = args.model;
    j["data"] = args.data;
    j["sum"] = sum;
    if (ig) j["completeness_error"] = a.completeness_error();
    if (!image) {
      json raw = json::array();
      for (float v : x.to(kiln::DType::f32).contiguous().to_vector<float>()) raw.push_back(v);
      j["raw_values"] = raw;
    } else {
      j["html"] = args.out;
    }
    std::cout << j.dump() << "\n";
    return exit_ok;
  }
  std::printf("%s: %s\n", args.model.c_str(), what.c_str());
  std::printf("  output %.6g", a.output);
  if (ig)
    std::printf(
        ", baseline output %.6g (baseline: zeros in the model's input space)\n"
        "  sum of attributions %.6g = output - baseline output %.6g (completeness error "
        "%.2g%%, %lld steps)\n",
        a.baseline_output, sum, a.output - a.baseline_output, 100.0 * a.completeness_error(),
        static_cast<long long>(a.steps));
  else
    std::printf("\n");
  if (image) {
    std::printf("wrote %s (the image and its attribution heat map)\n", args.out.c_str());
    return exit_ok;
  }
  std::vector<std::string> names = ex.feature_names();
  const std::vector<float> raw = x.to(kiln::DType::f32).contiguous().to_vector<float>();
  const std::vector<float> attr = a.attributions.to_vector<float>();
  if (names.size() != attr.size()) {
    names.clear();
    char buf[32];
    for (std::size_t i = 0; i < attr.size(); ++i) {
      std::snprintf(buf, sizeof buf, "x%zu", i);
      names.emplace_back(buf);
    }
  }
  std::vector<std::size_t> order(attr.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](std::size_t p, std::size_t q) {
    return std::abs(attr[p]) > std::abs(attr[q]);
  });
  std::size_t w = 7;
  for (const auto& n : names) w = std::max(w, n.size());
  std::printf("  %-*s %12s %14s\n", static_cast<int>(w), "feature", "value", "attribution");
  for (std::size_t i : order)
    std::printf("  %-*s %12.6g %14.6g\n", static_cast<int>(w), names[i].c_str(), raw[i], attr[i]);
  return exit_ok;
}

}  // namespace

int run_explain(const ExplainArgs& args) {
  if (args.importance) return explain_importance(args);
  if (!args.row) {
    std::fprintf(stderr, "kiln: explain needs --row N (attributions of one row) or --importance\n");
    return exit_usage;
  }
  return explain_row(args);
}

}  // namespace kiln_cli
