// Eigen kernels of the training-only CNN ops (registered by kiln): conv2d_backward_weights,
// max_pool2d_backward, avg_pool2d_backward and batch_norm_backward (NCHW, f32).
//
// conv2d_backward_weights: per batch item and group, im2col of x into a per-plan scratch
// buffer and gw_g += gy_g · col^T; threads split the batch, each summing into its own
// accumulator, reduced at the end. Pool backward: direct loops per plane (max recomputes
// each window's first maximum from x). batch_norm_backward: per-channel sums, then one
// affine pass gx = a * gy + k * x + b per channel.
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/eigen/conv_geometry.hpp"
#include "kernels/eigen/eigen_kernels.hpp"
#include "kernels/eigen/max_pool_2x2.hpp"

namespace kiln::internal::eigen {
namespace {

using Mat = RowMajorMatrix;
using ConstMatMap = Eigen::Map<const Mat>;
using MatMap = Eigen::Map<Mat>;

bool supports_4d_pair(const KernelQuery& q, std::string* why) {
  if (!require_f32(q, why)) return false;
  if (q.inputs.size() != 2 || q.inputs[0].shape.rank() != 4 || q.inputs[1].shape.rank() != 4)
    return decline(why, "needs two 4-D inputs");
  if (q.inputs[0].shape.numel() == 0 || q.inputs[1].shape.numel() == 0)
    return decline(why, "empty tensors are left to the reference");
  return true;
}

// ---- conv2d_backward_weights ------------------------------------------------------------

ConvGeometry weights_geometry(const Attrs& a, const Shape& x, const Shape& gy) {
  return conv_geometry(a, x, gy, a.kernel[0], a.kernel[1]);
}

bool supports_weights(const KernelQuery& q, std::string* why) {
  if (!supports_4d_pair(q, why)) return false;
  const Attrs& a = q.node.attrs;
  if (auto e =
          conv_geometry_error(a, q.inputs[0].shape, q.inputs[1].shape, a.kernel[0], a.kernel[1]);
      !e.empty())
    return decline(why, e.c_str());
  return true;
}

std::int64_t weights_size(const ConvGeometry& g) { return g.out_c * g.col_rows(); }

/// Per slot: an im2col buffer, then (slots > 0) a private accumulator of the output.
std::int64_t weights_scratch_size(const ConvGeometry& g) {
  return (g.pointwise() ? 0 : g.col_size()) + weights_size(g);
}

std::shared_ptr<void> prepare_weights(const KernelQuery& q) {
  const ConvGeometry g = weights_geometry(q.node.attrs, q.inputs[0].shape, q.inputs[1].shape);
  const auto slots = static_cast<int>(std::clamp<std::int64_t>(num_threads(), 1, g.batch));
  return std::make_shared<Scratch>(weights_scratch_size(g), slots);
}

/// gw += sum over batch items [lo, hi) and all groups of gy_g · col(x_g)^T.
void accumulate_weights(const ConvGeometry& g, const float* x, const float* gy, float* gw,
                        std::int64_t lo, std::int64_t hi, float* col) {
  for (std::int64_t n = lo; n < hi; ++n) {
    for (std::int64_t grp = 0; grp < g.groups; ++grp) {
      const float* img = x + (n * g.in_c + grp * g.in_cg()) * g.in_plane();
      if (!g.pointwise()) im2col(img, col, g);
      const ConstMatMap cols(g.pointwise() ? img : col, g.col_rows(), g.out_plane());
      const ConstMatMap gyg(gy + (n * g.out_c + grp * g.out_cg()) * g.out_plane(), g.out_cg(),
                            g.out_plane());
      MatMap gwg(gw + grp * g.out_cg() * g.col_rows(), g.out_cg(), g.col_rows());
      gwg.noalias() += gyg * cols.transpose();
    }
  }
}

void run_weights(const KernelArgs& args) {
  const ConvGeometry g =
      weights_geometry(args.node.attrs, args.inputs[0].shape(), args.inputs[1].shape());
  const float* x = args.inputs[0].data<float>();
  const float* gy = args.inputs[1].data<float>();
  float* gw = args.output.data<float>();
  const std::int64_t size = weights_size(g);
  const int workers = worker_count(g.batch, 2 * g.out_c * g.col_rows() * g.out_plane());
  std::unique_ptr<Scratch> fallback;
  Scratch* s = scratch_for(args.state, weights_scratch_size(g), workers, fallback);
  const std::int64_t col_size = g.pointwise() ? 0 : g.col_size();
  std::fill(gw, gw + size, 0.0f);
  if (workers <= 1) {
    accumulate_weights(g, x, gy, gw, 0, g.batch, s->slot(0));
    return;
  }
#pragma omp parallel num_threads(workers)
  {
    const int t = omp_get_thread_num();
    const std::int64_t team = omp_get_num_threads();
    float* acc = t == 0 ? gw : s->slot(t) + col_size;
    if (t != 0) std::fill(acc, acc + size, 0.0f);
    accumulate_weights(g, x, gy, acc, g.batch * t / team, g.batch * (t + 1) / team, s->slot(t));
#pragma omp barrier
    // Reduce the private accumulators into gw, each thread over its own slice.
    const std::int64_t lo = size * t / team, hi = size * (t + 1) / team;
    for (std::int64_t u = 1; u < team; ++u)
      ArrayMap(gw + lo, hi - lo) +=
          ConstArrayMap(s->slot(static_cast<int>(u)) + col_size + lo, hi - lo);
  }
}

// ---- pooling backward -------------------------------------------------------------------

ConvGeometry pool_geometry(const Attrs& a, const Shape& x, const Shape& gy) {
  return conv_geometry(a, x, gy, a.kernel[0], a.kernel[1]);
}

bool supports_pool_backward(const KernelQuery& q, std::string* why) {
  if (!supports_4d_pair(q, why)) return false;
  Shape pooled;
  if (auto e = pooled_shape(q.node.attrs, q.inputs[0].shape, &pooled); !e.empty())
    return decline(why, e.c_str());
  if (pooled != q.inputs[1].shape) return decline(why, "gy must have the pooled shape");
  const PostOp post = q.node.attrs.post_op;
  if (post != PostOp::none && (post != PostOp::relu || q.node.op != Op::max_pool2d_backward))
    return decline(why, "max_pool2d_backward's only epilogue is the ReLU's gradient");
  return true;
}

/// Each gy element goes to the first maximum (row-major) of its window; padding never wins.
void max_backward_general(const ConvGeometry& g, const float* x, const float* gy, float* gx) {
  std::fill(gx, gx + g.in_plane(), 0.0f);
  for (std::int64_t oh = 0; oh < g.out_h; ++oh) {
    const std::int64_t h0 = std::max<std::int64_t>(oh * g.sh - g.ph, 0);
    const std::int64_t h1 = std::min(oh * g.sh - g.ph + g.kh, g.in_h);
    for (std::int64_t ow = 0; ow < g.out_w; ++ow) {
      const std::int64_t w0 = std::max<std::int64_t>(ow * g.sw - g.pw, 0);
      const std::int64_t w1 = std::min(ow * g.sw - g.pw + g.kw, g.in_w);
      std::int64_t best = -1;
      float best_v = -std::numeric_limits<float>::infinity();
      for (std::int64_t ih = h0; ih < h1; ++ih)
        for (std::int64_t iw = w0; iw < w1; ++iw) {
          const float v = x[ih * g.in_w + iw];
          if (best < 0 || beats(v, best_v)) {
            best = ih * g.in_w + iw;
            best_v = v;
          }
        }
      if (best >= 0) gx[best] += gy[oh * g.out_w + ow];
    }
  }
}

/// The common 2x2 stride-2 unpadded window over a plane without NaN takes the vectorised
/// kernel of max_pool_2x2.hpp. With `relu` (the fused gradient of the ReLU whose output x
/// is), gx is multiplied by x > 0 as relu_backward(x, gx) would.
void max_backward_plane(const ConvGeometry& g, const float* x, const float* gy, float* gx,
                        bool relu) {
  if (g.kh == 2 && g.kw == 2 && g.sh == 2 && g.sw == 2 && g.ph == 0 && g.pw == 0 &&
      !any_nan(x, g.in_plane())) {
    if (relu)
      return max_pool_2x2::backward_plane<true>(x, gy, gx, g.in_h, g.in_w, g.out_h, g.out_w);
    return max_pool_2x2::backward_plane<false>(x, gy, gx, g.in_h, g.in_w, g.out_h, g.out_w);
  }
  max_backward_general(g, x, gy, gx);
  if (relu)
    for (std::int64_t i = 0; i < g.in_plane(); ++i) gx[i] = gx[i] * (x[i] > 0.0f ? 1.0f : 0.0f);
}

/// gy / divisor spread over each window's cells inside the image; `row` holds out_w floats.
void avg_backward_plane(const ConvGeometry& g, const float* gy, float* gx, bool include_pad,
                        float* row) {
  std::fill(gx, gx + g.in_plane(), 0.0f);
  const float full = 1.0f / static_cast<float>(g.kh * g.kw);
  for (std::int64_t oh = 0; oh < g.out_h; ++oh) {
    const std::int64_t top = oh * g.sh - g.ph;
    const std::int64_t rows = std::min(top + g.kh, g.in_h) - std::max<std::int64_t>(top, 0);
    for (std::int64_t ow = 0; ow < g.out_w; ++ow) {
      const std::int64_t left = ow * g.sw - g.pw;
      const std::int64_t cols = std::min(left + g.kw, g.in_w) - std::max<std::int64_t>(left, 0);
      row[ow] =
          gy[oh * g.out_w + ow] * (include_pad ? full : 1.0f / static_cast<float>(rows * cols));
    }
    for (std::int64_t ki = 0; ki < g.kh; ++ki) {
      const std::int64_t ih = top + ki;
      if (ih < 0 || ih >= g.in_h) continue;
      float* d = gx + ih * g.in_w;
      for (std::int64_t kj = 0; kj < g.kw; ++kj) {
        const std::int64_t off = kj - g.pw;
        const ValidRange c = valid_range(g.in_w, g.out_w, g.sw, off);
        if (g.sw == 1) {
          for (std::int64_t ow = c.lo; ow < c.hi; ++ow) d[ow + off] += row[ow];
        } else {
          for (std::int64_t ow = c.lo; ow < c.hi; ++ow) d[ow * g.sw + off] += row[ow];
        }
      }
    }
  }
}

template <bool Max>
void run_pool_backward(const KernelArgs& args) {
  const ConvGeometry g =
      pool_geometry(args.node.attrs, args.inputs[0].shape(), args.inputs[1].shape());
  const float* x = args.inputs[0].data<float>();
  const float* gy = args.inputs[1].data<float>();
  float* gx = args.output.data<float>();
  const bool include_pad = args.node.attrs.include_pad;
  const bool relu = args.node.attrs.post_op == PostOp::relu;
  const std::int64_t planes = g.batch * g.in_c;
  const std::int64_t grain =
      std::max<std::int64_t>(1, parallel_grain / std::max<std::int64_t>(1, g.in_plane()));
  parallel_ranges(planes, grain, [&](std::int64_t lo, std::int64_t hi) {
    std::vector<float> row(Max ? 0 : static_cast<std::size_t>(g.out_w));
    for (std::int64_t p = lo; p < hi; ++p) {
      if constexpr (Max)
        max_backward_plane(g, x + p * g.in_plane(), gy + p * g.out_plane(), gx + p * g.in_plane(),
                           relu);
      else
        avg_backward_plane(g, gy + p * g.out_plane(), gx + p * g.in_plane(), include_pad,
                           row.data());
    }
  });
}

// ---- batch_norm_backward ----------------------------------------------------------------

bool supports_bn_backward(const KernelQuery& q, std::string* why) {
  if (!require_f32(q, why)) return false;
  if (q.inputs.size() != 3) return decline(why, "needs x, gamma and gy");
  const std::size_t r = q.inputs[0].shape.rank();
  if (r != 2 && r != 4) return decline(why, "x must be [N, C] or [N, C, H, W]");
  if (q.inputs[0].shape.numel() == 0)
    return decline(why, "empty tensors are left to the reference");
  return true;
}

/// [N, C]: channels run along the rows, so the sums are accumulated row by row.
void bn_backward_rows(const float* x, const float* gamma, const float* gy, float* gx,
                      std::int64_t n, std::int64_t channels, double eps) {
  const auto cs = static_cast<std::size_t>(channels);
  std::vector<double> mean(cs, 0.0), var(cs, 0.0), sg(cs, 0.0), sgx(cs, 0.0);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::size_t c = 0; c < cs; ++c) mean[c] += x[i * channels + static_cast<std::int64_t>(c)];
  for (auto& m : mean) m /= static_cast<double>(n);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::size_t c = 0; c < cs; ++c) {
      const auto at = i * channels + static_cast<std::int64_t>(c);
      const double d = x[at] - mean[c];
      var[c] += d * d;
      sg[c] += gy[at];
      sgx[c] += gy[at] * d;
    }
  std::vector<float> a(cs), k(cs), b(cs);
  for (std::size_t c = 0; c < cs; ++c) {
    const double inv_std = 1.0 / std::sqrt(var[c] / static_cast<double>(n) + eps);
    const double ac = gamma[c] * inv_std;
    const double kc = ac * inv_std * inv_std * sgx[c] / static_cast<double>(n);
    a[c] = static_cast<float>(ac);
    k[c] = static_cast<float>(kc);
    b[c] = static_cast<float>(kc * mean[c] - ac * sg[c] / static_cast<double>(n));
  }
  const ConstArrayMap am(a.data(), channels), km(k.data(), channels), bm(b.data(), channels);
  for (std::int64_t i = 0; i < n; ++i)
    ArrayMap(gx + i * channels, channels) = am * ConstArrayMap(gy + i * channels, channels) -
                                            km * ConstArrayMap(x + i * channels, channels) + bm;
}

