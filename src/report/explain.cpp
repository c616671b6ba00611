// kiln::report::Explainer: gradient saliency and integrated gradients of one output element
// with respect to a graph input, through one appended gradient (kiln::grad) of
// sum(output * mask), the mask a one-hot input selecting the element in every row.
#include "kiln/report/explain.hpp"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "kiln/autodiff.hpp"
#include "kiln/core/error.hpp"
#include "kiln/data/csv.hpp"
#include "kiln/io/load_graph.hpp"
#include "kiln/io/model_file.hpp"
#include "kiln/ops.hpp"
#include "kiln/runtime/executable.hpp"

namespace kiln::report {

double Attribution::completeness_error() const {
  if (method != "integrated_gradients" || !attributions.defined()) return 0.0;
  const double delta = output - baseline_output;
  const double sum = attributions.to(DType::f64).sum();
  return std::abs(sum - delta) / std::max(std::abs(delta), 1e-12);
}

struct Explainer::Impl {
  std::unique_ptr<LoadedGraph> owned;  // from_file's graph (Values below point into it)
  Graph* graph = nullptr;
  Value input, output, mask, gradient;
  std::string input_name;
  Shape row_shape;
  std::int64_t row_numel = 1;
  std::int64_t outputs = 1;
  std::vector<Normalization> preprocessing;  // those of `input`
  std::vector<std::string> labels;
  std::vector<std::string> feature_names;
  std::unique_ptr<Executable> explain;  // {output, gradient}
  std::unique_ptr<Executable> forward;  // {output}

