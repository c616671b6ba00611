// Shared helpers of the kernel tests (tests/*kernels_test.cpp, op table, model tests):
// random tensors, running one kernel of the table on a hand-built node, and comparing
// outputs with tolerances where NaN matches NaN and an infinity matches the same infinity.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "internal/kernel.hpp"
#include "internal/op_info.hpp"
#include "kiln/core/error.hpp"
#include "kiln/core/rng.hpp"
#include "kiln/core/tensor.hpp"

namespace kiln_test {

// ---- values ---------------------------------------------------------------------------

/// Uniform f32 values in [lo, hi).
inline kiln::Tensor random(const kiln::Shape& shape, kiln::Rng& rng, double lo = -1.0,
                           double hi = 1.0) {
  std::vector<float> v(static_cast<std::size_t>(shape.numel()));
  for (auto& x : v) x = static_cast<float>(rng.uniform(lo, hi));
  return kiln::Tensor::from(v, shape);
}

/// Integers in [0, limit) of dtype dt.
inline kiln::Tensor random_indices(const kiln::Shape& shape, std::int64_t limit, kiln::DType dt,
                                   kiln::Rng& rng) {
  std::vector<std::int64_t> v(static_cast<std::size_t>(shape.numel()));
  for (auto& x : v) x = static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(limit)));
  return kiln::Tensor::from(v, shape).to(dt);
}

/// A tensor of dtype dt holding `values` (exactly representable values only for ints).
inline kiln::Tensor make(const std::vector<double>& values, const kiln::Shape& shape,
                         kiln::DType dt = kiln::DType::f32) {
  return kiln::Tensor::from(values, shape).to(dt);
}

/// Writes NaN, +Inf and -Inf into three spread-out elements of a float tensor (fewer when
/// it is smaller), leaving the rest as they are. Returns t.
inline kiln::Tensor& inject_nonfinite(kiln::Tensor& t) {
  const std::int64_t n = t.numel();
  const double specials[] = {std::numeric_limits<double>::quiet_NaN(),
                             std::numeric_limits<double>::infinity(),
                             -std::numeric_limits<double>::infinity()};
  kiln::Tensor d = t.to(kiln::DType::f64);
  double* p = d.data<double>();
  for (std::int64_t k = 0; k < 3 && k < n; ++k) p[(n * (2 * k + 1)) / 6] = specials[k];
  t = d.to(t.dtype());
  return t;
}

// ---- comparing ------------------------------------------------------------------------

struct Tol {
  double rel = 1e-5;  ///< relative to |want| (or to the largest finite |want|, see below)
  double abs = 1e-6;
  /// true: rel scales with the largest finite |want| of the tensor, not each element's.
  bool relative_to_largest = false;
};

/// Largest finite |x| of a float tensor (0 when none).
inline double max_abs_finite(const kiln::Tensor& t) {
  const auto v = t.to(kiln::DType::f64).to_vector<double>();
  double m = 0.0;
  for (double x : v)
    if (std::isfinite(x)) m = std::max(m, std::abs(x));
  return m;
}

/// NaN matches only NaN, an infinity only the same infinity, a finite value any finite value
/// within `limit`.
inline bool value_matches(double got, double want, double limit) {
  if (std::isnan(want) || std::isnan(got)) return std::isnan(want) && std::isnan(got);
  if (std::isinf(want) || std::isinf(got)) return got == want;
  return std::abs(got - want) <= limit;
}

/// Elementwise NaN-aware comparison of two float tensors; reports the first few mismatches.
inline void expect_close_nan_aware(const kiln::Tensor& got, const kiln::Tensor& want, Tol tol,
                                   const std::string& who) {
  ASSERT_EQ(got.shape(), want.shape()) << who;
  const auto g = got.to(kiln::DType::f64).to_vector<double>();
  const auto w = want.to(kiln::DType::f64).to_vector<double>();
  const double largest = tol.relative_to_largest ? max_abs_finite(want) : 0.0;
  int reported = 0;
  for (std::size_t i = 0; i < w.size(); ++i) {
    const double scale = tol.relative_to_largest ? largest : std::abs(w[i]);
    const double limit = tol.abs + tol.rel * scale;
    if (!value_matches(g[i], w[i], limit) && reported++ < 5)
      ADD_FAILURE() << who << ": element " << i << " is " << g[i] << ", reference " << w[i]
                    << " (limit " << limit << ")";
  }
}

