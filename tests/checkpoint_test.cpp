// Checkpoints: resuming from one continues training exactly as if it never stopped
// (parameters, batch-norm buffers, optimizer state, step, RNG), and a checkpoint that does
// not fit or is corrupt changes nothing.
#include "kiln/train/checkpoint.hpp"

#include <gtest/gtest.h>

#include <filesystem>

#include "io/archive.hpp"
#include "kiln/kiln.hpp"
#include "kiln/train/train_step.hpp"

namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<std::uint8_t>;

struct Net {
  std::unique_ptr<kiln::Graph> g = std::make_unique<kiln::Graph>();
  kiln::Value loss;
};

/// conv -> batch norm (buffers) -> relu -> dense, mse loss. `extra` adds a dense layer.
Net build(std::int64_t units = 3, bool extra = false) {
  Net n;
  kiln::Graph& g = *n.g;
  auto x = g.input("x", {kiln::batch, 1, 4, 4});
  auto t = g.input("t", {kiln::batch, units});
  auto c = kiln::nn::conv2d(g, x, 2, {3, 3}, {.padding = {1, 1}, .name = "conv"});
  auto b = kiln::relu(kiln::nn::batch_norm(g, c, {.name = "bn"}));
  auto y = kiln::nn::dense(g, kiln::flatten(b), units, {.name = "fc"});
  if (extra) y = kiln::nn::dense(g, y, units, {.name = "fc_extra"});
  n.loss = kiln::mse(y, t);
  return n;
}

kiln::Feeds batch_of(kiln::Rng& rng) {
  std::vector<float> x(2 * 16), t(2 * 3);
  for (auto& v : x) v = static_cast<float>(rng.normal());
  for (auto& v : t) v = static_cast<float>(rng.normal());
  return {{"x", kiln::Tensor::from(x, {2, 1, 4, 4})}, {"t", kiln::Tensor::from(t, {2, 3})}};
}

void train(kiln::TrainStep& step, kiln::optim::Optimizer& opt, kiln::Rng& rng, int steps) {
  for (int i = 0; i < steps; ++i) {
    step.run(batch_of(rng));
    opt.step(step.gradients());
  }
}

std::vector<std::vector<float>> snapshot(kiln::Graph& g) {
  std::vector<std::vector<float>> out;
  for (auto v : g.parameters()) out.push_back(g.tensor(v).to_vector<float>());
  for (auto v : g.buffers()) out.push_back(g.tensor(v).to_vector<float>());
  return out;
}

TEST(Checkpoint, ResumingMatchesUninterruptedTraining) {
  // Uninterrupted: 3 steps, checkpoint, 4 more steps.
  Net a = build();
  kiln::TrainStep step_a(a.loss);
  kiln::optim::Adam opt_a(step_a.parameters(), {.lr = 1e-2});
  kiln::Rng rng_a(5);
  train(step_a, opt_a, rng_a, 3);
  const Bytes ckpt =
      kiln::serialize_checkpoint(*a.g, {.optimizer = &opt_a, .rng = &rng_a, .step = 3});
  train(step_a, opt_a, rng_a, 4);
  const auto want = snapshot(*a.g);

  // Resumed: a fresh model, optimizer and RNG (different seed), restored, then 4 steps.
  Net b = build();
  kiln::TrainStep step_b(b.loss);
  kiln::optim::Adam opt_b(step_b.parameters(), {.lr = 1e-2});
  kiln::Rng rng_b(999);
  const auto before = snapshot(*b.g);
  const auto info =
      kiln::restore_checkpoint(ckpt, "ckpt", *b.g, {.optimizer = &opt_b, .rng = &rng_b});
  EXPECT_EQ(info.step, 3);
  EXPECT_TRUE(info.has_optimizer);
  EXPECT_TRUE(info.has_rng);
  EXPECT_EQ(info.optimizer_kind, "adam");
  EXPECT_EQ(opt_b.step_count(), 3);
  EXPECT_NE(snapshot(*b.g), before);
  train(step_b, opt_b, rng_b, 4);
  const auto got = snapshot(*b.g);
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], want[i]) << "tensor " << i;
  // The buffers moved during training and were restored too.
  EXPECT_NE(b.g->tensor(b.g->find("bn.running_mean")).to_vector<float>(),
            std::vector<float>(2, 0.0f));
}

TEST(Checkpoint, FileRoundTripIsAtomic) {
  const auto dir = fs::temp_directory_path() / ("kiln_ckpt_test_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const auto path = (dir / "c.kckp").string();
  Net a = build();
  kiln::Rng rng(1);
  kiln::save_checkpoint(path, *a.g, {.rng = &rng, .step = 7});
  kiln::save_checkpoint(path, *a.g, {.rng = &rng, .step = 8});
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator{}), 1);
  Net b = build();
  kiln::Rng other(2);
  const auto info = kiln::load_checkpoint(path, *b.g, {.rng = &other});
  EXPECT_EQ(info.step, 8);
  EXPECT_FALSE(info.has_optimizer);
  EXPECT_EQ(other.next_u64(), rng.next_u64());
  EXPECT_THROW(kiln::load_checkpoint((dir / "missing").string(), *b.g), kiln::IoError);
  fs::remove_all(dir);
}

