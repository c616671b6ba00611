// Sequence layers in model specs: "reshape" (a flat CSV row viewed as [T, F]), "lstm",
// "gru", "attention", "transformer_encoder", "positional_encoding", "last_step" and
// "mean_steps": JSON round trips, errors naming the layer's JSON path and field, the graphs
// build_model makes (shapes, PyTorch parameter names) and what "return": "last" returns.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "kiln/core/error.hpp"
#include "kiln/runtime/executable.hpp"
#include "kiln/train/spec.hpp"

namespace {

using kiln::Tensor;
using kiln::train::BuiltModel;
using kiln::train::LayerSpec;
using kiln::train::ModelSpec;

const char* every_sequence_layer = R"({
  "name": "seq",
  "inputs": [{"name": "pixels", "shape": [64]}],
  "layers": [{"type": "reshape", "shape": [8, 8]},
             {"type": "lstm", "hidden": 6, "layers": 2, "bidirectional": true,
              "return": "sequence", "name": "rnn"},
             {"type": "positional_encoding", "learned": true, "name": "pos"},
             {"type": "attention", "heads": 3, "causal": true, "name": "att"},
             {"type": "transformer_encoder", "heads": 2, "feedforward": 16,
              "activation": "gelu", "norm_first": true, "causal": false, "name": "enc"},
             {"type": "gru", "hidden": 4, "return": "sequence", "name": "gru"},
             {"type": "mean_steps"},
             {"type": "dense", "units": "auto"}],
  "task": {"type": "classification", "target": "label"}
})";

std::string error_of(const std::string& json) {
  try {
    ModelSpec::from_json(json, "bad.json");
  } catch (const kiln::ValueError& e) {
    return e.what();
  }
  return "(no error)";
}

/// The message of what build_model throws (any kiln::Error), or "(no error)".
std::string build_error_of(const std::string& json, std::int64_t features = 64) {
  try {
    const ModelSpec s = ModelSpec::from_json(json, "bad.json");
    (void)kiln::train::build_model(
        s, {.input_shapes = {{"x", {features}}}, .classes = 3, .source = "bad.json"});
  } catch (const kiln::Error& e) {
    return e.what();
  }
  return "(no error)";
}

/// The value the layer (scope) `layer` reads from outside it.
kiln::Value input_of(kiln::Graph& g, const std::string& layer) {
  for (const kiln::Node& n : g.nodes())
    if (n.scope == layer)
      for (const std::int32_t i : n.inputs)
        if (g.node(i).scope != layer && g.node(i).op != kiln::Op::parameter) return g.value(i);
  throw kiln::ValueError("no input of layer '" + layer + "'");
}

std::string layers_json(const std::string& layers) {
  return R"({"inputs": [{"name": "x", "shape": ["auto"]}], "layers": [)" + layers + "]}";
}

