// The training report (kiln/report/report.hpp): run folders written by hand (and one by a
// real recorded training run) rendered to HTML; the numbers the charts carry are parsed
// back and compared bit for bit with the JSON Lines files.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kiln/core/error.hpp"
#include "kiln/report/report.hpp"
#include "kiln/report/spec_run.hpp"
#include "kiln/train/spec.hpp"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

/// This process's scratch folder, removed when the tests end.
struct ScratchRoot {
  fs::path path = fs::temp_directory_path() / ("kiln_report_test_" + std::to_string(::getpid()));
  ~ScratchRoot() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
} scratch;

fs::path fresh_dir(const std::string& name) {
  fs::path p = scratch.path / name;
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

void write(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary);
  out << text;
}

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string lines(const std::vector<json>& v) {
  std::string s;
  for (const auto& j : v) s += j.dump() + "\n";
  return s;
}

/// Per-layer statistics of one tensor (the fields layers.jsonl has).
json tensor(const std::string& layer, const std::string& kind, const std::string& name, double mean,
            double norm, double zero_fraction, const std::string& op = "") {
  json t = {{"layer", layer},
            {"kind", kind},
            {"tensor", name},
            {"shape", {32, 16}},
            {"mean", mean},
            {"std", std::abs(mean) * 1.5 + 0.01},
            {"min", mean - 1},
            {"max", mean + 1},
            {"norm", norm},
            {"zero_fraction", zero_fraction},
            {"histogram", {{"lo", mean - 1}, {"hi", mean + 1}, {"counts", {1, 5, 9, 5, 1}}}}};
  if (!op.empty()) t["op"] = op;
  return t;
}

struct LayerShape {
  // Per sample i of n: gradient norm, weight norm, update ratio, relu zero fraction.
  std::function<double(int)> grad_norm = [](int i) { return 0.5 / (1 + 0.1 * i); };
  std::function<double(int)> weight_norm = [](int i) { return 3.0 + 0.01 * i; };
  std::function<double(int)> update_ratio = [](int i) { return 1e-3 / (1 + 0.05 * i); };
  std::function<double(int)> zero_fraction = [](int i) { return 0.4 + 0.001 * i; };
  std::string activation_op = "relu";
};