std::vector<std::pair<std::string, std::vector<double>>> state_values(
    const kiln::optim::Optimizer& opt) {
  std::vector<std::pair<std::string, std::vector<double>>> out;
  for (const auto& [name, t] : opt.state()) {
    std::vector<double> v;
    for (std::int64_t i = 0; i < t.numel(); ++i) v.push_back(t.at(i));
    out.emplace_back(name, std::move(v));
  }
  return out;
}

/// The restore must throw E, its message must start with the source, and nothing changes.
template <class E>
void expect_rejected(const Bytes& bytes, Net& net, kiln::optim::Optimizer* opt, kiln::Rng* rng,
                     const std::string& what) {
  const auto before = snapshot(*net.g);
  const auto opt_before = opt ? state_values(*opt) : decltype(state_values(*opt)){};
  const auto rng_before = rng ? rng->state() : kiln::Rng::State{};
  try {
    kiln::restore_checkpoint(bytes, "ckpt.kiln", *net.g, {.optimizer = opt, .rng = rng});
    ADD_FAILURE() << "no error; expected " << what;
  } catch (const E& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind("ckpt.kiln: ", 0), 0u) << msg;
    EXPECT_NE(msg.find(what), std::string::npos) << msg;
  }
  EXPECT_EQ(snapshot(*net.g), before);
  if (opt) {
    EXPECT_EQ(state_values(*opt), opt_before);
  }
  if (rng) {
    EXPECT_EQ(rng->state(), rng_before);
  }
}

TEST(Checkpoint, MismatchesChangeNothing) {
  Net a = build();
  kiln::TrainStep step_a(a.loss);
  kiln::optim::Adam opt_a(step_a.parameters());
  kiln::Rng rng_a(3);
  train(step_a, opt_a, rng_a, 2);
  const Bytes full =
      kiln::serialize_checkpoint(*a.g, {.optimizer = &opt_a, .rng = &rng_a, .step = 2});
  const Bytes bare = kiln::serialize_checkpoint(*a.g, {.step = 2});

  Net wider = build(4);  // fc is [8*... , 4]: shapes differ
  expect_rejected<kiln::ShapeError>(full, wider, nullptr, nullptr, "parameter 'fc.weight'");
  Net more = build(3, true);  // an extra layer the checkpoint lacks
  expect_rejected<kiln::NameError>(full, more, nullptr, nullptr, "no parameter 'fc_extra.weight'");
  {
    // A checkpoint with an extra parameter the graph lacks.
    Net extra = build(3, true);
    const Bytes big = kiln::serialize_checkpoint(*extra.g, {});
    Net plain = build();
    expect_rejected<kiln::NameError>(big, plain, nullptr, nullptr,
                                     "'fc_extra.bias' is not in the graph");
  }
  Net b = build();
  kiln::TrainStep step_b(b.loss);
  kiln::optim::SGD sgd(step_b.parameters(), {.lr = 0.1, .momentum = 0.9});
  expect_rejected<kiln::ValueError>(full, b, &sgd, nullptr, "optimizer is 'adam', not 'sgd'");
  kiln::optim::Adam adam(step_b.parameters());
  kiln::Rng rng(42);
  expect_rejected<kiln::ValueError>(bare, b, &adam, nullptr, "no optimizer state");
  expect_rejected<kiln::ValueError>(bare, b, nullptr, &rng, "no RNG state");
  // An optimizer over other parameters: its load_state refuses, the graph is untouched.
  std::vector<kiln::Tensor> one = {kiln::Tensor::zeros({2})};
  kiln::optim::Adam small(one);
  expect_rejected<kiln::Error>(full, b, &small, &rng, "optimizer state");
}

TEST(Checkpoint, CorruptFilesAreFormatErrors) {
  Net a = build();
  kiln::Rng rng_a(3);
  kiln::optim::SGD sgd(kiln::nn::parameter_tensors(*a.g), {.lr = 0.1, .momentum = 0.9});
  const Bytes good =
      kiln::serialize_checkpoint(*a.g, {.optimizer = &sgd, .rng = &rng_a, .step = 2});
  Net b = build();
  kiln::Rng rng(1);
  for (std::size_t len = 0; len < good.size(); ++len) {
    const Bytes cut(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(len));
    expect_rejected<kiln::FormatError>(cut, b, nullptr, &rng, "");
  }
  // Behind a valid checksum too: every payload truncation.
  const std::span<const std::uint8_t> payload(good.data() + 48, good.size() - 48);
  for (std::size_t len = 0; len < payload.size(); ++len) {
    const auto cut =
        kiln::internal::wrap_envelope(kiln::internal::checkpoint_magic, 1, payload.first(len));
    expect_rejected<kiln::FormatError>(cut, b, &sgd, &rng, "");
  }
  Bytes flipped = good;
  flipped[good.size() / 2] ^= 4;
  expect_rejected<kiln::FormatError>(flipped, b, nullptr, nullptr, "checksum");
  Bytes model_magic = good;
  model_magic[1] = 'I';
  model_magic[2] = 'L';
  model_magic[3] = 'N';
  expect_rejected<kiln::FormatError>(model_magic, b, nullptr, nullptr, "not a Kiln checkpoint");
  Bytes future = good;
  future[4] = 9;
  expect_rejected<kiln::FormatError>(future, b, nullptr, nullptr, "format version 9 is newer");
}

}  // namespace
