// The C API (kiln.h) over kiln::infer::Model and kiln::Tensor. Every entry point runs its
// body inside guarded(), which catches everything: bad arguments map to
// KILN_ERROR_INVALID_ARGUMENT, kiln::Error subclasses to their status codes, std::bad_alloc
// to KILN_ERROR_OUT_OF_MEMORY and anything else to KILN_ERROR_INTERNAL, with the message
// ("<function>: <what>") kept per thread for kiln_last_error_message().
#include "kiln.h"

#include <cstring>
#include <exception>
#include <limits>
#include <mutex>
#include <new>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "kiln/core/error.hpp"
#include "kiln/core/tensor.hpp"
#include "kiln/infer/model.hpp"
#include "kiln/version.hpp"

// KILN_INFER_MONITOR=0 (CMake option KILN_INFER_MONITOR=OFF): kiln_infer is built without
// the drift monitor, and kiln_monitor_create says so (see the end of this file).
#ifndef KILN_INFER_MONITOR
#define KILN_INFER_MONITOR 1
#endif
#include "kiln/monitor/monitor.hpp"

struct kiln_model {
  kiln::infer::Model model;
};

#if KILN_INFER_MONITOR
struct kiln_monitor {
  kiln::monitor::Monitor monitor;
  std::mutex mutex;  // guards report
  kiln::monitor::DriftReport report;
  bool has_report = false;
};
#else
struct kiln_monitor {};
#endif

struct kiln_tensor {
  kiln::Tensor tensor;  // always contiguous
};

