// Where a workload's time goes, step by step: W1 or W2 (a training step: every kernel
// step of TrainStep::run, then the optimizer's update) or W4 (one inference run), with a
// RunObserver that adds the time since the previous step to each step. Prints the mean
// per run of every step (its position, op, node, kernel and output shape) and the whole.
// Not a Google Benchmark: a table to read beside the benchmarks, e.g. to compare 1 and 2
// threads step by step (issue 16's threading item).
//
//   node_profile w1|w2|w4 [threads] [runs]        (defaults: 1 thread, 50 runs)
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "kiln/core/threads.hpp"
#include "workloads.hpp"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Step i's time is from the end of step i-1 (or the run's start) to the end of step i.
struct StepTimer : kiln::RunObserver {
  Clock::time_point last;
  std::vector<std::string> names;  // by position in the run
  std::vector<double> total;
  void on_step(const kiln::ObservedStep& s) override {
    const Clock::time_point now = Clock::now();
    if (s.index >= total.size()) {
      total.resize(s.index + 1, 0.0);
      names.resize(s.index + 1);
      names[s.index] = std::string(kiln::op_name(s.node.op)) + " " + s.node.name + " [" +
                       std::string(s.kernel) + "] " + s.value.shape().str();
    }
    total[s.index] += std::chrono::duration<double>(now - last).count();
    last = now;
  }
};

}  // namespace

int main(int argc, char** argv) {
  const std::string which = argc > 1 ? argv[1] : "";
  const int threads = argc > 2 ? std::atoi(argv[2]) : 1;
  const int runs = argc > 3 ? std::atoi(argv[3]) : 50;
  if ((which != "w1" && which != "w2" && which != "w4") || threads < 1 || runs < 1) {
    std::fprintf(stderr, "usage: node_profile w1|w2|w4 [threads >= 1] [runs >= 1]\n");
    return 2;
  }
  kiln::set_num_threads(threads);
  StepTimer timer;
  double whole = 0.0, optimizer = 0.0;
  auto time_runs = [&](auto&& run, auto&& after) {
    for (int i = 0; i < runs; ++i) {
      const Clock::time_point start = Clock::now();
      timer.last = start;
      run();
      const Clock::time_point t = Clock::now();
      after();
      optimizer += seconds_since(t);
      whole += seconds_since(start);
    }
  };
  if (which == "w4") {
    kiln_bench::KilnW4 w4;
    time_runs([&] { w4.run(&timer); }, [] {});
  } else {
    auto profile = [&](kiln_bench::KilnTrainWorkload& w) {
      time_runs([&] { w.forward_backward(&timer); }, [&] { w.update(); });
    };
    if (which == "w1") {
      kiln_bench::KilnW1 w;
      profile(w);
    } else {
      kiln_bench::KilnW2 w;
      profile(w);
    }
  }
  std::printf("%s, %d thread(s), mean of %d runs: %.3f ms\n", which.c_str(), threads, runs,
              whole * 1e3 / runs);
  for (std::size_t i = 0; i < timer.total.size(); ++i)
    std::printf("%10.1f us  %3zu %s\n", timer.total[i] * 1e6 / runs, i, timer.names[i].c_str());
  if (which != "w4") std::printf("%10.1f us      optimizer update\n", optimizer * 1e6 / runs);
  return 0;
}
