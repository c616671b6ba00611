// An image input and the heat map of its attributions side by side: one self-contained HTML
// page with two inline SVG images (no scripts, fonts or network).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <span>
#include <string>
#include <vector>

#include "io/model_data.hpp"
#include "kiln/core/error.hpp"
#include "kiln/report/explain.hpp"
#include "report/svg.hpp"

namespace kiln::report {
namespace {

using internal::escape;

std::string fmt(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

std::string rgb(int r, int g, int b) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "#%02x%02x%02x", r, g, b);
  return buf;
}

int byte(double v) { return static_cast<int>(std::lround(std::clamp(v, 0.0, 1.0) * 255.0)); }

std::string svg_open(std::int64_t w, std::int64_t h, const char* label) {
  const double scale = 280.0 / static_cast<double>(std::max(w, h));
  return "<svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" aria-label=\"" +
         std::string(label) + "\" viewBox=\"0 0 " + std::to_string(w) + " " + std::to_string(h) +
         "\" width=\"" + fmt("%.0f", scale * static_cast<double>(w)) + "\" height=\"" +
         fmt("%.0f", scale * static_cast<double>(h)) + "\" shape-rendering=\"crispEdges\">\n";
}

std::string pixel(std::int64_t x, std::int64_t y, const std::string& fill, const std::string& tip) {
  return "<rect x=\"" + std::to_string(x) + "\" y=\"" + std::to_string(y) +
         "\" width=\"1\" height=\"1\" fill=\"" + fill + "\"><title>" + tip + "</title></rect>\n";
}

}  // namespace

std::string attribution_html(const Attribution& a, const std::string& title) {
  const Tensor& v = a.values;
  const Tensor& at = a.attributions;
  if (!v.defined() || !at.defined() || v.rank() != 3 || at.shape() != v.shape() ||
      (v.dim(0) != 1 && v.dim(0) != 3))
    throw ValueError(
        "attribution_html: an image attribution ([C, H, W] with 1 or 3 channels) "
        "is needed, not one of shape " +
        (at.defined() ? at.shape().str() : std::string("[]")));
  const std::int64_t c = v.dim(0), h = v.dim(1), w = v.dim(2), plane = h * w;
  const std::vector<float> px = v.to(DType::f32).contiguous().to_vector<float>();
  const std::vector<float> attr = at.to(DType::f32).contiguous().to_vector<float>();

  // Pixels outside [0, 1] (a normalised input) are shown min-max scaled.
  const auto [lo_it, hi_it] = std::minmax_element(px.begin(), px.end());
  double lo = *lo_it, hi = *hi_it;
  if (lo >= 0.0 && hi <= 1.0) {
    lo = 0.0;
    hi = 1.0;
  }
  const double span = hi > lo ? hi - lo : 1.0;
  // The heat map: attributions summed over channels; red positive, blue negative.
  std::vector<double> heat(static_cast<std::size_t>(plane), 0.0);
  double total = 0.0;
  for (std::int64_t k = 0; k < c; ++k)
    for (std::int64_t i = 0; i < plane; ++i) {
      heat[static_cast<std::size_t>(i)] += attr[static_cast<std::size_t>(k * plane + i)];
      total += attr[static_cast<std::size_t>(k * plane + i)];
    }
  double peak = 0.0;
  for (double e : heat) peak = std::max(peak, std::abs(e));
  if (peak == 0.0) peak = 1.0;

  std::string image = svg_open(w, h, "input image");
  std::string map = svg_open(w, h, "attribution heat map");
  for (std::int64_t y = 0; y < h; ++y)
    for (std::int64_t x = 0; x < w; ++x) {
      const std::int64_t i = y * w + x;
      const auto at_c = [&](std::int64_t k) {
        return (px[static_cast<std::size_t>(k * plane + i)] - lo) / span;
      };
      char where[48];
      std::snprintf(where, sizeof where, "(%lld, %lld) ", static_cast<long long>(x),
                    static_cast<long long>(y));
      const int r = byte(at_c(0)), g = byte(at_c(c == 3 ? 1 : 0)), b = byte(at_c(c == 3 ? 2 : 0));
      image += pixel(x, y, rgb(r, g, b),
                     std::string(where) + fmt("%.4g", px[static_cast<std::size_t>(i)]));
      const double e = heat[static_cast<std::size_t>(i)], t = std::abs(e) / peak;
      const int fade = byte(1.0 - t);
      map += pixel(x, y, e >= 0 ? rgb(255, fade, fade) : rgb(fade, fade, 255),
                   std::string(where) + fmt("%.4g", e));
    }
  image += "</svg>\n";
  map += "</svg>\n";

  std::string html =
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>" +
      escape(title) +
      "</title>\n<style>\nbody{font-family:system-ui,sans-serif;margin:1.5em;color:#222}\n"
      "h1{font-size:1.25em;overflow-wrap:anywhere}\n"
      ".pair{display:flex;flex-wrap:wrap;gap:2em}\nfigure{margin:0;max-width:282px}\n"
      "figcaption{margin-top:.4em;font-size:.9em;color:#555}\n"
      "svg{border:1px solid #ccc;image-rendering:pixelated}\n"
      "table{border-collapse:collapse;margin-top:1em}td{padding:.15em .8em .15em 0}\n"
      "</style>\n</head>\n<body>\n<h1>" +
      escape(title) + "</h1>\n<div class=\"pair\">\n<figure>\n" + image + "<figcaption>input '" +
      escape(a.input) + "' (" + v.shape().str() + ")</figcaption>\n</figure>\n<figure>\n" + map +
      "<figcaption>" + escape(a.method) +
      ": red raises the output, blue lowers it (largest |value| " + fmt("%.4g", peak) +
      ")</figcaption>\n</figure>\n</div>\n<table>\n<tr><td>method</td><td>" + escape(a.method) +
      "</td></tr>\n<tr><td>class index</td><td>" + std::to_string(a.target_class) +
      "</td></tr>\n<tr><td>output</td><td>" + fmt("%.6g", a.output) + "</td></tr>\n";
  if (a.method == "integrated_gradients")
    html += "<tr><td>baseline output</td><td>" + fmt("%.6g", a.baseline_output) +
            "</td></tr>\n<tr><td>sum of attributions</td><td>" + fmt("%.6g", total) +
            "</td></tr>\n<tr><td>steps</td><td>" + std::to_string(a.steps) + "</td></tr>\n";
  html += "</table>\n</body>\n</html>\n";
  return html;
}

void write_attribution_html(const std::string& path, const Attribution& attribution,
                            const std::string& title) {
  const std::string html = attribution_html(attribution, title);
  kiln::internal::write_file_atomically(
      path, std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(html.data()),
                                          html.size()));
}

}  // namespace kiln::report
