// Non-finite values in training: TrainStep::run refuses a NaN / infinite loss or gradient
// (NonFiniteError) before an optimizer can step on it, anomaly mode names the op and layer
// that first produced one, and save_model refuses non-finite parameters unless allowed.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "kiln/infer/model.hpp"
#include "kiln/kiln.hpp"
#include "kiln/train/train_step.hpp"

namespace {

using kiln::Tensor;

struct Net {
  std::unique_ptr<kiln::Graph> g = std::make_unique<kiln::Graph>();
  kiln::Value x, w, loss, out;
};

/// loss = mean(log(x @ w)) with w in layer "head": NaN when x @ w < 0.
Net log_net() {
  Net n;
  kiln::Graph& g = *n.g;
  n.x = g.input("x", {kiln::batch, 2});
  {
    auto s = g.scope("head");
    n.w = g.parameter("head.w", Tensor::from<float>({1, 0.5f}, {2, 1}));
    n.out = kiln::log(kiln::matmul(n.x, n.w), "head_log");
  }
  n.loss = kiln::mean(n.out);
  return n;
}

kiln::Feeds feeds(float a, float b) { return {{"x", Tensor::from<float>({a, b}, {1, 2})}}; }

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const kiln::NonFiniteError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no NonFiniteError";
  return {};
}

void expect_has(const std::string& msg, const std::string& part) {
  EXPECT_NE(msg.find(part), std::string::npos) << "'" << part << "' not in: " << msg;
}

TEST(NonFinite, NanLossThrowsBeforeTheOptimizerSteps) {
  Net n = log_net();
  kiln::TrainStep step(n.loss);
  kiln::optim::SGD opt(step.named_parameters(), {.lr = 0.1});
  EXPECT_TRUE(std::isfinite(step.run(feeds(1, 2))));
  opt.step(step.gradients());
  const auto w = n.g->tensor(n.w).to_vector<float>();
  // x @ w < 0: log gives NaN; the error comes before opt.step could run.
  const std::string msg = message_of([&] {
    step.run(feeds(-3, -1));
    opt.step(step.gradients());
  });
  expect_has(msg, "TrainStep: the loss is nan at run 1");
  expect_has(msg, "detect_anomaly");
  EXPECT_EQ(n.g->tensor(n.w).to_vector<float>(), w);
  // It is a ValueError too.
  EXPECT_THROW(step.run(feeds(-3, -1)), kiln::ValueError);
  // Without the check the NaN comes back as the loss.
  Net m = log_net();
  kiln::TrainStep unchecked(m.loss, {.check_finite = false});
  EXPECT_TRUE(std::isnan(unchecked.run(feeds(-3, -1))));
}

TEST(NonFinite, AnomalyModeNamesTheForwardOpAndLayer) {
  Net n = log_net();
  kiln::Capture cap;  // the caller's observer still sees every step
  cap.layer("head");
  kiln::TrainStep step(n.loss, {.detect_anomaly = true});
  const std::string msg = message_of([&] { step.run(feeds(-3, -1), &cap); });
  expect_has(msg, "the loss is nan");
  expect_has(msg, "op 'log'");
  expect_has(msg, "node 'head_log'");
  expect_has(msg, "layer 'head'");
  expect_has(msg, "forward pass");
  EXPECT_TRUE(std::isnan(cap.layer_value("head").item()));
  // A finite run passes.
  EXPECT_NEAR(step.run(feeds(1, 2)), std::log(2.0), 1e-6);
}

TEST(NonFinite, AnomalyModeNamesTheBackwardOpOfAFiniteLoss) {
  // loss = sum(sqrt(relu(x @ w))): finite, but d sqrt / dz is infinite at z = 0.
  kiln::Graph g;
  auto x = g.input("x", {kiln::batch, 2});
  kiln::Value w;
  kiln::Value loss;
  {
    auto s = g.scope("root");
    w = g.parameter("root.w", Tensor::from<float>({1, 1}, {2, 1}));
    loss = kiln::sum(kiln::sqrt(kiln::relu(kiln::matmul(x, w)), "root_sqrt"));
  }
  kiln::TrainStep plain(loss);
  std::string msg = message_of([&] { plain.run({{"x", Tensor::from<float>({1, -1}, {1, 2})}}); });
  expect_has(msg, "the gradient of parameter 'root.w' holds");
  expect_has(msg, "(loss 0)");
  kiln::TrainStep step(loss, {.detect_anomaly = true});
  msg = message_of([&] { step.run({{"x", Tensor::from<float>({1, -1}, {1, 2})}}); });
  expect_has(msg, "layer 'root'");
  expect_has(msg, "backward pass");
  expect_has(msg, "inf");
}

