#include "kiln/core/shape.hpp"

#include <string>

#include "kiln/core/dtype.hpp"
#include "kiln/core/error.hpp"

namespace kiln {

std::string_view to_string(DType t) {
  switch (t) {
    case DType::f32:
      return "f32";
    case DType::i32:
      return "i32";
    case DType::i64:
      return "i64";
    case DType::f64:
      return "f64";
  }
  return "?";
}

bool Shape::is_static() const {
  for (auto d : dims_)
    if (d < 0) return false;
  return true;
}

std::int64_t Shape::numel() const {
  std::int64_t n = 1;
  for (auto d : dims_) {
    if (d < 0) throw ShapeError("shape " + str() + " has a dynamic dimension; it has no size yet");
    n *= d;
  }
  return n;
}

std::vector<std::int64_t> Shape::contiguous_strides() const {
  std::vector<std::int64_t> s(dims_.size());
  std::int64_t acc = 1;
  for (std::size_t i = dims_.size(); i-- > 0;) {
    s[i] = acc;
    // Dims such as [0, 2^62, 2^62] hold no element, but their strides would overflow.
    if (i > 0 && __builtin_mul_overflow(acc, dims_[i] > 0 ? dims_[i] : 1, &acc))
      throw ShapeError("shape " + str() + " is too large: its strides overflow 64 bits");
  }
  return s;
}

std::string Shape::str() const {
  std::string s = "[";
  for (std::size_t i = 0; i < dims_.size(); ++i) {
    if (i) s += ", ";
    s += dims_[i] < 0 ? std::string("batch") : std::to_string(dims_[i]);
  }
  return s + "]";
}

}  // namespace kiln
