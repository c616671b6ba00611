// The drift monitor (kiln/monitor/): profiles and their bytes, the Monitor's statistics
// against the plain functions on the same data, threads, shifted data, labels, snapshots and
// merging, and the false-alarm rate on held-out splits of the training data over 200 seeds
// (issue 12's acceptance 3).
#include "kiln/monitor/monitor.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <thread>
#include <vector>

#include "kiln/core/error.hpp"
#include "kiln/data/csv.hpp"
#include "kiln/data/dataset.hpp"
#include "kiln/infer/model.hpp"
#include "kiln/mlops/drift.hpp"
#include "kiln/monitor/profile.hpp"
#include "kiln/monitor/stats.hpp"
#include "tests/support/monitor_test_support.hpp"
#include "tests/support/temp_dir.hpp"

namespace {

using kiln::Tensor;
using kiln::monitor::DriftReport;
using kiln::monitor::FeatureKind;
using kiln::monitor::Monitor;
using kiln::monitor::MonitorOptions;
using kiln::monitor::Profile;

class MonitorFiles : public kiln_test::TempDirTest {
 protected:
  MonitorFiles() : TempDirTest("kiln_monitor_test_") {}
};

// Every row observed (the default samples one in 32).
MonitorOptions every_row() {
  MonitorOptions o;
  o.sample_every = 1;
  return o;
}

Tensor rows_of(const std::vector<std::vector<float>>& rows) {
  std::vector<float> flat;
  for (const auto& r : rows) flat.insert(flat.end(), r.begin(), r.end());
  return Tensor::from(
      flat, {static_cast<std::int64_t>(rows.size()), static_cast<std::int64_t>(rows[0].size())});
}

// 1000 seeded rows: a continuous feature, a discrete one (0..4) and a one-hot colour.
Tensor mixed_rows(std::uint64_t seed, std::int64_t n, float shift = 0) {
  kiln_test::Lcg rng{seed};
  std::vector<float> v;
  for (std::int64_t r = 0; r < n; ++r) {
    v.push_back(rng.next() * 3 + shift);
    v.push_back(std::floor((rng.next() + 1) * 2.5f));
    const int colour = static_cast<int>((rng.next() + 1) * 1.5f) % 3;
    for (int c = 0; c < 3; ++c) v.push_back(c == colour ? 1.0f : 0.0f);
  }
  return Tensor::from(v, {n, 5});
}

Profile mixed_profile() {
  return kiln::monitor::build_profile(
      {.input = "x",
       .features = mixed_rows(1, 1000),
       .feature_names = {"a", "b", "", "", ""},
       .categorical = {{.name = "colour", .offset = 2, .categories = {"r", "g", "b"}}}});
}

TEST(MonitorProfile, BuildsQuantileAndDistinctValueBins) {
  const Profile p = mixed_profile();
  ASSERT_EQ(p.features.size(), 3u);
  const auto& a = p.features[0];
  EXPECT_EQ(a.name, "a");
  EXPECT_EQ(a.kind, FeatureKind::numeric);
  EXPECT_EQ(a.histogram.edges.size(), 20u);  // 19 quantiles and the maximum
  EXPECT_EQ(a.histogram.edges.back(), a.max);
  EXPECT_EQ(a.histogram.counts.back(), 0u);  // nothing above the maximum
  for (std::size_t i = 0; i + 1 < a.histogram.counts.size(); ++i)
    EXPECT_NEAR(static_cast<double>(a.histogram.counts[i]), 50.0, 1.0) << "bin " << i;
  // The discrete feature: one bin per value 0..4, and an empty one above.
  const auto& b = p.features[1];
  EXPECT_EQ(b.histogram.edges, (std::vector<double>{0, 1, 2, 3, 4}));
  std::uint64_t total = 0;
  for (auto c : b.histogram.counts) total += c;
  EXPECT_EQ(total, 1000u);
  const auto& colour = p.features[2];
  EXPECT_EQ(colour.kind, FeatureKind::categorical);
  EXPECT_TRUE(colour.one_hot);
  EXPECT_EQ(colour.offset, 2);
  EXPECT_EQ(colour.width, 3);
  EXPECT_EQ(colour.category_counts[0] + colour.category_counts[1] + colour.category_counts[2],
            1000u);
  // Histogram::bin: edges[i-1] < v <= edges[i].
  EXPECT_EQ(b.histogram.bin(0.0), 0u);
  EXPECT_EQ(b.histogram.bin(0.5), 1u);
  EXPECT_EQ(b.histogram.bin(4.0), 4u);
  EXPECT_EQ(b.histogram.bin(9.0), 5u);
  EXPECT_EQ(b.histogram.bin(std::nan("")), 6u);
}

TEST(MonitorProfile, BytesRoundTripAndBadBytesAreFormatErrors) {
  Profile p = mixed_profile();
  p.predicted = kiln::monitor::PredictionKind::classes;
  p.output = "probs";
  p.labels = {"no", "yes"};
  p.class_counts = {30, 70};
  p.prediction_count = 100;
  p.metrics = {{"accuracy", 0.875}};
  const auto bytes = p.to_bytes();
  EXPECT_EQ(Profile::from_bytes(bytes), p);
  // Every truncation is a FormatError naming the source, never a crash.
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    try {
      (void)Profile::from_bytes(std::span(bytes.data(), n), "trunc");
      ADD_FAILURE() << "a profile cut to " << n << " bytes was accepted";
    } catch (const kiln::FormatError& e) {
      EXPECT_EQ(std::string(e.what()).rfind("trunc", 0), 0u) << e.what();
    }
  }
  // A huge feature count is refused before anything is allocated.
  auto bad = bytes;
  const std::size_t count_at = 4 + 8 + 1;  // version, input name "x"
  bad[count_at] = 0xff;
  bad[count_at + 1] = 0xff;
  bad[count_at + 2] = 0xff;
  bad[count_at + 3] = 0x7f;
  EXPECT_THROW((void)Profile::from_bytes(bad, "bad"), kiln::FormatError);
  // Every byte changed to 0x00, 0x7f or 0xff: parsed or a FormatError, never anything else
  // (and never a crash or an allocation beyond the bytes).
  int refused = 0;
  for (std::size_t i = 0; i < bytes.size(); ++i)
    for (const std::uint8_t v : {std::uint8_t{0x00}, std::uint8_t{0x7f}, std::uint8_t{0xff}}) {
      auto changed = bytes;
      changed[i] = v;
      try {
        const Profile q = Profile::from_bytes(changed, "changed");
        EXPECT_LE(q.features.size(), changed.size());
      } catch (const kiln::FormatError&) {
        ++refused;
      }
    }
  EXPECT_GT(refused, 0);
  // Trailing bytes too.
  auto longer = bytes;
  longer.push_back(0);
  EXPECT_THROW((void)Profile::from_bytes(longer, "long"), kiln::FormatError);
}