/// A run folder with every file: 3 epochs of 4 steps, awkward doubles throughout.
fs::path make_run(const std::string& name, const LayerShape& shape = {},
                  json config = json::object(), double lr = 0.01) {
  fs::path dir = fresh_dir(name);
  if (config.empty())
    config = {{"model", {{"hidden", 16}, {"activation", "relu"}}},
              {"training", {{"lr", lr}, {"seed", 1}, {"epochs", 3}}},
              {"layers", {1, 2, 3}}};
  json run = {
      {"format", "kiln.run/1"},
      {"name", name},
      {"status", "completed"},
      {"started", "2026-11-30T09:15:00Z"},
      {"finished", "2026-11-30T09:16:00Z"},
      {"error", nullptr},
      {"config", config},
      {"environment",
       {{"kiln_version", "0.1.0"},
        {"backend", "onednn"},
        {"threads", 2},
        {"seed", 1},
        {"data_files", {{{"path", "data/iris.csv"}, {"bytes", 4551}, {"sha256", "ab12"}}}}}},
      {"sample_every", 2},
      {"final", {{"test_accuracy", 0.9666666666666667}, {"test_loss", 0.1 + 0.2}}}};
  write(dir / "run.json", run.dump(2));

  std::vector<json> metrics;
  std::int64_t step = 0;
  for (int epoch = 0; epoch < 3; ++epoch) {
    for (int k = 0; k < 4; ++k, ++step) {
      double loss = 1.0 / (3.0 + static_cast<double>(step)) + 1e-17 * static_cast<double>(step);
      json line = {{"kind", "step"}, {"step", step},
                   {"epoch", epoch}, {"time", 0.1 * static_cast<double>(step)},
                   {"loss", loss},   {"lr", lr / (1 + step)}};
      if (step == 5) line["loss"] = 2.5e-300;  // tiny and still exact
      metrics.push_back(line);
    }
    json e = {{"kind", "epoch"},
              {"step", step},
              {"epoch", epoch},
              {"time", 0.4 * (epoch + 1)},
              {"loss", 1.0 / 3.0 / (epoch + 1)},
              {"accuracy", 0.7 + 0.1 * epoch},
              {"val_loss", 0.35 / (epoch + 1) + 1e-9},
              {"val_accuracy", epoch == 1 ? json(nullptr) : json(2.0 / 3.0 + epoch * 0.01)},
              {"lr", lr / (1 + step)}};
    metrics.push_back(e);
  }
  write(dir / "metrics.jsonl", lines(metrics));

  std::vector<json> layers;
  for (int i = 0; i < 6; ++i) {
    json w = tensor("fc1", "weight", "fc1/weight", 0.01 * i, shape.weight_norm(i), 0.0);
    w["update_ratio"] = shape.update_ratio(i);
    json b = tensor("fc1", "weight", "fc1/bias", 0.0, i == 0 ? 0.0 : 0.1, i == 0 ? 1.0 : 0.0);
    b["update_ratio"] = nullptr;
    json w2 = tensor("fc2", "weight", "fc2/weight", -0.02 * i, 2.0 + 0.1 * i, 0.0);
    w2["update_ratio"] = 2e-3 / (1 + i);
    layers.push_back({{"step", 2 * i},
                      {"epoch", i / 2},
                      {"layers",
                       {tensor("fc1", "activation", "fc1", 0.4 + 1.0 / (7 + i), 12.0 + i,
                               shape.zero_fraction(i), shape.activation_op),
                        tensor("fc1", "gradient", "fc1/weight", 1e-4, shape.grad_norm(i), 0.0), w,
                        tensor("fc1", "gradient", "fc1/bias", 1e-5, 0.1 * shape.grad_norm(i), 0.0),
                        b, tensor("fc2", "activation", "fc2", 0.1 * i, 5.0, 0.0, "matmul"),
                        tensor("fc2", "gradient", "fc2/weight", 1e-4, 0.3 / (1 + i), 0.0), w2}}});
  }
  write(dir / "layers.jsonl", lines(layers));

  json graph = {{"layers",
                 {{{"name", "features"},
                   {"type", "Input"},
                   {"output_shape", {-1, 4}},
                   {"dtype", "f32"},
                   {"trainable", 0},
                   {"non_trainable", 0},
                   {"inputs", json::array()},
                   {"ops", json::array()},
                   {"kernels", json::array()}},
                  {{"name", "fc1"},
                   {"type", "Dense"},
                   {"output_shape", {-1, 16}},
                   {"dtype", "f32"},
                   {"trainable", 80},
                   {"non_trainable", 0},
                   {"inputs", {"features"}},
                   {"ops", {"matmul+bias+relu"}},
                   {"kernels", {"onednn_matmul"}}},
                  {{"name", "fc2"},
                   {"type", "Dense"},
                   {"output_shape", {-1, 3}},
                   {"dtype", "f32"},
                   {"trainable", 51},
                   {"non_trainable", 0},
                   {"inputs", {"fc1"}},
                   {"ops", {"matmul+bias"}},
                   {"kernels", {"onednn_matmul"}}}}},
                {"outputs", {"fc2"}},
                {"trainable", 131},
                {"non_trainable", 0}};
  write(dir / "graph.json", graph.dump());
  json data = {{"file", "data/iris.csv"},
               {"rows", 150},
               {"train_rows", 120},
               {"test_rows", 30},
               {"target", "species"},
               {"task", "classification"},
               {"columns",
                {{{"name", "sepal_length"},
                  {"kind", "numeric"},
                  {"min", 4.3},
                  {"max", 7.9},
                  {"mean", 5.843333333333334},
                  {"std", 0.825},
                  {"missing", 0}},
                 {{"name", "color"},
                  {"kind", "categorical"},
                  {"categories", {"red", "blue"}},
                  {"counts", {70, 80}}}}},
               {"classes",
                {{{"name", "setosa"}, {"count", 50}},
                 {{"name", "versicolor"}, {"count", 50}},
                 {{"name", "virginica"}, {"count", 50}}}}};
  write(dir / "data.json", data.dump());
  json eval = {
      {"split", "test"},
      {"rows", 30},
      {"metrics", {{"accuracy", 0.9666666666666667}}},
      {"labels", {"setosa", "versicolor", "virginica"}},
      {"confusion", {{10, 0, 0}, {0, 9, 1}, {0, 0, 10}}},
      {"per_class",
       {{{"label", "setosa"}, {"precision", 1.0}, {"recall", 1.0}, {"f1", 1.0}, {"support", 10}},
        {{"label", "versicolor"},
         {"precision", 1.0},
         {"recall", 0.9},
         {"f1", 0.9473684210526316},
         {"support", 10}},
        {{"label", "virginica"},
         {"precision", 0.9090909090909091},
         {"recall", 1.0},
         {"f1", 0.9523809523809523},
         {"support", 10}}}}};
  write(dir / "evaluation.json", eval.dump());
  json expl = {{"permutation_importance",
                {{"metric", "accuracy"},
                 {"repeats", 5},
                 {"rows", 30},
                 {"baseline", 0.97},
                 {"features",
                  {{{"name", "petal_length"}, {"importance", 0.41}, {"std", 0.05}},
                   {{"name", "sepal_width"}, {"importance", -0.01}, {"std", 0.02}}}}}},
               {"attributions",
                {{{"row", 0},
                  {"method", "integrated_gradients"},
                  {"class", "setosa"},
                  {"class_index", 0},
                  {"output", 4.2},
                  {"baseline_output", 0.3},
                  {"steps", 64},
                  {"input", "features"},
                  {"shape", {2}},
                  {"features", {"petal_length", "sepal_width"}},
                  {"values", {1.4, 3.5}},
                  {"attributions", {3.0, 0.9}}},
                 {{"row", 1},
                  {"method", "integrated_gradients"},
                  {"class", "7"},
                  {"class_index", 7},
                  {"output", 2.0},
                  {"baseline_output", 0.5},
                  {"steps", 64},
                  {"input", "pixels"},
                  {"shape", {1, 2, 2}},
                  {"values", {0.0, 1.0, 0.5, 0.25}},
                  {"attributions", {0.5, 1.0, -0.25, 0.25}}}}}};
  // 16 features named like pixels: also drawn as a 4 x 4 image.
  json pixels = {
      {"row", 2},      {"method", "integrated_gradients"}, {"class", "1"}, {"class_index", 1},
      {"output", 1.5}, {"baseline_output", 0.25},          {"steps", 64},  {"input", "pixels"},
      {"shape", {16}}};
  for (int i = 0; i < 16; ++i) {
    pixels["features"].push_back("p" + std::to_string(i));
    pixels["values"].push_back(i / 15.0);
    pixels["attributions"].push_back((i % 5 - 2) / 7.0);
  }
  expl["attributions"].push_back(pixels);
  write(dir / "explanations.json", expl.dump());
  return dir;
}

