// Tensor's eager helpers: argmax, sum, mean, comparisons and printing. Plain loops over
// strided elements; for metrics and inspection, not for the graph's hot paths.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>
#include <ostream>
#include <string>
#include <vector>

#include "kiln/core/tensor.hpp"

namespace kiln {
namespace {

// Element at a storage offset (in elements), as double / as int64.
double load(const Tensor& t, std::int64_t off) {
  switch (t.dtype()) {
    case DType::f32:
      return static_cast<double>(static_cast<const float*>(t.raw())[off]);
    case DType::f64:
      return static_cast<const double*>(t.raw())[off];
    case DType::i32:
      return static_cast<double>(static_cast<const std::int32_t*>(t.raw())[off]);
    case DType::i64:
      return static_cast<double>(static_cast<const std::int64_t*>(t.raw())[off]);
  }
  return 0.0;
}

std::int64_t load_int(const Tensor& t, std::int64_t off) {
  return t.dtype() == DType::i32 ? static_cast<const std::int32_t*>(t.raw())[off]
                                 : static_cast<const std::int64_t*>(t.raw())[off];
}

void require_defined(const Tensor& t, const char* what) {
  if (!t.defined()) throw ValueError(std::string("Tensor::") + what + ": the tensor is empty");
}

std::int64_t normalize_axis(const Tensor& t, std::int64_t axis, const char* what) {
  const auto r = static_cast<std::int64_t>(t.rank());
  if (axis < -r || axis >= r)
    throw ShapeError(std::string("Tensor::") + what + ": axis " + std::to_string(axis) +
                     " is outside tensor " + t.shape().str());
  return axis < 0 ? axis + r : axis;
}

// Calls fn(outer_flat, offset of element 0 along the axis) for every position of the
// other axes (row-major); the axis itself is walked by the caller with its stride.
template <class Fn>
void for_each_lane(const Tensor& t, std::size_t axis, Fn&& fn) {
  std::vector<std::int64_t> dims, strides;
  for (std::size_t k = 0; k < t.rank(); ++k) {
    if (k == axis) continue;
    dims.push_back(t.dim(k));
    strides.push_back(t.strides()[k]);
  }
  std::int64_t n = 1;
  for (auto d : dims) n *= d;
  std::vector<std::int64_t> idx(dims.size(), 0);
  std::int64_t off = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    fn(i, off);
    for (std::size_t k = dims.size(); k-- > 0;) {
      if (++idx[k] < dims[k]) {
        off += strides[k];
        break;
      }
      off -= strides[k] * (dims[k] - 1);
      idx[k] = 0;
    }
  }
}

// Calls fn(offset) for every element in row-major order.
template <class Fn>
void for_each_element(const Tensor& t, Fn&& fn) {
  if (t.numel() == 0) return;
  if (t.rank() == 0) {
    fn(std::int64_t{0});
    return;
  }
  const std::size_t last = t.rank() - 1;
  const std::int64_t len = t.dim(last), stride = t.strides()[last];
  for_each_lane(t, last, [&](std::int64_t, std::int64_t base) {
    for (std::int64_t j = 0; j < len; ++j) fn(base + j * stride);
  });
}

// The shape of a reduction along `axis`.
Shape reduced_shape(const Tensor& t, std::size_t axis, bool keepdims) {
  std::vector<std::int64_t> dims;
  for (std::size_t k = 0; k < t.rank(); ++k) {
    if (k != axis)
      dims.push_back(t.dim(k));
    else if (keepdims)
      dims.push_back(1);
  }
  return Shape(dims);
}

enum class Cmp { eq, ne, lt, le, gt, ge };

template <class T>
bool holds(Cmp c, T a, T b) {
  switch (c) {
    case Cmp::eq:
      return a == b;
    case Cmp::ne:
      return a != b;
    case Cmp::lt:
      return a < b;
    case Cmp::le:
      return a <= b;
    case Cmp::gt:
      return a > b;
    case Cmp::ge:
      return a >= b;
  }
  return false;
}

const char* cmp_name(Cmp c) {
  switch (c) {
    case Cmp::eq:
      return "==";
    case Cmp::ne:
      return "!=";
    case Cmp::lt:
      return "<";
    case Cmp::le:
      return "<=";
    case Cmp::gt:
      return ">";
    case Cmp::ge:
      return ">=";
  }
  return "?";
}

Tensor compare(const Tensor& a, const Tensor& b, Cmp c) {
  if (!a.defined() || !b.defined())
    throw ValueError(std::string("Tensor ") + cmp_name(c) + ": an operand is an empty tensor");
  // numpy broadcasting, aligned at the last dimension.
  const std::size_t r = std::max(a.rank(), b.rank());
  std::vector<std::int64_t> out(r), sa(r, 0), sb(r, 0);
  for (std::size_t k = 0; k < r; ++k) {
    const std::size_t ka = k + a.rank() - r, kb = k + b.rank() - r;  // wrap when absent
    const bool has_a = k + a.rank() >= r, has_b = k + b.rank() >= r;
    const std::int64_t da = has_a ? a.dim(ka) : 1, db = has_b ? b.dim(kb) : 1;
    if (da != db && da != 1 && db != 1)
      throw ShapeError(std::string("Tensor ") + cmp_name(c) + ": shapes " + a.shape().str() +
                       " and " + b.shape().str() + " do not broadcast");
    out[k] = da == 1 ? db : da;
    if (has_a && da != 1) sa[k] = a.strides()[ka];
    if (has_b && db != 1) sb[k] = b.strides()[kb];
  }
  Tensor result = Tensor::zeros(Shape(out), DType::i32);
  auto* dst = result.data<std::int32_t>();
  const std::int64_t n = result.numel();
  const bool ints = is_integer(a.dtype()) && is_integer(b.dtype());
  std::vector<std::int64_t> idx(r, 0);
  std::int64_t oa = 0, ob = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    dst[i] = ints ? holds(c, load_int(a, oa), load_int(b, ob)) : holds(c, load(a, oa), load(b, ob));
    for (std::size_t k = r; k-- > 0;) {
      if (++idx[k] < out[k]) {
        oa += sa[k];
        ob += sb[k];
        break;
      }
      oa -= sa[k] * (out[k] - 1);
      ob -= sb[k] * (out[k] - 1);
      idx[k] = 0;
    }
  }
  return result;
}

