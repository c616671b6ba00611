// The report's model graph, data summary, evaluation and explanations sections.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

#include "report/report_parts.hpp"
#include "report/svg.hpp"

namespace kiln::report::internal {
namespace {

constexpr double nan = std::numeric_limits<double>::quiet_NaN();

std::string str(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return {};
  return it->is_string() ? it->get<std::string>() : it->dump();
}
double num(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : nan;
}
std::vector<std::string> strings(const json& j, const char* key) {
  std::vector<std::string> out;
  auto it = j.find(key);
  if (it != j.end() && it->is_array())
    for (const auto& v : *it) out.push_back(v.is_string() ? v.get<std::string>() : v.dump());
  return out;
}
std::string shape_text(const json& j) {
  if (!j.is_array()) return "?";
  std::string s = "[";
  for (std::size_t i = 0; i < j.size(); ++i) {
    s += i ? ", " : "";
    s += j[i].is_number_integer() && j[i].get<std::int64_t>() < 0 ? "N" : j[i].dump();
  }
  return s + "]";
}
std::string count_text(double v) {
  if (!std::isfinite(v)) return "0";
  auto n = static_cast<long long>(v);
  std::string digits = std::to_string(n < 0 ? -n : n), out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return (n < 0 ? "-" : "") + out;
}
std::string px(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}
std::string clip(const std::string& s, std::size_t n) {
  return s.size() <= n ? s : s.substr(0, n - 1) + "\u2026";
}
std::string join(const std::vector<std::string>& v, const char* sep) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : sep) + x;
  return s;
}

