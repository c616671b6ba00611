// The drift monitor's request path (kiln/monitor/monitor.hpp), compiled with the release flags
// (the rest of the monitor is compiled for size): Monitor::observe and the binning of a row.
// Every numeric feature's bin is found for the whole row at once: the features' edges are
// stored edge-major as floats (each rounded down, so v > float edge exactly when v > the
// double edge, for a float v), and bin[k] = the number of edges below v[k], counted for 16
// features at a time held in one vector register while the edges go by. Counts go into the
// calling thread's stripe (its own mutex); nothing is allocated per call.
#include <string>

#include "internal/nonfinite.hpp"
#include "kiln/core/error.hpp"
#include "monitor/monitor_impl.hpp"

namespace kiln::monitor {

using namespace detail;

// One input row (width values) into a stripe, under its mutex.
void Monitor::Impl::observe_row(Stripe& s, const float* row) {
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
    // Non-finite values: the branch-free pass over exponent bits TrainStep's check uses.
    double first_bad = 0;
    const bool bad = kiln::internal::first_nonfinite_of(v, kn, first_bad) >= 0;
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
    std::uint32_t* counts = s.recent.data();
    const std::uint32_t* bb = bin_base.data();
    double* sums = s.sums.data();
    if (!bad) {
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
      ++s.recent[category_base[c] + static_cast<std::uint32_t>(k)];
  }
}

void Monitor::Impl::observe_prediction(Stripe& s, const float* y, std::int64_t cols) {
  if (profile.predicted == PredictionKind::classes) {
    ++s.prediction_rows;
    ++s.recent[prediction_base + static_cast<std::uint32_t>(internal::predicted_class(y, cols))];
  } else {
    const float v = y[0];
    if (!is_finite_bits(v)) {
      ++s.prediction_nonfinite;
      return;
    }
    ++s.prediction_rows;
    s.prediction_sum += v;
    ++s.recent[prediction_base + static_cast<std::uint32_t>(profile.prediction_histogram.bin(v))];
  }
}

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
    Impl::make_room(s);
    m.observe_row(s, xd + static_cast<std::int64_t>(r) * m.width);
    if (yd != nullptr) m.observe_prediction(s, yd + static_cast<std::int64_t>(r) * cols, cols);
  }
}

}  // namespace kiln::monitor
