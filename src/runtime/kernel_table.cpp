// The global per-op kernel lists: forward kernels at first use, training kernels when kiln
// adds them.
#include <mutex>
#include <set>
#include <string>

#include "internal/conv_geometry.hpp"
#include "internal/kernel.hpp"
#include "kiln/core/error.hpp"

namespace kiln::internal {
namespace {

struct Registry {
  std::mutex mu;
  KernelTable table;
  std::set<std::string> tags;
};

Registry& registry() {
  static Registry* r = [] {
    auto* reg = new Registry;  // never destroyed: kernels may be looked up at exit
    // Most specialised first: oneDNN, then Eigen, then the reference kernels.
    register_onednn_kernels(reg->table);
    register_eigen_kernels(reg->table);
    register_reference_kernels(reg->table);
    return reg;
  }();
  return *r;
}

}  // namespace

std::span<const Kernel> kernels_for(Op op) { return registry().table.get(op); }

void extend_kernels(const char* tag, void (*add)(KernelTable&)) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  if (!r.tags.insert(tag).second) return;
  add(r.table);
}

void run_conv_relu_max_pool_unfused(const KernelArgs& args, void (*conv)(const KernelArgs&)) {
  Node conv_node = args.node;
  conv_node.attrs.post_op = PostOp::relu;
  conv_node.attrs.kernel = {0, 0};
  const Shape full_shape =
      conv2d_shape(args.node.attrs, args.inputs[0].shape(), args.inputs[1].shape());
  conv_node.shape = full_shape;
  Tensor full = Tensor::empty(full_shape, args.output.dtype());
  conv({conv_node, args.inputs, full, nullptr, args.run});
  Node pool;
  pool.op = Op::max_pool2d;
  pool.name = args.node.name;
  pool.attrs = fused_pool_attrs(args.node.attrs);
  pool.shape = args.output.shape();
  pool.dtype = args.output.dtype();
  const TensorDesc in{full.shape(), full.dtype()}, out{args.output.shape(), args.output.dtype()};
  const KernelQuery q{pool, std::span<const TensorDesc>(&in, 1), out};
  for (const Kernel& k : kernels_for(Op::max_pool2d)) {
    if (std::string_view(k.backend) == "onednn" || !k.supports(q, nullptr)) continue;
    const std::shared_ptr<void> state = k.prepare ? k.prepare(q) : nullptr;
    k.run({pool, std::span<const Tensor>(&full, 1), args.output, state.get(), args.run});
    return;
  }
  throw Error("conv2d node '" + args.node.name +
              "': its fused max pooling has no kernel in this build");
}

#if !defined(KILN_WITH_ONEDNN)
void register_onednn_kernels(KernelTable&) {}
#endif

}  // namespace kiln::internal
