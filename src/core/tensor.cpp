#include "kiln/core/tensor.hpp"

#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>

namespace kiln {
namespace {

constexpr std::size_t kAlignment = 64;

std::shared_ptr<void> allocate(std::int64_t numel, DType dtype, const Shape& shape) {
  const auto n = static_cast<std::size_t>(numel);
  const std::size_t limit = static_cast<std::size_t>(std::numeric_limits<std::ptrdiff_t>::max());
  if (n > (limit - kAlignment) / size_of(dtype))
    throw OutOfMemoryError("cannot allocate a " + std::string(to_string(dtype)) +
                           " tensor of shape " + shape.str() +
                           ": its size overflows the address space");
  const std::size_t bytes = n * size_of(dtype);
  // Round up so aligned_alloc's size is a multiple of the alignment; never zero.
  const std::size_t size = ((bytes + kAlignment - 1) / kAlignment) * kAlignment;
  void* p = std::aligned_alloc(kAlignment, size == 0 ? kAlignment : size);
  if (!p)
    throw OutOfMemoryError("out of memory allocating " + std::to_string(bytes) +
                           " bytes for a tensor of shape " + shape.str());
  return std::shared_ptr<void>(p, [](void* q) { std::free(q); });
}

std::int64_t checked_numel(const Shape& shape) {
  std::int64_t n = 1;
  for (auto d : shape) {
    if (d < 0) throw ShapeError("tensor shape " + shape.str() + " must be static");
    if (d != 0 && n > std::numeric_limits<std::int64_t>::max() / d)
      throw ShapeError("tensor shape " + shape.str() + " has too many elements");
    n *= d;
  }
  return n;
}

template <class Dst, class Src>
void convert(Dst* dst, const Src* src, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) dst[i] = static_cast<Dst>(src[i]);
}

template <class Fn>
decltype(auto) visit_dtype(DType t, Fn&& fn) {
  switch (t) {
    case DType::f32:
      return fn(float{});
    case DType::f64:
      return fn(double{});
    case DType::i32:
      return fn(std::int32_t{});
    case DType::i64:
      return fn(std::int64_t{});
  }
  return fn(float{});
}

// Calls fn(flat_index, element_offset) for each element in row-major order.
template <class Fn>
void for_each_offset(const Shape& shape, const std::vector<std::int64_t>& strides, Fn&& fn) {
  const std::size_t r = shape.rank();
  std::int64_t n = 1;
  for (auto d : shape) n *= d;
  if (n == 0) return;
  std::vector<std::int64_t> idx(r, 0);
  std::int64_t off = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    fn(i, off);
    for (std::size_t k = r; k-- > 0;) {
      if (++idx[k] < shape[k]) {
        off += strides[k];
        break;
      }
      off -= strides[k] * (shape[k] - 1);
      idx[k] = 0;
    }
  }
}

}  // namespace

Tensor Tensor::empty(const Shape& shape, DType dtype) {
  Tensor t;
  t.numel_ = checked_numel(shape);
  t.shape_ = shape;
  t.strides_ = shape.contiguous_strides();
  t.dtype_ = dtype;
  t.storage_ = allocate(t.numel_, dtype, shape);
  t.data_ = t.storage_.get();
  t.defined_ = true;
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype) {
  Tensor t = empty(shape, dtype);
  std::memset(t.data_, 0, t.nbytes());
  return t;
}

Tensor Tensor::full(const Shape& shape, double value, DType dtype) {
  Tensor t = empty(shape, dtype);
  visit_dtype(dtype, [&](auto zero) {
    using T = decltype(zero);
    T* p = static_cast<T*>(t.data_);
    for (std::int64_t i = 0; i < t.numel_; ++i) p[i] = static_cast<T>(value);
  });
  return t;
}

Tensor Tensor::scalar(double value, DType dtype) { return full(Shape{}, value, dtype); }

Tensor Tensor::from_raw(const void* values, std::size_t count, DType dtype, const Shape& shape) {
  const std::int64_t n = checked_numel(shape);
  if (static_cast<std::size_t>(n) != count)
    throw ShapeError("Tensor::from: " + std::to_string(count) + " values do not fill shape " +
                     shape.str() + " (" + std::to_string(n) + " elements)");
  Tensor t = empty(shape, dtype);
  if (count) std::memcpy(t.data_, values, t.nbytes());
  return t;
}

Tensor Tensor::borrow(void* data, const Shape& shape, DType dtype) {
  Tensor t;
  t.numel_ = checked_numel(shape);
  if (!data && t.numel_ > 0) throw ValueError("Tensor::borrow: null data for shape " + shape.str());
  t.shape_ = shape;
  t.strides_ = shape.contiguous_strides();
  t.dtype_ = dtype;
  t.data_ = data;
  t.defined_ = true;
  return t;
}

bool Tensor::is_contiguous() const {
  std::int64_t expected = 1;
  for (std::size_t i = shape_.rank(); i-- > 0;) {
    if (shape_[i] != 1 && strides_[i] != expected) return false;
    expected *= shape_[i];
  }
  return true;
}

void Tensor::check_dtype(DType expected) const {
  if (expected != dtype_)
    throw DTypeError("tensor " + shape_.str() + " holds " + std::string(kiln::to_string(dtype_)) +
                     ", not " + std::string(kiln::to_string(expected)));
}

