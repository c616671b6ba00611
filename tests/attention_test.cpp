// Attention, exact GELU, the transformer layers and the sequence utilities.
//
// Golden cases: tests/data/attention_golden.txt, computed once by PyTorch in float64 with
// tools/golden/attention.py (nn.MultiheadAttention and nn.TransformerEncoderLayer,
// batch_first, seeded weights copied by name): the output and the gradients of
// sum(y * w) with respect to the input and every parameter. Each case runs in f64 on the
// reference kernels (within 1e-9 relative to the tensor's largest value) and in f32 on the
// default (fast) kernels (within 1e-4).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numbers>
#include <set>
#include <string>
#include <vector>

#include "kiln/kiln.hpp"
#include "tests/support/golden_file.hpp"
#include "tests/support/kernel_test_support.hpp"

namespace kiln {
namespace {

using kiln_test::Tol;

// ---- golden cases ---------------------------------------------------------------------

struct GoldenTensor {
  Shape shape;
  std::vector<double> values;
  Tensor as(DType dtype) const { return Tensor::from(values, shape).to(dtype); }
};

struct GoldenCase {
  std::string name;
  std::string kind;  // mha or encoder
  std::map<std::string, std::string> attrs;
  std::map<std::string, GoldenTensor> tensors;
  std::string attr(const std::string& key, const std::string& fallback) const {
    auto it = attrs.find(key);
    return it == attrs.end() ? fallback : it->second;
  }
};

std::vector<GoldenCase> load_golden() {
  std::vector<GoldenCase> cases;
  kiln_test::read_golden("attention_golden.txt", [&](const std::string& tag, std::istream& in) {
    if (tag == "case") {
      cases.emplace_back();
      in >> cases.back().name >> cases.back().kind;
    } else if (tag == "attr") {
      std::string key, value;
      in >> key >> value;
      cases.back().attrs[key] = value;
    } else if (tag == "tensor") {
      std::string role;
      std::size_t rank = 0;
      in >> role >> rank;
      std::vector<std::int64_t> dims(rank);
      for (auto& d : dims) in >> d;
      GoldenTensor t{Shape(dims), kiln_test::numbers_of(in)};
      if (static_cast<std::int64_t>(t.values.size()) != t.shape.numel()) return false;
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

std::vector<std::string> golden_names() {
  std::vector<std::string> names;
  for (const GoldenCase& c : golden()) names.push_back(c.name);
  return names;
}

const GoldenCase& golden_case(const std::string& name) {
  for (const GoldenCase& c : golden())
    if (c.name == name) return c;
  throw std::runtime_error("no golden case " + name);
}

/// Builds the case's layer (named "layer") over input x, loads PyTorch's parameters into it
/// and compares the output and the gradients.
void check_golden(const GoldenCase& c, DType dtype, const std::string& backend, double tol) {
  Graph g;
  const GoldenTensor& xt = c.tensors.at("x");
  Value x = g.input("x", xt.shape, dtype);
  Value w = g.input("w", xt.shape, dtype);
  Feeds feeds{{"x", xt.as(dtype)}, {"w", c.tensors.at("w").as(dtype)}};
  Value key_mask;
  if (c.tensors.count("key_mask")) {
    const GoldenTensor& m = c.tensors.at("key_mask");
    key_mask = g.input("key_mask", m.shape, dtype);
    feeds.emplace_back("key_mask", m.as(dtype));
  }
  const std::int64_t heads = std::stoll(c.attr("heads", "1"));
  const bool causal = c.attr("causal", "0") == "1";
  Value y;
  if (c.kind == "mha") {
    y = nn::multi_head_attention(
        x, x, x, {.heads = heads, .key_mask = key_mask, .causal = causal, .name = "layer"});
  } else {
    y = nn::transformer_encoder_layer(
        x, {.heads = heads,
            .feedforward = std::stoll(c.attr("feedforward", "0")),
            .activation = c.attr("activation", "relu") == "gelu" ? nn::Activation::gelu
                                                                 : nn::Activation::relu,
            .norm_first = c.attr("norm_first", "0") == "1",
            .key_mask = key_mask,
            .causal = causal,
            .name = "layer"});
  }
  // Kiln's parameters are exactly PyTorch's, by name and shape.
  std::set<std::string> kiln_names, torch_names;
  std::vector<Value> wrt{x};
  std::vector<std::string> wrt_grad{"grad_x"};
  for (Value p : g.parameters()) {
    kiln_names.insert(p.name());
    const std::string torch_name = p.name().substr(std::string("layer.").size());
    const auto it = c.tensors.find("param:" + torch_name);
    ASSERT_NE(it, c.tensors.end()) << "Kiln parameter " << p.name() << " is not PyTorch's";
    ASSERT_EQ(p.shape(), it->second.shape) << p.name();
    g.tensor(p).copy_from(it->second.as(dtype));
    wrt.push_back(p);
    wrt_grad.push_back("grad:" + torch_name);
  }
  for (const auto& [role, t] : c.tensors)
    if (role.rfind("param:", 0) == 0) torch_names.insert("layer." + role.substr(6));
  EXPECT_EQ(kiln_names, torch_names);

  const Value loss = sum(mul(y, w));
  std::vector<Value> outputs{y};
  for (Value gv : grad(loss, wrt)) outputs.push_back(gv);
  Executable exe(g, outputs, {.training = true, .backend = backend});
  const auto got = exe.run(feeds);
  const Tol t{tol, 0.0, /*relative_to_largest=*/true};
  const std::string where = c.name + " (" + std::string(to_string(dtype)) + ")";
  kiln_test::expect_close_nan_aware(got[0], c.tensors.at("y").as(dtype), t, where + " y");
  for (std::size_t i = 0; i < wrt_grad.size(); ++i)
    kiln_test::expect_close_nan_aware(got[i + 1], c.tensors.at(wrt_grad[i]).as(dtype), t,
                                      where + " " + wrt_grad[i]);
}

class AttentionGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(AttentionGolden, ReferenceF64MatchesPyTorch) {
  check_golden(golden_case(GetParam()), DType::f64, "reference", 1e-9);
}

TEST_P(AttentionGolden, FastF32MatchesPyTorch) {
  check_golden(golden_case(GetParam()), DType::f32, "", 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Cases, AttentionGolden, ::testing::ValuesIn(golden_names()),
                         [](const auto& param_info) { return param_info.param; });

// ---- the attention op -------------------------------------------------------------------

Tensor randn(const Shape& s, std::uint64_t seed, DType dtype) {
  Rng rng(seed);
  std::vector<double> v(static_cast<std::size_t>(s.numel()));
  for (auto& e : v) e = rng.normal();
  return Tensor::from(v, s).to(dtype);
}

// Batch 1 masks every key: its outputs and its gradients are exactly zero, in both kernels
// and both dtypes; batch 0 is unaffected by batch 1.
TEST(AttentionOp, FullyMaskedRowsGiveZerosAndZeroGradients) {
  for (const DType dtype : {DType::f64, DType::f32}) {
    for (const bool causal : {false, true}) {
      for (const std::string backend : {"reference", ""}) {
        Graph g;
        const Shape s{2, 2, 4, 3};
        Value q = g.input("q", s, dtype), k = g.input("k", s, dtype), v = g.input("v", s, dtype);
        Value m = g.input("m", Shape{2, 4}, dtype);
        Value y = attention(q, k, v, {.key_mask = m, .causal = causal});
        Value loss = sum(mul(y, g.input("w", s, dtype)));
        auto grads = grad(loss, {q, k, v});
        Executable exe(g, {y, grads[0], grads[1], grads[2]},
                       {.training = true, .backend = backend});
        const Feeds feeds{
            {"q", randn(s, 1, dtype)},
            {"k", randn(s, 2, dtype)},
            {"v", randn(s, 3, dtype)},
            {"w", randn(s, 4, dtype)},
            {"m",
             Tensor::from(std::vector<double>{1, 1, 0, 1, 0, 0, 0, 0}, Shape{2, 4}).to(dtype)}};
        const auto out = exe.run(feeds);
        const std::int64_t half = s.numel() / 2;
        for (std::size_t i = 0; i < out.size(); ++i) {
          const auto values = out[i].to(DType::f64).to_vector<double>();
          double first_half = 0.0;
          for (std::int64_t e = 0; e < half; ++e) {
            EXPECT_TRUE(std::isfinite(values[static_cast<std::size_t>(e)]));
            first_half += std::abs(values[static_cast<std::size_t>(e)]);
          }
          EXPECT_GT(first_half, 0.0) << "output " << i;
          for (std::int64_t e = half; e < 2 * half; ++e)
            ASSERT_EQ(values[static_cast<std::size_t>(e)], 0.0)
                << "output " << i << " element " << e << " " << to_string(dtype) << " causal "
                << causal << " backend '" << backend << "'";
        }
        // Causal: query 0 sees key 0 only, so its output is v's step 0 exactly.
        if (causal) {
          const auto y0 = out[0].to(DType::f64).to_vector<double>();
          const auto v0 = feeds[2].second.to(DType::f64).to_vector<double>();
          for (std::size_t c = 0; c < 3; ++c) EXPECT_EQ(y0[c], v0[c]);
        }
      }
    }
  }
}

// A NaN in a masked key's k never reaches the output (the key's probability is exactly 0);
// a NaN in an allowed key's k makes every query row NaN, as in PyTorch.
TEST(AttentionOp, NanInAMaskedKeyStaysOut) {
  const Shape s{1, 2, 3, 4};
  for (const std::string backend : {"reference", ""}) {
    Graph g;
    Value q = g.input("q", s), k = g.input("k", s), v = g.input("v", s);
    Value m = g.input("m", Shape{1, 3});
    Executable exe(g, {attention(q, k, v, {.key_mask = m})}, {.backend = backend});
    Tensor kt = randn(s, 2, DType::f32);
    kt.data<float>()[1 * 4 + 2] = std::nanf("");  // head 0, key 1
    const auto masked = exe.run({{"q", randn(s, 1, DType::f32)},
                                 {"k", kt},
                                 {"v", randn(s, 3, DType::f32)},
                                 {"m", Tensor::from(std::vector<float>{1, 0, 1}, {1, 3})}})[0];
    for (double e : masked.to(DType::f64).to_vector<double>()) EXPECT_TRUE(std::isfinite(e));
    const auto allowed = exe.run({{"q", randn(s, 1, DType::f32)},
                                  {"k", kt},
                                  {"v", randn(s, 3, DType::f32)},
                                  {"m", Tensor::full({1, 3}, 1.0)}})[0];
    const auto values = allowed.to(DType::f64).to_vector<double>();
    for (std::size_t e = 0; e < values.size(); ++e)
      EXPECT_EQ(std::isnan(values[e]), e < 12) << backend << " element " << e;
  }
}

// The kernels against an explicit softmax(q k^T * scale + mask) v composed of other ops.
TEST(AttentionOp, MatchesComposedAttention) {
  Graph g;
  const DType dt = DType::f64;
  Value q = g.input("q", {2, 3, 4, 5}, dt), k = g.input("k", {2, 3, 6, 5}, dt);
  Value v = g.input("v", {2, 3, 6, 2}, dt);
  Value m = g.input("m", {2, 6}, dt);
  Value fused = attention(q, k, v, {.key_mask = m, .scale = 0.7f});
  Value s = add(mul(matmul(q, k, {.transpose_b = true}), static_cast<double>(0.7f)),
                mul(sub(reshape(m, Shape{2, 1, 1, 6}), 1.0), 1e9));
  Value composed = matmul(softmax(s, -1), v);
  const Feeds feeds{
      {"q", randn({2, 3, 4, 5}, 5, dt)},
      {"k", randn({2, 3, 6, 5}, 6, dt)},
      {"v", randn({2, 3, 6, 2}, 7, dt)},
      {"m", Tensor::from(std::vector<double>{1, 0, 1, 1, 0, 1, 0, 0, 1, 1, 1, 1}, Shape{2, 6})}};
  for (const std::string backend : {"reference", ""}) {
    Executable exe(g, {fused, composed}, {.backend = backend});
    const auto out = exe.run(feeds);
    kiln_test::expect_close_nan_aware(out[0], out[1], {1e-12, 1e-12, true}, backend);
  }
}

// ---- gelu ----------------------------------------------------------------------------------

// The f32 fast kernels (Eigen's vectorised erf and exp) against the f64 reference over
// [-12, 12] in steps of 1/512, and at the extremes; per element, within 2e-6 relative plus
// 1e-7 absolute (plus what f32 rounding of x explains), and gelu within 1e-4 relative
// wherever |gelu(x)| > 1e-6.
TEST(Gelu, FastF32MatchesReferenceOverAWideRange) {
  std::vector<double> xs;
  for (int i = -12 * 512; i <= 12 * 512; ++i) xs.push_back(i / 512.0);
  for (double e : {20.0, 50.0, 1e3, 1e10, 3e38}) {
    xs.push_back(e);
    xs.push_back(-e);
  }
  const Shape s{static_cast<std::int64_t>(xs.size())};
  auto run = [&](DType dt, const std::string& backend) {
    Graph g;
    Value x = g.input("x", s, dt);
    Value gy = g.input("gy", s, dt);
    Executable exe(g, {gelu_erf(x), gelu_backward(x, gy)}, {.backend = backend});
    return exe.run({{"x", Tensor::from(xs, s).to(dt)}, {"gy", Tensor::full(s, 1.0, dt)}});
  };
  const auto want = run(DType::f64, "reference");
  const auto got = run(DType::f32, "");
  for (std::size_t o = 0; o < 2; ++o) {
    const auto w = want[o].to_vector<double>();
    const auto g = got[o].to(DType::f64).to_vector<double>();
    int bad = 0;
    for (std::size_t i = 0; i < xs.size(); ++i) {
      // f32 rounding of x itself moves gelu by up to |gelu'(x)| * |x| * 2^-24.
      double limit = 1e-7 + 2e-6 * std::abs(w[i]) + std::abs(xs[i]) * 1.2e-7;
      // gelu keeps its relative accuracy in the lower tail too (std::erfc there).
      if (o == 0 && std::abs(w[i]) > 1e-6) limit = std::min(limit, 1e-4 * std::abs(w[i]));
      if (!(std::abs(g[i] - w[i]) <= limit) && bad++ < 5)
        ADD_FAILURE() << (o == 0 ? "gelu" : "gelu_backward") << "(" << xs[i] << ") = " << g[i]
                      << ", reference " << w[i];
    }
  }
  // Known values: gelu(1) = Phi(1) = 0.8413447460685429, gelu'(0) = 0.5.
  EXPECT_NEAR(want[0].at(12 * 512 + 512), 0.8413447460685429, 1e-15);
  EXPECT_EQ(want[1].at(12 * 512), 0.5);
}

// ---- sequence utilities ---------------------------------------------------------------------

TEST(SequenceUtil, SequenceMask) {
  Graph g;
  Value lengths = g.input("lengths", {kiln::batch}, DType::i64);
  Value m = sequence_mask(lengths, 4);
  Executable exe(g, {m});
  const auto out = exe.run({{"lengths", Tensor::from(std::vector<std::int64_t>{0, 2, 4}, {3})}});
  EXPECT_EQ(out[0].shape(), Shape({3, 4}));
  EXPECT_EQ(out[0].dtype(), DType::f32);
  EXPECT_EQ(out[0].to_vector<float>(), (std::vector<float>{0, 0, 0, 0, 1, 1, 0, 0, 1, 1, 1, 1}));
  // A length outside [0, steps] is a ValueError when run.
  EXPECT_THROW(exe.run({{"lengths", Tensor::from(std::vector<std::int64_t>{5}, {1})}}), ValueError);
}

TEST(SequenceUtil, LastValidStepAndItsGradient) {
  Graph g;
  Value x = g.input("x", {kiln::batch, 3, 2}, DType::f64);
  Value lengths = g.input("lengths", {kiln::batch}, DType::i32);
  Value y = last_valid_step(x, lengths);
  Value gx = grad(sum(mul(y, y)), {x})[0];
  Executable exe(g, {y, gx});
  const std::vector<double> xv{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18};
  const auto out = exe.run({{"x", Tensor::from(xv, {3, 3, 2})},
                            {"lengths", Tensor::from(std::vector<std::int32_t>{3, 0, 1}, {3})}});
  EXPECT_EQ(out[0].shape(), Shape({3, 2}));
  EXPECT_EQ(out[0].to_vector<double>(), (std::vector<double>{5, 6, 0, 0, 13, 14}));
  std::vector<double> want(18, 0.0);
  want[4] = 10;
  want[5] = 12;
  want[12] = 26;
  want[13] = 28;
  EXPECT_EQ(out[1].to_vector<double>(), want);
}

TEST(SequenceUtil, SinusoidalPositions) {
  const Tensor pe = sinusoidal_positions(5, 7, DType::f64);
  EXPECT_EQ(pe.shape(), Shape({5, 7}));
  for (std::int64_t t = 0; t < 5; ++t)
    for (std::int64_t c = 0; c < 7; ++c) {
      const double angle = static_cast<double>(t) *
                           std::exp(-std::log(10000.0) * static_cast<double>(c - c % 2) / 7.0);
      const double want = c % 2 == 0 ? std::sin(angle) : std::cos(angle);
      EXPECT_NEAR(pe.at(t * 7 + c), want, 1e-14) << t << ", " << c;
    }
  EXPECT_EQ(pe.at(0), 0.0);
  EXPECT_EQ(pe.at(1), 1.0);
  EXPECT_NEAR(pe.at(7), std::sin(1.0), 1e-15);
  EXPECT_EQ(sinusoidal_positions(2, 4).dtype(), DType::f32);
  EXPECT_THROW(sinusoidal_positions(0, 4), ValueError);
}

TEST(PositionalEncoding, SinusoidalAddsTheTableAndLearnedIsAParameter) {
  Graph g;
  Value x = g.input("x", {kiln::batch, 3, 4}, DType::f64);
  Value y = nn::positional_encoding(x, {.name = "pos"});
  Value z = nn::positional_encoding(y, {.learned = true, .name = "learned"});
  ASSERT_EQ(g.parameters().size(), 1u);
  EXPECT_EQ(g.parameters()[0].name(), "learned.weight");
  EXPECT_EQ(g.parameters()[0].shape(), Shape({3, 4}));
  Executable exe(g, {y, z});
  const auto out = exe.run({{"x", Tensor::zeros({2, 3, 4}, DType::f64)}});
  const Tensor pe = sinusoidal_positions(3, 4, DType::f64);
  for (std::int64_t i = 0; i < 24; ++i) EXPECT_EQ(out[0].at(i), pe.at(i % 12));
  const Tensor learned = g.tensor(g.parameters()[0]);
  for (std::int64_t i = 0; i < 24; ++i) EXPECT_EQ(out[1].at(i), pe.at(i % 12) + learned.at(i % 12));
}

TEST(MultiHeadAttention, DefaultNamesAndNoBias) {
  Graph g;
  Value x = g.input("x", {kiln::batch, 3, 4});
  nn::multi_head_attention(x, x, x, {.heads = 2});
  nn::multi_head_attention(x, x, x, {.heads = 2, .use_bias = false});
  std::vector<std::string> names;
  for (Value p : g.parameters()) names.push_back(p.name());
  EXPECT_EQ(names, (std::vector<std::string>{
                       "attention_0.in_proj_weight", "attention_0.in_proj_bias",
                       "attention_0.out_proj.weight", "attention_0.out_proj.bias",
                       "attention_1.in_proj_weight", "attention_1.out_proj.weight"}));
}

// Cross-attention (query differs from key and value) runs the three projections apart.
TEST(MultiHeadAttention, CrossAttentionShapes) {
  Graph g;
  Value q = g.input("q", {kiln::batch, 2, 6});
  Value kv = g.input("kv", {kiln::batch, 5, 6});
  Value y = nn::multi_head_attention(q, kv, kv, {.heads = 3});
  EXPECT_EQ(y.shape(), Shape({kiln::batch, 2, 6}));
  Executable exe(g, {y});
  const auto out =
      exe.run({{"q", Tensor::full({4, 2, 6}, 0.5)}, {"kv", Tensor::full({4, 5, 6}, 0.1)}});
  EXPECT_EQ(out[0].shape(), Shape({4, 2, 6}));
}

// A dynamic-batch transformer block (padding from lengths through sequence_mask, causal,
// learned positions, gelu) trains with TrainStep and Adam: on one fixed batch of 8
// sequences the loss falls below a fifth of its start within 150 steps.
TEST(TransformerEncoder, TrainsWithADynamicBatchAndPadding) {
  Graph g;
  const std::int64_t T = 6, D = 8;
  Value x = g.input("x", {kiln::batch, T, D});
  Value lengths = g.input("lengths", {kiln::batch}, DType::i32);
  Value target = g.input("target", {kiln::batch, 1});
  Value mask = sequence_mask(lengths, T);
  Value h = nn::positional_encoding(x, {.learned = true});
  h = nn::transformer_encoder_layer(h, {.heads = 2,
                                        .feedforward = 16,
                                        .activation = nn::Activation::gelu,
                                        .norm_first = true,
                                        .key_mask = mask,
                                        .causal = true,
                                        .seed = 3});
  Value pooled = last_valid_step(h, lengths);
  Value loss = mse(nn::dense(pooled, 1), target);
  TrainStep step(loss);
  optim::Adam adam(step.named_parameters(), {.lr = 1e-2});
  const Feeds feeds{
      {"x", randn({8, T, D}, 11, DType::f32)},
      {"lengths", Tensor::from(std::vector<std::int32_t>{6, 5, 4, 3, 2, 1, 6, 3}, {8})},
      {"target", randn({8, 1}, 12, DType::f32)}};
  const double first = step.run(feeds);
  double last = first;
  for (int i = 0; i < 150; ++i) {
    adam.step(step.gradients());
    last = step.run(feeds);
  }
  EXPECT_LT(last, first / 5) << "loss " << first << " -> " << last;
}

// An encoder block (causal, key mask, gelu, an explicit-scale attention beside it) saved
// as a model file and loaded back computes the same values: attention's causal and scale
// and the gelu op survive the file.
TEST(TransformerEncoder, SurvivesTheModelFile) {
  Graph g;
  Value x = g.input("x", {kiln::batch, 4, 6});
  Value mask = g.input("mask", {kiln::batch, 4});
  Value h = nn::transformer_encoder_layer(x, {.heads = 3,
                                              .feedforward = 8,
                                              .activation = nn::Activation::gelu,
                                              .key_mask = mask,
                                              .causal = true});
  Value qkv = reshape(x, Shape{-1, 1, 4, 6});
  Value scaled = attention(qkv, qkv, qkv, {.key_mask = mask, .scale = 0.25f});
  const Feeds feeds{{"x", randn({2, 4, 6}, 21, DType::f32)},
                    {"mask", Tensor::from(std::vector<float>{1, 1, 1, 0, 0, 1, 1, 1}, {2, 4})}};
  const auto want = Executable(g, {h, scaled}).run(feeds);
  LoadedGraph loaded =
      load_graph(serialize_model(g, {.inputs = {x, mask}, .outputs = {h, scaled}}));
  const auto got = Executable(*loaded.graph, loaded.outputs).run(feeds);
  ASSERT_EQ(got.size(), 2u);
  for (std::size_t i = 0; i < 2; ++i)
    EXPECT_EQ(got[i].to_vector<float>(), want[i].to_vector<float>()) << "output " << i;
}

// ---- errors ----------------------------------------------------------------------------------

template <class E, class Fn>
void expect_error(Fn&& fn, const std::vector<std::string>& fragments) {
  try {
    fn();
    ADD_FAILURE() << "expected an error";
  } catch (const E& e) {
    const std::string msg = e.what();
    for (const std::string& f : fragments)
      EXPECT_NE(msg.find(f), std::string::npos) << "'" << f << "' not in: " << msg;
  }
}

TEST(AttentionErrors, FeaturesNotDivisibleByHeads) {
  Graph g;
  Value x = g.input("x", {kiln::batch, 3, 6});
  expect_error<ValueError>([&] { nn::multi_head_attention(x, x, x, {.heads = 4, .name = "mha"}); },
                           {"divisible", "heads = 4", "'mha'"});
  expect_error<ValueError>(
      [&] { nn::transformer_encoder_layer(x, {.heads = 5, .feedforward = 8, .name = "enc"}); },
      {"divisible", "'enc'"});
}

TEST(AttentionErrors, CausalNeedsAsManyQueriesAsKeys) {
  Graph g;
  Value q = g.input("q", {2, 1, 3, 4}), k = g.input("k", {2, 1, 5, 4});
  expect_error<ShapeError>([&] { attention(q, k, k, {.causal = true}, "my_attention"); },
                           {"my_attention", "causal"});
  Value x = g.input("x", {2, 3, 4}), kv = g.input("kv", {2, 5, 4});
  expect_error<ShapeError>(
      [&] { nn::multi_head_attention(x, kv, kv, {.heads = 2, .causal = true, .name = "cross"}); },
      {"cross.attention", "causal"});
}

TEST(AttentionErrors, WrongMaskShape) {
  Graph g;
  Value q = g.input("q", {2, 1, 3, 4});
  Value bad = g.input("bad", {2, 4});
  expect_error<ShapeError>([&] { attention(q, q, q, {.key_mask = bad}, "masked"); },
                           {"masked", "key_mask"});
  Value x = g.input("x", {2, 3, 4});
  expect_error<ShapeError>(
      [&] {
        nn::transformer_encoder_layer(
            x, {.heads = 2, .feedforward = 8, .key_mask = bad, .name = "enc"});
      },
      {"enc.self_attn.attention", "key_mask"});
  Value int_mask = g.input("int_mask", {2, 3}, DType::i32);
  EXPECT_THROW(attention(q, q, q, {.key_mask = int_mask}), DTypeError);
}

TEST(AttentionErrors, BadLayerOptions) {
  Graph g;
  Value x = g.input("x", {kiln::batch, 3, 4});
  expect_error<ValueError>(
      [&] {
        nn::transformer_encoder_layer(
            x, {.heads = 2, .feedforward = 8, .activation = nn::Activation::tanh, .name = "e"});
      },
      {"relu or gelu", "'e'"});
  Value flat = g.input("flat", {kiln::batch, 4});
  EXPECT_THROW(nn::multi_head_attention(flat, flat, flat, {.heads = 2}), ShapeError);
  Value lengths = g.input("lengths", {kiln::batch}, DType::f32);
  EXPECT_THROW(sequence_mask(lengths, 3), DTypeError);
}

}  // namespace
}  // namespace kiln
