// The continuous-training pipeline: pipeline files (errors naming the file and JSON path),
// the gate on hand-made numbers, warm start (the candidate starts from production's weights),
// triggers, outcomes, and reruns that register nothing twice. Small data (three Gaussian
// blobs made here, seeded) and a small spec keep every run well under a second.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "io/sha256.hpp"
#include "kiln/core/error.hpp"
#include "kiln/infer/model.hpp"
#include "kiln/io/load_graph.hpp"
#include "kiln/mlops/pipeline.hpp"
#include "kiln/mlops/registry.hpp"
#include "kiln/monitor/monitor.hpp"
#include "kiln/train/from_spec.hpp"
#include "tests/support/blobs_csv.hpp"
#include "tests/support/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using kiln::mlops::GateCheck;
using kiln::mlops::GateRule;
using kiln::mlops::Outcome;
using kiln::mlops::PipelineOptions;
using kiln::mlops::PipelineResult;
using kiln::mlops::PipelineSpec;
using kiln::mlops::TriggerType;

const char* blob_spec = R"({
  "name": "blobs",
  "inputs": [{"name": "x", "shape": [2]}],
  "layers": [{"type": "dense", "units": 8, "activation": "relu", "name": "fc1"},
             {"type": "dense", "units": "auto", "name": "fc2"}],
  "task": {"type": "classification", "target": "label"},
  "preprocessing": {"scaling": "standardize"},
  "training": {"optimizer": {"name": "adam", "lr": 0.05}, "epochs": 6, "batch_size": 32,
               "seed": 1, "test_split": 0.2}
})";

void write(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream out(p, std::ios::binary);
  out << text;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

using kiln_test::blobs_csv;

// ===== pipeline files =====================================================================

class PipelineFile : public kiln_test::TempDirTest {
 protected:
  PipelineFile() : TempDirTest("kiln_pipeline_file_test_") {}

  /// load() of `text` written to p.json; the FormatError's message ("" when it loads).
  std::string error_of(const std::string& text) {
    write(path("p.json"), text);
    try {
      PipelineSpec::load(path("p.json").string());
    } catch (const kiln::FormatError& e) {
      return e.what();
    }
    return "";
  }
};

const char* minimal = R"({"name": "blobs", "registry": "models", "spec": "spec.json",
  "data": {"train": "new", "holdout": "holdout.csv"},
  "gate": {"metrics": {"accuracy": {"min": 0.9, "tolerance": 0.02}}}})";

TEST_F(PipelineFile, ReadsDefaultsAndResolvesPathsAgainstItsFolder) {
  write(path("sub/p.json"), minimal);
  const PipelineSpec s = PipelineSpec::load(path("sub/p.json").string());
  const fs::path base = fs::absolute(path("sub"));
  EXPECT_EQ(s.name, "blobs");
  EXPECT_EQ(s.registry, (base / "models").string());
  EXPECT_EQ(s.spec, (base / "spec.json").string());
  EXPECT_EQ(s.train_data, (base / "new").string());
  EXPECT_EQ(s.holdout, (base / "holdout.csv").string());
  EXPECT_EQ(s.work_dir, (base / "blobs-ct").string());
  EXPECT_EQ(s.alias, "production");
  EXPECT_EQ(s.trigger, TriggerType::always);
  EXPECT_FALSE(s.warm_start);
  ASSERT_EQ(s.gate.size(), 1u);
  const GateRule& rule = s.gate.at("accuracy");
  EXPECT_EQ(rule.min, 0.9);
  EXPECT_FALSE(rule.max.has_value());
  EXPECT_EQ(rule.tolerance, 0.02);
  EXPECT_TRUE(rule.higher_is_better);
  EXPECT_EQ(s.source, path("sub/p.json").string());
}

