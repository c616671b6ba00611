// Eigen kernels of elementwise ops: binary arithmetic, activations, step and equal.
#include "kernels/eigen/common.hpp"
#include "kernels/eigen/eigen_kernels.hpp"

namespace kiln::internal::eigen {
namespace {

// Transcendental ops cost more per element, so they split into threads sooner.
constexpr std::int64_t cheap_grain = parallel_grain;
constexpr std::int64_t costly_grain = parallel_grain / 8;

bool supports_elementwise(const KernelQuery& q, std::string* why) {
  if (!require_f32(q, why)) return false;
  for (const auto& d : q.inputs)
    if (d.shape != q.output.shape) return decline(why, "elementwise inputs must match the output");
  return true;
}

/// out = f(x) over the whole tensor; f assigns an Eigen expression of x to out.
/// Safe in place (out aliasing x): every element is read before it is written.
template <class F>
void unary(const KernelArgs& args, std::int64_t grain, F f) {
  const float* x = args.inputs[0].data<float>();
  float* y = args.output.data<float>();
  parallel_ranges(args.output.numel(), grain, [&](std::int64_t b, std::int64_t e) {
    ArrayMap out(y + b, e - b);
    f(out, ConstArrayMap(x + b, e - b));
  });
}

template <class F>
void binary(const KernelArgs& args, std::int64_t grain, F f) {
  const float* a = args.inputs[0].data<float>();
  const float* b = args.inputs[1].data<float>();
  float* y = args.output.data<float>();
  parallel_ranges(args.output.numel(), grain, [&](std::int64_t lo, std::int64_t hi) {
    ArrayMap out(y + lo, hi - lo);
    f(out, ConstArrayMap(a + lo, hi - lo), ConstArrayMap(b + lo, hi - lo));
  });
}

void run_add(const KernelArgs& args) {
  binary(args, cheap_grain, [](ArrayMap& y, const auto& a, const auto& b) { y = a + b; });
}
void run_sub(const KernelArgs& args) {
  binary(args, cheap_grain, [](ArrayMap& y, const auto& a, const auto& b) { y = a - b; });
}
void run_mul(const KernelArgs& args) {
  binary(args, cheap_grain, [](ArrayMap& y, const auto& a, const auto& b) { y = a * b; });
}
void run_div(const KernelArgs& args) {
  binary(args, cheap_grain, [](ArrayMap& y, const auto& a, const auto& b) { y = a / b; });
}
void run_equal(const KernelArgs& args) {
  const float* a = args.inputs[0].data<float>();
  const float* b = args.inputs[1].data<float>();
  float* y = args.output.data<float>();
  parallel_ranges(args.output.numel(), cheap_grain, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t i = lo; i < hi; ++i) y[i] = a[i] == b[i] ? 1.0f : 0.0f;
  });
}

void run_neg(const KernelArgs& args) {
  unary(args, cheap_grain, [](ArrayMap& y, const auto& x) { y = -x; });
}
void run_exp(const KernelArgs& args) {
  unary(args, costly_grain, [](ArrayMap& y, const auto& x) { y = x.exp(); });
}
void run_log(const KernelArgs& args) {
  unary(args, costly_grain, [](ArrayMap& y, const auto& x) { y = x.log(); });
}
void run_sqrt(const KernelArgs& args) {
  // Not Eigen's sqrt(): with EIGEN_FAST_MATH it is x * rsqrt(x), which makes sqrt(+inf) NaN.
  // std::sqrt vectorises to the exact instruction (math errno is off).
  unary(args, cheap_grain, [](ArrayMap& y, const auto& x) {
    for (Eigen::Index i = 0; i < y.size(); ++i) y[i] = std::sqrt(x[i]);
  });
}
void run_relu(const KernelArgs& args) {
  unary(args, cheap_grain, [](ArrayMap& y, const auto& x) { y = relu_keep_nan(x); });
}
void run_leaky_relu(const KernelArgs& args) {
  const float alpha = args.node.attrs.alpha;
  unary(args, cheap_grain,
        [alpha](ArrayMap& y, const auto& x) { y = (x > 0.0f).select(x, alpha * x); });
}
void run_sigmoid(const KernelArgs& args) {
  unary(args, costly_grain, [](ArrayMap& y, const auto& x) { y = x.logistic(); });
}
void run_tanh(const KernelArgs& args) {
  unary(args, costly_grain, [](ArrayMap& y, const auto& x) { y = x.tanh(); });
}
void run_step(const KernelArgs& args) {
  const float* x = args.inputs[0].data<float>();
  float* y = args.output.data<float>();
  parallel_ranges(args.output.numel(), cheap_grain, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t i = lo; i < hi; ++i) y[i] = x[i] > 0.0f ? 1.0f : 0.0f;
  });
}

}  // namespace

void register_elementwise(KernelTable& t) {
  const auto add = [&t](Op op, const char* name, void (*run)(const KernelArgs&)) {
    t.add(op, {"eigen", name, supports_elementwise, run});
  };
  add(Op::add, "eigen_add", run_add);
  add(Op::sub, "eigen_sub", run_sub);
  add(Op::mul, "eigen_mul", run_mul);
  add(Op::div, "eigen_div", run_div);
  add(Op::equal, "eigen_equal", run_equal);
  add(Op::neg, "eigen_neg", run_neg);
  add(Op::exp, "eigen_exp", run_exp);
  add(Op::log, "eigen_log", run_log);
  add(Op::sqrt, "eigen_sqrt", run_sqrt);
  add(Op::relu, "eigen_relu", run_relu);
  add(Op::leaky_relu, "eigen_leaky_relu", run_leaky_relu);
  add(Op::sigmoid, "eigen_sigmoid", run_sigmoid);
  add(Op::tanh, "eigen_tanh", run_tanh);
  add(Op::step, "eigen_step", run_step);
}

}  // namespace kiln::internal::eigen
