// `kiln train --distributed` under mpiexec (registered only when the kiln command is built
// with Kiln::kiln_mpi; ctest label "mpi"): 2 ranks train the digits spec and rank 0 alone
// writes the model, the run and the output; a data error ends the job with the rank named;
// a rank killed mid-run ends the job within 30 s, and the checkpoints it left resume with 1
// rank. Every job runs under a hard deadline and is killed (with its ranks) when it passes.
#include <dirent.h>
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tests/support/child_process.hpp"
#include "tests/support/cli_test_support.hpp"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

const std::string digits_csv = std::string(KILN_SOURCE_DIR) + "/data/digits.csv";

// The digits spec without early stopping (so every run trains all its epochs) and without
// dropout (fewer random draws to think about), `epochs` epochs.
std::string digits_spec(int epochs) {
  return R"({
  "name": "digits",
  "inputs": [{"name": "pixels", "shape": [64]}],
  "layers": [
    {"type": "dense", "units": 64, "activation": "relu", "name": "fc1"},
    {"type": "dense", "units": "auto", "name": "fc2"}
  ],
  "task": {"type": "classification", "target": "label"},
  "preprocessing": {"scaling": "minmax"},
  "training": {"optimizer": {"name": "adam", "lr": 0.003}, "epochs": )" +
         std::to_string(epochs) + R"(, "batch_size": 32, "seed": 42, "test_split": 0.2,
               "metrics": ["accuracy"]}
})";
}

// The parent pid of `pid` from /proc/<pid>/stat (-1 if it is gone).
pid_t parent_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::size_t close = stat.rfind(')');  // the command name may hold spaces
  if (close == std::string::npos) return -1;
  std::istringstream rest(stat.substr(close + 1));
  char state = 0;
  pid_t ppid = -1;
  rest >> state >> ppid;
  return ppid;
}

// Every live descendant of `root` (children before grandchildren).
std::vector<pid_t> descendants(pid_t root) {
  std::vector<pid_t> all;
  if (DIR* d = ::opendir("/proc")) {
    while (dirent* e = ::readdir(d)) {
      char* end = nullptr;
      const long pid = std::strtol(e->d_name, &end, 10);
      if (end != e->d_name && *end == '\0') all.push_back(static_cast<pid_t>(pid));
    }
    ::closedir(d);
  }
  std::vector<pid_t> out{root};
  for (std::size_t i = 0; i < out.size(); ++i)
    for (pid_t p : all)
      if (parent_of(p) == out[i]) out.push_back(p);
  out.erase(out.begin());
  return out;
}

// The MPI rank of a process launched by Open MPI (its OMPI_COMM_WORLD_RANK), -1 if none.
int mpi_rank_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/environ", std::ios::binary);
  std::string var;
  const std::string key = "OMPI_COMM_WORLD_RANK=";
  while (std::getline(in, var, '\0'))
    if (var.rfind(key, 0) == 0) return std::atoi(var.c_str() + key.size());
  return -1;
}

struct Job {
  int rc = -1;
  std::string out, err;
  double seconds = 0.0;
  bool timed_out = false;
};

class CliDistributed : public kiln_test::CliTest {
 protected:
  CliDistributed() : CliTest("kiln_cli_distributed_test_") {}

  void SetUp() override {
    CliTest::SetUp();
    // Open MPI refuses to run as root unless told; only this test's jobs are told.
    if (::geteuid() == 0) {
      ::setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
      ::setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
    }
    kiln_test::write(path("spec.json"), digits_spec(6));
  }

  // "mpiexec -n N ... kiln <args>" (np 0: kiln alone) as the command line of a shell.
  static std::string command(int np, const std::string& args) {
    std::string cmd;
    if (np > 0)
      cmd = std::string(KILN_MPIEXEC) + " -n " + std::to_string(np) +
            " --oversubscribe --bind-to none -x OMP_NUM_THREADS=1 ";
    return cmd + KILN_CLI + " " + args;
  }

  // Starts the job in the test's folder, stdout and stderr into files.
  std::unique_ptr<kiln_test::ChildProcess> start(int np, const std::string& args) const {
    const std::string sh = "cd '" + dir_.string() + "' && exec " + command(np, args) + " >'" +
                           path("job.out").string() + "' 2>'" + path("job.err").string() + "'";
    return std::make_unique<kiln_test::ChildProcess>(std::vector<std::string>{"/bin/sh", "-c", sh},
                                                     false);
  }

