#include "kiln/autodiff.hpp"

#include <algorithm>
#include <string>
#include <vector>

#include "autodiff/grad_rules.hpp"
#include "graph/graph_editor.hpp"
#include "internal/kernel.hpp"
#include "kernels/eigen/eigen_kernels.hpp"
#if defined(KILN_WITH_ONEDNN)
#include "kernels/onednn/onednn_kernels.hpp"
#endif
#include "kernels/ref/ref.hpp"
#include "kiln/core/error.hpp"
#include "kiln/ops.hpp"

namespace kiln {
namespace {

void add_training_kernels(internal::KernelTable& t) {
#if defined(KILN_WITH_ONEDNN)
  internal::register_onednn_training_kernels(t);
#endif
  internal::register_eigen_training_kernels(t);
  internal::register_reference_training_kernels(t);
}

/// Gradients reaching one node that are zero paddings of pieces of it (what the rule of
/// slice gives), held back while nothing else has reached the node: when they tile the
/// padded axis (the q, k and v slices of one projection), their sum is the concat of the
/// pieces, one copy instead of a padded copy per piece and an add per extra piece.
class PendingPads {
 public:
  explicit PendingPads(std::size_t n, std::size_t first_new) : pads_(n), first_new_(first_new) {}

  /// Whether v, reaching node i, is held back (a padding while node i has no gradient yet).
  bool hold(std::size_t i, const Value& v, const Value& so_far) {
    if (so_far.valid() || v.node().op != Op::pad || static_cast<std::size_t>(v.id()) < first_new_)
      return false;
    pads_[i].push_back(v);
    return true;
  }

  bool holds(std::size_t i) const { return !pads_[i].empty(); }

  /// The gradient of node i with its held paddings folded in (adds in arrival order, or
  /// one concat when they tile the axis).
  Value flush(std::size_t i, Value so_far) {
    std::vector<Value>& p = pads_[i];
    if (p.empty()) return so_far;
    Value sum = tiled(p);
    if (!sum.valid()) {
      sum = p[0];
      for (std::size_t k = 1; k < p.size(); ++k) sum = add(sum, p[k]);
    }
    p.clear();
    return so_far.valid() ? add(so_far, sum) : sum;
  }

 private:
  // concat of the padded pieces when, in order of their offsets, they cover the axis
  // exactly; an empty Value otherwise.
  static Value tiled(const std::vector<Value>& pads) {
    if (pads.size() < 2) return {};
    const Attrs& first = pads[0].node().attrs;
    struct Piece {
      std::int64_t start, size;
      Value value;
    };
    std::vector<Piece> pieces;
    std::int64_t total = -1;
    for (const Value& p : pads) {
      const Node& n = p.node();
      const Value piece = p.graph().value(n.inputs[0]);
      const auto axis = static_cast<std::size_t>(n.attrs.axis);
      const std::int64_t size = piece.shape()[axis];
      if (n.attrs.axis != first.axis || size <= 0 || p.shape() != pads[0].shape()) return {};
      const std::int64_t whole = n.attrs.start + size + n.attrs.stop;
      if (total >= 0 && whole != total) return {};
      total = whole;
      pieces.push_back({n.attrs.start, size, piece});
    }
    std::sort(pieces.begin(), pieces.end(),
              [](const Piece& a, const Piece& b) { return a.start < b.start; });
    std::int64_t at = 0;
    std::vector<Value> parts;
    for (const Piece& piece : pieces) {
      if (piece.start != at) return {};
      at += piece.size;
      parts.push_back(piece.value);
    }
    if (at != total) return {};
    return concat(parts, first.axis);
  }

