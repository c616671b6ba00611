// The fuzz build runs decoded models on the reference kernels only (the Eigen and oneDNN
// kernels would multiply its build time under the sanitizers): empty registries for both.
// It has no OpenMP either (src/core/threads.cpp is left out): a run has no thread count to
// bring in line.
#include "internal/kernel.hpp"
#include "internal/threads.hpp"

namespace kiln::internal {
void register_eigen_kernels(KernelTable&) {}
void follow_thread_setting() {}
}  // namespace kiln::internal
