// ModelSpec <-> JSON: a strict reader that names the JSON path of every bad or unknown
// entry, and the writer that from_json reads back to an equal spec.
#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "internal/json_reader.hpp"
#include "kiln/core/error.hpp"
#include "kiln/train/spec.hpp"

namespace kiln::train {
namespace {

using json = nlohmann::json;

const std::vector<std::string> layer_types = {
    "dense", "dropout", "batch_norm", "layer_norm", "conv2d", "max_pool2d", "avg_pool2d",
    "global_avg_pool2d", "flatten", "activation", "add", "concat",
    // Sequences (docs/sequence.md).
    "reshape", "lstm", "gru", "attention", "transformer_encoder", "positional_encoding",
    "last_step", "mean_steps"};
const std::vector<std::string> activations = {"none", "relu", "leaky_relu", "sigmoid",
                                              "tanh", "gelu", "softmax"};
const std::vector<std::string> optimizers = {"sgd", "adam", "adamw", "rmsprop"};
const std::vector<std::string> schedules = {"none",   "step",   "exponential",
                                            "cosine", "warmup", "reduce_on_plateau"};

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

using kiln::internal::describe;

/// A spec JSON object being read (errors are ValueErrors).
class Reader : public kiln::internal::JsonReader<ValueError> {
 public:
  using JsonReader::JsonReader;

