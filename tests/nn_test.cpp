// Layers (dense, embedding, layer norm, Sequential) and initialisers.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "kiln/autodiff.hpp"
#include "kiln/core/error.hpp"
#include "kiln/nn/layers.hpp"
#include "kiln/ops.hpp"
#include "kiln/optim/optimizer.hpp"
#include "kiln/runtime/executable.hpp"
#include "tests/nn_test_util.hpp"

namespace {

using kiln::DType;
using kiln::Graph;
using kiln::Rng;
using kiln::Shape;
using kiln::Tensor;
using kiln::Value;
namespace nn = kiln::nn;

using kiln_test::ramp;
using kiln_test::values;

struct Moments {
  double mean = 0.0;
  double stddev = 0.0;
  double min = 0.0;
  double max = 0.0;
};

Moments moments(const Tensor& t) {
  const std::vector<double> v = values(t);
  Moments m{0.0, 0.0, v[0], v[0]};
  for (double x : v) {
    m.mean += x;
    m.min = std::min(m.min, x);
    m.max = std::max(m.max, x);
  }
  m.mean /= static_cast<double>(v.size());
  double ss = 0.0;
  for (double x : v) ss += (x - m.mean) * (x - m.mean);
  m.stddev = std::sqrt(ss / static_cast<double>(v.size()));
  return m;
}

// ---------------------------------------------------------------------------------------------
// Initialisers

TEST(Init, FansFollowTheKerasConvention) {
  EXPECT_DOUBLE_EQ(nn::fans(Shape{7}).in, 7.0);
  EXPECT_DOUBLE_EQ(nn::fans(Shape{7}).out, 7.0);
  EXPECT_DOUBLE_EQ(nn::fans(Shape{3, 5}).in, 3.0);
  EXPECT_DOUBLE_EQ(nn::fans(Shape{3, 5}).out, 5.0);
  EXPECT_DOUBLE_EQ(nn::fans(Shape{2, 3, 4, 5}).in, 2.0 * 3 * 4);
  EXPECT_DOUBLE_EQ(nn::fans(Shape{2, 3, 4, 5}).out, 2.0 * 3 * 5);
}

TEST(Init, GlorotUniformStaysInBoundsWithUniformMoments) {
  Rng rng(1);
  const Tensor w = nn::glorot_uniform(Shape{400, 600}, rng);
  EXPECT_EQ(w.dtype(), DType::f32);
  EXPECT_EQ(w.shape(), (Shape{400, 600}));
  const double a = std::sqrt(6.0 / 1000.0);
  const Moments m = moments(w);
  EXPECT_GE(m.min, -a);
  EXPECT_LE(m.max, a);
  EXPECT_GT(m.max, 0.99 * a);  // the whole range is used
  EXPECT_LT(m.min, -0.99 * a);
  EXPECT_NEAR(m.mean, 0.0, 0.006 * a);                  // ~5 standard errors
  EXPECT_NEAR(m.stddev, a / std::sqrt(3.0), 0.01 * a);  // U(-a, a) has std a/sqrt(3)
}

TEST(Init, HeNormalHasFanInVariance) {
  Rng rng(2);
  const Tensor w = nn::he_normal(Shape{500, 400}, rng, DType::f64);
  EXPECT_EQ(w.dtype(), DType::f64);
  const double s = std::sqrt(2.0 / 500.0);
  const Moments m = moments(w);
  EXPECT_NEAR(m.mean, 0.0, 0.012 * s);
  EXPECT_NEAR(m.stddev, s, 0.01 * s);
  EXPECT_GT(m.max, 3.5 * s);  // normal tails, not a bounded distribution
}

TEST(Init, GlorotNormalHeUniformNormalUniformConstant) {
  Rng rng(3);
  const Moments gn = moments(nn::glorot_normal(Shape{300, 500}, rng));
  EXPECT_NEAR(gn.stddev, std::sqrt(2.0 / 800.0), 0.01 * std::sqrt(2.0 / 800.0));

  const double a = std::sqrt(6.0 / 300.0);
  const Moments hu = moments(nn::he_uniform(Shape{300, 500}, rng));
  EXPECT_GE(hu.min, -a);
  EXPECT_LE(hu.max, a);
  EXPECT_NEAR(hu.stddev, a / std::sqrt(3.0), 0.01 * a);

  const Moments n = moments(nn::normal(0.5, 2.0)(Shape{200000}, rng, DType::f32));
  EXPECT_NEAR(n.mean, 2.0, 0.005);
  EXPECT_NEAR(n.stddev, 0.5, 0.005);

  const Moments u = moments(nn::uniform(1.0, 3.0)(Shape{200000}, rng, DType::f32));
  EXPECT_GE(u.min, 1.0);
  EXPECT_LT(u.max, 3.0);
  EXPECT_NEAR(u.mean, 2.0, 0.01);

  for (double v : values(nn::constant(-1.5)(Shape{2, 3}, rng, DType::f32))) EXPECT_EQ(v, -1.5);
  for (double v : values(nn::zeros(Shape{4}, rng))) EXPECT_EQ(v, 0.0);
  for (double v : values(nn::ones(Shape{4}, rng, DType::f64))) EXPECT_EQ(v, 1.0);
}

TEST(Init, SameSeedSameValues) {
  Rng a(42), b(42), c(43);
  EXPECT_EQ(values(nn::he_normal(Shape{8, 8}, a)), values(nn::he_normal(Shape{8, 8}, b)));
  EXPECT_NE(values(nn::he_normal(Shape{8, 8}, a)), values(nn::he_normal(Shape{8, 8}, c)));
}

TEST(Init, BadArgumentsRaiseTypedErrors) {
  Rng rng;
  EXPECT_THROW(nn::normal(-1.0), kiln::ValueError);
  EXPECT_THROW(nn::uniform(2.0, 1.0), kiln::ValueError);
  EXPECT_THROW(nn::glorot_uniform(Shape{2, 3}, rng, DType::i32), kiln::DTypeError);
  EXPECT_THROW(nn::he_normal(Shape{kiln::batch, 3}, rng), kiln::ShapeError);
}

// ---------------------------------------------------------------------------------------------
// Dense

// Hand computation of x [n, in] @ w [in, out] + b [out], all row-major.
std::vector<double> affine(const std::vector<double>& x, const std::vector<double>& w,
                           const std::vector<double>& b, std::int64_t n, std::int64_t in,
                           std::int64_t out) {
  std::vector<double> y(static_cast<std::size_t>(n * out));
  for (std::int64_t r = 0; r < n; ++r) {
    for (std::int64_t c = 0; c < out; ++c) {
      double s = b.empty() ? 0.0 : b[static_cast<std::size_t>(c)];
      for (std::int64_t k = 0; k < in; ++k) {
        s += x[static_cast<std::size_t>(r * in + k)] * w[static_cast<std::size_t>(k * out + c)];
      }
      y[static_cast<std::size_t>(r * out + c)] = s;
    }
  }
  return y;
}

TEST(Dense, MatchesAHandComputation) {
  Graph g;
  Value x = g.input("x", {kiln::batch, 3});
  Value y = nn::dense(g, x, 4,
                      {.activation = nn::Activation::relu,
                       .weight_init = ramp(0.1, 5.0),
                       .bias_init = ramp(0.25, 1.0),
                       .name = "fc1"});
  EXPECT_EQ(y.shape(), (Shape{kiln::batch, 4}));
  ASSERT_TRUE(g.contains("fc1.weight"));
  ASSERT_TRUE(g.contains("fc1.bias"));
  EXPECT_EQ(g.find("fc1.weight").shape(), (Shape{3, 4}));
  EXPECT_EQ(g.find("fc1.bias").shape(), (Shape{4}));

  const std::vector<double> xs = {1.0, -2.0, 0.5, 0.3, 0.7, -1.1};
  kiln::Executable exe(g, {y});
  const std::vector<Tensor> out =
      exe.run({{"x", Tensor::from<float>({1.0f, -2.0f, 0.5f, 0.3f, 0.7f, -1.1f}, {2, 3})}});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].shape(), (Shape{2, 4}));

  std::vector<double> w(12), b(4);
  for (int k = 0; k < 12; ++k) w[static_cast<std::size_t>(k)] = 0.1 * (k - 5.0);
  for (int k = 0; k < 4; ++k) b[static_cast<std::size_t>(k)] = 0.25 * (k - 1.0);
  std::vector<double> expected = affine(xs, w, b, 2, 3, 4);
  int positives = 0, zeros = 0;
  for (double& e : expected) {
    e = std::max(e, 0.0);
    (e > 0 ? positives : zeros)++;
  }
  ASSERT_GT(positives, 0);  // the case exercises both sides of the ReLU
  ASSERT_GT(zeros, 0);
  const std::vector<double> got = values(out[0]);
  for (std::size_t i = 0; i < expected.size(); ++i) EXPECT_NEAR(got[i], expected[i], 1e-5) << i;
}

