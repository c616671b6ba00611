// The usage comments at the top of the public headers, compiled and run as a new user
// would write them (kept verbatim between the "verbatim" markers), with their results
// checked. A header whose example stops compiling breaks this test.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "kiln/kiln.hpp"
#include "kiln/train/checkpoint.hpp"

namespace {

// Two batches of a linearly separable 2-class problem as feeds {"x", "label"}.
std::vector<kiln::Feeds> two_batches() {
  std::vector<kiln::Feeds> out;
  for (int b = 0; b < 2; ++b) {
    std::vector<float> x;
    std::vector<std::int32_t> y;
    for (int i = 0; i < 8; ++i) {
      const float u = static_cast<float>((i * 5 + b) % 8) / 4.0f - 1.0f;
      x.push_back(u);
      x.push_back(0.5f * u);
      y.push_back(u > 0 ? 1 : 0);
    }
    out.push_back({{"x", kiln::Tensor::from(x, {8, 2})}, {"label", kiln::Tensor::from(y, {8})}});
  }
  return out;
}

TEST(HeaderUsage, GraphScopes) {
  kiln::Graph g;
  auto x = g.input("x", {kiln::batch, 3});
  auto w = g.parameter("w", kiln::Tensor::zeros({3, 2}));
  // verbatim: include/kiln/graph/graph.hpp
  {
    auto layer = g.scope("fc1");
    auto h = kiln::relu(kiln::matmul(x, w));  // both nodes have scope "fc1"
    // (checks)
    EXPECT_EQ(h.scope(), "fc1");
    EXPECT_EQ(g.node(h.node().inputs[0]).scope, "fc1");
  }
  // end verbatim
  EXPECT_EQ(g.current_scope(), "");
}

TEST(HeaderUsage, Layers) {
  kiln::Graph g;
  auto x = g.input("x", {kiln::batch, 16});
  // verbatim: include/kiln/nn/layers.hpp
  kiln::nn::Sequential mlp{kiln::nn::Dense(128, kiln::nn::Activation::relu), kiln::nn::Dense(10)};
  auto logits = mlp(x);
  auto h = kiln::nn::dense(x, 64, {.activation = kiln::relu, .name = "fc1"});

  kiln::nn::Sequential cnn{kiln::nn::Conv2d(16, {3, 3}, {.padding = {1, 1}}),
                           kiln::nn::BatchNorm2d(),
                           kiln::nn::Activation(kiln::nn::Activation::relu),
                           kiln::nn::MaxPool2d({2, 2}),
                           kiln::nn::Flatten(),
                           kiln::nn::Dropout(0.25),
                           kiln::nn::Dense(10)};
  // end verbatim
  EXPECT_EQ(logits.shape(), (kiln::Shape{kiln::batch, 10}));
  EXPECT_EQ(h.shape(), (kiln::Shape{kiln::batch, 64}));
  auto image = g.input("image", {kiln::batch, 1, 8, 8});
  EXPECT_EQ(cnn(image).shape(), (kiln::Shape{kiln::batch, 10}));
  EXPECT_EQ(h.scope(), "fc1");
}

TEST(HeaderUsage, TrainStepLoop) {
  kiln::Graph g;
  auto x = g.input("x", {kiln::batch, 2});
  auto y = g.input("label", {kiln::batch}, kiln::i32);
  auto loss = kiln::softmax_cross_entropy(kiln::nn::dense(x, 2), y);
  const std::vector<kiln::Feeds> batches = two_batches();
  double first = -1, last = -1;
  // verbatim: include/kiln/train/train_step.hpp
  kiln::TrainStep step(loss);  // d loss / d every parameter
  kiln::optim::Adam opt(step.named_parameters(), {.lr = 1e-3});
  for (const kiln::Feeds& batch : batches) {  // {{"x", x}, {"label", y}}
    double l = step.run(batch);
    opt.step(step.gradients());
    std::printf("loss %.4f\n", l);
    // (checks)
    if (first < 0) first = l;
    last = l;
  }
  // end verbatim
  EXPECT_GT(first, 0.0);
  EXPECT_LT(last, first + 1.0);
  EXPECT_EQ(opt.step_count(), 2);
  EXPECT_EQ(opt.parameter_names()[0], "dense_0.weight");
}

TEST(HeaderUsage, OptimizerWithAnExecutable) {
  kiln::Graph g;
  auto x = g.input("x", {kiln::batch, 2});
  auto t = g.input("t", {kiln::batch, 1});
  auto loss = kiln::mse(kiln::nn::dense(x, 1), t);
  auto grads = kiln::grad(loss, g.parameters());
  std::vector<kiln::Value> outs{loss};
  outs.insert(outs.end(), grads.begin(), grads.end());
  kiln::Executable exe(g, outs, {.training = true});
  const kiln::Feeds feeds{{"x", kiln::Tensor::from({1.f, 2.f, -1.f, 0.5f}, kiln::Shape{2, 2})},
                          {"t", kiln::Tensor::from({1.f, -1.f}, kiln::Shape{2, 1})}};
  const double before = exe.run(feeds)[0].item();
  // verbatim: include/kiln/optim/optimizer.hpp
  kiln::optim::Adam opt(kiln::nn::named_parameters(g), {.lr = 1e-3});
  for (int i = 0; i < 50; ++i) {
    auto out = exe.run_views(feeds);
    opt.step(out.subspan(1));
  }
  // end verbatim (the header writes the loop as "for (...)")
  EXPECT_LT(exe.run(feeds)[0].item(), before);
}

TEST(HeaderUsage, TensorHelpers) {
  const kiln::Tensor probs = kiln::Tensor::from({0.9f, 0.1f, 0.2f, 0.8f}, kiln::Shape{2, 2});
  const kiln::Tensor labels = kiln::Tensor::from<std::int32_t>({0, 0}, {2});
  // verbatim: include/kiln/core/tensor.hpp
  double accuracy = (probs.argmax(1) == labels).mean();  // i64 vs i32: compared by value
  std::cout << probs << "\n";  // dtype, shape and values (abridged when large)
  // end verbatim
  EXPECT_EQ(accuracy, 0.5);
  std::ostringstream out;
  out << probs;
  EXPECT_EQ(out.str(), "Tensor(f32, [2, 2])\n[[0.9, 0.1],\n [0.2, 0.8]]");
}

TEST(HeaderUsage, Summary) {
  kiln::Graph g;
  auto x = g.input("pixels", {kiln::batch, 64});
  auto logits = kiln::nn::dense(kiln::nn::dense(x, 128, {.activation = kiln::relu, .name = "fc1"}),
                                10, {.name = "fc2"});
  // verbatim: include/kiln/nn/summary.hpp
  std::cout << kiln::nn::summary(g, {logits});
  // end verbatim
  // The table the header shows, line for line.
  const std::string want =
      "Layer (type)    Output shape  Param #\n"
      "=====================================\n"
      "pixels (Input)  [batch, 64]         0\n"
      "fc1 (Dense)     [batch, 128]    8,320\n"
      "fc2 (Dense)     [batch, 10]     1,290\n"
      "=====================================\n"
      "Total params: 9,610 (37.5 KiB)\n"
      "Trainable params: 9,610 (37.5 KiB)\n"
      "Non-trainable params: 0 (0 B)\n";
  EXPECT_EQ(kiln::nn::summary(g, {logits}), want);
}

TEST(HeaderUsage, Checkpoint) {
  const auto dir = std::filesystem::temp_directory_path() / "kiln_header_usage_ckpt";
  std::filesystem::create_directories(dir / "run");
  std::filesystem::current_path(dir);
  kiln::Graph g;
  auto x = g.input("x", {kiln::batch, 2});
  auto y = g.input("label", {kiln::batch}, kiln::i32);
  kiln::TrainStep train(kiln::softmax_cross_entropy(kiln::nn::dense(x, 2), y));
  kiln::optim::Adam opt(train.named_parameters());
  kiln::Rng rng(7);
  std::int64_t step = 0;
  train.run(two_batches()[0]);
  opt.step(train.gradients());
  step = 1;
  // verbatim: include/kiln/train/checkpoint.hpp
  kiln::save_checkpoint("run/ckpt.kiln", g, {.optimizer = &opt, .rng = &rng, .step = step});
  // ...
  auto info = kiln::load_checkpoint("run/ckpt.kiln", g, {.optimizer = &opt, .rng = &rng});
  step = info.step;
  // end verbatim
  EXPECT_EQ(step, 1);
  EXPECT_EQ(opt.step_count(), 1);
  std::filesystem::current_path(std::filesystem::temp_directory_path());
  std::filesystem::remove_all(dir);
}

}  // namespace

