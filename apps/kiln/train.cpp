// kiln train: ModelSpec::load + train_from_spec, then the model file and a report.
#include <cstdio>
#include <iostream>
#include <string>

#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "kiln/core/error.hpp"
#include "kiln/train/from_spec.hpp"

namespace kiln_cli {

int run_train(const TrainArgs& args) {
  const kiln::train::ModelSpec spec = kiln::train::ModelSpec::load(args.spec);
  kiln::train::SpecTrainOptions options;
  options.target = args.target;
  options.test_data = args.test_data;
  options.seed = args.seed;
  options.epochs = args.epochs;
  options.checkpoint_dir = args.checkpoint_dir;
  options.resume = args.resume;
  options.progress = args.quiet ? kiln::train::Progress::none : kiln::train::Progress::automatic;
  options.progress_file = stderr;
  kiln::train::SpecTrainResult result;
  try {
    result = kiln::train::train_from_spec(spec, args.data, options);
  } catch (const kiln::NonFiniteError& e) {
    std::fprintf(stderr, "kiln: training failed: %s\n", e.what());
    return exit_training;
  }
  result.save(args.out);

  const auto& epochs = result.history.epochs;
  if (args.json) {
    nlohmann::json j;
    j["model"] = args.out;
    j["train_rows"] = result.train_rows;
    j["test_rows"] = result.test_rows;
    j["epochs"] = epochs.size();
    j["history"] = nlohmann::json::array();
    for (const auto& logs : epochs) j["history"].push_back(logs);
    j["final"] = epochs.empty() ? nlohmann::json::object() : nlohmann::json(epochs.back());
    j["test"] = result.test;
    j["labels"] = result.labels;
    std::cout << j.dump() << "\n";
    return exit_ok;
  }
  std::printf("trained %zu epochs on %lld rows", epochs.size(),
              static_cast<long long>(result.train_rows));
  if (!epochs.empty())
    for (const auto& [k, v] : epochs.back()) std::printf("  %s=%.4f", k.c_str(), v);
  std::printf("\n");
  if (!result.test.empty()) {
    std::printf("test (%lld rows):", static_cast<long long>(result.test_rows));
    for (const auto& [k, v] : result.test) std::printf("  %s=%.4f", k.c_str(), v);
    std::printf("\n");
  }
  std::printf("saved %s\n", args.out.c_str());
  return exit_ok;
}

}  // namespace kiln_cli
