// Internal: the monitor's state (kiln::monitor::Monitor::Impl), shared by monitor.cpp (set-up,
// reports, merging: compiled for size) and monitor_observe.cpp (the request path: compiled
// for speed).
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "internal/utc_time.hpp"
#include "kiln/core/error.hpp"
#include "kiln/io/model_file.hpp"
#include "kiln/monitor/monitor.hpp"
#include "kiln/monitor/stats.hpp"
#include "monitor/profile_internal.hpp"

namespace kiln::monitor {
namespace detail {

constexpr const char* test_ks = "ks";
constexpr const char* test_chi2 = "chi2";

// The largest float <= e.
inline float float_floor(double e) {
  if (e >= static_cast<double>(std::numeric_limits<float>::max()))
    return std::numeric_limits<float>::max();
  if (e < -static_cast<double>(std::numeric_limits<float>::max()))
    return -std::numeric_limits<float>::infinity();
  float f = static_cast<float>(e);
  if (static_cast<double>(f) > e) f = std::nextafter(f, -std::numeric_limits<float>::infinity());
  return f;
}

inline bool is_finite_bits(float v) {
  return (std::bit_cast<std::uint32_t>(v) & 0x7f800000u) != 0x7f800000u;
}

inline unsigned thread_index() {
  static std::atomic<unsigned> next{0};
  thread_local const unsigned index = next.fetch_add(1, std::memory_order_relaxed);
  return index;
}

// Standard normal CDF.
inline double normal_cdf(double z) { return 0.5 * std::erfc(-z / std::sqrt(2.0)); }

}  // namespace detail

struct Monitor::Impl {
  Profile profile;
  MonitorOptions options;
  std::string model_name, model_version, model_hash;

  std::int64_t width = 0;  // values per input row
  // Numeric features, struct of arrays, k = 0..K-1.
  std::int64_t numeric = 0, padded = 0, max_edges = 0;
  bool identity = true;  // numeric feature k is element k and there is nothing else
  std::vector<std::int64_t> element;
  std::vector<std::size_t> feature_of;  // index in profile.features
  std::vector<std::uint32_t> bin_base;
  std::vector<float> edges;  // [max_edges][padded], +inf padding
  std::vector<float> min_value;
  // Categorical features.
  std::vector<std::size_t> categorical;  // index in profile.features
  std::vector<std::uint32_t> category_base;
  // Predictions.
  std::uint32_t prediction_base = 0;
  std::uint32_t total_bins = 0;
  // Undoing the model's normalisation (inputs_preprocessed).
  bool undo_normalization = false;
  std::vector<float> norm_mean, norm_std;  // per last-axis index
  std::int64_t norm_size = 1;

  struct alignas(64) Stripe {
    std::mutex mutex;
    std::vector<std::uint64_t> counts;  // total_bins, folded from `recent`
    // The request path counts into 32-bit cells (half the cache footprint of 64-bit ones),
    // folded into `counts` before any could overflow.
    std::vector<std::uint32_t> recent;  // total_bins
    std::uint32_t recent_rows = 0;
    std::vector<double> sums;              // per numeric feature
    std::vector<std::uint64_t> nonfinite;  // per profile feature
    std::vector<std::uint64_t> below;      // per numeric feature
    std::vector<std::uint64_t> unseen;     // per categorical feature
    std::uint64_t rows = 0, prediction_rows = 0, prediction_nonfinite = 0;
    double prediction_sum = 0;
    // Scratch, used under the mutex.
    std::vector<float> raw, values;
    std::vector<std::int32_t> bins;
  };
  std::vector<std::unique_ptr<Stripe>> stripes;
  std::atomic<std::uint64_t> rows_seen{0};

  mutable std::mutex label_mutex;
  std::uint64_t labelled = 0;
  double label_sum = 0, label_sum_sq = 0;

