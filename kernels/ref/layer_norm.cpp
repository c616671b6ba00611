// Reference layer_norm: x [..., D], optional gamma and beta [D] -> y of x's shape. Per row
// of D values, mean m and biased variance v (two passes), y = (x - m) / sqrt(v + eps) *
// gamma + beta. All arithmetic is in double, rounded once; eps is the attribute, widened.
#include <cmath>
#include <cstdint>
#include <string>

#include "kernels/ref/ref.hpp"
#include "kernels/ref/ref_util.hpp"

namespace kiln::internal::ref {
namespace {

std::string check_layer_norm(const Node& node, Descs in, const TensorDesc& out) {
  if (auto e = need_arity(in, 1, 3); !e.empty()) return e;
  if (in.size() == 2) return "expected x, or x, gamma and beta";
  if (auto e = need_float_alike(in, out); !e.empty()) return e;
  const Shape& x = in[0].shape;
  if (x.rank() == 0 || x[x.rank() - 1] == 0) return "x " + x.str() + " has no features";
  for (std::size_t i = 1; i < in.size(); ++i)
    if (in[i].shape != Shape{x[x.rank() - 1]})
      return std::string(i == 1 ? "gamma " : "beta ") + in[i].shape.str() + " is not [D] of x " +
             x.str();
  if (!(node.attrs.eps >= 0.0f)) return "eps " + std::to_string(node.attrs.eps) + " is negative";
  return need_out_shape(out, x);
}

template <class T>
void layer_norm_typed(const KernelArgs& args) {
  const Shape& shape = args.inputs[0].shape();
  const std::int64_t d = shape[shape.rank() - 1];
  const std::int64_t rows = args.inputs[0].numel() / d;
  const T* gamma = args.inputs.size() == 3 ? args.inputs[1].data<T>() : nullptr;
  const T* beta = args.inputs.size() == 3 ? args.inputs[2].data<T>() : nullptr;
  const double eps = static_cast<double>(args.node.attrs.eps);
  for (std::int64_t r = 0; r < rows; ++r) {
    const T* x = args.inputs[0].data<T>() + r * d;
    T* y = args.output.data<T>() + r * d;
    double m = 0.0, v = 0.0;
    for (std::int64_t i = 0; i < d; ++i) m += static_cast<double>(x[i]);
    m /= static_cast<double>(d);
    for (std::int64_t i = 0; i < d; ++i) {
      const double c = static_cast<double>(x[i]) - m;
      v += c * c;
    }
    const double rstd = 1.0 / std::sqrt(v / static_cast<double>(d) + eps);
    for (std::int64_t i = 0; i < d; ++i) {
      double h = (static_cast<double>(x[i]) - m) * rstd;
      if (gamma != nullptr) h = h * static_cast<double>(gamma[i]) + static_cast<double>(beta[i]);
      y[i] = static_cast<T>(h);
    }
  }
}

void run_layer_norm(const KernelArgs& args) {
  require(check_layer_norm, args);
  with_float(args.output.dtype(), [&](auto tag) { layer_norm_typed<decltype(tag)>(args); });
}

}  // namespace

void add_layer_norm_kernels(KernelTable& t) {
  t.add<Op::layer_norm>(
      {"reference", "ref_layer_norm", supports_check<check_layer_norm>, run_layer_norm});
}

}  // namespace kiln::internal::ref
