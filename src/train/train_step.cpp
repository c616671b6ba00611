#include "kiln/train/train_step.hpp"

#include "kiln/autodiff.hpp"
#include "kiln/core/error.hpp"

namespace kiln {
namespace {

std::vector<Value> chosen_parameters(Value loss, const TrainStepOptions& o) {
  if (!loss.valid()) throw ValueError("TrainStep: loss is an empty Value");
  if (!o.parameters.empty()) return o.parameters;
  auto all = loss.graph().parameters();
  if (all.empty()) throw ValueError("TrainStep: the graph has no parameters to train");
  return all;
}

std::vector<Value> step_outputs(Value loss, const std::vector<Value>& params,
                                const TrainStepOptions& o, std::vector<Value>& grads) {
  std::vector<Value> outs{loss};
  grads = grad(loss, params);
  for (const Value& g : grads) outs.push_back(g);
  outs.insert(outs.end(), o.outputs.begin(), o.outputs.end());
  return outs;
}

}  // namespace

TrainStep::TrainStep(Value loss, TrainStepOptions options)
    : params_(chosen_parameters(loss, options)),
      exe_(loss.graph(), step_outputs(loss, params_, options, grads_),
           {.training = true, .backend = options.backend, .fuse = options.fuse}) {
  if (loss.shape().rank() != 0)
    throw ShapeError("TrainStep: loss '" + loss.name() + "' must be a scalar, not " +
                     loss.shape().str());
}

double TrainStep::run(const Feeds& feeds, RunObserver* observer) {
  views_ = exe_.run_views(feeds, observer);
  return views_[0].item();
}

std::vector<Tensor> TrainStep::parameters() const {
  std::vector<Tensor> out;
  for (const Value& p : params_) out.push_back(p.graph().tensor(p));
  return out;
}

}  // namespace kiln
