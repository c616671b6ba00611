// The MLOps loop on UCI digits, from one command (issue 12's worked scenario):
//   1. train v1 on half of digits.csv, register it and make it digits@production;
//   2. load digits@production from the registry and run it with a drift monitor on clean
//      held-out rows (no drift), then on shifted rows (pixels inverted: 16 - x): the
//      monitor flags drift and writes a snapshot;
//   3. the continuous-training pipeline examples/mlops/retrain_on_drift.json, triggered by
//      that snapshot, validates the new (inverted) data, trains a candidate, gates it
//      against v1 on an inverted holdout and promotes v2 (from scratch: warm-starting from
//      v1 gives 0.91 instead of 0.95 here, the inverted world wants other weights);
//   4. examples/mlops/shuffled_labels.json trains on the same rows with shuffled labels:
//      the gate rejects the candidate and says why; production stays v2.
//
//   mlops_digits [WORK_DIR]            the whole story (default WORK_DIR: ./mlops_digits_work;
//                                      what an earlier run wrote there is removed first)
//   mlops_digits --prepare WORK_DIR    only write the data files, spec and pipeline files
//                                      (for running the same story with the kiln command)
//   mlops_digits --monitor WORK_DIR    only step 2: WORK_DIR/drift.json from the
//                                      production model of WORK_DIR/models
// Its last lines are "drift detected: yes", "v2 promoted: yes", "bad candidate rejected:
// yes" (the example test checks them) and it exits 1 if any of them is "no".
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "kiln/core/error.hpp"
#include "kiln/infer/model.hpp"
#include "kiln/mlops/pipeline.hpp"
#include "kiln/mlops/registry.hpp"
#include "kiln/monitor/monitor.hpp"
#include "kiln/train/from_spec.hpp"

#ifndef KILN_DIGITS_CSV
#define KILN_DIGITS_CSV "data/digits.csv"
#endif
#ifndef KILN_MLOPS_DIR
#define KILN_MLOPS_DIR "examples/mlops"
#endif

namespace {

namespace fs = std::filesystem;

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw kiln::IoError(p.string() + ": cannot open");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_text(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream out(p, std::ios::binary);
  out << text;
  if (!out) throw kiln::IoError(p.string() + ": cannot write");
}

/// digits.csv as its header and rows of 65 integers (64 pixels 0..16, then the label).
struct Digits {
  std::string header;
  std::vector<std::vector<int>> rows;
};

Digits read_digits(const std::string& path) {
  std::istringstream in(read_text(path));
  Digits d;
  std::getline(in, d.header);
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    std::vector<int> row;
    std::istringstream cells(line);
    for (std::string cell; std::getline(cells, cell, ',');) row.push_back(std::stoi(cell));
    if (row.size() != 65) throw kiln::DataError(path + ": a row without 65 values");
    d.rows.push_back(std::move(row));
  }
  return d;
}

/// The rows whose index i has i % m in `keep`, pixels inverted (16 - x) when `invert`,
/// labels shuffled (a seeded permutation) when `shuffle`.
std::string csv_of(const Digits& d, int m, std::vector<int> keep, bool invert, bool shuffle) {
  std::vector<std::vector<int>> rows;
  for (std::size_t i = 0; i < d.rows.size(); ++i)
    for (int k : keep)
      if (static_cast<int>(i % static_cast<std::size_t>(m)) == k) rows.push_back(d.rows[i]);
  if (shuffle) {
    std::uint64_t s = 2026;
    for (std::size_t i = rows.size() - 1; i > 0; --i) {
      s = s * 6364136223846793005ULL + 1442695040888963407ULL;
      std::swap(rows[i][64], rows[(s >> 33) % (i + 1)][64]);
    }
  }
  std::string out = d.header + "\n";
  for (const auto& r : rows) {
    for (int c = 0; c < 65; ++c) {
      const int v =
          invert && c < 64 ? 16 - r[static_cast<std::size_t>(c)] : r[static_cast<std::size_t>(c)];
      out += std::to_string(v) + (c == 64 ? "\n" : ",");
    }
  }
  return out;
}

