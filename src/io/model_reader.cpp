// decode_model: validates a model file (format v1 or v2) completely, then rebuilds its Graph
// with the normal builders (so the shape rules check every node). Every allocation is
// bounded by the bytes left in the payload.
#include <array>
#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "internal/op_info.hpp"
#include "io/archive.hpp"
#include "io/model_data.hpp"
#include "io/model_format.hpp"
#include "kiln/core/error.hpp"

namespace kiln::internal {
namespace {

struct NodeRecord {
  Op op = Op::input;
  std::string name;
  std::vector<std::int32_t> inputs;
  Attrs attrs;
  DType dtype = DType::f32;
  Shape shape;
  bool trainable = false;
  std::string scope;  // v2
};

TensorSpec read_signature(ArchiveReader& r, std::int32_t& id, const char* role,
                          std::int32_t node_count, bool batch_anywhere = false) {
  TensorSpec s;
  s.name = r.name(role);
  id = r.i32(role);
  if (id < 0 || id >= node_count)
    r.fail(std::string(role) + " '" + s.name + "' refers to node " + std::to_string(id) +
           ", but the graph has " + std::to_string(node_count) + " nodes");
  s.shape = Shape(r.dims(std::string(role) + " '" + s.name + "'", true, 1, batch_anywhere));
  s.dtype = r.dtype(std::string(role) + " '" + s.name + "'");
  return s;
}

std::vector<std::string> read_strings(ArchiveReader& r, const char* what) {
  const std::size_t n = r.count(what, 8);
  std::vector<std::string> out;
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i) out.push_back(r.string(what));
  return out;
}

std::vector<float> read_floats(ArchiveReader& r, const char* what) {
  const std::size_t n = r.count(what, 4);
  std::vector<float> out(n);
  for (auto& f : out) f = r.f32(what);
  return out;
}

/// Metadata; v1 also holds the provenance (creation time, library version) at its end.
void read_provenance(ArchiveReader& r, ModelMetadata& m) {
  m.created = r.string("creation time");
  m.library_version = r.string("library version");
}

ModelMetadata read_metadata(ArchiveReader& r, bool with_provenance) {
  ModelMetadata m;
  m.name = r.string("metadata name");
  m.version = r.string("metadata version");
  m.description = r.string("metadata description");
  m.labels = read_strings(r, "label names");
  const std::size_t np = r.count("preprocessing entries", 8 + 4 + 4);
  for (std::size_t i = 0; i < np; ++i) {
    Normalization n;
    n.input = r.name("preprocessing input");
    n.mean = read_floats(r, "preprocessing mean");
    n.stddev = read_floats(r, "preprocessing stddev");
    if (n.mean.size() != n.stddev.size())
      r.fail("preprocessing for '" + n.input + "': mean and stddev differ in length");
    for (std::size_t k = 0; k < n.mean.size(); ++k)
      if (!std::isfinite(n.mean[k]) || !std::isfinite(n.stddev[k]) || n.stddev[k] == 0.0f)
        r.fail("preprocessing for '" + n.input + "': feature " + std::to_string(k) +
               " has a non-finite mean or stddev, or a zero stddev");
    m.preprocessing.push_back(std::move(n));
  }
  const std::size_t nm = r.count("metrics", 8 + 8);
  for (std::size_t i = 0; i < nm; ++i) {
    std::string key = r.name("metric name");
    const double v = r.f64("metric value");
    m.metrics.emplace_back(std::move(key), v);
  }
  const std::size_t ne = r.count("extra metadata", 8 + 8);
  for (std::size_t i = 0; i < ne; ++i) {
    std::string key = r.name("extra metadata key");
    std::string value = r.string("extra metadata value");
    m.extra.emplace_back(std::move(key), std::move(value));
  }
  if (with_provenance) read_provenance(r, m);
  return m;
}

/// Format v1 stored ops by number: the position of the op in enum Op of Kiln 0.1. This
/// frozen table keeps those files readable whatever becomes of the enum.
// clang-format off
constexpr std::array<const char*, 46> v1_op_names = {
    "input", "parameter", "constant", "matmul", "add", "sub", "mul", "div", "neg", "exp",
    "log", "sqrt", "relu", "leaky_relu", "sigmoid", "tanh", "step", "equal", "softmax",
    "log_softmax", "sum", "mean", "max", "expand", "reshape", "transpose", "concat", "slice",
    "pad", "gather", "scatter_add_rows", "one_hot", "dropout_mask", "softmax_cross_entropy",
    "mse", "bce_with_logits", "conv2d", "conv_transpose2d", "conv2d_backward_weights",
    "max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward", "batch_norm",
    "batch_norm_backward", "upsample_nearest2d"};
// clang-format on

/// Node records; `names` maps each name to its index.
std::vector<NodeRecord> read_nodes(ArchiveReader& r, std::uint32_t version,
                                   std::unordered_map<std::string, std::int32_t>& names) {
  const std::size_t node_count =
      r.count("node count", version == 1 ? min_node_bytes : min_node_bytes_v2);
  if (node_count == 0) r.fail("the graph has no nodes");
  std::vector<NodeRecord> records;
  records.reserve(node_count);
  for (std::size_t i = 0; i < node_count; ++i) {
    NodeRecord n;
    const std::string where = "node " + std::to_string(i);
    if (version == 1) {
      const std::uint16_t op = r.u16("op id");
      if (op >= v1_op_names.size() || !op_from_name(v1_op_names[op], n.op))
        r.fail(where + ": op id " + std::to_string(op) + " is not a known op (there are " +
               std::to_string(v1_op_names.size()) + ")");
    } else {
      const std::string op = r.name("op name");
      if (!op_from_name(op, n.op))
        r.fail(where + ": unknown op '" + op + "' (written by a newer Kiln?)");
    }
    if (is_training_only(n.op))
      r.fail(where + ": training-only op '" + std::string(op_name(n.op)) + "' in a model file");
    n.name = r.name("node name");
    if (!names.emplace(n.name, static_cast<std::int32_t>(i)).second)
      r.fail(where + ": duplicate node name '" + n.name + "'");
    if (version >= 2) n.scope = r.string("node scope");
    const std::size_t n_inputs = r.count("node input count", 4);
    n.inputs.resize(n_inputs);
    for (auto& in : n.inputs) {
      in = r.i32("node input");
      if (in < 0 || static_cast<std::size_t>(in) >= i)
        r.fail("node '" + n.name + "': input " + std::to_string(in) +
               " is not an earlier node (forward reference or out of range)");
    }
    const bool leaf = n.op == Op::input || n.op == Op::parameter || n.op == Op::constant;
    if (leaf && !n.inputs.empty()) r.fail("node '" + n.name + "': a leaf node has inputs");
    n.attrs = version == 1 ? read_attrs(r, n.name) : read_attrs_v2(r, n.name);
    n.dtype = r.dtype("node '" + n.name + "'");
    n.shape = Shape(r.dims("node '" + n.name + "' shape", true, size_of(n.dtype), !leaf));
    n.trainable = r.boolean("node trainable flag");
    if (n.trainable && n.op != Op::parameter)
      r.fail("node '" + n.name + "': only parameters can be trainable");
    records.push_back(std::move(n));
  }
  return records;
}

void read_signatures(ArchiveReader& r, const std::vector<NodeRecord>& records, ModelData& data) {
  const std::size_t node_count = records.size();
  const auto count32 = static_cast<std::int32_t>(node_count);
  const std::size_t n_in = r.count("model input count", min_signature_bytes);
  std::unordered_set<std::string> seen;
  std::vector<char> is_input(node_count, 0);
  for (std::size_t i = 0; i < n_in; ++i) {
    std::int32_t id = 0;
    TensorSpec s = read_signature(r, id, "model input", count32);
    const NodeRecord& n = records[static_cast<std::size_t>(id)];
    if (n.op != Op::input)
      r.fail("model input '" + s.name + "' refers to node '" + n.name + "', which is a '" +
             std::string(op_name(n.op)) + "' node, not an input");
    if (n.name != s.name) r.fail("model input '" + s.name + "' refers to node '" + n.name + "'");
    if (!seen.insert(s.name).second) r.fail("model input '" + s.name + "' is listed twice");
    if (s.shape != n.shape || s.dtype != n.dtype)
      r.fail("model input '" + s.name + "': signature does not match its node");
    is_input[static_cast<std::size_t>(id)] = 1;
    data.input_ids.push_back(id);
    data.inputs.push_back(std::move(s));
  }
  for (std::size_t i = 0; i < node_count; ++i)
    if (records[i].op == Op::input && !is_input[i])
      r.fail("graph input '" + records[i].name + "' is missing from the model inputs");
  const std::size_t n_out = r.count("model output count", min_signature_bytes);
  if (n_out == 0) r.fail("the model has no outputs");
  seen.clear();
  for (std::size_t i = 0; i < n_out; ++i) {
    std::int32_t id = 0;
    TensorSpec s = read_signature(r, id, "model output", count32, /*batch_anywhere=*/true);
    if (!seen.insert(s.name).second) r.fail("model output '" + s.name + "' is listed twice");
    data.output_ids.push_back(id);
    data.outputs.push_back(std::move(s));
  }
}

/// Tensors: every parameter and constant exactly once, nothing else. Indexed by node.
std::vector<Tensor> read_tensors(ArchiveReader& r, const std::vector<NodeRecord>& records,
                                 const std::unordered_map<std::string, std::int32_t>& names) {
  const std::size_t n_tensors = r.count("tensor count", min_tensor_bytes);
  std::vector<Tensor> values(records.size());
  for (std::size_t i = 0; i < n_tensors; ++i) {
    auto [name, t] = r.tensor("tensor");
    auto it = names.find(name);
    if (it == names.end()) r.fail("tensor '" + name + "' belongs to no node");
    const NodeRecord& n = records[static_cast<std::size_t>(it->second)];
    if (n.op != Op::parameter && n.op != Op::constant)
      r.fail("tensor '" + name + "' belongs to a '" + std::string(op_name(n.op)) + "' node");
    Tensor& slot = values[static_cast<std::size_t>(it->second)];
    if (slot.defined()) r.fail("duplicate tensor '" + name + "'");
    if (t.shape() != n.shape || t.dtype() != n.dtype)
      r.fail("tensor '" + name + "' is " + std::string(to_string(t.dtype())) + " " +
             t.shape().str() + " but its node says " + std::string(to_string(n.dtype)) + " " +
             n.shape.str());
    slot = std::move(t);
  }
  for (std::size_t i = 0; i < records.size(); ++i) {
    const Op op = records[i].op;
    if ((op == Op::parameter || op == Op::constant) && !values[i].defined())
      r.fail("missing tensor for " + std::string(op_name(op)) + " '" + records[i].name + "'");
  }
  return values;
}

/// Rebuilds the graph with the builders (the shape rules check every node); `r` reports.
void rebuild(ArchiveReader& r, std::vector<NodeRecord>& records, std::vector<Tensor>& values,
             ModelData& data) {
  data.graph = std::make_unique<Graph>();
  Graph& g = *data.graph;
  for (std::size_t i = 0; i < records.size(); ++i) {
    NodeRecord& n = records[i];
    try {
      Value v;
      if (n.op == Op::input) {
        v = g.input(n.name, n.shape, n.dtype);
      } else if (n.op == Op::parameter) {
        v = g.parameter(n.name, values[i], n.trainable);
      } else if (n.op == Op::constant) {
        v = g.constant(values[i], n.name);
      } else {
        std::vector<Value> inputs;
        inputs.reserve(n.inputs.size());
        for (auto in : n.inputs) inputs.push_back(g.value(in));
        v = g.add(n.op, inputs, n.attrs, n.name);
      }
      if (v.shape() != n.shape || v.dtype() != n.dtype)
        r.fail("node '" + n.name + "': stored shape " + n.shape.str() + " " +
               std::string(to_string(n.dtype)) + " differs from the inferred " + v.shape().str() +
               " " + std::string(to_string(v.dtype())));
      if (!n.scope.empty()) g.assign_scope(v, std::move(n.scope));
      values[i] = Tensor();
    } catch (const FormatError&) {
      throw;
    } catch (const Error& e) {
      r.fail("node '" + n.name + "' (" + std::string(op_name(n.op)) + "): " + e.what());
    }
  }
  for (std::size_t k = 0; k < data.outputs.size(); ++k) {
    const Node& n = g.node(data.output_ids[k]);
    if (n.shape != data.outputs[k].shape || n.dtype != data.outputs[k].dtype)
      r.fail("model output '" + data.outputs[k].name + "': signature does not match node '" +
             n.name + "'");
  }
}

ModelData decode_v1(std::span<const std::uint8_t> payload, const std::string& source) {
  ArchiveReader r(payload, source);
  std::unordered_map<std::string, std::int32_t> names;
  std::vector<NodeRecord> records = read_nodes(r, 1, names);
  ModelData data;
  data.format_version = 1;
  read_signatures(r, records, data);
  data.metadata = read_metadata(r, true);
  std::vector<Tensor> values = read_tensors(r, records, names);
  r.expect_end();
  rebuild(r, records, values, data);
  return data;
}

/// A reader over one core section; messages read "<source>: section '<name>': ...".
struct SectionReader {
  SectionReader(const SectionView& s, const std::string& source)
      : r(s.bytes, source + ": section '" + s.name + "'") {}
  ArchiveReader r;
};

ModelData decode_v2(std::span<const std::uint8_t> payload, const std::string& source) {
  const std::vector<SectionView> sections = read_sections(payload, source);
  const SectionView* graph = nullptr;
  const SectionView* signatures = nullptr;
  const SectionView* metadata = nullptr;
  const SectionView* weights = nullptr;
  const SectionView* provenance = nullptr;
  ModelData data;
  data.format_version = 2;
  for (const SectionView& s : sections) {
    const SectionView** core = s.name == section_graph        ? &graph
                               : s.name == section_signatures ? &signatures
                               : s.name == section_metadata   ? &metadata
                               : s.name == section_weights    ? &weights
                               : s.name == section_provenance ? &provenance
                                                              : nullptr;
    if (core) {
      *core = &s;
    } else if (s.flags & section_required) {
      format_error(source, "section '" + s.name +
                               "' is marked required, but this reader does not know it "
                               "(written by a newer Kiln?)");
    } else if (!is_reserved_section_name(s.name) || is_passthrough_section_name(s.name)) {
      data.sections.emplace_back(s.name, std::vector<std::uint8_t>(s.bytes.begin(), s.bytes.end()));
    }  // an optional kiln.* section from a newer Kiln: skipped
  }
  for (const auto& [ptr, name] :
       {std::pair{graph, section_graph}, std::pair{signatures, section_signatures},
        std::pair{metadata, section_metadata}, std::pair{weights, section_weights}})
    if (!ptr) format_error(source, std::string("missing section '") + name + "'");

  SectionReader rg(*graph, source);
  std::unordered_map<std::string, std::int32_t> names;
  std::vector<NodeRecord> records = read_nodes(rg.r, 2, names);
  rg.r.expect_end();
  SectionReader rs(*signatures, source);
  read_signatures(rs.r, records, data);
  rs.r.expect_end();
  SectionReader rm(*metadata, source);
  data.metadata = read_metadata(rm.r, false);
  rm.r.expect_end();
  if (provenance) {
    SectionReader rp(*provenance, source);
    read_provenance(rp.r, data.metadata);
    rp.r.expect_end();
  }
  SectionReader rw(*weights, source);
  std::vector<Tensor> values = read_tensors(rw.r, records, names);
  rw.r.expect_end();
  rebuild(rg.r, records, values, data);
  data.content_hash = content_hash_of(sections);
  return data;
}

}  // namespace

ModelData decode_model(std::span<const std::uint8_t> bytes, const std::string& source) {
  const Envelope env = open_envelope(bytes, model_magic, model_format_version, source, "model");
  if (env.version == 1) return decode_v1(env.payload, source);
  return decode_v2(env.payload, source);
}

}  // namespace kiln::internal

namespace kiln {

std::string model_content_hash(std::span<const std::uint8_t> bytes, const std::string& source) {
  const auto env =
      internal::open_envelope(bytes, internal::model_magic, model_format_version, source, "model");
  if (env.version == 1) return "";
  return internal::content_hash_of(internal::read_sections(env.payload, source));
}

std::string model_content_hash(const std::string& path) {
  return model_content_hash(internal::read_file(path), path);
}

}  // namespace kiln
