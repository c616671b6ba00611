// kiln::report explanations: integrated gradients' completeness on a trained iris model,
// saliency against central finite differences of a double-precision re-implementation,
// integrated gradients of a linear model against w * (x - baseline), permutation importance
// on synthetic data (trained, and a hand-made model whose exact importances are known) and
// the explanations.json object parsed back.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kiln/core/error.hpp"
#include "kiln/infer/model.hpp"
#include "kiln/io/load_graph.hpp"
#include "kiln/io/model_file.hpp"
#include "kiln/nn/layers.hpp"
#include "kiln/ops.hpp"
#include "kiln/report/explain.hpp"
#include "kiln/train/from_spec.hpp"
#include "tests/support/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
namespace rp = kiln::report;
using json = nlohmann::json;
using kiln::Shape;
using kiln::Tensor;

class Explain : public kiln_test::TempDirTest {
 protected:
  Explain() : TempDirTest("kiln_explain_test_") {}
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(path(name), std::ios::binary) << text;
    return path(name).string();
  }
};

const std::string iris_csv = std::string(KILN_DATASETS_DIR) + "/iris.csv";

// A trained iris classifier (standardised inputs, 4-16-3 MLP with softmax output).
std::string train_iris(const std::string& out) {
  const auto spec = kiln::train::ModelSpec::from_json(R"({
    "inputs": [{"name": "features", "shape": ["auto"]}],
    "layers": [{"type": "dense", "units": 16, "activation": "relu", "name": "fc1"},
               {"type": "dense", "units": "auto", "name": "out"}],
    "task": {"type": "classification", "target": "species"},
    "preprocessing": {"scaling": "standardize"},
    "training": {"optimizer": {"name": "adam", "lr": 0.01}, "epochs": 40, "batch_size": 16,
                 "seed": 1, "test_split": 0.2}})");
  const auto result =
      kiln::train::train_from_spec(spec, iris_csv, {.progress = kiln::train::Progress::none});
  EXPECT_GE(result.test.at("test_accuracy"), 0.9);  // it is a trained model
  result.save(out);
  return out;
}

double row_output(kiln::infer::Model& m, const Tensor& raw_row, std::int64_t k) {
  const Tensor out = m.run({{m.inputs().at(0).name, raw_row}}).at(0);
  return out.to(kiln::DType::f64).contiguous().data<double>()[k];
}

TEST_F(Explain, IntegratedGradientsAreCompleteOnATrainedModel) {
  const std::string model = train_iris(path("iris.kiln"));
  rp::Explainer ex = rp::Explainer::from_file(model);
  EXPECT_EQ(ex.input_name(), "features");
  EXPECT_EQ(ex.outputs(), 3);
  EXPECT_EQ(ex.labels(), (std::vector<std::string>{"0", "1", "2"}));  // iris.csv codes species
  EXPECT_EQ(ex.feature_names(), (std::vector<std::string>{"sepal_length", "sepal_width",
                                                          "petal_length", "petal_width"}));
  const kiln::data::Dataset d = kiln::train::read_csv_for_model(model, iris_csv);
  // An independent path to the outputs: the inference runtime with the file's preprocessing.
  kiln::infer::Model m = kiln::infer::Model::load(model, {.apply_preprocessing = true});
  const kiln::LoadedGraph lg = kiln::load_graph(model);
  ASSERT_EQ(lg.metadata.preprocessing.size(), 1u);
  const kiln::Normalization& norm = lg.metadata.preprocessing[0];
  // The zero baseline in the model-input space is the training mean in raw units.
  const Tensor raw_baseline = Tensor::from(norm.mean, Shape{1, 4});

  // The trapezoid rule's error shrinks with the steps (the ReLU kinks along the path make
  // it first order): 1% holds at the default (256 points) and beyond on these rows; 64
  // points come within 2%.
  for (std::int64_t steps :
       {rp::AttributionOptions{}.steps, std::int64_t{64}, std::int64_t{1024}}) {
    const double tolerance = steps < rp::AttributionOptions{}.steps ? 0.02 : 0.01;
    double worst = 0.0;
    for (std::int64_t row : {0, 23, 55, 77, 101, 149}) {
      const Tensor x = d["features"].rows(row, row + 1);
      for (std::int64_t k : {-1, 0, 1, 2}) {
        const rp::Attribution a = ex.integrated_gradients(x, {.target_class = k, .steps = steps});
        const std::int64_t want =
            k >= 0 ? k : ex.predict(x).argmax(1).to(kiln::DType::i64).data<std::int64_t>()[0];
        EXPECT_EQ(a.target_class, want);
        EXPECT_EQ(a.attributions.shape(), Shape{4});
        EXPECT_NEAR(a.output, row_output(m, x, want), 1e-5);
        EXPECT_NEAR(a.baseline_output, row_output(m, raw_baseline, want), 1e-5);
        // Completeness: sum of attributions = output(x) - output(baseline) within 1%.
        const double sum = a.attributions.to(kiln::DType::f64).sum();
        const double delta = a.output - a.baseline_output;
        const double err = std::abs(sum - delta) / std::max(std::abs(delta), 1e-12);
        EXPECT_LT(err, tolerance) << steps << " steps, row " << row << " class " << want << ": sum "
                                  << sum << " vs output difference " << delta;
        EXPECT_NEAR(a.completeness_error(), err, 1e-9);
        worst = std::max(worst, err);
        // The explained values are the row after the file's standardisation.
        const auto raw = x.to_vector<float>();
        const auto v = a.values.to_vector<float>();
        for (std::size_t j = 0; j < 4; ++j)
          EXPECT_NEAR(v[j], (raw[j] - norm.mean[j]) / norm.stddev[j], 1e-5);
      }
    }
    std::printf("worst completeness error over 24 (row, class) pairs, %lld steps: %.3g\n",
                static_cast<long long>(steps), worst);
  }
}