namespace {

thread_local std::string last_error;

// A bad argument to a C function (NULL pointer, index out of range, wrong count).
class ArgumentError : public kiln::Error {
 public:
  using kiln::Error::Error;
};

kiln_status fail(kiln_status status, const char* function, const char* what) noexcept {
  try {
    last_error = function;
    last_error += ": ";
    last_error += what;
  } catch (...) {
    last_error.clear();
  }
  return status;
}

// Runs `body` (returning kiln_status), turning every exception into a status + message.
template <class Body>
kiln_status guarded(const char* function, Body&& body) noexcept {
  try {
    return body();
  } catch (const ArgumentError& e) {
    return fail(KILN_ERROR_INVALID_ARGUMENT, function, e.what());
  } catch (const kiln::FormatError& e) {
    return fail(KILN_ERROR_FORMAT, function, e.what());
  } catch (const kiln::IoError& e) {
    return fail(KILN_ERROR_IO, function, e.what());
  } catch (const kiln::ShapeError& e) {
    return fail(KILN_ERROR_SHAPE, function, e.what());
  } catch (const kiln::DTypeError& e) {
    return fail(KILN_ERROR_DTYPE, function, e.what());
  } catch (const kiln::NameError& e) {
    return fail(KILN_ERROR_NAME, function, e.what());
  } catch (const kiln::ValueError& e) {
    return fail(KILN_ERROR_VALUE, function, e.what());
  } catch (const kiln::OutOfMemoryError& e) {
    return fail(KILN_ERROR_OUT_OF_MEMORY, function, e.what());
  } catch (const kiln::Error& e) {
    return fail(KILN_ERROR_INTERNAL, function, e.what());
  } catch (const std::bad_alloc&) {
    return fail(KILN_ERROR_OUT_OF_MEMORY, function, "out of memory");
  } catch (const std::exception& e) {
    return fail(KILN_ERROR_INTERNAL, function, e.what());
  } catch (...) {
    return fail(KILN_ERROR_INTERNAL, function, "unknown exception");
  }
}

// Concatenates with += (GCC 12 warns falsely on some "literal" + std::string chains).
template <class... Parts>
std::string cat(const Parts&... parts) {
  std::string s;
  (s += ... += parts);
  return s;
}

// Throws ArgumentError("<name> is NULL") when `p` is null.
void require(const void* p, const char* name) {
  if (p == nullptr) throw ArgumentError(cat(name, " is NULL"));
}

bool valid_dtype(int dtype) { return dtype >= KILN_F32 && dtype <= KILN_F64; }

std::string dims_str(std::span<const std::int64_t> dims) {
  std::string s = "[";
  for (std::size_t i = 0; i < dims.size(); ++i) {
    if (i > 0) s += ", ";
    s += dims[i] == KILN_BATCH ? std::string("batch") : std::to_string(dims[i]);
  }
  s += "]";
  return s;
}

enum class Side { input, output };

// The signature at `index` after checking model and index.
const kiln::TensorSpec& spec_at(const kiln_model* model, Side side, std::size_t index) {
  require(model, "model");
  const auto& list = side == Side::input ? model->model.inputs() : model->model.outputs();
  if (index >= list.size()) {
    std::string m = cat("index ", std::to_string(index));
    m += " is out of range: the model has ";
    m += std::to_string(list.size());
    m += side == Side::input ? " input(s)" : " output(s)";
    throw ArgumentError(m);
  }
  return list[index];
}

kiln_status count(const char* fn, const kiln_model* model, Side side, size_t* out) {
  return guarded(fn, [&] {
    require(model, "model");
    require(out, "out_count");
    *out = (side == Side::input ? model->model.inputs() : model->model.outputs()).size();
    return KILN_OK;
  });
}

kiln_status name(const char* fn, const kiln_model* model, Side side, size_t index,
                 const char** out) {
  return guarded(fn, [&] {
    require(out, "out_name");
    *out = spec_at(model, side, index).name.c_str();
    return KILN_OK;
  });
}

kiln_status dtype(const char* fn, const kiln_model* model, Side side, size_t index,
                  kiln_dtype* out) {
  return guarded(fn, [&] {
    require(out, "out_dtype");
    *out = static_cast<kiln_dtype>(spec_at(model, side, index).dtype);
    return KILN_OK;
  });
}

kiln_status shape(const char* fn, const kiln_model* model, Side side, size_t index,
                  const int64_t** out_dims, size_t* out_rank) {
  return guarded(fn, [&] {
    require(out_dims, "out_dims");
    require(out_rank, "out_rank");
    const auto& spec = spec_at(model, side, index);
    *out_dims = spec.shape.dims().data();
    *out_rank = spec.shape.rank();
    return KILN_OK;
  });
}

// The named inputs as Feeds; infer::Model::run checks them (names, dtypes, shapes).
kiln::Feeds make_feeds(const char* const* input_names, const kiln_tensor* const* inputs,
                       size_t num_inputs) {
  kiln::Feeds feeds;
  feeds.reserve(num_inputs);
  for (std::size_t i = 0; i < num_inputs; ++i) {
    const std::string index = cat("[", std::to_string(i), "]");
    require(input_names[i], cat("input_names", index).c_str());
    require(inputs[i], cat("inputs", index).c_str());
    feeds.emplace_back(input_names[i], inputs[i]->tensor);
  }
  return feeds;
}

// A run's num_outputs must be the model's output count.
void check_num_outputs(const kiln::infer::Model& model, std::size_t num_outputs) {
  if (num_outputs != model.outputs().size())
    throw ArgumentError(cat("num_outputs is ", std::to_string(num_outputs), " but the model has ",
                            std::to_string(model.outputs().size()), " output(s)"));
}

// Hands a run's results out as new tensor handles in outputs[0..]: all of them, or none
// when one cannot be made.
void hand_out(std::vector<kiln::Tensor>& results, kiln_tensor** outputs) {
  std::vector<kiln_tensor*> handles;
  handles.reserve(results.size());
  try {
    for (auto& r : results) handles.push_back(new kiln_tensor{r.contiguous()});
  } catch (...) {
    for (auto* h : handles) delete h;
    throw;
  }
  for (std::size_t i = 0; i < handles.size(); ++i) outputs[i] = handles[i];
}

// A run's checked arguments: a share of the model (kiln_model_free on another thread from
// here on leaves this run its model) and the feeds.
struct CheckedRun {
  kiln::infer::Model model;
  kiln::Feeds feeds;
};

CheckedRun check_run(const kiln_model* model, const char* const* input_names,
                     const kiln_tensor* const* inputs, size_t num_inputs, const void* outputs,
                     size_t num_outputs) {
  require(model, "model");
  if (num_inputs > 0) {
    require(input_names, "input_names");
    require(inputs, "inputs");
  }
  require(outputs, "outputs");
  CheckedRun r{model->model, make_feeds(input_names, inputs, num_inputs)};
  check_num_outputs(r.model, num_outputs);
  return r;
}

// What kiln_model_run and kiln_monitor_run share: checks the arguments, runs the C inputs
// through `run` (Model::run, or Monitor::run) and hands the outputs out.
template <class Run>
void run_model(const kiln_model* model, const char* const* input_names,
               const kiln_tensor* const* inputs, size_t num_inputs, kiln_tensor** outputs,
               size_t num_outputs, Run&& run) {
  const CheckedRun r = check_run(model, input_names, inputs, num_inputs, outputs, num_outputs);
  std::vector<kiln::Tensor> results = run(r.model, r.feeds);
  hand_out(results, outputs);
}

// A tensor's dtype, shape and size from the C arguments, checked: a known dtype, dims
// (all >= 0) whose element count fits, and (with `sized`) nbytes equal to that size.
struct TensorLayout {
  kiln::DType dtype;
  kiln::Shape shape;
  std::size_t nbytes;
};

TensorLayout tensor_layout(kiln_dtype dtype, const int64_t* dims, size_t rank, bool sized,
                           size_t nbytes) {
  if (rank > 0) require(dims, "dims");
  if (!valid_dtype(dtype))
    throw kiln::DTypeError(cat("unknown dtype ", std::to_string(static_cast<int>(dtype))));
  std::span<const std::int64_t> d(dims, rank);
  const auto kdtype = static_cast<kiln::DType>(dtype);
  const std::size_t elem = kiln::size_of(kdtype);
  std::size_t numel = 1;
  for (auto v : d) {
    if (v < 0) throw kiln::ShapeError(cat("dims ", dims_str(d), " contain a negative size"));
    const auto uv = static_cast<std::size_t>(v);
    if (uv != 0 && numel > std::numeric_limits<std::size_t>::max() / elem / uv)
      throw kiln::ShapeError(cat("dims ", dims_str(d), " hold too many elements"));
    numel *= uv;
  }
  if (sized && nbytes != numel * elem) {
    std::string m = std::to_string(nbytes);
    m += " bytes given, but dims ";
    m += dims_str(d);
    m += " of ";
    m += kiln::to_string(kdtype);
    m += " need ";
    m += std::to_string(numel * elem);
    throw kiln::ShapeError(m);
  }
  return {kdtype, kiln::Shape(std::vector<std::int64_t>(d.begin(), d.end())), numel * elem};
}

kiln_status load(const char* fn, const char* path, const char* backend, kiln_model** out,
                 uint32_t flags = 0) {
  if (out != nullptr) *out = nullptr;
  return guarded(fn, [&] {
    require(out, "out_model");
    require(path, "path");
    if ((flags & ~KILN_LOAD_APPLY_PREPROCESSING) != 0)
      throw ArgumentError(cat("unknown load flags ", std::to_string(flags)));
    kiln::infer::LoadOptions options;
    if (backend != nullptr) options.backend = backend;
    options.apply_preprocessing = (flags & KILN_LOAD_APPLY_PREPROCESSING) != 0;
    *out = new kiln_model{kiln::infer::Model::load(std::string(path), options)};
    return KILN_OK;
  });
}

}  // namespace

