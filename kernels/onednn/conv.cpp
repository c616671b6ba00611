// oneDNN kernels of conv2d (convolution_forward) and conv_transpose2d
// (deconvolution_forward), with the bias and a fused ReLU as oneDNN bias and post-op.
//
// oneDNN's ReLU post-op is max(x, 0) by vmaxps, which turns NaN into 0. Finite x, w and bias
// give NaN-free sums (barring overflow, where kernels may differ anyway), so the fused
// post-op is exact for them; a call whose inputs hold NaN or an infinity (one scan of x, w
// and bias decides) runs a second pipeline without the post-op, built on first need, and
// relu_keep_nan over the output. A conv2d with the fused max pooling of inference plans
// (PostOp::relu_max_pool, build_conv2d_pool) runs such inputs unfused: the convolution
// with its ReLU into a temporary, then the NaN-keeping Eigen pooling.
//
// The primitives pick their own (blocked) layouts; reorders from and to our row-major NCHW
// tensors are primitives created once in prepare. Measured at the W2 shapes (batch 64,
// one thread, AVX-512, oneDNN 2.6.3), blocked + reorders beats plain NCHW (which falls to
// im2col + gemm) about 2x: conv 5x5 32->64 pad 2 on 14x14 forward 4.9 vs 9.8 ms, backward
// data 4.9 vs 10.5 ms, backward weights 5.1 vs 9.7 ms; conv 5x5 1->32 on 28x28 forward
// 0.51 vs 1.37 ms, backward weights 0.50 vs 1.59 ms. NHWC with blocked weights runs the
// primitive as fast but pays more for the NCHW <-> NHWC reorders (conv1 forward 1.0 ms).
#include <mutex>

#include "internal/conv_geometry.hpp"
#include "kernels/onednn/onednn_common.hpp"

namespace kiln::internal::onednn {
namespace {

using tag = dnnl::memory::format_tag;

bool check_inputs(const KernelQuery& q, std::string* why) {
  if (!basic_checks(q, why)) return false;
  if (q.inputs.size() != 2 && q.inputs.size() != 3)
    return decline(why, "expects x, w and an optional bias");
  if (q.inputs[0].shape.rank() != 4 || q.inputs[1].shape.rank() != 4)
    return decline(why, "x and w must be 4-D (NCHW)");
  const PostOp post = q.node.attrs.post_op;
  if (post == PostOp::relu_max_pool && q.node.op != Op::conv2d)
    return decline(why, "only conv2d fuses a pooling");
  if (post != PostOp::none && post != PostOp::relu && post != PostOp::relu_max_pool)
    return decline(why, "unknown post_op");
  return true;
}

/// The primitive's attributes: oneDNN's ReLU post-op when fused, else none.
dnnl::primitive_attr post_op_attr(bool fused_relu) {
  dnnl::primitive_attr attr;
  if (fused_relu) {
    dnnl::post_ops po;
    po.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
    attr.set_post_ops(po);
  }
  return attr;
}

/// Prepared state: the pipeline with the node's post-op fused, and (built when first
/// needed) one without it for inputs holding NaN or infinities.
struct ConvState {
  std::shared_ptr<void> fused;
  std::once_flag plain_once;
  std::shared_ptr<void> plain;
};

/// B<true> builds with the node's ReLU as oneDNN post-op, B<false> without any post-op.
template <bool (*Fused)(const KernelQuery&, std::string*, Pipeline&),
          bool (*Plain)(const KernelQuery&, std::string*, Pipeline&)>
struct ConvKernel {
  static bool relu(const KernelQuery& q) { return q.node.attrs.post_op == PostOp::relu; }

  static bool supports(const KernelQuery& q, std::string* why) {
    return supports_pipeline(Fused, q, why) && (!relu(q) || supports_pipeline(Plain, q, why));
  }

  static std::shared_ptr<void> prepare(const KernelQuery& q) {
    auto s = std::make_shared<ConvState>();
    s->fused = prepare_pipeline(Fused, q);
    return s;
  }