/// An element's attributes (name -> value, entities undone for &quot; &amp; &lt; &gt; &#39;).
using Attributes = std::map<std::string, std::string>;
std::string unescape(std::string s) {
  const std::pair<const char*, const char*> entities[] = {
      {"&quot;", "\""}, {"&lt;", "<"}, {"&gt;", ">"}, {"&#39;", "'"}, {"&amp;", "&"}};
  for (const auto& [from, to] : entities)
    for (std::size_t p = 0; (p = s.find(from, p)) != std::string::npos; p += std::strlen(to))
      s.replace(p, std::strlen(from), to);
  return s;
}
std::vector<Attributes> elements(const std::string& html, const std::string& tag) {
  std::vector<Attributes> out;
  std::regex element("<" + tag + "\\b([^>]*)>");
  std::regex attribute("([a-zA-Z][\\w-]*)=\"([^\"]*)\"");
  for (auto it = std::sregex_iterator(html.begin(), html.end(), element);
       it != std::sregex_iterator(); ++it) {
    Attributes a;
    std::string inner = (*it)[1];
    for (auto at = std::sregex_iterator(inner.begin(), inner.end(), attribute);
         at != std::sregex_iterator(); ++at)
      a[(*at)[1]] = unescape((*at)[2]);
    out.push_back(std::move(a));
  }
  return out;
}

/// The <path data-series> elements of each chart, by chart id (charts in order).
std::map<std::string, std::vector<Attributes>> chart_paths(const std::string& html) {
  std::map<std::string, std::vector<Attributes>> out;
  std::size_t pos = 0;
  while ((pos = html.find("<svg class=\"chart", pos)) != std::string::npos) {
    std::size_t end = html.find("</svg>", pos);
    std::string svg = html.substr(pos, end - pos);
    auto svgs = elements(svg, "svg");
    std::string id = svgs.at(0).at("data-chart");
    for (auto& p : elements(svg, "path"))
      if (p.count("data-series")) out[id].push_back(p);
    if (!out.count(id)) out[id] = {};
    pos = end;
  }
  return out;
}

std::vector<double> numbers(const std::string& text) {
  std::vector<double> v;
  std::istringstream in(text);
  for (std::string t; in >> t;) v.push_back(std::strtod(t.c_str(), nullptr));
  return v;
}

bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }

std::vector<json> read_lines(const fs::path& p) {
  std::vector<json> v;
  std::ifstream in(p);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) v.push_back(json::parse(line));
  return v;
}

/// Every metric chart path equals the JSONL values it names, bit for bit; returns how many
/// (source, key) pairs were checked.
std::set<std::pair<std::string, std::string>> check_metric_charts(const std::string& html,
                                                                  const fs::path& dir,
                                                                  const std::string& run_name) {
  auto metrics = read_lines(dir / "metrics.jsonl");
  std::set<std::pair<std::string, std::string>> checked;
  for (const auto& [id, paths] : chart_paths(html)) {
    if (id.rfind("metric-", 0) != 0 && id != "lr") continue;
    bool by_epoch = id.size() > 6 && id.substr(id.size() - 6) == "-epoch";
    for (const auto& p : paths) {
      if (p.at("data-run") != run_name) continue;
      std::string source = p.at("data-source"), key = p.at("data-series");
      std::vector<double> xs, ys;
      for (const auto& line : metrics) {
        if (line["kind"] != source || !line.contains(key) || line[key].is_null()) continue;
        xs.push_back(line[by_epoch ? "epoch" : "step"].get<double>());
        ys.push_back(line[key].get<double>());
      }
      auto px = numbers(p.at("data-x")), py = numbers(p.at("data-y"));
      EXPECT_FALSE(xs.empty()) << id << " " << key;
      EXPECT_EQ(px.size(), xs.size()) << id << " " << key;
      EXPECT_EQ(py.size(), ys.size()) << id << " " << key;
      for (std::size_t i = 0; i < std::min(px.size(), xs.size()); ++i) {
        EXPECT_TRUE(same_bits(px[i], xs[i])) << id << " " << key << " x[" << i << "]";
        EXPECT_TRUE(same_bits(py[i], ys[i]))
            << id << " " << key << " y[" << i << "] " << py[i] << " vs " << ys[i];
      }
      checked.insert({source, key});
    }
  }
  return checked;
}

TEST(Report, ChartNumbersEqualTheJsonLinesBitForBit) {
  fs::path dir = make_run("numbers");
  std::string html = kiln::report::render_report({dir.string()});
  auto checked = check_metric_charts(html, dir, "numbers");
  // Every logged key of every line kind is charted.
  std::set<std::pair<std::string, std::string>> logged;
  for (const auto& line : read_lines(dir / "metrics.jsonl"))
    for (const auto& [k, v] : line.items())
      if (k != "kind" && k != "step" && k != "epoch" && k != "time")
        logged.insert({line["kind"].get<std::string>(), k});
  for (const auto& l : logged) {
    if (l.first == "epoch" && l.second == "lr") continue;  // charted from the step lines
    EXPECT_TRUE(checked.count(l)) << l.first << " " << l.second;
  }
  // Per-layer statistics: every layer chart series equals layers.jsonl.
  auto layers = read_lines(dir / "layers.jsonl");
  auto paths = chart_paths(html);
  int compared = 0;
  for (const auto& [id, ps] : paths) {
    if (id.rfind("layer-", 0) != 0) continue;
    for (const auto& p : ps) {
      std::string tensor = p.at("data-tensor"), stat = p.at("data-stat");
      std::vector<double> xs, ys;
      for (const auto& line : layers)
        for (const auto& t : line["layers"]) {
          bool kind_ok = id.ends_with("-activation")      ? t["kind"] == "activation"
                         : id.ends_with("-gradient-norm") ? t["kind"] == "gradient"
                                                          : t["kind"] == "weight";
          if (!kind_ok || t["tensor"] != tensor || t[stat].is_null()) continue;
          xs.push_back(line["step"].get<double>());
          ys.push_back(t[stat].get<double>());
        }
      auto px = numbers(p.at("data-x")), py = numbers(p.at("data-y"));
      if (id.ends_with("-gradient-norm") || id.ends_with("-update-ratio")) {
        // Log axes leave out values <= 0.
        std::vector<double> kx, ky;
        for (std::size_t i = 0; i < ys.size(); ++i)
          if (ys[i] > 0) kx.push_back(xs[i]), ky.push_back(ys[i]);
        xs = kx, ys = ky;
      }
      ASSERT_EQ(px.size(), xs.size()) << id << " " << tensor << " " << stat;
      for (std::size_t i = 0; i < xs.size(); ++i) {
        EXPECT_TRUE(same_bits(px[i], xs[i])) << id;
        EXPECT_TRUE(same_bits(py[i], ys[i])) << id << " " << stat << " " << py[i] << " " << ys[i];
        ++compared;
      }
    }
  }
  EXPECT_GT(compared, 60);
  EXPECT_TRUE(paths.count("layer-fc1-activation-histogram"));
}

