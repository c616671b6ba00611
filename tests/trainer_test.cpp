// Trainer: fit against a hand-written loop (bitwise), evaluate against kiln::metrics and an
// independent cross-entropy, predict's feeds, callbacks (early stopping, restore-best, LR
// schedules, warm-up, clipping), progress lines, non-finite losses.
#include <regex>
#include <sstream>

#include "kiln/core/error.hpp"
#include "kiln/data/loader.hpp"
#include "kiln/train/metrics.hpp"
#include "kiln/train/train_step.hpp"
#include "tests/trainer_test_util.hpp"

namespace {

using kiln_test::blobs;
using kiln_test::Model;
namespace tr = kiln::train;

// The loop the trainer replaces: same loader order, TrainStep, optimizer; optional
// clipping; returns the per-epoch mean loss (batch losses weighted by rows).
std::vector<double> hand_loop(Model& m, const kiln::data::Dataset& d, std::int64_t epochs,
                              std::int64_t batch, std::uint64_t seed, double clip_norm = 0,
                              double clip_value = 0) {
  kiln::TrainStep step(m.loss);
  kiln::data::Loader loader(d, {.batch_size = batch, .shuffle = true, .seed = seed});
  std::vector<double> losses;
  for (std::int64_t e = 0; e < epochs; ++e) {
    loader.set_epoch(e);
    double sum = 0;
    std::int64_t rows = 0;
    for (const auto& b : loader) {
      const double l = step.run(b);
      if (clip_norm > 0) kiln::optim::clip_grad_norm(step.gradients(), clip_norm);
      if (clip_value > 0) kiln::optim::clip_grad_value(step.gradients(), clip_value);
      m.opt->step(step.gradients());
      sum += l * static_cast<double>(b[0].second.dim(0));
      rows += b[0].second.dim(0);
    }
    losses.push_back(sum / static_cast<double>(rows));
  }
  return losses;
}

TEST(Trainer, FitEqualsHandWrittenLoopBitwise) {
  const auto data = blobs(70, 1);
  Model a, b;
  tr::Trainer trainer(a.g, a.options());
  const auto history =
      trainer.fit(data, {.epochs = 3, .batch_size = 8, .seed = 11, .progress = tr::Progress::none});
  const auto expected = hand_loop(b, data, 3, 8, 11);
  ASSERT_EQ(history.epochs.size(), 3u);
  for (std::size_t e = 0; e < 3; ++e)
    EXPECT_TRUE(kiln_test::same_bits(history.epochs[e].at("loss"), expected[e]))
        << "epoch " << e << ": " << history.epochs[e].at("loss") << " vs " << expected[e];
  EXPECT_EQ(a.weights(), b.weights());
  EXPECT_EQ(trainer.global_step(), 3 * 9);  // ceil(70 / 8) batches per epoch
  EXPECT_LT(expected[2], expected[0]);      // it learns
}

TEST(Trainer, ClippingEqualsManualClipping) {
  const auto data = blobs(40, 2);
  for (int kind = 0; kind < 2; ++kind) {
    Model a, b;
    tr::Trainer trainer(a.g, a.options());
    auto cb = kind == 0 ? tr::clip_grad_norm(0.05) : tr::clip_grad_value(0.01);
    trainer.fit(data, {.epochs = 2,
                       .batch_size = 8,
                       .seed = 3,
                       .callbacks = {cb},
                       .progress = tr::Progress::none});
    hand_loop(b, data, 2, 8, 3, kind == 0 ? 0.05 : 0, kind == 1 ? 0.01 : 0);
    EXPECT_EQ(a.weights(), b.weights()) << (kind == 0 ? "norm" : "value");
    Model c;  // and clipping changes the result
    hand_loop(c, data, 2, 8, 3);
    EXPECT_NE(a.weights(), c.weights());
  }
}

// Cross-entropy of logits in double, written independently of the graph's op.
double cross_entropy(const kiln::Tensor& logits, const kiln::Tensor& labels) {
  const auto z = logits.to_vector<float>();
  const auto y = labels.to_vector<std::int32_t>();
  const std::int64_t n = logits.dim(0), c = logits.dim(1);
  double total = 0;
  for (std::int64_t r = 0; r < n; ++r) {
    double mx = -1e300, s = 0;
    for (std::int64_t k = 0; k < c; ++k) mx = std::max(mx, double(z[r * c + k]));
    for (std::int64_t k = 0; k < c; ++k) s += std::exp(double(z[r * c + k]) - mx);
    total += -(double(z[r * c + y[r]]) - mx - std::log(s));
  }
  return total / static_cast<double>(n);
}

TEST(Trainer, EvaluateAgreesWithMetricsOnPredictions) {
  const auto train = blobs(90, 3), test = blobs(37, 4);
  Model m(/*dropout=*/true);
  tr::Trainer trainer(m.g, m.options({"accuracy", "f1_macro"}));
  trainer.fit(train, {.epochs = 5, .batch_size = 16, .seed = 1, .progress = tr::Progress::none});
  const auto logs = trainer.evaluate(test, 10);  // 4 batches, the last of 7 rows
  const kiln::Tensor logits = trainer.predict(test, 8);
  ASSERT_EQ(logits.shape(), kiln::Shape({37, 3}));
  EXPECT_DOUBLE_EQ(logs.at("accuracy"), kiln::metrics::accuracy(logits, test["target"]));
  EXPECT_DOUBLE_EQ(logs.at("f1_macro"), kiln::metrics::compute("f1_macro", logits, test["target"]));
  EXPECT_NEAR(logs.at("loss"), cross_entropy(logits, test["target"]), 1e-6);
  EXPECT_GT(logs.at("accuracy"), 0.6);
  // Evaluation mode: dropout off, so predict is deterministic and batch-size independent.
  const kiln::Tensor again = trainer.predict(test, 37);
  EXPECT_EQ(logits.to_vector<float>(), again.to_vector<float>());
}

TEST(Trainer, BadOptionsAreRefusedEarly) {
  Model m;
  try {
    tr::Trainer t(m.g, m.options({"accuracy", "acuracy"}));
    FAIL() << "no error";
  } catch (const kiln::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("'acuracy'"), std::string::npos) << e.what();
  }
  Model other;
  auto o = m.options();
  o.optimizer = other.opt.get();  // another graph's parameters
  EXPECT_THROW(tr::Trainer(m.g, o), kiln::ValueError);
  tr::Trainer t(m.g, m.options());
  const auto data = blobs(10, 1);
  EXPECT_THROW(t.fit(data, {.batch_size = 0}), kiln::ValueError);
  EXPECT_THROW(t.fit(data, {.validation_split = 1.0}), kiln::ValueError);
  EXPECT_THROW(t.fit(data, {.validation_split = 0.2, .validation = &data}), kiln::ValueError);
  EXPECT_THROW(t.resume("/nonexistent/ckpt-000000000001.kiln"), kiln::IoError);
}

