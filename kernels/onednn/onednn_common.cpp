// The oneDNN engine, streams, and prepared-primitive execution.
#include "kernels/onednn/onednn_common.hpp"

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
      return p;
    }
  } catch (const dnnl::error& e) {
    why = std::string("oneDNN: ") + e.what();
  }
  throw Error("onednn kernel for " + std::string(op_name(q.node.op)) + " node '" + q.node.name +
              "': " + why);
}

void execute(Builder build, const KernelArgs& args) {
  std::shared_ptr<void> owned;
  const Prepared* p = static_cast<const Prepared*>(args.state);
  if (p == nullptr) {
    std::vector<TensorDesc> in;
    for (const Tensor& t : args.inputs) in.push_back({t.shape(), t.dtype()});
    const TensorDesc out{args.output.shape(), args.output.dtype()};
    owned = prepare_with(build, KernelQuery{args.node, in, out});
    p = static_cast<const Prepared*>(owned.get());
  }
  std::unordered_map<int, dnnl::memory> memories;
  for (const Binding& b : p->bindings) {
    void* data = b.input < 0
                     ? args.output.raw()
                     : const_cast<void*>(args.inputs[static_cast<std::size_t>(b.input)].raw());
    memories.emplace(b.arg, dnnl::memory(b.desc, engine(), data));
  }
  dnnl::stream& s = stream();
  p->primitive.execute(s, memories);
  s.wait();
}

}  // namespace kiln::internal::onednn
