// Reference layer_norm_backward (a training op, built into kiln): x [..., D], optional
// gamma [D], gy of x's shape -> gx. Per row, with m, v the row's mean and biased variance,
// rstd = 1 / sqrt(v + eps), xhat = (x - m) * rstd and g = gy * gamma (gy without gamma):
//   gx = rstd * (g - mean(g) - xhat * mean(g * xhat)).
// All arithmetic is in double, rounded once.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/ref/ref.hpp"
#include "kernels/ref/ref_util.hpp"

namespace kiln::internal::ref {
namespace {

std::string check_layer_norm_backward(const Node& node, Descs in, const TensorDesc& out) {
  if (auto e = need_arity(in, 2, 3); !e.empty()) return e;
  if (auto e = need_float_alike(in, out); !e.empty()) return e;
  const Shape& x = in[0].shape;
  if (x.rank() == 0 || x[x.rank() - 1] == 0) return "x " + x.str() + " has no features";
  if (in.size() == 3 && in[1].shape != Shape{x[x.rank() - 1]})
    return "gamma " + in[1].shape.str() + " is not [D] of x " + x.str();
  if (in.back().shape != x) return "gy " + in.back().shape.str() + " differs from x " + x.str();
  if (!(node.attrs.eps >= 0.0f)) return "eps " + std::to_string(node.attrs.eps) + " is negative";
  return need_out_shape(out, x);
}

template <class T>
void layer_norm_backward_typed(const KernelArgs& args) {
  const Shape& shape = args.inputs[0].shape();
  const std::int64_t d = shape[shape.rank() - 1];
  const std::int64_t rows = args.inputs[0].numel() / d;
  const T* gamma = args.inputs.size() == 3 ? args.inputs[1].data<T>() : nullptr;
  const double eps = static_cast<double>(args.node.attrs.eps);
  const double n = static_cast<double>(d);
  std::vector<double> xhat(static_cast<std::size_t>(d)), g(static_cast<std::size_t>(d));
  for (std::int64_t r = 0; r < rows; ++r) {
    const T* x = args.inputs[0].data<T>() + r * d;
    const T* gy = args.inputs.back().data<T>() + r * d;
    double m = 0.0, v = 0.0;
    for (std::int64_t i = 0; i < d; ++i) m += static_cast<double>(x[i]);
    m /= n;
    for (std::int64_t i = 0; i < d; ++i) {
      const double c = static_cast<double>(x[i]) - m;
      v += c * c;
    }
    const double rstd = 1.0 / std::sqrt(v / n + eps);
    double mg = 0.0, mgx = 0.0;
    for (std::int64_t i = 0; i < d; ++i) {
      const auto k = static_cast<std::size_t>(i);
      xhat[k] = (static_cast<double>(x[i]) - m) * rstd;
      g[k] = static_cast<double>(gy[i]) * (gamma != nullptr ? static_cast<double>(gamma[i]) : 1.0);
      mg += g[k];
      mgx += g[k] * xhat[k];
    }
    mg /= n;
    mgx /= n;
    T* gx = args.output.data<T>() + r * d;
    for (std::int64_t i = 0; i < d; ++i) {
      const auto k = static_cast<std::size_t>(i);
      gx[i] = static_cast<T>(rstd * (g[k] - mg - xhat[k] * mgx));
    }
  }
}

void run_layer_norm_backward(const KernelArgs& args) {
  require(check_layer_norm_backward, args);
  with_float(args.output.dtype(),
             [&](auto tag) { layer_norm_backward_typed<decltype(tag)>(args); });
}

}  // namespace

void add_layer_norm_training_kernels(KernelTable& t) {
  t.add<Op::layer_norm_backward>({"reference", "ref_layer_norm_backward",
                                  supports_check<check_layer_norm_backward>,
                                  run_layer_norm_backward});
}

}  // namespace kiln::internal::ref
