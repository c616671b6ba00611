// Inline-SVG charts for the report.
#include "report/svg.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "report/run_reader.hpp"

namespace kiln::report::internal {
namespace {

std::string fixed(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

/// "Nice" tick values (1, 2, 5 times a power of ten) covering [lo, hi].
std::vector<double> nice_ticks(double lo, double hi, int target) {
  if (!(hi > lo)) return {lo};
  double raw = (hi - lo) / std::max(1, target);
  double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0})
    if (raw <= m * mag) {
      step = m * mag;
      break;
    }
  std::vector<double> ticks;
  for (double t = std::ceil(lo / step - 1e-9) * step; t <= hi + step * 1e-9; t += step)
    ticks.push_back(std::abs(t) < step * 1e-9 ? 0.0 : t);
  return ticks;
}

std::string opacity(double v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

struct Color {
  double r, g, b;
};
Color mix(Color a, Color b, double t) {
  t = std::clamp(t, 0.0, 1.0);
  return {a.r + (b.r - a.r) * t, a.g + (b.g - a.g) * t, a.b + (b.b - a.b) * t};
}
std::string css(Color c) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "#%02x%02x%02x", static_cast<int>(std::lround(c.r)),
                static_cast<int>(std::lround(c.g)), static_cast<int>(std::lround(c.b)));
  return buf;
}
constexpr Color white{255, 255, 255}, blue{33, 102, 172}, red{178, 24, 43}, black{0, 0, 0};

std::string legend(const std::vector<Series>& series) {
  std::string s = "<div class=\"legend\">";
  for (const auto& x : series) {
    s += "<span><i style=\"background:" + escape(x.color) + (x.dashed ? ";opacity:.55" : "") +
         "\"></i>" + escape(x.label.empty() ? x.name : x.label) + "</span>";
  }
  return s + "</div>";
}

std::string figure_open(const std::string& id, const std::string& title) {
  return "<figure class=\"fig\" id=\"fig-" + escape(id) + "\"><figcaption>" + escape(title) +
         "</figcaption>";
}

}  // namespace