/// "" when every element is closed in order (void elements and <x/> aside); else the first
/// mismatch.
std::string unbalanced_tags(const std::string& html) {
  const std::set<std::string> void_elements = {"meta", "br", "input", "img", "hr", "link"};
  std::string body = html;
  for (const char* raw : {"script", "style"}) {  // their text is not markup
    std::regex content("<" + std::string(raw) + ">[\\s\\S]*?</" + raw + ">");
    body = std::regex_replace(body, content, "");
  }
  std::regex tag("<(/?)([a-zA-Z][a-zA-Z0-9-]*)[^>]*?(/?)>");
  std::vector<std::string> stack;
  for (auto it = std::sregex_iterator(body.begin(), body.end(), tag); it != std::sregex_iterator();
       ++it) {
    std::string name = (*it)[2];
    if (void_elements.count(name) || (*it)[3] == "/") continue;
    if ((*it)[1] == "") {
      stack.push_back(name);
    } else if (stack.empty() || stack.back() != name) {
      return "</" + name + "> closes <" + (stack.empty() ? std::string("nothing") : stack.back()) +
             ">";
    } else {
      stack.pop_back();
    }
  }
  return stack.empty() ? "" : "<" + stack.back() + "> is not closed";
}

TEST(Report, IsSelfContained) {
  fs::path dir = make_run("contained");
  std::string html = kiln::report::render_report({dir.string()});
  std::string lower = html;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (const char* bad : {"http://", "https://", "<script src", "<link", "@import", "url(", "<img",
                          "<iframe", "src=\"", "//cdn"})
    EXPECT_EQ(lower.find(bad), std::string::npos) << bad;
  EXPECT_NE(html.find("<style>"), std::string::npos);
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  // Well formed: every element closed in order, in the report, a comparison and the index.
  EXPECT_EQ(unbalanced_tags(html), "");
  EXPECT_EQ(
      unbalanced_tags(kiln::report::render_report({dir.string(), make_run("other").string()})), "");
  EXPECT_EQ(unbalanced_tags(kiln::report::render_index(dir.parent_path().string())), "");
  EXPECT_NE(unbalanced_tags("<div><span></div></span>"), "");  // the check can fail
}

TEST(Report, EverySectionIsThereWhenItsFileIs) {
  fs::path dir = make_run("sections");
  std::string html = kiln::report::render_report({dir.string()});
  for (const char* id : {"curves", "evaluation", "layers", "graph", "data", "explanations", "run"})
    EXPECT_NE(html.find("<section id=\"" + std::string(id) + "\" data-present=\"1\""),
              std::string::npos)
        << id;
  auto charts = chart_paths(html);
  for (const char* id :
       {"metric-loss-step", "metric-loss-epoch", "metric-accuracy-epoch", "lr",
        "layer-fc1-activation", "layer-fc1-gradient-norm", "layer-fc1-weight-norm",
        "layer-fc1-update-ratio", "confusion", "model-graph", "class-balance",
        "permutation-importance", "attribution-0", "attribution-1", "attribution-1-input"})
    EXPECT_TRUE(charts.count(id)) << id;
  // The confusion matrix's cells and the graph's boxes carry their values.
  EXPECT_NE(html.find("data-row=\"1\" data-col=\"2\" data-value=\"1\""), std::string::npos);
  EXPECT_NE(html.find("<g data-layer=\"fc2\" data-inputs=\"fc1\">"), std::string::npos);
  EXPECT_NE(html.find("data-label=\"petal_length\" data-value=\"0.41\" data-error=\"0.05\""),
            std::string::npos);
  EXPECT_NE(html.find("data-config-key=\"training.lr\""), std::string::npos);
  // Pixel-like features: the 4 x 4 attribution map holds the attributions in order.
  ASSERT_TRUE(charts.count("attribution-2-grid"));
  ASSERT_TRUE(charts.count("attribution-2-grid-input"));
  {
    std::size_t at = html.find("data-chart=\"attribution-2-grid\"");
    std::string svg = html.substr(at, html.find("</svg>", at) - at);
    std::vector<Attributes> cells;
    for (auto& r : elements(svg, "rect"))
      if (r.count("data-value")) cells.push_back(r);
    ASSERT_EQ(cells.size(), 16u);
    for (std::size_t i = 0; i < 16; ++i) {
      EXPECT_EQ(cells[i].at("data-row"), std::to_string(i / 4));
      EXPECT_EQ(cells[i].at("data-col"), std::to_string(i % 4));
      EXPECT_TRUE(same_bits(std::strtod(cells[i].at("data-value").c_str(), nullptr),
                            (static_cast<int>(i) % 5 - 2) / 7.0));
    }
  }
  // The per-class table: recall of versicolor exactly.
  EXPECT_NE(html.find("<tr data-class=\"versicolor\">"), std::string::npos);

  // Without the optional files those sections say "not recorded".
  for (const char* f :
       {"graph.json", "data.json", "evaluation.json", "explanations.json", "layers.jsonl"})
    fs::remove(dir / f);
  html = kiln::report::render_report({dir.string()});
  for (const char* id : {"evaluation", "layers", "graph", "data", "explanations"})
    EXPECT_NE(
        html.find("<section id=\"" + std::string(id) + "\" class=\"absent\" data-present=\"0\""),
        std::string::npos)
        << id;
  EXPECT_NE(html.find("not recorded (no graph.json"), std::string::npos);
  EXPECT_NE(html.find("<section id=\"curves\" data-present=\"1\""), std::string::npos);
  EXPECT_FALSE(chart_paths(html).count("confusion"));
}

