// Metrics against scikit-learn's values (tests/data/metrics_golden.txt, written once by
// tools/gen_metrics_golden.py), and their errors on bad input.
#include "kiln/train/metrics.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "kiln/core/error.hpp"
#include "tests/support/error_test_support.hpp"
#include "tests/support/golden_file.hpp"

namespace {

using kiln::DType;
using kiln::Tensor;
namespace metrics = kiln::metrics;

struct Case {
  std::string name;
  Tensor pred, target;
  std::vector<std::pair<std::string, double>> values;
  std::map<std::string, std::vector<double>> vectors;
};

Tensor read_tensor(std::istream& in) {
  std::string dtype;
  std::size_t rank = 0;
  in >> dtype >> rank;
  std::vector<std::int64_t> dims(rank);
  std::int64_t n = 1;
  for (auto& d : dims) {
    in >> d;
    n *= d;
  }
  std::vector<double> v(static_cast<std::size_t>(n));
  for (auto& x : v) in >> x;
  if (!in) throw std::runtime_error("bad tensor line");
  const DType t = dtype == "f32" ? DType::f32 : dtype == "i64" ? DType::i64 : DType::f64;
  return Tensor::from(v, kiln::Shape(dims)).to(t);
}

std::vector<Case> load() {
  std::vector<Case> out;
  Case c;
  kiln_test::read_golden("metrics_golden.txt", [&](const std::string& kind, std::istream& in) {
    if (kind == "case") {
      c = Case{};
      in >> c.name;
    } else if (kind == "pred") {
      c.pred = read_tensor(in);
    } else if (kind == "target") {
      c.target = read_tensor(in);
    } else if (kind == "value") {
      std::string name;
      double v = 0;
      in >> name >> v;
      c.values.emplace_back(name, v);
    } else if (kind == "vector") {
      std::string key;
      in >> key;
      c.vectors[key] = kiln_test::numbers_of(in);
    } else if (kind == "end") {
      out.push_back(c);
    } else {
      return false;
    }
    return true;
  });
  return out;
}

void expect_close(double got, double want, const std::string& what) {
  const double tol = 1e-12 * std::max(1.0, std::fabs(want));
  EXPECT_NEAR(got, want, tol) << what;
}

TEST(Metrics, MatchScikitLearn) {
  const auto cases = load();
  ASSERT_GE(cases.size(), 12u);
  std::size_t checked = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    for (const auto& [name, want] : c.values) {
      const double got = name == "log_loss_direct" ? metrics::log_loss(c.pred, c.target)
                                                   : metrics::compute(name, c.pred, c.target);
      expect_close(got, want, c.name + " " + name);
      ++checked;
    }
    if (c.vectors.empty()) continue;
    const auto cm = metrics::confusion_matrix(c.pred, c.target);
    const auto& want_cm = c.vectors.at("confusion");
    ASSERT_EQ(cm.counts.size(), want_cm.size());
    for (std::size_t i = 0; i < want_cm.size(); ++i)
      EXPECT_EQ(static_cast<double>(cm.counts[i]), want_cm[i]) << "confusion " << i;
    const auto s = metrics::precision_recall_f1(cm);
    const std::map<std::string, const std::vector<double>*> got = {
        {"precision", &s.precision}, {"recall", &s.recall}, {"f1", &s.f1}};
    for (const auto& [key, v] : got) {
      const auto& want = c.vectors.at(key);
      ASSERT_EQ(v->size(), want.size()) << key;
      for (std::size_t i = 0; i < want.size(); ++i)
        expect_close((*v)[i], want[i], key + " " + std::to_string(i));
    }
    const auto& support = c.vectors.at("support");
    for (std::size_t i = 0; i < support.size(); ++i)
      EXPECT_EQ(static_cast<double>(s.support[i]), support[i]);
    checked += 5;
  }
  EXPECT_GT(checked, 100u);
}

