// kiln::monitor::Monitor (kiln/monitor/monitor.hpp): live counts per reference bin in fixed
// memory, observed on the request path, compared with the profile on report().
//
// observe() is on the request path. Every numeric feature's bin is found for the whole row
// at once: the features' edges are stored edge-major as floats (each rounded down, so
// v > float edge exactly when v > the double edge, for a float v), and bin[k] = the number
// of edges below v[k] is a run of vectorised compares over the row. Counts accumulate in
// stripes (one mutex each, threads spread over them by a per-thread index) that report()
// sums, so concurrent observers rarely meet; nothing is allocated per call.
#include "kiln/monitor/monitor.hpp"

#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <cstring>
#include <ctime>
#include <limits>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "io/model_data.hpp"
#include "kiln/core/error.hpp"
#include "kiln/infer/model.hpp"
#include "kiln/monitor/stats.hpp"
#include "monitor/profile_internal.hpp"
#include "monitor/snapshot_json.hpp"
#include "monitor/stats_internal.hpp"

namespace kiln::monitor {
namespace {

constexpr const char* test_ks = "ks";
constexpr const char* test_chi2 = "chi2";

std::string now_utc() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// The largest float <= e.
float float_floor(double e) {
  if (e >= static_cast<double>(std::numeric_limits<float>::max()))
    return std::numeric_limits<float>::max();
  if (e < -static_cast<double>(std::numeric_limits<float>::max()))
    return -std::numeric_limits<float>::infinity();
  float f = static_cast<float>(e);
  if (static_cast<double>(f) > e) f = std::nextafter(f, -std::numeric_limits<float>::infinity());
  return f;
}

bool is_finite_bits(float v) {
  return (std::bit_cast<std::uint32_t>(v) & 0x7f800000u) != 0x7f800000u;
}

unsigned thread_index() {
  static std::atomic<unsigned> next{0};
  thread_local const unsigned index = next.fetch_add(1, std::memory_order_relaxed);
  return index;
}

// Standard normal CDF.
double normal_cdf(double z) { return 0.5 * std::erfc(-z / std::sqrt(2.0)); }

}  // namespace

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
    std::vector<std::uint64_t> counts;     // total_bins
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
            float_floor(h.edges[e]);
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
    std::fill(s.sums.begin(), s.sums.end(), 0.0);
    std::fill(s.nonfinite.begin(), s.nonfinite.end(), 0);
    std::fill(s.below.begin(), s.below.end(), 0);
    std::fill(s.unseen.begin(), s.unseen.end(), 0);
    s.rows = s.prediction_rows = s.prediction_nonfinite = 0;
    s.prediction_sum = 0;
  }

  // One input row (width values) into a stripe, under its mutex.
  void observe_row(Stripe& s, const float* row) {
    if (undo_normalization) {
      float* raw = s.raw.data();
      for (std::int64_t e = 0; e < width; ++e) {
        const auto j = static_cast<std::size_t>(e % norm_size);
        raw[e] = row[e] * norm_std[j] + norm_mean[j];
      }
      row = raw;
    }
    ++s.rows;
    const std::int64_t kn = numeric;
    if (kn > 0) {
      const float* v = row;
      if (!identity) {
        float* g = s.values.data();
        for (std::int64_t k = 0; k < kn; ++k) g[k] = row[element[static_cast<std::size_t>(k)]];
        v = g;
      }
      // Non-finite values: any exponent of all ones.
      std::uint32_t bad = 0;
#pragma omp simd reduction(| : bad)
      for (std::int64_t k = 0; k < kn; ++k) {
        std::uint32_t bits;
        std::memcpy(&bits, v + k, sizeof bits);
        bad |= (bits & 0x7f800000u) == 0x7f800000u ? 1u : 0u;
      }
      // bin[k] = the number of edges below v[k]: blocks of 16 features held in registers
      // while the edges go by (+inf padding never counts).
      std::int32_t* b = s.bins.data();
      const float* ed0 = edges.data();
      const std::int64_t full = kn / 16 * 16;
      for (std::int64_t k0 = 0; k0 < full; k0 += 16) {
        std::int32_t acc[16] = {};
        for (std::int64_t e = 0; e < max_edges; ++e) {
          const float* ed = ed0 + e * padded + k0;
#pragma omp simd
          for (int j = 0; j < 16; ++j) acc[j] += v[k0 + j] > ed[j] ? 1 : 0;
        }
        for (int j = 0; j < 16; ++j) b[k0 + j] = acc[j];
      }
      for (std::int64_t k = full; k < kn; ++k) {
        std::int32_t acc = 0;
        for (std::int64_t e = 0; e < max_edges; ++e) acc += v[k] > ed0[e * padded + k] ? 1 : 0;
        b[k] = acc;
      }
      std::uint64_t* counts = s.counts.data();
      const std::uint32_t* bb = bin_base.data();
      double* sums = s.sums.data();
      if (bad == 0) {
        for (std::int64_t k = 0; k < kn; ++k) ++counts[bb[k] + static_cast<std::uint32_t>(b[k])];
        const float* mins = min_value.data();
        std::uint64_t* below = s.below.data();
#pragma omp simd
        for (std::int64_t k = 0; k < kn; ++k) {
          sums[k] += static_cast<double>(v[k]);
          below[k] += v[k] < mins[k] ? 1u : 0u;
        }
      } else {
        for (std::int64_t k = 0; k < kn; ++k) {
          if (!is_finite_bits(v[k])) {
            ++s.nonfinite[feature_of[static_cast<std::size_t>(k)]];
            continue;
          }
          ++counts[bb[k] + static_cast<std::uint32_t>(b[k])];
          sums[k] += static_cast<double>(v[k]);
          if (b[k] == 0 && v[k] < min_value[static_cast<std::size_t>(k)])
            ++s.below[static_cast<std::size_t>(k)];
        }
      }
    }
    for (std::size_t c = 0; c < categorical.size(); ++c) {
      const std::int64_t k = internal::category_of(profile.features[categorical[c]], row);
      if (k < 0)
        ++s.unseen[c];
      else
        ++s.counts[category_base[c] + static_cast<std::uint32_t>(k)];
    }
  }

  void observe_prediction(Stripe& s, const float* y, std::int64_t cols) {
    if (profile.predicted == PredictionKind::classes) {
      ++s.prediction_rows;
      ++s.counts[prediction_base + static_cast<std::uint32_t>(internal::predicted_class(y, cols))];
    } else {
      const float v = y[0];
      if (!is_finite_bits(v)) {
        ++s.prediction_nonfinite;
        return;
      }
      ++s.prediction_rows;
      s.prediction_sum += v;
      ++s.counts[prediction_base + static_cast<std::uint32_t>(profile.prediction_histogram.bin(v))];
    }
  }

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
      for (std::size_t i = 0; i < t.counts.size(); ++i) t.counts[i] += s.counts[i];
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
    d.test = ks ? test_ks : test_chi2;
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
    r.created = now_utc();
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
          d.test = test_ks;
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
      m.p_value = normal_cdf(z);
    } else {
      // H0: mse <= reference + tolerance; z test with the squared errors' own variance.
      const double bound = m.reference + options.decay_tolerance;
      const double var = std::max(m.sum_sq / n - m.live * m.live, 1e-300);
      const double z = (m.live - bound) / std::sqrt(var / n);
      m.p_value = 1 - normal_cdf(z);
    }
    m.decayed = m.labelled >= options.decay_min_labels && m.p_value < options.decay_alpha;
    return m;
  }

  Stripe& my_stripe() { return *stripes[thread_index() % stripes.size()]; }
};

