// kiln eval and kiln predict: evaluate_csv / predict_csv and their output.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>

#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "kiln/core/error.hpp"
#include "kiln/train/from_spec.hpp"

namespace kiln_cli {

int run_eval(const EvalArgs& args) {
  const kiln::train::Evaluation ev = kiln::train::evaluate_csv(args.model, args.data);
  const bool classifier = ev.task != kiln::train::Task::regression;
  const std::int64_t c = ev.confusion.classes;
  if (args.json) {
    nlohmann::json j;
    j["model"] = args.model;
    j["data"] = args.data;
    j["task"] = std::string(kiln::train::task_name(ev.task));
    j["rows"] = ev.rows;
    j["metrics"] = ev.metrics;
    if (classifier) {
      j["labels"] = ev.labels;
      nlohmann::json cm = nlohmann::json::array();
      for (std::int64_t t = 0; t < c; ++t) {
        nlohmann::json row = nlohmann::json::array();
        for (std::int64_t p = 0; p < c; ++p) row.push_back(ev.confusion.at(t, p));
        cm.push_back(row);
      }
      j["confusion_matrix"] = cm;
    }
    std::cout << j.dump() << "\n";
    return exit_ok;
  }
  std::printf("%s on %s: %lld rows (%s)\n", args.model.c_str(), args.data.c_str(),
              static_cast<long long>(ev.rows),
              std::string(kiln::train::task_name(ev.task)).c_str());
  for (const auto& [k, v] : ev.metrics) std::printf("  %-16s %.4f\n", k.c_str(), v);
  if (classifier) {
    std::printf("confusion matrix (rows: true class, columns: predicted):\n");
    std::size_t w = 6;
    for (const auto& l : ev.labels) w = std::max(w, l.size() + 1);
    std::printf("%*s", static_cast<int>(w), "");
    for (std::int64_t p = 0; p < c; ++p)
      std::printf(" %*s", static_cast<int>(w), ev.labels.at(static_cast<std::size_t>(p)).c_str());
    std::printf("\n");
    for (std::int64_t t = 0; t < c; ++t) {
      std::printf("%*s", static_cast<int>(w), ev.labels.at(static_cast<std::size_t>(t)).c_str());
      for (std::int64_t p = 0; p < c; ++p)
        std::printf(" %*lld", static_cast<int>(w), static_cast<long long>(ev.confusion.at(t, p)));
      std::printf("\n");
    }
  }
  return exit_ok;
}

int run_predict(const PredictArgs& args) {
  const kiln::train::Predictions p = kiln::train::predict_csv(args.model, args.data);
  const std::string csv = p.to_csv(args.probabilities);
  if (args.out.empty()) {
    std::fwrite(csv.data(), 1, csv.size(), stdout);
    return exit_ok;
  }
  std::ofstream out(args.out, std::ios::binary | std::ios::trunc);
  out.write(csv.data(), static_cast<std::streamsize>(csv.size()));
  out.close();
  if (!out) throw kiln::IoError(args.out + ": cannot write the predictions");
  return exit_ok;
}

}  // namespace kiln_cli