extern "C" {

const char* kiln_last_error_message(void) { return last_error.c_str(); }

const char* kiln_status_name(kiln_status status) {
  switch (status) {
    case KILN_OK:
      return "KILN_OK";
    case KILN_ERROR_INVALID_ARGUMENT:
      return "KILN_ERROR_INVALID_ARGUMENT";
    case KILN_ERROR_IO:
      return "KILN_ERROR_IO";
    case KILN_ERROR_FORMAT:
      return "KILN_ERROR_FORMAT";
    case KILN_ERROR_SHAPE:
      return "KILN_ERROR_SHAPE";
    case KILN_ERROR_DTYPE:
      return "KILN_ERROR_DTYPE";
    case KILN_ERROR_NAME:
      return "KILN_ERROR_NAME";
    case KILN_ERROR_VALUE:
      return "KILN_ERROR_VALUE";
    case KILN_ERROR_OUT_OF_MEMORY:
      return "KILN_ERROR_OUT_OF_MEMORY";
    case KILN_ERROR_INTERNAL:
      return "KILN_ERROR_INTERNAL";
  }
  return "KILN_ERROR_UNKNOWN";
}

const char* kiln_dtype_name(kiln_dtype dtype) {
  if (!valid_dtype(dtype)) return "?";
  return kiln::to_string(static_cast<kiln::DType>(dtype)).data();
}

size_t kiln_dtype_size(kiln_dtype dtype) {
  return valid_dtype(dtype) ? kiln::size_of(static_cast<kiln::DType>(dtype)) : 0;
}

const char* kiln_version(void) { return kiln::version_string; }

uint32_t kiln_api_version(void) { return KILN_C_API_VERSION; }

kiln_status kiln_model_load(const char* path, kiln_model** out_model) {
  return load("kiln_model_load", path, nullptr, out_model);
}

kiln_status kiln_model_load_with_backend(const char* path, const char* backend,
                                         kiln_model** out_model) {
  return load("kiln_model_load_with_backend", path, backend, out_model);
}

kiln_status kiln_model_load_with_flags(const char* path, const char* backend, uint32_t flags,
                                       kiln_model** out_model) {
  return load("kiln_model_load_with_flags", path, backend, out_model, flags);
}

kiln_status kiln_model_load_from_memory(const void* data, size_t size, kiln_model** out_model) {
  if (out_model != nullptr) *out_model = nullptr;
  return guarded("kiln_model_load_from_memory", [&] {
    require(out_model, "out_model");
    require(data, "data");
    std::span<const std::uint8_t> bytes(static_cast<const std::uint8_t*>(data), size);
    *out_model = new kiln_model{kiln::infer::Model::load(bytes, "<memory>")};
    return KILN_OK;
  });
}

void kiln_model_free(kiln_model* model) { delete model; }

kiln_status kiln_model_num_inputs(const kiln_model* model, size_t* out_count) {
  return count("kiln_model_num_inputs", model, Side::input, out_count);
}
kiln_status kiln_model_num_outputs(const kiln_model* model, size_t* out_count) {
  return count("kiln_model_num_outputs", model, Side::output, out_count);
}
kiln_status kiln_model_input_name(const kiln_model* model, size_t index, const char** out_name) {
  return name("kiln_model_input_name", model, Side::input, index, out_name);
}
kiln_status kiln_model_output_name(const kiln_model* model, size_t index, const char** out_name) {
  return name("kiln_model_output_name", model, Side::output, index, out_name);
}
kiln_status kiln_model_input_dtype(const kiln_model* model, size_t index, kiln_dtype* out_dtype) {
  return dtype("kiln_model_input_dtype", model, Side::input, index, out_dtype);
}
kiln_status kiln_model_output_dtype(const kiln_model* model, size_t index, kiln_dtype* out_dtype) {
  return dtype("kiln_model_output_dtype", model, Side::output, index, out_dtype);
}
kiln_status kiln_model_input_shape(const kiln_model* model, size_t index, const int64_t** out_dims,
                                   size_t* out_rank) {
  return shape("kiln_model_input_shape", model, Side::input, index, out_dims, out_rank);
}
kiln_status kiln_model_output_shape(const kiln_model* model, size_t index, const int64_t** out_dims,
                                    size_t* out_rank) {
  return shape("kiln_model_output_shape", model, Side::output, index, out_dims, out_rank);
}

kiln_status kiln_model_num_labels(const kiln_model* model, size_t* out_count) {
  return guarded("kiln_model_num_labels", [&] {
    require(model, "model");
    require(out_count, "out_count");
    *out_count = model->model.metadata().labels.size();
    return KILN_OK;
  });
}

kiln_status kiln_model_label(const kiln_model* model, size_t index, const char** out_label) {
  return guarded("kiln_model_label", [&] {
    require(model, "model");
    require(out_label, "out_label");
    const auto& labels = model->model.metadata().labels;
    if (index >= labels.size()) {
      std::string m = cat("index ", std::to_string(index));
      m += " is out of range: the model has ";
      m += std::to_string(labels.size());
      m += " label(s)";
      throw ArgumentError(m);
    }
    *out_label = labels[index].c_str();
    return KILN_OK;
  });
}

kiln_status kiln_model_name(const kiln_model* model, const char** out_name) {
  return guarded("kiln_model_name", [&] {
    require(model, "model");
    require(out_name, "out_name");
    *out_name = model->model.metadata().name.c_str();
    return KILN_OK;
  });
}

kiln_status kiln_model_content_hash(const kiln_model* model, const char** out_hash) {
  return guarded("kiln_model_content_hash", [&] {
    require(model, "model");
    require(out_hash, "out_hash");
    *out_hash = model->model.content_hash().c_str();
    return KILN_OK;
  });
}

kiln_status kiln_model_version(const kiln_model* model, const char** out_version) {
  return guarded("kiln_model_version", [&] {
    require(model, "model");
    require(out_version, "out_version");
    *out_version = model->model.metadata().version.c_str();
    return KILN_OK;
  });
}

kiln_status kiln_model_input_normalization(const kiln_model* model, size_t index,
                                           const float** out_mean, const float** out_stddev,
                                           size_t* out_count) {
  return guarded("kiln_model_input_normalization", [&] {
    require(out_mean, "out_mean");
    require(out_stddev, "out_stddev");
    require(out_count, "out_count");
    const auto& spec = spec_at(model, Side::input, index);
    *out_mean = nullptr;
    *out_stddev = nullptr;
    *out_count = 0;
    for (const auto& n : model->model.metadata().preprocessing) {
      if (n.input != spec.name || n.mean.size() != n.stddev.size()) continue;
      *out_mean = n.mean.data();
      *out_stddev = n.stddev.data();
      *out_count = n.mean.size();
      break;
    }
    return KILN_OK;
  });
}

kiln_status kiln_model_run(const kiln_model* model, const char* const* input_names,
                           const kiln_tensor* const* inputs, size_t num_inputs,
                           kiln_tensor** outputs, size_t num_outputs) {
  return guarded("kiln_model_run", [&] {
    run_model(model, input_names, inputs, num_inputs, outputs, num_outputs,
              [](const kiln::infer::Model& m, const kiln::Feeds& feeds) { return m.run(feeds); });
    return KILN_OK;
  });
}

kiln_status kiln_model_run_into(const kiln_model* model, const char* const* input_names,
                                const kiln_tensor* const* inputs, size_t num_inputs,
                                kiln_tensor* const* outputs, size_t num_outputs) {
  return guarded("kiln_model_run_into", [&] {
    const CheckedRun r = check_run(model, input_names, inputs, num_inputs, outputs, num_outputs);
    std::vector<kiln::Tensor> into;
    into.reserve(num_outputs);
    for (size_t i = 0; i < num_outputs; ++i) {
      if (outputs[i] == nullptr)
        throw ArgumentError(cat("outputs[", std::to_string(i), "] is NULL"));
      into.push_back(outputs[i]->tensor);
    }
    r.model.run_into(r.feeds, into);
    return KILN_OK;
  });
}

kiln_status kiln_tensor_create(kiln_dtype dtype, const int64_t* dims, size_t rank, const void* data,
                               size_t nbytes, kiln_tensor** out_tensor) {
  if (out_tensor != nullptr) *out_tensor = nullptr;
  return guarded("kiln_tensor_create", [&] {
    require(out_tensor, "out_tensor");
    const TensorLayout l = tensor_layout(dtype, dims, rank, data != nullptr, nbytes);
    kiln::Tensor t = kiln::Tensor::zeros(l.shape, l.dtype);
    if (data != nullptr && nbytes > 0) std::memcpy(t.raw(), data, nbytes);
    *out_tensor = new kiln_tensor{std::move(t)};
    return KILN_OK;
  });
}

kiln_status kiln_tensor_wrap(kiln_dtype dtype, const int64_t* dims, size_t rank, void* data,
                             size_t nbytes, kiln_tensor** out_tensor) {
  if (out_tensor != nullptr) *out_tensor = nullptr;
  return guarded("kiln_tensor_wrap", [&] {
    require(out_tensor, "out_tensor");
    const TensorLayout l = tensor_layout(dtype, dims, rank, true, nbytes);
    if (l.nbytes > 0) require(data, "data");
    *out_tensor = new kiln_tensor{kiln::Tensor::borrow(data, l.shape, l.dtype)};
    return KILN_OK;
  });
}

void kiln_tensor_free(kiln_tensor* tensor) { delete tensor; }

kiln_status kiln_tensor_dtype(const kiln_tensor* tensor, kiln_dtype* out_dtype) {
  return guarded("kiln_tensor_dtype", [&] {
    require(tensor, "tensor");
    require(out_dtype, "out_dtype");
    *out_dtype = static_cast<kiln_dtype>(tensor->tensor.dtype());
    return KILN_OK;
  });
}

kiln_status kiln_tensor_shape(const kiln_tensor* tensor, const int64_t** out_dims,
                              size_t* out_rank) {
  return guarded("kiln_tensor_shape", [&] {
    require(tensor, "tensor");
    require(out_dims, "out_dims");
    require(out_rank, "out_rank");
    *out_dims = tensor->tensor.shape().dims().data();
    *out_rank = tensor->tensor.rank();
    return KILN_OK;
  });
}

kiln_status kiln_tensor_numel(const kiln_tensor* tensor, size_t* out_numel) {
  return guarded("kiln_tensor_numel", [&] {
    require(tensor, "tensor");
    require(out_numel, "out_numel");
    *out_numel = static_cast<size_t>(tensor->tensor.numel());
    return KILN_OK;
  });
}

kiln_status kiln_tensor_nbytes(const kiln_tensor* tensor, size_t* out_nbytes) {
  return guarded("kiln_tensor_nbytes", [&] {
    require(tensor, "tensor");
    require(out_nbytes, "out_nbytes");
    *out_nbytes = tensor->tensor.nbytes();
    return KILN_OK;
  });
}

kiln_status kiln_tensor_data(const kiln_tensor* tensor, const void** out_data) {
  return guarded("kiln_tensor_data", [&] {
    require(tensor, "tensor");
    require(out_data, "out_data");
    *out_data = tensor->tensor.raw();
    return KILN_OK;
  });
}

kiln_status kiln_tensor_copy_to(const kiln_tensor* tensor, void* dst, size_t nbytes) {
  return guarded("kiln_tensor_copy_to", [&] {
    require(tensor, "tensor");
    require(dst, "dst");
    const std::size_t have = tensor->tensor.nbytes();
    if (nbytes != have) {
      std::string m = cat("dst holds ", std::to_string(nbytes));
      m += " bytes, but the tensor ";
      m += dims_str(tensor->tensor.shape().dims());
      m += " of ";
      m += kiln::to_string(tensor->tensor.dtype());
      m += " has ";
      m += std::to_string(have);
      throw kiln::ShapeError(m);
    }
    if (have > 0) std::memcpy(dst, tensor->tensor.raw(), have);
    return KILN_OK;
  });
}

}  // extern "C"

