// RunRecorder and StepSample: a training run written as a run folder (docs/run-format.md).
#include <sys/utsname.h>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "io/model_data.hpp"
#include "io/sha256.hpp"
#include "kiln/core/error.hpp"
#include "kiln/core/threads.hpp"
#include "kiln/version.hpp"
#include "report/record_impl.hpp"

namespace kiln::report {
namespace fs = std::filesystem;
using internal::Json;

namespace {

std::string os_description() {
  utsname u{};
  if (uname(&u) != 0) return "unknown";
  return std::string(u.sysname) + " " + u.release + " " + u.machine;
}

std::string compiler_description() {
#if defined(__clang__)
  return std::string("Clang ") + __clang_version__;
#elif defined(__GNUC__)
  return "GCC " + std::to_string(__GNUC__) + "." + std::to_string(__GNUC_MINOR__) + "." +
         std::to_string(__GNUC_PATCHLEVEL__);
#elif defined(_MSC_VER)
  return "MSVC " + std::to_string(_MSC_VER);
#else
  return "unknown";
#endif
}

// ||w - before|| / ||before|| in double over two float tensors of the same size (NaN when
// ||before|| is 0).
double update_ratio(const Tensor& w, const Tensor& before) {
  const float* x = w.data<float>();
  const float* y = before.data<float>();
  double diff = 0.0, base = 0.0;
#pragma omp simd reduction(+ : diff, base)
  for (std::int64_t i = 0; i < w.numel(); ++i) {
    const double d = static_cast<double>(x[i]) - static_cast<double>(y[i]);
    diff += d * d;
    base += static_cast<double>(y[i]) * static_cast<double>(y[i]);
  }
  return base > 0.0 ? std::sqrt(diff) / std::sqrt(base) : std::numeric_limits<double>::quiet_NaN();
}

TensorStats stats(const Tensor& t, std::int64_t bins) {
  if (t.dtype() == DType::f32 && t.is_contiguous())
    return internal::float_stats(t.data<float>(), t.numel(), bins);
  return tensor_stats(t, bins);
}

// The start of a layers.jsonl entry: {"layer":..,"kind":..,"tensor":..,"shape":[..]
void begin_entry(std::string& out, const std::string& layer, const char* kind,
                 const std::string& tensor, const Shape& shape) {
  out += "{\"layer\":";
  internal::append_string(out, layer);
  out += ",\"kind\":\"";
  out += kind;
  out += "\",\"tensor\":";
  internal::append_string(out, tensor);
  out += ",\"shape\":[";
  for (std::size_t i = 0; i < shape.rank(); ++i) {
    if (i) out += ',';
    out += std::to_string(shape[i]);
  }
  out += ']';
}

}  // namespace

struct StepSample::Impl {
  RecorderAccess::Impl* rec = nullptr;
  std::int64_t step = 0, epoch = 0;
  TrainStep* train_step = nullptr;
  bool stats = false;
  bool plan_was_complete = false;
  // Rendered entries (without the closing brace of weights, which get update_ratio).
  std::vector<std::pair<std::string, std::string>> activations;  // layer, entry
  std::vector<std::string> gradients, weights;                   // by parameter
  bool before = false;
};

// ---- RunRecorder ---------------------------------------------------------------------

double RunRecorder::Impl::elapsed() const {
  return std::chrono::duration<double>(std::chrono::system_clock::now() - started).count();
}

void RunRecorder::Impl::write_run_json() { internal::write_json_file(run_json_path, run); }

void RunRecorder::Impl::write_graph_json() {
  if (!graph) return;
  graph_written = true;
  // The outputs follow their graph if it was moved since set_model.
  const Graph& g = outputs.empty() ? *graph : outputs.front().graph();
  internal::write_json_file(options.dir + "/graph.json",
                            internal::graph_json(g, outputs, observer.plan));
}

void RunRecorder::Impl::plan_seen() {
  // The backend of the heavy kernels (matmul, conv) or else of the most steps.
  auto heavy_backend = [&]() -> std::string {
    for (const auto& [layer, p] : observer.plan)
      for (const std::string& k : p.kernels)
        if (k.find("matmul") != std::string::npos || k.find("gemm") != std::string::npos ||
            k.find("conv") != std::string::npos)
          return internal::kernel_backend(k);
    return {};
  };
  std::string backend = heavy_backend();
  std::int64_t most = -1;
  if (backend.empty())
    for (const auto& [b, count] : observer.backend_steps)
      if (count > most) most = count, backend = b;
  Json& env = run["environment"];
  env["backend"] = backend.empty() ? Json(nullptr) : Json(backend);
  env["kernel_steps"] = observer.backend_steps;
  write_run_json();
  write_graph_json();
}

void RunRecorder::Impl::cache_parameters(const TrainStep& step) {
  if (params_of == &step) return;
  params_of = &step;
  param_names.clear();
  param_layers.clear();
  for (const Value& p : step.parameter_values()) {
    param_names.push_back(p.name());
    param_layers.push_back(p.scope().empty() ? p.name() : p.scope());
  }
  weights_before.assign(param_names.size(), Tensor());
}

RunRecorder::RunRecorder(RecordOptions options) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  if (options.dir.empty()) throw ValueError("RunRecorder: RecordOptions::dir is empty");
  if (options.sample_every < 0 || options.log_every < 0 || options.histogram_bins < 1)
    throw ValueError(
        "RunRecorder: sample_every and log_every must be >= 0 and histogram_bins "
        ">= 1");
  while (options.dir.size() > 1 && options.dir.back() == '/') options.dir.pop_back();
  m.options = std::move(options);
  const std::string& dir = m.options.dir;
  m.run_json_path = dir + "/run.json";
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir))
    throw IoError(dir + ": cannot create the run folder" + (ec ? ": " + ec.message() : ""));
  const bool exists = fs::exists(m.run_json_path);
  if (exists && !m.options.resume)
    throw IoError(dir + ": already holds a run (run.json); choose another folder or resume");
  m.started = std::chrono::system_clock::now();
  if (exists) {
    m.run = internal::read_json_file(m.run_json_path);
    if (!m.run.is_object() || !m.run.contains("started"))
      throw FormatError(m.run_json_path + ": not a run.json (no \"started\")");
    // Times continue from the first start.
    std::tm tm{};
    const std::string s = m.run["started"].is_string() ? m.run["started"].get<std::string>() : "";
    if (strptime(s.c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm) != nullptr)
      m.started = std::chrono::system_clock::from_time_t(timegm(&tm));
    m.run["status"] = "running";
    m.run["finished"] = nullptr;
    m.run["error"] = nullptr;
    m.run["resumed"] = internal::utc_now();
  } else {
    m.run["format"] = "kiln.run/1";
    m.run["name"] = m.options.name.empty() ? fs::path(dir).filename().string() : m.options.name;
    m.run["status"] = "running";
    m.run["started"] = internal::utc_now();
    m.run["finished"] = nullptr;
    m.run["error"] = nullptr;
    m.run["config"] = Json::object();
    m.run["environment"] = {{"kiln_version", version_string}, {"backend", nullptr},
                            {"threads", num_threads()},       {"seed", nullptr},
                            {"os", os_description()},         {"compiler", compiler_description()},
                            {"data_files", Json::array()}};
    m.run["sample_every"] = m.options.sample_every;
    m.run["log_every"] = m.options.log_every;
    m.run["final"] = Json::object();
  }
  if (!m.options.name.empty()) m.run["name"] = m.options.name;
  m.run["environment"]["threads"] = num_threads();
  // A new run starts its JSON Lines empty (a folder without run.json holds no run).
  m.metrics.open(dir + "/metrics.jsonl", !exists);
  m.layers.open(dir + "/layers.jsonl", !exists);
  m.write_run_json();
}

