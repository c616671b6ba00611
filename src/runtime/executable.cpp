#include "kiln/runtime/executable.hpp"

#include <algorithm>
#include <cstdint>
#include <list>
#include <map>
#include <mutex>
#include <sstream>

#include "graph/graph_editor.hpp"
#include "internal/kernel.hpp"
#include "internal/step_label.hpp"
#include "internal/threads.hpp"
#include "kiln/core/error.hpp"
#include "passes/passes.hpp"
#include "runtime/feeds.hpp"
#include "runtime/memory_plan.hpp"

namespace kiln {

using internal::Kernel;
using internal::KernelArgs;
using internal::KernelQuery;
using internal::TensorDesc;

namespace {

struct Step {
  std::int32_t node;
  const Kernel* kernel;
  std::shared_ptr<void> state;
};

// The kernel of a node whose output has no element: there is nothing to compute.
const Kernel no_work{"any", "none (empty output)",
                     [](const KernelQuery&, std::string*) { return true; },
                     [](const KernelArgs&) {}};

// The kernel of a step whose value is part of its input's memory (a reshape, or a slice
// that is one contiguous block, of a value an earlier step computes): nothing to copy.
const Kernel alias_reshape{"any", "none (reshape: a view of its input)",
                           [](const KernelQuery&, std::string*) { return true; },
                           [](const KernelArgs&) {}};
const Kernel alias_slice{"any", "none (slice: a view of its input)",
                         [](const KernelQuery&, std::string*) { return true; },
                         [](const KernelArgs&) {}};

// Where node n's value starts in its input's memory when it is a view of it (bytes), or -1:
// a reshape starts where its input does; a slice along an axis that only size-1 axes precede
// is one contiguous block, taken when it starts on a 64-byte boundary (as arena blocks do).
std::int64_t view_offset(const Node& n, const TensorDesc& in) {
  if (n.op == Op::reshape) return 0;
  if (n.op != Op::slice) return -1;
  const auto axis = static_cast<std::size_t>(n.attrs.axis);
  const Shape& s = in.shape;
  for (std::size_t i = 0; i < axis; ++i)
    if (s[i] != 1) return -1;
  std::int64_t inner = 1;
  for (std::size_t i = axis + 1; i < s.rank(); ++i) inner *= s[i];
  const std::int64_t bytes = n.attrs.start * inner * static_cast<std::int64_t>(size_of(in.dtype));
  return bytes % 64 == 0 ? bytes : -1;
}

struct Plan {
  std::vector<TensorDesc> descs;  // per node id (needed nodes only)
  std::vector<Tensor> values;     // per node id: arena views for computed nodes
  std::vector<Step> steps;
  std::shared_ptr<void> arena;
  internal::MemoryPlan memory;
  std::vector<Tensor> outputs;
  // Per output: run_into may let its step write straight into the caller's tensor (the
  // step computes it, in memory of its own that no view shares, and no other output is
  // the same node).
  std::vector<char> in_place;
};

struct CachedPlan {
  std::vector<std::int64_t> key;
  std::unique_ptr<Plan> plan;
  std::size_t bytes = 0;
};

std::string shape_list(const std::vector<std::int32_t>& ids, const std::vector<TensorDesc>& d,
                       const std::vector<Node>& nodes) {
  std::string s;
  for (auto id : ids) {
    if (!s.empty()) s += ", ";
    s += nodes[static_cast<std::size_t>(id)].name + ": " +
         d[static_cast<std::size_t>(id)].shape.str();
  }
  return s;
}

// Whether the fusion pass may fold a max pooling into a conv2d: the oneDNN convolution,
// which runs it in its blocked layout, is built in and not excluded by the options (other
// kernels run the fused node unfused).
bool pools_into_convs(const std::string& backend) {
  if (!backend.empty() && backend != "onednn") return false;
  for (const Kernel& k : internal::kernels_for(Op::conv2d))
    if (std::string_view(k.backend) == "onednn") return true;
  return false;
}

}  // namespace

struct Executable::Impl {
  internal::GraphAnchor* anchor;  // follows the graph through moves
  Graph& graph() const { return *anchor->graph; }
  internal::PassGraph pg;  // the graph's nodes after the passes
  std::vector<std::int32_t>& outputs = pg.outputs;
  const std::vector<Node>& nodes = pg.nodes;
  CompileOptions options;
  std::vector<std::int32_t> order;             // needed non-leaf nodes, topological
  std::vector<std::int32_t> inputs;            // needed input nodes
  std::vector<internal::FeedSpec> feed_specs;  // per needed input node
  std::vector<bool> needed;
  std::vector<std::int32_t> leaves;  // needed parameters and constants
  // Per-run scratch (runs are serialised by `mu`): the plan key and kernel arguments.
  std::vector<std::int64_t> key;
  std::vector<Tensor> args;       // grows to the most inputs of a step; reused
  std::vector<Tensor> feeds_now;  // the feeds of the current run, in `inputs` order
  // run_into: which outputs a step writes in place, and the arena views they replace.
  std::vector<char> into_direct;
  std::vector<Tensor> into_saved;
  // Least recently used last; `index` finds a plan by key.
  std::list<CachedPlan> plans;
  std::map<std::vector<std::int64_t>, std::list<CachedPlan>::iterator> index;
  std::size_t plan_bytes = 0;
  // Per step position: the graph nodes the step computes (fusion folds several into one).
  std::vector<std::vector<std::int32_t>> covers;
  std::mutex mu;
  std::uint64_t runs = 0;

