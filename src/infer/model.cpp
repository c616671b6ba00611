// kiln::infer::Model: a decoded model file plus a small pool of compiled executables.
//
// A compiled plan owns an arena and kernel states (oneDNN kernels keep mutable memory
// handles and scratch), so one Executable runs one call at a time. Model::run takes an
// idle executable from the pool (or compiles a new one, up to a bound), runs it and hands
// it back, so concurrent calls run in parallel and each executable keeps its own cache of
// one plan per batch size. Every executable computes the same kernels in the same order,
// so outputs do not depend on which one ran.
#include "kiln/infer/model.hpp"

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <utility>

#include "io/model_data.hpp"
#include "runtime/feeds.hpp"

namespace kiln::infer {

struct Model::Impl {
  internal::ModelData data;
  std::string source;
  CompileOptions compile;
  std::vector<Value> outputs;
  // Graph input names per input signature (the names an Executable is fed with).
  std::vector<std::string> input_nodes;
  bool same_names = true;  // signature names == graph input names: feeds pass through
  std::vector<internal::FeedSpec> feed_specs;  // per input signature
  std::string run_where;                       // "model 'digits': run", for messages
  bool check_finite = false;
  // Per input signature: the normalisation run() applies (LoadOptions::apply_preprocessing).
  std::vector<const Normalization*> normalize;
  bool any_normalize = false;

  std::mutex mu;
  std::condition_variable idle_cv;
  std::vector<std::unique_ptr<Executable>> idle;
  std::size_t created = 0;
  std::size_t max_executables = 1;

  // Takes an idle executable, compiles a new one while under the bound, or waits.
  std::unique_ptr<Executable> acquire() {
    std::unique_lock<std::mutex> lock(mu);
    idle_cv.wait(lock, [&] { return !idle.empty() || created < max_executables; });
    if (!idle.empty()) {
      auto exe = std::move(idle.back());
      idle.pop_back();
      return exe;
    }
    ++created;
    lock.unlock();
    try {
      return std::make_unique<Executable>(*data.graph, outputs, compile);
    } catch (...) {
      std::lock_guard<std::mutex> relock(mu);
      --created;
      idle_cv.notify_one();
      throw;
    }
  }

  void release(std::unique_ptr<Executable> exe) {
    {
      std::lock_guard<std::mutex> lock(mu);
      idle.push_back(std::move(exe));
    }
    idle_cv.notify_one();
  }

  // Checks and (with preprocessing, or signature names that differ from the graph's) renames
  // the feeds, then calls fn(executable, feeds) on an executable of the pool. The run owns
  // a share of the model (`keep`), so the caller may drop its handle meanwhile.
  template <class Fn>
  static auto run_pooled(std::shared_ptr<Impl> keep, const Feeds& feeds, Fn&& fn) {
    Impl& m = *keep;
    const auto feed_of = internal::match_feeds(m.feed_specs, feeds, m.run_where, m.check_finite);
    Feeds renamed;
    const bool rename = !m.same_names || m.any_normalize;
    if (rename) {
      renamed.reserve(m.feed_specs.size());
      for (std::size_t i = 0; i < feed_of.size(); ++i) {
        const Tensor& t = feeds[feed_of[i]].second;
        const Normalization* n = m.any_normalize ? m.normalize[i] : nullptr;
        renamed.emplace_back(m.input_nodes[i], n ? apply_normalization(t, *n) : t);
      }
    }
    std::unique_ptr<Executable> exe = m.acquire();
    struct Release {
      Impl& m;
      std::unique_ptr<Executable>& exe;
      ~Release() { m.release(std::move(exe)); }
    } release{m, exe};
    return fn(*exe, rename ? renamed : feeds);
  }

