// oneDNN kernel of batch_norm (batch_normalization_forward) on x [N, C] or [N, C, H, W].
//
// Both primitives are prepared: training (batch statistics into scratch buffers, then the
// running averages are updated in place through inputs 3 and 4, with the unbiased
// variance v*n/(n-1) as PyTorch) and inference (the running values as global statistics).
// Which one runs is decided per run by RunContext::training.
#include "kernels/onednn/onednn_common.hpp"
#include "kiln/core/error.hpp"

namespace kiln::internal::onednn {

bool batch_norm_layout(const KernelQuery& q, dnnl::memory::desc* x, std::int64_t* count,
                       std::string* why) {
  const Shape& s = q.inputs[0].shape;
  if (s.rank() != 2 && s.rank() != 4) return decline(why, "x must be [N, C] or [N, C, H, W]");
  if (q.output.shape != s) return decline(why, "output must have x's shape");
  if (!(q.node.attrs.eps > 0.0f)) return decline(why, "eps must be positive");
  *x = plain_desc(dims_of(s));
  *count = s.numel() / s[1];
  return true;
}

namespace {

bool build_batch_norm(const KernelQuery& q, std::string* why, Pipeline& p) {
  if (!basic_checks(q, why)) return false;
  if (q.inputs.size() != 5)
    return decline(why, "expects x, gamma, beta, running_mean and running_var");
  dnnl::memory::desc x_md;
  std::int64_t count = 0;
  if (!batch_norm_layout(q, &x_md, &count, why)) return false;
  const std::int64_t c = q.inputs[0].shape[1];
  for (std::size_t i = 1; i < 5; ++i)
    if (q.inputs[i].shape != Shape{c}) return decline(why, "per-channel inputs must be [C]");
  const float momentum = q.node.attrs.momentum;
  if (!(momentum >= 0.0f && momentum <= 1.0f)) return decline(why, "momentum must be in [0, 1]");
  const float eps = q.node.attrs.eps;
  using flags = dnnl::normalization_flags;
  const flags affine = flags::use_scale | flags::use_shift;
  const dnnl::batch_normalization_forward::primitive_desc train(
      {dnnl::prop_kind::forward_training, x_md, eps, affine}, engine());
  const dnnl::batch_normalization_forward::primitive_desc infer(
      {dnnl::prop_kind::forward_inference, x_md, eps, affine | flags::use_global_stats}, engine());
  const auto stat_md = plain_desc({c});
  const auto x = p.tensor(0, x_md);
  const auto y = p.tensor(-1, x_md);
  const auto gamma = p.tensor(1, stat_md), beta = p.tensor(2, stat_md);
  p.kept = {p.scratch(train.mean_desc()), p.scratch(train.variance_desc())};
  p.when(When::training);
  p.add(train, {{DNNL_ARG_SRC, x},
                {DNNL_ARG_DST, y},
                {DNNL_ARG_SCALE, gamma},
                {DNNL_ARG_SHIFT, beta},
                {DNNL_ARG_MEAN, p.kept[0]},
                {DNNL_ARG_VARIANCE, p.kept[1]}});
  p.when(When::inference);
  p.add(infer, {{DNNL_ARG_SRC, x},
                {DNNL_ARG_DST, y},
                {DNNL_ARG_SCALE, gamma},
                {DNNL_ARG_SHIFT, beta},
                {DNNL_ARG_MEAN, p.tensor(3, stat_md)},
                {DNNL_ARG_VARIANCE, p.tensor(4, stat_md)}});
  return true;
}

bool supports_batch_norm(const KernelQuery& q, std::string* why) {
  return supports_pipeline(build_batch_norm, q, why);
}
std::shared_ptr<void> prepare_batch_norm(const KernelQuery& q) {
  return prepare_pipeline(build_batch_norm, q);
}

void run_batch_norm(const KernelArgs& args) {
  const Shape& s = args.inputs[0].shape();
  const std::int64_t c = s[1], n = s.numel() / c;
  if (args.run.training && n < 2)
    throw ValueError("batch_norm node '" + args.node.name +
                     "': training needs more than one value per channel, got input " + s.str());
  std::shared_ptr<void> owned;
  Pipeline& p = pipeline_of(build_batch_norm, args, &owned);
  p.execute(args);
  if (!args.run.training) return;
  // The running statistics are the model's buffers: updated in place through the inputs.
  const auto* mean = static_cast<const float*>(p.kept[0].get_data_handle());
  const auto* var = static_cast<const float*>(p.kept[1].get_data_handle());
  auto* running_mean = const_cast<float*>(args.inputs[3].data<float>());
  auto* running_var = const_cast<float*>(args.inputs[4].data<float>());
  const double m = args.node.attrs.momentum;
  const double unbias = static_cast<double>(n) / static_cast<double>(n - 1);
  for (std::int64_t i = 0; i < c; ++i) {
    running_mean[i] = static_cast<float>((1.0 - m) * running_mean[i] + m * mean[i]);
    running_var[i] = static_cast<float>((1.0 - m) * running_var[i] + m * var[i] * unbias);
  }
}

}  // namespace

void register_batch_norm(KernelTable& t) {
  t.add<Op::batch_norm>(
      {"onednn", "onednn_batch_norm", supports_batch_norm, run_batch_norm, prepare_batch_norm});
}

}  // namespace kiln::internal::onednn
