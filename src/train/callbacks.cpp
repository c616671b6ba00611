// The built-in callbacks of kiln/train/callbacks.hpp.
#include "kiln/train/callbacks.hpp"

#include <cmath>
#include <limits>
#include <utility>

#include "internal/text.hpp"
#include "kiln/core/error.hpp"

namespace kiln::train {
namespace {

bool higher_is_better(const std::string& monitor, Mode mode) {
  if (mode != Mode::automatic) return mode == Mode::max;
  for (const char* up : {"accuracy", "f1", "precision", "recall", "r2"})
    if (monitor.find(up) != std::string::npos) return true;
  return false;
}

double monitored(const Logs& logs, const std::string& monitor, const char* who) {
  auto it = logs.find(monitor);
  if (it == logs.end()) {
    std::vector<std::string> keys;
    for (const auto& [k, v] : logs) keys.push_back(k);
    throw ValueError(std::string(who) + ": monitored value '" + monitor +
                     "' is not in the epoch logs (they hold " + internal::quoted_list(keys) + ")");
  }
  return it->second;
}

Tensor f64_tensor(double v) { return Tensor::from<double>({v}, Shape({1})); }
Tensor i64_tensor(std::int64_t v) { return Tensor::from<std::int64_t>({v}, Shape({1})); }

const Tensor& entry(const CallbackState& state, const std::string& name, const char* who) {
  for (const auto& [n, t] : state)
    if (n == name) return t;
  throw ValueError(std::string(who) + ": the checkpoint's state lacks '" + name + "'");
}

double f64_entry(const CallbackState& s, const std::string& name, const char* who) {
  const Tensor& t = entry(s, name, who);
  if (t.dtype() != DType::f64 || t.numel() != 1)
    throw ValueError(std::string(who) + ": state '" + name + "' must be one f64");
  return t.data<double>()[0];
}

std::int64_t i64_entry(const CallbackState& s, const std::string& name, const char* who) {
  const Tensor& t = entry(s, name, who);
  if (t.dtype() != DType::i64 || t.numel() != 1)
    throw ValueError(std::string(who) + ": state '" + name + "' must be one i64");
  return t.data<std::int64_t>()[0];
}

// Parameters and buffers of the graph, by node name.
std::vector<std::pair<std::string, Tensor>> weights_of(Graph& g) {
  std::vector<std::pair<std::string, Tensor>> out;
  for (const Value& v : g.parameters()) out.emplace_back(v.name(), g.tensor(v));
  for (const Value& v : g.buffers()) out.emplace_back(v.name(), g.tensor(v));
  return out;
}

class EarlyStopping : public Callback {
 public:
  explicit EarlyStopping(EarlyStoppingOptions o)
      : o_(std::move(o)), up_(higher_is_better(o_.monitor, o_.mode)) {
    if (o_.patience < 0) throw ValueError("early_stopping: patience must be >= 0");
    if (o_.min_delta < 0) throw ValueError("early_stopping: min_delta must be >= 0");
  }
  std::string kind() const override { return "early_stopping"; }

  void on_fit_begin(Trainer&) override {
    best_ =
        up_ ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity();
    wait_ = 0;
    best_epoch_ = -1;
    best_weights_.clear();
  }

  void on_epoch_end(Trainer& t, std::int64_t epoch, Logs& logs) override {
    const double v = monitored(logs, o_.monitor, "early_stopping");
    const bool better = up_ ? v - o_.min_delta > best_ : v + o_.min_delta < best_;
    if (better) {
      best_ = v;
      best_epoch_ = epoch;
      wait_ = 0;
      if (o_.restore_best_weights) {
        best_weights_.clear();
        for (auto& [name, w] : weights_of(t.graph())) best_weights_.emplace_back(name, w.clone());
      }
      return;
    }
    if (++wait_ > o_.patience) t.stop();
  }

  void on_fit_end(Trainer& t, bool error) override {
    if (error || !o_.restore_best_weights || best_weights_.empty()) return;
    for (auto& [name, w] : weights_of(t.graph()))
      for (const auto& [bn, b] : best_weights_)
        if (bn == name) w.copy_from(b);
  }

  CallbackState state() const override {
    CallbackState s{{"best", f64_tensor(best_)},
                    {"wait", i64_tensor(wait_)},
                    {"best_epoch", i64_tensor(best_epoch_)}};
    for (const auto& [name, w] : best_weights_) s.emplace_back("weights:" + name, w.clone());
    return s;
  }

  void load_state(const CallbackState& s) override {
    best_ = f64_entry(s, "best", "early_stopping");
    wait_ = i64_entry(s, "wait", "early_stopping");
    best_epoch_ = i64_entry(s, "best_epoch", "early_stopping");
    best_weights_.clear();
    for (const auto& [name, t] : s)
      if (name.rfind("weights:", 0) == 0) best_weights_.emplace_back(name.substr(8), t.clone());
  }

 private:
  EarlyStoppingOptions o_;
  bool up_;
  double best_ = 0;
  std::int64_t wait_ = 0;
  std::int64_t best_epoch_ = -1;
  std::vector<std::pair<std::string, Tensor>> best_weights_;
};

class ScheduleCallback : public Callback {
 public:
  ScheduleCallback(std::shared_ptr<optim::LrSchedule> s, bool per_step)
      : s_(std::move(s)), per_step_(per_step) {
    if (!s_) throw ValueError("lr_schedule: the schedule is null");
  }
  std::string kind() const override { return "lr_schedule"; }
  void on_epoch_begin(Trainer&, std::int64_t epoch) override {
    if (!per_step_) s_->set_epoch(epoch);
  }
  void on_step_begin(Trainer&, std::int64_t step) override {
    if (per_step_) s_->set_epoch(step);
  }
  // The base LR is saved to catch a schedule made after Trainer::resume, whose base would
  // be the restored (scheduled) LR instead of the original one.
  CallbackState state() const override { return {{"base_lr", f64_tensor(s_->base_lr())}}; }
  void load_state(const CallbackState& s) override {
    const double saved = f64_entry(s, "base_lr", "lr_schedule");
    if (saved != s_->base_lr())
      throw ValueError("lr_schedule: the schedule's base LR is " + std::to_string(s_->base_lr()) +
                       " but the checkpoint's run used " + std::to_string(saved) +
                       " (make the schedule before Trainer::resume, which restores the "
                       "optimizer's scheduled LR)");
  }

 private:
  std::shared_ptr<optim::LrSchedule> s_;
  bool per_step_;
};

// Scales the LR during a step and puts the unscaled one back after it, so that between
// steps (and in checkpoints) the optimizer holds the LR other callbacks set.
class LinearWarmup : public Callback {
 public:
  LinearWarmup(std::int64_t steps, double start) : steps_(steps), start_(start) {
    if (steps < 0) throw ValueError("linear_warmup: steps must be >= 0");
    if (!(start >= 0.0 && start <= 1.0))
      throw ValueError("linear_warmup: start_factor must be in [0, 1], got " +
                       std::to_string(start));
  }
  std::string kind() const override { return "linear_warmup"; }
  void on_step_begin(Trainer& t, std::int64_t step) override {
    if (step >= steps_) return;
    lr_ = t.optimizer().lr();
    const double f =
        start_ + (1.0 - start_) * static_cast<double>(step) / static_cast<double>(steps_);
    t.optimizer().set_lr(lr_ * f);
    scaled_ = true;
  }
  void on_step_end(Trainer& t, std::int64_t, const Logs&) override { restore(t); }
  void on_fit_end(Trainer& t, bool) override { restore(t); }

 private:
  void restore(Trainer& t) {
    if (scaled_) t.optimizer().set_lr(lr_);
    scaled_ = false;
  }
  std::int64_t steps_;
  double start_;
  double lr_ = 0;
  bool scaled_ = false;
};

// optim::ReduceLROnPlateau fed with a monitored value of the epoch logs.
class ReduceOnPlateau : public Callback {
 public:
  explicit ReduceOnPlateau(ReduceOnPlateauOptions o) : o_(std::move(o)) {
    if (!(o_.factor > 0.0 && o_.factor < 1.0))
      throw ValueError("reduce_on_plateau: factor must be in (0, 1), got " +
                       std::to_string(o_.factor));
    if (o_.patience < 0 || o_.cooldown < 0 || o_.min_lr < 0 || o_.min_delta < 0)
      throw ValueError("reduce_on_plateau: patience, cooldown, min_lr and min_delta must be >= 0");
  }
  std::string kind() const override { return "reduce_on_plateau"; }
  void on_fit_begin(Trainer& t) override {
    using O = optim::ReduceLROnPlateauOptions;
    plateau_ = std::make_unique<optim::ReduceLROnPlateau>(
        t.optimizer(),
        O{.mode = higher_is_better(o_.monitor, o_.mode) ? O::Mode::max : O::Mode::min,
          .factor = o_.factor,
          .patience = o_.patience,
          .threshold = o_.min_delta,
          .threshold_mode = O::ThresholdMode::rel,
          .cooldown = o_.cooldown,
          .min_lr = o_.min_lr});
  }
  void on_epoch_end(Trainer&, std::int64_t, Logs& logs) override {
    plateau_->step(monitored(logs, o_.monitor, "reduce_on_plateau"));
  }
  CallbackState state() const override {
    if (!plateau_) return {};
    const auto s = plateau_->state();
    return {{"best", f64_tensor(s.best)},
            {"bad_epochs", i64_tensor(s.bad_epochs)},
            {"cooldown_counter", i64_tensor(s.cooldown_counter)},
            {"epoch", i64_tensor(s.epoch)}};
  }
  void load_state(const CallbackState& s) override {
    const char* who = "reduce_on_plateau";
    plateau_->set_state({.best = f64_entry(s, "best", who),
                         .bad_epochs = i64_entry(s, "bad_epochs", who),
                         .cooldown_counter = i64_entry(s, "cooldown_counter", who),
                         .epoch = i64_entry(s, "epoch", who)});
  }

 private:
  ReduceOnPlateauOptions o_;
  std::unique_ptr<optim::ReduceLROnPlateau> plateau_;
};

class ClipNorm : public Callback {
 public:
  explicit ClipNorm(double max_norm) : max_norm_(max_norm) {
    if (!(max_norm > 0)) throw ValueError("clip_grad_norm: max_norm must be > 0");
  }
  std::string kind() const override { return "clip_grad_norm"; }
  void on_gradients(Trainer&, std::span<const Tensor> g) override {
    (void)optim::clip_grad_norm(g, max_norm_);
  }

 private:
  double max_norm_;
};

class ClipValue : public Callback {
 public:
  explicit ClipValue(double clip) : clip_(clip) {
    if (!(clip > 0)) throw ValueError("clip_grad_value: clip must be > 0");
  }
  std::string kind() const override { return "clip_grad_value"; }
  void on_gradients(Trainer&, std::span<const Tensor> g) override {
    optim::clip_grad_value(g, clip_);
  }

 private:
  double clip_;
};

class CheckpointCallback : public Callback {
 public:
  explicit CheckpointCallback(CheckpointOptions o) : o_(std::move(o)) {
    if (o_.dir.empty()) throw ValueError("checkpoint: dir is empty");
    if (o_.every_steps < 0 || o_.every_epochs < 0 || o_.keep_last < 0)
      throw ValueError("checkpoint: every_steps, every_epochs and keep_last must be >= 0");
  }
  std::string kind() const override { return "checkpoint"; }
  void on_step_complete(Trainer& t, std::int64_t step) override {
    if (o_.every_steps > 0 && (step + 1) % o_.every_steps == 0) save(t);
  }
  void on_epoch_complete(Trainer& t, std::int64_t epoch) override {
    // A step checkpoint of this very moment (the epoch's last step) is already the same.
    if (o_.every_epochs > 0 && (epoch + 1) % o_.every_epochs == 0 && t.global_step() != saved_)
      save(t);
  }

 private:
  void save(Trainer& t) {
    t.save_checkpoint(o_.dir, {.keep_last = o_.keep_last});
    saved_ = t.global_step();
  }
  CheckpointOptions o_;
  std::int64_t saved_ = -1;
};

class Lambda : public Callback {
 public:
  explicit Lambda(LambdaHooks h) : h_(std::move(h)) {}
  std::string kind() const override { return "lambda"; }
  void on_fit_begin(Trainer& t) override {
    if (h_.on_fit_begin) h_.on_fit_begin(t);
  }
  void on_epoch_begin(Trainer& t, std::int64_t e) override {
    if (h_.on_epoch_begin) h_.on_epoch_begin(t, e);
  }
  void on_step_begin(Trainer& t, std::int64_t s) override {
    if (h_.on_step_begin) h_.on_step_begin(t, s);
  }
  void on_gradients(Trainer& t, std::span<const Tensor> g) override {
    if (h_.on_gradients) h_.on_gradients(t, g);
  }
  void on_step_end(Trainer& t, std::int64_t s, const Logs& l) override {
    if (h_.on_step_end) h_.on_step_end(t, s, l);
  }
  void on_epoch_end(Trainer& t, std::int64_t e, Logs& l) override {
    if (h_.on_epoch_end) h_.on_epoch_end(t, e, l);
  }
  void on_fit_end(Trainer& t, bool error) override {
    if (h_.on_fit_end) h_.on_fit_end(t, error);
  }

 private:
  LambdaHooks h_;
};

}  // namespace

std::shared_ptr<Callback> early_stopping(const EarlyStoppingOptions& options) {
  return std::make_shared<EarlyStopping>(options);
}
std::shared_ptr<Callback> lr_schedule(std::shared_ptr<optim::LrSchedule> schedule, bool per_step) {
  return std::make_shared<ScheduleCallback>(std::move(schedule), per_step);
}
std::shared_ptr<Callback> linear_warmup(std::int64_t steps, double start_factor) {
  return std::make_shared<LinearWarmup>(steps, start_factor);
}
std::shared_ptr<Callback> reduce_on_plateau(const ReduceOnPlateauOptions& options) {
  return std::make_shared<ReduceOnPlateau>(options);
}
std::shared_ptr<Callback> clip_grad_norm(double max_norm) {
  return std::make_shared<ClipNorm>(max_norm);
}
std::shared_ptr<Callback> clip_grad_value(double clip) { return std::make_shared<ClipValue>(clip); }
std::shared_ptr<Callback> checkpoint(const CheckpointOptions& options) {
  return std::make_shared<CheckpointCallback>(options);
}
std::shared_ptr<Callback> lambda_callback(LambdaHooks hooks) {
  return std::make_shared<Lambda>(std::move(hooks));
}

}  // namespace kiln::train