TEST(Dense, ActivationsFromEnumOpAndLambdaAgree) {
  Graph g;
  Value x = g.input("x", {2, 3});
  const nn::Initializer w = ramp(0.2, 6.0);
  Value a = nn::dense(g, x, 2, {.activation = nn::Activation::tanh, .weight_init = w});
  Value b = nn::dense(g, x, 2, {.activation = kiln::tanh, .weight_init = w});
  Value c =
      nn::dense(g, x, 2, {.activation = [](Value v) { return kiln::tanh(v); }, .weight_init = w});
  Value d = nn::dense(g, x, 2, {.weight_init = w});  // no activation
  kiln::Executable exe(g, {a, b, c, d});
  const auto out =
      exe.run({{"x", Tensor::from<float>({0.5f, -1.0f, 2.0f, 1.5f, 0.0f, -0.5f}, {2, 3})}});
  const std::vector<double> raw = values(out[3]);
  for (int k = 0; k < 3; ++k) {
    const std::vector<double> act = values(out[static_cast<std::size_t>(k)]);
    for (std::size_t i = 0; i < raw.size(); ++i) EXPECT_NEAR(act[i], std::tanh(raw[i]), 1e-6);
  }
}

TEST(Dense, BatchedRank3AndRank1Inputs) {
  Graph g;
  Value x3 = g.input("x3", {kiln::batch, 2, 3});
  Value y3 = nn::dense(g, x3, 5, {.weight_init = ramp(0.1, 7.0), .bias_init = ramp(0.5, 2.0)});
  EXPECT_EQ(y3.shape(), (Shape{kiln::batch, 2, 5}));
  Value x1 = g.input("x1", {3});
  Value y1 = nn::dense(g, x1, 5, {.use_bias = false, .weight_init = ramp(0.1, 7.0)});
  EXPECT_EQ(y1.shape(), (Shape{5}));
  EXPECT_FALSE(g.contains("dense_1.bias"));

  kiln::Executable exe(g, {y3, y1});
  std::vector<float> xs(12);
  for (std::size_t i = 0; i < xs.size(); ++i) xs[i] = 0.3f * static_cast<float>(i) - 1.0f;
  const auto out = exe.run({{"x3", Tensor::from<float>(xs, {2, 2, 3})},
                            {"x1", Tensor::from<float>({1.0f, 2.0f, 3.0f}, {3})}});
  ASSERT_EQ(out[0].shape(), (Shape{2, 2, 5}));
  std::vector<double> w(15), b(5), xd(xs.begin(), xs.end());
  for (int k = 0; k < 15; ++k) w[static_cast<std::size_t>(k)] = 0.1 * (k - 7.0);
  for (int k = 0; k < 5; ++k) b[static_cast<std::size_t>(k)] = 0.5 * (k - 2.0);
  const auto e3 = affine(xd, w, b, 4, 3, 5);
  const auto g3 = values(out[0]);
  for (std::size_t i = 0; i < e3.size(); ++i) EXPECT_NEAR(g3[i], e3[i], 1e-5) << i;
  ASSERT_EQ(out[1].shape(), (Shape{5}));
  const auto e1 = affine({1.0, 2.0, 3.0}, w, {}, 1, 3, 5);
  const auto g1 = values(out[1]);
  for (std::size_t i = 0; i < e1.size(); ++i) EXPECT_NEAR(g1[i], e1[i], 1e-5) << i;
}