TEST_F(PipelineFile, RoundTripsThroughJson) {
  write(path("p.json"), R"({"name": "d", "registry": "/r", "spec": "/s.json",
    "data": {"train": "/t", "holdout": "/h.csv", "target": "label"},
    "trigger": {"type": "drift", "snapshot": "/snap.json"}, "warm_start": true,
    "alias": "staging", "work_dir": "/w", "seed": 7, "epochs": 3,
    "gate": {"metrics": {"accuracy": {"min": 0.5}, "log_loss": {"max": 1.5, "tolerance": 0.1},
                         "odd": {"higher_is_better": false}}}})");
  const PipelineSpec a = PipelineSpec::load(path("p.json").string());
  const PipelineSpec b = PipelineSpec::from_json(a.to_json(), "again", "/elsewhere");
  for (const PipelineSpec* s : {&a, &b}) {
    EXPECT_EQ(s->trigger, TriggerType::drift);
    EXPECT_EQ(s->trigger_snapshot, "/snap.json");
    EXPECT_EQ(s->target, "label");
    EXPECT_TRUE(s->warm_start);
    EXPECT_EQ(s->alias, "staging");
    EXPECT_EQ(s->work_dir, "/w");
    EXPECT_EQ(s->seed, 7u);
    EXPECT_EQ(s->epochs, 3);
    EXPECT_TRUE(s->gate.at("accuracy").higher_is_better);
    EXPECT_FALSE(s->gate.at("log_loss").higher_is_better);  // inferred from the name
    EXPECT_EQ(s->gate.at("log_loss").max, 1.5);
    EXPECT_EQ(s->gate.at("log_loss").tolerance, 0.1);
    EXPECT_FALSE(s->gate.at("odd").higher_is_better);  // given
  }
  EXPECT_EQ(a.to_json(), b.to_json());
}

TEST_F(PipelineFile, ErrorsNameTheFileAndJsonPath) {
  const std::string file = path("p.json").string();
  struct Case {
    std::string text, expected;
  };
  const std::vector<Case> cases = {
      {"{", "not valid JSON"},
      {"[1]", "expected an object"},
      {R"({"name": "b", "registry": "r", "spec": "s", "data": {"train": "t", "holdout": "h"},
          "gate": {"metrics": {"accuracy": {"min": 0.9}}}, "bogus": 1})",
       "bogus: unknown key"},
      {R"({"registry": "r", "spec": "s", "data": {"train": "t", "holdout": "h"},
          "gate": {"metrics": {"accuracy": {"min": 0.9}}}})",
       "missing \"name\""},
      {R"({"name": "b", "registry": "r", "spec": "s", "data": {"train": "t"},
          "gate": {"metrics": {"accuracy": {"min": 0.9}}}})",
       "data: missing \"holdout\""},
      {R"({"name": "b", "registry": "r", "spec": "s", "data": {"train": "t", "holdout": 3},
          "gate": {"metrics": {"accuracy": {"min": 0.9}}}})",
       "data.holdout: expected a non-empty string"},
      {R"({"name": "b", "registry": "r", "spec": "s", "data": {"train": "t", "holdout": "h"},
          "gate": {"metrics": {"accuracy": {"minimum": 0.9}}}})",
       "gate.metrics.accuracy.minimum: unknown key"},
      {R"({"name": "b", "registry": "r", "spec": "s", "data": {"train": "t", "holdout": "h"},
          "gate": {"metrics": {"accuracy": {"tolerance": -1}}}})",
       "gate.metrics.accuracy.tolerance: expected a number >= 0"},
      {R"({"name": "b", "registry": "r", "spec": "s", "data": {"train": "t", "holdout": "h"},
          "gate": {"metrics": {}}})",
       "gate.metrics: expected an object of at least one metric"},
      {R"({"name": "b", "registry": "r", "spec": "s", "data": {"train": "t", "holdout": "h"}})",
       "missing \"gate\""},
      {R"({"name": "b", "registry": "r", "spec": "s", "data": {"train": "t", "holdout": "h"},
          "trigger": {"type": "drift"}, "gate": {"metrics": {"accuracy": {"min": 0.9}}}})",
       "trigger: missing \"snapshot\""},
      {R"({"name": "b", "registry": "r", "spec": "s", "data": {"train": "t", "holdout": "h"},
          "trigger": {"type": "hourly"}, "gate": {"metrics": {"accuracy": {"min": 0.9}}}})",
       "trigger.type: expected one of always, new_data, drift, decay"},
      {R"({"name": "b", "registry": "r", "spec": "s", "data": {"train": "t", "holdout": "h"},
          "trigger": {"type": "always", "snapshot": "s.json"},
          "gate": {"metrics": {"accuracy": {"min": 0.9}}}})",
       "trigger.snapshot: only the drift and decay triggers"},
      {R"({"name": "b", "registry": "r", "spec": "s", "data": {"train": "t", "holdout": "h"},
          "epochs": 0, "gate": {"metrics": {"accuracy": {"min": 0.9}}}})",
       "epochs: expected a positive integer"},
      {R"({"name": "b", "registry": "r", "spec": "s", "data": {"train": "t", "holdout": "h"},
          "warm_start": "yes", "gate": {"metrics": {"accuracy": {"min": 0.9}}}})",
       "warm_start: expected true or false"},
  };
  for (const Case& c : cases) {
    const std::string msg = error_of(c.text);
    EXPECT_NE(msg.find(file + ": "), std::string::npos) << c.text << "\n-> " << msg;
    EXPECT_NE(msg.find(c.expected), std::string::npos) << c.text << "\n-> " << msg;
  }
  EXPECT_THROW(PipelineSpec::load(path("missing.json").string()), kiln::IoError);
}

