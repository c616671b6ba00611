// Internal: PNG and JPEG files decoded to f32 CHW in [0, 1] (stb_image).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace kiln::data {

/// [C, H, W] of an image.
using ImageShape = std::array<std::int64_t, 3>;

/// Decodes the PNG or JPEG file at `path` and appends its pixels to `out` as C*H*W floats
/// (value / 255). `channels` 0 keeps the file's channels, 1-4 converts. Returns its shape.
/// Throws std::runtime_error with the reason (the caller adds file, row and column) when the
/// file cannot be read or decoded, or is larger than the limits.
ImageShape decode_image_file(const std::string& path, int channels, std::vector<float>& out);

}  // namespace kiln::data