TEST(Dense, AutoNamesAreUniqueAndExplicitDuplicatesRaise) {
  Graph g;
  Value x = g.input("x", {kiln::batch, 3});
  nn::dense(g, x, 2);
  nn::dense(g, x, 2);
  nn::dense(g, x, 2, {.name = "dense_3"});
  nn::dense(g, x, 2);
  EXPECT_TRUE(g.contains("dense_0.weight"));
  EXPECT_TRUE(g.contains("dense_1.weight"));
  EXPECT_TRUE(g.contains("dense_2.weight"));  // the first free index
  EXPECT_TRUE(g.contains("dense_3.bias"));
  EXPECT_EQ(g.parameters().size(), 8u);
  EXPECT_THROW(nn::dense(g, x, 2, {.name = "dense_3"}), kiln::NameError);
  EXPECT_THROW(nn::dense(g, x, 2, {.name = "x"}), kiln::NameError);
}

TEST(Dense, InitialValuesAreReproducibleAndDifferPerLayer) {
  auto build = [](Graph& g) {
    Value x = g.input("x", {kiln::batch, 16});
    nn::dense(g, nn::dense(g, x, 16), 16);
  };
  Graph g1, g2;
  build(g1);
  build(g2);
  const auto w1a = values(g1.tensor(g1.find("dense_0.weight")));
  const auto w2a = values(g2.tensor(g2.find("dense_0.weight")));
  const auto w1b = values(g1.tensor(g1.find("dense_1.weight")));
  EXPECT_EQ(w1a, w2a);
  EXPECT_NE(w1a, w1b);
  // Glorot bounds hold for the default initialiser; the bias starts at zero.
  const double a = std::sqrt(6.0 / 32.0);
  for (double v : w1a) EXPECT_LE(std::abs(v), a);
  for (double v : values(g1.tensor(g1.find("dense_0.bias")))) EXPECT_EQ(v, 0.0);

  Graph g3;
  Value x = g3.input("x", {kiln::batch, 16});
  nn::dense(g3, x, 16, {.seed = 7});
  EXPECT_NE(values(g3.tensor(g3.find("dense_0.weight"))), w1a);
  Rng rng(5);
  nn::dense(g3, x, 16, {.weight_init = nn::he_normal, .rng = &rng});
  Rng same(5);
  EXPECT_EQ(values(g3.tensor(g3.find("dense_1.weight"))),
            values(nn::he_normal(Shape{16, 16}, same)));
}