  // Feeds matched to needed inputs, checked; returns the tensors in `inputs` order. Feeds of
  // graph inputs these outputs do not need are accepted and ignored.
  // The tensors live in `feeds_now` until the next run (copy-assigned, so a run allocates
  // nothing for them once the vectors have their sizes).
  const std::vector<Tensor>& match_feeds(const Feeds& feeds) {
    const auto feed_of = internal::match_feeds(
        feed_specs, feeds, "run", options.check_finite_feeds, [this](const std::string& name) {
          return graph().contains(name) && graph().find(name).node().op == Op::input;
        });
    feeds_now.resize(inputs.size());
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      const Tensor& t = feeds[feed_of[i]].second;
      if (t.is_contiguous())
        feeds_now[i] = t;
      else
        feeds_now[i] = t.contiguous();
    }
    return feeds_now;
  }

  // The plan for these feeds' shapes (compiled the first time they are seen), with the
  // feeds matched into feeds_now, which execute reads. Called with `mu` held.
  Plan& plan_of(const Feeds& feeds) { return plan_for(match_feeds(feeds)); }

  const Node& node(std::int32_t id) const { return nodes[static_cast<std::size_t>(id)]; }

  std::unique_ptr<Plan> compile(const std::vector<Tensor>& bound) const {
    auto plan = std::make_unique<Plan>();
    const std::size_t count = nodes.size();
    plan->descs.resize(count);
    plan->values.resize(count);
    for (std::size_t i = 0; i < inputs.size(); ++i)
      plan->descs[static_cast<std::size_t>(inputs[i])] = {bound[i].shape(), bound[i].dtype()};
    for (std::size_t id = 0; id < count; ++id) {
      const Node& n = nodes[id];
      if (needed[id] && (n.op == Op::parameter || n.op == Op::constant))
        plan->descs[id] = {n.value.shape(), n.value.dtype(), options.constant_parameters};
    }
    // Per node id: the step computing it (-1: none), and for a view, the node whose memory it
    // views (-1: none) and where in that memory it starts (bytes).
    std::vector<std::int64_t> step_of(count, -1);
    std::vector<std::int32_t> alias_of(count, -1);
    std::vector<std::size_t> alias_at(count, 0);
    for (auto id : order) {
      const Node& n = node(id);
      std::vector<TensorDesc> in;
      for (auto i : n.inputs) in.push_back(plan->descs[static_cast<std::size_t>(i)]);
      TensorDesc out = internal::infer(n.op, n.attrs, in, n.name);
      if (!out.shape.is_static())
        throw ShapeError("op '" + std::string(op_name(n.op)) + "' (node '" + n.name +
                         "'): output shape " + out.shape.str() + " is not concrete");
      plan->descs[static_cast<std::size_t>(id)] = out;
      KernelQuery q{n, in, plan->descs[static_cast<std::size_t>(id)]};
      const Kernel* chosen = nullptr;
      std::string reasons;
      // An output with no element (batch size 0) needs no kernel, in any backend.
      if (out.shape.numel() == 0) chosen = &no_work;
      for (const Kernel& k : internal::kernels_for(n.op)) {
        if (chosen) break;
        if (!options.backend.empty() && options.backend != k.backend) continue;
        std::string why;
        if (k.supports(q, &why)) {
          chosen = &k;
          break;
        }
        reasons += std::string(" ") + k.name + ": " + (why.empty() ? "declined" : why) + ";";
      }
      if (!chosen)
        throw ValueError("no kernel for op '" + std::string(op_name(n.op)) + "' (node '" + n.name +
                         "') with input shapes " +
                         [&] {
                           std::string s;
                           for (auto& d : in) s += d.shape.str() + " ";
                           return s;
                         }() +
                         (options.backend.empty() ? "" : "in backend " + options.backend) +
                         (reasons.empty() ? " (none registered in this library)" : reasons));
      // A view of a value computed by an earlier step is part of that value's memory: no copy.
      const std::int64_t from =
          n.inputs.empty() ? -1 : step_of[static_cast<std::size_t>(n.inputs[0])];
      const std::int64_t at = from >= 0 ? view_offset(n, in[0]) : -1;
      if (at >= 0 && chosen != &no_work) {
        chosen = n.op == Op::reshape ? &alias_reshape : &alias_slice;
        const auto source = static_cast<std::size_t>(n.inputs[0]);
        const bool chained = alias_of[source] >= 0;
        alias_of[static_cast<std::size_t>(id)] =
            chained ? alias_of[source] : static_cast<std::int32_t>(source);
        alias_at[static_cast<std::size_t>(id)] =
            (chained ? alias_at[source] : 0) + static_cast<std::size_t>(at);
      }
      step_of[static_cast<std::size_t>(id)] = static_cast<std::int64_t>(plan->steps.size());
      plan->steps.push_back({id, chosen, chosen->prepare ? chosen->prepare(q) : nullptr});
    }
    // Memory: every computed value gets a block of one arena, reused after its last use; a
    // view (alias_of) has no block and keeps its source's alive while it is read.
    std::vector<internal::Lifetime> lifetimes;
    std::vector<std::int64_t> last_use(count, -1);
    for (std::size_t s = 0; s < plan->steps.size(); ++s)
      for (auto i : node(plan->steps[s].node).inputs)
        last_use[static_cast<std::size_t>(i)] = static_cast<std::int64_t>(s);
    const auto end = static_cast<std::int64_t>(plan->steps.size());
    for (auto o : outputs) last_use[static_cast<std::size_t>(o)] = end;
    for (std::size_t s = 0; s < plan->steps.size(); ++s) {
      const auto id = static_cast<std::size_t>(plan->steps[s].node);
      if (alias_of[id] >= 0) {
        auto& root = last_use[static_cast<std::size_t>(alias_of[id])];
        root = std::max(root, last_use[id]);
      }
    }
    for (std::size_t s = 0; s < plan->steps.size(); ++s) {
      const auto id = static_cast<std::size_t>(plan->steps[s].node);
      const auto& d = plan->descs[id];
      const auto bytes =
          alias_of[id] >= 0 ? 0 : static_cast<std::size_t>(d.shape.numel()) * size_of(d.dtype);
      lifetimes.push_back({static_cast<std::int64_t>(s),
                           std::max(last_use[id], static_cast<std::int64_t>(s)), bytes});
    }
    plan->memory = internal::plan_memory(lifetimes);
    for (std::size_t s = 0; s < plan->steps.size(); ++s) {
      const auto id = static_cast<std::size_t>(plan->steps[s].node);
      if (alias_of[id] >= 0)
        plan->memory.offsets[s] = plan->memory.offsets[static_cast<std::size_t>(
                                      step_of[static_cast<std::size_t>(alias_of[id])])] +
                                  alias_at[id];
    }
    plan->in_place.assign(outputs.size(), 1);
    for (std::size_t i = 0; i < outputs.size(); ++i) {
      const auto o = static_cast<std::size_t>(outputs[i]);
      bool ok = step_of[o] >= 0 && alias_of[o] < 0 &&
                std::count(outputs.begin(), outputs.end(), outputs[i]) == 1;
      for (std::size_t id = 0; ok && id < count; ++id)
        ok = alias_of[id] != static_cast<std::int32_t>(o);
      plan->in_place[i] = ok;
    }
    plan->arena = std::shared_ptr<void>(
        std::aligned_alloc(64, std::max<std::size_t>(64, plan->memory.arena_bytes)),
        [](void* p) { std::free(p); });
    if (!plan->arena)
      throw OutOfMemoryError("out of memory allocating the executable's arena of " +
                             std::to_string(plan->memory.arena_bytes) + " bytes");
    for (std::size_t s = 0; s < plan->steps.size(); ++s) {
      const auto id = static_cast<std::size_t>(plan->steps[s].node);
      auto* base = static_cast<unsigned char*>(plan->arena.get()) + plan->memory.offsets[s];
      plan->values[id] = Tensor::borrow(base, plan->descs[id].shape, plan->descs[id].dtype);
    }
    return plan;
  }

