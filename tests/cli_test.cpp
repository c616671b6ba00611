// The kiln command, run as a user would (the built binary, KILN_CLI): train / eval /
// predict / inspect on iris, string and image-path CSV files, --json output and exit codes.
//
// The iris test set: the test writes every 5th row of data/iris.csv (10 per species) to
// iris_test.csv and the rest to iris_train.csv, trains with --test-data iris_test.csv and
// checks that train's test_accuracy, eval's accuracy and predict's output agree on it. A
// second case trains on all of iris.csv with the spec's own seeded, stratified 20% split.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <random>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>

#include "kiln/graph/graph.hpp"
#include "kiln/io/model_file.hpp"
#include "kiln/ops.hpp"
#include "tests/support/cli_test_support.hpp"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

using kiln_test::CliResult;
using kiln_test::lines;
using kiln_test::slurp;
using kiln_test::write;

class Cli : public kiln_test::CliTest {
 protected:
  Cli() : CliTest("kiln_cli_test_") {}
};

std::string spec_path(const std::string& name) {
  return std::string(KILN_SOURCE_DIR) + "/examples/specs/" + name;
}

// Writes iris_train.csv (4 of 5 rows) and iris_test.csv (every 5th row).
void split_iris(const fs::path& train, const fs::path& test) {
  const std::vector<std::string> rows = lines(slurp(std::string(KILN_DATASETS_DIR) + "/iris.csv"));
  std::string a = rows[0] + "\n", b = rows[0] + "\n";
  for (std::size_t i = 1; i < rows.size(); ++i) ((i - 1) % 5 == 0 ? b : a) += rows[i] + "\n";
  write(train, a);
  write(test, b);
}

TEST_F(Cli, IrisTrainEvalAndPredictAgreeOnAHeldOutFile) {
  split_iris(path("train.csv"), path("test.csv"));
  const std::string model = path("iris.kiln").string();
  const json t = kiln_json("train " + spec_path("iris.json") + " --data " +
                           path("train.csv").string() + " --test-data " +
                           path("test.csv").string() + " --out " + model + " --json --quiet");
  EXPECT_EQ(t["train_rows"], 120);
  EXPECT_EQ(t["test_rows"], 30);
  EXPECT_EQ(t["epochs"], 50);
  const double acc = t["test"]["test_accuracy"];
  EXPECT_GE(acc, 0.93);
  EXPECT_LT(t["history"].back()["loss"].get<double>(), t["history"][0]["loss"].get<double>());

  const json e = kiln_json("eval " + model + " --data " + path("test.csv").string() + " --json");
  EXPECT_EQ(e["rows"], 30);
  EXPECT_EQ(e["task"], "classification");
  EXPECT_DOUBLE_EQ(e["metrics"]["accuracy"].get<double>(), acc);
  std::int64_t diagonal = 0, total = 0;
  for (std::size_t i = 0; i < 3; ++i)
    for (std::size_t j = 0; j < 3; ++j) {
      total += e["confusion_matrix"][i][j].get<std::int64_t>();
      if (i == j) diagonal += e["confusion_matrix"][i][j].get<std::int64_t>();
    }
  EXPECT_EQ(total, 30);
  EXPECT_DOUBLE_EQ(static_cast<double>(diagonal) / 30.0, acc);

  const CliResult p = kiln("predict " + model + " --data " + path("test.csv").string() +
                           " --probabilities --out " + path("pred.csv").string());
  ASSERT_EQ(p.rc, 0) << p.err;
  const std::vector<std::string> pred = lines(slurp(path("pred.csv")));
  const std::vector<std::string> truth = lines(slurp(path("test.csv")));
  ASSERT_EQ(pred.size(), 31u);
  EXPECT_EQ(pred[0], "species,p_0,p_1,p_2");
  int right = 0;
  for (std::size_t i = 1; i < pred.size(); ++i) {
    const std::string cls = pred[i].substr(0, pred[i].find(','));
    const std::string want = truth[i].substr(truth[i].rfind(',') + 1);
    right += cls == want;
    // The probabilities sum to 1.
    double sum = 0;
    std::istringstream fields(pred[i].substr(pred[i].find(',') + 1));
    for (std::string f; std::getline(fields, f, ',');) sum += std::stod(f);
    EXPECT_NEAR(sum, 1.0, 1e-5);
  }
  EXPECT_DOUBLE_EQ(right / 30.0, acc);

  // inspect shows the model.
  const CliResult text = kiln("inspect " + model);
  ASSERT_EQ(text.rc, 0) << text.err;
  for (const char* want :
       {"features  [batch, 4] f32", "probs  [batch, 3] f32", "fc1 (Dense)", "[batch, 16]",
        "Total params: 131", "Labels (3): 0=0, 1=1, 2=2", "test_accuracy",
        "\"type\": \"classification\"", "kiln.spec", "kiln.data", "content hash: "})
    EXPECT_NE(text.out.find(want), std::string::npos) << want << "\n" << text.out;
  const json i = kiln_json("inspect " + model + " --json");
  EXPECT_EQ(i["inputs"][0]["shape"], json::array({"batch", 4}));
  EXPECT_EQ(i["outputs"][0]["name"], "probs");
  EXPECT_EQ(i["params"]["total"], 4 * 16 + 16 + 16 * 3 + 3);
  EXPECT_EQ(i["labels"], json::array({"0", "1", "2"}));
  EXPECT_EQ(i["spec"]["name"], "iris");
  EXPECT_EQ(i["spec"]["task"]["target"], "species");
  EXPECT_EQ(i["content_hash"].get<std::string>().size(), 64u);
  EXPECT_EQ(i["preprocessing"][0]["input"], "features");
  EXPECT_EQ(i["preprocessing"][0]["mean"].size(), 4u);
  EXPECT_DOUBLE_EQ(i["metrics"]["test_accuracy"].get<double>(), acc);
  EXPECT_FALSE(i["data"].is_null());
}

