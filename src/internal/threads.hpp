// Internal: makes the calling thread's OpenMP setting follow kiln::set_num_threads.
#pragma once

namespace kiln::internal {

/// OpenMP keeps the thread count per thread: omp_set_num_threads on the thread that calls
/// kiln::set_num_threads leaves every other thread at OMP_NUM_THREADS (or all cores), and
/// Eigen's GEMM and oneDNN read the calling thread's value. Every run calls this first, so
/// the count set once holds on each of an application's threads. Costs one atomic load and
/// one OpenMP query when nothing changes.
void follow_thread_setting();

}  // namespace kiln::internal
