// kiln::load_graph: a saved model reopened as a Graph (part of Kiln::kiln, not kiln_infer),
// for fine-tuning, export and inspection. Parameters come back with their values and
// trainable flags (buffers such as batch-norm running statistics as non-trainable
// parameters), nodes with their scopes, and the file's signatures, metadata and user
// sections, so that a fine-tuned graph saves again with the same interface:
//
//   kiln::LoadedGraph m = kiln::load_graph("digits.kiln");
//   kiln::Graph& g = *m.graph;
//   auto labels = g.input("label", {kiln::batch}, kiln::i32);
//   kiln::TrainStep step(kiln::softmax_cross_entropy(g.find("fc2"), labels));
//   ... train ...
//   kiln::save_model("digits-tuned.kiln", g, m.save_options());
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "kiln/export.hpp"
#include "kiln/graph/graph.hpp"
#include "kiln/io/model_file.hpp"

namespace kiln {

struct KILN_API LoadedGraph {
  /// The graph (behind a pointer so that Values stay valid when a LoadedGraph moves).
  std::unique_ptr<Graph> graph;
  /// The model's inputs and outputs as values of `graph`, in signature order.
  std::vector<Value> inputs;
  std::vector<Value> outputs;
  /// The output signature names (they may differ from the node names).
  std::vector<std::string> output_names;
  ModelMetadata metadata;
  /// User sections (SaveOptions::sections).
  std::map<std::string, std::vector<std::uint8_t>> sections;
  std::uint32_t format_version = 0;
  /// The file's content hash ("" for a version 1 file).
  std::string content_hash;

  /// Options that save `graph` with this model's signatures, metadata and sections.
  SaveOptions save_options() const;
};

/// Loads a model file as a graph; throws IoError / FormatError naming the file.
KILN_API LoadedGraph load_graph(const std::string& path);
/// The same from bytes in memory; `source` names them in error messages.
KILN_API LoadedGraph load_graph(std::span<const std::uint8_t> bytes,
                                const std::string& source = "<memory>");

}  // namespace kiln
