// Reference reductions: sum, mean and max over sorted, unique axes, with or without keepdims.
//
// Every input element is folded, in row-major order, into the output element found by
// setting its reduced coordinates to zero (keepdims or not, the output's row-major order
// is the same). Sums accumulate in double; max propagates NaN.
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "kernels/ref/ref.hpp"
#include "kernels/ref/ref_util.hpp"

namespace kiln::internal::ref {
namespace {

enum class Reduction { sum, mean, max };

std::string check_reduce(const Node& node, Descs in, const TensorDesc& out) {
  if (auto e = need_arity(in, 1, 1); !e.empty()) return e;
  if (auto e = need_float_alike(in, out); !e.empty()) return e;
  const Shape& x = in[0].shape;
  const std::vector<std::int64_t>& axes = node.attrs.axes;
  if (axes.empty()) return "no reduction axes";
  for (std::size_t i = 0; i < axes.size(); ++i) {
    if (axes[i] < 0 || axes[i] >= static_cast<std::int64_t>(x.rank()))
      return "axis " + std::to_string(axes[i]) + " out of range for shape " + x.str();
    if (i > 0 && axes[i] <= axes[i - 1]) return "axes must be sorted and unique";
  }
  std::vector<std::int64_t> expected;
  std::size_t next_axis = 0;
  for (std::size_t d = 0; d < x.rank(); ++d) {
    const bool reduced = next_axis < axes.size() && axes[next_axis] == static_cast<std::int64_t>(d);
    if (reduced) ++next_axis;
    if (!reduced)
      expected.push_back(x[d]);
    else if (node.attrs.keepdims)
      expected.push_back(1);
  }
  return need_out_shape(out, Shape(std::move(expected)));
}

template <class T>
void reduce_typed(const KernelArgs& args, Reduction kind) {
  const Tensor& x_t = args.inputs[0];
  const Shape& x_shape = x_t.shape();
  // The output as a shape of x's rank, reduced dims set to 1.
  std::vector<bool> reduced(x_shape.rank(), false);
  for (std::int64_t a : args.node.attrs.axes) reduced[static_cast<std::size_t>(a)] = true;
  std::vector<std::int64_t> kept_dims(x_shape.dims());
  for (std::size_t d = 0; d < kept_dims.size(); ++d)
    if (reduced[d]) kept_dims[d] = 1;
  const Shape kept(kept_dims);
  const std::vector<std::int64_t> kept_strides = strides_of(kept);

  const std::int64_t out_n = args.output.numel();
  const double init = kind == Reduction::max ? -std::numeric_limits<double>::infinity() : 0.0;
  std::vector<double> acc(static_cast<std::size_t>(out_n), init);

  const T* x = x_t.data<T>();
  std::vector<std::int64_t> idx(x_shape.rank(), 0);
  for (std::int64_t i = 0; i < x_t.numel(); ++i) {
    std::int64_t o = 0;
    for (std::size_t d = 0; d < idx.size(); ++d)
      if (!reduced[d]) o += idx[d] * kept_strides[d];
    const double v = static_cast<double>(x[i]);
    double& a = acc[static_cast<std::size_t>(o)];
    if (kind == Reduction::max) {
      if (v > a || std::isnan(v)) a = std::isnan(a) ? a : v;
    } else {
      a += v;
    }
    next_index(idx, x_shape);
  }

  T* out = args.output.data<T>();
  const double count =
      out_n == 0 ? 0.0 : static_cast<double>(x_t.numel()) / static_cast<double>(out_n);
  for (std::int64_t o = 0; o < out_n; ++o) {
    double v = acc[static_cast<std::size_t>(o)];
    if (kind == Reduction::mean) v /= count;
    out[o] = static_cast<T>(v);
  }
}

template <Reduction kind>
void run_reduce(const KernelArgs& args) {
  require(check_reduce, args);
  with_float(args.output.dtype(), [&](auto tag) { reduce_typed<decltype(tag)>(args, kind); });
}

constexpr auto supports_reduce = supports_check<check_reduce>;

}  // namespace

void add_reduce_kernels(KernelTable& t) {
  t.add<Op::sum>({"reference", "ref_sum", supports_reduce, run_reduce<Reduction::sum>});
  t.add<Op::mean>({"reference", "ref_mean", supports_reduce, run_reduce<Reduction::mean>});
  t.add<Op::max>({"reference", "ref_max", supports_reduce, run_reduce<Reduction::max>});
}

}  // namespace kiln::internal::ref
