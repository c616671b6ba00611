// Reductions (sum, mean, max) and softmax / log_softmax: shape rules and builders.
#include "kiln/ops.hpp"
#include "ops/builder_util.hpp"
#include "ops/rules.hpp"

namespace kiln::internal {

TensorDesc rule_reduce(const RuleContext& c) {
  require_float(c, 0);
  const Shape& x = c.inputs[0].shape;
  const auto& axes = c.attrs.axes;
  if (axes.empty()) c.fail("needs at least one axis");
  std::vector<bool> reduced(x.rank(), false);
  for (std::size_t i = 0; i < axes.size(); ++i) {
    if (axes[i] < 0 || axes[i] >= static_cast<std::int64_t>(x.rank()) ||
        (i && axes[i] <= axes[i - 1]))
      c.fail("axes " + Shape(axes).str() + " must be sorted, unique and inside the input");
    reduced[static_cast<std::size_t>(axes[i])] = true;
  }
  std::vector<std::int64_t> out;
  for (std::size_t i = 0; i < x.rank(); ++i) {
    if (!reduced[i])
      out.push_back(x[i]);
    else if (c.attrs.keepdims)
      out.push_back(1);
  }
  return {Shape(out), c.inputs[0].dtype};
}

TensorDesc rule_softmax(const RuleContext& c) {
  require_float(c, 0);
  if (c.attrs.axis < 0 || c.attrs.axis >= static_cast<std::int64_t>(c.inputs[0].shape.rank()))
    c.fail("axis " + std::to_string(c.attrs.axis) + " is outside the input");
  return c.inputs[0];
}

}  // namespace kiln::internal

namespace kiln {

namespace {

Value reduce(Op op, Value x, std::vector<std::int64_t> axes, bool keepdims, std::string name) {
  const char* op_str = op == Op::sum ? "sum" : op == Op::mean ? "mean" : "max";
  internal::require_valid(x, op_str, "x");
  if (x.shape().rank() == 0) return x;  // nothing to reduce over
  Attrs a;
  a.axes = internal::normalize_axes(std::move(axes), x.shape().rank(), op_str, x);
  a.keepdims = keepdims;
  return x.graph().add(op, {x}, a, std::move(name));
}

Value softmax_like(Op op, Value x, std::int64_t axis, std::string name) {
  const char* op_str = op == Op::softmax ? "softmax" : "log_softmax";
  internal::require_valid(x, op_str, "x");
  Attrs a;
  a.axis = internal::normalize_axis(axis, x.shape().rank(), op_str, x);
  return x.graph().add(op, {x}, a, std::move(name));
}

}  // namespace

Value sum(Value x, std::vector<std::int64_t> axes, bool keepdims, std::string name) {
  return reduce(Op::sum, x, std::move(axes), keepdims, std::move(name));
}
Value mean(Value x, std::vector<std::int64_t> axes, bool keepdims, std::string name) {
  return reduce(Op::mean, x, std::move(axes), keepdims, std::move(name));
}
Value max(Value x, std::vector<std::int64_t> axes, bool keepdims, std::string name) {
  return reduce(Op::max, x, std::move(axes), keepdims, std::move(name));
}
Value softmax(Value x, std::int64_t axis, std::string name) {
  return softmax_like(Op::softmax, x, axis, std::move(name));
}
Value log_softmax(Value x, std::int64_t axis, std::string name) {
  return softmax_like(Op::log_softmax, x, axis, std::move(name));
}

}  // namespace kiln
