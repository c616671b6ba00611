// The oneDNN engine, streams, and prepared-primitive execution.
#include "kernels/onednn/onednn_common.hpp"

#include "internal/conv_geometry.hpp"

#include <omp.h>

#include <algorithm>
#include <mutex>
#include <unordered_map>

#include "kiln/core/error.hpp"

namespace kiln::internal::onednn {

dnnl::engine& engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

dnnl::stream& stream() {
  // CPU streams are cheap; one per thread lets executables run concurrently.
  thread_local dnnl::stream s(engine());
  return s;
}

dnnl::memory::desc plain_desc(const dnnl::memory::dims& dims) {
  dnnl::memory::dims strides(dims.size(), 1);
  for (std::size_t i = dims.size(); i-- > 1;) strides[i - 1] = strides[i] * dims[i];
  return dnnl::memory::desc(dims, dnnl::memory::data_type::f32, strides);
}

bool basic_checks(const KernelQuery& q, std::string* why) {
  if (!all_f32(q)) return decline(why, "onednn kernels handle f32 only");
  for (const auto& d : q.inputs)
    if (d.shape.numel() == 0) return decline(why, "empty tensor");
  if (q.output.shape.numel() == 0) return decline(why, "empty tensor");
  return true;
}

void relu_keep_nan(float* data, std::int64_t n) {
  // Large arrays split across threads; the loop vectorises to a compare and a blend.
  const bool parallel = n >= (std::int64_t{1} << 16) && !omp_in_parallel();
#pragma omp parallel for simd schedule(static) if (parallel)
  for (std::int64_t i = 0; i < n; ++i) data[i] = data[i] < 0.0f ? 0.0f : data[i];
}

bool has_nan(const Tensor& t, bool infinities) {
  const float* p = t.data<float>();
  const std::int64_t n = t.numel();
  const bool parallel = n >= (std::int64_t{1} << 18) && !omp_in_parallel();
  int found = 0;
  if (infinities) {
    // x - x is 0 for finite x, NaN for NaN and the infinities.
#pragma omp parallel for simd reduction(| : found) schedule(static) if (parallel)
    for (std::int64_t i = 0; i < n; ++i) found |= !(p[i] - p[i] == 0.0f);
  } else {
#pragma omp parallel for simd reduction(| : found) schedule(static) if (parallel)
    for (std::int64_t i = 0; i < n; ++i) found |= p[i] != p[i];
  }
  return found != 0;
}

void run_fallback(const KernelArgs& args) {
  const CallQuery call(args);
  const KernelQuery q = call.query();
  for (const Kernel& k : kernels_for(args.node.op)) {
    if (std::string_view(k.backend) == "onednn" || !k.supports(q, nullptr)) continue;
    const std::shared_ptr<void> state = k.prepare ? k.prepare(q) : nullptr;
    k.run({args.node, args.inputs, args.output, state.get(), args.run});
    return;
  }
  throw Error("no fallback kernel for " + std::string(op_name(args.node.op)) + " node '" +
              args.node.name + "'");
}

bool supports_with(Builder build, const KernelQuery& q, std::string* why) {
  Plan plan;
  try {
    return build(q, why, &plan);
  } catch (const dnnl::error& e) {
    return decline(why, std::string("oneDNN: ") + e.what());
  }
}

bool elementwise_policy(const KernelQuery& q, std::string* why) {
  if (!prefer_standalone_elementwise)
    return decline(why, "the eigen kernel is faster for standalone elementwise ops");
  if (q.output.shape.numel() < min_elementwise_numel)
    return decline(why, "small tensor: the eigen kernel is faster");
  return true;
}

std::shared_ptr<void> prepare_with(Builder build, const KernelQuery& q) {
  std::string why;
  try {
    Plan plan;
    if (build(q, &why, &plan)) {
      auto p = std::make_shared<Prepared>();
      p->primitive = dnnl::primitive(plan.pd);
      p->bindings = std::move(plan.bindings);
      p->packed.resize(p->bindings.size());
      return p;
    }
  } catch (const dnnl::error& e) {
    why = std::string("oneDNN: ") + e.what();
  }
  throw Error("onednn kernel for " + std::string(op_name(q.node.op)) + " node '" + q.node.name +
              "': " + why);
}

std::shared_ptr<const PackedInput> packed_input(const Tensor& source,
                                                const dnnl::memory::desc& from,
                                                const dnnl::memory::desc& to) {
  static std::mutex mutex;
  static std::vector<std::weak_ptr<const PackedInput>> kept;
  const std::lock_guard<std::mutex> lock(mutex);
  std::erase_if(kept, [](const auto& w) { return w.expired(); });
  for (const auto& w : kept)
    if (auto p = w.lock();
        p && p->source.raw() == source.raw() && p->from == from && p->packed.get_desc() == to)
      return p;
  auto p = std::make_shared<PackedInput>();
  p->source = source;
  p->from = from;
  p->packed = dnnl::memory(to, engine());
  dnnl::memory src(from, engine(), const_cast<void*>(source.raw()));
  dnnl::stream& s = stream();
  dnnl::reorder(src, p->packed).execute(s, src, p->packed);
  s.wait();
  kept.push_back(p);
  return p;
}

void execute(Builder build, const KernelArgs& args) {
  std::shared_ptr<void> owned;
  auto* p = static_cast<Prepared*>(args.state);
  if (p == nullptr) {
    const CallQuery call(args);
    owned = prepare_with(build, call.query());
    p = static_cast<Prepared*>(owned.get());
  }
  std::unordered_map<int, dnnl::memory> memories;
  for (std::size_t i = 0; i < p->bindings.size(); ++i) {
    const Binding& b = p->bindings[i];
    void* data = b.input < 0
                     ? args.output.raw()
                     : const_cast<void*>(args.inputs[static_cast<std::size_t>(b.input)].raw());
    if (!b.from.is_zero()) {
      std::shared_ptr<const PackedInput>& packed = p->packed[i];
      if (!packed || packed->source.raw() != data)
        packed = packed_input(args.inputs[static_cast<std::size_t>(b.input)], b.from, b.desc);
      data = packed->packed.get_data_handle();
    }
    memories.emplace(b.arg, dnnl::memory(b.desc, engine(), data));
  }
  dnnl::stream& s = stream();
  p->primitive.execute(s, memories);
  s.wait();
}

}  // namespace kiln::internal::onednn

