// Image-path CSV columns: PNGs and a JPEG the test writes (stb_image_write) become NCHW f32
// in [0, 1]; bad images raise DataError naming the file, row, column and image.
#include <gtest/gtest.h>

#include <cmath>

#include "data_test_util.hpp"
#include "kiln/data/csv.hpp"

#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#include <stb/stb_image_write.h>

namespace kiln::data {
namespace {

using testing::mentions;
using testing::message_of;
using testing::TempDir;

constexpr int width = 8;
constexpr int height = 6;

// Pixel (x, y, channel k) of image i: a pattern that differs per image, channel and place.
unsigned char pixel(int i, int x, int y, int k) {
  return static_cast<unsigned char>((i * 37 + x * 11 + y * 29 + k * 83) % 256);
}

std::vector<unsigned char> image_bytes(int i, int channels, int w = width, int h = height) {
  std::vector<unsigned char> hwc;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int k = 0; k < channels; ++k) hwc.push_back(pixel(i, x, y, k));
  return hwc;
}

void write_png(const std::string& path, int i, int channels, int w = width, int h = height) {
  const auto hwc = image_bytes(i, channels, w, h);
  ASSERT_TRUE(stbi_write_png(path.c_str(), w, h, channels, hwc.data(), w * channels));
}

TEST(CsvImageTest, PngColumnBecomesNchwInUnitRange) {
  TempDir dir;
  std::filesystem::create_directories(dir.path() / "img");
  constexpr int count = 36;
  std::string csv = "path,label\n";
  for (int i = 0; i < count; ++i) {
    const std::string name = "img/p" + std::to_string(i) + ".png";
    write_png((dir.path() / name).string(), i, 3);
    csv += name + "," + (i % 3 == 0 ? "circle" : i % 3 == 1 ? "square" : "star") + "\n";
  }
  const auto [data, schema] = read_csv(dir.write("images.csv", csv), {.target = "label"});
  const Tensor& x = data["features"];
  ASSERT_EQ(x.shape(), Shape({count, 3, height, width}));
  const std::vector<float> v = x.to_vector<float>();
  for (int i = 0; i < count; ++i)
    for (int k = 0; k < 3; ++k)
      for (int y = 0; y < height; ++y)
        for (int px = 0; px < width; ++px)
          ASSERT_EQ(v[static_cast<std::size_t>(((i * 3 + k) * height + y) * width + px)],
                    static_cast<float>(pixel(i, px, y, k)) / 255.0f);
  EXPECT_EQ(data["target"].to_vector<std::int32_t>()[4], 1);
  EXPECT_EQ(data.info().labels, (std::vector<std::string>{"circle", "square", "star"}));
  EXPECT_TRUE(data.info().feature_names.empty());
  EXPECT_EQ(schema.features[0].kind, ColumnKind::image);
  EXPECT_EQ(schema.image_shape, (std::array<std::int64_t, 3>{3, height, width}));
  // The schema reads a new file's images the same way (and round-trips through JSON).
  const CsvSchema back = CsvSchema::from_json(schema.to_json());
  EXPECT_EQ(back, schema);
  const Dataset again =
      read_csv_with_schema(dir.write("one.csv", "label,path\nstar,img/p5.png\n"), back);
  EXPECT_EQ(
      again["features"].to_vector<float>(),
      std::vector<float>(v.begin() + 5 * 3 * height * width, v.begin() + 6 * 3 * height * width));
  EXPECT_EQ(again["target"].to_vector<std::int32_t>(), (std::vector<std::int32_t>{2}));
}

TEST(CsvImageTest, ChannelConversionAndForcedKind) {
  TempDir dir;
  write_png((dir.path() / "g0.png").string(), 0, 1);
  write_png((dir.path() / "g1.png").string(), 1, 1);
  write_png((dir.path() / "c0.png").string(), 2, 3);
  // Grey to RGB repeats the grey value; the column has no image suffix, so it is forced.
  const auto grey = dir.write("grey.csv", "file,y\ng0.png,0\ng1.png,1\n");
  const auto rgb = read_csv(grey, {.target = "y", .image_channels = 3});
  ASSERT_EQ(rgb.dataset["features"].shape(), Shape({2, 3, height, width}));
  const auto v = rgb.dataset["features"].to_vector<float>();
  for (int i = 0; i < 2; ++i)
    for (int k = 0; k < 3; ++k)
      for (int y = 0; y < height; ++y)
        for (int x = 0; x < width; ++x)
          ASSERT_EQ(v[static_cast<std::size_t>(((i * 3 + k) * height + y) * width + x)],
                    static_cast<float>(pixel(i, x, y, 0)) / 255.0f);
  // RGB to grey: stb_image's luma, (77 r + 150 g + 29 b) >> 8.
  const auto named = dir.write("named.csv", "file,y\nc0,0\nc0,1\n");
  std::filesystem::copy_file(dir.path() / "c0.png", dir.path() / "c0");
  const auto one =
      read_csv(named, {.target = "y", .kinds = {{"file", ColumnKind::image}}, .image_channels = 1});
  ASSERT_EQ(one.dataset["features"].shape(), Shape({2, 1, height, width}));
  const auto g = one.dataset["features"].to_vector<float>();
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x) {
      const int luma =
          (77 * pixel(2, x, y, 0) + 150 * pixel(2, x, y, 1) + 29 * pixel(2, x, y, 2)) >> 8;
      ASSERT_EQ(g[static_cast<std::size_t>(y * width + x)], static_cast<float>(luma) / 255.0f);
    }
}

