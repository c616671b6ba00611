// kiln explain, run as a user would (the built binary, KILN_CLI) on models made by kiln train:
// the per-feature table and JSON of an iris row, permutation importance, the HTML heat map of
// a digits image model (digits.csv rows written as 8x8 PNGs), and the errors' exit codes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
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

namespace fs = std::filesystem;
using json = nlohmann::json;

using kiln_test::CliResult;
using kiln_test::lines;
using kiln_test::slurp;

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

const std::string iris = std::string(KILN_DATASETS_DIR) + "/iris.csv";
const std::vector<std::string> iris_features{"sepal_length", "sepal_width", "petal_length",
                                             "petal_width"};

class CliExplain : public kiln_test::CliTest {
 protected:
  CliExplain() : CliTest("kiln_cli_explain_test_") {}

  std::string train_iris() const {
    const std::string model = path("iris.kiln").string();
    const CliResult r =
        kiln("train " + std::string(KILN_SOURCE_DIR) + "/examples/specs/iris.json --data " + iris +
             " --out " + model + " --quiet --no-record");
    EXPECT_EQ(r.rc, 0) << r.err;
    return model;
  }
};

TEST_F(CliExplain, IrisRowTableAndJson) {
  const std::string model = train_iris();
  // The predicted class of row 120 (a virginica, code 2) as kiln predict reports it.
  const std::vector<std::string> predicted =
      lines(kiln("predict " + model + " --data " + iris).out);
  ASSERT_EQ(predicted.size(), 151u);

  const json j = kiln_json("explain " + model + " --data " + iris + " --row 120 --json");
  EXPECT_EQ(j["row"], 120);
  EXPECT_EQ(j["method"], "integrated_gradients");
  EXPECT_EQ(j["class"], predicted[121]);
  EXPECT_EQ(j["features"], json(iris_features));
  EXPECT_EQ(j["shape"], json::array({4}));
  EXPECT_EQ(j["steps"], 256);  // the default (commands.hpp, docs/cli.md)
  EXPECT_EQ(j["raw_values"], json::array({6.9f, 3.2f, 5.7f, 2.3f}));  // line 122 of iris.csv
  double sum = 0.0;
  for (const json& v : j["attributions"]) sum += v.get<double>();
  const double delta = j["output"].get<double>() - j["baseline_output"].get<double>();
  EXPECT_NEAR(sum, delta, 0.02 * std::abs(delta));
  EXPECT_GT(j["output"].get<double>(), 0.5);  // the predicted class's probability

  // The table: every feature once, largest |attribution| first, equal to the JSON's numbers.
  const CliResult t = kiln("explain " + model + " --data " + iris + " --row 120 --class 2");
  ASSERT_EQ(t.rc, 0) << t.err;
  const std::vector<std::string> out = lines(t.out);
  ASSERT_EQ(out.size(), 8u) << t.out;
  EXPECT_NE(out[0].find("integrated gradients of class '2'"), std::string::npos) << out[0];
  EXPECT_NE(out[1].find("baseline output"), std::string::npos) << out[1];
  EXPECT_NE(out[2].find("sum of attributions"), std::string::npos) << out[2];
  double last = 1e300;
  std::vector<std::string> seen;
  for (std::size_t i = 4; i < 8; ++i) {
    std::istringstream row(out[i]);
    std::string name;
    double value = 0, attribution = 0;
    row >> name >> value >> attribution;
    const auto k = static_cast<std::size_t>(
        std::find(iris_features.begin(), iris_features.end(), name) - iris_features.begin());
    ASSERT_LT(k, 4u) << out[i];
    seen.push_back(name);
    EXPECT_NEAR(attribution, j["attributions"][k].get<double>(),
                1e-5 * std::abs(attribution) + 1e-9);
    EXPECT_NEAR(value, j["raw_values"][k].get<double>(), 1e-5);
    EXPECT_LE(std::abs(attribution), last);
    last = std::abs(attribution);
  }
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, (std::vector<std::string>{"petal_length", "petal_width", "sepal_length",
                                            "sepal_width"}));

  // Saliency of another class: non-negative, no baseline.
  const json s = kiln_json("explain " + model + " --data " + iris +
                           " --row 0 --class 1 --method saliency --json");
  EXPECT_EQ(s["method"], "saliency");
  EXPECT_EQ(s["class_index"], 1);
  for (const json& v : s["attributions"]) EXPECT_GE(v.get<double>(), 0.0);
}