TEST(Trainer, FeedsNameWhatIsMissing) {
  const auto data = blobs(12, 5, "iris.csv");
  Model m;
  tr::Trainer trainer(m.g, m.options({"accuracy"}));
  const auto features_only = data.select({"features"});
  // predict needs only the features.
  EXPECT_EQ(trainer.predict(features_only).dim(0), 12);
  try {
    trainer.evaluate(features_only);
    FAIL() << "no error";
  } catch (const kiln::NameError& e) {
    EXPECT_NE(std::string(e.what()).find("'target'"), std::string::npos) << e.what();
  }
  kiln::data::Dataset renamed({{"x", data["features"]}, {"target", data["target"]}}, data.info());
  try {
    trainer.fit(renamed, {.epochs = 1, .progress = tr::Progress::none});
    FAIL() << "no error";
  } catch (const kiln::NameError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("'features'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("iris.csv"), std::string::npos) << msg;
    EXPECT_NE(msg.find("'x'"), std::string::npos) << msg;
  }
}

// Writes a scripted value into the logs as "score" at every epoch end.
std::shared_ptr<tr::Callback> scripted(std::vector<double> values) {
  return tr::lambda_callback(
      {.on_epoch_end = [values](tr::Trainer&, std::int64_t e, tr::Logs& logs) {
        logs["score"] = values[static_cast<std::size_t>(e)];
      }});
}

TEST(Callbacks, EarlyStoppingStopsAtTheRightEpoch) {
  const auto data = blobs(24, 6);
  // min mode, patience 2: best 3.0 at epoch 2; epochs 3, 4 wait; epoch 5 is the third
  // without improvement (3.0 - 0.05 is not beaten by 2.98 with min_delta 0.05).
  Model m;
  tr::Trainer trainer(m.g, m.options());
  const auto h = trainer.fit(data, {.epochs = 10,
                                    .batch_size = 8,
                                    .callbacks = {scripted({5, 4, 3, 3.5, 3.2, 2.98, 1, 1, 1, 1}),
                                                  tr::early_stopping({.monitor = "score",
                                                                      .mode = tr::Mode::min,
                                                                      .patience = 2,
                                                                      .min_delta = 0.05})},
                                    .progress = tr::Progress::none});
  EXPECT_EQ(h.epochs.size(), 6u);
  // max mode on a name with "accuracy": automatic mode is max.
  Model m2;
  tr::Trainer t2(m2.g, m2.options());
  auto acc = tr::lambda_callback({.on_epoch_end = [](tr::Trainer&, std::int64_t e, tr::Logs& l) {
    const double v[] = {0.5, 0.7, 0.6, 0.65, 0.8, 0.1};
    l["val_accuracy"] = v[e];
  }});
  const auto h2 = t2.fit(
      data, {.epochs = 6,
             .batch_size = 8,
             .callbacks = {acc, tr::early_stopping({.monitor = "val_accuracy", .patience = 1})},
             .progress = tr::Progress::none});
  EXPECT_EQ(h2.epochs.size(), 4u);  // best at 1; 2 and 3 are worse -> stop after 3
  // A monitor that is not logged is an error naming it.
  Model m3;
  tr::Trainer t3(m3.g, m3.options());
  EXPECT_THROW(
      t3.fit(data,
             {.epochs = 2, .callbacks = {tr::early_stopping()}, .progress = tr::Progress::none}),
      kiln::ValueError);
}

TEST(Callbacks, RestoreBestWeights) {
  const auto data = blobs(24, 7);
  Model m;
  std::vector<std::vector<std::pair<std::string, std::vector<std::uint8_t>>>> at_epoch;
  auto record = tr::lambda_callback({.on_epoch_end = [&](tr::Trainer&, std::int64_t, tr::Logs&) {
    at_epoch.push_back(m.weights());
  }});
  tr::Trainer trainer(m.g, m.options());
  trainer.fit(
      data, {.epochs = 5,
             .batch_size = 8,
             .callbacks = {scripted({3, 1, 2, 2, 2}), record,
                           tr::early_stopping(
                               {.monitor = "score", .patience = 10, .restore_best_weights = true})},
             .progress = tr::Progress::none});
  ASSERT_EQ(at_epoch.size(), 5u);
  EXPECT_EQ(m.weights(), at_epoch[1]);
  EXPECT_NE(m.weights(), at_epoch[4]);
}

TEST(Callbacks, LrScheduleAndWarmup) {
  const auto data = blobs(32, 8);
  Model m(false, false, 0.1);
  auto sched = std::make_shared<kiln::optim::StepLR>(*m.opt, 2, 0.5);
  std::vector<double> step_lr;
  auto rec =
      tr::lambda_callback({.on_step_end = [&](tr::Trainer&, std::int64_t, const tr::Logs& l) {
        step_lr.push_back(l.at("lr"));
      }});
  tr::Trainer trainer(m.g, m.options());
  const auto h =
      trainer.fit(data, {.epochs = 5,
                         .batch_size = 8,
                         .callbacks = {tr::lr_schedule(sched), tr::linear_warmup(6, 0.2), rec},
                         .progress = tr::Progress::none});
  const double base = 0.1;
  const double want[] = {base, base, base * 0.5, base * 0.5, base * 0.25};
  for (std::size_t e = 0; e < 5; ++e) EXPECT_DOUBLE_EQ(h.epochs[e].at("lr"), want[e]) << e;
  ASSERT_EQ(step_lr.size(), 20u);  // 4 steps per epoch
  for (std::size_t s = 0; s < step_lr.size(); ++s) {
    const double epoch_lr = want[s / 4];
    const double expect = s < 6 ? epoch_lr * (0.2 + 0.8 * static_cast<double>(s) / 6.0) : epoch_lr;
    EXPECT_DOUBLE_EQ(step_lr[s], expect) << "step " << s;
  }
  EXPECT_DOUBLE_EQ(m.opt->lr(), base * 0.25);
}

TEST(Callbacks, PerStepSchedule) {
  const auto data = blobs(24, 8);
  Model m(false, false, 0.2);
  // torch LinearLR stepped per optimizer step: a warm-up from 0.25 * lr to lr over 4 steps.
  auto warm = std::make_shared<kiln::optim::LinearLR>(*m.opt, 0.25, 1.0, 4);
  std::vector<double> step_lr;
  auto rec =
      tr::lambda_callback({.on_step_end = [&](tr::Trainer&, std::int64_t, const tr::Logs& l) {
        step_lr.push_back(l.at("lr"));
      }});
  tr::Trainer trainer(m.g, m.options());
  trainer.fit(data, {.epochs = 2,
                     .batch_size = 8,
                     .callbacks = {tr::lr_schedule(warm, /*per_step=*/true), rec},
                     .progress = tr::Progress::none});
  ASSERT_EQ(step_lr.size(), 6u);
  const double want[] = {0.05, 0.0875, 0.125, 0.1625, 0.2, 0.2};
  for (std::size_t s = 0; s < 6; ++s) EXPECT_NEAR(step_lr[s], want[s], 1e-12) << s;
}

TEST(Callbacks, ReduceOnPlateau) {
  const auto data = blobs(16, 9);
  Model m(false, false, 0.1);
  tr::Trainer trainer(m.g, m.options());
  // torch semantics, patience 1, factor 0.5, cooldown 1: values 5, 5, 5 (reduce after
  // epoch 2), 5 (cooldown), 5, 5 (reduce after epoch 5), then 1 (better).
  const auto h = trainer.fit(
      data, {.epochs = 7,
             .batch_size = 8,
             .callbacks = {scripted({5, 5, 5, 5, 5, 5, 1}),
                           tr::reduce_on_plateau(
                               {.monitor = "score", .factor = 0.5, .patience = 1, .cooldown = 1})},
             .progress = tr::Progress::none});
  // "lr" is logged before the epoch-end callbacks: the reduction shows the epoch after.
  const double want[] = {0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025};
  for (std::size_t e = 0; e < 7; ++e) EXPECT_DOUBLE_EQ(h.epochs[e].at("lr"), want[e]) << e;
}

TEST(Progress, LinesModeFormat) {
  const auto train = blobs(30, 10), val = blobs(9, 11);
  Model m;
  tr::Trainer trainer(m.g, m.options({"accuracy"}));
  std::ostringstream out;
  const auto h = trainer.fit(train, {.epochs = 2,
                                     .batch_size = 8,
                                     .validation = &val,
                                     .progress = tr::Progress::lines,
                                     .progress_stream = &out});
  const std::string text = out.str();
  const std::regex line(
      R"(epoch (\d)/2 - loss (\d+\.\d{4}) - accuracy (\d\.\d{4}) - val_loss (\d+\.\d{4}) - )"
      R"(val_accuracy (\d\.\d{4}) - lr 0\.05 - \d+\.\d\ds\n)");
  auto it = std::sregex_iterator(text.begin(), text.end(), line);
  int n = 0;
  for (; it != std::sregex_iterator(); ++it, ++n) {
    const auto& mt = *it;
    EXPECT_EQ(std::stoi(mt[1]), n + 1);
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.4f", h.epochs[n].at("loss"));
    EXPECT_EQ(mt[2].str(), buf);
    std::snprintf(buf, sizeof buf, "%.4f", h.epochs[n].at("val_accuracy"));
    EXPECT_EQ(mt[5].str(), buf);
  }
  EXPECT_EQ(n, 2) << text;
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 2) << text;
  // Bar mode redraws with \r; none writes nothing.
  std::ostringstream bar, none;
  trainer.fit(
      train,
      {.epochs = 1, .batch_size = 8, .progress = tr::Progress::bar, .progress_stream = &bar});
  EXPECT_NE(bar.str().find("\repoch 1/1 ["), std::string::npos) << bar.str();
  EXPECT_NE(bar.str().find(" 4/4 - loss "), std::string::npos) << bar.str();
  trainer.fit(
      train,
      {.epochs = 1, .batch_size = 8, .progress = tr::Progress::none, .progress_stream = &none});
  EXPECT_EQ(none.str(), "");
}

