// Internal: what the oneDNN kernels share — the engine, per-thread streams, and a
// prepared primitive whose run() only binds tensor memory and executes.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

#include "internal/kernel.hpp"

namespace kiln::internal::onednn {

/// The process-wide CPU engine (created on first use).
dnnl::engine& engine();
/// A stream on engine() for the calling thread.
dnnl::stream& stream();

/// One primitive argument: its oneDNN arg id, memory layout, and which tensor backs it.
struct Binding {
  int arg;
  dnnl::memory::desc desc;
  int input;  ///< index into KernelArgs::inputs, or -1 for the output
};

/// A primitive descriptor for a query's shapes and how tensors bind to its arguments.
struct Plan {
  dnnl::primitive_desc pd;
  std::vector<Binding> bindings;
};

/// What prepare() creates once per compiled plan: the (JIT-compiled) primitive.
struct Prepared {
  dnnl::primitive primitive;
  std::vector<Binding> bindings;
};

/// Fills *plan for a query; returns false and sets *why when the query is not handled
/// or oneDNN has no implementation for it. Creating a descriptor does not JIT-compile.
using Builder = bool (*)(const KernelQuery& q, std::string* why, Plan* plan);

/// supports() of a kernel built by `build` (oneDNN errors become a decline).
bool supports_with(Builder build, const KernelQuery& q, std::string* why);

/// prepare() of a kernel built by `build`: creates the primitive once (throws
/// kiln::Error if that fails after supports() accepted the query).
std::shared_ptr<void> prepare_with(Builder build, const KernelQuery& q);

/// Binds the tensors of args to a Prepared's arguments and executes it. When the plan
/// was not prepared (state is null) it builds the primitive for this call.
void execute(Builder build, const KernelArgs& args);

/// Row-major memory descriptor of an f32 tensor with these dims.
dnnl::memory::desc plain_desc(const dnnl::memory::dims& dims);

/// Sets *why when given and returns false.
inline bool decline(std::string* why, std::string reason) {
  if (why != nullptr) *why = std::move(reason);
  return false;
}

/// Elementwise ops and softmax with fewer elements than this are declined: on small
/// tensors the primitive call costs more than the Eigen kernel's whole run.
inline constexpr std::int64_t min_elementwise_numel = std::int64_t{1} << 12;

/// Shared checks: f32 only and no empty tensors.
bool basic_checks(const KernelQuery& q, std::string* why);

// One registration function per family.
void register_matmul(KernelTable& t);
void register_elementwise(KernelTable& t);
void register_softmax(KernelTable& t);

}  // namespace kiln::internal::onednn