/// The data files, the spec and the pipeline files of the story, in `dir`: v1 trains on the
/// even rows; odd rows are held out (i % 4 == 1 for the monitor, 3 for the holdouts); the
/// new world's training rows are the even rows inverted.
void prepare(const fs::path& dir) {
  const Digits d = read_digits(KILN_DIGITS_CSV);
  write_text(dir / "data/v1/digits_v1.csv", csv_of(d, 2, {0}, false, false));
  write_text(dir / "data/holdout_clean.csv", csv_of(d, 4, {3}, false, false));
  write_text(dir / "data/monitor_clean.csv", csv_of(d, 4, {1}, false, false));
  write_text(dir / "data/monitor_shifted.csv", csv_of(d, 4, {1}, true, false));
  write_text(dir / "data/shifted/digits_inverted.csv", csv_of(d, 2, {0}, true, false));
  write_text(dir / "data/holdout_shifted.csv", csv_of(d, 4, {3}, true, false));
  write_text(dir / "data/shuffled/digits_inverted_shuffled.csv", csv_of(d, 2, {0}, true, true));
  for (const char* f :
       {"digits_small.json", "bootstrap.json", "retrain_on_drift.json", "shuffled_labels.json"})
    if (fs::path(KILN_MLOPS_DIR) / f != dir / f)
      write_text(dir / f, read_text(fs::path(KILN_MLOPS_DIR) / f));
}

/// Runs digits@production with a monitor over a CSV file's rows; returns the report and
/// writes the snapshot to `snapshot` (when not empty).
kiln::monitor::DriftReport monitor_rows(kiln::registry::Registry& reg, const fs::path& csv,
                                        const std::string& snapshot) {
  const kiln::infer::Model model = reg.load("digits@production", {.apply_preprocessing = true});
  // Every row observed (the default samples one in 32, the cost budget of a hot path).
  kiln::monitor::Monitor monitor(model, {.sample_every = 1});
  const kiln::data::Dataset rows = kiln::train::read_csv_for_model(
      reg.verified_path("digits@production"), csv.string(), kiln::data::TargetColumn::ignore);
  monitor.run(model, {{"pixels", rows["features"]}});
  if (!snapshot.empty()) monitor.write_snapshot(snapshot);
  return monitor.report();
}

void print_drift(const char* what, const kiln::monitor::DriftReport& r) {
  std::printf("%s: %llu rows, %lld of %zu features drifted, predictions %s, max PSI %.3f -> %s\n",
              what, static_cast<unsigned long long>(r.rows_observed),
              static_cast<long long>(r.features_drifted), r.features.size(),
              r.prediction.drifted ? "drifted" : "stable", r.max_psi,
              r.drifted ? "DRIFT" : "no drift");
}

kiln::mlops::PipelineResult run(const fs::path& dir, const std::string& file) {
  std::printf("\n$ kiln ct %s\n", file.c_str());
  const kiln::mlops::PipelineSpec spec = kiln::mlops::PipelineSpec::load((dir / file).string());
  const kiln::mlops::PipelineResult r = kiln::mlops::run_pipeline(
      spec, {.on_step = [](const std::string& step, const std::string& summary) {
        std::printf("  %-9s %s\n", (step + ":").c_str(), summary.c_str());
      }});
  std::printf("  outcome:  %s\n", kiln::mlops::outcome_name(r.outcome));
  for (const std::string& reason : r.reasons) std::printf("  reason:   %s\n", reason.c_str());
  return r;
}

}  // namespace