Tensor compare(const Tensor& a, double b, Cmp c) {
  if (!a.defined())
    throw ValueError(std::string("Tensor ") + cmp_name(c) + ": the tensor is empty");
  return compare(a, Tensor::scalar(b, DType::f64), c);
}

// ---- printing

std::string format_value(const Tensor& t, std::int64_t off) {
  char buf[64];
  if (is_integer(t.dtype())) {
    std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(load_int(t, off)));
  } else {
    const double v = load(t, off);
    if (std::isnan(v))
      return "nan";
    else if (std::isinf(v))
      return v > 0 ? "inf" : "-inf";
    std::snprintf(buf, sizeof buf, "%.*g", t.dtype() == DType::f32 ? 6 : 10, v);
  }
  return buf;
}

struct Printer {
  const Tensor& t;
  bool abridged;
  std::int64_t edge;
  std::size_t width = 0;
  bool measure = true;
  std::string out;

  void cell(std::int64_t off) {
    std::string s = format_value(t, off);
    if (measure) {
      width = std::max(width, s.size());
    } else {
      if (s.size() < width) out.append(width - s.size(), ' ');
      out += s;
    }
  }

  // Dimension `k` starting at storage offset `off`; `indent` is k + 1 (after the brackets).
  void dim(std::size_t k, std::int64_t off) {
    const std::int64_t n = t.dim(k), stride = t.strides()[k];
    const bool cut = abridged && n > 2 * edge;
    out += "[";
    const bool innermost = k + 1 == t.rank();
    for (std::int64_t i = 0; i < n; ++i) {
      if (cut && i == edge) {
        if (innermost) {
          out += "..., ";
        } else {
          out += "...,\n";
          out.append(k + 1, ' ');
        }
        i = n - edge - 1;
        continue;
      }
      if (innermost)
        cell(off + i * stride);
      else
        dim(k + 1, off + i * stride);
      if (i + 1 < n) {
        out += ",";
        if (innermost) {
          out += " ";
        } else {
          out.append(t.rank() - k - 1, '\n');  // a blank line between blocks of rank > 2
          out.append(k + 1, ' ');
        }
      }
    }
    out += "]";
  }
};

}  // namespace

std::string Tensor::to_string(std::int64_t threshold, std::int64_t edge_items) const {
  if (!defined()) return "Tensor()";
  std::string head = str();
  if (numel() == 0) return head + "\n[]";
  Printer p{*this, numel() > threshold, std::max<std::int64_t>(edge_items, 1), 0, true, {}};
  if (rank() == 0) {
    p.measure = false;
    p.cell(0);
    return head + "\n" + p.out;
  }
  p.dim(0, 0);  // measures the widths
  p.out.clear();
  p.measure = false;
  p.dim(0, 0);
  return head + "\n" + p.out;
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) { return os << t.to_string(); }

