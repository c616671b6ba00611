// Reference kernels of the CNN ops (conv2d, conv_transpose2d, pooling, batch_norm, upsample,
// their training-only backward kernels) and matmul's fused bias and post-op.
//
// Golden cases: tests/data/cnn_golden.txt, computed once by PyTorch in float64 with
// tools/gen_cnn_golden.py; every case runs in f64 (within 1e-9) and f32 (within 1e-4).
// Hand cases: small inputs worked out in the comments, the conv2d / conv_transpose2d
// adjoint identity, tie-breaking and padding rules, and refusals of bad shapes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "internal/kernel.hpp"
#include "kiln/core/error.hpp"
#include "kiln/core/tensor.hpp"
#include "tests/support/kernel_test_support.hpp"

namespace kiln::internal {
namespace {

constexpr const char* kNodeName = "cnn_node_under_test";

// ---- running a reference kernel -------------------------------------------------------

/// The reference kernel of op (forward or training-only), which must be the last in its list.
const Kernel& reference_kernel(Op op) {
  ensure_training_kernels();
  const std::span<const Kernel> list = kernels_for(op);
  for (const Kernel& k : list)
    if (std::string_view(k.backend) == "reference") return k;
  throw std::runtime_error("no reference kernel for " + std::string(op_name(op)));
}

Node make_node(Op op, const Attrs& attrs, const Shape& out_shape, DType dt) {
  return kiln_test::make_node(op, attrs, out_shape, dt, kNodeName);
}

/// "" if the reference kernel of op accepts the call, else its reason.
std::string refusal(Op op, const Attrs& attrs, const std::vector<Tensor>& inputs,
                    const Shape& out_shape, DType dt = DType::f64) {
  const Node node = make_node(op, attrs, out_shape, dt);
  std::vector<TensorDesc> descs;
  for (const Tensor& t : inputs) descs.push_back({t.shape(), t.dtype()});
  const TensorDesc out{out_shape, dt};
  std::string why;
  if (reference_kernel(op).supports(KernelQuery{node, descs, out}, &why)) return {};
  return why.empty() ? "declined without a reason" : why;
}

/// Runs the reference kernel of op into a NaN-poisoned output (an element the kernel forgets
/// to write shows up). Inputs are passed as given: batch_norm may update inputs[3] and [4].
Tensor run_ref(Op op, const Attrs& attrs, const std::vector<Tensor>& inputs, const Shape& out_shape,
               DType dt = DType::f64, bool training = false) {
  EXPECT_EQ(refusal(op, attrs, inputs, out_shape, dt), "");
  const Node node = make_node(op, attrs, out_shape, dt);
  Tensor out = Tensor::full(out_shape, std::nan(""), dt);
  RunContext run;
  run.training = training;
  KernelArgs args{node, inputs, out, nullptr, run};
  reference_kernel(op).run(args);
  return out;
}

Tensor make(const std::vector<double>& values, const Shape& shape, DType dt = DType::f64) {
  return kiln_test::make(values, shape, dt);
}

void expect_values(const Tensor& t, const Shape& shape, const std::vector<double>& expected,
                   double tol) {
  ASSERT_EQ(t.shape(), shape);
  ASSERT_EQ(t.numel(), static_cast<std::int64_t>(expected.size()));
  for (std::size_t i = 0; i < expected.size(); ++i)
    EXPECT_NEAR(t.at(static_cast<std::int64_t>(i)), expected[i],
                tol * std::max(1.0, std::abs(expected[i])))
        << "at flat index " << i;
}

/// Expects fn to throw kiln::ValueError whose message names the node and contains `fragment`.
template <class Fn>
void expect_value_error(Fn&& fn, const std::string& fragment) {
  kiln_test::expect_value_error(std::forward<Fn>(fn), {kNodeName, fragment});
}

/// Runs the reference kernel of op with an output of the wrong shape: must raise.
void expect_run_rejects(Op op, const Attrs& attrs, const std::vector<Tensor>& inputs,
                        const Shape& out_shape, const std::string& fragment,
                        bool training = false) {
  EXPECT_NE(refusal(op, attrs, inputs, out_shape), "");
  const Node node = make_node(op, attrs, out_shape, DType::f64);
  Tensor out = Tensor::zeros(out_shape, DType::f64);
  RunContext run;
  run.training = training;
  KernelArgs args{node, inputs, out, nullptr, run};
  expect_value_error([&] { reference_kernel(op).run(args); }, fragment);
}

// ---- golden cases ---------------------------------------------------------------------

struct GoldenTensor {
  Shape shape;
  std::vector<double> values;
};

struct GoldenCase {
  std::string name;
  std::string op;
  std::map<std::string, std::vector<double>> attrs;
  std::map<std::string, GoldenTensor> tensors;
};

std::vector<GoldenCase> load_golden() {
  const std::string path = std::string(KILN_TEST_DATA_DIR) + "/cnn_golden.txt";
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path);
  std::vector<GoldenCase> cases;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream ls(line);
    std::string kind;
    ls >> kind;
    if (kind == "case") {
      cases.emplace_back();
      ls >> cases.back().name >> cases.back().op;
    } else if (kind == "attr") {
      std::string key;
      ls >> key;
      std::vector<double> v;
      for (std::string tok; ls >> tok;) v.push_back(std::stod(tok));
      cases.back().attrs[key] = v;
    } else if (kind == "tensor") {
      std::string role;
      std::size_t rank = 0;
      ls >> role >> rank;
      std::vector<std::int64_t> dims(rank);
      for (auto& d : dims) ls >> d;
      GoldenTensor t{Shape(dims), {}};
      for (std::string tok; ls >> tok;) t.values.push_back(std::strtod(tok.c_str(), nullptr));
      if (static_cast<std::int64_t>(t.values.size()) != t.shape.numel())
        throw std::runtime_error("bad tensor " + role + " in case " + cases.back().name);
      cases.back().tensors[role] = std::move(t);
    } else if (kind != "end") {
      throw std::runtime_error("bad line in " + path + ": " + line);
    }
  }
  return cases;
}

