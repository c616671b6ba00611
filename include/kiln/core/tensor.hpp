// Tensor: a typed, shaped view of 64-byte aligned storage shared by reference.
//
// Copying a Tensor shares its storage (like libtorch); clone() copies the data.
// Creation from user buffers always copies, so the caller's memory is never kept,
// and copy_to() checks the destination size and element type.
//
// Small eager helpers for metrics and inspection (plain loops, not the graph's kernels):
//
//   double accuracy = (probs.argmax(1) == labels).mean();   // i64 vs i32: compared by value
//   std::cout << probs << "\n";    // dtype, shape and values (abridged when large)
//
// Comparisons (==, !=, <, <=, >, >=) take two tensors of any dtypes (numpy broadcasting)
// or a tensor and a number, and give an i32 mask of 0 and 1, so sum() counts and mean()
// gives the share.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "kiln/core/dtype.hpp"
#include "kiln/core/error.hpp"
#include "kiln/core/shape.hpp"
#include "kiln/export.hpp"

namespace kiln {

class KILN_API Tensor {
 public:
  /// An empty tensor: no storage, rank 0, numel 0, !defined().
  Tensor() = default;

  /// Uninitialised storage of a static shape.
  static Tensor empty(const Shape& shape, DType dtype = DType::f32);
  static Tensor zeros(const Shape& shape, DType dtype = DType::f32);
  /// Every element set to `value` (converted to dtype).
  static Tensor full(const Shape& shape, double value, DType dtype = DType::f32);
  /// A rank-0 tensor.
  static Tensor scalar(double value, DType dtype = DType::f32);
  /// Copies `values` (row-major) into a new tensor; the count must match the shape.
  template <class T>
  static Tensor from(std::span<const T> values, const Shape& shape) {
    return from_raw(values.data(), values.size(), dtype_of_v<T>, shape);
  }
  template <class T>
  static Tensor from(const std::vector<T>& values, const Shape& shape) {
    return from(std::span<const T>(values), shape);
  }
  template <class T>
  static Tensor from(std::initializer_list<T> values, const Shape& shape) {
    return from(std::span<const T>(values.begin(), values.size()), shape);
  }
  /// A tensor over memory Kiln does not own; the caller keeps it alive (advanced use).
  static Tensor borrow(void* data, const Shape& shape, DType dtype);

  bool defined() const { return defined_; }
  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  std::size_t rank() const { return shape_.rank(); }
  std::int64_t dim(std::size_t i) const { return shape_[i]; }
  const std::vector<std::int64_t>& strides() const { return strides_; }
  std::int64_t numel() const { return numel_; }
  std::size_t nbytes() const { return static_cast<std::size_t>(numel_) * size_of(dtype_); }
  bool is_contiguous() const;

  /// Typed pointer to the first element; throws DTypeError if T is not the dtype.
  template <class T>
  T* data() {
    check_dtype(dtype_of_v<T>);
    return static_cast<T*>(data_);
  }
  template <class T>
  const T* data() const {
    check_dtype(dtype_of_v<T>);
    return static_cast<const T*>(data_);
  }
  void* raw() { return data_; }
  const void* raw() const { return data_; }

  /// The elements in row-major order (any strides); T must be the dtype.
  template <class T>
  std::vector<T> to_vector() const {
    std::vector<T> out(static_cast<std::size_t>(numel_));
    copy_to(std::span<T>(out));
    return out;
  }
  /// Copies the elements, row-major, into `dst`; its size must equal numel().
  template <class T>
  void copy_to(std::span<T> dst) const {
    copy_to_raw(dst.data(), dst.size(), dtype_of_v<T>);
  }
  /// The single element of a one-element tensor, as double.
  double item() const;
  /// Element at a flat row-major index, as double (slow; for tests and printing).
  double at(std::int64_t flat_index) const;

  /// A new tensor with its own contiguous copy of the data.
  Tensor clone() const;
  /// This tensor if contiguous, else a contiguous copy.
  Tensor contiguous() const;
  /// Same storage, new shape (contiguous tensors only; numel must match).
  Tensor reshape(const Shape& shape) const;
  /// Same storage with permuted dimensions (strided view).
  Tensor permute(const std::vector<std::int64_t>& perm) const;
  /// Same storage, rows [begin, end) of dimension 0.
  Tensor rows(std::int64_t begin, std::int64_t end) const;
  /// Converts element type (new storage).
  Tensor to(DType dtype) const;
  /// Copies `src` (same shape and dtype) into this tensor's storage.
  void copy_from(const Tensor& src);
  /// "Tensor(f32, [2, 3])".
  std::string str() const;
  /// str() and the values, nested like the shape, e.g.
  ///   Tensor(f32, [2, 3])
  ///   [[ 1, -2.5,  3],
  ///    [ 4,    5,  6]]
  /// With more than `threshold` elements, each dimension shows its first and last
  /// `edge_items` entries around "..." (as PyTorch prints).
  std::string to_string(std::int64_t threshold = 1000, std::int64_t edge_items = 3) const;

  /// Index of the largest element along `axis` (negative counts from the end; the first
  /// one on ties; NaN counts as the largest), as i64 with that axis removed (kept as 1 with
  /// keepdims). ShapeError for an empty axis or one outside the rank.
  Tensor argmax(std::int64_t axis, bool keepdims = false) const;
  /// Sum and mean of all elements, computed in double (0 and NaN for no elements).
  double sum() const;
  double mean() const;
  /// Sum / mean along `axis`: floats keep their dtype; integers sum to i64 and average to
  /// f64. Accumulated in double (integer sums in int64).
  Tensor sum(std::int64_t axis, bool keepdims = false) const;
  Tensor mean(std::int64_t axis, bool keepdims = false) const;

 private:
  static Tensor from_raw(const void* values, std::size_t count, DType dtype, const Shape& shape);
  void copy_to_raw(void* dst, std::size_t count, DType dtype) const;
  void check_dtype(DType expected) const;

  std::shared_ptr<void> storage_;
  void* data_ = nullptr;
  Shape shape_;
  std::vector<std::int64_t> strides_;
  std::int64_t numel_ = 0;
  DType dtype_ = DType::f32;
  bool defined_ = false;
};

/// Elementwise comparisons: an i32 mask (1 where true). Tensors broadcast as numpy does
/// (ShapeError naming both shapes otherwise); values are compared as int64 when both are
/// integers and as double otherwise. Comparisons with NaN are false (!= is true).
KILN_API Tensor operator==(const Tensor& a, const Tensor& b);
KILN_API Tensor operator!=(const Tensor& a, const Tensor& b);
KILN_API Tensor operator<(const Tensor& a, const Tensor& b);
KILN_API Tensor operator<=(const Tensor& a, const Tensor& b);
KILN_API Tensor operator>(const Tensor& a, const Tensor& b);
KILN_API Tensor operator>=(const Tensor& a, const Tensor& b);
KILN_API Tensor operator==(const Tensor& a, double b);
KILN_API Tensor operator!=(const Tensor& a, double b);
KILN_API Tensor operator<(const Tensor& a, double b);
KILN_API Tensor operator<=(const Tensor& a, double b);
KILN_API Tensor operator>(const Tensor& a, double b);
KILN_API Tensor operator>=(const Tensor& a, double b);

/// Writes t.to_string().
KILN_API std::ostream& operator<<(std::ostream& os, const Tensor& t);

}  // namespace kiln
