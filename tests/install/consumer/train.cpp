// Uses Kiln::kiln as an installed package: fits y = relu(x W + b) to targets made by a
// known W*, b* with kiln::grad and SGD with momentum, and checks that the loss went down.
#include <cmath>
#include <cstdio>
#include <span>
#include <vector>

#include "kiln/autodiff.hpp"
#include "kiln/core/rng.hpp"
#include "kiln/core/tensor.hpp"
#include "kiln/graph/graph.hpp"
#include "kiln/ops.hpp"
#include "kiln/optim/optimizer.hpp"
#include "kiln/runtime/executable.hpp"

int main() {
  constexpr int rows = 16, in = 3, out = 2, steps = 100;
  const float w_true[in][out] = {{1.0f, -0.5f}, {0.5f, 1.5f}, {-1.0f, 0.25f}};
  const float b_true[out] = {0.5f, 0.25f};

  // Inputs and targets: x ~ U(-1, 1), t = relu(x W* + b*), computed here with plain loops.
  kiln::Rng rng(7);
  std::vector<float> x(rows * in), t(rows * out);
  for (float& v : x) v = static_cast<float>(rng.uniform(-1.0, 1.0));
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < out; ++c) {
      float s = b_true[c];
      for (int k = 0; k < in; ++k) s += x[r * in + k] * w_true[k][c];
      t[r * out + c] = s > 0.0f ? s : 0.0f;
    }
  }

  kiln::Graph g;
  kiln::Value xv = g.input("x", {kiln::batch, in});
  kiln::Value tv = g.input("target", {kiln::batch, out});
  kiln::Value w = g.parameter("w", kiln::Tensor::full({in, out}, 0.1));
  kiln::Value b = g.parameter("b", kiln::Tensor::full({out}, 0.1));
  kiln::Value y = kiln::relu(kiln::matmul(xv, w) + b);
  kiln::Value loss = kiln::mse(y, tv);

  const std::vector<kiln::Value> grads = kiln::grad(loss, {w, b});
  kiln::CompileOptions train_mode;
  train_mode.training = true;  // training mode: dropout (if any) is active
  kiln::Executable step(g, {loss, grads[0], grads[1]}, train_mode);
  kiln::optim::SGD opt({g.tensor(w), g.tensor(b)}, {.lr = 0.1, .momentum = 0.9});

  const kiln::Feeds feeds = {{"x", kiln::Tensor::from(x, {rows, in})},
                             {"target", kiln::Tensor::from(t, {rows, out})}};
  double first = 0.0, last = 0.0;
  for (int i = 0; i < steps; ++i) {
    std::span<const kiln::Tensor> outs = step.run_views(feeds);
    last = outs[0].item();
    if (i == 0) first = last;
    opt.step(outs.subspan(1));
  }
  std::printf("loss %.6f -> %.6f after %d SGD steps\n", first, last, steps);
  if (!std::isfinite(last) || !(last < 0.1 * first)) {
    std::fprintf(stderr, "the loss did not decrease by 10x\n");
    return 1;
  }
  if (opt.step_count() != steps) {
    std::fprintf(stderr, "optimizer counted %lld steps, expected %d\n",
                 static_cast<long long>(opt.step_count()), steps);
    return 1;
  }
  return 0;
}
