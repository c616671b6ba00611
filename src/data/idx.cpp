#include "kiln/data/idx.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

namespace kiln::data {
namespace {

enum class IdxType : std::uint8_t {
  u8 = 0x08,
  i8 = 0x09,
  i16 = 0x0B,
  i32 = 0x0C,
  f32 = 0x0D,
  f64 = 0x0E
};

std::size_t element_size(IdxType t) {
  switch (t) {
    case IdxType::u8:
    case IdxType::i8:
      return 1;
    case IdxType::i16:
      return 2;
    case IdxType::i32:
    case IdxType::f32:
      return 4;
    case IdxType::f64:
      return 8;
  }
  return 0;
}

const char* type_name(IdxType t) {
  switch (t) {
    case IdxType::u8:
      return "u8";
    case IdxType::i8:
      return "i8";
    case IdxType::i16:
      return "i16";
    case IdxType::i32:
      return "i32";
    case IdxType::f32:
      return "f32";
    case IdxType::f64:
      return "f64";
  }
  return "?";
}

// An IDX file's header and raw (big-endian) elements.
struct IdxFile {
  IdxType type = IdxType::u8;
  std::vector<std::int64_t> dims;
  std::unique_ptr<unsigned char[]> bytes;
  std::size_t count = 0;  // elements
};

std::uint32_t big_endian_u32(const unsigned char* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         p[3];
}

IdxFile read_raw(const std::string& path) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) throw IoError(path + ": cannot open: " + std::strerror(errno));
  auto fail = [&](const std::string& what) -> FormatError {
    return FormatError(path + ": not an IDX file: " + what);
  };
  if (std::fseek(f.get(), 0, SEEK_END) != 0)
    throw IoError(path + ": cannot seek: " + std::strerror(errno));
  const long file_size = std::ftell(f.get());
  if (file_size < 0) throw IoError(path + ": cannot tell its size: " + std::strerror(errno));
  std::rewind(f.get());
  auto read = [&](void* dst, std::size_t n, const char* what) {
    if (std::fread(dst, 1, n, f.get()) != n) {
      if (std::ferror(f.get())) throw IoError(path + ": read failed: " + std::strerror(errno));
      throw fail(std::string("the file ends inside the ") + what);
    }
  };
  unsigned char magic[4];
  read(magic, 4, "magic number");
  if (magic[0] != 0 || magic[1] != 0)
    throw fail("the magic number does not start with two zero bytes");
  IdxFile out;
  out.type = static_cast<IdxType>(magic[2]);
  if (element_size(out.type) == 0)
    throw fail("unknown element type 0x" + [&] {
      char hex[3];
      std::snprintf(hex, sizeof hex, "%02x", magic[2]);
      return std::string(hex);
    }());
  const int rank = magic[3];
  if (rank == 0) throw fail("rank 0");
  std::vector<unsigned char> header(static_cast<std::size_t>(rank) * 4);
  read(header.data(), header.size(), "dimensions");
  const auto payload = static_cast<std::uint64_t>(file_size) - 4 - header.size();
  std::uint64_t count = 1;
  for (int i = 0; i < rank; ++i) {
    const std::uint32_t d = big_endian_u32(header.data() + 4 * i);
    out.dims.push_back(d);
    // The payload bounds the count (checked before multiplying, so it cannot overflow).
    if (d != 0 && count > payload / element_size(out.type) / d) {
      std::string dims;
      for (std::size_t k = 0; k < static_cast<std::size_t>(rank); ++k)
        dims += (k ? ", " : "") + std::to_string(big_endian_u32(header.data() + 4 * k));
      throw fail("dimensions [" + dims + "] of " + type_name(out.type) + " need more than the " +
                 std::to_string(payload) + " bytes after the header");
    }
    count *= d;
  }
  const std::uint64_t bytes = count * element_size(out.type);
  if (bytes != payload)
    throw fail(std::to_string(payload) + " bytes after the header, but the dimensions need " +
               std::to_string(bytes));
  out.count = static_cast<std::size_t>(count);
  out.bytes.reset(new unsigned char[std::max<std::size_t>(bytes, 1)]);
  read(out.bytes.get(), static_cast<std::size_t>(bytes), "elements");
  return out;
}

