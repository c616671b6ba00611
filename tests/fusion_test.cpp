// The epilogue fusion pass: fused plans give the unfused results (forward and gradients),
// show the fusion in plan(), and leave values alone that something else still reads.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "kiln/kiln.hpp"

namespace kiln {
namespace {

Tensor random_tensor(const Shape& s, std::uint64_t seed) {
  Rng rng(seed);
  Tensor t = Tensor::empty(s);
  for (std::int64_t i = 0; i < t.numel(); ++i)
    t.data<float>()[i] = static_cast<float>(rng.normal());
  return t;
}

void expect_close(const Tensor& a, const Tensor& b, double tol = 1e-5) {
  ASSERT_EQ(a.shape(), b.shape());
  for (std::int64_t i = 0; i < a.numel(); ++i)
    ASSERT_NEAR(a.at(i), b.at(i), tol * std::max(1.0, std::abs(b.at(i)))) << "element " << i;
}

struct Net {
  Graph g;
  Value loss, logits, pre;
  Feeds feeds;
};

// conv (bias added by hand) -> relu -> max pool -> flatten -> dense (relu) -> dense -> CE
void build(Net& n) {
  Graph& g = n.g;
  auto x = g.input("x", {batch, 2, 6, 6});
  auto y = g.input("y", {batch}, i32);
  auto w = g.parameter("conv.w", random_tensor({4, 2, 3, 3}, 1));
  auto b = g.parameter("conv.b", random_tensor({4}, 2));
  Conv2dOptions o;
  o.padding = {1, 1};
  n.pre = add(conv2d(x, w, {}, o), reshape(b, {1, 4, 1, 1}), "conv.pre");
  auto h = flatten(max_pool2d(relu(n.pre, "conv.act")));
  auto w1 = g.parameter("fc1.w", random_tensor({36, 8}, 3));
  auto b1 = g.parameter("fc1.b", random_tensor({8}, 4));
  auto h1 = relu(add(matmul(h, w1), b1), "fc1.act");
  auto w2 = g.parameter("fc2.w", random_tensor({8, 3}, 5));
  auto b2 = g.parameter("fc2.b", random_tensor({3}, 6));
  n.logits = add(matmul(h1, w2), b2, "logits");
  n.loss = softmax_cross_entropy(n.logits, y);
  n.feeds = {{"x", random_tensor({5, 2, 6, 6}, 7)}, {"y", Tensor::from({0, 1, 2, 1, 0}, Shape{5})}};
}

TEST(Fusion, ForwardMatchesUnfusedAndShowsInThePlan) {
  Net n;
  build(n);
  Executable fused(n.g, {n.logits});
  Executable plain(n.g, {n.logits}, {.fuse = false});
  expect_close(fused.run(n.feeds)[0], plain.run(n.feeds)[0]);
  const std::string fp = fused.plan(n.feeds), pp = plain.plan(n.feeds);
  // With oneDNN the max pooling folds in as well (PoolFoldsIntoTheOnednnConvolution).
  const bool onednn = fp.find("via onednn_conv2d") != std::string::npos;
  EXPECT_NE(fp.find(onednn ? "= conv2d+bias+relu+max_pool(" : "conv.act = conv2d+bias+relu("),
            std::string::npos)
      << fp;
  EXPECT_NE(fp.find("matmul+bias+relu"), std::string::npos) << fp;
  EXPECT_NE(fp.find("logits = matmul+bias("), std::string::npos) << fp;  // no activation
  EXPECT_EQ(pp.find("+relu"), std::string::npos) << pp;
  EXPECT_EQ(pp.find("+bias"), std::string::npos) << pp;
}

TEST(Fusion, GradientsMatchUnfused) {
  Net n;
  build(n);
  auto params = n.g.parameters();
  auto grads = grad(n.loss, params);
  std::vector<Value> outs{n.loss};
  outs.insert(outs.end(), grads.begin(), grads.end());
  Executable fused(n.g, outs, {.training = true});
  Executable plain(n.g, outs, {.training = true, .fuse = false});
  const auto a = fused.run(n.feeds);
  const auto b = plain.run(n.feeds);
  for (std::size_t i = 0; i < a.size(); ++i) expect_close(a[i], b[i], 1e-4);
  const std::string plan = fused.plan(n.feeds);
  EXPECT_NE(plan.find("conv2d+bias+relu"), std::string::npos) << plan;
  EXPECT_NE(plan.find("matmul+bias+relu"), std::string::npos) << plan;
  // The ReLU's gradient folds into the pooling's backward, which reads the ReLU's output.
  EXPECT_NE(plan.find("max_pool2d_backward+relu_backward("), std::string::npos) << plan;
  EXPECT_EQ(plan.find("= relu_backward(conv.act"), std::string::npos) << plan;
  EXPECT_NE(Executable(n.g, outs, {.training = true, .backend = "reference"})
                .plan(n.feeds)
                .find("max_pool2d_backward+relu_backward("),
            std::string::npos);
}

// Inference plans of oneDNN builds fold a non-overlapping max pooling after conv2d+ReLU
// into the convolution (PostOp::relu_max_pool: pooled in oneDNN's blocked layout). The
// values are the unfused plan's, NaN and infinities included (those inputs run unfused),
// the step carries the pool's name and layer, and training plans, other backends,
// overlapping windows and a ReLU output read elsewhere keep the pooling apart.
TEST(Fusion, PoolFoldsIntoTheOnednnConvolution) {
  Net n;
  build(n);
  Executable fused(n.g, {n.logits});
  const std::string plan = fused.plan(n.feeds);
  if (plan.find("via onednn_conv2d") == std::string::npos) GTEST_SKIP() << "built without oneDNN";
  EXPECT_NE(plan.find("= conv2d+bias+relu+max_pool(x, conv.w, conv.b) [5, 4, 3, 3]"),
            std::string::npos)
      << plan;
  Executable plain(n.g, {n.logits}, {.fuse = false});
  Executable reference(n.g, {n.logits}, {.backend = "reference"});
  expect_close(fused.run(n.feeds)[0], plain.run(n.feeds)[0]);
  expect_close(fused.run(n.feeds)[0], reference.run(n.feeds)[0]);
  for (const float special : {std::nanf(""), std::numeric_limits<float>::infinity()}) {
    Feeds odd = n.feeds;
    ASSERT_EQ(odd[0].first, "x");
    odd[0].second = n.feeds[0].second.clone();
    odd[0].second.data<float>()[3] = special;
    const Tensor a = fused.run(odd)[0], b = plain.run(odd)[0];
    ASSERT_EQ(a.shape(), b.shape());
    for (std::int64_t i = 0; i < a.numel(); ++i) {
      if (std::isnan(b.at(i))) {
        EXPECT_TRUE(std::isnan(a.at(i))) << "element " << i;
      } else {
        EXPECT_NEAR(a.at(i), b.at(i), 1e-5 * std::max(1.0, std::abs(b.at(i)))) << "element " << i;
      }
    }
  }
  // Observers see the fused step as the pooling: its graph node and its value.
  struct First : RunObserver {
    std::int32_t id = -1;
    Shape shape;
    void on_step(const ObservedStep& s) override {
      if (s.index != 0) return;
      id = s.id;
      shape = s.value.shape();
    }
  } first;
  fused.run(n.feeds, &first);
  ASSERT_GE(first.id, 0);
  EXPECT_EQ(n.g.node(first.id).op, Op::max_pool2d);
  EXPECT_EQ(first.shape, (Shape{5, 4, 3, 3}));
  // Not in training, not with the Eigen kernels, not for overlapping windows.
  auto params = n.g.parameters();
  auto grads = grad(n.loss, params);
  std::vector<Value> outs{n.loss};
  outs.insert(outs.end(), grads.begin(), grads.end());
  EXPECT_EQ(Executable(n.g, outs, {.training = true}).plan(n.feeds).find("+max_pool"),
            std::string::npos);
  EXPECT_EQ(Executable(n.g, {n.logits}, {.backend = "eigen"}).plan(n.feeds).find("+max_pool"),
            std::string::npos);
  Graph g;
  auto x = g.input("x", {batch, 2, 6, 6});
  auto w = g.parameter("w", random_tensor({4, 2, 3, 3}, 1));
  auto h = relu(conv2d(x, w));
  const Feeds feeds{{"x", random_tensor({2, 2, 6, 6}, 8)}};
  const std::string overlapping =
      Executable(g, {max_pool2d(h, {.kernel = {2, 2}, .stride = {1, 1}})}).plan(feeds);
  EXPECT_EQ(overlapping.find("+max_pool"), std::string::npos) << overlapping;
  // The ReLU's output is an output too: the pooling stays apart.
  const Value pooled = max_pool2d(h);
  const std::string read_twice = Executable(g, {pooled, h}).plan(feeds);
  EXPECT_EQ(read_twice.find("+max_pool"), std::string::npos) << read_twice;
  EXPECT_NE(Executable(g, {pooled}).plan(feeds).find("conv2d+relu+max_pool"), std::string::npos);
}

TEST(Fusion, KeepsValuesSomethingElseReads) {
  Net n;
  build(n);
  // The pre-activation is an output too: the bias folds into the convolution (which then
  // computes exactly that output) but relu must stay a node of its own.
  Executable exe(n.g, {n.logits, n.pre});
  const std::string plan = exe.plan(n.feeds);
  EXPECT_NE(plan.find("conv.pre = conv2d+bias("), std::string::npos) << plan;
  EXPECT_EQ(plan.find("conv2d+bias+relu"), std::string::npos) << plan;
  EXPECT_NE(plan.find("conv.act = relu(conv.pre)"), std::string::npos) << plan;
  Executable plain(n.g, {n.logits, n.pre}, {.fuse = false});
  const auto a = exe.run(n.feeds), b = plain.run(n.feeds);
  expect_close(a[0], b[0]);
  expect_close(a[1], b[1]);
}

// ---- rnn ----
// A bias computed by a node created after the matmul (as b_ih + b_hh would be) must not be
// folded into it: nodes run in id order, so the fused matmul would read a bias not yet
// computed. A bias computed before the matmul still folds.
TEST(Fusion, BiasComputedAfterTheProducerIsNotFolded) {
  for (const bool bias_first : {false, true}) {
    Graph g;
    auto x = g.input("x", {batch, 5});
    auto w = g.parameter("w", random_tensor({5, 4}, 11));
    auto b1 = g.parameter("b1", random_tensor({4}, 12));
    auto b2 = g.parameter("b2", random_tensor({4}, 13));
    Value bias, mm;
    if (bias_first) {
      bias = add(b1, b2, "bias");
      mm = matmul(x, w);
    } else {
      mm = matmul(x, w);
      bias = add(b1, b2, "bias");
    }
    auto y = add(mm, bias, "y");
    const Feeds feeds{{"x", random_tensor({3, 5}, 14)}};
    Executable fused(g, {y});
    Executable plain(g, {y}, {.fuse = false});
    expect_close(fused.run(feeds)[0], plain.run(feeds)[0]);
    const std::string plan = fused.plan(feeds);
    EXPECT_EQ(plan.find("y = matmul+bias(") != std::string::npos, bias_first) << plan;
  }
}

// A dense layer over [B, T, F] (a batched a, a 2-D weight) is one tall product in the
// kernels: its bias and ReLU fold in as for a 2-D a, in every backend, forward and in
// training; a transposed batched a keeps its add.
TEST(Fusion, DenseOverStepsFoldsItsBiasAndRelu) {
  Graph g;
  auto x = g.input("x", {batch, 4, 6});
  auto y = g.input("y", {batch}, i32);
  auto w = g.parameter("w", random_tensor({6, 5}, 21));
  auto b = g.parameter("b", random_tensor({5}, 22));
  auto h = relu(add(matmul(x, w), b), "h");
  auto w3 = g.parameter("w3", random_tensor({5, 3}, 24));
  auto b3 = g.parameter("b3", random_tensor({3}, 25));
  auto out = add(matmul(mean(h, {1}), w3), b3, "out");
  auto loss = softmax_cross_entropy(out, y);
  auto grads = grad(loss, {w, b, w3});
  std::vector<Value> outs{loss};
  outs.insert(outs.end(), grads.begin(), grads.end());
  const Feeds feeds{{"x", random_tensor({3, 4, 6}, 26)}, {"y", Tensor::from({0, 2, 1}, Shape{3})}};
  for (const char* backend : {"", "eigen", "reference"}) {
    SCOPED_TRACE(std::string("backend '") + backend + "'");
    Executable fused(g, outs, {.training = true, .backend = backend});
    Executable plain(g, outs, {.training = true, .backend = backend, .fuse = false});
    const auto a = fused.run(feeds), p = plain.run(feeds);
    for (std::size_t i = 0; i < a.size(); ++i) expect_close(a[i], p[i], 1e-4);
    const std::string plan = fused.plan(feeds);
    EXPECT_NE(plan.find("h = matmul+bias+relu("), std::string::npos) << plan;
  }
  // transpose_a: a [B, F, T] read as [B, T, F] cannot be folded into one tall product.
  auto xt = g.input("xt", {batch, 6, 4});
  auto ht = add(matmul(xt, w, {.transpose_a = true}), b, "ht");
  const Feeds tf{{"xt", random_tensor({3, 6, 4}, 27)}};
  Executable fused(g, {ht});
  Executable plain(g, {ht}, {.fuse = false});
  expect_close(fused.run(tf)[0], plain.run(tf)[0]);
  EXPECT_EQ(fused.plan(tf).find("matmul+bias"), std::string::npos) << fused.plan(tf);
}

}  // namespace
}  // namespace kiln
