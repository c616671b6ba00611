// train_from_spec and train_and_record with a communicator (ranks as threads of this
// program): 2 ranks with the spec's batch halved train what one process trains, every
// rank ends with the same model file, history and test metrics, and only rank 0 writes
// checkpoints and the run folder.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "kiln/core/error.hpp"
#include "kiln/report/spec_run.hpp"
#include "kiln/train/from_spec.hpp"
#include "tests/support/thread_communicator.hpp"

namespace {

namespace tr = kiln::train;
namespace fs = std::filesystem;

const std::string iris_csv = KILN_DATASETS_DIR "/iris.csv";

tr::ModelSpec iris_spec(std::int64_t batch) {
  tr::ModelSpec spec = tr::ModelSpec::load(KILN_DATASETS_DIR "/../examples/specs/iris.json");
  spec.training.batch_size = batch;
  return spec;
}

std::string fresh_dir(const std::string& name) {
  const auto p = fs::temp_directory_path() / ("kiln_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

TEST(TrainDistributedSpec, TwoRanksTrainWhatOneProcessTrainsAndOnlyRankZeroWrites) {
  const std::string root = fresh_dir("dist_spec");
  kiln::set_num_threads(1);
  // 120 training rows, batch 16: 8 steps an epoch, 80 steps.
  const tr::SpecTrainResult ref = tr::train_from_spec(
      iris_spec(16), iris_csv,
      {.epochs = 10, .progress = tr::Progress::none, .creation_time = "2026-01-01T00:00:00Z"});
  std::vector<tr::SpecTrainResult> results(2);
  kiln_test::run_ranks(2, [&](kiln::dist::Communicator& comm) {
    results[static_cast<std::size_t>(comm.rank())] =
        tr::train_from_spec(iris_spec(8), iris_csv,
                            {.epochs = 10,
                             .checkpoint_dir = root + "/rank" + std::to_string(comm.rank()),
                             .progress = tr::Progress::none,
                             .communicator = &comm});
  });
  EXPECT_EQ(results[0].model, results[1].model);  // the same bytes, creation time included
  EXPECT_EQ(results[0].test, results[1].test);
  EXPECT_EQ(results[0].history.epochs, results[1].history.epochs);
  ASSERT_EQ(results[0].history.epochs.size(), 10u);
  for (std::size_t e = 0; e < 10; ++e)
    EXPECT_NEAR(results[0].history.epochs[e].at("loss"), ref.history.epochs[e].at("loss"),
                1e-5 * ref.history.epochs[e].at("loss"))
        << e;
  EXPECT_EQ(results[0].test.at("test_accuracy"), ref.test.at("test_accuracy"));
  EXPECT_NEAR(results[0].test.at("test_log_loss"), ref.test.at("test_log_loss"),
              1e-5 * ref.test.at("test_log_loss"));
  EXPECT_TRUE(tr::latest_checkpoint(root + "/rank0").has_value());
  EXPECT_FALSE(fs::exists(root + "/rank1"));

  // Resuming: rank 0 finds the checkpoint (rank 1's folder has none) and decides for both.
  std::vector<tr::SpecTrainResult> resumed(2);
  kiln_test::run_ranks(2, [&](kiln::dist::Communicator& comm) {
    resumed[static_cast<std::size_t>(comm.rank())] =
        tr::train_from_spec(iris_spec(8), iris_csv,
                            {.epochs = 12,
                             .checkpoint_dir = root + "/rank" + std::to_string(comm.rank()),
                             .resume = true,
                             .progress = tr::Progress::none,
                             .communicator = &comm});
  });
  for (const tr::SpecTrainResult& r : resumed) {
    ASSERT_EQ(r.history.epochs.size(), 12u);
    for (std::size_t e = 0; e < 10; ++e)  // the first 10 epochs come from the checkpoint
      EXPECT_EQ(r.history.epochs[e], results[0].history.epochs[e]) << e;
  }
  EXPECT_EQ(resumed[0].model, resumed[1].model);
  EXPECT_FALSE(fs::exists(root + "/rank1"));
}

TEST(TrainDistributedSpec, OnlyRankZeroRecordsTheRun) {
  const std::string root = fresh_dir("dist_record");
  std::vector<kiln::report::RecordedRun> runs(2);
  kiln_test::run_ranks(2, [&](kiln::dist::Communicator& comm) {
    runs[static_cast<std::size_t>(comm.rank())] = kiln::report::train_and_record(
        iris_spec(8), iris_csv,
        {.epochs = 2, .progress = tr::Progress::none, .communicator = &comm},
        {.record = {.dir = root + "/run" + std::to_string(comm.rank())}, .explain = false});
  });
  EXPECT_EQ(runs[0].dir, root + "/run0");
  EXPECT_TRUE(fs::exists(root + "/run0/run.json"));
  EXPECT_TRUE(fs::exists(root + "/run0/metrics.jsonl"));
  EXPECT_TRUE(fs::exists(root + "/run0/model.kiln"));
  EXPECT_FALSE(runs[0].report.empty());
  EXPECT_TRUE(runs[1].dir.empty());
  EXPECT_TRUE(runs[1].report.empty());
  EXPECT_FALSE(fs::exists(root + "/run1"));
  EXPECT_EQ(runs[0].result.model, runs[1].result.model);

  // A run folder rank 0 refuses (it holds a run) stops both ranks with its IoError.
  std::vector<std::string> messages(2);
  kiln_test::run_ranks(2, [&](kiln::dist::Communicator& comm) {
    try {
      (void)kiln::report::train_and_record(
          iris_spec(8), iris_csv,
          {.epochs = 1, .progress = tr::Progress::none, .communicator = &comm},
          {.record = {.dir = root + "/run" + std::to_string(comm.rank())}, .explain = false});
    } catch (const kiln::IoError& e) {
      messages[static_cast<std::size_t>(comm.rank())] = e.what();
    }
  });
  EXPECT_NE(messages[0].find("run0"), std::string::npos) << messages[0];
  EXPECT_EQ(messages[1], messages[0]);
}

}  // namespace
