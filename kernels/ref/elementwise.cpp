// Reference elementwise kernels: add, sub, mul, div, equal (binary, equal shapes) and
// neg, exp, log, sqrt, relu, leaky_relu, sigmoid, tanh, step (unary).
//
// Float math is done in double and rounded once to the output type: for +, -, *, / and sqrt
// that is the correctly rounded f32 result, for exp, log, tanh and sigmoid it is at least as
// accurate as the f32 library functions.
#include <cmath>
#include <cstdint>
#include <string>

#include "kernels/ref/ref.hpp"
#include "kernels/ref/ref_util.hpp"

namespace kiln::internal::ref {
namespace {

std::string check_binary_shapes(Descs in, const TensorDesc& out) {
  if (in[0].shape != in[1].shape)
    return "input shapes differ: " + in[0].shape.str() + " and " + in[1].shape.str();
  return need_out_shape(out, in[0].shape);
}

std::string check_float_binary(const Node&, Descs in, const TensorDesc& out) {
  if (auto e = need_arity(in, 2, 2); !e.empty()) return e;
  if (auto e = need_float_alike(in, out); !e.empty()) return e;
  return check_binary_shapes(in, out);
}

/// equal: a and b of one dtype (float or integer); the output has a's dtype.
std::string check_equal(const Node&, Descs in, const TensorDesc& out) {
  if (auto e = need_arity(in, 2, 2); !e.empty()) return e;
  if (auto e = need_same_dtype(in, out); !e.empty()) return e;
  return check_binary_shapes(in, out);
}

std::string check_float_unary(const Node&, Descs in, const TensorDesc& out) {
  if (auto e = need_arity(in, 1, 1); !e.empty()) return e;
  if (auto e = need_float_alike(in, out); !e.empty()) return e;
  return need_out_shape(out, in[0].shape);
}

constexpr auto supports_float_binary = supports_check<check_float_binary>;
constexpr auto supports_float_unary = supports_check<check_float_unary>;

// ---- binary -------------------------------------------------------------------------

using BinaryFn = double (*)(double a, double b);

double add_fn(double a, double b) { return a + b; }
double sub_fn(double a, double b) { return a - b; }
double mul_fn(double a, double b) { return a * b; }
double div_fn(double a, double b) { return a / b; }

template <BinaryFn F>
void run_binary(const KernelArgs& args) {
  require(check_float_binary, args);
  with_float(args.output.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* a = args.inputs[0].data<T>();
    const T* b = args.inputs[1].data<T>();
    T* out = args.output.data<T>();
    for (std::int64_t i = 0; i < args.output.numel(); ++i)
      out[i] = static_cast<T>(F(static_cast<double>(a[i]), static_cast<double>(b[i])));
  });
}

void run_equal(const KernelArgs& args) {
  require(check_equal, args);
  with_any(args.output.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* a = args.inputs[0].data<T>();
    const T* b = args.inputs[1].data<T>();
    T* out = args.output.data<T>();
    for (std::int64_t i = 0; i < args.output.numel(); ++i) out[i] = a[i] == b[i] ? T(1) : T(0);
  });
}

// ---- unary --------------------------------------------------------------------------

using UnaryFn = double (*)(double x, const Attrs& attrs);

double neg_fn(double x, const Attrs&) { return -x; }
double exp_fn(double x, const Attrs&) { return std::exp(x); }
double log_fn(double x, const Attrs&) { return std::log(x); }
double sqrt_fn(double x, const Attrs&) { return std::sqrt(x); }
double relu_fn(double x, const Attrs&) { return x < 0.0 ? 0.0 : x; }  // NaN stays NaN
double leaky_relu_fn(double x, const Attrs& attrs) {
  return x > 0.0 ? x : static_cast<double>(attrs.alpha) * x;
}
/// Stable logistic: never evaluates exp of a large positive number.
double sigmoid_fn(double x, const Attrs&) {
  if (x >= 0.0) return 1.0 / (1.0 + std::exp(-x));
  const double e = std::exp(x);
  return e / (1.0 + e);
}
double tanh_fn(double x, const Attrs&) { return std::tanh(x); }
double step_fn(double x, const Attrs&) { return x > 0.0 ? 1.0 : 0.0; }

template <UnaryFn F>
void run_unary(const KernelArgs& args) {
  require(check_float_unary, args);
  with_float(args.output.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* x = args.inputs[0].data<T>();
    T* out = args.output.data<T>();
    for (std::int64_t i = 0; i < args.output.numel(); ++i)
      out[i] = static_cast<T>(F(static_cast<double>(x[i]), args.node.attrs));
  });
}

}  // namespace

void add_elementwise_kernels(KernelTable& t) {
  t.add<Op::add>({"reference", "ref_add", supports_float_binary, run_binary<add_fn>});
  t.add<Op::sub>({"reference", "ref_sub", supports_float_binary, run_binary<sub_fn>});
  t.add<Op::mul>({"reference", "ref_mul", supports_float_binary, run_binary<mul_fn>});
  t.add<Op::div>({"reference", "ref_div", supports_float_binary, run_binary<div_fn>});
  t.add<Op::equal>({"reference", "ref_equal", supports_check<check_equal>, run_equal});

  t.add<Op::neg>({"reference", "ref_neg", supports_float_unary, run_unary<neg_fn>});
  t.add<Op::exp>({"reference", "ref_exp", supports_float_unary, run_unary<exp_fn>});
  t.add<Op::log>({"reference", "ref_log", supports_float_unary, run_unary<log_fn>});
  t.add<Op::sqrt>({"reference", "ref_sqrt", supports_float_unary, run_unary<sqrt_fn>});
  t.add<Op::relu>({"reference", "ref_relu", supports_float_unary, run_unary<relu_fn>});
  t.add<Op::leaky_relu>(
      {"reference", "ref_leaky_relu", supports_float_unary, run_unary<leaky_relu_fn>});
  t.add<Op::sigmoid>({"reference", "ref_sigmoid", supports_float_unary, run_unary<sigmoid_fn>});
  t.add<Op::tanh>({"reference", "ref_tanh", supports_float_unary, run_unary<tanh_fn>});
  t.add<Op::step>({"reference", "ref_step", supports_float_unary, run_unary<step_fn>});
}

}  // namespace kiln::internal::ref
