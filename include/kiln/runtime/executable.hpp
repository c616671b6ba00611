// Executable: a graph compiled for concrete input shapes, then run many times.
//
// Compiling prunes nodes the outputs do not need, infers concrete shapes, picks one
// kernel per node (oneDNN, then Eigen, then the reference kernel) and plans all
// intermediate memory in one arena by liveness. A new set of input shapes (e.g. a new
// batch size) compiles another plan, which is cached: at most plan_cache_size plans holding
// at most plan_cache_bytes of arena together, the least recently used evicted first (its
// memory is released then).
//
// Seeing inside a run: pass a RunObserver to run() or run_views() and it is called after
// every step with a view of the value just computed (nothing is copied unless the observer
// copies it). kiln::Capture is an observer that keeps copies of chosen nodes' or layers'
// values. A run without an observer pays one branch per step.
//
//   kiln::Capture cap;
//   cap.layer("fc1").node(logits);
//   exe.run(feeds, &cap);
//   const kiln::Tensor& h = cap.layer_value("fc1");
//
// One Executable runs one call at a time: concurrent calls on the same object are safe but
// take turns. For parallel inference use kiln::infer::Model, which keeps a pool of them.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kiln/core/tensor.hpp"
#include "kiln/export.hpp"
#include "kiln/graph/graph.hpp"

namespace kiln {

struct CompileOptions {
  /// Dropout is active only in training mode.
  bool training = false;
  /// Restrict kernels to this backend ("reference", "eigen", "onednn"); empty: best available.
  std::string backend = {};
  /// Fold bias adds and relu into matmul / conv epilogues (see plan() for what was fused).
  bool fuse = true;
  /// Refuse floating-point feeds holding NaN or infinity (a ValueError naming the input
  /// and the element); costs one pass over every feed.
  bool check_finite_feeds = false;
  /// Compiled plans kept (one per set of input shapes), least recently used evicted first.
  /// At least one is always kept: the plan of the latest run, whose arena run_views()
  /// returns views into.
  std::size_t plan_cache_size = 8;
  /// Arena bytes the kept plans may hold together (default 512 MiB). Older plans are
  /// evicted past it; after run() (which copies its outputs) the latest plan too, so one
  /// huge batch does not keep its memory. Kernel state (oneDNN primitives) is not counted.
  std::size_t plan_cache_bytes = std::size_t{512} << 20;
  /// What run_into's messages call the outputs, in order (e.g. a model file's signature
  /// names); empty: the graph nodes' names.
  std::vector<std::string> output_names = {};
  /// Promise that the graph's parameters and constants keep their values while this
  /// executable lives (inference of a trained model; infer::Model always sets it). Kernels
  /// may then keep them in the layout they compute fastest in, transformed on the first run
  /// and again only when a parameter's storage is replaced (oneDNN's blocked convolution
  /// weights). A value changed in place afterwards is not seen by such kernels.
  bool constant_parameters = false;
};

/// One step of a run as a RunObserver sees it; everything is valid during the call only.
struct ObservedStep {
  /// The compiled node: op (with a fused epilogue in attrs.post_op), attributes, and the
  /// name and layer scope of the graph node whose value it computes.
  const Node& node;
  /// The graph node whose value `value` is. With fusion (e.g. matmul + bias add + relu
  /// compiled as one step) it is the last node folded in: the relu.
  std::int32_t id;
  /// Every graph node this step computes, in graph order (the matmul, the add, the relu);
  /// only the last one's value exists in a fused plan.
  std::span<const std::int32_t> covers;
  const Tensor& value;
  std::string_view kernel;  ///< the kernel that ran, e.g. "onednn_matmul"
  std::size_t index;        ///< the step's position in the run, from 0
  std::size_t count;        ///< the run's number of steps
};

/// Called after every step of a run (in execution order, on the running thread).
class KILN_API RunObserver {
 public:
  virtual ~RunObserver();
  virtual void on_step(const ObservedStep& step) = 0;
};

/// An observer that copies the values of chosen graph nodes and layers, and nothing else.
/// A layer's value is its output: the value of the last node of its scope that is not
/// part of a gradient (see Node::scope). A node fused into another has no value of its
/// own in a fused plan (compile with fuse = false to see it); asking for it is an error
/// naming the step it was fused into.
class KILN_API Capture : public RunObserver {
 public:
  Capture& node(const Value& v);
  Capture& layer(std::string scope);

  /// The copies of the latest run; throw NameError for what was not asked for or not
  /// computed by the run.
  const Tensor& node_value(const Value& v) const;
  const Tensor& layer_value(const std::string& scope) const;
  /// Scopes captured by the latest run.
  std::vector<std::string> layers() const;

  void on_step(const ObservedStep& step) override;

 private:
  std::vector<std::int32_t> node_ids_;
  std::vector<std::string> scopes_;
  std::vector<std::pair<std::int32_t, Tensor>> nodes_;
  std::vector<std::pair<std::string, Tensor>> layers_;
  std::vector<std::pair<std::int32_t, std::string>> fused_;  // asked-for node, fused into
};

/// Named input tensors for a run.
using Feeds = std::vector<std::pair<std::string, Tensor>>;

class KILN_API Executable {
 public:
  Executable(Graph& graph, std::vector<Value> outputs, CompileOptions options = {});
  ~Executable();
  Executable(Executable&&) noexcept;
  Executable& operator=(Executable&&) noexcept;

  /// Runs with the named inputs and returns the outputs as new tensors.
  /// With an observer, it is called after every step (see RunObserver).
  std::vector<Tensor> run(const Feeds& feeds, RunObserver* observer = nullptr);
  /// Runs into the caller's tensors (I/O binding, as in ONNX Runtime): `outputs[i]` must be
  /// a contiguous tensor of output i's dtype and of the shape this run gives it, e.g. a
  /// Tensor::borrow of the caller's buffer, reused from run to run. Nothing is allocated
  /// for the outputs: a step that computes an output in memory of its own writes straight
  /// into a 64-byte aligned tensor, and any other output is copied into its tensor. Feeds
  /// are read in place (Tensor::borrow inputs are not copied either). Throws ValueError,
  /// DTypeError or ShapeError naming the output before anything runs; if a kernel throws,
  /// the outputs' contents are unspecified.
  void run_into(const Feeds& feeds, std::span<Tensor> outputs, RunObserver* observer = nullptr);
  /// Runs and returns views of the outputs inside the executable; they stay valid until
  /// the next run (no copies: for training loops).
  std::span<const Tensor> run_views(const Feeds& feeds, RunObserver* observer = nullptr);

  /// The compiled plan for these feeds' shapes: one line per node with its op (fused
  /// epilogues show as e.g. "conv2d+bias+relu"), kernel, shape and arena offset, plus the
  /// arena size.
  std::string plan(const Feeds& feeds);
  /// Number of compiled plans in the cache, and the arena bytes they hold.
  std::size_t cached_plans() const;
  std::size_t cached_plan_bytes() const;
  /// How many times run/run_views has been called (seeds dropout: run k's masks depend on
  /// k only, so a training run resumed with set_run_count draws the masks it would have).
  std::uint64_t run_count() const;
  /// Sets the counter the next run uses (e.g. restored from a checkpoint).
  void set_run_count(std::uint64_t count);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln
