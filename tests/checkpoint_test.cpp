// Checkpoints: resuming from one continues training exactly as if it never stopped
// (parameters, batch-norm buffers, optimizer state, step, RNG), and a checkpoint that does
// not fit or is corrupt changes nothing.
#include "kiln/train/checkpoint.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <memory>
#include <span>

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
  // Behind a valid checksum too: every payload truncation, as version 3 and as version 1
  // (whose payload ends before version 3's run counter and extra state: 13 bytes here).
  const std::span<const std::uint8_t> payload(good.data() + 48, good.size() - 48);
  for (std::size_t len = 0; len < payload.size(); ++len) {
    const auto cut = kiln::internal::wrap_envelope(
        kiln::internal::checkpoint_magic, kiln::checkpoint_format_version, payload.first(len));
    expect_rejected<kiln::FormatError>(cut, b, &sgd, &rng, "");
  }
  const auto v1_payload = payload.first(payload.size() - 13);
  for (std::size_t len = 0; len < v1_payload.size(); ++len) {
    const auto cut =
        kiln::internal::wrap_envelope(kiln::internal::checkpoint_magic, 1, v1_payload.first(len));
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

// y = relu(x @ w1 + b1) @ w2 + b2 with w1, w2 [4, 4] and b1, b2 [4]: equal shapes, so a
// checkpoint matched by position would load into the wrong parameters without an error.
// `reversed` creates the second layer's parameters first; their values depend on the name.
kiln::Value reorder_net(kiln::Graph& g, bool reversed) {
  auto x = g.input("x", {kiln::batch, 4});
  auto t = g.input("t", {kiln::batch, 4});
  auto param = [&](const std::string& name, std::int64_t n, float scale) {
    std::vector<float> v(static_cast<std::size_t>(n));
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = scale * static_cast<float>(i % 7) - 0.3f;
    return g.parameter(name, kiln::Tensor::from(v, n == 16 ? kiln::Shape{4, 4} : kiln::Shape{4}));
  };
  kiln::Value w1, b1, w2, b2;
  if (!reversed) {
    w1 = param("w1", 16, 0.1f);
    b1 = param("b1", 4, 0.2f);
    w2 = param("w2", 16, -0.15f);
    b2 = param("b2", 4, 0.05f);
  } else {  // the second layer first: every position keeps its shape
    w2 = param("w2", 16, -0.15f);
    b2 = param("b2", 4, 0.05f);
    w1 = param("w1", 16, 0.1f);
    b1 = param("b1", 4, 0.2f);
  }
  auto y = kiln::matmul(kiln::relu(kiln::matmul(x, w1) + b1), w2) + b2;
  return kiln::mse(y, t);
}

kiln::Feeds reorder_batch(int k) {
  std::vector<float> x(8), t(8);
  for (std::size_t i = 0; i < 8; ++i) {
    x[i] = 0.25f * static_cast<float>((i * 3 + static_cast<std::size_t>(k)) % 5) - 0.5f;
    t[i] = 0.1f * static_cast<float>((i + static_cast<std::size_t>(k)) % 4);
  }
  return {{"x", kiln::Tensor::from(x, {2, 4})}, {"t", kiln::Tensor::from(t, {2, 4})}};
}

std::map<std::string, std::vector<float>> by_name(kiln::Graph& g) {
  std::map<std::string, std::vector<float>> out;
  for (auto v : g.parameters()) out[v.name()] = g.tensor(v).to_vector<float>();
  return out;
}

TEST(Checkpoint, OptimizerStateSurvivesAReorderingOfParameters) {
  kiln::Graph a;
  kiln::TrainStep step_a(reorder_net(a, false));
  kiln::optim::Adam opt_a(step_a.parameters(), {.lr = 0.05});  // plain tensors: "0", "1", ...
  for (int k = 0; k < 3; ++k) {
    step_a.run(reorder_batch(k));
    opt_a.step(step_a.gradients());
  }
  const Bytes ckpt = kiln::serialize_checkpoint(a, {.optimizer = &opt_a, .step = 3});
  for (int k = 3; k < 5; ++k) {
    step_a.run(reorder_batch(k));
    opt_a.step(step_a.gradients());
  }
  const auto want = by_name(a);

  for (const bool named : {false, true}) {
    SCOPED_TRACE(named ? "optimizer over named parameters" : "optimizer over plain tensors");
    kiln::Graph b;
    kiln::TrainStep step_b(reorder_net(b, true));
    ASSERT_EQ(step_b.parameter_values()[0].name(), "w2");  // really another order
    std::unique_ptr<kiln::optim::Adam> opt_b =
        named ? std::make_unique<kiln::optim::Adam>(step_b.named_parameters(),
                                                    kiln::optim::AdamOptions{.lr = 0.05})
              : std::make_unique<kiln::optim::Adam>(step_b.parameters(),
                                                    kiln::optim::AdamOptions{.lr = 0.05});
    kiln::restore_checkpoint(ckpt, "ckpt", b, {.optimizer = opt_b.get()});
    EXPECT_EQ(opt_b->step_count(), 3);
    for (int k = 3; k < 5; ++k) {
      step_b.run(reorder_batch(k));
      opt_b->step(step_b.gradients());
    }
    // Bit for bit what uninterrupted training gives: moments and parameters by name.
    EXPECT_EQ(by_name(b), want);
  }

  // Matched by position, the same state loads without complaint into the wrong
  // parameters (position 0 is A's w1 but B's w2) and training goes elsewhere: the
  // comparison above can fail.
  {
    kiln::Graph b;
    kiln::TrainStep step_b(reorder_net(b, true));
    kiln::optim::Adam opt_b(step_b.parameters(), {.lr = 0.05});
    kiln::restore_checkpoint(ckpt, "ckpt", b, {});
    kiln::Graph a2;
    kiln::TrainStep step_a2(reorder_net(a2, false));
    kiln::optim::Adam opt_a2(step_a2.parameters(), {.lr = 0.05});
    kiln::restore_checkpoint(ckpt, "ckpt", a2, {.optimizer = &opt_a2});
    opt_b.load_state(opt_a2.state());  // "0.exp_avg" ... by position
    for (int k = 3; k < 5; ++k) {
      step_b.run(reorder_batch(k));
      opt_b.step(step_b.gradients());
    }
    EXPECT_NE(by_name(b), want);
  }
}

TEST(Checkpoint, OptimizerStateForOtherParametersIsRefusedNamingThem) {
  kiln::Graph a;
  kiln::TrainStep step_a(reorder_net(a, false));
  kiln::optim::Adam all_a(step_a.named_parameters());
  const Bytes all = kiln::serialize_checkpoint(a, {.optimizer = &all_a});
  // An optimizer over w1 and b1 only.
  auto subset = [](kiln::Graph& g) {
    return kiln::optim::NamedParameters{{"w1", g.tensor(g.find("w1"))},
                                        {"b1", g.tensor(g.find("b1"))}};
  };
  kiln::optim::Adam part_a(subset(a));
  const Bytes part = kiln::serialize_checkpoint(a, {.optimizer = &part_a});

  Net b{std::make_unique<kiln::Graph>(), {}};
  b.loss = reorder_net(*b.g, true);
  kiln::optim::Adam part_b(subset(*b.g));
  expect_rejected<kiln::ValueError>(all, b, &part_b, nullptr,
                                    "state for parameters it does not have: 'b2', 'w2'");
  kiln::optim::Adam all_b(kiln::nn::named_parameters(*b.g));
  expect_rejected<kiln::ValueError>(part, b, &all_b, nullptr, "no state for 'b2', 'w2'");
  // The matching one loads.
  EXPECT_NO_THROW(kiln::restore_checkpoint(part, "ckpt", *b.g, {.optimizer = &part_b}));
}

TEST(Checkpoint, Version1OptimizerStateLoadsByPosition) {
  // Version 1 named the entries by the optimizer's positions: an optimizer over tensors
  // outside the graph still writes them that way; the payload is rewrapped as version 1.
  kiln::Graph a;
  reorder_net(a, false);
  std::vector<kiln::Tensor> copies;
  for (auto v : a.parameters()) copies.push_back(a.tensor(v).clone());
  kiln::optim::Adam outside(copies, {.lr = 0.1});
  std::vector<kiln::Tensor> grads;
  for (const auto& c : copies) grads.push_back(kiln::Tensor::full(c.shape(), 0.5));
  outside.step(grads);
  const Bytes v3 = kiln::serialize_checkpoint(a, {.optimizer = &outside});
  // Without version 3's run counter flag and value and extra count (13 bytes).
  const std::span<const std::uint8_t> payload(v3.data() + 48, v3.size() - 48 - 13);
  const Bytes v1 = kiln::internal::wrap_envelope(kiln::internal::checkpoint_magic, 1, payload);

  kiln::Graph b;
  reorder_net(b, false);
  kiln::optim::Adam opt(kiln::nn::named_parameters(b), {.lr = 0.1});  // named w1, b1, ...
  kiln::restore_checkpoint(v1, "old.kckp", b, {.optimizer = &opt});
  const auto src = outside.state(), dst = opt.state();
  ASSERT_EQ(src.size(), dst.size());
  for (std::size_t i = 0; i < src.size(); ++i) {
    EXPECT_EQ(dst[i].second.to(kiln::DType::f64).to_vector<double>(),
              src[i].second.to(kiln::DType::f64).to_vector<double>())
        << dst[i].first;
  }
  EXPECT_EQ(opt.step_count(), 1);
}

}  // namespace