const std::vector<GoldenCase>& golden() {
  static const std::vector<GoldenCase> cases = load_golden();
  return cases;
}

Op op_by_name(const std::string& name) {
  for (int i = 0; i < op_count; ++i)
    if (op_name(static_cast<Op>(i)) == name) return static_cast<Op>(i);
  throw std::runtime_error("unknown op " + name);
}

Attrs attrs_of(const GoldenCase& c) {
  Attrs a;
  auto pair_of = [&](const char* key, Pair& p) {
    if (auto it = c.attrs.find(key); it != c.attrs.end())
      p = {static_cast<std::int64_t>(it->second.at(0)),
           static_cast<std::int64_t>(it->second.at(1))};
  };
  pair_of("kernel", a.kernel);
  pair_of("stride", a.stride);
  pair_of("padding", a.padding);
  pair_of("dilation", a.dilation);
  pair_of("output_padding", a.output_padding);
  auto scalar = [&](const char* key, double fallback) {
    auto it = c.attrs.find(key);
    return it == c.attrs.end() ? fallback : it->second.at(0);
  };
  a.groups = static_cast<std::int64_t>(scalar("groups", 1));
  a.include_pad = scalar("include_pad", 1) != 0.0;
  a.post_op = scalar("post_op", 0) != 0.0 ? PostOp::relu : PostOp::none;
  a.eps = static_cast<float>(scalar("eps", 1e-5));
  a.momentum = static_cast<float>(scalar("momentum", 0.1));
  return a;
}

class CnnGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(CnnGolden, MatchesPyTorch) {
  const GoldenCase* found = nullptr;
  for (const GoldenCase& c : golden())
    if (c.name == GetParam()) found = &c;
  ASSERT_NE(found, nullptr);
  const GoldenCase& c = *found;
  const Op op = op_by_name(c.op);
  const Attrs attrs = attrs_of(c);
  // The golden eps and momentum are exact in float, so Attrs holds them without rounding.
  if (c.attrs.count("eps")) {
    ASSERT_EQ(static_cast<double>(attrs.eps), c.attrs.at("eps")[0]);
  }
  if (c.attrs.count("momentum")) {
    ASSERT_EQ(static_cast<double>(attrs.momentum), c.attrs.at("momentum")[0]);
  }
  const bool training = c.attrs.count("training") && c.attrs.at("training")[0] != 0.0;
  const GoldenTensor& expected = c.tensors.at("out");
  for (DType dt : {DType::f64, DType::f32}) {
    SCOPED_TRACE(std::string(to_string(dt)));
    const double tol = dt == DType::f64 ? 1e-9 : 1e-4;
    std::vector<Tensor> inputs;
    for (int i = 0; c.tensors.count("in" + std::to_string(i)); ++i) {
      const GoldenTensor& g = c.tensors.at("in" + std::to_string(i));
      inputs.push_back(make(g.values, g.shape, dt));
    }
    const Tensor out = run_ref(op, attrs, inputs, expected.shape, dt, training);
    expect_values(out, expected.shape, expected.values, tol);
    // batch_norm's buffers: updated in place in training, untouched otherwise.
    for (const auto& [role, index] : {std::pair{"running_mean", 3}, std::pair{"running_var", 4}})
      if (auto it = c.tensors.find(role); it != c.tensors.end()) {
        SCOPED_TRACE(role);
        expect_values(inputs[static_cast<std::size_t>(index)], it->second.shape, it->second.values,
                      tol);
      }
  }
}