  Impl(Profile p, MonitorOptions o) : profile(std::move(p)), options(o) {
    if (options.sample_every == 0) throw ValueError("monitor: sample_every must be at least 1");
    if (!(options.alpha > 0 && options.alpha < 1))
      throw ValueError("monitor: alpha must be in (0, 1), not " + std::to_string(options.alpha));
    width = internal::row_width(profile);
    std::int64_t expected_element = 0;
    std::uint32_t base = 0;
    for (std::size_t i = 0; i < profile.features.size(); ++i) {
      const FeatureProfile& f = profile.features[i];
      if (f.kind == FeatureKind::numeric) {
        if (f.offset != expected_element) identity = false;
        ++expected_element;
        element.push_back(f.offset);
        feature_of.push_back(i);
        bin_base.push_back(base);
        const auto nb =
            static_cast<std::uint32_t>(std::max<std::size_t>(f.histogram.counts.size(), 1));
        base += nb;
        max_edges =
            std::max<std::int64_t>(max_edges, static_cast<std::int64_t>(f.histogram.edges.size()));
        min_value.push_back(static_cast<float>(f.min));
      } else {
        identity = false;
        categorical.push_back(i);
        category_base.push_back(base);
        base += static_cast<std::uint32_t>(f.categories.size());
      }
    }
    if (expected_element != width) identity = false;
    numeric = static_cast<std::int64_t>(element.size());
    padded = (numeric + 15) / 16 * 16;
    edges.assign(static_cast<std::size_t>(max_edges * padded),
                 std::numeric_limits<float>::infinity());
    for (std::int64_t k = 0; k < numeric; ++k) {
      const Histogram& h = profile.features[feature_of[static_cast<std::size_t>(k)]].histogram;
      for (std::size_t e = 0; e < h.edges.size(); ++e)
        edges[e * static_cast<std::size_t>(padded) + static_cast<std::size_t>(k)] =
            detail::float_floor(h.edges[e]);
    }
    prediction_base = base;
    if (profile.predicted == PredictionKind::classes)
      base += static_cast<std::uint32_t>(profile.class_counts.size());
    else if (profile.predicted == PredictionKind::values)
      base += static_cast<std::uint32_t>(
          std::max<std::size_t>(profile.prediction_histogram.counts.size(), 1));
    total_bins = base;

    const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
    const unsigned n = std::min(hw, 16u);
    for (unsigned s = 0; s < n; ++s) {
      auto stripe = std::make_unique<Stripe>();
      stripe->counts.assign(total_bins, 0);
      stripe->recent.assign(total_bins, 0);
      stripe->sums.assign(static_cast<std::size_t>(numeric), 0.0);
      stripe->nonfinite.assign(profile.features.size(), 0);
      stripe->below.assign(static_cast<std::size_t>(numeric), 0);
      stripe->unseen.assign(categorical.size(), 0);
      stripe->raw.assign(static_cast<std::size_t>(width), 0.0f);
      stripe->values.assign(static_cast<std::size_t>(padded), 0.0f);
      stripe->bins.assign(static_cast<std::size_t>(padded), 0);
      stripes.push_back(std::move(stripe));
    }
  }

  void set_normalization(const Normalization& n) {
    if (n.mean.empty() || n.mean.size() != n.stddev.size() ||
        width % static_cast<std::int64_t>(n.mean.size()) != 0)
      throw ValueError("monitor: the normalisation of input '" + n.input +
                       "' does not fit rows of " + std::to_string(width) + " values");
    undo_normalization = true;
    norm_mean = n.mean;
    norm_std = n.stddev;
    norm_size = static_cast<std::int64_t>(n.mean.size());
  }

  void clear_stripe(Stripe& s) {
    std::fill(s.counts.begin(), s.counts.end(), 0);
    std::fill(s.recent.begin(), s.recent.end(), 0);
    s.recent_rows = 0;
    std::fill(s.sums.begin(), s.sums.end(), 0.0);
    std::fill(s.nonfinite.begin(), s.nonfinite.end(), 0);
    std::fill(s.below.begin(), s.below.end(), 0);
    std::fill(s.unseen.begin(), s.unseen.end(), 0);
    s.rows = s.prediction_rows = s.prediction_nonfinite = 0;
    s.prediction_sum = 0;
  }

