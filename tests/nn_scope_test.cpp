// Layers and scopes: every node a layer adds (and every gradient node of it) carries the
// layer's scope; layers take the graph from their input; the model summary, checked
// against parameter counts worked out by hand.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "kiln/kiln.hpp"
#include "tests/nn_test_util.hpp"

namespace {

using kiln::Graph;
using kiln::Node;
using kiln::Op;
using kiln::Shape;
using kiln::Tensor;
using kiln::Value;
namespace nn = kiln::nn;

// The scopes of the nodes added from index `from` on, and their ops.
struct Added {
  std::set<std::string> scopes;
  std::set<Op> ops;
};
Added added_since(const Graph& g, std::size_t from) {
  Added a;
  for (std::size_t i = from; i < g.size(); ++i) {
    const Node& n = g.node(static_cast<std::int32_t>(i));
    a.scopes.insert(n.scope);
    a.ops.insert(n.op);
  }
  return a;
}

TEST(LayerScopes, EveryNodeOfADenseLayerCarriesItsScope) {
  Graph g;
  Value x = g.input("x", {kiln::batch, 3});
  std::size_t before = g.size();
  Value y = nn::dense(x, 4, {.activation = kiln::relu, .name = "fc1"});
  const Added a = added_since(g, before);
  EXPECT_EQ(a.scopes, (std::set<std::string>{"fc1"}));
  EXPECT_EQ(a.ops,
            (std::set<Op>{Op::parameter, Op::matmul, Op::add, Op::expand, Op::reshape, Op::relu}));
  EXPECT_EQ(y.scope(), "fc1");
  EXPECT_EQ(g.find("fc1.weight").scope(), "fc1");
  EXPECT_EQ(x.scope(), "");
  EXPECT_EQ(g.current_scope(), "");

  // Auto-named layers: the scope is the generated prefix.
  before = g.size();
  nn::dense(y, 2);
  EXPECT_EQ(added_since(g, before).scopes, (std::set<std::string>{"dense_0"}));
}

TEST(LayerScopes, ConvolutionalLayersPoolingAndTheRestToo) {
  Graph g;
  Value x = g.input("image", {kiln::batch, 1, 8, 8});
  struct Step {
    std::string scope;
    std::function<Value(Value)> layer;
    Op must_have;
  };
  const std::vector<Step> steps = {
      {"conv1",
       [](Value v) {
         return nn::conv2d(v, 4, {3, 3},
                           {.padding = {1, 1}, .activation = kiln::relu, .name = "conv1"});
       },
       Op::conv2d},
      {"batch_norm_0", [](Value v) { return nn::batch_norm(v); }, Op::batch_norm},
      {"activation_0", nn::Activation(nn::Activation::relu) /*as a layer, below*/, Op::relu},
      {"max_pool2d_0",
       [](Value v) {
         return nn::max_pool2d(v, {2, 2});
       },
       Op::max_pool2d},
      {"avg_pool2d_0",
       [](Value v) {
         return nn::avg_pool2d(v, {2, 2});
       },
       Op::avg_pool2d},
      {"global_avg_pool2d_0", nn::GlobalAvgPool2d(), Op::mean},
      {"flatten_0", nn::Flatten(), Op::reshape},
      {"dropout_0", [](Value v) { return nn::dropout(v, 0.5); }, Op::dropout_mask},
      {"layer_norm_0", [](Value v) { return nn::layer_norm(v); }, Op::layer_norm},
  };
  Value h = x;
  for (const Step& s : steps) {
    const std::size_t before = g.size();
    // Layer objects go through nn::Layer, the way Sequential calls them.
    h = nn::Layer(s.layer)(h);
    if (s.scope == "activation_0") {
      // A std::function<Value(Value)> is a plain callable: no scope of its own. The
      // Activation layer object, called as a layer, opens one.
      EXPECT_EQ(added_since(g, before).scopes, (std::set<std::string>{""}));
      const std::size_t again = g.size();
      h = nn::Layer(nn::Activation(nn::Activation::relu))(h);
      EXPECT_EQ(added_since(g, again).scopes, (std::set<std::string>{s.scope}));
      continue;
    }
    const Added a = added_since(g, before);
    EXPECT_EQ(a.scopes, (std::set<std::string>{s.scope})) << s.scope;
    EXPECT_TRUE(a.ops.count(s.must_have)) << s.scope;
  }
  // Batch norm's buffers are in its scope too.
  EXPECT_EQ(g.find("batch_norm_0.running_var").scope(), "batch_norm_0");

  // Embedding.
  Value ids = g.input("ids", {kiln::batch}, kiln::i32);
  const std::size_t before = g.size();
  nn::embedding(ids, 10, 3, {.name = "emb"});
  EXPECT_EQ(added_since(g, before).scopes, (std::set<std::string>{"emb"}));
}

TEST(LayerScopes, ANamedSequentialNestsItsLayersScopes) {
  Graph g;
  Value x = g.input("x", {kiln::batch, 6});
  nn::Sequential encoder("encoder", {nn::Dense(4, nn::Activation::relu), nn::Dense(2)});
  nn::Sequential head{nn::Dense(3, {.name = "out"})};
  Value y = head(encoder(x));
  EXPECT_EQ(g.find("dense_0.weight").scope(), "encoder/dense_0");
  EXPECT_EQ(g.find("dense_1.bias").scope(), "encoder/dense_1");
  EXPECT_EQ(y.scope(), "out");
  EXPECT_EQ(encoder.name(), "encoder");
  // A scope name counts as used: a layer may not take it.
  EXPECT_THROW(nn::dense(x, 2, {.name = "encoder"}), kiln::NameError);
}

TEST(LayerScopes, GradientNodesOfConvolutionsCarryTheLayerScope) {
  Graph g;
  Value x = g.input("image", {kiln::batch, 1, 6, 6});
  Value t = g.input("t", {kiln::batch, 2});
  nn::Sequential net{nn::Conv2d(3, {3, 3}, {.activation = kiln::relu, .name = "conv1"}),
                     nn::MaxPool2d({2, 2}), nn::Flatten(), nn::Dense(2, {.name = "fc"})};
  Value loss = kiln::mse(net(x), t);
  const std::size_t forward = g.size();
  kiln::TrainStep step(loss);
  std::set<std::string> grad_scopes;
  std::set<Op> conv_grad_ops;
  for (std::size_t i = forward; i < g.size(); ++i) {
    const Node& n = g.node(static_cast<std::int32_t>(i));
    grad_scopes.insert(n.scope);
    if (n.scope == "conv1") conv_grad_ops.insert(n.op);
  }
  EXPECT_EQ(grad_scopes, (std::set<std::string>{"", "conv1", "max_pool2d_0", "flatten_0", "fc"}));
  EXPECT_TRUE(conv_grad_ops.count(Op::conv2d_backward_weights));
  EXPECT_TRUE(conv_grad_ops.count(Op::relu_backward));
  EXPECT_EQ(g.find("conv1.weight").scope(), "conv1");
}

// ---------------------------------------------------------------------------------------------
// Layers take the graph from their input

TEST(LayersFromValues, TheGraphOverloadsAndTheValueOverloadsBuildTheSameLayers) {
  const auto init = kiln_test::ramp(0.05, 10.0);
  Graph a, b;
  Value xa = a.input("x", {kiln::batch, 4});
  Value xb = b.input("x", {kiln::batch, 4});
  Value ya = nn::dense(a, nn::dense(a, xa, 5, {.activation = kiln::tanh, .weight_init = init}), 2,
                       {.weight_init = init});
  nn::Sequential mlp{nn::Dense(5, {.activation = kiln::tanh, .weight_init = init}),
                     [&](Value v) { return nn::dense(v, 2, {.weight_init = init}); }};
  Value yb = mlp(xb);
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    const Node& na = a.node(static_cast<std::int32_t>(i));
    const Node& nb = b.node(static_cast<std::int32_t>(i));
    EXPECT_EQ(na.name, nb.name);
    EXPECT_EQ(na.op, nb.op);
    EXPECT_EQ(na.scope, nb.scope);
  }
  const Tensor in = Tensor::from<float>({0.1f, -0.2f, 0.3f, 0.9f, 1.f, 0.f, -1.f, 2.f}, {2, 4});
  const auto ra = kiln::Executable(a, {ya}).run({{"x", in}})[0].to_vector<float>();
  const auto rb = kiln::Executable(b, {yb}).run({{"x", in}})[0].to_vector<float>();
  EXPECT_EQ(ra, rb);
  EXPECT_NE(ra, std::vector<float>(4, 0.0f));

