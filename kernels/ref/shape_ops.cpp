// Reference data-movement kernels: expand, reshape, transpose, concat, slice and pad.
//
// They only move elements, so they accept every dtype (expand with mean needs a float).
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/ref/ref.hpp"
#include "kernels/ref/ref_util.hpp"

namespace kiln::internal::ref {
namespace {

std::string check_axis(std::int64_t axis, const Shape& s) {
  if (axis >= 0 && axis < static_cast<std::int64_t>(s.rank())) return {};
  return "axis " + std::to_string(axis) + " out of range for shape " + s.str();
}

// ---- expand -------------------------------------------------------------------------

/// x [d0, d1, ...] with each di 1 or out's di; an optional second input (`like`) only
/// supplied the batch size to shape inference.
std::string check_expand(const Node& node, Descs in, const TensorDesc& out) {
  if (auto e = need_arity(in, 1, 2); !e.empty()) return e;
  if (auto e = need_same_dtype(in.first(1), out); !e.empty()) return e;
  if (node.attrs.mean && !is_floating(out.dtype)) return "expand with mean needs f32 or f64";
  const Shape& x = in[0].shape;
  if (x.rank() != out.shape.rank())
    return "input " + x.str() + " and output " + out.shape.str() + " differ in rank";
  for (std::size_t d = 0; d < x.rank(); ++d)
    if (x[d] != 1 && x[d] != out.shape[d])
      return "cannot expand " + x.str() + " to " + out.shape.str();
  return {};
}

template <class T>
void expand_typed(const KernelArgs& args) {
  const Tensor& x_t = args.inputs[0];
  const Shape& out_shape = args.output.shape();
  std::vector<std::int64_t> x_strides = strides_of(x_t.shape());
  for (std::size_t d = 0; d < x_strides.size(); ++d)
    if (x_t.dim(d) == 1) x_strides[d] = 0;  // broadcast dims repeat the same element
  const T* x = x_t.data<T>();
  T* out = args.output.data<T>();
  const bool mean = args.node.attrs.mean;
  const double factor =
      x_t.numel() == 0 ? 1.0 : static_cast<double>(args.output.numel()) / x_t.numel();
  std::vector<std::int64_t> idx(out_shape.rank(), 0);
  for (std::int64_t i = 0; i < args.output.numel(); ++i) {
    std::int64_t src = 0;
    for (std::size_t d = 0; d < idx.size(); ++d) src += idx[d] * x_strides[d];
    if constexpr (std::is_floating_point_v<T>) {
      out[i] = mean ? static_cast<T>(static_cast<double>(x[src]) / factor) : x[src];
    } else {
      out[i] = x[src];
    }
    next_index(idx, out_shape);
  }
}

void run_expand(const KernelArgs& args) {
  require(check_expand, args);
  with_any(args.output.dtype(), [&](auto tag) { expand_typed<decltype(tag)>(args); });
}

// ---- reshape ------------------------------------------------------------------------

std::string check_reshape(const Node&, Descs in, const TensorDesc& out) {
  if (auto e = need_arity(in, 1, 1); !e.empty()) return e;
  if (auto e = need_same_dtype(in, out); !e.empty()) return e;
  if (numel_of(in[0].shape) != numel_of(out.shape))
    return "cannot reshape " + in[0].shape.str() + " to " + out.shape.str();
  return {};
}

void run_reshape(const KernelArgs& args) {
  require(check_reshape, args);
  if (args.output.nbytes() > 0)
    std::memcpy(args.output.raw(), args.inputs[0].raw(), args.output.nbytes());
}

// ---- transpose ----------------------------------------------------------------------

std::string check_transpose(const Node& node, Descs in, const TensorDesc& out) {
  if (auto e = need_arity(in, 1, 1); !e.empty()) return e;
  if (auto e = need_same_dtype(in, out); !e.empty()) return e;
  const Shape& x = in[0].shape;
  const std::vector<std::int64_t>& perm = node.attrs.axes;
  if (perm.size() != x.rank())
    return "permutation of " + std::to_string(perm.size()) + " axes for shape " + x.str();
  std::vector<bool> seen(perm.size(), false);
  std::vector<std::int64_t> expected;
  for (std::int64_t p : perm) {
    if (p < 0 || p >= static_cast<std::int64_t>(perm.size()) || seen[static_cast<std::size_t>(p)])
      return "axes are not a permutation of 0.." + std::to_string(perm.size() - 1);
    seen[static_cast<std::size_t>(p)] = true;
    expected.push_back(x[static_cast<std::size_t>(p)]);
  }
  return need_out_shape(out, Shape(std::move(expected)));
}

template <class T>
void transpose_typed(const KernelArgs& args) {
  const Tensor& x_t = args.inputs[0];
  const std::vector<std::int64_t>& perm = args.node.attrs.axes;
  const std::vector<std::int64_t> x_strides = strides_of(x_t.shape());
  // Output dim i walks x's dim perm[i].
  std::vector<std::int64_t> src_strides(perm.size());
  for (std::size_t i = 0; i < perm.size(); ++i)
    src_strides[i] = x_strides[static_cast<std::size_t>(perm[i])];
  const Shape& out_shape = args.output.shape();
  const T* x = x_t.data<T>();
  T* out = args.output.data<T>();
  std::vector<std::int64_t> idx(out_shape.rank(), 0);
  for (std::int64_t i = 0; i < args.output.numel(); ++i) {
    std::int64_t src = 0;
    for (std::size_t d = 0; d < idx.size(); ++d) src += idx[d] * src_strides[d];
    out[i] = x[src];
    next_index(idx, out_shape);
  }
}

void run_transpose(const KernelArgs& args) {
  require(check_transpose, args);
  with_any(args.output.dtype(), [&](auto tag) { transpose_typed<decltype(tag)>(args); });
}

// ---- concat -------------------------------------------------------------------------

std::string check_concat(const Node& node, Descs in, const TensorDesc& out) {
  if (in.empty()) return "concat needs at least one input";
  if (auto e = need_same_dtype(in, out); !e.empty()) return e;
  const Shape& first = in[0].shape;
  if (auto e = check_axis(node.attrs.axis, first); !e.empty()) return e;
  const auto axis = static_cast<std::size_t>(node.attrs.axis);
  std::vector<std::int64_t> expected(first.dims());
  expected[axis] = 0;
  for (const TensorDesc& x : in) {
    bool fits = x.shape.rank() == first.rank();
    for (std::size_t d = 0; fits && d < first.rank(); ++d)
      fits = d == axis || x.shape[d] == first[d];
    if (!fits)
      return "cannot concat " + first.str() + " and " + x.shape.str() + " on axis " +
             std::to_string(axis);
    expected[axis] += x.shape[axis];
  }
  return need_out_shape(out, Shape(std::move(expected)));
}

void run_concat(const KernelArgs& args) {
  require(check_concat, args);
  const auto axis = static_cast<std::size_t>(args.node.attrs.axis);
  const AxisSplit o = split_at(args.output.shape(), axis);
  const std::size_t elem = size_of(args.output.dtype());
  auto* out = static_cast<unsigned char*>(args.output.raw());
  // Row by row (outer index), each input contributes its whole [n_k, inner] block.
  for (std::int64_t r = 0; r < o.outer; ++r) {
    for (const Tensor& x : args.inputs) {
      const auto block = static_cast<std::size_t>(x.dim(axis) * o.inner) * elem;
      if (block == 0) continue;
      const auto* src = static_cast<const unsigned char*>(x.raw()) + r * block;
      std::memcpy(out, src, block);
      out += block;
    }
  }
}

// ---- slice --------------------------------------------------------------------------

std::string check_slice(const Node& node, Descs in, const TensorDesc& out) {
  if (auto e = need_arity(in, 1, 1); !e.empty()) return e;
  if (auto e = need_same_dtype(in, out); !e.empty()) return e;
  const Shape& x = in[0].shape;
  if (auto e = check_axis(node.attrs.axis, x); !e.empty()) return e;
  const auto axis = static_cast<std::size_t>(node.attrs.axis);
  const std::int64_t start = node.attrs.start;
  const std::int64_t stop = node.attrs.stop;
  if (start < 0 || start > stop || stop > x[axis])
    return "slice [" + std::to_string(start) + ", " + std::to_string(stop) + ") of dim " +
           std::to_string(x[axis]);
  std::vector<std::int64_t> expected(x.dims());
  expected[axis] = stop - start;
  return need_out_shape(out, Shape(std::move(expected)));
}

void run_slice(const KernelArgs& args) {
  require(check_slice, args);
  const auto axis = static_cast<std::size_t>(args.node.attrs.axis);
  const AxisSplit x = split_at(args.inputs[0].shape(), axis);
  const std::int64_t n_out = args.node.attrs.stop - args.node.attrs.start;
  const std::size_t elem = size_of(args.output.dtype());
  const auto block = static_cast<std::size_t>(n_out * x.inner) * elem;
  if (block == 0) return;
  const auto* src = static_cast<const unsigned char*>(args.inputs[0].raw());
  auto* out = static_cast<unsigned char*>(args.output.raw());
  for (std::int64_t r = 0; r < x.outer; ++r) {
    const std::int64_t first = (r * x.n + args.node.attrs.start) * x.inner;
    std::memcpy(out + r * block, src + static_cast<std::size_t>(first) * elem, block);
  }
}

// ---- pad ----------------------------------------------------------------------------

std::string check_pad(const Node& node, Descs in, const TensorDesc& out) {
  if (auto e = need_arity(in, 1, 1); !e.empty()) return e;
  if (auto e = need_same_dtype(in, out); !e.empty()) return e;
  const Shape& x = in[0].shape;
  if (auto e = check_axis(node.attrs.axis, x); !e.empty()) return e;
  if (node.attrs.start < 0 || node.attrs.stop < 0)
    return "negative padding " + std::to_string(node.attrs.start) + ", " +
           std::to_string(node.attrs.stop);
  const auto axis = static_cast<std::size_t>(node.attrs.axis);
  std::vector<std::int64_t> expected(x.dims());
  expected[axis] += node.attrs.start + node.attrs.stop;
  return need_out_shape(out, Shape(std::move(expected)));
}

void run_pad(const KernelArgs& args) {
  require(check_pad, args);
  const auto axis = static_cast<std::size_t>(args.node.attrs.axis);
  const AxisSplit x = split_at(args.inputs[0].shape(), axis);
  const AxisSplit o = split_at(args.output.shape(), axis);
  const std::size_t elem = size_of(args.output.dtype());
  auto* out = static_cast<unsigned char*>(args.output.raw());
  if (args.output.nbytes() > 0) std::memset(out, 0, args.output.nbytes());  // 0 in every dtype
  const auto block = static_cast<std::size_t>(x.n * x.inner) * elem;
  if (block == 0) return;
  const auto* src = static_cast<const unsigned char*>(args.inputs[0].raw());
  for (std::int64_t r = 0; r < x.outer; ++r) {
    const std::int64_t first = (r * o.n + args.node.attrs.start) * o.inner;
    std::memcpy(out + static_cast<std::size_t>(first) * elem, src + r * block, block);
  }
}

}  // namespace

void add_shape_kernels(KernelTable& t) {
  t.add<Op::expand>({"reference", "ref_expand", supports_check<check_expand>, run_expand});
  t.add<Op::reshape>({"reference", "ref_reshape", supports_check<check_reshape>, run_reshape});
  t.add<Op::transpose>(
      {"reference", "ref_transpose", supports_check<check_transpose>, run_transpose});
  t.add<Op::concat>({"reference", "ref_concat", supports_check<check_concat>, run_concat});
  t.add<Op::slice>({"reference", "ref_slice", supports_check<check_slice>, run_slice});
  t.add<Op::pad>({"reference", "ref_pad", supports_check<check_pad>, run_pad});
}

}  // namespace kiln::internal::ref
