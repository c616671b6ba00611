// The Eigen CNN kernels (conv2d, conv_transpose2d, conv2d_backward_weights, pooling and
// their backward kernels, batch_norm and its backward kernel, upsample_nearest2d, and the
// fused bias / ReLU epilogue of matmul) against the reference kernels on odd shapes:
// non-square images, strides 2 and 3, padding, dilation 2, groups 2 and depthwise, batch 1,
// 1x1 kernels, output_padding, sizes at vector/tile boundaries (7, 8, 9, 15, 16, 17), and
// sizes large enough to take the multi-threaded paths. Every case runs again with a NaN, a
// +Inf and a -Inf in its first input.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "internal/kernel.hpp"
#include "internal/op_info.hpp"
#include "kiln/core/error.hpp"
#include "kiln/core/rng.hpp"
#include "kiln/core/tensor.hpp"
#include "kiln/core/threads.hpp"
#include "tests/support/kernel_test_support.hpp"

namespace kiln::internal {
namespace {

using Case = kiln_test::KernelCase;
using kiln_test::clone_inputs;
using kiln_test::find_kernel;
using kiln_test::random;
using kiln_test::run_kernel;

std::string describe(const Case& c) {
  std::ostringstream s;
  s << op_name(c.op) << " inputs";
  for (const Tensor& t : c.inputs) s << " " << t.shape().str();
  const Attrs& a = c.attrs;
  s << " kernel=" << a.kernel[0] << "x" << a.kernel[1] << " stride=" << a.stride[0] << ","
    << a.stride[1] << " pad=" << a.padding[0] << "," << a.padding[1] << " dil=" << a.dilation[0]
    << "," << a.dilation[1] << " outpad=" << a.output_padding[0] << "," << a.output_padding[1]
    << " groups=" << a.groups << " include_pad=" << a.include_pad
    << " relu=" << (a.post_op == PostOp::relu) << " training=" << c.run.training;
  return s.str();
}

/// |got - want| <= rel * (largest finite |want|) + 1e-6 elementwise; NaN matches only NaN,
/// an infinity only the same infinity.
void expect_close(const Tensor& got, const Tensor& want, const std::string& who,
                  double rel = 1e-5) {
  kiln_test::expect_close_nan_aware(got, want, {rel, 1e-6, /*relative_to_largest=*/true}, who);
}

/// The Eigen kernel of the case's op against the reference. Inputs are cloned per run so
/// in-place state updates (batch_norm's running statistics) can be compared too.
void check_once(const Case& c, double rel) {
  SCOPED_TRACE(describe(c));
  const Kernel* ref = find_kernel(c.op, "reference");
  const Kernel* eig = find_kernel(c.op, "eigen");
  ASSERT_NE(ref, nullptr);
  ASSERT_NE(eig, nullptr);
  const Case rc = clone_inputs(c), ec = clone_inputs(c);
  const Tensor want = run_kernel(*ref, rc);
  const Tensor got = run_kernel(*eig, ec);
  expect_close(got, want, eig->name, rel);
  for (std::size_t i = 0; i < c.inputs.size(); ++i)
    expect_close(ec.inputs[i], rc.inputs[i],
                 std::string(eig->name) + " input " + std::to_string(i) + " after the run", rel);
}

/// check_once as given, then with a NaN, a +Inf and a -Inf in input 0.
void check(const Case& c, double rel = 1e-5) {
  check_once(c, rel);
  SCOPED_TRACE("with NaN, +Inf and -Inf in input 0");
  Case special = clone_inputs(c);
  kiln_test::inject_nonfinite(special.inputs[0]);
  check_once(special, rel);
}

/// Small integers: many ties inside pooling windows.
Tensor random_ties(const Shape& shape, Rng& rng) {
  std::vector<float> v(static_cast<std::size_t>(shape.numel()));
  for (auto& x : v) x = std::floor(static_cast<float>(rng.uniform(-2.0, 2.0)));
  return Tensor::from(v, shape);
}

struct ConvSpec {
  Shape x;
  Shape w;
  Pair stride{1, 1}, padding{0, 0}, dilation{1, 1}, output_padding{0, 0};
  std::int64_t groups = 1;
  bool bias = false;
  bool relu = false;
};

Attrs conv_attrs(const ConvSpec& s) {
  Attrs a;
  a.stride = s.stride;
  a.padding = s.padding;
  a.dilation = s.dilation;
  a.output_padding = s.output_padding;
  a.groups = s.groups;
  a.post_op = s.relu ? PostOp::relu : PostOp::none;
  return a;
}

// x, w, stride, padding, dilation, output_padding (ignored by conv2d), groups, bias, relu
const ConvSpec kConvs[] = {
    {{2, 3, 7, 9}, {4, 3, 3, 2}, {2, 3}, {1, 0}, {1, 2}, {0, 0}, 1, true, true},
    {{1, 4, 8, 5}, {6, 2, 3, 3}, {1, 1}, {1, 1}, {1, 1}, {0, 0}, 2, true, false},
    {{2, 6, 9, 7}, {6, 1, 3, 3}, {2, 2}, {1, 1}, {1, 1}, {1, 1}, 6, true, true},    // depthwise
    {{2, 3, 9, 8}, {6, 1, 3, 2}, {1, 2}, {1, 1}, {2, 1}, {0, 1}, 3, false, false},  // x2 mult
    {{3, 5, 4, 6}, {7, 5, 1, 1}, {1, 1}, {0, 0}, {1, 1}, {0, 0}, 1, true, true},    // 1x1
    {{2, 5, 7, 6}, {3, 5, 1, 1}, {2, 3}, {0, 0}, {1, 1}, {1, 2}, 1, false, false},  // 1x1 s
    {{1, 17, 16, 15}, {9, 17, 3, 3}, {1, 1}, {2, 2}, {2, 2}, {0, 0}, 1, true, false},
    {{2, 1, 9, 9}, {3, 1, 5, 5}, {1, 1}, {2, 2}, {1, 1}, {0, 0}, 1, true, true},  // C=1
    {{1, 1, 15, 17}, {16, 1, 5, 5}, {1, 1}, {2, 2}, {1, 1}, {0, 0}, 1, true, true},
    {{2, 8, 11, 10}, {10, 4, 3, 3}, {3, 3}, {1, 2}, {1, 1}, {2, 0}, 2, false, true},   // s3
    {{8, 16, 20, 18}, {32, 16, 3, 3}, {1, 1}, {1, 1}, {1, 1}, {0, 0}, 1, true, true},  // big
    {{6, 32, 14, 14}, {32, 1, 3, 3}, {1, 1}, {1, 1}, {1, 1}, {0, 0}, 32, true, false},
};

TEST(EigenCnnKernels, Conv2dMatchesReference) {
  Rng rng(11);
  for (const ConvSpec& s : kConvs) {
    Case c{Op::conv2d, conv_attrs(s), {random(s.x, rng), random(s.w, rng)}};
    c.attrs.output_padding = {0, 0};
    if (s.bias) c.inputs.push_back(random(Shape{s.w[0]}, rng));
    check(c);
  }
}

TEST(EigenCnnKernels, ConvTranspose2dMatchesReference) {
  Rng rng(12);
  for (const ConvSpec& s : kConvs) {
    // conv_transpose2d's w is [Ci, Co/groups, kh, kw]: the conv2d weight read the other way.
    const Shape x{s.x[0], s.w[0], s.x[2], s.x[3]};
    Case c{Op::conv_transpose2d, conv_attrs(s), {random(x, rng), random(s.w, rng)}};
    // output_padding must be below the stride or the dilation.
    for (std::size_t d = 0; d < 2; ++d)
      if (c.attrs.output_padding[d] >= std::max(s.stride[d], s.dilation[d]))
        c.attrs.output_padding[d] = 0;
    if (s.bias) c.inputs.push_back(random(Shape{s.w[1] * s.groups}, rng));
    check(c);
  }
}

TEST(EigenCnnKernels, Conv2dBackwardWeightsMatchesReference) {
  Rng rng(13);
  for (const ConvSpec& s : kConvs) {
    Attrs a = conv_attrs(s);
    a.post_op = PostOp::none;
    a.output_padding = {0, 0};
    a.kernel = {s.w[2], s.w[3]};
    const TensorDesc y = infer(Op::conv2d, a, std::vector<TensorDesc>{{s.x}, {s.w}}, "shape");
    check({Op::conv2d_backward_weights, a, {random(s.x, rng), random(y.shape, rng)}});
  }
}

struct PoolSpec {
  Shape x;
  Pair kernel, stride, padding;
  bool include_pad = true;
};

const PoolSpec kPools[] = {
    {{2, 3, 7, 9}, {3, 2}, {2, 1}, {1, 1}, true},
    {{2, 3, 7, 9}, {3, 2}, {2, 1}, {1, 1}, false},
    {{1, 4, 8, 8}, {2, 2}, {2, 2}, {0, 0}, true},
    {{2, 3, 7, 9}, {2, 2}, {2, 2}, {0, 0}, false},  // 2x2 path with an uncovered edge
    {{3, 2, 11, 10}, {3, 3}, {3, 3}, {1, 1}, false},
    {{2, 5, 9, 16}, {3, 3}, {1, 1}, {1, 1}, true},
    {{1, 1, 17, 15}, {4, 2}, {3, 2}, {2, 1}, false},
    {{16, 32, 28, 28}, {2, 2}, {2, 2}, {0, 0}, true},  // threads
    {{4, 8, 13, 12}, {1, 1}, {2, 3}, {0, 0}, true},
};

Attrs pool_attrs(const PoolSpec& p) {
  Attrs a;
  a.kernel = p.kernel;
  a.stride = p.stride;
  a.padding = p.padding;
  a.include_pad = p.include_pad;
  return a;
}

TEST(EigenCnnKernels, PoolingMatchesReference) {
  Rng rng(14);
  for (const PoolSpec& p : kPools) {
    const Attrs a = pool_attrs(p);
    const Tensor x = random(p.x, rng, -3.0, 1.0);  // negative windows: padding must not win
    check({Op::max_pool2d, a, {x}});
    check({Op::avg_pool2d, a, {x}});
    const TensorDesc y = infer(Op::max_pool2d, a, std::vector<TensorDesc>{{p.x}}, "shape");
    const Tensor gy = random(y.shape, rng);
    check({Op::max_pool2d_backward, a, {random_ties(p.x, rng), gy}});
    check({Op::max_pool2d_backward, a, {x, gy}});
    Attrs fused = a;  // with the ReLU's gradient folded in (the fusion pass)
    fused.post_op = PostOp::relu;
    check({Op::max_pool2d_backward, fused, {random_ties(p.x, rng), gy}});
    check({Op::max_pool2d_backward, fused, {x, gy}});
    check({Op::avg_pool2d_backward, a, {x, gy}});
  }
}

TEST(EigenCnnKernels, MaxPoolBackwardPicksTheFirstMaximum) {
  // One 2x3 window of equal values: everything goes to its first cell (row-major).
  const Kernel* eig = find_kernel(Op::max_pool2d_backward, "eigen");
  ASSERT_NE(eig, nullptr);
  Attrs a;
  a.kernel = {2, 3};
  a.stride = {2, 3};
  const Tensor x = Tensor::from({1.f, 5.f, 5.f, 5.f, 2.f, 5.f}, Shape{1, 1, 2, 3});
  const Tensor gy = Tensor::from({3.f}, Shape{1, 1, 1, 1});
  const Tensor gx = run_kernel(*eig, {Op::max_pool2d_backward, a, {x, gy}});
  EXPECT_EQ(gx.to_vector<float>(), (std::vector<float>{0, 3, 0, 0, 0, 0}));
}

/// Exactly the reference's values (forward) and values and signs of zero (backward).
void expect_same(const Tensor& got, const Tensor& want, const std::string& who) {
  const auto g = got.to_vector<float>(), w = want.to_vector<float>();
  ASSERT_EQ(g.size(), w.size()) << who;
  for (std::size_t i = 0; i < g.size(); ++i) {
    const bool same = (std::isnan(g[i]) && std::isnan(w[i])) ||
                      (g[i] == w[i] && std::signbit(g[i]) == std::signbit(w[i]));
    ASSERT_TRUE(same) << who << " element " << i << ": " << g[i] << " against " << w[i];
  }
}

TEST(EigenCnnKernels, MaxPool2x2EveryWidthMatchesReferenceExactly) {
  // The vectorised 2x2 stride-2 kernels (max_pool_2x2.hpp) cover a row in blocks of 16, 8
  // and 4 columns and a last pair: every width from 2 to 37, even and odd heights (an
  // uncovered last row and column), windows of ties (values on a grid of 0.5, clamped at
  // 0 as after a ReLU, with -0 among them), gradients of -0, and planes with a NaN or an
  // infinity (the first plane of every tensor), which must take the general path. The
  // backward also with the ReLU's gradient folded in (post_op relu), against the
  // reference's relu_backward of the reference's result.
  const Kernel* ref = find_kernel(Op::max_pool2d_backward, "reference");
  const Kernel* eig = find_kernel(Op::max_pool2d_backward, "eigen");
  const Kernel* ref_fwd = find_kernel(Op::max_pool2d, "reference");
  const Kernel* eig_fwd = find_kernel(Op::max_pool2d, "eigen");
  const Kernel* relu_ref = find_kernel(Op::relu_backward, "reference");
  ASSERT_TRUE(ref && eig && ref_fwd && eig_fwd && relu_ref);
  Attrs a;
  a.kernel = {2, 2};
  a.stride = {2, 2};
  Rng rng(22);
  for (std::int64_t h : {2, 3, 6}) {
    for (std::int64_t w = 2; w <= 37; ++w) {
      const Shape xs{2, 3, h, w}, ys{2, 3, h / 2, w / 2};
      std::vector<float> xv(static_cast<std::size_t>(xs.numel()));
      for (auto& v : xv) {
        v = std::max(0.0f, static_cast<float>(std::floor(rng.uniform(-2.0, 2.0) * 2.0) / 2.0));
        if (rng.uniform() < 0.1) v = -0.0f;
        if (rng.uniform() < 0.05) v = -1.5f;  // not a ReLU's output: masked by x > 0 too
      }
      std::vector<float> gv(static_cast<std::size_t>(ys.numel()));
      for (auto& v : gv) v = rng.uniform() < 0.2 ? -0.0f : static_cast<float>(rng.uniform(-1, 1));
      for (int special = 0; special < 3; ++special) {
        if (special == 1) xv[1] = std::numeric_limits<float>::quiet_NaN();
        if (special == 2) xv[1] = std::numeric_limits<float>::infinity();
        const std::string who = "x " + xs.str() + " special " + std::to_string(special);
        const Case fwd{Op::max_pool2d, a, {Tensor::from(xv, xs)}};
        expect_same(run_kernel(*eig_fwd, fwd), run_kernel(*ref_fwd, fwd), "forward " + who);
        const Case bwd{Op::max_pool2d_backward, a, {Tensor::from(xv, xs), Tensor::from(gv, ys)}};
        const Tensor want = run_kernel(*ref, bwd);
        expect_same(run_kernel(*eig, bwd), want, "backward " + who);
        Case fused = bwd;
        fused.attrs.post_op = PostOp::relu;
        const Tensor masked =
            run_kernel(*relu_ref, {Op::relu_backward, {}, {fused.inputs[0], want}});
        expect_same(run_kernel(*ref, fused), masked, "reference, ReLU gradient folded in " + who);
        expect_same(run_kernel(*eig, fused), masked, "ReLU gradient folded in " + who);
      }
    }
  }
}

TEST(EigenCnnKernels, BatchNormMatchesReference) {
  Rng rng(15);
  for (const Shape& xs :
       {Shape{5, 3}, Shape{64, 17}, Shape{2, 3, 7, 9}, Shape{1, 4, 5, 3}, Shape{16, 8, 14, 14}}) {
    const Shape ch{xs[1]};
    for (bool training : {true, false}) {
      Case c{Op::batch_norm, {}, {}};
      c.attrs.eps = 1e-3f;
      c.attrs.momentum = 0.2f;
      c.inputs = {random(xs, rng, 2.0, 6.0),  // an offset mean tests the variance's accuracy
                  random(ch, rng, 0.5, 1.5), random(ch, rng), random(ch, rng),
                  random(ch, rng, 0.5, 2.0)};
      c.run.training = training;
      check(c);  // also compares the running statistics after the run
    }
  }
}

TEST(EigenCnnKernels, BatchNormUpdatesRunningStatisticsInPlace) {
  // Hand computation: channel values {1, 3}: mean 2, biased var 1, unbiased var 2.
  const Kernel* eig = find_kernel(Op::batch_norm, "eigen");
  ASSERT_NE(eig, nullptr);
  Case c{Op::batch_norm, {}, {}};
  c.attrs.momentum = 0.5f;
  c.attrs.eps = 1e-5f;
  c.inputs = {Tensor::from({1.f, 3.f}, Shape{2, 1}), Tensor::from({2.f}, Shape{1}),
              Tensor::from({1.f}, Shape{1}), Tensor::from({4.f}, Shape{1}),
              Tensor::from({1.f}, Shape{1})};
  c.run.training = true;
  const Tensor y = run_kernel(*eig, c);
  const auto yv = y.to_vector<float>();
  const float s = 2.0f / std::sqrt(1.0f + 1e-5f);
  EXPECT_NEAR(yv[0], 1.0f - s, 1e-5);
  EXPECT_NEAR(yv[1], 1.0f + s, 1e-5);
  EXPECT_FLOAT_EQ(c.inputs[3].item(), 3.0f);  // 0.5 * 4 + 0.5 * 2
  EXPECT_FLOAT_EQ(c.inputs[4].item(), 1.5f);  // 0.5 * 1 + 0.5 * 2
  // One value per channel cannot be normalised in training.
  c.inputs[0] = Tensor::from({1.f}, Shape{1, 1});
  EXPECT_THROW(run_kernel(*eig, c), ValueError);
}

TEST(EigenCnnKernels, BatchNormBackwardMatchesReference) {
  Rng rng(16);
  for (const Shape& xs :
       {Shape{5, 3}, Shape{64, 17}, Shape{2, 3, 7, 9}, Shape{1, 4, 5, 3}, Shape{16, 8, 14, 14}}) {
    Case c{Op::batch_norm_backward, {}, {}};
    c.attrs.eps = 1e-3f;
    c.inputs = {random(xs, rng, 2.0, 6.0), random(Shape{xs[1]}, rng, 0.5, 1.5), random(xs, rng)};
    check(c, 2e-5);
  }
}

TEST(EigenCnnKernels, UpsampleNearestMatchesReference) {
  Rng rng(17);
  for (const Pair scale : {Pair{2, 2}, Pair{1, 3}, Pair{3, 1}, Pair{2, 3}, Pair{1, 1}}) {
    for (const Shape& xs : {Shape{1, 1, 1, 1}, Shape{2, 3, 5, 7}, Shape{8, 16, 17, 9}}) {
      Case c{Op::upsample_nearest2d, {}, {random(xs, rng)}};
      c.attrs.stride = scale;
      check(c, 0.0);
    }
  }
}

TEST(EigenCnnKernels, MatmulBiasReluEpilogueMatchesReference) {
  Rng rng(18);
  for (const std::int64_t n : {1, 7, 8, 9, 16, 17, 65}) {
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        for (bool relu : {false, true})
          for (bool bias : {false, true}) {
            const std::int64_t m = 15, k = 9;
            Case c{Op::matmul, {}, {}};
            c.attrs.transpose_a = ta;
            c.attrs.transpose_b = tb;
            c.attrs.post_op = relu ? PostOp::relu : PostOp::none;
            c.inputs = {random(ta ? Shape{k, m} : Shape{m, k}, rng),
                        random(tb ? Shape{n, k} : Shape{k, n}, rng)};
            if (bias) c.inputs.push_back(random(Shape{n}, rng));
            check(c);
          }
  }
  // Large enough for the threaded epilogue; and relu on a batched product.
  Case big{Op::matmul, {}, {random(Shape{256, 300}, rng), random(Shape{300, 257}, rng)}};
  big.attrs.post_op = PostOp::relu;
  big.inputs.push_back(random(Shape{257}, rng));
  check(big);
  Case batched{Op::matmul, {}, {random(Shape{3, 5, 6}, rng), random(Shape{3, 6, 7}, rng)}};
  batched.attrs.post_op = PostOp::relu;
  check(batched);
}

TEST(EigenCnnKernels, ResultsDoNotDependOnTheThreadCount) {
  // The threaded paths split work differently; results must agree (up to the order of
  // the batch sum in conv2d_backward_weights).
  Rng rng(19);
  ConvSpec s{{8, 16, 20, 18}, {32, 16, 3, 3}, {1, 1}, {1, 1}, {1, 1}, {0, 0}, 1, true, true};
  Case conv{
      Op::conv2d, conv_attrs(s), {random(s.x, rng), random(s.w, rng), random(Shape{32}, rng)}};
  Attrs wa = conv_attrs(s);
  wa.post_op = PostOp::none;
  wa.kernel = {3, 3};
  Case gw{Op::conv2d_backward_weights, wa, {random(s.x, rng), random(Shape{8, 32, 20, 18}, rng)}};
  const Kernel* ce = find_kernel(Op::conv2d, "eigen");
  const Kernel* we = find_kernel(Op::conv2d_backward_weights, "eigen");
  ASSERT_NE(ce, nullptr);
  ASSERT_NE(we, nullptr);
  const int saved = num_threads();
  set_num_threads(1);
  const Tensor c1 = run_kernel(*ce, conv), w1 = run_kernel(*we, gw);
  set_num_threads(4);
  const Tensor c4 = run_kernel(*ce, conv), w4 = run_kernel(*we, gw);
  set_num_threads(saved);
  expect_close(c4, c1, "conv2d, 4 threads vs 1", 0.0);
  expect_close(w4, w1, "conv2d_backward_weights, 4 threads vs 1", 1e-6);
}

}  // namespace
}  // namespace kiln::internal
