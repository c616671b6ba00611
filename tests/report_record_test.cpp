// Run records (kiln/report/run_record.hpp, docs/run-format.md): tensor_stats against a
// double-precision reference; a recorded Trainer fit on iris whose files are parsed back
// and compared with the History, with gradients, weights and activations taken by an
// independent callback (copies and a Capture) and with update ratios computed here; fused
// and unfused plans; a crash's partial line; resume; a failed fit; a custom loop.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kiln/core/error.hpp"
#include "kiln/core/rng.hpp"
#include "kiln/data/csv.hpp"
#include "kiln/nn/layers.hpp"
#include "kiln/ops.hpp"
#include "kiln/optim/optimizer.hpp"
#include "kiln/report/run_record.hpp"
#include "kiln/report/spec_run.hpp"
#include "kiln/train/metrics.hpp"
#include "kiln/train/trainer.hpp"
#include "trainer_test_util.hpp"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using kiln_test::fresh_dir;

const std::string iris_csv = std::string(KILN_DATASETS_DIR) + "/iris.csv";

// ---- an independent reference of the statistics, in double precision ----------------

struct RefStats {
  std::int64_t count = 0, finite = 0;
  double mean = 0, std = 0, min = 0, max = 0, norm = 0, zero_fraction = 0;
  std::vector<std::int64_t> hist;
};

RefStats reference(const std::vector<double>& v, std::int64_t bins) {
  RefStats r;
  r.count = static_cast<std::int64_t>(v.size());
  std::vector<double> f;
  for (double x : v)
    if (std::isfinite(x)) f.push_back(x);
  r.finite = static_cast<std::int64_t>(f.size());
  r.hist.assign(static_cast<std::size_t>(bins), 0);
  if (f.empty()) return r;
  long double sum = 0, sq = 0;
  for (double x : f) sum += x, sq += static_cast<long double>(x) * x;
  r.mean = static_cast<double>(sum / f.size());
  long double dev = 0;
  for (double x : f) dev += (x - static_cast<long double>(r.mean)) * (x - r.mean);
  r.std = static_cast<double>(std::sqrt(dev / f.size()));
  r.min = *std::min_element(f.begin(), f.end());
  r.max = *std::max_element(f.begin(), f.end());
  r.norm = static_cast<double>(std::sqrt(sq));
  r.zero_fraction =
      static_cast<double>(std::count(f.begin(), f.end(), 0.0)) / static_cast<double>(f.size());
  for (double x : f) {
    std::int64_t b = 0;
    if (r.max > r.min)
      b = std::min<std::int64_t>(
          bins - 1, static_cast<std::int64_t>(
                        std::floor((x - r.min) * (static_cast<double>(bins) / (r.max - r.min)))));
    ++r.hist[static_cast<std::size_t>(b)];
  }
  return r;
}

std::vector<double> values_of(const kiln::Tensor& t) {
  const kiln::Tensor c = t.contiguous().to(kiln::DType::f64);
  return c.to_vector<double>();
}

void expect_near_rel(double a, double b, double rel, const std::string& what) {
  EXPECT_LE(std::abs(a - b), rel * std::max(1.0, std::abs(b))) << what << ": " << a << " vs " << b;
}

/// A layers.jsonl entry's statistics against the reference of a tensor.
void expect_entry_matches(const json& e, const kiln::Tensor& t, double rel) {
  const RefStats r =
      reference(values_of(t), static_cast<std::int64_t>(e["histogram"]["counts"].size()));
  const std::string what = e["layer"].get<std::string>() + " " + e["kind"].get<std::string>();
  EXPECT_EQ(e["count"].get<std::int64_t>(), r.count) << what;
  expect_near_rel(e["mean"].get<double>(), r.mean, rel, what + " mean");
  expect_near_rel(e["std"].get<double>(), r.std, rel, what + " std");
  expect_near_rel(e["norm"].get<double>(), r.norm, rel, what + " norm");
  EXPECT_EQ(e["min"].get<double>(), r.min) << what;
  EXPECT_EQ(e["max"].get<double>(), r.max) << what;
  EXPECT_EQ(e["zero_fraction"].get<double>(), r.zero_fraction) << what;
  EXPECT_EQ(e["histogram"]["counts"].get<std::vector<std::int64_t>>(), r.hist) << what;
  std::vector<std::int64_t> shape = t.shape().dims();
  EXPECT_EQ(e["shape"].get<std::vector<std::int64_t>>(), shape) << what;
}

std::vector<std::string> file_lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> out;
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

std::vector<json> jsonl(const std::string& path) {
  std::vector<json> out;
  for (const std::string& l : file_lines(path)) out.push_back(json::parse(l));
  return out;
}

