// Reference softmax, log_softmax and the fused losses (softmax_cross_entropy, mse,
// bce_with_logits). Everything is computed in double and rounded once to the output type.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "kernels/ref/ref.hpp"
#include "kernels/ref/ref_util.hpp"

namespace kiln::internal::ref {
namespace {

// ---- softmax and log_softmax along an axis ------------------------------------------

std::string check_softmax(const Node& node, Descs in, const TensorDesc& out) {
  if (auto e = need_arity(in, 1, 1); !e.empty()) return e;
  if (auto e = need_float_alike(in, out); !e.empty()) return e;
  const Shape& x = in[0].shape;
  if (node.attrs.axis < 0 || node.attrs.axis >= static_cast<std::int64_t>(x.rank()))
    return "axis " + std::to_string(node.attrs.axis) + " out of range for shape " + x.str();
  return need_out_shape(out, x);
}

/// Along the axis: m = max, s = sum exp(x - m); softmax = exp(x - m) / s and
/// log_softmax = x - m - log(s).
template <class T, bool log_output>
void softmax_typed(const KernelArgs& args) {
  const AxisSplit a =
      split_at(args.inputs[0].shape(), static_cast<std::size_t>(args.node.attrs.axis));
  const T* x = args.inputs[0].data<T>();
  T* out = args.output.data<T>();
  for (std::int64_t o = 0; o < a.outer; ++o) {
    for (std::int64_t i = 0; i < a.inner; ++i) {
      const std::int64_t base = o * a.n * a.inner + i;
      auto at = [&](std::int64_t j) { return static_cast<double>(x[base + j * a.inner]); };
      double m = -std::numeric_limits<double>::infinity();
      for (std::int64_t j = 0; j < a.n; ++j) m = std::max(m, at(j));
      double s = 0.0;
      for (std::int64_t j = 0; j < a.n; ++j) s += std::exp(at(j) - m);
      const double log_s = std::log(s);
      for (std::int64_t j = 0; j < a.n; ++j) {
        const double shifted = at(j) - m;
        out[base + j * a.inner] =
            static_cast<T>(log_output ? shifted - log_s : std::exp(shifted) / s);
      }
    }
  }
}

template <bool log_output>
void run_softmax(const KernelArgs& args) {
  require(check_softmax, args);
  with_float(args.output.dtype(),
             [&](auto tag) { softmax_typed<decltype(tag), log_output>(args); });
}

// ---- softmax_cross_entropy ----------------------------------------------------------

/// logits [N, C] float, labels [N] int -> scalar.
std::string check_softmax_cross_entropy(const Node&, Descs in, const TensorDesc& out) {
  if (auto e = need_arity(in, 2, 2); !e.empty()) return e;
  if (auto e = need_float_alike(in.first(1), out); !e.empty()) return e;
  if (auto e = need_integer(in[1], "labels"); !e.empty()) return e;
  const Shape& logits = in[0].shape;
  const Shape& labels = in[1].shape;
  if (logits.rank() != 2) return "logits must be [N, C], got " + logits.str();
  if (labels.rank() != 1 || labels[0] != logits[0])
    return "labels " + labels.str() + " do not match logits " + logits.str();
  return need_out_shape(out, Shape{});
}

template <class T>
void softmax_cross_entropy_typed(const KernelArgs& args) {
  const Tensor& logits = args.inputs[0];
  const Tensor& labels = args.inputs[1];
  const std::int64_t n = logits.dim(0);
  const std::int64_t c = logits.dim(1);
  const T* x = logits.data<T>();
  double total = 0.0;
  for (std::int64_t r = 0; r < n; ++r) {
    const std::int64_t label = index_at(labels, r);
    if (label < 0 || label >= c)
      throw ValueError("softmax_cross_entropy " + node_label(args.node) + ": label " +
                       std::to_string(label) + " (row " + std::to_string(r) + ") is outside [0, " +
                       std::to_string(c) + ")");
    const T* row = x + r * c;
    double m = -std::numeric_limits<double>::infinity();
    for (std::int64_t j = 0; j < c; ++j) m = std::max(m, static_cast<double>(row[j]));
    double s = 0.0;
    for (std::int64_t j = 0; j < c; ++j) s += std::exp(static_cast<double>(row[j]) - m);
    // -log_softmax(row)[label] = log(s) + m - row[label]
    total += std::log(s) - (static_cast<double>(row[label]) - m);
  }
  args.output.data<T>()[0] = static_cast<T>(total / static_cast<double>(n));
}

void run_softmax_cross_entropy(const KernelArgs& args) {
  require(check_softmax_cross_entropy, args);
  with_float(args.output.dtype(),
             [&](auto tag) { softmax_cross_entropy_typed<decltype(tag)>(args); });
}

// ---- mse and bce_with_logits: mean over elementwise terms of two equal shapes ------

std::string check_pair_loss(const Node&, Descs in, const TensorDesc& out) {
  if (auto e = need_arity(in, 2, 2); !e.empty()) return e;
  if (auto e = need_float_alike(in, out); !e.empty()) return e;
  if (in[0].shape != in[1].shape)
    return "input shapes differ: " + in[0].shape.str() + " and " + in[1].shape.str();
  return need_out_shape(out, Shape{});
}

using PairTerm = double (*)(double a, double b);

double squared_error(double a, double b) { return (a - b) * (a - b); }
/// Stable -[y log sigmoid(x) + (1 - y) log(1 - sigmoid(x))].
double bce_logit_term(double x, double y) {
  return std::max(x, 0.0) - x * y + std::log1p(std::exp(-std::abs(x)));
}

template <PairTerm F>
void run_pair_loss(const KernelArgs& args) {
  require(check_pair_loss, args);
  with_float(args.output.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* a = args.inputs[0].data<T>();
    const T* b = args.inputs[1].data<T>();
    const std::int64_t n = args.inputs[0].numel();
    double total = 0.0;
    for (std::int64_t i = 0; i < n; ++i)
      total += F(static_cast<double>(a[i]), static_cast<double>(b[i]));
    args.output.data<T>()[0] = static_cast<T>(total / static_cast<double>(n));
  });
}

}  // namespace

void add_softmax_loss_kernels(KernelTable& t) {
  t.add<Op::softmax>(
      {"reference", "ref_softmax", supports_check<check_softmax>, run_softmax<false>});
  t.add<Op::log_softmax>(
      {"reference", "ref_log_softmax", supports_check<check_softmax>, run_softmax<true>});
  t.add<Op::softmax_cross_entropy>({"reference", "ref_softmax_cross_entropy",
                                    supports_check<check_softmax_cross_entropy>,
                                    run_softmax_cross_entropy});
  t.add<Op::mse>(
      {"reference", "ref_mse", supports_check<check_pair_loss>, run_pair_loss<squared_error>});
  t.add<Op::bce_with_logits>({"reference", "ref_bce_with_logits", supports_check<check_pair_loss>,
                              run_pair_loss<bce_logit_term>});
}

}  // namespace kiln::internal::ref
