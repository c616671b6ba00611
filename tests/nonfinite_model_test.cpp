// NaN and infinity through whole models: an MLP and a CNN fed NaN or infinite pixels give
// the same answer on every backend (reference, Eigen, and the default best-available
// choice, which is oneDNN where built), at batch sizes that take different kernel paths.
// A sample holding a NaN gets NaN probabilities; the other samples of the batch keep their
// finite answers (kernels must not mix samples).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "kiln/nn/layers.hpp"
#include "kiln/ops.hpp"
#include "kiln/runtime/executable.hpp"
#include "tests/support/kernel_test_support.hpp"

namespace {

using kiln::Executable;
using kiln::Graph;
using kiln::Tensor;
using kiln::Value;
namespace nn = kiln::nn;
namespace support = kiln_test;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

struct Model {
  Graph graph;
  Value input;
  Value probs;
  std::int64_t features = 0;  // elements per sample
};

void build_mlp(Model& m) {
  m.input = m.graph.input("pixels", {kiln::batch, 64});
  Value h = nn::dense(m.graph, m.input, 96, {.activation = kiln::relu, .name = "fc1"});
  h = nn::dense(m.graph, h, 32, {.activation = kiln::relu, .name = "fc2"});
  m.probs = kiln::softmax(nn::dense(m.graph, h, 10, {.name = "fc3"}));
  m.features = 64;
}

void build_cnn(Model& m) {
  m.input = m.graph.input("image", {kiln::batch, 1, 12, 12});
  Value h = nn::conv2d(m.graph, m.input, 8, {3, 3},
                       {.padding = {1, 1}, .activation = kiln::relu, .name = "conv1"});
  h = nn::max_pool2d(m.graph, h, {2, 2});
  h = nn::conv2d(m.graph, h, 16, {3, 3},
                 {.padding = {1, 1}, .activation = kiln::relu, .name = "conv2"});
  h = nn::max_pool2d(m.graph, h, {2, 2});
  h = nn::dense(m.graph, kiln::flatten(h), 32, {.activation = kiln::relu, .name = "fc1"});
  m.probs = kiln::softmax(nn::dense(m.graph, h, 10, {.name = "fc2"}));
  m.features = 144;
}

/// Backends to compare: the reference oracle, Eigen alone, and the default choice.
const std::vector<std::string> kBackends = {"reference", "eigen", ""};
const std::int64_t kBatches[] = {1, 7, 64, 65};

std::string backend_label(const std::string& b) { return b.empty() ? "default" : b; }

/// Runs the model on `batch` samples of `input_shape`, values from fill(sample, element).
template <class Fill>
Tensor run_model(Model& m, const std::string& backend, std::int64_t batch, Fill fill) {
  kiln::Shape shape = m.input.shape();
  shape[0] = batch;
  Tensor x = Tensor::zeros(shape);
  float* p = x.data<float>();
  kiln::Rng rng(11);
  for (std::int64_t s = 0; s < batch; ++s)
    for (std::int64_t e = 0; e < m.features; ++e)
      p[s * m.features + e] = fill(s, e, static_cast<float>(rng.uniform(0.0, 1.0)));
  Executable exe(m.graph, {m.probs}, {.backend = backend});
  return exe.run({{m.input.name(), x}})[0];
}

void expect_row_nan(const Tensor& probs, std::int64_t row, const std::string& who) {
  for (std::int64_t k = 0; k < probs.dim(1); ++k)
    EXPECT_TRUE(std::isnan(probs.at(row * probs.dim(1) + k)))
        << who << ": sample " << row << " class " << k << " is "
        << probs.at(row * probs.dim(1) + k);
}

void expect_row_finite(const Tensor& probs, std::int64_t row, const std::string& who) {
  for (std::int64_t k = 0; k < probs.dim(1); ++k)
    EXPECT_TRUE(std::isfinite(probs.at(row * probs.dim(1) + k)))
        << who << ": sample " << row << " class " << k << " is "
        << probs.at(row * probs.dim(1) + k);
}

class NonfiniteModels : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override { GetParam() ? build_cnn(model_) : build_mlp(model_); }
  Model model_;
};

TEST_P(NonfiniteModels, AllNanInputGivesNanOnEveryBackend) {
  for (const auto& backend : kBackends)
    for (std::int64_t batch : kBatches) {
      const std::string who = backend_label(backend) + " batch " + std::to_string(batch);
      const Tensor probs =
          run_model(model_, backend, batch, [](auto, auto, float) { return kNaN; });
      for (std::int64_t s = 0; s < batch; ++s) expect_row_nan(probs, s, who);
    }
}

TEST_P(NonfiniteModels, OneNanPixelPoisonsOnlyItsSample) {
  // Sample s (every third one) carries a NaN at a pixel that moves with s.
  const auto fill = [&](std::int64_t s, std::int64_t e, float v) {
    return s % 3 == 1 && e == (s * 13) % model_.features ? kNaN : v;
  };
  for (const auto& backend : kBackends)
    for (std::int64_t batch : kBatches) {
      const std::string who = backend_label(backend) + " batch " + std::to_string(batch);
      const Tensor probs = run_model(model_, backend, batch, fill);
      for (std::int64_t s = 0; s < batch; ++s) {
        if (s % 3 == 1)
          expect_row_nan(probs, s, who);
        else
          expect_row_finite(probs, s, who);
      }
    }
}

TEST_P(NonfiniteModels, InfinitePixelsAgreeWithTheReference) {
  // +Inf and -Inf pixels: whatever IEEE arithmetic makes of them (Inf, or NaN from
  // Inf - Inf), every backend must give the reference's answer, NaN where it has NaN.
  const auto fill = [&](std::int64_t s, std::int64_t e, float v) {
    if (s % 2 == 0 && e == (s * 7) % model_.features) return kInf;
    if (s % 3 == 0 && e == (s * 5 + 3) % model_.features) return -kInf;
    return v;
  };
  for (std::int64_t batch : kBatches) {
    const Tensor want = run_model(model_, "reference", batch, fill);
    for (const auto& backend : kBackends) {
      if (backend == "reference") continue;
      const Tensor got = run_model(model_, backend, batch, fill);
      support::expect_close_nan_aware(got, want, {.rel = 1e-4, .abs = 1e-5},
                                      backend_label(backend) + " batch " + std::to_string(batch));
    }
  }
}

TEST_P(NonfiniteModels, FiniteInputStaysFiniteAndAgrees) {
  // The control: without special values every backend answers finite probabilities.
  for (std::int64_t batch : kBatches) {
    const auto fill = [](auto, auto, float v) { return v; };
    const Tensor want = run_model(model_, "reference", batch, fill);
    for (std::int64_t s = 0; s < batch; ++s) expect_row_finite(want, s, "reference");
    for (const auto& backend : kBackends) {
      if (backend == "reference") continue;
      support::expect_close_nan_aware(run_model(model_, backend, batch, fill), want,
                                      {.rel = 1e-4, .abs = 1e-5}, backend_label(backend));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Models, NonfiniteModels, ::testing::Values(false, true),
                         [](const auto& param_info) { return param_info.param ? "Cnn" : "Mlp"; });

}  // namespace
