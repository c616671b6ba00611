// A DriftReport shown to people: the table `kiln drift` prints (drift_text) and the HTML
// section the run report, the CT report and `kiln drift --html` show (drift_html), drawn
// with the report's helpers so the page stays self-contained.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <span>
#include <string>
#include <vector>

#include "io/model_data.hpp"
#include "kiln/mlops/drift.hpp"
#include "report/report_parts.hpp"
#include "report/run_reader.hpp"
#include "report/svg.hpp"

namespace kiln::mlops {
namespace {

using monitor::DriftReport;
using monitor::FeatureDrift;
using report::internal::escape;
using report::internal::number_text;

/// Bars in the PSI chart and histograms drawn (the table lists every feature).
constexpr std::size_t max_psi_bars = 40;
constexpr std::size_t max_histograms = 3;

std::string format(const char* spec, double v) {
  char buf[48];
  std::snprintf(buf, sizeof buf, spec, v);
  return buf;
}
std::string fixed1(double v) { return format("%.1f", v); }

std::string pad(std::string text, std::size_t width) {
  if (text.size() < width) text.append(width - text.size(), ' ');
  return text;
}

/// Drifted first, then by PSI (largest first), then in profile order.
std::vector<const FeatureDrift*> ordered(const DriftReport& r) {
  std::vector<const FeatureDrift*> out;
  for (const auto& f : r.features) out.push_back(&f);
  std::stable_sort(out.begin(), out.end(), [](const FeatureDrift* a, const FeatureDrift* b) {
    if (a->drifted != b->drifted) return a->drifted;
    return a->psi > b->psi;
  });
  return out;
}

std::string live_anomalies(const FeatureDrift& f) {
  std::vector<std::string> parts;
  auto add = [&](std::uint64_t n, const char* what) {
    if (n > 0) parts.push_back(std::to_string(n) + " " + what);
  };
  add(f.nonfinite, "non-finite");
  add(f.below_min, "below min");
  add(f.above_max, "above max");
  add(f.unseen_category, "unseen");
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : ", ") + p;
  return out;
}

std::string verdict(const DriftReport& r) {
  std::string s;
  if (r.drifted) {
    s = "DRIFT: " + std::to_string(r.features_drifted) + " of " +
        std::to_string(r.features.size()) + " features drifted";
    if (r.prediction.drifted) s += ", the predictions drifted";
  } else {
    s = "no drift";
  }
  s += " (max PSI " + format("%.4g", r.max_psi) + ")";
  if (r.labels.decayed)
    s += "; DECAY ALARM: live " + r.labels.metric + " " + format("%.4g", r.labels.live) +
         " vs reference " + format("%.4g", r.labels.reference);
  return s;
}

struct TextRow {
  std::string cells[9];
};

TextRow text_row(const FeatureDrift& f) {
  return {{f.name, f.test, std::to_string(f.rows), format("%.4g", f.statistic),
           format("%.3g", f.p_value), format("%.4f", f.psi), monitor::psi_level_name(f.psi_level),
           f.drifted ? "DRIFT" : "-", live_anomalies(f)}};
}

// ---- HTML ----

std::string psi_color(const FeatureDrift& f) {
  if (f.drifted) return "#c92a2a";
  if (f.psi_level == monitor::PsiLevel::significant) return "#e8590c";
  if (f.psi_level == monitor::PsiLevel::moderate) return "#f0a30a";
  return "#4e79a7";
}

std::string psi_chart(const std::vector<const FeatureDrift*>& features, const std::string& id) {
  const std::size_t n = std::min(features.size(), max_psi_bars);
  const double W = 600, label_w = 150, value_w = 60, row = 18, top = 16;
  const double pw = W - label_w - value_w - 10;
  double hi = 0.25;
  for (std::size_t i = 0; i < n; ++i)
    if (std::isfinite(features[i]->psi)) hi = std::max(hi, features[i]->psi);
  hi *= 1.05;
  // Linear up to a PSI of 1; beyond, log(1 + psi / 0.05), so the 0.1 and 0.2 levels stay
  // apart when shifted features reach PSI 10 or more.
  const bool log_scale = hi > 1.0;
  auto scale = [&](double v) { return log_scale ? std::log1p(v / 0.05) : v; };
  auto sx = [&](double v) { return label_w + scale(std::clamp(v, 0.0, hi)) / scale(hi) * pw; };
  const double H = top + row * static_cast<double>(n) + 22;
  std::string s = "<figure class=\"fig\" id=\"fig-" + escape(id) +
                  "-psi\"><figcaption>PSI per feature (" + std::to_string(n) + " of " +
                  std::to_string(features.size()) +
                  ", flagged first; lines at the moderate and significant levels)</figcaption>";
  s += "<svg class=\"chart\" data-chart=\"" + escape(id) +
       "-psi\" data-kind=\"bars\" viewBox=\"0 0 " + fixed1(W) + " " + fixed1(H) +
       "\" style=\"max-width:" + fixed1(W * 1.15) + "px\" role=\"img\">";
  for (std::size_t i = 0; i < n; ++i) {
    const FeatureDrift& f = *features[i];
    const double y = top + row * static_cast<double>(i);
    const double v = std::isfinite(f.psi) ? f.psi : 0.0;
    s += "<text class=\"tick\" x=\"" + fixed1(label_w - 6) + "\" y=\"" + fixed1(y + 13) +
         "\" text-anchor=\"end\">" + escape(f.name) + "</text>";
    s += "<rect x=\"" + fixed1(label_w) + "\" y=\"" + fixed1(y + 3) + "\" width=\"" +
         fixed1(std::max(0.5, sx(v) - label_w)) + "\" height=\"" + fixed1(row - 5) + "\" fill=\"" +
         psi_color(f) + "\" data-label=\"" + escape(f.name) + "\" data-value=\"" +
         number_text(f.psi) + "\" data-drifted=\"" + (f.drifted ? "1" : "0") + "\"><title>" +
         escape(f.name + ": PSI " + number_text(f.psi) + ", " + f.test +
                " p = " + number_text(f.p_value) + (f.drifted ? " (drift)" : "")) +
         "</title></rect>";
    s += "<text class=\"tick\" x=\"" + fixed1(label_w + pw + 6) + "\" y=\"" + fixed1(y + 13) +
         "\">" + escape(report::internal::short_number(f.psi)) + "</text>";
  }
  const double levels[2] = {0.1, 0.2};
  const char* names[2] = {"moderate", "significant"};
  for (int k = 0; k < 2; ++k) {
    const double x = sx(levels[k]);
    s += "<line x1=\"" + fixed1(x) + "\" y1=\"" + fixed1(top - 4) + "\" x2=\"" + fixed1(x) +
         "\" y2=\"" + fixed1(H - 20) + "\" stroke=\"" + (k == 0 ? "#f0a30a" : "#c92a2a") +
         "\" stroke-dasharray=\"4 3\" data-level=\"" + names[k] + "\" data-value=\"" +
         number_text(levels[k]) + "\"/>";
    s += "<text class=\"tick\" x=\"" + fixed1(k == 0 ? x - 2 : x + 2) + "\" y=\"" +
         fixed1(top - 6) + "\" text-anchor=\"" + (k == 0 ? "end" : "start") + "\">" +
         number_text(levels[k]) + "</text>";
  }
  s += "<text class=\"axis\" x=\"" + fixed1(label_w + pw / 2) + "\" y=\"" + fixed1(H - 4) +
       "\" text-anchor=\"middle\">" + (log_scale ? "PSI (log scale)" : "PSI") + "</text>";
  return s + "</svg></figure>";
}

/// Bin labels of a reference distribution: "<= e0", "(e0, e1]", ..., "> eN"; categories.
std::vector<std::string> bin_labels(const monitor::Histogram& h) {
  std::vector<std::string> out;
  const auto& e = h.edges;
  for (std::size_t i = 0; i <= e.size(); ++i) {
    if (e.empty())
      out.push_back("all");
    else if (i == 0)
      out.push_back(std::string("<= ").append(format("%.4g", e[0])));
    else if (i == e.size())
      out.push_back(std::string("> ").append(format("%.4g", e.back())));
    else
      out.push_back(std::string("(")
                        .append(format("%.4g", e[i - 1]))
                        .append(", ")
                        .append(format("%.4g", e[i]))
                        .append("]"));
  }
  return out;
}

struct Distribution {
  std::vector<std::string> labels;  ///< per bin (empty: bin indices)
  std::vector<std::uint64_t> reference;
};

std::string histogram_chart(const std::string& id, const std::string& title,
                            const std::vector<std::uint64_t>& live, const Distribution& ref) {
  const std::size_t bins = live.size();
  const bool with_ref = ref.reference.size() == bins;
  std::uint64_t live_total = 0, ref_total = 0;
  for (auto c : live) live_total += c;
  for (auto c : ref.reference) ref_total += c;
  auto share = [](std::uint64_t c, std::uint64_t total) {
    return total > 0 ? static_cast<double>(c) / static_cast<double>(total) : 0.0;
  };
  double hi = 0;
  for (std::size_t b = 0; b < bins; ++b) {
    hi = std::max(hi, share(live[b], live_total));
    if (with_ref) hi = std::max(hi, share(ref.reference[b], ref_total));
  }
  if (hi <= 0) hi = 1;
  const double W = 430, left = 36, bottom = 34, top = 8, H = 190;
  const double ph = H - top - bottom, pw = W - left - 8;
  const double slot = pw / static_cast<double>(std::max<std::size_t>(1, bins));
  std::string s = "<figure class=\"fig\" id=\"fig-" + escape(id) + "\"><figcaption>" +
                  escape(title) + "</figcaption>";
  s += "<svg class=\"chart\" data-chart=\"" + escape(id) +
       "\" data-kind=\"histogram\" viewBox=\"0 0 " + fixed1(W) + " " + fixed1(H) +
       "\" style=\"max-width:" + fixed1(W * 1.3) + "px\" role=\"img\">";
  s += "<line class=\"zero\" x1=\"" + fixed1(left) + "\" y1=\"" + fixed1(top + ph) + "\" x2=\"" +
       fixed1(W - 8) + "\" y2=\"" + fixed1(top + ph) + "\"/>";
  s += "<text class=\"tick\" x=\"" + fixed1(left - 4) + "\" y=\"" + fixed1(top + 8) +
       "\" text-anchor=\"end\">" + escape(format("%.2g", hi)) + "</text>";
  auto bar = [&](const char* series, std::size_t b, std::uint64_t count, std::uint64_t total,
                 double x, double w, const char* color) {
    const double v = share(count, total);
    const double h = v / hi * ph;
    const std::string label = b < ref.labels.size() ? ref.labels[b] : "bin " + std::to_string(b);
    s += "<rect x=\"" + fixed1(x) + "\" y=\"" + fixed1(top + ph - h) + "\" width=\"" +
         fixed1(std::max(0.5, w)) + "\" height=\"" + fixed1(std::max(0.0, h)) + "\" fill=\"" +
         color + "\" data-series=\"" + series + "\" data-bin=\"" + std::to_string(b) +
         "\" data-count=\"" + std::to_string(count) + "\" data-value=\"" + number_text(v) +
         "\"><title>" +
         escape(std::string(series) + " " + label + ": " + std::to_string(count) + " (" +
                format("%.3g", 100 * v) + "%)") +
         "</title></rect>";
  };
  for (std::size_t b = 0; b < bins; ++b) {
    const double x = left + slot * static_cast<double>(b);
    const double w = with_ref ? slot * 0.42 : slot * 0.8;
    if (with_ref) bar("reference", b, ref.reference[b], ref_total, x + slot * 0.06, w, "#9aa5b8");
    bar("live", b, live[b], live_total, with_ref ? x + slot * 0.5 : x + slot * 0.1, w, "#c92a2a");
  }
  // A few bin labels under the axis (the tooltips have all of them).
  const std::size_t every = std::max<std::size_t>(1, (bins + 5) / 6);
  for (std::size_t b = 0; b < bins; b += every) {
    const std::string label = b < ref.labels.size() ? ref.labels[b] : std::to_string(b);
    s += "<text class=\"tick\" x=\"" + fixed1(left + slot * (static_cast<double>(b) + 0.5)) +
         "\" y=\"" + fixed1(top + ph + 13) + "\" text-anchor=\"middle\">" +
         escape(label.size() > 14 ? label.substr(0, 13) + "\u2026" : label) + "</text>";
  }
  s += "<text class=\"axis\" x=\"" + fixed1(left + pw / 2) + "\" y=\"" + fixed1(H - 4) +
       "\" text-anchor=\"middle\">" +
       (with_ref ? "share of rows per reference bin: reference (grey) vs live (red)"
                 : "share of live rows per reference bin") +
       "</text>";
  return s + "</svg></figure>";
}

/// The reference distribution of feature `index` of `profile`, if it matches `f`.
Distribution reference_of(const monitor::Profile* profile, std::size_t index,
                          const FeatureDrift& f) {
  if (!profile || index >= profile->features.size()) return {};
  const monitor::FeatureProfile& p = profile->features[index];
  if (p.name != f.name) return {};
  if (p.kind == monitor::FeatureKind::categorical) {
    if (p.category_counts.size() != f.live_counts.size()) return {};
    return {p.categories, p.category_counts};
  }
  if (p.histogram.counts.size() != f.live_counts.size()) return {};
  return {bin_labels(p.histogram), p.histogram.counts};
}

Distribution prediction_reference(const monitor::Profile* profile, const FeatureDrift& f) {
  if (!profile) return {};
  if (profile->predicted == monitor::PredictionKind::classes &&
      profile->class_counts.size() == f.live_counts.size())
    return {profile->labels, profile->class_counts};
  if (profile->predicted == monitor::PredictionKind::values &&
      profile->prediction_histogram.counts.size() == f.live_counts.size())
    return {bin_labels(profile->prediction_histogram), profile->prediction_histogram.counts};
  return {};
}

std::string table_row(const FeatureDrift& f) {
  using report::internal::number_cell;
  return "<tr data-feature=\"" + escape(f.name) + "\" data-psi=\"" + number_text(f.psi) +
         "\" data-p-value=\"" + number_text(f.p_value) + "\" data-statistic=\"" +
         number_text(f.statistic) + "\" data-drifted=\"" + (f.drifted ? "1" : "0") + "\"><td>" +
         escape(f.name) + "</td><td>" + escape(f.test) + "</td><td class=\"num\">" +
         std::to_string(f.rows) + "</td>" + number_cell(f.statistic) + number_cell(f.p_value) +
         number_cell(f.psi) + "<td>" + monitor::psi_level_name(f.psi_level) + "</td><td>" +
         (f.drifted ? "<b style=\"color:#c92a2a\">drift</b>" : "") + "</td><td>" +
         escape(live_anomalies(f)) + "</td></tr>";
}

}  // namespace

