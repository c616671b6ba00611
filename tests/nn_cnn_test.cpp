// Convolutional layers: Conv2d, BatchNorm2d, pooling, Flatten, Dropout; training vs eval
// executables. Values are checked against hand computations written out below.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "kiln/core/error.hpp"
#include "kiln/nn/layers.hpp"
#include "kiln/ops.hpp"
#include "kiln/optim/optimizer.hpp"
#include "kiln/runtime/executable.hpp"
#include "kiln/train/train_step.hpp"
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

bool contains(const std::vector<Value>& vs, Value v) {
  return std::find(vs.begin(), vs.end(), v) != vs.end();
}

// ---------------------------------------------------------------------------------------------
// Conv2d

TEST(Conv2d, ShapesNamesAndDefaultInitialisation) {
  Graph g;
  Value x = g.input("x", {kiln::batch, 3, 9, 7});
  Value y = nn::conv2d(g, x, 8, {3, 3}, {.stride = {2, 2}, .padding = {1, 1}});
  EXPECT_EQ(y.shape(), (Shape{kiln::batch, 8, 5, 4}));
  ASSERT_TRUE(g.contains("conv2d_0.weight"));
  ASSERT_TRUE(g.contains("conv2d_0.bias"));
  EXPECT_EQ(g.find("conv2d_0.weight").shape(), (Shape{8, 3, 3, 3}));
  EXPECT_EQ(g.find("conv2d_0.bias").shape(), (Shape{8}));
  for (double v : values(g.tensor(g.find("conv2d_0.bias")))) EXPECT_EQ(v, 0.0);

  // Second layer: auto-named, channels inferred, rectangular kernel, dilation, no bias.
  Value z = nn::conv2d(g, y, 4, {3, 2}, {.dilation = {2, 1}, .use_bias = false});
  EXPECT_EQ(z.shape(), (Shape{kiln::batch, 4, 1, 3}));
  EXPECT_EQ(g.find("conv2d_1.weight").shape(), (Shape{4, 8, 3, 2}));
  EXPECT_FALSE(g.contains("conv2d_1.bias"));
  EXPECT_EQ(g.parameters().size(), 3u);

  // He normal with fan_in = C * kh * kw (not the Keras reading of the OIHW shape).
  Graph big;
  Value xb = big.input("x", {1, 64, 8, 8});
  nn::conv2d(big, xb, 256, {5, 5}, {.name = "c"});
  const std::vector<double> w = values(big.tensor(big.find("c.weight")));
  double mean = 0.0, ss = 0.0;
  for (double v : w) mean += v;
  mean /= static_cast<double>(w.size());
  for (double v : w) ss += (v - mean) * (v - mean);
  const double stddev = std::sqrt(ss / static_cast<double>(w.size()));
  EXPECT_NEAR(mean, 0.0, 1e-3);
  EXPECT_NEAR(stddev, std::sqrt(2.0 / (64 * 25)), 0.01 * std::sqrt(2.0 / (64 * 25)));
}

TEST(Conv2d, InitialiserSeesTheKerasKernelLayout) {
  Graph g;
  Value x = g.input("x", {1, 2, 4, 4});
  std::vector<Shape> asked;
  nn::Initializer record = [&](const Shape& s, Rng& r, DType d) {
    asked.push_back(s);
    return ramp(1.0, 0.0)(s, r, d);
  };
  nn::conv2d(g, x, 3, {2, 3}, {.weight_init = record, .name = "c"});
  ASSERT_EQ(asked.size(), 1u);
  EXPECT_EQ(asked[0], (Shape{2, 3, 2, 3}));  // [kh, kw, C, O]
  // weight[o, c, i, j] is element ((i * kw + j) * C + c) * O + o of the ramp.
  const std::vector<double> w = values(g.tensor(g.find("c.weight")));
  ASSERT_EQ(w.size(), 36u);
  for (int o = 0; o < 3; ++o)
    for (int c = 0; c < 2; ++c)
      for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 3; ++j)
          EXPECT_EQ(w[static_cast<std::size_t>(((o * 2 + c) * 2 + i) * 3 + j)],
                    ((i * 3 + j) * 2 + c) * 3 + o);
}

