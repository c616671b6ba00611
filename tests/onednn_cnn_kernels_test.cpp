// oneDNN kernels of the CNN ops (conv2d, conv_transpose2d, conv2d_backward_weights,
// pooling and its backward, batch_norm and its backward) and matmul's fused bias + ReLU,
// against the reference kernels (or hand computations) on odd shapes: non-square, stride
// 2, padding, dilation 2, groups 2, depthwise, batch 1, output_padding, bias + ReLU. Also
// the running-statistics update of batch_norm, and queries the kernels must decline.
// Skipped when Kiln is built without oneDNN.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
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

using Case = kiln_test::KernelCase;
using kiln_test::accepts;
using kiln_test::find_kernel;
using kiln_test::make_node;
using kiln_test::output_of;
using kiln_test::random;

bool have_onednn() { return find_kernel(Op::matmul, "onednn") != nullptr; }

#define SKIP_WITHOUT_ONEDNN() \
  if (!have_onednn()) GTEST_SKIP() << "built without oneDNN"

/// Runs k (prepare once, then `runs` runs) on copies of the inputs, which are returned in
/// *inputs (batch_norm updates its running statistics in place); the output starts as NaN.
Tensor run_on_copies(const Kernel& k, const Case& c, std::vector<Tensor>* inputs = nullptr,
                     int runs = 1) {
  std::vector<Tensor> in;
  for (const Tensor& t : c.inputs) in.push_back(t.clone());
  const TensorDesc desc = output_of(c);
  const Node n = make_node(c.op, c.attrs, desc.shape, desc.dtype);
  const auto in_descs = kiln_test::descs_of(in);
  std::shared_ptr<void> state = k.prepare ? k.prepare(KernelQuery{n, in_descs, desc}) : nullptr;
  Tensor out = Tensor::full(desc.shape, std::nan(""), desc.dtype);
  for (int i = 0; i < runs; ++i) {
    KernelArgs args{n, in, out, state.get(), c.run};
    k.run(args);
  }
  if (inputs != nullptr) *inputs = in;
  return out;
}

/// got == want within rel * (largest finite |want|, at least 1e-3) elementwise; NaN
/// matches only NaN, an infinity only the same infinity.
void expect_close(const Tensor& got, const Tensor& want, const std::string& who,
                  double rel = 1e-4) {
  const double largest = std::max(1e-3, kiln_test::max_abs_finite(want));
  kiln_test::expect_close_nan_aware(got, want, {0.0, rel * largest}, who);
}

/// The oneDNN kernel must accept the case and match the reference kernel.
void check_once(const Case& c, const std::string& label) {
  SCOPED_TRACE(label + " " + std::string(op_name(c.op)) + " out " + output_of(c).shape.str());
  const Kernel* ref = find_kernel(c.op, "reference");
  const Kernel* fast = find_kernel(c.op, "onednn");
  ASSERT_NE(ref, nullptr) << "no reference kernel";
  ASSERT_NE(fast, nullptr) << "no onednn kernel (training-only ops: is "
                              "register_onednn_training_kernels called by kiln's autodiff?)";
  std::string why;
  ASSERT_TRUE(accepts(*fast, c, &why)) << fast->name << " declined: " << why;
  const Tensor want = run_on_copies(*ref, c);
  expect_close(run_on_copies(*fast, c), want, fast->name);
  // Prepared state reused over runs gives the same result.
  expect_close(run_on_copies(*fast, c, nullptr, 2), want, std::string(fast->name) + " 2nd run");
}

/// check_once as given, then with a NaN, a +Inf and a -Inf in input 0.
void check(const Case& c, const std::string& label) {
  check_once(c, label);
  Case special = kiln_test::clone_inputs(c);
  kiln_test::inject_nonfinite(special.inputs[0]);
  check_once(special, label + " with NaN, +Inf and -Inf in input 0");
}

