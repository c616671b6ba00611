// oneDNN kernels of elementwise ops: eltwise primitives (leaky_relu, exp, log, sqrt,
// sigmoid, tanh, neg) and binary primitives (add, sub, mul, div), over the tensors viewed
// as 1-D. relu has none: oneDNN's ReLU computes max(x, 0) with vmaxps, which turns NaN
// into 0 (leaky_relu's x > 0 ? x : alpha*x keeps it); the Eigen kernel runs relu.
#include "kernels/onednn/onednn_common.hpp"

namespace kiln::internal::onednn {
namespace {

using alg = dnnl::algorithm;

struct EltwiseSpec {
  Op op;
  alg algorithm;
  float beta;
  const char* name;
};

// alpha comes from the node for leaky_relu, is -1 for neg and 0 otherwise.
constexpr EltwiseSpec eltwise_specs[] = {
    {Op::leaky_relu, alg::eltwise_relu, 0.0f, "onednn_leaky_relu"},
    {Op::exp, alg::eltwise_exp, 0.0f, "onednn_exp"},
    {Op::log, alg::eltwise_log, 0.0f, "onednn_log"},
    {Op::sqrt, alg::eltwise_sqrt, 0.0f, "onednn_sqrt"},
    {Op::sigmoid, alg::eltwise_logistic, 0.0f, "onednn_sigmoid"},
    {Op::tanh, alg::eltwise_tanh, 0.0f, "onednn_tanh"},
    {Op::neg, alg::eltwise_linear, 0.0f, "onednn_neg"},
};

struct BinarySpec {
  Op op;
  alg algorithm;
  const char* name;
};

constexpr BinarySpec binary_specs[] = {
    {Op::add, alg::binary_add, "onednn_add"},
    {Op::sub, alg::binary_sub, "onednn_sub"},
    {Op::mul, alg::binary_mul, "onednn_mul"},
    {Op::div, alg::binary_div, "onednn_div"},
};

bool same_shapes(const KernelQuery& q, std::string* why) {
  for (const auto& d : q.inputs)
    if (d.shape != q.output.shape) return decline(why, "inputs must have the output's shape");
  return true;
}

bool build_eltwise(const KernelQuery& q, std::string* why, Plan* plan) {
  if (!basic_checks(q, why) || !same_shapes(q, why)) return false;
  const EltwiseSpec* spec = nullptr;
  for (const auto& s : eltwise_specs)
    if (s.op == q.node.op) spec = &s;
  if (spec == nullptr) return decline(why, "not an eltwise op");
  float alpha = 0.0f;
  if (q.node.op == Op::leaky_relu) alpha = q.node.attrs.alpha;
  if (q.node.op == Op::neg) alpha = -1.0f;
  const auto md = plain_desc({q.output.shape.numel()});
  dnnl::eltwise_forward::primitive_desc pd(
      dnnl::eltwise_forward::desc(dnnl::prop_kind::forward_inference, spec->algorithm, md, alpha,
                                  spec->beta),
      engine(), true);
  if (!pd) return decline(why, "oneDNN has no eltwise implementation here");
  plan->pd = pd;
  plan->bindings = {{DNNL_ARG_SRC, md, 0}, {DNNL_ARG_DST, md, -1}};
  return true;
}

bool build_binary(const KernelQuery& q, std::string* why, Plan* plan) {
  if (!basic_checks(q, why) || !same_shapes(q, why)) return false;
  if (q.inputs.size() != 2) return decline(why, "binary ops need two inputs");
  const BinarySpec* spec = nullptr;
  for (const auto& s : binary_specs)
    if (s.op == q.node.op) spec = &s;
  if (spec == nullptr) return decline(why, "not a binary op");
  const auto md = plain_desc({q.output.shape.numel()});
  dnnl::binary::primitive_desc pd(dnnl::binary::desc(spec->algorithm, md, md, md), engine(), true);
  if (!pd) return decline(why, "oneDNN has no binary implementation here");
  plan->pd = pd;
  plan->bindings = {{DNNL_ARG_SRC_0, md, 0}, {DNNL_ARG_SRC_1, md, 1}, {DNNL_ARG_DST, md, -1}};
  return true;
}

bool supports_eltwise(const KernelQuery& q, std::string* why) {
  return elementwise_policy(q, why) && supports_with(build_eltwise, q, why);
}
std::shared_ptr<void> prepare_eltwise(const KernelQuery& q) {
  return prepare_with(build_eltwise, q);
}
void run_eltwise(const KernelArgs& args) {
  // oneDNN's exp returns +inf for NaN: inputs holding NaN take the Eigen kernel.
  if (args.node.op == Op::exp && has_nan(args.inputs[0])) return run_fallback(args);
  execute(build_eltwise, args);
}

bool supports_binary(const KernelQuery& q, std::string* why) {
  return elementwise_policy(q, why) && supports_with(build_binary, q, why);
}
std::shared_ptr<void> prepare_binary(const KernelQuery& q) { return prepare_with(build_binary, q); }
void run_binary(const KernelArgs& args) { execute(build_binary, args); }

}  // namespace

void register_elementwise(KernelTable& t) {
  for (const auto& s : eltwise_specs)
    t.add(s.op, {"onednn", s.name, supports_eltwise, run_eltwise, prepare_eltwise});
  for (const auto& s : binary_specs)
    t.add(s.op, {"onednn", s.name, supports_binary, run_binary, prepare_binary});
}

}  // namespace kiln::internal::onednn