  void init(Graph& g, Value in, Value out);
  Tensor model_row(const Tensor& x) const;  // x preprocessed, as f32 [1, row...]
  Tensor run_forward(const Tensor& batch);  // model-input space batch -> output
  std::int64_t pick_class(const Tensor& row, std::int64_t requested);
  // Output and gradient of the masked output for a model-input space batch.
  std::pair<Tensor, Tensor> run_explain(const Tensor& batch, std::int64_t target);
};

void Explainer::Impl::init(Graph& g, Value in, Value out) {
  if (!in.valid() || !out.valid())
    throw ValueError("Explainer: the input and output must be values of a graph");
  if (&in.graph() != &g || &out.graph() != &g)
    throw ValueError("Explainer: the input and output must be values of the given graph");
  if (in.node().op != Op::input)
    throw ValueError("Explainer: '" + in.name() + "' is not a graph input");
  if (!is_floating(in.dtype()) || !is_floating(out.dtype()))
    throw DTypeError("Explainer: the input '" + in.name() + "' and output '" + out.name() +
                     "' must be floating point");
  const Shape& is = in.shape();
  const Shape& os = out.shape();
  if (is.rank() < 2 || is[0] != batch || os.rank() < 1 || os[0] != batch)
    throw ShapeError("Explainer: the input '" + in.name() + "' (" + is.str() + ") and output '" +
                     out.name() + "' (" + os.str() + ") must have the batch as first dimension");
  std::vector<std::int64_t> dims(is.dims().begin() + 1, is.dims().end());
  for (std::int64_t d : dims)
    if (d <= 0)
      throw ShapeError("Explainer: the input '" + in.name() + "' (" + is.str() +
                       ") must have a fixed row shape");
  graph = &g;
  input = in;
  output = out;
  input_name = in.name();
  row_shape = Shape(dims);
  row_numel = row_shape.numel();
  outputs = 1;
  for (std::size_t i = 1; i < os.rank(); ++i) outputs *= os[i];
  std::string name = "explain_mask";
  for (int k = 2; g.contains(name); ++k) name = "explain_mask_" + std::to_string(k);
  mask = g.input(name, os, out.dtype());
  const Value objective = kiln::sum(kiln::mul(out, mask));
  gradient = kiln::grad(objective, {in}).at(0);
  explain = std::make_unique<Executable>(g, std::vector<Value>{output, gradient});
  forward = std::make_unique<Executable>(g, std::vector<Value>{output});
}

Tensor Explainer::Impl::model_row(const Tensor& x) const {
  std::vector<std::int64_t> want{1};
  want.insert(want.end(), row_shape.dims().begin(), row_shape.dims().end());
  const bool bare = x.shape() == row_shape;
  const bool one = x.shape() == Shape(want);
  if (!x.defined() || (!bare && !one))
    throw ValueError("Explainer: the input '" + input_name + "' takes one row of shape " +
                     row_shape.str() + ", not " + (x.defined() ? x.shape().str() : "nothing"));
  Tensor r = x.to(DType::f32).contiguous().reshape(Shape(want));
  for (const Normalization& n : preprocessing) r = apply_normalization(r, n);
  return r.to(DType::f32).contiguous();
}

Tensor Explainer::Impl::run_forward(const Tensor& batch) {
  return forward->run({{input_name, batch.to(input.dtype())}}).at(0);
}

std::int64_t Explainer::Impl::pick_class(const Tensor& row, std::int64_t requested) {
  if (requested >= outputs || requested < -1)
    throw ValueError("Explainer: class " + std::to_string(requested) + " is out of range: '" +
                     output.name() + "' has " + std::to_string(outputs) + " output(s) per row");
  if (requested >= 0) return requested;
  const std::vector<double> out = run_forward(row).to(DType::f64).contiguous().to_vector<double>();
  std::int64_t best = 0;
  for (std::int64_t k = 1; k < outputs; ++k)
    if (out[static_cast<std::size_t>(k)] > out[static_cast<std::size_t>(best)]) best = k;
  return best;
}

std::pair<Tensor, Tensor> Explainer::Impl::run_explain(const Tensor& batch, std::int64_t target) {
  const std::int64_t n = batch.dim(0);
  std::vector<std::int64_t> mdims = output.shape().dims();
  mdims[0] = n;
  Tensor m = Tensor::zeros(Shape(mdims), output.dtype());
  Tensor m32 = Tensor::zeros(Shape{n, outputs});
  float* p = m32.data<float>();
  for (std::int64_t i = 0; i < n; ++i) p[i * outputs + target] = 1.0f;
  m.copy_from(m32.reshape(Shape(mdims)).to(output.dtype()));
  std::vector<Tensor> r =
      explain->run({{input_name, batch.to(input.dtype())}, {mask.name(), std::move(m)}});
  return {r.at(0).to(DType::f64).contiguous(), r.at(1).to(DType::f64).contiguous()};
}

Explainer::Explainer(Graph& graph, Value input, Value output) : impl_(std::make_unique<Impl>()) {
  impl_->init(graph, input, output);
}

Explainer Explainer::from_file(const std::string& model_path) {
  auto loaded = std::make_unique<LoadedGraph>(load_graph(model_path));
  if (loaded->inputs.empty() || loaded->outputs.empty())
    throw FormatError(model_path + ": the model has no input or no output to explain");
  Graph& g = *loaded->graph;
  const Value in = loaded->inputs[0];
  const Value out = loaded->outputs[0];
  Explainer ex(g, in, out);
  Impl& im = *ex.impl_;
  for (const Normalization& n : loaded->metadata.preprocessing)
    if (n.input == im.input_name) im.preprocessing.push_back(n);
  im.labels = loaded->metadata.labels;
  auto section = loaded->sections.find("kiln.data");
  if (section != loaded->sections.end()) {
    const data::CsvSchema schema = data::CsvSchema::from_json(std::string_view(
        reinterpret_cast<const char*>(section->second.data()), section->second.size()));
    std::vector<std::string> names = schema.feature_names();
    if (static_cast<std::int64_t>(names.size()) == im.row_numel)
      im.feature_names = std::move(names);
  }
  im.owned = std::move(loaded);
  return ex;
}

Explainer::~Explainer() = default;
Explainer::Explainer(Explainer&&) noexcept = default;
Explainer& Explainer::operator=(Explainer&&) noexcept = default;

Attribution Explainer::integrated_gradients(const Tensor& x, const AttributionOptions& options) {
  Impl& im = *impl_;
  if (options.steps < 2)
    throw ValueError("integrated_gradients: steps must be at least 2, not " +
                     std::to_string(options.steps));
  const Tensor xm = im.model_row(x);
  Tensor base;
  if (options.baseline.defined()) {
    if (options.baseline.numel() != im.row_numel)
      throw ValueError("integrated_gradients: the baseline has shape " +
                       options.baseline.shape().str() + " but the input '" + im.input_name +
                       "' takes rows of shape " + im.row_shape.str());
    base = options.baseline.to(DType::f32).contiguous().reshape(xm.shape());
  } else {
    base = Tensor::zeros(xm.shape());
  }
  const std::int64_t target = im.pick_class(xm, options.target_class);
  const std::int64_t steps = options.steps, d = im.row_numel;

  // The path: row k is baseline + k / (steps - 1) * (x - baseline); the ends exactly.
  std::vector<std::int64_t> dims{steps};
  dims.insert(dims.end(), im.row_shape.dims().begin(), im.row_shape.dims().end());
  Tensor path = Tensor::empty(Shape(dims));
  const float* xv = xm.data<float>();
  const float* bv = base.data<float>();
  float* pv = path.data<float>();
  for (std::int64_t k = 0; k < steps; ++k) {
    const double alpha = static_cast<double>(k) / static_cast<double>(steps - 1);
    for (std::int64_t j = 0; j < d; ++j) {
      const double b = bv[j], v = xv[j];
      pv[k * d + j] = k == 0           ? bv[j]
                      : k == steps - 1 ? xv[j]
                                       : static_cast<float>(b + alpha * (v - b));
    }
  }
  const auto [out, grads] = im.run_explain(path, target);
  const double* o = out.data<double>();
  const double* g = grads.data<double>();

  // Trapezoid rule over [0, 1] with steps - 1 equal intervals.
  std::vector<float> attr(static_cast<std::size_t>(d));
  const double h = 1.0 / static_cast<double>(steps - 1);
  for (std::int64_t j = 0; j < d; ++j) {
    double s = 0.5 * (g[j] + g[(steps - 1) * d + j]);
    for (std::int64_t k = 1; k < steps - 1; ++k) s += g[k * d + j];
    attr[static_cast<std::size_t>(j)] =
        static_cast<float>(s * h * (static_cast<double>(xv[j]) - static_cast<double>(bv[j])));
  }

  Attribution a;
  a.method = "integrated_gradients";
  a.input = im.input_name;
  a.target_class = target;
  a.steps = steps;
  a.attributions = Tensor::from(attr, im.row_shape);
  a.values = xm.reshape(im.row_shape).clone();
  a.baseline = base.reshape(im.row_shape).clone();
  a.output = o[(steps - 1) * im.outputs + target];
  a.baseline_output = o[target];
  return a;
}

Attribution Explainer::saliency(const Tensor& x, const AttributionOptions& options) {
  Impl& im = *impl_;
  const Tensor xm = im.model_row(x);
  const std::int64_t target = im.pick_class(xm, options.target_class);
  const auto [out, grads] = im.run_explain(xm, target);
  const double* g = grads.data<double>();
  std::vector<float> attr(static_cast<std::size_t>(im.row_numel));
  for (std::size_t j = 0; j < attr.size(); ++j) attr[j] = static_cast<float>(std::abs(g[j]));
  Attribution a;
  a.method = "saliency";
  a.input = im.input_name;
  a.target_class = target;
  a.steps = 1;
  a.attributions = Tensor::from(attr, im.row_shape);
  a.values = xm.reshape(im.row_shape).clone();
  a.output = out.data<double>()[target];
  return a;
}

Tensor Explainer::predict(const Tensor& batch) {
  Impl& im = *impl_;
  if (batch.rank() != im.row_shape.rank() + 1)
    throw ValueError("Explainer::predict: the input '" + im.input_name + "' takes rows of shape " +
                     im.row_shape.str() + ", not a batch of shape " + batch.shape().str());
  Tensor b = batch.to(DType::f32).contiguous();
  for (const Normalization& n : im.preprocessing) b = apply_normalization(b, n);
  return im.run_forward(b);
}

Tensor Explainer::preprocess(const Tensor& x) const {
  return impl_->model_row(x).reshape(impl_->row_shape).clone();
}

const std::string& Explainer::input_name() const { return impl_->input_name; }
const Shape& Explainer::input_shape() const { return impl_->row_shape; }
std::int64_t Explainer::outputs() const { return impl_->outputs; }
const std::vector<std::string>& Explainer::labels() const { return impl_->labels; }
const std::vector<std::string>& Explainer::feature_names() const { return impl_->feature_names; }

std::int64_t Explainer::class_index(const std::string& name) const {
  const Impl& im = *impl_;
  if (im.outputs == 1 && im.labels.size() == 2) {
    // A binary model's one output is P(labels[1]): class 1, by name or index.
    if (name == im.labels[1] || name == "1") return 0;
    throw ValueError("class '" + name + "' has no output: the binary model outputs P('" +
                     im.labels[1] + "') only (class 1; explain it, the attributions of '" +
                     im.labels[0] + "' are their negatives)");
  }
  std::int64_t k = 0;
  const char* end = name.data() + name.size();
  const auto [ptr, ec] = std::from_chars(name.data(), end, k);
  if (ec == std::errc() && ptr == end && !name.empty() && k >= 0 && k < im.outputs) return k;
  for (std::size_t i = 0; i < im.labels.size(); ++i)
    if (im.labels[i] == name && static_cast<std::int64_t>(i) < im.outputs)
      return static_cast<std::int64_t>(i);
  std::string known;
  for (std::int64_t i = 0; i < im.outputs; ++i) {
    if (!known.empty()) known += ", ";
    known += static_cast<std::size_t>(i) < im.labels.size()
                 ? "'" + im.labels[static_cast<std::size_t>(i)] + "'"
                 : std::to_string(i);
  }
  known += " or an index in [0, " + std::to_string(im.outputs) + ")";
  throw ValueError("unknown class '" + name + "': the model's classes are " + known);
}

std::string Explainer::class_name(std::int64_t index) const {
  const Impl& im = *impl_;
  if (im.outputs == 1 && im.labels.size() == 2 && index == 0) return im.labels[1];
  if (index >= 0 && static_cast<std::size_t>(index) < im.labels.size())
    return im.labels[static_cast<std::size_t>(index)];
  return "";
}

}  // namespace kiln::report