TEST(Monitor, StatisticsEqualThePlainFunctions) {
  const Profile p = mixed_profile();
  MonitorOptions o = every_row();
  o.min_rows = 10;
  Monitor m(p, o);
  const Tensor live = mixed_rows(2, 400, 0.4f);
  m.observe({{"x", live}});
  const DriftReport r = m.report();
  EXPECT_EQ(r.rows_seen, 400u);
  EXPECT_EQ(r.rows_observed, 400u);
  EXPECT_DOUBLE_EQ(r.corrected_alpha, 0.05 / 3);
  ASSERT_EQ(r.features.size(), 3u);
  const auto v = live.to_vector<float>();
  for (int f = 0; f < 2; ++f) {
    const auto& h = p.features[static_cast<std::size_t>(f)].histogram;
    std::vector<std::uint64_t> counts(h.counts.size(), 0);
    double sum = 0;
    for (int r2 = 0; r2 < 400; ++r2) {
      ++counts[h.bin(v[static_cast<std::size_t>(r2 * 5 + f)])];
      sum += v[static_cast<std::size_t>(r2 * 5 + f)];
    }
    const auto& d = r.features[static_cast<std::size_t>(f)];
    EXPECT_EQ(d.live_counts, counts) << f;
    const auto ks = kiln::monitor::ks_binned(h.counts, counts);
    EXPECT_EQ(d.statistic, ks.statistic);
    EXPECT_EQ(d.p_value, ks.p_value);
    EXPECT_EQ(d.psi, kiln::monitor::psi(h.counts, counts));
    EXPECT_STREQ(d.test, "ks");
    EXPECT_NEAR(d.live_mean, sum / 400, 1e-9);
    EXPECT_EQ(d.drifted, d.p_value < 0.05 / 3);
  }
  // The shifted feature is flagged, the others are not.
  EXPECT_TRUE(r.features[0].drifted);
  EXPECT_GT(r.features[0].above_max, 0u);
  EXPECT_FALSE(r.features[1].drifted);
  std::vector<std::uint64_t> colours(3, 0);
  for (int r2 = 0; r2 < 400; ++r2)
    for (int c = 0; c < 3; ++c) colours[c] += v[static_cast<std::size_t>(r2 * 5 + 2 + c)] == 1.0f;
  EXPECT_EQ(r.features[2].live_counts, colours);
  const auto chi = kiln::monitor::chi2_2samp(p.features[2].category_counts, colours);
  EXPECT_EQ(r.features[2].statistic, chi.statistic);
  EXPECT_STREQ(r.features[2].test, "chi2");
  EXPECT_TRUE(r.drifted);
  EXPECT_EQ(r.features_drifted, 1);
}