std::vector<std::string> golden_names() {
  std::vector<std::string> names;
  try {
    for (const GoldenCase& c : golden()) names.push_back(c.name);
  } catch (const std::exception&) {
    // Reported by GoldenFileCoversEveryCnnOp.
  }
  return names;
}

INSTANTIATE_TEST_SUITE_P(RefCnn, CnnGolden, ::testing::ValuesIn(golden_names()),
                         [](const auto& param_info) { return param_info.param; });

TEST(RefCnnKernels, GoldenFileCoversEveryCnnOp) {
  std::map<std::string, int> per_op;
  for (const GoldenCase& c : golden()) ++per_op[c.op];
  for (const char* op : {"conv2d", "conv_transpose2d", "conv2d_backward_weights", "max_pool2d",
                         "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward", "batch_norm",
                         "batch_norm_backward", "upsample_nearest2d"})
    EXPECT_GE(per_op[op], 2) << op;
  EXPECT_GE(golden().size(), 50u);
}

TEST(RefCnnKernels, EveryCnnOpHasAReferenceKernelLast) {
  ensure_training_kernels();
  for (Op op : {Op::conv2d, Op::conv_transpose2d, Op::conv2d_backward_weights, Op::max_pool2d,
                Op::max_pool2d_backward, Op::avg_pool2d, Op::avg_pool2d_backward, Op::batch_norm,
                Op::batch_norm_backward, Op::upsample_nearest2d}) {
    const std::span<const Kernel> list = kernels_for(op);
    ASSERT_FALSE(list.empty()) << op_name(op);
    EXPECT_EQ(std::string(list.back().backend), "reference") << op_name(op);
    EXPECT_EQ(std::string(list.back().name), "ref_" + std::string(op_name(op)));
  }
}

// ---- hand-checked cases -----------------------------------------------------------------

Attrs conv_attrs(Pair stride, Pair padding, Pair dilation = {1, 1}, std::int64_t groups = 1) {
  Attrs a;
  a.stride = stride;
  a.padding = padding;
  a.dilation = dilation;
  a.groups = groups;
  return a;
}

Attrs pool_attrs(Pair kernel, Pair stride, Pair padding, bool include_pad = true) {
  Attrs a;
  a.kernel = kernel;
  a.stride = stride;
  a.padding = padding;
  a.include_pad = include_pad;
  return a;
}

// x = [[1,2,3],[4,5,6],[7,8,9]], w = ones(2x2): window sums 1+2+4+5 = 12, 16, 24, 28.
// With bias -20 and relu: [0, 0, 4, 8].
TEST(RefCnnKernels, Conv2dWindowSumsBiasAndRelu) {
  const Tensor x = make({1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 1, 3, 3});
  const Tensor w = make({1, 1, 1, 1}, {1, 1, 2, 2});
  const Attrs a = conv_attrs({1, 1}, {0, 0});
  expect_values(run_ref(Op::conv2d, a, {x, w}, {1, 1, 2, 2}), {1, 1, 2, 2}, {12, 16, 24, 28},
                1e-12);
  Attrs fused = a;
  fused.post_op = PostOp::relu;
  const Tensor bias = make({-20}, {1});
  expect_values(run_ref(Op::conv2d, fused, {x, w, bias}, {1, 1, 2, 2}), {1, 1, 2, 2}, {0, 0, 4, 8},
                1e-12);
  // Padding 1, stride 2: windows at rows/cols -1 and 1: [[1], [2,3]...] -> 1, 2+3, 4+7, 5+6+8+9.
  expect_values(run_ref(Op::conv2d, conv_attrs({2, 2}, {1, 1}), {x, w}, {1, 1, 2, 2}), {1, 1, 2, 2},
                {1, 5, 11, 28}, 1e-12);
}