// x [batch, 3] -> tanh(x W1 + b1) W2 + b2 -> softmax: saliency against central differences
// of the same function computed in double precision from the graph's weights.
TEST_F(Explain, SaliencyEqualsFiniteDifferences) {
  kiln::Graph g;
  const kiln::Value x = g.input("x", {kiln::batch, 3});
  const kiln::Value h = kiln::nn::dense(
      g, x, 4, {.activation = kiln::nn::Activation::tanh, .name = "fc1", .seed = 7});
  const kiln::Value logits = kiln::nn::dense(g, h, 2, {.name = "fc2", .seed = 8});
  const kiln::Value probs = kiln::softmax(logits);
  auto weights = [&](const std::string& name) {
    return g.tensor(g.find(name)).to(kiln::DType::f64).contiguous().to_vector<double>();
  };
  const auto w1 = weights("fc1.weight"), b1 = weights("fc1.bias");
  const auto w2 = weights("fc2.weight"), b2 = weights("fc2.bias");
  auto forward = [&](const std::vector<double>& in, int k) {
    double hid[4], z[2];
    for (int j = 0; j < 4; ++j) {
      double s = b1[static_cast<std::size_t>(j)];
      for (int i = 0; i < 3; ++i)
        s += in[static_cast<std::size_t>(i)] * w1[static_cast<std::size_t>(i * 4 + j)];
      hid[j] = std::tanh(s);
    }
    for (int c = 0; c < 2; ++c) {
      z[c] = b2[static_cast<std::size_t>(c)];
      for (int j = 0; j < 4; ++j) z[c] += hid[j] * w2[static_cast<std::size_t>(j * 2 + c)];
    }
    const double m = std::max(z[0], z[1]);
    return std::exp(z[k] - m) / (std::exp(z[0] - m) + std::exp(z[1] - m));
  };
  rp::Explainer ex(g, x, probs);
  const std::vector<float> point{0.3f, -1.2f, 0.7f};
  const std::vector<double> xd(point.begin(), point.end());
  for (int k = 0; k < 2; ++k) {
    const rp::Attribution s = ex.saliency(Tensor::from(point, Shape{3}), {.target_class = k});
    EXPECT_EQ(s.method, "saliency");
    EXPECT_NEAR(s.output, forward(xd, k), 1e-6);
    const auto got = s.attributions.to_vector<float>();
    for (std::size_t i = 0; i < 3; ++i) {
      const double eps = 1e-5;
      std::vector<double> up = xd, down = xd;
      up[i] += eps;
      down[i] -= eps;
      const double fd = (forward(up, k) - forward(down, k)) / (2 * eps);
      EXPECT_NEAR(got[i], std::abs(fd), 1e-5 + 1e-4 * std::abs(fd))
          << "class " << k << " input " << i;
    }
  }
}

