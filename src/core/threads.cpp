#include "kiln/core/threads.hpp"

#include <omp.h>

#include <atomic>
#include <string>

#include "internal/threads.hpp"
#include "kiln/core/error.hpp"

namespace kiln {
namespace {
std::atomic<int> g_threads{0};
}

void set_num_threads(int n) {
  if (n < 1)
    throw ValueError("set_num_threads: thread count must be >= 1, got " + std::to_string(n));
  g_threads = n;
  // Eigen and oneDNN (OpenMP runtime) both follow OpenMP's setting.
  omp_set_num_threads(n);
}

int num_threads() {
  const int n = g_threads.load();
  return n > 0 ? n : omp_get_max_threads();
}

namespace internal {

// set_num_threads holds in the whole process (README, "Threads"): OpenMP's own setting is
// per thread, so each run brings its thread's in line.
void follow_thread_setting() {
  const int n = g_threads.load(std::memory_order_relaxed);
  if (n > 0 && omp_get_max_threads() != n) omp_set_num_threads(n);
}

}  // namespace internal

}  // namespace kiln