Attrs conv_attrs(Pair stride, Pair padding, Pair dilation = {1, 1}, std::int64_t groups = 1,
                 PostOp post = PostOp::none) {
  Attrs a;
  a.stride = stride;
  a.padding = padding;
  a.dilation = dilation;
  a.groups = groups;
  a.post_op = post;
  return a;
}

struct ConvSpec {
  const char* label;
  Shape x, w;
  Attrs attrs;
  bool bias;
};

std::vector<ConvSpec> conv_specs() {
  return {
      {"non-square stride (2,1) pad (1,0)",
       {2, 3, 7, 5},
       {4, 3, 3, 2},
       conv_attrs({2, 1}, {1, 0}),
       false},
      {"dilation 2, bias, relu",
       {1, 2, 9, 8},
       {3, 2, 3, 3},
       conv_attrs({1, 1}, {2, 1}, {2, 2}, 1, PostOp::relu),
       true},
      {"groups 2, bias", {2, 4, 6, 7}, {6, 2, 3, 3}, conv_attrs({1, 1}, {1, 1}, {1, 1}, 2), true},
      {"depthwise stride 2, bias, relu",
       {2, 5, 8, 6},
       {5, 1, 3, 3},
       conv_attrs({2, 2}, {1, 1}, {1, 1}, 5, PostOp::relu),
       true},
      {"batch 1, 1x1", {1, 3, 4, 4}, {2, 3, 1, 1}, conv_attrs({1, 1}, {0, 0}), false},
      {"W2 conv1 (batch 3)",
       {3, 1, 28, 28},
       {32, 1, 5, 5},
       conv_attrs({1, 1}, {2, 2}, {1, 1}, 1, PostOp::relu),
       true},
      {"W2 conv2 (batch 2)", {2, 32, 14, 14}, {64, 32, 5, 5}, conv_attrs({1, 1}, {2, 2}), true},
  };
}

TEST(OnednnCnnKernels, Conv2dMatchesReference) {
  SKIP_WITHOUT_ONEDNN();
  Rng rng(11);
  for (const ConvSpec& s : conv_specs()) {
    Case c{Op::conv2d, s.attrs, {random(s.x, rng), random(s.w, rng)}};
    if (s.bias) c.inputs.push_back(random(Shape{s.w[0]}, rng));
    check(c, s.label);
  }
}

// conv2d with the fused ReLU and max pooling of inference plans (PostOp::relu_max_pool):
// the convolution and pooling in oneDNN's blocked layout against the reference's conv,
// ReLU and pooling, for 2x2 and 3x3 windows, sizes the windows do not divide (the last
// rows and columns dropped), groups, strides and the W2 layers; check() adds NaN and
// infinities, which run unfused (NaN-keeping pooling).
TEST(OnednnCnnKernels, Conv2dWithTheFusedPoolingMatchesReference) {
  SKIP_WITHOUT_ONEDNN();
  Rng rng(16);
  for (const ConvSpec& s : conv_specs())
    for (std::int64_t window : {2, 3}) {
      Attrs a = s.attrs;
      a.post_op = PostOp::relu_max_pool;
      a.kernel = {window, window};
      Case c{Op::conv2d, a, {random(s.x, rng), random(s.w, rng)}};
      if (s.bias) c.inputs.push_back(random(Shape{s.w[0]}, rng));
      Attrs unpooled = s.attrs;
      unpooled.post_op = PostOp::none;
      const Shape y = output_of({Op::conv2d, unpooled, c.inputs}).shape;
      if (y[2] < window || y[3] < window) continue;
      check(c, std::string(s.label) + ", pooled " + std::to_string(window) + "x" +
                   std::to_string(window));
    }
}