std::string drift_text(const DriftReport& r, std::size_t max_rows) {
  std::string s = "Drift of " + (r.model.empty() ? std::string("(unnamed model)") : r.model);
  if (!r.model_version.empty()) s += " version " + r.model_version;
  if (!r.model_hash.empty()) s += " (" + r.model_hash.substr(0, 12) + ")";
  if (!r.created.empty()) s += " at " + r.created;
  s += "\nrows seen " + std::to_string(r.rows_seen) + ", observed " +
       std::to_string(r.rows_observed) + "; alpha " + format("%.3g", r.alpha) +
       " (Bonferroni: " + format("%.3g", r.corrected_alpha) + " per test)\n\n";

  const std::vector<const FeatureDrift*> features = ordered(r);
  std::vector<TextRow> rows;
  rows.push_back({{"feature", "test", "rows", "statistic", "p-value", "PSI", "level", "drift",
                   "live anomalies"}});
  const std::size_t shown = std::min(features.size(), max_rows);
  for (std::size_t i = 0; i < shown; ++i) rows.push_back(text_row(*features[i]));
  const bool prediction = r.prediction.rows > 0 || !r.prediction.live_counts.empty();
  if (prediction) rows.push_back(text_row(r.prediction));
  std::size_t widths[9] = {};
  for (const auto& row : rows)
    for (int c = 0; c < 9; ++c) widths[c] = std::max(widths[c], row.cells[c].size());
  for (std::size_t k = 0; k < rows.size(); ++k) {
    if (prediction && k + 1 == rows.size() && shown < features.size()) {
      std::int64_t left_drifted = 0;
      for (std::size_t i = shown; i < features.size(); ++i) left_drifted += features[i]->drifted;
      s += "... " + std::to_string(features.size() - shown) + " more features (" +
           std::to_string(left_drifted) + " of them drifted; --json lists every feature)\n";
    }
    std::string line;
    for (int c = 0; c < 9; ++c) line += pad(rows[k].cells[c], widths[c] + 2);
    while (!line.empty() && line.back() == ' ') line.pop_back();
    s += line + "\n";
  }
  if (!prediction && shown < features.size())
    s += "... " + std::to_string(features.size() - shown) + " more features\n";

  const monitor::LabelMetrics& l = r.labels;
  if (l.labelled > 0) {
    s += "\nlabels: " + std::to_string(l.labelled) + " labelled; live " + l.metric + " " +
         format("%.4g", l.live);
    if (std::isfinite(l.reference)) s += ", reference " + format("%.4g", l.reference);
    s += "; p = " + format("%.3g", l.p_value) + (l.decayed ? ": DECAY ALARM" : ": no decay") + "\n";
  }
  s += "\nverdict: " + verdict(r) + "\n";
  return s;
}