// A linear model: integrated gradients are exactly w[:, k] * (x - baseline), for any steps.
TEST_F(Explain, IntegratedGradientsOfALinearModelAreWeightsTimesDifference) {
  kiln::Graph g;
  const kiln::Value x = g.input("x", {kiln::batch, 5});
  const std::vector<float> w{0.5f,  -1.0f, 2.0f,   0.25f, -0.75f, 1.5f,  0.0f, 3.0f,
                             -2.0f, 1.0f,  0.125f, -0.5f, 4.0f,   -3.0f, 0.5f};  // [5, 3]
  const kiln::Value wv = g.parameter("w", Tensor::from(w, Shape{5, 3}));
  const kiln::Value bv = g.parameter("b", Tensor::from<float>({0.1f, -0.2f, 0.3f}, Shape{3}));
  const kiln::Value y = kiln::add(kiln::matmul(x, wv), bv);
  rp::Explainer ex(g, x, y);
  const std::vector<float> xs{1.0f, -2.0f, 0.5f, 3.0f, -1.5f};
  const std::vector<float> base{0.5f, 0.5f, -0.5f, 1.0f, 0.0f};
  for (std::int64_t k = 0; k < 3; ++k) {
    for (std::int64_t steps : {2, 7, 64}) {
      const rp::Attribution a = ex.integrated_gradients(
          Tensor::from(xs, Shape{1, 5}),
          {.target_class = k, .steps = steps, .baseline = Tensor::from(base, Shape{5})});
      const auto got = a.attributions.to_vector<float>();
      double out = 0.1 * (k == 0) - 0.2 * (k == 1) + 0.3 * (k == 2), out0 = out;
      for (std::size_t j = 0; j < 5; ++j) {
        const double wj = w[j * 3 + static_cast<std::size_t>(k)];
        EXPECT_FLOAT_EQ(got[j], static_cast<float>(wj * (xs[j] - base[j])))
            << "class " << k << " steps " << steps << " input " << j;
        out += wj * xs[j];
        out0 += wj * base[j];
      }
      EXPECT_NEAR(a.output, out, 1e-5);
      EXPECT_NEAR(a.baseline_output, out0, 1e-5);
      EXPECT_LT(a.completeness_error(), 1e-5);
    }
  }
  // The default baseline is zeros; saliency is |w[:, k]|.
  const rp::Attribution z =
      ex.integrated_gradients(Tensor::from(xs, Shape{5}), {.target_class = 1});
  const rp::Attribution s = ex.saliency(Tensor::from(xs, Shape{5}), {.target_class = 1});
  for (std::size_t j = 0; j < 5; ++j) {
    EXPECT_FLOAT_EQ(z.attributions.to_vector<float>()[j], w[j * 3 + 1] * xs[j]);
    EXPECT_FLOAT_EQ(s.attributions.to_vector<float>()[j], std::abs(w[j * 3 + 1]));
  }
  // Bad rows, classes and steps are ValueErrors naming what is wrong.
  EXPECT_THROW(ex.saliency(Tensor::zeros(Shape{4})), kiln::ValueError);
  EXPECT_THROW(ex.saliency(Tensor::zeros(Shape{2, 5})), kiln::ValueError);
  EXPECT_THROW(ex.saliency(Tensor::zeros(Shape{5}), {.target_class = 3}), kiln::ValueError);
  EXPECT_THROW(ex.integrated_gradients(Tensor::zeros(Shape{5}), {.steps = 1}), kiln::ValueError);
  EXPECT_THROW(
      ex.integrated_gradients(Tensor::zeros(Shape{5}), {.baseline = Tensor::zeros(Shape{3})}),
      kiln::ValueError);
  EXPECT_EQ(ex.class_index("2"), 2);
  try {
    ex.class_index("banana");
    ADD_FAILURE() << "no error";
  } catch (const kiln::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("banana"), std::string::npos) << e.what();
  }
}