// Weights marked constant (an inference plan compiled with constant_parameters): the
// reorder into oneDNN's blocked layout runs on the first run and is kept. A change made in
// place is therefore not seen (that is the promise the flag makes), while a new storage is
// reordered again. For conv2d with and without the fused pooling and conv_transpose2d.
TEST(OnednnCnnKernels, ConstantWeightsAreReorderedOnceUntilTheirStorageChanges) {
  SKIP_WITHOUT_ONEDNN();
  Rng rng(17);
  Attrs pooled = conv_attrs({1, 1}, {2, 2}, {1, 1}, 1, PostOp::relu_max_pool);
  pooled.kernel = {2, 2};
  Attrs transposed = conv_attrs({2, 2}, {1, 1});
  transposed.output_padding = {1, 1};
  const Case cases[] = {
      {Op::conv2d,
       conv_attrs({1, 1}, {2, 2}, {1, 1}, 1, PostOp::relu),
       {random({2, 32, 14, 14}, rng), random({64, 32, 5, 5}, rng), random(Shape{64}, rng)}},
      {Op::conv2d, pooled, {random({2, 3, 9, 8}, rng), random({4, 3, 3, 3}, rng)}},
      {Op::conv_transpose2d, transposed, {random({2, 3, 4, 5}, rng), random({3, 4, 3, 3}, rng)}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(op_name(c.op)) + " w " + c.inputs[1].shape().str());
    const Kernel* fast = find_kernel(c.op, "onednn");
    const Kernel* ref = find_kernel(c.op, "reference");
    ASSERT_NE(fast, nullptr);
    ASSERT_NE(ref, nullptr);
    std::vector<Tensor> in;
    for (const Tensor& t : c.inputs) in.push_back(t.clone());
    const TensorDesc desc = output_of(c);
    const Node n = make_node(c.op, c.attrs, desc.shape, desc.dtype);
    auto in_descs = kiln_test::descs_of(in);
    for (std::size_t i = 1; i < in_descs.size(); ++i) in_descs[i].constant = true;
    const std::shared_ptr<void> state = fast->prepare(KernelQuery{n, in_descs, desc});
    const auto run = [&] {
      Tensor out = Tensor::full(desc.shape, std::nan(""), desc.dtype);
      fast->run(KernelArgs{n, in, out, state.get(), c.run});
      return out;
    };
    const Tensor first = run_on_copies(*ref, c);
    expect_close(run(), first, "first run");
    expect_close(run(), first, "second run");
    // Changed in place: the kept blocked copy is still used.
    Case changed = kiln_test::clone_inputs(c);
    changed.inputs[1] = random(c.inputs[1].shape(), rng);
    in[1].copy_from(changed.inputs[1]);
    expect_close(run(), first, "in-place change");
    // A new storage holding the changed weights is reordered again.
    in[1] = changed.inputs[1].clone();
    expect_close(run(), run_on_copies(*ref, changed), "new storage");
  }
}

TEST(OnednnCnnKernels, Conv2dBackwardWeightsMatchesReference) {
  SKIP_WITHOUT_ONEDNN();
  Rng rng(12);
  for (const ConvSpec& s : conv_specs()) {
    Attrs a = s.attrs;
    a.post_op = PostOp::none;
    const Case fwd{Op::conv2d, a, {random(s.x, rng), random(s.w, rng)}};
    a.kernel = {s.w[2], s.w[3]};
    check({Op::conv2d_backward_weights, a, {fwd.inputs[0], random(output_of(fwd).shape, rng)}},
          s.label);
  }
}

