// Pipeline files <-> PipelineSpec (a strict reader naming the file and JSON path of every bad
// or unknown entry), the gate, and PipelineResult as JSON.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "internal/json_reader.hpp"
#include "kiln/core/error.hpp"
#include "kiln/mlops/pipeline.hpp"

namespace kiln::mlops {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

using kiln::internal::describe;

/// A pipeline JSON object being read (errors are FormatErrors).
class Reader : public kiln::internal::JsonReader<FormatError> {
 public:
  using JsonReader::JsonReader;

  std::string string(const std::string& key, bool needed, const std::string& fallback = {}) {
    const json* v = needed ? &required(key) : get(key);
    if (!v) return fallback;
    if (!v->is_string() || v->get<std::string>().empty())
      fail(at(key), "expected a non-empty string, got " + describe(*v));
    return v->get<std::string>();
  }
  std::optional<double> number(const std::string& key) {
    const json* v = get(key);
    if (!v) return std::nullopt;
    if (!v->is_number() || !std::isfinite(v->get<double>()))
      fail(at(key), "expected a finite number, got " + describe(*v));
    return v->get<double>();
  }
  std::optional<std::int64_t> positive_integer(const std::string& key) {
    const json* v = get(key);
    if (!v) return std::nullopt;
    if (!v->is_number_integer() || v->get<std::int64_t>() < 1 ||
        v->get<std::int64_t>() > (std::int64_t{1} << 40))
      fail(at(key), "expected a positive integer, got " + describe(*v));
    return v->get<std::int64_t>();
  }
  std::optional<std::uint64_t> seed(const std::string& key) {
    const json* v = get(key);
    if (!v) return std::nullopt;
    if (!v->is_number_unsigned() && !(v->is_number_integer() && v->get<std::int64_t>() >= 0))
      fail(at(key), "expected a non-negative integer, got " + describe(*v));
    return v->get<std::uint64_t>();
  }
};

const char* trigger_name(TriggerType t) {
  switch (t) {
    case TriggerType::always:
      return "always";
    case TriggerType::new_data:
      return "new_data";
    case TriggerType::drift:
      return "drift";
    case TriggerType::decay:
      return "decay";
  }
  return "always";
}

std::string resolve(const std::string& base_dir, const std::string& p) {
  fs::path path(p);
  if (path.is_relative()) path = fs::path(base_dir.empty() ? "." : base_dir) / path;
  return fs::absolute(path).lexically_normal().string();
}

std::string fmt(double d) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.4g", d);
  return buf;
}

json number_or_null(double d) { return std::isfinite(d) ? json(d) : json(nullptr); }

}  // namespace

PipelineSpec PipelineSpec::from_json(const std::string& text, const std::string& source,
                                     const std::string& base_dir) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::parse_error& e) {
    throw FormatError(source + ": not valid JSON (" + e.what() + ")");
  }
  PipelineSpec s;
  s.source = source;
  Reader r(j, "", source);
  s.name = r.string("name", true);
  s.registry = resolve(base_dir, r.string("registry", true));
  s.spec = resolve(base_dir, r.string("spec", true));
  {
    Reader d(r.required("data"), "data", source);
    s.train_data = resolve(base_dir, d.string("train", true));
    s.holdout = resolve(base_dir, d.string("holdout", true));
    s.target = d.string("target", false);
    d.finish();
  }
  if (const json* t = r.get("trigger")) {
    Reader tr(*t, "trigger", source);
    const std::string type = tr.string("type", true);
    if (type == "always")
      s.trigger = TriggerType::always;
    else if (type == "new_data")
      s.trigger = TriggerType::new_data;
    else if (type == "drift")
      s.trigger = TriggerType::drift;
    else if (type == "decay")
      s.trigger = TriggerType::decay;
    else
      tr.fail("trigger.type",
              "expected one of always, new_data, drift, decay, got \"" + type + "\"");
    const bool needs_snapshot = s.trigger == TriggerType::drift || s.trigger == TriggerType::decay;
    const std::string snapshot = tr.string("snapshot", needs_snapshot);
    if (!snapshot.empty()) {
      if (!needs_snapshot)
        tr.fail("trigger.snapshot", "only the drift and decay triggers read a snapshot");
      s.trigger_snapshot = resolve(base_dir, snapshot);
    }
    tr.finish();
  }
  r.boolean("warm_start", s.warm_start);
  s.alias = r.string("alias", false, "production");
  const std::string work = r.string("work_dir", false);
  s.work_dir = resolve(base_dir, work.empty() ? s.name + "-ct" : work);
  {
    Reader g(r.required("gate"), "gate", source);
    const json& metrics = g.required("metrics");
    if (!metrics.is_object() || metrics.empty())
      g.fail("gate.metrics", "expected an object of at least one metric, got " + describe(metrics));
    for (auto it = metrics.begin(); it != metrics.end(); ++it) {
      const std::string path = "gate.metrics." + it.key();
      Reader m(*it, path, source);
      GateRule rule;
      rule.min = m.number("min");
      rule.max = m.number("max");
      rule.tolerance = m.number("tolerance").value_or(0.0);
      if (rule.tolerance < 0) m.fail(path + ".tolerance", "expected a number >= 0");
      rule.higher_is_better = metric_higher_is_better(it.key());
      m.boolean("higher_is_better", rule.higher_is_better);
      if (rule.min && rule.max && *rule.min > *rule.max)
        m.fail(path, "min " + fmt(*rule.min) + " is above max " + fmt(*rule.max));
      m.finish();
      s.gate[it.key()] = rule;
    }
    g.finish();
  }
  s.seed = r.seed("seed");
  s.epochs = r.positive_integer("epochs");
  r.finish();
  return s;
}

