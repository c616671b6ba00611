// Index ops (gather, scatter_add_rows, one_hot), dropout and the fused losses:
// shape rules and builders.
#include "kiln/ops.hpp"
#include "ops/builder_util.hpp"
#include "ops/rules.hpp"

namespace kiln::internal {

TensorDesc rule_gather(const RuleContext& c) {
  require_integer(c, 1);
  const Shape& table = c.inputs[0].shape;
  if (table.rank() < 1) c.fail("table needs at least one dimension");
  std::vector<std::int64_t> out = c.inputs[1].shape.dims();
  out.insert(out.end(), table.begin() + 1, table.end());
  return {Shape(out), c.inputs[0].dtype};
}

TensorDesc rule_scatter_add_rows(const RuleContext& c) {
  require_integer(c, 0);
  require_float(c, 1);
  const Shape& idx = c.inputs[0].shape;
  const Shape& upd = c.inputs[1].shape;
  if (c.attrs.size <= 0) c.fail("row count must be positive");
  if (upd.rank() < idx.rank()) c.fail("updates must start with the indices' shape");
  for (std::size_t i = 0; i < idx.rank(); ++i)
    if (!dims_match(idx[i], upd[i])) c.fail("updates must start with the indices' shape");
  std::vector<std::int64_t> out{c.attrs.size};
  out.insert(out.end(), upd.begin() + static_cast<std::ptrdiff_t>(idx.rank()), upd.end());
  return {Shape(out), c.inputs[1].dtype};
}

TensorDesc rule_one_hot(const RuleContext& c) {
  require_integer(c, 0);
  if (c.attrs.size <= 0) c.fail("depth must be positive");
  if (!is_floating(c.attrs.dtype)) c.fail_dtype("output dtype must be f32 or f64");
  std::vector<std::int64_t> out = c.inputs[0].shape.dims();
  out.push_back(c.attrs.size);
  return {Shape(out), c.attrs.dtype};
}

TensorDesc rule_dropout_mask(const RuleContext& c) {
  require_float(c, 0);
  if (!(c.attrs.alpha >= 0.0f && c.attrs.alpha < 1.0f))
    c.fail("drop probability " + std::to_string(c.attrs.alpha) + " must be in [0, 1)");
  return c.inputs[0];
}

TensorDesc rule_softmax_cross_entropy(const RuleContext& c) {
  require_float(c, 0);
  require_integer(c, 1);
  const Shape& logits = c.inputs[0].shape;
  const Shape& labels = c.inputs[1].shape;
  if (logits.rank() != 2) c.fail("logits must be [N, C]");
  if (labels.rank() != 1 || !dims_match(labels[0], logits[0]))
    c.fail("labels must be [N] with the logits' N");
  return {Shape{}, c.inputs[0].dtype};
}

TensorDesc rule_pairwise_loss(const RuleContext& c) {
  require_same_dtype(c);
  require_float(c, 0);
  const Shape& a = c.inputs[0].shape;
  const Shape& b = c.inputs[1].shape;
  if (a.rank() != b.rank()) c.fail("prediction and target must have the same shape");
  for (std::size_t i = 0; i < a.rank(); ++i)
    if (!dims_match(a[i], b[i])) c.fail("prediction and target must have the same shape");
  return {Shape{}, c.inputs[0].dtype};
}

}  // namespace kiln::internal

namespace kiln {

Value gather(Value table, Value indices, std::string name) {
  internal::require_valid(table, "gather", "table");
  internal::require_valid(indices, "gather", "indices");
  internal::require_same_graph(table, indices, "gather");
  return table.graph().add(Op::gather, {table, indices}, {}, std::move(name));
}

Value one_hot(Value labels, std::int64_t depth, DType dtype, std::string name) {
  internal::require_valid(labels, "one_hot", "labels");
  Attrs a;
  a.size = depth;
  a.dtype = dtype;
  return labels.graph().add(Op::one_hot, {labels}, a, std::move(name));
}

Value dropout(Value x, float p, std::uint64_t seed, std::string name) {
  internal::require_valid(x, "dropout", "x");
  if (p == 0.0f) return x;
  Attrs a;
  a.alpha = p;
  a.seed = seed;
  Value mask = x.graph().add(Op::dropout_mask, {x}, a, name.empty() ? "" : name + ".mask");
  return x.graph().add(Op::mul, {x, mask}, {}, std::move(name));
}

Value softmax_cross_entropy(Value logits, Value labels, std::string name) {
  internal::require_valid(logits, "softmax_cross_entropy", "logits");
  internal::require_valid(labels, "softmax_cross_entropy", "labels");
  internal::require_same_graph(logits, labels, "softmax_cross_entropy");
  return logits.graph().add(Op::softmax_cross_entropy, {logits, labels}, {}, std::move(name));
}

Value mse(Value prediction, Value target, std::string name) {
  internal::require_valid(prediction, "mse", "prediction");
  internal::require_valid(target, "mse", "target");
  internal::require_same_graph(prediction, target, "mse");
  return prediction.graph().add(Op::mse, {prediction, target}, {}, std::move(name));
}

Value binary_cross_entropy_with_logits(Value logits, Value targets, std::string name) {
  internal::require_valid(logits, "binary_cross_entropy_with_logits", "logits");
  internal::require_valid(targets, "binary_cross_entropy_with_logits", "targets");
  internal::require_same_graph(logits, targets, "binary_cross_entropy_with_logits");
  return logits.graph().add(Op::bce_with_logits, {logits, targets}, {}, std::move(name));
}

}  // namespace kiln