// Synthetic rows: the target is the sign of `signal`; `noise` and the category `color`
// are independent of it.
std::string synthetic_csv(std::int64_t rows, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  const char* colors[] = {"red", "green", "blue"};
  std::string csv = "signal,noise,color,y\n";
  for (std::int64_t i = 0; i < rows; ++i) {
    const double s = normal(rng), n = normal(rng);
    csv += std::to_string(s) + "," + std::to_string(n) + "," + colors[rng() % 3] + "," +
           (s > 0 ? "pos" : "neg") + "\n";
  }
  return csv;
}

TEST_F(Explain, PermutationImportanceFindsTheOneFeatureThatMatters) {
  const std::string train = write("train.csv", synthetic_csv(400, 1));
  const std::string test = write("test.csv", synthetic_csv(300, 2));
  const auto spec = kiln::train::ModelSpec::from_json(R"({
    "layers": [{"type": "dense", "units": 8, "activation": "relu"}, {"type": "dense", "units": "auto"}],
    "task": {"type": "classification", "target": "y"},
    "preprocessing": {"scaling": "standardize"},
    "training": {"optimizer": {"name": "adam", "lr": 0.02}, "epochs": 30, "batch_size": 32,
                 "seed": 3, "test_split": 0.2}})");
  kiln::train::train_from_spec(spec, train, {.progress = kiln::train::Progress::none})
      .save(path("m.kiln"));
  const kiln::data::Dataset d =
      kiln::train::read_csv_for_model(path("m.kiln"), test, kiln::data::TargetColumn::required);
  ASSERT_EQ(d["features"].dim(1), 5);  // signal, noise, color=blue, color=green, color=red
  const rp::PermutationImportance imp =
      rp::permutation_importance(path("m.kiln"), d, {.repeats = 5, .seed = 4});
  EXPECT_EQ(imp.metric, "accuracy");
  EXPECT_EQ(imp.repeats, 5);
  EXPECT_EQ(imp.rows, 300);
  EXPECT_GE(imp.baseline, 0.95);
  // The baseline is the model's accuracy as evaluate_csv measures it.
  EXPECT_DOUBLE_EQ(imp.baseline,
                   kiln::train::evaluate_csv(path("m.kiln"), test).metrics.at("accuracy"));
  ASSERT_EQ(imp.features.size(), 3u);  // data columns: the one-hot columns of color as one
  EXPECT_EQ(imp.features[0].name, "signal");
  EXPECT_GT(imp.features[0].importance, 0.3);  // shuffling the sign costs about half the rows
  for (std::size_t i = 1; i < 3; ++i) {
    EXPECT_TRUE(imp.features[i].name == "noise" || imp.features[i].name == "color");
    EXPECT_LT(std::abs(imp.features[i].importance), 0.03) << imp.features[i].name;
  }
  // Seeded: the same seed gives the same numbers; repeats < 1 and a metric it does not know
  // are errors.
  const rp::PermutationImportance again =
      rp::permutation_importance(path("m.kiln"), d, {.repeats = 5, .seed = 4});
  EXPECT_EQ(again.features[0].importance, imp.features[0].importance);
  EXPECT_THROW(rp::permutation_importance(path("m.kiln"), d, {.repeats = 0}), kiln::ValueError);
  EXPECT_THROW(rp::permutation_importance(path("m.kiln"), d, {.metric = "fun"}), kiln::ValueError);
}