int main(int argc, char** argv) try {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "--prepare" || mode == "--monitor") {
    if (argc != 3) throw kiln::ValueError("usage: mlops_digits " + mode + " WORK_DIR");
    const fs::path dir = fs::absolute(argv[2]);
    if (mode == "--prepare") {
      prepare(dir);
      std::printf("wrote the data, spec and pipeline files into %s\n", dir.string().c_str());
    } else {
      kiln::registry::Registry reg = kiln::registry::open((dir / "models").string());
      print_drift("shifted rows", monitor_rows(reg, dir / "data/monitor_shifted.csv",
                                               (dir / "drift.json").string()));
      std::printf("wrote %s\n", (dir / "drift.json").string().c_str());
    }
    return 0;
  }
  const fs::path dir = fs::absolute(argc > 1 ? argv[1] : "mlops_digits_work");
  // A fresh start: what an earlier run wrote there goes (nothing else in the folder).
  for (const char* old : {"models", "ct", "data", "drift.json", "digits_v1.kiln"})
    fs::remove_all(dir / old);
  prepare(dir);

  // 1. v1: trained on the even rows of digits.csv, registered, promoted.
  const kiln::train::ModelSpec spec =
      kiln::train::ModelSpec::load((dir / "digits_small.json").string());
  const kiln::train::SpecTrainResult v1 = kiln::train::train_from_spec(
      spec, (dir / "data/v1/digits_v1.csv").string(), {.progress = kiln::train::Progress::none});
  v1.save((dir / "digits_v1.kiln").string());
  kiln::registry::Registry reg = kiln::registry::open((dir / "models").string());
  kiln::registry::Lineage lineage;
  lineage.source = "mlops_digits example";
  lineage.data = {{(dir / "data/v1/digits_v1.csv").string(), ""}};  // hashed on register
  const kiln::registry::Version version1 =
      reg.register_model("digits", (dir / "digits_v1.kiln").string(), lineage);
  reg.set_alias("digits", "production", version1.version, "mlops_digits example");
  std::printf(
      "v1: trained on %lld rows, test accuracy %.4f; registered as digits v%lld, "
      "digits@production -> v%lld\n",
      static_cast<long long>(v1.train_rows), v1.test.at("test_accuracy"),
      static_cast<long long>(version1.version),
      static_cast<long long>(reg.resolve("digits@production").version));

  // 2. The production model with a monitor: clean held-out rows, then inverted ones.
  const kiln::monitor::DriftReport clean = monitor_rows(reg, dir / "data/monitor_clean.csv", "");
  print_drift("monitor on clean held-out rows", clean);
  const kiln::monitor::DriftReport shifted =
      monitor_rows(reg, dir / "data/monitor_shifted.csv", (dir / "drift.json").string());
  print_drift("monitor on shifted rows (16 - x)", shifted);
  std::printf("snapshot written to %s\n", (dir / "drift.json").string().c_str());

  // 3. The pipeline triggered by the snapshot retrains on the inverted rows.
  const kiln::mlops::PipelineResult retrain = run(dir, "retrain_on_drift.json");
  // 4. A candidate trained on shuffled labels.
  const kiln::mlops::PipelineResult bad = run(dir, "shuffled_labels.json");

  const kiln::registry::Version production = reg.resolve("digits@production");
  std::printf("\nregistry %s: %zu versions; digits@production -> v%lld\n",
              (dir / "models").string().c_str(), reg.versions("digits").size(),
              static_cast<long long>(production.version));
  const bool drift = !clean.drifted && shifted.drifted;
  const bool promoted = retrain.outcome == kiln::mlops::Outcome::promoted && retrain.version == 2 &&
                        production.version == 2;
  const bool rejected = bad.outcome == kiln::mlops::Outcome::rejected && !bad.reasons.empty() &&
                        !bad.version && reg.versions("digits").size() == 2;
  std::printf("drift detected: %s\n", drift ? "yes" : "no");
  std::printf("v2 promoted: %s\n", promoted ? "yes" : "no");
  std::printf("bad candidate rejected: %s (%s)\n", rejected ? "yes" : "no",
              bad.reasons.empty() ? "" : bad.reasons.front().c_str());
  return drift && promoted && rejected ? 0 : 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "mlops_digits: %s\n", e.what());
  return 2;
}