// Depthwise (groups = channels): each channel only sees its own filter.
// Channel 0 = ones * 1, filter 2 -> 2 * 4 = 8; channel 1 = ones * 3, filter -1 -> -12.
TEST(RefCnnKernels, Conv2dDepthwiseKeepsChannelsApart) {
  const Tensor x = make({1, 1, 1, 1, 3, 3, 3, 3}, {1, 2, 2, 2});
  const Tensor w = make({2, 2, 2, 2, -1, -1, -1, -1}, {2, 1, 2, 2});
  expect_values(run_ref(Op::conv2d, conv_attrs({1, 1}, {0, 0}, {1, 1}, 2), {x, w}, {1, 2, 1, 1}),
                {1, 2, 1, 1}, {8, -12}, 1e-12);
}

// Stride 2, 2x2 ones kernel: each x cell becomes a 2x2 block of itself.
TEST(RefCnnKernels, ConvTranspose2dStrideTwoExpandsBlocks) {
  const Tensor x = make({1, 2, 3, 4}, {1, 1, 2, 2});
  const Tensor w = make({1, 1, 1, 1}, {1, 1, 2, 2});
  expect_values(run_ref(Op::conv_transpose2d, conv_attrs({2, 2}, {0, 0}), {x, w}, {1, 1, 4, 4}),
                {1, 1, 4, 4}, {1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4}, 1e-12);
  // output_padding (1, 0) adds a last row that nothing reaches: only the bias (0.5).
  Attrs a = conv_attrs({2, 2}, {0, 0});
  a.output_padding = {1, 0};
  const Tensor bias = make({0.5}, {1});
  expect_values(run_ref(Op::conv_transpose2d, a, {x, w, bias}, {1, 1, 5, 4}), {1, 1, 5, 4},
                {1.5, 1.5, 2.5, 2.5, 1.5, 1.5, 2.5, 2.5, 3.5, 3.5,
                 4.5, 4.5, 3.5, 3.5, 4.5, 4.5, 0.5, 0.5, 0.5, 0.5},
                1e-12);
}

/// A deterministic, irregular fill.
Tensor filled(const Shape& s, double phase) {
  std::vector<double> v(static_cast<std::size_t>(s.numel()));
  for (std::size_t i = 0; i < v.size(); ++i)
    v[i] = std::sin(0.37 * static_cast<double>(i) + phase) + 0.1 * static_cast<double>(i % 5);
  return make(v, s);
}

double dot(const Tensor& a, const Tensor& b) {
  double s = 0.0;
  for (std::int64_t i = 0; i < a.numel(); ++i) s += a.at(i) * b.at(i);
  return s;
}

// conv_transpose2d is conv2d's adjoint with the same w: <conv2d(x, w), y> = <x, convT(y, w)>;
// and conv2d_backward_weights is d<conv2d(x, w), y>/dw, so <gw, v> = <conv2d(x, v), y>.
TEST(RefCnnKernels, TransposeAndWeightGradientAreAdjoints) {
  // x [2, 4, 7, 6], w [6, 2, 3, 2], groups 2, stride (2, 1), padding (1, 1), dilation (1, 2).
  const Attrs a = conv_attrs({2, 1}, {1, 1}, {1, 2}, 2);
  const Tensor x = filled({2, 4, 7, 6}, 0.1);
  const Tensor w = filled({6, 2, 3, 2}, 0.7);
  // Output: height (7 + 2 - 3)/2 + 1 = 4, width (6 + 2 - 2*1 - 1)/1 + 1 = 6.
  const Shape out{2, 6, 4, 6};
  const Tensor y = filled(out, 1.3);
  const Tensor conv = run_ref(Op::conv2d, a, {x, w}, out);
  // conv_transpose2d reads w [O, C/g, kh, kw] as [Ci, Co/g, kh, kw]: back to [2, 4, 7, 6]
  // (height (4-1)*2 - 2 + 2 + 1 = 7, width (6-1) - 2 + 2*1 + 1 = 6).
  const Tensor back = run_ref(Op::conv_transpose2d, a, {y, w}, {2, 4, 7, 6});
  EXPECT_NEAR(dot(conv, y), dot(x, back), 1e-9 * std::abs(dot(conv, y)));
  Attrs wa = a;
  wa.kernel = {3, 2};
  const Tensor gw = run_ref(Op::conv2d_backward_weights, wa, {x, y}, {6, 2, 3, 2});
  const Tensor v = filled({6, 2, 3, 2}, 2.9);
  EXPECT_NEAR(dot(gw, v), dot(run_ref(Op::conv2d, a, {x, v}, out), y), 1e-9 * std::abs(dot(gw, v)));
}

