// The graph API a C++ user expects: scopes (and the scopes of gradient nodes), a Graph that
// can be moved and returned from a function, arithmetic operators on values.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "kiln/kiln.hpp"

namespace kiln {
namespace {

// ---------------------------------------------------------------------------------------------
// Scopes

TEST(Scope, GuardsTagNodesAndNestWithSlash) {
  Graph g;
  auto x = g.input("x", {batch, 3});
  EXPECT_EQ(g.current_scope(), "");
  Value a, b, c;
  {
    auto outer = g.scope("encoder");
    a = relu(x);
    {
      auto inner = g.scope("fc1");
      EXPECT_EQ(g.current_scope(), "encoder/fc1");
      b = g.parameter("w", Tensor::zeros({3, 2}));
      c = matmul(a, b);
    }
    EXPECT_EQ(g.current_scope(), "encoder");
  }
  Value d = sigmoid(c);
  EXPECT_EQ(x.scope(), "");
  EXPECT_EQ(a.scope(), "encoder");
  EXPECT_EQ(b.scope(), "encoder/fc1");
  EXPECT_EQ(c.node().scope, "encoder/fc1");
  EXPECT_EQ(d.scope(), "");
  EXPECT_EQ(g.current_scope(), "");
  EXPECT_THROW((void)g.scope(""), ValueError);

  // set_scope replaces (does not join); close() ends a guard early, once.
  auto s1 = g.scope("block");
  {
    auto s2 = g.set_scope("elsewhere");
    EXPECT_EQ(g.current_scope(), "elsewhere");
    s2.close();
    EXPECT_EQ(g.current_scope(), "block");
  }
  EXPECT_EQ(g.current_scope(), "block");
  ScopeGuard moved = std::move(s1);
  s1.close();  // moved-from: nothing to restore
  EXPECT_EQ(g.current_scope(), "block");
  moved.close();
  EXPECT_EQ(g.current_scope(), "");
}

TEST(Scope, DotDrawsOneClusterPerScope) {
  Graph g;
  auto x = g.input("x", {2});
  Value y;
  {
    auto s = g.scope("fc\"1");
    y = relu(x, "act");
  }
  (void)exp(y, "outside");
  const std::string dot = g.to_dot();
  const auto cluster = dot.find("subgraph cluster_0 {");
  ASSERT_NE(cluster, std::string::npos) << dot;
  EXPECT_NE(dot.find("label=\"fc\\\"1\"", cluster), std::string::npos) << dot;
  // The relu is inside the cluster, the input and the exp are not.
  const auto end = dot.find("  }\n", cluster);
  const auto act = dot.find("act\\nrelu");
  EXPECT_GT(act, cluster);
  EXPECT_LT(act, end);
  EXPECT_LT(dot.find("outside\\nexp"), cluster);
  EXPECT_LT(dot.find("x\\ninput"), cluster);
}

TEST(Scope, GradientNodesCarryTheScopeOfTheNodeTheyDifferentiate) {
  Graph g;
  auto x = g.input("x", {batch, 4});
  auto y = g.input("y", {batch}, i32);
  auto h = nn::dense(x, 5, {.activation = relu, .name = "fc1"});
  auto logits = nn::dense(h, 3, {.name = "fc2"});
  auto loss = softmax_cross_entropy(logits, y);
  const std::size_t forward = g.size();
  std::vector<Value> wrt = g.parameters();
  Value unused;
  {
    auto extra = g.scope("extra");
    unused = g.parameter("unused", Tensor::zeros({2}));
  }
  {
    auto user = g.scope("user");  // grad does not put its nodes in the caller's scope
    wrt.push_back(unused);
    const auto grads = grad(loss, wrt);
    ASSERT_EQ(grads.size(), 5u);
    EXPECT_EQ(grads[0].scope(), "fc1");  // d/d fc1.weight
    EXPECT_EQ(grads[1].scope(), "fc1");
    EXPECT_EQ(grads[2].scope(), "fc2");
    EXPECT_EQ(grads[3].scope(), "fc2");
    EXPECT_EQ(grads[4].scope(), "extra");  // the zeros of a parameter made in "extra"
    EXPECT_EQ(g.current_scope(), "user");
  }
  // Every gradient node belongs to the layer of a forward node: the rules of fc1's and
  // fc2's nodes made them, and the seed and the loss's rule are outside any layer.
  std::size_t in_fc1 = 0, in_fc2 = 0;
  for (std::size_t i = forward + 1; i < g.size(); ++i) {
    const std::string& s = g.node(static_cast<std::int32_t>(i)).scope;
    EXPECT_TRUE(s.empty() || s == "fc1" || s == "fc2" || s == "extra") << s;
    in_fc1 += s == "fc1";
    in_fc2 += s == "fc2";
  }
  EXPECT_GT(in_fc1, 2u);
  EXPECT_GT(in_fc2, 2u);
}

// ---------------------------------------------------------------------------------------------
// Moving graphs

struct Built {
  Graph graph;
  Value x;
  Value y;
};

// Builds y = relu(x @ w + b) with known parameters and returns the graph by value.
Built build_affine() {
  Built out;
  Graph& g = out.graph;
  out.x = g.input("x", {batch, 2});
  auto w = g.parameter("w", Tensor::from({1.f, -1.f, 2.f, 0.5f}, Shape{2, 2}));
  auto b = g.parameter("b", Tensor::from({0.5f, -3.f}, Shape{2}));
  out.y = relu(matmul(out.x, w) + b, "y");
  return out;
}

Graph make_graph(Value& x_out, Value& y_out) {
  Graph g;
  x_out = g.input("x", {batch, 2});
  auto w = g.parameter("w", Tensor::from({2.f, 0.f, 0.f, 3.f}, Shape{2, 2}));
  y_out = matmul(x_out, w, {}, "y");
  return g;  // moved (or elided) out of the function
}

TEST(GraphMove, AGraphReturnedFromAFunctionKeepsItsValues) {
  Value x, y;
  Graph g = make_graph(x, y);
  ASSERT_TRUE(x.valid());
  EXPECT_EQ(&x.graph(), &g);
  EXPECT_EQ(y.shape(), (Shape{batch, 2}));
  EXPECT_EQ(g.find("y"), y);
  Executable exe(g, {y});
  const auto r = exe.run({{"x", Tensor::from({1.f, 1.f}, Shape{1, 2})}});
  EXPECT_EQ(r[0].to_vector<float>(), (std::vector<float>{2, 3}));
}

TEST(GraphMove, AnExecutableCompiledBeforeAMoveFollowsTheNodes) {
  Built built = build_affine();
  Executable exe(built.graph, {built.y});
  const auto before = exe.run({{"x", Tensor::from({1.f, 2.f}, Shape{1, 2})}});
  Graph g = std::move(built.graph);
  g.tensor(g.find("b")) = Tensor::zeros({2});  // parameters are read at every run
  (void)g.input("unrelated", {1});             // the graph may grow after compiling
  const auto after = exe.run({{"x", Tensor::from({1.f, 2.f}, Shape{1, 2})}});
  EXPECT_EQ(before[0].to_vector<float>(), (std::vector<float>{5.5f, 0.f}));
  EXPECT_EQ(after[0].to_vector<float>(), (std::vector<float>{5.f, 0.f}));
}

TEST(GraphMove, ValuesFollowTheNodesAndTheMovedFromGraphIsEmptyAndUsable) {
  Built built = build_affine();
  Value x = built.x, y = built.y;
  const std::size_t nodes = built.graph.size();
  Graph g = std::move(built.graph);  // a real move: the nodes change owner
  EXPECT_EQ(&y.graph(), &g);
  EXPECT_EQ(y.name(), "y");
  EXPECT_EQ(g.size(), nodes);
  // Builders on the old Values add to the new owner.
  Value z = y * 2.0;
  EXPECT_EQ(&z.graph(), &g);
  EXPECT_GT(g.size(), nodes);
  Executable exe(g, {y, z});
  // x = [1, 2]: x @ w = [1 + 4, -1 + 1] = [5, 0]; + b = [5.5, -3]; relu = [5.5, 0].
  const auto r = exe.run({{"x", Tensor::from({1.f, 2.f}, Shape{1, 2})}});
  EXPECT_EQ(r[0].to_vector<float>(), (std::vector<float>{5.5f, 0.f}));
  EXPECT_EQ(r[1].to_vector<float>(), (std::vector<float>{11.f, 0.f}));

  // The moved-from graph is empty and can build a new graph, with the same names.
  Graph& old = built.graph;
  EXPECT_EQ(old.size(), 0u);  // NOLINT(bugprone-use-after-move): documented state
  EXPECT_FALSE(old.contains("y"));
  auto x2 = old.input("x", {3});
  auto y2 = exp(x2, "y");
  EXPECT_EQ(&y2.graph(), &old);
  EXPECT_NE(y2, y);
  // A value of the other graph is refused.
  EXPECT_THROW(add(x2, x), ValueError);
  Executable exe2(old, {y2});
  EXPECT_NEAR(exe2.run({{"x", Tensor::from({0.f, 1.f, 2.f}, Shape{3})}})[0].at(2), std::exp(2.0),
              1e-4);

  // Move assignment: the target's own nodes go, the source's arrive with their Values.
  Graph h;
  (void)h.input("h_only", {1});
  h = std::move(g);
  EXPECT_EQ(&y.graph(), &h);
  EXPECT_FALSE(h.contains("h_only"));
  EXPECT_TRUE(h.contains("y"));
  EXPECT_EQ(g.size(), 0u);  // NOLINT(bugprone-use-after-move)
}

TEST(GraphMove, AnOpenScopeMovesWithTheGraph) {
  Graph g;
  auto x = g.input("x", {2});
  auto guard = g.scope("layer");
  Graph h = std::move(g);
  EXPECT_EQ(h.current_scope(), "layer");
  EXPECT_EQ(g.current_scope(), "");  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(relu(x).scope(), "layer");
  guard.close();
  EXPECT_EQ(h.current_scope(), "");
}

// ---------------------------------------------------------------------------------------------
// Arithmetic operators

TEST(Operators, ComputeWhatTheyShowWithScalarsOfTheValuesDtype) {
  for (DType dt : {f32, f64}) {
    Graph g;
    auto a = g.input("a", {batch, 3}, dt);
    auto b = g.input("b", {3}, dt);  // broadcasts over the rows of a
    std::vector<Value> outs = {a * 0.5, 0.5 * a, a + b,   a - b,   a * b,   a / b,  -a,
                               2.0 - a, a + 1.0, 1.0 + a, a - 1.0, a / 4.0, 8.0 / a};
    Value acc = a;
    acc += b;
    acc *= 2.0;
    acc -= 1.0;
    acc /= b;
    outs.push_back(acc);
    for (const Value& v : outs) {
      EXPECT_EQ(v.dtype(), dt);
      EXPECT_EQ(v.shape(), (Shape{batch, 3}));
    }
    // Scalars became constants of the value's dtype.
    for (const Node& n : g.nodes()) {
      if (n.op == Op::constant) {
        EXPECT_EQ(n.dtype, dt) << n.name;
      }
    }
    const std::vector<double> av = {1, -2, 3, 4, 0.5, -6}, bv = {2, 4, -8};
    Executable exe(g, outs);
    const auto r = exe.run({{"a", Tensor::from<double>(av, {2, 3}).to(dt)},
                            {"b", Tensor::from<double>(bv, {3}).to(dt)}});
    ASSERT_EQ(r.size(), outs.size());
    for (std::size_t i = 0; i < av.size(); ++i) {
      const double x = av[i], y = bv[i % 3];
      const std::vector<double> want = {
          x * 0.5, 0.5 * x, x + y,   x - y,   x * y,   x / y,   -x,
          2.0 - x, x + 1.0, 1.0 + x, x - 1.0, x / 4.0, 8.0 / x, ((x + y) * 2.0 - 1.0) / y};
      for (std::size_t k = 0; k < want.size(); ++k)
        EXPECT_NEAR(r[k].at(static_cast<std::int64_t>(i)), want[k], 1e-5 * (1 + std::abs(want[k])))
            << "output " << k << " element " << i << " " << to_string(dt);
    }
  }
}

TEST(Operators, RefuseIntegerValuesWithoutAddingNodes) {
  Graph g;
  auto n = g.input("n", {3}, i32);
  const std::size_t before = g.size();
  try {
    (void)(n * 0.5);
    ADD_FAILURE() << "no error";
  } catch (const DTypeError& e) {
    EXPECT_NE(std::string(e.what()).find("'n'"), std::string::npos) << e.what();
  }
  EXPECT_THROW((void)(1.0 - n), DTypeError);
  EXPECT_EQ(g.size(), before);
  EXPECT_THROW((void)(Value() * 2.0), ValueError);
}

TEST(Operators, GradientsFlowThroughOperatorExpressions) {
  // loss = mean((w * 3 - 1)^2 / 2); d/dw = 3 (3w - 1) / n.
  Graph g;
  auto w = g.parameter("w", Tensor::from({1.0, -0.5, 2.0}, Shape{3}));
  auto e = w * 3.0 - 1.0;
  auto loss = mean(e * e / 2.0);
  auto dw = grad(loss, {w})[0];
  Executable exe(g, {dw});
  const auto r = exe.run({})[0].to_vector<double>();
  const std::vector<double> wv = {1.0, -0.5, 2.0};
  for (std::size_t i = 0; i < 3; ++i) EXPECT_NEAR(r[i], 3.0 * (3.0 * wv[i] - 1.0) / 3.0, 1e-12);
}

// ---- attention: broadcasting both operands, the batch from one of them ----
// [batch, 1, 4] * [1, 3, 1] is [batch, 3, 4]: the first operand keeps its own batch while
// it is expanded along dim 1 (it used to take the second's size 1, giving [1, 3, 4]), and
// the gradients sum back to each operand's shape.
TEST(Operators, BroadcastBothOperandsWithTheBatchFromOne) {
  for (const bool batch_first : {true, false}) {
    Graph g;
    auto a = g.input("a", {kiln::batch, 1, 4}, f64);
    auto b = g.input("b", {1, 3, 1}, f64);
    auto y = batch_first ? a * b : b * a;
    EXPECT_EQ(y.shape(), Shape({kiln::batch, 3, 4}));
    auto grads = grad(sum(y), {a, b});
    Executable exe(g, {y, grads[0], grads[1]});
    const auto r = exe.run({{"a", Tensor::from(std::vector<double>(8, 2.0), Shape{2, 1, 4})},
                            {"b", Tensor::from({1.0, 2.0, 3.0}, Shape{1, 3, 1})}});
    ASSERT_EQ(r[0].shape(), Shape({2, 3, 4}));
    EXPECT_EQ(r[0].at(4), 4.0);                                        // a[0, 0, 0] * b[0, 1, 0]
    EXPECT_EQ(r[1].to_vector<double>(), std::vector<double>(8, 6.0));  // sum of b
    EXPECT_EQ(r[2].to_vector<double>(), (std::vector<double>{16, 16, 16}));  // sum of a
  }
}

}  // namespace
}  // namespace kiln
