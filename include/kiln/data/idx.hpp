// IDX files (the format of MNIST and Fashion-MNIST) as tensors and datasets.
//
//   kiln::Tensor pixels = kiln::data::read_idx("train-images-idx3-ubyte");   // i32 [60000, 28, 28]
//   kiln::data::Dataset train = kiln::data::read_mnist("train-images-idx3-ubyte",
//                                                      "train-labels-idx1-ubyte");
//   // train["features"]: f32 [60000, 1, 28, 28] in [0, 1]; train["target"]: i32 [60000]
//
// An IDX file is a 4-byte magic (0, 0, element type, rank), the dimensions as big-endian
// 32-bit counts, then the elements, big-endian, row-major.
#pragma once

#include <string>

#include "kiln/core/tensor.hpp"
#include "kiln/data/dataset.hpp"
#include "kiln/export.hpp"

namespace kiln::data {

/// The tensor an IDX file holds. Kiln has no 8- or 16-bit tensors: u8, i8 and i16 elements
/// become i32 (same values); i32, f32 and f64 keep their type. Throws IoError if the file
/// cannot be read, FormatError naming the file for a bad magic, a rank of 0, or a size that
/// does not match the dimensions (checked before anything is allocated).
KILN_API Tensor read_idx(const std::string& path);

/// MNIST-style images (u8, [N, H, W]) and labels (u8, [N]) as a dataset: "features" f32
/// [N, 1, H, W] holding pixel / 255 and "target" i32 [N], labels named "0".."k" for the
/// largest label k. FormatError as read_idx, or for other element types or ranks; DataError
/// naming both files when their counts differ.
KILN_API Dataset read_mnist(const std::string& images_path, const std::string& labels_path);

}  // namespace kiln::data
