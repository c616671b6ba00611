// Broadcasting an operand that holds the batch itself against one that does not, run with
// batch 1: [batch, 6, 1] * [1, 6, 4] (a step mask times a sequence, as the recurrent layers
// and attention masks build) must give [1, 6, 4], not an expand whose output "is not
// concrete" (broadcast_pair gives such an operand no `like`; its batch of 1 is the batch).
#include <gtest/gtest.h>

#include <vector>

#include "kiln/ops.hpp"
#include "kiln/runtime/executable.hpp"

namespace {

TEST(ExpandBatchOne, AnOperandWithTheBatchBroadcastsAtBatchOne) {
  kiln::Graph g;
  auto x = g.input("x", {kiln::batch, 6, 1});
  std::vector<float> w(24);
  for (std::size_t i = 0; i < w.size(); ++i) w[i] = static_cast<float>(i);
  auto y = g.constant(kiln::Tensor::from(w, kiln::Shape{1, 6, 4}), "y");
  auto p = kiln::mul(x, y);
  auto q = kiln::mul(y, x);
  ASSERT_EQ(p.shape(), (kiln::Shape{kiln::batch, 6, 4}));
  for (const char* backend : {"", "reference"}) {
    kiln::Executable exe(g, {p, q}, {.backend = backend});
    for (const std::int64_t rows : {1, 3}) {
      std::vector<float> xs(static_cast<std::size_t>(rows * 6));
      for (std::size_t i = 0; i < xs.size(); ++i) xs[i] = 0.5f * static_cast<float>(i + 1);
      const auto out = exe.run({{"x", kiln::Tensor::from(xs, kiln::Shape{rows, 6, 1})}});
      ASSERT_EQ(out[0].shape(), (kiln::Shape{rows, 6, 4})) << backend;
      const std::vector<float> a = out[0].to_vector<float>(), b = out[1].to_vector<float>();
      for (std::int64_t r = 0; r < rows; ++r)
        for (std::size_t t = 0; t < 6; ++t)
          for (std::size_t k = 0; k < 4; ++k) {
            const std::size_t i = (static_cast<std::size_t>(r) * 6 + t) * 4 + k;
            const float want = xs[static_cast<std::size_t>(r) * 6 + t] * w[t * 4 + k];
            EXPECT_EQ(a[i], want) << backend << " " << rows;
            EXPECT_EQ(b[i], want) << backend << " " << rows;
          }
    }
  }
}

}  // namespace