  // Waits for the job to end; past `deadline`, kills its ranks and the launcher.
  Job finish(kiln_test::ChildProcess& child, Clock::time_point started,
             std::chrono::seconds deadline) const {
    Job job;
    while (child.running() && Clock::now() - started < deadline) std::this_thread::sleep_for(20ms);
    if (child.running()) {
      job.timed_out = true;
      for (pid_t p : descendants(child.pid())) ::kill(p, SIGKILL);
    }
    job.rc = child.stop(SIGKILL, 5s);
    job.seconds = std::chrono::duration<double>(Clock::now() - started).count();
    job.out = kiln_test::slurp(path("job.out"));
    job.err = kiln_test::slurp(path("job.err"));
    return job;
  }

  Job run(int np, const std::string& args, std::chrono::seconds deadline = 120s) const {
    const auto started = Clock::now();
    auto child = start(np, args);
    return finish(*child, started, deadline);
  }

  // The newest checkpoint's step in `dir` (-1: none yet).
  static long newest_checkpoint(const fs::path& dir) {
    long newest = -1;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      const std::string name = e.path().filename().string();
      if (name.rfind("ckpt-", 0) == 0 && e.path().extension() == ".kiln")
        newest = std::max(newest, std::atol(name.c_str() + 5));
    }
    return newest;
  }

  double accuracy_of(const std::string& model) const {
    const kiln_test::CliResult r = kiln("eval " + model + " --data " + digits_csv + " --json");
    EXPECT_EQ(r.rc, 0) << r.err;
    return nlohmann::json::parse(r.out).at("metrics").at("accuracy").get<double>();
  }
};

TEST_F(CliDistributed, TwoRanksTrainAndRankZeroAloneWrites) {
  const Job job =
      run(2, "train spec.json --data " + digits_csv + " --out m.kiln --distributed --quiet");
  ASSERT_FALSE(job.timed_out) << job.err;
  ASSERT_EQ(job.rc, 0) << job.err;
  // One rank printed: one summary, one "saved" line, one run folder (a second writer
  // would have made runs/spec-<time>-2).
  const std::vector<std::string> lines = kiln_test::lines(job.out);
  ASSERT_EQ(lines.size(), 4u) << job.out;
  EXPECT_EQ(lines[0].rfind("trained 6 epochs on ", 0), 0u) << job.out;
  EXPECT_EQ(lines[1].rfind("test (", 0), 0u) << job.out;
  EXPECT_EQ(lines[2], "saved m.kiln") << job.out;
  EXPECT_EQ(lines[3].rfind("run recorded in runs/spec-", 0), 0u) << job.out;
  std::vector<fs::path> runs;
  for (const auto& e : fs::directory_iterator(path("runs"))) runs.push_back(e.path());
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_TRUE(fs::exists(runs[0] / "model.kiln"));
  // The global rows are counted (not a shard): what one process trains on.
  const nlohmann::json one = kiln_json("train spec.json --data " + digits_csv +
                                       " --out one.kiln --epochs 1 --json "
                                       "--no-record --quiet");
  EXPECT_NE(lines[0].find(" on " + std::to_string(one.at("train_rows").get<long>()) + " rows"),
            std::string::npos)
      << lines[0];
  // The model trained by two ranks works: digits reach well above chance (10%).
  EXPECT_GT(accuracy_of("m.kiln"), 0.85);
}

TEST_F(CliDistributed, DataErrorEndsEveryRankNamingIt) {
  // Row 6 (the header is row 1) loses its last field: a data error on every rank.
  std::string csv = kiln_test::slurp(digits_csv);
  std::size_t at = 0;
  for (int i = 0; i < 5; ++i) at = csv.find('\n', at) + 1;
  const std::size_t end = csv.find('\n', at);
  csv.erase(csv.rfind(',', end), end - csv.rfind(',', end));
  kiln_test::write(path("bad.csv"), csv);
  const Job job = run(2, "train spec.json --data bad.csv --out m.kiln --distributed --quiet", 60s);
  ASSERT_FALSE(job.timed_out) << job.err;
  EXPECT_EQ(job.rc, 2) << job.err;  // the data error's exit code, as in one process
  EXPECT_NE(job.err.find(" of 2: bad.csv: row 6 has 64 fields"), std::string::npos) << job.err;
  EXPECT_NE(job.err.find("kiln: rank "), std::string::npos) << job.err;
  EXPECT_FALSE(fs::exists(path("m.kiln")));
}

