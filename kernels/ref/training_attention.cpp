// Reference gelu_backward (a training op, built into kiln): x, gy -> gx = gy * (Phi(x) +
// x * phi(x)), Phi the normal CDF 0.5 * (1 + erf(x / sqrt 2)) and phi its density
// exp(-x^2 / 2) / sqrt(2 pi), the derivative of the exact gelu. In double, rounded once.
#include <cmath>
#include <cstdint>
#include <numbers>
#include <string>

#include "kernels/ref/ref.hpp"
#include "kernels/ref/ref_util.hpp"

namespace kiln::internal::ref {
namespace {

std::string check_gelu_backward(const Node&, Descs in, const TensorDesc& out) {
  if (auto e = need_arity(in, 2, 2); !e.empty()) return e;
  if (auto e = need_float_alike(in, out); !e.empty()) return e;
  if (in[0].shape != in[1].shape)
    return "x " + in[0].shape.str() + " and gy " + in[1].shape.str() + " differ in shape";
  return need_out_shape(out, in[0].shape);
}

void run_gelu_backward(const KernelArgs& args) {
  require(check_gelu_backward, args);
  with_float(args.output.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* x = args.inputs[0].data<T>();
    const T* gy = args.inputs[1].data<T>();
    T* gx = args.output.data<T>();
    const double inv_sqrt_2pi = std::numbers::inv_sqrtpi / std::numbers::sqrt2;
    const std::int64_t n = args.output.numel();
    for (std::int64_t i = 0; i < n; ++i) {
      const double xi = static_cast<double>(x[i]);
      const double cdf = 0.5 * (1.0 + std::erf(xi / std::numbers::sqrt2));
      const double pdf = std::exp(-0.5 * xi * xi) * inv_sqrt_2pi;
      gx[i] = static_cast<T>(static_cast<double>(gy[i]) * (cdf + xi * pdf));
    }
  });
}

}  // namespace

void add_attention_training_kernels(KernelTable& t) {
  t.add<Op::gelu_backward>(
      {"reference", "ref_gelu_backward", supports_check<check_gelu_backward>, run_gelu_backward});
}

}  // namespace kiln::internal::ref