TEST_F(CliExplain, PermutationImportance) {
  const std::string model = train_iris();
  const json j =
      kiln_json("explain " + model + " --data " + iris + " --importance --repeats 3 --json");
  EXPECT_EQ(j["metric"], "accuracy");
  EXPECT_EQ(j["repeats"], 3);
  EXPECT_EQ(j["rows"], 150);
  const json e = kiln_json("eval " + model + " --data " + iris + " --json");
  EXPECT_DOUBLE_EQ(j["baseline"].get<double>(), e["metrics"]["accuracy"].get<double>());
  ASSERT_EQ(j["features"].size(), 4u);
  // Iris is told apart by its petals.
  const std::string first = j["features"][0]["name"];
  EXPECT_TRUE(first == "petal_length" || first == "petal_width") << first;
  EXPECT_GT(j["features"][0]["importance"].get<double>(), 0.1);
  for (std::size_t i = 1; i < 4; ++i)
    EXPECT_LE(j["features"][i]["importance"].get<double>(),
              j["features"][i - 1]["importance"].get<double>());
  const CliResult t =
      kiln("explain " + model + " --data " + iris + " --importance --metric log_loss");
  ASSERT_EQ(t.rc, 0) << t.err;
  EXPECT_NE(t.out.find("log_loss"), std::string::npos);
  for (const std::string& f : iris_features) EXPECT_EQ(count(t.out, f), 1u) << f;
}

// The first 240 rows of digits.csv written as 8x8 grey PNGs, a small CNN trained on them, and
// the heat map page of one image.
TEST_F(CliExplain, DigitsImageHeatMapPage) {
  const std::vector<std::string> rows =
      lines(slurp(std::string(KILN_DATASETS_DIR) + "/digits.csv"));
  fs::create_directories(path("img"));
  std::string csv = "image,digit\n";
  for (std::size_t r = 1; r <= 240; ++r) {
    std::vector<unsigned char> px;
    std::istringstream in(rows[r]);
    std::string cell;
    std::vector<int> values;
    while (std::getline(in, cell, ',')) values.push_back(std::stoi(cell));
    ASSERT_EQ(values.size(), 65u);
    for (int i = 0; i < 64; ++i)
      px.push_back(static_cast<unsigned char>(values[static_cast<std::size_t>(i)] * 255 / 16));
    const std::string name = "img/" + std::to_string(r) + ".png";
    ASSERT_NE(stbi_write_png(path(name).c_str(), 8, 8, 1, px.data(), 8), 0);
    csv += name + "," + std::to_string(values[64]) + "\n";
  }
  std::ofstream(path("digits.csv")) << csv;
  std::ofstream(path("spec.json")) << R"({
    "inputs": [{"name": "image", "shape": ["auto", "auto", "auto"]}],
    "layers": [{"type": "conv2d", "filters": 8, "kernel": 3, "padding": 1, "activation": "relu"},
               {"type": "max_pool2d", "kernel": 2},
               {"type": "flatten"},
               {"type": "dense", "units": "auto"}],
    "task": {"target": "digit"},
    "preprocessing": {"scaling": "none"},
    "training": {"optimizer": {"name": "adam", "lr": 0.01}, "epochs": 30, "batch_size": 16,
                 "seed": 1, "test_split": 0.2}})";
  const json t =
      kiln_json("train " + path("spec.json").string() + " --data " + path("digits.csv").string() +
                " --out " + path("d.kiln").string() + " --json --quiet --no-record");
  EXPECT_GE(t["test"]["test_accuracy"].get<double>(), 0.7);

  const std::string args =
      "explain " + path("d.kiln").string() + " --data " + path("digits.csv").string() + " --row 5";
  const CliResult no_out = kiln(args);  // images need --out
  EXPECT_EQ(no_out.rc, 1);
  EXPECT_NE(no_out.err.find("--out"), std::string::npos) << no_out.err;

  const json j = kiln_json(args + " --out " + path("row5.html").string() + " --json");
  EXPECT_EQ(j["shape"], json::array({1, 8, 8}));
  EXPECT_FALSE(j.contains("features"));
  EXPECT_EQ(j["html"], path("row5.html").string());
  EXPECT_EQ(j["values"].size(), 64u);
  EXPECT_LT(j["completeness_error"].get<double>(), 0.02);
  const std::string html = slurp(path("row5.html"));
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_EQ(count(html, "<svg"), 2u);
  EXPECT_EQ(count(html, "<rect"), 128u);  // 64 pixels, twice
  EXPECT_EQ(count(html, "<script"), 0u);
  EXPECT_EQ(count(html, "<link"), 0u);
  EXPECT_EQ(count(html, "http://"), 2u);  // the SVG namespace only
  // The image half is the PNG: pixel (0, 0) of data row 5 (rows[6]: rows[0] is the header).
  std::istringstream first(rows[6]);
  std::string cell;
  std::getline(first, cell, ',');
  const int v = std::stoi(cell) * 255 / 16;
  char fill[32];
  std::snprintf(fill, sizeof fill, "fill=\"#%02x%02x%02x\"", v, v, v);
  const std::size_t first_rect = html.find("<rect");
  EXPECT_EQ(html.find(fill, first_rect), html.find("fill=", first_rect)) << fill;

  const CliResult text = kiln(args + " --out " + path("again.html").string());
  EXPECT_EQ(text.rc, 0) << text.err;
  EXPECT_NE(text.out.find("wrote " + path("again.html").string()), std::string::npos) << text.out;
  EXPECT_TRUE(fs::exists(path("again.html")));
}

