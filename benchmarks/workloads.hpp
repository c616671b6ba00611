// Kiln's side of DESIGN.md's workloads W1-W4 (and issue 15's W6, W7), built with the public API
// exactly as a user would (nn layers, TrainStep, optim, Executable), shared by the w*_ benchmarks
// and the libtorch comparison (benchmarks/compare). Each workload owns its graph, compiles its plan
// and takes warm_up_steps steps (or one inference run) in its constructor, so timing loops measure
// steady-state steps.
#pragma once

#include <sys/resource.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "kiln/core/rng.hpp"
#include "kiln/core/tensor.hpp"
#include "kiln/graph/graph.hpp"
#include "kiln/infer/model.hpp"
#include "kiln/io/model_file.hpp"
#include "kiln/nn/layers.hpp"
#include "kiln/nn/sequence.hpp"
#include "kiln/ops.hpp"
#include "kiln/optim/optimizer.hpp"
#include "kiln/runtime/executable.hpp"
#include "kiln/train/train_step.hpp"

namespace kiln_bench {

inline constexpr std::int64_t w1_batch = 256;
inline constexpr std::int64_t w1_features = 784;
inline constexpr std::int64_t w1_hidden = 1024;
inline constexpr std::int64_t w2_batch = 64;
inline constexpr std::int64_t w2_side = 28;
inline constexpr std::int64_t classes = 10;
inline constexpr std::int64_t w3_hidden = 128;
/// Counted FLOPs (2 per multiply-add of the dense and convolution layers; elementwise ops,
/// pooling, softmax and the optimizer are not counted) of one W1 training step, one W2
/// training step (forward, weight gradients of every layer, input gradients of every layer
/// but the first) and one W4 forward pass, from the layer shapes.
inline constexpr double w1_layer_macs[] = {784.0 * 1024, 1024.0 * 1024, 1024.0 * 10};
inline constexpr double w1_train_flops =
    2.0 * w1_batch *
    (2 * (w1_layer_macs[0] + w1_layer_macs[1] + w1_layer_macs[2]) + w1_layer_macs[1] +
     w1_layer_macs[2]);
/// Multiply-adds per image: conv1 (32x28x28 outputs, 5x5x1 each), conv2 (64x14x14, 5x5x32),
/// fc1 (3136x512), fc2 (512x10).
inline constexpr double w2_layer_macs[] = {32.0 * 28 * 28 * 25, 64.0 * 14 * 14 * 25 * 32,
                                           3136.0 * 512, 512.0 * 10};
inline constexpr double w4_forward_flops =
    2.0 * w2_batch * (w2_layer_macs[0] + w2_layer_macs[1] + w2_layer_macs[2] + w2_layer_macs[3]);
inline constexpr double w2_train_flops =
    2 * w4_forward_flops +
    2.0 * w2_batch * (w2_layer_macs[1] + w2_layer_macs[2] + w2_layer_macs[3]);
/// Bytes of W3's weights and biases (784x128 and 128x10 f32), which every batch-1 run
/// reads once: what bounds its latency is how fast the cache holding them delivers them.
inline constexpr double w3_weight_bytes =
    4.0 * (w1_features * w3_hidden + w3_hidden + w3_hidden * classes + classes);

/// The process's peak resident set so far (getrusage ru_maxrss), in MiB.
inline double peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // Linux reports KiB
}

/// Training steps taken before timing: past Adam's first few steps, in which the loss of a
/// freshly initialised CNN may rise before it falls.
inline constexpr int warm_up_steps = 5;

/// Synthetic but learnable data, the same for Kiln and libtorch: the label decides which
/// pixels are bright, so repeated steps on one batch must lower the loss.
struct Batch {
  std::vector<float> x;
  std::vector<std::int32_t> y;
};

inline Batch make_data(std::int64_t batch, std::int64_t features, std::uint64_t seed) {
  kiln::Rng rng(seed);
  Batch b{std::vector<float>(static_cast<std::size_t>(batch * features)),
          std::vector<std::int32_t>(static_cast<std::size_t>(batch))};
  for (std::int64_t i = 0; i < batch; ++i) {
    const auto label = static_cast<std::int32_t>(rng.below(classes));
    b.y[static_cast<std::size_t>(i)] = label;
    for (std::int64_t j = 0; j < features; ++j) {
      const bool on = (j / 7) % classes == label;
      b.x[static_cast<std::size_t>(i * features + j)] =
          static_cast<float>(rng.uniform() * (on ? 1.0 : 0.5));
    }
  }
  return b;
}