/// The model as boxes in rows by depth (longest path from an input), arrows from inputs.
std::string graph_diagram(const json& layers) {
  struct Box {
    std::string name, type, shape, params, ops;
    std::vector<std::string> inputs;
    int level = 0;
    double x = 0, y = 0;
  };
  std::vector<Box> boxes;
  std::map<std::string, std::size_t> index;
  for (const auto& l : layers) {
    if (!l.is_object()) continue;
    Box b;
    b.name = str(l, "name");
    b.type = str(l, "type");
    b.shape = shape_text(l.contains("output_shape") ? l["output_shape"] : json());
    double params = 0;
    for (const char* k : {"trainable", "non_trainable"})
      if (double v = num(l, k); std::isfinite(v)) params += v;
    b.params = count_text(params);
    std::string ops = join(strings(l, "ops"), ", ");
    std::string kernels = join(strings(l, "kernels"), ", ");
    b.ops = ops + (kernels.empty() ? "" : (ops.empty() ? "" : " \u00b7 ") + kernels);
    b.inputs = strings(l, "inputs");
    index[b.name] = boxes.size();
    boxes.push_back(std::move(b));
  }
  // Levels: layers are in order (inputs first), so one pass settles them.
  int depth = 0;
  for (auto& b : boxes) {
    for (const auto& in : b.inputs)
      if (auto it = index.find(in); it != index.end() && it->second < index[b.name])
        b.level = std::max(b.level, boxes[it->second].level + 1);
    depth = std::max(depth, b.level);
  }
  const double bw = 250, bh = 66, gap_x = 24, gap_y = 34, pad = 10;
  std::vector<std::vector<std::size_t>> rows(static_cast<std::size_t>(depth) + 1);
  for (std::size_t i = 0; i < boxes.size(); ++i)
    rows[static_cast<std::size_t>(boxes[i].level)].push_back(i);
  std::size_t widest = 1;
  for (const auto& r : rows) widest = std::max(widest, r.size());
  const double W = pad * 2 + static_cast<double>(widest) * (bw + gap_x) - gap_x;
  const double H = pad * 2 + static_cast<double>(rows.size()) * (bh + gap_y) - gap_y;
  for (std::size_t r = 0; r < rows.size(); ++r) {
    double row_w = static_cast<double>(rows[r].size()) * (bw + gap_x) - gap_x;
    for (std::size_t k = 0; k < rows[r].size(); ++k) {
      auto& b = boxes[rows[r][k]];
      b.x = (W - row_w) / 2 + static_cast<double>(k) * (bw + gap_x);
      b.y = pad + static_cast<double>(r) * (bh + gap_y);
    }
  }
  std::string s =
      "<figure class=\"fig\" id=\"fig-model-graph\"><figcaption>Model graph "
      "(N: the batch dimension)</figcaption>";
  s += "<svg class=\"chart\" data-chart=\"model-graph\" data-kind=\"graph\" viewBox=\"0 0 " +
       px(W) + " " + px(H) + "\" style=\"max-width:" + px(W) + "px\" role=\"img\">";
  for (const auto& b : boxes)
    for (const auto& in : b.inputs) {
      auto it = index.find(in);
      if (it == index.end()) continue;
      const auto& a = boxes[it->second];
      double x0 = a.x + bw / 2, y0 = a.y + bh, x1 = b.x + bw / 2, y1 = b.y - 2;
      double my = (y0 + y1) / 2;
      s += "<path class=\"edge\" data-from=\"" + escape(a.name) + "\" data-to=\"" + escape(b.name) +
           "\" d=\"M" + px(x0) + "," + px(y0) + " C" + px(x0) + "," + px(my) + " " + px(x1) + "," +
           px(my) + " " + px(x1) + "," + px(y1 - 5) + "\"/>";
      s += "<path class=\"arrow\" d=\"M" + px(x1 - 5) + "," + px(y1 - 7) + " L" + px(x1 + 5) + "," +
           px(y1 - 7) + " L" + px(x1) + "," + px(y1) + " Z\"/>";
    }
  for (const auto& b : boxes) {
    bool input = b.type == "Input" || b.inputs.empty();
    s += "<g data-layer=\"" + escape(b.name) + "\" data-inputs=\"" + escape(join(b.inputs, " ")) +
         "\"><title>" +
         escape(b.name + " (" + b.type + "): output " + b.shape + ", " + b.params + " parameters" +
                (b.ops.empty() ? "" : ", " + b.ops)) +
         "</title>";
    s += "<rect class=\"box" + std::string(input ? " input" : "") + "\" x=\"" + px(b.x) +
         "\" y=\"" + px(b.y) + "\" width=\"" + px(bw) + "\" height=\"" + px(bh) + "\" rx=\"6\"/>";
    s += "<text class=\"name\" x=\"" + px(b.x + 10) + "\" y=\"" + px(b.y + 17) + "\">" +
         escape(clip(b.name, 22)) + " <tspan class=\"tick\" font-weight=\"400\">" +
         escape(clip(b.type, 16)) + "</tspan></text>";
    s += "<text x=\"" + px(b.x + 10) + "\" y=\"" + px(b.y + 33) + "\">out " +
         escape(clip(b.shape, 20)) + " \u00b7 " + escape(b.params) + " params</text>";
    if (!b.ops.empty())
      s += "<text class=\"tick\" x=\"" + px(b.x + 10) + "\" y=\"" + px(b.y + 50) + "\">" +
           escape(clip(b.ops, 40)) + "</text>";
    s += "</g>";
  }
  return s + "</svg></figure>";
}

/// The input as a grayscale image beside the attributions as a red-white-blue heat map
/// ("ID-input" and "ID"), channels averaged / summed; "" when the sizes do not fit.
std::string image_pair(const std::string& id, const std::string& what, std::int64_t C,
                       std::int64_t H, std::int64_t W, const std::vector<double>& attr,
                       const std::vector<double>& vals) {
  if (C <= 0 || H <= 0 || W <= 0 || static_cast<std::int64_t>(attr.size()) != C * H * W) return {};
  HeatMap image{.id = id + "-input", .title = what + ": input"};
  HeatMap heat{.id = id, .title = "attribution (red: against, blue: for the class)"};
  image.rows = heat.rows = H;
  image.cols = heat.cols = W;
  image.grayscale = true;
  heat.diverging = true;
  image.cell = heat.cell = static_cast<int>(std::clamp<std::int64_t>(200 / std::max(H, W), 4, 30));
  for (std::int64_t i = 0; i < H * W; ++i) {
    double v = 0, t = 0;
    for (std::int64_t c = 0; c < C; ++c) {
      auto k = static_cast<std::size_t>(c * H * W + i);
      t += attr[k];
      v += k < vals.size() ? vals[k] : 0.0;
    }
    image.values.push_back(v / static_cast<double>(C));
    heat.values.push_back(t);
  }
  return "<div class=\"grid2\" style=\"grid-template-columns:1fr 1fr\">" + render_heat_map(image) +
         render_heat_map(heat) + "</div>";
}

