// Internal: small inline-SVG chart builders for the report (line charts, horizontal bar
// charts, heat maps and histogram strips). Every chart is an
// <svg class="chart" data-chart="ID" data-kind="KIND"> whose elements carry the exact
// numbers they draw as data attributes (see include/kiln/report/report.hpp).
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kiln::report::internal {

/// Text for HTML/SVG content and attribute values (& < > " ').
std::string escape(std::string_view text);
/// A short, readable form of a number for tables and tick labels (4 significant digits).
std::string short_number(double v);
/// The i-th colour of the series palette (colour-blind friendly, 8 colours, then cycling).
std::string series_color(std::size_t i);

struct Series {
  std::string name = {};   ///< data-series
  std::string label = {};  ///< legend text ("" : name)
  std::vector<double> x = {}, y = {};
  std::string color = {};
  bool dashed = false;
  /// Extra attributes of the path (e.g. {"data-source", "step"}, {"data-run", "a"}).
  std::vector<std::pair<std::string, std::string>> attributes = {};
};

struct LineChart {
  std::string id = {};
  std::string title = {};
  std::string x_label = {};
  std::string y_label = {};
  bool log_y = false;
  std::vector<Series> series = {};
  int width = 430;
  int height = 220;
};
/// A <figure> with the title, the SVG and an HTML legend. Non-finite points (and, on a log
/// axis, points <= 0) are left out of the path and of data-x / data-y.
std::string render_line_chart(const LineChart& chart);

struct Bar {
  std::string label = {};
  double value = 0.0;
  double error = std::numeric_limits<double>::quiet_NaN();  ///< a +-whisker (std)
};
struct BarChart {
  std::string id = {};
  std::string title = {};
  std::string value_label = {};
  std::vector<Bar> bars = {};
  /// Negative values to the left of a centre line (red), positive to the right (blue).
  bool diverging = false;
  int width = 520;
};
std::string render_bar_chart(const BarChart& chart);

struct HeatMap {
  std::string id = {};
  std::string title = {};
  std::vector<std::string> row_labels = {}, col_labels = {};  ///< empty: none drawn
  std::vector<double> values = {};                            ///< rows x cols, row-major
  std::int64_t rows = 0, cols = 0;
  std::string row_title = {}, col_title = {};
  bool diverging = false;    ///< red-white-blue around 0 (else white to blue)
  bool show_values = false;  ///< the number in each cell
  bool grayscale = false;    ///< black to white (an image)
  int cell = 36;             ///< pixels per cell
};
std::string render_heat_map(const HeatMap& map);

/// Histograms over time: one column per sample (x = its step), bins stacked vertically
/// over the value range, darker for more elements.
struct HistogramColumn {
  double step = 0.0;
  double lo = 0.0, hi = 0.0;
  std::vector<double> counts = {};
};
struct HeatStrip {
  std::string id = {};
  std::string title = {};
  std::vector<HistogramColumn> columns = {};
  int width = 520;
  int height = 170;
};
std::string render_heat_strip(const HeatStrip& strip);

}  // namespace kiln::report::internal
