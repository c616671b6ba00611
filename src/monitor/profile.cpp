// Reference profiles (kiln/monitor/profile.hpp): building one from tensors, and its bytes
// (the "kiln.profile" model section, docs/mlops.md), read with the model files' bounded
// archive reader.
#include "kiln/monitor/profile.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "io/archive.hpp"
#include "kiln/core/error.hpp"
#include "kiln/infer/model.hpp"
#include "monitor/profile_internal.hpp"

namespace kiln::monitor {
namespace {

constexpr std::uint32_t profile_layout_version = 1;

[[noreturn]] void value_error(const std::string& what) { throw ValueError(what); }

// Numeric summary and histogram of the finite values in `values` (sorted in place).
void describe_numeric(std::vector<double>& values, std::uint64_t nonfinite, int bins,
                      FeatureProfile& f) {
  f.count = values.size() + nonfinite;
  f.nonfinite = nonfinite;
  f.histogram = Histogram{};
  if (values.empty()) {
    f.min = f.max = f.mean = f.std = 0;
    return;
  }
  std::sort(values.begin(), values.end());
  f.min = values.front();
  f.max = values.back();
  double sum = 0;
  for (double v : values) sum += v;
  f.mean = sum / static_cast<double>(values.size());
  double ss = 0;
  for (double v : values) ss += (v - f.mean) * (v - f.mean);
  f.std = std::sqrt(ss / static_cast<double>(values.size()));
  f.histogram = internal::quantile_histogram(values, bins);
}

}  // namespace

namespace internal {

Histogram quantile_histogram(std::span<const double> sorted, int bins) {
  Histogram h;
  if (sorted.empty()) return h;
  // Few distinct values: one bin per value. Otherwise the lower empirical quantiles at
  // k / bins, duplicates removed. The last edge is always the maximum, so the last bin
  // (v > max) is empty in the reference and catches live values above its range.
  std::vector<double> distinct;
  for (double v : sorted) {
    if (distinct.empty() || distinct.back() != v) distinct.push_back(v);
    if (distinct.size() > static_cast<std::size_t>(bins)) break;
  }
  if (distinct.size() <= static_cast<std::size_t>(bins)) {
    h.edges = distinct;
  } else {
    const std::size_t n = sorted.size();
    for (int k = 1; k < bins; ++k) {
      const std::size_t rank = (static_cast<std::size_t>(k) * n + bins - 1) / bins;  // ceil
      const double e = sorted[std::max<std::size_t>(rank, 1) - 1];
      if (h.edges.empty() || h.edges.back() != e) h.edges.push_back(e);
    }
    if (h.edges.back() != sorted.back()) h.edges.push_back(sorted.back());
  }
  h.counts.assign(h.edges.size() + 1, 0);
  for (double v : sorted) ++h.counts[h.bin(v)];
  return h;
}

std::int64_t category_of(const FeatureProfile& f, const float* row) {
  const auto ncat = static_cast<std::int64_t>(f.categories.size());
  if (f.one_hot) {
    std::int64_t best = -1;
    for (std::int64_t c = 0; c < f.width; ++c) {
      const float v = row[f.offset + c];
      if (v == 1.0f) {
        if (best >= 0) return -1;  // two categories set
        best = c;
      } else if (v != 0.0f) {
        return -1;
      }
    }
    return best;
  }
  const float v = row[f.offset];
  if (!(v >= 0.0f) || v != std::floor(v) || v >= static_cast<float>(ncat)) return -1;
  return static_cast<std::int64_t>(v);
}

std::int64_t row_width(const Profile& p) {
  std::int64_t w = 0;
  for (const FeatureProfile& f : p.features) w = std::max(w, f.offset + f.width);
  return w;
}

}  // namespace internal

std::size_t Histogram::bin(double v) const {
  if (std::isnan(v)) return counts.size();
  return static_cast<std::size_t>(std::lower_bound(edges.begin(), edges.end(), v) - edges.begin());
}

Profile build_profile(const ProfileInputs& in) {
  if (in.input.empty()) value_error("build_profile: the input name is empty");
  if (in.bins < 1)
    value_error("build_profile: bins must be at least 1, not " + std::to_string(in.bins));
  const Tensor& x = in.features;
  if (!x.defined() || x.rank() < 2)
    throw ShapeError("build_profile: the features of input '" + in.input +
                     "' must be a tensor [N, ...] of rank 2 or more");
  if (x.dtype() != DType::f32)
    throw DTypeError("build_profile: the features of input '" + in.input + "' must be f32");
  const Tensor xc = x.contiguous();
  const std::int64_t n = xc.shape()[0];
  const std::int64_t width = n == 0 ? 0 : xc.numel() / n;
  if (n == 0) value_error("build_profile: no reference rows for input '" + in.input + "'");
  if (!in.feature_names.empty() && static_cast<std::int64_t>(in.feature_names.size()) != width)
    throw ShapeError("build_profile: " + std::to_string(in.feature_names.size()) +
                     " feature names for rows of " + std::to_string(width) + " values");
  const float* data = xc.data<float>();

  // Which elements belong to a categorical column.
  std::vector<int> owner(static_cast<std::size_t>(width), -1);
  for (std::size_t c = 0; c < in.categorical.size(); ++c) {
    const CategoricalColumn& col = in.categorical[c];
    if (col.categories.empty())
      value_error("build_profile: categorical column '" + col.name + "' has no categories");
    const std::int64_t w = col.one_hot ? static_cast<std::int64_t>(col.categories.size()) : 1;
    if (col.offset < 0 || col.offset + w > width)
      throw ShapeError("build_profile: categorical column '" + col.name + "' at " +
                       std::to_string(col.offset) + " (width " + std::to_string(w) +
                       ") does not fit rows of " + std::to_string(width) + " values");
    for (std::int64_t e = col.offset; e < col.offset + w; ++e) {
      if (owner[static_cast<std::size_t>(e)] >= 0)
        value_error("build_profile: categorical column '" + col.name + "' overlaps another");
      owner[static_cast<std::size_t>(e)] = static_cast<int>(c);
    }
  }

  Profile p;
  p.input = in.input;
  std::vector<double> values;
  values.reserve(static_cast<std::size_t>(n));
  for (std::int64_t e = 0; e < width; ++e) {
    const int c = owner[static_cast<std::size_t>(e)];
    FeatureProfile f;
    if (c >= 0) {
      const CategoricalColumn& col = in.categorical[static_cast<std::size_t>(c)];
      if (col.offset != e) continue;  // the column's other one-hot elements
      f.name = col.name;
      f.kind = FeatureKind::categorical;
      f.offset = col.offset;
      f.one_hot = col.one_hot;
      f.width = col.one_hot ? static_cast<std::int64_t>(col.categories.size()) : 1;
      f.categories = col.categories;
      f.category_counts.assign(col.categories.size(), 0);
      f.count = static_cast<std::uint64_t>(n);
      for (std::int64_t r = 0; r < n; ++r) {
        const std::int64_t k = internal::category_of(f, data + r * width);
        if (k < 0)
          value_error("build_profile: row " + std::to_string(r) + " of categorical column '" +
                      col.name + "' holds no valid category");
        ++f.category_counts[static_cast<std::size_t>(k)];
      }
    } else {
      f.name = in.feature_names.empty() ? in.input + "[" + std::to_string(e) + "]"
                                        : in.feature_names[static_cast<std::size_t>(e)];
      f.offset = e;
      values.clear();
      std::uint64_t nonfinite = 0;
      for (std::int64_t r = 0; r < n; ++r) {
        const float v = data[r * width + e];
        if (std::isfinite(v))
          values.push_back(v);
        else
          ++nonfinite;
      }
      describe_numeric(values, nonfinite, in.bins, f);
    }
    p.features.push_back(std::move(f));
  }

  p.predicted = in.predicted;
  p.output = in.output;
  p.labels = in.labels;
  p.metrics = in.metrics;
  if (in.predicted != PredictionKind::none) {
    const Tensor& y = in.predictions;
    if (!y.defined() || y.rank() < 1 || y.rank() > 2 || y.dtype() != DType::f32)
      throw ShapeError("build_profile: predictions must be an f32 tensor [M] or [M, C]");
    if (in.output.empty()) value_error("build_profile: predictions without an output name");
    const Tensor yc = y.contiguous();
    const std::int64_t m = yc.shape()[0];
    const std::int64_t cols = yc.rank() == 2 ? yc.shape()[1] : 1;
    const float* yd = yc.data<float>();
    p.prediction_count = static_cast<std::uint64_t>(m);
    if (m == 0) value_error("build_profile: predictions hold no rows");
    if (in.predicted == PredictionKind::classes) {
      const std::int64_t classes = std::max<std::int64_t>(cols, 2);
      if (!p.labels.empty() && static_cast<std::int64_t>(p.labels.size()) != classes)
        value_error("build_profile: " + std::to_string(p.labels.size()) + " labels for " +
                    std::to_string(classes) + " classes");
      p.class_counts.assign(static_cast<std::size_t>(classes), 0);
      for (std::int64_t r = 0; r < m; ++r)
        ++p.class_counts[static_cast<std::size_t>(internal::predicted_class(yd + r * cols, cols))];
    } else {
      if (cols != 1) throw ShapeError("build_profile: value predictions must be [M] or [M, 1]");
      values.clear();
      for (std::int64_t r = 0; r < m; ++r)
        if (std::isfinite(yd[r])) values.push_back(yd[r]);
      if (values.empty()) value_error("build_profile: no finite prediction");
      std::sort(values.begin(), values.end());
      p.prediction_histogram = internal::quantile_histogram(values, in.bins);
    }
  }
  return p;
}

namespace internal {

std::int64_t predicted_class(const float* row, std::int64_t cols) {
  if (cols == 1) return row[0] > 0.5f ? 1 : 0;
  std::int64_t best = 0;
  for (std::int64_t c = 1; c < cols; ++c)
    if (row[c] > row[best]) best = c;
  return best;
}

}  // namespace internal

// ---- Bytes -----------------------------------------------------------------------------

namespace {

void write_histogram(kiln::internal::ArchiveWriter& w, const Histogram& h) {
  w.u32(static_cast<std::uint32_t>(h.edges.size()));
  for (double e : h.edges) w.f64(e);
  w.u32(static_cast<std::uint32_t>(h.counts.size()));
  for (std::uint64_t c : h.counts) w.u64(c);
}

Histogram read_histogram(kiln::internal::ArchiveReader& r, const std::string& what) {
  Histogram h;
  const std::size_t ne = r.count((what + " edge count").c_str(), 8);
  h.edges.resize(ne);
  for (double& e : h.edges) {
    e = r.f64("histogram edge");
    if (!std::isfinite(e)) r.fail(what + ": a histogram edge is not finite");
  }
  for (std::size_t i = 1; i < ne; ++i)
    if (!(h.edges[i - 1] < h.edges[i])) r.fail(what + ": histogram edges are not increasing");
  const std::size_t nc = r.count((what + " bin count").c_str(), 8);
  if (nc != (ne == 0 && nc == 0 ? 0 : ne + 1))
    r.fail(what + ": " + std::to_string(nc) + " bins for " + std::to_string(ne) + " edges");
  h.counts.resize(nc);
  for (std::uint64_t& c : h.counts) c = r.u64("histogram count");
  return h;
}

}  // namespace

std::vector<std::uint8_t> Profile::to_bytes() const {
  kiln::internal::ArchiveWriter w;
  w.u32(profile_layout_version);
  w.string(input);
  w.u32(static_cast<std::uint32_t>(features.size()));
  for (const FeatureProfile& f : features) {
    w.string(f.name);
    w.u8(static_cast<std::uint8_t>(f.kind));
    w.i64(f.offset);
    w.i64(f.width);
    w.boolean(f.one_hot);
    w.u64(f.count);
    w.u64(f.nonfinite);
    w.f64(f.min);
    w.f64(f.max);
    w.f64(f.mean);
    w.f64(f.std);
    write_histogram(w, f.histogram);
    w.u32(static_cast<std::uint32_t>(f.categories.size()));
    for (const std::string& c : f.categories) w.string(c);
    w.u32(static_cast<std::uint32_t>(f.category_counts.size()));
    for (std::uint64_t c : f.category_counts) w.u64(c);
  }
  w.u8(static_cast<std::uint8_t>(predicted));
  w.string(output);
  w.u32(static_cast<std::uint32_t>(labels.size()));
  for (const std::string& l : labels) w.string(l);
  w.u32(static_cast<std::uint32_t>(class_counts.size()));
  for (std::uint64_t c : class_counts) w.u64(c);
  write_histogram(w, prediction_histogram);
  w.u64(prediction_count);
  w.u32(static_cast<std::uint32_t>(metrics.size()));
  for (const auto& [name, value] : metrics) {
    w.string(name);
    w.f64(value);
  }
  return w.finish();
}

Profile Profile::from_bytes(std::span<const std::uint8_t> bytes, const std::string& source) {
  kiln::internal::ArchiveReader r(bytes, source);
  const std::uint32_t version = r.u32("profile layout version");
  if (version != profile_layout_version)
    r.fail("profile layout version " + std::to_string(version) + " is not supported (1)");
  Profile p;
  p.input = r.name("profile input name");
  // Smallest feature: name, kind, offset, width, one_hot, 2 counts, 4 doubles, 4 u32 counts.
  const std::size_t nf = r.count("profile feature count", 9 + 1 + 8 + 8 + 1 + 16 + 32 + 16);
  p.features.resize(nf);
  std::int64_t end = 0;
  for (std::size_t i = 0; i < nf; ++i) {
    FeatureProfile& f = p.features[i];
    f.name = r.name("feature name");
    const std::string what = "feature '" + f.name + "'";
    const std::uint8_t kind = r.u8("feature kind");
    if (kind > 1) r.fail(what + ": unknown kind " + std::to_string(kind));
    f.kind = static_cast<FeatureKind>(kind);
    f.offset = r.i64("feature offset");
    f.width = r.i64("feature width");
    // Features cover the row without gaps, so the row's width is bounded by the bytes.
    if (f.offset != end || f.width < 1 || f.width > std::int64_t{1} << 31)
      r.fail(what + ": offset " + std::to_string(f.offset) + " and width " +
             std::to_string(f.width) + " do not follow the previous feature (ending at " +
             std::to_string(end) + ")");
    end = f.offset + f.width;
    f.one_hot = r.boolean("feature one_hot");
    f.count = r.u64("feature count");
    f.nonfinite = r.u64("feature non-finite count");
    f.min = r.f64("feature min");
    f.max = r.f64("feature max");
    f.mean = r.f64("feature mean");
    f.std = r.f64("feature std");
    f.histogram = read_histogram(r, what);
    const std::size_t nc = r.count("category count", 8);
    f.categories.resize(nc);
    for (std::string& c : f.categories) c = r.string("category name");
    const std::size_t ncc = r.count("category count count", 8);
    if (ncc != nc)
      r.fail(what + ": " + std::to_string(ncc) + " counts for " + std::to_string(nc) +
             " categories");
    f.category_counts.resize(ncc);
    for (std::uint64_t& c : f.category_counts) c = r.u64("category count");
    if (f.kind == FeatureKind::numeric) {
      if (f.width != 1 || f.one_hot || nc != 0)
        r.fail(what + ": a numeric feature must have width 1 and no categories");
      if (f.histogram.counts.empty() && f.count > f.nonfinite)
        r.fail(what + ": a numeric feature with finite values has no histogram");
    } else {
      if (nc == 0) r.fail(what + ": a categorical feature has no categories");
      if (f.width != (f.one_hot ? static_cast<std::int64_t>(nc) : 1))
        r.fail(what + ": width " + std::to_string(f.width) + " does not fit its " +
               std::to_string(nc) + " categories");
      if (!f.histogram.edges.empty()) r.fail(what + ": a categorical feature has a histogram");
    }
  }
  const std::uint8_t predicted = r.u8("prediction kind");
  if (predicted > 2) r.fail("unknown prediction kind " + std::to_string(predicted));
  p.predicted = static_cast<PredictionKind>(predicted);
  p.output = r.string("prediction output");
  const std::size_t nl = r.count("label count", 8);
  p.labels.resize(nl);
  for (std::string& l : p.labels) l = r.string("label");
  const std::size_t ncl = r.count("class count", 8);
  p.class_counts.resize(ncl);
  for (std::uint64_t& c : p.class_counts) c = r.u64("class count");
  p.prediction_histogram = read_histogram(r, "prediction");
  p.prediction_count = r.u64("prediction count");
  const std::size_t nm = r.count("metric count", 8 + 8);
  p.metrics.resize(nm);
  for (auto& [name, value] : p.metrics) {
    name = r.name("metric name");
    value = r.f64("metric value");
  }
  r.expect_end();
  if (p.predicted == PredictionKind::classes && p.class_counts.size() < 2)
    r.fail("class predictions with " + std::to_string(p.class_counts.size()) + " classes");
  if (p.predicted == PredictionKind::classes && !p.labels.empty() &&
      p.labels.size() != p.class_counts.size())
    r.fail(std::to_string(p.labels.size()) + " labels for " +
           std::to_string(p.class_counts.size()) + " classes");
  if (p.predicted == PredictionKind::values && p.prediction_histogram.counts.empty())
    r.fail("value predictions without a histogram");
  if (p.predicted != PredictionKind::none && p.output.empty())
    r.fail("predictions without an output name");
  return p;
}

Profile Profile::from_model(const infer::Model& model) {
  const std::string name = model.metadata().name.empty() ? "<unnamed>" : model.metadata().name;
  if (!model.has_section(profile_section))
    throw NameError("model '" + name + "' has no '" + profile_section +
                    "' section (train it with a reference profile)");
  return from_bytes(model.section(profile_section),
                    "model '" + name + "' section " + profile_section);
}

}  // namespace kiln::monitor