  Plan& plan_for(const std::vector<Tensor>& bound) {
    key.clear();
    for (const auto& t : bound) {
      key.push_back(static_cast<std::int64_t>(t.rank()));
      key.insert(key.end(), t.shape().begin(), t.shape().end());
    }
    auto it = index.find(key);
    if (it != index.end()) {
      plans.splice(plans.begin(), plans, it->second);
      return *plans.front().plan;
    }
    // Make room first, so the old plans' memory is free before the new arena is taken.
    evict(options.plan_cache_size > 0 ? options.plan_cache_size - 1 : 0, 0);
    auto plan = compile(bound);
    const std::size_t bytes = plan->memory.arena_bytes;
    plans.push_front({key, std::move(plan), bytes});
    index.emplace(key, plans.begin());
    plan_bytes += bytes;
    evict(std::max<std::size_t>(options.plan_cache_size, 1), 1);
    return *plans.front().plan;
  }

  // Evicts least recently used plans until at most `count` are kept and their arenas fit
  // in plan_cache_bytes, never evicting the `keep` most recent ones.
  void evict(std::size_t count, std::size_t keep) {
    while (plans.size() > keep && (plans.size() > count || plan_bytes > options.plan_cache_bytes)) {
      plan_bytes -= plans.back().bytes;
      index.erase(plans.back().key);
      plans.pop_back();
    }
  }

