// TrainStep: the loss, its gradients and any extra outputs of a graph, differentiated
// and compiled once, for custom training loops (with kiln/optim/optimizer.hpp):
//
//   kiln::TrainStep step(loss);                     // d loss / d every parameter
//   kiln::optim::Adam opt(step.named_parameters(), {.lr = 1e-3});
//   for (const kiln::Feeds& batch : batches) {      // {{"x", x}, {"label", y}}
//     double l = step.run(batch);
//     opt.step(step.gradients());
//     std::printf("loss %.4f\n", l);
//   }
//
// The constructor checks the loss (a float scalar), the parameters (trainable parameters
// of the loss's graph, at least one of which the loss depends on) and the extra outputs
// before it changes the graph; when it throws, the graph is unchanged.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <utility>
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
  /// run() throws NonFiniteError when the loss or a gradient holds a NaN or infinity, so
  /// an optimizer never steps on one (costs one pass over the gradients per run).
  bool check_finite = true;
  /// On such an error, name the first step of the run that produced a NaN or infinity:
  /// its op, node, layer scope and pass (forward / backward), or the feed or parameter
  /// that already held one. Checks every step's value (slow: for debugging). Implies
  /// check_finite.
  bool detect_anomaly = false;
};

class KILN_API TrainStep {
 public:
  /// Throws ValueError (empty loss, values of another graph, no trainable parameter that
  /// reaches the loss), DTypeError (integer loss) or ShapeError (non-scalar loss), naming
  /// the values; the graph is unchanged then.
  explicit TrainStep(Value loss, TrainStepOptions options = {});

  /// Runs forward and backward in training mode and returns the loss. An observer sees
  /// every step's value (forward and backward; see RunObserver). Throws NonFiniteError for
  /// a non-finite loss or gradient (see TrainStepOptions::check_finite); the run still
  /// counts (run_count) and gradients() holds its values.
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
  /// The same with their names: an optimizer made from them keys its state by name.
  std::vector<std::pair<std::string, Tensor>> named_parameters() const;
  /// The parameters as graph values.
  const std::vector<Value>& parameter_values() const { return params_; }
  /// The gradient nodes (d loss / d parameter, in parameters() order), e.g. to observe
  /// them with a Capture.
  const std::vector<Value>& gradient_values() const { return grads_; }
  /// The compiled executable (e.g. for plan()).
  Executable& executable() { return exe_; }
  /// Runs so far: dropout masks follow it, so a checkpoint saves it (CheckpointSave::
  /// train_step) and resuming restores it; see Executable::run_count.
  std::uint64_t run_count() const { return exe_.run_count(); }
  void set_run_count(std::uint64_t count) { exe_.set_run_count(count); }

 private:
  std::vector<Value> params_;
  std::vector<Value> grads_;
  Executable exe_;
  std::span<const Tensor> views_;
  bool check_finite_ = true;
  bool detect_anomaly_ = false;
};

}  // namespace kiln
