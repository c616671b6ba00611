// kiln drift on snapshots made by the real monitor: a digits model trained here
// (train_from_spec), monitored on its clean held-out rows and on the same rows with inverted
// pixels (16 - x). Exit codes, the table, --json values against an independent computation
// from the model's profile (PSI and the KS statistic on the reference bins), merging, the
// HTML page, and the drift section of a run's report.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kiln/infer/model.hpp"
#include "kiln/mlops/drift.hpp"
#include "kiln/monitor/monitor.hpp"
#include "kiln/monitor/profile.hpp"
#include "kiln/report/report.hpp"
#include "kiln/train/from_spec.hpp"
#include "kiln/train/spec.hpp"
#include "tests/support/cli_test_support.hpp"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using kiln_test::CliResult;
using kiln_test::lines;
using kiln_test::slurp;

const std::string digits_csv = std::string(KILN_DATASETS_DIR) + "/digits.csv";
const std::string digits_spec = std::string(KILN_SOURCE_DIR) + "/examples/specs/digits.json";

// The model and snapshots, made once for the whole program.
struct Shared {
  fs::path dir;
  std::string model;
  kiln::Tensor holdout, inverted;  // raw pixels [N, 64]
  kiln::monitor::DriftReport clean_report, inverted_report;
};
Shared* shared = nullptr;

kiln::monitor::DriftReport monitor_rows(const std::string& model_path, const kiln::Tensor& x,
                                        const std::string& snapshot) {
  const auto model = kiln::infer::Model::load(model_path, {.apply_preprocessing = true});
  kiln::monitor::Monitor monitor(model, {.sample_every = 1});  // every row: exact counts
  monitor.run(model, {{"pixels", x}});
  monitor.write_snapshot(snapshot);
  return monitor.report();
}

kiln::Tensor invert(const kiln::Tensor& x) {
  std::vector<float> v = x.to_vector<float>();
  for (float& p : v) p = 16.0f - p;
  return kiln::Tensor::from(v, x.shape());
}

class CliDrift : public kiln_test::CliTest {
 protected:
  CliDrift() : CliTest("kiln_cli_drift_test_") {}

  static void SetUpTestSuite() {
    shared = new Shared;
    // One folder per process: ctest runs every test of this program as its own process,
    // in parallel, and each builds the shared model.
    shared->dir =
        fs::temp_directory_path() / ("kiln_cli_drift_test_shared_" + std::to_string(::getpid()));
    fs::remove_all(shared->dir);
    fs::create_directories(shared->dir);
    const auto spec = kiln::train::ModelSpec::load(digits_spec);
    const auto result = kiln::train::train_from_spec(
        spec, digits_csv, {.epochs = 3, .progress = kiln::train::Progress::none});
    shared->model = (shared->dir / "digits.kiln").string();
    result.save(shared->model);
    shared->holdout = result.test_data["features"];
    shared->inverted = invert(shared->holdout);
    shared->clean_report = monitor_rows(shared->model, shared->holdout, file("clean.json"));
    shared->inverted_report = monitor_rows(shared->model, shared->inverted, file("inverted.json"));
    // The clean rows with labels that arrive later and are all wrong: the decay alarm.
    {
      const auto model = kiln::infer::Model::load(shared->model, {.apply_preprocessing = true});
      kiln::monitor::Monitor monitor(model, {.sample_every = 1});
      const kiln::Tensor probs = monitor.run(model, {{"pixels", shared->holdout}}).at(0);
      const kiln::Tensor predicted = probs.argmax(1);
      std::vector<std::int64_t> classes = predicted.to_vector<std::int64_t>();
      // Half of the predictions get labels, each one the model got wrong.
      classes.resize(classes.size() / 2);
      std::vector<std::int64_t> labels(classes.size());
      for (std::size_t i = 0; i < classes.size(); ++i) labels[i] = (classes[i] + 1) % 10;
      monitor.observe_labels(classes, labels);
      monitor.write_snapshot(file("decayed.json"));
    }
    // The inverted rows in two halves, as two devices would see them.
    const std::int64_t n = shared->inverted.dim(0);
    monitor_rows(shared->model, shared->inverted.rows(0, n / 2), file("half_a.json"));
    monitor_rows(shared->model, shared->inverted.rows(n / 2, n), file("half_b.json"));
  }
  static void TearDownTestSuite() {
    // Kept to look at when a test failed (as TempDirTest keeps its folders).
    if (!::testing::UnitTest::GetInstance()->Failed()) fs::remove_all(shared->dir);
    delete shared;
    shared = nullptr;
  }
  static std::string file(const std::string& name) { return (shared->dir / name).string(); }
};

TEST_F(CliDrift, CleanHoldoutIsNotFlagged) {
  const CliResult r = kiln("drift " + file("clean.json"));
  EXPECT_EQ(r.rc, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("verdict: no drift"), std::string::npos) << r.out;
  EXPECT_FALSE(shared->clean_report.drifted);
  EXPECT_EQ(shared->clean_report.rows_observed, static_cast<std::uint64_t>(shared->holdout.dim(0)));
}