inline Batch w1_data() { return make_data(w1_batch, w1_features, 1234); }
inline Batch w2_data() { return make_data(w2_batch, w2_side * w2_side, 5678); }

/// The W2 network: conv 5x5 1->32 pad 2, ReLU, max pool 2; conv 5x5 32->64 pad 2, ReLU,
/// max pool 2; dense 3136->512, ReLU; dense 512->10. Returns the logits.
inline kiln::Value w2_network(kiln::Graph& g, kiln::Value image) {
  namespace nn = kiln::nn;
  const nn::Sequential net{
      nn::Conv2d(32, {5, 5}, {.padding = {2, 2}, .activation = kiln::relu, .name = "conv1"}),
      nn::MaxPool2d({2, 2}),
      nn::Conv2d(64, {5, 5}, {.padding = {2, 2}, .activation = kiln::relu, .name = "conv2"}),
      nn::MaxPool2d({2, 2}),
      nn::Flatten(),
      nn::Dense(512, {.activation = kiln::relu, .name = "fc1"}),
      nn::Dense(classes, {.name = "fc2"}),
  };
  return net(g, image);
}

/// One training step per call: TrainStep::run (loss and gradients), then opt.step.
class KilnTrainWorkload {
 public:
  double step() {
    const double loss = forward_backward();
    update();
    return loss;
  }
  /// The two halves of step(): TrainStep::run (loss and gradients; `observer` sees every
  /// kernel step) and the optimizer's update.
  double forward_backward(kiln::RunObserver* observer = nullptr) {
    return step_->run(feeds_, observer);
  }
  void update() { opt_->step(step_->gradients()); }
  /// The loss of the first step.
  double first_loss() const { return first_loss_; }

 protected:
  void warm_up() {
    first_loss_ = step();
    for (int i = 1; i < warm_up_steps; ++i) step();
  }

  kiln::Graph graph_;
  std::optional<kiln::TrainStep> step_;
  std::unique_ptr<kiln::optim::Optimizer> opt_;
  kiln::Feeds feeds_;
  double first_loss_ = 0.0;
};

/// W1: 784-1024-1024-10 MLP with ReLU, batch 256, softmax cross-entropy, SGD momentum 0.9.
class KilnW1 : public KilnTrainWorkload {
 public:
  KilnW1() {
    namespace nn = kiln::nn;
    kiln::Value x = graph_.input("pixels", {kiln::batch, w1_features});
    kiln::Value y = graph_.input("label", {kiln::batch}, kiln::i32);
    kiln::Value h = nn::dense(graph_, x, w1_hidden, {.activation = kiln::relu, .name = "fc1"});
    h = nn::dense(graph_, h, w1_hidden, {.activation = kiln::relu, .name = "fc2"});
    kiln::Value logits = nn::dense(graph_, h, classes, {.name = "fc3"});
    step_.emplace(kiln::softmax_cross_entropy(logits, y));
    opt_ = std::make_unique<kiln::optim::SGD>(step_->parameters(),
                                              kiln::optim::SGDOptions{.lr = 0.01, .momentum = 0.9});
    const Batch b = w1_data();
    feeds_ = {{"pixels", kiln::Tensor::from(b.x, {w1_batch, w1_features})},
              {"label", kiln::Tensor::from(b.y, {w1_batch})}};
    warm_up();
  }
};

/// W2: the W2 network, batch 64 of 1x28x28, softmax cross-entropy, Adam (lr 1e-3).
class KilnW2 : public KilnTrainWorkload {
 public:
  KilnW2() {
    kiln::Value x = graph_.input("image", {kiln::batch, 1, w2_side, w2_side});
    kiln::Value y = graph_.input("label", {kiln::batch}, kiln::i32);
    step_.emplace(kiln::softmax_cross_entropy(w2_network(graph_, x), y));
    opt_ = std::make_unique<kiln::optim::Adam>(step_->parameters(),
                                               kiln::optim::AdamOptions{.lr = 1e-3});
    const Batch b = w2_data();
    feeds_ = {{"image", kiln::Tensor::from(b.x, {w2_batch, 1, w2_side, w2_side})},
              {"label", kiln::Tensor::from(b.y, {w2_batch})}};
    warm_up();
  }
};

