// Shape: a list of dimensions; the first may be the dynamic batch dimension.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "kiln/export.hpp"

namespace kiln {

/// A dimension whose size is known only when a graph runs (the batch).
inline constexpr std::int64_t batch = -1;

class KILN_API Shape {
 public:
  Shape() = default;
  Shape(std::initializer_list<std::int64_t> dims) : dims_(dims) {}
  explicit Shape(std::vector<std::int64_t> dims) : dims_(std::move(dims)) {}

  std::size_t rank() const { return dims_.size(); }
  std::int64_t operator[](std::size_t i) const { return dims_[i]; }
  std::int64_t& operator[](std::size_t i) { return dims_[i]; }
  const std::vector<std::int64_t>& dims() const { return dims_; }
  std::vector<std::int64_t>::const_iterator begin() const { return dims_.begin(); }
  std::vector<std::int64_t>::const_iterator end() const { return dims_.end(); }

  /// True when no dimension is dynamic.
  bool is_static() const;
  /// Product of the dimensions; throws ShapeError if one is dynamic.
  std::int64_t numel() const;
  /// Row-major element strides.
  std::vector<std::int64_t> contiguous_strides() const;
  /// "[batch, 64]".
  std::string str() const;

  friend bool operator==(const Shape&, const Shape&) = default;

 private:
  std::vector<std::int64_t> dims_;
};

}  // namespace kiln
