// The JSON of the model server (docs/serving.md "Predict", "Feedback", "Errors"): request
// bodies -> feeds, outputs -> answers. Bodies are checked for nesting depth by a scan before
// nlohmann builds anything, so a hostile body cannot make the parser recurse or allocate
// much; values are checked against the model's signature, naming the input, row and element.
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "serve/serve_internal.hpp"

namespace kiln::serve::detail {
namespace {

using json = nlohmann::json;

[[noreturn]] void bad(const std::string& code, const std::string& message, int status = 400) {
  throw RequestError(status, code, message);
}

/// Refuses JSON nested deeper than `limit` (arrays and objects) by a scan that allocates
/// nothing; strings (with escapes) are skipped so brackets inside them do not count.
void check_depth(std::string_view body, std::int64_t limit) {
  std::int64_t depth = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < body.size(); ++i) {
    char c = body[i];
    if (in_string) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        in_string = false;
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > limit)
        bad("too_deep", "the body is nested deeper than " + std::to_string(limit) +
                            " levels (at byte " + std::to_string(i) + ")");
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
}

json parse_body(std::string_view body, const ServerOptions& options) {
  if (body.size() > options.max_body_bytes)
    bad("too_large",
        "the body has " + std::to_string(body.size()) + " bytes, more than the limit of " +
            std::to_string(options.max_body_bytes),
        413);
  check_depth(body, options.max_json_depth);
  try {
    return json::parse(body.begin(), body.end());
  } catch (const json::out_of_range& e) {
    // A number beyond the range of a double (1e400): not finite, whatever input it is for.
    bad("not_finite", std::string("the body holds a number that is not finite: ") + e.what());
  } catch (const json::exception& e) {
    bad("bad_json", std::string("the body is not JSON: ") + e.what());
  }
}

std::string type_name(const json& v) {
  if (v.is_string()) {
    std::string s = v.get<std::string>();
    if (s.size() > 32) s = s.substr(0, 32) + "...";
    return "the string " + json(s).dump();
  }
  if (v.is_null()) return "null";
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  if (v.is_array()) return "an array";
  if (v.is_object()) return "an object";
  return v.dump();
}

std::string index_text(const std::vector<std::int64_t>& index) {
  std::string s = "[";
  for (std::size_t i = 0; i < index.size(); ++i) s += (i ? ", " : "") + std::to_string(index[i]);
  return s + "]";
}

/// The expected per-row shape of an input: its dims without the batch dim.
std::vector<std::int64_t> row_dims(const TensorSpec& spec) {
  if (spec.shape.rank() == 0) return {};
  return {spec.shape.dims().begin() + 1, spec.shape.dims().end()};
}

std::string dims_text(const std::vector<std::int64_t>& dims) {
  std::string s = "[";
  for (std::size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

/// Fills one input's tensor from rows of JSON values, checking shapes and element types.
class InputBuilder {
 public:
  InputBuilder(const TensorSpec& spec, std::int64_t rows) : spec_(spec), dims_(row_dims(spec)) {
    per_row_ = 1;
    for (std::int64_t d : dims_) per_row_ *= d;
    std::vector<std::int64_t> shape{rows};
    shape.insert(shape.end(), dims_.begin(), dims_.end());
    tensor_ = Tensor::empty(Shape(std::move(shape)), spec.dtype);
  }

  /// Row `row` of the input, nested like the per-row shape.
  void add_row(std::int64_t row, const json& value) {
    row_ = row;
    index_.clear();
    std::int64_t offset = row * per_row_;
    fill(value, 0, offset);
  }

  Tensor take() { return std::move(tensor_); }

 private:
  void fill(const json& v, std::size_t dim, std::int64_t& offset) {
    if (dim == dims_.size()) {
      put(v, offset++);
      return;
    }
    if (!v.is_array())
      bad("wrong_shape", where() + ": expected an array of " + std::to_string(dims_[dim]) +
                             " at dimension " + std::to_string(dim + 1) + " (row shape " +
                             dims_text(dims_) + "), got " + type_name(v));
    if (static_cast<std::int64_t>(v.size()) != dims_[dim])
      bad("wrong_shape", where() + ": expected row shape " + dims_text(dims_) + ", got " +
                             std::to_string(v.size()) + " values at dimension " +
                             std::to_string(dim + 1) + " instead of " + std::to_string(dims_[dim]));
    index_.push_back(0);
    for (const json& e : v) {
      fill(e, dim + 1, offset);
      ++index_.back();
    }
    index_.pop_back();
  }

  std::string where() const {
    std::string s = "input '" + spec_.name + "' row " + std::to_string(row_);
    if (!index_.empty()) s += " element " + index_text(index_);
    return s;
  }

  void put(const json& v, std::int64_t at) {
    if (v.is_array())
      bad("wrong_shape", where() + ": expected a number (row shape " + dims_text(dims_) +
                             "), got an array: the row is nested too deeply");
    if (!v.is_number()) bad("wrong_type", where() + ": expected a number, got " + type_name(v));
    switch (spec_.dtype) {
      case DType::f32: {
        double d = v.get<double>();
        auto f = static_cast<float>(d);
        if (!std::isfinite(d) || !std::isfinite(f))
          bad("not_finite", where() + ": " + v.dump() + " is not a finite f32 value");
        tensor_.data<float>()[at] = f;
        break;
      }
      case DType::f64: {
        double d = v.get<double>();
        if (!std::isfinite(d)) bad("not_finite", where() + ": " + v.dump() + " is not finite");
        tensor_.data<double>()[at] = d;
        break;
      }
      case DType::i32:
      case DType::i64: {
        if (!v.is_number_integer())
          bad("wrong_type", where() + ": expected an integer (input '" + spec_.name + "' is " +
                                dtype_text() + "), got " + v.dump());
        bool fits = true;
        std::int64_t n = 0;
        if (v.is_number_unsigned()) {
          auto u = v.get<std::uint64_t>();
          fits = u <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
          n = static_cast<std::int64_t>(u);
        } else {
          n = v.get<std::int64_t>();
        }
        if (spec_.dtype == DType::i32)
          fits = fits && n >= std::numeric_limits<std::int32_t>::min() &&
                 n <= std::numeric_limits<std::int32_t>::max();
        if (!fits)
          bad("wrong_type", where() + ": " + v.dump() + " is out of range for " + dtype_text());
        if (spec_.dtype == DType::i32)
          tensor_.data<std::int32_t>()[at] = static_cast<std::int32_t>(n);
        else
          tensor_.data<std::int64_t>()[at] = n;
        break;
      }
    }
  }

  std::string dtype_text() const { return std::string(to_string(spec_.dtype)); }

  const TensorSpec& spec_;
  std::vector<std::int64_t> dims_;
  std::int64_t per_row_ = 1;
  Tensor tensor_;
  std::int64_t row_ = 0;
  std::vector<std::int64_t> index_;
};

void check_rows(std::int64_t rows, const std::string& what, const infer::Model& model,
                const ServerOptions& options) {
  if (rows == 0) bad("bad_request", what + " has no rows");
  if (rows > options.max_rows)
    bad("too_many_rows",
        what + " has " + std::to_string(rows) + " rows, more than the limit of " +
            std::to_string(options.max_rows),
        413);
  for (const TensorSpec& spec : model.inputs()) {
    if (spec.shape.rank() == 0) bad("bad_request", "input '" + spec.name + "' is a scalar");
    for (std::size_t d = 1; d < spec.shape.rank(); ++d)
      if (spec.shape[d] < 0)
        bad("bad_request", "input '" + spec.name + "' has a dynamic dimension " +
                               std::to_string(d) + " (" + spec.shape.str() +
                               "); the server takes only the batch dimension as dynamic");
    if (spec.shape[0] != kiln::batch && spec.shape[0] != rows)
      bad("wrong_shape", "input '" + spec.name + "' takes exactly " +
                             std::to_string(spec.shape[0]) + " rows, got " + std::to_string(rows));
  }
}

std::string input_names(const infer::Model& model) {
  std::string s;
  for (const TensorSpec& spec : model.inputs()) s += (s.empty() ? "'" : ", '") + spec.name + "'";
  return s;
}

PredictRequest from_inputs(const json& inputs, const infer::Model& model,
                           const ServerOptions& options) {
  if (!inputs.is_object())
    bad("bad_request", "\"inputs\" must be an object of named inputs, got " + type_name(inputs));
  for (const auto& [name, value] : inputs.items()) {
    bool known = false;
    for (const TensorSpec& spec : model.inputs()) known = known || spec.name == name;
    if (!known)
      bad("unknown_input",
          "the model has no input '" + name + "' (its inputs: " + input_names(model) + ")");
  }
  PredictRequest out;
  std::int64_t rows = -1;
  std::string first;
  for (const TensorSpec& spec : model.inputs()) {
    auto it = inputs.find(spec.name);
    if (it == inputs.end()) bad("missing_input", "input '" + spec.name + "' is missing");
    if (!it->is_array())
      bad("wrong_shape", "input '" + spec.name +
                             "' must be an array of rows (batch dimension first), got " +
                             type_name(*it));
    auto n = static_cast<std::int64_t>(it->size());
    if (rows < 0) {
      rows = n;
      first = spec.name;
      check_rows(rows, "input '" + spec.name + "'", model, options);
    } else if (n != rows) {
      bad("wrong_shape", "input '" + spec.name + "' has " + std::to_string(n) +
                             " rows but input '" + first + "' has " + std::to_string(rows));
    }
    InputBuilder builder(spec, rows);
    for (std::int64_t r = 0; r < rows; ++r) builder.add_row(r, (*it)[static_cast<std::size_t>(r)]);
    out.feeds.emplace_back(spec.name, builder.take());
  }
  out.rows = rows;
  return out;
}

PredictRequest from_instances(const json& instances, const infer::Model& model,
                              const ServerOptions& options) {
  if (!instances.is_array())
    bad("bad_request", "\"instances\" must be an array of rows, got " + type_name(instances));
  auto rows = static_cast<std::int64_t>(instances.size());
  check_rows(rows, "\"instances\"", model, options);
  const auto& specs = model.inputs();
  std::vector<InputBuilder> builders;
  builders.reserve(specs.size());
  for (const TensorSpec& spec : specs) builders.emplace_back(spec, rows);
  for (std::int64_t r = 0; r < rows; ++r) {
    const json& row = instances[static_cast<std::size_t>(r)];
    if (row.is_object()) {
      for (const auto& [name, value] : row.items()) {
        bool known = false;
        for (const TensorSpec& spec : specs) known = known || spec.name == name;
        if (!known)
          bad("unknown_input", "instance " + std::to_string(r) + ": the model has no input '" +
                                   name + "' (its inputs: " + input_names(model) + ")");
      }
      for (std::size_t i = 0; i < specs.size(); ++i) {
        auto it = row.find(specs[i].name);
        if (it == row.end())
          bad("missing_input",
              "instance " + std::to_string(r) + ": input '" + specs[i].name + "' is missing");
        builders[i].add_row(r, *it);
      }
    } else {
      if (specs.size() != 1)
        bad("bad_request", "instance " + std::to_string(r) + ": the model has several inputs (" +
                               input_names(model) +
                               "), so each instance must be an object naming them");
      builders[0].add_row(r, row);
    }
  }
  PredictRequest out;
  for (std::size_t i = 0; i < specs.size(); ++i)
    out.feeds.emplace_back(specs[i].name, builders[i].take());
  out.rows = rows;
  return out;
}

/// Shortest text that reads back as the same value (null for NaN and infinities, which
/// JSON cannot hold).
template <class T>
void append_number(std::string& out, T value) {
  if constexpr (std::is_floating_point_v<T>) {
    if (!std::isfinite(value)) {
      out += "null";
      return;
    }
  }
  char buffer[64];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof(buffer), value);
  out.append(buffer, end);
}

template <class T>
void append_nested(std::string& out, const T* data, const std::vector<std::int64_t>& dims,
                   std::size_t dim, std::int64_t& offset) {
  if (dim == dims.size()) {
    append_number(out, data[offset++]);
    return;
  }
  out += '[';
  for (std::int64_t i = 0; i < dims[dim]; ++i) {
    if (i) out += ',';
    append_nested(out, data, dims, dim + 1, offset);
  }
  out += ']';
}

void append_tensor(std::string& out, const Tensor& t) {
  Tensor c = t.contiguous();
  std::vector<std::int64_t> dims = c.shape().dims();
  std::int64_t offset = 0;
  switch (c.dtype()) {
    case DType::f32:
      append_nested(out, c.data<float>(), dims, 0, offset);
      break;
    case DType::f64:
      append_nested(out, c.data<double>(), dims, 0, offset);
      break;
    case DType::i32:
      append_nested(out, c.data<std::int32_t>(), dims, 0, offset);
      break;
    case DType::i64:
      append_nested(out, c.data<std::int64_t>(), dims, 0, offset);
      break;
  }
}

}  // namespace

Response error_response(const RequestError& e) {
  json body = {{"error", {{"code", e.code}, {"message", e.what()}}}};
  return Response{.status = e.status,
                  .content_type = "application/json",
                  .body = body.dump(-1, ' ', false, json::error_handler_t::replace)};
}

PredictRequest parse_predict(std::string_view body, const infer::Model& model,
                             const ServerOptions& options) {
  json doc = parse_body(body, options);
  if (!doc.is_object())
    bad("bad_request",
        "the body must be an object with \"inputs\" or \"instances\", got " + type_name(doc));
  auto inputs = doc.find("inputs");
  auto instances = doc.find("instances");
  if (inputs != doc.end() && instances != doc.end())
    bad("bad_request", "the body has both \"inputs\" and \"instances\"; give one");
  if (inputs != doc.end()) return from_inputs(*inputs, model, options);
  if (instances != doc.end()) return from_instances(*instances, model, options);
  bad("bad_request", "the body has neither \"inputs\" nor \"instances\"");
}

namespace {

std::vector<double> predicted(bool classifier, const std::vector<Tensor>& outputs) {
  if (outputs.empty() || outputs[0].rank() == 0) return {};
  Tensor first = outputs[0].to(DType::f64).contiguous();
  std::int64_t rows = first.dim(0);
  std::int64_t per_row = rows == 0 ? 0 : first.numel() / rows;
  const double* data = first.data<double>();
  std::vector<double> out(static_cast<std::size_t>(rows));
  for (std::int64_t r = 0; r < rows; ++r) {
    const double* row = data + r * per_row;
    if (per_row == 0) {
      out[static_cast<std::size_t>(r)] = std::numeric_limits<double>::quiet_NaN();
    } else if (classifier) {
      std::int64_t best = 0;  // the first on ties; NaN counts as the largest (Tensor::argmax)
      for (std::int64_t i = 1; i < per_row; ++i)
        if (!std::isnan(row[best]) && (std::isnan(row[i]) || row[i] > row[best])) best = i;
      out[static_cast<std::size_t>(r)] = static_cast<double>(best);
    } else {
      out[static_cast<std::size_t>(r)] = row[0];
    }
  }
  return out;
}

}  // namespace

std::vector<double> predicted_values(const infer::Model& model,
                                     const std::vector<Tensor>& outputs) {
  return predicted(!model.metadata().labels.empty(), outputs);
}

std::vector<double> predicted_values(const LoadedVersion& version,
                                     const std::vector<Tensor>& outputs) {
  const monitor::Monitor* m = version.monitor.get();
  bool classifier = m && m->profile().predicted != monitor::PredictionKind::none
                        ? m->profile().predicted == monitor::PredictionKind::classes
                        : !version.model.metadata().labels.empty();
  return predicted(classifier, outputs);
}

std::string format_predict(const std::string& name, const LoadedVersion& version,
                           const std::vector<Tensor>& outputs,
                           const std::vector<std::string>& ids) {
  std::string out = "{\"model\":" + json(name).dump() +
                    ",\"version\":" + json(version.version).dump() +
                    ",\"hash\":" + json(version.hash).dump() + ",\"outputs\":{";
  const auto& specs = version.model.outputs();
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    if (i) out += ',';
    out += json(i < specs.size() ? specs[i].name : "output" + std::to_string(i)).dump();
    out += ':';
    append_tensor(out, outputs[i]);
  }
  out += '}';
  const auto& labels = version.model.metadata().labels;
  if (!labels.empty()) {
    out += ",\"classes\":[";
    std::vector<double> predicted = predicted_values(version.model, outputs);
    for (std::size_t r = 0; r < predicted.size(); ++r) {
      if (r) out += ',';
      // An index past the names (an output wider than the labels) is written as a number.
      double k = predicted[r];
      if (!(k >= 0))  // NaN: an output without elements per row
        out += "null";
      else if (k < static_cast<double>(labels.size()))
        out += json(labels[static_cast<std::size_t>(k)]).dump();
      else
        out += json(std::to_string(static_cast<std::int64_t>(k))).dump();
    }
    out += ']';
  }
  out += ",\"ids\":[";
  for (std::size_t r = 0; r < ids.size(); ++r) {
    if (r) out += ',';
    out += json(ids[r]).dump();
  }
  out += "]}";
  return out;
}