Tensor Tensor::argmax(std::int64_t axis, bool keepdims) const {
  require_defined(*this, "argmax");
  const auto ax = static_cast<std::size_t>(normalize_axis(*this, axis, "argmax"));
  const std::int64_t len = dim(ax), stride = strides()[ax];
  if (len == 0)
    throw ShapeError("Tensor::argmax: axis " + std::to_string(axis) + " of tensor " +
                     shape().str() + " is empty");
  Tensor out = Tensor::empty(reduced_shape(*this, ax, keepdims), DType::i64);
  auto* dst = out.data<std::int64_t>();
  const bool ints = is_integer(dtype());
  for_each_lane(*this, ax, [&](std::int64_t i, std::int64_t base) {
    std::int64_t best = 0;
    if (ints) {
      std::int64_t m = load_int(*this, base);
      for (std::int64_t j = 1; j < len; ++j) {
        const std::int64_t v = load_int(*this, base + j * stride);
        if (v > m) {
          m = v;
          best = j;
        }
      }
    } else {
      double m = load(*this, base);
      for (std::int64_t j = 1; j < len && !std::isnan(m); ++j) {
        const double v = load(*this, base + j * stride);
        if (v > m || std::isnan(v)) {
          m = v;
          best = j;
        }
      }
    }
    dst[i] = best;
  });
  return out;
}

double Tensor::sum() const {
  require_defined(*this, "sum");
  double s = 0.0;
  for_each_element(*this, [&](std::int64_t off) { s += load(*this, off); });
  return s;
}

double Tensor::mean() const {
  require_defined(*this, "mean");
  return numel() == 0 ? std::numeric_limits<double>::quiet_NaN()
                      : sum() / static_cast<double>(numel());
}

Tensor Tensor::sum(std::int64_t axis, bool keepdims) const {
  require_defined(*this, "sum");
  const auto ax = static_cast<std::size_t>(normalize_axis(*this, axis, "sum"));
  const std::int64_t len = dim(ax), stride = strides()[ax];
  const bool ints = is_integer(dtype());
  Tensor out = Tensor::empty(reduced_shape(*this, ax, keepdims), ints ? DType::i64 : dtype());
  for_each_lane(*this, ax, [&](std::int64_t i, std::int64_t base) {
    if (ints) {
      std::int64_t s = 0;
      for (std::int64_t j = 0; j < len; ++j) s += load_int(*this, base + j * stride);
      out.data<std::int64_t>()[i] = s;
      return;
    }
    double s = 0.0;
    for (std::int64_t j = 0; j < len; ++j) s += load(*this, base + j * stride);
    if (out.dtype() == DType::f32)
      out.data<float>()[i] = static_cast<float>(s);
    else
      out.data<double>()[i] = s;
  });
  return out;
}

Tensor Tensor::mean(std::int64_t axis, bool keepdims) const {
  require_defined(*this, "mean");
  const auto ax = static_cast<std::size_t>(normalize_axis(*this, axis, "mean"));
  const std::int64_t len = dim(ax), stride = strides()[ax];
  const DType out_dtype = is_integer(dtype()) ? DType::f64 : dtype();
  Tensor out = Tensor::empty(reduced_shape(*this, ax, keepdims), out_dtype);
  const double count = static_cast<double>(len);
  for_each_lane(*this, ax, [&](std::int64_t i, std::int64_t base) {
    double s = 0.0;
    for (std::int64_t j = 0; j < len; ++j) s += load(*this, base + j * stride);
    const double m = len == 0 ? std::numeric_limits<double>::quiet_NaN() : s / count;
    if (out_dtype == DType::f32)
      out.data<float>()[i] = static_cast<float>(m);
    else
      out.data<double>()[i] = m;
  });
  return out;
}

Tensor operator==(const Tensor& a, const Tensor& b) { return compare(a, b, Cmp::eq); }
Tensor operator!=(const Tensor& a, const Tensor& b) { return compare(a, b, Cmp::ne); }
Tensor operator<(const Tensor& a, const Tensor& b) { return compare(a, b, Cmp::lt); }
Tensor operator<=(const Tensor& a, const Tensor& b) { return compare(a, b, Cmp::le); }
Tensor operator>(const Tensor& a, const Tensor& b) { return compare(a, b, Cmp::gt); }
Tensor operator>=(const Tensor& a, const Tensor& b) { return compare(a, b, Cmp::ge); }
Tensor operator==(const Tensor& a, double b) { return compare(a, b, Cmp::eq); }
Tensor operator!=(const Tensor& a, double b) { return compare(a, b, Cmp::ne); }
Tensor operator<(const Tensor& a, double b) { return compare(a, b, Cmp::lt); }
Tensor operator<=(const Tensor& a, double b) { return compare(a, b, Cmp::le); }
Tensor operator>(const Tensor& a, double b) { return compare(a, b, Cmp::gt); }
Tensor operator>=(const Tensor& a, double b) { return compare(a, b, Cmp::ge); }

}  // namespace kiln