TEST(OnednnCnnKernels, ConvTranspose2dMatchesReference) {
  SKIP_WITHOUT_ONEDNN();
  Rng rng(13);
  struct Spec {
    const char* label;
    Shape x, w;
    Attrs attrs;
    Pair output_padding;
    bool bias;
  };
  const Spec specs[] = {
      {"stride 2 pad 1 output_padding 1, bias",
       {2, 3, 4, 5},
       {3, 4, 3, 3},
       conv_attrs({2, 2}, {1, 1}),
       {1, 1},
       true},
      {"non-square stride (2,1), groups 2",
       {1, 4, 5, 3},
       {4, 3, 3, 2},
       conv_attrs({2, 1}, {0, 1}, {1, 1}, 2),
       {1, 0},
       false},
      {"dilation 2", {2, 2, 4, 3}, {2, 3, 3, 2}, conv_attrs({1, 2}, {2, 1}, {2, 2}), {0, 1}, false},
      {"depthwise, bias, relu",
       {2, 3, 5, 5},
       {3, 1, 3, 3},
       conv_attrs({2, 2}, {1, 1}, {1, 1}, 3, PostOp::relu),
       {0, 0},
       true},
      {"batch 1", {1, 2, 3, 3}, {2, 2, 2, 2}, conv_attrs({1, 1}, {0, 0}), {0, 0}, false},
      {"W2 conv2 backward data",
       {2, 64, 14, 14},
       {64, 32, 5, 5},
       conv_attrs({1, 1}, {2, 2}),
       {0, 0},
       false},
  };
  // output_padding >= stride (allowed as it is < dilation): accepted and right, or declined.
  {
    Attrs a = conv_attrs({1, 1}, {1, 1}, {2, 2});
    a.output_padding = {1, 0};
    const Case c{Op::conv_transpose2d, a, {random({1, 2, 4, 4}, rng), random({2, 2, 3, 3}, rng)}};
    std::string why;
    if (accepts(*find_kernel(c.op, "onednn"), c, &why))
      check(c, "output_padding >= stride");
    else
      EXPECT_FALSE(why.empty());
  }
  for (const Spec& s : specs) {
    Attrs a = s.attrs;
    a.output_padding = s.output_padding;
    Case c{Op::conv_transpose2d, a, {random(s.x, rng), random(s.w, rng)}};
    if (s.bias) c.inputs.push_back(random(Shape{s.w[1] * a.groups}, rng));
    check(c, s.label);
  }
}

Attrs pool_attrs(Pair kernel, Pair stride, Pair padding, bool include_pad = true) {
  Attrs a;
  a.kernel = kernel;
  a.stride = stride;
  a.padding = padding;
  a.include_pad = include_pad;
  return a;
}

struct PoolSpec {
  const char* label;
  Shape x;
  Attrs attrs;
};

std::vector<PoolSpec> pool_specs() {
  return {
      {"3x2 window stride 2 pad 1", {2, 3, 7, 6}, pool_attrs({3, 2}, {2, 2}, {1, 1})},
      {"2x2 stride 1, W2's planes", {3, 32, 28, 28}, pool_attrs({2, 2}, {1, 1}, {0, 0})},
      {"batch 1, overlapping 3x3 stride 1 pad (1,0)",
       {1, 2, 5, 7},
       pool_attrs({3, 3}, {1, 1}, {1, 0})},
      {"exclude padding, odd size", {2, 3, 9, 5}, pool_attrs({3, 3}, {2, 1}, {1, 1}, false)},
  };
}

/// Values on a coarse grid, half of them clamped to 0 (as after a ReLU): many ties.
Tensor with_ties(const Shape& shape, Rng& rng) {
  std::vector<float> v(static_cast<std::size_t>(shape.numel()));
  for (auto& x : v) x = std::max(0.0f, static_cast<float>(std::floor(rng.uniform(-3.0, 3.0))));
  return Tensor::from(v, shape);
}

TEST(OnednnCnnKernels, PoolingMatchesReference) {
  SKIP_WITHOUT_ONEDNN();
  Rng rng(14);
  for (const PoolSpec& s : pool_specs())
    for (Op op : {Op::max_pool2d, Op::avg_pool2d}) {
      const Case c{op, s.attrs, {random(s.x, rng)}};
      check(c, s.label);
      if (op == Op::max_pool2d) check({op, s.attrs, {with_ties(s.x, rng)}}, "ties");
      const Shape y = output_of(c).shape;
      const Op back = op == Op::max_pool2d ? Op::max_pool2d_backward : Op::avg_pool2d_backward;
      check({back, s.attrs, {c.inputs[0], random(y, rng)}}, s.label);
      if (op == Op::max_pool2d)  // the first maximum of a window gets the gradient
        check({back, s.attrs, {with_ties(s.x, rng), random(y, rng)}}, "ties");
    }
}

