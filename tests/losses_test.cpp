// Weighted losses against torch (tests/data/losses_golden.txt, written once by
// tools/gen_losses_golden.py): values and gradients, the gradients also by central finite
// differences in double precision; and their errors on bad arguments.
#include "kiln/train/losses.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "kiln/autodiff.hpp"
#include "kiln/kiln.hpp"
#include "tests/support/error_test_support.hpp"
#include "tests/support/golden_file.hpp"

namespace {

using kiln::DType;
using kiln::Shape;
using kiln::Tensor;
using kiln::Value;

struct Case {
  std::string name, loss;
  std::vector<std::int64_t> x_dims, t_dims;
  std::vector<double> x, t, class_weights, pos_weight, sample_weights, grad;
  bool t_integer = false;
  double delta = 1.0, value = 0;
};

using kiln_test::numbers_of;

void read_tensor(std::istream& in, std::vector<std::int64_t>& dims, std::vector<double>& v) {
  std::size_t rank = 0;
  in >> rank;
  dims.resize(rank);
  for (auto& d : dims) in >> d;
  v = numbers_of(in);
}

std::vector<Case> load() {
  std::vector<Case> out;
  Case c;
  kiln_test::read_golden("losses_golden.txt", [&](const std::string& kind, std::istream& in) {
    if (kind == "case") {
      c = Case{};
      in >> c.name >> c.loss;
    } else if (kind == "x") {
      read_tensor(in, c.x_dims, c.x);
    } else if (kind == "t") {
      std::string dtype;
      in >> dtype;
      c.t_integer = dtype == "i64";
      read_tensor(in, c.t_dims, c.t);
    } else if (kind == "class_weights") {
      c.class_weights = numbers_of(in);
    } else if (kind == "pos_weight") {
      c.pos_weight = numbers_of(in);
    } else if (kind == "sample_weights") {
      c.sample_weights = numbers_of(in);
    } else if (kind == "delta") {
      in >> c.delta;
    } else if (kind == "value") {
      in >> c.value;
    } else if (kind == "grad") {
      c.grad = numbers_of(in);
    } else if (kind == "end") {
      out.push_back(c);
    } else {
      return false;
    }
    return true;
  });
  return out;
}

struct Built {
  std::unique_ptr<kiln::Graph> g = std::make_unique<kiln::Graph>();
  Value x, loss;
  kiln::Feeds feeds;
};

/// The case's loss in a graph of `dtype`, fed with the case's data (batch dim dynamic).
Built build(const Case& c, DType dtype) {
  Built b;
  kiln::Graph& g = *b.g;
  auto dyn = [](std::vector<std::int64_t> d) {
    d[0] = kiln::batch;
    return Shape(d);
  };
  b.x = g.input("x", dyn(c.x_dims), dtype);
  const Value t = g.input("t", dyn(c.t_dims), c.t_integer ? DType::i64 : dtype);
  b.feeds.emplace_back("x", Tensor::from(c.x, Shape(c.x_dims)).to(dtype));
  b.feeds.emplace_back("t",
                       Tensor::from(c.t, Shape(c.t_dims)).to(c.t_integer ? DType::i64 : dtype));
  Value s;
  if (!c.sample_weights.empty()) {
    s = g.input("s", {kiln::batch}, dtype);
    const auto n = static_cast<std::int64_t>(c.sample_weights.size());
    b.feeds.emplace_back("s", Tensor::from(c.sample_weights, {n}).to(dtype));
  }
  namespace tr = kiln::train;
  if (c.loss == "cross_entropy")
    b.loss = tr::cross_entropy(b.x, t, {.class_weights = c.class_weights, .sample_weights = s});
  else if (c.loss == "bce")
    b.loss = tr::binary_cross_entropy_with_logits(
        b.x, t, {.pos_weight = c.pos_weight, .sample_weights = s, .name = "bce"});
  else if (c.loss == "mse")
    b.loss = tr::mse(b.x, t, {.sample_weights = s});
  else if (c.loss == "huber")
    b.loss = tr::huber(b.x, t, {.delta = c.delta, .sample_weights = s});
  else
    throw std::runtime_error("unknown loss " + c.loss);
  return b;
}

TEST(Losses, ValuesAndGradientsMatchTorch) {
  const auto cases = load();
  ASSERT_EQ(cases.size(), 16u);
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Built b = build(c, DType::f64);
    const auto grads = kiln::grad(b.loss, {b.x});
    kiln::Executable exe(*b.g, {b.loss, grads[0]}, {.training = true});
    const auto out = exe.run(b.feeds);
    EXPECT_NEAR(out[0].item(), c.value, 1e-12 * std::max(1.0, std::fabs(c.value)));
    ASSERT_EQ(out[1].numel(), static_cast<std::int64_t>(c.grad.size()));
    const auto got = out[1].to_vector<double>();
    for (std::size_t i = 0; i < got.size(); ++i)
      EXPECT_NEAR(got[i], c.grad[i], 1e-12 * std::max(1.0, std::fabs(c.grad[i]))) << "grad " << i;

    // Central finite differences of the loss against the analytic gradient.
    kiln::Executable forward(*b.g, {b.loss}, {.training = true});
    Tensor& x = b.feeds[0].second;
    const double h = 1e-6;
    for (std::int64_t e = 0; e < x.numel(); ++e) {
      double* p = x.data<double>() + e;
      const double saved = *p;
      *p = saved + h;
      const double up = forward.run(b.feeds)[0].item();
      *p = saved - h;
      const double down = forward.run(b.feeds)[0].item();
      *p = saved;
      const double numeric = (up - down) / (2 * h);
      EXPECT_NEAR(got[static_cast<std::size_t>(e)], numeric,
                  1e-7 * std::max(1.0, std::fabs(numeric)))
          << "finite difference " << e;
    }

    // The same loss in f32.
    Built b32 = build(c, DType::f32);
    EXPECT_EQ(b32.loss.dtype(), DType::f32);
    kiln::Executable exe32(*b32.g, {b32.loss}, {.training = true});
    EXPECT_NEAR(exe32.run(b32.feeds)[0].item(), c.value, 1e-5 * std::max(1.0, std::fabs(c.value)));
  }
}

