// Optimizers that update parameter tensors in place: SGD (momentum, Nesterov), Adam, AdamW
// and RMSprop with PyTorch's semantics; gradient clipping by global norm; LR schedules
// (step, multi-step, exponential, cosine, linear / warm-up, polynomial, sequential, and
// reduce-on-plateau).
//
//   kiln::optim::Adam opt(kiln::nn::named_parameters(g), {.lr = 1e-3});
//   for (...) { auto out = exe.run_views(feeds); opt.step(out.subspan(1)); }
//
// The parameter tensors share storage with the graph, so an update is what the next run
// sees. There is no zero_grad: each step takes the gradients of one run. Each update is
// one fused pass over a parameter's memory (f32 or f64).
//
// Parameters are given with their names (nn::named_parameters, TrainStep::named_parameters)
// or as plain tensors, which are named by position ("0", "1", ...). The optimizer's state
// is keyed by those names, so a checkpoint restores into a graph whose parameters were
// created in another order (checkpoints name the state by graph parameter in either case).
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

namespace kiln::optim {

/// Named optimizer state: "step" (i64 scalar), "lr" (f64 scalar) and per-parameter
/// slots "<parameter name>.<slot>" such as "fc1.weight.exp_avg" or "0.exp_avg" (same shape
/// and dtype as the parameter). Slot names hold no '.', so the last '.' separates them.
using State = std::vector<std::pair<std::string, Tensor>>;

/// Parameters with their names, e.g. {{"fc1.weight", w}, {"fc1.bias", b}}.
using NamedParameters = std::vector<std::pair<std::string, Tensor>>;

/// Plain tensors named by position: "0", "1", ...
KILN_API NamedParameters named_by_position(std::vector<Tensor> parameters);

class KILN_API Optimizer {
 public:
  virtual ~Optimizer();
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;
  Optimizer(Optimizer&&) noexcept;
  Optimizer& operator=(Optimizer&&) noexcept;

  /// Updates every parameter from its gradient (same order, shape and dtype). Throws
  /// ValueError for a wrong count, ShapeError / DTypeError naming the parameter index;
  /// nothing is updated when a check fails.
  void step(std::span<const Tensor> grads);
  void step(const std::vector<Tensor>& grads) { step(std::span<const Tensor>(grads)); }

  double lr() const { return lr_; }
  /// Sets the learning rate (>= 0) used by the next steps.
  void set_lr(double lr);
  /// Number of steps taken (restored by load_state).
  std::int64_t step_count() const { return step_count_; }
  /// The parameters (sharing storage with the caller's tensors).
  const std::vector<Tensor>& parameters() const { return params_; }
  /// Their names, in the same order (positions "0", "1", ... for unnamed parameters).
  const std::vector<std::string>& parameter_names() const { return names_; }
  /// "sgd", "adam", "adamw" or "rmsprop".
  std::string_view kind() const { return kind_; }

  /// A copy of the state, for checkpoints.
  State state() const;
  /// The names of state()'s entries, without copying the tensors.
  std::vector<std::string> state_names() const;
  /// Restores a state taken from an optimizer of the same kind over parameters of the same
  /// names and shapes, matched by name (the order of the entries does not matter). Throws
  /// ValueError for missing or unknown entries (naming all of them), ShapeError /
  /// DTypeError for tensors that do not match; nothing changes when a check fails.
  void load_state(const State& state);

 protected:
  /// Throws ValueError for an empty list, an empty or repeated name, an empty or
  /// non-contiguous tensor or tensors sharing storage; DTypeError for a non-float one.
  Optimizer(NamedParameters parameters, double lr, std::string kind);
  Optimizer(std::vector<Tensor> parameters, double lr, std::string kind);
  /// Registers a per-parameter slot, zero-initialised; returns its index for slot().
  std::size_t add_slot(std::string name);
  Tensor& slot(std::size_t slot_index, std::size_t param_index) {
    return slots_[slot_index][param_index];
  }
  /// Updates parameter `index` in place; step_count() already counts this step.
  virtual void update(std::size_t index, Tensor& param, const Tensor& grad) = 0;

 private:
  std::vector<Tensor> params_;
  std::vector<std::string> names_;
  double lr_ = 0.0;
  std::int64_t step_count_ = 0;
  std::string kind_;
  std::vector<std::string> slot_names_;
  std::vector<std::vector<Tensor>> slots_;  // [slot][param]
  double schedule_base_lr_ = -1.0;          // set by the first LrSchedule (torch's initial_lr)
  friend class LrSchedule;
};

struct SGDOptions {
  double lr = 1e-2;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;
  /// Needs momentum > 0 and dampening == 0.
  bool nesterov = false;
};

/// torch.optim.SGD: g += wd * p; buf = momentum * buf + (1 - dampening) * g (buf = g at the
/// first step); g = nesterov ? g + momentum * buf : buf; p -= lr * g.
class KILN_API SGD : public Optimizer {
 public:
  SGD(NamedParameters parameters, SGDOptions options = {});
  SGD(std::vector<Tensor> parameters, SGDOptions options = {});
  const SGDOptions& options() const { return options_; }