TEST(Conv2d, GroupsAndBadArguments) {
  Graph g;
  Value x = g.input("x", {kiln::batch, 6, 5, 5});
  Value d = nn::conv2d(g, x, 6, {3, 3}, {.padding = {1, 1}, .groups = 6, .name = "depthwise"});
  EXPECT_EQ(d.shape(), (Shape{kiln::batch, 6, 5, 5}));
  EXPECT_EQ(g.find("depthwise.weight").shape(), (Shape{6, 1, 3, 3}));
  Value p = nn::conv2d(g, x, 4, {1, 1}, {.groups = 2});
  EXPECT_EQ(g.find("conv2d_0.weight").shape(), (Shape{4, 3, 1, 1}));
  EXPECT_EQ(p.shape(), (Shape{kiln::batch, 4, 5, 5}));

  Value flat = g.input("flat", {kiln::batch, 6});
  Value ints = g.input("ints", {kiln::batch, 6, 5, 5}, kiln::i32);
  EXPECT_THROW(nn::conv2d(g, x, 0, {3, 3}), kiln::ValueError);
  EXPECT_THROW(nn::conv2d(g, x, 4, {0, 3}), kiln::ValueError);
  EXPECT_THROW(nn::conv2d(g, x, 4, {3, 3}, {.groups = 4}), kiln::ValueError);  // 6 % 4
  EXPECT_THROW(nn::conv2d(g, x, 5, {3, 3}, {.groups = 3}), kiln::ValueError);  // 5 % 3
  EXPECT_THROW(nn::conv2d(g, flat, 4, {3, 3}), kiln::ShapeError);
  EXPECT_THROW(nn::conv2d(g, ints, 4, {3, 3}), kiln::DTypeError);
  EXPECT_THROW(nn::conv2d(g, x, 4, {9, 9}), kiln::ShapeError);  // does not fit
  EXPECT_THROW(nn::conv2d(g, x, 4, {3, 3}, {.name = "depthwise"}), kiln::NameError);
}

// Direct cross-correlation, NCHW / OIHW, groups 1.
std::vector<double> conv_by_hand(const std::vector<double>& x, const std::vector<double>& w,
                                 const std::vector<double>& b, int n, int c, int h, int wd, int o,
                                 int kh, int kw, int stride, int pad) {
  const int ho = (h + 2 * pad - kh) / stride + 1, wo = (wd + 2 * pad - kw) / stride + 1;
  std::vector<double> y(static_cast<std::size_t>(n * o * ho * wo));
  for (int in = 0; in < n; ++in)
    for (int oc = 0; oc < o; ++oc)
      for (int r = 0; r < ho; ++r)
        for (int s = 0; s < wo; ++s) {
          double acc = b[static_cast<std::size_t>(oc)];
          for (int ic = 0; ic < c; ++ic)
            for (int i = 0; i < kh; ++i)
              for (int j = 0; j < kw; ++j) {
                const int yy = r * stride - pad + i, xx = s * stride - pad + j;
                if (yy < 0 || yy >= h || xx < 0 || xx >= wd) continue;
                acc += x[static_cast<std::size_t>(((in * c + ic) * h + yy) * wd + xx)] *
                       w[static_cast<std::size_t>(((oc * c + ic) * kh + i) * kw + j)];
              }
          y[static_cast<std::size_t>(((in * o + oc) * ho + r) * wo + s)] = acc;
        }
  return y;
}

