// The report's per-layer statistics: small multiples per layer and the rules of thumb.
#include <algorithm>
#include <cmath>
#include <map>

#include "report/report_parts.hpp"
#include "report/svg.hpp"

namespace kiln::report::internal {
namespace {

// The rules of thumb; include/kiln/report/report.hpp lists them for users.
constexpr double vanishing_gradient_ratio = 1e-7;  // ||grad|| / ||w||, median of late samples
constexpr double vanishing_update_ratio = 1e-6;    // update ratio, median of late samples
constexpr double exploding_gradient_norm = 1e3;    // any sample
constexpr double exploding_growth = 10.0;          // min of last third / max of first
constexpr double dead_relu_zero_fraction = 0.9;    // latest sample

double median(std::vector<double> v) {
  std::erase_if(v, [](double x) { return !std::isfinite(x); });
  if (v.empty()) return std::numeric_limits<double>::quiet_NaN();
  std::sort(v.begin(), v.end());
  std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::vector<double> slice(const std::vector<double>& v, std::size_t begin, std::size_t end) {
  return {v.begin() + static_cast<std::ptrdiff_t>(begin),
          v.begin() + static_cast<std::ptrdiff_t>(end)};
}

/// One tensor's statistics over the sampled steps.
struct Track {
  std::string layer, kind, tensor, op;
  std::vector<double> steps;
  std::vector<const TensorRecord*> records;
};

/// Tracks by layer (in order of first appearance), then by kind and tensor.
std::vector<std::pair<std::string, std::vector<Track>>> tracks_by_layer(const RunData& run) {
  std::vector<std::pair<std::string, std::vector<Track>>> layers;
  for (const auto& line : run.layers) {
    for (const auto& t : line.tensors) {
      auto it = std::find_if(layers.begin(), layers.end(),
                             [&](const auto& l) { return l.first == t.layer; });
      if (it == layers.end()) {
        layers.emplace_back(t.layer, std::vector<Track>{});
        it = layers.end() - 1;
      }
      auto& tracks = it->second;
      auto tr = std::find_if(tracks.begin(), tracks.end(), [&](const Track& x) {
        return x.kind == t.kind && x.tensor == t.tensor;
      });
      if (tr == tracks.end()) {
        tracks.push_back(Track{t.layer, t.kind, t.tensor, t.op, {}, {}});
        tr = tracks.end() - 1;
      }
      tr->steps.push_back(static_cast<double>(line.step));
      tr->records.push_back(&t);
    }
  }
  return layers;
}

template <typename F>
std::vector<double> values(const Track& t, F f) {
  std::vector<double> v;
  for (const auto* r : t.records) v.push_back(f(*r));
  return v;
}

}  // namespace

std::vector<LayerWarning> layer_warnings(const RunData& run) {
  std::vector<LayerWarning> out;
  for (const auto& [layer, tracks] : tracks_by_layer(run)) {
    for (const auto& t : tracks) {
      const std::size_t n = t.records.size();
      if (n == 0) continue;
      const std::size_t late = n / 2;  // the last half: samples [late, n)
      if (t.kind == "gradient") {
        std::vector<double> norms = values(t, [](const TensorRecord& r) { return r.norm; });
        // Exploding: a huge or non-finite norm, or sustained growth.
        auto big = std::find_if(norms.begin(), norms.end(), [](double x) {
          return !std::isfinite(x) || x > exploding_gradient_norm;
        });
        // Sustained growth: every norm of the last third above 10x the largest of the first.
        double first = NAN, last = NAN;
        if (n >= 3) {
          auto head = slice(norms, 0, (n + 2) / 3), tail = slice(norms, n - (n + 2) / 3, n);
          first = *std::max_element(head.begin(), head.end());
          last = *std::min_element(tail.begin(), tail.end());
        }
        if (big != norms.end()) {
          auto i = static_cast<std::size_t>(big - norms.begin());
          out.push_back({"exploding-gradient", layer, t.tensor,
                         "Exploding gradients in " + layer + " (" + t.tensor +
                             "): the gradient norm reached " + short_number(*big) + " at step " +
                             number_text(t.steps[i]) + " (threshold " +
                             short_number(exploding_gradient_norm) +
                             "). Lower the learning rate, clip gradients or normalise inputs."});
        } else if (first > 0 && last > exploding_growth * first) {
          out.push_back({"exploding-gradient", layer, t.tensor,
                         "Growing gradients in " + layer + " (" + t.tensor +
                             "): every gradient norm in the last third of training is over " +
                             short_number(last / first) + "x the largest in the first third (" +
                             short_number(first) + " then at least " + short_number(last) +
                             "). Training may be diverging: lower the learning rate or clip "
                             "gradients."});
        }
        // Vanishing: tiny relative to the weight of the same tensor.
        const Track* weight = nullptr;
        for (const auto& w : tracks)
          if (w.kind == "weight" && w.tensor == t.tensor) weight = &w;
        if (weight && weight->records.size() == n) {
          std::vector<double> ratio;
          for (std::size_t i = late; i < n; ++i) {
            double w = weight->records[i]->norm;
            if (w > 0) ratio.push_back(norms[i] / w);
          }
          double m = median(ratio);
          if (!ratio.empty() && m < vanishing_gradient_ratio)
            out.push_back({"vanishing-gradient", layer, t.tensor,
                           "Vanishing gradients in " + layer + " (" + t.tensor +
                               "): in the later half of training the gradient norm is only " +
                               short_number(m) + " times the weight norm (threshold " +
                               short_number(vanishing_gradient_ratio) +
                               "), so this layer has almost stopped learning."});
        }
      } else if (t.kind == "weight") {
        std::vector<double> ratio;
        for (std::size_t i = late; i < n; ++i)
          if (t.records[i]->update_ratio) ratio.push_back(*t.records[i]->update_ratio);
        double m = median(ratio);
        if (!ratio.empty() && m < vanishing_update_ratio)
          out.push_back({"vanishing-gradient", layer, t.tensor,
                         "Tiny updates in " + layer + " (" + t.tensor +
                             "): in the later half of training each optimizer step changes "
                             "the weights by a median " +
                             short_number(m) + " of their norm (threshold " +
                             short_number(vanishing_update_ratio) +
                             "): the layer is barely learning (vanishing gradients or a "
                             "learning rate that is too small)."});
      } else if (t.kind == "activation" && t.op == "relu") {
        double z = t.records.back()->zero_fraction;
        if (z > dead_relu_zero_fraction)
          out.push_back({"dead-relu", layer, t.tensor,
                         "Dead ReLUs in " + layer + ": " + short_number(z * 100) +
                             "% of its outputs were exactly 0 at step " +
                             number_text(t.steps.back()) + " (threshold " +
                             short_number(dead_relu_zero_fraction * 100) +
                             "%). Those units pass no gradient; try a lower learning rate, "
                             "leaky_relu or a different initialisation."});
      }
    }
  }
  return out;
}

std::string layers_section(const RunData& run) {
  if (!run.has_layers) return absent_section("layers", "Layers over time", "layers.jsonl");
  std::string s = "<section id=\"layers\" data-present=\"1\"><h2>Layers over time</h2>";
  auto warnings = layer_warnings(run);
  if (run.layers.empty()) return s + "<p class=\"note\">No statistics sampled yet.</p></section>";
  if (warnings.empty())
    s += "<div class=\"ok\" data-warning=\"none\">No rule of thumb fired: gradients neither "
         "vanish nor explode, and no ReLU layer is dead.</div>";
  for (const auto& w : warnings)
    s += "<div class=\"warning\" data-warning=\"" + escape(w.rule) + "\" data-layer=\"" +
         escape(w.layer) + "\" data-tensor=\"" + escape(w.tensor) + "\">\u26a0 " + escape(w.text) +
         "</div>";
  s += "<details><summary>Rules of thumb checked</summary><ul class=\"note\">"
       "<li>Vanishing gradients: over the later half of the samples, the median of gradient "
       "norm / weight norm is below " +
       short_number(vanishing_gradient_ratio) +
       ", or the median update ratio (||w<sub>after</sub> - w<sub>before</sub>|| / "
       "||w<sub>before</sub>||) is below " +
       short_number(vanishing_update_ratio) +
       ".</li><li>Exploding gradients: a gradient norm above " +
       short_number(exploding_gradient_norm) +
       " or not finite, or every gradient norm of the last third of the samples is more "
       "than " +
       short_number(exploding_growth) +
       " times the largest of the first third (at least 3 samples).</li><li>Dead ReLUs: a layer "
       "whose output comes from a "
       "ReLU has more than " +
       short_number(dead_relu_zero_fraction * 100) +
       "% zeros at the latest sample.</li></ul></details>";
  s += "<p class=\"note\">Sampled every " +
       escape(run.run.contains("sample_every") ? run.run["sample_every"].dump() : "?") +
       " steps (" + std::to_string(run.layers.size()) +
       " samples). Norms are L2 norms; hover a chart for exact values.</p>";

  for (const auto& [layer, tracks] : tracks_by_layer(run)) {
    std::string op;
    for (const auto& t : tracks)
      if (t.kind == "activation" && !t.op.empty()) op = t.op;
    const bool warned = std::any_of(warnings.begin(), warnings.end(),
                                    [&](const LayerWarning& w) { return w.layer == layer; });
    s += "<div class=\"layer" + std::string(warned ? " warned" : "") + "\" data-layer=\"" +
         escape(layer) + "\"><h3>" + (warned ? "\u26a0 " : "") + escape(layer) +
         (op.empty() ? "" : " <span class=\"note\">output op: " + escape(op) + "</span>") +
         "</h3><div class=\"grid\">";
    // The layer's small charts, all of one size, against the step.
    const auto chart = [&](const std::string& what, const std::string& title,
                           const std::string& y_label, bool log_y) {
      return LineChart{.id = "layer-" + layer + "-" + what,
                       .title = title,
                       .x_label = "step",
                       .y_label = y_label,
                       .log_y = log_y,
                       .width = 340,
                       .height = 200};
    };
    LineChart act = chart("activation", "activation mean / std / zero fraction", "value", false);
    LineChart grad = chart("gradient-norm", "gradient norm", "||grad||", true);
    LineChart weight = chart("weight-norm", "weight norm", "||w||", false);
    LineChart update = chart("update-ratio", "update / weight ratio", "ratio", true);
    const Track* histogram = nullptr;
    std::size_t g = 0, w = 0;
    for (const auto& t : tracks) {
      auto series = [&](const std::string& name, const std::string& label, std::vector<double> y,
                        std::size_t color, const std::string& stat) {
        Series sr;
        sr.name = name;
        sr.label = label;
        sr.x = t.steps;
        sr.y = std::move(y);
        sr.color = series_color(color);
        sr.attributes = {{"data-tensor", t.tensor}, {"data-stat", stat}};
        return sr;
      };
      if (t.kind == "activation") {
        if (!histogram) histogram = &t;
        act.series.push_back(
            series("mean", "mean", values(t, [](const auto& r) { return r.mean; }), 0, "mean"));
        act.series.push_back(
            series("std", "std", values(t, [](const auto& r) { return r.std; }), 1, "std"));
        act.series.push_back(series("zero_fraction", "zero fraction",
                                    values(t, [](const auto& r) { return r.zero_fraction; }), 2,
                                    "zero_fraction"));
      } else if (t.kind == "gradient") {
        grad.series.push_back(series(t.tensor, t.tensor,
                                     values(t, [](const auto& r) { return r.norm; }), g++, "norm"));
      } else if (t.kind == "weight") {
        weight.series.push_back(
            series(t.tensor, t.tensor, values(t, [](const auto& r) { return r.norm; }), w, "norm"));
        update.series.push_back(
            series(t.tensor, t.tensor,
                   values(t,
                          [](const auto& r) {
                            return r.update_ratio ? *r.update_ratio
                                                  : std::numeric_limits<double>::quiet_NaN();
                          }),
                   w++, "update_ratio"));
      }
    }
    if (!act.series.empty()) s += render_line_chart(act);
    if (histogram && !histogram->records.front()->histogram.empty()) {
      HeatStrip strip{.id = "layer-" + layer + "-activation-histogram",
                      .title = "activation histogram over time",
                      .width = 340,
                      .height = 200};
      for (std::size_t i = 0; i < histogram->records.size(); ++i) {
        const auto* r = histogram->records[i];
        strip.columns.push_back(
            {histogram->steps[i], r->histogram_lo, r->histogram_hi, r->histogram});
      }
      s += render_heat_strip(strip);
    }
    if (!grad.series.empty()) s += render_line_chart(grad);
    if (!weight.series.empty()) s += render_line_chart(weight);
    if (!update.series.empty()) s += render_line_chart(update);
    s += "</div></div>";
  }
  return s + "</section>";
}

}  // namespace kiln::report::internal
