// oneDNN kernels only training needs: conv2d_backward_weights (convolution_backward_weights),
// max_pool2d_backward and avg_pool2d_backward (pooling_backward), batch_norm_backward
// (batch_normalization_backward, backward_data). Registered by kiln's autodiff.
//
// Layouts, measured at the W2 shapes (batch 64, one thread, AVX-512, oneDNN 2.6.3):
// backward weights runs blocked with the reorders planned here (conv 5x5 32->64 on 14x14:
// 5.1 ms vs 9.7 ms for plain NCHW; 1->32 on 28x28: 0.50 vs 1.59 ms). Max pool backward
// recomputes the forward (for its workspace) into scratch; on NCHW that is 0.68 ms for
// 64x32x28x28 vs 0.93 ms for nChw16c with its reorders, 0.34 vs 0.27 ms for 64x64x14x14,
// so it stays on NCHW.
#include "kernels/onednn/onednn_common.hpp"
#include "kernels/onednn/onednn_kernels.hpp"
#include "kiln/core/error.hpp"

namespace kiln::internal {
namespace onednn {
namespace {

using tag = dnnl::memory::format_tag;

// conv2d_backward_weights: x [N, C, H, W], gy [N, O, Ho, Wo] -> [O, C/g, kh, kw].
bool build_conv_backward_weights(const KernelQuery& q, std::string* why, Pipeline& p) {
  if (!basic_checks(q, why)) return false;
  if (q.inputs.size() != 2) return decline(why, "expects x and gy");
  const Attrs& a = q.node.attrs;
  const Shape& xs = q.inputs[0].shape;
  const Shape& gys = q.inputs[1].shape;
  ConvGeometry g;
  if (!conv_geometry(a, xs, gys, a.kernel[0], a.kernel[1], &g, why)) return false;
  const Shape want{gys[1], xs[1] / a.groups, a.kernel[0], a.kernel[1]};
  if (q.output.shape != want) return decline(why, "output must be [O, C/groups, kh, kw]");
  const dnnl::convolution_forward::primitive_desc hint(conv_forward_desc(g, tag::any, nullptr),
                                                       engine());
  const auto f32 = dnnl::memory::data_type::f32;
  const dnnl::memory::desc src(g.src, f32, tag::any), w(g.weights, f32, tag::any),
      dst(g.dst, f32, tag::any);
  const dnnl::convolution_backward_weights::primitive_desc pd(
      {dnnl::algorithm::convolution_direct, src, w, dst, g.strides, g.dilates, g.padding_l,
       g.padding_r},
      engine(), hint);
  const auto x = p.tensor(0, plain_desc(g.src));
  const auto gy = p.tensor(1, plain_desc(g.dst));
  const auto gw = p.tensor(-1, plain_weights(g));
  const auto src_m = p.like(x, pd.src_desc());
  const auto dst_m = p.like(gy, pd.diff_dst_desc());
  const auto gw_m = p.like(gw, pd.diff_weights_desc());
  p.copy(x, src_m);
  p.copy(gy, dst_m);
  p.add(pd, {{DNNL_ARG_SRC, src_m}, {DNNL_ARG_DIFF_DST, dst_m}, {DNNL_ARG_DIFF_WEIGHTS, gw_m}});
  p.copy(gw_m, gw);
  return true;
}

// max_pool2d_backward / avg_pool2d_backward: x, gy -> gx (x's shape). Max pooling reruns
// the forward into scratch for the workspace (where each window's maximum is).
bool build_pool_backward(const KernelQuery& q, std::string* why, Pipeline& p) {
  if (q.inputs.size() != 2) return decline(why, "expects x and gy");
  const Shape& xs = q.inputs[0].shape;
  const Shape& gys = q.inputs[1].shape;
  if (!check_pool(q, xs, gys, why)) return false;
  if (q.output.shape != xs) return decline(why, "output must have x's shape");
  const dnnl::pooling_forward::primitive_desc fwd(
      pool_forward_desc(q, dnnl::prop_kind::forward_training, xs, gys), engine());
  const Attrs& a = q.node.attrs;
  const dnnl::memory::dims stride{a.stride[0], a.stride[1]}, window{a.kernel[0], a.kernel[1]},
      pad{a.padding[0], a.padding[1]};
  const dnnl::pooling_backward::primitive_desc pd(
      {pool_algorithm(q), fwd.src_desc(), fwd.dst_desc(), stride, window, pad, pad}, engine(), fwd);
  const auto gy = p.tensor(1, fwd.dst_desc());
  const auto gx = p.tensor(-1, fwd.src_desc());
  std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_DIFF_DST, gy}, {DNNL_ARG_DIFF_SRC, gx}};
  if (q.node.op == Op::max_pool2d_backward) {
    const auto ws = p.scratch(fwd.workspace_desc());
    p.add(fwd, {{DNNL_ARG_SRC, p.tensor(0, fwd.src_desc())},
                {DNNL_ARG_DST, p.scratch(fwd.dst_desc())},
                {DNNL_ARG_WORKSPACE, ws}});
    args.emplace(DNNL_ARG_WORKSPACE, ws);
  }
  p.add(pd, std::move(args));
  return true;
}

// batch_norm_backward: x, gamma, gy -> gx with the batch statistics of x, which a forward
// training pass computes into scratch first (its output goes to scratch as well). oneDNN
// 2.6 has no backward_data implementation with a scale, so the full backward runs and
// d(gamma) goes to scratch (autodiff builds the parameter gradients from other ops).
bool build_batch_norm_backward(const KernelQuery& q, std::string* why, Pipeline& p) {
  if (!basic_checks(q, why)) return false;
  if (q.inputs.size() != 3) return decline(why, "expects x, gamma and gy");
  dnnl::memory::desc x_md;
  std::int64_t count = 0;
  if (!batch_norm_layout(q, &x_md, &count, why)) return false;
  const std::int64_t c = q.inputs[0].shape[1];
  if (q.inputs[1].shape != Shape{c}) return decline(why, "gamma must be [C]");
  if (q.inputs[2].shape != q.inputs[0].shape) return decline(why, "gy must have x's shape");
  const float eps = q.node.attrs.eps;
  using flags = dnnl::normalization_flags;
  const dnnl::batch_normalization_forward::primitive_desc fwd(
      {dnnl::prop_kind::forward_training, x_md, eps, flags::use_scale}, engine());
  const dnnl::batch_normalization_backward::primitive_desc bwd(
      {dnnl::prop_kind::backward, x_md, x_md, eps, flags::use_scale}, engine(), fwd);
  const auto x = p.tensor(0, x_md);
  const auto gamma = p.tensor(1, plain_desc({c}));
  const auto mean = p.scratch(fwd.mean_desc()), var = p.scratch(fwd.variance_desc());
  p.add(fwd, {{DNNL_ARG_SRC, x},
              {DNNL_ARG_DST, p.scratch(x_md)},
              {DNNL_ARG_SCALE, gamma},
              {DNNL_ARG_MEAN, mean},
              {DNNL_ARG_VARIANCE, var}});
  p.add(bwd, {{DNNL_ARG_SRC, x},
              {DNNL_ARG_DIFF_DST, p.tensor(2, x_md)},
              {DNNL_ARG_SCALE, gamma},
              {DNNL_ARG_MEAN, mean},
              {DNNL_ARG_VARIANCE, var},
              {DNNL_ARG_DIFF_SRC, p.tensor(-1, x_md)},
              {DNNL_ARG_DIFF_SCALE, p.scratch(bwd.diff_weights_desc())}});
  return true;
}

template <PipelineBuilder B>
bool supports(const KernelQuery& q, std::string* why) {
  return supports_pipeline(B, q, why);
}
template <PipelineBuilder B>
std::shared_ptr<void> prepare(const KernelQuery& q) {
  return prepare_pipeline(B, q);
}
template <PipelineBuilder B>
void run(const KernelArgs& args) {
  run_pipeline(B, args);
}

void run_batch_norm_backward(const KernelArgs& args) {
  const Shape& s = args.inputs[0].shape();
  if (s.numel() / s[1] < 2)
    throw ValueError("batch_norm_backward node '" + args.node.name +
                     "': needs more than one value per channel, got x " + s.str());
  run_pipeline(build_batch_norm_backward, args);
}

// oneDNN's max-pooling workspace never points at a NaN: an x holding NaN takes the Eigen
// kernel, which routes the gradient to the first NaN of a window as the reference does.
void run_pool_backward(const KernelArgs& args) {
  if (args.node.op == Op::max_pool2d_backward && has_nan(args.inputs[0])) return run_fallback(args);
  run<build_pool_backward>(args);
}

template <PipelineBuilder B>
Kernel kernel(const char* name, void (*run_fn)(const KernelArgs&) = run<B>) {
  return {"onednn", name, supports<B>, run_fn, prepare<B>};
}

}  // namespace
}  // namespace onednn

void register_onednn_training_kernels(KernelTable& t) {
  using namespace onednn;
  t.add<Op::conv2d_backward_weights>(
      kernel<build_conv_backward_weights>("onednn_conv2d_backward_weights"));
  t.add<Op::max_pool2d_backward>(
      kernel<build_pool_backward>("onednn_max_pool2d_backward", run_pool_backward));
  t.add<Op::avg_pool2d_backward>(kernel<build_pool_backward>("onednn_avg_pool2d_backward"));
  t.add<Op::batch_norm_backward>(
      kernel<build_batch_norm_backward>("onednn_batch_norm_backward", run_batch_norm_backward));
  register_training_recurrent(t);
}

}  // namespace kiln::internal