TEST(Conv2d, MatchesAHandComputationWithBiasAndRelu) {
  Graph g;
  Value x = g.input("x", {kiln::batch, 2, 5, 4});
  Value y = nn::conv2d(g, x, 3, {3, 2},
                       {.stride = {2, 2},
                        .padding = {1, 1},
                        .activation = nn::Activation::relu,
                        .bias_init = ramp(0.5, 1.0),
                        .name = "c"});
  EXPECT_EQ(y.shape(), (Shape{kiln::batch, 3, 3, 3}));
  Tensor& wt = g.tensor(g.find("c.weight"));
  std::vector<double> w(static_cast<std::size_t>(wt.numel()));
  for (std::size_t k = 0; k < w.size(); ++k) w[k] = 0.05 * (static_cast<double>(k % 7) - 3.0);
  wt.copy_from(Tensor::from<double>(w, wt.shape()).to(DType::f32));
  const std::vector<double> b = {-0.5, 0.0, 0.5};

  std::vector<double> xs(2 * 2 * 5 * 4);
  for (std::size_t k = 0; k < xs.size(); ++k) xs[k] = std::sin(0.7 * static_cast<double>(k));
  kiln::Executable exe(g, {y});
  const auto out = exe.run({{"x", Tensor::from<double>(xs, {2, 2, 5, 4}).to(DType::f32)}});
  ASSERT_EQ(out[0].shape(), (Shape{2, 3, 3, 3}));
  std::vector<double> expected = conv_by_hand(xs, w, b, 2, 2, 5, 4, 3, 3, 2, 2, 1);
  int zeros = 0;
  for (double& e : expected) {
    if (e <= 0) ++zeros;
    e = std::max(e, 0.0);
  }
  ASSERT_GT(zeros, 0);  // both sides of the ReLU are exercised
  ASSERT_LT(zeros, static_cast<int>(expected.size()));
  const std::vector<double> got = values(out[0]);
  for (std::size_t i = 0; i < expected.size(); ++i) EXPECT_NEAR(got[i], expected[i], 1e-5) << i;
}

// ---------------------------------------------------------------------------------------------
// BatchNorm2d

TEST(BatchNorm2d, ParametersAndBuffers) {
  Graph g;
  Value x = g.input("x", {kiln::batch, 3, 4, 4});
  Value y = nn::BatchNorm2d({.name = "bn"})(g, x);
  EXPECT_EQ(y.shape(), x.shape());
  const std::vector<Value> params = g.parameters();
  const std::vector<Value> buffers = g.buffers();
  EXPECT_TRUE(contains(params, g.find("bn.weight")));
  EXPECT_TRUE(contains(params, g.find("bn.bias")));
  EXPECT_FALSE(contains(params, g.find("bn.running_mean")));
  EXPECT_FALSE(contains(params, g.find("bn.running_var")));
  EXPECT_TRUE(contains(buffers, g.find("bn.running_mean")));
  EXPECT_TRUE(contains(buffers, g.find("bn.running_var")));
  EXPECT_EQ(params.size(), 2u);
  EXPECT_EQ(buffers.size(), 2u);
  EXPECT_EQ(values(g.tensor(g.find("bn.weight"))), (std::vector<double>{1, 1, 1}));
  EXPECT_EQ(values(g.tensor(g.find("bn.bias"))), (std::vector<double>{0, 0, 0}));
  EXPECT_EQ(values(g.tensor(g.find("bn.running_mean"))), (std::vector<double>{0, 0, 0}));
  EXPECT_EQ(values(g.tensor(g.find("bn.running_var"))), (std::vector<double>{1, 1, 1}));

  // Without affine: no trainable parameters, still two buffers.
  Graph h;
  Value xh = h.input("x", {kiln::batch, 2});
  nn::batch_norm(h, xh, {.affine = false});
  EXPECT_TRUE(h.parameters().empty());
  EXPECT_EQ(h.buffers().size(), 2u);
  EXPECT_TRUE(h.contains("batch_norm_0.running_var"));

  Value flat = h.input("v", {kiln::batch});
  EXPECT_THROW(nn::batch_norm(h, flat), kiln::ShapeError);
  EXPECT_THROW(nn::batch_norm(h, xh, {.eps = 0.0}), kiln::ValueError);
  EXPECT_THROW(nn::batch_norm(h, xh, {.momentum = 1.5}), kiln::ValueError);
}

