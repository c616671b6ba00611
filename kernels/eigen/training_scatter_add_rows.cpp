// Eigen kernel of scatter_add_rows (gather's gradient), registered by kiln (training).
//
// Rows are accumulated in index order, so results do not depend on the thread count:
// threads split the columns of each row, never the rows.
#include <cstring>

#include "kernels/eigen/common.hpp"
#include "kernels/eigen/eigen_kernels.hpp"

namespace kiln::internal {
namespace {

using eigen::ArrayMap;
using eigen::ConstArrayMap;

bool supports_scatter_add_rows(const KernelQuery& q, std::string* why) {
  if (q.inputs.size() != 2) return eigen::decline(why, "needs indices and updates");
  if (!eigen::is_index_type(q.inputs[0].dtype))
    return eigen::decline(why, "indices must be i32 or i64");
  if (q.inputs[1].dtype != DType::f32 || q.output.dtype != DType::f32)
    return eigen::decline(why, "eigen kernels handle f32 only");
  if (q.output.shape.rank() < 1) return eigen::decline(why, "output must have rank >= 1");
  return true;
}

void run_scatter_add_rows(const KernelArgs& args) {
  const Tensor& indices = args.inputs[0];
  const std::int64_t rows = args.output.dim(0), n = indices.numel();
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t v = eigen::index_at(indices, i);
    if (v < 0 || v >= rows)
      throw ValueError("scatter_add_rows node '" + args.node.name + "': index " +
                       std::to_string(v) + " at position " + std::to_string(i) +
                       " is outside [0, " + std::to_string(rows) + ")");
  }
  float* y = args.output.data<float>();
  std::memset(y, 0, args.output.nbytes());
  const std::int64_t width = rows == 0 ? 0 : args.output.numel() / rows;
  if (width == 0) return;
  const float* u = args.inputs[1].data<float>();
  const std::int64_t grain =
      std::max<std::int64_t>(64, eigen::parallel_grain / std::max<std::int64_t>(1, n));
  eigen::parallel_ranges(width, grain, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t s = 0; s < n; ++s)
      ArrayMap(y + eigen::index_at(indices, s) * width + lo, hi - lo) +=
          ConstArrayMap(u + s * width + lo, hi - lo);
  });
}

}  // namespace

void register_eigen_training_kernels(KernelTable& t) {
  t.add<Op::scatter_add_rows>(
      {"eigen", "eigen_scatter_add_rows", supports_scatter_add_rows, run_scatter_add_rows});
  eigen::register_training_cnn(t);
  eigen::register_training_recurrent(t);  // ---- rnn ----
  eigen::register_training_attention(t);  // ---- attention ----
  eigen::register_training_layer_norm(t);
  eigen::register_training_activations(t);
}

}  // namespace kiln::internal
