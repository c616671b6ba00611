// Kiln::kiln_mpi under mpiexec: runs tests/mpi/mpi_worker.cpp with 2 and 3 ranks
// (--oversubscribe: this machine may have fewer cores) and checks the collectives, the
// data-parallel equivalence of acceptance 1 and the failure behaviour (a throwing rank, a
// killed rank, a stuck rank end the job with a message naming the rank, in bounded time).
// Every mpiexec runs with a hard deadline after which it is killed: no test hangs.
// As root, Open MPI needs OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
// (scripts/test.sh exports them for the test suite).
#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/child_process.hpp"

namespace {

using Clock = std::chrono::steady_clock;

struct MpiRun {
  int status = -1;         // mpiexec's exit code, or -signal
  bool timed_out = false;  // killed at the hard deadline
  std::string output;      // stdout and stderr of mpiexec and every rank
  Clock::time_point exited;
};

MpiRun run_mpi(int ranks, const std::vector<std::string>& args,
               std::chrono::seconds deadline = std::chrono::seconds(120)) {
  // stderr joins stdout (the ranks' messages and mpiexec's own), read through one pipe.
  std::vector<std::string> argv = {"/bin/sh",         "-c",        "exec \"$0\" \"$@\" 2>&1",
                                   KILN_MPIEXEC,      "-n",        std::to_string(ranks),
                                   "--oversubscribe", "--bind-to", "none",
                                   KILN_MPI_WORKER};
  argv.insert(argv.end(), args.begin(), args.end());
  kiln_test::ChildProcess mpiexec(argv);
  MpiRun run;
  run.timed_out = !mpiexec.read_all(run.output, deadline);
  if (!run.timed_out) {
    // stdout closed: mpiexec is exiting (the stop below kills it if it lingers).
    const auto limit = Clock::now() + std::chrono::seconds(10);
    while (mpiexec.running() && Clock::now() < limit) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  run.exited = Clock::now();
  run.status = mpiexec.stop(SIGTERM, std::chrono::seconds(5));
  std::printf("---- mpiexec -n %d %s ... (exit %d)\n%s----\n", ranks, args.at(0).c_str(),
              run.status, run.output.c_str());
  return run;
}

// The steady-clock time (same clock in every process of this machine) a rank printed as
// "<label>, steady_ns N".
Clock::time_point printed_time(const std::string& output, const std::string& label) {
  const std::regex pattern(label + ".*steady_ns ([0-9]+)");
  std::smatch m;
  if (!std::regex_search(output, m, pattern)) {
    ADD_FAILURE() << "no \"" << label << "\" line in the output";
    return Clock::now();
  }
  return Clock::time_point(std::chrono::nanoseconds(std::stoll(m[1].str())));
}

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

const std::string digits = KILN_DATASETS_DIR "/digits.csv";

int count(const std::string& text, const std::string& what) {
  int n = 0;
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// Started without a launcher, a program is a world of one rank (MPI is not started).
TEST(MpiCommunicator, WithoutALauncherIsOneRank) {
  kiln_test::ChildProcess alone({KILN_MPI_WORKER, "collectives"});
  std::string output;
  ASSERT_TRUE(alone.read_all(output, std::chrono::seconds(60)));
  EXPECT_EQ(alone.stop(), 0);
  EXPECT_NE(output.find("rank 0 of 1 (launched_by_mpi 0): collectives OK"), std::string::npos)
      << output;
}

TEST(MpiCommunicator, CollectivesOnTwoRanks) {
  const MpiRun run = run_mpi(2, {"collectives"});
  ASSERT_FALSE(run.timed_out);
  EXPECT_EQ(run.status, 0);
  EXPECT_EQ(count(run.output, "(launched_by_mpi 1): collectives OK"), 2) << run.output;
  EXPECT_EQ(count(run.output, "FAILED"), 0);
}

TEST(MpiCommunicator, CollectivesOnThreeRanks) {
  const MpiRun run = run_mpi(3, {"collectives"});
  ASSERT_FALSE(run.timed_out);
  EXPECT_EQ(run.status, 0);
  EXPECT_EQ(count(run.output, "(launched_by_mpi 1): collectives OK"), 3) << run.output;
  EXPECT_EQ(count(run.output, "FAILED"), 0);
}

// Acceptance 1: 2 ranks with batch 32 each give the weights of 1 process with batch 64,
// within 1e-5 relative after 100 steps of SGD with momentum on digits.csv (the worker
// compares on rank 0 and fails otherwise).
TEST(MpiDataParallel, TwoRanksHalfBatchGiveOneProcessFullBatchWeights) {
  const MpiRun run = run_mpi(2, {"equivalence", digits, "64", "100"});
  ASSERT_FALSE(run.timed_out);
  EXPECT_EQ(run.status, 0);
  EXPECT_NE(run.output.find("np 2 x batch 32 vs 1 x batch 64 after 100 steps"), std::string::npos);
  EXPECT_EQ(count(run.output, "global batch 64"), 2);
  EXPECT_EQ(count(run.output, "FAILED"), 0);
}

// The same with 3 ranks of 21 rows against one process with 63.
TEST(MpiDataParallel, ThreeRanksGiveOneProcessWeights) {
  const MpiRun run = run_mpi(3, {"equivalence", digits, "63", "100"});
  ASSERT_FALSE(run.timed_out);
  EXPECT_EQ(run.status, 0);
  EXPECT_NE(run.output.find("np 3 x batch 21 vs 1 x batch 63 after 100 steps"), std::string::npos);
  EXPECT_EQ(count(run.output, "global batch 63"), 3);
  EXPECT_EQ(count(run.output, "FAILED"), 0);
}

// A DataError on rank 1 inside run_or_abort ends the job: non-zero exit, within 30 s,
// with the message naming the rank (rank 0 was waiting in an all-reduce).
TEST(MpiFailure, DataErrorOnOneRankAbortsTheJob) {
  const auto start = Clock::now();
  const MpiRun run = run_mpi(2, {"throw"}, std::chrono::seconds(60));
  ASSERT_FALSE(run.timed_out);
  const double seconds = seconds_between(start, run.exited);
  std::printf("the job ended %.2f s after mpiexec started\n", seconds);
  EXPECT_NE(run.status, 0);
  EXPECT_LT(seconds, 30.0);
  EXPECT_NE(run.output.find("kiln: rank 1 of 2: digits.csv: row 7, column \"p3\""),
            std::string::npos);
  EXPECT_EQ(run.output.find("completed without rank 1"), std::string::npos);
}

// Acceptance 2: rank 1 dies (SIGKILL at step 20 of data-parallel training);
// the job ends on the other rank within 30 s and the launcher's message names the rank.
TEST(MpiFailure, KilledRankEndsTheJob) {
  const MpiRun run = run_mpi(2, {"kill", digits, "20"}, std::chrono::seconds(90));
  ASSERT_FALSE(run.timed_out);
  const double seconds = seconds_between(printed_time(run.output, "raises SIGKILL"), run.exited);
  std::printf("the job ended %.2f s after rank 1 was killed\n", seconds);
  EXPECT_NE(run.status, 0);
  EXPECT_GE(seconds, 0.0);
  EXPECT_LT(seconds, 30.0);
  EXPECT_TRUE(std::regex_search(run.output, std::regex("process rank 1 .*signal 9"))) << run.output;
}

// A rank that is stuck (alive, never joining) with timeout_seconds 3: rank 0 aborts the job
// naming the operation and the timeout, after 3 s and well before a hang.
TEST(MpiFailure, StuckRankTimesOut) {
  const MpiRun run = run_mpi(2, {"stuck", "3"}, std::chrono::seconds(60));
  ASSERT_FALSE(run.timed_out);
  const double seconds =
      seconds_between(printed_time(run.output, "enters all_reduce_sum"), run.exited);
  std::printf("the job ended %.2f s after rank 0 entered the all-reduce (timeout 3 s)\n", seconds);
  EXPECT_NE(run.status, 0);
  EXPECT_GE(seconds, 3.0);
  EXPECT_LT(seconds, 3.0 + 15.0);
  EXPECT_NE(run.output.find("kiln: rank 0 of 2: all_reduce_sum did not complete within the "
                            "timeout of 3 s"),
            std::string::npos);
}

}  // namespace
