// kiln train: ModelSpec::load + train_from_spec (recorded into a run folder by default with
// kiln::report::train_and_record), then the model file. With --distributed (a kiln built
// with Kiln::kiln_mpi), the same on every rank of the MPI job, data-parallel
// (SpecTrainOptions::communicator); rank 0 alone prints, records and writes --out.
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <string>

#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "kiln/core/error.hpp"
#include "kiln/dist/communicator.hpp"
#include "kiln/report/spec_run.hpp"
#include "kiln/train/from_spec.hpp"

#if KILN_CLI_MPI
#include "kiln/dist/mpi.hpp"
#endif

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

// kiln train on this process; with `comm`, as one rank of a data-parallel job (only rank 0
// prints, records the run and writes --out; the others train and return).
int train(const TrainArgs& args, kiln::dist::Communicator* comm) {
  const bool root = comm == nullptr || comm->rank() == 0;
  const kiln::train::ModelSpec spec = kiln::train::ModelSpec::load(args.spec);
  kiln::train::SpecTrainOptions options;
  options.communicator = comm;
  options.target = args.target;
  options.test_data = args.test_data;
  options.seed = args.seed;
  options.epochs = args.epochs;
  options.checkpoint_dir = args.checkpoint_dir;
  options.resume = args.resume;
  options.progress =
      args.quiet || !root ? kiln::train::Progress::none : kiln::train::Progress::automatic;
  options.progress_file = stderr;
  // train_and_record is collective: rank 0 records the run (the other ranks' run_dir is
  // not used), the others train alongside it.
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
    // Every rank throws it (DataParallel reduces the check); rank 0 says it.
    if (!root) return exit_training;
    std::fprintf(stderr, "kiln: training failed: %s\n", e.what());
    if (record) std::fprintf(stderr, "kiln: run recorded in %s\n", run_dir.c_str());
    return exit_training;
  }
  if (!root) return exit_ok;
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

#if KILN_CLI_MPI
// The whole command on every rank under run_or_abort: an error on any rank ends the job on
// all of them ("kiln: rank R of N: <message>") with the exit code the error has in a
// single process, instead of leaving the other ranks waiting in a collective.
int train_distributed(const TrainArgs& args) {
  const bool launched = kiln::dist::launched_by_mpi();
  kiln::dist::Communicator& world = kiln::dist::init(nullptr, nullptr);
  if (!launched && !args.quiet)
    std::fprintf(stderr,
                 "kiln: --distributed: not started by mpirun or srun; training as 1 rank\n");
  return kiln::dist::run_or_abort(world, [&]() -> int {
    int code = exit_model;
    std::string message;
    try {
      const int rc = train(args, &world);
      std::fflush(stdout);
      return rc;
    } catch (const kiln::DataError& e) {
      code = exit_data, message = e.what();
    } catch (const kiln::IoError& e) {
      code = exit_io, message = e.what();
    } catch (const kiln::DistributedError& e) {
      code = exit_distributed, message = e.what();
    } catch (const kiln::Error& e) {
      message = e.what();
    }
    world.abort(message, code);
    return code;  // not reached
  });
}
#endif

}  // namespace

int run_train(const TrainArgs& args) {
  if (!args.distributed) return train(args, nullptr);
#if KILN_CLI_MPI
  return train_distributed(args);
#else
  std::fprintf(stderr,
               "kiln: --distributed: this kiln command was built without MPI (configure with "
               "-DKILN_WITH_MPI=ON where Open MPI is installed; see docs/distributed.md)\n");
  return exit_usage;
#endif
}

}  // namespace kiln_cli