// ---- Drift monitor ---------------------------------------------------------------------

// The options' defaults come from the header's MonitorOptions, with or without the monitor.
extern "C" void kiln_monitor_options_default(kiln_monitor_options* out) {
  if (out == nullptr) return;
  const kiln::monitor::MonitorOptions d;
  out->alpha = d.alpha;
  out->psi_moderate = d.psi_moderate;
  out->psi_significant = d.psi_significant;
  out->min_rows = d.min_rows;
  out->sample_every = d.sample_every;
  out->inputs_preprocessed = d.inputs_preprocessed ? 1 : 0;
  out->decay_tolerance = d.decay_tolerance;
  out->decay_alpha = d.decay_alpha;
  out->decay_min_labels = d.decay_min_labels;
}

#if KILN_INFER_MONITOR

namespace {

kiln::monitor::MonitorOptions monitor_options(const kiln_monitor_options* o) {
  kiln::monitor::MonitorOptions m;
  if (o == nullptr) return m;
  m.alpha = o->alpha;
  m.psi_moderate = o->psi_moderate;
  m.psi_significant = o->psi_significant;
  m.min_rows = o->min_rows;
  m.sample_every = o->sample_every;
  m.inputs_preprocessed = o->inputs_preprocessed != 0;
  m.decay_tolerance = o->decay_tolerance;
  m.decay_alpha = o->decay_alpha;
  m.decay_min_labels = o->decay_min_labels;
  return m;
}

// The monitor's last report, made now if there is none; call with the mutex held.
const kiln::monitor::DriftReport& current_report(kiln_monitor* m) {
  if (!m->has_report) {
    m->report = m->monitor.report();
    m->has_report = true;
  }
  return m->report;
}

void fill_feature(const kiln::monitor::FeatureDrift& f, kiln_feature_drift* out) {
  out->name = f.name.c_str();
  out->test = f.test;
  out->rows = f.rows;
  out->statistic = f.statistic;
  out->p_value = f.p_value;
  out->psi = f.psi;
  out->psi_level = static_cast<int>(f.psi_level);
  out->drifted = f.drifted ? 1 : 0;
  out->nonfinite = f.nonfinite;
  out->below_min = f.below_min;
  out->above_max = f.above_max;
  out->unseen_category = f.unseen_category;
  out->live_mean = f.live_mean;
}

// kiln_monitor_observe_labels (T = int64_t, class indices) and
// kiln_monitor_observe_label_values (T = double, regression targets).
template <class T>
kiln_status observe_labels(const char* function, kiln_monitor* monitor, const T* predicted,
                           const T* labels, size_t count) {
  return guarded(function, [&] {
    require(monitor, "monitor");
    if (count > 0) {
      require(predicted, "predicted");
      require(labels, "labels");
    }
    monitor->monitor.observe_labels(std::span<const T>(predicted, count),
                                    std::span<const T>(labels, count));
    return KILN_OK;
  });
}

}  // namespace

