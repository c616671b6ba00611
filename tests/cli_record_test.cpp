// `kiln train` records its run by default (docs/run-format.md): into runs/<spec>-<UTC time>
// under the working folder, or --run-dir; --no-record turns it off; a failed run is
// recorded as failed. The built binary (KILN_CLI) is run as a user would.
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/support/cli_test_support.hpp"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

using kiln_test::CliResult;
using kiln_test::slurp;

std::vector<json> jsonl(const fs::path& p) {
  std::ifstream in(p);
  std::vector<json> out;
  for (std::string l; std::getline(in, l);) out.push_back(json::parse(l));
  return out;
}

class CliRecord : public kiln_test::CliTest {
 protected:
  CliRecord() : CliTest("kiln_cli_record_") {}
};

const std::string iris = std::string(KILN_SOURCE_DIR) + "/data/iris.csv";
const std::string iris_spec = std::string(KILN_SOURCE_DIR) + "/examples/specs/iris.json";

TEST_F(CliRecord, RecordsIntoRunsByDefault) {
  const CliResult r =
      kiln("train " + iris_spec + " --data " + iris + " --out m.kiln --epochs 3 --quiet");
  ASSERT_EQ(r.rc, 0) << r.err;
  std::smatch match;
  const std::regex line("run recorded in (runs/iris-[0-9]{8}-[0-9]{6})\n");
  ASSERT_TRUE(std::regex_search(r.out, match, line)) << r.out;
  const fs::path run = dir_ / match[1].str();
  ASSERT_TRUE(fs::is_directory(run)) << run;
  const json run_json = json::parse(slurp(run / "run.json"));
  EXPECT_EQ(run_json["status"], "completed");
  EXPECT_EQ(run_json["config"]["training"]["epochs"], 3);
  EXPECT_EQ(run_json["environment"]["data_files"][0]["path"], iris);
  std::int64_t epochs = 0, steps = 0;
  for (const json& l : jsonl(run / "metrics.jsonl")) {
    epochs += l["kind"] == "epoch";
    steps += l["kind"] == "step";
  }
  EXPECT_EQ(epochs, 3);
  EXPECT_EQ(steps, 3);  // 3 * 8 steps (120 training rows in batches of 16): 0, 10, 20
  EXPECT_FALSE(jsonl(run / "layers.jsonl").empty());
  for (const char* f : {"graph.json", "data.json", "evaluation.json"})
    EXPECT_TRUE(fs::exists(run / f)) << f;
  // The run's model file is the one --out wrote.
  EXPECT_EQ(slurp(run / "model.kiln"), slurp(dir_ / "m.kiln"));
  // The test accuracy in run.json is what train printed.
  EXPECT_NE(r.out.find("test_accuracy="), std::string::npos);
  EXPECT_TRUE(run_json["final"]["test_accuracy"].is_number());
}

TEST_F(CliRecord, RunDirNoRecordAndAnExistingRun) {
  const std::string common = "train " + iris_spec + " --data " + iris + " --epochs 2 --quiet";
  CliResult r = kiln(common + " --out a.kiln --json --run-dir my/run");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["run"], "my/run");
  EXPECT_EQ(json::parse(slurp(dir_ / "my/run/run.json"))["status"], "completed");
  // The folder holds a run now: refused (an I/O error, exit code 4), the run untouched.
  r = kiln(common + " --out b.kiln --run-dir my/run");
  EXPECT_EQ(r.rc, 4) << r.err;
  EXPECT_NE(r.err.find("my/run"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "b.kiln"));
  // --run-dir and --no-record together: a usage error.
  r = kiln(common + " --out d.kiln --run-dir x --no-record");
  EXPECT_EQ(r.rc, 1) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "x"));
  // --no-record: no run folder at all.
  r = kiln(common + " --out c.kiln --json --no-record");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(json::parse(r.out)["run"].is_null());
  EXPECT_FALSE(fs::exists(dir_ / "runs"));
}

TEST_F(CliRecord, AFailedTrainingIsRecordedAsFailed) {
  std::ofstream(dir_ / "spec.json") << R"({"layers": [{"type": "dense", "units": "auto"}],
      "task": {"type": "regression"}, "preprocessing": {"scaling": "none"},
      "training": {"optimizer": {"name": "sgd", "lr": 1000000}, "epochs": 50,
                   "test_split": 0}})";
  const CliResult r =
      kiln("train spec.json --data " + std::string(KILN_SOURCE_DIR) +
           "/data/diabetes.csv --target progression --out m.kiln --quiet " + "--run-dir failed");
  EXPECT_EQ(r.rc, 5) << r.err;
  EXPECT_NE(r.err.find("kiln: run recorded in failed"), std::string::npos) << r.err;
  const json run = json::parse(slurp(dir_ / "failed/run.json"));
  EXPECT_EQ(run["status"], "failed");
  EXPECT_NE(run["error"].get<std::string>().find("Trainer.fit: step"), std::string::npos)
      << run["error"];
  EXPECT_FALSE(fs::exists(dir_ / "m.kiln"));
  EXPECT_FALSE(jsonl(dir_ / "failed/metrics.jsonl").empty());
}

}  // namespace
