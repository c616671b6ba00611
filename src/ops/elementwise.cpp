// Elementwise ops: shape rules and builders (arithmetic, activations, comparisons,
// broadcasting with expand).
#include <algorithm>
#include <cmath>
#include <numbers>

#include "kiln/ops.hpp"
#include "ops/builder_util.hpp"
#include "ops/rules.hpp"

namespace kiln::internal {

TensorDesc rule_leaf(const RuleContext& c) { c.fail("leaf ops are created by Graph, not add()"); }

TensorDesc rule_unary(const RuleContext& c) {
  require_float(c, 0);
  return c.inputs[0];
}

TensorDesc rule_binary(const RuleContext& c) {
  require_same_dtype(c);
  require_float(c, 0);
  const Shape& a = c.inputs[0].shape;
  const Shape& b = c.inputs[1].shape;
  if (a.rank() != b.rank()) c.fail("operands must have the same shape");
  Shape out = a;
  for (std::size_t i = 0; i < a.rank(); ++i) {
    if (!dims_match(a[i], b[i])) c.fail("operands must have the same shape");
    if (out[i] < 0) out[i] = b[i];
  }
  return {out, c.inputs[0].dtype};
}

TensorDesc rule_expand(const RuleContext& c) {
  if (c.inputs.size() > 2) c.fail("expects x and an optional 'like' input");
  const Shape& x = c.inputs[0].shape;
  const auto& target = c.attrs.axes;
  if (target.size() != x.rank())
    c.fail("target " + Shape(target).str() + " must have the input's rank");
  std::vector<std::int64_t> out(target.size());
  for (std::size_t i = 0; i < target.size(); ++i) {
    std::int64_t t = target[i];
    if (t < 0) {
      // A dynamic dim comes from `like`, or without it from x itself (which then holds the
      // batch there: broadcast_pair gives no `like` to an operand that has the batch; at
      // run time with batch 1 that dim is 1 and stays 1).
      if (c.inputs.size() == 2 && c.inputs[1].shape.rank() == target.size())
        t = c.inputs[1].shape[i];
      else
        t = x[i];
    }
    if (x[i] != 1 && !dims_match(x[i], t))
      c.fail("cannot expand dimension " + std::to_string(i) + " to " + Shape(target).str());
    out[i] = t;
  }
  return {Shape(out), c.inputs[0].dtype};
}

std::int64_t normalize_axis(std::int64_t axis, std::size_t rank, const char* op, Value x) {
  const auto r = static_cast<std::int64_t>(rank);
  if (axis < -r || axis >= r)
    throw ShapeError(std::string(op) + ": axis " + std::to_string(axis) + " is outside value '" +
                     x.name() + "' of shape " + x.shape().str());
  return axis < 0 ? axis + r : axis;
}

std::vector<std::int64_t> normalize_axes(std::vector<std::int64_t> axes, std::size_t rank,
                                         const char* op, Value x) {
  if (axes.empty()) {
    for (std::size_t i = 0; i < rank; ++i) axes.push_back(static_cast<std::int64_t>(i));
    return axes;
  }
  for (auto& a : axes) a = normalize_axis(a, rank, op, x);
  std::sort(axes.begin(), axes.end());
  if (std::adjacent_find(axes.begin(), axes.end()) != axes.end())
    throw ShapeError(std::string(op) + ": repeated axis for value '" + x.name() + "'");
  return axes;
}

namespace {

// x with `rank` dims, adding leading 1s.
Value to_rank(Value x, std::size_t rank) {
  if (x.shape().rank() == rank) return x;
  std::vector<std::int64_t> dims(rank - x.shape().rank(), 1);
  for (auto d : x.shape()) dims.push_back(d);
  return reshape(x, Shape(dims));
}

}  // namespace

std::pair<Value, Value> broadcast_pair(Value a, Value b, const char* op) {
  require_valid(a, op, "a");
  require_valid(b, op, "b");
  require_same_graph(a, b, op);
  if (a.shape() == b.shape()) return {a, b};
  const std::size_t r = std::max(a.shape().rank(), b.shape().rank());
  Value ar = to_rank(a, r), br = to_rank(b, r);
  std::vector<std::int64_t> out(r);
  for (std::size_t i = 0; i < r; ++i) {
    const auto da = ar.shape()[i], db = br.shape()[i];
    if (da == db || db == 1) {
      out[i] = da;
    } else if (da == 1) {
      out[i] = db;
    } else if (dims_match(da, db)) {
      out[i] = da >= 0 ? da : db;  // the batch meets a static size: checked when run
    } else {
      throw ShapeError(std::string(op) + ": cannot broadcast '" + a.name() + "' " +
                       a.shape().str() + " with '" + b.name() + "' " + b.shape().str());
    }
  }
  const Shape target(out);
  // A dynamic (batch) dim of the target comes from the operand that has it: an operand of
  // size 1 there takes it from the other one (expand's `like`); an operand that has it
  // itself takes no `like` (the other's size 1 would replace it).
  auto needs_like = [&](Value self) {
    for (std::size_t i = 0; i < r; ++i)
      if (out[i] < 0 && self.shape()[i] == 1) return true;
    return false;
  };
  if (ar.shape() != target) ar = expand(ar, target, needs_like(ar) ? br : Value{});
  if (br.shape() != target) br = expand(br, target, needs_like(br) ? ar : Value{});
  return {ar, br};
}

}  // namespace kiln::internal

