// Optimizers against torch.optim golden trajectories (tests/data/optim_golden.txt, written by
// tools/gen_optim_golden.py), state save/restore, clipping, LR schedules and error cases.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kiln/core/error.hpp"
#include "kiln/optim/optimizer.hpp"
#include "tests/support/golden_file.hpp"

namespace {

using kiln::DType;
using kiln::Shape;
using kiln::Tensor;
namespace optim = kiln::optim;

using Values = std::vector<double>;

struct GoldenCase {
  std::string name;
  std::string kind;
  std::map<std::string, double> options;
  std::vector<std::vector<Values>> params;  // [step - 1][index]
};

struct GoldenSchedule {
  std::string name;
  std::string kind;
  std::map<std::string, double> options;
  Values lrs;
};

struct Golden {
  int steps = 0;
  std::vector<Shape> shapes;
  std::vector<Values> init;
  std::vector<std::vector<Values>> grads;  // [step - 1][index]
  std::vector<GoldenCase> cases;
  std::vector<GoldenSchedule> schedules;
};

using kiln_test::numbers_of;

Golden load_golden() {
  Golden g;
  GoldenCase* current_case = nullptr;
  GoldenSchedule* current_schedule = nullptr;
  kiln_test::read_golden("optim_golden.txt", [&](const std::string& tag, std::istream& in) {
    if (tag == "steps") {
      in >> g.steps;
      g.grads.resize(static_cast<std::size_t>(g.steps));
    } else if (tag == "shape") {
      std::size_t index = 0;
      in >> index;
      std::vector<std::int64_t> dims;
      std::int64_t d = 0;
      while (in >> d) dims.push_back(d);
      g.shapes.resize(std::max(g.shapes.size(), index + 1));
      g.shapes[index] = Shape(dims);
    } else if (tag == "init") {
      std::size_t index = 0;
      in >> index;
      g.init.resize(std::max(g.init.size(), index + 1));
      g.init[index] = numbers_of(in);
    } else if (tag == "grad") {
      std::size_t step = 0, index = 0;
      in >> step >> index;
      auto& at = g.grads.at(step - 1);
      at.resize(std::max(at.size(), index + 1));
      at[index] = numbers_of(in);
    } else if (tag == "case") {
      g.cases.emplace_back();
      current_case = &g.cases.back();
      in >> current_case->name >> current_case->kind;
      current_case->params.resize(static_cast<std::size_t>(g.steps));
    } else if (tag == "schedule") {
      g.schedules.emplace_back();
      current_schedule = &g.schedules.back();
      in >> current_schedule->name >> current_schedule->kind;
    } else if (tag == "option") {
      std::string key;
      double value = 0;
      in >> key >> value;
      (current_case ? current_case->options : current_schedule->options)[key] = value;
    } else if (tag == "param") {
      std::size_t step = 0, index = 0;
      in >> step >> index;
      auto& at = current_case->params.at(step - 1);
      at.resize(std::max(at.size(), index + 1));
      at[index] = numbers_of(in);
    } else if (tag == "lrs") {
      current_schedule->lrs = numbers_of(in);
    } else if (tag == "end") {
      current_case = nullptr;
      current_schedule = nullptr;
    } else {
      return false;
    }
    return true;
  });
  return g;
}

const Golden& golden() {
  static const Golden g = load_golden();
  return g;
}

double opt(const GoldenCase& c, const std::string& key, double fallback) {
  auto it = c.options.find(key);
  return it == c.options.end() ? fallback : it->second;
}

std::unique_ptr<optim::Optimizer> make_optimizer(const GoldenCase& c, std::vector<Tensor> params) {
  if (c.kind == "sgd") {
    return std::make_unique<optim::SGD>(
        std::move(params), optim::SGDOptions{.lr = opt(c, "lr", 0.01),
                                             .momentum = opt(c, "momentum", 0.0),
                                             .dampening = opt(c, "dampening", 0.0),
                                             .weight_decay = opt(c, "weight_decay", 0.0),
                                             .nesterov = opt(c, "nesterov", 0.0) != 0.0});
  }
  if (c.kind == "adam") {
    return std::make_unique<optim::Adam>(
        std::move(params), optim::AdamOptions{.lr = opt(c, "lr", 1e-3),
                                              .beta1 = opt(c, "beta1", 0.9),
                                              .beta2 = opt(c, "beta2", 0.999),
                                              .eps = opt(c, "eps", 1e-8),
                                              .weight_decay = opt(c, "weight_decay", 0.0),
                                              .amsgrad = opt(c, "amsgrad", 0.0) != 0.0});
  }
  if (c.kind == "adamw") {
    return std::make_unique<optim::AdamW>(
        std::move(params), optim::AdamWOptions{.lr = opt(c, "lr", 1e-3),
                                               .beta1 = opt(c, "beta1", 0.9),
                                               .beta2 = opt(c, "beta2", 0.999),
                                               .eps = opt(c, "eps", 1e-8),
                                               .weight_decay = opt(c, "weight_decay", 1e-2),
                                               .amsgrad = opt(c, "amsgrad", 0.0) != 0.0});
  }
  if (c.kind == "rmsprop") {
    return std::make_unique<optim::RMSprop>(
        std::move(params), optim::RMSpropOptions{.lr = opt(c, "lr", 1e-2),
                                                 .alpha = opt(c, "alpha", 0.99),
                                                 .eps = opt(c, "eps", 1e-8),
                                                 .weight_decay = opt(c, "weight_decay", 0.0),
                                                 .momentum = opt(c, "momentum", 0.0),
                                                 .centered = opt(c, "centered", 0.0) != 0.0});
  }
  throw std::runtime_error("unknown optimizer kind " + c.kind);
}

std::vector<Tensor> initial_params(DType dtype) {
  std::vector<Tensor> out;
  for (std::size_t i = 0; i < golden().shapes.size(); ++i) {
    out.push_back(Tensor::from<double>(golden().init[i], golden().shapes[i]).to(dtype));
  }
  return out;
}

std::vector<Tensor> grads_at(int step, DType dtype) {
  std::vector<Tensor> out;
  const auto& at = golden().grads.at(static_cast<std::size_t>(step - 1));
  for (std::size_t i = 0; i < at.size(); ++i) {
    out.push_back(Tensor::from<double>(at[i], golden().shapes[i]).to(dtype));
  }
  return out;
}

Values as_doubles(const Tensor& t) { return t.to(DType::f64).to_vector<double>(); }

void expect_close(const Values& got, const Values& want, double abs_tol, double rel_tol,
                  const std::string& where) {
  ASSERT_EQ(got.size(), want.size()) << where;
  for (std::size_t j = 0; j < got.size(); ++j) {
    EXPECT_NEAR(got[j], want[j], abs_tol + rel_tol * std::abs(want[j]))
        << where << " element " << j;
  }
}

TEST(OptimGolden, FileHasEveryConfiguration) {
  const Golden& g = golden();
  EXPECT_EQ(g.steps, 20);
  ASSERT_EQ(g.shapes.size(), 2u);
  EXPECT_EQ(g.shapes[0], (Shape{3, 4}));
  ASSERT_GE(g.cases.size(), 12u);
  std::map<std::string, int> kinds;
  for (const auto& c : g.cases) {
    ++kinds[c.kind];
    for (const auto& step : c.params) ASSERT_EQ(step.size(), 2u) << c.name;
  }
  EXPECT_GE(kinds["sgd"], 4);
  EXPECT_GE(kinds["adam"], 3);
  EXPECT_GE(kinds["adamw"], 2);
  EXPECT_GE(kinds["rmsprop"], 3);
  EXPECT_EQ(g.schedules.size(), 3u);
}

// Runs every golden case in `dtype` and compares the parameters after every step.
void check_trajectories(DType dtype, double abs_tol, double rel_tol) {
  const Golden& g = golden();
  for (const GoldenCase& c : g.cases) {
    SCOPED_TRACE(c.name);
    std::vector<Tensor> params = initial_params(dtype);
    auto optimizer = make_optimizer(c, params);
    for (int step = 1; step <= g.steps; ++step) {
      optimizer->step(grads_at(step, dtype));
      ASSERT_EQ(optimizer->step_count(), step);
      for (std::size_t i = 0; i < params.size(); ++i) {
        // `params` share storage with the optimizer's tensors: updates are in place.
        expect_close(as_doubles(params[i]), c.params[static_cast<std::size_t>(step - 1)][i],
                     abs_tol, rel_tol,
                     c.name + " step " + std::to_string(step) + " param " + std::to_string(i));
      }
    }
    // The trajectory moved: a no-op optimizer could not pass.
    EXPECT_GT(std::abs(c.params.back()[0][0] - g.init[0][0]), 1e-3);
  }
}

TEST(OptimGolden, F64TrajectoriesMatchTorch) { check_trajectories(DType::f64, 1e-12, 1e-10); }

TEST(OptimGolden, F32TrajectoriesMatchTorch) { check_trajectories(DType::f32, 1e-6, 1e-5); }

// A parameter large enough for the multi-threaded path: the golden [3, 4] parameter tiled
// many times must follow the golden trajectory in every tile.
TEST(OptimGolden, LargeParametersUseTheSameUpdate) {
  const Golden& g = golden();
  const int tiles = 6000;  // 72000 elements
  for (const char* name : {"sgd_nesterov_wd", "adam_amsgrad", "rmsprop_centered_momentum"}) {
    SCOPED_TRACE(name);
    const GoldenCase* c = nullptr;
    for (const auto& gc : g.cases) {
      if (gc.name == name) c = &gc;
    }
    ASSERT_NE(c, nullptr);
    auto tile = [&](const Values& v) {
      Values out;
      for (int t = 0; t < tiles; ++t) out.insert(out.end(), v.begin(), v.end());
      return Tensor::from<double>(out, Shape{tiles, 12}).to(DType::f32);
    };
    std::vector<Tensor> params = {tile(g.init[0])};
    auto optimizer = make_optimizer(*c, params);
    for (int step = 1; step <= g.steps; ++step) {
      optimizer->step({tile(g.grads[static_cast<std::size_t>(step - 1)][0])});
    }
    const Values got = as_doubles(params[0]);
    const Values& want = c->params.back()[0];
    for (int t = 0; t < tiles; t += 997) {
      expect_close(Values(got.begin() + t * 12, got.begin() + t * 12 + 12), want, 1e-6, 1e-5,
                   std::string(name) + " tile " + std::to_string(t));
    }
    for (int t = 0; t < tiles; ++t) {
      for (int j = 0; j < 12; ++j) {
        ASSERT_EQ(got[static_cast<std::size_t>(t * 12 + j)], got[static_cast<std::size_t>(j)]);
      }
    }
  }
}

TEST(OptimState, RestoredOptimizerContinuesTheSameTrajectory) {
  const Golden& g = golden();
  const int split = 8;
  for (const GoldenCase& c : g.cases) {
    SCOPED_TRACE(c.name);
    std::vector<Tensor> params = initial_params(DType::f32);
    auto first = make_optimizer(c, params);
    for (int step = 1; step <= split; ++step) first->step(grads_at(step, DType::f32));
    const optim::State saved = first->state();
    EXPECT_EQ(saved[0].first, "step");
    EXPECT_EQ(saved[0].second.item(), split);
    EXPECT_EQ(saved[1].first, "lr");

    // A new optimizer over copies of the parameters, restored from the saved state.
    std::vector<Tensor> copies;
    for (const Tensor& p : params) copies.push_back(p.clone());
    auto second = make_optimizer(c, copies);
    second->load_state(saved);
    EXPECT_EQ(second->step_count(), split);
    for (int step = split + 1; step <= g.steps; ++step) {
      first->step(grads_at(step, DType::f32));
      second->step(grads_at(step, DType::f32));
    }
    for (std::size_t i = 0; i < params.size(); ++i) {
      EXPECT_EQ(params[i].to_vector<float>(), copies[i].to_vector<float>());
      expect_close(as_doubles(copies[i]), c.params.back()[i], 1e-6, 1e-5, "restored");
    }
  }
}

TEST(OptimState, SlotNamesAndCopies) {
  std::vector<Tensor> params = initial_params(DType::f32);
  optim::Adam adam(params, {.lr = 0.01, .amsgrad = true});
  adam.step(grads_at(1, DType::f32));
  optim::State s = adam.state();
  std::vector<std::string> names;
  for (const auto& [name, t] : s) names.push_back(name);
  const std::vector<std::string> want = {
      "step",      "lr",           "0.exp_avg",       "0.exp_avg_sq", "0.max_exp_avg_sq",
      "1.exp_avg", "1.exp_avg_sq", "1.max_exp_avg_sq"};
  EXPECT_EQ(names, want);
  EXPECT_EQ(s[2].second.shape(), (Shape{3, 4}));
  // exp_avg after one step is (1 - beta1) * grad.
  const Values g1 = golden().grads[0][0];
  const Values m = as_doubles(s[2].second);
  for (std::size_t j = 0; j < m.size(); ++j) EXPECT_NEAR(m[j], 0.1 * g1[j], 1e-6);
  // The state is a copy: changing it does not change the optimizer.
  s[2].second.data<float>()[0] = 1000.0f;
  EXPECT_NEAR(adam.state()[2].second.at(0), 0.1 * g1[0], 1e-6);

  optim::SGD plain(initial_params(DType::f32));
  EXPECT_EQ(plain.state().size(), 2u);  // no momentum: no buffers
  optim::RMSprop rms(initial_params(DType::f32), {.momentum = 0.9, .centered = true});
  EXPECT_EQ(rms.state().size(), 2u + 2u * 3u);
  EXPECT_EQ(rms.kind(), "rmsprop");
}

TEST(OptimState, NamedParametersKeyTheStateAndMatchByName) {
  const std::vector<Tensor> init = initial_params(DType::f32);  // [3, 4] and [4]
  std::vector<Tensor> p = {init[0].clone(), init[1].clone()};
  optim::Adam first(optim::NamedParameters{{"w", p[0]}, {"b", p[1]}}, {.lr = 0.01});
  EXPECT_EQ(first.parameter_names(), (std::vector<std::string>{"w", "b"}));
  first.step(grads_at(1, DType::f32));
  first.step(grads_at(2, DType::f32));
  std::vector<std::string> names;
  for (const auto& [name, t] : first.state()) names.push_back(name);
  EXPECT_EQ(names, (std::vector<std::string>{"step", "lr", "w.exp_avg", "w.exp_avg_sq", "b.exp_avg",
                                             "b.exp_avg_sq"}));
  EXPECT_EQ(first.state_names(), names);

  // The same parameters (their current values) in the other order: the state follows the
  // names.
  std::vector<Tensor> q = {p[1].clone(), p[0].clone()};
  optim::Adam second(optim::NamedParameters{{"b", q[0]}, {"w", q[1]}}, {.lr = 0.01});
  second.load_state(first.state());
  EXPECT_EQ(second.step_count(), 2);
  auto slot = [](const optim::Optimizer& o, const std::string& name) {
    for (const auto& [n, t] : o.state())
      if (n == name) return t.to_vector<float>();
    return std::vector<float>{};
  };
  for (const char* n : {"w.exp_avg", "w.exp_avg_sq", "b.exp_avg", "b.exp_avg_sq"}) {
    EXPECT_FALSE(slot(second, n).empty()) << n;
    EXPECT_EQ(slot(second, n), slot(first, n)) << n;
  }
  // Both continue identically.
  const std::vector<Tensor> g3 = grads_at(3, DType::f32);
  first.step(g3);
  second.step(std::vector<Tensor>{g3[1], g3[0]});
  EXPECT_EQ(p[0].to_vector<float>(), q[1].to_vector<float>());
  EXPECT_EQ(p[1].to_vector<float>(), q[0].to_vector<float>());

  // A state for other names: every missing and unknown parameter is named.
  optim::Adam third(optim::NamedParameters{{"w", init[0].clone()}, {"c", init[1].clone()}});
  try {
    third.load_state(first.state());
    ADD_FAILURE() << "no error";
  } catch (const kiln::ValueError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("no state for 'c'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("state for unknown 'b'"), std::string::npos) << msg;
  }
  EXPECT_EQ(third.step_count(), 0);
  // Positional names for plain tensors; names must be given and unique.
  optim::Adam plain(std::vector<Tensor>{init[0].clone()});
  EXPECT_EQ(plain.parameter_names(), (std::vector<std::string>{"0"}));
  EXPECT_THROW(optim::Adam(optim::NamedParameters{{"a", init[0].clone()}, {"a", init[1].clone()}}),
               kiln::ValueError);
  EXPECT_THROW(optim::SGD(optim::NamedParameters{{"", init[0].clone()}}), kiln::ValueError);
  try {
    optim::SGD(optim::NamedParameters{{"fc.weight", Tensor::zeros(Shape{2}, DType::i32)}});
    ADD_FAILURE() << "no error";
  } catch (const kiln::DTypeError& e) {
    EXPECT_NE(std::string(e.what()).find("'fc.weight'"), std::string::npos) << e.what();
  }
}

TEST(OptimState, LoadStateRejectsMismatches) {
  std::vector<Tensor> params = initial_params(DType::f32);
  optim::Adam adam(params);
  adam.step(grads_at(1, DType::f32));
  const optim::State good = adam.state();

  optim::Adam other(initial_params(DType::f32));
  auto without = [&](const std::string& name) {
    optim::State s;
    for (const auto& e : good) {
      if (e.first != name) s.push_back(e);
    }
    return s;
  };
  EXPECT_THROW(other.load_state(without("1.exp_avg_sq")), kiln::ValueError);
  EXPECT_THROW(other.load_state(without("step")), kiln::ValueError);
  optim::State extra = good;
  extra.emplace_back("2.exp_avg", Tensor::zeros(Shape{3}));
  EXPECT_THROW(other.load_state(extra), kiln::ValueError);
  optim::State dup = good;
  dup.push_back(good[2]);
  EXPECT_THROW(other.load_state(dup), kiln::ValueError);
  optim::State wrong_shape = good;
  wrong_shape[3].second = Tensor::zeros(Shape{4, 3});
  EXPECT_THROW(other.load_state(wrong_shape), kiln::ShapeError);
  optim::State wrong_dtype = good;
  wrong_dtype[3].second = Tensor::zeros(Shape{3, 4}, DType::f64);
  EXPECT_THROW(other.load_state(wrong_dtype), kiln::DTypeError);
  optim::State bad_step = good;
  bad_step[0].second = Tensor::scalar(-1, DType::i64);
  EXPECT_THROW(other.load_state(bad_step), kiln::ValueError);
  // Nothing changed after the failures.
  EXPECT_EQ(other.step_count(), 0);
  for (const auto& [name, t] : other.state()) {
    if (name != "step" && name != "lr") {
      EXPECT_EQ(t.at(0), 0.0) << name;
    }
  }
  // Another optimizer kind's state does not fit.
  optim::SGD sgd(initial_params(DType::f32), {.momentum = 0.9});
  EXPECT_THROW(sgd.load_state(good), kiln::ValueError);
  // The LR is part of the state.
  other.set_lr(0.5);
  other.load_state(good);
  EXPECT_DOUBLE_EQ(other.lr(), 1e-3);
  EXPECT_EQ(other.step_count(), 1);
}

TEST(OptimErrors, BadGradientsNameTheParameterAndChangeNothing) {
  std::vector<Tensor> params = initial_params(DType::f32);
  const Values before = as_doubles(params[1]);
  optim::SGD sgd(params, {.lr = 0.1, .momentum = 0.9});
  std::vector<Tensor> grads = grads_at(1, DType::f32);

  EXPECT_THROW(sgd.step(std::vector<Tensor>{grads[0]}), kiln::ValueError);
  std::vector<Tensor> wrong_shape = {grads[0], Tensor::zeros(Shape{6})};
  try {
    sgd.step(wrong_shape);
    FAIL() << "expected ShapeError";
  } catch (const kiln::ShapeError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("parameter 1"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[5]"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[6]"), std::string::npos) << msg;
  }
  EXPECT_THROW(sgd.step(std::vector<Tensor>{grads[0], grads[1].to(DType::f64)}), kiln::DTypeError);
  EXPECT_THROW(sgd.step(std::vector<Tensor>{grads[0], Tensor()}), kiln::ValueError);
  EXPECT_EQ(sgd.step_count(), 0);
  EXPECT_EQ(as_doubles(params[1]), before);
  EXPECT_NE(as_doubles(params[0]), Values());
}

TEST(OptimErrors, BadConstructionAndOptions) {
  EXPECT_THROW(optim::SGD(std::vector<Tensor>{}), kiln::ValueError);
  EXPECT_THROW(optim::SGD({Tensor()}), kiln::ValueError);
  EXPECT_THROW(optim::SGD({Tensor::zeros(Shape{3}, DType::i32)}), kiln::DTypeError);
  Tensor p = Tensor::zeros(Shape{3});
  EXPECT_THROW(optim::SGD({p, p}), kiln::ValueError);
  EXPECT_THROW(optim::SGD({p}, {.lr = -1.0}), kiln::ValueError);
  EXPECT_THROW(optim::SGD({p}, {.momentum = -0.5}), kiln::ValueError);
  EXPECT_THROW(optim::SGD({p}, {.nesterov = true}), kiln::ValueError);
  EXPECT_THROW(optim::SGD({p}, {.momentum = 0.9, .dampening = 0.1, .nesterov = true}),
               kiln::ValueError);
  EXPECT_THROW(optim::Adam({p}, {.beta1 = 1.0}), kiln::ValueError);
  EXPECT_THROW(optim::Adam({p}, {.beta2 = -0.1}), kiln::ValueError);
  EXPECT_THROW(optim::Adam({p}, {.eps = -1e-8}), kiln::ValueError);
  EXPECT_THROW(optim::AdamW({p}, {.weight_decay = -1.0}), kiln::ValueError);
  EXPECT_THROW(optim::RMSprop({p}, {.alpha = 1.5}), kiln::ValueError);
  optim::Adam ok({p}, {.lr = 1e-3f});
  EXPECT_THROW(ok.set_lr(-0.1), kiln::ValueError);
  EXPECT_THROW(ok.set_lr(std::nan("")), kiln::ValueError);
  ok.set_lr(0.25);
  EXPECT_EQ(ok.lr(), 0.25);
}

TEST(OptimErrors, NonContiguousGradientsAreAccepted) {
  // A transposed view of the gradient holds the same values in another layout.
  Tensor p = Tensor::zeros(Shape{2, 3});
  optim::SGD sgd({p}, {.lr = 1.0});
  Tensor gt = Tensor::from<float>({1, 4, 2, 5, 3, 6}, Shape{3, 2});
  Tensor g = gt.permute({1, 0});  // [[1, 2, 3], [4, 5, 6]]
  sgd.step({g});
  EXPECT_EQ(p.to_vector<float>(), (std::vector<float>{-1, -2, -3, -4, -5, -6}));
}

// ---------------------------------------------------------------------------------------------
// Clipping

TEST(Clip, GlobalNormScalesAllGradientsInPlace) {
  std::vector<Tensor> grads = {Tensor::from<float>({3, 0, 0, 4}, Shape{2, 2}),
                               Tensor::from<double>({12}, Shape{1})};
  // |(3, 0, 0, 4, 12)| = 13.
  const double norm = optim::clip_grad_norm(grads, 6.5);
  EXPECT_NEAR(norm, 13.0, 1e-12);
  const double f = 6.5 / (13.0 + 1e-6);
  const auto a = as_doubles(grads[0]);
  EXPECT_NEAR(a[0], 3 * f, 1e-6);
  EXPECT_NEAR(a[3], 4 * f, 1e-6);
  EXPECT_NEAR(grads[1].at(0), 12 * f, 1e-12);

  // Below the limit: unchanged, and the norm is still reported.
  const double again = optim::clip_grad_norm(grads, 100.0);
  EXPECT_NEAR(again, 6.5, 1e-5);
  EXPECT_NEAR(grads[1].at(0), 12 * f, 1e-12);

  EXPECT_THROW(optim::clip_grad_norm(grads, -1.0), kiln::ValueError);
  std::vector<Tensor> ints = {Tensor::zeros(Shape{2}, DType::i32)};
  EXPECT_THROW(optim::clip_grad_norm(ints, 1.0), kiln::DTypeError);
}

TEST(Clip, ByValue) {
  std::vector<Tensor> grads = {Tensor::from<float>({-3, 0.5f, 2, -0.25f}, Shape{4})};
  optim::clip_grad_value(grads, 1.0);
  EXPECT_EQ(grads[0].to_vector<float>(), (std::vector<float>{-1, 0.5f, 1, -0.25f}));
  EXPECT_THROW(optim::clip_grad_value(grads, -1.0), kiln::ValueError);
}

// ---------------------------------------------------------------------------------------------
// Schedules

TEST(Schedules, MatchTorch) {
  const Golden& g = golden();
  ASSERT_EQ(g.schedules.size(), 3u);
  for (const GoldenSchedule& s : g.schedules) {
    SCOPED_TRACE(s.name);
    Tensor p = Tensor::zeros(Shape{1});
    optim::SGD sgd({p}, {.lr = s.options.at("base_lr")});
    std::unique_ptr<optim::LrSchedule> schedule;
    if (s.kind == "steplr") {
      schedule = std::make_unique<optim::StepLR>(
          sgd, static_cast<std::int64_t>(s.options.at("step_size")), s.options.at("gamma"));
    } else if (s.kind == "exponentiallr") {
      schedule = std::make_unique<optim::ExponentialLR>(sgd, s.options.at("gamma"));
    } else {
      schedule = std::make_unique<optim::CosineAnnealingLR>(
          sgd, static_cast<std::int64_t>(s.options.at("t_max")), s.options.at("eta_min"));
    }
    ASSERT_GE(s.lrs.size(), 20u);
    for (std::size_t e = 0; e < s.lrs.size(); ++e) {
      EXPECT_NEAR(sgd.lr(), s.lrs[e], 1e-12 + 1e-9 * s.lrs[e]) << "epoch " << e;
      EXPECT_EQ(schedule->epoch(), static_cast<std::int64_t>(e));
      schedule->step();
    }
    schedule->set_epoch(3);
    EXPECT_NEAR(sgd.lr(), s.lrs[3], 1e-12);
  }
}

TEST(Schedules, BadArguments) {
  Tensor p = Tensor::zeros(Shape{1});
  optim::SGD sgd({p});
  EXPECT_THROW(optim::StepLR(sgd, 0), kiln::ValueError);
  EXPECT_THROW(optim::CosineAnnealingLR(sgd, -5), kiln::ValueError);
  EXPECT_THROW(optim::ExponentialLR(sgd, -0.5), kiln::ValueError);
  optim::StepLR ok(sgd, 2);
  EXPECT_THROW(ok.set_epoch(-1), kiln::ValueError);
}

}  // namespace
