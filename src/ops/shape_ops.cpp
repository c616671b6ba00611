// Data movement ops (reshape, transpose, concat, slice, pad): shape rules and builders.
#include <numeric>

#include "kiln/ops.hpp"
#include "ops/builder_util.hpp"
#include "ops/rules.hpp"

namespace kiln::internal {

TensorDesc rule_reshape(const RuleContext& c) {
  const Shape& x = c.inputs[0].shape;
  std::vector<std::int64_t> out = c.attrs.axes;
  int infer_at = -1;
  std::int64_t known = 1;
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (out[i] == -1) {
      if (infer_at >= 0) c.fail("target " + Shape(out).str() + " has more than one -1");
      infer_at = static_cast<int>(i);
    } else if (out[i] < 0) {
      c.fail("target " + Shape(out).str() + " has a negative dimension");
    } else {
      known *= out[i];
    }
  }
  if (x.is_static()) {
    const std::int64_t n = x.numel();
    if (infer_at >= 0) {
      if (known == 0 || n % known != 0) c.fail("cannot infer the -1 of target " + Shape(out).str());
      out[static_cast<std::size_t>(infer_at)] = n / known;
    } else if (known != n) {
      c.fail("target " + Shape(out).str() + " holds " + std::to_string(known) +
             " elements, the input " + std::to_string(n));
    }
  }
  return {Shape(out), c.inputs[0].dtype};
}

TensorDesc rule_transpose(const RuleContext& c) {
  const Shape& x = c.inputs[0].shape;
  const auto& perm = c.attrs.axes;
  if (perm.size() != x.rank()) c.fail("permutation " + Shape(perm).str() + " has the wrong rank");
  std::vector<bool> seen(perm.size(), false);
  std::vector<std::int64_t> out(perm.size());
  for (std::size_t i = 0; i < perm.size(); ++i) {
    if (perm[i] < 0 || perm[i] >= static_cast<std::int64_t>(perm.size()) ||
        seen[static_cast<std::size_t>(perm[i])])
      c.fail(Shape(perm).str() + " is not a permutation");
    seen[static_cast<std::size_t>(perm[i])] = true;
    out[i] = x[static_cast<std::size_t>(perm[i])];
  }
  return {Shape(out), c.inputs[0].dtype};
}

TensorDesc rule_concat(const RuleContext& c) {
  require_same_dtype(c);
  const Shape& first = c.inputs[0].shape;
  const auto axis = c.attrs.axis;
  if (axis < 0 || axis >= static_cast<std::int64_t>(first.rank()))
    c.fail("axis " + std::to_string(axis) + " is outside the inputs");
  std::vector<std::int64_t> out = first.dims();
  for (std::size_t k = 1; k < c.inputs.size(); ++k) {
    const Shape& s = c.inputs[k].shape;
    if (s.rank() != first.rank()) c.fail("inputs must have the same rank");
    for (std::size_t i = 0; i < s.rank(); ++i) {
      if (static_cast<std::int64_t>(i) == axis) {
        out[i] = (out[i] < 0 || s[i] < 0) ? -1 : out[i] + s[i];
      } else if (!dims_match(s[i], first[i])) {
        c.fail("inputs differ outside axis " + std::to_string(axis));
      }
    }
  }
  return {Shape(out), c.inputs[0].dtype};
}

TensorDesc rule_slice(const RuleContext& c) {
  const Shape& x = c.inputs[0].shape;
  const auto& a = c.attrs;
  if (a.axis < 0 || a.axis >= static_cast<std::int64_t>(x.rank()))
    c.fail("axis " + std::to_string(a.axis) + " is outside the input");
  const auto dim = x[static_cast<std::size_t>(a.axis)];
  if (a.start < 0 || a.stop < a.start || (dim >= 0 && a.stop > dim))
    c.fail("range [" + std::to_string(a.start) + ", " + std::to_string(a.stop) +
           ") is outside axis " + std::to_string(a.axis));
  Shape out = x;
  out[static_cast<std::size_t>(a.axis)] = a.stop - a.start;
  return {out, c.inputs[0].dtype};
}

TensorDesc rule_pad(const RuleContext& c) {
  const Shape& x = c.inputs[0].shape;
  const auto& a = c.attrs;
  if (a.axis < 0 || a.axis >= static_cast<std::int64_t>(x.rank()))
    c.fail("axis " + std::to_string(a.axis) + " is outside the input");
  if (a.start < 0 || a.stop < 0) c.fail("padding must not be negative");
  Shape out = x;
  auto& d = out[static_cast<std::size_t>(a.axis)];
  if (d >= 0) d += a.start + a.stop;
  return {out, c.inputs[0].dtype};
}

}  // namespace kiln::internal

namespace kiln {

Value reshape(Value x, Shape shape, std::string name) {
  internal::require_valid(x, "reshape", "x");
  Attrs a;
  a.axes = shape.dims();
  return x.graph().add(Op::reshape, {x}, a, std::move(name));
}

Value transpose(Value x, std::vector<std::int64_t> perm, std::string name) {
  internal::require_valid(x, "transpose", "x");
  const std::size_t r = x.shape().rank();
  if (perm.empty()) {
    if (r < 2) throw ShapeError("transpose: value '" + x.name() + "' has fewer than 2 dims");
    perm.resize(r);
    std::iota(perm.begin(), perm.end(), 0);
    std::swap(perm[r - 1], perm[r - 2]);
  }
  for (auto& p : perm) p = internal::normalize_axis(p, r, "transpose", x);
  Attrs a;
  a.axes = std::move(perm);
  return x.graph().add(Op::transpose, {x}, a, std::move(name));
}

Value concat(const std::vector<Value>& xs, std::int64_t axis, std::string name) {
  if (xs.empty()) throw ValueError("concat: no inputs");
  for (const auto& x : xs) {
    internal::require_valid(x, "concat", "xs");
    internal::require_same_graph(xs[0], x, "concat");
  }
  Attrs a;
  a.axis = internal::normalize_axis(axis, xs[0].shape().rank(), "concat", xs[0]);
  return xs[0].graph().add(Op::concat, xs, a, std::move(name));
}

Value slice(Value x, std::int64_t axis, std::int64_t start, std::int64_t stop, std::string name) {
  internal::require_valid(x, "slice", "x");
  Attrs a;
  a.axis = internal::normalize_axis(axis, x.shape().rank(), "slice", x);
  a.start = start;
  a.stop = stop;
  return x.graph().add(Op::slice, {x}, a, std::move(name));
}

Value pad(Value x, std::int64_t axis, std::int64_t before, std::int64_t after, std::string name) {
  internal::require_valid(x, "pad", "x");
  Attrs a;
  a.axis = internal::normalize_axis(axis, x.shape().rank(), "pad", x);
  a.start = before;
  a.stop = after;
  return x.graph().add(Op::pad, {x}, a, std::move(name));
}

}  // namespace kiln