std::vector<Attributes> warnings(const std::string& html) {
  std::vector<Attributes> out;
  for (auto& d : elements(html, "div"))
    if (d.count("data-warning")) out.push_back(d);
  return out;
}

TEST(Report, HealthyRunFiresNoWarning) {
  fs::path dir = make_run("healthy");
  std::string html = kiln::report::render_report({dir.string()});
  auto w = warnings(html);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0].at("data-warning"), "none");
}

TEST(Report, VanishingGradientsAreNamed) {
  LayerShape s;
  // fc1/weight: late gradient norms 1e-9 of a weight norm near 3 (ratio ~3e-10 < 1e-7).
  s.grad_norm = [](int i) { return i < 3 ? 0.5 : 1e-9; };
  fs::path dir = make_run("vanishing", s);
  auto w = warnings(kiln::report::render_report({dir.string()}));
  ASSERT_FALSE(w.empty());
  std::set<std::string> rules;
  for (auto& x : w) rules.insert(x.at("data-warning") + ":" + x.at("data-tensor"));
  EXPECT_TRUE(rules.count("vanishing-gradient:fc1/weight"));
  EXPECT_TRUE(rules.count("vanishing-gradient:fc1/bias"));  // 1e-10 of its norm 0.1
  EXPECT_FALSE(rules.count("vanishing-gradient:fc2/weight"));
  for (auto& x : w) EXPECT_NE(x.at("data-warning"), "dead-relu");

  // Tiny updates alone (healthy gradient norms) fire the same rule.
  LayerShape u;
  u.update_ratio = [](int) { return 1e-8; };
  auto w2 = warnings(kiln::report::render_report({make_run("tiny-updates", u).string()}));
  ASSERT_EQ(w2.size(), 1u);
  EXPECT_EQ(w2[0].at("data-warning"), "vanishing-gradient");
  EXPECT_EQ(w2[0].at("data-tensor"), "fc1/weight");

  // Just above the thresholds: nothing fires.
  LayerShape near;
  near.grad_norm = [](int) { return 3.1 * 2e-7; };
  near.update_ratio = [](int) { return 2e-6; };
  auto w3 = warnings(kiln::report::render_report({make_run("near", near).string()}));
  ASSERT_EQ(w3.size(), 1u);
  EXPECT_EQ(w3[0].at("data-warning"), "none");
}

TEST(Report, ExplodingGradientsAreNamed) {
  LayerShape grow;  // 1, 3, 9, ... 243: the last third (81, 243) is over 10x the first (1, 3)
  grow.grad_norm = [](int i) { return std::pow(3.0, i); };
  auto w = warnings(kiln::report::render_report({make_run("growing", grow).string()}));
  std::set<std::string> rules;
  for (auto& x : w) rules.insert(x.at("data-warning") + ":" + x.at("data-tensor"));
  EXPECT_TRUE(rules.count("exploding-gradient:fc1/weight"));
  EXPECT_TRUE(rules.count("exploding-gradient:fc1/bias"));
  EXPECT_FALSE(rules.count("exploding-gradient:fc2/weight"));

  LayerShape huge;  // one sample above 1e3
  huge.grad_norm = [](int i) { return i == 4 ? 2e3 : 0.5; };
  auto w2 = warnings(kiln::report::render_report({make_run("huge", huge).string()}));
  ASSERT_EQ(w2.size(), 1u);
  EXPECT_EQ(w2[0].at("data-warning"), "exploding-gradient");
  EXPECT_EQ(w2[0].at("data-tensor"), "fc1/weight");
  EXPECT_EQ(w2[0].at("data-layer"), "fc1");
}

TEST(Report, DeadReluIsNamedOnlyForReluLayers) {
  LayerShape dead;
  dead.zero_fraction = [](int i) { return i < 5 ? 0.5 : 0.95; };
  std::string html = kiln::report::render_report({make_run("dead", dead).string()});
  auto w = warnings(html);
  ASSERT_EQ(w.size(), 1u);
  // The header says so too, and the layer is marked.
  EXPECT_NE(html.find("data-warning-summary=\"1\">\u26a0 1 rule of thumb fired in fc1"),
            std::string::npos);
  EXPECT_NE(html.find("<div class=\"layer warned\" data-layer=\"fc1\">"), std::string::npos);
  EXPECT_NE(html.find("<div class=\"layer\" data-layer=\"fc2\">"), std::string::npos);
  EXPECT_EQ(w[0].at("data-warning"), "dead-relu");
  EXPECT_EQ(w[0].at("data-layer"), "fc1");

  dead.activation_op = "sigmoid";  // zeros from a non-ReLU op are not dead ReLUs
  auto w2 = warnings(kiln::report::render_report({make_run("not-relu", dead).string()}));
  ASSERT_EQ(w2.size(), 1u);
  EXPECT_EQ(w2[0].at("data-warning"), "none");
}

