// oneDNN kernels of softmax and log_softmax (softmax_v2, accurate and log algorithms)
// over contiguous rows; softmax over an outer axis is left to the Eigen kernel, whose
// strided loop beats oneDNN's reference implementation for that layout. Inputs holding NaN
// or an infinity run the Eigen kernel (see run_softmax).
#include "kernels/onednn/onednn_common.hpp"

namespace kiln::internal::onednn {
namespace {

bool build_softmax(const KernelQuery& q, std::string* why, Plan* plan) {
  if (!basic_checks(q, why)) return false;
  const Shape& s = q.output.shape;
  const auto axis = q.node.attrs.axis;
  if (axis < 0 || axis >= static_cast<std::int64_t>(s.rank()))
    return decline(why, "softmax axis out of range");
  if (q.inputs[0].shape != s) return decline(why, "output must have the input's shape");
  if (axis + 1 != static_cast<std::int64_t>(s.rank()))
    return decline(why, "onednn softmax handles the innermost axis only");
  const std::int64_t n = s[s.rank() - 1];
  const auto md = plain_desc({s.numel() / n, n});
  const auto algorithm = q.node.op == Op::log_softmax ? dnnl::algorithm::softmax_log
                                                      : dnnl::algorithm::softmax_accurate;
  dnnl::softmax_v2_forward::primitive_desc pd(
      dnnl::softmax_v2_forward::desc(dnnl::prop_kind::forward_inference, algorithm, md, md, 1),
      engine(), true);
  if (!pd) return decline(why, "oneDNN has no softmax implementation here");
  plan->pd = pd;
  plan->bindings = {{DNNL_ARG_SRC, md, 0}, {DNNL_ARG_DST, md, -1}};
  return true;
}

bool supports_softmax(const KernelQuery& q, std::string* why) {
  return elementwise_policy(q, why) && supports_with(build_softmax, q, why);
}
std::shared_ptr<void> prepare_softmax(const KernelQuery& q) {
  return prepare_with(build_softmax, q);
}
void run_softmax(const KernelArgs& args) {
  // oneDNN's softmax gives 0 or finite values for rows holding NaN or an infinity where
  // the reference gives NaN (max subtraction: inf - inf); such inputs take the Eigen kernel.
  if (has_nan(args.inputs[0], /*infinities=*/true)) return run_fallback(args);
  execute(build_softmax, args);
}

}  // namespace

void register_softmax(KernelTable& t) {
  t.add<Op::softmax>({"onednn", "onednn_softmax", supports_softmax, run_softmax, prepare_softmax});
  t.add<Op::log_softmax>(
      {"onednn", "onednn_log_softmax", supports_softmax, run_softmax, prepare_softmax});
}

}  // namespace kiln::internal::onednn