  static void run(const KernelArgs& args) {
    auto* s = static_cast<ConvState*>(args.state);
    const PostOp post = args.node.attrs.post_op;
    bool finite = true;
    if (post != PostOp::none)
      for (const Tensor& t : args.inputs) finite = finite && !has_nan(t, /*infinities=*/true);
    if (finite) {
      run_pipeline(Fused,
                   {args.node, args.inputs, args.output, s ? s->fused.get() : nullptr, args.run});
      return;
    }
    if (post == PostOp::relu_max_pool) return run_conv_relu_max_pool_unfused(args, run);
    void* plain = nullptr;
    if (s != nullptr) {
      std::call_once(s->plain_once, [&] {
        const CallQuery call(args);
        s->plain = prepare_pipeline(Plain, call.query());
      });
      plain = s->plain.get();
    }
    run_pipeline(Plain, {args.node, args.inputs, args.output, plain, args.run});
    relu_keep_nan(args.output.data<float>(), args.output.numel());
  }
};

// The forward pipeline of a (de)convolution: our plain x, w (and bias) reordered into the
// layouts pd chose, the primitive, and its output reordered back into our plain y.
void add_forward(Pipeline& p, const dnnl::primitive_desc_base& pd, const dnnl::memory::desc& x_md,
                 const dnnl::memory::desc& w_md, const dnnl::memory::desc& y_md,
                 const dnnl::memory::desc* bias_md) {
  const auto x = p.tensor(0, x_md);
  const auto w = p.tensor(1, w_md);
  const auto y = p.tensor(-1, y_md);
  const auto src = p.like(x, pd.src_desc());
  const auto wei = p.like(w, pd.weights_desc());
  const auto dst = p.like(y, pd.dst_desc());
  p.copy(x, src);
  p.copy(w, wei);
  std::unordered_map<int, dnnl::memory> args{
      {DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DST, dst}};
  if (bias_md) args.emplace(DNNL_ARG_BIAS, p.tensor(2, *bias_md));
  p.add(pd, std::move(args));
  p.copy(dst, y);
}

// conv2d + ReLU + max pooling (PostOp::relu_max_pool): the convolution writes its blocked
// layout, the pooling reads and writes blocked, and only the pooled output is reordered
// into our NCHW (a quarter of the convolution's for 2x2 windows), where the unfused plan
// reordered the whole convolution output and pooled in NCHW.
bool build_conv2d_pool(const KernelQuery& q, std::string* why, Pipeline& p) {
  const Shape& xs = q.inputs[0].shape;
  const Shape& ws = q.inputs[1].shape;
  const Attrs& a = q.node.attrs;
  const Shape conv_out = conv2d_shape(a, xs, ws);
  Shape pooled;
  if (auto e = pooled_shape(fused_pool_attrs(a), conv_out, &pooled); !e.empty())
    return decline(why, e);
  if (pooled != q.output.shape) return decline(why, "output size does not match the pooling");
  ConvGeometry g;
  if (!conv_geometry(a, xs, conv_out, ws[2], ws[3], &g, why)) return false;
  if (ws[0] != conv_out[1] || ws[1] * a.groups != xs[1])
    return decline(why, "w must be [O, C/groups, kh, kw]");
  const bool has_bias = q.inputs.size() == 3;
  if (has_bias && q.inputs[2].shape != Shape{ws[0]}) return decline(why, "bias must be [O]");
  const auto bias_md = plain_desc({ws[0]});
  const dnnl::convolution_forward::primitive_desc pd(
      conv_forward_desc(g, tag::any, has_bias ? &bias_md : nullptr), post_op_attr(true), engine());
  const auto f32 = dnnl::memory::data_type::f32;
  const dnnl::memory::dims window{a.kernel[0], a.kernel[1]}, no_pad{0, 0};
  const dnnl::pooling_forward::primitive_desc pool_pd(
      {dnnl::prop_kind::forward_inference, dnnl::algorithm::pooling_max, pd.dst_desc(),
       dnnl::memory::desc(dims_of(pooled), f32, tag::any), window, window, no_pad, no_pad},
      engine());
  const auto x = p.tensor(0, plain_desc(g.src));
  const auto w = p.tensor(1, plain_weights(g));
  const auto y = p.tensor(-1, plain_desc(dims_of(pooled)));
  const auto src = p.like(x, pd.src_desc());
  const auto wei = p.like(w, pd.weights_desc());
  const auto conv_dst = p.scratch(pd.dst_desc());
  const auto pool_dst = p.like(y, pool_pd.dst_desc());
  p.copy(x, src);
  p.copy(w, wei);
  std::unordered_map<int, dnnl::memory> args{
      {DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DST, conv_dst}};
  if (has_bias) args.emplace(DNNL_ARG_BIAS, p.tensor(2, bias_md));
  p.add(pd, std::move(args));
  p.add(pool_pd, {{DNNL_ARG_SRC, conv_dst}, {DNNL_ARG_DST, pool_dst}});
  p.copy(pool_dst, y);
  return true;
}

template <bool FuseRelu>
bool build_conv2d(const KernelQuery& q, std::string* why, Pipeline& p) {
  if (!check_inputs(q, why)) return false;
  const Shape& ws = q.inputs[1].shape;
  const Attrs& a = q.node.attrs;
  const bool pool = a.post_op == PostOp::relu_max_pool;
  if (pool) {
    if (!FuseRelu) return decline(why, "the fused pooling runs with its ReLU");
    return build_conv2d_pool(q, why, p);
  }
  ConvGeometry g;
  if (!conv_geometry(a, q.inputs[0].shape, q.output.shape, ws[2], ws[3], &g, why)) return false;
  if (ws[0] != q.output.shape[1] || ws[1] * a.groups != q.inputs[0].shape[1])
    return decline(why, "w must be [O, C/groups, kh, kw]");
  const bool has_bias = q.inputs.size() == 3;
  if (has_bias && q.inputs[2].shape != Shape{ws[0]}) return decline(why, "bias must be [O]");
  const auto bias_md = plain_desc({ws[0]});
  const dnnl::convolution_forward::primitive_desc pd(
      conv_forward_desc(g, tag::any, has_bias ? &bias_md : nullptr),
      post_op_attr(FuseRelu && a.post_op == PostOp::relu), engine());
  add_forward(p, pd, plain_desc(g.src), plain_weights(g), plain_desc(g.dst),
              has_bias ? &bias_md : nullptr);
  return true;
}

// conv_transpose2d is conv2d's backward-data with the same w: the conv runs from our output
// (its src, Co channels) to our x (its dst, Ci channels) with weights [Ci, Co/g, kh, kw].
// As a deconvolution from x to the output, oneDNN wants weights (g, Co/g, Ci/g, kh, kw):
// our w with the two channel axes swapped, expressed as strides.
template <bool FuseRelu>
bool build_conv_transpose2d(const KernelQuery& q, std::string* why, Pipeline& p) {
  if (!check_inputs(q, why)) return false;
  const Shape& xs = q.inputs[0].shape;
  const Shape& ws = q.inputs[1].shape;
  const Shape& ys = q.output.shape;
  const Attrs& a = q.node.attrs;
  ConvGeometry g;  // of the adjoint conv: ys -> xs
  if (!conv_geometry(a, ys, xs, ws[2], ws[3], &g, why)) return false;
  if (ws[0] != xs[1] || ws[1] * a.groups != ys[1])
    return decline(why, "w must be [Ci, Co/g, kh, kw]");
  const bool has_bias = q.inputs.size() == 3;
  if (has_bias && q.inputs[2].shape != Shape{ys[1]}) return decline(why, "bias must be [Co]");
  const bool grouped = g.groups > 1;
  const std::vector<int> swap_io =
      grouped ? std::vector<int>{0, 2, 1, 3, 4} : std::vector<int>{1, 0, 2, 3};
  const auto w_user = plain_weights(g).permute_axes(swap_io);
  const auto f32 = dnnl::memory::data_type::f32;
  const dnnl::memory::desc src_any(g.dst, f32, tag::any), dst_any(g.src, f32, tag::any);
  const dnnl::memory::desc w_any(w_user.dims(), f32, tag::any);
  const auto bias_md = plain_desc({ys[1]});
  const auto prop = dnnl::prop_kind::forward_training;
  const auto alg = dnnl::algorithm::deconvolution_direct;
  const auto desc =
      has_bias ? dnnl::deconvolution_forward::desc(prop, alg, src_any, w_any, bias_md, dst_any,
                                                   g.strides, g.dilates, g.padding_l, g.padding_r)
               : dnnl::deconvolution_forward::desc(prop, alg, src_any, w_any, dst_any, g.strides,
                                                   g.dilates, g.padding_l, g.padding_r);
  const dnnl::deconvolution_forward::primitive_desc pd(
      desc, post_op_attr(FuseRelu && a.post_op == PostOp::relu), engine());
  add_forward(p, pd, plain_desc(g.dst), w_user, plain_desc(g.src), has_bias ? &bias_md : nullptr);
  return true;
}

using Conv2d = ConvKernel<build_conv2d<true>, build_conv2d<false>>;
using ConvTranspose2d = ConvKernel<build_conv_transpose2d<true>, build_conv_transpose2d<false>>;

}  // namespace

void register_conv(KernelTable& t) {
  t.add<Op::conv2d>({"onednn", "onednn_conv2d", Conv2d::supports, Conv2d::run, Conv2d::prepare});
  t.add<Op::conv_transpose2d>({"onednn", "onednn_conv_transpose2d", ConvTranspose2d::supports,
                               ConvTranspose2d::run, ConvTranspose2d::prepare});
}

}  // namespace kiln::internal::onednn