/// k when the feature names are one prefix followed by 0, 1, ..., k*k - 1 (k >= 4), as
/// pixel columns are ("p0" ... "p63"); 0 otherwise.
std::int64_t pixel_grid_side(const std::vector<std::string>& names) {
  const auto n = static_cast<std::int64_t>(names.size());
  auto k = static_cast<std::int64_t>(std::llround(std::sqrt(static_cast<double>(n))));
  if (k < 4 || k * k != n || names[0].empty() || names[0].back() != '0') return 0;
  const std::string prefix = names[0].substr(0, names[0].size() - 1);
  for (std::int64_t i = 0; i < n; ++i)
    if (names[static_cast<std::size_t>(i)] != prefix + std::to_string(i)) return 0;
  return k;
}

}  // namespace

std::string graph_section(const RunData& run) {
  if (run.graph.is_null()) return absent_section("graph", "Model", "graph.json");
  std::string s = "<section id=\"graph\" data-present=\"1\"><h2>Model</h2>";
  const json layers = run.graph.contains("layers") && run.graph["layers"].is_array()
                          ? run.graph["layers"]
                          : json::array();
  s += "<p class=\"note\">" + std::to_string(layers.size()) + " layers \u00b7 " +
       count_text(num(run.graph, "trainable")) + " trainable, " +
       count_text(num(run.graph, "non_trainable")) + " non-trainable parameters \u00b7 outputs " +
       escape(join(strings(run.graph, "outputs"), ", ")) + "</p>";
  s += "<div class=\"grid2\"><div>" + graph_diagram(layers) + "</div><div><table>";
  s += "<tr><th>layer</th><th>type</th><th>output</th><th class=\"num\">params</th><th>ops "
       "(fused) \u00b7 kernels</th></tr>";
  for (const auto& l : layers) {
    if (!l.is_object()) continue;
    double params = 0;
    for (const char* k : {"trainable", "non_trainable"})
      if (double v = num(l, k); std::isfinite(v)) params += v;
    s += "<tr><td>" + escape(str(l, "name")) + "</td><td>" + escape(str(l, "type")) + "</td><td>" +
         escape(shape_text(l.contains("output_shape") ? l["output_shape"] : json())) +
         "</td><td class=\"num\">" + count_text(params) + "</td><td>" +
         escape(join(strings(l, "ops"), ", ")) + "<br><span class=\"note\">" +
         escape(join(strings(l, "kernels"), ", ")) + "</span></td></tr>";
  }
  return s + "</table></div></div></section>";
}

std::string data_section(const RunData& run) {
  if (run.data.is_null()) return absent_section("data", "Data", "data.json");
  const json& d = run.data;
  std::string s = "<section id=\"data\" data-present=\"1\"><h2>Data</h2><p class=\"note\">";
  std::vector<std::string> facts;
  if (!str(d, "file").empty()) facts.push_back("file <code>" + escape(str(d, "file")) + "</code>");
  for (const char* k : {"rows", "train_rows", "test_rows"})
    if (double v = num(d, k); std::isfinite(v)) facts.push_back(escape(k) + " " + count_text(v));
  if (!str(d, "target").empty()) facts.push_back("target <b>" + escape(str(d, "target")) + "</b>");
  if (!str(d, "task").empty()) facts.push_back(escape(str(d, "task")));
  s += join(facts, " \u00b7 ") + "</p><div class=\"grid2\">";

  const json columns =
      d.contains("columns") && d["columns"].is_array() ? d["columns"] : json::array();
  s += "<div><h3>Columns (" + std::to_string(columns.size()) +
       ")</h3><div class=\"scroll\"><table><tr><th>column</th><th>kind</th><th "
       "class=\"num\">min</th><th class=\"num\">max</th><th class=\"num\">mean</th><th "
       "class=\"num\">std</th><th class=\"num\">missing</th></tr>";
  for (const auto& c : columns) {
    if (!c.is_object()) continue;
    s += "<tr data-column=\"" + escape(str(c, "name")) + "\"><td>" + escape(str(c, "name")) +
         "</td><td>" + escape(str(c, "kind")) + "</td>";
    if (c.contains("categories")) {
      auto cats = strings(c, "categories");
      std::vector<std::string> parts;
      const json counts = c.contains("counts") ? c["counts"] : json::array();
      for (std::size_t i = 0; i < cats.size(); ++i)
        parts.push_back(cats[i] + (i < counts.size() ? " (" + counts[i].dump() + ")" : ""));
      s += "<td colspan=\"4\">" + escape(clip(join(parts, ", "), 120)) + "</td>";
    } else {
      for (const char* k : {"min", "max", "mean", "std"}) s += number_cell(num(c, k));
    }
    double missing = num(c, "missing");
    s += "<td class=\"num\">" + (std::isfinite(missing) ? count_text(missing) : "") + "</td></tr>";
  }
  s += "</table></div></div>";

  if (auto cls = d.find("classes"); cls != d.end() && cls->is_array() && !cls->empty()) {
    BarChart bars{.id = "class-balance", .title = "Class balance", .value_label = "rows"};
    for (const auto& c : *cls) bars.bars.push_back({str(c, "name"), num(c, "count")});
    s += "<div>" + render_bar_chart(bars) + "</div>";
  }
  return s + "</div></section>";
}

