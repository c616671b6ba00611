// Builders of ops whose kernels only Kiln::kiln carries (training ops).
#include "internal/kernel.hpp"
#include "kiln/ops.hpp"
#include "ops/builder_util.hpp"

namespace kiln {

Value scatter_add_rows(Value indices, Value updates, std::int64_t rows, std::string name) {
  internal::require_valid(indices, "scatter_add_rows", "indices");
  internal::require_valid(updates, "scatter_add_rows", "updates");
  internal::require_same_graph(indices, updates, "scatter_add_rows");
  internal::ensure_training_kernels();
  Attrs a;
  a.size = rows;
  return indices.graph().add(Op::scatter_add_rows, {indices, updates}, a, std::move(name));
}

}  // namespace kiln