TEST(Monitor, AnomaliesAreCounted) {
  Monitor m(mixed_profile(), every_row());
  const float nan = std::nanf("");
  m.observe({{"x", rows_of({{nan, 1, 1, 0, 0}, {-100, 9, 0, 0, 0}, {100, 2, 0, 1, 1}})}});
  const DriftReport r = m.report();
  EXPECT_EQ(r.features[0].nonfinite, 1u);
  EXPECT_EQ(r.features[0].rows, 2u);
  EXPECT_EQ(r.features[0].below_min, 1u);
  EXPECT_EQ(r.features[0].above_max, 1u);
  EXPECT_EQ(r.features[1].above_max, 1u);  // 9 > 4
  EXPECT_EQ(r.features[2].unseen_category, 2u);
  EXPECT_EQ(r.features[2].rows, 1u);
  EXPECT_FALSE(r.drifted);  // below min_rows
}

TEST(Monitor, ValuePredictionsAndMseDecay) {
  // A regression profile: predictions [M, 1] get a quantile histogram and a KS test.
  std::vector<float> preds(500);
  for (std::size_t i = 0; i < preds.size(); ++i) preds[i] = static_cast<float>(i % 50) / 10.0f;
  const Profile p = kiln::monitor::build_profile(
      {.input = "x",
       .features = mixed_rows(1, 1000),
       .categorical = {{.name = "colour", .offset = 2, .categories = {"r", "g", "b"}}},
       .predictions = Tensor::from(preds, {500, 1}),
       .predicted = kiln::monitor::PredictionKind::values,
       .output = "y",
       .metrics = {{"val_mse", 0.25}}});
  EXPECT_EQ(p.prediction_histogram.edges.size(), 20u);
  MonitorOptions o = every_row();
  o.min_rows = 10;
  Monitor m(p, o);
  std::vector<float> shifted(200);
  for (std::size_t i = 0; i < shifted.size(); ++i)
    shifted[i] = static_cast<float>(i % 50) / 10.0f + 2;
  const std::vector<Tensor> outs = {Tensor::from(shifted, {200, 1})};
  const std::vector<std::string> names = {"y"};
  m.observe({{"x", mixed_rows(3, 200)}}, outs, names);
  DriftReport r = m.report();
  EXPECT_STREQ(r.prediction.test, "ks");
  EXPECT_EQ(r.prediction.rows, 200u);
  EXPECT_TRUE(r.prediction.drifted);
  EXPECT_NEAR(r.prediction.live_mean, 4.45, 1e-5);  // mean of 2.0 .. 6.9
  std::vector<std::uint64_t> counts(p.prediction_histogram.counts.size(), 0);
  for (float v : shifted) ++counts[p.prediction_histogram.bin(v)];
  EXPECT_EQ(r.prediction.live_counts, counts);
  EXPECT_EQ(r.prediction.p_value,
            kiln::monitor::ks_binned(p.prediction_histogram.counts, counts).p_value);
  // MSE from labels: errors of 1 against a recorded 0.25 is a decay; 0.5 (MSE 0.25) is not.
  std::vector<double> yhat(150, 1.0), y(150, 0.0);
  m.observe_labels(yhat, y);
  r = m.report();
  EXPECT_EQ(r.labels.metric, "mse");
  EXPECT_DOUBLE_EQ(r.labels.reference, 0.25);
  EXPECT_DOUBLE_EQ(r.labels.live, 1.0);
  EXPECT_TRUE(r.labels.decayed);
  Monitor fine(p, o);
  for (std::size_t i = 0; i < y.size(); ++i) yhat[i] = i % 2 == 0 ? 0.5 : -0.5;
  fine.observe_labels(yhat, y);
  EXPECT_DOUBLE_EQ(fine.report().labels.live, 0.25);
  EXPECT_FALSE(fine.report().labels.decayed);
  // Class indices for a value model are refused.
  const std::vector<std::int64_t> ci = {1};
  EXPECT_THROW(m.observe_labels(ci, ci), kiln::ValueError);
}