// ===== the gate ==========================================================================

TEST(PipelineGate, AbsoluteMinimumAndToleranceAgainstProduction) {
  const std::map<std::string, GateRule> gate = {{"accuracy", {.min = 0.9, .tolerance = 0.01}}};
  const std::map<std::string, double> production = {{"accuracy", 0.95}};

  // 0.11: below the minimum and worse than production by 0.84.
  std::vector<GateCheck> c = kiln::mlops::apply_gate(gate, {{"accuracy", 0.11}}, &production);
  ASSERT_EQ(c.size(), 1u);
  EXPECT_FALSE(c[0].passed);
  EXPECT_EQ(c[0].candidate, 0.11);
  EXPECT_EQ(c[0].production, 0.95);
  EXPECT_NE(c[0].reason.find("accuracy 0.11 < minimum 0.9"), std::string::npos) << c[0].reason;
  EXPECT_NE(c[0].reason.find("worse than production's 0.95 by 0.84 (tolerance 0.01)"),
            std::string::npos)
      << c[0].reason;

  // 0.945: above the minimum, 0.005 below production: within the tolerance.
  c = kiln::mlops::apply_gate(gate, {{"accuracy", 0.945}}, &production);
  EXPECT_TRUE(c[0].passed) << c[0].reason;
  EXPECT_EQ(c[0].reason, "");
  // 0.93: 0.02 below production: rejected for the tolerance alone.
  c = kiln::mlops::apply_gate(gate, {{"accuracy", 0.93}}, &production);
  EXPECT_FALSE(c[0].passed);
  EXPECT_EQ(c[0].reason.find("minimum"), std::string::npos);
  EXPECT_NE(c[0].reason.find("by 0.02"), std::string::npos) << c[0].reason;
  // Better than production always passes the tolerance.
  EXPECT_TRUE(kiln::mlops::apply_gate(gate, {{"accuracy", 0.99}}, &production)[0].passed);
  // Without production only the minimum applies.
  EXPECT_TRUE(kiln::mlops::apply_gate(gate, {{"accuracy", 0.91}}, nullptr)[0].passed);
  EXPECT_FALSE(kiln::mlops::apply_gate(gate, {{"accuracy", 0.89}}, nullptr)[0].passed);
  EXPECT_FALSE(kiln::mlops::apply_gate(gate, {{"accuracy", 0.89}}, nullptr)[0].production);
  // A NaN metric never passes.
  EXPECT_FALSE(kiln::mlops::apply_gate(gate, {{"accuracy", std::nan("")}}, nullptr)[0].passed);
}

TEST(PipelineGate, LowerIsBetterMetrics) {
  EXPECT_FALSE(kiln::mlops::metric_higher_is_better("log_loss"));
  EXPECT_FALSE(kiln::mlops::metric_higher_is_better("loss"));
  EXPECT_FALSE(kiln::mlops::metric_higher_is_better("mse"));
  EXPECT_FALSE(kiln::mlops::metric_higher_is_better("mae"));
  EXPECT_TRUE(kiln::mlops::metric_higher_is_better("accuracy"));
  EXPECT_TRUE(kiln::mlops::metric_higher_is_better("r2"));
  EXPECT_TRUE(kiln::mlops::metric_higher_is_better("f1_macro"));

  const std::map<std::string, GateRule> gate = {
      {"log_loss", {.max = 0.5, .tolerance = 0.05, .higher_is_better = false}}};
  const std::map<std::string, double> production = {{"log_loss", 0.20}};
  // 0.24 is 0.04 worse: passes; 0.30 is 0.10 worse: fails; 0.6 also exceeds the maximum.
  EXPECT_TRUE(kiln::mlops::apply_gate(gate, {{"log_loss", 0.24}}, &production)[0].passed);
  EXPECT_TRUE(kiln::mlops::apply_gate(gate, {{"log_loss", 0.05}}, &production)[0].passed);
  std::vector<GateCheck> c = kiln::mlops::apply_gate(gate, {{"log_loss", 0.30}}, &production);
  EXPECT_FALSE(c[0].passed);
  EXPECT_NE(c[0].reason.find("log_loss 0.3 is worse than production's 0.2 by 0.1"),
            std::string::npos)
      << c[0].reason;
  c = kiln::mlops::apply_gate(gate, {{"log_loss", 0.6}}, &production);
  EXPECT_NE(c[0].reason.find("log_loss 0.6 > maximum 0.5"), std::string::npos) << c[0].reason;
}

