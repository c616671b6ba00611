// decode_model: validates a model file completely, then rebuilds its Graph with the normal
// builders (so the shape rules check every node). Every allocation is bounded by the bytes
// left in the payload.
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

constexpr std::int64_t max_attr = 0x7fffffff;
constexpr std::int64_t max_pair_attr = std::int64_t{1} << 30;

std::int64_t bounded(ArchiveReader& r, const std::string& node, const char* attr,
                     std::int64_t limit) {
  const std::int64_t v = r.i64(attr);
  if (v < -limit || v > limit)
    r.fail("node '" + node + "': attribute " + attr + " = " + std::to_string(v) +
           " is out of range");
  return v;
}

float finite(ArchiveReader& r, const std::string& node, const char* attr) {
  const float v = r.f32(attr);
  if (!std::isfinite(v)) r.fail("node '" + node + "': attribute " + attr + " is not finite");
  return v;
}

struct NodeRecord {
  Op op = Op::input;
  std::string name;
  std::vector<std::int32_t> inputs;
  Attrs attrs;
  DType dtype = DType::f32;
  Shape shape;
  bool trainable = false;
};

TensorSpec read_signature(ArchiveReader& r, std::int32_t& id, const char* role,
                          std::int32_t node_count) {
  TensorSpec s;
  s.name = r.name(role);
  id = r.i32(role);
  if (id < 0 || id >= node_count)
    r.fail(std::string(role) + " '" + s.name + "' refers to node " + std::to_string(id) +
           ", but the graph has " + std::to_string(node_count) + " nodes");
  s.shape = Shape(r.dims(std::string(role) + " '" + s.name + "'", true));
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

ModelMetadata read_metadata(ArchiveReader& r) {
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
  m.created = r.string("creation time");
  m.library_version = r.string("library version");
  return m;
}

}  // namespace

Attrs read_attrs(ArchiveReader& r, const std::string& node) {
  Attrs a;
  const std::size_t n_axes = r.count("attribute axes", 8);
  if (n_axes > max_rank) r.fail("node '" + node + "': " + std::to_string(n_axes) + " axes");
  a.axes.resize(n_axes);
  std::int64_t product = 1;
  for (auto& v : a.axes) {
    v = bounded(r, node, "axes", max_attr);
    const std::int64_t f = v <= 0 ? 1 : v;
    if (product > std::numeric_limits<std::int64_t>::max() / 8 / f)
      r.fail("node '" + node + "': the product of attribute axes overflows");
    product *= f;
  }
  a.axis = bounded(r, node, "axis", max_attr);
  a.start = bounded(r, node, "start", max_attr);
  a.stop = bounded(r, node, "stop", max_attr);
  a.size = bounded(r, node, "size", max_attr);
  a.alpha = finite(r, node, "alpha");
  a.seed = r.u64("attribute seed");
  a.keepdims = r.boolean("attribute keepdims");
  a.transpose_a = r.boolean("attribute transpose_a");
  a.transpose_b = r.boolean("attribute transpose_b");
  a.mean = r.boolean("attribute mean");
  a.dtype = r.dtype("node '" + node + "': attribute dtype");
  for (Pair* p : {&a.kernel, &a.stride, &a.padding, &a.dilation, &a.output_padding}) {
    (*p)[0] = bounded(r, node, "kernel/stride/padding/dilation", max_pair_attr);
    (*p)[1] = bounded(r, node, "kernel/stride/padding/dilation", max_pair_attr);
  }
  a.groups = bounded(r, node, "groups", max_pair_attr);
  a.include_pad = r.boolean("attribute include_pad");
  a.eps = finite(r, node, "eps");
  a.momentum = finite(r, node, "momentum");
  const std::uint8_t post = r.u8("attribute post_op");
  if (post > static_cast<std::uint8_t>(PostOp::relu))
    r.fail("node '" + node + "': unknown post-op " + std::to_string(post));
  a.post_op = static_cast<PostOp>(post);
  return a;
}

ModelData decode_model(std::span<const std::uint8_t> bytes, const std::string& source) {
  const Envelope env = open_envelope(bytes, model_magic, model_format_version, source, "model");
  ArchiveReader r(env.payload, source);

  // 1. Node records (no graph yet: parameters need the tensors at the end).
  const std::size_t node_count = r.count("node count", min_node_bytes);
  if (node_count == 0) r.fail("the graph has no nodes");
  std::vector<NodeRecord> records;
  records.reserve(node_count);
  std::unordered_map<std::string, std::int32_t> names;
  for (std::size_t i = 0; i < node_count; ++i) {
    NodeRecord n;
    const std::string where = "node " + std::to_string(i);
    const std::uint16_t op = r.u16("op id");
    if (op >= op_count)
      r.fail(where + ": op id " + std::to_string(op) + " is not a known op (there are " +
             std::to_string(op_count) + ")");
    n.op = static_cast<Op>(op);
    if (is_training_only(n.op))
      r.fail(where + ": training-only op '" + std::string(op_name(n.op)) + "' in a model file");
    n.name = r.name("node name");
    if (!names.emplace(n.name, static_cast<std::int32_t>(i)).second)
      r.fail(where + ": duplicate node name '" + n.name + "'");
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
    n.attrs = read_attrs(r, n.name);
    n.dtype = r.dtype("node '" + n.name + "'");
    n.shape = Shape(r.dims("node '" + n.name + "' shape", true, size_of(n.dtype)));
    n.trainable = r.boolean("node trainable flag");
    if (n.trainable && n.op != Op::parameter)
      r.fail("node '" + n.name + "': only parameters can be trainable");
    records.push_back(std::move(n));
  }
  const auto count32 = static_cast<std::int32_t>(node_count);

  // 2. Signatures.
  ModelData data;
  data.format_version = env.version;
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
    TensorSpec s = read_signature(r, id, "model output", count32);
    if (!seen.insert(s.name).second) r.fail("model output '" + s.name + "' is listed twice");
    data.output_ids.push_back(id);
    data.outputs.push_back(std::move(s));
  }

  // 3. Metadata.
  data.metadata = read_metadata(r);

  // 4. Tensors: every parameter and constant exactly once, nothing else.
  const std::size_t n_tensors = r.count("tensor count", min_tensor_bytes);
  std::vector<Tensor> values(node_count);
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
  r.expect_end();
  for (std::size_t i = 0; i < node_count; ++i) {
    const Op op = records[i].op;
    if ((op == Op::parameter || op == Op::constant) && !values[i].defined())
      r.fail("missing tensor for " + std::string(op_name(op)) + " '" + records[i].name + "'");
  }

  // 5. Rebuild the graph with the builders: the shape rules check every node.
  data.graph = std::make_unique<Graph>();
  Graph& g = *data.graph;
  for (std::size_t i = 0; i < node_count; ++i) {
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
  return data;
}

}  // namespace kiln::internal