  // The graph overloads check that x belongs to the graph; empty Values are refused.
  EXPECT_THROW(nn::dense(a, xb, 2), kiln::ValueError);
  EXPECT_THROW(mlp(a, xb), kiln::ValueError);
  EXPECT_THROW(nn::dense(Value(), 2), kiln::ValueError);
  EXPECT_THROW(nn::Flatten()(Value()), kiln::ValueError);
  EXPECT_THROW(nn::Layer()(xa), kiln::ValueError);
}

// ---------------------------------------------------------------------------------------------
// Summary

TEST(Summary, CountsAnMlpAsWorkedOutByHand) {
  Graph g;
  Value x = g.input("pixels", {kiln::batch, 64});
  Value y = g.input("label", {kiln::batch}, kiln::i32);
  Value h = nn::dense(x, 128, {.activation = kiln::relu, .name = "fc1"});
  Value logits = nn::dense(h, 10, {.name = "fc2"});
  Value loss = kiln::softmax_cross_entropy(logits, y);

  const nn::ModelSummary s = nn::summarize(g, {logits});
  ASSERT_EQ(s.layers.size(), 3u);  // the label input is not needed for the logits
  EXPECT_EQ(s.layers[0].name, "pixels");
  EXPECT_EQ(s.layers[0].type, "Input");
  EXPECT_EQ(s.layers[1].name, "fc1");
  EXPECT_EQ(s.layers[1].type, "Dense");
  EXPECT_EQ(s.layers[1].output_shape, (Shape{kiln::batch, 128}));
  EXPECT_EQ(s.layers[1].trainable, 64 * 128 + 128);  // 8,320
  EXPECT_EQ(s.layers[2].output_shape, (Shape{kiln::batch, 10}));
  EXPECT_EQ(s.layers[2].trainable, 128 * 10 + 10);  // 1,290
  EXPECT_EQ(s.trainable, 9610);
  EXPECT_EQ(s.non_trainable, 0);
  EXPECT_EQ(s.total(), 9610);
  EXPECT_EQ(s.trainable_bytes, 9610 * 4);

  const std::string text = nn::summary(g, {logits});
  EXPECT_NE(text.find("fc1 (Dense)"), std::string::npos) << text;
  EXPECT_NE(text.find("[batch, 128]"), std::string::npos) << text;
  EXPECT_NE(text.find("8,320"), std::string::npos) << text;
  EXPECT_NE(text.find("Total params: 9,610 (37.5 KiB)"), std::string::npos) << text;
  EXPECT_NE(text.find("Non-trainable params: 0 (0 B)"), std::string::npos) << text;

  // A TrainStep appends gradient nodes (in fc1's and fc2's scopes): the summary of the
  // logits does not change; the whole graph's lists both inputs.
  kiln::TrainStep step(loss);
  EXPECT_EQ(nn::summary(g, {logits}), text);
  EXPECT_EQ(nn::summarize(g).layers.size(), 4u);
  EXPECT_EQ(nn::summarize(g).total(), 9610);
  Graph other;
  EXPECT_THROW(nn::summarize(other, {logits}), kiln::ValueError);
}