TEST(PipelineGate, EveryMetricIsCheckedAndAMissingOneIsAnError) {
  const std::map<std::string, GateRule> gate = {{"accuracy", {.min = 0.5}},
                                                {"f1_macro", {.min = 0.8}}};
  std::vector<GateCheck> c =
      kiln::mlops::apply_gate(gate, {{"accuracy", 0.7}, {"f1_macro", 0.6}}, nullptr);
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].metric, "accuracy");
  EXPECT_TRUE(c[0].passed);
  EXPECT_EQ(c[1].metric, "f1_macro");
  EXPECT_FALSE(c[1].passed);
  try {
    kiln::mlops::apply_gate(gate, {{"accuracy", 0.7}}, nullptr);
    FAIL() << "no error for a missing metric";
  } catch (const kiln::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("gate.metrics.f1_macro"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("it has: accuracy"), std::string::npos) << e.what();
  }
}

TEST(PipelineOutcome, NamesAndExitCodes) {
  EXPECT_STREQ(kiln::mlops::outcome_name(Outcome::promoted), "promoted");
  EXPECT_STREQ(kiln::mlops::outcome_name(Outcome::rejected), "rejected");
  EXPECT_STREQ(kiln::mlops::outcome_name(Outcome::skipped), "skipped");
  EXPECT_STREQ(kiln::mlops::outcome_name(Outcome::invalid_data), "invalid_data");
  EXPECT_EQ(kiln::mlops::outcome_exit_code(Outcome::promoted), 0);
  EXPECT_EQ(kiln::mlops::outcome_exit_code(Outcome::rejected), 10);
  EXPECT_EQ(kiln::mlops::outcome_exit_code(Outcome::skipped), 11);
  EXPECT_EQ(kiln::mlops::outcome_exit_code(Outcome::invalid_data), 2);
}

// ===== warm start ========================================================================

class WarmStart : public kiln_test::TempDirTest {
 protected:
  WarmStart() : TempDirTest("kiln_warm_start_test_") {}
};

/// The parameter values of a model file, by name.
std::map<std::string, std::vector<float>> parameters_of(const std::string& path) {
  kiln::LoadedGraph g = kiln::load_graph(path);
  std::map<std::string, std::vector<float>> out;
  for (const kiln::Value& v : g.graph->parameters()) {
    const kiln::Tensor& t = g.graph->tensor(v);
    out[v.name()] = std::vector<float>(t.data<float>(), t.data<float>() + t.numel());
  }
  return out;
}

TEST_F(WarmStart, StartsFromTheGivenModelsWeights) {
  write(path("a.csv"), blobs_csv(150, 1));
  write(path("b.csv"), blobs_csv(150, 2, 0.5));
  kiln::train::ModelSpec spec = kiln::train::ModelSpec::from_json(blob_spec, "blob_spec");
  kiln::train::train_from_spec(spec, path("a.csv").string(),
                               {.progress = kiln::train::Progress::none})
      .save(path("production.kiln").string());
  const auto production = parameters_of(path("production.kiln").string());
  ASSERT_EQ(production.size(), 4u);  // fc1.weight, fc1.bias, fc2.weight, fc2.bias

  // With lr 0 training leaves the weights where they start: production's with a warm
  // start, the seeded initialisation without.
  spec.training.optimizer.lr = 0;
  const kiln::train::SpecTrainResult warm = kiln::train::train_from_spec(
      spec, path("b.csv").string(),
      {.progress = kiln::train::Progress::none, .initial_model = path("production.kiln").string()});
  warm.save(path("warm.kiln").string());
  EXPECT_EQ(warm.warm_started.size(), 4u);
  EXPECT_EQ(parameters_of(path("warm.kiln").string()), production);

  kiln::train::train_from_spec(spec, path("b.csv").string(),
                               {.progress = kiln::train::Progress::none})
      .save(path("cold.kiln").string());
  const auto cold = parameters_of(path("cold.kiln").string());
  ASSERT_EQ(cold.size(), 4u);
  EXPECT_NE(cold.at("fc1.weight"), production.at("fc1.weight"));

  // A layer whose shape changed keeps its own initialisation; the others are copied.
  kiln::train::ModelSpec wider = spec;
  wider.layers[0].units = 12;
  const kiln::train::SpecTrainResult partial = kiln::train::train_from_spec(
      wider, path("b.csv").string(),
      {.progress = kiln::train::Progress::none, .initial_model = path("production.kiln").string()});
  EXPECT_EQ(partial.warm_started, std::vector<std::string>{"fc2.bias"});
}

