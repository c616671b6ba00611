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

// Selection policy. supports() = policy + whether oneDNN implements the query;
// prepare()/run() check only the latter, so tests can run every primitive.
//
// Standalone eltwise, binary and softmax primitives are slower here than the Eigen
// kernels that follow them in the table (oneDNN 2.6 on AVX-512, one thread, 1M f32:
// tanh 243 vs 119 us, exp 189 vs 117, log 722 vs 482, log_softmax 1220 vs 464, add 108
// vs 107; at 4096 elements the primitive call alone costs ~0.5-1 us), and oneDNN's log
// is only accurate to ~3e-6 absolute. So they are declined unless this is flipped; they
// stay built and tested as the basis for fused post-ops.
inline constexpr bool prefer_standalone_elementwise = false;
/// When preferred, elementwise ops and softmax smaller than this still go to Eigen.
inline constexpr std::int64_t min_elementwise_numel = std::int64_t{1} << 12;
/// Matmuls with fewer multiply-adds than this, or with one row (GEMV), go to Eigen,
/// which is 1.5-3x faster there (1x784x128: 2.1 vs 4.0 us; 32x64x64: 1.7 vs 1.8 us).
inline constexpr std::int64_t min_matmul_macs = std::int64_t{1} << 18;

/// The elementwise policy above; sets *why when declining.
bool elementwise_policy(const KernelQuery& q, std::string* why);

/// Shared checks: f32 only and no empty tensors.
bool basic_checks(const KernelQuery& q, std::string* why);

// One registration function per family.
void register_matmul(KernelTable& t);
void register_elementwise(KernelTable& t);
void register_softmax(KernelTable& t);

}  // namespace kiln::internal::onednn