// A binary model outputs P(second class) in one column: that class is output 0, named by
// its label; the first class's name is refused. Importance scores its thresholded output.
TEST_F(Explain, BinaryModelsExplainTheProbabilityOfTheSecondClass) {
  const std::string train = write("train.csv", synthetic_csv(300, 5));
  const auto spec = kiln::train::ModelSpec::from_json(R"({
    "layers": [{"type": "dense", "units": 8, "activation": "relu"}, {"type": "dense", "units": "auto"}],
    "task": {"type": "binary", "target": "y"},
    "training": {"optimizer": {"name": "adam", "lr": 0.02}, "epochs": 30, "batch_size": 32,
                 "seed": 3, "test_split": 0.2}})");
  kiln::train::train_from_spec(spec, train, {.progress = kiln::train::Progress::none})
      .save(path("b.kiln"));
  rp::Explainer ex = rp::Explainer::from_file(path("b.kiln"));
  EXPECT_EQ(ex.outputs(), 1);
  EXPECT_EQ(ex.labels(), (std::vector<std::string>{"neg", "pos"}));
  EXPECT_EQ(ex.class_index("pos"), 0);
  EXPECT_EQ(ex.class_index("1"), 0);
  EXPECT_THROW(ex.class_index("0"), kiln::ValueError);
  EXPECT_EQ(ex.class_name(0), "pos");
  EXPECT_THROW(ex.class_index("neg"), kiln::ValueError);
  const kiln::data::Dataset d = kiln::train::read_csv_for_model(path("b.kiln"), train);
  for (std::int64_t row : {0, 1, 2}) {
    const rp::Attribution a =
        ex.integrated_gradients(d["features"].rows(row, row + 1), {.steps = 256});
    EXPECT_EQ(a.target_class, 0);
    EXPECT_LT(a.completeness_error(), 0.01) << "row " << row;
    // P(pos) rises with the signal: its attribution has the sign of the signal (the baseline is 0).
    const float signal = d["features"].rows(row, row + 1).to_vector<float>()[0];
    EXPECT_GT(a.attributions.to_vector<float>()[0] * signal, 0.0f) << "row " << row;
  }
  const rp::PermutationImportance imp =
      rp::permutation_importance(path("b.kiln"), d, {.repeats = 3});
  EXPECT_DOUBLE_EQ(imp.baseline,
                   kiln::train::evaluate_csv(path("b.kiln"), train).metrics.at("accuracy"));
  EXPECT_EQ(imp.features[0].name, "signal");
  const rp::PermutationImportance ll =
      rp::permutation_importance(path("b.kiln"), d, {.metric = "log_loss", .repeats = 3});
  EXPECT_DOUBLE_EQ(ll.baseline,
                   kiln::train::evaluate_csv(path("b.kiln"), train).metrics.at("log_loss"));
  EXPECT_EQ(ll.features[0].name, "signal");
  EXPECT_GT(ll.features[0].importance, 0.1);  // log loss grows: positive after the sign flip
}

// A regression model (diabetes): one output, no class name; r2 by default.
TEST_F(Explain, RegressionModelsExplainTheirValue) {
  const auto spec = kiln::train::ModelSpec::from_json(R"({
    "layers": [{"type": "dense", "units": 16, "activation": "relu"}, {"type": "dense", "units": "auto"}],
    "task": {"type": "regression", "target": "progression"},
    "preprocessing": {"scaling": "standardize"},
    "training": {"optimizer": {"name": "adam", "lr": 0.01}, "epochs": 20, "batch_size": 32,
                 "seed": 2, "test_split": 0.2}})");
  const std::string csv = std::string(KILN_DATASETS_DIR) + "/diabetes.csv";
  kiln::train::train_from_spec(spec, csv, {.progress = kiln::train::Progress::none})
      .save(path("r.kiln"));
  const kiln::data::Dataset d = kiln::train::read_csv_for_model(path("r.kiln"), csv);
  const std::vector<std::int64_t> rows{0, 100};
  const json j = json::parse(
      rp::explanations_json(path("r.kiln"), d, rows, {.importance = {.repeats = 2}, .steps = 128}));
  EXPECT_EQ(j.at("permutation_importance").at("metric"), "r2");
  EXPECT_EQ(j.at("permutation_importance").at("features").size(), 10u);
  for (const json& a : j.at("attributions")) {
    EXPECT_TRUE(a.at("class").is_null());
    EXPECT_EQ(a.at("class_index"), 0);
    EXPECT_EQ(a.at("features").size(), 10u);
    double sum = 0.0;
    for (const json& v : a.at("attributions")) sum += v.get<double>();
    const double delta = a.at("output").get<double>() - a.at("baseline_output").get<double>();
    EXPECT_NEAR(sum, delta, 0.01 * std::abs(delta) + 1e-4);
  }
}