TEST_F(CliDrift, DecayAlarmWithoutDrift) {
  const CliResult r = kiln("drift " + file("decayed.json"));
  EXPECT_EQ(r.rc, 6) << r.out << r.err;
  EXPECT_NE(r.out.find("verdict: no drift"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("DECAY ALARM: live accuracy 0 vs reference"), std::string::npos) << r.out;
  const std::int64_t half = shared->holdout.dim(0) / 2;
  EXPECT_NE(r.out.find("labels: " + std::to_string(half) + " labelled; live accuracy 0"),
            std::string::npos)
      << r.out;
  const json j = json::parse(kiln("drift " + file("decayed.json") + " --json").out);
  EXPECT_EQ(j["labels"]["decayed"], true);
  EXPECT_EQ(j["labels"]["labelled"], half);
  EXPECT_EQ(j["labels"]["live"], 0.0);
}

TEST_F(CliDrift, InvertedPixelsAreFlaggedFirstInTheTable) {
  const CliResult r = kiln("drift " + file("inverted.json"));
  EXPECT_EQ(r.rc, 6) << r.out << r.err;
  EXPECT_NE(r.out.find("verdict: DRIFT: "), std::string::npos) << r.out;
  const auto& rep = shared->inverted_report;
  ASSERT_TRUE(rep.drifted);
  EXPECT_GT(rep.features_drifted, 10);
  // The table: the header line, then the most drifted feature (flagged, largest PSI).
  const std::vector<std::string> text = lines(r.out);
  std::size_t header = 0;
  while (header < text.size() && text[header].rfind("feature", 0) != 0) ++header;
  ASSERT_LT(header + 1, text.size()) << r.out;
  const kiln::monitor::FeatureDrift* top = nullptr;
  for (const auto& f : rep.features)
    if (f.drifted && (!top || f.psi > top->psi)) top = &f;
  ASSERT_NE(top, nullptr);
  EXPECT_EQ(text[header + 1].rfind(top->name + " ", 0), 0u) << text[header + 1];
  EXPECT_NE(text[header + 1].find("DRIFT"), std::string::npos) << text[header + 1];
  // 64 features: 20 shown, then the count of the others.
  EXPECT_NE(r.out.find("... 44 more features"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("prediction"), std::string::npos) << r.out;
}

// The --json numbers are the monitor's, and those match PSI and the KS distance computed
// here from the profile's reference bins and the inverted rows binned with Histogram::bin.
TEST_F(CliDrift, JsonValuesMatchAnIndependentComputation) {
  const json j = json::parse(kiln("drift " + file("inverted.json") + " --json").out);
  const auto model = kiln::infer::Model::load(shared->model);
  const kiln::monitor::Profile profile = kiln::monitor::Profile::from_model(model);
  ASSERT_EQ(profile.features.size(), 64u);
  ASSERT_EQ(j["features"].size(), 64u);
  EXPECT_EQ(j["drifted"], true);
  const std::vector<float> x = shared->inverted.to_vector<float>();
  const std::int64_t n = shared->inverted.dim(0);
  int checked = 0;
  for (std::size_t i = 0; i < 64; ++i) {
    const kiln::monitor::FeatureProfile& f = profile.features[i];
    const json& jf = j["features"][i];
    ASSERT_EQ(jf["name"], f.name);
    std::vector<std::uint64_t> live(f.histogram.counts.size(), 0);
    for (std::int64_t r = 0; r < n; ++r)
      ++live[f.histogram.bin(x[static_cast<std::size_t>(r * 64 + i)])];
    double ref_total = 0, live_total = static_cast<double>(n);
    for (auto c : f.histogram.counts) ref_total += static_cast<double>(c);
    if (ref_total == 0) continue;
    double psi = 0, d = 0, ref_cum = 0, live_cum = 0;
    for (std::size_t b = 0; b < live.size(); ++b) {
      const double e = std::max(static_cast<double>(f.histogram.counts[b]) / ref_total, 1e-4);
      const double a = std::max(static_cast<double>(live[b]) / live_total, 1e-4);
      psi += (a - e) * std::log(a / e);
      ref_cum += static_cast<double>(f.histogram.counts[b]) / ref_total;
      live_cum += static_cast<double>(live[b]) / live_total;
      d = std::max(d, std::abs(ref_cum - live_cum));
    }
    EXPECT_NEAR(jf["psi"].get<double>(), psi, 1e-9 * std::max(1.0, psi)) << f.name;
    if (jf["test"] == "ks") {
      EXPECT_NEAR(jf["statistic"].get<double>(), d, 1e-12) << f.name;
    }
    EXPECT_EQ(jf["psi"].get<double>(), shared->inverted_report.features[i].psi) << f.name;
    EXPECT_EQ(jf["p_value"].get<double>(), shared->inverted_report.features[i].p_value) << f.name;
    ++checked;
  }
  EXPECT_GT(checked, 40);
}

TEST_F(CliDrift, MergesSnapshotsOfTheSameModel) {
  const std::string both = file("half_a.json") + " " + file("half_b.json");
  const CliResult no_model = kiln("drift " + both);
  EXPECT_EQ(no_model.rc, 1) << no_model.err;
  EXPECT_NE(no_model.err.find("--model"), std::string::npos) << no_model.err;

  const CliResult merged = kiln("drift " + both + " --model " + shared->model + " --json");
  EXPECT_EQ(merged.rc, 6) << merged.err;
  const json j = json::parse(merged.out);
  EXPECT_EQ(j["rows_observed"], shared->holdout.dim(0));
  // The two halves add up to the whole: the same statistics as the one snapshot.
  for (std::size_t i = 0; i < 64; ++i) {
    EXPECT_DOUBLE_EQ(j["features"][i]["psi"].get<double>(),
                     shared->inverted_report.features[i].psi);
    EXPECT_DOUBLE_EQ(j["features"][i]["statistic"].get<double>(),
                     shared->inverted_report.features[i].statistic);
  }
}

TEST_F(CliDrift, HtmlPageIsSelfContainedWithExactNumbers) {
  const CliResult r =
      kiln("drift " + file("inverted.json") + " --model " + shared->model + " --html d.html");
  EXPECT_EQ(r.rc, 6) << r.err;
  const std::string html = slurp(path("d.html"));
  ASSERT_FALSE(html.empty());
  for (const char* bad : {"http://", "https://", "<script src", "<link", "@import", "url(", "<img"})
    EXPECT_EQ(html.find(bad), std::string::npos) << bad;
  EXPECT_NE(html.find("data-chart=\"drift-psi\""), std::string::npos);
  EXPECT_NE(html.find("data-level=\"moderate\" data-value=\"0.1\""), std::string::npos);
  EXPECT_NE(html.find("data-level=\"significant\" data-value=\"0.2\""), std::string::npos);
  // The most drifted feature's bar carries its PSI exactly, and its histogram both series.
  const kiln::monitor::FeatureDrift* top = nullptr;
  for (const auto& f : shared->inverted_report.features)
    if (f.drifted && (!top || f.psi > top->psi)) top = &f;
  ASSERT_NE(top, nullptr);
  const std::size_t bar = html.find("data-label=\"" + top->name + "\" data-value=\"");
  ASSERT_NE(bar, std::string::npos);
  const std::size_t at = html.find("data-value=\"", bar) + 12;
  EXPECT_EQ(std::stod(html.substr(at, html.find('"', at) - at)), top->psi);
  const std::size_t hist = html.find("data-chart=\"drift-hist-" + top->name + "\"");
  ASSERT_NE(hist, std::string::npos);
  EXPECT_NE(html.find("data-series=\"reference\"", hist), std::string::npos);
  EXPECT_NE(html.find("data-series=\"live\"", hist), std::string::npos);
}

TEST_F(CliDrift, ReportShowsTheRunsSnapshots) {
  const CliResult t = kiln("train " + digits_spec + " --data " + digits_csv +
                           " --out m.kiln --epochs 1 --quiet --run-dir run");
  ASSERT_EQ(t.rc, 0) << t.err;
  // A snapshot of the run's own model in run/drift/, and one of another model via --drift.
  fs::create_directories(path("run/drift"));
  const std::string before = kiln::report::list_runs(path("run").string()).at(0).version;
  monitor_rows(path("run/model.kiln").string(), shared->inverted,
               path("run/drift/inverted.json").string());
  // A new snapshot changes the run's version: kiln board redraws the page.
  EXPECT_NE(kiln::report::list_runs(path("run").string()).at(0).version, before);
  const CliResult r = kiln("report run --drift " + file("clean.json"));
  ASSERT_EQ(r.rc, 0) << r.err;
  const std::string html = slurp(path("run/report.html"));
  EXPECT_NE(html.find("<section id=\"drift\" data-present=\"1\" data-snapshots=\"2\""),
            std::string::npos);
  // drift-1: the run's model (reference histograms drawn), drift-2: clean.json (another
  // model: live only).
  EXPECT_NE(html.find("data-chart=\"drift-1-psi\""), std::string::npos);
  EXPECT_NE(html.find("data-chart=\"drift-2-psi\""), std::string::npos);
  const std::size_t h1 = html.find("data-chart=\"drift-1-hist-");
  ASSERT_NE(h1, std::string::npos);
  EXPECT_NE(html.find("data-series=\"reference\"", h1), std::string::npos);
  const std::size_t s1 = html.find("<section id=\"drift-1\"");
  const std::size_t s2 = html.find("<section id=\"drift-2\"");
  ASSERT_NE(s1, std::string::npos);
  ASSERT_NE(s2, std::string::npos);
  EXPECT_NE(html.find("data-drifted=\"1\"", s1), std::string::npos);
  EXPECT_EQ(html.substr(s2).find("data-series=\"reference\""), std::string::npos);
  for (const char* bad : {"http://", "https://", "<script src", "<link", "url("})
    EXPECT_EQ(html.find(bad), std::string::npos) << bad;
  // A snapshot named on the command line must be readable.
  EXPECT_EQ(kiln("report run --drift absent.json").rc, 4);
}

}  // namespace
