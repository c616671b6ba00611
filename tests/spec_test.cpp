// Model specs: JSON round trips, errors that name the JSON path, build_model's graphs and
// losses (checked against losses computed here in double), and the kiln.spec section.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include "kiln/core/error.hpp"
#include "kiln/infer/model.hpp"
#include "kiln/io/load_graph.hpp"
#include "kiln/io/model_file.hpp"
#include "kiln/nn/summary.hpp"
#include "kiln/runtime/executable.hpp"
#include "kiln/train/spec.hpp"

namespace {

using kiln::Tensor;
using kiln::train::BuiltModel;
using kiln::train::ModelSpec;
using kiln::train::Task;

const char* iris_like = R"({
  "name": "iris",
  "inputs": [{"name": "features", "shape": ["auto"]}],
  "layers": [{"type": "dense", "units": 16, "activation": "relu"},
             {"type": "dropout", "rate": 0.1},
             {"type": "dense", "units": "auto"}],
  "task": {"type": "classification", "class_weights": [1, 2, 0.5]},
  "preprocessing": {"scaling": "minmax"},
  "training": {"optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": true},
               "lr_schedule": {"type": "step", "step_size": 5, "gamma": 0.5},
               "epochs": 7, "batch_size": 8, "seed": 3, "validation_split": 0.1,
               "early_stopping": {"patience": 4}, "gradient_clipping": {"max_norm": 1.5},
               "metrics": ["accuracy", "f1_macro"]}
})";