  // The nodes each step computes: the step's node and every node folded into it.
  void find_covers(const std::vector<std::int32_t>& folded_into) {
    std::vector<std::size_t> step_of(nodes.size(), static_cast<std::size_t>(-1));
    covers.assign(order.size(), {});
    for (std::size_t s = 0; s < order.size(); ++s) {
      step_of[static_cast<std::size_t>(order[s])] = s;
      covers[s].push_back(order[s]);
    }
    for (std::size_t id = 0; id < folded_into.size(); ++id) {
      std::int32_t to = folded_into[id];
      if (to < 0) continue;
      while (folded_into[static_cast<std::size_t>(to)] >= 0)
        to = folded_into[static_cast<std::size_t>(to)];
      const std::size_t s = step_of[static_cast<std::size_t>(to)];
      if (s != static_cast<std::size_t>(-1)) covers[s].push_back(static_cast<std::int32_t>(id));
    }
    for (auto& c : covers) std::sort(c.begin(), c.end());
  }

  // Checks run_into's tensors against the plan's outputs: count, dtype, shape, contiguity.
  void check_into(const Plan& plan, std::span<Tensor> into) const {
    if (into.size() != outputs.size())
      throw ValueError("run_into: " + std::to_string(into.size()) + " output tensors for " +
                       std::to_string(outputs.size()) + " outputs");
    for (std::size_t i = 0; i < into.size(); ++i) {
      const TensorDesc& d = plan.descs[static_cast<std::size_t>(outputs[i])];
      const std::string& name =
          i < options.output_names.size() ? options.output_names[i] : node(outputs[i]).name;
      const std::string what = "run_into: output " + std::to_string(i) + " ('" + name + "') ";
      if (!into[i].defined()) throw ValueError(what + "is an undefined tensor");
      if (into[i].dtype() != d.dtype)
        throw DTypeError(what + "is " + std::string(to_string(d.dtype)) + ", the tensor given is " +
                         std::string(to_string(into[i].dtype())));
      if (into[i].shape() != d.shape)
        throw ShapeError(what + "has shape " + d.shape.str() + " in this run, the tensor given " +
                         into[i].shape().str());
      if (!into[i].is_contiguous())
        throw ValueError(what + "needs a contiguous tensor, the one given is strided");
    }
  }