Monitor::Monitor(Profile profile, MonitorOptions options)
    : impl_(std::make_unique<Impl>(std::move(profile), options)) {}

Monitor::Monitor(const infer::Model& model, MonitorOptions options)
    : impl_(std::make_unique<Impl>(Profile::from_model(model), options)) {
  const ModelMetadata& meta = model.metadata();
  impl_->model_name = meta.name;
  impl_->model_version = meta.version;
  impl_->model_hash = model.content_hash();
  if (options.inputs_preprocessed)
    for (const Normalization& n : meta.preprocessing)
      if (n.input == impl_->profile.input) impl_->set_normalization(n);
}

Monitor::~Monitor() = default;
Monitor::Monitor(Monitor&&) noexcept = default;
Monitor& Monitor::operator=(Monitor&&) noexcept = default;

const Profile& Monitor::profile() const { return impl_->profile; }
const MonitorOptions& Monitor::options() const { return impl_->options; }

void Monitor::observe(const Feeds& feeds, std::span<const Tensor> outputs,
                      std::span<const std::string> output_names) {
  Impl& m = *impl_;
  const Tensor* x = nullptr;
  for (const auto& [name, t] : feeds)
    if (name == m.profile.input) x = &t;
  if (x == nullptr)
    throw NameError("monitor: no feed named '" + m.profile.input + "' (the profile's input)");
  if (x->dtype() != DType::f32)
    throw DTypeError("monitor: input '" + m.profile.input + "' must be f32");
  if (x->rank() < 1)
    throw ShapeError("monitor: input '" + m.profile.input + "' has no batch dimension");
  const std::int64_t n = x->dim(0);
  if (n == 0) return;
  if (x->numel() != n * m.width)
    throw ShapeError("monitor: input '" + m.profile.input + "' rows hold " +
                     std::to_string(x->numel() / n) + " values; the profile has " +
                     std::to_string(m.width));
  const Tensor* y = nullptr;
  std::int64_t cols = 1;
  if (m.profile.predicted != PredictionKind::none && !outputs.empty()) {
    if (output_names.empty()) {
      y = &outputs[0];
    } else {
      if (output_names.size() != outputs.size())
        throw ValueError("monitor: " + std::to_string(output_names.size()) + " output names for " +
                         std::to_string(outputs.size()) + " outputs");
      for (std::size_t i = 0; i < outputs.size(); ++i)
        if (output_names[i] == m.profile.output) y = &outputs[i];
      if (y == nullptr)
        throw NameError("monitor: no output named '" + m.profile.output +
                        "' (the profile's output)");
    }
    if (y->dtype() != DType::f32)
      throw DTypeError("monitor: output '" + m.profile.output + "' must be f32");
    if (y->rank() < 1 || y->dim(0) != n)
      throw ShapeError("monitor: output '" + m.profile.output +
                       "' does not have one row per input row");
    cols = y->numel() / n;
    const bool fits = m.profile.predicted == PredictionKind::classes
                          ? (cols == 1 && m.profile.class_counts.size() == 2) ||
                                cols == static_cast<std::int64_t>(m.profile.class_counts.size())
                          : cols == 1;
    if (!fits)
      throw ShapeError("monitor: output '" + m.profile.output + "' rows hold " +
                       std::to_string(cols) + " values; the profile has " +
                       std::to_string(m.profile.class_counts.size()) + " classes");
  }
  const std::uint64_t every = m.options.sample_every;
  const std::uint64_t start =
      m.rows_seen.fetch_add(static_cast<std::uint64_t>(n), std::memory_order_relaxed);
  std::uint64_t first = (every - start % every) % every;
  if (first >= static_cast<std::uint64_t>(n)) return;
  Tensor xc, yc;
  if (!x->is_contiguous()) {
    xc = x->contiguous();
    x = &xc;
  }
  if (y != nullptr && !y->is_contiguous()) {
    yc = y->contiguous();
    y = &yc;
  }
  const float* xd = x->data<float>();
  const float* yd = y != nullptr ? y->data<float>() : nullptr;
  Impl::Stripe& s = m.my_stripe();
  std::lock_guard lock(s.mutex);
  for (std::uint64_t r = first; r < static_cast<std::uint64_t>(n); r += every) {
    m.observe_row(s, xd + static_cast<std::int64_t>(r) * m.width);
    if (yd != nullptr) m.observe_prediction(s, yd + static_cast<std::int64_t>(r) * cols, cols);
  }
}

