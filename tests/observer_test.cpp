// Seeing inside a run: a RunObserver attached to a CNN training step sees every step, and
// a Capture of layers (by scope) and of gradient nodes gets, from a fused plan, the same
// values as from an unfused plan of the same network.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "kiln/kiln.hpp"

namespace {

using namespace kiln;

struct Cnn {
  Graph g;
  Value x, y, loss, fused_away;
  Cnn() {
    x = g.input("img", {batch, 1, 12, 12});
    y = g.input("label", {batch}, DType::i32);
    auto h = nn::conv2d(g, x, 4, {3, 3}, {.padding = {1, 1}, .activation = relu, .name = "conv1"});
    h = nn::max_pool2d(g, h, {2, 2});
    h = nn::conv2d(g, h, 6, {3, 3}, {.padding = {1, 1}, .activation = relu, .name = "conv2"});
    h = nn::max_pool2d(g, h, {2, 2});
    h = flatten(h);
    auto fc1 = nn::dense(g, h, 16, {.activation = relu, .name = "fc1"});
    auto logits = nn::dense(g, fc1, 3, {.name = "fc2"});
    loss = softmax_cross_entropy(logits, y);
    // fc1's pre-activation (matmul + bias), which fusion folds into one step with the relu.
    fused_away = g.node(fc1.id()).inputs.empty() ? Value() : g.value(g.node(fc1.id()).inputs[0]);
  }
};

Feeds batch_of(std::int64_t n) {
  Rng rng(11);
  Tensor img = nn::normal(1.0)(Shape{n, 1, 12, 12}, rng, DType::f32);
  std::vector<std::int32_t> labels;
  for (std::int64_t i = 0; i < n; ++i) labels.push_back(static_cast<std::int32_t>(i % 3));
  return {{"img", img}, {"label", Tensor::from(labels, {n})}};
}

void expect_close(const Tensor& a, const Tensor& b, const std::string& what) {
  ASSERT_EQ(a.shape(), b.shape()) << what;
  const Tensor ca = a.contiguous(), cb = b.contiguous();
  double worst = 0;
  for (std::int64_t i = 0; i < ca.numel(); ++i) {
    const double u = ca.data<float>()[i], v = cb.data<float>()[i];
    worst = std::max(worst, std::abs(u - v) / (1e-3 + std::abs(v)));
  }
  EXPECT_LT(worst, 1e-4) << what;
}

// Counts the steps it sees and which scopes they belong to.
struct Census : RunObserver {
  std::size_t steps = 0, count = 0;
  std::set<std::string> scopes;
  std::size_t gradient_steps = 0;
  void on_step(const ObservedStep& s) override {
    ++steps;
    count = s.count;
    EXPECT_EQ(s.index + 1, steps);
    EXPECT_EQ(s.covers.back(), s.id);
    if (!s.node.scope.empty()) scopes.insert(s.node.scope);
    if (s.node.gradient) ++gradient_steps;
  }
};

TEST(Observer, FusedTrainingStepShowsTheSameLayerValuesAsAnUnfusedOne) {
  Cnn fused_net, plain_net;
  TrainStep fused(fused_net.loss);
  TrainStep plain(plain_net.loss, {.fuse = false});
  const Feeds feeds = batch_of(5);
  // The fused plan folds bias adds and relus into conv and matmul steps.
  const std::string plan = fused.executable().plan(feeds);
  ASSERT_NE(plan.find("conv2d+bias+relu"), std::string::npos) << plan;
  ASSERT_NE(plan.find("matmul+bias+relu"), std::string::npos) << plan;

  const std::vector<std::string> layers = {"conv1", "conv2", "fc1", "fc2"};
  Capture cf, cp;
  for (const auto& l : layers) {
    cf.layer(l);
    cp.layer(l);
  }
  for (const Value& gv : fused.gradient_values()) cf.node(gv);
  for (const Value& gv : plain.gradient_values()) cp.node(gv);
  const double lf = fused.run(feeds, &cf);
  const double lp = plain.run(feeds, &cp);
  EXPECT_NEAR(lf, lp, 1e-6 * std::abs(lp));

  EXPECT_EQ(cf.layers(), layers);
  for (const auto& l : layers) expect_close(cf.layer_value(l), cp.layer_value(l), "layer " + l);
  // A layer's value is its output: fc1's is after the relu, fc2's the logits.
  const Tensor fc1 = cf.layer_value("fc1").contiguous();
  EXPECT_EQ(fc1.shape(), Shape({5, 16}));
  for (std::int64_t i = 0; i < fc1.numel(); ++i) EXPECT_GE(fc1.data<float>()[i], 0.0f);
  EXPECT_EQ(cf.layer_value("fc2").shape(), Shape({5, 3}));
  EXPECT_EQ(cf.layer_value("conv2").shape(), Shape({5, 6, 6, 6}));

  // The gradients seen by the observer are the step's gradients, and equal unfused ones.
  const auto& pf = fused.parameter_values();
  for (std::size_t i = 0; i < pf.size(); ++i) {
    const Tensor& seen = cf.node_value(fused.gradient_values()[i]);
    expect_close(seen, fused.gradients()[i], "observed gradient of " + pf[i].name());
    expect_close(seen, cp.node_value(plain.gradient_values()[i]), "gradient of " + pf[i].name());
  }
  // A node folded into another step has no value of its own in the fused plan.
  ASSERT_TRUE(fused_net.fused_away.valid());
  Capture ask;
  ask.node(fused_net.fused_away);
  fused.run(feeds, &ask);
  try {
    ask.node_value(fused_net.fused_away);
    ADD_FAILURE() << "a fused-away node had a value";
  } catch (const NameError& e) {
    EXPECT_NE(std::string(e.what()).find("fused into"), std::string::npos) << e.what();
  }
  // ...but does in the unfused plan.
  Capture ask_plain;
  ask_plain.node(plain_net.fused_away);
  plain.run(feeds, &ask_plain);
  EXPECT_EQ(ask_plain.node_value(plain_net.fused_away).shape(), Shape({5, 16}));
}

TEST(Observer, SeesEveryStepWithItsScopeAndGradientFlag) {
  Cnn net;
  TrainStep step(net.loss);
  Census census;
  const double with = step.run(batch_of(2), &census);
  EXPECT_GT(census.steps, 10u);
  EXPECT_EQ(census.steps, census.count);
  for (const char* l : {"conv1", "conv2", "fc1", "fc2"}) EXPECT_TRUE(census.scopes.count(l)) << l;
  EXPECT_GT(census.gradient_steps, 0u);
  EXPECT_LT(census.gradient_steps, census.steps);
  // Without an observer the same run gives the same loss.
  Cnn again;
  TrainStep other(again.loss);
  EXPECT_EQ(other.run(batch_of(2)), with);
}

TEST(Capture, NamesWhatWasNotAskedFor) {
  Cnn net;
  Executable exe(net.g, {net.loss});
  Capture c;
  c.layer("fc1");
  exe.run(batch_of(3), &c);
  EXPECT_EQ(c.layer_value("fc1").shape(), Shape({3, 16}));
  EXPECT_THROW(c.layer_value("conv1"), NameError);
  EXPECT_THROW(c.node_value(net.loss), NameError);
  Capture unknown;
  unknown.layer("nope");
  exe.run(batch_of(3), &unknown);
  try {
    unknown.layer_value("nope");
    ADD_FAILURE();
  } catch (const NameError& e) {
    EXPECT_NE(std::string(e.what()).find("'nope' was not computed"), std::string::npos);
  }
}

}  // namespace
