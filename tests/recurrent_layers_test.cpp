// nn::lstm and nn::gru against PyTorch's nn.LSTM / nn.GRU (tests/data/recurrent_golden.txt,
// made once by tools/golden/recurrent.py in float64): outputs (the padded sequence, h_n,
// c_n) and the gradients of a scalar loss with respect to the input, the initial states and
// every parameter, with PyTorch's weights copied into Kiln's parameters by name. The f64
// graph runs on the reference kernels (within 1e-9), the f32 graph on the default (fast)
// kernels (within 1e-4). Also: the errors of bad shapes and lengths, and a small training
// run of an LSTM to a loss threshold.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "kiln/infer/model.hpp"
#include "kiln/io/model_file.hpp"
#include "kiln/kiln.hpp"
#include "kiln/nn/sequence.hpp"
#include "tests/support/golden_file.hpp"

namespace kiln {
namespace {

struct GoldenTensor {
  Shape shape;
  std::vector<double> values;
};

struct GoldenCase {
  std::string name;
  std::string kind;
  std::map<std::string, std::int64_t> attrs;
  std::map<std::string, GoldenTensor> tensors;
  std::vector<std::string> params;  // PyTorch's parameter names, in its order
};

std::vector<GoldenCase> load_golden() {
  std::vector<GoldenCase> cases;
  kiln_test::read_golden("recurrent_golden.txt", [&](const std::string& tag, std::istream& in) {
    if (tag == "case") {
      cases.emplace_back();
      in >> cases.back().name >> cases.back().kind;
    } else if (tag == "attr") {
      std::string key;
      std::int64_t v = 0;
      in >> key >> v;
      cases.back().attrs[key] = v;
    } else if (tag == "tensor") {
      std::string role;
      std::size_t rank = 0;
      in >> role >> rank;
      std::vector<std::int64_t> dims(rank);
      for (auto& d : dims) in >> d;
      GoldenTensor t{Shape(dims), kiln_test::numbers_of(in)};
      if (static_cast<std::int64_t>(t.values.size()) != t.shape.numel()) return false;
      if (role.rfind("param:", 0) == 0) cases.back().params.push_back(role.substr(6));
      cases.back().tensors[role] = std::move(t);
    } else if (tag != "end") {
      return false;
    }
    return true;
  });
  return cases;
}

const std::vector<GoldenCase>& golden() {
  static const std::vector<GoldenCase> cases = load_golden();
  return cases;
}

Tensor make(const GoldenTensor& g, DType dt) { return Tensor::from(g.values, g.shape).to(dt); }

void expect_values(const Tensor& got, const GoldenTensor& want, double tol,
                   const std::string& what) {
  ASSERT_EQ(got.shape(), want.shape) << what;
  double worst = 0.0;
  for (std::int64_t i = 0; i < got.numel(); ++i) {
    const double w = want.values[static_cast<std::size_t>(i)];
    const double err = std::abs(got.at(i) - w) / std::max(1.0, std::abs(w));
    worst = std::max(worst, err);
    ASSERT_LE(err, tol) << what << "[" << i << "]: got " << got.at(i) << ", want " << w;
  }
  std::ostringstream worst_text;
  worst_text << worst;
  ::testing::Test::RecordProperty(what, worst_text.str());
}

class RecurrentGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(RecurrentGolden, MatchesPyTorch) {
  const GoldenCase* found = nullptr;
  for (const GoldenCase& c : golden())
    if (c.name == GetParam()) found = &c;
  ASSERT_NE(found, nullptr);
  const GoldenCase& c = *found;
  const bool is_lstm = c.kind == "lstm";
  const GoldenTensor& gx = c.tensors.at("x");
  for (DType dt : {DType::f64, DType::f32}) {
    SCOPED_TRACE(std::string(to_string(dt)));
    const double tol = dt == DType::f64 ? 1e-9 : 1e-4;
    Graph g;
    Feeds feeds;
    Value x = g.input("x", {batch, gx.shape[1], gx.shape[2]}, dt);
    feeds.emplace_back("x", make(gx, dt));
    nn::RecurrentLayerOptions o;
    o.hidden = c.attrs.at("hidden");
    o.layers = c.attrs.at("layers");
    o.bidirectional = c.attrs.at("bidirectional") != 0;
    o.name = "rnn";
    if (c.attrs.at("lengths") != 0) {
      o.lengths = g.input("lengths", {batch}, DType::i64);
      Tensor len = Tensor::empty(Shape{gx.shape[0]}, DType::i64);
      for (std::int64_t b = 0; b < gx.shape[0]; ++b)
        len.data<std::int64_t>()[b] =
            static_cast<std::int64_t>(c.tensors.at("lengths").values[static_cast<std::size_t>(b)]);
      feeds.emplace_back("lengths", len);
    }
    std::vector<Value> wrt{x};
    std::vector<std::string> wrt_names{"x"};
    if (c.attrs.at("initial") != 0) {
      // States [layers * directions, B, H] are inputs of a static shape (only the first
      // dim of an input may be the batch).
      const Shape& hs = c.tensors.at("h0").shape;
      o.h0 = g.input("h0", hs, dt);
      feeds.emplace_back("h0", make(c.tensors.at("h0"), dt));
      wrt.push_back(o.h0);
      wrt_names.push_back("h0");
      if (is_lstm) {
        o.c0 = g.input("c0", hs, dt);
        feeds.emplace_back("c0", make(c.tensors.at("c0"), dt));
        wrt.push_back(o.c0);
        wrt_names.push_back("c0");
      }
    }
    const nn::RecurrentOutput r = is_lstm ? nn::lstm(x, o) : nn::gru(x, o);
    // PyTorch's weights, by name.
    for (const std::string& p : c.params) {
      Value v = g.find("rnn." + p);
      ASSERT_EQ(v.shape(), c.tensors.at("param:" + p).shape) << p;
      g.tensor(v).copy_from(make(c.tensors.at("param:" + p), dt));
      wrt.push_back(v);
      wrt_names.push_back(p);
    }
    EXPECT_EQ(g.parameters().size(), c.params.size()) << "Kiln made other parameters";
    auto weight = [&](const char* name) {
      const GoldenTensor& w = c.tensors.at(name);
      std::vector<std::int64_t> dims = w.shape.dims();
      if (std::string(name) == "ws") dims[0] = batch;
      feeds.emplace_back(name, make(w, dt));
      return g.input(name, Shape(dims), dt);
    };
    Value loss = add(sum(mul(r.sequence, weight("ws"))), sum(mul(r.h_n, weight("wh"))));
    if (is_lstm) loss = add(loss, sum(mul(r.c_n, weight("wc"))));
    std::vector<Value> outs{r.sequence, r.h_n, loss};
    if (is_lstm) outs.push_back(r.c_n);
    const auto grads = grad(loss, wrt);
    outs.insert(outs.end(), grads.begin(), grads.end());
    CompileOptions co{.training = true};
    if (dt == DType::f64) co.backend = "reference";
    Executable exe(g, outs, co);
    const auto got = exe.run(feeds);
    const std::string at = std::string(to_string(dt)) + ":";
    expect_values(got[0], c.tensors.at("out:sequence"), tol, at + "sequence");
    expect_values(got[1], c.tensors.at("out:h_n"), tol, at + "h_n");
    expect_values(got[2].reshape(Shape{1}), c.tensors.at("out:loss"), tol, at + "loss");
    std::size_t k = 3;
    if (is_lstm) expect_values(got[k++], c.tensors.at("out:c_n"), tol, at + "c_n");
    for (std::size_t i = 0; i < wrt.size(); ++i)
      expect_values(got[k + i], c.tensors.at("grad:" + wrt_names[i]), tol,
                    at + "d/d" + wrt_names[i]);
  }
}

std::vector<std::string> golden_names() {
  std::vector<std::string> names;
  try {
    for (const GoldenCase& c : golden()) names.push_back(c.name);
  } catch (const std::exception&) {
    // Reported by GoldenFileHasTheCases.
  }
  return names;
}

INSTANTIATE_TEST_SUITE_P(Layers, RecurrentGolden, ::testing::ValuesIn(golden_names()),
                         [](const auto& param_info) { return param_info.param; });

TEST(RecurrentGoldenFile, HasTheCases) {
  std::vector<std::string> names;
  ASSERT_NO_THROW(names = golden_names());
  EXPECT_EQ(names.size(), 12u);
}

// ---- parameters ------------------------------------------------------------------------

TEST(RecurrentLayers, ParameterNamesShapesAndInitAsPyTorch) {
  Graph g;
  Value x = g.input("x", {batch, 6, 5});
  const auto r = nn::lstm(x, {.hidden = 4, .layers = 2, .bidirectional = true, .name = "enc"});
  EXPECT_EQ(r.sequence.shape(), (Shape{batch, 6, 8}));
  EXPECT_EQ(r.h_n.shape(), (Shape{4, batch, 4}));
  EXPECT_EQ(r.c_n.shape(), (Shape{4, batch, 4}));
  std::vector<std::string> names;
  for (Value p : g.parameters()) names.push_back(p.name());
  const std::vector<std::string> want{
      "enc.weight_ih_l0",         "enc.weight_hh_l0",         "enc.bias_ih_l0",
      "enc.bias_hh_l0",           "enc.weight_ih_l0_reverse", "enc.weight_hh_l0_reverse",
      "enc.bias_ih_l0_reverse",   "enc.bias_hh_l0_reverse",   "enc.weight_ih_l1",
      "enc.weight_hh_l1",         "enc.bias_ih_l1",           "enc.bias_hh_l1",
      "enc.weight_ih_l1_reverse", "enc.weight_hh_l1_reverse", "enc.bias_ih_l1_reverse",
      "enc.bias_hh_l1_reverse"};
  EXPECT_EQ(names, want);
  EXPECT_EQ(g.find("enc.weight_ih_l0").shape(), (Shape{16, 5}));
  EXPECT_EQ(g.find("enc.weight_ih_l1").shape(), (Shape{16, 8}));
  EXPECT_EQ(g.find("enc.weight_hh_l1_reverse").shape(), (Shape{16, 4}));
  // U(-1/sqrt(H), 1/sqrt(H)) = U(-0.5, 0.5), and not all equal.
  const Tensor& w = g.tensor(g.find("enc.weight_hh_l0"));
  double lo = 1.0, hi = -1.0;
  for (std::int64_t i = 0; i < w.numel(); ++i) {
    lo = std::min(lo, w.at(i));
    hi = std::max(hi, w.at(i));
  }
  EXPECT_GE(lo, -0.5);
  EXPECT_LE(hi, 0.5);
  EXPECT_LT(lo, -0.2);
  EXPECT_GT(hi, 0.2);
  // A second layer without a name gets the next free prefix; a GRU has 3H rows.
  const auto r2 = nn::gru(r.sequence, {.hidden = 3});
  EXPECT_TRUE(g.contains("gru_0.weight_ih_l0"));
  EXPECT_EQ(g.find("gru_0.weight_ih_l0").shape(), (Shape{9, 8}));
  EXPECT_FALSE(r2.c_n.valid());
}

// The input projection is one GEMM over all B*T steps per layer and direction, with the
// bias folded into it by the fusion pass (an LSTM's b_ih + b_hh is summed before the
// matmul, so the fused GEMM can read it).
TEST(RecurrentLayers, InputProjectionIsOneFusedGemmOverAllSteps) {
  for (const bool is_lstm : {true, false}) {
    Graph g;
    Value x = g.input("x", {batch, 5, 3});
    const nn::RecurrentLayerOptions o{.hidden = 4, .layers = 2, .bidirectional = true};
    const auto r = is_lstm ? nn::lstm(x, o) : nn::gru(x, o);
    Executable fused(g, {r.sequence});
    Executable plain(g, {r.sequence}, {.fuse = false});
    const Feeds feeds{{"x", Tensor::full({2, 5, 3}, 0.3)}};
    const std::string plan = fused.plan(feeds);
    std::size_t gemms = 0, recurrences = 0;
    for (std::size_t at = 0; (at = plan.find("= matmul+bias(", at)) != std::string::npos; ++at)
      ++gemms;
    const std::string op = is_lstm ? "= lstm(" : "= gru(";
    for (std::size_t at = 0; (at = plan.find(op, at)) != std::string::npos; ++at) ++recurrences;
    EXPECT_EQ(gemms, 4u) << plan;
    EXPECT_EQ(recurrences, 4u) << plan;
    const Tensor a = fused.run(feeds)[0], b = plain.run(feeds)[0];
    for (std::int64_t i = 0; i < a.numel(); ++i) EXPECT_NEAR(a.at(i), b.at(i), 1e-6);
  }
}

// use_bias = false gives what zero biases give.
TEST(RecurrentLayers, WithoutBiasEqualsZeroBiases) {
  for (const bool is_lstm : {true, false}) {
    Graph g;
    Value x = g.input("x", {batch, 4, 3});
    const auto with = is_lstm ? nn::lstm(x, {.hidden = 3, .name = "a", .seed = 9})
                              : nn::gru(x, {.hidden = 3, .name = "a", .seed = 9});
    const auto without = is_lstm ? nn::lstm(x, {.hidden = 3, .use_bias = false, .name = "b"})
                                 : nn::gru(x, {.hidden = 3, .use_bias = false, .name = "b"});
    EXPECT_FALSE(g.contains("b.bias_ih_l0"));
    for (const char* w : {"weight_ih_l0", "weight_hh_l0"})
      g.tensor(g.find(std::string("b.") + w)).copy_from(g.tensor(g.find(std::string("a.") + w)));
    for (const char* bias : {"bias_ih_l0", "bias_hh_l0"}) {
      Tensor& t = g.tensor(g.find(std::string("a.") + bias));
      t.copy_from(Tensor::zeros(t.shape()));
    }
    Executable exe(g, {with.sequence, without.sequence});
    Tensor xs = Tensor::empty({2, 4, 3});
    for (std::int64_t i = 0; i < xs.numel(); ++i)
      xs.data<float>()[i] = static_cast<float>(std::sin(0.7 * static_cast<double>(i)));
    const auto out = exe.run({{"x", xs}});
    double largest = 0.0;
    for (std::int64_t i = 0; i < out[0].numel(); ++i) {
      EXPECT_NEAR(out[0].at(i), out[1].at(i), 1e-6);
      largest = std::max(largest, std::abs(out[0].at(i)));
    }
    EXPECT_GT(largest, 0.05);
  }
}

// batch_first = false (PyTorch's default layout): x [T, B, F] gives the batch-first layer's
// answer on the transposed input, sequence [T, B, 2H]; h_n and c_n are laid out as always.
TEST(RecurrentLayers, TimeMajorInputEqualsBatchFirstOnTheTransposedInput) {
  for (const bool is_lstm : {true, false}) {
    Graph g;
    Value xb = g.input("xb", {2, 4, 3});
    Value xt = g.input("xt", {4, 2, 3});
    const nn::RecurrentLayerOptions bf{.hidden = 3, .bidirectional = true, .name = "a", .seed = 5};
    nn::RecurrentLayerOptions tm = bf;
    tm.name = "b";
    tm.batch_first = false;
    const auto a = is_lstm ? nn::lstm(xb, bf) : nn::gru(xb, bf);
    const auto b = is_lstm ? nn::lstm(xt, tm) : nn::gru(xt, tm);
    EXPECT_EQ(b.sequence.shape(), Shape({4, 2, 6}));
    EXPECT_EQ(b.h_n.shape(), Shape({2, 2, 3}));
    for (const char* w : {"weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"})
      for (const char* d : {"", "_reverse"})
        g.tensor(g.find(std::string("b.") + w + d))
            .copy_from(g.tensor(g.find(std::string("a.") + w + d)));
    Executable exe(g, {a.sequence, b.sequence, a.h_n, b.h_n});
    Tensor xs = Tensor::empty({2, 4, 3});
    for (std::int64_t i = 0; i < xs.numel(); ++i)
      xs.data<float>()[i] = static_cast<float>(std::cos(0.3 * static_cast<double>(i)));
    Tensor xts = Tensor::empty({4, 2, 3});
    for (std::int64_t t = 0; t < 4; ++t)
      for (std::int64_t r = 0; r < 2; ++r)
        for (std::int64_t f = 0; f < 3; ++f)
          xts.data<float>()[(t * 2 + r) * 3 + f] = xs.data<float>()[(r * 4 + t) * 3 + f];
    const auto out = exe.run({{"xb", xs}, {"xt", xts}});
    for (std::int64_t t = 0; t < 4; ++t)
      for (std::int64_t r = 0; r < 2; ++r)
        for (std::int64_t h = 0; h < 6; ++h)
          EXPECT_NEAR(out[1].at((t * 2 + r) * 6 + h), out[0].at((r * 4 + t) * 6 + h), 1e-6);
    for (std::int64_t i = 0; i < out[2].numel(); ++i) EXPECT_NEAR(out[3].at(i), out[2].at(i), 1e-6);
  }
}

// A saved model with recurrent layers (stacked, bidirectional, lengths) loads in kiln_infer
// and answers as the graph did, h_n and c_n ([layers * directions, B, H], the batch in the
// middle) included.
TEST(RecurrentLayers, SavedModelRunsThroughKilnInfer) {
  Graph g;
  Value x = g.input("x", {batch, 5, 3});
  Value len = g.input("len", {batch}, DType::i64);
  const auto r =
      nn::lstm(x, {.hidden = 4, .layers = 2, .bidirectional = true, .lengths = len, .name = "enc"});
  const auto q = nn::gru(r.sequence, {.hidden = 2, .lengths = len, .name = "dec"});
  const auto bytes =
      serialize_model(g, {.inputs = {x, len}, .outputs = {q.sequence, q.h_n, r.h_n, r.c_n}});
  const auto model = infer::Model::load(std::span<const std::uint8_t>(bytes));
  Tensor xs = Tensor::empty({3, 5, 3});
  for (std::int64_t i = 0; i < xs.numel(); ++i)
    xs.data<float>()[i] = static_cast<float>(std::cos(0.3 * static_cast<double>(i)));
  const Feeds feeds{{"x", xs}, {"len", Tensor::from(std::vector<std::int64_t>{5, 1, 3}, Shape{3})}};
  const auto got = model.run(feeds);
  const auto want = Executable(g, {q.sequence, q.h_n, r.h_n, r.c_n}).run(feeds);
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(got[2].shape(), (Shape{4, 3, 4}));
  for (std::size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(got[i].shape(), want[i].shape()) << i;
    for (std::int64_t k = 0; k < got[i].numel(); ++k)
      EXPECT_NEAR(got[i].at(k), want[i].at(k), 1e-6) << i << "[" << k << "]";
  }
}

// ---- errors ----------------------------------------------------------------------------

template <class E, class F>
void expect_error(F&& f, const std::string& fragment) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one mentioning '" << fragment << "'";
  } catch (const E& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(RecurrentLayers, BadShapesAreTypedErrorsNamingTheLayerOrNode) {
  Graph g;
  Value x = g.input("x", {batch, 4, 3});
  expect_error<ValueError>([&] { nn::lstm(x, {.hidden = 0, .name = "enc"}); }, "enc");
  expect_error<ShapeError>(
      [&] {
        nn::lstm(g.input("flat", {batch, 3}), {.hidden = 2, .name = "flat_lstm"});
      },
      "flat_lstm");
  Value h0 = g.input("h0", {2, 3, 5});
  expect_error<ShapeError>([&] { nn::gru(x, {.hidden = 4, .h0 = h0, .name = "dec"}); }, "h0");
  // The ops themselves: the shape rule names the node.
  Value xw = g.input("xw", {batch, 4, 8});
  Value w = g.input("w", {8, 2});
  Value s = g.input("s", {batch, 3});
  expect_error<ShapeError>([&] { lstm(xw, w, s, s, {}, "my_lstm"); }, "my_lstm");
  Value xg = g.input("xg", {batch, 4, 7});
  Value wg = g.input("wg", {6, 2});
  Value bg = g.input("bg", {6});
  Value sg = g.input("sg", {batch, 2});
  expect_error<ShapeError>([&] { gru(xg, wg, bg, sg, {}, "my_gru"); }, "my_gru");
}

TEST(RecurrentLayers, LengthsOutOfRangeNameTheNode) {
  for (const char* backend : {"reference", ""}) {
    SCOPED_TRACE(backend);
    Graph g;
    Value xw = g.input("xw", {batch, 3, 8});
    Value w = g.input("w", {8, 2});
    Value s = g.input("s", {batch, 2});
    Value len = g.input("len", {batch}, DType::i32);
    Value y = lstm(xw, w, s, s, {.lengths = len}, "seq_lstm");
    CompileOptions co;
    if (*backend != 0) co.backend = backend;
    Executable exe(g, {y}, co);
    const Feeds feeds{{"xw", Tensor::zeros({2, 3, 8})},
                      {"w", Tensor::zeros({8, 2})},
                      {"s", Tensor::zeros({2, 2})},
                      {"len", Tensor::from(std::vector<std::int32_t>{2, 4}, Shape{2})}};
    expect_error<Error>([&] { exe.run(feeds); }, "seq_lstm");
    expect_error<Error>([&] { exe.run(feeds); }, "lengths[1] = 4");
    const Feeds negative{{"xw", Tensor::zeros({2, 3, 8})},
                         {"w", Tensor::zeros({8, 2})},
                         {"s", Tensor::zeros({2, 2})},
                         {"len", Tensor::from(std::vector<std::int32_t>{-1, 3}, Shape{2})}};
    expect_error<Error>([&] { exe.run(negative); }, "lengths[0] = -1");
  }
}

// ---- training --------------------------------------------------------------------------

// An LSTM learns to output, at the last step, the sum of a sequence of +-1 and 0 values
// (a counting task a feed-forward net on one step cannot do), from a fixed seed.
TEST(RecurrentLayers, LstmLearnsToCount) {
  // One thread, so the run (and its loss curve) is the same on every machine.
  struct ThreadGuard {
    int saved = num_threads();
    ThreadGuard() { set_num_threads(1); }
    ~ThreadGuard() { set_num_threads(saved); }
  } one_thread;
  Graph g;
  const std::int64_t steps = 6, n = 64;
  Value x = g.input("x", {batch, steps, 1});
  Value target = g.input("target", {batch, 1});
  const auto r = nn::lstm(x, {.hidden = 8, .name = "counter", .seed = 3});
  const Value last = reshape(slice(r.sequence, 1, steps - 1, steps), Shape{-1, 8});
  const Value pred = nn::dense(last, 1, {.name = "head", .seed = 4});
  const Value loss = mse(pred, target);
  Rng rng(5);
  Tensor xs = Tensor::empty({n, steps, 1}), ts = Tensor::empty({n, 1});
  for (std::int64_t i = 0; i < n; ++i) {
    double total = 0.0;
    for (std::int64_t t = 0; t < steps; ++t) {
      const double v = static_cast<double>(static_cast<int>(rng.below(3))) - 1.0;
      xs.data<float>()[i * steps + t] = static_cast<float>(v);
      total += v;
    }
    ts.data<float>()[i] = static_cast<float>(total / 3.0);
  }
  TrainStep step(loss);
  optim::Adam opt(step.named_parameters(), {.lr = 0.02});
  const Feeds feeds{{"x", xs}, {"target", ts}};
  double first = 0.0, final_loss = 0.0;
  for (int epoch = 0; epoch < 300; ++epoch) {
    final_loss = step.run(feeds);
    if (epoch == 0) first = final_loss;
    opt.step(step.gradients());
  }
  RecordProperty("first_loss", std::to_string(first));
  RecordProperty("final_loss", std::to_string(final_loss));
  EXPECT_GT(first, 0.2);
  EXPECT_LT(final_loss, 0.01) << "first loss " << first;
}

}  // namespace
}  // namespace kiln