extern "C" {

kiln_status kiln_monitor_create(const kiln_model* model, const kiln_monitor_options* options,
                                kiln_monitor** out) {
  if (out != nullptr) *out = nullptr;
  return guarded("kiln_monitor_create", [&] {
    require(model, "model");
    require(out, "out_monitor");
    *out = new kiln_monitor{
        kiln::monitor::Monitor(model->model, monitor_options(options)), {}, {}, false};
    return KILN_OK;
  });
}

void kiln_monitor_free(kiln_monitor* monitor) { delete monitor; }

kiln_status kiln_monitor_run(kiln_monitor* monitor, const kiln_model* model,
                             const char* const* input_names, const kiln_tensor* const* inputs,
                             size_t num_inputs, kiln_tensor** outputs, size_t num_outputs) {
  return guarded("kiln_monitor_run", [&] {
    require(monitor, "monitor");
    run_model(model, input_names, inputs, num_inputs, outputs, num_outputs,
              [&](const kiln::infer::Model& m, const kiln::Feeds& feeds) {
                return monitor->monitor.run(m, feeds);
              });
    return KILN_OK;
  });
}

kiln_status kiln_monitor_observe(kiln_monitor* monitor, const char* const* input_names,
                                 const kiln_tensor* const* inputs, size_t num_inputs,
                                 const char* const* output_names, const kiln_tensor* const* outputs,
                                 size_t num_outputs) {
  return guarded("kiln_monitor_observe", [&] {
    require(monitor, "monitor");
    if (num_inputs > 0) {
      require(input_names, "input_names");
      require(inputs, "inputs");
    }
    if (num_outputs > 0) {
      require(output_names, "output_names");
      require(outputs, "outputs");
    }
    const kiln::Feeds feeds = make_feeds(input_names, inputs, num_inputs);
    std::vector<kiln::Tensor> outs;
    std::vector<std::string> names;
    for (std::size_t i = 0; i < num_outputs; ++i) {
      const std::string index = cat("[", std::to_string(i), "]");
      require(output_names[i], cat("output_names", index).c_str());
      require(outputs[i], cat("outputs", index).c_str());
      names.emplace_back(output_names[i]);
      outs.push_back(outputs[i]->tensor);
    }
    monitor->monitor.observe(feeds, outs, names);
    return KILN_OK;
  });
}

kiln_status kiln_monitor_observe_labels(kiln_monitor* monitor, const int64_t* predicted,
                                        const int64_t* labels, size_t count) {
  return observe_labels("kiln_monitor_observe_labels", monitor, predicted, labels, count);
}

kiln_status kiln_monitor_observe_label_values(kiln_monitor* monitor, const double* predicted,
                                              const double* labels, size_t count) {
  return observe_labels("kiln_monitor_observe_label_values", monitor, predicted, labels, count);
}

kiln_status kiln_monitor_drifted(kiln_monitor* monitor, int* out_drifted) {
  return guarded("kiln_monitor_drifted", [&] {
    require(monitor, "monitor");
    require(out_drifted, "out_drifted");
    kiln::monitor::DriftReport r = monitor->monitor.report();
    std::lock_guard lock(monitor->mutex);
    monitor->report = std::move(r);
    monitor->has_report = true;
    *out_drifted = monitor->report.drifted ? 1 : 0;
    return KILN_OK;
  });
}

kiln_status kiln_monitor_counts(kiln_monitor* monitor, uint64_t* out_rows_seen,
                                uint64_t* out_rows_observed, size_t* out_num_features) {
  return guarded("kiln_monitor_counts", [&] {
    require(monitor, "monitor");
    std::lock_guard lock(monitor->mutex);
    const auto& r = current_report(monitor);
    if (out_rows_seen != nullptr) *out_rows_seen = r.rows_seen;
    if (out_rows_observed != nullptr) *out_rows_observed = r.rows_observed;
    if (out_num_features != nullptr) *out_num_features = r.features.size();
    return KILN_OK;
  });
}

kiln_status kiln_monitor_feature(kiln_monitor* monitor, size_t index, kiln_feature_drift* out) {
  return guarded("kiln_monitor_feature", [&] {
    require(monitor, "monitor");
    require(out, "out_feature");
    std::lock_guard lock(monitor->mutex);
    const auto& r = current_report(monitor);
    if (index > r.features.size())
      throw ArgumentError(cat("index ", std::to_string(index), " is out of range: the profile has ",
                              std::to_string(r.features.size()),
                              " feature(s) (index == count: the predictions)"));
    fill_feature(index == r.features.size() ? r.prediction : r.features[index], out);
    return KILN_OK;
  });
}

kiln_status kiln_monitor_labels(kiln_monitor* monitor, uint64_t* out_labelled, double* out_live,
                                double* out_reference, int* out_decayed) {
  return guarded("kiln_monitor_labels", [&] {
    require(monitor, "monitor");
    std::lock_guard lock(monitor->mutex);
    const auto& l = current_report(monitor).labels;
    if (out_labelled != nullptr) *out_labelled = l.labelled;
    if (out_live != nullptr) *out_live = l.live;
    if (out_reference != nullptr) *out_reference = l.reference;
    if (out_decayed != nullptr) *out_decayed = l.decayed ? 1 : 0;
    return KILN_OK;
  });
}

kiln_status kiln_monitor_write_snapshot(const kiln_monitor* monitor, const char* path) {
  return guarded("kiln_monitor_write_snapshot", [&] {
    require(monitor, "monitor");
    require(path, "path");
    monitor->monitor.write_snapshot(path);
    return KILN_OK;
  });
}

kiln_status kiln_monitor_reset(kiln_monitor* monitor) {
  return guarded("kiln_monitor_reset", [&] {
    require(monitor, "monitor");
    monitor->monitor.reset();
    std::lock_guard lock(monitor->mutex);
    monitor->has_report = false;
    return KILN_OK;
  });
}

}  // extern "C"

