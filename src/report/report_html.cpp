// The training report: one self-contained HTML page per run (or a comparison of runs).
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>
#include <span>
#include <utility>

#include "io/model_data.hpp"
#include "kiln/core/error.hpp"
#include "kiln/report/report.hpp"
#include "report/report_parts.hpp"
#include "report/run_reader.hpp"
#include "report/svg.hpp"

namespace kiln::report {
namespace internal {
namespace {

constexpr const char* style_sheet = R"CSS(
:root{--fg:#1d2433;--muted:#5b6475;--line:#d9dee7;--bg:#f4f6f9;--card:#fff;--accent:#1f77b4}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--fg);background:var(--bg)}
main{max-width:1240px;margin:0 auto;padding:18px 24px 60px}
h1{font-size:24px;margin:0 8px 0 0;display:inline-block}
h2{font-size:18px;margin:0 0 10px}
h3{font-size:15px;margin:14px 0 6px}
.sub{color:var(--muted);margin:4px 0 0}
nav{margin:12px 0 0;display:flex;flex-wrap:wrap;gap:6px}
nav a{color:var(--accent);text-decoration:none;border:1px solid var(--line);background:#fff;border-radius:14px;padding:2px 10px;font-size:13px}
section{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:14px 18px;margin:14px 0}
section.absent{color:var(--muted)}
section.absent h2{display:inline;margin-right:8px;font-size:16px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(370px,1fr));gap:14px 18px}
.grid2{display:grid;grid-template-columns:repeat(auto-fit,minmax(440px,1fr));gap:14px 18px;align-items:start}
.layer .grid{grid-template-columns:repeat(auto-fill,minmax(290px,1fr))}
.layer{border-top:1px solid var(--line);padding-top:6px;margin-top:10px}
.layer.warned{border-left:4px solid #e8590c;padding-left:10px}
figure.fig{margin:0;min-width:0}
figcaption{font-weight:600;font-size:13px;margin-bottom:2px}
svg.chart{width:100%;height:auto;display:block;font-size:10.5px;overflow:visible}
svg .grid line{stroke:#e8ebf0}
svg .frame{fill:none;stroke:#c5ccd8}
svg .tick{fill:#5b6475}
svg .axis{fill:#3b4355;font-size:11px}
svg .zero{stroke:#7a8394}
svg .whisker{stroke:#1d2433;fill:none}
svg text.cell{font-size:11px}
svg .box{fill:#eef4fb;stroke:#4e79a7}
svg .box.input{fill:#f3f0fa;stroke:#7570b3}
svg .edge{stroke:#7a8394;fill:none;stroke-width:1.4}
svg .arrow{fill:#7a8394}
svg .name{font-weight:600;font-size:12px}
.legend{font-size:12px;color:var(--muted);margin-top:2px}
.legend span{margin-right:12px;white-space:nowrap}
.legend i{display:inline-block;width:14px;height:3px;vertical-align:middle;margin-right:4px}
table{border-collapse:collapse;font-size:13px;margin:4px 0}
td,th{padding:3px 10px;border-bottom:1px solid #eceff4;text-align:left;vertical-align:top}
th{font-weight:600;color:#3b4355;background:#f8f9fb}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.key{color:var(--muted);white-space:nowrap}
td.value{overflow-wrap:anywhere;word-break:break-word}
.kv{display:grid;grid-template-columns:repeat(auto-fit,minmax(360px,1fr));gap:8px 24px}
.kv>div{min-width:0}
.kv table{width:100%;table-layout:fixed}
.kv td.key{width:38%;white-space:normal;overflow-wrap:anywhere}
.scroll{max-height:360px;overflow:auto;border:1px solid #eceff4;border-radius:4px}
.badge{display:inline-block;border-radius:10px;padding:1px 10px;font-size:12px;font-weight:600;vertical-align:middle;background:#e9ecef;color:#3b4355}
.badge.completed{background:#d3f9d8;color:#2b8a3e}
.badge.running{background:#d0ebff;color:#1864ab}
.badge.failed{background:#ffe3e3;color:#c92a2a}
.badge.stopped{background:#fff3bf;color:#8f6200}
.warning{background:#fff4e5;border-left:4px solid #e8590c;padding:6px 12px;margin:6px 0;border-radius:0 4px 4px 0}
.ok{background:#ebfbee;border-left:4px solid #2b8a3e;padding:6px 12px;margin:6px 0;border-radius:0 4px 4px 0}
.error{background:#ffe3e3;border-left:4px solid #c92a2a;padding:6px 12px;margin:8px 0;white-space:pre-wrap}
.note{color:var(--muted);font-size:13px}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin-top:10px}
.card{background:#fff;border:1px solid var(--line);border-radius:6px;padding:6px 12px;min-width:120px}
.card b{display:block;font-size:18px}
.card span{color:var(--muted);font-size:12px}
.swatch{display:inline-block;width:12px;height:12px;border-radius:2px;vertical-align:middle;margin-right:6px}
details summary{cursor:pointer;color:var(--accent);font-size:13px}
#kiln-tip{position:fixed;pointer-events:none;background:rgba(29,36,51,.93);color:#fff;padding:5px 8px;border-radius:4px;font-size:12px;white-space:pre;display:none;z-index:10}
)CSS";

constexpr const char* script = R"JS(
(function(){
  var tip = document.getElementById('kiln-tip');
  function nums(s){ return s ? s.split(' ').map(Number) : []; }
  document.addEventListener('mousemove', function(e){
    var svg = e.target.closest ? e.target.closest('svg.chart[data-kind="line"]') : null;
    if (!svg) { tip.style.display = 'none'; return; }
    var box = svg.getBoundingClientRect(), vb = svg.viewBox.baseVal;
    var px = (e.clientX - box.left) * vb.width / box.width;
    var plot = nums(svg.getAttribute('data-plot')), xr = nums(svg.getAttribute('data-xrange'));
    var x = xr[0] + (px - plot[0]) / (plot[1] - plot[0]) * (xr[1] - xr[0]);
    var lines = [];
    svg.querySelectorAll('path[data-series]').forEach(function(p){
      var xs = p.getAttribute('data-x'), ys = p.getAttribute('data-y');
      if (!xs) return;
      xs = xs.split(' '); ys = ys.split(' ');
      var best = 0, d = Infinity;
      for (var i = 0; i < xs.length; ++i) { var di = Math.abs(Number(xs[i]) - x); if (di < d) { d = di; best = i; } }
      lines.push(p.getAttribute('data-label') + ' @ ' + xs[best] + ': ' + ys[best]);
    });
    if (!lines.length) { tip.style.display = 'none'; return; }
    tip.textContent = lines.join('\n');
    tip.style.display = 'block';
    tip.style.left = Math.min(e.clientX + 14, window.innerWidth - tip.offsetWidth - 4) + 'px';
    tip.style.top = (e.clientY + 14) + 'px';
  });
  var main = document.getElementById('kiln-report');
  var live = main.getAttribute('data-live-url');
  if (live) {
    var every = Number(main.getAttribute('data-live-poll-ms')) || 1000;
    var busy = false;
    setInterval(function(){
      if (busy) return;
      busy = true;
      var since = (live.indexOf('?') < 0 ? '?' : '&') + 'since=' +
          encodeURIComponent(main.getAttribute('data-version') || '');
      fetch(live + since, {cache: 'no-store'}).then(function(r){ return r.ok ? r.text() : ''; }).then(function(text){
        busy = false;
        if (!text) return;
        var doc = new DOMParser().parseFromString(text, 'text/html');
        var next = doc.getElementById('kiln-report');
        if (next && next.getAttribute('data-version') !== main.getAttribute('data-version')) {
          main.innerHTML = next.innerHTML;
          main.setAttribute('data-version', next.getAttribute('data-version'));
        }
      }, function(){ busy = false; });
    }, every);
  }
})();
)JS";

bool is_internal_key(const std::string& k) { return k == "lr"; }

std::string base_name(const std::string& k) { return k.rfind("val_", 0) == 0 ? k.substr(4) : k; }

std::string json_text(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_float()) return number_text(v.get<double>());
  if (v.is_null()) return "\u2014";
  return v.dump();
}

/// A flattened config value for reading: strings without their JSON quotes.
std::string config_display(const std::string& json_text) {
  if (json_text.size() >= 2 && json_text.front() == '"') {
    json j = json::parse(json_text, nullptr, false);
    if (j.is_string()) return j.get<std::string>();
  }
  return json_text;
}

std::string header_section(const RunData& run) {
  std::string s = "<header><h1>" + escape(run.name()) + "</h1>" + status_badge(run.status());
  std::string started = run.text("started"), finished = run.text("finished");
  s += "<p class=\"sub\">Started " + escape(started.empty() ? "\u2014" : started);
  if (!finished.empty()) s += " \u00b7 finished " + escape(finished);
  std::int64_t epochs = 0, steps = 0;
  for (const auto& l : run.metrics) {
    if (l.kind == "epoch") ++epochs;
    steps = std::max(steps, l.step);
  }
  s += " \u00b7 " + std::to_string(epochs) + " epochs, " + std::to_string(steps) +
       " steps \u00b7 folder <code>" + escape(run.dir) + "</code></p>";
  std::string error = run.text("error");
  if (!error.empty()) s += "<div class=\"error\">" + escape(error) + "</div>";
  if (auto warnings = layer_warnings(run); !warnings.empty()) {
    std::set<std::string> layers;
    for (const auto& w : warnings) layers.insert(w.layer);
    std::string names;
    for (const auto& l : layers) names += (names.empty() ? "" : ", ") + l;
    s += "<div class=\"warning\" data-warning-summary=\"" + std::to_string(warnings.size()) +
         "\">\u26a0 " + std::to_string(warnings.size()) + " rule" +
         (warnings.size() == 1 ? "" : "s") + " of thumb fired in " + escape(names) +
         ": see <a href=\"#layers\">Layers over time</a>.</div>";
  }
  s += "<nav><a href=\"#curves\">Curves</a><a href=\"#evaluation\">Evaluation</a>"
       "<a href=\"#layers\">Layers</a><a href=\"#graph\">Model</a><a href=\"#data\">Data</a>"
       "<a href=\"#explanations\">Explanations</a><a href=\"#run\">Run details</a></nav>";

  // Headline numbers: run.json final, else the last epoch line.
  std::vector<std::pair<std::string, double>> cards;
  if (auto f = run.run.find("final"); f != run.run.end() && f->is_object())
    for (const auto& [k, v] : f->items())
      if (v.is_number()) cards.emplace_back(k, v.get<double>());
  if (cards.empty())
    for (auto it = run.metrics.rbegin(); it != run.metrics.rend(); ++it)
      if (it->kind == "epoch") {
        for (const auto& [k, v] : it->values)
          if (!is_internal_key(k)) cards.emplace_back(k, v);
        break;
      }
  if (!cards.empty()) {
    s += "<div class=\"cards\">";
    for (const auto& [k, v] : cards)
      s += "<div class=\"card\" title=\"" + escape(number_text(v)) + "\"><b>" +
           escape(short_number(v)) + "</b><span>" + escape(k) + "</span></div>";
    s += "</div>";
  }
  return s + "</header>";
}

std::string run_details_section(const RunData& run) {
  std::string s = "<section id=\"run\" data-present=\"1\"><h2>Run details</h2><div class=\"kv\">";
  s += "<div><h3>Environment</h3><table>";
  if (auto env = run.run.find("environment"); env != run.run.end() && env->is_object()) {
    for (const auto& [k, v] : env->items()) {
      if (k == "data_files" && v.is_array()) {
        for (const auto& f : v) {
          std::string path = f.contains("path") ? json_text(f["path"]) : "?";
          std::string detail;
          if (f.contains("bytes")) detail += json_text(f["bytes"]) + " bytes";
          if (f.contains("sha256"))
            detail += ", sha256 " + json_text(f["sha256"]).substr(0, 16) + "\u2026";
          s += "<tr><td class=\"key\">data file</td><td><code>" + escape(path) + "</code> " +
               escape(detail) + "</td></tr>";
        }
        continue;
      }
      s += "<tr><td class=\"key\">" + escape(k) + "</td><td>" + escape(json_text(v)) + "</td></tr>";
    }
  }
  if (auto se = run.run.find("sample_every"); se != run.run.end())
    s += "<tr><td class=\"key\">sample_every</td><td>" + escape(json_text(*se)) + "</td></tr>";
  s += "</table></div><div><h3>Configuration</h3>";
  auto config = flatten_config(run.run.contains("config") ? run.run["config"] : json());
  if (config.empty()) {
    s += "<p class=\"note\">No configuration recorded.</p>";
  } else {
    s += "<div class=\"scroll\"><table>";
    for (const auto& [k, v] : config)
      s += "<tr data-config-key=\"" + escape(k) + "\"><td class=\"key\">" + escape(k) +
           "</td><td class=\"value\">" + escape(config_display(v)) + "</td></tr>";
    s += "</table></div>";
  }
  return s + "</div></div></section>";
}

std::string curves_section(const RunData& run) {
  if (!run.has_metrics) return absent_section("curves", "Training curves", "metrics.jsonl");
  std::string s = "<section id=\"curves\" data-present=\"1\"><h2>Training curves</h2>";
  if (run.metrics.empty()) return s + "<p class=\"note\">No metrics logged yet.</p></section>";
  return s + metric_charts({&run}) + "</section>";
}

}  // namespace

std::string number_cell(double v) {
  return "<td class=\"num\" title=\"" + escape(number_text(v)) + "\">" + escape(short_number(v)) +
         "</td>";
}

std::string status_badge(const std::string& status) {
  std::string cls;
  for (char c : status) cls += std::isalnum(static_cast<unsigned char>(c)) ? c : '-';
  return "<span class=\"badge " + escape(cls) + "\">" +
         escape(status.empty() ? "unknown" : status) + "</span>";
}

std::string absent_section(const std::string& id, const std::string& title,
                           const std::string& file) {
  return "<section id=\"" + escape(id) + "\" class=\"absent\" data-present=\"0\"><h2>" +
         escape(title) + "</h2><span class=\"note\">not recorded (no " + escape(file) +
         " in the run folder)</span></section>";
}

std::string page(const std::string& title, const std::string& version, const std::string& body,
                 const ReportOptions& options) {
  std::string s =
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
      "<meta name=\"generator\" content=\"kiln\"><title>" +
      escape(title) + "</title><style>" + style_sheet + "</style></head><body>\n";
  s += "<main id=\"kiln-report\" data-version=\"" + escape(version) + "\"";
  if (!options.live_url.empty())
    s += " data-live-url=\"" + escape(options.live_url) + "\" data-live-poll-ms=\"" +
         std::to_string(std::max<std::int64_t>(100, options.live_poll_ms)) + "\"";
  s += ">\n" + body + "\n</main><div id=\"kiln-tip\"></div><script>" + script +
       "</script></body></html>\n";
  return s;
}

std::vector<std::string> metric_names(const std::vector<const RunData*>& runs) {
  std::set<std::string> names;
  for (const auto* run : runs)
    for (const auto& l : run->metrics)
      for (const auto& [k, v] : l.values)
        if (!is_internal_key(k)) names.insert(base_name(k));
  std::vector<std::string> out;
  if (names.count("loss")) out.push_back("loss");
  for (const auto& n : names)
    if (n != "loss") out.push_back(n);
  return out;
}

std::string metric_charts(const std::vector<const RunData*>& runs) {
  const bool compare = runs.size() > 1;
  auto collect = [](const RunData& run, const std::string& kind, const std::string& key,
                    bool x_epoch) {
    std::vector<double> x, y;
    for (const auto& l : run.metrics) {
      if (l.kind != kind) continue;
      auto it = l.values.find(key);
      if (it == l.values.end()) continue;
      x.push_back(static_cast<double>(x_epoch ? l.epoch : l.step));
      y.push_back(it->second);
    }
    return std::make_pair(x, y);
  };
  auto add = [&](LineChart& chart, const RunData& run, std::size_t run_index,
                 const std::string& kind, const std::string& key, bool x_epoch,
                 std::size_t color_index, bool dashed) {
    auto [x, y] = collect(run, kind, key, x_epoch);
    if (x.empty()) return;
    Series s;
    s.name = key;
    s.label = compare ? run.name() + " \u00b7 " + key : key;
    if (kind == "epoch" && !x_epoch && !dashed) s.label += " (epoch)";
    s.x = std::move(x);
    s.y = std::move(y);
    s.color = series_color(compare ? run_index : color_index);
    s.dashed = dashed;
    s.attributes = {{"data-source", kind}, {"data-run", run.name()}};
    chart.series.push_back(std::move(s));
  };
  auto has_step_key = [](const RunData& run, const std::string& key) {
    for (const auto& l : run.metrics)
      if (l.kind == "step" && l.values.count(key)) return true;
    return false;
  };

  // The learning rate beside the first metric's pair (loss), as the first row of three.
  LineChart lr{.id = "lr", .title = "learning rate", .x_label = "step", .y_label = "lr"};
  for (std::size_t r = 0; r < runs.size(); ++r)
    add(lr, *runs[r], r, has_step_key(*runs[r], "lr") ? "step" : "epoch", "lr", false, 3, false);
  std::string lr_chart = lr.series.empty() ? std::string() : render_line_chart(lr);

  std::string s = "<div class=\"grid\">";
  for (const auto& name : metric_names(runs)) {
    LineChart by_step{.id = "metric-" + name + "-step",
                      .title = name + " by step",
                      .x_label = "step",
                      .y_label = name};
    LineChart by_epoch{.id = "metric-" + name + "-epoch",
                       .title = name + " by epoch",
                       .x_label = "epoch",
                       .y_label = name};
    for (std::size_t r = 0; r < runs.size(); ++r) {
      const RunData& run = *runs[r];
      // By step: the step lines, or the epoch lines at their step when steps lack it.
      add(by_step, run, r, has_step_key(run, name) ? "step" : "epoch", name, false, 0, false);
      add(by_step, run, r, "epoch", "val_" + name, false, 1, true);
      add(by_epoch, run, r, "epoch", name, true, 0, false);
      add(by_epoch, run, r, "epoch", "val_" + name, true, 1, true);
    }
    if (!by_step.series.empty()) s += render_line_chart(by_step);
    if (!by_epoch.series.empty()) s += render_line_chart(by_epoch);
    s += std::exchange(lr_chart, std::string());
  }
  return s + lr_chart + "</div>";
}

}  // namespace internal

namespace {

std::string render_runs(const std::vector<std::string>& run_dirs, const ReportOptions& options) {
  using namespace internal;
  std::vector<RunData> runs;
  for (const auto& dir : run_dirs) runs.push_back(read_run(dir));
  if (runs.size() > 1) return render_comparison(runs, options);

  const RunData& run = runs[0];
  std::string body = header_section(run);
  body += curves_section(run);
  body += evaluation_section(run);
  body += layers_section(run);
  body += graph_section(run);
  body += data_section(run);
  body += explanations_section(run);
  body += drift_section(run, options.drift_snapshots);
  body += run_details_section(run);
  body +=
      "<p class=\"note\">Kiln training report \u00b7 self-contained: every number drawn is "
      "in the page (hover a chart, or read the tables).</p>";
  std::string title = options.title.empty() ? run.name() + " \u2014 Kiln report" : options.title;
  return page(title, run.version, body, options);
}

}  // namespace

std::string render_report(const std::vector<std::string>& run_dirs, const ReportOptions& options) {
  if (run_dirs.empty()) throw ValueError("render_report: no run folders given");
  try {
    return render_runs(run_dirs, options);
  } catch (const internal::json::exception& e) {
    // A value of an unexpected type that a section read without checking.
    std::string dirs;
    for (const auto& d : run_dirs) dirs += (dirs.empty() ? "" : ", ") + d;
    throw FormatError(dirs + ": unexpected content: " + e.what());
  }
}

std::string write_report(const std::string& run_dir) {
  std::string html = render_report({run_dir});
  std::string path = (std::filesystem::path(run_dir) / "report.html").string();
  kiln::internal::write_file_atomically(
      path, std::span(reinterpret_cast<const std::uint8_t*>(html.data()), html.size()));
  return path;
}

}  // namespace kiln::report