TEST(Report, ComparisonOverlaysRunsAndListsExactlyTheDifferingConfig) {
  json a = {{"model", {{"hidden", 16}, {"activation", "relu"}}},
            {"training", {{"lr", 0.01}, {"seed", 1}, {"optimizer", {{"name", "adam"}}}}},
            {"layers", {1, 2, 3}}};
  json b = a;
  b["model"]["hidden"] = 32;
  b["training"]["optimizer"]["name"] = "sgd";
  b["extra"] = true;        // only in b
  b["layers"] = {1, 2, 4};  // an array differs as a whole
  fs::path da = make_run("run-a", {}, a, 0.01), db = make_run("run-b", {}, b, 0.02);
  std::string html = kiln::report::render_report({da.string(), db.string()});

  std::set<std::string> keys;
  std::size_t config = html.find("<section id=\"config\"");
  std::string section = html.substr(config, html.find("</section>", config) - config);
  for (auto& tr : elements(section, "tr"))
    if (tr.count("data-config-key")) keys.insert(tr.at("data-config-key"));
  EXPECT_EQ(keys,
            (std::set<std::string>{"extra", "layers", "model.hidden", "training.optimizer.name"}));

  // Curves: one series per run, each equal to its own JSONL.
  auto charts = chart_paths(html);
  std::set<std::string> runs_in_loss;
  for (auto& p : charts.at("metric-loss-step")) runs_in_loss.insert(p.at("data-run"));
  EXPECT_EQ(runs_in_loss, (std::set<std::string>{"run-a", "run-b"}));
  EXPECT_FALSE(check_metric_charts(html, da, "run-a").empty());
  EXPECT_FALSE(check_metric_charts(html, db, "run-b").empty());
  // Colours differ per run.
  std::set<std::string> colours;
  for (auto& p : charts.at("metric-loss-step")) colours.insert(p.at("stroke"));
  EXPECT_EQ(colours.size(), 2u);

  // Final metrics: the last epoch line and run.json's final values, exactly.
  auto last = read_lines(db / "metrics.jsonl").back();
  bool saw_last = false, saw_final = false;
  for (auto& td : elements(html, "td")) {
    if (!td.count("data-key")) continue;
    if (td.at("data-source") == "epoch" && td.at("data-key") == "val_loss") {
      double v = std::strtod(td.at("data-value").c_str(), nullptr);
      if (same_bits(v, last["val_loss"].get<double>())) saw_last = true;
    }
    if (td.at("data-source") == "final" && td.at("data-key") == "test_loss") {
      EXPECT_TRUE(same_bits(std::strtod(td.at("data-value").c_str(), nullptr), 0.1 + 0.2));
      saw_final = true;
    }
  }
  EXPECT_TRUE(saw_last);
  EXPECT_TRUE(saw_final);

  // Same configuration: no rows, a sentence.
  std::string same = kiln::report::render_report({da.string(), make_run("run-c", {}, a).string()});
  EXPECT_NE(same.find("data-config-differences=\"0\""), std::string::npos);
}

TEST(Report, TruncatedLastLineIsSkipped) {
  fs::path dir = make_run("truncated");
  std::string full = kiln::report::render_report({dir.string()});
  {
    std::ofstream out(dir / "metrics.jsonl", std::ios::app);
    out << R"({"kind": "step", "step": 12, "epoch": 3, "loss": 0.12)";  // no end
    std::ofstream lay(dir / "layers.jsonl", std::ios::app);
    lay << R"({"step": 12, "epoch": 3, "layers": [{"layer": "fc1", "kind)";
  }
  std::string html;
  ASSERT_NO_THROW(html = kiln::report::render_report({dir.string()}));
  EXPECT_EQ(chart_paths(html), chart_paths(full));
}

TEST(Report, BadMiddleLineIsAFormatErrorNamingFileAndLine) {
  fs::path dir = make_run("bad-line");
  std::string text = read(dir / "metrics.jsonl");
  std::size_t second = text.find('\n') + 1, third = text.find('\n', second) + 1;
  text.replace(second, third - second, "{\"kind\": \"step\", oops}\n");
  write(dir / "metrics.jsonl", text);
  try {
    kiln::report::render_report({dir.string()});
    FAIL() << "no error";
  } catch (const kiln::FormatError& e) {
    EXPECT_NE(std::string(e.what()).find((dir / "metrics.jsonl").string() + ":2:"),
              std::string::npos)
        << e.what();
  }
  // A line that parses but lacks "step" is named too.
  fs::path dir2 = make_run("bad-layers");
  std::string layers = read(dir2 / "layers.jsonl");
  write(dir2 / "layers.jsonl", "{\"epoch\": 0, \"layers\": []}\n" + layers);
  try {
    kiln::report::render_report({dir2.string()});
    FAIL() << "no error";
  } catch (const kiln::FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("layers.jsonl:1:"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("\"step\""), std::string::npos) << e.what();
  }
  // A broken run.json.
  fs::path dir3 = make_run("bad-run-json");
  write(dir3 / "run.json", "{\"name\": ");
  EXPECT_THROW(kiln::report::render_report({dir3.string()}), kiln::FormatError);
}