  std::vector<std::vector<Value>> pads_;
  std::size_t first_new_;
};

}  // namespace

namespace internal {
void ensure_training_kernels() { extend_kernels("training", add_training_kernels); }
}  // namespace internal

std::vector<Value> grad(Value loss, const std::vector<Value>& wrt) {
  internal::ensure_training_kernels();
  if (!loss.valid()) throw ValueError("grad: loss is an empty Value");
  if (!is_floating(loss.dtype()))
    throw DTypeError("grad: loss '" + loss.name() + "' must be f32 or f64, not " +
                     std::string(to_string(loss.dtype())));
  Graph& g = loss.graph();
  const auto n = static_cast<std::size_t>(loss.id()) + 1;
  // Nodes that depend on some wrt value: only their gradients are needed.
  std::vector<bool> from_wrt(g.size(), false);
  for (const Value& w : wrt) {
    if (!w.valid() || &w.graph() != &g)
      throw ValueError("grad: a value to differentiate by is empty or from another graph");
    if (!is_floating(w.dtype()))
      throw DTypeError("grad: cannot differentiate by '" + w.name() + "' of dtype " +
                       std::string(to_string(w.dtype())));
    from_wrt[static_cast<std::size_t>(w.id())] = true;
  }
  for (std::size_t id = 0; id < n; ++id)
    for (auto i : g.node(static_cast<std::int32_t>(id)).inputs)
      if (from_wrt[static_cast<std::size_t>(i)]) from_wrt[id] = true;

  std::vector<Value> grads(n);
  internal::GraphRollback rollback(g);  // a rule that throws leaves the graph unchanged
  const std::size_t first_new = g.size();
  // Gradient nodes carry the scope of the forward node they differentiate; the user's
  // current scope comes back when `scope` ends.
  ScopeGuard scope = g.set_scope(loss.node().scope);
  if (loss.shape().rank() == 0) {
    grads[n - 1] = g.constant(Tensor::scalar(1.0, loss.dtype()));
  } else {
    std::vector<std::int64_t> ones(loss.shape().rank(), 1);
    grads[n - 1] = expand(reshape(scalar_like(loss, 1.0), Shape(ones)), loss.shape(), loss);
  }
  PendingPads pending(n, first_new);
  for (std::size_t id = n; id-- > 0;) {
    if (pending.holds(id)) {  // the sum belongs to node id's layer, as below
      ScopeGuard in_node = g.set_scope(g.node(static_cast<std::int32_t>(id)).scope);
      grads[id] = pending.flush(id, grads[id]);
    }
    if (!grads[id].valid() || !from_wrt[id]) continue;
    const Node node = g.node(static_cast<std::int32_t>(id));  // copy: g grows below
    if (node.inputs.empty()) continue;
    const auto rule = internal::grad_rule(node.op);
    if (!rule) continue;  // not differentiable: no gradient flows through
    internal::GradContext c{node, g.value(static_cast<std::int32_t>(id)), grads[id], {}};
    for (auto i : node.inputs) c.inputs.push_back(g.value(i));
    std::vector<Value> in_grads;
    {
      ScopeGuard in_node = g.set_scope(node.scope);
      in_grads = rule(c);
    }
    for (std::size_t k = 0; k < node.inputs.size(); ++k) {
      const auto i = static_cast<std::size_t>(node.inputs[k]);
      if (!in_grads[k].valid() || !from_wrt[i]) continue;
      if (pending.hold(i, in_grads[k], grads[i])) continue;
      if (grads[i].valid()) {
        // The sum of the gradients reaching node i belongs to node i's layer.
        ScopeGuard in_input = g.set_scope(g.node(node.inputs[k]).scope);
        grads[i] = add(grads[i], in_grads[k]);
      } else {
        grads[i] = in_grads[k];
      }
    }
  }
  std::vector<Value> out;
  for (const Value& w : wrt) {
    const auto id = static_cast<std::size_t>(w.id());
    if (id < n && grads[id].valid()) {
      out.push_back(grads[id]);
    } else {
      ScopeGuard in_w = g.set_scope(w.node().scope);
      out.push_back(mul(w, 0.0));
    }
  }
  internal::GraphEditor::mark_gradient(g, first_new);
  rollback.commit();
  return out;
}

}  // namespace kiln
