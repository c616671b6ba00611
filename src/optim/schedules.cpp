// Learning-rate schedules.
#include <cmath>
#include <numbers>
#include <string>

#include "kiln/core/error.hpp"
#include "kiln/optim/optimizer.hpp"

namespace kiln::optim {

LrSchedule::LrSchedule(Optimizer& optimizer) : optimizer_(&optimizer), base_lr_(optimizer.lr()) {}

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

}  // namespace kiln::optim
