// TrainStep with an optimizer: the custom-loop path users write.
#include <gtest/gtest.h>

#include <string>
#include <utility>

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

// The constructor throws E whose message names `what`, and the graph keeps its size.
template <class E>
void expect_refused(Graph& g, Value loss, TrainStepOptions o, const std::string& what) {
  const std::size_t before = g.size();
  try {
    TrainStep step(loss, std::move(o));
    ADD_FAILURE() << "no error; expected " << what;
  } catch (const E& e) {
    EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
  }
  EXPECT_EQ(g.size(), before) << what;
}

TEST(TrainStep, ValidatesTheLossBeforeItChangesTheGraph) {
  Graph g;
  auto x = g.input("x", {batch, 3});
  auto t = g.input("t", {batch, 2});
  auto w = g.parameter("w", Tensor::full({3, 2}, 0.5));
  auto y = matmul(x, w, {}, "y");
  auto loss = mse(y, t);
  auto unrelated = g.parameter("unrelated", Tensor::zeros({2}));

  expect_refused<ShapeError>(g, y, {}, "loss 'y' must be a scalar");
  auto count = g.input("count", {}, i32);
  expect_refused<DTypeError>(g, count, {}, "loss 'count' must be f32 or f64");
  expect_refused<ValueError>(g, Value(), {}, "empty");
  // Parameters (or outputs) of another graph.
  Graph other;
  auto foreign = other.parameter("foreign", Tensor::zeros({2}));
  expect_refused<ValueError>(g, loss, {.parameters = {foreign}},
                             "parameter 'foreign' belongs to another graph");
  expect_refused<ValueError>(g, loss, {.outputs = {foreign}},
                             "output 'foreign' belongs to another graph");
  // Values that are not trainable parameters, or given twice.
  expect_refused<ValueError>(g, loss, {.parameters = {x}}, "'x' is not a trainable parameter");
  expect_refused<ValueError>(g, loss, {.parameters = {w, w}}, "'w' is given twice");
  // No parameter reaches the loss.
  auto loss_without = mean(t * 2.0, {}, false, "loss_without");
  expect_refused<ValueError>(g, loss_without, {}, "depends on none of the 2 parameters");
  expect_refused<ValueError>(g, loss, {.parameters = {unrelated}},
                             "depends on none of the 1 parameters (first: 'unrelated')");
  // A graph without parameters.
  Graph bare;
  auto bx = bare.input("x", {3});
  expect_refused<ValueError>(bare, sum(bx, {}, false, "s"), {}, "has no trainable parameters");

  // After all that, a good TrainStep still builds on the same graph and learns.
  TrainStep step(loss);
  EXPECT_EQ(step.parameter_values().size(), 2u);  // w and unrelated (zero gradient)
  Feeds feeds{{"x", Tensor::from({1.f, 2.f, 3.f}, Shape{1, 3})},
              {"t", Tensor::from({1.f, -1.f}, Shape{1, 2})}};
  const double first = step.run(feeds);
  // loss = mean((x @ w - t)^2) = ((3 - 1)^2 + (3 + 1)^2) / 2 = 10.
  EXPECT_NEAR(first, 10.0, 1e-5);
  ASSERT_EQ(step.named_parameters().size(), 2u);
  EXPECT_EQ(step.named_parameters()[0].first, "w");
  EXPECT_EQ(step.gradients()[1].to_vector<float>(), (std::vector<float>{0.f, 0.f}));
}

}  // namespace
}  // namespace kiln