// x = [[1,2],[3,4]], gy = [[2]] with a 2x2 kernel: gw = 2 * x.
TEST(RefCnnKernels, Conv2dBackwardWeightsSingleWindow) {
  Attrs a = conv_attrs({1, 1}, {0, 0});
  a.kernel = {2, 2};
  expect_values(run_ref(Op::conv2d_backward_weights, a,
                        {make({1, 2, 3, 4}, {1, 1, 2, 2}), make({2}, {1, 1, 1, 1})}, {1, 1, 2, 2}),
                {1, 1, 2, 2}, {2, 4, 6, 8}, 1e-12);
}

// All-negative x with padding 1: padding (-inf) never wins, so maxima stay negative.
TEST(RefCnnKernels, MaxPoolPaddingNeverWins) {
  const Tensor x = make({-1, -2, -3, -4, -5, -6, -7, -8, -9}, {1, 1, 3, 3});
  const Attrs a = pool_attrs({3, 3}, {2, 2}, {1, 1});
  // Windows over rows/cols {-1,0,1} and {1,2,3}: max of [-1,-2,-4,-5] = -1, [-2,-3,-5,-6] = -2,
  // [-4,-5,-7,-8] = -4, [-5,-6,-8,-9] = -5.
  expect_values(run_ref(Op::max_pool2d, a, {x}, {1, 1, 2, 2}), {1, 1, 2, 2}, {-1, -2, -4, -5},
                1e-12);
  // Backward: each gy goes to its window's maximum, inside x.
  const Tensor gy = make({10, 20, 30, 40}, {1, 1, 2, 2});
  expect_values(run_ref(Op::max_pool2d_backward, a, {x, gy}, {1, 1, 3, 3}), {1, 1, 3, 3},
                {10, 20, 0, 30, 40, 0, 0, 0, 0}, 1e-12);
}

// Ties: the first maximum in row-major scan order takes the gradient; overlapping windows add.
TEST(RefCnnKernels, MaxPoolBackwardFirstMaximumTakesTheGradient) {
  // x = [[1,5,5],[5,2,5]], kernel 2x2 stride 1: both windows' first maximum is x[0][1].
  const Tensor x = make({1, 5, 5, 5, 2, 5}, {1, 1, 2, 3});
  const Attrs a = pool_attrs({2, 2}, {1, 1}, {0, 0});
  expect_values(run_ref(Op::max_pool2d, a, {x}, {1, 1, 1, 2}), {1, 1, 1, 2}, {5, 5}, 1e-12);
  const Tensor gy = make({1, 10}, {1, 1, 1, 2});
  expect_values(run_ref(Op::max_pool2d_backward, a, {x, gy}, {1, 1, 2, 3}), {1, 1, 2, 3},
                {0, 11, 0, 0, 0, 0}, 1e-12);
}

// A plan's conv2d with a fused ReLU and max pooling (PostOp::relu_max_pool, made by the
// fusion pass for oneDNN): the reference kernel gives the conv, ReLU and pool it stands
// for, a 3x3 output pooled 2x2 (the last row and column dropped).
TEST(RefCnnKernels, Conv2dWithTheFusedPoolingIsConvReluThenPool) {
  // x = 1..16 in a 4x4 plane but x[0][0] = 40, w = [[1, 0], [0, -1]], bias 7:
  // y[i][j] = x[i][j] - x[i+1][j+1] + 7 = 2, except y[0][0] = 40 - 6 + 7 = 41.
  std::vector<double> xv(16);
  for (std::size_t i = 0; i < xv.size(); ++i) xv[i] = static_cast<double>(i + 1);
  xv[0] = 40;
  const Tensor x = make(xv, {1, 1, 4, 4});
  const Tensor w = make({1, 0, 0, -1}, {1, 1, 2, 2});
  const Tensor b = make({7}, {1});
  Attrs a = conv_attrs({1, 1}, {0, 0});
  expect_values(run_ref(Op::conv2d, a, {x, w, b}, {1, 1, 3, 3}), {1, 1, 3, 3},
                {41, 2, 2, 2, 2, 2, 2, 2, 2}, 1e-12);
  a.post_op = PostOp::relu_max_pool;
  a.kernel = {2, 2};
  expect_values(run_ref(Op::conv2d, a, {x, w, b}, {1, 1, 1, 1}), {1, 1, 1, 1}, {41}, 1e-12);
  // A negative window comes out 0 (the ReLU before the pooling).
  const Tensor nb = make({-50}, {1});
  expect_values(run_ref(Op::conv2d, a, {x, w, nb}, {1, 1, 1, 1}), {1, 1, 1, 1}, {0}, 1e-12);
  // The output must have the pooled shape.
  EXPECT_NE(refusal(Op::conv2d, a, {x, w, b}, {1, 1, 3, 3}), "");
}

