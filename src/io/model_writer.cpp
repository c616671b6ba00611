// serialize_model / save_model: the live part of a graph, renumbered, with its tensors.
#include <chrono>
#include <ctime>
#include <string>
#include <unordered_set>

#include "internal/op_info.hpp"
#include "io/archive.hpp"
#include "io/model_data.hpp"
#include "io/model_format.hpp"
#include "kiln/core/error.hpp"
#include "kiln/io/model_file.hpp"
#include "kiln/version.hpp"

namespace kiln {
namespace internal {

bool is_training_only(Op op) { return op_info(op).has(op_training_only); }

void write_attrs(ArchiveWriter& w, const Attrs& a) {
  w.u32(static_cast<std::uint32_t>(a.axes.size()));
  for (auto v : a.axes) w.i64(v);
  w.i64(a.axis);
  w.i64(a.start);
  w.i64(a.stop);
  w.i64(a.size);
  w.f32(a.alpha);
  w.u64(a.seed);
  w.boolean(a.keepdims);
  w.boolean(a.transpose_a);
  w.boolean(a.transpose_b);
  w.boolean(a.mean);
  w.u8(static_cast<std::uint8_t>(a.dtype));
  for (const Pair* p : {&a.kernel, &a.stride, &a.padding, &a.dilation, &a.output_padding}) {
    w.i64((*p)[0]);
    w.i64((*p)[1]);
  }
  w.i64(a.groups);
  w.boolean(a.include_pad);
  w.f32(a.eps);
  w.f32(a.momentum);
  w.u8(static_cast<std::uint8_t>(a.post_op));
}

}  // namespace internal

namespace {

std::string utc_now_iso8601() {
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

[[noreturn]] void value_error(const std::string& what) {
  std::string msg = "save_model: ";
  msg += what;
  throw ValueError(msg);
}

void write_signature(internal::ArchiveWriter& w, const std::string& name, std::int32_t id,
                     const Node& n) {
  w.string(name);
  w.i32(id);
  w.dims(n.shape.dims());
  w.u8(static_cast<std::uint8_t>(n.dtype));
}

}  // namespace

std::vector<std::uint8_t> serialize_model(const Graph& graph, const SaveOptions& options) {
  const auto count = static_cast<std::int32_t>(graph.size());
  auto check_value = [&](const Value& v, const char* role) {
    if (!v.valid() || &v.graph() != &graph || v.id() < 0 || v.id() >= count)
      value_error(std::string(role) + " is empty or belongs to another graph");
  };
  if (options.outputs.empty()) value_error("a model needs at least one output");
  if (!options.output_names.empty() && options.output_names.size() != options.outputs.size())
    value_error("output_names has " + std::to_string(options.output_names.size()) + " names for " +
                std::to_string(options.outputs.size()) + " outputs");

  // Live nodes: what the outputs need, plus the signature inputs.
  std::vector<char> live(graph.size(), 0);
  std::vector<char> is_signature_input(graph.size(), 0);
  for (const Value& v : options.inputs) {
    check_value(v, "a model input");
    const Node& n = graph.node(v.id());
    if (n.op != Op::input) value_error("model input '" + n.name + "' is not a graph input");
    if (is_signature_input[static_cast<std::size_t>(v.id())])
      value_error("model input '" + n.name + "' is listed twice");
    is_signature_input[static_cast<std::size_t>(v.id())] = 1;
    live[static_cast<std::size_t>(v.id())] = 1;
  }
  for (const Value& v : options.outputs) {
    check_value(v, "a model output");
    live[static_cast<std::size_t>(v.id())] = 1;
  }
  for (std::int32_t i = count - 1; i >= 0; --i) {
    if (!live[static_cast<std::size_t>(i)]) continue;
    const Node& n = graph.node(i);
    if (internal::is_training_only(n.op))
      value_error("node '" + n.name + "' uses the training-only op '" + std::string(op_name(n.op)) +
                  "'");
    if (n.op == Op::input && !is_signature_input[static_cast<std::size_t>(i)])
      value_error("the outputs need graph input '" + n.name + "', which is not a model input");
    for (auto in : n.inputs) live[static_cast<std::size_t>(in)] = 1;
  }
  std::vector<std::int32_t> new_id(graph.size(), -1);
  std::int32_t next = 0;
  for (std::int32_t i = 0; i < count; ++i)
    if (live[static_cast<std::size_t>(i)]) new_id[static_cast<std::size_t>(i)] = next++;

  internal::ArchiveWriter w;
  w.u32(static_cast<std::uint32_t>(next));
  for (std::int32_t i = 0; i < count; ++i) {
    if (!live[static_cast<std::size_t>(i)]) continue;
    const Node& n = graph.node(i);
    w.u16(static_cast<std::uint16_t>(n.op));
    w.string(n.name);
    w.u32(static_cast<std::uint32_t>(n.inputs.size()));
    for (auto in : n.inputs) w.i32(new_id[static_cast<std::size_t>(in)]);
    internal::write_attrs(w, n.attrs);
    w.u8(static_cast<std::uint8_t>(n.dtype));
    w.dims(n.shape.dims());
    w.boolean(n.trainable);
  }

  w.u32(static_cast<std::uint32_t>(options.inputs.size()));
  for (const Value& v : options.inputs)
    write_signature(w, v.name(), new_id[static_cast<std::size_t>(v.id())], v.node());
  w.u32(static_cast<std::uint32_t>(options.outputs.size()));
  std::unordered_set<std::string> output_names;
  for (std::size_t k = 0; k < options.outputs.size(); ++k) {
    const Value& v = options.outputs[k];
    const std::string& name = options.output_names.empty() ? v.name() : options.output_names[k];
    if (name.empty()) value_error("output " + std::to_string(k) + " has an empty name");
    if (!output_names.insert(name).second) value_error("output name '" + name + "' is used twice");
    write_signature(w, name, new_id[static_cast<std::size_t>(v.id())], v.node());
  }

  const ModelMetadata& m = options.metadata;
  w.string(m.name);
  w.string(m.version);
  w.string(m.description);
  w.u32(static_cast<std::uint32_t>(m.labels.size()));
  for (const auto& l : m.labels) w.string(l);
  w.u32(static_cast<std::uint32_t>(m.preprocessing.size()));
  for (const auto& p : m.preprocessing) {
    w.string(p.input);
    w.u32(static_cast<std::uint32_t>(p.mean.size()));
    for (float f : p.mean) w.f32(f);
    w.u32(static_cast<std::uint32_t>(p.stddev.size()));
    for (float f : p.stddev) w.f32(f);
  }
  w.u32(static_cast<std::uint32_t>(m.metrics.size()));
  for (const auto& [k, v] : m.metrics) {
    w.string(k);
    w.f64(v);
  }
  w.u32(static_cast<std::uint32_t>(m.extra.size()));
  for (const auto& [k, v] : m.extra) {
    w.string(k);
    w.string(v);
  }
  w.string(utc_now_iso8601());
  w.string(version_string);

  std::uint32_t tensors = 0;
  for (std::int32_t i = 0; i < count; ++i) {
    const Op op = graph.node(i).op;
    if (live[static_cast<std::size_t>(i)] && (op == Op::parameter || op == Op::constant)) ++tensors;
  }
  w.u32(tensors);
  for (std::int32_t i = 0; i < count; ++i) {
    const Node& n = graph.node(i);
    if (live[static_cast<std::size_t>(i)] && (n.op == Op::parameter || n.op == Op::constant))
      w.tensor(n.name, n.value);
  }
  const auto payload = w.finish();
  return internal::wrap_envelope(internal::model_magic, model_format_version, payload);
}

void save_model(const std::string& path, const Graph& graph, const SaveOptions& options) {
  std::vector<std::uint8_t> bytes;
  try {
    bytes = serialize_model(graph, options);
  } catch (const ValueError& e) {
    std::string msg = path;
    msg += ": ";
    msg += e.what();
    throw ValueError(msg);
  }
  internal::write_file_atomically(path, bytes);
}

}  // namespace kiln