// Per-channel batch mean and biased variance of x [n, c, hw].
struct ChannelStats {
  std::vector<double> mean, var;
};
ChannelStats channel_stats(const std::vector<double>& x, int n, int c, int hw) {
  ChannelStats s{std::vector<double>(static_cast<std::size_t>(c)),
                 std::vector<double>(static_cast<std::size_t>(c))};
  for (int ch = 0; ch < c; ++ch) {
    double sum = 0.0, sq = 0.0;
    for (int i = 0; i < n; ++i)
      for (int k = 0; k < hw; ++k) sum += x[static_cast<std::size_t>((i * c + ch) * hw + k)];
    const double m = sum / (n * hw);
    for (int i = 0; i < n; ++i)
      for (int k = 0; k < hw; ++k) {
        const double d = x[static_cast<std::size_t>((i * c + ch) * hw + k)] - m;
        sq += d * d;
      }
    s.mean[static_cast<std::size_t>(ch)] = m;
    s.var[static_cast<std::size_t>(ch)] = sq / (n * hw);
  }
  return s;
}

TEST(BatchNorm2d, TrainingUpdatesRunningStatsAndEvalUsesThem) {
  constexpr int n = 3, c = 2, h = 2, w = 2, hw = h * w, count = n * hw;
  constexpr double eps = 1e-3, momentum = 0.25;
  Graph g;
  Value x = g.input("x", {kiln::batch, c, h, w});
  Value y = nn::batch_norm(g, x, {.eps = eps, .momentum = momentum, .name = "bn"});
  const std::vector<double> gamma = {1.5, -0.5}, beta = {0.25, 2.0};
  g.tensor(g.find("bn.weight")).copy_from(Tensor::from<float>({1.5f, -0.5f}, {2}));
  g.tensor(g.find("bn.bias")).copy_from(Tensor::from<float>({0.25f, 2.0f}, {2}));

  std::vector<double> x1(n * c * hw), x2(n * c * hw);
  for (std::size_t k = 0; k < x1.size(); ++k) {
    x1[k] = 0.5 * static_cast<double>(k % 5) + (k % 8 < 4 ? 0.0 : 3.0);
    x2[k] = std::cos(1.3 * static_cast<double>(k)) * 2.0 - 1.0;
  }
  const auto feed = [](const std::vector<double>& v) {
    return kiln::Feeds{{"x", Tensor::from<double>(v, {n, c, h, w}).to(DType::f32)}};
  };

  kiln::CompileOptions train_mode;
  train_mode.training = true;
  kiln::Executable train(g, {y}, train_mode);
  kiln::Executable eval(g, {y});

  std::vector<double> rm = {0.0, 0.0}, rv = {1.0, 1.0};
  for (const auto* batch : {&x1, &x2}) {
    const std::vector<double> got = values(train.run(feed(*batch))[0]);
    const ChannelStats s = channel_stats(*batch, n, c, hw);
    for (int i = 0; i < n; ++i)
      for (int ch = 0; ch < c; ++ch)
        for (int k = 0; k < hw; ++k) {
          const auto at = static_cast<std::size_t>((i * c + ch) * hw + k);
          const auto cc = static_cast<std::size_t>(ch);
          const double e =
              gamma[cc] * ((*batch)[at] - s.mean[cc]) / std::sqrt(s.var[cc] + eps) + beta[cc];
          EXPECT_NEAR(got[at], e, 1e-4) << at;
        }
    for (std::size_t ch = 0; ch < 2; ++ch) {
      rm[ch] = (1 - momentum) * rm[ch] + momentum * s.mean[ch];
      rv[ch] = (1 - momentum) * rv[ch] + momentum * s.var[ch] * count / (count - 1);
    }
    const std::vector<double> got_rm = values(g.tensor(g.find("bn.running_mean")));
    const std::vector<double> got_rv = values(g.tensor(g.find("bn.running_var")));
    for (std::size_t ch = 0; ch < 2; ++ch) {
      EXPECT_NEAR(got_rm[ch], rm[ch], 1e-5) << ch;
      EXPECT_NEAR(got_rv[ch], rv[ch], 1e-5) << ch;
    }
  }

  // Evaluation: the running statistics, unchanged by the run.
  const std::vector<double> got = values(eval.run(feed(x1))[0]);
  for (int i = 0; i < n; ++i)
    for (int ch = 0; ch < c; ++ch)
      for (int k = 0; k < hw; ++k) {
        const auto at = static_cast<std::size_t>((i * c + ch) * hw + k);
        const auto cc = static_cast<std::size_t>(ch);
        const double e = gamma[cc] * (x1[at] - rm[cc]) / std::sqrt(rv[cc] + eps) + beta[cc];
        EXPECT_NEAR(got[at], e, 1e-4) << at;
      }
  const std::vector<double> after = values(g.tensor(g.find("bn.running_mean")));
  for (std::size_t ch = 0; ch < 2; ++ch) EXPECT_NEAR(after[ch], rm[ch], 1e-6);
}

