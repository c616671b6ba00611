// kiln train: ModelSpec::load + train_from_spec (recorded into a run folder by default with
// kiln::report::train_and_record), then the model file.
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <string>

#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "kiln/core/error.hpp"
#include "kiln/report/spec_run.hpp"
#include "kiln/train/from_spec.hpp"

namespace kiln_cli {
namespace {

// runs/<spec file stem>-<yyyymmdd-hhmmss UTC>, with "-2", "-3", ... when it is taken.
std::string default_run_dir(const std::string& spec_path) {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
  const std::string base = "runs/" + std::filesystem::path(spec_path).stem().string() + "-" + stamp;
  std::string dir = base;
  for (int i = 2; std::filesystem::exists(dir); ++i) dir = base + "-" + std::to_string(i);
  return dir;
}

}  // namespace

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
  const bool record = !args.no_record;
  const std::string run_dir = !record                ? std::string()
                              : args.run_dir.empty() ? default_run_dir(args.spec)
                                                     : args.run_dir;
  kiln::train::SpecTrainResult result;
  try {
    if (record)
      result =
          kiln::report::train_and_record(spec, args.data, options, {.record = {.dir = run_dir}})
              .result;
    else
      result = kiln::train::train_from_spec(spec, args.data, options);
  } catch (const kiln::NonFiniteError& e) {
    std::fprintf(stderr, "kiln: training failed: %s\n", e.what());
    if (record) std::fprintf(stderr, "kiln: run recorded in %s\n", run_dir.c_str());
    return exit_training;
  }
  result.save(args.out);

  const auto& epochs = result.history.epochs;
  if (args.json) {
    nlohmann::json j;
    j["model"] = args.out;
    j["run"] = record ? nlohmann::json(run_dir) : nlohmann::json(nullptr);
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
  if (record) std::printf("run recorded in %s\n", run_dir.c_str());
  return exit_ok;
}

}  // namespace kiln_cli
