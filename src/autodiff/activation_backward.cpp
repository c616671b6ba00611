// Builders of the training ops relu_backward and softmax_backward: the gradients of relu and
// softmax as one op each (kernels/*/training_activations.cpp), used by their backward rules
// (grad_rules.cpp) and by attention's (grad_attention.cpp).
#include <cstdint>
#include <string>

#include "internal/kernel.hpp"
#include "kiln/core/error.hpp"
#include "kiln/ops.hpp"
#include "ops/builder_util.hpp"

namespace kiln {
namespace {

Value backward_op(Op op, const char* name_of_op, Value y, Value gy, Attrs attrs, std::string name) {
  internal::require_valid(y, name_of_op, "y");
  internal::require_valid(gy, name_of_op, "gy");
  internal::require_same_graph(y, gy, name_of_op);
  // One shape, a dynamic dimension (the batch) matching any size.
  const Shape &ys = y.shape(), &gs = gy.shape();
  bool same = ys.rank() == gs.rank();
  for (std::size_t i = 0; same && i < ys.rank(); ++i)
    same = ys[i] == gs[i] || ys[i] < 0 || gs[i] < 0;
  if (!same)
    throw ShapeError(std::string(name_of_op) + ": y '" + y.name() + "' " + y.shape().str() +
                     " and gy '" + gy.name() + "' " + gy.shape().str() + " must have one shape");
  internal::ensure_training_kernels();
  return y.graph().add(op, {y, gy}, attrs, std::move(name));
}

}  // namespace

Value relu_backward(Value y, Value gy, std::string name) {
  return backward_op(Op::relu_backward, "relu_backward", y, gy, {}, std::move(name));
}

Value softmax_backward(Value y, Value gy, std::int64_t axis, std::string name) {
  internal::require_valid(y, "softmax_backward", "y");
  // Normalised here (internal::normalize_axis is kiln_infer's, hidden from a shared libkiln).
  const auto rank = static_cast<std::int64_t>(y.shape().rank());
  if (axis < -rank || axis >= rank)
    throw ValueError("softmax_backward: axis " + std::to_string(axis) + " is out of range for '" +
                     y.name() + "' of shape " + y.shape().str());
  Attrs a;
  a.axis = axis < 0 ? axis + rank : axis;
  return backward_op(Op::softmax_backward, "softmax_backward", y, gy, a, std::move(name));
}

}  // namespace kiln