json read_json(const std::string& path) {
  std::ifstream in(path);
  return json::parse(in);
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// ---- tensor_stats --------------------------------------------------------------------

TEST(TensorStats, MatchesADoublePrecisionReference) {
  kiln::Rng rng(7);
  std::vector<float> x;
  for (int i = 0; i < 10007; ++i) {
    const double u = rng.uniform(0.0, 1.0);
    x.push_back(u < 0.2 ? 0.0f : static_cast<float>(rng.normal(0.5, 2.0)));
  }
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  x[5] = nan;
  x[77] = inf;
  x[300] = -inf;
  const kiln::Tensor t = kiln::Tensor::from(x, kiln::Shape({10007}));
  for (std::int64_t bins : {1, 7, 30}) {
    const kiln::report::TensorStats s = kiln::report::tensor_stats(t, bins);
    std::vector<double> xd(x.begin(), x.end());
    const RefStats r = reference(xd, bins);
    EXPECT_EQ(s.count, 10007);
    EXPECT_EQ(s.nonfinite, 3);
    expect_near_rel(s.mean, r.mean, 1e-12, "mean");
    expect_near_rel(s.std, r.std, 1e-12, "std");
    expect_near_rel(s.norm, r.norm, 1e-12, "norm");
    EXPECT_EQ(s.min, r.min);
    EXPECT_EQ(s.max, r.max);
    EXPECT_EQ(s.zero_fraction, r.zero_fraction);
    EXPECT_GT(s.zero_fraction, 0.15);
    EXPECT_EQ(s.histogram, r.hist) << "bins " << bins;
    EXPECT_EQ(s.histogram_lo, r.min);
    EXPECT_EQ(s.histogram_hi, r.max);
    std::int64_t total = 0;
    for (auto c : s.histogram) total += c;
    EXPECT_EQ(total, 10004);  // the 3 non-finite elements are not counted
  }
}

TEST(TensorStats, FiniteTensorsOfEverySizeMatchTheReference) {
  // Sizes around the 8-lane and 256-element blocks of the vectorised path.
  kiln::Rng rng(11);
  for (std::int64_t n : {1, 7, 8, 9, 255, 256, 257, 1000, 4099}) {
    std::vector<float> x;
    for (std::int64_t i = 0; i < n; ++i)
      x.push_back(i % 5 == 0 ? 0.0f : static_cast<float>(rng.normal(-1.0, 3.0)));
    const auto s = kiln::report::tensor_stats(kiln::Tensor::from(x, kiln::Shape({n})), 16);
    const RefStats r = reference(std::vector<double>(x.begin(), x.end()), 16);
    EXPECT_EQ(s.count, n);
    EXPECT_EQ(s.nonfinite, 0);
    expect_near_rel(s.mean, r.mean, 1e-12, "mean");
    expect_near_rel(s.std, r.std, 1e-12, "std");
    expect_near_rel(s.norm, r.norm, 1e-12, "norm");
    EXPECT_EQ(s.min, r.min) << n;
    EXPECT_EQ(s.max, r.max) << n;
    EXPECT_EQ(s.zero_fraction, r.zero_fraction) << n;
    EXPECT_EQ(s.histogram, r.hist) << n;
  }
}

TEST(TensorStats, HandComputedCases) {
  // 0, 1, 2, 3 in 3 bins over [0, 3]: widths of 1; 3 == hi goes into the last bin.
  auto s = kiln::report::tensor_stats(kiln::Tensor::from({0.0f, 1.0f, 2.0f, 3.0f}, {4}), 3);
  EXPECT_EQ(s.histogram, (std::vector<std::int64_t>{1, 1, 2}));
  EXPECT_DOUBLE_EQ(s.mean, 1.5);
  EXPECT_DOUBLE_EQ(s.std, std::sqrt(1.25));
  EXPECT_DOUBLE_EQ(s.norm, std::sqrt(14.0));
  EXPECT_DOUBLE_EQ(s.zero_fraction, 0.25);
  // A constant: every count in bin 0.
  s = kiln::report::tensor_stats(kiln::Tensor::full({2, 3}, 4.0), 5);
  EXPECT_EQ(s.histogram, (std::vector<std::int64_t>{6, 0, 0, 0, 0}));
  EXPECT_EQ(s.std, 0.0);
  // f64 works; NaN only: counted, every statistic NaN, empty histogram.
  s = kiln::report::tensor_stats(kiln::Tensor::from({-2.0, 2.0}, {2}), 2);
  EXPECT_EQ(s.histogram, (std::vector<std::int64_t>{1, 1}));
  const double nan = std::numeric_limits<double>::quiet_NaN();
  s = kiln::report::tensor_stats(kiln::Tensor::from({nan, nan}, {2}), 4);
  EXPECT_EQ(s.count, 2);
  EXPECT_EQ(s.nonfinite, 2);
  EXPECT_TRUE(std::isnan(s.mean) && std::isnan(s.min) && std::isnan(s.norm));
  EXPECT_EQ(s.histogram, (std::vector<std::int64_t>{0, 0, 0, 0}));
  EXPECT_THROW(kiln::report::tensor_stats(kiln::Tensor::from({1, 2}, {2}), 4), kiln::ValueError);
  EXPECT_THROW(kiln::report::tensor_stats(kiln::Tensor::from({1.0f}, {1}), 0), kiln::ValueError);
}

// ---- a recorded Trainer fit ------------------------------------------------------------

/// Iris with a 4-16-3 MLP (features standardised by hand: the record reads them raw).
struct Iris {
  kiln::data::Dataset train;
  kiln_test::Model model;
  explicit Iris(double lr = 0.05) : model(false, false, lr) {
    kiln::data::CsvData d = kiln::data::read_csv(iris_csv, {.target = "species"});
    train = d.dataset;
  }
};

/// What the test sees on the sampled steps, taken independently of the recorder: the
/// layer outputs (a Capture), gradients and weights before and after the update.
class Witness : public kiln::train::Callback {
 public:
  explicit Witness(std::int64_t every) : every_(every) { capture_.layer("fc1").layer("fc2"); }
  kiln::RunObserver* observer(kiln::train::Trainer&, std::int64_t step) override {
    return step % every_ == 0 ? &capture_ : nullptr;
  }
  void on_gradients(kiln::train::Trainer& t, std::span<const kiln::Tensor> grads) override {
    const std::int64_t step = t.global_step();
    if (step % every_ != 0) return;
    Seen& s = seen[step];
    s.fc1 = capture_.layer_value("fc1").clone();
    s.fc2 = capture_.layer_value("fc2").clone();
    for (const auto& g : grads) s.grads.push_back(g.clone());
    for (const auto& [name, w] : t.step().named_parameters()) s.before.push_back(w.clone());
  }
  void on_step_end(kiln::train::Trainer& t, std::int64_t step,
                   const kiln::train::Logs& logs) override {
    losses.push_back(logs.at("loss"));
    if (step % every_ != 0) return;
    for (const auto& [name, w] : t.step().named_parameters()) seen[step].after.push_back(w.clone());
  }
  struct Seen {
    kiln::Tensor fc1, fc2;
    std::vector<kiln::Tensor> grads, before, after;
  };
  std::map<std::int64_t, Seen> seen;
  std::vector<double> losses;

 private:
  std::int64_t every_;
  kiln::Capture capture_;
};

double norm_d(const kiln::Tensor& t) {
  double s = 0;
  for (double v : values_of(t)) s += v * v;
  return std::sqrt(s);
}

double diff_norm_d(const kiln::Tensor& a, const kiln::Tensor& b) {
  const auto x = values_of(a), y = values_of(b);
  double s = 0;
  for (std::size_t i = 0; i < x.size(); ++i) s += (x[i] - y[i]) * (x[i] - y[i]);
  return std::sqrt(s);
}

TEST(RunRecord, TrainerFitIsRecordedAndReadsBack) {
  const std::string dir = fresh_dir("record_fit") + "/run";
  Iris iris;
  const std::int64_t every = 7;
  kiln::report::RunRecorder rec({.dir = dir, .sample_every = every, .histogram_bins = 12});
  rec.set_config(R"({"lr": 0.05, "hidden": 16, "optimizer": {"name": "sgd"}})");
  rec.set_seed(3);
  rec.add_data_file(iris_csv);
  auto witness = std::make_shared<Witness>(every);
  kiln::train::Trainer trainer(iris.model.g, iris.model.options({"accuracy"}));
  const kiln::train::History h =
      trainer.fit(iris.train, {.epochs = 3,
                               .batch_size = 16,
                               .seed = 3,
                               .validation_split = 0.2,
                               .callbacks = {witness, kiln::report::record(rec)},
                               .progress = kiln::train::Progress::none});
  json run = read_json(dir + "/run.json");
  EXPECT_EQ(run["status"], "running");  // finish() stays with the caller
  rec.finish("completed", {{"test_accuracy", 0.5}});
  EXPECT_TRUE(rec.finished());

  // 120 training rows (20% validation) in batches of 16: 8 steps per epoch.
  const std::int64_t steps = 3 * 8;
  ASSERT_EQ(witness->losses.size(), static_cast<std::size_t>(steps));

  // metrics.jsonl: a line per step (its loss as the trainer logged it), a line per epoch
  // with exactly the History's values.
  const std::vector<json> m = jsonl(dir + "/metrics.jsonl");
  std::int64_t step_lines = 0, epoch_lines = 0;
  double last_time = 0;
  for (const json& l : m) {
    EXPECT_GE(l["time"].get<double>(), last_time);
    last_time = l["time"].get<double>();
    if (l["kind"] == "step") {
      const std::int64_t s = l["step"];
      EXPECT_EQ(s, step_lines);
      EXPECT_EQ(l["epoch"].get<std::int64_t>(), s / 8);
      EXPECT_TRUE(kiln_test::same_bits(l["loss"].get<double>(),
                                       witness->losses[static_cast<std::size_t>(s)]));
      EXPECT_TRUE(l.contains("lr"));
      ++step_lines;
    } else {
      ASSERT_EQ(l["kind"], "epoch");
      const auto e = l["epoch"].get<std::size_t>();
      ASSERT_LT(e, h.epochs.size());
      EXPECT_EQ(l["step"].get<std::int64_t>(), 8 * static_cast<std::int64_t>(e + 1));
      std::set<std::string> keys;
      for (const auto& [k, v] : l.items())
        if (k != "kind" && k != "step" && k != "epoch" && k != "time") keys.insert(k);
      std::set<std::string> want;
      for (const auto& [k, v] : h.epochs[e]) {
        want.insert(k);
        ASSERT_TRUE(l.contains(k)) << k;
        EXPECT_TRUE(kiln_test::same_bits(l[k].get<double>(), v)) << k << " epoch " << e;
      }
      EXPECT_EQ(keys, want);
      EXPECT_TRUE(want.count("val_accuracy") && want.count("accuracy") && want.count("loss"));
      ++epoch_lines;
    }
  }
  EXPECT_EQ(step_lines, steps);
  EXPECT_EQ(epoch_lines, 3);

  // layers.jsonl: steps 0, 7, 14, 21; every layer's activation, gradients and weights.
  const std::vector<json> layers = jsonl(dir + "/layers.jsonl");
  ASSERT_EQ(layers.size(), 4u);
  const std::vector<std::string> params = {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"};
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const json& line = layers[i];
    const std::int64_t step = line["step"];
    EXPECT_EQ(step, static_cast<std::int64_t>(i) * every);
    EXPECT_EQ(line["epoch"].get<std::int64_t>(), step / 8);
    const Witness::Seen& seen = witness->seen.at(step);
    std::map<std::string, const json*> by;
    for (const json& e : line["layers"])
      by[e["kind"].get<std::string>() + ":" + e["tensor"].get<std::string>()] = &e;
    ASSERT_EQ(by.size(), 2u + 2 * params.size()) << line.dump();
    const json& a1 = *by.at("activation:fc1");
    EXPECT_EQ(a1["op"], "relu");
    EXPECT_EQ(a1["layer"], "fc1");
    expect_entry_matches(a1, seen.fc1, 1e-9);
    EXPECT_GT(a1["zero_fraction"].get<double>(), 0.0);  // some ReLU outputs are 0
    expect_entry_matches(*by.at("activation:fc2"), seen.fc2, 1e-9);
    for (std::size_t p = 0; p < params.size(); ++p) {
      const json& g = *by.at("gradient:" + params[p]);
      EXPECT_EQ(g["layer"], params[p].substr(0, 3));
      expect_entry_matches(g, seen.grads[p], 1e-9);
      const json& w = *by.at("weight:" + params[p]);
      expect_entry_matches(w, seen.after[p], 1e-9);
      const double before = norm_d(seen.before[p]);
      if (before == 0.0) {
        EXPECT_TRUE(w["update_ratio"].is_null());  // biases start at 0
      } else {
        const double ratio = diff_norm_d(seen.after[p], seen.before[p]) / before;
        EXPECT_GT(ratio, 0.0);
        expect_near_rel(w["update_ratio"].get<double>(), ratio, 1e-12, params[p] + " ratio");
      }
    }
  }

  // graph.json: the layers, their edges and the fused plan of the training step.
  const json g = read_json(dir + "/graph.json");
  ASSERT_EQ(g["layers"].size(), 3u) << g.dump();
  EXPECT_EQ(g["layers"][0]["name"], "features");
  EXPECT_EQ(g["layers"][0]["type"], "Input");
  EXPECT_EQ(g["layers"][0]["output_shape"], json::array({-1, 4}));
  EXPECT_EQ(g["layers"][1]["name"], "fc1");
  EXPECT_EQ(g["layers"][1]["type"], "Dense");
  EXPECT_EQ(g["layers"][1]["trainable"], 4 * 16 + 16);
  EXPECT_EQ(g["layers"][1]["inputs"], json::array({"features"}));
  EXPECT_EQ(g["layers"][1]["ops"], json::array({"matmul+bias+relu"}));
  EXPECT_EQ(g["layers"][1]["kernels"].size(), 1u);
  EXPECT_EQ(g["layers"][2]["inputs"], json::array({"fc1"}));
  EXPECT_EQ(g["layers"][2]["ops"], json::array({"matmul+bias"}));
  EXPECT_EQ(g["outputs"], json::array({"fc2"}));
  EXPECT_EQ(g["trainable"], 4 * 16 + 16 + 16 * 3 + 3);

  // run.json: status, config, environment, final values.
  run = read_json(dir + "/run.json");
  EXPECT_EQ(run["format"], "kiln.run/1");
  EXPECT_EQ(run["name"], "run");
  EXPECT_EQ(run["status"], "completed");
  EXPECT_TRUE(run["error"].is_null());
  EXPECT_TRUE(run["finished"].is_string());
  EXPECT_EQ(run["config"]["optimizer"]["name"], "sgd");
  EXPECT_EQ(run["sample_every"], every);
  EXPECT_EQ(run["final"]["test_accuracy"], 0.5);
  const json& env = run["environment"];
  EXPECT_EQ(env["seed"], 3);
  EXPECT_EQ(env["kiln_version"], "0.1.0");
  EXPECT_GE(env["threads"].get<int>(), 1);
  EXPECT_TRUE(env["backend"].is_string());
  const std::string kernel = g["layers"][1]["kernels"][0];
  EXPECT_EQ(kernel.rfind(env["backend"].get<std::string>() + "_", 0), 0u) << kernel;
  EXPECT_EQ(env["os"].get<std::string>().rfind("Linux", 0), 0u);
  ASSERT_EQ(env["data_files"].size(), 1u);
  EXPECT_EQ(env["data_files"][0]["path"], iris_csv);
  EXPECT_EQ(env["data_files"][0]["bytes"], fs::file_size(iris_csv));
  EXPECT_EQ(env["data_files"][0]["sha256"].get<std::string>().size(), 64u);
}

TEST(RunRecord, DataFileHashIsSha256) {
  const std::string dir = fresh_dir("record_hash");
  std::ofstream(dir + "/abc.txt") << "abc";
  kiln::report::RunRecorder rec({.dir = dir + "/run"});
  rec.add_data_file(dir + "/abc.txt");
  const json run = read_json(dir + "/run/run.json");
  // FIPS 180-2's example: SHA-256("abc").
  EXPECT_EQ(run["environment"]["data_files"][0]["sha256"],
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(run["environment"]["data_files"][0]["bytes"], 3);
  EXPECT_THROW(rec.add_data_file(dir + "/missing.csv"), kiln::IoError);
  EXPECT_THROW(rec.set_config("[1, 2]"), kiln::ValueError);
  EXPECT_THROW(rec.set_config("{oops"), kiln::ValueError);
  EXPECT_THROW(rec.finish("done"), kiln::ValueError);
  rec.finish();
}

TEST(RunRecord, RefusesAnExistingRunUnlessResumed) {
  const std::string dir = fresh_dir("record_refuse") + "/run";
  {
    kiln::report::RunRecorder rec({.dir = dir});
    rec.log_epoch(0, 10, {{"loss", 1.0}});
    rec.finish("stopped");
  }
  try {
    kiln::report::RunRecorder again({.dir = dir});
    FAIL() << "an existing run was overwritten";
  } catch (const kiln::IoError& e) {
    EXPECT_NE(std::string(e.what()).find(dir), std::string::npos) << e.what();
  }
  EXPECT_EQ(jsonl(dir + "/metrics.jsonl").size(), 1u);  // untouched
  kiln::report::RunRecorder resumed({.dir = dir, .resume = true});
  EXPECT_EQ(read_json(dir + "/run.json")["status"], "running");
  resumed.log_epoch(1, 20, {{"loss", 0.5}});
  resumed.finish();
  const auto m = jsonl(dir + "/metrics.jsonl");
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[1]["loss"], 0.5);
  EXPECT_GE(m[1]["time"].get<double>(), m[0]["time"].get<double>());
  EXPECT_EQ(read_json(dir + "/run.json")["status"], "completed");
}

TEST(RunRecord, APartialLastLineLeavesEarlierLinesAndIsCutOnResume) {
  const std::string dir = fresh_dir("record_crash") + "/run";
  {
    kiln::report::RunRecorder rec({.dir = dir, .log_every = 1});
    for (int s = 0; s < 5; ++s) rec.log_step(s, 0, {{"loss", 1.0 / (s + 1)}, {"lr", 0.1}});
    rec.finish();
  }
  // A crash in the middle of writing the sixth line.
  { std::ofstream(dir + "/metrics.jsonl", std::ios::app) << R"({"kind":"step","step":5,"ep)"; }
  std::vector<std::string> lines = file_lines(dir + "/metrics.jsonl");
  ASSERT_EQ(lines.size(), 6u);
  for (std::size_t i = 0; i < 5; ++i) {
    const json l = json::parse(lines[i]);
    EXPECT_EQ(l["step"], static_cast<int>(i));
    EXPECT_EQ(l["loss"].get<double>(), 1.0 / static_cast<double>(i + 1));
  }
  EXPECT_FALSE(json::accept(lines[5]));
  // Resuming cuts the partial line, so lines appended after it parse.
  {
    kiln::report::RunRecorder rec({.dir = dir, .resume = true});
    rec.log_step(5, 0, {{"loss", 0.125}});
    rec.finish();
  }
  const auto m = jsonl(dir + "/metrics.jsonl");
  ASSERT_EQ(m.size(), 6u);
  EXPECT_EQ(m[5]["step"], 5);
  EXPECT_EQ(m[5]["loss"], 0.125);
}

TEST(RunRecord, NonFiniteNumbersAreNull) {
  const std::string dir = fresh_dir("record_null") + "/run";
  kiln::report::RunRecorder rec({.dir = dir});
  const double inf = std::numeric_limits<double>::infinity();
  rec.log_step(0, 0, {{"loss", std::numeric_limits<double>::quiet_NaN()}, {"lr", inf}});
  rec.finish("completed", {{"x", -inf}});
  const json l = jsonl(dir + "/metrics.jsonl").at(0);
  EXPECT_TRUE(l["loss"].is_null());
  EXPECT_TRUE(l["lr"].is_null());
  EXPECT_TRUE(read_json(dir + "/run.json")["final"]["x"].is_null());
}

TEST(RunRecord, AFailedFitIsMarkedFailedWithItsError) {
  const std::string dir = fresh_dir("record_failed") + "/run";
  // Linear regression of petal width on the raw iris features with SGD at lr 1e6: the
  // loss overflows to inf within a few steps.
  kiln::data::CsvData d = kiln::data::read_csv(
      iris_csv, {.target = "petal_width", .task = kiln::data::CsvTask::regression});
  kiln::Graph g;
  kiln::Value x = g.input("features", kiln::Shape({kiln::batch, 4}));
  kiln::Value y = g.input("target", kiln::Shape({kiln::batch, 1}));
  kiln::Value pred = kiln::nn::dense(x, 1, {.name = "fc"});
  kiln::optim::SGD opt(kiln::nn::named_parameters(g), {.lr = 1e6});
  kiln::report::RunRecorder rec({.dir = dir, .sample_every = 1});
  kiln::train::Trainer trainer(
      g, {.loss = kiln::mse(pred, y), .predictions = pred, .optimizer = &opt});
  const kiln::data::Dataset& train = d.dataset;
  std::string error;
  try {
    trainer.fit(train, {.epochs = 20,
                        .batch_size = 16,
                        .callbacks = {kiln::report::record(rec)},
                        .progress = kiln::train::Progress::none});
  } catch (const kiln::NonFiniteError& e) {
    error = e.what();
  }
  ASSERT_FALSE(error.empty()) << "the fit did not fail";
  EXPECT_TRUE(rec.finished());
  const json run = read_json(dir + "/run.json");
  EXPECT_EQ(run["status"], "failed");
  EXPECT_EQ(run["error"], error);
  // Every line written before the failure parses.
  EXPECT_FALSE(jsonl(dir + "/metrics.jsonl").empty());
  EXPECT_FALSE(jsonl(dir + "/layers.jsonl").empty());
}

TEST(RunRecord, ARecorderDestroyedBeforeFinishMarksTheRunFailed) {
  const std::string dir = fresh_dir("record_destroyed") + "/run";
  { kiln::report::RunRecorder rec({.dir = dir}); }
  const json run = read_json(dir + "/run.json");
  EXPECT_EQ(run["status"], "failed");
  EXPECT_EQ(run["error"], "the recorder was destroyed before finish");
}

// ---- a custom loop, fused and unfused ----------------------------------------------------

/// One custom-loop run of the 4-16-3 MLP on the first 32 iris rows, recorded by hand with
/// StepSample; returns the layers.jsonl lines.
std::vector<json> custom_loop(const std::string& dir, bool fuse, std::int64_t steps) {
  kiln_test::Model model;
  kiln::TrainStep step(model.loss, {.fuse = fuse});
  kiln::optim::SGD opt(step.named_parameters(), {.lr = 0.05});
  kiln::report::RunRecorder rec({.dir = dir, .sample_every = 2});
  rec.set_model(model.g, {model.logits}, &step.executable());
  kiln::data::CsvData d = kiln::data::read_csv(iris_csv, {.target = "species"});
  const kiln::data::Dataset batch = d.dataset.rows(45, 77);  // setosa and versicolor
  const kiln::Feeds feeds = {{"features", batch["features"]}, {"target", batch["target"]}};
  for (std::int64_t s = 0; s < steps; ++s) {
    kiln::report::StepSample sample = rec.sample(s, 0, step);
    EXPECT_EQ(sample.active(), s % 2 == 0);
    EXPECT_EQ(sample.observer() != nullptr, s % 2 == 0 || s == 0);
    const double loss = step.run(feeds, sample.observer());
    sample.before_update();
    opt.step(step.gradients());
    sample.after_update();
    rec.log_step(s, 0, {{"loss", loss}, {"lr", opt.lr()}});
  }
  rec.log_epoch(0, steps, {{"loss", 0.0}});
  rec.finish();
  return jsonl(dir + "/layers.jsonl");
}

TEST(RunRecord, CustomLoopWithStepSample) {
  const std::string dir = fresh_dir("record_loop") + "/run";
  const std::vector<json> layers = custom_loop(dir, true, 5);
  ASSERT_EQ(layers.size(), 3u);  // steps 0, 2, 4
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(layers[i]["step"], 2 * static_cast<int>(i));
    EXPECT_EQ(layers[i]["layers"].size(), 10u);
    EXPECT_EQ(layers[i]["layers"][0]["kind"], "activation");
    EXPECT_EQ(layers[i]["layers"][0]["shape"], json::array({32, 16}));
  }
  EXPECT_EQ(jsonl(dir + "/metrics.jsonl").size(), 6u);
  // The plan seen at step 0 is in graph.json.
  const json g = read_json(dir + "/graph.json");
  EXPECT_EQ(g["layers"][1]["ops"], json::array({"matmul+bias+relu"}));
}