/// Expects fn to throw kiln::ValueError whose message contains every fragment.
template <class Fn>
void expect_value_error(Fn&& fn, const std::vector<std::string>& fragments) {
  try {
    fn();
    ADD_FAILURE() << "expected kiln::ValueError";
  } catch (const kiln::ValueError& e) {
    const std::string msg = e.what();
    for (const std::string& f : fragments)
      EXPECT_NE(msg.find(f), std::string::npos) << "'" << f << "' not in: " << msg;
  }
}

// ---- running one kernel ---------------------------------------------------------------

inline constexpr const char* kNodeName = "node_under_test";

/// The kernel of `backend` for op from the global table, training-only kernels included.
inline const kiln::internal::Kernel* find_kernel(kiln::Op op, std::string_view backend) {
  kiln::internal::ensure_training_kernels();
  for (const auto& k : kiln::internal::kernels_for(op))
    if (backend == k.backend) return &k;
  return nullptr;
}

/// One call of an op: attributes, inputs and the run context.
struct KernelCase {
  kiln::Op op;
  kiln::Attrs attrs;
  std::vector<kiln::Tensor> inputs;
  kiln::internal::RunContext run{};
};

inline std::vector<kiln::internal::TensorDesc> descs_of(const std::vector<kiln::Tensor>& ts) {
  std::vector<kiln::internal::TensorDesc> d;
  for (const kiln::Tensor& t : ts) d.push_back({t.shape(), t.dtype()});
  return d;
}

/// The output shape and dtype by the op's shape rule.
inline kiln::internal::TensorDesc output_of(const KernelCase& c) {
  return kiln::internal::infer(c.op, c.attrs, descs_of(c.inputs), "test");
}

inline kiln::Node make_node(kiln::Op op, const kiln::Attrs& attrs, const kiln::Shape& out_shape,
                            kiln::DType out_dtype, const char* name = kNodeName) {
  kiln::Node n;
  n.op = op;
  n.attrs = attrs;
  n.name = name;
  n.shape = out_shape;
  n.dtype = out_dtype;
  return n;
}

/// Whether k accepts the case; *why gets its reason when not.
inline bool accepts(const kiln::internal::Kernel& k, const KernelCase& c,
                    std::string* why = nullptr) {
  const auto out = output_of(c);
  const kiln::Node n = make_node(c.op, c.attrs, out.shape, out.dtype);
  const auto in = descs_of(c.inputs);
  std::string reason;
  const bool ok = k.supports(kiln::internal::KernelQuery{n, in, out}, &reason);
  if (why != nullptr) *why = reason;
  return ok;
}

/// Runs k (prepare, then run) into `out`, which must have the output's shape; supports()
/// is not asked.
inline void run_into(const kiln::internal::Kernel& k, const KernelCase& c, kiln::Tensor& out) {
  const auto desc = output_of(c);
  const kiln::Node n = make_node(c.op, c.attrs, desc.shape, desc.dtype);
  const auto in = descs_of(c.inputs);
  const kiln::internal::KernelQuery q{n, in, desc};
  std::shared_ptr<void> state = k.prepare ? k.prepare(q) : nullptr;
  kiln::internal::KernelArgs args{n, c.inputs, out, state.get(), c.run};
  k.run(args);
}

/// Runs k into a NaN-poisoned output (an element it forgets to write shows up), expecting
/// it to accept the case.
inline kiln::Tensor run_kernel(const kiln::internal::Kernel& k, const KernelCase& c) {
  const auto desc = output_of(c);
  std::string why;
  EXPECT_TRUE(accepts(k, c, &why)) << k.name << " declined: " << why;
  kiln::Tensor out = kiln::Tensor::full(desc.shape, std::nan(""), desc.dtype);
  run_into(k, c, out);
  return out;
}

inline KernelCase clone_inputs(const KernelCase& c) {
  KernelCase d = c;
  for (auto& t : d.inputs) t = t.clone();
  return d;
}

}  // namespace kiln_test
