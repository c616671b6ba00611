// PNG bytes (e.g. a browser screenshot) decoded to RGBA pixels with stb_image, so a test
// can check what a page showed. A test that includes this header must not compile
// stb_image's implementation itself (this header does, with static functions).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <vector>

#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#include <stb/stb_image.h>

namespace kiln_test {

struct RgbaImage {
  int width = 0;
  int height = 0;
  std::vector<std::uint8_t> pixels;  ///< row-major, 4 bytes (R, G, B, A) per pixel

  const std::uint8_t* at(int x, int y) const {
    return pixels.data() + (static_cast<std::size_t>(y) * static_cast<std::size_t>(width) +
                            static_cast<std::size_t>(x)) *
                               4;
  }
};

/// Decodes PNG bytes; throws std::runtime_error with stb_image's reason when they are not one.
inline RgbaImage decode_png(const std::vector<std::uint8_t>& png) {
  int w = 0, h = 0, channels = 0;
  stbi_uc* data =
      stbi_load_from_memory(png.data(), static_cast<int>(png.size()), &w, &h, &channels, 4);
  if (!data) throw std::runtime_error(std::string("not a PNG: ") + stbi_failure_reason());
  RgbaImage image{w, h,
                  std::vector<std::uint8_t>(data, data + static_cast<std::size_t>(w) * h * 4)};
  stbi_image_free(data);
  return image;
}

}  // namespace kiln_test