  // Runs the plan, writing its outputs into `into` (checked by check_into): a step whose
  // value is an output in memory of its own writes straight into a 64-byte aligned tensor;
  // the rest are copied there at the end.
  void execute_into(Plan& plan, std::span<Tensor> into, RunObserver* observer) {
    // Copy-assigned slots, so that a run allocates nothing once they have their sizes.
    into_saved.resize(into.size());
    into_direct.assign(into.size(), 0);
    for (std::size_t i = 0; i < into.size(); ++i) {
      if (!plan.in_place[i] || reinterpret_cast<std::uintptr_t>(into[i].raw()) % 64 != 0) continue;
      Tensor& v = plan.values[static_cast<std::size_t>(outputs[i])];
      into_saved[i] = v;
      v = into[i];
      into_direct[i] = 1;
    }
    // The arena views come back whatever happens: the plan serves later runs.
    struct Restore {
      Impl& m;
      Plan& plan;
      ~Restore() {
        for (std::size_t i = 0; i < m.into_direct.size(); ++i)
          if (m.into_direct[i])
            plan.values[static_cast<std::size_t>(m.outputs[i])] = m.into_saved[i];
      }
    } restore{*this, plan};
    execute(plan, observer);
    for (std::size_t i = 0; i < into.size(); ++i)
      if (!into_direct[i]) into[i].copy_from(plan.values[static_cast<std::size_t>(outputs[i])]);
  }

  // Runs the plan on the feeds of plan_of.
  void execute(Plan& plan, RunObserver* observer) {
    for (std::size_t i = 0; i < inputs.size(); ++i)
      plan.values[static_cast<std::size_t>(inputs[i])] = feeds_now[i];
    // Parameters and constants are read from the graph at every run: optimizers update
    // them in place, and users may assign new tensors of the same shape.
    for (const std::int32_t leaf : leaves) {
      const auto id = static_cast<std::size_t>(leaf);
      const Node& n = graph().node(leaf);
      if (n.value.shape() != plan.descs[id].shape || n.value.dtype() != plan.descs[id].dtype)
        throw ShapeError("run: parameter '" + n.name + "' changed shape or dtype since compiling");
      // The plan keeps the storage it last saw alive, so the same address and strides are
      // the same tensor: nothing to assign (an assignment copies the shape and strides).
      Tensor& held = plan.values[id];
      if (!held.defined() || held.raw() != n.value.raw() || held.strides() != n.value.strides())
        held = n.value;
    }
    internal::RunContext ctx{options.training, runs};
    const std::size_t count = plan.steps.size();
    for (std::size_t k = 0; k < count; ++k) {
      const Step& s = plan.steps[k];
      const Node& n = node(s.node);
      if (args.size() < n.inputs.size()) args.resize(n.inputs.size());
      for (std::size_t i = 0; i < n.inputs.size(); ++i)
        args[i] = plan.values[static_cast<std::size_t>(n.inputs[i])];
      Tensor& out = plan.values[static_cast<std::size_t>(s.node)];
      KernelArgs ka{n, std::span<const Tensor>(args.data(), n.inputs.size()), out, s.state.get(),
                    ctx};
      s.kernel->run(ka);
      if (observer) {
        const auto& c = covers[k];
        observer->on_step({n, c.back(), c, out, s.kernel->name, k, count});
      }
    }
    ++runs;
  }

  // The outputs of the run that just ended, as views of the plan's memory.
  std::span<const Tensor> collect(Plan& plan) const {
    plan.outputs.resize(outputs.size());
    for (std::size_t i = 0; i < outputs.size(); ++i)
      plan.outputs[i] = plan.values[static_cast<std::size_t>(outputs[i])];
    return plan.outputs;
  }
};