TEST(Dense, BadArgumentsRaiseTypedErrors) {
  Graph g, other;
  Value x = g.input("x", {kiln::batch, 3});
  Value ix = g.input("ix", {kiln::batch, 3}, kiln::i32);
  Value dyn = g.input("dyn", {kiln::batch});
  Value foreign = other.input("x", {2, 3});
  EXPECT_THROW(nn::dense(g, x, 0), kiln::ValueError);
  EXPECT_THROW(nn::dense(g, x, -3), kiln::ValueError);
  EXPECT_THROW(nn::dense(g, ix, 2), kiln::DTypeError);
  EXPECT_THROW(nn::dense(g, dyn, 2), kiln::ShapeError);
  EXPECT_THROW(nn::dense(g, foreign, 2), kiln::ValueError);
  EXPECT_THROW(nn::dense(g, Value(), 2), kiln::ValueError);
  // An initialiser that ignores the requested shape is caught, naming the parameter.
  try {
    nn::dense(g, x, 2,
              {.weight_init = nn::Initializer(
                   [](const Shape&, Rng&, DType) { return Tensor::zeros(Shape{5}); }),
               .name = "bad"});
    FAIL() << "expected ValueError";
  } catch (const kiln::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("bad.weight"), std::string::npos) << e.what();
  }
  EXPECT_EQ(g.parameters().size(), 0u);
}

// ---------------------------------------------------------------------------------------------
// Layer norm

