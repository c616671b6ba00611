// Reference batch_norm: x [N, C] or [N, C, H, W], gamma, beta, running_mean, running_var [C].
//
// Training (RunContext::training): per-channel mean m and biased variance v over N (and H,
// W), y = gamma*(x-m)/sqrt(v+eps) + beta, and in place
//   running_mean = (1-momentum)*running_mean + momentum*m,
//   running_var  = (1-momentum)*running_var  + momentum*v*n/(n-1)   (n = N*H*W, as PyTorch).
// Training with n = 1 raises kiln::ValueError (the unbiased variance is undefined).
// Otherwise: y = gamma*(x-running_mean)/sqrt(running_var+eps) + beta, nothing updated.
// All arithmetic is in double; eps and momentum are the attributes' float values, widened.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/ref/ref.hpp"
#include "kernels/ref/ref_util.hpp"

namespace kiln::internal::ref {
namespace {

std::string check_batch_norm(const Node& node, Descs in, const TensorDesc& out) {
  if (auto e = need_arity(in, 5, 5); !e.empty()) return e;
  if (auto e = need_float_alike(in, out); !e.empty()) return e;
  const Shape& x = in[0].shape;
  if (x.rank() != 2 && x.rank() != 4) return "x must be [N, C] or [N, C, H, W], got " + x.str();
  static const char* const names[] = {"gamma", "beta", "running_mean", "running_var"};
  for (std::size_t i = 1; i < 5; ++i)
    if (in[i].shape != Shape{x[1]})
      return std::string(names[i - 1]) + " must be [" + std::to_string(x[1]) + "], got " +
             in[i].shape.str();
  if (!(node.attrs.eps > 0.0f)) return "eps " + std::to_string(node.attrs.eps) + " is not positive";
  if (!(node.attrs.momentum >= 0.0f && node.attrs.momentum <= 1.0f))
    return "momentum " + std::to_string(node.attrs.momentum) + " is not in [0, 1]";
  return need_out_shape(out, x);
}

template <class T>
void batch_norm_typed(const KernelArgs& args) {
  const ChannelSplit d = channel_split(args.inputs[0].shape());
  const T* x = args.inputs[0].data<T>();
  const T* gamma = args.inputs[1].data<T>();
  const T* beta = args.inputs[2].data<T>();
  // running_mean and running_var are the model's buffers (parameter storage): a training
  // run updates them in place through the input tensors, which share that storage.
  T* running_mean = const_cast<T*>(args.inputs[3].data<T>());
  T* running_var = const_cast<T*>(args.inputs[4].data<T>());
  const double eps = static_cast<double>(args.node.attrs.eps);
  std::vector<double> mean, var;
  if (args.run.training) {
    if (d.count() < 2)
      throw ValueError("batch_norm " + node_label(args.node) +
                       ": training needs more than one value per channel, got input " +
                       args.inputs[0].shape().str());
    channel_stats(x, d, mean, var);
  } else {
    mean.resize(static_cast<std::size_t>(d.c));
    var.resize(static_cast<std::size_t>(d.c));
    for (std::int64_t ch = 0; ch < d.c; ++ch) {
      mean[static_cast<std::size_t>(ch)] = static_cast<double>(running_mean[ch]);
      var[static_cast<std::size_t>(ch)] = static_cast<double>(running_var[ch]);
    }
  }
  T* y = args.output.data<T>();
  for (std::int64_t ch = 0; ch < d.c; ++ch) {
    const double m = mean[static_cast<std::size_t>(ch)];
    const double scale =
        static_cast<double>(gamma[ch]) / std::sqrt(var[static_cast<std::size_t>(ch)] + eps);
    const double shift = static_cast<double>(beta[ch]);
    for (std::int64_t n = 0; n < d.n; ++n)
      for (std::int64_t k = 0; k < d.s; ++k) {
        const std::int64_t at = (n * d.c + ch) * d.s + k;
        y[at] = static_cast<T>((static_cast<double>(x[at]) - m) * scale + shift);
      }
  }
  if (!args.run.training) return;
  const double momentum = static_cast<double>(args.node.attrs.momentum);
  const double count = static_cast<double>(d.count());
  for (std::int64_t ch = 0; ch < d.c; ++ch) {
    const double unbiased = var[static_cast<std::size_t>(ch)] * count / (count - 1.0);
    running_mean[ch] = static_cast<T>((1.0 - momentum) * static_cast<double>(running_mean[ch]) +
                                      momentum * mean[static_cast<std::size_t>(ch)]);
    running_var[ch] = static_cast<T>((1.0 - momentum) * static_cast<double>(running_var[ch]) +
                                     momentum * unbiased);
  }
}

void run_batch_norm(const KernelArgs& args) {
  require(check_batch_norm, args);
  with_float(args.output.dtype(), [&](auto tag) { batch_norm_typed<decltype(tag)>(args); });
}

}  // namespace

void add_batch_norm_kernels(KernelTable& t) {
  t.add<Op::batch_norm>(
      {"reference", "ref_batch_norm", supports_check<check_batch_norm>, run_batch_norm});
}

}  // namespace kiln::internal::ref
