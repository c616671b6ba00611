// tensor_stats: moments, range, norm, zeros and a histogram of a float tensor, and the
// JSON helpers of the run folder files.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <ctime>
#include <limits>
#include <string>

#include "io/model_data.hpp"
#include "kiln/core/error.hpp"
#include "report/record_impl.hpp"

namespace kiln::report {
namespace internal {
namespace {

template <typename T>
TensorStats stats_of(const T* x, std::int64_t n, std::int64_t bins) {
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
  // Pass 2: squared deviations (exact around the mean) and the histogram.
  double dev = 0.0;
  const double width = hi - lo;
  const auto nbins = static_cast<double>(bins);
  auto* counts = s.histogram.data();
  for (std::int64_t i = 0; i < n; ++i) {
    const double v = static_cast<double>(x[i]);
    if (!std::isfinite(v)) continue;
    dev += (v - mean) * (v - mean);
    // Bin floor((v - lo) / (hi - lo) * bins); v == hi goes into the last bin.
    const auto b = width > 0.0 ? static_cast<std::int64_t>((v - lo) / width * nbins) : 0;
    counts[std::min(b, bins - 1)] += 1;
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

}  // namespace

TensorStats float_stats(const float* data, std::int64_t n, std::int64_t bins) {
  return stats_of(data, n, bins);
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

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
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

void add_stats(Json& e, const TensorStats& s) {
  e["count"] = s.count;
  e["nonfinite"] = s.nonfinite;
  e["mean"] = number(s.mean);
  e["std"] = number(s.std);
  e["min"] = number(s.min);
  e["max"] = number(s.max);
  e["norm"] = number(s.norm);
  e["zero_fraction"] = number(s.zero_fraction);
  e["histogram"] = {
      {"lo", number(s.histogram_lo)}, {"hi", number(s.histogram_hi)}, {"counts", s.histogram}};
}

JsonLines::~JsonLines() {
  if (fd_ >= 0) ::close(fd_);
}

void JsonLines::open(const std::string& path) {
  if (fd_ >= 0) ::close(fd_);
  path_ = path;
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
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
  if (c.dtype() == DType::f32) return internal::stats_of(c.data<float>(), c.numel(), bins);
  if (c.dtype() == DType::f64) return internal::stats_of(c.data<double>(), c.numel(), bins);
  throw ValueError("tensor_stats: a float tensor is needed, got " +
                   std::string(to_string(c.dtype())) + " " + c.shape().str());
}

}  // namespace kiln::report
