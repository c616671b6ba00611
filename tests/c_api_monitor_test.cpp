// The drift monitor through the C API (kiln.h, kiln_monitor_*): the same statistics as the
// C++ Monitor on the same rows, drift on inverted digits, labels, snapshots, reset, and
// statuses for bad arguments.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "kiln.h"
#include "kiln/mlops/drift.hpp"
#include "kiln/monitor/monitor.hpp"
#include "tests/support/monitor_test_support.hpp"
#include "tests/support/temp_dir.hpp"

namespace {

class CApiMonitor : public kiln_test::TempDirTest {
 protected:
  CApiMonitor() : TempDirTest("kiln_c_api_monitor_test_") {}
  void SetUp() override {
    TempDirTest::SetUp();
    model_path_ = path("digits.kiln").string();
    kiln_test::save_digits_model_with_profile(model_path_, 0.9);
    ASSERT_EQ(kiln_model_load(model_path_.c_str(), &model_), KILN_OK) << kiln_last_error_message();
    auto split = kiln_test::digits_split();
    holdout_ = split.second["features"].to_vector<float>();
    rows_ = split.second["features"].dim(0);
  }
  void TearDown() override {
    kiln_model_free(model_);
    TempDirTest::TearDown();
  }
  kiln_tensor* tensor(const std::vector<float>& v) const {
    const int64_t dims[2] = {rows_, 64};
    kiln_tensor* t = nullptr;
    EXPECT_EQ(kiln_tensor_create(KILN_F32, dims, 2, v.data(), v.size() * sizeof(float), &t),
              KILN_OK);
    return t;
  }
  std::string model_path_;
  kiln_model* model_ = nullptr;
  std::vector<float> holdout_;
  int64_t rows_ = 0;
};

TEST_F(CApiMonitor, RunMatchesTheCxxMonitor) {
  kiln_monitor* mon = nullptr;
  kiln_monitor_options o;
  kiln_monitor_options_default(&o);
  EXPECT_EQ(o.sample_every, 32u);
  o.sample_every = 1;
  ASSERT_EQ(kiln_monitor_create(model_, &o, &mon), KILN_OK) << kiln_last_error_message();
  kiln_tensor* x = tensor(holdout_);
  const char* names[1] = {"pixels"};
  kiln_tensor* out[1] = {nullptr};
  ASSERT_EQ(kiln_monitor_run(mon, model_, names, &x, 1, out, 1), KILN_OK)
      << kiln_last_error_message();
  int drifted = -1;
  ASSERT_EQ(kiln_monitor_drifted(mon, &drifted), KILN_OK);
  EXPECT_EQ(drifted, 0);
  uint64_t seen = 0, observed = 0;
  size_t features = 0;
  ASSERT_EQ(kiln_monitor_counts(mon, &seen, &observed, &features), KILN_OK);
  EXPECT_EQ(seen, static_cast<uint64_t>(rows_));
  EXPECT_EQ(observed, static_cast<uint64_t>(rows_));
  EXPECT_EQ(features, 64u);

  // The C++ monitor on the same rows.
  const auto cxx_model = kiln::infer::Model::load(model_path_);
  kiln::monitor::MonitorOptions every;
  every.sample_every = 1;
  kiln::monitor::Monitor cxx(cxx_model, every);
  cxx.run(cxx_model, {{"pixels", kiln::Tensor::from(holdout_, {rows_, 64})}});
  const auto r = cxx.report();
  for (size_t i = 0; i <= features; ++i) {
    kiln_feature_drift f{};
    ASSERT_EQ(kiln_monitor_feature(mon, i, &f), KILN_OK);
    const auto& e = i < features ? r.features[i] : r.prediction;
    EXPECT_EQ(std::string(f.name), e.name);
    EXPECT_STREQ(f.test, e.test);
    EXPECT_EQ(f.rows, e.rows);
    EXPECT_EQ(f.statistic, e.statistic);
    EXPECT_EQ(f.p_value, e.p_value);
    EXPECT_EQ(f.psi, e.psi);
  }
  kiln_feature_drift f{};
  EXPECT_EQ(kiln_monitor_feature(mon, features + 1, &f), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(kiln_last_error_message()).find("out of range"), std::string::npos);

  // Labels: all wrong is a decay against the recorded 0.9.
  std::vector<int64_t> pred(150, 1), truth(150, 2);
  ASSERT_EQ(kiln_monitor_observe_labels(mon, pred.data(), truth.data(), pred.size()), KILN_OK);
  ASSERT_EQ(kiln_monitor_drifted(mon, &drifted), KILN_OK);
  uint64_t labelled = 0;
  double live = -1, reference = -1;
  int decayed = 0;
  ASSERT_EQ(kiln_monitor_labels(mon, &labelled, &live, &reference, &decayed), KILN_OK);
  EXPECT_EQ(labelled, 150u);
  EXPECT_EQ(live, 0.0);
  EXPECT_EQ(reference, 0.9);
  EXPECT_EQ(decayed, 1);

  const std::string snap = path("drift.json").string();
  ASSERT_EQ(kiln_monitor_write_snapshot(mon, snap.c_str()), KILN_OK);
  EXPECT_EQ(kiln::mlops::read_drift_snapshot(snap).rows_observed, static_cast<uint64_t>(rows_));

  ASSERT_EQ(kiln_monitor_reset(mon), KILN_OK);
  ASSERT_EQ(kiln_monitor_counts(mon, &seen, &observed, &features), KILN_OK);
  EXPECT_EQ(observed, 0u);
  kiln_tensor_free(out[0]);
  kiln_tensor_free(x);
  kiln_monitor_free(mon);
}

TEST_F(CApiMonitor, InvertedPixelsDriftAndSamplingCountsRows) {
  kiln_monitor_options o;
  kiln_monitor_options_default(&o);
  EXPECT_EQ(o.alpha, 0.05);
  o.sample_every = 1;
  kiln_monitor* mon = nullptr;
  ASSERT_EQ(kiln_monitor_create(model_, &o, &mon), KILN_OK);
  std::vector<float> inverted = holdout_;
  for (float& v : inverted) v = 16 - v;
  kiln_tensor* x = tensor(inverted);
  const char* names[1] = {"pixels"};
  ASSERT_EQ(kiln_monitor_observe(mon, names, &x, 1, nullptr, nullptr, 0), KILN_OK)
      << kiln_last_error_message();
  int drifted = 0;
  ASSERT_EQ(kiln_monitor_drifted(mon, &drifted), KILN_OK);
  EXPECT_EQ(drifted, 1);
  kiln_tensor_free(x);
  kiln_monitor_free(mon);

  o.sample_every = 10;
  ASSERT_EQ(kiln_monitor_create(model_, &o, &mon), KILN_OK);
  x = tensor(holdout_);
  ASSERT_EQ(kiln_monitor_observe(mon, names, &x, 1, nullptr, nullptr, 0), KILN_OK);
  uint64_t seen = 0, observed = 0;
  ASSERT_EQ(kiln_monitor_counts(mon, &seen, &observed, nullptr), KILN_OK);
  EXPECT_EQ(seen, static_cast<uint64_t>(rows_));
  EXPECT_EQ(observed, static_cast<uint64_t>((rows_ + 9) / 10));
  kiln_tensor_free(x);
  kiln_monitor_free(mon);
}

TEST_F(CApiMonitor, BadArgumentsAndModelsWithoutProfileAreStatuses) {
  kiln_monitor* mon = nullptr;
  EXPECT_EQ(kiln_monitor_create(nullptr, nullptr, &mon), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(mon, nullptr);
  EXPECT_EQ(kiln_monitor_create(model_, nullptr, nullptr), KILN_ERROR_INVALID_ARGUMENT);
  kiln_monitor_options o;
  kiln_monitor_options_default(&o);
  o.sample_every = 0;
  EXPECT_EQ(kiln_monitor_create(model_, &o, &mon), KILN_ERROR_VALUE);
  int drifted = 0;
  EXPECT_EQ(kiln_monitor_drifted(nullptr, &drifted), KILN_ERROR_INVALID_ARGUMENT);

  ASSERT_EQ(kiln_monitor_create(model_, nullptr, &mon), KILN_OK);
  const char* names[1] = {"wrong"};
  kiln_tensor* x = tensor(holdout_);
  EXPECT_EQ(kiln_monitor_observe(mon, names, &x, 1, nullptr, nullptr, 0), KILN_ERROR_NAME);
  EXPECT_EQ(kiln_monitor_write_snapshot(mon, (dir_ / "no" / "such" / "dir.json").c_str()),
            KILN_ERROR_IO);
  kiln_tensor_free(x);
  kiln_monitor_free(mon);
  kiln_monitor_free(nullptr);

  // A model without a profile.
  kiln_test::DigitsMlp m = kiln_test::digits_mlp();
  const std::string plain = path("plain.kiln").string();
  kiln::save_model(plain, m.graph, m.save);
  kiln_model* pm = nullptr;
  ASSERT_EQ(kiln_model_load(plain.c_str(), &pm), KILN_OK);
  EXPECT_EQ(kiln_monitor_create(pm, nullptr, &mon), KILN_ERROR_NAME);
  EXPECT_NE(std::string(kiln_last_error_message()).find("kiln.profile"), std::string::npos);
  kiln_model_free(pm);
}

}  // namespace
