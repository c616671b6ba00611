// kiln::mlops::validate_csv against crafted files whose anomalies are known by construction:
// every kind counted with its rows and values, the training range taken from the model's
// reference profile (which train_from_spec stores), target options, broken files, and the
// JSON form read back.
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kiln/core/error.hpp"
#include "kiln/infer/model.hpp"
#include "kiln/mlops/validate.hpp"
#include "kiln/monitor/profile.hpp"
#include "kiln/train/from_spec.hpp"
#include "kiln/train/spec.hpp"
#include "tests/support/temp_dir.hpp"

namespace {

using kiln::mlops::Anomaly;
using kiln::mlops::Severity;
using kiln::mlops::ValidationReport;

void write(const std::filesystem::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary);
  out << text;
}

const char* spec_json = R"({
  "name": "tiny",
  "inputs": [{"name": "features", "shape": ["auto"]}],
  "layers": [{"type": "dense", "units": 4, "activation": "relu"},
             {"type": "dense", "units": "auto"}],
  "task": {"type": "classification"},
  "preprocessing": {"scaling": "standardize"},
  "training": {"optimizer": {"name": "adam", "lr": 0.01}, "epochs": 1, "batch_size": 8,
               "seed": 1, "test_split": 0.25, "metrics": ["accuracy"]}
})";

// 40 rows: x = 0..9 (twice each per color cycle), color red/green/blue, y = a (x < 5) or b.
std::string training_csv(const std::string& target = "y", bool numeric_target = false) {
  const char* colors[3] = {"red", "green", "blue"};
  std::string s = "x,color," + target + "\n";
  for (int i = 0; i < 40; ++i) {
    const int x = i % 10;
    s += std::to_string(x) + "," + colors[i % 3] + "," +
         (numeric_target ? std::string(x < 5 ? "0" : "1") : std::string(x < 5 ? "a" : "b")) + "\n";
  }
  return s;
}

class Validate : public kiln_test::TempDirTest {
 protected:
  Validate() : TempDirTest("kiln_mlops_validate_test_") {}

  // Trains on the 40 rows (all of them: the same file is the test file), so the profile's
  // range of x is exactly [0, 9].
  std::string train_model(const std::string& target = "y", bool numeric_target = false) {
    const std::string csv = path("train.csv").string();
    write(csv, training_csv(target, numeric_target));
    const auto spec = kiln::train::ModelSpec::from_json(spec_json, "tiny.json");
    const std::string model = path("m.kiln").string();
    kiln::train::train_from_spec(
        spec, csv, {.target = target, .test_data = csv, .progress = kiln::train::Progress::none})
        .save(model);
    return model;
  }

  ValidationReport validate(
      const std::string& model, const std::string& text,
      kiln::data::TargetColumn target = kiln::data::TargetColumn::if_present) {
    const std::string csv = path("new.csv").string();
    write(csv, text);
    return kiln::mlops::validate_csv(model, csv, {.target = target});
  }
};

const Anomaly* find(const ValidationReport& r, const std::string& kind, const std::string& column,
                    const std::string& message_part = "") {
  for (const Anomaly& a : r.anomalies)
    if (a.kind == kind && a.column == column && a.message.find(message_part) != std::string::npos)
      return &a;
  return nullptr;
}

