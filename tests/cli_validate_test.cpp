// kiln validate, run as a user would (the built binary) on an iris model made by kiln train:
// exit codes 0 (clean), 7 (warnings only) and 2 (errors), the table, --json and --target;
// kiln inspect naming the model's reference profile; an image model (digits rows as 8x8
// PNGs): its per-pixel profile and unreadable / wrong-size / missing images.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>

#include "tests/support/cli_test_support.hpp"

namespace {

using json = nlohmann::json;
using kiln_test::CliResult;
using kiln_test::lines;
using kiln_test::slurp;
using kiln_test::write;

const std::string iris = std::string(KILN_DATASETS_DIR) + "/iris.csv";

class CliValidate : public kiln_test::CliTest {
 protected:
  CliValidate() : CliTest("kiln_cli_validate_test_") {}

  void SetUp() override {
    CliTest::SetUp();
    const CliResult r =
        kiln("train " + std::string(KILN_SOURCE_DIR) + "/examples/specs/iris.json --data " + iris +
             " --out iris.kiln --epochs 2 --quiet --no-record");
    ASSERT_EQ(r.rc, 0) << r.err;
  }
};

TEST_F(CliValidate, TrainingFileIsCleanExceptItsHeldOutRange) {
  // The training file itself: no error. Its held-out rows may lie outside the range of the
  // training rows the profile holds, which is a warning at most.
  const CliResult r = kiln("validate iris.kiln --data " + iris + " --target required");
  EXPECT_TRUE(r.rc == 0 || r.rc == 7) << r.out << r.err;
  EXPECT_NE(r.out.find("150 rows: 0 errors"), std::string::npos) << r.out;
}

TEST_F(CliValidate, CleanWarningsAndErrorsExitCodes) {
  write(path("clean.csv"),
        "sepal_length,sepal_width,petal_length,petal_width,species\n"
        "5.1,3.5,1.4,0.2,0\n6.3,3.3,5.0,2.0,2\n");
  const CliResult clean = kiln("validate iris.kiln --data clean.csv");
  EXPECT_EQ(clean.rc, 0) << clean.out << clean.err;
  EXPECT_NE(clean.out.find("No anomalies."), std::string::npos) << clean.out;

  // An unused column and a petal 100 cm long: warnings only.
  write(path("warn.csv"),
        "id,sepal_length,sepal_width,petal_length,petal_width\n"
        "1,5.1,3.5,100,0.2\n2,6.3,3.3,5.0,2.0\n");
  const CliResult warn = kiln("validate iris.kiln --data warn.csv --target ignore");
  EXPECT_EQ(warn.rc, 7) << warn.out << warn.err;
  EXPECT_NE(warn.out.find("0 errors, 2 warnings"), std::string::npos) << warn.out;
  EXPECT_NE(warn.out.find("extra_column"), std::string::npos) << warn.out;
  EXPECT_NE(warn.out.find("out_of_range"), std::string::npos) << warn.out;
  EXPECT_NE(warn.out.find("2: '100'"), std::string::npos) << warn.out;

  // A species (class index) the model does not know and a missing value: errors.
  write(path("bad.csv"),
        "sepal_length,sepal_width,petal_length,petal_width,species\n"
        "5.1,3.5,1.4,0.2,7\n6.3,,5.0,2.0,2\n5.0,3.0,1.4,0.2,7\n");
  const CliResult bad = kiln("validate iris.kiln --data bad.csv");
  EXPECT_EQ(bad.rc, 2) << bad.out << bad.err;
  EXPECT_NE(bad.out.find("2 errors, 0 warnings"), std::string::npos) << bad.out;
  EXPECT_NE(bad.out.find("2: '7', 4: '7'"), std::string::npos) << bad.out;

  const json j = json::parse(kiln("validate iris.kiln --data bad.csv --json").out);
  EXPECT_EQ(j["rows"], 3);
  EXPECT_EQ(j["errors"], 2);
  ASSERT_EQ(j["anomalies"].size(), 2u);
  bool unseen = false, missing = false;
  for (const json& a : j["anomalies"]) {
    if (a["kind"] == "unseen_category") {
      unseen = true;
      EXPECT_EQ(a["column"], "species");
      EXPECT_EQ(a["count"], 2);
      EXPECT_EQ(a["rows"], json::array({2, 4}));
    }
    if (a["kind"] == "missing_value") {
      missing = true;
      EXPECT_EQ(a["column"], "sepal_width");
      EXPECT_EQ(a["rows"], json::array({3}));
    }
  }
  EXPECT_TRUE(unseen && missing) << j.dump(2);
}

TEST_F(CliValidate, TargetOption) {
  write(path("x.csv"), "sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n");
  EXPECT_EQ(kiln("validate iris.kiln --data x.csv --target required").rc, 2);
  EXPECT_EQ(kiln("validate iris.kiln --data x.csv").rc, 7);  // if-present: a warning
  EXPECT_EQ(kiln("validate iris.kiln --data x.csv --target ignore").rc, 0);
  EXPECT_EQ(kiln("validate iris.kiln --data x.csv --target sometimes").rc, 1);
  EXPECT_EQ(kiln("validate iris.kiln --data absent.csv").rc, 4);
}

TEST_F(CliValidate, InspectShowsTheProfile) {
  const CliResult r = kiln("inspect iris.kiln");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("Reference profile (kiln.profile): 4 features of input 'features'"),
            std::string::npos)
      << r.out;
  const json j = kiln_json("inspect iris.kiln --json");
  EXPECT_EQ(j["profile"]["features"], 4);
  EXPECT_EQ(j["profile"]["rows"], 120);  // the spec holds out 20% of 150
  EXPECT_EQ(j["profile"]["predicted"], "classes");
  EXPECT_EQ(j["profile"]["prediction_rows"], 30);
  EXPECT_TRUE(j["profile"]["metrics"].contains("accuracy"));
}