TEST(LayerNorm, MatchesADirectComputation) {
  Graph g;
  Value x = g.input("x", {kiln::batch, 5});
  Value y = nn::layer_norm(g, x, {.eps = 1e-3, .name = "ln"});
  EXPECT_EQ(y.shape(), (Shape{kiln::batch, 5}));
  ASSERT_TRUE(g.contains("ln.weight"));
  ASSERT_TRUE(g.contains("ln.bias"));
  for (double v : values(g.tensor(g.find("ln.weight")))) EXPECT_EQ(v, 1.0);
  for (double v : values(g.tensor(g.find("ln.bias")))) EXPECT_EQ(v, 0.0);
  // Non-trivial gamma / beta, set through the graph's shared storage.
  g.tensor(g.find("ln.weight")).copy_from(Tensor::from<float>({1.f, 2.f, -1.f, .5f, 3.f}, {5}));
  g.tensor(g.find("ln.bias")).copy_from(Tensor::from<float>({0.f, .1f, .2f, -.3f, 1.f}, {5}));

  const std::vector<float> xs = {1, 2,  3,    4,    6,    -1,   0.5f, 0.25f,
                                 8, -3, 0.1f, 0.1f, 0.1f, 0.1f, 0.2f};
  kiln::Executable exe(g, {y});
  const auto out = exe.run({{"x", Tensor::from<float>(xs, {3, 5})}});
  ASSERT_EQ(out[0].shape(), (Shape{3, 5}));
  const auto got = values(out[0]);
  const double gamma[5] = {1, 2, -1, .5, 3}, beta[5] = {0, .1, .2, -.3, 1};
  for (int r = 0; r < 3; ++r) {
    double mu = 0, var = 0;
    for (int c = 0; c < 5; ++c) mu += xs[static_cast<std::size_t>(r * 5 + c)] / 5.0;
    for (int c = 0; c < 5; ++c) {
      const double d = xs[static_cast<std::size_t>(r * 5 + c)] - mu;
      var += d * d / 5.0;
    }
    for (int c = 0; c < 5; ++c) {
      const double e =
          (xs[static_cast<std::size_t>(r * 5 + c)] - mu) / std::sqrt(var + 1e-3) * gamma[c] +
          beta[c];
      EXPECT_NEAR(got[static_cast<std::size_t>(r * 5 + c)], e, 2e-5) << r << "," << c;
    }
  }
}

TEST(LayerNorm, WithoutAffineHasNoParametersAndZeroMeanUnitVariance) {
  Graph g;
  Value x = g.input("x", {2, 3, 4});
  Value y = nn::layer_norm(g, x, {.eps = 0.0, .elementwise_affine = false});
  EXPECT_EQ(g.parameters().size(), 0u);
  kiln::Executable exe(g, {y});
  std::vector<float> xs(24);
  for (std::size_t i = 0; i < xs.size(); ++i) xs[i] = std::sin(1.7f * static_cast<float>(i)) * 3;
  const auto got = values(exe.run({{"x", Tensor::from<float>(xs, {2, 3, 4})}})[0]);
  for (int r = 0; r < 6; ++r) {
    double mu = 0, sq = 0;
    for (int c = 0; c < 4; ++c) mu += got[static_cast<std::size_t>(r * 4 + c)] / 4;
    for (int c = 0; c < 4; ++c)
      sq += got[static_cast<std::size_t>(r * 4 + c)] * got[static_cast<std::size_t>(r * 4 + c)] / 4;
    EXPECT_NEAR(mu, 0.0, 1e-5);
    EXPECT_NEAR(sq, 1.0, 1e-4);
  }
}

