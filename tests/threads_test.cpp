// kiln::set_num_threads holds in the whole process: OpenMP keeps its thread count per
// thread, and a run on an application's thread brings that thread's count in line with the
// one call (Eigen's GEMM and oneDNN read it there).
#include <gtest/gtest.h>
#include <omp.h>

#include <thread>
#include <vector>

#include "kiln/kiln.hpp"

using namespace kiln;

namespace {

// Runs a small graph on the calling thread and returns its OpenMP thread count after.
int count_after_a_run(Executable& exe) {
  exe.run({{"x", Tensor::full({4, 8}, 0.5)}});
  return omp_get_max_threads();
}

}  // namespace

TEST(Threads, TheCountSetOnOneThreadHoldsOnEveryThreadThatRuns) {
  Graph g;
  Value x = g.input("x", {batch, 8});
  Value y = relu(matmul(x, g.parameter("w", Tensor::full({8, 3}, 0.25))));
  Executable exe(g, {y});
  const int initial = omp_get_max_threads();
  // A count no thread has by default.
  const int wanted = initial + 3;
  set_num_threads(wanted);
  int before = 0, after = 0;
  std::thread app([&] {
    before = omp_get_max_threads();
    after = count_after_a_run(exe);
  });
  app.join();
  EXPECT_NE(before, wanted);  // OpenMP's own setting is per thread
  EXPECT_EQ(after, wanted);
  EXPECT_EQ(num_threads(), wanted);
  // A later change reaches threads that already ran.
  set_num_threads(1);
  std::thread again([&] { after = count_after_a_run(exe); });
  again.join();
  EXPECT_EQ(after, 1);
  set_num_threads(initial);
}