TEST_F(Validate, TrainedModelCarriesTheProfileTheRangesComeFrom) {
  const std::string model = train_model();
  const auto m = kiln::infer::Model::load(model);
  ASSERT_TRUE(m.has_section(kiln::monitor::profile_section));
  const auto p = kiln::monitor::Profile::from_model(m);
  ASSERT_EQ(p.features.size(), 2u);  // x, and color as one categorical feature
  EXPECT_EQ(p.features[0].name, "x");
  EXPECT_EQ(p.features[0].min, 0.0);
  EXPECT_EQ(p.features[0].max, 9.0);
  EXPECT_EQ(p.features[0].count, 40u);
  EXPECT_EQ(p.features[1].name, "color");
  EXPECT_EQ(p.features[1].kind, kiln::monitor::FeatureKind::categorical);
  EXPECT_EQ(p.features[1].offset, 1);
  EXPECT_EQ(p.features[1].categories, (std::vector<std::string>{"blue", "green", "red"}));
  // 40 rows cycling red, green, blue: 14 red, 13 green, 13 blue.
  EXPECT_EQ(p.features[1].category_counts, (std::vector<std::uint64_t>{13, 13, 14}));
  EXPECT_EQ(p.predicted, kiln::monitor::PredictionKind::classes);
  EXPECT_EQ(p.labels, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(p.prediction_count, 40u);
  ASSERT_FALSE(p.metrics.empty());
  EXPECT_EQ(p.metrics[0].first, "accuracy");
}

TEST_F(Validate, CleanFileHasNoAnomalies) {
  const std::string model = train_model();
  const ValidationReport r = validate(model, "color,x,y\nred,0,a\nblue,9,b\ngreen,4.5,a\n");
  EXPECT_EQ(r.rows, 3);
  EXPECT_EQ(r.errors, 0);
  EXPECT_EQ(r.warnings, 0);
  EXPECT_TRUE(r.has_profile);
  EXPECT_TRUE(r.anomalies.empty()) << r.to_json();
}

TEST_F(Validate, CountsEveryAnomalyWithRowsAndValues) {
  const std::string model = train_model();
  // Line numbers on the right; the header is row 1.
  const ValidationReport r = validate(model,
                                      "color,x,y,note\n"   // 1
                                      "red,1,a,ok\n"       // 2 clean
                                      "green,abc,b,ok\n"   // 3 x not a number
                                      "purple,2,a,ok\n"    // 4 unseen color
                                      "blue,,a,ok\n"       // 5 x missing
                                      "red,inf,b,ok\n"     // 6 x infinite
                                      "red,12.5,b,ok\n"    // 7 x above the range
                                      "red,-1,c,ok\n"      // 8 x below, unseen class
                                      "red,3,a\n"          // 9 ragged
                                      "NA,4,b,ok\n"        // 10 color missing
                                      "red,1e39,a,ok\n"    // 11 x beyond f32
                                      "\"bl\"ue,1,a,ok\n"  // 12 bad quoting
                                      "blue,5,b,ok\n");    // 13 clean
  EXPECT_EQ(r.rows, 10);  // every line but the ragged and unparsable ones
  EXPECT_EQ(r.errors, 8) << r.to_json();
  EXPECT_EQ(r.warnings, 2) << r.to_json();

  auto expect = [&](const std::string& kind, const std::string& column, Severity severity,
                    std::uint64_t count, std::vector<std::int64_t> rows,
                    std::vector<std::string> values, const std::string& part = "") {
    const Anomaly* a = find(r, kind, column, part);
    ASSERT_NE(a, nullptr) << kind << " " << column << "\n" << r.to_json();
    EXPECT_EQ(a->severity, severity) << kind << " " << column;
    EXPECT_EQ(a->count, count) << kind << " " << column;
    EXPECT_EQ(a->rows, rows) << kind << " " << column;
    if (!values.empty()) {
      EXPECT_EQ(a->examples, values) << kind << " " << column;
    }
    EXPECT_NE(a->message.find(column), std::string::npos) << a->message;
  };
  expect("wrong_type", "x", Severity::error, 1, {3}, {"abc"});
  expect("missing_value", "x", Severity::error, 1, {5}, {""});
  expect("nonfinite", "x", Severity::error, 2, {6, 11}, {"inf", "1e39"});
  expect("out_of_range", "x", Severity::warning, 2, {7, 8}, {"12.5", "-1"});
  expect("unseen_category", "color", Severity::error, 1, {4}, {"purple"});
  expect("missing_value", "color", Severity::error, 1, {10}, {"NA"});
  expect("unseen_category", "y", Severity::error, 1, {8}, {"c"});
  expect("unreadable", "", Severity::error, 1, {9}, {}, "different number of fields");
  expect("unreadable", "", Severity::error, 1, {12}, {}, "cannot be parsed");
  expect("extra_column", "note", Severity::warning, 0, {}, {});
  // The range in the message is the profile's, the values seen outside it are named.
  EXPECT_NE(find(r, "out_of_range", "x")->message.find("[0, 9]"), std::string::npos);
  EXPECT_NE(find(r, "out_of_range", "x")->message.find("from -1 to 12.5"), std::string::npos);
  // Errors come before warnings.
  bool warned = false;
  for (const Anomaly& a : r.anomalies) {
    if (a.severity == Severity::warning) warned = true;
    EXPECT_FALSE(warned && a.severity == Severity::error) << r.to_json();
  }
}

TEST_F(Validate, ExamplesStopAtMaxButCountsDoNot) {
  const std::string model = train_model();
  std::string text = "x,color,y\n";
  for (int i = 0; i < 12; ++i) text += "oops,red,a\n";  // rows 2..13
  const std::string csv = path("new.csv").string();
  write(csv, text);
  const ValidationReport r = kiln::mlops::validate_csv(model, csv, {.max_examples = 3});
  const Anomaly* a = find(r, "wrong_type", "x");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->count, 12u);
  EXPECT_EQ(a->rows, (std::vector<std::int64_t>{2, 3, 4}));
}