std::string evaluation_section(const RunData& run) {
  if (run.evaluation.is_null())
    return absent_section("evaluation", "Evaluation", "evaluation.json");
  const json& e = run.evaluation;
  std::string s = "<section id=\"evaluation\" data-present=\"1\"><h2>Evaluation</h2>";
  s += "<p class=\"note\">" + escape(str(e, "split").empty() ? "test" : str(e, "split")) + " split";
  if (double rows = num(e, "rows"); std::isfinite(rows)) s += ", " + count_text(rows) + " rows";
  s += "</p><div class=\"grid2\"><div>";
  if (auto m = e.find("metrics"); m != e.end() && m->is_object()) {
    s += "<table><tr><th>metric</th><th class=\"num\">value</th></tr>";
    for (const auto& [k, v] : m->items())
      s += "<tr data-metric=\"" + escape(k) + "\"><td>" + escape(k) + "</td>" +
           number_cell(v.is_number() ? v.get<double>() : nan) + "</tr>";
    s += "</table>";
  }
  if (auto pc = e.find("per_class"); pc != e.end() && pc->is_array() && !pc->empty()) {
    s += "<h3>Per class</h3><table><tr><th>class</th><th class=\"num\">precision</th><th "
         "class=\"num\">recall</th><th class=\"num\">f1</th><th class=\"num\">support</th></tr>";
    for (const auto& c : *pc)
      s += "<tr data-class=\"" + escape(str(c, "label")) + "\"><td>" + escape(str(c, "label")) +
           "</td>" + number_cell(num(c, "precision")) + number_cell(num(c, "recall")) +
           number_cell(num(c, "f1")) + number_cell(num(c, "support")) + "</tr>";
    s += "</table>";
  }
  s += "</div>";
  if (auto cm = e.find("confusion"); cm != e.end() && cm->is_array() && !cm->empty()) {
    HeatMap map{.id = "confusion",
                .title = "Confusion matrix (rows: true class, columns: predicted)"};
    map.row_labels = strings(e, "labels");
    map.col_labels = map.row_labels;
    map.rows = static_cast<std::int64_t>(cm->size());
    map.cols = 0;
    for (const auto& r : *cm)
      map.cols =
          std::max<std::int64_t>(map.cols, r.is_array() ? static_cast<std::int64_t>(r.size()) : 0);
    for (const auto& r : *cm)
      for (std::int64_t c = 0; c < map.cols; ++c)
        map.values.push_back(r.is_array() && c < static_cast<std::int64_t>(r.size()) &&
                                     r[static_cast<std::size_t>(c)].is_number()
                                 ? r[static_cast<std::size_t>(c)].get<double>()
                                 : nan);
    map.row_title = "true";
    map.col_title = "predicted";
    map.show_values = true;
    map.cell = map.cols > 12 ? 24 : 34;
    s += "<div>" + render_heat_map(map) + "</div>";
  }
  return s + "</div></section>";
}