  // Before a row is counted into `recent`: folds it into `counts` when another row could
  // overflow a cell (each row adds at most one to any cell).
  static void make_room(Stripe& s) {
    if (s.recent_rows == std::numeric_limits<std::uint32_t>::max()) {
      for (std::size_t i = 0; i < s.counts.size(); ++i) s.counts[i] += s.recent[i];
      std::fill(s.recent.begin(), s.recent.end(), 0);
      s.recent_rows = 0;
    }
    ++s.recent_rows;
  }
  // One input row (width values) into a stripe, under its mutex (monitor_observe.cpp).
  void observe_row(Stripe& s, const float* row);
  void observe_prediction(Stripe& s, const float* y, std::int64_t cols);

  struct Totals {
    std::vector<std::uint64_t> counts, nonfinite, below, unseen;
    std::vector<double> sums;
    std::uint64_t rows = 0, prediction_rows = 0, prediction_nonfinite = 0;
    double prediction_sum = 0;
  };

  Totals totals() const {
    Totals t;
    t.counts.assign(total_bins, 0);
    t.sums.assign(static_cast<std::size_t>(numeric), 0.0);
    t.nonfinite.assign(profile.features.size(), 0);
    t.below.assign(static_cast<std::size_t>(numeric), 0);
    t.unseen.assign(categorical.size(), 0);
    for (const auto& sp : stripes) {
      Stripe& s = *sp;
      std::lock_guard lock(s.mutex);
      for (std::size_t i = 0; i < t.counts.size(); ++i) t.counts[i] += s.counts[i] + s.recent[i];
      for (std::size_t i = 0; i < t.sums.size(); ++i) t.sums[i] += s.sums[i];
      for (std::size_t i = 0; i < t.nonfinite.size(); ++i) t.nonfinite[i] += s.nonfinite[i];
      for (std::size_t i = 0; i < t.below.size(); ++i) t.below[i] += s.below[i];
      for (std::size_t i = 0; i < t.unseen.size(); ++i) t.unseen[i] += s.unseen[i];
      t.rows += s.rows;
      t.prediction_rows += s.prediction_rows;
      t.prediction_nonfinite += s.prediction_nonfinite;
      t.prediction_sum += s.prediction_sum;
    }
    return t;
  }

  void set_level(FeatureDrift& d) const {
    d.psi_level = d.psi >= options.psi_significant ? PsiLevel::significant
                  : d.psi >= options.psi_moderate  ? PsiLevel::moderate
                                                   : PsiLevel::none;
  }

  // The test of one distribution: KS on histogram bins or chi-squared on categories.
  void compare(FeatureDrift& d, std::span<const std::uint64_t> reference,
               std::span<const std::uint64_t> live, bool ks, double corrected_alpha) const {
    d.test = ks ? detail::test_ks : detail::test_chi2;
    d.live_counts.assign(live.begin(), live.end());
    std::uint64_t rows = 0, ref_rows = 0;
    for (std::uint64_t c : live) rows += c;
    for (std::uint64_t c : reference) ref_rows += c;
    d.rows = rows;
    if (rows == 0 || ref_rows == 0) return;
    const TestResult r = ks ? ks_binned(reference, live) : chi2_2samp(reference, live);
    d.statistic = r.statistic;
    d.p_value = r.p_value;
    d.psi = psi(reference, live);
    set_level(d);
    d.drifted = rows >= options.min_rows && d.p_value < corrected_alpha;
  }