 protected:
  void update(std::size_t index, Tensor& param, const Tensor& grad) override;

 private:
  SGDOptions options_;
  std::size_t momentum_slot_ = 0;
};

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  /// L2 penalty added to the gradient (coupled, as torch.optim.Adam).
  double weight_decay = 0.0;
  bool amsgrad = false;
};

/// torch.optim.Adam with bias correction (and optionally AMSGrad).
class KILN_API Adam : public Optimizer {
 public:
  Adam(NamedParameters parameters, AdamOptions options = {});
  Adam(std::vector<Tensor> parameters, AdamOptions options = {});
  const AdamOptions& options() const { return options_; }

 protected:
  Adam(NamedParameters parameters, AdamOptions options, bool decoupled, std::string kind);
  void update(std::size_t index, Tensor& param, const Tensor& grad) override;

 private:
  AdamOptions options_;
  bool decoupled_ = false;
  std::size_t exp_avg_ = 0;
  std::size_t exp_avg_sq_ = 0;
  std::size_t max_exp_avg_sq_ = 0;
};

struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  /// Decoupled decay: p *= 1 - lr * weight_decay before the Adam update.
  double weight_decay = 1e-2;
  bool amsgrad = false;
};

/// torch.optim.AdamW.
class KILN_API AdamW : public Adam {
 public:
  AdamW(NamedParameters parameters, AdamWOptions options = {});
  AdamW(std::vector<Tensor> parameters, AdamWOptions options = {});
};

struct RMSpropOptions {
  double lr = 1e-2;
  double alpha = 0.99;
  double eps = 1e-8;
  double weight_decay = 0.0;
  double momentum = 0.0;
  /// Normalise by the estimated variance instead of the second moment.
  bool centered = false;
};

/// torch.optim.RMSprop.
class KILN_API RMSprop : public Optimizer {
 public:
  RMSprop(NamedParameters parameters, RMSpropOptions options = {});
  RMSprop(std::vector<Tensor> parameters, RMSpropOptions options = {});
  const RMSpropOptions& options() const { return options_; }

 protected:
  void update(std::size_t index, Tensor& param, const Tensor& grad) override;

 private:
  RMSpropOptions options_;
  std::size_t square_avg_ = 0;
  std::size_t momentum_buffer_ = 0;
  std::size_t grad_avg_ = 0;
};

/// Scales the gradients in place so that their global L2 norm is at most max_norm
/// (torch.nn.utils.clip_grad_norm_: factor max_norm / (norm + 1e-6) when it is < 1) and
/// returns the norm before clipping. The tensors must be contiguous f32 or f64; they are
/// modified through their shared storage.
KILN_API double clip_grad_norm(std::span<const Tensor> grads, double max_norm);
/// Clamps every gradient element to [-clip, clip] in place.
KILN_API void clip_grad_value(std::span<const Tensor> grads, double clip);

/// Learning-rate schedule: computes the LR of each epoch from the optimizer's LR at
/// construction (the base LR) and sets it. Call step() once per epoch, after training it
/// (or once per optimizer step for a step-based schedule, e.g. a warm-up: "epoch" is then
/// the step). Closed forms, so set_epoch resumes anywhere. The base LR is the optimizer's
/// LR when the first schedule over it was made (torch's initial_lr), so schedules chained
/// in a SequentialLR share it; a schedule whose LR at epoch 0 is not the base (LinearLR,
/// MultiStepLR with a milestone at 0, SequentialLR) sets it when made.
class KILN_API LrSchedule {
 public:
  virtual ~LrSchedule();
  /// Advances one epoch and sets the optimizer's LR.
  void step();
  /// Jumps to an epoch (e.g. when resuming from a checkpoint) and sets the LR.
  void set_epoch(std::int64_t epoch);
  std::int64_t epoch() const { return epoch_; }
  double base_lr() const { return base_lr_; }
  /// The LR at an epoch (0 is the base LR).
  virtual double lr_at(std::int64_t epoch) const = 0;

 protected:
  explicit LrSchedule(Optimizer& optimizer);

 private:
  Optimizer* optimizer_;
  double base_lr_;
  std::int64_t epoch_ = 0;
};

/// lr = base * gamma^(epoch / step_size) (torch StepLR).
class KILN_API StepLR : public LrSchedule {
 public:
  StepLR(Optimizer& optimizer, std::int64_t step_size, double gamma = 0.1);
  double lr_at(std::int64_t epoch) const override;

 private:
  std::int64_t step_size_;
  double gamma_;
};

/// lr = base * gamma^epoch (torch ExponentialLR).
class KILN_API ExponentialLR : public LrSchedule {
 public:
  ExponentialLR(Optimizer& optimizer, double gamma);
  double lr_at(std::int64_t epoch) const override;

 private:
  double gamma_;
};