std::string error_of(const std::string& json) {
  try {
    ModelSpec::from_json(json, "bad.json");
  } catch (const kiln::ValueError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Spec, ParsesEveryPartAndRoundTrips) {
  const ModelSpec s = ModelSpec::from_json(iris_like, "iris.json");
  EXPECT_EQ(s.name, "iris");
  ASSERT_EQ(s.layers.size(), 3u);
  EXPECT_EQ(s.layers[0].units, 16);
  EXPECT_EQ(s.layers[0].activation, "relu");
  EXPECT_DOUBLE_EQ(s.layers[1].rate, 0.1);
  EXPECT_EQ(s.layers[2].units, kiln::train::auto_size);
  EXPECT_EQ(s.task.class_weights, (std::vector<double>{1, 2, 0.5}));
  EXPECT_EQ(s.preprocessing.scaling, kiln::train::Scaling::minmax);
  EXPECT_EQ(s.training.optimizer.name, "sgd");
  EXPECT_TRUE(s.training.optimizer.nesterov);
  EXPECT_EQ(s.training.schedule.type, "step");
  EXPECT_EQ(s.training.schedule.step_size, 5);
  EXPECT_EQ(s.training.epochs, 7);
  EXPECT_EQ(s.training.seed, 3u);
  EXPECT_TRUE(s.training.early_stopping.enabled);
  EXPECT_EQ(s.training.early_stopping.patience, 4);
  EXPECT_DOUBLE_EQ(s.training.clip_norm, 1.5);
  EXPECT_EQ(s.metric_names(), (std::vector<std::string>{"accuracy", "f1_macro"}));
  // to_json -> from_json is the identity, indented or not.
  EXPECT_EQ(ModelSpec::from_json(s.to_json()), s);
  EXPECT_EQ(ModelSpec::from_json(s.to_json(-1)), s);
  // A spec built in C++ round trips too, graph form included.
  ModelSpec g;
  g.inputs = {{.name = "a", .shape = {3}}, {.name = "b", .shape = {2}}};
  g.nodes = {{.type = "concat", .name = "ab", .inputs = {"a", "b"}},
             {.type = "dense", .name = "h", .inputs = {"ab"}, .units = 4, .activation = "tanh"},
             {.type = "dense", .name = "out", .inputs = {"h"}, .units = 1}};
  g.output = "out";
  g.task.type = Task::regression;
  g.task.loss = "huber";
  g.task.huber_delta = 0.5;
  EXPECT_EQ(ModelSpec::from_json(g.to_json()), g);
}

TEST(Spec, ErrorsNameTheSourceAndTheJsonPath) {
  const std::string base = R"({"layers": [{"type": "dense", "units": 4},
                                          {"type": "dense", "units": 4},
                                          {"type": "dense", "units": -3}]})";
  EXPECT_EQ(error_of(base),
            "bad.json: layers[2].units: expected a positive integer or \"auto\", got -3");
  EXPECT_EQ(error_of(R"({"layers": [{"type": "dense", "units": 4, "activaton": "relu"}]})"),
            "bad.json: layers[0].activaton: unknown key (known here: activation, name, type, "
            "units)");
  EXPECT_EQ(error_of(R"({"layers": [{"type": "dense", "units": 4}], "trainig": {}})"),
            "bad.json: trainig: unknown key (known here: description, graph, inputs, layers, "
            "name, preprocessing, task, training)");
  EXPECT_EQ(error_of(R"({"layers": [{"type": "dense", "units": 2}],
                         "training": {"optimizer": {"name": "adam", "momentum": 0.9}}})"),
            "bad.json: training.optimizer.momentum: unknown key (known here: amsgrad, beta1, "
            "beta2, eps, lr, name, weight_decay)");
  EXPECT_EQ(error_of(R"({"layers": [{"type": "dense", "units": 2}],
                         "training": {"optimizer": {"name": "adagrad"}}})"),
            "bad.json: training.optimizer.name: expected one of sgd, adam, adamw, rmsprop, got "
            "\"adagrad\"");
  EXPECT_EQ(error_of(R"({"layers": [{"type": "dropout", "rate": 1.0}]})"),
            "bad.json: layers[0].rate: expected a number in [0, 1), got 1.0");
  EXPECT_EQ(error_of(R"({"layers": [{"type": "conv", "units": 2}]})"),
            "bad.json: layers[0].type: expected one of dense, dropout, batch_norm, layer_norm, "
            "conv2d, max_pool2d, avg_pool2d, global_avg_pool2d, flatten, activation, add, "
            "concat, reshape, lstm, gru, attention, transformer_encoder, positional_encoding, "
            "last_step, mean_steps, got \"conv\"");
  EXPECT_EQ(error_of(R"({"layers": [{"type": "dense", "units": "auto"},
                                    {"type": "dense", "units": 2}]})"),
            "bad.json: layers[0].units: \"auto\" units are only for the last layer");
  EXPECT_EQ(error_of(R"({"inputs": [{"name": "x", "shape": [4]}],
                         "graph": {"nodes": [{"name": "h", "type": "dense", "units": 2,
                                              "inputs": ["y"]}], "output": "h"}})"),
            "bad.json: graph.nodes[0].inputs[0]: 'y' is neither a model input nor an earlier "
            "node");
  EXPECT_EQ(error_of(R"({"layers": [{"type": "dense", "units": 2}],
                         "task": {"type": "binary", "class_weights": [1, 2, 3]}})"),
            "bad.json: task.class_weights: a binary task takes 2 weights, got 3");
  EXPECT_EQ(error_of(R"({"layers": [{"type": "dense", "units": 2}], "training": {"epochs": 2.5}})"),
            "bad.json: training.epochs: expected a positive integer, got 2.5");
  EXPECT_EQ(error_of(R"({"layers": [{"type": "dense", "units": 2}],
                         "training": {"early_stopping": {"patience": 3}}})"),
            "bad.json: training.early_stopping.monitor: 'val_loss' is a validation metric: set "
            "training.validation_split > 0");
  EXPECT_EQ(error_of("{}"),
            "bad.json: a spec needs \"layers\" (a layer list) or \"graph\" (nodes)");
  // JSON syntax errors give the line and column.
  const std::string syntax = error_of("{\n  \"layers\": [\n    {\"type\": \"dense\",, }\n]}");
  EXPECT_EQ(syntax.rfind("bad.json:3:22: not valid JSON: syntax error", 0), 0u) << syntax;
  // A missing file is an IoError naming it.
  EXPECT_THROW(ModelSpec::load("/nonexistent/spec.json"), kiln::IoError);
}

// Runs the loss of a built model on fixed logits (set through the last dense layer's bias,
// with zero weights) and compares with `expected`.
double run_loss(BuiltModel& m, const Tensor& x, const Tensor& y) {
  kiln::Executable exe(*m.graph, {m.loss});
  return exe.run({{"features", x}, {"target", y}}).at(0).item();
}

