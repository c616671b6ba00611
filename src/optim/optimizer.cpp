// Optimizer base: parameter and gradient checks, named state slots, save/restore.
#include "kiln/optim/optimizer.hpp"

#include <cmath>
#include <map>
#include <set>
#include <string>

#include "internal/text.hpp"
#include "kiln/core/error.hpp"

namespace kiln::optim {
namespace {

// "parameter 'fc1.weight' (f32 [4, 3])", or "parameter 2 (...)" when named by position.
std::string param_label(std::size_t i, const std::string& name, const Tensor& p) {
  const std::string who =
      name == std::to_string(i) ? "parameter " + name : "parameter '" + name + "'";
  return who + " (" + std::string(to_string(p.dtype())) + " " + p.shape().str() + ")";
}

using internal::quoted_list;

}  // namespace

NamedParameters named_by_position(std::vector<Tensor> parameters) {
  NamedParameters out;
  out.reserve(parameters.size());
  for (std::size_t i = 0; i < parameters.size(); ++i)
    out.emplace_back(std::to_string(i), std::move(parameters[i]));
  return out;
}

Optimizer::Optimizer(std::vector<Tensor> parameters, double lr, std::string kind)
    : Optimizer(named_by_position(std::move(parameters)), lr, std::move(kind)) {}

Optimizer::Optimizer(NamedParameters parameters, double lr, std::string kind)
    : kind_(std::move(kind)) {
  const std::string who = "optim::" + kind_ + ": ";
  if (parameters.empty()) throw ValueError(who + "got an empty parameter list");
  std::set<std::string> seen;
  for (auto& [name, tensor] : parameters) {
    if (name.empty())
      throw ValueError(who + "parameter " + std::to_string(params_.size()) + " has no name");
    if (!seen.insert(name).second)
      throw ValueError(who + "two parameters are named '" + name + "'");
    names_.push_back(std::move(name));
    params_.push_back(std::move(tensor));
  }
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const Tensor& p = params_[i];
    if (!p.defined()) throw ValueError(who + param_label(i, names_[i], p) + " is empty");
    if (!is_floating(p.dtype())) {
      throw DTypeError(who + param_label(i, names_[i], p) + " must be f32 or f64");
    }
    if (!p.is_contiguous())
      throw ValueError(who + param_label(i, names_[i], p) + " is not contiguous");
    for (std::size_t j = 0; j < i; ++j) {
      if (p.numel() > 0 && params_[j].raw() == p.raw()) {
        throw ValueError(who + param_label(j, names_[j], params_[j]) + " and " +
                         param_label(i, names_[i], p) +
                         " share storage; each tensor must be given once");
      }
    }
  }
  set_lr(lr);
}

Optimizer::~Optimizer() = default;
Optimizer::Optimizer(Optimizer&&) noexcept = default;
Optimizer& Optimizer::operator=(Optimizer&&) noexcept = default;

void Optimizer::set_lr(double lr) {
  if (!(lr >= 0.0) || !std::isfinite(lr)) {
    throw ValueError("optim::" + kind_ + ": learning rate must be finite and >= 0, got " +
                     std::to_string(lr));
  }
  lr_ = lr;
}

std::size_t Optimizer::add_slot(std::string name) {
  std::vector<Tensor> tensors;
  tensors.reserve(params_.size());
  for (const Tensor& p : params_) tensors.push_back(Tensor::zeros(p.shape(), p.dtype()));
  slots_.push_back(std::move(tensors));
  slot_names_.push_back(std::move(name));
  return slots_.size() - 1;
}

void Optimizer::step(std::span<const Tensor> grads) {
  const std::string who = "optim::" + kind_ + "::step: ";
  if (grads.size() != params_.size()) {
    throw ValueError(who + "got " + std::to_string(grads.size()) + " gradients for " +
                     std::to_string(params_.size()) + " parameters");
  }
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const Tensor& g = grads[i];
    const Tensor& p = params_[i];
    if (!g.defined())
      throw ValueError(who + "the gradient of " + param_label(i, names_[i], p) + " is empty");
    if (g.shape() != p.shape()) {
      throw ShapeError(who + "the gradient of " + param_label(i, names_[i], p) + " has shape " +
                       g.shape().str());
    }
    if (g.dtype() != p.dtype()) {
      throw DTypeError(who + "the gradient of " + param_label(i, names_[i], p) + " is " +
                       std::string(to_string(g.dtype())));
    }
  }
  ++step_count_;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const Tensor g = grads[i].is_contiguous() ? grads[i] : grads[i].contiguous();
    update(i, params_[i], g);
  }
}