TEST(RunRecord, FusedAndUnfusedStepsGiveTheSameActivationStatistics) {
  const std::string base = fresh_dir("record_fuse");
  const std::vector<json> fused = custom_loop(base + "/fused", true, 3);
  const std::vector<json> plain = custom_loop(base + "/plain", false, 3);
  ASSERT_EQ(fused.size(), plain.size());
  for (std::size_t i = 0; i < fused.size(); ++i) {
    const json& a = fused[i]["layers"];
    const json& b = plain[i]["layers"];
    ASSERT_EQ(a.size(), b.size());
    for (std::size_t k = 0; k < a.size(); ++k) {
      EXPECT_EQ(a[k]["kind"], b[k]["kind"]);
      EXPECT_EQ(a[k]["tensor"], b[k]["tensor"]);
      if (a[k]["kind"] != "activation") continue;
      EXPECT_EQ(a[k]["op"], b[k]["op"]);  // relu, and fc2's bias add
      for (const char* key : {"mean", "std", "min", "max", "norm", "zero_fraction"})
        EXPECT_NEAR(a[k][key].get<double>(), b[k][key].get<double>(), 1e-4)
            << a[k]["tensor"] << " " << key;
    }
  }
  EXPECT_EQ(fused[0]["layers"][0]["op"], "relu");
  const json g = read_json(base + "/plain/graph.json");
  const auto ops = g["layers"][1]["ops"].get<std::vector<std::string>>();
  ASSERT_GE(ops.size(), 3u) << g.dump();
  EXPECT_EQ(ops.front(), "matmul");
  EXPECT_EQ(ops.back(), "relu");
}

