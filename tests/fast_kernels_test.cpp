// Fast kernels (Eigen, oneDNN) against the reference kernels at tile boundaries: sizes
// below, equal to and above typical vector and tile widths (1, 7, 8, 9, 15, 16, 17, 63,
// 64, 65), odd non-square shapes, batch 1, transposes, in-place runs, and sizes large
// enough to take the multi-threaded paths. Every case runs twice: as given, and with a
// NaN, a +Inf and a -Inf in its first float input (NaN must match NaN, an infinity the same
// infinity).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <numeric>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "internal/kernel.hpp"
#include "internal/op_info.hpp"
#include "kiln/core/error.hpp"
#include "kiln/core/rng.hpp"
#include "kiln/core/tensor.hpp"
#include "tests/support/kernel_test_support.hpp"

namespace kiln::internal {
namespace {

const std::int64_t kTileSizes[] = {1, 7, 8, 9, 15, 16, 17, 63, 64, 65};

using Case = kiln_test::KernelCase;
using kiln_test::accepts;
using kiln_test::find_kernel;
using kiln_test::output_of;
using kiln_test::random;
using kiln_test::random_indices;
using kiln_test::run_into;
using kiln_test::run_kernel;
using kiln_test::Tol;

/// Kernels of an op, training-only kernels (scatter_add_rows) included.
std::vector<const Kernel*> kernels_of(Op op) {
  ensure_training_kernels();
  std::vector<const Kernel*> out;
  for (const Kernel& k : kernels_for(op)) out.push_back(&k);
  return out;
}

bool have_onednn() { return find_kernel(Op::matmul, "onednn") != nullptr; }

std::string describe(const Case& c) {
  std::ostringstream s;
  s << op_name(c.op) << " inputs";
  for (const Tensor& t : c.inputs) s << " " << t.shape().str() << to_string(t.dtype());
  s << " axis=" << c.attrs.axis << " axes=[";
  for (auto a : c.attrs.axes) s << a << ",";
  s << "] ta=" << c.attrs.transpose_a << " tb=" << c.attrs.transpose_b;
  return s.str();
}

void expect_close(const Tensor& got, const Tensor& want, Tol tol, const std::string& who) {
  kiln_test::expect_close_nan_aware(got, want, tol, who);
}

/// What a case asks of the oneDNN kernel of its op (when oneDNN is built in and has one).
enum class Onednn {
  any,     ///< may decline and be unable to build
  builds,  ///< must run: accepted, or (declined by policy) forced through prepare()
};

/// Runs k through prepare() and run() even though its supports() declined (oneDNN
/// kernels decline some shapes by policy only). Returns false when it cannot build.
bool run_forced(const Kernel& k, const Case& c, Tensor& out) {
  try {
    run_into(k, c, out);
    return true;
  } catch (const Error&) {
    return false;
  }
}

void check_once(const Case& c, Tol tol, Onednn onednn, bool in_place) {
  SCOPED_TRACE(describe(c));
  const Kernel* ref = find_kernel(c.op, "reference");
  ASSERT_NE(ref, nullptr);
  ASSERT_TRUE(accepts(*ref, c));
  const Tensor want = run_kernel(*ref, c);
  const auto desc = output_of(c);
  bool ran_eigen = false, ran_onednn = false, has_onednn = false;
  for (const Kernel* k : kernels_of(c.op)) {
    const std::string_view backend = k->backend;
    if (backend == "reference") continue;
    has_onednn = has_onednn || backend == "onednn";
    std::string why;
    const bool accepted = accepts(*k, c, &why);
    if (!accepted && backend != "onednn") {
      ADD_FAILURE() << k->name << " declined: " << why;
      continue;
    }
    const std::string who = std::string(k->name) + (accepted ? "" : " (forced)");
    Tensor out = Tensor::full(desc.shape, std::nan(""), desc.dtype);
    if (accepted)
      run_into(*k, c, out);
    else if (!run_forced(*k, c, out))
      continue;
    (backend == "eigen" ? ran_eigen : ran_onednn) = true;
    expect_close(out, want, tol, who);
    if (in_place) {
      Case aliased = c;
      aliased.inputs[0] = c.inputs[0].clone();
      Tensor same = aliased.inputs[0];  // shares storage with input 0
      run_into(*k, aliased, same);
      expect_close(same, want, tol, who + " in place");
    }
  }
  EXPECT_TRUE(ran_eigen);
  if (onednn == Onednn::builds && has_onednn) {
    EXPECT_TRUE(ran_onednn);
  }
}

/// Runs every fast kernel of the case's op and compares it with the reference. The
/// Eigen kernel must accept every case given here; oneDNN kernels that decline are
/// forced through prepare() and compared when they can be built. With `in_place`, the
/// fast kernels also run with the output aliasing input 0. A float input 0 then gets a
/// NaN, a +Inf and a -Inf and every kernel must match the reference again, NaN for NaN.
void check(const Case& c, Tol tol = {}, Onednn onednn = Onednn::any, bool in_place = false) {
  check_once(c, tol, onednn, in_place);
  if (c.inputs.empty() || !is_floating(c.inputs[0].dtype()) || c.op == Op::dropout_mask) return;
  SCOPED_TRACE("with NaN, +Inf and -Inf in input 0");
  Case special = c;
  special.inputs[0] = c.inputs[0].clone();
  kiln_test::inject_nonfinite(special.inputs[0]);
  check_once(special, tol, onednn, in_place);
}

/// Attrs with only the listed fields set.
Attrs axis_attrs(std::int64_t axis) {
  Attrs a;
  a.axis = axis;
  return a;
}

// ---- coverage -----------------------------------------------------------------------------

TEST(FastKernels, EveryOpWithAKernelHasAnEigenKernelBeforeTheReference) {
  for (int i = 0; i < op_count; ++i) {
    const Op op = static_cast<Op>(i);
    if (op_info(op).has(op_leaf)) continue;
    const auto ks = kernels_of(op);
    const auto eigen = std::find_if(ks.begin(), ks.end(), [](const Kernel* k) {
      return std::string_view(k->backend) == "eigen";
    });
    const auto ref = std::find_if(ks.begin(), ks.end(), [](const Kernel* k) {
      return std::string_view(k->backend) == "reference";
    });
    ASSERT_NE(eigen, ks.end()) << op_name(op);
    ASSERT_NE(ref, ks.end()) << op_name(op);
    EXPECT_LT(eigen - ks.begin(), ref - ks.begin()) << op_name(op);
  }
}

TEST(FastKernels, OnednnCoversItsOpsWhenBuilt) {
  if (!have_onednn()) GTEST_SKIP() << "built without oneDNN";
  for (Op op : {Op::matmul, Op::leaky_relu, Op::exp, Op::log, Op::sqrt, Op::sigmoid, Op::tanh,
                Op::neg, Op::softmax, Op::log_softmax, Op::add, Op::sub, Op::mul, Op::div}) {
    const Kernel* k = find_kernel(op, "onednn");
    ASSERT_NE(k, nullptr) << op_name(op);
    EXPECT_NE(k->prepare, nullptr) << op_name(op);
  }
}

TEST(FastKernels, OnednnMatmulLeavesSmallProductsAndGemvToEigen) {
  const Kernel* k = find_kernel(Op::matmul, "onednn");
  if (k == nullptr) GTEST_SKIP() << "built without oneDNN";
  Rng rng(26);
  const auto mm = [&](Shape a, Shape b) {
    return Case{Op::matmul, {}, {random(a, rng), random(b, rng)}};
  };
  EXPECT_FALSE(accepts(*k, mm({1, 784}, {784, 128})));        // GEMV (W3)
  EXPECT_FALSE(accepts(*k, mm({32, 64}, {64, 64})));          // 2^17 multiply-adds
  EXPECT_FALSE(accepts(*k, mm({4, 1, 512}, {4, 512, 512})));  // batched GEMV
  EXPECT_TRUE(accepts(*k, mm({64, 64}, {64, 64})));           // 2^18
  EXPECT_TRUE(accepts(*k, mm({256, 784}, {784, 1024})));      // W1
  EXPECT_TRUE(accepts(*k, mm({4, 1, 512}, {512, 512})));      // batch folds into 4 rows
  // The eigen kernel is next in line for what oneDNN leaves.
  EXPECT_TRUE(accepts(*find_kernel(Op::matmul, "eigen"), mm({1, 784}, {784, 128})));
}

TEST(FastKernels, DeclineOtherDtypes) {
  Rng rng(1);
  const Case c{Op::relu, {}, {random({9}, rng).to(f64)}};
  for (const Kernel* k : kernels_of(Op::relu)) {
    if (std::string_view(k->backend) == "reference") continue;
    std::string why;
    EXPECT_FALSE(accepts(*k, c, &why)) << k->name;
    EXPECT_FALSE(why.empty()) << k->name;
  }
  const Case mm{Op::matmul, {}, {random({7, 9}, rng).to(f64), random({9, 8}, rng).to(f64)}};
  for (const Kernel* k : kernels_of(Op::matmul))
    if (std::string_view(k->backend) != "reference") {
      EXPECT_FALSE(accepts(*k, mm)) << k->name;
    }
}

// ---- matmul -------------------------------------------------------------------------------

Tol matmul_tol(std::int64_t k) { return {1e-5, 2e-6 * static_cast<double>(k + 1)}; }

TEST(FastKernels, MatmulTileBoundaries) {
  Rng rng(2);
  const std::int64_t ms[] = {1, 7, 8, 9, 16, 17, 65};
  const std::int64_t ns[] = {1, 8, 15, 64, 65};
  const std::int64_t ks[] = {1, 9, 16, 63};
  for (auto m : ms)
    for (auto n : ns)
      for (auto k : ks)
        for (int t = 0; t < 4; ++t) {
          Attrs at;
          at.transpose_a = (t & 1) != 0;
          at.transpose_b = (t & 2) != 0;
          const Shape as = at.transpose_a ? Shape{k, m} : Shape{m, k};
          const Shape bs = at.transpose_b ? Shape{n, k} : Shape{k, n};
          check({Op::matmul, at, {random(as, rng), random(bs, rng)}}, matmul_tol(k),
                Onednn::builds);
        }
}

TEST(FastKernels, MatmulLargeOddShapes) {
  Rng rng(3);
  for (int t = 0; t < 4; ++t) {
    Attrs at;
    at.transpose_a = (t & 1) != 0;
    at.transpose_b = (t & 2) != 0;
    const std::int64_t m = 129, k = 257, n = 131;
    const Shape as = at.transpose_a ? Shape{k, m} : Shape{m, k};
    const Shape bs = at.transpose_b ? Shape{n, k} : Shape{k, n};
    check({Op::matmul, at, {random(as, rng), random(bs, rng)}}, matmul_tol(k), Onednn::builds);
  }
}

TEST(FastKernels, MatmulBatched) {
  Rng rng(4);
  const std::int64_t batches[] = {1, 3};
  const std::int64_t sizes[][3] = {{1, 1, 1}, {7, 9, 8}, {17, 16, 15}, {64, 65, 63}};
  for (auto b : batches)
    for (const auto& mkn : sizes)
      for (int t = 0; t < 4; ++t)
        for (bool shared_b : {false, true}) {
          const std::int64_t m = mkn[0], k = mkn[1], n = mkn[2];
          Attrs at;
          at.transpose_a = (t & 1) != 0;
          at.transpose_b = (t & 2) != 0;
          const Shape as = at.transpose_a ? Shape{b, k, m} : Shape{b, m, k};
          Shape bs = at.transpose_b ? Shape{n, k} : Shape{k, n};
          if (!shared_b) bs = Shape{b, bs[0], bs[1]};
          check({Op::matmul, at, {random(as, rng), random(bs, rng)}}, matmul_tol(k),
                Onednn::builds);
        }
  // Rank 4 with two batch dims, and many small products (the per-thread batch path).
  check({Op::matmul, {}, {random({2, 3, 7, 9}, rng), random({2, 3, 9, 5}, rng)}}, matmul_tol(9),
        Onednn::builds);
  Attrs ta;
  ta.transpose_a = true;
  check({Op::matmul, ta, {random({64, 17, 9}, rng), random({17, 33}, rng)}}, matmul_tol(17),
        Onednn::builds);
  // A batched a with a 2-D b and the fused bias [N] (and ReLU): one tall product.
  for (bool relu : {false, true})
    for (bool tb : {false, true}) {
      Attrs ep;
      ep.post_op = relu ? PostOp::relu : PostOp::none;
      ep.transpose_b = tb;
      check({Op::matmul,
             ep,
             {random({4, 33, 20}, rng), random(tb ? Shape{17, 20} : Shape{20, 17}, rng),
              random({17}, rng)}},
            matmul_tol(20), Onednn::builds);
    }
}

// One row times a matrix (batch-1 dense layers): the Eigen kernel's row product, at widths
// around its vector and tile sizes (16 and 128 columns with AVX-512, fewer elsewhere), with
// and without the fused bias and ReLU. b ends where its std::vector ends, so a read past
// b is caught by AddressSanitizer in the asan preset.
TEST(FastKernels, MatmulOneRowEveryWidth) {
  Rng rng(5);
  for (std::int64_t n : {1, 3, 4, 5, 8, 10, 15, 16, 17, 31, 33, 127, 128, 129, 130, 144, 300})
    for (std::int64_t k : {1, 2, 3, 4, 5, 8, 13, 100})
      for (int epilogue = 0; epilogue < 3; ++epilogue) {
        const Tensor dense = random({k, n}, rng);
        std::vector<float> storage = dense.to_vector<float>();
        const Tensor b = Tensor::borrow(storage.data(), {k, n}, f32);
        Case c{Op::matmul, {}, {random({1, k}, rng), b}};
        if (epilogue > 0) c.inputs.push_back(random({n}, rng));
        if (epilogue == 2) c.attrs.post_op = PostOp::relu;
        check(c, matmul_tol(k), Onednn::any);
      }
}

TEST(FastKernels, MatmulEmptyInnerDimGivesZeros) {
  // A sum over nothing: every output element is 0 (the reference declines empty inputs).
  const Case c{Op::matmul, {}, {Tensor::zeros({7, 0}), Tensor::zeros({0, 9})}};
  const Tensor out = run_kernel(*find_kernel(Op::matmul, "eigen"), c);
  ASSERT_EQ(out.shape(), Shape({7, 9}));
  for (float v : out.to_vector<float>()) EXPECT_EQ(v, 0.0f);
}

// ---- elementwise --------------------------------------------------------------------------

/// Sizes at vector/tile boundaries, around oneDNN's small-tensor cut-off (4096) and large
/// enough for the threaded path.
std::vector<Shape> elementwise_shapes() {
  std::vector<Shape> shapes;
  for (auto n : kTileSizes) shapes.push_back({n});
  for (std::int64_t n : {4095, 4096, 4097, 4111, 70001}) shapes.push_back({n});
  shapes.push_back({7, 9});
  shapes.push_back({1, 65, 63});
  return shapes;
}

TEST(FastKernels, UnaryOps) {
  Rng rng(6);
  for (Op op : {Op::neg, Op::exp, Op::relu, Op::sigmoid, Op::tanh, Op::step, Op::leaky_relu}) {
    for (const Shape& s : elementwise_shapes()) {
      Attrs at;
      at.alpha = 0.1f;
      check({op, at, {random(s, rng, -6.0, 6.0)}}, {2e-6, 2e-6}, Onednn::builds, true);
    }
  }
  // oneDNN's log is accurate to about 3e-6 absolute (not relative) near log(1) = 0.
  for (const Shape& s : elementwise_shapes()) {
    check({Op::sqrt, {}, {random(s, rng, 0.01, 5.0)}}, {2e-6, 2e-6}, Onednn::builds, true);
    check({Op::log, {}, {random(s, rng, 0.01, 5.0)}}, {2e-6, 1e-5}, Onednn::builds, true);
  }
}

TEST(FastKernels, BinaryOps) {
  Rng rng(7);
  for (Op op : {Op::add, Op::sub, Op::mul, Op::div})
    for (const Shape& s : elementwise_shapes()) {
      Tensor b = op == Op::div ? random(s, rng, 0.5, 2.0) : random(s, rng);
      check({op, {}, {random(s, rng), b}}, {2e-6, 1e-7}, Onednn::builds, true);
    }
}

TEST(FastKernels, EqualMatchesOnSharedValues) {
  Rng rng(8);
  for (const Shape& s : elementwise_shapes()) {
    Tensor a = random(s, rng);
    std::vector<float> bv = a.to_vector<float>();
    for (std::size_t i = 0; i < bv.size(); i += 3) bv[i] += 1.0f;  // every third differs
    check({Op::equal, {}, {a, Tensor::from(bv, s)}}, {0, 0}, Onednn::any, true);
  }
}

// ---- softmax ------------------------------------------------------------------------------

TEST(FastKernels, SoftmaxInnermostAxis) {
  Rng rng(9);
  for (Op op : {Op::softmax, Op::log_softmax}) {
    // oneDNN's log_softmax inherits its log's ~3e-6 absolute error.
    const Tol tol = op == Op::log_softmax ? Tol{1e-5, 1e-5} : Tol{1e-5, 1e-6};
    for (auto n : kTileSizes)
      for (std::int64_t rows : {1, 3})
        check({op, axis_attrs(1), {random({rows, n}, rng, -8.0, 8.0)}}, tol, Onednn::builds, true);
    // Sizes where oneDNN takes over, and the threaded path.
    check({op, axis_attrs(1), {random({64, 65}, rng, -8.0, 8.0)}}, tol, Onednn::builds, true);
    check({op, axis_attrs(2), {random({3, 9, 1000}, rng, -8.0, 8.0)}}, tol, Onednn::builds, true);
    check({op, axis_attrs(1), {random({2000, 17}, rng, -8.0, 8.0)}}, tol, Onednn::builds, true);
  }
}

TEST(FastKernels, SoftmaxOuterAxes) {
  Rng rng(10);
  for (Op op : {Op::softmax, Op::log_softmax}) {
    for (auto n : kTileSizes) {
      check({op, axis_attrs(1), {random({2, n, 7}, rng, -8.0, 8.0)}}, {1e-5, 1e-6}, Onednn::any,
            true);
      check({op, axis_attrs(0), {random({n, 9}, rng, -8.0, 8.0)}}, {1e-5, 1e-6}, Onednn::any, true);
    }
    check({op, axis_attrs(1), {random({3, 5, 1}, rng)}}, {1e-5, 1e-6}, Onednn::any, true);
    check({op, axis_attrs(0), {random({300, 257}, rng, -8.0, 8.0)}}, {1e-5, 1e-6}, Onednn::any,
          true);
  }
}

// ---- reductions ---------------------------------------------------------------------------

Attrs reduce_attrs(std::vector<std::int64_t> axes, bool keepdims) {
  Attrs a;
  a.axes = std::move(axes);
  a.keepdims = keepdims;
  return a;
}

/// Every non-empty sorted subset of [0, rank).
std::vector<std::vector<std::int64_t>> axis_subsets(std::size_t rank) {
  std::vector<std::vector<std::int64_t>> out;
  for (unsigned mask = 1; mask < (1u << rank); ++mask) {
    std::vector<std::int64_t> axes;
    for (std::size_t d = 0; d < rank; ++d)
      if (mask & (1u << d)) axes.push_back(static_cast<std::int64_t>(d));
    out.push_back(axes);
  }
  return out;
}

TEST(FastKernels, ReductionsOverEveryAxisSubset) {
  Rng rng(11);
  const Shape shapes[] = {{7, 9, 17}, {1, 65, 1, 8}, {16, 1, 15}, {64, 63}};
  for (Op op : {Op::sum, Op::mean, Op::max})
    for (const Shape& s : shapes)
      for (const auto& axes : axis_subsets(s.rank()))
        for (bool keep : {false, true})
          check({op, reduce_attrs(axes, keep), {random(s, rng)}}, {1e-5, 1e-5});
}

TEST(FastKernels, ReductionsOfRowsAndColumnsTakeThreadedPaths) {
  Rng rng(12);
  for (Op op : {Op::sum, Op::mean, Op::max}) {
    for (std::int64_t axis : {0, 1}) {
      check({op, reduce_attrs({axis}, false), {random({300, 257}, rng)}}, {1e-5, 1e-5});
      check({op, reduce_attrs({axis}, true), {random({65, 4097}, rng)}}, {1e-5, 1e-5});
    }
    check({op, reduce_attrs({0, 1}, false), {random({300, 257}, rng)}}, {1e-5, 1e-4});
    check({op, reduce_attrs({0, 2}, false), {random({9, 1000, 17}, rng)}}, {1e-5, 1e-4});
  }
}

// ---- data movement ------------------------------------------------------------------------

TEST(FastKernels, TransposeEveryPermutation) {
  Rng rng(13);
  const Shape shapes[] = {{7, 9, 17}, {16, 1, 65}, {8, 15, 64}, {1, 1, 9}};
  for (const Shape& s : shapes) {
    std::vector<std::int64_t> perm = {0, 1, 2};
    do {
      Attrs at;
      at.axes = perm;
      check({Op::transpose, at, {random(s, rng)}}, {0, 0});
    } while (std::next_permutation(perm.begin(), perm.end()));
  }
}

TEST(FastKernels, TransposeMatricesAroundTheTile) {
  Rng rng(14);
  for (auto r : kTileSizes)
    for (auto c : {std::int64_t{1}, std::int64_t{15}, std::int64_t{16}, std::int64_t{17},
                   std::int64_t{65}}) {
      Attrs at;
      at.axes = {1, 0};
      check({Op::transpose, at, {random({r, c}, rng)}}, {0, 0});
    }
  Attrs at;
  at.axes = {1, 0};
  check({Op::transpose, at, {random({300, 257}, rng)}}, {0, 0});  // threaded
  at.axes = {0, 2, 1};
  check({Op::transpose, at, {random({40, 33, 65}, rng)}}, {0, 0});
}

TEST(FastKernels, TransposeRank5Permutations) {
  Rng rng(15);
  const Shape s{4, 1, 9, 8, 3};
  std::vector<std::int64_t> perm = {0, 1, 2, 3, 4};
  int i = 0;
  do {
    if (i++ % 7 != 0) continue;  // a spread of the 120 permutations
    Attrs at;
    at.axes = perm;
    check({Op::transpose, at, {random(s, rng)}}, {0, 0});
  } while (std::next_permutation(perm.begin(), perm.end()));
}

TEST(FastKernels, Reshape) {
  Rng rng(16);
  Attrs at;
  at.axes = {9, 7};
  check({Op::reshape, at, {random({7, 9}, rng)}}, {0, 0});
  at.axes = {65, 64, 17};
  check({Op::reshape, at, {random({17, 64, 65}, rng)}}, {0, 0});
}

TEST(FastKernels, ExpandAndExpandMean) {
  Rng rng(17);
  struct Ex {
    Shape from, to;
  };
  const Ex cases[] = {{{1, 9, 1}, {7, 9, 17}}, {{7, 1}, {7, 65}},        {{1}, {65}},
                      {{1, 1, 1}, {3, 1, 5}},  {{7, 9, 17}, {7, 9, 17}}, {{16, 1, 8}, {16, 9, 8}},
                      {{1, 17}, {64, 17}},     {{1, 300}, {300, 300}},   {{1, 1}, {1, 1}}};
  for (const Ex& e : cases)
    for (bool mean : {false, true}) {
      Attrs at;
      at.axes = e.to.dims();
      at.mean = mean;
      check({Op::expand, at, {random(e.from, rng)}}, {1e-6, 1e-7});
    }
  // A -1 target dim taken from `like`.
  Attrs at;
  at.axes = {-1, 9};
  check({Op::expand, at, {random({1, 9}, rng), random({15, 3}, rng)}}, {0, 0});
}

TEST(FastKernels, ConcatAlongEveryAxis) {
  Rng rng(18);
  for (std::int64_t axis = 0; axis < 3; ++axis)
    for (auto n : {std::int64_t{1}, std::int64_t{8}, std::int64_t{17}}) {
      Shape a{7, 9, 16}, b{7, 9, 16}, c{7, 9, 16};
      b[static_cast<std::size_t>(axis)] = n;
      c[static_cast<std::size_t>(axis)] = 65;
      check({Op::concat, axis_attrs(axis), {random(a, rng), random(b, rng), random(c, rng)}},
            {0, 0});
    }
  check({Op::concat, axis_attrs(0), {random({5}, rng)}}, {0, 0});
  check({Op::concat, axis_attrs(1), {random({300, 100}, rng), random({300, 157}, rng)}}, {0, 0});
}

TEST(FastKernels, SliceAndPadAlongEveryAxis) {
  Rng rng(19);
  const Shape s{9, 17, 16};
  for (std::int64_t axis = 0; axis < 3; ++axis) {
    const std::int64_t n = s[static_cast<std::size_t>(axis)];
    for (auto [start, stop] :
         {std::pair<std::int64_t, std::int64_t>{0, n}, {0, 1}, {1, n - 1}, {n - 1, n}, {3, 8}}) {
      Attrs at = axis_attrs(axis);
      at.start = start;
      at.stop = stop;
      check({Op::slice, at, {random(s, rng)}}, {0, 0});
      check({Op::pad, at, {random(s, rng)}}, {0, 0});  // start before, stop after
    }
  }
  Attrs at = axis_attrs(1);
  at.start = 7;
  at.stop = 250;
  check({Op::slice, at, {random({300, 257}, rng)}}, {0, 0});
  check({Op::pad, at, {random({300, 257}, rng)}}, {0, 0});
}

// ---- indexing -----------------------------------------------------------------------------

template <class Fn>
void expect_value_error_naming_node(Fn&& fn, const std::string& index) {
  try {
    fn();
    ADD_FAILURE() << "expected kiln::ValueError";
  } catch (const ValueError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("node_under_test"), std::string::npos) << msg;
    EXPECT_NE(msg.find(index), std::string::npos) << msg;
  }
}

TEST(FastKernels, GatherRows) {
  Rng rng(20);
  for (DType dt : {i32, i64})
    for (auto width : {std::int64_t{1}, std::int64_t{9}, std::int64_t{64}, std::int64_t{65}}) {
      check({Op::gather, {}, {random({17, width}, rng), random_indices({3, 5}, 17, dt, rng)}},
            {0, 0});
    }
  check({Op::gather, {}, {random({17}, rng), random_indices({9}, 17, i32, rng)}}, {0, 0});
  check({Op::gather, {}, {random({100, 3, 5}, rng), random_indices({2000}, 100, i64, rng)}},
        {0, 0});
  const Kernel* k = find_kernel(Op::gather, "eigen");
  const Case bad{Op::gather, {}, {random({4, 3}, rng), Tensor::from<std::int32_t>({0, 4}, {2})}};
  expect_value_error_naming_node([&] { run_kernel(*k, bad); }, "4");
  const Case neg{Op::gather, {}, {random({4, 3}, rng), Tensor::from<std::int64_t>({-1}, {1})}};
  expect_value_error_naming_node([&] { run_kernel(*k, neg); }, "-1");
}

TEST(FastKernels, OneHot) {
  Rng rng(21);
  for (DType dt : {i32, i64})
    for (auto depth : kTileSizes) {
      Attrs at;
      at.size = depth;
      check({Op::one_hot, at, {random_indices({3, 7}, depth, dt, rng)}}, {0, 0});
    }
  Attrs at;
  at.size = 9;
  const Case bad{Op::one_hot, at, {Tensor::from<std::int32_t>({1, 9}, {2})}};
  expect_value_error_naming_node([&] { run_kernel(*find_kernel(Op::one_hot, "eigen"), bad); }, "9");
}

TEST(FastKernels, ScatterAddRowsWithRepeatedIndices) {
  Rng rng(22);
  for (DType dt : {i32, i64})
    for (auto width : {std::int64_t{1}, std::int64_t{8}, std::int64_t{17}, std::int64_t{1000}}) {
      Attrs at;
      at.size = 13;
      // 40 indices into 13 rows: plenty of repeats.
      check({Op::scatter_add_rows,
             at,
             {random_indices({5, 8}, 13, dt, rng), random({5, 8, width}, rng)}},
            {1e-5, 1e-6});
    }
  Attrs at;
  at.size = 50;
  check({Op::scatter_add_rows, at, {random_indices({300}, 50, i32, rng), random({300, 257}, rng)}},
        {1e-5, 1e-6});
  at.size = 3;
  const Case bad{
      Op::scatter_add_rows, at, {Tensor::from<std::int64_t>({0, 3}, {2}), random({2, 4}, rng)}};
  expect_value_error_naming_node(
      [&] { run_kernel(*find_kernel(Op::scatter_add_rows, "eigen"), bad); }, "3");
}

TEST(FastKernels, DropoutMaskMatchesTheReferenceBitForBit) {
  Rng rng(23);
  for (float p : {0.0f, 0.1f, 0.5f, 0.9f, 0.999f})
    for (std::int64_t n : {1, 17, 65, 70001}) {
      Attrs at;
      at.alpha = p;
      at.seed = 1234;
      for (bool training : {false, true}) {
        RunContext run;
        run.training = training;
        run.counter = 7;
        check({Op::dropout_mask, at, {random({n}, rng)}, run}, {0, 0});
      }
    }
}

// ---- fused losses -------------------------------------------------------------------------

TEST(FastKernels, SoftmaxCrossEntropy) {
  Rng rng(24);
  for (DType dt : {i32, i64})
    for (std::int64_t n : {1, 7, 65, 3000})
      for (std::int64_t c : {1, 9, 16, 17, 1000}) {
        if (n * c > 1'000'000) continue;
        check({Op::softmax_cross_entropy,
               {},
               {random({n, c}, rng, -6.0, 6.0), random_indices({n}, c, dt, rng)}},
              {1e-5, 1e-5});
      }
  const Case bad{Op::softmax_cross_entropy,
                 {},
                 {random({2, 3}, rng), Tensor::from<std::int32_t>({0, -2}, {2})}};
  expect_value_error_naming_node(
      [&] { run_kernel(*find_kernel(Op::softmax_cross_entropy, "eigen"), bad); }, "-2");
}

// relu_backward's loop: lengths around the vector width and past the threading grain; y
// with exact zeros and -0 (gradient 0), gy with NaN and infinities (NaN * 0 stays NaN, as
// in the reference's gy * step(y)); check() adds NaN and infinities to y as well.
TEST(FastKernels, ReluBackwardEveryLength) {
  Rng rng(31);
  for (std::int64_t n : {1, 15, 16, 17, 33, 1000, 70001}) {
    Tensor y = random({n}, rng), gy = random({n}, rng);
    float* yp = y.data<float>();
    float* gp = gy.data<float>();
    for (std::int64_t i = 0; i < n; i += 7) yp[i] = i % 2 == 0 ? 0.0f : -0.0f;
    for (std::int64_t i = 3; i < n; i += 11)
      gp[i] = i % 3 == 0 ? std::nanf("") : std::numeric_limits<float>::infinity();
    check({Op::relu_backward, {}, {y, gy}}, {0.0, 0.0}, Onednn::any, /*in_place=*/true);
  }
}

TEST(FastKernels, MseAndBceWithLogits) {
  Rng rng(25);
  for (const Shape& s : elementwise_shapes()) {
    check({Op::mse, {}, {random(s, rng), random(s, rng)}}, {1e-5, 1e-7});
    check({Op::bce_with_logits, {}, {random(s, rng, -20.0, 20.0), random(s, rng, 0.0, 1.0)}},
          {1e-5, 1e-7});
  }
}

// ---- layer norm ----------------------------------------------------------------------------
// layer_norm and layer_norm_backward, with and without gamma (and beta), over rows of every
// tile size, rows of 1 element (var = 0: y = beta), rows large enough for the threaded
// path, and constant rows (var = 0 again: the centred row must be exact zeros), in place.

std::vector<Tensor> layer_norm_inputs(const Tensor& x, bool affine, bool backward, Rng& rng) {
  const std::int64_t d = x.shape()[x.shape().rank() - 1];
  std::vector<Tensor> in{x};
  if (affine) in.push_back(random({d}, rng, -2.0, 2.0));
  if (affine && !backward) in.push_back(random({d}, rng));
  if (backward) in.push_back(random(x.shape(), rng));
  return in;
}

void check_layer_norm(const Tensor& x, Rng& rng, float eps = 1e-5f) {
  Attrs a;
  a.eps = eps;
  for (bool affine : {false, true}) {
    SCOPED_TRACE(affine ? "with gamma" : "without gamma");
    check({Op::layer_norm, a, layer_norm_inputs(x, affine, false, rng)}, {2e-5, 2e-6, true},
          Onednn::any, true);
    check({Op::layer_norm_backward, a, layer_norm_inputs(x, affine, true, rng)}, {5e-5, 2e-6, true},
          Onednn::any, true);
  }
}

TEST(FastKernels, LayerNormRowsOfEverySize) {
  Rng rng(26);
  for (auto d : kTileSizes)
    for (std::int64_t rows : {1, 3}) check_layer_norm(random({rows, d}, rng, -4.0, 4.0), rng);
  check_layer_norm(random({2, 3, 1000}, rng, -4.0, 4.0), rng);
  check_layer_norm(random({300, 257}, rng, -4.0, 4.0), rng);  // threaded
  check_layer_norm(random({4000, 16}, rng, -4.0, 4.0), rng);  // threaded, short rows
  // Rows far from zero: the mean must not swamp the spread.
  Tensor shifted = random({5, 64}, rng, 99.0, 101.0);
  check_layer_norm(shifted, rng);
}

TEST(FastKernels, LayerNormOfConstantRowsIsExactlyBeta) {
  Rng rng(27);
  for (std::int64_t d : {1, 3, 7, 64, 1000}) {
    std::vector<float> xs(static_cast<std::size_t>(4 * d));
    for (std::size_t i = 0; i < xs.size(); ++i) xs[i] = 0.1f * static_cast<float>(i / d) - 0.7f;
    const Tensor x = Tensor::from(xs, {4, d});
    check_layer_norm(x, rng);
    check_layer_norm(x, rng, 0.5f);
    const Tensor gamma = random({d}, rng), beta = random({d}, rng);
    Attrs a;
    const Case c{Op::layer_norm, a, {x, gamma, beta}};
    const Tensor y = run_kernel(*find_kernel(Op::layer_norm, "eigen"), c);
    const auto got = y.to_vector<float>(), want = beta.to_vector<float>();
    for (std::size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], want[i % want.size()]) << i;
  }
}