Executable::Executable(Graph& graph, std::vector<Value> outputs, CompileOptions options)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.anchor = internal::GraphEditor::anchor(graph);
  m.options = std::move(options);
  if (outputs.empty()) throw ValueError("Executable: no outputs requested");
  for (const Value& v : outputs) {
    if (!v.valid() || &v.graph() != &graph)
      throw ValueError("Executable: an output is empty or belongs to another graph");
    m.pg.outputs.push_back(v.id());
  }
  m.pg.nodes = graph.nodes();
  m.pg.dead.assign(graph.size(), false);
  m.pg.folded_into.assign(graph.size(), -1);
  if (m.options.fuse) internal::fuse_epilogues(m.pg, pools_into_convs(m.options.backend));
  // Dead-code removal: only what the outputs depend on is compiled.
  m.needed = internal::live_nodes(m.pg);
  for (std::size_t id = 0; id < m.nodes.size(); ++id) {
    if (!m.needed[id]) continue;
    const Op op = m.nodes[id].op;
    if (op == Op::input)
      m.inputs.push_back(static_cast<std::int32_t>(id));
    else if (op != Op::parameter && op != Op::constant)
      m.order.push_back(static_cast<std::int32_t>(id));
    else
      m.leaves.push_back(static_cast<std::int32_t>(id));
  }
  for (auto id : m.inputs) {
    const Node& n = m.node(id);
    m.feed_specs.push_back({n.name, &n.shape, n.dtype});
  }
  m.find_covers(m.pg.folded_into);
}

Executable::~Executable() = default;
Executable::Executable(Executable&&) noexcept = default;
Executable& Executable::operator=(Executable&&) noexcept = default;

std::span<const Tensor> Executable::run_views(const Feeds& feeds, RunObserver* observer) {
  internal::follow_thread_setting();
  std::lock_guard<std::mutex> lock(impl_->mu);
  Plan& plan = impl_->plan_of(feeds);
  impl_->execute(plan, observer);
  return impl_->collect(plan);
}

std::vector<Tensor> Executable::run(const Feeds& feeds, RunObserver* observer) {
  internal::follow_thread_setting();
  std::lock_guard<std::mutex> lock(impl_->mu);
  Plan& plan = impl_->plan_of(feeds);
  impl_->execute(plan, observer);
  std::vector<Tensor> out;
  out.reserve(impl_->outputs.size());
  for (auto o : impl_->outputs) out.push_back(plan.values[static_cast<std::size_t>(o)].clone());
  // Nothing refers to the plan's arena now: a plan over the byte budget goes at once.
  impl_->evict(impl_->plans.size(), 0);
  return out;
}

void Executable::run_into(const Feeds& feeds, std::span<Tensor> outputs, RunObserver* observer) {
  internal::follow_thread_setting();
  std::lock_guard<std::mutex> lock(impl_->mu);
  Plan& plan = impl_->plan_of(feeds);
  impl_->check_into(plan, outputs);
  impl_->execute_into(plan, outputs, observer);
  impl_->evict(impl_->plans.size(), 0);
}

std::string Executable::plan(const Feeds& feeds) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  Plan& p = impl_->plan_of(feeds);
  const auto& nodes = impl_->nodes;
  std::ostringstream os;
  os << "plan for " << shape_list(impl_->inputs, p.descs, nodes) << ": " << p.steps.size()
     << " steps, arena " << p.memory.arena_bytes << " bytes\n";
  for (std::size_t s = 0; s < p.steps.size(); ++s) {
    const Node& n = impl_->node(p.steps[s].node);
    os << "  " << n.name << " = " << internal::step_op_label(n) << "(";
    for (std::size_t i = 0; i < n.inputs.size(); ++i)
      os << (i ? ", " : "") << impl_->node(n.inputs[i]).name;
    os << ") " << p.descs[static_cast<std::size_t>(p.steps[s].node)].shape.str() << " "
       << to_string(p.descs[static_cast<std::size_t>(p.steps[s].node)].dtype) << " via "
       << p.steps[s].kernel->name << " @" << p.memory.offsets[s] << "\n";
  }
  return os.str();
}

std::size_t Executable::cached_plans() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->plans.size();
}

std::size_t Executable::cached_plan_bytes() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->plan_bytes;
}

std::uint64_t Executable::run_count() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->runs;
}

void Executable::set_run_count(std::uint64_t count) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->runs = count;
}

}  // namespace kiln