FeedbackRequest parse_feedback(std::string_view body, const infer::Model& model,
                               const ServerOptions& options) {
  json doc = parse_body(body, options);
  if (!doc.is_object())
    bad("bad_request",
        "the body must be an object {\"ids\": [...], \"labels\": [...]}, got " + type_name(doc));
  auto ids = doc.find("ids");
  auto labels = doc.find("labels");
  if (ids == doc.end() || !ids->is_array())
    bad("bad_request", "\"ids\" must be an array of prediction ids");
  if (labels == doc.end() || !labels->is_array())
    bad("bad_request", "\"labels\" must be an array of labels");
  if (ids->size() != labels->size())
    bad("bad_request", "\"ids\" has " + std::to_string(ids->size()) +
                           " elements but \"labels\" has " + std::to_string(labels->size()));
  if (ids->empty()) bad("bad_request", "\"ids\" is empty");
  if (static_cast<std::int64_t>(ids->size()) > options.max_rows)
    bad("too_many_rows",
        "the feedback has " + std::to_string(ids->size()) + " labels, more than the limit of " +
            std::to_string(options.max_rows),
        413);
  const auto& names = model.metadata().labels;
  FeedbackRequest out;
  for (std::size_t i = 0; i < ids->size(); ++i) {
    const json& id = (*ids)[i];
    if (!id.is_string())
      bad("wrong_type", "ids[" + std::to_string(i) + "]: expected a string, got " + type_name(id));
    out.ids.push_back(id.get<std::string>());
    const json& label = (*labels)[i];
    double value = 0;
    if (label.is_string()) {
      auto s = label.get<std::string>();
      auto it = std::find(names.begin(), names.end(), s);
      if (it == names.end())
        bad("wrong_type", "labels[" + std::to_string(i) + "]: " + json(s).dump() +
                              (names.empty() ? " is not a number (the model has no class names)"
                                             : " is not one of the model's " +
                                                   std::to_string(names.size()) + " class names"));
      value = static_cast<double>(it - names.begin());
    } else if (label.is_number()) {
      value = label.get<double>();
      if (!std::isfinite(value))
        bad("not_finite", "labels[" + std::to_string(i) + "]: " + label.dump() + " is not finite");
      if (!names.empty() &&
          (!label.is_number_integer() || value < 0 || value >= static_cast<double>(names.size())))
        bad("wrong_type", "labels[" + std::to_string(i) + "]: " + label.dump() +
                              " is not a class index (0 to " + std::to_string(names.size() - 1) +
                              ") or class name");
    } else {
      bad("wrong_type", "labels[" + std::to_string(i) + "]: expected a class name or number, got " +
                            type_name(label));
    }
    out.labels.push_back(value);
  }
  return out;
}

}  // namespace kiln::serve::detail
