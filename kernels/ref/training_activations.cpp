// Reference kernels of relu_backward and softmax_backward (training ops, built into kiln):
//   relu_backward(y, gy)    = gy * (y > 0)            (relu's gradient from its output)
//   softmax_backward(y, gy) = y * (gy - sum(gy * y))  (the sum over the softmax's axis)
// The same arithmetic as the composed forms they replace (mul(gy, step(y)) and
// mul(y, sub(gy, sum(mul(gy, y))))), the sum accumulated in double.
#include <cstdint>
#include <string>

#include "kernels/ref/ref.hpp"
#include "kernels/ref/ref_util.hpp"

namespace kiln::internal::ref {
namespace {

std::string check_same_shapes(const Node&, Descs in, const TensorDesc& out) {
  if (auto e = need_arity(in, 2, 2); !e.empty()) return e;
  if (auto e = need_float_alike(in, out); !e.empty()) return e;
  if (in[0].shape != in[1].shape)
    return "y " + in[0].shape.str() + " and gy " + in[1].shape.str() + " differ in shape";
  return need_out_shape(out, in[0].shape);
}

std::string check_softmax_backward(const Node& node, Descs in, const TensorDesc& out) {
  if (auto e = check_same_shapes(node, in, out); !e.empty()) return e;
  if (node.attrs.axis < 0 || node.attrs.axis >= static_cast<std::int64_t>(in[0].shape.rank()))
    return "axis " + std::to_string(node.attrs.axis) + " out of range for " + in[0].shape.str();
  return {};
}

void run_relu_backward(const KernelArgs& args) {
  require(check_same_shapes, args);
  with_float(args.output.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* y = args.inputs[0].data<T>();
    const T* gy = args.inputs[1].data<T>();
    T* gx = args.output.data<T>();
    for (std::int64_t i = 0, n = args.output.numel(); i < n; ++i)
      gx[i] = gy[i] * (y[i] > T(0) ? T(1) : T(0));
  });
}

void run_softmax_backward(const KernelArgs& args) {
  require(check_softmax_backward, args);
  const auto [outer, n, inner] =
      split_at(args.output.shape(), static_cast<std::size_t>(args.node.attrs.axis));
  with_float(args.output.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* y = args.inputs[0].data<T>();
    const T* gy = args.inputs[1].data<T>();
    T* gx = args.output.data<T>();
    for (std::int64_t o = 0; o < outer; ++o)
      for (std::int64_t i = 0; i < inner; ++i) {
        const std::int64_t base = o * n * inner + i;
        double dot = 0.0;
        for (std::int64_t j = 0; j < n; ++j)
          dot +=
              static_cast<double>(gy[base + j * inner]) * static_cast<double>(y[base + j * inner]);
        const T sum = static_cast<T>(dot);
        for (std::int64_t j = 0; j < n; ++j) {
          const std::int64_t at = base + j * inner;
          gx[at] = y[at] * (gy[at] - sum);
        }
      }
  });
}

}  // namespace

void add_activation_training_kernels(KernelTable& t) {
  t.add<Op::relu_backward>(
      {"reference", "ref_relu_backward", supports_check<check_same_shapes>, run_relu_backward});
  t.add<Op::softmax_backward>({"reference", "ref_softmax_backward",
                               supports_check<check_softmax_backward>, run_softmax_backward});
}

}  // namespace kiln::internal::ref