TEST(Spec, BuildsLayerListsWithTheDataSizesAndWeightedLosses) {
  ModelSpec s = ModelSpec::from_json(R"({"layers": [{"type": "dense", "units": 5,
      "activation": "relu", "name": "fc1"}, {"type": "dense", "units": "auto", "name": "out"}],
      "task": {"class_weights": [1, 2, 0.5]}})");
  BuiltModel m = kiln::train::build_model(s, {.input_shapes = {{"features", {4}}}, .classes = 3});
  EXPECT_EQ(m.inputs.at(0).shape(), (kiln::Shape{kiln::batch, 4}));
  EXPECT_EQ(m.predictions.shape(), (kiln::Shape{kiln::batch, 3}));
  EXPECT_EQ(m.output_name, "probs");
  const auto summary = kiln::nn::summarize(*m.graph, {m.output});
  EXPECT_EQ(summary.trainable, 4 * 5 + 5 + 5 * 3 + 3);
  // Logits = out.bias (zero weights): rows of labels 0, 1, 2, 1.
  m.graph->tensor(m.graph->find("out.weight")).copy_from(Tensor::zeros({5, 3}));
  m.graph->tensor(m.graph->find("out.bias")).copy_from(Tensor::from({0.5f, -1.0f, 2.0f}, {3}));
  const std::vector<double> z = {0.5, -1.0, 2.0}, w = {1, 2, 0.5};
  const std::vector<int> labels = {0, 1, 2, 1};
  const double lse = std::log(std::exp(z[0]) + std::exp(z[1]) + std::exp(z[2]));
  double num = 0, den = 0;
  for (int l : labels) {
    num += w[static_cast<std::size_t>(l)] * (lse - z[static_cast<std::size_t>(l)]);
    den += w[static_cast<std::size_t>(l)];
  }
  const double loss =
      run_loss(m, Tensor::zeros({4, 4}), Tensor::from<std::int32_t>({0, 1, 2, 1}, {4}));
  EXPECT_NEAR(loss, num / den, 1e-5);
  // Wrong sizes name the spec's path.
  s.layers[1].units = 4;
  try {
    kiln::train::build_model(
        s, {.input_shapes = {{"features", {4}}}, .classes = 3, .source = "s.json"});
    FAIL() << "no error";
  } catch (const kiln::ShapeError& e) {
    EXPECT_STREQ(e.what(),
                 "s.json: the last layer has 4 units, the data has 3 classes (use "
                 "\"units\": \"auto\")");
  }
  s.layers[1].units = kiln::train::auto_size;
  EXPECT_THROW(kiln::train::build_model(s, {.classes = 3}), kiln::ValueError);  // shape unknown
}

TEST(Spec, HuberAndBinaryLossesMatchTheirDefinitions) {
  ModelSpec s;
  s.layers = {{.type = "dense", .name = "out", .units = kiln::train::auto_size}};
  s.task.type = Task::regression;
  s.task.loss = "huber";
  s.task.huber_delta = 1.0;
  BuiltModel m = kiln::train::build_model(s, {.input_shapes = {{"features", {2}}}});
  m.graph->tensor(m.graph->find("out.weight")).copy_from(Tensor::from({1.0f, 0.0f}, {2, 1}));
  m.graph->tensor(m.graph->find("out.bias")).copy_from(Tensor::zeros({1}));
  // prediction = x[:, 0]; differences 0.5 (quadratic) and -3 (linear).
  const Tensor x = Tensor::from({1.5f, 9.0f, -1.0f, 9.0f}, {2, 2});
  const Tensor y = Tensor::from({1.0f, 2.0f}, {2, 1});
  EXPECT_NEAR(run_loss(m, x, y), (0.5 * 0.25 + (3.0 - 0.5)) / 2.0, 1e-6);

  s.task = {.type = Task::binary, .class_weights = {1.0, 3.0}};
  BuiltModel b = kiln::train::build_model(s, {.input_shapes = {{"features", {2}}}});
  b.graph->tensor(b.graph->find("out.weight")).copy_from(Tensor::from({1.0f, 0.0f}, {2, 1}));
  b.graph->tensor(b.graph->find("out.bias")).copy_from(Tensor::zeros({1}));
  const Tensor t = Tensor::from({0.0f, 1.0f}, {2, 1});
  auto bce = [](double z, double target) {
    return std::max(z, 0.0) - z * target + std::log1p(std::exp(-std::abs(z)));
  };
  EXPECT_NEAR(run_loss(b, x, t), (1.0 * bce(1.5, 0) + 3.0 * bce(-1.0, 1)) / 4.0, 1e-6);
}