TEST_F(Validate, MissingColumnsAndTheTargetOptions) {
  const std::string model = train_model();
  const std::string text = "color\nred\nblue\n";
  using kiln::data::TargetColumn;
  const ValidationReport r = validate(model, text);
  EXPECT_EQ(r.rows, 2);
  const Anomaly* x = find(r, "missing_column", "x");
  ASSERT_NE(x, nullptr);
  EXPECT_EQ(x->severity, Severity::error);
  EXPECT_EQ(x->count, 2u);
  const Anomaly* y = find(r, "missing_target", "y");
  ASSERT_NE(y, nullptr);
  EXPECT_EQ(y->severity, Severity::warning);
  EXPECT_EQ(r.errors, 1);
  EXPECT_EQ(r.warnings, 1);

  const ValidationReport required = validate(model, text, TargetColumn::required);
  ASSERT_NE(find(required, "missing_target", "y"), nullptr);
  EXPECT_EQ(find(required, "missing_target", "y")->severity, Severity::error);
  EXPECT_EQ(required.errors, 2);

  const ValidationReport ignored = validate(model, text, TargetColumn::ignore);
  EXPECT_EQ(find(ignored, "missing_target", "y"), nullptr);
  EXPECT_EQ(ignored.errors, 1);
  EXPECT_EQ(ignored.warnings, 0);
  // With the target ignored, a bad class in it is not checked, nor an extra column.
  const ValidationReport ignored_bad =
      validate(model, "x,color,y\n1,red,zzz\n", TargetColumn::ignore);
  EXPECT_TRUE(ignored_bad.anomalies.empty()) << ignored_bad.to_json();
}

TEST_F(Validate, NumericClassTargetTakesClassIndices) {
  const std::string model = train_model("label", true);
  const ValidationReport r =
      validate(model, "x,color,label\n1,red,0\n2,red,1\n3,red,2\n4,red,1.5\n5,red,-1\n6,red,x\n");
  const Anomaly* unseen = find(r, "unseen_category", "label");
  ASSERT_NE(unseen, nullptr) << r.to_json();
  EXPECT_EQ(unseen->count, 3u);
  EXPECT_EQ(unseen->rows, (std::vector<std::int64_t>{4, 5, 6}));
  const Anomaly* type = find(r, "wrong_type", "label");
  ASSERT_NE(type, nullptr);
  EXPECT_EQ(type->rows, (std::vector<std::int64_t>{7}));
  EXPECT_EQ(r.errors, 2);
  EXPECT_EQ(r.warnings, 0);
}

TEST_F(Validate, BrokenFilesAreReportedNotThrown) {
  const std::string model = train_model();
  const ValidationReport empty = validate(model, "");
  ASSERT_EQ(empty.anomalies.size(), 1u) << empty.to_json();
  EXPECT_EQ(empty.anomalies[0].kind, "unreadable");
  EXPECT_EQ(empty.errors, 1);

  const ValidationReport header_only = validate(model, "x,color,y\n");
  EXPECT_EQ(header_only.rows, 0);
  EXPECT_NE(find(header_only, "unreadable", "", "no data rows"), nullptr) << header_only.to_json();

  const ValidationReport dup = validate(model, "x,color,y,x\n1,red,a,2\n");
  EXPECT_NE(find(dup, "duplicate_column", "x"), nullptr) << dup.to_json();

  // An unclosed quote swallows the rest of the file: reported once, reading stops.
  const ValidationReport unclosed = validate(model, "x,color,y\n1,red,a\n2,\"red,a\n3,red,a\n");
  const Anomaly* a = find(unclosed, "unreadable", "", "not closed");
  ASSERT_NE(a, nullptr) << unclosed.to_json();
  EXPECT_EQ(a->rows, (std::vector<std::int64_t>{3}));
  EXPECT_EQ(unclosed.rows, 1);
}

TEST_F(Validate, BadModelOrFileThrows) {
  const std::string model = train_model();
  EXPECT_THROW(kiln::mlops::validate_csv(model, path("absent.csv").string()), kiln::IoError);
  EXPECT_THROW(kiln::mlops::validate_csv(path("absent.kiln").string(), model), kiln::IoError);
}

TEST_F(Validate, JsonHasEveryField) {
  const std::string model = train_model();
  const ValidationReport r = validate(model, "x,color,y\n1,red,a\nbad,red,a\n20,red,b\n");
  const nlohmann::json j = nlohmann::json::parse(r.to_json());
  EXPECT_EQ(j["rows"], 3);
  EXPECT_EQ(j["errors"], 1);
  EXPECT_EQ(j["warnings"], 1);
  EXPECT_EQ(j["has_profile"], true);
  EXPECT_EQ(j["model"], model);
  ASSERT_EQ(j["anomalies"].size(), 2u);
  EXPECT_EQ(j["anomalies"][0]["kind"], "wrong_type");
  EXPECT_EQ(j["anomalies"][0]["severity"], "error");
  EXPECT_EQ(j["anomalies"][0]["column"], "x");
  EXPECT_EQ(j["anomalies"][0]["count"], 1);
  EXPECT_EQ(j["anomalies"][0]["rows"], nlohmann::json::array({3}));
  EXPECT_EQ(j["anomalies"][0]["examples"], nlohmann::json::array({"bad"}));
  EXPECT_EQ(j["anomalies"][1]["kind"], "out_of_range");
  EXPECT_EQ(j["anomalies"][1]["severity"], "warning");
  EXPECT_EQ(j["anomalies"][1]["rows"], nlohmann::json::array({4}));
}

}  // namespace
