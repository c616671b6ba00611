// Thread-count control for every kernel library Kiln uses (OpenMP, Eigen, oneDNN).
#pragma once

#include "kiln/export.hpp"

namespace kiln {

/// Sets the number of threads kernels use; n >= 1.
KILN_API void set_num_threads(int n);
/// The number of threads kernels use.
KILN_API int num_threads();

}  // namespace kiln
