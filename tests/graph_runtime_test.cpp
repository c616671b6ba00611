// Graph construction, shape inference, DOT export and the Executable (pruning, plan cache,
// dynamic batch, views, dropout modes).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "kiln/kiln.hpp"

namespace kiln {
namespace {

TEST(Graph, InfersShapesWithTheBatchDimension) {
  Graph g;
  auto x = g.input("x", {batch, 4});
  auto w = g.parameter("w", Tensor::zeros({4, 3}));
  auto b = g.parameter("b", Tensor::zeros({3}));
  auto y = add(matmul(x, w), b, "y");
  EXPECT_EQ(y.shape(), (Shape{batch, 3}));
  EXPECT_EQ(sum(y, {1}).shape(), (Shape{batch}));
  EXPECT_EQ(mean(y).shape(), (Shape{}));
  EXPECT_EQ(transpose(y).shape(), (Shape{3, batch}));
  EXPECT_EQ(reshape(y, {-1, 1, 3}).shape(), (Shape{batch, 1, 3}));
  EXPECT_EQ(g.find("y"), y);
  EXPECT_EQ(g.parameters().size(), 2u);
  EXPECT_EQ(g.inputs().size(), 1u);
}

TEST(Graph, DotExportNamesEveryNode) {
  Graph g;
  auto x = g.input("pixels", {batch, 2});
  auto y = relu(x, "act");
  (void)y;
  const std::string dot = g.to_dot();
  EXPECT_NE(dot.find("digraph"), std::string::npos);
  EXPECT_NE(dot.find("pixels"), std::string::npos);
  EXPECT_NE(dot.find("act\\nrelu [batch, 2]"), std::string::npos);
  EXPECT_NE(dot.find("n0 -> n1"), std::string::npos);
}

TEST(Executable, ComputesAndCachesOnePlanPerBatchSize) {
  Graph g;
  auto x = g.input("x", {batch, 2});
  auto w = g.parameter("w", Tensor::from({1.f, 2.f, 3.f, 4.f}, Shape{2, 2}));
  auto y = matmul(x, w);
  Executable exe(g, {y});
  auto r1 = exe.run({{"x", Tensor::from({1.f, 1.f}, Shape{1, 2})}});
  EXPECT_EQ(r1[0].to_vector<float>(), (std::vector<float>{4, 6}));
  auto r3 = exe.run({{"x", Tensor::from({1.f, 0.f, 0.f, 1.f, 2.f, 2.f}, Shape{3, 2})}});
  EXPECT_EQ(r3[0].to_vector<float>(), (std::vector<float>{1, 2, 3, 4, 8, 12}));
  exe.run({{"x", Tensor::from({5.f, 5.f}, Shape{1, 2})}});
  EXPECT_EQ(exe.cached_plans(), 2u);
  // Parameters are read at run time: an in-place update is seen by the next run.
  g.tensor(w).data<float>()[0] = 10.f;
  auto r = exe.run({{"x", Tensor::from({1.f, 0.f}, Shape{1, 2})}});
  EXPECT_EQ(r[0].to_vector<float>(), (std::vector<float>{10, 2}));
}

// CompileOptions::constant_parameters: the same values as a plain executable, at two batch
// sizes (two plans); with oneDNN, whose convolution and matmul keep their weights packed,
// an in-place change is not seen (the promise the option makes) and a new tensor is.
TEST(Executable, ConstantParametersKeepPackedWeightsUntilTheirStorageChanges) {
  Graph g;
  Rng rng(5);
  const auto random = [&](const Shape& s) {
    Tensor t = Tensor::empty(s);
    for (std::int64_t i = 0; i < t.numel(); ++i)
      t.data<float>()[i] = static_cast<float>(rng.normal());
    return t;
  };
  auto x = g.input("x", {batch, 3, 8, 8});
  auto cw = g.parameter("conv.w", random({8, 3, 3, 3}));
  auto h = flatten(relu(conv2d(x, cw, {}, {.padding = {1, 1}})));
  auto w = g.parameter("fc.w", random({512, 64}));
  auto b = g.parameter("fc.b", random({64}));
  auto y = add(matmul(h, w), b);
  Executable plain(g, {y});
  Executable frozen(g, {y}, {.constant_parameters = true});
  const auto close = [](const Tensor& got, const Tensor& want) {
    ASSERT_EQ(got.shape(), want.shape());
    for (std::int64_t i = 0; i < got.numel(); ++i)
      ASSERT_NEAR(got.at(i), want.at(i), 1e-4 * std::max(1.0, std::abs(want.at(i))))
          << "element " << i;
  };
  const Feeds feeds16{{"x", random({16, 3, 8, 8})}}, feeds3{{"x", random({3, 3, 8, 8})}};
  const Tensor before = plain.run(feeds16)[0];
  close(frozen.run(feeds16)[0], before);
  close(frozen.run(feeds3)[0], plain.run(feeds3)[0]);
  close(frozen.run(feeds16)[0], before);
  const std::string packed_plan = frozen.plan(feeds16);
  const bool onednn = packed_plan.find("via onednn_conv2d") != std::string::npos &&
                      packed_plan.find("via onednn_matmul") != std::string::npos;
  // In place: plain executables see it; the packed weights are kept.
  Tensor changed_cw = random(g.tensor(cw).shape()), changed_w = random(g.tensor(w).shape());
  g.tensor(cw).copy_from(changed_cw);
  g.tensor(w).copy_from(changed_w);
  const Tensor after = plain.run(feeds16)[0];
  if (onednn) close(frozen.run(feeds16)[0], before);
  // New storage: packed again, at both batch sizes.
  g.tensor(cw) = changed_cw;
  g.tensor(w) = changed_w;
  close(frozen.run(feeds16)[0], after);
  close(frozen.run(feeds3)[0], plain.run(feeds3)[0]);
}

TEST(Executable, PrunesWhatOutputsDoNotNeed) {
  Graph g;
  auto x = g.input("x", {batch, 2});
  auto unused = g.input("unused", {batch, 2});
  auto y = relu(x);
  auto z = exp(unused);
  (void)z;
  Executable exe(g, {y});
  // 'unused' need not be fed: nothing the output needs reads it.
  auto r = exe.run({{"x", Tensor::from({-1.f, 2.f}, Shape{1, 2})}});
  EXPECT_EQ(r[0].to_vector<float>(), (std::vector<float>{0, 2}));
  const std::string plan = exe.plan({{"x", Tensor::from({-1.f, 2.f}, Shape{1, 2})}});
  EXPECT_NE(plan.find("relu"), std::string::npos);
  EXPECT_EQ(plan.find("exp"), std::string::npos);
}

TEST(Executable, ViewsAreReusedCopiesAreNot) {
  Graph g;
  auto x = g.input("x", {2});
  auto y = mul(x, 2.0);
  Executable exe(g, {y});
  auto views = exe.run_views({{"x", Tensor::from({1.f, 2.f}, Shape{2})}});
  Tensor kept = views[0].clone();
  auto copies = exe.run({{"x", Tensor::from({1.f, 2.f}, Shape{2})}});
  exe.run_views({{"x", Tensor::from({5.f, 6.f}, Shape{2})}});
  EXPECT_EQ(kept.to_vector<float>(), (std::vector<float>{2, 4}));
  EXPECT_EQ(copies[0].to_vector<float>(), (std::vector<float>{2, 4}));
}

// How many times `what` occurs in `text`.
std::size_t occurrences(const std::string& text, const std::string& what) {
  std::size_t count = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++count;
  return count;
}

TEST(Executable, AReshapeOfAComputedValueIsAViewThatKeepsItsMemoryAlive) {
  // a's block must outlive the reshape step: r (a view of it) is read at the end, after
  // c, d and e (each a's size) were placed while a's own last reader was the reshape.
  Graph g;
  auto x = g.input("x", {4, 6});
  auto a = relu(x);
  auto r = reshape(a, Shape{6, 4});
  auto c = exp(x);
  auto d = mul(c, 2.0);
  auto e = add(d, 1.0);
  auto out = add(e, reshape(r, Shape{4, 6}));
  Executable exe(g, {out, r});
  std::vector<float> xs(24);
  for (std::size_t i = 0; i < xs.size(); ++i) xs[i] = static_cast<float>(i) * 0.25f - 2.0f;
  const Feeds feeds{{"x", Tensor::from(xs, Shape{4, 6})}};
  const auto got = exe.run(feeds);
  ASSERT_EQ(got[1].shape(), (Shape{6, 4}));
  for (std::size_t i = 0; i < xs.size(); ++i) {
    const float relu_x = std::max(xs[i], 0.0f);
    EXPECT_FLOAT_EQ(got[0].to_vector<float>()[i], std::exp(xs[i]) * 2.0f + 1.0f + relu_x) << i;
    EXPECT_EQ(got[1].to_vector<float>()[i], relu_x) << i;
  }
  // Both reshapes are views (no copy); a reshape of a graph input is still a copy.
  const std::string plan = exe.plan(feeds);
  EXPECT_EQ(occurrences(plan, "a view of its input"), 2u) << plan;
}

TEST(Executable, ASliceThatIsOneAlignedBlockIsAViewToo) {
  // x [4, 16] f32: a row is 64 bytes. Rows 1-2 of a (and row 1 of those) are contiguous,
  // aligned blocks: views; a column block, or a block starting mid-row, is copied.
  Graph g;
  auto x = g.input("x", {4, 16});
  auto a = relu(x);
  auto rows = slice(a, 0, 1, 3);    // view at 64 bytes
  auto row = slice(rows, 0, 1, 2);  // view of the view: a's row 2, at 128 bytes
  auto cols = slice(a, 1, 0, 8);    // not contiguous: a copy
  auto shifted = slice(reshape(a, Shape{64}), 0, 3, 19);  // 12 bytes in: a copy
  auto later = mul(exp(x), 3.0);  // placed while a must stay alive for the views
  auto out = add(sum(later), add(sum(row), add(sum(cols), sum(shifted))));
  Executable exe(g, {out, rows, row});
  std::vector<float> xs(64);
  for (std::size_t i = 0; i < xs.size(); ++i) xs[i] = static_cast<float>(i % 9) * 0.5f - 1.5f;
  const Feeds feeds{{"x", Tensor::from(xs, Shape{4, 16})}};
  const auto got = exe.run(feeds);
  auto relu_at = [&](std::size_t i) { return std::max(xs[i], 0.0f); };
  double want = 0.0;
  for (std::size_t i = 0; i < 64; ++i) want += 3.0 * std::exp(static_cast<double>(xs[i]));
  for (std::size_t j = 0; j < 16; ++j) want += relu_at(32 + j);
  for (std::size_t r = 0; r < 4; ++r)
    for (std::size_t j = 0; j < 8; ++j) want += relu_at(r * 16 + j);
  for (std::size_t i = 3; i < 19; ++i) want += relu_at(i);
  EXPECT_NEAR(got[0].to_vector<float>()[0], want, 1e-3 * std::abs(want));
  for (std::size_t i = 0; i < 32; ++i) EXPECT_EQ(got[1].to_vector<float>()[i], relu_at(16 + i));
  for (std::size_t i = 0; i < 16; ++i) EXPECT_EQ(got[2].to_vector<float>()[i], relu_at(32 + i));
  const std::string plan = exe.plan(feeds);
  EXPECT_EQ(occurrences(plan, "slice: a view of its input"), 2u) << plan;
}

TEST(Executable, DropoutOnlyInTraining) {
  Graph g;
  auto x = g.input("x", {1000});
  auto y = dropout(x, 0.25f, 7);
  Tensor ones = Tensor::full({1000}, 1.0);
  Executable eval(g, {y});
  EXPECT_EQ(eval.run({{"x", ones}})[0].to_vector<float>(), ones.to_vector<float>());
  Executable train(g, {y}, {.training = true});
  const auto a = train.run({{"x", ones}})[0].to_vector<float>();
  const auto b = train.run({{"x", ones}})[0].to_vector<float>();
  int zeros = 0;
  for (float v : a) {
    EXPECT_TRUE(v == 0.0f || std::abs(v - 1.0f / 0.75f) < 1e-6f);
    zeros += v == 0.0f;
  }
  EXPECT_NEAR(zeros, 250, 60);
  EXPECT_NE(a, b);  // a new mask every run
  Executable again(g, {y}, {.training = true});
  EXPECT_EQ(again.run({{"x", ones}})[0].to_vector<float>(), a);  // seeded
}

TEST(Executable, TrainsALinearModelWithGrad) {
  // Least squares on y = 3x - 1: plain gradient descent through the public API.
  Graph g;
  auto x = g.input("x", {batch, 1});
  auto t = g.input("t", {batch, 1});
  auto w = g.parameter("w", Tensor::zeros({1, 1}));
  auto b = g.parameter("b", Tensor::zeros({1}));
  auto loss = mse(add(matmul(x, w), b), t);
  auto grads = grad(loss, {w, b});
  Executable step(g, {loss, grads[0], grads[1]}, {.training = true});
  std::vector<float> xs, ts;
  for (int i = 0; i < 16; ++i) {
    xs.push_back(static_cast<float>(i) / 8.0f - 1.0f);
    ts.push_back(3.0f * xs.back() - 1.0f);
  }
  Feeds feeds{{"x", Tensor::from(xs, {16, 1})}, {"t", Tensor::from(ts, {16, 1})}};
  float first = 0, last = 0;
  for (int it = 0; it < 500; ++it) {
    auto out = step.run_views(feeds);
    if (it == 0) first = static_cast<float>(out[0].item());
    last = static_cast<float>(out[0].item());
    g.tensor(w).data<float>()[0] -= 0.5f * out[1].data<float>()[0];
    g.tensor(b).data<float>()[0] -= 0.5f * out[2].data<float>()[0];
  }
  EXPECT_LT(last, first * 1e-4f);
  EXPECT_NEAR(g.tensor(w).data<float>()[0], 3.0f, 1e-3f);
  EXPECT_NEAR(g.tensor(b).data<float>()[0], -1.0f, 1e-3f);
}

TEST(Autodiff, UnrelatedParameterGetsZeroGradient) {
  Graph g;
  auto x = g.parameter("x", Tensor::full({3}, 2.0));
  auto z = g.parameter("z", Tensor::full({2, 2}, 5.0));
  auto loss = sum(mul(x, x));
  auto grads = grad(loss, {x, z});
  Executable exe(g, grads);
  auto r = exe.run({});
  EXPECT_EQ(r[0].to_vector<float>(), (std::vector<float>{4, 4, 4}));
  EXPECT_EQ(r[1].to_vector<float>(), (std::vector<float>{0, 0, 0, 0}));
}

// The gradient of a value read through slices that tile an axis (the q, k and v of one
// projection) is the concat of the slices' gradients, not a sum of zero-padded copies; slices
// that overlap or leave a gap still sum their paddings. Values against the closed form.
TEST(Autodiff, SlicesThatTileAnAxisGetTheConcatOfTheirGradients) {
  struct Case {
    std::vector<std::pair<std::int64_t, std::int64_t>> ranges;
    bool concat;
  };
  const Case cases[] = {{{{2, 4}, {0, 2}, {4, 6}}, true},  // tiles, used out of order
                        {{{0, 3}, {2, 6}}, false},         // overlap
                        {{{0, 2}, {3, 6}}, false},         // gap
                        {{{0, 6}}, false}};                // one slice: its padding alone
  for (const Case& c : cases) {
    Graph g;
    std::vector<float> xs(12);
    for (std::size_t i = 0; i < xs.size(); ++i) xs[i] = 0.5f * static_cast<float>(i) - 1.0f;
    auto x = g.parameter("x", Tensor::from(xs, Shape{2, 6}));
    Value loss;
    std::vector<float> want(12, 0.0f);
    for (std::size_t k = 0; k < c.ranges.size(); ++k) {
      const auto [start, stop] = c.ranges[k];
      const double scale = static_cast<double>(k + 2);
      const Value piece = slice(x, 1, start, stop);
      Value term = sum(mul(mul(piece, piece), scale));
      loss = loss.valid() ? add(loss, term) : term;
      for (std::int64_t r = 0; r < 2; ++r)
        for (std::int64_t j = start; j < stop; ++j)
          want[static_cast<std::size_t>(r * 6 + j)] +=
              static_cast<float>(2.0 * scale) * xs[static_cast<std::size_t>(r * 6 + j)];
    }
    const std::size_t before = g.size();
    const Value gx = grad(loss, {x})[0];
    bool has_concat = false;
    for (std::size_t id = before; id < g.size(); ++id)
      has_concat = has_concat || g.nodes()[id].op == Op::concat;
    EXPECT_EQ(has_concat, c.concat) << c.ranges.size() << " slices";
    Executable exe(g, {gx});
    const auto got = exe.run({})[0].to_vector<float>();
    for (std::size_t i = 0; i < want.size(); ++i) EXPECT_FLOAT_EQ(got[i], want[i]) << i;
  }
}

}  // namespace
}  // namespace kiln