// ---- rnn ----
// lstm, gru and their backward ops at sizes where the oneDNN kernels take the step product
// (B 16, H 64: 16 x 64 x 256 multiply-adds per LSTM step; the GRU's 16 x 64 x 192 falls
// under the policy's floor and is forced through prepare()), against the reference: all
// steps, per-row lengths (a row of none, a row of all) and reverse. The backward ops read
// y as the forward op packed it (the reference's), so they run without check()'s
// non-finite round: a NaN at a padded step of y is read by some kernels and not others
// (the state a padded step holds is also the initial state).
TEST(FastKernels, RecurrentOpsOverTheStepProduct) {
  Rng rng(15);
  const std::int64_t nb = 16, steps = 5, hid = 64;
  std::vector<std::int64_t> len(static_cast<std::size_t>(nb));
  for (std::int64_t b = 0; b < nb; ++b) len[static_cast<std::size_t>(b)] = b % (steps + 1);
  len[1] = steps;
  const Tensor lengths = Tensor::from(len, {nb});
  const Kernel* ref_lstm = find_kernel(Op::lstm, "reference");
  const Kernel* ref_gru = find_kernel(Op::gru, "reference");
  ASSERT_TRUE(ref_lstm != nullptr && ref_gru != nullptr);
  for (bool with_lengths : {false, true})
    for (bool reverse : {false, true}) {
      SCOPED_TRACE(std::string("lengths ") + (with_lengths ? "yes" : "no") + ", reverse " +
                   (reverse ? "yes" : "no"));
      Attrs a;
      a.reverse = reverse;
      auto with = [&](std::vector<Tensor> in) {
        if (with_lengths) in.push_back(lengths);
        return in;
      };
      const Tensor h0 = random({nb, hid}, rng), c0 = random({nb, hid}, rng);
      const Tensor lw = random({4 * hid, hid}, rng, -0.2, 0.2);
      const Tensor gw = random({3 * hid, hid}, rng, -0.2, 0.2);
      const Case lstm{Op::lstm, a, with({random({nb, steps, 4 * hid}, rng), lw, h0, c0})};
      const Case gru{Op::gru, a,
                     with({random({nb, steps, 3 * hid}, rng), gw, random({3 * hid}, rng), h0})};
      check(lstm, matmul_tol(hid), Onednn::builds);
      check(gru, matmul_tol(hid), Onednn::builds);
      const Tensor ly = run_kernel(*ref_lstm, lstm), gy = run_kernel(*ref_gru, gru);
      check_once({Op::lstm_backward, a, with({ly, random(ly.shape(), rng), lw, h0, c0})},
                 matmul_tol(4 * hid), Onednn::builds, false);
      check_once({Op::gru_backward, a, with({gy, random(gy.shape(), rng), gw, h0})},
                 matmul_tol(3 * hid), Onednn::builds, false);
    }
}