TEST(Losses, WeightsChangeTheLossAsDefined) {
  // Doubling every sample weight changes nothing; zeroing one drops its sample.
  const auto cases = load();
  const Case& c = cases[2];  // ce_sample_weights
  ASSERT_EQ(c.name, "ce_sample_weights");
  auto value = [&](const std::vector<double>& s) {
    Case d = c;
    d.sample_weights = s;
    Built b = build(d, DType::f64);
    return kiln::Executable(*b.g, {b.loss}).run(b.feeds)[0].item();
  };
  std::vector<double> twice = c.sample_weights;
  for (double& w : twice) w *= 2;
  EXPECT_NEAR(value(twice), c.value, 1e-12);
  std::vector<double> first_only(c.sample_weights.size(), 0.0);
  first_only[0] = 1.0;
  Case plain = cases[0];  // ce_plain: the first sample alone
  plain.x.resize(4);
  plain.x_dims = {1, 4};
  plain.t.resize(1);
  plain.t_dims = {1};
  Built one = build(plain, DType::f64);
  EXPECT_NEAR(value(first_only), kiln::Executable(*one.g, {one.loss}).run(one.feeds)[0].item(),
              1e-12);
}

using kiln_test::expect_error;

TEST(Losses, BadArgumentsAreTypedErrorsNamingThem) {
  kiln::Graph g;
  auto logits = g.input("logits", {kiln::batch, 3});
  auto labels = g.input("labels", {kiln::batch}, DType::i64);
  auto sw = g.input("w", {kiln::batch});
  auto sw_int = g.input("wi", {kiln::batch}, DType::i64);
  auto sw_2d = g.input("w2", {kiln::batch, 3});
  auto pred = g.input("pred", {kiln::batch, 2});
  auto target = g.input("target", {kiln::batch, 1});
  namespace tr = kiln::train;
  const auto n = g.size();
  expect_error<kiln::ValueError>(
      [&] {
        tr::cross_entropy(logits, labels, {.class_weights = {1, 2}});
      },
      "2 class weights for 3 classes of logits 'logits'");
  expect_error<kiln::ValueError>(
      [&] {
        tr::cross_entropy(logits, labels, {.class_weights = {1, -2, 1}});
      },
      "class_weights[1] is -2");
  expect_error<kiln::DTypeError>([&] { tr::cross_entropy(logits, sw); },
                                 "labels 'w' must be integer class indices");
  expect_error<kiln::DTypeError>(
      [&] { tr::cross_entropy(logits, labels, {.sample_weights = sw_int}); },
      "sample_weights 'wi' are i64");
  expect_error<kiln::ShapeError>(
      [&] { tr::cross_entropy(logits, labels, {.sample_weights = sw_2d}); },
      "sample_weights 'w2' must be [N] or [N, 1]");
  expect_error<kiln::ValueError>(
      [&] {
        tr::binary_cross_entropy_with_logits(pred, pred, {.pos_weight = {1, 2, 3}});
      },
      "3 pos_weight values for logits 'pred'");
  expect_error<kiln::ShapeError>([&] { tr::mse(pred, target); },
                                 "prediction 'pred' [batch, 2] and target 'target' [batch, 1]");
  expect_error<kiln::ValueError>([&] { tr::huber(pred, pred, {.delta = 0}); },
                                 "delta must be finite and > 0");
  expect_error<kiln::ValueError>([&] { tr::mse(pred, Value{}); }, "target is an empty Value");
  kiln::Graph other;
  auto foreign = other.input("foreign", {kiln::batch, 2});
  expect_error<kiln::ValueError>([&] { tr::huber(pred, foreign); },
                                 "target 'foreign' belongs to another graph");
  EXPECT_EQ(g.size(), n);  // nothing was added
}

}  // namespace