TEST(Trainer, ValidationSplitIsSeededAndStratified) {
  const auto data = blobs(60, 12);
  Model a, b;
  tr::Trainer ta(a.g, a.options({"accuracy"})), tb(b.g, b.options({"accuracy"}));
  const auto ha = ta.fit(data, {.epochs = 2,
                                .batch_size = 8,
                                .seed = 4,
                                .validation_split = 0.25,
                                .progress = tr::Progress::none});
  const auto hb = tb.fit(data, {.epochs = 2,
                                .batch_size = 8,
                                .seed = 4,
                                .validation_split = 0.25,
                                .progress = tr::Progress::none});
  ASSERT_TRUE(ha.epochs[1].count("val_loss"));
  ASSERT_TRUE(ha.epochs[1].count("val_accuracy"));
  EXPECT_TRUE(kiln_test::same_bits(ha.epochs[1].at("val_loss"), hb.epochs[1].at("val_loss")));
  // 45 training rows in batches of 8: 6 steps per epoch.
  EXPECT_EQ(ta.global_step(), 12);
}

TEST(Trainer, NonFiniteLossStopsBeforeTheBadStep) {
  auto data = blobs(24, 13);
  // Row 9 (second batch without shuffling) holds a NaN feature.
  kiln::Tensor x = data["features"].clone();
  x.data<float>()[9 * 4 + 1] = std::nanf("");
  kiln::data::Dataset bad({{"features", x}, {"target", data["target"]}});
  Model m;
  std::vector<std::pair<std::string, std::vector<std::uint8_t>>> after_step;
  auto rec = tr::lambda_callback({.on_step_end = [&](tr::Trainer&, std::int64_t, const tr::Logs&) {
    after_step = m.weights();
  }});
  const std::string dir = kiln_test::fresh_dir("nonfinite");
  tr::Trainer trainer(m.g, m.options());
  EXPECT_THROW(trainer.fit(bad, {.epochs = 2,
                                 .batch_size = 8,
                                 .shuffle = false,
                                 .callbacks = {rec, tr::checkpoint({.dir = dir, .every_steps = 1})},
                                 .progress = tr::Progress::none}),
               kiln::NonFiniteError);
  EXPECT_EQ(trainer.global_step(), 1);
  EXPECT_EQ(m.weights(), after_step);
  const auto latest = tr::latest_checkpoint(dir);
  ASSERT_TRUE(latest.has_value());
  EXPECT_EQ(latest->step, 1);
  // Non-finite weights are never saved: no pair is written for them.
  m.g.tensor(m.g.find("fc2.bias")).data<float>()[1] = INFINITY;
  EXPECT_THROW(trainer.save_checkpoint(dir), kiln::NonFiniteError);
  EXPECT_EQ(tr::latest_checkpoint(dir)->step, 1);
  std::filesystem::remove_all(dir);
}

}  // namespace

