// Reproducibility: stop-and-resume from a checkpoint equals never stopping, bitwise, for a
// model with dropout (the run counter travels in the checkpoint); named extra state comes
// back as saved; two identical seeded runs save byte-identical model files when the
// creation time is fixed.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <vector>

#include "kiln/infer/model.hpp"
#include "kiln/kiln.hpp"
#include "kiln/train/checkpoint.hpp"
#include "kiln/train/train_step.hpp"

namespace {

using Bytes = std::vector<std::uint8_t>;

struct Net {
  std::unique_ptr<kiln::Graph> g = std::make_unique<kiln::Graph>();
  kiln::Value x, loss, out;
};

/// dense -> relu -> dropout(0.3) -> dense, mse loss; the same seeded weights every time.
Net build() {
  Net n;
  kiln::Graph& g = *n.g;
  n.x = g.input("x", {kiln::batch, 6});
  auto t = g.input("t", {kiln::batch, 2});
  auto h = kiln::nn::dense(n.x, 16, {.activation = kiln::relu, .name = "fc1"});
  h = kiln::nn::dropout(h, 0.3, {.name = "drop"});
  n.out = kiln::nn::dense(h, 2, {.name = "fc2"});
  n.loss = kiln::mse(n.out, t);
  return n;
}

/// Batch k: a fixed function of k, so both runs see the same data.
kiln::Feeds batch(int k) {
  kiln::Rng rng(1000 + static_cast<std::uint64_t>(k));
  std::vector<float> x(8 * 6), t(8 * 2);
  for (auto& v : x) v = static_cast<float>(rng.normal());
  for (std::size_t i = 0; i < 8; ++i) {
    t[2 * i] = x[6 * i] - 0.5f * x[6 * i + 1];
    t[2 * i + 1] = x[6 * i + 2] * x[6 * i + 3];
  }
  return {{"x", kiln::Tensor::from(x, {8, 6})}, {"t", kiln::Tensor::from(t, {8, 2})}};
}

std::vector<double> train(kiln::TrainStep& step, kiln::optim::Optimizer& opt, int from, int to) {
  std::vector<double> losses;
  for (int k = from; k < to; ++k) {
    losses.push_back(step.run(batch(k)));
    opt.step(step.gradients());
  }
  return losses;
}

/// Every parameter's bytes.
Bytes weights(kiln::Graph& g) {
  Bytes out;
  for (auto v : g.parameters()) {
    const kiln::Tensor& t = g.tensor(v);
    const auto* p = static_cast<const std::uint8_t*>(t.raw());
    out.insert(out.end(), p, p + t.nbytes());
  }
  return out;
}

TEST(Reproducibility, ResumingWithDropoutMatchesNeverStoppingBitwise) {
  // Never stopping: 50 steps, checkpoint, 100 more.
  Net a = build();
  kiln::TrainStep step_a(a.loss);
  kiln::optim::Adam opt_a(step_a.named_parameters(), {.lr = 1e-2});
  train(step_a, opt_a, 0, 50);
  const Bytes ckpt = kiln::serialize_checkpoint(
      *a.g, {.optimizer = &opt_a,
             .step = 50,
             .train_step = &step_a,
             .extra = {{"epoch", kiln::Tensor::scalar(3, kiln::DType::i64)},
                       {"best", kiln::Tensor::scalar(0.25, kiln::DType::f64)}}});
  EXPECT_EQ(step_a.run_count(), 50u);
  const auto losses_a = train(step_a, opt_a, 50, 150);
  const Bytes want = weights(*a.g);

  // Resumed: a fresh model, optimizer and TrainStep, restored, then the same 100 steps.
  Net b = build();
  kiln::TrainStep step_b(b.loss);
  kiln::optim::Adam opt_b(step_b.named_parameters(), {.lr = 1e-2});
  const auto info =
      kiln::restore_checkpoint(ckpt, "ckpt", *b.g, {.optimizer = &opt_b, .train_step = &step_b});
  EXPECT_TRUE(info.has_run_count);
  EXPECT_EQ(info.run_count, 50u);
  EXPECT_EQ(step_b.run_count(), 50u);
  ASSERT_EQ(info.extra.size(), 2u);
  EXPECT_EQ(info.extra[0].first, "epoch");
  EXPECT_EQ(info.extra[0].second.dtype(), kiln::DType::i64);
  EXPECT_EQ(info.extra[0].second.item(), 3.0);
  EXPECT_EQ(info.extra[1].first, "best");
  EXPECT_EQ(info.extra[1].second.item(), 0.25);
  const auto losses_b = train(step_b, opt_b, 50, 150);
  EXPECT_EQ(losses_b, losses_a);
  EXPECT_TRUE(weights(*b.g) == want) << "weights differ after resuming";

  // Without the run counter the masks differ, and so does training: the test can fail.
  Net c = build();
  kiln::TrainStep step_c(c.loss);
  kiln::optim::Adam opt_c(step_c.named_parameters(), {.lr = 1e-2});
  kiln::restore_checkpoint(ckpt, "ckpt", *c.g, {.optimizer = &opt_c});
  EXPECT_EQ(step_c.run_count(), 0u);
  const auto losses_c = train(step_c, opt_c, 50, 150);
  EXPECT_NE(losses_c, losses_a);
  EXPECT_FALSE(weights(*c.g) == want);
}

TEST(Reproducibility, RunCounterAndExtraStateErrors) {
  Net a = build();
  kiln::TrainStep step(a.loss);
  // Saved without a TrainStep: restoring a run counter is refused, nothing changes.
  const Bytes no_counter = kiln::serialize_checkpoint(*a.g, {.step = 4});
  step.set_run_count(17);
  try {
    kiln::restore_checkpoint(no_counter, "c.kckp", *a.g, {.train_step = &step});
    ADD_FAILURE() << "no error";
  } catch (const kiln::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("c.kckp: the checkpoint has no run counter"),
              std::string::npos)
        << e.what();
  }
  EXPECT_EQ(step.run_count(), 17u);
  const auto info = kiln::restore_checkpoint(no_counter, "c.kckp", *a.g);
  EXPECT_FALSE(info.has_run_count);
  EXPECT_TRUE(info.extra.empty());
  // Extra state needs unique, non-empty names.
  const auto one = kiln::Tensor::scalar(1);
  EXPECT_THROW(kiln::serialize_checkpoint(*a.g, {.extra = {{"", one}}}), kiln::ValueError);
  try {
    kiln::serialize_checkpoint(*a.g, {.extra = {{"epoch", one}, {"epoch", one}}});
    ADD_FAILURE() << "no error";
  } catch (const kiln::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("'epoch' is given twice"), std::string::npos);
  }
}

