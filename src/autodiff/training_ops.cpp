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

namespace {

Value training_op(Op op, std::vector<Value> ins, Attrs a, std::string name) {
  const std::string op_str(op_name(op));
  for (const Value& v : ins) {
    internal::require_valid(v, op_str.c_str(), "input");
    internal::require_same_graph(ins[0], v, op_str.c_str());
  }
  internal::ensure_training_kernels();
  return ins[0].graph().add(op, ins, std::move(a), std::move(name));
}

}  // namespace

Value conv2d_backward_weights(Value x, Value gy, Pair kernel, Conv2dOptions options,
                              std::string name) {
  Attrs a;
  a.kernel = kernel;
  a.stride = options.stride;
  a.padding = options.padding;
  a.dilation = options.dilation;
  a.groups = options.groups;
  return training_op(Op::conv2d_backward_weights, {x, gy}, a, std::move(name));
}

Value max_pool2d_backward(Value x, Value gy, Pool2dOptions options, std::string name) {
  return training_op(Op::max_pool2d_backward, {x, gy}, internal::pool_attrs(options),
                     std::move(name));
}

Value avg_pool2d_backward(Value x, Value gy, Pool2dOptions options, std::string name) {
  return training_op(Op::avg_pool2d_backward, {x, gy}, internal::pool_attrs(options),
                     std::move(name));
}

Value batch_norm_backward(Value x, Value gamma, Value gy, float eps, std::string name) {
  Attrs a;
  a.eps = eps;
  return training_op(Op::batch_norm_backward, {x, gamma, gy}, a, std::move(name));
}

}  // namespace kiln