/// lr = eta_min + (base - eta_min) * (1 + cos(pi * epoch / t_max)) / 2 (torch
/// CosineAnnealingLR; periodic past t_max, as torch's).
class KILN_API CosineAnnealingLR : public LrSchedule {
 public:
  CosineAnnealingLR(Optimizer& optimizer, std::int64_t t_max, double eta_min = 0.0);
  double lr_at(std::int64_t epoch) const override;

 private:
  std::int64_t t_max_;
  double eta_min_;
};

/// lr = base * gamma^(number of milestones <= epoch) (torch MultiStepLR). Milestones are
/// ascending (a repeated one counts as often as it appears), >= 0.
class KILN_API MultiStepLR : public LrSchedule {
 public:
  MultiStepLR(Optimizer& optimizer, std::vector<std::int64_t> milestones, double gamma = 0.1);
  double lr_at(std::int64_t epoch) const override;

 private:
  std::vector<std::int64_t> milestones_;
  double gamma_;
};

/// lr = base * (start + (end - start) * min(epoch, total_iters) / total_iters) (torch
/// LinearLR). Stepped per optimizer step it is a linear warm-up from start_factor * base
/// to base over total_iters steps; see SequentialLR to continue with another schedule.
class KILN_API LinearLR : public LrSchedule {
 public:
  LinearLR(Optimizer& optimizer, double start_factor = 1.0 / 3, double end_factor = 1.0,
           std::int64_t total_iters = 5);
  double lr_at(std::int64_t epoch) const override;

 private:
  double start_, end_;
  std::int64_t total_;
};

/// lr = base * (1 - min(epoch, total_iters) / total_iters)^power (torch PolynomialLR).
class KILN_API PolynomialLR : public LrSchedule {
 public:
  PolynomialLR(Optimizer& optimizer, std::int64_t total_iters = 5, double power = 1.0);
  double lr_at(std::int64_t epoch) const override;

 private:
  std::int64_t total_;
  double power_;
};

/// Schedules one after another (torch SequentialLR): before milestones[0] the first one;
/// from milestones[k - 1] on, schedule k counted from 0 at its milestone. All must be made
/// over the same optimizer, before the first step; n schedules need n - 1 ascending
/// milestones (> 0). A linear warm-up then cosine decay, stepped per optimizer step:
///
///   kiln::optim::SequentialLR lr(opt, {std::make_shared<kiln::optim::LinearLR>(opt, 0.01, 1.0,
///   500),
///                                      std::make_shared<kiln::optim::CosineAnnealingLR>(opt,
///                                      9500)},
///                                {500});
class KILN_API SequentialLR : public LrSchedule {
 public:
  SequentialLR(Optimizer& optimizer, std::vector<std::shared_ptr<LrSchedule>> schedules,
               std::vector<std::int64_t> milestones);
  double lr_at(std::int64_t epoch) const override;

 private:
  std::vector<std::shared_ptr<LrSchedule>> schedules_;
  std::vector<std::int64_t> milestones_;
};

struct ReduceLROnPlateauOptions {
  enum class Mode { min, max };
  enum class ThresholdMode { rel, abs };
  /// min: a lower metric is better (a loss); max: a higher one (an accuracy).
  Mode mode = Mode::min;
  /// New LR = max(LR * factor, min_lr); factor in [0, 1).
  double factor = 0.1;
  /// Epochs without improvement tolerated; the LR drops on the (patience + 1)-th.
  std::int64_t patience = 10;
  /// Improvement needed: rel: better than best * (1 -/+ threshold); abs: best -/+ threshold.
  double threshold = 1e-4;
  ThresholdMode threshold_mode = ThresholdMode::rel;
  /// Epochs after a reduction during which bad epochs are not counted.
  std::int64_t cooldown = 0;
  double min_lr = 0.0;
  /// A reduction smaller than this is skipped.
  double eps = 1e-8;
};

/// Lowers the optimizer's LR when a metric stops improving (torch ReduceLROnPlateau): call
/// step(metric) once per epoch with e.g. the validation loss. A NaN metric counts as no
/// improvement. state() / set_state() save and restore its counters (the LR itself is part
/// of the optimizer's state).
class KILN_API ReduceLROnPlateau {
 public:
  explicit ReduceLROnPlateau(Optimizer& optimizer, ReduceLROnPlateauOptions options = {});
  /// Records one epoch's metric; returns true when it lowered the LR.
  bool step(double metric);

  struct State {
    double best = 0;                    ///< best metric so far (+-inf before the first)
    std::int64_t bad_epochs = 0;        ///< epochs since the best, outside cooldowns
    std::int64_t cooldown_counter = 0;  ///< epochs of cooldown left
    std::int64_t epoch = 0;             ///< steps taken
  };
  State state() const { return state_; }
  void set_state(const State& state);

 private:
  bool better(double metric) const;
  Optimizer* optimizer_;
  ReduceLROnPlateauOptions options_;
  State state_;
};

}  // namespace kiln::optim