namespace {

// The usage sketch at the top of include/kiln/train/trainer.hpp, as a user writes it.
TEST(TrainerUsage, HeaderSketch) {
  const auto all = blobs(150, 40);
  auto [train, test] = kiln::data::split(all, {.test_fraction = 0.2, .seed = 42, .stratify = true});
  kiln::Graph g;
  auto x = g.input("features", {kiln::batch, 4});
  auto y = g.input("target", {kiln::batch}, kiln::i32);
  auto logits = kiln::nn::dense(kiln::nn::dense(x, 16, {.activation = kiln::relu}), 3);
  auto loss = kiln::softmax_cross_entropy(logits, y);
  kiln::optim::Adam opt(kiln::nn::named_parameters(g), {.lr = 1e-2});
  kiln::train::Trainer trainer(
      g, {.loss = loss, .predictions = logits, .optimizer = &opt, .metrics = {"accuracy"}});
  auto history = trainer.fit(
      train,
      {.epochs = 50,
       .batch_size = 16,
       .seed = 1,
       .validation_split = 0.1,
       .callbacks = {kiln::train::early_stopping({.patience = 5, .restore_best_weights = true})},
       .progress = kiln::train::Progress::none});
  kiln::train::Logs scores = trainer.evaluate(test);  // {"loss": .., "accuracy": ..}
  kiln::Tensor logits_out = trainer.predict(test);
  EXPECT_GE(history.epochs.size(), 6u);
  EXPECT_GT(scores.at("accuracy"), 0.8);
  EXPECT_EQ(logits_out.shape(), kiln::Shape({test.size(), 3}));
}

}  // namespace

