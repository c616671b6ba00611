// Learning-rate schedules.
#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <numbers>
#include <string>
#include <vector>

#include "kiln/core/error.hpp"
#include "kiln/optim/optimizer.hpp"

namespace kiln::optim {

LrSchedule::LrSchedule(Optimizer& optimizer) : optimizer_(&optimizer) {
  if (optimizer.schedule_base_lr_ < 0) optimizer.schedule_base_lr_ = optimizer.lr();
  base_lr_ = optimizer.schedule_base_lr_;
}

LrSchedule::~LrSchedule() = default;

void LrSchedule::step() { set_epoch(epoch_ + 1); }

void LrSchedule::set_epoch(std::int64_t epoch) {
  if (epoch < 0)
    throw ValueError("optim::LrSchedule: epoch must be >= 0, got " + std::to_string(epoch));
  epoch_ = epoch;
  optimizer_->set_lr(lr_at(epoch));
}

StepLR::StepLR(Optimizer& optimizer, std::int64_t step_size, double gamma)
    : LrSchedule(optimizer), step_size_(step_size), gamma_(gamma) {
  if (step_size <= 0) {
    throw ValueError("optim::StepLR: step_size must be > 0, got " + std::to_string(step_size));
  }
  if (!(gamma >= 0.0) || !std::isfinite(gamma)) {
    throw ValueError("optim::StepLR: gamma must be finite and >= 0, got " + std::to_string(gamma));
  }
}

double StepLR::lr_at(std::int64_t epoch) const {
  return base_lr() * std::pow(gamma_, static_cast<double>(epoch / step_size_));
}

ExponentialLR::ExponentialLR(Optimizer& optimizer, double gamma)
    : LrSchedule(optimizer), gamma_(gamma) {
  if (!(gamma >= 0.0) || !std::isfinite(gamma)) {
    throw ValueError("optim::ExponentialLR: gamma must be finite and >= 0, got " +
                     std::to_string(gamma));
  }
}

double ExponentialLR::lr_at(std::int64_t epoch) const {
  return base_lr() * std::pow(gamma_, static_cast<double>(epoch));
}

CosineAnnealingLR::CosineAnnealingLR(Optimizer& optimizer, std::int64_t t_max, double eta_min)
    : LrSchedule(optimizer), t_max_(t_max), eta_min_(eta_min) {
  if (t_max <= 0) {
    throw ValueError("optim::CosineAnnealingLR: t_max must be > 0, got " + std::to_string(t_max));
  }
  if (!(eta_min >= 0.0) || !std::isfinite(eta_min)) {
    throw ValueError("optim::CosineAnnealingLR: eta_min must be finite and >= 0, got " +
                     std::to_string(eta_min));
  }
}

double CosineAnnealingLR::lr_at(std::int64_t epoch) const {
  const double phase = std::numbers::pi * static_cast<double>(epoch) / static_cast<double>(t_max_);
  return eta_min_ + (base_lr() - eta_min_) * (1.0 + std::cos(phase)) / 2.0;
}

namespace {

void check_factor(double f, const char* where, const char* what) {
  if (!(f >= 0.0) || !std::isfinite(f))
    throw ValueError(std::string("optim::") + where + ": " + what +
                     " must be finite and >= 0, got " + std::to_string(f));
}

}  // namespace

MultiStepLR::MultiStepLR(Optimizer& optimizer, std::vector<std::int64_t> milestones, double gamma)
    : LrSchedule(optimizer), milestones_(std::move(milestones)), gamma_(gamma) {
  for (std::size_t i = 0; i < milestones_.size(); ++i) {
    if (milestones_[i] < 0 || (i > 0 && milestones_[i] < milestones_[i - 1]))
      throw ValueError("optim::MultiStepLR: milestones must be ascending and >= 0; milestone " +
                       std::to_string(i) + " is " + std::to_string(milestones_[i]));
  }
  check_factor(gamma, "MultiStepLR", "gamma");
  set_epoch(0);
}

double MultiStepLR::lr_at(std::int64_t epoch) const {
  const auto passed =
      std::upper_bound(milestones_.begin(), milestones_.end(), epoch) - milestones_.begin();
  return base_lr() * std::pow(gamma_, static_cast<double>(passed));
}

LinearLR::LinearLR(Optimizer& optimizer, double start_factor, double end_factor,
                   std::int64_t total_iters)
    : LrSchedule(optimizer), start_(start_factor), end_(end_factor), total_(total_iters) {
  if (!(start_factor > 0.0 && start_factor <= 1.0))
    throw ValueError("optim::LinearLR: start_factor must be in (0, 1], got " +
                     std::to_string(start_factor));
  if (!(end_factor >= 0.0 && end_factor <= 1.0))
    throw ValueError("optim::LinearLR: end_factor must be in [0, 1], got " +
                     std::to_string(end_factor));
  if (total_iters <= 0)
    throw ValueError("optim::LinearLR: total_iters must be > 0, got " +
                     std::to_string(total_iters));
  set_epoch(0);
}

double LinearLR::lr_at(std::int64_t epoch) const {
  const double t = static_cast<double>(std::min(epoch, total_)) / static_cast<double>(total_);
  return base_lr() * (start_ + (end_ - start_) * t);
}

PolynomialLR::PolynomialLR(Optimizer& optimizer, std::int64_t total_iters, double power)
    : LrSchedule(optimizer), total_(total_iters), power_(power) {
  if (total_iters <= 0)
    throw ValueError("optim::PolynomialLR: total_iters must be > 0, got " +
                     std::to_string(total_iters));
  check_factor(power, "PolynomialLR", "power");
  set_epoch(0);
}

double PolynomialLR::lr_at(std::int64_t epoch) const {
  const double t = static_cast<double>(std::min(epoch, total_)) / static_cast<double>(total_);
  return base_lr() * std::pow(1.0 - t, power_);
}

SequentialLR::SequentialLR(Optimizer& optimizer, std::vector<std::shared_ptr<LrSchedule>> schedules,
                           std::vector<std::int64_t> milestones)
    : LrSchedule(optimizer), schedules_(std::move(schedules)), milestones_(std::move(milestones)) {
  if (schedules_.empty()) throw ValueError("optim::SequentialLR: no schedules");
  for (std::size_t i = 0; i < schedules_.size(); ++i)
    if (!schedules_[i])
      throw ValueError("optim::SequentialLR: schedule " + std::to_string(i) + " is null");
  if (milestones_.size() + 1 != schedules_.size())
    throw ValueError("optim::SequentialLR: " + std::to_string(schedules_.size()) +
                     " schedules need " + std::to_string(schedules_.size() - 1) +
                     " milestones, got " + std::to_string(milestones_.size()));
  for (std::size_t i = 0; i < milestones_.size(); ++i)
    if (milestones_[i] <= 0 || (i > 0 && milestones_[i] <= milestones_[i - 1]))
      throw ValueError("optim::SequentialLR: milestones must be ascending and > 0; milestone " +
                       std::to_string(i) + " is " + std::to_string(milestones_[i]));
  set_epoch(0);
}

double SequentialLR::lr_at(std::int64_t epoch) const {
  const auto k = static_cast<std::size_t>(
      std::upper_bound(milestones_.begin(), milestones_.end(), epoch) - milestones_.begin());
  return schedules_[k]->lr_at(k == 0 ? epoch : epoch - milestones_[k - 1]);
}

ReduceLROnPlateau::ReduceLROnPlateau(Optimizer& optimizer, ReduceLROnPlateauOptions options)
    : optimizer_(&optimizer), options_(options) {
  const auto& o = options_;
  if (!(o.factor >= 0.0 && o.factor < 1.0))
    throw ValueError("optim::ReduceLROnPlateau: factor must be in [0, 1), got " +
                     std::to_string(o.factor));
  if (o.patience < 0 || o.cooldown < 0)
    throw ValueError("optim::ReduceLROnPlateau: patience and cooldown must be >= 0, got " +
                     std::to_string(o.patience) + " and " + std::to_string(o.cooldown));
  check_factor(o.threshold, "ReduceLROnPlateau", "threshold");
  check_factor(o.min_lr, "ReduceLROnPlateau", "min_lr");
  check_factor(o.eps, "ReduceLROnPlateau", "eps");
  state_.best = o.mode == ReduceLROnPlateauOptions::Mode::min
                    ? std::numeric_limits<double>::infinity()
                    : -std::numeric_limits<double>::infinity();
}

bool ReduceLROnPlateau::better(double a) const {
  using O = ReduceLROnPlateauOptions;
  const double best = state_.best, t = options_.threshold;
  const bool rel = options_.threshold_mode == O::ThresholdMode::rel;
  if (options_.mode == O::Mode::min) return rel ? a < best * (1 - t) : a < best - t;
  return rel ? a > best * (t + 1) : a > best + t;
}

bool ReduceLROnPlateau::step(double metric) {
  ++state_.epoch;
  if (better(metric)) {
    state_.best = metric;
    state_.bad_epochs = 0;
  } else {
    ++state_.bad_epochs;
  }
  if (state_.cooldown_counter > 0) {
    --state_.cooldown_counter;
    state_.bad_epochs = 0;
  }
  if (state_.bad_epochs <= options_.patience) return false;
  state_.cooldown_counter = options_.cooldown;
  state_.bad_epochs = 0;
  const double old_lr = optimizer_->lr();
  const double new_lr = std::max(old_lr * options_.factor, options_.min_lr);
  if (old_lr - new_lr <= options_.eps) return false;
  optimizer_->set_lr(new_lr);
  return true;
}

void ReduceLROnPlateau::set_state(const State& state) {
  if (state.bad_epochs < 0 || state.cooldown_counter < 0 || state.epoch < 0 ||
      std::isnan(state.best))
    throw ValueError("optim::ReduceLROnPlateau: invalid state (negative counter or NaN best)");
  state_ = state;
}

}  // namespace kiln::optim