TEST_F(Cli, IrisReachesTheTargetOnTheSpecsOwnSplit) {
  // The target comes from the spec (task.target); the test set is training.test_split.
  const json t =
      kiln_json("train " + spec_path("iris.json") + " --data " + std::string(KILN_DATASETS_DIR) +
                "/iris.csv --out " + path("m.kiln").string() + " --json --quiet");
  EXPECT_EQ(t["test_rows"], 30);
  EXPECT_GE(t["test"]["test_accuracy"].get<double>(), 0.93);
}

// Rows of (color, size, label): label is "yes" for red or size > 5.
std::string string_csv(int rows, std::uint32_t seed) {
  std::mt19937 rng(seed);
  const std::array<const char*, 3> colors = {"red", "green", "blue"};
  std::string csv = "color,size,label\n";
  for (int i = 0; i < rows; ++i) {
    const std::string color = colors[rng() % 3];
    const double size = static_cast<double>(rng() % 1000) / 100.0;
    csv += color + "," + std::to_string(size) + "," +
           (color == "red" || size > 5.0 ? "yes" : "no") + "\n";
  }
  return csv;
}

TEST_F(Cli, StringTargetAndFeatureTrainAndPredictNames) {
  write(path("train.csv"), string_csv(300, 1));
  write(path("new.csv"), string_csv(100, 2));
  write(path("spec.json"), R"({"layers": [{"type": "dense", "units": 16, "activation": "relu"},
                                           {"type": "dense", "units": "auto"}],
                               "task": {"type": "binary"},
                               "training": {"optimizer": {"name": "adam", "lr": 0.02},
                                            "epochs": 60, "batch_size": 16, "seed": 3}})");
  const json t =
      kiln_json("train " + path("spec.json").string() + " --data " + path("train.csv").string() +
                " --target label --out " + path("m.kiln").string() + " --json --quiet");
  EXPECT_EQ(t["labels"], json::array({"no", "yes"}));
  EXPECT_GE(t["test"]["test_accuracy"].get<double>(), 0.9);
  // predict on a file without the target: names come back.
  std::string features;
  for (const std::string& l : lines(slurp(path("new.csv"))))
    features += l.substr(0, l.rfind(',')) + "\n";
  write(path("features.csv"), features);
  const CliResult p =
      kiln("predict " + path("m.kiln").string() + " --data " + path("features.csv").string());
  ASSERT_EQ(p.rc, 0) << p.err;
  const std::vector<std::string> pred = lines(p.out), truth = lines(slurp(path("new.csv")));
  ASSERT_EQ(pred.size(), 101u);
  EXPECT_EQ(pred[0], "label");
  int right = 0;
  for (std::size_t i = 1; i < pred.size(); ++i) {
    EXPECT_TRUE(pred[i] == "yes" || pred[i] == "no") << pred[i];
    right += pred[i] == truth[i].substr(truth[i].rfind(',') + 1);
  }
  EXPECT_GE(right, 90);
  // An unknown category is a data error naming the value.
  write(path("odd.csv"), "color,size\npurple,1.0\n");
  const CliResult bad =
      kiln("predict " + path("m.kiln").string() + " --data " + path("odd.csv").string());
  EXPECT_EQ(bad.rc, 2) << bad.err;
  EXPECT_NE(bad.err.find("purple"), std::string::npos) << bad.err;
}

