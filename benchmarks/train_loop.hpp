// The timing loop of a training-step benchmark, shared by the w*_train programs and the
// libtorch comparison: `w.step()` per iteration, items = rows, the last loss as a counter,
// and an error when the loss is not finite or did not fall below the first step's.
#pragma once

#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdint>
#include <string>

namespace kiln_bench {

template <class W>
void time_train_steps(benchmark::State& state, W& w, std::int64_t batch) {
  for (auto _ : state) {
    benchmark::DoNotOptimize(w.step());
    benchmark::ClobberMemory();
  }
  const double last = w.step();
  state.SetItemsProcessed(state.iterations() * batch);
  state.counters["loss"] = last;
  if (!std::isfinite(last) || !(last < w.first_loss())) {
    state.SkipWithError(
        ("loss did not decrease: " + std::to_string(w.first_loss()) + " -> " + std::to_string(last))
            .c_str());
  }
}

}  // namespace kiln_bench