TEST(Monitor, ThreadsGiveTheSameCountsAsOneThread) {
  const Profile p = mixed_profile();
  Monitor one(p, every_row()), many(p, every_row());
  const Tensor live = mixed_rows(5, 4000, 0.1f);
  const auto v = live.to_vector<float>();
  one.observe({{"x", live}});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int r = t; r < 4000; r += 4) {
        const std::vector<float> row(v.begin() + r * 5, v.begin() + r * 5 + 5);
        many.observe({{"x", Tensor::from(row, {1, 5})}});
      }
    });
  for (auto& t : threads) t.join();
  const DriftReport a = one.report(), b = many.report();
  EXPECT_EQ(b.rows_observed, 4000u);
  for (std::size_t f = 0; f < a.features.size(); ++f) {
    EXPECT_EQ(a.features[f].live_counts, b.features[f].live_counts) << f;
    EXPECT_EQ(a.features[f].p_value, b.features[f].p_value) << f;
    EXPECT_NEAR(a.features[f].live_mean, b.features[f].live_mean, 1e-12) << f;
  }
}

TEST(Monitor, SamplesOneRowInSampleEvery) {
  EXPECT_EQ(MonitorOptions{}.sample_every, 32u);
  MonitorOptions o;
  o.sample_every = 7;
  Monitor m(mixed_profile(), o);
  for (int i = 0; i < 10; ++i) m.observe({{"x", mixed_rows(9, 10)}});
  const DriftReport r = m.report();
  EXPECT_EQ(r.rows_seen, 100u);
  EXPECT_EQ(r.rows_observed, 15u);  // rows 0, 7, ..., 98
  m.reset();
  EXPECT_EQ(m.report().rows_observed, 0u);
  EXPECT_EQ(m.report().rows_seen, 0u);
}

TEST(Monitor, BadFeedsAreTypedErrors) {
  Monitor m(mixed_profile());
  EXPECT_THROW(m.observe({{"y", mixed_rows(1, 3)}}), kiln::NameError);
  EXPECT_THROW(m.observe({{"x", Tensor::zeros({3, 4})}}), kiln::ShapeError);
  EXPECT_THROW(m.observe({{"x", Tensor::zeros({3, 5}, kiln::DType::i32)}}), kiln::DTypeError);
  MonitorOptions zero;
  zero.sample_every = 0;
  EXPECT_THROW(Monitor(mixed_profile(), zero), kiln::ValueError);
}

TEST(MonitorDigits, InvertedPixelsAreFlaggedAndTheHeldOutSplitIsNot) {
  auto [train, holdout] = kiln_test::digits_split();
  const Profile p = kiln::monitor::build_profile({.input = "pixels",
                                                  .features = train["features"],
                                                  .feature_names = train.info().feature_names});
  Monitor same(p, every_row()), inverted(p, every_row());
  same.observe({{"pixels", holdout["features"]}});
  std::vector<float> v = holdout["features"].to_vector<float>();
  for (float& x : v) x = 16 - x;
  inverted.observe({{"pixels", Tensor::from(v, holdout["features"].shape())}});
  const DriftReport r = inverted.report();
  EXPECT_TRUE(r.drifted);
  EXPECT_GT(r.features_drifted, 40);
  EXPECT_GT(r.max_psi, 0.2);
  EXPECT_FALSE(same.report().drifted);
}