// ===== run_pipeline ======================================================================

class Pipeline : public kiln_test::TempDirTest {
 protected:
  Pipeline() : TempDirTest("kiln_pipeline_test_") {}

  void SetUp() override {
    TempDirTest::SetUp();
    write(path("spec.json"), blob_spec);
    write(path("new/day1.csv"), blobs_csv(240, 1));
    write(path("holdout.csv"), blobs_csv(150, 99));
  }

  PipelineSpec pipeline(const std::string& extra = "") {
    const std::string text = R"({"name": "blobs", "registry": "models", "spec": "spec.json",
      "data": {"train": "new", "holdout": "holdout.csv"}, "work_dir": "ct",
      "gate": {"metrics": {"accuracy": {"min": 0.9, "tolerance": 0.02}}})" +
                             extra + "}";
    write(path("pipeline.json"), text);
    return PipelineSpec::load(path("pipeline.json").string());
  }

  kiln::registry::Registry registry() { return kiln::registry::open(path("models").string()); }
};

TEST_F(Pipeline, FirstRunPromotesAndWritesResultAndReport) {
  std::vector<std::string> steps;
  const PipelineResult r = kiln::mlops::run_pipeline(
      pipeline(),
      {.on_step = [&](const std::string& step, const std::string&) { steps.push_back(step); }});
  EXPECT_EQ(r.outcome, Outcome::promoted) << r.to_json();
  ASSERT_TRUE(r.version.has_value());
  EXPECT_EQ(*r.version, 1);
  EXPECT_FALSE(r.production.has_value());
  EXPECT_FALSE(r.already_registered);
  EXPECT_EQ(steps, (std::vector<std::string>{"trigger", "validate", "train", "evaluate", "gate",
                                             "register", "promote", "report"}));
  ASSERT_EQ(r.checks.size(), 1u);
  EXPECT_TRUE(r.checks[0].passed);
  EXPECT_GE(r.checks[0].candidate, 0.9);
  EXPECT_EQ(r.checks[0].candidate, r.candidate_metrics.at("accuracy"));

  kiln::registry::Registry reg = registry();
  const kiln::registry::Version v = reg.resolve("blobs@production");
  EXPECT_EQ(v.version, 1);
  ASSERT_EQ(v.lineage.data.size(), 1u);
  EXPECT_EQ(v.lineage.data[0].first,
            fs::absolute(path("new/day1.csv")).lexically_normal().string());
  // The data file's SHA-256, as the whole-buffer hash (tested on FIPS 180-4 vectors) gives it.
  const std::string day1 = slurp(path("new/day1.csv"));
  const kiln::internal::Sha256Digest digest = kiln::internal::sha256(std::span<const std::uint8_t>(
      reinterpret_cast<const std::uint8_t*>(day1.data()), day1.size()));
  std::string hex;
  for (std::uint8_t b : digest) {
    char two[3];
    std::snprintf(two, sizeof two, "%02x", b);
    hex += two;
  }
  EXPECT_EQ(v.lineage.data[0].second, hex);
  EXPECT_EQ(v.lineage.run_dir, r.run_dir);
  EXPECT_EQ(v.lineage.source, "kiln ct " + path("pipeline.json").string());
  EXPECT_TRUE(fs::exists(fs::path(r.run_dir) / "run.json"));

  // The holdout accuracy the gate used is the model's own on that file.
  const kiln::train::Evaluation ev =
      kiln::train::evaluate_csv(reg.verified_path("blobs:1"), path("holdout.csv").string());
  EXPECT_EQ(ev.metrics.at("accuracy"), r.candidate_metrics.at("accuracy"));

  const std::string result = slurp(path("ct/result.json"));
  EXPECT_NE(result.find("\"outcome\": \"promoted\""), std::string::npos) << result;
  const std::string html = slurp(path("ct/report.html"));
  EXPECT_NE(html.find("data-outcome=\"promoted\""), std::string::npos);
  EXPECT_NE(html.find("data-metric=\"accuracy\" data-passed=\"true\""), std::string::npos);
  EXPECT_EQ(html.find("<script src"), std::string::npos);
}