State Optimizer::state() const {
  State out;
  out.emplace_back("step", Tensor::scalar(static_cast<double>(step_count_), DType::i64));
  out.emplace_back("lr", Tensor::scalar(lr_, DType::f64));
  for (std::size_t i = 0; i < params_.size(); ++i) {
    for (std::size_t s = 0; s < slots_.size(); ++s) {
      out.emplace_back(names_[i] + "." + slot_names_[s], slots_[s][i].clone());
    }
  }
  return out;
}

std::vector<std::string> Optimizer::state_names() const {
  std::vector<std::string> out{"step", "lr"};
  for (std::size_t i = 0; i < params_.size(); ++i)
    for (const std::string& slot : slot_names_) out.push_back(names_[i] + "." + slot);
  return out;
}

void Optimizer::load_state(const State& state) {
  const std::string who = "optim::" + kind_ + "::load_state: ";
  std::map<std::string, const Tensor*> by_name;
  for (const auto& [name, tensor] : state) {
    if (!by_name.emplace(name, &tensor).second) {
      throw ValueError(who + "entry '" + name + "' appears twice");
    }
    if (!tensor.defined()) throw ValueError(who + "entry '" + name + "' is an empty tensor");
  }
  auto take = [&](const std::string& name) -> const Tensor& {
    auto it = by_name.find(name);
    if (it == by_name.end()) throw ValueError(who + "missing entry '" + name + "'");
    const Tensor& t = *it->second;
    by_name.erase(it);
    return t;
  };

  const Tensor& step = take("step");
  if (!is_integer(step.dtype()) || step.numel() != 1 || step.item() < 0) {
    throw ValueError(who + "'step' must be one non-negative integer, got " + step.str());
  }
  const Tensor& lr = take("lr");
  if (!is_floating(lr.dtype()) || lr.numel() != 1 || !(lr.item() >= 0.0)) {
    throw ValueError(who + "'lr' must be one non-negative float, got " + lr.str());
  }
  // Every slot of every parameter, by name; all missing and unknown names are reported.
  std::vector<std::vector<const Tensor*>> sources(slots_.size());
  std::vector<std::string> missing;
  for (std::size_t s = 0; s < slots_.size(); ++s) {
    for (std::size_t i = 0; i < params_.size(); ++i) {
      const std::string name = names_[i] + "." + slot_names_[s];
      auto it = by_name.find(name);
      if (it == by_name.end()) {
        if (missing.empty() || missing.back() != names_[i]) missing.push_back(names_[i]);
        sources[s].push_back(nullptr);
        continue;
      }
      const Tensor& t = *it->second;
      by_name.erase(it);
      const Tensor& mine = slots_[s][i];
      if (t.shape() != mine.shape()) {
        throw ShapeError(who + "entry '" + name + "' has shape " + t.shape().str() + ", " +
                         param_label(i, names_[i], params_[i]) + " needs " + mine.shape().str());
      }
      if (t.dtype() != mine.dtype()) {
        throw DTypeError(who + "entry '" + name + "' is " + std::string(to_string(t.dtype())) +
                         ", " + param_label(i, names_[i], params_[i]) + " needs " +
                         std::string(to_string(mine.dtype())));
      }
      sources[s].push_back(&t);
    }
  }
  if (!missing.empty()) {
    // Slots are visited slot by slot: keep each parameter once, in parameter order.
    std::set<std::string> once(missing.begin(), missing.end());
    missing.clear();
    for (const std::string& n : names_)
      if (once.count(n)) missing.push_back(n);
  }
  std::vector<std::string> unknown;  // the parameter part of each unknown entry, once
  for (const auto& entry : by_name) {
    const auto dot = entry.first.rfind('.');
    std::string param = dot == std::string::npos ? entry.first : entry.first.substr(0, dot);
    if (unknown.empty() || unknown.back() != param) unknown.push_back(std::move(param));
  }
  if (!missing.empty() || !unknown.empty()) {
    std::string msg = who + "the state does not match the " + std::to_string(params_.size()) +
                      " parameters by name:";
    if (!missing.empty()) msg += " no state for " + quoted_list(missing);
    if (!missing.empty() && !unknown.empty()) msg += ";";
    if (!unknown.empty()) msg += " state for unknown " + quoted_list(unknown);
    throw ValueError(msg);
  }

  set_lr(lr.item());
  step_count_ = static_cast<std::int64_t>(step.item());
  for (std::size_t s = 0; s < slots_.size(); ++s) {
    for (std::size_t i = 0; i < params_.size(); ++i) slots_[s][i].copy_from(*sources[s][i]);
  }
}

}  // namespace kiln::optim