PipelineSpec PipelineSpec::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(path + ": cannot open the pipeline file");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw IoError(path + ": cannot read the pipeline file");
  return from_json(text.str(), path, fs::absolute(fs::path(path)).parent_path().string());
}

std::string PipelineSpec::to_json() const {
  json j;
  j["name"] = name;
  j["registry"] = registry;
  j["spec"] = spec;
  j["data"] = {{"train", train_data}, {"holdout", holdout}};
  if (!target.empty()) j["data"]["target"] = target;
  j["trigger"] = {{"type", trigger_name(trigger)}};
  if (!trigger_snapshot.empty()) j["trigger"]["snapshot"] = trigger_snapshot;
  j["warm_start"] = warm_start;
  j["alias"] = alias;
  if (!work_dir.empty()) j["work_dir"] = work_dir;
  json metrics = json::object();
  for (const auto& [k, rule] : gate) {
    json m = {{"tolerance", rule.tolerance}, {"higher_is_better", rule.higher_is_better}};
    if (rule.min) m["min"] = *rule.min;
    if (rule.max) m["max"] = *rule.max;
    metrics[k] = m;
  }
  j["gate"] = {{"metrics", metrics}};
  if (seed) j["seed"] = *seed;
  if (epochs) j["epochs"] = *epochs;
  return j.dump(2, ' ', false, json::error_handler_t::replace);
}

const char* outcome_name(Outcome outcome) {
  switch (outcome) {
    case Outcome::promoted:
      return "promoted";
    case Outcome::rejected:
      return "rejected";
    case Outcome::skipped:
      return "skipped";
    case Outcome::invalid_data:
      return "invalid_data";
  }
  return "skipped";
}

int outcome_exit_code(Outcome outcome) {
  switch (outcome) {
    case Outcome::promoted:
      return 0;
    case Outcome::rejected:
      return 10;
    case Outcome::skipped:
      return 11;
    case Outcome::invalid_data:
      return 2;
  }
  return 1;
}

bool metric_higher_is_better(const std::string& metric) {
  if (metric.find("loss") != std::string::npos) return false;
  for (const char* lower : {"mse", "mae", "rmse"})
    if (metric == lower || metric == std::string("test_") + lower ||
        metric == std::string("val_") + lower)
      return false;
  return true;
}

std::vector<GateCheck> apply_gate(const std::map<std::string, GateRule>& gate,
                                  const std::map<std::string, double>& candidate,
                                  const std::map<std::string, double>* production) {
  std::vector<GateCheck> checks;
  for (const auto& [metric, rule] : gate) {
    auto it = candidate.find(metric);
    if (it == candidate.end()) {
      std::string have;
      for (const auto& [k, v] : candidate) have += (have.empty() ? "" : ", ") + k;
      throw ValueError("gate.metrics." + metric + ": the evaluation has no metric '" + metric +
                       "' (it has: " + have + ")");
    }
    GateCheck c;
    c.metric = metric;
    c.candidate = it->second;
    std::vector<std::string> why;
    if (std::isnan(c.candidate)) why.push_back(metric + " is not a number");
    if (rule.min && !(c.candidate >= *rule.min))
      why.push_back(metric + " " + fmt(c.candidate) + " < minimum " + fmt(*rule.min));
    if (rule.max && !(c.candidate <= *rule.max))
      why.push_back(metric + " " + fmt(c.candidate) + " > maximum " + fmt(*rule.max));
    if (production) {
      auto p = production->find(metric);
      if (p != production->end() && std::isfinite(p->second)) {
        c.production = p->second;
        const double loss =
            rule.higher_is_better ? p->second - c.candidate : c.candidate - p->second;
        if (!(loss <= rule.tolerance))
          why.push_back(metric + " " + fmt(c.candidate) + " is worse than production's " +
                        fmt(p->second) + " by " + fmt(loss) + " (tolerance " + fmt(rule.tolerance) +
                        ")");
      }
    }
    c.passed = why.empty();
    for (const auto& w : why) c.reason += (c.reason.empty() ? "" : "; ") + w;
    checks.push_back(std::move(c));
  }
  return checks;
}

std::string PipelineResult::to_json() const {
  json j;
  j["name"] = name;
  j["alias"] = alias;
  j["outcome"] = outcome_name(outcome);
  j["exit_code"] = outcome_exit_code(outcome);
  j["trigger_reason"] = trigger_reason;
  j["version"] = version ? json(*version) : json(nullptr);
  j["production"] = production ? json(*production) : json(nullptr);
  json list = json::array();
  for (const GateCheck& c : this->checks)
    list.push_back({{"metric", c.metric},
                    {"candidate", number_or_null(c.candidate)},
                    {"production", c.production ? number_or_null(*c.production) : json(nullptr)},
                    {"passed", c.passed},
                    {"reason", c.reason}});
  j["checks"] = list;
  j["reasons"] = reasons;
  json cm = json::object(), pm = json::object();
  for (const auto& [k, v] : candidate_metrics) cm[k] = number_or_null(v);
  for (const auto& [k, v] : production_metrics) pm[k] = number_or_null(v);
  j["candidate_metrics"] = cm;
  j["production_metrics"] = pm;
  j["candidate_path"] = candidate_path;
  j["run_dir"] = run_dir;
  j["report_path"] = report_path;
  j["result_path"] = result_path;
  j["already_registered"] = already_registered;
  j["already_promoted"] = already_promoted;
  return j.dump(2, ' ', false, json::error_handler_t::replace);
}

}  // namespace kiln::mlops
