// Regression on the diabetes data (data/diabetes.csv: 10 baseline variables of 442
// patients and a measure of disease progression a year later; Efron et al. 2004): the CSV
// reader, a seeded 80/20 split, feature standardisation fitted on the training rows and
// stored in the graph, a 10-16-1 MLP trained on MSE with the Trainer, and R^2 on the held-out
// rows next to the R^2 of predicting the training mean. The last line printed is
// test_r2=<value>.
//
//   train_regression [path/to/diabetes.csv]
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <vector>

#include "kiln/data/csv.hpp"
#include "kiln/nn/layers.hpp"
#include "kiln/ops.hpp"
#include "kiln/train/metrics.hpp"
#include "kiln/train/trainer.hpp"

#ifndef KILN_DIABETES_CSV
#define KILN_DIABETES_CSV "data/diabetes.csv"
#endif

namespace {

// Per-column mean and population stddev of x [N, F].
void moments(const kiln::Tensor& x, std::vector<float>& mean, std::vector<float>& stddev) {
  const std::int64_t n = x.dim(0), f = x.dim(1);
  const std::vector<float> v = x.contiguous().to_vector<float>();
  mean.assign(static_cast<std::size_t>(f), 0.0f);
  stddev.assign(static_cast<std::size_t>(f), 0.0f);
  for (std::int64_t j = 0; j < f; ++j) {
    double s = 0, ss = 0;
    for (std::int64_t i = 0; i < n; ++i) s += v[static_cast<std::size_t>(i * f + j)];
    const double m = s / static_cast<double>(n);
    for (std::int64_t i = 0; i < n; ++i) {
      const double d = v[static_cast<std::size_t>(i * f + j)] - m;
      ss += d * d;
    }
    mean[static_cast<std::size_t>(j)] = static_cast<float>(m);
    stddev[static_cast<std::size_t>(j)] =
        static_cast<float>(std::sqrt(ss / static_cast<double>(n)));
  }
}

}  // namespace

int main(int argc, char** argv) try {
  namespace nn = kiln::nn;
  auto [data, schema] =
      kiln::data::read_csv(argc > 1 ? argv[1] : KILN_DIABETES_CSV,
                           {.target = "progression", .task = kiln::data::CsvTask::regression});
  auto [train, test] = kiln::data::split(data, {.test_fraction = 0.2, .seed = 1});
  const std::int64_t features = train["features"].dim(1);
  std::printf("diabetes: %lld training and %lld test rows, %lld features\n",
              static_cast<long long>(train.size()), static_cast<long long>(test.size()),
              static_cast<long long>(features));

  // Standardisation with the training rows' statistics, as constants of the graph: the
  // model takes raw measurements. The target is scaled the same way for training.
  std::vector<float> mean, stddev, y_mean, y_std;
  moments(train["features"], mean, stddev);
  moments(train["target"], y_mean, y_std);
  kiln::Graph g;
  kiln::Value x = g.input("features", {kiln::batch, features});
  kiln::Value y = g.input("target", {kiln::batch, 1});
  kiln::Value mu = g.constant(kiln::Tensor::from(mean, {features}), "feature_mean");
  kiln::Value sd = g.constant(kiln::Tensor::from(stddev, {features}), "feature_stddev");
  kiln::Value h = nn::Sequential{nn::Dense(16, nn::Activation::relu), nn::Dense(1)}((x - mu) / sd);
  kiln::Value prediction = h * static_cast<double>(y_std[0]) + static_cast<double>(y_mean[0]);
  kiln::Value loss =
      kiln::mse(h, (y - static_cast<double>(y_mean[0])) / static_cast<double>(y_std[0]));

  kiln::optim::Adam opt(nn::named_parameters(g), {.lr = 1e-2, .weight_decay = 1e-3});
  kiln::train::Trainer trainer(
      g, {.loss = loss, .predictions = prediction, .optimizer = &opt, .metrics = {"r2", "mae"}});
  const auto history = trainer.fit(
      train, {.epochs = 30, .batch_size = 32, .seed = 1, .progress = kiln::train::Progress::none});
  std::printf("train: loss=%.4f r2=%.4f\n", history.epochs.back().at("loss"),
              history.epochs.back().at("r2"));

  const kiln::Tensor predicted = trainer.predict(test);
  const double r2 = kiln::metrics::r2(predicted, test["target"]);
  const double mae = kiln::metrics::mae(predicted, test["target"]);
  // The baseline: the training mean for every test row.
  const kiln::Tensor baseline = kiln::Tensor::full(test["target"].shape(), y_mean[0]);
  const double baseline_r2 = kiln::metrics::r2(baseline, test["target"]);
  std::printf("test: mae=%.2f, R^2 of predicting the training mean=%.4f\n", mae, baseline_r2);
  if (!(r2 > baseline_r2)) std::printf("does not beat the mean\n");
  std::printf("test_r2=%.4f\n", r2);
  return r2 > baseline_r2 ? 0 : 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "train_regression: %s\n", e.what());
  return 1;
}
