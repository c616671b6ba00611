// Metrics with scikit-learn's (1.2) definitions; sums run in the order numpy's do for the
// same call (sequential over rows), so results agree to the last bits in most cases.
#include "kiln/train/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include "kiln/core/error.hpp"

namespace kiln::metrics {
namespace {

std::string num(double v) {
  if (std::isnan(v)) return "nan";
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

std::vector<double> values_of(const Tensor& t) {
  if (!t.defined()) return {};
  return t.dtype() == DType::f64 ? t.to_vector<double>() : t.to(DType::f64).to_vector<double>();
}

void check_defined(const Tensor& t, const char* fn, const char* what) {
  if (!t.defined()) throw ValueError(std::string(fn) + ": " + what + " is an empty tensor");
}

// Rows of a [N] / [N, k] tensor.
std::int64_t rows_of(const Tensor& t, const char* fn, const char* what) {
  if (t.rank() == 0 || t.rank() > 2)
    throw ShapeError(std::string(fn) + ": " + what + " must be [N] or [N, C], not " +
                     t.shape().str());
  if (t.dim(0) == 0) throw ValueError(std::string(fn) + ": " + what + " has no rows");
  return t.dim(0);
}

void check_rows(std::int64_t a, std::int64_t b, const char* fn, const char* what_a,
                const char* what_b) {
  if (a != b)
    throw ShapeError(std::string(fn) + ": " + what_a + " has " + std::to_string(a) + " rows, " +
                     what_b + " " + std::to_string(b));
}

// Class labels [N] / [N, 1]: finite non-negative integers (any dtype), below `classes` when
// that is > 0.
std::vector<std::int64_t> labels_of(const Tensor& t, const char* fn, std::int64_t classes) {
  check_defined(t, fn, "labels");
  const std::int64_t n = rows_of(t, fn, "labels");
  if (t.rank() == 2 && t.dim(1) != 1)
    throw ShapeError(std::string(fn) + ": labels must be [N] or [N, 1], not " + t.shape().str());
  const auto v = values_of(t);
  std::vector<std::int64_t> out(static_cast<std::size_t>(n));
  for (std::size_t i = 0; i < v.size(); ++i) {
    const double x = v[i];
    if (!std::isfinite(x) || x < 0 || x != std::floor(x) || x > 1e15)
      throw ValueError(std::string(fn) + ": label " + num(x) + " in row " + std::to_string(i) +
                       " is not a class index");
    out[i] = static_cast<std::int64_t>(x);
    if (classes > 0 && out[i] >= classes)
      throw ValueError(std::string(fn) + ": label " + std::to_string(out[i]) + " in row " +
                       std::to_string(i) + " is outside [0, " + std::to_string(classes) + ")");
  }
  return out;
}

// Finite scores [N, C] as doubles; `cols` gets C (1 for [N]).
std::vector<double> scores_of(const Tensor& t, const char* fn, std::int64_t& cols) {
  check_defined(t, fn, "predictions");
  const std::int64_t n = rows_of(t, fn, "predictions");
  cols = t.rank() == 2 ? t.dim(1) : 1;
  if (cols == 0) throw ShapeError(std::string(fn) + ": predictions have no columns");
  auto v = values_of(t);
  for (std::size_t i = 0; i < v.size(); ++i)
    if (!std::isfinite(v[i]))
      throw ValueError(std::string(fn) + ": prediction " + num(v[i]) + " in row " +
                       std::to_string(static_cast<std::int64_t>(i) / cols) + ", column " +
                       std::to_string(static_cast<std::int64_t>(i) % cols) + " is not finite");
  (void)n;
  return v;
}

struct Predicted {
  std::vector<std::int64_t> classes;
  std::int64_t columns = 0;  // score columns (2 for one binary logit), 0 for given classes
};

// Classes [N] (integer dtype), binary logits [N] / [N, 1] (class 1 when > 0), or scores
// [N, C] (argmax, the first on ties).
Predicted predicted_classes(const Tensor& t, const char* fn) {
  check_defined(t, fn, "predictions");
  Predicted p;
  if (is_integer(t.dtype()) && (t.rank() == 1 || (t.rank() == 2 && t.dim(1) == 1))) {
    p.classes = labels_of(t, fn, 0);
    return p;
  }
  std::int64_t cols = 0;
  const auto v = scores_of(t, fn, cols);
  const auto n = static_cast<std::size_t>(t.dim(0));
  p.classes.resize(n);
  if (cols == 1) {
    p.columns = 2;
    for (std::size_t i = 0; i < n; ++i) p.classes[i] = v[i] > 0 ? 1 : 0;
    return p;
  }
  p.columns = cols;
  const auto c = static_cast<std::size_t>(cols);
  for (std::size_t i = 0; i < n; ++i) {
    std::size_t best = 0;
    for (std::size_t j = 1; j < c; ++j)
      if (v[i * c + j] > v[i * c + best]) best = j;
    p.classes[i] = static_cast<std::int64_t>(best);
  }
  return p;
}

double ratio(double a, double b) { return b == 0 ? 0.0 : a / b; }

double mean_of(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

// Prediction and target as columns: [N] and [N, 1] are one column; equal [N, D] shapes
// are D columns (averaged uniformly, as sklearn's multioutput="uniform_average"); other
// shapes of equal numel are one column each.
struct Columns {
  std::vector<double> pred, target;
  std::size_t rows = 0, cols = 1;
};

Columns regression_columns(const Tensor& prediction, const Tensor& target, const char* fn) {
  check_defined(prediction, fn, "prediction");
  check_defined(target, fn, "target");
  if (prediction.numel() != target.numel())
    throw ShapeError(std::string(fn) + ": prediction " + prediction.shape().str() + " and target " +
                     target.shape().str() + " differ in size");
  if (prediction.numel() == 0) throw ValueError(std::string(fn) + ": no values");
  Columns c;
  c.pred = values_of(prediction);
  c.target = values_of(target);
  if (prediction.shape() == target.shape() && prediction.rank() == 2)
    c.cols = static_cast<std::size_t>(prediction.dim(1));
  c.rows = c.pred.size() / c.cols;
  for (std::size_t i = 0; i < c.pred.size(); ++i) {
    if (!std::isfinite(c.pred[i]))
      throw ValueError(std::string(fn) + ": prediction " + num(c.pred[i]) + " at element " +
                       std::to_string(i) + " is not finite");
    if (!std::isfinite(c.target[i]))
      throw ValueError(std::string(fn) + ": target " + num(c.target[i]) + " at element " +
                       std::to_string(i) + " is not finite");
  }
  return c;
}

template <class F>
double column_mean_error(const Columns& c, F err) {
  std::vector<double> per(c.cols, 0.0);
  for (std::size_t j = 0; j < c.cols; ++j) {
    double s = 0;
    for (std::size_t i = 0; i < c.rows; ++i)
      s += err(c.pred[i * c.cols + j] - c.target[i * c.cols + j]);
    per[j] = s / static_cast<double>(c.rows);
  }
  return mean_of(per);
}

constexpr double log_loss_eps = 1e-15;

// Rows of [N, C] probabilities (softmax applied when `from_scores` and they are not), or
// [N] / [N, 1] P(class 1) (sigmoid applied when `from_scores`), clipped to [eps, 1 - eps]
// and as [N, C'] with C' >= 2. As sklearn, one column is clipped before 1 - p is formed.
std::vector<double> probabilities_of(const Tensor& t, const char* fn, bool from_scores,
                                     std::int64_t& cols) {
  auto v = scores_of(t, fn, cols);
  const auto n = static_cast<std::size_t>(t.dim(0));
  if (!from_scores) {
    for (std::size_t i = 0; i < v.size(); ++i)
      if (v[i] < 0 || v[i] > 1)
        throw ValueError(std::string(fn) + ": probability " + num(v[i]) + " in row " +
                         std::to_string(i / static_cast<std::size_t>(cols)) + ", column " +
                         std::to_string(i % static_cast<std::size_t>(cols)) + " is outside [0, 1]");
  }
  auto clip = [](double x) { return std::clamp(x, log_loss_eps, 1 - log_loss_eps); };
  if (cols == 1) {
    std::vector<double> out(2 * n);
    for (std::size_t i = 0; i < n; ++i) {
      const double p = clip(from_scores ? 1.0 / (1.0 + std::exp(-v[i])) : v[i]);
      out[2 * i] = 1 - p;
      out[2 * i + 1] = p;
    }
    cols = 2;
    return out;
  }
  const auto c = static_cast<std::size_t>(cols);
  if (from_scores) {
    bool probs = true;
    for (std::size_t i = 0; i < n && probs; ++i) {
      double s = 0;
      for (std::size_t j = 0; j < c; ++j) {
        const double x = v[i * c + j];
        if (x < 0 || x > 1) probs = false;
        s += x;
      }
      if (std::fabs(s - 1) > 1e-6) probs = false;
    }
    if (!probs) {
      for (std::size_t i = 0; i < n; ++i) {
        double* row = v.data() + i * c;
        const double m = *std::max_element(row, row + c);
        double s = 0;
        for (std::size_t j = 0; j < c; ++j) s += (row[j] = std::exp(row[j] - m));
        for (std::size_t j = 0; j < c; ++j) row[j] /= s;
      }
    }
  }
  for (double& x : v) x = clip(x);
  return v;
}

// Mean of -log(p[label] / row sum), the rows clipped (see probabilities_of).
double log_loss_impl(const Tensor& probabilities, const Tensor& labels, bool from_scores,
                     const char* fn) {
  std::int64_t cols = 0;
  const auto p = probabilities_of(probabilities, fn, from_scores, cols);
  const auto y = labels_of(labels, fn, cols);
  check_rows(probabilities.dim(0), static_cast<std::int64_t>(y.size()), fn, "probabilities",
             "labels");
  const auto c = static_cast<std::size_t>(cols);
  std::vector<double> loss(y.size());
  for (std::size_t i = 0; i < y.size(); ++i) {
    const double* row = p.data() + i * c;
    double s = 0;
    for (std::size_t j = 0; j < c; ++j) s += row[j];
    loss[i] = -std::log(row[static_cast<std::size_t>(y[i])] / s);
  }
  return mean_of(loss);
}

}  // namespace

double accuracy(const Tensor& predictions, const Tensor& labels) {
  const auto p = predicted_classes(predictions, "accuracy");
  const auto y = labels_of(labels, "accuracy", p.columns);
  check_rows(static_cast<std::int64_t>(p.classes.size()), static_cast<std::int64_t>(y.size()),
             "accuracy", "predictions", "labels");
  std::int64_t hits = 0;
  for (std::size_t i = 0; i < y.size(); ++i) hits += p.classes[i] == y[i];
  return static_cast<double>(hits) / static_cast<double>(y.size());
}

double top_k_accuracy(const Tensor& scores, const Tensor& labels, std::int64_t k) {
  const char* fn = "top_k_accuracy";
  if (k < 1) throw ValueError(std::string(fn) + ": k must be at least 1, not " + std::to_string(k));
  std::int64_t cols = 0;
  const auto v = scores_of(scores, fn, cols);
  const auto y = labels_of(labels, fn, cols == 1 ? 2 : cols);
  check_rows(scores.dim(0), static_cast<std::int64_t>(y.size()), fn, "scores", "labels");
  if (cols == 1) {  // one binary logit: top-1 is accuracy, top-2 every row
    if (k >= 2) return 1.0;
    return accuracy(scores, labels);
  }
  const auto c = static_cast<std::size_t>(cols);
  std::int64_t hits = 0;
  for (std::size_t i = 0; i < y.size(); ++i) {
    const auto label = static_cast<std::size_t>(y[i]);
    const double s = v[i * c + label];
    std::int64_t ahead = 0;  // classes ranked before the label (ties: the higher index)
    for (std::size_t j = 0; j < c; ++j)
      if (v[i * c + j] > s || (v[i * c + j] == s && j > label)) ++ahead;
    hits += ahead < k;
  }
  return static_cast<double>(hits) / static_cast<double>(y.size());
}

ConfusionMatrix confusion_matrix(const Tensor& predictions, const Tensor& labels,
                                 std::int64_t classes) {
  const char* fn = "confusion_matrix";
  if (classes < 0) throw ValueError(std::string(fn) + ": negative class count");
  const auto p = predicted_classes(predictions, fn);
  if (classes > 0 && p.columns > classes)
    throw ValueError(std::string(fn) + ": predictions have " + std::to_string(p.columns) +
                     " score columns for " + std::to_string(classes) + " classes");
  const auto y = labels_of(labels, fn, classes > 0 ? classes : p.columns);
  check_rows(static_cast<std::int64_t>(p.classes.size()), static_cast<std::int64_t>(y.size()), fn,
             "predictions", "labels");
  ConfusionMatrix cm;
  cm.classes = classes;
  if (cm.classes == 0) {
    cm.classes = p.columns;
    for (std::size_t i = 0; i < y.size(); ++i)
      cm.classes = std::max({cm.classes, y[i] + 1, p.classes[i] + 1});
  }
  for (std::size_t i = 0; i < p.classes.size(); ++i)
    if (p.classes[i] >= cm.classes)
      throw ValueError(std::string(fn) + ": predicted class " + std::to_string(p.classes[i]) +
                       " in row " + std::to_string(i) + " is outside [0, " +
                       std::to_string(cm.classes) + ")");
  if (cm.classes > 100000)
    throw ValueError(std::string(fn) + ": " + std::to_string(cm.classes) + " classes is too many");
  cm.counts.assign(static_cast<std::size_t>(cm.classes * cm.classes), 0);
  for (std::size_t i = 0; i < y.size(); ++i)
    ++cm.counts[static_cast<std::size_t>(y[i] * cm.classes + p.classes[i])];
  return cm;
}

ClassScores precision_recall_f1(const ConfusionMatrix& cm) {
  const auto c = static_cast<std::size_t>(std::max<std::int64_t>(cm.classes, 0));
  if (cm.classes <= 0 || cm.counts.size() != c * c)
    throw ValueError("precision_recall_f1: a confusion matrix of " + std::to_string(cm.classes) +
                     " classes needs " + std::to_string(c * c) + " counts, not " +
                     std::to_string(cm.counts.size()));
  ClassScores s;
  s.precision.resize(c);
  s.recall.resize(c);
  s.f1.resize(c);
  s.support.resize(c);
  std::int64_t tp_all = 0, pred_all = 0, true_all = 0;
  for (std::size_t k = 0; k < c; ++k) {
    std::int64_t tp = cm.counts[k * c + k], pred = 0, truth = 0;
    for (std::size_t j = 0; j < c; ++j) {
      pred += cm.counts[j * c + k];
      truth += cm.counts[k * c + j];
    }
    s.precision[k] = ratio(static_cast<double>(tp), static_cast<double>(pred));
    s.recall[k] = ratio(static_cast<double>(tp), static_cast<double>(truth));
    s.f1[k] = ratio(2.0 * static_cast<double>(tp), static_cast<double>(truth + pred));
    s.support[k] = truth;
    tp_all += tp;
    pred_all += pred;
    true_all += truth;
  }
  s.macro_precision = mean_of(s.precision);
  s.macro_recall = mean_of(s.recall);
  s.macro_f1 = mean_of(s.f1);
  s.micro_precision = ratio(static_cast<double>(tp_all), static_cast<double>(pred_all));
  s.micro_recall = ratio(static_cast<double>(tp_all), static_cast<double>(true_all));
  s.micro_f1 = ratio(2.0 * static_cast<double>(tp_all), static_cast<double>(true_all + pred_all));
  double weighted = 0;
  for (std::size_t k = 0; k < c; ++k) weighted += s.f1[k] * static_cast<double>(s.support[k]);
  s.weighted_f1 = ratio(weighted, static_cast<double>(true_all));
  return s;
}

double log_loss(const Tensor& probabilities, const Tensor& labels) {
  return log_loss_impl(probabilities, labels, false, "log_loss");
}

double mse(const Tensor& prediction, const Tensor& target) {
  const auto c = regression_columns(prediction, target, "mse");
  return column_mean_error(c, [](double d) { return d * d; });
}

double mae(const Tensor& prediction, const Tensor& target) {
  const auto c = regression_columns(prediction, target, "mae");
  return column_mean_error(c, [](double d) { return std::fabs(d); });
}

double r2(const Tensor& prediction, const Tensor& target) {
  const auto c = regression_columns(prediction, target, "r2");
  if (c.rows < 2) return std::numeric_limits<double>::quiet_NaN();
  std::vector<double> per(c.cols);
  for (std::size_t j = 0; j < c.cols; ++j) {
    double mean = 0, res = 0, tot = 0;
    bool constant = true;
    for (std::size_t i = 0; i < c.rows; ++i) {
      mean += c.target[i * c.cols + j];
      constant = constant && c.target[i * c.cols + j] == c.target[j];
    }
    mean /= static_cast<double>(c.rows);
    for (std::size_t i = 0; i < c.rows; ++i) {
      const double d = c.target[i * c.cols + j] - c.pred[i * c.cols + j];
      const double e = c.target[i * c.cols + j] - mean;
      res += d * d;
      tot += e * e;
    }
    if (constant) tot = 0;
    per[j] = res == 0 ? 1.0 : tot == 0 ? 0.0 : 1 - res / tot;
  }
  return mean_of(per);
}

double compute(const std::string& name, const Tensor& predictions, const Tensor& targets) {
  if (name == "accuracy") return accuracy(predictions, targets);
  if (name.size() > 12 && name.rfind("top", 0) == 0 &&
      name.compare(name.size() - 9, 9, "_accuracy") == 0) {
    const std::string k = name.substr(3, name.size() - 12);
    if (!k.empty() && k.size() < 7 &&
        std::all_of(k.begin(), k.end(), [](char ch) { return ch >= '0' && ch <= '9'; }))
      return top_k_accuracy(predictions, targets, std::stoll(k));
  }
  if (name == "log_loss") return log_loss_impl(predictions, targets, true, "log_loss");
  if (name == "mse") return mse(predictions, targets);
  if (name == "mae") return mae(predictions, targets);
  if (name == "r2") return r2(predictions, targets);
  static const char* const scores[] = {"precision_macro", "recall_macro", "f1_macro",
                                       "precision_micro", "recall_micro", "f1_micro",
                                       "f1_weighted"};
  if (std::find(std::begin(scores), std::end(scores), name) != std::end(scores)) {
    const auto s = precision_recall_f1(confusion_matrix(predictions, targets));
    if (name == "precision_macro") return s.macro_precision;
    if (name == "recall_macro") return s.macro_recall;
    if (name == "f1_macro") return s.macro_f1;
    if (name == "precision_micro") return s.micro_precision;
    if (name == "recall_micro") return s.micro_recall;
    if (name == "f1_micro") return s.micro_f1;
    return s.weighted_f1;
  }
  throw ValueError("metrics::compute: unknown metric '" + name +
                   "' (known: accuracy, top<k>_accuracy, precision_macro, recall_macro, "
                   "f1_macro, precision_micro, recall_micro, f1_micro, f1_weighted, log_loss, "
                   "mse, mae, r2)");
}

}  // namespace kiln::metrics
