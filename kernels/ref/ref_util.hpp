// Internal: helpers shared by the reference kernels: dtype dispatch, row-major index
// arithmetic and the checks behind each kernel's supports().
//
// Every reference kernel has one check function that returns "" when it can run a node with
// the given input and output descriptions, and else says why not. supports() reports that
// reason; run() repeats the check on the actual tensors (require) so that a mismatch raises
// kiln::ValueError instead of reading or writing out of bounds.
//
// The geometry of sliding windows (conv2d, pooling) and the per-channel batch statistics
// are here too, shared by the forward kernels and their training-only backward kernels.
//
// Everything here is inline: the training-only kernels are built into kiln, which cannot
// link against kiln_infer's hidden symbols in a shared build.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "internal/conv_geometry.hpp"
#include "internal/kernel.hpp"
#include "kiln/core/error.hpp"

namespace kiln::internal::ref {

using Descs = std::span<const TensorDesc>;
/// "" when the kernel can run `node` with these inputs and output, else the reason.
using Check = std::string (*)(const Node& node, Descs in, const TensorDesc& out);

/// "'name' (op)" for messages.
inline std::string node_label(const Node& node) {
  return "'" + node.name + "' (" + std::string(op_name(node.op)) + ")";
}

inline std::string dtype_name(DType t) { return std::string(to_string(t)); }

// ---- pieces of checks (each returns "" when fine) -------------------------------------

/// Between lo and hi inputs.
inline std::string need_arity(Descs in, std::size_t lo, std::size_t hi) {
  if (in.size() >= lo && in.size() <= hi) return {};
  const std::string want =
      lo == hi ? std::to_string(lo) : std::to_string(lo) + " to " + std::to_string(hi);
  return "expected " + want + " inputs, got " + std::to_string(in.size());
}

/// All inputs and the output share one dtype (any).
inline std::string need_same_dtype(Descs in, const TensorDesc& out) {
  for (std::size_t i = 0; i < in.size(); ++i)
    if (in[i].dtype != out.dtype)
      return "input " + std::to_string(i) + " has dtype " + dtype_name(in[i].dtype) + ", output " +
             dtype_name(out.dtype);
  return {};
}

/// All inputs and the output share one float dtype.
inline std::string need_float_alike(Descs in, const TensorDesc& out) {
  if (!is_floating(out.dtype)) return "output dtype " + dtype_name(out.dtype) + " is not float";
  return need_same_dtype(in, out);
}

/// d is i32 or i64.
inline std::string need_integer(const TensorDesc& d, const char* what) {
  if (is_integer(d.dtype)) return {};
  return std::string(what) + " must be i32 or i64, got " + dtype_name(d.dtype);
}

/// The output has exactly this shape.
inline std::string need_out_shape(const TensorDesc& out, const Shape& expected) {
  if (out.shape == expected) return {};
  return "output shape " + out.shape.str() + ", expected " + expected.str();
}

/// Every shape is concrete (no kiln::batch or negative dims).
inline std::string need_static(Descs in, const TensorDesc& out) {
  auto dynamic = [](const Shape& s) {
    for (std::int64_t d : s)
      if (d < 0) return true;
    return false;
  };
  for (std::size_t i = 0; i < in.size(); ++i)
    if (dynamic(in[i].shape))
      return "input " + std::to_string(i) + " shape " + in[i].shape.str() + " is not concrete";
  if (dynamic(out.shape)) return "output shape " + out.shape.str() + " is not concrete";
  return {};
}

/// need_static, then the kernel's own check.
inline std::string check_all(Check check, const Node& node, Descs in, const TensorDesc& out) {
  std::string problem = need_static(in, out);
  if (problem.empty()) problem = check(node, in, out);
  return problem;
}

// ---- supports() and run() entry ------------------------------------------------------

/// supports() of a kernel whose conditions are `check`; a refusal's reason goes to *why.
inline bool supports_by(Check check, const KernelQuery& q, std::string* why) {
  std::string problem = check_all(check, q.node, q.inputs, q.output);
  if (problem.empty()) return true;
  if (why != nullptr) *why = std::move(problem);
  return false;
}

/// Kernel::supports for a check function.
template <Check C>
bool supports_check(const KernelQuery& q, std::string* why) {
  return supports_by(C, q, why);
}

/// Runs `check` on the actual tensors of a call; throws ValueError naming the node if it
/// fails. Every reference run() starts with this.
inline void require(Check check, const KernelArgs& args) {
  std::vector<TensorDesc> in;
  in.reserve(args.inputs.size());
  for (const Tensor& t : args.inputs) {
    if (!t.defined() || !t.is_contiguous())
      throw ValueError("reference kernel for node " + node_label(args.node) +
                       ": inputs must be defined and contiguous");
    in.push_back({t.shape(), t.dtype()});
  }
  if (!args.output.defined() || !args.output.is_contiguous())
    throw ValueError("reference kernel for node " + node_label(args.node) +
                     ": the output must be preallocated and contiguous");
  const std::string problem =
      check_all(check, args.node, in, {args.output.shape(), args.output.dtype()});
  if (!problem.empty())
    throw ValueError("reference kernel cannot run node " + node_label(args.node) + ": " + problem);
}

// ---- dtype dispatch -------------------------------------------------------------------

/// Calls f(T{}) with T the C++ type of a float dtype (float or double).
template <class F>
void with_float(DType t, F&& f) {
  if (t == DType::f32) {
    f(float{});
  } else if (t == DType::f64) {
    f(double{});
  } else {
    throw DTypeError("reference kernel: expected f32 or f64, got " + dtype_name(t));
  }
}

/// Calls f(T{}) with T the C++ type of any dtype.
template <class F>
void with_any(DType t, F&& f) {
  switch (t) {
    case DType::f32:
      f(float{});
      return;
    case DType::f64:
      f(double{});
      return;
    case DType::i32:
      f(std::int32_t{});
      return;
    case DType::i64:
      f(std::int64_t{});
      return;
  }
  throw DTypeError("reference kernel: unknown dtype");
}

/// The integer at flat index i of an i32 or i64 tensor.
inline std::int64_t index_at(const Tensor& t, std::int64_t i) {
  if (t.dtype() == DType::i32) return t.data<std::int32_t>()[i];
  return t.data<std::int64_t>()[i];
}

// ---- row-major index arithmetic -------------------------------------------------------

/// Product of dims [begin, end) of s (1 for an empty range).
inline std::int64_t product(const Shape& s, std::size_t begin, std::size_t end) {
  std::int64_t p = 1;
  for (std::size_t d = begin; d < end; ++d) p *= s[d];
  return p;
}

/// Number of elements of a static shape (1 for rank 0).
inline std::int64_t numel_of(const Shape& s) { return product(s, 0, s.rank()); }

/// A row-major shape seen as [outer, n, inner] around one axis.
struct AxisSplit {
  std::int64_t outer;  ///< product of the dims before the axis
  std::int64_t n;      ///< the axis's dim
  std::int64_t inner;  ///< product of the dims after the axis
};

inline AxisSplit split_at(const Shape& s, std::size_t axis) {
  return {product(s, 0, axis), s[axis], product(s, axis + 1, s.rank())};
}

/// Row-major element strides of s.
inline std::vector<std::int64_t> strides_of(const Shape& s) {
  std::vector<std::int64_t> st(s.rank(), 1);
  for (std::size_t d = s.rank(); d-- > 1;) st[d - 1] = st[d] * s[d];
  return st;
}

/// Advances a multi-index over shape s in row-major order (last dim fastest); returns false
/// after the last index (the index is then all zeros again).
inline bool next_index(std::vector<std::int64_t>& idx, const Shape& s) {
  for (std::size_t d = s.rank(); d-- > 0;) {
    if (++idx[d] < s[d]) return true;
    idx[d] = 0;
  }
  return false;
}

// ---- convolution and pooling geometry (NCHW) ------------------------------------------

// Output sizes, attribute checks and pooling windows: internal/conv_geometry.hpp, the one
// geometry of the shape rules and every kernel family.

/// A 4-D (NCHW) shape.
inline std::string need_nchw(const Shape& s, const char* what) {
  if (s.rank() == 4) return {};
  return std::string(what) + " must be 4-D (NCHW), got " + s.str();
}

/// Offset (within one [H, W] plane) of the first maximum of a window in row-major scan
/// order. A NaN counts as larger than everything (the first NaN wins, as max does); a window
/// of -inf only picks its first cell. Padding cells never take part.
template <class T>
std::int64_t window_argmax(const T* plane, std::int64_t width, const PoolWindow& win) {
  std::int64_t best_at = win.h0 * width + win.w0;
  double best = -std::numeric_limits<double>::infinity();
  for (std::int64_t r = win.h0; r < win.h1; ++r)
    for (std::int64_t c = win.w0; c < win.w1; ++c) {
      const double v = static_cast<double>(plane[r * width + c]);
      if (std::isnan(v)) return r * width + c;
      if (v > best) {
        best = v;
        best_at = r * width + c;
      }
    }
  return best_at;
}

// ---- batch statistics -------------------------------------------------------------------

/// x [N, C] or [N, C, H, W] seen as [N, C, S] with S = H*W (1 for rank 2).
struct ChannelSplit {
  std::int64_t n, c, s;
  std::int64_t count() const { return n * s; }  ///< elements per channel
};

inline ChannelSplit channel_split(const Shape& x) {
  return {x[0], x[1], x.rank() == 4 ? x[2] * x[3] : 1};
}

/// Per-channel mean and biased variance of x (two passes, in double).
template <class T>
void channel_stats(const T* x, const ChannelSplit& d, std::vector<double>& mean,
                   std::vector<double>& var) {
  mean.assign(static_cast<std::size_t>(d.c), 0.0);
  var.assign(static_cast<std::size_t>(d.c), 0.0);
  for (std::int64_t ch = 0; ch < d.c; ++ch) {
    double sum = 0.0;
    for (std::int64_t n = 0; n < d.n; ++n)
      for (std::int64_t k = 0; k < d.s; ++k)
        sum += static_cast<double>(x[(n * d.c + ch) * d.s + k]);
    const double m = sum / static_cast<double>(d.count());
    double sq = 0.0;
    for (std::int64_t n = 0; n < d.n; ++n)
      for (std::int64_t k = 0; k < d.s; ++k) {
        const double dev = static_cast<double>(x[(n * d.c + ch) * d.s + k]) - m;
        sq += dev * dev;
      }
    mean[static_cast<std::size_t>(ch)] = m;
    var[static_cast<std::size_t>(ch)] = sq / static_cast<double>(d.count());
  }
}

}  // namespace kiln::internal::ref
