// Reference upsample_nearest2d: x [N, C, H, W], integer scale factors (sh, sw) in
// attrs.stride -> [N, C, H*sh, W*sw], out[n, c, i, j] = x[n, c, i / sh, j / sw].
#include <cstdint>
#include <string>

#include "kernels/ref/ref.hpp"
#include "kernels/ref/ref_util.hpp"

namespace kiln::internal::ref {
namespace {

std::string check_upsample_nearest2d(const Node& node, Descs in, const TensorDesc& out) {
  if (auto e = need_arity(in, 1, 1); !e.empty()) return e;
  if (auto e = need_same_dtype(in, out); !e.empty()) return e;
  if (auto e = need_nchw(in[0].shape, "x"); !e.empty()) return e;
  const Pair& s = node.attrs.stride;
  if (s[0] < 1 || s[1] < 1) return "scale factors " + pair_str(s) + " must be positive";
  const Shape& x = in[0].shape;
  return need_out_shape(out, Shape{x[0], x[1], x[2] * s[0], x[3] * s[1]});
}

template <class T>
void upsample_nearest2d_typed(const KernelArgs& args) {
  const Shape& xs = args.inputs[0].shape();
  const std::int64_t planes = xs[0] * xs[1], h = xs[2], w = xs[3];
  const std::int64_t sh = args.node.attrs.stride[0], sw = args.node.attrs.stride[1];
  const std::int64_t ho = h * sh, wo = w * sw;
  const T* x = args.inputs[0].data<T>();
  T* y = args.output.data<T>();
  for (std::int64_t pl = 0; pl < planes; ++pl)
    for (std::int64_t i = 0; i < ho; ++i)
      for (std::int64_t j = 0; j < wo; ++j)
        y[(pl * ho + i) * wo + j] = x[(pl * h + i / sh) * w + j / sw];
}

void run_upsample_nearest2d(const KernelArgs& args) {
  require(check_upsample_nearest2d, args);
  with_any(args.output.dtype(), [&](auto tag) { upsample_nearest2d_typed<decltype(tag)>(args); });
}

}  // namespace

void add_upsample_kernels(KernelTable& t) {
  t.add<Op::upsample_nearest2d>({"reference", "ref_upsample_nearest2d",
                                 supports_check<check_upsample_nearest2d>, run_upsample_nearest2d});
}

}  // namespace kiln::internal::ref
