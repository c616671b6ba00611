// Writes the models the edge check runs on x86 and on aarch64: an MLP (matmul, bias,
// relu, softmax) and a CNN (conv2d, bias, relu, max pool, batch norm, matmul,
// log_softmax) with weights from a fixed-seed generator, as <dir>/mlp.kiln and
// <dir>/cnn.kiln; and the MLP again with a drift monitor's reference profile (800 rows from
// the same generator and the MLP's predictions on them) as <dir>/mlp_profile.kiln; and a
// sequence model (issue 15: a bidirectional LSTM over variable-length rows, masked
// multi-head attention, a causal pre-norm transformer block with exact GELU, a GRU, the last
// valid step, dense and softmax; the LSTM's h_n, whose batch is its second dim, as a second
// output), trained for 3 epochs and saved by kiln::train::Trainer, as <dir>/sequence.kiln.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <string>
#include <vector>

#include "kiln/infer/model.hpp"
#include "kiln/io/model_file.hpp"
#include "kiln/kiln.hpp"
#include "kiln/monitor/profile.hpp"
#include "kiln/nn/layers.hpp"
#include "kiln/nn/sequence.hpp"

namespace {

// A small LCG so the weights do not depend on any library's generator.
struct Lcg {
  std::uint64_t state;
  float next() {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<float>(static_cast<double>(state >> 40) / 16777216.0 * 2.0 - 1.0);
  }
};

kiln::Tensor random_tensor(Lcg& rng, const kiln::Shape& shape, float scale) {
  std::vector<float> v(static_cast<std::size_t>(shape.numel()));
  for (auto& x : v) x = rng.next() * scale;
  return kiln::Tensor::from(v, shape);
}

void save_mlp(const std::string& path, bool with_profile = false) {
  Lcg rng{1};
  kiln::Graph g;
  auto x = g.input("pixels", {kiln::batch, 64});
  auto w1 = g.parameter("w1", random_tensor(rng, {64, 32}, 0.25f));
  auto b1 = g.parameter("b1", random_tensor(rng, {32}, 0.1f));
  auto w2 = g.parameter("w2", random_tensor(rng, {32, 10}, 0.25f));
  auto b2 = g.parameter("b2", random_tensor(rng, {10}, 0.1f));
  auto h = kiln::relu(kiln::matmul(x, w1) + b1);
  auto p = kiln::softmax(kiln::matmul(h, w2) + b2);
  kiln::SaveOptions opts;
  opts.inputs = {x};
  opts.outputs = {p};
  opts.output_names = {"probabilities"};
  opts.metadata.name = "edge-mlp";
  if (with_profile) {
    Lcg data{3};
    const kiln::Tensor rows = random_tensor(data, {800, 64}, 1.0f);
    const auto model = kiln::infer::Model::load(kiln::serialize_model(g, opts), "edge-mlp");
    const kiln::Tensor probs = model.run({{"pixels", rows}})[0];
    const kiln::monitor::Profile profile =
        kiln::monitor::build_profile({.input = "pixels",
                                      .features = rows,
                                      .predictions = probs,
                                      .predicted = kiln::monitor::PredictionKind::classes,
                                      .output = "probabilities"});
    opts.sections[kiln::monitor::profile_section] = profile.to_bytes();
  }
  kiln::save_model(path, g, opts);
}

void save_cnn(const std::string& path) {
  Lcg rng{2};
  kiln::Graph g;
  auto x = g.input("image", {kiln::batch, 1, 8, 8});
  auto wc = g.parameter("conv_w", random_tensor(rng, {6, 1, 3, 3}, 0.5f));
  auto bc = g.parameter("conv_b", random_tensor(rng, {6}, 0.1f));
  kiln::Conv2dOptions conv;
  conv.padding = {1, 1};
  auto h = kiln::relu(kiln::conv2d(x, wc, bc, conv));
  h = kiln::max_pool2d(h);  // [N, 6, 4, 4]
  auto gamma = g.parameter("bn_gamma", kiln::Tensor::full({6}, 1.5));
  auto beta = g.parameter("bn_beta", kiln::Tensor::full({6}, 0.25));
  auto mean = g.parameter("bn_mean", random_tensor(rng, {6}, 0.2f), false);
  auto var = g.parameter("bn_var", kiln::Tensor::full({6}, 0.8), false);
  h = kiln::batch_norm(h, gamma, beta, mean, var);
  h = kiln::flatten(h);  // [N, 96]
  auto wf = g.parameter("fc_w", random_tensor(rng, {96, 10}, 0.2f));
  auto bf = g.parameter("fc_b", random_tensor(rng, {10}, 0.1f));
  auto y = kiln::log_softmax(kiln::matmul(h, wf) + bf);
  kiln::SaveOptions opts;
  opts.inputs = {x};
  opts.outputs = {y};
  opts.output_names = {"log_probabilities"};
  opts.metadata.name = "edge-cnn";
  kiln::save_model(path, g, opts);
}

void save_sequence(const std::string& path) {
  // kiln_run feeds lengths i % 10: every length from 0 to 9 of the 10 steps occurs.
  constexpr std::int64_t steps = 10;
  kiln::Graph g;
  auto x = g.input("x", {kiln::batch, steps, 4});
  auto lengths = g.input("lengths", {kiln::batch}, kiln::DType::i32);
  auto mask = kiln::sequence_mask(lengths, steps);
  const kiln::nn::RecurrentOutput r = kiln::nn::lstm(
      x, {.hidden = 6, .bidirectional = true, .lengths = lengths, .name = "lstm", .seed = 11});
  kiln::Value h = kiln::nn::multi_head_attention(
      r.sequence, r.sequence, r.sequence,
      {.heads = 2, .key_mask = mask, .name = "attention", .seed = 12});
  h = kiln::nn::transformer_encoder_layer(h, {.heads = 3,
                                              .feedforward = 16,
                                              .activation = kiln::nn::Activation::gelu,
                                              .norm_first = true,
                                              .key_mask = mask,
                                              .causal = true,
                                              .name = "encoder",
                                              .seed = 13});
  const kiln::nn::RecurrentOutput gr =
      kiln::nn::gru(h, {.hidden = 5, .lengths = lengths, .name = "gru", .seed = 14});
  auto last = kiln::last_valid_step(gr.sequence, lengths);
  auto logits = kiln::nn::dense(last, 4, {.name = "out", .seed = 15});
  auto p = kiln::softmax(logits);
  auto label = g.input("label", {kiln::batch}, kiln::DType::i32);
  auto loss = kiln::softmax_cross_entropy(logits, label);

  // Trained for a few epochs and saved by the Trainer (as an app's model would be): 96
  // rows whose class is the sign pattern of two features summed over their valid steps.
  Lcg rng{4};
  const std::int64_t rows = 96;
  const kiln::Tensor xs = random_tensor(rng, {rows, steps, 4}, 1.0f);
  std::vector<std::int32_t> len(rows), y(rows);
  const std::vector<float> xv = xs.to_vector<float>();
  for (std::int64_t b = 0; b < rows; ++b) {
    const auto i = static_cast<std::size_t>(b);
    len[i] = static_cast<std::int32_t>(1 + (rng.next() + 1.0f) * 4.99f);  // 1 to 10
    float s0 = 0, s1 = 0;
    for (std::int64_t t = 0; t < len[i]; ++t) {
      s0 += xv[static_cast<std::size_t>((b * steps + t) * 4)];
      s1 += xv[static_cast<std::size_t>((b * steps + t) * 4 + 1)];
    }
    y[i] = (s0 > 0 ? 1 : 0) + (s1 > 0 ? 2 : 0);
  }
  const kiln::data::Dataset data({{"x", xs},
                                  {"lengths", kiln::Tensor::from(len, kiln::Shape{rows})},
                                  {"label", kiln::Tensor::from(y, kiln::Shape{rows})}},
                                 {.features = "x", .target = "label"});
  kiln::optim::Adam opt(kiln::nn::named_parameters(g), {.lr = 0.01});
  kiln::train::TrainerOptions o;
  o.loss = loss;
  o.predictions = logits;
  o.optimizer = &opt;
  o.target = "label";
  o.model.inputs = {x, lengths};
  o.model.outputs = {p, r.h_n};
  o.model.output_names = {"probabilities", "lstm_h_n"};
  o.model.metadata.name = "edge-sequence";
  kiln::train::Trainer trainer(g, o);
  (void)trainer.fit(
      data, {.epochs = 3, .batch_size = 16, .seed = 5, .progress = kiln::train::Progress::none});
  trainer.save_model(path);
}

}  // namespace

int main(int argc, char** argv) try {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUTPUT_DIR\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  std::filesystem::create_directories(dir);
  save_mlp(dir + "/mlp.kiln");
  save_cnn(dir + "/cnn.kiln");
  save_mlp(dir + "/mlp_profile.kiln", true);
  save_sequence(dir + "/sequence.kiln");
  std::printf("wrote %s/mlp.kiln, %s/cnn.kiln, %s/mlp_profile.kiln and %s/sequence.kiln\n",
              dir.c_str(), dir.c_str(), dir.c_str(), dir.c_str());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "error: %s\n", e.what());
  return 1;
}
