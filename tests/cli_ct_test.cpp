// kiln ct: the steps it prints, its exit codes (0 promoted, 10 rejected, 11 skipped, 2 invalid
// data, 3 a bad pipeline file, 4 a missing one, 5 a diverging candidate) and --json (the result
// object on stdout, the steps on stderr), on a small three-class data set made here.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "tests/support/blobs_csv.hpp"
#include "tests/support/cli_test_support.hpp"

namespace {

using kiln_test::CliResult;

const char* spec = R"({
  "name": "blobs",
  "inputs": [{"name": "x", "shape": [2]}],
  "layers": [{"type": "dense", "units": 8, "activation": "relu", "name": "fc1"},
             {"type": "dense", "units": "auto", "name": "fc2"}],
  "task": {"type": "classification", "target": "label"},
  "training": {"optimizer": {"name": "adam", "lr": 0.05}, "epochs": 6, "batch_size": 32,
               "seed": 1, "test_split": 0.2}
})";

using kiln_test::blobs_csv;

class CliCt : public kiln_test::CliTest {
 protected:
  CliCt() : CliTest("kiln_cli_ct_test_") {}

  void SetUp() override {
    CliTest::SetUp();
    kiln_test::write(path("spec.json"), spec);
    std::filesystem::create_directories(path("new"));
    kiln_test::write(path("new/day1.csv"), blobs_csv(240, 1));
    kiln_test::write(path("holdout.csv"), blobs_csv(150, 99));
  }

  void pipeline(const std::string& file, const std::string& trigger, const std::string& train) {
    kiln_test::write(path(file), R"({"name": "blobs", "registry": "models", "spec": "spec.json",
      "data": {"train": ")" + train + R"(", "holdout": "holdout.csv"}, "work_dir": "ct",
      "trigger": {"type": ")" + trigger +
                                     R"("},
      "gate": {"metrics": {"accuracy": {"min": 0.9, "tolerance": 0.02}}}})");
  }
};

TEST_F(CliCt, PromotesThenSkipsAndForceRunsAnyway) {
  pipeline("p.json", "new_data", "new");
  CliResult r = kiln("ct p.json");
  ASSERT_EQ(r.rc, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("trigger:  fired: 1 new data file (day1.csv)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("register: blobs v1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("promote:  blobs@production -> v1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("outcome: promoted: blobs v1 is blobs@production (exit 0)"),
            std::string::npos)
      << r.out;
  EXPECT_TRUE(std::filesystem::exists(path("ct/report.html")));

  r = kiln("ct p.json");
  EXPECT_EQ(r.rc, 11) << r.out << r.err;
  EXPECT_NE(r.out.find("not fired: no new data"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("outcome: skipped"), std::string::npos) << r.out;

  r = kiln("ct p.json --force");
  EXPECT_EQ(r.rc, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("already registered by an earlier run"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("-> v1 (already)"), std::string::npos) << r.out;
}

TEST_F(CliCt, JsonPrintsTheResultOnStdoutAndStepsOnStderr) {
  pipeline("p.json", "always", "new");
  const CliResult r = kiln("ct p.json --json");
  ASSERT_EQ(r.rc, 0) << r.out << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["outcome"], "promoted");
  EXPECT_EQ(j["exit_code"], 0);
  EXPECT_EQ(j["version"], 1);
  EXPECT_TRUE(j["production"].is_null());
  ASSERT_EQ(j["checks"].size(), 1u);
  EXPECT_EQ(j["checks"][0]["metric"], "accuracy");
  EXPECT_TRUE(j["checks"][0]["passed"]);
  EXPECT_EQ(j["checks"][0]["candidate"], j["candidate_metrics"]["accuracy"]);
  EXPECT_GE(j["candidate_metrics"]["accuracy"].get<double>(), 0.9);
  // The same object is work_dir/result.json.
  EXPECT_EQ(nlohmann::json::parse(kiln_test::slurp(path("ct/result.json"))), j);
  EXPECT_NE(r.err.find("gate:     passed"), std::string::npos) << r.err;
}

TEST_F(CliCt, RejectedCandidateExitsWith10AndSaysWhy) {
  pipeline("p.json", "always", "new");
  ASSERT_EQ(kiln("ct p.json").rc, 0);
  std::filesystem::remove(path("new/day1.csv"));
  kiln_test::write(path("new/shuffled.csv"), blobs_csv(240, 3, 0, true));
  CliResult r = kiln("ct p.json");
  EXPECT_EQ(r.rc, 10) << r.out << r.err;
  EXPECT_NE(r.out.find("outcome: rejected"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("reason: accuracy 0."), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("< minimum 0.9"), std::string::npos) << r.out;
  r = kiln("ct p.json --json");
  EXPECT_EQ(r.rc, 10);
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["outcome"], "rejected");
  EXPECT_TRUE(j["version"].is_null());
  EXPECT_EQ(j["production"], 1);
  EXPECT_FALSE(j["reasons"].empty());
}

TEST_F(CliCt, InvalidDataExitsWith2) {
  pipeline("p.json", "always", "new");
  ASSERT_EQ(kiln("ct p.json").rc, 0);
  kiln_test::write(path("new/day2.csv"), "x0,x1,label\n1,2,a\n3,,b\n");
  const CliResult r = kiln("ct p.json");
  EXPECT_EQ(r.rc, 2) << r.out << r.err;
  EXPECT_NE(r.out.find("outcome: invalid_data"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("reason: day2.csv: "), std::string::npos) << r.out;
}

TEST_F(CliCt, DivergingTrainingExitsWith5) {
  // A learning rate that makes the loss non-finite: as kiln train, exit 5, nothing registered.
  std::string diverging = spec;
  const std::string adam = R"("name": "adam", "lr": 0.05)";
  diverging.replace(diverging.find(adam), adam.size(), R"("name": "sgd", "lr": 1000000)");
  kiln_test::write(path("spec.json"), diverging);
  pipeline("p.json", "always", "new");
  const CliResult r = kiln("ct p.json");
  EXPECT_EQ(r.rc, 5) << r.out << r.err;
  EXPECT_NE(r.err.find("kiln: training failed: "), std::string::npos) << r.err;
  EXPECT_EQ(r.out.find("register:"), std::string::npos) << r.out;
}

TEST_F(CliCt, BadOrMissingPipelineFiles) {
  kiln_test::write(path("bad.json"), R"({"name": "blobs", "registry": "models",
    "spec": "spec.json", "data": {"train": "new", "holdout": "holdout.csv"},
    "gate": {"metrics": {"accuracy": {"minimum": 0.9}}}})");
  CliResult r = kiln("ct bad.json");
  EXPECT_EQ(r.rc, 3) << r.err;
  EXPECT_NE(r.err.find("kiln: bad.json: gate.metrics.accuracy.minimum: unknown key"),
            std::string::npos)
      << r.err;
  r = kiln("ct missing.json");
  EXPECT_EQ(r.rc, 4) << r.err;
  EXPECT_NE(r.err.find("missing.json"), std::string::npos) << r.err;
  r = kiln("ct");
  EXPECT_EQ(r.rc, 1) << r.err;
}

}  // namespace
