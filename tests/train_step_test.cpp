// TrainStep with an optimizer: the custom-loop path users write.
#include <gtest/gtest.h>

#include "kiln/kiln.hpp"
#include "kiln/optim/optimizer.hpp"
#include "kiln/train/train_step.hpp"

namespace kiln {
namespace {

TEST(TrainStep, LearnsXorWithAdam) {
  Graph g;
  Rng rng(3);
  auto init = [&](Shape s) {
    Tensor t = Tensor::empty(s);
    for (std::int64_t i = 0; i < t.numel(); ++i)
      t.data<float>()[i] = static_cast<float>(rng.normal(0.0, 1.0));
    return t;
  };
  auto x = g.input("x", {batch, 2});
  auto y = g.input("y", {batch}, i32);
  auto h =
      tanh(add(matmul(x, g.parameter("w1", init({2, 8}))), g.parameter("b1", Tensor::zeros({8}))));
  auto logits =
      add(matmul(h, g.parameter("w2", init({8, 2}))), g.parameter("b2", Tensor::zeros({2})));
  auto loss = softmax_cross_entropy(logits, y);
  TrainStep step(loss, {.outputs = {logits}});
  EXPECT_EQ(step.gradients().size(), 0u);  // nothing has run yet
  optim::Adam opt(step.parameters(), {.lr = 0.05});
  Feeds feeds{{"x", Tensor::from({0.f, 0.f, 0.f, 1.f, 1.f, 0.f, 1.f, 1.f}, Shape{4, 2})},
              {"y", Tensor::from({0, 1, 1, 0}, Shape{4})}};
  double first = step.run(feeds), last = first;
  for (int i = 0; i < 300; ++i) {
    opt.step(step.gradients());
    last = step.run(feeds);
  }
  EXPECT_GT(first, 0.5);
  EXPECT_LT(last, 0.05);
  ASSERT_EQ(step.outputs().size(), 1u);
  const auto lg = step.outputs()[0].to_vector<float>();
  for (int r = 0; r < 4; ++r) {
    const int predicted = lg[2 * r + 1] > lg[2 * r] ? 1 : 0;
    EXPECT_EQ(predicted, (r == 1 || r == 2) ? 1 : 0) << "row " << r;
  }
}

TEST(TrainStep, RejectsNonScalarLossAndParameterlessGraphs) {
  Graph g;
  auto x = g.input("x", {3});
  EXPECT_THROW(TrainStep(sum(relu(x))), ValueError);  // no parameters
  auto w = g.parameter("w", Tensor::zeros({3}));
  EXPECT_THROW(TrainStep(mul(x, w)), ShapeError);
}

}  // namespace
}  // namespace kiln
