// tensor_stats: moments, range, norm, zeros and a histogram of a float tensor, and the
// JSON helpers of the run folder files.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "io/model_data.hpp"
#include "kiln/core/error.hpp"
#include "report/record_impl.hpp"

namespace kiln::report {
namespace internal {
namespace {

// The definition, element by element; NaN and infinities are skipped.
template <typename T>
TensorStats stats_checked(const T* x, std::int64_t n, std::int64_t bins) {
  TensorStats s;
  s.count = n;
  s.histogram.assign(static_cast<std::size_t>(bins), 0);
  // Pass 1: finite count, sum, sum of squares, range, zeros.
  std::int64_t finite = 0, zeros = 0;
  double sum = 0.0, sumsq = 0.0;
  double lo = std::numeric_limits<double>::infinity();
  double hi = -std::numeric_limits<double>::infinity();
  for (std::int64_t i = 0; i < n; ++i) {
    const double v = static_cast<double>(x[i]);
    if (!std::isfinite(v)) continue;
    ++finite;
    sum += v;
    sumsq += v * v;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
    zeros += v == 0.0;
  }
  s.nonfinite = n - finite;
  if (finite == 0) {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    s.mean = s.std = s.min = s.max = s.norm = s.zero_fraction = nan;
    s.histogram_lo = s.histogram_hi = nan;
    return s;
  }
  const double mean = sum / static_cast<double>(finite);
  // Pass 2: squared deviations (around the mean) and the histogram.
  double dev = 0.0;
  const double scale = hi > lo ? static_cast<double>(bins) / (hi - lo) : 0.0;
  auto* counts = s.histogram.data();
  for (std::int64_t i = 0; i < n; ++i) {
    const double v = static_cast<double>(x[i]);
    if (!std::isfinite(v)) continue;
    dev += (v - mean) * (v - mean);
    counts[std::min(static_cast<std::int64_t>((v - lo) * scale), bins - 1)] += 1;
  }
  s.mean = mean;
  s.std = std::sqrt(dev / static_cast<double>(finite));
  s.min = lo;
  s.max = hi;
  s.norm = std::sqrt(sumsq);
  s.zero_fraction = static_cast<double>(zeros) / static_cast<double>(finite);
  s.histogram_lo = lo;
  s.histogram_hi = hi;
  return s;
}

// The same for floats, in loops the compiler vectorises (OpenMP simd reductions); a tensor
// holding a NaN or an infinity (its sum is then not finite: finite floats cannot overflow a
// double sum) goes to stats_checked.
TensorStats stats_fast(const float* x, std::int64_t n, std::int64_t bins) {
  // Pass 1: range, sum and sum of squares.
  float mn = std::numeric_limits<float>::infinity();
  float mx = -std::numeric_limits<float>::infinity();
  double total = 0.0, total_sq = 0.0;
#pragma omp simd reduction(min : mn) reduction(max : mx) reduction(+ : total, total_sq)
  for (std::int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    mn = std::min(mn, v);
    mx = std::max(mx, v);
    const auto d = static_cast<double>(v);
    total += d;
    total_sq += d * d;
  }
  if (n == 0 || !std::isfinite(total) || !std::isfinite(total_sq)) return stats_checked(x, n, bins);

  // Pass 2: squared deviations, zeros and the histogram, a block at a time: the bins of a
  // block are computed in lanes, then counted into four interleaved histograms (so that
  // increments of one bin do not wait on each other).
  TensorStats s;
  s.count = n;
  s.histogram.assign(static_cast<std::size_t>(bins), 0);
  const double mean = total / static_cast<double>(n);
  const double lo = mn, hi = mx;
  const double scale = hi > lo ? static_cast<double>(bins) / (hi - lo) : 0.0;
  const std::int64_t last = bins - 1;
  double dev = 0.0;
  std::int64_t zeros = 0;
  constexpr std::int64_t block = 512;
  std::int64_t index[block];
  std::vector<std::int64_t> part(static_cast<std::size_t>(4 * bins), 0);
  std::int64_t* p = part.data();
  for (std::int64_t b0 = 0; b0 < n; b0 += block) {
    const std::int64_t m = std::min(block, n - b0);
    const float* xb = x + b0;
#pragma omp simd reduction(+ : dev, zeros)
    for (std::int64_t i = 0; i < m; ++i) {
      const auto v = static_cast<double>(xb[i]);
      dev += (v - mean) * (v - mean);
      zeros += xb[i] == 0.0f ? 1 : 0;
      const auto b = static_cast<std::int64_t>((v - lo) * scale);
      index[i] = b < last ? b : last;
    }
    const std::int64_t four = m - m % 4;
    for (std::int64_t i = 0; i < four; i += 4) {
      ++p[index[i]];
      ++p[bins + index[i + 1]];
      ++p[2 * bins + index[i + 2]];
      ++p[3 * bins + index[i + 3]];
    }
    for (std::int64_t i = four; i < m; ++i) ++p[index[i]];
  }
  auto* counts = s.histogram.data();
  for (std::int64_t b = 0; b < bins; ++b)
    counts[b] = p[b] + p[bins + b] + p[2 * bins + b] + p[3 * bins + b];
  s.mean = mean;
  s.std = std::sqrt(dev / static_cast<double>(n));
  s.min = lo;
  s.max = hi;
  s.norm = std::sqrt(total_sq);
  s.zero_fraction = static_cast<double>(zeros) / static_cast<double>(n);
  s.histogram_lo = lo;
  s.histogram_hi = hi;
  return s;
}

}  // namespace

TensorStats float_stats(const float* data, std::int64_t n, std::int64_t bins) {
  return stats_fast(data, n, bins);
}

Json number(double v) { return std::isfinite(v) ? Json(v) : Json(nullptr); }

void append_number(std::string& out, double v) {
  if (!std::isfinite(v)) {
    out += "null";
    return;
  }
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

void append_string(std::string& out, std::string_view s) {
  out += '"';
  for (const char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

void write_json_file(const std::string& path, const Json& j) {
  const std::string text = j.dump(1) + "\n";
  kiln::internal::write_file_atomically(
      path, std::span(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
}

Json read_json_file(const std::string& path) {
  const std::vector<std::uint8_t> bytes = kiln::internal::read_file(path);
  try {
    return Json::parse(bytes.begin(), bytes.end());
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(path + ": not valid JSON: " + e.what());
  }
}

void append_stats(std::string& out, const TensorStats& s) {
  out += ",\"count\":";
  out += std::to_string(s.count);
  out += ",\"nonfinite\":";
  out += std::to_string(s.nonfinite);
  const std::pair<const char*, double> values[] = {
      {",\"mean\":", s.mean}, {",\"std\":", s.std},   {",\"min\":", s.min},
      {",\"max\":", s.max},   {",\"norm\":", s.norm}, {",\"zero_fraction\":", s.zero_fraction}};
  for (const auto& [key, v] : values) {
    out += key;
    append_number(out, v);
  }
  out += ",\"histogram\":{\"lo\":";
  append_number(out, s.histogram_lo);
  out += ",\"hi\":";
  append_number(out, s.histogram_hi);
  out += ",\"counts\":[";
  for (std::size_t i = 0; i < s.histogram.size(); ++i) {
    if (i) out += ',';
    out += std::to_string(s.histogram[i]);
  }
  out += "]}";
}

JsonLines::~JsonLines() {
  if (fd_ >= 0) ::close(fd_);
}

void JsonLines::open(const std::string& path, bool truncate) {
  if (fd_ >= 0) ::close(fd_);
  path_ = path;
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | (truncate ? O_TRUNC : 0),
               0644);
  if (fd_ < 0) throw IoError(path + ": cannot open for appending: " + std::strerror(errno));
  // Cut a last line that a crash left without its newline.
  const off_t size = ::lseek(fd_, 0, SEEK_END);
  if (size <= 0) return;
  off_t keep = size;
  char c = 0;
  while (keep > 0) {
    if (::pread(fd_, &c, 1, keep - 1) != 1)
      throw IoError(path + ": cannot read: " + std::strerror(errno));
    if (c == '\n') break;
    --keep;
  }
  if (keep != size && ::ftruncate(fd_, keep) != 0)
    throw IoError(path + ": cannot cut its partial last line: " + std::strerror(errno));
}

void JsonLines::append(std::string& line) {
  if (fd_ < 0) throw IoError("run recorder: a JSON Lines file is not open");
  line += '\n';
  const char* p = line.data();
  std::size_t left = line.size();
  while (left > 0) {
    const ssize_t w = ::write(fd_, p, left);
    if (w < 0) {
      if (errno == EINTR) continue;
      throw IoError(path_ + ": cannot append: " + std::strerror(errno));
    }
    p += w;
    left -= static_cast<std::size_t>(w);
  }
}

}  // namespace internal

TensorStats tensor_stats(const Tensor& t, std::int64_t bins) {
  if (bins < 1)
    throw ValueError("tensor_stats: bins must be at least 1, got " + std::to_string(bins));
  if (!t.defined()) throw ValueError("tensor_stats: an undefined tensor");
  const Tensor c = t.is_contiguous() ? t : t.contiguous();
  if (c.dtype() == DType::f32) return internal::float_stats(c.data<float>(), c.numel(), bins);
  if (c.dtype() == DType::f64) return internal::stats_checked(c.data<double>(), c.numel(), bins);
  throw ValueError("tensor_stats: a float tensor is needed, got " +
                   std::string(to_string(c.dtype())) + " " + c.shape().str());
}

}  // namespace kiln::report