// x = ones(2x2), kernel 2, stride 1, padding 1 -> 3x3 windows holding 1, 2 or 4 real cells.
TEST(RefCnnKernels, AvgPoolIncludePadSetsTheDivisor) {
  const Tensor x = make({1, 1, 1, 1}, {1, 1, 2, 2});
  expect_values(
      run_ref(Op::avg_pool2d, pool_attrs({2, 2}, {1, 1}, {1, 1}, true), {x}, {1, 1, 3, 3}),
      {1, 1, 3, 3}, {0.25, 0.5, 0.25, 0.5, 1, 0.5, 0.25, 0.5, 0.25}, 1e-12);
  expect_values(
      run_ref(Op::avg_pool2d, pool_attrs({2, 2}, {1, 1}, {1, 1}, false), {x}, {1, 1, 3, 3}),
      {1, 1, 3, 3}, std::vector<double>(9, 1.0), 1e-12);
  // Backward with gy = ones: each x cell is in 4 windows. include_pad: 4 * 1/4 = 1.
  // Exclude: corner window (1 cell) 1, two edge windows (2 cells) 1/2 each, centre 1/4: 2.25.
  const Tensor gy = make(std::vector<double>(9, 1.0), {1, 1, 3, 3});
  expect_values(run_ref(Op::avg_pool2d_backward, pool_attrs({2, 2}, {1, 1}, {1, 1}, true), {x, gy},
                        {1, 1, 2, 2}),
                {1, 1, 2, 2}, {1, 1, 1, 1}, 1e-12);
  expect_values(run_ref(Op::avg_pool2d_backward, pool_attrs({2, 2}, {1, 1}, {1, 1}, false), {x, gy},
                        {1, 1, 2, 2}),
                {1, 1, 2, 2}, {2.25, 2.25, 2.25, 2.25}, 1e-12);
}

// x = [1, 2, 3, 4] in one channel: mean 2.5, biased variance 1.25, unbiased 5/3.
TEST(RefCnnKernels, BatchNormTrainingUpdatesRunningStatsInPlace) {
  Attrs a;
  a.eps = 0.25f;
  a.momentum = 0.5f;
  const Tensor x = make({1, 2, 3, 4}, {4, 1});
  const Tensor gamma = make({2}, {1});
  const Tensor beta = make({1}, {1});
  Tensor rm = make({0}, {1});
  Tensor rv = make({1}, {1});
  // y = 2 * (x - 2.5) / sqrt(1.5) + 1.
  std::vector<double> y;
  for (double v : {1.0, 2.0, 3.0, 4.0}) y.push_back(2 * (v - 2.5) / std::sqrt(1.5) + 1);
  expect_values(run_ref(Op::batch_norm, a, {x, gamma, beta, rm, rv}, {4, 1}, DType::f64, true),
                {4, 1}, y, 1e-12);
  // running_mean = 0.5*0 + 0.5*2.5; running_var = 0.5*1 + 0.5*5/3.
  expect_values(rm, {1}, {1.25}, 1e-12);
  expect_values(rv, {1}, {0.5 + 2.5 / 3}, 1e-12);
  // Inference uses (and keeps) the running values: y = 2 * (x - 1.25) / sqrt(4/3 + 0.25) + 1.
  y.clear();
  const double var = 0.5 + 2.5 / 3;
  for (double v : {1.0, 2.0, 3.0, 4.0}) y.push_back(2 * (v - 1.25) / std::sqrt(var + 0.25) + 1);
  expect_values(run_ref(Op::batch_norm, a, {x, gamma, beta, rm, rv}, {4, 1}, DType::f64, false),
                {4, 1}, y, 1e-12);
  expect_values(rm, {1}, {1.25}, 1e-12);
  expect_values(rv, {1}, {var}, 1e-12);
}