RunRecorder::~RunRecorder() {
  if (!impl_ || impl_->finished) return;
  try {
    finish("failed", {}, "the recorder was destroyed before finish");
  } catch (...) {  // a destructor must not throw; the run stays "running"
  }
}

const std::string& RunRecorder::dir() const { return impl_->options.dir; }
const RecordOptions& RunRecorder::options() const { return impl_->options; }

void RunRecorder::set_config(const std::string& json_object) {
  Json j;
  try {
    j = Json::parse(json_object);
  } catch (const nlohmann::json::exception& e) {
    throw ValueError(std::string("RunRecorder::set_config: not valid JSON: ") + e.what());
  }
  if (!j.is_object())
    throw ValueError("RunRecorder::set_config: a JSON object is needed, got " + j.dump());
  impl_->run["config"] = std::move(j);
  impl_->write_run_json();
}

void RunRecorder::set_seed(std::uint64_t seed) {
  impl_->run["environment"]["seed"] = seed;
  impl_->write_run_json();
}

void RunRecorder::add_data_file(const std::string& path) {
  const std::vector<std::uint8_t> bytes = kiln::internal::read_file(path);
  Json f{{"path", path},
         {"bytes", bytes.size()},
         {"sha256", kiln::internal::to_hex(kiln::internal::sha256(bytes))}};
  Json& files = impl_->run["environment"]["data_files"];
  for (Json& existing : files)
    if (existing["path"] == path) {
      existing = std::move(f);
      impl_->write_run_json();
      return;
    }
  files.push_back(std::move(f));
  impl_->write_run_json();
}

