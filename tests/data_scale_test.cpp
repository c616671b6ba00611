// Scaling: standardisation and min-max fitted against scikit-learn's scalers (golden values
// made by tools/gen_scaling_golden.py), applied exactly as kiln_infer applies a model's
// preprocessing, and refused for data it cannot scale.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include "data_test_util.hpp"
#include "kiln/data/scale.hpp"
#include "kiln/graph/graph.hpp"
#include "kiln/infer/model.hpp"
#include "kiln/ops.hpp"

namespace kiln::data {
namespace {

using testing::mentions;
using testing::message_of;

struct Golden {
  Dataset data;
  std::map<std::string, std::vector<double>> rows;
};

Golden load_golden() {
  std::ifstream in(std::string(KILN_TEST_DATA_DIR) + "/scaling_golden.txt");
  EXPECT_TRUE(in) << "missing scaling_golden.txt";
  std::int64_t n = 0;
  std::int64_t f = 0;
  in >> n >> f;
  std::vector<float> x(static_cast<std::size_t>(n * f));
  for (float& v : x) {
    double d = 0;
    in >> d;
    v = static_cast<float>(d);
  }
  Golden g{Dataset({{"features", Tensor::from(x, {n, f})}}), {}};
  std::string line;
  std::getline(in, line);
  while (std::getline(in, line)) {
    std::istringstream s(line);
    std::string key;
    s >> key;
    double v = 0;
    while (s >> v) g.rows[key].push_back(v);
  }
  return g;
}

TEST(ScaleTest, StandardizationMatchesScikitLearn) {
  const Golden g = load_golden();
  const Normalization n = fit_standardization(g.data);
  EXPECT_EQ(n.input, "features");
  ASSERT_EQ(n.mean.size(), 4u);
  for (std::size_t k = 0; k < 4; ++k) {
    EXPECT_EQ(n.mean[k], static_cast<float>(g.rows.at("std_mean")[k])) << k;
    EXPECT_EQ(n.stddev[k], static_cast<float>(g.rows.at("std_scale")[k])) << k;
  }
  EXPECT_EQ(n.stddev[3], 1.0f);  // the constant column
  // Scaled training data: mean ~0 and stddev ~1 per non-constant column.
  const Dataset scaled = apply_normalization(g.data, n);
  const auto v = scaled["features"].to_vector<float>();
  for (std::size_t k = 0; k < 3; ++k) {
    double sum = 0;
    double sq = 0;
    for (std::size_t i = k; i < v.size(); i += 4) sum += v[i];
    for (std::size_t i = k; i < v.size(); i += 4) sq += (v[i] - sum / 40) * (v[i] - sum / 40);
    EXPECT_NEAR(sum / 40, 0.0, 1e-5);
    EXPECT_NEAR(std::sqrt(sq / 40), 1.0, 1e-5);
  }
  for (std::size_t i = 3; i < v.size(); i += 4) EXPECT_EQ(v[i], 0.0f);
}

TEST(ScaleTest, MinMaxMatchesScikitLearn) {
  const Golden g = load_golden();
  const Normalization n = fit_scaling(g.data, Scaling::min_max);
  for (std::size_t k = 0; k < 4; ++k) {
    EXPECT_EQ(n.mean[k], static_cast<float>(g.rows.at("min")[k])) << k;
    const double range = g.rows.at("range")[k];
    EXPECT_EQ(n.stddev[k], range == 0 ? 1.0f : static_cast<float>(range)) << k;
  }
  const auto v = apply_normalization(g.data, n)["features"].to_vector<float>();
  for (std::size_t k = 0; k < 3; ++k) {
    float lo = 1e9f;
    float hi = -1e9f;
    for (std::size_t i = k; i < v.size(); i += 4) {
      lo = std::min(lo, v[i]);
      hi = std::max(hi, v[i]);
    }
    EXPECT_EQ(lo, 0.0f);
    EXPECT_NEAR(hi, 1.0f, 1e-6);
  }
}

TEST(ScaleTest, KilnInferAppliesTheSameScaling) {
  const Golden g = load_golden();
  const Normalization norm = fit_standardization(g.data.rows(0, 30));  // fitted on "train"
  const Dataset test = g.data.rows(30, 40);
  // A model that returns its input: what kiln_infer feeds it is the scaled input.
  Graph graph;
  Value x = graph.input("features", {batch, 4});
  Value y = mul(x, 1.0);
  SaveOptions options;
  options.inputs = {x};
  options.outputs = {y};
  options.output_names = {"same"};
  options.metadata.preprocessing = {norm};
  const std::vector<std::uint8_t> bytes = serialize_model(graph, options);
  const auto model =
      infer::Model::load(bytes, "scaled", {.backend = "reference", .apply_preprocessing = true});
  const Tensor by_infer = model.run({{"features", test["features"]}})[0];
  const Tensor by_data = apply_normalization(test, norm)["features"];
  EXPECT_EQ(by_infer.to_vector<float>(), by_data.to_vector<float>());
  EXPECT_NE(by_data.to_vector<float>(), test["features"].to_vector<float>());
}

TEST(ScaleTest, DataItCannotScale) {
  const Dataset ints({{"features", Tensor::zeros({3, 2}, DType::i32)}});
  EXPECT_TRUE(
      mentions(message_of<ValueError>([&] { fit_standardization(ints); }), {"'features'", "i32"}));
  const Dataset flat({{"features", Tensor::zeros({3})}});
  EXPECT_THROW(fit_min_max(flat), ValueError);
  const Dataset other({{"x", Tensor::zeros({3, 2})}});
  EXPECT_THROW(fit_standardization(other), NameError);
  Dataset with_nan({{"features", Tensor::from<float>({1, 2, NAN, 4}, {2, 2})}},
                   {.feature_names = {"a", "b"}});
  EXPECT_TRUE(mentions(message_of<ValueError>([&] { fit_standardization(with_nan); }),
                       {"feature 'a'", "non-finite"}));
  EXPECT_THROW(fit_scaling(with_nan, Scaling::none), ValueError);
  const Normalization n{"features", {0, 0, 0}, {1, 1, 1}};
  EXPECT_THROW(apply_normalization(Tensor::zeros({2, 2}), n), ShapeError);
  EXPECT_THROW(apply_normalization(Tensor::zeros({2, 3}, DType::i32), n), DTypeError);
  EXPECT_THROW(apply_normalization(other, n), NameError);
  // Other tensors are shared untouched; f64 features stay f64.
  const Dataset two({{"features", Tensor::from<double>({1, 2, 3, 4, 5, 6}, {2, 3})},
                     {"target", Tensor::zeros({2})}});
  const Dataset scaled = apply_normalization(two, Normalization{"features", {1, 1, 1}, {2, 2, 2}});
  EXPECT_EQ(scaled["features"].to_vector<double>(), (std::vector<double>{0, 0.5, 1, 1.5, 2, 2.5}));
  EXPECT_EQ(scaled["target"].raw(), two["target"].raw());
}

}  // namespace
}  // namespace kiln::data