std::vector<Tensor> Monitor::run(const infer::Model& model, const Feeds& feeds) {
  std::vector<Tensor> out = model.run(feeds);
  if (impl_->profile.predicted == PredictionKind::none) {
    observe(feeds);
    return out;
  }
  const auto& specs = model.outputs();
  for (std::size_t i = 0; i < specs.size() && i < out.size(); ++i)
    if (specs[i].name == impl_->profile.output) {
      observe(feeds, std::span<const Tensor>(&out[i], 1));
      return out;
    }
  throw NameError("monitor: the model has no output named '" + impl_->profile.output + "'");
}

void Monitor::observe_labels(std::span<const std::int64_t> predicted,
                             std::span<const std::int64_t> labels) {
  if (predicted.size() != labels.size())
    throw ShapeError("monitor: " + std::to_string(predicted.size()) + " predictions for " +
                     std::to_string(labels.size()) + " labels");
  if (impl_->profile.predicted == PredictionKind::values)
    throw ValueError("monitor: the model predicts values; give predictions and labels as doubles");
  std::uint64_t correct = 0;
  for (std::size_t i = 0; i < labels.size(); ++i) correct += predicted[i] == labels[i] ? 1 : 0;
  std::lock_guard lock(impl_->label_mutex);
  impl_->labelled += labels.size();
  impl_->label_sum += static_cast<double>(correct);
  impl_->label_sum_sq += static_cast<double>(correct);
}

