// The one convolution / pooling geometry (src/internal/conv_geometry.hpp) against brute-force
// counts of window positions, its transposed size against the forward one, and sizes whose
// arithmetic would overflow int64: refused by the shape rules with a ShapeError, never
// computed (UBSan would flag a signed overflow).
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>

#include "internal/conv_geometry.hpp"
#include "kiln/core/error.hpp"
#include "kiln/graph/graph.hpp"
#include "kiln/ops.hpp"

namespace kiln::internal {
namespace {

constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();

// Output positions o >= 0 whose window o*stride + [0, dil*(k-1)] lies inside the padded input.
std::int64_t brute_force_out(std::int64_t in, std::int64_t k, std::int64_t stride, std::int64_t pad,
                             std::int64_t dil) {
  std::int64_t count = 0;
  for (std::int64_t start = 0; start + dil * (k - 1) < in + 2 * pad; start += stride) ++count;
  return count == 0 ? -1 : count;
}

TEST(ConvGeometry, WindowOutSizeMatchesABruteForceCount) {
  for (std::int64_t in = 0; in <= 12; ++in)
    for (std::int64_t k = 1; k <= 4; ++k)
      for (std::int64_t stride = 1; stride <= 3; ++stride)
        for (std::int64_t pad = 0; pad <= 2; ++pad)
          for (std::int64_t dil = 1; dil <= 3; ++dil)
            EXPECT_EQ(window_out_size(in, k, stride, pad, dil),
                      brute_force_out(in, k, stride, pad, dil))
                << "in " << in << " k " << k << " stride " << stride << " pad " << pad << " dil "
                << dil;
}

TEST(ConvGeometry, TransposedSizeInvertsTheForwardSize) {
  // conv_transpose2d's output is the input of the conv2d it is the adjoint of.
  for (std::int64_t in = 1; in <= 9; ++in)
    for (std::int64_t k = 1; k <= 4; ++k)
      for (std::int64_t stride = 1; stride <= 3; ++stride)
        for (std::int64_t pad = 0; pad <= 1; ++pad)
          for (std::int64_t dil = 1; dil <= 2; ++dil)
            for (std::int64_t op = 0; op < stride; ++op) {
              const std::int64_t out = transposed_out_size(in, k, stride, pad, dil, op);
              if (out < 1) continue;
              EXPECT_EQ(window_out_size(out, k, stride, pad, dil), in)
                  << "in " << in << " k " << k << " stride " << stride << " pad " << pad << " dil "
                  << dil << " output_padding " << op;
            }
}

TEST(ConvGeometry, OverflowingArithmeticCountsAsNotFitting) {
  EXPECT_EQ(window_out_size(kMax, 1, 1, 1, 1), -1);   // in + 2*pad
  EXPECT_EQ(window_out_size(10, kMax, 1, 0, 2), -1);  // dil*(k-1)
  EXPECT_EQ(window_out_size(kMax - 1, 1, 1, 0, 1), kMax - 1);
  EXPECT_EQ(transposed_out_size(kMax / 2, 2, 4, 0, 1, 0), -1);  // (in-1)*stride
  EXPECT_EQ(transposed_out_size(2, kMax, 1, 0, 2, 0), -1);      // dil*(k-1)
  EXPECT_EQ(transposed_out_size(3, 2, 2, 0, 1, 1), 7);          // 2*2 + 1*1 + 1 + 1
}

TEST(ConvGeometry, ShapeRulesRefuseOverflowingAttributes) {
  Graph g;
  Value x = g.input("x", {1, 1, 8, 8});
  Value w = g.input("w", {1, 1, 3, 3});
  Conv2dOptions huge_pad;
  huge_pad.padding = {kMax / 2, 0};
  EXPECT_THROW(conv2d(x, w, {}, huge_pad), ShapeError);
  Conv2dOptions huge_dilation;
  huge_dilation.dilation = {kMax / 2, 1};
  EXPECT_THROW(conv2d(x, w, {}, huge_dilation), ShapeError);
  ConvTranspose2dOptions huge_stride;
  huge_stride.stride = {kMax / 4, 1};
  EXPECT_THROW(conv_transpose2d(x, w, {}, huge_stride), ShapeError);
  Pool2dOptions huge_kernel;
  huge_kernel.kernel = {kMax, 2};
  huge_kernel.padding = {kMax / 2, 0};
  EXPECT_THROW(max_pool2d(x, huge_kernel), ShapeError);
}

TEST(ConvGeometry, ErrorsNameWhatDoesNotFit) {
  Attrs a;
  a.groups = 2;
  EXPECT_NE(conv_geometry_error(a, Shape{1, 3, 8, 8}, Shape{1, 4, 6, 6}, 3, 3).find("groups"),
            std::string::npos);
  a.groups = 1;
  EXPECT_EQ(conv_geometry_error(a, Shape{1, 3, 8, 8}, Shape{1, 4, 6, 6}, 3, 3), "");
  EXPECT_NE(conv_geometry_error(a, Shape{1, 3, 8, 8}, Shape{1, 4, 5, 6}, 3, 3), "");
  a.kernel = {2, 2};
  a.stride = {2, 2};
  Shape pooled;
  EXPECT_EQ(pooled_shape(a, Shape{2, 3, 7, 6}, &pooled), "");
  EXPECT_EQ(pooled, (Shape{2, 3, 3, 3}));
  a.padding = {2, 0};
  EXPECT_NE(pooled_shape(a, Shape{2, 3, 7, 6}, &pooled).find("half the kernel"), std::string::npos);
}

}  // namespace
}  // namespace kiln::internal