TEST(SpecSequence, ParsesEveryLayerAndRoundTrips) {
  const ModelSpec s = ModelSpec::from_json(every_sequence_layer, "seq.json");
  ASSERT_EQ(s.layers.size(), 8u);
  EXPECT_EQ(s.layers[0].shape, (std::vector<std::int64_t>{8, 8}));
  const LayerSpec& lstm = s.layers[1];
  EXPECT_EQ(lstm.hidden, 6);
  EXPECT_EQ(lstm.num_layers, 2);
  EXPECT_TRUE(lstm.bidirectional);
  EXPECT_EQ(lstm.returns, "sequence");
  EXPECT_TRUE(s.layers[2].learned);
  EXPECT_EQ(s.layers[3].heads, 3);
  EXPECT_TRUE(s.layers[3].causal);
  const LayerSpec& enc = s.layers[4];
  EXPECT_EQ(enc.heads, 2);
  EXPECT_EQ(enc.feedforward, 16);
  EXPECT_EQ(enc.activation, "gelu");
  EXPECT_TRUE(enc.norm_first);
  EXPECT_FALSE(enc.causal);
  EXPECT_EQ(s.layers[5].num_layers, 1);  // the defaults
  EXPECT_FALSE(s.layers[5].bidirectional);
  EXPECT_EQ(s.layers[6].type, "mean_steps");
  EXPECT_EQ(ModelSpec::from_json(s.to_json()), s);
  EXPECT_EQ(ModelSpec::from_json(s.to_json(-1)), s);

  // Built in C++ (the transformer's activation left unset: relu), in a graph spec too.
  ModelSpec g;
  g.inputs = {{.name = "x", .shape = {12}}};
  g.nodes = {{.type = "reshape", .name = "steps", .inputs = {"x"}, .shape = {4, 3}},
             {.type = "gru", .name = "gru", .inputs = {"steps"}, .hidden = 3, .returns = "last"},
             {.type = "transformer_encoder",
              .name = "enc",
              .inputs = {"steps"},
              .heads = 3,
              .feedforward = 8},
             {.type = "last_step", .name = "last", .inputs = {"enc"}},
             {.type = "concat", .name = "both", .inputs = {"gru", "last"}},
             {.type = "dense", .name = "out", .inputs = {"both"}, .units = 1}};
  g.output = "out";
  g.task.type = kiln::train::Task::regression;
  EXPECT_EQ(ModelSpec::from_json(g.to_json()), g);
  // And it builds: the GRU's last state [batch, 3] beside the encoder's last step [batch, 3].
  BuiltModel m = kiln::train::build_model(g, {});
  EXPECT_EQ(m.predictions.shape(), (kiln::Shape{kiln::batch, 1}));
  EXPECT_EQ(input_of(*m.graph, "out").shape(), (kiln::Shape{kiln::batch, 6}));
  EXPECT_EQ(m.graph->find("gru.weight_hh_l0").shape(), (kiln::Shape{9, 3}));
  EXPECT_EQ(m.graph->find("enc.linear1.weight").shape(), (kiln::Shape{8, 3}));
}