TEST(OnednnCnnKernels, TwoByTwoStrideTwoMaxPoolingIsLeftToEigen) {
  // The Eigen kernels run it faster (kernels/onednn/pool.cpp); average pooling stays here.
  SKIP_WITHOUT_ONEDNN();
  Rng rng(15);
  const Attrs a = pool_attrs({2, 2}, {2, 2}, {0, 0});
  const Tensor x = random(Shape{2, 32, 28, 28}, rng), gy = random(Shape{2, 32, 14, 14}, rng);
  std::string why;
  EXPECT_FALSE(accepts(*find_kernel(Op::max_pool2d, "onednn"), {Op::max_pool2d, a, {x}}, &why));
  EXPECT_NE(why.find("eigen kernel is faster"), std::string::npos) << why;
  EXPECT_FALSE(accepts(*find_kernel(Op::max_pool2d_backward, "onednn"),
                       {Op::max_pool2d_backward, a, {x, gy}}, &why));
  EXPECT_TRUE(accepts(*find_kernel(Op::avg_pool2d, "onednn"), {Op::avg_pool2d, a, {x}}, &why))
      << why;
  EXPECT_TRUE(accepts(*find_kernel(Op::avg_pool2d_backward, "onednn"),
                      {Op::avg_pool2d_backward, a, {x, gy}}, &why))
      << why;
}

/// Batch statistics in double: per channel mean and biased variance over N (H, W).
void channel_stats(const Tensor& x, std::vector<double>& mean, std::vector<double>& var) {
  const Shape& s = x.shape();
  const std::int64_t n = s[0], c = s[1], inner = s.numel() / (n * c);
  const auto v = x.to_vector<float>();
  mean.assign(static_cast<std::size_t>(c), 0.0);
  var.assign(static_cast<std::size_t>(c), 0.0);
  for (std::int64_t ch = 0; ch < c; ++ch) {
    double sum = 0.0, sq = 0.0;
    for (std::int64_t b = 0; b < n; ++b)
      for (std::int64_t k = 0; k < inner; ++k) {
        const double e = v[static_cast<std::size_t>((b * c + ch) * inner + k)];
        sum += e;
        sq += e * e;
      }
    const double count = static_cast<double>(n * inner);
    mean[static_cast<std::size_t>(ch)] = sum / count;
    var[static_cast<std::size_t>(ch)] = sq / count - (sum / count) * (sum / count);
  }
}

Case batch_norm_case(const Shape& x, Rng& rng, bool training) {
  const Shape c{x[1]};
  Attrs a;
  a.eps = 1e-3f;
  a.momentum = 0.25f;
  return {Op::batch_norm,
          a,
          {random(x, rng, -2.0, 3.0), random(c, rng, 0.5, 1.5), random(c, rng), random(c, rng),
           random(c, rng, 0.5, 2.0)},
          RunContext{training, 0}};
}

TEST(OnednnCnnKernels, BatchNormMatchesReferenceAndUpdatesRunningStats) {
  SKIP_WITHOUT_ONEDNN();
  Rng rng(15);
  for (const Shape& x : {Shape{4, 3, 5, 2}, Shape{6, 5}, Shape{1, 2, 3, 3}}) {
    for (bool training : {false, true}) {
      const Case c = batch_norm_case(x, rng, training);
      check(c, std::string(training ? "training " : "inference ") + x.str());
      const Kernel* fast = find_kernel(Op::batch_norm, "onednn");
      ASSERT_NE(fast, nullptr);
      std::vector<Tensor> after;
      run_on_copies(*fast, c, &after);
      const auto rm0 = c.inputs[3].to_vector<float>(), rv0 = c.inputs[4].to_vector<float>();
      const auto rm = after[3].to_vector<float>(), rv = after[4].to_vector<float>();
      if (!training) {  // nothing updated
        EXPECT_EQ(rm, rm0);
        EXPECT_EQ(rv, rv0);
        continue;
      }
      std::vector<double> mean, var;
      channel_stats(c.inputs[0], mean, var);
      const double n = static_cast<double>(x.numel() / x[1]), m = 0.25;
      for (std::size_t i = 0; i < rm.size(); ++i) {
        EXPECT_NEAR(rm[i], (1 - m) * rm0[i] + m * mean[i], 1e-5) << "running_mean " << i;
        EXPECT_NEAR(rv[i], (1 - m) * rv0[i] + m * var[i] * n / (n - 1), 1e-5)
            << "running_var " << i;
      }
    }
  }
}