// gy constant: gx = 0. gy = xhat: gx = gamma/std * xhat * (1 - v/(v+eps)).
TEST(RefCnnKernels, BatchNormBackwardHandCases) {
  Attrs a;
  a.eps = 0.25f;
  const Tensor x = make({1, 2, 3, 4}, {4, 1});
  const Tensor gamma = make({3}, {1});
  expect_values(run_ref(Op::batch_norm_backward, a, {x, gamma, make({7, 7, 7, 7}, {4, 1})}, {4, 1}),
                {4, 1}, {0, 0, 0, 0}, 1e-12);
  const double sd = std::sqrt(1.25 + 0.25);
  std::vector<double> xhat, gx;
  for (double v : {1.0, 2.0, 3.0, 4.0}) xhat.push_back((v - 2.5) / sd);
  for (double h : xhat) gx.push_back(3 / sd * h * (1 - 1.25 / 1.5));
  expect_values(run_ref(Op::batch_norm_backward, a, {x, gamma, make(xhat, {4, 1})}, {4, 1}), {4, 1},
                gx, 1e-12);
}

TEST(RefCnnKernels, UpsampleNearestRepeatsCells) {
  Attrs a;
  a.stride = {2, 3};
  expect_values(
      run_ref(Op::upsample_nearest2d, a, {make({1, 2, 3, 4}, {1, 1, 2, 2})}, {1, 1, 4, 6}),
      {1, 1, 4, 6}, {1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 3, 3, 3, 4, 4, 4},
      1e-12);
  // Integer tensors are copied as they are.
  const Tensor xi = make({5, 6}, {1, 1, 1, 2}, DType::i32);
  const Tensor yi = run_ref(Op::upsample_nearest2d, a, {xi}, {1, 1, 2, 6}, DType::i32);
  expect_values(yi, {1, 1, 2, 6}, {5, 5, 5, 6, 6, 6, 5, 5, 5, 6, 6, 6}, 0);
}

// [[1,2,3],[4,5,6]] x [[7,8],[9,10],[11,12]] = [[58,64],[139,154]]; + bias [-60, 1], relu.
TEST(RefCnnKernels, MatmulBiasAndRelu) {
  for (DType dt : {DType::f64, DType::f32}) {
    const Tensor a = make({1, 2, 3, 4, 5, 6}, {2, 3}, dt);
    const Tensor b = make({7, 8, 9, 10, 11, 12}, {3, 2}, dt);
    const Tensor bias = make({-60, 1}, {2}, dt);
    expect_values(run_ref(Op::matmul, {}, {a, b, bias}, {2, 2}, dt), {2, 2}, {-2, 65, 79, 155},
                  1e-6);
    Attrs relu;
    relu.post_op = PostOp::relu;
    expect_values(run_ref(Op::matmul, relu, {a, b, bias}, {2, 2}, dt), {2, 2}, {0, 65, 79, 155},
                  1e-6);
    const Tensor neg_a = make({-1, -2, -3, 4, 5, 6}, {2, 3}, dt);
    expect_values(run_ref(Op::matmul, relu, {neg_a, b}, {2, 2}, dt), {2, 2}, {0, 0, 139, 154},
                  1e-6);
  }
}

// ---- bad calls --------------------------------------------------------------------------