std::string escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string short_number(double v) {
  if (std::isnan(v)) return "NaN";
  if (v == 0) return "0";
  char buf[32];
  double a = std::abs(v);
  if (a >= 1e4 && a < 1e9)
    std::snprintf(buf, sizeof buf, "%.0f", v);
  else if (a >= 1e-4 && a < 1e4)
    std::snprintf(buf, sizeof buf, "%.4g", v);
  else
    std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

std::string series_color(std::size_t i) {
  static const char* colors[] = {"#1f77b4", "#d95f02", "#1b9e77", "#7570b3",
                                 "#e7298a", "#66a61e", "#a6761d", "#666666"};
  return colors[i % 8];
}

std::string render_line_chart(const LineChart& chart) {
  const double W = chart.width, H = chart.height;
  const double left = 58, right = 14, top = 10, bottom = 36;
  const double pw = W - left - right, ph = H - top - bottom;

  // The points each series draws.
  struct Points {
    std::vector<double> x, y;
  };
  std::vector<Points> pts(chart.series.size());
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  for (std::size_t s = 0; s < chart.series.size(); ++s) {
    const auto& sr = chart.series[s];
    for (std::size_t i = 0; i < std::min(sr.x.size(), sr.y.size()); ++i) {
      double x = sr.x[i], y = sr.y[i];
      if (!std::isfinite(x) || !std::isfinite(y) || (chart.log_y && y <= 0)) continue;
      pts[s].x.push_back(x);
      pts[s].y.push_back(y);
      x0 = std::min(x0, x), x1 = std::max(x1, x);
      double ty = chart.log_y ? std::log10(y) : y;
      y0 = std::min(y0, ty), y1 = std::max(y1, ty);
    }
  }
  bool empty = !(x0 <= x1);
  if (empty) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  if (x1 == x0) x0 -= 0.5, x1 += 0.5;
  if (y1 == y0) {
    double pad = chart.log_y ? 0.5 : std::max(std::abs(y0) * 0.1, 0.5);
    y0 -= pad, y1 += pad;
  } else {
    double pad = (y1 - y0) * 0.05;
    y0 -= pad, y1 += pad;
  }
  if (!chart.log_y && y0 < 0 && y0 > -(y1 - y0) * 0.08) {
    bool all_nonneg = true;
    for (const auto& p : pts)
      for (double y : p.y) all_nonneg = all_nonneg && y >= 0;
    if (all_nonneg) y0 = 0;
  }
  auto sx = [&](double x) { return left + (x - x0) / (x1 - x0) * pw; };
  auto sy = [&](double y) {
    double t = chart.log_y ? std::log10(y) : y;
    return top + (1.0 - (t - y0) / (y1 - y0)) * ph;
  };

  std::string s = figure_open(chart.id, chart.title);
  s += "<svg class=\"chart\" data-chart=\"" + escape(chart.id) +
       "\" data-kind=\"line\" viewBox=\"0 0 " + fixed(W) + " " + fixed(H) +
       "\" preserveAspectRatio=\"xMidYMid meet\" data-plot=\"" + fixed(left) + " " +
       fixed(left + pw) + "\" data-xrange=\"" + number_text(x0) + " " + number_text(x1) + "\"" +
       (chart.log_y ? " data-log-y=\"1\"" : "") + " role=\"img\" aria-label=\"" +
       escape(chart.title) + "\">";
  // Grid and axes.
  s += "<g class=\"grid\">";
  for (double t : nice_ticks(x0, x1, 6)) {
    double x = sx(t);
    s += "<line x1=\"" + fixed(x) + "\" y1=\"" + fixed(top) + "\" x2=\"" + fixed(x) + "\" y2=\"" +
         fixed(top + ph) + "\"/>";
    s += "<text class=\"tick\" x=\"" + fixed(x) + "\" y=\"" + fixed(top + ph + 14) +
         "\" text-anchor=\"middle\">" + escape(short_number(t)) + "</text>";
  }
  std::vector<double> yt;
  if (chart.log_y) {
    const bool few_decades = y1 - y0 < 1.2;  // under ~1 decade: 1, 2, 5 x 10^k
    for (double e = std::floor(y0); e <= std::ceil(y1); ++e)
      for (double m : {1.0, 2.0, 5.0}) {
        if (m != 1.0 && !few_decades) continue;
        double t = m * std::pow(10.0, e), lt = std::log10(t);
        if (lt >= y0 && lt <= y1) yt.push_back(t);
      }
    if (yt.size() > 7) {
      std::vector<double> thin;
      std::size_t every = (yt.size() + 5) / 6;
      for (std::size_t i = 0; i < yt.size(); i += every) thin.push_back(yt[i]);
      yt = thin;
    }
    if (yt.empty()) yt.push_back(std::pow(10.0, (y0 + y1) / 2));
  } else {
    yt = nice_ticks(y0, y1, 5);
  }
  for (double t : yt) {
    double y = sy(t);
    if (y < top - 0.5 || y > top + ph + 0.5) continue;
    s += "<line x1=\"" + fixed(left) + "\" y1=\"" + fixed(y) + "\" x2=\"" + fixed(left + pw) +
         "\" y2=\"" + fixed(y) + "\"/>";
    s += "<text class=\"tick\" x=\"" + fixed(left - 5) + "\" y=\"" + fixed(y + 3.5) +
         "\" text-anchor=\"end\">" + escape(short_number(t)) + "</text>";
  }
  s += "</g>";
  s += "<rect class=\"frame\" x=\"" + fixed(left) + "\" y=\"" + fixed(top) + "\" width=\"" +
       fixed(pw) + "\" height=\"" + fixed(ph) + "\"/>";
  s += "<text class=\"axis\" x=\"" + fixed(left + pw / 2) + "\" y=\"" + fixed(H - 4) +
       "\" text-anchor=\"middle\">" + escape(chart.x_label) + "</text>";
  s += "<text class=\"axis\" transform=\"translate(12 " + fixed(top + ph / 2) +
       ") rotate(-90)\" text-anchor=\"middle\">" + escape(chart.y_label) +
       (chart.log_y ? " (log)" : "") + "</text>";
  if (empty)
    s += "<text class=\"axis\" x=\"" + fixed(left + pw / 2) + "\" y=\"" + fixed(top + ph / 2) +
         "\" text-anchor=\"middle\">no values</text>";

  // Series.
  for (std::size_t k = 0; k < chart.series.size(); ++k) {
    const auto& sr = chart.series[k];
    const auto& p = pts[k];
    std::string d, xs, ys;
    for (std::size_t i = 0; i < p.x.size(); ++i) {
      d += (i == 0 ? "M" : " L") + fixed(sx(p.x[i])) + "," + fixed(sy(p.y[i]));
      xs += (i ? " " : "") + number_text(p.x[i]);
      ys += (i ? " " : "") + number_text(p.y[i]);
    }
    std::string label = sr.label.empty() ? sr.name : sr.label;
    s += "<g class=\"series\"><path d=\"" + d + "\" fill=\"none\" stroke=\"" + escape(sr.color) +
         "\" stroke-width=\"1.8\"" + (sr.dashed ? " stroke-dasharray=\"5 3\"" : "") +
         " data-series=\"" + escape(sr.name) + "\" data-label=\"" + escape(label) + "\"";
    for (const auto& [key, value] : sr.attributes) s += " " + key + "=\"" + escape(value) + "\"";
    s += " data-x=\"" + xs + "\" data-y=\"" + ys + "\"><title>" + escape(label);
    if (!p.x.empty())
      s += ": last " + escape(number_text(p.y.back())) + " at " +
           escape(chart.x_label.empty() ? "x" : chart.x_label) + " " +
           escape(number_text(p.x.back()));
    s += "</title></path>";
    if (p.x.size() <= 40)
      for (std::size_t i = 0; i < p.x.size(); ++i)
        s += "<circle cx=\"" + fixed(sx(p.x[i])) + "\" cy=\"" + fixed(sy(p.y[i])) +
             "\" r=\"2.6\" fill=\"" + escape(sr.color) + "\"><title>" + escape(label) + " at " +
             escape(number_text(p.x[i])) + ": " + escape(number_text(p.y[i])) + "</title></circle>";
    s += "</g>";
  }
  s += "</svg>";
  if (chart.series.size() > 1 || (!chart.series.empty() && !chart.series[0].label.empty()))
    s += legend(chart.series);
  return s + "</figure>";
}

std::string render_bar_chart(const BarChart& chart) {
  const double W = chart.width, label_w = 150, value_w = 70, row = 22, top = 6;
  const double pw = W - label_w - value_w - 10;
  double lo = 0, hi = 0;
  for (const auto& b : chart.bars) {
    double e = std::isfinite(b.error) ? b.error : 0.0;
    if (std::isfinite(b.value)) lo = std::min(lo, b.value - e), hi = std::max(hi, b.value + e);
  }
  if (chart.diverging) hi = std::max(std::abs(lo), std::abs(hi)), lo = -hi;
  if (hi == lo) hi = lo + 1;
  auto sx = [&](double v) { return label_w + (v - lo) / (hi - lo) * pw; };
  const double H = top * 2 + row * static_cast<double>(chart.bars.size()) + 18;

  std::string s = figure_open(chart.id, chart.title);
  s += "<svg class=\"chart\" data-chart=\"" + escape(chart.id) +
       "\" data-kind=\"bars\" viewBox=\"0 0 " + fixed(W) + " " + fixed(H) +
       "\" style=\"max-width:" + fixed(W * 1.15) + "px\" role=\"img\">";
  double zero = sx(0);
  for (std::size_t i = 0; i < chart.bars.size(); ++i) {
    const auto& b = chart.bars[i];
    double y = top + row * static_cast<double>(i);
    double v = std::isfinite(b.value) ? b.value : 0.0;
    double x_a = std::min(zero, sx(v)), x_b = std::max(zero, sx(v));
    std::string color = chart.diverging ? (v < 0 ? css(red) : css(blue)) : "#4e79a7";
    std::string tip = b.label + ": " + number_text(b.value) +
                      (std::isfinite(b.error) ? " \u00b1 " + number_text(b.error) : "");
    s += "<text class=\"tick\" x=\"" + fixed(label_w - 6) + "\" y=\"" + fixed(y + 15) +
         "\" text-anchor=\"end\">" + escape(b.label) + "</text>";
    s += "<rect x=\"" + fixed(x_a) + "\" y=\"" + fixed(y + 3) + "\" width=\"" +
         fixed(std::max(0.5, x_b - x_a)) + "\" height=\"" + fixed(row - 6) + "\" fill=\"" + color +
         "\" data-label=\"" + escape(b.label) + "\" data-value=\"" + number_text(b.value) + "\"" +
         (std::isfinite(b.error) ? " data-error=\"" + number_text(b.error) + "\"" : "") +
         "><title>" + escape(tip) + "</title></rect>";
    if (std::isfinite(b.error) && b.error > 0) {
      double e0 = sx(v - b.error), e1 = sx(v + b.error), ym = y + row / 2;
      s += "<path class=\"whisker\" d=\"M" + fixed(e0) + "," + fixed(ym) + " L" + fixed(e1) + "," +
           fixed(ym) + " M" + fixed(e0) + "," + fixed(ym - 4) + " L" + fixed(e0) + "," +
           fixed(ym + 4) + " M" + fixed(e1) + "," + fixed(ym - 4) + " L" + fixed(e1) + "," +
           fixed(ym + 4) + "\"/>";
    }
    s += "<text class=\"tick\" x=\"" + fixed(label_w + pw + 6) + "\" y=\"" + fixed(y + 15) + "\">" +
         escape(short_number(b.value)) + "</text>";
  }
  s += "<line class=\"zero\" x1=\"" + fixed(zero) + "\" y1=\"" + fixed(top) + "\" x2=\"" +
       fixed(zero) + "\" y2=\"" + fixed(H - 18) + "\"/>";
  s += "<text class=\"axis\" x=\"" + fixed(label_w + pw / 2) + "\" y=\"" + fixed(H - 4) +
       "\" text-anchor=\"middle\">" + escape(chart.value_label) + "</text>";
  return s + "</svg></figure>";
}

std::string render_heat_map(const HeatMap& map) {
  const bool labels = !map.row_labels.empty() || !map.col_labels.empty();
  const double cell = map.cell;
  const double left = labels ? 110 : 4, top = labels ? 24 : 4;
  const double W = left + cell * static_cast<double>(map.cols) + 8;
  const double H = top + cell * static_cast<double>(map.rows) + (labels ? 28 : 4);
  double max_abs = 0, lo = INFINITY, hi = -INFINITY;
  for (double v : map.values)
    if (std::isfinite(v)) {
      max_abs = std::max(max_abs, std::abs(v));
      lo = std::min(lo, v), hi = std::max(hi, v);
    }
  std::string s = figure_open(map.id, map.title);
  s += "<svg class=\"chart heat\" data-chart=\"" + escape(map.id) +
       "\" data-kind=\"heatmap\" viewBox=\"0 0 " + fixed(W) + " " + fixed(H) +
       "\" style=\"max-width:" + fixed(W * 1.4) + "px\" role=\"img\">";
  for (std::int64_t r = 0; r < map.rows; ++r) {
    for (std::int64_t c = 0; c < map.cols; ++c) {
      double v = map.values[static_cast<std::size_t>(r * map.cols + c)];
      Color col = white;
      double t = 0;
      if (std::isfinite(v)) {
        if (map.grayscale) {
          t = hi > lo ? (v - lo) / (hi - lo) : 0.0;
          col = mix(black, white, t);
        } else if (map.diverging) {
          t = max_abs > 0 ? v / max_abs : 0.0;
          col = t < 0 ? mix(white, red, -t) : mix(white, blue, t);
        } else {
          t = max_abs > 0 ? std::abs(v) / max_abs : 0.0;
          col = mix(white, blue, t);
        }
      }
      double x = left + cell * static_cast<double>(c), y = top + cell * static_cast<double>(r);
      std::string rl = r < static_cast<std::int64_t>(map.row_labels.size())
                           ? map.row_labels[static_cast<std::size_t>(r)]
                           : std::to_string(r);
      std::string cl = c < static_cast<std::int64_t>(map.col_labels.size())
                           ? map.col_labels[static_cast<std::size_t>(c)]
                           : std::to_string(c);
      s += "<rect x=\"" + fixed(x) + "\" y=\"" + fixed(y) + "\" width=\"" + fixed(cell) +
           "\" height=\"" + fixed(cell) + "\" fill=\"" + css(col) + "\" data-row=\"" +
           std::to_string(r) + "\" data-col=\"" + std::to_string(c) + "\" data-value=\"" +
           number_text(v) + "\"><title>" +
           escape((map.row_title.empty() ? "" : map.row_title + " ") + rl + ", " +
                  (map.col_title.empty() ? "" : map.col_title + " ") + cl + ": " + number_text(v)) +
           "</title></rect>";
      if (map.show_values)
        s += "<text class=\"cell\" x=\"" + fixed(x + cell / 2) + "\" y=\"" +
             fixed(y + cell / 2 + 4) + "\" text-anchor=\"middle\"" +
             (std::abs(t) > 0.55 ? " fill=\"#fff\"" : "") + ">" + escape(short_number(v)) +
             "</text>";
    }
  }
  s += "<rect class=\"frame\" x=\"" + fixed(left) + "\" y=\"" + fixed(top) + "\" width=\"" +
       fixed(cell * static_cast<double>(map.cols)) + "\" height=\"" +
       fixed(cell * static_cast<double>(map.rows)) + "\"/>";
  if (labels) {
    for (std::size_t r = 0; r < map.row_labels.size(); ++r)
      s += "<text class=\"tick\" x=\"" + fixed(left - 6) + "\" y=\"" +
           fixed(top + cell * (static_cast<double>(r) + 0.5) + 4) + "\" text-anchor=\"end\">" +
           escape(map.row_labels[r]) + "</text>";
    for (std::size_t c = 0; c < map.col_labels.size(); ++c)
      s += "<text class=\"tick\" x=\"" + fixed(left + cell * (static_cast<double>(c) + 0.5)) +
           "\" y=\"" + fixed(top - 6) + "\" text-anchor=\"middle\">" + escape(map.col_labels[c]) +
           "</text>";
    s += "<text class=\"axis\" x=\"" + fixed(left + cell * static_cast<double>(map.cols) / 2) +
         "\" y=\"" + fixed(H - 6) + "\" text-anchor=\"middle\">" + escape(map.col_title) +
         "</text>";
    s += "<text class=\"axis\" x=\"" + fixed(left - 6) + "\" y=\"" + fixed(top - 6) +
         "\" text-anchor=\"end\">" + escape(map.row_title) + " \u2193</text>";
  }
  return s + "</svg></figure>";
}

std::string render_heat_strip(const HeatStrip& strip) {
  const double W = strip.width, H = strip.height;
  const double left = 58, right = 14, top = 10, bottom = 36;
  const double pw = W - left - right, ph = H - top - bottom;
  // At most 80 columns, evenly chosen (the last always kept).
  std::vector<const HistogramColumn*> cols;
  std::size_t n = strip.columns.size();
  std::size_t keep = std::min<std::size_t>(n, 80);
  for (std::size_t i = 0; i < keep; ++i)
    cols.push_back(&strip.columns[keep == 1 ? n - 1 : i * (n - 1) / (keep - 1)]);
  double lo = INFINITY, hi = -INFINITY;
  for (const auto* c : cols)
    if (std::isfinite(c->lo) && std::isfinite(c->hi))
      lo = std::min(lo, c->lo), hi = std::max(hi, c->hi);
  if (!(lo <= hi)) lo = 0, hi = 1;
  if (hi == lo) lo -= 0.5, hi += 0.5;
  auto sy = [&](double v) { return top + (1.0 - (v - lo) / (hi - lo)) * ph; };

  std::string s = figure_open(strip.id, strip.title);
  s += "<svg class=\"chart\" data-chart=\"" + escape(strip.id) +
       "\" data-kind=\"heatstrip\" viewBox=\"0 0 " + fixed(W) + " " + fixed(H) + "\" role=\"img\">";
  double cw = cols.empty() ? pw : pw / static_cast<double>(cols.size());
  for (std::size_t i = 0; i < cols.size(); ++i) {
    const auto& c = *cols[i];
    double total = 0, peak = 0;
    for (double v : c.counts)
      if (std::isfinite(v)) total += v, peak = std::max(peak, v);
    double x = left + cw * static_cast<double>(i);
    s += "<g data-step=\"" + number_text(c.step) + "\"><title>step " + number_text(c.step) +
         ": values in [" + number_text(c.lo) + ", " + number_text(c.hi) + "], " +
         number_text(total) + " elements</title>";
    std::size_t bins = c.counts.size();
    for (std::size_t b = 0; b < bins; ++b) {
      double v = c.counts[b];
      if (!std::isfinite(v) || v <= 0) continue;
      double w = bins ? (c.hi - c.lo) / static_cast<double>(bins) : 0;
      double b_lo = c.lo + w * static_cast<double>(b), b_hi = b_lo + w;
      double y_a = sy(b_hi), y_b = sy(b_lo);
      if (y_b - y_a < 1.2) {
        double m = (y_a + y_b) / 2;
        y_a = m - 0.6, y_b = m + 0.6;
      }
      s += "<rect x=\"" + fixed(x) + "\" y=\"" + fixed(y_a) + "\" width=\"" +
           fixed(std::max(1.0, cw - 0.3)) + "\" height=\"" + fixed(y_b - y_a) + "\" fill=\"" +
           css(blue) + "\" fill-opacity=\"" + opacity(0.1 + 0.9 * std::sqrt(v / peak)) +
           "\" data-value=\"" + number_text(v) + "\"/>";
    }
    s += "</g>";
  }
  s += "<rect class=\"frame\" x=\"" + fixed(left) + "\" y=\"" + fixed(top) + "\" width=\"" +
       fixed(pw) + "\" height=\"" + fixed(ph) + "\"/>";
  for (double t : nice_ticks(lo, hi, 4))
    s += "<text class=\"tick\" x=\"" + fixed(left - 5) + "\" y=\"" + fixed(sy(t) + 3.5) +
         "\" text-anchor=\"end\">" + escape(short_number(t)) + "</text>";
  if (!cols.empty()) {
    s += "<text class=\"tick\" x=\"" + fixed(left) + "\" y=\"" + fixed(top + ph + 14) + "\">" +
         escape(number_text(cols.front()->step)) + "</text>";
    s += "<text class=\"tick\" x=\"" + fixed(left + pw) + "\" y=\"" + fixed(top + ph + 14) +
         "\" text-anchor=\"end\">" + escape(number_text(cols.back()->step)) + "</text>";
  }
  s += "<text class=\"axis\" x=\"" + fixed(left + pw / 2) + "\" y=\"" + fixed(H - 4) +
       "\" text-anchor=\"middle\">step (sampled)</text>";
  s += "<text class=\"axis\" transform=\"translate(12 " + fixed(top + ph / 2) +
       ") rotate(-90)\" text-anchor=\"middle\">value</text>";
  return s + "</svg></figure>";
}

}  // namespace kiln::report::internal