namespace kiln::internal::onednn {

dnnl::memory::dims dims_of(const Shape& s) {
  dnnl::memory::dims d;
  for (std::size_t i = 0; i < s.rank(); ++i) d.push_back(s[i]);
  return d;
}

Pipeline::Pipeline(bool build, const KernelQuery& q) : build_(build) {
  for (const TensorDesc& d : q.inputs) constant_inputs_.push_back(d.constant);
}

dnnl::memory Pipeline::tensor(int index, const dnnl::memory::desc& md) {
  dnnl::memory m(md, engine(), DNNL_MEMORY_NONE);
  tensors_.emplace_back(index, m);
  return m;
}

dnnl::memory Pipeline::scratch(const dnnl::memory::desc& md) {
  return build_ ? dnnl::memory(md, engine()) : dnnl::memory(md, engine(), DNNL_MEMORY_NONE);
}

dnnl::memory Pipeline::like(const dnnl::memory& m, const dnnl::memory::desc& want) {
  return m.get_desc() == want ? m : scratch(want);
}

void Pipeline::copy(const dnnl::memory& from, const dnnl::memory& to) {
  if (from.get() == to.get()) return;
  add(dnnl::reorder::primitive_desc(from, to), {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}});
  const auto bound = std::find_if(tensors_.begin(), tensors_.end(),
                                  [&](const auto& t) { return t.second.get() == from.get(); });
  if (build_ && bound != tensors_.end() && bound->first >= 0 &&
      constant_inputs_.at(static_cast<std::size_t>(bound->first)))
    steps_.back().constant_source = from;
}

void Pipeline::add(const dnnl::primitive_desc_base& pd,
                   std::unordered_map<int, dnnl::memory> args) {
  if (!build_) return;
  steps_.push_back({dnnl::primitive(pd.get()), std::move(args), when_});
}

void Pipeline::execute(const KernelArgs& args) {
  for (auto& [index, m] : tensors_) {
    const Tensor& t = index < 0 ? args.output : args.inputs[static_cast<std::size_t>(index)];
    m.set_data_handle(const_cast<void*>(t.raw()));
  }
  dnnl::stream& s = stream();
  const When skip = args.run.training ? When::inference : When::training;
  for (Step& step : steps_) {
    if (step.when == skip) continue;
    const void* storage = step.constant_source ? step.constant_source.get_data_handle() : nullptr;
    if (storage != nullptr && storage == step.done_for) continue;
    step.primitive.execute(s, step.args);
    if (storage != nullptr) step.done_for = storage;
  }
  s.wait();
}

bool supports_pipeline(PipelineBuilder build, const KernelQuery& q, std::string* why) {
  try {
    Pipeline p(false, q);
    return build(q, why, p);
  } catch (const dnnl::error& e) {
    return decline(why, std::string("oneDNN: ") + e.what());
  }
}

std::shared_ptr<void> prepare_pipeline(PipelineBuilder build, const KernelQuery& q) {
  std::string why;
  try {
    auto p = std::make_shared<Pipeline>(true, q);
    if (build(q, &why, *p)) return p;
  } catch (const dnnl::error& e) {
    why = std::string("oneDNN: ") + e.what();
  }
  throw Error("onednn kernel for " + std::string(op_name(q.node.op)) + " node '" + q.node.name +
              "': " + why);
}

Pipeline& pipeline_of(PipelineBuilder build, const KernelArgs& args, std::shared_ptr<void>* owned) {
  if (args.state != nullptr) return *static_cast<Pipeline*>(args.state);
  const CallQuery call(args);
  *owned = prepare_pipeline(build, call.query());
  return *static_cast<Pipeline*>(owned->get());
}

void run_pipeline(PipelineBuilder build, const KernelArgs& args) {
  std::shared_ptr<void> owned;
  pipeline_of(build, args, &owned).execute(args);
}

}  // namespace kiln::internal::onednn

namespace kiln::internal::onednn {

bool conv_geometry(const Attrs& a, const Shape& src, const Shape& dst, std::int64_t kh,
                   std::int64_t kw, ConvGeometry* g, std::string* why) {
  // Sizes and attributes by the one geometry of the shape rules and all kernels.
  if (auto e = internal::conv_geometry_error(a, src, dst, kh, kw); !e.empty())
    return decline(why, e);
  g->strides.clear();
  g->dilates.clear();
  g->padding_l.clear();
  g->padding_r.clear();
  for (std::size_t d = 0; d < 2; ++d) {
    g->strides.push_back(a.stride[d]);
    g->dilates.push_back(a.dilation[d] - 1);  // oneDNN counts the gaps
    g->padding_l.push_back(a.padding[d]);
    // Right padding as given: oneDNN rounds the output size down as we do.
    g->padding_r.push_back(a.padding[d]);
  }
  const std::int64_t groups = a.groups;
  g->groups = groups;
  g->src = dims_of(src);
  g->dst = dims_of(dst);
  const std::int64_t o = dst[1], c = src[1];
  g->weights = groups == 1 ? dnnl::memory::dims{o, c, kh, kw}
                           : dnnl::memory::dims{groups, o / groups, c / groups, kh, kw};
  return true;
}

dnnl::memory::desc plain_weights(const ConvGeometry& g) { return plain_desc(g.weights); }

dnnl::convolution_forward::desc conv_forward_desc(const ConvGeometry& g,
                                                  dnnl::memory::format_tag layout,
                                                  const dnnl::memory::desc* bias) {
  using tag = dnnl::memory::format_tag;
  const auto f32 = dnnl::memory::data_type::f32;
  const dnnl::memory::desc src(g.src, f32, layout), dst(g.dst, f32, layout);
  const dnnl::memory::desc w =
      layout == tag::any ? dnnl::memory::desc(g.weights, f32, tag::any) : plain_weights(g);
  const auto prop = dnnl::prop_kind::forward_training;
  const auto alg = dnnl::algorithm::convolution_direct;
  if (bias != nullptr)
    return {prop, alg, src, w, *bias, dst, g.strides, g.dilates, g.padding_l, g.padding_r};
  return {prop, alg, src, w, dst, g.strides, g.dilates, g.padding_l, g.padding_r};
}

}  // namespace kiln::internal::onednn
