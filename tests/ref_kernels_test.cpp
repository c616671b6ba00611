// Reference kernels on small cases worked out by hand (or by a formula written in the test),
// run directly through the kernel table with a hand-built Node and KernelArgs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "internal/kernel.hpp"
#include "kernels/ref/ref.hpp"
#include "kiln/core/error.hpp"
#include "kiln/core/rng.hpp"
#include "kiln/core/tensor.hpp"
#include "tests/support/kernel_test_support.hpp"

namespace kiln::internal {
namespace {

using kiln_test::kNodeName;
constexpr double kE = std::numbers::e;
constexpr double kLn2 = std::numbers::ln2;

const Kernel* find_reference(std::span<const Kernel> kernels) {
  for (const Kernel& k : kernels)
    if (std::string_view(k.backend) == "reference") return &k;
  return nullptr;
}

const Kernel& reference_kernel(Op op) {
  const Kernel* k = find_reference(kernels_for(op));
  if (k == nullptr) throw std::runtime_error("no reference kernel for " + std::string(op_name(op)));
  return *k;
}

/// scatter_add_rows is training-only: its kernel comes from the training registration.
const Kernel& reference_training_kernel(Op op) {
  static KernelTable table = [] {
    KernelTable t;
    register_reference_training_kernels(t);
    return t;
  }();
  const Kernel* k = find_reference(table.get(op));
  if (k == nullptr) throw std::runtime_error("no reference training kernel");
  return *k;
}

using kiln_test::expect_value_error;
using kiln_test::make;
using kiln_test::make_node;

/// Asks the kernel whether it supports the call; returns "" if it does, else its reason.
std::string refusal(const Kernel& k, Op op, const Attrs& attrs, const std::vector<Tensor>& inputs,
                    const Shape& out_shape, DType out_dtype) {
  const Node node = make_node(op, attrs, out_shape, out_dtype);
  std::vector<TensorDesc> descs;
  for (const Tensor& t : inputs) descs.push_back({t.shape(), t.dtype()});
  const TensorDesc out{out_shape, out_dtype};
  std::string why;
  if (k.supports(KernelQuery{node, descs, out}, &why)) return {};
  return why.empty() ? "declined without a reason" : why;
}

/// Runs kernel k on `inputs` into a poisoned output of the given shape and dtype.
Tensor run_kernel(const Kernel& k, Op op, const Attrs& attrs, const std::vector<Tensor>& inputs,
                  const Shape& out_shape, DType out_dtype, RunContext run = {}) {
  EXPECT_EQ(refusal(k, op, attrs, inputs, out_shape, out_dtype), "");
  const Node node = make_node(op, attrs, out_shape, out_dtype);
  // Poison, so that an element the kernel forgets to write shows up.
  Tensor out = Tensor::full(out_shape, is_floating(out_dtype) ? std::nan("") : -777.0, out_dtype);
  KernelArgs args{node, inputs, out, nullptr, run};
  k.run(args);
  return out;
}

Tensor run_ref(Op op, const Attrs& attrs, const std::vector<Tensor>& inputs, const Shape& out_shape,
               DType out_dtype = f32, RunContext run = {}) {
  return run_kernel(reference_kernel(op), op, attrs, inputs, out_shape, out_dtype, run);
}

double tolerance(DType dt) { return dt == f64 ? 1e-12 : 2e-6; }

void expect_tensor(const Tensor& t, const Shape& shape, const std::vector<double>& expected,
                   double tol) {
  ASSERT_EQ(t.shape(), shape);
  ASSERT_EQ(t.numel(), static_cast<std::int64_t>(expected.size()));
  for (std::size_t i = 0; i < expected.size(); ++i)
    EXPECT_NEAR(t.at(static_cast<std::int64_t>(i)), expected[i],
                tol * std::max(1.0, std::abs(expected[i])))
        << "at flat index " << i;
}

const DType kFloats[] = {f32, f64};

// ---- coverage ---------------------------------------------------------------------------

TEST(RefKernels, EveryOpWithAKernelHasAReferenceKernel) {
  ensure_training_kernels();  // training-only ops get their kernels from Kiln::kiln
  for (int i = 0; i < op_count; ++i) {
    const Op op = static_cast<Op>(i);
    if (op_info(op).has(op_leaf)) continue;
    const Kernel* k = find_reference(kernels_for(op));
    ASSERT_NE(k, nullptr) << op_name(op);
    EXPECT_EQ(std::string(k->name), "ref_" + std::string(op_name(op)));
    // The reference kernel is the last resort: nothing comes after it.
    EXPECT_EQ(k, &kernels_for(op).back()) << op_name(op);
  }
}

// ---- matmul -----------------------------------------------------------------------------

// [[1,2,3],[4,5,6]] x [[7,8],[9,10],[11,12]] = [[1*7+2*9+3*11, 1*8+2*10+3*12], ...]
//                                            = [[58, 64], [139, 154]].
TEST(RefKernels, MatmulTwoByThreeTimesThreeByTwo) {
  for (DType dt : kFloats) {
    SCOPED_TRACE(std::string(to_string(dt)));
    const Tensor a = make({1, 2, 3, 4, 5, 6}, {2, 3}, dt);
    const Tensor b = make({7, 8, 9, 10, 11, 12}, {3, 2}, dt);
    const Tensor at = make({1, 4, 2, 5, 3, 6}, {3, 2}, dt);     // a transposed
    const Tensor bt = make({7, 9, 11, 8, 10, 12}, {2, 3}, dt);  // b transposed
    const std::vector<double> c = {58, 64, 139, 154};
    expect_tensor(run_ref(Op::matmul, {}, {a, b}, {2, 2}, dt), {2, 2}, c, tolerance(dt));
    Attrs ta;
    ta.transpose_a = true;
    expect_tensor(run_ref(Op::matmul, ta, {at, b}, {2, 2}, dt), {2, 2}, c, tolerance(dt));
    Attrs tb;
    tb.transpose_b = true;
    expect_tensor(run_ref(Op::matmul, tb, {a, bt}, {2, 2}, dt), {2, 2}, c, tolerance(dt));
    Attrs both;
    both.transpose_a = both.transpose_b = true;
    expect_tensor(run_ref(Op::matmul, both, {at, bt}, {2, 2}, dt), {2, 2}, c, tolerance(dt));
  }
}

TEST(RefKernels, MatmulBatched) {
  // Batch 0 is a, batch 1 is 2a.
  const Tensor a2 = make({1, 2, 3, 4, 5, 6, 2, 4, 6, 8, 10, 12}, {2, 2, 3});
  const Tensor b = make({7, 8, 9, 10, 11, 12}, {3, 2});
  expect_tensor(run_ref(Op::matmul, {}, {a2, b}, {2, 2, 2}), {2, 2, 2},
                {58, 64, 139, 154, 116, 128, 278, 308}, 1e-6);
  // Per-batch b: batch 1's b picks the first two columns of a ([[1,0],[0,1],[0,0]]).
  const Tensor b2 = make({7, 8, 9, 10, 11, 12, 1, 0, 0, 1, 0, 0}, {2, 3, 2});
  const Tensor a_twice = make({1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6}, {2, 2, 3});
  expect_tensor(run_ref(Op::matmul, {}, {a_twice, b2}, {2, 2, 2}), {2, 2, 2},
                {58, 64, 139, 154, 1, 2, 4, 5}, 1e-6);
}

TEST(RefKernels, MatmulDeclinesBadCalls) {
  const Kernel& k = reference_kernel(Op::matmul);
  const Tensor a = make({1, 2, 3, 4, 5, 6}, {2, 3});
  const Tensor b_wrong = make({1, 2, 3, 4}, {2, 2});
  EXPECT_NE(refusal(k, Op::matmul, {}, {a, b_wrong}, {2, 2}, f32), "");
  const Tensor ai = make({1, 2, 3, 4, 5, 6}, {2, 3}, i32);
  const Tensor bi = make({1, 2, 3, 4, 5, 6}, {3, 2}, i32);
  EXPECT_NE(refusal(k, Op::matmul, {}, {ai, bi}, {2, 2}, i32), "");
  const Tensor b = make({7, 8, 9, 10, 11, 12}, {3, 2});
  EXPECT_NE(refusal(k, Op::matmul, {}, {a, b}, {3, 3}, f32), "");
  // run() re-checks: a wrong output shape raises instead of writing out of bounds.
  const Node node = make_node(Op::matmul, {}, {1, 1}, f32);
  const std::vector<Tensor> inputs = {a, b};
  Tensor out = Tensor::zeros({1, 1});
  const RunContext run;
  KernelArgs args{node, inputs, out, nullptr, run};
  expect_value_error([&] { k.run(args); }, {kNodeName});
}

// ---- elementwise ------------------------------------------------------------------------

TEST(RefKernels, BinaryArithmetic) {
  for (DType dt : kFloats) {
    SCOPED_TRACE(std::string(to_string(dt)));
    const Tensor a = make({1, 2, 3, -4}, {2, 2}, dt);
    const Tensor b = make({4, 5, 6, 8}, {2, 2}, dt);
    const double tol = tolerance(dt);
    expect_tensor(run_ref(Op::add, {}, {a, b}, {2, 2}, dt), {2, 2}, {5, 7, 9, 4}, tol);
    expect_tensor(run_ref(Op::sub, {}, {a, b}, {2, 2}, dt), {2, 2}, {-3, -3, -3, -12}, tol);
    expect_tensor(run_ref(Op::mul, {}, {a, b}, {2, 2}, dt), {2, 2}, {4, 10, 18, -32}, tol);
    expect_tensor(run_ref(Op::div, {}, {a, b}, {2, 2}, dt), {2, 2}, {0.25, 0.4, 0.5, -0.5}, tol);
  }
}

TEST(RefKernels, EqualKeepsTheInputDtype) {
  expect_tensor(run_ref(Op::equal, {}, {make({1, 2, 3}, {3}), make({1, 0, 3}, {3})}, {3}), {3},
                {1, 0, 1}, 0);
  const Tensor out =
      run_ref(Op::equal, {}, {make({5, 6}, {2}, i64), make({6, 6}, {2}, i64)}, {2}, i64);
  EXPECT_EQ(out.dtype(), i64);
  expect_tensor(out, {2}, {0, 1}, 0);
}

TEST(RefKernels, UnaryFunctions) {
  const double ln3 = std::log(3.0);
  for (DType dt : kFloats) {
    SCOPED_TRACE(std::string(to_string(dt)));
    const double tol = tolerance(dt);
    const Tensor x = make({-2, 0, 0.5, 3}, {4}, dt);
    expect_tensor(run_ref(Op::neg, {}, {x}, {4}, dt), {4}, {2, 0, -0.5, -3}, tol);
    expect_tensor(run_ref(Op::relu, {}, {x}, {4}, dt), {4}, {0, 0, 0.5, 3}, tol);
    expect_tensor(run_ref(Op::step, {}, {x}, {4}, dt), {4}, {0, 0, 1, 1}, tol);
    Attrs leaky;
    leaky.alpha = 0.25f;
    expect_tensor(run_ref(Op::leaky_relu, leaky, {x}, {4}, dt), {4}, {-0.5, 0, 0.5, 3}, tol);

    const Tensor e = make({0, 1, 2}, {3}, dt);
    expect_tensor(run_ref(Op::exp, {}, {e}, {3}, dt), {3}, {1, kE, kE * kE}, tol);
    const Tensor l = make({1, kE, 0.5}, {3}, dt);
    expect_tensor(run_ref(Op::log, {}, {l}, {3}, dt), {3}, {0, 1, -kLn2}, tol);
    const Tensor s = make({0, 4, 2.25}, {3}, dt);
    expect_tensor(run_ref(Op::sqrt, {}, {s}, {3}, dt), {3}, {0, 2, 1.5}, tol);
    // tanh(ln 3) = (9 - 1) / (9 + 1); sigmoid(ln 3) = 3 / (3 + 1).
    const Tensor t = make({0, ln3, -ln3}, {3}, dt);
    expect_tensor(run_ref(Op::tanh, {}, {t}, {3}, dt), {3}, {0, 0.8, -0.8}, tol);
    expect_tensor(run_ref(Op::sigmoid, {}, {t}, {3}, dt), {3}, {0.5, 0.75, 0.25}, tol);
    // Saturates without overflow.
    const Tensor big = make({-1000, 1000}, {2}, dt);
    expect_tensor(run_ref(Op::sigmoid, {}, {big}, {2}, dt), {2}, {0, 1}, tol);
  }
  EXPECT_NE(refusal(reference_kernel(Op::exp), Op::exp, {}, {make({1}, {1}, i32)}, {1}, i32), "");
}

// ---- softmax ----------------------------------------------------------------------------

TEST(RefKernels, SoftmaxOfZeroAndLnTwo) {
  for (DType dt : kFloats) {
    SCOPED_TRACE(std::string(to_string(dt)));
    Attrs last;
    last.axis = 0;
    // exp(0) : exp(ln 2) = 1 : 2.
    const Tensor x = make({0, kLn2}, {2}, dt);
    expect_tensor(run_ref(Op::softmax, last, {x}, {2}, dt), {2}, {1.0 / 3, 2.0 / 3}, tolerance(dt));
    expect_tensor(run_ref(Op::log_softmax, last, {x}, {2}, dt), {2},
                  {std::log(1.0 / 3), std::log(2.0 / 3)}, tolerance(dt));
    // Shifting by 1000 changes nothing (the max is subtracted first).
    const Tensor shifted = make({1000, 1000 + kLn2}, {2}, f64);
    expect_tensor(run_ref(Op::softmax, last, {shifted}, {2}, f64), {2}, {1.0 / 3, 2.0 / 3}, 1e-9);
  }
}

TEST(RefKernels, SoftmaxAlongTheFirstAxis) {
  // Columns: [0, ln 2] -> [1/3, 2/3]; [0, ln 3] -> [1/4, 3/4].
  const Tensor x = make({0, 0, kLn2, std::log(3.0)}, {2, 2});
  Attrs first;
  first.axis = 0;
  expect_tensor(run_ref(Op::softmax, first, {x}, {2, 2}), {2, 2},
                {1.0 / 3, 1.0 / 4, 2.0 / 3, 3.0 / 4}, 1e-6);
  Attrs second;
  second.axis = 1;  // rows: [0, 0] -> [1/2, 1/2]; [ln 2, ln 3] -> [2/5, 3/5]
  expect_tensor(run_ref(Op::softmax, second, {x}, {2, 2}), {2, 2}, {0.5, 0.5, 0.4, 0.6}, 1e-6);
}

// ---- reductions -------------------------------------------------------------------------

TEST(RefKernels, SumMeanMax) {
  for (DType dt : kFloats) {
    SCOPED_TRACE(std::string(to_string(dt)));
    const double tol = tolerance(dt);
    const Tensor x = make({1, 2, 3, 4, 5, 6}, {2, 3}, dt);
    const auto axes = [](std::vector<std::int64_t> a, bool keep) {
      Attrs at;
      at.axes = std::move(a);
      at.keepdims = keep;
      return at;
    };
    expect_tensor(run_ref(Op::sum, axes({0}, false), {x}, {3}, dt), {3}, {5, 7, 9}, tol);
    expect_tensor(run_ref(Op::sum, axes({1}, true), {x}, {2, 1}, dt), {2, 1}, {6, 15}, tol);
    expect_tensor(run_ref(Op::sum, axes({0, 1}, false), {x}, {}, dt), {}, {21}, tol);
    expect_tensor(run_ref(Op::mean, axes({1}, false), {x}, {2}, dt), {2}, {2, 5}, tol);
    expect_tensor(run_ref(Op::mean, axes({0, 1}, true), {x}, {1, 1}, dt), {1, 1}, {3.5}, tol);
    expect_tensor(run_ref(Op::max, axes({0}, false), {x}, {3}, dt), {3}, {4, 5, 6}, tol);
    const Tensor neg = make({-3, -1, -2, -7}, {2, 2}, dt);
    expect_tensor(run_ref(Op::max, axes({1}, false), {neg}, {2}, dt), {2}, {-1, -2}, tol);
  }
}

TEST(RefKernels, SumOverNonAdjacentAxes) {
  // x[i][j][k] = 4i + 2j + k; summing over i and k leaves j: sum = 4*2*1... by formula.
  std::vector<double> v(8);
  for (int i = 0; i < 8; ++i) v[static_cast<std::size_t>(i)] = i;
  Attrs a;
  a.axes = {0, 2};
  std::vector<double> expected(2, 0.0);
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j)
      for (int k = 0; k < 2; ++k) expected[static_cast<std::size_t>(j)] += 4 * i + 2 * j + k;
  expect_tensor(run_ref(Op::sum, a, {make(v, {2, 2, 2})}, {2}), {2}, expected, 1e-6);
  EXPECT_EQ(expected, (std::vector<double>{10, 18}));
}

// ---- data movement ----------------------------------------------------------------------

TEST(RefKernels, ExpandBroadcastsAndAverages) {
  const Tensor row = make({1, 2, 3}, {1, 3});
  Attrs plain;
  plain.axes = {2, 3};
  expect_tensor(run_ref(Op::expand, plain, {row}, {2, 3}), {2, 3}, {1, 2, 3, 1, 2, 3}, 0);
  Attrs mean = plain;
  mean.mean = true;  // divided by numel(out) / numel(x) = 2
  expect_tensor(run_ref(Op::expand, mean, {row}, {2, 3}), {2, 3}, {0.5, 1, 1.5, 0.5, 1, 1.5}, 1e-7);
  const Tensor col = make({1, 2}, {2, 1}, i32);
  expect_tensor(run_ref(Op::expand, plain, {col}, {2, 3}, i32), {2, 3}, {1, 1, 1, 2, 2, 2}, 0);
  // A `like` input only provides the batch size.
  Attrs like = plain;
  like.axes = {-1, 3};
  expect_tensor(run_ref(Op::expand, like, {row, Tensor::zeros({2, 7})}, {2, 3}), {2, 3},
                {1, 2, 3, 1, 2, 3}, 0);
  const Tensor wrong = make({1, 2}, {1, 2});
  EXPECT_NE(refusal(reference_kernel(Op::expand), Op::expand, plain, {wrong}, {2, 3}, f32), "");
}

TEST(RefKernels, ReshapeKeepsRowMajorOrder) {
  Attrs a;
  a.axes = {3, 2};
  expect_tensor(run_ref(Op::reshape, a, {make({1, 2, 3, 4, 5, 6}, {2, 3}, i64)}, {3, 2}, i64),
                {3, 2}, {1, 2, 3, 4, 5, 6}, 0);
}

TEST(RefKernels, TransposeTwoByThree) {
  Attrs a;
  a.axes = {1, 0};
  // [[1,2,3],[4,5,6]]^T = [[1,4],[2,5],[3,6]].
  expect_tensor(run_ref(Op::transpose, a, {make({1, 2, 3, 4, 5, 6}, {2, 3})}, {3, 2}), {3, 2},
                {1, 4, 2, 5, 3, 6}, 0);
}

TEST(RefKernels, TransposeRankThree) {
  // x[c][a][b] = 12c + 4a + b with shape [2, 3, 4]; perm [1, 2, 0] gives out[a][b][c] = x[c][a][b].
  std::vector<double> x(24);
  for (int i = 0; i < 24; ++i) x[static_cast<std::size_t>(i)] = i;
  std::vector<double> expected;
  for (int a = 0; a < 3; ++a)
    for (int b = 0; b < 4; ++b)
      for (int c = 0; c < 2; ++c) expected.push_back(12 * c + 4 * a + b);
  Attrs perm;
  perm.axes = {1, 2, 0};
  expect_tensor(run_ref(Op::transpose, perm, {make(x, {2, 3, 4})}, {3, 4, 2}), {3, 4, 2}, expected,
                0);
}

TEST(RefKernels, ConcatSlicePad) {
  const Tensor a = make({1, 2, 3, 4}, {2, 2});
  const Tensor b = make({5, 6}, {2, 1});
  Attrs axis1;
  axis1.axis = 1;
  expect_tensor(run_ref(Op::concat, axis1, {a, b}, {2, 3}), {2, 3}, {1, 2, 5, 3, 4, 6}, 0);
  Attrs axis0;
  axis0.axis = 0;
  expect_tensor(run_ref(Op::concat, axis0, {make({9, 8}, {1, 2}), a}, {3, 2}), {3, 2},
                {9, 8, 1, 2, 3, 4}, 0);
  EXPECT_NE(refusal(reference_kernel(Op::concat), Op::concat, axis0, {a, b}, {4, 2}, f32), "");

  // [[0,1,2,3],[4,5,6,7]][:, 1:3] = [[1,2],[5,6]].
  Attrs sl;
  sl.axis = 1;
  sl.start = 1;
  sl.stop = 3;
  const Tensor x = make({0, 1, 2, 3, 4, 5, 6, 7}, {2, 4});
  expect_tensor(run_ref(Op::slice, sl, {x}, {2, 2}), {2, 2}, {1, 2, 5, 6}, 0);
  Attrs rows;
  rows.axis = 0;
  rows.start = 1;
  rows.stop = 2;
  expect_tensor(run_ref(Op::slice, rows, {x}, {1, 4}), {1, 4}, {4, 5, 6, 7}, 0);
  Attrs past_end = sl;
  past_end.stop = 5;
  EXPECT_NE(refusal(reference_kernel(Op::slice), Op::slice, past_end, {x}, {2, 4}, f32), "");

  // One zero before and two after along axis 1.
  Attrs pd;
  pd.axis = 1;
  pd.start = 1;
  pd.stop = 2;
  expect_tensor(run_ref(Op::pad, pd, {a}, {2, 5}), {2, 5}, {0, 1, 2, 0, 0, 0, 3, 4, 0, 0}, 0);
  Attrs pd0;
  pd0.axis = 0;
  pd0.start = 1;
  pd0.stop = 0;
  expect_tensor(run_ref(Op::pad, pd0, {make({1, 2, 3, 4}, {2, 2}, i64)}, {3, 2}, i64), {3, 2},
                {0, 0, 1, 2, 3, 4}, 0);
}

// ---- index ops --------------------------------------------------------------------------

TEST(RefKernels, GatherRows) {
  const Tensor table = make({1, 2, 3, 4, 5, 6}, {3, 2});
  for (DType it : {i32, i64}) {
    const Tensor idx = make({2, 0, 1, 1}, {2, 2}, it);
    expect_tensor(run_ref(Op::gather, {}, {table, idx}, {2, 2, 2}), {2, 2, 2},
                  {5, 6, 1, 2, 3, 4, 3, 4}, 0);
  }
  for (double bad : {3.0, -1.0}) {
    const Tensor idx = make({0, bad}, {2}, i64);
    const Kernel& k = reference_kernel(Op::gather);
    const Node node = make_node(Op::gather, {}, {2, 2}, f32);
    const std::vector<Tensor> inputs = {table, idx};
    Tensor out = Tensor::zeros({2, 2});
    const RunContext run;
    KernelArgs args{node, inputs, out, nullptr, run};
    expect_value_error([&] { k.run(args); },
                       {kNodeName, "index " + std::to_string(static_cast<int>(bad))});
  }
  EXPECT_NE(refusal(reference_kernel(Op::gather), Op::gather, {}, {table, make({0}, {1}, f32)},
                    {1, 2}, f32),
            "");
}

TEST(RefKernels, OneHot) {
  Attrs a;
  a.size = 3;
  a.dtype = f32;
  expect_tensor(run_ref(Op::one_hot, a, {make({2, 0, 1}, {3}, i32)}, {3, 3}), {3, 3},
                {0, 0, 1, 1, 0, 0, 0, 1, 0}, 0);
  Attrs a64 = a;
  a64.dtype = i64;
  const Tensor out = run_ref(Op::one_hot, a64, {make({1, 1}, {2, 1}, i64)}, {2, 1, 3}, i64);
  EXPECT_EQ(out.dtype(), i64);
  expect_tensor(out, {2, 1, 3}, {0, 1, 0, 0, 1, 0}, 0);

  const Node node = make_node(Op::one_hot, a, {2, 3}, f32);
  const std::vector<Tensor> inputs = {make({0, 3}, {2}, i32)};
  Tensor bad_out = Tensor::zeros({2, 3});
  const RunContext run;
  KernelArgs args{node, inputs, bad_out, nullptr, run};
  expect_value_error([&] { reference_kernel(Op::one_hot).run(args); }, {kNodeName, "label 3"});
}

TEST(RefKernels, ScatterAddRows) {
  // out = zeros([3, 2]); out[0] += [1,2]; out[2] += [3,4]; out[0] += [5,6].
  const Kernel& k = reference_training_kernel(Op::scatter_add_rows);
  Attrs a;
  a.size = 3;
  for (DType dt : kFloats) {
    const Tensor idx = make({0, 2, 0}, {3}, i32);
    const Tensor upd = make({1, 2, 3, 4, 5, 6}, {3, 2}, dt);
    expect_tensor(run_kernel(k, Op::scatter_add_rows, a, {idx, upd}, {3, 2}, dt), {3, 2},
                  {6, 8, 0, 0, 3, 4}, tolerance(dt));
  }
  // Indices of rank 2: updates [2, 1, 2].
  const Tensor idx2 = make({1, 1}, {2, 1}, i64);
  const Tensor upd2 = make({1, 2, 10, 20}, {2, 1, 2});
  expect_tensor(run_kernel(k, Op::scatter_add_rows, a, {idx2, upd2}, {3, 2}, f32), {3, 2},
                {0, 0, 11, 22, 0, 0}, 1e-7);

  const Node node = make_node(Op::scatter_add_rows, a, {3, 2}, f32);
  const std::vector<Tensor> inputs = {make({0, 7}, {2}, i64), make({1, 2, 3, 4}, {2, 2})};
  Tensor out = Tensor::zeros({3, 2});
  const RunContext run;
  KernelArgs args{node, inputs, out, nullptr, run};
  expect_value_error([&] { k.run(args); }, {kNodeName, "index 7"});
}

// ---- dropout ----------------------------------------------------------------------------

TEST(RefKernels, DropoutMaskIsAllOnesWhenNotTraining) {
  Attrs a;
  a.alpha = 0.5f;
  a.seed = 42;
  const Tensor x = Tensor::zeros({4, 5});
  RunContext inference;
  inference.training = false;
  inference.counter = 9;
  expect_tensor(run_ref(Op::dropout_mask, a, {x}, {4, 5}, f32, inference), {4, 5},
                std::vector<double>(20, 1.0), 0);
}

TEST(RefKernels, DropoutMaskFollowsTheDocumentedHash) {
  Attrs a;
  a.alpha = 0.25f;
  a.seed = 1234;
  const std::int64_t n = 20000;
  for (DType dt : kFloats) {
    RunContext training;
    training.training = true;
    training.counter = 3;
    const Tensor mask = run_ref(Op::dropout_mask, a, {Tensor::zeros({n}, dt)}, {n}, dt, training);
    // docs/ops.md: u = top 24 bits of hash_bits(seed ^ (counter * 0x9E3779B97F4A7C15), i) / 2^24.
    const std::uint64_t key = 1234ULL ^ (3ULL * 0x9E3779B97F4A7C15ULL);
    std::int64_t zeros = 0;
    for (std::int64_t i = 0; i < n; ++i) {
      const double u =
          std::ldexp(static_cast<double>(hash_bits(key, static_cast<std::uint64_t>(i)) >> 40), -24);
      const double expected = u < 0.25 ? 0.0 : 1.0 / 0.75;
      ASSERT_NEAR(mask.at(i), expected, 1e-6) << "element " << i;
      zeros += mask.at(i) == 0.0;
    }
    // About a quarter dropped (binomial sd ~ 0.003).
    EXPECT_NEAR(static_cast<double>(zeros) / n, 0.25, 0.02);
  }
  // Another run counter gives another mask.
  RunContext r1{true, 1}, r2{true, 2};
  const Tensor m1 = run_ref(Op::dropout_mask, a, {Tensor::zeros({64})}, {64}, f32, r1);
  const Tensor m2 = run_ref(Op::dropout_mask, a, {Tensor::zeros({64})}, {64}, f32, r2);
  EXPECT_NE(m1.to_vector<float>(), m2.to_vector<float>());
}

// ---- losses -----------------------------------------------------------------------------

TEST(RefKernels, SoftmaxCrossEntropy) {
  // Row 0: softmax([0, ln 2]) = [1/3, 2/3], label 1: -log(2/3) = ln 1.5.
  // Row 1: softmax([0, 0]) = [1/2, 1/2], label 0: ln 2. Mean: (ln 1.5 + ln 2) / 2 = ln 3 / 2.
  for (DType dt : kFloats) {
    for (DType lt : {i32, i64}) {
      const Tensor logits = make({0, kLn2, 5, 5}, {2, 2}, dt);
      const Tensor labels = make({1, 0}, {2}, lt);
      const Tensor loss = run_ref(Op::softmax_cross_entropy, {}, {logits, labels}, {}, dt);
      expect_tensor(loss, {}, {std::log(3.0) / 2}, tolerance(dt));
    }
  }
  const Node node = make_node(Op::softmax_cross_entropy, {}, {}, f32);
  for (double bad : {2.0, -1.0}) {
    const std::vector<Tensor> inputs = {make({0, 1, 2, 3}, {2, 2}), make({0, bad}, {2}, i32)};
    Tensor out = Tensor::zeros({});
    const RunContext run;
    KernelArgs args{node, inputs, out, nullptr, run};
    expect_value_error([&] { reference_kernel(Op::softmax_cross_entropy).run(args); },
                       {kNodeName, "label " + std::to_string(static_cast<int>(bad))});
  }
}

TEST(RefKernels, MeanSquaredError) {
  // ((1-1)^2 + (2-0)^2 + (3-0)^2 + (0-1)^2) / 4 = 14 / 4.
  for (DType dt : kFloats)
    expect_tensor(run_ref(Op::mse, {},
                          {make({1, 2, 3, 0}, {2, 2}, dt), make({1, 0, 0, 1}, {2, 2}, dt)}, {}, dt),
                  {}, {3.5}, tolerance(dt));
}

TEST(RefKernels, BinaryCrossEntropyWithLogits) {
  // x = 0, y = 1: -log(sigmoid(0)) = ln 2.  x = ln 3, y = 0: -log(1 - 3/4) = ln 4.
  // x = 1000, y = 1: ~0.  x = -1000, y = 1: -log(sigmoid(-1000)) ~ 1000 (no overflow).
  for (DType dt : kFloats) {
    const Tensor x = make({0, std::log(3.0), 1000, -1000}, {4}, dt);
    const Tensor y = make({1, 0, 1, 1}, {4}, dt);
    expect_tensor(run_ref(Op::bce_with_logits, {}, {x, y}, {}, dt), {},
                  {(kLn2 + 2 * kLn2 + 0 + 1000) / 4}, tolerance(dt));
  }
}

}  // namespace
}  // namespace kiln::internal
