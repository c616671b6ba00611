// Eigen-side kernels that move data: expand, reshape, transpose, concat, slice, pad.
//
// All of them copy contiguous runs with memcpy where the layout allows it; transpose
// of the innermost dim goes through square tiles so reads and writes stay in cache.
#include <cstring>
#include <numeric>
#include <vector>

#include "kernels/eigen/common.hpp"
#include "kernels/eigen/eigen_kernels.hpp"

namespace kiln::internal::eigen {
namespace {

void copy_floats(float* dst, const float* src, std::int64_t n) {
  if (n > 0 && dst != src) std::memcpy(dst, src, static_cast<std::size_t>(n) * sizeof(float));
}

void zero_floats(float* dst, std::int64_t n) {
  if (n > 0) std::memset(dst, 0, static_cast<std::size_t>(n) * sizeof(float));
}

// ---------------------------------------------------------------- expand

bool supports_expand(const KernelQuery& q, std::string* why) {
  if (q.inputs[0].dtype != DType::f32 || q.output.dtype != DType::f32)
    return decline(why, "eigen kernels handle f32 only");
  const Shape& x = q.inputs[0].shape;
  const Shape& y = q.output.shape;
  if (x.rank() != y.rank()) return decline(why, "expand input must have the output's rank");
  for (std::size_t d = 0; d < x.rank(); ++d)
    if (x[d] != 1 && x[d] != y[d]) return decline(why, "expand dims must be 1 or equal");
  return true;
}

struct ExpandGroup {
  std::int64_t size;
  bool broadcast;
  std::int64_t x_stride = 0, y_stride = 0;
};

struct Expander {
  std::vector<ExpandGroup> groups;
  float scale = 1.0f;

  /// Writes the output block of `level` from x; at level 0 only indices [lo, hi).
  void run(std::size_t level, const float* x, float* y, std::int64_t lo, std::int64_t hi) const {
    const ExpandGroup& g = groups[level];
    if (level + 1 == groups.size()) {
      ArrayMap out(y + lo, hi - lo);
      if (g.broadcast)
        out.setConstant(x[0] * scale);
      else if (scale == 1.0f)
        copy_floats(y + lo, x + lo, hi - lo);
      else
        out = ConstArrayMap(x + lo, hi - lo) * scale;
      return;
    }
    if (g.broadcast) {  // build one block, then replicate it
      float* first = y + lo * g.y_stride;
      run(level + 1, x, first, 0, groups[level + 1].size);
      for (std::int64_t i = lo + 1; i < hi; ++i) copy_floats(y + i * g.y_stride, first, g.y_stride);
      return;
    }
    for (std::int64_t i = lo; i < hi; ++i)
      run(level + 1, x + i * g.x_stride, y + i * g.y_stride, 0, groups[level + 1].size);
  }
};

void run_expand(const KernelArgs& args) {
  const Shape& xs = args.inputs[0].shape();
  const Shape& ys = args.output.shape();
  const float* x = args.inputs[0].data<float>();
  float* y = args.output.data<float>();
  const std::int64_t n = args.output.numel();
  if (n == 0) return;
  Expander e;
  if (args.node.attrs.mean)
    e.scale =
        static_cast<float>(static_cast<double>(args.inputs[0].numel()) / static_cast<double>(n));
  for (std::size_t d = 0; d < ys.rank(); ++d) {
    if (ys[d] == 1) continue;
    const bool broadcast = xs[d] == 1;
    if (!e.groups.empty() && e.groups.back().broadcast == broadcast)
      e.groups.back().size *= ys[d];
    else
      e.groups.push_back({ys[d], broadcast});
  }
  if (e.groups.empty()) {
    y[0] = x[0] * e.scale;
    return;
  }
  std::int64_t xst = 1, yst = 1;
  for (auto it = e.groups.rbegin(); it != e.groups.rend(); ++it) {
    it->x_stride = it->broadcast ? 0 : xst;
    it->y_stride = yst;
    if (!it->broadcast) xst *= it->size;
    yst *= it->size;
  }
  const std::int64_t top = e.groups[0].size;
  parallel_ranges(top, std::max<std::int64_t>(1, parallel_grain / (n / top)),
                  [&](std::int64_t lo, std::int64_t hi) { e.run(0, x, y, lo, hi); });
}

// ---------------------------------------------------------------- reshape

bool supports_copy(const KernelQuery& q, std::string* why) {
  if (q.inputs[0].dtype != DType::f32 || q.output.dtype != DType::f32)
    return decline(why, "eigen kernels handle f32 only");
  if (q.inputs[0].shape.numel() != q.output.shape.numel())
    return decline(why, "reshape must keep the element count");
  return true;
}

void run_reshape(const KernelArgs& args) {
  const float* x = args.inputs[0].data<float>();
  float* y = args.output.data<float>();
  parallel_ranges(args.output.numel(), parallel_grain * 4,
                  [&](std::int64_t lo, std::int64_t hi) { copy_floats(y + lo, x + lo, hi - lo); });
}

// ---------------------------------------------------------------- transpose

bool supports_transpose(const KernelQuery& q, std::string* why) {
  if (!require_f32(q, why)) return false;
  const auto& perm = q.node.attrs.axes;
  const std::size_t rank = q.inputs[0].shape.rank();
  if (perm.size() != rank) return decline(why, "permutation length differs from the rank");
  std::vector<bool> seen(rank, false);
  for (auto p : perm) {
    if (p < 0 || p >= static_cast<std::int64_t>(rank) || seen[static_cast<std::size_t>(p)])
      return decline(why, "not a permutation");
    seen[static_cast<std::size_t>(p)] = true;
  }
  return true;
}

/// Walks the positions of a multi-index in row-major order over `dims`, tracking the
/// matching offsets in the input and the output.
struct Walker {
  std::vector<std::int64_t> dims, in_strides, out_strides, index;
  std::int64_t in = 0, out = 0;