/// W4: the W2 network's forward pass (logits), batch 64, with an inference executable
/// whose weights stay constant (CompileOptions::constant_parameters, as infer::Model sets).
class KilnW4 {
 public:
  KilnW4() {
    kiln::Value x = graph_.input("image", {kiln::batch, 1, w2_side, w2_side});
    exe_.emplace(graph_, std::vector<kiln::Value>{w2_network(graph_, x)},
                 kiln::CompileOptions{.constant_parameters = true});
    const Batch b = w2_data();
    feeds_ = {{"image", kiln::Tensor::from(b.x, {w2_batch, 1, w2_side, w2_side})}};
    run();
  }
  /// Runs the forward pass; returns the first logit (to keep the result observable).
  float run(kiln::RunObserver* observer = nullptr) {
    return exe_->run_views(feeds_, observer)[0].data<float>()[0];
  }

 private:
  kiln::Graph graph_;
  std::optional<kiln::Executable> exe_;
  kiln::Feeds feeds_;
};

/// W3: a 784-128-10 MLP with ReLU and softmax (kiln::nn layers, seeded weights), saved to
/// memory with kiln::serialize_model and loaded with kiln::infer::Model::load; run() is one
/// Model::run on one 784-pixel image (feeds checked, an executable taken from the pool, the
/// cached batch-1 plan run, the output copied out). The plan is compiled in the constructor.
class KilnW3 {
 public:
  KilnW3()
      : model_(load()),
        feeds_{{"image", kiln::Tensor::from(image(), {1, w1_features})}},
        probs_{kiln::Tensor::empty({1, classes})} {
    run();
    run_bound();
  }
  /// Runs the model; returns the first probability (to keep the result observable).
  float run() const { return model_.run(feeds_)[0].data<float>()[0]; }
  /// The same through Model::run_into (I/O binding): the probabilities go into a tensor
  /// made once, nothing is allocated per run.
  float run_bound() {
    model_.run_into(feeds_, std::span<kiln::Tensor>(&probs_, 1));
    return probs_.data<float>()[0];
  }
  /// The model file's bytes (kiln::nn layers, seeded weights), with extra `sections`.
  static std::vector<std::uint8_t> model_bytes(
      std::map<std::string, std::vector<std::uint8_t>> sections = {}) {
    kiln::Graph g;
    kiln::Value x = g.input("image", {kiln::batch, w1_features});
    kiln::Value h = kiln::nn::dense(g, x, w3_hidden, {.activation = kiln::relu, .name = "fc1"});
    kiln::Value probs = kiln::softmax(kiln::nn::dense(g, h, classes, {.name = "fc2"}), -1, "probs");
    return kiln::serialize_model(
        g, {.inputs = {x}, .outputs = {probs}, .sections = std::move(sections)});
  }
  /// The input image: 784 seeded uniform pixels.
  static std::vector<float> image() {
    kiln::Rng rng(3);
    std::vector<float> pixels(static_cast<std::size_t>(w1_features));
    for (auto& p : pixels) p = static_cast<float>(rng.uniform());
    return pixels;
  }

 private:
  static kiln::infer::Model load() { return kiln::infer::Model::load(model_bytes(), "w3"); }

  kiln::infer::Model model_;
  kiln::Feeds feeds_;
  kiln::Tensor probs_;
};

// ---------------------------------------------------------------------------------------------
// Sequence workloads (issue 15)

inline constexpr std::int64_t w6_batch = 32;
inline constexpr std::int64_t w6_steps = 64;
inline constexpr std::int64_t w6_features = 64;
inline constexpr std::int64_t w6_hidden = 256;
inline constexpr std::int64_t w7_batch = 16;
inline constexpr std::int64_t w7_steps = 128;
inline constexpr std::int64_t w7_model = 256;
inline constexpr std::int64_t w7_heads = 4;
inline constexpr std::int64_t w7_feedforward = 1024;