// ---- train_and_record ----------------------------------------------------------------------

TEST(RunRecord, TrainAndRecordWritesTheRunFolder) {
  const std::string dir = fresh_dir("record_spec") + "/iris";
  auto spec =
      kiln::train::ModelSpec::load(std::string(KILN_DATASETS_DIR) + "/../examples/specs/iris.json");
  const kiln::report::RecordedRun run = kiln::report::train_and_record(
      spec, iris_csv, {.target = "species", .epochs = 5, .progress = kiln::train::Progress::none},
      {.record = {.dir = dir, .sample_every = 5}});
  const auto& r = run.result;
  EXPECT_EQ(run.dir, dir);
  EXPECT_EQ(slurp(dir + "/model.kiln"),
            std::string(r.model.begin(), r.model.end()));  // the trained model file

  const json runj = read_json(dir + "/run.json");
  EXPECT_EQ(runj["status"], "completed");
  EXPECT_EQ(runj["config"]["task"]["target"], "species");
  EXPECT_EQ(runj["final"]["test_accuracy"].get<double>(), r.test.at("test_accuracy"));
  EXPECT_EQ(runj["environment"]["data_files"][0]["path"], iris_csv);

  const json data = read_json(dir + "/data.json");
  EXPECT_EQ(data["rows"], 150);
  EXPECT_EQ(data["train_rows"].get<std::int64_t>() + data["test_rows"].get<std::int64_t>(), 150);
  EXPECT_EQ(data["target"], "species");
  EXPECT_EQ(data["task"], "classification");
  ASSERT_EQ(data["columns"].size(), 4u);
  EXPECT_EQ(data["columns"][0]["name"], "sepal_length");
  EXPECT_EQ(data["columns"][0]["kind"], "numeric");
  ASSERT_EQ(data["classes"].size(), 3u);
  std::int64_t class_rows = 0;
  for (const json& c : data["classes"]) class_rows += c["count"].get<std::int64_t>();
  EXPECT_EQ(class_rows, data["train_rows"]);
  EXPECT_EQ(data["classes"][0]["name"], r.labels.at(0));
  // The training rows' sepal_length range, computed here.
  const kiln::Tensor x = r.train_data["features"];
  double lo = 1e9, hi = -1e9;
  for (std::int64_t i = 0; i < x.dim(0); ++i) {
    lo = std::min(lo, x.at(i * 4));
    hi = std::max(hi, x.at(i * 4));
  }
  EXPECT_EQ(data["columns"][0]["min"].get<double>(), lo);
  EXPECT_EQ(data["columns"][0]["max"].get<double>(), hi);

  // evaluation.json: the confusion matrix of the test rows (rows: true class) and per-class
  // scores computed here from it.
  const json ev = read_json(dir + "/evaluation.json");
  EXPECT_EQ(ev["rows"], r.test_rows);
  EXPECT_EQ(ev["labels"].get<std::vector<std::string>>(), r.labels);
  EXPECT_EQ(r.labels.size(), 3u);
  const auto cm = ev["confusion"].get<std::vector<std::vector<std::int64_t>>>();
  ASSERT_EQ(cm.size(), 3u);
  std::int64_t total = 0, diagonal = 0;
  for (std::size_t t = 0; t < 3; ++t) {
    std::int64_t row = 0, col = 0;
    for (std::size_t p = 0; p < 3; ++p) row += cm[t][p], col += cm[p][t];
    total += row;
    diagonal += cm[t][t];
    const json& pc = ev["per_class"][t];
    EXPECT_EQ(pc["support"], row);
    EXPECT_DOUBLE_EQ(pc["recall"].get<double>(), row ? double(cm[t][t]) / double(row) : 0.0);
    EXPECT_DOUBLE_EQ(pc["precision"].get<double>(), col ? double(cm[t][t]) / double(col) : 0.0);
  }
  EXPECT_EQ(total, r.test_rows);
  EXPECT_DOUBLE_EQ(static_cast<double>(diagonal) / static_cast<double>(total),
                   r.test.at("test_accuracy"));
  EXPECT_DOUBLE_EQ(ev["metrics"]["accuracy"].get<double>(), r.test.at("test_accuracy"));

  // The fit's lines: an epoch line per History entry.
  std::int64_t epochs = 0;
  for (const json& l : jsonl(dir + "/metrics.jsonl")) epochs += l["kind"] == "epoch";
  EXPECT_EQ(epochs, static_cast<std::int64_t>(r.history.epochs.size()));
  EXPECT_FALSE(jsonl(dir + "/layers.jsonl").empty());
  EXPECT_TRUE(fs::exists(dir + "/graph.json"));

  // explanations.json: importance of the 4 columns over the test rows, integrated
  // gradients of the first 3 test rows (their sum is the output difference within 1%).
  const json ex = read_json(dir + "/explanations.json");
  EXPECT_EQ(ex["permutation_importance"]["rows"], r.test_rows);
  EXPECT_EQ(ex["permutation_importance"]["features"].size(), 4u);
  ASSERT_EQ(ex["attributions"].size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    const json& a = ex["attributions"][i];
    EXPECT_EQ(a["row"], static_cast<int>(i));
    double sum = 0;
    for (const json& v : a["attributions"]) sum += v.get<double>();
    const double diff = a["output"].get<double>() - a["baseline_output"].get<double>();
    EXPECT_NEAR(sum, diff, 0.01 * std::max(std::abs(diff), 1e-6));
  }
  EXPECT_FALSE(read_json(dir + "/run.json").contains("explanations_error"));
  // report.html (kiln::report::write_report) at the end.
  EXPECT_EQ(run.report, dir + "/report.html");
  EXPECT_GT(fs::file_size(run.report), 1000u);
}

TEST(RunRecord, TrainAndRecordMarksABadDataFileFailed) {
  const std::string dir = fresh_dir("record_spec_bad") + "/run";
  auto spec =
      kiln::train::ModelSpec::load(std::string(KILN_DATASETS_DIR) + "/../examples/specs/iris.json");
  EXPECT_THROW(kiln::report::train_and_record(spec, dir + "/../missing.csv", {.target = "species"},
                                              {.record = {.dir = dir}}),
               kiln::IoError);
  const json run = read_json(dir + "/run.json");
  EXPECT_EQ(run["status"], "failed");
  EXPECT_NE(run["error"].get<std::string>().find("missing.csv"), std::string::npos);
}

}  // namespace
