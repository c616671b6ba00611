// Weighted losses built from existing ops (see kiln/train/losses.hpp for the definitions).
#include "kiln/train/losses.hpp"

#include <cmath>
#include <string>
#include <vector>

#include "kiln/core/error.hpp"
#include "kiln/ops.hpp"

namespace kiln::train {
namespace {

std::string dims_of(const Value& v) { return v.shape().str(); }

void require(const Value& v, const char* loss, const char* what) {
  if (!v.valid()) throw ValueError(std::string(loss) + ": " + what + " is an empty Value");
}

void require_float(const Value& v, const char* loss, const char* what) {
  if (!is_floating(v.dtype()))
    throw DTypeError(std::string(loss) + ": " + what + " '" + v.name() +
                     "' must be f32 or f64, not " + std::string(to_string(v.dtype())));
}

void require_same_graph(const Value& a, const Value& b, const char* loss, const char* what) {
  if (&a.graph() != &b.graph())
    throw ValueError(std::string(loss) + ": " + what + " '" + b.name() +
                     "' belongs to another graph than '" + a.name() + "'");
}

// Two dims fit when equal or when either is only known at run time.
bool dims_fit(std::int64_t a, std::int64_t b) { return a == b || a == batch || b == batch; }

void check_weights(const std::vector<double>& w, const char* loss, const char* what) {
  for (std::size_t i = 0; i < w.size(); ++i)
    if (!std::isfinite(w[i]) || w[i] < 0)
      throw ValueError(std::string(loss) + ": " + what + "[" + std::to_string(i) + "] is " +
                       std::to_string(w[i]) + "; weights must be finite and >= 0");
}

// A constant [n] of `like`'s dtype in its graph.
Value constant_of(const Value& like, const std::vector<double>& values, const std::string& name) {
  const auto n = static_cast<std::int64_t>(values.size());
  return like.graph().constant(Tensor::from(values, {n}).to(like.dtype()), name);
}

// Checks sample weights [N] or [N, 1] against the batch of `like` (nothing is added to the
// graph); returns them as [N], adding a reshape when `build`.
Value sample_weights_of(const Value& s, const Value& like, const char* loss, bool build = true) {
  if (!s.valid()) return s;
  require_same_graph(like, s, loss, "sample_weights");
  if (s.dtype() != like.dtype())
    throw DTypeError(std::string(loss) + ": sample_weights '" + s.name() + "' are " +
                     std::string(to_string(s.dtype())) + ", '" + like.name() + "' is " +
                     std::string(to_string(like.dtype())));
  const Shape& sh = s.shape();
  if (!(sh.rank() == 1 || (sh.rank() == 2 && sh[1] == 1)))
    throw ShapeError(std::string(loss) + ": sample_weights '" + s.name() +
                     "' must be [N] or [N, 1], not " + sh.str());
  if (!dims_fit(sh[0], like.shape()[0]))
    throw ShapeError(std::string(loss) + ": sample_weights '" + s.name() + "' " + sh.str() +
                     " do not match the batch of '" + like.name() + "' " + dims_of(like));
  return sh.rank() == 1 || !build ? s : reshape(s, Shape{batch});
}

// sum(w * l) / sum(w), for per-sample losses l [N] and weights w [N].
Value weighted_mean(Value l, Value w, const std::string& name) {
  return div(sum(mul(w, l)), sum(w), name);
}

// The per-sample loss [N] of elementwise losses [N] or [N, K] (mean over K).
Value per_sample(Value elementwise) {
  return elementwise.shape().rank() == 1 ? elementwise : mean(elementwise, {1});
}

void check_regression(const Value& p, const Value& t, const char* loss) {
  require(p, loss, "prediction");
  require(t, loss, "target");
  require_same_graph(p, t, loss, "target");
  require_float(p, loss, "prediction");
  if (t.dtype() != p.dtype())
    throw DTypeError(std::string(loss) + ": target '" + t.name() + "' is " +
                     std::string(to_string(t.dtype())) + ", prediction '" + p.name() + "' is " +
                     std::string(to_string(p.dtype())));
  const Shape &a = p.shape(), &b = t.shape();
  bool same = a.rank() == b.rank() && (a.rank() == 1 || a.rank() == 2);
  for (std::size_t i = 0; same && i < a.rank(); ++i) same = dims_fit(a[i], b[i]);
  if (!same)
    throw ShapeError(std::string(loss) + ": prediction '" + p.name() + "' " + a.str() +
                     " and target '" + t.name() + "' " + b.str() +
                     " must have the same shape, [N] or [N, K]");
}

}  // namespace

Value cross_entropy(Value logits, Value labels, const CrossEntropyOptions& o) {
  const char* loss = "cross_entropy";
  require(logits, loss, "logits");
  require(labels, loss, "labels");
  require_same_graph(logits, labels, loss, "labels");
  require_float(logits, loss, "logits");
  if (logits.shape().rank() != 2 || logits.shape()[1] == batch)
    throw ShapeError(std::string(loss) + ": logits '" + logits.name() + "' must be [N, C], not " +
                     dims_of(logits));
  if (!is_integer(labels.dtype()))
    throw DTypeError(std::string(loss) + ": labels '" + labels.name() +
                     "' must be integer class indices, not " +
                     std::string(to_string(labels.dtype())));
  if (labels.shape().rank() != 1 || !dims_fit(labels.shape()[0], logits.shape()[0]))
    throw ShapeError(std::string(loss) + ": labels '" + labels.name() + "' " + dims_of(labels) +
                     " must be [N] for logits " + dims_of(logits));
  const std::int64_t classes = logits.shape()[1];
  if (!o.class_weights.empty() && static_cast<std::int64_t>(o.class_weights.size()) != classes)
    throw ValueError(std::string(loss) + ": " + std::to_string(o.class_weights.size()) +
                     " class weights for " + std::to_string(classes) + " classes of logits '" +
                     logits.name() + "'");
  check_weights(o.class_weights, loss, "class_weights");
  sample_weights_of(o.sample_weights, logits, loss, false);
  if (o.class_weights.empty() && !o.sample_weights.valid())
    return softmax_cross_entropy(logits, labels, o.name);

  const Value hot = one_hot(labels, classes, logits.dtype());
  const Value l = neg(sum(mul(hot, log_softmax(logits, -1)), {1}));  // [N]
  Value w;
  if (!o.class_weights.empty()) w = sum(mul(hot, constant_of(logits, o.class_weights, {})), {1});
  if (o.sample_weights.valid()) {
    const Value s = sample_weights_of(o.sample_weights, logits, loss);
    w = w.valid() ? mul(w, s) : s;
  }
  return weighted_mean(l, w, o.name);
}

Value binary_cross_entropy_with_logits(Value logits, Value targets,
                                       const BinaryCrossEntropyOptions& o) {
  const char* loss = "binary_cross_entropy_with_logits";
  check_regression(logits, targets, loss);
  const Shape& sh = logits.shape();
  if (!o.pos_weight.empty()) {
    const std::int64_t k = sh.rank() == 2 ? sh[1] : 1;
    if (o.pos_weight.size() != 1 && static_cast<std::int64_t>(o.pos_weight.size()) != k)
      throw ValueError(std::string(loss) + ": " + std::to_string(o.pos_weight.size()) +
                       " pos_weight values for logits '" + logits.name() + "' " + sh.str() +
                       " (one, or one per output)");
    check_weights(o.pos_weight, loss, "pos_weight");
  }
  sample_weights_of(o.sample_weights, logits, loss, false);
  if (o.pos_weight.empty() && !o.sample_weights.valid())
    return kiln::binary_cross_entropy_with_logits(logits, targets, o.name);

  // torch: (1 - y) x + (1 + (p - 1) y) (log(1 + exp(-|x|)) + max(-x, 0)).
  const Value x = logits, y = targets;
  const Value neg_part = relu(neg(x));
  const Value abs_x = add(relu(x), neg_part);
  const Value softplus_neg = add(log(add(exp(neg(abs_x)), 1.0)), neg_part);  // -log sigmoid(x)
  Value factor;
  if (!o.pos_weight.empty()) {
    std::vector<double> pm1(o.pos_weight);
    for (double& p : pm1) p -= 1;
    factor = add(mul(y, constant_of(x, pm1, {})), 1.0);
  }
  const Value l =
      add(mul(sub(1.0, y), x), factor.valid() ? mul(factor, softplus_neg) : softplus_neg);
  if (!o.sample_weights.valid()) return mean(l, {}, false, o.name);
  return weighted_mean(per_sample(l), sample_weights_of(o.sample_weights, logits, loss), o.name);
}

Value mse(Value prediction, Value target, const RegressionLossOptions& o) {
  const char* loss = "mse";
  check_regression(prediction, target, loss);
  sample_weights_of(o.sample_weights, prediction, loss, false);
  if (!o.sample_weights.valid()) return kiln::mse(prediction, target, o.name);
  const Value d = sub(prediction, target);
  return weighted_mean(per_sample(mul(d, d)), sample_weights_of(o.sample_weights, prediction, loss),
                       o.name);
}

Value huber(Value prediction, Value target, const HuberOptions& o) {
  const char* loss = "huber";
  check_regression(prediction, target, loss);
  if (!(o.delta > 0) || !std::isfinite(o.delta))
    throw ValueError(std::string(loss) + ": delta must be finite and > 0, not " +
                     std::to_string(o.delta));
  sample_weights_of(o.sample_weights, prediction, loss, false);
  // c = clamp(d, -delta, delta); loss = c (d - c / 2): d^2 / 2 inside, delta (|d| - delta / 2)
  // outside, with the gradient c everywhere.
  const Value d = sub(prediction, target);
  const Value c = add(sub(d, relu(sub(d, o.delta))), relu(sub(neg(d), o.delta)));
  const Value l = mul(c, sub(d, mul(c, 0.5)));
  if (!o.sample_weights.valid()) return mean(l, {}, false, o.name);
  return weighted_mean(per_sample(l), sample_weights_of(o.sample_weights, prediction, loss),
                       o.name);
}

}  // namespace kiln::train