TEST(Report, MissingFolderIsAnIoError) {
  fs::path dir = fresh_dir("missing") / "nope";
  try {
    kiln::report::render_report({dir.string()});
    FAIL() << "no error";
  } catch (const kiln::IoError& e) {
    EXPECT_NE(std::string(e.what()).find(dir.string()), std::string::npos);
  }
  fs::path empty = fresh_dir("no-run-json");
  EXPECT_THROW(kiln::report::render_report({empty.string()}), kiln::IoError);
  EXPECT_THROW(kiln::report::list_runs(dir.string()), kiln::IoError);
  EXPECT_THROW(kiln::report::render_report({}), kiln::ValueError);
}

TEST(Report, WriteReportWritesTheRenderedPage) {
  fs::path dir = make_run("written");
  std::string path = kiln::report::write_report(dir.string());
  EXPECT_EQ(fs::path(path), dir / "report.html");
  EXPECT_EQ(read(path), kiln::report::render_report({dir.string()}));
  // No temp file is left beside it.
  int files = 0;
  for (auto& e : fs::directory_iterator(dir))
    files += e.path().filename().string().find(".tmp.") != std::string::npos;
  EXPECT_EQ(files, 0);
}

TEST(Report, LivePagePollsItsUrlAndVersionFollowsTheFiles) {
  fs::path dir = make_run("live");
  kiln::report::ReportOptions o;
  o.live_url = "/run/live";
  o.live_poll_ms = 500;
  std::string html = kiln::report::render_report({dir.string()}, o);
  EXPECT_NE(html.find("data-live-url=\"/run/live\" data-live-poll-ms=\"500\""), std::string::npos);
  auto version = [](const std::string& h) { return elements(h, "main").at(0).at("data-version"); };
  std::string v1 = version(html);
  EXPECT_EQ(version(kiln::report::render_report({dir.string()})), v1);
  {
    std::ofstream out(dir / "metrics.jsonl", std::ios::app);
    out << R"({"kind": "step", "step": 12, "epoch": 3, "loss": 0.125})"
        << "\n";
  }
  std::string html2 = kiln::report::render_report({dir.string()}, o);
  EXPECT_NE(version(html2), v1);
  EXPECT_NE(html2.find("data-x=\"0 1 2 3 4 5 6 7 8 9 10 11 12\""), std::string::npos);
  // A static page has no polling URL.
  EXPECT_EQ(kiln::report::render_report({dir.string()}).find("data-live-url="), std::string::npos);
}

TEST(Report, ListRunsAndIndex) {
  fs::path root = fresh_dir("board");
  fs::path older = make_run("older"), newer = make_run("newer");
  fs::rename(older, root / "older");
  fs::rename(newer, root / "newer");
  // newer started later.
  json run = json::parse(read(root / "newer" / "run.json"));
  run["started"] = "2026-11-30T10:00:00Z";
  run["status"] = "running";
  write(root / "newer" / "run.json", run.dump());
  fs::create_directories(root / "not-a-run");

  auto runs = kiln::report::list_runs(root.string());
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0].name, "newer");
  EXPECT_EQ(runs[0].status, "running");
  EXPECT_EQ(runs[1].name, "older");
  EXPECT_EQ(runs[1].epochs, 3);
  EXPECT_EQ(runs[1].steps, 12);
  EXPECT_FALSE(runs[1].version.empty());
  // The latest epoch line's values, exactly (a null value is NaN).
  auto last_epoch = read_lines(root / "older" / "metrics.jsonl").back();
  EXPECT_TRUE(same_bits(runs[1].latest.at("val_loss"), last_epoch["val_loss"].get<double>()));
  EXPECT_TRUE(same_bits(runs[1].latest.at("accuracy"), last_epoch["accuracy"].get<double>()));
  // A run folder itself lists as one run.
  EXPECT_EQ(kiln::report::list_runs((root / "older").string()).size(), 1u);

  std::string index = kiln::report::render_index(root.string());
  EXPECT_NE(index.find("<a href=\"run/newer\">newer</a>"), std::string::npos);
  EXPECT_NE(index.find("<a href=\"run/older\">older</a>"), std::string::npos);
  EXPECT_LT(index.find("run/newer"), index.find("run/older"));
  EXPECT_NE(index.find("<form method=\"get\" action=\"compare\">"), std::string::npos);
  EXPECT_NE(index.find("name=\"run\" value=\"older\""), std::string::npos);
  EXPECT_EQ(index.find("not-a-run"), std::string::npos);
  EXPECT_NE(index.find("val_loss <b>"), std::string::npos);
}

TEST(Report, RealRecordedRunMatchesItsFilesAndIsHealthy) {
  // A real training run: the iris spec for a few epochs through train_and_record.
  fs::path dir = fresh_dir("iris-real");
  auto spec =
      kiln::train::ModelSpec::load(std::string(KILN_DATASETS_DIR) + "/../examples/specs/iris.json");
  kiln::train::SpecTrainOptions train_options;
  train_options.epochs = 8;
  train_options.progress = kiln::train::Progress::none;
  kiln::report::RecordedRunOptions options;
  options.record.dir = (dir / "run").string();
  options.record.sample_every = 5;
  auto run = kiln::report::train_and_record(spec, std::string(KILN_DATASETS_DIR) + "/iris.csv",
                                            train_options, options);
  ASSERT_EQ(run.report, (dir / "run" / "report.html").string());
  std::string html = read(run.report);
  auto checked =
      check_metric_charts(html, dir / "run", json::parse(read(dir / "run" / "run.json"))["name"]);
  EXPECT_TRUE(checked.count({"step", "loss"}));
  EXPECT_TRUE(checked.count({"epoch", "accuracy"}));  // (the iris spec has no validation)
  auto w = warnings(html);
  ASSERT_FALSE(w.empty());
  for (auto& x : w) EXPECT_EQ(x.at("data-warning"), "none") << x.at("data-layer");
  for (const char* id : {"curves", "evaluation", "layers", "graph", "data", "run"})
    EXPECT_NE(html.find("<section id=\"" + std::string(id) + "\" data-present=\"1\""),
              std::string::npos)
        << id;
}

}  // namespace