  void seek(std::int64_t linear) {
    index.assign(dims.size(), 0);
    in = out = 0;
    for (std::size_t d = dims.size(); d-- > 0;) {
      index[d] = linear % dims[d];
      linear /= dims[d];
      in += index[d] * in_strides[d];
      out += index[d] * out_strides[d];
    }
  }
  void next() {
    for (std::size_t d = dims.size(); d-- > 0;) {
      in += in_strides[d];
      out += out_strides[d];
      if (++index[d] < dims[d]) return;
      in -= dims[d] * in_strides[d];
      out -= dims[d] * out_strides[d];
      index[d] = 0;
    }
  }
};

constexpr std::int64_t transpose_tile = 16;

void run_transpose(const KernelArgs& args) {
  const Shape& xs = args.inputs[0].shape();
  const auto& perm = args.node.attrs.axes;
  const float* x = args.inputs[0].data<float>();
  float* y = args.output.data<float>();
  const std::int64_t total = args.output.numel();
  if (total == 0) return;

  // Drop size-1 dims, then merge input dims that stay adjacent and in order.
  std::vector<std::int64_t> renumber(xs.rank(), -1);
  std::int64_t kept = 0;
  for (std::size_t d = 0; d < xs.rank(); ++d)
    if (xs[d] != 1) renumber[d] = kept++;
  std::vector<std::vector<std::int64_t>> runs;  // output order; each a run of input dims
  for (auto p : perm) {
    const std::int64_t d = renumber[static_cast<std::size_t>(p)];
    if (d < 0) continue;
    if (!runs.empty() && runs.back().back() + 1 == d)
      runs.back().push_back(d);
    else
      runs.push_back({d});
  }
  const std::size_t r = runs.size();
  if (r <= 1) {
    copy_floats(y, x, total);
    return;
  }
  // Group g (in input order) covers input dims runs[..]; order groups by first dim.
  std::vector<std::size_t> by_input(r);
  std::iota(by_input.begin(), by_input.end(), 0);
  std::sort(by_input.begin(), by_input.end(),
            [&](std::size_t a, std::size_t b) { return runs[a][0] < runs[b][0]; });
  std::vector<std::int64_t> kept_dims;
  for (std::size_t d = 0; d < xs.rank(); ++d)
    if (xs[d] != 1) kept_dims.push_back(xs[d]);
  // size and input stride of each group, indexed by output position
  std::vector<std::int64_t> size(r), in_stride(r), out_stride(r);
  for (std::size_t i = 0; i < r; ++i) {
    size[i] = 1;
    for (auto d : runs[i]) size[i] *= kept_dims[static_cast<std::size_t>(d)];
  }
  std::int64_t st = 1;
  for (std::size_t k = r; k-- > 0;) {
    in_stride[by_input[k]] = st;
    st *= size[by_input[k]];
  }
  st = 1;
  for (std::size_t i = r; i-- > 0;) {
    out_stride[i] = st;
    st *= size[i];
  }
  const std::size_t in_inner = by_input[r - 1];  // output position of the input's inner dim

  if (in_inner == r - 1) {  // innermost dim unchanged: copy rows
    const std::int64_t row = size[r - 1];
    Walker w;
    w.dims.assign(size.begin(), size.end() - 1);
    w.in_strides.assign(in_stride.begin(), in_stride.end() - 1);
    w.out_strides.assign(out_stride.begin(), out_stride.end() - 1);
    const std::int64_t rows = total / row;
    parallel_ranges(rows, std::max<std::int64_t>(1, parallel_grain / row),
                    [&](std::int64_t lo, std::int64_t hi) {
                      Walker local = w;
                      local.seek(lo);
                      for (std::int64_t i = lo; i < hi; ++i, local.next())
                        copy_floats(y + local.out, x + local.in, row);
                    });
    return;
  }

  // Tiled 2-D transposes of (output inner dim A) x (input inner dim B) for every
  // position of the other dims.
  const std::size_t a_pos = r - 1, b_pos = in_inner;
  const std::int64_t a_size = size[a_pos], b_size = size[b_pos];
  const std::int64_t a_in = in_stride[a_pos], b_out = out_stride[b_pos];
  Walker w;
  for (std::size_t i = 0; i < r; ++i) {
    if (i == a_pos || i == b_pos) continue;
    w.dims.push_back(size[i]);
    w.in_strides.push_back(in_stride[i]);
    w.out_strides.push_back(out_stride[i]);
  }
  const std::int64_t a_tiles = (a_size + transpose_tile - 1) / transpose_tile;
  const std::int64_t items = (total / (a_size * b_size)) * a_tiles;  // (outer, A tile)
  const std::int64_t per_item = transpose_tile * b_size;
  parallel_ranges(items, std::max<std::int64_t>(1, parallel_grain / per_item),
                  [&](std::int64_t lo, std::int64_t hi) {
                    Walker local = w;
                    local.seek(lo / a_tiles);
                    std::int64_t outer = lo / a_tiles;
                    for (std::int64_t item = lo; item < hi; ++item) {
                      if (item / a_tiles != outer) {
                        local.next();
                        outer = item / a_tiles;
                      }
                      const std::int64_t a0 = (item % a_tiles) * transpose_tile;
                      const std::int64_t a1 = std::min(a0 + transpose_tile, a_size);
                      const float* xo = x + local.in;
                      float* yo = y + local.out;
                      for (std::int64_t b0 = 0; b0 < b_size; b0 += transpose_tile) {
                        const std::int64_t b1 = std::min(b0 + transpose_tile, b_size);
                        for (std::int64_t b = b0; b < b1; ++b)
                          for (std::int64_t a = a0; a < a1; ++a)
                            yo[b * b_out + a] = xo[a * a_in + b];
                      }
                    }
                  });
}

// ---------------------------------------------------------------- concat, slice, pad

bool supports_along_axis(const KernelQuery& q, std::string* why) {
  if (!require_f32(q, why)) return false;
  const auto axis = q.node.attrs.axis;
  if (axis < 0 || axis >= static_cast<std::int64_t>(q.output.shape.rank()))
    return decline(why, "axis out of range");
  return true;
}

void run_concat(const KernelArgs& args) {
  const Shape& ys = args.output.shape();
  const auto axis = static_cast<std::size_t>(args.node.attrs.axis);
  const std::int64_t outer = dims_product(ys, 0, axis);
  const std::int64_t inner = dims_product(ys, axis + 1, ys.rank());
  const std::int64_t out_row = ys[axis] * inner;
  float* y = args.output.data<float>();
  if (outer * out_row == 0) return;
  std::vector<const float*> srcs;
  std::vector<std::int64_t> runs;
  for (const Tensor& t : args.inputs) {
    srcs.push_back(t.data<float>());
    runs.push_back(t.shape()[axis] * inner);
  }
  parallel_ranges(outer, std::max<std::int64_t>(1, parallel_grain / out_row),
                  [&](std::int64_t lo, std::int64_t hi) {
                    for (std::int64_t o = lo; o < hi; ++o) {
                      float* dst = y + o * out_row;
                      for (std::size_t i = 0; i < srcs.size(); ++i) {
                        copy_floats(dst, srcs[i] + o * runs[i], runs[i]);
                        dst += runs[i];
                      }
                    }
                  });
}

void run_slice(const KernelArgs& args) {
  const Shape& xs = args.inputs[0].shape();
  const Attrs& at = args.node.attrs;
  const auto axis = static_cast<std::size_t>(at.axis);
  const std::int64_t outer = dims_product(xs, 0, axis);
  const std::int64_t inner = dims_product(xs, axis + 1, xs.rank());
  const std::int64_t in_row = xs[axis] * inner, run = (at.stop - at.start) * inner;
  const float* x = args.inputs[0].data<float>() + at.start * inner;
  float* y = args.output.data<float>();
  if (outer * run == 0) return;
  parallel_ranges(outer, std::max<std::int64_t>(1, parallel_grain / run),
                  [&](std::int64_t lo, std::int64_t hi) {
                    for (std::int64_t o = lo; o < hi; ++o)
                      copy_floats(y + o * run, x + o * in_row, run);
                  });
}

bool supports_slice(const KernelQuery& q, std::string* why) {
  if (!supports_along_axis(q, why)) return false;
  const Attrs& at = q.node.attrs;
  const std::int64_t n = q.inputs[0].shape[static_cast<std::size_t>(at.axis)];
  if (at.start < 0 || at.stop > n || at.start > at.stop) return decline(why, "bad slice bounds");
  return true;
}

bool supports_pad(const KernelQuery& q, std::string* why) {
  if (!supports_along_axis(q, why)) return false;
  if (q.node.attrs.start < 0 || q.node.attrs.stop < 0) return decline(why, "negative padding");
  return true;
}

void run_pad(const KernelArgs& args) {
  const Shape& xs = args.inputs[0].shape();
  const Attrs& at = args.node.attrs;
  const auto axis = static_cast<std::size_t>(at.axis);
  const std::int64_t outer = dims_product(xs, 0, axis);
  const std::int64_t inner = dims_product(xs, axis + 1, xs.rank());
  const std::int64_t run = xs[axis] * inner, before = at.start * inner, after = at.stop * inner;
  const std::int64_t out_row = before + run + after;
  const float* x = args.inputs[0].data<float>();
  float* y = args.output.data<float>();
  if (outer * out_row == 0) return;
  parallel_ranges(outer, std::max<std::int64_t>(1, parallel_grain / out_row),
                  [&](std::int64_t lo, std::int64_t hi) {
                    for (std::int64_t o = lo; o < hi; ++o) {
                      float* dst = y + o * out_row;
                      zero_floats(dst, before);
                      copy_floats(dst + before, x + o * run, run);
                      zero_floats(dst + before + run, after);
                    }
                  });
}

}  // namespace

void register_data_movement(KernelTable& t) {
  t.add<Op::expand>({"eigen", "eigen_expand_replicate", supports_expand, run_expand});
  t.add<Op::reshape>({"eigen", "eigen_reshape_copy", supports_copy, run_reshape});
  t.add<Op::transpose>({"eigen", "eigen_transpose_tiled", supports_transpose, run_transpose});
  t.add<Op::concat>({"eigen", "eigen_concat_rows", supports_along_axis, run_concat});
  t.add<Op::slice>({"eigen", "eigen_slice_rows", supports_slice, run_slice});
  t.add<Op::pad>({"eigen", "eigen_pad_rows", supports_pad, run_pad});
}

}  // namespace kiln::internal::eigen