TEST_F(CliDistributed, ErrorOnRankZeroAloneEndsTheOthers) {
  // Only rank 0 records: a run folder that already holds a run stops it before training
  // while rank 1 waits for rank 0's parameters; the job still ends, with rank 0 named.
  fs::create_directories(path("taken"));
  kiln_test::write(path("taken/run.json"), "{}");
  const Job job = run(2,
                      "train spec.json --data " + digits_csv +
                          " --out m.kiln --distributed --quiet --run-dir taken",
                      60s);
  ASSERT_FALSE(job.timed_out) << job.err;
  EXPECT_EQ(job.rc, 4) << job.err;  // an I/O error
  EXPECT_NE(job.err.find("kiln: rank 0 of 2: "), std::string::npos) << job.err;
  EXPECT_NE(job.err.find("taken"), std::string::npos) << job.err;
  EXPECT_FALSE(fs::exists(path("m.kiln")));
}

TEST_F(CliDistributed, KilledRankEndsTheJobAndOneRankResumes) {
  kiln_test::write(path("spec.json"), digits_spec(100));
  const std::string train = "train spec.json --data " + digits_csv +
                            " --out m.kiln --distributed --quiet --checkpoint-dir ck";
  const auto started = Clock::now();
  auto child = start(2, train + " --no-record");
  // Wait for the first checkpoint, then SIGKILL rank 1.
  while (newest_checkpoint(path("ck")) < 0 && child->running() && Clock::now() - started < 60s)
    std::this_thread::sleep_for(5ms);
  const long before_kill = newest_checkpoint(path("ck"));
  ASSERT_GE(before_kill, 0) << "no checkpoint within 60 s";
  pid_t rank1 = -1;
  for (pid_t p : descendants(child->pid()))
    if (mpi_rank_of(p) == 1) rank1 = p;
  ASSERT_GT(rank1, 0) << "rank 1's process not found";
  ASSERT_EQ(::kill(rank1, SIGKILL), 0);
  const auto killed = Clock::now();
  const Job job = finish(*child, started, 120s);
  const double seconds_to_end = std::chrono::duration<double>(Clock::now() - killed).count();
  ASSERT_FALSE(job.timed_out) << job.err;
  EXPECT_LT(seconds_to_end, 30.0);
  std::printf("rank 1 killed at checkpoint step %ld; the job ended %.2f s later\n", before_kill,
              seconds_to_end);
  EXPECT_NE(job.rc, 0);
  EXPECT_NE(job.err.find("rank 1"), std::string::npos) << job.err;
  EXPECT_FALSE(fs::exists(path("m.kiln"))) << "the job finished before the kill";

  // Another rank count (1) continues from the newest complete checkpoint and finishes.
  const long resumed_from = newest_checkpoint(path("ck"));
  const Job resumed = run(1, train + " --resume --json --run-dir resumed");
  ASSERT_FALSE(resumed.timed_out) << resumed.err;
  ASSERT_EQ(resumed.rc, 0) << resumed.err;
  const nlohmann::json j = nlohmann::json::parse(resumed.out);
  EXPECT_EQ(j.at("epochs").get<int>(), 100);
  EXPECT_GT(newest_checkpoint(path("ck")), resumed_from);
  // It continued: the recorded run's first metrics line (every 10th step) is at the
  // checkpoint's step, not at 0.
  std::ifstream metrics(path("resumed/metrics.jsonl"));
  std::string first;
  ASSERT_TRUE(std::getline(metrics, first));
  const long first_step = nlohmann::json::parse(first).at("step").get<long>();
  EXPECT_GE(first_step, resumed_from) << first;
  EXPECT_LT(first_step, resumed_from + 10) << first;
  EXPECT_GT(accuracy_of("m.kiln"), 0.85);
}

TEST_F(CliDistributed, WithoutMpirunTrainsAsOneRank) {
  const Job job = run(0, "train spec.json --data " + digits_csv +
                             " --out m.kiln --distributed --epochs 2 --no-record");
  ASSERT_FALSE(job.timed_out) << job.err;
  ASSERT_EQ(job.rc, 0) << job.err;
  EXPECT_NE(job.err.find("not started by mpirun or srun; training as 1 rank"), std::string::npos)
      << job.err;
  EXPECT_TRUE(fs::exists(path("m.kiln")));
}

}  // namespace