TEST(HeaderUsage, RunRecordCustomLoop) {
  kiln::Graph g;
  auto x = g.input("x", {kiln::batch, 2});
  auto y = g.input("label", {kiln::batch}, kiln::i32);
  kiln::Value logits;
  {
    auto fc = g.scope("fc");
    logits = kiln::nn::dense(x, 2);
  }
  kiln::TrainStep step(kiln::softmax_cross_entropy(logits, y));
  kiln::optim::Adam opt(step.named_parameters(), {.lr = 1e-2});
  const std::vector<kiln::Feeds> batches = two_batches();
  const auto dir = std::filesystem::temp_directory_path() / "kiln_header_usage_run";
  std::filesystem::remove_all(dir);
  kiln::report::RunRecorder rec({.dir = dir.string(), .sample_every = 1, .log_every = 1});
  const std::int64_t epoch = 0;
  std::int64_t steps_so_far = 0;
  double mean_loss = 0.0;
  const double acc = 1.0;
  // verbatim: include/kiln/report/run_record.hpp
  rec.set_model(g, {logits}, &step.executable());  // graph.json
  for (std::int64_t step_index = 0; step_index < 2; ++step_index) {
    const kiln::Feeds& feeds = batches[static_cast<std::size_t>(step_index)];
    kiln::report::StepSample sample = rec.sample(step_index, epoch, step);
    double loss = step.run(feeds, sample.observer());  // activations (sampled steps only)
    sample.before_update();                            // gradients, weights before the step
    opt.step(step.gradients());
    sample.after_update();  // weights, update ratio; one line
    rec.log_step(step_index, epoch, {{"loss", loss}, {"lr", opt.lr()}});
    // (checks)
    mean_loss += loss / 2.0;
    ++steps_so_far;
  }
  rec.log_epoch(epoch, steps_so_far, {{"loss", mean_loss}, {"val_accuracy", acc}});
  // end verbatim
  rec.finish();
  // Two step lines and an epoch line; a statistics line per step with fc's three kinds.
  auto lines = [](const std::filesystem::path& p) {
    std::ifstream in(p);
    std::vector<std::string> out;
    for (std::string l; std::getline(in, l);) out.push_back(l);
    return out;
  };
  const auto metrics = lines(dir / "metrics.jsonl");
  ASSERT_EQ(metrics.size(), 3u);
  EXPECT_NE(metrics[2].find("\"kind\":\"epoch\""), std::string::npos) << metrics[2];
  const auto layers = lines(dir / "layers.jsonl");
  ASSERT_EQ(layers.size(), 2u);
  for (const char* kind : {"\"activation\"", "\"gradient\"", "\"weight\""})
    EXPECT_NE(layers[1].find(kind), std::string::npos) << kind;
  EXPECT_TRUE(std::filesystem::exists(dir / "graph.json"));
  const std::string html = kiln::report::render_report({dir.string()});
  EXPECT_NE(html.find("data-chart=\"metric-loss-step\""), std::string::npos);
  std::filesystem::remove_all(dir);
}
