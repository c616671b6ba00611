#include "data/image.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <stdexcept>

#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_STATIC
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_NO_STDIO
#define STBI_MAX_DIMENSIONS 32768
#include <stb/stb_image.h>

namespace kiln::data {
namespace {

constexpr long max_file_bytes = 256L << 20;
constexpr std::int64_t max_values = std::int64_t{1} << 28;  // C*H*W of one image

std::vector<unsigned char> read_file(const std::string& path) {
  // Only regular files: a FIFO or a device would block or never end.
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(status)) throw std::runtime_error("no such file");
  if (!std::filesystem::is_regular_file(status)) throw std::runtime_error("not a regular file");
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) throw std::runtime_error(std::strerror(errno));
  if (std::fseek(f.get(), 0, SEEK_END) != 0) throw std::runtime_error(std::strerror(errno));
  const long size = std::ftell(f.get());
  if (size < 0) throw std::runtime_error(std::strerror(errno));
  if (size > max_file_bytes)
    throw std::runtime_error(std::to_string(size) + " bytes is more than the " +
                             std::to_string(max_file_bytes) + " an image file may have");
  std::rewind(f.get());
  std::vector<unsigned char> bytes(static_cast<std::size_t>(size));
  if (std::fread(bytes.data(), 1, bytes.size(), f.get()) != bytes.size())
    throw std::runtime_error(std::ferror(f.get()) ? std::strerror(errno) : "the file got shorter");
  return bytes;
}

}  // namespace

ImageShape decode_image_file(const std::string& path, int channels, std::vector<float>& out) {
  const std::vector<unsigned char> bytes = read_file(path);
  if (bytes.empty()) throw std::runtime_error("the file is empty");
  if (bytes.size() > static_cast<std::size_t>(INT32_MAX)) throw std::runtime_error("too large");
  const int length = static_cast<int>(bytes.size());
  int width = 0;
  int height = 0;
  int file_channels = 0;
  if (!stbi_info_from_memory(bytes.data(), length, &width, &height, &file_channels))
    throw std::runtime_error(std::string("not a PNG or JPEG image (") + stbi_failure_reason() +
                             ")");
  const int c = channels == 0 ? file_channels : channels;
  const std::int64_t values = std::int64_t{width} * height * c;
  if (width < 1 || height < 1 || values > max_values)
    throw std::runtime_error(std::to_string(width) + "x" + std::to_string(height) +
                             " pixels is outside the sizes Kiln reads");
  int w = 0;
  int h = 0;
  int n = 0;
  std::unique_ptr<stbi_uc, void (*)(void*)> pixels(
      stbi_load_from_memory(bytes.data(), length, &w, &h, &n, c), &stbi_image_free);
  if (!pixels) throw std::runtime_error(std::string("cannot decode: ") + stbi_failure_reason());
  if (w != width || h != height)
    throw std::runtime_error("the header and the pixels disagree on the size");
  const std::size_t plane = static_cast<std::size_t>(w) * static_cast<std::size_t>(h);
  const std::size_t at = out.size();
  out.resize(at + plane * static_cast<std::size_t>(c));
  float* dst = out.data() + at;
  const stbi_uc* src = pixels.get();
  for (std::size_t i = 0; i < plane; ++i)
    for (int k = 0; k < c; ++k)
      dst[static_cast<std::size_t>(k) * plane + i] =
          static_cast<float>(src[i * static_cast<std::size_t>(c) + static_cast<std::size_t>(k)]) /
          255.0f;
  return {c, h, w};
}

}  // namespace kiln::data