TEST(Summary, CountsACnnWithBatchNormBuffersAsNonTrainable) {
  Graph g;
  Value x = g.input("image", {kiln::batch, 1, 8, 8});
  nn::Sequential cnn{
      nn::Conv2d(16, {3, 3}, {.padding = {1, 1}, .name = "conv1"}),  // 16*1*9 + 16 = 160
      nn::BatchNorm2d(),                            // 16 + 16 trainable, 16 + 16 buffers
      nn::Activation(nn::Activation::relu),         // 0
      nn::Conv2d(32, {3, 3}, {.padding = {1, 1}}),  // 32*16*9 + 32 = 4,640
      nn::MaxPool2d({2, 2}),                        // [batch, 32, 4, 4]
      nn::Flatten(),                                // [batch, 512]
      nn::Dropout(0.25),
      nn::Dense(10, {.name = "fc"}),  // 512*10 + 10 = 5,130
  };
  Value logits = cnn(x);
  Value probs = kiln::softmax(logits);  // outside any layer: not a row
  const nn::ModelSummary s = nn::summarize(g, {probs});
  const std::vector<std::string> names = {"image",        "conv1",     "batch_norm_0",
                                          "activation_0", "conv2d_0",  "max_pool2d_0",
                                          "flatten_0",    "dropout_0", "fc"};
  const std::vector<std::string> types = {"Input",      "Conv2d",  "BatchNorm",
                                          "Activation", "Conv2d",  "MaxPool2d",
                                          "Flatten",    "Dropout", "Dense"};
  const std::vector<Shape> shapes = {
      {kiln::batch, 1, 8, 8},  {kiln::batch, 16, 8, 8}, {kiln::batch, 16, 8, 8},
      {kiln::batch, 16, 8, 8}, {kiln::batch, 32, 8, 8}, {kiln::batch, 32, 4, 4},
      {kiln::batch, 512},      {kiln::batch, 512},      {kiln::batch, 10}};
  const std::vector<std::int64_t> params = {0, 160, 64, 0, 4640, 0, 0, 0, 5130};
  ASSERT_EQ(s.layers.size(), names.size());
  for (std::size_t i = 0; i < names.size(); ++i) {
    EXPECT_EQ(s.layers[i].name, names[i]);
    EXPECT_EQ(s.layers[i].type, types[i]) << names[i];
    EXPECT_EQ(s.layers[i].output_shape, shapes[i]) << names[i];
    EXPECT_EQ(s.layers[i].params(), params[i]) << names[i];
  }
  EXPECT_EQ(s.layers[2].trainable, 32);
  EXPECT_EQ(s.layers[2].non_trainable, 32);
  EXPECT_EQ(s.trainable, 160 + 32 + 4640 + 5130);
  EXPECT_EQ(s.non_trainable, 32);
  EXPECT_EQ(s.total(), 9994);
  const std::string text = s.str();
  EXPECT_NE(text.find("Trainable params: 9,962"), std::string::npos) << text;
  EXPECT_NE(text.find("Non-trainable params: 32 (128 B)"), std::string::npos) << text;
}

TEST(Summary, ParametersOutsideLayersAreRowsOfTheirOwn) {
  Graph g;
  Value x = g.input("x", {kiln::batch, 3});
  Value w = g.parameter("w", Tensor::zeros({3, 2}));
  Value y = nn::dense(kiln::matmul(x, w), 4, {.name = "fc"});
  const nn::ModelSummary s = nn::summarize(g, {y});
  ASSERT_EQ(s.layers.size(), 3u);
  EXPECT_EQ(s.layers[1].name, "w");
  EXPECT_EQ(s.layers[1].type, "Parameter");
  EXPECT_EQ(s.layers[1].trainable, 6);
  EXPECT_EQ(s.layers[2].trainable, 2 * 4 + 4);
  EXPECT_EQ(s.total(), 18);
}

}  // namespace
