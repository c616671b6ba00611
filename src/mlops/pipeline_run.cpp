// run_pipeline: trigger -> validate -> train -> evaluate -> gate -> register and promote (or
// reject) -> result.json and report.html (see kiln/mlops/pipeline.hpp).
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "internal/utc_time.hpp"
#include "io/model_data.hpp"
#include "io/sha256.hpp"
#include "kiln/core/error.hpp"
#include "kiln/mlops/drift.hpp"
#include "kiln/mlops/pipeline.hpp"
#include "kiln/mlops/registry.hpp"
#include "kiln/mlops/validate.hpp"
#include "kiln/report/spec_run.hpp"
#include "kiln/train/from_spec.hpp"
#include "mlops/pipeline_report.hpp"

namespace kiln::mlops {
namespace {

namespace fs = std::filesystem;

using kiln::internal::sha256_file_hex;

std::string fmt(double d) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.4g", d);
  return buf;
}

std::string utc_stamp() { return kiln::internal::utc_now("%Y%m%d-%H%M%S"); }

void write_text(const std::string& path, const std::string& text) {
  kiln::internal::write_file_atomically(
      path, std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(text.data()),
                                          text.size()));
}

/// The training files: the file itself, or a folder's *.csv files sorted by name.
std::vector<std::string> training_files(const std::string& train) {
  std::error_code ec;
  if (!fs::is_directory(train, ec)) {
    if (!fs::exists(train, ec)) throw IoError(train + ": no such training data file or folder");
    return {train};
  }
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(train, ec))
    if (e.is_regular_file() && e.path().extension() == ".csv") files.push_back(e.path().string());
  if (ec) throw IoError(train + ": cannot list the training data folder (" + ec.message() + ")");
  std::sort(files.begin(), files.end());
  if (files.empty()) throw DataError(train + ": the training data folder holds no .csv file");
  return files;
}

/// The files concatenated into one CSV (one header, which every file must share).
void concatenate(const std::vector<std::string>& files, const std::string& out) {
  std::string text, header;
  for (const std::string& f : files) {
    const std::vector<std::uint8_t> bytes = kiln::internal::read_file(f);
    std::string s(bytes.begin(), bytes.end());
    const std::size_t eol = s.find('\n');
    std::string h = s.substr(0, eol);
    if (!h.empty() && h.back() == '\r') h.pop_back();
    if (h.empty()) throw DataError(f + ": row 1: the file has no header row");
    if (header.empty()) {
      header = h;
      text = header + "\n";
    } else if (h != header) {
      throw DataError(f + ": row 1: its header differs from " + files[0] +
                      "'s (every training file must have the same columns)");
    }
    if (eol == std::string::npos) continue;
    std::string body = s.substr(eol + 1);
    if (!body.empty() && body.back() != '\n') body += '\n';
    text += body;
  }
  write_text(out, text);
}

std::string base_name(const std::string& p) { return fs::path(p).filename().string(); }

/// " (row 3: 'oops', row 7: '')": up to three of an anomaly's example rows and values.
std::string examples_of(const Anomaly& a) {
  std::string s;
  for (std::size_t i = 0; i < a.rows.size() && i < 3; ++i)
    s += (s.empty() ? " (" : ", ") + std::string("row ") + std::to_string(a.rows[i]) +
         (i < a.examples.size() ? ": '" + a.examples[i] + "'" : "");
  return s.empty() ? s : s + ")";
}

/// Holds an exclusive flock on work_dir/.lock while a run uses the folder: runs of the same
/// pipeline (a scheduler firing again before the last run ended) take turns.
class WorkDirLock {
 public:
  explicit WorkDirLock(const std::string& dir) {
    const std::string path = (fs::path(dir) / ".lock").string();
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) throw IoError(path + ": cannot open the pipeline's lock file");
    while (::flock(fd_, LOCK_EX) != 0) {
      if (errno != EINTR) {
        ::close(fd_);
        throw IoError(path + ": cannot lock the pipeline's work folder");
      }
    }
  }
  ~WorkDirLock() { ::close(fd_); }
  WorkDirLock(const WorkDirLock&) = delete;
  WorkDirLock& operator=(const WorkDirLock&) = delete;

 private:
  int fd_ = -1;
};

struct Trigger {
  bool fired = false;
  std::string reason;
  std::optional<monitor::DriftReport> snapshot;
};

