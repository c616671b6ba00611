// Tensor's eager helpers (argmax, sum, mean, comparisons) against loops written out here,
// for every dtype and for strided views; and printing, full and abridged.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "kiln/core/tensor.hpp"

namespace kiln {
namespace {

// A [2, 3, 4] tensor of `dt` with element k = (k * 7) % 11 - 5 (ties included).
Tensor sample(DType dt) {
  std::vector<double> v(24);
  for (std::size_t k = 0; k < v.size(); ++k) v[k] = static_cast<double>((k * 7) % 11) - 5.0;
  return Tensor::from<double>(v, {2, 3, 4}).to(dt);
}

double elem(const Tensor& t, std::int64_t i, std::int64_t j, std::int64_t k) {
  return t.at((i * t.dim(1) + j) * t.dim(2) + k);
}

TEST(TensorHelpers, ArgmaxSumAndMeanAlongEveryAxisAndDtype) {
  for (DType dt : {f32, f64, i32, i64}) {
    const Tensor t = sample(dt);
    for (std::int64_t axis = 0; axis < 3; ++axis) {
      const Tensor am = t.argmax(axis);
      const Tensor am_neg = t.argmax(axis - 3);
      const Tensor s = t.sum(axis);
      const Tensor m = t.mean(axis, /*keepdims=*/true);
      EXPECT_EQ(am.dtype(), i64);
      EXPECT_EQ(s.dtype(), is_integer(dt) ? i64 : dt);
      EXPECT_EQ(m.dtype(), is_integer(dt) ? f64 : dt);
      std::vector<std::int64_t> dims = {2, 3, 4};
      const std::int64_t len = dims[static_cast<std::size_t>(axis)];
      dims.erase(dims.begin() + axis);
      EXPECT_EQ(am.shape(), Shape(dims));
      EXPECT_EQ(m.rank(), 3u);
      EXPECT_EQ(m.dim(static_cast<std::size_t>(axis)), 1);
      // Independent loops over the other two axes.
      std::int64_t flat = 0;
      for (std::int64_t p = 0; p < dims[0]; ++p) {
        for (std::int64_t q = 0; q < dims[1]; ++q, ++flat) {
          auto at = [&](std::int64_t r) {
            return axis == 0 ? elem(t, r, p, q) : axis == 1 ? elem(t, p, r, q) : elem(t, p, q, r);
          };
          std::int64_t best = 0;
          double total = 0;
          for (std::int64_t r = 0; r < len; ++r) {
            if (at(r) > at(best)) best = r;
            total += at(r);
          }
          EXPECT_EQ(am.at(flat), static_cast<double>(best));
          EXPECT_EQ(am_neg.at(flat), static_cast<double>(best));
          EXPECT_NEAR(s.at(flat), total, 1e-5);
          EXPECT_NEAR(m.at(flat), total / static_cast<double>(len), 1e-6);
        }
      }
    }
    double total = 0;
    for (std::int64_t k = 0; k < 24; ++k) total += t.at(k);
    EXPECT_EQ(t.sum(), total);
    EXPECT_DOUBLE_EQ(t.mean(), total / 24.0);
  }
}

TEST(TensorHelpers, WorkOnStridedViewsAndHandleTiesNanAndErrors) {
  // A transposed view: argmax along axis 1 of the [3, 2] view = along axis 0 of the data.
  const Tensor base = Tensor::from({1.f, 9.f, 5.f, 2.f, 5.f, 3.f}, Shape{2, 3});
  const Tensor view = base.permute({1, 0});
  EXPECT_EQ(view.argmax(1).to_vector<std::int64_t>(), (std::vector<std::int64_t>{1, 0, 0}));
  EXPECT_EQ(view.sum(1).to_vector<float>(), (std::vector<float>{3, 14, 8}));
  const Tensor rows = base.rows(1, 2);
  EXPECT_EQ(rows.argmax(1).to_vector<std::int64_t>(), (std::vector<std::int64_t>{1}));
  // Ties: the first; NaN: taken as the largest.
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const Tensor t = Tensor::from({2.f, 7.f, 7.f, 1.f, 1.f, nan, 9.f, nan}, Shape{2, 4});
  EXPECT_EQ(t.argmax(1).to_vector<std::int64_t>(), (std::vector<std::int64_t>{1, 1}));
  EXPECT_TRUE(std::isnan(t.sum()));
  // Integer sums are exact beyond float precision.
  const Tensor big = Tensor::from<std::int64_t>({(1LL << 53) + 1, 1}, {2});
  EXPECT_EQ(big.sum(0).to_vector<std::int64_t>()[0], (1LL << 53) + 2);
  // Errors.
  EXPECT_THROW(t.argmax(2), ShapeError);
  EXPECT_THROW(t.sum(-3), ShapeError);
  EXPECT_THROW(Tensor::zeros({2, 0}).argmax(1), ShapeError);
  EXPECT_THROW(Tensor().sum(), ValueError);
  EXPECT_TRUE(std::isnan(Tensor::zeros({0}).mean()));
  EXPECT_EQ(Tensor::zeros({0}).sum(), 0.0);
}

TEST(TensorHelpers, ComparisonsGiveMasksAcrossDtypesWithBroadcasting) {
  // Accuracy without a loop: argmax (i64) against i32 labels.
  const Tensor probs = Tensor::from({0.1f, 0.7f, 0.2f,  //
                                     0.5f, 0.3f, 0.2f,  //
                                     0.2f, 0.2f, 0.6f,  //
                                     0.3f, 0.4f, 0.3f},
                                    Shape{4, 3});
  const Tensor labels = Tensor::from<std::int32_t>({1, 2, 2, 1}, {4});
  const Tensor hits = probs.argmax(1) == labels;
  EXPECT_EQ(hits.dtype(), i32);
  EXPECT_EQ(hits.to_vector<std::int32_t>(), (std::vector<std::int32_t>{1, 0, 1, 1}));
  EXPECT_DOUBLE_EQ((probs.argmax(1) == labels).mean(), 0.75);
  EXPECT_EQ((probs.argmax(1) != labels).sum(), 1.0);

  // Every operator, tensor against tensor (f64 vs i64) and against a number.
  const Tensor a = Tensor::from({1.0, 2.0, 3.0}, Shape{3});
  const Tensor b = Tensor::from<std::int64_t>({2, 2, 2}, {3});
  using V = std::vector<std::int32_t>;
  EXPECT_EQ((a == b).to_vector<std::int32_t>(), (V{0, 1, 0}));
  EXPECT_EQ((a != b).to_vector<std::int32_t>(), (V{1, 0, 1}));
  EXPECT_EQ((a < b).to_vector<std::int32_t>(), (V{1, 0, 0}));
  EXPECT_EQ((a <= b).to_vector<std::int32_t>(), (V{1, 1, 0}));
  EXPECT_EQ((a > b).to_vector<std::int32_t>(), (V{0, 0, 1}));
  EXPECT_EQ((a >= b).to_vector<std::int32_t>(), (V{0, 1, 1}));
  EXPECT_EQ((a == 2).to_vector<std::int32_t>(), (V{0, 1, 0}));
  EXPECT_EQ((a != 2).to_vector<std::int32_t>(), (V{1, 0, 1}));
  EXPECT_EQ((a < 2.5).to_vector<std::int32_t>(), (V{1, 1, 0}));
  EXPECT_EQ((a <= 2).to_vector<std::int32_t>(), (V{1, 1, 0}));
  EXPECT_EQ((a > 1).to_vector<std::int32_t>(), (V{0, 1, 1}));
  EXPECT_EQ((a >= 3).to_vector<std::int32_t>(), (V{0, 0, 1}));
  // Large int64 values compare exactly (as doubles they would be equal).
  const Tensor x = Tensor::from<std::int64_t>({(1LL << 53) + 1}, {1});
  const Tensor y = Tensor::from<std::int64_t>({1LL << 53}, {1});
  EXPECT_EQ((x == y).to_vector<std::int32_t>(), (V{0}));
  // NaN: only != holds.
  const Tensor n = Tensor::from({std::nan("")}, Shape{1});
  EXPECT_EQ((n == n).sum() + (n < n).sum() + (n >= n).sum(), 0.0);
  EXPECT_EQ((n != n).sum(), 1.0);

  // Broadcasting: [2, 1] against [3] -> [2, 3].
  const Tensor col = Tensor::from<std::int32_t>({1, 3}, {2, 1});
  const Tensor row = Tensor::from<std::int32_t>({1, 2, 3}, {3});
  const Tensor grid = col >= row;
  EXPECT_EQ(grid.shape(), (Shape{2, 3}));
  EXPECT_EQ(grid.to_vector<std::int32_t>(), (V{1, 0, 0, 1, 1, 1}));
  try {
    (void)(Tensor::zeros({2, 3}) == Tensor::zeros({2}));
    ADD_FAILURE() << "no error";
  } catch (const ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("[2, 3] and [2]"), std::string::npos) << e.what();
  }
  EXPECT_THROW((void)(Tensor() == a), ValueError);
}

TEST(TensorPrinting, ShowsDtypeShapeAndAlignedValues) {
  const Tensor t = Tensor::from({1.f, -2.5f, 3.f, 4.f, 5.f, 6.f}, Shape{2, 3});
  EXPECT_EQ(t.to_string(),
            "Tensor(f32, [2, 3])\n"
            "[[   1, -2.5,    3],\n"
            " [   4,    5,    6]]");
  std::ostringstream os;
  os << t;
  EXPECT_EQ(os.str(), t.to_string());

  EXPECT_EQ(Tensor::scalar(7, i64).to_string(), "Tensor(i64, [])\n7");
  EXPECT_EQ(Tensor().to_string(), "Tensor()");
  EXPECT_EQ(Tensor::zeros({0, 3}).to_string(), "Tensor(f32, [0, 3])\n[]");
  EXPECT_EQ(Tensor::from({1.0, std::nan(""), -std::numeric_limits<double>::infinity()}, Shape{3})
                .to_string(),
            "Tensor(f64, [3])\n[   1,  nan, -inf]");
  // Rank 3: a blank line between the blocks; a strided view prints in logical order.
  const Tensor cube = Tensor::from<std::int32_t>({0, 1, 2, 3, 4, 5, 6, 7}, {2, 2, 2});
  EXPECT_EQ(cube.to_string(),
            "Tensor(i32, [2, 2, 2])\n"
            "[[[0, 1],\n"
            "  [2, 3]],\n"
            "\n"
            " [[4, 5],\n"
            "  [6, 7]]]");
  EXPECT_EQ(t.permute({1, 0}).to_string(),
            "Tensor(f32, [3, 2])\n"
            "[[   1,    4],\n"
            " [-2.5,    5],\n"
            " [   3,    6]]");
}

TEST(TensorPrinting, AbridgesLargeTensorsLikePyTorch) {
  std::vector<std::int32_t> v(100 * 100);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<std::int32_t>(i);
  const Tensor t = Tensor::from(v, {100, 100});
  const std::string s = t.to_string();
  const std::string want_start =
      "Tensor(i32, [100, 100])\n"
      "[[   0,    1,    2, ...,   97,   98,   99],\n"
      " [ 100,  101,  102, ...,  197,  198,  199],\n"
      " [ 200,  201,  202, ...,  297,  298,  299],\n"
      " ...,\n"
      " [9700, 9701, 9702, ..., 9797, 9798, 9799],\n";
  EXPECT_EQ(s.substr(0, want_start.size()), want_start) << s;
  EXPECT_EQ(s.substr(s.size() - 12), "9998, 9999]]") << s;
  EXPECT_LT(s.size(), 400u);
  // Below the threshold everything is shown; the threshold and edge are options.
  EXPECT_EQ(Tensor::from<std::int32_t>({1, 2, 3, 4, 5}, {5}).to_string(),
            "Tensor(i32, [5])\n[1, 2, 3, 4, 5]");
  EXPECT_EQ(Tensor::from<std::int32_t>({1, 2, 3, 4, 5}, {5}).to_string(4, 1),
            "Tensor(i32, [5])\n[1, ..., 5]");
}

}  // namespace
}  // namespace kiln
