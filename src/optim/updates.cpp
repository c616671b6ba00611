// SGD, Adam/AdamW and RMSprop: one fused, vectorisable pass over each parameter per step.
//
// Scalar coefficients are computed in double and the element loop runs in the parameter's
// type, following the order of operations of torch.optim's single-tensor implementations.
#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>

#include "kiln/core/error.hpp"
#include "kiln/optim/optimizer.hpp"

namespace kiln::optim {
namespace {

// Parameters at least this large are updated by all OpenMP threads.
constexpr std::int64_t kParallelMin = std::int64_t{1} << 16;

template <class Body>
void fused_loop(std::int64_t n, Body body) {
  if (n >= kParallelMin) {
#pragma omp parallel for simd schedule(static)
    for (std::int64_t j = 0; j < n; ++j) body(j);
  } else {
#pragma omp simd
    for (std::int64_t j = 0; j < n; ++j) body(j);
  }
}

// Calls f(T{}) with T = float or double for a floating dtype.
template <class F>
void with_float_type(DType dtype, F&& f) {
  if (dtype == DType::f32) {
    f(float{});
  } else {
    f(double{});
  }
}

// Calls f(std::bool_constant<b>{}) so that option flags become compile-time branches and
// the element loop has no control flow.
template <class F>
void with_flag(bool b, F&& f) {
  if (b) {
    f(std::true_type{});
  } else {
    f(std::false_type{});
  }
}

void check_option(bool ok, const char* kind, const char* what, double value) {
  if (!ok) {
    throw ValueError(std::string("optim::") + kind + ": invalid " + what + " " +
                     std::to_string(value));
  }
}

void check_common(const char* kind, double lr, double eps, double weight_decay) {
  check_option(lr >= 0.0 && std::isfinite(lr), kind, "learning rate", lr);
  check_option(eps >= 0.0 && std::isfinite(eps), kind, "eps", eps);
  check_option(weight_decay >= 0.0 && std::isfinite(weight_decay), kind, "weight_decay",
               weight_decay);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// SGD

SGD::SGD(std::vector<Tensor> parameters, SGDOptions options)
    : SGD(named_by_position(std::move(parameters)), options) {}

SGD::SGD(NamedParameters parameters, SGDOptions options)
    : Optimizer(std::move(parameters), options.lr, "sgd"), options_(options) {
  check_common("sgd", options.lr, 0.0, options.weight_decay);
  check_option(options.momentum >= 0.0 && std::isfinite(options.momentum), "sgd", "momentum",
               options.momentum);
  check_option(std::isfinite(options.dampening), "sgd", "dampening", options.dampening);
  if (options.nesterov && (options.momentum <= 0.0 || options.dampening != 0.0)) {
    throw ValueError("optim::sgd: Nesterov momentum needs momentum > 0 and dampening == 0");
  }
  if (options.momentum != 0.0) momentum_slot_ = add_slot("momentum_buffer");
}

void SGD::update(std::size_t index, Tensor& param, const Tensor& grad) {
  with_float_type(param.dtype(), [&](auto zero) {
    using T = decltype(zero);
    T* p = param.data<T>();
    const T* g = grad.data<T>();
    const std::int64_t n = param.numel();
    const T lr = static_cast<T>(this->lr());
    const T wd = static_cast<T>(options_.weight_decay);
    if (options_.momentum == 0.0) {
      fused_loop(n, [=](std::int64_t j) { p[j] -= lr * (g[j] + wd * p[j]); });
      return;
    }
    T* buf = slot(momentum_slot_, index).data<T>();
    const T momentum = static_cast<T>(options_.momentum);
    const T keep = static_cast<T>(1.0 - options_.dampening);
    const bool first = step_count() == 1;
    with_flag(options_.nesterov, [&](auto nesterov) {
      fused_loop(n, [=](std::int64_t j) {
        const T d = g[j] + wd * p[j];
        const T b = first ? d : momentum * buf[j] + keep * d;
        buf[j] = b;
        if constexpr (nesterov) {
          p[j] -= lr * (d + momentum * b);
        } else {
          p[j] -= lr * b;
        }
      });
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Adam, AdamW

Adam::Adam(std::vector<Tensor> parameters, AdamOptions options)
    : Adam(named_by_position(std::move(parameters)), options, false, "adam") {}

Adam::Adam(NamedParameters parameters, AdamOptions options)
    : Adam(std::move(parameters), options, false, "adam") {}

Adam::Adam(NamedParameters parameters, AdamOptions options, bool decoupled, std::string kind)
    : Optimizer(std::move(parameters), options.lr, kind), options_(options), decoupled_(decoupled) {
  const char* k = decoupled ? "adamw" : "adam";
  check_common(k, options.lr, options.eps, options.weight_decay);
  check_option(options.beta1 >= 0.0 && options.beta1 < 1.0, k, "beta1", options.beta1);
  check_option(options.beta2 >= 0.0 && options.beta2 < 1.0, k, "beta2", options.beta2);
  exp_avg_ = add_slot("exp_avg");
  exp_avg_sq_ = add_slot("exp_avg_sq");
  if (options.amsgrad) max_exp_avg_sq_ = add_slot("max_exp_avg_sq");
}

AdamW::AdamW(std::vector<Tensor> parameters, AdamWOptions o)
    : AdamW(named_by_position(std::move(parameters)), o) {}

AdamW::AdamW(NamedParameters parameters, AdamWOptions o)
    : Adam(std::move(parameters),
           AdamOptions{.lr = o.lr,
                       .beta1 = o.beta1,
                       .beta2 = o.beta2,
                       .eps = o.eps,
                       .weight_decay = o.weight_decay,
                       .amsgrad = o.amsgrad},
           true, "adamw") {}

void Adam::update(std::size_t index, Tensor& param, const Tensor& grad) {
  const double t = static_cast<double>(step_count());
  const double lr = this->lr();
  const double bias_correction1 = 1.0 - std::pow(options_.beta1, t);
  const double bias_correction2 = 1.0 - std::pow(options_.beta2, t);
  const double step_size = lr / bias_correction1;
  const double bias_correction2_sqrt = std::sqrt(bias_correction2);
  const double decay = decoupled_ ? 1.0 - lr * options_.weight_decay : 1.0;
  const double l2 = decoupled_ ? 0.0 : options_.weight_decay;

  with_float_type(param.dtype(), [&](auto zero) {
    using T = decltype(zero);
    T* p = param.data<T>();
    const T* g = grad.data<T>();
    T* m = slot(exp_avg_, index).data<T>();
    T* v = slot(exp_avg_sq_, index).data<T>();
    T* vmax = options_.amsgrad ? slot(max_exp_avg_sq_, index).data<T>() : v;
    const std::int64_t n = param.numel();
    const T b1 = static_cast<T>(options_.beta1), c1 = static_cast<T>(1.0 - options_.beta1);
    const T b2 = static_cast<T>(options_.beta2), c2 = static_cast<T>(1.0 - options_.beta2);
    const T eps = static_cast<T>(options_.eps);
    const T size = static_cast<T>(step_size);
    const T bc2_sqrt = static_cast<T>(bias_correction2_sqrt);
    const T decay_t = static_cast<T>(decay), l2_t = static_cast<T>(l2);
    with_flag(options_.amsgrad, [&](auto amsgrad) {
      fused_loop(n, [=](std::int64_t j) {
        const T pj = p[j] * decay_t;
        const T gj = g[j] + l2_t * pj;
        const T mj = b1 * m[j] + c1 * gj;
        const T vj = b2 * v[j] + c2 * gj * gj;
        m[j] = mj;
        v[j] = vj;
        T second = vj;
        if constexpr (amsgrad) {
          second = std::max(vmax[j], vj);
          vmax[j] = second;
        }
        const T denom = std::sqrt(second) / bc2_sqrt + eps;
        p[j] = pj - size * (mj / denom);
      });
    });
  });
}

// ---------------------------------------------------------------------------------------------
// RMSprop

RMSprop::RMSprop(std::vector<Tensor> parameters, RMSpropOptions options)
    : RMSprop(named_by_position(std::move(parameters)), options) {}

RMSprop::RMSprop(NamedParameters parameters, RMSpropOptions options)
    : Optimizer(std::move(parameters), options.lr, "rmsprop"), options_(options) {
  check_common("rmsprop", options.lr, options.eps, options.weight_decay);
  check_option(options.alpha >= 0.0 && options.alpha <= 1.0, "rmsprop", "alpha", options.alpha);
  check_option(options.momentum >= 0.0 && std::isfinite(options.momentum), "rmsprop", "momentum",
               options.momentum);
  square_avg_ = add_slot("square_avg");
  if (options.momentum > 0.0) momentum_buffer_ = add_slot("momentum_buffer");
  if (options.centered) grad_avg_ = add_slot("grad_avg");
}

void RMSprop::update(std::size_t index, Tensor& param, const Tensor& grad) {
  with_float_type(param.dtype(), [&](auto zero) {
    using T = decltype(zero);
    T* p = param.data<T>();
    const T* g = grad.data<T>();
    T* sq = slot(square_avg_, index).data<T>();
    // Unused slots alias the square average; the loop never touches them then.
    T* ga = options_.centered ? slot(grad_avg_, index).data<T>() : sq;
    T* buf = options_.momentum > 0.0 ? slot(momentum_buffer_, index).data<T>() : sq;
    const std::int64_t n = param.numel();
    const T lr = static_cast<T>(this->lr());
    const T alpha = static_cast<T>(options_.alpha), c = static_cast<T>(1.0 - options_.alpha);
    const T eps = static_cast<T>(options_.eps);
    const T wd = static_cast<T>(options_.weight_decay);
    const T momentum = static_cast<T>(options_.momentum);
    with_flag(options_.centered, [&](auto centered) {
      with_flag(options_.momentum > 0.0, [&](auto use_momentum) {
        fused_loop(n, [=](std::int64_t j) {
          const T gj = g[j] + wd * p[j];
          const T s = alpha * sq[j] + c * gj * gj;
          sq[j] = s;
          T avg;
          if constexpr (centered) {
            const T a = alpha * ga[j] + c * gj;
            ga[j] = a;
            avg = std::sqrt(s - a * a) + eps;
          } else {
            avg = std::sqrt(s) + eps;
          }
          if constexpr (use_momentum) {
            const T b = momentum * buf[j] + gj / avg;
            buf[j] = b;
            p[j] -= lr * b;
          } else {
            p[j] -= lr * (gj / avg);
          }
        });
      });
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Clipping

namespace {

void check_clippable(std::span<const Tensor> grads, const char* who) {
  for (std::size_t i = 0; i < grads.size(); ++i) {
    const Tensor& g = grads[i];
    if (!g.defined()) {
      throw ValueError(std::string("optim::") + who + ": gradient " + std::to_string(i) +
                       " is empty");
    }
    if (!is_floating(g.dtype())) {
      throw DTypeError(std::string("optim::") + who + ": gradient " + std::to_string(i) + " is " +
                       std::string(to_string(g.dtype())) + ", expected f32 or f64");
    }
    if (!g.is_contiguous()) {
      throw ValueError(std::string("optim::") + who + ": gradient " + std::to_string(i) + " " +
                       g.shape().str() + " is not contiguous");
    }
  }
}

}  // namespace

double clip_grad_norm(std::span<const Tensor> grads, double max_norm) {
  if (!(max_norm >= 0.0)) {
    throw ValueError("optim::clip_grad_norm: max_norm must be >= 0, got " +
                     std::to_string(max_norm));
  }
  check_clippable(grads, "clip_grad_norm");
  double sum_sq = 0.0;
  for (const Tensor& g : grads) {
    with_float_type(g.dtype(), [&](auto zero) {
      using T = decltype(zero);
      const T* x = g.data<T>();
      const std::int64_t n = g.numel();
      double acc = 0.0;
#pragma omp simd reduction(+ : acc)
      for (std::int64_t j = 0; j < n; ++j) acc += static_cast<double>(x[j]) * x[j];
      sum_sq += acc;
    });
  }
  const double norm = std::sqrt(sum_sq);
  const double coef = max_norm / (norm + 1e-6);
  if (coef < 1.0) {
    for (const Tensor& g : grads) {
      Tensor shared = g;  // same storage
      with_float_type(g.dtype(), [&](auto zero) {
        using T = decltype(zero);
        T* x = shared.data<T>();
        const T c = static_cast<T>(coef);
        fused_loop(shared.numel(), [=](std::int64_t j) { x[j] *= c; });
      });
    }
  }
  return norm;
}

void clip_grad_value(std::span<const Tensor> grads, double clip) {
  if (!(clip >= 0.0)) {
    throw ValueError("optim::clip_grad_value: clip must be >= 0, got " + std::to_string(clip));
  }
  check_clippable(grads, "clip_grad_value");
  for (const Tensor& g : grads) {
    Tensor shared = g;
    with_float_type(g.dtype(), [&](auto zero) {
      using T = decltype(zero);
      T* x = shared.data<T>();
      const T hi = static_cast<T>(clip);
      fused_loop(shared.numel(), [=](std::int64_t j) { x[j] = std::clamp(x[j], -hi, hi); });
    });
  }
}

}  // namespace kiln::optim
