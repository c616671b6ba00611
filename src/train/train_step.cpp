#include "kiln/train/train_step.hpp"

#include <string>
#include <unordered_set>

#include "graph/graph_editor.hpp"
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

}  // namespace

TrainStep::TrainStep(Value loss, TrainStepOptions options)
    : params_(checked_parameters(loss, options)), exe_(compile(loss, params_, options, grads_)) {}

double TrainStep::run(const Feeds& feeds, RunObserver* observer) {
  views_ = exe_.run_views(feeds, observer);
  return views_[0].item();
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