TEST_F(Pipeline, RerunRegistersNothingTwiceAndDoesNotRepromote) {
  const PipelineSpec spec = pipeline();
  const PipelineResult first = kiln::mlops::run_pipeline(spec);
  ASSERT_EQ(first.outcome, Outcome::promoted);
  const PipelineResult again = kiln::mlops::run_pipeline(spec);
  EXPECT_EQ(again.outcome, Outcome::promoted);
  EXPECT_EQ(again.version, first.version);
  EXPECT_TRUE(again.already_registered);
  EXPECT_TRUE(again.already_promoted);
  kiln::registry::Registry reg = registry();
  EXPECT_EQ(reg.versions("blobs").size(), 1u);
  // history.jsonl has one line per run.
  const std::string history = slurp(path("ct/history.jsonl"));
  EXPECT_EQ(std::count(history.begin(), history.end(), '\n'), 2) << history;
  EXPECT_NE(history.find("\"already_registered\":true"), std::string::npos) << history;
  int alias_moves = 0;
  for (const kiln::registry::Event& e : reg.events("blobs"))
    if (!e.alias.empty()) ++alias_moves;
  EXPECT_EQ(alias_moves, 1);
}

TEST_F(Pipeline, RunInterruptedAfterRegisteringIsFinishedByTheRerun) {
  // First a production version, then a warm-started candidate on more data whose run
  // stops right after registering.
  PipelineSpec spec = pipeline();
  ASSERT_EQ(kiln::mlops::run_pipeline(spec).outcome, Outcome::promoted);
  write(path("new/day2.csv"), blobs_csv(240, 2));
  spec = pipeline(R"(, "warm_start": true, "trigger": {"type": "new_data"})");
  struct Interrupted : std::runtime_error {
    using std::runtime_error::runtime_error;
  };
  EXPECT_THROW(
      kiln::mlops::run_pipeline(spec, {.on_step =
                                           [](const std::string& step, const std::string&) {
                                             if (step == "register") throw Interrupted("killed");
                                           }}),
      Interrupted);
  kiln::registry::Registry reg = registry();
  ASSERT_EQ(reg.versions("blobs").size(), 2u);
  EXPECT_EQ(reg.resolve("blobs@production").version, 1);  // not promoted yet

  // The rerun trains the same candidate (seeded, warm-started from the same v1), finds it
  // registered, and promotes it.
  const PipelineResult r = kiln::mlops::run_pipeline(spec);
  EXPECT_EQ(r.outcome, Outcome::promoted) << r.to_json();
  EXPECT_EQ(r.version, 2);
  EXPECT_EQ(r.production, 1);
  EXPECT_TRUE(r.already_registered);
  EXPECT_FALSE(r.already_promoted);
  EXPECT_EQ(reg.versions("blobs").size(), 2u);
  const kiln::registry::Version v2 = reg.resolve("blobs@production");
  EXPECT_EQ(v2.version, 2);
  EXPECT_EQ(v2.lineage.parent, 1);
  EXPECT_EQ(v2.lineage.data.size(), 2u);  // day1 and day2
  bool warm = false;
  for (const auto& [k, v] : v2.lineage.params) warm |= k == "warm_start" && v == "v1";
  EXPECT_TRUE(warm);

  // Once promoted, the data is no longer new: the next run is skipped.
  const PipelineResult third = kiln::mlops::run_pipeline(spec);
  EXPECT_EQ(third.outcome, Outcome::skipped);
  EXPECT_NE(third.trigger_reason.find("no new data"), std::string::npos) << third.trigger_reason;
  EXPECT_EQ(reg.versions("blobs").size(), 2u);
}

TEST_F(Pipeline, NewDataTriggerFiresOnlyForFilesProductionWasNotTrainedOn) {
  const PipelineSpec spec = pipeline(R"(, "trigger": {"type": "new_data"})");
  const PipelineResult first = kiln::mlops::run_pipeline(spec);
  EXPECT_EQ(first.outcome, Outcome::promoted);
  EXPECT_NE(first.trigger_reason.find("1 new data file (day1.csv)"), std::string::npos)
      << first.trigger_reason;
  const PipelineResult second = kiln::mlops::run_pipeline(spec);
  EXPECT_EQ(second.outcome, Outcome::skipped);
  EXPECT_FALSE(second.version.has_value());
  // --force runs it anyway (and finds the same candidate registered).
  const PipelineResult forced = kiln::mlops::run_pipeline(spec, {.force = true});
  EXPECT_EQ(forced.outcome, Outcome::promoted);
  EXPECT_TRUE(forced.already_registered);

  // A file without a column production needs is invalid data.
  write(path("new/day2.csv"), "x0,label\n1,a\n");
  const PipelineResult invalid = kiln::mlops::run_pipeline(spec);
  EXPECT_EQ(invalid.outcome, Outcome::invalid_data);
  ASSERT_FALSE(invalid.reasons.empty());
  EXPECT_NE(invalid.reasons[0].find("day2.csv"), std::string::npos) << invalid.reasons[0];
  EXPECT_NE(invalid.reasons[0].find("x1"), std::string::npos) << invalid.reasons[0];
  // Valid rows with the columns in another order cannot be joined to the others' text.
  write(path("new/day2.csv"), "x1,x0,label\n1,0,a\n");
  try {
    kiln::mlops::run_pipeline(spec);
    FAIL() << "no error for files with different headers";
  } catch (const kiln::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("day2.csv: row 1: its header differs"), std::string::npos)
        << e.what();
  }
}