/// Per channel c, the block of batch item i is x + (i * channels + c) * hw, hw floats.
void run_bn_backward(const KernelArgs& args) {
  const Shape& xs = args.inputs[0].shape();
  const std::int64_t n = xs[0], channels = xs[1], hw = xs.rank() == 4 ? xs[2] * xs[3] : 1;
  const float* x = args.inputs[0].data<float>();
  const float* gamma = args.inputs[1].data<float>();
  const float* gy = args.inputs[2].data<float>();
  float* gx = args.output.data<float>();
  const double count = static_cast<double>(n * hw), eps = args.node.attrs.eps;
  if (hw == 1) {
    bn_backward_rows(x, gamma, gy, gx, n, channels, eps);
    return;
  }
  const std::int64_t grain =
      std::max<std::int64_t>(1, parallel_grain / std::max<std::int64_t>(1, n * hw));
  // Per channel: mean, then sums of gy and gy * (x - mean), then the affine pass.
  parallel_ranges(channels, grain, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t c = lo; c < hi; ++c) {
      auto block = [&](const float* base, std::int64_t i) {
        return ConstArrayMap(base + (i * channels + c) * hw, hw);
      };
      double s = 0.0;
      for (std::int64_t i = 0; i < n; ++i) s += block(x, i).sum();
      const double mean = s / count;
      const auto mf = static_cast<float>(mean);
      double var = 0.0, sg = 0.0, sgx = 0.0;
      for (std::int64_t i = 0; i < n; ++i) {
        var += (block(x, i) - mf).square().sum();
        sg += block(gy, i).sum();
        sgx += (block(gy, i) * (block(x, i) - mf)).sum();
      }
      const double shift = mean - static_cast<double>(mf);
      var = clamp_below_keep_nan(var / count - shift * shift);
      sgx -= sg * shift;  // sum gy * (x - mean) from sum gy * (x - mf)
      const double inv_std = 1.0 / std::sqrt(var + eps);
      const double a = gamma[c] * inv_std;
      const double k = a * inv_std * inv_std * sgx / count;
      // gx = a * (gy - sg / count) - k * (x - mean)
      const auto af = static_cast<float>(a), kf = static_cast<float>(k);
      const auto bf = static_cast<float>(k * mean - a * sg / count);
      for (std::int64_t i = 0; i < n; ++i)
        ArrayMap(gx + (i * channels + c) * hw, hw) = af * block(gy, i) - kf * block(x, i) + bf;
    }
  });
}

}  // namespace

void register_training_cnn(KernelTable& t) {
  t.add<Op::conv2d_backward_weights>({"eigen", "eigen_conv2d_backward_weights_im2col_gemm",
                                      supports_weights, run_weights, prepare_weights});
  t.add<Op::max_pool2d_backward>({"eigen", "eigen_max_pool2d_backward_direct",
                                  supports_pool_backward, run_pool_backward<true>});
  t.add<Op::avg_pool2d_backward>({"eigen", "eigen_avg_pool2d_backward_direct",
                                  supports_pool_backward, run_pool_backward<false>});
  t.add<Op::batch_norm_backward>(
      {"eigen", "eigen_batch_norm_backward", supports_bn_backward, run_bn_backward});
}

}  // namespace kiln::internal::eigen