// A hand-made regression model file: y = 2 * signal + (sum of color's one-hot values), exact
// on the data (mse 0). Permuting color's one-hot columns together keeps every row's sum at 1,
// so its importance is exactly 0; permuting them one by one would not. noise has weight 0.
TEST_F(Explain, PermutationImportancePermutesOneHotColumnsTogether) {
  std::mt19937_64 rng(9);
  std::normal_distribution<double> normal(0.0, 1.0);
  const char* colors[] = {"red", "green", "blue"};
  std::string csv = "signal,noise,color,y\n";
  for (int i = 0; i < 60; ++i) {
    const float s = static_cast<float>(normal(rng));
    char line[128];
    std::snprintf(line, sizeof line, "%.9g,%.9g,%s,%.9g\n", s, normal(rng), colors[i % 3],
                  2.0 * s + 1.0);
    csv += line;
  }
  const std::string file = write("lin.csv", csv);
  const kiln::data::CsvData read =
      kiln::data::read_csv(file, {.target = "y", .task = kiln::data::CsvTask::regression});
  ASSERT_EQ(read.schema.feature_names(), (std::vector<std::string>{"signal", "noise", "color=blue",
                                                                   "color=green", "color=red"}));
  kiln::Graph g;
  const kiln::Value x = g.input("features", {kiln::batch, 5});
  const kiln::Value w = g.parameter("w", Tensor::from<float>({2, 0, 1, 1, 1}, Shape{5, 1}));
  const kiln::Value y = kiln::matmul(x, w, {}, "y");
  kiln::SaveOptions save{.inputs = {x}, .outputs = {y}};
  const std::string spec = R"({"layers": [{"type": "dense", "units": "auto"}],
                                "task": {"type": "regression", "target": "y"}})";
  const std::string schema = read.schema.to_json();
  save.sections["kiln.spec"] = std::vector<std::uint8_t>(spec.begin(), spec.end());
  save.sections["kiln.data"] = std::vector<std::uint8_t>(schema.begin(), schema.end());
  kiln::save_model(path("lin.kiln"), g, save);

  const kiln::data::Dataset d = kiln::train::read_csv_for_model(path("lin.kiln"), file);
  const rp::PermutationImportance imp =
      rp::permutation_importance(path("lin.kiln"), d, {.metric = "mse", .repeats = 3});
  EXPECT_LT(imp.baseline, 1e-10);
  ASSERT_EQ(imp.features.size(), 3u);
  EXPECT_EQ(imp.features[0].name, "signal");
  EXPECT_GT(imp.features[0].importance, 1.0);  // mse grows: importance is positive (sign-adjusted)
  for (std::size_t i = 1; i < 3; ++i) {
    EXPECT_LT(std::abs(imp.features[i].importance), 1e-10) << imp.features[i].name;
    EXPECT_LT(imp.features[i].std, 1e-10) << imp.features[i].name;
  }
  // r2 (higher is better) ranks the same way.
  const rp::PermutationImportance r2 =
      rp::permutation_importance(path("lin.kiln"), d, {.repeats = 3});
  EXPECT_EQ(r2.metric, "r2");
  EXPECT_EQ(r2.features[0].name, "signal");
  EXPECT_GT(r2.features[0].importance, 0.5);
}