TEST(Spec, GraphSpecsJoinInputsByName) {
  ModelSpec g = ModelSpec::from_json(R"({
    "inputs": [{"name": "a", "shape": [3]}, {"name": "b", "shape": ["auto"]}],
    "graph": {"nodes": [
      {"name": "ha", "type": "dense", "units": 4, "inputs": ["a"]},
      {"name": "hb", "type": "dense", "units": 4, "inputs": ["b"]},
      {"name": "sum", "type": "add", "inputs": ["ha", "hb"]},
      {"name": "both", "type": "concat", "inputs": ["sum", "a"]},
      {"name": "out", "type": "dense", "units": "auto", "inputs": ["both"]}],
      "output": "out"},
    "task": {"type": "classification"}})");
  BuiltModel m = kiln::train::build_model(g, {.input_shapes = {{"b", {6}}}, .classes = 2});
  EXPECT_EQ(m.inputs.size(), 2u);
  EXPECT_EQ(m.inputs[1].shape(), (kiln::Shape{kiln::batch, 6}));
  bool found = false;
  for (const auto& layer : kiln::nn::summarize(*m.graph, {m.output}).layers)
    if (layer.name == "both") {
      found = true;
      EXPECT_EQ(layer.output_shape, (kiln::Shape{kiln::batch, 7}));
    }
  EXPECT_TRUE(found);
  EXPECT_EQ(m.predictions.shape(), (kiln::Shape{kiln::batch, 2}));
  // A layer whose shapes do not fit is named by its path.
  g.nodes[2].inputs = {"ha", "a"};
  try {
    kiln::train::build_model(g, {.input_shapes = {{"b", {6}}}, .classes = 2, .source = "g.json"});
    FAIL() << "no error";
  } catch (const kiln::ShapeError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("g.json: graph.nodes[2] (add): ", 0), 0u) << e.what();
  }
}

TEST(Spec, TheSpecSectionTravelsWithTheModelFile) {
  ModelSpec s = ModelSpec::from_json(iris_like);
  BuiltModel m = kiln::train::build_model(s, {.input_shapes = {{"features", {4}}}, .classes = 3});
  const std::string text = s.to_json();
  kiln::SaveOptions o{.inputs = m.inputs, .outputs = {m.output}, .output_names = {m.output_name}};
  o.sections["kiln.spec"] = std::vector<std::uint8_t>(text.begin(), text.end());
  o.sections["kiln.data"] = {'{', '}'};
  o.sections["user"] = {1, 2};
  const auto bytes = kiln::serialize_model(*m.graph, o);
  const auto model = kiln::infer::Model::load(bytes);
  EXPECT_EQ(model.section_names(), (std::vector<std::string>{"kiln.data", "kiln.spec", "user"}));
  const auto sec = model.section("kiln.spec");
  EXPECT_EQ(ModelSpec::from_json(std::string(sec.begin(), sec.end())), s);
  // A LoadedGraph keeps them, so a re-save keeps the recipe.
  const kiln::LoadedGraph lg = kiln::load_graph(bytes);
  EXPECT_EQ(lg.sections.at("kiln.spec"), o.sections["kiln.spec"]);
  const auto again = kiln::serialize_model(*lg.graph, lg.save_options());
  EXPECT_EQ(kiln::model_content_hash(again), kiln::model_content_hash(bytes));
  // Other kiln.* names stay reserved.
  o.sections["kiln.other"] = {1};
  EXPECT_THROW(kiln::serialize_model(*m.graph, o), kiln::ValueError);
}

}  // namespace