  DriftReport report() const {
    const Totals t = totals();
    DriftReport r;
    r.model = model_name;
    r.model_version = model_version;
    r.model_hash = model_hash;
    r.created = kiln::internal::utc_now();
    r.rows_seen = rows_seen.load(std::memory_order_relaxed);
    r.rows_observed = t.rows;
    r.alpha = options.alpha;
    const std::size_t tests =
        profile.features.size() + (profile.predicted != PredictionKind::none ? 1 : 0);
    r.corrected_alpha = options.alpha / static_cast<double>(std::max<std::size_t>(tests, 1));
    std::size_t k = 0, c = 0;
    for (std::size_t i = 0; i < profile.features.size(); ++i) {
      const FeatureProfile& f = profile.features[i];
      FeatureDrift d;
      d.name = f.name;
      d.kind = f.kind;
      d.nonfinite = t.nonfinite[i];
      if (f.kind == FeatureKind::numeric) {
        const std::span<const std::uint64_t> live(
            t.counts.data() + bin_base[k], std::max<std::size_t>(f.histogram.counts.size(), 1));
        if (f.histogram.counts.empty()) {
          d.test = detail::test_ks;
          d.live_counts.assign(live.begin(), live.end());
          d.rows = live[0];
        } else {
          compare(d, f.histogram.counts, live, true, r.corrected_alpha);
          d.above_max = live.back();
        }
        d.below_min = t.below[k];
        d.live_mean = d.rows > 0 ? t.sums[k] / static_cast<double>(d.rows) : 0.0;
        ++k;
      } else {
        const std::span<const std::uint64_t> live(t.counts.data() + category_base[c],
                                                  f.categories.size());
        compare(d, f.category_counts, live, false, r.corrected_alpha);
        d.unseen_category = t.unseen[c];
        ++c;
      }
      if (d.drifted) ++r.features_drifted;
      r.max_psi = std::max(r.max_psi, d.psi);
      r.features.push_back(std::move(d));
    }
    r.prediction.name = "prediction";
    if (profile.predicted == PredictionKind::classes) {
      r.prediction.kind = FeatureKind::categorical;
      const std::span<const std::uint64_t> live(t.counts.data() + prediction_base,
                                                profile.class_counts.size());
      compare(r.prediction, profile.class_counts, live, false, r.corrected_alpha);
    } else if (profile.predicted == PredictionKind::values) {
      const std::span<const std::uint64_t> live(t.counts.data() + prediction_base,
                                                profile.prediction_histogram.counts.size());
      compare(r.prediction, profile.prediction_histogram.counts, live, true, r.corrected_alpha);
      r.prediction.above_max = live.back();
      r.prediction.nonfinite = t.prediction_nonfinite;
      r.prediction.live_mean =
          t.prediction_rows > 0 ? t.prediction_sum / static_cast<double>(t.prediction_rows) : 0.0;
    }
    r.max_psi = std::max(r.max_psi, r.prediction.psi);
    r.drifted = r.features_drifted > 0 || r.prediction.drifted;
    r.labels = label_metrics();
    return r;
  }

  // The reference metric the decay alarm compares with: the first profile metric named
  // `metric` or ending in "_<metric>" (test_accuracy, val_mse, ...).
  double reference_metric(const std::string& metric) const {
    for (const auto& [name, value] : profile.metrics)
      if (name == metric ||
          (name.size() > metric.size() &&
           name.compare(name.size() - metric.size(), metric.size(), metric) == 0 &&
           name[name.size() - metric.size() - 1] == '_'))
        return value;
    return std::nan("");
  }

  LabelMetrics label_metrics() const {
    LabelMetrics m;
    m.metric = profile.predicted == PredictionKind::values ? "mse" : "accuracy";
    m.reference = reference_metric(m.metric);
    {
      std::lock_guard lock(label_mutex);
      m.labelled = labelled;
      m.sum = label_sum;
      m.sum_sq = label_sum_sq;
    }
    if (m.labelled == 0) return m;
    const double n = static_cast<double>(m.labelled);
    m.live = m.sum / n;
    if (std::isnan(m.reference)) return m;
    if (m.metric == "accuracy") {
      // H0: accuracy >= reference - tolerance; one-sided z test of the live proportion.
      const double p0 = std::clamp(m.reference - options.decay_tolerance, 1e-9, 1 - 1e-9);
      const double z = (m.live - p0) / std::sqrt(p0 * (1 - p0) / n);
      m.p_value = detail::normal_cdf(z);
    } else {
      // H0: mse <= reference + tolerance; z test with the squared errors' own variance.
      const double bound = m.reference + options.decay_tolerance;
      const double var = std::max(m.sum_sq / n - m.live * m.live, 1e-300);
      const double z = (m.live - bound) / std::sqrt(var / n);
      m.p_value = 1 - detail::normal_cdf(z);
    }
    m.decayed = m.labelled >= options.decay_min_labels && m.p_value < options.decay_alpha;
    return m;
  }

  Stripe& my_stripe() { return *stripes[detail::thread_index() % stripes.size()]; }
};

}  // namespace kiln::monitor