#else  // KILN_INFER_MONITOR

// Without the monitor no kiln_monitor can be made: kiln_monitor_create fails with the
// reason, and the functions taking a monitor fail the same way (they can only be passed
// NULL or a pointer that did not come from Kiln).
namespace {

kiln_status no_monitor(const char* function) {
  return fail(KILN_ERROR_VALUE, function,
              "this build of kiln_infer has no drift monitor (configured with "
              "KILN_INFER_MONITOR=OFF); use a build with it to monitor a model");
}

}  // namespace

extern "C" {

kiln_status kiln_monitor_create(const kiln_model*, const kiln_monitor_options*,
                                kiln_monitor** out) {
  if (out != nullptr) *out = nullptr;
  return no_monitor("kiln_monitor_create");
}

void kiln_monitor_free(kiln_monitor*) {}

kiln_status kiln_monitor_run(kiln_monitor*, const kiln_model*, const char* const*,
                             const kiln_tensor* const*, size_t, kiln_tensor**, size_t) {
  return no_monitor("kiln_monitor_run");
}

kiln_status kiln_monitor_observe(kiln_monitor*, const char* const*, const kiln_tensor* const*,
                                 size_t, const char* const*, const kiln_tensor* const*, size_t) {
  return no_monitor("kiln_monitor_observe");
}

kiln_status kiln_monitor_observe_labels(kiln_monitor*, const int64_t*, const int64_t*, size_t) {
  return no_monitor("kiln_monitor_observe_labels");
}

kiln_status kiln_monitor_observe_label_values(kiln_monitor*, const double*, const double*, size_t) {
  return no_monitor("kiln_monitor_observe_label_values");
}

kiln_status kiln_monitor_drifted(kiln_monitor*, int*) { return no_monitor("kiln_monitor_drifted"); }

kiln_status kiln_monitor_counts(kiln_monitor*, uint64_t*, uint64_t*, size_t*) {
  return no_monitor("kiln_monitor_counts");
}

kiln_status kiln_monitor_feature(kiln_monitor*, size_t, kiln_feature_drift*) {
  return no_monitor("kiln_monitor_feature");
}

kiln_status kiln_monitor_labels(kiln_monitor*, uint64_t*, double*, double*, int*) {
  return no_monitor("kiln_monitor_labels");
}

kiln_status kiln_monitor_write_snapshot(const kiln_monitor*, const char*) {
  return no_monitor("kiln_monitor_write_snapshot");
}

kiln_status kiln_monitor_reset(kiln_monitor*) { return no_monitor("kiln_monitor_reset"); }

}  // extern "C"

#endif  // KILN_INFER_MONITOR