void RunRecorder::set_model(const Graph& graph, const std::vector<Value>& outputs,
                            Executable* plan_source) {
  Impl& m = *impl_;
  m.graph = &graph;
  m.outputs = outputs;
  m.want_plan = plan_source != nullptr;
  m.observer.plan.clear();
  m.observer.backend_steps.clear();
  m.observer.plan_complete = false;
  // With a plan source graph.json is written once, when the first observed run has shown
  // the plan (StepSample::before_update), or by flush_graph after a failed first step.
  m.graph_written = false;
  if (!m.want_plan) m.write_graph_json();
}

void RunRecorder::set_evaluation_json(const std::string& json_object) {
  Json j;
  try {
    j = Json::parse(json_object);
  } catch (const nlohmann::json::exception& e) {
    throw ValueError(std::string("RunRecorder::set_evaluation_json: not valid JSON: ") + e.what());
  }
  if (!j.is_object()) throw ValueError("RunRecorder::set_evaluation_json: not a JSON object");
  internal::write_json_file(impl_->options.dir + "/evaluation.json", j);
}

void RunRecorder::set_explanations_json(const std::string& json_object) {
  Json j;
  try {
    j = Json::parse(json_object);
  } catch (const nlohmann::json::exception& e) {
    throw ValueError(std::string("RunRecorder::set_explanations_json: not valid JSON: ") +
                     e.what());
  }
  if (!j.is_object()) throw ValueError("RunRecorder::set_explanations_json: not a JSON object");
  internal::write_json_file(impl_->options.dir + "/explanations.json", j);
}

namespace {
void metrics_line(std::string& line, const char* kind, std::int64_t step, std::int64_t epoch,
                  double time, const Logs& values) {
  line.clear();
  line += "{\"kind\":\"";
  line += kind;
  line += "\",\"step\":";
  line += std::to_string(step);
  line += ",\"epoch\":";
  line += std::to_string(epoch);
  line += ",\"time\":";
  internal::append_number(line, time);
  for (const auto& [k, v] : values) {
    if (k == "kind" || k == "step" || k == "epoch" || k == "time") continue;
    line += ',';
    internal::append_string(line, k);
    line += ':';
    internal::append_number(line, v);
  }
  line += '}';
}
}  // namespace

void RunRecorder::log_step(std::int64_t step, std::int64_t epoch, const Logs& values) {
  Impl& m = *impl_;
  if (m.options.log_every <= 0 || step % m.options.log_every != 0) return;
  metrics_line(m.line, "step", step, epoch, m.elapsed(), values);
  m.metrics.append(m.line);
}

void RunRecorder::log_epoch(std::int64_t epoch, std::int64_t steps, const Logs& values) {
  Impl& m = *impl_;
  metrics_line(m.line, "epoch", steps, epoch, m.elapsed(), values);
  m.metrics.append(m.line);
}

bool RunRecorder::sampled(std::int64_t step) const {
  const std::int64_t n = impl_->options.sample_every;
  return n > 0 && step % n == 0;
}

void RunRecorder::save_model(std::span<const std::uint8_t> model_file) {
  kiln::internal::write_file_atomically(impl_->options.dir + "/model.kiln", model_file);
}

void RunRecorder::finish(const std::string& status, const Logs& final_values,
                         const std::string& error) {
  if (status != "completed" && status != "stopped" && status != "failed")
    throw ValueError("RunRecorder::finish: status must be completed, stopped or failed, got '" +
                     status + "'");
  Impl& m = *impl_;
  if (m.graph && !m.graph_written) m.write_graph_json();
  m.run["status"] = status;
  m.run["finished"] = internal::utc_now();
  m.run["error"] = error.empty() ? Json(nullptr) : Json(error);
  for (const auto& [k, v] : final_values) m.run["final"][k] = internal::number(v);
  m.finished = true;
  m.write_run_json();
}

bool RunRecorder::finished() const { return impl_->finished; }

StepSample RunRecorder::sample(std::int64_t step, std::int64_t epoch, TrainStep& train_step) {
  Impl& m = *impl_;
  const bool stats = sampled(step);
  const bool plan = m.graph != nullptr && m.want_plan && !m.observer.plan_complete;
  if (!stats && !plan) return StepSample(nullptr);
  auto s = std::make_unique<StepSample::Impl>();
  s->rec = &m;
  s->step = step;
  s->epoch = epoch;
  s->train_step = &train_step;
  s->stats = stats;
  m.cache_parameters(train_step);
  const Graph* g = train_step.parameter_values().empty()
                       ? m.graph
                       : &train_step.parameter_values().front().graph();
  m.observer.begin(g, stats && m.options.activations, plan);
  return StepSample(std::move(s));
}