TEST_F(CliValidate, ImageModelProfileAndImageAnomalies) {
  const std::vector<std::string> rows =
      lines(slurp(std::string(KILN_DATASETS_DIR) + "/digits.csv"));
  std::filesystem::create_directories(path("img"));
  std::string csv = "image,digit\n";
  for (std::size_t r = 1; r <= 60; ++r) {
    std::istringstream in(rows[r]);
    std::vector<unsigned char> px;
    std::string cell;
    for (int i = 0; i < 64 && std::getline(in, cell, ','); ++i)
      px.push_back(static_cast<unsigned char>(std::stoi(cell) * 255 / 16));
    std::getline(in, cell, ',');
    const std::string name = "img/" + std::to_string(r) + ".png";
    ASSERT_NE(stbi_write_png(path(name).c_str(), 8, 8, 1, px.data(), 8), 0);
    csv += name + "," + cell + "\n";
  }
  write(path("images.csv"), csv);
  write(path("spec.json"), R"({
    "inputs": [{"name": "image", "shape": ["auto", "auto", "auto"]}],
    "layers": [{"type": "flatten"}, {"type": "dense", "units": "auto"}],
    "task": {"target": "digit"},
    "preprocessing": {"scaling": "none"},
    "training": {"optimizer": {"name": "adam", "lr": 0.01}, "epochs": 1, "batch_size": 16,
                 "seed": 1, "test_split": 0.2}})");
  const CliResult t = kiln("train spec.json --data images.csv --out img.kiln --quiet --no-record");
  ASSERT_EQ(t.rc, 0) << t.err;
  // One feature per pixel ([1, 8, 8] -> 64), over the 48 training images.
  const json j = kiln_json("inspect img.kiln --json");
  EXPECT_EQ(j["profile"]["features"], 64);
  EXPECT_EQ(j["profile"]["rows"], 48);

  const std::vector<unsigned char> small(16, 0);
  ASSERT_NE(stbi_write_png(path("img/small.png").c_str(), 4, 4, 1, small.data(), 4), 0);
  write(path("img/broken.png"), "not a png");
  write(path("new.csv"),
        "image,digit\nimg/1.png,0\nimg/broken.png,1\nimg/small.png,2\n,3\nimg/absent.png,4\n");
  const json v = json::parse(kiln("validate img.kiln --data new.csv --json").out);
  EXPECT_EQ(v["rows"], 5);
  EXPECT_EQ(v["errors"], 3) << v.dump(2);
  auto rows_of = [&](const char* kind) {
    for (const json& a : v["anomalies"])
      if (a["kind"] == kind && a["column"] == "image") return a["rows"];
    return json();
  };
  EXPECT_EQ(rows_of("unreadable"), json::array({3, 6})) << v.dump(2);
  EXPECT_EQ(rows_of("wrong_shape"), json::array({4})) << v.dump(2);
  EXPECT_EQ(rows_of("missing_value"), json::array({5})) << v.dump(2);
  EXPECT_EQ(kiln("validate img.kiln --data new.csv").rc, 2);
}

// Inputs above kiln::train::max_profile_features (4096) elements get no profile: 65x65 grey.
TEST_F(CliValidate, LargeImagesGetNoProfile) {
  std::filesystem::create_directories(path("big"));
  std::string csv = "image,label\n";
  std::vector<unsigned char> px(65 * 65);
  for (int r = 0; r < 10; ++r) {
    for (std::size_t i = 0; i < px.size(); ++i)
      px[i] = static_cast<unsigned char>((i * 7 + static_cast<std::size_t>(r) * 31) % 256);
    const std::string name = "big/" + std::to_string(r) + ".png";
    ASSERT_NE(stbi_write_png(path(name).c_str(), 65, 65, 1, px.data(), 65), 0);
    csv += name + "," + std::to_string(r % 2) + "\n";
  }
  write(path("big.csv"), csv);
  write(path("spec.json"), R"({
    "inputs": [{"name": "image", "shape": ["auto", "auto", "auto"]}],
    "layers": [{"type": "flatten"}, {"type": "dense", "units": "auto"}],
    "task": {"target": "label"},
    "preprocessing": {"scaling": "none"},
    "training": {"optimizer": {"name": "adam", "lr": 0.01}, "epochs": 1, "batch_size": 4,
                 "seed": 1, "test_split": 0.2}})");
  const CliResult t = kiln("train spec.json --data big.csv --out big.kiln --quiet --no-record");
  ASSERT_EQ(t.rc, 0) << t.err;
  const json j = kiln_json("inspect big.kiln --json");
  EXPECT_TRUE(j["profile"].is_null()) << j["profile"].dump();
  const CliResult v = kiln("validate big.kiln --data big.csv");
  EXPECT_EQ(v.rc, 0) << v.out << v.err;
  EXPECT_NE(v.out.find("no reference profile"), std::string::npos) << v.out;
}

}  // namespace
