// TEMPORARY (issue11-board only): minimal stand-ins for render_report, write_report,
// list_runs and render_index until branch issue11-html's implementations are merged; this
// file is deleted by that merge. Same page protocol: <main id="kiln-report"
// data-version=...>, live polling of options.live_url, chart paths with data-x / data-y.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/model_data.hpp"
#include "kiln/core/error.hpp"
#include "kiln/report/report.hpp"

namespace kiln::report {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw IoError(p.string() + ": cannot read");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string version_of(const fs::path& dir) {
  std::vector<std::string> parts;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::error_code e2;
    if (!e.is_regular_file(e2) || e.path().filename() == "report.html") continue;
    parts.push_back(e.path().filename().string() + ":" + std::to_string(e.file_size(e2)) + ":" +
                    std::to_string(e.last_write_time(e2).time_since_epoch().count()));
  }
  std::sort(parts.begin(), parts.end());
  std::uint64_t h = 1469598103934665603ULL;
  for (const auto& p : parts)
    for (unsigned char c : p + ";") h = (h ^ c) * 1099511628211ULL;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::vector<json> epoch_lines(const fs::path& dir) {
  std::vector<json> out;
  std::ifstream in(dir / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    json j = json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.value("kind", "") == "epoch") out.push_back(j);
  }
  return out;
}

std::string escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '<')
      o += "&lt;";
    else if (c == '>')
      o += "&gt;";
    else if (c == '&')
      o += "&amp;";
    else if (c == '"')
      o += "&quot;";
    else
      o += c;
  }
  return o;
}

const char* live_script = R"JS(
(function(){
  var main = document.getElementById('kiln-report');
  var live = main.getAttribute('data-live-url');
  if (!live) return;
  setInterval(function(){
    fetch(live, {cache: 'no-store'}).then(function(r){ return r.ok ? r.text() : ''; }).then(function(text){
      if (!text) return;
      var next = new DOMParser().parseFromString(text, 'text/html').getElementById('kiln-report');
      if (next && next.getAttribute('data-version') !== main.getAttribute('data-version')) {
        main.innerHTML = next.innerHTML;
        main.setAttribute('data-version', next.getAttribute('data-version'));
      }
    });
  }, Number(main.getAttribute('data-live-poll-ms')) || 1000);
})();
)JS";

std::string page(const std::string& title, const std::string& version, const std::string& body,
                 const ReportOptions& options) {
  std::string s = "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>" + escape(title) +
                  "</title></head><body><main id=\"kiln-report\" data-version=\"" +
                  escape(version) + "\"";
  if (!options.live_url.empty())
    s += " data-live-url=\"" + escape(options.live_url) + "\" data-live-poll-ms=\"" +
         std::to_string(options.live_poll_ms) + "\"";
  return s + ">" + body + "</main><script>" + live_script + "</script></body></html>\n";
}

}  // namespace

std::string render_report(const std::vector<std::string>& run_dirs, const ReportOptions& options) {
  if (run_dirs.empty()) throw ValueError("render_report: no run folders");
  std::string body, version;
  for (const auto& d : run_dirs) {
    const json run = json::parse(slurp(fs::path(d) / "run.json"));
    version += version_of(d);
    std::string xs, ys;
    for (const auto& e : epoch_lines(d)) {
      if (!e.contains("loss")) continue;
      if (!xs.empty()) {
        xs += ' ';
        ys += ' ';
      }
      xs += std::to_string(e.value("epoch", 0));
      ys += e["loss"].dump();
    }
    body += "<h1>" + escape(run.value("name", "")) + "</h1><p class=\"status\">" +
            escape(run.value("status", "")) +
            "</p><svg id=\"metric-loss-epoch\" width=\"400\" height=\"200\"><path "
            "data-series=\"loss\" data-label=\"loss\" data-x=\"" +
            xs + "\" data-y=\"" + ys + "\" d=\"M0,0\"/></svg>";
  }
  return page(options.title.empty() ? "report" : options.title, version, body, options);
}

std::string write_report(const std::string& run_dir) {
  const std::string path = (fs::path(run_dir) / "report.html").string();
  return write_report(std::vector<std::string>{run_dir}, path);
}

std::vector<RunInfo> list_runs(const std::string& runs_dir) {
  std::error_code ec;
  if (!fs::is_directory(runs_dir, ec)) throw IoError(runs_dir + ": not a folder");
  std::vector<std::string> dirs;
  if (fs::is_regular_file(fs::path(runs_dir) / "run.json", ec)) {
    dirs.push_back(runs_dir);
  } else {
    for (const auto& e : fs::directory_iterator(runs_dir, ec))
      if (fs::is_regular_file(e.path() / "run.json", ec)) dirs.push_back(e.path().string());
  }
  std::vector<RunInfo> out;
  for (const auto& d : dirs) {
    const json run = json::parse(slurp(fs::path(d) / "run.json"), nullptr, false);
    if (run.is_discarded()) continue;
    RunInfo info;
    info.dir = d;
    info.name = run.value("name", "");
    info.status = run.value("status", "");
    info.started = run.value("started", "");
    const auto epochs = epoch_lines(d);
    info.epochs = static_cast<std::int64_t>(epochs.size());
    info.steps = epochs.empty() ? 0 : epochs.back().value("step", std::int64_t{0});
    info.version = version_of(d);
    out.push_back(info);
  }
  std::sort(out.begin(), out.end(),
            [](const RunInfo& a, const RunInfo& b) { return a.started > b.started; });
  return out;
}

std::string render_index(const std::string& runs_dir, const ReportOptions& options) {
  std::string body = "<table id=\"runs\">", version;
  for (const auto& r : list_runs(runs_dir)) {
    const std::string folder = fs::path(r.dir).filename().string();
    version += r.version;
    body += "<tr data-run=\"" + escape(folder) + "\"><td><a href=\"run/" + escape(folder) + "\">" +
            escape(r.name) + "</a></td><td class=\"status\">" + escape(r.status) + "</td></tr>";
  }
  return page("runs", version, body + "</table>", options);
}

}  // namespace kiln::report
