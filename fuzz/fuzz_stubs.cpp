// The fuzz build runs decoded models on the reference kernels only (the Eigen and oneDNN
// kernels would multiply its build time under the sanitizers): empty registries for both.
#include "internal/kernel.hpp"

namespace kiln::internal {
void register_eigen_kernels(KernelTable&) {}
}  // namespace kiln::internal
