// Eigen kernels of conv2d and conv_transpose2d (NCHW, f32).
//
// conv2d: per batch item and group, im2col into a per-plan scratch buffer and one GEMM
// W_g [O/g, C/g*kh*kw] · col; 1x1 stride-1 unpadded convolutions skip im2col, and
// convolutions with one input channel per group and few outputs per group (depthwise) run
// as direct vectorised loops instead. conv_transpose2d: per item and group, the GEMM
// W_g^T · x_g then col2im into the output. Bias and ReLU run as an epilogue on the block
// just written. Threads split the (batch item, group) pieces when there is enough work;
// otherwise Eigen's GEMM uses them.
#include "kernels/eigen/conv_geometry.hpp"
#include "kernels/eigen/eigen_kernels.hpp"

namespace kiln::internal::eigen {
namespace {

using Mat = RowMajorMatrix;
using ConstMatMap = Eigen::Map<const Mat>;
using MatMap = Eigen::Map<Mat>;

bool supports_conv(const KernelQuery& q, std::string* why) {
  if (!require_f32(q, why)) return false;
  if (q.inputs.size() != 2 && q.inputs.size() != 3)
    return decline(why, "needs x, w and an optional bias");
  if (q.inputs[0].shape.rank() != 4 || q.inputs[1].shape.rank() != 4)
    return decline(why, "x and w must be 4-D");
  if (q.node.attrs.post_op != PostOp::none && q.node.attrs.post_op != PostOp::relu)
    return decline(why, "only the relu post-op is fused");
  if (q.inputs[0].shape.numel() == 0 || q.output.shape.numel() == 0)
    return decline(why, "empty tensors are left to the reference");
  const Shape& w = q.inputs[1].shape;
  const std::string e =
      q.node.op == Op::conv_transpose2d
          ? conv_transpose_geometry_error(q.node.attrs, q.inputs[0].shape, q.output.shape, w[2],
                                          w[3])
          : conv_geometry_error(q.node.attrs, q.inputs[0].shape, q.output.shape, w[2], w[3]);
  if (!e.empty()) return decline(why, e.c_str());
  return true;
}

const float* bias_of(const KernelArgs& args) {
  return args.inputs.size() == 3 ? args.inputs[2].data<float>() : nullptr;
}

// ---- conv2d -----------------------------------------------------------------------------

ConvGeometry conv2d_geometry(const Attrs& a, const Shape& x, const Shape& w, const Shape& out) {
  return conv_geometry(a, x, out, w[2], w[3]);
}

/// Direct loops pay off when each input channel feeds few output channels.
bool use_direct(const ConvGeometry& g) { return g.in_cg() == 1 && g.out_cg() < 8; }

std::int64_t conv2d_scratch_size(const ConvGeometry& g) {
  return use_direct(g) || g.pointwise() ? 0 : g.col_size();
}

std::int64_t conv2d_items(const ConvGeometry& g) {
  return use_direct(g) ? g.batch * g.out_c : g.batch * g.groups;
}

std::shared_ptr<void> prepare_conv2d(const KernelQuery& q) {
  const ConvGeometry g =
      conv2d_geometry(q.node.attrs, q.inputs[0].shape, q.inputs[1].shape, q.output.shape);
  const auto slots = static_cast<int>(std::clamp<std::int64_t>(num_threads(), 1, conv2d_items(g)));
  return std::make_shared<Scratch>(conv2d_scratch_size(g), slots);
}

/// One output plane of a convolution with one input channel per group.
void direct_plane(const ConvGeometry& g, const float* x, const float* w, const float* bias,
                  float* y, bool relu, std::int64_t item) {
  const std::int64_t n = item / g.out_c, o = item % g.out_c, c = o / g.out_cg();
  const float* src = x + (n * g.in_c + c) * g.in_plane();
  float* dst = y + item * g.out_plane();
  const float* wk = w + o * g.kh * g.kw;
  std::fill(dst, dst + g.out_plane(), bias != nullptr ? bias[o] : 0.0f);
  for (std::int64_t ki = 0; ki < g.kh; ++ki) {
    const ValidRange rows = valid_range(g.in_h, g.out_h, g.sh, ki * g.dh - g.ph);
    for (std::int64_t kj = 0; kj < g.kw; ++kj) {
      const float v = wk[ki * g.kw + kj];
      const std::int64_t off_w = kj * g.dw - g.pw;
      const ValidRange cols = valid_range(g.in_w, g.out_w, g.sw, off_w);
      for (std::int64_t oh = rows.lo; oh < rows.hi; ++oh) {
        float* d = dst + oh * g.out_w;
        const float* s = src + (oh * g.sh + ki * g.dh - g.ph) * g.in_w + off_w;
        if (g.sw == 1) {
          for (std::int64_t ow = cols.lo; ow < cols.hi; ++ow) d[ow] += v * s[ow];
        } else {
          for (std::int64_t ow = cols.lo; ow < cols.hi; ++ow) d[ow] += v * s[ow * g.sw];
        }
      }
    }
  }
  if (relu) add_bias_relu(dst, 1, g.out_plane(), nullptr, true);
}

/// C = W · X (+ bias per row, then relu) for one block; C is written once by the GEMM.
template <class WExpr>
void gemm_epilogue(const WExpr& w, const ConstMatMap& x, float* out, const float* bias, bool relu) {
  MatMap c(out, w.rows(), x.cols());
  if (bias != nullptr) {
    for (Eigen::Index r = 0; r < c.rows(); ++r) c.row(r).setConstant(bias[r]);
    c.noalias() += w * x;
  } else {
    c.noalias() = w * x;
  }
  if (relu) c.array() = relu_keep_nan(c.array());
}

/// One (batch item, group) block of conv2d through im2col and a GEMM.
void gemm_block(const ConvGeometry& g, const float* x, const float* w, const float* bias, float* y,
                bool relu, std::int64_t item, float* col) {
  const std::int64_t n = item / g.groups, grp = item % g.groups;
  const float* img = x + (n * g.in_c + grp * g.in_cg()) * g.in_plane();
  if (!g.pointwise()) im2col(img, col, g);
  const ConstMatMap cols(g.pointwise() ? img : col, g.col_rows(), g.out_plane());
  const ConstMatMap wg(w + grp * g.out_cg() * g.col_rows(), g.out_cg(), g.col_rows());
  gemm_epilogue(wg, cols, y + (n * g.out_c + grp * g.out_cg()) * g.out_plane(),
                bias != nullptr ? bias + grp * g.out_cg() : nullptr, relu);
}

void run_conv2d(const KernelArgs& args) {
  const ConvGeometry g = conv2d_geometry(args.node.attrs, args.inputs[0].shape(),
                                         args.inputs[1].shape(), args.output.shape());
  const float* x = args.inputs[0].data<float>();
  const float* w = args.inputs[1].data<float>();
  const float* bias = bias_of(args);
  float* y = args.output.data<float>();
  const bool relu = args.node.attrs.post_op == PostOp::relu;
  const std::int64_t items = conv2d_items(g);
  if (use_direct(g)) {
    const int workers = worker_count(items, 2 * g.out_plane() * g.kh * g.kw);
    for_items(items, workers,
              [&](std::int64_t i, int) { direct_plane(g, x, w, bias, y, relu, i); });
    return;
  }
  const int workers = worker_count(items, 2 * g.out_cg() * g.col_rows() * g.out_plane());
  std::unique_ptr<Scratch> fallback;
  Scratch* s = scratch_for(args.state, conv2d_scratch_size(g), workers, fallback);
  for_items(items, workers,
            [&](std::int64_t i, int t) { gemm_block(g, x, w, bias, y, relu, i, s->slot(t)); });
}

// ---- conv_transpose2d -------------------------------------------------------------------

/// The conv2d whose backward-data this is: image = our output, columns = our input x.
ConvGeometry transpose_geometry(const Attrs& a, const Shape& x, const Shape& w, const Shape& out) {
  return conv_geometry(a, out, x, w[2], w[3]);
}

std::int64_t transpose_scratch_size(const ConvGeometry& g) {
  return g.pointwise() ? 0 : g.col_size();
}

std::shared_ptr<void> prepare_conv_transpose2d(const KernelQuery& q) {
  const ConvGeometry g =
      transpose_geometry(q.node.attrs, q.inputs[0].shape, q.inputs[1].shape, q.output.shape);
  const auto slots =
      static_cast<int>(std::clamp<std::int64_t>(num_threads(), 1, g.batch * g.groups));
  return std::make_shared<Scratch>(transpose_scratch_size(g), slots);
}

void transpose_block(const ConvGeometry& g, const float* x, const float* w, const float* bias,
                     float* y, bool relu, std::int64_t item, float* col) {
  const std::int64_t n = item / g.groups, grp = item % g.groups;
  // x's group: out_cg channels of the column grid; w's group: [out_cg, in_cg * kh * kw].
  const ConstMatMap xg(x + (n * g.out_c + grp * g.out_cg()) * g.out_plane(), g.out_cg(),
                       g.out_plane());
  const ConstMatMap wg(w + grp * g.out_cg() * g.col_rows(), g.out_cg(), g.col_rows());
  float* img = y + (n * g.in_c + grp * g.in_cg()) * g.in_plane();
  const float* bg = bias != nullptr ? bias + grp * g.in_cg() : nullptr;
  if (g.pointwise()) {
    gemm_epilogue(wg.transpose(), xg, img, bg, relu);
    return;
  }
  MatMap cols(col, g.col_rows(), g.out_plane());
  cols.noalias() = wg.transpose() * xg;
  std::fill(img, img + g.in_cg() * g.in_plane(), 0.0f);
  col2im_add(col, img, g);
  add_bias_relu(img, g.in_cg(), g.in_plane(), bg, relu);
}

void run_conv_transpose2d(const KernelArgs& args) {
  const ConvGeometry g = transpose_geometry(args.node.attrs, args.inputs[0].shape(),
                                            args.inputs[1].shape(), args.output.shape());
  const float* x = args.inputs[0].data<float>();
  const float* w = args.inputs[1].data<float>();
  const float* bias = bias_of(args);
  float* y = args.output.data<float>();
  const bool relu = args.node.attrs.post_op == PostOp::relu;
  const std::int64_t items = g.batch * g.groups;
  const int workers = worker_count(items, 2 * g.out_cg() * g.col_rows() * g.out_plane());
  std::unique_ptr<Scratch> fallback;
  Scratch* s = scratch_for(args.state, transpose_scratch_size(g), workers, fallback);
  for_items(items, workers,
            [&](std::int64_t i, int t) { transpose_block(g, x, w, bias, y, relu, i, s->slot(t)); });
}

}  // namespace

void register_conv(KernelTable& t) {
  t.add<Op::conv2d>(
      {"eigen", "eigen_conv2d_im2col_gemm", supports_conv, run_conv2d, prepare_conv2d});
  t.add<Op::conv_transpose2d>({"eigen", "eigen_conv_transpose2d_gemm_col2im", supports_conv,
                               run_conv_transpose2d, prepare_conv_transpose2d});
}

}  // namespace kiln::internal::eigen
