// The report's per-layer statistics for sequence models: a spec with an LSTM, learned
// positional encodings, multi-head attention, a transformer encoder block and a mean over
// the steps, trained on the digits read row by row with a RunRecorder. layers.jsonl must
// hold each layer's activation under its own name with the layer's output shape, and each
// parameter's gradient under its PyTorch name and its layer; graph.json and nn::summarize
// must give the layers their types (LSTM, MultiHeadAttention, TransformerEncoder, ...).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kiln/nn/summary.hpp"
#include "kiln/report/spec_run.hpp"
#include "kiln/train/spec.hpp"
#include "trainer_test_util.hpp"

namespace {

using json = nlohmann::json;

const std::string digits_csv = std::string(KILN_DATASETS_DIR) + "/digits.csv";

const char* sequence_spec = R"({
  "name": "digits-sequence-layers",
  "inputs": [{"name": "pixels", "shape": [64]}],
  "layers": [{"type": "reshape", "shape": [8, 8]},
             {"type": "lstm", "hidden": 8, "name": "rnn"},
             {"type": "positional_encoding", "learned": true, "name": "pos"},
             {"type": "attention", "heads": 2, "name": "att"},
             {"type": "transformer_encoder", "heads": 2, "feedforward": 16,
              "activation": "gelu", "name": "enc"},
             {"type": "gru", "hidden": 6, "return": "last", "name": "gru"},
             {"type": "dense", "units": "auto", "name": "out"}],
  "task": {"type": "classification", "target": "label"},
  "preprocessing": {"scaling": "minmax"},
  "training": {"optimizer": {"name": "adam", "lr": 0.01}, "epochs": 1, "batch_size": 64,
               "seed": 5, "test_split": 0.2}
})";

std::vector<json> jsonl(const std::string& path) {
  std::ifstream in(path);
  std::vector<json> out;
  for (std::string l; std::getline(in, l);) out.push_back(json::parse(l));
  return out;
}

json read_json(const std::string& path) {
  std::ifstream in(path);
  return json::parse(in);
}