TEST(Metrics, DirectFunctionsAgreeWithCompute) {
  // Scores with a tie in row 1: argmax takes the lower index (class 0), top-1 ranks the
  // higher index first (class 2), as numpy's argmax and sklearn's top_k_accuracy_score.
  const auto scores = Tensor::from<float>({0.1f, 0.7f, 0.2f, 0.5f, 0.0f, 0.5f}, {2, 3});
  const auto labels = Tensor::from<std::int64_t>({1, 2}, {2});
  EXPECT_EQ(metrics::accuracy(scores, labels), 0.5);
  EXPECT_EQ(metrics::top_k_accuracy(scores, labels, 1), 1.0);
  EXPECT_EQ(metrics::compute("top1_accuracy", scores, labels), 1.0);
  EXPECT_EQ(metrics::top_k_accuracy(scores, Tensor::from<std::int64_t>({1, 1}, {2}), 2), 0.5);
  EXPECT_EQ(metrics::top_k_accuracy(scores, Tensor::from<std::int64_t>({1, 1}, {2}), 3), 1.0);
  const auto cm = metrics::confusion_matrix(scores, labels);
  EXPECT_EQ(cm.classes, 3);
  EXPECT_EQ(cm.at(1, 1), 1);
  EXPECT_EQ(cm.at(2, 0), 1);
  // Labels may be floats holding integers, [N, 1].
  EXPECT_EQ(metrics::accuracy(scores, Tensor::from<float>({1, 2}, {2, 1})), 0.5);
  // Regression: [N] vs [N, 1].
  const auto p = Tensor::from<double>({1, 2, 3, 4}, {4});
  const auto t = Tensor::from<double>({1.5, 2, 2, 4}, {4, 1});
  EXPECT_DOUBLE_EQ(metrics::mse(p, t), (0.25 + 1) / 4);
  EXPECT_DOUBLE_EQ(metrics::mae(p, t), 1.5 / 4);
  EXPECT_DOUBLE_EQ(metrics::r2(p, t), 1 - 1.25 / 3.6875);
  EXPECT_TRUE(
      std::isnan(metrics::r2(Tensor::from<double>({1}, {1}), Tensor::from<double>({2}, {1}))));
}

using kiln_test::expect_error;

TEST(Metrics, BadInputIsATypedErrorNamingIt) {
  const auto scores = Tensor::from<float>({0.1f, 0.7f, 0.2f, 0.5f, 0.0f, 0.5f}, {2, 3});
  expect_error<kiln::ShapeError>(
      [&] {
        metrics::accuracy(scores, Tensor::from<std::int64_t>({1, 2, 0}, {3}));
      },
      "predictions has 2 rows, labels 3");
  expect_error<kiln::ValueError>(
      [&] {
        metrics::accuracy(scores, Tensor::from<std::int64_t>({1, 3}, {2}));
      },
      "label 3 in row 1 is outside [0, 3)");
  expect_error<kiln::ValueError>(
      [&] {
        metrics::accuracy(scores, Tensor::from<double>({1, 0.5}, {2}));
      },
      "label 0.5 in row 1 is not a class index");
  expect_error<kiln::ValueError>(
      [&] {
        metrics::accuracy(scores, Tensor::from<std::int64_t>({-1, 0}, {2}));
      },
      "label -1 in row 0");
  expect_error<kiln::ValueError>(
      [&] {
        metrics::accuracy(Tensor::from<float>({0.1f, NAN, 0.2f, 0.5f, 0.0f, 0.5f}, {2, 3}),
                          Tensor::from<std::int64_t>({1, 2}, {2}));
      },
      "prediction nan in row 0, column 1 is not finite");
  expect_error<kiln::ValueError>(
      [&] {
        metrics::top_k_accuracy(scores, Tensor::from<std::int64_t>({1, 2}, {2}), 0);
      },
      "k must be at least 1");
  expect_error<kiln::ValueError>(
      [&] {
        metrics::log_loss(Tensor::from<double>({1.5, -0.5}, {1, 2}),
                          Tensor::from<std::int64_t>({0}, {1}));
      },
      "probability 1.5 in row 0, column 0 is outside [0, 1]");
  expect_error<kiln::ShapeError>(
      [&] {
        metrics::mse(Tensor::from<double>({1, 2}, {2}), Tensor::from<double>({1, 2, 3}, {3}));
      },
      "differ in size");
  expect_error<kiln::ValueError>(
      [&] {
        metrics::r2(Tensor::from<double>({1, INFINITY}, {2}), Tensor::from<double>({1, 2}, {2}));
      },
      "prediction inf at element 1 is not finite");
  expect_error<kiln::ValueError>(
      [&] {
        metrics::compute("auc", scores, Tensor::from<std::int64_t>({1, 2}, {2}));
      },
      "unknown metric 'auc'");
  expect_error<kiln::ValueError>(
      [&] {
        metrics::compute("topx_accuracy", scores, Tensor::from<std::int64_t>({1, 2}, {2}));
      },
      "unknown metric 'topx_accuracy'");
  expect_error<kiln::ValueError>(
      [&] {
        metrics::confusion_matrix(scores, Tensor::from<std::int64_t>({1, 2}, {2}), 2);
      },
      "3 score columns for 2 classes");
  expect_error<kiln::ValueError>(
      [&] {
        metrics::precision_recall_f1(metrics::ConfusionMatrix{3, {1, 2}});
      },
      "needs 9 counts, not 2");
  expect_error<kiln::ValueError>(
      [&] {
        metrics::accuracy(Tensor::zeros({0, 3}), Tensor::zeros({0}, DType::i64));
      },
      "no rows");
  expect_error<kiln::ShapeError>(
      [&] {
        metrics::accuracy(Tensor::zeros({2, 3, 1}), Tensor::zeros({2}, DType::i64));
      },
      "must be [N] or [N, C]");
}

}  // namespace