TEST_F(Pipeline, ShuffledLabelsAreRejectedByTheGateAndNotRegistered) {
  ASSERT_EQ(kiln::mlops::run_pipeline(pipeline()).outcome, Outcome::promoted);
  fs::remove(path("new/day1.csv"));
  write(path("new/shuffled.csv"), blobs_csv(240, 3, 0, true));
  const PipelineResult r = kiln::mlops::run_pipeline(pipeline());
  EXPECT_EQ(r.outcome, Outcome::rejected);
  EXPECT_FALSE(r.version.has_value());
  ASSERT_FALSE(r.reasons.empty());
  EXPECT_NE(r.reasons[0].find("< minimum 0.9"), std::string::npos) << r.reasons[0];
  EXPECT_NE(r.reasons[0].find("worse than production's"), std::string::npos) << r.reasons[0];
  EXPECT_LT(r.candidate_metrics.at("accuracy"), 0.6);
  EXPECT_GE(r.production_metrics.at("accuracy"), 0.9);
  kiln::registry::Registry reg = registry();
  EXPECT_EQ(reg.versions("blobs").size(), 1u);
  EXPECT_EQ(reg.resolve("blobs@production").version, 1);
  EXPECT_TRUE(fs::exists(r.candidate_path));  // kept for inspection
  const std::string html = slurp(path("ct/report.html"));
  EXPECT_NE(html.find("data-outcome=\"rejected\""), std::string::npos);
  EXPECT_NE(html.find("data-passed=\"false\""), std::string::npos);
}

TEST_F(Pipeline, DataThatDoesNotFitProductionIsInvalid) {
  ASSERT_EQ(kiln::mlops::run_pipeline(pipeline()).outcome, Outcome::promoted);
  // A value that is not a number (nor UTF-8: the reasons quote it, result.json still writes).
  write(path("new/day2.csv"), "x0,x1,label\n1,2,a\n3,oops\xff,b\n");
  const PipelineResult r = kiln::mlops::run_pipeline(pipeline());
  EXPECT_NE(slurp(path("ct/result.json")).find("\"outcome\": \"invalid_data\""), std::string::npos);
  EXPECT_EQ(r.outcome, Outcome::invalid_data);
  ASSERT_FALSE(r.reasons.empty());
  EXPECT_NE(r.reasons[0].find("day2.csv"), std::string::npos) << r.reasons[0];
  EXPECT_NE(r.reasons[0].find("x1"), std::string::npos) << r.reasons[0];
  EXPECT_NE(r.reasons[0].find("oops\xff"), std::string::npos) << r.reasons[0];
  EXPECT_EQ(registry().versions("blobs").size(), 1u);
}