TEST_F(Cli, ImagePathCsvTrains) {
  // 48 grey 8x8 PNGs: horizontal or vertical bars at random offsets, with noise.
  std::mt19937 rng(5);
  std::string csv = "image,kind\n";
  fs::create_directories(path("img"));
  for (int i = 0; i < 48; ++i) {
    const bool horizontal = i % 2 == 0;
    const int offset = static_cast<int>(rng() % 2);
    std::array<unsigned char, 64> px{};
    for (int y = 0; y < 8; ++y)
      for (int x = 0; x < 8; ++x) {
        const bool on = ((horizontal ? y : x) + offset) % 2 == 0;
        px[static_cast<std::size_t>(y * 8 + x)] =
            static_cast<unsigned char>((on ? 200 : 30) + static_cast<int>(rng() % 40));
      }
    const std::string name = "img/" + std::to_string(i) + ".png";
    ASSERT_NE(stbi_write_png(path(name).string().c_str(), 8, 8, 1, px.data(), 8), 0);
    csv += name + "," + (horizontal ? "horizontal" : "vertical") + "\n";
  }
  write(path("images.csv"), csv);
  write(path("spec.json"), R"({
    "inputs": [{"name": "image", "shape": ["auto", "auto", "auto"]}],
    "layers": [{"type": "conv2d", "filters": 4, "kernel": 3, "padding": 1, "activation": "relu"},
               {"type": "max_pool2d", "kernel": 2},
               {"type": "flatten"},
               {"type": "dense", "units": "auto"}],
    "task": {"target": "kind"},
    "preprocessing": {"scaling": "none"},
    "training": {"optimizer": {"name": "adam", "lr": 0.02}, "epochs": 40, "batch_size": 8,
                 "seed": 1, "test_split": 0.25}})");
  const json t =
      kiln_json("train " + path("spec.json").string() + " --data " + path("images.csv").string() +
                " --out " + path("m.kiln").string() + " --json --quiet");
  EXPECT_EQ(t["test_rows"], 12);
  EXPECT_GE(t["test"]["test_accuracy"].get<double>(), 0.9);
  const json i = kiln_json("inspect " + path("m.kiln").string() + " --json");
  EXPECT_EQ(i["inputs"][0]["shape"], json::array({"batch", 1, 8, 8}));
  EXPECT_EQ(i["labels"], json::array({"horizontal", "vertical"}));
}

