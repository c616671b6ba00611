// Sequence models shipped: a model with a bidirectional LSTM over variable-length rows
// (lengths), sinusoidal positions, masked multi-head attention, a causal pre-norm
// transformer block with exact GELU and a GRU, trained by kiln::train::Trainer and saved
// by it, runs through kiln::infer::Model and the C API (kiln.h) with outputs within 1e-5 of
// the training graph's Executable; its file keeps every op and attribute (reverse, causal)
// and re-saves to the same content hash; the training-only sequence ops cannot be saved.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "kiln.h"
#include "kiln/core/error.hpp"
#include "kiln/core/rng.hpp"
#include "kiln/data/dataset.hpp"
#include "kiln/infer/model.hpp"
#include "kiln/io/load_graph.hpp"
#include "kiln/io/model_file.hpp"
#include "kiln/nn/layers.hpp"
#include "kiln/nn/sequence.hpp"
#include "kiln/ops.hpp"
#include "kiln/optim/optimizer.hpp"
#include "kiln/runtime/executable.hpp"
#include "kiln/train/trainer.hpp"
#include "trainer_test_util.hpp"

namespace {

using kiln::Tensor;
constexpr std::int64_t steps = 6, features = 3, classes = 3;

struct SequenceModel {
  kiln::Graph g;
  kiln::Value x, lengths, label, logits, probs, loss;
};

/// [B, 6, 3] + lengths [B] -> class probabilities [B, 3].
std::unique_ptr<SequenceModel> build() {
  auto m = std::make_unique<SequenceModel>();
  kiln::Graph& g = m->g;
  m->x = g.input("x", {kiln::batch, steps, features});
  m->lengths = g.input("lengths", {kiln::batch}, kiln::DType::i32);
  m->label = g.input("label", {kiln::batch}, kiln::DType::i32);
  const kiln::Value mask = kiln::sequence_mask(m->lengths, steps);
  const kiln::nn::RecurrentOutput r = kiln::nn::lstm(
      m->x, {.hidden = 4, .bidirectional = true, .lengths = m->lengths, .name = "lstm"});
  kiln::Value h = kiln::nn::positional_encoding(r.sequence, {.name = "pos"});  // [B, 6, 8]
  h = kiln::nn::multi_head_attention(h, h, h, {.heads = 2, .key_mask = mask, .name = "attn"});
  h = kiln::nn::transformer_encoder_layer(h, {.heads = 2,
                                              .feedforward = 12,
                                              .activation = kiln::nn::Activation::gelu,
                                              .norm_first = true,
                                              .key_mask = mask,
                                              .causal = true,
                                              .name = "enc"});
  const kiln::nn::RecurrentOutput gr =
      kiln::nn::gru(h, {.hidden = 5, .lengths = m->lengths, .name = "gru"});
  const kiln::Value last = kiln::last_valid_step(gr.sequence, m->lengths);
  m->logits = kiln::nn::dense(last, classes, {.name = "out"});
  m->probs = kiln::softmax(m->logits, -1, "probs");
  m->loss = kiln::softmax_cross_entropy(m->logits, m->label, "loss");
  return m;
}

/// Rows whose class is the sign pattern of the mean of their valid steps.
kiln::data::Dataset make_data(std::int64_t rows, std::uint64_t seed) {
  kiln::Rng rng(seed);
  std::vector<float> x(static_cast<std::size_t>(rows * steps * features));
  std::vector<std::int32_t> len(static_cast<std::size_t>(rows)), y(len.size());
  for (std::int64_t b = 0; b < rows; ++b) {
    len[static_cast<std::size_t>(b)] =
        static_cast<std::int32_t>(rng.uniform(1.0, steps + 1 - 1e-9));
    double s = 0;
    for (std::int64_t i = 0; i < steps * features; ++i) {
      const float v = static_cast<float>(rng.uniform(-1.0, 1.0));
      x[static_cast<std::size_t>(b * steps * features + i)] = v;
      if (i / features < len[static_cast<std::size_t>(b)] && i % features == 0) s += v;
    }
    y[static_cast<std::size_t>(b)] = s < -0.3 ? 0 : s > 0.3 ? 2 : 1;
  }
  return kiln::data::Dataset({{"x", Tensor::from(x, kiln::Shape{rows, steps, features})},
                              {"lengths", Tensor::from(len, kiln::Shape{rows})},
                              {"label", Tensor::from(y, kiln::Shape{rows})}},
                             {.features = "x", .target = "label"});
}

/// Fresh rows to compare outputs on: lengths 0 (no valid step) to 6, and a full row.
kiln::Feeds probe_feeds(std::int64_t rows) {
  kiln::Rng rng(99);
  std::vector<float> x(static_cast<std::size_t>(rows * steps * features));
  for (auto& v : x) v = static_cast<float>(rng.uniform(-1.5, 1.5));
  std::vector<std::int32_t> len(static_cast<std::size_t>(rows));
  for (std::int64_t b = 0; b < rows; ++b)
    len[static_cast<std::size_t>(b)] = static_cast<std::int32_t>(b % (steps + 1));
  return {{"x", Tensor::from(x, kiln::Shape{rows, steps, features})},
          {"lengths", Tensor::from(len, kiln::Shape{rows})}};
}

void expect_within(const std::vector<float>& got, const std::vector<float>& want, double tol,
                   const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (std::size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(got[i], want[i], tol * std::max(1.0, std::abs(double(want[i]))))
        << what << " element " << i;
}

/// Trains the model for a few epochs with the Trainer and saves it with the Trainer.
struct Trained {
  std::unique_ptr<SequenceModel> model = build();
  std::string path;
  double first_loss = 0, last_loss = 0;
};

Trained& trained() {
  static Trained t = [] {
    Trained r;
    SequenceModel& m = *r.model;
    kiln::optim::Adam opt(kiln::nn::named_parameters(m.g), {.lr = 0.01});
    kiln::train::TrainerOptions o;
    o.loss = m.loss;
    o.predictions = m.logits;
    o.optimizer = &opt;
    o.metrics = {"accuracy"};
    o.target = "label";
    o.model.inputs = {m.x, m.lengths};
    o.model.outputs = {m.probs};
    o.model.output_names = {"probs"};
    o.model.metadata.name = "sequence-test";
    kiln::train::Trainer trainer(m.g, o);
    const kiln::train::History h = trainer.fit(
        make_data(96, 7),
        {.epochs = 4, .batch_size = 16, .seed = 3, .progress = kiln::train::Progress::none});
    r.first_loss = h.epochs.front().at("loss");
    r.last_loss = h.epochs.back().at("loss");
    r.path = kiln_test::fresh_dir("sequence_model_file") + "/sequence.kiln";
    trainer.save_model(r.path);
    return r;
  }();
  return t;
}

TEST(SequenceModelFile, TrainerSavedModelRunsInInferModelWithin1e5) {
  Trained& t = trained();
  EXPECT_LT(t.last_loss, t.first_loss);  // it trained
  const kiln::infer::Model model = kiln::infer::Model::load(t.path);
  ASSERT_EQ(model.inputs().size(), 2u);
  EXPECT_EQ(model.inputs()[0].name, "x");
  EXPECT_EQ(model.inputs()[1].name, "lengths");
  EXPECT_EQ(model.inputs()[1].dtype, kiln::DType::i32);
  kiln::Executable exe(t.model->g, {t.model->probs});
  for (const std::int64_t rows : {1, 7, 20}) {
    const kiln::Feeds feeds = probe_feeds(rows);
    const std::vector<float> want = exe.run(feeds)[0].to_vector<float>();
    const std::vector<float> got = model.run(feeds)[0].to_vector<float>();
    expect_within(got, want, 1e-5, "infer::Model batch " + std::to_string(rows));
    // Rows are probabilities (no NaN from the row with no valid step).
    for (std::int64_t b = 0; b < rows; ++b) {
      double s = 0;
      for (std::int64_t c = 0; c < classes; ++c)
        s += got[static_cast<std::size_t>(b * classes + c)];
      EXPECT_NEAR(s, 1.0, 1e-5);
    }
  }
  // The reference kernels agree too (the file decoded, not the training graph's plan).
  const kiln::infer::Model ref = kiln::infer::Model::load(t.path, {.backend = "reference"});
  const kiln::Feeds feeds = probe_feeds(7);
  expect_within(ref.run(feeds)[0].to_vector<float>(), exe.run(feeds)[0].to_vector<float>(), 1e-5,
                "reference kernels");
}

TEST(SequenceModelFile, TrainerSavedModelRunsThroughTheCApiWithin1e5) {
  Trained& t = trained();
  kiln_model* model = nullptr;
  ASSERT_EQ(kiln_model_load(t.path.c_str(), &model), KILN_OK) << kiln_last_error_message();
  size_t n_in = 0, n_out = 0;
  ASSERT_EQ(kiln_model_num_inputs(model, &n_in), KILN_OK);
  ASSERT_EQ(kiln_model_num_outputs(model, &n_out), KILN_OK);
  ASSERT_EQ(n_in, 2u);
  ASSERT_EQ(n_out, 1u);
  const int64_t* sig = nullptr;
  size_t rank = 0;
  ASSERT_EQ(kiln_model_input_shape(model, 0, &sig, &rank), KILN_OK);
  ASSERT_EQ(rank, 3u);
  EXPECT_EQ(sig[0], KILN_BATCH);
  EXPECT_EQ(sig[1], steps);
  EXPECT_EQ(sig[2], features);

  kiln::Executable exe(t.model->g, {t.model->probs});
  const std::int64_t rows = 9;
  const kiln::Feeds feeds = probe_feeds(rows);
  const std::vector<float> want = exe.run(feeds)[0].to_vector<float>();
  const std::vector<float> x = feeds[0].second.to_vector<float>();
  const std::vector<std::int32_t> len = feeds[1].second.to_vector<std::int32_t>();
  const int64_t x_dims[3] = {rows, steps, features}, len_dims[1] = {rows};
  kiln_tensor* inputs[2] = {nullptr, nullptr};
  ASSERT_EQ(kiln_tensor_create(KILN_F32, x_dims, 3, x.data(), x.size() * sizeof(float), &inputs[0]),
            KILN_OK);
  ASSERT_EQ(kiln_tensor_create(KILN_I32, len_dims, 1, len.data(), len.size() * sizeof(std::int32_t),
                               &inputs[1]),
            KILN_OK);
  const char* names[2] = {"x", "lengths"};
  kiln_tensor* out = nullptr;
  ASSERT_EQ(kiln_model_run(model, names, inputs, 2, &out, 1), KILN_OK) << kiln_last_error_message();
  size_t numel = 0;
  ASSERT_EQ(kiln_tensor_numel(out, &numel), KILN_OK);
  std::vector<float> got(numel);
  ASSERT_EQ(kiln_tensor_copy_to(out, got.data(), numel * sizeof(float)), KILN_OK);
  expect_within(got, want, 1e-5, "C API");

  // A length beyond the steps is refused with a status and a message, not a crash.
  std::vector<std::int32_t> bad = len;
  bad[2] = steps + 1;
  kiln_tensor* bad_len = nullptr;
  ASSERT_EQ(kiln_tensor_create(KILN_I32, len_dims, 1, bad.data(), bad.size() * sizeof(std::int32_t),
                               &bad_len),
            KILN_OK);
  kiln_tensor* bad_inputs[2] = {inputs[0], bad_len};
  kiln_tensor* bad_out = nullptr;
  EXPECT_NE(kiln_model_run(model, names, bad_inputs, 2, &bad_out, 1), KILN_OK);
  EXPECT_EQ(bad_out, nullptr);
  // (the first op to see it names it: "... 7 at position 2 is outside [0, 7)")
  EXPECT_NE(std::string(kiln_last_error_message()).find("7"), std::string::npos)
      << kiln_last_error_message();
  kiln_tensor_free(bad_len);
  kiln_tensor_free(out);
  kiln_tensor_free(inputs[0]);
  kiln_tensor_free(inputs[1]);
  kiln_model_free(model);
}

TEST(SequenceModelFile, RoundTripKeepsOpsAttributesAndContentHash) {
  Trained& t = trained();
  const kiln::LoadedGraph lg = kiln::load_graph(t.path);
  std::map<kiln::Op, int> ops;
  bool reverse_lstm = false, forward_lstm = false, causal = false, masked = false;
  for (const kiln::Node& n : lg.graph->nodes()) {
    ++ops[n.op];
    if (n.op == kiln::Op::lstm) (n.attrs.reverse ? reverse_lstm : forward_lstm) = true;
    if (n.op == kiln::Op::attention) {
      causal = causal || n.attrs.causal;
      masked = masked || n.inputs.size() == 4;
    }
  }
  EXPECT_EQ(ops[kiln::Op::lstm], 2);  // both directions
  EXPECT_EQ(ops[kiln::Op::gru], 1);
  EXPECT_EQ(ops[kiln::Op::attention], 2);
  EXPECT_GE(ops[kiln::Op::gelu], 1);
  EXPECT_TRUE(reverse_lstm && forward_lstm && causal && masked);
  for (const kiln::Op op : {kiln::Op::lstm_backward, kiln::Op::gru_backward})
    EXPECT_EQ(ops.count(op), 0u) << kiln::op_name(op);
  EXPECT_EQ(lg.graph->find("lstm.weight_hh_l0_reverse").shape(), (kiln::Shape{16, 4}));
  EXPECT_EQ(lg.graph->find("enc.self_attn.in_proj_weight").shape(), (kiln::Shape{24, 8}));

  // Saved again: the same content hash, and the same outputs bit for bit.
  const std::vector<std::uint8_t> again = kiln::serialize_model(*lg.graph, lg.save_options());
  EXPECT_EQ(kiln::model_content_hash(again), lg.content_hash);
  const kiln::infer::Model a = kiln::infer::Model::load(t.path);
  const kiln::infer::Model b = kiln::infer::Model::load(again, "again");
  const kiln::Feeds feeds = probe_feeds(5);
  EXPECT_EQ(a.run(feeds)[0].to_vector<float>(), b.run(feeds)[0].to_vector<float>());
}

TEST(SequenceModelFile, StatesWithTheBatchSecondAreSavedAndLoaded) {
  // h_n and c_n are [layers * directions, batch, H] (PyTorch's layout): a model file holds
  // nodes and outputs whose batch is not their first dim.
  kiln::Graph g;
  auto x = g.input("x", {kiln::batch, steps, features});
  const kiln::nn::RecurrentOutput r =
      kiln::nn::lstm(x, {.hidden = 3, .layers = 2, .bidirectional = true, .name = "lstm"});
  ASSERT_EQ(r.h_n.shape(), (kiln::Shape{4, kiln::batch, 3}));
  auto summary = kiln::tanh(kiln::sum(r.c_n, {0}));  // [batch, 3]
  const std::vector<std::uint8_t> bytes = kiln::serialize_model(
      g, {.inputs = {x}, .outputs = {r.h_n, summary}, .output_names = {"h_n", "c_sum"}});
  const kiln::infer::Model model = kiln::infer::Model::load(bytes, "states");
  EXPECT_EQ(model.outputs()[0].shape, (kiln::Shape{4, kiln::batch, 3}));
  kiln::Executable exe(g, {r.h_n, summary});
  const kiln::Feeds feeds = {probe_feeds(5)[0]};
  const std::vector<Tensor> want = exe.run(feeds), got = model.run(feeds);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].shape(), (kiln::Shape{4, 5, 3}));
  for (std::size_t k = 0; k < 2; ++k)
    expect_within(got[k].to_vector<float>(), want[k].to_vector<float>(), 1e-5,
                  "output " + std::to_string(k));
}

TEST(SequenceModelFile, TrainingOnlySequenceOpsAreNotSaved) {
  // A graph whose outputs need the gradient of an LSTM holds lstm_backward: refused.
  SequenceModel& m = *trained().model;
  kiln::Graph g;
  auto x = g.input("x", {2, 3, 8});
  auto w = g.parameter("w", Tensor::full({8, 2}, 0.1));
  auto h0 = g.input("h0", {2, 2});
  auto c0 = g.input("c0", {2, 2});
  auto y = kiln::lstm(x, w, h0, c0);
  auto back = kiln::lstm_backward(y, y, w, h0, c0, {}, "lstm_grad");
  try {
    (void)kiln::serialize_model(g, {.inputs = {x, h0, c0}, .outputs = {back}});
    ADD_FAILURE() << "lstm_backward was saved";
  } catch (const kiln::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("training-only op 'lstm_backward'"), std::string::npos)
        << e.what();
  }
  (void)m;
}

}  // namespace