TEST(OnednnCnnKernels, BatchNormTrainingOnOneValuePerChannelThrows) {
  SKIP_WITHOUT_ONEDNN();
  Rng rng(16);
  const Case c = batch_norm_case(Shape{1, 3}, rng, true);
  const Kernel* fast = find_kernel(Op::batch_norm, "onednn");
  ASSERT_NE(fast, nullptr);
  EXPECT_THROW(run_on_copies(*fast, c), ValueError);
  Case inference = c;
  inference.run.training = false;
  check(inference, "inference [1, 3]");
}

TEST(OnednnCnnKernels, BatchNormBackwardMatchesReference) {
  SKIP_WITHOUT_ONEDNN();
  Rng rng(17);
  Attrs a;
  a.eps = 1e-3f;
  for (const Shape& x : {Shape{4, 3, 5, 2}, Shape{6, 5}, Shape{2, 16, 7, 7}}) {
    const Shape c{x[1]};
    check({Op::batch_norm_backward,
           a,
           {random(x, rng, -2.0, 3.0), random(c, rng, 0.5, 1.5), random(x, rng)}},
          x.str());
  }
}

/// out = post_op(a.b + bias), computed here in double (transposes as in matmul).
Tensor matmul_by_hand(const Tensor& a, const Tensor& b, const Tensor& bias, bool ta, bool relu) {
  const std::int64_t m = ta ? a.dim(1) : a.dim(0), k = ta ? a.dim(0) : a.dim(1), n = b.dim(1);
  const auto av = a.to_vector<float>(), bv = b.to_vector<float>(), cv = bias.to_vector<float>();
  std::vector<float> out(static_cast<std::size_t>(m * n));
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j) {
      double s = cv[static_cast<std::size_t>(j)];
      for (std::int64_t p = 0; p < k; ++p)
        s += static_cast<double>(av[static_cast<std::size_t>(ta ? p * m + i : i * k + p)]) *
             bv[static_cast<std::size_t>(p * n + j)];
      out[static_cast<std::size_t>(i * n + j)] = static_cast<float>(relu ? std::max(0.0, s) : s);
    }
  return Tensor::from(out, Shape{m, n});
}

TEST(OnednnCnnKernels, MatmulBiasAndReluPostOp) {
  SKIP_WITHOUT_ONEDNN();
  Rng rng(18);
  const Kernel* fast = find_kernel(Op::matmul, "onednn");
  ASSERT_NE(fast, nullptr);
  for (bool ta : {false, true})
    for (PostOp post : {PostOp::none, PostOp::relu}) {
      Attrs a;
      a.transpose_a = ta;
      a.post_op = post;
      const Case c{Op::matmul,
                   a,
                   {random(ta ? Shape{90, 70} : Shape{70, 90}, rng), random(Shape{90, 80}, rng),
                    random(Shape{80}, rng)}};
      std::string why;
      ASSERT_TRUE(accepts(*fast, c, &why)) << why;
      const Tensor want =
          matmul_by_hand(c.inputs[0], c.inputs[1], c.inputs[2], ta, post == PostOp::relu);
      expect_close(run_on_copies(*fast, c), want, ta ? "matmul ta" : "matmul");
    }
}