TEST_F(Cli, ExitCodesAndErrorMessages) {
  const std::string iris = std::string(KILN_DATASETS_DIR) + "/iris.csv";
  // Usage errors: 1.
  CliResult r = kiln("");
  EXPECT_EQ(r.rc, 1);
  EXPECT_EQ(r.err.rfind("kiln: ", 0), 0u) << r.err;
  EXPECT_EQ(kiln("train " + spec_path("iris.json") + " --data " + iris).rc, 1);  // no --out
  EXPECT_EQ(kiln("inspect a.kiln --frobnicate").rc, 1);
  EXPECT_EQ(kiln("fly").rc, 1);
  // --help and --version: 0, with the exit codes and examples documented.
  r = kiln("--help");
  EXPECT_EQ(r.rc, 0);
  EXPECT_NE(r.out.find("Exit codes:"), std::string::npos);
  EXPECT_NE(r.out.find("kiln train examples/specs/iris.json"), std::string::npos);
  r = kiln("train --help");
  EXPECT_EQ(r.rc, 0);
  EXPECT_NE(r.out.find("--checkpoint-dir"), std::string::npos);
  r = kiln("--version");
  EXPECT_EQ(r.rc, 0);
  EXPECT_EQ(r.out.rfind("kiln ", 0), 0u);

  // Data errors: 2, naming the file, row and column.
  write(path("ragged.csv"), "a,b,y\n1,2,0\n3,4\n5,6,1\n");
  write(path("spec.json"), R"({"layers": [{"type": "dense", "units": "auto"}]})");
  r = kiln("train " + path("spec.json").string() + " --data " + path("ragged.csv").string() +
           " --target y --out " + path("m.kiln").string());
  EXPECT_EQ(r.rc, 2) << r.err;
  EXPECT_NE(r.err.find("ragged.csv"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("row 3"), std::string::npos) << r.err;
  r = kiln("train " + path("spec.json").string() + " --data " + iris + " --target nope --out " +
           path("m.kiln").string());
  EXPECT_EQ(r.rc, 2) << r.err;
  EXPECT_NE(r.err.find("nope"), std::string::npos) << r.err;

  // Model / format errors: 3.
  ASSERT_EQ(kiln("train " + spec_path("iris.json") + " --data " + iris + " --out " +
                 path("m.kiln").string() + " --epochs 2 --quiet")
                .rc,
            0);
  std::string bytes = slurp(path("m.kiln"));
  bytes[bytes.size() / 2] ^= 0x55;
  write(path("corrupt.kiln"), bytes);
  r = kiln("inspect " + path("corrupt.kiln").string());
  EXPECT_EQ(r.rc, 3) << r.err;
  EXPECT_NE(r.err.find("corrupt.kiln"), std::string::npos) << r.err;
  EXPECT_EQ(kiln("eval " + path("corrupt.kiln").string() + " --data " + iris).rc, 3);
  // A bad spec: 3, naming the JSON path; unknown keys too.
  write(path("bad.json"), R"({"layers": [{"type": "dense", "units": 4},
                                          {"type": "dense", "units": -3}]})");
  r = kiln("train " + path("bad.json").string() + " --data " + iris + " --target species --out " +
           path("x.kiln").string());
  EXPECT_EQ(r.rc, 3);
  EXPECT_NE(r.err.find("bad.json: layers[1].units: expected a positive integer"), std::string::npos)
      << r.err;
  write(path("typo.json"), R"({"layers": [{"type": "dense", "units": "auto"}],
                               "training": {"epoch": 5}})");
  r = kiln("train " + path("typo.json").string() + " --data " + iris + " --target species --out " +
           path("x.kiln").string());
  EXPECT_EQ(r.rc, 3);
  EXPECT_NE(r.err.find("typo.json: training.epoch: unknown key"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(path("x.kiln")));

  // Missing files: 4.
  r = kiln("inspect " + path("missing.kiln").string());
  EXPECT_EQ(r.rc, 4);
  EXPECT_NE(r.err.find("missing.kiln"), std::string::npos) << r.err;
  EXPECT_EQ(kiln("eval " + path("m.kiln").string() + " --data " + path("missing.csv").string()).rc,
            4);
  EXPECT_EQ(kiln("train " + path("missing.json").string() + " --data " + iris + " --out " +
                 path("x.kiln").string())
                .rc,
            4);
}

TEST_F(Cli, StopAndResumeFromCheckpointsEqualsOneRun) {
  split_iris(path("train.csv"), path("test.csv"));
  const std::string common = "train " + spec_path("iris.json") + " --data " +
                             path("train.csv").string() + " --test-data " +
                             path("test.csv").string() + " --quiet --json";
  const json whole = kiln_json(common + " --out " + path("whole.kiln").string() + " --epochs 30");
  // 12 epochs with checkpoints, then the same command with --resume and 30 epochs.
  kiln_json(common + " --out " + path("part.kiln").string() + " --epochs 12 --checkpoint-dir " +
            path("run").string());
  EXPECT_TRUE(fs::exists(path("run")));
  const json resumed =
      kiln_json(common + " --out " + path("resumed.kiln").string() +
                " --epochs 30 --checkpoint-dir " + path("run").string() + " --resume");
  EXPECT_EQ(resumed["history"], whole["history"]);
  EXPECT_EQ(resumed["test"], whole["test"]);
  const json a = kiln_json("inspect " + path("whole.kiln").string() + " --json");
  const json b = kiln_json("inspect " + path("resumed.kiln").string() + " --json");
  EXPECT_EQ(a["content_hash"], b["content_hash"]);
}

TEST_F(Cli, SpecSchedulesSetTheLearningRateOfEachEpoch) {
  const double pi = 3.14159265358979323846;
  const std::vector<std::pair<std::string, std::vector<double>>> cases = {
      {R"({"type": "warmup", "warmup_epochs": 2})", {0.01, 0.02, 0.03, 0.03}},
      {R"({"type": "step", "step_size": 2, "gamma": 0.5})", {0.03, 0.03, 0.015, 0.015}},
      {R"({"type": "cosine"})",
       {0.03, 0.015 * (1 + std::cos(pi / 4)), 0.015, 0.015 * (1 + std::cos(3 * pi / 4))}},
  };
  for (const auto& [schedule, lrs] : cases) {
    write(path("s.json"), R"({"layers": [{"type": "dense", "units": "auto"}],
        "training": {"optimizer": {"name": "sgd", "lr": 0.03}, "epochs": 4, "lr_schedule": )" +
                              schedule + "}}");
    const json t = kiln_json("train " + path("s.json").string() + " --data " +
                             std::string(KILN_DATASETS_DIR) + "/iris.csv --target species --out " +
                             path("s.kiln").string() + " --json --quiet");
    ASSERT_EQ(t["history"].size(), 4u);
    for (std::size_t e = 0; e < 4; ++e)
      EXPECT_NEAR(t["history"][e]["lr"].get<double>(), lrs[e], 1e-9) << schedule << " epoch " << e;
  }
}

