// Reference scatter_add_rows (gather's gradient, training only; built into kiln):
// out = zeros([R, D...]); out[indices[s]] += updates[s]. Sums accumulate in double, in the
// order of s; an index outside [0, R) raises kiln::ValueError naming the node and the index.
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/ref/ref.hpp"
#include "kernels/ref/ref_util.hpp"

namespace kiln::internal {
namespace ref {
namespace {

/// indices int [S...], updates float [S..., D...] -> [size, D...].
std::string check_scatter_add_rows(const Node& node, Descs in, const TensorDesc& out) {
  if (auto e = need_arity(in, 2, 2); !e.empty()) return e;
  if (auto e = need_integer(in[0], "indices"); !e.empty()) return e;
  if (auto e = need_float_alike(in.subspan(1), out); !e.empty()) return e;
  const Shape& indices = in[0].shape;
  const Shape& updates = in[1].shape;
  bool prefix = updates.rank() >= indices.rank();
  for (std::size_t d = 0; prefix && d < indices.rank(); ++d) prefix = updates[d] == indices[d];
  if (!prefix)
    return "updates " + updates.str() + " do not start with the indices' shape " + indices.str();
  if (node.attrs.size < 0) return "negative row count " + std::to_string(node.attrs.size);
  std::vector<std::int64_t> expected{node.attrs.size};
  expected.insert(expected.end(),
                  updates.dims().begin() + static_cast<std::ptrdiff_t>(indices.rank()),
                  updates.dims().end());
  return need_out_shape(out, Shape(std::move(expected)));
}

template <class T>
void scatter_add_rows_typed(const KernelArgs& args) {
  const Tensor& indices = args.inputs[0];
  const Tensor& updates_t = args.inputs[1];
  const std::int64_t rows = args.node.attrs.size;
  const std::int64_t row_size = product(updates_t.shape(), indices.rank(), updates_t.rank());
  std::vector<double> acc(static_cast<std::size_t>(args.output.numel()), 0.0);
  const T* updates = updates_t.data<T>();
  for (std::int64_t s = 0; s < indices.numel(); ++s) {
    const std::int64_t row = index_at(indices, s);
    if (row < 0 || row >= rows)
      throw ValueError("scatter_add_rows " + node_label(args.node) + ": index " +
                       std::to_string(row) + " (at position " + std::to_string(s) +
                       ") is outside [0, " + std::to_string(rows) + ")");
    for (std::int64_t j = 0; j < row_size; ++j)
      acc[static_cast<std::size_t>(row * row_size + j)] +=
          static_cast<double>(updates[s * row_size + j]);
  }
  T* out = args.output.data<T>();
  for (std::int64_t i = 0; i < args.output.numel(); ++i)
    out[i] = static_cast<T>(acc[static_cast<std::size_t>(i)]);
}

void run_scatter_add_rows(const KernelArgs& args) {
  require(check_scatter_add_rows, args);
  with_float(args.output.dtype(), [&](auto tag) { scatter_add_rows_typed<decltype(tag)>(args); });
}

}  // namespace
}  // namespace ref

void register_reference_training_kernels(KernelTable& t) {
  t.add<Op::scatter_add_rows>({"reference", "ref_scatter_add_rows",
                               ref::supports_check<ref::check_scatter_add_rows>,
                               ref::run_scatter_add_rows});
  ref::add_cnn_training_kernels(t);
  ref::add_recurrent_training_kernels(t);  // ---- rnn ----
  ref::add_attention_training_kernels(t);  // ---- attention ----
  ref::add_layer_norm_training_kernels(t);
  ref::add_activation_training_kernels(t);
}

}  // namespace kiln::internal