TEST(NonFinite, HugeLearningRateIsCaughtAndAnomalyModeNamesTheParameter) {
  // mse regression with an absurd learning rate: the weights overflow to infinity within
  // a few steps, and the next run refuses the loss.
  kiln::Graph g;
  auto x = g.input("x", {kiln::batch, 3});
  auto t = g.input("t", {kiln::batch, 1});
  auto y = kiln::nn::dense(x, 1, {.name = "fc"});
  auto loss = kiln::mse(y, t);
  kiln::TrainStep step(loss, {.detect_anomaly = true});
  kiln::optim::SGD opt(step.named_parameters(), {.lr = 1e18});
  const kiln::Feeds f = {{"x", Tensor::from<float>({1, 2, 3, -1, 0.5f, 2}, {2, 3})},
                         {"t", Tensor::from<float>({1, -1}, {2, 1})}};
  std::string msg;
  int steps = 0;
  for (; steps < 20 && msg.empty(); ++steps) {
    try {
      step.run(f);
      opt.step(step.gradients());
    } catch (const kiln::NonFiniteError& e) {
      msg = e.what();
    }
  }
  ASSERT_FALSE(msg.empty()) << "no error in 20 steps";
  EXPECT_GT(steps, 1);
  // The weights are huge but finite; squaring the error overflows.
  expect_has(msg, "the loss is inf");
  expect_has(msg, "op 'mse'");
  expect_has(msg, "forward pass");
  for (const auto& p : step.parameters())
    for (float v : p.to_vector<float>()) EXPECT_TRUE(std::isfinite(v));

  // A parameter that already holds an infinity is named as the source.
  Net n = log_net();
  kiln::TrainStep anomaly(n.loss, {.detect_anomaly = true});
  n.g->tensor(n.w).data<float>()[0] = INFINITY;
  msg = message_of([&] { anomaly.run(feeds(1, 2)); });
  expect_has(msg, "the parameter 'head.w' holds inf at element 0 before the run");
}

TEST(NonFinite, SaveModelRefusesNonFiniteParametersUnlessAllowed) {
  Net n = log_net();
  kiln::Graph& g = *n.g;
  auto mask = g.constant(Tensor::from<float>({-INFINITY}, {1}), "mask");
  auto out = kiln::add(n.out, mask);
  // An infinite constant saves: it is the model's definition.
  EXPECT_NO_THROW(kiln::serialize_model(g, {.inputs = {n.x}, .outputs = {out}}));
  g.tensor(n.w).data<float>()[1] = std::numeric_limits<float>::quiet_NaN();
  try {
    kiln::serialize_model(g, {.inputs = {n.x}, .outputs = {out}});
    ADD_FAILURE() << "no error";
  } catch (const kiln::NonFiniteError& e) {
    const std::string msg = e.what();
    expect_has(msg, "parameter 'head.w' holds nan at element 1 of [2, 1]");
    expect_has(msg, "allow_nonfinite");
  }
  const std::string path = ::testing::TempDir() + "kiln_nonfinite_test.kiln";
  try {
    kiln::save_model(path, g, {.inputs = {n.x}, .outputs = {out}});
    ADD_FAILURE() << "no error";
  } catch (const kiln::NonFiniteError& e) {
    EXPECT_EQ(std::string(e.what()).rfind(path + ": save_model: parameter 'head.w'", 0), 0u)
        << e.what();
  }
  const auto bytes =
      kiln::serialize_model(g, {.inputs = {n.x}, .outputs = {out}, .allow_nonfinite = true});
  auto model = kiln::infer::Model::load(std::span<const std::uint8_t>(bytes));
  EXPECT_EQ(model.inputs().size(), 1u);
}

}  // namespace
