#include "kiln/train/train_step.hpp"

#include <cmath>
#include <cstdio>
#include <optional>
#include <string>
#include <unordered_set>

#include "graph/graph_editor.hpp"
#include "internal/nonfinite.hpp"
#include "kiln/autodiff.hpp"
#include "kiln/core/error.hpp"

namespace kiln {
namespace {

// Everything TrainStep needs of the loss, the parameters and the outputs, checked before
// the graph changes; returns the parameters to differentiate by.
std::vector<Value> checked_parameters(Value loss, const TrainStepOptions& o) {
  if (!loss.valid()) throw ValueError("TrainStep: loss is an empty Value");
  if (!is_floating(loss.dtype()))
    throw DTypeError("TrainStep: loss '" + loss.name() + "' must be f32 or f64, not " +
                     std::string(to_string(loss.dtype())));
  if (loss.shape().rank() != 0)
    throw ShapeError("TrainStep: loss '" + loss.name() + "' must be a scalar, not " +
                     loss.shape().str());
  Graph& g = loss.graph();
  std::vector<Value> params = o.parameters.empty() ? g.parameters() : o.parameters;
  if (params.empty())
    throw ValueError("TrainStep: the graph of loss '" + loss.name() +
                     "' has no trainable parameters");
  std::unordered_set<std::int32_t> seen;
  for (const Value& p : params) {
    if (!p.valid()) throw ValueError("TrainStep: a parameter is an empty Value");
    if (&p.graph() != &g)
      throw ValueError("TrainStep: parameter '" + p.name() +
                       "' belongs to another graph than loss '" + loss.name() + "'");
    if (p.node().op != Op::parameter || !p.node().trainable)
      throw ValueError("TrainStep: '" + p.name() + "' is not a trainable parameter");
    if (!seen.insert(p.id()).second)
      throw ValueError("TrainStep: parameter '" + p.name() + "' is given twice");
  }
  for (const Value& v : o.outputs) {
    if (!v.valid()) throw ValueError("TrainStep: an extra output is an empty Value");
    if (&v.graph() != &g)
      throw ValueError("TrainStep: extra output '" + v.name() +
                       "' belongs to another graph than loss '" + loss.name() + "'");
  }
  // Some parameter must reach the loss, or there is nothing to train.
  std::vector<bool> reached(static_cast<std::size_t>(loss.id()) + 1, false);
  for (const Value& p : params)
    if (p.id() <= loss.id()) reached[static_cast<std::size_t>(p.id())] = true;
  for (std::int32_t id = 0; id <= loss.id(); ++id)
    for (auto i : g.node(id).inputs)
      if (reached[static_cast<std::size_t>(i)]) reached[static_cast<std::size_t>(id)] = true;
  if (!reached[static_cast<std::size_t>(loss.id())])
    throw ValueError("TrainStep: loss '" + loss.name() + "' depends on none of the " +
                     std::to_string(params.size()) + " parameters (first: '" + params[0].name() +
                     "')");
  return params;
}

// Differentiates and compiles; on any error the graph is left as it was. `grads` gets the
// gradient nodes.
Executable compile(Value loss, const std::vector<Value>& params, const TrainStepOptions& o,
                   std::vector<Value>& grads) {
  Graph& g = loss.graph();
  internal::GraphRollback rollback(g);
  std::vector<Value> outs{loss};
  grads = grad(loss, params);
  for (const Value& gr : grads) outs.push_back(gr);
  outs.insert(outs.end(), o.outputs.begin(), o.outputs.end());
  Executable exe(g, outs, {.training = true, .backend = o.backend, .fuse = o.fuse});
  rollback.commit();
  return exe;
}

using internal::first_nonfinite;

std::string num(double v) {
  if (std::isnan(v)) return "nan";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// Remembers the first step of a run whose value holds a NaN or infinity, and passes every
// step on to the caller's observer.
class AnomalyObserver : public RunObserver {
 public:
  explicit AnomalyObserver(RunObserver* next) : next_(next) {}

  void on_step(const ObservedStep& step) override {
    if (step.index == 0) found_.reset();
    double v = 0;
    std::int64_t at = -1;
    if (!found_ && (at = first_nonfinite(step.value, v)) >= 0) {
      const Node& n = step.node;
      std::string d = "step " + std::to_string(step.index + 1) + " of " +
                      std::to_string(step.count) + ": op '" + std::string(op_name(n.op)) +
                      "' (kernel '" + std::string(step.kernel) + "') at node '" + n.name + "'";
      d += n.scope.empty() ? " (no layer)" : " in layer '" + n.scope + "'";
      d += n.gradient ? ", backward pass" : ", forward pass";
      d += ", " + num(v) + " at element " + std::to_string(at) + " of " + step.value.shape().str();
      found_ = d;
    }
    if (next_) next_->on_step(step);
  }
  const std::optional<std::string>& found() const { return found_; }

 private:
  RunObserver* next_;
  std::optional<std::string> found_;
};

// A feed or trainable parameter that already holds a NaN or infinity, described; empty if none.
std::string nonfinite_leaf(const Feeds& feeds, const std::vector<Value>& params) {
  double v = 0;
  for (const auto& [name, t] : feeds)
    if (const auto at = first_nonfinite(t, v); at >= 0)
      return "feed '" + name + "' holds " + num(v) + " at element " + std::to_string(at);
  if (!params.empty()) {
    Graph& g = params[0].graph();
    for (const Node& n : g.nodes())
      if (n.op == Op::parameter && n.trainable)  // buffers change during the run
        if (const auto at = first_nonfinite(n.value, v); at >= 0)
          return "parameter '" + n.name + "' holds " + num(v) + " at element " + std::to_string(at);
  }
  return {};
}

}  // namespace

TrainStep::TrainStep(Value loss, TrainStepOptions options)
    : params_(checked_parameters(loss, options)),
      exe_(compile(loss, params_, options, grads_)),
      check_finite_(options.check_finite || options.detect_anomaly),
      detect_anomaly_(options.detect_anomaly) {}

double TrainStep::run(const Feeds& feeds, RunObserver* observer) {
  std::optional<AnomalyObserver> anomaly;
  if (detect_anomaly_) anomaly.emplace(observer);
  views_ = exe_.run_views(feeds, anomaly ? &*anomaly : observer);
  const double loss = views_[0].item();
  if (!check_finite_) return loss;
  std::string what;
  double v = 0;
  if (!std::isfinite(loss)) {
    what = "the loss is " + num(loss);
  } else {
    for (std::size_t i = 0; i < params_.size() && what.empty(); ++i)
      if (const auto at = first_nonfinite(views_[1 + i], v); at >= 0)
        what = "the gradient of parameter '" + params_[i].name() + "' holds " + num(v) +
               " at element " + std::to_string(at) + " (loss " + num(loss) + ")";
  }
  if (what.empty()) return loss;
  std::string msg = "TrainStep: " + what + " at run " + std::to_string(exe_.run_count() - 1);
  if (!anomaly) {
    msg +=
        "; the optimizer must not step on it (TrainStepOptions::detect_anomaly names the op "
        "that produced it)";
  } else if (const std::string leaf = nonfinite_leaf(feeds, params_); !leaf.empty()) {
    msg += "; the " + leaf + " before the run";
  } else if (anomaly->found()) {
    msg += "; first non-finite value: " + *anomaly->found();
  }
  throw NonFiniteError(msg);
}

std::vector<Tensor> TrainStep::parameters() const {
  std::vector<Tensor> out;
  for (const Value& p : params_) out.push_back(p.graph().tensor(p));
  return out;
}

std::vector<std::pair<std::string, Tensor>> TrainStep::named_parameters() const {
  std::vector<std::pair<std::string, Tensor>> out;
  for (const Value& p : params_) out.emplace_back(p.name(), p.graph().tensor(p));
  return out;
}

}  // namespace kiln