// nn::layer_norm is one fused node (Op::layer_norm); its output and its gradients for x,
// weight and bias must match the formula it used to be composed of (mean, sub, mul, sqrt,
// div), built here from the same parameters: in f64 (reference kernels) to 1e-12, and in
// f32 with the best kernels to float round-off.
void expect_layer_norm_matches_composition(DType dt, double eps, bool affine, double tol) {
  SCOPED_TRACE(std::string(kiln::to_string(dt)) + " eps " + std::to_string(eps) +
               (affine ? " affine" : " plain"));
  Graph g;
  Value x = g.input("x", {kiln::batch, 3, 8}, dt);
  Value y = nn::layer_norm(g, x, {.eps = eps, .elementwise_affine = affine, .name = "ln"});
  ASSERT_EQ(y.node().op, kiln::Op::layer_norm);
  Rng rng(31);
  std::vector<Value> params;
  if (affine) {
    for (const char* name : {"ln.weight", "ln.bias"}) {
      Value p = g.find(name);
      std::vector<double> v(8);
      for (double& e : v) e = rng.uniform(-1.5, 1.5);
      g.tensor(p).copy_from(Tensor::from(v, {8}).to(dt));
      params.push_back(p);
    }
  }
  // The composed formula nn::layer_norm built before the fused op, with eps as the op holds
  // it (a float attribute, as batch_norm's).
  const double op_eps = static_cast<double>(static_cast<float>(eps));
  Value mu = kiln::mean(x, {2}, true);
  Value centred = kiln::sub(x, mu);
  Value var = kiln::mean(kiln::mul(centred, centred), {2}, true);
  Value composed = kiln::div(centred, kiln::sqrt(kiln::add(var, op_eps)));
  if (affine) composed = kiln::add(kiln::mul(composed, params[0]), params[1]);
  // A weighted sum, so that every element's gradient differs.
  std::vector<double> w(3 * 8);
  for (double& e : w) e = rng.uniform(-2.0, 2.0);
  Value weights = g.constant(Tensor::from(w, {3, 8}).to(dt));
  std::vector<Value> wrt{x};
  wrt.insert(wrt.end(), params.begin(), params.end());
  std::vector<Value> outputs{y, composed};
  for (Value out : {y, composed}) {
    const auto grads = kiln::grad(kiln::sum(kiln::mul(out, weights)), wrt);
    outputs.insert(outputs.end(), grads.begin(), grads.end());
  }
  kiln::CompileOptions training;
  training.training = true;
  kiln::Executable exe(g, outputs, training);
  std::vector<double> xs(2 * 3 * 8);
  for (double& e : xs) e = rng.uniform(-3.0, 3.0);
  for (std::size_t i = 0; i < 8; ++i) xs[i] = 0.75;  // a constant row (var = 0)
  const auto out = exe.run({{"x", Tensor::from(xs, {2, 3, 8}).to(dt)}});
  const std::size_t pairs = 1 + wrt.size();  // y, then one gradient per wrt, for each form
  ASSERT_EQ(out.size(), 2 * pairs);
  const char* what[] = {"y", "dx", "dweight", "dbias"};
  for (std::size_t k = 0; k < pairs; ++k) {
    const auto fused = values(out[k > 0 ? 1 + k : 0]);
    const auto ref = values(out[k > 0 ? pairs + k : 1]);
    ASSERT_EQ(fused.size(), ref.size()) << what[k];
    for (std::size_t i = 0; i < fused.size(); ++i)
      EXPECT_NEAR(fused[i], ref[i], tol * (1.0 + std::abs(ref[i]))) << what[k] << " " << i;
  }
}

TEST(LayerNorm, IsOneNodeWithTheComposedFormulasOutputAndGradients) {
  for (bool affine : {true, false}) {
    expect_layer_norm_matches_composition(kiln::f64, 0.25, affine, 1e-12);
    expect_layer_norm_matches_composition(kiln::f64, 1e-5, affine, 1e-12);
    expect_layer_norm_matches_composition(kiln::f32, 1e-5, affine, 2e-4);
  }
}

