// Uses Kiln::kiln_infer alone, as an installed package: builds y = relu(x W + b), compiles
// and runs it, and checks the result against the same computation written as plain loops.
#include <cmath>
#include <cstdio>
#include <vector>

#include "kiln/core/error.hpp"
#include "kiln/core/tensor.hpp"
#include "kiln/graph/graph.hpp"
#include "kiln/ops.hpp"
#include "kiln/runtime/executable.hpp"
#include "kiln/version.hpp"

int main() {
  constexpr int rows = 4, in = 3, out = 2;
  const std::vector<float> w = {0.5f, -1.0f, 0.25f, 2.0f, -0.75f, 0.1f};  // [3, 2]
  const std::vector<float> b = {0.1f, -0.2f};
  const std::vector<float> x = {1, 2, 3, -1, 0.5f, 2, 0, 0, 1, 3, -2, 0.25f};  // [4, 3]

  kiln::Graph g;
  kiln::Value xv = g.input("x", {kiln::batch, in});
  kiln::Value wv = g.parameter("w", kiln::Tensor::from(w, {in, out}));
  kiln::Value bv = g.parameter("b", kiln::Tensor::from(b, {out}));
  kiln::Value y = kiln::relu(kiln::matmul(xv, wv) + bv);

  kiln::Executable exe(g, {y});
  const kiln::Tensor result = exe.run({{"x", kiln::Tensor::from(x, {rows, in})}}).at(0);
  if (result.shape() != kiln::Shape{rows, out}) {
    std::fprintf(stderr, "unexpected output shape %s\n", result.shape().str().c_str());
    return 1;
  }
  const std::vector<float> got = result.to_vector<float>();
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < out; ++c) {
      float expected = b[c];
      for (int k = 0; k < in; ++k) expected += x[r * in + k] * w[k * out + c];
      expected = expected > 0.0f ? expected : 0.0f;
      if (std::fabs(got[r * out + c] - expected) > 1e-5f) {
        std::fprintf(stderr, "y[%d, %d] = %g, expected %g\n", r, c, got[r * out + c], expected);
        return 1;
      }
    }
  }

  // Typed errors cross the library boundary intact.
  bool caught = false;
  try {
    kiln::Value bad = g.parameter("w_bad", kiln::Tensor::zeros({in + 1, out}));
    (void)kiln::matmul(xv, bad);
  } catch (const kiln::ShapeError& e) {
    caught = true;
    std::printf("ShapeError as expected: %s\n", e.what());
  }
  if (!caught) {
    std::fprintf(stderr, "matmul [batch, 3] x [4, 2] did not throw kiln::ShapeError\n");
    return 1;
  }
  std::printf("kiln %s: inference consumer OK\n", kiln::version_string);
  return 0;
}
