// IDX files: every element type, big-endian dimensions and values, MNIST datasets, and bad
// files (magic, rank, truncation, sizes that do not match) as errors naming the file.
#include <gtest/gtest.h>

#include <cstring>

#include "data_test_util.hpp"
#include "kiln/data/idx.hpp"

namespace kiln::data {
namespace {

using testing::mentions;
using testing::message_of;
using testing::TempDir;

// Big-endian bytes of `v`, written independently of the reader.
template <class T>
std::string big_endian(T v) {
  unsigned char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  std::string out;
  for (std::size_t i = 0; i < sizeof(T); ++i) out += static_cast<char>(b[sizeof(T) - 1 - i]);
  return out;
}

std::string header(unsigned char type, const std::vector<std::uint32_t>& dims) {
  std::string h{'\0', '\0', static_cast<char>(type), static_cast<char>(dims.size())};
  for (std::uint32_t d : dims) h += big_endian(d);
  return h;
}

TEST(IdxTest, EveryElementType) {
  TempDir dir;
  {
    std::string body;
    for (int v : {0, 1, 127, 128, 255, 42}) body += static_cast<char>(v);
    const Tensor t = read_idx(dir.write("u8.idx", header(0x08, {2, 3}) + body));
    EXPECT_EQ(t.shape(), Shape({2, 3}));
    EXPECT_EQ(t.dtype(), DType::i32);
    EXPECT_EQ(t.to_vector<std::int32_t>(), (std::vector<std::int32_t>{0, 1, 127, 128, 255, 42}));
  }
  {
    std::string body;
    for (int v : {-128, -1, 0, 127}) body += static_cast<char>(static_cast<std::int8_t>(v));
    const Tensor t = read_idx(dir.write("i8.idx", header(0x09, {4}) + body));
    EXPECT_EQ(t.to_vector<std::int32_t>(), (std::vector<std::int32_t>{-128, -1, 0, 127}));
  }
  {
    std::string body;
    for (std::int16_t v :
         {std::int16_t{-32768}, std::int16_t{-2}, std::int16_t{300}, std::int16_t{32767}})
      body += big_endian(v);
    const Tensor t = read_idx(dir.write("i16.idx", header(0x0B, {2, 1, 2}) + body));
    EXPECT_EQ(t.shape(), Shape({2, 1, 2}));
    EXPECT_EQ(t.to_vector<std::int32_t>(), (std::vector<std::int32_t>{-32768, -2, 300, 32767}));
  }
  {
    std::string body = big_endian(std::int32_t{-70000}) + big_endian(std::int32_t{2147483647});
    EXPECT_EQ(read_idx(dir.write("i32.idx", header(0x0C, {2}) + body)).to_vector<std::int32_t>(),
              (std::vector<std::int32_t>{-70000, 2147483647}));
  }
  {
    const std::vector<float> values{0.1f, -2.5f, 1e-40f, 3.4e38f};
    std::string body;
    for (float v : values) body += big_endian(v);
    const Tensor t = read_idx(dir.write("f32.idx", header(0x0D, {2, 2}) + body));
    EXPECT_EQ(t.dtype(), DType::f32);
    EXPECT_EQ(t.to_vector<float>(), values);
  }
  {
    const std::vector<double> values{0.1, -1e-300, 12345.678};
    std::string body;
    for (double v : values) body += big_endian(v);
    const Tensor t = read_idx(dir.write("f64.idx", header(0x0E, {3}) + body));
    EXPECT_EQ(t.dtype(), DType::f64);
    EXPECT_EQ(t.to_vector<double>(), values);
  }
  // An empty dimension is a valid, empty tensor.
  EXPECT_EQ(read_idx(dir.write("empty.idx", header(0x08, {0, 5}))).shape(), Shape({0, 5}));
}

TEST(IdxTest, Mnist) {
  TempDir dir;
  const std::uint32_t n = 5;
  const std::uint32_t h = 3;
  const std::uint32_t w = 4;
  std::string pixels;
  for (std::uint32_t i = 0; i < n * h * w; ++i) pixels += static_cast<char>((i * 7) % 256);
  const auto images = dir.write("images", header(0x08, {n, h, w}) + pixels);
  const auto labels = dir.write("labels", header(0x08, {n}) + std::string{3, 0, 9, 3, 1});
  const Dataset d = read_mnist(images, labels);
  EXPECT_EQ(d["features"].shape(), Shape({5, 1, 3, 4}));
  const auto x = d["features"].to_vector<float>();
  for (std::uint32_t i = 0; i < n * h * w; ++i)
    ASSERT_EQ(x[i], static_cast<float>((i * 7) % 256) / 255.0f);
  EXPECT_EQ(d["target"].to_vector<std::int32_t>(), (std::vector<std::int32_t>{3, 0, 9, 3, 1}));
  EXPECT_EQ(d.info().labels,
            (std::vector<std::string>{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}));
  EXPECT_EQ(d.info().source, images);

  const auto few = dir.write("few", header(0x08, {4}) + std::string{1, 2, 3, 4});
  EXPECT_TRUE(mentions(message_of<DataError>([&] { read_mnist(images, few); }),
                       {images, "5 images", few, "4 labels"}));
  EXPECT_TRUE(mentions(message_of<FormatError>([&] { read_mnist(labels, labels); }),
                       {labels, "[N, H, W]"}));
  const auto wide = dir.write("wide", header(0x0C, {5}) + std::string(20, '\0'));
  EXPECT_TRUE(mentions(message_of<FormatError>([&] { read_mnist(images, wide); }),
                       {wide, "u8 [N]", "i32"}));
}

TEST(IdxTest, BadFiles) {
  TempDir dir;
  struct Case {
    std::string bytes;
    std::string says;
  };
  const std::vector<Case> cases{
      {"", "ends inside the magic"},
      {std::string{'\0', '\0', '\x08'}, "ends inside the magic"},
      {std::string{'\1', '\0', '\x08', '\1'} + big_endian(std::uint32_t{1}) + "x",
       "two zero bytes"},
      {std::string{'\0', '\0', '\x07', '\1'} + big_endian(std::uint32_t{1}) + "x",
       "unknown element type 0x07"},
      {std::string{'\0', '\0', '\x08', '\0'}, "rank 0"},
      {header(0x08, {2, 3}).substr(0, 7), "ends inside the dimensions"},
      {header(0x08, {2, 3}) + "abcde", "need more than the 5 bytes"},
      {header(0x08, {2, 3}) + "abcdefg", "7 bytes after the header, but the dimensions need 6"},
      {header(0x0D, {0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF}) + "abcd",
       "[4294967295, 4294967295, 4294967295] of f32"},
  };
  for (const Case& c : cases) {
    const auto path = dir.write("bad.idx", c.bytes);
    EXPECT_TRUE(mentions(message_of<FormatError>([&] { read_idx(path); }),
                         {path, "not an IDX file", c.says}));
  }
  const auto missing = (dir.path() / "missing.idx").string();
  EXPECT_TRUE(mentions(message_of<IoError>([&] { read_idx(missing); }), {missing, "cannot open"}));
}

}  // namespace
}  // namespace kiln::data