TEST(ReportSequence, LayerStatisticsNameTheSequenceLayers) {
  const std::string dir = kiln_test::fresh_dir("report_sequence") + "/run";
  const auto spec = kiln::train::ModelSpec::from_json(sequence_spec, "sequence.json");
  const kiln::report::RecordedRun run =
      kiln::report::train_and_record(spec, digits_csv, {.progress = kiln::train::Progress::none},
                                     {.record = {.dir = dir, .sample_every = 5}, .explain = false});
  EXPECT_TRUE(std::isfinite(run.result.test.at("test_accuracy")));

  const std::vector<json> lines = jsonl(dir + "/layers.jsonl");
  ASSERT_FALSE(lines.empty());
  for (const json& line : lines) {
    std::map<std::string, const json*> by;
    for (const json& e : line["layers"])
      by[e["kind"].get<std::string>() + ":" + e["tensor"].get<std::string>()] = &e;
    // Activations: each layer's output under its name ([batch, T, F] for the sequence
    // layers, [batch, 12] for the GRU's last state).
    const std::map<std::string, std::vector<std::int64_t>> activations = {
        {"reshape_0", {8, 8}}, {"rnn", {8, 8}},           {"pos", {8, 8}},
        {"att", {8, 8}},       {"enc/enc.norm2", {8, 8}}, {"gru", {6}}};
    for (const auto& [layer, dims] : activations) {
      ASSERT_TRUE(by.count("activation:" + layer)) << layer << " in " << line.dump();
      const json& e = *by.at("activation:" + layer);
      EXPECT_EQ(e["layer"], layer);
      const auto shape = e["shape"].get<std::vector<std::int64_t>>();
      ASSERT_EQ(shape.size(), dims.size() + 1) << layer;
      EXPECT_EQ(std::vector<std::int64_t>(shape.begin() + 1, shape.end()), dims) << layer;
      EXPECT_EQ(e["nonfinite"], 0) << layer;
      EXPECT_GT(e["norm"].get<double>(), 0.0) << layer;
    }
    // Gradients: PyTorch's parameter names, in their layer; all finite, none all zero.
    const std::map<std::string, std::string> gradients = {
        {"rnn.weight_ih_l0", "rnn"},
        {"rnn.weight_hh_l0", "rnn"},
        {"rnn.bias_hh_l0", "rnn"},
        {"pos.weight", "pos"},
        {"att.in_proj_weight", "att"},
        {"att.out_proj.weight", "att"},
        {"enc.self_attn.in_proj_weight", "enc/enc.self_attn"},
        {"enc.linear1.weight", "enc"},
        {"enc.linear2.bias", "enc"},
        {"enc.norm1.weight", "enc/enc.norm1"},
        {"gru.weight_hh_l0", "gru"},
        {"gru.bias_ih_l0", "gru"}};
    for (const auto& [param, layer] : gradients) {
      ASSERT_TRUE(by.count("gradient:" + param)) << param << " in " << line.dump();
      const json& e = *by.at("gradient:" + param);
      EXPECT_EQ(e["layer"], layer) << param;
      EXPECT_EQ(e["nonfinite"], 0) << param;
      EXPECT_GT(e["norm"].get<double>(), 0.0) << param;
      EXPECT_TRUE(by.count("weight:" + param)) << param;
    }
  }

  // graph.json: the layers' types.
  const json g = read_json(dir + "/graph.json");
  std::map<std::string, std::string> types;
  for (const json& l : g["layers"]) types[l["name"]] = l["type"];
  const std::map<std::string, std::string> want = {{"pixels", "Input"},
                                                   {"reshape_0", "Reshape"},
                                                   {"rnn", "LSTM"},
                                                   {"pos", "PositionalEncoding"},
                                                   {"att", "MultiHeadAttention"},
                                                   {"enc", "TransformerEncoder"},
                                                   {"enc/enc.self_attn", "MultiHeadAttention"},
                                                   {"enc/enc.norm1", "LayerNorm"},
                                                   {"gru", "GRU"},
                                                   {"out", "Dense"}};
  for (const auto& [name, type] : want) EXPECT_EQ(types[name], type) << name << ": " << g.dump();
}

TEST(ReportSequence, SummaryTypesOfTheSequenceLayers) {
  kiln::train::ModelSpec s;
  s.inputs = {{.name = "x", .shape = {12}}};
  s.layers = {{.type = "reshape", .shape = {4, 3}},
              {.type = "positional_encoding"},
              {.type = "gru", .hidden = 3, .bidirectional = true},
              {.type = "last_step"},
              {.type = "dense", .units = 2}};
  s.task.type = kiln::train::Task::classification;
  const kiln::train::BuiltModel m = kiln::train::build_model(s, {.classes = 2});
  const kiln::nn::ModelSummary summary = kiln::nn::summarize(*m.graph, {m.predictions});
  std::vector<std::string> rows;
  for (const auto& l : summary.layers)
    rows.push_back(l.name + " " + l.type + " " + l.output_shape.str());
  EXPECT_EQ(rows,
            (std::vector<std::string>{"x Input [batch, 12]", "reshape_0 Reshape [batch, 4, 3]",
                                      "positional_encoding_0 PositionalEncoding [batch, 4, 3]",
                                      "gru_0 GRU [batch, 4, 6]", "last_step_0 LastStep [batch, 6]",
                                      "dense_0 Dense [batch, 2]"}));
  kiln::train::ModelSpec mean = s;
  mean.layers[3] = {.type = "mean_steps"};
  const kiln::train::BuiltModel mm = kiln::train::build_model(mean, {.classes = 2});
  const auto rows2 = kiln::nn::summarize(*mm.graph, {mm.predictions}).layers;
  ASSERT_EQ(rows2.size(), 6u);
  EXPECT_EQ(rows2[4].name, "mean_steps_0");
  EXPECT_EQ(rows2[4].type, "MeanSteps");
}

}  // namespace