TEST(SpecSequence, ErrorsNameTheLayerAndTheField) {
  EXPECT_EQ(error_of(layers_json(R"({"type": "reshape"})")),
            "bad.json: layers[0]: missing \"shape\" (the per-row shape without the batch, e.g. "
            "[8, 8])");
  EXPECT_EQ(error_of(layers_json(R"({"type": "reshape", "shape": [8, 0]})")),
            "bad.json: layers[0].shape[1]: expected a positive integer, got 0");
  EXPECT_EQ(error_of(layers_json(R"({"type": "reshape", "shape": 64})")),
            "bad.json: layers[0].shape: expected a list of 1 to 7 positive integers, got 64");
  EXPECT_EQ(error_of(layers_json(R"({"type": "reshape", "shape": [8, 8]}, {"type": "lstm"})")),
            "bad.json: layers[1]: missing \"hidden\" (the hidden size)");
  EXPECT_EQ(error_of(layers_json(R"({"type": "gru", "hidden": -4})")),
            "bad.json: layers[0].hidden: expected a positive integer, got -4");
  EXPECT_EQ(error_of(layers_json(R"({"type": "lstm", "hidden": 4, "layers": 0})")),
            "bad.json: layers[0].layers: expected a positive integer, got 0");
  EXPECT_EQ(error_of(layers_json(R"({"type": "lstm", "hidden": 4, "return": "all"})")),
            "bad.json: layers[0].return: expected one of sequence, last, got \"all\"");
  EXPECT_EQ(error_of(layers_json(R"({"type": "lstm", "hidden": 4, "bidirectional": 1})")),
            "bad.json: layers[0].bidirectional: expected true or false, got 1");
  EXPECT_EQ(error_of(layers_json(R"({"type": "gru", "hidden": 4, "units": 4})")),
            "bad.json: layers[0].units: unknown key (known here: bidirectional, hidden, layers, "
            "name, return, type)");
  EXPECT_EQ(error_of(layers_json(R"({"type": "attention", "heads": 0})")),
            "bad.json: layers[0].heads: expected a positive integer, got 0");
  EXPECT_EQ(error_of(layers_json(R"({"type": "transformer_encoder", "heads": 2})")),
            "bad.json: layers[0]: missing \"feedforward\" (the feed-forward width)");
  EXPECT_EQ(error_of(layers_json(
                R"({"type": "transformer_encoder", "feedforward": 8, "activation": "tanh"})")),
            "bad.json: layers[0].activation: expected one of relu, gelu, got \"tanh\"");
  EXPECT_EQ(error_of(layers_json(R"({"type": "positional_encoding", "learned": "yes"})")),
            "bad.json: layers[0].learned: expected true or false, got \"yes\"");
  EXPECT_EQ(error_of(layers_json(R"({"type": "last_step", "steps": 2})")),
            "bad.json: layers[0].steps: unknown key (known here: name, type)");

  // Shapes that do not fit are found when the model is built, naming the layer.
  EXPECT_EQ(build_error_of(layers_json(R"({"type": "reshape", "shape": [8, 7]},
                                          {"type": "dense", "units": "auto"})")),
            "bad.json: layers[0] (reshape): shape: [8, 7] holds 56 elements per row, the input "
            "[batch, 64] has 64");
  EXPECT_EQ(build_error_of(layers_json(R"({"type": "gru", "hidden": 4, "return": "last"},
                                          {"type": "dense", "units": "auto"})")),
            "bad.json: layers[0] (gru): 'gru' takes a sequence [batch, steps, features], got "
            "[batch, 64] (view the features as steps with a \"reshape\" layer, e.g. \"shape\": "
            "[8, 8])");
  EXPECT_EQ(build_error_of(layers_json(R"({"type": "reshape", "shape": [8, 8]},
                                          {"type": "attention", "heads": 3},
                                          {"type": "last_step"},
                                          {"type": "dense", "units": "auto"})")),
            "bad.json: layers[1] (attention): heads: 3 heads do not divide the 8 features of "
            "[batch, 8, 8]");
  EXPECT_EQ(build_error_of(layers_json(R"({"type": "reshape", "shape": [4, 16]},
                                          {"type": "transformer_encoder", "heads": 5,
                                           "feedforward": 8},
                                          {"type": "mean_steps"},
                                          {"type": "dense", "units": "auto"})")),
            "bad.json: layers[1] (transformer_encoder): heads: 5 heads do not divide the 16 "
            "features of [batch, 4, 16]");
  // A sequence left as the model's output: the task asks for [batch, units].
  const std::string left = build_error_of(layers_json(R"({"type": "reshape", "shape": [8, 8]},
                                                         {"type": "lstm", "hidden": 4})"));
  EXPECT_NE(left.find("gives [batch, 8, 4]; the task needs [batch, units]"), std::string::npos)
      << left;
  // C++ specs are checked when built.
  ModelSpec cpp;
  cpp.inputs = {{.name = "x", .shape = {4, 2}}};
  cpp.layers = {{.type = "lstm", .hidden = 0}, {.type = "dense", .units = 2}};
  try {
    (void)kiln::train::build_model(cpp, {.classes = 2, .source = "cpp"});
    ADD_FAILURE() << "hidden 0 was accepted";
  } catch (const kiln::ValueError& e) {
    EXPECT_STREQ(e.what(), "cpp: layers[0] (lstm): hidden: must be a positive integer");
  }
}

TEST(SpecSequence, BuildsShapesAndPyTorchParameterNames) {
  const ModelSpec s = ModelSpec::from_json(every_sequence_layer, "seq.json");
  BuiltModel m = kiln::train::build_model(s, {.classes = 10});
  kiln::Graph& g = *m.graph;
  EXPECT_EQ(m.predictions.shape(), (kiln::Shape{kiln::batch, 10}));
  // The stacked bidirectional LSTM: layer 1 reads both directions of layer 0.
  EXPECT_EQ(g.find("rnn.weight_ih_l0").shape(), (kiln::Shape{24, 8}));
  EXPECT_EQ(g.find("rnn.weight_ih_l1_reverse").shape(), (kiln::Shape{24, 12}));
  EXPECT_EQ(g.find("rnn.bias_hh_l1_reverse").shape(), (kiln::Shape{24}));
  EXPECT_EQ(g.find("pos.weight").shape(), (kiln::Shape{8, 12}));
  EXPECT_EQ(g.find("att.in_proj_weight").shape(), (kiln::Shape{36, 12}));
  EXPECT_EQ(g.find("att.out_proj.weight").shape(), (kiln::Shape{12, 12}));
  EXPECT_EQ(g.find("enc.self_attn.in_proj_weight").shape(), (kiln::Shape{36, 12}));
  EXPECT_EQ(g.find("enc.linear1.weight").shape(), (kiln::Shape{16, 12}));
  EXPECT_EQ(g.find("enc.norm2.weight").shape(), (kiln::Shape{12}));
  EXPECT_EQ(g.find("gru.weight_hh_l0").shape(), (kiln::Shape{12, 4}));
  std::set<kiln::Op> ops;
  for (const kiln::Node& n : g.nodes()) ops.insert(n.op);
  for (const kiln::Op op : {kiln::Op::lstm, kiln::Op::gru, kiln::Op::attention, kiln::Op::gelu})
    EXPECT_TRUE(ops.count(op)) << kiln::op_name(op);
}

/// A spec "reshape [T, F] -> <rnn> -> dense" with the recurrent layer's return.
ModelSpec recurrent_spec(const std::string& type, const std::string& returns) {
  ModelSpec s;
  s.inputs = {{.name = "x", .shape = {15}}};
  s.layers = {{.type = "reshape", .shape = {5, 3}},
              {.type = type,
               .name = "rnn",
               .hidden = 4,
               .num_layers = 2,
               .bidirectional = true,
               .returns = returns}};
  if (returns == "sequence") s.layers.push_back({.type = "last_step", .name = "tail"});
  s.layers.push_back({.type = "dense", .name = "out", .units = 2});
  return s;
}

TEST(SpecSequence, ReturnLastIsEachDirectionsFinalState) {
  // "last" gives the forward direction's step T-1 and the reverse direction's step 0 of the
  // last layer's sequence, [batch, 2H]; "last_step" would give step T-1 of both.
  std::vector<float> xs(2 * 15);
  for (std::size_t i = 0; i < xs.size(); ++i) xs[i] = std::sin(0.7f * static_cast<float>(i));
  const Tensor x = Tensor::from(xs, kiln::Shape{2, 15});
  for (const std::string type : {"lstm", "gru"}) {
    // The same names and seed give the same weights in both graphs.
    BuiltModel seq_model = kiln::train::build_model(recurrent_spec(type, "sequence"), {});
    BuiltModel last_model = kiln::train::build_model(recurrent_spec(type, "last"), {});
    kiln::Graph& gl = *last_model.graph;
    const kiln::Value dense_in = gl.find("rnn.last");
    EXPECT_EQ(dense_in.scope(), "rnn");
    EXPECT_EQ(input_of(gl, "out").id(), dense_in.id());
    ASSERT_EQ(dense_in.shape(), (kiln::Shape{kiln::batch, 8})) << type;
    const kiln::Value seq_out = input_of(*seq_model.graph, "tail");
    ASSERT_EQ(seq_out.shape(), (kiln::Shape{kiln::batch, 5, 8})) << type;
    kiln::Executable es(*seq_model.graph, {seq_out});
    kiln::Executable el(gl, {dense_in});
    const std::vector<float> seq = es.run({{"x", x}})[0].to_vector<float>();   // [2, 5, 8]
    const std::vector<float> last = el.run({{"x", x}})[0].to_vector<float>();  // [2, 8]
    ASSERT_EQ(seq.size(), 2u * 5 * 8);
    ASSERT_EQ(last.size(), 2u * 8);
    for (std::size_t b = 0; b < 2; ++b)
      for (std::size_t j = 0; j < 8; ++j) {
        const std::size_t t = j < 4 ? 4 : 0;  // forward: step T-1; reverse: step 0
        EXPECT_FLOAT_EQ(last[b * 8 + j], seq[(b * 5 + t) * 8 + j]) << type << " " << b << " " << j;
      }
  }
}

TEST(SpecSequence, LastStepAndMeanSteps) {
  ModelSpec s;
  s.inputs = {{.name = "x", .shape = {6}}};
  s.nodes = {{.type = "reshape", .name = "steps", .inputs = {"x"}, .shape = {3, 2}},
             {.type = "last_step", .name = "last", .inputs = {"steps"}},
             {.type = "mean_steps", .name = "mean", .inputs = {"steps"}},
             {.type = "concat", .name = "both", .inputs = {"last", "mean"}},
             {.type = "dense", .name = "out", .inputs = {"both"}, .units = 1}};
  s.output = "out";
  s.task.type = kiln::train::Task::regression;
  BuiltModel m = kiln::train::build_model(s, {});
  kiln::Executable exe(*m.graph, {input_of(*m.graph, "out")});
  const Tensor x = Tensor::from(std::vector<float>{1, 2, 3, 4, 5, 6}, kiln::Shape{1, 6});
  EXPECT_EQ(exe.run({{"x", x}})[0].to_vector<float>(), (std::vector<float>{5, 6, 3, 4}));
}

}  // namespace