  void string(const std::string& key, std::string& out) {
    if (const json* v = get(key)) {
      if (!v->is_string()) fail(at(key), "expected a string, got " + describe(*v));
      out = v->get<std::string>();
    }
  }
  void choice(const std::string& key, std::string& out, const std::vector<std::string>& allowed) {
    if (const json* v = get(key)) {
      if (!v->is_string() ||
          std::find(allowed.begin(), allowed.end(), v->get<std::string>()) == allowed.end())
        fail(at(key), "expected one of " + join(allowed) + ", got " + describe(*v));
      out = v->get<std::string>();
    }
  }
  /// A number in [lo, hi] (lo excluded when open_lo, hi excluded when open_hi).
  void number(const std::string& key, double& out, double lo, double hi, bool open_lo = false,
              bool open_hi = false) {
    if (const json* v = get(key)) out = number_value(*v, at(key), lo, hi, open_lo, open_hi);
  }
  double number_value(const json& v, const std::string& path, double lo, double hi, bool open_lo,
                      bool open_hi) const {
    auto range = [&] {
      return std::string(open_lo ? "(" : "[") + fmt(lo) + ", " + fmt(hi) + (open_hi ? ")" : "]");
    };
    if (!v.is_number()) fail(path, "expected a number in " + range() + ", got " + describe(v));
    const double d = v.get<double>();
    if (!std::isfinite(d) || d < lo || d > hi || (open_lo && d == lo) || (open_hi && d == hi))
      fail(path, "expected a number in " + range() + ", got " + describe(v));
    return d;
  }
  /// An integer >= lo ("positive" for lo = 1).
  void integer(const std::string& key, std::int64_t& out, std::int64_t lo) {
    if (const json* v = get(key)) out = integer_value(*v, at(key), lo, false);
  }
  std::int64_t integer_value(const json& v, const std::string& path, std::int64_t lo,
                             bool allow_auto) const {
    const std::string what = lo == 1   ? "a positive integer"
                             : lo == 0 ? "a non-negative integer"
                                       : "an integer >= " + std::to_string(lo);
    if (allow_auto && v.is_string() && v.get<std::string>() == "auto") return auto_size;
    const std::string expected = allow_auto ? what + " or \"auto\"" : what;
    if (!v.is_number_integer()) {
      if (v.is_number_float() && std::isfinite(v.get<double>()) &&
          v.get<double>() == std::floor(v.get<double>()) && std::abs(v.get<double>()) < 1e15)
        return integer_value(json(static_cast<std::int64_t>(v.get<double>())), path, lo,
                             allow_auto);
      fail(path, "expected " + expected + ", got " + describe(v));
    }
    if (v.is_number_unsigned() && v.get<std::uint64_t>() > (std::uint64_t{1} << 40))
      fail(path, "expected " + expected + " below 2^40, got " + describe(v));
    const std::int64_t i = v.get<std::int64_t>();
    if (i < lo || i > (std::int64_t{1} << 40))
      fail(path, "expected " + expected + ", got " + describe(v));
    return i;
  }
  /// [a, b] or a single integer a (meaning [a, a]).
  void pair(const std::string& key, std::array<std::int64_t, 2>& out, std::int64_t lo) {
    const json* v = get(key);
    if (!v) return;
    if (v->is_number()) {
      out[0] = out[1] = integer_value(*v, at(key), lo, false);
      return;
    }
    if (!v->is_array() || v->size() != 2)
      fail(at(key), "expected an integer or a list of two integers, got " + describe(*v));
    for (std::size_t i = 0; i < 2; ++i)
      out[i] = integer_value((*v)[i], at(key) + "[" + std::to_string(i) + "]", lo, false);
  }
  void strings(const std::string& key, std::vector<std::string>& out) {
    const json* v = get(key);
    if (!v) return;
    if (!v->is_array()) fail(at(key), "expected a list of strings, got " + describe(*v));
    out.clear();
    for (std::size_t i = 0; i < v->size(); ++i) {
      const json& e = (*v)[i];
      if (!e.is_string() || e.get<std::string>().empty())
        fail(at(key) + "[" + std::to_string(i) + "]",
             "expected a non-empty string, got " + describe(e));
      out.push_back(e.get<std::string>());
    }
  }
  static std::string fmt(double d) {
    std::ostringstream os;
    os << d;
    return os.str();
  }
};

DType dtype_from(const std::string& s) {
  if (s == "f32") return DType::f32;
  if (s == "f64") return DType::f64;
  if (s == "i32") return DType::i32;
  return DType::i64;
}

LayerSpec read_layer(const json& j, const std::string& path, const std::string& source,
                     bool graph) {
  Reader r(j, path, source);
  LayerSpec l;
  if (!r.has("type")) r.fail(path, "missing \"type\" (one of " + join(layer_types) + ")");
  r.choice("type", l.type, layer_types);
  if (!graph && (l.type == "add" || l.type == "concat"))
    r.fail(r.at("type"), "'" + l.type + "' joins several values: it needs a \"graph\" spec");
  r.string("name", l.name);
  if (graph) {
    if (l.name.empty()) r.fail(path, "missing \"name\" (graph nodes are referred to by name)");
    if (!r.has("inputs")) r.fail(path, "missing \"inputs\"");
    r.strings("inputs", l.inputs);
    const bool joins = l.type == "add" || l.type == "concat";
    if (joins ? l.inputs.size() < 2 : l.inputs.size() != 1)
      r.fail(r.at("inputs"), std::string("'") + l.type + "' takes " +
                                 (joins ? "two or more inputs" : "one input") + ", got " +
                                 std::to_string(l.inputs.size()));
  }
  const std::string& t = l.type;
  if (t == "dense") {
    if (!r.has("units")) r.fail(path, "missing \"units\"");
    l.units = r.integer_value(*r.get("units"), r.at("units"), 1, true);
    r.choice("activation", l.activation, activations);
  } else if (t == "conv2d") {
    if (!r.has("filters")) r.fail(path, "missing \"filters\"");
    r.integer("filters", l.filters, 1);
    if (!r.has("kernel")) r.fail(path, "missing \"kernel\"");
    r.pair("kernel", l.kernel, 1);
    l.stride = {1, 1};
    r.pair("stride", l.stride, 1);
    r.pair("padding", l.padding, 0);
    r.choice("activation", l.activation, activations);
  } else if (t == "max_pool2d" || t == "avg_pool2d") {
    if (!r.has("kernel")) r.fail(path, "missing \"kernel\"");
    r.pair("kernel", l.kernel, 1);
    l.stride = l.kernel;
    r.pair("stride", l.stride, 1);
    r.pair("padding", l.padding, 0);
  } else if (t == "dropout") {
    if (!r.has("rate")) r.fail(path, "missing \"rate\"");
    r.number("rate", l.rate, 0.0, 1.0, false, true);
  } else if (t == "activation") {
    if (!r.has("activation")) r.fail(path, "missing \"activation\"");
    r.choice("activation", l.activation, activations);
  } else if (t == "concat") {
    r.integer("axis", l.axis, -16);
  } else if (t == "reshape") {
    const json* v = r.get("shape");
    if (!v) r.fail(path, "missing \"shape\" (the per-row shape without the batch, e.g. [8, 8])");
    if (!v->is_array() || v->empty() || v->size() > 7)
      r.fail(r.at("shape"), "expected a list of 1 to 7 positive integers, got " + describe(*v));
    for (std::size_t i = 0; i < v->size(); ++i)
      l.shape.push_back(
          r.integer_value((*v)[i], r.at("shape") + "[" + std::to_string(i) + "]", 1, false));
  } else if (t == "lstm" || t == "gru") {
    if (!r.has("hidden")) r.fail(path, "missing \"hidden\" (the hidden size)");
    r.integer("hidden", l.hidden, 1);
    r.integer("layers", l.num_layers, 1);
    r.boolean("bidirectional", l.bidirectional);
    r.choice("return", l.returns, {"sequence", "last"});
  } else if (t == "attention") {
    r.integer("heads", l.heads, 1);
    r.boolean("causal", l.causal);
  } else if (t == "transformer_encoder") {
    r.integer("heads", l.heads, 1);
    if (!r.has("feedforward")) r.fail(path, "missing \"feedforward\" (the feed-forward width)");
    r.integer("feedforward", l.feedforward, 1);
    r.choice("activation", l.activation, {"relu", "gelu"});
    r.boolean("norm_first", l.norm_first);
    r.boolean("causal", l.causal);
  } else if (t == "positional_encoding") {
    r.boolean("learned", l.learned);
  }
  r.finish();
  return l;
}

json write_layer(const LayerSpec& l, bool graph) {
  json j;
  j["type"] = l.type;
  if (!l.name.empty()) j["name"] = l.name;
  if (graph) j["inputs"] = l.inputs;
  auto pair = [](const std::array<std::int64_t, 2>& p) { return json::array({p[0], p[1]}); };
  const std::string& t = l.type;
  if (t == "dense") {
    j["units"] = l.units == auto_size ? json("auto") : json(l.units);
    if (l.activation != "none") j["activation"] = l.activation;
  } else if (t == "conv2d") {
    j["filters"] = l.filters;
    j["kernel"] = pair(l.kernel);
    j["stride"] = pair(l.stride);
    j["padding"] = pair(l.padding);
    if (l.activation != "none") j["activation"] = l.activation;
  } else if (t == "max_pool2d" || t == "avg_pool2d") {
    j["kernel"] = pair(l.kernel);
    j["stride"] = pair(l.stride);
    j["padding"] = pair(l.padding);
  } else if (t == "dropout") {
    j["rate"] = l.rate;
  } else if (t == "activation") {
    j["activation"] = l.activation;
  } else if (t == "concat") {
    j["axis"] = l.axis;
  } else if (t == "reshape") {
    j["shape"] = l.shape;
  } else if (t == "lstm" || t == "gru") {
    j["hidden"] = l.hidden;
    j["layers"] = l.num_layers;
    j["bidirectional"] = l.bidirectional;
    j["return"] = l.returns;
  } else if (t == "attention") {
    j["heads"] = l.heads;
    j["causal"] = l.causal;
  } else if (t == "transformer_encoder") {
    j["heads"] = l.heads;
    j["feedforward"] = l.feedforward;
    if (l.activation != "none") j["activation"] = l.activation;
    j["norm_first"] = l.norm_first;
    j["causal"] = l.causal;
  } else if (t == "positional_encoding") {
    j["learned"] = l.learned;
  }
  return j;
}

void read_optimizer(const json& j, const std::string& path, const std::string& source,
                    OptimizerSpec& o) {
  Reader r(j, path, source);
  r.choice("name", o.name, optimizers);
  const double big = 1e6;
  r.number("lr", o.lr, 0.0, big);
  r.number("weight_decay", o.weight_decay, 0.0, big);
  if (o.name == "sgd") {
    r.number("momentum", o.momentum, 0.0, 1.0);
    r.number("dampening", o.dampening, 0.0, 1.0);
    r.boolean("nesterov", o.nesterov);
    if (o.nesterov && (o.momentum <= 0.0 || o.dampening != 0.0))
      r.fail(r.at("nesterov"), "Nesterov momentum needs momentum > 0 and dampening 0");
  } else if (o.name == "adam" || o.name == "adamw") {
    r.number("beta1", o.beta1, 0.0, 1.0, false, true);
    r.number("beta2", o.beta2, 0.0, 1.0, false, true);
    r.number("eps", o.eps, 0.0, 1.0, true);
    r.boolean("amsgrad", o.amsgrad);
  } else {
    r.number("alpha", o.alpha, 0.0, 1.0);
    r.number("eps", o.eps, 0.0, 1.0, true);
    r.number("momentum", o.momentum, 0.0, 1.0);
    r.boolean("centered", o.centered);
  }
  r.finish();
}

json write_optimizer(const OptimizerSpec& o) {
  json j = {{"name", o.name}, {"lr", o.lr}};
  if (o.weight_decay >= 0.0) j["weight_decay"] = o.weight_decay;
  if (o.name == "sgd") {
    j["momentum"] = o.momentum;
    j["dampening"] = o.dampening;
    j["nesterov"] = o.nesterov;
  } else if (o.name == "adam" || o.name == "adamw") {
    j["beta1"] = o.beta1;
    j["beta2"] = o.beta2;
    j["eps"] = o.eps;
    j["amsgrad"] = o.amsgrad;
  } else {
    j["alpha"] = o.alpha;
    j["eps"] = o.eps;
    j["momentum"] = o.momentum;
    j["centered"] = o.centered;
  }
  return j;
}

void read_schedule(const json& j, const std::string& path, const std::string& source,
                   ScheduleSpec& s) {
  Reader r(j, path, source);
  if (!r.has("type")) r.fail(path, "missing \"type\" (one of " + join(schedules) + ")");
  r.choice("type", s.type, schedules);
  if (s.type == "step") {
    r.integer("step_size", s.step_size, 1);
    r.number("gamma", s.gamma, 0.0, 1e6, true);
  } else if (s.type == "exponential") {
    r.number("gamma", s.gamma, 0.0, 1e6, true);
  } else if (s.type == "cosine") {
    r.integer("t_max", s.t_max, 0);
    r.number("eta_min", s.eta_min, 0.0, 1e6);
  } else if (s.type == "warmup") {
    r.integer("warmup_epochs", s.warmup_epochs, 1);
  } else if (s.type == "reduce_on_plateau") {
    r.string("monitor", s.monitor);
    r.number("factor", s.factor, 0.0, 1.0, true, true);
    r.integer("patience", s.patience, 0);
    r.number("min_lr", s.min_lr, 0.0, 1e6);
  }
  r.finish();
}

json write_schedule(const ScheduleSpec& s) {
  json j = {{"type", s.type}};
  if (s.type == "step") {
    j["step_size"] = s.step_size;
    j["gamma"] = s.gamma;
  } else if (s.type == "exponential") {
    j["gamma"] = s.gamma;
  } else if (s.type == "cosine") {
    j["t_max"] = s.t_max;
    j["eta_min"] = s.eta_min;
  } else if (s.type == "warmup") {
    j["warmup_epochs"] = s.warmup_epochs;
  } else if (s.type == "reduce_on_plateau") {
    j["monitor"] = s.monitor;
    j["factor"] = s.factor;
    j["patience"] = s.patience;
    j["min_lr"] = s.min_lr;
  }
  return j;
}

void read_training(const json& j, const std::string& path, const std::string& source,
                   TrainingSpec& t) {
  Reader r(j, path, source);
  if (const json* o = r.get("optimizer")) {
    if (o->is_string()) {
      read_optimizer(json{{"name", *o}}, r.at("optimizer"), source, t.optimizer);
    } else {
      read_optimizer(*o, r.at("optimizer"), source, t.optimizer);
    }
  }
  if (const json* s = r.get("lr_schedule"))
    read_schedule(*s, r.at("lr_schedule"), source, t.schedule);
  r.integer("epochs", t.epochs, 1);
  r.integer("batch_size", t.batch_size, 1);
  if (const json* s = r.get("seed")) {
    if (!s->is_number_unsigned())
      r.fail(r.at("seed"), "expected a non-negative integer, got " + describe(*s));
    t.seed = s->get<std::uint64_t>();
  }
  r.number("validation_split", t.validation_split, 0.0, 1.0, false, true);
  r.number("test_split", t.test_split, 0.0, 1.0, false, true);
  if (const json* e = r.get("early_stopping")) {
    Reader er(*e, r.at("early_stopping"), source);
    t.early_stopping.enabled = true;
    er.boolean("enabled", t.early_stopping.enabled);
    er.string("monitor", t.early_stopping.monitor);
    er.integer("patience", t.early_stopping.patience, 0);
    er.number("min_delta", t.early_stopping.min_delta, 0.0, 1e300);
    er.boolean("restore_best", t.early_stopping.restore_best);
    er.finish();
  }
  if (const json* c = r.get("gradient_clipping")) {
    Reader cr(*c, r.at("gradient_clipping"), source);
    cr.number("max_norm", t.clip_norm, 0.0, 1e300, true);
    cr.number("max_value", t.clip_value, 0.0, 1e300, true);
    cr.finish();
  }
  r.strings("metrics", t.metrics);
  r.finish();
  // Validation metrics need validation rows.
  auto needs_validation = [&](const std::string& monitor, const std::string& at) {
    if (monitor.rfind("val_", 0) == 0 && t.validation_split == 0.0)
      r.fail(at, "'" + monitor + "' is a validation metric: set training.validation_split > 0");
  };
  if (t.early_stopping.enabled)
    needs_validation(t.early_stopping.monitor, r.at("early_stopping.monitor"));
  if (t.schedule.type == "reduce_on_plateau")
    needs_validation(t.schedule.monitor, r.at("lr_schedule.monitor"));
}

json write_training(const TrainingSpec& t) {
  json j;
  j["optimizer"] = write_optimizer(t.optimizer);
  if (t.schedule.type != "none") j["lr_schedule"] = write_schedule(t.schedule);
  j["epochs"] = t.epochs;
  j["batch_size"] = t.batch_size;
  j["seed"] = t.seed;
  j["validation_split"] = t.validation_split;
  j["test_split"] = t.test_split;
  const EarlyStoppingSpec& e = t.early_stopping;
  if (e.enabled || e != EarlyStoppingSpec{})
    j["early_stopping"] = {{"enabled", e.enabled},
                           {"monitor", e.monitor},
                           {"patience", e.patience},
                           {"min_delta", e.min_delta},
                           {"restore_best", e.restore_best}};
  if (t.clip_norm > 0.0 || t.clip_value > 0.0) {
    json c = json::object();
    if (t.clip_norm > 0.0) c["max_norm"] = t.clip_norm;
    if (t.clip_value > 0.0) c["max_value"] = t.clip_value;
    j["gradient_clipping"] = c;
  }
  if (!t.metrics.empty()) j["metrics"] = t.metrics;
  return j;
}

void read_task(const json& j, const std::string& path, const std::string& source, TaskSpec& t) {
  Reader r(j, path, source);
  std::string type = "classification";
  r.choice("type", type, {"classification", "binary", "regression"});
  t.type = type == "binary"       ? Task::binary
           : type == "regression" ? Task::regression
                                  : Task::classification;
  const std::vector<std::string> losses =
      t.type == Task::classification ? std::vector<std::string>{"softmax_cross_entropy"}
      : t.type == Task::binary       ? std::vector<std::string>{"bce_with_logits"}
                                     : std::vector<std::string>{"mse", "huber"};
  r.choice("loss", t.loss, losses);
  if (t.loss == "huber" || r.has("huber_delta")) {
    if (t.loss != "huber") r.fail(r.at("huber_delta"), "only the huber loss takes a delta");
    r.number("huber_delta", t.huber_delta, 0.0, 1e300, true);
  }
  if (const json* w = r.get("class_weights")) {
    if (t.type == Task::regression)
      r.fail(r.at("class_weights"), "a regression task has no classes");
    if (!w->is_array() || w->empty())
      r.fail(r.at("class_weights"), "expected a list of weights, got " + describe(*w));
    if (t.type == Task::binary && w->size() != 2)
      r.fail(r.at("class_weights"),
             "a binary task takes 2 weights, got " + std::to_string(w->size()));
    t.class_weights.clear();
    for (std::size_t i = 0; i < w->size(); ++i)
      t.class_weights.push_back(r.number_value(
          (*w)[i], r.at("class_weights") + "[" + std::to_string(i) + "]", 0.0, 1e6, true, false));
  }
  r.string("target", t.target);
  r.finish();
}

}  // namespace

std::string_view task_name(Task task) {
  switch (task) {
    case Task::binary:
      return "binary";
    case Task::regression:
      return "regression";
    default:
      return "classification";
  }
}

std::string_view scaling_name(Scaling scaling) {
  switch (scaling) {
    case Scaling::none:
      return "none";
    case Scaling::minmax:
      return "minmax";
    default:
      return "standardize";
  }
}

ModelSpec ModelSpec::from_json(std::string_view text, const std::string& source) {
  json root;
  try {
    root = json::parse(text.begin(), text.end());
  } catch (const json::parse_error& e) {
    // Line and column of the byte where parsing failed.
    std::size_t line = 1, col = 1;
    for (std::size_t i = 0; i + 1 < e.byte && i < text.size(); ++i) {
      if (text[i] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    std::string what = e.what();
    const auto colon = what.find("syntax error");
    if (colon != std::string::npos) what = what.substr(colon);
    throw ValueError(source + ":" + std::to_string(line) + ":" + std::to_string(col) +
                     ": not valid JSON: " + what);
  }
  Reader r(root, "", source);
  ModelSpec s;
  r.string("name", s.name);
  r.string("description", s.description);
  if (const json* in = r.get("inputs")) {
    if (!in->is_array() || in->empty())
      r.fail("inputs", "expected a non-empty list of inputs, got " + describe(*in));
    s.inputs.clear();
    std::set<std::string> names;
    for (std::size_t i = 0; i < in->size(); ++i) {
      const std::string path = "inputs[" + std::to_string(i) + "]";
      Reader ir((*in)[i], path, source);
      InputSpec is;
      ir.string("name", is.name);
      if (is.name.empty()) ir.fail(ir.at("name"), "an input needs a non-empty name");
      if (!names.insert(is.name).second)
        ir.fail(ir.at("name"), "input '" + is.name + "' is given twice");
      if (const json* sh = ir.get("shape")) {
        if (!sh->is_array() || sh->empty() || sh->size() > 8)
          ir.fail(ir.at("shape"), "expected a list of 1 to 8 dims, got " + describe(*sh));
        is.shape.clear();
        for (std::size_t d = 0; d < sh->size(); ++d)
          is.shape.push_back(
              ir.integer_value((*sh)[d], ir.at("shape") + "[" + std::to_string(d) + "]", 1, true));
      }
      std::string dt = "f32";
      ir.choice("dtype", dt, {"f32", "f64"});
      is.dtype = dtype_from(dt);
      ir.finish();
      s.inputs.push_back(std::move(is));
    }
  }
  const json* layers = r.get("layers");
  const json* graph = r.get("graph");
  if (!layers && !graph) r.fail("", "a spec needs \"layers\" (a layer list) or \"graph\" (nodes)");
  if (layers && graph) r.fail("graph", "give either \"layers\" or \"graph\", not both");
  if (layers) {
    if (!layers->is_array() || layers->empty())
      r.fail("layers", "expected a non-empty list of layers, got " + describe(*layers));
    if (s.inputs.size() != 1)
      r.fail("layers", "a layer list takes one input; with " + std::to_string(s.inputs.size()) +
                           " inputs use \"graph\"");
    for (std::size_t i = 0; i < layers->size(); ++i)
      s.layers.push_back(
          read_layer((*layers)[i], "layers[" + std::to_string(i) + "]", source, false));
    for (std::size_t i = 0; i + 1 < s.layers.size(); ++i)
      if (s.layers[i].type == "dense" && s.layers[i].units == auto_size)
        r.fail("layers[" + std::to_string(i) + "].units",
               "\"auto\" units are only for the last layer");
  } else {
    Reader gr(*graph, "graph", source);
    const json* nodes = gr.get("nodes");
    if (!nodes || !nodes->is_array() || nodes->empty())
      gr.fail("graph.nodes", "expected a non-empty list of nodes");
    std::set<std::string> known;
    for (const InputSpec& is : s.inputs) known.insert(is.name);
    for (std::size_t i = 0; i < nodes->size(); ++i) {
      const std::string path = "graph.nodes[" + std::to_string(i) + "]";
      LayerSpec l = read_layer((*nodes)[i], path, source, true);
      for (std::size_t k = 0; k < l.inputs.size(); ++k)
        if (!known.count(l.inputs[k]))
          gr.fail(path + ".inputs[" + std::to_string(k) + "]",
                  "'" + l.inputs[k] + "' is neither a model input nor an earlier node");
      if (!known.insert(l.name).second)
        gr.fail(path + ".name", "the name '" + l.name + "' is used twice");
      s.nodes.push_back(std::move(l));
    }
    if (!gr.has("output")) gr.fail("graph", "missing \"output\" (the node the model returns)");
    gr.string("output", s.output);
    bool found = false;
    for (const LayerSpec& l : s.nodes) found = found || l.name == s.output;
    if (!found) gr.fail("graph.output", "no node is named '" + s.output + "'");
    gr.finish();
  }
  if (const json* t = r.get("task")) read_task(*t, "task", source, s.task);
  if (const json* p = r.get("preprocessing")) {
    Reader pr(*p, "preprocessing", source);
    std::string scaling = "standardize";
    pr.choice("scaling", scaling, {"standardize", "minmax", "none"});
    s.preprocessing.scaling = scaling == "none"     ? Scaling::none
                              : scaling == "minmax" ? Scaling::minmax
                                                    : Scaling::standardize;
    pr.finish();
  }
  if (const json* t = r.get("training")) read_training(*t, "training", source, s.training);
  if (!s.task.class_weights.empty() && s.task.type == Task::classification) {
    // Checked against the data's class count when the model is built.
  }
  r.finish();
  return s;
}

std::string ModelSpec::to_json(int indent) const {
  json j;
  if (!name.empty()) j["name"] = name;
  if (!description.empty()) j["description"] = description;
  json ins = json::array();
  for (const InputSpec& in : inputs) {
    json shape = json::array();
    for (auto d : in.shape) shape.push_back(d == auto_size ? json("auto") : json(d));
    ins.push_back(
        {{"name", in.name}, {"shape", shape}, {"dtype", std::string(to_string(in.dtype))}});
  }
  j["inputs"] = ins;
  if (nodes.empty()) {
    json ls = json::array();
    for (const LayerSpec& l : layers) ls.push_back(write_layer(l, false));
    j["layers"] = ls;
  } else {
    json ns = json::array();
    for (const LayerSpec& l : nodes) ns.push_back(write_layer(l, true));
    j["graph"] = {{"nodes", ns}, {"output", output}};
  }
  json t = {{"type", std::string(task_name(task.type))}};
  if (!task.loss.empty()) t["loss"] = task.loss;
  if (task.loss == "huber") t["huber_delta"] = task.huber_delta;
  if (!task.class_weights.empty()) t["class_weights"] = task.class_weights;
  if (!task.target.empty()) t["target"] = task.target;
  j["task"] = t;
  j["preprocessing"] = {{"scaling", std::string(scaling_name(preprocessing.scaling))}};
  j["training"] = write_training(training);
  return j.dump(indent);
}

ModelSpec ModelSpec::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(path + ": cannot open the spec file");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw IoError(path + ": cannot read the spec file");
  return from_json(text.str(), path);
}

std::vector<std::string> ModelSpec::metric_names() const {
  if (!training.metrics.empty()) return training.metrics;
  if (task.type == Task::regression) return {"mse", "mae", "r2"};
  return {"accuracy"};
}

}  // namespace kiln::train