std::string drift_html(const DriftReport& r, const monitor::Profile* profile,
                       const std::string& id) {
  using report::internal::number_cell;
  const std::vector<const FeatureDrift*> features = ordered(r);
  const bool drifted = r.drifted || r.labels.decayed;
  std::string s = "<section id=\"" + escape(id) + "\" class=\"drift\" data-present=\"1\"" +
                  " data-drifted=\"" + (r.drifted ? "1" : "0") + "\" data-decayed=\"" +
                  (r.labels.decayed ? "1" : "0") + "\" data-features-drifted=\"" +
                  std::to_string(r.features_drifted) + "\" data-max-psi=\"" +
                  number_text(r.max_psi) + "\"><h2>Drift</h2>";
  s += "<p class=\"note\">" + escape(r.model) +
       (r.model_version.empty() ? "" : " version " + escape(r.model_version)) +
       (r.model_hash.empty() ? ""
                             : " \u00b7 <code>" + escape(r.model_hash.substr(0, 12)) + "</code>") +
       (r.created.empty() ? "" : " \u00b7 " + escape(r.created)) + " \u00b7 rows seen " +
       std::to_string(r.rows_seen) + ", observed " + std::to_string(r.rows_observed) +
       " \u00b7 alpha " + escape(number_text(r.alpha)) + " (Bonferroni " +
       escape(format("%.3g", r.corrected_alpha)) + " per test)</p>";
  s += std::string("<div class=\"") + (drifted ? "warning" : "ok") + "\" data-verdict=\"" +
       (drifted ? "drift" : "none") + "\">" + escape(verdict(r)) + "</div>";
  s += "<div class=\"grid2\"><div>" + psi_chart(features, id) + "</div><div>";
  // Histograms of the most drifted features (and the predictions).
  std::size_t drawn = 0;
  for (const FeatureDrift* f : features) {
    if (drawn == max_histograms || f->live_counts.empty()) continue;
    if (!f->drifted && f->psi_level == monitor::PsiLevel::none && drawn > 0) break;
    const auto index = static_cast<std::size_t>(f - r.features.data());
    s += histogram_chart(id + "-hist-" + f->name, f->name + " (PSI " + format("%.3g", f->psi) + ")",
                         f->live_counts, reference_of(profile, index, *f));
    ++drawn;
  }
  if (!r.prediction.live_counts.empty())
    s += histogram_chart(id + "-hist-prediction",
                         "predictions (PSI " + format("%.3g", r.prediction.psi) + ")",
                         r.prediction.live_counts, prediction_reference(profile, r.prediction));
  s += "</div></div>";

  s += "<h3>Features</h3><div class=\"scroll\"><table><tr><th>feature</th><th>test</th><th "
       "class=\"num\">rows</th><th class=\"num\">statistic</th><th class=\"num\">p-value</th><th "
       "class=\"num\">PSI</th><th>level</th><th>drift</th><th>live anomalies</th></tr>";
  for (const FeatureDrift* f : features) s += table_row(*f);
  if (r.prediction.rows > 0 || !r.prediction.live_counts.empty()) s += table_row(r.prediction);
  s += "</table></div>";
  const monitor::LabelMetrics& l = r.labels;
  if (l.labelled > 0)
    s += "<h3>Labels</h3><table><tr data-labels=\"" + std::to_string(l.labelled) +
         "\" data-live=\"" + number_text(l.live) + "\" data-reference=\"" +
         number_text(l.reference) + "\" data-decayed=\"" + (l.decayed ? "1" : "0") +
         "\"><td class=\"key\">labelled</td><td class=\"num\">" + std::to_string(l.labelled) +
         "</td><td class=\"key\">live " + escape(l.metric) + "</td>" + number_cell(l.live) +
         "<td class=\"key\">reference</td>" + number_cell(l.reference) +
         "<td class=\"key\">p-value</td>" + number_cell(l.p_value) + "<td>" +
         (l.decayed ? "<b style=\"color:#c92a2a\">decay alarm</b>" : "no decay") +
         "</td></tr></table>";
  return s + "</section>";
}

void write_drift_page(const DriftReport& r, const std::string& path,
                      const monitor::Profile* profile) {
  const std::string title = (r.model.empty() ? std::string("model") : r.model) + " \u2014 drift";
  const std::string html = report::internal::page(
      title, r.created, "<h1>" + escape(title) + "</h1>" + drift_html(r, profile), {});
  kiln::internal::write_file_atomically(
      path, std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(html.data()),
                                          html.size()));
}

}  // namespace kiln::mlops
