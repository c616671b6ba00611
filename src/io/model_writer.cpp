// serialize_model / save_model: the live part of a graph, renumbered, with its tensors, as
// the sections of a format v2 file (see io/model_format.hpp).
#include <cmath>
#include <cstdio>
#include <string>
#include <unordered_set>

#include "internal/nonfinite.hpp"
#include "internal/op_info.hpp"
#include "internal/utc_time.hpp"
#include "io/archive.hpp"
#include "io/model_data.hpp"
#include "io/model_format.hpp"
#include "kiln/core/error.hpp"
#include "kiln/io/model_file.hpp"
#include "kiln/version.hpp"

namespace kiln {
namespace internal {

bool is_training_only(Op op) { return op_info(op).has(op_training_only); }

}  // namespace internal

namespace {

[[noreturn]] void value_error(const std::string& what) {
  std::string msg = "save_model: ";
  msg += what;
  throw ValueError(msg);
}

// "YYYY-MM-DDTHH:MM:SSZ" with a valid month, day (1..31), hour, minute and second (0..60).
void check_creation_time(const std::string& t) {
  bool ok = t.size() == 20;
  auto num = [&](std::size_t at, std::size_t len, int lo, int hi) {
    int v = 0;
    for (std::size_t i = at; i < at + len; ++i) {
      if (t[i] < '0' || t[i] > '9') return false;
      v = v * 10 + (t[i] - '0');
    }
    return v >= lo && v <= hi;
  };
  ok = ok && t[4] == '-' && t[7] == '-' && t[10] == 'T' && t[13] == ':' && t[16] == ':' &&
       t[19] == 'Z' && num(0, 4, 0, 9999) && num(5, 2, 1, 12) && num(8, 2, 1, 31) &&
       num(11, 2, 0, 23) && num(14, 2, 0, 59) && num(17, 2, 0, 60);
  if (!ok)
    value_error("creation_time '" + t + "' is not a UTC time of the form YYYY-MM-DDTHH:MM:SSZ");
}

// Parameters and buffers (what training changes) must be finite; constants are the
// model's definition and may hold infinities on purpose (e.g. masks).
void check_finite(const Node& n) {
  double v = 0.0;
  const std::int64_t at = internal::first_nonfinite(n.value, v);
  if (at < 0) return;
  char text[32];
  std::snprintf(text, sizeof text, "%g", std::isnan(v) ? std::fabs(v) : v);
  throw NonFiniteError("save_model: " + std::string(n.trainable ? "parameter" : "buffer") + " '" +
                       n.name + "' holds " + text + " at element " + std::to_string(at) + " of " +
                       n.value.shape().str() + " (SaveOptions::allow_nonfinite saves it anyway)");
}

void write_signature(internal::ArchiveWriter& w, const std::string& name, std::int32_t id,
                     const Node& n) {
  w.string(name);
  w.i32(id);
  w.dims(n.shape.dims());
  w.dtype(n.dtype);
}

void write_metadata(internal::ArchiveWriter& w, const ModelMetadata& m) {
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
}

}  // namespace

std::vector<std::uint8_t> serialize_model(const Graph& graph, const SaveOptions& options) {
  const auto count = static_cast<std::int32_t>(graph.size());
  auto check_value = [&](const Value& v, const char* role) {
    if (!v.valid() || &v.graph() != &graph || v.id() < 0 || v.id() >= count)
      value_error(std::string(role) + " is empty or belongs to another graph");
  };
  if (options.outputs.empty()) value_error("a model needs at least one output");
  if (!options.creation_time.empty()) check_creation_time(options.creation_time);
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

  for (const auto& [name, bytes] : options.sections) {
    if (name.empty()) value_error("a section name is empty");
    if (internal::is_reserved_section_name(name) && !internal::is_passthrough_section_name(name))
      value_error("section name '" + name +
                  "' is reserved for Kiln (the 'kiln.' prefix; of those only 'kiln.spec', "
                  "'kiln.data' and 'kiln.profile' may be given)");
  }

  internal::ArchiveWriter graph_w;
  graph_w.u32(static_cast<std::uint32_t>(next));
  for (std::int32_t i = 0; i < count; ++i) {
    if (!live[static_cast<std::size_t>(i)]) continue;
    const Node& n = graph.node(i);
    graph_w.string(std::string(op_name(n.op)));
    graph_w.string(n.name);
    graph_w.string(n.scope);
    graph_w.u32(static_cast<std::uint32_t>(n.inputs.size()));
    for (auto in : n.inputs) graph_w.i32(new_id[static_cast<std::size_t>(in)]);
    internal::write_attrs_v2(graph_w, n.attrs);
    graph_w.dtype(n.dtype);
    graph_w.dims(n.shape.dims());
    graph_w.boolean(n.trainable);
  }

  internal::ArchiveWriter sig_w;
  sig_w.u32(static_cast<std::uint32_t>(options.inputs.size()));
  for (const Value& v : options.inputs)
    write_signature(sig_w, v.name(), new_id[static_cast<std::size_t>(v.id())], v.node());
  sig_w.u32(static_cast<std::uint32_t>(options.outputs.size()));
  std::unordered_set<std::string> output_names;
  for (std::size_t k = 0; k < options.outputs.size(); ++k) {
    const Value& v = options.outputs[k];
    const std::string& name = options.output_names.empty() ? v.name() : options.output_names[k];
    if (name.empty()) value_error("output " + std::to_string(k) + " has an empty name");
    if (!output_names.insert(name).second) value_error("output name '" + name + "' is used twice");
    write_signature(sig_w, name, new_id[static_cast<std::size_t>(v.id())], v.node());
  }

  internal::ArchiveWriter meta_w;
  write_metadata(meta_w, options.metadata);

  internal::ArchiveWriter weights_w;
  std::uint32_t tensors = 0;
  for (std::int32_t i = 0; i < count; ++i) {
    const Op op = graph.node(i).op;
    if (live[static_cast<std::size_t>(i)] && (op == Op::parameter || op == Op::constant)) ++tensors;
  }
  weights_w.u32(tensors);
  for (std::int32_t i = 0; i < count; ++i) {
    const Node& n = graph.node(i);
    if (!live[static_cast<std::size_t>(i)] || (n.op != Op::parameter && n.op != Op::constant))
      continue;
    if (n.op == Op::parameter && !options.allow_nonfinite) check_finite(n);
    weights_w.tensor(n.name, n.value);
  }

  internal::ArchiveWriter prov_w;
  prov_w.string(options.creation_time.empty() ? internal::utc_now() : options.creation_time);
  prov_w.string(version_string);

  const std::vector<std::uint8_t> graph_b = graph_w.finish(), sig_b = sig_w.finish(),
                                  meta_b = meta_w.finish(), weights_b = weights_w.finish(),
                                  prov_b = prov_w.finish();
  const auto req = internal::section_required;
  std::vector<internal::SectionView> sections = {
      {internal::section_graph, req, graph_b},   {internal::section_signatures, req, sig_b},
      {internal::section_metadata, req, meta_b}, {internal::section_weights, req, weights_b},
      {internal::section_provenance, 0, prov_b},
  };
  for (const auto& [name, bytes] : options.sections) sections.push_back({name, 0, bytes});
  const auto payload = internal::write_sections(sections);
  return internal::wrap_envelope(internal::model_magic, model_format_version, payload);
}

void save_model(const std::string& path, const Graph& graph, const SaveOptions& options) {
  std::vector<std::uint8_t> bytes;
  try {
    bytes = serialize_model(graph, options);
  } catch (const NonFiniteError& e) {
    throw NonFiniteError(path + ": " + e.what());
  } catch (const ValueError& e) {
    std::string msg = path;
    msg += ": ";
    msg += e.what();
    throw ValueError(msg);
  }
  internal::write_file_atomically(path, bytes);
}

}  // namespace kiln
