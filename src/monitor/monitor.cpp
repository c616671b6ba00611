// kiln::monitor::Monitor (kiln/monitor/monitor.hpp): set-up, reports, labels, snapshots and
// merging (compiled for size). The request path, observe(), is in monitor_observe.cpp; the
// state both share (Monitor::Impl: live counts per reference bin in fixed memory, in
// stripes that report() sums) is in monitor_impl.hpp.
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
#include "monitor/monitor_impl.hpp"
#include "monitor/profile_internal.hpp"
#include "monitor/snapshot_json.hpp"
#include "monitor/stats_internal.hpp"

namespace kiln::monitor {
using namespace detail;

Monitor::Monitor(Profile profile, MonitorOptions options)
    : impl_(std::make_unique<Impl>(std::move(profile), options)) {}

namespace {

// The model's profile, after checking that it describes one of the model's inputs.
Profile profile_of(const infer::Model& model) {
  Profile p = Profile::from_model(model);
  for (const TensorSpec& spec : model.inputs()) {
    if (spec.name != p.input) continue;
    std::int64_t width = 1;
    const auto& dims = spec.shape.dims();
    for (std::size_t i = 1; i < dims.size(); ++i) width *= dims[i];
    if (dims.empty() || width != internal::row_width(p))
      throw ShapeError("monitor: the profile of model '" + model.metadata().name +
                       "' has rows of " + std::to_string(internal::row_width(p)) +
                       " values; input '" + p.input + "' has " + std::to_string(width));
    return p;
  }
  throw NameError("monitor: model '" + model.metadata().name + "' has no input named '" + p.input +
                  "' (the profile's input)");
}

}  // namespace

Monitor::Monitor(const infer::Model& model, MonitorOptions options)
    : impl_(std::make_unique<Impl>(profile_of(model), options)) {
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