namespace kiln {

using internal::broadcast_pair;
using internal::require_valid;

namespace {

Value binary(Op op, Value a, Value b, std::string name) {
  auto [x, y] = broadcast_pair(a, b, std::string(op_name(op)).c_str());
  return a.graph().add(op, {x, y}, {}, std::move(name));
}

Value unary(Op op, Value x, std::string name, Attrs attrs = {}) {
  require_valid(x, std::string(op_name(op)).c_str(), "x");
  return x.graph().add(op, {x}, std::move(attrs), std::move(name));
}

}  // namespace

Value add(Value a, Value b, std::string name) { return binary(Op::add, a, b, std::move(name)); }
Value sub(Value a, Value b, std::string name) { return binary(Op::sub, a, b, std::move(name)); }
Value mul(Value a, Value b, std::string name) { return binary(Op::mul, a, b, std::move(name)); }
Value div(Value a, Value b, std::string name) { return binary(Op::div, a, b, std::move(name)); }
Value equal(Value a, Value b, std::string name) { return binary(Op::equal, a, b, std::move(name)); }

Value scalar_like(Value x, double value) {
  require_valid(x, "scalar_like", "x");
  return x.graph().constant(Tensor::scalar(value, x.dtype()));
}

namespace {

// The scalar operand of arithmetic with x, as a constant of x's dtype. Checked first, so a
// refused operation adds no node.
Value scalar_operand(Value x, double value, const char* op) {
  require_valid(x, op, "x");
  if (!is_floating(x.dtype()))
    throw DTypeError(std::string(op) + ": value '" + x.name() + "' is " +
                     std::string(to_string(x.dtype())) + "; arithmetic needs f32 or f64");
  return scalar_like(x, value);
}

}  // namespace

Value add(Value a, double b) { return add(a, scalar_operand(a, b, "add")); }
Value add(double a, Value b) { return add(scalar_operand(b, a, "add"), b); }
Value sub(Value a, double b) { return sub(a, scalar_operand(a, b, "sub")); }
Value sub(double a, Value b) { return sub(scalar_operand(b, a, "sub"), b); }
Value mul(Value a, double b) { return mul(a, scalar_operand(a, b, "mul")); }
Value mul(double a, Value b) { return mul(scalar_operand(b, a, "mul"), b); }
Value div(Value a, double b) { return div(a, scalar_operand(a, b, "div")); }
Value div(double a, Value b) { return div(scalar_operand(b, a, "div"), b); }

Value neg(Value x, std::string name) { return unary(Op::neg, x, std::move(name)); }
Value exp(Value x, std::string name) { return unary(Op::exp, x, std::move(name)); }
Value log(Value x, std::string name) { return unary(Op::log, x, std::move(name)); }
Value sqrt(Value x, std::string name) { return unary(Op::sqrt, x, std::move(name)); }
Value relu(Value x, std::string name) { return unary(Op::relu, x, std::move(name)); }
Value sigmoid(Value x, std::string name) { return unary(Op::sigmoid, x, std::move(name)); }
Value tanh(Value x, std::string name) { return unary(Op::tanh, x, std::move(name)); }
Value step(Value x, std::string name) { return unary(Op::step, x, std::move(name)); }

Value leaky_relu(Value x, float alpha, std::string name) {
  if (!std::isfinite(alpha)) throw ValueError("leaky_relu: alpha must be finite");
  Attrs a;
  a.alpha = alpha;
  return unary(Op::leaky_relu, x, std::move(name), a);
}

Value gelu(Value x, std::string name) {
  // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
  require_valid(x, "gelu", "x");
  const double k = std::sqrt(2.0 / std::numbers::pi);
  Value inner = mul(add(x, mul(mul(mul(x, x), x), 0.044715)), k);
  return mul(mul(x, 0.5), add(tanh(inner), 1.0), std::move(name));
}

Value expand(Value x, Shape shape, Value like, bool mean, std::string name) {
  require_valid(x, "expand", "x");
  Attrs a;
  a.axes = shape.dims();
  a.mean = mean;
  std::vector<Value> ins{x};
  if (like.valid()) {
    internal::require_same_graph(x, like, "expand");
    ins.push_back(like);
  }
  return x.graph().add(Op::expand, ins, a, std::move(name));
}

Value broadcast_like(Value x, Value like, std::string name) {
  require_valid(like, "broadcast_like", "like");
  auto [bx, blike] = broadcast_pair(x, like, "broadcast_like");
  if (blike.shape() != like.shape())
    throw ShapeError("broadcast_like: '" + x.name() + "' " + x.shape().str() +
                     " does not broadcast to '" + like.name() + "' " + like.shape().str());
  if (!name.empty() && bx == x) return expand(x, x.shape(), like, false, std::move(name));
  return bx;
}

}  // namespace kiln
