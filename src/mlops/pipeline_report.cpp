// The continuous-training report: one self-contained HTML page per pipeline run.
#include <filesystem>
#include <string>

#include "kiln/mlops/drift.hpp"
#include "mlops/pipeline_report.hpp"
#include "report/svg.hpp"

namespace kiln::mlops::internal {
namespace {

using report::internal::escape;
using report::internal::short_number;

std::string row(const std::string& key, const std::string& value) {
  return "<tr><th>" + escape(key) + "</th><td>" + escape(value) + "</td></tr>\n";
}

const char* outcome_color(Outcome o) {
  switch (o) {
    case Outcome::promoted:
      return "#1a7f37";
    case Outcome::rejected:
      return "#cf222e";
    case Outcome::invalid_data:
      return "#bc4c00";
    case Outcome::skipped:
      return "#57606a";
  }
  return "#57606a";
}

}  // namespace

std::string pipeline_report_html(const PipelineSpec& spec, const PipelineResult& r,
                                 const monitor::DriftReport* snapshot) {
  std::string h;
  h += "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>kiln ct: " +
       escape(spec.name) + " " + outcome_name(r.outcome) + "</title>\n";
  h += "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:70em;color:#24292f}"
       "table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #d0d7de;"
       "padding:.3em .7em;text-align:left}td.num{text-align:right;font-variant-numeric:"
       "tabular-nums}.pass{color:#1a7f37}.fail{color:#cf222e;font-weight:bold}"
       ".outcome{display:inline-block;padding:.2em .8em;border-radius:1em;color:#fff}"
       "</style></head><body>\n";
  h += "<h1>Continuous training: " + escape(spec.name) + "</h1>\n";
  h += "<p id=\"outcome\" data-outcome=\"" + std::string(outcome_name(r.outcome)) +
       "\">Outcome: <span class=\"outcome\" style=\"background:" + outcome_color(r.outcome) +
       "\">" + outcome_name(r.outcome) + "</span> (exit code " +
       std::to_string(outcome_exit_code(r.outcome)) + ")</p>\n";

  h += "<h2>Run</h2>\n<table id=\"run\">\n";
  h += row("trigger", r.trigger_reason);
  h += row("alias", spec.name + "@" + spec.alias);
  h += row("production before", r.production ? "v" + std::to_string(*r.production) : "none");
  if (r.version)
    h += row("candidate", "v" + std::to_string(*r.version) +
                              (r.already_registered ? " (already registered)" : ""));
  else if (!r.candidate_path.empty())
    h += row("candidate", r.candidate_path + " (not registered)");
  if (r.outcome == Outcome::promoted)
    h += row("promoted", spec.name + "@" + spec.alias + " -> v" + std::to_string(*r.version) +
                             (r.already_promoted ? " (already)" : ""));
  h += row("training data", spec.train_data);
  h += row("holdout", spec.holdout);
  h += row("warm start", spec.warm_start ? "from production" : "no");
  if (!r.run_dir.empty()) {
    const std::string rel =
        std::filesystem::path(r.run_dir).lexically_relative(spec.work_dir).string();
    h += "<tr><th>training run</th><td><a href=\"" + escape(rel) + "/report.html\">" +
         escape(r.run_dir) + "</a></td></tr>\n";
  }
  h += "</table>\n";

  if (!r.checks.empty()) {
    h += "<h2>Gate</h2>\n<table id=\"gate\">\n<tr><th>metric</th><th>candidate</th>"
         "<th>production</th><th>min</th><th>max</th><th>tolerance</th><th>better</th>"
         "<th>result</th></tr>\n";
    for (const GateCheck& c : r.checks) {
      const GateRule& rule = spec.gate.at(c.metric);
      h += "<tr data-metric=\"" + escape(c.metric) + "\" data-passed=\"" +
           (c.passed ? "true" : "false") + "\"><td>" + escape(c.metric) +
           "</td><td class=\"num\">" + short_number(c.candidate) + "</td><td class=\"num\">" +
           (c.production ? short_number(*c.production) : "") + "</td><td class=\"num\">" +
           (rule.min ? short_number(*rule.min) : "") + "</td><td class=\"num\">" +
           (rule.max ? short_number(*rule.max) : "") + "</td><td class=\"num\">" +
           short_number(rule.tolerance) + "</td><td>" +
           (rule.higher_is_better ? "higher" : "lower") + "</td><td class=\"" +
           (c.passed ? "pass\">passed" : "fail\">" + escape(c.reason)) + "</td></tr>\n";
    }
    h += "</table>\n";
  }
  if (!r.candidate_metrics.empty()) {
    h += "<h2>Holdout metrics</h2>\n<table id=\"metrics\">\n<tr><th>metric</th><th>candidate</th>"
         "<th>production</th></tr>\n";
    for (const auto& [k, v] : r.candidate_metrics) {
      auto p = r.production_metrics.find(k);
      h += "<tr><td>" + escape(k) + "</td><td class=\"num\">" + short_number(v) +
           "</td><td class=\"num\">" +
           (p == r.production_metrics.end() ? "" : short_number(p->second)) + "</td></tr>\n";
    }
    h += "</table>\n";
  }
  if (!r.reasons.empty()) {
    h += "<h2>Reasons</h2>\n<ul id=\"reasons\">\n";
    for (const std::string& s : r.reasons) h += "<li>" + escape(s) + "</li>\n";
    h += "</ul>\n";
  }
  if (snapshot) {
    h += "<h2>Drift snapshot</h2>\n<p>" + escape(spec.trigger_snapshot) + "</p>\n";
    h += drift_html(*snapshot);
  }
  h += "</body></html>\n";
  return h;
}

}  // namespace kiln::mlops::internal
