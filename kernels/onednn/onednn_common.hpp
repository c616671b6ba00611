// Internal: what the oneDNN kernels share — the engine, per-thread streams, and a
// prepared primitive whose run() only binds tensor memory and executes.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

#include "internal/kernel.hpp"
#include "kernels/eigen/eigen_kernels.hpp"

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
  /// Set for a constant input (TensorDesc::constant) the primitive reads in another layout
  /// (`desc`, e.g. blocked weights): the tensor's own layout. The tensor is reordered into
  /// `desc` on the first run, and again only when its storage changes (packed_input).
  dnnl::memory::desc from = {};
};

/// A constant input reordered into a primitive's layout. It holds its source tensor, so
/// the source's storage, whose address identifies it, lives as long as the copy.
struct PackedInput {
  Tensor source;
  dnnl::memory::desc from;
  dnnl::memory packed;
};

/// `source` (laid out as `from`) reordered into layout `to`. Plans that pack the same
/// storage the same way share one copy (an inference model's executables and their plans
/// for each batch size), kept while any of them holds it.
std::shared_ptr<const PackedInput> packed_input(const Tensor& source,
                                                const dnnl::memory::desc& from,
                                                const dnnl::memory::desc& to);

/// A primitive descriptor for a query's shapes and how tensors bind to its arguments.
struct Plan {
  dnnl::primitive_desc pd;
  std::vector<Binding> bindings;
};

/// What prepare() creates once per compiled plan: the (JIT-compiled) primitive, and the
/// packed copies of its constant inputs (per binding; null until the first run).
struct Prepared {
  dnnl::primitive primitive;
  std::vector<Binding> bindings;
  std::vector<std::shared_ptr<const PackedInput>> packed;
};

/// The query a kernel call answers (its tensors' shapes and dtypes), for kernels that
/// prepare their state for the call when the plan did not.
struct CallQuery {
  explicit CallQuery(const KernelArgs& args)
      : node(args.node), out{args.output.shape(), args.output.dtype()} {
    for (const Tensor& t : args.inputs) in.push_back({t.shape(), t.dtype()});
  }
  KernelQuery query() const { return {node, in, out}; }

  const Node& node;
  std::vector<TensorDesc> in;
  TensorDesc out;
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

/// When a pipeline step runs: always, or only in training / inference runs.
enum class When : std::uint8_t { always, training, inference };

/// A prepared sequence of primitives (reorders included) over memories that are either
/// the node's tensors, rebound to the tensors' storage on each run, or scratch buffers
/// allocated once when the pipeline is built. A pipeline built with `build` false only
/// creates descriptors (nothing is JIT-compiled or allocated): supports() uses that.
class Pipeline {
 public:
  /// Built for query q: the steps that reorder an input q marks constant (a weight of an
  /// inference plan) run on the first execute and again only when that input's storage
  /// changes.
  Pipeline(bool build, const KernelQuery& q);

  bool building() const { return build_; }
  /// Memory bound to input `index` of the node (-1: the output) on each run.
  dnnl::memory tensor(int index, const dnnl::memory::desc& md);
  /// A buffer of this layout owned by the pipeline.
  dnnl::memory scratch(const dnnl::memory::desc& md);
  /// m itself when it already has layout `want`, else a new scratch buffer of that layout.
  dnnl::memory like(const dnnl::memory& m, const dnnl::memory::desc& want);
  /// Appends a reorder from `from` to `to`, unless they are the same memory; a reorder of
  /// a constant input runs only when its storage is new (see the constructor).
  void copy(const dnnl::memory& from, const dnnl::memory& to);
  /// Appends a primitive (created now when building) with its arguments.
  void add(const dnnl::primitive_desc_base& pd, std::unordered_map<int, dnnl::memory> args);
  /// Steps added from now on run only in runs of this kind.
  void when(When w) { when_ = w; }
  /// Binds args' tensors and executes the steps for args.run, then waits.
  void execute(const KernelArgs& args);

  /// Memories a kernel reads back after execute() (e.g. batch statistics).
  std::vector<dnnl::memory> kept;

 private:
  struct Step {
    dnnl::primitive primitive;
    std::unordered_map<int, dnnl::memory> args;
    When when;
    /// For the reorder of a constant input: its source memory, and the storage it last
    /// reordered (its result is still in the destination).
    dnnl::memory constant_source = {};
    const void* done_for = nullptr;
  };
  bool build_;
  std::vector<bool> constant_inputs_;
  When when_ = When::always;
  std::vector<std::pair<int, dnnl::memory>> tensors_;
  std::vector<Step> steps_;
};

/// Describes a kernel's pipeline for a query into p; returns false and sets *why when
/// the query is not handled. oneDNN errors are caught by the functions below.
using PipelineBuilder = bool (*)(const KernelQuery& q, std::string* why, Pipeline& p);

/// supports() of a pipeline kernel: the builder's checks without compiling anything.
bool supports_pipeline(PipelineBuilder build, const KernelQuery& q, std::string* why);
/// prepare() of a pipeline kernel: a built Pipeline (throws kiln::Error on failure).
std::shared_ptr<void> prepare_pipeline(PipelineBuilder build, const KernelQuery& q);
/// The prepared pipeline of args, or (state null) one built into *owned for this call.
Pipeline& pipeline_of(PipelineBuilder build, const KernelArgs& args, std::shared_ptr<void>* owned);
/// run() of a pipeline kernel.
void run_pipeline(PipelineBuilder build, const KernelArgs& args);

/// oneDNN dims of a kiln shape.
dnnl::memory::dims dims_of(const Shape& s);

/// A 2-D convolution as oneDNN sees it: src [N, C, H, W] -> dst [N, O, Ho, Wo] with our
/// weights [O, C/g, kh, kw] (row-major, i.e. oneDNN's oihw or goihw).
struct ConvGeometry {
  dnnl::memory::dims src, weights, dst, strides, dilates, padding_l, padding_r;
  std::int64_t groups = 1;
};

/// The geometry of a conv2d with these attributes (stride, padding, dilation, groups)
/// from src, dst shapes and the kernel size; false and *why when they do not fit.
bool conv_geometry(const Attrs& a, const Shape& src, const Shape& dst, std::int64_t kh,
                   std::int64_t kw, ConvGeometry* g, std::string* why);
/// The conv's weights in our row-major layout.
dnnl::memory::desc plain_weights(const ConvGeometry& g);
/// The conv's descriptor (forward, direct), with layouts src, weights, dst.
dnnl::convolution_forward::desc conv_forward_desc(const ConvGeometry& g,
                                                  dnnl::memory::format_tag layout,
                                                  const dnnl::memory::desc* bias);

/// Pooling (defined in pool.cpp): checks of x and y against the node's kernel, stride and
/// padding, and the forward descriptor (max, or avg with or without the padding counted).
bool check_pool(const KernelQuery& q, const Shape& x, const Shape& y, std::string* why);
dnnl::algorithm pool_algorithm(const KernelQuery& q);
dnnl::pooling_forward::desc pool_forward_desc(const KernelQuery& q, dnnl::prop_kind prop,
                                              const Shape& x, const Shape& y);

/// Batch norm (defined in batch_norm.cpp): x's memory layout ([N, C] or NCHW) and the
/// per-channel element count N*H*W; false and *why for other ranks.
bool batch_norm_layout(const KernelQuery& q, dnnl::memory::desc* x, std::int64_t* count,
                       std::string* why);

/// ReLU over n floats in place, keeping NaN (x < 0 ? 0 : x), threads splitting large
/// arrays. oneDNN's ReLU (standalone or as a post-op) computes max(x, 0) with vmaxps, which
/// turns NaN into 0; the matmul and convolution kernels run their ReLU epilogue with this
/// instead, so NaN propagates as in the reference and Eigen kernels.
void relu_keep_nan(float* data, std::int64_t n);

/// Whether a float tensor holds a NaN (or, with `infinities`, a NaN or an infinity): one
/// vectorised pass, threads splitting large tensors.
bool has_nan(const Tensor& t, bool infinities = false);

/// Runs the call with the first kernel of the node's op after the oneDNN ones that accepts
/// it (Eigen, else the reference), without prepared state: for the inputs a oneDNN
/// primitive cannot give the common semantics on (max pooling drops NaN).
void run_fallback(const KernelArgs& args);

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

/// The recurrent kernels (recurrent_product.cpp): lstm, gru and their backward primitives
/// run the Eigen kernels' step loops (`loops`: eigen::lstm_steps, ...) with each step's
/// product as a oneDNN matmul over w_hh packed once per call.
using StepLoops = void (*)(const KernelArgs& args, const eigen::StepProduct& product);
bool supports_recurrent(const KernelQuery& q, std::string* why);
std::shared_ptr<void> prepare_recurrent(const KernelQuery& q);
void run_recurrent(const KernelArgs& args, StepLoops loops);

// One registration function per family.
void register_matmul(KernelTable& t);
void register_elementwise(KernelTable& t);
void register_softmax(KernelTable& t);
void register_conv(KernelTable& t);
void register_pool(KernelTable& t);
void register_batch_norm(KernelTable& t);
void register_recurrent(KernelTable& t);           // lstm, gru
void register_attention(KernelTable& t);           // attention
void register_training_recurrent(KernelTable& t);  // training-only (kiln): their backward

}  // namespace kiln::internal::onednn
