// Callbacks for Trainer::fit: early stopping (with best-weights restore), LR schedules per
// epoch, linear warm-up per step, reduce-on-plateau, gradient clipping, checkpoints every N
// steps / epochs, and a callback made of std::function hooks.
//
//   auto sched = std::make_shared<kiln::optim::StepLR>(opt, 10, 0.5);
//   trainer.fit(train, {.epochs = 40, .validation_split = 0.2, .callbacks = {
//       kiln::train::lr_schedule(sched),
//       kiln::train::clip_grad_norm(1.0),
//       kiln::train::early_stopping({.monitor = "val_loss", .patience = 5,
//                                    .restore_best_weights = true}),
//       kiln::train::checkpoint({.dir = "run/ckpt", .every_epochs = 1}),
//       kiln::train::lambda_callback({.on_epoch_end = [](auto&, auto e, auto& logs) {
//           std::printf("%lld %f\n", (long long)e, logs["loss"]); }})}});
//
// Every callback whose state affects training (early stopping's best value and wait,
// reduce-on-plateau's counters) saves it in checkpoints, so a resumed fit behaves as one
// that never stopped.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "kiln/export.hpp"
#include "kiln/optim/optimizer.hpp"
#include "kiln/train/trainer.hpp"

namespace kiln::train {

/// Whether a monitored value improves by going down or up; automatic: up for names
/// containing "accuracy", "f1", "precision", "recall" or "r2", down otherwise.
enum class Mode { automatic, min, max };

struct EarlyStoppingOptions {
  /// A key of the epoch logs ("val_loss", "val_accuracy", "loss", ...); a missing key is a
  /// ValueError naming the keys there are.
  std::string monitor = "val_loss";
  Mode mode = Mode::automatic;
  /// Epochs without improvement before stopping.
  std::int64_t patience = 0;
  /// An improvement must beat the best value by more than this.
  double min_delta = 0.0;
  /// At the end of fit, restore the parameters and buffers of the best epoch.
  bool restore_best_weights = false;
};
/// Stops fit() after `patience` epochs in a row without improvement of the monitored value.
KILN_API std::shared_ptr<Callback> early_stopping(const EarlyStoppingOptions& options = {});

/// Sets the optimizer's LR from the schedule at the start of every epoch
/// (schedule->set_epoch(epoch)), or before every optimizer step when per_step
/// (schedule->set_epoch(global step), e.g. optim::LinearLR / SequentialLR for a warm-up
/// then a decay). The schedule must be made over the trainer's optimizer, before
/// Trainer::resume (whose restored LR would otherwise become its base: refused).
KILN_API std::shared_ptr<Callback> lr_schedule(std::shared_ptr<optim::LrSchedule> schedule,
                                               bool per_step = false);

/// Linear warm-up over the first `steps` optimizer steps: step s (< steps) uses
/// lr * (start_factor + (1 - start_factor) * s / steps), where lr is the LR in effect
/// (list it after an lr_schedule so that it scales the scheduled LR). Between steps the
/// optimizer holds the unscaled LR.
KILN_API std::shared_ptr<Callback> linear_warmup(std::int64_t steps, double start_factor = 0.0);

struct ReduceOnPlateauOptions {
  std::string monitor = "val_loss";
  Mode mode = Mode::automatic;
  /// New LR = old LR * factor (in (0, 1)), not below min_lr.
  double factor = 0.1;
  std::int64_t patience = 10;
  /// Relative threshold as torch's threshold_mode "rel": improvement means
  /// value < best * (1 - min_delta) (min) or value > best * (1 + min_delta) (max).
  double min_delta = 1e-4;
  /// Epochs to wait after a reduction before counting again.
  std::int64_t cooldown = 0;
  double min_lr = 0.0;
};
/// Multiplies the LR by `factor` after `patience` epochs without improvement of the
/// monitored value (optim::ReduceLROnPlateau, torch's semantics; its counters are saved in
/// checkpoints).
KILN_API std::shared_ptr<Callback> reduce_on_plateau(const ReduceOnPlateauOptions& options = {});

/// Scales each step's gradients to a global L2 norm of at most max_norm
/// (optim::clip_grad_norm) before the optimizer step.
KILN_API std::shared_ptr<Callback> clip_grad_norm(double max_norm);
/// Clamps each step's gradient elements to [-clip, clip] (optim::clip_grad_value).
KILN_API std::shared_ptr<Callback> clip_grad_value(double clip);

struct CheckpointOptions {
  /// Folder of the checkpoint/model pairs (see Trainer::save_checkpoint).
  std::string dir = {};
  /// Save after every N optimizer steps / epochs (0: never).
  std::int64_t every_steps = 0;
  std::int64_t every_epochs = 1;
  /// Pairs to keep (0: all).
  std::int64_t keep_last = 3;
};
/// Saves a consistent checkpoint/model pair every N steps and/or epochs.
KILN_API std::shared_ptr<Callback> checkpoint(const CheckpointOptions& options);

/// A callback from functions; unset ones do nothing.
struct LambdaHooks {
  std::function<void(Trainer&)> on_fit_begin = {};
  std::function<void(Trainer&, std::int64_t)> on_epoch_begin = {};
  std::function<void(Trainer&, std::int64_t)> on_step_begin = {};
  std::function<void(Trainer&, std::span<const Tensor>)> on_gradients = {};
  std::function<void(Trainer&, std::int64_t, const Logs&)> on_step_end = {};
  std::function<void(Trainer&, std::int64_t, Logs&)> on_epoch_end = {};
  std::function<void(Trainer&, bool)> on_fit_end = {};
};
KILN_API std::shared_ptr<Callback> lambda_callback(LambdaHooks hooks);

}  // namespace kiln::train
