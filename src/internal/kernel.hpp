// Internal: the kernel interface and the per-op ordered kernel lists.
//
// Each op has an ordered list of kernels, most specialised first and the reference
// kernel last. An Executable picks the first whose supports() accepts the node with
// its concrete shapes, once, at compile time.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "internal/internal_api.hpp"
#include "internal/op_info.hpp"
#include "kiln/core/tensor.hpp"
#include "kiln/graph/graph.hpp"

namespace kiln::internal {

/// Per-run facts kernels may read.
struct RunContext {
  bool training = false;
  std::uint64_t counter = 0;  ///< run number (dropout masks)
};

/// What a kernel gets: the node (op, attributes), contiguous inputs with concrete
/// shapes, a preallocated contiguous output, and its prepared state.
struct KernelArgs {
  const Node& node;
  std::span<const Tensor> inputs;
  Tensor& output;
  void* state;
  const RunContext& run;
};

/// What a kernel is asked before it is chosen.
struct KernelQuery {
  const Node& node;
  std::span<const TensorDesc> inputs;
  const TensorDesc& output;
};

struct Kernel {
  const char* backend;  ///< "onednn", "eigen" or "reference"
  const char* name;     ///< what it does, e.g. "eigen_gemm"
  /// Whether it handles this query; when not, it may say why in *why.
  bool (*supports)(const KernelQuery& q, std::string* why);
  void (*run)(const KernelArgs& args);
  /// Optional: state created once per compiled plan (e.g. a oneDNN primitive).
  std::shared_ptr<void> (*prepare)(const KernelQuery& q) = nullptr;
};

/// The kernels of one op, in order of preference.
KILN_INTERNAL_API std::span<const Kernel> kernels_for(Op op);

/// Kernel lists grow only through these, at start-up of kiln_infer (forward kernels)
/// and of kiln (training kernels, via register_training_kernels in autodiff).
class KernelTable {
 public:
  /// Appends k to op's list. In a selective build (KILN_OPS) an op left out gets no
  /// kernels: the test is a constant, so nothing refers to the kernel's functions and a
  /// size-optimised link drops them. Registration code writes t.add<Op::relu>(kernel).
  template <Op op>
  void add(Kernel k) {
    if constexpr (op_in_build(op)) append(op, k);
  }
  /// The same for an op known at run time (tables of elementwise kernels): the test runs
  /// at start-up and the code stays.
  void add(Op op, Kernel k) {
    if (op_in_build(op)) append(op, k);
  }
  std::span<const Kernel> get(Op op) const { return lists_[static_cast<std::size_t>(op)]; }

 private:
  void append(Op op, const Kernel& k) { lists_[static_cast<std::size_t>(op)].push_back(k); }
  std::vector<Kernel> lists_[op_count];
};

/// Appends kernels to the global table (thread-safe, idempotent per `tag`).
KILN_INTERNAL_API void extend_kernels(const char* tag, void (*add)(KernelTable&));

/// Runs a conv2d step with the relu_max_pool epilogue unfused: `conv` (a conv2d kernel's
/// run) with a plain ReLU epilogue into a temporary of the convolution's shape, then the
/// first max_pool2d kernel other than oneDNN's that accepts it (its windows keep NaN,
/// oneDNN's drop it) into the output. Throws Error when no pooling kernel is built in.
void run_conv_relu_max_pool_unfused(const KernelArgs& args, void (*conv)(const KernelArgs&));

/// Adds the kernels only training needs (defined in kiln; kiln::grad calls it).
void ensure_training_kernels();

/// Backends' registration functions (each appends its kernels for the ops it covers).
void register_onednn_kernels(KernelTable& t);
void register_eigen_kernels(KernelTable& t);
void register_reference_kernels(KernelTable& t);

/// True for float dtypes both kernels and the reference accept.
inline bool all_f32(const KernelQuery& q) {
  for (const auto& d : q.inputs)
    if (d.dtype != DType::f32) return false;
  return q.output.dtype == DType::f32;
}

}  // namespace kiln::internal