// Acceptance 3: the false-alarm rate over many random splits stays at or below alpha.
double false_alarm_rate(const kiln::data::Dataset& data, std::uint64_t min_rows, int seeds) {
  int alarms = 0;
  for (int seed = 0; seed < seeds; ++seed) {
    auto [train, holdout] = kiln::data::split(
        data, {.test_fraction = 0.2, .seed = static_cast<std::uint64_t>(seed) + 1000});
    const Profile p = kiln::monitor::build_profile(
        {.input = "x", .features = train["features"], .feature_names = train.info().feature_names});
    MonitorOptions o = every_row();
    o.min_rows = min_rows;
    Monitor m(p, o);
    m.observe({{"x", holdout["features"]}});
    const DriftReport r = m.report();
    EXPECT_GE(r.features[0].rows, min_rows);
    alarms += r.drifted ? 1 : 0;
  }
  return static_cast<double>(alarms) / seeds;
}

TEST(MonitorFalseAlarms, HeldOutSplitsOfDigitsAndIrisStayUnderAlpha) {
  const std::string dir = KILN_DATASETS_DIR;
  const auto digits = kiln::data::read_csv(dir + "/digits.csv", {.target = "label"}).dataset;
  const auto iris = kiln::data::read_csv(dir + "/iris.csv", {.target = "species"}).dataset;
  const double digits_rate = false_alarm_rate(digits, 100, 200);
  const double iris_rate = false_alarm_rate(iris, 20, 200);
  RecordProperty("digits_false_alarm_rate", std::to_string(digits_rate));
  RecordProperty("iris_false_alarm_rate", std::to_string(iris_rate));
  std::printf("false-alarm rate over 200 splits: digits %.3f, iris %.3f (alpha 0.05)\n",
              digits_rate, iris_rate);
  EXPECT_LE(digits_rate, 0.05);
  EXPECT_LE(iris_rate, 0.05);
}

TEST_F(MonitorFiles, ModelProfileRunLabelsSnapshotAndMerge) {
  const std::string path = this->path("digits.kiln").string();
  const Profile saved = kiln_test::save_digits_model_with_profile(path, 0.9);
  const auto model = kiln::infer::Model::load(path);
  EXPECT_EQ(Profile::from_model(model), saved);
  Monitor m(model, every_row());
  auto [train, holdout] = kiln_test::digits_split();
  const Tensor x = holdout["features"];
  const auto out = m.run(model, {{"pixels", x}});
  ASSERT_EQ(out.size(), 1u);
  DriftReport r = m.report();
  EXPECT_EQ(r.model, "digits-monitor");
  EXPECT_EQ(r.model_hash, model.content_hash());
  // The held-out predictions are the profile's own: no prediction drift, same counts.
  EXPECT_EQ(r.prediction.live_counts, saved.class_counts);
  EXPECT_EQ(r.prediction.statistic, 0.0);
  EXPECT_FALSE(r.drifted);
  EXPECT_DOUBLE_EQ(r.corrected_alpha, 0.05 / 65);

  // Labels: 40% accuracy against a recorded 0.9 is a decay; 90% is not.
  std::vector<std::int64_t> pred(200), truth(200);
  for (int i = 0; i < 200; ++i) {
    pred[static_cast<std::size_t>(i)] = i % 10;
    truth[static_cast<std::size_t>(i)] = i % 5 < 2 ? i % 10 : (i + 1) % 10;
  }
  m.observe_labels(pred, truth);
  r = m.report();
  EXPECT_EQ(r.labels.labelled, 200u);
  EXPECT_EQ(r.labels.metric, "accuracy");
  EXPECT_DOUBLE_EQ(r.labels.live, 0.4);
  EXPECT_DOUBLE_EQ(r.labels.reference, 0.9);
  EXPECT_TRUE(r.labels.decayed);
  Monitor good(model, every_row());
  for (int i = 0; i < 200; ++i) truth[static_cast<std::size_t>(i)] = i % 10 == 0 ? 1 : i % 10;
  good.observe_labels(pred, truth);
  EXPECT_DOUBLE_EQ(good.report().labels.live, 0.9);
  EXPECT_FALSE(good.report().labels.decayed);

  // Snapshots read back to the report, and merging two halves equals one monitor.
  const std::string snap = this->path("drift.json").string();
  m.write_snapshot(snap);
  const DriftReport back = kiln::mlops::read_drift_snapshot(snap);
  EXPECT_EQ(back.model_hash, r.model_hash);
  EXPECT_EQ(back.rows_observed, r.rows_observed);
  ASSERT_EQ(back.features.size(), r.features.size());
  for (std::size_t f = 0; f < r.features.size(); ++f) {
    EXPECT_EQ(back.features[f].name, r.features[f].name);
    EXPECT_EQ(back.features[f].live_counts, r.features[f].live_counts);
    EXPECT_EQ(back.features[f].p_value, r.features[f].p_value);  // %.17g round trip
    EXPECT_EQ(back.features[f].psi, r.features[f].psi);
  }
  EXPECT_EQ(back.prediction.live_counts, r.prediction.live_counts);
  EXPECT_EQ(back.labels.sum, 80.0);
  EXPECT_EQ(kiln::mlops::drift_json(back, true).find("\"kind\":\"kiln.drift_snapshot\""), 1u);

  const std::int64_t half = x.dim(0) / 2;
  const auto xv = x.to_vector<float>();
  const Tensor first =
      Tensor::from(std::vector<float>(xv.begin(), xv.begin() + half * 64), {half, 64});
  const Tensor second =
      Tensor::from(std::vector<float>(xv.begin() + half * 64, xv.end()), {x.dim(0) - half, 64});
  Monitor a(model, every_row()), b(model, every_row());
  a.run(model, {{"pixels", first}});
  b.run(model, {{"pixels", second}});
  a.write_snapshot(this->path("a.json").string());
  b.write_snapshot(this->path("b.json").string());
  const DriftReport merged = kiln::mlops::merge_drift_snapshots(
      path, {this->path("a.json").string(), this->path("b.json").string()});
  Monitor whole(model, every_row());
  whole.run(model, {{"pixels", x}});
  const DriftReport w = whole.report();
  EXPECT_EQ(merged.rows_observed, w.rows_observed);
  for (std::size_t f = 0; f < w.features.size(); ++f) {
    EXPECT_EQ(merged.features[f].live_counts, w.features[f].live_counts);
    EXPECT_EQ(merged.features[f].p_value, w.features[f].p_value);
  }
  EXPECT_EQ(merged.prediction.live_counts, w.prediction.live_counts);
}