/// Hashes of the data files that production and its ancestors were trained on.
std::set<std::string> seen_data(const registry::Registry& reg, const std::string& name,
                                const std::optional<registry::Version>& production) {
  std::set<std::string> seen;
  if (!production) return seen;
  std::vector<registry::Version> all = reg.versions(name);
  std::optional<std::int64_t> next = production->version;
  std::set<std::int64_t> visited;
  while (next && visited.insert(*next).second) {
    auto it = std::find_if(all.begin(), all.end(),
                           [&](const registry::Version& v) { return v.version == *next; });
    if (it == all.end()) break;
    for (const auto& [path, hash] : it->lineage.data) seen.insert(hash);
    next = it->lineage.parent;
  }
  return seen;
}

Trigger check_trigger(const PipelineSpec& spec, const registry::Registry& reg,
                      const std::optional<registry::Version>& production,
                      const std::vector<std::pair<std::string, std::string>>& data) {
  Trigger t;
  switch (spec.trigger) {
    case TriggerType::always:
      t.fired = true;
      t.reason = "always runs (trigger \"always\")";
      return t;
    case TriggerType::new_data: {
      const std::set<std::string> seen = seen_data(reg, spec.name, production);
      std::vector<std::string> fresh;
      for (const auto& [path, hash] : data)
        if (!seen.count(hash)) fresh.push_back(base_name(path));
      t.fired = !fresh.empty();
      if (t.fired) {
        t.reason =
            std::to_string(fresh.size()) + " new data file" + (fresh.size() == 1 ? "" : "s") + " (";
        for (std::size_t i = 0; i < fresh.size(); ++i) t.reason += (i ? ", " : "") + fresh[i];
        t.reason += ")";
      } else {
        t.reason = "no new data: production" +
                   (production ? " (v" + std::to_string(production->version) + ")" : "") +
                   " was trained on every file of " + spec.train_data;
      }
      return t;
    }
    case TriggerType::drift:
    case TriggerType::decay: {
      t.snapshot = read_drift_snapshot(spec.trigger_snapshot);
      const monitor::DriftReport& r = *t.snapshot;
      const std::string snap = base_name(spec.trigger_snapshot);
      if (!production) {
        t.reason = snap + ": there is no " + spec.name + "@" + spec.alias + " to retrain";
        return t;
      }
      if (!r.model_hash.empty() && r.model_hash != production->hash) {
        t.reason = snap + " was taken on another model (hash " + r.model_hash.substr(0, 12) +
                   "), not " + spec.name + "@" + spec.alias + " (v" +
                   std::to_string(production->version) + ", hash " +
                   production->hash.substr(0, 12) + "): already replaced";
        return t;
      }
      if (spec.trigger == TriggerType::drift) {
        t.fired = r.drifted;
        t.reason = snap + ": " +
                   (r.drifted ? "drift detected (" + std::to_string(r.features_drifted) +
                                    " feature(s) drifted" +
                                    (r.prediction.drifted ? ", predictions drifted" : "") +
                                    ", max PSI " + fmt(r.max_psi) + ")"
                              : "no drift (max PSI " + fmt(r.max_psi) + ")");
      } else {
        t.fired = r.labels.decayed;
        t.reason =
            snap + ": " + (r.labels.decayed ? "decay alarm: live " : "no decay alarm: live ") +
            r.labels.metric + " " + fmt(r.labels.live) + " vs reference " +
            fmt(r.labels.reference) + " on " + std::to_string(r.labels.labelled) + " labelled rows";
      }
      return t;
    }
  }
  return t;
}

std::string metrics_line(const std::map<std::string, GateRule>& gate,
                         const std::map<std::string, double>& m) {
  std::string s;
  for (const auto& [k, rule] : gate) {
    auto it = m.find(k);
    if (it != m.end()) s += (s.empty() ? "" : ", ") + k + " " + fmt(it->second);
  }
  return s;
}

