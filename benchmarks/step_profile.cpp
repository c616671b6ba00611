// Where a W1 training step's time goes, at 1 and 2 threads (issue 16: threading that
// scales): the step runs with a RunObserver that adds each step's time to its backend, and
// the optimizer's update is timed apart. Counters, per training step: onednn_ms (the oneDNN
// kernels, here the matmuls), eigen_ms (every Eigen and reference kernel: ReLU backward,
// bias sums, softmax cross-entropy, ...), optimizer_ms (SGD with momentum over the 1.86 M
// parameters). Comparing the two thread counts shows which part does not halve.
//
//   step_profile --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <chrono>
#include <cmath>
#include <string_view>

#include "kiln/core/threads.hpp"
#include "workloads.hpp"

namespace {

using Clock = std::chrono::steady_clock;

// Adds the time since the previous step (or since `start`) to the step's backend.
struct BackendTimer : kiln::RunObserver {
  Clock::time_point last;
  double onednn = 0.0, other = 0.0;
  void on_step(const kiln::ObservedStep& s) override {
    const Clock::time_point now = Clock::now();
    const double dt = std::chrono::duration<double>(now - last).count();
    last = now;
    (std::string_view(s.kernel).starts_with("onednn") ? onednn : other) += dt;
  }
};

void BM_W1StepProfile(benchmark::State& state) {
  kiln::set_num_threads(static_cast<int>(state.range(0)));
  kiln_bench::KilnW1 w1;  // compiles and takes the warm-up steps
  BackendTimer timer;
  double optimizer = 0.0;
  double loss = 0.0;
  for (auto _ : state) {
    timer.last = Clock::now();
    loss = w1.forward_backward(&timer);
    const Clock::time_point t = Clock::now();
    w1.update();
    optimizer += std::chrono::duration<double>(Clock::now() - t).count();
  }
  const auto per_step = benchmark::Counter::kAvgIterations;
  state.counters["onednn_ms"] = benchmark::Counter(timer.onednn * 1e3, per_step);
  state.counters["eigen_ms"] = benchmark::Counter(timer.other * 1e3, per_step);
  state.counters["optimizer_ms"] = benchmark::Counter(optimizer * 1e3, per_step);
  state.SetItemsProcessed(state.iterations() * kiln_bench::w1_batch);
  if (!std::isfinite(loss)) state.SkipWithError("non-finite loss");
}

}  // namespace

BENCHMARK(BM_W1StepProfile)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

BENCHMARK_MAIN();
