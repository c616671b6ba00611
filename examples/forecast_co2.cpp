// Time-series forecasting with an LSTM on a real series: the monthly mean CO2 concentration
// at Mauna Loa, 1958-03 .. 2001-12 (data/co2.csv, Keeling and Whorf, public domain; see
// data/README.md). The model reads the last 24 months and forecasts the next one. It is
// trained on every window that ends before the held-out tail (the last 60 months) and then
// forecasts each month of the tail from the 24 true months before it (one step ahead).
//
// The baseline is the seasonal-naive forecast, the value of the same month a year earlier,
// which knows the season but not the trend. The program fails unless the LSTM's mean
// absolute error on the tail beats it. The last line printed is test_mae_gain=<value>: the
// baseline's MAE divided by the LSTM's (above 1 when the LSTM wins).
//
// The saved model (forecast_co2.kiln; input "window" [B, 24, 1] in ppm, output "forecast"
// [B, 1] in ppm) holds its scaling in the graph: it takes raw values.
//
//   forecast_co2 [path/to/co2.csv] [model.kiln]
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <fstream>
#include <string>
#include <vector>

#include "kiln/core/error.hpp"
#include "kiln/data/dataset.hpp"
#include "kiln/io/model_file.hpp"
#include "kiln/nn/layers.hpp"
#include "kiln/nn/sequence.hpp"
#include "kiln/ops.hpp"
#include "kiln/train/metrics.hpp"
#include "kiln/train/trainer.hpp"

#ifndef KILN_CO2_CSV
#define KILN_CO2_CSV "data/co2.csv"
#endif

namespace {

constexpr std::int64_t kWindow = 24;  // months the model reads
constexpr std::int64_t kTail = 60;    // months held out at the end
constexpr double kScale = 2.0;        // ppm: the model sees (value - last value) / kScale

// The co2 column of data/co2.csv (month,co2,interpolated), in order.
std::vector<float> read_series(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw kiln::IoError("forecast_co2: cannot open '" + path + "'");
  std::string line;
  std::getline(in, line);
  if (line.rfind("month,co2", 0) != 0)
    throw kiln::ValueError("forecast_co2: '" + path + "' does not start with month,co2");
  std::vector<float> series;
  for (std::int64_t row = 2; std::getline(in, line); ++row) {
    const auto a = line.find(',');
    const auto b = a == std::string::npos ? a : line.find(',', a + 1);
    try {
      series.push_back(std::stof(line.substr(a + 1, b - a - 1)));
    } catch (const std::exception&) {
      throw kiln::ValueError("forecast_co2: '" + path + "' line " + std::to_string(row) +
                             ": no co2 value in '" + line + "'");
    }
  }
  return series;
}

// Windows ending before `end` (exclusive): x [N, kWindow, 1] and the next values y [N, 1].
kiln::data::Dataset windows(const std::vector<float>& s, std::int64_t first, std::int64_t end) {
  std::vector<float> x, y;
  for (std::int64_t t = first; t < end; ++t) {  // t: the month to forecast
    for (std::int64_t k = t - kWindow; k < t; ++k) x.push_back(s[static_cast<std::size_t>(k)]);
    y.push_back(s[static_cast<std::size_t>(t)]);
  }
  const auto n = static_cast<std::int64_t>(y.size());
  return kiln::data::Dataset({{"window", kiln::Tensor::from(x, {n, kWindow, 1})},
                              {"target", kiln::Tensor::from(y, {n, 1})}},
                             {.features = "window", .target = "target"});
}

}  // namespace

int main(int argc, char** argv) try {
  namespace nn = kiln::nn;
  const std::vector<float> series = read_series(argc > 1 ? argv[1] : KILN_CO2_CSV);
  const auto months = static_cast<std::int64_t>(series.size());
  if (months < kWindow + kTail + 100)
    throw kiln::ValueError("forecast_co2: too few months (" + std::to_string(months) + ")");
  const kiln::data::Dataset train = windows(series, kWindow, months - kTail);
  const kiln::data::Dataset test = windows(series, months - kTail, months);
  std::printf("co2: %lld months, %lld training windows, %lld held-out months\n",
              static_cast<long long>(months), static_cast<long long>(train.size()),
              static_cast<long long>(test.size()));

  // The graph: values relative to the window's last month, an LSTM, the last step's state,
  // a dense layer for the change to the next month.
  kiln::Graph g;
  kiln::Value window = g.input("window", {kiln::batch, kWindow, 1});
  kiln::Value target = g.input("target", {kiln::batch, 1});
  kiln::Value last = kiln::reshape(kiln::slice(window, 1, kWindow - 1, kWindow), {-1, 1});
  kiln::Value relative = (window - kiln::reshape(last, {-1, 1, 1})) / kScale;
  const nn::RecurrentOutput r = nn::lstm(relative, {.hidden = 32, .name = "lstm", .seed = 7});
  kiln::Value state = kiln::reshape(kiln::slice(r.sequence, 1, kWindow - 1, kWindow), {-1, 32});
  kiln::Value change = nn::dense(state, 1, {.name = "head", .seed = 7});
  kiln::Value forecast = last + change * kScale;
  kiln::Value loss = kiln::mse(change, (target - last) / kScale);

  kiln::optim::Adam opt(nn::named_parameters(g), {.lr = 5e-3});
  kiln::train::Trainer trainer(
      g, {.loss = loss, .predictions = forecast, .optimizer = &opt, .metrics = {"mae"}});
  const auto history = trainer.fit(
      train, {.epochs = 30, .batch_size = 32, .seed = 3, .progress = kiln::train::Progress::none});
  std::printf("train: loss=%.5f mae=%.3f ppm\n", history.epochs.back().at("loss"),
              history.epochs.back().at("mae"));

  const kiln::Tensor predicted = trainer.predict(test);
  const double mae = kiln::metrics::mae(predicted, test["target"]);
  std::vector<float> naive;
  for (std::int64_t t = months - kTail; t < months; ++t)
    naive.push_back(series[static_cast<std::size_t>(t - 12)]);
  const double naive_mae =
      kiln::metrics::mae(kiln::Tensor::from(naive, {kTail, 1}), test["target"]);
  std::printf("held-out %lld months: LSTM mae=%.3f ppm, seasonal-naive mae=%.3f ppm\n",
              static_cast<long long>(kTail), mae, naive_mae);

  const std::string out = argc > 2 ? argv[2] : "forecast_co2.kiln";
  kiln::ModelMetadata meta;
  meta.name = "forecast_co2";
  meta.version = "1.0.0";
  meta.description = "forecast_co2: Mauna Loa monthly CO2, 24-month window, LSTM(32)";
  meta.metrics.emplace_back("test_mae", mae);
  meta.metrics.emplace_back("seasonal_naive_mae", naive_mae);
  kiln::save_model(
      out, g,
      {.inputs = {window}, .outputs = {forecast}, .output_names = {"forecast"}, .metadata = meta});
  std::printf("saved %s\n", out.c_str());

  if (!(mae < naive_mae)) std::printf("does not beat the seasonal-naive forecast\n");
  std::printf("test_mae_gain=%.4f\n", naive_mae / mae);
  return mae < naive_mae ? 0 : 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "forecast_co2: %s\n", e.what());
  return 1;
}