// An image input [1, 2, 3] and a linear score: the page holds the image and the heat map as
// two SVG images of one rect per pixel, coloured by sign; tabular attributions are refused.
TEST_F(Explain, AttributionHtmlDrawsImageAndHeatMap) {
  kiln::Graph g;
  const kiln::Value x = g.input("image", {kiln::batch, 1, 2, 3});
  const kiln::Value w = g.parameter("w", Tensor::from<float>({1, -1, 0.5f, 0, 2, -2}, Shape{6, 1}));
  const kiln::Value y = kiln::matmul(kiln::flatten(x), w);
  rp::Explainer ex(g, x, y);
  const rp::Attribution a = ex.integrated_gradients(Tensor::full(Shape{1, 2, 3}, 1.0));
  const std::string html = rp::attribution_html(a, "digit <3>");
  auto count = [&](const std::string& what) {
    std::size_t n = 0;
    for (std::size_t at = html.find(what); at != std::string::npos; at = html.find(what, at + 1))
      ++n;
    return n;
  };
  EXPECT_EQ(count("<svg"), 2u);
  EXPECT_EQ(count("<rect"), 12u);
  EXPECT_EQ(count("<script"), 0u);
  EXPECT_EQ(count("http://"), 2u);  // the SVG namespace only: no network
  EXPECT_NE(html.find("digit &lt;3&gt;"), std::string::npos);
  // Attributions w * x = w: +2 is full red, -2 full blue, 0 white (as is the all-ones image).
  EXPECT_EQ(count("fill=\"#ff0000\""), 1u);
  EXPECT_EQ(count("fill=\"#0000ff\""), 1u);
  EXPECT_EQ(count("fill=\"#ffffff\""), 7u);
  rp::write_attribution_html(path("a.html"), a, "digit");
  EXPECT_TRUE(fs::exists(path("a.html")));
  kiln::Graph t;
  const kiln::Value tx = t.input("x", {kiln::batch, 2});
  rp::Explainer tab(t, tx, kiln::sum(tx, {1}));
  EXPECT_THROW(rp::attribution_html(tab.saliency(Tensor::zeros(Shape{2})), "x"), kiln::ValueError);
}

TEST_F(Explain, ExplanationsJsonFollowsTheRunFormat) {
  const std::string model = train_iris(path("iris.kiln"));
  const kiln::data::Dataset d =
      kiln::train::read_csv_for_model(model, iris_csv, kiln::data::TargetColumn::required);
  const std::vector<std::int64_t> rows{3, 140};
  const json j = json::parse(rp::explanations_json(
      model, d, rows, {.importance = {.repeats = 2, .seed = 1}, .steps = 32}));
  const json& pi = j.at("permutation_importance");
  EXPECT_EQ(pi.at("metric"), "accuracy");
  EXPECT_EQ(pi.at("repeats"), 2);
  EXPECT_EQ(pi.at("rows"), 150);
  ASSERT_EQ(pi.at("features").size(), 4u);
  double last = 1e9;
  for (const json& f : pi.at("features")) {  // most important first
    EXPECT_LE(f.at("importance").get<double>(), last);
    last = f.at("importance").get<double>();
    EXPECT_TRUE(f.contains("std"));
  }
  ASSERT_EQ(j.at("attributions").size(), 2u);
  rp::Explainer ex = rp::Explainer::from_file(model);
  for (std::size_t i = 0; i < 2; ++i) {
    const json& a = j.at("attributions")[i];
    EXPECT_EQ(a.at("row"), rows[i]);
    EXPECT_EQ(a.at("method"), "integrated_gradients");
    EXPECT_EQ(a.at("steps"), 32);
    EXPECT_EQ(a.at("input"), "features");
    EXPECT_EQ(a.at("shape"), json::array({4}));
    EXPECT_EQ(a.at("features"),
              json::array({"sepal_length", "sepal_width", "petal_length", "petal_width"}));
    const Tensor x = d["features"].rows(rows[i], rows[i] + 1);
    const std::int64_t predicted =
        ex.predict(x).argmax(1).to(kiln::DType::i64).data<std::int64_t>()[0];
    EXPECT_EQ(a.at("class_index"), predicted);
    EXPECT_EQ(a.at("class"), ex.labels()[static_cast<std::size_t>(predicted)]);
    // Numbers parsed back: the attributions add up to the output difference; values are the
    // preprocessed row.
    double sum = 0.0;
    for (const json& v : a.at("attributions")) sum += v.get<double>();
    const double delta = a.at("output").get<double>() - a.at("baseline_output").get<double>();
    EXPECT_NEAR(sum, delta, 0.01 * std::abs(delta) + 1e-6);
    const auto pre = ex.preprocess(x).to_vector<float>();
    for (std::size_t k = 0; k < 4; ++k) EXPECT_EQ(a.at("values")[k].get<float>(), pre[k]);
  }
  EXPECT_THROW(rp::explanations_json(model, d, std::vector<std::int64_t>{150}), kiln::ValueError);
}

}  // namespace