  std::string where() const {
    std::string s = "model '";
    s += data.metadata.name.empty() ? source : data.metadata.name;
    s += "'";
    return s;
  }
};

namespace {

/// Per input signature, the file's normalisation for it; checks that each entry names a
/// floating-point input whose last dimension is the entry's length.
std::vector<const Normalization*> preprocessing_plan(const internal::ModelData& d,
                                                     const std::string& source) {
  std::vector<const Normalization*> plan(d.inputs.size(), nullptr);
  for (const Normalization& n : d.metadata.preprocessing) {
    std::size_t i = 0;
    while (i < d.inputs.size() && d.inputs[i].name != n.input) ++i;
    const std::string where = source + ": preprocessing for input '" + n.input + "'";
    if (i == d.inputs.size()) throw FormatError(where + ": the model has no such input");
    if (plan[i]) throw FormatError(where + ": given twice");
    const TensorSpec& spec = d.inputs[i];
    if (!is_floating(spec.dtype))
      throw FormatError(where + ": the input is " + std::string(to_string(spec.dtype)) +
                        ", not floating point");
    if (spec.shape.rank() == 0 || spec.shape[spec.shape.rank() - 1] < 0 ||
        static_cast<std::size_t>(spec.shape[spec.shape.rank() - 1]) != n.mean.size())
      throw FormatError(where + ": " + std::to_string(n.mean.size()) +
                        " features, but the input's shape is " + spec.shape.str());
    plan[i] = &n;
  }
  return plan;
}

std::size_t pool_bound() {
  const unsigned hw = std::thread::hardware_concurrency();
  return std::max<std::size_t>(4, static_cast<std::size_t>(hw));
}

}  // namespace

Model Model::load(const std::string& path, LoadOptions options) {
  const std::vector<std::uint8_t> bytes = internal::read_file(path);
  return load(bytes, path, std::move(options));
}

Model Model::load(std::span<const std::uint8_t> bytes, const std::string& source,
                  LoadOptions options) {
  const std::string& b = options.backend;
  if (!b.empty() && b != "reference" && b != "eigen" && b != "onednn")
    throw ValueError("Model::load: unknown backend '" + b +
                     "' (expected reference, eigen, onednn or empty)");
  auto impl = std::make_shared<Impl>();
  impl->data = internal::decode_model(bytes, source);
  impl->source = source;
  impl->compile.training = false;
  impl->compile.constant_parameters = true;  // a loaded model's weights never change
  impl->compile.backend = std::move(options.backend);
  impl->compile.plan_cache_size = options.plan_cache_size;
  impl->compile.plan_cache_bytes = options.plan_cache_bytes;
  const internal::ModelData& d = impl->data;
  if (!d.graph || d.input_ids.size() != d.inputs.size() || d.output_ids.size() != d.outputs.size())
    throw FormatError(source + ": the decoded model's signatures do not match its graph");
  for (const TensorSpec& o : d.outputs) impl->compile.output_names.push_back(o.name);
  Graph& g = *impl->data.graph;
  for (std::size_t i = 0; i < d.input_ids.size(); ++i) {
    const std::string& node_name = g.node(d.input_ids[i]).name;
    impl->input_nodes.push_back(node_name);
    if (node_name != d.inputs[i].name) impl->same_names = false;
  }
  for (auto id : d.output_ids) impl->outputs.push_back(g.value(id));
  for (const TensorSpec& spec : d.inputs)
    impl->feed_specs.push_back({spec.name, &spec.shape, spec.dtype});
  impl->run_where = impl->where() + ": run";
  impl->check_finite = options.check_finite_feeds;
  if (options.apply_preprocessing) {
    impl->normalize = preprocessing_plan(d, source);
    for (const auto* n : impl->normalize) impl->any_normalize |= n != nullptr;
  }
  impl->max_executables = pool_bound();
  // The first executable (its plans are compiled on first use per batch size). With a
  // backend named, compile batch size 1 now: a backend that cannot run the model fails
  // here, not at the first run.
  auto exe = impl->acquire();
  if (!impl->compile.backend.empty()) {
    Feeds probe;
    for (std::size_t i = 0; i < d.inputs.size(); ++i) {
      std::vector<std::int64_t> dims(d.inputs[i].shape.begin(), d.inputs[i].shape.end());
      for (auto& v : dims)
        if (v == batch) v = 1;
      probe.emplace_back(impl->input_nodes[i], Tensor::zeros(Shape(dims), d.inputs[i].dtype));
    }
    try {
      exe->plan(probe);
    } catch (const Error& e) {
      throw ValueError(impl->where() + ": backend '" + impl->compile.backend +
                       "' cannot run this model: " + e.what());
    }
  }
  impl->release(std::move(exe));
  return Model(std::move(impl));
}

const std::vector<TensorSpec>& Model::inputs() const { return impl_->data.inputs; }
const std::vector<TensorSpec>& Model::outputs() const { return impl_->data.outputs; }
const ModelMetadata& Model::metadata() const { return impl_->data.metadata; }
std::uint32_t Model::format_version() const { return impl_->data.format_version; }
const std::string& Model::content_hash() const { return impl_->data.content_hash; }

std::vector<std::string> Model::section_names() const {
  std::vector<std::string> names;
  for (const auto& s : impl_->data.sections) names.push_back(s.first);
  return names;
}

bool Model::has_section(const std::string& name) const {
  for (const auto& s : impl_->data.sections)
    if (s.first == name) return true;
  return false;
}

std::span<const std::uint8_t> Model::section(const std::string& name) const {
  for (const auto& s : impl_->data.sections)
    if (s.first == name) return s.second;
  throw NameError(impl_->where() + ": no section named '" + name + "'");
}

std::vector<Tensor> Model::run(const Feeds& feeds) const {
  return Impl::run_pooled(impl_, feeds, [](Executable& exe, const Feeds& f) { return exe.run(f); });
}

void Model::run_into(const Feeds& feeds, std::span<Tensor> outputs) const {
  Impl::run_pooled(impl_, feeds,
                   [&](Executable& exe, const Feeds& f) { exe.run_into(f, outputs); });
}

}  // namespace kiln::infer
