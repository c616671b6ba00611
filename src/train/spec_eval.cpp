// evaluate_csv and predict_csv: a model file made by train_from_spec, its spec and CSV schema
// sections, and a new CSV file read the way the training file was.
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "kiln/core/error.hpp"
#include "kiln/data/csv.hpp"
#include "train/spec_eval.hpp"

namespace kiln::train {
namespace internal {

Tensor run_model(const infer::Model& model, const data::Dataset& data) {
  const std::string& input = model.inputs().at(0).name;
  const Tensor& x = data["features"];
  const std::int64_t n = x.dim(0), chunk = 1024;
  std::vector<Tensor> parts;
  for (std::int64_t b = 0; b < n; b += chunk)
    parts.push_back(model.run({{input, x.rows(b, std::min(n, b + chunk))}}).at(0));
  if (parts.size() == 1) return parts[0];
  // Concatenate along rows.
  std::vector<std::int64_t> dims = parts[0].shape().dims();
  dims[0] = n;
  Tensor out = Tensor::empty(Shape(dims), parts[0].dtype());
  std::int64_t row = 0;
  for (const Tensor& p : parts) {
    out.rows(row, row + p.dim(0)).copy_from(p);
    row += p.dim(0);
  }
  return out;
}

// [N, 1] probabilities of class 1 -> [N, 2] (p0, p1) and the classes (p1 > 0.5) as i32 [N].
void binary_outputs(const Tensor& p1, Tensor& probs, Tensor& classes) {
  const std::vector<float> p = p1.contiguous().to(DType::f32).to_vector<float>();
  std::vector<float> two;
  std::vector<std::int32_t> c;
  for (float v : p) {
    two.push_back(1.0f - v);
    two.push_back(v);
    c.push_back(v > 0.5f ? 1 : 0);
  }
  const auto n = static_cast<std::int64_t>(p.size());
  probs = Tensor::from(two, Shape{n, 2});
  classes = Tensor::from(c, Shape{n});
}

Evaluation evaluate_dataset(const infer::Model& model, const data::Dataset& data,
                            const ModelSpec& spec, const std::vector<std::string>& labels) {
  Evaluation ev;
  ev.task = spec.task.type;
  ev.rows = data.size();
  ev.labels = labels;
  const Tensor out = run_model(model, data);
  const Tensor& target = data["target"];
  Tensor scores = out;  // what compute() gets for the spec's extra metrics
  if (ev.task == Task::regression) {
    ev.metrics["mse"] = metrics::mse(out, target);
    ev.metrics["mae"] = metrics::mae(out, target);
    ev.metrics["r2"] = metrics::r2(out, target);
  } else {
    Tensor classes;
    if (ev.task == Task::binary) {
      binary_outputs(out, scores, classes);
    } else {
      classes = out.argmax(1).to(DType::i32);
    }
    const auto c = static_cast<std::int64_t>(std::max<std::size_t>(labels.size(), 2));
    ev.confusion = metrics::confusion_matrix(classes, target, c);
    const metrics::ClassScores prf = metrics::precision_recall_f1(ev.confusion);
    ev.metrics["accuracy"] = metrics::accuracy(classes, target);
    ev.metrics["precision_macro"] = prf.macro_precision;
    ev.metrics["recall_macro"] = prf.macro_recall;
    ev.metrics["f1_macro"] = prf.macro_f1;
    ev.metrics["log_loss"] = metrics::log_loss(scores, target);
  }
  for (const std::string& name : spec.metric_names())
    if (!ev.metrics.count(name)) ev.metrics[name] = metrics::compute(name, scores, target);
  return ev;
}

}  // namespace internal

namespace {

std::string section_text(const infer::Model& m, const std::string& name, const std::string& path) {
  if (!m.has_section(name))
    throw FormatError(path + ": the model has no '" + name +
                      "' section (it was not made by kiln train / train_from_spec)");
  auto bytes = m.section(name);
  return std::string(bytes.begin(), bytes.end());
}

}  // namespace

namespace internal {

SpecModel load_spec_model(const std::string& path) {
  infer::Model m = infer::Model::load(path, {.apply_preprocessing = true});
  ModelSpec spec;
  try {
    spec = ModelSpec::from_json(section_text(m, "kiln.spec", path), path + ": kiln.spec");
  } catch (const ValueError& e) {
    throw FormatError(e.what());
  }
  data::CsvSchema schema = data::CsvSchema::from_json(section_text(m, "kiln.data", path));
  return {std::move(m), std::move(spec), std::move(schema)};
}

}  // namespace internal

namespace {

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

}  // namespace

data::Dataset read_csv_for_model(const std::string& model_path, const std::string& csv_path,
                                 data::TargetColumn target) {
  const internal::SpecModel sm = internal::load_spec_model(model_path);
  return data::read_csv_with_schema(csv_path, sm.schema, target);
}

Evaluation evaluate_csv(const std::string& model_path, const std::string& csv_path) {
  const internal::SpecModel sm = internal::load_spec_model(model_path);
  const data::Dataset d =
      data::read_csv_with_schema(csv_path, sm.schema, data::TargetColumn::required);
  return internal::evaluate_dataset(sm.model, d, sm.spec, sm.schema.labels);
}

Predictions predict_csv(const std::string& model_path, const std::string& csv_path) {
  const internal::SpecModel sm = internal::load_spec_model(model_path);
  const data::Dataset d =
      data::read_csv_with_schema(csv_path, sm.schema, data::TargetColumn::ignore);
  Predictions p;
  p.task = sm.spec.task.type;
  p.target = sm.schema.target.name.empty() ? "prediction" : sm.schema.target.name;
  p.labels = sm.schema.labels;
  const Tensor out = internal::run_model(sm.model, d);
  if (p.task == Task::regression) {
    const Tensor v = out.contiguous().to(DType::f64);
    p.values = v.to_vector<double>();
    return p;
  }
  Tensor classes;
  if (p.task == Task::binary) {
    internal::binary_outputs(out, p.probabilities, classes);
  } else {
    p.probabilities = out.contiguous();
    classes = out.argmax(1).to(DType::i32);
  }
  for (std::int32_t c : classes.to_vector<std::int32_t>()) p.classes.push_back(c);
  return p;
}

std::string Predictions::to_csv(bool with_probabilities) const {
  std::string out = csv_field(target);
  const bool probs = with_probabilities && task != Task::regression;
  const std::int64_t c = probs ? probabilities.dim(1) : 0;
  for (std::int64_t k = 0; k < c; ++k) {
    std::string name = "p_";
    name += static_cast<std::size_t>(k) < labels.size() ? labels[static_cast<std::size_t>(k)]
                                                        : std::to_string(k);
    out += ',';
    out += csv_field(name);
  }
  out += "\n";
  if (task == Task::regression) {
    for (double v : values) {
      out += number(v);
      out += '\n';
    }
    return out;
  }
  const std::vector<float> pr =
      probs ? probabilities.to(DType::f32).to_vector<float>() : std::vector<float>{};
  for (std::size_t i = 0; i < classes.size(); ++i) {
    const auto k = static_cast<std::size_t>(classes[i]);
    out += csv_field(k < labels.size() ? labels[k] : std::to_string(k));
    for (std::int64_t j = 0; j < c; ++j) {
      out += ',';
      out += number(pr[i * static_cast<std::size_t>(c) + static_cast<std::size_t>(j)]);
    }
    out += "\n";
  }
  return out;
}

}  // namespace kiln::train