std::string explanations_section(const RunData& run) {
  if (run.explanations.is_null())
    return absent_section("explanations", "Explanations", "explanations.json");
  const json& x = run.explanations;
  std::string s = "<section id=\"explanations\" data-present=\"1\"><h2>Explanations</h2>";
  if (auto pi = x.find("permutation_importance"); pi != x.end() && pi->is_object()) {
    BarChart bars{.id = "permutation-importance",
                  .title = "Permutation importance",
                  .value_label = "drop in " + str(*pi, "metric") + " when the feature is shuffled"};
    if (auto f = pi->find("features"); f != pi->end() && f->is_array())
      for (const auto& feat : *f)
        bars.bars.push_back({str(feat, "name"), num(feat, "importance"), num(feat, "std")});
    std::size_t total = bars.bars.size();
    if (bars.bars.size() > 20) bars.bars.resize(20);
    s += "<p class=\"note\">How much " + escape(str(*pi, "metric")) + " (baseline " +
         escape(short_number(num(*pi, "baseline"))) + " on " + count_text(num(*pi, "rows")) +
         " rows) drops when one feature's values are shuffled, "
         "mean \u00b1 std over " +
         count_text(num(*pi, "repeats")) + " repeats" +
         (total > bars.bars.size() ? "; the 20 most important of " + std::to_string(total)
                                   : std::string()) +
         ".</p>" + render_bar_chart(bars);
  }
  if (auto at = x.find("attributions"); at != x.end() && at->is_array() && !at->empty()) {
    s += "<h3>Input attributions</h3><div class=\"grid2\">";
    std::size_t shown = 0;
    for (const auto& a : *at) {
      if (!a.is_object() || shown >= 6) continue;
      std::string id = "attribution-" + std::to_string(shown++);
      std::vector<double> attr, vals;
      if (auto v = a.find("attributions"); v != a.end() && v->is_array())
        for (const auto& e : *v) attr.push_back(e.is_number() ? e.get<double>() : nan);
      if (auto v = a.find("values"); v != a.end() && v->is_array())
        for (const auto& e : *v) vals.push_back(e.is_number() ? e.get<double>() : nan);
      double sum = 0;
      for (double v : attr)
        if (std::isfinite(v)) sum += v;
      std::string cls = str(a, "class").empty() ? str(a, "class_index") : str(a, "class");
      std::string what = "Row " + str(a, "row") + ", class " + cls + " (" + str(a, "method") + ")";
      std::string note = "output " + short_number(num(a, "output")) + ", baseline output " +
                         short_number(num(a, "baseline_output")) + " (difference " +
                         short_number(num(a, "output") - num(a, "baseline_output")) +
                         "); the attributions sum to " + short_number(sum);
      auto features = strings(a, "features");
      const json shape = a.contains("shape") ? a["shape"] : json::array();
      s +=
          "<div data-attribution=\"" + escape(id) + "\"><p class=\"note\">" + escape(note) + "</p>";
      bool is_image = features.empty() && shape.is_array() && shape.size() == 3 &&
                      std::all_of(shape.begin(), shape.end(),
                                  [](const json& d) { return d.is_number_integer(); });
      if (is_image) {
        s += image_pair(id, what, shape[0].get<std::int64_t>(), shape[1].get<std::int64_t>(),
                        shape[2].get<std::int64_t>(), attr, vals);
      } else {
        // Tabular: a diverging bar per feature, the largest magnitudes first.
        std::vector<std::size_t> order(attr.size());
        for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
        std::stable_sort(order.begin(), order.end(), [&](std::size_t p, std::size_t q) {
          return std::abs(attr[p]) > std::abs(attr[q]);
        });
        std::size_t keep = std::min<std::size_t>(order.size(), 16);
        BarChart bars{
            .id = id,
            .title = what + (keep < order.size() ? ": the " + std::to_string(keep) +
                                                       " largest of " + std::to_string(order.size())
                                                 : std::string()),
            .value_label = "attribution (blue: towards the class)",
            .diverging = true};
        for (std::size_t k = 0; k < keep; ++k) {
          std::size_t i = order[k];
          std::string name = i < features.size() ? features[i] : "x" + std::to_string(i);
          if (i < vals.size()) name += " = " + short_number(vals[i]);
          bars.bars.push_back({name, attr[i]});
        }
        s += render_bar_chart(bars);
        // Features named like pixels (one prefix, then 0 .. k*k-1): also as a k x k image.
        if (std::int64_t k = pixel_grid_side(features); k > 0 && vals.size() == attr.size())
          s += image_pair(
              id + "-grid",
              "the " + std::to_string(k) + " x " + std::to_string(k) + " features as an image", 1,
              k, k, attr, vals);
      }
      s += "</div>";
    }
    s += "</div>";
  }
  return s + "</section>";
}

}  // namespace kiln::report::internal
