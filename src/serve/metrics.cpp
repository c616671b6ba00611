// The server's metrics in the Prometheus text format 0.0.4 (docs/serving.md "Metrics").
// Hit on every request, so lock-light: each family keeps its series in a map behind a
// shared mutex that is taken exclusively only when a new label set appears; the counts
// themselves are atomics.
#include <array>
#include <atomic>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <map>
#include <shared_mutex>
#include <string>

#include "serve/serve_internal.hpp"

namespace kiln::serve::detail {
namespace {

constexpr std::array<double, 14> duration_bounds{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                 0.1,    0.25,  0.5,    1,     2.5,  5,     10};
constexpr std::array<double, 11> size_bounds{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};

/// A label value with \\, \" and \n escaped.
std::string escape(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

/// A sample value: shortest round-trip decimal, or NaN / +Inf / -Inf.
std::string number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buffer[64];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof(buffer), v);
  return std::string(buffer, end);
}

/// A bucket bound as clients write it ("0.0005", "1024").
std::string bound_text(double v) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%g", v);
  return buffer;
}

/// {k="v",...} from already escaped pairs.
using LabelList = std::vector<std::pair<std::string_view, std::string>>;
std::string braces(const LabelList& labels) {
  if (labels.empty()) return "";
  std::string out = "{";
  for (std::size_t i = 0; i < labels.size(); ++i) {
    if (i) out += ',';
    out += std::string(labels[i].first) + "=\"" + escape(labels[i].second) + "\"";
  }
  return out + "}";
}

void header(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

template <std::size_t N>
struct Histogram {
  explicit Histogram(const std::array<double, N>& b) : bounds(b) {}
  const std::array<double, N>& bounds;
  std::array<std::atomic<std::uint64_t>, N + 1> buckets{};  // the last: above every bound
  std::atomic<std::uint64_t> count{0};
  std::atomic<double> sum{0};

  void observe(double v) {
    std::size_t i = 0;
    while (i < N && !(v <= bounds[i])) ++i;
    buckets[i].fetch_add(1, std::memory_order_relaxed);
    sum.fetch_add(v, std::memory_order_relaxed);
    count.fetch_add(1, std::memory_order_relaxed);
  }

  void write(std::string& out, std::string_view name, const LabelList& labels) const {
    // Read the buckets first and derive the count from them, so the +Inf bucket equals
    // _count even while other threads observe.
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i <= N; ++i) {
      cumulative += buckets[i].load(std::memory_order_relaxed);
      LabelList with = labels;
      with.emplace_back("le", i < N ? bound_text(bounds[i]) : "+Inf");
      out += std::string(name) + "_bucket" + braces(with) + " " + std::to_string(cumulative) + "\n";
    }
    out += std::string(name) + "_sum" + braces(labels) + " " +
           number(sum.load(std::memory_order_relaxed)) + "\n";
    out += std::string(name) + "_count" + braces(labels) + " " + std::to_string(cumulative) + "\n";
  }
};

/// Series of one family by label values (a vector of strings), created on first use.
template <class Value>
class Family {
 public:
  template <class... Args>
  Value& at(const std::vector<std::string>& key, Args&&... args) {
    {
      std::shared_lock lock(mutex_);
      auto it = series_.find(key);
      if (it != series_.end()) return *it->second;
    }
    std::unique_lock lock(mutex_);
    auto& slot = series_[key];
    if (!slot) slot = std::make_unique<Value>(std::forward<Args>(args)...);
    return *slot;
  }
  template <class F>
  void each(F&& f) const {
    std::shared_lock lock(mutex_);
    for (const auto& [key, value] : series_) f(key, *value);
  }

 private:
  mutable std::shared_mutex mutex_;
  std::map<std::vector<std::string>, std::unique_ptr<Value>> series_;
};

using Counter = std::atomic<std::uint64_t>;

}  // namespace

struct Metrics::Impl {
  Family<Counter> requests;                           // model, route, code
  Family<Histogram<duration_bounds.size()>> latency;  // model, route
  Family<Histogram<size_bounds.size()>> batch_rows;   // model
  Family<Histogram<size_bounds.size()>> batch_requests;
  Family<Histogram<duration_bounds.size()>> batch_seconds;
  Family<Counter> reloads;  // model, result
};

Metrics::Metrics() : impl_(std::make_unique<Impl>()) {}
Metrics::~Metrics() = default;

void Metrics::request(std::string_view model, std::string_view route, int status, double seconds) {
  std::string m(model), r(route);
  impl_->requests.at({m, r, std::to_string(status)}).fetch_add(1, std::memory_order_relaxed);
  impl_->latency.at({m, r}, duration_bounds).observe(seconds);
}

void Metrics::batch(std::string_view model, std::int64_t rows, std::int64_t requests,
                    double seconds) {
  std::vector<std::string> key{std::string(model)};
  impl_->batch_rows.at(key, size_bounds).observe(static_cast<double>(rows));
  impl_->batch_requests.at(key, size_bounds).observe(static_cast<double>(requests));
  impl_->batch_seconds.at(key, duration_bounds).observe(seconds);
}

void Metrics::reload(std::string_view model, bool accepted) {
  impl_->reloads.at({std::string(model), accepted ? "accepted" : "refused"})
      .fetch_add(1, std::memory_order_relaxed);
}