TEST_F(MonitorFiles, PreprocessedInputsAreUndone) {
  // A model recording a normalisation: fed preprocessed rows with inputs_preprocessed, the
  // monitor counts the same bins as fed raw rows.
  const std::string path = this->path("norm.kiln").string();
  kiln_test::DigitsMlp m = kiln_test::digits_mlp();
  auto [train, holdout] = kiln_test::digits_split();
  kiln::Normalization n{"pixels", std::vector<float>(64, 4.0f), std::vector<float>(64, 2.0f)};
  m.save.metadata.preprocessing = {n};
  const Profile p = kiln::monitor::build_profile({.input = "pixels",
                                                  .features = train["features"],
                                                  .feature_names = train.info().feature_names});
  m.save.sections[kiln::monitor::profile_section] = p.to_bytes();
  kiln::save_model(path, m.graph, m.save);
  const auto model = kiln::infer::Model::load(path);
  MonitorOptions pre = every_row();
  pre.inputs_preprocessed = true;
  Monitor raw(model, every_row()), scaled(model, pre);
  raw.observe({{"pixels", holdout["features"]}});
  scaled.observe({{"pixels", kiln::apply_normalization(holdout["features"], n)}});
  const DriftReport a = raw.report(), b = scaled.report();
  for (std::size_t f = 0; f < a.features.size(); ++f)
    EXPECT_EQ(a.features[f].live_counts, b.features[f].live_counts) << f;
}

TEST_F(MonitorFiles, ModelWithoutProfileAndBadSnapshots) {
  const std::string path = this->path("plain.kiln").string();
  kiln_test::DigitsMlp m = kiln_test::digits_mlp();
  kiln::save_model(path, m.graph, m.save);
  EXPECT_THROW(Monitor(kiln::infer::Model::load(path)), kiln::NameError);
  const std::string bad = this->path("bad.json").string();
  {
    std::FILE* f = std::fopen(bad.c_str(), "w");
    std::fputs("{\"kind\": \"kiln.drift_snapshot\", \"format\": 1}", f);
    std::fclose(f);
  }
  try {
    (void)kiln::mlops::read_drift_snapshot(bad);
    ADD_FAILURE() << "an incomplete snapshot was read";
  } catch (const kiln::FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("bad.json"), std::string::npos) << e.what();
  }
  EXPECT_THROW((void)kiln::mlops::read_drift_snapshot(this->path("missing.json").string()),
               kiln::IoError);
}

}  // namespace
