// The comparison of several runs: overlaid curves, final metrics, differing configuration.
#include <map>
#include <set>

#include "report/report_parts.hpp"
#include "report/svg.hpp"

namespace kiln::report::internal {
namespace {

/// The last epoch line's values ("lr" included), or none.
std::map<std::string, double> last_epoch(const RunData& run) {
  for (auto it = run.metrics.rbegin(); it != run.metrics.rend(); ++it)
    if (it->kind == "epoch") return it->values;
  return {};
}

std::map<std::string, double> final_values(const RunData& run) {
  std::map<std::string, double> out;
  if (auto f = run.run.find("final"); f != run.run.end() && f->is_object())
    for (const auto& [k, v] : f->items())
      out[k] = v.is_number() ? v.get<double>() : std::numeric_limits<double>::quiet_NaN();
  return out;
}

}  // namespace

std::string render_comparison(const std::vector<RunData>& runs, const ReportOptions& options) {
  std::vector<const RunData*> ptrs;
  std::string version;
  for (const auto& r : runs) {
    ptrs.push_back(&r);
    version += (version.empty() ? "" : "-") + r.version;
  }
  std::string title = options.title.empty()
                          ? "Comparison of " + std::to_string(runs.size()) + " runs"
                          : options.title;
  std::string s = "<header><h1>" + escape(title) +
                  "</h1><nav><a href=\"#runs\">Runs</a><a "
                  "href=\"#final\">Final metrics</a><a href=\"#config\">Configuration</a><a "
                  "href=\"#curves\">Curves</a></nav></header>";

  s += "<section id=\"runs\" data-present=\"1\"><h2>Runs</h2><table><tr><th>run</th><th>status"
       "</th><th>started</th><th>finished</th><th class=\"num\">epochs</th><th "
       "class=\"num\">steps</th><th>folder</th></tr>";
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const auto& r = runs[i];
    std::int64_t epochs = 0, steps = 0;
    for (const auto& l : r.metrics) {
      if (l.kind == "epoch") ++epochs;
      steps = std::max(steps, l.step);
    }
    s += "<tr data-run=\"" + escape(r.name()) +
         "\"><td><span class=\"swatch\" style=\"background:" + series_color(i) + "\"></span>" +
         escape(r.name()) + "</td><td>" + status_badge(r.status()) + "</td><td>" +
         escape(r.text("started")) + "</td><td>" + escape(r.text("finished")) +
         "</td><td class=\"num\">" + std::to_string(epochs) + "</td><td class=\"num\">" +
         std::to_string(steps) + "</td><td><code>" + escape(r.dir) + "</code></td></tr>";
  }
  s += "</table></section>";

  // Final metrics: the last epoch line, then run.json's final values.
  std::vector<std::map<std::string, double>> last, fin;
  std::set<std::string> last_keys, final_keys;
  for (const auto& r : runs) {
    last.push_back(last_epoch(r));
    fin.push_back(final_values(r));
    for (const auto& [k, v] : last.back()) last_keys.insert(k);
  }
  // Final values that only repeat the last epoch's (train_and_record copies them) are left out.
  for (std::size_t i = 0; i < runs.size(); ++i)
    for (const auto& [k, v] : fin[i]) {
      bool repeated = true;
      for (std::size_t j = 0; j < runs.size() && repeated; ++j) {
        auto f = fin[j].find(k);
        auto l = last[j].find(k);
        repeated = f == fin[j].end() ||
                   (l != last[j].end() && number_text(l->second) == number_text(f->second));
      }
      if (!repeated) final_keys.insert(k);
    }
  s += "<section id=\"final\" data-present=\"1\"><h2>Final metrics</h2>";
  if (last_keys.empty() && final_keys.empty()) {
    s += "<p class=\"note\">No epoch finished and no final values recorded.</p>";
  } else {
    s += "<div class=\"scroll\" style=\"max-height:none\"><table><tr><th rowspan=\"2\">run</th>";
    if (!last_keys.empty())
      s += "<th colspan=\"" + std::to_string(last_keys.size()) + "\">last epoch</th>";
    if (!final_keys.empty())
      s += "<th colspan=\"" + std::to_string(final_keys.size()) + "\">final (run.json)</th>";
    s += "</tr><tr>";
    for (const auto& k : last_keys) s += "<th class=\"num\">" + escape(k) + "</th>";
    for (const auto& k : final_keys) s += "<th class=\"num\">" + escape(k) + "</th>";
    s += "</tr>";
    for (std::size_t i = 0; i < runs.size(); ++i) {
      s += "<tr data-run=\"" + escape(runs[i].name()) +
           "\"><td class=\"key\"><span class=\"swatch\" "
           "style=\"background:" +
           series_color(i) + "\"></span>" + escape(runs[i].name()) + "</td>";
      auto cell = [&](const std::map<std::string, double>& m, const std::string& k,
                      const char* source) {
        auto it = m.find(k);
        if (it == m.end()) return std::string("<td class=\"num\">\u2014</td>");
        return "<td class=\"num\" data-source=\"" + std::string(source) + "\" data-key=\"" +
               escape(k) + "\" data-value=\"" + number_text(it->second) + "\" title=\"" +
               number_text(it->second) + "\">" + escape(short_number(it->second)) + "</td>";
      };
      for (const auto& k : last_keys) s += cell(last[i], k, "epoch");
      for (const auto& k : final_keys) s += cell(fin[i], k, "final");
      s += "</tr>";
    }
    s += "</table></div>";
  }
  s += "</section>";

  // Configuration keys whose values differ (absent counts as a value).
  std::vector<std::map<std::string, std::string>> configs;
  std::set<std::string> keys;
  for (const auto& r : runs) {
    configs.push_back(flatten_config(r.run.contains("config") ? r.run["config"] : json()));
    for (const auto& [k, v] : configs.back()) keys.insert(k);
  }
  std::vector<std::string> differing;
  for (const auto& k : keys) {
    std::set<std::string> seen;
    for (const auto& c : configs) {
      auto it = c.find(k);
      seen.insert(it == c.end() ? std::string("\x01"
                                              "absent")
                                : it->second);
    }
    if (seen.size() > 1) differing.push_back(k);
  }
  s += "<section id=\"config\" data-present=\"1\"><h2>Configuration differences</h2>";
  if (differing.empty()) {
    s += "<p class=\"note\" data-config-differences=\"0\">The runs have the same configuration (" +
         std::to_string(keys.size()) + " keys).</p>";
  } else {
    s += "<p class=\"note\">" + std::to_string(differing.size()) + " of " +
         std::to_string(keys.size()) + " configuration keys differ.</p><table><tr><th>key</th>";
    for (std::size_t i = 0; i < runs.size(); ++i)
      s += "<th><span class=\"swatch\" style=\"background:" + series_color(i) + "\"></span>" +
           escape(runs[i].name()) + "</th>";
    s += "</tr>";
    for (const auto& k : differing) {
      s += "<tr data-config-key=\"" + escape(k) + "\"><td class=\"key\">" + escape(k) + "</td>";
      for (const auto& c : configs) {
        auto it = c.find(k);
        s += "<td>" + (it == c.end() ? std::string("\u2014") : escape(it->second)) + "</td>";
      }
      s += "</tr>";
    }
    s += "</table>";
  }
  s += "</section>";

  s += "<section id=\"curves\" data-present=\"1\"><h2>Curves</h2><p class=\"note\">One colour "
       "per run; dashed: validation.</p>" +
       metric_charts(ptrs) + "</section>";
  return page(title, version, s, options);
}

}  // namespace kiln::report::internal
