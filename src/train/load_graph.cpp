// kiln::load_graph: the model file decoder of kiln_infer, handing its graph to the caller.
// It lives in kiln (beside checkpoints) because a graph to train is a training concern.
#include "kiln/io/load_graph.hpp"

#include <utility>

#include "io/model_data.hpp"

namespace kiln {

SaveOptions LoadedGraph::save_options() const {
  SaveOptions o;
  o.inputs = inputs;
  o.outputs = outputs;
  o.output_names = output_names;
  o.metadata = metadata;
  o.sections = sections;
  return o;
}

LoadedGraph load_graph(std::span<const std::uint8_t> bytes, const std::string& source) {
  internal::ModelData d = internal::decode_model(bytes, source);
  LoadedGraph out;
  out.graph = std::move(d.graph);
  for (auto id : d.input_ids) out.inputs.push_back(out.graph->value(id));
  for (auto id : d.output_ids) out.outputs.push_back(out.graph->value(id));
  for (const TensorSpec& s : d.outputs) out.output_names.push_back(s.name);
  out.metadata = std::move(d.metadata);
  for (auto& [name, section] : d.sections) out.sections.emplace(name, std::move(section));
  out.format_version = d.format_version;
  out.content_hash = std::move(d.content_hash);
  return out;
}

LoadedGraph load_graph(const std::string& path) {
  return load_graph(internal::read_file(path), path);
}

}  // namespace kiln