/// A query built by hand (shapes the shape rules would reject are fine here).
bool declines(Op op, const Attrs& attrs, std::vector<TensorDesc> in, TensorDesc out) {
  const Kernel* fast = find_kernel(op, "onednn");
  if (fast == nullptr) return true;
  const Node n = make_node(op, attrs, out.shape, out.dtype);
  std::string why;
  const bool ok = fast->supports(KernelQuery{n, in, out}, &why);
  EXPECT_FALSE(why.empty() && !ok) << op_name(op) << " declined without a reason";
  return !ok;
}

TEST(OnednnCnnKernels, UnsupportedQueriesAreDeclined) {
  SKIP_WITHOUT_ONEDNN();
  const Attrs conv = conv_attrs({1, 1}, {0, 0});
  // f64 tensors.
  EXPECT_TRUE(
      declines(Op::conv2d, conv, {{{1, 2, 5, 5}, f64}, {{3, 2, 3, 3}, f64}}, {{1, 3, 3, 3}, f64}));
  // 3-D x.
  EXPECT_TRUE(declines(Op::conv2d, conv, {{{2, 5, 5}}, {{3, 2, 3, 3}}}, {{1, 3, 3, 3}}));
  // Weights that do not fit the groups, output of the wrong size.
  EXPECT_TRUE(declines(Op::conv2d, conv_attrs({1, 1}, {0, 0}, {1, 1}, 2),
                       {{{1, 4, 5, 5}}, {{3, 2, 3, 3}}}, {{1, 3, 3, 3}}));
  EXPECT_TRUE(declines(Op::conv2d, conv, {{{1, 2, 5, 5}}, {{3, 2, 3, 3}}}, {{1, 3, 4, 4}}));
  // An unknown post-op.
  Attrs odd = conv;
  odd.post_op = static_cast<PostOp>(7);
  EXPECT_TRUE(declines(Op::conv2d, odd, {{{1, 2, 5, 5}}, {{3, 2, 3, 3}}}, {{1, 3, 3, 3}}));
  // Pooling padding above kernel/2, and a 3-D x.
  EXPECT_TRUE(declines(Op::max_pool2d, pool_attrs({2, 2}, {1, 1}, {2, 2}), {{{1, 1, 4, 4}}},
                       {{1, 1, 7, 7}}));
  EXPECT_TRUE(
      declines(Op::avg_pool2d, pool_attrs({2, 2}, {2, 2}, {0, 0}), {{{1, 4, 4}}}, {{1, 2, 2}}));
  // batch_norm on 3-D x, and with a gamma of the wrong size.
  EXPECT_TRUE(
      declines(Op::batch_norm, Attrs{}, {{{2, 3, 4}}, {{3}}, {{3}}, {{3}}, {{3}}}, {{2, 3, 4}}));
  EXPECT_TRUE(declines(Op::batch_norm, Attrs{}, {{{2, 3}}, {{2}}, {{3}}, {{3}}, {{3}}}, {{2, 3}}));
  // matmul bias of the wrong size, or with a batched a that is not one tall product (a
  // transposed a; a batched b).
  Attrs mm;
  EXPECT_TRUE(declines(Op::matmul, mm, {{{128, 128}}, {{128, 128}}, {{127}}}, {{128, 128}}));
  EXPECT_FALSE(declines(Op::matmul, mm, {{{4, 128, 128}}, {{128, 128}}, {{128}}}, {{4, 128, 128}}));
  Attrs mm_ta;
  mm_ta.transpose_a = true;
  EXPECT_TRUE(
      declines(Op::matmul, mm_ta, {{{4, 128, 128}}, {{128, 128}}, {{128}}}, {{4, 128, 128}}));
  EXPECT_TRUE(
      declines(Op::matmul, mm, {{{4, 128, 128}}, {{4, 128, 128}}, {{128}}}, {{4, 128, 128}}));
}

}  // namespace
}  // namespace kiln::internal