/// Sequences [batch, steps, features] whose label decides which features are raised at
/// every step, plus noise: learnable, the same for Kiln and libtorch.
inline Batch sequence_data(std::int64_t batch, std::int64_t steps, std::int64_t features,
                           std::uint64_t seed) {
  kiln::Rng rng(seed);
  Batch b{std::vector<float>(static_cast<std::size_t>(batch * steps * features)),
          std::vector<std::int32_t>(static_cast<std::size_t>(batch))};
  for (std::int64_t i = 0; i < batch; ++i) {
    const auto label = static_cast<std::int32_t>(rng.below(classes));
    b.y[static_cast<std::size_t>(i)] = label;
    for (std::int64_t t = 0; t < steps; ++t)
      for (std::int64_t j = 0; j < features; ++j) {
        const bool on = j % classes == label;
        b.x[static_cast<std::size_t>((i * steps + t) * features + j)] =
            static_cast<float>(rng.uniform() - 0.5 + (on ? 0.5 : 0.0));
      }
  }
  return b;
}

inline Batch w6_data() { return sequence_data(w6_batch, w6_steps, w6_features, 6); }
inline Batch w7_data() { return sequence_data(w7_batch, w7_steps, w7_model, 7); }

/// W6: a 2-layer LSTM (hidden 256) over 64 steps of 64 features, batch 32; the last step's
/// state through dense 256->10, softmax cross-entropy, Adam (lr 1e-3).
class KilnW6 : public KilnTrainWorkload {
 public:
  KilnW6() {
    namespace nn = kiln::nn;
    kiln::Value x = graph_.input("sequence", {kiln::batch, w6_steps, w6_features});
    kiln::Value y = graph_.input("label", {kiln::batch}, kiln::i32);
    const nn::RecurrentOutput r = nn::lstm(x, {.hidden = w6_hidden, .layers = 2, .name = "lstm"});
    kiln::Value last =
        kiln::reshape(kiln::slice(r.sequence, 1, w6_steps - 1, w6_steps), {-1, w6_hidden});
    kiln::Value logits = nn::dense(graph_, last, classes, {.name = "fc"});
    step_.emplace(kiln::softmax_cross_entropy(logits, y));
    opt_ = std::make_unique<kiln::optim::Adam>(step_->parameters(),
                                               kiln::optim::AdamOptions{.lr = 1e-3});
    const Batch b = w6_data();
    feeds_ = {{"sequence", kiln::Tensor::from(b.x, {w6_batch, w6_steps, w6_features})},
              {"label", kiln::Tensor::from(b.y, {w6_batch})}};
    warm_up();
  }
};

/// W7: one transformer encoder layer (d_model 256, 4 heads, feed-forward 1024, ReLU,
/// post-norm, no dropout) over 128 steps, batch 16; the mean over the steps through dense
/// 256->10, softmax cross-entropy, Adam (lr 1e-3).
class KilnW7 : public KilnTrainWorkload {
 public:
  KilnW7() {
    namespace nn = kiln::nn;
    kiln::Value x = graph_.input("sequence", {kiln::batch, w7_steps, w7_model});
    kiln::Value y = graph_.input("label", {kiln::batch}, kiln::i32);
    kiln::Value h = nn::transformer_encoder_layer(
        x, {.heads = w7_heads, .feedforward = w7_feedforward, .name = "encoder"});
    kiln::Value pooled = kiln::mean(h, {1});
    kiln::Value logits = nn::dense(graph_, pooled, classes, {.name = "fc"});
    step_.emplace(kiln::softmax_cross_entropy(logits, y));
    opt_ = std::make_unique<kiln::optim::Adam>(step_->parameters(),
                                               kiln::optim::AdamOptions{.lr = 1e-3});
    const Batch b = w7_data();
    feeds_ = {{"sequence", kiln::Tensor::from(b.x, {w7_batch, w7_steps, w7_model})},
              {"label", kiln::Tensor::from(b.y, {w7_batch})}};
    warm_up();
  }
};

}  // namespace kiln_bench
