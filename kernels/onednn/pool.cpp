// oneDNN kernels of max_pool2d and avg_pool2d (pooling forward, inference) on our NCHW
// tensors directly, and (check_pool) the checks of the backward kernels in
// training_cnn.cpp. The common 2x2 stride-2 max pooling is left to the Eigen kernels
// (kernels/eigen/max_pool_2x2.hpp), which run it from and into NCHW several times faster
// than these primitives at the W2 shapes (one thread, an executable of these nodes alone): forward
// 64x32x28x28 0.2 ms against 0.5-0.7 ms, backward 0.4 ms against 1.7 ms (the primitive
// reruns the forward for its workspace); 64x64x14x14 backward 0.36 ms against 0.5-0.9 ms.
// Below, the figures from when every pooling ran here. At the W2 shapes (batch 64, one thread)
// blocked layouts run the primitive faster but lose it again in the reorders: 2x2 max pool of
// 64x32x28x28, NCHW 0.24 ms (inference) / 0.36 ms (training, with workspace) vs nChw16c 0.08 ms +
// reorders = 0.33 ms, NHWC + reorders 0.60 ms; of 64x64x14x14, NCHW 0.13 / 0.16 ms vs nChw16c +
// reorders 0.14 ms. Max pooling over an input holding NaN runs the Eigen kernel instead
// (one scan of the input decides).
#include "internal/conv_geometry.hpp"
#include "kernels/onednn/onednn_common.hpp"

namespace kiln::internal::onednn {

dnnl::algorithm pool_algorithm(const KernelQuery& q) {
  if (q.node.op == Op::max_pool2d || q.node.op == Op::max_pool2d_backward)
    return dnnl::algorithm::pooling_max;
  return q.node.attrs.include_pad ? dnnl::algorithm::pooling_avg_include_padding
                                  : dnnl::algorithm::pooling_avg_exclude_padding;
}

dnnl::pooling_forward::desc pool_forward_desc(const KernelQuery& q, dnnl::prop_kind prop,
                                              const Shape& x, const Shape& y) {
  const Attrs& a = q.node.attrs;
  const auto alg = pool_algorithm(q);
  const dnnl::memory::dims pad{a.padding[0], a.padding[1]};
  return {prop,
          alg,
          plain_desc(dims_of(x)),
          plain_desc(dims_of(y)),
          {a.stride[0], a.stride[1]},
          {a.kernel[0], a.kernel[1]},
          pad,
          pad};
}

bool check_pool(const KernelQuery& q, const Shape& x, const Shape& y, std::string* why) {
  if (!basic_checks(q, why)) return false;
  const Attrs& a = q.node.attrs;
  if (a.post_op != PostOp::none) return decline(why, "the fused ReLU gradient runs in Eigen");
  const bool max = q.node.op == Op::max_pool2d || q.node.op == Op::max_pool2d_backward;
  if (max && a.kernel[0] == 2 && a.kernel[1] == 2 && a.stride[0] == 2 && a.stride[1] == 2 &&
      a.padding[0] == 0 && a.padding[1] == 0)
    return decline(why, "2x2 stride-2 max pooling: the eigen kernel is faster");
  if (x.rank() != 4 || y.rank() != 4) return decline(why, "x must be 4-D (NCHW)");
  // Sizes and attributes by the one geometry of the shape rules and all kernels.
  Shape pooled;
  if (auto e = pooled_shape(q.node.attrs, x, &pooled); !e.empty()) return decline(why, e);
  if (pooled != y) return decline(why, "output size does not match the pooling geometry");
  return true;
}

namespace {

bool build_pool(const KernelQuery& q, std::string* why, Pipeline& p) {
  if (q.inputs.size() != 1) return decline(why, "pooling takes one input");
  const Shape& x = q.inputs[0].shape;
  const Shape& y = q.output.shape;
  if (!check_pool(q, x, y, why)) return false;
  const dnnl::pooling_forward::primitive_desc pd(
      pool_forward_desc(q, dnnl::prop_kind::forward_inference, x, y), engine());
  p.add(pd,
        {{DNNL_ARG_SRC, p.tensor(0, pd.src_desc())}, {DNNL_ARG_DST, p.tensor(-1, pd.dst_desc())}});
  return true;
}

bool supports_pool(const KernelQuery& q, std::string* why) {
  return supports_pipeline(build_pool, q, why);
}
std::shared_ptr<void> prepare_pool(const KernelQuery& q) { return prepare_pipeline(build_pool, q); }
void run_pool(const KernelArgs& args) {
  // oneDNN's max pooling skips NaN (a window's NaN loses every comparison): a NaN input
  // takes the Eigen kernel, whose windows with a NaN give NaN as the reference does.
  if (args.node.op == Op::max_pool2d && has_nan(args.inputs[0])) return run_fallback(args);
  run_pipeline(build_pool, args);
}

}  // namespace

void register_pool(KernelTable& t) {
  t.add<Op::max_pool2d>({"onednn", "onednn_max_pool2d", supports_pool, run_pool, prepare_pool});
  t.add<Op::avg_pool2d>({"onednn", "onednn_avg_pool2d", supports_pool, run_pool, prepare_pool});
}

}  // namespace kiln::internal::onednn