TEST_F(CliExplain, ErrorsAndExitCodes) {
  const std::string model = train_iris();
  // A row past the end: a data error (2) naming the file and the row count.
  CliResult r = kiln("explain " + model + " --data " + iris + " --row 150");
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("row 150"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("150 data rows"), std::string::npos) << r.err;
  // A class the model does not have: a model error (3) listing the classes.
  r = kiln("explain " + model + " --data " + iris + " --row 1 --class setosa");
  EXPECT_EQ(r.rc, 3);
  EXPECT_NE(r.err.find("unknown class 'setosa'"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("'0', '1', '2'"), std::string::npos) << r.err;
  r = kiln("explain " + model + " --data " + iris + " --row 1 --class 3");
  EXPECT_EQ(r.rc, 3);
  // Usage errors (1): neither or both of --row and --importance, a bad method or steps.
  EXPECT_EQ(kiln("explain " + model + " --data " + iris).rc, 1);
  EXPECT_EQ(kiln("explain " + model + " --data " + iris + " --row 1 --importance").rc, 1);
  EXPECT_EQ(kiln("explain " + model + " --data " + iris + " --row 1 --method shap").rc, 1);
  EXPECT_EQ(kiln("explain " + model + " --data " + iris + " --row 1 --steps 1").rc, 1);
  EXPECT_EQ(kiln("explain " + model + " --data " + iris + " --row -1").rc, 1);
  // An unknown metric (3), a missing model (4).
  EXPECT_EQ(kiln("explain " + model + " --data " + iris + " --importance --metric fun").rc, 3);
  EXPECT_EQ(kiln("explain " + path("none.kiln").string() + " --data " + iris + " --row 0").rc, 4);
  // The help documents it.
  r = kiln("explain --help");
  EXPECT_EQ(r.rc, 0);
  EXPECT_NE(r.out.find("--importance"), std::string::npos);
}

}  // namespace