// ---------------------------------------------------------------------------------------------
// Pooling, flatten

TEST(Pooling, LayersMatchHandComputations) {
  Graph g;
  Value x = g.input("x", {kiln::batch, 1, 4, 5});
  Value mx = nn::MaxPool2d({2, 2})(g, x);
  Value av = nn::AvgPool2d({2, 3}, {.stride = {2, 2}, .padding = {0, 1}})(g, x);
  Value gp = nn::GlobalAvgPool2d()(g, x);
  Value fl = nn::Flatten()(g, gp);
  Value fx = nn::Flatten()(g, x);
  EXPECT_EQ(mx.shape(), (Shape{kiln::batch, 1, 2, 2}));
  EXPECT_EQ(av.shape(), (Shape{kiln::batch, 1, 2, 3}));
  EXPECT_EQ(gp.shape(), (Shape{kiln::batch, 1, 1, 1}));
  EXPECT_EQ(fl.shape(), (Shape{kiln::batch, 1}));
  EXPECT_EQ(fx.shape(), (Shape{kiln::batch, 20}));
  EXPECT_TRUE(g.parameters().empty());

  std::vector<float> xs(20);
  for (int k = 0; k < 20; ++k) xs[static_cast<std::size_t>(k)] = static_cast<float>((k * 7) % 11);
  kiln::Executable exe(g, {mx, av, fl, fx});
  const auto out = exe.run({{"x", Tensor::from<float>(xs, {1, 1, 4, 5})}});
  const auto at = [&](int r, int c) -> double {
    return (r < 0 || r >= 4 || c < 0 || c >= 5) ? 0.0 : xs[static_cast<std::size_t>(r * 5 + c)];
  };
  std::vector<double> emax, eavg;
  for (int r = 0; r < 2; ++r)
    for (int c = 0; c < 2; ++c)
      emax.push_back(std::max({at(2 * r, 2 * c), at(2 * r, 2 * c + 1), at(2 * r + 1, 2 * c),
                               at(2 * r + 1, 2 * c + 1)}));
  for (int r = 0; r < 2; ++r)
    for (int c = 0; c < 3; ++c) {
      double s = 0.0;  // padding counts in the divisor (include_pad)
      for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 3; ++j) s += at(2 * r + i, 2 * c - 1 + j);
      eavg.push_back(s / 6.0);
    }
  double total = 0.0;
  for (float v : xs) total += v;
  EXPECT_EQ(values(out[0]), emax);
  const auto got_avg = values(out[1]);
  for (std::size_t i = 0; i < eavg.size(); ++i) EXPECT_NEAR(got_avg[i], eavg[i], 1e-5) << i;
  EXPECT_NEAR(values(out[2])[0], total / 20.0, 1e-5);
  EXPECT_EQ(values(out[3]), values(Tensor::from<float>(xs, {20})));
}

// ---------------------------------------------------------------------------------------------
// Dropout