TEST(LayerNorm, TheFusedOpRefusesBadInputsNamingTheNode) {
  Graph g;
  Value x = g.input("x", {kiln::batch, 4});
  Value p4 = g.parameter("p4", Tensor::full({4}, 1.0));
  Value p3 = g.parameter("p3", Tensor::full({3}, 1.0));
  auto message_of = [](auto&& f) {
    try {
      f();
    } catch (const kiln::Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message_of([&] { kiln::layer_norm(x, p4, {}, 1e-5f, "ln_a"); }).find("ln_a"),
            std::string::npos);
  EXPECT_THROW(kiln::layer_norm(x, p4, {}), kiln::ValueError);
  const std::string wrong = message_of([&] { kiln::layer_norm(x, p3, p3, 1e-5f, "ln_b"); });
  EXPECT_NE(wrong.find("ln_b"), std::string::npos) << wrong;
  EXPECT_NE(wrong.find("gamma must be [4]"), std::string::npos) << wrong;
  EXPECT_THROW(kiln::layer_norm(x, p3, p3), kiln::ShapeError);
  EXPECT_THROW(kiln::layer_norm(x, {}, {}, -1.0f), kiln::ShapeError);
  EXPECT_THROW(kiln::layer_norm(g.input("i", {2, 4}, kiln::i32), {}, {}), kiln::DTypeError);
  EXPECT_THROW(kiln::layer_norm(g.input("s", {}), {}, {}), kiln::ShapeError);
  EXPECT_THROW(kiln::layer_norm_backward(x, p4, g.input("gy", {kiln::batch, 5}), 1e-5f),
               kiln::ShapeError);
  EXPECT_THROW(kiln::layer_norm_backward(x, p3, x, 1e-5f), kiln::ShapeError);
  EXPECT_THROW(kiln::layer_norm_backward(x, {}, {}, 1e-5f), kiln::ValueError);
}

TEST(LayerNorm, BadArguments) {
  Graph g;
  EXPECT_THROW(nn::layer_norm(g, g.input("s", {})), kiln::ShapeError);
  EXPECT_THROW(nn::layer_norm(g, g.input("i", {2, 3}, kiln::i64)), kiln::DTypeError);
  EXPECT_THROW(nn::layer_norm(g, g.input("x", {2, 3}), {.eps = -1.0}), kiln::ValueError);
}

// ---------------------------------------------------------------------------------------------
// Embedding

TEST(Embedding, LooksUpRows) {
  Graph g;
  Value ids = g.input("ids", {kiln::batch, 3}, kiln::i32);
  Value e = nn::embedding(g, ids, 6, 4, {.init = ramp(1.0, 0.0), .name = "emb"});
  EXPECT_EQ(e.shape(), (Shape{kiln::batch, 3, 4}));
  EXPECT_EQ(g.find("emb.weight").shape(), (Shape{6, 4}));
  kiln::Executable exe(g, {e});
  const std::vector<std::int32_t> idx = {5, 0, 2, 2, 3, 1};
  const auto out = exe.run({{"ids", Tensor::from<std::int32_t>(idx, {2, 3})}});
  ASSERT_EQ(out[0].shape(), (Shape{2, 3, 4}));
  const auto got = values(out[0]);
  for (std::size_t s = 0; s < idx.size(); ++s) {
    for (std::size_t d = 0; d < 4; ++d) {
      EXPECT_EQ(got[s * 4 + d], static_cast<double>(idx[s] * 4 + static_cast<int>(d)));
    }
  }
  EXPECT_THROW(exe.run({{"ids", Tensor::from<std::int32_t>({0, 1, 6, 0, 0, 0}, {2, 3})}}),
               kiln::ValueError);
}

TEST(Embedding, DefaultInitIsStandardNormalAndArgumentsAreChecked) {
  Graph g;
  Value ids = g.input("ids", {kiln::batch}, kiln::i64);
  nn::embedding(g, ids, 1000, 64);
  const Moments m = moments(g.tensor(g.find("embedding_0.weight")));
  EXPECT_NEAR(m.mean, 0.0, 0.02);
  EXPECT_NEAR(m.stddev, 1.0, 0.02);
  EXPECT_THROW(nn::embedding(g, g.input("f", {3}), 10, 4), kiln::DTypeError);
  EXPECT_THROW(nn::embedding(g, ids, 0, 4), kiln::ValueError);
  EXPECT_THROW(nn::embedding(g, ids, 10, -1), kiln::ValueError);
  EXPECT_THROW(nn::embedding(g, ids, 10, 4, {.dtype = kiln::i32}), kiln::DTypeError);
}

// ---------------------------------------------------------------------------------------------
// Sequential

TEST(Sequential, ComposesLayersInOrder) {
  nn::Sequential net{nn::Dense(4, nn::Activation::relu), nn::LayerNorm(),
                     nn::Dense(2, {.name = "head"})};
  EXPECT_EQ(net.size(), 3u);
  net.add([](Graph&, Value v) { return kiln::mul(v, 2.0); });
  Graph g;
  Value x = g.input("x", {kiln::batch, 3});
  Value y = net(g, x);
  EXPECT_EQ(y.shape(), (Shape{kiln::batch, 2}));
  const std::vector<std::string> names = {"dense_0.weight",      "dense_0.bias",
                                          "layer_norm_0.weight", "layer_norm_0.bias",
                                          "head.weight",         "head.bias"};
  const auto params = g.parameters();
  ASSERT_EQ(params.size(), names.size());
  for (std::size_t i = 0; i < names.size(); ++i) EXPECT_EQ(params[i].name(), names[i]);

  // Forward values against a double-precision computation from the stored parameters.
  const auto w0 = values(g.tensor(params[0])), b0 = values(g.tensor(params[1]));
  const auto w2 = values(g.tensor(params[4])), b2 = values(g.tensor(params[5]));
  const std::vector<double> xs = {0.5, -1.0, 2.0, 1.5, 0.25, -0.75};
  auto h = affine(xs, w0, b0, 2, 3, 4);
  for (double& v : h) v = std::max(v, 0.0);
  for (int r = 0; r < 2; ++r) {
    double mu = 0, var = 0;
    for (int c = 0; c < 4; ++c) mu += h[static_cast<std::size_t>(r * 4 + c)] / 4;
    for (int c = 0; c < 4; ++c) {
      const double d = h[static_cast<std::size_t>(r * 4 + c)] - mu;
      var += d * d / 4;
    }
    for (int c = 0; c < 4; ++c) {
      double& v = h[static_cast<std::size_t>(r * 4 + c)];
      v = (v - mu) / std::sqrt(var + 1e-5);
    }
  }
  auto expected = affine(h, w2, b2, 2, 4, 2);
  for (double& v : expected) v *= 2.0;

  kiln::Executable exe(g, {y});
  const auto got = values(exe.run({{"x", Tensor::from<double>(xs, {2, 3}).to(DType::f32)}})[0]);
  ASSERT_EQ(got.size(), expected.size());
  for (std::size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], expected[i], 1e-4) << i;

  // Applying the same Sequential again makes new auto-named layers but "head" clashes.
  EXPECT_THROW(net(g, x), kiln::NameError);
  EXPECT_THROW(net.add(nn::Layer()), kiln::ValueError);
}

