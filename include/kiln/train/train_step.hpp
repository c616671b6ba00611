// TrainStep: the loss, its gradients and any extra outputs of a graph, differentiated
// and compiled once, for custom training loops:
//
//   kiln::TrainStep step(loss);                     // d loss / d every parameter
//   kiln::optim::Adam opt(step.parameters(), {.lr = 1e-3});
//   for (const kiln::Feeds& batch : batches) {
//     double l = step.run(batch);
//     opt.step(step.gradients());
//   }
#pragma once

#include <span>
#include <vector>

#include "kiln/export.hpp"
#include "kiln/graph/graph.hpp"
#include "kiln/runtime/executable.hpp"

namespace kiln {

struct TrainStepOptions {
  /// Parameters to differentiate by; empty: every parameter of the graph.
  std::vector<Value> parameters = {};
  /// Further values to compute in the same run (e.g. logits for accuracy).
  std::vector<Value> outputs = {};
  /// Kernel backend restriction (see CompileOptions).
  std::string backend = {};
  /// Fold bias adds and relu into matmul / conv epilogues (see CompileOptions::fuse).
  bool fuse = true;
};

class KILN_API TrainStep {
 public:
  explicit TrainStep(Value loss, TrainStepOptions options = {});

  /// Runs forward and backward in training mode and returns the loss. An observer sees
  /// every step's value (forward and backward; see RunObserver).
  double run(const Feeds& feeds, RunObserver* observer = nullptr);
  /// d loss / d parameter, in parameters() order; valid until the next run (empty before
  /// the first run).
  std::span<const Tensor> gradients() const {
    return views_.empty() ? views_ : views_.subspan(1, params_.size());
  }
  /// The extra outputs of the last run; valid until the next run.
  std::span<const Tensor> outputs() const {
    return views_.empty() ? views_ : views_.subspan(1 + params_.size());
  }
  /// The parameters' tensors (sharing storage with the graph) for an optimizer.
  std::vector<Tensor> parameters() const;
  /// The parameters as graph values.
  const std::vector<Value>& parameter_values() const { return params_; }
  /// The gradient nodes (d loss / d parameter, in parameters() order), e.g. to observe
  /// them with a Capture.
  const std::vector<Value>& gradient_values() const { return grads_; }
  /// The compiled executable (e.g. for plan()).
  Executable& executable() { return exe_; }

 private:
  std::vector<Value> params_;
  std::vector<Value> grads_;
  Executable exe_;
  std::span<const Tensor> views_;
};

}  // namespace kiln
