// Executable: a graph compiled for concrete input shapes, then run many times.
//
// Compiling prunes nodes the outputs do not need, infers concrete shapes, picks one
// kernel per node (oneDNN, then Eigen, then the reference kernel) and plans all
// intermediate memory in one arena by liveness. A new set of input shapes (e.g. a new
// batch size) compiles another plan, which is cached.
//
// One Executable runs one call at a time: concurrent calls on the same object are safe but
// take turns. For parallel inference use kiln::infer::Model, which keeps a pool of them.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
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
  std::vector<Tensor> run(const Feeds& feeds);
  /// Runs and returns views of the outputs inside the executable; they stay valid until
  /// the next run (no copies: for training loops).
  std::span<const Tensor> run_views(const Feeds& feeds);

  /// The compiled plan for these feeds' shapes: one line per node with its op (fused
  /// epilogues show as e.g. "conv2d+bias+relu"), kernel, shape and arena offset, plus the
  /// arena size.
  std::string plan(const Feeds& feeds);
  /// Number of compiled plans in the cache.
  std::size_t cached_plans() const;
  /// How many times run/run_views has been called (seeds dropout).
  std::uint64_t run_count() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln
