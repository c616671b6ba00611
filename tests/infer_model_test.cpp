// kiln::infer::Model: round trips of trained models through the model file (bitwise equal
// to kiln::Executable on the same backend, within 1e-5 relative across backends), many
// threads on one model, and feed / file errors.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "kiln/infer/model.hpp"
#include "kiln/io/model_file.hpp"
#include "kiln/kiln.hpp"
#include "kiln/nn/layers.hpp"
#include "kiln/optim/optimizer.hpp"
#include "kiln/train/train_step.hpp"

using namespace kiln;

namespace {

// A model built and trained for a few steps with Kiln::kiln: x -> probabilities.
struct Trained {
  std::unique_ptr<Graph> graph = std::make_unique<Graph>();
  Value x;
  Value probs;
  Shape example;  // one example's shape (without the batch dim)
};

Tensor random_tensor(const Shape& shape, std::uint64_t seed, double lo = -1.0, double hi = 1.0) {
  Rng rng(seed);
  std::vector<float> v(static_cast<std::size_t>(shape.numel()));
  for (auto& f : v) f = static_cast<float>(lo + (hi - lo) * rng.uniform());
  return Tensor::from(v, shape);
}

Shape batched(std::int64_t n, const Shape& example) {
  std::vector<std::int64_t> dims{n};
  dims.insert(dims.end(), example.begin(), example.end());
  return Shape(dims);
}

// A few Adam steps on random data with random labels: weights and batch-norm running
// statistics move away from their initial values.
void train_a_little(Trained& m, Value logits) {
  Graph& g = *m.graph;
  Value labels = g.input("labels", {batch}, i32);
  TrainStep step(softmax_cross_entropy(logits, labels));
  optim::Adam opt(step.parameters(), {.lr = 1e-2});
  for (int i = 0; i < 5; ++i) {
    Rng rng(100 + static_cast<std::uint64_t>(i));
    std::vector<std::int32_t> y(16);
    for (auto& l : y) l = static_cast<std::int32_t>(rng.below(10));
    step.run({{"x", random_tensor(batched(16, m.example), 7 + static_cast<std::uint64_t>(i))},
              {"labels", Tensor::from(y, {16})}});
    opt.step(step.gradients());
  }
}

Trained make_mlp() {
  Trained m;
  m.example = Shape({20});
  Graph& g = *m.graph;
  m.x = g.input("x", {batch, 20});
  Value h = nn::dense(g, m.x, 32, {.activation = relu, .name = "fc1"});
  Value logits = nn::dense(g, h, 10, {.name = "fc2"});
  m.probs = softmax(logits, -1, "probs");
  train_a_little(m, logits);
  return m;
}

Trained make_cnn() {
  Trained m;
  m.example = Shape({1, 8, 8});
  Graph& g = *m.graph;
  m.x = g.input("x", {batch, 1, 8, 8});
  Value c = nn::conv2d(g, m.x, 4, {3, 3}, {.padding = {1, 1}, .name = "conv"});
  Value b = relu(nn::batch_norm(g, c, {.name = "bn"}));
  Value p = nn::max_pool2d(g, b, {2, 2});
  Value logits = nn::dense(g, flatten(p), 10, {.name = "fc"});
  m.probs = softmax(logits, -1, "probs");
  train_a_little(m, logits);
  return m;
}

std::vector<std::uint8_t> save(const Trained& m) {
  return serialize_model(*m.graph, {.inputs = {m.x}, .outputs = {m.probs}});
}

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() &&
         std::memcmp(a.contiguous().data<float>(), b.contiguous().data<float>(), a.nbytes()) == 0;
}

void expect_close(const Tensor& want, const Tensor& got, const std::string& what) {
  ASSERT_EQ(want.shape(), got.shape()) << what;
  const auto w = want.to_vector<float>();
  const auto o = got.to_vector<float>();
  for (std::size_t i = 0; i < w.size(); ++i) {
    const double tol = 1e-5 * std::max(std::abs(w[i]), std::abs(o[i])) + 1e-7;
    ASSERT_NEAR(w[i], o[i], tol) << what << " at " << i;
  }
}

void check_round_trip(const Trained& m) {
  const std::vector<std::uint8_t> bytes = save(m);
  infer::Model model = infer::Model::load(bytes);
  ASSERT_EQ(model.inputs().size(), 1u);
  EXPECT_EQ(model.inputs()[0].name, "x");
  EXPECT_EQ(model.inputs()[0].shape, batched(batch, m.example));
  ASSERT_EQ(model.outputs().size(), 1u);
  EXPECT_EQ(model.outputs()[0].name, "probs");
  EXPECT_EQ(model.format_version(), model_format_version);
  infer::Model eigen = infer::Model::load(bytes, "<memory>", {.backend = "eigen"});
  infer::Model reference = infer::Model::load(bytes, "<memory>", {.backend = "reference"});
  Executable exe(*m.graph, {m.probs});
  for (std::int64_t n : {1, 3, 5, 1}) {
    const Tensor in = random_tensor(batched(n, m.example), 1000 + static_cast<std::uint64_t>(n));
    const Tensor want = exe.run({{"x", in}}).at(0);
    const std::vector<Tensor> got = model.run({{"x", in}});
    ASSERT_EQ(got.size(), 1u);
    EXPECT_TRUE(bitwise_equal(want, got[0])) << "batch " << n;
    expect_close(want, eigen.run({{"x", in}}).at(0), "eigen, batch " + std::to_string(n));
    expect_close(want, reference.run({{"x", in}}).at(0), "reference, batch " + std::to_string(n));
  }
}

}  // namespace

TEST(InferModel, MlpRoundTripIsBitwiseEqual) { check_round_trip(make_mlp()); }

TEST(InferModel, CnnRoundTripIsBitwiseEqual) { check_round_trip(make_cnn()); }

TEST(InferModel, LoadsFromAPathAndKeepsMetadata) {
  const Trained m = make_mlp();
  const auto path =
      (std::filesystem::temp_directory_path() / "kiln_infer_model_test.kiln").string();
  ModelMetadata meta;
  meta.name = "mlp";
  meta.version = "1.2.3";
  meta.labels = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
  meta.metrics = {{"test_accuracy", 0.5}};
  save_model(path, *m.graph, {.inputs = {m.x}, .outputs = {m.probs}, .metadata = meta});
  const infer::Model model = infer::Model::load(path);
  std::filesystem::remove(path);
  EXPECT_EQ(model.metadata().name, "mlp");
  EXPECT_EQ(model.metadata().version, "1.2.3");
  EXPECT_EQ(model.metadata().labels, meta.labels);
  EXPECT_EQ(model.metadata().metrics, meta.metrics);
  const Tensor in = random_tensor({2, 20}, 5);
  EXPECT_TRUE(bitwise_equal(Executable(*m.graph, {m.probs}).run({{"x", in}}).at(0),
                            model.run({{"x", in}}).at(0)));
}

// 8 threads x 1,000 runs on one shared model, batch sizes 1 and 3 mixed: every output is
// bitwise the single-threaded one.
TEST(InferModel, ManyThreadsGiveTheSingleThreadedOutputs) {
  const Trained m = make_cnn();
  const infer::Model model = infer::Model::load(save(m));
  constexpr int inputs = 6;
  std::vector<Tensor> in, want;
  for (int i = 0; i < inputs; ++i) {
    in.push_back(
        random_tensor(batched(i % 2 ? 3 : 1, m.example), 50 + static_cast<std::uint64_t>(i)));
    want.push_back(model.run({{"x", in.back()}}).at(0));
  }
  std::atomic<int> mismatches{0}, failures{0}, done{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int r = 0; r < 1000; ++r) {
        const auto i = static_cast<std::size_t>((r + t) % inputs);
        try {
          if (!bitwise_equal(want[i], model.run({{"x", in[i]}}).at(0))) ++mismatches;
        } catch (...) {
          ++failures;
        }
        ++done;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(done.load(), 8000);
  EXPECT_EQ(mismatches.load(), 0);
  EXPECT_EQ(failures.load(), 0);
}

TEST(InferModel, RejectsBadFeeds) {
  const Trained m = make_mlp();
  const infer::Model model = infer::Model::load(save(m));
  const Tensor good = random_tensor({4, 20}, 3);
  EXPECT_NO_THROW(model.run({{"x", random_tensor({7, 20}, 4)}}));  // the batch dim is free
  EXPECT_THROW(model.run({{"y", good}}), NameError);
  EXPECT_THROW(model.run({}), NameError);
  EXPECT_THROW(model.run({{"x", good}, {"x", good}}), NameError);
  EXPECT_THROW(model.run({{"x", Tensor::zeros({4, 20}, i32)}}), DTypeError);
  EXPECT_THROW(model.run({{"x", random_tensor({4, 21}, 3)}}), ShapeError);
  EXPECT_THROW(model.run({{"x", random_tensor({80}, 3)}}), ShapeError);
  EXPECT_THROW(model.run({{"x", random_tensor({1, 4, 20}, 3)}}), ShapeError);
  try {
    model.run({{"pixels", good}});
    FAIL() << "no NameError";
  } catch (const NameError& e) {
    EXPECT_NE(std::string(e.what()).find("'pixels' is not an input (inputs: 'x')"),
              std::string::npos)
        << e.what();
  }
  // NaN inputs are refused only when the model was loaded to check them.
  Tensor with_nan = good.clone();
  with_nan.data<float>()[5] = std::nanf("");
  EXPECT_NO_THROW(model.run({{"x", with_nan}}));
  const infer::Model strict = infer::Model::load(save(m), "<memory>", {.check_finite_feeds = true});
  try {
    strict.run({{"x", with_nan}});
    FAIL() << "no ValueError";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("input 'x' holds nan at element 5"), std::string::npos)
        << e.what();
  }
}

TEST(InferModel, MissingFileIsAnIoErrorNamingIt) {
  const std::string path = "/nonexistent/dir/model.kiln";
  try {
    (void)infer::Model::load(path);
    FAIL() << "no IoError";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}

TEST(InferModel, RejectsUnknownBackends) {
  const Trained m = make_mlp();
  EXPECT_THROW((void)infer::Model::load(save(m), "<memory>", {.backend = "cuda"}), ValueError);
}