namespace {

TEST(Report, MinimalRunningAndFailedRuns) {
  // Only run.json: every other section says it was not recorded.
  fs::path dir = fresh_dir("minimal");
  write(dir / "run.json", R"({"format": "kiln.run/1", "name": "m", "status": "running",
                              "started": "2026-11-30T09:15:00Z", "config": {}, "final": {}})");
  std::string html = kiln::report::render_report({dir.string()});
  for (const char* id : {"curves", "evaluation", "layers", "graph", "data", "explanations"})
    EXPECT_NE(html.find("<section id=\"" + std::string(id) + "\" class=\"absent\""),
              std::string::npos)
        << id;
  EXPECT_NE(html.find("<span class=\"badge running\">running</span>"), std::string::npos);
  EXPECT_TRUE(chart_paths(html).empty());

  // An empty metrics file (a run that has just begun) and a failed run's error.
  write(dir / "metrics.jsonl", "");
  json run = json::parse(read(dir / "run.json"));
  run["status"] = "failed";
  run["error"] = "loss is NaN at step 3 <fc1>";
  write(dir / "run.json", run.dump());
  html = kiln::report::render_report({dir.string()});
  EXPECT_NE(html.find("<section id=\"curves\" data-present=\"1\""), std::string::npos);
  EXPECT_NE(html.find("<div class=\"error\">loss is NaN at step 3 &lt;fc1&gt;</div>"),
            std::string::npos);
  EXPECT_NE(html.find("<span class=\"badge failed\">failed</span>"), std::string::npos);

  // Unknown keys are ignored; names with markup are escaped everywhere.
  run["name"] = "<b>x</b>";
  run["future_key"] = {{"a", 1}};
  write(dir / "run.json", run.dump());
  write(dir / "metrics.jsonl",
        R"({"kind": "step", "step": 0, "epoch": 0, "loss": 1, "new": "text"})"
        "\n");
  html = kiln::report::render_report({dir.string()});
  EXPECT_EQ(html.find("<b>x</b>"), std::string::npos);
  EXPECT_NE(html.find("&lt;b&gt;x&lt;/b&gt;"), std::string::npos);
  EXPECT_NE(html.find("data-series=\"loss\""), std::string::npos);
}

TEST(Report, UnreadableRunIsListedNotFatal) {
  fs::path root = fresh_dir("board-bad");
  fs::rename(make_run("good"), root / "good");
  fs::create_directories(root / "broken");
  write(root / "broken" / "run.json", "{not json");
  auto runs = kiln::report::list_runs(root.string());
  ASSERT_EQ(runs.size(), 2u);
  std::map<std::string, std::string> status;
  for (const auto& r : runs) status[fs::path(r.dir).filename().string()] = r.status;
  EXPECT_EQ(status["broken"], "unreadable");
  EXPECT_EQ(status["good"], "completed");
  // Listing again after a change sees the change (the per-folder cache follows versions).
  {
    std::ofstream out(root / "good" / "metrics.jsonl", std::ios::app);
    out << R"({"kind": "epoch", "step": 20, "epoch": 3, "loss": 0.1})"
        << "\n";
  }
  for (const auto& r : kiln::report::list_runs(root.string()))
    if (r.name == "good") {
      EXPECT_EQ(r.epochs, 4);
      EXPECT_EQ(r.steps, 20);
    }
}

}  // namespace

namespace {

TEST(Report, OddlyTypedOptionalFilesStillRender) {
  // Readers ignore what they do not understand: values of unexpected types in the optional
  // documents leave gaps, never a crash or a non-kiln exception.
  fs::path dir = make_run("odd");
  write(dir / "graph.json", R"({"layers": [{"name": 5, "inputs": 5, "output_shape": "x",
      "ops": [1], "trainable": "many"}, 7, {"name": "b", "inputs": ["a", 3]}], "outputs": 1})");
  write(dir / "evaluation.json", R"({"confusion": [[1, "a"], [2], 3], "labels": "x",
      "per_class": [{"label": 3}, 4], "metrics": {"a": "b"}})");
  write(dir / "data.json", R"({"columns": [1, {"name": "c", "categories": 5, "counts": 1}],
      "classes": [{"name": 1}], "rows": "many"})");
  write(dir / "explanations.json", R"({"permutation_importance": {"features": [{"name": null},
      3]}, "attributions": [{"shape": ["a", "b", "c"], "attributions": [1, 2]},
      {"shape": [1, 2, 2], "attributions": [1, "x"]}, 5]})");
  std::string html;
  ASSERT_NO_THROW(html = kiln::report::render_report({dir.string()}));
  for (const char* id : {"evaluation", "graph", "data", "explanations"})
    EXPECT_NE(html.find("<section id=\"" + std::string(id) + "\" data-present=\"1\""),
              std::string::npos)
        << id;
  // A run.json that is not an object is a FormatError naming it.
  write(dir / "run.json", "[1, 2]");
  try {
    kiln::report::render_report({dir.string()});
    FAIL() << "no error";
  } catch (const kiln::FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("run.json"), std::string::npos) << e.what();
  }
}

}  // namespace