std::string Metrics::prometheus(const std::vector<const ServedModel*>& models,
                                std::size_t queued) const {
  std::string out;
  header(out, "kiln_requests_total", "counter", "Requests answered, by model, route and status.");
  impl_->requests.each([&](const std::vector<std::string>& k, const Counter& c) {
    out += "kiln_requests_total" + braces({{"model", k[0]}, {"route", k[1]}, {"code", k[2]}}) +
           " " + std::to_string(c.load(std::memory_order_relaxed)) + "\n";
  });
  header(out, "kiln_request_duration_seconds", "histogram",
         "Time from a request's arrival to its answer, in seconds.");
  impl_->latency.each([&](const std::vector<std::string>& k, const auto& h) {
    h.write(out, "kiln_request_duration_seconds", {{"model", k[0]}, {"route", k[1]}});
  });
  header(out, "kiln_batch_size", "histogram", "Rows per batch run.");
  impl_->batch_rows.each([&](const std::vector<std::string>& k, const auto& h) {
    h.write(out, "kiln_batch_size", {{"model", k[0]}});
  });
  header(out, "kiln_batch_requests", "histogram", "Requests per batch run.");
  impl_->batch_requests.each([&](const std::vector<std::string>& k, const auto& h) {
    h.write(out, "kiln_batch_requests", {{"model", k[0]}});
  });
  header(out, "kiln_batch_duration_seconds", "histogram", "Time a batch run took, in seconds.");
  impl_->batch_seconds.each([&](const std::vector<std::string>& k, const auto& h) {
    h.write(out, "kiln_batch_duration_seconds", {{"model", k[0]}});
  });
  header(out, "kiln_reloads_total", "counter",
         "New versions taken (accepted) or refused, by model.");
  impl_->reloads.each([&](const std::vector<std::string>& k, const Counter& c) {
    out += "kiln_reloads_total" + braces({{"model", k[0]}, {"result", k[1]}}) + " " +
           std::to_string(c.load(std::memory_order_relaxed)) + "\n";
  });
  header(out, "kiln_queue_depth", "gauge", "Requests waiting to run.");
  out += "kiln_queue_depth " + std::to_string(queued) + "\n";

  // Per model: one report per version serving, taken once so every family agrees.
  struct Entry {
    std::string name;
    std::shared_ptr<const LoadedVersion> version;
    std::optional<monitor::DriftReport> report;
  };
  std::vector<Entry> entries;
  for (const ServedModel* m : models) {
    if (!m) continue;
    Entry e{m->name(), m->current(), std::nullopt};
    if (!e.version) continue;
    if (e.version->monitor) e.report = e.version->monitor->report();
    entries.push_back(std::move(e));
  }
  header(out, "kiln_model_info", "gauge", "The version serving, by model (always 1).");
  for (const Entry& e : entries)
    out += "kiln_model_info" +
           braces({{"model", e.name}, {"version", e.version->version}, {"hash", e.version->hash}}) +
           " 1\n";
  header(out, "kiln_model_monitored", "gauge",
         "1 when the version serving has a drift monitor (its file has a reference profile).");
  for (const Entry& e : entries)
    out += "kiln_model_monitored" + braces({{"model", e.name}, {"version", e.version->version}}) +
           (e.report ? " 1\n" : " 0\n");
  auto per_feature = [&](std::string_view name, std::string_view type, std::string_view help,
                         auto value) {
    header(out, name, type, help);
    for (const Entry& e : entries) {
      if (!e.report) continue;
      auto line = [&](const monitor::FeatureDrift& f) {
        out += std::string(name) +
               braces({{"model", e.name}, {"version", e.version->version}, {"feature", f.name}}) +
               " " + number(value(f)) + "\n";
      };
      for (const auto& f : e.report->features) line(f);
      if (e.report->prediction.rows > 0) line(e.report->prediction);
    }
  };
  per_feature("kiln_drift_psi", "gauge",
              "Population stability index of live values against the reference profile.",
              [](const monitor::FeatureDrift& f) { return f.psi; });
  per_feature("kiln_drift_p_value", "gauge",
              "p-value of the drift test (KS for numeric features, chi-squared for categories).",
              [](const monitor::FeatureDrift& f) { return f.p_value; });
  per_feature("kiln_drift_drifted", "gauge",
              "1 when the feature drifted (p-value below the corrected alpha).",
              [](const monitor::FeatureDrift& f) { return f.drifted ? 1.0 : 0.0; });
  header(out, "kiln_drift_rows", "gauge", "Rows the drift monitor observed.");
  for (const Entry& e : entries)
    if (e.report)
      out += "kiln_drift_rows" + braces({{"model", e.name}, {"version", e.version->version}}) +
             " " + std::to_string(e.report->rows_observed) + "\n";
  header(out, "kiln_drift_any", "gauge", "1 when any feature or the prediction drifted.");
  for (const Entry& e : entries)
    if (e.report)
      out += "kiln_drift_any" + braces({{"model", e.name}, {"version", e.version->version}}) +
             (e.report->drifted ? " 1\n" : " 0\n");
  header(out, "kiln_labelled_rows", "gauge", "Predictions labels were posted for (:feedback).");
  for (const Entry& e : entries)
    if (e.report)
      out += "kiln_labelled_rows" + braces({{"model", e.name}, {"version", e.version->version}}) +
             " " + std::to_string(e.report->labels.labelled) + "\n";
  header(out, "kiln_live_metric", "gauge",
         "The live metric over labelled predictions (accuracy or mse).");
  for (const Entry& e : entries)
    if (e.report && e.report->labels.labelled > 0)
      out += "kiln_live_metric" +
             braces({{"model", e.name},
                     {"version", e.version->version},
                     {"metric", e.report->labels.metric}}) +
             " " + number(e.report->labels.live) + "\n";
  header(out, "kiln_decay_alarm", "gauge",
         "1 when the live metric is significantly worse than the reference.");
  for (const Entry& e : entries)
    if (e.report && e.report->labels.labelled > 0)
      out += "kiln_decay_alarm" + braces({{"model", e.name}, {"version", e.version->version}}) +
             (e.report->labels.decayed ? " 1\n" : " 0\n");
  return out;
}

}  // namespace kiln::serve::detail