void Monitor::observe_labels(std::span<const double> predicted, std::span<const double> labels) {
  if (predicted.size() != labels.size())
    throw ShapeError("monitor: " + std::to_string(predicted.size()) + " predictions for " +
                     std::to_string(labels.size()) + " labels");
  if (impl_->profile.predicted == PredictionKind::classes)
    throw ValueError(
        "monitor: the model predicts classes; give predictions and labels as class indices");
  double sum = 0, sum_sq = 0;
  for (std::size_t i = 0; i < labels.size(); ++i) {
    if (!std::isfinite(predicted[i]) || !std::isfinite(labels[i]))
      throw ValueError("monitor: prediction or label " + std::to_string(i) + " is not finite");
    const double e = (predicted[i] - labels[i]) * (predicted[i] - labels[i]);
    sum += e;
    sum_sq += e * e;
  }
  std::lock_guard lock(impl_->label_mutex);
  impl_->labelled += labels.size();
  impl_->label_sum += sum;
  impl_->label_sum_sq += sum_sq;
}

DriftReport Monitor::report() const { return impl_->report(); }

void Monitor::write_snapshot(const std::string& path) const {
  const std::string json = internal::drift_report_json(report(), true);
  kiln::internal::write_file_atomically(
      path, std::span(reinterpret_cast<const std::uint8_t*>(json.data()), json.size()));
}

void Monitor::reset() {
  for (const auto& s : impl_->stripes) {
    std::lock_guard lock(s->mutex);
    impl_->clear_stripe(*s);
  }
  impl_->rows_seen.store(0, std::memory_order_relaxed);
  std::lock_guard lock(impl_->label_mutex);
  impl_->labelled = 0;
  impl_->label_sum = impl_->label_sum_sq = 0;
}

void Monitor::merge(const DriftReport& snap) {
  Impl& m = *impl_;
  const Profile& p = m.profile;
  if (snap.features.size() != p.features.size())
    throw ValueError("monitor: the snapshot has " + std::to_string(snap.features.size()) +
                     " features; the profile has " + std::to_string(p.features.size()));
  std::size_t k = 0, c = 0;
  for (std::size_t i = 0; i < p.features.size(); ++i) {
    const FeatureProfile& f = p.features[i];
    const FeatureDrift& d = snap.features[i];
    const std::size_t bins = f.kind == FeatureKind::numeric
                                 ? std::max<std::size_t>(f.histogram.counts.size(), 1)
                                 : f.categories.size();
    if (d.name != f.name || d.kind != f.kind || d.live_counts.size() != bins)
      throw ValueError("monitor: snapshot feature " + std::to_string(i) + " ('" + d.name +
                       "') does not match the profile's '" + f.name + "'");
  }
  const std::size_t pred_bins = p.predicted == PredictionKind::classes ? p.class_counts.size()
                                : p.predicted == PredictionKind::values
                                    ? p.prediction_histogram.counts.size()
                                    : 0;
  if (pred_bins > 0 && !snap.prediction.live_counts.empty() &&
      snap.prediction.live_counts.size() != pred_bins)
    throw ValueError("monitor: the snapshot's prediction counts do not match the profile");
  Impl::Stripe& s = *m.stripes[0];
  {
    std::lock_guard lock(s.mutex);
    for (std::size_t i = 0; i < p.features.size(); ++i) {
      const FeatureProfile& f = p.features[i];
      const FeatureDrift& d = snap.features[i];
      s.nonfinite[i] += d.nonfinite;
      if (f.kind == FeatureKind::numeric) {
        for (std::size_t b = 0; b < d.live_counts.size(); ++b)
          s.counts[m.bin_base[k] + b] += d.live_counts[b];
        s.sums[k] += d.live_mean * static_cast<double>(d.rows);
        s.below[k] += d.below_min;
        ++k;
      } else {
        for (std::size_t b = 0; b < d.live_counts.size(); ++b)
          s.counts[m.category_base[c] + b] += d.live_counts[b];
        s.unseen[c] += d.unseen_category;
        ++c;
      }
    }
    if (pred_bins > 0 && !snap.prediction.live_counts.empty()) {
      for (std::size_t b = 0; b < pred_bins; ++b)
        s.counts[m.prediction_base + b] += snap.prediction.live_counts[b];
      s.prediction_rows += snap.prediction.rows;
      s.prediction_nonfinite += snap.prediction.nonfinite;
      s.prediction_sum += snap.prediction.live_mean * static_cast<double>(snap.prediction.rows);
    }
    s.rows += snap.rows_observed;
  }
  m.rows_seen.fetch_add(snap.rows_seen, std::memory_order_relaxed);
  std::lock_guard lock(m.label_mutex);
  m.labelled += snap.labels.labelled;
  m.label_sum += snap.labels.sum;
  m.label_sum_sq += snap.labels.sum_sq;
}

const char* psi_level_name(PsiLevel level) {
  switch (level) {
    case PsiLevel::moderate:
      return "moderate";
    case PsiLevel::significant:
      return "significant";
    case PsiLevel::none:
      break;
  }
  return "none";
}

}  // namespace kiln::monitor