namespace {

std::vector<float> buffer_values(kiln::Graph& g) {
  std::vector<float> out;
  for (auto b : g.buffers()) {
    const auto v = g.tensor(b).to_vector<float>();
    out.insert(out.end(), v.begin(), v.end());
  }
  return out;
}

// Batch norm: fit updates the running statistics; evaluate and predict use them (so a
// row's prediction does not depend on its batch), and a non-finite step leaves them as
// they were before it.
TEST(Trainer, BatchNormRunningStatistics) {
  auto data = blobs(40, 41);
  kiln::Graph g;
  auto x = g.input("features", {kiln::batch, 4});
  auto y = g.input("target", {kiln::batch}, kiln::i32);
  auto h = kiln::relu(kiln::nn::batch_norm(kiln::nn::dense(x, 8, {.name = "fc1"}), {.name = "bn"}));
  auto logits = kiln::nn::dense(h, 3, {.name = "fc2"});
  auto loss = kiln::softmax_cross_entropy(logits, y);
  kiln::optim::SGD opt(kiln::nn::named_parameters(g), {.lr = 0.05});
  tr::Trainer trainer(g, {.loss = loss, .predictions = logits, .optimizer = &opt});
  const auto initial = buffer_values(g);
  trainer.fit(data, {.epochs = 2, .batch_size = 8, .progress = tr::Progress::none});
  const auto trained = buffer_values(g);
  EXPECT_NE(initial, trained);
  const auto all = trainer.predict(data, 40).to_vector<float>();
  const auto one_by_one = trainer.predict(data, 1).to_vector<float>();
  ASSERT_EQ(all.size(), one_by_one.size());
  for (std::size_t i = 0; i < all.size(); ++i) EXPECT_NEAR(all[i], one_by_one[i], 1e-5) << i;
  EXPECT_EQ(buffer_values(g), trained);  // evaluation does not change them

  kiln::Tensor xs = data["features"].clone();
  xs.data<float>()[10 * 4] = INFINITY;  // row 10: the second batch
  kiln::data::Dataset bad({{"features", xs}, {"target", data["target"]}});
  std::vector<float> after_first;
  auto rec = tr::lambda_callback({.on_step_end = [&](tr::Trainer&, std::int64_t, const tr::Logs&) {
    after_first = buffer_values(g);
  }});
  EXPECT_THROW(trainer.fit(bad, {.epochs = 1,
                                 .batch_size = 8,
                                 .shuffle = false,
                                 .callbacks = {rec},
                                 .progress = tr::Progress::none}),
               kiln::NonFiniteError);
  ASSERT_FALSE(after_first.empty());
  EXPECT_EQ(buffer_values(g), after_first);
}

}  // namespace
