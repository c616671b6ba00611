// Reference max_pool2d and avg_pool2d (NCHW).
//
// Window (i, j) covers rows i*sh - ph ... + kh - 1 and columns j*sw - pw ... + kw - 1;
// cells outside the input are padding. max_pool2d: the largest real cell (padding is -inf;
// a NaN wins). avg_pool2d: the sum of the real cells (in double) divided by kh*kw if
// include_pad, else by the number of real cells.
#include <cstdint>
#include <string>

#include "kernels/ref/ref.hpp"
#include "kernels/ref/ref_util.hpp"

namespace kiln::internal::ref {
namespace {

std::string check_pool2d(const Node& node, Descs in, const TensorDesc& out) {
  if (auto e = need_arity(in, 1, 1); !e.empty()) return e;
  if (auto e = need_float_alike(in, out); !e.empty()) return e;
  Shape pooled;
  if (auto e = pooled_shape(node.attrs, in[0].shape, &pooled); !e.empty()) return e;
  return need_out_shape(out, pooled);
}

template <class T, bool Max>
void pool2d_typed(const KernelArgs& args) {
  const Attrs& a = args.node.attrs;
  const Shape& xs = args.inputs[0].shape();
  const std::int64_t planes = xs[0] * xs[1], h = xs[2], w = xs[3];
  const std::int64_t ho = args.output.dim(2), wo = args.output.dim(3);
  const T* x = args.inputs[0].data<T>();
  T* y = args.output.data<T>();
  for (std::int64_t pl = 0; pl < planes; ++pl) {
    const T* plane = x + pl * h * w;
    for (std::int64_t i = 0; i < ho; ++i)
      for (std::int64_t j = 0; j < wo; ++j) {
        const PoolWindow win = pool_window(a, h, w, i, j);
        T& dst = y[(pl * ho + i) * wo + j];
        if constexpr (Max) {
          dst = plane[window_argmax(plane, w, win)];
        } else {
          double sum = 0.0;
          for (std::int64_t r = win.h0; r < win.h1; ++r)
            for (std::int64_t c = win.w0; c < win.w1; ++c)
              sum += static_cast<double>(plane[r * w + c]);
          dst = static_cast<T>(sum / static_cast<double>(win.divisor));
        }
      }
  }
}

void run_max_pool2d(const KernelArgs& args) {
  require(check_pool2d, args);
  with_float(args.output.dtype(), [&](auto tag) { pool2d_typed<decltype(tag), true>(args); });
}

void run_avg_pool2d(const KernelArgs& args) {
  require(check_pool2d, args);
  with_float(args.output.dtype(), [&](auto tag) { pool2d_typed<decltype(tag), false>(args); });
}

}  // namespace

void add_pool_kernels(KernelTable& t) {
  t.add<Op::max_pool2d>(
      {"reference", "ref_max_pool2d", supports_check<check_pool2d>, run_max_pool2d});
  t.add<Op::avg_pool2d>(
      {"reference", "ref_avg_pool2d", supports_check<check_pool2d>, run_avg_pool2d});
}

}  // namespace kiln::internal::ref