TEST(Dropout, IdentityInEvalAndInvertedDropoutInTraining) {
  Graph g;
  Value x = g.input("x", {kiln::batch, 4000});
  Value a = nn::Dropout(0.25)(g, x);
  Value b = nn::Dropout(0.25)(g, x);  // same default seed, different layer: other mask
  EXPECT_TRUE(g.contains("dropout_0"));
  EXPECT_TRUE(g.contains("dropout_1"));

  std::vector<float> xs(4000);
  for (std::size_t k = 0; k < xs.size(); ++k) xs[k] = 1.0f + static_cast<float>(k % 13);
  const kiln::Feeds feeds{{"x", Tensor::from<float>(xs, {1, 4000})}};

  kiln::Executable eval(g, {a, b});
  for (const Tensor& t : eval.run(feeds)) EXPECT_EQ(t.to_vector<float>(), xs);

  kiln::CompileOptions train_mode;
  train_mode.training = true;
  kiln::Executable train(g, {a, b}, train_mode);
  const auto out = train.run(feeds);
  const std::vector<float> da = out[0].to_vector<float>(), db = out[1].to_vector<float>();
  int dropped_a = 0, differ = 0;
  for (std::size_t k = 0; k < xs.size(); ++k) {
    if (da[k] == 0.0f) {
      ++dropped_a;
    } else {
      EXPECT_FLOAT_EQ(da[k], xs[k] / 0.75f) << k;
    }
    if ((da[k] == 0.0f) != (db[k] == 0.0f)) ++differ;
  }
  EXPECT_NEAR(dropped_a / 4000.0, 0.25, 0.03);
  EXPECT_GT(differ, 500);  // independent masks differ in ~37.5% of the positions

  EXPECT_THROW(nn::dropout(g, x, 1.0), kiln::ValueError);
  EXPECT_THROW(nn::dropout(g, x, -0.1), kiln::ValueError);
}

// ---------------------------------------------------------------------------------------------
// A small CNN end to end

TEST(Cnn, SequentialTrainsAndEvalDiffersFromTraining) {
  Graph g;
  Value x = g.input("x", {kiln::batch, 1, 6, 6});
  Value labels = g.input("y", {kiln::batch}, kiln::i32);
  nn::Sequential net{nn::Conv2d(4, {3, 3}, {.padding = {1, 1}, .name = "conv"}),
                     nn::BatchNorm2d({.name = "bn"}),
                     nn::Activation(nn::Activation::relu),
                     nn::MaxPool2d({2, 2}),
                     nn::Flatten(),
                     nn::Dropout(0.1),
                     nn::Dense(2, {.name = "fc"})};
  Value logits = net(g, x);
  EXPECT_EQ(logits.shape(), (Shape{kiln::batch, 2}));
  EXPECT_EQ(g.find("fc.weight").shape(), (Shape{36, 2}));
  Value loss = kiln::softmax_cross_entropy(logits, labels);

  // Class 1: a bright top half; class 0: a bright bottom half.
  constexpr int n = 16;
  std::vector<float> xs(n * 36);
  std::vector<std::int32_t> ys(n);
  Rng rng(3);
  for (int i = 0; i < n; ++i) {
    ys[static_cast<std::size_t>(i)] = i % 2;
    for (int p = 0; p < 36; ++p) {
      const bool top = p < 18;
      xs[static_cast<std::size_t>(i * 36 + p)] =
          static_cast<float>(rng.uniform() * 0.2 + ((top == (i % 2 == 1)) ? 1.0 : 0.0));
    }
  }
  const kiln::Feeds feeds{{"x", Tensor::from<float>(xs, {n, 1, 6, 6})},
                          {"y", Tensor::from<std::int32_t>(ys, {n})}};

  kiln::TrainStep step(loss);
  EXPECT_EQ(step.parameters().size(), 6u);  // conv w, b; bn gamma, beta; fc w, b
  kiln::optim::Adam opt(step.parameters(), {.lr = 1e-2});
  const double first = step.run(feeds);
  opt.step(step.gradients());
  double last = first;
  for (int s = 0; s < 30; ++s) {
    last = step.run(feeds);
    opt.step(step.gradients());
  }
  EXPECT_LT(last, 0.5 * first);
  // The buffers moved away from their initial values.
  for (double v : values(g.tensor(g.find("bn.running_mean")))) EXPECT_NE(v, 0.0);

  kiln::Executable eval(g, {logits});
  const std::vector<double> e1 = values(eval.run(feeds)[0]);
  const std::vector<double> e2 = values(eval.run(feeds)[0]);
  EXPECT_EQ(e1, e2);  // no dropout, no statistics updates
  int correct = 0;
  for (int i = 0; i < n; ++i) {
    const auto k = static_cast<std::size_t>(2 * i);
    if ((e1[k + 1] > e1[k] ? 1 : 0) == ys[static_cast<std::size_t>(i)]) ++correct;
  }
  EXPECT_EQ(correct, n);
}

}  // namespace