// ---- attention ----
// attention's fast kernels (Eigen; oneDNN's dnnl_sgemm products, which take heads of
// 64 x 64 x 64 and up and are forced through the small ones) against the reference: no
// mask, a key mask with a row of no keys, causal, both, and a given scale.
TEST(FastKernels, AttentionWithMasksAndScales) {
  Rng rng(16);
  const std::int64_t shapes[][4] = {{2, 2, 64, 64}, {3, 1, 7, 9}, {1, 2, 65, 33}};  // B N T d
  for (const auto& sh : shapes) {
    const std::int64_t nb = sh[0], heads = sh[1], t = sh[2], d = sh[3];
    std::vector<float> keep(static_cast<std::size_t>(nb * t), 1.0f);
    for (std::int64_t j = 0; j < t; ++j) keep[static_cast<std::size_t>(j)] = 0.0f;  // row 0: none
    for (std::int64_t j = 0; j < t; j += 3) keep[static_cast<std::size_t>((nb - 1) * t + j)] = 0.0f;
    const Tensor mask = Tensor::from(keep, {nb, t});
    for (bool with_mask : {false, true})
      for (bool causal : {false, true})
        for (float scale : {0.0f, 0.3f}) {
          SCOPED_TRACE("mask " + std::to_string(with_mask) + " causal " + std::to_string(causal) +
                       " scale " + std::to_string(scale));
          Attrs a;
          a.causal = causal;
          a.alpha = scale;
          std::vector<Tensor> in{random({nb, heads, t, d}, rng), random({nb, heads, t, d}, rng),
                                 random({nb, heads, t, d + 3}, rng)};
          if (with_mask) in.push_back(mask);
          check({Op::attention, a, in}, matmul_tol(std::max(d, t)), Onednn::builds);
        }
  }
}

}  // namespace
}  // namespace kiln::internal