// ---- StepSample ----------------------------------------------------------------------

StepSample::StepSample(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {
  if (impl_) impl_->plan_was_complete = impl_->rec->observer.plan_complete;
}
StepSample::StepSample(StepSample&&) noexcept = default;
StepSample& StepSample::operator=(StepSample&&) noexcept = default;
StepSample::~StepSample() = default;

bool StepSample::active() const { return impl_ != nullptr && impl_->stats; }

RunObserver* StepSample::observer() { return impl_ ? &impl_->rec->observer : nullptr; }

void StepSample::before_update() {
  if (!impl_ || impl_->before) return;
  Impl& s = *impl_;
  RecorderAccess::Impl& m = *s.rec;
  s.before = true;
  if (!s.plan_was_complete && m.observer.plan_complete) m.plan_seen();
  if (!s.stats) return;
  const std::int64_t bins = m.options.histogram_bins;
  if (m.options.activations)
    for (const internal::ActivationSlot& a : m.observer.slots) {
      if (!a.seen) continue;
      std::string e;
      begin_entry(e, a.scope, "activation", a.scope, a.buffer.shape());
      e += ",\"op\":";
      internal::append_string(e, a.op);
      internal::append_stats(e, stats(a.buffer, bins));
      e += '}';
      s.activations.emplace_back(a.scope, std::move(e));
    }
  const auto grads = s.train_step->gradients();
  s.gradients.assign(m.param_names.size(), std::string());
  if (m.options.gradients)
    for (std::size_t i = 0; i < grads.size() && i < m.param_names.size(); ++i) {
      std::string& e = s.gradients[i];
      begin_entry(e, m.param_layers[i], "gradient", m.param_names[i], grads[i].shape());
      internal::append_stats(e, stats(grads[i], bins));
      e += '}';
    }
  if (m.options.weights) {
    const auto& params = s.train_step->parameter_values();
    for (std::size_t i = 0; i < params.size(); ++i) {
      const Tensor& w = params[i].graph().tensor(params[i]);
      Tensor& copy = m.weights_before[i];
      if (copy.defined() && copy.shape() == w.shape() && copy.dtype() == w.dtype())
        copy.copy_from(w);
      else
        copy = w.clone();
    }
  }
}

void StepSample::after_update() {
  if (!impl_) return;
  if (!impl_->before) before_update();
  Impl& s = *impl_;
  RecorderAccess::Impl& m = *s.rec;
  if (!s.stats) return;
  const std::int64_t bins = m.options.histogram_bins;
  const auto& params = s.train_step->parameter_values();
  s.weights.assign(params.size(), std::string());
  if (m.options.weights)
    for (std::size_t i = 0; i < params.size(); ++i) {
      const Tensor& w = params[i].graph().tensor(params[i]);
      std::string& e = s.weights[i];
      begin_entry(e, m.param_layers[i], "weight", m.param_names[i], w.shape());
      internal::append_stats(e, stats(w, bins));
      const Tensor& before = m.weights_before[i];
      double ratio = std::numeric_limits<double>::quiet_NaN();
      if (before.defined() && w.dtype() == DType::f32 && w.is_contiguous() &&
          before.numel() == w.numel())
        ratio = update_ratio(w, before);
      e += ",\"update_ratio\":";
      internal::append_number(e, ratio);
      e += '}';
    }
  // One line: per layer its activation, then each parameter's gradient and weight.
  std::vector<std::string> order;
  for (const auto& a : s.activations) order.push_back(a.first);
  for (const std::string& l : m.param_layers)
    if (std::find(order.begin(), order.end(), l) == order.end()) order.push_back(l);
  std::string& line = m.layers_line;
  line.clear();
  line += "{\"step\":";
  line += std::to_string(s.step);
  line += ",\"epoch\":";
  line += std::to_string(s.epoch);
  line += ",\"layers\":[";
  bool first = true;
  auto put = [&](const std::string& e) {
    if (e.empty()) return;
    if (!first) line += ',';
    first = false;
    line += e;
  };
  for (const std::string& l : order) {
    for (const auto& a : s.activations)
      if (a.first == l) put(a.second);
    for (std::size_t i = 0; i < m.param_layers.size(); ++i) {
      if (m.param_layers[i] != l) continue;
      if (i < s.gradients.size()) put(s.gradients[i]);
      if (i < s.weights.size()) put(s.weights[i]);
    }
  }
  line += "]}";
  m.layers.append(line);
  s.stats = false;  // one line per sample
}

}  // namespace kiln::report