template <class T, std::size_t N = sizeof(T)>
T load_big_endian(const unsigned char* p) {
  unsigned char le[N];
  for (std::size_t i = 0; i < N; ++i) le[i] = p[N - 1 - i];
  T v;
  std::memcpy(&v, le, N);
  return v;
}

Tensor to_tensor(const IdxFile& f) {
  const Shape shape(f.dims);
  const unsigned char* p = f.bytes.get();
  switch (f.type) {
    case IdxType::u8:
    case IdxType::i8:
    case IdxType::i16:
    case IdxType::i32: {
      Tensor t = Tensor::empty(shape, DType::i32);
      auto* dst = t.data<std::int32_t>();
      for (std::size_t i = 0; i < f.count; ++i)
        dst[i] = f.type == IdxType::u8    ? std::int32_t{p[i]}
                 : f.type == IdxType::i8  ? std::int32_t{static_cast<std::int8_t>(p[i])}
                 : f.type == IdxType::i16 ? std::int32_t{load_big_endian<std::int16_t>(p + 2 * i)}
                                          : load_big_endian<std::int32_t>(p + 4 * i);
      return t;
    }
    case IdxType::f32: {
      Tensor t = Tensor::empty(shape, DType::f32);
      auto* dst = t.data<float>();
      for (std::size_t i = 0; i < f.count; ++i) dst[i] = load_big_endian<float>(p + 4 * i);
      return t;
    }
    case IdxType::f64: {
      Tensor t = Tensor::empty(shape, DType::f64);
      auto* dst = t.data<double>();
      for (std::size_t i = 0; i < f.count; ++i) dst[i] = load_big_endian<double>(p + 8 * i);
      return t;
    }
  }
  return {};
}

std::string dims_text(const std::vector<std::int64_t>& dims) { return Shape(dims).str(); }

}  // namespace

Tensor read_idx(const std::string& path) { return to_tensor(read_raw(path)); }

Dataset read_mnist(const std::string& images_path, const std::string& labels_path) {
  const IdxFile images = read_raw(images_path);
  if (images.type != IdxType::u8 || images.dims.size() != 3)
    throw FormatError(images_path + ": MNIST images are u8 [N, H, W], not " +
                      type_name(images.type) + " " + dims_text(images.dims));
  const IdxFile labels = read_raw(labels_path);
  if (labels.type != IdxType::u8 || labels.dims.size() != 1)
    throw FormatError(labels_path + ": MNIST labels are u8 [N], not " + type_name(labels.type) +
                      " " + dims_text(labels.dims));
  const std::int64_t n = images.dims[0];
  if (labels.dims[0] != n)
    throw DataError(images_path + " has " + std::to_string(n) + " images but " + labels_path +
                    " has " + std::to_string(labels.dims[0]) + " labels");
  if (n == 0) throw DataError(images_path + ": no images");
  Tensor x = Tensor::empty({n, 1, images.dims[1], images.dims[2]}, DType::f32);
  float* px = x.data<float>();
  for (std::size_t i = 0; i < images.count; ++i)
    px[i] = static_cast<float>(images.bytes[i]) / 255.0f;
  Tensor y = Tensor::empty({n}, DType::i32);
  std::int32_t* py = y.data<std::int32_t>();
  int largest = 0;
  for (std::size_t i = 0; i < labels.count; ++i) {
    py[i] = labels.bytes[i];
    largest = std::max(largest, int{labels.bytes[i]});
  }
  DatasetInfo info;
  info.source = images_path;
  for (int k = 0; k <= largest; ++k) info.labels.push_back(std::to_string(k));
  return Dataset({{"features", std::move(x)}, {"target", std::move(y)}}, std::move(info));
}

}  // namespace kiln::data