TEST(Sequential, ParameterTensorsShareStorageWithTheGraph) {
  Graph g;
  Value x = g.input("x", {kiln::batch, 2});
  nn::Sequential{nn::Dense(3), nn::Dense(1)}(g, x);
  std::vector<Tensor> ps = nn::parameter_tensors(g);
  ASSERT_EQ(ps.size(), 4u);
  EXPECT_EQ(ps[0].shape(), (Shape{2, 3}));
  EXPECT_EQ(ps[3].shape(), (Shape{1}));
  ps[3].data<float>()[0] = 42.0f;
  EXPECT_EQ(g.tensor(g.find("dense_1.bias")).at(0), 42.0);
}

// ---------------------------------------------------------------------------------------------
// End to end: layers + autodiff + executable + optimizer

TEST(Training, AdamFitsALinearModel) {
  Graph g;
  Value x = g.input("x", {kiln::batch, 3});
  Value t = g.input("t", {kiln::batch, 1});
  Value y = nn::dense(g, x, 1, {.name = "lin"});
  Value loss = kiln::mse(y, t);
  auto params = g.parameters();
  auto grads = kiln::grad(loss, params);
  std::vector<Value> outputs = {loss};
  outputs.insert(outputs.end(), grads.begin(), grads.end());
  kiln::CompileOptions training;
  training.training = true;
  kiln::Executable step(g, outputs, training);
  kiln::optim::Adam opt(nn::parameter_tensors(g), {.lr = 0.05});

  // Targets from known weights: t = 1.5 x0 - 2 x1 + 0.5 x2 + 0.3.
  const int n = 64;
  std::vector<float> xs(n * 3), ts(n);
  Rng rng(9);
  for (int i = 0; i < n; ++i) {
    for (int k = 0; k < 3; ++k)
      xs[static_cast<std::size_t>(i * 3 + k)] = static_cast<float>(rng.normal());
    ts[static_cast<std::size_t>(i)] = 1.5f * xs[static_cast<std::size_t>(i * 3)] -
                                      2.0f * xs[static_cast<std::size_t>(i * 3 + 1)] +
                                      0.5f * xs[static_cast<std::size_t>(i * 3 + 2)] + 0.3f;
  }
  const kiln::Feeds feeds = {{"x", Tensor::from<float>(xs, {n, 3})},
                             {"t", Tensor::from<float>(ts, {n, 1})}};
  double first = 0.0, last = 0.0;
  for (int it = 0; it < 400; ++it) {
    auto out = step.run_views(feeds);
    if (it == 0) first = out[0].item();
    last = out[0].item();
    opt.step(out.subspan(1));
  }
  EXPECT_GT(first, 1.0);
  EXPECT_LT(last, 1e-4);
  const auto w = values(g.tensor(g.find("lin.weight")));
  EXPECT_NEAR(w[0], 1.5, 0.01);
  EXPECT_NEAR(w[1], -2.0, 0.01);
  EXPECT_NEAR(w[2], 0.5, 0.01);
  EXPECT_NEAR(g.tensor(g.find("lin.bias")).at(0), 0.3, 0.01);
}

}  // namespace