TEST_F(Cli, NonFiniteLossExitsWithFive) {
  // A learning rate of 1e6 with SGD on unscaled data diverges to inf/NaN.
  write(path("spec.json"), R"({"layers": [{"type": "dense", "units": "auto"}],
                               "task": {"type": "regression"},
                               "preprocessing": {"scaling": "none"},
                               "training": {"optimizer": {"name": "sgd", "lr": 1000000},
                                            "epochs": 50, "test_split": 0}})");
  const CliResult r =
      kiln("train " + path("spec.json").string() + " --data " + std::string(KILN_DATASETS_DIR) +
           "/diabetes.csv --target progression --out " + path("m.kiln").string() + " --quiet");
  EXPECT_EQ(r.rc, 5) << r.err;
  EXPECT_EQ(r.err.rfind("kiln: training failed: ", 0), 0u) << r.err;
  EXPECT_FALSE(fs::exists(path("m.kiln")));
}

}  // namespace

// --distributed started without mpirun: a kiln with MPI trains as one rank and says so
// (tests/cli_distributed_test.cpp runs it under mpiexec); a kiln without MPI refuses the
// flag with a usage error that says why.
TEST_F(Cli, DistributedWithoutMpirun) {
  const std::string iris = std::string(KILN_DATASETS_DIR) + "/iris.csv";
  const CliResult r = kiln("train " + spec_path("iris.json") + " --data " + iris +
                           " --target species --out m.kiln --epochs 1 --no-record --distributed");
#if KILN_CLI_HAS_MPI
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.err.find("kiln: --distributed: not started by mpirun or srun; training as 1 rank"),
            std::string::npos)
      << r.err;
  EXPECT_TRUE(fs::exists(path("m.kiln")));
#else
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("kiln: --distributed: this kiln command was built without MPI"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(fs::exists(path("m.kiln")));
#endif
}

// kiln ops lists the ops of the models' graphs (no inputs or parameters), their union in Op
// order, as the KILN_OPS line of a selective build; --json adds each model's list.
TEST_F(Cli, OpsListsTheOpsOfTheModels) {
  {
    kiln::Graph g;
    kiln::Value x = g.input("x", {kiln::batch, 4});
    kiln::Value w = g.parameter("w", kiln::Tensor::full({4, 3}, 0.5));
    kiln::Value y = kiln::softmax(kiln::relu(kiln::matmul(x, w)));
    kiln::save_model(path("dense.kiln").string(), g, {.inputs = {x}, .outputs = {y}});
  }
  {
    kiln::Graph g;
    kiln::Value x = g.input("image", {kiln::batch, 1, 4, 4});
    kiln::Value w = g.parameter("w", kiln::Tensor::full({2, 1, 3, 3}, 0.25));
    kiln::Value y = kiln::max_pool2d(kiln::conv2d(x, w));
    kiln::save_model(path("conv.kiln").string(), g, {.inputs = {x}, .outputs = {y}});
  }
  const std::string dense = path("dense.kiln").string(), conv = path("conv.kiln").string();
  CliResult r = kiln("ops " + dense);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out, "matmul;relu;softmax\n");
  r = kiln("ops " + conv + " " + dense);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out, "matmul;relu;softmax;conv2d;max_pool2d\n");
  const json j = kiln_json("ops " + dense + " " + conv + " --json");
  EXPECT_EQ(j["ops"], json::array({"matmul", "relu", "softmax", "conv2d", "max_pool2d"}));
  EXPECT_EQ(j["models"][conv], json::array({"conv2d", "max_pool2d"}));
  // A missing file: exit 4, naming it; no model: a usage error.
  r = kiln("ops " + path("missing.kiln").string());
  EXPECT_EQ(r.rc, 4);
  EXPECT_NE(r.err.find("missing.kiln"), std::string::npos) << r.err;
  EXPECT_EQ(kiln("ops").rc, 1);
}
