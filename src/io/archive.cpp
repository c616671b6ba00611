// The only file that includes cereal: Kiln's payloads are cereal portable binary archives
// (a one-byte endianness tag, then little-endian fields).
#include "io/archive.hpp"

#include <cereal/archives/portable_binary.hpp>
#include <cmath>
#include <cstring>
#include <limits>
#include <sstream>
#include <streambuf>

#include "io/sha256.hpp"
#include "kiln/core/error.hpp"

namespace kiln::internal {
namespace {

void put_le(std::vector<std::uint8_t>& out, std::uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

std::uint64_t get_le(const std::uint8_t* p, int bytes) {
  std::uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= std::uint64_t{p[i]} << (8 * i);
  return v;
}

/// A read-only streambuf over a span (no copy).
class SpanBuf : public std::streambuf {
 public:
  explicit SpanBuf(std::span<const std::uint8_t> bytes) {
    // NOLINTNEXTLINE: the buffer is only read.
    char* begin = const_cast<char*>(reinterpret_cast<const char*>(bytes.data()));
    setg(begin, begin, begin + bytes.size());
  }
  std::size_t left() const { return static_cast<std::size_t>(egptr() - gptr()); }
  /// The next n bytes (n <= left()), skipped over.
  const std::uint8_t* take(std::size_t n) {
    char* p = gptr();
    setg(eback(), p + n, egptr());
    return reinterpret_cast<const std::uint8_t*>(p);
  }
};

}  // namespace

std::uint8_t dtype_code(DType t) {
  switch (t) {
    case DType::f32:
      return 0;
    case DType::i32:
      return 1;
    case DType::i64:
      return 2;
    case DType::f64:
      return 3;
  }
  throw ValueError("dtype_code: unknown dtype");
}

void format_error(const std::string& source, const std::string& what) {
  std::string msg = source;
  msg += ": ";
  msg += what;
  throw FormatError(msg);
}

std::vector<std::uint8_t> wrap_envelope(const Magic& magic, std::uint32_t version,
                                        std::span<const std::uint8_t> payload) {
  std::vector<std::uint8_t> out;
  out.reserve(envelope_size + payload.size());
  for (char c : magic) out.push_back(static_cast<std::uint8_t>(c));
  put_le(out, version, 4);
  put_le(out, payload.size(), 8);
  const Sha256Digest digest = sha256(payload);
  out.insert(out.end(), digest.begin(), digest.end());
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

Envelope open_envelope(std::span<const std::uint8_t> bytes, const Magic& magic,
                       std::uint32_t max_version, const std::string& source, const char* kind) {
  std::string what;
  if (bytes.size() < envelope_size) {
    what = "too short to be a Kiln ";
    what += kind;
    what += " file (";
    what += std::to_string(bytes.size());
    what += " bytes; the header alone takes ";
    what += std::to_string(envelope_size);
    what += ")";
    format_error(source, what);
  }
  if (std::memcmp(bytes.data(), magic.data(), 4) != 0) {
    what = "bad magic: not a Kiln ";
    what += kind;
    what += " file (expected '";
    what.append(magic.data(), 4);
    what += "')";
    format_error(source, what);
  }
  Envelope env;
  env.version = static_cast<std::uint32_t>(get_le(bytes.data() + 4, 4));
  if (env.version == 0 || env.version > max_version) {
    what = "format version ";
    what += std::to_string(env.version);
    what += env.version == 0 ? " is invalid" : " is newer than this library reads (up to ";
    if (env.version != 0) {
      what += std::to_string(max_version);
      what += ")";
    }
    format_error(source, what);
  }
  const std::uint64_t length = get_le(bytes.data() + 8, 8);
  const std::uint64_t actual = bytes.size() - envelope_size;
  if (length != actual) {
    what = "payload length ";
    what += std::to_string(length);
    what += " in the header, but ";
    what += std::to_string(actual);
    what += length > actual ? " bytes follow (truncated file)" : " bytes follow (trailing data)";
    format_error(source, what);
  }
  env.payload = bytes.subspan(envelope_size);
  const Sha256Digest digest = sha256(env.payload);
  if (std::memcmp(digest.data(), bytes.data() + 16, digest.size()) != 0)
    format_error(source, "payload checksum (SHA-256) mismatch: the file is corrupt");
  return env;
}

// ---- writer ----

struct ArchiveWriter::Impl {
  std::ostringstream stream;
  cereal::PortableBinaryOutputArchive archive{stream};
};

ArchiveWriter::ArchiveWriter() : impl_(std::make_unique<Impl>()) {}
ArchiveWriter::~ArchiveWriter() = default;

void ArchiveWriter::u8(std::uint8_t v) { impl_->archive(v); }
void ArchiveWriter::u16(std::uint16_t v) { impl_->archive(v); }
void ArchiveWriter::u32(std::uint32_t v) { impl_->archive(v); }
void ArchiveWriter::u64(std::uint64_t v) { impl_->archive(v); }
void ArchiveWriter::i32(std::int32_t v) { impl_->archive(v); }
void ArchiveWriter::i64(std::int64_t v) { impl_->archive(v); }
void ArchiveWriter::f32(float v) { impl_->archive(v); }
void ArchiveWriter::f64(double v) { impl_->archive(v); }

void ArchiveWriter::string(const std::string& s) {
  u64(s.size());
  if (!s.empty()) impl_->archive.saveBinary<1>(s.data(), static_cast<std::streamsize>(s.size()));
}

void ArchiveWriter::dims(const std::vector<std::int64_t>& d) {
  u32(static_cast<std::uint32_t>(d.size()));
  for (auto v : d) i64(v);
}

void ArchiveWriter::raw(std::span<const std::uint8_t> bytes) {
  if (!bytes.empty())
    impl_->archive.saveBinary<1>(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

void ArchiveWriter::tensor(const std::string& name, const Tensor& t) {
  const Tensor c = t.contiguous();
  string(name);
  dtype(c.dtype());
  dims(c.shape().dims());
  u64(c.nbytes());
  if (c.nbytes() == 0) return;
  const auto n = static_cast<std::streamsize>(c.nbytes());
  if (size_of(c.dtype()) == 4)
    impl_->archive.saveBinary<4>(c.raw(), n);
  else
    impl_->archive.saveBinary<8>(c.raw(), n);
}

std::vector<std::uint8_t> ArchiveWriter::finish() {
  const std::string s = impl_->stream.str();
  return std::vector<std::uint8_t>(s.begin(), s.end());
}

// ---- reader ----

struct ArchiveReader::Impl {
  explicit Impl(std::span<const std::uint8_t> bytes) : buf(bytes), stream(&buf) {}
  SpanBuf buf;
  std::istream stream;
  std::unique_ptr<cereal::PortableBinaryInputArchive> archive;
};

ArchiveReader::ArchiveReader(std::span<const std::uint8_t> payload, std::string source)
    : impl_(std::make_unique<Impl>(payload)), source_(std::move(source)) {
  if (payload.empty()) fail("empty payload");
  try {
    impl_->archive = std::make_unique<cereal::PortableBinaryInputArchive>(impl_->stream);
  } catch (const cereal::Exception& e) {
    fail(std::string("bad archive header: ") + e.what());
  }
}

ArchiveReader::~ArchiveReader() = default;

std::size_t ArchiveReader::remaining() const { return impl_->buf.left(); }

void ArchiveReader::fail(const std::string& what) const { format_error(source_, what); }

void ArchiveReader::need(std::size_t bytes, const char* what) {
  if (bytes <= remaining()) return;
  std::string msg = "truncated payload: ";
  msg += what;
  msg += " needs ";
  msg += std::to_string(bytes);
  msg += " bytes, ";
  msg += std::to_string(remaining());
  msg += " left";
  fail(msg);
}

template <class T>
T ArchiveReader::primitive(const char* what) {
  need(sizeof(T), what);
  T v{};
  (*impl_->archive)(v);
  return v;
}

std::uint8_t ArchiveReader::u8(const char* what) { return primitive<std::uint8_t>(what); }
std::uint16_t ArchiveReader::u16(const char* what) { return primitive<std::uint16_t>(what); }
std::uint32_t ArchiveReader::u32(const char* what) { return primitive<std::uint32_t>(what); }
std::uint64_t ArchiveReader::u64(const char* what) { return primitive<std::uint64_t>(what); }
std::int32_t ArchiveReader::i32(const char* what) { return primitive<std::int32_t>(what); }
std::int64_t ArchiveReader::i64(const char* what) { return primitive<std::int64_t>(what); }
float ArchiveReader::f32(const char* what) { return primitive<float>(what); }
double ArchiveReader::f64(const char* what) { return primitive<double>(what); }

bool ArchiveReader::boolean(const char* what) {
  const std::uint8_t v = u8(what);
  if (v > 1) {
    std::string msg = what;
    msg += ": boolean byte is ";
    msg += std::to_string(v);
    msg += ", not 0 or 1";
    fail(msg);
  }
  return v == 1;
}

std::string ArchiveReader::string(const char* what) {
  const std::uint64_t length = u64(what);
  if (length > remaining()) {
    std::string msg = what;
    msg += ": string length ";
    msg += std::to_string(length);
    msg += " exceeds the ";
    msg += std::to_string(remaining());
    msg += " bytes left";
    fail(msg);
  }
  std::string s(static_cast<std::size_t>(length), '\0');
  if (length > 0) impl_->archive->loadBinary<1>(s.data(), static_cast<std::streamsize>(length));
  return s;
}

std::string ArchiveReader::name(const char* what) {
  std::string s = string(what);
  if (s.empty()) {
    std::string msg = what;
    msg += " is empty";
    fail(msg);
  }
  return s;
}

std::size_t ArchiveReader::count(const char* what, std::size_t min_bytes_each) {
  const std::uint32_t n = u32(what);
  const std::size_t each = min_bytes_each == 0 ? 1 : min_bytes_each;
  if (n > remaining() / each) {
    std::string msg = what;
    msg += ": count ";
    msg += std::to_string(n);
    msg += " cannot fit in the ";
    msg += std::to_string(remaining());
    msg += " bytes left";
    fail(msg);
  }
  return n;
}

std::vector<std::int64_t> ArchiveReader::dims(const std::string& what, bool allow_batch,
                                              std::size_t elem_size, bool batch_anywhere) {
  const std::uint32_t rank = u32(what.c_str());
  if (rank > max_rank) fail(what + ": rank " + std::to_string(rank) + " is above the limit 16");
  need(std::size_t{rank} * 8, what.c_str());
  std::vector<std::int64_t> out(rank);
  std::int64_t product = static_cast<std::int64_t>(elem_size == 0 ? 1 : elem_size);
  for (std::uint32_t i = 0; i < rank; ++i) {
    const std::int64_t d = i64(what.c_str());
    const bool batch_ok = allow_batch && (i == 0 || batch_anywhere) && d == -1;
    if ((d < 0 && !batch_ok) || d > max_dim) {
      std::string msg = what;
      msg += ": dimension ";
      msg += std::to_string(i);
      msg += " is ";
      msg += std::to_string(d);
      msg += d < 0 ? " (negative)" : " (above the limit 2^31-1)";
      fail(msg);
    }
    out[i] = d;
    const std::int64_t factor = d < 0 ? 1 : d;
    if (factor != 0 && product > std::numeric_limits<std::int64_t>::max() / factor)
      fail(what + ": the product of the dimensions overflows");
    product *= factor;
  }
  return out;
}

DType ArchiveReader::dtype(const std::string& what) {
  const std::uint8_t v = u8(what.c_str());
  switch (v) {
    case 0:
      return DType::f32;
    case 1:
      return DType::i32;
    case 2:
      return DType::i64;
    case 3:
      return DType::f64;
    default:
      fail(what + ": unknown dtype value " + std::to_string(v));
  }
}

std::span<const std::uint8_t> ArchiveReader::raw(std::uint64_t n, const char* what) {
  if (n > remaining()) {
    std::string msg = what;
    msg += ": ";
    msg += std::to_string(n);
    msg += " bytes, but only ";
    msg += std::to_string(remaining());
    msg += " left";
    fail(msg);
  }
  return {impl_->buf.take(static_cast<std::size_t>(n)), static_cast<std::size_t>(n)};
}

std::pair<std::string, Tensor> ArchiveReader::tensor(const char* what) {
  std::string name = this->name(what);
  const std::string label = std::string(what) + " '" + name + "'";
  const DType dt = dtype(label);
  const Shape shape(dims(label, false, size_of(dt)));
  const std::uint64_t nbytes = u64(label.c_str());
  std::uint64_t expected = size_of(dt);
  for (auto d : shape) expected *= static_cast<std::uint64_t>(d);  // bounded by dims()
  if (nbytes != expected)
    fail(label + ": byte length " + std::to_string(nbytes) + " does not match " +
         std::string(to_string(dt)) + " " + shape.str() + " (" + std::to_string(expected) +
         " bytes)");
  if (nbytes > remaining())
    fail(label + ": " + std::to_string(nbytes) + " bytes of data, but only " +
         std::to_string(remaining()) + " left");
  Tensor t = Tensor::empty(shape, dt);
  if (nbytes > 0) {
    const auto n = static_cast<std::streamsize>(nbytes);
    if (size_of(dt) == 4)
      impl_->archive->loadBinary<4>(t.raw(), n);
    else
      impl_->archive->loadBinary<8>(t.raw(), n);
  }
  return {std::move(name), std::move(t)};
}

void ArchiveReader::expect_end() {
  if (remaining() != 0) fail(std::to_string(remaining()) + " unexpected bytes after the payload");
}

}  // namespace kiln::internal