TEST(RefCnnKernels, BadShapesAreRefusedAndRaiseNamingTheNode) {
  const Tensor x = filled({2, 4, 5, 5}, 0.0);
  const Attrs plain = conv_attrs({1, 1}, {0, 0});
  // w's channel count does not match x (4 channels, groups 1, w has 3).
  expect_run_rejects(Op::conv2d, plain, {x, filled({2, 3, 3, 3}, 0.0)}, {2, 2, 3, 3}, "groups");
  // Channels not divisible by the groups.
  expect_run_rejects(Op::conv2d, conv_attrs({1, 1}, {0, 0}, {1, 1}, 3),
                     {x, filled({3, 1, 3, 3}, 0.0)}, {2, 3, 3, 3}, "groups");
  // Bias of the wrong size, then a wrong output shape.
  expect_run_rejects(Op::conv2d, plain, {x, filled({2, 4, 3, 3}, 0.0), make({1, 2, 3}, {3})},
                     {2, 2, 3, 3}, "bias");
  expect_run_rejects(Op::conv2d, plain, {x, filled({2, 4, 3, 3}, 0.0)}, {2, 2, 4, 4},
                     "output shape");
  // A kernel larger than the padded input.
  expect_run_rejects(Op::conv2d, plain, {x, filled({2, 4, 6, 1}, 0.0)}, {2, 2, 1, 5},
                     "does not fit");
  Attrs bad_outpad = conv_attrs({2, 2}, {0, 0});
  bad_outpad.output_padding = {2, 0};
  expect_run_rejects(Op::conv_transpose2d, bad_outpad, {x, filled({4, 1, 2, 2}, 0.0)},
                     {2, 1, 12, 10}, "output_padding");
  Attrs kernel33 = plain;
  kernel33.kernel = {3, 3};
  expect_run_rejects(Op::conv2d_backward_weights, kernel33, {x, filled({2, 2, 4, 4}, 0.0)},
                     {2, 4, 3, 3}, "gy");
  // Pooling: padding above half the kernel, a gy that is not the pooled shape.
  expect_run_rejects(Op::max_pool2d, pool_attrs({2, 2}, {2, 2}, {2, 0}), {x}, {2, 4, 4, 2},
                     "padding");
  expect_run_rejects(Op::avg_pool2d_backward, pool_attrs({2, 2}, {2, 2}, {0, 0}),
                     {x, filled({2, 4, 3, 2}, 0.0)}, {2, 4, 5, 5}, "pooled shape");
  expect_run_rejects(Op::max_pool2d_backward, pool_attrs({2, 2}, {2, 2}, {0, 0}),
                     {x, filled({2, 4, 2, 2}, 0.0)}, {2, 4, 5, 4}, "output shape");
  // batch_norm: per-channel inputs of the wrong size; gy not x's shape.
  const Tensor c4 = make({1, 1, 1, 1}, {4});
  const Tensor c3 = make({1, 1, 1}, {3});
  expect_run_rejects(Op::batch_norm, {}, {x, c4, c4, c3, c4}, {2, 4, 5, 5}, "running_mean");
  expect_run_rejects(Op::batch_norm_backward, {}, {x, c4, filled({2, 4, 5, 4}, 0.0)}, {2, 4, 5, 5},
                     "gy");
  Attrs up;
  up.stride = {2, 2};
  expect_run_rejects(Op::upsample_nearest2d, up, {x}, {2, 4, 10, 9}, "output shape");
  // matmul's bias needs a rank-2 b (shared by a batched a) and shape [N].
  expect_run_rejects(Op::matmul, {}, {filled({2, 3}, 0), filled({3, 2}, 0), make({1, 2, 3}, {3})},
                     {2, 2}, "bias");
  expect_run_rejects(Op::matmul, {},
                     {filled({2, 2, 3}, 0), filled({2, 3, 2}, 0), make({1, 2}, {2})}, {2, 2, 2},
                     "bias");
}

// Training batch_norm with one value per channel has no unbiased variance: ValueError.
TEST(RefCnnKernels, BatchNormTrainingNeedsTwoValuesPerChannel) {
  const Tensor x = make({1, 2}, {1, 2, 1, 1});
  const Tensor c2 = make({1, 1}, {2});
  const Node node = make_node(Op::batch_norm, {}, {1, 2, 1, 1}, DType::f64);
  const std::vector<Tensor> inputs = {x, c2, c2, c2.clone(), c2.clone()};
  Tensor out = Tensor::zeros({1, 2, 1, 1}, DType::f64);
  RunContext run;
  run.training = true;
  KernelArgs args{node, inputs, out, nullptr, run};
  expect_value_error([&] { reference_kernel(Op::batch_norm).run(args); }, "more than one value");
  // Inference mode is fine: (x - 1) / sqrt(1 + eps) + 1.
  run.training = false;
  EXPECT_NO_THROW(reference_kernel(Op::batch_norm).run(args));
  EXPECT_NEAR(out.at(1), 1.0 / std::sqrt(1.0 + 1e-5) + 1.0, 1e-7);
}

}  // namespace
}  // namespace kiln::internal