void finish(const PipelineSpec& spec, PipelineResult& r, const Trigger& trigger,
            const PipelineOptions& options) {
  r.result_path = (fs::path(spec.work_dir) / "result.json").string();
  r.report_path = (fs::path(spec.work_dir) / "report.html").string();
  write_text(r.result_path, r.to_json());
  // One line per run, appended (result.json and report.html are the last run's).
  nlohmann::json line = nlohmann::json::parse(r.to_json());
  line["time"] = utc_stamp();
  std::ofstream history(fs::path(spec.work_dir) / "history.jsonl",
                        std::ios::app | std::ios::binary);
  history << line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  history.flush();
  if (!history)
    throw IoError((fs::path(spec.work_dir) / "history.jsonl").string() + ": cannot append");
  write_text(r.report_path, internal::pipeline_report_html(
                                spec, r, trigger.snapshot ? &*trigger.snapshot : nullptr));
  if (options.on_step) options.on_step("report", r.report_path);
}

}  // namespace

PipelineResult run_pipeline(const PipelineSpec& spec) { return run_pipeline(spec, {}); }

PipelineResult run_pipeline(const PipelineSpec& spec, const PipelineOptions& options) {
  auto note = [&](const std::string& step, const std::string& summary) {
    if (options.on_step) options.on_step(step, summary);
  };
  PipelineResult r;
  r.name = spec.name;
  r.alias = spec.alias;
  std::error_code ec;
  fs::create_directories(spec.work_dir, ec);
  if (ec)
    throw IoError(spec.work_dir + ": cannot create the pipeline's work folder (" + ec.message() +
                  ")");
  const WorkDirLock lock(spec.work_dir);
  registry::Registry reg = registry::open(spec.registry);
  const std::string reference = spec.name + "@" + spec.alias;
  std::optional<registry::Version> production;
  try {
    production = reg.resolve(reference);
  } catch (const NameError&) {
  }
  std::string production_path;
  if (production) {
    r.production = production->version;
    production_path = reg.verified_path(reference);
  }

  const std::vector<std::string> files = training_files(spec.train_data);
  std::vector<std::pair<std::string, std::string>> data;
  for (const std::string& f : files) data.emplace_back(f, sha256_file_hex(f));

  // 1. Trigger.
  Trigger trigger = check_trigger(spec, reg, production, data);
  r.trigger_reason = trigger.reason;
  if (!trigger.fired && options.force) r.trigger_reason += " (run anyway: --force)";
  note("trigger", (trigger.fired || options.force ? "fired: " : "not fired: ") + r.trigger_reason);
  if (!trigger.fired && !options.force) {
    r.outcome = Outcome::skipped;
    finish(spec, r, trigger, options);
    return r;
  }

  // 2. Validate the new data (and the holdout) against production's schema.
  if (production) {
    std::int64_t warnings = 0, rows = 0;
    std::vector<std::string> checked = files;
    checked.push_back(spec.holdout);
    for (const std::string& f : checked) {
      const ValidationReport v =
          validate_csv(production_path, f, {.target = data::TargetColumn::required});
      rows += v.rows;
      warnings += v.warnings;
      for (const Anomaly& a : v.anomalies)
        if (a.severity == Severity::error)
          r.reasons.push_back(base_name(f) + ": " + a.message + examples_of(a));
    }
    if (!r.reasons.empty()) {
      r.outcome = Outcome::invalid_data;
      note("validate", std::to_string(r.reasons.size()) + " error(s): " + r.reasons.front());
      finish(spec, r, trigger, options);
      return r;
    }
    note("validate", std::to_string(checked.size()) + " file(s), " + std::to_string(rows) +
                         " rows: no errors against v" + std::to_string(production->version) +
                         "'s schema (" + std::to_string(warnings) + " warning(s))");
  } else {
    note("validate", "no " + reference + " yet: nothing to validate against");
  }

  // 3. Train the candidate (seeded: the same inputs give the same model file).
  std::string train_csv = files.front();
  if (files.size() > 1) {
    train_csv = (fs::path(spec.work_dir) / "train.csv").string();
    concatenate(files, train_csv);
  }
  const train::ModelSpec model_spec = train::ModelSpec::load(spec.spec);
  train::SpecTrainOptions to;
  to.target = spec.target;
  to.seed = spec.seed;
  to.epochs = spec.epochs;
  to.progress = options.progress_file ? train::Progress::lines : train::Progress::none;
  to.progress_file = options.progress_file;
  if (spec.warm_start && production) to.initial_model = production_path;
  std::string run_dir =
      (fs::path(spec.work_dir) / "runs" / (spec.name + "-" + utc_stamp())).string();
  for (int i = 2; fs::exists(run_dir, ec); ++i)
    run_dir = (fs::path(spec.work_dir) / "runs" /
               (spec.name + "-" + utc_stamp() + "-" + std::to_string(i)))
                  .string();
  report::RecordedRun run = report::train_and_record(
      model_spec, train_csv, to, {.record = {.dir = run_dir}, .explain = false, .report = true});
  r.run_dir = run.dir;
  r.candidate_path = (fs::path(spec.work_dir) / "candidate.kiln").string();
  run.result.save(r.candidate_path);
  note("train", "candidate trained on " + std::to_string(run.result.train_rows) + " rows" +
                    (to.initial_model.empty()
                         ? std::string(" from scratch")
                         : ", warm-started from v" + std::to_string(production->version) + " (" +
                               std::to_string(run.result.warm_started.size()) + " parameters)") +
                    "; run " + r.run_dir);

  // 4. Evaluate both on the holdout.
  const train::Evaluation cand = train::evaluate_csv(r.candidate_path, spec.holdout);
  r.candidate_metrics = cand.metrics;
  if (production) r.production_metrics = train::evaluate_csv(production_path, spec.holdout).metrics;
  note("evaluate", base_name(spec.holdout) + " (" + std::to_string(cand.rows) +
                       " rows): candidate " + metrics_line(spec.gate, r.candidate_metrics) +
                       (production ? "; production v" + std::to_string(production->version) + " " +
                                         metrics_line(spec.gate, r.production_metrics)
                                   : std::string()));

  // 5. The gate.
  r.checks =
      apply_gate(spec.gate, r.candidate_metrics, production ? &r.production_metrics : nullptr);
  for (const GateCheck& c : r.checks)
    if (!c.passed) r.reasons.push_back(c.reason);
  if (!r.reasons.empty()) {
    r.outcome = Outcome::rejected;
    std::string all;
    for (const auto& s : r.reasons) all += (all.empty() ? "" : "; ") + s;
    note("gate", "rejected: " + all);
    finish(spec, r, trigger, options);
    return r;
  }
  note("gate", "passed (" + std::to_string(r.checks.size()) + " check(s))");

  // 6. Register (the registry returns the version it has for a known content hash) and
  //    promote (unless the alias already points there).
  registry::Lineage lineage;
  lineage.parent = r.production;
  lineage.data = data;
  lineage.spec = run.result.spec.to_json();
  const train::TrainingSpec& t = run.result.spec.training;
  lineage.params = {
      {"seed", std::to_string(t.seed)},
      {"epochs", std::to_string(t.epochs)},
      {"batch_size", std::to_string(t.batch_size)},
      {"optimizer", t.optimizer.name},
      {"lr", fmt(t.optimizer.lr)},
      {"warm_start",
       to.initial_model.empty() ? std::string("no") : "v" + std::to_string(production->version)},
      {"holdout", spec.holdout},
      {"holdout_sha256", sha256_file_hex(spec.holdout)},
      {"trigger", r.trigger_reason}};
  for (const auto& [k, v] : run.result.test) lineage.metrics.emplace_back(k, v);
  for (const auto& [k, v] : r.candidate_metrics) lineage.metrics.emplace_back("holdout_" + k, v);
  lineage.run_dir = r.run_dir;
  lineage.source = spec.source.empty() ? "kiln ct" : "kiln ct " + spec.source;
  const registry::Version v = reg.register_model(spec.name, r.candidate_path, lineage);
  r.version = v.version;
  r.already_registered = !v.registered;
  note("register", spec.name + " v" + std::to_string(v.version) + " (hash " + v.hash.substr(0, 12) +
                       ")" +
                       (r.already_registered ? ": already registered by an earlier run" : ""));

  std::optional<registry::Version> now;
  try {
    now = reg.resolve(reference);
  } catch (const NameError&) {
  }
  r.already_promoted = now && now->version == v.version;
  if (!r.already_promoted) reg.set_alias(spec.name, spec.alias, v.version, lineage.source);
  r.outcome = Outcome::promoted;
  note("promote", reference + " -> v" + std::to_string(v.version) +
                      (r.already_promoted ? " (already)"
                       : production       ? " (was v" + std::to_string(production->version) + ")"
                                          : std::string()));
  finish(spec, r, trigger, options);
  return r;
}

}  // namespace kiln::mlops