void Tensor::copy_to_raw(void* dst, std::size_t count, DType dtype) const {
  check_dtype(dtype);
  if (count != static_cast<std::size_t>(numel_))
    throw ShapeError("Tensor::copy_to: destination holds " + std::to_string(count) +
                     " elements, tensor " + shape_.str() + " has " + std::to_string(numel_));
  if (numel_ == 0) return;
  if (is_contiguous()) {
    std::memcpy(dst, data_, nbytes());
    return;
  }
  const std::size_t es = size_of(dtype_);
  auto* out = static_cast<unsigned char*>(dst);
  const auto* in = static_cast<const unsigned char*>(data_);
  for_each_offset(shape_, strides_, [&](std::int64_t i, std::int64_t off) {
    std::memcpy(out + i * es, in + off * es, es);
  });
}

double Tensor::at(std::int64_t flat_index) const {
  if (flat_index < 0 || flat_index >= numel_)
    throw ValueError("Tensor::at: index " + std::to_string(flat_index) + " outside " +
                     shape_.str());
  std::int64_t off = 0, rest = flat_index;
  for (std::size_t k = shape_.rank(); k-- > 0;) {
    off += (rest % shape_[k]) * strides_[k];
    rest /= shape_[k];
  }
  return visit_dtype(dtype_, [&](auto zero) {
    using T = decltype(zero);
    return static_cast<double>(static_cast<const T*>(data_)[off]);
  });
}

double Tensor::item() const {
  if (numel_ != 1)
    throw ShapeError("Tensor::item: tensor " + shape_.str() + " does not hold exactly one value");
  return at(0);
}

Tensor Tensor::clone() const {
  if (!defined_) return {};
  Tensor t = empty(shape_, dtype_);
  copy_to_raw(t.data_, static_cast<std::size_t>(numel_), dtype_);
  return t;
}

Tensor Tensor::contiguous() const { return is_contiguous() ? *this : clone(); }

Tensor Tensor::reshape(const Shape& shape) const {
  if (!is_contiguous()) return contiguous().reshape(shape);
  std::vector<std::int64_t> dims = shape.dims();
  std::int64_t known = 1;
  int infer_at = -1;
  for (std::size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] == -1 && infer_at < 0) {
      infer_at = static_cast<int>(i);
    } else if (dims[i] < 0) {
      throw ShapeError("Tensor::reshape: bad target " + shape.str());
    } else {
      known *= dims[i];
    }
  }
  if (infer_at >= 0 && known > 0 && numel_ % known == 0) dims[infer_at] = numel_ / known;
  Shape target(dims);
  if (!target.is_static() || checked_numel(target) != numel_)
    throw ShapeError("Tensor::reshape: cannot view " + shape_.str() + " as " + shape.str());
  Tensor t = *this;
  t.shape_ = target;
  t.strides_ = target.contiguous_strides();
  return t;
}

Tensor Tensor::permute(const std::vector<std::int64_t>& perm) const {
  if (perm.size() != shape_.rank())
    throw ShapeError("Tensor::permute: permutation of " + std::to_string(perm.size()) +
                     " axes for tensor " + shape_.str());
  std::vector<bool> seen(perm.size(), false);
  Tensor t = *this;
  std::vector<std::int64_t> dims(perm.size());
  for (std::size_t i = 0; i < perm.size(); ++i) {
    const auto p = perm[i];
    if (p < 0 || p >= static_cast<std::int64_t>(perm.size()) || seen[p])
      throw ShapeError("Tensor::permute: not a permutation of the axes of " + shape_.str());
    seen[p] = true;
    dims[i] = shape_[p];
    t.strides_[i] = strides_[p];
  }
  t.shape_ = Shape(dims);
  return t;
}

Tensor Tensor::rows(std::int64_t begin, std::int64_t end) const {
  if (shape_.rank() == 0 || begin < 0 || end < begin || end > shape_[0])
    throw ShapeError("Tensor::rows: [" + std::to_string(begin) + ", " + std::to_string(end) +
                     ") outside tensor " + shape_.str());
  Tensor t = *this;
  t.shape_[0] = end - begin;
  t.numel_ = checked_numel(t.shape_);
  t.data_ = static_cast<unsigned char*>(data_) + begin * strides_[0] * size_of(dtype_);
  return t;
}

Tensor Tensor::to(DType dtype) const {
  Tensor src = contiguous();
  Tensor t = empty(shape_, dtype);
  visit_dtype(dtype_, [&](auto from) {
    visit_dtype(dtype, [&](auto too) {
      convert(static_cast<decltype(too)*>(t.data_), static_cast<const decltype(from)*>(src.data_),
              static_cast<std::size_t>(numel_));
    });
  });
  return t;
}

void Tensor::copy_from(const Tensor& src) {
  if (src.shape_ != shape_ || src.dtype_ != dtype_)
    throw ShapeError("Tensor::copy_from: source " + src.str() + " does not match " + str());
  if (!is_contiguous()) throw ValueError("Tensor::copy_from: destination must be contiguous");
  src.copy_to_raw(data_, static_cast<std::size_t>(numel_), dtype_);
}

std::string Tensor::str() const {
  return "Tensor(" + std::string(kiln::to_string(dtype_)) + ", " + shape_.str() + ")";
}

}  // namespace kiln