TEST(CsvImageTest, JpegDecodes) {
  TempDir dir;
  // A flat colour survives JPEG compression within a step or two.
  std::vector<unsigned char> flat(16 * 16 * 3);
  for (std::size_t i = 0; i < flat.size(); ++i) flat[i] = i % 3 == 0 ? 200 : i % 3 == 1 ? 100 : 50;
  ASSERT_TRUE(stbi_write_jpg((dir.path() / "a.jpg").string().c_str(), 16, 16, 3, flat.data(), 95));
  write_png((dir.path() / "b.png").string(), 0, 3, 16, 16);
  const auto [data, schema] =
      read_csv(dir.write("j.csv", "img,y\na.jpg,0\nb.png,1\n"), {.target = "y"});
  ASSERT_EQ(data["features"].shape(), Shape({2, 3, 16, 16}));
  const auto v = data["features"].to_vector<float>();
  const float expected[3] = {200, 100, 50};
  for (int k = 0; k < 3; ++k)
    for (int i = 0; i < 256; ++i)
      EXPECT_NEAR(v[static_cast<std::size_t>(k * 256 + i)] * 255.0f, expected[k], 3.0f);
}

TEST(CsvImageTest, BadImages) {
  TempDir dir;
  write_png((dir.path() / "a.png").string(), 0, 3);
  write_png((dir.path() / "big.png").string(), 1, 3, width + 1, height);
  write_png((dir.path() / "grey.png").string(), 2, 1);
  dir.write("junk.png", "this is not a png at all");
  dir.write("empty.png", "");
  struct Case {
    std::string image;
    std::vector<std::string> parts;
  };
  const std::vector<Case> cases{
      {"missing.png", {"cannot read image", "missing.png", "no such file"}},
      {"junk.png", {"cannot read image", "junk.png", "not a PNG or JPEG"}},
      {"empty.png", {"cannot read image", "empty.png", "empty"}},
      {"big.png", {"'big.png' is [3, 6, 9]", "the first image ('a.png', row 2) is [3, 6, 8]"}},
      {"grey.png", {"'grey.png' is [1, 6, 8]", "image_channels"}},
  };
  for (const Case& c : cases) {
    const auto csv = dir.write("bad.csv", "file,y\na.png,0\n" + c.image + ",1\n");
    const std::string msg = message_of<DataError>([&] { read_csv(csv, {.target = "y"}); });
    EXPECT_TRUE(mentions(msg, {csv, "row 3", "column 'file'"})) << c.image;
    for (const std::string& part : c.parts) EXPECT_TRUE(mentions(msg, {part}));
  }
  // An image column with another feature.
  const auto two = dir.write("two.csv", "file,size,y\na.png,3,0\na.png,4,1\n");
  EXPECT_TRUE(mentions(message_of<DataError>([&] { read_csv(two, {.target = "y"}); }),
                       {two, "only feature", "'file (image)', 'size (numeric)'"}));
  // A new file whose image differs from the schema's.
  const auto [data, schema] =
      read_csv(dir.write("ok.csv", "file,y\na.png,0\na.png,1\n"), {.target = "y"});
  const auto eval = dir.write("eval.csv", "file,y\nbig.png,0\n");
  EXPECT_TRUE(mentions(message_of<DataError>([&] { read_csv_with_schema(eval, schema); }),
                       {eval, "row 2", "column 'file'", "[3, 6, 9]", "the schema says [3, 6, 8]"}));
}

}  // namespace
}  // namespace kiln::data