/// Builds, trains 20 seeded steps and saves with a fixed creation time.
Bytes train_and_save(const std::string& created) {
  Net n = build();
  kiln::TrainStep step(n.loss);
  kiln::optim::Adam opt(step.named_parameters(), {.lr = 1e-2});
  train(step, opt, 0, 20);
  kiln::ModelMetadata meta;
  meta.name = "repro";
  meta.labels = {"a", "b"};
  meta.metrics = {{"loss", 0.5}};
  return kiln::serialize_model(
      *n.g, {.inputs = {n.x}, .outputs = {n.out}, .metadata = meta, .creation_time = created});
}

TEST(Reproducibility, IdenticalRunsSaveByteIdenticalModelFiles) {
  const Bytes first = train_and_save("2026-01-02T03:04:05Z");
  const Bytes second = train_and_save("2026-01-02T03:04:05Z");
  EXPECT_TRUE(first == second);
  const Bytes later = train_and_save("2026-01-02T03:04:06Z");
  EXPECT_FALSE(first == later);
  EXPECT_EQ(kiln::model_content_hash(first), kiln::model_content_hash(later));
  // The time is stored as given.
  auto model = kiln::infer::Model::load(std::span<const std::uint8_t>(first));
  EXPECT_EQ(model.metadata().created, "2026-01-02T03:04:05Z");
  for (const char* bad : {"2026-01-02", "2026-01-02T03:04:05", "2026-13-02T03:04:05Z",
                          "2026-01-02 03:04:05Z", "yesterday"}) {
    try {
      train_and_save(bad);
      ADD_FAILURE() << bad;
    } catch (const kiln::ValueError& e) {
      EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
    }
  }
}

}  // namespace