TEST_F(Pipeline, DriftSnapshotTriggersOnlyWhenItIsOfProductionAndDrifted) {
  ASSERT_EQ(kiln::mlops::run_pipeline(pipeline()).outcome, Outcome::promoted);
  kiln::registry::Registry reg = registry();
  const kiln::infer::Model model = reg.load("blobs@production", {.apply_preprocessing = true});

  // Snapshots of the production model on data like its own, and on data moved by +3.
  auto snapshot = [&](const std::string& csv, const std::string& out) {
    kiln::monitor::Monitor monitor(model, {.sample_every = 1});  // every row
    kiln::data::Dataset d = kiln::train::read_csv_for_model(reg.verified_path("blobs@production"),
                                                            csv, kiln::data::TargetColumn::ignore);
    monitor.run(model, {{"x", d["features"]}});
    monitor.write_snapshot(out);
  };
  write(path("clean.csv"), blobs_csv(300, 5));
  write(path("shifted.csv"), blobs_csv(300, 6, 3.0));
  snapshot(path("clean.csv").string(), path("clean_snapshot.json").string());
  snapshot(path("shifted.csv").string(), path("drift.json").string());

  PipelineSpec quiet =
      pipeline(R"(, "trigger": {"type": "drift", "snapshot": "clean_snapshot.json"})");
  const PipelineResult skipped = kiln::mlops::run_pipeline(quiet);
  EXPECT_EQ(skipped.outcome, Outcome::skipped);
  EXPECT_NE(skipped.trigger_reason.find("no drift"), std::string::npos) << skipped.trigger_reason;

  fs::remove(path("new/day1.csv"));
  write(path("new/shifted.csv"), blobs_csv(240, 7, 3.0));
  write(path("holdout.csv"), blobs_csv(150, 8, 3.0));
  PipelineSpec drift = pipeline(R"(, "trigger": {"type": "drift", "snapshot": "drift.json"})");
  const PipelineResult r = kiln::mlops::run_pipeline(drift);
  EXPECT_EQ(r.outcome, Outcome::promoted) << r.to_json();
  EXPECT_NE(r.trigger_reason.find("drift detected"), std::string::npos) << r.trigger_reason;
  EXPECT_EQ(r.version, 2);
  EXPECT_NE(slurp(path("ct/report.html")).find("Drift snapshot"), std::string::npos);

  // The snapshot was of v1, which v2 replaced: a rerun does nothing.
  const PipelineResult stale = kiln::mlops::run_pipeline(drift);
  EXPECT_EQ(stale.outcome, Outcome::skipped);
  EXPECT_NE(stale.trigger_reason.find("already replaced"), std::string::npos)
      << stale.trigger_reason;
  EXPECT_EQ(reg.versions("blobs").size(), 2u);
}

TEST_F(Pipeline, DecayAlarmTriggersRetraining) {
  ASSERT_EQ(kiln::mlops::run_pipeline(pipeline()).outcome, Outcome::promoted);
  kiln::registry::Registry reg = registry();
  const kiln::infer::Model model = reg.load("blobs@production", {.apply_preprocessing = true});
  // Labels that arrived later: 300 predictions all right, then 300 of which a third are.
  std::vector<std::int64_t> labels, right, wrong;
  for (int i = 0; i < 300; ++i) {
    labels.push_back(i % 3);
    right.push_back(i % 3);
    wrong.push_back(0);
  }
  kiln::monitor::Monitor good(model), bad(model);
  good.observe_labels(right, labels);
  bad.observe_labels(wrong, labels);
  good.write_snapshot(path("good.json").string());
  bad.write_snapshot(path("decayed.json").string());
  ASSERT_FALSE(good.report().labels.decayed);
  ASSERT_TRUE(bad.report().labels.decayed);

  const PipelineResult quiet = kiln::mlops::run_pipeline(
      pipeline(R"(, "trigger": {"type": "decay", "snapshot": "good.json"})"));
  EXPECT_EQ(quiet.outcome, Outcome::skipped);
  EXPECT_NE(quiet.trigger_reason.find("no decay alarm: live accuracy 1"), std::string::npos)
      << quiet.trigger_reason;

  write(path("new/day2.csv"), blobs_csv(240, 2));
  const PipelineResult r = kiln::mlops::run_pipeline(
      pipeline(R"(, "trigger": {"type": "decay", "snapshot": "decayed.json"})"));
  EXPECT_EQ(r.outcome, Outcome::promoted) << r.to_json();
  EXPECT_NE(r.trigger_reason.find("decay alarm: live accuracy 0.3333"), std::string::npos)
      << r.trigger_reason;
  EXPECT_EQ(r.version, 2);
  EXPECT_EQ(reg.resolve("blobs@production").version, 2);
}

TEST_F(Pipeline, TwoRunsAtOnceTakeTurns) {
  // A scheduler starting the pipeline again while it runs: the second run waits for the
  // first (a lock in the work folder), then finds its candidate registered and promoted.
  const PipelineSpec spec = pipeline();
  PipelineResult a, b;
  std::thread other([&] { b = kiln::mlops::run_pipeline(spec); });
  a = kiln::mlops::run_pipeline(spec);
  other.join();
  EXPECT_EQ(a.outcome, Outcome::promoted);
  EXPECT_EQ(b.outcome, Outcome::promoted);
  EXPECT_EQ(a.version, 1);
  EXPECT_EQ(b.version, 1);
  EXPECT_NE(a.already_registered, b.already_registered);  // exactly one registered it
  EXPECT_NE(a.already_promoted, b.already_promoted);      // exactly one promoted it
  kiln::registry::Registry reg = registry();
  EXPECT_EQ(reg.versions("blobs").size(), 1u);
  int alias_moves = 0;
  for (const kiln::registry::Event& e : reg.events("blobs"))
    if (!e.alias.empty()) ++alias_moves;
  EXPECT_EQ(alias_moves, 1);
}

}  // namespace
