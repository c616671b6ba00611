// LR schedules against torch.optim.lr_scheduler (tests/data/schedules_golden.txt, written
// once by tools/gen_schedules_golden.py): MultiStepLR, LinearLR (warm-up), PolynomialLR,
// SequentialLR (warm-up then cosine) and ReduceLROnPlateau; resuming and bad arguments.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kiln/core/error.hpp"
#include "kiln/optim/optimizer.hpp"
#include "tests/support/golden_file.hpp"

namespace {

namespace optim = kiln::optim;
using kiln::Tensor;

struct Golden {
  std::string name, kind;
  double base_lr = 0;
  std::map<std::string, std::vector<double>> params;
  std::vector<double> metrics, lrs;
  double p(const std::string& key) const { return params.at(key).at(0); }
  std::int64_t i(const std::string& key) const { return static_cast<std::int64_t>(p(key)); }
};

using kiln_test::numbers_of;

std::vector<Golden> load() {
  std::vector<Golden> out;
  Golden g;
  kiln_test::read_golden("schedules_golden.txt", [&](const std::string& tag, std::istream& in) {
    if (tag == "schedule") {
      g = Golden{};
      in >> g.name >> g.kind;
    } else if (tag == "base_lr") {
      in >> g.base_lr;
    } else if (tag == "param") {
      std::string key;
      in >> key;
      g.params[key] = numbers_of(in);
    } else if (tag == "metrics") {
      g.metrics = numbers_of(in);
    } else if (tag == "lrs") {
      g.lrs = numbers_of(in);
    } else if (tag == "end") {
      out.push_back(g);
    } else {
      return false;
    }
    return true;
  });
  return out;
}

optim::SGD make_sgd(double lr) { return optim::SGD({Tensor::zeros({2})}, {.lr = lr}); }

std::unique_ptr<optim::LrSchedule> make_schedule(const Golden& g, optim::Optimizer& opt) {
  if (g.kind == "multistep") {
    std::vector<std::int64_t> m;
    for (double v : g.params.at("milestones")) m.push_back(static_cast<std::int64_t>(v));
    return std::make_unique<optim::MultiStepLR>(opt, m, g.p("gamma"));
  }
  if (g.kind == "linear")
    return std::make_unique<optim::LinearLR>(opt, g.p("start_factor"), g.p("end_factor"),
                                             g.i("total_iters"));
  if (g.kind == "polynomial")
    return std::make_unique<optim::PolynomialLR>(opt, g.i("total_iters"), g.p("power"));
  if (g.kind == "sequential") {
    // Made in list order: the warm-up sets the LR, the cosine still gets the base LR.
    return std::make_unique<optim::SequentialLR>(
        opt,
        std::vector<std::shared_ptr<optim::LrSchedule>>{
            std::make_shared<optim::LinearLR>(opt, g.p("start_factor"), 1.0, g.i("total_iters")),
            std::make_shared<optim::CosineAnnealingLR>(opt, g.i("t_max"), g.p("eta_min"))},
        std::vector<std::int64_t>{g.i("milestone")});
  }
  throw std::runtime_error("unknown kind " + g.kind);
}

void expect_lr(double got, double want, const std::string& what) {
  EXPECT_NEAR(got, want, 1e-15 + 1e-12 * std::fabs(want)) << what;
}

TEST(Schedules, ClosedFormSchedulesMatchTorch) {
  std::size_t n = 0;
  for (const Golden& g : load()) {
    if (g.kind == "plateau") continue;
    SCOPED_TRACE(g.name);
    ++n;
    auto opt = make_sgd(g.base_lr);
    auto s = make_schedule(g, opt);
    EXPECT_EQ(s->base_lr(), g.base_lr);
    ASSERT_EQ(g.lrs.size(), 41u);
    for (std::size_t e = 0; e < g.lrs.size(); ++e) {
      expect_lr(opt.lr(), g.lrs[e], "epoch " + std::to_string(e));
      s->step();
    }
    // Resuming: a new optimizer and schedule jump to an epoch.
    auto opt2 = make_sgd(g.base_lr);
    auto s2 = make_schedule(g, opt2);
    s2->set_epoch(17);
    expect_lr(opt2.lr(), g.lrs[17], "resumed at 17");
  }
  EXPECT_EQ(n, 6u);
}

TEST(Schedules, ReduceLROnPlateauMatchesTorch) {
  std::size_t n = 0;
  for (const Golden& g : load()) {
    if (g.kind != "plateau") continue;
    SCOPED_TRACE(g.name);
    ++n;
    using O = optim::ReduceLROnPlateauOptions;
    const O o{
        .mode = g.p("maximize") != 0 ? O::Mode::max : O::Mode::min,
        .factor = g.p("factor"),
        .patience = g.i("patience"),
        .threshold = g.p("threshold"),
        .threshold_mode = g.p("relative") != 0 ? O::ThresholdMode::rel : O::ThresholdMode::abs,
        .cooldown = g.i("cooldown"),
        .min_lr = g.p("min_lr")};
    auto opt = make_sgd(g.base_lr);
    optim::ReduceLROnPlateau plateau(opt, o);
    ASSERT_EQ(g.metrics.size() + 1, g.lrs.size());
    int reductions = 0;
    for (std::size_t e = 0; e < g.metrics.size(); ++e) {
      expect_lr(opt.lr(), g.lrs[e], "epoch " + std::to_string(e));
      reductions += plateau.step(g.metrics[e]);
      if (e == 20) {
        // Resume: a fresh scheduler over a fresh optimizer, given the state and the LR.
        auto opt2 = make_sgd(g.base_lr);
        optim::ReduceLROnPlateau resumed(opt2, o);
        resumed.set_state(plateau.state());
        opt2.set_lr(opt.lr());
        for (std::size_t k = e + 1; k < g.metrics.size(); ++k) resumed.step(g.metrics[k]);
        expect_lr(opt2.lr(), g.lrs.back(), "resumed");
      }
    }
    expect_lr(opt.lr(), g.lrs.back(), "last");
    EXPECT_GE(reductions, 2);
    EXPECT_EQ(plateau.state().epoch, static_cast<std::int64_t>(g.metrics.size()));
  }
  EXPECT_EQ(n, 3u);
}

TEST(Schedules, BadArgumentsAreValueErrors) {
  auto opt = make_sgd(0.1);
  EXPECT_THROW(optim::MultiStepLR(opt, {5, 3}), kiln::ValueError);
  EXPECT_THROW(optim::MultiStepLR(opt, {-1}), kiln::ValueError);
  EXPECT_THROW(optim::LinearLR(opt, 0.0), kiln::ValueError);
  EXPECT_THROW(optim::LinearLR(opt, 0.5, 1.5), kiln::ValueError);
  EXPECT_THROW(optim::LinearLR(opt, 0.5, 1.0, 0), kiln::ValueError);
  EXPECT_THROW(optim::PolynomialLR(opt, 0), kiln::ValueError);
  EXPECT_THROW(optim::PolynomialLR(opt, 5, -1), kiln::ValueError);
  auto lin = std::make_shared<optim::LinearLR>(opt, 0.5, 1.0, 4);
  try {
    optim::SequentialLR(opt, {lin, lin}, {});
    ADD_FAILURE() << "no error";
  } catch (const kiln::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("2 schedules need 1 milestones, got 0"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(optim::SequentialLR(opt, {lin, lin}, {0}), kiln::ValueError);
  EXPECT_THROW(optim::SequentialLR(opt, {lin, nullptr}, {3}), kiln::ValueError);
  EXPECT_THROW(optim::ReduceLROnPlateau(opt, {.factor = 1.0}), kiln::ValueError);
  EXPECT_THROW(optim::ReduceLROnPlateau(opt, {.patience = -1}), kiln::ValueError);
  EXPECT_THROW(optim::ReduceLROnPlateau(opt, {.threshold = NAN}), kiln::ValueError);
  optim::ReduceLROnPlateau p(opt);
  EXPECT_THROW(p.set_state({.best = 1, .bad_epochs = -1}), kiln::ValueError);
}

}  // namespace
